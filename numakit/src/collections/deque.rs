//! A bounded work-stealing deque (Chase–Lev) whose buffer lives on one node.
//!
//! The owner holds the [`Worker`]: it pushes at the bottom and pops there
//! too (LIFO, [`Worker::new_lifo`]) or at the top (FIFO,
//! [`Worker::new_fifo`]). Any number of thieves hold [`Stealer`]s (cheap to
//! clone, `Send + Sync`) and take elements from the top with
//! [`Stealer::steal`] / [`Stealer::steal_batch`], which answer with a
//! [`Steal`] as crossbeam-deque's do.
//!
//! ```text
//!   top (CAS by thieves, and by the owner for the last element / FIFO pop)
//!    │
//!    ▼
//!   [ t | t+1 | ... | b-1 ]  ◄── push / LIFO pop: bottom (owner only)
//! ```
//!
//! # Fixed capacity, and why
//! The buffer does not grow: [`Worker::push`] hands the value back in a
//! [`Full`] when the deque holds `capacity` elements. A growing Chase–Lev
//! deque must keep an old buffer alive while a thief may still read from
//! it (crossbeam-deque reclaims it through an epoch collector), and every
//! growth would map, populate and place a new buffer from inside `push`, a
//! call that could then fail with an operating-system error. A fixed buffer
//! is mapped, populated and bound to its node once, in the constructor,
//! where a placement failure is reported; `push`, `pop` and `steal` are
//! then O(1) and never allocate.
//!
//! # Slot hand-over
//! Classic Chase–Lev thieves read the slot *before* their compare-and-swap
//! on `top` and throw the value away when it fails; the read races with the
//! owner overwriting the slot, which is a data race for a non-atomic `T`.
//! Here a thief claims position `t` with the CAS first and copies the value
//! out after, which no one else can then take. A slot is reused by the push
//! of position `t + capacity` only once that copy is done: each slot has a
//! stamp that says which position it is free for. A slot's positions are
//! `p`, `p + cap`, `p + 2 cap`, …, and the push of `p + cap` only ever
//! needs to tell "free for `p + cap`" from "still holding `p`", so the
//! stamp is one byte: the lap of that position, odd or even (the bit of the
//! position worth `cap`). The stamps are an array of their own, apart from
//! the values, so a thief's stamp store does not land on the line the owner
//! is writing values to, and 64 of them share a line.
//!
//! | stamp of slot `p % cap` | meaning |
//! |---|---|
//! | lap of `p` | free for the push of position `p` (position `p - cap` of this slot was copied out) |
//! | lap of `p - cap` | position `p - cap` is in the deque, or was claimed by a CAS on `top` and is still being copied out |
//!
//! Whoever wins the CAS for position `p` (a thief, or the owner taking the
//! last element or popping FIFO) stores the lap of `p + cap` with `Release`
//! after the copy; `push` reads the stamp with `Acquire` and reports
//! [`Full`] unless it is the lap of the position it is about to fill. The
//! owner remembers how far ahead it has seen slots free (a position seen
//! free stays free until it is pushed), so a push reads a stamp only when
//! the deque has moved past that mark, about once per position stolen, and
//! then reads the rest of that line of stamps too. Elements the owner pops
//! from the bottom without a CAS (LIFO, more than one element left) leave
//! the stamp alone: that position is pushed again next. So `push` sees
//! `Full` exactly when `capacity` elements are in the deque, or when the
//! thief that claimed position `bottom - capacity` has not copied it out
//! yet: a few instructions, unless that thief is preempted between its CAS
//! and its copy, in which case that one slot stays taken until it runs
//! again (the cost of never reading a slot that may be rewritten). The
//! owner can pop meanwhile; a deque kept well below its capacity never
//! meets this.
//!
//! `top` and `bottom` share one 128-byte line, away from everything else:
//! the owner reads both on every pop, and a thief reads both and writes
//! `top` on every steal, so one line moves per operation rather than two.
//! The owner's stores to `bottom` are `Release` and every load of it by a
//! thief is `Acquire`, so a thief that sees an element in range sees its
//! slot written. The `SeqCst` fences of the owner's LIFO pop and of
//! `steal` order the owner's "bottom moved down" against a thief's "top
//! read", as in Lê,
//! Pop, Cohen and Zappa Nardelli, *Correct and Efficient Work-Stealing for
//! Weak Memory Models* (PPoPP 2013).
//!
//! # Examples
//! ```
//! use numakit::collections::deque::{Steal, Worker};
//! let worker = Worker::<u32>::new_lifo(0, 64)?;
//! let stealer = worker.stealer();
//! worker.push(1).unwrap();
//! worker.push(2).unwrap();
//! assert_eq!(stealer.steal(), Steal::Success(1)); // thieves take the oldest
//! assert_eq!(worker.pop(), Some(2)); // the owner the newest
//! assert!(worker.verify()?.is_all_on(numakit::NodeId::new(0)));
//! # Ok::<(), numakit::mem::MemError>(())
//! ```

