//! Declared placements at run time: `NodeBox` refuses a `#[numa]` value for
//! another placement (and `new_overriding_placement` says it on purpose),
//! interleaved types and boxes alternate their pages over the nodes, `#[mcs]`
//! fields are locked from threads pinned on the node, generic and enum types
//! land where they say, and `numa_static!` on node 1 is checked page by page.
//!
//! Multi-node claims go through `common::topology()`: in the guests
//! (`NUMAKIT_EXPECT_NODES`) a missing node fails the test, on the host the
//! same tests check the one-node answer (an error naming the node).

mod common;

use numakit::mem::MemError;
use numakit::{numa, numa_static, NodeBox, NodeId, NodePlacement, Placed, Topology};
use std::sync::atomic::{AtomicU64, Ordering};

const PAGE: usize = 4096;

/// The node of every page of `[ptr, ptr + len)`, from `move_pages`.
fn page_nodes(ptr: *const u8, len: usize) -> Vec<i32> {
    let ps = numakit::sys::page_size();
    let start = ptr as usize / ps * ps;
    let end = ptr as usize + len;
    let pages: Vec<*const u8> = (start..end).step_by(ps).map(|a| a as *const u8).collect();
    let mut status = vec![i32::MIN; pages.len()];
    numakit::sys::mem::move_pages_query(&pages, &mut status).expect("move_pages");
    status
}

fn bytes_of<T>(value: &T) -> (*const u8, usize) {
    (std::ptr::from_ref(value).cast(), std::mem::size_of::<T>())
}

