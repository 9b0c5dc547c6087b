//! L2 — synchronisation: queue locks whose waiters spin on their own cache
//! lines and then sleep, a NUMA-aware lock, a ticket lock, a reader-writer
//! lock, a condition variable and a counter sharded per CPU.
//!
//! | type | use it for | order | waiting |
//! |------|------------|-------|---------|
//! | [`McsLock`] | the default mutex; many threads, oversubscription | barging, bounded by [`FAIR_AFTER`] | MCS queue: own-line spin, then futex |
//! | [`CnaLock`] | threads pinned on several NUMA nodes | same-node first, bounded by `LOCAL_HANDOFFS` | MCS queue: own-line spin, then futex |
//! | [`TicketLock`] | strict FIFO, few threads | FIFO | shared-line spin, then futex |
//! | [`RwLock`] | read-mostly data | writer preference | futex |
//! | [`Condvar`] | waiting for a condition under any of the mutexes | — | futex |
//! | [`PartitionedCounter`] | statistics bumped by many threads | — | none (one shard per CPU) |
//!
//! The mutexes share one guard API: `new` (`const`), `lock` → guard,
//! `try_lock`, `get_mut`, `into_inner`, `is_locked`; guards are `!Send`
//! and release on drop, including during a panic. **No poisoning**: after
//! a panic in a critical section the next owner sees whatever the
//! panicking thread left, as with `parking_lot`. The raw locks
//! ([`RawMcs`], [`RawTicket`], [`RawRwLock`]) implement
//! [`lock_api::RawMutex`] / [`lock_api::RawRwLock`], so
//! `lock_api::Mutex<RawMcs, T>` works too.
//!
//! What `parking_lot` users reach for, on numakit's own types:
//!
//! | operation | [`McsLock`] | [`TicketLock`] | [`CnaLock`] | [`RwLock`] |
//! |-----------|-------------|----------------|-------------|------------|
//! | [`Condvar`] waits (`wait`, `wait_while`, `wait_timeout`, `wait_timeout_while`, `wait_until`) | yes | yes | yes | — (as `parking_lot`) |
//! | `try_lock_for` / `try_lock_until` (`lock_api::RawMutexTimed`) | yes, polling | yes, polling | yes, polling (no `lock_api`) | `try_{read,write,upgradable_read}_{for,until}`, polling (`RawRwLockTimed`, `RawRwLockUpgradeTimed`) |
//! | guard `unlock_fair` / `bump` (`lock_api::RawMutexFair`) | yes: to the queue head | yes: same as unlock (FIFO) | no | no |
//! | guard `map` / `try_map` | yes | yes | no | read and write guards |
//! | guard `unlocked` | yes | yes | yes | no |
//! | `upgradable_read`, `upgrade`, `downgrade` | — | — | — | yes (`lock_api::RawRwLockUpgradeDowngrade`) |
//! | `read_recursive` (safe while a writer waits) | — | — | — | yes |
//! | `is_locked` / `is_locked_exclusive` | `is_locked` | `is_locked` | `is_locked` | both |
//!
//! Timed waiters on the mutexes poll instead of queueing (a queued MCS or
//! ticket waiter cannot leave before it owns the lock); see
//! [`McsLock::try_lock_for`]. [`CnaLock`] has no raw lock type (its
//! guards carry their queue node), hence no `lock_api` traits and none of
//! the guard conversions that would need one.
//!
//! Each type's module ([`mcs`], [`cna`], [`ticket`], [`rwlock`],
//! [`condvar`], [`counter`]) documents its algorithm with a state table.
//!
//! Every lock here is written against the small `primitive` shim, so that
//! building with `RUSTFLAGS="--cfg loom"` model-checks it with
//! [loom](https://docs.rs/loom) (`numakit/tests/loom_sync.rs`).
//!
//! # Examples
//! ```
//! use numakit::sync::{CnaLock, McsLock, PartitionedCounter, RwLock};
//!
//! static STATE: McsLock<Vec<u32>> = McsLock::new(Vec::new());
//! static TABLE: CnaLock<u64> = CnaLock::new(0);
//! static CONFIG: RwLock<&str> = RwLock::new("fast");
//!
//! STATE.lock().push(1);
//! *TABLE.lock() += 1;
//! assert_eq!(*CONFIG.read(), "fast");
//! let hits = PartitionedCounter::new();
//! hits.inc();
//! assert_eq!(hits.sum(), 1);
//! ```

pub mod cna;
pub mod condvar;
pub mod counter;
pub mod mcs;
pub(crate) mod primitive;
pub mod rwlock;
pub mod ticket;
mod wrapper;

pub use cna::{CnaGuard, CnaLock, CnaNode, DEFAULT_LOCAL_HANDOFFS, NODE_REFRESH, POOL_NODES};
pub use condvar::{Condvar, CondvarGuard, WaitTimeoutResult};
pub use counter::{PartitionedCounter, REFRESH as COUNTER_CPU_REFRESH};
pub use mcs::{MappedMcsGuard, McsGuard, McsLock, McsNode, RawMcs, FAIR_AFTER};
pub use rwlock::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, RawRwLock, RwLock, RwLockReadGuard,
    RwLockUpgradableReadGuard, RwLockWriteGuard,
};
pub use ticket::{MappedTicketGuard, RawTicket, TicketGuard, TicketLock};

/// A value on its own 128-byte block (a cache line and its prefetch pair).
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);
