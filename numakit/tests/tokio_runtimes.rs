//! tokio runtimes pinned to NUMA nodes (feature `tokio`): where every
//! worker and blocking thread runs and what memory policy it has, checked
//! from tasks; the refusals for nodes a runtime cannot use; counts at their
//! edges; a `configure` closure that panics or breaks tokio's build;
//! `spawn_on` a chosen node; and pool jobs awaited from tasks.
//!
//! On the one-node host this checks node 0. In the multi-node guest
//! (`cargo xtask vm-run --nodes 2 --cpus-per-node 2 --libtest
//! target/debug/deps/tokio_runtimes-*`, built with `--features
//! numakit/tokio`) `common::topology()` fails the tests unless every node
//! is there, and every node gets its runtime checked.
//!
//! Runs in its own binary: the runtimes' threads change their own CPU
//! masks and memory policies (never the test threads').

#![cfg(all(feature = "tokio", not(loom)))]

#[path = "../../tests/common/mod.rs"]
mod common;

use numakit::sched::{thread_cpus, NodePool, SchedError, MAX_GROUP_THREADS};
use numakit::sys::mem as sysmem;
use numakit::tokio::{
    runtime_on, runtimes_per_node, NodeRuntime, RuntimeOn, TokioError, MAX_BLOCKING_THREADS,
};
use numakit::{current_cpu, current_node, CpuSet, NodeId, Topology};
use std::sync::mpsc;
use std::time::Duration;

/// Run `f` on its own thread and fail if it does not finish in time.
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
            std::panic::resume_unwind(handle.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: did not finish in 120 s"),
    }
}

/// What a thread sees of its own placement.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    node: NodeId,
    cpu_ok: bool,
    mask: CpuSet,
    policy: (i32, libc::c_ulong),
}

fn seen(cpus: &CpuSet) -> Seen {
    let mut mask = vec![0; 16];
    let mode = sysmem::get_mempolicy(&mut mask, std::ptr::null(), 0).unwrap();
    Seen {
        node: current_node().unwrap(),
        cpu_ok: cpus.contains(current_cpu().unwrap()),
        mask: thread_cpus().unwrap(),
        policy: (mode, mask[0]),
    }
}

/// Tasks, blocking tasks and `block_in_place` on `rt` all run on `node`'s
/// allowed CPUs, with the memory policy bound to `memory`.
fn check_runtime(topo: &Topology, rt: &NodeRuntime, node: NodeId, memory: Option<NodeId>) {
    let cpus = topo.node(node).unwrap().allowed_cpus().unwrap();
    assert_eq!(rt.node(), node);
    assert_eq!(rt.cpus(), &cpus);
    assert_eq!(rt.memory_node(), memory, "node {node}");
    assert_eq!(
        rt.metrics().num_workers(),
        rt.worker_threads(),
        "node {node}"
    );
    let want = Seen {
        node,
        cpu_ok: true,
        mask: cpus.clone(),
        policy: match memory {
            Some(m) => (sysmem::MPOL_BIND, 1 << m.get()),
            None => (sysmem::MPOL_DEFAULT, 0),
        },
    };
    let all: Vec<Seen> = rt.block_on(async {
        let mut handles = Vec::new();
        for i in 0..64 {
            let cpus = cpus.clone();
            if i % 8 == 0 {
                handles.push(tokio::task::spawn_blocking(move || seen(&cpus)));
            } else {
                handles.push(tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    seen(&cpus)
                }));
            }
        }
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await.unwrap());
        }
        all
    });
    for (i, s) in all.iter().enumerate() {
        assert_eq!(s, &want, "node {node}: task {i}");
    }
    assert!(rt.pin_failures().is_empty());
}

/// What `runtime_on` must answer for `node`, from the topology.
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

fn error_name(e: &TokioError) -> &'static str {
    match e {
        TokioError::Sched(SchedError::NoCpus { .. }) => "NoCpus",
        TokioError::Sched(SchedError::NodeNotAllowed { .. }) => "NodeNotAllowed",
        TokioError::Sched(SchedError::MemorylessNode { .. }) => "MemorylessNode",
        TokioError::Sched(SchedError::MemoryNotAllowed { .. }) => "MemoryNotAllowed",
        TokioError::Sched(SchedError::Topology(_)) => "Topology",
        _ => "other",
    }
}

