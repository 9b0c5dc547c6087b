//! `structs/hash_table.h`: a concurrent byte-key → `void*` table on a
//! node, on numakit's [`ConcurrentHashMap`]. The copies of the keys are on
//! the table's node too (the node's shared [`NodeHeap`]), so a lookup
//! reads no memory of another node.

use crate::error::{ffi, node_arg, CError};
use crate::keys::{key_bytes, not_found, prefixed, NodeKey};
use nk::collections::ConcurrentHashMap;
use nk::mem::NodeHeap;
use std::ffi::{c_int, c_void};
use std::ptr;

/// `nkit_hash_t`. Values are kept as addresses (`usize`): the table
/// stores and hands back the pointer value only.
pub struct NkitHash {
    map: ConcurrentHashMap<NodeKey, usize>,
    /// The process-wide heap of the table's node ([`NodeHeap::of`]), where
    /// keys are copied: tables share it, so a small table costs no heap
    /// of its own, and it lives as long as the process.
    keys: &'static NodeHeap,
}

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn hash_ref<'a>(ht: *const NkitHash, function: &str) -> Result<&'a NkitHash, CError> {
    // SAFETY: a non-null handle came from `nkit_hash_create` and is not
    // destroyed (the C precondition); the map is Sync.
    unsafe { ht.as_ref() }.ok_or_else(|| CError::null("table", function))
}

/// A table on `node_id` with room for about `capacity` entries reserved
/// now (it grows past them, on the node); `NULL` on failure.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_hash_create(node_id: c_int, capacity: usize) -> *mut NkitHash {
    ffi("nkit_hash_create", ptr::null_mut(), || {
        let node = node_arg(node_id, "nkit_hash_create")?;
        let map = ConcurrentHashMap::builder(node)
            .capacity(capacity)
            .build()?;
        let keys = NodeHeap::of(node).map_err(|e| prefixed("nkit_hash_create", e))?;
        Ok(Box::into_raw(Box::new(NkitHash { map, keys })))
    })
}

/// Free the table. `NULL` is accepted and does nothing.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_hash_destroy(ht: *mut NkitHash) {
    ffi("nkit_hash_destroy", (), || {
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
    ffi("nkit_hash_put", -1, || {
        // SAFETY: forwarded contract.
        let h = unsafe { hash_ref(ht, "nkit_hash_put") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_hash_put", None) }?;
        h.map
            .try_insert(
                NodeKey::new(h.keys, k).map_err(|e| prefixed("nkit_hash_put", e))?,
                value as usize,
            )
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
    ffi("nkit_hash_get", ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let h = unsafe { hash_ref(ht, "nkit_hash_get") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_hash_get", None) }?;
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
    ffi("nkit_hash_remove", -1, || {
        // SAFETY: forwarded contract.
        let h = unsafe { hash_ref(ht, "nkit_hash_remove") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_hash_remove", None) }?;
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
    ffi("nkit_hash_count", 0, || {
        // SAFETY: forwarded contract.
        Ok(unsafe { hash_ref(ht, "nkit_hash_count") }?.map.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte a table keeps is on its node, whichever thread made it
    /// and put the keys: the map's pages, the small key copies (its key
    /// heap) and a key large enough for a mapping of its own.
    #[test]
    fn tables_keep_their_keys_on_their_node() {
        let topo = nk::Topology::current().unwrap();
        let long = vec![7u8; 300 << 10];
        for node in topo.mems_allowed().unwrap() {
            // SAFETY: no pointer arguments.
            let ht = unsafe { nkit_hash_create(node.get() as c_int, 0) };
            assert!(!ht.is_null());
            let put = |k: &[u8]| {
                // SAFETY: a live handle and a key of `k.len()` bytes.
                let rc = unsafe { nkit_hash_put(ht, k.as_ptr().cast(), k.len(), ptr::null_mut()) };
                assert_eq!(rc, 0);
            };
            for i in 0u32..2000 {
                let k: Vec<u8> = i
                    .to_le_bytes()
                    .iter()
                    .cycle()
                    .take(4 + (i % 61) as usize)
                    .copied()
                    .collect();
                put(&k);
            }
            put(&[]);
            put(&long);
            // SAFETY: a live handle.
            let h = unsafe { &*ht };
            assert_eq!(h.map.len(), 2002);
            assert!(h.map.verify().unwrap().is_all_on(node));
            assert!(h.keys.verify().unwrap().is_all_on(node));
            let mut keys = 0;
            for e in h.map.iter() {
                let b = e.key().as_bytes();
                if !b.is_empty() {
                    let placed = nk::mem::locate(b.as_ptr(), b.len()).unwrap();
                    assert!(placed.is_all_on(node), "a {}-byte key: {placed}", b.len());
                }
                keys += 1;
            }
            assert_eq!(keys, 2002);
            // Lookups by the bytes find the copies, the empty key included.
            // SAFETY: a live handle; keys of the lengths given.
            unsafe {
                assert_eq!(nkit_hash_get(ht, ptr::null(), 0), ptr::null_mut());
                assert_eq!(nkit_hash_remove(ht, long.as_ptr().cast(), long.len()), 0);
                assert_eq!(nkit_hash_remove(ht, ptr::null(), 0), 0);
                assert_eq!(nkit_hash_count(ht), 2000);
                nkit_hash_destroy(ht);
            }
        }
    }
}
