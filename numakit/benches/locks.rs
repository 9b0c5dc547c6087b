//! Locks side by side: numakit's `McsLock`, `CnaLock`, `TicketLock` and
//! `RwLock` (write side) against `std::sync::Mutex`, `parking_lot::Mutex`,
//! the `mcslock` crate (strict FIFO `raw` and `barging`) and a
//! test-and-test-and-set spinlock; and `PartitionedCounter` against one
//! `AtomicU64`.
//!
//! ```sh
//! cargo bench -p numakit --bench locks            # criterion, then the summary table
//! NUMAKIT_BENCH_TABLE=1 cargo bench -p numakit --bench locks   # the table only (≈1 min)
//! ```
//!
//! Workload: T threads share one lock whose critical section is one
//! increment of a shared counter; they run until the counter reaches the
//! iteration count (criterion mode) or for 200 ms (table mode). Throughput
//! is acquisitions per second over all threads; fairness is the slowest
//! thread's acquisitions divided by the mean (1.0 = perfectly even). The
//! summary table takes the median of 5 runs of 200 ms per point (in
//! criterion mode: of criterion's samples).

//! Measured on the 2-core development VM (table mode, one run started on
//! an idle machine; other jobs shared it, so repeat runs vary by ±20 %).
//! Million acquisitions per second; after the slash, fairness:
//!
//! ```text
//! lock                   |  1 thread |  2 threads |  4 threads |  8 threads
//! std::Mutex             |      56.1 | 12.58/0.92 | 12.48/0.88 | 11.08/0.76
//! parking_lot            |      55.3 | 24.99/0.91 | 31.44/0.83 | 31.65/0.78
//! mcslock FIFO           |      52.0 |  4.53/0.99 |  0.08/0.00 |  0.08/0.00
//! mcslock barging        |      84.9 | 18.22/0.90 | 39.42/0.18 | 22.81/0.00
//! TAS spin               |     115.6 | 16.93/0.87 |  8.31/0.26 |  3.73/0.00
//! numakit McsLock        |      52.9 | 33.08/0.96 | 36.32/0.92 | 43.34/0.62
//! numakit CnaLock        |      36.1 |  4.11/0.91 |  0.44/0.93 |  0.28/0.99
//! numakit TicketLock     |      41.6 | 22.28/0.98 |  0.97/0.41 |  0.45/0.52
//! numakit RwLock (write) |      52.0 | 11.55/0.86 | 10.26/0.72 | 10.78/0.58
//! AtomicU64 fetch_add    |     142.1 |       52.4 |       52.5 |       58.1
//! PartitionedCounter     |      93.9 |      184.7 |      196.1 |      196.1
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use numakit::sync::{CnaLock, McsLock, PartitionedCounter, RwLock, TicketLock};
use std::cell::UnsafeCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const THREADS: [usize; 4] = [1, 2, 4, 8];

/// A lock protecting one `u64`; `step` locks, stops at `limit`, increments.
trait Contender: Send + Sync + 'static {
    const NAME: &'static str;
    fn new() -> Self;
    /// Lock; if the counter is below `limit` increment it and return true.
    fn step(&self, limit: &AtomicU64) -> bool;
}

impl Contender for Mutex<u64> {
    const NAME: &'static str = "std::Mutex";
    fn new() -> Self {
        Mutex::new(0)
    }
    #[inline]
    fn step(&self, limit: &AtomicU64) -> bool {
        let mut g = self.lock().unwrap();
        if *g >= limit.load(Ordering::Relaxed) {
            return false;
        }
        *g += 1;
        true
    }
}

impl Contender for parking_lot::Mutex<u64> {
    const NAME: &'static str = "parking_lot";
    fn new() -> Self {
        parking_lot::Mutex::new(0)
    }
    #[inline]
    fn step(&self, limit: &AtomicU64) -> bool {
        let mut g = self.lock();
        if *g >= limit.load(Ordering::Relaxed) {
            return false;
        }
        *g += 1;
        true
    }
}

impl Contender for mcslock::raw::spins::Mutex<u64> {
    const NAME: &'static str = "mcslock FIFO";
    fn new() -> Self {
        mcslock::raw::spins::Mutex::new(0)
    }
    #[inline]
    fn step(&self, limit: &AtomicU64) -> bool {
        self.lock_then(|g| {
            if *g >= limit.load(Ordering::Relaxed) {
                return false;
            }
            *g += 1;
            true
        })
    }
}

impl Contender for mcslock::barging::spins::Mutex<u64> {
    const NAME: &'static str = "mcslock barging";
    fn new() -> Self {
        mcslock::barging::spins::Mutex::new(0)
    }
    #[inline]
    fn step(&self, limit: &AtomicU64) -> bool {
        let mut g = self.lock();
        if *g >= limit.load(Ordering::Relaxed) {
            return false;
        }
        *g += 1;
        true
    }
}

