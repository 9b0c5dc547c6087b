//! L3 — data structures whose storage is provably on a chosen node.
//!
//! - [`spsc`]: a bounded single-producer single-consumer ring with split
//!   [`Producer`](spsc::Producer) / [`Consumer`](spsc::Consumer) handles;
//! - [`MpmcRing`]: a bounded multi-producer multi-consumer ring;
//! - [`ConcurrentHashMap`]: a sharded hash map whose shard array, buckets
//!   and entries all come from a node-bound heap;
//! - [`deque`]: a bounded Chase–Lev work-stealing deque with an owner's
//!   [`Worker`](deque::Worker) and cloneable [`Stealer`](deque::Stealer)s,
//!   its buffer on a chosen node.
//! - [`SkipMap`]: an ordered map (a skip list under one reader-writer
//!   lock) whose lock, head and nodes all come from a node-bound heap.
//!
//! The rings keep their slots in a node-bound mapping (bound with
//! `mbind(MPOL_BIND, STRICT)`, populated with the node's memory checked),
//! keep producer and consumer indices on separate 128-byte lines, have
//! power-of-two capacities, single and bulk operations (all-or-nothing and
//! best-effort), and drop the elements left in them exactly once.
//!
//! What users of `rtrb` and crossbeam's `ArrayQueue` reach for is there
//! too: the SPSC ring's chunk API (`write_chunk`, `write_chunk_uninit`,
//! `read_chunk`, lent in place as one or two slices, published by
//! `commit`), `peek`, `io::Read`/`io::Write` for `u8` rings and
//! `len`/`is_empty`/`slots` on `&self` at both ends; the MPMC ring's
//! `force_push` and by-value `IntoIterator`. Both rings wait without
//! spinning: `push_wait`/`pop_wait` sleep on a futex with a timeout, and
//! with the `async` feature `push_async`/`pop_async` return `Future`s woken
//! through their `Waker` (no runtime dependency). The side that publishes
//! pays a compiler fence and one load for this when nobody waits; the
//! waiter pays a `membarrier(2)` before it sleeps.
//!
//! Capacities: both rings take any power of two from 1 to
//! [`MAX_CAPACITY`]; 0, other values and larger ones are refused with a
//! typed error that names the nearest powers of two (they are not rounded
//! up silently, so `capacity()` is always what was asked for).

mod buffer;
pub mod deque;
pub mod hash_map;
mod mpmc;
pub(crate) mod primitive;
pub mod skip_map;
pub mod spsc;
mod wait;

pub use hash_map::{ConcurrentHashMap, ConcurrentHashSet};
pub use mpmc::{IntoIter as MpmcIntoIter, MpmcRing};
#[cfg(feature = "async")]
pub use mpmc::{MpmcPopFuture, MpmcPushFuture};
pub use skip_map::SkipMap;

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
