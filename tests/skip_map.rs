//! L3 skip map: random operation sequences against a `BTreeMap` model
//! (ranges with every kind of bound, inverted and empty ones included),
//! keys and values that record their drops (a double drop or a leak fails
//! the case), keys whose `Ord` panics or is not a total order, concurrent
//! writers and readers, the node and size boundaries, and the placement
//! of every page on the node asked for.
//!
//! Inside the multi-node guest (emulated CPUs) each property runs a tenth
//! of its cases: the map's logic does not depend on the node count.

mod common;

use numakit::collections::skip_map::{InsertError, Ref, DEFAULT_MAX_HEIGHT, MAX_HEIGHT};
use numakit::collections::SkipMap;
use numakit::mem::{locate, MemError, NodeHeap};
use numakit::NodeId;
use proptest::prelude::*;
use std::cell::Cell;
use std::cmp::Ordering as Cmp;
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------
// Drop tracking.

/// Every tracked object alive, by id; drops of an id not alive (double
/// drops) are counted.
#[derive(Default, Debug)]
struct Tracker {
    live: Mutex<HashSet<u64>>,
    next: AtomicU64,
    bad_drops: AtomicUsize,
}

impl Tracker {
    fn live(&self) -> usize {
        self.live.lock().unwrap().len()
    }
    fn check_clean(&self) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.bad_drops.load(Ordering::Relaxed), 0, "double drops");
        prop_assert_eq!(self.live(), 0, "objects never dropped (leaked)");
        Ok(())
    }
}

/// One tracked object: registered when made, unregistered when dropped.
#[derive(Debug)]
struct Tracked {
    id: u64,
    tracker: Arc<Tracker>,
}

impl Tracked {
    fn new(tracker: &Arc<Tracker>) -> Self {
        let id = tracker.next.fetch_add(1, Ordering::Relaxed);
        tracker.live.lock().unwrap().insert(id);
        Tracked {
            id,
            tracker: Arc::clone(tracker),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.tracker.live.lock().unwrap().remove(&self.id) {
            self.tracker.bad_drops.fetch_add(1, Ordering::Relaxed);
        }
    }
}

thread_local! {
    /// While set, every comparison of two [`Key`]s on this thread panics.
    static ORD_PANICS: Cell<bool> = const { Cell::new(false) };
    /// While set, comparisons of [`Key`]s on this thread answer at random
    /// (not a total order).
    static ORD_LIES: Cell<u64> = const { Cell::new(0) };
    /// While not 0, counts comparisons of [`Key`]s on this thread down;
    /// the one that brings it to 0 panics.
    static ORD_PANICS_AT: Cell<u32> = const { Cell::new(0) };
}

/// A key ordered by `k`, tracked; its `Ord` can be made to panic or to lie
/// on the calling thread.
#[derive(Debug)]
struct Key {
    k: u8,
    _t: Tracked,
}

impl Key {
    fn new(k: u8, t: &Arc<Tracker>) -> Self {
        Key {
            k,
            _t: Tracked::new(t),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Cmp::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Cmp> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Cmp {
        let at = ORD_PANICS_AT.with(Cell::get);
        if at > 0 {
            ORD_PANICS_AT.with(|c| c.set(at - 1));
            if at == 1 {
                panic!("Key::cmp panics at a chosen comparison");
            }
        }
        if ORD_PANICS.with(Cell::get) {
            panic!("Key::cmp panics ({} vs {})", self.k, other.k);
        }
        let lie = ORD_LIES.with(|l| {
            let x = l.get();
            if x == 0 {
                return None;
            }
            // xorshift: a different answer each time.
            let x = x ^ (x << 13);
            let x = x ^ (x >> 7);
            let x = x ^ (x << 17);
            l.set(x);
            Some([Cmp::Less, Cmp::Equal, Cmp::Greater][(x % 3) as usize])
        });
        lie.unwrap_or_else(|| self.k.cmp(&other.k))
    }
}

/// A tracked value.
#[derive(Debug)]
struct Val {
    v: u32,
    _t: Tracked,
}

impl Val {
    fn new(v: u32, t: &Arc<Tracker>) -> Self {
        Val {
            v,
            _t: Tracked::new(t),
        }
    }
}

/// Sets `ORD_PANICS` for its life.
struct ArmOrdPanic;
impl ArmOrdPanic {
    fn new() -> Self {
        ORD_PANICS.with(|p| p.set(true));
        ArmOrdPanic
    }
}
impl Drop for ArmOrdPanic {
    fn drop(&mut self) {
        ORD_PANICS.with(|p| p.set(false));
    }
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig::with_cases(if common::in_vm() { (n / 10).max(4) } else { n })
}

// ---------------------------------------------------------------------
// The model test.

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u32),
    Remove(u8),
    RemoveEntry(u8),
    Get(u8),
    Range(Bound<u8>, Bound<u8>),
    FirstLast,
    Iter,
    Clear,
    /// `insert` with the key's `Ord` panicking.
    InsertOrdPanics(u8, u32),
    /// `remove` / `get` / `range` with the key's `Ord` panicking.
    LookupOrdPanics(u8),
}

fn bound() -> impl Strategy<Value = Bound<u8>> {
    prop_oneof![
        Just(Bound::Unbounded),
        (0..40u8).prop_map(Bound::Included),
        (0..40u8).prop_map(Bound::Excluded),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..36u8, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0..36u8).prop_map(Op::Remove),
        1 => (0..36u8).prop_map(Op::RemoveEntry),
        3 => (0..36u8).prop_map(Op::Get),
        3 => (bound(), bound()).prop_map(|(a, b)| Op::Range(a, b)),
        1 => Just(Op::FirstLast),
        1 => Just(Op::Iter),
        1 => Just(Op::Clear),
        1 => (0..36u8, any::<u32>()).prop_map(|(k, v)| Op::InsertOrdPanics(k, v)),
        1 => (0..36u8).prop_map(Op::LookupOrdPanics),
    ]
}

