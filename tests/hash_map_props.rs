//! L3 concurrent hash map: random operation sequences against a
//! `std::collections::HashMap` model, over the whole configuration space
//! (shard counts 1 to `MAX_SHARDS`, initial capacities 0 to 4, small and
//! powers of two), with keys and values that record their drops (a double
//! drop or a leak fails the case), zero-sized values, and two threads
//! working on disjoint key sets of one map.
//!
//! Inside the multi-node guest (emulated CPUs) each property runs an eighth
//! of its cases (`common::cases`): the map's logic does not depend on the
//! node count, and the host runs them all.

mod common;

use numakit::collections::hash_map::{Entry, TryResult, MAX_SHARDS};
use numakit::collections::{ConcurrentHashMap, ConcurrentHashSet};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------
// Drop tracking.

/// Every tracked object alive, by id; drops of an id not alive (double
/// drops) are counted.
#[derive(Default)]
struct Tracker {
    live: Mutex<HashSet<u64>>,
    next: AtomicU64,
    bad_drops: AtomicUsize,
    /// Zero-sized values alive (they cannot carry an id).
    zst_live: AtomicIsize,
}

impl Tracker {
    fn born(&self) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.live.lock().unwrap().insert(id);
        id
    }
    fn died(&self, id: u64) {
        if !self.live.lock().unwrap().remove(&id) {
            self.bad_drops.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn live(&self) -> usize {
        self.live.lock().unwrap().len()
    }
}

thread_local! {
    /// The tracker of the test running on this thread.
    static CURRENT: RefCell<Option<Arc<Tracker>>> = const { RefCell::new(None) };
}

fn tracker() -> Arc<Tracker> {
    CURRENT.with(|c| Arc::clone(c.borrow().as_ref().expect("tracker set")))
}

fn set_tracker(t: &Arc<Tracker>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(Arc::clone(t)));
}

/// A key: `Hash`/`Eq` by `k`; tracked.
#[derive(Debug)]
struct Key {
    k: u8,
    id: u64,
}
impl Key {
    fn new(k: u8) -> Self {
        Key {
            k,
            id: tracker().born(),
        }
    }
}
impl Clone for Key {
    fn clone(&self) -> Self {
        Key::new(self.k)
    }
}
impl Drop for Key {
    fn drop(&mut self) {
        tracker().died(self.id);
    }
}
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.k.hash(h);
    }
}
impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        self.k == o.k
    }
}
impl Eq for Key {}

/// What the model stores for a value type.
trait TVal: Sized + Clone + Default + std::fmt::Debug + Send + Sync + 'static {
    fn make(v: u32) -> Self;
    fn val(&self) -> u32;
    fn bump(&mut self, d: u32);
    /// What `make(v)` reads back as.
    fn norm(v: u32) -> u32;
    /// Tracked objects (with ids) per entry: the key, and the value if it
    /// has an id.
    const IDS_PER_ENTRY: usize;
    const ZST: bool;
}

/// A tracked value with a payload.
#[derive(Debug)]
struct Val {
    v: u32,
    id: u64,
}
impl Clone for Val {
    fn clone(&self) -> Self {
        Val::make(self.v)
    }
}
impl Default for Val {
    fn default() -> Self {
        Val::make(0)
    }
}
impl Drop for Val {
    fn drop(&mut self) {
        tracker().died(self.id);
    }
}
impl TVal for Val {
    fn make(v: u32) -> Self {
        Val {
            v,
            id: tracker().born(),
        }
    }
    fn val(&self) -> u32 {
        self.v
    }
    fn bump(&mut self, d: u32) {
        self.v = self.v.wrapping_add(d);
    }
    fn norm(v: u32) -> u32 {
        v
    }
    const IDS_PER_ENTRY: usize = 2;
    const ZST: bool = false;
}

/// A zero-sized value that counts itself.
#[derive(Debug)]
struct Zst;
impl Clone for Zst {
    fn clone(&self) -> Self {
        Zst::make(0)
    }
}
impl Default for Zst {
    fn default() -> Self {
        Zst::make(0)
    }
}
impl Drop for Zst {
    fn drop(&mut self) {
        tracker().zst_live.fetch_sub(1, Ordering::Relaxed);
    }
}
impl TVal for Zst {
    fn make(_: u32) -> Self {
        tracker().zst_live.fetch_add(1, Ordering::Relaxed);
        Zst
    }
    fn val(&self) -> u32 {
        0
    }
    fn bump(&mut self, _: u32) {}
    fn norm(_: u32) -> u32 {
        0
    }
    const IDS_PER_ENTRY: usize = 1;
    const ZST: bool = true;
}

