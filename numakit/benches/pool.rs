//! Task pool overhead: numakit `NodePool` vs `rayon::spawn`, `rayon::scope`
//! and a `std::thread::scope` pool fed by a crossbeam channel, in one run.
//!
//! `cargo bench -p numakit --bench pool`
//!
//! - `pool/latency`: submit one empty job and wait for it (a round trip
//!   through a sleeping or spinning worker).
//! - `pool/throughput`: submit `N` empty jobs and wait until all ran;
//!   criterion's throughput line gives jobs per second (per-job time =
//!   time / N).
//!
//! Every contender has as many workers as the machine has CPUs (the pool:
//! one per CPU of each node); the submitting thread is the bench thread.
//! Throughput jobs are the same closure everywhere (it captures an `Arc`
//! and bumps a counter, so each job is one boxed allocation), except
//! `rayon_scope` and `numakit_submit_to_handles`, whose jobs are empty.

#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "support/pool.rs"]
mod pool_support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use numakit::sched::NodePool;
use numakit::NodeId;
use pool_support::{bump, counted_jobs, rayon_pool, threads, JOBS as N};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool/latency");
    let pool = NodePool::new().expect("pool");
    let node = NodeId::new(0);
    g.bench_function("numakit_submit_to_join", |b| {
        b.iter(|| pool.submit_to(node, || ()).unwrap().join().unwrap())
    });
    g.bench_function("numakit_submit_join", |b| {
        b.iter(|| pool.submit(|| ()).unwrap().join().unwrap())
    });
    let rayon = rayon_pool();
    g.bench_function("rayon_spawn_recv", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            rayon.spawn(move || tx.send(()).unwrap());
            rx.recv().unwrap()
        })
    });
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool/throughput");
    g.throughput(Throughput::Elements(N as u64));
    let pool = NodePool::new().expect("pool");
    let node = NodeId::new(0);
    let done = Arc::new(AtomicUsize::new(0));

    g.bench_function("numakit_execute_to", |b| {
        b.iter(|| {
            counted_jobs(&done, N, |d| {
                pool.execute_to(node, move || bump(&d)).unwrap();
            })
        })
    });
    g.bench_function("numakit_execute_unbound", |b| {
        b.iter(|| {
            counted_jobs(&done, N, |d| {
                pool.execute(move || bump(&d)).unwrap();
            })
        })
    });
    let mut handles = Vec::with_capacity(N);
    g.bench_function("numakit_submit_to_handles", |b| {
        b.iter(|| {
            handles.extend((0..N).map(|_| pool.submit_to(node, || ()).unwrap()));
            for h in handles.drain(..) {
                h.join().unwrap();
            }
        })
    });

    let rayon = rayon_pool();
    g.bench_function("rayon_spawn", |b| {
        b.iter(|| counted_jobs(&done, N, |d| rayon.spawn(move || bump(&d))))
    });
    g.bench_function("rayon_scope", |b| {
        b.iter(|| {
            rayon.scope(|s| {
                for _ in 0..N {
                    s.spawn(|_| ());
                }
            })
        })
    });

    g.bench_function("scoped_threads_crossbeam_channel", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
            std::thread::scope(|s| {
                for _ in 0..threads() {
                    let rx = rx.clone();
                    s.spawn(move || {
                        for job in rx {
                            job();
                        }
                    });
                }
                done.store(0, Ordering::Relaxed);
                for _ in 0..N {
                    let d = Arc::clone(&done);
                    tx.send(Box::new(move || bump(&d))).unwrap();
                }
                drop(tx);
            })
        })
    });
    g.finish();
    drop(pool);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = latency, throughput
}
criterion_main!(benches);