fn in_range(k: u8, lo: Bound<u8>, hi: Bound<u8>) -> bool {
    let above = match lo {
        Bound::Unbounded => true,
        Bound::Included(s) => k >= s,
        Bound::Excluded(s) => k > s,
    };
    let below = match hi {
        Bound::Unbounded => true,
        Bound::Included(e) => k <= e,
        Bound::Excluded(e) => k < e,
    };
    above && below
}

fn contents(map: &SkipMap<Key, Val>) -> Vec<(u8, u32)> {
    map.iter().map(|e| (e.key().k, e.value().v)).collect()
}

fn run_model(max_height: usize, seed: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let t = Arc::new(Tracker::default());
    let map = SkipMap::<Key, Val>::builder(0)
        .max_height(max_height)
        .seed(seed)
        .build()
        .unwrap();
    let mut model = BTreeMap::<u8, u32>::new();
    for op in ops {
        match *op {
            Op::Insert(k, v) => {
                let old = map.insert(Key::new(k, &t), Val::new(v, &t)).map(|o| o.v);
                prop_assert_eq!(old, model.insert(k, v));
            }
            Op::Remove(k) => {
                let got = map.remove(&Key::new(k, &t)).map(|o| o.v);
                prop_assert_eq!(got, model.remove(&k));
            }
            Op::RemoveEntry(k) => {
                let got = map.remove_entry(&Key::new(k, &t)).map(|(k, v)| (k.k, v.v));
                prop_assert_eq!(got, model.remove_entry(&k));
            }
            Op::Get(k) => {
                let probe = Key::new(k, &t);
                let want = model.get(&k).copied();
                prop_assert_eq!(map.get(&probe).map(|r| r.v), want);
                prop_assert_eq!(map.contains_key(&probe), want.is_some());
                if let Some(r) = map.get(&probe) {
                    prop_assert_eq!(r.key().k, k);
                    prop_assert_eq!(r.pair().1.v, r.value().v);
                }
            }
            Op::Range(lo, hi) => {
                let map_lo = lo.map(|s| Key::new(s, &t));
                let map_hi = hi.map(|e| Key::new(e, &t));
                let got: Vec<(u8, u32)> = map
                    .range((map_lo.as_ref(), map_hi.as_ref()))
                    .map(|e| (e.key().k, e.v))
                    .collect();
                // Filtered, not `BTreeMap::range`, which panics on
                // inverted ranges that the map answers as empty.
                let want: Vec<(u8, u32)> = model
                    .iter()
                    .filter(|(&k, _)| in_range(k, lo, hi))
                    .map(|(&k, &v)| (k, v))
                    .collect();
                prop_assert_eq!(got, want, "range {:?}..{:?}", lo, hi);
            }
            Op::FirstLast => {
                let first = map.first().map(|r| (r.key().k, r.v));
                let last = map.last().map(|r| (r.key().k, r.v));
                prop_assert_eq!(first, model.first_key_value().map(|(&k, &v)| (k, v)));
                prop_assert_eq!(last, model.last_key_value().map(|(&k, &v)| (k, v)));
            }
            Op::Iter => {
                let want: Vec<(u8, u32)> = model.iter().map(|(&k, &v)| (k, v)).collect();
                prop_assert_eq!(contents(&map), want);
            }
            Op::Clear => {
                map.clear();
                model.clear();
            }
            Op::InsertOrdPanics(k, v) => {
                let (key, val) = (Key::new(k, &t), Val::new(v, &t));
                let result = {
                    let _armed = ArmOrdPanic::new();
                    catch_unwind(AssertUnwindSafe(|| map.insert(key, val).map(|o| o.v)))
                };
                if model.is_empty() {
                    // Nothing to compare with: inserted.
                    prop_assert!(result.is_ok());
                    model.insert(k, v);
                } else {
                    // The search panicked before anything changed; the key
                    // and value were dropped.
                    let err = result.unwrap_err();
                    prop_assert!(common::panic_message(&*err).contains("Key::cmp panics"));
                }
            }
            Op::LookupOrdPanics(k) => {
                let probe = Key::new(k, &t);
                let _armed = ArmOrdPanic::new();
                let r = catch_unwind(AssertUnwindSafe(|| map.remove(&probe).map(|v| v.v)));
                prop_assert_eq!(r.is_err(), !model.is_empty());
                let r = catch_unwind(AssertUnwindSafe(|| map.get(&probe).map(|v| v.v)));
                prop_assert_eq!(r.is_err(), !model.is_empty());
                let r = catch_unwind(AssertUnwindSafe(|| map.range(&probe..).count()));
                prop_assert_eq!(r.is_err(), !model.is_empty());
            }
        }
        prop_assert_eq!(map.len(), model.len());
        prop_assert_eq!(map.is_empty(), model.is_empty());
    }
    let want: Vec<(u8, u32)> = model.iter().map(|(&k, &v)| (k, v)).collect();
    prop_assert_eq!(contents(&map), want);
    // What the map holds is alive, and nothing else: one key and one
    // value per entry.
    prop_assert_eq!(t.live(), 2 * model.len());
    drop(map);
    t.check_clean()
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn map_matches_the_btreemap_model(
        max_height in prop_oneof![Just(1usize), Just(2), Just(DEFAULT_MAX_HEIGHT), Just(MAX_HEIGHT)],
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        run_model(max_height, seed, &ops)?;
    }

    /// An `Ord` that answers at random: results are wrong, but nothing is
    /// unsound — every entry is dropped exactly once and the list stays a
    /// list (a use-after-free here shows under ASan and valgrind).
    #[test]
    fn an_inconsistent_ord_is_never_unsound(
        seed in 1..u64::MAX,
        ops in proptest::collection::vec((any::<bool>(), 0..24u8), 1..300),
    ) {
        let t = Arc::new(Tracker::default());
        let map = SkipMap::<Key, Val>::builder(0).seed(seed).build().unwrap();
        ORD_LIES.with(|l| l.set(seed));
        for &(insert, k) in &ops {
            if insert {
                map.insert(Key::new(k, &t), Val::new(k.into(), &t));
            } else {
                map.remove(&Key::new(k, &t));
            }
        }
        ORD_LIES.with(|l| l.set(0));
        let n = map.iter().count();
        prop_assert_eq!(n, map.len());
        prop_assert_eq!(t.live(), 2 * n);
        // The list may be out of order now; clearing still empties it
        // and drops every entry once.
        map.clear();
        prop_assert_eq!(map.len(), 0);
        prop_assert_eq!(map.iter().count(), 0);
        prop_assert_eq!(t.live(), 0);
        map.insert(Key::new(1, &t), Val::new(1, &t));
        prop_assert_eq!(map.get(&Key::new(1, &t)).map(|v| v.v), Some(1));
        drop(map);
        t.check_clean()?;
    }
}

