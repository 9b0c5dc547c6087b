//! Allocation workloads shared by the `arena`, `heap` and `compare` benches,
//! so that their figures measure the same code.
//!
//! Included with `#[path = "support/alloc.rs"] mod alloc_support;`.

// Each bench target uses a subset of these workloads.
#![allow(dead_code)]

use allocator_api2::alloc::Allocator;
use numakit::mem::{Arena, NodeHeap, NodeLocal, RawSlab};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Objects per pass in the `arena` bench and the arena rows of `compare`:
/// 100 objects keep the working set in L1 (6.4 KB at 64 B).
pub const ARENA_OBJECTS: usize = 100;
/// Objects per pass in the `heap` bench and the heap rows of `compare`.
pub const HEAP_OBJECTS: usize = 1000;

/// `n` values of `[u8; S]` into `arena` (the caller resets it or drops it).
#[inline]
pub fn fill_arena<const S: usize>(arena: &Arena, n: usize) {
    for i in 0..n {
        black_box(arena.alloc([i as u8; S]));
    }
}

/// `n` values of `[u8; S]` into `bump` (the caller resets it or drops it).
#[inline]
pub fn fill_bump<const S: usize>(bump: &bumpalo::Bump, n: usize) {
    for i in 0..n {
        black_box(bump.alloc([i as u8; S]));
    }
}

/// `n` times: a `[u8; S]` boxed by the system allocator, then dropped.
#[inline]
pub fn box_churn<const S: usize>(n: usize) {
    for i in 0..n {
        drop(black_box(Box::new([i as u8; S])));
    }
}

/// Typed allocate-then-free: `n` values of `[u8; S]` moved into owners made
/// by `make` (a `SlabBox`, a `Box`, a `HeapBox`), kept in `owners`, then
/// all dropped at once.
#[inline]
pub fn typed_pass<const S: usize, B>(
    owners: &mut Vec<B>,
    n: usize,
    mut make: impl FnMut([u8; S]) -> B,
) {
    for i in 0..n {
        owners.push(make([i as u8; S]));
    }
    black_box(&*owners);
    owners.clear();
}

/// A source of raw blocks: a `RawSlab`, a `NodeHeap` with a layout, or the
/// system allocator with a layout. The constructors refuse zero-sized
/// blocks, so that every block has a byte to write.
///
/// # Safety
/// `alloc` returns blocks of at least one writable byte, and `free` is sound
/// to call once with each block `alloc` returned (from any thread, where the
/// source is `Sync`).
pub unsafe trait Blocks {
    /// A block.
    ///
    /// # Panics
    /// When the source is out of memory (or a slab out of capacity).
    fn alloc(&self) -> NonNull<u8>;

    /// Gives a block back.
    ///
    /// # Safety
    /// `p` came from `alloc` on this source and is not used again.
    unsafe fn free(&self, p: NonNull<u8>);
}

/// The blocks of a `RawSlab`.
pub struct SlabBlocks<'s>(&'s RawSlab);

impl<'s> SlabBlocks<'s> {
    /// # Panics
    /// If the slab's objects have size zero.
    pub fn new(slab: &'s RawSlab) -> Self {
        assert!(slab.object_size() > 0, "zero-sized blocks");
        SlabBlocks(slab)
    }
}

// SAFETY: the objects have a non-zero size (checked in `new`); blocks go
// back to the slab they came from.
unsafe impl Blocks for SlabBlocks<'_> {
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        self.0.alloc().expect("slab capacity")
    }
    #[inline]
    unsafe fn free(&self, p: NonNull<u8>) {
        // SAFETY: `p` came from this slab (the caller's promise).
        unsafe { self.0.free(p) }.expect("own pointer");
    }
}

/// Blocks of one layout from a `NodeHeap`, through its `Allocator` impl.
pub struct HeapBlocks<'h> {
    heap: &'h NodeHeap,
    layout: Layout,
}

impl<'h> HeapBlocks<'h> {
    /// # Panics
    /// If `layout` has size zero.
    pub fn new(heap: &'h NodeHeap, layout: Layout) -> Self {
        assert!(layout.size() > 0, "zero-sized blocks");
        HeapBlocks { heap, layout }
    }
}