/// `nodes` pages round-robin over `set`: every page on a node of the set,
/// consecutive pages on consecutive nodes of the set, every node used.
fn assert_alternates(nodes: &[i32], set: &[u32]) {
    assert!(nodes.len() >= 2 * set.len(), "too few pages: {nodes:?}");
    for &n in nodes {
        assert!(
            set.iter().any(|&s| s as i32 == n),
            "page on node {n}, outside the interleave set {set:?}: {nodes:?}"
        );
    }
    let position = |n: i32| set.iter().position(|&s| s as i32 == n).unwrap();
    for pair in nodes.windows(2) {
        assert_eq!(
            (position(pair[0]) + 1) % set.len(),
            position(pair[1]),
            "pages do not alternate over {set:?}: {nodes:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// A declared node cannot be contradicted.
// ---------------------------------------------------------------------------

/// Declared for node 0; never given to `place` in this binary, so only the
/// start-up record tells `NodeBox` about it.
#[numa(node = 0)]
#[derive(Debug)]
struct NeverPlaced {
    value: u64,
}

/// A `#[numa]` enum, never placed either.
#[numa(node = 0)]
#[derive(Debug)]
enum Signal {
    Stop,
    Go(u64),
}

#[test]
fn node_box_refuses_another_node_for_a_declared_type() {
    let topo = common::topology();
    // Whatever exists: the declaration is checked first, and named.
    for node in [1u32, 2, u32::MAX] {
        match NodeBox::new(node, NeverPlaced { value: 1 }) {
            Err(MemError::PlacementContradicted {
                type_name,
                declared,
                requested,
            }) => {
                assert!(type_name.ends_with("NeverPlaced"), "{type_name}");
                assert_eq!(declared, NodePlacement::Node(NodeId::new(0)));
                assert_eq!(requested, NodePlacement::Node(NodeId::new(node)));
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
    let e = NodeBox::new(1, Signal::Go(3))
        .map(|s| matches!(*s, Signal::Go(3)))
        .unwrap_err();
    let msg = e.to_string();
    for part in ["Signal", "node 0", "node 1", "new_overriding_placement"] {
        assert!(msg.contains(part), "{part:?} missing in: {msg}");
    }
    // Interleaving a node-0 type is a contradiction too, even over node 0.
    static ZERO: [NodeId; 1] = [NodeId::new(0)];
    assert!(matches!(
        NodeBox::new_interleaved(&ZERO, NeverPlaced { value: 2 }),
        Err(MemError::PlacementContradicted { .. })
    ));
    // The declared node is accepted, and the value is there.
    let b = NodeBox::new(0, NeverPlaced { value: 3 }).unwrap();
    assert_eq!(b.value, 3);
    assert!(b.verify().unwrap().is_all_on(NodeId::new(0)));
    let s = NodeBox::new(0, Signal::Stop).unwrap();
    assert!(matches!(*s, Signal::Stop));
    // The escape hatch, said explicitly: on node 1 where it exists.
    let over = NodeBox::new_overriding_placement(
        NodePlacement::Node(NodeId::new(0)),
        NeverPlaced { value: 4 },
    )
    .unwrap();
    assert_eq!(over.value, 4);
    match NodeBox::new_overriding_placement(
        NodePlacement::Node(NodeId::new(1)),
        NeverPlaced { value: 5 },
    ) {
        Ok(b) => {
            assert!(topo.num_nodes() > 1);
            assert!(b.verify().unwrap().is_all_on(NodeId::new(1)));
        }
        Err(e) => {
            assert_eq!(topo.num_nodes(), 1, "{e}");
            assert!(e.to_string().contains("node 1 does not exist"), "{e}");
        }
    }
    // Types without a declaration go anywhere, as before.
    assert_eq!(*NodeBox::new(0, 7u64).unwrap(), 7);
}

/// A value moved out of its box is an ordinary value: boxing it again
/// elsewhere is refused all the same.
#[test]
fn a_value_taken_out_of_its_box_keeps_its_declaration() {
    let placed = Table::place(TableInit { rows: [1; 512] }).unwrap();
    let value = placed.into_inner();
    assert!(matches!(
        NodeBox::new(1, value),
        Err(MemError::PlacementContradicted { .. })
    ));
}

#[numa(node = 0)]
struct Table {
    rows: [u64; 512],
}

#[numa(node = 0)]
struct Tagged {
    tag: u64,
}

numa_static! {
    /// A static whose type says node 0, declared on node 1.
    #[numa(node = 1)]
    static CONTRADICTED: Tagged = Tagged { tag: 9 };
}

#[test]
fn numa_static_cannot_contradict_its_type() {
    let e = CONTRADICTED.get().map(|t| t.tag).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("Tagged") && msg.contains("node 0"), "{msg}");
}

/// Generic instances are recorded by `place`: once `Holder::<u32>` has been
/// placed, its values cannot go elsewhere.
#[numa(node = 0)]
struct Holder<T> {
    item: T,
}

#[test]
fn generic_instances_are_checked_once_placed() {
    let h = Holder::place(HolderInit { item: 5u32 }).unwrap();
    assert_eq!(h.item, 5);
    assert!(h.verify().unwrap().is_all_on(NodeId::new(0)));
    assert!(matches!(
        NodeBox::new(1, Holder { item: 6u32 }),
        Err(MemError::PlacementContradicted { .. })
    ));
    assert_eq!(NodeBox::new(0, Holder { item: 7u32 }).unwrap().item, 7);
}

// ---------------------------------------------------------------------------
// Interleaving: `#[numa(interleave = [..])]` and `NodeBox::new_interleaved`.
// ---------------------------------------------------------------------------

const SPREAD_PAGES: usize = 16;

#[numa(interleave = [0, 1])]
struct SpreadTwo {
    bytes: [u8; SPREAD_PAGES * PAGE],
}

#[numa(interleave = [0, 1, 2, 3])]
struct SpreadFour {
    bytes: [u8; SPREAD_PAGES * PAGE],
}

/// Whether every node of `set` exists and has memory; when not, `err` (the
/// refusal to place there) must name the reason: a missing node, or one
/// without memory (the 4-node guest has a memoryless node 3).
fn can_interleave(topo: &Topology, set: &[u32], err: Option<String>) -> bool {
    for &n in set {
        match topo.node(NodeId::new(n)) {
            Err(_) => {
                let e = err.expect("placed over a node that does not exist");
                assert!(e.contains(&format!("node {n} does not exist")), "{e}");
                return false;
            }
            Ok(node) if !node.has_memory() => {
                let e = err.expect("placed over a memoryless node");
                assert!(e.contains("no memory"), "{e}");
                return false;
            }
            Ok(_) => {}
        }
    }
    if let Some(e) = err {
        panic!("nodes {set:?} exist with memory, yet placing failed: {e}");
    }
    true
}

#[test]
fn interleaved_struct_alternates_pages_over_two_nodes() {
    let topo = common::topology();
    let placed = SpreadTwo::place(SpreadTwoInit {
        bytes: [3; SPREAD_PAGES * PAGE],
    });
    let err = placed.as_ref().err().map(ToString::to_string);
    if can_interleave(&topo, &[0, 1], err) {
        let b = placed.unwrap();
        assert_eq!(b.bytes[SPREAD_PAGES * PAGE - 1], 3);
        let (ptr, len) = bytes_of(&b.bytes);
        assert_alternates(&page_nodes(ptr, len), &[0, 1]);
        assert_eq!(b.interleave_nodes(), &[NodeId::new(0), NodeId::new(1)]);
        b.verify().unwrap();
    }
}

#[test]
fn interleaved_struct_alternates_pages_over_four_nodes() {
    let topo = common::topology();
    let placed = SpreadFour::place(SpreadFourInit {
        bytes: [4; SPREAD_PAGES * PAGE],
    });
    let err = placed.as_ref().err().map(ToString::to_string);
    if can_interleave(&topo, &[0, 1, 2, 3], err) {
        let b = placed.unwrap();
        let (ptr, len) = bytes_of(&b.bytes);
        assert_alternates(&page_nodes(ptr, len), &[0, 1, 2, 3]);
    }
}

/// Three nodes, for guests where a fourth has no memory (or is missing).
#[numa(interleave = [0, 1, 2])]
struct SpreadThree {
    bytes: [u8; SPREAD_PAGES * PAGE],
}

#[test]
fn interleaved_struct_alternates_pages_over_three_nodes() {
    let topo = common::topology();
    let placed = SpreadThree::place(SpreadThreeInit {
        bytes: [6; SPREAD_PAGES * PAGE],
    });
    let err = placed.as_ref().err().map(ToString::to_string);
    if can_interleave(&topo, &[0, 1, 2], err) {
        let b = placed.unwrap();
        let (ptr, len) = bytes_of(&b.bytes);
        // 16 pages over 3 nodes: whole rounds and a partial one.
        assert_alternates(&page_nodes(ptr, len), &[0, 1, 2]);
    }
}

#[test]
fn new_interleaved_alternates_pages_over_every_node_with_memory() {
    let topo = common::topology();
    let all: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id())
        .collect();
    if common::expected_nodes().is_some_and(|n| n > 1) {
        // Multi-node guests give memory to at least two nodes (some have
        // memoryless ones), so this cannot pass by finding one.
        assert!(all.len() >= 2, "{all:?}");
    }
    let set: &'static [NodeId] = Box::leak(all.clone().into_boxed_slice());
    let b = NodeBox::new_interleaved(set, [5u8; SPREAD_PAGES * PAGE]).unwrap();
    let (ptr, len) = bytes_of(&*b);
    let ids: Vec<u32> = all.iter().map(|n| n.get()).collect();
    let nodes = page_nodes(ptr, len);
    assert_alternates(&nodes, &ids);
    assert_eq!(b.interleave_nodes(), set);
    // On every node of the set, the same number of pages (±1).
    for &id in &ids {
        let on = nodes.iter().filter(|&&n| n == id as i32).count();
        assert!(on.abs_diff(SPREAD_PAGES / ids.len()) <= 1, "{nodes:?}");
    }
}

/// A value of an interleaved type may be boxed by hand over the same set (in
/// any order), never bound to one of its nodes.
#[test]
fn interleaved_type_is_boxed_only_over_its_set() {
    let topo = common::topology();
    static ONE_ZERO: [NodeId; 2] = [NodeId::new(1), NodeId::new(0)];
    static ZERO: [NodeId; 1] = [NodeId::new(0)];
    let value = || SpreadTwo {
        bytes: [7; SPREAD_PAGES * PAGE],
    };
    assert!(matches!(
        NodeBox::new(0, value()),
        Err(MemError::PlacementContradicted { .. })
    ));
    assert!(matches!(
        NodeBox::new_interleaved(&ZERO, value()),
        Err(MemError::PlacementContradicted { .. })
    ));
    let boxed = NodeBox::new_interleaved(&ONE_ZERO, value());
    let err = boxed.as_ref().err().map(ToString::to_string);
    if can_interleave(&topo, &[0, 1], err) {
        let b = boxed.unwrap();
        let (ptr, len) = bytes_of(&b.bytes);
        let nodes = page_nodes(ptr, len);
        assert!(nodes.iter().all(|&n| n == 0 || n == 1), "{nodes:?}");
        assert!(nodes.contains(&0) && nodes.contains(&1), "{nodes:?}");
    }
}

/// A field interleaved over the same set as its struct (in another order)
/// lives where the struct lives: accepted, and placed with it.
#[numa(interleave = [0, 1])]
struct SameSet {
    #[numa(interleave = [1, 0])]
    part: [u8; 8 * PAGE],
    rest: [u8; 8 * PAGE],
}

#[test]
fn field_with_its_structs_interleave_set_is_placed_with_it() {
    let topo = common::topology();
    static BOTH: [NodeId; 2] = [NodeId::new(0), NodeId::new(1)];
    assert_eq!(
        <SameSet as Placed>::PLACEMENT,
        NodePlacement::Interleave(&BOTH)
    );
    let placed = SameSet::place(SameSetInit {
        part: [1; 8 * PAGE],
        rest: [2; 8 * PAGE],
    });
    let err = placed.as_ref().err().map(ToString::to_string);
    if can_interleave(&topo, &[0, 1], err) {
        let b = placed.unwrap();
        assert_eq!((b.part[0], b.rest[0]), (1, 2));
        let (ptr, len) = bytes_of(&*b);
        assert_alternates(&page_nodes(ptr, len), &[0, 1]);
    }
}

// ---------------------------------------------------------------------------
// #[mcs] fields, locked from threads pinned on the node.
// ---------------------------------------------------------------------------

#[numa(node = 0)]
struct LockedOnZero {
    #[mcs]
    total: u64,
    #[mcs]
    log: Vec<u32>,
    plain: AtomicU64,
}

#[numa(node = 1)]
struct LockedOnOne {
    #[mcs]
    total: u64,
}

const THREADS: u32 = 4;
const ROUNDS: u64 = 2_000;

#[test]
fn mcs_fields_are_locked_from_threads_on_the_node() {
    let shared = LockedOnZero::place(LockedOnZeroInit {
        total: 0,
        log: Vec::new(),
        plain: AtomicU64::new(0),
    })
    .unwrap();
    assert!(shared.verify().unwrap().is_all_on(NodeId::new(0)));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let shared = &shared;
            s.spawn(move || {
                let _pin = numakit::sched::pin_to_node(0).unwrap();
                assert_eq!(numakit::current_node().unwrap(), NodeId::new(0));
                for _ in 0..ROUNDS {
                    *shared.total.lock() += 1;
                    shared.plain.fetch_add(1, Ordering::Relaxed);
                }
                shared.log.lock().push(t);
            });
        }
    });
    assert_eq!(*shared.total.lock(), u64::from(THREADS) * ROUNDS);
    assert_eq!(
        shared.plain.load(Ordering::Relaxed),
        u64::from(THREADS) * ROUNDS
    );
    let mut log = shared.log.lock().clone();
    log.sort_unstable();
    assert_eq!(log, (0..THREADS).collect::<Vec<_>>());
}

#[test]
fn mcs_fields_on_node_one_are_locked_from_its_threads() {
    let topo = common::topology();
    let placed = LockedOnOne::place(LockedOnOneInit { total: 0 });
    if topo.num_nodes() < 2 {
        let e = placed.map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("node 1 does not exist"), "{e}");
        return;
    }
    let shared = placed.unwrap();
    assert!(shared.verify().unwrap().is_all_on(NodeId::new(1)));
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let shared = &shared;
            s.spawn(move || {
                let _pin = numakit::sched::pin_to_node(1).unwrap();
                assert_eq!(numakit::current_node().unwrap(), NodeId::new(1));
                for _ in 0..ROUNDS {
                    *shared.total.lock() += 1;
                }
            });
        }
    });
    assert_eq!(*shared.total.lock(), u64::from(THREADS) * ROUNDS);
}