/// Test-and-test-and-set spinlock with the CPU's spin hint.
struct Tas {
    locked: AtomicBool,
    value: UnsafeCell<u64>,
}
// SAFETY: `value` is accessed only while `locked` is held.
unsafe impl Sync for Tas {}

impl Contender for Tas {
    const NAME: &'static str = "TAS spin";
    fn new() -> Self {
        Tas {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(0),
        }
    }
    #[inline]
    fn step(&self, limit: &AtomicU64) -> bool {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
        // SAFETY: we hold the lock.
        let v = unsafe { &mut *self.value.get() };
        let ok = *v < limit.load(Ordering::Relaxed);
        if ok {
            *v += 1;
        }
        self.locked.store(false, Ordering::Release);
        ok
    }
}

macro_rules! numakit_mutex {
    ($ty:ty, $name:literal, $lock:ident) => {
        impl Contender for $ty {
            const NAME: &'static str = $name;
            fn new() -> Self {
                <$ty>::new(0)
            }
            #[inline]
            fn step(&self, limit: &AtomicU64) -> bool {
                let mut g = self.$lock();
                if *g >= limit.load(Ordering::Relaxed) {
                    return false;
                }
                *g += 1;
                true
            }
        }
    };
}
numakit_mutex!(McsLock<u64>, "numakit McsLock", lock);
numakit_mutex!(CnaLock<u64>, "numakit CnaLock", lock);
numakit_mutex!(TicketLock<u64>, "numakit TicketLock", lock);
numakit_mutex!(RwLock<u64>, "numakit RwLock (write)", write);

/// Counters: `step` adds one to the shard/word; the limit is per thread.
trait Counter: Send + Sync + 'static {
    const NAME: &'static str;
    fn new() -> Self;
    fn inc(&self);
}

impl Counter for AtomicU64 {
    const NAME: &'static str = "AtomicU64 fetch_add";
    fn new() -> Self {
        AtomicU64::new(0)
    }
    #[inline]
    fn inc(&self) {
        self.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counter for PartitionedCounter {
    const NAME: &'static str = "numakit PartitionedCounter";
    fn new() -> Self {
        PartitionedCounter::new()
    }
    #[inline]
    fn inc(&self) {
        PartitionedCounter::inc(self);
    }
}

/// One measured run.
#[derive(Clone, Copy)]
struct Sample {
    ops: u64,
    secs: f64,
    fairness: f64,
}

impl Sample {
    fn mops(&self) -> f64 {
        self.ops as f64 / self.secs / 1e6
    }
}

fn fairness(counts: &[u64]) -> f64 {
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    let min = counts.iter().copied().min().unwrap_or(0) as f64;
    if mean > 0.0 {
        min / mean
    } else {
        0.0
    }
}

/// `threads` threads contend on one lock until it has been taken `total`
/// times (criterion mode), or for `duration` (table mode: the limit drops
/// to zero when the time is up).
fn run_lock<L: Contender>(threads: usize, total: u64, duration: Option<Duration>) -> Sample {
    let lock = Arc::new(L::new());
    let limit = Arc::new(AtomicU64::new(if duration.is_some() {
        u64::MAX
    } else {
        total
    }));
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (lock, start, limit) = (Arc::clone(&lock), Arc::clone(&start), Arc::clone(&limit));
            std::thread::spawn(move || {
                start.wait();
                let mut mine = 0u64;
                while lock.step(&limit) {
                    mine += 1;
                }
                mine
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    if let Some(d) = duration {
        std::thread::sleep(d);
        limit.store(0, Ordering::Relaxed);
    }
    let counts: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let secs = t0.elapsed().as_secs_f64();
    let ops = counts.iter().sum::<u64>();
    if duration.is_none() {
        assert_eq!(ops, total, "{} lost updates", L::NAME);
    }
    Sample {
        ops,
        secs,
        fairness: fairness(&counts),
    }
}

/// `threads` threads add `total / threads` each (criterion mode), or add
/// for `duration` (table mode).
fn run_counter<C: Counter>(threads: usize, total: u64, duration: Option<Duration>) -> Sample {
    let per = if duration.is_some() {
        u64::MAX
    } else {
        (total / threads as u64).max(1)
    };
    let counter = Arc::new(C::new());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (counter, start, stop) =
                (Arc::clone(&counter), Arc::clone(&start), Arc::clone(&stop));
            std::thread::spawn(move || {
                start.wait();
                let mut done = 0u64;
                while done < per && !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024u64.min(per - done) {
                        counter.inc();
                    }
                    done += 1024u64.min(per - done);
                }
                done
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    if let Some(d) = duration {
        std::thread::sleep(d);
        stop.store(true, Ordering::Relaxed);
    }
    let counts: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    Sample {
        ops: counts.iter().sum(),
        secs: t0.elapsed().as_secs_f64(),
        fairness: fairness(&counts),
    }
}

type Results = BTreeMap<(usize, &'static str), Vec<Sample>>;
static RESULTS: Mutex<Results> = Mutex::new(BTreeMap::new());
/// Row order of the table.
static ORDER: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn record(name: &'static str, threads: usize, s: Sample) {
    RESULTS
        .lock()
        .unwrap()
        .entry((threads, name))
        .or_default()
        .push(s);
    let mut order = ORDER.lock().unwrap();
    if !order.contains(&name) {
        order.push(name);
    }
}

fn bench_lock<L: Contender>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("lock/{}", L::NAME));
    for threads in THREADS {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(threads), |b| {
            b.iter_custom(|iters| {
                let s = run_lock::<L>(threads, iters.max(threads as u64), None);
                if s.secs > 0.02 {
                    record(L::NAME, threads, s);
                }
                Duration::from_secs_f64(s.secs)
            })
        });
    }
    g.finish();
}

fn bench_counter<C: Counter>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("counter/{}", C::NAME));
    for threads in THREADS {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(threads), |b| {
            b.iter_custom(|iters| {
                let s = run_counter::<C>(threads, iters.max(threads as u64), None);
                if s.secs > 0.02 {
                    record(C::NAME, threads, s);
                }
                Duration::from_secs_f64(s.secs * iters as f64 / s.ops as f64)
            })
        });
    }
    g.finish();
}

