//! `structs/ring_buffer.h`: a bounded MPMC ring of `void*` on a node, on
//! numakit's [`MpmcRing`].
//!
//! The C library defines `nkit_ring_push`/`nkit_ring_pop` as `static
//! inline` over the ring's fields; here the ring is opaque and they are
//! ordinary functions, with the same signatures.

use crate::error::{capacity_arg, ffi, node_arg, CError};
use nk::collections::MpmcRing;
use std::ffi::{c_int, c_void};
use std::ptr;

/// One `void*` in the ring.
struct Item(*mut c_void);

// SAFETY: the ring only stores and hands back the pointer value; what it
// points to is the C program's business (as with the C library's ring).
unsafe impl Send for Item {}

/// `nkit_ring_t`.
pub struct NkitRing {
    ring: MpmcRing<Item>,
}

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn ring_ref<'a>(ring: *mut NkitRing, function: &str) -> Result<&'a NkitRing, CError> {
    // SAFETY: a non-null handle came from `nkit_ring_create` and is not
    // freed (the C precondition); MpmcRing is Sync.
    unsafe { ring.as_ref() }.ok_or_else(|| CError::null("ring", function))
}

/// A ring of `capacity` slots (a power of two) in memory on `node_id`;
/// `NULL` on failure.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_ring_create(node_id: c_int, capacity: usize) -> *mut NkitRing {
    ffi("nkit_ring_create", ptr::null_mut(), || {
        let node = node_arg(node_id, "nkit_ring_create")?;
        let capacity = capacity_arg(
            capacity as u64,
            nk::collections::MAX_CAPACITY as u64,
            "ring",
        )?;
        let ring = MpmcRing::new(node, capacity)?;
        Ok(Box::into_raw(Box::new(NkitRing { ring })))
    })
}

/// Free the ring (items still inside are dropped: they are only pointers).
/// `NULL` is accepted and does nothing.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_ring_free(ring: *mut NkitRing) {
    ffi("nkit_ring_free", (), || {
        if !ring.is_null() {
            // SAFETY: from `Box::into_raw` in `nkit_ring_create`, not freed
            // before (the C precondition).
            drop(unsafe { Box::from_raw(ring) });
        }
        Ok(())
    })
}

/// Push `item`; `false` when the ring is full (`NKIT_ERR_FULL`).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_ring_push(ring: *mut NkitRing, item: *mut c_void) -> bool {
    ffi("nkit_ring_push", false, || {
        // SAFETY: forwarded contract.
        let r = unsafe { ring_ref(ring, "nkit_ring_push") }?;
        r.ring.push(Item(item)).map_err(nk::Error::from)?;
        Ok(true)
    })
}

/// Pop the oldest item into `*item`; `false` when the ring is empty
/// (`NKIT_ERR_EMPTY`, `*item` unchanged).
///
/// # Safety
/// `item` is valid for writing a `void*`.
#[no_mangle]
pub unsafe extern "C" fn nkit_ring_pop(ring: *mut NkitRing, item: *mut *mut c_void) -> bool {
    ffi("nkit_ring_pop", false, || {
        // SAFETY: forwarded contract.
        let r = unsafe { ring_ref(ring, "nkit_ring_pop") }?;
        if item.is_null() {
            return Err(CError::null("item", "nkit_ring_pop"));
        }
        match r.ring.pop() {
            Ok(Item(p)) => {
                // SAFETY: non-null and writable (the precondition).
                unsafe { item.write(p) };
                Ok(true)
            }
            Err(e) => Err(nk::Error::from(e).into()),
        }
    })
}
