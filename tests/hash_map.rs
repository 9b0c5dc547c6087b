//! L3 concurrent hash map: model, threads, drops, placement.

mod common;

use numakit::collections::hash_map::{Entry, MAX_SHARDS};
use numakit::collections::ConcurrentHashMap;
use numakit::mem::MemError;
use numakit::NodeId;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u32),
    TryInsert(u8, u32),
    Get(u8),
    Remove(u8),
    RemoveIf(u8, u32),
    Update(u8, u32),
    EntryOrInsert(u8, u32),
    EntryAndModify(u8, u32),
    EntryRemove(u8),
    EntryInsert(u8, u32),
    Retain(u32),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    // Keys from a small range so that inserts, hits and removals mix.
    let k = 0u8..48;
    prop_oneof![
        6 => (k.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (k.clone(), any::<u32>()).prop_map(|(k, v)| Op::TryInsert(k, v)),
        4 => k.clone().prop_map(Op::Get),
        3 => k.clone().prop_map(Op::Remove),
        1 => (k.clone(), any::<u32>()).prop_map(|(k, v)| Op::RemoveIf(k, v)),
        2 => (k.clone(), any::<u32>()).prop_map(|(k, v)| Op::Update(k, v)),
        2 => (k.clone(), any::<u32>()).prop_map(|(k, v)| Op::EntryOrInsert(k, v)),
        1 => (k.clone(), any::<u32>()).prop_map(|(k, v)| Op::EntryAndModify(k, v)),
        1 => k.clone().prop_map(Op::EntryRemove),
        1 => (k, any::<u32>()).prop_map(|(k, v)| Op::EntryInsert(k, v)),
        1 => (1u32..5).prop_map(Op::Retain),
        1 => Just(Op::Clear),
    ]
}

/// The map's contents, collected both ways the map offers.
fn contents(map: &ConcurrentHashMap<String, u32>) -> BTreeMap<String, u32> {
    let mut seen = BTreeMap::new();
    map.for_each(|k, v| assert!(seen.insert(k.clone(), *v).is_none(), "{k} seen twice"));
    let cloned: BTreeMap<String, u32> = map.iter_cloned().collect();
    assert_eq!(cloned, seen);
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn map_matches_std_hashmap(
        ops in proptest::collection::vec(op(), 1..300),
        shards_log in 0u32..4,
    ) {
        let map = ConcurrentHashMap::<String, u32>::builder(0)
            .shards(1 << shards_log)
            .build()
            .unwrap();
        let mut model: HashMap<String, u32> = HashMap::new();
        let key = |k: u8| format!("key-{k}");
        for op in ops {
            match op {
                Op::Insert(k, v) => prop_assert_eq!(map.insert(key(k), v), model.insert(key(k), v)),
                Op::TryInsert(k, v) => {
                    let got = map.try_insert(key(k), v).map_err(|e| e.to_string());
                    prop_assert_eq!(got, Ok(model.insert(key(k), v)));
                }
                Op::Get(k) => {
                    prop_assert_eq!(map.get(&key(k)).map(|r| *r), model.get(&key(k)).copied());
                    prop_assert_eq!(map.get_cloned(key(k).as_str()), model.get(&key(k)).copied());
                    prop_assert_eq!(map.contains_key(&key(k)), model.contains_key(&key(k)));
                    if let Some(r) = map.get(&key(k)) {
                        prop_assert_eq!(r.key(), &key(k));
                    }
                }
                Op::Remove(k) => prop_assert_eq!(map.remove(&key(k)), model.remove(&key(k))),
                Op::RemoveIf(k, v) => {
                    // Remove when the stored value is odd-parity with v.
                    let want = model.get(&key(k)).copied().filter(|x| (x ^ v) & 1 == 1);
                    if want.is_some() {
                        model.remove(&key(k));
                    }
                    let got = map.remove_if(&key(k), |_, x| (x ^ v) & 1 == 1).map(|(_, x)| x);
                    prop_assert_eq!(got, want);
                }
                Op::Update(k, v) => {
                    let want = model.get_mut(&key(k)).map(|x| { *x = x.wrapping_add(v); *x });
                    let got = map.update(&key(k), |x| { *x = x.wrapping_add(v); *x });
                    prop_assert_eq!(got, want);
                }
                Op::EntryOrInsert(k, v) => {
                    let want = *model.entry(key(k)).or_insert(v);
                    prop_assert_eq!(*map.entry(key(k)).or_insert(v), want);
                }
                Op::EntryAndModify(k, v) => {
                    let want = *model.entry(key(k)).and_modify(|x| *x ^= v).or_insert(v);
                    let got = *map.entry(key(k)).and_modify(|x| *x ^= v).or_insert(v);
                    prop_assert_eq!(got, want);
                }
                Op::EntryRemove(k) => {
                    let got = match map.try_entry(key(k)).unwrap() {
                        Entry::Occupied(e) => Some(e.remove()),
                        Entry::Vacant(e) => { prop_assert_eq!(e.into_key(), key(k)); None }
                    };
                    prop_assert_eq!(got, model.remove(&key(k)));
                }
                Op::EntryInsert(k, v) => {
                    model.insert(key(k), v);
                    let r = map.entry(key(k)).insert(v);
                    prop_assert_eq!((r.key().clone(), *r.value()), (key(k), v));
                }
                Op::Retain(m) => {
                    model.retain(|_, v| *v % m != 0);
                    map.retain(|_, v| *v % m != 0);
                }
                Op::Clear => {
                    model.clear();
                    map.clear();
                }
            }
            prop_assert_eq!(map.len(), model.len());
            prop_assert_eq!(map.is_empty(), model.is_empty());
        }
        let want: BTreeMap<String, u32> = model.into_iter().collect();
        prop_assert_eq!(contents(&map), want);
    }
}