use super::buffer::{drop_positions, Slots};
use super::primitive::{fence, Arc, AtomicBool, AtomicUsize, Backoff, Ordering, UnsafeCell};
use crate::mem::{MemError, PageMap};
use crate::topology::NodeId;
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::mem::MaybeUninit;

/// The most elements one [`Stealer::steal_batch`] moves.
pub const MAX_BATCH: usize = 32;

/// Stamps (one byte each) in a 64-byte line: a push that reads stamps
/// reads to the end of that line of stamps (see [`Inner::reserve`]).
const STAMPS_PER_LINE: usize = 64;

/// What a steal found.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Steal<T> {
    /// The deque was empty.
    Empty,
    /// An element (or, for [`Stealer::steal_batch`], at least one) was
    /// taken.
    Success(T),
    /// Another thread took the element this one went for; try again.
    Retry,
}

impl<T> Steal<T> {
    /// Whether the deque was empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, Steal::Empty)
    }

    /// Whether something was taken.
    pub fn is_success(&self) -> bool {
        matches!(self, Steal::Success(_))
    }

    /// Whether the steal lost a race and should be tried again.
    pub fn is_retry(&self) -> bool {
        matches!(self, Steal::Retry)
    }

    /// The stolen value, if any.
    pub fn success(self) -> Option<T> {
        match self {
            Steal::Success(v) => Some(v),
            _ => None,
        }
    }
}

/// The deque is full; the value comes back. The deque does not grow: make
/// it with a larger capacity, or let thieves drain it first.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the deque is full (it does not grow; create it with a larger capacity)")]
pub struct Full<T>(pub T);

impl<T> Full<T> {
    /// The value that was not pushed.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Full(..)")
    }
}

/// Which end the owner pops from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The owner pops the newest element (the end it pushes to).
    Lifo,
    /// The owner pops the oldest element (the end thieves steal from).
    Fifo,
}

/// The two ends of the deque. They share one line: the owner reads both
/// on every pop, and a thief reads both and writes `top` on every steal,
/// so keeping them together moves one line per operation instead of two.
struct Ends {
    /// The oldest element's position; advanced only by compare-and-swap.
    top: AtomicUsize,
    /// One past the newest element's position; written only by the owner.
    bottom: AtomicUsize,
}

struct Inner<T> {
    ends: CachePadded<Ends>,
    /// Slot `p % cap`'s stamp: the lap of the position it is free for (see
    /// the module's table). Stamps are an array of their own so that a
    /// thief's stamp store does not land on the line the owner is writing
    /// values to.
    stamps: Slots<AtomicBool>,
    values: Slots<UnsafeCell<MaybeUninit<T>>>,
    mask: usize,
}

// SAFETY: elements move between threads through the deque; a position is
// taken by exactly one thread (the owner's pop from the bottom, or whoever
// wins the CAS on `top`), and slots are handed over by `bottom`
// (push → taker) and by the stamps (taker → next push).
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above. `&Inner` only moves values in and out and never hands
// out `&T`, so sharing it needs `T: Send`, not `T: Sync`.
unsafe impl<T: Send> Sync for Inner<T> {}

/// Which lap of the buffer position `pos` is in, odd or even: the bit of
/// `pos` worth the capacity (`mask + 1`, a power of two). Positions `p`
/// and `p + cap` of one slot differ in it, also across the wrap at
/// `usize::MAX`.
#[inline(always)]
fn lap(pos: usize, mask: usize) -> bool {
    pos & (mask + 1) != 0
}

/// The signed distance `b - t` between two positions.
#[inline(always)]
fn distance(b: usize, t: usize) -> isize {
    b.wrapping_sub(t) as isize
}

impl<T> Inner<T> {
    fn new(node: NodeId, capacity: usize) -> Result<Self, MemError> {
        check_capacity(capacity)?;
        // The values first: their size and alignment are the checks a
        // caller's element type can fail.
        let values = Slots::<UnsafeCell<MaybeUninit<T>>>::new(node, capacity)?;
        let stamps = Slots::<AtomicBool>::new(node, capacity)?;
        for i in 0..capacity {
            // SAFETY: `i < capacity`, so the stamp is in the fresh, writable
            // mapping, aligned for `AtomicBool`; this runs before the deque
            // is shared. Slot `i` is free for position `i`, of lap 0.
            unsafe { stamps.slot(i).write(AtomicBool::new(false)) };
            // Outside loom the values stay uninitialised in place, which
            // `UnsafeCell<MaybeUninit<T>>` allows; loom's cell keeps state
            // of its own and must be constructed (its models use small
            // elements).
            // SAFETY: as above, for the value array.
            #[cfg(loom)]
            unsafe {
                values.slot(i).write(UnsafeCell::new(MaybeUninit::uninit()))
            };
        }
        Ok(Inner {
            ends: CachePadded::new(Ends {
                top: AtomicUsize::new(0),
                bottom: AtomicUsize::new(0),
            }),
            stamps,
            values,
            mask: capacity - 1,
        })
    }

