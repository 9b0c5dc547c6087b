//! L3 concurrent hash map under misuse: one thread taking several guards
//! (never a hang: a recursive read proceeds, a self-deadlock panics),
//! user code that panics at every point it runs, and hostile sizes.
//!
//! Anything that could deadlock runs under [`watchdog`], so a regression
//! fails the test instead of hanging the run.

mod common;

use numakit::collections::hash_map::{Entry, TryResult, MAX_SHARDS};
use numakit::collections::{ConcurrentHashMap, ConcurrentHashSet};
use numakit::mem::MemError;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Run `f` on its own thread; fail if it takes longer than `secs` (a
/// deadlock), with `f`'s own panic going on in the caller.
fn watchdog<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    common::finishes(secs, what, f)
}

/// A hasher that puts key `k` in shard `k % shards` (for up to 2⁷ shards
/// nothing else of the key reaches the shard bits): the shard bits sit
/// just below hashbrown's 7 tag bits.
#[derive(Clone, Copy)]
struct ShardOf(u32);
struct ShardHasher(u64, u32);
impl BuildHasher for ShardOf {
    type Hasher = ShardHasher;
    fn build_hasher(&self) -> ShardHasher {
        ShardHasher(0, self.0)
    }
}
impl Hasher for ShardHasher {
    fn finish(&self) -> u64 {
        let bits = self.1.trailing_zeros();
        let shard = self.0 & (u64::from(self.1) - 1);
        // Tag bits and bucket bits from the key too, so that keys differ.
        let mix = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let low = mix >> (7 + bits);
        (mix & (0x7f << 57)) | (shard << (64 - 7 - bits)) | low
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0 << 8 | u64::from(b);
        }
    }
    fn write_u32(&mut self, k: u32) {
        self.0 = u64::from(k);
    }
}

fn sharded(shards: u32) -> Arc<ConcurrentHashMap<u32, String, ShardOf>> {
    let map = ConcurrentHashMap::<u32, String>::builder(0)
        .shards(shards as usize)
        .hasher(ShardOf(shards))
        .build()
        .unwrap();
    for k in 0..4 * shards {
        map.insert(k, k.to_string());
    }
    Arc::new(map)
}

