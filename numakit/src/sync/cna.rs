//! [`CnaLock`]: a NUMA-aware queue lock (compact NUMA-aware lock, Dice and
//! Kogan, EuroSys 2019) that keeps ownership on one node while waiters
//! there exist.
//!
//! # Algorithm
//!
//! An MCS queue whose lock state is **one word**, the queue tail. The
//! holder's queue node carries what the lock needs beyond that: a
//! *secondary queue* of waiters from other nodes and a count of
//! consecutive same-node handoffs. On release the holder looks for the
//! first waiter of its own node in the main queue, moves the remote
//! waiters in front of it to the end of the secondary queue, and hands the
//! lock (and the secondary queue) to that waiter. After
//! `LOCAL_HANDOFFS` consecutive same-node handoffs, or when no same-node
//! waiter is queued, the lock goes to the head of the secondary queue
//! (spliced in front of the main queue), so remote waiters wait a bounded
//! number of handoffs.
//!
//! | word / field            | owner | meaning |
//! |-------------------------|-------|---------|
//! | lock `tail`             | shared (swap, CAS) | null: free; else the last queued node (the holder's, if nobody waits) |
//! | node `next`             | written once by the successor, rewritten by the holder when it moves nodes | main-queue link |
//! | node `status` (futex)   | waiter / granter | `WAITING` → `GRANTED` (CAS), or `WAITING` → `PARKED` (waiter) → `WAKING` → `GRANTED` (granter) |
//! | node `numa`             | the node's thread, before queueing | the waiter's NUMA node |
//! | node `sec_head`/`sec_tail` | the holder (passed with the lock) | secondary queue, null when empty |
//! | node `local_run`        | the holder (passed with the lock) | consecutive handoffs within the current NUMA node |
//!
//! Waiters spin on their own node, then park on its `status` with
//! `futex(2)`; the granter issues a wake only when it finds `PARKED`, and
//! its last access to the node is the store of `GRANTED` (the `WAKING`
//! step keeps the waiter from leaving, and freeing its node, before that).
//!
//! # Trade-offs
//!
//! Strict handoff is what makes the lock NUMA-aware (the releaser picks the
//! next owner), and it is also its cost: every contended acquisition is a
//! handoff, and with more threads than CPUs the chosen successor may not
//! be running. Waiters park after a short spin, so the CPUs go to threads
//! that can run, but a handoff to a parked waiter costs a futex wake-up.
//! Use [`McsLock`](super::McsLock) when threads outnumber CPUs; use
//! `CnaLock` where threads are pinned, one per CPU, on several nodes.
//!
//! The holder's node is needed until the unlock, so [`CnaLock::lock`]
//! takes one from a small per-thread pool ([`POOL_NODES`] nodes; nested
//! locks each take one, and deeper nesting falls back to a heap-allocated
//! node), and [`CnaLock::lock_with`] runs a closure with the caller's node.
//!
//! The NUMA node of a thread comes from `getcpu(2)`, cached per thread and
//! refreshed every [`NODE_REFRESH`] acquisitions: a thread that migrates to
//! another node is treated as a member of its old node until then (a
//! locality hint only; correctness does not depend on it). Pin threads
//! (`numakit::sched`) for the full effect.
//!
//! No poisoning: a panic while holding the guard releases the lock.

use super::primitive::{futex, spin_loop, yield_now, AtomicPtr, AtomicU32, SpinWait};
use crate::topology::NodeId;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Default bound on consecutive same-node handoffs.
pub const DEFAULT_LOCAL_HANDOFFS: u32 = 64;
/// Queue nodes per thread for [`CnaLock::lock`] (deeper nesting allocates).
/// A tuning detail, not part of the stable API: it may change in any
/// release.
#[doc(hidden)]
pub const POOL_NODES: usize = 4;
/// Acquisitions between two `getcpu(2)` calls of one thread. A tuning
/// detail, not part of the stable API: it may change in any release.
#[doc(hidden)]
pub const NODE_REFRESH: u32 = 1024;

const WAITING: u32 = 0;
const PARKED: u32 = 1;
const WAKING: u32 = 2;
const GRANTED: u32 = 3;

/// `numa` value of a [`CnaNode`] that takes the thread's node at lock time.
const ANY_NODE: u32 = u32::MAX;

