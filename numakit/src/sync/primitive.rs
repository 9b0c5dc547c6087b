//! The primitives the locks are written against, so that `--cfg loom`
//! swaps in loom's models (the crossbeam / tokio `loom` pattern).
//!
//! Everything concurrent in [`crate::sync`] goes through this module:
//! atomics, the busy-wait hint, yielding, the futex, the fairness clock and
//! the spin budgets. Built normally it is `std` plus `crate::sys::futex`;
//! built with `RUSTFLAGS="--cfg loom"` it is loom's atomics, a futex modelled
//! with loom's `Mutex` + `Condvar` (exact `FUTEX_WAIT`/`FUTEX_WAKE`
//! semantics, so a lost wake-up shows up as a deadlock), a fairness clock
//! that counts instead of reading the time, and spin budgets of zero so
//! that the park/wake paths are explored.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicI64, AtomicPtr, AtomicU32};
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicI64, AtomicPtr, AtomicU32};

/// A spin budget: `n` iterations normally, none under loom (so that the
/// model reaches the parking code without spending its preemption bound on
/// spins).
#[inline]
pub(crate) const fn budget(n: u32) -> u32 {
    if cfg!(loom) {
        0
    } else {
        n
    }
}

/// Tell the CPU (or loom's scheduler) that this is a busy-wait loop.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::hint::spin_loop();
}

/// Give the rest of the time slice away (`sched_yield(2)` through std).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Backoff of a waiter that watches a shared word (parking_lot's
/// `SpinWait` shape): first busy-waits of 2, 4, 8, … pause instructions
/// between two looks, so that the watched cache line is read rarely and
/// the owner keeps it; then `sched_yield`s, which under oversubscription
/// give the CPU to a preempted lock holder. After that the caller parks.
pub(crate) struct SpinWait {
    round: u32,
}

impl SpinWait {
    #[inline]
    pub(crate) const fn new() -> Self {
        Self { round: 0 }
    }

    /// Wait one round: busy rounds first (`busy` of them, the i-th waiting
    /// 2^i pauses), then `yields` yields. `false` once both are spent.
    #[inline]
    pub(crate) fn spin(&mut self, busy: u32, yields: u32) -> bool {
        if cfg!(loom) {
            return false;
        }
        if self.round < busy {
            self.round += 1;
            for _ in 0..(1u32 << self.round.min(10)) {
                spin_loop();
            }
            true
        } else if self.round < busy + yields {
            self.round += 1;
            yield_now();
            true
        } else {
            false
        }
    }
}

/// Sleep for about `d` (plus the thread's timer slack, 50 µs by default);
/// a yield under loom, where time is not modelled.
#[inline]
pub(crate) fn nap(d: std::time::Duration) {
    #[cfg(not(loom))]
    std::thread::sleep(d);
    #[cfg(loom)]
    {
        let _ = d;
        loom::thread::yield_now();
    }
}

/// Bounded patience of a waiter: reports once it has waited `limit` since
/// its first check. Under loom it counts checks instead (time is not
/// modelled, and a model must be deterministic): it expires at the fourth,
/// so an McsLock head parks once and naps once before it claims the lock.
pub(crate) struct Patience {
    #[cfg(not(loom))]
    since: Option<std::time::Instant>,
    #[cfg(loom)]
    checks: u32,
}

impl Patience {
    #[inline]
    pub(crate) const fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            since: None,
            #[cfg(loom)]
            checks: 0,
        }
    }

    /// Whether `limit` has passed since the first call.
    pub(crate) fn expired(&mut self, limit: std::time::Duration) -> bool {
        #[cfg(not(loom))]
        {
            let now = std::time::Instant::now();
            match self.since {
                None => {
                    self.since = Some(now);
                    false
                }
                Some(since) => now.duration_since(since) >= limit,
            }
        }
        #[cfg(loom)]
        {
            let _ = limit;
            self.checks += 1;
            self.checks >= 4
        }
    }
}

