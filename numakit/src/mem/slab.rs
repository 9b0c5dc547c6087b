//! [`Slab`] and [`RawSlab`]: fixed-size objects on one node, allocated and
//! freed in O(1) from an intrusive free list.
//!
//! See [`RawSlab`] for how a slab is laid out.

use super::arena::round_up;
use super::asan;
use super::region::Region;
use super::{MemError, PageKind, PageMap};
use crate::topology::NodeId;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, ManuallyDrop};
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};

/// Default growth step of a slab: 2 MiB, the granule arenas populate in.
pub const DEFAULT_SLAB_CHUNK: usize = 2 << 20;

/// Options for [`Slab`] and [`RawSlab`], in the style of
/// [`ArenaBuilder`](super::ArenaBuilder).
///
/// - [`capacity`](Self::capacity): objects populated at build time;
/// - [`max_capacity`](Self::max_capacity): the most objects the slab may
///   hold; it grows towards it in [`chunk_bytes`](Self::chunk_bytes) steps
///   (default: equal to `capacity`, i.e. a fixed slab);
/// - [`pages`](Self::pages): the page kind of the reservation.
///
/// # Examples
/// ```
/// use numakit::mem::{Slab, SlabBuilder};
/// let slab: Slab<[u64; 4]> = SlabBuilder::new(0)
///     .capacity(1024)
///     .max_capacity(1 << 20) // grows on node 0, never past 2^20 objects
///     .build()?;
/// let a = slab.alloc([1, 2, 3, 4]);
/// assert_eq!(a[2], 3);
/// drop(a); // back on the free list
/// assert_eq!(slab.len(), 0);
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .build()"]
pub struct SlabBuilder {
    node: NodeId,
    capacity: usize,
    max: Option<usize>,
    chunk: usize,
    kind: PageKind,
}

