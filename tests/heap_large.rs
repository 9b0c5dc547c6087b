//! Blocks above 32 KiB in a [`NodeHeap`]: the size classes from 40 KiB to
//! 1 MiB (carved from node-bound segments, cached per thread, given back to
//! their owner when freed on another node, released by `trim`) and the
//! mappings past them, resized with `mremap` (in place, or moved whole
//! with its node binding). Every test runs on
//! every node with memory: on the host that is node 0; under
//! `cargo xtask vm-run --nodes 2` the pages of node 1's heap are proven on
//! node 1 with `move_pages`.

mod common;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec as AVec;
use numakit::mem::{self, NodeHeap};
use numakit::{sched, NodeId};
use std::alloc::Layout;
use std::collections::BTreeSet;
use std::ptr::NonNull;

const PAGE: usize = 4096;
const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

fn nodes_with_memory() -> Vec<NodeId> {
    let topo = common::topology();
    let nodes: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id())
        .collect();
    if common::expected_nodes().is_some_and(|n| n >= 2) {
        assert!(nodes.len() >= 2, "the guest must have 2 nodes with memory");
    }
    nodes
}

fn nodes_with_cpus_and_memory() -> Vec<NodeId> {
    let topo = common::topology();
    topo.nodes()
        .iter()
        .filter(|n| n.has_memory() && !n.cpus().is_empty())
        .map(|n| n.id())
        .collect()
}

