//! NUMA behaviour of `CnaLock` against `McsLock`, with threads pinned to
//! the CPUs of each node.
//!
//! Every acquisition appends (thread, node) to a log inside the lock; a
//! *handoff* is a log entry whose thread differs from the previous one, and
//! it is *local* when both threads are on the same node. Two threads are
//! pinned to each node with CPUs (to its first CPU), so a node-oblivious
//! lock would hand off locally `1 / (threads − 1)` of the time.
//!
//! In the multi-node guest (`cargo xtask vm-test --nodes 2`,
//! `NUMAKIT_EXPECT_NODES=2`): `CnaLock` keeps most handoffs within a node
//! (at least 0.6, and 0.25 above the node-oblivious share), still leaves
//! the node (the threshold), and waiters wait within the fairness bound
//! (99th percentile). Host load decides which emulated CPUs run, so a run
//! that misses the locality figure is retried, up to four in all. On the
//! one-node host the same run checks the one-node behaviour: every handoff
//! is local.
//!
//! `McsLock` runs the same workload and its numbers are printed, not
//! asserted: it barges, so who gets the lock next is whoever runs, and in
//! the guest that is decided by which emulated CPUs the host schedules.
//! With each node's threads on its first CPU, in thirteen runs of a
//! 2-node guest (2 vCPUs per node, 2-core host) its local share was
//! 0.00–0.13 against 0.71–0.94 for `CnaLock<16>` (two first attempts gave
//! 0.00 and the retry passed); with four nodes of one CPU, 0.00 against
//! 0.94.
//!
//! Small on purpose (a few thousand acquisitions): guest CPUs are emulated.
//! Runs in its own test binary because it changes CPU affinity (of the
//! threads it spawns only).

#![cfg(not(loom))]

#[path = "../../tests/common/mod.rs"]
mod common;

use numakit::sync::{CnaLock, McsLock};
use numakit::{NodeId, Topology};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

/// Consecutive same-node handoffs the tested `CnaLock` allows.
const LOCAL: u32 = 16;
/// Acquisitions per thread.
const ROUNDS: usize = 250;
/// Threads per node with CPUs, all pinned to the node's first CPU: one
/// running CPU per node, whatever the node has. With the threads spread
/// over two CPUs of each node, a 2-node guest of 2 vCPUs per node on a
/// 2-core host runs 2 of its 4 vCPUs at a time, and which two (one node's
/// or one of each) decided the figure: `CnaLock<16>` kept 0.36–0.57 of
/// handoffs local in three attempts of one CI run, while `McsLock` kept
/// 0.90 in the same run.
const PER_NODE: usize = 2;

#[derive(Clone, Copy)]
struct Rec {
    thread: usize,
    node: NodeId,
}

/// A lock guarding the acquisition log.
trait LogLock: Sync {
    fn with(&self, f: &mut dyn FnMut(&mut Vec<Rec>));
}
impl LogLock for McsLock<Vec<Rec>> {
    fn with(&self, f: &mut dyn FnMut(&mut Vec<Rec>)) {
        f(&mut self.lock())
    }
}
impl<const N: u32> LogLock for CnaLock<Vec<Rec>, N> {
    fn with(&self, f: &mut dyn FnMut(&mut Vec<Rec>)) {
        f(&mut self.lock())
    }
}

struct Run {
    log: Vec<Rec>,
    /// For each acquisition: how many acquisitions by other threads
    /// happened between asking for the lock and getting it; sorted.
    waits: Vec<usize>,
}

impl Run {
    fn max_wait(&self) -> usize {
        self.waits.last().copied().unwrap_or(0)
    }
    /// The 99th percentile wait.
    fn p99_wait(&self) -> usize {
        self.waits
            .get(self.waits.len() * 99 / 100)
            .copied()
            .unwrap_or(0)
    }
    fn handoffs(&self) -> (usize, usize) {
        let mut local = 0;
        let mut all = 0;
        for w in self.log.windows(2) {
            if w[0].thread != w[1].thread {
                all += 1;
                if w[0].node == w[1].node {
                    local += 1;
                }
            }
        }
        (local, all)
    }
    fn local_share(&self) -> f64 {
        let (local, all) = self.handoffs();
        local as f64 / all.max(1) as f64
    }
}

/// The node of each thread: `PER_NODE` on every node with CPUs.
fn placement(topo: &Topology) -> Vec<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| !n.cpus().is_empty())
        .flat_map(|n| [n.id(); PER_NODE])
        .collect()
}