/// Busy rounds (2, 4, … 64 pauses, ≈ 2 µs in all) and then `sched_yield`s
/// of a waiter on its own node before it parks. A strict-handoff lock needs
/// its next owner awake: a successor that sleeps costs every handoff a
/// wake-up, and then the threads keep finding each other asleep. The yields
/// stretch the wait past a wake-up's latency without keeping a preempted
/// granter off the CPU.
const WAIT_BUSY: u32 = 6;
const WAIT_YIELDS: u32 = 64;

/// A queue record; 128-byte aligned so that a waiter's spinning touches no
/// other thread's line.
#[repr(align(128))]
struct Node {
    next: AtomicPtr<Node>,
    status: AtomicU32,
    numa: AtomicU32,
    local_run: AtomicU32,
    sec_head: AtomicPtr<Node>,
    sec_tail: AtomicPtr<Node>,
}

impl Node {
    #[cfg(not(loom))]
    const fn new(numa: u32) -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            status: AtomicU32::new(WAITING),
            numa: AtomicU32::new(numa),
            local_run: AtomicU32::new(0),
            sec_head: AtomicPtr::new(ptr::null_mut()),
            sec_tail: AtomicPtr::new(ptr::null_mut()),
        }
    }
    #[cfg(loom)]
    fn new(numa: u32) -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            status: AtomicU32::new(WAITING),
            numa: AtomicU32::new(numa),
            local_run: AtomicU32::new(0),
            sec_head: AtomicPtr::new(ptr::null_mut()),
            sec_tail: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Reset for a new acquisition on NUMA node `numa`.
    fn reset(&self, numa: u32) {
        self.next.store(ptr::null_mut(), Relaxed);
        self.status.store(WAITING, Relaxed);
        self.numa.store(numa, Relaxed);
        self.local_run.store(0, Relaxed);
        self.sec_head.store(ptr::null_mut(), Relaxed);
        self.sec_tail.store(ptr::null_mut(), Relaxed);
    }
}

/// A caller-supplied queue node for [`CnaLock::lock_with`].
///
/// # Examples
/// ```
/// use numakit::sync::{CnaLock, CnaNode};
/// use numakit::NodeId;
/// let lock = CnaLock::new(0);
/// // A thread pinned to node 0 can say so once, and skip getcpu(2).
/// let mut node = CnaNode::on(NodeId::new(0));
/// lock.lock_with(&mut node, |v| *v += 1);
/// assert_eq!(lock.lock_with(&mut node, |v| *v), 1);
/// ```
pub struct CnaNode {
    node: Node,
}

impl CnaNode {
    /// A node that takes the calling thread's NUMA node when it locks.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            node: Node::new(ANY_NODE),
        }
    }
    /// A node that takes the calling thread's NUMA node when it locks.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            node: Node::new(ANY_NODE),
        }
    }

    /// A node that always counts as a waiter of NUMA node `numa` (for
    /// threads pinned to it).
    #[cfg(not(loom))]
    pub const fn on(numa: NodeId) -> Self {
        Self {
            node: Node::new(numa.get()),
        }
    }
    /// A node that always counts as a waiter of NUMA node `numa`.
    #[cfg(loom)]
    pub fn on(numa: NodeId) -> Self {
        Self {
            node: Node::new(numa.get()),
        }
    }
}

impl Default for CnaNode {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CnaNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let numa = self.node.numa.load(Relaxed);
        f.debug_struct("CnaNode")
            .field("numa", &(numa != ANY_NODE).then_some(numa))
            .finish_non_exhaustive()
    }
}

// --- the calling thread's NUMA node ---------------------------------------

