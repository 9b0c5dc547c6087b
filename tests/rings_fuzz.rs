//! L3 rings, tried as an adversary would: operation sequences against a
//! model over the whole configuration space (every small capacity and a
//! few larger powers of two), element types that record every creation and
//! drop (a double drop or a leak fails the test), zero-sized elements,
//! iterators and `Drop`s that panic, bulk lengths around the capacity,
//! two threads at once, and every capacity edge. Anything that could hang
//! runs under a watchdog, so a regression fails instead of stalling CI.

mod common;

use numakit::collections::{spsc, MpmcRing, PopError, PushError, MAX_CAPACITY};
use numakit::mem::MemError;
use numakit::NodeId;
use proptest::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------
// Elements that account for themselves.

/// Every live [`Tracked`] value of one test case, by id. Creating an id
/// twice or dropping one that is not live panics: that is a double drop.
#[derive(Default)]
struct Registry {
    live: Mutex<HashSet<u64>>,
    next: AtomicUsize,
}

impl Registry {
    fn make(self: &Arc<Self>) -> Tracked {
        self.make_with(false)
    }

    fn make_with(self: &Arc<Self>, panic_on_drop: bool) -> Tracked {
        let id = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        assert!(self.live.lock().unwrap().insert(id), "id {id} made twice");
        Tracked {
            id,
            registry: Arc::clone(self),
            panic_on_drop,
        }
    }

    fn live(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    fn live_ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.live.lock().unwrap().iter().copied().collect();
        v.sort_unstable();
        v
    }
}

#[derive(Debug)]
struct Tracked {
    id: u64,
    registry: Arc<Registry>,
    panic_on_drop: bool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({:?})", self.live_ids())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let was_live = self
            .registry
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        if !was_live {
            // Not a test assertion that unwinds through the ring: a double
            // drop is reported loudly and the process stops.
            eprintln!("value {} dropped twice", self.id);
            std::process::abort();
        }
        if self.panic_on_drop && !std::thread::panicking() {
            panic!("Drop of value {} panics (on purpose)", self.id);
        }
    }
}

/// An iterator that makes `n` fresh values lazily and panics when asked
/// for value number `panic_at` (if any).
struct Supply<'a> {
    registry: &'a Arc<Registry>,
    made: usize,
    n: usize,
    panic_at: Option<usize>,
    hinted: bool,
}

impl Iterator for Supply<'_> {
    type Item = Tracked;
    fn next(&mut self) -> Option<Tracked> {
        if self.made == self.n {
            return None;
        }
        if self.panic_at == Some(self.made) {
            panic!("the iterator panics at item {} (on purpose)", self.made);
        }
        self.made += 1;
        Some(self.registry.make())
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.hinted {
            (self.n - self.made, Some(self.n - self.made))
        } else {
            (0, None)
        }
    }
}

fn quiet_panics() {
    // The panics below are on purpose; keep their messages out of the log.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("");
            let on_purpose = msg.ends_with("(on purpose)") || msg == "capacity overflow";
            if !on_purpose {
                default(info);
            }
        }));
    });
}

fn capacity() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(2), Just(4), Just(8), Just(16), Just(64)]
}

// ---------------------------------------------------------------------------
// SPSC against a VecDeque.

#[derive(Debug, Clone)]
enum SpscOp {
    Push,
    Pop,
    PushIter {
        n: usize,
        panic_at: Option<usize>,
        hinted: bool,
    },
    PopInto(usize),
}

fn spsc_op(cap: usize) -> impl Strategy<Value = SpscOp> {
    let len = 0..=cap + 2;
    prop_oneof![
        4 => Just(SpscOp::Push),
        4 => Just(SpscOp::Pop),
        2 => (len.clone(), proptest::option::of(0..=cap + 2), any::<bool>())
            .prop_map(|(n, panic_at, hinted)| SpscOp::PushIter { n, panic_at, hinted }),
        2 => len.prop_map(SpscOp::PopInto),
    ]
}