// ---------------------------------------------------------------------
// Drops that panic.

/// A value whose drop panics when `bomb` is set.
#[derive(Debug)]
struct Bomb {
    bomb: bool,
    _t: Tracked,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.bomb {
            panic!("Bomb::drop panics");
        }
    }
}

#[test]
fn a_drop_that_panics_in_clear_or_drop_leaks_nothing() {
    let t = Arc::new(Tracker::default());
    let map = SkipMap::<u32, Bomb>::new(0).unwrap();
    for i in 0..100 {
        map.insert(
            i,
            Bomb {
                bomb: i == 40,
                _t: Tracked::new(&t),
            },
        );
    }
    let err = catch_unwind(AssertUnwindSafe(|| map.clear())).unwrap_err();
    assert!(common::panic_message(&*err).contains("Bomb::drop"));
    // Emptied, every other entry dropped once, and usable.
    assert_eq!(map.len(), 0);
    assert_eq!(map.iter().count(), 0);
    assert_eq!(t.live(), 0);
    assert_eq!(t.bad_drops.load(Ordering::Relaxed), 0);
    for i in 0..50 {
        map.insert(
            i,
            Bomb {
                bomb: i == 7,
                _t: Tracked::new(&t),
            },
        );
    }
    let err = catch_unwind(AssertUnwindSafe(move || drop(map))).unwrap_err();
    assert!(common::panic_message(&*err).contains("Bomb::drop"));
    assert_eq!(t.live(), 0);
    assert_eq!(t.bad_drops.load(Ordering::Relaxed), 0);

    // A replaced value whose drop panics once `insert` returned it: the
    // map has the new value.
    let map = SkipMap::<u32, Bomb>::new(0).unwrap();
    map.insert(
        1,
        Bomb {
            bomb: true,
            _t: Tracked::new(&t),
        },
    );
    let err = catch_unwind(AssertUnwindSafe(|| {
        drop(map.insert(
            1,
            Bomb {
                bomb: false,
                _t: Tracked::new(&t),
            },
        ))
    }))
    .unwrap_err();
    assert!(common::panic_message(&*err).contains("Bomb::drop"));
    assert!(!map.get(&1).unwrap().bomb);
    drop(map);
    assert_eq!(t.live(), 0);
}

