//! The rings' parity operations at their edges: chunk sizes and
//! capacities at the extremes, `io::Read`/`io::Write` on byte rings, and
//! blocking waits (with timeouts, wake-ups by the other side and by
//! closing) under watchdogs so a lost wake-up fails instead of hanging.

mod common;

use numakit::collections::spsc::ChunkError;
use numakit::collections::{spsc, MpmcRing, PopError, PushError, MAX_CAPACITY};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chunk sizes 0, 1, all free slots, one more, and the extremes, at the
/// small capacities; every refusal is typed and names the numbers.
#[test]
fn chunk_sizes_at_the_edges() {
    for cap in [1usize, 2, 4, 8] {
        let (mut tx, mut rx) = spsc::ring::<u64>(0, cap).unwrap();
        // Leave the ring half full and wrapped, so chunks split in two.
        for i in 0..cap as u64 {
            tx.push(i).unwrap();
        }
        for _ in 0..cap / 2 + 1 {
            rx.pop().unwrap();
        }
        let free = tx.slots();
        let there = rx.len();
        assert_eq!(free + there, cap);
        for n in [0, 1, free, free + 1, cap, cap + 1, usize::MAX, MAX_CAPACITY] {
            let want = ChunkError::TooFewSlots {
                requested: n,
                available: free,
                capacity: cap,
            };
            match tx.write_chunk_uninit(n) {
                Ok(c) => assert!(n <= free && c.len() == n, "cap {cap} n {n}"),
                Err(e) => {
                    assert!(n > free, "cap {cap} n {n}");
                    assert_eq!(e, want);
                    assert!(e.to_string().contains(&format!("{free} are ready")), "{e}");
                }
            }
            match tx.write_chunk(n) {
                Ok(c) => assert_eq!(c.len(), n),
                Err(e) => assert_eq!(e, want),
            }
            let want = ChunkError::TooFewSlots {
                requested: n,
                available: there,
                capacity: cap,
            };
            match rx.read_chunk(n) {
                Ok(c) => assert!(n <= there && c.len() == n, "cap {cap} n {n}"),
                Err(e) => assert_eq!(e, want),
            }
        }
        // A chunk of every free slot wraps: its two slices cover the ring.
        let mut c = tx.write_chunk(free).unwrap();
        let (a, b) = c.as_mut_slices();
        assert_eq!(a.len() + b.len(), free);
        a.fill(7);
        b.fill(7);
        assert_eq!(c.commit(usize::MAX), free);
        assert_eq!(rx.len(), cap);
        assert!(tx.write_chunk_uninit(1).is_err());
        let c = rx.read_chunk(cap).unwrap();
        let (a, b) = c.as_slices();
        assert_eq!(a.len() + b.len(), cap);
        assert_eq!(c.commit(0), 0);
        assert_eq!(rx.len(), cap, "commit(0) frees nothing");
        assert_eq!(rx.read_chunk(cap).unwrap().commit_all(), cap);
        assert!(rx.is_empty() && tx.is_empty());
    }
}

/// The largest capacity (zero-sized slots): a chunk of all of it is lent
/// (two empty-footprint slices) and committed without touching memory.
#[test]
fn chunks_at_the_largest_capacity() {
    let (mut tx, mut rx) = spsc::ring::<()>(0, MAX_CAPACITY).unwrap();
    let c = tx.write_chunk_uninit(MAX_CAPACITY).unwrap();
    assert_eq!(c.fill_from_iter(std::iter::repeat_n((), 3)), 3);
    assert_eq!((tx.len(), rx.len()), (3, 3));
    assert_eq!(tx.slots(), MAX_CAPACITY - 3);
    assert!(tx.write_chunk_uninit(MAX_CAPACITY).is_err());
    assert_eq!(rx.read_chunk(3).unwrap().into_iter().count(), 3);
    assert!(rx.is_empty());
}

/// A chunk dropped without a commit publishes (frees) nothing.
#[test]
fn uncommitted_chunks_change_nothing() {
    let (mut tx, mut rx) = spsc::ring::<String>(0, 4).unwrap();
    let mut c = tx.write_chunk(3).unwrap();
    c.as_mut_slices().0[0] = "lost".into();
    drop(c);
    assert!(rx.is_empty());
    tx.push("a".into()).unwrap();
    // A read chunk taken and let go without a commit.
    assert_eq!(rx.read_chunk(1).unwrap().len(), 1);
    assert_eq!(rx.peek().map(String::as_str), Ok("a"));
    let mut it = rx.read_chunk(1).unwrap().into_iter();
    assert_eq!(it.len(), 1);
    drop(it.next());
    drop(it);
    assert_eq!(rx.peek(), Err(PopError::Empty));
    drop(tx);
    assert_eq!(rx.peek(), Err(PopError::Closed));
}

