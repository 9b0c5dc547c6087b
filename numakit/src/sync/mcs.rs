//! [`McsLock`]: a queue lock with local spinning, barging, futex parking
//! and a time bound on unfairness.
//!
//! # Why not a plain MCS lock
//!
//! A textbook MCS lock hands the lock from each holder to its queue
//! successor. That is fair and keeps every waiter on its own cache line,
//! but it pays one cross-core transfer per acquisition, and once threads
//! outnumber CPUs it collapses: the successor may be preempted (or
//! parked), and the lock stays unowned until the scheduler runs it, while
//! everyone behind it waits too. Measured on a 2-core machine, a strict
//! FIFO MCS lock drops from 188 to 0.2 million acquisitions per second at 4
//! threads.
//!
//! So `RawMcs` keeps the MCS queue for *waiting* and decouples it from
//! *owning* (the design of Linux's qspinlock, plus parking):
//!
//! - The lock word holds `LOCKED`; a running thread may take the lock
//!   whenever it is free (*barging*), so a preempted or parked waiter never
//!   stalls the lock: whoever runs, works.
//! - Waiters queue MCS-style. Only the queue **head** watches the lock
//!   word; every other waiter spins on the `status` word of its own queue
//!   node (its own cache line), and the thread that leaves the head
//!   position writes only to its successor's node.
//! - Waiters spin for a short budget, then park with `futex(2)`: queued
//!   waiters on their node's `status`, the head on the lock word. The
//!   releaser issues a `FUTEX_WAKE` only when the waiter recorded that it
//!   parked (`HEAD_PARKED` in the lock word, `PARKED` in a node).
//! - Barging is unfair, so it is bounded in time: a head that has waited
//!   [`FAIR_AFTER`] sets `HANDOFF`; from then on nobody barges, and the
//!   lock goes to the head at the next release. Every queued thread thus
//!   gets the lock within about (waiters ahead + 1) × (`FAIR_AFTER` + one
//!   critical section + one wake-up).
//!
//! A queue node is needed only while its thread waits: the head leaves the
//! queue when it takes the lock. So [`McsLock::lock`] keeps the node in its
//! own stack frame (no thread-local pool, nothing to run out of, nesting
//! any number of locks works, and the node is in the waiting thread's
//! memory), and [`McsLock::lock_with`] lets the caller supply it.
//!
//! # State
//!
//! Lock word (`state: u32`, also the head's futex word) and queue tail
//! (`tail: *Node`, in the same 16 bytes):
//!
//! | `state` bit   | set by                                  | cleared by                               | meaning |
//! |---------------|-----------------------------------------|------------------------------------------|---------|
//! | `LOCKED`      | lock (fast path CAS `0 → LOCKED`, barging CAS, head CAS) | unlock                 | a thread owns the lock |
//! | `HEAD_PARKED` | the queue head, before `FUTEX_WAIT` on `state` | unlock (which then wakes the head), the head when it takes the lock | the head sleeps: the releaser must wake it |
//! | `HANDOFF`     | the queue head after waiting `FAIR_AFTER` | the head when it takes the lock | no barging: the next owner is the head |
//!
//! | `tail`        | meaning |
//! |---------------|---------|
//! | null          | nobody queued |
//! | node          | last queued waiter (an arriving waiter swaps itself in and links `prev.next`) |
//!
//! Queue node `status` (a waiter's own cache line and futex word):
//!
//! | from      | to        | by          | when |
//! |-----------|-----------|-------------|------|
//! | `WAITING` | `HEAD`    | predecessor | it took the lock; the waiter was still spinning (CAS, no syscall) |
//! | `WAITING` | `PARKED`  | the waiter  | spin budget spent; then `FUTEX_WAIT(PARKED)` |
//! | `PARKED`  | `WAKING`  | predecessor | it saw `PARKED`: it will wake the waiter |
//! | `WAKING`  | `HEAD`    | predecessor | after its `FUTEX_WAKE`; the last access to the node |
//!
//! `WAKING` exists so that the predecessor never touches the node after the
//! waiter may have left (and its stack frame with the node): the waiter
//! leaves only on `HEAD`, which is the predecessor's last write.
//!
//! # Oversubscription
//!
//! With more threads than CPUs the lock degrades gracefully: the owner
//! keeps re-taking the lock while the others sleep (no cache-line
//! transfers, no context switch per acquisition), and the `HANDOFF` bound
//! rotates ownership every [`FAIR_AFTER`]. The one remaining stall is a
//! waiter preempted between swapping itself into `tail` and linking
//! `prev.next` (two instructions): the head, having taken the lock, waits
//! for that link before it can leave. That window is the same as in
//! Linux's qspinlock. And fairness has a price there: a head that claimed
//! the lock (`HANDOFF`) and is then preempted leaves it idle until it runs
//! again, at most once per [`FAIR_AFTER`].
//!
//! # Poisoning
//!
//! None: a guard dropped during a panic releases the lock like any other
//! drop, and the data is whatever the panicking thread left (as
//! `parking_lot`).

