//! A bounded single-producer single-consumer ring in node memory.
//!
//! ```text
//!   Producer                      Consumer
//!   tail (own line) ──writes──►  slots[tail & mask]   ◄──reads── head (own line)
//!   cached head                                                 cached tail
//! ```
//!
//! The producer owns `tail`, the consumer owns `head`; each keeps a cached
//! copy of the other's index and reads the shared one only when its cache
//! says the ring looks full (producer) or empty (consumer), so in steady
//! state each side touches the other's cache line once per wrap-around, not
//! once per element. `tail` is published with `Release` after the slot is
//! written and read with `Acquire` before the slot is read (and the same for
//! `head` and slot reuse).
//!
//! # Examples
//! ```
//! use numakit::collections::spsc;
//! let (mut tx, mut rx) = spsc::ring::<u64>(0, 1024)?;
//! std::thread::scope(|s| {
//!     s.spawn(move || for i in 0..10_000 {
//!         while tx.push(i).is_err() { std::hint::spin_loop() }
//!     });
//!     let mut sum = 0;
//!     for _ in 0..10_000 {
//!         loop {
//!             if let Ok(v) = rx.pop() { sum += v; break }
//!         }
//!     }
//!     assert_eq!(sum, 10_000 * 9_999 / 2);
//! });
//! # Ok::<(), numakit::mem::MemError>(())
//! ```

use super::buffer::{drop_positions, Slots};
use super::primitive::{Arc, AtomicBool, AtomicUsize, Ordering, UnsafeCell};
use super::wait::Signal;
use super::{PopError, PushError};
use crate::mem::{MemError, PageMap};
use crate::topology::NodeId;
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

#[cfg(not(loom))]
mod chunks;
#[cfg(not(loom))]
pub use chunks::{ChunkError, ReadChunk, ReadChunkIntoIter, WriteChunk, WriteChunkUninit};
#[cfg(feature = "async")]
pub(crate) mod futures;
#[cfg(feature = "async")]
pub use futures::{PopFuture, PushFuture};

type Cell<T> = UnsafeCell<MaybeUninit<T>>;

struct Shared<T> {
    slots: Slots<Cell<T>>,
    mask: usize,
    /// Next slot the consumer reads (owned by the consumer).
    head: CachePadded<AtomicUsize>,
    /// Next slot the producer writes (owned by the producer).
    tail: CachePadded<AtomicUsize>,
    producer_gone: AtomicBool,
    consumer_gone: AtomicBool,
    /// The consumer waits here for values, the producer notifies.
    data: Signal,
    /// The producer waits here for free slots, the consumer notifies.
    room: Signal,
}

// SAFETY: the ring moves `T`s from the producer's thread to the consumer's;
// slots are accessed by one side at a time, handed over through the
// acquire/release indices.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above; `&Shared` is only used through the two handles, which
// move values and never hand out `&T`, so `T: Send` suffices.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        drop_positions(head..tail, |i| {
            // SAFETY: slots head..tail hold values pushed and never popped;
            // both handles are gone, and each position is visited once.
            unsafe { (*self.slots.slot(i & self.mask)).with_mut(|p| (*p).assume_init_drop()) };
        });
    }
}

/// The writing half of an SPSC ring.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// The slots and their index mask, copied out of `shared` so the hot
    /// path reads them from the handle, not through the `Arc`.
    buf: NonNull<Cell<T>>,
    mask: usize,
    tail: usize,
    cached_head: usize,
}

/// The reading half of an SPSC ring.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    buf: NonNull<Cell<T>>,
    mask: usize,
    head: usize,
    cached_tail: usize,
}

// SAFETY: a handle is the one producer (consumer) of its ring; `buf` points
// into the ring's slots, which the `Arc` keeps alive, and moving the handle
// to another thread moves that role with it (`T: Send` moves the values).
unsafe impl<T: Send> Send for Producer<T> {}
// SAFETY: as for `Producer`.
unsafe impl<T: Send> Send for Consumer<T> {}

/// Slot `pos` of a ring's slots.
///
/// # Safety
/// `buf` is the ring's slot array of `mask + 1` slots.
#[inline(always)]
unsafe fn slot_at<T>(buf: NonNull<Cell<T>>, mask: usize, pos: usize) -> *mut Cell<T> {
    // SAFETY: `pos & mask` < capacity = `mask + 1`.
    unsafe { buf.as_ptr().add(pos & mask) }
}

