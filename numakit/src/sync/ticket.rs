//! [`TicketLock`]: a strictly FIFO lock of two counters.
//!
//! Each arriving thread draws a ticket (`next.fetch_add(1)`) and waits
//! until `serving` reaches it; the holder releases by incrementing
//! `serving`. Waiters spin in proportion to their distance from the front,
//! then park on `serving` with `futex(2)`; the releaser wakes sleepers only
//! when the `parked` count says there are any (and then all of them: the
//! futex cannot wake "the thread with ticket n", so each re-checks).
//!
//! | word      | written by         | meaning |
//! |-----------|--------------------|---------|
//! | `next`    | every locker (`fetch_add`) | the next ticket to hand out |
//! | `serving` | the holder, on unlock | the ticket that owns the lock; free when `serving == next` |
//! | `parked`  | waiters, around `FUTEX_WAIT` | sleepers on `serving`; unlock wakes only if non-zero |
//!
//! Strict FIFO is the point (and the price): every acquisition is a
//! handoff to the next ticket, so with more threads than CPUs throughput
//! drops to the rate at which the scheduler runs the next ticket's owner.
//! Prefer [`McsLock`](super::McsLock) unless you need FIFO order. No
//! poisoning: a panic while holding the guard releases the lock.

use super::primitive::{fence, futex, spin_loop, AtomicU32, SpinWait};
use super::wrapper::{lock_until, mutex_wrapper};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

/// Busy rounds (2, 4, … 64 pauses, more for waiters further back) and
/// `sched_yield`s before parking (see `cna::WAIT_YIELDS` for why FIFO
/// locks wait awake this long).
const BUSY: u32 = 6;
const YIELDS: u32 = 64;

/// The raw lock behind [`TicketLock`]; also a [`lock_api::RawMutex`].
pub struct RawTicket {
    next: AtomicU32,
    serving: AtomicU32,
    parked: AtomicU32,
}

impl RawTicket {
    /// An unlocked lock.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            next: AtomicU32::new(0),
            serving: AtomicU32::new(0),
            parked: AtomicU32::new(0),
        }
    }
    /// An unlocked lock.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            next: AtomicU32::new(0),
            serving: AtomicU32::new(0),
            parked: AtomicU32::new(0),
        }
    }

    /// Draw a ticket and wait for it.
    #[inline]
    pub fn lock(&self) {
        let ticket = self.next.fetch_add(1, Relaxed);
        if self.serving.load(Acquire) != ticket {
            self.wait_for(ticket);
        }
    }

    /// Take the lock if nobody holds or waits for it.
    #[inline]
    pub fn try_lock(&self) -> bool {
        let serving = self.serving.load(Acquire);
        // `serving` only grows towards `next`: if `next` still equals the
        // `serving` we read, the lock is free and the ticket is ours.
        self.next
            .compare_exchange(serving, serving.wrapping_add(1), Acquire, Relaxed)
            .is_ok()
    }

    /// Release the lock to the next ticket.
    ///
    /// # Safety
    /// The calling thread holds the lock.
    #[inline]
    pub unsafe fn unlock(&self) {
        self.serving.fetch_add(1, Release);
        // Store-load ordering against a waiter that registers in `parked`
        // and then reads `serving` (SeqCst fences on both sides): either
        // it sees the new `serving`, or we see it parked.
        fence(SeqCst);
        if self.parked.load(Relaxed) != 0 {
            futex::wake(&self.serving, u32::MAX);
        }
    }

    /// Acquire the lock, waiting at most `timeout`; whether it was
    /// acquired. A `timeout` that overflows [`Instant`] (such as
    /// [`Duration::MAX`]) waits like [`lock`](Self::lock).
    ///
    /// A timed waiter draws no ticket (a drawn ticket cannot be given
    /// back): it polls [`try_lock`](Self::try_lock), which succeeds only
    /// when nobody holds or waits for the lock, spinning briefly and then
    /// napping up to 1 ms between tries. Under steady contention it can
    /// therefore time out while ticket holders keep the lock busy.
    #[inline]
    pub fn try_lock_for(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.try_lock_until(deadline),
            None => {
                self.lock();
                true
            }
        }
    }

    /// Acquire the lock, waiting until `deadline` at the latest; whether
    /// it was acquired. Tries at least once, also for a past deadline.
    #[inline]
    pub fn try_lock_until(&self, deadline: Instant) -> bool {
        self.try_lock() || lock_until(deadline, || self.try_lock())
    }

    /// The same as [`unlock`](Self::unlock): every release already goes to
    /// the next ticket in FIFO order.
    ///
    /// # Safety
    /// The calling thread holds the lock.
    #[inline]
    pub unsafe fn unlock_fair(&self) {
        // SAFETY: the caller holds the lock.
        unsafe { self.unlock() }
    }

    /// If other tickets wait, release to the next one and draw a new
    /// ticket (behind everyone waiting now); nothing otherwise.
    ///
    /// # Safety
    /// The calling thread holds the lock; it holds it again on return.
    #[inline]
    pub unsafe fn bump(&self) {
        // We hold ticket `serving`; others wait when `next` is past it + 1.
        let serving = self.serving.load(Relaxed);
        if self.next.load(Relaxed).wrapping_sub(serving) > 1 {
            // SAFETY: the caller holds the lock.
            unsafe { self.unlock() };
            self.lock();
        }
    }

    /// Whether the lock is held (or waited for) now.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.next.load(Relaxed) != self.serving.load(Relaxed)
    }

    #[cold]
    fn wait_for(&self, ticket: u32) {
        let mut wait = SpinWait::new();
        loop {
            let serving = self.serving.load(Acquire);
            if serving == ticket {
                return;
            }
            if !wait.spin(BUSY, YIELDS) {
                break;
            }
            // Proportional backoff: the further back, the less we poll.
            for _ in 1..ticket.wrapping_sub(serving).min(16) {
                spin_loop();
            }
        }
        self.parked.fetch_add(1, Relaxed);
        fence(SeqCst); // pairs with the fence in `unlock`
        loop {
            let serving = self.serving.load(Acquire);
            if serving == ticket {
                break;
            }
            futex::wait(&self.serving, serving);
        }
        self.parked.fetch_sub(1, Relaxed);
    }
}