use super::primitive::{
    futex, nap, spin_loop, yield_now, AtomicPtr, AtomicU32, Patience, SpinWait,
};
use super::wrapper::{lock_until, mutex_wrapper};
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

/// How long the queue head lets running threads barge before it claims the
/// lock for itself (`HANDOFF`). A tuning detail, not part of the stable
/// API: it may change in any release.
#[doc(hidden)]
pub const FAIR_AFTER: Duration = Duration::from_micros(500);

// Lock word bits.
const LOCKED: u32 = 1;
const HEAD_PARKED: u32 = 2;
const HANDOFF: u32 = 4;

// Queue node status.
const WAITING: u32 = 0;
const PARKED: u32 = 1;
const WAKING: u32 = 2;
const HEAD: u32 = 3;

/// Busy rounds (2, 4, … 256 pauses, ≈ 9 µs in all, 8 looks) of an
/// arriving thread on the lock word while nobody is queued, before it
/// queues. Looking rarely leaves the line with the owner; waiting this long
/// catches the owner's release without a trip through the queue.
const BARGE_BUSY: u32 = 8;
/// Busy rounds (2, 4, … 32 pauses) of the queue head before it parks. No
/// `sched_yield`: under oversubscription a yielding thread stays runnable
/// and waits behind the others' time slices, while a sleeping one that is
/// woken is scheduled promptly (it has used little CPU), which is what a
/// handoff needs.
const HEAD_BUSY: u32 = 5;
/// First nap of a queue head that a release woke for nothing (the lock was
/// re-taken first); doubled per nap, `NAP_DOUBLINGS` times at most. (Linux
/// adds its default 50 µs timer slack to every nap.)
const NAP: Duration = Duration::from_micros(20);
const NAP_DOUBLINGS: u32 = 3;
/// Busy rounds of a queued waiter on its own node before it parks (its own
/// cache line: looking costs nobody else anything).
const QUEUE_BUSY: u32 = 6;

/// One waiter's queue record; aligned to 128 bytes so that it shares no
/// cache line (nor the adjacent-line prefetch pair) with anything else.
#[repr(align(128))]
struct QNode {
    next: AtomicPtr<QNode>,
    status: AtomicU32,
}

impl QNode {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            status: AtomicU32::new(WAITING),
        }
    }
    #[cfg(loom)]
    fn new() -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            status: AtomicU32::new(WAITING),
        }
    }
}

/// A queue node for [`McsLock::lock_with`] / [`RawMcs::lock_with`]: the
/// record a thread waits on while it is queued.
///
/// It is used only while the call waits, so one node can serve any number
/// of acquisitions, one after the other.
///
/// # Examples
/// ```
/// use numakit::sync::{McsLock, McsNode};
/// let lock = McsLock::new(0);
/// let mut node = McsNode::new();
/// *lock.lock_with(&mut node) += 1;
/// *lock.lock_with(&mut node) += 1;
/// assert_eq!(*lock.lock(), 2);
/// ```
pub struct McsNode {
    q: QNode,
}