// ---------------------------------------------------------------------------
// Generic and const-generic structs, enums.
// ---------------------------------------------------------------------------

#[numa(node = N)]
struct Shard<const N: u32, T: Copy> {
    items: [T; 8],
    #[mcs]
    count: usize,
}

#[test]
fn const_generic_struct_lands_on_its_instances_node() {
    let topo = common::topology();
    let zero = Shard::<0, u64>::place(ShardInit {
        items: [9; 8],
        count: 1,
    })
    .unwrap();
    assert_eq!((zero.items[7], *zero.count.lock()), (9, 1));
    assert!(zero.verify().unwrap().is_all_on(NodeId::new(0)));
    assert_eq!(
        <Shard<1, u8> as Placed>::PLACEMENT,
        NodePlacement::Node(NodeId::new(1))
    );
    match Shard::<1, u8>::place(ShardInit {
        items: [2; 8],
        count: 0,
    }) {
        Ok(one) => {
            assert!(topo.num_nodes() > 1);
            assert!(one.verify().unwrap().is_all_on(NodeId::new(1)));
            assert_eq!(one.items, [2; 8]);
        }
        Err(e) => {
            assert_eq!(topo.num_nodes(), 1, "{e}");
            assert!(e.to_string().contains("node 1 does not exist"), "{e}");
        }
    }
}