/// Futex wait and wake on a 32-bit atomic of this module.
pub(crate) mod futex {
    use super::AtomicU32;

    /// Sleep while `*word == expected` (returns at once otherwise). May
    /// return spuriously: callers re-check their condition in a loop.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn wait(word: &AtomicU32, expected: u32) {
        // EAGAIN (value changed), EINTR (signal) and spurious returns all
        // mean "look again", which every caller does.
        let _ = crate::sys::futex::futex_wait(word, expected, None);
    }

    /// Sleep while `*word == expected`, for at most `timeout` (returns at
    /// once for a zero timeout or another value). May return early or
    /// spuriously: callers re-check their condition and their deadline.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn wait_timeout(word: &AtomicU32, expected: u32, timeout: std::time::Duration) {
        if timeout.is_zero() {
            return;
        }
        // ETIMEDOUT, EAGAIN, EINTR: all mean "look again" to the callers.
        let _ = crate::sys::futex::futex_wait(word, expected, Some(timeout));
    }

    /// Wake up to `count` threads sleeping on `word`; returns how many.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn wake(word: &AtomicU32, count: u32) -> usize {
        // FUTEX_WAKE fails only for a misaligned or unmapped address
        // (EINVAL/EFAULT), which a live `&AtomicU32` never is.
        crate::sys::futex::futex_wake(word, count).unwrap_or(0)
    }

    #[cfg(loom)]
    pub(crate) use model::{wait, wake};

    /// Under loom time is not modelled: a timed wait is a timeout that
    /// expires at once (a yield), the earliest a real one can return. The
    /// callers' "woken or timed out" paths are thus both explored.
    #[cfg(loom)]
    pub(crate) fn wait_timeout(_word: &AtomicU32, _expected: u32, _timeout: std::time::Duration) {
        loom::thread::yield_now();
    }

    /// The futex as loom sees it: one table of sleepers, guarded by a loom
    /// mutex, with a condition variable to sleep on. `wait` checks the
    /// word under the table lock and `wake` marks sleepers under it, which
    /// is the kernel's guarantee: a waker that changes the word and then
    /// wakes cannot miss a sleeper that saw the old value.
    #[cfg(loom)]
    mod model {
        use super::AtomicU32;
        use crate::sync::primitive::Ordering;
        use loom::sync::{Condvar, Mutex};

        struct Sleeper {
            addr: usize,
            id: usize,
            woken: bool,
        }

        #[derive(Default)]
        struct Table {
            sleepers: Vec<Sleeper>,
            next_id: usize,
        }

        loom::lazy_static! {
            static ref FUTEX: (Mutex<Table>, Condvar) = (Mutex::new(Table::default()), Condvar::new());
        }

        pub(crate) fn wait(word: &AtomicU32, expected: u32) {
            let (lock, cv) = &*FUTEX;
            let mut table = lock.lock().unwrap();
            if word.load(Ordering::SeqCst) != expected {
                return;
            }
            let addr = word as *const AtomicU32 as usize;
            let id = table.next_id;
            table.next_id += 1;
            table.sleepers.push(Sleeper {
                addr,
                id,
                woken: false,
            });
            loop {
                table = cv.wait(table).unwrap();
                let pos = table.sleepers.iter().position(|s| s.id == id).unwrap();
                if table.sleepers[pos].woken {
                    table.sleepers.remove(pos);
                    return;
                }
            }
        }

        pub(crate) fn wake(word: &AtomicU32, count: u32) -> usize {
            let (lock, cv) = &*FUTEX;
            let mut table = lock.lock().unwrap();
            let addr = word as *const AtomicU32 as usize;
            let mut woken = 0;
            for s in table.sleepers.iter_mut() {
                if woken == count as usize {
                    break;
                }
                if s.addr == addr && !s.woken {
                    s.woken = true;
                    woken += 1;
                }
            }
            if woken > 0 {
                cv.notify_all();
            }
            woken
        }
    }
}