impl McsNode {
    /// A fresh node.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self { q: QNode::new() }
    }
    /// A fresh node.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self { q: QNode::new() }
    }
}

impl Default for McsNode {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for McsNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McsNode").finish_non_exhaustive()
    }
}

/// The raw lock behind [`McsLock`]: no data, no guard; also usable as
/// `lock_api::Mutex<RawMcs, T>` (it implements [`lock_api::RawMutex`]).
///
/// See the [module documentation](self) for the algorithm and its state
/// table.
///
/// # Examples
/// ```
/// let m: lock_api::Mutex<numakit::sync::RawMcs, u32> = lock_api::Mutex::new(1);
/// *m.lock() += 1;
/// assert_eq!(m.into_inner(), 2);
/// ```
pub struct RawMcs {
    state: AtomicU32,
    tail: AtomicPtr<QNode>,
}

impl RawMcs {
    /// An unlocked lock.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            tail: AtomicPtr::new(ptr::null_mut()),
        }
    }
    /// An unlocked lock.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            tail: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Acquire the lock, waiting as long as it takes.
    #[inline]
    pub fn lock(&self) {
        if self
            .state
            .compare_exchange(0, LOCKED, Acquire, Relaxed)
            .is_err()
        {
            self.lock_contended(None);
        }
    }

    /// Acquire the lock, queueing on `node` if it has to wait.
    #[inline]
    pub fn lock_with(&self, node: &mut McsNode) {
        if self
            .state
            .compare_exchange(0, LOCKED, Acquire, Relaxed)
            .is_err()
        {
            self.lock_contended(Some(&node.q));
        }
    }

    /// Acquire the lock if it is free and no queued waiter has claimed it.
    #[inline]
    pub fn try_lock(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & (LOCKED | HANDOFF) != 0 {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(s, s | LOCKED, Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Release the lock.
    ///
    /// # Safety
    /// The calling thread holds the lock (acquired through this `RawMcs`
    /// and not yet released).
    #[inline]
    pub unsafe fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Release, Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    /// Whether the lock is held now.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.state.load(Relaxed) & LOCKED != 0
    }

    /// Acquire the lock, waiting at most `timeout`; whether it was
    /// acquired. A `timeout` that overflows [`Instant`] (such as
    /// [`Duration::MAX`]) waits like [`lock`](Self::lock).
    ///
    /// A timed waiter does not queue (a queued waiter cannot leave the MCS
    /// queue before it owns the lock): it tries the lock, spins briefly,
    /// then naps for up to 1 ms between tries until the deadline. It never
    /// takes the lock from a queue head that has claimed it (`HANDOFF`).
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

    /// Release the lock to the queue head if a thread is queued (it is the
    /// longest-waiting queued thread): sets `HANDOFF`, so that no running
    /// thread barges in first. With nobody queued, the same as
    /// [`unlock`](Self::unlock). Timed waiters (which poll, not queue) are
    /// not served by it.
    ///
    /// # Safety
    /// The calling thread holds the lock.
    #[inline]
    pub unsafe fn unlock_fair(&self) {
        // A queued thread cannot leave the queue before it takes the lock,
        // which we hold: a non-null tail means the head will take it next.
        // (One that queues after this load is served by the plain unlock,
        // as if it had come after the release.)
        if self.tail.load(Relaxed).is_null() {
            // SAFETY: the caller holds the lock.
            unsafe { self.unlock() };
        } else {
            self.state.fetch_or(HANDOFF, Relaxed);
            self.unlock_slow();
        }
    }

    /// Hand the lock to the queue head and take it again (queueing behind
    /// the waiters already queued); nothing if nobody is queued.
    ///
    /// # Safety
    /// The calling thread holds the lock; it holds it again on return.
    #[inline]
    pub unsafe fn bump(&self) {
        if !self.tail.load(Relaxed).is_null() {
            // SAFETY: the caller holds the lock.
            unsafe { self.unlock_fair() };
            self.lock();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        // Keep HANDOFF: the head (and only the head) may take the lock next.
        let old = self.state.fetch_and(!(LOCKED | HEAD_PARKED), Release);
        if old & HEAD_PARKED != 0 {
            // Only the queue head ever sleeps on the lock word.
            futex::wake(&self.state, 1);
        }
    }

    #[cold]
    fn lock_contended(&self, node: Option<&QNode>) {
        // Nobody queued yet: a short spin on the lock word catches short
        // critical sections without touching the queue.
        let mut wait = SpinWait::new();
        loop {
            let s = self.state.load(Relaxed);
            if s & (LOCKED | HANDOFF) == 0 {
                match self
                    .state
                    .compare_exchange_weak(s, s | LOCKED, Acquire, Relaxed)
                {
                    Ok(_) => return,
                    Err(_) => continue,
                }
            }
            if s & HANDOFF != 0 || !self.tail.load(Relaxed).is_null() || !wait.spin(BARGE_BUSY, 0) {
                break;
            }
        }
        match node {
            Some(node) => self.lock_queued(node),
            None => self.lock_queued(&QNode::new()),
        }
    }

    /// Queue on `node`, wait to become the head, take the lock, and pass
    /// the head position on.
    fn lock_queued(&self, node: &QNode) {
        node.next.store(ptr::null_mut(), Relaxed);
        node.status.store(WAITING, Relaxed);
        let me = node as *const QNode as *mut QNode;
        let prev = self.tail.swap(me, AcqRel);
        if !prev.is_null() {
            // SAFETY: `prev` was the tail, so its thread is queued in this
            // call's counterpart and cannot leave before it has seen this
            // link (it leaves the head position only by promoting its
            // `next`, or by swinging `tail` from itself to null, which fails
            // now that `tail` is `me`). Its node is therefore alive.
            unsafe { (*prev).next.store(me, Release) };
            wait_until_head(node);
        }
        self.head_acquire();

        // Leave the queue: promote the successor, or empty the queue.
        let mut next = node.next.load(Acquire);
        if next.is_null() {
            if self
                .tail
                .compare_exchange(me, ptr::null_mut(), AcqRel, Relaxed)
                .is_ok()
            {
                return;
            }
            // A waiter swapped itself in and is about to link: wait for it.
            loop {
                next = node.next.load(Acquire);
                if !next.is_null() {
                    break;
                }
                spin_loop();
            }
        }
        // SAFETY: `next` linked itself behind us and waits (status WAITING
        // or PARKED) until promoted, so its node is alive until `promote`'s
        // last write.
        unsafe { promote(next) };
    }

    /// As the queue head: wait for the lock word to be free and take it.
    fn head_acquire(&self) {
        let mut wait = SpinWait::new();
        let mut patience = Patience::new();
        // Start the clock.
        let _ = patience.expired(FAIR_AFTER);
        // Naps taken since a wake-up that found the lock re-taken.
        let mut naps: Option<u32> = None;
        loop {
            let s = self.state.load(Relaxed);
            if s & LOCKED == 0 {
                // HANDOFF is ours to clear; HEAD_PARKED is clear whenever the
                // lock is free (unlock clears it), but clear it anyway.
                let new = (s | LOCKED) & !(HANDOFF | HEAD_PARKED);
                match self.state.compare_exchange_weak(s, new, Acquire, Relaxed) {
                    Ok(_) => return,
                    Err(_) => continue,
                }
            }
            if wait.spin(HEAD_BUSY, 0) {
                continue;
            }
            if s & HANDOFF == 0 && patience.expired(FAIR_AFTER) {
                // Claim the lock: nobody barges from now on, and the next
                // release leaves it to us. Watch for that release a little,
                // then sleep until it wakes us.
                if self
                    .state
                    .compare_exchange(s, s | HANDOFF, Relaxed, Relaxed)
                    .is_ok()
                {
                    wait = SpinWait::new();
                }
                continue;
            }
            if let (Some(n), 0) = (naps, s & HANDOFF) {
                // A release woke us and the lock was taken again before we
                // could look: it is hot, its owner re-takes it. Asking to be
                // woken again would cost that owner a syscall per release
                // for nothing; nap instead (without HEAD_PARKED, so releases
                // stay on the fast path) and look again. The patience above
                // bounds how long this goes on.
                nap(NAP * (1 << n.min(NAP_DOUBLINGS)));
                naps = Some(n + 1);
                wait = SpinWait::new();
                continue;
            }
            if s & HEAD_PARKED == 0
                && self
                    .state
                    .compare_exchange(s, s | HEAD_PARKED, Relaxed, Relaxed)
                    .is_err()
            {
                continue;
            }
            futex::wait(&self.state, s | HEAD_PARKED);
            naps.get_or_insert(0);
            wait = SpinWait::new();
        }
    }
}

/// Wait (spin, then park) until the predecessor makes `node` the head.
fn wait_until_head(node: &QNode) {
    let mut wait = SpinWait::new();
    loop {
        match node.status.load(Acquire) {
            HEAD => return,
            WAITING => {
                if !wait.spin(QUEUE_BUSY, 0)
                    && node
                        .status
                        .compare_exchange(WAITING, PARKED, Relaxed, Relaxed)
                        .is_ok()
                {
                    futex::wait(&node.status, PARKED);
                }
            }
            PARKED => futex::wait(&node.status, PARKED),
            // WAKING: the predecessor is between its wake and its last
            // write; that takes nanoseconds unless it was preempted.
            _ => yield_now(),
        }
    }
}

/// Make the waiter at `next` the queue head, waking it if it parked.
///
/// # Safety
/// `next` is a queued waiter whose node stays alive until its status
/// becomes `HEAD`, and the caller is its predecessor (the only thread that
/// promotes it).
unsafe fn promote(next: *const QNode) {
    // SAFETY: per the contract, the node is alive until the final store.
    let status = unsafe { &(*next).status };
    if status
        .compare_exchange(WAITING, HEAD, Release, Relaxed)
        .is_err()
    {
        // PARKED: only the waiter moves WAITING → PARKED, only we move it on.
        status.store(WAKING, Relaxed);
        futex::wake(status, 1);
        status.store(HEAD, Release);
    }
}

impl Default for RawMcs {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RawMcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMcs")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

#[cfg(not(loom))]
// SAFETY: `lock`/`try_lock` give mutual exclusion (one thread sets LOCKED
// with Acquire; unlock clears it with Release), and `unlock` requires the
// caller to hold the lock, which lock_api guarantees.
unsafe impl lock_api::RawMutex for RawMcs {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawMcs::new();
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        RawMcs::lock(self)
    }
    #[inline]
    fn try_lock(&self) -> bool {
        RawMcs::try_lock(self)
    }
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: lock_api calls this only for a held lock.
        unsafe { RawMcs::unlock(self) }
    }
    #[inline]
    fn is_locked(&self) -> bool {
        RawMcs::is_locked(self)
    }
}

#[cfg(not(loom))]
// SAFETY: `unlock_fair` releases like `unlock` (it only adds HANDOFF,
// which restricts who takes the lock next); `bump` returns with the lock
// held again.
unsafe impl lock_api::RawMutexFair for RawMcs {
    #[inline]
    unsafe fn unlock_fair(&self) {
        // SAFETY: lock_api calls this only for a held lock.
        unsafe { RawMcs::unlock_fair(self) }
    }
    #[inline]
    unsafe fn bump(&self) {
        // SAFETY: lock_api calls this only for a held lock.
        unsafe { RawMcs::bump(self) }
    }
}

#[cfg(not(loom))]
// SAFETY: the timed acquisitions succeed only through `try_lock` (or
// `lock` for an unbounded timeout), which give mutual exclusion.
unsafe impl lock_api::RawMutexTimed for RawMcs {
    type Duration = Duration;
    type Instant = Instant;
    #[inline]
    fn try_lock_for(&self, timeout: Duration) -> bool {
        RawMcs::try_lock_for(self, timeout)
    }
    #[inline]
    fn try_lock_until(&self, deadline: Instant) -> bool {
        RawMcs::try_lock_until(self, deadline)
    }
}

mutex_wrapper! {
    /// A mutual-exclusion lock built on [`RawMcs`]: MCS queueing with local
    /// spinning, barging for running threads, futex parking, and a
    /// [`FAIR_AFTER`] bound on unfairness. See the [module
    /// documentation](self) for the design and its state table.
    ///
    /// Two ways to lock: [`lock`](Self::lock) (the queue node lives in the
    /// call's stack frame while it waits) and [`lock_with`](Self::lock_with)
    /// (the caller supplies the node). Both return a [`McsGuard`] that
    /// releases the lock when dropped. No poisoning: a panic while holding
    /// the guard releases the lock.
    ///
    /// `McsLock::new` is `const`, so locks can be statics.
    ///
    /// # Examples
    /// ```
    /// use numakit::sync::McsLock;
    /// use std::sync::Arc;
    ///
    /// static HITS: McsLock<u64> = McsLock::new(0);
    ///
    /// let log = Arc::new(McsLock::new(Vec::new()));
    /// let workers: Vec<_> = (0..4)
    ///     .map(|i| {
    ///         let log = Arc::clone(&log);
    ///         std::thread::spawn(move || {
    ///             log.lock().push(i);
    ///             *HITS.lock() += 1;
    ///         })
    ///     })
    ///     .collect();
    /// for w in workers {
    ///     w.join().unwrap();
    /// }
    /// assert_eq!(log.lock().len(), 4);
    /// assert_eq!(*HITS.lock(), 4);
    /// ```
    ///
    /// Nesting works (each acquisition waits on its own node):
    /// ```
    /// use numakit::sync::McsLock;
    /// let (a, b, c) = (McsLock::new(1), McsLock::new(2), McsLock::new(3));
    /// let (ga, gb, gc) = (a.lock(), b.lock(), c.lock());
    /// assert_eq!(*ga + *gb + *gc, 6);
    /// ```
    ///
    /// The guard stays on the thread that locked:
    /// ```compile_fail
    /// let lock = numakit::sync::McsLock::new(0);
    /// let guard = lock.lock();
    /// std::thread::scope(|s| {
    ///     s.spawn(move || drop(guard));
    /// });
    /// ```
    lock McsLock;
    /// Exclusive access to the data of an [`McsLock`]; releases the lock
    /// when dropped. `!Send`.
    guard McsGuard;
    /// A guard of a part of an [`McsLock`]'s data, from
    /// [`McsGuard::map`]; releases the lock when dropped. `!Send`.
    mapped MappedMcsGuard;
    raw RawMcs;
}

impl<T: ?Sized> McsLock<T> {
    /// Acquire the lock, queueing on the caller's `node` if it has to wait.
    ///
    /// The node is used only during this call (the lock is released by the
    /// guard without it), so it can be reused right after.
    ///
    /// # Examples
    /// ```
    /// use numakit::sync::{McsLock, McsNode};
    /// let lock = McsLock::new(String::new());
    /// let mut node = McsNode::new();
    /// lock.lock_with(&mut node).push_str("hi");
    /// assert_eq!(*lock.lock(), "hi");
    /// ```
    #[inline]
    pub fn lock_with(&self, node: &mut McsNode) -> McsGuard<'_, T> {
        self.raw.lock_with(node);
        McsGuard {
            lock: self,
            _not_send: std::marker::PhantomData,
        }
    }
}
