//! Map workloads shared by the `maps` and `compare` benches, so that their
//! figures measure the same code: numakit's `ConcurrentHashMap`, `dashmap`
//! and std's `RwLock<HashMap>` behind one `Map` trait, the two operation
//! mixes, and a pool of worker threads released together for each batch.
//!
//! Included with `#[path = "support/maps.rs"] mod maps_support;`.

// Each bench target uses a subset of these workloads.
#![allow(dead_code)]

use dashmap::DashMap;
use numakit::collections::ConcurrentHashMap;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Key space: keys are uniform over `0..KEYS`.
pub const KEYS: u64 = 1 << 16;

/// The operations the mixes use, for every map under test.
pub trait Map: Send + Sync + 'static {
    fn get(&self, k: u64) -> Option<u64>;
    fn insert(&self, k: u64, v: u64);
    fn remove(&self, k: u64);
    fn update(&self, k: u64);
}

/// `Map` for a sharded map with inherent `get(&k)` (a guard), `insert(k, v)`
/// and `remove(&k)`; `$update` adds one to the value of `$k` in `$m`, if
/// present, in place.
macro_rules! sharded_map {
    ($ty:ty, |$m:ident, $k:ident| $update:expr) => {
        impl Map for $ty {
            #[inline]
            fn get(&self, k: u64) -> Option<u64> {
                <$ty>::get(self, &k).map(|v| *v)
            }
            #[inline]
            fn insert(&self, k: u64, v: u64) {
                <$ty>::insert(self, k, v);
            }
            #[inline]
            fn remove(&self, k: u64) {
                <$ty>::remove(self, &k);
            }
            #[inline]
            fn update(&self, $k: u64) {
                let $m = self;
                $update;
            }
        }
    };
}
sharded_map!(ConcurrentHashMap<u64, u64>, |m, k| {
    ConcurrentHashMap::update(m, &k, |v| *v += 1)
});
sharded_map!(DashMap<u64, u64, RandomState>, |m, k| {
    if let Some(mut v) = DashMap::get_mut(m, &k) {
        *v += 1;
    }
});

impl Map for RwLock<HashMap<u64, u64, RandomState>> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.read().unwrap().get(&k).copied()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.write().unwrap().insert(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        self.write().unwrap().remove(&k);
    }
    #[inline]
    fn update(&self, k: u64) {
        if let Some(v) = self.write().unwrap().get_mut(&k) {
            *v += 1;
        }
    }
}

/// The two operation mixes (see the `maps` bench for what each does).
#[derive(Clone, Copy)]
pub enum Mix {
    ReadHeavy,
    Exchange,
}

impl Mix {
    /// The mix's name in bench ids and report rows.
    pub fn name(self) -> &'static str {
        match self {
            Mix::ReadHeavy => "read_heavy",
            Mix::Exchange => "exchange",
        }
    }
}

/// splitmix64: one state per thread.
#[inline]
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `ops` operations of `mix` on `map`, keys and kinds drawn from `rng`.
#[inline]
pub fn run<M: Map>(map: &M, mix: Mix, rng: &mut u64, ops: u64) {
    for _ in 0..ops {
        let r = next(rng);
        let k = r & (KEYS - 1);
        let pct = (r >> 32) % 100;
        match mix {
            Mix::ReadHeavy => match pct {
                0..98 => {
                    black_box(map.get(k));
                }
                98 => map.insert(k, k),
                _ => map.remove(k),
            },
            Mix::Exchange => match pct {
                0..10 => map.insert(k, k),
                10..50 => {
                    black_box(map.get(k));
                }
                50..90 => map.update(k),
                _ => map.remove(k),
            },
        }
    }
}

/// Worker threads started once, released together for every batch.
pub struct Pool {
    ctl: Arc<Ctl>,
    workers: Vec<JoinHandle<()>>,
    own_rng: u64,
}

struct Ctl {
    start: Barrier,
    done: Barrier,
    ops: AtomicU64,
    stop: AtomicBool,
}

impl Pool {
    /// `threads - 1` workers on `map`; the calling thread is the last one.
    pub fn new<M: Map>(map: Arc<M>, mix: Mix, threads: usize) -> Pool {
        let ctl = Arc::new(Ctl {
            start: Barrier::new(threads),
            done: Barrier::new(threads),
            ops: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|t| {
                let ctl = Arc::clone(&ctl);
                let map = Arc::clone(&map);
                std::thread::spawn(move || {
                    let mut rng = 0x5eed ^ ((t as u64) << 40);
                    loop {
                        ctl.start.wait();
                        if ctl.stop.load(Ordering::Acquire) {
                            return;
                        }
                        run(&*map, mix, &mut rng, ctl.ops.load(Ordering::Acquire));
                        ctl.done.wait();
                    }
                })
            })
            .collect();
        Pool {
            ctl,
            workers,
            own_rng: 0x5eed,
        }
    }

    /// `ops` operations on every thread (this one included); wall time.
    pub fn batch<M: Map>(&mut self, map: &M, mix: Mix, ops: u64) -> Duration {
        self.ctl.ops.store(ops, Ordering::Release);
        let start = Instant::now();
        self.ctl.start.wait();
        run(map, mix, &mut self.own_rng, ops);
        self.ctl.done.wait();
        start.elapsed()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::Release);
        self.ctl.start.wait();
        for w in self.workers.drain(..) {
            w.join().unwrap();
        }
    }
}

/// Every even key, half the key space.
pub fn prefill<M: Map>(map: &M) {
    for k in (0..KEYS).step_by(2) {
        map.insert(k, k);
    }
}

/// Thread counts every map and mix is measured at.
pub const THREADS: [usize; 3] = [1, 2, 4];

/// numakit's map, storage on node 0.
pub fn numakit_map() -> ConcurrentHashMap<u64, u64> {
    ConcurrentHashMap::new(0).expect("node 0")
}

/// `dashmap` with std's SipHash, like the others.
pub fn dash_map() -> DashMap<u64, u64, RandomState> {
    DashMap::with_hasher(RandomState::new())
}

/// std's `HashMap` behind std's `RwLock`.
pub fn std_map() -> RwLock<HashMap<u64, u64, RandomState>> {
    RwLock::new(HashMap::with_hasher(RandomState::new()))
}

/// A full pass over a map with its guarded iterator: the sum of the
/// values, each read through the guard the iterator lends.
pub trait IterSum: Map {
    fn iter_sum(&self) -> u64;
}

impl IterSum for ConcurrentHashMap<u64, u64> {
    #[inline]
    fn iter_sum(&self) -> u64 {
        self.iter().map(|e| *e.value()).sum()
    }
}

impl IterSum for DashMap<u64, u64, RandomState> {
    #[inline]
    fn iter_sum(&self) -> u64 {
        self.iter().map(|e| *e.value()).sum()
    }
}

impl IterSum for RwLock<HashMap<u64, u64, RandomState>> {
    #[inline]
    fn iter_sum(&self) -> u64 {
        self.read().unwrap().values().sum()
    }
}

/// Entries a prefilled map holds (see [`prefill`]).
pub const PREFILLED: u64 = KEYS / 2;
