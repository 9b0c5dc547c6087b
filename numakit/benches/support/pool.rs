//! Task-pool workloads shared by the `pool` and `compare` benches, so that
//! their figures measure the same code.
//!
//! Included with `#[path = "support/pool.rs"] mod pool_support;`.

// Each bench target uses a subset of these workloads.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Jobs per throughput batch.
pub const JOBS: usize = 100_000;

/// Spins until `counter` reaches `n`.
fn wait_for(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::Acquire) < n {
        std::hint::spin_loop();
    }
}

/// Workers per pool: as many as the machine has CPUs.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A rayon pool with [`threads`] workers.
pub fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .build()
        .unwrap()
}

/// `n` jobs handed to `submit`, each owning a clone of `done` to bump when
/// it runs; returns when all `n` have run. `submit` wraps the clone in the
/// job closure and sends it to its pool, so every contender's job is the
/// same closure (one `Arc` captured: one boxed allocation per job).
pub fn counted_jobs(done: &Arc<AtomicUsize>, n: usize, mut submit: impl FnMut(Arc<AtomicUsize>)) {
    done.store(0, Ordering::Relaxed);
    for _ in 0..n {
        submit(Arc::clone(done));
    }
    wait_for(done, n);
}

/// The job every counted contender runs.
#[inline]
pub fn bump(done: &AtomicUsize) {
    done.fetch_add(1, Ordering::Release);
}
