//! [`NodeHeap`]: a general-purpose, thread-safe heap whose memory is all on
//! one node, usable as an `allocator-api2` [`Allocator`]; [`HeapBox`], one
//! value in it; [`GlobalNodeHeap`], the same heap as a `#[global_allocator]`.
//!
//! See [`NodeHeap`] for the design.

mod cache;
mod classes;
mod core;
mod fork;
mod global;
mod node_local;
pub(crate) mod os;

pub use global::GlobalNodeHeap;
pub use node_local::{NodeLocal, NodeLocalNodeStats, NodeLocalStats, OnExhausted};

use self::core::HeapCore;
use super::region::check_node;
use super::MemError;
use crate::topology::{NodeId, Topology};
use allocator_api2::alloc::{AllocError, Allocator};
use std::alloc::Layout;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};

/// A thread-safe heap bound to one NUMA node.
///
/// Use it through the [`Allocator`] trait (`&NodeHeap` implements it too),
/// so that `allocator_api2` collections and `hashbrown` maps keep their
/// storage on the node:
///
/// ```
/// use allocator_api2::vec::Vec;
/// use numakit::mem::NodeHeap;
/// let heap = NodeHeap::new(0)?;
/// let mut v = Vec::new_in(&heap);
/// v.extend(0..10_000u32);
/// let here = numakit::mem::locate(v.as_ptr().cast(), v.len() * 4)?;
/// assert!(here.is_all_on(heap.node()));
/// assert!(heap.stats().bytes_in_use >= 40_000);
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
///
/// or directly, with typed errors ([`try_alloc_layout`](Self::try_alloc_layout)),
/// or for single values ([`alloc_box`](Self::alloc_box)).
///
/// # How it works
///
/// - **Size classes**: 60 classes from 16 B to 1 MiB (16-byte steps to
///   128 B, then four per doubling). Each class is a slab: blocks carved
///   from 64 KiB chunks (256 KiB for classes above 4 KiB, 1 MiB or two
///   blocks above 32 KiB), linked through their first word when free.
///   Chunks come from *segments* (1 MiB, then
///   doubling to 64 MiB), each one `mmap`ed and bound with
///   `mbind(MPOL_BIND, MPOL_MF_STRICT)` whole, and populated chunk by chunk
///   as classes take them, each time after a check of the node's free
///   memory, like an [`Arena`](crate::mem::Arena) — so a segment costs the
///   node only what has been carved from it.
/// - **Large requests** (above 1 MiB, or aligned past 4 KiB) get a mapping
///   of their own, page-granular, bound and populated the same way, and
///   unmapped on free. Resizing one to another large size does not copy:
///   shrinking unmaps the tail, growing extends the mapping with `mremap`
///   (in place, or moved whole with `MREMAP_MAYMOVE`: the pages are not
///   copied and the mapping keeps its binding) and populates only the new
///   part, after a check of the node's free memory.
/// - **Thread caches**: every thread keeps, per heap it uses, a list of
///   free blocks per class; allocation pops and free pushes without a lock
///   or an atomic read-modify-write. A list holds up to 64 KiB of blocks
///   (4 to 4096 of them; for the classes above 32 KiB, 512 KiB worth, 2 to
///   16 blocks); an empty one takes a batch of up to 256 from the class
///   (one lock), a full one gives half back.
/// - **Remote frees**: a thread that frees while running on another node
///   than the heap's does not keep the block: it goes on the class's
///   lock-free remote list (one CAS) and is handed out again by the heap,
///   from its next refill. Which node a thread is on is read with
///   `getcpu(2)` when it first uses the heap and on every 32nd slow path.
/// - **Giving memory back**: [`NodeHeap::trim`] returns the pages of every
///   chunk whose blocks are all free to the OS; the chunk stays reserved
///   and bound, and is populated again (memory checked) when reused.
/// - **Thread exit**: a `pthread` key destructor detaches the thread's
///   caches; the next thread to use the heap adopts one, blocks included,
///   and before mapping more memory the heap sweeps blocks out of caches no
///   thread owns.
///
/// Every byte the heap hands out, and its own bookkeeping, is on its node:
/// there is no fallback to another node or to `malloc`. When the node
/// cannot give more, allocation fails ([`MemError::OutOfNodeMemory`] from
/// [`NodeHeap::try_alloc_layout`], [`AllocError`] through the
/// [`Allocator`] trait, null from [`GlobalAlloc`](std::alloc::GlobalAlloc)).
///
/// Memory is not returned to the node until the heap is dropped, except
/// for large blocks (unmapped on free): a program that frees a million
/// 16-byte blocks keeps their chunks for later 16-byte blocks.
///
/// Dropping the heap unmaps all of its memory; the borrow checker keeps
/// collections that use `&heap` from outliving it.
pub struct NodeHeap {
    core: NonNull<HeapCore>,
}

