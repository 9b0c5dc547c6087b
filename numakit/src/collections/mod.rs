//! L3 — data structures whose storage is provably on a chosen node.
//!
//! - [`spsc`]: a bounded single-producer single-consumer ring with split
//!   [`Producer`](spsc::Producer) / [`Consumer`](spsc::Consumer) handles;
//! - [`MpmcRing`]: a bounded multi-producer multi-consumer ring;
//! - [`ConcurrentHashMap`]: a sharded hash map whose shard array, buckets
//!   and entries all come from a node-bound heap.
//!
//! The rings keep their slots in a node-bound mapping (bound with
//! `mbind(MPOL_BIND, STRICT)`, populated with the node's memory checked),
//! keep producer and consumer indices on separate 128-byte lines, have
//! power-of-two capacities, single and bulk operations (all-or-nothing and
//! best-effort), and drop the elements left in them exactly once.

mod buffer;
pub mod hash_map;
mod mpmc;
pub(crate) mod primitive;
pub mod spsc;
mod wait;

pub use hash_map::ConcurrentHashMap;
pub use mpmc::{IntoIter as MpmcIntoIter, MpmcRing};
#[cfg(feature = "async")]
pub use mpmc::{MpmcPopFuture, MpmcPushFuture};

/// The largest capacity a ring accepts: 2^62 slots on 64-bit targets. Any
/// power of two from 1 up to it is accepted (memory permitting: the slots
/// are mapped and populated up front, so a capacity the node cannot hold
/// is an out-of-memory error, not a later fault); 0, other values and
/// larger ones are [`MemError::InvalidSize`](crate::mem::MemError::InvalidSize).
/// The bound keeps every position arithmetic of the rings exact.
pub const MAX_CAPACITY: usize = 1 << (usize::BITS - 2);

/// Why a push did not happen; the value comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError<T> {
    /// The ring is full.
    #[error("the ring is full")]
    Full(T),
    /// The other side is gone (SPSC: the consumer was dropped; MPMC: the
    /// ring was closed).
    #[error("the ring is closed")]
    Closed(T),
}

impl<T> PushError<T> {
    /// The value that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(v) | PushError::Closed(v) => v,
        }
    }
}

/// Why a pop returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// The ring is empty for now.
    #[error("the ring is empty")]
    Empty,
    /// The ring is empty and nothing more will come (producers gone or ring
    /// closed).
    #[error("the ring is empty and closed")]
    Closed,
}
