//! rayon pools pinned to NUMA nodes (feature `rayon`): every worker's CPU,
//! node, CPU mask and memory policy, checked from inside the pool with
//! `broadcast`; the refusals for nodes a pool cannot use; thread counts at
//! their edges; and a pool that outlives its jobs' panics.
//!
//! On the one-node host this checks node 0. In the multi-node guest
//! (`cargo xtask vm-run --nodes 2 --cpus-per-node 2 --libtest
//! target/debug/deps/rayon_pools-*`, built with `--features numakit/rayon`)
//! `common::topology()` fails the tests unless both nodes are there, and
//! every node gets its pool checked. With `--mem-per-node 512M,0` (node 1
//! memoryless), `--cgroup-mems 0` or `--cgroup-cpus 0-1` the same tests
//! check the memoryless, memory-not-allowed and CPUs-not-allowed answers.
//!
//! Runs in its own binary: the pools' workers change their own CPU masks
//! and memory policies (never the test threads').

#![cfg(all(feature = "rayon", not(loom)))]

#[path = "../../tests/common/mod.rs"]
mod common;

use numakit::rayon::{pool_on, pools_per_node, PoolOn, RayonError};
use numakit::sched::{thread_cpus, SchedError, MAX_GROUP_THREADS};
use numakit::sys::mem as sysmem;
use numakit::{current_cpu, current_node, CpuSet, NodeId, Topology};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The calling thread's memory policy: mode and the first word of the mask.
fn mempolicy() -> (i32, libc::c_ulong) {
    let mut mask = vec![0; 16];
    let mode = sysmem::get_mempolicy(&mut mask, std::ptr::null(), 0).unwrap();
    (mode, mask[0])
}

/// Run `f` on its own thread and fail if it does not finish in time, so a
/// pool that deadlocks fails the test instead of hanging it.
fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(v) => {
            handle.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The closure panicked: show its panic.
            std::panic::resume_unwind(handle.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: did not finish in 120 s"),
    }
}

/// What a worker sees of its own placement.
#[derive(Debug)]
struct Seen {
    cpu: numakit::CpuId,
    node: NodeId,
    mask: CpuSet,
    policy: (i32, libc::c_ulong),
    index: usize,
}

fn seen_by_every_worker(pool: &rayon::ThreadPool) -> Vec<Seen> {
    let mut seen = pool.broadcast(|ctx| Seen {
        cpu: current_cpu().unwrap(),
        node: current_node().unwrap(),
        mask: thread_cpus().unwrap(),
        policy: mempolicy(),
        index: ctx.index(),
    });
    seen.sort_by_key(|s| s.index);
    seen
}

/// Every worker of `pool` runs on `node`'s allowed CPUs and nowhere else,
/// with its memory policy bound to `memory` (or left as the process
/// default).
fn check_workers(
    topo: &Topology,
    pool: &rayon::ThreadPool,
    node: NodeId,
    memory: Option<NodeId>,
    threads: usize,
) {
    let cpus = topo.node(node).unwrap().allowed_cpus().unwrap();
    assert_eq!(pool.current_num_threads(), threads, "node {node}");
    let seen = seen_by_every_worker(pool);
    assert_eq!(seen.len(), threads, "node {node}: one answer per worker");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.index, i);
        assert!(
            cpus.contains(s.cpu),
            "node {node}: worker {i} ran on CPU {} outside {cpus}",
            s.cpu
        );
        assert_eq!(
            s.node, node,
            "node {node}: worker {i} ran on node {}",
            s.node
        );
        assert_eq!(s.mask, cpus, "node {node}: worker {i}'s CPU mask");
        let expected = match memory {
            Some(m) => (sysmem::MPOL_BIND, 1 << m.get()),
            None => (sysmem::MPOL_DEFAULT, 0),
        };
        assert_eq!(
            s.policy, expected,
            "node {node}: worker {i}'s memory policy"
        );
    }
    // Work split by rayon itself runs there too.
    let nodes: Vec<NodeId> = pool.install(|| {
        (0..256)
            .into_par_iter()
            .map(|_| current_node().unwrap())
            .collect()
    });
    assert!(
        nodes.iter().all(|n| *n == node),
        "node {node}: parallel work ran on {nodes:?}"
    );
}

