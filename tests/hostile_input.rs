//! Hostile input: every public function that takes a size, count,
//! capacity, alignment, node, CPU, length or address range, called with 0,
//! 1, the largest valid value, the smallest invalid one, `usize::MAX` /
//! `u32::MAX` (and non-powers of two for alignments). Each outcome is a
//! typed error with a useful message or a documented success; never a
//! panic, an abort or a hang: every case runs on its own thread under a
//! watchdog.
//!
//! Cases are tables (`input → expected outcome`) so the coverage is visible.
//! Node-dependent cases use `common::topology()`: in the multi-node guest
//! (`NUMAKIT_EXPECT_NODES`) they also run against the second node.

mod common;

use numakit::mem::{
    locate, migrate, Arena, MemError, NodeBox, NodeHeap, PageKind, Populate, SlabBuilder,
};
use numakit::sched::{
    pin_to_cpu, pin_to_node, spawn_group, BalancePolicy, Balancer, NodePool, SchedError,
    ThreadPlacement, MAX_GROUP_THREADS,
};
use numakit::{CpuId, CpuSet, NodeId, Topology};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Run `f` on its own thread; fail the test if it panics (naming `case`)
/// or does not finish within `limit`.
fn watchdog<T: Send + 'static>(
    case: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    common::within(limit, &format!("case {case}"), f)
        .unwrap_or_else(|p| panic!("case {case} panicked: {}", common::panic_message(&*p)))
}

const LIMIT: Duration = Duration::from_secs(60);

/// What a case must give.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Success.
    Ok,
    /// An error whose message contains this text.
    Err(&'static str),
}

fn check<T: Debug, E: std::fmt::Display + Debug>(case: &str, want: Want, got: Result<T, E>) {
    match (want, &got) {
        (Want::Ok, Ok(_)) => {}
        (Want::Err(text), Err(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains(text),
                "case {case}: error {msg:?} should mention {text:?}"
            );
        }
        _ => panic!("case {case}: wanted {want:?}, got {got:?}"),
    }
}

/// A node with memory and CPUs that this process may run on.
fn usable_node(topo: &Topology) -> NodeId {
    let allowed = numakit::sched::allowed_cpus().unwrap();
    topo.nodes()
        .iter()
        .find(|n| n.has_memory() && !n.cpus().intersection(&allowed).is_empty())
        .expect("a node with memory and allowed CPUs")
        .id()
}

/// The nodes to run node-dependent cases on: every node with memory and
/// allowed CPUs (two or more in the multi-node guest).
fn usable_nodes(topo: &Topology) -> Vec<NodeId> {
    let allowed = numakit::sched::allowed_cpus().unwrap();
    let nodes: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory() && n.cpus().is_subset(&allowed) && !n.cpus().is_empty())
        .map(|n| n.id())
        .collect();
    // Guests can have memoryless or CPU-less nodes; a multi-node guest
    // still has at least two nodes with both, so the multi-node cases
    // cannot pass by finding one.
    if common::expected_nodes().is_some_and(|n| n > 1) {
        assert!(
            nodes.len() >= 2,
            "a multi-node guest has two usable nodes: {nodes:?}"
        );
    }
    nodes
}

// ---------------------------------------------------------------- spawn

#[test]
fn spawn_group_thread_counts() {
    let topo = common::topology();
    let node = usable_node(&topo);
    let absent = common::absent_node(&topo);
    let max = MAX_GROUP_THREADS.to_string();
    let table: &[(&str, usize, ThreadPlacement, Want)] = &[
        (
            "0 threads",
            0,
            ThreadPlacement::Node(node),
            Want::Err("at least one thread"),
        ),
        ("1 thread", 1, ThreadPlacement::Node(node), Want::Ok),
        (
            "max + 1",
            MAX_GROUP_THREADS + 1,
            ThreadPlacement::Node(node),
            Want::Err("at most"),
        ),
        (
            "2^40",
            1 << 40,
            ThreadPlacement::Node(node),
            Want::Err("MAX_GROUP_THREADS"),
        ),
        (
            "usize::MAX",
            usize::MAX,
            ThreadPlacement::Node(node),
            Want::Err("MAX_GROUP_THREADS"),
        ),
        (
            "usize::MAX compact",
            usize::MAX,
            ThreadPlacement::Compact,
            Want::Err("at most"),
        ),
        (
            "usize::MAX scatter",
            usize::MAX,
            ThreadPlacement::Scatter,
            Want::Err("at most"),
        ),
        (
            "absent node",
            1,
            ThreadPlacement::Node(absent),
            Want::Err("does not exist"),
        ),
        (
            "node u32::MAX",
            1,
            ThreadPlacement::Node(NodeId::new(u32::MAX)),
            Want::Err("4294967295"),
        ),
        (
            "CPU u32::MAX",
            1,
            ThreadPlacement::Cpu(CpuId::new(u32::MAX)),
            Want::Err("not online"),
        ),
    ];
    for &(case, threads, placement, want) in table {
        let got = watchdog(case, LIMIT, move || {
            spawn_group(threads, placement, |i| i).map(|g| g.join().len())
        });
        check(case, want, got);
    }
    assert!(max.len() > 1);
}

// ------------------------------------------------------- locate / migrate

/// An address range no mapping can cover: above the 47-bit user address
/// space (and below the kernel's).
const HIGH: usize = 1 << 48;

/// Bytes mapped by this process (`/proc/self/maps`).
fn mapped_bytes() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some(usize::from_str_radix(b, 16).ok()? - usize::from_str_radix(a, 16).ok()?)
        })
        .sum()
}

