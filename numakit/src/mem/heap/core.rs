//! The heap itself, shared by [`NodeHeap`](super::NodeHeap) and
//! [`GlobalNodeHeap`](super::GlobalNodeHeap): size-class centrals,
//! segments, large mappings, the cache registry.
//!
//! # Paths
//!
//! | request | common path | slow path |
//! |---|---|---|
//! | ≤ 1 MiB, alloc | pop the thread cache's class list | refill a batch from the class central (lock), which drains the remote list or carves the current chunk, or takes a chunk from the segments (lock), mapping a new segment if needed |
//! | ≤ 1 MiB, free on the heap's node | push on the thread cache's list | past the cache limit, half the list goes to the central (lock) |
//! | ≤ 1 MiB, free on another node | push on the class's remote list (one CAS), never kept by the freeing thread | — |
//! | > 1 MiB or aligned past 4 KiB | its own mapping: `mmap`, `mbind`, checked populate; `munmap` on free | — |
//! | realloc of such a mapping | shrink: `munmap` the tail; grow: `mremap` in place, or moved whole (`MREMAP_MAYMOVE`), and the new tail populated after the memory check: no copy, and the mapping keeps its node binding | — |
//!
//! Nothing here allocates through the global allocator, formats, or
//! panics on a path reachable from `alloc`/`dealloc`: failures are
//! [`OsFail`] values and the `GlobalAlloc` adapter turns them into null.

use super::cache::{self, bump, Cache, ALIVE, ATTACHED};
use super::classes::{self, NUM_CLASSES};
use super::fork;
use super::node_local;
use super::os::{self, Mapper, OsFail};
use crate::mem::asan;
use std::alloc::Layout;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Bytes at the start of every segment holding its header (with the
/// records of the chunks carved from it); chunks start after it, aligned
/// to [`classes::CHUNK_ALIGN`].
const SEG_HEADER: usize = 16 << 10;
/// Chunk records a segment header holds: one per chunk of at least 64 KiB
/// in the largest segment, plus the segment's last, shorter one.
const MAX_CHUNKS: usize = (SEG_HEADER - 3 * std::mem::size_of::<usize>()) / 8;
const _: () = assert!(SEG_HEADER.is_multiple_of(classes::CHUNK_ALIGN));
const _: () = assert!(MAX_CHUNKS > SEG_MAX / (64 << 10));
// Tracked segments are rounded up to whole grains: at most one grain more.
const _: () = assert!(MAX_CHUNKS > (SEG_MAX + node_local::GRAIN) / (64 << 10));
/// The first segment's payload; each next one doubles, up to [`SEG_MAX`].
const SEG_FIRST: usize = 1 << 20;
const SEG_MAX: usize = 64 << 20;
/// Slow paths between two looks at the thread's node.
pub(crate) const RECHECK_EVERY: u32 = 32;

/// Unique heap ids; 0 marks an empty thread-local slot.
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// Link the free list `front` in front of `back`; returns the head.
///
/// # Safety
/// Both are null or linked lists of free blocks of this heap that the
/// caller owns.
unsafe fn splice(front: *mut u8, back: *mut u8) -> *mut u8 {
    if front.is_null() {
        return back;
    }
    let mut tail = front;
    // SAFETY: per the contract.
    unsafe {
        while !next_of(tail).is_null() {
            tail = next_of(tail);
        }
        set_next(tail, back);
    }
    front
}

/// Read the link in a free block's first word (which stays poisoned for
/// ASan under `numakit_asan`, like the rest of the free block).
///
/// # Safety
/// `p` is a free block of this heap (blocks are at least 16 bytes and
/// aligned to 16).
#[inline(always)]
unsafe fn next_of(p: *mut u8) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe { asan::read_link(p) }
}

/// Write the link in a free block's first word (left poisoned for ASan).
///
/// # Safety
/// As [`next_of`], and nobody else uses the block.
#[inline(always)]
unsafe fn set_next(p: *mut u8, next: *mut u8) {
    // SAFETY: per the contract.
    unsafe { asan::write_link(p, next) }
}

/// A heap lock, held inside the fork gate (see `fork`).
struct Locked<'a, T> {
    // Dropped first: the lock is free before the thread leaves the gate.
    guard: MutexGuard<'a, T>,
    _inside: fork::Inside,
}

impl<T> Deref for Locked<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

fn lock<T>(m: &Mutex<T>) -> Locked<'_, T> {
    let inside = fork::enter();
    // Nothing panics while a heap lock is held; a poisoned lock's data is
    // still consistent.
    let guard = m.lock().unwrap_or_else(|e| e.into_inner());
    Locked {
        guard,
        _inside: inside,
    }
}

/// Runs of blocks a class keeps whole as thread caches flushed them.
const BATCHES: usize = 8;

/// A class's shared free blocks.
struct CentralList {
    /// Free blocks, linked through their first word.
    free: *mut u8,
    /// Runs given back by thread caches' flushes (`batches[..nbatches]`),
    /// each linked and null-terminated, with its length: a refill takes
    /// one in a single step instead of walking the list to split blocks
    /// off it (a walk through blocks another thread wrote last, one cache
    /// miss after another, under the lock). Flushes past `BATCHES` go onto
    /// `free`.
    batches: [(*mut u8, u32); BATCHES],
    nbatches: usize,
    /// The never-used rest of the current chunk: `[cursor, end)`.
    cursor: usize,
    end: usize,
}

impl CentralList {
    /// Take the newest whole run.
    fn pop_batch(&mut self) -> Option<(NonNull<u8>, u32)> {
        self.nbatches = self.nbatches.checked_sub(1)?;
        let (head, n) = self.batches[self.nbatches];
        NonNull::new(head).map(|h| (h, n))
    }

    /// Put every run onto `free` (for code that walks all free blocks).
    ///
    /// # Safety
    /// The runs and `free` are linked lists of free blocks of the class.
    unsafe fn merge_batches(&mut self) {
        while let Some((head, _)) = self.pop_batch() {
            // SAFETY: per the contract.
            self.free = unsafe { splice(head.as_ptr(), self.free) };
        }
    }
}

// SAFETY: the pointers are into the heap's own segments; the list is only
// touched under its mutex.
unsafe impl Send for CentralList {}

