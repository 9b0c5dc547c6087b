//! [`Signal`]: how one side of a ring sleeps until the other makes
//! progress, without costing the other side a fence per operation.
//!
//! A ring has two signals: `data` (consumers wait on it, producers notify
//! after publishing values) and `room` (producers wait, consumers notify
//! after freeing slots). The protocol is Dekker's, made asymmetric:
//!
//! | waiter | notifier (every publish) |
//! |---|---|
//! | `e = epoch` | publish the index or stamp |
//! | `waiters += 1` | light fence (a compiler fence) |
//! | heavy fence (`membarrier(2)`) | `if waiters != 0`: `epoch += 1`, wake |
//! | re-check the ring; if still not ready: `futex_wait(epoch, e)` | |
//! | `waiters -= 1` | |
//!
//! The heavy fence makes every running thread of the process execute a
//! full barrier, so either the waiter's re-check sees the publish, or the
//! notifier's load of `waiters` sees the waiter and bumps `epoch` — after
//! the waiter read `e`, so its `futex_wait` returns at once or is woken.
//! Where `membarrier` is not available (old kernels, seccomp filters) both
//! fences are full `SeqCst` fences; under `--cfg loom` too, and the futex
//! is modelled with loom's mutex and condition variable, so a lost wakeup
//! shows up as a deadlock in the models.
//!
//! With the `async` feature a signal also keeps the wakers of pending
//! futures and wakes them with the sleeping threads.

use super::primitive::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A wait/notify point of a ring.
pub(crate) struct Signal {
    /// Bumped by every notify that found a waiter; the futex word.
    epoch: AtomicU32,
    /// Threads (and futures) between registering and leaving a wait.
    waiters: AtomicU32,
    #[cfg(loom)]
    lock: loom::sync::Mutex<()>,
    #[cfg(loom)]
    cond: loom::sync::Condvar,
    #[cfg(feature = "async")]
    wakers: std::sync::Mutex<Vec<std::task::Waker>>,
}

impl Signal {
    pub(crate) fn new() -> Self {
        fences::init();
        Signal {
            epoch: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            #[cfg(loom)]
            lock: loom::sync::Mutex::new(()),
            #[cfg(loom)]
            cond: loom::sync::Condvar::new(),
            #[cfg(feature = "async")]
            wakers: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// After publishing progress: wake whoever waits for it. Costs a
    /// compiler fence and one load when nobody waits.
    #[inline]
    pub(crate) fn notify(&self) {
        fences::light();
        if self.waiters.load(Ordering::Acquire) != 0 {
            self.notify_slow();
        }
    }

    #[cold]
    fn notify_slow(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
        #[cfg(not(loom))]
        {
            // An error here (none is documented for a private wake) would
            // only mean nobody slept on the word.
            let _ = crate::sys::futex::futex_wake(self.epoch_word(), u32::MAX);
        }
        #[cfg(loom)]
        {
            drop(self.lock.lock().unwrap());
            self.cond.notify_all();
        }
        #[cfg(feature = "async")]
        {
            let wakers = {
                let mut listed = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
                let wakers = std::mem::take(&mut *listed);
                self.waiters
                    .fetch_sub(wakers.len() as u32, Ordering::Release);
                wakers
            };
            // Outside the lock: `wake` runs executor code.
            for w in wakers {
                w.wake();
            }
        }
    }

    #[cfg(not(loom))]
    fn epoch_word(&self) -> &std::sync::atomic::AtomicU32 {
        &self.epoch
    }

    /// Sleep until `ready()` returns `Some`, or until `timeout` has passed
    /// (then `None`). `ready` is called again after every wake-up; it must
    /// not block. A timeout too long to represent waits without limit.
    pub(crate) fn wait<R>(
        &self,
        timeout: Duration,
        mut ready: impl FnMut() -> Option<R>,
    ) -> Option<R> {
        if let Some(r) = ready() {
            return Some(r);
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let e = self.epoch.load(Ordering::Acquire);
            self.waiters.fetch_add(1, Ordering::SeqCst);
            // Leaves the wait (also if `ready` unwinds).
            let _registered = Registered(&self.waiters);
            fences::heavy();
            if let Some(r) = ready() {
                return Some(r);
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return None,
                },
            };
            self.sleep(e, left);
            drop(_registered);
            if let Some(r) = ready() {
                return Some(r);
            }
        }
    }

    /// Sleep while `epoch == e`, at most `left` (spurious returns are fine).
    #[cfg(not(loom))]
    fn sleep(&self, e: u32, left: Option<Duration>) {
        let _ = crate::sys::futex::futex_wait(self.epoch_word(), e, left);
    }

    /// Loom: a futex made of a mutex and a condition variable; timeouts
    /// are ignored, so a missed wake-up deadlocks the model.
    #[cfg(loom)]
    fn sleep(&self, e: u32, _left: Option<Duration>) {
        let g = self.lock.lock().unwrap();
        if self.epoch.load(Ordering::Acquire) == e {
            drop(self.cond.wait(g).unwrap());
        }
    }

    /// List `waker` to be woken by the next notify (once; a waker that
    /// will wake the same task is not listed twice). A listed waker counts
    /// as a waiter until a notify takes it. The caller re-checks the ring
    /// after this returns and before it returns `Pending`.
    #[cfg(feature = "async")]
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        {
            let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            if !wakers.iter().any(|w| w.will_wake(waker)) {
                wakers.push(waker.clone());
                self.waiters.fetch_add(1, Ordering::SeqCst);
            }
        }
        fences::heavy();
    }
}

/// Decrements the waiter count when a wait ends.
struct Registered<'a>(&'a AtomicU32);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// The two halves of the asymmetric fence.
mod fences {
    use super::{fence, Ordering};

    #[cfg(not(loom))]
    use std::sync::atomic::AtomicBool;

    /// Whether `membarrier` is registered for this process (set once,
    /// before any ring with a signal exists; never cleared).
    #[cfg(not(loom))]
    static ASYMMETRIC: AtomicBool = AtomicBool::new(false);
    #[cfg(not(loom))]
    static INIT: std::sync::Once = std::sync::Once::new();

    /// Try to register `membarrier` once per process.
    pub(super) fn init() {
        #[cfg(not(loom))]
        INIT.call_once(|| {
            if crate::sys::membarrier::membarrier_register_private_expedited().is_ok() {
                ASYMMETRIC.store(true, Ordering::Relaxed);
            }
        });
    }

    /// The notifier's half.
    #[inline(always)]
    pub(super) fn light() {
        #[cfg(not(loom))]
        if ASYMMETRIC.load(Ordering::Relaxed) {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            return;
        }
        fence(Ordering::SeqCst);
    }

    /// The waiter's half. Once registration succeeded the barrier
    /// command has no documented failure (`EPERM` is "not registered");
    /// a full fence is kept as the answer to an undocumented one.
    pub(super) fn heavy() {
        #[cfg(not(loom))]
        if ASYMMETRIC.load(Ordering::Relaxed)
            && crate::sys::membarrier::membarrier_private_expedited().is_ok()
        {
            return;
        }
        fence(Ordering::SeqCst);
    }
}