// SAFETY: the layout has a non-zero size (checked in `new`); blocks go back
// to the heap they came from with their layout, and the heap takes frees
// from any thread.
unsafe impl Blocks for HeapBlocks<'_> {
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        self.heap
            .allocate(self.layout)
            .expect("node 0 memory")
            .cast()
    }
    #[inline]
    unsafe fn free(&self, p: NonNull<u8>) {
        // SAFETY: `p` came from this heap with this layout (the caller's
        // promise).
        unsafe { self.heap.deallocate(p, self.layout) }
    }
}

/// Blocks of one layout from the system allocator (glibc malloc).
pub struct Malloc(Layout);

impl Malloc {
    /// # Panics
    /// If `layout` has size zero.
    pub fn new(layout: Layout) -> Self {
        assert!(layout.size() > 0, "zero-sized blocks");
        Malloc(layout)
    }
}

// SAFETY: the layout has a non-zero size (checked in `new`); malloc takes
// frees of its blocks from any thread.
unsafe impl Blocks for Malloc {
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { System.alloc(self.0) }).expect("malloc")
    }
    #[inline]
    unsafe fn free(&self, p: NonNull<u8>) {
        // SAFETY: `p` came from `alloc` with this layout (the caller's
        // promise).
        unsafe { System.dealloc(p.as_ptr(), self.0) }
    }
}

/// The allocator behind [`NodeLocalBlocks`], called through `GlobalAlloc`
/// as a `#[global_allocator]` would be (the bench keeps the system
/// allocator as its own).
static NODE_LOCAL: NodeLocal = NodeLocal::strict();

/// Blocks of one layout from [`NodeLocal`] (the heap of the calling
/// thread's node), through its `GlobalAlloc` impl.
pub struct NodeLocalBlocks(Layout);

impl NodeLocalBlocks {
    /// # Panics
    /// If `layout` has size zero.
    pub fn new(layout: Layout) -> Self {
        assert!(layout.size() > 0, "zero-sized blocks");
        NodeLocalBlocks(layout)
    }
}

// SAFETY: the layout has a non-zero size (checked in `new`); NodeLocal takes
// frees of its blocks from any thread, each going back to its heap.
unsafe impl Blocks for NodeLocalBlocks {
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { NODE_LOCAL.alloc(self.0) }).expect("memory on this node")
    }
    #[inline]
    unsafe fn free(&self, p: NonNull<u8>) {
        // SAFETY: `p` came from `alloc` with this layout (the caller's
        // promise).
        unsafe { NODE_LOCAL.dealloc(p.as_ptr(), self.0) }
    }
}

/// Raw allocate-then-free: `n` blocks from `blocks`, one byte written to
/// each, kept in `ptrs`, then each given back.
#[inline]
pub fn raw_pass(ptrs: &mut Vec<NonNull<u8>>, n: usize, blocks: &impl Blocks) {
    for i in 0..n {
        let p = blocks.alloc();
        // SAFETY: a block has at least one writable byte (`Blocks`).
        unsafe { p.as_ptr().write(i as u8) };
        ptrs.push(p);
    }
    black_box(&*ptrs);
    for p in ptrs.drain(..) {
        // SAFETY: each pointer came from `blocks` just above, freed once.
        unsafe { blocks.free(p) };
    }
}

/// Allocate-and-free-at-once: `n` times, one block from `blocks`, one byte
/// written, the block given back (the pattern of a request handler's
/// scratch buffer).
#[inline]
pub fn pair_pass(n: usize, blocks: &impl Blocks) {
    for i in 0..n {
        let p = blocks.alloc();
        // SAFETY: a block has at least one writable byte (`Blocks`).
        unsafe { p.as_ptr().write(i as u8) };
        black_box(p);
        // SAFETY: `p` came from `blocks` just above, freed once.
        unsafe { blocks.free(p) };
    }
}

/// Blocks one producer/consumer round moves from one thread to the other.
pub const PC_BLOCKS: usize = 100_000;
/// Blocks handed over per channel message.
pub const PC_BATCH: usize = 256;

/// Two CPUs of one node this process may run on, for the two threads of
/// [`producer_consumer_on`]; `None` without a node of two such CPUs.
///
/// Left to the scheduler, the two threads sometimes shared a CPU and
/// sometimes ran side by side, and every allocator's samples fell in two
/// groups (glibc about 17 or 44, mimalloc 35 or 72 M blocks/s at 64 B on
/// 2 cores), so a ratio said which group each median landed in.
pub fn pc_cpus() -> Option<[numakit::CpuId; 2]> {
    static CPUS: std::sync::OnceLock<Option<[numakit::CpuId; 2]>> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        let topo = numakit::Topology::current().ok()?;
        topo.nodes().iter().find_map(|n| {
            let cpus = n.allowed_cpus().ok()?;
            let mut it = cpus.iter();
            Some([it.next()?, it.next()?])
        })
    })
}

