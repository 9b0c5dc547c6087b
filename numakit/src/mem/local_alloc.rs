//! [`Local`]: an `allocator-api2` [`Allocator`] that allocates on the
//! calling thread's node, from the node's shared [`NodeHeap`].

use super::{here, MemError, NodeHeap};
use crate::topology::NodeId;
use allocator_api2::alloc::{AllocError, Allocator};
use std::alloc::Layout;
use std::ptr::{self, NonNull};

/// Allocates on the node the calling thread runs on: a zero-sized, `Copy`
/// handle, so `Vec::new_in(Local)` needs no heap in scope.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use numakit::mem::Local;
/// let mut v = Vec::new_in(Local);
/// v.extend(0..10_000u64);
/// let node = Local::heap()?.node();
/// assert!(numakit::mem::locate(v.as_ptr().cast(), v.len() * 8)?.is_all_on(node));
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
///
/// # Where the memory comes from
///
/// Each allocation comes from [`NodeHeap::of`] the caller's node — the
/// node-wide heap that small [`NodeBox`](super::NodeBox)es use too. The
/// node is read with `getcpu(2)`, cached per thread and read again every
/// [`REFRESH`](Self::REFRESH) allocations: a thread pinned to one node
/// always allocates there; one that moves allocates on its new node within
/// that many allocations, and its old blocks stay where they are.
///
/// Any `Local` frees any block of any `Local`, from any thread: every
/// block carries, just before the address handed out, a tag naming the
/// heap it came from, and goes back there (a free on another node is the
/// heap's remote free). The tag costs 16 bytes per block (the alignment,
/// for alignments above 16). `grow` and `shrink` keep a block in the heap
/// that owns it — in place when the new size falls in the same size class,
/// else in a new block of that heap, so a `Vec` stays on the node where it
/// was first allocated while it grows; only a change of alignment past 16
/// moves it to the caller's node.
///
/// # No fallback
///
/// When the caller's node has no memory (a CPU-only node), or its memory
/// is exhausted, allocation **fails** with [`AllocError`] (collections
/// then call Rust's allocation-error handler, or return the error from
/// their `try_` methods). Memory never silently comes from another node.
/// [`Local::heap`] says which heap the calling thread would use, or why
/// there is none; to use another node's memory on purpose, allocate from
/// [`NodeHeap::of`] that node (`&'static NodeHeap` is an `Allocator` too).
///
/// Zero-sized requests get a dangling, aligned pointer and no memory.
/// Sizes or alignments no heap can serve (past `isize::MAX` with the tag,
/// or an alignment the node cannot map) are [`AllocError`], never a panic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Local;

/// Bytes before each block holding its heap (the least alignment the
/// heap is asked for, so the tag word is always aligned).
const TAG: usize = 16;

/// The layout asked of the heap for `layout`, and the offset of the
/// block's start within it.
#[inline]
fn tagged(layout: Layout) -> Option<(Layout, usize)> {
    let pad = layout.align().max(TAG);
    let size = layout.size().checked_add(pad)?;
    Layout::from_size_align(size, pad).ok().map(|l| (l, pad))
}

#[inline]
fn dangling(layout: Layout) -> NonNull<u8> {
    NonNull::new(ptr::null_mut::<u8>().wrapping_add(layout.align())).unwrap_or(NonNull::dangling())
}

impl Local {
    /// Allocations between two `getcpu(2)` calls of one thread.
    pub const REFRESH: u32 = here::REFRESH;

    /// The heap the calling thread's next allocation would come from.
    ///
    /// # Errors
    /// [`MemError::MemorylessNode`] when the thread runs on a node without
    /// memory (it names the nodes that have some);
    /// [`MemError::Topology`] when the node cannot be read or is unknown;
    /// as [`NodeHeap::new`] when the node's heap cannot be made.
    pub fn heap() -> Result<&'static NodeHeap, MemError> {
        NodeHeap::of(current_node()?)
    }

    /// Forget the calling thread's cached node, so that the next
    /// allocation asks the kernel which node it runs on (after the thread
    /// pinned itself elsewhere, say).
    pub fn refresh() {
        here::refresh();
    }
}

fn current_node() -> Result<NodeId, MemError> {
    match here::node() {
        Some(n) => Ok(n),
        None => Ok(crate::topology::current_node()?),
    }
}

// SAFETY: blocks come from a `&'static NodeHeap` (never freed) for the
// tagged layout, whose first `pad` bytes hold the tag: the block handed out
// starts `pad` bytes in (aligned to `layout.align()`, since the heap's
// block is aligned to `pad`, a multiple of it) and is valid for the heap's
// usable size less `pad`. `deallocate` finds the heap in the tag, so any
// copy of `Local` (they are all the same) frees any block, and a size
// between the one asked and the usable size reported maps to a tagged
// size between the heap's request and its usable size, which
// `NodeHeap::dealloc` accepts. Zero-sized blocks are dangling and never
// given to a heap.
unsafe impl Allocator for Local {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(NonNull::slice_from_raw_parts(dangling(layout), 0));
        }
        let (outer, pad) = tagged(layout).ok_or(AllocError)?;
        let heap = Local::heap().map_err(|_| AllocError)?;
        let block = heap.allocate(outer)?;
        let base = block.cast::<u8>();
        // SAFETY: the block is at least `outer.size() > pad` bytes and
        // aligned to `pad >= 16`, so `base + pad` is in it and `base + pad
        // - 8` is an aligned word of it.
        unsafe {
            let p = base.add(pad);
            tag(p).write(heap);
            Ok(NonNull::slice_from_raw_parts(p, block.len() - pad))
        }
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return;
        }
        let Some((outer, pad)) = tagged(layout) else {
            // Unreachable for a block of `allocate` (its layout was tagged).
            return;
        };
        // SAFETY: the Allocator contract: `ptr` came from `allocate` with a
        // layout that fits it, so the tag written there names the heap,
        // which lives for the whole process, and `ptr - pad` is the heap's
        // block for a size the heap accepts (see the impl's SAFETY note).
        unsafe {
            let heap = owner(ptr);
            heap.dealloc(ptr.sub(pad), outer);
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded Allocator contract (`new.size() >= old.size()`).
        unsafe { resize(ptr, old, new) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded Allocator contract (`new.size() <= old.size()`).
        unsafe { resize(ptr, old, new) }
    }
}