// ---------------------------------------------------------------------
// Operations.

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u32),
    TryInsert(u8, u32),
    Get(u8),
    GetCloned(u8),
    ContainsKey(u8),
    GetMut(u8, u32),
    Update(u8, u32),
    Remove(u8),
    RemoveEntry(u8),
    RemoveIf(u8, u32),
    /// Bump by `v`, then remove if the result is odd.
    RemoveIfMut(u8, u32),
    OrInsert(u8, u32),
    OrInsertWith(u8, u32),
    OrDefault(u8),
    AndModify(u8, u32),
    EntryInsert(u8, u32),
    /// Occupied: remove (value or entry by parity); vacant: insert or give
    /// the key back by parity.
    EntryMatch(u8, u32),
    /// Keep the entries whose value is not a multiple of `m` (shared
    /// keys only in the two-thread test: see `Mine`).
    Retain(u32),
    ForEachMut(u32),
    ForEach,
    IterCloned,
    /// `iter()`, every guard kept until the end (so several of a shard
    /// live at once).
    Iter,
    /// `iter_mut()`, bumping this caller's values.
    IterMut(u32),
    TryGet(u8),
    TryGetMut(u8, u32),
    View(u8),
    /// `alter` to `v`, or by `+ v` with the old value, by parity.
    Alter(u8, u32),
    /// `alter_all` by `+ v` on this caller's keys.
    AlterAll(u32),
    ShrinkToFit,
    TryReserve(usize),
    Clear,
    Len,
}

fn op(keys: std::ops::Range<u8>, whole_map: bool) -> impl Strategy<Value = Op> {
    let k = keys;
    let v = any::<u32>();
    let per_key = prop_oneof![
        6 => (k.clone(), v).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (k.clone(), v).prop_map(|(k, v)| Op::TryInsert(k, v)),
        3 => k.clone().prop_map(Op::Get),
        2 => k.clone().prop_map(Op::GetCloned),
        1 => k.clone().prop_map(Op::ContainsKey),
        2 => (k.clone(), v).prop_map(|(k, v)| Op::GetMut(k, v)),
        2 => (k.clone(), v).prop_map(|(k, v)| Op::Update(k, v)),
        3 => k.clone().prop_map(Op::Remove),
        1 => k.clone().prop_map(Op::RemoveEntry),
        1 => (k.clone(), v).prop_map(|(k, v)| Op::RemoveIf(k, v)),
        1 => (k.clone(), v).prop_map(|(k, v)| Op::RemoveIfMut(k, v)),
        2 => (k.clone(), v).prop_map(|(k, v)| Op::OrInsert(k, v)),
        1 => (k.clone(), v).prop_map(|(k, v)| Op::OrInsertWith(k, v)),
        1 => k.clone().prop_map(Op::OrDefault),
        2 => (k.clone(), v).prop_map(|(k, v)| Op::AndModify(k, v)),
        1 => (k.clone(), v).prop_map(|(k, v)| Op::EntryInsert(k, v)),
        2 => (k.clone(), v).prop_map(|(k, v)| Op::EntryMatch(k, v)),
        1 => (2u32..6).prop_map(Op::Retain),
        1 => Just(Op::ForEach),
        1 => Just(Op::IterCloned),
        1 => Just(Op::Iter),
        2 => k.clone().prop_map(Op::TryGet),
        2 => (k.clone(), v).prop_map(|(k, v)| Op::TryGetMut(k, v)),
        2 => k.clone().prop_map(Op::View),
        1 => Just(Op::ShrinkToFit),
        1 => (0usize..200).prop_map(Op::TryReserve),
        2 => (k, v).prop_map(|(k, v)| Op::Alter(k, v)),
    ];
    if whole_map {
        prop_oneof![
            30 => per_key,
            1 => v.prop_map(Op::ForEachMut),
            1 => v.prop_map(Op::IterMut),
            1 => v.prop_map(Op::AlterAll),
            1 => Just(Op::Clear),
            1 => Just(Op::Len),
        ]
        .boxed()
    } else {
        per_key.boxed()
    }
}

type Map<V> = ConcurrentHashMap<Key, V>;
type Model = HashMap<u8, u32>;

