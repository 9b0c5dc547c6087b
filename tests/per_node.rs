//! `PerNode`: one replica per node with memory, built on and placed on
//! its node; `local()` for the caller's node (nearest for memoryless
//! ones); `PartitionedCounter`'s shards placed through it. On the host
//! (one node) the same tests check the one-node case; in the guests
//! (`NUMAKIT_EXPECT_NODES`) every node.

mod common;

use numakit::mem::{MemError, PerNode};
use numakit::sched::Pin;
use numakit::sync::PartitionedCounter;
use numakit::{NodeId, Topology};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

fn with_memory(topo: &Topology) -> Vec<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id())
        .collect()
}

/// Nodes whose CPUs the process may run on (all of them).
fn with_usable_cpus(topo: &Topology) -> Vec<NodeId> {
    let allowed = numakit::sched::allowed_cpus().unwrap();
    topo.nodes()
        .iter()
        .filter(|n| !n.cpus().is_empty() && n.cpus().difference(&allowed).is_empty())
        .map(|n| n.id())
        .collect()
}

/// Run `f` on a thread pinned to `node`'s CPUs (memory policy bound too
/// when the node has memory) and return its result.
fn on_node<R: Send + 'static>(
    topo: &Topology,
    node: NodeId,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let bind = topo.node(node).unwrap().has_memory();
    std::thread::spawn(move || {
        let _pin = Pin::node(node).bind_memory(bind).apply().expect("pin");
        assert_eq!(numakit::current_node().unwrap(), node);
        f()
    })
    .join()
    .expect("the pinned thread")
}

#[test]
fn one_replica_per_node_with_memory_built_and_placed_on_it() {
    let topo = common::topology();
    let nodes = with_memory(&topo);
    let p = PerNode::new(|node| {
        // Where the closure ran, and a buffer it allocated there.
        let ran_on = numakit::current_node().unwrap();
        (node, ran_on, vec![node.get(); 1000])
    })
    .unwrap();
    assert_eq!(p.len(), nodes.len());
    assert!(!p.is_empty());
    assert_eq!(p.nodes().collect::<Vec<_>>(), nodes);
    let cpus = with_usable_cpus(&topo);
    for (node, (built_for, ran_on, buf)) in p.iter() {
        assert_eq!(*built_for, node);
        assert!(buf.iter().all(|&x| x == node.get()));
        if cpus.contains(&node) {
            assert_eq!(*ran_on, node, "the closure for node {node} ran on {ran_on}");
        }
        assert_eq!(p.get(node).map(|r| r.0), Some(node));
        assert_eq!(p.replica_node_for(node), node);
    }
    let proof = p.verify().unwrap();
    for &node in &nodes {
        assert!(
            proof.on(node) >= 1,
            "no page of node {node}'s replica: {proof}"
        );
    }
    let pages = proof.pages();
    assert!(
        pages >= nodes.len(),
        "{pages} pages for {} replicas",
        nodes.len()
    );
    assert!(p.get(common::absent_node(&topo)).is_none());
    assert!(p.get(NodeId::new(u32::MAX)).is_none());
    // Unknown ids are served by the first replica, never a panic.
    assert_eq!(p.nearest(NodeId::new(u32::MAX)).0, nodes[0]);
    assert_eq!(p.replica_node_for(common::absent_node(&topo)), nodes[0]);
    if let Some(n) = common::expected_nodes() {
        assert_eq!(topo.num_nodes(), n);
    }
}

#[test]
fn local_is_the_pinned_threads_node_or_the_nearest_with_memory() {
    let topo = common::topology();
    let nodes = with_memory(&topo);
    let p = Arc::new(PerNode::new(|node| node).unwrap());
    let mut checked = 0;
    for node in with_usable_cpus(&topo) {
        let expect = if nodes.contains(&node) {
            node
        } else {
            // Nearest by distance, ties to the lower id.
            topo.nodes_by_distance(node)
                .unwrap()
                .into_iter()
                .find(|n| nodes.contains(n))
                .unwrap()
        };
        assert_eq!(p.replica_node_for(node), expect);
        let q = Arc::clone(&p);
        let got: Vec<NodeId> = on_node(&topo, node, move || {
            (0..3 * PerNode::<NodeId>::LOCAL_REFRESH)
                .map(|_| *q.local())
                .collect()
        });
        assert!(got.iter().all(|&g| g == expect), "node {node}: {got:?}");
        checked += 1;
    }
    assert!(checked >= 1);
    if let Some(n) = common::expected_nodes() {
        // Every guest node has CPUs except where the harness made some
        // CPU-less; at least the nodes with memory and CPUs were checked.
        assert!(checked >= n.min(2), "checked {checked} of {n} nodes");
    }
}