// ---------------------------------------------------------------------
// Guards.

#[test]
fn guards_allow_reads_and_refuse_writes_from_their_thread() {
    let map = SkipMap::<u32, String>::new(0).unwrap();
    map.insert(1, "one".into());
    map.insert(2, "two".into());
    {
        let one = map.get(&1).unwrap();
        let two = map.last().unwrap();
        assert_eq!(
            (one.as_str(), two.pair()),
            ("one", (&2, &"two".to_string()))
        );
        type M = SkipMap<u32, String>;
        let writes: [&dyn Fn(&M); 5] = [
            &|m: &M| drop(m.insert(3, "x".into())),
            &|m: &M| drop(m.remove(&1)),
            &|m: &M| m.clear(),
            &|m: &M| drop(m.try_insert(3, "x".into())),
            &|m: &M| drop(m.remove_entry(&2)),
        ];
        for op in writes {
            let err = catch_unwind(AssertUnwindSafe(|| op(&map))).unwrap_err();
            let msg = common::panic_message(&*err);
            assert!(msg.contains("read guard"), "{msg}");
        }
        // Reads still work, and nothing changed.
        assert_eq!(map.get_cloned(&2).as_deref(), Some("two"));
        assert_eq!(map.len(), 2);
    }
    // An iterator holds the lock until it and its entries are gone.
    let mut it = map.iter();
    let first = it.next().unwrap();
    assert!(it.next().is_some() && it.next().is_none());
    assert!(catch_unwind(AssertUnwindSafe(|| map.insert(9, "nine".into()))).is_err());
    drop(it);
    assert!(catch_unwind(AssertUnwindSafe(|| map.insert(9, "nine".into()))).is_err());
    drop(first);
    map.insert(9, "nine".into());
    assert_eq!(format!("{map:?}"), r#"{1: "one", 2: "two", 9: "nine"}"#);
}

#[test]
fn a_second_read_does_not_wait_behind_a_waiting_writer() {
    let map = Arc::new(SkipMap::<u32, u32>::new(0).unwrap());
    map.insert(1, 10);
    let m = Arc::clone(&map);
    common::finishes(30, "a read while a writer waits", move || {
        let held = m.get(&1).unwrap();
        let writer = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || m.insert(2, 20))
        };
        std::thread::sleep(Duration::from_millis(50));
        // The writer waits for `held`; this read must not wait for it.
        assert_eq!(m.get_cloned(&1), Some(10));
        assert_eq!(m.range(0..).count(), 1);
        drop(held);
        writer.join().unwrap();
    });
    assert_eq!(map.get_cloned(&2), Some(20));
}

/// Thread A holds a guard and waits for thread B, which reads the map
/// while a writer waits for A's guard: B's read must not queue behind the
/// writer (it would wait for the writer, which waits for A, which waits for
/// B).
#[test]
fn a_read_from_another_thread_does_not_queue_behind_a_waiting_writer() {
    let map = Arc::new(SkipMap::<u32, u32>::new(0).unwrap());
    map.insert(1, 10);
    let m = Arc::clone(&map);
    common::finishes(30, "a guard waiting for another thread's read", move || {
        let held = m.first().unwrap();
        let writer = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || m.insert(2, 20))
        };
        std::thread::sleep(Duration::from_millis(50));
        let reader = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || (m.get_cloned(&1), m.iter().count()))
        };
        assert_eq!(reader.join().unwrap(), (Some(10), 1));
        assert_eq!(*held, 10);
        drop(held);
        writer.join().unwrap();
    });
    assert_eq!(map.len(), 2);
}