    #[inline(always)]
    fn stamp(&self, pos: usize) -> &AtomicBool {
        // SAFETY: `pos & mask < capacity`; every stamp was initialised in
        // `new`.
        unsafe { &*self.stamps.slot(pos & self.mask) }
    }

    #[inline(always)]
    fn value(&self, pos: usize) -> &UnsafeCell<MaybeUninit<T>> {
        // SAFETY: `pos & mask < capacity`; a `MaybeUninit` needs no
        // initialisation (and loom's cells were constructed in `new`).
        unsafe { &*self.values.slot(pos & self.mask) }
    }

    /// The buffer's pages: stamps and values.
    fn placement(&self) -> Result<PageMap, MemError> {
        let mut map = self.stamps.placement()?;
        map.merge(self.values.placement()?);
        Ok(map)
    }

    /// Copy out the value of position `pos`, which the caller just won
    /// with a CAS on `top`, and free the slot for position `pos + cap`.
    ///
    /// # Safety
    /// The caller's CAS moved `top` from `pos` to `pos + 1` (so no one else
    /// takes `pos`), and it saw `bottom > pos` (so the slot holds the value
    /// pushed at `pos`, visible through `bottom`'s release/acquire).
    #[inline]
    unsafe fn take_claimed(&self, pos: usize) -> T {
        // SAFETY: the caller's contract: the slot is initialised, this
        // thread alone owns it, and the next push into it waits for the
        // stamp stored below.
        let value = self
            .value(pos)
            .with_mut(|p| unsafe { (*p).assume_init_read() });
        self.stamp(pos)
            .store(!lap(pos, self.mask), Ordering::Release);
        value
    }

    /// Position `bottom` if its slot is free (owner only): the position to
    /// [`publish`](Self::publish) a value at.
    ///
    /// `free_to` is the owner's own record: every position from `bottom`
    /// up to (not including) it was seen free. A position seen free stays
    /// free until it is pushed; one that is pushed and then taken moves
    /// `top`, so `bottom`, past it for good; one the owner pops from the
    /// bottom is free again. So only a push at `free_to` reads stamps,
    /// about once per position the deque moves forward, and it reads the
    /// rest of that line of stamps with it.
    #[inline]
    fn reserve(&self, free_to: &Cell<usize>) -> Option<usize> {
        let b = self.ends.bottom.load(Ordering::Relaxed);
        if distance(free_to.get(), b) > 0 {
            return Some(b);
        }
        self.reserve_slow(b, free_to)
    }

    #[cold]
    fn reserve_slow(&self, b: usize, free_to: &Cell<usize>) -> Option<usize> {
        // Acquire: the thief's copy out of the slot (or the owner's own)
        // happens before the write that reuses it, here or in any later
        // push that trusts `free_to`.
        //
        // A lap bit tells two states apart only: for each position `p`
        // read here, `p - cap` is below `bottom`, so it was pushed, so the
        // take of `p - 2 cap` (of the same lap) was done before. Hence the
        // stamp is the lap of `p` (free) or of `p - cap` (not yet). The
        // look-ahead stops at the end of the line, or at the slot of
        // position `b - b % cap + cap` when `cap` is below 64, so `p - cap`
        // stays below `b`.
        if self.stamp(b).load(Ordering::Acquire) != lap(b, self.mask) {
            return None;
        }
        let mut end = b.wrapping_add(1);
        while end & self.mask & (STAMPS_PER_LINE - 1) != 0
            && self.stamp(end).load(Ordering::Acquire) == lap(end, self.mask)
        {
            end = end.wrapping_add(1);
        }
        free_to.set(end);
        Some(b)
    }

    /// Write `value` at position `b` and make it visible to thieves.
    ///
    /// # Safety
    /// Owner only; `b` came from [`reserve`](Self::reserve) with no owner
    /// operation in between.
    #[inline]
    unsafe fn publish(&self, b: usize, value: T) {
        // SAFETY: the stamp said the slot is free for position `b`, and
        // position `b` is the owner's alone until `bottom` moves past it.
        self.value(b).with_mut(|p| unsafe { (*p).write(value) });
        self.ends.bottom.store(b.wrapping_add(1), Ordering::Release);
    }

