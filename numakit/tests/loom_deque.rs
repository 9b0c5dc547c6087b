//! Loom models of the work-stealing deque (every interleaving up to a
//! preemption bound, with loom's C11 memory model; a slot copied out while
//! it is rewritten is reported as a data race by loom's `UnsafeCell`).
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p numakit --release --test loom_deque
//! ```

#![cfg(loom)]

use loom::thread;
use numakit::collections::deque::{Steal, Stealer, Worker};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_with_branches(1_000, f);
}

fn model_with_branches(branches: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = branches;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// A value that counts its drops, so a value taken twice (two drops) or
/// lost (none) shows.
struct Counted {
    v: u32,
    drops: Arc<AtomicUsize>,
}
impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

fn counted(v: u32, drops: &Arc<AtomicUsize>) -> Counted {
    Counted {
        v,
        drops: Arc::clone(drops),
    }
}

/// Steal until something is taken or the deque is empty.
fn steal_one(s: &Stealer<Counted>) -> Option<u32> {
    loop {
        match s.steal() {
            Steal::Success(c) => return Some(c.v),
            Steal::Empty => return None,
            Steal::Retry => thread::yield_now(),
        }
    }
}

/// `n` calls of [`steal_one`]: what they took, in order.
fn steal_up_to(s: &Stealer<Counted>, n: usize) -> Vec<u32> {
    (0..n).filter_map(|_| steal_one(s)).collect()
}

/// Pop until the deque says it is empty: what came out, in order.
fn pop_all(w: &Worker<Counted>) -> Vec<u32> {
    std::iter::from_fn(|| w.pop().map(|c| c.v)).collect()
}

/// Steal until `n` values came out, in the order they came.
fn steal_n(s: &Stealer<Counted>, n: usize) -> Vec<u32> {
    let mut got = Vec::new();
    while got.len() < n {
        match s.steal() {
            Steal::Success(c) => got.push(c.v),
            _ => thread::yield_now(),
        }
    }
    got
}

/// Push `v`, yielding while the deque says `Full`.
fn push_retry(w: &Worker<Counted>, v: u32, drops: &Arc<AtomicUsize>) {
    let mut c = counted(v, drops);
    loop {
        match w.push(c) {
            Ok(()) => return,
            Err(full) => {
                c = full.into_inner();
                thread::yield_now();
            }
        }
    }
}

/// Owner pushes two values and pops twice while a thief steals once:
/// every value is taken exactly once (the rest is dropped with the deque).
fn owner_pops_thief_steals(fifo: bool) {
    model(move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = if fifo {
            Worker::new_fifo(0, 2).unwrap()
        } else {
            Worker::new_lifo(0, 2).unwrap()
        };
        assert!(w.push(counted(1, &drops)).is_ok());
        assert!(w.push(counted(2, &drops)).is_ok());
        let s = w.stealer();
        let thief = thread::spawn(move || steal_one(&s));
        let mut got: Vec<u32> = (0..2).filter_map(|_| w.pop().map(|c| c.v)).collect();
        got.extend(thief.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(w.is_empty());
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn lifo_owner_pops_while_a_thief_steals() {
    owner_pops_thief_steals(false);
}

#[test]
fn fifo_owner_pops_while_a_thief_steals() {
    owner_pops_thief_steals(true);
}

/// The last element: the owner's pop and a thief's steal race for it and
/// exactly one wins.
#[test]
fn last_element_goes_to_exactly_one() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::new_lifo(0, 1).unwrap();
        assert!(w.push(counted(7, &drops)).is_ok());
        let s = w.stealer();
        let thief = thread::spawn(move || steal_one(&s));
        let mine = w.pop().map(|c| c.v);
        let theirs = thief.join().unwrap();
        assert!(mine.is_some() != theirs.is_some(), "{mine:?} {theirs:?}");
        assert_eq!(mine.or(theirs), Some(7));
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// One slot reused: the owner's second push must wait (`Full`) until the
/// thief has copied the first value out; loom reports the write as a race
/// if it could overlap the copy.
#[test]
fn a_slot_is_rewritten_only_after_the_thief_copied_it_out() {
    model_with_branches(10_000, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::new_lifo(0, 1).unwrap();
        assert!(w.push(counted(1, &drops)).is_ok());
        let s = w.stealer();
        let thief = thread::spawn(move || steal_n(&s, 2));
        push_retry(&w, 2, &drops);
        assert_eq!(thief.join().unwrap(), [1, 2]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// Two slots, both reused while the thief copies out of them: the push
/// that reuses slot 0 reads slot 1's stamp too, and the next push writes
/// slot 1 on the strength of that reading alone. loom reports that write
/// as a race if the reading could precede the thief's copy.
#[test]
fn a_push_that_looked_ahead_rewrites_a_slot_only_after_its_copy() {
    model_with_branches(10_000, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::new_lifo(0, 2).unwrap();
        assert!(w.push(counted(1, &drops)).is_ok());
        assert!(w.push(counted(2, &drops)).is_ok());
        let s = w.stealer();
        let thief = thread::spawn(move || steal_n(&s, 2));
        for v in [3, 4] {
            push_retry(&w, v, &drops);
        }
        assert_eq!(thief.join().unwrap(), [1, 2]);
        let mine = pop_all(&w);
        assert_eq!(mine, [4, 3]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 4);
    });
}

/// Two thieves and the owner over two values: each taken exactly once.
#[test]
fn two_thieves_and_the_owner_take_each_value_once() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::new_lifo(0, 2).unwrap();
        assert!(w.push(counted(1, &drops)).is_ok());
        assert!(w.push(counted(2, &drops)).is_ok());
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let s = w.stealer();
                thread::spawn(move || steal_one(&s))
            })
            .collect();
        let mut got: Vec<u32> = w.pop().map(|c| c.v).into_iter().collect();
        for t in thieves {
            got.extend(t.join().unwrap());
        }
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// A batch steal into the thief's own deque while the owner pops.
#[test]
fn steal_batch_races_the_owner() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::new_lifo(0, 2).unwrap();
        assert!(w.push(counted(1, &drops)).is_ok());
        assert!(w.push(counted(2, &drops)).is_ok());
        let s = w.stealer();
        let thief = thread::spawn(move || {
            let own = Worker::<Counted>::new_lifo(0, 2).unwrap();
            let _ = s.steal_batch(&own);
            pop_all(&own)
        });
        let mut got: Vec<u32> = w.pop().map(|c| c.v).into_iter().collect();
        got.extend(thief.join().unwrap());
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// Pushes racing steals: a thief that sees an element in range sees its
/// slot written (loom reports a read of an unwritten or racing cell).
#[test]
fn pushes_race_steals() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::new_lifo(0, 2).unwrap();
        let s = w.stealer();
        let thief = thread::spawn(move || steal_up_to(&s, 2));
        assert!(w.push(counted(1, &drops)).is_ok());
        assert!(w.push(counted(2, &drops)).is_ok());
        let mut got: Vec<u32> = w.pop().map(|c| c.v).into_iter().collect();
        got.extend(thief.join().unwrap());
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// The owner pops the newest element without a CAS and pushes a new one
/// at the same position while a thief is between its read of `bottom` and
/// its CAS: the thief takes a value exactly once and never reads a slot
/// being rewritten (the value it copies is the one its `bottom` covered).
#[test]
fn a_position_popped_and_pushed_again_under_a_thief() {
    model_with_branches(10_000, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::new_lifo(0, 2).unwrap();
        assert!(w.push(counted(1, &drops)).is_ok());
        assert!(w.push(counted(2, &drops)).is_ok());
        let s = w.stealer();
        let thief = thread::spawn(move || steal_up_to(&s, 2));
        let mut got: Vec<u32> = w.pop().map(|c| c.v).into_iter().collect();
        if w.push(counted(3, &drops)).is_err() {
            got.push(3);
        }
        got.extend(w.pop().map(|c| c.v));
        got.extend(thief.join().unwrap());
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    });
}

/// A batch steal publishes into a one-slot deque whose own thief steals
/// from it at the same time: each value is taken once.
#[test]
fn steal_batch_into_a_deque_its_thief_steals_from() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::new_fifo(0, 2).unwrap();
        assert!(w.push(counted(1, &drops)).is_ok());
        assert!(w.push(counted(2, &drops)).is_ok());
        let from = w.stealer();
        let own = Worker::<Counted>::new_lifo(0, 1).unwrap();
        let own_thief = own.stealer();
        let other = thread::spawn(move || steal_one(&own_thief));
        let _ = from.steal_batch(&own);
        let mut got = pop_all(&own);
        got.extend(other.join().unwrap());
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        drop((w, own));
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// One slot through three laps (lap bit 0, 1, 0) while a thief steals.
#[test]
fn one_slot_through_three_laps_under_a_thief() {
    model_with_branches(100_000, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::<Counted>::new_lifo(0, 1).unwrap();
        let s = w.stealer();
        let thief = thread::spawn(move || steal_n(&s, 3));
        for v in 1..=3 {
            push_retry(&w, v, &drops);
        }
        assert_eq!(thief.join().unwrap(), [1, 2, 3]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    });
}

/// FIFO, two slots: the owner pops from the top by CAS while a thief
/// steals, and pushes into slots the owner or the thief freed.
#[test]
fn fifo_owner_and_thief_free_slots_that_pushes_reuse() {
    model_with_branches(100_000, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::<Counted>::new_fifo(0, 2).unwrap();
        push_retry(&w, 1, &drops);
        push_retry(&w, 2, &drops);
        let s = w.stealer();
        let thief = thread::spawn(move || steal_up_to(&s, 1));
        let mut got: Vec<u32> = w.pop().map(|c| c.v).into_iter().collect();
        push_retry(&w, 3, &drops);
        push_retry(&w, 4, &drops);
        got.extend(thief.join().unwrap());
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3, 4]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 4);
    });
}