/// Copy `len` values between `items` and the ring slots from position
/// `pos` on, in at most two runs (before and after the wrap). `to_ring`
/// picks the direction.
///
/// # Safety
/// `buf` is the ring's slot array of `mask + 1` slots; `len <= mask + 1`;
/// `items` is valid for `len` reads (or writes); the caller owns the
/// slots `pos..pos + len` (free ones when writing, published ones when
/// reading).
#[cfg(not(loom))]
#[inline]
unsafe fn copy_run<T: Copy>(
    buf: NonNull<Cell<T>>,
    mask: usize,
    pos: usize,
    items: *mut T,
    len: usize,
    to_ring: bool,
) {
    let start = pos & mask;
    let first = len.min(mask + 1 - start);
    // `Cell<T>` is `UnsafeCell<MaybeUninit<T>>`: both wrappers are
    // `repr(transparent)`, so a slot is laid out as a `T`.
    let slots = buf.as_ptr().cast::<T>();
    // SAFETY: `start + first <= capacity` and `len - first <= start` slots
    // from the array's start; `items` covers `len` values; the ring memory
    // and `items` do not overlap (the caller's slice is not ring memory).
    unsafe {
        if to_ring {
            std::ptr::copy_nonoverlapping(items, slots.add(start), first);
            std::ptr::copy_nonoverlapping(items.add(first), slots, len - first);
        } else {
            std::ptr::copy_nonoverlapping(slots.add(start), items, first);
            std::ptr::copy_nonoverlapping(slots, items.add(first), len - first);
        }
    }
}

/// A ring of `capacity` slots (a power of two, from 1 to
/// [`MAX_CAPACITY`](super::MAX_CAPACITY)) in memory bound to `node`. Slots
/// of a zero-sized `T` take no memory: the ring maps one page whatever the
/// capacity.
///
/// # Errors
/// [`MemError::InvalidSize`] when `capacity` is 0, not a power of two or
/// above [`MAX_CAPACITY`](super::MAX_CAPACITY); the memory layer's errors
/// for the node (absent, memoryless, full).
pub fn ring<T>(
    node: impl Into<NodeId>,
    capacity: usize,
) -> Result<(Producer<T>, Consumer<T>), MemError> {
    let slots = Slots::<Cell<T>>::new(node.into(), capacity)?;
    // A slot is an `UnsafeCell<MaybeUninit<T>>`, valid uninitialised: the
    // fresh memory needs no set-up. Loom's cells carry their own state and
    // are constructed one by one.
    #[cfg(loom)]
    for i in 0..capacity {
        // SAFETY: `i < capacity`; the fresh slots are set up before the
        // ring is shared.
        unsafe { slots.slot(i).write(UnsafeCell::new(MaybeUninit::uninit())) };
    }
    let buf = slots.base();
    let mask = capacity - 1;
    let shared = Arc::new(Shared {
        mask,
        slots,
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        producer_gone: AtomicBool::new(false),
        consumer_gone: AtomicBool::new(false),
        data: Signal::new(),
        room: Signal::new(),
    });
    Ok((
        Producer {
            shared: Arc::clone(&shared),
            buf,
            mask,
            tail: 0,
            cached_head: 0,
        },
        Consumer {
            shared,
            buf,
            mask,
            head: 0,
            cached_tail: 0,
        },
    ))
}

impl<T> Producer<T> {
    /// Write `value` into the slot of position `pos`.
    ///
    /// # Safety
    /// The slot is free (the consumer has passed it) and unpublished.
    #[inline]
    unsafe fn write(&self, pos: usize, value: T) {
        // SAFETY: `buf`/`mask` describe this ring's slots; per the caller,
        // only this producer touches the slot now.
        unsafe { (*slot_at(self.buf, self.mask, pos)).with_mut(|p| (*p).write(value)) };
    }

    /// Free slots, refreshing the view of the consumer's progress if
    /// fewer than `wanted` look free.
    #[inline]
    fn free(&mut self, wanted: usize) -> usize {
        let cap = self.mask + 1;
        let mut free = cap - (self.tail - self.cached_head);
        if free < wanted {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            free = cap - (self.tail - self.cached_head);
        }
        free
    }

