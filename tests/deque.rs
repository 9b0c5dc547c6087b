//! L3 work-stealing deque: a model, an owner with thieves, drops (panicking
//! ones too), capacity and node boundaries, placement on every node.

mod common;

use numakit::collections::deque::{Flavor, Full, Steal, Stealer, Worker, MAX_BATCH};
use numakit::collections::MAX_CAPACITY;
use numakit::mem::MemError;
use numakit::NodeId;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// An element that records its drops: `drops[id]` counts them, so a double
/// drop and a leak both show.
struct Tracked {
    id: usize,
    drops: Arc<Mutex<Vec<u32>>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.lock().unwrap()[self.id] += 1;
    }
}

#[derive(Debug, Clone)]
enum Op {
    Push,
    Pop,
    /// Steal through stealer `n % 2`.
    Steal(u8),
    /// `steal_batch` into the second worker.
    StealBatch,
    /// The second worker's owner pops.
    PopDest,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Push),
        2 => Just(Op::Pop),
        2 => any::<u8>().prop_map(Op::Steal),
        1 => Just(Op::StealBatch),
        1 => Just(Op::PopDest),
    ]
}

fn flavor() -> impl Strategy<Value = Flavor> {
    prop_oneof![Just(Flavor::Lifo), Just(Flavor::Fifo)]
}

fn new_worker<T>(flavor: Flavor, node: u32, capacity: usize) -> Result<Worker<T>, MemError> {
    match flavor {
        Flavor::Lifo => Worker::new_lifo(node, capacity),
        Flavor::Fifo => Worker::new_fifo(node, capacity),
    }
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig::with_cases(if common::in_vm() { (n / 8).max(4) } else { n })
}

/// Pop from the model the end `flavor` pops from.
fn model_pop(model: &mut VecDeque<usize>, flavor: Flavor) -> Option<usize> {
    match flavor {
        Flavor::Lifo => model.pop_back(),
        Flavor::Fifo => model.pop_front(),
    }
}

