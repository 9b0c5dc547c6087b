//! `structs/deque.h`: a work-stealing deque of `void*` on a node, on
//! numakit's [`deque`](nk::collections::deque).
//!
//! The C library's deque grows when full; numakit's has a fixed capacity
//! (the buffer is placed and populated once, so push never allocates), so
//! `initial_capacity` is the capacity and a push into a full deque fails
//! with `NKIT_ERR_FULL`, which the header's `false` already allows.

use crate::error::{capacity_arg, ffi, node_arg, CError, NKIT_ERR_EMPTY, NKIT_ERR_FULL};
use nk::collections::deque::{Steal, Stealer, Worker};
use std::ffi::{c_int, c_void};
use std::ptr;

/// One `void*` in the deque.
struct Item(*mut c_void);

// SAFETY: the deque only stores and hands back the pointer value; what it
// points to is the C program's business (as with the C library's deque).
unsafe impl Send for Item {}

/// `nkit_deque_t`: the owner's end and a thieves' end of one deque.
pub struct NkitDeque {
    worker: Worker<Item>,
    stealer: Stealer<Item>,
}

// SAFETY: `Stealer` is `Sync`. `Worker` is `!Sync` because push and pop
// assume one owner at a time; the header makes that a precondition of
// `nkit_deque_push`/`nkit_deque_pop` (as the C library does), and the
// other functions use only the stealer.
unsafe impl Sync for NkitDeque {}

/// # Safety
/// The pointer is `NULL` or a live handle from `nkit_deque_create`.
unsafe fn deque_ref<'a>(dq: *mut NkitDeque, function: &str) -> Result<&'a NkitDeque, CError> {
    // SAFETY: a non-null handle came from `nkit_deque_create` and is not
    // freed (the C precondition).
    unsafe { dq.as_ref() }.ok_or_else(|| CError::null("dq", function))
}

fn empty(function: &str) -> CError {
    CError::new(NKIT_ERR_EMPTY, format!("{function}: the deque is empty"))
}

/// A deque of `initial_capacity` elements (a power of two) with its buffer
/// on `node_id`; `NULL` on failure.
///
/// # Safety
/// None beyond the C signature (no pointer arguments).
#[no_mangle]
pub unsafe extern "C" fn nkit_deque_create(
    node_id: c_int,
    initial_capacity: u32,
) -> *mut NkitDeque {
    ffi("nkit_deque_create", ptr::null_mut(), || {
        let node = node_arg(node_id, "nkit_deque_create")?;
        // The largest power of two a `uint32_t` holds, within numakit's.
        let max = (1u64 << 31).min(nk::collections::MAX_CAPACITY as u64);
        let capacity = capacity_arg(u64::from(initial_capacity), max, "deque")?;
        let worker = Worker::new_lifo(node, capacity)?;
        let stealer = worker.stealer();
        Ok(Box::into_raw(Box::new(NkitDeque { worker, stealer })))
    })
}

/// Free the deque (the pointers still inside are forgotten). `NULL` is
/// accepted and does nothing.
///
/// # Safety
/// `dq` is `NULL` or a live handle from `nkit_deque_create` that no other
/// thread is using.
#[no_mangle]
pub unsafe extern "C" fn nkit_deque_destroy(dq: *mut NkitDeque) {
    ffi("nkit_deque_destroy", (), || {
        if !dq.is_null() {
            // SAFETY: from `Box::into_raw` in `nkit_deque_create`, not freed
            // before (the C precondition).
            drop(unsafe { Box::from_raw(dq) });
        }
        Ok(())
    })
}

/// Push `data` at the bottom; `false` when the deque is full
/// (`NKIT_ERR_FULL`).
///
/// # Safety
/// `dq` is `NULL` or a live handle; the calling thread is the deque's only
/// owner (no other thread pushes or pops at the same time).
#[no_mangle]
pub unsafe extern "C" fn nkit_deque_push(dq: *mut NkitDeque, data: *mut c_void) -> bool {
    ffi("nkit_deque_push", false, || {
        // SAFETY: forwarded contract.
        let d = unsafe { deque_ref(dq, "nkit_deque_push") }?;
        match d.worker.push(Item(data)) {
            Ok(()) => Ok(true),
            Err(_) => Err(CError::new(
                NKIT_ERR_FULL,
                format!(
                    "nkit_deque_push: the deque is full ({} elements); it does not grow: \
                     create it with a larger capacity or let thieves drain it",
                    d.worker.capacity()
                ),
            )),
        }
    })
}

/// Pop the newest element into `*data`; `false` when the deque is empty
/// (`NKIT_ERR_EMPTY`, `*data` unchanged).
///
/// # Safety
/// As [`nkit_deque_push`]; `data` is `NULL` or valid for writing a `void*`.
#[no_mangle]
pub unsafe extern "C" fn nkit_deque_pop(dq: *mut NkitDeque, data: *mut *mut c_void) -> bool {
    ffi("nkit_deque_pop", false, || {
        // SAFETY: forwarded contract.
        let d = unsafe { deque_ref(dq, "nkit_deque_pop") }?;
        if data.is_null() {
            return Err(CError::null("data", "nkit_deque_pop"));
        }
        let Item(p) = d.worker.pop().ok_or_else(|| empty("nkit_deque_pop"))?;
        // SAFETY: non-null and writable (the precondition).
        unsafe { data.write(p) };
        Ok(true)
    })
}

/// Steal the oldest element into `*data` (lost races are retried);
/// `false` when the deque is empty (`NKIT_ERR_EMPTY`, `*data` unchanged).
///
/// # Safety
/// `dq` is `NULL` or a live handle; `data` is `NULL` or valid for writing
/// a `void*`.
#[no_mangle]
pub unsafe extern "C" fn nkit_deque_steal(dq: *mut NkitDeque, data: *mut *mut c_void) -> bool {
    ffi("nkit_deque_steal", false, || {
        // SAFETY: forwarded contract.
        let d = unsafe { deque_ref(dq, "nkit_deque_steal") }?;
        if data.is_null() {
            return Err(CError::null("data", "nkit_deque_steal"));
        }
        loop {
            match d.stealer.steal() {
                Steal::Success(Item(p)) => {
                    // SAFETY: non-null and writable (the precondition).
                    unsafe { data.write(p) };
                    return Ok(true);
                }
                Steal::Empty => return Err(empty("nkit_deque_steal")),
                // Another thread took an element: the deque moved on.
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    })
}

/// The number of elements at one moment; 0 with an error for `NULL`.
///
/// # Safety
/// `dq` is `NULL` or a live handle.
#[no_mangle]
pub unsafe extern "C" fn nkit_deque_size(dq: *mut NkitDeque) -> u32 {
    ffi("nkit_deque_size", 0, || {
        // SAFETY: forwarded contract.
        let d = unsafe { deque_ref(dq, "nkit_deque_size") }?;
        // At most the capacity, which came in as a `uint32_t`.
        Ok(u32::try_from(d.stealer.len()).unwrap_or(u32::MAX))
    })
}