/// LIFO, two slots: the last element is raced by the owner's pop and a
/// thief, then the owner pushes twice (reusing both slots, one freed by
/// whoever won the race).
#[test]
fn pushes_reuse_both_slots_after_the_last_element_race() {
    model_with_branches(100_000, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::<Counted>::new_lifo(0, 2).unwrap();
        push_retry(&w, 1, &drops);
        push_retry(&w, 2, &drops);
        let s = w.stealer();
        let thief = thread::spawn(move || steal_up_to(&s, 2));
        let mut got: Vec<u32> = Vec::new();
        got.extend(w.pop().map(|c| c.v));
        got.extend(w.pop().map(|c| c.v));
        push_retry(&w, 3, &drops);
        push_retry(&w, 4, &drops);
        got.extend(thief.join().unwrap());
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3, 4]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 4);
    });
}

/// `steal_batch` into a one-slot destination whose thief steals meanwhile,
/// twice: the second batch reserves the slot freed by that thief.
#[test]
fn two_batches_into_one_slot_whose_thief_steals() {
    model_with_branches(100_000, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::<Counted>::new_lifo(0, 2).unwrap();
        push_retry(&w, 1, &drops);
        push_retry(&w, 2, &drops);
        let from = w.stealer();
        let own = Worker::<Counted>::new_lifo(0, 1).unwrap();
        let own_thief = own.stealer();
        let other = thread::spawn(move || steal_up_to(&own_thief, 2));
        let _ = from.steal_batch(&own);
        let _ = from.steal_batch(&own);
        let mut got = pop_all(&own);
        got.extend(other.join().unwrap());
        got.extend(pop_all(&own));
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        drop((w, own));
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// Four slots, two thieves: the owner pushes two more while each thief
/// steals one, so its look-ahead reads stamps that two thieves store. A
/// push refused three times hands its value back, which counts as taken.
#[test]
fn a_look_ahead_over_stamps_of_two_thieves() {
    model_with_branches(200_000, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let w = Worker::<Counted>::new_lifo(0, 4).unwrap();
        for v in 1..=4 {
            push_retry(&w, v, &drops);
        }
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let s = w.stealer();
                thread::spawn(move || steal_up_to(&s, 1))
            })
            .collect();
        let mut got = Vec::new();
        for v in 5..=6 {
            let mut c = counted(v, &drops);
            let mut tries = 0;
            loop {
                match w.push(c) {
                    Ok(()) => break,
                    Err(full) => {
                        c = full.into_inner();
                        tries += 1;
                        if tries > 3 {
                            got.push(c.v);
                            break;
                        }
                        thread::yield_now();
                    }
                }
            }
        }
        for t in thieves {
            got.extend(t.join().unwrap());
        }
        got.extend(pop_all(&w));
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3, 4, 5, 6]);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 6);
    });
}