/// Start a thread that writes key `k` (waiting for the shard), return once
/// it is about to; `sleep` more so it is really waiting.
fn waiting_writer(
    map: &Arc<ConcurrentHashMap<u32, String, ShardOf>>,
    k: u32,
) -> std::thread::JoinHandle<Option<String>> {
    let go = Arc::new(Barrier::new(2));
    let w = {
        let map = Arc::clone(map);
        let go = Arc::clone(&go);
        std::thread::spawn(move || {
            go.wait();
            map.insert(k, "writer".into())
        })
    };
    go.wait();
    std::thread::sleep(Duration::from_millis(100));
    w
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// The defect: a thread holding a `Ref` takes another on the same shard
/// while a writer waits for it. It used to wait forever (writer
/// preference: the second read queued behind the writer, which waited for
/// the first).
#[test]
fn second_ref_on_a_shard_while_a_writer_waits_does_not_hang() {
    watchdog(10, "get while holding a Ref, writer waiting", || {
        let map = sharded(1);
        let first = map.get(&1).unwrap();
        let writer = waiting_writer(&map, 2);
        // Every read path of the map, on the same shard.
        let second = map.get(&0).unwrap();
        let third = map.get(&1).unwrap();
        assert_eq!(
            (first.as_str(), second.as_str(), third.as_str()),
            ("1", "0", "1")
        );
        assert_eq!(map.get_cloned(&3).as_deref(), Some("3"));
        assert!(map.contains_key(&2));
        let mut seen = 0;
        map.for_each(|_, _| seen += 1);
        assert_eq!(seen, 4);
        assert_eq!(map.iter_cloned().count(), 4);
        assert!(map.capacity() >= 4);
        assert!(!writer.is_finished(), "the writer waits for the guards");
        drop((first, second, third));
        assert_eq!(writer.join().unwrap().as_deref(), Some("2"));
        assert_eq!(map.get_cloned(&2).as_deref(), Some("writer"));
    });
}

/// Same on a map with many shards: keys in the guard's shard and others.
#[test]
fn refs_on_several_shards_while_writers_wait_do_not_hang() {
    watchdog(10, "gets on several shards with writers waiting", || {
        let map = sharded(4);
        let held: Vec<_> = (0..4).map(|k| map.get(&k).unwrap()).collect();
        let writers: Vec<_> = (0..4).map(|k| waiting_writer(&map, k + 4)).collect();
        let again: Vec<_> = (8..16).map(|k| map.get(&k).unwrap()).collect();
        assert_eq!(again.len() + held.len(), 12);
        drop((held, again));
        for w in writers {
            w.join().unwrap();
        }
    });
}

type WriteOp = (
    &'static str,
    fn(&ConcurrentHashMap<u32, String, ShardOf>, u32),
);

/// Every method that write-locks a key's shard (or every shard).
fn write_ops() -> Vec<WriteOp> {
    vec![
        ("insert", |m, k| drop(m.insert(k, "x".into()))),
        ("try_insert", |m, k| drop(m.try_insert(k, "x".into()))),
        ("entry", |m, k| drop(m.entry(k))),
        ("try_entry", |m, k| drop(m.try_entry(k))),
        ("get_mut", |m, k| drop(m.get_mut(&k))),
        ("update", |m, k| _ = m.update(&k, |v| v.push('!'))),
        ("remove", |m, k| drop(m.remove(&k))),
        ("remove_entry", |m, k| drop(m.remove_entry(&k))),
        ("remove_if", |m, k| drop(m.remove_if(&k, |_, _| true))),
        ("remove_if_mut", |m, k| {
            drop(m.remove_if_mut(&k, |_, v| {
                v.push('?');
                true
            }))
        }),
        ("retain", |m, _| m.retain(|_, _| true)),
        ("clear", |m, _| m.clear()),
        ("for_each_mut", |m, _| m.for_each_mut(|_, _| {})),
        ("alter", |m, k| _ = m.alter(&k, |_, v| v)),
        ("alter_all", |m, _| m.alter_all(|_, v| v)),
        ("iter_mut", |m, _| _ = m.iter_mut().count()),
        ("shrink_to_fit", |m, _| m.shrink_to_fit()),
        ("try_reserve", |m, _| m.try_reserve(10).unwrap()),
    ]
}

/// The methods of `write_ops` that write every shard.
fn whole_map_write(name: &str) -> bool {
    matches!(
        name,
        "retain"
            | "clear"
            | "for_each_mut"
            | "alter_all"
            | "iter_mut"
            | "shrink_to_fit"
            | "try_reserve"
    )
}

type ReadOp = (
    &'static str,
    fn(&ConcurrentHashMap<u32, String, ShardOf>, u32),
);

/// Every method that read-locks a key's shard (or every shard).
fn read_ops() -> Vec<ReadOp> {
    vec![
        ("get", |m, k| drop(m.get(&k))),
        ("get_cloned", |m, k| drop(m.get_cloned(&k))),
        ("contains_key", |m, k| _ = m.contains_key(&k)),
        ("for_each", |m, _| m.for_each(|_, _| {})),
        ("iter_cloned", |m, _| _ = m.iter_cloned().count()),
        ("capacity", |m, _| _ = m.capacity()),
        ("view", |m, k| _ = m.view(&k, |_, v| v.len())),
        ("iter", |m, _| _ = m.iter().count()),
    ]
}

/// A write from a thread that holds a `Ref` on the same shard waited for
/// the thread itself, forever (even with no other thread around); now it
/// panics, naming the method and the shard, and the map stays usable.
#[test]
fn write_while_holding_a_ref_on_the_shard_panics_instead_of_hanging() {
    watchdog(20, "write while holding a Ref", || {
        let map = sharded(2);
        for (name, op) in write_ops() {
            map.insert(1, "1".into());
            let r = map.get(&1).unwrap(); // shard 1
            let err = catch_unwind(AssertUnwindSafe(|| op(&map, 3))).unwrap_err();
            let msg = panic_message(err);
            assert!(
                msg.contains(&format!("ConcurrentHashMap::{name} ")),
                "{msg}"
            );
            assert!(msg.contains("shard 1 (of 2)"), "{name}: {msg}");
            assert!(msg.contains("read guard"), "{name}: {msg}");
            assert_eq!(&*r, "1", "{name}: the Ref is intact");
            // The other shard is free for this thread's writes, key-wise.
            if !whole_map_write(name) {
                op(&map, 2);
            }
            drop(r);
            // And everything works again once the guard is gone.
            map.insert(1, "1".into());
            map.insert(3, "3".into());
            op(&map, 3);
        }
    });
}

/// While a thread holds a shard's write lock (`RefMut`, `Entry`), every
/// read or write of that shard from the thread panics; other shards work.
#[test]
fn anything_on_a_shard_held_for_writing_panics_instead_of_hanging() {
    watchdog(20, "use while holding a RefMut", || {
        let map = sharded(2);
        let ops = read_ops().into_iter().chain(write_ops());
        for (name, op) in ops {
            for hold in ["get_mut", "entry"] {
                map.insert(1, "1".into());
                let guard = match hold {
                    "get_mut" => (Some(map.get_mut(&1).unwrap()), None),
                    _ => (None, Some(map.entry(1))),
                };
                let err = catch_unwind(AssertUnwindSafe(|| op(&map, 3))).unwrap_err();
                let msg = panic_message(err);
                assert!(
                    msg.contains(&format!("ConcurrentHashMap::{name} ")),
                    "{msg}"
                );
                assert!(msg.contains("shard 1 (of 2)"), "{hold}/{name}: {msg}");
                assert!(msg.contains("write lock"), "{hold}/{name}: {msg}");
                let whole_map = whole_map_write(name)
                    || matches!(name, "for_each" | "iter_cloned" | "capacity" | "iter");
                if !whole_map {
                    op(&map, 2); // shard 0
                }
                drop(guard);
                op(&map, 3);
            }
        }
        map.insert(5, "5".into());
        assert_eq!(map.get_cloned(&5).as_deref(), Some("5"));
    });
}

/// Callbacks that run under a shard lock and use the map: reads inside
/// `for_each` proceed (even behind a waiting writer); a write of the same
/// shard, or any use of a shard held by `update`/`retain`, panics.
#[test]
fn callbacks_that_reenter_the_map_never_hang() {
    watchdog(20, "re-entrant callbacks", || {
        let map = sharded(1);
        let writer = Arc::new(Barrier::new(2));
        let w = {
            let (map, writer) = (Arc::clone(&map), Arc::clone(&writer));
            std::thread::spawn(move || {
                writer.wait();
                map.insert(100, "w".into());
            })
        };
        let mut n = 0;
        map.for_each(|k, v| {
            if n == 0 {
                writer.wait();
                std::thread::sleep(Duration::from_millis(100));
            }
            n += 1;
            assert_eq!(map.get(k).as_deref(), Some(v));
        });
        w.join().unwrap();
        let err = catch_unwind(AssertUnwindSafe(|| {
            map.for_each(|k, _| drop(map.insert(*k, "again".into())))
        }))
        .unwrap_err();
        assert!(panic_message(err).contains("ConcurrentHashMap::insert "));
        let err = catch_unwind(AssertUnwindSafe(|| {
            map.update(&1, |_| drop(map.get(&2)));
        }))
        .unwrap_err();
        assert!(panic_message(err).contains("ConcurrentHashMap::get "));
        let err = catch_unwind(AssertUnwindSafe(|| {
            map.retain(|_, _| map.contains_key(&7));
        }))
        .unwrap_err();
        assert!(panic_message(err).contains("ConcurrentHashMap::contains_key "));
        assert_eq!(map.len(), 5);
        assert!(map
            .iter_cloned()
            .all(|(k, v)| v == "w" || v == k.to_string()));
    });
}

/// The record is per map: holding a guard of one map does not affect
/// another (even one made at the same address after the first is gone).
#[test]
fn guards_of_one_map_do_not_affect_another() {
    watchdog(10, "two maps", || {
        let a = sharded(1);
        let b = sharded(1);
        let ra = a.get(&1).unwrap();
        b.insert(1, "b".into());
        let mut rb = b.get_mut(&1).unwrap();
        rb.push('!');
        assert_eq!(a.get_cloned(&1).as_deref(), Some("1"));
        drop((ra, rb));
        for _ in 0..3 {
            let m = ConcurrentHashMap::<u32, u32>::builder(0)
                .shards(1)
                .build()
                .unwrap();
            m.insert(1, 1);
            let r = m.get(&1).unwrap();
            std::mem::forget(r); // the lock and the record stay taken
            assert!(m.get(&1).is_some(), "re-reading a leaked shard works");
            let e = catch_unwind(AssertUnwindSafe(|| m.insert(2, 2))).unwrap_err();
            assert!(panic_message(e).contains("read guard"));
        }
        // A new map never sees the leaked records of the old ones.
        let m = ConcurrentHashMap::<u32, u32>::builder(0)
            .shards(1)
            .build()
            .unwrap();
        m.insert(2, 2);
        assert_eq!(m.remove(&2), Some(2));
    });
}

/// Many guards at once on one thread (more shards than the thread's
/// inline record holds): the record spills and stays exact.
#[test]
fn many_guards_on_one_thread() {
    watchdog(20, "many guards", || {
        let map = sharded(64);
        let refs: Vec<_> = (0..256).map(|k| map.get(&k).unwrap()).collect();
        for (name, op) in write_ops() {
            let e = catch_unwind(AssertUnwindSafe(|| op(&map, 77))).unwrap_err();
            assert!(panic_message(e).contains("read guard"), "{name}");
        }
        let writer = waiting_writer(&map, 5);
        let more: Vec<_> = (0..256).map(|k| map.get(&k).unwrap()).collect();
        drop(refs);
        for (name, op) in write_ops().into_iter().take(3) {
            let e = catch_unwind(AssertUnwindSafe(|| op(&map, 130))).unwrap_err();
            // 4 of the 256 keys in `more` are in each of the 64 shards.
            assert!(panic_message(e).contains("4 read guard"), "{name}");
        }
        drop(more);
        writer.join().unwrap();
        let muts: Vec<_> = (0..64).map(|k| map.get_mut(&k).unwrap()).collect();
        for k in 64..128 {
            let e = catch_unwind(AssertUnwindSafe(|| drop(map.get(&k)))).unwrap_err();
            assert!(panic_message(e).contains("write lock"));
        }
        drop(muts);
        for k in 0..256 {
            map.insert(k, "z".into());
        }
        assert_eq!(map.len(), 256);
    });
}

// ---------------------------------------------------------------------
// Panic safety: user code panicking at each point it runs.

thread_local! {
    /// Panic in the n-th call of user code (Hash, Eq, Drop, closures) on
    /// this thread, counting down; 0 = never.
    static PANIC_IN: Cell<usize> = const { Cell::new(0) };
}

fn arm(n: usize) {
    PANIC_IN.with(|c| c.set(n));
}

fn disarm() {
    PANIC_IN.with(|c| c.set(0));
}

/// A user-code point: panics if this is the armed call.
fn point(what: &str) {
    let fire = PANIC_IN.with(|c| match c.get() {
        0 => false,
        1 => {
            c.set(0);
            true
        }
        n => {
            c.set(n - 1);
            false
        }
    });
    if fire {
        panic!("user code panics in {what}");
    }
}

#[derive(Default)]
struct Counts {
    made: AtomicUsize,
    dropped: AtomicUsize,
}

impl Counts {
    fn live(&self) -> usize {
        self.made.load(Ordering::SeqCst) - self.dropped.load(Ordering::SeqCst)
    }
}

/// A key whose `Hash`, `Eq` and `Drop` are user-code points.
struct Key(u32, Arc<Counts>);
impl Key {
    fn new(k: u32, c: &Arc<Counts>) -> Self {
        c.made.fetch_add(1, Ordering::SeqCst);
        Key(k, Arc::clone(c))
    }
}
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        point("Key::hash");
        self.0.hash(h);
    }
}
impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        point("Key::eq");
        self.0 == o.0
    }
}
impl Eq for Key {}
impl Drop for Key {
    fn drop(&mut self) {
        self.1.dropped.fetch_add(1, Ordering::SeqCst);
        point("Key::drop");
    }
}