impl SlabBuilder {
    /// Options for a slab on `node` (required; never inferred), with no
    /// capacity yet.
    pub fn new(node: impl Into<NodeId>) -> Self {
        SlabBuilder {
            node: node.into(),
            capacity: 0,
            max: None,
            chunk: DEFAULT_SLAB_CHUNK,
            kind: PageKind::Normal,
        }
    }
    /// Objects populated at build time (default 0).
    pub fn capacity(mut self, objects: usize) -> Self {
        self.capacity = objects;
        self
    }
    /// The most objects the slab may hold; allocating past it is
    /// [`MemError::SlabFull`]. Default: the [`capacity`](Self::capacity).
    pub fn max_capacity(mut self, objects: usize) -> Self {
        self.max = Some(objects);
        self
    }
    /// Bytes populated per growth step (rounded up to the page size).
    /// Default [`DEFAULT_SLAB_CHUNK`].
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk = bytes;
        self
    }
    /// The page kind of the slab's memory. Default [`PageKind::Normal`].
    pub fn pages(mut self, kind: PageKind) -> Self {
        self.kind = kind;
        self
    }

    /// A typed slab of `T`s.
    ///
    /// # Errors
    /// As [`build_raw`](Self::build_raw) with `T`'s size and alignment.
    pub fn build<T>(self) -> Result<Slab<T>, MemError> {
        Ok(Slab {
            raw: self.build_raw(size_of::<T>(), align_of::<T>())?,
            _owns: PhantomData,
        })
    }

    /// A slab of `size`-byte objects aligned to `align`.
    ///
    /// # Errors
    /// - [`MemError::InvalidAlignment`]: `align` not a power of two;
    /// - [`MemError::InvalidConfig`]: `align` above the page size, a zero
    ///   chunk or one above `isize::MAX` bytes, or `max_capacity` below
    ///   `capacity`;
    /// - [`MemError::InvalidSize`]: no room for any object (both capacities 0);
    /// - [`MemError::SizeOverflow`]: `max_capacity` objects do not fit the
    ///   address space;
    /// - as [`ArenaBuilder::build`](super::ArenaBuilder::build): absent or
    ///   memoryless node, more than the node has, not enough free memory for
    ///   the initial capacity, hugepages missing, a refused syscall.
    pub fn build_raw(self, size: usize, align: usize) -> Result<RawSlab, MemError> {
        if !align.is_power_of_two() {
            return Err(MemError::InvalidAlignment { align });
        }
        let page = self.kind.page_size();
        if align > page {
            return Err(MemError::InvalidConfig(format!(
                "slab objects aligned to {align} bytes: slabs align objects to at most \
                 the page size ({page} bytes for {:?} pages)",
                self.kind
            )));
        }
        if self.chunk == 0 {
            return Err(MemError::InvalidConfig(
                "slab chunk_bytes(0): the growth step must be at least one page".into(),
            ));
        }
        // No region is larger than isize::MAX bytes, so no step needs to be;
        // bounding it keeps `populated + chunk` from overflowing when growing.
        if self.chunk > isize::MAX as usize {
            return Err(MemError::InvalidConfig(format!(
                "slab chunk_bytes({}): the growth step may be at most {} bytes (isize::MAX, \
                 the largest region); use a step of a few MiB",
                self.chunk,
                isize::MAX
            )));
        }
        let max = self.max.unwrap_or(self.capacity);
        if max < self.capacity {
            return Err(MemError::InvalidConfig(format!(
                "slab max_capacity ({max} objects) is below its capacity ({} objects); \
                 raise max_capacity or lower capacity",
                self.capacity
            )));
        }
        if max == 0 {
            return Err(MemError::InvalidSize {
                requested: 0,
                reason: "a slab needs room for at least one object: set capacity() \
                         or max_capacity()"
                    .into(),
            });
        }
        // Every object can hold the free-list link at its start, aligned.
        let align = align.max(align_of::<*mut u8>());
        let stride = round_up(size.max(size_of::<*mut u8>()), align)
            .ok_or(MemError::SizeOverflow { count: 1, size })?;
        let limit = max.checked_mul(stride).ok_or(MemError::SizeOverflow {
            count: max,
            size: stride,
        })?;
        let region = Region::map(self.node, limit, self.kind)?;
        let chunk = round_up(self.chunk, page).unwrap_or(page).max(page);
        let initial = self.capacity * stride; // <= limit: no overflow
        if initial > 0 {
            region.populate(0, initial)?;
        }
        let populated = round_up(initial, page)
            .unwrap_or(region.len())
            .min(region.len());
        Ok(RawSlab {
            region,
            size,
            stride,
            multiple: MultipleOf::new(stride),
            limit,
            max_objects: max,
            chunk,
            free: Cell::new(ptr::null_mut()),
            carved: Cell::new(0),
            avail: Cell::new(whole(populated.min(limit), stride)),
            populated: Cell::new(populated),
            in_use: Cell::new(0),
        })
    }
}

/// "Is `n` a multiple of `d`?" with a shift, a multiplication and a
/// compare instead of a division (Granlund–Montgomery): for
/// `d = odd << shift`, `n` is a multiple iff its low `shift` bits are zero
/// and `(n >> shift) * odd⁻¹ mod 2⁶⁴ <= usize::MAX / odd`.
#[derive(Clone, Copy, Debug)]
struct MultipleOf {
    shift: u32,
    inverse: usize,
    limit: usize,
}

impl MultipleOf {
    fn new(d: usize) -> Self {
        let shift = d.trailing_zeros();
        let odd = d >> shift;
        // Newton's iteration doubles the correct low bits each step:
        // 3 → 6 → 12 → 24 → 48 → 96 ≥ 64.
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2usize.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        MultipleOf {
            shift,
            inverse,
            limit: usize::MAX / odd,
        }
    }

    #[inline]
    fn of(&self, n: usize) -> bool {
        n & ((1 << self.shift) - 1) == 0
            && (n >> self.shift).wrapping_mul(self.inverse) <= self.limit
    }
}

/// `bytes` rounded down to whole objects of `stride`.
fn whole(bytes: usize, stride: usize) -> usize {
    bytes / stride * stride
}

