//! L1 node heaps on the real machine: node 0 (and node 1 refused) on the
//! host; every node of the guests under `cargo xtask vm-test`, with remote
//! frees between nodes.

mod common;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec as AVec;
use numakit::mem::{self, GlobalNodeHeap, HeapBox, MemError, NodeHeap};
use numakit::topology::TopologyError;
use numakit::NodeId;
use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

const PAGE: usize = 4096;

/// Every base page of `[p, p + len)` is on `node`.
fn assert_on(p: *const u8, len: usize, node: NodeId, what: &str) {
    let here = mem::locate(p, len).unwrap();
    assert!(here.is_all_on(node), "{what}: {here}, expected node {node}");
}

/// Page-by-page placement of a set of addresses (deduplicated pages).
fn assert_pages_on(addrs: impl IntoIterator<Item = usize>, node: NodeId, what: &str) -> usize {
    let pages: BTreeSet<usize> = addrs.into_iter().map(|a| a / PAGE * PAGE).collect();
    for &p in &pages {
        assert_on(p as *const u8, 1, node, what);
    }
    pages.len()
}

fn nodes_with_memory_and_cpus(topo: &numakit::Topology) -> Vec<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| n.has_memory() && !n.cpus().is_empty())
        .map(|n| n.id())
        .collect()
}

#[test]
fn vec_and_hashmap_storage_is_on_the_heaps_node_page_by_page() {
    let topo = common::topology();
    let mut verified = 0;
    for node in topo.nodes().iter().filter(|n| n.has_memory()) {
        let node = node.id();
        let heap = NodeHeap::new(node).unwrap();
        assert_eq!(heap.node(), node);

        // One large Vec (its own mapping once past 32 KiB) …
        let mut big = AVec::new_in(&heap);
        big.extend(0..(256 << 10) as u64);
        assert_eq!(big[12345], 12345);
        assert_on(big.as_ptr().cast(), big.len() * 8, node, "large Vec");

        // … many small ones (size classes) …
        let smalls: Vec<AVec<u8, &NodeHeap>> = (1..2000)
            .map(|n| {
                let mut v = AVec::with_capacity_in(n % 3000 + 1, &heap);
                v.resize(n % 3000 + 1, n as u8);
                v
            })
            .collect();
        let pages = assert_pages_on(
            smalls.iter().map(|v| v.as_ptr() as usize),
            node,
            "small Vecs",
        );
        assert!(pages > 1);

        // … and a hashbrown map, every entry's page checked.
        let mut map = hashbrown::HashMap::new_in(&heap);
        for i in 0..50_000u64 {
            map.insert(i, i * 3);
        }
        assert_eq!(map[&777], 2331);
        assert_pages_on(
            map.iter()
                .flat_map(|(k, v)| [k as *const u64 as usize, v as *const u64 as usize]),
            node,
            "HashMap entries",
        );

        // The heap's own segments and bookkeeping, too.
        let proof = heap.verify().unwrap();
        assert!(proof.pages() > 0 && proof.is_all_on(node), "{proof}");
        let stats = heap.stats();
        assert_eq!(stats.node, node);
        assert!(stats.bytes_in_use >= (256 << 13) + 50_000 * 16, "{stats:?}");
        assert!(stats.bytes_mapped >= stats.bytes_in_use, "{stats:?}");
        assert!(stats.large_in_use >= 1);
        drop((big, smalls, map));
        let stats = heap.stats();
        assert_eq!(stats.bytes_in_use, 0, "{stats:?}");
        assert_eq!(stats.large_in_use, 0);
        verified += 1;
    }
    if let Some(n) = common::expected_nodes() {
        assert!(n == 1 || verified >= 2, "only {verified} node(s) verified");
    }
}

#[test]
fn node_1_on_a_one_node_machine_and_absent_nodes_are_refused_with_typed_errors() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    let targets = if topo.num_nodes() == 1 {
        vec![NodeId::new(1), absent]
    } else {
        vec![absent]
    };
    for node in targets {
        match NodeHeap::new(node).unwrap_err() {
            MemError::Topology(TopologyError::NoSuchNode {
                requested,
                available,
            }) => {
                assert_eq!(requested, node);
                assert_eq!(available, topo.node_ids().collect::<Vec<_>>());
            }
            other => panic!("expected NoSuchNode for node {node}, got {other:?}"),
        }
        // The global adapter says the same through try_init, and null
        // through GlobalAlloc.
        let g = GlobalNodeHeap::new(node.get());
        assert!(matches!(
            g.try_init(),
            Err(MemError::Topology(TopologyError::NoSuchNode { .. }))
        ));
        // SAFETY: a valid layout; null is the expected answer.
        assert!(unsafe { g.alloc(Layout::new::<u64>()) }.is_null());
        assert!(g.stats().is_none());
    }
}