/// A value whose `Clone` and `Drop` are user-code points.
struct Val(u32, Arc<Counts>);
impl Val {
    fn new(v: u32, c: &Arc<Counts>) -> Self {
        c.made.fetch_add(1, Ordering::SeqCst);
        Val(v, Arc::clone(c))
    }
}
impl Clone for Val {
    fn clone(&self) -> Self {
        point("Val::clone");
        Val::new(self.0, &self.1)
    }
}
impl Clone for Key {
    fn clone(&self) -> Self {
        Key::new(self.0, &self.1)
    }
}
impl Drop for Val {
    fn drop(&mut self) {
        self.1.dropped.fetch_add(1, Ordering::SeqCst);
        point("Val::drop");
    }
}

type PMap = ConcurrentHashMap<Key, Val>;

/// One operation that runs user code; returns nothing, panics or not.
type UserOp = (&'static str, fn(&PMap, &Arc<Counts>));

fn user_ops() -> Vec<UserOp> {
    vec![
        ("insert new", |m, c| {
            drop(m.insert(Key::new(1000, c), Val::new(1, c)))
        }),
        ("insert existing", |m, c| {
            drop(m.insert(Key::new(3, c), Val::new(1, c)))
        }),
        ("try_insert", |m, c| {
            drop(m.try_insert(Key::new(1001, c), Val::new(1, c)))
        }),
        ("get", |m, c| drop(m.get(&Key::new(4, c)))),
        ("get_cloned", |m, c| drop(m.get_cloned(&Key::new(5, c)))),
        ("contains_key", |m, c| _ = m.contains_key(&Key::new(6, c))),
        ("get_mut", |m, c| drop(m.get_mut(&Key::new(7, c)))),
        ("update", |m, c| {
            _ = m.update(&Key::new(8, c), |v| {
                point("update closure");
                v.0 += 1;
            })
        }),
        ("remove", |m, c| drop(m.remove(&Key::new(9, c)))),
        ("remove_if", |m, c| {
            drop(m.remove_if(&Key::new(10, c), |_, _| {
                point("remove_if closure");
                true
            }))
        }),
        ("remove_if_mut", |m, c| {
            drop(m.remove_if_mut(&Key::new(23, c), |_, v| {
                v.0 += 1;
                point("remove_if_mut closure");
                true
            }))
        }),
        ("entry or_insert_with vacant", |m, c| {
            let c2 = Arc::clone(c);
            drop(m.entry(Key::new(1002, c)).or_insert_with(move || {
                point("or_insert_with closure");
                Val::new(2, &c2)
            }))
        }),
        ("entry and_modify", |m, c| {
            drop(
                m.entry(Key::new(11, c))
                    .and_modify(|v| {
                        point("and_modify closure");
                        v.0 += 1
                    })
                    .or_insert(Val::new(3, c)),
            )
        }),
        ("entry insert occupied", |m, c| {
            drop(m.entry(Key::new(12, c)).insert(Val::new(4, c)))
        }),
        ("entry or_insert occupied", |m, c| {
            drop(m.entry(Key::new(14, c)).or_insert(Val::new(5, c)))
        }),
        ("entry or_insert_with occupied", |m, c| {
            let v = Val::new(6, c);
            drop(m.entry(Key::new(15, c)).or_insert_with(move || v))
        }),
        ("entry and_modify vacant", |m, c| {
            let v = Val::new(7, c);
            let e = m.entry(Key::new(1003, c)).and_modify(move |x| x.0 = v.0);
            drop(e.or_insert(Val::new(8, c)))
        }),
        ("entry vacant into_key", |m, c| {
            if let Entry::Vacant(e) = m.entry(Key::new(1004, c)) {
                drop(e.into_key());
            }
        }),
        ("entry occupied remove value", |m, c| {
            if let Entry::Occupied(e) = m.entry(Key::new(16, c)) {
                drop(e.remove());
            }
        }),
        ("remove_entry", |m, c| {
            drop(m.remove_entry(&Key::new(17, c)))
        }),
        ("entry remove", |m, c| {
            if let Entry::Occupied(e) = m.entry(Key::new(13, c)) {
                drop(e.remove_entry());
            }
        }),
        ("retain", |m, _| {
            m.retain(|k, _| {
                point("retain closure");
                k.0 % 7 != 0
            })
        }),
        ("for_each", |m, _| {
            m.for_each(|_, _| point("for_each closure"))
        }),
        ("for_each_mut", |m, _| {
            m.for_each_mut(|_, v| {
                point("for_each_mut closure");
                v.0 += 1
            })
        }),
        ("iter_cloned", |m, _| _ = m.iter_cloned().count()),
        ("iter", |m, _| {
            for r in m.iter() {
                point("iter loop");
                assert!(r.key().0 < 5000);
            }
        }),
        ("iter kept guards", |m, _| {
            let kept: Vec<_> = m.iter().collect();
            point("iter kept guards");
            drop(kept);
        }),
        ("iter_mut", |m, _| {
            for mut r in m.iter_mut() {
                point("iter_mut loop");
                r.0 += 1;
            }
        }),
        ("view", |m, c| {
            _ = m.view(&Key::new(18, c), |_, v| {
                point("view closure");
                v.0
            })
        }),
        ("alter keep", |m, c| {
            _ = m.alter(&Key::new(19, c), |_, mut v| {
                point("alter closure");
                v.0 += 1;
                v
            })
        }),
        ("alter replace", |m, c| {
            let c2 = Arc::clone(c);
            _ = m.alter(&Key::new(20, c), move |_, v| {
                point("alter closure");
                drop(v);
                point("alter closure after drop");
                Val::new(7, &c2)
            })
        }),
        ("alter_all", |m, _| {
            m.alter_all(|k, mut v| {
                point("alter_all closure");
                v.0 += k.0;
                v
            })
        }),
        ("try_get", |m, c| drop(m.try_get(&Key::new(21, c)))),
        ("try_get_mut", |m, c| {
            if let TryResult::Present(mut r) = m.try_get_mut(&Key::new(22, c)) {
                point("try_get_mut guard");
                r.0 += 1;
            }
        }),
        ("shrink_to_fit", |m, c| {
            for k in 3000..3100 {
                drop(m.insert(Key::new(k, c), Val::new(k, c)));
            }
            m.retain(|k, _| k.0 < 3000);
            m.shrink_to_fit();
        }),
        ("try_reserve", |m, _| m.try_reserve(500).unwrap()),
        ("clear", |m, _| m.clear()),
        ("insert with growth", |m, c| {
            for k in 2000..2200 {
                drop(m.insert(Key::new(k, c), Val::new(k, c)));
            }
        }),
    ]
}

/// Check the map is consistent (len = what iteration sees, no duplicate
/// keys, every lock free) and usable, and that, once it is dropped, every
/// key and value made was dropped exactly once.
fn check_consistent(map: &PMap, c: &Arc<Counts>, what: &str) {
    let mut seen = BTreeMap::new();
    map.for_each(|k, v| {
        assert!(seen.insert(k.0, v.0).is_none(), "{what}: key {} twice", k.0);
    });
    assert_eq!(map.len(), seen.len(), "{what}: len vs entries");
    assert_eq!(
        c.live(),
        2 * seen.len(),
        "{what}: keys and values alive vs entries in the map"
    );
    // No lock left taken: every shard can be written and read.
    map.insert(Key::new(9999, c), Val::new(1, c));
    assert!(map.remove(&Key::new(9999, c)).is_some());
    map.for_each_mut(|_, _| {});
    assert_eq!(map.iter_cloned().count(), seen.len(), "{what}");
}

/// `host_only`: thousands of maps, nothing that depends on the node
/// count; the emulated guest would spend most of a minute on it.
#[test]
fn host_only_user_code_panicking_at_every_point_leaves_the_map_consistent() {
    // A few seconds on the host.
    watchdog(
        300,
        "panicking user code",
        user_code_panicking_at_every_point,
    );
}

fn user_code_panicking_at_every_point() {
    for shards in [1, 4] {
        for (name, op) in user_ops() {
            // Fire at the 1st, 2nd, ... user-code point of the operation
            // until it runs to the end without reaching the armed point.
            for n in 1.. {
                let c = Arc::new(Counts::default());
                let map = PMap::builder(0).shards(shards).build().unwrap();
                for k in 0..40 {
                    map.insert(Key::new(k, &c), Val::new(k, &c));
                }
                arm(n);
                let out = catch_unwind(AssertUnwindSafe(|| op(&map, &c)));
                let fired = PANIC_IN.with(|p| p.get()) == 0 && out.is_err();
                disarm();
                let what = format!("{name} ({shards} shards), panic at point {n}");
                if out.is_err() {
                    assert!(fired, "{what}: panicked without the armed point");
                }
                check_consistent(&map, &c, &what);
                drop(map);
                assert_eq!(c.live(), 0, "{what}: leaked or double-dropped");
                if out.is_ok() {
                    break;
                }
                assert!(n < 10_000, "{what}: never completes");
            }
        }
    }
}

/// The map's own `Drop` and `clear` with a value whose `Drop` panics: every
/// other key and value is still dropped, once. (`clear` used to forget the
/// rest of the shard, and dropping the map leaked the rest of the map and
/// its node memory.)
#[test]
fn a_panicking_drop_in_clear_or_drop_leaks_nothing() {
    for shards in [1, 2, 8] {
        for at in [1, 2, 17, 40, 79] {
            let c = Arc::new(Counts::default());
            let map = PMap::builder(0).shards(shards).build().unwrap();
            for k in 0..40 {
                map.insert(Key::new(k, &c), Val::new(k, &c));
            }
            arm(at);
            let out = catch_unwind(AssertUnwindSafe(|| map.clear()));
            disarm();
            assert!(out.is_err(), "point {at} is reached");
            // The shard that panicked is empty; the ones after are intact.
            check_consistent(&map, &c, &format!("clear, {shards} shards, at {at}"));
            map.clear();
            assert_eq!((map.len(), c.live()), (0, 0));

            for k in 0..40 {
                map.insert(Key::new(k, &c), Val::new(k, &c));
            }
            arm(at);
            let out = catch_unwind(AssertUnwindSafe(|| drop(map)));
            disarm();
            assert!(out.is_err());
            assert_eq!(c.live(), 0, "drop, {shards} shards, at {at}: leaked");
        }
    }
}

// ---------------------------------------------------------------------
// Hostile sizes.

#[test]
fn hostile_shard_counts_are_typed_errors() {
    let build = |n: usize| {
        ConcurrentHashMap::<u64, u64>::builder(0)
            .shards(n)
            .build()
            .map(|m| m.shard_count())
    };
    assert_eq!(build(1).unwrap(), 1);
    assert_eq!(build(2).unwrap(), 2);
    assert_eq!(build(MAX_SHARDS).unwrap(), MAX_SHARDS);
    for bad in [
        0,
        3,
        MAX_SHARDS - 1,
        MAX_SHARDS + 1,
        MAX_SHARDS * 2,
        1 << 40,
    ] {
        let err = build(bad).unwrap_err();
        assert!(matches!(err, MemError::InvalidConfig(_)), "{bad}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&bad.to_string()), "{msg}");
        assert!(msg.contains(&MAX_SHARDS.to_string()), "{msg}");
    }
    for bad in [usize::MAX, usize::MAX / 2 + 1, u32::MAX as usize] {
        let err = build(bad).unwrap_err();
        assert!(matches!(err, MemError::InvalidConfig(_)), "{bad}: {err}");
        assert!(err.to_string().contains("use"), "{err}");
    }
}

#[test]
fn hostile_capacities_are_typed_errors_or_work() {
    for (shards, capacity) in [(1, 0), (1, 1), (MAX_SHARDS, 0), (MAX_SHARDS, 1), (2, 4096)] {
        let m = ConcurrentHashMap::<u64, u64>::builder(0)
            .shards(shards)
            .capacity(capacity)
            .build()
            .unwrap();
        assert!(m.capacity() >= capacity);
        m.insert(1, 1);
        assert_eq!(m.len(), 1);
    }
    for shards in [1, 64, MAX_SHARDS] {
        for capacity in [
            usize::MAX,
            usize::MAX - 1,
            usize::MAX / 2,
            isize::MAX as usize + 1,
        ] {
            let err = ConcurrentHashMap::<u64, u64>::builder(0)
                .shards(shards)
                .capacity(capacity)
                .build()
                .unwrap_err();
            // Beyond the address space, or (split over many shards) more
            // than the node has: either way a typed error.
            assert!(
                matches!(
                    err,
                    MemError::SizeOverflow { .. }
                        | MemError::OutOfNodeMemory { .. }
                        | MemError::InvalidSize { .. }
                ),
                "{shards} shards, {capacity}: {err}"
            );
            if shards == 1 {
                assert!(matches!(err, MemError::SizeOverflow { .. }), "{err}");
            }
        }
        // Representable, more than the node has (even split over the
        // most shards: 2³⁴ entries each).
        let err = ConcurrentHashMap::<u64, [u8; 64]>::builder(0)
            .shards(shards)
            .capacity(1 << 50)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                MemError::OutOfNodeMemory { .. }
                    | MemError::InvalidSize { .. }
                    | MemError::SizeOverflow { .. }
            ),
            "{shards} shards: {err}"
        );
    }
    // Zero-sized keys and values with a huge capacity: a typed answer too.
    let r = ConcurrentHashMap::<(), ()>::builder(0)
        .shards(1)
        .capacity(usize::MAX)
        .build();
    assert!(matches!(r, Err(MemError::SizeOverflow { .. })), "{r:?}");
}