    /// Push one value.
    ///
    /// The fast path does not look at the consumer: after the consumer is
    /// dropped, pushes still fill the free slots (their values are dropped
    /// with the ring), then report [`PushError::Closed`]; check
    /// [`is_closed`](Self::is_closed) to stop early.
    ///
    /// # Errors
    /// [`PushError::Full`] when no slot is free, [`PushError::Closed`] when
    /// none is free and the consumer is gone; the value comes back in both.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        if self.free(1) == 0 {
            if self.shared.consumer_gone.load(Ordering::Relaxed) {
                return Err(PushError::Closed(value));
            }
            return Err(PushError::Full(value));
        }
        // SAFETY: the slot at `tail` is free (the consumer has passed it)
        // and only this producer writes it until `tail` is published.
        unsafe { self.write(self.tail, value) };
        self.tail += 1;
        self.publish();
        Ok(())
    }

    /// Push as many values from `iter` as fit now; returns how many were
    /// pushed (values not pushed stay in the iterator). If the iterator
    /// panics, the values it gave before the panic are in the ring.
    pub fn push_iter<I: Iterator<Item = T>>(&mut self, iter: &mut I) -> usize {
        /// Publishes the values written so far when dropped, also when
        /// `next` or `size_hint` (user code) unwinds.
        struct Written<'a, T> {
            producer: &'a mut Producer<T>,
            n: usize,
        }
        impl<T> Drop for Written<'_, T> {
            fn drop(&mut self) {
                let p = &mut *self.producer;
                p.tail += self.n;
                p.publish();
            }
        }
        // Look at the consumer's index only when the cached view has less
        // room than the iterator promises, or runs out before it ends.
        let wanted = iter.size_hint().0.max(1);
        let mut free = self.free(wanted);
        let mut w = Written {
            producer: self,
            n: 0,
        };
        loop {
            while w.n < free {
                let Some(v) = iter.next() else { break };
                // SAFETY: slot `tail + n` is free (n < free) and unpublished.
                unsafe { w.producer.write(w.producer.tail + w.n, v) };
                w.n += 1;
            }
            if w.n < free || w.n == w.producer.mask + 1 {
                break; // the iterator ended, or the ring is all ours
            }
            let more = w.producer.free(free + 1);
            if more <= free {
                break; // full for now
            }
            free = more;
        }
        w.n
    }

    /// Copy as many of `items` as fit now (best effort); returns how many.
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        let n = self.free(items.len()).min(items.len());
        self.write_copies(&items[..n]);
        n
    }

    /// Copy all of `items` or none (all-or-nothing).
    ///
    /// # Errors
    /// [`PushError::Full`] with the number of free slots when they are not
    /// all free; [`PushError::Closed`] when the consumer is gone.
    pub fn push_slice_all(&mut self, items: &[T]) -> Result<(), PushError<usize>>
    where
        T: Copy,
    {
        if self.shared.consumer_gone.load(Ordering::Relaxed) {
            return Err(PushError::Closed(0));
        }
        let free = self.free(items.len());
        if free < items.len() {
            return Err(PushError::Full(free));
        }
        self.write_copies(items);
        Ok(())
    }

    fn write_copies(&mut self, items: &[T])
    where
        T: Copy,
    {
        #[cfg(not(loom))]
        // SAFETY: the caller checked that `items.len()` (≤ capacity) slots
        // from `tail` are free; they are unpublished until the store below.
        unsafe {
            copy_run(
                self.buf,
                self.mask,
                self.tail,
                items.as_ptr().cast_mut(),
                items.len(),
                true,
            )
        };
        #[cfg(loom)]
        for (i, &v) in items.iter().enumerate() {
            // SAFETY: as above, one slot at a time (loom tracks each cell).
            unsafe { self.write(self.tail + i, v) };
        }
        self.tail += items.len();
        self.publish();
    }

    /// Publish `tail` (the values written before it) and wake a waiting
    /// consumer.
    #[inline]
    fn publish(&mut self) {
        self.shared.tail.store(self.tail, Ordering::Release);
        self.shared.data.notify();
    }

    /// Slots free now (a snapshot: the consumer may free more at once).
    pub fn slots(&self) -> usize {
        self.mask + 1 - self.len()
    }

    /// Values in the ring now (a snapshot: the consumer may take some at
    /// once).
    pub fn len(&self) -> usize {
        self.tail - self.shared.head.load(Ordering::Acquire)
    }

    /// Whether the ring is empty now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring is full now (a snapshot).
    pub fn is_full(&self) -> bool {
        self.slots() == 0
    }

    /// Push `value`, sleeping (not spinning) while the ring is full, for
    /// at most `timeout` (`Duration::MAX`: without limit). The consumer's
    /// pops wake the producer.
    ///
    /// # Errors
    /// [`PushError::Full`] when no slot was free within `timeout`,
    /// [`PushError::Closed`] when none is free and the consumer is gone;
    /// the value comes back in both.
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::spsc;
    /// use std::time::Duration;
    /// let (mut tx, mut rx) = spsc::ring::<u32>(0, 1)?;
    /// tx.push(1).unwrap();
    /// let t = std::thread::spawn(move || tx.push_wait(2, Duration::from_secs(10)));
    /// assert_eq!(rx.pop_wait(Duration::from_secs(10)), Ok(1));
    /// assert_eq!(rx.pop_wait(Duration::from_secs(10)), Ok(2));
    /// t.join().unwrap().unwrap();
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn push_wait(
        &mut self,
        value: T,
        timeout: std::time::Duration,
    ) -> Result<(), PushError<T>> {
        if self.free(1) == 0 && !self.is_closed() {
            let shared = Arc::clone(&self.shared);
            shared.room.wait(timeout, || {
                (self.free(1) > 0 || self.is_closed()).then_some(())
            });
        }
        self.push(value)
    }

    /// Whether the consumer has been dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.consumer_gone.load(Ordering::Relaxed)
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.shared.slots.capacity()
    }

    /// The node the slots are bound to.
    pub fn node(&self) -> NodeId {
        self.shared.slots.node()
    }

    /// Where the slots' pages are.
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<PageMap, MemError> {
        self.shared.slots.placement()
    }

    /// Prove placement: every page of the ring's slots (shared by both
    /// ends) is on the ring's node.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] when a page is elsewhere or not present;
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn verify(&self) -> Result<PageMap, MemError> {
        self.placement()?.ensure_on(self.node())
    }
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("node", &self.node())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("node", &self.node())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.shared.producer_gone.store(true, Ordering::Release);
        self.shared.data.notify();
    }
}

