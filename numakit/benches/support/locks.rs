//! Lock and counter workloads shared by the `locks` and `compare` benches,
//! so that their figures measure the same code.
//!
//! Workload: T threads share one lock whose critical section is one
//! increment of a shared counter; they run until the counter reaches a
//! total, or for a fixed time (the limit drops to zero when the time is
//! up). Throughput is acquisitions per second over all threads; fairness is
//! the slowest thread's acquisitions divided by the mean (1.0 = perfectly
//! even).
//!
//! Included with `#[path = "support/locks.rs"] mod locks_support;`.

// Each bench target uses a subset of these workloads.
#![allow(dead_code)]

use numakit::sync::{CnaLock, Condvar, McsLock, PartitionedCounter, RwLock, TicketLock};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// Thread counts every lock and counter is measured at.
pub const THREADS: [usize; 4] = [1, 2, 4, 8];

/// A lock protecting one `u64`; `step` locks, stops at `limit`, increments.
pub trait Contender: Send + Sync + 'static {
    const NAME: &'static str;
    fn new() -> Self;
    /// Lock; if the counter is below `limit` increment it and return true.
    fn step(&self, limit: &AtomicU64) -> bool;
}

/// The critical section: if `v` is below `limit`, increment it and return
/// true.
#[inline]
fn bump_below(v: &mut u64, limit: &AtomicU64) -> bool {
    if *v >= limit.load(Ordering::Relaxed) {
        return false;
    }
    *v += 1;
    true
}

/// `Contender` for a lock with a guard that derefs to the `u64`: `$lock`
/// takes the lock `$l` (`&Self`) and yields the guard.
macro_rules! guarded {
    ($ty:ty, $name:literal, |$l:ident| $lock:expr) => {
        impl Contender for $ty {
            const NAME: &'static str = $name;
            fn new() -> Self {
                <$ty>::new(0)
            }
            #[inline]
            fn step(&self, limit: &AtomicU64) -> bool {
                let $l = self;
                bump_below(&mut $lock, limit)
            }
        }
    };
}
guarded!(Mutex<u64>, "std::Mutex", |l| l.lock().unwrap());
guarded!(parking_lot::Mutex<u64>, "parking_lot", |l| l.lock());
guarded!(
    mcslock::barging::spins::Mutex<u64>,
    "mcslock barging",
    |l| l.lock()
);
guarded!(McsLock<u64>, "numakit McsLock", |l| l.lock());
guarded!(CnaLock<u64>, "numakit CnaLock", |l| l.lock());
guarded!(TicketLock<u64>, "numakit TicketLock", |l| l.lock());
guarded!(RwLock<u64>, "numakit RwLock (write)", |l| l.write());

impl Contender for mcslock::raw::spins::Mutex<u64> {
    const NAME: &'static str = "mcslock FIFO";
    fn new() -> Self {
        mcslock::raw::spins::Mutex::new(0)
    }
    #[inline]
    fn step(&self, limit: &AtomicU64) -> bool {
        self.lock_then(|g| bump_below(g, limit))
    }
}

/// Test-and-test-and-set spinlock with the CPU's spin hint.
pub struct Tas {
    locked: AtomicBool,
    value: UnsafeCell<u64>,
}
// SAFETY: `value` is accessed only while `locked` is held.
unsafe impl Sync for Tas {}

impl Contender for Tas {
    const NAME: &'static str = "TAS spin";
    fn new() -> Self {
        Tas {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(0),
        }
    }
    #[inline]
    fn step(&self, limit: &AtomicU64) -> bool {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
        // SAFETY: we hold the lock, so no other reference to `value` exists.
        let ok = bump_below(unsafe { &mut *self.value.get() }, limit);
        self.locked.store(false, Ordering::Release);
        ok
    }
}

/// Counters: `step` adds one to the shard/word; the limit is per thread.
pub trait Counter: Send + Sync + 'static {
    const NAME: &'static str;
    fn new() -> Self;
    fn inc(&self);
}

