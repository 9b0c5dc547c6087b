//! `numakit::mem::Local`: an `Allocator` that allocates on the caller's
//! node from the node's shared heap (`NodeHeap::of`). Property tests of
//! allocate / free / grow / shrink sequences against a model of the live
//! blocks (any size and alignment, blocks freed by other threads),
//! collections of drop-counting elements, hostile layouts, and in the
//! guests: a thread pinned to each node allocates there (`move_pages`
//! proves it), and a thread on a memoryless node gets `AllocError`, not
//! another node's memory.

mod common;

use allocator_api2::alloc::{AllocError, Allocator};
use allocator_api2::boxed::Box as ABox;
use allocator_api2::vec::Vec as AVec;
use numakit::mem::{Local, MemError, NodeHeap};
use numakit::sched::Pin;
use numakit::NodeId;
use proptest::prelude::*;
use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align_log: u32,
    },
    Free(usize),
    Resize(usize, usize),
    /// Hand the block to another thread, which frees it.
    FreeElsewhere(usize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..=64,
        3 => 65usize..=1024,
        2 => 1025usize..=(32 << 10),
        // The classes above 32 KiB (to 1 MiB), their edges and the blocks
        // past them, which have mappings of their own (resized by mremap).
        2 => (32usize << 10) + 1..=(1 << 20),
        1 => proptest::sample::select(vec![
            32usize << 10,
            (32 << 10) + 1,
            1 << 20,
            (1 << 20) + 1,
            (2 << 20) + 1,
        ]),
        1 => (1usize << 20) + 1..=(3 << 20),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (size(), prop_oneof![6 => 0u32..=4, 1 => 5u32..=13])
            .prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
        3 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Resize(i, s)),
        1 => any::<usize>().prop_map(Op::FreeElsewhere),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Live {
    addr: usize,
    len: usize,
    layout: Layout,
    fill: u8,
}

fn fill(b: &Live) {
    // SAFETY: a live block of `len` usable bytes.
    unsafe { std::ptr::write_bytes(b.addr as *mut u8, b.fill, b.len) };
}

fn check(b: &Live, upto: usize) -> Result<(), TestCaseError> {
    // SAFETY: a live block of at least `upto` bytes, written with `fill`.
    let bytes = unsafe { std::slice::from_raw_parts(b.addr as *const u8, upto) };
    prop_assert!(
        bytes.iter().all(|&x| x == b.fill),
        "block {b:?} was overwritten"
    );
    Ok(())
}

fn no_overlap(live: &[Live]) -> Result<(), TestCaseError> {
    let mut by_addr: BTreeMap<usize, usize> = BTreeMap::new();
    for b in live.iter().filter(|b| b.len > 0) {
        by_addr.insert(b.addr, b.len);
    }
    let mut end = 0;
    for (&a, &l) in &by_addr {
        prop_assert!(a >= end, "blocks overlap at {a:#x}");
        end = a + l;
    }
    Ok(())
}

fn checked_alloc(layout: Layout, fill_with: u8) -> Result<Live, TestCaseError> {
    let p = Local
        .allocate(layout)
        .map_err(|_| TestCaseError::fail(format!("allocation of {layout:?} failed")))?;
    let addr = p.cast::<u8>().as_ptr() as usize;
    prop_assert_eq!(addr % layout.align(), 0);
    prop_assert!(p.len() >= layout.size());
    let b = Live {
        addr,
        len: p.len(),
        layout,
        fill: fill_with,
    };
    fill(&b);
    Ok(b)
}