/// A slab of objects whose size and alignment are known only at run time:
/// raw pointers in, raw pointers out.
///
/// Not `Sync`: one thread allocates and frees (send the slab to move it);
/// [`NodeHeap`](super::NodeHeap) is the thread-safe allocator.
///
/// # Layout
///
/// A slab reserves the address space for its maximum capacity as one
/// node-bound region at build time (bound with `MPOL_BIND`, nothing
/// touched), populates the initial capacity, and grows by populating the
/// next chunk of the same region, checked against the node's free memory
/// like an arena. So growth can never land on another node, and "is this
/// pointer mine?" is one range check.
///
/// ```text
/// base ─► ┌────────┬────────┬────────┬─────┬────────┐
///         │ obj 0  │ obj 1  │ obj 2  │ ... │ obj k  │ ◄─ carved: handed out at least once
///         ├────────┴────────┴────────┴─────┴────────┤ ◄─ `carved`
///         │ populated, never handed out             │
///         ├─────────────────────────────────────────┤ ◄─ `avail` (populated, in whole objects)
///         │ reserved, populated chunk by chunk      │
///         └─────────────────────────────────────────┘ ◄─ max_capacity × stride
/// ```
///
/// A freed object holds the address of the next free object in its first
/// word; `alloc` pops the list head, or carves the next never-used object,
/// or populates the next chunk.
///
/// # Examples
/// ```
/// use numakit::mem::SlabBuilder;
/// let slab = SlabBuilder::new(0).capacity(100).build_raw(24, 8)?;
/// let p = slab.alloc()?;
/// // SAFETY: 24 writable bytes, aligned to 8.
/// unsafe { p.cast::<[u64; 3]>().write([1, 2, 3]) };
/// // SAFETY: `p` came from this slab and is not used again.
/// unsafe { slab.free(p)? };
/// let foreign = 0u64;
/// // A pointer the slab never handed out is an error, not corruption.
/// assert!(unsafe { slab.free(std::ptr::NonNull::from(&foreign).cast()) }.is_err());
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct RawSlab {
    region: Region,
    /// Object size as asked for.
    size: usize,
    /// Distance between objects: the size rounded up to the alignment, and
    /// at least one pointer.
    stride: usize,
    /// Tests "is a multiple of `stride`" without a division.
    multiple: MultipleOf,
    /// End of the object space: `max_objects * stride`.
    limit: usize,
    max_objects: usize,
    /// Bytes populated per growth step.
    chunk: usize,
    /// Head of the free list (objects freed and not handed out again).
    free: Cell<*mut u8>,
    /// Offset below which every object has been handed out at least once.
    carved: Cell<usize>,
    /// Offset up to which whole objects are populated.
    avail: Cell<usize>,
    /// Offset up to which pages are populated.
    populated: Cell<usize>,
    in_use: Cell<usize>,
}

// SAFETY: the raw pointers (free list) point into the region the slab owns;
// moving the slab to another thread moves that ownership with it. The slab
// is not Sync (Cells), so only one thread uses it at a time.
unsafe impl Send for RawSlab {}

/// A snapshot of a slab's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabStats {
    /// The node the slab is bound to.
    pub node: NodeId,
    /// Bytes per object, as asked for.
    pub object_size: usize,
    /// Distance between objects (size rounded up to alignment, at least
    /// one pointer).
    pub stride: usize,
    /// Objects handed out and not freed.
    pub in_use: usize,
    /// Objects that fit in the populated memory.
    pub capacity: usize,
    /// The most objects the slab may hold.
    pub max_capacity: usize,
    /// Bytes reserved (address space, bound to the node).
    pub bytes_reserved: usize,
    /// Bytes populated (resident, on the node).
    pub bytes_populated: usize,
}

impl RawSlab {
    /// A fixed slab of `capacity` objects of `size` bytes aligned to
    /// `align`, populated now.
    ///
    /// # Errors
    /// As [`SlabBuilder::build_raw`].
    pub fn new(
        node: impl Into<NodeId>,
        size: usize,
        align: usize,
        capacity: usize,
    ) -> Result<Self, MemError> {
        SlabBuilder::new(node)
            .capacity(capacity)
            .build_raw(size, align)
    }