#[test]
fn locate_and_migrate_ranges() {
    let topo = common::topology();
    let node = usable_node(&topo);
    let v = vec![7u8; 1 << 20];
    let p = v.as_ptr() as usize;
    let page = numakit::sys::page_size();
    // A mapping of our own, high in the address space: from it to the end
    // of the address space are the libraries, stacks and vsyscall page.
    let m = numakit::sys::mem::mmap_anonymous(page, libc::PROT_READ, 0).unwrap();
    let mp = m.as_ptr() as usize;
    // (case, address, length, want, pages when Ok)
    let table: Vec<(&str, usize, usize, Want, Option<usize>)> = vec![
        ("0 bytes", p, 0, Want::Ok, Some(0)),
        ("1 byte", p, 1, Want::Ok, Some(1)),
        ("the vector", p, v.len(), Want::Ok, None),
        ("null, 0 bytes", 0, 0, Want::Ok, Some(0)),
        ("null, 1 byte", 0, 1, Want::Ok, Some(1)),
        (
            "unmapped 2^62 bytes",
            HIGH,
            1 << 62,
            Want::Ok,
            Some((1 << 62) / page),
        ),
        ("to the last address", mp, usize::MAX - mp, Want::Ok, None),
        ("last byte", usize::MAX - 1, 1, Want::Ok, Some(1)),
        ("wraps by 1", usize::MAX, 1, Want::Err("wraps"), None),
        ("usize::MAX bytes", p, usize::MAX, Want::Err("wraps"), None),
        (
            "null, usize::MAX",
            0,
            usize::MAX,
            Want::Ok,
            Some(usize::MAX / page + 1),
        ),
    ];
    for (case, addr, len, want, pages) in table {
        // `null, usize::MAX` walks every mapping of the process: quick,
        // unless the process maps terabytes (a sanitizer's shadow memory).
        if case == "null, usize::MAX" && mapped_bytes() > 1 << 40 {
            continue;
        }
        let got = watchdog(case, LIMIT, move || locate(addr as *const u8, len));
        if let (Ok(pl), Some(n)) = (&got, pages) {
            assert_eq!(pl.pages(), n, "case {case}: {pl}");
        }
        if let Ok(pl) = &got {
            assert_eq!(
                pl.pages(),
                len.div_ceil(page).max(pl.pages()),
                "case {case}"
            );
        }
        check(&format!("locate {case}"), want, got);
        // migrate: the same ranges, to a node that exists.
        let got = watchdog(case, LIMIT, move || {
            migrate(addr as *const u8, len, node).map(|p| p.pages())
        });
        match (want, &got) {
            // A range with present pages elsewhere than `node` (libraries
            // shared with other processes cannot move) is Misplaced: a
            // typed error, as documented.
            // The whole address space includes such pages too.
            (Want::Ok, Err(MemError::Misplaced { .. }))
                if pages.is_none() || (addr, len) == (0, usize::MAX) => {}
            _ => check(&format!("migrate {case}"), want, got),
        }
    }
    for (case, n) in [
        ("absent node", common::absent_node(&topo)),
        ("node u32::MAX", NodeId::new(u32::MAX)),
    ] {
        let got = watchdog(case, LIMIT, move || migrate(p as *const u8, 4096, n));
        check(case, Want::Err("does not exist"), got);
    }
    // SAFETY: our mapping; nothing references it.
    unsafe { numakit::sys::mem::munmap(m, page).unwrap() };
}

// ------------------------------------------------------------- CpuSet

#[test]
fn cpuset_ids_and_lists() {
    let max = CpuSet::MAX_CPUS;
    let table: &[(&str, u32, Want)] = &[
        ("0", 0, Want::Ok),
        ("1", 1, Want::Ok),
        ("largest", max - 1, Want::Ok),
        ("smallest refused", max, Want::Err("out of range")),
        ("u32::MAX", u32::MAX, Want::Err("4294967295")),
    ];
    for &(case, id, want) in table {
        let got = watchdog(case, LIMIT, move || {
            let mut s = CpuSet::new();
            let r = s.try_insert(CpuId::new(id));
            (r, s.len())
        });
        let ok = got.0.is_ok();
        check(case, want, got.0);
        assert_eq!(got.1, usize::from(ok), "case {case}: set changed on error");
    }
    let lists: &[(&str, Want)] = &[
        ("", Want::Ok),
        ("0", Want::Ok),
        ("65535", Want::Ok),
        ("0-65535", Want::Ok),
        ("0-65535:65535", Want::Ok),
        ("65536", Want::Err("not a CPU list")),
        ("0-4294967295", Want::Err("not a CPU list")),
        ("4294967295", Want::Err("not a CPU list")),
        ("4294967296", Want::Err("not a CPU list")),
        ("5-2", Want::Err("not a CPU list")),
        ("0-7:0", Want::Err("not a CPU list")),
        ("0-7:4294967295", Want::Ok),
        ("0-7:4294967296", Want::Err("not a CPU list")),
        ("-", Want::Err("not a CPU list")),
        (",", Want::Err("not a CPU list")),
        ("\u{0}", Want::Err("not a CPU list")),
    ];
    for &(s, want) in lists {
        let got = watchdog(s, LIMIT, move || CpuSet::parse_list(s).map(|c| c.len()));
        check(&format!("parse {s:?}"), want, got);
    }
}

// ------------------------------------------------ Topology and ids

#[test]
fn topology_lookups_by_id() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    let table: &[(&str, NodeId, Want)] = &[
        ("node 0", NodeId::new(0), Want::Ok),
        ("first absent", absent, Want::Err("does not exist")),
        ("u32::MAX", NodeId::new(u32::MAX), Want::Err("4294967295")),
    ];
    for &(case, id, want) in table {
        check(case, want, topo.node(id).map(|n| n.id()));
        check(case, want, topo.distance(id, id));
        check(case, want, topo.nodes_by_distance(id));
    }
    assert_eq!(NodeId::new(u32::MAX).get(), u32::MAX);
    assert_eq!(CpuId::new(u32::MAX).get(), u32::MAX);
    check(
        "cpu u32::MAX",
        Want::Err("not online"),
        topo.node_of_cpu(CpuId::new(u32::MAX)),
    );
}

#[test]
fn pinning_to_absent_nodes_and_cpus() {
    let topo = common::topology();
    let node = usable_node(&topo);
    let cpu = topo
        .node(node)
        .unwrap()
        .cpus()
        .intersection(&numakit::sched::allowed_cpus().unwrap())
        .first()
        .unwrap();
    let absent = common::absent_node(&topo);
    let nodes: &[(&str, NodeId, Want)] = &[
        ("usable node", node, Want::Ok),
        ("absent node", absent, Want::Err("does not exist")),
        (
            "node u32::MAX",
            NodeId::new(u32::MAX),
            Want::Err("does not exist"),
        ),
    ];
    for &(case, n, want) in nodes {
        // Each case runs on its own thread: the pin dies with it.
        check(
            case,
            want,
            watchdog(case, LIMIT, move || pin_to_node(n).map(drop)),
        );
    }
    let cpus: &[(&str, CpuId, Want)] = &[
        ("allowed CPU", cpu, Want::Ok),
        (
            "CPU 65536",
            CpuId::new(CpuSet::MAX_CPUS),
            Want::Err("not online"),
        ),
        (
            "CPU u32::MAX",
            CpuId::new(u32::MAX),
            Want::Err("not online"),
        ),
    ];
    for &(case, c, want) in cpus {
        check(
            case,
            want,
            watchdog(case, LIMIT, move || pin_to_cpu(c).map(drop)),
        );
    }
}

