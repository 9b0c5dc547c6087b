//! `structs/hash_table.h`: a concurrent byte-key → `void*` table on a
//! node, on numakit's [`ConcurrentHashMap`].

use crate::error::{ffi, node_arg, CError, NKIT_ERR_NOT_FOUND};
use nk::collections::ConcurrentHashMap;
use std::ffi::{c_int, c_void};
use std::ptr;

/// `nkit_hash_t`. Values are kept as addresses (`usize`): the table
/// stores and hands back the pointer value only.
pub struct NkitHash {
    map: ConcurrentHashMap<Box<[u8]>, usize>,
}

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn hash_ref<'a>(ht: *const NkitHash, function: &str) -> Result<&'a NkitHash, CError> {
    // SAFETY: a non-null handle came from `nkit_hash_create` and is not
    // destroyed (the C precondition); the map is Sync.
    unsafe { ht.as_ref() }.ok_or_else(|| CError::null("table", function))
}

/// The key bytes; `key` may be `NULL` only when `key_len` is 0.
///
/// # Safety
/// A non-null `key` is valid for reading `key_len` bytes.
unsafe fn key_bytes<'a>(
    key: *const c_void,
    key_len: usize,
    function: &str,
) -> Result<&'a [u8], CError> {
    if key_len == 0 {
        return Ok(&[]);
    }
    if key.is_null() {
        return Err(CError::null("key", function));
    }
    if key_len > isize::MAX as usize {
        return Err(CError::new(
            crate::error::NKIT_ERR_INVALID_ARGUMENT,
            format!("{function}: key_len {key_len} is larger than any object"),
        ));
    }
    // SAFETY: non-null, `key_len` ≤ isize::MAX, readable per the contract.
    Ok(unsafe { std::slice::from_raw_parts(key.cast::<u8>(), key_len) })
}

fn not_found(function: &str, key: &[u8]) -> CError {
    CError::new(
        NKIT_ERR_NOT_FOUND,
        format!("{function}: no entry for the {}-byte key", key.len()),
    )
}

/// A table on `node_id` with room for about `capacity` entries reserved
/// now (it grows past them, on the node); `NULL` on failure.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_hash_create(node_id: c_int, capacity: usize) -> *mut NkitHash {
    ffi(ptr::null_mut(), || {
        let node = node_arg(node_id, "nkit_hash_create")?;
        let map = ConcurrentHashMap::builder(node)
            .capacity(capacity)
            .build()?;
        Ok(Box::into_raw(Box::new(NkitHash { map })))
    })
}

/// Free the table. `NULL` is accepted and does nothing.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_hash_destroy(ht: *mut NkitHash) {
    ffi((), || {
        if !ht.is_null() {
            // SAFETY: from `Box::into_raw` in `nkit_hash_create`, not
            // destroyed before (the C precondition).
            drop(unsafe { Box::from_raw(ht) });
        }
        Ok(())
    })
}

/// Insert or overwrite; 0, or -1 when the node cannot give the memory.
///
/// # Safety
/// `key` is valid for reading `key_len` bytes (it may be `NULL` when
/// `key_len` is 0); the bytes are copied.
#[no_mangle]
pub unsafe extern "C" fn nkit_hash_put(
    ht: *mut NkitHash,
    key: *const c_void,
    key_len: usize,
    value: *mut c_void,
) -> c_int {
    ffi(-1, || {
        // SAFETY: forwarded contract.
        let h = unsafe { hash_ref(ht, "nkit_hash_put") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_hash_put") }?;
        h.map
            .try_insert(k.into(), value as usize)
            .map_err(nk::Error::from)?;
        Ok(0)
    })
}

/// The value stored for the key, or `NULL` with `NKIT_ERR_NOT_FOUND` (a
/// stored `NULL` leaves the error at `NKIT_OK`).
///
/// # Safety
/// As `nkit_hash_put`.
#[no_mangle]
pub unsafe extern "C" fn nkit_hash_get(
    ht: *mut NkitHash,
    key: *const c_void,
    key_len: usize,
) -> *mut c_void {
    ffi(ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let h = unsafe { hash_ref(ht, "nkit_hash_get") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_hash_get") }?;
        match h.map.get_cloned(k) {
            Some(v) => Ok(v as *mut c_void),
            None => Err(not_found("nkit_hash_get", k)),
        }
    })
}

/// Remove the entry; 0, or -1 with `NKIT_ERR_NOT_FOUND`.
///
/// # Safety
/// As `nkit_hash_put`.
#[no_mangle]
pub unsafe extern "C" fn nkit_hash_remove(
    ht: *mut NkitHash,
    key: *const c_void,
    key_len: usize,
) -> c_int {
    ffi(-1, || {
        // SAFETY: forwarded contract.
        let h = unsafe { hash_ref(ht, "nkit_hash_remove") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_hash_remove") }?;
        match h.map.remove(k) {
            Some(_) => Ok(0),
            None => Err(not_found("nkit_hash_remove", k)),
        }
    })
}

/// The number of entries (0 with the error set for a `NULL` table).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_hash_count(ht: *const NkitHash) -> usize {
    ffi(0, || {
        // SAFETY: forwarded contract.
        Ok(unsafe { hash_ref(ht, "nkit_hash_count") }?.map.len())
    })
}
