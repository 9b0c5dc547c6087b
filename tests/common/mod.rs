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

/// Proptest cases for a property that runs `host` cases on the host.
///
/// `PROPTEST_CASES` overrides it everywhere. In the guest it is an eighth
/// (at least 4): the model-based properties check logic that does not depend
/// on the node count and run 10-20x slower under emulation, while the guest
/// is there for placement; the host and the sanitizer runs keep every case.
pub fn cases(host: u32) -> u32 {
    if let Some(n) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return n;
    }
    if in_vm() {
        (host / 8).max(4)
    } else {
        host
    }
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
    check_distances(&topo);
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

/// The distance matrix the harness gave the guest (`cargo xtask vm-test
/// --distances`), one row per node in id order, if it did.
///
/// # Panics
/// If `NUMAKIT_EXPECT_DISTANCES` is set but not rows of integers separated
/// by `/`, entries by `,`.
pub fn expected_distances() -> Option<Vec<Vec<u32>>> {
    let v = std::env::var("NUMAKIT_EXPECT_DISTANCES").ok()?;
    let parsed = v
        .trim()
        .split('/')
        .map(|row| row.split(',').map(|d| d.trim().parse::<u32>()).collect())
        .collect::<Result<Vec<Vec<u32>>, _>>();
    match parsed {
        Ok(m) => Some(m),
        Err(_) => panic!("NUMAKIT_EXPECT_DISTANCES={v:?} is not a matrix like 10,21/21,10"),
    }
}

/// `topo`'s distance matrix, one row per node in id order.
pub fn distance_matrix(topo: &Topology) -> Vec<Vec<u32>> {
    topo.node_ids()
        .map(|a| {
            topo.node_ids()
                .map(|b| topo.distance(a, b).unwrap())
                .collect()
        })
        .collect()
}

/// Whether any two remote distances of `topo` differ: a machine of
/// "sockets", where nearest-first choices are not just lowest-id-first.
pub fn distances_are_non_uniform(topo: &Topology) -> bool {
    let mut remote = distance_matrix(topo)
        .into_iter()
        .enumerate()
        .flat_map(|(i, row)| {
            row.into_iter()
                .enumerate()
                .filter(move |&(j, _)| j != i)
                .map(|(_, d)| d)
        });
    let first = remote.next();
    remote.any(|d| Some(d) != first)
}

/// The harness's `--distances two-sockets` matrix for `n` nodes: the first
/// half one socket, the second half another; 10 local, 21 same socket, 31
/// other socket.
pub fn two_sockets(n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| match (i == j, i / (n / 2) == j / (n / 2)) {
                    (true, _) => 10,
                    (false, true) => 21,
                    (false, false) => 31,
                })
                .collect()
        })
        .collect()
}

/// Whether the harness gave the guest the `two-sockets` matrix.
pub fn harness_two_sockets() -> bool {
    expected_distances().is_some_and(|m| m.len() >= 2 && m == two_sockets(m.len()))
}

/// Fails unless `topo` has exactly the matrix the harness promised.
///
/// # Panics
/// If `NUMAKIT_EXPECT_DISTANCES` is set and `topo` reports another matrix.
pub fn check_distances(topo: &Topology) {
    if let Some(want) = expected_distances() {
        assert_eq!(
            distance_matrix(topo),
            want,
            "the harness set this distance matrix (NUMAKIT_EXPECT_DISTANCES) but the \
             topology of nodes {:?} reports another",
            topo.node_ids().collect::<Vec<_>>()
        );
    }
}

/// Run `f` on a thread of its own and wait at most `limit` for it: its
/// value, or the payload of its panic. A call that does not finish in time
/// fails the calling test, naming `what`, instead of hanging the test
/// binary (the stuck thread is left behind; the process ends with the run).
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(what.escape_debug().to_string())
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        })
        .expect("spawn the watched thread");
    match rx.recv_timeout(limit) {
        Ok(result) => {
            let _ = worker.join();
            result
        }
        Err(_) => panic!("{what} did not finish within {limit:?}: it hangs"),
    }
}

/// As [`within`], with `f`'s panic (if any) going on in the caller.
pub fn finishes<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    within(std::time::Duration::from_secs(secs), what, f)
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The text of a panic's payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<a panic without a message>".into())
}

/// Run test `name` of this binary in a child process of its own (`--exact`,
/// one test thread) and return `true` there; in the parent, wait for the
/// child, fail with its output unless it passed, and return `false`. For a
/// test whose failure would end the whole process (a stack overflow
/// aborts it).
pub fn in_child(name: &str) -> bool {
    const CHILD: &str = "NUMAKIT_TEST_CHILD";
    if std::env::var_os(CHILD).is_some_and(|v| v == name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child running {name} failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
