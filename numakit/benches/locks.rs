//! Locks side by side: numakit's `McsLock`, `CnaLock`, `TicketLock` and
//! `RwLock` (write side) against `std::sync::Mutex`, `parking_lot::Mutex`,
//! the `mcslock` crate (strict FIFO `raw` and `barging`) and a
//! test-and-test-and-set spinlock; and `PartitionedCounter` against one
//! `AtomicU64`.
//!
//! `cargo bench -p numakit --bench locks`
//!
//! Workload (`support/locks.rs`): T threads share one lock whose critical
//! section is one increment of a shared counter; they run until the counter
//! reaches criterion's iteration count. Criterion reports the time per
//! acquisition over all threads.
//!
//! The summary table (median of interleaved repeats of 200 ms per point,
//! with fairness: the slowest thread's acquisitions divided by the mean)
//! comes from the `compare` bench, which runs the same workloads:
//!
//! ```sh
//! cargo bench -p numakit --bench compare -- locks      # table, JSON, locks.svg
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "support/locks.rs"]
mod locks_support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use locks_support::{run_counter, run_lock, Contender, Counter, Tas, THREADS};
use numakit::sync::{CnaLock, McsLock, PartitionedCounter, RwLock, TicketLock};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

fn bench_lock<L: Contender>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("lock/{}", L::NAME));
    for threads in THREADS {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(threads), |b| {
            b.iter_custom(|iters| {
                let s = run_lock::<L>(threads, iters.max(threads as u64), None);
                Duration::from_secs_f64(s.secs)
            })
        });
    }
    g.finish();
}

fn bench_counter<C: Counter>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("counter/{}", C::NAME));
    for threads in THREADS {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(threads), |b| {
            b.iter_custom(|iters| {
                let s = run_counter::<C>(threads, iters.max(threads as u64), None);
                Duration::from_secs_f64(s.secs * iters as f64 / s.ops as f64)
            })
        });
    }
    g.finish();
}

fn locks(c: &mut Criterion) {
    bench_lock::<Mutex<u64>>(c);
    bench_lock::<parking_lot::Mutex<u64>>(c);
    bench_lock::<mcslock::raw::spins::Mutex<u64>>(c);
    bench_lock::<mcslock::barging::spins::Mutex<u64>>(c);
    bench_lock::<Tas>(c);
    bench_lock::<McsLock<u64>>(c);
    bench_lock::<CnaLock<u64>>(c);
    bench_lock::<TicketLock<u64>>(c);
    bench_lock::<RwLock<u64>>(c);
    bench_counter::<AtomicU64>(c);
    bench_counter::<PartitionedCounter>(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = locks
}
criterion_main!(benches);