/// One size class of a heap.
#[repr(align(64))]
struct Central {
    list: Mutex<CentralList>,
    /// Blocks freed by threads on other nodes (or without a cache): a
    /// Treiber stack, pushed with CAS and taken whole with `swap` (no ABA:
    /// nothing pops single blocks).
    remote: AtomicPtr<u8>,
    /// Blocks carved from chunks so far.
    blocks: AtomicU64,
    /// Allocations and frees that bypassed every thread cache.
    allocs: AtomicU64,
    frees: AtomicU64,
}

/// The segment list and the current segment's free tail.
struct Segments {
    /// Most recent segment (its header links to the one before).
    list: *mut u8,
    cursor: usize,
    end: usize,
    next_payload: usize,
    /// Chunk records marked released (their pages given back by `trim`).
    released: usize,
}

// SAFETY: as for CentralList.
unsafe impl Send for Segments {}

/// At the base of every segment.
#[repr(C)]
struct SegHeader {
    next: *mut u8,
    len: usize,
    /// Records in use in `recs`.
    chunks: usize,
    /// The chunks carved from this segment, in address order (see
    /// [`Chunk`]); only touched under the segments' lock.
    recs: [u64; MAX_CHUNKS],
}

/// A chunk record, packed in a `u64`: offset from the segment's base (bits
/// 0–31), length (32–55), size class (56–61), released (63).
#[derive(Clone, Copy)]
struct Chunk(u64);

impl Chunk {
    const RELEASED: u64 = 1 << 63;
    fn new(offset: usize, len: usize, class: usize) -> Chunk {
        debug_assert!(offset < 1 << 32 && len < 1 << 24 && class < 64);
        Chunk(offset as u64 | (len as u64) << 32 | (class as u64) << 56)
    }
    fn offset(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    fn len(self) -> usize {
        ((self.0 >> 32) & 0xff_ffff) as usize
    }
    fn class(self) -> usize {
        ((self.0 >> 56) & 0x3f) as usize
    }
    fn released(self) -> bool {
        self.0 & Self::RELEASED != 0
    }
    fn with_released(self, released: bool) -> Chunk {
        Chunk(self.0 & !Self::RELEASED | if released { Self::RELEASED } else { 0 })
    }
    fn with_class(self, class: usize) -> Chunk {
        Chunk(self.0 & !(0x3f << 56) | (class as u64) << 56)
    }
}

/// The header of segment `seg`.
///
/// # Safety
/// `seg` is a segment of a live heap; the caller holds the segments' lock
/// while it uses the reference (or owns the heap, as `destroy` does).
unsafe fn header<'a>(seg: NonNull<u8>) -> &'a mut SegHeader {
    // SAFETY: per the contract; every segment starts with its header.
    unsafe { &mut *seg.cast::<SegHeader>().as_ptr() }
}

/// Per-class figures read from a heap.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClassFigures {
    pub(crate) blocks: u64,
    pub(crate) allocs: u64,
    pub(crate) frees: u64,
    pub(crate) remote_frees: u64,
}

/// Whole-heap figures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Figures {
    pub(crate) classes: [ClassFigures; NUM_CLASSES],
    pub(crate) large_bytes: usize,
    pub(crate) large_allocs: u64,
    pub(crate) large_frees: u64,
    pub(crate) segment_bytes: usize,
    pub(crate) released_bytes: usize,
    pub(crate) meta_bytes: usize,
    pub(crate) caches: usize,
}

/// A heap bound to one node. Lives in a node-bound mapping of its own.
pub(crate) struct HeapCore {
    pub(crate) uid: u64,
    pub(crate) node: u32,
    /// Segments are aligned to [`node_local::GRAIN`] and noted in the
    /// address registry (the heaps of [`NodeLocal`](super::NodeLocal)).
    tracked: bool,
    mapper: Mapper,
    /// Bytes of this struct's own mapping.
    map_len: usize,
    classes: [Central; NUM_CLASSES],
    segs: Mutex<Segments>,
    /// Registry of every cache made for this heap (never shrinks).
    caches: AtomicPtr<Cache>,
    large_bytes: AtomicUsize,
    large_allocs: AtomicU64,
    large_frees: AtomicU64,
    segment_bytes: AtomicUsize,
    /// Bytes of segments given back to the OS by `trim` and not reused.
    released_bytes: AtomicUsize,
    meta_bytes: AtomicUsize,
}

// SAFETY: all shared state is behind mutexes or atomics; the raw pointers
// are into the heap's own mappings.
unsafe impl Sync for HeapCore {}
// SAFETY: as above; nothing is tied to the creating thread.
unsafe impl Send for HeapCore {}

impl HeapCore {
    /// Map and initialise a heap on `node`.
    pub(crate) fn create(node: u32) -> Result<NonNull<HeapCore>, OsFail> {
        Self::create_with(node, false)
    }

    /// Map and initialise a heap on `node` whose segments are noted in the
    /// address registry (`tracked`), so that a block's heap can be found
    /// from its address.
    pub(crate) fn create_with(node: u32, tracked: bool) -> Result<NonNull<HeapCore>, OsFail> {
        fork::ensure_handlers();
        let mapper = Mapper::new(node);
        let page = crate::sys::page_size();
        let len = round_up(std::mem::size_of::<HeapCore>(), page);
        let p = mapper.map(len, page)?.cast::<HeapCore>();
        let core = HeapCore {
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            node,
            tracked,
            mapper,
            map_len: len,
            classes: std::array::from_fn(|_| Central {
                list: Mutex::new(CentralList {
                    free: ptr::null_mut(),
                    batches: [(ptr::null_mut(), 0); BATCHES],
                    nbatches: 0,
                    cursor: 0,
                    end: 0,
                }),
                remote: AtomicPtr::new(ptr::null_mut()),
                blocks: AtomicU64::new(0),
                allocs: AtomicU64::new(0),
                frees: AtomicU64::new(0),
            }),
            segs: Mutex::new(Segments {
                list: ptr::null_mut(),
                cursor: 0,
                end: 0,
                next_payload: SEG_FIRST,
                released: 0,
            }),
            caches: AtomicPtr::new(ptr::null_mut()),
            large_bytes: AtomicUsize::new(0),
            large_allocs: AtomicU64::new(0),
            large_frees: AtomicU64::new(0),
            segment_bytes: AtomicUsize::new(0),
            released_bytes: AtomicUsize::new(0),
            meta_bytes: AtomicUsize::new(len),
        };
        // SAFETY: a fresh, writable, page-aligned mapping of at least
        // size_of::<HeapCore>() bytes, nothing else references it.
        unsafe { p.as_ptr().write(core) };
        Ok(p)
    }