#[cfg(not(loom))]
std::thread_local! {
    /// (cached NUMA node, acquisitions left before the next getcpu).
    static NUMA_HINT: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

#[cfg(not(loom))]
fn current_numa() -> u32 {
    NUMA_HINT
        .try_with(|h| {
            let (numa, left) = h.get();
            if left != 0 {
                h.set((numa, left - 1));
                numa
            } else {
                let numa = crate::topology::current_node().map_or(0, NodeId::get);
                h.set((numa, NODE_REFRESH - 1));
                numa
            }
        })
        .unwrap_or(0)
}

/// Under loom every modelled thread is on node 0 unless its node says
/// otherwise ([`CnaNode::on`]).
#[cfg(loom)]
fn current_numa() -> u32 {
    0
}

// --- the per-thread node pool ---------------------------------------------

/// Where the holder's node lives.
#[cfg_attr(loom, allow(dead_code))] // no pool under loom
enum Slot {
    /// Slot `index` of this thread's pool.
    Pool(NonNull<Node>, u8),
    /// A heap node (pool exhausted or unavailable); freed after unlock.
    Heap(NonNull<Node>),
    /// The caller's node ([`CnaLock::lock_with`]).
    Borrowed(NonNull<Node>),
}

impl Slot {
    fn node(&self) -> NonNull<Node> {
        match *self {
            Slot::Pool(n, _) | Slot::Heap(n) | Slot::Borrowed(n) => n,
        }
    }
}

#[cfg(not(loom))]
mod pool {
    use super::{Node, Slot, ANY_NODE, POOL_NODES};
    use std::cell::Cell;
    use std::ptr::NonNull;

    /// `POOL_NODES` heap nodes and a bitmap of those in use.
    pub(super) struct Pool {
        nodes: NonNull<[Node; POOL_NODES]>,
        used: Cell<u8>,
    }

    impl Pool {
        fn new() -> Self {
            let nodes = Box::new([const { Node::new(ANY_NODE) }; POOL_NODES]);
            Self {
                nodes: NonNull::from(Box::leak(nodes)),
                used: Cell::new(0),
            }
        }
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            // A node still in use belongs to a guard that was leaked
            // (`mem::forget`): the lock's queue may still point at it, so
            // the nodes must outlive the thread. Leak them.
            if self.used.get() == 0 {
                // SAFETY: allocated by `Box::leak` in `new`, not in use, and
                // freed only here.
                drop(unsafe { Box::from_raw(self.nodes.as_ptr()) });
            }
        }
    }

    std::thread_local! {
        static POOL: Pool = Pool::new();
    }

    /// A free node of this thread's pool, or a heap node.
    pub(super) fn take() -> Slot {
        let pooled = POOL.try_with(|p| {
            let used = p.used.get();
            let free = (!used).trailing_zeros() as usize;
            (free < POOL_NODES).then(|| {
                p.used.set(used | 1 << free);
                // SAFETY: `free < POOL_NODES`, inside the pool's array.
                let node =
                    unsafe { NonNull::new_unchecked(p.nodes.as_ptr().cast::<Node>().add(free)) };
                Slot::Pool(node, free as u8)
            })
        });
        pooled
            .ok()
            .flatten()
            .unwrap_or_else(|| Slot::Heap(NonNull::from(Box::leak(Box::new(Node::new(ANY_NODE))))))
    }

    /// Return slot `index` to this thread's pool.
    pub(super) fn give_back(index: u8) {
        // If the pool is gone (thread-local destructors running), it saw the
        // slot in use and leaked its nodes: nothing to do.
        let _ = POOL.try_with(|p| p.used.set(p.used.get() & !(1 << index)));
    }
}

#[cfg(loom)]
mod pool {
    //! Under loom every acquisition uses a heap node (std thread-locals are
    //! shared by all modelled threads).
    use super::{Node, Slot, ANY_NODE};
    use std::ptr::NonNull;

    pub(super) fn take() -> Slot {
        Slot::Heap(NonNull::from(Box::leak(Box::new(Node::new(ANY_NODE)))))
    }

    pub(super) fn give_back(_index: u8) {}
}

// --- the raw lock ---------------------------------------------------------

/// The one-word lock state: the queue tail.
struct RawCna {
    tail: AtomicPtr<Node>,
}

