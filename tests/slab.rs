//! L1 slabs on the real machine: node 0 (and node 1 refused) on the host;
//! every node of the guests under `cargo xtask vm-test`.

mod common;

use numakit::mem::{self, MemError, PageKind, RawSlab, Slab, SlabBox, SlabBuilder};
use numakit::topology::TopologyError;
use numakit::NodeId;
use std::cell::Cell;
use std::collections::HashSet;
use std::ptr::NonNull;
use std::rc::Rc;

#[test]
fn slab_on_every_node_with_memory_is_verified_page_by_page() {
    let topo = common::topology();
    let mut verified = 0;
    for node in topo.nodes().iter().filter(|n| n.has_memory()) {
        let slab: Slab<[u64; 8]> = SlabBuilder::new(node.id())
            .capacity(1000)
            .max_capacity(100_000)
            .chunk_bytes(256 << 10)
            .build()
            .unwrap();
        let boxes: Vec<_> = (0..20_000u64).map(|i| slab.alloc([i; 8])).collect();
        assert_eq!(boxes[12_345][7], 12_345);
        let placement = slab.verify().unwrap();
        assert!(placement.pages() >= 20_000 * 64 / 4096, "{placement}");
        for b in boxes.iter().step_by(64) {
            let here = mem::locate(SlabBox::as_ptr(b).cast(), 64).unwrap();
            assert!(here.is_all_on(node.id()), "{here}");
        }
        verified += 1;
    }
    if let Some(n) = common::expected_nodes() {
        assert!(n == 1 || verified >= 2, "only {verified} node(s) verified");
    }
}

#[test]
fn absent_node_and_node_1_on_one_node_are_refused() {
    let topo = common::topology();
    let mut targets = vec![common::absent_node(&topo)];
    if topo.num_nodes() == 1 {
        targets.push(NodeId::new(1));
    }
    for node in targets {
        let err = Slab::<u64>::new(node, 10).unwrap_err();
        assert!(
            matches!(&err, MemError::Topology(TopologyError::NoSuchNode { requested, .. }) if *requested == node),
            "{err:?}"
        );
    }
}

#[test]
fn free_list_is_lifo_and_reuses_slots() {
    let slab = Slab::<u32>::new(0, 16).unwrap();
    let a = slab.alloc(1);
    let b = slab.alloc(2);
    let pa = SlabBox::as_ptr(&a);
    let pb = SlabBox::as_ptr(&b);
    assert_eq!(pb as usize - pa as usize, 8, "a u32 slot holds a pointer");
    drop(a);
    drop(b);
    assert!(slab.is_empty());
    let c = slab.alloc(3);
    assert_eq!(SlabBox::as_ptr(&c), pb, "last freed, first reused");
    let d = slab.alloc(4);
    assert_eq!(SlabBox::as_ptr(&d), pa);
    assert_eq!((*c, *d), (3, 4));
}