#[test]
fn memoryless_node_is_refused() {
    let topo = common::topology();
    for node in topo.nodes().iter().filter(|n| !n.has_memory()) {
        let err = NodeHeap::new(node.id()).unwrap_err();
        assert!(
            matches!(&err, MemError::MemorylessNode { node: n, .. } if *n == node.id()),
            "{err:?}"
        );
        let g = GlobalNodeHeap::new(node.id().get());
        assert!(g.try_init().is_err());
    }
}

/// A block allocated by a thread on node `home` and freed by a thread on
/// node `away` goes back to `home`'s heap (not into the freeing thread's
/// cache), and the heap hands it out again.
fn remote_free_returns_to_owner(home: NodeId, away: NodeId) {
    let heap = Arc::new(NodeHeap::new(home).unwrap());
    let layout = Layout::from_size_align(64, 8).unwrap();
    let class = NodeHeap::size_classes().position(|s| s == 64).unwrap();

    let h = heap.clone();
    let block = std::thread::spawn(move || {
        let _pin = numakit::sched::pin_to_node(home).unwrap();
        let p = h.try_alloc_layout(layout).unwrap();
        // SAFETY: 64 writable bytes.
        unsafe { p.as_ptr().write_bytes(0x5a, 64) };
        assert_on(p.as_ptr(), 64, home, "block");
        p.as_ptr() as usize
    })
    .join()
    .unwrap();

    let h = heap.clone();
    std::thread::spawn(move || {
        let _pin = numakit::sched::pin_to_node(away).unwrap();
        // SAFETY: allocated above with `layout`, not used again.
        unsafe { h.dealloc(std::ptr::NonNull::new(block as *mut u8).unwrap(), layout) };
    })
    .join()
    .unwrap();

    let stats = heap.stats();
    let c = &stats.classes[class];
    assert_eq!(c.in_use, 0, "{c:?}");
    assert_eq!(c.frees, 1, "{c:?}");
    if home != away {
        assert_eq!(
            c.remote_frees, 1,
            "a free on node {away} is a remote free: {c:?}"
        );
    }

    // A thread on the home node gets the same block back from the heap.
    let h = heap.clone();
    let again = std::thread::spawn(move || {
        let _pin = numakit::sched::pin_to_node(home).unwrap();
        let mut seen = Vec::new();
        let mut found = false;
        for _ in 0..1000 {
            let p = h.try_alloc_layout(layout).unwrap();
            seen.push(p);
            if p.as_ptr() as usize == block {
                found = true;
                break;
            }
        }
        for p in seen {
            // SAFETY: allocated just above with `layout`.
            unsafe { h.dealloc(p, layout) };
        }
        found
    })
    .join()
    .unwrap();
    assert!(
        again,
        "the freed block never came back from the heap: {:?}",
        heap.stats().classes[class]
    );
    assert_on(block as *const u8, 64, home, "block handed out again");
    assert_eq!(heap.stats().bytes_in_use, 0);
}

#[test]
fn block_from_node_1_freed_on_node_0_goes_back_to_node_1s_heap() {
    let topo = common::topology();
    let nodes = nodes_with_memory_and_cpus(&topo);
    if common::expected_nodes().is_some_and(|n| n >= 2) {
        assert!(
            nodes.len() >= 2,
            "the guest must have 2 nodes with CPUs and memory"
        );
    }
    if nodes.len() >= 2 {
        remote_free_returns_to_owner(nodes[1], nodes[0]);
        remote_free_returns_to_owner(nodes[0], nodes[1]);
    } else {
        // One node: the free is local, and still goes back to the heap.
        remote_free_returns_to_owner(nodes[0], nodes[0]);
        assert!(NodeHeap::new(1).is_err());
    }
}