// ---------------------------------------------------------------------
// Guarded iteration, `try_get`, and reads that must not wait where
// dashmap's do not.

/// Three threads: A reads shard 0 (holds a `Ref`), B reads shard 1 then
/// writes shard 0 (waits for A), C writes shard 1 (waits for B); then A
/// reads shard 1. dashmap's readers pass waiting writers, so A proceeds
/// and everyone finishes. With writer preference A queued behind C: A
/// waited for C, C for B, B for A — a deadlock through reads.
#[test]
fn a_read_never_closes_a_cycle_through_a_waiting_writer() {
    watchdog(20, "read past a waiting writer, three threads", || {
        let map = sharded(2); // key k in shard k % 2
        let a_holds = map.get(&0).unwrap(); // A: shard 0
        let b_ready = Arc::new(Barrier::new(2));
        let b = {
            let (map, ready) = (Arc::clone(&map), Arc::clone(&b_ready));
            std::thread::spawn(move || {
                let y = map.get(&1).unwrap(); // B: shard 1
                ready.wait();
                map.insert(2, "b".into()); // shard 0: waits for A
                drop(y);
            })
        };
        b_ready.wait();
        std::thread::sleep(Duration::from_millis(100));
        let c = waiting_writer(&map, 3); // C: shard 1, waits for B
        assert!(!b.is_finished() && !c.is_finished());
        // A reads shard 1 with every read path, then lets go.
        assert_eq!(map.get(&1).as_deref().map(String::as_str), Some("1"));
        assert_eq!(map.get_cloned(&5).as_deref(), Some("5"));
        assert!(map.contains_key(&7));
        assert_eq!(map.view(&1, |_, v| v.clone()).as_deref(), Some("1"));
        assert!(map.try_get(&1).is_present());
        assert_eq!(map.iter().count(), 8);
        drop(a_holds);
        b.join().unwrap();
        assert_eq!(c.join().unwrap().as_deref(), Some("3"));
        assert_eq!(map.get_cloned(&2).as_deref(), Some("b"));
    });
}

