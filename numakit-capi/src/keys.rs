//! Copies of C keys on a node: the hash table and the skip list copy each
//! key into a [`NodeHeap`] of the node that holds the entry, so a lookup
//! reads no memory of another node and the caller may reuse its buffer.

use crate::error::{CError, NKIT_ERR_INVALID_ARGUMENT, NKIT_ERR_NOT_FOUND};
use nk::mem::{MemError, NodeHeap};
use std::alloc::Layout;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::ffi::c_void;
use std::hash::{Hash, Hasher};
use std::ptr::{self, NonNull};

/// A copy of a key's bytes in a key heap (nothing allocated for an empty
/// key). Compared, ordered and hashed as its bytes are, so lookups by
/// `&[u8]` agree (`Borrow`).
pub(crate) struct NodeKey {
    bytes: NonNull<u8>,
    len: usize,
    /// The heap the bytes came from, which outlives the key (the owner
    /// drops its keys before the heap).
    heap: NonNull<NodeHeap>,
}

// SAFETY: a key owns its bytes (immutable after the copy) and frees them
// into a NodeHeap, which is Send + Sync; the heap outlives the key.
unsafe impl Send for NodeKey {}
// SAFETY: shared keys are only read.
unsafe impl Sync for NodeKey {}

impl NodeKey {
    /// Copy `bytes` into `heap`, which must outlive the key.
    pub(crate) fn new(heap: &NodeHeap, bytes: &[u8]) -> Result<Self, MemError> {
        let p = if bytes.is_empty() {
            NonNull::dangling()
        } else {
            let p = heap.try_alloc_layout(Layout::for_value(bytes))?;
            // SAFETY: `p` is fresh, `bytes.len()` bytes long; the source is
            // a slice of the same length.
            unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), p.as_ptr(), bytes.len()) };
            p
        };
        Ok(NodeKey {
            bytes: p,
            len: bytes.len(),
            heap: NonNull::from(heap),
        })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes copied in `new` (or none, at a dangling
        // aligned pointer), alive until `drop`.
        unsafe { std::slice::from_raw_parts(self.bytes.as_ptr(), self.len) }
    }
}

impl Drop for NodeKey {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: the heap outlives every key (the owner's field order);
        // the block came from it with this layout and is not used again.
        unsafe {
            self.heap
                .as_ref()
                .dealloc(self.bytes, Layout::for_value(self.as_bytes()))
        };
    }
}

impl Borrow<[u8]> for NodeKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for NodeKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for NodeKey {}
impl PartialOrd for NodeKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for NodeKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}
impl Hash for NodeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// A memory error of `function`, its message prefixed with the name.
pub(crate) fn prefixed(function: &str, e: MemError) -> CError {
    let e = CError::from(e);
    CError::new(e.code, format!("{function}: {}", e.message))
}

/// The key bytes a C caller passed. With `empty` `None`, an empty key is
/// a key (and `key` may then be `NULL`); with `Some(why)`, `key_len` 0 is
/// refused with `why` in the message.
///
/// # Safety
/// A non-null `key` is valid for reading `key_len` bytes.
pub(crate) unsafe fn key_bytes<'a>(
    key: *const c_void,
    key_len: usize,
    function: &str,
    empty: Option<&str>,
) -> Result<&'a [u8], CError> {
    if key_len == 0 {
        return match empty {
            None => Ok(&[]),
            Some(why) => Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                format!("{function}: key_len is 0; {why}"),
            )),
        };
    }
    if key.is_null() {
        return Err(CError::null("key", function));
    }
    if key_len > isize::MAX as usize {
        return Err(CError::new(
            NKIT_ERR_INVALID_ARGUMENT,
            format!("{function}: key_len {key_len} is larger than any object"),
        ));
    }
    // SAFETY: non-null, `key_len` ≤ isize::MAX, readable per the contract.
    Ok(unsafe { std::slice::from_raw_parts(key.cast::<u8>(), key_len) })
}

/// No entry for `key` in `function`.
pub(crate) fn not_found(function: &str, key: &[u8]) -> CError {
    CError::new(
        NKIT_ERR_NOT_FOUND,
        format!("{function}: no entry for the {}-byte key", key.len()),
    )
}
