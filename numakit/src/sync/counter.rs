//! [`PartitionedCounter`]: a counter sharded per CPU, for statistics that
//! many threads bump and few read.
//!
//! Each shard is an atomic on its own 128-byte block. A thread adds to the
//! shard of the CPU it runs on, so concurrent adders on different CPUs
//! never share a cache line; reading sums all shards. The CPU comes from
//! `getcpu(2)`, cached per thread and refreshed every [`REFRESH`]
//! operations (a thread that migrates keeps using its old shard until then,
//! which costs speed, never correctness: shards are atomics).
//!
//! [`sum`](PartitionedCounter::sum) is not a snapshot: adds that race with
//! it may or may not be counted, but once all adders have finished (joined,
//! or otherwise synchronised with the reader) the sum is exact. Arithmetic
//! wraps at `i64`'s bounds, like `AtomicI64::fetch_add`.

use super::primitive::{AtomicI64, Ordering::Relaxed};
use super::Padded;
use std::fmt;

/// Operations between two `getcpu(2)` calls of one thread.
pub const REFRESH: u32 = 256;

/// Shards when the CPU count cannot be read.
#[cfg(not(loom))]
const FALLBACK_SHARDS: usize = 64;

#[cfg(not(loom))]
std::thread_local! {
    /// Cached CPU (high 32 bits) and operations left before the next
    /// `getcpu` (low 32 bits), in one word: one load and one store per
    /// operation.
    static HINT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The calling thread's CPU, from the per-thread cache.
#[cfg(not(loom))]
#[inline(always)]
fn cpu_hint() -> usize {
    HINT.try_with(|h| {
        let v = h.get();
        if v as u32 != 0 {
            h.set(v - 1);
            (v >> 32) as usize
        } else {
            let cpu = crate::sys::sched::getcpu().map_or(0, |(cpu, _)| cpu);
            h.set(u64::from(cpu) << 32 | u64::from(REFRESH - 1));
            cpu as usize
        }
    })
    .unwrap_or(0)
}

/// Under loom: each modelled thread takes the next shard on first use
/// (deterministic per execution, as loom requires).
#[cfg(loom)]
fn cpu_hint() -> usize {
    use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    loom::lazy_static! {
        static ref NEXT: AtomicUsize = AtomicUsize::new(0);
    }
    loom::thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed);
    }
    SHARD.with(|s| *s)
}

/// Number of possible CPU ids (highest configured id + 1), read once.
#[cfg(not(loom))]
fn cpu_slots() -> usize {
    static SLOTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SLOTS.get_or_init(|| {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| crate::topology::CpuSet::parse_list(s.trim()).ok())
                .and_then(|set| set.iter().map(|c| c.get() as usize + 1).max())
        };
        read("/sys/devices/system/cpu/possible")
            .or_else(|| read("/sys/devices/system/cpu/online"))
            .unwrap_or(FALLBACK_SHARDS)
    })
}

#[cfg(loom)]
fn cpu_slots() -> usize {
    2
}

/// A counter with one cache-padded shard per CPU: `add`/`inc`/`dec` touch
/// only the current CPU's shard, [`sum`](Self::sum) reads them all. See
/// the [module documentation](self).
///
/// # Examples
/// ```
/// use numakit::sync::PartitionedCounter;
/// use std::sync::Arc;
///
/// let hits = Arc::new(PartitionedCounter::new());
/// let workers: Vec<_> = (0..4)
///     .map(|_| {
///         let hits = Arc::clone(&hits);
///         std::thread::spawn(move || (0..1000).for_each(|_| hits.inc()))
///     })
///     .collect();
/// workers.into_iter().for_each(|w| w.join().unwrap());
/// assert_eq!(hits.sum(), 4000);
/// ```
pub struct PartitionedCounter {
    shards: Box<[Padded<AtomicI64>]>,
}

impl PartitionedCounter {
    /// A zero counter with one shard per possible CPU of the machine
    /// (`/sys/devices/system/cpu/possible`, read once per process; rounded
    /// up to a power of two).
    pub fn new() -> Self {
        Self::with_shards(cpu_slots())
    }

    /// A zero counter with `shards` shards, rounded up to a power of two
    /// (at least one). Fewer shards than CPUs make CPUs share shards
    /// (correct, slower).
    pub fn with_shards(shards: usize) -> Self {
        let n = shards.clamp(1, 1 << 16).next_power_of_two();
        Self {
            shards: (0..n).map(|_| Padded(AtomicI64::new(0))).collect(),
        }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    fn shard(&self) -> &AtomicI64 {
        // A power of two: masking instead of a division.
        let i = cpu_hint() & (self.shards.len() - 1);
        &self.shards[i].0
    }

    /// Add `delta` (negative to subtract) to the current CPU's shard.
    #[inline]
    pub fn add(&self, delta: i64) {
        self.shard().fetch_add(delta, Relaxed);
    }

    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtract one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// The sum of all shards (wrapping). Not a snapshot while adders run;
    /// see the [module documentation](self).
    pub fn sum(&self) -> i64 {
        self.shards
            .iter()
            .fold(0i64, |acc, s| acc.wrapping_add(s.0.load(Relaxed)))
    }

    /// Set every shard to zero and return the sum they held (adds racing
    /// with the reset land either in the returned sum or after it, never
    /// lost).
    pub fn take(&self) -> i64 {
        self.shards
            .iter()
            .fold(0i64, |acc, s| acc.wrapping_add(s.0.swap(0, Relaxed)))
    }
}

impl Default for PartitionedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PartitionedCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedCounter")
            .field("sum", &self.sum())
            .field("shards", &self.shards())
            .finish()
    }
}
