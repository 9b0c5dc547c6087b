//! [`InsertError`]: the map's node could not make room; what was not
//! inserted comes back.

use crate::mem::MemError;
use crate::topology::NodeId;
use std::fmt;

/// An insertion that did not happen because the map's node could not give
/// a shard's table the memory to grow (the map never takes memory from
/// another node). What was to be inserted comes back:
/// `(key, value)` from [`try_insert`](super::ConcurrentHashMap::try_insert),
/// the key from [`try_entry`](super::ConcurrentHashMap::try_entry).
///
/// The map is unchanged and usable; the [`MemError`] says how much the node
/// has and what to do (free memory there, or build the map with a larger
/// [`capacity`](super::Builder::capacity) while memory is available).
pub struct InsertError<T> {
    rejected: T,
    node: NodeId,
    error: MemError,
}

impl<T> InsertError<T> {
    pub(crate) fn new(rejected: T, node: NodeId, error: MemError) -> Self {
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

    /// The same error without what was not inserted (dropped here): the
    /// form [`numakit::Error`](crate::Error) holds.
    pub fn discard(self) -> InsertError<()> {
        InsertError {
            rejected: (),
            node: self.node,
            error: self.error,
        }
    }
}

impl<T> fmt::Display for InsertError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the hash map on NUMA node {} could not grow a shard's table, so the entry was not \
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