impl RawCna {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self {
            tail: AtomicPtr::new(ptr::null_mut()),
        }
    }
    #[cfg(loom)]
    fn new() -> Self {
        Self {
            tail: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Queue `me` and wait until it holds the lock.
    ///
    /// # Safety
    /// `me` is not queued on any lock, and stays alive and unmoved until
    /// the matching `unlock`.
    unsafe fn lock(&self, me: NonNull<Node>) {
        // SAFETY: alive per the contract.
        let node = unsafe { me.as_ref() };
        let numa = match node.numa.load(Relaxed) {
            ANY_NODE => current_numa(),
            n => n,
        };
        node.reset(numa);
        let prev = self.tail.swap(me.as_ptr(), AcqRel);
        if prev.is_null() {
            return;
        }
        // SAFETY: `prev` was the tail: its thread holds the lock or waits,
        // and cannot release before it has seen this link (its CAS of
        // `tail` from itself fails now), so its node is alive.
        unsafe { (*prev).next.store(me.as_ptr(), Release) };
        wait_granted(node);
    }

    /// Take the lock with `me` if it is free.
    ///
    /// # Safety
    /// As [`lock`](Self::lock).
    unsafe fn try_lock(&self, me: NonNull<Node>) -> bool {
        // SAFETY: alive per the contract.
        let node = unsafe { me.as_ref() };
        if !self.tail.load(Relaxed).is_null() {
            return false;
        }
        let numa = match node.numa.load(Relaxed) {
            ANY_NODE => current_numa(),
            n => n,
        };
        node.reset(numa);
        self.tail
            .compare_exchange(ptr::null_mut(), me.as_ptr(), AcqRel, Relaxed)
            .is_ok()
    }

    /// Release the lock held through `me`, to a same-node waiter if there is
    /// one and the run is below `local_handoffs`.
    ///
    /// # Safety
    /// `me` holds this lock.
    unsafe fn unlock(&self, me: NonNull<Node>, local_handoffs: u32) {
        // SAFETY: the holder's node is alive until its unlock returns.
        let node = unsafe { me.as_ref() };
        let mut next = node.next.load(Acquire);
        if next.is_null() {
            let sec_head = node.sec_head.load(Relaxed);
            if sec_head.is_null() {
                if self
                    .tail
                    .compare_exchange(me.as_ptr(), ptr::null_mut(), Release, Relaxed)
                    .is_ok()
                {
                    return;
                }
            } else {
                // Nobody in the main queue: the secondary queue becomes it.
                let sec_tail = node.sec_tail.load(Relaxed);
                if self
                    .tail
                    .compare_exchange(me.as_ptr(), sec_tail, AcqRel, Relaxed)
                    .is_ok()
                {
                    // SAFETY: secondary-queue nodes wait until granted.
                    unsafe { grant(sec_head, ptr::null_mut(), ptr::null_mut(), 0) };
                    return;
                }
            }
            // A waiter swapped itself in and is about to link.
            loop {
                next = node.next.load(Acquire);
                if !next.is_null() {
                    break;
                }
                spin_loop();
            }
        }
        let numa = node.numa.load(Relaxed);
        let run = node.local_run.load(Relaxed);
        if run < local_handoffs {
            // SAFETY: `next` and the nodes behind it wait until granted.
            if let Some(succ) = unsafe { find_local(node, next) } {
                let (sh, st) = (node.sec_head.load(Relaxed), node.sec_tail.load(Relaxed));
                // SAFETY: `succ` waits in the main queue until granted.
                unsafe { grant(succ, sh, st, run + 1) };
                return;
            }
        }
        let sec_head = node.sec_head.load(Relaxed);
        if sec_head.is_null() {
            // SAFETY: `next` waits until granted; reading its node is fine.
            let same = unsafe { (*next).numa.load(Relaxed) } == numa;
            let run = if same { run.saturating_add(1) } else { 0 };
            // SAFETY: as above.
            unsafe { grant(next, ptr::null_mut(), ptr::null_mut(), run) };
        } else {
            // Splice: secondary queue, then the main queue.
            let sec_tail = node.sec_tail.load(Relaxed);
            // SAFETY: `sec_tail` waits in the secondary queue until granted;
            // only the holder writes its `next` (it is not the main tail).
            unsafe { (*sec_tail).next.store(next, Relaxed) };
            // SAFETY: `sec_head` waits until granted.
            unsafe { grant(sec_head, ptr::null_mut(), ptr::null_mut(), 0) };
        }
    }
}

/// Find the first waiter on `holder`'s NUMA node in the main queue starting
/// at `next`; move the waiters before it to the end of `holder`'s secondary
/// queue. `None` (nothing moved) if the main queue has no such waiter.
///
/// # Safety
/// `holder` holds the lock and `next` is its main-queue successor.
unsafe fn find_local(holder: &Node, next: *mut Node) -> Option<*mut Node> {
    // SAFETY: the nodes queued behind the holder wait until they are
    // granted, and only the holder (this thread) grants: every node reached
    // from `next` stays alive during this call.
    let at = |p: *mut Node| unsafe { &*p };
    let numa = holder.numa.load(Relaxed);
    if at(next).numa.load(Relaxed) == numa {
        return Some(next);
    }
    let mut last_remote = next;
    let mut cur = at(next).next.load(Acquire);
    while !cur.is_null() {
        if at(cur).numa.load(Relaxed) == numa {
            // `last_remote` is not the tail (`cur` follows it), so nobody
            // else writes its `next`.
            at(last_remote).next.store(ptr::null_mut(), Relaxed);
            let sec_tail = holder.sec_tail.load(Relaxed);
            if sec_tail.is_null() {
                holder.sec_head.store(next, Relaxed);
            } else {
                at(sec_tail).next.store(next, Relaxed);
            }
            holder.sec_tail.store(last_remote, Relaxed);
            return Some(cur);
        }
        last_remote = cur;
        cur = at(cur).next.load(Acquire);
    }
    None
}

/// Hand the lock to `succ` with the given secondary queue and run length.
///
/// # Safety
/// `succ` is a waiter of this lock (main or secondary queue) and the caller
/// holds the lock.
unsafe fn grant(succ: *mut Node, sec_head: *mut Node, sec_tail: *mut Node, run: u32) {
    // SAFETY: the waiter stays until it sees GRANTED, our last write.
    let s = unsafe { &*succ };
    s.sec_head.store(sec_head, Relaxed);
    s.sec_tail.store(sec_tail, Relaxed);
    s.local_run.store(run, Relaxed);
    if s.status
        .compare_exchange(WAITING, GRANTED, Release, Relaxed)
        .is_err()
    {
        // PARKED (only the waiter sets it; only we move it on).
        s.status.store(WAKING, Relaxed);
        futex::wake(&s.status, 1);
        s.status.store(GRANTED, Release);
    }
}

/// Spin, then park, until `node` is granted the lock.
fn wait_granted(node: &Node) {
    let mut wait = SpinWait::new();
    loop {
        match node.status.load(Acquire) {
            GRANTED => return,
            WAITING => {
                if !wait.spin(WAIT_BUSY, WAIT_YIELDS)
                    && node
                        .status
                        .compare_exchange(WAITING, PARKED, Relaxed, Relaxed)
                        .is_ok()
                {
                    futex::wait(&node.status, PARKED);
                }
            }
            PARKED => futex::wait(&node.status, PARKED),
            _ => yield_now(), // WAKING: the granter is about to finish
        }
    }
}

// --- the lock -------------------------------------------------------------

/// A NUMA-aware mutual-exclusion lock (CNA): ownership stays on one NUMA
/// node while waiters there exist, for at most `LOCAL_HANDOFFS`
/// consecutive handoffs; its whole state is one pointer. See the [module
/// documentation](self).
///
/// # Examples
/// ```
/// use numakit::sync::CnaLock;
/// use std::sync::Arc;
///
/// let lock = Arc::new(CnaLock::new(0u64));
/// let workers: Vec<_> = (0..4)
///     .map(|_| {
///         let lock = Arc::clone(&lock);
///         std::thread::spawn(move || {
///             for _ in 0..1000 {
///                 *lock.lock() += 1;
///             }
///         })
///     })
///     .collect();
/// workers.into_iter().for_each(|w| w.join().unwrap());
/// assert_eq!(*lock.lock(), 4000);
///
/// // A custom fairness bound: at most 8 same-node handoffs in a row.
/// let strict = CnaLock::<_, 8>::with_local_handoffs(());
/// drop(strict.lock());
/// ```
pub struct CnaLock<T: ?Sized, const LOCAL_HANDOFFS: u32 = DEFAULT_LOCAL_HANDOFFS> {
    raw: RawCna,
    data: UnsafeCell<T>,
}

// SAFETY: the lock owns its `T`: sending the lock sends the `T` (needs
// `T: Send`); the raw lock is one atomic pointer, null whenever the lock
// can be moved (a held lock is borrowed by its guard).
unsafe impl<T: ?Sized + Send, const N: u32> Send for CnaLock<T, N> {}
// SAFETY: one holder at a time gets `&mut T` (needs `T: Send`).
unsafe impl<T: ?Sized + Send, const N: u32> Sync for CnaLock<T, N> {}

impl<T> CnaLock<T> {
    /// A new unlocked lock holding `value`, with the default bound of
    /// [`DEFAULT_LOCAL_HANDOFFS`]; `const`, so it can initialise a `static`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self::with_local_handoffs(value)
    }
    /// A new unlocked lock holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self::with_local_handoffs(value)
    }
}

