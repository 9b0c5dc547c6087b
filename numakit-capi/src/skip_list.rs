//! `structs/skip_list.h`: a concurrent byte-key → `void*` skip list,
//! sharded across the NUMA nodes as the C library's is, each shard a
//! numakit [`SkipMap`] on its node.
//!
//! The header's `nkit_skip_create(max_level)` names no node: the design
//! spreads entries over one shard per node, a key's shard chosen by a hash
//! of its bytes. numakit keeps that, without inference or fallback: one
//! shard per node the process may allocate on (`Topology::mems_allowed`:
//! nodes with memory, in the cpuset), the shard of a key is
//! `FNV-1a(key) % shards`, and every byte a shard keeps — its lock, its
//! nodes, and its copy of each key — is on that shard's node (the key
//! copies come from a [`NodeHeap`] of the shard). Where the C library keeps
//! the caller's key pointer, numakit copies the key: the caller may free
//! or reuse its buffer after the call.

use crate::error::{ffi, CError};
use crate::keys::{key_bytes, not_found, prefixed, NodeKey};
use nk::collections::SkipMap;
use nk::mem::NodeHeap;
use std::ffi::{c_int, c_void};
use std::ptr;

/// One node's part of the list. Fields drop in order: the map (and the
/// keys in it) before the heap the keys live in.
struct Shard {
    map: SkipMap<NodeKey, usize>,
    keys: Box<NodeHeap>,
}

/// `nkit_skip_t`. Values are kept as addresses (`usize`): the list stores
/// and hands back the pointer value only.
pub struct NkitSkip {
    shards: Vec<Shard>,
}

impl NkitSkip {
    fn shard(&self, key: &[u8]) -> &Shard {
        // FNV-1a, as the C library hashes keys to shards.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in key {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        &self.shards[(h % self.shards.len() as u64) as usize]
    }
}

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn skip_ref<'a>(sl: *const NkitSkip, function: &str) -> Result<&'a NkitSkip, CError> {
    // SAFETY: a non-null handle came from `nkit_skip_create` and is not
    // destroyed (the C precondition); the list is Sync.
    unsafe { sl.as_ref() }.ok_or_else(|| CError::null("skip list", function))
}

/// Why an empty key is refused (the C library refuses it too).
const SKIP_EMPTY: &str = "a skip list key has at least one byte";

/// A list with one shard per node the process may allocate on, towers of
/// at most `max_level` levels (1 to `nk::collections::skip_map::MAX_HEIGHT`,
/// 32); `NULL` on failure.
#[no_mangle]
pub extern "C" fn nkit_skip_create(max_level: u32) -> *mut NkitSkip {
    ffi("nkit_skip_create", ptr::null_mut(), || {
        let height = usize::try_from(max_level).unwrap_or(usize::MAX);
        let topo = nk::Topology::current()?;
        let nodes = topo.mems_allowed()?;
        let mut shards = Vec::with_capacity(nodes.len());
        for node in nodes {
            let map = SkipMap::builder(node)
                .max_height(height)
                .seed(u64::from(node.get()) + 42)
                .build()
                .map_err(|e| prefixed("nkit_skip_create", e))?;
            let keys = Box::new(NodeHeap::new(node).map_err(|e| prefixed("nkit_skip_create", e))?);
            shards.push(Shard { map, keys });
        }
        if shards.is_empty() {
            return Err(CError::new(
                crate::error::NKIT_ERR_NOT_ALLOWED,
                "nkit_skip_create: the process may allocate on no NUMA node (Mems_allowed lists \
                 none with memory)",
            ));
        }
        Ok(Box::into_raw(Box::new(NkitSkip { shards })))
    })
}

/// Free the list. `NULL` is accepted and does nothing.
///
/// # Safety
/// `sl` is `NULL` or a live handle from `nkit_skip_create`, not used
/// again.
#[no_mangle]
pub unsafe extern "C" fn nkit_skip_destroy(sl: *mut NkitSkip) {
    ffi("nkit_skip_destroy", (), || {
        if !sl.is_null() {
            // SAFETY: from `Box::into_raw` in `nkit_skip_create`, not
            // destroyed before (the C precondition).
            drop(unsafe { Box::from_raw(sl) });
        }
        Ok(())
    })
}