#[test]
fn cross_thread_frees_from_many_threads() {
    let heap = NodeHeap::new(0).unwrap();
    let initial = heap.stats().bytes_in_use;
    const THREADS: usize = 8;
    // Every block is live at once (about 40 MB on the host); the guest's
    // 512 MiB nodes get an eighth of that.
    let per: usize = if common::in_vm() { 250 } else { 2000 };
    std::thread::scope(|s| {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS)
            .map(|_| mpsc::channel::<(usize, usize)>())
            .unzip();
        let barrier = Arc::new(Barrier::new(THREADS));
        for (t, rx) in rxs.into_iter().enumerate() {
            let txs = txs.clone();
            let heap = &heap;
            let barrier = barrier.clone();
            s.spawn(move || {
                // Allocate, fill, and hand every block to the next thread.
                for i in 0..per {
                    let size = 8 + (i * 37 + t * 101) % 5000;
                    let layout = Layout::from_size_align(size, 8).unwrap();
                    let p = heap.try_alloc_layout(layout).unwrap();
                    // SAFETY: `size` writable bytes.
                    unsafe { p.as_ptr().write_bytes(t as u8, size) };
                    txs[(t + 1) % THREADS]
                        .send((p.as_ptr() as usize, size))
                        .unwrap();
                }
                drop(txs);
                barrier.wait();
                // Free what the previous thread allocated, checking contents.
                let from = ((t + THREADS - 1) % THREADS) as u8;
                for (addr, size) in rx.try_iter() {
                    // SAFETY: a live block of `size` bytes, now ours.
                    let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, size) };
                    assert!(bytes.iter().all(|&b| b == from));
                    let layout = Layout::from_size_align(size, 8).unwrap();
                    // SAFETY: allocated by the heap with `layout`.
                    unsafe {
                        heap.dealloc(std::ptr::NonNull::new(addr as *mut u8).unwrap(), layout)
                    };
                }
            });
        }
    });
    let stats = heap.stats();
    assert_eq!(stats.bytes_in_use, initial, "{stats:?}");
    assert!(stats.classes.iter().all(|c| c.in_use == 0));
    let frees: u64 = stats.classes.iter().map(|c| c.frees).sum();
    assert_eq!(frees, (THREADS * per) as u64);
}

/// Producer/consumer: one thread allocates, another frees, round after
/// round, so the consumer's cache flushes whole runs to the heap and the
/// producer's refills take them back. Every block handed out is live
/// once (no address twice among live blocks), keeps its contents, and
/// the figures come back to where they started.
#[test]
fn runs_flushed_by_one_thread_are_refilled_by_another_intact() {
    let heap = NodeHeap::new(0).unwrap();
    let initial = heap.stats().bytes_in_use;
    let rounds = if common::in_vm() { 5 } else { 20 };
    const BLOCKS: usize = 5000;
    for size in [16usize, 64, 1000] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let (tx, rx) = mpsc::sync_channel::<Vec<usize>>(2);
        std::thread::scope(|s| {
            let heap = &heap;
            s.spawn(move || {
                for r in 0..rounds {
                    let mut live = BTreeSet::new();
                    let mut batch = Vec::with_capacity(BLOCKS);
                    for i in 0..BLOCKS {
                        let p = heap.try_alloc_layout(layout).unwrap().as_ptr();
                        assert!(live.insert(p as usize), "round {r}: {p:?} handed out twice");
                        // SAFETY: `size` writable bytes.
                        unsafe { p.write_bytes((i + r) as u8, size) };
                        batch.push(p as usize);
                    }
                    tx.send(batch).unwrap();
                }
            });
            s.spawn(move || {
                for (r, batch) in rx.iter().enumerate() {
                    for (i, &addr) in batch.iter().enumerate() {
                        // SAFETY: a live block of `size` bytes, now ours.
                        let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, size) };
                        assert!(
                            bytes.iter().all(|&b| b == (i + r) as u8),
                            "round {r} block {i}"
                        );
                        // SAFETY: allocated by the heap with `layout`.
                        unsafe {
                            heap.dealloc(std::ptr::NonNull::new(addr as *mut u8).unwrap(), layout)
                        };
                    }
                }
            });
        });
    }
    let stats = heap.stats();
    assert_eq!(stats.bytes_in_use, initial, "{stats:?}");
    assert!(stats.classes.iter().all(|c| c.in_use == 0), "{stats:?}");
    // Everything is still there to be trimmed and taken again.
    heap.trim().unwrap();
    let p = heap
        .try_alloc_layout(Layout::from_size_align(64, 8).unwrap())
        .unwrap();
    // SAFETY: allocated just above with this layout.
    unsafe { heap.dealloc(p, Layout::from_size_align(64, 8).unwrap()) };
}

