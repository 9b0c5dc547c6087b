//! `rtrb`'s chunk API: runs of slots handed out in place, as one or two
//! slices (two when the run wraps around the end of the slot array), and
//! `io::Read`/`io::Write` for rings of bytes.
//!
//! A write chunk is published by `commit`; a read chunk frees its slots by
//! `commit`. A chunk dropped without `commit` publishes (frees) nothing:
//! the values a [`WriteChunk`] holds are dropped with it, the values under
//! a [`ReadChunk`] stay in the ring.
//!
//! Not built under `--cfg loom`: loom's cells do not lie side by side, so
//! they cannot be lent as slices. The chunks hand slots over through the
//! same index publication as the bulk operations, which the loom models
//! cover.

use super::{Consumer, PopError, Producer};
use crate::collections::buffer::drop_positions;
use std::io;
use std::mem::MaybeUninit;

/// A chunk of the asked size is not available now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Fewer slots (write chunks: free ones; read chunks: filled ones) than
    /// asked for are ready now.
    #[error(
        "asked for a chunk of {requested} slots, {available} are ready now (the ring has \
         {capacity}); ask for at most {available}, or wait for the other side"
    )]
    TooFewSlots {
        /// The chunk size asked for.
        requested: usize,
        /// Slots ready now.
        available: usize,
        /// The ring's capacity (no chunk is larger).
        capacity: usize,
    },
}

/// The two runs of `n` slots from position `pos`: `(start, first, second)`
/// — `first` slots from index `start`, then `second` from index 0.
#[inline]
fn runs(mask: usize, pos: usize, n: usize) -> (usize, usize, usize) {
    let start = pos & mask;
    let first = n.min(mask + 1 - start);
    (start, first, n - first)
}

/// The slot array as `T`s.
///
/// `Cell<T>` is `UnsafeCell<MaybeUninit<T>>`, both `repr(transparent)`:
/// a slot is laid out as a `T`.
#[inline]
fn base<T>(buf: std::ptr::NonNull<super::Cell<T>>) -> *mut T {
    buf.as_ptr().cast::<T>()
}

impl<T> Producer<T> {
    /// `n` free slots, each holding `T::default()`, to overwrite in place
    /// and publish with [`WriteChunk::commit`] (like `rtrb`'s
    /// `write_chunk`). For `Copy` types,
    /// [`write_chunk_uninit`](Self::write_chunk_uninit) skips the defaults.
    ///
    /// # Errors
    /// [`ChunkError::TooFewSlots`] when fewer than `n` slots are free
    /// (always for `n` above the capacity). If `T::default()` panics, the
    /// defaults made so far are dropped and nothing is published.
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::spsc;
    /// let (mut tx, mut rx) = spsc::ring::<String>(0, 4)?;
    /// let mut chunk = tx.write_chunk(3).unwrap();
    /// let (a, b) = chunk.as_mut_slices();
    /// for (i, s) in a.iter_mut().chain(b).enumerate() {
    ///     *s = i.to_string();
    /// }
    /// assert_eq!(chunk.commit(2), 2); // the third string is dropped
    /// assert_eq!(rx.len(), 2);
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn write_chunk(&mut self, n: usize) -> Result<WriteChunk<'_, T>, ChunkError>
    where
        T: Default,
    {
        self.check_free(n)?;
        let mut chunk = WriteChunk {
            producer: self,
            n: 0,
        };
        while chunk.n < n {
            let v = T::default();
            // SAFETY: slot `tail + chunk.n` is free (checked above) and
            // unpublished; the chunk drops it if a later default panics.
            unsafe { chunk.producer.write(chunk.producer.tail + chunk.n, v) };
            chunk.n += 1;
        }
        Ok(chunk)
    }