    /// Owner's pop at the bottom (LIFO).
    fn pop_bottom(&self) -> Option<T> {
        let b = self.ends.bottom.load(Ordering::Relaxed);
        let t = self.ends.top.load(Ordering::Relaxed);
        if distance(b, t) <= 0 {
            return None;
        }
        let b = b.wrapping_sub(1);
        // Release: a thief that reads this value of `bottom` sees every
        // slot below it written.
        self.ends.bottom.store(b, Ordering::Release);
        fence(Ordering::SeqCst);
        let t = self.ends.top.load(Ordering::Relaxed);
        let len = distance(b, t);
        if len < 0 {
            // Thieves took everything meanwhile.
            self.ends.bottom.store(b.wrapping_add(1), Ordering::Release);
            return None;
        }
        if len > 0 {
            // Thieves stop below `b` (they saw `bottom <= b` or will fail
            // their CAS, see the module documentation): `b` is ours.
            // SAFETY: position `b` was pushed and not taken; only the owner
            // touches it.
            return Some(
                self.value(b)
                    .with_mut(|p| unsafe { (*p).assume_init_read() }),
            );
        }
        // The last element: race the thieves for it.
        let won = self
            .ends
            .top
            .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        let value = if won {
            // SAFETY: the CAS moved `top` from `t` (= `b`) to `t + 1`, and
            // `b < bottom` before this pop.
            Some(unsafe { self.take_claimed(t) })
        } else {
            None
        };
        self.ends.bottom.store(b.wrapping_add(1), Ordering::Release);
        value
    }

    /// Take the oldest element (thieves, and the owner of a FIFO deque).
    fn steal_top(&self) -> Steal<T> {
        let t = self.ends.top.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let b = self.ends.bottom.load(Ordering::Acquire);
        if distance(b, t) <= 0 {
            return Steal::Empty;
        }
        if self
            .ends
            .top
            .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Steal::Retry;
        }
        // SAFETY: the CAS moved `top` from `t` to `t + 1`, and `bottom` was
        // above `t` after `top` read `t`.
        Steal::Success(unsafe { self.take_claimed(t) })
    }

    fn len(&self) -> usize {
        let t = self.ends.top.load(Ordering::SeqCst);
        let b = self.ends.bottom.load(Ordering::SeqCst);
        (distance(b, t).max(0) as usize).min(self.mask + 1)
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        // `&mut self`: every handle is gone, so no operation is in flight and
        // `top..bottom` are exactly the elements still in the deque.
        let t = self.ends.top.load(Ordering::Relaxed);
        let b = self.ends.bottom.load(Ordering::Relaxed);
        // Positions wrap around `usize::MAX` as everywhere else: count the
        // elements from `top` rather than ranging over `top..bottom`.
        let len = distance(b, t).max(0) as usize;
        drop_positions(0..len, |i| {
            let pos = t.wrapping_add(i);
            // SAFETY: positions `top..bottom` hold pushed, untaken values;
            // each is visited once.
            self.value(pos)
                .with_mut(|p| unsafe { (*p).assume_init_drop() });
        });
    }
}

/// The capacity rule of the deque: a power of two from 1 to
/// [`MAX_CAPACITY`](super::MAX_CAPACITY).
fn check_capacity(capacity: usize) -> Result<(), MemError> {
    if capacity == 0 {
        return Err(MemError::InvalidSize {
            requested: 0,
            reason: "a deque needs at least one slot; ask for a capacity of 1 or more \
                     (a power of two)"
                .into(),
        });
    }
    if capacity > super::MAX_CAPACITY {
        return Err(MemError::InvalidSize {
            requested: capacity as u64,
            reason: format!(
                "a deque holds at most {} (2^{}) elements",
                super::MAX_CAPACITY,
                super::MAX_CAPACITY.ilog2()
            ),
        });
    }
    if !capacity.is_power_of_two() {
        return Err(MemError::InvalidSize {
            requested: capacity as u64,
            reason: format!(
                "deque capacities are powers of two; use {} (or {})",
                capacity.next_power_of_two(),
                capacity.next_power_of_two() / 2
            ),
        });
    }
    Ok(())
}

/// The owner's end of a work-stealing deque: push, and pop in the
/// deque's [`Flavor`]. `Send` but not `Sync`: one thread at a time owns it.
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<numakit::collections::deque::Worker<u64>>();
/// ```
/// Neither end crosses threads with elements that cannot:
/// ```compile_fail
/// fn send<T: Send>() {}
/// send::<numakit::collections::deque::Stealer<std::rc::Rc<u64>>>();
/// ```
pub struct Worker<T> {
    inner: Arc<Inner<T>>,
    flavor: Flavor,
    /// Every position from `bottom` up to this one is free (see
    /// [`Inner::reserve`]). Only the owner reads or writes it; a `Cell`,
    /// it also makes the handle `!Sync`, as push and pop assume a single
    /// owner.
    free_to: Cell<usize>,
}

/// A thief's handle on a deque: steals the oldest elements. Clone it for
/// every thief; it is `Send + Sync`.
pub struct Stealer<T> {
    inner: Arc<Inner<T>>,
    flavor: Flavor,
}

impl<T> Worker<T> {
    /// A deque of `capacity` elements (a power of two, from 1 to
    /// [`MAX_CAPACITY`](super::MAX_CAPACITY)) with its buffer on `node`;
    /// the owner pops the newest element.
    ///
    /// # Errors
    /// [`MemError::InvalidSize`] for a capacity that is 0, not a power of
    /// two or above [`MAX_CAPACITY`](super::MAX_CAPACITY);
    /// [`MemError::SizeOverflow`] when the slots do not fit the address
    /// space; the memory layer's errors for the node (absent, memoryless,
    /// not allowed, out of memory). Nothing falls back to another node.
    pub fn new_lifo(node: impl Into<NodeId>, capacity: usize) -> Result<Self, MemError> {
        Self::new(node.into(), capacity, Flavor::Lifo)
    }

