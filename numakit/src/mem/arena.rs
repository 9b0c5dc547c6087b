//! [`Arena`]: a node-strict region with a bump allocator.

use super::asan;
use super::region::Region;
use super::{MemError, PageKind, PageMap};
use crate::topology::NodeId;
use std::alloc::Layout;
use std::cell::Cell;
use std::fmt;
use std::ptr::NonNull;

/// When pages are faulted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Populate {
    /// All of the capacity at `build()`, in checked chunks: `build()` fails
    /// if the node cannot provide it, and allocation never faults.
    #[default]
    Now,
    /// In checked chunks as the bump pointer advances: no up-front cost, and
    /// an allocation the node cannot back is an `Err`, not an OOM kill.
    OnDemand,
    /// Never explicitly: pages fault in when first written, bound to the
    /// node. Exhausting the node then meets the kernel's OOM killer, so use
    /// this only with memory you know is there. Refused for hugetlb pages
    /// (which would `SIGBUS`).
    Lazy,
}

/// The granule of [`Populate::OnDemand`] growth.
const ON_DEMAND_CHUNK: usize = 2 << 20;

const HEADER_MAGIC: u64 = u64::from_le_bytes(*b"nkarena\0");

/// Bytes reserved at the base for the header (one cache line).
const HEADER_SPAN: usize = 64;
const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SPAN);

/// The header at the base of every arena region (the seed's layout).
#[repr(C)]
struct Header {
    magic: u64,
    node: u32,
    kind: u32,
    capacity: u64,
}

/// Builder for [`Arena`] and [`SharedArena`](super::SharedArena).
///
/// # Examples
/// ```
/// use numakit::mem::{Arena, PageKind, Populate};
/// let arena = Arena::builder(0)
///     .capacity(4 << 20)
///     .pages(PageKind::Normal)
///     .populate(Populate::Now)
///     .build()?;
/// let x = arena.alloc(42u64);
/// assert_eq!(*x, 42);
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .build()"]
pub struct ArenaBuilder {
    node: NodeId,
    capacity: usize,
    kind: PageKind,
    populate: Populate,
}

impl ArenaBuilder {
    /// Capacity in bytes (rounded up to the page size; header included).
    /// Default: 64 MiB.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }
    /// The kind of pages. Default: [`PageKind::Normal`].
    pub fn pages(mut self, kind: PageKind) -> Self {
        self.kind = kind;
        self
    }
    /// When pages are faulted in. Default: [`Populate::Now`].
    pub fn populate(mut self, populate: Populate) -> Self {
        self.populate = populate;
        self
    }

    /// Map, bind and (per [`Populate`]) populate the region.
    ///
    /// # Errors
    /// - [`MemError::Topology`]: the node does not exist (names those that do);
    /// - [`MemError::MemorylessNode`]: the node has no memory;
    /// - [`MemError::InvalidSize`]: capacity 0, or more than the node has;
    /// - [`MemError::HugepagesUnavailable`] / [`MemError::HugepageSizeUnsupported`];
    /// - [`MemError::OutOfNodeMemory`]: the node cannot provide the capacity now;
    /// - [`MemError::InvalidConfig`]: [`Populate::Lazy`] with hugetlb pages;
    /// - [`MemError::Os`]: `mmap`/`mbind`/`madvise` refused (errno kept).
    pub fn build(self) -> Result<Arena, MemError> {
        let (core, limit) = self.map()?;
        Ok(Arena {
            cur: Cell::new(core.start),
            limit: Cell::new(limit),
            core,
        })
    }