/// Iterating while this thread holds a `Ref` and another thread waits to
/// write that shard: the iterator reads past the writer; the writer gets
/// the shard once the `Ref`, the iterator and its guards are gone.
#[test]
fn iter_while_holding_a_ref_and_a_writer_waits_does_not_hang() {
    watchdog(20, "iter with a Ref held and a writer waiting", || {
        let map = sharded(4);
        let held = map.get(&1).unwrap();
        let writer = waiting_writer(&map, 5); // shard 1
        let mut n = 0;
        for r in map.iter() {
            // Reads from the loop, of the visited shard too.
            assert_eq!(map.get(r.key()).as_deref(), Some(r.value()));
            assert!(map.try_get(r.key()).is_present());
            n += 1;
        }
        assert_eq!(n, 16);
        // Guards kept past the iterator keep their shard read-locked.
        let kept: Vec<_> = map.iter().filter(|r| *r.key() % 4 == 1).collect();
        drop(held);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!writer.is_finished(), "the kept guards hold shard 1");
        assert_eq!(kept.len(), 4);
        drop(kept);
        assert_eq!(writer.join().unwrap().as_deref(), Some("5"));
    });
}

/// Writing, from the iterating thread, the shard the iterator (or a kept
/// guard) holds would wait for itself: it panics, names the shard, and
/// the map stays usable; other shards can be written from the loop.
#[test]
fn writing_the_visited_shard_from_an_iterator_panics_instead_of_hanging() {
    watchdog(20, "write from an iterator loop", || {
        let map = sharded(2);
        let err = catch_unwind(AssertUnwindSafe(|| {
            for r in map.iter() {
                map.insert(*r.key() + 2, "x".into()); // same shard
            }
        }))
        .unwrap_err();
        let msg = panic_message(err);
        assert!(msg.contains("ConcurrentHashMap::insert "), "{msg}");
        assert!(
            msg.contains("shard 0 (of 2)") && msg.contains("read guard"),
            "{msg}"
        );
        // iter_mut: reads of the visited shard panic too.
        let err = catch_unwind(AssertUnwindSafe(|| {
            for r in map.iter_mut() {
                drop(map.get(r.key()));
            }
        }))
        .unwrap_err();
        let msg = panic_message(err);
        assert!(
            msg.contains("ConcurrentHashMap::get ") && msg.contains("write lock"),
            "{msg}"
        );
        // An iterator reaching a shard this thread writes panics.
        let w = map.get_mut(&1).unwrap();
        for (name, go) in [
            (
                "iter",
                &(|m: &ConcurrentHashMap<u32, String, ShardOf>| _ = m.iter().count())
                    as &dyn Fn(&_),
            ),
            ("iter_mut", &|m: &ConcurrentHashMap<
                u32,
                String,
                ShardOf,
            >| _ = m.iter_mut().count()),
        ] {
            let err = catch_unwind(AssertUnwindSafe(|| go(&map))).unwrap_err();
            let msg = panic_message(err);
            assert!(
                msg.contains(&format!("ConcurrentHashMap::{name} ")),
                "{msg}"
            );
            assert!(msg.contains("shard 1 (of 2)"), "{msg}");
        }
        // With the write guard of shard 1 held, shard 0 can be iterated.
        let evens: Vec<u32> = map.iter().take(4).map(|r| *r.key()).collect();
        assert!(evens.iter().all(|k| k % 2 == 0), "{evens:?}");
        drop(w);
        // The iterator holds shard 0 only while it is in it: writing
        // shard 1 (odd keys) from the loop works.
        for r in map.iter().take(4) {
            assert_eq!(*r.key() % 2, 0);
            map.insert(*r.key() + 101, "odd".into());
        }
        let mut odd = 0;
        for r in map.iter_mut() {
            if *r.key() % 2 == 1 {
                odd += 1;
            }
        }
        assert_eq!(odd, 8);
        for mut r in map.iter_mut() {
            r.push('!');
        }
        assert_eq!(map.len(), 12);
        assert!(map.iter().all(|r| r.ends_with('!')));
    });
}