    /// Publish `fresh` in `slot` unless another thread published a heap
    /// there first (then `fresh` is destroyed); the heap in the slot either
    /// way. A published heap lives for the rest of the program.
    pub(super) fn publish(
        slot: &AtomicPtr<HeapCore>,
        fresh: NonNull<HeapCore>,
    ) -> &'static HeapCore {
        match slot.compare_exchange(
            std::ptr::null_mut(),
            fresh.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: just published; never destroyed.
            Ok(_) => unsafe { fresh.as_ref() },
            Err(winner) => {
                // SAFETY: ours, never published, nothing allocated from it.
                unsafe { HeapCore::destroy(fresh) };
                // SAFETY: the winner's heap, published, never destroyed.
                unsafe { &*winner }
            }
        }
    }

    /// Unmap everything the heap mapped, and the heap.
    ///
    /// # Safety
    /// `core` came from [`create`](Self::create), no block of it is used
    /// any more, and no thread is inside one of its methods.
    pub(crate) unsafe fn destroy(core: NonNull<HeapCore>) {
        // SAFETY: alive until unmapped at the end.
        let this = unsafe { core.as_ref() };
        let mut c = this.caches.load(Ordering::Acquire);
        while let Some(cache) = NonNull::new(c) {
            // SAFETY: registered caches stay mapped while ALIVE is set;
            // read what we need before clearing it.
            let (next, len) = unsafe { (cache.as_ref().next, cache.as_ref().map_len) };
            // SAFETY: as above.
            let prev = unsafe { cache.as_ref() }
                .state
                .fetch_and(!ALIVE, Ordering::AcqRel);
            if prev & ATTACHED == 0 {
                // SAFETY: no thread holds it and the heap lets go: ours.
                unsafe { os::unmap(cache.cast(), len) };
            }
            c = next;
        }
        let mut seg = lock(&this.segs).list;
        while let Some(s) = NonNull::new(seg) {
            // SAFETY: the heap is ours now; read before unmapping.
            let (next, len) = unsafe { (header(s).next, header(s).len) };
            // SAFETY: no block is in use (contract); the segment is ours.
            unsafe { os::unmap(s, len) };
            seg = next;
        }
        let len = this.map_len;
        // SAFETY: the fields own nothing that needs dropping beyond std
        // mutexes; the mapping is unmapped right after.
        unsafe {
            ptr::drop_in_place(core.as_ptr());
            os::unmap(core.cast(), len);
        }
    }

    // ---- allocation -------------------------------------------------

    /// A block for `layout`.
    #[inline]
    pub(crate) fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, OsFail> {
        match classes::class_for(layout.size(), layout.align()) {
            Some(c) => self.alloc_small(c).inspect(|p| handed_out(*p, c)),
            None => self.alloc_large(layout),
        }
    }

    /// A block for `layout`, and its usable size.
    #[inline]
    pub(crate) fn alloc_usable(&self, layout: Layout) -> Result<(NonNull<u8>, usize), OsFail> {
        match classes::class_for(layout.size(), layout.align()) {
            Some(c) => {
                let p = self.alloc_small(c)?;
                handed_out(p, c);
                Ok((p, classes::size_of_class(c)))
            }
            None => Ok((self.alloc_large(layout)?, Self::usable_size(layout))),
        }
    }

    /// Give back a block.
    ///
    /// # Safety
    /// `p` came from [`alloc`](Self::alloc) of this heap with a layout of
    /// the same alignment and a size between the one asked for and the
    /// block's usable size, and is not used again.
    #[inline]
    pub(crate) unsafe fn dealloc(&self, p: NonNull<u8>, layout: Layout) {
        match classes::class_for(layout.size(), layout.align()) {
            Some(c) => {
                // Poisoned while free (its link word is reached through
                // `next_of`/`set_next` only).
                asan::poison(p.as_ptr(), classes::size_of_class(c));
                // SAFETY: per the contract, a block of class `c`.
                unsafe { self.free_small(p, c) }
            }
            // SAFETY: per the contract, a large mapping of this size.
            None => unsafe { self.free_large(p, layout) },
        }
    }

    /// Usable bytes of a block handed out for `layout`.
    #[inline]
    pub(crate) fn usable_size(layout: Layout) -> usize {
        match classes::class_for(layout.size(), layout.align()) {
            Some(c) => classes::size_of_class(c),
            None => round_up(layout.size().max(1), crate::sys::page_size()),
        }
    }

    /// Whether blocks for `a` and `b` are the same kind of block (so one
    /// can be reused in place for the other).
    #[inline]
    pub(crate) fn same_block(a: Layout, b: Layout) -> bool {
        match (
            classes::class_for(a.size(), a.align()),
            classes::class_for(b.size(), b.align()),
        ) {
            (Some(x), Some(y)) => x == y,
            (None, None) => {
                let page = crate::sys::page_size();
                a.align() == b.align()
                    && checked_round_up(a.size().max(1), page)
                        == checked_round_up(b.size().max(1), page)
            }
            _ => false,
        }
    }

    /// The node-local allocator's fast path: a block of class `c` from the
    /// calling thread's home cache (see `cache::ThreadSlots`), or `None`
    /// when there is no home cache, it is time to read the node again, a
    /// detour is in force, or the class list is empty.
    #[inline(always)]
    pub(crate) fn pop_home(c: usize) -> Option<NonNull<u8>> {
        cache::with_thread(|t| {
            let cache = t.home_for_alloc()?;
            // A class past the table is the slow path's to refuse.
            let cc = cache.classes.get(c)?;
            let head = NonNull::new(cc.head.get())?;
            t.here.left.set(t.here.left.get() - 1);
            // SAFETY: a free block on the owner's list.
            cc.head.set(unsafe { next_of(head.as_ptr()) });
            cc.count.set(cc.count.get() - 1);
            bump(&cc.allocs);
            handed_out(head, c);
            Some(head)
        })
        .flatten()
    }

    /// The node-local allocator's fast free: push `p` on the calling
    /// thread's home cache if that is the cache of the heap whose registry
    /// tag is `tag` (see [`ThreadSlots::home_tagged`](cache::ThreadSlots::home_tagged):
    /// the thread runs on that node) and the class list has room; `false`
    /// (nothing done) otherwise.
    ///
    /// # Safety
    /// When `tag` is the registry tag of a node-local heap, `p` is a block
    /// of class `c` of that heap, given up by the caller.
    #[inline(always)]
    pub(crate) unsafe fn push_home(tag: u32, p: *mut u8, c: usize) -> bool {
        cache::with_thread(|t| {
            let Some(cache) = t.home_tagged(tag) else {
                return false;
            };
            let Some(cc) = cache.classes.get(c) else {
                return false;
            };
            let n = cc.count.get();
            if n >= cc.limit {
                return false;
            }
            asan::poison(p, classes::size_of_class(c));
            // SAFETY: the block is the caller's to give back (a home tag
            // is a node-local heap's, so the caller's contract holds).
            unsafe { set_next(p, cc.head.get()) };
            cc.head.set(p);
            cc.count.set(n + 1);
            bump(&cc.frees);
            true
        })
        .unwrap_or(false)
    }

    #[inline(always)]
    fn alloc_small(&self, c: usize) -> Result<NonNull<u8>, OsFail> {
        // SAFETY: a non-null entry is this thread's attached cache for this
        // heap, mapped while the heap lives (and `&self` proves it does).
        if let Some(cache) = unsafe { cache::lookup(self.uid).as_ref() } {
            let cc = &cache.classes[c];
            if let Some(head) = NonNull::new(cc.head.get()) {
                // SAFETY: a free block on the owner's list.
                cc.head.set(unsafe { next_of(head.as_ptr()) });
                cc.count.set(cc.count.get() - 1);
                bump(&cc.allocs);
                return Ok(head);
            }
            return self.refill(cache, c);
        }
        self.alloc_attach(c)
    }

    #[cold]
    fn alloc_attach(&self, c: usize) -> Result<NonNull<u8>, OsFail> {
        if !self.attach().is_null() {
            // The thread has a cache now (perhaps an adopted one with
            // blocks in it): the common path finds it.
            return self.alloc_small(c);
        }
        let (head, _) = self.take(c, 1)?;
        bump_shared(&self.classes[c].allocs);
        Ok(head)
    }

    /// Refill `cache`'s class `c`, which is empty, with a batch and hand
    /// out one block.
    #[inline(never)]
    fn refill(&self, cache: &Cache, c: usize) -> Result<NonNull<u8>, OsFail> {
        debug_assert!(cache.classes[c].head.get().is_null());
        self.recheck_node(cache);
        let cc = &cache.classes[c];
        let batch = classes::refill_batch(c);
        let (head, n) = self.take(c, batch)?;
        // SAFETY: `take` handed us `n` linked free blocks starting at head.
        cc.head.set(unsafe { next_of(head.as_ptr()) });
        cc.count.set(n - 1);
        bump(&cc.allocs);
        Ok(head)
    }

    /// Look at the thread's node again every [`RECHECK_EVERY`] slow paths.
    #[inline]
    fn recheck_node(&self, cache: &Cache) {
        let left = cache.recheck.get();
        if left == 0 {
            let local = self.on_home_node();
            cache.local.set(local);
            if !local {
                // The node-local fast free relies on its home being local.
                let _ = cache::with_thread(|t| t.home_not_local(cache));
            }
            cache.recheck.set(RECHECK_EVERY);
        } else {
            cache.recheck.set(left - 1);
        }
    }

    fn on_home_node(&self) -> bool {
        // If the kernel cannot say, treat the thread as local: that only
        // decides which free list a block goes to, never its node.
        crate::sys::sched::getcpu().map_or(true, |(_, node)| node == self.node)
    }

    /// Linked free blocks of class `c`, at least one: up to `want` (>= 1),
    /// or, for a `want` above 1 (a thread cache's refill), a whole run a
    /// flush gave back, however long (at most a cache's limit plus one).
    fn take(&self, c: usize, want: u32) -> Result<(NonNull<u8>, u32), OsFail> {
        let central = &self.classes[c];
        let size = classes::size_of_class(c);
        let mut g = lock(&central.list);
        if want > 1 {
            if let Some(run) = g.pop_batch() {
                return Ok(run);
            }
        }
        if g.free.is_null() {
            g.free = central.remote.swap(ptr::null_mut(), Ordering::Acquire);
        }
        if g.free.is_null() {
            if let Some((head, _)) = g.pop_batch() {
                g.free = head.as_ptr();
            }
        }
        if g.free.is_null() && g.end - g.cursor < size {
            g.free = self.sweep_abandoned(c);
        }
        if let Some(head) = NonNull::new(g.free) {
            let mut last = head.as_ptr();
            let mut n = 1;
            // SAFETY: every block on the central list is free and linked.
            let mut p = unsafe { next_of(last) };
            while n < want && !p.is_null() {
                last = p;
                // SAFETY: as above.
                p = unsafe { next_of(p) };
                n += 1;
            }
            g.free = p;
            // SAFETY: `last` is ours now; terminate the taken list.
            unsafe { set_next(last, ptr::null_mut()) };
            return Ok((head, n));
        }
        if g.end - g.cursor < size {
            let (start, len) = self.take_chunk(classes::chunk_of_class(c), size, c)?;
            let whole = len / size * size;
            g.cursor = start;
            g.end = start + whole;
            central
                .blocks
                .fetch_add((whole / size) as u64, Ordering::Relaxed);
        }
        let n = (want as usize).min((g.end - g.cursor) / size);
        let start = g.cursor;
        g.cursor += n * size;
        drop(g);
        // Never-used blocks are free blocks: poisoned until handed out.
        asan::poison(start as *const u8, n * size);
        // Link the carved run outside the lock: nobody else can reach it.
        for i in 0..n - 1 {
            let p = (start + i * size) as *mut u8;
            // SAFETY: never-used blocks of our chunk, exclusively ours.
            unsafe { set_next(p, p.add(size)) };
        }
        // SAFETY: as above; `start` is inside a mapping, non-null.
        unsafe {
            set_next((start + (n - 1) * size) as *mut u8, ptr::null_mut());
            Ok((NonNull::new_unchecked(start as *mut u8), n as u32))
        }
    }

    /// Take class `c`'s blocks out of every abandoned cache (before the
    /// heap maps more memory). Returns them linked, or null.
    #[cold]
    fn sweep_abandoned(&self, c: usize) -> *mut u8 {
        let mut found: *mut u8 = ptr::null_mut();
        let mut next = self.caches.load(Ordering::Acquire);
        while let Some(cache) = NonNull::new(next) {
            // SAFETY: registered caches stay mapped while the heap lives.
            let cache = unsafe { cache.as_ref() };
            next = cache.next;
            if cache
                .state
                .compare_exchange(
                    ALIVE,
                    ALIVE | ATTACHED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            let cc = &cache.classes[c];
            let head = cc.head.replace(ptr::null_mut());
            cc.count.set(0);
            cache.state.fetch_and(!ATTACHED, Ordering::Release);
            // SAFETY: the cache's list was linked and is ours now, as is
            // `found`.
            found = unsafe { splice(head, found) };
        }
        found
    }

    /// A chunk of `want` bytes (or the segment's rest, if at least `min`)
    /// for class `class`: a chunk `trim` released, populated again, or a
    /// new one from the segments, mapping a new segment when needed.
    fn take_chunk(&self, want: usize, min: usize, class: usize) -> Result<(usize, usize), OsFail> {
        let mut s = lock(&self.segs);
        if s.released > 0 {
            if let Some(found) = self.reuse_chunk(&mut s, want, min, class) {
                return found;
            }
        }
        if s.end - s.cursor < min {
            let mut payload = s.next_payload.max(want);
            if self.tracked {
                // Whole grains: the registry notes every grain the segment
                // touches, and an address in a noted grain must be inside
                // the segment (`NodeLocal::segment_node`), never in a
                // mapping made later in the unused rest of the grain.
                payload = round_up(payload + SEG_HEADER, node_local::GRAIN) - SEG_HEADER;
            }
            let len = payload + SEG_HEADER;
            // Reserved and bound now, populated chunk by chunk as carved.
            let align = crate::sys::page_size().max(classes::CHUNK_ALIGN);
            let align = if self.tracked {
                align.max(node_local::GRAIN)
            } else {
                align
            };
            let base = self.mapper.reserve(len, align, SEG_HEADER)?;
            if self.tracked {
                // Before any block of the segment is handed out.
                node_local::note_segment(base.as_ptr() as usize, len, self.node);
            }
            // SAFETY: the fresh segment's first bytes hold its header; the
            // mapping is zeroed, so the records start empty.
            unsafe {
                let h = header(base);
                h.next = s.list;
                h.len = len;
                h.chunks = 0;
            }
            s.list = base.as_ptr();
            s.cursor = base.as_ptr() as usize + SEG_HEADER;
            s.end = s.cursor + payload;
            s.next_payload = (s.next_payload * 2).min(SEG_MAX);
            self.segment_bytes.fetch_add(SEG_HEADER, Ordering::Relaxed);
        }
        let got = want.min(s.end - s.cursor);
        let start = s.cursor;
        // SAFETY: `start` is inside the current segment's mapping, past its
        // header, hence non-null.
        let chunk = unsafe { NonNull::new_unchecked(start as *mut u8) };
        // `start..start + got` is not carved yet: populate it now.
        self.mapper.populate(chunk, got)?;
        s.cursor += got;
        self.segment_bytes.fetch_add(got, Ordering::Relaxed);
        // SAFETY: `s.list` is the current segment (the chunk is carved
        // from it) and we hold the lock.
        let h = unsafe { header(NonNull::new_unchecked(s.list)) };
        h.recs[h.chunks] = Chunk::new(start - s.list as usize, got, class).0;
        h.chunks += 1;
        Ok((start, got))
    }

    /// A released chunk of between `min` and `want` bytes, populated again
    /// (after the node's memory is checked) and given to `class`; `None`
    /// when there is none.
    #[cold]
    fn reuse_chunk(
        &self,
        s: &mut Segments,
        want: usize,
        min: usize,
        class: usize,
    ) -> Option<Result<(usize, usize), OsFail>> {
        let mut seg = s.list;
        while let Some(base) = NonNull::new(seg) {
            // SAFETY: a segment of this heap; the caller holds the lock.
            let h = unsafe { header(base) };
            for rec in &mut h.recs[..h.chunks] {
                let chunk = Chunk(*rec);
                if !chunk.released() || chunk.len() < min || chunk.len() > want {
                    continue;
                }
                let start = base.as_ptr() as usize + chunk.offset();
                // SAFETY: the chunk lies inside this segment's mapping.
                let p = unsafe { NonNull::new_unchecked(start as *mut u8) };
                if let Err(fail) = self.mapper.populate(p, chunk.len()) {
                    return Some(Err(fail));
                }
                *rec = chunk.with_released(false).with_class(class).0;
                s.released -= 1;
                self.released_bytes
                    .fetch_sub(chunk.len(), Ordering::Relaxed);
                return Some(Ok((start, chunk.len())));
            }
            seg = h.next;
        }
        None
    }

    /// Give the pages of every chunk whose blocks are all free — on the
    /// class lists, in the calling thread's cache or in caches no thread
    /// owns — back to the OS
    /// (`MADV_DONTNEED`); the chunks stay reserved and bound to the node,
    /// and are populated again (memory checked first) when a class needs a
    /// chunk. Blocks cached by other threads keep their chunks. Returns the
    /// bytes given back.
    pub(crate) fn trim(&self) -> Result<usize, OsFail> {
        // Class locks in index order, then the segments: `take` holds a
        // class lock while it takes the segments' one, never two classes.
        let mut lists: [Locked<'_, CentralList>; NUM_CLASSES] =
            std::array::from_fn(|c| lock(&self.classes[c].list));
        let mut segs = lock(&self.segs);
        // SAFETY: a non-null entry is this thread's cache for this heap.
        let own = unsafe { cache::lookup(self.uid).as_ref() };
        let page = crate::sys::page_size();
        let mut released = 0;
        let mut failure = None;
        for (c, g) in lists.iter_mut().enumerate() {
            let central = &self.classes[c];
            let mut extra = central.remote.swap(ptr::null_mut(), Ordering::Acquire);
            if let Some(own) = own {
                let cc = &own.classes[c];
                // SAFETY: both lists are ours now (the cache is this
                // thread's); splice the cache's in front.
                unsafe { extra = splice(cc.head.replace(ptr::null_mut()), extra) };
                cc.count.set(0);
            }
            // Caches no thread owns any more give their blocks up too.
            // SAFETY: lists of free blocks, ours now.
            extra = unsafe { splice(self.sweep_abandoned(c), extra) };
            // SAFETY: the runs and the list are linked free blocks.
            unsafe { g.merge_batches() };
            // SAFETY: `extra` and the central list are linked free blocks.
            g.free = unsafe { splice(extra, g.free) };
            let mut n = 0usize;
            let mut p = g.free;
            while !p.is_null() {
                n += 1;
                // SAFETY: a free block of the list.
                p = unsafe { next_of(p) };
            }
            if n == 0 {
                continue;
            }
            let size = classes::size_of_class(c);
            let scratch_len = round_up((n * std::mem::size_of::<usize>()).max(1), page);
            let scratch = self.mapper.map(scratch_len, page)?;
            // SAFETY: a fresh mapping of at least `n` words, ours alone.
            let addrs =
                unsafe { std::slice::from_raw_parts_mut(scratch.cast::<usize>().as_ptr(), n) };
            let mut p = g.free;
            for a in addrs.iter_mut() {
                *a = p as usize;
                // SAFETY: as above.
                p = unsafe { next_of(p) };
            }
            addrs.sort_unstable();
            let mut seg = segs.list;
            'segments: while let Some(base) = NonNull::new(seg) {
                // SAFETY: a segment of this heap; we hold the lock.
                let h = unsafe { header(base) };
                for rec in &mut h.recs[..h.chunks] {
                    let chunk = Chunk(*rec);
                    if chunk.released() || chunk.class() != c {
                        continue;
                    }
                    let start = base.as_ptr() as usize + chunk.offset();
                    let end = start + chunk.len();
                    let current = g.end > start && g.end <= end;
                    let carved = if current {
                        (g.cursor - start) / size
                    } else {
                        chunk.len() / size
                    };
                    let lo = addrs.partition_point(|&a| a < start);
                    let hi = addrs.partition_point(|&a| a < end);
                    if hi - lo != carved {
                        continue; // some block is in use or in a cache
                    }
                    // SAFETY: every block of the chunk is free and on no
                    // list once `addrs` drops them below; the range is
                    // inside this segment's mapping.
                    let gone = unsafe {
                        os::release(NonNull::new_unchecked(start as *mut u8), chunk.len())
                    };
                    if let Err(fail) = gone {
                        // Keep the chunk (its pages may or may not be gone:
                        // its blocks stay on the list, which is rebuilt
                        // below from `addrs`, not from their links).
                        failure = Some(fail);
                        break 'segments;
                    }
                    // Mark the chunk's blocks as gone with the low bit
                    // (blocks are 16-aligned): the array stays sorted for
                    // the searches of the next chunks.
                    for a in &mut addrs[lo..hi] {
                        *a |= 1;
                    }
                    if current {
                        g.cursor = 0;
                        g.end = 0;
                    }
                    *rec = chunk.with_released(true).0;
                    segs.released += 1;
                    central.blocks.fetch_sub(carved as u64, Ordering::Relaxed);
                    self.released_bytes
                        .fetch_add(chunk.len(), Ordering::Relaxed);
                    released += chunk.len();
                }
                seg = h.next;
            }
            // The list again, in address order, without the released blocks.
            let mut head: *mut u8 = ptr::null_mut();
            for &a in addrs.iter().rev().filter(|&&a| a & 1 == 0) {
                // SAFETY: a free block still on this class's list.
                unsafe { set_next(a as *mut u8, head) };
                head = a as *mut u8;
            }
            g.free = head;
            // SAFETY: the scratch mapping is ours and no longer used.
            unsafe { os::unmap(scratch, scratch_len) };
            if let Some(fail) = failure {
                return Err(fail);
            }
        }
        Ok(released)
    }

    fn alloc_large(&self, layout: Layout) -> Result<NonNull<u8>, OsFail> {
        let page = crate::sys::page_size();
        let len = checked_round_up(layout.size().max(1), page)
            .filter(|&l| l <= isize::MAX as usize - layout.align())
            .ok_or(OsFail::TooLarge(layout.size() as u64))?;
        let p = self.mapper.map(len, layout.align())?;
        self.large_bytes.fetch_add(len, Ordering::Relaxed);
        self.large_allocs.fetch_add(1, Ordering::Relaxed);
        Ok(p)
    }

    /// Resize a block that has a mapping of its own to `new`, which needs
    /// one too, without copying its pages: shrinking unmaps the tail;
    /// growing extends the mapping with `mremap` — where it is, or moved
    /// elsewhere whole (`MREMAP_MAYMOVE`: the mapping and its node binding
    /// move with the pages) — after a check that the node can give the
    /// new part, which is then populated.
    ///
    /// `None` when either layout is served by a size class, when the block
    /// would have to move but needs an alignment above the page's, or when
    /// the kernel refuses to move it: the caller allocates, copies and
    /// frees.
    ///
    /// A moved block whose new part cannot be populated after all (another
    /// process took the memory between the check and the populate) is
    /// still handed out: its pages can only come from the node (the
    /// binding is the mapping's), they are faulted in when touched.
    ///
    /// # Safety
    /// `p` came from this heap for `old` (as for [`dealloc`](Self::dealloc))
    /// and `new.size()` is not 0. On `Some(Ok(q))` the block is `q`, valid
    /// for `new` and holding the first `min(old, new)` bytes of `p`, and
    /// `p` must not be used again (unless `q == p`); on `Some(Err(_))` and
    /// `None` the block is still `p`, untouched.
    pub(crate) unsafe fn realloc_large(
        &self,
        p: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Option<Result<NonNull<u8>, OsFail>> {
        if classes::class_for(old.size(), old.align()).is_some()
            || classes::class_for(new.size(), new.align()).is_some()
        {
            return None;
        }
        let page = crate::sys::page_size();
        let old_len = round_up(old.size().max(1), page);
        let Some(new_len) = checked_round_up(new.size().max(1), page)
            .filter(|&l| l <= isize::MAX as usize - new.align())
        else {
            return Some(Err(OsFail::TooLarge(new.size() as u64)));
        };
        if !(p.as_ptr() as usize).is_multiple_of(new.align()) {
            return None;
        }
        if new_len <= old_len {
            if new_len < old_len {
                // SAFETY: the tail of the block's own mapping, which the
                // caller gives up with the old size.
                unsafe { os::unmap(p.add(new_len), old_len - new_len) };
                self.large_bytes
                    .fetch_sub(old_len - new_len, Ordering::Relaxed);
            }
            return Some(Ok(p));
        }
        let grow = new_len - old_len;
        // Refuse up front what the node cannot hold now.
        if let Err(fail) = self.mapper.check_fits(grow as u64) {
            return Some(Err(fail));
        }
        // SAFETY: the block's own mapping, which only grows here.
        if unsafe { crate::sys::mem::mremap_in_place(p, old_len, new_len) }.is_ok() {
            // SAFETY: inside the grown mapping.
            let tail = unsafe { p.add(old_len) };
            return match self.mapper.populate(tail, grow) {
                Ok(()) => {
                    self.large_bytes.fetch_add(grow, Ordering::Relaxed);
                    Some(Ok(p))
                }
                Err(fail) => {
                    // Back to the old size (shrinking in place cannot
                    // fail for a range that was just grown in place).
                    // SAFETY: the tail was never handed out.
                    let _ = unsafe { crate::sys::mem::mremap_in_place(p, new_len, old_len) };
                    Some(Err(fail))
                }
            };
        }
        if new.align() > page {
            // A moved mapping is only page-aligned.
            return None;
        }
        // SAFETY: the block's own mapping; once moved, the caller uses `q`
        // only (contract).
        let q = unsafe { crate::sys::mem::mremap_maymove(p, old_len, new_len) }.ok()?;
        self.large_bytes.fetch_add(grow, Ordering::Relaxed);
        // SAFETY: inside the moved, grown mapping.
        let tail = unsafe { q.add(old_len) };
        // The check above said the node can give it; if it cannot any
        // more (memory taken since), the tail is faulted in on the node when touched (see the
        // doc comment): the block has moved and `p` is gone.
        let _ = self.mapper.populate(tail, grow);
        Some(Ok(q))
    }

    // ---- free -------------------------------------------------------

    #[inline(always)]
    unsafe fn free_small(&self, p: NonNull<u8>, c: usize) {
        // SAFETY: as in alloc_small.
        if let Some(cache) = unsafe { cache::lookup(self.uid).as_ref() } {
            let cc = &cache.classes[c];
            if cache.local.get() {
                let n = cc.count.get();
                if n < cc.limit {
                    // SAFETY: the block is the caller's to give back.
                    unsafe { set_next(p.as_ptr(), cc.head.get()) };
                    cc.head.set(p.as_ptr());
                    cc.count.set(n + 1);
                    bump(&cc.frees);
                    return;
                }
                // SAFETY: forwarded contract.
                return unsafe { self.flush(cache, c, p) };
            }
            // SAFETY: forwarded contract.
            return unsafe { self.free_away(cache, c, p) };
        }
        // SAFETY: forwarded contract.
        unsafe { self.free_attach(p, c) }
    }

    /// A free into a cache that counted itself away from its node: to the
    /// remote list, unless the node, read again every [`RECHECK_EVERY`]
    /// such frees, says the thread is back (a thread that only frees
    /// never refills or flushes, which read it otherwise).
    ///
    /// # Safety
    /// `p` is a block of class `c` of this heap, not used again.
    #[inline(never)]
    unsafe fn free_away(&self, cache: &Cache, c: usize, p: NonNull<u8>) {
        self.recheck_node(cache);
        if cache.local.get() {
            // SAFETY: forwarded contract; the cache is local now.
            return unsafe { self.free_small(p, c) };
        }
        let cc = &cache.classes[c];
        // SAFETY: forwarded contract.
        unsafe { self.push_remote(c, p) };
        bump(&cc.frees);
        bump(&cc.remote_frees);
    }

    #[cold]
    unsafe fn free_attach(&self, p: NonNull<u8>, c: usize) {
        if !self.attach().is_null() {
            // SAFETY: forwarded contract; the thread now has a cache.
            return unsafe { self.free_small(p, c) };
        }
        // SAFETY: forwarded contract.
        unsafe { self.push_remote(c, p) };
        bump_shared(&self.classes[c].frees);
    }

    /// Push `p` on class `c`'s remote list.
    ///
    /// # Safety
    /// `p` is a block of class `c` of this heap, not used again.
    unsafe fn push_remote(&self, c: usize, p: NonNull<u8>) {
        let remote = &self.classes[c].remote;
        let mut head = remote.load(Ordering::Relaxed);
        loop {
            // SAFETY: the block is ours until published.
            unsafe { set_next(p.as_ptr(), head) };
            match remote.compare_exchange_weak(
                head,
                p.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// The cache's class list is full: push `p`, then give half the list
    /// (all of it if the thread is now on another node) to the central.
    #[inline(never)]
    unsafe fn flush(&self, cache: &Cache, c: usize, p: NonNull<u8>) {
        let cc = &cache.classes[c];
        // SAFETY: the block is the caller's to give back.
        unsafe { set_next(p.as_ptr(), cc.head.get()) };
        cc.head.set(p.as_ptr());
        bump(&cc.frees);
        self.recheck_node(cache);
        let count = cc.count.get() + 1;
        let give = if cache.local.get() { count / 2 } else { count };
        let head = cc.head.get();
        let mut last = head;
        for _ in 1..give {
            // SAFETY: the cache's list holds `count` linked blocks.
            last = unsafe { next_of(last) };
        }
        // SAFETY: as above.
        let rest = unsafe { next_of(last) };
        cc.head.set(rest);
        cc.count.set(count - give);
        let central = &self.classes[c];
        let mut g = lock(&central.list);
        if g.nbatches < BATCHES {
            // SAFETY: the run head..=last is ours; it ends at `last`.
            unsafe { set_next(last, ptr::null_mut()) };
            let i = g.nbatches;
            g.batches[i] = (head, give);
            g.nbatches += 1;
        } else {
            // SAFETY: the run head..=last is ours; splice it in front.
            unsafe { set_next(last, g.free) };
            g.free = head;
        }
    }

    unsafe fn free_large(&self, p: NonNull<u8>, layout: Layout) {
        let len = round_up(layout.size().max(1), crate::sys::page_size());
        // SAFETY: per the contract, the whole mapping made for this layout.
        unsafe { os::unmap(p, len) };
        self.large_bytes.fetch_sub(len, Ordering::Relaxed);
        self.large_frees.fetch_add(1, Ordering::Relaxed);
    }

    // ---- caches -----------------------------------------------------

    /// Attach the calling thread to a cache of this heap (adopted or new);
    /// null when it cannot have one.
    fn attach(&self) -> *mut Cache {
        cache::attach(self.uid, || self.acquire_cache())
    }

    fn acquire_cache(&self) -> *mut Cache {
        let local = self.on_home_node();
        let mut next = self.caches.load(Ordering::Acquire);
        while let Some(c) = NonNull::new(next) {
            // SAFETY: registered caches stay mapped while the heap lives.
            let cache = unsafe { c.as_ref() };
            if cache
                .state
                .compare_exchange(
                    ALIVE,
                    ALIVE | ATTACHED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                cache.local.set(local);
                cache.recheck.set(RECHECK_EVERY);
                return c.as_ptr();
            }
            next = cache.next;
        }
        let page = crate::sys::page_size();
        let len = round_up(std::mem::size_of::<Cache>(), page);
        let Ok(p) = self.mapper.map(len, page) else {
            return ptr::null_mut();
        };
        let p = p.cast::<Cache>().as_ptr();
        let cache = Cache::new(len, local);
        cache.recheck.set(RECHECK_EVERY);
        // SAFETY: fresh, page-aligned, large enough, unpublished.
        unsafe { p.write(cache) };
        self.meta_bytes.fetch_add(len, Ordering::Relaxed);
        let mut head = self.caches.load(Ordering::Acquire);
        loop {
            // SAFETY: unpublished: only we see it.
            unsafe { (*p).next = head };
            match self
                .caches
                .compare_exchange_weak(head, p, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return p,
                Err(now) => head = now,
            }
        }
    }

    // ---- figures ----------------------------------------------------

    pub(crate) fn figures(&self) -> Figures {
        let mut classes = [ClassFigures::default(); NUM_CLASSES];
        for (f, central) in classes.iter_mut().zip(&self.classes) {
            f.blocks = central.blocks.load(Ordering::Relaxed);
            f.allocs = central.allocs.load(Ordering::Relaxed);
            f.frees = central.frees.load(Ordering::Relaxed);
        }
        let mut caches = 0;
        let mut next = self.caches.load(Ordering::Acquire);
        while let Some(c) = NonNull::new(next) {
            // SAFETY: registered caches stay mapped while the heap lives;
            // only their atomic counters are read.
            let cache = unsafe { c.as_ref() };
            for (f, cc) in classes.iter_mut().zip(&cache.classes) {
                f.allocs = f.allocs.wrapping_add(cc.allocs.load(Ordering::Relaxed));
                f.frees = f.frees.wrapping_add(cc.frees.load(Ordering::Relaxed));
                f.remote_frees = f
                    .remote_frees
                    .wrapping_add(cc.remote_frees.load(Ordering::Relaxed));
            }
            caches += 1;
            next = cache.next;
        }
        Figures {
            classes,
            large_bytes: self.large_bytes.load(Ordering::Relaxed),
            large_allocs: self.large_allocs.load(Ordering::Relaxed),
            large_frees: self.large_frees.load(Ordering::Relaxed),
            segment_bytes: self.segment_bytes.load(Ordering::Relaxed),
            released_bytes: self.released_bytes.load(Ordering::Relaxed),
            meta_bytes: self.meta_bytes.load(Ordering::Relaxed),
            caches,
        }
    }

    /// The address ranges of the heap's segments and metadata (not the
    /// large mappings, which are not tracked).
    pub(crate) fn ranges(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(self as *const HeapCore as usize, self.map_len)];
        let mut next = self.caches.load(Ordering::Acquire);
        while let Some(c) = NonNull::new(next) {
            // SAFETY: as in figures.
            let cache = unsafe { c.as_ref() };
            out.push((c.as_ptr() as usize, cache.map_len));
            next = cache.next;
        }
        // Segments are never unmapped while the heap lives. Only their
        // populated parts count: the header and the carved chunks, less
        // those `trim` released. Count under the lock, allocate without it
        // (for a global heap the allocation may need the lock), then fill
        // under it again, as long as nothing moved.
        loop {
            let count = |s: &Segments| {
                let mut n = 0;
                let mut seg = s.list;
                while let Some(base) = NonNull::new(seg) {
                    // SAFETY: a segment of this heap; the lock is held.
                    let h = unsafe { header(base) };
                    // At most the header's run and one per chunk.
                    n += 1 + h.chunks;
                    seg = h.next;
                }
                n
            };
            let want = count(&lock(&self.segs));
            let mut segs_out = Vec::with_capacity(want);
            let s = lock(&self.segs);
            if count(&s) != want {
                continue;
            }
            let mut seg = s.list;
            while let Some(base) = NonNull::new(seg) {
                // SAFETY: as above.
                let h = unsafe { header(base) };
                let b = base.as_ptr() as usize;
                // The header, then every chunk still populated (carved,
                // not released), merging neighbours.
                let mut run = (b, SEG_HEADER);
                for chunk in h.recs[..h.chunks].iter().map(|&r| Chunk(r)) {
                    if chunk.released() {
                        continue;
                    }
                    let start = b + chunk.offset();
                    if run.0 + run.1 == start {
                        run.1 += chunk.len();
                    } else {
                        segs_out.push(run);
                        run = (start, chunk.len());
                    }
                }
                segs_out.push(run);
                seg = h.next;
            }
            drop(s);
            out.extend(segs_out.into_iter().filter(|&(_, len)| len > 0));
            break;
        }
        out
    }
}

/// A small block of class `c` leaves the heap: addressable for ASan.
#[inline(always)]
fn handed_out(p: NonNull<u8>, c: usize) {
    asan::unpoison(p.as_ptr(), classes::size_of_class(c));
}

/// Add one to a counter several threads update.
#[inline]
fn bump_shared(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn round_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

fn checked_round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v & !(to - 1))
}