    /// As [`new_lifo`](Self::new_lifo), but the owner pops the oldest
    /// element (a queue that thieves can also take from).
    ///
    /// # Errors
    /// As [`new_lifo`](Self::new_lifo).
    pub fn new_fifo(node: impl Into<NodeId>, capacity: usize) -> Result<Self, MemError> {
        Self::new(node.into(), capacity, Flavor::Fifo)
    }

    fn new(node: NodeId, capacity: usize, flavor: Flavor) -> Result<Self, MemError> {
        Ok(Worker {
            inner: Arc::new(Inner::new(node, capacity)?),
            flavor,
            // A fresh deque's slots are free for positions 0..capacity.
            free_to: Cell::new(capacity),
        })
    }

    /// A handle for thieves.
    pub fn stealer(&self) -> Stealer<T> {
        Stealer {
            inner: Arc::clone(&self.inner),
            flavor: self.flavor,
        }
    }

    /// Push `value` at the bottom.
    ///
    /// # Errors
    /// [`Full`] with the value when the deque holds
    /// [`capacity`](Self::capacity) elements, or when the thief that took
    /// the element `capacity` positions back is still copying it out (see
    /// the module documentation).
    #[inline]
    pub fn push(&self, value: T) -> Result<(), Full<T>> {
        match self.inner.reserve(&self.free_to) {
            Some(b) => {
                // SAFETY: `&self` on a `!Sync` owner handle: this thread is
                // the owner; `b` was just reserved.
                unsafe { self.inner.publish(b, value) };
                Ok(())
            }
            None => Err(Full(value)),
        }
    }

    /// Pop an element: the newest for a LIFO deque, the oldest for a FIFO
    /// one. `None` when the deque is empty (or a thief took the last
    /// element first).
    #[inline]
    pub fn pop(&self) -> Option<T> {
        match self.flavor {
            Flavor::Lifo => self.inner.pop_bottom(),
            Flavor::Fifo => {
                let backoff = Backoff::new();
                loop {
                    match self.inner.steal_top() {
                        Steal::Success(v) => return Some(v),
                        Steal::Empty => return None,
                        // A thief took the oldest one; the next is there.
                        Steal::Retry => backoff.spin(),
                    }
                }
            }
        }
    }

    /// Which end the owner pops from.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The number of elements (exact for the owner, up to thieves taking
    /// some at the same time).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fixed number of elements the deque holds.
    pub fn capacity(&self) -> usize {
        self.inner.values.capacity()
    }

    /// The node the buffer is on.
    pub fn node(&self) -> NodeId {
        self.inner.values.node()
    }

    /// Where the buffer's pages are.
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<PageMap, MemError> {
        self.inner.placement()
    }

    /// Prove placement: every page of the buffer is on the deque's node.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] when a page is elsewhere or not present;
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn verify(&self) -> Result<PageMap, MemError> {
        self.placement()?.ensure_on(self.node())
    }
}

impl<T> Stealer<T> {
    /// Take the oldest element.
    ///
    /// [`Steal::Retry`] means another thread took that element first
    /// (retry; the deque may still hold more).
    #[inline]
    pub fn steal(&self) -> Steal<T> {
        self.inner.steal_top()
    }

    /// Move about half of the elements (at most [`MAX_BATCH`], and no more
    /// than `dest` has room for) into `dest`, oldest first, each taken by
    /// its own steal so the owner's pops are never overtaken.
    /// `Success(())` when at least one element moved; `Empty` or `Retry`
    /// as for [`steal`](Self::steal) when none did, and `Retry` too when
    /// this deque has elements but `dest` has no free slot (pop from `dest`
    /// first). Stealing into the deque's own worker moves nothing and
    /// answers `Empty`.
    pub fn steal_batch(&self, dest: &Worker<T>) -> Steal<()> {
        if Arc::ptr_eq(&self.inner, &dest.inner) || self.is_empty() {
            return Steal::Empty;
        }
        let want = self.len().div_ceil(2).clamp(1, MAX_BATCH);
        let mut moved = 0;
        while moved < want {
            // Only this thread (`dest`'s owner: `Worker` is `!Sync`)
            // pushes to `dest`, and a free slot stays free until it does:
            // reserve before stealing so a stolen value always has a place.
            let Some(b) = dest.inner.reserve(&dest.free_to) else {
                break;
            };
            match self.inner.steal_top() {
                Steal::Success(v) => {
                    // SAFETY: this thread owns `dest` (it holds `&Worker`
                    // of a `!Sync` type) and reserved `b` just above.
                    unsafe { dest.inner.publish(b, v) };
                    moved += 1;
                }
                Steal::Empty if moved == 0 => return Steal::Empty,
                Steal::Retry if moved == 0 => return Steal::Retry,
                Steal::Empty | Steal::Retry => break,
            }
        }
        if moved == 0 {
            // `dest` had no free slot.
            Steal::Retry
        } else {
            Steal::Success(())
        }
    }

