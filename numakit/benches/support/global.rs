//! Allocator workloads of the `compare` report's `galloc` rows: numakit's
//! `NodeLocal`, the system allocator, mimalloc and jemalloc, each called
//! directly as a `GlobalAlloc` value (the bench process keeps the system
//! allocator as its own `#[global_allocator]`), on workloads after the
//! allocator-benchmark literature (mixed-size churn, larson, xmalloc,
//! alloc-and-touch).
//!
//! Included with `#[path = "support/global.rs"] mod global_support;`.

use crate::alloc_support::{pc_cpus, producer_consumer_on, Blocks};
use numakit::mem::NodeLocal;
use numakit::CpuId;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Alignment of every block of these workloads (what `malloc` gives).
const ALIGN: usize = 16;

/// The allocators under test, each a `GlobalAlloc` value.
pub static NODE_LOCAL: NodeLocal = NodeLocal::strict();
pub static SYSTEM: System = System;
pub static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// An allocator of the comparison, by reference, with its report name.
pub type Alloc = &'static (dyn GlobalAlloc + Sync);

/// The contenders: name and allocator, numakit first.
pub fn contenders() -> [(&'static str, Alloc); 4] {
    [
        ("numakit NodeLocal", &NODE_LOCAL),
        ("system (glibc)", &SYSTEM),
        ("mimalloc", &MIMALLOC),
        ("jemalloc", &JEMALLOC),
    ]
}

/// xorshift64: the size and slot picks (the same sequence for every
/// allocator).
#[derive(Clone, Copy)]
struct Rng(u64);

impl Rng {
    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// In `lo..=hi`.
    #[inline]
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// A live block: address and size (0 = empty slot).
#[derive(Clone, Copy)]
struct Block {
    p: usize,
    size: usize,
}

const EMPTY: Block = Block { p: 0, size: 0 };

/// `size` bytes from `a`, its first byte written.
///
/// # Panics
/// When the allocator returns null.
#[inline]
fn take(a: Alloc, size: usize) -> Block {
    let layout = Layout::from_size_align(size, ALIGN).expect("block layout");
    // SAFETY: `size` is at least 8 (every workload's smallest).
    let p = NonNull::new(unsafe { a.alloc(layout) }).expect("allocator returned null");
    // SAFETY: the block has `size` >= 1 writable bytes.
    unsafe { p.as_ptr().write(size as u8) };
    Block {
        p: p.as_ptr() as usize,
        size,
    }
}

/// Gives `b` back to `a` (nothing for an empty slot).
///
/// # Safety
/// `b` came from [`take`] on `a` (from any thread) and is not used again.
#[inline]
unsafe fn give(a: Alloc, b: Block) {
    if b.size != 0 {
        let layout = Layout::from_size_align(b.size, ALIGN).expect("block layout");
        // SAFETY: `b` came from `a.alloc` with this layout (the caller's
        // promise).
        unsafe { a.dealloc(b.p as *mut u8, layout) };
    }
}

/// Blocks live in the mixed-size workloads.
pub const LIVE: usize = 1000;
/// Operations (one free and one allocation) per pass of a mixed workload.
pub const MIXED_OPS: usize = 10_000;

/// Single-thread mixed sizes: `LIVE` slots; each operation frees a random
/// slot's block and puts a new one of a random size in `min..=max` there.
/// Returns the time of `passes * MIXED_OPS` operations (the slots start
/// full and are emptied after the clock stops).
pub fn mixed(a: Alloc, passes: u64, min: usize, max: usize) -> Duration {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut slots = vec![EMPTY; LIVE];
    for s in slots.iter_mut() {
        *s = take(a, rng.between(min, max));
    }
    let start = Instant::now();
    for _ in 0..passes {
        for _ in 0..MIXED_OPS {
            let i = rng.next() as usize % LIVE;
            // SAFETY: the slot's block came from `take(a, ..)`; it is
            // replaced at once.
            unsafe { give(a, slots[i]) };
            slots[i] = take(a, rng.between(min, max));
        }
    }
    let t = start.elapsed();
    black_box(&slots);
    for s in slots {
        // SAFETY: every slot holds a block from `take(a, ..)`, freed once.
        unsafe { give(a, s) };
    }
    t
}

/// Slots per thread in the larson workload.
pub const LARSON_SLOTS: usize = 1000;
/// Operations per thread per round of the larson workload.
pub const LARSON_OPS: usize = 10_000;

/// Larson-style (a server's threads free what other threads allocated):
/// each of `threads` threads owns `LARSON_SLOTS` slots of 16–256 B blocks
/// and replaces random ones, `LARSON_OPS` per round; after each round the
/// slot sets move on to the next thread, whose frees then hit blocks
/// another thread allocated. With one thread it is a single thread's
/// churn. Returns the wall time of `rounds` rounds (the threads' start
/// and the final frees outside it).
pub fn larson(a: Alloc, threads: usize, rounds: u64) -> Duration {
    let sets: Vec<std::sync::Mutex<Vec<Block>>> = (0..threads)
        .map(|t| {
            let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (t as u64 + 1));
            std::sync::Mutex::new(
                (0..LARSON_SLOTS)
                    .map(|_| take(a, rng.between(16, 256)))
                    .collect(),
            )
        })
        .collect();
    let barrier = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        for t in 0..threads {
            let (sets, barrier) = (&sets, &barrier);
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                barrier.wait();
                for r in 0..rounds as usize {
                    {
                        let mut set = sets[(t + r) % threads].lock().unwrap();
                        for _ in 0..LARSON_OPS {
                            let i = rng.next() as usize % LARSON_SLOTS;
                            // SAFETY: the slot's block came from `take(a, ..)`
                            // (on this or another thread); it is replaced at
                            // once, under the set's lock.
                            unsafe { give(a, set[i]) };
                            set[i] = take(a, rng.between(16, 256));
                        }
                    }
                    barrier.wait();
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        for _ in 0..rounds {
            barrier.wait();
        }
        start.elapsed()
    });
    for set in sets {
        for b in set.into_inner().unwrap() {
            // SAFETY: every slot holds a block from `take(a, ..)`, freed once.
            unsafe { give(a, b) };
        }
    }
    elapsed
}

/// `size`-byte blocks of one allocator, as the heap rows' workloads take
/// them.
struct SizedBlocks {
    a: Alloc,
    size: usize,
}

// SAFETY: `take` returns blocks of `size >= 1` writable bytes, and `give`
// frees a block of `take(a, size)` once, from any thread (every contender
// is a thread-safe `GlobalAlloc`).
unsafe impl Blocks for SizedBlocks {
    fn alloc(&self) -> NonNull<u8> {
        NonNull::new(take(self.a, self.size).p as *mut u8).expect("non-null block")
    }

    unsafe fn free(&self, p: NonNull<u8>) {
        let b = Block {
            p: p.as_ptr() as usize,
            size: self.size,
        };
        // SAFETY: `p` came from `alloc`, i.e. `take(a, size)` (the caller's
        // promise).
        unsafe { give(self.a, b) };
    }
}

/// xmalloc-style producer/consumer: one thread allocates `size`-byte
/// blocks and hands them over in batches to a second thread, which frees
/// them (the heap rows' producer/consumer, through a `GlobalAlloc`), the
/// two pinned to `cpus` (see [`producer_consumer_on`]). Returns the wall
/// time of `rounds * PC_BLOCKS` blocks.
pub fn xmalloc(a: Alloc, rounds: u64, size: usize, cpus: Option<[CpuId; 2]>) -> Duration {
    producer_consumer_on(rounds, &SizedBlocks { a, size }, cpus)
}

/// The xmalloc threads taking turns on one CPU (the first of
/// [`pc_cpus`]; placed by the scheduler where that is `None`).
fn one_cpu() -> Option<[CpuId; 2]> {
    pc_cpus().map(|[c, _]| [c, c])
}

/// Allocations per pass of the alloc-and-touch workload.
pub const TOUCH_OPS: usize = 1000;
/// Blocks live in the alloc-and-touch workload.
const TOUCH_LIVE: usize = 16;

/// Alloc-and-touch (where placement matters): blocks of `size` bytes,
/// each written whole after allocation, `TOUCH_LIVE` live at a time
/// (the oldest freed first). Returns the time of `passes * TOUCH_OPS`
/// allocations.
pub fn touch(a: Alloc, passes: u64, size: usize) -> Duration {
    let mut ring = [EMPTY; TOUCH_LIVE];
    let start = Instant::now();
    for _ in 0..passes {
        for i in 0..TOUCH_OPS {
            let slot = i % TOUCH_LIVE;
            // SAFETY: the slot's block came from `take(a, size)` (or is
            // empty); it is replaced at once.
            unsafe { give(a, ring[slot]) };
            let b = take(a, size);
            // SAFETY: the block has `size` writable bytes.
            unsafe { std::ptr::write_bytes(b.p as *mut u8, i as u8, size) };
            ring[slot] = b;
        }
    }
    let t = start.elapsed();
    black_box(&ring);
    for b in ring {
        // SAFETY: each block came from `take(a, size)`, freed once.
        unsafe { give(a, b) };
    }
    t
}

/// The alloc-and-touch workload's writes alone: `TOUCH_LIVE` blocks of
/// `size` bytes taken from `a` once (and written once, so resident), then
/// written whole in turn as `touch` writes them, with no allocation: the
/// bound no allocator can beat on that workload with `a`'s memory.
/// Returns the time of `passes * TOUCH_OPS` writes.
pub fn touch_writes_only(a: Alloc, passes: u64, size: usize) -> Duration {
    let ring: Vec<Block> = (0..TOUCH_LIVE).map(|_| take(a, size)).collect();
    for b in &ring {
        // SAFETY: the block has `size` writable bytes.
        unsafe { std::ptr::write_bytes(b.p as *mut u8, 1, size) };
    }
    let start = Instant::now();
    for _ in 0..passes {
        for i in 0..TOUCH_OPS {
            let b = ring[i % TOUCH_LIVE];
            // SAFETY: the block has `size` writable bytes.
            unsafe { std::ptr::write_bytes(b.p as *mut u8, i as u8, size) };
        }
    }
    let t = start.elapsed();
    black_box(&ring);
    for b in ring {
        // SAFETY: each block came from `take(a, size)`, freed once.
        unsafe { give(a, b) };
    }
    t
}

/// One workload of the `galloc` rows.
pub struct Workload {
    /// The row's label.
    pub label: &'static str,
    /// Threads it runs on.
    pub threads: usize,
    /// Operations per iteration of `run`.
    pub ops: u64,
    /// `run(allocator, iterations)`: the time of `iterations * ops`
    /// operations.
    pub run: fn(Alloc, u64) -> Duration,
}

/// The `galloc` rows, in report order.
pub fn workloads() -> Vec<Workload> {
    let w = |label, threads, ops: usize, run| Workload {
        label,
        threads,
        ops: ops as u64,
        run,
    };
    vec![
        w("mixed 8 B–1 KiB, 1000 live", 1, MIXED_OPS, |a, n| {
            mixed(a, n, 8, 1024)
        }),
        w("mixed 8 B–64 KiB, 1000 live", 1, MIXED_OPS, |a, n| {
            mixed(a, n, 8, 64 << 10)
        }),
        w("mixed 8 B–256 KiB, 1000 live", 1, MIXED_OPS, |a, n| {
            mixed(a, n, 8, 256 << 10)
        }),
        w("larson 16–256 B", 1, LARSON_OPS, |a, n| larson(a, 1, n)),
        w("larson 16–256 B", 2, 2 * LARSON_OPS, |a, n| {
            larson(a, 2, n)
        }),
        w("larson 16–256 B", 4, 4 * LARSON_OPS, |a, n| {
            larson(a, 4, n)
        }),
        w(
            "xmalloc producer/consumer 64 B, 2 CPUs",
            2,
            crate::alloc_support::PC_BLOCKS,
            |a, n| xmalloc(a, n, 64, pc_cpus()),
        ),
        w(
            "xmalloc producer/consumer 64 B, 1 CPU",
            2,
            crate::alloc_support::PC_BLOCKS,
            |a, n| xmalloc(a, n, 64, one_cpu()),
        ),
        w("alloc+touch 4 KiB", 1, TOUCH_OPS, |a, n| {
            touch(a, n, 4 << 10)
        }),
        w("alloc+touch 256 KiB", 1, TOUCH_OPS, |a, n| {
            touch(a, n, 256 << 10)
        }),
    ]
}

/// The variable that makes the bench binary a peak-memory child:
/// `<workload index>:<contender index>`.
const PEAK_CHILD: &str = "NUMAKIT_GALLOC_PEAK_CHILD";
/// Iterations a peak-memory child runs its workload.
const PEAK_ITERATIONS: u64 = 5;

/// `VmRSS` and `VmHWM` of this process, in KiB, from `/proc/self/status`.
fn resident_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// In a peak-memory child (see [`peak_resident`]): run the workload named
/// by the variable with its allocator, print the growth of the peak
/// resident memory over the resident memory at the start (KiB), and
/// return `true`; elsewhere return `false` at once.
pub fn peak_child() -> bool {
    let Ok(what) = std::env::var(PEAK_CHILD) else {
        return false;
    };
    let parsed = what
        .split_once(':')
        .and_then(|(w, c)| Some((w.parse::<usize>().ok()?, c.parse::<usize>().ok()?)));
    let (w, c) = parsed.expect("NUMAKIT_GALLOC_PEAK_CHILD is <workload>:<contender>");
    let (start, _) = resident_kib().expect("/proc/self/status");
    let (_, a) = contenders()[c];
    black_box((workloads()[w].run)(a, PEAK_ITERATIONS));
    let (_, peak) = resident_kib().expect("/proc/self/status");
    println!("{}", peak.saturating_sub(start));
    true
}

/// Peak resident memory (KiB above the process's start) of workload `w`
/// run with contender `c` in a child process of its own (this binary
/// again, see [`peak_child`]), so that no other allocator's memory counts.
pub fn peak_resident(w: usize, c: usize) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .env(PEAK_CHILD, format!("{w}:{c}"))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}