/// What `pool_on` must answer for `node`, from the topology.
fn expected_for(topo: &Topology, node: NodeId) -> Result<(), &'static str> {
    let n = topo.node(node).unwrap();
    if n.cpus().is_empty() {
        return Err("NoCpus");
    }
    if n.allowed_cpus().unwrap().is_empty() {
        return Err("NodeNotAllowed");
    }
    if !n.has_memory() {
        return Err("MemorylessNode");
    }
    if !n.memory_allowed().unwrap() {
        return Err("MemoryNotAllowed");
    }
    Ok(())
}

fn error_name(e: &RayonError) -> &'static str {
    match e {
        RayonError::Sched(SchedError::NoCpus { .. }) => "NoCpus",
        RayonError::Sched(SchedError::NodeNotAllowed { .. }) => "NodeNotAllowed",
        RayonError::Sched(SchedError::MemorylessNode { .. }) => "MemorylessNode",
        RayonError::Sched(SchedError::MemoryNotAllowed { .. }) => "MemoryNotAllowed",
        RayonError::Sched(SchedError::Topology(_)) => "Topology",
        _ => "other",
    }
}

#[test]
fn pool_on_every_node_pins_every_worker() {
    let topo = common::topology();
    watchdog("pool_on every node", move || {
        let mut built = 0;
        for node in topo.node_ids() {
            match (expected_for(&topo, node), pool_on(node)) {
                (Ok(()), Ok(pool)) => {
                    let threads = topo.node(node).unwrap().allowed_cpus().unwrap().len();
                    check_workers(&topo, &pool, node, Some(node), threads);
                    built += 1;
                }
                (Err(want), Err(e)) => {
                    assert_eq!(error_name(&e), want, "node {node}: {e}");
                    assert!(e.to_string().contains(&format!("node {node}")), "{e}");
                    // CPUs only, where only the memory is the problem.
                    if want.starts_with("Memory") {
                        let pool = PoolOn::node(node).bind_memory(false).build().unwrap();
                        let threads = topo.node(node).unwrap().allowed_cpus().unwrap().len();
                        check_workers(&topo, &pool, node, None, threads);
                    }
                }
                (want, got) => panic!("node {node}: expected {want:?}, got {:?}", got.map(|_| ())),
            }
        }
        assert!(built >= 1, "no node could take a pool");
    });
}

#[test]
fn pools_per_node_gives_one_pool_per_node_with_cpus() {
    let topo = common::topology();
    watchdog("pools_per_node", move || {
        let pools = pools_per_node().unwrap();
        let with_cpus: Vec<NodeId> = topo
            .node_ids()
            .filter(|n| !topo.node(*n).unwrap().allowed_cpus().unwrap().is_empty())
            .collect();
        let got: Vec<NodeId> = pools.iter().map(|p| p.node()).collect();
        assert_eq!(got, with_cpus);
        if let Some(n) = common::expected_nodes() {
            if std::env::var_os("NUMAKIT_EXPECT_CGROUP_CPUS").is_none() {
                // Every node of the guest that has CPUs; a CPU-less node has
                // no pool.
                let nodes_with_cpus = topo.nodes().iter().filter(|n| !n.cpus().is_empty()).count();
                assert_eq!(
                    pools.len(),
                    nodes_with_cpus,
                    "one pool per node of the guest with CPUs"
                );
                if n >= 2 {
                    assert!(
                        pools.len() >= 2,
                        "a multi-node guest gave {} pool(s)",
                        pools.len()
                    );
                }
            }
        }
        for pool in &pools {
            let node = pool.node();
            let n = topo.node(node).unwrap();
            let bindable = n.has_memory() && n.memory_allowed().unwrap();
            assert_eq!(pool.memory_node(), bindable.then_some(node), "node {node}");
            assert_eq!(pool.cpus(), &n.allowed_cpus().unwrap());
            check_workers(&topo, pool, node, pool.memory_node(), pool.cpus().len());
        }
    });
}