#[test]
fn runtime_on_every_node_pins_every_thread() {
    let topo = common::topology();
    watchdog("runtime_on every node", move || {
        let mut built = 0;
        for node in topo.node_ids() {
            match (expected_for(&topo, node), runtime_on(node)) {
                (Ok(()), Ok(rt)) => {
                    let cpus = topo.node(node).unwrap().allowed_cpus().unwrap().len();
                    assert_eq!(rt.worker_threads(), cpus);
                    check_runtime(&topo, &rt, node, Some(node));
                    built += 1;
                }
                (Err(want), Err(e)) => {
                    assert_eq!(error_name(&e), want, "node {node}: {e}");
                    assert!(e.to_string().contains(&format!("node {node}")), "{e}");
                    if want.starts_with("Memory") {
                        let rt = RuntimeOn::node(node).bind_memory(false).build().unwrap();
                        check_runtime(&topo, &rt, node, None);
                    }
                }
                (want, got) => panic!("node {node}: expected {want:?}, got {:?}", got.map(|_| ())),
            }
        }
        assert!(built >= 1, "no node could take a runtime");
    });
}

#[test]
fn runtimes_per_node_and_spawn_on_a_chosen_node() {
    let topo = common::topology();
    watchdog("runtimes_per_node", move || {
        let rts = runtimes_per_node().unwrap();
        let with_cpus: Vec<NodeId> = topo
            .node_ids()
            .filter(|n| !topo.node(*n).unwrap().allowed_cpus().unwrap().is_empty())
            .collect();
        assert_eq!(rts.nodes().collect::<Vec<_>>(), with_cpus);
        if common::expected_nodes().is_some_and(|n| n >= 2)
            && std::env::var_os("NUMAKIT_EXPECT_CGROUP_CPUS").is_none()
        {
            let nodes_with_cpus = topo.nodes().iter().filter(|n| !n.cpus().is_empty()).count();
            assert_eq!(rts.iter().count(), nodes_with_cpus);
            assert!(
                nodes_with_cpus >= 2,
                "a multi-node guest has one node with CPUs"
            );
        }
        for rt in &rts {
            let node = rt.node();
            let n = topo.node(node).unwrap();
            let bindable = n.has_memory() && n.memory_allowed().unwrap();
            check_runtime(&topo, rt, node, bindable.then_some(node));
        }
        // A task spawned on each node from a task of another node runs
        // there; the JoinHandle is awaited across runtimes.
        let first = rts.iter().next().unwrap();
        let ran: Vec<(NodeId, NodeId)> = first.block_on(async {
            let mut out = Vec::new();
            for node in rts.nodes() {
                let h = rts
                    .spawn_on(node, async { current_node().unwrap() })
                    .unwrap();
                out.push((node, h.await.unwrap()));
            }
            out
        });
        for (asked, got) in ran {
            assert_eq!(asked, got);
        }
        let absent = common::absent_node(&topo);
        for id in [absent.get(), u32::MAX] {
            match rts.spawn_on(id, async {}) {
                Err(e @ SchedError::NodeNotInPool { .. }) => {
                    assert!(e.to_string().contains(&id.to_string()), "{e}");
                }
                other => panic!("spawn_on({id}): expected NodeNotInPool, got {other:?}"),
            }
        }
        assert!(rts.get(absent).is_none());
    });
}

/// Absent nodes up to `u32::MAX` are refused before any thread starts;
/// worker counts 0, above `MAX_GROUP_THREADS` and `usize::MAX` are refused
/// and named; blocking limits 0, above `MAX_BLOCKING_THREADS` and
/// `usize::MAX` are refused, 1 and the maximum are taken; 1 worker and more workers than CPUs are pinned.
#[test]
fn nodes_and_counts_at_the_edges() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    for id in [absent.get(), absent.get() + 1, u32::MAX - 1, u32::MAX] {
        match RuntimeOn::node(id).build() {
            Err(e @ TokioError::Sched(SchedError::Topology(_))) => {
                assert!(e.to_string().contains(&id.to_string()), "{e}");
            }
            other => panic!("node {id}: expected an absent-node error, got {other:?}"),
        }
    }
    for n in [0, MAX_GROUP_THREADS + 1, usize::MAX] {
        match RuntimeOn::node(0).worker_threads(n).build() {
            Err(TokioError::Sched(e @ SchedError::Unsatisfiable { .. })) => {
                assert!(e.to_string().contains(&n.to_string()), "{e}");
            }
            other => panic!("worker_threads({n}): expected Unsatisfiable, got {other:?}"),
        }
    }
    for n in [0, MAX_BLOCKING_THREADS + 1, usize::MAX] {
        match RuntimeOn::node(0).max_blocking_threads(n).build() {
            Err(TokioError::Sched(e @ SchedError::Unsatisfiable { .. })) => {
                assert!(e.to_string().contains(&n.to_string()), "{e}");
            }
            other => panic!("max_blocking_threads({n}): expected Unsatisfiable, got {other:?}"),
        }
    }
    watchdog("counts", move || {
        for node in topo.node_ids().filter(|n| expected_for(&topo, *n).is_ok()) {
            let cpus = topo.node(node).unwrap().allowed_cpus().unwrap().len();
            for workers in [1, cpus, 3 * cpus + 1] {
                let rt = RuntimeOn::node(node)
                    .worker_threads(workers)
                    .build()
                    .unwrap();
                assert_eq!(rt.worker_threads(), workers);
                check_runtime(&topo, &rt, node, Some(node));
            }
            for blocking in [1, MAX_BLOCKING_THREADS] {
                let rt = RuntimeOn::node(node)
                    .worker_threads(1)
                    .max_blocking_threads(blocking)
                    .build()
                    .unwrap();
                check_runtime(&topo, &rt, node, Some(node));
            }
        }
    });
}