#[test]
fn byte_rings_are_read_and_write() {
    let (mut tx, mut rx) = spsc::ring::<u8>(0, 8).unwrap();
    assert_eq!(tx.write(b"").unwrap(), 0);
    assert_eq!(tx.write(b"hello, world").unwrap(), 8);
    assert_eq!(tx.write(b"!").unwrap_err().kind(), ErrorKind::WouldBlock);
    tx.flush().unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(rx.read(&mut []).unwrap(), 0);
    assert_eq!(rx.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf, b"hello");
    tx.write_all(b"abc").unwrap();
    let mut rest = [0u8; 16];
    assert_eq!(rx.read(&mut rest).unwrap(), 6);
    assert_eq!(&rest[..6], b", wabc");
    assert_eq!(
        rx.read(&mut rest).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    tx.write_all(b"end").unwrap();
    drop(tx);
    let mut all = Vec::new();
    // End of file once drained and the producer is gone.
    rx.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"end");
    assert_eq!(rx.read(&mut rest).unwrap(), 0);
    let (mut tx, rx) = spsc::ring::<u8>(0, 1).unwrap();
    drop(rx);
    assert_eq!(tx.write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
}

// ---------------------------------------------------------------------------
// Blocking waits.

const LONG: Duration = Duration::from_secs(30);

/// Timeouts of 0, 1 ms and 50 ms on an empty (full) ring return the
/// typed error after about that long, never before.
#[test]
fn waits_time_out() {
    common::finishes(60, "ring waits that time out", || {
        let (mut tx, mut rx) = spsc::ring::<u32>(0, 1).unwrap();
        let ring = MpmcRing::<u32>::new(0, 1).unwrap();
        for t in [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(50),
        ] {
            let start = Instant::now();
            assert_eq!(rx.pop_wait(t), Err(PopError::Empty));
            assert_eq!(ring.pop_wait(t), Err(PopError::Empty));
            assert!(start.elapsed() >= 2 * t, "{t:?}: {:?}", start.elapsed());
        }
        tx.push(1).unwrap();
        ring.push(1).unwrap();
        for t in [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(50),
        ] {
            let start = Instant::now();
            assert_eq!(tx.push_wait(2, t), Err(PushError::Full(2)));
            assert_eq!(ring.push_wait(2, t), Err(PushError::Full(2)));
            assert!(start.elapsed() >= 2 * t, "{t:?}: {:?}", start.elapsed());
        }
        // Ready at once: no wait, whatever the timeout.
        assert_eq!(rx.pop_wait(Duration::MAX), Ok(1));
        assert_eq!(ring.pop_wait(Duration::MAX), Ok(1));
    });
}

/// The other side wakes a waiter that has no time limit: values cross a
/// ring of one slot, both ends waiting, many times (a lost wake-up hangs,
/// and the watchdog fails the test).
#[test]
fn spsc_waits_are_woken() {
    for cap in [1usize, 2, 8] {
        common::finishes(60, &format!("SPSC waits, capacity {cap}"), move || {
            let (mut tx, mut rx) = spsc::ring::<u64>(0, cap).unwrap();
            // Under emulation every sleep and wake-up costs milliseconds.
            let n = if common::in_vm() { 1_000 } else { 20_000u64 };
            let producer = std::thread::spawn(move || {
                for i in 0..n {
                    tx.push_wait(i, Duration::MAX).unwrap();
                }
            });
            for i in 0..n {
                assert_eq!(rx.pop_wait(Duration::MAX), Ok(i));
            }
            producer.join().unwrap();
            // The producer is gone: a waiter is told so, not left asleep.
            assert_eq!(rx.pop_wait(Duration::MAX), Err(PopError::Closed));
        });
    }
}

#[test]
fn mpmc_waits_are_woken() {
    for cap in [1usize, 2, 8] {
        common::finishes(60, &format!("MPMC waits, capacity {cap}"), move || {
            let ring = Arc::new(MpmcRing::<u64>::new(0, cap).unwrap());
            let per = if common::in_vm() { 500 } else { 5_000u64 };
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let ring = Arc::clone(&ring);
                    std::thread::spawn(move || {
                        for i in 0..per {
                            ring.push_wait(i, Duration::MAX).unwrap();
                        }
                    })
                })
                .collect();
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let ring = Arc::clone(&ring);
                    std::thread::spawn(move || {
                        let mut sum = 0;
                        while let Ok(v) = ring.pop_wait(Duration::MAX) {
                            sum += v;
                        }
                        sum
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            // Closing wakes the consumers asleep on the empty ring.
            ring.close();
            let sum: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
            assert_eq!(sum, 2 * per * (per - 1) / 2);
        });
    }
}

/// A producer asleep on a full ring is woken by the consumer's drop
/// (SPSC) or by `close` (MPMC) and gets its value back.
#[test]
fn closing_wakes_a_waiting_producer() {
    common::finishes(30, "producer woken by closing", || {
        let (mut tx, rx) = spsc::ring::<String>(0, 1).unwrap();
        tx.push("a".into()).unwrap();
        let t = std::thread::spawn(move || tx.push_wait("b".into(), LONG));
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
        assert_eq!(t.join().unwrap(), Err(PushError::Closed("b".into())));

        let ring = Arc::new(MpmcRing::<String>::new(0, 1).unwrap());
        ring.push("a".into()).unwrap();
        let r = Arc::clone(&ring);
        let t = std::thread::spawn(move || r.push_wait("b".into(), LONG));
        std::thread::sleep(Duration::from_millis(20));
        ring.close();
        assert_eq!(t.join().unwrap(), Err(PushError::Closed("b".into())));
        assert_eq!(ring.pop_wait(LONG).as_deref(), Ok("a"));
        assert_eq!(ring.pop_wait(LONG), Err(PopError::Closed));
    });
}

/// `force_push` from two threads against two consumers: every value is
/// either popped or handed back by a `force_push`, exactly once.
#[test]
fn force_push_under_contention_loses_nothing() {
    for cap in [1usize, 2, 4] {
        common::finishes(60, &format!("force_push, capacity {cap}"), move || {
            let ring = Arc::new(MpmcRing::<u64>::new(0, cap).unwrap());
            let per = 20_000u64;
            let pushers: Vec<_> = (0..2u64)
                .map(|p| {
                    let ring = Arc::clone(&ring);
                    std::thread::spawn(move || {
                        let mut back = Vec::new();
                        for i in 0..per {
                            if let Some(old) = ring.force_push(p * per + i).unwrap() {
                                back.push(old);
                            }
                        }
                        back
                    })
                })
                .collect();
            let poppers: Vec<_> = (0..2)
                .map(|_| {
                    let ring = Arc::clone(&ring);
                    std::thread::spawn(move || {
                        let mut got = Vec::new();
                        loop {
                            match ring.pop() {
                                Ok(v) => got.push(v),
                                Err(PopError::Closed) => break got,
                                Err(PopError::Empty) => std::thread::yield_now(),
                            }
                        }
                    })
                })
                .collect();
            let mut all: Vec<u64> = pushers
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect();
            ring.close();
            for t in poppers {
                all.extend(t.join().unwrap());
            }
            let ring = Arc::into_inner(ring).unwrap();
            all.extend(ring);
            all.sort_unstable();
            assert_eq!(all, (0..2 * per).collect::<Vec<_>>(), "cap {cap}");
        });
    }
}

/// Chunks from two threads: the producer alternates `write_chunk` (partly
/// committed) and `write_chunk_uninit` + `fill_from_iter`, the consumer
/// alternates committing read chunks and iterating them; every value
/// arrives once, in order, at every small capacity.
#[test]
fn chunks_across_two_threads() {
    for cap in [1usize, 2, 4, 8] {
        common::finishes(60, &format!("SPSC chunks, capacity {cap}"), move || {
            let (mut tx, mut rx) = spsc::ring::<u64>(0, cap).unwrap();
            let n = 30_000u64;
            let producer = std::thread::spawn(move || {
                let mut next = 0u64;
                let mut turn = 0usize;
                while next < n {
                    turn += 1;
                    let want = (turn % (cap + 1)).max(1).min((n - next) as usize);
                    let free = tx.slots().min(want);
                    if free == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    if turn.is_multiple_of(2) {
                        let mut c = tx.write_chunk(free).unwrap();
                        let (a, b) = c.as_mut_slices();
                        for (k, s) in a.iter_mut().chain(b).enumerate() {
                            *s = next + k as u64;
                        }
                        // Commit all but one when there is more than one.
                        let k = if free > 1 { free - 1 } else { free };
                        next += c.commit(k) as u64;
                    } else {
                        let c = tx.write_chunk_uninit(free).unwrap();
                        next += c.fill_from_iter(next..) as u64;
                    }
                }
            });
            let mut expect = 0u64;
            let mut turn = 0usize;
            while expect < n {
                turn += 1;
                let there = rx.len().min(cap);
                if there == 0 {
                    std::thread::yield_now();
                    continue;
                }
                let c = rx.read_chunk(there).unwrap();
                if turn.is_multiple_of(2) {
                    let (a, b) = c.as_slices();
                    for &v in a.iter().chain(b) {
                        assert_eq!(v, expect, "cap {cap}");
                        expect += 1;
                    }
                    c.commit_all();
                } else {
                    for v in c.into_iter().take(there.div_ceil(2)) {
                        assert_eq!(v, expect, "cap {cap}");
                        expect += 1;
                    }
                }
            }
            producer.join().unwrap();
            assert!(rx.is_empty());
        });
    }
}