#[test]
fn host_only_stress_8_threads_returns_to_the_initial_in_use_figure() {
    let heap = NodeHeap::new(0).unwrap();
    let initial = heap.stats();
    const THREADS: usize = 8;
    const OPS: usize = 200_000;
    let handoff = std::sync::Mutex::new(Vec::<(usize, Layout)>::new());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (heap, handoff) = (&heap, &handoff);
            s.spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64) << 32;
                let mut live: Vec<(usize, Layout)> = Vec::new();
                for _ in 0..OPS {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let r = rng as usize;
                    match r % 16 {
                        0..=8 => {
                            let size = match r >> 8 & 63 {
                                0 => 32 << 10 | r >> 20 & 0xffff, // large
                                1..=8 => 1 + (r >> 20) % 32768,
                                _ => 1 + (r >> 20) % 512,
                            };
                            let layout = Layout::from_size_align(size, 1 << (r >> 40 & 3)).unwrap();
                            let p = heap.try_alloc_layout(layout).unwrap();
                            // SAFETY: the block is ours, at least `size` bytes.
                            unsafe { p.as_ptr().write(t as u8) };
                            live.push((p.as_ptr() as usize, layout));
                        }
                        9..=14 if !live.is_empty() => {
                            let (p, layout) = live.swap_remove((r >> 8) % live.len());
                            // SAFETY: allocated above with `layout`.
                            unsafe {
                                heap.dealloc(std::ptr::NonNull::new(p as *mut u8).unwrap(), layout)
                            };
                        }
                        _ => {
                            // Hand a block to whichever thread frees next, and
                            // free one handed over.
                            let mut h = handoff.lock().unwrap();
                            if let Some(b) = live.pop() {
                                h.push(b);
                            }
                            if let Some((p, layout)) = h.pop() {
                                drop(h);
                                // SAFETY: allocated by the heap with `layout`.
                                unsafe {
                                    heap.dealloc(
                                        std::ptr::NonNull::new(p as *mut u8).unwrap(),
                                        layout,
                                    )
                                };
                            }
                        }
                    }
                }
                for (p, layout) in live {
                    // SAFETY: allocated above with `layout`.
                    unsafe { heap.dealloc(std::ptr::NonNull::new(p as *mut u8).unwrap(), layout) };
                }
            });
        }
    });
    for (p, layout) in handoff.into_inner().unwrap() {
        // SAFETY: allocated by the heap with `layout`.
        unsafe { heap.dealloc(std::ptr::NonNull::new(p as *mut u8).unwrap(), layout) };
    }
    let stats = heap.stats();
    assert_eq!(stats.bytes_in_use, initial.bytes_in_use, "{stats:?}");
    assert_eq!(stats.large_in_use, 0);
    for c in &stats.classes {
        assert_eq!(c.in_use, 0, "{c:?}");
        assert_eq!(c.allocations, c.frees, "{c:?}");
    }
    assert!(stats.thread_caches <= THREADS + 1, "{stats:?}");
    heap.verify().unwrap();
}

#[test]
fn alignment_and_usable_size_through_the_allocator_trait() {
    let heap = NodeHeap::new(0).unwrap();
    for align_log in 0..=14 {
        let align = 1usize << align_log;
        for size in [
            1,
            7,
            16,
            100,
            1000,
            4096,
            5000,
            32 << 10,
            40 << 10,
            200 << 10,
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let block = heap.allocate(layout).unwrap();
            let p = block.cast::<u8>();
            assert_eq!(p.as_ptr() as usize % align, 0, "size {size} align {align}");
            assert!(block.len() >= size);
            // SAFETY: the usable size is writable.
            unsafe { p.as_ptr().write_bytes(0xee, block.len()) };
            // Freeing with the usable size is allowed too.
            let usable = Layout::from_size_align(block.len(), align).unwrap();
            // SAFETY: allocated just above; the layout fits the block.
            unsafe { heap.deallocate(p, usable) };
        }
    }
    // Zero-sized: no memory, aligned dangling pointer.
    let z = heap
        .allocate(Layout::from_size_align(0, 64).unwrap())
        .unwrap();
    assert_eq!(z.len(), 0);
    assert_eq!(z.cast::<u8>().as_ptr() as usize % 64, 0);
    // SAFETY: the zero-sized block just handed out.
    unsafe { heap.deallocate(z.cast(), Layout::from_size_align(0, 64).unwrap()) };
    assert_eq!(heap.stats().bytes_in_use, 0);
}