#[test]
fn auto_traits_and_errors() {
    fn send_sync<T: Send + Sync>() {}
    fn sync<T: Sync>() {}
    send_sync::<SkipMap<String, Vec<u8>>>();
    send_sync::<InsertError<(String, u8)>>();
    sync::<Ref<'static, String, u8>>();
    let e: numakit::Error = SkipMap::<u8, u8>::builder(0)
        .max_height(0)
        .build()
        .unwrap_err()
        .into();
    assert!(e.to_string().contains("max_height 0"), "{e}");
}

// ---------------------------------------------------------------------
// Concurrency.

/// `writers` threads insert and remove their own keys (`k % writers ==
/// t`), each checking against its own model; `readers` threads check that
/// every snapshot is in strictly ascending order and that looked-up
/// values belong to their key. The map ends as the union of the models.
fn writers_and_readers(writers: u64, readers: usize, ops: u64) {
    let map = Arc::new(SkipMap::<u64, u64>::new(0).unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for t in 0..writers {
        let (map, done) = (Arc::clone(&map), Arc::clone(&done));
        handles.push(std::thread::spawn(move || {
            let mut model = BTreeMap::new();
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
            for i in 0..ops {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = (x % 512) * writers + t;
                if x % 3 == 1 {
                    assert_eq!(map.remove(&k), model.remove(&k), "remove {k}");
                } else {
                    let v = k * 1_000_000 + i;
                    assert_eq!(map.insert(k, v), model.insert(k, v), "insert {k}");
                }
            }
            done.fetch_add(1, Ordering::Release);
            model
        }));
    }
    let mut reader_handles = Vec::new();
    for r in 0..readers {
        let (map, done) = (Arc::clone(&map), Arc::clone(&done));
        reader_handles.push(std::thread::spawn(move || {
            let mut rounds = 0u64;
            while done.load(Ordering::Acquire) < writers as usize || rounds < 3 {
                let mut prev = None;
                for e in map.range(r as u64 * 100..) {
                    assert!(prev < Some(*e.key()), "out of order");
                    assert_eq!(*e.value() / 1_000_000, *e.key());
                    prev = Some(*e.key());
                }
                for k in 0..64 {
                    if let Some(v) = map.get_cloned(&k) {
                        assert_eq!(v / 1_000_000, k);
                    }
                }
                rounds += 1;
            }
        }));
    }
    let mut union = BTreeMap::new();
    for h in handles {
        union.extend(h.join().unwrap());
    }
    for h in reader_handles {
        h.join().unwrap();
    }
    let got: BTreeMap<u64, u64> = map.iter().map(|e| (*e.key(), *e.value())).collect();
    assert_eq!(got, union);
    assert_eq!(map.len(), union.len());
    map.verify().unwrap();
}

#[test]
fn concurrent_writers_and_readers_end_as_the_model() {
    let ops = if common::in_vm() { 2_000 } else { 20_000 };
    common::finishes(300, "4 writers and 2 readers", move || {
        writers_and_readers(4, 2, ops)
    });
}

// ---------------------------------------------------------------------
// Nodes, sizes and placement.

#[test]
fn nodes_and_heights_at_their_boundaries() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    let count = NodeId::new(topo.num_nodes() as u32);
    for node in [
        absent,
        count,
        NodeId::new(u32::MAX),
        NodeId::new(u32::MAX - 1),
    ] {
        if topo.node(node).is_ok() {
            continue; // sparse ids: the count can be a real node
        }
        let err = SkipMap::<u32, u32>::new(node).unwrap_err();
        assert!(matches!(err, MemError::Topology(_)), "{node}: {err}");
        assert!(err.to_string().contains(&node.get().to_string()), "{err}");
    }
    for node in topo.nodes().iter().filter(|n| !n.has_memory()) {
        let err = SkipMap::<u32, u32>::new(node.id()).unwrap_err();
        assert!(matches!(err, MemError::MemorylessNode { .. }), "{err}");
    }
    // Heights: 0 and past the cap are refused, naming what to use.
    for h in [0, MAX_HEIGHT + 1, usize::MAX] {
        let err = SkipMap::<u32, u32>::builder(0)
            .max_height(h)
            .build()
            .unwrap_err();
        assert!(matches!(err, MemError::InvalidConfig(_)), "{err}");
        assert!(
            err.to_string().contains(&format!("max_height {h}")),
            "{err}"
        );
    }
    // 1 (a plain sorted list) and the cap work.
    for h in [1, 2, MAX_HEIGHT] {
        let map = SkipMap::<u32, u32>::builder(0)
            .max_height(h)
            .build()
            .unwrap();
        assert_eq!(map.max_height(), h);
        for i in (0..3000).rev() {
            assert_eq!(map.insert(i, i), None);
        }
        assert!(map.iter().map(|e| *e.key()).eq(0..3000));
        assert_eq!(map.range(1000..=1002).count(), 3);
        for i in (0..3000).step_by(2) {
            assert_eq!(map.remove(&i), Some(i));
        }
        assert_eq!(map.len(), 1500);
        assert_eq!(*map.first().unwrap().key(), 1);
        assert_eq!(*map.last().unwrap().key(), 2999);
    }
    // Extreme keys.
    let map = SkipMap::<u64, ()>::new(0).unwrap();
    for k in [0, 1, u64::MAX, u64::MAX - 1] {
        map.insert(k, ());
    }
    assert_eq!(map.range(u64::MAX..).count(), 1);
    assert_eq!(map.range(..=0).count(), 1);
    assert_eq!(
        map.range((Bound::Excluded(u64::MAX), Bound::Unbounded))
            .count(),
        0
    );
    let inverted = (Bound::Included(u64::MAX), Bound::Excluded(0));
    assert_eq!(map.range(inverted).count(), 0);
    assert_eq!(
        map.range((Bound::Excluded(1), Bound::Excluded(1))).count(),
        0
    );
}