/// Pin the calling test thread (and so the threads it spawns, which
/// inherit its CPUs) to a node with memory: `Local` fails, by design, on a
/// thread that runs on a memoryless node, which an unpinned thread may.
fn pin_to_a_node_with_memory() -> numakit::sched::PinGuard {
    let topo = common::topology();
    let node = topo
        .nodes()
        .iter()
        .find(|n| n.has_memory() && !n.cpus().is_empty())
        .expect("a node with memory and CPUs")
        .id();
    let guard = numakit::sched::pin_to_node(node).expect("pin");
    Local::refresh();
    guard
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn local_against_a_model(ops in proptest::collection::vec(op(), 1..120)) {
        let _pin = pin_to_a_node_with_memory();
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Layout)>();
        let freer = std::thread::spawn(move || {
            for (addr, layout) in rx {
                // SAFETY: a live block of `Local` for `layout`, handed over.
                unsafe { Local.deallocate(NonNull::new(addr as *mut u8).unwrap(), layout) };
            }
        });
        let mut live: Vec<Live> = Vec::new();
        let mut next_fill = 1u8;
        for op in ops {
            next_fill = next_fill.wrapping_add(1).max(1);
            match op {
                Op::Alloc { size, align_log } => {
                    let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                    live.push(checked_alloc(layout, next_fill)?);
                }
                Op::Free(i) if !live.is_empty() => {
                    let b = live.swap_remove(i % live.len());
                    check(&b, b.len)?;
                    // SAFETY: a live block of `Local` for its layout.
                    unsafe { Local.deallocate(NonNull::new(b.addr as *mut u8).unwrap(), b.layout) };
                }
                Op::FreeElsewhere(i) if !live.is_empty() => {
                    let b = live.swap_remove(i % live.len());
                    check(&b, b.len)?;
                    tx.send((b.addr, b.layout)).unwrap();
                }
                Op::Resize(i, size) if !live.is_empty() => {
                    let i = i % live.len();
                    let old = live[i];
                    let new = Layout::from_size_align(size, old.layout.align()).unwrap();
                    let p = NonNull::new(old.addr as *mut u8).unwrap();
                    // SAFETY: a live block of `Local` for `old.layout`; the
                    // sizes are in the order grow/shrink require.
                    let r = unsafe {
                        if size >= old.layout.size() {
                            Local.grow(p, old.layout, new)
                        } else {
                            Local.shrink(p, old.layout, new)
                        }
                    };
                    let r = r.map_err(|_| TestCaseError::fail(format!("resize to {new:?} failed")))?;
                    let moved = Live {
                        addr: r.cast::<u8>().as_ptr() as usize,
                        len: r.len(),
                        layout: new,
                        fill: old.fill,
                    };
                    prop_assert_eq!(moved.addr % new.align(), 0);
                    prop_assert!(moved.len >= size);
                    check(&moved, size.min(old.layout.size()))?;
                    live[i] = Live { fill: next_fill, ..moved };
                    fill(&live[i]);
                }
                _ => {}
            }
            no_overlap(&live)?;
        }
        for b in live.drain(..) {
            check(&b, b.len)?;
            // SAFETY: a live block of `Local` for its layout.
            unsafe { Local.deallocate(NonNull::new(b.addr as *mut u8).unwrap(), b.layout) };
        }
        drop(tx);
        freer.join().unwrap();
    }

    #[test]
    fn a_vec_of_counted_elements_in_local_drops_each_once(
        ops in proptest::collection::vec((0u8..5, 0usize..300), 1..80)
    ) {
        let _pin = pin_to_a_node_with_memory();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut made = 0usize;
        let mut model: Vec<usize> = Vec::new();
        let mut v: AVec<Counted, Local> = AVec::new_in(Local);
        for (kind, n) in ops {
            match kind {
                0 => {
                    for _ in 0..n {
                        v.push(Counted(made, Arc::clone(&drops)));
                        model.push(made);
                        made += 1;
                    }
                }
                1 => {
                    let k = n.min(v.len());
                    v.truncate(v.len() - k);
                    model.truncate(model.len() - k);
                }
                2 => v.shrink_to_fit(),
                3 => v.reserve(n * 7),
                _ => {
                    // Move the vector to another thread and back.
                    v = std::thread::spawn(move || v).join().unwrap();
                }
            }
            prop_assert_eq!(v.iter().map(|c| c.0).collect::<Vec<_>>(), model.clone());
            prop_assert_eq!(drops.load(Ordering::SeqCst), made - model.len());
        }
        // Freed on another thread.
        std::thread::spawn(move || drop(v)).join().unwrap();
        prop_assert_eq!(drops.load(Ordering::SeqCst), made);
    }
}

#[derive(Debug)]
struct Counted(usize, Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn boxes_of_counted_values_drop_once_wherever_they_are_freed() {
    let _pin = pin_to_a_node_with_memory();
    let drops = Arc::new(AtomicUsize::new(0));
    let boxes: Vec<ABox<Counted, Local>> = (0..1000)
        .map(|i| ABox::new_in(Counted(i, Arc::clone(&drops)), Local))
        .collect();
    let (mine, theirs): (Vec<_>, Vec<_>) = boxes.into_iter().partition(|b| b.0 % 2 == 0);
    std::thread::spawn(move || drop(theirs)).join().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 500);
    drop(mine);
    assert_eq!(drops.load(Ordering::SeqCst), 1000);
}

