//! `numakit::measure`: every (CPU node, memory node) cell is produced, the
//! buffers were on their nodes, options are refused at their boundaries,
//! and the result survives JSON. On the host (one node) one cell; in the
//! guests (`cargo xtask vm-run --nodes N`) every pair. Figures under
//! emulation are artefacts: only their presence and sanity are checked.

mod common;

use numakit::measure::{measure, MeasureError, MeasureOptions, Measurement, BUFFER_BYTES};
use numakit::{NodeId, Topology};

/// Small enough for a few seconds in a TCG guest (where streaming runs at
/// some 100 MB/s).
fn small() -> MeasureOptions {
    MeasureOptions::quick()
        .latency_buffer(1 << 20)
        .bandwidth_buffer(1 << 20)
        .chase_loads(20_000)
        .handoff_round_trips(50)
        .repetitions(2)
}

fn cpu_nodes(topo: &Topology) -> Vec<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| !n.cpus().is_empty())
        .map(|n| n.id())
        .collect()
}

fn memory_nodes(topo: &Topology) -> Vec<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id())
        .collect()
}

#[test]
fn every_pair_with_cpus_and_memory_gets_a_cell_from_buffers_on_their_node() {
    let topo = common::topology();
    let before = numakit::sched::thread_cpus().unwrap();
    let m = measure(&small()).expect("measure");
    // The calling thread is where it was.
    assert_eq!(numakit::sched::thread_cpus().unwrap(), before);

    let (cpus, mems) = (cpu_nodes(&topo), memory_nodes(&topo));
    assert_eq!(m.nodes, topo.node_ids().collect::<Vec<_>>());
    assert_eq!(m.cpu_nodes, cpus);
    assert_eq!(m.memory_nodes, mems);
    assert_eq!(m.cells.len(), cpus.len() * mems.len(), "{:#?}", m.cells);
    for &c in &cpus {
        for &n in &mems {
            let cell = m.cell(c, n).unwrap_or_else(|| panic!("no cell ({c}, {n})"));
            assert!(cell.latency_ps.median > 0, "{cell:?}");
            assert!(cell.latency_ps.min <= cell.latency_ps.median);
            assert!(cell.latency_ps.median <= cell.latency_ps.max);
            assert_eq!(cell.latency_ps.runs, 2);
            assert!(cell.read_mb_s.median > 0 && cell.read_write_mb_s.median > 0);
            assert_eq!(
                cell.bandwidth_threads,
                topo.node(c).unwrap().allowed_cpus().unwrap().len()
            );
            let ratio = m.latency_ratio(c, n).unwrap();
            assert!(ratio >= 1.0, "{ratio}");
        }
    }
    // A memoryless node is never a memory target.
    for node in topo.nodes().iter().filter(|n| !n.has_memory()) {
        assert!(m.cells.iter().all(|c| c.memory_node != node.id()));
        assert!(m.buffers.iter().all(|b| b.node != node.id()));
    }
    // One verified buffer per memory node, every page on it.
    assert_eq!(m.buffers.iter().map(|b| b.node).collect::<Vec<_>>(), mems);
    for b in &m.buffers {
        assert!(b.verified_pages > 0, "{b:?}");
        assert!(b.bytes >= 2 << 20, "{b:?}");
        // Every page holding a buffer was asked about.
        let covered = b.verified_pages * b.page_size;
        assert!(covered >= 2 << 20 && covered <= b.bytes, "{b:?}");
        // Hugetlb pages when the node's pool has plenty free (the guest run
        // with --hugepages-per-node), never without a pool.
        let pool = topo
            .node(b.node)
            .unwrap()
            .hugepage_pool(2 << 20)
            .map_or((0, 0), |p| (p.free(), p.total()));
        if pool.1 == 0 {
            assert!(!b.hugetlb, "{b:?}");
        } else if pool.0 * (2 << 20) >= 2 * b.bytes as u64 {
            assert!(b.hugetlb, "{b:?} with {pool:?} free/total 2 MiB pages");
        }
    }
    // Handoffs: every pair of CPU nodes, and a node with itself when it has
    // two CPUs.
    for (i, &a) in cpus.iter().enumerate() {
        for &b in &cpus[i..] {
            let two = topo.node(a).unwrap().allowed_cpus().unwrap().len() >= 2;
            match m.handoff(a, b) {
                Some(h) => {
                    assert!(h.one_way_ps.median > 0);
                    assert_ne!(h.from_cpu, h.to_cpu);
                    assert!(mems.contains(&h.line_node));
                }
                None => assert!(a == b && !two, "no handoff ({a}, {b})"),
            }
        }
    }
    // The SLIT is the topology's.
    for &a in &m.nodes {
        for &b in &m.nodes {
            assert_eq!(m.slit_distance(a, b), Some(topo.distance(a, b).unwrap()));
        }
    }
    // The result orders this machine's nodes.
    let measured = topo.with_measured(&m).expect("the measurement fits");
    for &c in &cpus {
        let order = measured.nodes_by_distance(c).unwrap();
        assert_eq!(order[0], c);
        assert_eq!(order.len(), topo.num_nodes());
    }

    // JSON round trip, exactly.
    let json = serde_json::to_string(&m).unwrap();
    let back: Measurement = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
}