proptest! {
    #![proptest_config(cases(96))]

    /// Owner pushes and pops, two thieves steal and one steals in batches
    /// into a second deque, against two `VecDeque`s; every capacity from 1
    /// to 64 (the second deque's too), both flavours; every element is
    /// dropped exactly once by the end.
    #[test]
    fn deque_matches_vecdeque(
        cap_log in 0u32..7,
        dest_cap_log in 0u32..7,
        flavor in flavor(),
        dest_flavor in flavor(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let cap = 1usize << cap_log;
        let dest_cap = 1usize << dest_cap_log;
        let drops = Arc::new(Mutex::new(vec![0u32; ops.len()]));
        let mut pushed = 0usize;
        {
            let w = new_worker::<Tracked>(flavor, 0, cap).unwrap();
            let thieves = [w.stealer(), w.stealer().clone()];
            let dest = new_worker::<Tracked>(dest_flavor, 0, dest_cap).unwrap();
            prop_assert_eq!(w.capacity(), cap);
            prop_assert_eq!(w.flavor(), flavor);
            let mut model = VecDeque::new();
            let mut dest_model = VecDeque::new();
            for op in &ops {
                match op {
                    Op::Push => {
                        let id = pushed;
                        pushed += 1;
                        match w.push(Tracked { id, drops: Arc::clone(&drops) }) {
                            Ok(()) => { prop_assert!(model.len() < cap); model.push_back(id) }
                            Err(Full(back)) => {
                                prop_assert_eq!(model.len(), cap);
                                prop_assert_eq!(back.id, id);
                            }
                        }
                    }
                    Op::Pop => {
                        let got = w.pop().map(|t| t.id);
                        prop_assert_eq!(got, model_pop(&mut model, flavor));
                    }
                    Op::Steal(n) => match thieves[*n as usize % 2].steal() {
                        Steal::Success(t) => prop_assert_eq!(Some(t.id), model.pop_front()),
                        Steal::Empty => prop_assert!(model.is_empty()),
                        Steal::Retry => prop_assert!(false, "Retry without a race"),
                    },
                    Op::StealBatch => {
                        let room = dest_cap - dest_model.len();
                        let want = model.len().div_ceil(2).clamp(1, MAX_BATCH).min(room);
                        match thieves[0].steal_batch(&dest) {
                            Steal::Success(()) => {
                                prop_assert!(want > 0 && !model.is_empty());
                                for _ in 0..want.min(model.len()) {
                                    dest_model.push_back(model.pop_front().unwrap());
                                }
                            }
                            Steal::Empty => prop_assert!(model.is_empty()),
                            // Nothing fits in `dest`.
                            Steal::Retry => prop_assert!(room == 0 && !model.is_empty()),
                        }
                    }
                    Op::PopDest => {
                        let got = dest.pop().map(|t| t.id);
                        prop_assert_eq!(got, model_pop(&mut dest_model, dest_flavor));
                    }
                }
                prop_assert_eq!(w.len(), model.len());
                prop_assert_eq!(thieves[1].len(), model.len());
                prop_assert_eq!(w.is_empty(), model.is_empty());
                prop_assert_eq!(dest.len(), dest_model.len());
            }
            // Whatever is still in the deques is dropped with them.
            let held: usize = model.len() + dest_model.len();
            let dropped: u32 = drops.lock().unwrap().iter().sum();
            prop_assert_eq!(dropped as usize, pushed - held);
            drop(w);
            // The stealers keep the deque alive.
            let dropped: u32 = drops.lock().unwrap().iter().sum();
            prop_assert_eq!(dropped as usize, pushed - held);
        }
        let drops = drops.lock().unwrap();
        for (id, &n) in drops.iter().enumerate().take(pushed) {
            prop_assert_eq!(n, 1, "element {} dropped {} times", id, n);
        }
    }
}

/// One owner pushing (and popping some itself), `thieves` thieves
/// stealing one at a time or in batches into their own deques: every
/// element is taken exactly once and dropped exactly once.
fn owner_and_thieves(flavor: Flavor, capacity: usize, thieves: usize, n: usize) {
    let drops = Arc::new(Mutex::new(vec![0u32; n]));
    let taken: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let d = Arc::clone(&drops);
    let tk = Arc::clone(&taken);
    common::finishes(120, "owner and thieves", move || {
        let w = new_worker::<Tracked>(flavor, 0, capacity).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..thieves)
            .map(|i| {
                let s: Stealer<Tracked> = w.stealer();
                let done = Arc::clone(&done);
                let taken = Arc::clone(&tk);
                std::thread::spawn(move || {
                    let own = Worker::<Tracked>::new_lifo(0, 8).unwrap();
                    let record = |t: Tracked| {
                        taken[t.id].fetch_add(1, Ordering::SeqCst);
                    };
                    loop {
                        let finished = done.load(Ordering::SeqCst);
                        let r = if i % 2 == 0 {
                            s.steal().map(record)
                        } else {
                            let r = s.steal_batch(&own);
                            while let Some(t) = own.pop() {
                                record(t);
                            }
                            r.map(|()| ())
                        };
                        if finished && r.is_empty() {
                            break;
                        }
                        if !r.is_success() {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for id in 0..n {
            let mut t = Tracked {
                id,
                drops: Arc::clone(&d),
            };
            loop {
                match w.push(t) {
                    Ok(()) => break,
                    Err(Full(back)) => {
                        t = back;
                        std::thread::yield_now();
                    }
                }
            }
            if id % 3 == 0 {
                if let Some(t) = w.pop() {
                    tk[t.id].fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        done.store(true, Ordering::SeqCst);
        for h in handles {
            h.join().unwrap();
        }
        // The thieves stopped on an empty deque after the last push.
        while let Some(t) = w.pop() {
            tk[t.id].fetch_add(1, Ordering::SeqCst);
        }
    });
    for (id, c) in taken.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), 1, "element {id} taken wrongly");
    }
    for (id, &c) in drops.lock().unwrap().iter().enumerate() {
        assert_eq!(c, 1, "element {id} dropped {c} times");
    }
}

trait StealMap<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Steal<U>;
}
impl<T> StealMap<T> for Steal<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Steal<U> {
        match self {
            Steal::Success(v) => Steal::Success(f(v)),
            Steal::Empty => Steal::Empty,
            Steal::Retry => Steal::Retry,
        }
    }
}

fn per_run() -> usize {
    if common::in_vm() {
        5_000
    } else {
        100_000
    }
}

#[test]
fn lifo_owner_and_three_thieves_take_every_element_once() {
    owner_and_thieves(Flavor::Lifo, 64, 3, per_run());
}

#[test]
fn fifo_owner_and_three_thieves_take_every_element_once() {
    owner_and_thieves(Flavor::Fifo, 64, 3, per_run());
}

#[test]
fn deque_of_one_slot_with_thieves_takes_every_element_once() {
    owner_and_thieves(Flavor::Lifo, 1, 2, per_run() / 5);
}

#[test]
fn host_only_stress_owner_and_eight_thieves() {
    for cap in [2, 1024] {
        owner_and_thieves(Flavor::Lifo, cap, 8, 300_000);
    }
}

/// An element whose drop panics once (the first of its kind).
struct PanicOnDrop {
    panics: bool,
    drops: Arc<AtomicUsize>,
}
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.panics {
            panic!("element drop panics");
        }
    }
}

#[test]
fn a_panicking_element_drop_leaks_nothing_else() {
    for flavor in [Flavor::Lifo, Flavor::Fifo] {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = new_worker::<PanicOnDrop>(flavor, 0, 8).unwrap();
        let s = w.stealer();
        // Wrap around so the elements left cross the end of the buffer.
        for _ in 0..6 {
            assert!(w
                .push(PanicOnDrop {
                    panics: false,
                    drops: Arc::clone(&drops)
                })
                .is_ok());
        }
        for _ in 0..5 {
            drop(s.steal().success().unwrap());
        }
        for i in 0..6 {
            assert!(w
                .push(PanicOnDrop {
                    panics: i == 2,
                    drops: Arc::clone(&drops)
                })
                .is_ok());
        }
        assert_eq!(drops.load(Ordering::SeqCst), 5);
        drop(w);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(s)));
        let p = r.expect_err("the element's drop panics");
        assert_eq!(common::panic_message(&*p), "element drop panics");
        // 5 stolen + the 7 left: all dropped, the panicking one included.
        assert_eq!(drops.load(Ordering::SeqCst), 12);
    }
}