// SAFETY: HeapCore is Send + Sync (locks and atomics); NodeHeap only owns
// the pointer to it.
unsafe impl Send for NodeHeap {}
// SAFETY: as above.
unsafe impl Sync for NodeHeap {}

/// A heap's figures (see [`NodeHeap::stats`]).
///
/// Counters are read one by one without stopping the heap: while other
/// threads allocate, figures can be off by the operations in flight; once
/// they are done, they are exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// The heap's node.
    pub node: NodeId,
    /// Bytes handed out and not freed: blocks counted at their class size,
    /// large blocks at their mapping size.
    pub bytes_in_use: usize,
    /// Bytes taken from the node: the populated part of the segments
    /// (headers and the chunks carved for size classes), large blocks and
    /// the heap's own bookkeeping (the heap, one page per thread cache).
    /// Resident: this less `bytes_released`.
    pub bytes_mapped: usize,
    /// Bytes of segments given back to the OS by [`NodeHeap::trim`] and not
    /// taken again since.
    pub bytes_released: usize,
    /// Bytes of large blocks (own mappings) in use.
    pub large_bytes_in_use: usize,
    /// Large blocks in use.
    pub large_in_use: u64,
    /// Thread caches made for the heap (threads that used it; reused by
    /// later threads).
    pub thread_caches: usize,
    /// One entry per size class, smallest first.
    pub classes: Vec<SizeClassStats>,
}

/// One size class of a [`HeapStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeClassStats {
    /// Bytes per block.
    pub block_size: usize,
    /// Blocks handed out and not freed.
    pub in_use: u64,
    /// Blocks carved from the node so far (in use, cached or free).
    pub blocks: u64,
    /// Allocations served.
    pub allocations: u64,
    /// Frees.
    pub frees: u64,
    /// Of the frees, those by threads running on another node, which went
    /// straight back to the heap.
    pub remote_frees: u64,
}

impl NodeHeap {
    /// The largest request served from a size class (1 MiB); larger ones
    /// get a mapping of their own.
    pub const MAX_CLASS_SIZE: usize = classes::MAX_SMALL;

    /// A heap on `node` (required; never inferred). Maps one page of
    /// bookkeeping now; blocks are mapped as they are needed.
    ///
    /// # Errors
    /// - [`MemError::Topology`]: the node does not exist (names those that do);
    /// - [`MemError::MemorylessNode`]: the node has no memory;
    /// - [`MemError::OutOfNodeMemory`] / [`MemError::Os`]: the first page
    ///   could not be mapped, bound or populated.
    ///
    /// # Examples
    /// ```
    /// use numakit::mem::{MemError, NodeHeap};
    /// let topo = numakit::Topology::detect()?;
    /// let absent = topo.node_ids().map(|n| n.get()).max().unwrap() + 1;
    /// assert!(matches!(NodeHeap::new(absent), Err(MemError::Topology(_))));
    /// # Ok::<(), numakit::Error>(())
    /// ```
    pub fn new(node: impl Into<NodeId>) -> Result<Self, MemError> {
        let node = node.into();
        let topo = Topology::current()?;
        check_node(&topo, node)?;
        let core = HeapCore::create(node.get()).map_err(|f| f.into_mem_error(node))?;
        Ok(NodeHeap { core })
    }

