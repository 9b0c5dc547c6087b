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
//!
//! The workloads live in `support/alloc.rs`, shared with the `compare`
//! bench (`cargo bench -p numakit --bench compare -- heap`), which reports
//! them as medians of interleaved repeats next to each peer.

#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "support/alloc.rs"]
mod alloc_support;

use alloc_support::{
    fill_bump, producer_consumer, raw_pass, typed_pass, HeapBlocks, Malloc, SlabBlocks,
    HEAP_OBJECTS as N, PC_BLOCKS,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use numakit::mem::{NodeHeap, Slab, SlabBuilder};
use std::alloc::Layout;
use std::ptr::NonNull;

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
        b.iter(|| typed_pass::<S, _>(&mut boxes, N, |v| slab.alloc(v)))
    });
    g.bench_function("typed/system_box", |b| {
        let mut boxes = Vec::with_capacity(N);
        b.iter(|| typed_pass::<S, _>(&mut boxes, N, Box::new))
    });
    let heap = NodeHeap::new(0).expect("heap on node 0");
    g.bench_function("typed/numakit_heap_box", |b| {
        let mut boxes = Vec::with_capacity(N);
        b.iter(|| typed_pass::<S, _>(&mut boxes, N, |v| heap.alloc_box(v)))
    });

    // Raw: a pointer in, one byte written, the pointer back.
    let raw = SlabBuilder::new(0)
        .capacity(N)
        .build_raw(S, 8)
        .expect("raw slab on node 0");
    let slab_blocks = SlabBlocks::new(&raw);
    g.bench_function("raw/numakit_slab", |b| {
        b.iter(|| raw_pass(&mut ptrs, N, &slab_blocks))
    });
    let heap_blocks = HeapBlocks::new(&heap, layout);
    g.bench_function("raw/numakit_node_heap", |b| {
        b.iter(|| raw_pass(&mut ptrs, N, &heap_blocks))
    });
    g.bench_function("raw/system_malloc", |b| {
        let blocks = Malloc::new(layout);
        b.iter(|| raw_pass(&mut ptrs, N, &blocks))
    });

    let mut bump = bumpalo::Bump::with_capacity(N * S * 2);
    g.bench_function("typed/bumpalo_alloc_then_reset", |b| {
        b.iter(|| {
            fill_bump::<S>(&bump, N);
            bump.reset();
        })
    });
    g.finish();
}

fn cross_thread(c: &mut Criterion) {
    for size in [64usize, 1024] {
        let mut g = c.benchmark_group(format!("producer_consumer/{size}B"));
        g.throughput(Throughput::Elements(PC_BLOCKS as u64));
        let layout = Layout::from_size_align(size, 8).unwrap();
        let heap = NodeHeap::new(0).expect("heap on node 0");
        g.bench_function("numakit_node_heap", |b| {
            b.iter_custom(|iters| producer_consumer(iters, &HeapBlocks::new(&heap, layout)))
        });
        g.bench_function("system_malloc", |b| {
            b.iter_custom(|iters| producer_consumer(iters, &Malloc::new(layout)))
        });
        g.finish();
    }
}

criterion_group!(benches, alloc_free, cross_thread);
criterion_main!(benches);