#[test]
fn grow_and_shrink_stay_in_place_within_a_block_and_move_between_blocks() {
    let heap = NodeHeap::new(0).unwrap();
    let a = &heap;
    let l = |size| Layout::from_size_align(size, 8).unwrap();
    // SAFETY: every block is used within its reported size and handed back
    // with a layout that fits it.
    unsafe {
        let p = a.allocate(l(17)).unwrap().cast::<u8>();
        assert_eq!(
            a.allocate(l(17)).map(|b| {
                a.deallocate(b.cast(), l(17));
                b.len()
            }),
            Ok(32)
        );
        p.as_ptr().write_bytes(3, 17);
        // 17 -> 30: the same 32-byte block.
        let q = a.grow(p, l(17), l(30)).unwrap();
        assert_eq!(q.cast::<u8>(), p);
        assert_eq!(q.len(), 32);
        // 30 -> 100: another class; contents kept.
        let r = a.grow(q.cast(), l(30), l(100)).unwrap().cast::<u8>();
        assert_ne!(r, p);
        assert!(std::slice::from_raw_parts(r.as_ptr(), 17)
            .iter()
            .all(|&b| b == 3));
        // 100 -> 97: same block.
        let s = a.shrink(r, l(100), l(97)).unwrap();
        assert_eq!(s.cast::<u8>(), r);
        // 97 -> 41000 -> 45000: one 48 KiB block (a class above 32 KiB),
        // grown in place.
        let t = a.grow(s.cast(), l(97), l(41_000)).unwrap().cast::<u8>();
        let u = a.grow(t, l(41_000), l(45_000)).unwrap();
        assert_eq!(u.cast::<u8>(), t);
        assert_eq!(u.len(), 48 << 10);
        assert!(std::slice::from_raw_parts(t.as_ptr(), 17)
            .iter()
            .all(|&b| b == 3));
        // 45000 -> 2 MiB + 1 -> 3 MiB - 5 -> 1.5 MiB: a mapping of its own,
        // resized (mremap, tail unmapped); contents kept all along.
        let two = (2 << 20) + 1;
        let v = a.grow(t, l(45_000), l(two)).unwrap();
        assert_eq!(v.len(), 2 * (1 << 20) + PAGE);
        let v = v.cast::<u8>();
        v.as_ptr().add(two - 1).write(9);
        let w = a.grow(v, l(two), l((3 << 20) - 5)).unwrap();
        assert_eq!(w.len(), 3 << 20);
        let w = w.cast::<u8>();
        assert_eq!(w.as_ptr().add(two - 1).read(), 9);
        let x = a.shrink(w, l((3 << 20) - 5), l(3 << 19)).unwrap();
        assert_eq!(x.cast::<u8>(), w, "shrinking a mapping stays in place");
        assert_eq!(x.len(), 3 << 19);
        assert!(std::slice::from_raw_parts(w.as_ptr(), 17)
            .iter()
            .all(|&b| b == 3));
        assert_eq!(heap.stats().large_bytes_in_use, 3 << 19);
        a.deallocate(w, l(3 << 19));
    }
    assert_eq!(heap.stats().bytes_in_use, 0);
    // A Vec grows through it.
    let mut v: AVec<u8, &NodeHeap> = AVec::new_in(&heap);
    v.extend(0..=255);
    v.shrink_to_fit();
    assert!((0..=255).eq(v.iter().copied()));
}

#[test]
fn too_large_a_request_is_a_typed_error_not_an_oom_kill() {
    let topo = common::topology();
    let heap = NodeHeap::new(0).unwrap();
    let total = topo.node(NodeId::new(0)).unwrap().memory_total() as usize;
    let layout = Layout::from_size_align(total, 8).unwrap();
    match heap.try_alloc_layout(layout).unwrap_err() {
        MemError::OutOfNodeMemory {
            node, requested, ..
        } => {
            assert_eq!(node, NodeId::new(0));
            assert!(requested as usize >= total);
        }
        other => panic!("expected OutOfNodeMemory, got {other:?}"),
    }
    assert!(heap.allocate(layout).is_err());
    let huge = Layout::from_size_align(isize::MAX as usize - 8192, 8).unwrap();
    assert!(heap.try_alloc_layout(huge).is_err());
}

