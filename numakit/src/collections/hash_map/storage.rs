//! The map's node memory: one [`NodeHeap`] per map, reached by the shard
//! tables through [`HeapRef`], a copyable `Allocator` handle that also
//! records every block the heap maps on its own (large blocks), so that
//! [`Storage::verify`] can prove the placement of *all* the map's pages.

use crate::mem::{locate, MemError, NodeHeap, PageMap};
use crate::sync::McsLock;
use crate::topology::NodeId;
use allocator_api2::alloc::{AllocError, Allocator};
use std::alloc::Layout;
use std::ptr::NonNull;

/// One block outside the heap's segments: `(address, bytes)`.
type LargeList = allocator_api2::vec::Vec<(usize, usize), Untracked>;

/// What lives in node memory next to the shards: the heap itself (so that
/// handles can point at it from anywhere) and the large-block registry.
pub(super) struct Storage {
    heap: NodeHeap,
    large: McsLock<LargeList>,
}

/// Whether the heap serves `layout` from a mapping of its own rather than
/// from a segment (which [`NodeHeap::verify`] does not cover). Errs on the
/// side of recording: a block recorded needlessly is only located twice.
fn is_large(layout: Layout) -> bool {
    layout.size() > NodeHeap::MAX_CLASS_SIZE || layout.align() > 4096
}

impl Storage {
    /// A heap on `node`, with this block in it. `expected_large` pre-sizes
    /// the registry (one table per shard can be large).
    pub(super) fn create(node: NodeId, expected_large: usize) -> Result<NonNull<Self>, MemError> {
        let heap = NodeHeap::new(node)?;
        let block = heap
            .try_alloc_layout(Layout::new::<Storage>())?
            .cast::<Storage>();
        let p = block.as_ptr();
        // SAFETY: `block` is fresh memory sized and aligned for a Storage;
        // the heap is written first, then the registry whose allocator
        // points at it. `McsLock::new` and `Vec::new_in` do not allocate.
        unsafe {
            std::ptr::addr_of_mut!((*p).heap).write(heap);
            let heap_ptr = NonNull::new_unchecked(std::ptr::addr_of_mut!((*p).heap));
            std::ptr::addr_of_mut!((*p).large)
                .write(McsLock::new(LargeList::new_in(Untracked(heap_ptr))));
        }
        // SAFETY: initialised just above; no other reference exists yet.
        let storage = unsafe { block.as_ref() };
        // Best effort: the registry can still grow later, and a failure
        // here is not worth refusing the map for.
        let _ = storage
            .large
            .lock()
            .try_reserve(expected_large.clamp(4, 1 << 12));
        Ok(block)
    }

