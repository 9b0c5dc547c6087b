//! [`GlobalNodeHeap`]: a [`NodeHeap`](super::NodeHeap) for a whole program,
//! through `#[global_allocator]`.

use super::core::HeapCore;
use super::{stats_of, HeapStats};
use crate::mem::MemError;
use crate::topology::NodeId;
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

/// A node heap as the program's global allocator: every `Box`, `Vec`,
/// `String`, … of the program on the node you name.
///
/// ```
/// use numakit::mem::GlobalNodeHeap;
///
/// #[global_allocator]
/// static HEAP: GlobalNodeHeap = GlobalNodeHeap::new(0);
///
/// fn main() {
///     let v = vec![1u8; 1 << 20]; // on node 0, or the program aborts
///     assert_eq!(v[0], 1);
///     let threads: Vec<_> = (0..4)
///         .map(|i| std::thread::spawn(move || format!("thread {i} ").repeat(100)))
///         .collect();
///     let texts: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
///     assert!(texts[3].starts_with("thread 3"));
///     let stats = HEAP.stats().expect("the heap is up: main allocated");
///     assert!(stats.bytes_in_use >= 1 << 20);
/// }
/// ```
///
/// # It never falls back
///
/// Memory comes only from the named node, bound with
/// `mbind(MPOL_BIND, MPOL_MF_STRICT)` and populated (for the size classes,
/// chunk by chunk as they are needed) after a check of the node's free
/// memory. When that fails — the node does not exist or
/// has no memory (`mbind` says `EINVAL`), or it is out of memory — `alloc`
/// returns null, and Rust answers a null from the global allocator by
/// **aborting the process** with `memory allocation of N bytes failed`.
/// Nothing is taken from another node or from `malloc` instead. So:
///
/// - check the node before you ship the binary (`NodeHeap::new(node)` in a
///   test gives the typed error that the abort cannot);
/// - size the node: the process aborts, rather than being OOM-killed or
///   silently using another node, when the node is full.
///
/// # Bootstrap
///
/// The allocator must not allocate through itself, so its setup uses no
/// `std::fs`, no `Vec`, no formatting: the first `alloc` maps the heap's
/// bookkeeping with raw `mmap`/`mbind`/`madvise` calls, reads the node's
/// free memory from sysfs with `open`/`read` into a stack buffer, and
/// publishes the heap with one compare-and-swap (a thread that loses the
/// race unmaps its copy). Thread caches are found through a `const`
/// thread-local without destructor, and released at thread exit by a
/// `pthread` key destructor. The topology is never read: the node is
/// checked by the kernel (`mbind`), not by numakit.
///
/// Blocks freed after a thread's caches were released (by other exit
/// destructors) go back to the heap directly; fork while another thread
/// is inside the allocator is not supported (as with most allocators
/// without `pthread_atfork` handlers).
pub struct GlobalNodeHeap {
    node: u32,
    core: AtomicPtr<HeapCore>,
}

impl GlobalNodeHeap {
    /// An allocator for `node`; nothing is mapped until the first
    /// allocation.
    pub const fn new(node: u32) -> Self {
        GlobalNodeHeap {
            node,
            core: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The node every allocation is on.
    pub fn node(&self) -> NodeId {
        NodeId::new(self.node)
    }

    /// The heap, mapped on first use; `None` when the mapping fails.
    #[inline(always)]
    fn core(&self) -> Option<&HeapCore> {
        let p = self.core.load(Ordering::Acquire);
        if p.is_null() {
            return self.init().ok();
        }
        // SAFETY: published by `init`, never destroyed.
        Some(unsafe { &*p })
    }

    #[cold]
    fn init(&self) -> Result<&HeapCore, super::os::OsFail> {
        let fresh = HeapCore::create(self.node)?;
        Ok(HeapCore::publish(&self.core, fresh))
    }

    /// Map the heap now, with a typed error where `alloc` could only say
    /// null. Useful for a `GlobalNodeHeap` that is not (yet) the global
    /// allocator; once it is, the program's first allocation has done this.
    ///
    /// # Errors
    /// [`MemError::Os`] naming `mbind` with `EINVAL` for an absent or
    /// memoryless node; [`MemError::OutOfNodeMemory`] when the node is full.
    pub fn try_init(&self) -> Result<(), MemError> {
        self.init()
            .map(drop)
            .map_err(|f| f.into_mem_error(self.node()))
    }

    /// Give the memory of every chunk whose blocks are all free back to
    /// the OS; see [`NodeHeap::trim`](super::NodeHeap::trim). `Ok(0)`
    /// before the first allocation.
    ///
    /// # Errors
    /// As [`NodeHeap::trim`](super::NodeHeap::trim).
    pub fn trim(&self) -> Result<usize, MemError> {
        let p = self.core.load(Ordering::Acquire);
        match NonNull::new(p) {
            // SAFETY: published by `init`, never destroyed.
            Some(core) => unsafe { core.as_ref() }
                .trim()
                .map_err(|f| f.into_mem_error(self.node())),
            None => Ok(0),
        }
    }

    /// The heap's figures, or `None` before the first allocation.
    ///
    /// This allocates the result (through the global allocator, i.e.
    /// probably through this heap).
    pub fn stats(&self) -> Option<HeapStats> {
        let p = self.core.load(Ordering::Acquire);
        // SAFETY: published by `init`, never destroyed.
        NonNull::new(p).map(|p| stats_of(unsafe { p.as_ref() }))
    }
}

impl std::fmt::Debug for GlobalNodeHeap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalNodeHeap")
            .field("node", &self.node)
            .field("mapped", &!self.core.load(Ordering::Relaxed).is_null())
            .finish()
    }
}

// SAFETY: blocks are valid for their layout until freed, aligned as asked
// (size classes and page-aligned mappings, see `classes::class_for`);
// failure is reported as null, never by unwinding; nothing here allocates
// through the global allocator (raw syscalls, const thread-locals, std
// mutexes, which are futex words).
unsafe impl GlobalAlloc for GlobalNodeHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.core() {
            Some(core) => core.alloc(layout).map_or(ptr::null_mut(), NonNull::as_ptr),
            None => ptr::null_mut(),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let core = self.core.load(Ordering::Acquire);
        if let (Some(core), Some(p)) = (NonNull::new(core), NonNull::new(p)) {
            // SAFETY: the GlobalAlloc contract: `p` came from `alloc` of this
            // allocator (so the heap exists) with `layout`.
            unsafe { core.as_ref().dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the GlobalAlloc contract: `new_size`, rounded up to the
        // alignment, does not overflow isize.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if HeapCore::same_block(layout, new) {
            return p;
        }
        let core = self.core.load(Ordering::Acquire);
        if let (Some(core), Some(block)) = (NonNull::new(core), NonNull::new(p)) {
            // SAFETY: the GlobalAlloc contract: `p` came from this heap for
            // `layout`; `new_size` is not 0.
            if let Some(done) = unsafe { core.as_ref().realloc_large(block, layout, new) } {
                return done.map_or(ptr::null_mut(), NonNull::as_ptr);
            }
        }
        // SAFETY: `new` is a valid layout of non-zero size (contract).
        let q = unsafe { self.alloc(new) };
        if !q.is_null() {
            // SAFETY: both blocks are valid for the smaller size and
            // distinct; `p` is freed once, with its layout.
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}