fn locks(c: &mut Criterion) {
    bench_lock::<Mutex<u64>>(c);
    bench_lock::<parking_lot::Mutex<u64>>(c);
    bench_lock::<mcslock::raw::spins::Mutex<u64>>(c);
    bench_lock::<mcslock::barging::spins::Mutex<u64>>(c);
    bench_lock::<Tas>(c);
    bench_lock::<McsLock<u64>>(c);
    bench_lock::<CnaLock<u64>>(c);
    bench_lock::<TicketLock<u64>>(c);
    bench_lock::<RwLock<u64>>(c);
    bench_counter::<AtomicU64>(c);
    bench_counter::<PartitionedCounter>(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = locks
}

/// Table mode: 5 runs of 200 ms per point.
fn table_point<F: Fn(usize, u64, Option<Duration>) -> Sample>(
    name: &'static str,
    threads: usize,
    run: F,
) {
    for _ in 0..5 {
        record(
            name,
            threads,
            run(threads, 0, Some(Duration::from_millis(200))),
        );
    }
}

fn table_mode() {
    let only: Option<String> = std::env::var("NUMAKIT_BENCH_ONLY").ok();
    // NUMAKIT_BENCH_ONLY=a,b: only rows whose name contains a or b.
    let want = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|o| name.contains(o)))
    };
    macro_rules! lock_rows {
        ($($ty:ty),* $(,)?) => {$(
            if want(<$ty as Contender>::NAME) {
                for t in THREADS {
                    table_point(<$ty as Contender>::NAME, t, run_lock::<$ty>);
                }
            }
        )*};
    }
    lock_rows!(
        Mutex<u64>,
        parking_lot::Mutex<u64>,
        mcslock::raw::spins::Mutex<u64>,
        mcslock::barging::spins::Mutex<u64>,
        Tas,
        McsLock<u64>,
        CnaLock<u64>,
        TicketLock<u64>,
        RwLock<u64>,
    );
    for t in THREADS {
        if want(<AtomicU64 as Counter>::NAME) {
            table_point(<AtomicU64 as Counter>::NAME, t, run_counter::<AtomicU64>);
        }
        if want(<PartitionedCounter as Counter>::NAME) {
            table_point(
                <PartitionedCounter as Counter>::NAME,
                t,
                run_counter::<PartitionedCounter>,
            );
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print_table() {
    let results = RESULTS.lock().unwrap();
    let order = ORDER.lock().unwrap();
    println!();
    println!(
        "Mops/s / fairness (slowest thread ÷ mean), median of runs; CS = one increment; {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print!("{:<28}", "lock");
    for t in THREADS {
        print!(
            " | {:>13}",
            format!("{t} thread{}", if t == 1 { "" } else { "s" })
        );
    }
    println!();
    for name in order.iter() {
        print!("{name:<28}");
        for t in THREADS {
            match results.get(&(t, name)) {
                Some(samples) if !samples.is_empty() => {
                    let mops = median(samples.iter().map(Sample::mops).collect());
                    let fair = median(samples.iter().map(|s| s.fairness).collect());
                    if t == 1 || name.contains("Counter") || name.contains("fetch_add") {
                        print!(" | {mops:>13.1}");
                    } else {
                        print!(" | {:>13}", format!("{mops:.2}/{fair:.2}"));
                    }
                }
                _ => print!(" | {:>13}", "-"),
            }
        }
        println!();
    }
}

fn main() {
    if std::env::var_os("NUMAKIT_BENCH_TABLE").is_some() {
        table_mode();
    } else {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    print_table();
}