/// Every node with memory: a map there with small entries and entries
/// larger than the heap's size classes (mapped on their own) has every
/// page on that node — by `verify`, and by locating values through their
/// guards independently of it.
#[test]
fn maps_on_every_node_have_every_page_there() {
    let topo = common::topology();
    let mut checked = 0;
    for node in topo.nodes().iter().filter(|n| n.has_memory()) {
        let node = node.id();
        let map = SkipMap::<u64, [u64; 8]>::new(node).unwrap();
        let n = if common::in_vm() { 20_000 } else { 60_000 };
        for i in 0..n {
            map.insert(i, [i; 8]);
        }
        assert_eq!(map.node(), node);
        let proof = map.verify().unwrap();
        assert!(proof.is_all_on(node), "{proof}");
        // Each entry is at least 88 bytes.
        assert!(proof.pages() >= (n as usize * 88) / 4096, "{proof}");
        for k in [0, n / 2, n - 1] {
            let r = map.get(&k).unwrap();
            let here = locate((&*r as *const [u64; 8]).cast(), 64).unwrap();
            assert!(here.is_all_on(node), "entry {k}: {here}");
        }
        assert_eq!(map.heap_stats().node, node);

        // Entries above the size classes get mappings of their own, which
        // `verify` walks.
        // (On a thread with a large stack: the values pass through it.)
        const BIG: usize = NodeHeap::MAX_CLASS_SIZE + 4096;
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let big = SkipMap::<u32, [u8; BIG]>::new(node).unwrap();
                for i in 0..3 {
                    big.insert(i, [i as u8; BIG]);
                }
                let proof = big.verify().unwrap();
                assert!(proof.is_all_on(node), "{proof}");
                assert!(proof.pages() >= 3 * BIG / 4096, "{proof}");
                let r = big.get(&2).unwrap();
                assert!(r.iter().all(|&b| b == 2));
                let here = locate(r.as_ptr(), BIG).unwrap();
                assert!(here.is_all_on(node), "{here}");
                drop(r);
                assert_eq!(big.remove(&1).map(|v| v[0]), Some(1));
                assert_eq!(big.heap_stats().large_in_use, 2);
            })
            .unwrap()
            .join()
            .unwrap();
        checked += 1;
    }
    if common::expected_nodes().is_some_and(|n| n > 1) {
        assert!(checked >= 2, "{checked} nodes checked");
    }
}

#[test]
fn map_on_node_1_is_on_node_1_or_refused() {
    let topo = common::topology();
    let one = NodeId::new(1);
    match topo.node(one) {
        Ok(node) if node.has_memory() => {
            let map = SkipMap::<u64, u64>::new(one).unwrap();
            for i in 0..30_000 {
                map.insert(i, i);
            }
            let proof = map.verify().unwrap();
            assert!(proof.is_all_on(one), "{proof}");
            assert!(proof.pages() >= 30_000 * 40 / 4096, "{proof}");
            let r = map.get(&29_999).unwrap();
            let here = locate((&*r as *const u64).cast(), 8).unwrap();
            assert!(here.is_all_on(one), "{here}");
        }
        _ => {
            assert!(
                common::expected_nodes().is_none_or(|n| n <= 1),
                "the harness promised several nodes but node 1 has no memory"
            );
            let err = SkipMap::<u64, u64>::new(one).unwrap_err();
            assert!(matches!(err, MemError::Topology(_)), "{err}");
        }
    }
}