/// A `configure` closure that panics, or that makes tokio panic (a
/// blocking limit of 0 set there) or fail to start a thread (a stack of
/// `usize::MAX` bytes), is an error of `build`, never a panic; names reach
/// the threads; what `configure` sets is kept unless the builder sets it.
#[test]
fn configure_panics_and_tokio_failures_are_errors() {
    match RuntimeOn::node(0)
        .configure(|_| panic!("configure panics"))
        .build()
    {
        Err(e @ TokioError::ConfigurePanicked { .. }) => {
            assert!(e.to_string().contains("configure panics"), "{e}")
        }
        other => panic!("expected ConfigurePanicked, got {other:?}"),
    }
    match RuntimeOn::node(0)
        .configure(|b| {
            b.max_blocking_threads(0);
        })
        .build()
    {
        Err(TokioError::ConfigurePanicked { .. }) => {}
        other => panic!("expected ConfigurePanicked, got {other:?}"),
    }
    let stack = watchdog("huge stack", || {
        RuntimeOn::node(0)
            .configure(|b| {
                b.thread_stack_size(usize::MAX);
            })
            .build()
            .map(|_| ())
    });
    match stack {
        Err(e @ TokioError::Build { .. }) => assert!(e.to_string().contains("node 0"), "{e}"),
        other => panic!("expected Build, got {other:?}"),
    }
    watchdog("names", || {
        let rt = RuntimeOn::node(0)
            .worker_threads(2)
            .thread_name("n0-tokio")
            .configure(|b| {
                // Replaced by the builder's own pinning hook.
                b.on_thread_start(|| {});
                b.event_interval(7);
            })
            .build()
            .unwrap();
        let names: Vec<Option<String>> = rt.block_on(async {
            let a = tokio::spawn(async { std::thread::current().name().map(str::to_owned) });
            let b = tokio::task::spawn_blocking(|| {
                (
                    std::thread::current().name().map(str::to_owned),
                    thread_cpus().unwrap(),
                )
            });
            let (bn, mask) = b.await.unwrap();
            assert_eq!(
                mask,
                Topology::current()
                    .unwrap()
                    .node(NodeId::new(0))
                    .unwrap()
                    .allowed_cpus()
                    .unwrap()
            );
            vec![a.await.unwrap(), bn]
        });
        assert_eq!(names, [Some("n0-tokio".into()), Some("n0-tokio".into())]);
    });
}

/// Tasks that panic reach their `JoinHandle`; the runtime keeps its
/// pinned workers.
#[test]
fn a_panicking_task_leaves_the_runtime_usable() {
    let topo = common::topology();
    watchdog("panicking tasks", move || {
        let node = topo
            .node_ids()
            .find(|n| expected_for(&topo, *n).is_ok())
            .unwrap();
        let rt = runtime_on(node).unwrap();
        let results = rt.block_on(async {
            let mut out = Vec::new();
            for i in 0..8 {
                out.push(tokio::spawn(async move {
                    assert!(i % 2 == 0, "task {i} panics");
                    i
                }));
            }
            let mut r = Vec::new();
            for h in out {
                r.push(h.await.map_err(|e| e.is_panic()));
            }
            r
        });
        for (i, r) in results.iter().enumerate() {
            if i % 2 == 0 {
                assert_eq!(r, &Ok(i));
            } else {
                assert_eq!(r, &Err(true));
            }
        }
        check_runtime(&topo, &rt, node, Some(node));
    });
}

/// A node pool's jobs awaited from tokio tasks: values, panics, and a
/// thousand jobs awaited at once without blocking a worker.
#[test]
fn pool_jobs_are_awaited_from_tasks() {
    watchdog("pool jobs awaited", || {
        let pool = std::sync::Arc::new(NodePool::new().unwrap());
        let rt = RuntimeOn::node(0).worker_threads(1).build().unwrap();
        let p = std::sync::Arc::clone(&pool);
        let (sum, panicked) = rt.block_on(async move {
            let mut tasks = Vec::new();
            for i in 0..1000u64 {
                let p = std::sync::Arc::clone(&p);
                tasks.push(tokio::spawn(async move {
                    p.submit(move || i).unwrap().await.unwrap()
                }));
            }
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            let panicked = p.submit(|| -> u64 { panic!("job panics") }).unwrap().await;
            (sum, panicked)
        });
        assert_eq!(sum, 999 * 1000 / 2);
        assert!(matches!(panicked, Err(SchedError::JobPanicked { .. })));
    });
}