impl<T, const LOCAL_HANDOFFS: u32> CnaLock<T, LOCAL_HANDOFFS> {
    /// A new unlocked lock holding `value`, handing off at most
    /// `LOCAL_HANDOFFS` times in a row within one NUMA node (0: FIFO).
    #[cfg(not(loom))]
    pub const fn with_local_handoffs(value: T) -> Self {
        Self {
            raw: RawCna::new(),
            data: UnsafeCell::new(value),
        }
    }
    /// A new unlocked lock holding `value`, handing off at most
    /// `LOCAL_HANDOFFS` times in a row within one NUMA node (0: FIFO).
    #[cfg(loom)]
    pub fn with_local_handoffs(value: T) -> Self {
        Self {
            raw: RawCna::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consume the lock and return the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized, const LOCAL_HANDOFFS: u32> CnaLock<T, LOCAL_HANDOFFS> {
    /// Acquire the lock (queue node from the thread's pool) and return a
    /// guard that releases it when dropped. Not reentrant.
    #[inline]
    pub fn lock(&self) -> CnaGuard<'_, T, LOCAL_HANDOFFS> {
        let slot = pool::take();
        // SAFETY: a slot from `take` is not in use by anything else, and
        // stays alive until the guard's drop gives it back (a leaked guard
        // leaks the node, see `pool::Pool::drop`).
        unsafe { self.raw.lock(slot.node()) };
        CnaGuard {
            lock: self,
            slot,
            _not_send: PhantomData,
        }
    }

    /// Acquire the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<CnaGuard<'_, T, LOCAL_HANDOFFS>> {
        if !self.raw.tail.load(Relaxed).is_null() {
            return None;
        }
        let slot = pool::take();
        // SAFETY: as in `lock`.
        if unsafe { self.raw.try_lock(slot.node()) } {
            Some(CnaGuard {
                lock: self,
                slot,
                _not_send: PhantomData,
            })
        } else {
            release_slot(slot);
            None
        }
    }

    /// Acquire the lock, waiting at most `timeout`; `None` if it is still
    /// held then. A `timeout` that overflows [`Instant`](std::time::Instant)
    /// (such as [`Duration::MAX`](std::time::Duration::MAX)) waits like
    /// [`lock`](Self::lock); zero tries once.
    ///
    /// A timed waiter does not queue (a queued CNA waiter cannot leave
    /// before it is granted the lock): it polls [`try_lock`](Self::try_lock),
    /// which succeeds only while nobody holds or waits for the lock,
    /// spinning briefly and then napping up to 1 ms between tries. Under
    /// steady contention it can time out while queued threads keep the lock
    /// busy.
    pub fn try_lock_for(
        &self,
        timeout: std::time::Duration,
    ) -> Option<CnaGuard<'_, T, LOCAL_HANDOFFS>> {
        match std::time::Instant::now().checked_add(timeout) {
            Some(deadline) => self.try_lock_until(deadline),
            None => Some(self.lock()),
        }
    }

