//! Rings side by side: numakit's SPSC and MPMC rings vs `rtrb` and
//! `crossbeam_queue::ArrayQueue`, moving 200 000 `u64`s per iteration.
//!
//! `cargo bench -p numakit --bench rings`
//!
//! The workloads live in `support/rings.rs`, shared with the `compare`
//! bench (`cargo bench -p numakit --bench compare -- rings`), which reports
//! them as medians of interleaved repeats next to each peer.

#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "support/rings.rs"]
mod rings_support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rings_support::{array_queue, numakit_mpmc, numakit_spsc, rtrb_spsc, ITEMS};

fn rings(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_1p1c");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(10);
    g.bench_function("numakit_single", |b| {
        b.iter_custom(|n| (0..n).map(|_| numakit_spsc(false)).sum())
    });
    g.bench_function("rtrb_single", |b| {
        b.iter_custom(|n| (0..n).map(|_| rtrb_spsc(false)).sum())
    });
    g.bench_function("arrayqueue_single", |b| {
        b.iter_custom(|n| (0..n).map(|_| array_queue(1, 1)).sum())
    });
    g.bench_function("numakit_bulk32", |b| {
        b.iter_custom(|n| (0..n).map(|_| numakit_spsc(true)).sum())
    });
    g.bench_function("rtrb_bulk32", |b| {
        b.iter_custom(|n| (0..n).map(|_| rtrb_spsc(true)).sum())
    });
    g.finish();
    for t in [2u64, 4] {
        let mut g = c.benchmark_group(format!("mpmc_{t}p{t}c"));
        g.throughput(Throughput::Elements(ITEMS));
        g.sample_size(10);
        g.bench_function("numakit", |b| {
            b.iter_custom(|n| (0..n).map(|_| numakit_mpmc(t, t)).sum())
        });
        g.bench_function("arrayqueue", |b| {
            b.iter_custom(|n| (0..n).map(|_| array_queue(t, t)).sum())
        });
        g.finish();
    }
}

criterion_group!(benches, rings);
criterion_main!(benches);