#[test]
fn builder_and_node_errors() {
    let topo = common::topology();
    for bad in [0, 3, 12, MAX_SHARDS * 2] {
        let err = ConcurrentHashMap::<u8, u8>::builder(0)
            .shards(bad)
            .build()
            .unwrap_err();
        assert!(matches!(err, MemError::InvalidConfig(_)), "{err}");
        assert!(err.to_string().contains("power-of-two"), "{err}");
    }
    let err = ConcurrentHashMap::<u8, u8>::builder(0)
        .shards(12)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("use 16"), "{err}");
    let err = ConcurrentHashMap::<u8, u8>::new(common::absent_node(&topo)).unwrap_err();
    assert!(matches!(err, MemError::Topology(_)), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let map = ConcurrentHashMap::<u8, u8>::builder(0)
        .shards(1)
        .build()
        .unwrap();
    assert_eq!(map.shard_count(), 1);
    let map = ConcurrentHashMap::<u8, u8>::new(0).unwrap();
    assert!(map.shard_count().is_power_of_two() && map.shard_count() >= 4);
}

#[test]
fn capacity_beyond_the_node_is_an_error_not_an_oom_kill() {
    // Beyond the address space: a size error, or (with many shards, each
    // asked for its share) the node saying it cannot hold it.
    for capacity in [usize::MAX / 2, usize::MAX] {
        let err = ConcurrentHashMap::<u64, u64>::with_capacity(0, capacity).unwrap_err();
        assert!(
            matches!(
                err,
                MemError::SizeOverflow { .. } | MemError::OutOfNodeMemory { .. }
            ),
            "{err}"
        );
    }
    // Representable but far more than the node has: the node says so.
    let err = ConcurrentHashMap::<u64, [u8; 64]>::with_capacity(0, 1 << 36).unwrap_err();
    assert!(
        matches!(
            err,
            MemError::OutOfNodeMemory { .. } | MemError::InvalidSize { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("node 0"), "{err}");
}

#[test]
fn maps_on_every_node_have_every_page_there() {
    let topo = common::topology();
    let mut checked = 0;
    for node in topo.nodes().iter().filter(|n| n.has_memory()) {
        let map = ConcurrentHashMap::<u64, [u64; 4]>::builder(node.id())
            .shards(4)
            .build()
            .unwrap();
        // Grow past the heap's size classes so that tables get mappings of
        // their own, which `verify` must cover too.
        for i in 0..80_000u64 {
            map.insert(i, [i; 4]);
        }
        assert_eq!(map.node(), node.id());
        assert!(
            map.large_tables() >= 4,
            "{} large tables",
            map.large_tables()
        );
        let proof = map.verify().unwrap();
        assert!(proof.is_all_on(node.id()), "{proof}");
        // 80k entries of 40 bytes need at least 3.2 MB of buckets.
        let pages = proof.pages();
        assert!(pages >= 3_200_000 / 4096, "{pages} pages");
        let stats = map.heap_stats();
        assert_eq!(stats.node, node.id());
        checked += 1;
    }
    if common::expected_nodes().is_some_and(|n| n > 1) {
        assert!(checked >= 2);
    }
}

#[test]
fn map_on_node_1_is_on_node_1_or_refused() {
    let topo = common::topology();
    let one = NodeId::new(1);
    match topo.node(one) {
        Ok(node) if node.has_memory() => {
            let map = ConcurrentHashMap::<u64, u64>::with_capacity(one, 50_000).unwrap();
            for i in 0..50_000 {
                map.insert(i, i);
            }
            let proof = map.verify().unwrap();
            assert!(proof.is_all_on(one), "{proof}");
            let pages = proof.pages();
            assert!(pages >= 50_000 * 16 / 4096, "{pages} pages");
            assert_eq!(map.node(), one);
        }
        _ => {
            assert!(
                common::expected_nodes().is_none_or(|n| n <= 1),
                "the harness promised several nodes but node 1 has no memory"
            );
            let err = ConcurrentHashMap::<u64, u64>::new(one).unwrap_err();
            assert!(matches!(err, MemError::Topology(_)), "{err}");
            let map = ConcurrentHashMap::<u64, u64>::with_capacity(0, 50_000).unwrap();
            for i in 0..50_000 {
                map.insert(i, i);
            }
            let proof = map.verify().unwrap();
            assert!(proof.is_all_on(NodeId::new(0)), "{proof}");
            assert!(proof.pages() >= 50_000 * 16 / 4096, "{proof}");
        }
    }
}

#[derive(Debug)]
struct Counted(Arc<AtomicUsize>, u32);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn values_left_in_the_map_are_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let c = |v| Counted(Arc::clone(&drops), v);
    let map = ConcurrentHashMap::builder(0).shards(4).build().unwrap();
    for i in 0..1000u32 {
        assert!(map.insert(i, c(i)).is_none());
    }
    // Growth moved entries around; nothing was dropped.
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    // Replacing hands the old value back (dropped here, once).
    for i in 0..100u32 {
        drop(map.insert(i, c(i + 1)).unwrap());
    }
    assert_eq!(drops.load(Ordering::SeqCst), 100);
    for i in 100..200u32 {
        drop(map.remove(&i).unwrap());
    }
    assert_eq!(drops.load(Ordering::SeqCst), 200);
    // 900 left: keep the 450 even keys (and check what retain sees).
    map.retain(|k, v| {
        assert_eq!(v.1, if *k < 100 { k + 1 } else { *k });
        k % 2 == 0
    });
    assert_eq!(drops.load(Ordering::SeqCst), 650);
    assert_eq!(map.len(), 450);
    if let Entry::Occupied(mut e) = map.entry(0) {
        drop(e.insert(c(7)));
    }
    assert_eq!(drops.load(Ordering::SeqCst), 651);
    drop(map); // the 450 left
    assert_eq!(drops.load(Ordering::SeqCst), 1101);

    drops.store(0, Ordering::SeqCst);
    let map = ConcurrentHashMap::builder(0).shards(2).build().unwrap();
    for i in 0..50u32 {
        map.insert(i, c(i));
    }
    map.clear();
    assert_eq!(drops.load(Ordering::SeqCst), 50);
    map.insert(1, c(1));
    drop(map);
    assert_eq!(drops.load(Ordering::SeqCst), 51);
}

/// `threads` writers on disjoint key ranges (insert all, remove every
/// third, update the rest) while every thread also reads keys of the
/// others; the final key set is exactly the one expected.
fn concurrent_key_set(threads: u64, per_thread: u64, shards: usize) {
    let map = Arc::new(
        ConcurrentHashMap::<u64, u64>::builder(0)
            .shards(shards)
            .build()
            .unwrap(),
    );
    let start = Arc::new(Barrier::new(threads as usize));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let map = Arc::clone(&map);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let keys = (0..per_thread).map(|i| i * threads + t);
                for k in keys.clone() {
                    assert!(map.insert(k, k * 2).is_none());
                    // Someone else's key: absent, or with its invariant.
                    let other = k ^ 1;
                    if let Some(v) = map.get(&other) {
                        assert!(*v == other * 2 || *v == other * 2 + 1, "{other} -> {}", *v);
                    }
                }
                for k in keys.clone() {
                    if k % 3 == 0 {
                        assert_eq!(map.remove(&k), Some(k * 2));
                    } else {
                        assert_eq!(map.update(&k, |v| *v += 1), Some(()));
                    }
                    assert!(map.get_cloned(&(k / 2)).is_none_or(|v| v / 2 == k / 2));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let n = threads * per_thread;
    let want: BTreeMap<u64, u64> = (0..n)
        .filter(|k| k % 3 != 0)
        .map(|k| (k, k * 2 + 1))
        .collect();
    let got: BTreeMap<u64, u64> = map.iter_cloned().collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    assert_eq!(map.len(), want.len());
    map.verify().unwrap();
}

#[test]
fn concurrent_insert_remove_get_keep_the_key_set() {
    concurrent_key_set(4, 5_000, 8);
    concurrent_key_set(3, 2_000, 1);
}

#[test]
fn concurrent_entry_increments_are_not_lost() {
    let map = Arc::new(ConcurrentHashMap::<u32, u64>::new(0).unwrap());
    let threads = 4;
    let rounds = 2_000;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let map = Arc::clone(&map);
            std::thread::spawn(move || {
                for r in 0..rounds {
                    *map.entry(r % 64).or_default() += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut total = 0;
    map.for_each(|_, v| total += *v);
    assert_eq!(total, threads * rounds as u64);
    assert_eq!(map.len(), 64);
}

#[test]
fn host_only_stress_map_growth_under_contention() {
    for (threads, shards) in [(2, 4), (4, 8), (8, 64), (8, 1)] {
        concurrent_key_set(threads, 200_000 / threads, shards);
    }
}

#[test]
fn guards_and_auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ConcurrentHashMap<String, Vec<u8>>>();
    send_sync::<numakit::collections::hash_map::InsertError<(String, u8)>>();
    let map = ConcurrentHashMap::<u32, String>::new(0).unwrap();
    map.insert(1, "one".into());
    {
        let a = map.get(&1).unwrap();
        let b = map.get(&1).unwrap(); // readers share a shard
        assert_eq!(
            (a.as_str(), b.pair_ref()),
            ("one", (&1, &"one".to_string()))
        );
    }
    map.get_mut(&1).unwrap().push('!');
    assert_eq!(map.get_cloned(&1).as_deref(), Some("one!"));
    assert_eq!(format!("{map:?}"), r#"{1: "one!"}"#);
    assert!(map.capacity() >= 1);
}

// ---- Clone, try_clone_to, Extend, try_extend ----------------------------

/// A value that counts its live copies and can be told to panic when
/// cloned.
struct Copies {
    v: u64,
    live: Arc<std::sync::atomic::AtomicIsize>,
    panic_on_clone: bool,
}

impl Copies {
    fn new(v: u64, live: &Arc<std::sync::atomic::AtomicIsize>, panic_on_clone: bool) -> Self {
        live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Copies {
            v,
            live: Arc::clone(live),
            panic_on_clone,
        }
    }
}

impl Clone for Copies {
    fn clone(&self) -> Self {
        assert!(!self.panic_on_clone, "clone of {} panics", self.v);
        Copies::new(self.v, &self.live, false)
    }
}

impl Drop for Copies {
    fn drop(&mut self) {
        self.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn clones_are_whole_independent_copies_on_the_node_asked() {
    let topo = common::topology();
    let live = Arc::new(std::sync::atomic::AtomicIsize::new(0));
    for shards in [1, 2, 64] {
        for n in [0u64, 1, 1000] {
            let map = ConcurrentHashMap::<u64, Copies>::builder(0)
                .shards(shards)
                .build()
                .unwrap();
            for k in 0..n {
                map.insert(k, Copies::new(k * 3, &live, false));
            }
            let copy = map.clone();
            assert_eq!(copy.len(), map.len());
            assert_eq!(copy.shard_count(), shards);
            for k in 0..n {
                assert_eq!(copy.get(&k).unwrap().v, k * 3);
            }
            // Independent: changing one leaves the other alone.
            copy.insert(n + 1, Copies::new(7, &live, false));
            map.remove(&0);
            assert_eq!(copy.len() as u64, n + 1);
            assert_eq!(map.len() as u64, n.saturating_sub(1));
            // On every node with memory, placed there; refused elsewhere.
            for node in topo.node_ids() {
                let has_memory = topo.node(node).unwrap().has_memory();
                match map.try_clone_to(node) {
                    Ok(there) => {
                        assert!(has_memory, "node {node}");
                        assert_eq!(there.node(), node);
                        assert_eq!(there.len(), map.len());
                        assert!(there.verify().unwrap().is_all_on(node));
                    }
                    Err(e) => assert!(!has_memory, "node {node}: {e}"),
                }
            }
            for node in [common::absent_node(&topo).get(), u32::MAX] {
                assert!(map.try_clone_to(node).is_err());
            }
        }
    }
    assert_eq!(
        live.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a copy leaked or dropped twice"
    );
}

#[test]
fn a_clone_that_panics_leaves_the_map_usable_and_leaks_nothing() {
    let live = Arc::new(std::sync::atomic::AtomicIsize::new(0));
    let map = ConcurrentHashMap::<u64, Copies>::builder(0)
        .shards(4)
        .build()
        .unwrap();
    for k in 0..100 {
        map.insert(k, Copies::new(k, &live, k == 57));
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map.try_clone()));
    assert!(r.is_err(), "the clone of 57 panics");
    assert_eq!(live.load(std::sync::atomic::Ordering::SeqCst), 100);
    // The map's shards are not left locked.
    map.insert(1000, Copies::new(1000, &live, false));
    assert_eq!(map.len(), 101);
    map.remove(&57);
    let copy = map.try_clone().unwrap();
    assert_eq!(copy.len(), 100);
    drop(copy);
    drop(map);
    assert_eq!(live.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn extend_and_try_extend_insert_every_pair() {
    let mut map = ConcurrentHashMap::<u32, u32>::new(0).unwrap();
    map.extend((0..500).map(|k| (k, k + 1)));
    map.extend(std::iter::empty());
    assert_eq!(map.len(), 500);
    map.try_extend((250..750).map(|k| (k, k * 2))).unwrap();
    assert_eq!(map.len(), 750);
    assert_eq!(map.get_cloned(&10), Some(11));
    assert_eq!(map.get_cloned(&300), Some(600));
    // A pair of the iterator whose key hashing panics stops the extend;
    // the map keeps what was inserted and stays usable.
    #[derive(PartialEq, Eq)]
    struct Bad(u32);
    impl std::hash::Hash for Bad {
        fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
            assert!(self.0 != 3, "hash of 3 panics");
            self.0.hash(h);
        }
    }
    let bad = ConcurrentHashMap::<Bad, u32>::new(0).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bad.try_extend((0..6).map(|k| (Bad(k), k)))
    }));
    assert!(r.is_err());
    assert_eq!(bad.len(), 3);
    bad.insert(Bad(10), 10);
    assert_eq!(bad.len(), 4);
}
