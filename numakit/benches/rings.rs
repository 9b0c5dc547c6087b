//! Rings side by side: numakit's SPSC and MPMC rings vs `rtrb` and
//! `crossbeam_queue::ArrayQueue`, moving 200 000 `u64`s per iteration.
//!
//! `cargo bench -p numakit --bench rings`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use numakit::collections::{spsc, MpmcRing};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ITEMS: u64 = 200_000;
const CAP: usize = 4096;
const BULK: usize = 32;

fn spin() {
    std::hint::spin_loop();
    std::thread::yield_now();
}

fn numakit_spsc(bulk: bool) -> Duration {
    let (mut tx, mut rx) = spsc::ring::<u64>(0, CAP).unwrap();
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut i = 0;
        let mut buf = [0u64; BULK];
        while i < ITEMS {
            if bulk {
                let n = (ITEMS - i).min(BULK as u64) as usize;
                for (k, b) in buf[..n].iter_mut().enumerate() {
                    *b = i + k as u64;
                }
                let pushed = tx.push_slice(&buf[..n]);
                i += pushed as u64;
                if pushed == 0 {
                    spin();
                }
            } else if tx.push(i).is_ok() {
                i += 1;
            } else {
                spin();
            }
        }
    });
    let mut got = 0;
    let mut buf = [0u64; BULK];
    while got < ITEMS {
        if bulk {
            let n = rx.pop_slice(&mut buf);
            got += n as u64;
            if n == 0 {
                spin();
            }
        } else if rx.pop().is_ok() {
            got += 1;
        } else {
            spin();
        }
    }
    producer.join().unwrap();
    start.elapsed()
}

fn rtrb_spsc(bulk: bool) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAP);
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut i = 0;
        while i < ITEMS {
            if bulk {
                let n = (ITEMS - i).min(BULK as u64) as usize;
                let n = n.min(tx.slots());
                if n == 0 {
                    spin();
                    continue;
                }
                let chunk = tx.write_chunk_uninit(n).unwrap();
                let base = i;
                let done = chunk.fill_from_iter((0..n as u64).map(|k| base + k));
                i += done as u64;
            } else if tx.push(i).is_ok() {
                i += 1;
            } else {
                spin();
            }
        }
    });
    let mut got = 0;
    while got < ITEMS {
        if bulk {
            let n = rx.slots().min(BULK);
            if n == 0 {
                spin();
                continue;
            }
            let chunk = rx.read_chunk(n).unwrap();
            got += chunk.into_iter().count() as u64;
        } else if rx.pop().is_ok() {
            got += 1;
        } else {
            spin();
        }
    }
    producer.join().unwrap();
    start.elapsed()
}

fn array_queue(producers: u64, consumers: u64) -> Duration {
    let q = Arc::new(ArrayQueue::<u64>::new(CAP));
    mpmc_run(
        producers,
        consumers,
        q,
        |q, v| q.push(v).is_ok(),
        |q| q.pop().is_some(),
    )
}

fn numakit_mpmc(producers: u64, consumers: u64) -> Duration {
    let q = Arc::new(MpmcRing::<u64>::new(0, CAP).unwrap());
    mpmc_run(
        producers,
        consumers,
        q,
        |q, v| q.push(v).is_ok(),
        |q| q.pop().is_ok(),
    )
}

fn mpmc_run<Q: Send + Sync + 'static>(
    producers: u64,
    consumers: u64,
    q: Arc<Q>,
    push: fn(&Q, u64) -> bool,
    pop: fn(&Q) -> bool,
) -> Duration {
    let per = ITEMS / producers;
    let total = per * producers;
    let taken = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut hs = Vec::new();
    for p in 0..producers {
        let q = Arc::clone(&q);
        hs.push(std::thread::spawn(move || {
            for i in 0..per {
                while !push(&q, p * per + i) {
                    spin();
                }
            }
        }));
    }
    for _ in 0..consumers {
        let (q, taken) = (Arc::clone(&q), Arc::clone(&taken));
        hs.push(std::thread::spawn(move || loop {
            if taken.load(std::sync::atomic::Ordering::Relaxed) >= total {
                return;
            }
            if pop(&q) {
                taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                spin();
            }
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
    start.elapsed()
}

fn rings(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_1p1c");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(10);
    g.bench_function("numakit_single", |b| {
        b.iter_custom(|n| (0..n).map(|_| numakit_spsc(false)).sum())
    });
    g.bench_function("rtrb_single", |b| {
        b.iter_custom(|n| (0..n).map(|_| rtrb_spsc(false)).sum())
    });
    g.bench_function("arrayqueue_single", |b| {
        b.iter_custom(|n| (0..n).map(|_| array_queue(1, 1)).sum())
    });
    g.bench_function("numakit_bulk32", |b| {
        b.iter_custom(|n| (0..n).map(|_| numakit_spsc(true)).sum())
    });
    g.bench_function("rtrb_bulk32", |b| {
        b.iter_custom(|n| (0..n).map(|_| rtrb_spsc(true)).sum())
    });
    g.finish();
    for t in [2u64, 4] {
        let mut g = c.benchmark_group(format!("mpmc_{t}p{t}c"));
        g.throughput(Throughput::Elements(ITEMS));
        g.sample_size(10);
        g.bench_function("numakit", |b| {
            b.iter_custom(|n| (0..n).map(|_| numakit_mpmc(t, t)).sum())
        });
        g.bench_function("arrayqueue", |b| {
            b.iter_custom(|n| (0..n).map(|_| array_queue(t, t)).sum())
        });
        g.finish();
    }
}

criterion_group!(benches, rings);
criterion_main!(benches);
