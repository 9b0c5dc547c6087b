//! [`Condvar`]: a condition variable for numakit's mutex guards, on one
//! futex word.
//!
//! The design of std's futex condition variable, plus a waiter count so
//! that a notification nobody waits for costs no system call:
//!
//! | word      | written by | meaning |
//! |-----------|------------|---------|
//! | `seq`     | every notify (`fetch_add(1)`) | notification sequence; the futex word waiters sleep on |
//! | `waiters` | waiters, around their sleep | threads between registering (lock held) and waking; a notify with none skips the bump and the `FUTEX_WAKE` |
//!
//! A waiter, holding the lock, counts itself in `waiters`, reads `seq`,
//! releases the lock, and sleeps with `FUTEX_WAIT(seq, value read)`. A
//! notify bumps `seq` and wakes one or all sleepers. The kernel compares
//! the word under its own lock: a notify after the waiter read `seq`
//! changes the word, so the waiter either does not sleep or is woken — no
//! notification between "predicate false" and "asleep" is lost. The waiter
//! count is ordered by the mutex: a notifier that changed the shared state
//! under the lock (as the condition-variable contract requires) took that
//! lock after the waiter released it, so it sees the waiter counted.
//!
//! Waits may return spuriously (another waiter's notification, a signal, a
//! bump between two waits); [`Condvar::wait_while`] and
//! [`Condvar::wait_timeout_while`] loop on the predicate for you.
//!
//! One condition variable may be used with several mutexes (each wait
//! names its guard); that only costs spurious wake-ups. Nothing panics:
//! unlike `parking_lot`'s, using two mutexes is not reported.

use super::primitive::{futex, AtomicU32};
use std::fmt;
use std::ops::DerefMut;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

pub(crate) mod sealed {
    /// Only numakit implements [`CondvarGuard`](super::CondvarGuard).
    pub trait Sealed {}
}

/// A mutex guard a [`Condvar`] can wait with: it can release its lock for
/// the duration of the sleep and take it again.
///
/// Implemented for [`McsGuard`](super::McsGuard),
/// [`TicketGuard`](super::TicketGuard), [`CnaGuard`](super::CnaGuard) and
/// every [`lock_api::MutexGuard`] (so `lock_api::Mutex<RawMcs, T>`, and
/// `parking_lot::Mutex`, work too). Sealed: the condition variable relies
/// on the lock being released and re-taken exactly once per wait.
pub trait CondvarGuard: sealed::Sealed + DerefMut {
    /// Release the lock, run `f`, and take the lock again (also when `f`
    /// unwinds). Used by [`Condvar`]; the guards have public equivalents
    /// (`McsGuard::unlocked`).
    #[doc(hidden)]
    fn unlocked_for_wait<R>(&mut self, f: impl FnOnce() -> R) -> R;
}

impl<R: lock_api::RawMutex, T: ?Sized> sealed::Sealed for lock_api::MutexGuard<'_, R, T> {}

impl<R: lock_api::RawMutex, T: ?Sized> CondvarGuard for lock_api::MutexGuard<'_, R, T> {
    #[inline]
    fn unlocked_for_wait<U>(&mut self, f: impl FnOnce() -> U) -> U {
        lock_api::MutexGuard::unlocked(self, f)
    }
}

/// What a timed wait reports: whether it returned because its time ran
/// out (`parking_lot`'s and std's `WaitTimeoutResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait is known to have timed out (for the `_while` forms:
    /// the time ran out and the condition still held).
    #[inline]
    pub fn timed_out(self) -> bool {
        self.0
    }
}

/// A condition variable for numakit's mutexes: wait with a guard of
/// [`McsLock`](super::McsLock), [`TicketLock`](super::TicketLock),
/// [`CnaLock`](super::CnaLock) or any `lock_api::Mutex`; sleep on a futex
/// until notified. See the [module documentation](self) for the protocol.
///
/// Waits take the guard by `&mut` (as `parking_lot`): the lock is released
/// while the thread sleeps and held again when the wait returns, also when
/// it returns early. Spurious wake-ups happen; loop on your condition, or
/// use [`wait_while`](Self::wait_while).
///
/// # Examples
/// ```
/// use numakit::sync::{Condvar, McsLock};
/// use std::sync::Arc;
///
/// let pair = Arc::new((McsLock::new(false), Condvar::new()));
/// let pair2 = Arc::clone(&pair);
/// std::thread::spawn(move || {
///     let (lock, cv) = &*pair2;
///     *lock.lock() = true;
///     cv.notify_one();
/// });
/// let (lock, cv) = &*pair;
/// let mut ready = lock.lock();
/// cv.wait_while(&mut ready, |ready| !*ready);
/// assert!(*ready);
/// ```
pub struct Condvar {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl Condvar {
    /// A condition variable nobody waits on; `const`, so it can be a
    /// `static`.
    #[cfg(not(loom))]
    #[inline]
    pub const fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }
    /// A condition variable nobody waits on.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Wake one thread waiting on this condition variable (if any);
    /// whether one was woken.
    ///
    /// Call it after changing the shared state under the lock (holding the
    /// lock or not while notifying).
    #[inline]
    pub fn notify_one(&self) -> bool {
        self.notify(1) > 0
    }