    /// An object's memory: `object_size` bytes, aligned as asked, contents
    /// unspecified (zero the first time, the previous occupant's bytes
    /// after a free — except the first word, which held the free-list link).
    ///
    /// # Errors
    /// [`MemError::SlabFull`] when `max_capacity` objects are in use;
    /// [`MemError::OutOfNodeMemory`] / [`MemError::HugepagesUnavailable`]
    /// when the next chunk cannot be populated on the node.
    #[inline]
    pub fn alloc(&self) -> Result<NonNull<u8>, MemError> {
        let head = self.free.get();
        if let Some(p) = NonNull::new(head) {
            // SAFETY: `p` is a free object of this slab; its first word holds
            // the next free object (written by `push_free`), aligned.
            self.free.set(unsafe { asan::read_link(p.as_ptr()) });
            self.in_use.set(self.in_use.get() + 1);
            asan::unpoison(p.as_ptr(), self.size);
            return Ok(p);
        }
        let off = self.carved.get();
        if off + self.stride <= self.avail.get() {
            self.carved.set(off + self.stride);
            self.in_use.set(self.in_use.get() + 1);
            // SAFETY: `off < avail <= region.len()`: inside the mapping.
            let p = unsafe { NonNull::new_unchecked(self.region.base().as_ptr().add(off)) };
            self.carve_padding(p);
            return Ok(p);
        }
        self.alloc_grow()
    }

    /// A never-used object is handed out: the bytes between its size and
    /// the stride stay poisoned for ASan for as long as it lives (a write
    /// past the object is reported), and so does the whole slot once freed.
    #[inline(always)]
    fn carve_padding(&self, p: NonNull<u8>) {
        // `size <= stride`: inside the object's slot.
        asan::poison(p.as_ptr().wrapping_add(self.size), self.stride - self.size);
    }

    #[cold]
    #[inline(never)]
    fn alloc_grow(&self) -> Result<NonNull<u8>, MemError> {
        let off = self.carved.get();
        if off + self.stride > self.limit {
            return Err(MemError::SlabFull {
                node: self.node(),
                object_size: self.size,
                max_objects: self.max_objects,
            });
        }
        let from = self.populated.get();
        // At least up to the object's end (a chunk smaller than an object
        // still makes progress), at most to the end of the region.
        let to = from
            .saturating_add(self.chunk)
            .max(off + self.stride)
            .min(self.region.len());
        self.region.populate(from, to - from)?;
        let populated = round_up(to, self.region.kind().page_size())
            .unwrap_or(self.region.len())
            .min(self.region.len());
        self.populated.set(populated);
        self.avail
            .set(whole(populated.min(self.limit), self.stride));
        self.alloc()
    }

    /// Put `p` on the free list.
    ///
    /// # Safety
    /// `p` is an object of this slab that is handed out and not used again.
    #[inline]
    unsafe fn push_free(&self, p: NonNull<u8>) {
        // Poisoned while free; the link word is reached through `asan` only.
        asan::poison(p.as_ptr(), self.stride);
        // SAFETY: per the contract the object is ours to overwrite; objects
        // are aligned for a pointer.
        unsafe { asan::write_link(p.as_ptr(), self.free.get()) };
        self.free.set(p.as_ptr());
        self.in_use.set(self.in_use.get() - 1);
    }

    /// Give an object back.
    ///
    /// A pointer that this slab did not hand out (outside its objects, or
    /// not at the start of one) is refused with
    /// [`MemError::ForeignPointer`] and changes nothing.
    ///
    /// # Safety
    /// If `p` was handed out by this slab, it must not have been freed
    /// since (double frees are not detected) and must not be used after
    /// this call.
    ///
    /// # Errors
    /// [`MemError::ForeignPointer`], as above.
    #[inline]
    pub unsafe fn free(&self, p: NonNull<u8>) -> Result<(), MemError> {
        let base = self.region.base().as_ptr() as usize;
        let addr = p.as_ptr() as usize;
        let off = addr.wrapping_sub(base);
        if addr < base || off >= self.carved.get() || !self.multiple.of(off) {
            return Err(self.foreign(addr));
        }
        // SAFETY: `p` is the start of an object this slab handed out (range
        // and stride checked); the caller guarantees it is not freed twice
        // nor used again.
        unsafe { self.push_free(p) };
        Ok(())
    }