/// Node ids that do not exist, up to `u32::MAX`, are refused as absent
/// (with the nodes that exist named), before any thread starts; node 0 and
/// the largest node that exists are accepted.
#[test]
fn absent_nodes_are_typed_errors() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    for id in [absent.get(), absent.get() + 1, u32::MAX - 1, u32::MAX] {
        for bind in [true, false] {
            match PoolOn::node(id).bind_memory(bind).build() {
                Err(e @ RayonError::Sched(SchedError::Topology(_))) => {
                    assert!(e.to_string().contains(&id.to_string()), "{e}");
                }
                other => panic!("node {id}: expected an absent-node error, got {other:?}"),
            }
        }
        assert!(matches!(pools_per_node_contains(id), Ok(false)));
    }
    let largest = topo.node_ids().map(NodeId::get).max().unwrap();
    for id in [0, largest] {
        let node = NodeId::new(id);
        if expected_for(&topo, node).is_ok() {
            let pool = watchdog("pool_on", move || {
                pool_on(id).map(|p| p.current_num_threads())
            });
            assert_eq!(
                pool.unwrap(),
                topo.node(node).unwrap().allowed_cpus().unwrap().len()
            );
        }
    }
}

fn pools_per_node_contains(id: u32) -> Result<bool, RayonError> {
    Ok(pools_per_node()?.iter().any(|p| p.node().get() == id))
}

/// Thread counts: 0 and above `MAX_GROUP_THREADS` (up to `usize::MAX`) are
/// refused and name the count; 1 and more workers than CPUs are pinned.
#[test]
fn thread_counts_at_the_edges() {
    let topo = common::topology();
    for threads in [0, MAX_GROUP_THREADS + 1, usize::MAX] {
        match PoolOn::node(0).threads(threads).build() {
            Err(RayonError::Sched(e @ SchedError::Unsatisfiable { .. })) => {
                assert!(e.to_string().contains(&threads.to_string()), "{e}");
            }
            other => panic!("threads({threads}): expected Unsatisfiable, got {other:?}"),
        }
    }
    watchdog("thread counts", move || {
        for node in topo.node_ids().filter(|n| expected_for(&topo, *n).is_ok()) {
            let cpus = topo.node(node).unwrap().allowed_cpus().unwrap().len();
            for threads in [1, cpus, 3 * cpus + 1] {
                let pool = PoolOn::node(node).threads(threads).build().unwrap();
                check_workers(&topo, &pool, node, Some(node), threads);
            }
        }
    });
}

/// Names and stack sizes reach the workers.
#[test]
fn names_and_stack_size_reach_the_workers() {
    watchdog("names", || {
        let pool = PoolOn::node(0)
            .threads(2)
            .thread_name(|i| format!("n0-w{i}"))
            .stack_size(4 << 20)
            .build()
            .unwrap();
        let mut names = pool.broadcast(|_| std::thread::current().name().map(str::to_owned));
        names.sort();
        assert_eq!(names, [Some("n0-w0".to_owned()), Some("n0-w1".to_owned())]);
        // A 3 MiB local array fits in the 4 MiB stack (it would overflow
        // rayon's 2 MiB default).
        let sum: u64 = pool.install(|| {
            let big = [1u8; 3 << 20];
            std::hint::black_box(&big)
                .iter()
                .map(|b| u64::from(*b))
                .sum()
        });
        assert_eq!(sum, 3 << 20);
    });
}

/// A job that panics goes to the panic handler (`spawn`) or to the caller
/// (`install`, `broadcast`); the pool keeps its workers, still pinned.
#[test]
fn a_panicking_job_leaves_the_pool_usable() {
    let topo = common::topology();
    watchdog("panicking jobs", move || {
        let node = topo
            .node_ids()
            .find(|n| expected_for(&topo, *n).is_ok())
            .unwrap();
        let cpus = topo.node(node).unwrap().allowed_cpus().unwrap().len();
        let panics = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&panics);
        let pool = PoolOn::node(node)
            // Counts only the expected payload (a panic in the handler
            // would abort the process).
            .panic_handler(move |payload| {
                if payload.downcast_ref::<&str>() == Some(&"spawned job panics") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap();
        for _ in 0..4 {
            pool.spawn(|| panic!("spawned job panics"));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while panics.load(Ordering::SeqCst) < 4 {
            assert!(
                Instant::now() < deadline,
                "the panic handler saw {} of 4 panics",
                panics.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| {
                (0..64)
                    .into_par_iter()
                    .for_each(|i| assert!(i != 17, "installed job panics"))
            })
        }));
        let payload = caught.unwrap_err();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(msg.contains("installed job panics"), "{msg:?}");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.broadcast(|ctx| assert!(ctx.index() != 0, "broadcast job panics"))
        }));
        assert!(caught.is_err());
        // Same workers, same placement, still doing work.
        check_workers(&topo, &pool, node, Some(node), cpus);
        let sum: u64 = pool.install(|| (1..=1000u64).into_par_iter().sum());
        assert_eq!(sum, 500_500);
        assert_eq!(panics.load(Ordering::SeqCst), 4);
    });
}