    /// Wake every thread waiting on this condition variable; how many were
    /// woken.
    #[inline]
    pub fn notify_all(&self) -> usize {
        self.notify(u32::MAX)
    }

    #[inline]
    fn notify(&self, count: u32) -> usize {
        if self.waiters.load(Relaxed) == 0 {
            return 0;
        }
        self.seq.fetch_add(1, Relaxed);
        futex::wake(&self.seq, count)
    }

    /// Release the guard's lock, sleep until notified (or spuriously), take
    /// the lock again.
    ///
    /// # Examples
    /// ```
    /// use numakit::sync::{Condvar, TicketLock};
    /// let (lock, cv) = (TicketLock::new(0), Condvar::new());
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         *lock.lock() = 1;
    ///         cv.notify_all();
    ///     });
    ///     let mut n = lock.lock();
    ///     while *n == 0 {
    ///         cv.wait(&mut n);
    ///     }
    /// });
    /// ```
    #[inline]
    pub fn wait<G: CondvarGuard>(&self, guard: &mut G) {
        self.park(guard, None);
    }

    /// Wait until `condition` on the data is false: check it (lock held),
    /// and while it is true, [`wait`](Self::wait) and check again.
    /// Spurious wake-ups are absorbed.
    ///
    /// If `condition` panics the panic propagates with the lock held; the
    /// guard's drop releases it as usual, and the condition variable stays
    /// usable.
    pub fn wait_while<G, F>(&self, guard: &mut G, mut condition: F)
    where
        G: CondvarGuard,
        F: FnMut(&mut G::Target) -> bool,
    {
        while condition(&mut **guard) {
            self.wait(guard);
        }
    }

    /// As [`wait`](Self::wait), for at most `timeout`. A `timeout` too
    /// long to add to [`Instant::now`] (say [`Duration::MAX`]) waits
    /// without a limit; zero releases and re-takes the lock without
    /// sleeping.
    #[inline]
    pub fn wait_timeout<G: CondvarGuard>(
        &self,
        guard: &mut G,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_until(guard, deadline),
            None => {
                self.wait(guard);
                WaitTimeoutResult(false)
            }
        }
    }

    /// `parking_lot`'s name for [`wait_timeout`](Self::wait_timeout).
    #[inline]
    pub fn wait_for<G: CondvarGuard>(&self, guard: &mut G, timeout: Duration) -> WaitTimeoutResult {
        self.wait_timeout(guard, timeout)
    }

    /// As [`wait`](Self::wait), until `deadline` at the latest. A deadline
    /// in the past releases and re-takes the lock without sleeping and
    /// reports a timeout.
    pub fn wait_until<G: CondvarGuard>(
        &self,
        guard: &mut G,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        let left = deadline.saturating_duration_since(Instant::now());
        self.park(guard, Some(left));
        WaitTimeoutResult(Instant::now() >= deadline)
    }

    /// As [`wait_while`](Self::wait_while), for at most `timeout`;
    /// `timed_out()` is true when the time ran out with `condition` still
    /// true. Overlong timeouts wait without a limit, as in
    /// [`wait_timeout`](Self::wait_timeout).
    pub fn wait_timeout_while<G, F>(
        &self,
        guard: &mut G,
        timeout: Duration,
        condition: F,
    ) -> WaitTimeoutResult
    where
        G: CondvarGuard,
        F: FnMut(&mut G::Target) -> bool,
    {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_while_until(guard, deadline, condition),
            None => {
                self.wait_while(guard, condition);
                WaitTimeoutResult(false)
            }
        }
    }

    /// `parking_lot`'s name (and argument order) for
    /// [`wait_timeout_while`](Self::wait_timeout_while).
    #[inline]
    pub fn wait_while_for<G, F>(
        &self,
        guard: &mut G,
        condition: F,
        timeout: Duration,
    ) -> WaitTimeoutResult
    where
        G: CondvarGuard,
        F: FnMut(&mut G::Target) -> bool,
    {
        self.wait_timeout_while(guard, timeout, condition)
    }

    /// As [`wait_while`](Self::wait_while), until `deadline` at the latest;
    /// `timed_out()` is true when the deadline passed with `condition`
    /// still true. `condition` is checked at least once, also for a
    /// deadline in the past.
    pub fn wait_while_until<G, F>(
        &self,
        guard: &mut G,
        deadline: Instant,
        mut condition: F,
    ) -> WaitTimeoutResult
    where
        G: CondvarGuard,
        F: FnMut(&mut G::Target) -> bool,
    {
        loop {
            if !condition(&mut **guard) {
                return WaitTimeoutResult(false);
            }
            if Instant::now() >= deadline {
                return WaitTimeoutResult(true);
            }
            self.wait_until(guard, deadline);
        }
    }

    /// Count in, read the sequence, release the lock, sleep, count out,
    /// re-take the lock. No user code runs in between, so nothing can
    /// leave `waiters` counted.
    fn park<G: CondvarGuard>(&self, guard: &mut G, timeout: Option<Duration>) {
        self.waiters.fetch_add(1, Relaxed);
        let seq = self.seq.load(Relaxed);
        guard.unlocked_for_wait(|| {
            match timeout {
                None => futex::wait(&self.seq, seq),
                Some(t) => futex::wait_timeout(&self.seq, seq, t),
            }
            self.waiters.fetch_sub(1, Relaxed);
        });
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
