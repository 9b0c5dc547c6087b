//! Small allocations: numakit `Arena` vs `bumpalo::Bump` vs `Box` (the
//! system allocator), side by side in one run.
//!
//! `cargo bench -p numakit --bench arena`
//!
//! Each iteration allocates 100 objects (per-object figures: divide by
//! 100, or read criterion's throughput line) and then resets the arena.
//! 100 objects keep the working set in L1 (6.4 KB at 64 B), so the figures
//! compare what the allocators do, not write-allocate misses: with 1000
//! objects per iteration (64 KB at 64 B) every arena pays L2 misses on fresh
//! lines while `Box` reuses one hot block, and the 64 B ratio to `Box`
//! measured 3.6x instead.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use numakit::mem::Arena;

const N: usize = 100;

fn small_allocations(c: &mut Criterion) {
    bench_size::<8>(c);
    bench_size::<64>(c);
    bench_size::<256>(c);
}

fn bench_size<const S: usize>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("alloc/{S}B"));
    g.throughput(Throughput::Elements(N as u64));
    let mut arena = Arena::new(0, 4 << 20).expect("arena on node 0");
    g.bench_function("numakit_arena", |b| {
        b.iter(|| {
            for i in 0..N {
                black_box(arena.alloc([i as u8; S]));
            }
            arena.reset();
        })
    });
    let mut bump = bumpalo::Bump::with_capacity(4 << 20);
    g.bench_function("bumpalo", |b| {
        b.iter(|| {
            for i in 0..N {
                black_box(bump.alloc([i as u8; S]));
            }
            bump.reset();
        })
    });
    g.bench_function("box", |b| {
        b.iter(|| {
            for i in 0..N {
                drop(black_box(Box::new([i as u8; S])));
            }
        })
    });
    // First pass over a freshly built, populated arena (build not timed):
    // no page faults, so it should match the reused arena above.
    g.bench_function("numakit_arena_first_pass", |b| {
        b.iter_batched(
            || Arena::new(0, (S * N).max(4096) + 4096).expect("arena"),
            |arena| {
                for i in 0..N {
                    black_box(arena.alloc([i as u8; S]));
                }
                arena
            },
            BatchSize::PerIteration,
        )
    });
    // First pass over a fresh bumpalo chunk: page faults included.
    g.bench_function("bumpalo_first_pass", |b| {
        b.iter_batched(
            || bumpalo::Bump::with_capacity((S * N).max(4096)),
            |bump| {
                for i in 0..N {
                    black_box(bump.alloc([i as u8; S]));
                }
                bump
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, small_allocations);
criterion_main!(benches);