/// The guest scenarios the harness announces are really met, and answered
/// as documented: a memoryless node (`--mem-per-node 512M,0`) and a node
/// outside the cgroup's `cpuset.mems` (`--cgroup-mems`) get a pool with
/// CPUs pinned and memory unbound, while `pool_on` refuses them; a node
/// outside the cgroup's `cpuset.cpus` (`--cgroup-cpus`) gets no pool and a
/// `NodeNotAllowed` refusal. Checks nothing where the harness announced
/// none of them (the host, plain guests).
#[test]
fn harness_scenarios_get_the_documented_answers() {
    let topo = common::topology();
    let memoryless = std::env::var("NUMAKIT_EXPECT_MEMORYLESS").is_ok_and(|v| v == "1");
    let mems: Option<Vec<NodeId>> = std::env::var("NUMAKIT_EXPECT_MEMS").ok().map(|v| {
        CpuSet::parse_list(&v)
            .unwrap()
            .iter()
            .map(|c| NodeId::new(c.get()))
            .collect()
    });
    let cgroup_cpus = std::env::var("NUMAKIT_EXPECT_CGROUP_CPUS")
        .ok()
        .map(|v| CpuSet::parse_list(&v).unwrap());
    // Nodes each scenario should touch, from the harness's own promise.
    let unbound: Vec<NodeId> = topo
        .node_ids()
        .filter(|n| {
            let node = topo.node(*n).unwrap();
            (memoryless && !node.cpus().is_empty() && !node.has_memory())
                || mems
                    .as_ref()
                    .is_some_and(|m| !m.contains(n) && !node.cpus().is_empty())
        })
        .collect();
    let refused: Vec<NodeId> = topo
        .node_ids()
        .filter(|n| {
            let cpus = topo.node(*n).unwrap().cpus();
            cgroup_cpus
                .as_ref()
                .is_some_and(|c| !cpus.is_empty() && cpus.intersection(c).is_empty())
        })
        .collect();
    if memoryless || mems.is_some() {
        assert!(
            !unbound.is_empty(),
            "the harness announced a node whose memory cannot be bound, and none has CPUs"
        );
    }
    if cgroup_cpus.is_some() {
        assert!(
            !refused.is_empty(),
            "the harness's cpuset.cpus leaves every node some CPU"
        );
    }
    watchdog("harness scenarios", move || {
        let pools = pools_per_node().unwrap();
        for node in &unbound {
            let pool = pools
                .iter()
                .find(|p| p.node() == *node)
                .unwrap_or_else(|| panic!("no pool for node {node}"));
            assert_eq!(pool.memory_node(), None, "node {node}");
            check_workers(&topo, pool, *node, None, pool.cpus().len());
            let e = pool_on(*node).unwrap_err();
            assert!(
                matches!(
                    e,
                    RayonError::Sched(
                        SchedError::MemorylessNode { .. } | SchedError::MemoryNotAllowed { .. }
                    )
                ),
                "node {node}: {e}"
            );
        }
        for node in &refused {
            assert!(
                pools.iter().all(|p| p.node() != *node),
                "node {node} got a pool"
            );
            let e = pool_on(*node).unwrap_err();
            assert!(
                matches!(e, RayonError::Sched(SchedError::NodeNotAllowed { .. })),
                "node {node}: {e}"
            );
        }
    });
}