// ------------------------------------------------------------- memory

#[test]
fn arena_capacities() {
    let topo = common::topology();
    for node in usable_nodes(&topo) {
        let total = topo.node(node).unwrap().memory_total() as usize;
        let table: &[(&str, usize, Want)] = &[
            ("0 bytes", 0, Want::Err("invalid size")),
            ("1 byte", 1, Want::Ok),
            (
                "more than the node",
                total.saturating_mul(2),
                Want::Err("only"),
            ),
            ("isize::MAX", isize::MAX as usize, Want::Err("invalid size")),
            (
                "isize::MAX + 1",
                isize::MAX as usize + 1,
                Want::Err("invalid size"),
            ),
            ("usize::MAX", usize::MAX, Want::Err("invalid size")),
        ];
        for &(case, cap, want) in table {
            for kind in [PageKind::Normal, PageKind::TransparentHuge] {
                let got = watchdog(case, LIMIT, move || {
                    Arena::builder(node)
                        .capacity(cap)
                        .pages(kind)
                        .populate(Populate::OnDemand)
                        .build()
                        .map(|a| a.capacity())
                });
                check(&format!("{case} {kind:?} node {node}"), want, got);
            }
        }
        let absent = common::absent_node(&topo);
        check(
            "arena absent",
            Want::Err("does not exist"),
            Arena::new(absent, 4096),
        );
        let u32max = NodeId::new(u32::MAX);
        check(
            "arena u32::MAX",
            Want::Err("does not exist"),
            Arena::new(u32max, 4096),
        );
        // Sizes and alignments inside an arena.
        let arena = Arena::new(node, 1 << 20).unwrap();
        let page = numakit::sys::page_size();
        let allocs: &[(&str, usize, usize, Want)] = &[
            ("0 bytes", 0, 1, Want::Ok),
            ("1 byte", 1, 1, Want::Ok),
            ("align 3", 8, 3, Want::Err("power of two")),
            ("align 0", 8, 0, Want::Err("power of two")),
            ("align page", 8, page, Want::Ok),
            ("align 2^63", 8, 1 << 63, Want::Err("")),
            ("align usize::MAX", 8, usize::MAX, Want::Err("power of two")),
            ("usize::MAX bytes", usize::MAX, 1, Want::Err("")),
            ("isize::MAX bytes", isize::MAX as usize, 1, Want::Err("")),
            ("more than remains", 2 << 20, 1, Want::Err("exhausted")),
        ];
        for &(case, size, align, want) in allocs {
            check(case, want, arena.try_alloc_raw(size, align).map(drop));
        }
    }
}

#[test]
fn slab_builder_sizes() {
    let topo = common::topology();
    let node = usable_node(&topo);
    let page = numakit::sys::page_size();
    let chunks: &[(&str, usize, Want)] = &[
        ("chunk 0", 0, Want::Err("at least one page")),
        ("chunk 1", 1, Want::Ok),
        ("chunk page", page, Want::Ok),
        ("chunk 1000 (not a page multiple)", 1000, Want::Ok),
        ("chunk isize::MAX", isize::MAX as usize, Want::Ok),
        (
            "chunk isize::MAX + 1",
            isize::MAX as usize + 1,
            Want::Err("at most"),
        ),
        (
            "chunk usize::MAX - 8192",
            usize::MAX - 8192,
            Want::Err("at most"),
        ),
        ("chunk usize::MAX", usize::MAX, Want::Err("at most")),
    ];
    for &(case, chunk, want) in chunks {
        let got = watchdog(case, LIMIT, move || {
            let slab = SlabBuilder::new(node)
                .capacity(1)
                .max_capacity(1024)
                .chunk_bytes(chunk)
                .build::<u64>()?;
            // Grow to the maximum, then one more: SlabFull, not a panic.
            let boxes: Vec<_> = (0..1024)
                .map(|i| slab.try_alloc(i))
                .collect::<Result<_, _>>()?;
            let full = slab.try_alloc(0);
            assert!(matches!(full, Err(MemError::SlabFull { .. })), "{full:?}");
            drop(boxes);
            Ok::<_, MemError>(slab.len())
        });
        check(case, want, got);
    }
    let caps: &[(&str, usize, Option<usize>, Want)] = &[
        ("capacity 0", 0, None, Want::Err("at least one object")),
        ("capacity 1", 1, None, Want::Ok),
        (
            "max below capacity",
            2,
            Some(1),
            Want::Err("below its capacity"),
        ),
        ("capacity usize::MAX", usize::MAX, None, Want::Err("")),
        ("max usize::MAX", 1, Some(usize::MAX), Want::Err("")),
        (
            "max 2^40 (more than the node)",
            1,
            Some(1 << 40),
            Want::Err(""),
        ),
    ];
    for &(case, cap, max, want) in caps {
        let got = watchdog(case, LIMIT, move || {
            let mut b = SlabBuilder::new(node).capacity(cap);
            if let Some(m) = max {
                b = b.max_capacity(m);
            }
            b.build::<u64>().map(|s| s.len())
        });
        check(case, want, got);
    }
    let raw: &[(&str, usize, usize, Want)] = &[
        ("size 0", 0, 1, Want::Ok),
        ("size 1", 1, 1, Want::Ok),
        ("size usize::MAX", usize::MAX, 8, Want::Err("")),
        ("size isize::MAX", isize::MAX as usize, 8, Want::Err("")),
        ("align 0", 8, 0, Want::Err("power of two")),
        ("align 3", 8, 3, Want::Err("power of two")),
        ("align page", 8, page, Want::Ok),
        ("align 2 pages", 8, 2 * page, Want::Err("at most")),
        ("align 2^63", 8, 1 << 63, Want::Err("at most")),
        ("align usize::MAX", 8, usize::MAX, Want::Err("power of two")),
    ];
    for &(case, size, align, want) in raw {
        let got = watchdog(case, LIMIT, move || {
            SlabBuilder::new(node)
                .capacity(4)
                .build_raw(size, align)
                .map(|s| s.stats().stride)
        });
        check(case, want, got);
    }
    let absent = common::absent_node(&topo);
    let got = SlabBuilder::new(absent)
        .capacity(1)
        .build::<u64>()
        .map(|s| s.len());
    check("slab absent node", Want::Err("does not exist"), got);
}