#[test]
fn heap_box_drops_its_value_and_moves_between_threads() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted(#[allow(dead_code)] [u64; 5]);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let heap = NodeHeap::new(0).unwrap();
    let boxes: Vec<HeapBox<'_, Counted>> =
        (0..100).map(|i| heap.alloc_box(Counted([i; 5]))).collect();
    assert_eq!(boxes[42].0[0], 42);
    assert_eq!(heap.stats().bytes_in_use, 100 * 48);
    std::thread::scope(|s| {
        s.spawn(move || drop(boxes));
    });
    assert_eq!(DROPS.load(Ordering::SeqCst), 100);
    let b = heap.try_alloc_box(String::from("node")).unwrap();
    assert_eq!(HeapBox::into_inner(b), "node");
    let unit = heap.alloc_box(());
    assert_eq!(*unit, ());
    drop(unit);
    assert_eq!(heap.stats().bytes_in_use, 0);
}

#[test]
fn thread_caches_are_reused_by_later_threads_and_survive_heap_drop() {
    let heap = NodeHeap::new(0).unwrap();
    for round in 0..20 {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut v: AVec<u64, &NodeHeap> = AVec::new_in(&heap);
                v.extend(0..round * 10);
                drop(v);
                let b = heap.alloc_box([round; 3]);
                assert_eq!(b[2], round);
            });
        });
    }
    // Sequential threads adopt the cache an exited thread left (thread
    // exit may lag the join by a moment, so allow a few).
    assert!(heap.stats().thread_caches <= 4, "{:?}", heap.stats());
    assert_eq!(heap.stats().bytes_in_use, 0);

    // A thread that outlives a heap, and uses more heaps than it has
    // cache slots, cleans up after itself.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let heap = Arc::new(heap);
    let h = heap.clone();
    let t = std::thread::spawn(move || {
        drop(h.alloc_box(1u32));
        drop(h);
        done_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        for _ in 0..3 {
            let heaps: Vec<NodeHeap> = (0..12).map(|_| NodeHeap::new(0).unwrap()).collect();
            for (i, h) in heaps.iter().enumerate() {
                let b = h.alloc_box(i);
                assert_eq!(*b, i);
            }
            for h in &heaps {
                assert_eq!(h.stats().bytes_in_use, 0);
            }
        }
    });
    done_rx.recv().unwrap();
    drop(Arc::into_inner(heap).expect("the thread dropped its handle"));
    go_tx.send(()).unwrap();
    t.join().unwrap();
}

static GLOBAL_ON_0: GlobalNodeHeap = GlobalNodeHeap::new(0);

#[test]
fn global_adapter_allocates_on_its_node_and_reallocates_in_place_within_a_class() {
    // Used through the GlobalAlloc trait directly (this test binary keeps
    // the system allocator; the doctest of GlobalNodeHeap runs a program
    // whose every allocation goes through one).
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: valid, non-zero layouts; every block is freed once with the
    // layout it has at that moment.
    unsafe {
        let p = GLOBAL_ON_0.alloc(layout);
        assert!(!p.is_null());
        p.write_bytes(7, 100);
        assert_on(p, 100, NodeId::new(0), "global block");
        // 100 -> 112: same class, same block.
        let q = GLOBAL_ON_0.realloc(p, layout, 112);
        assert_eq!(p, q);
        // 112 -> 5000: moves, contents kept.
        let r = GLOBAL_ON_0.realloc(q, Layout::from_size_align(112, 8).unwrap(), 5000);
        assert!(std::slice::from_raw_parts(r, 100).iter().all(|&b| b == 7));
        let big = Layout::from_size_align(1 << 20, 4096).unwrap();
        let b = GLOBAL_ON_0.alloc_zeroed(big);
        assert!(std::slice::from_raw_parts(b, 1 << 20)
            .iter()
            .all(|&x| x == 0));
        assert_on(b, 1 << 20, NodeId::new(0), "global large block");
        let stats = GLOBAL_ON_0.stats().unwrap();
        assert_eq!(stats.node, NodeId::new(0));
        assert_eq!(stats.bytes_in_use, 5120 + (1 << 20), "{stats:?}");
        GLOBAL_ON_0.dealloc(r, Layout::from_size_align(5000, 8).unwrap());
        GLOBAL_ON_0.dealloc(b, big);
    }
    assert_eq!(GLOBAL_ON_0.stats().unwrap().bytes_in_use, 0);
    assert!(GLOBAL_ON_0.try_init().is_ok());
}