#[test]
fn hostile_layouts_are_alloc_errors() {
    let _pin = pin_to_a_node_with_memory();
    let max = isize::MAX as usize;
    for (size, align) in [
        (1usize, 1usize << 40),
        (1, 1 << 62),
        (max - 15, 1),
        (max, 1),
        (max & !((1 << 20) - 1), 1 << 20),
        (1 << 50, 8),
    ] {
        let layout = Layout::from_size_align(size, align).unwrap();
        assert_eq!(Local.allocate(layout), Err(AllocError), "{layout:?}");
        assert_eq!(Local.allocate_zeroed(layout), Err(AllocError), "{layout:?}");
    }
    // 0 and 1 byte, alignment 1 and the largest a class serves.
    for (size, align) in [(0usize, 1usize), (0, 1 << 30), (1, 1), (1, 4096), (1, 8192)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        let p = Local.allocate(layout).unwrap();
        assert!(p.len() >= size);
        assert_eq!(p.cast::<u8>().as_ptr() as usize % align, 0);
        // SAFETY: from allocate, for this layout.
        unsafe { Local.deallocate(p.cast(), layout) };
    }
    // Growing to a hostile size fails and leaves the block usable.
    let small = Layout::from_size_align(64, 8).unwrap();
    let p = Local.allocate(small).unwrap().cast::<u8>();
    // SAFETY: a fresh block of 64 bytes.
    unsafe { p.as_ptr().write_bytes(9, 64) };
    let huge = Layout::from_size_align(max - 7, 8).unwrap();
    // SAFETY: `p` is a live block for `small`; huge >= small.
    assert!(unsafe { Local.grow(p, small, huge) }.is_err());
    // SAFETY: still live (a failed grow keeps it).
    unsafe {
        assert!(std::slice::from_raw_parts(p.as_ptr(), 64)
            .iter()
            .all(|&b| b == 9));
        Local.deallocate(p, small);
    }
    // A vector asked for an impossible capacity reports it.
    let mut v: AVec<u64, Local> = AVec::new_in(Local);
    assert!(v.try_reserve(usize::MAX / 8).is_err());
    assert!(v.try_reserve(1 << 55).is_err());
    v.push(1);
    assert_eq!(v[0], 1);
}

#[test]
fn node_heap_of_is_the_nodes_shared_heap_or_a_typed_error() {
    let topo = common::topology();
    for node in topo.nodes() {
        let r = NodeHeap::of(node.id());
        if node.has_memory() {
            let heap = r.unwrap();
            assert_eq!(heap.node(), node.id());
            assert!(std::ptr::eq(heap, NodeHeap::of(node.id()).unwrap()));
        } else {
            match r {
                Err(MemError::MemorylessNode {
                    node: n,
                    with_memory,
                }) => {
                    assert_eq!(n, node.id());
                    assert!(!with_memory.is_empty());
                }
                other => panic!("node {}: {other:?}", node.id()),
            }
        }
    }
    for bad in [common::absent_node(&topo), NodeId::new(u32::MAX)] {
        assert!(
            matches!(NodeHeap::of(bad), Err(MemError::Topology(_))),
            "{bad}"
        );
    }
}

/// On a thread pinned to `node`: allocate through `Local` and report where
/// the blocks are, or the error.
fn allocate_on(node: NodeId, bind: bool) -> Result<Vec<(usize, usize)>, String> {
    std::thread::spawn(move || {
        let _pin = Pin::node(node).bind_memory(bind).apply().expect("pin");
        let heap = Local::heap().map_err(|e| format!("heap: {e}"))?;
        assert_eq!(heap.node(), node);
        let mut v: AVec<u64, Local> = AVec::new_in(Local);
        v.try_reserve(100_000).map_err(|e| format!("vec: {e:?}"))?;
        v.extend(0..100_000u64);
        let small = ABox::try_new_in([1u8; 48], Local).map_err(|e| format!("box: {e:?}"))?;
        let mut map = hashbrown::HashMap::new_in(Local);
        for i in 0..1000u32 {
            map.insert(i, i);
        }
        let ranges = vec![
            (v.as_ptr() as usize, v.len() * 8),
            (&*small as *const [u8; 48] as usize, 48),
        ];
        for &(addr, len) in &ranges {
            let here = numakit::mem::locate(addr as *const u8, len).map_err(|e| e.to_string())?;
            if !here.is_all_on(node) {
                return Err(format!(
                    "{len} bytes at {addr:#x} are not on node {node}: {here:?}"
                ));
            }
        }
        Ok(ranges)
    })
    .join()
    .expect("the pinned thread")
}