    /// The error for a pointer this slab did not hand out.
    #[cold]
    #[inline(never)]
    fn foreign(&self, addr: usize) -> MemError {
        let start = self.region.base().as_ptr() as usize;
        MemError::ForeignPointer {
            addr,
            node: self.node(),
            start,
            end: start + self.carved.get(),
            stride: self.stride,
        }
    }

    /// Whether `p` lies inside an object this slab has handed out at some
    /// point (live or free).
    pub fn contains(&self, p: *const u8) -> bool {
        let base = self.region.base().as_ptr() as usize;
        (base..base + self.carved.get()).contains(&(p as usize))
    }

    /// The node the slab's memory is bound to.
    pub fn node(&self) -> NodeId {
        self.region.node()
    }
    /// Bytes per object, as asked for.
    pub fn object_size(&self) -> usize {
        self.size
    }
    /// Distance between two objects.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// Objects handed out and not freed.
    pub fn len(&self) -> usize {
        self.in_use.get()
    }
    /// Whether no object is handed out.
    pub fn is_empty(&self) -> bool {
        self.in_use.get() == 0
    }
    /// Objects that fit in the memory populated so far.
    pub fn capacity(&self) -> usize {
        self.avail.get() / self.stride
    }
    /// The most objects the slab may hold.
    pub fn max_capacity(&self) -> usize {
        self.max_objects
    }

    /// The slab's figures.
    pub fn stats(&self) -> SlabStats {
        SlabStats {
            node: self.node(),
            object_size: self.size,
            stride: self.stride,
            in_use: self.len(),
            capacity: self.capacity(),
            max_capacity: self.max_objects,
            bytes_reserved: self.region.len(),
            bytes_populated: self.populated.get(),
        }
    }

    /// Where the populated pages are, as the kernel reports them.
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<PageMap, MemError> {
        self.region.placement(0, self.populated.get())
    }

    /// Prove placement: every populated page is on the slab's node.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] with the placement found when a page is
    /// elsewhere; [`MemError::Os`] if `move_pages` fails.
    pub fn verify(&self) -> Result<PageMap, MemError> {
        self.placement()?.ensure_on(self.node())
    }
}

impl fmt::Debug for RawSlab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSlab")
            .field("node", &self.node())
            .field("object_size", &self.size)
            .field("stride", &self.stride)
            .field("in_use", &self.len())
            .field("capacity", &self.capacity())
            .field("max_capacity", &self.max_objects)
            .finish()
    }
}

/// A slab of `T`s on one node: [`alloc`](Slab::alloc) moves a value in
/// and hands back a [`SlabBox`], which drops the value and frees the slot
/// when it goes out of scope.
///
/// Allocation and free are O(1): pop or push on an intrusive free list,
/// or carve the next never-used slot.
///
/// `Send` (when `T` is) but not `Sync`, like [`RawSlab`]:
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<numakit::mem::Slab<u64>>();
/// ```
///
/// # Examples
/// ```
/// use numakit::mem::Slab;
/// let slab = Slab::<String>::new(0, 1000)?; // fixed: 1000 slots on node 0
/// let names: Vec<_> = (0..10).map(|i| slab.alloc(format!("n{i}"))).collect();
/// assert_eq!(*names[3], "n3");
/// assert_eq!(slab.len(), 10);
/// drop(names); // each String dropped, each slot freed
/// assert!(slab.is_empty());
/// assert!(slab.verify()?.is_all_on(numakit::NodeId::new(0)));
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct Slab<T> {
    raw: RawSlab,
    _owns: PhantomData<T>,
}

impl<T> Slab<T> {
    /// A fixed slab of `capacity` `T`s on `node`, populated now.
    ///
    /// # Errors
    /// As [`SlabBuilder::build_raw`].
    pub fn new(node: impl Into<NodeId>, capacity: usize) -> Result<Self, MemError> {
        SlabBuilder::new(node).capacity(capacity).build()
    }