    /// Map the region, populate it per the builder, write the header;
    /// returns the region with its start offset and the populated limit.
    pub(super) fn map(&self) -> Result<(ArenaRegion, usize), MemError> {
        if self.populate == Populate::Lazy && self.kind.is_hugetlb() {
            return Err(MemError::InvalidConfig(format!(
                "Populate::Lazy with {:?} pages would turn an empty hugepage pool into SIGBUS \
                 on first touch; use Populate::Now or Populate::OnDemand",
                self.kind
            )));
        }
        let region = Region::map(self.node, self.capacity, self.kind)?;
        // Allocations start on the cache line after the header: objects
        // whose size is a multiple of 64 then never straddle lines.
        let header_len = HEADER_SPAN;
        match self.populate {
            Populate::Now => region.populate(0, region.len())?,
            Populate::OnDemand => region.populate(0, header_len)?,
            Populate::Lazy => {}
        }
        let header = Header {
            magic: HEADER_MAGIC,
            node: self.node.get(),
            kind: self.kind as u32,
            capacity: region.len() as u64,
        };
        // SAFETY: the region is at least one page, page-aligned (so aligned
        // for Header), writable, and nothing else references it yet.
        unsafe { region.base().cast::<Header>().as_ptr().write(header) };
        let limit = match self.populate {
            Populate::Now | Populate::Lazy => region.len(),
            // The header's page(s) are populated.
            Populate::OnDemand => round_up(header_len, self.kind.page_size())
                .unwrap_or(region.len())
                .min(region.len()),
        };
        // Nothing is allocated yet: all of the populated part after the
        // header is unaddressable for ASan until handed out.
        asan::poison(
            region.base().as_ptr().wrapping_add(header_len),
            limit - header_len,
        );
        let core = ArenaRegion {
            region,
            start: header_len,
            populate: self.populate,
        };
        Ok((core, limit))
    }
}

/// A node-strict bump arena.
///
/// Layout (the seed's): the region's base is aligned to its page size and
/// starts with a small header; allocations follow it, bumping upwards.
///
/// ```text
/// base ─► ┌──────────────────────────────┐  aligned to the page size
///         │ header (magic, node, kind,   │
///         │         capacity)            │
///         ├──────────────────────────────┤ ◄─ first allocation
///         │ allocations …                │
///         ├──────────────────────────────┤ ◄─ bump pointer (`used`)
///         │ populated, unused            │
///         ├──────────────────────────────┤ ◄─ populated limit
///         │ reserved, not yet populated  │
///         └──────────────────────────────┘ ◄─ capacity
/// ```
///
/// The fast path is one add, one mask and one compare against the
/// populated limit. Crossing the limit takes the slow path, which populates
/// the next chunk after checking that the node can give it (see [`mem`](super)).
///
/// # Destructors
/// The arena never runs destructors: typed allocation of a type that needs
/// `Drop` is refused **at compile time** (an assertion evaluated when the
/// call is monomorphised, i.e. at `cargo build`, not `cargo check`). Put such
/// values in a `Box`/collection, or wrap them in
/// [`ManuallyDrop`](std::mem::ManuallyDrop) if leaking them on `reset` is
/// what you want.
///
/// # Threads
/// `Arena` is `Send` but not `Sync` (the bump pointer is a `Cell`): hand it to
/// the thread that uses it, or use [`SharedArena`](super::SharedArena) whose
/// bump pointer is atomic.
///
/// # Examples
/// ```
/// use numakit::mem::Arena;
/// let arena = Arena::new(0, 1 << 20)?;
/// let xs = arena.alloc_slice_fill_with(1000, |i| i as u32);
/// assert_eq!(xs[999], 999);
/// let placement = arena.verify()?; // every used page is on node 0
/// assert!(placement.is_all_on(numakit::NodeId::new(0)));
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct Arena {
    core: ArenaRegion,
    /// Offset of the bump pointer.
    cur: Cell<usize>,
    /// Offset up to which pages are populated (or the capacity, for
    /// `Now`/`Lazy`): the fast path allocates below it.
    limit: Cell<usize>,
}

/// A snapshot of an arena's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaStats {
    /// The node the arena is bound to.
    pub node: NodeId,
    /// Its page kind.
    pub page_kind: PageKind,
    /// Bytes reserved (header included).
    pub capacity: usize,
    /// Bytes below the bump pointer (header included).
    pub used: usize,
    /// Bytes resident in memory now (`mincore(2)`).
    pub resident: usize,
}

impl Arena {
    /// A builder for an arena on `node` (required; never inferred).
    pub fn builder(node: impl Into<NodeId>) -> ArenaBuilder {
        ArenaBuilder {
            node: node.into(),
            capacity: 64 << 20,
            kind: PageKind::Normal,
            populate: Populate::Now,
        }
    }