#[test]
fn a_thread_pinned_to_each_node_allocates_there_and_memoryless_nodes_fail() {
    let topo = common::topology();
    let allowed = numakit::sched::allowed_cpus().unwrap();
    let mut on_memory = 0;
    for node in topo.nodes() {
        if node.cpus().is_empty() || !node.cpus().difference(&allowed).is_empty() {
            continue;
        }
        let r = allocate_on(node.id(), node.has_memory());
        if node.has_memory() {
            r.unwrap();
            on_memory += 1;
        } else {
            // No fallback: the heap lookup names the memoryless node.
            let e = r.unwrap_err();
            assert!(e.starts_with("heap: "), "{e}");
            assert!(
                e.contains(&format!("node {} has no memory", node.id())),
                "{e}"
            );
            let id = node.id();
            let alloc = std::thread::spawn(move || {
                let _pin = Pin::node(id).bind_memory(false).apply().expect("pin");
                (
                    Local.allocate(Layout::new::<u64>()).is_err(),
                    AVec::<u8, Local>::new_in(Local).try_reserve(1).is_err(),
                )
            })
            .join()
            .unwrap();
            assert_eq!(alloc, (true, true));
        }
    }
    if let Some(n) = common::expected_nodes() {
        let expect = topo
            .nodes()
            .iter()
            .filter(|n| n.has_memory() && !n.cpus().is_empty())
            .count();
        assert_eq!(on_memory, expect, "of {n} nodes");
        assert!(on_memory >= 2.min(n));
    }
    assert!(on_memory >= 1);
}

#[test]
fn blocks_freed_on_another_node_go_back_to_their_heap() {
    let topo = common::topology();
    let nodes: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory() && !n.cpus().is_empty())
        .map(|n| n.id())
        .collect();
    let (home, away) = (nodes[0], *nodes.last().unwrap());
    let heap = NodeHeap::of(home).unwrap();
    let counts = || {
        let s = heap.stats();
        let frees: u64 = s.classes.iter().map(|c| c.frees).sum();
        let remote: u64 = s.classes.iter().map(|c| c.remote_frees).sum();
        (frees, remote)
    };
    let v = std::thread::spawn(move || {
        let _pin = Pin::node(home).apply().unwrap();
        let v: Vec<ABox<[u8; 200], Local>> =
            (0..500).map(|_| ABox::new_in([3u8; 200], Local)).collect();
        v
    })
    .join()
    .unwrap();
    for b in &v {
        let here = numakit::mem::locate((&**b as *const [u8; 200]).cast(), 200).unwrap();
        assert!(here.is_all_on(home));
    }
    let (frees, remote) = counts();
    std::thread::spawn(move || {
        let _pin = Pin::node(away).apply().unwrap();
        drop(v);
    })
    .join()
    .unwrap();
    // Counters only grow (other tests may free too): at least ours.
    let (frees_now, remote_now) = counts();
    assert!(frees_now >= frees + 500, "{frees} -> {frees_now}");
    if home != away {
        assert!(remote_now >= remote + 500, "{remote} -> {remote_now}");
    }
    if common::expected_nodes().is_some_and(|n| n >= 2) {
        assert_ne!(home, away, "two nodes with memory and CPUs");
    }
}

#[test]
fn a_vec_grown_on_another_node_stays_in_the_heap_that_owns_it() {
    let topo = common::topology();
    let nodes: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory() && !n.cpus().is_empty())
        .map(|n| n.id())
        .collect();
    let (home, away) = (nodes[0], *nodes.last().unwrap());
    if common::expected_nodes().is_some_and(|n| n >= 2) {
        assert_ne!(home, away, "two nodes with memory and CPUs");
    }
    let v = std::thread::spawn(move || {
        let _pin = Pin::node(home).apply().unwrap();
        let mut v: AVec<u32, Local> = AVec::new_in(Local);
        v.extend(0..100u32);
        v
    })
    .join()
    .unwrap();
    let v = std::thread::spawn(move || {
        let _pin = Pin::node(away).apply().unwrap();
        let mut v = v;
        v.extend(100..200_000u32);
        v.truncate(150_000);
        v.shrink_to_fit();
        v
    })
    .join()
    .unwrap();
    assert!(v.iter().copied().eq(0..150_000u32));
    let here = numakit::mem::locate(v.as_ptr().cast(), v.len() * 4).unwrap();
    assert!(here.is_all_on(home), "{here:?}");
}
