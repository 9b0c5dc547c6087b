//! Shared by the cross-crate tests: what the multi-node harness promises.
//!
//! `cargo xtask vm-test --nodes N` runs every test binary inside a qemu
//! guest with `NUMAKIT_EXPECT_NODES=N`. Tests that make multi-node
//! assertions call [`topology`] first, which fails the test unless the
//! machine really has that many nodes, so a multi-node test can never pass by
//! quietly finding one node. On the host the variable is unset and the same
//! tests check the one-node behaviour instead.
//!
//! Conventions the harness relies on:
//! - a test whose name contains `host_only` is skipped in the guest (stress
//!   tests and anything too slow under emulation);
//! - a test marked `#[ignore = "vm-only: …"]` is ignored on the host and run
//!   in the guest (`--include-ignored`), for behaviour the host cannot show.

#![allow(dead_code)] // each test binary uses its own subset

use numakit::{NodeId, Topology};

/// The node count the harness promises, if running under it.
///
/// # Panics
/// If `NUMAKIT_EXPECT_NODES` is set but not a positive integer.
pub fn expected_nodes() -> Option<usize> {
    let v = std::env::var("NUMAKIT_EXPECT_NODES").ok()?;
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Some(n),
        _ => panic!("NUMAKIT_EXPECT_NODES={v:?} is not a positive node count"),
    }
}

/// Whether the tests run inside the harness's guest.
pub fn in_vm() -> bool {
    std::env::var_os("NUMAKIT_IN_VM").is_some()
}

/// The machine's topology, checked against the harness's promise.
///
/// # Panics
/// If the harness promised N nodes and the machine has another count.
pub fn topology() -> Topology {
    let topo = Topology::detect().expect("sysfs topology");
    if let Some(n) = expected_nodes() {
        assert_eq!(
            topo.num_nodes(),
            n,
            "the harness promised {n} NUMA nodes (NUMAKIT_EXPECT_NODES) but the machine has {:?}",
            topo.node_ids().collect::<Vec<_>>()
        );
    }
    topo
}

/// The multi-node topology the harness promised; panics on the host or when
/// the guest has a single node, so multi-node-only tests fail loudly
/// instead of skipping.
pub fn multi_node_topology() -> Topology {
    let topo = topology();
    assert!(
        topo.num_nodes() >= 2,
        "this test needs at least 2 NUMA nodes; run it through `cargo xtask vm-test --nodes 2`"
    );
    topo
}

/// A node id one past the largest that exists: never present.
pub fn absent_node(topo: &Topology) -> NodeId {
    NodeId::new(topo.node_ids().map(NodeId::get).max().unwrap_or(0) + 1)
}
