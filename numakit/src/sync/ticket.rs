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
use super::wrapper::mutex_wrapper;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

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
    raw RawTicket;
}
