//! `NodeBox`: small values from the node's shared heap, large ones in a
//! mapping of their own; every page on the node either way.

mod common;

use numakit::mem::{MemError, NodeBox, NodePlacement};
use numakit::NodeId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn small_boxes_take_128_byte_blocks_and_large_ones_whole_pages() {
    let page = 4096;
    let small = NodeBox::new(0, 7u64).unwrap();
    assert_eq!(small.mapped_bytes(), 128);
    assert_eq!(NodeBox::new(0, [0u8; 129]).unwrap().mapped_bytes(), 256);
    assert_eq!(
        NodeBox::new(0, [0u8; NodeBox::<()>::SHARED_MAX])
            .unwrap()
            .mapped_bytes(),
        NodeBox::<()>::SHARED_MAX
    );
    let large = NodeBox::new(0, [1u8; NodeBox::<()>::SHARED_MAX + 1]).unwrap();
    assert_eq!(large.mapped_bytes() % page, 0);
    assert!(large.mapped_bytes() > NodeBox::<()>::SHARED_MAX);
    assert_eq!(*small, 7);
    assert!(large.iter().all(|&b| b == 1));
    assert!(small.verify().unwrap().is_all_on(NodeId::new(0)));
    assert!(large.verify().unwrap().is_all_on(NodeId::new(0)));
}

#[test]
fn small_boxes_never_share_a_128_byte_block() {
    let boxes: Vec<NodeBox<u32>> = (0..1000).map(|i| NodeBox::new(0, i).unwrap()).collect();
    let mut blocks: Vec<usize> = boxes.iter().map(|b| &**b as *const u32 as usize).collect();
    assert!(
        blocks.iter().all(|a| a % 128 == 0),
        "every box starts a 128-byte block"
    );
    blocks.sort_unstable();
    assert!(blocks.windows(2).all(|w| w[1] - w[0] >= 128));
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(**b, i as u32);
    }
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn values_are_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    drop(NodeBox::new(0, Counted(Arc::clone(&drops))).unwrap());
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    let big = NodeBox::new(0, (Counted(Arc::clone(&drops)), [0u8; 8192])).unwrap();
    drop(big);
    assert_eq!(drops.load(Ordering::Relaxed), 2);
    let back = NodeBox::new(0, Counted(Arc::clone(&drops)))
        .unwrap()
        .into_inner();
    assert_eq!(
        drops.load(Ordering::Relaxed),
        2,
        "into_inner moves, does not drop"
    );
    drop(back);
    assert_eq!(drops.load(Ordering::Relaxed), 3);
}

#[test]
fn a_panicking_initialiser_gives_the_block_back() {
    // A thread on the heap's node keeps freed blocks in its cache and hands
    // the last one out next (a thread on another node returns them to the
    // heap instead), so pin a fresh thread to node 0 first.
    std::thread::spawn(|| {
        let _pin = numakit::sched::pin_to_node(0).expect("pin to node 0");
        let probe = NodeBox::new(0, [0u64; 4]).unwrap();
        let next = &*probe as *const _ as usize;
        drop(probe);
        let result = std::panic::catch_unwind(|| {
            // SAFETY: the initialiser panics before writing; `new_in_place`
            // then frees the block and drops nothing.
            unsafe {
                NodeBox::<[u64; 4]>::new_in_place(NodePlacement::Node(NodeId::new(0)), |_| {
                    panic!("initialiser fails")
                })
            }
        });
        assert!(result.is_err());
        let again = NodeBox::new(0, [1u64; 4]).unwrap();
        assert_eq!(&*again as *const _ as usize, next, "the block came back");
    })
    .join()
    .unwrap();
}

#[test]
fn boxes_move_between_threads_and_are_freed_anywhere() {
    let boxes: Vec<NodeBox<[u64; 3]>> = std::thread::scope(|s| {
        let makers: Vec<_> = (0..4u64)
            .map(|t| {
                s.spawn(move || {
                    (0..200)
                        .map(|i| NodeBox::new(0, [t, i, t * i]).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        makers.into_iter().flat_map(|m| m.join().unwrap()).collect()
    });
    assert_eq!(boxes.len(), 800);
    std::thread::scope(|s| {
        let mut rest = boxes;
        while !rest.is_empty() {
            let chunk: Vec<_> = rest.drain(..rest.len().min(300)).collect();
            s.spawn(move || {
                for b in chunk {
                    assert_eq!(b[2], b[0] * b[1]);
                }
            });
        }
    });
}

#[test]
fn absent_and_memoryless_nodes_are_refused_not_replaced() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    for result in [
        NodeBox::new(absent, 1u8).map(|_| ()),
        NodeBox::new(absent, [0u8; 10_000]).map(|_| ()),
    ] {
        match result {
            Err(MemError::Topology(e)) => {
                let msg = e.to_string();
                assert!(msg.contains(&absent.get().to_string()), "{msg}");
            }
            other => panic!("node {absent:?} does not exist, got {other:?}"),
        }
    }
    for node in topo.nodes().iter().filter(|n| !n.has_memory()) {
        assert!(
            NodeBox::new(node.id(), 1u8).is_err(),
            "memoryless node {:?} must be refused",
            node.id()
        );
    }
}

#[test]
fn small_and_large_boxes_land_on_every_node() {
    let topo = common::topology();
    for node in topo.nodes().iter().filter(|n| n.has_memory()) {
        let id = node.id();
        let small = NodeBox::new(id, [id.get(); 8]).unwrap();
        let large = NodeBox::new(id, [id.get(); 4096]).unwrap();
        assert_eq!(small.node(), id);
        assert!(small.verify().unwrap().is_all_on(id), "small box on {id:?}");
        assert!(large.verify().unwrap().is_all_on(id), "large box on {id:?}");
    }
}
