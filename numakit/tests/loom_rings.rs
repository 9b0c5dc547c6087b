//! Loom models of the SPSC and MPMC rings (every interleaving up to a
//! preemption bound, with loom's C11 memory model).
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p numakit --test loom_rings --release
//! ```

#![cfg(loom)]

use loom::thread;
use numakit::collections::{spsc, MpmcRing, PopError};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

#[test]
fn spsc_hands_over_every_value_in_order() {
    model(|| {
        let (mut tx, mut rx) = spsc::ring::<u32>(0, 2).unwrap();
        let producer = thread::spawn(move || {
            let mut pushed = 0;
            while pushed < 3 {
                if tx.push(pushed).is_ok() {
                    pushed += 1;
                } else {
                    thread::yield_now();
                }
            }
        });
        let mut next = 0;
        loop {
            match rx.pop() {
                Ok(v) => {
                    assert_eq!(v, next);
                    next += 1;
                }
                Err(PopError::Closed) => break,
                Err(PopError::Empty) => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(next, 3);
    });
}

#[test]
fn mpmc_two_producers_one_consumer() {
    model(|| {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 2).unwrap());
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let ring = ring.clone();
                thread::spawn(move || {
                    let mut v = p + 1;
                    loop {
                        match ring.push(v) {
                            Ok(()) => break,
                            Err(e) => {
                                v = e.into_inner();
                                thread::yield_now();
                            }
                        }
                    }
                })
            })
            .collect();
        let mut sum = 0;
        let mut got = 0;
        while got < 2 {
            match ring.pop() {
                Ok(v) => {
                    sum += v;
                    got += 1;
                }
                Err(_) => thread::yield_now(),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(sum, 3);
        assert!(ring.is_empty());
    });
}

#[test]
fn mpmc_bulk_is_all_or_nothing() {
    model(|| {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 4).unwrap());
        let r2 = ring.clone();
        let t = thread::spawn(move || {
            let _ = r2.push_bulk(vec![1, 2, 3]);
        });
        let mut out = Vec::new();
        let _ = ring.pop_bulk(&mut out, 2);
        assert!(out.is_empty() || out == [1, 2]);
        t.join().unwrap();
    });
}
