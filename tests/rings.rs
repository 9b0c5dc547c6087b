//! L3 rings: models, threads, drops, placement.

mod common;

use numakit::collections::{spsc, MpmcRing, PopError, PushError};
use numakit::mem::MemError;
use numakit::NodeId;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Push(u32),
    Pop,
    PushSlice(Vec<u32>),
    PushSliceAll(Vec<u32>),
    /// Items, and whether the iterator reports its length.
    PushIter(Vec<u32>, bool),
    PopSlice(usize),
    PopSliceAll(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u32>().prop_map(Op::Push),
        Just(Op::Pop),
        proptest::collection::vec(any::<u32>(), 0..12).prop_map(Op::PushSlice),
        proptest::collection::vec(any::<u32>(), 0..12).prop_map(Op::PushSliceAll),
        (
            proptest::collection::vec(any::<u32>(), 0..20),
            any::<bool>()
        )
            .prop_map(|(v, hinted)| Op::PushIter(v, hinted)),
        (0usize..12).prop_map(Op::PopSlice),
        (0usize..12).prop_map(Op::PopSliceAll),
    ]
}

const CAP: usize = 16;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn spsc_matches_vecdeque(ops in proptest::collection::vec(op(), 1..150)) {
        let (mut tx, mut rx) = spsc::ring::<u32>(0, CAP).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => match tx.push(v) {
                    Ok(()) => { prop_assert!(model.len() < CAP); model.push_back(v) }
                    Err(PushError::Full(x)) => { prop_assert_eq!(model.len(), CAP); prop_assert_eq!(x, v) }
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                Op::Pop => match rx.pop() {
                    Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                    Err(PopError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                Op::PushSlice(items) => {
                    let n = tx.push_slice(&items);
                    prop_assert_eq!(n, items.len().min(CAP - model.len()));
                    model.extend(&items[..n]);
                }
                Op::PushIter(items, hinted) => {
                    let free = CAP - model.len();
                    let (n, left) = if hinted {
                        let mut it = items.iter().copied();
                        (tx.push_iter(&mut it), it.count())
                    } else {
                        let mut it = items.iter().copied().filter(|_| true);
                        (tx.push_iter(&mut it), it.count())
                    };
                    prop_assert_eq!(n, items.len().min(free));
                    prop_assert_eq!(left, items.len() - n, "items not pushed stay in the iterator");
                    model.extend(&items[..n]);
                }
                Op::PushSliceAll(items) => match tx.push_slice_all(&items) {
                    Ok(()) => { prop_assert!(model.len() + items.len() <= CAP); model.extend(&items) }
                    Err(PushError::Full(free)) => {
                        prop_assert_eq!(free, CAP - model.len());
                        prop_assert!(free < items.len());
                    }
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                Op::PopSlice(n) => {
                    let mut out = vec![0; n];
                    let got = rx.pop_slice(&mut out);
                    prop_assert_eq!(got, n.min(model.len()));
                    let want: Vec<u32> = model.drain(..got).collect();
                    prop_assert_eq!(&out[..got], &want[..]);
                }
                Op::PopSliceAll(n) => {
                    let mut out = vec![0; n];
                    match rx.pop_slice_all(&mut out) {
                        Ok(()) => {
                            let want: Vec<u32> = model.drain(..n).collect();
                            prop_assert_eq!(out, want);
                        }
                        Err(PopError::Empty) => prop_assert!(model.len() < n),
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
            }
            prop_assert_eq!(rx.len(), model.len());
        }
    }

    #[test]
    fn mpmc_matches_vecdeque(ops in proptest::collection::vec(op(), 1..150)) {
        let ring = MpmcRing::<u32>::new(0, CAP).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => match ring.push(v) {
                    Ok(()) => { prop_assert!(model.len() < CAP); model.push_back(v) }
                    Err(PushError::Full(x)) => { prop_assert_eq!(model.len(), CAP); prop_assert_eq!(x, v) }
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                Op::Pop => match ring.pop() {
                    Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                    Err(PopError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                Op::PushSlice(items) => {
                    let n = ring.push_iter(&mut items.clone().into_iter().peekable());
                    prop_assert_eq!(n, items.len().min(CAP - model.len()));
                    model.extend(&items[..n]);
                }
                Op::PushIter(items, _) => {
                    let mut it = items.iter().copied().peekable();
                    let n = ring.push_iter(&mut it);
                    prop_assert_eq!(n, items.len().min(CAP - model.len()));
                    prop_assert_eq!(it.count(), items.len() - n, "items not pushed stay in the iterator");
                    model.extend(&items[..n]);
                }
                Op::PushSliceAll(items) => match ring.push_bulk(items.clone()) {
                    Ok(()) => { prop_assert!(model.len() + items.len() <= CAP); model.extend(&items) }
                    Err(PushError::Full(back)) => {
                        prop_assert!(model.len() + items.len() > CAP);
                        prop_assert_eq!(back, items);
                    }
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                Op::PopSlice(n) => {
                    let mut out = Vec::new();
                    let got = ring.pop_into(&mut out, n);
                    prop_assert_eq!(got, n.min(model.len()));
                    let want: Vec<u32> = model.drain(..got).collect();
                    prop_assert_eq!(out, want);
                }
                Op::PopSliceAll(n) => {
                    let mut out = Vec::new();
                    match ring.pop_bulk(&mut out, n) {
                        Ok(()) => {
                            let want: Vec<u32> = model.drain(..n).collect();
                            prop_assert_eq!(out, want);
                        }
                        Err(PopError::Empty) => { prop_assert!(model.len() < n); prop_assert!(out.is_empty()) }
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
            }
            prop_assert_eq!(ring.len(), model.len());
        }
    }
}

#[test]
fn capacity_and_node_errors() {
    let topo = common::topology();
    assert!(matches!(
        spsc::ring::<u8>(0, 0),
        Err(MemError::InvalidSize { .. })
    ));
    let err = MpmcRing::<u8>::new(0, 100).unwrap_err();
    assert!(err.to_string().contains("use 128"), "{err}");
    let err = MpmcRing::<u8>::new(common::absent_node(&topo), 64).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn rings_on_every_node_have_every_page_there() {
    let topo = common::topology();
    let mut checked = 0;
    for node in topo.nodes().iter().filter(|n| n.has_memory()) {
        let (tx, rx) = spsc::ring::<[u64; 8]>(node.id(), 4096).unwrap();
        let p = tx.placement().unwrap();
        assert!(p.is_all_on(node.id()), "{p}");
        // Both ends prove the same slots: 4096 slots of 64 bytes.
        let from_tx = tx.verify().unwrap();
        let from_rx = rx.verify().unwrap();
        assert!(from_tx.is_all_on(node.id()), "{from_tx}");
        assert!(from_tx.pages() >= 4096 * 64 / 4096, "{from_tx}");
        assert_eq!(from_tx, from_rx);
        let ring = MpmcRing::<u64>::new(node.id(), 8192).unwrap();
        let proof = ring.verify().unwrap();
        assert!(proof.is_all_on(node.id()), "{proof}");
        assert!(proof.pages() >= 8192 * 16 / 4096, "{proof}");
        checked += 1;
    }
    if common::expected_nodes().is_some_and(|n| n > 1) {
        assert!(checked >= 2);
    }
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn elements_left_in_rings_are_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let (mut tx, mut rx) = spsc::ring(0, 8).unwrap();
        for _ in 0..6 {
            assert!(tx.push(Counted(Arc::clone(&drops))).is_ok());
        }
        drop(rx.pop().unwrap()); // one popped and dropped by the caller
        drop(tx); // consumer still holds the ring
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 6);
    drops.store(0, Ordering::SeqCst);
    {
        let ring = MpmcRing::new(0, 8).unwrap();
        for _ in 0..8 {
            assert!(ring.push(Counted(Arc::clone(&drops))).is_ok());
        }
        // Wrap around once so the live range crosses the end of the slots.
        for _ in 0..5 {
            drop(ring.pop().unwrap());
        }
        for _ in 0..3 {
            assert!(ring.push(Counted(Arc::clone(&drops))).is_ok());
        }
        assert_eq!(drops.load(Ordering::SeqCst), 5);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 11);
}

#[test]
fn spsc_disconnects_both_ways() {
    let (mut tx, rx) = spsc::ring::<u8>(0, 4).unwrap();
    drop(rx);
    assert!(tx.is_closed());
    // Pushes fill the free slots, then report the closed ring.
    for i in 0..4 {
        tx.push(i).unwrap();
    }
    assert!(matches!(tx.push(4), Err(PushError::Closed(4))));
    let (mut tx, mut rx) = spsc::ring::<u8>(0, 4).unwrap();
    tx.push(9).unwrap();
    drop(tx);
    assert_eq!(rx.pop(), Ok(9));
    assert_eq!(rx.pop(), Err(PopError::Closed));
    let ring = MpmcRing::<u8>::new(0, 4).unwrap();
    ring.push(1).unwrap();
    ring.close();
    assert!(matches!(ring.push(2), Err(PushError::Closed(2))));
    assert_eq!(ring.pop(), Ok(1));
    assert_eq!(ring.pop(), Err(PopError::Closed));
}

fn spsc_transfer(n: u64) {
    let (mut tx, mut rx) = spsc::ring::<u64>(0, 64).unwrap();
    let producer = std::thread::spawn(move || {
        let mut i = 0;
        while i < n {
            if i % 3 == 0 && i + 4 <= n && tx.push_slice_all(&[i, i + 1, i + 2, i + 3]).is_ok() {
                i += 4;
            } else if tx.push(i).is_ok() {
                i += 1;
            } else {
                std::thread::yield_now();
            }
        }
    });
    let (mut sum, mut count, mut next) = (0u64, 0u64, 0u64);
    let mut buf = [0u64; 16];
    loop {
        let got = rx.pop_slice(&mut buf);
        for &v in &buf[..got] {
            assert_eq!(v, next, "SPSC order");
            next += 1;
            sum += v;
            count += 1;
        }
        if got == 0 {
            match rx.pop() {
                Ok(v) => {
                    assert_eq!(v, next);
                    next += 1;
                    sum += v;
                    count += 1;
                }
                Err(PopError::Closed) => break,
                Err(PopError::Empty) => std::thread::yield_now(),
            }
        }
    }
    producer.join().unwrap();
    assert_eq!((count, sum), (n, n * (n - 1) / 2));
}

fn mpmc_transfer(producers: u64, consumers: usize, per_producer: u64) {
    let ring = Arc::new(MpmcRing::<u64>::new(0, 128).unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for p in 0..producers {
        let (ring, done) = (Arc::clone(&ring), Arc::clone(&done));
        handles.push(std::thread::spawn(move || {
            for i in 0..per_producer {
                let mut v = p * per_producer + i;
                loop {
                    match ring.push(v) {
                        Ok(()) => break,
                        Err(e) => {
                            v = e.into_inner();
                            std::thread::yield_now();
                        }
                    }
                }
            }
            if done.fetch_add(1, Ordering::SeqCst) + 1 == producers as usize {
                ring.close();
            }
            (0u64, 0u64)
        }));
    }
    for _ in 0..consumers {
        let ring = Arc::clone(&ring);
        handles.push(std::thread::spawn(move || {
            let (mut sum, mut count) = (0u64, 0u64);
            loop {
                match ring.pop() {
                    Ok(v) => {
                        sum += v;
                        count += 1;
                    }
                    Err(PopError::Closed) => return (sum, count),
                    Err(PopError::Empty) => std::thread::yield_now(),
                }
            }
        }));
    }
    let (sum, count) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let n = producers * per_producer;
    assert_eq!((count, sum), (n, n * (n - 1) / 2));
}

#[test]
fn spsc_every_element_once_in_order() {
    spsc_transfer(20_000);
}

#[test]
fn mpmc_every_element_once() {
    mpmc_transfer(2, 2, 5_000);
}

#[test]
fn host_only_stress_spsc() {
    spsc_transfer(2_000_000);
}

#[test]
fn host_only_stress_mpmc_1_to_8() {
    for (p, c) in [(1, 1), (2, 2), (4, 4), (8, 8), (1, 8), (8, 1)] {
        mpmc_transfer(p, c, 100_000 / p);
    }
}

#[test]
fn ring_on_absent_node_does_not_fall_back() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    assert!(spsc::ring::<u8>(absent, 8).is_err());
    assert!(MpmcRing::<u8>::new(absent, 8).is_err());
    let _ = NodeId::new(0);
}

/// Making a ring of large elements builds no element (or whole slot) on
/// the stack: 1 MiB elements on a 512 KiB thread stack. Run in a child
/// process, since a stack overflow aborts the process.
#[test]
fn rings_of_large_elements_take_no_stack_for_them() {
    if !common::in_child("rings_of_large_elements_take_no_stack_for_them") {
        return;
    }
    let r = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(|| {
            for cap in [1usize, 2, 4] {
                let ring = MpmcRing::<[u8; 1 << 20]>::new(0, cap).unwrap();
                assert_eq!((ring.capacity(), ring.len()), (cap, 0));
                let (tx, rx) = spsc::ring::<[u8; 1 << 20]>(0, cap).unwrap();
                assert!(rx.is_empty());
                drop(tx);
            }
        })
        .unwrap()
        .join();
    assert!(r.is_ok());
}