#[test]
fn values_are_dropped_once_and_into_inner_and_leak_keep_them() {
    let drops = Rc::new(Cell::new(0));
    struct D(Rc<Cell<u32>>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let slab = Slab::<D>::new(0, 8).unwrap();
    let boxes: Vec<_> = (0..5).map(|_| slab.alloc(D(drops.clone()))).collect();
    drop(boxes);
    assert_eq!(drops.get(), 5);
    let inner = SlabBox::into_inner(slab.alloc(D(drops.clone())));
    assert_eq!(drops.get(), 5);
    assert_eq!(slab.len(), 0);
    drop(inner);
    assert_eq!(drops.get(), 6);
    let leaked: &mut D = SlabBox::leak(slab.alloc(D(drops.clone())));
    assert_eq!(slab.len(), 1);
    let _ = leaked;
}

#[test]
fn fixed_slab_full_is_a_typed_error_and_recovers_after_a_free() {
    let slab = Slab::<u64>::new(0, 3).unwrap();
    let a = slab.alloc(1);
    let _b = slab.alloc(2);
    let _c = slab.alloc(3);
    match slab.try_alloc(4).unwrap_err() {
        MemError::SlabFull {
            node,
            object_size,
            max_objects,
        } => assert_eq!((node, object_size, max_objects), (NodeId::new(0), 8, 3)),
        other => panic!("expected SlabFull, got {other:?}"),
    }
    let msg = slab.try_alloc(4).unwrap_err().to_string();
    assert!(msg.contains("max_capacity"), "{msg}");
    drop(a);
    assert_eq!(*slab.alloc(5), 5);
}

#[test]
fn growing_slab_grows_in_chunks_on_its_node_up_to_the_maximum() {
    let slab = SlabBuilder::new(0)
        .capacity(10)
        .max_capacity(10_000)
        .chunk_bytes(4096)
        .build_raw(48, 16)
        .unwrap();
    let s0 = slab.stats();
    assert_eq!(s0.bytes_populated, 4096);
    assert_eq!(s0.capacity, 4096 / 48);
    assert_eq!(s0.max_capacity, 10_000);
    let mut seen = HashSet::new();
    let mut ptrs = Vec::new();
    for _ in 0..10_000 {
        let p = slab.alloc().unwrap();
        assert_eq!(p.as_ptr() as usize % 16, 0);
        assert!(seen.insert(p.as_ptr() as usize), "handed out twice");
        ptrs.push(p);
    }
    let s1 = slab.stats();
    assert_eq!(s1.in_use, 10_000);
    assert!(s1.bytes_populated >= 480_000 && s1.bytes_populated <= s1.bytes_reserved);
    assert!(matches!(slab.alloc(), Err(MemError::SlabFull { .. })));
    slab.verify().unwrap();
    for p in ptrs {
        // SAFETY: each came from this slab once and is not used again.
        unsafe { slab.free(p) }.unwrap();
    }
    assert!(slab.is_empty());
}

#[test]
fn raw_slab_refuses_foreign_and_misaligned_pointers_without_change() {
    let slab = RawSlab::new(0, 100, 8, 10).unwrap();
    assert_eq!(slab.stride(), 104);
    let a = slab.alloc().unwrap();
    let _b = slab.alloc().unwrap();
    let local = 0u64;
    let candidates = [
        NonNull::from(&local).cast::<u8>(),
        // Inside an object, not at its start.
        NonNull::new(a.as_ptr().wrapping_add(8)).unwrap(),
        // Past the objects handed out so far.
        NonNull::new(a.as_ptr().wrapping_add(2 * 104)).unwrap(),
        NonNull::new(a.as_ptr().wrapping_sub(104)).unwrap(),
    ];
    for p in candidates {
        // SAFETY: refused before anything is touched (that is the test).
        let err = unsafe { slab.free(p) }.unwrap_err();
        match &err {
            MemError::ForeignPointer { addr, stride, .. } => {
                assert_eq!(*addr, p.as_ptr() as usize);
                assert_eq!(*stride, 104);
            }
            other => panic!("expected ForeignPointer, got {other:?}"),
        }
        assert!(
            err.to_string().contains("not handed out by this slab"),
            "{err}"
        );
        assert_eq!(slab.len(), 2);
    }
    assert!(slab.contains(a.as_ptr().wrapping_add(50)));
    assert!(!slab.contains(&local as *const u64 as *const u8));
    // SAFETY: from this slab, not used again.
    unsafe { slab.free(a) }.unwrap();
    assert_eq!(slab.len(), 1);
}

#[test]
fn sizes_and_alignments_at_run_time() {
    for (size, align) in [
        (0, 1),
        (1, 1),
        (7, 4),
        (24, 8),
        (100, 64),
        (4096, 4096),
        (5000, 16),
    ] {
        let slab = RawSlab::new(0, size, align, 64).unwrap();
        assert!(slab.stride() >= size.max(8));
        assert_eq!(slab.stride() % align.max(8), 0);
        let ptrs: Vec<_> = (0..64).map(|_| slab.alloc().unwrap()).collect();
        for (i, p) in ptrs.iter().enumerate() {
            assert_eq!(p.as_ptr() as usize % align, 0);
            // SAFETY: `size` writable bytes.
            unsafe { p.as_ptr().write_bytes(i as u8, size) };
        }
        for (i, p) in ptrs.iter().enumerate() {
            // SAFETY: written above, still allocated.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
            assert!(
                bytes.iter().all(|&b| b == i as u8),
                "overlap at size {size}"
            );
        }
    }
}

#[test]
fn bad_configurations_are_refused_with_what_would_work() {
    assert!(matches!(
        SlabBuilder::new(0).capacity(4).build_raw(8, 3),
        Err(MemError::InvalidAlignment { align: 3 })
    ));
    let err = SlabBuilder::new(0)
        .capacity(4)
        .build_raw(8, 8192)
        .unwrap_err();
    assert!(
        matches!(&err, MemError::InvalidConfig(m) if m.contains("page size")),
        "{err}"
    );
    let err = SlabBuilder::new(0)
        .capacity(10)
        .max_capacity(5)
        .build::<u8>()
        .unwrap_err();
    assert!(
        matches!(&err, MemError::InvalidConfig(m) if m.contains("raise max_capacity")),
        "{err}"
    );
    assert!(matches!(
        SlabBuilder::new(0).build::<u8>(),
        Err(MemError::InvalidSize { .. })
    ));
    assert!(matches!(
        SlabBuilder::new(0).capacity(1).chunk_bytes(0).build::<u8>(),
        Err(MemError::InvalidConfig(_))
    ));
    assert!(matches!(
        SlabBuilder::new(0)
            .max_capacity(usize::MAX / 4)
            .build::<u64>(),
        Err(MemError::SizeOverflow { .. } | MemError::InvalidSize { .. })
    ));
    // More than the node has is refused before anything is mapped.
    let topo = common::topology();
    let total = topo.node(NodeId::new(0)).unwrap().memory_total() as usize;
    assert!(matches!(
        SlabBuilder::new(0)
            .max_capacity(total / 64 * 2)
            .build::<[u8; 64]>(),
        Err(MemError::InvalidSize { .. })
    ));
}

#[test]
fn transparent_huge_page_slab_and_send() {
    let slab = SlabBuilder::new(0)
        .capacity(1024)
        .pages(PageKind::TransparentHuge)
        .build::<u64>()
        .unwrap();
    let slab = std::thread::spawn(move || {
        let b = slab.alloc(9);
        assert_eq!(*b, 9);
        drop(b);
        slab
    })
    .join()
    .unwrap();
    assert!(slab.is_empty());
    assert_eq!(slab.stats().bytes_reserved, 2 << 20);
    fn send<T: Send>() {}
    send::<Slab<u64>>();
    send::<RawSlab>();
}