/// Every page of `[p, p + len)` is on `node` (`move_pages`).
fn assert_on(p: *const u8, len: usize, node: NodeId, what: &str) {
    let here = mem::locate(p, len).unwrap();
    assert!(here.is_all_on(node), "{what}: {here}, expected node {node}");
    let (first, end) = (p as usize / PAGE, (p as usize + len).div_ceil(PAGE));
    assert_eq!(here.pages(), end - first, "{what}: every page seen");
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// The sizes at the edges: the last small class, the first large one,
/// the middle, the largest class, one past it (its own mapping) and a
/// few MiB.
const EDGES: [usize; 9] = [
    32 * KIB,
    32 * KIB + 1,
    40 * KIB,
    64 * KIB + 1,
    200 * KIB,
    MIB,
    MIB + 1,
    2 * MIB + 1,
    5 * MIB,
];

#[test]
fn max_class_size_is_1_mib_and_the_classes_above_32k_are_listed() {
    assert_eq!(NodeHeap::MAX_CLASS_SIZE, MIB);
    let classes: Vec<usize> = NodeHeap::size_classes().collect();
    assert_eq!(classes.len(), 60);
    assert_eq!(*classes.last().unwrap(), MIB);
    let i = classes.iter().position(|&s| s == 32 * KIB).unwrap();
    assert_eq!(classes[i + 1], 40 * KIB);
}

#[test]
fn blocks_at_every_edge_and_alignment_are_on_the_heaps_node() {
    for node in nodes_with_memory() {
        let heap = NodeHeap::new(node).unwrap();
        for size in EDGES {
            for align in [1, 16, PAGE, 64 * KIB] {
                let l = layout(size, align);
                let block = heap.allocate(l).unwrap();
                let p = block.cast::<u8>();
                assert_eq!(p.as_ptr() as usize % align, 0, "{l:?}");
                assert!(block.len() >= size, "{l:?}");
                if size <= NodeHeap::MAX_CLASS_SIZE && align <= PAGE {
                    // A class block: at most a quarter more than asked.
                    assert!(block.len() <= size.max(align) * 5 / 4 + 16, "{l:?}");
                    assert_eq!(heap.stats().large_in_use, 0, "{l:?} is a class block");
                } else {
                    assert_eq!(heap.stats().large_in_use, 1, "{l:?} is a mapping");
                }
                // SAFETY: the usable size is writable.
                unsafe { p.as_ptr().write_bytes(0x5a, block.len()) };
                assert_on(p.as_ptr(), block.len(), node, &format!("{l:?}"));
                // SAFETY: allocated above with `l`; freed with the usable
                // size, which the Allocator contract allows.
                unsafe { heap.deallocate(p, layout(block.len(), align)) };
            }
        }
        assert_eq!(heap.stats().bytes_in_use, 0);
        assert_eq!(heap.stats().large_in_use, 0);
        heap.verify().unwrap();
    }
}

#[test]
fn a_vec_growing_to_16_mib_stays_on_the_node_page_by_page() {
    for node in nodes_with_memory() {
        let heap = NodeHeap::new(node).unwrap();
        let mut v: AVec<u32, &NodeHeap> = AVec::new_in(&heap);
        let mut moves = 0;
        let mut last = v.as_ptr();
        // Through every class above 32 KiB, then mappings grown by mremap.
        for i in 0..(4 * MIB) as u32 {
            v.push(i);
            if v.as_ptr() != last {
                moves += 1;
                last = v.as_ptr();
            }
        }
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
        assert!(moves >= 1);
        assert_on(v.as_ptr().cast(), v.capacity() * 4, node, "16 MiB Vec");
        assert_eq!(heap.stats().large_in_use, 1);
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
        assert_eq!(heap.stats().large_in_use, 0);
        drop(v);
        assert_eq!(heap.stats().bytes_in_use, 0);
    }
}

/// Map one page right after `[p, p + len)`, so that the mapping cannot
/// grow in place. Returns the guard, or `None` when the address is
/// already taken (then it cannot grow in place either).
fn guard_after(p: NonNull<u8>, len: usize) -> Option<usize> {
    let at = p.as_ptr() as usize + len;
    // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping: it fails when
    // the page is taken.
    let g = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            PAGE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    (g as usize == at).then_some(at)
}

#[test]
fn growing_a_mapping_that_cannot_grow_in_place_moves_its_pages_on_the_node() {
    for node in nodes_with_memory() {
        let heap = NodeHeap::new(node).unwrap();
        let fill = |p: NonNull<u8>, len: usize, from: usize| {
            for i in (from..len).step_by(512) {
                // SAFETY: inside the block.
                unsafe { p.as_ptr().add(i).write((i / 512) as u8) };
            }
        };
        let check = |p: NonNull<u8>, len: usize, what: &str| {
            for i in (0..len).step_by(512) {
                // SAFETY: inside the block, written by `fill`.
                let b = unsafe { p.as_ptr().add(i).read() };
                assert_eq!(b, (i / 512) as u8, "{what}: byte {i}");
            }
        };
        let (a, b, c) = (2 * MIB + 1, 4 * MIB, 7 * MIB + 3);
        let p = heap.allocate(layout(a, 16)).unwrap().cast::<u8>();
        fill(p, a, 0);
        let guard = guard_after(p, a.next_multiple_of(PAGE));
        // SAFETY: `p` is the block for `layout(a, 16)`.
        let q = unsafe { heap.grow(p, layout(a, 16), layout(b, 16)) }.unwrap();
        let q = q.cast::<u8>();
        assert_ne!(q, p, "the mapping could not grow in place: it moved");
        check(q, a, "moved");
        fill(q, b, 0);
        assert_on(q.as_ptr(), b, node, "moved mapping");
        // Grown again: the moved block is still one mapping (moved and
        // grown as a whole), so it grows again without a copy.
        // SAFETY: `q` is the block for `layout(b, 16)`.
        let r = unsafe { heap.grow(q, layout(b, 16), layout(c, 16)) }.unwrap();
        let r = r.cast::<u8>();
        check(r, b, "grown twice");
        fill(r, c, 0);
        assert_on(r.as_ptr(), c, node, "mapping grown twice");
        assert_eq!(heap.stats().large_bytes_in_use, c.next_multiple_of(PAGE));
        // Shrink to a mapping, then to a class block: contents kept.
        // SAFETY: `r` is the block for `layout(c, 16)`.
        let s = unsafe { heap.shrink(r, layout(c, 16), layout(a, 16)) }.unwrap();
        assert_eq!(s.cast::<u8>(), r);
        assert_eq!(heap.stats().large_bytes_in_use, a.next_multiple_of(PAGE));
        // SAFETY: as above, now for `layout(a, 16)`.
        let t = unsafe { heap.shrink(r, layout(a, 16), layout(MIB, 16)) }.unwrap();
        let t = t.cast::<u8>();
        check(t, MIB, "shrunk into a class");
        assert_eq!(heap.stats().large_in_use, 0);
        // SAFETY: `t` is the block for `layout(MIB, 16)`.
        unsafe { heap.deallocate(t, layout(MIB, 16)) };
        assert_eq!(heap.stats().bytes_in_use, 0);
        if let Some(g) = guard {
            // SAFETY: the guard page mapped above, used by nothing.
            unsafe { libc::munmap(g as *mut libc::c_void, PAGE) };
        }
    }
}

#[test]
fn an_aligned_mapping_keeps_its_alignment_when_it_grows() {
    let heap = NodeHeap::new(0).unwrap();
    for align in [2 * PAGE, 64 * KIB, 2 * MIB] {
        let p = heap.allocate(layout(100, align)).unwrap().cast::<u8>();
        // SAFETY: 100 bytes are ours.
        unsafe { p.as_ptr().write_bytes(7, 100) };
        let guard = guard_after(p, PAGE);
        // SAFETY: `p` is the block for `layout(100, align)`.
        let q = unsafe { heap.grow(p, layout(100, align), layout(3 * MIB, align)) }.unwrap();
        let q = q.cast::<u8>();
        assert_eq!(q.as_ptr() as usize % align, 0, "align {align}");
        // SAFETY: the first 100 bytes were kept.
        assert!(unsafe { std::slice::from_raw_parts(q.as_ptr(), 100) }
            .iter()
            .all(|&b| b == 7));
        // Growing to a larger alignment moves the block where it must.
        // SAFETY: `q` is the block for `layout(3 MiB, align)`.
        let r = unsafe { heap.grow(q, layout(3 * MIB, align), layout(4 * MIB, 4 * MIB)) }.unwrap();
        let r = r.cast::<u8>();
        assert_eq!(r.as_ptr() as usize % (4 * MIB), 0);
        // SAFETY: as above.
        assert!(unsafe { std::slice::from_raw_parts(r.as_ptr(), 100) }
            .iter()
            .all(|&b| b == 7));
        // SAFETY: `r` is the block for that layout.
        unsafe { heap.deallocate(r, layout(4 * MIB, 4 * MIB)) };
        if let Some(g) = guard {
            // SAFETY: our guard page.
            unsafe { libc::munmap(g as *mut libc::c_void, PAGE) };
        }
    }
    assert_eq!(heap.stats().bytes_in_use, 0);
}

#[test]
fn a_growth_the_node_cannot_hold_fails_and_leaves_the_block_intact() {
    let topo = common::topology();
    let heap = NodeHeap::new(0).unwrap();
    let total = topo.node(NodeId::new(0)).unwrap().memory_total() as usize;
    let p = heap.allocate(layout(2 * MIB, 16)).unwrap().cast::<u8>();
    // SAFETY: 2 MiB are ours.
    unsafe { p.as_ptr().write_bytes(0x11, 2 * MIB) };
    for new in [total, 1 << 50, isize::MAX as usize - 15] {
        // SAFETY: `p` is the block for `layout(2 MiB, 16)`.
        let grown = unsafe { heap.grow(p, layout(2 * MIB, 16), layout(new, 16)) };
        assert!(grown.is_err(), "{new} bytes cannot fit node 0");
        // SAFETY: the block is still ours, unchanged.
        let kept = unsafe { std::slice::from_raw_parts(p.as_ptr(), 2 * MIB) };
        assert!(kept.iter().all(|&b| b == 0x11), "{new}");
        assert_eq!(heap.stats().large_bytes_in_use, 2 * MIB);
    }
    // SAFETY: still the block for `layout(2 MiB, 16)`.
    unsafe { heap.deallocate(p, layout(2 * MIB, 16)) };
    assert_eq!(heap.stats().bytes_in_use, 0);
}

#[test]
fn trim_gives_back_the_chunks_of_the_large_classes() {
    let heap = NodeHeap::new(0).unwrap();
    let blocks: Vec<_> = (0..24)
        .map(|i| {
            let size = [40 * KIB, 300 * KIB, 900 * KIB][i % 3];
            let b = heap.allocate(layout(size, 16)).unwrap().cast::<u8>();
            // SAFETY: `size` bytes are ours.
            unsafe { b.as_ptr().write_bytes(1, size) };
            (b, size)
        })
        .collect();
    let mapped = heap.stats().bytes_mapped;
    assert!(mapped >= 8 * (40 + 300 + 900) * KIB, "{mapped}");
    for (b, size) in blocks {
        // SAFETY: allocated above with this layout.
        unsafe { heap.deallocate(b, layout(size, 16)) };
    }
    let released = heap.trim().unwrap();
    assert!(released >= 8 * MIB, "{released}");
    assert_eq!(heap.stats().bytes_released, released);
    // Taken again (populated after the memory check), on the node.
    let again = heap.allocate(layout(900 * KIB, 16)).unwrap().cast::<u8>();
    // SAFETY: 900 KiB are ours.
    unsafe { again.as_ptr().write_bytes(2, 900 * KIB) };
    assert_on(again.as_ptr(), 900 * KIB, NodeId::new(0), "reused chunk");
    assert!(heap.stats().bytes_released < released);
    // SAFETY: allocated just above.
    unsafe { heap.deallocate(again, layout(900 * KIB, 16)) };
    heap.verify().unwrap();
}

/// Send-able block address.
#[derive(Clone, Copy)]
struct Addr(usize);

#[test]
fn large_class_blocks_freed_on_another_node_come_back_to_their_owner_only() {
    let nodes = nodes_with_cpus_and_memory();
    if common::expected_nodes().is_some_and(|n| n >= 2) {
        assert!(
            nodes.len() >= 2,
            "the guest must have 2 nodes with CPUs and memory"
        );
    }
    for (i, &home) in nodes.iter().enumerate() {
        let away = nodes[(i + 1) % nodes.len()];
        let heap = NodeHeap::new(home).unwrap();
        let l = layout(200 * KIB, 16);
        let hr = &heap;
        std::thread::scope(|s| {
            let made: Vec<Addr> = s
                .spawn(move || {
                    let _pin = sched::pin_to_node(home).unwrap();
                    (0..8)
                        .map(|_| {
                            let p = hr.allocate(l).unwrap().cast::<u8>();
                            // SAFETY: the block is ours.
                            unsafe { p.as_ptr().write_bytes(3, l.size()) };
                            Addr(p.as_ptr() as usize)
                        })
                        .collect()
                })
                .join()
                .unwrap();
            let kept: BTreeSet<usize> = made.iter().map(|a| a.0).collect();
            s.spawn(move || {
                let _pin = sched::pin_to_node(away).unwrap();
                for a in made {
                    // SAFETY: allocated above with `l`, freed once.
                    unsafe { hr.deallocate(NonNull::new(a.0 as *mut u8).unwrap(), l) };
                }
            })
            .join()
            .unwrap();
            let class = NodeHeap::size_classes()
                .position(|s| s >= l.size())
                .unwrap();
            let remote = hr.stats().classes[class].remote_frees;
            if away != home {
                assert_eq!(remote, 8, "frees on node {away} are remote frees");
            }
            let again: Vec<Addr> = s
                .spawn(move || {
                    let _pin = sched::pin_to_node(home).unwrap();
                    (0..8)
                        .map(|_| Addr(hr.allocate(l).unwrap().cast::<u8>().as_ptr() as usize))
                        .collect()
                })
                .join()
                .unwrap();
            for a in &again {
                assert_on(a.0 as *const u8, l.size(), home, "reused block");
            }
            let hits = again.iter().filter(|a| kept.contains(&a.0)).count();
            assert_eq!(hits, 8, "node {home}'s blocks came back to node {home}");
            for a in again {
                // SAFETY: allocated just above with `l`.
                unsafe { hr.deallocate(NonNull::new(a.0 as *mut u8).unwrap(), l) };
            }
        });
        assert_eq!(heap.stats().bytes_in_use, 0);
    }
}