#[test]
fn options_out_of_range_are_refused_before_anything_runs() {
    let cases = [
        ("repetitions", small().repetitions(0)),
        ("repetitions", small().repetitions(1001)),
        ("repetitions", small().repetitions(usize::MAX)),
        ("latency_buffer", small().latency_buffer(0)),
        ("latency_buffer", small().latency_buffer(BUFFER_BYTES.0 - 1)),
        ("latency_buffer", small().latency_buffer(usize::MAX)),
        ("bandwidth_buffer", small().bandwidth_buffer(0)),
        (
            "bandwidth_buffer",
            small().bandwidth_buffer(BUFFER_BYTES.1 + 1),
        ),
        ("chase_loads", small().chase_loads(0)),
        ("chase_loads", small().chase_loads(usize::MAX)),
        ("handoff_round_trips", small().handoff_round_trips(0)),
        (
            "handoff_round_trips",
            small().handoff_round_trips(usize::MAX),
        ),
    ];
    for (name, opts) in cases {
        match measure(&opts) {
            Err(MeasureError::InvalidOption { option, .. }) => assert_eq!(option, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn the_smallest_options_measure() {
    let opts = MeasureOptions::quick()
        .latency_buffer(BUFFER_BYTES.0)
        .bandwidth_buffer(BUFFER_BYTES.0)
        .chase_loads(1)
        .handoff_round_trips(1)
        .repetitions(1);
    let m = measure(&opts).expect("measure");
    assert!(!m.cells.is_empty());
    assert!(m.cells.iter().all(|c| c.latency_ps.runs == 1));
}

#[test]
fn a_buffer_larger_than_the_node_is_a_typed_error() {
    let topo = common::topology();
    let biggest = topo.nodes().iter().map(|n| n.memory_total()).max().unwrap();
    // More than any node has, within the accepted range.
    let bytes = usize::try_from(biggest)
        .unwrap()
        .saturating_mul(2)
        .min(BUFFER_BYTES.1);
    if (bytes as u64) <= biggest {
        return; // a node of more than 32 GiB: the range cannot exceed it
    }
    match measure(&small().latency_buffer(bytes)) {
        Err(e @ MeasureError::Buffer { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("smaller buffers"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

/// A node pool ordered by a measurement of this machine builds and runs
/// jobs on every node; a measurement of other nodes (one node more, or one
/// fewer) is refused by `build` with the mismatch named, and no worker
/// starts.
#[test]
fn a_pool_orders_its_nodes_by_a_measurement_of_this_machine_only() {
    use numakit::sched::{NodePool, SchedError};
    use numakit::topology::TopologyError;
    let m = measure(&small()).expect("measure");
    let pool = NodePool::builder()
        .workers_per_node(1)
        .order_by_measured(m.clone())
        .build()
        .expect("a pool ordered by this machine's measurement");
    let nodes: Vec<NodeId> = pool.nodes().collect();
    for &node in &nodes {
        let ran = pool
            .submit_to(node, || numakit::current_node().unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(ran, node);
    }
    let unbound = pool.submit(|| 7).unwrap().join().unwrap();
    assert_eq!(unbound, 7);
    drop(pool);

    let mut more = m.clone();
    more.nodes.push(NodeId::new(u32::MAX));
    let mut fewer = m;
    fewer.nodes.clear();
    for bad in [more, fewer] {
        match NodePool::builder().order_by_measured(bad).build() {
            Err(SchedError::Topology(e @ TopologyError::MeasurementMismatch { .. })) => {
                assert!(e.to_string().contains("measure"), "{e}");
            }
            other => panic!("expected MeasurementMismatch, got {:?}", other.map(|_| ())),
        }
    }
}