    /// Tear down a storage made by [`create`](Self::create): frees the
    /// registry, then this block, then unmaps the whole heap.
    ///
    /// # Safety
    /// `this` came from `create`; no [`HeapRef`] to it is used afterwards
    /// and every block allocated through one has been freed or is
    /// abandoned (its memory goes away with the heap).
    pub(super) unsafe fn destroy(this: NonNull<Self>) {
        let p = this.as_ptr();
        // SAFETY: per the contract nothing else uses the storage: drop the
        // registry (freeing its buffer into the still-live heap), move the
        // heap out, give this block back, then drop the heap.
        unsafe {
            std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).large));
            let heap = std::ptr::addr_of!((*p).heap).read();
            heap.dealloc(this.cast(), Layout::new::<Storage>());
            drop(heap);
        }
    }

    pub(super) fn heap(&self) -> &NodeHeap {
        &self.heap
    }

    /// Memory for `layout`, recorded when the heap maps it on its own.
    pub(super) fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, MemError> {
        if !is_large(layout) || layout.size() == 0 {
            return self.heap.try_alloc_layout(layout);
        }
        // Room in the registry first, so that a block is recorded before
        // anyone can see it; the lock also orders this against `verify`.
        let mut large = self.large.lock();
        if large.try_reserve(1).is_err() {
            let wanted = Layout::array::<(usize, usize)>(large.len() + 1).unwrap_or(layout);
            return Err(self.why(wanted));
        }
        let p = self.heap.try_alloc_layout(layout)?;
        large.push((p.as_ptr() as usize, layout.size()));
        Ok(p)
    }

    /// Why an allocation of `layout` failed, in the heap's words (node,
    /// bytes asked, bytes available, what to do).
    pub(super) fn why(&self, layout: Layout) -> MemError {
        match self.heap.try_alloc_layout(layout) {
            Err(e) => e,
            Ok(p) => {
                // SAFETY: just allocated for `layout`, unused.
                unsafe { self.heap.dealloc(p, layout) };
                MemError::InvalidSize {
                    requested: layout.size() as u64,
                    reason: format!(
                        "NUMA node {} refused the map {} bytes and then had them: memory was \
                         freed in between; retry the operation",
                        self.heap.node(),
                        layout.size()
                    ),
                }
            }
        }
    }

    /// Give back a block from [`alloc`](Self::alloc).
    ///
    /// # Safety
    /// As [`NodeHeap::dealloc`]: `ptr` came from `alloc` with `layout` and
    /// is not used again.
    pub(super) unsafe fn dealloc(&self, ptr: NonNull<u8>, layout: Layout) {
        if is_large(layout) && layout.size() != 0 {
            // Forget it before the heap unmaps it, so that `verify` (which
            // holds this lock while it looks) never locates unmapped pages.
            let mut large = self.large.lock();
            let addr = ptr.as_ptr() as usize;
            if let Some(i) = large.iter().position(|&(a, _)| a == addr) {
                large.swap_remove(i);
            }
            // SAFETY: forwarded contract; done under the registry lock.
            unsafe { self.heap.dealloc(ptr, layout) };
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.heap.dealloc(ptr, layout) };
        }
    }

    /// Check that every page of the heap's segments, of its large blocks
    /// and of the registry is on the heap's node; their merged placement.
    pub(super) fn verify(&self) -> Result<PageMap, MemError> {
        let node = self.heap.node();
        let mut proof = self.heap.verify()?;
        let large = self.large.lock();
        let registry = (large.as_ptr() as usize, large.capacity() * 16);
        let ranges = large
            .iter()
            .copied()
            .chain((large.capacity() > 0).then_some(registry));
        for (addr, len) in ranges {
            proof.merge(locate(addr as *const u8, len)?.ensure_on(node)?);
        }
        Ok(proof)
    }

    /// Blocks the heap mapped on its own for the map (large tables).
    pub(super) fn large_blocks(&self) -> usize {
        self.large.lock().len()
    }
}

/// A copyable handle to a map's [`Storage`], implementing [`Allocator`]:
/// the shard tables allocate through it, so buckets and entries land in
/// the map's node heap, and large tables are recorded for `verify`.
#[derive(Clone, Copy)]
pub(super) struct HeapRef(NonNull<Storage>);

impl HeapRef {
    /// # Safety
    /// `storage` stays valid until every copy of the handle and every
    /// block allocated through one are gone.
    pub(super) unsafe fn new(storage: NonNull<Storage>) -> Self {
        HeapRef(storage)
    }

    #[inline]
    fn storage(&self) -> &Storage {
        // SAFETY: `new`'s contract: the storage outlives every handle.
        unsafe { self.0.as_ref() }
    }
}

// SAFETY: a handle is a shared reference to a Storage, which is Sync (a
// thread-safe heap and a lock); using it from any thread is fine.
unsafe impl Send for HeapRef {}
// SAFETY: as above.
unsafe impl Sync for HeapRef {}

// SAFETY: blocks come from the map's NodeHeap (valid for `layout.size()`
// bytes, aligned as asked) and stay valid until deallocated or the storage
// is destroyed, which the map does only after dropping every table (all
// copies of the handle). `deallocate` accepts exactly the layouts
// `allocate` reported (the slice length is the size asked for). The
// default `grow`/`shrink` go through `allocate`/`deallocate`.
unsafe impl Allocator for HeapRef {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = self.storage().alloc(layout).map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the Allocator contract: `ptr` came from `allocate` with
        // `layout` on a copy of this handle (same storage).
        unsafe { self.storage().dealloc(ptr, layout) }
    }
}

/// The registry's own allocator: the heap without recording (the registry
/// must not record into itself). Its buffer is checked directly by
/// [`Storage::verify`].
#[derive(Clone, Copy)]
pub(super) struct Untracked(NonNull<NodeHeap>);

// SAFETY: a shared reference to a NodeHeap, which is Sync.
unsafe impl Send for Untracked {}
// SAFETY: as above.
unsafe impl Sync for Untracked {}

// SAFETY: forwards to the NodeHeap, which implements Allocator; the heap
// lives in the Storage block and outlives the registry (dropped first in
// `Storage::destroy`).
unsafe impl Allocator for Untracked {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the heap outlives the registry that holds this handle.
        unsafe { self.0.as_ref() }.allocate(layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: as above; the Allocator contract is forwarded.
        unsafe { self.0.as_ref().deallocate(ptr, layout) }
    }
}