    /// `n` free slots, uninitialised, to write in place and publish with
    /// [`WriteChunkUninit::commit`] (unsafe: the caller vouches that the
    /// slots are written) or [`WriteChunkUninit::fill_from_iter`] (safe).
    ///
    /// # Errors
    /// [`ChunkError::TooFewSlots`] when fewer than `n` slots are free
    /// (always for `n` above the capacity).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::spsc;
    /// let (mut tx, mut rx) = spsc::ring::<u32>(0, 8)?;
    /// let chunk = tx.write_chunk_uninit(5).unwrap();
    /// assert_eq!(chunk.fill_from_iter(10..), 5);
    /// let chunk = rx.read_chunk(5).unwrap();
    /// let (a, b) = chunk.as_slices();
    /// assert_eq!([a, b].concat(), [10, 11, 12, 13, 14]);
    /// chunk.commit_all();
    /// assert!(rx.is_empty());
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn write_chunk_uninit(&mut self, n: usize) -> Result<WriteChunkUninit<'_, T>, ChunkError> {
        self.check_free(n)?;
        Ok(WriteChunkUninit { producer: self, n })
    }

    fn check_free(&mut self, n: usize) -> Result<(), ChunkError> {
        let available = self.free(n);
        if available < n {
            return Err(ChunkError::TooFewSlots {
                requested: n,
                available,
                capacity: self.mask + 1,
            });
        }
        Ok(())
    }
}

/// Free slots of an SPSC ring holding values, lent in place; see
/// [`Producer::write_chunk`].
pub struct WriteChunk<'a, T> {
    producer: &'a mut Producer<T>,
    /// Values in the slots from the producer's `tail` on, unpublished.
    n: usize,
}

impl<T> WriteChunk<'_, T> {
    /// The chunk's slots in order: the second slice is empty unless the
    /// chunk wraps around the end of the ring.
    pub fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        let p = &*self.producer;
        let (start, first, second) = runs(p.mask, p.tail, self.n);
        let base = base(p.buf);
        // SAFETY: the two runs are the chunk's slots (distinct, inside the
        // slot array), each holding a value; this producer alone touches
        // them until they are published, and `&mut self` lends them once.
        unsafe {
            (
                std::slice::from_raw_parts_mut(base.add(start), first),
                std::slice::from_raw_parts_mut(base, second),
            )
        }
    }

    /// Slots in the chunk.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the chunk has no slots.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Publish the first `n` values (at most the chunk's length; returns
    /// how many) and drop the others.
    pub fn commit(mut self, n: usize) -> usize {
        let n = n.min(self.n);
        let p = &mut *self.producer;
        p.tail += n;
        p.publish();
        // The rest now start at the new `tail`: `drop` takes them.
        self.n -= n;
        n
    }

    /// Publish every value of the chunk.
    pub fn commit_all(self) -> usize {
        let n = self.n;
        self.commit(n)
    }
}

impl<T> Drop for WriteChunk<'_, T> {
    fn drop(&mut self) {
        let p = &*self.producer;
        drop_positions(p.tail..p.tail + self.n, |pos| {
            // SAFETY: the slots `tail..tail + n` hold the chunk's
            // unpublished values; each is dropped once.
            unsafe { (*super::slot_at(p.buf, p.mask, pos)).with_mut(|s| (*s).assume_init_drop()) };
        });
    }
}

impl<T> std::fmt::Debug for WriteChunk<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteChunk").field("len", &self.n).finish()
    }
}

/// Free, uninitialised slots of an SPSC ring lent in place; see
/// [`Producer::write_chunk_uninit`]. Dropped without a commit, it
/// publishes nothing (values written into it are leaked, not dropped).
pub struct WriteChunkUninit<'a, T> {
    producer: &'a mut Producer<T>,
    n: usize,
}