impl Counter for AtomicU64 {
    const NAME: &'static str = "AtomicU64 fetch_add";
    fn new() -> Self {
        AtomicU64::new(0)
    }
    #[inline]
    fn inc(&self) {
        self.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counter for PartitionedCounter {
    const NAME: &'static str = "numakit PartitionedCounter";
    fn new() -> Self {
        PartitionedCounter::new()
    }
    #[inline]
    fn inc(&self) {
        PartitionedCounter::inc(self);
    }
}

/// One measured run.
#[derive(Clone, Copy)]
pub struct Sample {
    /// Acquisitions (or increments) over all threads.
    pub ops: u64,
    /// Wall time of the run, from the threads' release to the last join.
    pub secs: f64,
    /// Slowest thread's count divided by the mean.
    pub fairness: f64,
}

/// The slowest thread's count divided by the mean (1.0 = even).
pub fn fairness(counts: &[u64]) -> f64 {
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    let min = counts.iter().copied().min().unwrap_or(0) as f64;
    if mean > 0.0 {
        min / mean
    } else {
        0.0
    }
}

/// Runs `work` on `threads` threads released together; after `duration`
/// (if given) calls `stop`. Returns each thread's count (what `work`
/// returned) and the wall time from the release to the last join.
fn contend<W: Fn() -> u64 + Sync>(
    threads: usize,
    work: W,
    duration: Option<Duration>,
    stop: impl FnOnce(),
) -> (Vec<u64>, f64) {
    contend_placed(threads, &|_| {}, work, duration, stop)
}

/// As `contend`, with `place(i)` called first on worker `i` (to pin it).
fn contend_placed<W: Fn() -> u64 + Sync>(
    threads: usize,
    place: &(dyn Fn(usize) + Sync),
    work: W,
    duration: Option<Duration>,
    stop: impl FnOnce(),
) -> (Vec<u64>, f64) {
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let work = &work;
                let start = &start;
                s.spawn(move || {
                    place(i);
                    start.wait();
                    work()
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        if let Some(d) = duration {
            std::thread::sleep(d);
            stop();
        }
        let counts = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (counts, t0.elapsed().as_secs_f64())
    })
}

/// `threads` threads contend on one lock until it has been taken `total`
/// times (`duration` is `None`: the `locks` bench), or for `duration` (the
/// limit drops to zero when the time is up: the `compare` bench).
pub fn run_lock<L: Contender>(threads: usize, total: u64, duration: Option<Duration>) -> Sample {
    run_lock_placed::<L>(threads, &|_| {}, total, duration)
}

/// As `run_lock`, with `place(i)` called first on worker `i` (to pin it).
pub fn run_lock_placed<L: Contender>(
    threads: usize,
    place: &(dyn Fn(usize) + Sync),
    total: u64,
    duration: Option<Duration>,
) -> Sample {
    // The lock and the limit each in a heap block of its own, not on this
    // thread's stack next to each other.
    let lock = Box::new(L::new());
    let limit = Box::new(AtomicU64::new(if duration.is_some() {
        u64::MAX
    } else {
        total
    }));
    let work = || {
        let mut mine = 0u64;
        while lock.step(&limit) {
            mine += 1;
        }
        mine
    };
    let (counts, secs) = contend_placed(threads, place, work, duration, || {
        limit.store(0, Ordering::Relaxed)
    });
    let ops = counts.iter().sum::<u64>();
    if duration.is_none() {
        assert_eq!(ops, total, "{} lost updates", L::NAME);
    }
    Sample {
        ops,
        secs,
        fairness: fairness(&counts),
    }
}

/// `threads` threads add `total / threads` each (`duration` is `None`), or
/// add for `duration`.
pub fn run_counter<C: Counter>(threads: usize, total: u64, duration: Option<Duration>) -> Sample {
    let per = if duration.is_some() {
        u64::MAX
    } else {
        (total / threads as u64).max(1)
    };
    let counter = Box::new(C::new());
    let stop = Box::new(AtomicBool::new(false));
    let work = || {
        let mut done = 0u64;
        while done < per && !stop.load(Ordering::Relaxed) {
            for _ in 0..1024u64.min(per - done) {
                counter.inc();
            }
            done += 1024u64.min(per - done);
        }
        done
    };
    let (counts, secs) = contend(threads, work, duration, || {
        stop.store(true, Ordering::Relaxed)
    });
    Sample {
        ops: counts.iter().sum(),
        secs,
        fairness: fairness(&counts),
    }
}

/// A mutex and a condition variable for the ping-pong workload.
pub trait PingPong: Send + Sync + 'static {
    const NAME: &'static str;
    fn new() -> Self;
    /// Lock, wait until the counter is `want`, increment it, unlock, and
    /// notify one waiter.
    fn turn(&self, want: u64);
}

impl PingPong for (McsLock<u64>, Condvar) {
    const NAME: &'static str = "numakit Condvar+McsLock";
    fn new() -> Self {
        (McsLock::new(0), Condvar::new())
    }
    #[inline]
    fn turn(&self, want: u64) {
        let mut g = self.0.lock();
        self.1.wait_while(&mut g, |v| *v != want);
        *g += 1;
        drop(g);
        self.1.notify_one();
    }
}

impl PingPong for (parking_lot::Mutex<u64>, parking_lot::Condvar) {
    const NAME: &'static str = "parking_lot Condvar";
    fn new() -> Self {
        (parking_lot::Mutex::new(0), parking_lot::Condvar::new())
    }
    #[inline]
    fn turn(&self, want: u64) {
        let mut g = self.0.lock();
        self.1.wait_while(&mut g, |v| *v != want);
        *g += 1;
        drop(g);
        self.1.notify_one();
    }
}

impl PingPong for (Mutex<u64>, std::sync::Condvar) {
    const NAME: &'static str = "std Condvar";
    fn new() -> Self {
        (Mutex::new(0), std::sync::Condvar::new())
    }
    #[inline]
    fn turn(&self, want: u64) {
        let g = self.0.lock().unwrap();
        let mut g = self.1.wait_while(g, |v| *v != want).unwrap();
        *g += 1;
        drop(g);
        self.1.notify_one();
    }
}

/// Handoffs per ping-pong run.
pub const PING_PONG_ROUNDS: u64 = 1000;

/// Two threads hand a counter back and forth through `P` until it reaches
/// `2 * rounds` (each waits for its turn on the condition variable); the
/// wall time of the run. Every handoff is a notify and a wake-up.
pub fn ping_pong<P: PingPong>(rounds: u64) -> Duration {
    let pair = Box::new(P::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let p = &*pair;
        s.spawn(move || (0..rounds).for_each(|i| p.turn(2 * i + 1)));
        (0..rounds).for_each(|i| p.turn(2 * i));
    });
    t0.elapsed()
}
