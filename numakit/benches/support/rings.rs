//! Ring workloads shared by the `rings` and `compare` benches, so that
//! their figures measure the same code: numakit's SPSC and MPMC rings,
//! `rtrb` and `crossbeam_queue::ArrayQueue`, each run moving `ITEMS`
//! `u64`s from producer threads to consumer threads and returning the wall
//! time (thread start included).
//!
//! Included with `#[path = "support/rings.rs"] mod rings_support;`.

// Each bench target uses a subset of these workloads.
#![allow(dead_code)]

use crossbeam_queue::ArrayQueue;
use numakit::collections::{spsc, MpmcRing};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Items one run moves.
pub const ITEMS: u64 = 200_000;
/// Ring capacity (slots).
pub const CAP: usize = 4096;
/// Items per bulk push or pop.
pub const BULK: usize = 32;

fn spin() {
    std::hint::spin_loop();
    std::thread::yield_now();
}

/// Moves `ITEMS` items from a new producer thread to this thread: the
/// producer calls `push(i)` to push items from number `i` on, the consumer
/// calls `pop()`; each returns how many items it moved and spins when that
/// is none. Returns the wall time, thread start included.
fn spsc_run(
    mut push: impl FnMut(u64) -> u64 + Send + 'static,
    mut pop: impl FnMut() -> u64,
) -> Duration {
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut i = 0;
        while i < ITEMS {
            let n = push(i);
            i += n;
            if n == 0 {
                spin();
            }
        }
    });
    let mut got = 0;
    while got < ITEMS {
        let n = pop();
        got += n;
        if n == 0 {
            spin();
        }
    }
    producer.join().unwrap();
    start.elapsed()
}

/// How many items a bulk push from item `i` on moves: `BULK`, or what is left.
fn bulk_len(i: u64) -> usize {
    (ITEMS - i).min(BULK as u64) as usize
}

/// numakit SPSC ring, 1 producer and 1 consumer, single or bulk. In
/// bulk, both rings' producers write values straight from an iterator
/// into the slots (`push_iter`, rtrb's `fill_from_iter`) and both
/// consumers read every value (numakit copies them out, rtrb iterates).
pub fn numakit_spsc(bulk: bool) -> Duration {
    let (mut tx, mut rx) = spsc::ring::<u64>(0, CAP).unwrap();
    if !bulk {
        return spsc_run(
            move |i| u64::from(tx.push(i).is_ok()),
            move || u64::from(rx.pop().is_ok()),
        );
    }
    let mut out = [0u64; BULK];
    spsc_run(
        move |i| tx.push_iter(&mut (i..i + bulk_len(i) as u64)) as u64,
        move || {
            let n = rx.pop_slice(&mut out);
            black_box(out[..n].iter().sum::<u64>());
            n as u64
        },
    )
}

/// numakit SPSC ring through its chunk API, the same code as
/// [`rtrb_spsc`]'s bulk case: `write_chunk_uninit` + `fill_from_iter` in
/// the producer, `read_chunk` + `into_iter` in the consumer.
pub fn numakit_spsc_chunks() -> Duration {
    let (mut tx, mut rx) = spsc::ring::<u64>(0, CAP).unwrap();
    spsc_run(
        move |i| {
            let n = bulk_len(i).min(tx.slots());
            if n == 0 {
                return 0;
            }
            let chunk = tx.write_chunk_uninit(n).unwrap();
            chunk.fill_from_iter((0..n as u64).map(|k| i + k)) as u64
        },
        move || {
            let n = rx.len().min(BULK);
            if n == 0 {
                return 0;
            }
            black_box(rx.read_chunk(n).unwrap().into_iter().sum::<u64>());
            n as u64
        },
    )
}

/// `rtrb`, 1 producer and 1 consumer, single or bulk (chunks).
pub fn rtrb_spsc(bulk: bool) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAP);
    if !bulk {
        return spsc_run(
            move |i| u64::from(tx.push(i).is_ok()),
            move || u64::from(rx.pop().is_ok()),
        );
    }
    spsc_run(
        move |i| {
            let n = bulk_len(i).min(tx.slots());
            if n == 0 {
                return 0;
            }
            let chunk = tx.write_chunk_uninit(n).unwrap();
            chunk.fill_from_iter((0..n as u64).map(|k| i + k)) as u64
        },
        move || {
            let n = rx.slots().min(BULK);
            if n == 0 {
                return 0;
            }
            black_box(rx.read_chunk(n).unwrap().into_iter().sum::<u64>());
            n as u64
        },
    )
}

/// `ArrayQueue` with `producers` and `consumers` threads.
pub fn array_queue(producers: u64, consumers: u64) -> Duration {
    let q = Arc::new(ArrayQueue::<u64>::new(CAP));
    mpmc_run(
        producers,
        consumers,
        q,
        |q, v| q.push(v).is_ok(),
        |q| q.pop().is_some(),
    )
}

/// numakit MPMC ring with `producers` and `consumers` threads.
pub fn numakit_mpmc(producers: u64, consumers: u64) -> Duration {
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
