//! Concurrent maps side by side: numakit's `ConcurrentHashMap` vs `dashmap`
//! vs std's `RwLock<HashMap>`, all hashing with std's `RandomState`
//! (SipHash-1-3), `u64` keys and values, at 1, 2 and 4 threads.
//!
//! Mixes (each operation picks its kind and its key at random; keys are
//! uniform over `0..KEYS`, and the map starts with every even key, half the
//! key space, which inserts and removes at equal rates keep it near):
//! - `read_heavy`: 98% get, 1% insert, 1% remove;
//! - `exchange` ("10/40/40/10"): 10% insert, 40% get, 40% update (add 1 to
//!   the value in place if the key is present, under the write lock:
//!   `update` / `get_mut` / `write().get_mut`), 10% remove.
//!
//! A get copies the value out (`*map.get(&k)?`). Threads are started once
//! per benchmark and released together for every measured batch; one
//! criterion iteration is one operation on every thread, so the reported
//! throughput (elements/s) is the total operations per second.
//!
//! `cargo bench -p numakit --bench maps -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use numakit::collections::ConcurrentHashMap;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const KEYS: u64 = 1 << 16;

trait Map: Send + Sync + 'static {
    fn get(&self, k: u64) -> Option<u64>;
    fn insert(&self, k: u64, v: u64);
    fn remove(&self, k: u64);
    fn update(&self, k: u64);
}

impl Map for ConcurrentHashMap<u64, u64> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        ConcurrentHashMap::get(self, &k).map(|v| *v)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        ConcurrentHashMap::insert(self, k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        ConcurrentHashMap::remove(self, &k);
    }
    #[inline]
    fn update(&self, k: u64) {
        ConcurrentHashMap::update(self, &k, |v| *v += 1);
    }
}

impl Map for DashMap<u64, u64, RandomState> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        DashMap::get(self, &k).map(|v| *v)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        DashMap::insert(self, k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        DashMap::remove(self, &k);
    }
    #[inline]
    fn update(&self, k: u64) {
        if let Some(mut v) = DashMap::get_mut(self, &k) {
            *v += 1;
        }
    }
}

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

#[derive(Clone, Copy)]
enum Mix {
    ReadHeavy,
    Exchange,
}

impl Mix {
    fn name(self) -> &'static str {
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

#[inline]
fn run<M: Map>(map: &M, mix: Mix, rng: &mut u64, ops: u64) {
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
struct Pool {
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
    fn new<M: Map>(map: Arc<M>, mix: Mix, threads: usize) -> Pool {
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
    fn batch<M: Map>(&mut self, map: &M, mix: Mix, ops: u64) -> Duration {
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

fn prefill<M: Map>(map: &M) {
    for k in (0..KEYS).step_by(2) {
        map.insert(k, k);
    }
}

fn bench_map<M: Map>(c: &mut Criterion, mix: Mix, name: &str, make: impl Fn() -> M) {
    let mut group = c.benchmark_group(format!("maps/{}", mix.name()));
    for threads in [1usize, 2, 4] {
        let map = Arc::new(make());
        prefill(&*map);
        let mut pool = Pool::new(Arc::clone(&map), mix, threads);
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new(name, threads), |b| {
            b.iter_custom(|iters| pool.batch(&*map, mix, iters))
        });
    }
    group.finish();
}

fn maps(c: &mut Criterion) {
    for mix in [Mix::ReadHeavy, Mix::Exchange] {
        bench_map(c, mix, "numakit", || {
            ConcurrentHashMap::<u64, u64>::new(0).expect("node 0")
        });
        bench_map(c, mix, "dashmap", || {
            DashMap::<u64, u64, RandomState>::with_hasher(RandomState::new())
        });
        bench_map(c, mix, "std_rwlock", || {
            RwLock::new(HashMap::<u64, u64, RandomState>::with_hasher(
                RandomState::new(),
            ))
        });
    }
}

criterion_group!(benches, maps);
criterion_main!(benches);
