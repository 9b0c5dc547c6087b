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

/// Elements summed per pass of the `node_sum` row (32 MiB of `u64`).
#[cfg(feature = "rayon")]
pub const SUM_ELEMS: usize = 1 << 22;

/// The `node_sum` workload (feature `rayon`): [`SUM_ELEMS`] `u64`s split
/// into one chunk per node with CPUs, each chunk allocated and first
/// touched by the workers of that node's pinned pool
/// ([`numakit::rayon::pools_per_node`]), so its pages are on that node
/// (where the node has memory the process may bind).
#[cfg(feature = "rayon")]
pub struct NodeSum {
    pools: Vec<numakit::rayon::NodeRayonPool>,
    chunks: Vec<std::sync::Arc<Vec<u64>>>,
}

#[cfg(feature = "rayon")]
impl NodeSum {
    pub fn new() -> NodeSum {
        use rayon::prelude::*;
        let pools = numakit::rayon::pools_per_node().expect("per-node rayon pools");
        let per = SUM_ELEMS.div_ceil(pools.len());
        let chunks: Vec<std::sync::Arc<Vec<u64>>> = pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let start = (i * per).min(SUM_ELEMS);
                let end = ((i + 1) * per).min(SUM_ELEMS);
                std::sync::Arc::new(
                    pool.install(|| (start as u64..end as u64).into_par_iter().collect()),
                )
            })
            .collect();
        let data = NodeSum { pools, chunks };
        let n = SUM_ELEMS as u64;
        assert_eq!(data.per_node(), n * (n - 1) / 2);
        data
    }

    /// Each node's pool sums its own node's chunk, all nodes at once: a
    /// scoped thread per node but the first hands its pool the job, this
    /// thread hands the first node's pool its job.
    pub fn per_node(&self) -> u64 {
        use rayon::prelude::*;
        let sum = |(pool, chunk): (&numakit::rayon::NodeRayonPool, &std::sync::Arc<Vec<u64>>)| {
            pool.install(|| chunk.par_iter().sum::<u64>())
        };
        let mut jobs = self.pools.iter().zip(&self.chunks);
        let first = jobs.next().expect("a node with CPUs");
        std::thread::scope(|s| {
            let others: Vec<_> = jobs.map(|job| s.spawn(move || sum(job))).collect();
            sum(first) + others.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        })
    }

    /// A `NodePool` sums each node's chunk on that node's workers: the
    /// chunk cut into one piece per worker, each piece a job bound to the
    /// node.
    pub fn node_pool(&self, pool: &numakit::sched::NodePool) -> u64 {
        let mut jobs = Vec::new();
        for (p, chunk) in self.pools.iter().zip(&self.chunks) {
            let node = p.node();
            let pieces = pool.workers_on(node).max(1);
            let per = chunk.len().div_ceil(pieces).max(1);
            for start in (0..chunk.len()).step_by(per) {
                let chunk = std::sync::Arc::clone(chunk);
                let end = (start + per).min(chunk.len());
                jobs.push(
                    pool.submit_to(node, move || chunk[start..end].iter().sum::<u64>())
                        .expect("a job on a node of the pool"),
                );
            }
        }
        jobs.into_iter()
            .map(|j| j.join().expect("a summing job"))
            .sum()
    }

    /// One machine-wide rayon pool sums every chunk: its workers take
    /// whichever pieces they steal, on whichever node.
    pub fn global(&self, pool: &rayon::ThreadPool) -> u64 {
        use rayon::prelude::*;
        pool.install(|| {
            self.chunks
                .par_iter()
                .map(|c| c.par_iter().sum::<u64>())
                .sum()
        })
    }
}
