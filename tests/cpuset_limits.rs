//! The process's cpuset, honoured by every API: memory nodes outside
//! `Mems_allowed` are refused up front with a typed error naming the
//! allowed nodes and the cgroup file that set them; CPUs outside the cgroup's
//! `cpuset.cpus` are left out, a node with none refused.
//!
//! Everywhere, the tests check that what numakit reports agrees with
//! `/proc/self/status` and that every node it allows works. Under
//! `cargo xtask vm-run --cgroup-mems LIST [--cgroup-cpus LIST]` the harness
//! runs the binary inside a cgroup2 cpuset and sets `NUMAKIT_EXPECT_MEMS`
//! (and `NUMAKIT_EXPECT_CGROUP_CPUS`); the tests then fail unless the
//! process really is limited that way and the nodes outside are refused.

mod common;

use numakit::collections::{spsc, ConcurrentHashMap, MpmcRing};
use numakit::mem::{self, Arena, MemError, NodeBox, NodeHeap, Slab};
use numakit::sched::{self, NodePool, Pin, SchedError, ThreadPlacement};
use numakit::topology::Restriction;
use numakit::{numa_static, CpuSet, NodeId, Topology};
use std::time::Duration;

/// Longest wait for a pool job before the test fails instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(120);

/// A list of the kernel's list format, parsed.
fn parse_list(s: &str) -> Vec<NodeId> {
    CpuSet::parse_list(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .iter()
        .map(|c| NodeId::new(c.get()))
        .collect()
}

/// A line of `/proc/self/status`, if the kernel writes it (a kernel
/// without cpusets has no `Mems_allowed_list`).
fn status_list(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// The memory nodes the harness put the process in, if any.
fn expected_mems() -> Option<Vec<NodeId>> {
    std::env::var("NUMAKIT_EXPECT_MEMS")
        .ok()
        .map(|v| parse_list(&v))
}

/// The CPUs the harness's cgroup allows, if it set them.
fn expected_cgroup_cpus() -> Option<CpuSet> {
    std::env::var("NUMAKIT_EXPECT_CGROUP_CPUS")
        .ok()
        .map(|v| CpuSet::parse_list(&v).unwrap())
}

/// Nodes with memory, and which of them the process may use (checked
/// against the harness's promise and `/proc/self/status`).
fn memory_nodes() -> (Topology, Vec<NodeId>, Vec<NodeId>) {
    let topo = common::topology();
    let with_memory: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id())
        .collect();
    let status: Vec<NodeId> = match status_list("Mems_allowed_list") {
        Some(list) => parse_list(&list),
        None => with_memory.clone(),
    };
    let allowed = topo.mems_allowed().unwrap();
    let from_status: Vec<NodeId> = with_memory
        .iter()
        .copied()
        .filter(|n| status.contains(n))
        .collect();
    assert_eq!(allowed, from_status, "Topology::mems_allowed vs /proc");
    for node in topo.nodes() {
        assert_eq!(
            node.memory_allowed().unwrap(),
            allowed.contains(&node.id()),
            "Node::memory_allowed of node {}",
            node.id()
        );
    }
    if let Some(expected) = expected_mems() {
        assert_eq!(
            allowed, expected,
            "the harness put the process in a cpuset with cpuset.mems = {expected:?}"
        );
        assert!(
            with_memory.iter().any(|n| !allowed.contains(n)),
            "the cpuset must leave out a node with memory for this test to mean anything"
        );
    }
    (topo, with_memory, allowed)
}

/// Every memory-placing API, on `node`: `Ok(())` or the first error.
fn place_everything_on(node: NodeId) -> Vec<(&'static str, Result<(), MemError>)> {
    let page = vec![1u8; 4096];
    let interleave: &'static [NodeId] = Box::leak(Box::new([node]));
    vec![
        ("Arena::new", Arena::new(node, 4096).map(drop)),
        (
            "Arena::builder",
            Arena::builder(node).capacity(1 << 16).build().map(drop),
        ),
        ("NodeBox::new", NodeBox::new(node, 7u64).map(drop)),
        (
            "NodeBox::new_interleaved",
            NodeBox::new_interleaved(interleave, [7u64; 1024]).map(drop),
        ),
        ("NodeHeap::new", NodeHeap::new(node).map(drop)),
        ("Slab::new", Slab::<u64>::new(node, 16).map(drop)),
        ("spsc::ring", spsc::ring::<u64>(node, 8).map(drop)),
        ("MpmcRing::new", MpmcRing::<u64>::new(node, 8).map(drop)),
        (
            "ConcurrentHashMap::new",
            ConcurrentHashMap::<u64, u64>::new(node).map(drop),
        ),
        (
            "migrate",
            mem::migrate(page.as_ptr(), page.len(), node).map(drop),
        ),
    ]
}

#[test]
fn cpuset_memory_nodes_are_reported_and_every_allowed_node_works() {
    let (_topo, _with_memory, allowed) = memory_nodes();
    assert!(!allowed.is_empty());
    for &node in &allowed {
        for (api, result) in place_everything_on(node) {
            result.unwrap_or_else(|e| panic!("{api} on allowed node {node}: {e}"));
        }
    }
}

#[test]
fn cpuset_memory_nodes_outside_are_refused_by_every_api_with_the_reason() {
    let (topo, with_memory, allowed) = memory_nodes();
    let outside: Vec<NodeId> = with_memory
        .iter()
        .copied()
        .filter(|n| !allowed.contains(n))
        .collect();
    assert_eq!(outside.is_empty(), expected_mems().is_none());
    for &node in &outside {
        for (api, result) in place_everything_on(node) {
            match result {
                Err(MemError::NodeNotAllowed {
                    node: refused,
                    mems_allowed,
                    restriction,
                }) => {
                    assert_eq!(refused, node, "{api}");
                    assert_eq!(mems_allowed, allowed, "{api}");
                    match &restriction {
                        Restriction::Cgroup { file, list } => {
                            assert!(
                                file.ends_with("cpuset.mems.effective"),
                                "{api}: {}",
                                file.display()
                            );
                            assert_eq!(parse_list(list), allowed, "{api}");
                        }
                        other => panic!("{api}: restriction {other:?}, not the cgroup"),
                    }
                    let text = MemError::NodeNotAllowed {
                        node,
                        mems_allowed,
                        restriction,
                    }
                    .to_string();
                    assert!(text.contains(&format!("node {node} is outside")), "{text}");
                    assert!(text.contains("cpuset.mems"), "{text}");
                }
                other => panic!("{api} on node {node} outside the cpuset: {other:?}"),
            }
        }
        // Through the crate-wide error too.
        let e: numakit::Error = Arena::new(node, 4096).unwrap_err().into();
        assert!(e.to_string().contains("outside the memory nodes"), "{e}");
        // A counter whose shards cannot all be on their nodes: `try_new`
        // says why, `new` is made in ordinary memory and says so.
        match numakit::sync::PartitionedCounter::try_new() {
            Err(e) => assert!(e.to_string().contains("outside the memory nodes"), "{e}"),
            Ok(_) => panic!("PartitionedCounter::try_new placed shards outside the cpuset"),
        }
        assert!(!numakit::sync::PartitionedCounter::new().is_node_placed());

        // A pin that binds memory there is refused; one that does not is
        // fine where the node has CPUs the process may use.
        let node_cpus = topo.node(node).unwrap().allowed_cpus().unwrap();
        let pinned = std::thread::spawn(move || Pin::node(node).apply().map(drop))
            .join()
            .unwrap();
        match pinned {
            Err(SchedError::MemoryNotAllowed {
                node: n,
                mems_allowed,
                ..
            }) if !node_cpus.is_empty() => {
                assert_eq!(n, node);
                assert_eq!(mems_allowed, allowed);
            }
            Err(SchedError::NodeNotAllowed { .. }) if node_cpus.is_empty() => {}
            other => panic!("Pin::node({node}) outside the cpuset's mems: {other:?}"),
        }
        if !node_cpus.is_empty() {
            let cpus = std::thread::spawn(move || {
                let _g = Pin::node(node).bind_memory(false).apply()?;
                sched::thread_cpus()
            })
            .join()
            .unwrap()
            .expect("pinning the CPUs only");
            assert_eq!(cpus, node_cpus);
        }
    }
}

numa_static! {
    #[numa(node = 1)]
    static ON_NODE_ONE: [u64; 512] = [1; 512];
}

#[test]
fn cpuset_numa_static_on_a_node_outside_is_a_typed_error() {
    let (_topo, with_memory, allowed) = memory_nodes();
    let one = NodeId::new(1);
    match ON_NODE_ONE.get() {
        Ok(v) => {
            assert!(allowed.contains(&one));
            assert_eq!(v[511], 1);
        }
        Err(numakit::Error::Mem(MemError::NodeNotAllowed { node, .. })) => {
            assert_eq!(node, one);
            assert!(with_memory.contains(&one) && !allowed.contains(&one));
        }
        Err(e) if !with_memory.contains(&one) => {
            // One node (the host) or a memoryless node 1: not this test's
            // subject, but still typed.
            assert!(matches!(e, numakit::Error::Mem(_)), "{e:?}");
        }
        Err(e) => panic!("numa_static on node 1: {e:?}"),
    }
}

#[test]
fn cpuset_threads_use_the_allowed_cpus_and_memory_nodes() {
    let (topo, _with_memory, allowed_mems) = memory_nodes();
    let allowed_cpus = topo.allowed_cpus().unwrap();
    assert_eq!(
        allowed_cpus,
        CpuSet::parse_list(&status_list("Cpus_allowed_list").expect("Cpus_allowed_list"))
            .unwrap()
            .intersection(topo.online_cpus())
    );
    if let Some(cgroup) = expected_cgroup_cpus() {
        assert_eq!(allowed_cpus, cgroup.intersection(topo.online_cpus()));
    }
    for node in topo.nodes() {
        let id = node.id();
        let usable = node.allowed_cpus().unwrap();
        let pinned = std::thread::spawn(move || {
            let _g = Pin::node(id).bind_memory(false).apply()?;
            sched::thread_cpus()
        })
        .join()
        .unwrap();
        match pinned {
            Ok(cpus) => assert_eq!(cpus, usable, "node {id}"),
            Err(SchedError::NoCpus { .. }) => assert!(node.cpus().is_empty()),
            Err(SchedError::NodeNotAllowed {
                node_cpus,
                allowed,
                restriction,
                ..
            }) => {
                assert!(usable.is_empty() && !node.cpus().is_empty(), "node {id}");
                assert_eq!(node_cpus, *node.cpus());
                assert_eq!(allowed.intersection(topo.online_cpus()), allowed_cpus);
                if expected_cgroup_cpus().is_some() {
                    match restriction {
                        Restriction::Cgroup { file, .. } => {
                            assert!(file.ends_with("cpuset.cpus.effective"), "{file:?}")
                        }
                        other => panic!("node {id}: restriction {other:?}, not the cgroup"),
                    }
                }
            }
            Err(e) => panic!("Pin::node({id}).bind_memory(false): {e:?}"),
        }
    }

    // Groups: each thread on one allowed CPU of a node whose memory is
    // allowed.
    let bindable: CpuSet = topo
        .nodes()
        .iter()
        .filter(|n| allowed_mems.contains(&n.id()))
        .map(|n| n.allowed_cpus().unwrap())
        .fold(CpuSet::new(), |a, b| a.union(&b));
    for placement in [ThreadPlacement::Compact, ThreadPlacement::Scatter] {
        let group = sched::spawn_group(bindable.len(), placement, |_| {
            (
                sched::thread_cpus().unwrap(),
                numakit::current_node().unwrap(),
            )
        })
        .unwrap_or_else(|e| panic!("{placement}: {e}"));
        for r in group.join() {
            let (cpus, node) = r.unwrap();
            assert_eq!(cpus.len(), 1, "{placement}");
            assert!(cpus.is_subset(&bindable), "{placement}: {cpus}");
            assert!(allowed_mems.contains(&node), "{placement}: node {node}");
        }
        match sched::spawn_group(bindable.len() + 1, placement, |_| ()) {
            Err(SchedError::Unsatisfiable { .. }) => {}
            other => panic!("{placement} with one thread too many: {other:?}"),
        }
    }

    // A pool: workers on every node with allowed CPUs, memory bound only
    // where the cpuset allows it; jobs run on the node's allowed CPUs.
    let pool = NodePool::new().expect("a pool inside the cpuset");
    let with_cpus: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| !n.allowed_cpus().unwrap().is_empty())
        .map(|n| n.id())
        .collect();
    assert_eq!(pool.nodes().collect::<Vec<_>>(), with_cpus);
    for &id in &with_cpus {
        let job = pool
            .submit_to(id, move || {
                // Memory the job allocates: on an allowed node.
                let v = vec![1u8; 1 << 16];
                let placement = mem::locate(v.as_ptr(), v.len()).unwrap();
                (sched::thread_cpus().unwrap(), placement)
            })
            .unwrap();
        assert!(
            job.wait_timeout(WATCHDOG),
            "job on node {id} did not finish"
        );
        let (cpus, placement) = job.join().unwrap();
        assert_eq!(cpus, topo.node(id).unwrap().allowed_cpus().unwrap());
        for (node, pages) in placement.per_node() {
            assert!(
                pages == 0 || allowed_mems.contains(&node),
                "job on node {id}: {pages} pages on node {node}"
            );
        }
    }
}
