//! L0 behaviour on the real machine — the host (one node) and, under
//! `cargo xtask vm-test`, guests with 2 and 4 nodes.

mod common;

use numakit::topology::TopologyError;
use numakit::{current_cpu, current_node, CpuSet, NodeId};

#[test]
fn node_count_is_what_the_harness_promised() {
    let topo = common::topology();
    assert!(topo.num_nodes() >= 1);
    if common::expected_nodes().is_none() {
        // The host machines of this project have exactly one node.
        eprintln!("host run: {} node(s)", topo.num_nodes());
    }
}

#[test]
fn absent_node_is_a_typed_error_naming_what_exists() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    match topo.node(absent) {
        Err(TopologyError::NoSuchNode {
            requested,
            available,
        }) => {
            assert_eq!(requested, absent);
            assert_eq!(available, topo.node_ids().collect::<Vec<_>>());
        }
        other => panic!("expected NoSuchNode for {absent}, got {other:?}"),
    }
    let err: numakit::Error = topo.node(absent).unwrap_err().into();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("node {absent} does not exist")),
        "{msg}"
    );
}

#[test]
fn on_one_node_node_1_is_refused() {
    let topo = common::topology();
    if topo.num_nodes() == 1 {
        let err = topo.node(NodeId::new(1)).unwrap_err();
        assert!(err.to_string().contains("only node 0"), "{err}");
    } else {
        assert!(topo.node(NodeId::new(1)).is_ok());
    }
}

#[test]
fn node_cpus_partition_the_online_cpus() {
    let topo = common::topology();
    let mut union = CpuSet::new();
    for node in topo.nodes() {
        assert!(
            node.cpus().intersection(&union).is_empty(),
            "node {} shares CPUs with another node",
            node.id()
        );
        union = union.union(node.cpus());
        for cpu in node.cpus().iter() {
            assert_eq!(topo.node_of_cpu(cpu).unwrap(), node.id());
        }
    }
    assert_eq!(&union, topo.online_cpus());
}

#[test]
fn distance_matrix_is_well_formed() {
    let topo = common::topology();
    for a in topo.node_ids() {
        assert_eq!(
            topo.distance(a, a).unwrap(),
            10,
            "local distance of node {a}"
        );
        for b in topo.node_ids() {
            let d = topo.distance(a, b).unwrap();
            if a != b {
                assert!(d > 10, "distance {a}->{b} = {d}");
            }
        }
        assert_eq!(topo.nodes_by_distance(a).unwrap()[0], a);
    }
}

#[test]
fn current_node_follows_the_cpu_on_every_node() {
    let topo = common::topology();
    let mut nodes_seen = Vec::new();
    for node in topo.nodes() {
        let Some(cpu) = node.cpus().first() else {
            continue; // CPU-less node
        };
        let seen = std::thread::spawn(move || {
            let one: CpuSet = [cpu].into_iter().collect();
            numakit::sys::sched::sched_setaffinity(0, &one.to_mask()).unwrap();
            (current_cpu().unwrap(), current_node().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(seen, (cpu, node.id()));
        nodes_seen.push(node.id());
    }
    if common::expected_nodes().is_some_and(|n| n > 1) {
        assert!(
            nodes_seen.len() >= 2,
            "ran on only {nodes_seen:?}: the guest should have CPUs on several nodes"
        );
    }
}

#[test]
fn every_node_reports_memory_and_hugepage_pools() {
    let topo = common::topology();
    assert!(
        topo.nodes().iter().any(|n| n.has_memory()),
        "no node has memory"
    );
    for node in topo.nodes() {
        assert!(node.memory_free() <= node.memory_total());
        for pool in node.hugepages() {
            assert!(pool.free() <= pool.total());
            assert!(pool.page_size().is_power_of_two());
        }
    }
    if let Some(per_node) = std::env::var("NUMAKIT_EXPECT_HUGEPAGES_2M")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        for node in topo.nodes().iter().filter(|n| n.has_memory()) {
            let pool = node.hugepage_pool(2 << 20).expect("2 MiB pool");
            assert_eq!(pool.total(), per_node, "2 MiB pages on node {}", node.id());
        }
    }
}