/// Pin the calling thread to `cpu` with the bare system call, so that no
/// allocator under test learns of it (numakit's pinning would tell
/// `NodeLocal` the thread's node).
///
/// # Panics
/// If the process may not run on `cpu`: callers take their CPUs from
/// `numakit::sched::allowed_cpus`.
pub fn pin_quietly(cpu: numakit::CpuId) {
    let mut set = numakit::CpuSet::new();
    set.insert(cpu);
    numakit::sys::sched::sched_setaffinity(0, &set.to_mask()).expect("an allowed CPU");
}

/// One thread allocates `rounds * PC_BLOCKS` blocks and hands them to a
/// second thread, which frees them; returns the wall time of both. The
/// scheduler places the two threads.
pub fn producer_consumer(rounds: u64, blocks: &(impl Blocks + Sync)) -> Duration {
    producer_consumer_on(rounds, blocks, None)
}

/// [`producer_consumer`] with the producer pinned to `cpus[0]` and the
/// consumer to `cpus[1]` (the same CPU twice: they take turns on it), or
/// placed by the scheduler with `None`.
pub fn producer_consumer_on(
    rounds: u64,
    blocks: &(impl Blocks + Sync),
    cpus: Option<[numakit::CpuId; 2]>,
) -> Duration {
    let total = rounds as usize * PC_BLOCKS;
    let (tx, rx) = crossbeam_channel::bounded::<Vec<usize>>(8);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<Vec<usize>>(16);
    for _ in 0..12 {
        back_tx.send(Vec::with_capacity(PC_BATCH)).unwrap();
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some([cpu, _]) = cpus {
                pin_quietly(cpu);
            }
            let mut left = total;
            while left > 0 {
                let mut batch = back_rx.recv().unwrap();
                let n = left.min(PC_BATCH);
                for _ in 0..n {
                    let p = blocks.alloc();
                    // SAFETY: a block has at least one writable byte (`Blocks`).
                    unsafe { p.as_ptr().write(1) };
                    batch.push(p.as_ptr() as usize);
                }
                left -= n;
                tx.send(batch).unwrap();
            }
        });
        s.spawn(move || {
            if let Some([_, cpu]) = cpus {
                pin_quietly(cpu);
            }
            let mut freed = 0;
            while freed < total {
                let mut batch = rx.recv().unwrap();
                for &p in &batch {
                    // SAFETY: each address came from `blocks.alloc()` in the
                    // producer and is sent here once; `blocks` is `Sync`.
                    unsafe { blocks.free(NonNull::new(p as *mut u8).unwrap()) };
                }
                freed += batch.len();
                batch.clear();
                let _ = back_tx.send(batch);
            }
        });
    });
    start.elapsed()
}

/// Bytes of the region rows of `compare`: one page.
pub const REGION_BYTES: usize = 4096;

/// One node-0 arena of [`REGION_BYTES`], mapped, bound, populated and
/// dropped: the whole cost of making a small node-bound region.
#[inline]
pub fn arena_region() {
    let arena = Arena::new(0, REGION_BYTES).expect("an arena on node 0");
    black_box(&arena);
}

/// `PROT_READ | PROT_WRITE` (Linux values; the benches do not link `libc`).
const PROT_RW: i32 = 0x1 | 0x2;

/// The system calls under [`arena_region`] and nothing else: `mmap`,
/// `mbind(MPOL_BIND)` to node 0, `madvise(MADV_POPULATE_WRITE)`, `munmap`.
#[inline]
pub fn raw_region() {
    use numakit::sys::mem as m;
    let base = m::mmap_anonymous(REGION_BYTES, PROT_RW, 0).expect("mmap");
    m::mbind(
        base,
        REGION_BYTES,
        m::MPOL_BIND,
        &m::node_mask(0),
        m::MPOL_MF_STRICT,
    )
    .expect("mbind to node 0");
    // SAFETY: `base` is the fresh mapping made above; populating changes
    // no contents and nothing else refers to it.
    unsafe { m::madvise(base, REGION_BYTES, m::MADV_POPULATE_WRITE) }.expect("populate");
    black_box(base);
    // SAFETY: the mapping is ours and nothing refers to it any more.
    unsafe { m::munmap(base, REGION_BYTES) }.expect("munmap");
}