/// Insert or overwrite; 0, or -1 (NULL list or key, empty key, the node
/// cannot give the memory).
///
/// # Safety
/// `sl` is `NULL` or a live handle; `key` is `NULL` or valid for reading
/// `key_len` bytes (they are copied).
#[no_mangle]
pub unsafe extern "C" fn nkit_skip_put(
    sl: *mut NkitSkip,
    key: *const c_void,
    key_len: usize,
    value: *mut c_void,
) -> c_int {
    ffi("nkit_skip_put", -1, || {
        // SAFETY: forwarded contract.
        let s = unsafe { skip_ref(sl, "nkit_skip_put") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_skip_put", Some(SKIP_EMPTY)) }?;
        let shard = s.shard(k);
        let owned = NodeKey::new(&shard.keys, k).map_err(|e| prefixed("nkit_skip_put", e))?;
        shard
            .map
            .try_insert(owned, value as usize)
            .map_err(|e| prefixed("nkit_skip_put", e.into_parts().1))?;
        Ok(0)
    })
}

/// The value stored for the key, or `NULL` with `NKIT_ERR_NOT_FOUND` (a
/// stored `NULL` leaves the error at `NKIT_OK`).
///
/// # Safety
/// As `nkit_skip_put`.
#[no_mangle]
pub unsafe extern "C" fn nkit_skip_get(
    sl: *mut NkitSkip,
    key: *const c_void,
    key_len: usize,
) -> *mut c_void {
    ffi("nkit_skip_get", ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let s = unsafe { skip_ref(sl, "nkit_skip_get") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_skip_get", Some(SKIP_EMPTY)) }?;
        match s.shard(k).map.get_cloned(k) {
            Some(v) => Ok(v as *mut c_void),
            None => Err(not_found("nkit_skip_get", k)),
        }
    })
}

/// Remove the entry; 0, or -1 (`NKIT_ERR_NOT_FOUND` when the key is
/// absent).
///
/// # Safety
/// As `nkit_skip_put`.
#[no_mangle]
pub unsafe extern "C" fn nkit_skip_remove(
    sl: *mut NkitSkip,
    key: *const c_void,
    key_len: usize,
) -> c_int {
    ffi("nkit_skip_remove", -1, || {
        // SAFETY: forwarded contract.
        let s = unsafe { skip_ref(sl, "nkit_skip_remove") }?;
        // SAFETY: forwarded contract.
        let k = unsafe { key_bytes(key, key_len, "nkit_skip_remove", Some(SKIP_EMPTY)) }?;
        match s.shard(k).map.remove(k) {
            Some(_) => Ok(0),
            None => Err(not_found("nkit_skip_remove", k)),
        }
    })
}

/// The number of entries in all shards (0 with the error set for a `NULL`
/// list); exact when no writer runs.
///
/// # Safety
/// `sl` is `NULL` or a live handle.
#[no_mangle]
pub unsafe extern "C" fn nkit_skip_count(sl: *const NkitSkip) -> usize {
    ffi("nkit_skip_count", 0, || {
        // SAFETY: forwarded contract.
        let s = unsafe { skip_ref(sl, "nkit_skip_count") }?;
        Ok(s.shards.iter().map(|sh| sh.map.len()).sum())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte a shard keeps is on its node: the map's pages and the
    /// key copies.
    #[test]
    fn shards_keep_their_keys_on_their_node() {
        let sl = nkit_skip_create(16);
        assert!(!sl.is_null());
        for i in 0u32..5000 {
            let k = i.to_le_bytes();
            // SAFETY: a live handle and a 4-byte key.
            let rc = unsafe { nkit_skip_put(sl, k.as_ptr().cast(), 4, ptr::null_mut()) };
            assert_eq!(rc, 0);
        }
        // SAFETY: a live handle.
        let s = unsafe { &*sl };
        assert_eq!(
            s.shards.len(),
            nk::Topology::current()
                .unwrap()
                .mems_allowed()
                .unwrap()
                .len()
        );
        for shard in &s.shards {
            let node = shard.map.node();
            assert!(shard.map.verify().unwrap().is_all_on(node));
            assert!(shard.keys.verify().unwrap().is_all_on(node));
            assert_eq!(shard.keys.node(), node);
        }
        // SAFETY: a live handle, not used again.
        unsafe { nkit_skip_destroy(sl) };
    }
}