/// Where the tag of the block at `p` (the pointer handed to the caller)
/// is: the word just before it, naming the heap that owns the block.
///
/// # Safety
/// `p` is a block of `Local` (the word before it is inside the heap's
/// block and aligned).
unsafe fn tag(p: NonNull<u8>) -> NonNull<*const NodeHeap> {
    // SAFETY: per the caller, `p - 8` is an aligned word of the block.
    unsafe { p.sub(std::mem::size_of::<usize>()).cast() }
}

/// The heap that owns the block at `p`, read from its tag.
///
/// # Safety
/// `p` came from [`Local`]'s `allocate` (or a resize of it) and was not
/// freed: its tag was written then and names a heap that lives for the
/// whole process.
unsafe fn owner(p: NonNull<u8>) -> &'static NodeHeap {
    // SAFETY: per the caller, the tag is initialised and names a
    // process-lifetime heap.
    unsafe { &*tag(p).read() }
}

/// Grow or shrink a block of `Local` to `new`: within the heap that owns
/// it (in place when the size class allows) when the tag keeps its
/// offset, else into a fresh block on the caller's node.
///
/// # Safety
/// `ptr` is a block of `Local` that fits `old`; the block is not used
/// through `ptr` afterwards unless this fails.
unsafe fn resize(ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
    if old.size() != 0 && new.size() != 0 {
        if let (Some((outer_old, pad)), Some((outer_new, pad_new))) = (tagged(old), tagged(new)) {
            if pad == pad_new {
                // SAFETY: `ptr` came from `allocate` for a layout fitting
                // `old`: the heap's block starts `pad` bytes before it and
                // fits `outer_old`; the tag names its heap. The heap's
                // grow/shrink copy the block's first bytes, tag included,
                // so the result is tagged for the same heap.
                unsafe {
                    let heap = owner(ptr);
                    let base = ptr.sub(pad);
                    let block = if outer_new.size() >= outer_old.size() {
                        heap.grow(base, outer_old, outer_new)?
                    } else {
                        heap.shrink(base, outer_old, outer_new)?
                    };
                    return Ok(NonNull::slice_from_raw_parts(
                        block.cast::<u8>().add(pad),
                        block.len() - pad,
                    ));
                }
            }
        }
    }
    let fresh = Local.allocate(new)?;
    // SAFETY: the Allocator contract: `ptr` is valid for `old.size()`
    // bytes, `fresh` for `new.size()`; distinct blocks do not overlap.
    // `ptr` fits `old`, so it can be freed.
    unsafe {
        ptr::copy_nonoverlapping(
            ptr.as_ptr(),
            fresh.cast::<u8>().as_ptr(),
            old.size().min(new.size()),
        );
        Local.deallocate(ptr, old);
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::boxed::Box;
    use allocator_api2::vec::Vec;

    /// Run `f` on a thread pinned to a node with memory and CPUs: `Local`
    /// fails, by design, on a memoryless node, where an unpinned thread
    /// may run.
    fn on_a_memory_node(f: impl FnOnce() + Send + 'static) {
        let topo = crate::Topology::current().unwrap();
        let node = topo
            .nodes()
            .iter()
            .find(|n| n.has_memory() && !n.cpus().is_empty())
            .unwrap()
            .id();
        std::thread::spawn(move || {
            let _pin = crate::sched::pin_to_node(node).unwrap();
            f()
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_vec_in_local_is_on_the_callers_node() {
        on_a_memory_node(|| {
            let mut v = Vec::new_in(Local);
            v.extend(0..100_000u32);
            let node = Local::heap().unwrap().node();
            assert_eq!(node, crate::current_node().unwrap());
            let here = crate::mem::locate(v.as_ptr().cast(), v.len() * 4).unwrap();
            assert!(here.is_all_on(node));
            assert_eq!(v.iter().map(|&x| u64::from(x)).sum::<u64>(), 4_999_950_000);
        });
    }

    #[test]
    fn hostile_layouts_are_errors_not_panics() {
        on_a_memory_node(|| {
            for (size, align) in [
                (1usize, 1usize << 40),
                (isize::MAX as usize - 8, 1),
                (isize::MAX as usize, 1),
                ((isize::MAX as usize) & !4095, 4096),
                (1 << 46, 8),
            ] {
                let layout = Layout::from_size_align(size, align).unwrap();
                assert!(Local.allocate(layout).is_err(), "{layout:?}");
            }
            let zero = Layout::from_size_align(0, 1 << 20).unwrap();
            let p = Local.allocate(zero).unwrap();
            assert_eq!(p.len(), 0);
            assert_eq!(p.cast::<u8>().as_ptr() as usize % (1 << 20), 0);
            // SAFETY: from allocate, for this layout.
            unsafe { Local.deallocate(p.cast(), zero) };
        });
    }

    #[test]
    fn boxes_free_from_another_thread() {
        on_a_memory_node(|| {
            let b = Box::new_in([7u8; 100], Local);
            std::thread::spawn(move || drop(b)).join().unwrap();
            let b = Box::new_in(5u64, Local);
            assert_eq!(*b, 5);
        });
    }
}