// ---------------------------------------------------------------------
// User code that panics or comes back into the map.

/// An `Ord` that panics at its 1st, 2nd, ... comparison of an `insert`
/// (of a new key and of one already there, which compares once more),
/// a `remove` or a `get`: each time nothing changed, the lock is free
/// again (a write from another thread goes through), and in the end every
/// key and value was dropped exactly once.
#[test]
fn an_ord_that_panics_at_any_comparison_changes_nothing() {
    let t = Arc::new(Tracker::default());
    let tracker = Arc::clone(&t);
    common::finishes(120, "an Ord that panics at any comparison", move || {
        let t = tracker;
        let map = Arc::new(
            SkipMap::<Key, Val>::builder(0)
                .max_height(4)
                .seed(3)
                .build()
                .unwrap(),
        );
        for k in (0..64u8).step_by(2) {
            map.insert(Key::new(k, &t), Val::new(u32::from(k), &t));
        }
        let before = contents(&map);
        let live = t.live();
        // Existing keys (first, middle, last), new ones before, between
        // and after them.
        for k in [0u8, 30, 62, 1, 31, 63, 200] {
            for op in 0..3 {
                for n in 1.. {
                    let probe = Key::new(k, &t);
                    ORD_PANICS_AT.with(|c| c.set(n));
                    let r = catch_unwind(AssertUnwindSafe(|| match op {
                        0 => map.insert(Key::new(k, &t), Val::new(999, &t)).map(|v| v.v),
                        1 => map.remove(&probe).map(|v| v.v),
                        _ => map.get(&probe).map(|v| v.v),
                    }));
                    ORD_PANICS_AT.with(|c| c.set(0));
                    match r {
                        Err(p) => {
                            let msg = common::panic_message(&*p);
                            assert!(msg.contains("chosen comparison"), "{msg}");
                            assert_eq!(contents(&map), before, "op {op} key {k} at {n}");
                            assert_eq!(map.len(), before.len());
                            drop(probe);
                            assert_eq!(t.live(), live, "op {op} key {k} at {n}: leak");
                            // The lock was let go: another thread writes.
                            let m = Arc::clone(&map);
                            let t2 = Arc::clone(&t);
                            std::thread::spawn(move || {
                                m.insert(Key::new(250, &t2), Val::new(1, &t2));
                                assert!(m.remove(&Key::new(250, &t2)).is_some());
                            })
                            .join()
                            .unwrap();
                        }
                        Ok(old) => {
                            // Fewer than `n` comparisons: the operation
                            // went through. Undo it.
                            match (op, old) {
                                (0, Some(v)) => {
                                    map.insert(Key::new(k, &t), Val::new(v, &t));
                                }
                                (0, None) => assert!(map.remove(&probe).is_some()),
                                (1, Some(v)) => {
                                    map.insert(Key::new(k, &t), Val::new(v, &t));
                                }
                                _ => {}
                            }
                            drop(probe);
                            assert_eq!(contents(&map), before);
                            assert_eq!(t.live(), live);
                            break;
                        }
                    }
                }
            }
        }
        drop(map);
    });
    assert_eq!(t.bad_drops.load(Ordering::Relaxed), 0, "double drops");
    assert_eq!(t.live(), 0, "leaked");
}