fn spsc_case() -> impl Strategy<Value = (usize, Vec<SpscOp>, bool)> {
    capacity().prop_flat_map(|cap| {
        (
            Just(cap),
            proptest::collection::vec(spsc_op(cap), 1..120),
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(96)))]

    #[test]
    fn spsc_sequences_match_a_model((cap, ops, consumer_first) in spsc_case()) {
        quiet_panics();
        let registry = Arc::new(Registry::default());
        let (mut tx, mut rx) = spsc::ring::<Tracked>(0, cap).unwrap();
        let mut model: VecDeque<u64> = VecDeque::new();
        for op in ops {
            match op {
                SpscOp::Push => {
                    let v = registry.make();
                    let id = v.id;
                    match tx.push(v) {
                        Ok(()) => { prop_assert!(model.len() < cap); model.push_back(id) }
                        Err(PushError::Full(back)) => {
                            prop_assert_eq!(model.len(), cap);
                            prop_assert_eq!(back.id, id);
                        }
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
                SpscOp::Pop => match rx.pop() {
                    Ok(v) => prop_assert_eq!(Some(v.id), model.pop_front()),
                    Err(PopError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                SpscOp::PushIter { n, panic_at, hinted } => {
                    let first = registry.next.load(Ordering::Relaxed) as u64;
                    let free = cap - model.len();
                    let mut it = Supply { registry: &registry, made: 0, n, panic_at, hinted };
                    let r = catch_unwind(AssertUnwindSafe(|| tx.push_iter(&mut it)));
                    let made = it.made;
                    let panics = panic_at.is_some_and(|k| k < n.min(free));
                    let expect = if panics { panic_at.unwrap() } else { n.min(free) };
                    prop_assert_eq!(made, expect);
                    match r {
                        Ok(pushed) => { prop_assert!(!panics); prop_assert_eq!(pushed, expect) }
                        Err(_) => prop_assert!(panics, "push_iter panicked unexpectedly"),
                    }
                    // What the iterator gave before it panicked is in the
                    // ring, published.
                    model.extend(first..first + made as u64);
                }
                SpscOp::PopInto(max) => {
                    let mut out = Vec::new();
                    let n = rx.pop_into(&mut out, max);
                    prop_assert_eq!(n, max.min(model.len()));
                    let want: Vec<u64> = model.drain(..n).collect();
                    let got: Vec<u64> = out.iter().map(|v| v.id).collect();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(tx.len(), model.len());
            prop_assert_eq!(tx.slots(), cap - model.len());
            prop_assert_eq!(rx.slots(), cap - model.len());
            prop_assert_eq!(tx.is_full(), model.len() == cap);
            prop_assert_eq!(rx.is_empty(), model.is_empty());
            prop_assert_eq!(tx.is_empty(), model.is_empty());
            prop_assert_eq!(rx.peek().ok().map(|v| v.id), model.front().copied());
            // Everything alive is in the ring: nothing leaked.
            prop_assert_eq!(registry.live(), model.len());
        }
        if consumer_first {
            drop(rx);
            prop_assert_eq!(registry.live(), model.len());
            drop(tx);
        } else {
            drop(tx);
            prop_assert_eq!(registry.live(), model.len());
            drop(rx);
        }
        prop_assert_eq!(registry.live(), 0, "leaked: {:?}", registry);
    }
}

/// Copyable elements: the slice operations, across every capacity.
#[derive(Debug, Clone)]
enum SliceOp {
    PushSlice(usize),
    PushSliceAll(usize),
    PopSlice(usize),
    PopSliceAll(usize),
}

fn slice_case() -> impl Strategy<Value = (usize, Vec<SliceOp>)> {
    capacity().prop_flat_map(|cap| {
        let len = 0..=cap + 2;
        let op = prop_oneof![
            len.clone().prop_map(SliceOp::PushSlice),
            len.clone().prop_map(SliceOp::PushSliceAll),
            len.clone().prop_map(SliceOp::PopSlice),
            len.prop_map(SliceOp::PopSliceAll),
        ];
        (Just(cap), proptest::collection::vec(op, 1..100))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn spsc_slice_operations_match_a_model((cap, ops) in slice_case()) {
        let (mut tx, mut rx) = spsc::ring::<u64>(0, cap).unwrap();
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                SliceOp::PushSlice(n) => {
                    let items: Vec<u64> = (next..next + n as u64).collect();
                    let pushed = tx.push_slice(&items);
                    prop_assert_eq!(pushed, n.min(cap - model.len()));
                    model.extend(&items[..pushed]);
                    next += pushed as u64;
                }
                SliceOp::PushSliceAll(n) => {
                    let items: Vec<u64> = (next..next + n as u64).collect();
                    let free = cap - model.len();
                    match tx.push_slice_all(&items) {
                        Ok(()) => { prop_assert!(n <= free); model.extend(&items); next += n as u64 }
                        Err(PushError::Full(f)) => { prop_assert!(n > free); prop_assert_eq!(f, free) }
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
                SliceOp::PopSlice(n) => {
                    let mut out = vec![u64::MAX; n];
                    let got = rx.pop_slice(&mut out);
                    prop_assert_eq!(got, n.min(model.len()));
                    let want: Vec<u64> = model.drain(..got).collect();
                    prop_assert_eq!(&out[..got], &want[..]);
                    prop_assert!(out[got..].iter().all(|&v| v == u64::MAX));
                }
                SliceOp::PopSliceAll(n) => {
                    let mut out = vec![u64::MAX; n];
                    match rx.pop_slice_all(&mut out) {
                        Ok(()) => {
                            prop_assert!(n <= model.len());
                            let want: Vec<u64> = model.drain(..n).collect();
                            prop_assert_eq!(out, want);
                        }
                        Err(PopError::Empty) => {
                            prop_assert!(n > model.len());
                            prop_assert!(out.iter().all(|&v| v == u64::MAX));
                        }
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
            }
            prop_assert_eq!(rx.len(), model.len());
        }
    }
}

// ---------------------------------------------------------------------------
// MPMC against a VecDeque.

#[derive(Debug, Clone)]
enum MpmcOp {
    Push,
    Pop,
    PushBulk(usize),
    PopBulk(usize),
    PushIter { n: usize, panic_at: Option<usize> },
    PopInto(usize),
    Close,
    ForcePush,
}

fn mpmc_case() -> impl Strategy<Value = (usize, Vec<MpmcOp>)> {
    capacity().prop_flat_map(|cap| {
        let len = 0..=cap + 2;
        let op = prop_oneof![
            6 => Just(MpmcOp::Push),
            6 => Just(MpmcOp::Pop),
            2 => len.clone().prop_map(MpmcOp::PushBulk),
            2 => len.clone().prop_map(MpmcOp::PopBulk),
            2 => (len.clone(), proptest::option::of(0..=cap + 2))
                .prop_map(|(n, panic_at)| MpmcOp::PushIter { n, panic_at }),
            2 => len.prop_map(MpmcOp::PopInto),
            1 => Just(MpmcOp::Close),
            3 => Just(MpmcOp::ForcePush),
        ];
        (Just(cap), proptest::collection::vec(op, 1..150))
    })
}

/// How a case's ring ends: dropped, or turned into an iterator that takes
/// some values (`take`, possibly more than are there) and is then dropped.
fn mpmc_ending() -> impl Strategy<Value = Option<usize>> {
    proptest::option::of(0..=70usize)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(96)))]

    #[test]
    fn mpmc_sequences_match_a_model((cap, ops) in mpmc_case(), ending in mpmc_ending()) {
        quiet_panics();
        let registry = Arc::new(Registry::default());
        let ring = MpmcRing::<Tracked>::new(0, cap).unwrap();
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut closed = false;
        let empty = |closed: bool| if closed { PopError::Closed } else { PopError::Empty };
        for op in ops {
            match op {
                MpmcOp::Push => {
                    let v = registry.make();
                    let id = v.id;
                    match ring.push(v) {
                        Ok(()) => { prop_assert!(!closed && model.len() < cap); model.push_back(id) }
                        Err(PushError::Full(back)) => {
                            prop_assert!(!closed && model.len() == cap);
                            prop_assert_eq!(back.id, id);
                        }
                        Err(PushError::Closed(back)) => { prop_assert!(closed); prop_assert_eq!(back.id, id) }
                    }
                }
                MpmcOp::Pop => match ring.pop() {
                    Ok(v) => prop_assert_eq!(Some(v.id), model.pop_front()),
                    Err(e) => { prop_assert!(model.is_empty()); prop_assert_eq!(e, empty(closed)) }
                },
                MpmcOp::PushBulk(n) => {
                    let items: Vec<Tracked> = (0..n).map(|_| registry.make()).collect();
                    let ids: Vec<u64> = items.iter().map(|v| v.id).collect();
                    match ring.push_bulk(items) {
                        Ok(()) => {
                            prop_assert!(!closed && n <= cap - model.len());
                            model.extend(ids);
                        }
                        Err(PushError::Full(back)) => {
                            prop_assert!(!closed && n > cap - model.len());
                            prop_assert_eq!(back.iter().map(|v| v.id).collect::<Vec<_>>(), ids);
                        }
                        Err(PushError::Closed(back)) => {
                            prop_assert!(closed);
                            prop_assert_eq!(back.len(), n);
                        }
                    }
                }
                MpmcOp::PopBulk(n) => {
                    let mut out = Vec::new();
                    match ring.pop_bulk(&mut out, n) {
                        Ok(()) => {
                            prop_assert!(n <= model.len());
                            let want: Vec<u64> = model.drain(..n).collect();
                            prop_assert_eq!(out.iter().map(|v| v.id).collect::<Vec<_>>(), want);
                        }
                        Err(e) => {
                            prop_assert!(n > model.len(), "{e:?} with {} there", model.len());
                            prop_assert!(out.is_empty());
                            prop_assert_eq!(e, empty(closed));
                        }
                    }
                }
                MpmcOp::PushIter { n, panic_at } => {
                    let first = registry.next.load(Ordering::Relaxed) as u64;
                    let free = if closed { 0 } else { cap - model.len() };
                    let supply = Supply { registry: &registry, made: 0, n, panic_at, hinted: true };
                    let mut it = supply.peekable();
                    let r = catch_unwind(AssertUnwindSafe(|| ring.push_iter(&mut it)));
                    // `peek` asks for one value beyond what fits, to see
                    // whether there is one: a panic there counts too.
                    let asked = n.min(free + 1);
                    let panics = panic_at.is_some_and(|k| k < asked);
                    let pushed = if panics { panic_at.unwrap().min(free) } else { n.min(free) };
                    match r {
                        Ok(k) => { prop_assert!(!panics); prop_assert_eq!(k, pushed) }
                        Err(_) => prop_assert!(panics, "push_iter panicked unexpectedly"),
                    }
                    model.extend(first..first + pushed as u64);
                    // A value that did not fit stays in the iterator (asked
                    // only of an iterator that would not panic when drained).
                    if panic_at.is_none_or(|k| k >= n) {
                        prop_assert_eq!(it.count(), n - pushed);
                    }
                }
                MpmcOp::PopInto(max) => {
                    let mut out = Vec::new();
                    let n = ring.pop_into(&mut out, max);
                    prop_assert_eq!(n, max.min(model.len()));
                    let want: Vec<u64> = model.drain(..n).collect();
                    prop_assert_eq!(out.iter().map(|v| v.id).collect::<Vec<_>>(), want);
                }
                MpmcOp::Close => {
                    ring.close();
                    closed = true;
                }
                MpmcOp::ForcePush => {
                    let v = registry.make();
                    let id = v.id;
                    match ring.force_push(v) {
                        Ok(None) => { prop_assert!(!closed && model.len() < cap); model.push_back(id) }
                        Ok(Some(old)) => {
                            prop_assert!(!closed && model.len() == cap);
                            prop_assert_eq!(Some(old.id), model.pop_front());
                            model.push_back(id);
                        }
                        Err(PushError::Closed(back)) => { prop_assert!(closed); prop_assert_eq!(back.id, id) }
                        Err(e) => prop_assert!(false, "force_push: {e:?}"),
                    }
                }
            }
            prop_assert_eq!(ring.len(), model.len());
            prop_assert_eq!(ring.is_empty(), model.is_empty());
            prop_assert_eq!(ring.is_full(), model.len() == cap);
            prop_assert_eq!(ring.is_closed(), closed);
            prop_assert_eq!(registry.live(), model.len());
        }
        if let Some(take) = ending {
            // By value: the values come out oldest first, also after
            // `close`; those not taken are dropped with the iterator.
            let mut it = ring.into_iter();
            prop_assert_eq!(it.len(), model.len());
            let got: Vec<u64> = it.by_ref().take(take).map(|v| v.id).collect();
            let want: Vec<u64> = model.drain(..take.min(model.len())).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(registry.live(), model.len());
            drop(it);
        } else {
            drop(ring);
        }
        prop_assert_eq!(registry.live(), 0, "leaked: {:?}", registry);
    }
}

// ---------------------------------------------------------------------------
// Zero-sized elements that count their drops.

static ZST_MADE: AtomicUsize = AtomicUsize::new(0);
static ZST_DROPPED: AtomicUsize = AtomicUsize::new(0);
/// The ZST counters are process-wide: one test uses them at a time.
static ZST_LOCK: Mutex<()> = Mutex::new(());

struct Zst;
impl Zst {
    fn new() -> Zst {
        ZST_MADE.fetch_add(1, Ordering::SeqCst);
        Zst
    }
}
impl Drop for Zst {
    fn drop(&mut self) {
        ZST_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

fn zst_live() -> usize {
    ZST_MADE.load(Ordering::SeqCst) - ZST_DROPPED.load(Ordering::SeqCst)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]

    #[test]
    fn zero_sized_elements_are_counted_and_dropped_once(
        (cap, ops) in mpmc_case(),
    ) {
        let _serial = ZST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let base = zst_live();
        let ring = MpmcRing::<Zst>::new(0, cap).unwrap();
        let (mut tx, mut rx) = spsc::ring::<Zst>(0, cap).unwrap();
        let mut len = 0usize;
        for op in ops {
            // Both rings see the same operations (their lengths drift apart:
            // the MPMC bulk pop is all-or-nothing); the SPSC ring's closing
            // is its consumer's drop, so `Close` is skipped there.
            match op {
                MpmcOp::Push | MpmcOp::PushIter { .. } => {
                    let before = ring.len();
                    let a = ring.push(Zst::new()).is_ok();
                    prop_assert_eq!(a, !ring.is_closed() && before < cap);
                    if tx.push(Zst::new()).is_ok() { len += 1 }
                }
                MpmcOp::Pop | MpmcOp::PopInto(_) => {
                    let _ = ring.pop();
                    if rx.pop().is_ok() { len -= 1 }
                }
                MpmcOp::PushBulk(n) => {
                    let _ = ring.push_bulk((0..n).map(|_| Zst::new()).collect());
                    let items: Vec<Zst> = (0..n).map(|_| Zst::new()).collect();
                    len += tx.push_iter(&mut items.into_iter());
                }
                MpmcOp::PopBulk(n) => {
                    let mut out = Vec::new();
                    let _ = ring.pop_bulk(&mut out, n);
                    let mut out = Vec::new();
                    len -= rx.pop_into(&mut out, n);
                }
                MpmcOp::Close => ring.close(),
                MpmcOp::ForcePush => {
                    let before = ring.len();
                    match ring.force_push(Zst::new()) {
                        Ok(old) => prop_assert_eq!(old.is_some(), before == cap),
                        Err(_) => prop_assert!(ring.is_closed()),
                    }
                    if tx.push(Zst::new()).is_ok() { len += 1 }
                }
            }
            prop_assert_eq!(rx.len(), len);
            prop_assert!(ring.len() <= cap);
            prop_assert_eq!(zst_live() - base, len + ring.len());
        }
        drop((ring, tx, rx));
        prop_assert_eq!(zst_live(), base);
    }
}

// ---------------------------------------------------------------------------
// Two threads at once.

fn spsc_two_threads(cap: usize, n: usize) {
    let registry = Arc::new(Registry::default());
    let (mut tx, mut rx) = spsc::ring::<Tracked>(0, cap).unwrap();
    let r = Arc::clone(&registry);
    let producer = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < n {
            if sent % 3 == 0 {
                let k = (n - sent).min(cap + 1);
                let mut it = Supply {
                    registry: &r,
                    made: 0,
                    n: k,
                    panic_at: None,
                    hinted: sent % 2 == 0,
                }
                .peekable();
                sent += tx.push_iter(&mut it);
                // The one `peek` made and did not push is dropped here.
            } else {
                let mut v = r.make();
                loop {
                    match tx.push(v) {
                        Ok(()) => break,
                        Err(PushError::Full(back)) => {
                            v = back;
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
                sent += 1;
            }
        }
    });
    let mut got = Vec::with_capacity(n);
    let mut out = Vec::new();
    while got.len() < n {
        if got.len() % 2 == 0 {
            if let Ok(v) = rx.pop() {
                got.push(v.id);
            }
        } else {
            out.clear();
            rx.pop_into(&mut out, cap);
            got.extend(out.iter().map(|v| v.id));
        }
        std::thread::yield_now();
    }
    producer.join().unwrap();
    // In order, each once (ids of values made by `peek` and not pushed
    // are skipped, so the order is checked, not contiguity).
    assert!(got.windows(2).all(|w| w[0] < w[1]), "cap {cap}: {got:?}");
    drop(out);
    assert_eq!(rx.pop().map(|v| v.id), Err(PopError::Closed));
    drop(rx);
    assert_eq!(registry.live(), 0, "cap {cap}: {registry:?}");
}

fn mpmc_two_threads(cap: usize, per_producer: usize) {
    let registry = Arc::new(Registry::default());
    let ring = Arc::new(MpmcRing::<(usize, Tracked)>::new(0, cap).unwrap());
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let (ring, r) = (Arc::clone(&ring), Arc::clone(&registry));
            std::thread::spawn(move || {
                let mut seq = 0;
                while seq < per_producer {
                    if seq % 4 == 3 && seq + 2 <= per_producer && cap >= 2 {
                        let items = vec![(seq, r.make()), (seq + 1, r.make())];
                        let mut items = items;
                        loop {
                            match ring.push_bulk(items) {
                                Ok(()) => break,
                                Err(PushError::Full(back)) => {
                                    items = back;
                                    std::thread::yield_now();
                                }
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                        seq += 2;
                    } else {
                        let mut v = (seq, r.make());
                        loop {
                            match ring.push(v) {
                                Ok(()) => break,
                                Err(PushError::Full(back)) => {
                                    v = back;
                                    std::thread::yield_now();
                                }
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                        seq += 1;
                    }
                }
            })
        })
        .collect();
    let total = 2 * per_producer;
    let taken = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|c| {
            let (ring, taken) = (Arc::clone(&ring), Arc::clone(&taken));
            std::thread::spawn(move || {
                let mut got: Vec<(usize, u64)> = Vec::new();
                let mut out = Vec::new();
                let mut turn = c;
                while taken.load(Ordering::SeqCst) < total {
                    out.clear();
                    turn += 1;
                    let n = match turn % 3 {
                        0 => ring.pop().map(|v| out.push(v)).map_or(0, |()| 1),
                        1 => {
                            let k = 2.min(cap);
                            ring.pop_bulk(&mut out, k).map_or(0, |()| k)
                        }
                        _ => ring.pop_into(&mut out, cap),
                    };
                    taken.fetch_add(n, Ordering::SeqCst);
                    got.extend(out.drain(..).map(|(seq, v)| (seq, v.id)));
                    std::thread::yield_now();
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all = Vec::new();
    for c in consumers {
        let got = c.join().unwrap();
        all.extend(got);
    }
    assert_eq!(all.len(), total, "cap {cap}");
    // Each value once: every id distinct, and each producer's sequence
    // numbers 0..per_producer appear exactly twice in all (two producers).
    let ids: HashSet<u64> = all.iter().map(|&(_, id)| id).collect();
    assert_eq!(ids.len(), total, "cap {cap}: a value came out twice");
    let mut seqs: Vec<usize> = all.iter().map(|&(s, _)| s).collect();
    seqs.sort_unstable();
    let want: Vec<usize> = (0..per_producer).flat_map(|s| [s, s]).collect();
    assert_eq!(seqs, want, "cap {cap}");
    assert!(ring.is_empty());
    drop(ring);
    assert_eq!(registry.live(), 0, "cap {cap}: {registry:?}");
}

#[test]
fn spsc_two_threads_every_small_capacity() {
    for cap in [1, 2, 4, 8] {
        common::finishes(
            120,
            &format!("SPSC transfer at capacity {cap}"),
            move || spsc_two_threads(cap, 3000),
        );
    }
}

#[test]
fn mpmc_two_threads_every_small_capacity() {
    for cap in [1, 2, 4, 8] {
        common::finishes(
            120,
            &format!("MPMC transfer at capacity {cap}"),
            move || mpmc_two_threads(cap, 2000),
        );
    }
}

// ---------------------------------------------------------------------------
// Regressions and edges.

/// One slot: "full for lap n" and "free for lap n + 1" used to share a
/// stamp, so a second push into the full slot succeeded, `len` said 2, the
/// value was dropped twice and `pop` then spun forever.
#[test]
fn mpmc_capacity_one_holds_one_value() {
    common::finishes(30, "capacity-1 MPMC ring", || {
        let registry = Arc::new(Registry::default());
        let ring = MpmcRing::<Tracked>::new(0, 1).unwrap();
        for round in 0..5u64 {
            let a = registry.make();
            let a_id = a.id;
            ring.push(a).unwrap();
            let b = registry.make();
            let b_id = b.id;
            match ring.push(b) {
                Err(PushError::Full(back)) => assert_eq!(back.id, b_id),
                other => panic!("round {round}: second push into one slot: {other:?}"),
            }
            assert_eq!((ring.len(), ring.is_full()), (1, true));
            assert!(matches!(
                ring.push_bulk(vec![registry.make()]),
                Err(PushError::Full(_))
            ));
            assert_eq!(ring.pop().unwrap().id, a_id);
            assert_eq!(ring.pop().map(|v| v.id), Err(PopError::Empty));
            assert_eq!(ring.len(), 0);
        }
        ring.push(registry.make()).unwrap();
        drop(ring); // one value in the ring: dropped once
        assert_eq!(registry.live(), 0, "{registry:?}");
    });
}

/// `pop_bulk` used to claim the slots and only then grow `out`: when that
/// panicked the claimed slots were never released, and every later push
/// and pop spun forever. A `Vec` of a zero-sized type at its maximal
/// length makes `reserve` panic without allocating anything.
#[test]
fn mpmc_pop_bulk_that_cannot_grow_its_output_leaves_the_ring_usable() {
    quiet_panics();
    common::finishes(30, "MPMC ring after a panicking pop_bulk", || {
        let ring = MpmcRing::<()>::new(0, 2).unwrap();
        ring.push(()).unwrap();
        ring.push(()).unwrap();
        let mut full: Vec<()> = Vec::with_capacity(usize::MAX);
        // SAFETY: a `Vec` of a zero-sized type has capacity `usize::MAX`,
        // and `()` has no bytes to initialise: every element is valid.
        #[allow(clippy::uninit_vec)]
        unsafe {
            full.set_len(usize::MAX)
        };
        let r = catch_unwind(AssertUnwindSafe(|| ring.pop_bulk(&mut full, 2)));
        assert!(r.is_err(), "reserve beyond usize::MAX must panic");
        assert_eq!(full.len(), usize::MAX);
        // Nothing was taken: both values are still there and the ring moves.
        assert_eq!(ring.len(), 2);
        let mut out = Vec::new();
        ring.pop_bulk(&mut out, 2).unwrap();
        assert_eq!(out.len(), 2);
        ring.push(()).unwrap();
        ring.pop().unwrap();
    });
}

/// A `Drop` that panics while a ring drops its remaining values: the
/// others are still dropped (as a `Vec` does), none twice.
#[test]
fn a_panicking_drop_inside_a_ring_leaks_nothing_else() {
    quiet_panics();
    for cap in [1usize, 2, 4, 8] {
        let registry = Arc::new(Registry::default());
        let ring = MpmcRing::<Tracked>::new(0, cap).unwrap();
        let (mut tx, rx) = spsc::ring::<Tracked>(0, cap).unwrap();
        for i in 0..cap {
            ring.push(registry.make_with(i == cap / 2)).unwrap();
            tx.push(registry.make_with(i == cap / 2)).unwrap();
        }
        assert!(catch_unwind(AssertUnwindSafe(|| drop(ring))).is_err());
        drop(tx);
        assert!(catch_unwind(AssertUnwindSafe(|| drop(rx))).is_err());
        assert_eq!(registry.live(), 0, "cap {cap}: {registry:?}");
    }
}

/// What a ring of each capacity edge does: 0 and non-powers of two are
/// refused with the capacity to use instead, 1 and 2 work, the largest
/// accepted capacity is taken or refused for memory with a typed error
/// (never an abort), and anything above it is refused.
#[test]
fn capacity_edges() {
    fn spsc_err<T>(cap: usize) -> MemError {
        spsc::ring::<T>(0, cap)
            .err()
            .unwrap_or_else(|| panic!("SPSC capacity {cap} accepted"))
    }
    fn mpmc_err<T>(cap: usize) -> MemError {
        MpmcRing::<T>::new(0, cap)
            .err()
            .unwrap_or_else(|| panic!("MPMC capacity {cap} accepted"))
    }
    for cap in [1usize, 2, 4] {
        let (mut tx, mut rx) = spsc::ring::<u64>(0, cap).unwrap();
        let ring = MpmcRing::<u64>::new(0, cap).unwrap();
        for i in 0..cap as u64 {
            tx.push(i).unwrap();
            ring.push(i).unwrap();
        }
        assert!(tx.push(9).is_err() && ring.push(9).is_err(), "cap {cap}");
        assert_eq!((rx.pop(), ring.pop()), (Ok(0), Ok(0)));
        assert_eq!((tx.capacity(), ring.capacity()), (cap, cap));
    }
    for (cap, hint) in [
        (3usize, "use 4"),
        (5, "use 8"),
        (100, "use 128"),
        (1000, "use 1024"),
    ] {
        for e in [spsc_err::<u64>(cap), mpmc_err::<u64>(cap)] {
            assert!(matches!(e, MemError::InvalidSize { .. }), "{cap}: {e:?}");
            assert!(e.to_string().contains(hint), "{cap}: {e}");
        }
    }
    for e in [spsc_err::<u64>(0), mpmc_err::<u64>(0)] {
        assert!(e.to_string().contains("at least one slot"), "{e}");
    }
    // Above the largest capacity, and the extremes.
    for cap in [
        MAX_CAPACITY * 2,
        usize::MAX,
        usize::MAX / 2,
        MAX_CAPACITY + 1,
    ] {
        for e in [
            spsc_err::<u8>(cap),
            mpmc_err::<u8>(cap),
            spsc_err::<()>(cap),
        ] {
            assert!(matches!(e, MemError::InvalidSize { .. }), "{cap}: {e:?}");
        }
    }
    assert!(spsc_err::<u8>(MAX_CAPACITY * 2)
        .to_string()
        .contains("at most"));
    // The largest accepted capacity: slots of a zero-sized type take no
    // memory, so the ring exists (one page); slots of real values cannot
    // be mapped, a typed size error.
    let (mut tx, rx) = spsc::ring::<()>(0, MAX_CAPACITY).unwrap();
    assert_eq!(tx.capacity(), MAX_CAPACITY);
    tx.push(()).unwrap();
    assert_eq!(rx.len(), 1);
    assert_eq!(tx.placement().unwrap().pages(), 1);
    for e in [spsc_err::<u64>(MAX_CAPACITY), mpmc_err::<u8>(MAX_CAPACITY)] {
        assert!(matches!(e, MemError::SizeOverflow { .. }), "{e:?}");
    }
}

/// Slots of a zero-sized type take no memory, whatever the capacity.
#[test]
fn spsc_ring_of_zero_sized_values_maps_one_page() {
    for cap in [1usize, 1 << 10, 1 << 20, 1 << 40] {
        let (tx, _rx) = spsc::ring::<()>(0, cap).unwrap();
        assert_eq!(tx.placement().unwrap().pages(), 1, "capacity {cap}");
    }
}

/// Node edges for both rings: node 0 works; the first absent node,
/// `u32::MAX` are refused with the nodes that exist.
#[test]
fn ring_node_edges() {
    for node in [NodeId::new(u32::MAX), NodeId::new(1 << 20)] {
        let e = MpmcRing::<u8>::new(node, 4).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = spsc::ring::<u8>(node, 4).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}

// ---------------------------------------------------------------------------
// SPSC chunks against a VecDeque, with elements that `Default` can make.

thread_local! {
    /// Live [`Counted`] ids of this thread's case (proptest runs a case on
    /// one thread).
    static COUNTED_LIVE: std::cell::RefCell<HashSet<u64>> = Default::default();
    static COUNTED_NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// `Default` panics when this many more values have been made.
    static DEFAULT_PANICS_IN: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// A value that records its creation and drop (a double drop aborts), and
/// whose `Default` can be told to panic.
#[derive(Debug)]
struct Counted(u64);

impl Counted {
    fn new() -> Counted {
        let id = COUNTED_NEXT.with(|n| {
            let id = n.get();
            n.set(id + 1);
            id
        });
        COUNTED_LIVE.with(|l| assert!(l.borrow_mut().insert(id)));
        Counted(id)
    }
}

impl Default for Counted {
    fn default() -> Counted {
        if let Some(k) = DEFAULT_PANICS_IN.with(|p| p.get()) {
            if k == 0 {
                DEFAULT_PANICS_IN.with(|p| p.set(None));
                panic!("Default panics (on purpose)");
            }
            DEFAULT_PANICS_IN.with(|p| p.set(Some(k - 1)));
        }
        Counted::new()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let was_live = COUNTED_LIVE.with(|l| l.borrow_mut().remove(&self.0));
        if !was_live {
            eprintln!("value {} dropped twice", self.0);
            std::process::abort();
        }
    }
}

fn counted_live() -> usize {
    COUNTED_LIVE.with(|l| l.borrow().len())
}

#[derive(Debug, Clone)]
enum ChunkOp {
    Push,
    Pop,
    Peek,
    /// `write_chunk(n)`, overwrite every default with a fresh value, then
    /// `commit(k)`, `commit_all` (`k == usize::MAX`) or drop (`None`);
    /// `Default` may panic after `panic_in` values.
    Write {
        n: usize,
        commit: Option<usize>,
        panic_in: Option<usize>,
    },
    /// `write_chunk_uninit(n)`, then `fill_from_iter` with `m` values whose
    /// iterator may panic at `panic_at`.
    Fill {
        n: usize,
        m: usize,
        panic_at: Option<usize>,
    },
    /// `write_chunk_uninit(n)`, write `k` slots through the slices, then
    /// `commit(k)` (or drop the chunk when `k` is `None`: nothing written).
    Uninit {
        n: usize,
        k: Option<usize>,
    },
    /// `read_chunk(n)`, check the slices, `commit(k)` or drop.
    Read {
        n: usize,
        commit: Option<usize>,
    },
    /// `read_chunk(n).into_iter()`, take `k`, drop the iterator.
    ReadIter {
        n: usize,
        k: usize,
    },
}

/// Chunk sizes around the capacity, and the extremes.
fn chunk_len(cap: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0..=cap + 1,
        1 => Just(usize::MAX),
        1 => Just(usize::MAX / 2 + 1),
    ]
}

fn chunk_case() -> impl Strategy<Value = (usize, Vec<ChunkOp>)> {
    prop_oneof![Just(1usize), Just(2), Just(4), Just(8), Just(16)].prop_flat_map(|cap| {
        let k = prop_oneof![4 => 0..=cap + 1, 1 => Just(usize::MAX)];
        let op = prop_oneof![
            3 => Just(ChunkOp::Push),
            3 => Just(ChunkOp::Pop),
            1 => Just(ChunkOp::Peek),
            3 => (chunk_len(cap), proptest::option::of(k.clone()), proptest::option::of(0..=cap + 1))
                .prop_map(|(n, commit, panic_in)| ChunkOp::Write { n, commit, panic_in }),
            2 => (chunk_len(cap), 0..=cap + 2, proptest::option::of(0..=cap + 1))
                .prop_map(|(n, m, panic_at)| ChunkOp::Fill { n, m, panic_at }),
            2 => (chunk_len(cap), proptest::option::of(0..=cap))
                .prop_map(|(n, k)| ChunkOp::Uninit { n, k }),
            3 => (chunk_len(cap), proptest::option::of(k.clone()))
                .prop_map(|(n, commit)| ChunkOp::Read { n, commit }),
            2 => (chunk_len(cap), k).prop_map(|(n, k)| ChunkOp::ReadIter { n, k }),
        ];
        (Just(cap), proptest::collection::vec(op, 1..100))
    })
}

/// An iterator of `m` fresh [`Counted`] values that panics when asked for
/// value number `panic_at`.
struct CountedSupply {
    made: usize,
    m: usize,
    panic_at: Option<usize>,
}

impl Iterator for CountedSupply {
    type Item = Counted;
    fn next(&mut self) -> Option<Counted> {
        if self.made == self.m {
            return None;
        }
        if self.panic_at == Some(self.made) {
            panic!("the iterator panics at item {} (on purpose)", self.made);
        }
        self.made += 1;
        Some(Counted::new())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(128)))]

    #[test]
    fn spsc_chunks_match_a_model((cap, ops) in chunk_case()) {
        use numakit::collections::spsc::ChunkError;
        quiet_panics();
        let base = counted_live();
        let (mut tx, mut rx) = spsc::ring::<Counted>(0, cap).unwrap();
        let mut model: VecDeque<u64> = VecDeque::new();
        // Positions written so far, for the expected split of a chunk.
        let mut tail = 0usize;
        let too_few = |n: usize, available: usize| ChunkError::TooFewSlots {
            requested: n,
            available,
            capacity: cap,
        };
        for op in ops {
            let free = cap - model.len();
            match op {
                ChunkOp::Push => {
                    if tx.push(Counted::new()).is_ok() {
                        prop_assert!(free > 0);
                        model.push_back(COUNTED_NEXT.with(|n| n.get()) - 1);
                        tail += 1;
                    } else {
                        prop_assert_eq!(free, 0);
                    }
                }
                ChunkOp::Pop => {
                    prop_assert_eq!(rx.pop().ok().map(|v| v.0), model.pop_front());
                }
                ChunkOp::Peek => {
                    prop_assert_eq!(rx.peek().ok().map(|v| v.0), model.front().copied());
                }
                ChunkOp::Write { n, commit, panic_in } => {
                    DEFAULT_PANICS_IN.with(|p| p.set(panic_in));
                    let r = catch_unwind(AssertUnwindSafe(|| tx.write_chunk(n).map(drop)));
                    DEFAULT_PANICS_IN.with(|p| p.set(None));
                    let defaults_panic = n <= free && panic_in.is_some_and(|k| k < n);
                    match r {
                        Err(_) => prop_assert!(defaults_panic),
                        Ok(Err(e)) => { prop_assert!(n > free); prop_assert_eq!(e, too_few(n, free)) }
                        Ok(Ok(())) => prop_assert!(n <= free && !defaults_panic),
                    }
                    // Nothing was published, and every default was dropped.
                    prop_assert_eq!(counted_live() - base, model.len());
                    if n > free || defaults_panic {
                        continue;
                    }
                    let mut chunk = tx.write_chunk(n).unwrap();
                    prop_assert_eq!(chunk.len(), n);
                    let (a, b) = chunk.as_mut_slices();
                    let start = tail % cap;
                    prop_assert_eq!(a.len(), n.min(cap - start));
                    prop_assert_eq!(a.len() + b.len(), n);
                    let mut ids = Vec::new();
                    for s in a.iter_mut().chain(b.iter_mut()) {
                        *s = Counted::new(); // the default is dropped here
                        ids.push(s.0);
                    }
                    match commit {
                        None => drop(chunk),
                        Some(usize::MAX) => prop_assert_eq!(chunk.commit_all(), n),
                        Some(k) => prop_assert_eq!(chunk.commit(k), k.min(n)),
                    }
                    let k = match commit { None => 0, Some(k) => k.min(n) };
                    model.extend(&ids[..k]);
                    tail += k;
                }
                ChunkOp::Fill { n, m, panic_at } => {
                    let chunk = match tx.write_chunk_uninit(n) {
                        Ok(c) => { prop_assert!(n <= free); c }
                        Err(e) => { prop_assert_eq!(e, too_few(n, free)); continue }
                    };
                    let first = COUNTED_NEXT.with(|c| c.get());
                    let mut it = CountedSupply { made: 0, m, panic_at };
                    let r = catch_unwind(AssertUnwindSafe(|| chunk.fill_from_iter(&mut it)));
                    let want = n.min(m);
                    let panics = panic_at.is_some_and(|p| p < want);
                    let made = it.made;
                    match r {
                        Ok(k) => { prop_assert!(!panics); prop_assert_eq!(k, want); prop_assert_eq!(made, want) }
                        Err(_) => { prop_assert!(panics); prop_assert_eq!(Some(made), panic_at) }
                    }
                    // What the iterator gave before a panic is published.
                    model.extend(first..first + made as u64);
                    tail += made;
                }
                ChunkOp::Uninit { n, k } => {
                    let mut chunk = match tx.write_chunk_uninit(n) {
                        Ok(c) => { prop_assert!(n <= free); c }
                        Err(e) => { prop_assert_eq!(e, too_few(n, free)); continue }
                    };
                    // `None`: the chunk goes out of scope uncommitted.
                    let Some(k) = k.map(|k| k.min(n)) else { continue };
                    let (a, b) = chunk.as_mut_slices();
                    prop_assert_eq!(a.len() + b.len(), n);
                    for s in a.iter_mut().chain(b.iter_mut()).take(k) {
                        let v = s.write(Counted::new());
                        model.push_back(v.0);
                    }
                    // SAFETY: the first `k` slots were written just above.
                    prop_assert_eq!(unsafe { chunk.commit(k) }, k);
                    tail += k;
                }
                ChunkOp::Read { n, commit } => {
                    let chunk = match rx.read_chunk(n) {
                        Ok(c) => { prop_assert!(n <= model.len()); c }
                        Err(e) => { prop_assert_eq!(e, too_few(n, model.len())); continue }
                    };
                    let (a, b) = chunk.as_slices();
                    let got: Vec<u64> = a.iter().chain(b).map(|v| v.0).collect();
                    let want: Vec<u64> = model.iter().take(n).copied().collect();
                    prop_assert_eq!(got, want);
                    let k = match commit {
                        None => 0, // dropped uncommitted at the end of the arm
                        Some(usize::MAX) => chunk.commit_all(),
                        Some(k) => { let c = chunk.commit(k); prop_assert_eq!(c, k.min(n)); c }
                    };
                    model.drain(..k);
                }
                ChunkOp::ReadIter { n, k } => {
                    let chunk = match rx.read_chunk(n) {
                        Ok(c) => c,
                        Err(e) => { prop_assert_eq!(e, too_few(n, model.len())); continue }
                    };
                    let got: Vec<u64> = chunk.into_iter().take(k).map(|v| v.0).collect();
                    let want: Vec<u64> = model.drain(..k.min(n)).collect();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(tx.len(), model.len());
            prop_assert_eq!(tx.slots(), cap - model.len());
            prop_assert_eq!(rx.slots(), cap - model.len());
            prop_assert_eq!(counted_live() - base, model.len(), "leak or lost value");
        }
        drop((tx, rx));
        prop_assert_eq!(counted_live(), base, "leaked");
    }
}