#[test]
fn node_box_and_heap_nodes() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    for node in usable_nodes(&topo) {
        check("box", Want::Ok, NodeBox::new(node, 1u8).map(|b| *b));
        check("box zst", Want::Ok, NodeBox::new(node, ()).map(|b| *b));
        check("heap", Want::Ok, NodeHeap::new(node).map(|h| h.node()));
    }
    for (case, n) in [("absent", absent), ("u32::MAX", NodeId::new(u32::MAX))] {
        check(
            case,
            Want::Err("does not exist"),
            NodeBox::new(n, 1u8).map(|b| *b),
        );
        check(
            case,
            Want::Err("does not exist"),
            NodeHeap::new(n).map(|h| h.node()),
        );
    }
    let node = usable_node(&topo);
    let heap = NodeHeap::new(node).unwrap();
    let page = numakit::sys::page_size();
    let layouts: &[(&str, usize, usize, Want)] = &[
        ("0 bytes", 0, 1, Want::Ok),
        ("1 byte", 1, 1, Want::Ok),
        ("align page", 8, page, Want::Ok),
        (
            "isize::MAX bytes",
            isize::MAX as usize - page,
            1,
            Want::Err(""),
        ),
    ];
    for &(case, size, align, want) in layouts {
        let layout = std::alloc::Layout::from_size_align(size, align).unwrap();
        let heap = &heap;
        let got = heap.try_alloc_layout(layout);
        if let Ok(p) = got {
            // SAFETY: allocated just above with this layout, not used.
            unsafe { allocator_api2::alloc::Allocator::deallocate(&heap, p, layout) };
        }
        check(case, want, got.map(drop));
    }
}

// -------------------------------------------------------------- pools

#[test]
fn pool_builder_counts() {
    let topo = common::topology();
    let node = usable_node(&topo);
    let max = numakit::sched::pool::MAX_WORKERS_PER_NODE;
    // workers_per_node: exactly n workers (1 to MAX_WORKERS_PER_NODE).
    let fixed: &[(&str, usize, Want)] = &[
        ("0 workers", 0, Want::Err("")),
        ("1 worker", 1, Want::Ok),
        ("max + 1", max + 1, Want::Err("")),
        ("usize::MAX", usize::MAX, Want::Err("")),
    ];
    // max_workers_per_node: a cap on one worker per CPU (at least 1).
    let capped: &[(&str, usize, Want)] = &[
        ("cap 0", 0, Want::Err("")),
        ("cap 1", 1, Want::Ok),
        ("cap max + 1", max + 1, Want::Ok),
        ("cap usize::MAX", usize::MAX, Want::Ok),
    ];
    for (table, per_cpu) in [(fixed, false), (capped, true)] {
        for &(case, n, want) in table {
            let got = watchdog(case, LIMIT, move || {
                let b = NodePool::builder().nodes([node]);
                let b = if per_cpu {
                    b.max_workers_per_node(n)
                } else {
                    b.workers_per_node(n)
                };
                b.build().map(|p| p.shutdown().nodes().len())
            });
            check(case, want, got);
        }
    }
    let nodes: &[(&str, NodeId)] = &[
        ("absent", common::absent_node(&topo)),
        ("u32::MAX", NodeId::new(u32::MAX)),
    ];
    for &(case, n) in nodes {
        let got = watchdog(case, LIMIT, move || {
            NodePool::builder()
                .nodes([n])
                .build()
                .map(|p| p.shutdown().nodes().len())
        });
        check(case, Want::Err("does not exist"), got);
    }
    let stacks: &[(&str, usize, Want)] = &[
        ("stack 0", 0, Want::Ok),
        ("stack 1", 1, Want::Ok),
        ("stack usize::MAX", usize::MAX, Want::Err("")),
    ];
    for &(case, bytes, want) in stacks {
        let got = watchdog(case, LIMIT, move || {
            NodePool::builder()
                .nodes([node])
                .workers_per_node(1)
                .stack_size(bytes)
                .build()
                .map(|p| p.shutdown().nodes().len())
        });
        check(case, want, got);
    }
}

// ----------------------------------------------------------- balancer