    /// Acquire the lock, waiting until `deadline` at the latest; `None` if
    /// it is still held then. Tries at least once, also for a past
    /// deadline; waits as [`try_lock_for`](Self::try_lock_for) does.
    pub fn try_lock_until(
        &self,
        deadline: std::time::Instant,
    ) -> Option<CnaGuard<'_, T, LOCAL_HANDOFFS>> {
        let mut guard = None;
        super::wrapper::lock_until(deadline, || {
            guard = self.try_lock();
            guard.is_some()
        });
        guard
    }

    /// Acquire the lock queueing on the caller's `node`, run `f` on the
    /// data, release, and return what `f` returned. The lock is released
    /// even if `f` panics.
    ///
    /// A closure rather than a guard: the node must stay in place until
    /// the release, which a guard could not promise (it can be leaked).
    pub fn lock_with<R>(&self, node: &mut CnaNode, f: impl FnOnce(&mut T) -> R) -> R {
        let me = NonNull::from(&mut node.node);
        // SAFETY: `node` is exclusively borrowed for this call, and the
        // guard below (which the caller cannot leak) unlocks before the
        // borrow ends, also on unwind.
        unsafe { self.raw.lock(me) };
        let mut guard = CnaGuard {
            lock: self,
            slot: Slot::Borrowed(me),
            _not_send: PhantomData,
        };
        f(&mut guard)
    }

    /// Whether some thread holds the lock now.
    pub fn is_locked(&self) -> bool {
        !self.raw.tail.load(Relaxed).is_null()
    }

    /// The data, through an exclusive borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