impl<T> WriteChunkUninit<'_, T> {
    /// The chunk's slots in order: the second slice is empty unless the
    /// chunk wraps around the end of the ring.
    pub fn as_mut_slices(&mut self) -> (&mut [MaybeUninit<T>], &mut [MaybeUninit<T>]) {
        let p = &*self.producer;
        let (start, first, second) = runs(p.mask, p.tail, self.n);
        let base = p.buf.as_ptr().cast::<MaybeUninit<T>>();
        // SAFETY: the runs are the chunk's free slots (distinct, inside the
        // slot array), valid as `MaybeUninit<T>`; this producer alone
        // touches them until they are published; `&mut self` lends once.
        unsafe {
            (
                std::slice::from_raw_parts_mut(base.add(start), first),
                std::slice::from_raw_parts_mut(base, second),
            )
        }
    }

    /// Slots in the chunk.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the chunk has no slots.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Publish the first `n` slots (at most the chunk's length; returns
    /// how many).
    ///
    /// # Safety
    /// Those slots hold values written through
    /// [`as_mut_slices`](Self::as_mut_slices).
    pub unsafe fn commit(self, n: usize) -> usize {
        let n = n.min(self.n);
        self.producer.tail += n;
        self.producer.publish();
        n
    }

    /// Publish every slot of the chunk.
    ///
    /// # Safety
    /// Every slot holds a value written through
    /// [`as_mut_slices`](Self::as_mut_slices).
    pub unsafe fn commit_all(self) -> usize {
        let n = self.n;
        // SAFETY: the caller's promise, for all `n` slots.
        unsafe { self.commit(n) }
    }

    /// Move values from `iter` into the chunk until it is full or the
    /// iterator ends, and publish them; returns how many. If the iterator
    /// panics, the values it gave before are published.
    pub fn fill_from_iter<I: IntoIterator<Item = T>>(self, iter: I) -> usize {
        /// Publishes the values written so far when dropped, also when
        /// `next` (user code) unwinds.
        struct Written<'a, T> {
            producer: &'a mut Producer<T>,
            k: usize,
        }
        impl<T> Drop for Written<'_, T> {
            fn drop(&mut self) {
                self.producer.tail += self.k;
                self.producer.publish();
            }
        }
        let n = self.n;
        let mut w = Written {
            producer: self.producer,
            k: 0,
        };
        let mut iter = iter.into_iter();
        while w.k < n {
            let Some(v) = iter.next() else { break };
            // SAFETY: slot `tail + k` is one of the chunk's free,
            // unpublished slots (k < n).
            unsafe { w.producer.write(w.producer.tail + w.k, v) };
            w.k += 1;
        }
        w.k
    }
}

impl<T> std::fmt::Debug for WriteChunkUninit<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteChunkUninit")
            .field("len", &self.n)
            .finish()
    }
}

impl<T> Consumer<T> {
    /// `n` filled slots, lent in place, freed with [`ReadChunk::commit`]
    /// (like `rtrb`'s `read_chunk`).
    ///
    /// # Errors
    /// [`ChunkError::TooFewSlots`] when fewer than `n` values are there
    /// (always for `n` above the capacity).
    pub fn read_chunk(&mut self, n: usize) -> Result<ReadChunk<'_, T>, ChunkError> {
        let available = self.available(n);
        if available < n {
            return Err(ChunkError::TooFewSlots {
                requested: n,
                available,
                capacity: self.mask + 1,
            });
        }
        Ok(ReadChunk { consumer: self, n })
    }
}

/// Filled slots of an SPSC ring lent in place; see
/// [`Consumer::read_chunk`]. Dropped without a commit, it leaves the
/// values in the ring.
pub struct ReadChunk<'a, T> {
    consumer: &'a mut Consumer<T>,
    n: usize,
}