#[test]
fn balancer_builder_ranges() {
    type Opt = fn(numakit::sched::BalancerBuilder) -> numakit::sched::BalancerBuilder;
    let table: &[(&str, Opt, Want)] = &[
        (
            "interval 0",
            |b| b.interval(Duration::ZERO),
            Want::Err("below 1 ms"),
        ),
        (
            "interval 1 ms",
            |b| b.interval(Duration::from_millis(1)),
            Want::Ok,
        ),
        ("interval MAX", |b| b.interval(Duration::MAX), Want::Ok),
        ("hysteresis 0", |b| b.hysteresis(0), Want::Err("hysteresis")),
        ("hysteresis 1", |b| b.hysteresis(1), Want::Ok),
        ("hysteresis u32::MAX", |b| b.hysteresis(u32::MAX), Want::Ok),
        (
            "threshold 0.5",
            |b| b.threshold(0.5),
            Want::Err("threshold"),
        ),
        ("threshold 1", |b| b.threshold(1.0), Want::Ok),
        (
            "threshold NaN",
            |b| b.threshold(f64::NAN),
            Want::Err("threshold"),
        ),
        (
            "threshold inf",
            |b| b.threshold(f64::INFINITY),
            Want::Err("threshold"),
        ),
        (
            "min_improvement NaN",
            |b| b.min_improvement(f64::NAN),
            Want::Err("min_improvement"),
        ),
        (
            "min_improvement -0.1",
            |b| b.min_improvement(-0.1),
            Want::Err("min_improvement"),
        ),
        (
            "sample_pages 0",
            |b| b.sample_pages(0),
            Want::Err("sample_pages"),
        ),
        ("sample_pages 1", |b| b.sample_pages(1), Want::Ok),
        (
            "sample_pages max",
            |b| b.sample_pages(numakit::sched::balancer::MAX_SAMPLE_PAGES),
            Want::Ok,
        ),
        (
            "sample_pages max + 1",
            |b| b.sample_pages(numakit::sched::balancer::MAX_SAMPLE_PAGES + 1),
            Want::Err("sample_pages"),
        ),
        (
            "sample_pages usize::MAX",
            |b| b.sample_pages(usize::MAX),
            Want::Err("sample_pages"),
        ),
        (
            "max_actions 0",
            |b| b.max_actions_per_interval(0),
            Want::Err("max_actions"),
        ),
        (
            "max_actions usize::MAX",
            |b| b.max_actions_per_interval(usize::MAX),
            Want::Ok,
        ),
        (
            "max_pages 0",
            |b| b.max_pages_per_interval(0),
            Want::Err("max_pages"),
        ),
        (
            "max_pages usize::MAX",
            |b| b.max_pages_per_interval(usize::MAX),
            Want::Ok,
        ),
        (
            "min_cache_misses u64::MAX",
            |b| b.min_cache_misses(u64::MAX),
            Want::Ok,
        ),
        ("log_capacity 0", |b| b.log_capacity(0), Want::Ok),
        ("log_capacity 1", |b| b.log_capacity(1), Want::Ok),
        (
            "log_capacity usize::MAX",
            |b| b.log_capacity(usize::MAX),
            Want::Ok,
        ),
    ];
    for &(case, opt, want) in table {
        let got = watchdog(case, LIMIT, move || {
            let b = opt(Balancer::builder(BalancePolicy::MovePages));
            b.build().map(|bal| {
                // A few intervals by hand, with a registered range, then
                // stop (must not wait for a long interval).
                let v = vec![1u8; 1 << 16];
                let g = bal.register("hostile");
                g.add_current_thread();
                g.add_memory(v.as_ptr(), v.len()).unwrap();
                for _ in 0..3 {
                    bal.run_interval();
                }
                let n = bal.events().len();
                drop(g);
                bal.stop();
                n
            })
        });
        check(case, want, got);
    }
}

#[test]
fn balancer_memory_ranges() {
    let table: &[(&str, usize, usize, Want)] = &[
        ("0 bytes", 0x1000, 0, Want::Err("empty or wraps")),
        ("1 byte", 0x1000, 1, Want::Ok),
        ("wraps", usize::MAX, 1, Want::Err("empty or wraps")),
        (
            "usize::MAX bytes",
            0x1000,
            usize::MAX,
            Want::Err("empty or wraps"),
        ),
        ("2^62 unmapped", HIGH, 1 << 62, Want::Ok),
    ];
    for &(case, addr, len, want) in table {
        let got = watchdog(case, LIMIT, move || {
            let bal = Balancer::builder(BalancePolicy::MovePages)
                .interval(Duration::from_secs(3600))
                .hysteresis(1)
                .build()?;
            let g = bal.register(case);
            g.add_current_thread();
            g.add_memory(addr as *const u8, len)?;
            // Sampling and (for MovePages) migrating walk the range: they
            // must not take time for its unmapped length.
            for _ in 0..3 {
                bal.run_interval();
            }
            Ok::<_, SchedError>(bal.events().len())
        });
        check(case, want, got);
    }
}

// ---------------------------------------------------- sysfs fixtures

/// A well-formed two-node sysfs tree under a fresh temporary directory;
/// `edit` then breaks it.
struct Tree(PathBuf);