fn release_slot(slot: Slot) {
    match slot {
        Slot::Pool(_, index) => pool::give_back(index),
        // SAFETY: heap slots come from `Box::leak` in `pool::take` and are
        // freed once, here, after the lock no longer references them.
        Slot::Heap(node) => drop(unsafe { Box::from_raw(node.as_ptr()) }),
        Slot::Borrowed(_) => {}
    }
}

impl<T: Default> Default for CnaLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for CnaLock<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug, const N: u32> fmt::Debug for CnaLock<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CnaLock");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.field("local_handoffs", &N).finish_non_exhaustive()
    }
}

/// Exclusive access to the data of a [`CnaLock`]; releases the lock (and
/// returns the queue node to the thread's pool) when dropped. `!Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct CnaGuard<'a, T: ?Sized, const LOCAL_HANDOFFS: u32 = DEFAULT_LOCAL_HANDOFFS> {
    lock: &'a CnaLock<T, LOCAL_HANDOFFS>,
    slot: Slot,
    /// `!Send`: unlocked (and the pool slot returned) on the locking thread.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a guard shares `&T`.
unsafe impl<T: ?Sized + Sync, const N: u32> Sync for CnaGuard<'_, T, N> {}

impl<T: ?Sized, const N: u32> Deref for CnaGuard<'_, T, N> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized, const N: u32> DerefMut for CnaGuard<'_, T, N> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` is unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized, const N: u32> Drop for CnaGuard<'_, T, N> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard's node holds the lock; released once.
        unsafe { self.lock.raw.unlock(self.slot.node(), N) };
        let slot = std::mem::replace(&mut self.slot, Slot::Borrowed(NonNull::dangling()));
        release_slot(slot);
    }
}

impl<T: ?Sized, const N: u32> CnaGuard<'_, T, N> {
    /// Release the lock, run `f`, take the lock again with the same queue
    /// node (also when `f` panics, so the guard stays valid on unwind).
    pub fn unlocked<U>(this: &mut Self, f: impl FnOnce() -> U) -> U {
        struct Relock<'b>(&'b RawCna, NonNull<Node>);
        impl Drop for Relock<'_> {
            fn drop(&mut self) {
                // SAFETY: the node is the guard's: after the release below
                // it is queued nowhere, and the guard keeps it alive (pool
                // slot, heap node, or the `lock_with` caller's borrow).
                unsafe { self.0.lock(self.1) }
            }
        }
        let me = this.slot.node();
        // SAFETY: the guard's node holds the lock; `Relock` takes it again
        // before the guard can be used or dropped.
        unsafe { this.lock.raw.unlock(me, N) };
        let _relock = Relock(&this.lock.raw, me);
        f()
    }
}

impl<T: ?Sized, const N: u32> super::condvar::sealed::Sealed for CnaGuard<'_, T, N> {}

impl<T: ?Sized, const N: u32> super::condvar::CondvarGuard for CnaGuard<'_, T, N> {
    #[inline]
    fn unlocked_for_wait<U>(&mut self, f: impl FnOnce() -> U) -> U {
        Self::unlocked(self, f)
    }
}

impl<T: ?Sized + fmt::Debug, const N: u32> fmt::Debug for CnaGuard<'_, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display, const N: u32> fmt::Display for CnaGuard<'_, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