#[test]
fn heap_and_boxes_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<NodeHeap>();
    send_sync::<GlobalNodeHeap>();
    send_sync::<HeapBox<'static, u64>>();
    send_sync::<&NodeHeap>();
}

/// Pages of `[p, p + len)` resident now (`mincore` through `locate`).
fn resident_pages(p: usize, len: usize) -> usize {
    let placement = mem::locate(p as *const u8, len).expect("locate");
    placement.pages() - placement.not_present()
}

fn trim_gives_back_free_chunks_and_takes_them_again(node: NodeId) {
    // On the heap's node, so frees stay in this thread's cache and the
    // heap's lists (a thread elsewhere would send them back remotely: the
    // same lists).
    let heap = NodeHeap::new(node).unwrap();
    let blocks: Vec<HeapBox<'_, [u8; 1024]>> =
        (0..8192).map(|i| heap.alloc_box([i as u8; 1024])).collect();
    let first = &*blocks[0] as *const _ as usize;
    let mapped = heap.stats().bytes_mapped;
    drop(blocks);
    let released = heap.trim().unwrap();
    // 8 MiB of 1 KiB blocks, every one free: all their chunks go back.
    assert!(released >= 8 << 20, "released {released} bytes");
    let stats = heap.stats();
    assert_eq!(stats.bytes_released, released);
    assert_eq!(
        stats.bytes_mapped, mapped,
        "the address space stays reserved"
    );
    assert_eq!(stats.bytes_in_use, 0);
    assert_eq!(
        resident_pages(first & !4095, 64 << 10),
        0,
        "the first chunk's pages are gone"
    );
    assert_eq!(heap.trim().unwrap(), 0, "nothing more to give");
    // What is still resident (bookkeeping, segment headers) is on the node.
    heap.verify().unwrap();

    // Take the memory again: the chunks come back, on the node, with their
    // pages populated before any block is handed out.
    let again: Vec<HeapBox<'_, [u8; 1024]>> = (0..8192)
        .map(|i| heap.alloc_box([!(i as u8); 1024]))
        .collect();
    for (i, b) in again.iter().enumerate() {
        assert!(b.iter().all(|&x| x == !(i as u8)));
    }
    let stats = heap.stats();
    assert!(
        stats.bytes_released < released,
        "released chunks were reused"
    );
    assert_eq!(stats.bytes_mapped, mapped, "no new segment was needed");
    assert_pages_on(
        again.iter().map(|b| &**b as *const _ as usize),
        node,
        "blocks in reused chunks",
    );
    heap.verify().unwrap();
}

#[test]
fn trim_gives_back_free_chunks_and_they_are_reused_on_the_node() {
    std::thread::spawn(|| {
        let _pin = numakit::sched::pin_to_node(0).expect("pin to node 0");
        trim_gives_back_free_chunks_and_takes_them_again(NodeId::new(0));
    })
    .join()
    .unwrap();
}

#[test]
#[ignore = "vm-only: needs a second node with memory and CPUs"]
fn trim_on_node_1_takes_memory_back_on_node_1() {
    let topo = common::multi_node_topology();
    let nodes = nodes_with_memory_and_cpus(&topo);
    assert!(
        nodes.len() >= 2,
        "needs two nodes with CPUs and memory: {nodes:?}"
    );
    let node = nodes[1];
    std::thread::spawn(move || {
        let _pin = numakit::sched::pin_to_node(node).expect("pin");
        trim_gives_back_free_chunks_and_takes_them_again(node);
    })
    .join()
    .unwrap();
}

