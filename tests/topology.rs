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

/// Each node's `distance` file, read directly: the kernel's own rows.
fn kernel_distance_rows(topo: &numakit::Topology) -> Vec<Vec<u32>> {
    topo.node_ids()
        .map(|n| {
            let path = format!("/sys/devices/system/node/node{n}/distance");
            match std::fs::read_to_string(&path) {
                Ok(s) => s
                    .split_whitespace()
                    .map(|d| d.parse().unwrap_or_else(|_| panic!("{path}: {s:?}")))
                    .collect(),
                // A kernel without NUMA support: one node, local only.
                Err(_) => vec![10],
            }
        })
        .collect()
}

#[test]
fn distances_are_the_kernels_and_what_the_harness_set() {
    let topo = common::topology();
    let matrix = common::distance_matrix(&topo);
    assert_eq!(matrix, kernel_distance_rows(&topo));
    let current = numakit::Topology::current().unwrap();
    assert_eq!(
        common::distance_matrix(&current),
        matrix,
        "the shared snapshot"
    );
    match common::expected_distances() {
        Some(want) => {
            assert_eq!(matrix, want, "NUMAKIT_EXPECT_DISTANCES");
            if common::harness_two_sockets() {
                assert!(common::distances_are_non_uniform(&topo));
            }
        }
        // qemu without `-numa dist` gives no SLIT: Linux's default.
        None if common::in_vm() => {
            for (i, row) in matrix.iter().enumerate() {
                for (j, &d) in row.iter().enumerate() {
                    assert_eq!(d, if i == j { 10 } else { 20 }, "{matrix:?}");
                }
            }
        }
        None => {}
    }
}

#[test]
fn nodes_by_distance_is_nearest_first_by_the_matrix() {
    let topo = common::topology();
    let ids: Vec<NodeId> = topo.node_ids().collect();
    let matrix = common::distance_matrix(&topo);
    for (i, &from) in ids.iter().enumerate() {
        // Sorted here by (not self, distance, id), from the raw matrix.
        let mut want: Vec<(bool, u32, NodeId)> = ids
            .iter()
            .enumerate()
            .map(|(j, &to)| (to != from, matrix[i][j], to))
            .collect();
        want.sort();
        let want: Vec<NodeId> = want.into_iter().map(|(_, _, id)| id).collect();
        assert_eq!(topo.nodes_by_distance(from).unwrap(), want, "from {from}");
    }
    if common::harness_two_sockets() {
        let by = |from: u32| -> Vec<u32> {
            topo.nodes_by_distance(NodeId::new(from))
                .unwrap()
                .into_iter()
                .map(NodeId::get)
                .collect()
        };
        match ids.len() {
            // The same-socket node comes before the lower-numbered nodes of
            // the other socket.
            4 => {
                assert_eq!(by(0), [0, 1, 2, 3]);
                assert_eq!(by(1), [1, 0, 2, 3]);
                assert_eq!(by(2), [2, 3, 0, 1]);
                assert_eq!(by(3), [3, 2, 0, 1]);
            }
            8 => {
                assert_eq!(by(0), [0, 1, 2, 3, 4, 5, 6, 7]);
                assert_eq!(by(5), [5, 4, 6, 7, 0, 1, 2, 3]);
                assert_eq!(by(7), [7, 4, 5, 6, 0, 1, 2, 3]);
            }
            _ => {}
        }
    }
}

#[test]
fn the_shared_snapshot_is_the_machine() {
    let topo = common::topology();
    let shape = |t: &numakit::Topology| {
        let nodes: Vec<_> = t
            .nodes()
            .iter()
            .map(|n| (n.id(), n.cpus().clone(), n.memory_total()))
            .collect();
        (nodes, common::distance_matrix(t), t.online_cpus().clone())
    };
    let current = numakit::Topology::current().unwrap();
    assert_eq!(shape(&current), shape(&topo));
    let again = numakit::Topology::current().unwrap();
    assert!(std::sync::Arc::ptr_eq(&current, &again));
    let fresh = numakit::Topology::refresh().unwrap();
    assert_eq!(shape(&fresh), shape(&topo));
    assert!(std::sync::Arc::ptr_eq(
        &fresh,
        &numakit::Topology::current().unwrap()
    ));
}