/// Counts drops of values it made, to catch leaks and double drops.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panicking_init_drops_every_built_replica_once_and_passes_the_panic_on() {
    let topo = common::topology();
    let last = *with_memory(&topo).last().unwrap();
    let made = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let r = catch_unwind(AssertUnwindSafe(|| {
        PerNode::new(|node| {
            made.fetch_add(1, Ordering::SeqCst);
            let value = Counted(Arc::clone(&dropped));
            if node == last {
                panic!("init failed on node {node}");
            }
            value
        })
    }));
    let payload = r.expect_err("the panic reaches the caller");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert_eq!(msg, format!("init failed on node {last}"));
    let n = with_memory(&topo).len();
    assert_eq!(made.load(Ordering::SeqCst), n);
    // The replicas built before, and the value of the panicking call.
    assert_eq!(dropped.load(Ordering::SeqCst), n);
}

#[test]
fn a_failing_init_returns_its_error_and_drops_what_was_built() {
    let topo = common::topology();
    let last = *with_memory(&topo).last().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let r = PerNode::try_new(|node| {
        let value = Counted(Arc::clone(&dropped));
        if node == last {
            return Err(numakit::Error::from(MemError::InvalidConfig(format!(
                "refused {node}"
            ))));
        }
        Ok(value)
    });
    match r {
        Err(numakit::Error::Mem(MemError::InvalidConfig(m))) => {
            assert_eq!(m, format!("refused {last}"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dropped.load(Ordering::SeqCst), with_memory(&topo).len());
    // Success: each replica dropped exactly once with the PerNode.
    let dropped = Arc::new(AtomicUsize::new(0));
    let p = PerNode::try_new(|_| Ok::<_, numakit::Error>(Counted(Arc::clone(&dropped)))).unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(p);
    assert_eq!(dropped.load(Ordering::SeqCst), with_memory(&topo).len());
}

#[test]
fn a_read_mostly_value_updated_everywhere_read_locally() {
    let topo = common::topology();
    let table = Arc::new(PerNode::new(|_| RwLock::new(vec![1u64, 2, 3])).unwrap());
    for (_, copy) in table.iter() {
        copy.write().unwrap().push(4);
    }
    for node in with_usable_cpus(&topo) {
        let t = Arc::clone(&table);
        let (sum, mine) = on_node(&topo, node, move || {
            let local = t.local();
            let sum: u64 = local.read().unwrap().iter().sum();
            (sum, local as *const _ as usize)
        });
        assert_eq!(sum, 10);
        let expect = table.replica_node_for(node);
        assert_eq!(mine, table.get(expect).unwrap() as *const _ as usize);
    }
    table.verify().unwrap();
}

#[test]
fn per_node_is_send_and_sync_when_its_value_is() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<PerNode<u64>>();
    send_sync::<PerNode<RwLock<Vec<u8>>>>();
    send::<PerNode<std::cell::Cell<u8>>>();
}

#[test]
fn the_counters_shards_are_on_their_nodes() {
    let topo = common::topology();
    let replicas = with_memory(&topo).len();
    for c in [
        PartitionedCounter::new(),
        PartitionedCounter::with_shards(1),
        PartitionedCounter::with_shards(5),
        PartitionedCounter::try_new().unwrap(),
        PartitionedCounter::try_with_shards(0).unwrap(),
        PartitionedCounter::try_with_shards(1).unwrap(),
        PartitionedCounter::try_with_shards(5).unwrap(),
    ] {
        assert!(c.is_node_placed());
        let proof = c.verify().unwrap();
        assert!(proof.pages() >= replicas, "{proof}");
        assert_eq!(proof.per_node().count(), replicas, "{proof}");
        assert_eq!(c.shards() % replicas, 0);
    }
    assert_eq!(PartitionedCounter::with_shards(0).shards(), replicas);
    assert_eq!(PartitionedCounter::with_shards(1).shards(), replicas);
    assert_eq!(PartitionedCounter::with_shards(5).shards(), 8 * replicas);
    // Threads on every node add; nothing is lost.
    let c = Arc::new(PartitionedCounter::new());
    let nodes = with_usable_cpus(&topo);
    for &node in &nodes {
        let c = Arc::clone(&c);
        on_node(&topo, node, move || (0..1000).for_each(|_| c.inc()));
    }
    assert_eq!(c.sum(), 1000 * nodes.len() as i64);
    assert_eq!(c.take(), 1000 * nodes.len() as i64);
    assert_eq!(c.sum(), 0);
    c.verify().unwrap();
}

#[test]
fn host_only_huge_shard_counts_are_clamped_not_a_panic() {
    let topo = common::topology();
    let replicas = with_memory(&topo).len();
    for s in [1 << 16, (1 << 16) + 1, usize::MAX] {
        let c = PartitionedCounter::with_shards(s);
        assert_eq!(c.shards(), (1 << 16) * replicas);
        c.inc();
        assert_eq!(c.sum(), 1);
        let c = PartitionedCounter::try_with_shards(s).unwrap();
        assert!(c.is_node_placed());
        assert_eq!(c.shards(), (1 << 16) * replicas);
    }
}