impl<'a, T> ReadChunk<'a, T> {
    /// The chunk's values in order: the second slice is empty unless the
    /// chunk wraps around the end of the ring.
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let c = &*self.consumer;
        let (start, first, second) = runs(c.mask, c.head, self.n);
        let base = base(c.buf);
        // SAFETY: the runs are the chunk's published values (distinct
        // slots inside the array); the producer does not touch them until
        // `head` passes them, which needs this chunk's commit.
        unsafe {
            (
                std::slice::from_raw_parts(base.add(start), first),
                std::slice::from_raw_parts(base, second),
            )
        }
    }

    /// As [`as_slices`](Self::as_slices), mutable.
    pub fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        let c = &*self.consumer;
        let (start, first, second) = runs(c.mask, c.head, self.n);
        let base = base(c.buf);
        // SAFETY: as in `as_slices`; `&mut self` lends them once.
        unsafe {
            (
                std::slice::from_raw_parts_mut(base.add(start), first),
                std::slice::from_raw_parts_mut(base, second),
            )
        }
    }

    /// Values in the chunk.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the chunk has no values.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Drop the first `n` values (at most the chunk's length; returns how
    /// many) and free their slots; the others stay in the ring. If a
    /// value's `Drop` panics, the rest are still dropped and all `n` slots
    /// freed.
    pub fn commit(self, n: usize) -> usize {
        /// Frees the slots when dropped, also while a `Drop` unwinds.
        struct Free<'a, T> {
            consumer: &'a mut Consumer<T>,
            n: usize,
        }
        impl<T> Drop for Free<'_, T> {
            fn drop(&mut self) {
                self.consumer.head += self.n;
                self.consumer.release();
            }
        }
        let n = n.min(self.n);
        let free = Free {
            consumer: self.consumer,
            n,
        };
        let c = &*free.consumer;
        drop_positions(c.head..c.head + n, |pos| {
            // SAFETY: positions head..head + n hold published values of
            // this chunk; each is dropped once, then freed by `Free`.
            unsafe { (*super::slot_at(c.buf, c.mask, pos)).with_mut(|s| (*s).assume_init_drop()) };
        });
        n
    }

    /// Drop every value of the chunk and free the slots.
    pub fn commit_all(self) -> usize {
        let n = self.n;
        self.commit(n)
    }
}

impl<'a, T> IntoIterator for ReadChunk<'a, T> {
    type Item = T;
    type IntoIter = ReadChunkIntoIter<'a, T>;

    /// Move the chunk's values out one by one; the slots of those taken
    /// are freed when the iterator is dropped, the others stay in the ring.
    fn into_iter(self) -> ReadChunkIntoIter<'a, T> {
        ReadChunkIntoIter {
            consumer: self.consumer,
            n: self.n,
            taken: 0,
        }
    }
}

/// The values of a [`ReadChunk`], moved out; see its `into_iter`.
pub struct ReadChunkIntoIter<'a, T> {
    consumer: &'a mut Consumer<T>,
    n: usize,
    taken: usize,
}

impl<T> Iterator for ReadChunkIntoIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.taken == self.n {
            return None;
        }
        // SAFETY: position `head + taken` holds a published value of the
        // chunk not yet taken; `taken` moves past it at once.
        let v = unsafe { self.consumer.read(self.consumer.head + self.taken) };
        self.taken += 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.n - self.taken, Some(self.n - self.taken))
    }
}

impl<T> ExactSizeIterator for ReadChunkIntoIter<'_, T> {}

impl<T> Drop for ReadChunkIntoIter<'_, T> {
    fn drop(&mut self) {
        self.consumer.head += self.taken;
        self.consumer.release();
    }
}

impl<T> std::fmt::Debug for ReadChunk<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadChunk").field("len", &self.n).finish()
    }
}

/// Bytes written go into the ring, as many as fit now.
///
/// `write` returns [`io::ErrorKind::WouldBlock`] when the ring is full
/// (for a non-empty buffer) and [`io::ErrorKind::BrokenPipe`] once the
/// consumer is gone; `flush` has nothing to do.
impl io::Write for Producer<u8> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the ring's consumer is gone",
            ));
        }
        match self.push_slice(buf) {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes read come out of the ring, as many as are there now.
///
/// `read` returns [`io::ErrorKind::WouldBlock`] when the ring is empty (for
/// a non-empty buffer) and `Ok(0)` (end of file) once it is empty and the
/// producer is gone.
impl io::Read for Consumer<u8> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.pop_slice(buf) {
            0 => match self.empty_error() {
                PopError::Closed => Ok(0),
                PopError::Empty => Err(io::ErrorKind::WouldBlock.into()),
            },
            n => Ok(n),
        }
    }
}