    /// Move `value` into a free slot.
    ///
    /// # Errors
    /// As [`RawSlab::alloc`]; `value` is dropped on error.
    #[inline]
    pub fn try_alloc(&self, value: T) -> Result<SlabBox<'_, T>, MemError> {
        let p = self.raw.alloc()?.cast::<T>();
        // SAFETY: a fresh slot, aligned and sized for T (stride >= size).
        unsafe { p.as_ptr().write(value) };
        Ok(SlabBox {
            ptr: p,
            slab: &self.raw,
            _owns: PhantomData,
        })
    }

    /// Move `value` into a free slot.
    ///
    /// # Panics
    /// When [`try_alloc`](Self::try_alloc) fails (slab full, node out of
    /// memory); the message is the error's.
    #[inline]
    pub fn alloc(&self, value: T) -> SlabBox<'_, T> {
        self.try_alloc(value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The untyped slab underneath (figures, placement).
    pub fn as_raw(&self) -> &RawSlab {
        &self.raw
    }
    /// The node the slab's memory is bound to.
    pub fn node(&self) -> NodeId {
        self.raw.node()
    }
    /// Values in the slab.
    pub fn len(&self) -> usize {
        self.raw.len()
    }
    /// Whether the slab holds no value.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
    /// Slots in the memory populated so far.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }
    /// The most values the slab may hold.
    pub fn max_capacity(&self) -> usize {
        self.raw.max_capacity()
    }
    /// The slab's figures.
    pub fn stats(&self) -> SlabStats {
        self.raw.stats()
    }
    /// Prove placement: every populated page is on the slab's node.
    ///
    /// # Errors
    /// As [`RawSlab::verify`].
    pub fn verify(&self) -> Result<PageMap, MemError> {
        self.raw.verify()
    }
}

impl<T> fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slab")
            .field("type", &std::any::type_name::<T>())
            .field("node", &self.node())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("max_capacity", &self.max_capacity())
            .finish()
    }
}

/// A value in a [`Slab`]: dropping it drops the value and frees the slot.
pub struct SlabBox<'s, T> {
    ptr: NonNull<T>,
    slab: &'s RawSlab,
    _owns: PhantomData<T>,
}

impl<'s, T> SlabBox<'s, T> {
    /// Move the value out and free the slot.
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the value is initialised and read exactly once (`this` is
        // never dropped); the slot is then freed, and nothing uses it again.
        unsafe {
            let value = this.ptr.as_ptr().read();
            this.slab.push_free(this.ptr.cast());
            value
        }
    }

    /// Keep the value for as long as the slab lives; its slot is never
    /// freed and its destructor never runs.
    pub fn leak(this: Self) -> &'s mut T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the slot stays handed out for the slab's lifetime `'s`, and
        // this was the only handle to it.
        unsafe { &mut *this.ptr.as_ptr() }
    }

    /// The value's address.
    pub fn as_ptr(this: &Self) -> *const T {
        this.ptr.as_ptr()
    }
}

impl<T> Deref for SlabBox<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: initialised at allocation, alive until drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for SlabBox<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for SlabBox<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the value is initialised and dropped only here; the slot
        // came from `slab`, is handed out, and this box was its only handle.
        unsafe {
            ptr::drop_in_place(self.ptr.as_ptr());
            self.slab.push_free(self.ptr.cast());
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for SlabBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::MultipleOf;

    #[test]
    fn multiple_of_agrees_with_the_remainder() {
        for d in (8..2000).chain([4096, 5000, 24 << 20, (1 << 40) + 8]) {
            let m = MultipleOf::new(d);
            // Every remainder twice from 0 (the first 20 000 for the large
            // divisors), then around multiples spread over the whole range
            // up to the largest one.
            let top = usize::MAX / d;
            let far = (1..64).map(|k| top / 64 * k).chain([12345, top - 1, top]);
            let around = far.flat_map(|k| {
                let b = k * d;
                [
                    b.checked_sub(1),
                    Some(b),
                    b.checked_add(1),
                    b.checked_add(d - 1),
                ]
                .into_iter()
                .flatten()
            });
            for n in (0..(2 * d + 2).min(20_000))
                .chain(around)
                .chain([usize::MAX, usize::MAX - 7])
            {
                assert_eq!(m.of(n), n % d == 0, "n {n} d {d}");
            }
        }
    }
}