/// A handle polled by one task (its waker registered) and then awaited by
/// another: the job's end wakes the task that polled last, not the one
/// that has finished. The job is held until the second task has polled, so
/// the result can only arrive by a wake (a lost one hangs: the watchdog).
#[test]
fn a_handle_moved_to_another_task_wakes_that_task() {
    use std::future::Future;
    use std::sync::{Arc, Barrier};
    use std::task::Poll;
    watchdog("a handle moved between tasks", || {
        let pool = NodePool::new().unwrap();
        let rt = RuntimeOn::node(0).worker_threads(2).build().unwrap();
        for round in 0..20u32 {
            let gate = Arc::new(Barrier::new(2));
            let g = Arc::clone(&gate);
            let h = pool
                .submit(move || {
                    g.wait();
                    round
                })
                .unwrap();
            // Task A: one poll, pending, and hands the handle on.
            let h = rt
                .block_on(rt.spawn(async move {
                    let mut h = h;
                    let pending = std::future::poll_fn(|cx| {
                        Poll::Ready(std::pin::Pin::new(&mut h).poll(cx).is_pending())
                    })
                    .await;
                    assert!(pending);
                    // In an Option: the task hands the handle on, it does
                    // not await it.
                    Some(h)
                }))
                .unwrap()
                .unwrap();
            // Task B awaits it; the job is let go once B has polled.
            let b = rt.spawn(async move {
                let mut h = h;
                let mut polled = false;
                std::future::poll_fn(move |cx| {
                    let r = std::pin::Pin::new(&mut h).poll(cx);
                    if r.is_pending() && !polled {
                        polled = true;
                        let gate = Arc::clone(&gate);
                        std::thread::spawn(move || gate.wait());
                    }
                    r
                })
                .await
            });
            assert_eq!(rt.block_on(b).unwrap().unwrap(), round);
        }
    });
}

/// `spawn_on` a node with a future that panics: the panic is the task's
/// `JoinError`, and the node's runtime goes on with other tasks.
#[test]
fn spawn_on_with_a_panicking_future() {
    // Every node of the guest must be there (and get its runtime).
    let _ = common::topology();
    watchdog("spawn_on with panics", move || {
        let rts = runtimes_per_node().unwrap();
        let first = rts.nodes().next().unwrap();
        let bad = rts
            .spawn_on(first, async { panic!("the future panics on its node") })
            .unwrap();
        let good = rts
            .spawn_on(first, async { current_node().unwrap() })
            .unwrap();
        let rt = rts.get(first).unwrap();
        let err = rt.block_on(bad).unwrap_err();
        assert!(err.is_panic());
        assert_eq!(rt.block_on(good).unwrap(), first);
        for node in rts.nodes() {
            let again = rts
                .spawn_on(node, async { current_node().unwrap() })
                .unwrap();
            assert_eq!(rts.get(node).unwrap().block_on(again).unwrap(), node);
        }
    });
}

/// A `NodeRuntime` dropped inside another runtime's task: tokio panics
/// (dropping a runtime waits for its blocking tasks, which an async
/// context must not), as its `Runtime` documents; dropping it with
/// `into_inner().shutdown_background()`, or in `spawn_blocking`, works.
#[test]
fn a_runtime_dropped_inside_another_runtime() {
    watchdog("a runtime dropped inside another", || {
        let outer = RuntimeOn::node(0).worker_threads(1).build().unwrap();
        let inner = RuntimeOn::node(0).worker_threads(1).build().unwrap();
        let dropped = outer.block_on(outer.spawn(async move { drop(inner) }));
        let err = dropped.unwrap_err();
        assert!(err.is_panic());
        let msg = err.into_panic();
        let msg = msg
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| msg.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("Cannot drop a runtime"), "{msg}");

        let inner = RuntimeOn::node(0).worker_threads(1).build().unwrap();
        outer
            .block_on(outer.spawn(async move { inner.into_inner().shutdown_background() }))
            .unwrap();
        let inner = RuntimeOn::node(0).worker_threads(1).build().unwrap();
        outer
            .block_on(
                outer.spawn(async move { tokio::task::spawn_blocking(move || drop(inner)).await }),
            )
            .unwrap()
            .unwrap();
    });
}