#[numa(node = 1)]
#[derive(Debug, PartialEq)]
enum Command {
    Halt,
    Load { addr: u64, len: u32 },
}

#[test]
fn enum_is_placed_from_a_value() {
    let topo = common::topology();
    match Command::place(Command::Load { addr: 64, len: 8 }) {
        Ok(c) => {
            assert!(topo.num_nodes() > 1);
            assert_eq!(*c, Command::Load { addr: 64, len: 8 });
            assert!(c.verify().unwrap().is_all_on(NodeId::new(1)));
        }
        Err(e) => {
            assert_eq!(topo.num_nodes(), 1, "{e}");
            assert!(e.to_string().contains("node 1 does not exist"), "{e}");
        }
    }
    assert!(matches!(
        NodeBox::new(0, Command::Halt),
        Err(MemError::PlacementContradicted { .. })
    ));
}

// ---------------------------------------------------------------------------
// numa_static! on node 1, page by page.
// ---------------------------------------------------------------------------

numa_static! {
    /// Eight pages on node 1.
    #[numa(node = 1)]
    static ON_ONE_PAGES: [u64; 4096] = [11; 4096];
}

#[test]
fn numa_static_on_node_one_is_there_page_by_page() {
    let topo = common::topology();
    match ON_ONE_PAGES.get() {
        Ok(v) => {
            assert!(topo.num_nodes() > 1);
            assert!(v.iter().all(|&x| x == 11));
            let (ptr, len) = bytes_of(v);
            let nodes = page_nodes(ptr, len);
            assert_eq!(nodes.len(), len / PAGE);
            assert!(nodes.iter().all(|&n| n == 1), "{nodes:?}");
        }
        Err(e) => {
            assert_eq!(topo.num_nodes(), 1, "{e}");
            assert!(e.to_string().contains("node 1 does not exist"), "{e}");
        }
    }
}
