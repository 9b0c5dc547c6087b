//! Small-object allocation: numakit `Slab` and `NodeHeap` against the
//! system allocator (glibc malloc) and `bumpalo`, side by side in one run.
//!
//! `cargo bench -p numakit --bench heap -- --warm-up-time 1 --measurement-time 3`
//!
//! - `alloc_free/{16,64,256,1024}B`: one thread allocates 1000 objects,
//!   then frees them all (per-object figures: criterion's throughput line).
//!   `typed/`: a `[u8; S]` value moved in and dropped (`Slab` vs `Box` vs
//!   `HeapBox`; bumpalo cannot free one object: it allocates 1000 and
//!   resets). `raw/`: pointers, one byte written per block (`RawSlab` vs
//!   `NodeHeap` through `Allocator` vs `malloc`).
//! - `producer_consumer/{64,1024}B`: one thread allocates, another frees
//!   (blocks handed over in batches of 256 through a channel), 100 000
//!   blocks per iteration. Slab and bumpalo are single-threaded: not in it.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use allocator_api2::alloc::Allocator;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use numakit::mem::{NodeHeap, Slab, SlabBuilder};
use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

const N: usize = 1000;

fn alloc_free(c: &mut Criterion) {
    size::<16>(c);
    size::<64>(c);
    size::<256>(c);
    size::<1024>(c);
}

fn size<const S: usize>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("alloc_free/{S}B"));
    g.throughput(Throughput::Elements(N as u64));
    let layout = Layout::new::<[u8; S]>();
    let mut ptrs: Vec<NonNull<u8>> = Vec::with_capacity(N);

    // Typed: move a `[u8; S]` in, drop it (numakit_slab vs a Box from the
    // system allocator vs a HeapBox).
    let slab: Slab<[u8; S]> = SlabBuilder::new(0)
        .capacity(N)
        .build()
        .expect("slab on node 0");
    g.bench_function("typed/numakit_slab", |b| {
        let mut boxes = Vec::with_capacity(N);
        b.iter(|| {
            for i in 0..N {
                boxes.push(slab.alloc([i as u8; S]));
            }
            black_box(&boxes);
            boxes.clear();
        })
    });
    g.bench_function("typed/system_box", |b| {
        let mut boxes = Vec::with_capacity(N);
        b.iter(|| {
            for i in 0..N {
                boxes.push(Box::new([i as u8; S]));
            }
            black_box(&boxes);
            boxes.clear();
        })
    });
    let heap = NodeHeap::new(0).expect("heap on node 0");
    g.bench_function("typed/numakit_heap_box", |b| {
        let mut boxes = Vec::with_capacity(N);
        b.iter(|| {
            for i in 0..N {
                boxes.push(heap.alloc_box([i as u8; S]));
            }
            black_box(&boxes);
            boxes.clear();
        })
    });

    // Raw: a pointer in, one byte written, the pointer back.
    let raw = SlabBuilder::new(0)
        .capacity(N)
        .build_raw(S, 8)
        .expect("raw slab on node 0");
    g.bench_function("raw/numakit_slab", |b| {
        b.iter(|| {
            for i in 0..N {
                let p = raw.alloc().expect("capacity N");
                // SAFETY: S >= 1 writable bytes.
                unsafe { p.as_ptr().write(i as u8) };
                ptrs.push(p);
            }
            black_box(&ptrs);
            for p in ptrs.drain(..) {
                // SAFETY: from this slab, freed once.
                unsafe { raw.free(p) }.expect("own pointer");
            }
        })
    });
    g.bench_function("raw/numakit_node_heap", |b| {
        b.iter(|| {
            for i in 0..N {
                let p = heap.allocate(layout).expect("node 0 memory").cast::<u8>();
                // SAFETY: S >= 1 writable bytes.
                unsafe { p.as_ptr().write(i as u8) };
                ptrs.push(p);
            }
            black_box(&ptrs);
            for p in ptrs.drain(..) {
                // SAFETY: allocated just above with `layout`.
                unsafe { heap.deallocate(p, layout) };
            }
        })
    });
    g.bench_function("raw/system_malloc", |b| {
        b.iter(|| {
            for i in 0..N {
                // SAFETY: a non-zero layout.
                let p = NonNull::new(unsafe { System.alloc(layout) }).expect("malloc");
                // SAFETY: S >= 1 writable bytes.
                unsafe { p.as_ptr().write(i as u8) };
                ptrs.push(p);
            }
            black_box(&ptrs);
            for p in ptrs.drain(..) {
                // SAFETY: allocated just above with `layout`.
                unsafe { System.dealloc(p.as_ptr(), layout) };
            }
        })
    });

    let mut bump = bumpalo::Bump::with_capacity(N * S * 2);
    g.bench_function("typed/bumpalo_alloc_then_reset", |b| {
        b.iter(|| {
            for i in 0..N {
                black_box(bump.alloc([i as u8; S]));
            }
            bump.reset();
        })
    });
    g.finish();
}

