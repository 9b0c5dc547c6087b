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
    model_with_branches(1_000, f);
}

/// As [`model`], allowing executions of up to `branches` scheduling
/// decisions (a ring of one slot makes its threads retry more often).
fn model_with_branches(branches: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = branches;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

#[test]
fn spsc_hands_over_every_value_in_order() {
    spsc_in_order(2);
}

#[test]
fn spsc_of_one_slot_hands_over_every_value_in_order() {
    spsc_in_order(1);
}

fn spsc_in_order(capacity: usize) {
    model(move || {
        let (mut tx, mut rx) = spsc::ring::<u32>(0, capacity).unwrap();
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
    mpmc_two_to_one(2);
}

/// One slot, reused across laps: "full for this lap" and "free for the
/// next" must differ, so a push into the full slot fails and every value
/// comes out once, in order.
#[test]
fn mpmc_of_one_slot_hands_over_every_value_in_order() {
    model_with_branches(10_000, || {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 1).unwrap());
        let r = ring.clone();
        let producer = thread::spawn(move || {
            for v in 1..=3u32 {
                let mut v = v;
                loop {
                    match r.push(v) {
                        Ok(()) => break,
                        Err(e) => {
                            v = e.into_inner();
                            thread::yield_now();
                        }
                    }
                }
            }
        });
        let mut next = 1;
        while next <= 3 {
            match ring.pop() {
                Ok(v) => {
                    assert_eq!(v, next);
                    assert!(ring.len() <= 1);
                    next += 1;
                }
                Err(_) => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert!(ring.is_empty());
    });
}

fn mpmc_two_to_one(capacity: usize) {
    model(move || {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, capacity).unwrap());
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

// ---------------------------------------------------------------------------
// Blocking waits: the sleep is a loom mutex and condition variable and the
// waits have no time limit, so a wake-up lost in any interleaving leaves
// every thread blocked, which loom reports as a deadlock.

#[test]
fn spsc_waiting_consumer_and_producer_are_woken() {
    use std::time::Duration;
    model_with_branches(10_000, || {
        let (mut tx, mut rx) = spsc::ring::<u32>(0, 1).unwrap();
        let producer = thread::spawn(move || {
            for v in 0..2 {
                tx.push_wait(v, Duration::MAX).unwrap();
            }
        });
        assert_eq!(rx.pop_wait(Duration::MAX), Ok(0));
        assert_eq!(rx.pop_wait(Duration::MAX), Ok(1));
        // The producer's drop wakes a consumer waiting on the empty ring.
        assert_eq!(rx.pop_wait(Duration::MAX), Err(PopError::Closed));
        producer.join().unwrap();
    });
}

#[test]
fn mpmc_waiting_consumer_is_woken_by_push_and_close() {
    use std::time::Duration;
    model_with_branches(10_000, || {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 1).unwrap());
        let r = ring.clone();
        let producer = thread::spawn(move || {
            r.push_wait(7, Duration::MAX).unwrap();
            r.close();
        });
        assert_eq!(ring.pop_wait(Duration::MAX), Ok(7));
        assert_eq!(ring.pop_wait(Duration::MAX), Err(PopError::Closed));
        producer.join().unwrap();
    });
}

#[test]
fn mpmc_waiting_producer_is_woken_by_pop() {
    use std::time::Duration;
    model_with_branches(10_000, || {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 1).unwrap());
        ring.push(1).unwrap();
        let r = ring.clone();
        let producer = thread::spawn(move || r.push_wait(2, Duration::MAX));
        let mut got = Vec::new();
        while got.len() < 2 {
            match ring.pop() {
                Ok(v) => got.push(v),
                Err(_) => thread::yield_now(),
            }
        }
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(got, [1, 2]);
    });
}

// ---------------------------------------------------------------------------
// force_push against a consumer and a producer: every value comes out
// exactly once — popped, handed back by `force_push`, or left in the ring.

#[test]
fn mpmc_force_push_races_pop_and_push() {
    model_with_branches(10_000, || {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 1).unwrap());
        ring.push(1).unwrap();
        let r = ring.clone();
        let forcer = thread::spawn(move || {
            let mut back = Vec::new();
            for v in [2, 3] {
                back.extend(r.force_push(v).unwrap());
            }
            back
        });
        let r = ring.clone();
        let popper = thread::spawn(move || r.pop().ok());
        let mut all = forcer.join().unwrap();
        all.extend(popper.join().unwrap());
        while let Ok(v) = ring.pop() {
            all.push(v);
        }
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3]);
    });
}

#[test]
fn mpmc_two_force_pushes_keep_the_newest() {
    model_with_branches(10_000, || {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 2).unwrap());
        ring.push(1).unwrap();
        ring.push(2).unwrap();
        let r = ring.clone();
        let other = thread::spawn(move || r.force_push(4).unwrap());
        let mine = ring.force_push(3).unwrap();
        let theirs = other.join().unwrap();
        // The two oldest values come back, one to each caller.
        let mut back = [mine.unwrap(), theirs.unwrap()];
        back.sort_unstable();
        assert_eq!(back, [1, 2]);
        let mut left = [ring.pop().unwrap(), ring.pop().unwrap()];
        left.sort_unstable();
        assert_eq!(left, [3, 4]);
        assert!(ring.is_empty());
    });
}

/// A value pushed before `close` is popped, not hidden behind
/// `PopError::Closed`: `pop` used to read `tail` before `closed`, so a
/// consumer could see the close but not the push that preceded it.
#[test]
fn mpmc_pop_after_close_sees_values_pushed_before_it() {
    model(|| {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 2).unwrap());
        let r = ring.clone();
        let producer = thread::spawn(move || {
            r.push(7).unwrap();
            r.close();
        });
        let mut out = Vec::new();
        loop {
            match ring.pop() {
                Ok(v) => out.push(v),
                Err(PopError::Empty) => thread::yield_now(),
                Err(PopError::Closed) => break,
            }
        }
        assert_eq!(out, [7]);
        producer.join().unwrap();
    });
}

/// The same for `pop_bulk`.
#[test]
fn mpmc_pop_bulk_after_close_sees_values_pushed_before_it() {
    model(|| {
        let ring = loom::sync::Arc::new(MpmcRing::<u32>::new(0, 2).unwrap());
        let r = ring.clone();
        let producer = thread::spawn(move || {
            r.push_bulk(vec![7, 8]).unwrap();
            r.close();
        });
        let mut out = Vec::new();
        loop {
            match ring.pop_bulk(&mut out, 2) {
                Ok(()) => {}
                Err(PopError::Empty) => thread::yield_now(),
                Err(PopError::Closed) => break,
            }
        }
        assert_eq!(out, [7, 8]);
        producer.join().unwrap();
    });
}