impl<T> Consumer<T> {
    /// Move the value out of the slot of position `pos`.
    ///
    /// # Safety
    /// The slot holds a published value not yet read.
    #[inline]
    unsafe fn read(&self, pos: usize) -> T {
        // SAFETY: `buf`/`mask` describe this ring's slots; per the caller,
        // the value is initialised and this consumer alone reads it, once.
        unsafe { (*slot_at(self.buf, self.mask, pos)).with(|p| (*p).assume_init_read()) }
    }

    /// Elements available, refreshing the view of the producer's progress
    /// if fewer than `wanted` look available.
    #[inline]
    fn available(&mut self, wanted: usize) -> usize {
        let mut n = self.cached_tail - self.head;
        if n < wanted {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            n = self.cached_tail - self.head;
        }
        n
    }

    fn empty_error(&self) -> PopError {
        // The producer sets `producer_gone` after its last push: re-check
        // the tail after seeing it, so no element is left behind.
        if self.shared.producer_gone.load(Ordering::Acquire)
            && self.shared.tail.load(Ordering::Acquire) == self.head
        {
            PopError::Closed
        } else {
            PopError::Empty
        }
    }

    /// Pop one value.
    ///
    /// # Errors
    /// [`PopError::Empty`] when nothing is there yet, [`PopError::Closed`]
    /// when nothing is there and the producer is gone.
    #[inline]
    pub fn pop(&mut self) -> Result<T, PopError> {
        if self.available(1) == 0 {
            return Err(self.empty_error());
        }
        // SAFETY: the slot at `head` was written and published (tail was
        // acquired past it) and only this consumer reads it.
        let v = unsafe { self.read(self.head) };
        self.head += 1;
        self.release();
        Ok(v)
    }

    /// Pop up to `max` values into `out` (best effort); returns how many.
    pub fn pop_into(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let n = self.available(max).min(max);
        out.reserve(n);
        for i in 0..n {
            // SAFETY: slots head..head+n are published and unread.
            out.push(unsafe { self.read(self.head + i) });
        }
        self.head += n;
        self.release();
        n
    }