    /// An arena of `capacity` bytes of normal pages on `node`, populated now.
    ///
    /// # Errors
    /// As [`ArenaBuilder::build`].
    pub fn new(node: impl Into<NodeId>, capacity: usize) -> Result<Self, MemError> {
        Self::builder(node).capacity(capacity).build()
    }

    /// The node the arena's memory is bound to.
    pub fn node(&self) -> NodeId {
        self.core.region.node()
    }
    /// The arena's page kind.
    pub fn page_kind(&self) -> PageKind {
        self.core.region.kind()
    }
    /// Capacity in bytes (header included).
    pub fn capacity(&self) -> usize {
        self.core.region.len()
    }
    /// Bytes allocated so far (header included).
    pub fn used(&self) -> usize {
        self.cur.get()
    }
    /// Bytes left above the bump pointer.
    pub fn remaining(&self) -> usize {
        self.core.region.len() - self.cur.get()
    }
    /// The arena's whole region: base address and capacity.
    pub(crate) fn region_range(&self) -> (*const u8, usize) {
        (self.core.region.base().as_ptr(), self.core.region.len())
    }

    /// Whether `ptr` points into the arena's region.
    pub fn contains(&self, ptr: *const u8) -> bool {
        let base = self.core.region.base().as_ptr() as usize;
        (base..base + self.core.region.len()).contains(&(ptr as usize))
    }