/// Apply `op` to the map and the model; `mine` says which keys this
/// caller owns (whole-map operations touch only those in the model, and
/// see only those in the map).
/// `alone`: no other thread uses the map (so `try_get`/`try_get_mut` are
/// never `Locked`).
fn apply<V: TVal>(map: &Map<V>, model: &mut Model, op: &Op, mine: fn(u8) -> bool, alone: bool) {
    let n = V::norm;
    match *op {
        Op::Insert(k, v) => {
            let got = map.insert(Key::new(k), V::make(v)).map(|x| x.val());
            assert_eq!(got, model.insert(k, n(v)), "{op:?}");
        }
        Op::TryInsert(k, v) => {
            let got = map
                .try_insert(Key::new(k), V::make(v))
                .map_err(|e| e.to_string())
                .map(|o| o.map(|x| x.val()));
            assert_eq!(got, Ok(model.insert(k, n(v))), "{op:?}");
        }
        Op::Get(k) => {
            let got = map.get(&Key::new(k));
            assert_eq!(got.as_ref().map(|r| r.val()), model.get(&k).copied());
            if let Some(r) = got {
                assert_eq!(r.key().k, k);
                assert_eq!(r.pair_ref().1.val(), r.value().val());
            }
        }
        Op::GetCloned(k) => {
            let got = map.get_cloned(&Key::new(k)).map(|v| v.val());
            assert_eq!(got, model.get(&k).copied());
        }
        Op::ContainsKey(k) => {
            assert_eq!(map.contains_key(&Key::new(k)), model.contains_key(&k));
        }
        Op::GetMut(k, v) => {
            let got = map.get_mut(&Key::new(k)).map(|mut r| {
                assert_eq!(r.key().k, k);
                *r = V::make(v); // the old value is dropped here
                r.value().val()
            });
            let want = model.get_mut(&k).map(|x| {
                *x = n(v);
                *x
            });
            assert_eq!(got, want);
        }
        Op::Update(k, v) => {
            let got = map.update(&Key::new(k), |x| {
                x.bump(v);
                x.val()
            });
            let want = model.get_mut(&k).map(|x| {
                *x = n(x.wrapping_add(v));
                *x
            });
            assert_eq!(got, want);
        }
        Op::Remove(k) => {
            let got = map.remove(&Key::new(k)).map(|x| x.val());
            assert_eq!(got, model.remove(&k));
        }
        Op::RemoveEntry(k) => {
            let got = map
                .remove_entry(&Key::new(k))
                .map(|(key, x)| (key.k, x.val()));
            assert_eq!(got, model.remove(&k).map(|x| (k, x)));
        }
        Op::RemoveIf(k, v) => {
            let odd = |x: u32| (x ^ v) & 1 == 1;
            let want = model.get(&k).copied().filter(|&x| odd(x));
            if want.is_some() {
                model.remove(&k);
            }
            let got = map
                .remove_if(&Key::new(k), |key, x| {
                    assert_eq!(key.k, k);
                    odd(x.val())
                })
                .map(|(_, x)| x.val());
            assert_eq!(got, want);
        }
        Op::RemoveIfMut(k, v) => {
            let want = model.get_mut(&k).and_then(|x| {
                *x = n(x.wrapping_add(v));
                (*x % 2 == 1).then_some(*x)
            });
            if want.is_some() {
                model.remove(&k);
            }
            let got = map
                .remove_if_mut(&Key::new(k), |key, x| {
                    assert_eq!(key.k, k);
                    x.bump(v);
                    x.val() % 2 == 1
                })
                .map(|(key, x)| {
                    assert_eq!(key.k, k);
                    x.val()
                });
            assert_eq!(got, want);
        }
        Op::OrInsert(k, v) => {
            let want = *model.entry(k).or_insert(n(v));
            assert_eq!(map.entry(Key::new(k)).or_insert(V::make(v)).val(), want);
        }
        Op::OrInsertWith(k, v) => {
            let want = *model.entry(k).or_insert(n(v));
            let got = map.entry(Key::new(k)).or_insert_with(|| V::make(v)).val();
            assert_eq!(got, want);
        }
        Op::OrDefault(k) => {
            let want = *model.entry(k).or_insert(n(0));
            assert_eq!(map.entry(Key::new(k)).or_default().val(), want);
        }
        Op::AndModify(k, v) => {
            let want = *model
                .entry(k)
                .and_modify(|x| *x = n(x.wrapping_add(v)))
                .or_insert(n(v));
            let got = map
                .entry(Key::new(k))
                .and_modify(|x| x.bump(v))
                .or_insert_with(|| V::make(v));
            assert_eq!(got.val(), want);
            assert_eq!(got.key().k, k);
        }
        Op::EntryInsert(k, v) => {
            model.insert(k, n(v));
            let r = map.entry(Key::new(k)).insert(V::make(v));
            assert_eq!((r.key().k, r.val()), (k, n(v)));
        }
        Op::EntryMatch(k, v) => match map.try_entry(Key::new(k)).unwrap() {
            Entry::Occupied(mut e) => {
                let want = model.remove(&k).expect("occupied in the model");
                assert_eq!((e.key().k, e.get().val()), (k, want));
                e.get_mut().bump(0);
                if v % 2 == 0 {
                    assert_eq!(e.remove().val(), want);
                } else {
                    let (key, x) = e.remove_entry();
                    assert_eq!((key.k, x.val()), (k, want));
                }
            }
            Entry::Vacant(e) => {
                assert!(!model.contains_key(&k));
                assert_eq!(e.key().k, k);
                if v % 2 == 0 {
                    model.insert(k, n(v));
                    let r = e.insert(V::make(v));
                    assert_eq!(r.val(), n(v));
                } else {
                    assert_eq!(e.into_key().k, k);
                }
            }
        },
        Op::Retain(m) => {
            let keep = |k: u8, x: u32| !mine(k) || !x.is_multiple_of(m);
            model.retain(|&k, x| keep(k, *x));
            map.retain(|key, x| keep(key.k, x.val()));
        }
        Op::ForEachMut(v) => {
            map.for_each_mut(|key, x| {
                if mine(key.k) {
                    x.bump(v)
                }
            });
            for x in model.values_mut() {
                *x = n(x.wrapping_add(v));
            }
        }
        Op::ForEach => {
            let mut seen = BTreeMap::new();
            map.for_each(|key, x| {
                if mine(key.k) {
                    assert!(seen.insert(key.k, x.val()).is_none(), "{} twice", key.k);
                }
            });
            assert_eq!(seen, model.iter().map(|(&k, &v)| (k, v)).collect());
        }
        Op::IterCloned => {
            let seen: BTreeMap<u8, u32> = map
                .iter_cloned()
                .filter(|(key, _)| mine(key.k))
                .map(|(key, x)| (key.k, x.val()))
                .collect();
            assert_eq!(seen, model.iter().map(|(&k, &v)| (k, v)).collect());
        }
        Op::Iter => {
            let guards: Vec<_> = map.iter().filter(|r| mine(r.key().k)).collect();
            let mut seen = BTreeMap::new();
            for r in &guards {
                assert!(
                    seen.insert(r.key().k, r.val()).is_none(),
                    "{} twice",
                    r.key().k
                );
                assert_eq!(r.pair_ref().1.val(), r.value().val());
                // Reading while the guards live never waits.
                assert_eq!(map.get(r.key()).map(|x| x.val()), Some(r.val()));
            }
            assert_eq!(seen, model.iter().map(|(&k, &v)| (k, v)).collect());
        }
        Op::IterMut(v) => {
            for mut r in map.iter_mut() {
                if mine(r.key().k) {
                    r.bump(v);
                    let (key, x) = r.pair_mut();
                    assert_eq!(x.val(), model[&key.k].wrapping_add(v) & norm_mask::<V>());
                }
            }
            for x in model.values_mut() {
                *x = n(x.wrapping_add(v));
            }
        }
        Op::TryGet(k) => match map.try_get(&Key::new(k)) {
            TryResult::Present(r) => assert_eq!(Some(r.val()), model.get(&k).copied()),
            TryResult::Absent => assert!(!model.contains_key(&k)),
            TryResult::Locked => assert!(!alone, "locked with nobody else"),
        },
        Op::TryGetMut(k, v) => match map.try_get_mut(&Key::new(k)) {
            TryResult::Present(mut r) => {
                let x = model.get_mut(&k).expect("present in the model");
                *r = V::make(v);
                *x = n(v);
            }
            TryResult::Absent => assert!(!model.contains_key(&k)),
            TryResult::Locked => assert!(!alone, "locked with nobody else"),
        },
        Op::View(k) => {
            let got = map.view(&Key::new(k), |key, x| (key.k, x.val()));
            assert_eq!(got, model.get(&k).map(|&x| (k, x)));
        }
        Op::Alter(k, v) => {
            let got = map.alter(&Key::new(k), |key, old| {
                assert_eq!(key.k, k);
                if v % 2 == 0 {
                    V::make(v) // `old` is dropped here
                } else {
                    let mut old = old;
                    old.bump(v);
                    old
                }
            });
            let want = match model.get_mut(&k) {
                Some(x) => {
                    *x = if v % 2 == 0 {
                        n(v)
                    } else {
                        n(x.wrapping_add(v))
                    };
                    true
                }
                None => false,
            };
            assert_eq!(got, want);
        }
        Op::AlterAll(v) => {
            map.alter_all(|key, mut x| {
                if mine(key.k) {
                    x.bump(v);
                }
                x
            });
            for x in model.values_mut() {
                *x = n(x.wrapping_add(v));
            }
        }
        Op::ShrinkToFit => {
            map.shrink_to_fit();
            if alone {
                assert!(map.capacity() >= map.len());
            }
        }
        Op::TryReserve(extra) => {
            map.try_reserve(extra).unwrap();
            if alone {
                assert!(map.capacity() >= map.len() + extra, "{op:?}");
            }
        }
        Op::Clear => {
            map.clear();
            model.clear();
        }
        Op::Len => {
            assert_eq!(map.len(), model.len());
            assert_eq!(map.is_empty(), model.is_empty());
        }
    }
}