    /// Copy as many values as are available into `out` (best effort);
    /// returns how many.
    pub fn pop_slice(&mut self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        let n = self.available(out.len()).min(out.len());
        self.read_copies(&mut out[..n]);
        n
    }

    /// Fill all of `out` or take nothing (all-or-nothing).
    ///
    /// # Errors
    /// [`PopError::Empty`] when fewer than `out.len()` values are there,
    /// [`PopError::Closed`] when additionally the producer is gone.
    pub fn pop_slice_all(&mut self, out: &mut [T]) -> Result<(), PopError>
    where
        T: Copy,
    {
        if self.available(out.len()) < out.len() {
            return Err(self.empty_error());
        }
        self.read_copies(out);
        Ok(())
    }

    fn read_copies(&mut self, out: &mut [T])
    where
        T: Copy,
    {
        #[cfg(not(loom))]
        // SAFETY: the caller checked that `out.len()` (≤ capacity) values
        // from `head` are published; each is read once.
        unsafe {
            copy_run(
                self.buf,
                self.mask,
                self.head,
                out.as_mut_ptr(),
                out.len(),
                false,
            )
        };
        #[cfg(loom)]
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: as above, one slot at a time (loom tracks each cell).
            *o = unsafe { self.read(self.head + i) };
        }
        self.head += out.len();
        self.release();
    }

    /// Publish `head` (the slots read before it are free) and wake a
    /// waiting producer.
    #[inline]
    fn release(&mut self) {
        self.shared.head.store(self.head, Ordering::Release);
        self.shared.room.notify();
    }

    /// Values available now (a snapshot: the producer may add more at
    /// once).
    pub fn len(&self) -> usize {
        self.shared.tail.load(Ordering::Acquire) - self.head
    }

    /// Whether nothing is available now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots now (a snapshot: the producer may fill some at once).
    pub fn slots(&self) -> usize {
        self.mask + 1 - self.len()
    }

    /// The next value, left in the ring (like `rtrb`'s `peek`).
    ///
    /// # Errors
    /// [`PopError::Empty`] when nothing is there yet, [`PopError::Closed`]
    /// when nothing is there and the producer is gone.
    pub fn peek(&self) -> Result<&T, PopError> {
        if self.is_empty() {
            return Err(self.empty_error());
        }
        // SAFETY: `buf`/`mask` describe this ring's slots; the slot at
        // `head` holds a published value (tail was acquired past it by
        // `len`); it is read or freed only through `&mut self`, which the
        // returned borrow excludes.
        Ok(unsafe { (*slot_at(self.buf, self.mask, self.head)).with(|p| &*(*p).as_ptr()) })
    }

    /// Pop a value, sleeping (not spinning) while the ring is empty, for
    /// at most `timeout` (`Duration::MAX`: without limit). The producer's
    /// pushes wake the consumer.
    ///
    /// # Errors
    /// [`PopError::Empty`] when nothing came within `timeout`,
    /// [`PopError::Closed`] when nothing is there and the producer is gone.
    pub fn pop_wait(&mut self, timeout: std::time::Duration) -> Result<T, PopError> {
        if self.available(1) == 0 && !self.is_closed() {
            let shared = Arc::clone(&self.shared);
            shared.data.wait(timeout, || {
                (self.available(1) > 0 || self.is_closed()).then_some(())
            });
        }
        self.pop()
    }

    /// Whether the producer has been dropped (elements may remain).
    pub fn is_closed(&self) -> bool {
        self.shared.producer_gone.load(Ordering::Acquire)
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.shared.slots.capacity()
    }

    /// The node the slots are bound to.
    pub fn node(&self) -> NodeId {
        self.shared.slots.node()
    }

    /// Where the slots' pages are.
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<PageMap, MemError> {
        self.shared.slots.placement()
    }

    /// Prove placement: every page of the ring's slots (shared by both
    /// ends) is on the ring's node.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] when a page is elsewhere or not present;
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn verify(&self) -> Result<PageMap, MemError> {
        self.placement()?.ensure_on(self.node())
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.shared.consumer_gone.store(true, Ordering::Release);
        self.shared.room.notify();
    }
}