/// A panic in code that holds a popped or stolen element leaves the deque
/// consistent: the element is the caller's and is dropped by its unwind.
#[test]
fn a_panic_while_holding_a_stolen_element_leaves_the_deque_usable() {
    let drops = Arc::new(AtomicUsize::new(0));
    let w = Worker::<PanicOnDrop>::new_lifo(0, 4).unwrap();
    let s = w.stealer();
    for _ in 0..3 {
        assert!(w
            .push(PanicOnDrop {
                panics: false,
                drops: Arc::clone(&drops)
            })
            .is_ok());
    }
    let r = std::thread::spawn(move || {
        let _t = s.steal().success().unwrap();
        panic!("thief panics");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(w.len(), 2);
    assert!(w.pop().is_some());
    assert!(w.pop().is_some());
    assert!(w.pop().is_none());
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn zero_sized_elements_are_counted() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Zst;
    impl Drop for Zst {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let w = Worker::<Zst>::new_fifo(0, 1 << 10).unwrap();
    for _ in 0..1 << 10 {
        assert!(w.push(Zst).is_ok());
    }
    assert!(w.push(Zst).is_err());
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert!(w.stealer().steal().is_success());
    drop(w.pop());
    drop(w);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1 + (1 << 10));
}

#[test]
fn capacities_at_the_boundaries() {
    // 1 and a large valid one work.
    let one = Worker::<u64>::new_lifo(0, 1).unwrap();
    assert!(one.push(1).is_ok());
    assert_eq!(one.push(2).unwrap_err().into_inner(), 2);
    assert_eq!(one.pop(), Some(1));
    let big = Worker::<u64>::new_lifo(0, 1 << 20).unwrap();
    for i in 0..1 << 20 {
        assert!(big.push(i).is_ok());
    }
    assert!(big.push(0).is_err());
    assert_eq!(big.stealer().steal(), Steal::Success(0));
    drop(big);
    // The largest accepted capacity is refused by the memory it needs, with
    // a typed error, not a panic or an abort.
    match Worker::<u64>::new_lifo(0, MAX_CAPACITY) {
        Err(MemError::SizeOverflow { count, .. }) => assert_eq!(count, MAX_CAPACITY),
        other => panic!("{other:?}"),
    }
    // Invalid: 0, not a power of two, above the maximum, usize::MAX,
    // u32::MAX.
    for bad in [
        0,
        3,
        1000,
        MAX_CAPACITY + 1,
        MAX_CAPACITY * 2,
        usize::MAX,
        u32::MAX as usize,
    ] {
        for flavor in [Flavor::Lifo, Flavor::Fifo] {
            match new_worker::<u64>(flavor, 0, bad) {
                Err(MemError::InvalidSize { requested, reason }) => {
                    assert_eq!(requested, bad as u64);
                    assert!(reason.contains("deque"), "{reason}");
                }
                other => panic!("capacity {bad}: {other:?}"),
            }
        }
    }
    let err = Worker::<u8>::new_lifo(0, 100).unwrap_err().to_string();
    assert!(err.contains("use 128"), "{err}");
    let err = Worker::<u8>::new_lifo(0, 0).unwrap_err().to_string();
    assert!(err.contains("at least one"), "{err}");
}

#[test]
fn absent_nodes_are_refused_without_fallback() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    for node in [
        absent,
        NodeId::new(topo.num_nodes() as u32),
        NodeId::new(u32::MAX),
    ] {
        for flavor in [Flavor::Lifo, Flavor::Fifo] {
            let err = new_worker::<u64>(flavor, node.get(), 64).unwrap_err();
            assert!(err.to_string().contains("does not exist"), "{node}: {err}");
        }
    }
}

#[test]
fn deques_on_every_node_have_every_page_there() {
    let topo = common::topology();
    let mut checked = 0;
    for node in topo.nodes().iter().filter(|n| n.has_memory()) {
        for flavor in [Flavor::Lifo, Flavor::Fifo] {
            let w = new_worker::<[u64; 4]>(flavor, node.id().get(), 4096).unwrap();
            assert_eq!(w.node(), node.id());
            let p = w.placement().unwrap();
            assert!(p.is_all_on(node.id()), "{p}");
            let proof = w.verify().unwrap();
            // 4096 one-byte stamps and 4096 values of 32 bytes.
            assert!(proof.pages() >= 4096 * 33 / 4096, "{proof}");
            let s = w.stealer();
            assert_eq!(s.node(), node.id());
            assert_eq!(s.verify().unwrap(), proof);
        }
        checked += 1;
    }
    if common::expected_nodes().is_some_and(|n| n >= 2) {
        assert!(
            checked >= 2,
            "a multi-node guest gave deques on {checked} node(s)"
        );
    }
}

#[test]
fn steal_batch_into_its_own_worker_moves_nothing() {
    let w = Worker::<u8>::new_lifo(0, 4).unwrap();
    assert!(w.push(1).is_ok());
    assert_eq!(w.stealer().steal_batch(&w), Steal::Empty);
    assert_eq!(w.len(), 1);
}

/// A pool of workers that steal from one another in batches (the way a
/// scheduler uses the deque): every worker owns a deque of capacity 1 or
/// 2 (so `steal_batch` constantly meets a full or smaller `dest`, and
/// slots are reused at once), in both flavours, pushes its share, pops,
/// and steals single elements or batches from the others. Every element
/// is taken exactly once and dropped exactly once.
#[test]
fn workers_stealing_from_one_another_take_and_drop_each_element_once() {
    const WORKERS: usize = 4;
    let n = per_run() / 4;
    let drops = Arc::new(Mutex::new(vec![0u32; n]));
    let taken: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let d = Arc::clone(&drops);
    let tk = Arc::clone(&taken);
    common::finishes(180, "workers stealing from one another", move || {
        let workers: Vec<Worker<Tracked>> = (0..WORKERS)
            .map(|i| {
                let flavor = if i % 2 == 0 {
                    Flavor::Lifo
                } else {
                    Flavor::Fifo
                };
                new_worker(flavor, 0, 1 << (i % 2)).unwrap()
            })
            .collect();
        let stealers: Arc<Vec<Stealer<Tracked>>> =
            Arc::new(workers.iter().map(Worker::stealer).collect());
        let pushing = Arc::new(AtomicUsize::new(WORKERS));
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(me, w)| {
                let stealers = Arc::clone(&stealers);
                let pushing = Arc::clone(&pushing);
                let taken = Arc::clone(&tk);
                let drops = Arc::clone(&d);
                std::thread::spawn(move || {
                    let record = |t: Tracked| {
                        taken[t.id].fetch_add(1, Ordering::SeqCst);
                    };
                    let mut next = me;
                    // A value `Full` gave back, pushed again next round.
                    let mut pending: Option<Tracked> = None;
                    let mut round = 0usize;
                    let mut finished_pushing = false;
                    loop {
                        round += 1;
                        if next < n {
                            let t = pending.take().unwrap_or_else(|| Tracked {
                                id: next,
                                drops: Arc::clone(&drops),
                            });
                            match w.push(t) {
                                Ok(()) => next += WORKERS,
                                // Full: the value comes back intact.
                                Err(Full(back)) => {
                                    assert_eq!(back.id, next);
                                    pending = Some(back);
                                }
                            }
                        } else if !finished_pushing {
                            finished_pushing = true;
                            pushing.fetch_sub(1, Ordering::SeqCst);
                        }
                        if round.is_multiple_of(3) {
                            if let Some(t) = w.pop() {
                                record(t);
                            }
                        }
                        let victim = &stealers[(me + 1 + round % (WORKERS - 1)) % WORKERS];
                        let r = if round.is_multiple_of(2) {
                            victim.steal_batch(&w)
                        } else {
                            match victim.steal() {
                                Steal::Success(t) => {
                                    record(t);
                                    Steal::Success(())
                                }
                                Steal::Empty => Steal::Empty,
                                Steal::Retry => Steal::Retry,
                            }
                        };
                        if finished_pushing && pushing.load(Ordering::SeqCst) == 0 {
                            // Drain: own deque, then the others until all
                            // look empty.
                            while let Some(t) = w.pop() {
                                record(t);
                            }
                            if r.is_empty() && stealers.iter().all(Stealer::is_empty) {
                                break;
                            }
                        }
                        if !r.is_success() {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // Whatever a worker pushed after another's last look is still in
        // some deque: take it now.
        for s in stealers.iter() {
            loop {
                match s.steal() {
                    Steal::Success(t) => {
                        tk[t.id].fetch_add(1, Ordering::SeqCst);
                    }
                    Steal::Empty => break,
                    Steal::Retry => {}
                }
            }
        }
    });
    for (id, c) in taken.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), 1, "element {id} taken wrongly");
    }
    for (id, &c) in drops.lock().unwrap().iter().enumerate() {
        assert_eq!(c, 1, "element {id} dropped {c} times");
    }
}

/// Elements of 1 MiB: pushed, handed back by `Full`, stolen, popped and
/// dropped with the deque byte for byte (on a thread with room for them
/// on its stack).
#[test]
fn huge_elements_move_intact() {
    type Big = [u8; 1 << 20];
    fn big(fill: u8) -> Box<Big> {
        vec![fill; 1 << 20].into_boxed_slice().try_into().unwrap()
    }
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            for cap in [1usize, 2] {
                for flavor in [Flavor::Lifo, Flavor::Fifo] {
                    let w = new_worker::<Big>(flavor, 0, cap).unwrap();
                    let s = w.stealer();
                    for i in 0..cap as u8 {
                        assert!(w.push(*big(i + 1)).is_ok());
                    }
                    let back = w.push(*big(0xEE)).unwrap_err().into_inner();
                    assert!(back.iter().all(|&b| b == 0xEE));
                    let stolen = s.steal().success().unwrap();
                    assert!(stolen.iter().all(|&b| b == 1));
                    // The freed slot takes a new one.
                    assert!(w.push(*big(0x55)).is_ok());
                    let popped = w.pop().unwrap();
                    let want = match flavor {
                        Flavor::Lifo => 0x55,
                        Flavor::Fifo if cap == 1 => 0x55,
                        Flavor::Fifo => 2,
                    };
                    assert!(popped.iter().all(|&b| b == want), "{flavor:?} {cap}");
                    // One left in the deque, dropped with it.
                    assert_eq!(w.len(), cap - 1);
                    drop(w);
                    drop(s);
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Making (and dropping) a deque of large elements takes no stack for an
/// element: the slots are set up in place. (Pushing, popping and stealing
/// move an element by value, through the caller's stack, as any `T` does.) (It once built each empty slot on the stack
/// first, and a deque of 1 MiB elements overflowed the 2 MiB stack of a
/// spawned thread in a debug build: an abort, whatever the capacity.) Run
/// in a child process, so that an overflow fails this test alone.
#[test]
fn making_a_deque_of_large_elements_takes_no_stack_for_them() {
    if !common::in_child("making_a_deque_of_large_elements_takes_no_stack_for_them") {
        return;
    }
    // 1 MiB elements on a 512 KiB stack.
    let r = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(|| {
            for cap in [1usize, 2, 4] {
                let w = Worker::<[u8; 1 << 20]>::new_lifo(0, cap).unwrap();
                assert_eq!((w.capacity(), w.len()), (cap, 0));
                let w = Worker::<[u8; 1 << 20]>::new_fifo(0, cap).unwrap();
                assert!(w.stealer().is_empty());
                assert!(w.verify().unwrap().is_all_on(NodeId::new(0)));
                // Refused capacities do not touch an element either.
                assert!(Worker::<[u8; 1 << 20]>::new_lifo(0, 3).is_err());
            }
        })
        .unwrap()
        .join();
    assert!(r.is_ok());
}

/// Element types the buffer cannot hold and capacities whose slots do not
/// fit are typed errors, not panics or aborts.
#[test]
fn element_types_and_sizes_the_buffer_cannot_hold_are_errors() {
    #[repr(align(131072))]
    struct OverAligned(#[allow(dead_code)] u8);
    match Worker::<OverAligned>::new_lifo(0, 4) {
        Err(MemError::InvalidAlignment { align }) => assert_eq!(align, 131072),
        other => panic!("{:?}", other.map(|_| ())),
    }
    // Slots of 1 MiB elements at a capacity the address space holds but no
    // node does.
    match Worker::<[u8; 1 << 20]>::new_fifo(0, 1 << 30) {
        Err(MemError::SizeOverflow { .. } | MemError::InvalidSize { .. })
        | Err(MemError::OutOfNodeMemory { .. }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    match Worker::<[u8; 1 << 20]>::new_fifo(0, 1 << 50) {
        Err(MemError::SizeOverflow { count, .. }) => assert_eq!(count, 1 << 50),
        other => panic!("{:?}", other.map(|_| ())),
    }
}