    #[inline(always)]
    fn core(&self) -> &HeapCore {
        // SAFETY: created in `new`, destroyed only in `drop`.
        unsafe { self.core.as_ref() }
    }

    /// The node every byte of the heap is on.
    pub fn node(&self) -> NodeId {
        NodeId::new(self.core().node)
    }

    /// The block sizes of the size classes, smallest first.
    pub fn size_classes() -> impl ExactSizeIterator<Item = usize> {
        classes::SIZES.iter().map(|&s| s as usize)
    }

    /// Memory for `layout`, on the node. A zero-sized layout gets a
    /// dangling, aligned pointer and no memory.
    ///
    /// # Errors
    /// [`MemError::OutOfNodeMemory`] when the node cannot give the memory
    /// (checked before populating, never the OOM killer);
    /// [`MemError::InvalidSize`] for a size that cannot be mapped;
    /// [`MemError::Os`] when `mmap`/`mbind`/`madvise` refuse.
    #[inline]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, MemError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        self.core()
            .alloc(layout)
            .map_err(|f| f.into_mem_error(self.node()))
    }

    /// Give back memory from [`try_alloc_layout`](Self::try_alloc_layout).
    ///
    /// # Safety
    /// `ptr` came from this heap for `layout` (or a layout of the same
    /// alignment whose size lies between the one asked for and the usable
    /// size the [`Allocator`] interface reported), and is not used again.
    #[inline]
    pub unsafe fn dealloc(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: forwarded contract.
            unsafe { self.core().dealloc(ptr, layout) }
        }
    }

    /// Move `value` into the heap.
    ///
    /// # Errors
    /// As [`try_alloc_layout`](Self::try_alloc_layout); `value` is dropped
    /// on error.
    pub fn try_alloc_box<T>(&self, value: T) -> Result<HeapBox<'_, T>, MemError> {
        let p = self.try_alloc_layout(Layout::new::<T>())?.cast::<T>();
        // SAFETY: fresh memory sized and aligned for T.
        unsafe { p.as_ptr().write(value) };
        Ok(HeapBox {
            ptr: p,
            heap: self,
            _owns: PhantomData,
        })
    }

    /// Move `value` into the heap.
    ///
    /// # Panics
    /// When [`try_alloc_box`](Self::try_alloc_box) fails (the node is out
    /// of memory); the message is the error's.
    pub fn alloc_box<T>(&self, value: T) -> HeapBox<'_, T> {
        self.try_alloc_box(value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Give the memory of every chunk whose blocks are all free back to
    /// the OS, and return how many bytes that was.
    ///
    /// Size classes carve their blocks from chunks (64 KiB, 256 KiB above
    /// 4 KiB blocks). A chunk is given back when every block carved from it
    /// is free on the heap's lists, in the calling thread's cache (which
    /// this empties) or in the cache of a thread that exited; blocks cached
    /// by other live threads, or in use, keep their chunk. The chunk stays reserved and bound to the node
    /// (`MADV_DONTNEED`): a class that needs memory later takes it again,
    /// populated after the usual check of the node's free memory, so it
    /// can never come back from another node.
    ///
    /// ```
    /// use numakit::mem::NodeHeap;
    /// let heap = NodeHeap::new(0)?;
    /// let blocks: Vec<_> = (0..4000).map(|_| heap.alloc_box([1u8; 512])).collect();
    /// drop(blocks); // 2 MiB of blocks, all free again
    /// let released = heap.trim()?;
    /// assert!(released >= 1 << 20, "{released}");
    /// assert_eq!(heap.stats().bytes_released, released);
    /// heap.verify()?; // what is still resident is on the node
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    ///
    /// # Errors
    /// [`MemError::Os`] when `madvise` refuses, or the node cannot give the
    /// few pages of scratch memory the sort of the free lists needs.
    pub fn trim(&self) -> Result<usize, MemError> {
        self.core()
            .trim()
            .map_err(|f| f.into_mem_error(self.node()))
    }

    /// The heap's figures: bytes in use and mapped, per size class counts.
    pub fn stats(&self) -> HeapStats {
        stats_of(self.core())
    }

    /// Prove placement of the heap's segments and bookkeeping (large
    /// blocks have mappings of their own: check them with
    /// [`locate`](super::locate)). Returns the merged placement of every
    /// range checked ([`pages`](super::PageMap::pages) counts them).
    ///
    /// # Errors
    /// [`MemError::Misplaced`] with the placement of the first range that
    /// has a page elsewhere; [`MemError::Os`] if `move_pages` fails.
    pub fn verify(&self) -> Result<super::PageMap, MemError> {
        let node = self.node();
        let mut proof = super::PageMap::default();
        for (start, len) in self.core().ranges() {
            proof.merge(super::locate(start as *const u8, len)?.ensure_on(node)?);
        }
        Ok(proof)
    }
}