/// `try_get`/`try_get_mut` never wait and never panic: `Locked` where the
/// plain call would wait (another thread writes) or would wait for itself
/// (this thread holds the shard); readers pass a waiting writer.
#[test]
fn try_get_answers_locked_instead_of_waiting() {
    watchdog(20, "try_get", || {
        let map = sharded(2);
        assert_eq!(
            map.try_get(&1).present().as_deref().map(String::as_str),
            Some("1")
        );
        assert!(map.try_get(&100).is_absent());
        assert!(map.try_get_mut(&100).is_absent());
        // This thread holds shard 1 for reading.
        let r = map.get(&1).unwrap();
        assert!(map.try_get(&3).is_present());
        assert!(map.try_get_mut(&3).is_locked());
        assert!(map.try_get_mut(&2).is_present(), "the other shard");
        drop(r);
        // This thread holds shard 1 for writing.
        let w = map.get_mut(&1).unwrap();
        assert!(map.try_get(&3).is_locked());
        assert!(map.try_get_mut(&3).is_locked());
        drop(w);
        // Another thread holds shard 1 for writing.
        let (hold, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let t = {
            let (map, hold, release) = (Arc::clone(&map), Arc::clone(&hold), Arc::clone(&release));
            std::thread::spawn(move || {
                let w = map.get_mut(&1).unwrap();
                hold.wait();
                release.wait();
                drop(w);
            })
        };
        hold.wait();
        assert!(map.try_get(&1).is_locked());
        assert!(map.try_get_mut(&3).is_locked());
        assert!(map.try_get(&2).is_present());
        release.wait();
        t.join().unwrap();
        // Another thread reads shard 1 and a writer waits: readers pass.
        let (hold, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let t = {
            let (map, hold, release) = (Arc::clone(&map), Arc::clone(&hold), Arc::clone(&release));
            std::thread::spawn(move || {
                let r = map.get(&1).unwrap();
                hold.wait();
                release.wait();
                drop(r);
            })
        };
        hold.wait();
        let writer = waiting_writer(&map, 5);
        assert!(map.try_get(&1).is_present());
        assert!(map.try_get_mut(&3).is_locked());
        release.wait();
        t.join().unwrap();
        writer.join().unwrap();
        // A `Present` guard is a real guard: it blocks this thread's writes.
        let g = map.try_get(&1).present().unwrap();
        let e = catch_unwind(AssertUnwindSafe(|| map.insert(3, "x".into()))).unwrap_err();
        assert!(panic_message(e).contains("read guard"));
        drop(g);
        let mut g = map.try_get_mut(&1).present().unwrap();
        g.push('?');
        drop(g);
        assert_eq!(map.get_cloned(&1).as_deref(), Some("1?"));
    });
}

/// Closures of `view`, `alter` and `alter_all` that use the shard they run
/// under panic instead of hanging; the entry `alter` gave away is removed.
#[test]
fn view_and_alter_callbacks_that_reenter_the_map_never_hang() {
    watchdog(20, "re-entrant view and alter", || {
        let map = sharded(1);
        let err = catch_unwind(AssertUnwindSafe(|| {
            map.view(&1, |_, _| drop(map.insert(9, "x".into())));
        }))
        .unwrap_err();
        assert!(panic_message(err).contains("ConcurrentHashMap::insert "));
        // A view may read the map.
        assert_eq!(
            map.view(&1, |_, v| map.get_cloned(&2).unwrap() + v)
                .as_deref(),
            Some("21")
        );
        let err = catch_unwind(AssertUnwindSafe(|| {
            map.alter(&1, |_, v| {
                drop(map.get(&2));
                v
            });
        }))
        .unwrap_err();
        assert!(panic_message(err).contains("ConcurrentHashMap::get "));
        assert!(map.get(&1).is_none(), "the altered entry is gone");
        assert_eq!(map.len(), 3);
        let err = catch_unwind(AssertUnwindSafe(|| {
            map.alter_all(|_, v| {
                _ = map.contains_key(&0);
                v
            })
        }))
        .unwrap_err();
        assert!(panic_message(err).contains("ConcurrentHashMap::contains_key "));
        assert_eq!(map.len(), 2);
        map.alter_all(|k, v| format!("{v}/{k}"));
        assert!(map
            .iter()
            .all(|r| *r.value() == format!("{0}/{0}", r.key())));
    });
}

/// `try_reserve` at 0, 1, large and hostile counts: `Ok` or a typed error,
/// never a panic or an abort; the map is unchanged and usable after.
#[test]
fn hostile_reserves_are_typed_errors_or_work() {
    for shards in [1, 64, MAX_SHARDS] {
        let map = ConcurrentHashMap::<u64, u64>::builder(0)
            .shards(shards)
            .build()
            .unwrap();
        map.insert(7, 7);
        map.try_reserve(0).unwrap();
        map.try_reserve(1).unwrap();
        assert!(map.capacity() >= 2);
        map.try_reserve(4096).unwrap();
        assert!(map.capacity() >= 4097);
        for extra in [
            usize::MAX,
            usize::MAX - 1,
            usize::MAX / 2,
            isize::MAX as usize + 1,
        ] {
            let err = map.try_reserve(extra).unwrap_err();
            assert!(
                matches!(
                    err,
                    MemError::SizeOverflow { .. }
                        | MemError::OutOfNodeMemory { .. }
                        | MemError::InvalidSize { .. }
                ),
                "{shards} shards, {extra}: {err}"
            );
            if shards == 1 {
                assert!(matches!(err, MemError::SizeOverflow { .. }), "{err}");
            }
            if let MemError::SizeOverflow { count, .. } = err {
                assert_eq!(count, extra, "the error names the count asked for: {err}");
            }
        }
        // Representable, more than the node has.
        let err = map.try_reserve(1 << 50).unwrap_err();
        assert!(
            matches!(
                err,
                MemError::OutOfNodeMemory { .. }
                    | MemError::InvalidSize { .. }
                    | MemError::SizeOverflow { .. }
            ),
            "{shards} shards: {err}"
        );
        assert_eq!(map.get_cloned(&7), Some(7));
        assert_eq!(map.len(), 1);
        map.insert(8, 8);
        map.shrink_to_fit();
        assert_eq!(
            (map.get_cloned(&7), map.get_cloned(&8), map.len()),
            (Some(7), Some(8), 2)
        );
    }
    let zst = ConcurrentHashMap::<(), ()>::builder(0)
        .shards(1)
        .build()
        .unwrap();
    assert!(matches!(
        zst.try_reserve(usize::MAX),
        Err(MemError::SizeOverflow { .. })
    ));
    let set = ConcurrentHashSet::<u64>::new(0).unwrap();
    assert!(set.try_reserve(usize::MAX).is_err());
    set.try_reserve(1).unwrap();
    assert!(set.insert(1));
}

/// A read-only view and a set can be shared across threads.
#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<
        numakit::collections::hash_map::ReadOnlyView<
            u32,
            String,
            std::collections::hash_map::RandomState,
        >,
    >();
    send_sync::<ConcurrentHashSet<u32>>();
}