impl Tree {
    fn new(case: &str) -> Tree {
        let root = std::env::temp_dir().join(format!(
            "numakit-hostile-sysfs-{}-{}",
            std::process::id(),
            case.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let _ = std::fs::remove_dir_all(&root);
        let t = Tree(root);
        t.write("devices/system/cpu/online", "0-3\n");
        t.write("devices/system/node/online", "0-1\n");
        for n in 0..2 {
            t.node_files(n, &format!("{}-{}\n", 2 * n, 2 * n + 1), "10 20\n");
        }
        t
    }

    fn node_files(&self, n: u64, cpus: &str, distance: &str) {
        let d = format!("devices/system/node/node{n}");
        self.write(&format!("{d}/cpulist"), cpus);
        self.write(
            &format!("{d}/meminfo"),
            &format!("Node {n} MemTotal:  4096 kB\nNode {n} MemFree:   1024 kB\n"),
        );
        self.write(&format!("{d}/distance"), distance);
        self.write(
            &format!("{d}/hugepages/hugepages-2048kB/nr_hugepages"),
            "4\n",
        );
        self.write(
            &format!("{d}/hugepages/hugepages-2048kB/free_hugepages"),
            "2\n",
        );
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }

    fn fifo(&self, rel: &str) {
        let p = self.path(rel);
        let _ = std::fs::remove_file(&p);
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    fn symlink(&self, rel: &str, target: &Path) {
        let p = self.path(rel);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, p).unwrap();
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const N0: &str = "devices/system/node/node0";

#[test]
fn malformed_sysfs_trees() {
    type Edit = fn(&Tree);
    // (case, edit, outcome: Ok or an error mentioning the text)
    let table: &[(&str, Edit, Want)] = &[
        ("well formed", |_| {}, Want::Ok),
        // meminfo
        (
            "MemTotal overflows bytes",
            |t| {
                t.write(
                    &format!("{N0}/meminfo"),
                    "Node 0 MemTotal: 18014398509481984 kB\nNode 0 MemFree: 1 kB\n",
                )
            },
            Want::Err("does not fit in 64 bits"),
        ),
        (
            "MemTotal u64::MAX kB",
            |t| {
                t.write(
                    &format!("{N0}/meminfo"),
                    "Node 0 MemTotal: 18446744073709551615 kB\nNode 0 MemFree: 1 kB\n",
                )
            },
            Want::Err("does not fit in 64 bits"),
        ),
        (
            "MemTotal past u64",
            |t| {
                t.write(
                    &format!("{N0}/meminfo"),
                    "Node 0 MemTotal: 18446744073709551616 kB\nNode 0 MemFree: 1 kB\n",
                )
            },
            Want::Err("not a number"),
        ),
        (
            "MemFree garbage",
            |t| {
                t.write(
                    &format!("{N0}/meminfo"),
                    "Node 0 MemTotal: 1 kB\nNode 0 MemFree: lots kB\n",
                )
            },
            Want::Err("MemFree"),
        ),
        (
            "meminfo empty",
            |t| t.write(&format!("{N0}/meminfo"), ""),
            Want::Err("MemTotal"),
        ),
        (
            "meminfo missing",
            |t| t.remove(&format!("{N0}/meminfo")),
            Want::Err("cannot read"),
        ),
        (
            "meminfo a FIFO",
            |t| t.fifo(&format!("{N0}/meminfo")),
            Want::Err("not a regular file"),
        ),
        (
            "meminfo /dev/zero",
            |t| t.symlink(&format!("{N0}/meminfo"), Path::new("/dev/zero")),
            Want::Err("not a regular file"),
        ),
        (
            "meminfo a directory",
            |t| {
                t.remove(&format!("{N0}/meminfo"));
                std::fs::create_dir(t.path(&format!("{N0}/meminfo"))).unwrap();
            },
            Want::Err("not a regular file"),
        ),
        (
            "meminfo 2 MiB",
            |t| t.write(&format!("{N0}/meminfo"), &"x".repeat(2 << 20)),
            Want::Err("larger than"),
        ),
        // hugepages
        (
            "hugepages 2^54 kB (bytes overflow)",
            |t| {
                let d = format!("{N0}/hugepages/hugepages-18014398509481984kB");
                t.write(&format!("{d}/nr_hugepages"), "1\n");
                t.write(&format!("{d}/free_hugepages"), "1\n");
            },
            Want::Err("hugepage size"),
        ),
        (
            "hugepages u64::MAX + 1 kB",
            |t| {
                t.write(
                    &format!("{N0}/hugepages/hugepages-18446744073709551616kB/nr_hugepages"),
                    "1\n",
                )
            },
            Want::Err("hugepage size"),
        ),
        (
            "hugepages 0 kB",
            |t| t.write(&format!("{N0}/hugepages/hugepages-0kB/nr_hugepages"), "1\n"),
            Want::Err("hugepage size"),
        ),
        (
            "hugepages 3 kB",
            |t| t.write(&format!("{N0}/hugepages/hugepages-3kB/nr_hugepages"), "1\n"),
            Want::Err("power of two"),
        ),
        (
            "hugepages garbage size",
            |t| {
                t.write(
                    &format!("{N0}/hugepages/hugepages-bigkB/nr_hugepages"),
                    "1\n",
                )
            },
            Want::Err("hugepage size"),
        ),
        (
            "hugepages 1 GiB (largest real)",
            |t| {
                let d = format!("{N0}/hugepages/hugepages-1048576kB");
                t.write(&format!("{d}/nr_hugepages"), "0\n");
                t.write(&format!("{d}/free_hugepages"), "0\n");
            },
            Want::Ok,
        ),
        (
            "hugepages 2^53 kB (largest that fits)",
            |t| {
                let d = format!("{N0}/hugepages/hugepages-9007199254740992kB");
                t.write(&format!("{d}/nr_hugepages"), "0\n");
                t.write(&format!("{d}/free_hugepages"), "0\n");
            },
            Want::Ok,
        ),
        (
            "nr_hugepages past u64",
            |t| {
                t.write(
                    &format!("{N0}/hugepages/hugepages-2048kB/nr_hugepages"),
                    "18446744073709551616\n",
                )
            },
            Want::Err("unsigned integer"),
        ),
        (
            "nr_hugepages empty",
            |t| t.write(&format!("{N0}/hugepages/hugepages-2048kB/nr_hugepages"), ""),
            Want::Err("unsigned integer"),
        ),
        (
            "free_hugepages missing",
            |t| t.remove(&format!("{N0}/hugepages/hugepages-2048kB/free_hugepages")),
            Want::Err("cannot read"),
        ),
        (
            "no hugepages directory",
            |t| t.remove(&format!("{N0}/hugepages")),
            Want::Ok,
        ),
        // node ids
        (
            "online empty",
            |t| t.write("devices/system/node/online", "\n"),
            Want::Err("no node is online"),
        ),
        (
            "online node 4294967295",
            |t| t.write("devices/system/node/online", "0,4294967295\n"),
            Want::Err("not a CPU list"),
        ),
        (
            "online 0-4294967295",
            |t| t.write("devices/system/node/online", "0-4294967295\n"),
            Want::Err("not a CPU list"),
        ),
        (
            "online 5-2",
            |t| t.write("devices/system/node/online", "5-2\n"),
            Want::Err("not a CPU list"),
        ),
        (
            "online garbage",
            |t| t.write("devices/system/node/online", "zero\n"),
            Want::Err("not a CPU list"),
        ),
        (
            "online names a missing node",
            |t| t.write("devices/system/node/online", "0-2\n"),
            Want::Err("expected 3 distances"),
        ),
        (
            "no online file, node4294967295",
            |t| {
                t.remove("devices/system/node/online");
                t.remove("devices/system/node/node1");
                t.node_files(u64::from(u32::MAX), "2-3\n", "20 10\n");
            },
            Want::Ok,
        ),
        (
            "no online file, node4294967296 is not a node",
            |t| {
                t.remove("devices/system/node/online");
                t.remove("devices/system/node/node1");
                t.node_files(1 << 32, "2-3\n", "20 10\n");
                t.write(&format!("{N0}/distance"), "10\n");
            },
            Want::Ok,
        ),
        (
            "no online file, node01 is not a node",
            |t| {
                t.remove("devices/system/node/online");
                std::fs::rename(
                    t.path("devices/system/node/node1"),
                    t.path("devices/system/node/node01"),
                )
                .unwrap();
                t.write(&format!("{N0}/distance"), "10\n");
            },
            Want::Ok,
        ),
        // CPU lists
        (
            "cpu online 0-4294967295",
            |t| t.write("devices/system/cpu/online", "0-4294967295\n"),
            Want::Err("cpu/online"),
        ),
        (
            "cpu online 5-2",
            |t| t.write("devices/system/cpu/online", "5-2\n"),
            Want::Err("cpu/online"),
        ),
        (
            "cpu online missing",
            |t| t.remove("devices/system/cpu/online"),
            Want::Err("cannot read"),
        ),
        (
            "cpu online empty",
            |t| t.write("devices/system/cpu/online", ""),
            Want::Ok,
        ),
        (
            "cpulist 0-4294967295",
            |t| t.write(&format!("{N0}/cpulist"), "0-4294967295\n"),
            Want::Err("node0/cpulist"),
        ),
        (
            "cpulist 65535",
            |t| t.write(&format!("{N0}/cpulist"), "65535\n"),
            Want::Ok,
        ),
        (
            "cpulist 65536",
            |t| t.write(&format!("{N0}/cpulist"), "65536\n"),
            Want::Err("node0/cpulist"),
        ),
        (
            "cpulist empty",
            |t| t.write(&format!("{N0}/cpulist"), ""),
            Want::Ok,
        ),
        (
            "cpulist missing",
            |t| t.remove(&format!("{N0}/cpulist")),
            Want::Err("cannot read"),
        ),
        // distances
        (
            "distance row short",
            |t| t.write(&format!("{N0}/distance"), "10\n"),
            Want::Err("expected 2 distances"),
        ),
        (
            "distance row long",
            |t| t.write(&format!("{N0}/distance"), "10 20 30\n"),
            Want::Err("expected 2 distances"),
        ),
        (
            "distance empty",
            |t| t.write(&format!("{N0}/distance"), ""),
            Want::Err("expected 2 distances"),
        ),
        (
            "distance past u32",
            |t| t.write(&format!("{N0}/distance"), "10 4294967296\n"),
            Want::Err("integers"),
        ),
        (
            "distance garbage",
            |t| t.write(&format!("{N0}/distance"), "10 far\n"),
            Want::Err("integers"),
        ),
        (
            "distance u32::MAX",
            |t| t.write(&format!("{N0}/distance"), "10 4294967295\n"),
            Want::Ok,
        ),
        (
            "distance missing",
            |t| t.remove(&format!("{N0}/distance")),
            Want::Err("cannot read"),
        ),
        // no NUMA directory: the one-node fallback
        (
            "no node directory",
            |t| t.remove("devices/system/node"),
            Want::Ok,
        ),
        (
            "no node directory, bad machine-wide pool",
            |t| {
                t.remove("devices/system/node");
                t.write(
                    "kernel/mm/hugepages/hugepages-18014398509481984kB/nr_hugepages",
                    "1\n",
                );
            },
            Want::Err("hugepage size"),
        ),
    ];
    for &(case, edit, want) in table {
        let tree = Tree::new(case);
        edit(&tree);
        let root = tree.0.clone();
        let got = watchdog(case, Duration::from_secs(20), move || {
            Topology::from_sysfs(&root).map(|t| t.node_ids().collect::<Vec<_>>())
        });
        check(case, want, got);
    }
    // The documented successes, looked at.
    let tree = Tree::new("node u32::MAX");
    tree.remove("devices/system/node/online");
    tree.remove("devices/system/node/node1");
    tree.node_files(u64::from(u32::MAX), "2-3\n", "20 10\n");
    let t = Topology::from_sysfs(&tree.0).unwrap();
    let max = NodeId::new(u32::MAX);
    assert_eq!(t.node_ids().collect::<Vec<_>>(), [NodeId::new(0), max]);
    assert_eq!(t.distance(NodeId::new(0), max).unwrap(), 20);
    assert_eq!(t.nodes_by_distance(max).unwrap(), [max, NodeId::new(0)]);
    assert_eq!(t.node_of_cpu(CpuId::new(3)).unwrap(), max);
    assert_eq!(
        t.node(max).unwrap().hugepages()[0].reserve_path(),
        "/sys/devices/system/node/node4294967295/hugepages/hugepages-2048kB/nr_hugepages"
    );
}

// ------------------------------------------------- user code panicking

/// The kernel id of a thread that has exited.
fn exited_tid() -> libc::pid_t {
    std::thread::spawn(numakit::sys::gettid).join().unwrap()
}

#[test]
fn a_panicking_on_event_callback_is_reported_and_the_balancer_keeps_running() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let balancer = Balancer::builder(BalancePolicy::Observe)
        .interval(Duration::from_millis(5))
        .on_event(move |e| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            panic!("callback panic #{n} on {:?}", e.kind);
        })
        .build()
        .unwrap();
    let group = balancer.register("panicky");
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let t0 = std::time::Instant::now();
        while !done() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{what}: the balancer stopped (status: {})",
                balancer.status()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // An exited thread gives a ThreadGone event at the next interval, on the
    // balancer's own thread.
    group.add_thread(exited_tid());
    wait_for("first panic reported", &|| {
        balancer.status().callback_panics() >= 1
    });
    let status = balancer.status();
    let last = status.last_callback_panic().unwrap();
    assert!(last.contains("callback panic #1 on ThreadGone"), "{last}");
    assert!(status.to_string().contains("callback panicked"), "{status}");
    let logged = balancer.events();
    assert!(
        logged
            .iter()
            .any(|e| e.kind == numakit::sched::balancer::EventKind::Failed
                && e.reason.contains("callback panic #1")),
        "{logged:?}"
    );
    // Still running: the next event reaches the callback again, and
    // intervals go on.
    let intervals = balancer.status().intervals();
    group.add_thread(exited_tid());
    wait_for("second panic reported", &|| {
        balancer.status().callback_panics() >= 2
    });
    wait_for("intervals go on", &|| {
        balancer.status().intervals() > intervals + 2
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(group);
    balancer.stop();
    // Driving an interval by hand: the panic does not reach the caller,
    // which gets the event and the report of the panic.
    let events = watchdog("run_interval", LIMIT, || {
        let balancer = Balancer::builder(BalancePolicy::Observe)
            .interval(Duration::from_secs(3600))
            .on_event(|_| panic!("by hand"))
            .build()
            .unwrap();
        let group = balancer.register("by hand");
        group.add_thread(exited_tid());
        // A joined thread's task may linger in the kernel for a moment:
        // interval until it is seen gone.
        let mut events = Vec::new();
        for _ in 0..2000 {
            events = balancer.run_interval();
            if !events.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(balancer.status().callback_panics(), 1);
        events
    });
    use numakit::sched::balancer::EventKind;
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::ThreadGone, EventKind::Failed],
        "{events:?}"
    );
    assert!(events[1].reason.contains("by hand"), "{events:?}");
}

#[test]
fn balancer_thread_ids() {
    use numakit::sched::balancer::EventKind;
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let table: &[(&str, Option<libc::pid_t>, usize)] = &[
        ("tid 0 (would be the balancer's own thread)", Some(0), 0),
        ("tid -1", Some(-1), 0),
        ("tid i32::MIN", Some(i32::MIN), 0),
        ("tid i32::MAX", Some(i32::MAX), 0),
        ("another process", Some(parent), 0),
        ("the calling thread", None, 1),
    ];
    for &(case, tid, live) in table {
        let got = watchdog(case, LIMIT, move || {
            let bal = Balancer::builder(BalancePolicy::MoveThreads)
                .interval(Duration::from_secs(3600))
                .hysteresis(1)
                .build()
                .unwrap();
            let g = bal.register(case);
            match tid {
                Some(t) => g.add_thread(t),
                None => g.add_current_thread(),
            }
            let events = bal.run_interval();
            let gone = events
                .iter()
                .filter(|e| e.kind == EventKind::ThreadGone)
                .count();
            (gone, bal.status().groups()[0].threads())
        });
        assert_eq!(got, (1 - live, live), "case {case}");
    }
}

#[test]
fn sys_calls_with_edge_values() {
    use numakit::sys::mem as sys;
    let page = numakit::sys::page_size();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let maps: &[(&str, usize, Option<i32>)] = &[
        ("0 bytes", 0, Some(libc::EINVAL)),
        ("1 byte", 1, None),
        ("isize::MAX", isize::MAX as usize, Some(libc::ENOMEM)),
        ("usize::MAX", usize::MAX, Some(libc::ENOMEM)),
    ];
    for &(case, len, errno) in maps {
        match (sys::mmap_anonymous(len, rw, libc::MAP_NORESERVE), errno) {
            // SAFETY: our fresh mapping, nothing references it.
            (Ok(p), None) => unsafe { sys::munmap(p, len).unwrap() },
            (Err(e), Some(want)) => assert_eq!(e.raw_os_error(), Some(want), "mmap {case}"),
            (got, want) => panic!("mmap {case}: {got:?}, wanted errno {want:?}"),
        }
    }
    let p = sys::mmap_anonymous(page, rw, 0).unwrap();
    let mut one = [0u8; 1];
    let mincores: &[(&str, usize, bool)] = &[
        ("0 bytes", 0, true),
        ("1 byte", 1, true),
        ("2 pages, 1-byte vector", 2 * page, false),
        ("usize::MAX, 1-byte vector", usize::MAX, false),
    ];
    for &(case, len, ok) in mincores {
        assert_eq!(sys::mincore(p, len, &mut one).is_ok(), ok, "mincore {case}");
    }
    let mbinds: &[(&str, usize, &[libc::c_ulong], bool)] = &[
        ("usize::MAX bytes", usize::MAX, &[1], false),
        ("empty mask", page, &[], false),
        ("node 63", page, &[1 << 63], false),
        ("node 0", page, &[1], true),
    ];
    for &(case, len, mask, ok) in mbinds {
        let r = sys::mbind(p, len, sys::MPOL_BIND, mask, 0);
        assert_eq!(r.is_ok(), ok, "mbind {case}: {r:?}");
    }
    // The kernel rounds a wrapping length to 0 and succeeds doing nothing:
    // the wrappers refuse it.
    for advice in [sys::MADV_POPULATE_WRITE, sys::MADV_HUGEPAGE] {
        // SAFETY: advice that does not change contents, on our mapping (the
        // call is refused before reaching the kernel anyway).
        let e = unsafe { sys::madvise(p, usize::MAX, advice) }.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
    // move_pages on addresses that are not ours: per-page errors.
    let bogus = [
        std::ptr::null(),
        usize::MAX as *const u8,
        (1usize << 48) as *const u8,
    ];
    let mut status = [0i32; 3];
    sys::move_pages_query(&bogus, &mut status).unwrap();
    assert!(status.iter().all(|&s| s < 0), "{status:?}");
    let mut short = [0i32; 2];
    let e = sys::move_pages_query(&bogus, &mut short).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    let e = sys::move_pages(&bogus, &[0], &mut status, sys::MPOL_MF_MOVE).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    sys::move_pages_query(&[], &mut []).unwrap();
    for (case, node) in [("node 0", 0), ("largest", sys::MAX_MASK_NODES - 1)] {
        assert!(sys::try_node_mask(node).is_ok(), "{case}");
    }
    for (case, node) in [
        ("smallest refused", sys::MAX_MASK_NODES),
        ("u32::MAX", u32::MAX),
    ] {
        let e = sys::try_node_mask(node).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{case}");
    }
    // SAFETY: our mapping, nothing references it.
    unsafe { sys::munmap(p, page).unwrap() };
}

#[test]
fn interleaved_boxes_and_the_local_arena() {
    static EMPTY: [NodeId; 0] = [];
    static ABSENT: [NodeId; 2] = [NodeId::new(0), NodeId::new(u32::MAX)];
    static ZERO: [NodeId; 1] = [NodeId::new(0)];
    check(
        "interleave over none",
        Want::Err(""),
        NodeBox::new_interleaved(&EMPTY, 1u8).map(|b| *b),
    );
    check(
        "interleave with u32::MAX",
        Want::Err("does not exist"),
        NodeBox::new_interleaved(&ABSENT, 1u8).map(|b| *b),
    );
    check(
        "interleave over node 0",
        Want::Ok,
        NodeBox::new_interleaved(&ZERO, 1u8).map(|b| *b),
    );
    // arena_local: an unpinned thread on a multi-node machine is an error,
    // a pinned one gets its node's arena.
    let topo = common::topology();
    let unpinned = watchdog("unpinned", LIMIT, || {
        numakit::mem::arena_local()
            .map(|a| a.node())
            .map_err(|e| e.to_string())
    });
    let multi = numakit::sched::allowed_cpus()
        .unwrap()
        .iter()
        .filter_map(|c| topo.node_of_cpu(c).ok())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    if multi {
        check("unpinned", Want::Err("not pinned"), unpinned);
    } else {
        check("unpinned", Want::Ok, unpinned);
    }
    for node in usable_nodes(&topo) {
        let got = watchdog("pinned", LIMIT, move || {
            let _pin = pin_to_node(node).unwrap();
            numakit::mem::arena_local().map(|a| a.node())
        });
        assert_eq!(got.unwrap(), node);
    }
}