pub(crate) fn stats_of(core: &HeapCore) -> HeapStats {
    let mut classes = Vec::with_capacity(classes::NUM_CLASSES);
    let f = core.figures();
    for (c, cf) in f.classes.iter().enumerate() {
        classes.push(SizeClassStats {
            block_size: classes::size_of_class(c),
            in_use: cf.allocs.saturating_sub(cf.frees),
            blocks: cf.blocks,
            allocations: cf.allocs,
            frees: cf.frees,
            remote_frees: cf.remote_frees,
        });
    }
    HeapStats {
        node: NodeId::new(core.node),
        bytes_in_use: bytes_in_use_of(&f),
        bytes_mapped: f.segment_bytes + f.large_bytes + f.meta_bytes,
        bytes_released: f.released_bytes,
        large_bytes_in_use: f.large_bytes,
        large_in_use: f.large_allocs.saturating_sub(f.large_frees),
        thread_caches: f.caches,
        classes,
    }
}

/// Small blocks in use at their class size plus large blocks' bytes.
pub(crate) fn bytes_in_use_of(f: &self::core::Figures) -> usize {
    f.classes
        .iter()
        .enumerate()
        .fold(f.large_bytes, |sum, (c, cf)| {
            sum + cf.allocs.saturating_sub(cf.frees) as usize * classes::size_of_class(c)
        })
}

fn dangling(layout: Layout) -> NonNull<u8> {
    // An address equal to the alignment: non-null and aligned, never
    // dereferenced for zero bytes.
    NonNull::new(ptr::null_mut::<u8>().wrapping_add(layout.align())).unwrap_or(NonNull::dangling())
}

impl Drop for NodeHeap {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nothing borrows the heap, so no collection
        // or box of it is alive and no thread is inside it.
        unsafe { HeapCore::destroy(self.core) }
    }
}

impl fmt::Debug for NodeHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.stats();
        f.debug_struct("NodeHeap")
            .field("node", &s.node)
            .field("bytes_in_use", &s.bytes_in_use)
            .field("bytes_mapped", &s.bytes_mapped)
            .finish()
    }
}