fn spin(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

fn run<L: LogLock>(lock: &L, topo: &Topology) -> Run {
    let threads = placement(topo);
    let acquired = AtomicUsize::new(0);
    let start = Barrier::new(threads.len());
    let mut waits: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = threads
            .iter()
            .enumerate()
            .map(|(i, &node)| {
                let (acquired, start) = (&acquired, &start);
                s.spawn(move || {
                    // The node's first CPU: see PER_NODE.
                    let cpu = topo.node(node).unwrap().cpus().iter().next().unwrap();
                    let mut one = numakit::CpuSet::new();
                    one.insert(cpu);
                    numakit::sys::sched::sched_setaffinity(0, &one.to_mask())
                        .expect("pin to the node's first CPU");
                    assert_eq!(
                        numakit::current_node().unwrap(),
                        node,
                        "pinned thread runs on its node"
                    );
                    start.wait();
                    let mut waits = Vec::with_capacity(ROUNDS);
                    for _ in 0..ROUNDS {
                        let asked = acquired.load(Ordering::SeqCst);
                        lock.with(&mut |log| {
                            let now = acquired.fetch_add(1, Ordering::SeqCst);
                            waits.push(now - asked);
                            log.push(Rec { thread: i, node });
                            spin(20);
                        });
                        spin(20);
                    }
                    waits
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    waits.sort_unstable();
    let mut log = Vec::new();
    lock.with(&mut |l| log = std::mem::take(l));
    assert_eq!(
        log.len(),
        threads.len() * ROUNDS,
        "every acquisition logged once"
    );
    Run { log, waits }
}

/// Attempts of the `CnaLock` run: the locality figure depends on the
/// host scheduling the guest's vCPUs, so a run spoiled by host load is
/// retried (every attempt must still satisfy the waiting bound).
const ATTEMPTS: usize = 4;

#[test]
fn cna_keeps_handoffs_on_the_node() {
    let topo = common::topology();
    let threads = placement(&topo).len();
    let nodes = topo.nodes().iter().filter(|n| !n.cpus().is_empty()).count();
    // What a lock that ignores nodes would get: the next owner is any of
    // the other threads.
    let oblivious = (PER_NODE - 1) as f64 / (threads - 1) as f64;
    // A queued waiter waits for at most LOCAL same-node handoffs per node
    // with CPUs plus one pass over the other threads (each has at most one
    // request outstanding); doubled for the acquisitions that slip in
    // between reading the counter and joining the queue. That window is a
    // few instructions, but in the guest a vCPU can be descheduled by the
    // host inside it for a whole host time slice, so the bound is checked
    // on the 99th percentile (the maximum is printed).
    let bound = 2 * ((LOCAL as usize + 1) * nodes + threads);

    let mcs = run(&McsLock::new(Vec::new()), &topo);
    let (mcs_local, mcs_all) = mcs.handoffs();
    eprintln!(
        "{nodes} node(s) with CPUs, {threads} threads × {ROUNDS}; node-oblivious local share \
         {oblivious:.2}, wait bound {bound}\n  McsLock {mcs_local}/{mcs_all} handoffs local \
         ({:.2}), wait p99 {} max {}",
        mcs.local_share(),
        mcs.p99_wait(),
        mcs.max_wait(),
    );
    if nodes < 2 {
        assert_eq!(mcs_local, mcs_all, "one node: every handoff is local");
    }

    for attempt in 1..=ATTEMPTS {
        let cna = run(&CnaLock::<_, LOCAL>::with_local_handoffs(Vec::new()), &topo);
        let (cna_local, cna_all) = cna.handoffs();
        eprintln!(
            "  CnaLock<{LOCAL}> {cna_local}/{cna_all} handoffs local ({:.2}), wait p99 {} max {}",
            cna.local_share(),
            cna.p99_wait(),
            cna.max_wait()
        );
        assert!(
            cna.p99_wait() <= bound,
            "CnaLock waiters: p99 wait {} acquisitions by others (bound {bound}), max {}",
            cna.p99_wait(),
            cna.max_wait()
        );
        if nodes < 2 {
            assert_eq!(cna_local, cna_all, "one node: every handoff is local");
            return;
        }
        assert!(cna_all > 0);
        // The threshold makes the lock leave the node: some handoffs are remote.
        assert!(
            cna_local < cna_all,
            "CnaLock never left a node in {cna_all} handoffs"
        );
        let share = cna.local_share();
        if share >= 0.6 && share >= oblivious + 0.25 {
            return;
        }
        assert!(
            attempt < ATTEMPTS,
            "CnaLock kept only {share:.2} of handoffs on the node in {ATTEMPTS} attempts \
             (node-oblivious: {oblivious:.2})"
        );
    }
}