#[test]
fn trim_keeps_chunks_with_a_live_block_and_their_contents() {
    std::thread::spawn(|| {
        let _pin = numakit::sched::pin_to_node(0).expect("pin to node 0");
        let heap = NodeHeap::new(0).unwrap();
        let mut blocks: Vec<Option<HeapBox<'_, [u64; 128]>>> = (0..4096u64)
            .map(|i| Some(heap.alloc_box([i; 128])))
            .collect();
        // 1 KiB blocks, 64 per 64 KiB chunk: keep one in every 64.
        for (i, b) in blocks.iter_mut().enumerate() {
            if i % 64 != 0 {
                *b = None;
            }
        }
        let released = heap.trim().unwrap();
        assert_eq!(released, 0, "every chunk still holds a live block");
        for (i, b) in blocks.iter().enumerate() {
            if let Some(b) = b {
                assert!(b.iter().all(|&x| x == i as u64), "block {i} intact");
            }
        }
        // The freed blocks are handed out again as usual.
        let more: Vec<_> = (0..4000u64).map(|i| heap.alloc_box([i; 128])).collect();
        assert!(more.iter().enumerate().all(|(i, b)| b[127] == i as u64));
        drop(more);
        drop(blocks);
        let released = heap.trim().unwrap();
        assert!(
            released >= 4 << 20,
            "released {released}: {:?}",
            heap.stats()
        );
    })
    .join()
    .unwrap();
}

#[test]
fn blocks_cached_by_another_thread_keep_their_chunks() {
    let heap = Arc::new(NodeHeap::new(0).unwrap());
    let layout = Layout::from_size_align(1024, 8).unwrap();
    // Another thread allocates and frees 32 blocks: they stay in its cache
    // (64 KiB of 1 KiB blocks fit), so their chunk is not free.
    let (tx, rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<usize>();
    let h = Arc::clone(&heap);
    let worker = std::thread::spawn(move || {
        // On the heap's node: its frees stay in its cache (a thread on
        // another node would return them to the heap at once).
        let _pin = numakit::sched::pin_to_node(0).expect("pin to node 0");
        let ps: Vec<_> = (0..32).map(|_| h.allocate(layout).unwrap()).collect();
        let first = ps[0].cast::<u8>().as_ptr() as usize;
        for p in ps {
            // SAFETY: allocated above with `layout`.
            unsafe { h.deallocate(p.cast(), layout) };
        }
        done_tx.send(first).unwrap();
        rx.recv().unwrap(); // keep the cache attached until told
    });
    let first = done_rx.recv().unwrap();
    heap.trim().unwrap();
    assert!(
        resident_pages(first & !4095, 4096) > 0,
        "a cached block's chunk stays"
    );
    tx.send(()).unwrap();
    worker.join().unwrap();
}

#[test]
fn blocks_left_in_the_cache_of_an_exited_thread_are_given_back() {
    let heap = Arc::new(NodeHeap::new(0).unwrap());
    let layout = Layout::from_size_align(2048, 8).unwrap();
    let h = Arc::clone(&heap);
    let first = std::thread::spawn(move || {
        // On the heap's node, so the freed blocks stay in this thread's
        // cache as it exits (elsewhere they would go back at once).
        let _pin = numakit::sched::pin_to_node(0).expect("pin to node 0");
        let ps: Vec<_> = (0..16).map(|_| h.allocate(layout).unwrap()).collect();
        let first = ps[0].cast::<u8>().as_ptr() as usize;
        for p in ps {
            // SAFETY: allocated above with `layout`.
            unsafe { h.deallocate(p.cast(), layout) };
        }
        first // the blocks stay in this thread's cache as it exits
    })
    .join()
    .unwrap();
    assert!(heap.trim().unwrap() >= 64 << 10);
    assert_eq!(resident_pages(first & !4095, 4096), 0);
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb << 10
}

/// `cargo test --test heap host_only_trim -- --nocapture` prints the figures.
#[test]
fn host_only_trim_after_256_mib_of_blocks() {
    std::thread::spawn(|| {
        let _pin = numakit::sched::pin_to_node(0).expect("pin to node 0");
        let heap = NodeHeap::new(0).unwrap();
        let blocks: Vec<_> = (0..262_144u32)
            .map(|i| heap.alloc_box([i as u8; 1024]))
            .collect();
        let peak = rss_bytes();
        drop(blocks);
        let t0 = std::time::Instant::now();
        let released = heap.trim().unwrap();
        let took = t0.elapsed();
        let after = rss_bytes();
        println!(
            "256 MiB of 1 KiB blocks freed: trim gave back {} MiB in {:.1} ms; RSS {} -> {} MiB",
            released >> 20,
            took.as_secs_f64() * 1e3,
            peak >> 20,
            after >> 20
        );
        // The resident set is the whole process's (other tests run beside
        // this one): printed, not asserted. The heap's own figure is exact.
        assert!(released >= 256 << 20);
        assert_eq!(heap.stats().bytes_released, released);
    })
    .join()
    .unwrap();
}
