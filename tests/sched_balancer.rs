//! L2 auto-balancer, on the host (one node: everything is local, nothing
//! happens) and in the guests (a thread on one node, its arena on another).
//!
//! The balancer changes the CPU masks of the test's own threads only (never
//! the main thread's), so these tests share one binary.

mod common;

use numakit::mem::Arena;
use numakit::sched::balancer::{
    BalancerEvent, CounterSupport, EventKind, GroupPhase, KernelNumaBalancing,
};
use numakit::sched::{self, BalancePolicy, BalancedGroup, Balancer, SchedError};
use numakit::sys::mem as sysmem;
use numakit::{current_node, NodeId, Topology};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Nodes with CPUs and memory: where a pinned thread's arena can be.
fn full_nodes(topo: &Topology) -> Vec<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| !n.cpus().is_empty() && n.has_memory())
        .map(|n| n.id())
        .collect()
}

/// The node a checkpoint rebound the thread to, and the memory policy
/// (mode, first word of the node mask) the thread had right after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rebound {
    node: NodeId,
    policy: (i32, libc::c_ulong),
}

/// A thread pinned to `node` (CPU mask and memory policy), registered in
/// `group` with an arena of 2 MiB on `arena_node`; it calls `checkpoint`
/// and reports its node until stopped.
struct Subject {
    stop: Arc<AtomicBool>,
    node: Arc<AtomicU32>,
    /// What the thread saw at the checkpoint that rebound it: the node it
    /// was rebound to and its memory policy (mode, first mask word) right
    /// after. Both are recorded under this one lock, so a reader that sees
    /// the checkpoint sees the policy too.
    rebound: Arc<Mutex<Option<Rebound>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subject {
    fn start(group: Arc<BalancedGroup>, node: NodeId, arena_node: NodeId) -> (Self, Arena) {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let cur = Arc::new(AtomicU32::new(u32::MAX));
        let rebound = Arc::new(Mutex::new(None));
        let (s, c, r) = (Arc::clone(&stop), Arc::clone(&cur), Arc::clone(&rebound));
        let thread = std::thread::spawn(move || {
            let _pin = sched::pin_to_node(node).unwrap();
            let arena = Arena::new(arena_node, 2 << 20).unwrap();
            arena.alloc_slice_fill_with(1 << 20, |i| i as u8);
            arena.verify().unwrap();
            group.add_current_thread();
            group.add_arena(&arena).unwrap();
            c.store(current_node().unwrap().get(), Ordering::Release);
            tx.send(arena).unwrap();
            while !s.load(Ordering::Acquire) {
                if let Some(node) = group.checkpoint().unwrap() {
                    let mut mask = vec![0; 16];
                    let mode = sysmem::get_mempolicy(&mut mask, std::ptr::null(), 0).unwrap();
                    *r.lock().unwrap() = Some(Rebound {
                        node,
                        policy: (mode, mask[0]),
                    });
                }
                c.store(current_node().unwrap().get(), Ordering::Release);
                std::thread::sleep(Duration::from_millis(2));
            }
            group.remove_current_thread();
        });
        let arena = rx.recv().unwrap();
        let subject = Subject {
            stop,
            node: cur,
            rebound,
            thread: Some(thread),
        };
        (subject, arena)
    }

    fn node(&self) -> u32 {
        self.node.load(Ordering::Acquire)
    }
}

impl Drop for Subject {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Wait until `done`, failing after `max_intervals` balancer intervals.
fn within_intervals(
    balancer: &Balancer,
    max_intervals: u64,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let start = balancer.status().intervals();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        let ran = balancer.status().intervals() - start;
        assert!(
            ran <= max_intervals && Instant::now() < deadline,
            "{what} did not happen within {ran} intervals\nstatus:\n{}\nevents:\n{}",
            balancer.status(),
            show(&balancer.events())
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn show(events: &[BalancerEvent]) -> String {
    events.iter().map(|e| format!("  {e}\n")).collect()
}

fn collecting() -> (
    Arc<Mutex<Vec<BalancerEvent>>>,
    impl Fn(&BalancerEvent) + Send + Sync,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    (seen, move |e: &BalancerEvent| {
        s.lock().unwrap().push(e.clone())
    })
}

#[test]
fn status_reports_the_kernels_numa_balancing_and_counter_support() {
    let balancer = Balancer::builder(BalancePolicy::Observe)
        .interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let status = balancer.status();
    match std::fs::read_to_string("/proc/sys/kernel/numa_balancing") {
        Err(_) => assert_eq!(status.kernel_balancing(), &KernelNumaBalancing::NotBuilt),
        Ok(s) if s.trim() == "0" => {
            assert_eq!(status.kernel_balancing(), &KernelNumaBalancing::Disabled)
        }
        Ok(s) => assert_eq!(
            status.kernel_balancing(),
            &KernelNumaBalancing::Enabled {
                mode: s.trim().parse().unwrap()
            }
        ),
    }
    match status.counters() {
        CounterSupport::Available => {}
        CounterSupport::Unavailable { reason } => {
            assert!(reason.contains("perf_event_open"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let text = status.to_string();
    assert!(
        text.contains("kernel NUMA balancing") && text.contains("counters"),
        "{text}"
    );
    assert_eq!(status.policy(), BalancePolicy::Observe);
}

#[test]
fn a_well_placed_thread_is_left_alone() {
    let topo = common::topology();
    let node = full_nodes(&topo)[0];
    for policy in [BalancePolicy::MoveThreads, BalancePolicy::MovePages] {
        let (seen, cb) = collecting();
        let balancer = Balancer::builder(policy)
            .interval(Duration::from_secs(3600))
            .hysteresis(2)
            .on_event(cb)
            .build()
            .unwrap();
        let group = Arc::new(balancer.register("local"));
        let (subject, arena) = Subject::start(Arc::clone(&group), node, node);
        for _ in 0..6 {
            assert_eq!(balancer.run_interval(), vec![], "{policy:?}");
        }
        let report = group.report();
        assert_eq!(report.locality(), Some(1.0));
        assert_eq!(report.phase(), GroupPhase::Watching { streak: 0 });
        assert_eq!(report.thread_nodes(), &[node]);
        assert_eq!(report.memory_node(), Some(node));
        assert_eq!((report.threads(), report.actions()), (1, 0));
        assert!(report.pages_sampled() > 0);
        assert!(seen.lock().unwrap().is_empty());
        assert_eq!(subject.node(), node.get());
        arena.verify().unwrap();
        drop(subject);
    }
}

#[test]
fn move_threads_brings_a_thread_pinned_away_from_its_memory_to_it() {
    let topo = common::topology();
    let nodes = full_nodes(&topo);
    let (home, memory) = (nodes[0], *nodes.get(1).unwrap_or(&nodes[0]));
    let (seen, cb) = collecting();
    let balancer = Balancer::builder(BalancePolicy::MoveThreads)
        .interval(Duration::from_millis(20))
        .hysteresis(2)
        .on_event(cb)
        .build()
        .unwrap();
    let group = Arc::new(balancer.register("remote-arena"));
    let (subject, arena) = Subject::start(Arc::clone(&group), home, memory);
    if home == memory {
        // One node: everything is local; nothing happens.
        within_intervals(&balancer, 100, "5 intervals", || {
            balancer.status().intervals() >= 5
        });
        assert!(
            seen.lock().unwrap().is_empty(),
            "{}",
            show(&seen.lock().unwrap())
        );
        assert_eq!(group.report().locality(), Some(1.0));
        return;
    }
    within_intervals(&balancer, 30, "the thread moving to its memory", || {
        subject.node() == memory.get()
    });
    within_intervals(&balancer, 10, "the checkpoint", || {
        subject.rebound.lock().unwrap().is_some()
    });
    // The thread rebound its memory policy at its checkpoint.
    assert_eq!(
        *subject.rebound.lock().unwrap(),
        Some(Rebound {
            node: memory,
            policy: (sysmem::MPOL_BIND, 1 << memory.get()),
        })
    );
    within_intervals(&balancer, 10, "the improvement to be verified", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| e.kind == EventKind::Improved)
    });
    let events = seen.lock().unwrap().clone();
    let moved = events
        .iter()
        .find(|e| e.kind == EventKind::ThreadsMoved)
        .unwrap_or_else(|| panic!("{}", show(&events)));
    assert_eq!(
        (moved.from, moved.to, moved.threads_moved),
        (Some(home), Some(memory), 1)
    );
    assert!(moved.reason.contains(&format!("node {memory}")), "{moved}");
    assert!(
        moved
            .pages_by_node
            .iter()
            .any(|&(n, c)| n == memory && c > 0),
        "{moved}"
    );
    // The pages stayed where they were; the thread is local now.
    arena.verify().unwrap();
    assert_eq!(group.report().locality(), Some(1.0));
    assert_eq!(group.report().actions(), 1);
    assert_eq!(balancer.events(), events);
    drop(subject);
}

#[test]
fn move_pages_brings_the_memory_of_a_pinned_thread_to_its_node() {
    let topo = common::topology();
    let nodes = full_nodes(&topo);
    let (home, memory) = (nodes[0], *nodes.get(1).unwrap_or(&nodes[0]));
    let balancer = Balancer::builder(BalancePolicy::MovePages)
        .interval(Duration::from_millis(20))
        .hysteresis(2)
        .build()
        .unwrap();
    let group = Arc::new(balancer.register("remote-arena"));
    let (subject, arena) = Subject::start(Arc::clone(&group), home, memory);
    if home == memory {
        within_intervals(&balancer, 100, "5 intervals", || {
            balancer.status().intervals() >= 5
        });
        assert!(balancer.events().is_empty(), "{}", show(&balancer.events()));
        return;
    }
    within_intervals(&balancer, 30, "the pages moving to the thread", || {
        arena.placement().unwrap().is_all_on(home)
    });
    within_intervals(&balancer, 10, "the improvement to be verified", || {
        balancer
            .events()
            .iter()
            .any(|e| e.kind == EventKind::Improved)
    });
    let events = balancer.events();
    let migrations: Vec<&BalancerEvent> = events
        .iter()
        .filter(|e| e.kind == EventKind::PagesMigrated)
        .collect();
    assert!(!migrations.is_empty(), "{}", show(&events));
    for m in &migrations {
        assert_eq!((m.from, m.to), (Some(memory), Some(home)), "{m}");
    }
    // A page that is busy for a moment (locked, or being migrated by the
    // kernel's own NUMA balancing) is tried again within the action; one
    // that still fails follows in a later interval. Every page of the arena
    // must have moved exactly once in all.
    let moved: usize = migrations.iter().map(|m| m.pages_moved).sum();
    assert_eq!(
        moved,
        (2 << 20) / numakit::sys::page_size(),
        "{}",
        show(&events)
    );
    // The thread did not move.
    assert_eq!(subject.node(), home.get());
    assert!(subject.rebound.lock().unwrap().is_none());
    drop(subject);
}

#[test]
fn a_memoryless_threads_node_cannot_receive_pages_and_says_so() {
    let topo = common::topology();
    let Some(cpu_only) = topo
        .nodes()
        .iter()
        .find(|n| !n.cpus().is_empty() && !n.has_memory())
        .map(|n| n.id())
    else {
        assert_ne!(
            std::env::var("NUMAKIT_EXPECT_MEMORYLESS").as_deref(),
            Ok("1"),
            "the harness promised a memoryless node"
        );
        return;
    };
    let memory = full_nodes(&topo)[0];
    let balancer = Balancer::builder(BalancePolicy::MovePages)
        .interval(Duration::from_secs(3600))
        .hysteresis(2)
        .build()
        .unwrap();
    let group = balancer.register("cpu-only");
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _pin = sched::Pin::node(cpu_only)
            .bind_memory(false)
            .apply()
            .unwrap();
        tx.send(numakit::sys::gettid()).unwrap();
        let _ = stop_rx.recv();
    });
    group.add_thread(rx.recv().unwrap());
    let arena = Arena::new(memory, 1 << 20).unwrap();
    group.add_arena(&arena).unwrap();
    let events: Vec<BalancerEvent> = (0..4).flat_map(|_| balancer.run_interval()).collect();
    assert_eq!(events.len(), 1, "{}", show(&events));
    assert_eq!(events[0].kind, EventKind::Skipped);
    assert!(events[0].reason.contains("no memory"), "{}", events[0]);
    drop(stop_tx);
    t.join().unwrap();
}

#[test]
fn an_exited_thread_is_removed_with_an_event() {
    let balancer = Balancer::builder(BalancePolicy::MoveThreads)
        .interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let group = balancer.register("short-lived");
    let tid = std::thread::spawn(numakit::sys::gettid).join().unwrap();
    // `join` returns when the thread has cleared its tid word, a moment
    // before the kernel finishes the task; wait until it is really gone.
    let task = format!("/proc/self/task/{tid}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&task).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    group.add_thread(tid);
    let events = balancer.run_interval();
    assert_eq!(events.len(), 1, "{}", show(&events));
    assert_eq!(events[0].kind, EventKind::ThreadGone);
    assert!(events[0].reason.contains(&tid.to_string()));
    assert_eq!(group.report().threads(), 0);
    assert!(balancer.run_interval().is_empty());
}

#[test]
fn groups_unregister_when_dropped() {
    let balancer = Balancer::builder(BalancePolicy::Observe)
        .interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let a = balancer.register("a");
    let b = balancer.register("b");
    assert_eq!(balancer.status().groups().len(), 2);
    drop(a);
    let status = balancer.status();
    assert_eq!(status.groups().len(), 1);
    assert!(status.group("b").is_some() && status.group("a").is_none());
    assert_eq!(b.name(), "b");
    // A group outliving its balancer is harmless.
    drop(balancer);
    b.add_current_thread();
    assert!(b.checkpoint().unwrap().is_none());
}

#[test]
fn bad_options_are_errors_that_name_the_option() {
    let cases: Vec<(sched::BalancerBuilder, &str)> = vec![
        (
            Balancer::builder(BalancePolicy::MovePages).interval(Duration::ZERO),
            "interval",
        ),
        (
            Balancer::builder(BalancePolicy::MovePages).hysteresis(0),
            "hysteresis",
        ),
        (
            Balancer::builder(BalancePolicy::MovePages).threshold(0.5),
            "threshold",
        ),
        (
            Balancer::builder(BalancePolicy::MovePages).threshold(1.5),
            "threshold",
        ),
        (
            Balancer::builder(BalancePolicy::MovePages).min_improvement(-1.0),
            "min_improvement",
        ),
        (
            Balancer::builder(BalancePolicy::MovePages).sample_pages(0),
            "sample_pages",
        ),
        (
            Balancer::builder(BalancePolicy::MovePages).max_actions_per_interval(0),
            "Observe",
        ),
        (
            Balancer::builder(BalancePolicy::MovePages).max_pages_per_interval(0),
            "max_pages",
        ),
    ];
    for (builder, word) in cases {
        let err = builder.build().unwrap_err();
        assert!(matches!(err, SchedError::InvalidConfig { .. }), "{err:?}");
        assert!(
            err.to_string().contains(word),
            "{err} should mention {word}"
        );
    }
    let balancer = Balancer::builder(BalancePolicy::Observe).build().unwrap();
    let group = balancer.register("g");
    assert!(group.add_memory(std::ptr::null(), 0).is_err());
    assert!(group.add_memory(usize::MAX as *const u8, 2).is_err());
}

#[test]
fn balancer_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Balancer>();
    send_sync::<BalancedGroup>();
}