const PC_BLOCKS: usize = 100_000;
const PC_BATCH: usize = 256;

/// One thread allocates `iters * PC_BLOCKS` blocks and hands them to a
/// second thread, which frees them; returns the wall time of both.
fn producer_consumer<A, F>(iters: u64, alloc: A, free: F) -> Duration
where
    A: Fn() -> NonNull<u8> + Send + Sync,
    F: Fn(NonNull<u8>) + Send + Sync,
{
    let total = iters as usize * PC_BLOCKS;
    let (tx, rx) = crossbeam_channel::bounded::<Vec<usize>>(8);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<Vec<usize>>(16);
    for _ in 0..12 {
        back_tx.send(Vec::with_capacity(PC_BATCH)).unwrap();
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        let (alloc, free) = (&alloc, &free);
        s.spawn(move || {
            let mut left = total;
            while left > 0 {
                let mut batch = back_rx.recv().unwrap();
                let n = left.min(PC_BATCH);
                for _ in 0..n {
                    let p = alloc();
                    // SAFETY: at least one writable byte.
                    unsafe { p.as_ptr().write(1) };
                    batch.push(p.as_ptr() as usize);
                }
                left -= n;
                tx.send(batch).unwrap();
            }
        });
        s.spawn(move || {
            let mut freed = 0;
            while freed < total {
                let mut batch = rx.recv().unwrap();
                for &p in &batch {
                    free(NonNull::new(p as *mut u8).unwrap());
                }
                freed += batch.len();
                batch.clear();
                let _ = back_tx.send(batch);
            }
        });
    });
    start.elapsed()
}

fn cross_thread(c: &mut Criterion) {
    for size in [64usize, 1024] {
        let mut g = c.benchmark_group(format!("producer_consumer/{size}B"));
        g.throughput(Throughput::Elements(PC_BLOCKS as u64));
        let layout = Layout::from_size_align(size, 8).unwrap();
        let heap = NodeHeap::new(0).expect("heap on node 0");
        g.bench_function("numakit_node_heap", |b| {
            b.iter_custom(|iters| {
                producer_consumer(
                    iters,
                    || heap.allocate(layout).expect("node 0 memory").cast(),
                    // SAFETY: every block came from `heap` with `layout`.
                    |p| unsafe { heap.deallocate(p, layout) },
                )
            })
        });
        g.bench_function("system_malloc", |b| {
            b.iter_custom(|iters| {
                producer_consumer(
                    iters,
                    // SAFETY: a non-zero layout.
                    || NonNull::new(unsafe { System.alloc(layout) }).expect("malloc"),
                    // SAFETY: every block came from malloc with `layout`.
                    |p| unsafe { System.dealloc(p.as_ptr(), layout) },
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, alloc_free, cross_thread);
criterion_main!(benches);
