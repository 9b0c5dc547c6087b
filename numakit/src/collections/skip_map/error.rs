//! [`InsertError`]: the map's node could not give a new entry its memory;
//! what was not inserted comes back.

use crate::mem::MemError;
use crate::topology::NodeId;
use std::fmt;

/// An insertion that did not happen because the map's node could not give
/// the new entry's memory (the map never takes memory from another node).
/// The `(key, value)` pair comes back from
/// [`try_insert`](super::SkipMap::try_insert).
///
/// The map is unchanged and usable; the [`MemError`] says how much the node
/// has and what to do.
pub struct InsertError<T> {
    rejected: T,
    node: NodeId,
    error: MemError,
}

impl<T> InsertError<T> {
    pub(super) fn new(rejected: T, node: NodeId, error: MemError) -> Self {
        InsertError {
            rejected,
            node,
            error,
        }
    }

    /// What was not inserted.
    pub fn into_inner(self) -> T {
        self.rejected
    }

    /// What was not inserted, and why.
    pub fn into_parts(self) -> (T, MemError) {
        (self.rejected, self.error)
    }

    /// Why: the memory layer's error for the map's node.
    pub fn error(&self) -> &MemError {
        &self.error
    }

    /// The map's node.
    pub fn node(&self) -> NodeId {
        self.node
    }
}

impl<T> fmt::Display for InsertError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the skip map on NUMA node {} could not allocate the new entry, so it was not \
             inserted (it is handed back): {}",
            self.node, self.error
        )
    }
}

// Not `T: Debug`: keys and values need not be printable.
impl<T> fmt::Debug for InsertError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertError")
            .field("node", &self.node)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> std::error::Error for InsertError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Converting drops what was not inserted and keeps the memory layer's
/// error (take the pair with [`into_inner`](InsertError::into_inner) or
/// [`into_parts`](InsertError::into_parts) before `?` to keep it).
impl<T> From<InsertError<T>> for crate::Error {
    fn from(e: InsertError<T>) -> Self {
        crate::Error::Mem(e.error)
    }
}