    /// The number of elements at one moment (others may change it at once).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fixed number of elements the deque holds.
    pub fn capacity(&self) -> usize {
        self.inner.values.capacity()
    }

    /// The node the buffer is on.
    pub fn node(&self) -> NodeId {
        self.inner.values.node()
    }

    /// Which end the owner pops from.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Prove placement: every page of the buffer is on the deque's node.
    ///
    /// # Errors
    /// As [`Worker::verify`].
    pub fn verify(&self) -> Result<PageMap, MemError> {
        self.inner.placement()?.ensure_on(self.node())
    }
}

impl<T> Clone for Stealer<T> {
    fn clone(&self) -> Self {
        Stealer {
            inner: Arc::clone(&self.inner),
            flavor: self.flavor,
        }
    }
}

impl<T> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("flavor", &self.flavor)
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("node", &self.node())
            .finish()
    }
}

impl<T> std::fmt::Debug for Stealer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stealer")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("node", &self.node())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, VecDeque};

    #[test]
    fn handles_are_send_and_the_stealer_is_sync() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<Worker<String>>();
        send::<Stealer<String>>();
        sync::<Stealer<String>>();
    }

    #[test]
    fn a_full_deque_hands_the_value_back() {
        let w = Worker::<String>::new_lifo(0, 2).unwrap();
        w.push("a".into()).unwrap();
        w.push("b".into()).unwrap();
        assert_eq!(w.push("c".into()).unwrap_err().into_inner(), "c");
        assert_eq!(w.len(), 2);
    }

    /// A thief's claim without its copy, at `pos` (which must be `top`).
    fn claim<T>(w: &Worker<T>, pos: usize) {
        assert!(w
            .inner
            .ends
            .top
            .compare_exchange(pos, pos.wrapping_add(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok());
    }

    #[test]
    fn a_claimed_slot_is_not_reused_before_it_is_copied_out() {
        // A thief that won the CAS for position 0 but has not copied the
        // value out: the stamp still says position 0.
        let w = Worker::<u32>::new_lifo(0, 1).unwrap();
        w.push(7).unwrap();
        claim(&w, 0);
        assert!(w.is_empty());
        assert_eq!(w.push(8).unwrap_err().into_inner(), 8);
        // SAFETY: the claim above took position 0, which was pushed.
        assert_eq!(unsafe { w.inner.take_claimed(0) }, 7);
        w.push(8).unwrap();
        assert_eq!(w.pop(), Some(8));
    }

    /// The owner reads stamps ahead of `bottom` and then pushes without
    /// reading them: that look-ahead stops at a slot whose claim is not
    /// copied out, and every slot it passed stays waited for where it
    /// should be. The deque holds 8 at most throughout, and every element
    /// comes out once.
    #[test]
    fn the_owners_look_ahead_stops_at_a_claim_not_yet_copied_out() {
        let w = Worker::<String>::new_lifo(0, 8).unwrap();
        let s = w.stealer();
        for i in 0..8 {
            w.push(i.to_string()).unwrap();
        }
        // Thieves claim positions 0 and 1; only the first copies out.
        claim(&w, 0);
        claim(&w, 1);
        // SAFETY: position 0 was pushed and claimed just above.
        assert_eq!(unsafe { w.inner.take_claimed(0) }, "0");
        // The owner takes what is left, positions 7 down to 2; the last
        // by a CAS, so the deque goes on from position 3.
        for i in (2..8).rev() {
            assert_eq!(w.pop(), Some(i.to_string()));
        }
        assert_eq!(w.pop(), None);
        // Positions 3..8 reuse slots no thief claimed, and position 8 slot
        // 0, copied out: the owner reads slot 0's stamp and looks ahead to
        // slot 1, whose claim (position 1) is still being copied out, so
        // position 9 waits although the deque holds 6.
        for i in 3..9 {
            w.push(i.to_string()).unwrap();
        }
        assert_eq!(w.push("9".into()).unwrap_err().into_inner(), "9");
        assert_eq!(w.len(), 6);
        // SAFETY: position 1 was pushed and claimed above.
        assert_eq!(unsafe { w.inner.take_claimed(1) }, "1");
        // Now the look-ahead passes slot 2 (taken by the owner's CAS) and
        // stops at slot 3, which holds position 3.
        w.push("9".into()).unwrap();
        w.push("10".into()).unwrap();
        assert_eq!(w.len(), 8);
        assert_eq!(w.push("11".into()).unwrap_err().into_inner(), "11");
        assert_eq!(s.steal(), Steal::Success("3".into()));
        w.push("11".into()).unwrap();
        let mut rest = Vec::new();
        while let Some(v) = w.pop() {
            rest.push(v);
        }
        let want: Vec<String> = (4..12).rev().map(|i| i.to_string()).collect();
        assert_eq!(rest, want);
    }

    /// Move a fresh deque's positions to `start`, as if `start` elements
    /// had gone through it.
    fn start_at<T>(w: &Worker<T>, start: usize) {
        let inner = &w.inner;
        assert!(w.is_empty());
        for p in 0..inner.mask + 1 {
            let pos = start.wrapping_add(p);
            inner
                .stamp(pos)
                .store(lap(pos, inner.mask), Ordering::Relaxed);
        }
        inner.ends.top.store(start, Ordering::Relaxed);
        inner.ends.bottom.store(start, Ordering::Relaxed);
        w.free_to.set(start);
    }

    /// Positions wrap around `usize::MAX` (after 2^64 pushes, so only
    /// reachable here by starting near it): pushes, pops, steals and the
    /// deque's drop work across the wrap, and every element is dropped
    /// once.
    #[test]
    fn positions_wrap_around_usize_max() {
        use std::sync::atomic::AtomicUsize as Count;
        static DROPS: Count = Count::new(0);
        #[derive(Debug, PartialEq)]
        struct D(u32);
        impl Drop for D {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        for cap in [1usize, 2, 4, 8] {
            for flavor in [Flavor::Lifo, Flavor::Fifo] {
                DROPS.store(0, Ordering::SeqCst);
                let w = Worker::<D>::new(NodeId::new(0), cap, flavor).unwrap();
                let s = w.stealer();
                start_at(&w, usize::MAX - 7);
                let mut made = 0u32;
                for round in 0..6 {
                    while w.len() < cap {
                        w.push(D(made)).unwrap();
                        made += 1;
                    }
                    assert!(w.push(D(u32::MAX)).is_err());
                    assert_eq!(w.len(), cap);
                    if round % 2 == 0 {
                        assert!(s.steal().is_success());
                    } else {
                        assert!(w.pop().is_some());
                    }
                    assert_eq!(w.len(), cap - 1);
                }
                // The full-deque refusals dropped the values handed back.
                let refused = 6;
                let taken = 6;
                assert_eq!(DROPS.load(Ordering::SeqCst), refused + taken);
                // Elements left straddle the wrap (for cap > 1); the deque's
                // drop drops each once.
                let left = w.len();
                drop((w, s));
                assert_eq!(
                    DROPS.load(Ordering::SeqCst),
                    refused + taken + left,
                    "capacity {cap}, {flavor:?}"
                );
                assert_eq!(made as usize, taken + left);
            }
        }
    }

    /// xorshift64: enough randomness for operation sequences.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x % n
        }
    }

    /// One run of `steps` random operations on a deque of `cap`, checked
    /// against a model: pushes, pops, steals, thieves that claim the top
    /// and pause before copying it out (finishing later, in any order),
    /// `steal_batch` into a second deque, that deque's pops, and a
    /// `reserve` on it that publishes nothing. After every step `len`,
    /// `top` and `bottom` match the model; a push is refused exactly when
    /// the deque is full or its slot's last claim is still being copied
    /// out; at the end, with every claim finished, the deque fills to its
    /// capacity and gives back the model's elements.
    fn run_against_model(
        cap: usize,
        flavor: Flavor,
        start: Option<usize>,
        seed: u64,
        steps: usize,
    ) {
        let w = Worker::<Box<u64>>::new(NodeId::new(0), cap, flavor).unwrap();
        let s = w.stealer();
        // A second deque, for `steal_batch` into it and for a `reserve` on
        // it that publishes nothing (as a `steal_batch` whose steal fails).
        let d = Worker::<Box<u64>>::new(NodeId::new(0), cap, Flavor::Lifo).unwrap();
        if let Some(st) = start {
            start_at(&w, st);
            start_at(&d, st.wrapping_add(cap / 2 + 3));
        }
        let mut rng = Rng(seed | 1);
        // Model: elements in the deque, by position.
        let mut model: VecDeque<(usize, u64)> = VecDeque::new();
        let mut dmodel: VecDeque<u64> = VecDeque::new();
        // Claimed but not copied out: position -> id.
        let mut pending: BTreeMap<usize, u64> = BTreeMap::new();
        let mut next_id = 0u64;
        let mut bottom = start.unwrap_or(0);
        let mut top = bottom;
        let ctx = |what: &str, step: usize| {
            format!("{what}: cap {cap} {flavor:?} start {start:?} seed {seed} step {step}")
        };
        for step in 0..steps {
            let r = rng.below(100);
            if r < 40 {
                // push
                let id = next_id;
                next_id += 1;
                let slot_pending = pending.contains_key(&bottom.wrapping_sub(cap));
                let expect_full = model.len() == cap || slot_pending;
                match w.push(Box::new(id)) {
                    Ok(()) => {
                        assert!(
                            !expect_full,
                            "{}",
                            ctx("push succeeded over a pending/full slot", step)
                        );
                        model.push_back((bottom, id));
                        bottom = bottom.wrapping_add(1);
                    }
                    Err(Full(v)) => {
                        assert_eq!(*v, id);
                        assert!(
                            expect_full,
                            "{} len {} pending {:?} b {bottom}",
                            ctx("spurious Full", step),
                            model.len(),
                            pending
                        );
                    }
                }
            } else if r < 55 {
                // owner pop
                let got = w.pop().map(|b| *b);
                let want = match flavor {
                    Flavor::Lifo => model.pop_back(),
                    Flavor::Fifo => model.pop_front(),
                };
                match (flavor, want) {
                    (Flavor::Lifo, Some((p, _))) => bottom = p,
                    (Flavor::Fifo, Some(_)) => top = top.wrapping_add(1),
                    _ => {}
                }
                // LIFO pop of the last element moves top instead.
                if flavor == Flavor::Lifo && want.is_some() && model.is_empty() {
                    // the last element was taken by CAS: top moved past it
                    bottom = bottom.wrapping_add(1);
                    top = bottom;
                }
                assert_eq!(got, want.map(|x| x.1), "{}", ctx("pop", step));
            } else if r < 65 {
                // full steal
                let got = s.steal().success().map(|b| *b);
                let want = model.pop_front();
                if want.is_some() {
                    top = top.wrapping_add(1);
                }
                assert_eq!(got, want.map(|x| x.1), "{}", ctx("steal", step));
            } else if r < 78 {
                // a thief claims the top and is preempted
                if let Some((p, id)) = model.pop_front() {
                    claim(&w, p);
                    top = top.wrapping_add(1);
                    pending.insert(p, id);
                }
            } else if r < 90 {
                // a preempted thief finishes its copy (any of them)
                if !pending.is_empty() {
                    let k = rng.below(pending.len() as u64) as usize;
                    let p = *pending.keys().nth(k).unwrap();
                    let id = pending.remove(&p).unwrap();
                    // SAFETY: position `p` was pushed and claimed above, and
                    // not yet copied out.
                    let v = unsafe { w.inner.take_claimed(p) };
                    assert_eq!(*v, id, "{}", ctx("slot overwritten under a claim", step));
                }
            } else if r < 95 {
                // steal_batch into d
                let before = model.len();
                let res = s.steal_batch(&d);
                let moved_expected_max = before.div_ceil(2).clamp(1, MAX_BATCH);
                let mut moved = 0;
                while d.len() > dmodel.len() {
                    let (_, id) = model.pop_front().unwrap();
                    top = top.wrapping_add(1);
                    dmodel.push_back(id);
                    moved += 1;
                }
                assert!(moved <= moved_expected_max);
                assert_eq!(res.is_success(), moved > 0, "{}", ctx("batch", step));
            } else if r < 98 {
                // d's owner pops
                let got = d.pop().map(|b| *b);
                assert_eq!(got, dmodel.pop_back(), "{}", ctx("dpop", step));
            } else {
                // a reserve on d with no publish
                let _ = d.inner.reserve(&d.free_to);
            }
            assert_eq!(w.len(), model.len(), "{}", ctx("len", step));
            assert_eq!(
                w.inner.ends.bottom.load(Ordering::Relaxed),
                bottom,
                "{}",
                ctx("bottom", step)
            );
            assert_eq!(
                w.inner.ends.top.load(Ordering::Relaxed),
                top,
                "{}",
                ctx("top", step)
            );
        }
        // Finish every claim, then liveness: the deque fills to exactly cap.
        for (p, id) in std::mem::take(&mut pending) {
            // SAFETY: position `p` was pushed and claimed above, and not
            // yet copied out.
            let v = unsafe { w.inner.take_claimed(p) };
            assert_eq!(*v, id);
        }
        while model.len() < cap {
            let id = next_id;
            next_id += 1;
            w.push(Box::new(id)).unwrap_or_else(|_| {
                panic!("{}", ctx("liveness: Full below cap with no claims", steps))
            });
            model.push_back((bottom, id));
            bottom = bottom.wrapping_add(1);
        }
        assert!(w.push(Box::new(0)).is_err());
        let mut out = Vec::new();
        while let Some(v) = s.steal().success() {
            out.push(*v);
        }
        let want: Vec<u64> = model.iter().map(|x| x.1).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn operations_with_paused_thieves_match_a_model() {
        for cap in [1usize, 2, 4, 8, 16, 64, 128] {
            for flavor in [Flavor::Lifo, Flavor::Fifo] {
                for start in [None, Some(usize::MAX - 5), Some(usize::MAX - 200), Some(63)] {
                    for seed in 0..6u64 {
                        run_against_model(cap, flavor, start, seed * 7919 + cap as u64 + 1, 2000);
                    }
                }
            }
        }
    }
}