/// What `V::norm` keeps of a value (all of it, or nothing for ZSTs).
fn norm_mask<V: TVal>() -> u32 {
    V::norm(u32::MAX)
}

/// `common::cases(n)` cases per property.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig::with_cases(common::cases(n))
}

fn shard_count() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => Just(1usize),
        2 => Just(2),
        2 => Just(4),
        2 => Just(8),
        1 => Just(64),
        1 => Just(MAX_SHARDS),
    ]
}

fn capacity() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 0usize..=4,
        1 => 5usize..100,
        2 => (3u32..13).prop_map(|b| 1usize << b),
    ]
}

/// One thread, every operation, checked after each step: results, `len`,
/// and the objects alive (exactly the keys and values the model holds).
fn single_thread<V: TVal>(shards: usize, capacity: usize, ops: &[Op]) {
    let t = Arc::new(Tracker::default());
    set_tracker(&t);
    let map = Map::<V>::builder(0)
        .shards(shards)
        .capacity(capacity)
        .build()
        .unwrap();
    assert_eq!(map.shard_count(), shards);
    assert!(map.capacity() >= capacity);
    let mut model = Model::new();
    for op in ops {
        apply(&map, &mut model, op, |_| true, true);
        assert_eq!(map.len(), model.len(), "after {op:?}");
        assert_eq!(t.live(), V::IDS_PER_ENTRY * model.len(), "after {op:?}");
        if V::ZST {
            assert_eq!(t.zst_live.load(Ordering::Relaxed), model.len() as isize);
        }
        assert_eq!(
            t.bad_drops.load(Ordering::Relaxed),
            0,
            "double drop at {op:?}"
        );
    }
    let got: BTreeMap<u8, u32> = map.iter_cloned().map(|(k, v)| (k.k, v.val())).collect();
    assert_eq!(got, model.iter().map(|(&k, &v)| (k, v)).collect());
    // The read-only view sees the same, and gives the map back intact.
    let view = map.into_read_only();
    assert_eq!(view.len(), model.len());
    let seen: BTreeMap<u8, u32> = view.iter().map(|(k, v)| (k.k, v.val())).collect();
    assert_eq!(seen, model.iter().map(|(&k, &v)| (k, v)).collect());
    for k in 0..40u8 {
        let want = model.get(&k).copied();
        assert_eq!(view.get(&Key::new(k)).map(|v| v.val()), want);
        assert_eq!(view.contains_key(&Key::new(k)), want.is_some());
    }
    let map = view.into_inner();
    assert_eq!(map.len(), model.len());
    assert_eq!(t.live(), V::IDS_PER_ENTRY * model.len());
    drop(map);
    assert_eq!(t.live(), 0, "leaked");
    assert_eq!(
        t.zst_live.load(Ordering::Relaxed),
        0,
        "leaked or double-dropped ZSTs"
    );
    assert_eq!(t.bad_drops.load(Ordering::Relaxed), 0, "double drop");
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn map_with_tracked_values_matches_the_model(
        shards in shard_count(),
        capacity in capacity(),
        ops in proptest::collection::vec(op(0..32, true), 1..250),
    ) {
        single_thread::<Val>(shards, capacity, &ops);
    }

    #[test]
    fn map_with_zero_sized_values_matches_the_model(
        shards in shard_count(),
        capacity in capacity(),
        ops in proptest::collection::vec(op(0..32, true), 1..250),
    ) {
        single_thread::<Zst>(shards, capacity, &ops);
    }
}

