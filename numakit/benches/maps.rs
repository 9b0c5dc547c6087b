//! Concurrent maps side by side: numakit's `ConcurrentHashMap` vs `dashmap`
//! vs std's `RwLock<HashMap>`, all hashing with std's `RandomState`
//! (SipHash-1-3), `u64` keys and values, at 1, 2 and 4 threads.
//!
//! Mixes (each operation picks its kind and its key at random; keys are
//! uniform over `0..KEYS`, and the map starts with every even key, half the
//! key space, which inserts and removes at equal rates keep it near):
//! - `read_heavy`: 98% get, 1% insert, 1% remove;
//! - `exchange` ("10/40/40/10"): 10% insert, 40% get, 40% update (add 1 to
//!   the value in place if the key is present, under the write lock:
//!   `update` / `get_mut` / `write().get_mut`), 10% remove.
//!
//! A get copies the value out (`*map.get(&k)?`). Threads are started once
//! per benchmark and released together for every measured batch; one
//! criterion iteration is one operation on every thread, so the reported
//! throughput (elements/s) is the total operations per second.
//!
//! `cargo bench -p numakit --bench maps -- --warm-up-time 1 --measurement-time 3`
//!
//! The workloads live in `support/maps.rs`, shared with the `compare`
//! bench (`cargo bench -p numakit --bench compare -- maps`), which reports
//! them as medians of interleaved repeats next to each peer.

#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "support/maps.rs"]
mod maps_support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use maps_support::{dash_map, numakit_map, prefill, std_map, Map, Mix, Pool, THREADS};
use std::sync::Arc;

fn bench_map<M: Map>(c: &mut Criterion, mix: Mix, name: &str, make: impl Fn() -> M) {
    let mut group = c.benchmark_group(format!("maps/{}", mix.name()));
    for threads in THREADS {
        let map = Arc::new(make());
        prefill(&*map);
        let mut pool = Pool::new(Arc::clone(&map), mix, threads);
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new(name, threads), |b| {
            b.iter_custom(|iters| pool.batch(&*map, mix, iters))
        });
    }
    group.finish();
}

fn maps(c: &mut Criterion) {
    for mix in [Mix::ReadHeavy, Mix::Exchange] {
        bench_map(c, mix, "numakit", numakit_map);
        bench_map(c, mix, "dashmap", dash_map);
        bench_map(c, mix, "std_rwlock", std_map);
    }
}

criterion_group!(benches, maps);
criterion_main!(benches);