/// A key whose `Ord` comes back into the map it is compared in: under a
/// write lock (an insert) that would wait for its own thread, so it
/// panics instead of hanging, and the map stays usable; under a read
/// lock (a get) a read goes through and a write panics.
#[test]
fn an_ord_that_comes_back_into_its_map_panics_instead_of_hanging() {
    use std::sync::OnceLock;
    static MAP: OnceLock<SkipMap<Reenter, u32>> = OnceLock::new();
    thread_local! {
        /// What the next comparison does to the map: 0 nothing, 1 read
        /// it, 2 write it.
        static REENTER: Cell<u8> = const { Cell::new(0) };
    }
    #[derive(PartialEq, Eq, Debug)]
    struct Reenter(u32);
    impl PartialOrd for Reenter {
        fn partial_cmp(&self, other: &Self) -> Option<Cmp> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Reenter {
        fn cmp(&self, other: &Self) -> Cmp {
            let what = REENTER.with(|r| r.replace(0));
            let map = MAP.get().unwrap();
            match what {
                1 => drop(map.iter().count()),
                2 => drop(map.insert(Reenter(1000), 0)),
                _ => {}
            }
            self.0.cmp(&other.0)
        }
    }
    common::finishes(60, "an Ord that comes back into its map", || {
        let map = MAP.get_or_init(|| SkipMap::new(0).unwrap());
        for i in 0..16 {
            map.insert(Reenter(i * 2), i);
        }
        // Under insert's write lock: a read, then a write, from Ord.
        for what in [1u8, 2] {
            REENTER.with(|r| r.set(what));
            let err = catch_unwind(AssertUnwindSafe(|| map.insert(Reenter(7), 7))).unwrap_err();
            let msg = common::panic_message(&*err);
            assert!(msg.contains("write lock"), "{msg}");
            assert_eq!(map.len(), 16);
            assert!(map.get(&Reenter(7)).is_none());
        }
        // Under get's read lock: a read goes through, a write panics.
        REENTER.with(|r| r.set(1));
        assert_eq!(map.get(&Reenter(4)).map(|v| *v), Some(2));
        REENTER.with(|r| r.set(2));
        let err = catch_unwind(AssertUnwindSafe(|| map.get_cloned(&Reenter(4)))).unwrap_err();
        let msg = common::panic_message(&*err);
        assert!(msg.contains("read guard"), "{msg}");
        // Usable from this thread and others.
        map.insert(Reenter(7), 7);
        std::thread::spawn(|| MAP.get().unwrap().insert(Reenter(9), 9))
            .join()
            .unwrap();
        assert_eq!(map.len(), 18);
    });
}

/// An iterator and a `Ref` held on one thread while other threads write:
/// the writers wait (the snapshot does not change under the iterator) and
/// go through once the guards are dropped; reads from other threads are
/// not held up meanwhile.
#[test]
fn writers_wait_for_a_held_iterator_and_then_go_through() {
    common::finishes(60, "writers and a held iterator", || {
        let map = Arc::new(SkipMap::<u32, u32>::new(0).unwrap());
        for i in 0..100 {
            map.insert(i, i);
        }
        let mut it = map.range(10..20);
        let first = it.next().unwrap();
        let r = map.get(&50).unwrap();
        let wrote = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..3u32)
            .map(|w| {
                let map = Arc::clone(&map);
                let wrote = Arc::clone(&wrote);
                std::thread::spawn(move || {
                    map.insert(15, 1000 + w);
                    map.remove(&50);
                    wrote.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        // A reader on another thread is not held up.
        let m = Arc::clone(&map);
        assert_eq!(
            std::thread::spawn(move || m.get_cloned(&15))
                .join()
                .unwrap(),
            Some(15)
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            wrote.load(Ordering::SeqCst),
            0,
            "a writer went past the guards"
        );
        let seen: Vec<(u32, u32)> = std::iter::once(first)
            .chain(it)
            .map(|e| (*e.key(), *e.value()))
            .collect();
        assert_eq!(seen, (10..20).map(|i| (i, i)).collect::<Vec<_>>());
        assert_eq!((*r.key(), *r.value()), (50, 50));
        drop(r);
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(wrote.load(Ordering::SeqCst), 3);
        assert!(map.get_cloned(&15).unwrap() >= 1000);
        assert!(!map.contains_key(&50));
        assert_eq!(map.len(), 99);
    });
}

/// Ranges whose bounds meet on one key, present or not, and inverted ones.
#[test]
fn ranges_whose_bounds_meet_or_cross() {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let map = SkipMap::<u32, ()>::new(0).unwrap();
    for k in [1, 3, 5] {
        map.insert(k, ());
    }
    let keys = |lo: Bound<u32>, hi: Bound<u32>| -> Vec<u32> {
        map.range::<u32, _>((lo, hi)).map(|e| *e.key()).collect()
    };
    for k in 0..7 {
        let present = if [1, 3, 5].contains(&k) {
            vec![k]
        } else {
            vec![]
        };
        assert_eq!(keys(Included(k), Included(k)), present);
        assert!(keys(Included(k), Excluded(k)).is_empty());
        assert!(keys(Excluded(k), Included(k)).is_empty());
        assert!(keys(Excluded(k), Excluded(k)).is_empty());
        for lo in [Included(k + 1), Excluded(k + 1)] {
            for hi in [Included(k), Excluded(k)] {
                assert!(keys(lo, hi).is_empty(), "{lo:?} {hi:?}");
            }
        }
    }
    assert_eq!(keys(Excluded(u32::MAX), Unbounded), Vec::<u32>::new());
    assert_eq!(keys(Unbounded, Excluded(0)), Vec::<u32>::new());
    assert_eq!(keys(Excluded(1), Excluded(5)), vec![3]);
}