fn even(k: u8) -> bool {
    k.is_multiple_of(2)
}
fn odd(k: u8) -> bool {
    k % 2 == 1
}

proptest! {
    #![proptest_config(cases(48))]

    /// Two threads on one map, each with its own keys (even / odd) and its
    /// own model, interleaving freely (retain and iteration included, each
    /// thread acting on and checking only its keys); the map ends as the
    /// union of the models and every object is dropped once.
    #[test]
    fn two_threads_on_disjoint_keys_end_as_the_union_of_their_models(
        shards in shard_count(),
        capacity in capacity(),
        a in proptest::collection::vec(op(0..32, false), 1..300),
        b in proptest::collection::vec(op(0..32, false), 1..300),
    ) {
        let t = Arc::new(Tracker::default());
        set_tracker(&t);
        let map = Map::<Val>::builder(0)
            .shards(shards)
            .capacity(capacity)
            .build()
            .unwrap();
        // Each thread maps its keys onto its half: k -> 2k or 2k + 1.
        let own = |ops: Vec<Op>, parity: u8| -> Vec<Op> {
            let f = |k: u8| (k % 64) * 2 + parity;
            ops.into_iter()
                .map(|op| match op {
                    Op::Insert(k, v) => Op::Insert(f(k), v),
                    Op::TryInsert(k, v) => Op::TryInsert(f(k), v),
                    Op::Get(k) => Op::Get(f(k)),
                    Op::GetCloned(k) => Op::GetCloned(f(k)),
                    Op::ContainsKey(k) => Op::ContainsKey(f(k)),
                    Op::GetMut(k, v) => Op::GetMut(f(k), v),
                    Op::Update(k, v) => Op::Update(f(k), v),
                    Op::Remove(k) => Op::Remove(f(k)),
                    Op::RemoveEntry(k) => Op::RemoveEntry(f(k)),
                    Op::RemoveIf(k, v) => Op::RemoveIf(f(k), v),
                    Op::RemoveIfMut(k, v) => Op::RemoveIfMut(f(k), v),
                    Op::OrInsert(k, v) => Op::OrInsert(f(k), v),
                    Op::OrInsertWith(k, v) => Op::OrInsertWith(f(k), v),
                    Op::OrDefault(k) => Op::OrDefault(f(k)),
                    Op::AndModify(k, v) => Op::AndModify(f(k), v),
                    Op::EntryInsert(k, v) => Op::EntryInsert(f(k), v),
                    Op::EntryMatch(k, v) => Op::EntryMatch(f(k), v),
                    Op::TryGet(k) => Op::TryGet(f(k)),
                    Op::TryGetMut(k, v) => Op::TryGetMut(f(k), v),
                    Op::View(k) => Op::View(f(k)),
                    Op::Alter(k, v) => Op::Alter(f(k), v),
                    other => other,
                })
                .collect()
        };
        let (a, b) = (own(a, 0), own(b, 1));
        let start = std::sync::Barrier::new(2);
        let (ma, mb) = std::thread::scope(|s| {
            let run = |ops: Vec<Op>, mine: fn(u8) -> bool| {
                let (map, start, t) = (&map, &start, &t);
                s.spawn(move || {
                    set_tracker(t);
                    let mut model = Model::new();
                    start.wait();
                    for op in &ops {
                        apply(map, &mut model, op, mine, false);
                    }
                    model
                })
            };
            let ha = run(a, even);
            let hb = run(b, odd);
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let mut union: BTreeMap<u8, u32> = ma.into_iter().collect();
        for (k, v) in mb {
            prop_assert!(union.insert(k, v).is_none(), "{} in both", k);
        }
        let got: BTreeMap<u8, u32> = map.iter_cloned().map(|(k, v)| (k.k, v.val())).collect();
        prop_assert_eq!(&got, &union);
        prop_assert_eq!(map.len(), union.len());
        prop_assert_eq!(t.live(), 2 * union.len());
        drop(map);
        prop_assert_eq!(t.live(), 0, "leaked");
        prop_assert_eq!(t.bad_drops.load(Ordering::Relaxed), 0, "double drop");
    }
}

// ---------------------------------------------------------------------
// The set.

#[derive(Debug, Clone)]
enum SetOp {
    Insert(u8),
    TryInsert(u8),
    Contains(u8),
    Get(u8),
    Remove(u8),
    RemoveIf(u8, bool),
    Retain(u8),
    Iter,
    ShrinkToFit,
    TryReserve(usize),
    Clear,
}

fn set_op() -> impl Strategy<Value = SetOp> {
    let k = 0u8..32;
    prop_oneof![
        4 => k.clone().prop_map(SetOp::Insert),
        2 => k.clone().prop_map(SetOp::TryInsert),
        2 => k.clone().prop_map(SetOp::Contains),
        2 => k.clone().prop_map(SetOp::Get),
        3 => k.clone().prop_map(SetOp::Remove),
        1 => (k, any::<bool>()).prop_map(|(k, b)| SetOp::RemoveIf(k, b)),
        1 => (2u8..6).prop_map(SetOp::Retain),
        1 => Just(SetOp::Iter),
        1 => Just(SetOp::ShrinkToFit),
        1 => (0usize..100).prop_map(SetOp::TryReserve),
        1 => Just(SetOp::Clear),
    ]
}

proptest! {
    #![proptest_config(cases(64))]

    /// The set against a `HashSet`, with tracked keys.
    #[test]
    fn set_matches_the_model(
        shards in shard_count(),
        capacity in capacity(),
        ops in proptest::collection::vec(set_op(), 1..200),
    ) {
        let t = Arc::new(Tracker::default());
        set_tracker(&t);
        let set = ConcurrentHashSet::from_map(
            ConcurrentHashMap::<Key, ()>::builder(0)
                .shards(shards)
                .capacity(capacity)
                .build()
                .unwrap(),
        );
        let mut model = HashSet::<u8>::new();
        for op in &ops {
            match *op {
                SetOp::Insert(k) => prop_assert_eq!(set.insert(Key::new(k)), model.insert(k)),
                SetOp::TryInsert(k) => {
                    prop_assert_eq!(set.try_insert(Key::new(k)).unwrap(), model.insert(k))
                }
                SetOp::Contains(k) => prop_assert_eq!(set.contains(&Key::new(k)), model.contains(&k)),
                SetOp::Get(k) => prop_assert_eq!(
                    set.get(&Key::new(k)).map(|r| r.k),
                    model.get(&k).copied()
                ),
                SetOp::Remove(k) => prop_assert_eq!(
                    set.remove(&Key::new(k)).map(|key| key.k),
                    model.take(&k)
                ),
                SetOp::RemoveIf(k, yes) => {
                    let want = if yes { model.take(&k) } else { None };
                    prop_assert_eq!(set.remove_if(&Key::new(k), |_| yes).map(|key| key.k), want);
                }
                SetOp::Retain(m) => {
                    set.retain(|key| !key.k.is_multiple_of(m));
                    model.retain(|k| !k.is_multiple_of(m));
                }
                SetOp::Iter => {
                    let seen: Vec<u8> = set.iter().map(|r| r.key().k).collect();
                    prop_assert_eq!(seen.len(), model.len());
                    prop_assert_eq!(seen.into_iter().collect::<HashSet<_>>(), model.clone());
                }
                SetOp::ShrinkToFit => set.shrink_to_fit(),
                SetOp::TryReserve(n) => {
                    set.try_reserve(n).unwrap();
                    prop_assert!(set.capacity() >= set.len() + n);
                }
                SetOp::Clear => {
                    set.clear();
                    model.clear();
                }
            }
            prop_assert_eq!(set.len(), model.len(), "after {:?}", op);
            prop_assert_eq!(t.live(), model.len(), "after {:?}", op);
            prop_assert_eq!(t.bad_drops.load(Ordering::Relaxed), 0, "double drop at {:?}", op);
        }
        drop(set);
        prop_assert_eq!(t.live(), 0, "leaked");
        prop_assert_eq!(t.bad_drops.load(Ordering::Relaxed), 0, "double drop");
    }
}