// SAFETY: blocks are valid for their usable size until deallocated, and
// aligned as asked (see `classes::class_for`); `allocate` reports the class
// size (or the page-rounded size), and `deallocate`/`grow`/`shrink` accept
// any size between the request and that, since it maps to the same class or
// mapping. Moving the heap does not move its memory (it lives in mappings
// the heap points to). NodeHeap is not Clone, so "copies of the allocator"
// are `&NodeHeap`s of one heap.
unsafe impl Allocator for NodeHeap {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(NonNull::slice_from_raw_parts(dangling(layout), 0));
        }
        let (p, usable) = self.core().alloc_usable(layout).map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, usable))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the Allocator contract: `ptr` is a block of this heap that
        // fits `layout`.
        unsafe { self.dealloc(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() != 0 && HeapCore::same_block(old, new) {
            return Ok(NonNull::slice_from_raw_parts(
                ptr,
                HeapCore::usable_size(new),
            ));
        }
        if old.size() != 0 {
            // SAFETY: the Allocator contract: `ptr` is a block of this heap
            // that fits `old`; `new.size() >= old.size() > 0`.
            if let Some(done) = unsafe { self.core().realloc_large(ptr, old, new) } {
                let q = done.map_err(|_| AllocError)?;
                return Ok(NonNull::slice_from_raw_parts(q, HeapCore::usable_size(new)));
            }
        }
        let fresh = self.allocate(new)?;
        // SAFETY: the Allocator contract: `ptr` is valid for `old.size()`
        // bytes, `fresh` for at least `new.size() >= old.size()`; distinct
        // blocks do not overlap.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.cast::<u8>().as_ptr(), old.size());
            self.deallocate(ptr, old);
        }
        Ok(fresh)
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new.size() != 0 && HeapCore::same_block(old, new) {
            return Ok(NonNull::slice_from_raw_parts(
                ptr,
                HeapCore::usable_size(new),
            ));
        }
        if new.size() != 0 {
            // SAFETY: the Allocator contract: `ptr` is a block of this heap
            // that fits `old` (whose size is at least `new.size() > 0`).
            if let Some(done) = unsafe { self.core().realloc_large(ptr, old, new) } {
                let q = done.map_err(|_| AllocError)?;
                return Ok(NonNull::slice_from_raw_parts(q, HeapCore::usable_size(new)));
            }
        }
        let fresh = self.allocate(new)?;
        // SAFETY: as in grow, copying the `new.size() <= old.size()` bytes
        // that survive.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.cast::<u8>().as_ptr(), new.size());
            self.deallocate(ptr, old);
        }
        Ok(fresh)
    }
}

/// One value in a [`NodeHeap`]: dropping it drops the value and frees the
/// block. The small-object counterpart of [`NodeBox`](super::NodeBox)
/// (which maps whole pages per value).
///
/// `allocator_api2::boxed::Box<T, &NodeHeap>` does the same with the full
/// `Box` API; `HeapBox` needs no extra crate in scope and reports errors
/// as [`MemError`].
///
/// # Examples
/// ```
/// use numakit::mem::NodeHeap;
/// let heap = NodeHeap::new(0)?;
/// let b = heap.try_alloc_box([7u64; 8])?;
/// assert_eq!(b[3], 7);
/// let here = numakit::mem::locate((&*b as *const [u64; 8]).cast(), 64)?;
/// assert!(here.is_all_on(heap.node()));
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct HeapBox<'h, T> {
    ptr: NonNull<T>,
    heap: &'h NodeHeap,
    _owns: PhantomData<T>,
}

// SAFETY: owns its T like Box<T>; the heap is Sync, so freeing from another
// thread is fine (that is a remote free when on another node).
unsafe impl<T: Send> Send for HeapBox<'_, T> {}
// SAFETY: &HeapBox only gives &T.
unsafe impl<T: Sync> Sync for HeapBox<'_, T> {}

impl<T> HeapBox<'_, T> {
    /// Move the value out and free the block.
    pub fn into_inner(this: Self) -> T {
        let this = std::mem::ManuallyDrop::new(this);
        // SAFETY: the value is initialised and read once (`this` is never
        // dropped); then the block goes back to the heap that made it.
        unsafe {
            let value = this.ptr.as_ptr().read();
            this.heap.dealloc(this.ptr.cast(), Layout::new::<T>());
            value
        }
    }

    /// The heap the value lives in.
    pub fn heap(this: &Self) -> &NodeHeap {
        this.heap
    }
}

impl<T> Deref for HeapBox<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: initialised at allocation, alive until drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for HeapBox<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for HeapBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the value is initialised and dropped once, then its block
        // (allocated for Layout::new::<T>()) is freed.
        unsafe {
            ptr::drop_in_place(self.ptr.as_ptr());
            self.heap.dealloc(self.ptr.cast(), Layout::new::<T>());
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for HeapBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