    /// Allocate room for `layout` and return a pointer to it.
    ///
    /// # Errors
    /// [`MemError::Exhausted`] when the arena has too little room left;
    /// [`MemError::OutOfNodeMemory`] / [`MemError::HugepagesUnavailable`] when
    /// a [`Populate::OnDemand`] arena cannot populate the next chunk.
    #[inline]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, MemError> {
        match self.bump(layout) {
            Some(p) => Ok(p),
            None => self.alloc_slow(layout),
        }
    }

    /// The fast path: bump below the populated limit, or `None`.
    #[inline(always)]
    fn bump(&self, layout: Layout) -> Option<NonNull<u8>> {
        let base = self.core.region.base().as_ptr();
        let cur = self.cur.get();
        let addr = (base as usize).wrapping_add(cur);
        let mask = layout.align() - 1;
        let aligned = addr.wrapping_add(mask) & !mask;
        let off = aligned.wrapping_sub(base as usize);
        let new = off.wrapping_add(layout.size());
        // `addr + mask` cannot wrap on 64-bit (addresses < 2^57, align
        // <= 2^63) and `off + size` cannot either (size <= isize::MAX); the
        // two extra comparisons keep other widths correct.
        if new > self.limit.get() || aligned < addr || new < off {
            return None;
        }
        self.cur.set(new);
        asan::unpoison(base.wrapping_add(off), layout.size());
        // SAFETY: `off <= new <= limit <= len`: inside the mapping, whose
        // base is non-null.
        Some(unsafe { NonNull::new_unchecked(base.add(off)) })
    }

    /// The fast path, then the slow one, panicking with the error's message.
    #[inline(always)]
    fn bump_or_panic(&self, layout: Layout) -> NonNull<u8> {
        match self.bump(layout) {
            Some(p) => p,
            None => self.alloc_slow_or_panic(layout),
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow_or_panic(&self, layout: Layout) -> NonNull<u8> {
        self.alloc_slow(layout).unwrap_or_else(|e| panic!("{e}"))
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> Result<NonNull<u8>, MemError> {
        let (off, new) = self.core.place(self.cur.get(), layout)?;
        if new > self.limit.get() {
            self.limit.set(self.core.grow(self.limit.get(), new)?);
        }
        self.cur.set(new);
        // SAFETY: `place` keeps `off <= new <= capacity`.
        Ok(unsafe { self.core.handed_out(off, layout.size(), false) })
    }

    /// Allocate room for `layout`.
    ///
    /// # Panics
    /// When [`try_alloc_layout`](Self::try_alloc_layout) fails; the message
    /// is the error's.
    #[inline]
    pub fn alloc_layout(&self, layout: Layout) -> NonNull<u8> {
        self.try_alloc_layout(layout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Allocate `size` bytes aligned to `align`, checking both.
    ///
    /// # Errors
    /// [`MemError::InvalidAlignment`] when `align` is not a power of two,
    /// [`MemError::InvalidSize`] when `size` rounded up to `align` exceeds
    /// `isize::MAX`, and as [`try_alloc_layout`](Self::try_alloc_layout).
    pub fn try_alloc_raw(&self, size: usize, align: usize) -> Result<NonNull<u8>, MemError> {
        self.try_alloc_layout(checked_layout(size, align)?)
    }

    /// Move `value` into the arena.
    ///
    /// `T` must not need `Drop` (checked at compile time; see
    /// [Destructors](Arena#destructors)).
    ///
    /// # Errors
    /// As [`try_alloc_layout`](Self::try_alloc_layout); `value` is dropped
    /// (trivially) on error.
    #[inline]
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn try_alloc<T>(&self, value: T) -> Result<&mut T, MemError> {
        const { assert_no_drop::<T>() };
        let p = self.try_alloc_layout(Layout::new::<T>())?;
        // SAFETY: fresh memory for one T, borrowed for as long as `self`.
        Ok(unsafe { write_value(p, value) })
    }

    /// Move `value` into the arena.
    ///
    /// # Panics
    /// When the arena is exhausted (see [`try_alloc`](Self::try_alloc)).
    #[inline(always)]
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc<T>(&self, value: T) -> &mut T {
        const { assert_no_drop::<T>() };
        let p = self.bump_or_panic(Layout::new::<T>());
        // SAFETY: fresh memory for one T, borrowed for as long as `self`.
        unsafe { write_value(p, value) }
    }

    /// Copy `src` into the arena.
    ///
    /// # Errors
    /// As [`try_alloc_layout`](Self::try_alloc_layout).
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T], MemError> {
        // A slice that exists has a valid array layout.
        let layout = Layout::for_value(src);
        let p = self.try_alloc_layout(layout)?.cast::<T>();
        // SAFETY: `p` is fresh, aligned arena memory for `src.len()` Ts that
        // cannot overlap `src` (which is borrowed, so not freshly handed out).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), p.as_ptr(), src.len());
            Ok(std::slice::from_raw_parts_mut(p.as_ptr(), src.len()))
        }
    }

    /// Copy `src` into the arena.
    ///
    /// # Panics
    /// When the arena is exhausted.
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &mut [T] {
        self.try_alloc_slice_copy(src)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Copy `s` into the arena.
    ///
    /// # Errors
    /// As [`try_alloc_layout`](Self::try_alloc_layout).
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn try_alloc_str(&self, s: &str) -> Result<&mut str, MemError> {
        let bytes = self.try_alloc_slice_copy(s.as_bytes())?;
        // SAFETY: the bytes were copied from a valid str.
        Ok(unsafe { std::str::from_utf8_unchecked_mut(bytes) })
    }

    /// A slice of `len` elements, element `i` being `f(i)`.
    ///
    /// `T` must not need `Drop` (checked at compile time).
    ///
    /// # Errors
    /// [`MemError::SizeOverflow`] when `len` elements do not fit in the
    /// address space, and as [`try_alloc_layout`](Self::try_alloc_layout).
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn try_alloc_slice_fill_with<T, F>(&self, len: usize, f: F) -> Result<&mut [T], MemError>
    where
        F: FnMut(usize) -> T,
    {
        const { assert_no_drop::<T>() };
        let p = self.try_alloc_layout(array_layout::<T>(len)?)?;
        // SAFETY: fresh memory for `len` Ts (no drop glue), borrowed for as
        // long as `self`.
        Ok(unsafe { fill_with(p, len, f) })
    }

    /// A slice of `len` elements, element `i` being `f(i)`.
    ///
    /// # Panics
    /// When the arena is exhausted or `len` overflows.
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc_slice_fill_with<T, F>(&self, len: usize, f: F) -> &mut [T]
    where
        F: FnMut(usize) -> T,
    {
        self.try_alloc_slice_fill_with(len, f)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Rewind the bump pointer to the start: every allocation is forgotten
    /// (no destructors: the arena holds only types without `Drop`). Pages
    /// stay resident; [`trim`](Self::trim) returns them.
    pub fn reset(&mut self) {
        self.core.forget(self.cur.get());
        self.cur.set(self.core.start);
    }

    /// Return every whole unused page above the bump pointer to the OS
    /// (`MADV_DONTNEED`; whole hugepages for hugepage arenas). Returns the
    /// bytes released. The binding stays: pages come back on the same node
    /// when the arena grows into them again, populated in checked chunks
    /// (unless the arena is [`Populate::Lazy`]).
    ///
    /// # Errors
    /// [`MemError::Os`] if `madvise` fails.
    pub fn trim(&self) -> Result<usize, MemError> {
        // SAFETY: no reference handed out by the arena points at or above
        // the bump pointer.
        let (released, limit) = unsafe { self.core.trim(self.cur.get(), self.limit.get()) }?;
        self.limit.set(limit);
        Ok(released)
    }

    /// The arena's figures; `resident` is measured now with `mincore(2)`.
    ///
    /// # Errors
    /// [`MemError::Os`] if `mincore` fails.
    pub fn stats(&self) -> Result<ArenaStats, MemError> {
        self.core.stats(self.used())
    }

    /// The shared part, the bump offset and the populated limit.
    pub(super) fn into_parts(self) -> (ArenaRegion, usize, usize) {
        (self.core, self.cur.get(), self.limit.get())
    }

    /// Where the pages of the used part are (header included), as the kernel
    /// reports them, one query per page of the arena's kind.
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<PageMap, MemError> {
        self.core.placement(self.used())
    }

    /// Prove placement: every page of the used part is on the arena's node.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] with the placement found when any page is
    /// elsewhere or not present; [`MemError::Os`] if `move_pages` fails.
    pub fn verify(&self) -> Result<PageMap, MemError> {
        self.core.verify(self.used())
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("node", &self.node())
            .field("page_kind", &self.page_kind())
            .field("capacity", &self.capacity())
            .field("used", &self.used())
            .field("populate", &self.core.populate)
            .finish()
    }
}

/// What [`Arena`] and [`SharedArena`](super::SharedArena) share: the
/// region, where allocations start, the populate mode, and every operation
/// that does not depend on how the bump pointer is stored.
pub(super) struct ArenaRegion {
    pub(super) region: Region,
    /// Offset of the first allocation (after the header).
    pub(super) start: usize,
    pub(super) populate: Populate,
}

impl ArenaRegion {
    /// `(offset, new bump offset)` of `layout` placed at bump offset `cur`,
    /// or `Exhausted` when it does not fit in the capacity.
    pub(super) fn place(&self, cur: usize, layout: Layout) -> Result<(usize, usize), MemError> {
        let base = self.region.base().as_ptr() as usize;
        let len = self.region.len();
        round_up(base + cur, layout.align())
            .map(|a| a - base)
            .and_then(|off| Some((off, off.checked_add(layout.size())?)))
            .filter(|&(_, new)| new <= len)
            .ok_or(MemError::Exhausted {
                node: self.region.node(),
                requested: layout.size(),
                align: layout.align(),
                remaining: len - cur,
                capacity: len,
            })
    }

    /// Populate from `limit` to the chunk boundary past `new`; returns the
    /// new populated limit.
    pub(super) fn grow(&self, limit: usize, new: usize) -> Result<usize, MemError> {
        let chunk = ON_DEMAND_CHUNK.max(self.region.kind().page_size());
        let to = round_up(new, chunk)
            .unwrap_or(self.region.len())
            .min(self.region.len());
        self.region.populate(limit, to - limit)?;
        // Unallocated, like the rest above the bump pointer.
        asan::poison(self.region.base().as_ptr().wrapping_add(limit), to - limit);
        Ok(to)
    }

    /// The allocation of `size` bytes at offset `off`, unpoisoned for ASan
    /// (whole granules when `shared`: other threads may unpoison their
    /// neighbouring allocations at the same time, see
    /// [`asan::unpoison_granules`]).
    ///
    /// # Safety
    /// `off + size <= capacity`, and the range was just claimed by the
    /// caller.
    pub(super) unsafe fn handed_out(&self, off: usize, size: usize, shared: bool) -> NonNull<u8> {
        // SAFETY: per the contract, `off` is inside the mapping.
        let p = unsafe { self.at(off) };
        if shared {
            asan::unpoison_granules(p.as_ptr(), size);
        } else {
            asan::unpoison(p.as_ptr(), size);
        }
        p
    }

    /// Everything between the start and bump offset `cur` is forgotten
    /// (`reset`): unaddressable again for ASan.
    pub(super) fn forget(&self, cur: usize) {
        let base = self.region.base().as_ptr();
        asan::poison(base.wrapping_add(self.start), cur - self.start);
    }

    /// The pointer at offset `off`.
    ///
    /// # Safety
    /// `off <= capacity`.
    pub(super) unsafe fn at(&self, off: usize) -> NonNull<u8> {
        // SAFETY: the caller keeps `off` inside the mapping, whose base is
        // non-null.
        unsafe { NonNull::new_unchecked(self.region.base().as_ptr().add(off)) }
    }

    /// Return the whole pages above bump offset `cur` to the OS; returns
    /// the bytes released and the populated limit to keep.
    ///
    /// # Safety
    /// No reference handed out may point at or above `cur`.
    pub(super) unsafe fn trim(&self, cur: usize, limit: usize) -> Result<(usize, usize), MemError> {
        // SAFETY: the caller guarantees nothing references the range.
        let released = unsafe { self.region.discard(cur, self.region.len() - cur) }?;
        if self.populate == Populate::Lazy {
            return Ok((released, limit));
        }
        let page = self.region.kind().page_size();
        let kept = round_up(cur, page).unwrap_or(cur).min(self.region.len());
        Ok((released, limit.min(kept)))
    }

    pub(super) fn stats(&self, used: usize) -> Result<ArenaStats, MemError> {
        Ok(ArenaStats {
            node: self.region.node(),
            page_kind: self.region.kind(),
            capacity: self.region.len(),
            used,
            resident: self.region.resident()?,
        })
    }

    pub(super) fn placement(&self, used: usize) -> Result<PageMap, MemError> {
        self.region.placement(0, used)
    }

    pub(super) fn verify(&self, used: usize) -> Result<PageMap, MemError> {
        self.placement(used)?.ensure_on(self.region.node())
    }
}

/// Write `value` into fresh memory at `p`.
///
/// # Safety
/// `p` is fresh arena memory aligned and sized for `T`, referenced by
/// nothing else, and valid for `'a`.
pub(super) unsafe fn write_value<'a, T>(p: NonNull<u8>, value: T) -> &'a mut T {
    let p = p.cast::<T>().as_ptr();
    // SAFETY: per the caller's contract.
    unsafe {
        p.write(value);
        &mut *p
    }
}

/// The layout of `[T; len]`, or `SizeOverflow`.
pub(super) fn array_layout<T>(len: usize) -> Result<Layout, MemError> {
    Layout::array::<T>(len).map_err(|_| MemError::SizeOverflow {
        count: len,
        size: std::mem::size_of::<T>(),
    })
}

/// Fill fresh memory at `p` with `f(0) .. f(len - 1)`.
///
/// # Safety
/// `p` is fresh arena memory with `array_layout::<T>(len)`, referenced by
/// nothing else, and valid for `'a`; `T` has no drop glue (so a panic in
/// `f` only abandons the elements written so far).
pub(super) unsafe fn fill_with<'a, T>(
    p: NonNull<u8>,
    len: usize,
    mut f: impl FnMut(usize) -> T,
) -> &'a mut [T] {
    let p = p.cast::<T>().as_ptr();
    for i in 0..len {
        // SAFETY: `i < len`, inside the fresh allocation.
        unsafe { p.add(i).write(f(i)) };
    }
    // SAFETY: all `len` elements are initialised; valid for 'a per contract.
    unsafe { std::slice::from_raw_parts_mut(p, len) }
}

pub(super) const fn assert_no_drop<T>() {
    assert!(
        !std::mem::needs_drop::<T>(),
        "numakit arenas do not run destructors: this type needs Drop. Allocate it elsewhere, \
         or wrap it in ManuallyDrop if leaking it on reset is intended"
    );
}

pub(super) fn checked_layout(size: usize, align: usize) -> Result<Layout, MemError> {
    if !align.is_power_of_two() {
        return Err(MemError::InvalidAlignment { align });
    }
    Layout::from_size_align(size, align).map_err(|_| MemError::InvalidSize {
        requested: size as u64,
        reason: format!("{size} bytes aligned to {align} exceed isize::MAX"),
    })
}

pub(super) fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v & !(to - 1))
}