impl Default for RawTicket {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RawTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTicket")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

#[cfg(not(loom))]
// SAFETY: one ticket is served at a time (Acquire on the `serving` load
// that matches, Release on the increment in unlock).
unsafe impl lock_api::RawMutex for RawTicket {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawTicket::new();
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        RawTicket::lock(self)
    }
    #[inline]
    fn try_lock(&self) -> bool {
        RawTicket::try_lock(self)
    }
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: lock_api calls this only for a held lock.
        unsafe { RawTicket::unlock(self) }
    }
    #[inline]
    fn is_locked(&self) -> bool {
        RawTicket::is_locked(self)
    }
}

#[cfg(not(loom))]
// SAFETY: `unlock_fair` is `unlock`; `bump` returns with the lock held.
unsafe impl lock_api::RawMutexFair for RawTicket {
    #[inline]
    unsafe fn unlock_fair(&self) {
        // SAFETY: lock_api calls this only for a held lock.
        unsafe { RawTicket::unlock_fair(self) }
    }
    #[inline]
    unsafe fn bump(&self) {
        // SAFETY: lock_api calls this only for a held lock.
        unsafe { RawTicket::bump(self) }
    }
}

#[cfg(not(loom))]
// SAFETY: the timed acquisitions succeed only through `try_lock` (or
// `lock` for an unbounded timeout).
unsafe impl lock_api::RawMutexTimed for RawTicket {
    type Duration = Duration;
    type Instant = Instant;
    #[inline]
    fn try_lock_for(&self, timeout: Duration) -> bool {
        RawTicket::try_lock_for(self, timeout)
    }
    #[inline]
    fn try_lock_until(&self, deadline: Instant) -> bool {
        RawTicket::try_lock_until(self, deadline)
    }
}

mutex_wrapper! {
    /// A FIFO ticket lock: threads get the lock in the order they asked for
    /// it. See the [module documentation](self).
    ///
    /// # Examples
    /// ```
    /// use numakit::sync::TicketLock;
    /// let lock = TicketLock::new(vec![1]);
    /// lock.lock().push(2);
    /// assert_eq!(lock.try_lock().map(|g| g.len()), Some(2));
    /// ```
    lock TicketLock;
    /// Exclusive access to the data of a [`TicketLock`]; releases the lock
    /// when dropped. `!Send`.
    guard TicketGuard;
    /// A guard of a part of a [`TicketLock`]'s data, from
    /// [`TicketGuard::map`]; releases the lock when dropped. `!Send`.
    mapped MappedTicketGuard;
    raw RawTicket;
}
