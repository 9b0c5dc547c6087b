//! Loom models of `numakit::sync` (every interleaving up to a preemption
//! bound, with loom's C11 memory model).
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p numakit --test loom_sync --release
//! ```
//!
//! Under loom the locks park without spinning, so the models reach the
//! futex paths; the futex is modelled exactly (a lost wake-up
//! is a deadlock, which loom reports). The data under each lock is a loom
//! `UnsafeCell`, so a mutual-exclusion failure is reported as a data race.
//! The McsLock fairness clock counts instead of timing: a queue head parks,
//! then naps (a yield under loom), then claims the lock with `HANDOFF`.
//! A timed futex wait (`Condvar::wait_timeout`) times out at once under
//! loom, the earliest a real one can return.

#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use numakit::sync::{
    CnaLock, CnaNode, Condvar, McsGuard, McsLock, McsNode, PartitionedCounter, RwLock,
    RwLockUpgradableReadGuard, RwLockWriteGuard, TicketGuard, TicketLock,
};
use numakit::NodeId;

/// Run a model with the preemption bound from `LOOM_MAX_PREEMPTIONS`
/// (default 3); prints how many executions it explored (`--nocapture`).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&runs);
    let start = std::time::Instant::now();
    b.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "{}: {} executions in {:.1?}",
        std::thread::current().name().unwrap_or("?"),
        runs.load(std::sync::atomic::Ordering::Relaxed),
        start.elapsed()
    );
}

/// Non-atomic increment through a loom cell: racing increments are
/// reported by loom.
fn bump(cell: &UnsafeCell<usize>) {
    // SAFETY: the caller holds the lock around `cell`; if the lock failed
    // to exclude, loom reports the concurrent access.
    cell.with_mut(|p| unsafe { *p += 1 });
}

fn read(cell: &UnsafeCell<usize>) -> usize {
    // SAFETY: as in `bump`.
    cell.with(|p| unsafe { *p })
}

#[test]
fn mcs_two_threads() {
    model(|| {
        let lock = Arc::new(McsLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || bump(&l2.lock()));
        bump(&lock.lock());
        t.join().unwrap();
        assert_eq!(read(&lock.lock()), 2);
    });
}

/// Three contenders: a holder, a queue head that parks on the lock word,
/// and a queued waiter that parks on its node.
#[test]
fn mcs_three_threads_queue_and_park() {
    model(|| {
        let lock = Arc::new(McsLock::new(UnsafeCell::new(0)));
        let ts: Vec<_> = (0..2)
            .map(|i| {
                let l = Arc::clone(&lock);
                thread::spawn(move || {
                    if i == 0 {
                        bump(&l.lock());
                    } else {
                        let mut node = McsNode::new();
                        bump(&l.lock_with(&mut node));
                    }
                })
            })
            .collect();
        bump(&lock.lock());
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(read(&lock.lock()), 3);
    });
}

/// A thread that keeps re-locking while another waits: the waiter parks,
/// naps, claims the lock with `HANDOFF`, and the re-locker has to queue
/// behind it.
#[test]
fn mcs_relock_meets_handoff() {
    model(|| {
        let lock = Arc::new(McsLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || bump(&l2.lock()));
        for _ in 0..3 {
            bump(&lock.lock());
        }
        t.join().unwrap();
        assert_eq!(read(&lock.lock()), 4);
    });
}

/// Three threads, one of them locking twice: queue, park, `HANDOFF`, and a
/// re-lock that has to queue behind the head.
#[test]
fn mcs_three_threads_one_relocks() {
    model(|| {
        let lock = Arc::new(McsLock::new(UnsafeCell::new(0)));
        let l1 = Arc::clone(&lock);
        let a = thread::spawn(move || {
            bump(&l1.lock());
            bump(&l1.lock());
        });
        let l2 = Arc::clone(&lock);
        let b = thread::spawn(move || bump(&l2.lock()));
        bump(&lock.lock());
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(read(&lock.lock()), 4);
    });
}

#[test]
fn mcs_try_lock() {
    model(|| {
        let lock = Arc::new(McsLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || {
            if let Some(g) = l2.try_lock() {
                bump(&g);
            }
        });
        bump(&lock.lock());
        t.join().unwrap();
        let n = read(&lock.lock());
        assert!(n == 1 || n == 2);
    });
}

/// Waiters on two NUMA nodes with a threshold of one local handoff: the
/// holder moves the remote waiter to the secondary queue and later splices
/// it back.
#[test]
fn cna_two_nodes_secondary_queue() {
    model(|| {
        let lock = Arc::new(CnaLock::<_, 1>::with_local_handoffs(UnsafeCell::new(0)));
        let ts: Vec<_> = [1u32, 0]
            .into_iter()
            .map(|numa| {
                let l = Arc::clone(&lock);
                thread::spawn(move || {
                    let mut node = CnaNode::on(NodeId::new(numa));
                    l.lock_with(&mut node, |c| bump(c));
                })
            })
            .collect();
        let mut node = CnaNode::on(NodeId::new(0));
        lock.lock_with(&mut node, |c| bump(c));
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(read(&lock.lock()), 3);
    });
}

/// A node-0 holder re-locks while a node-1 and a node-0 waiter queue: the
/// local run, its threshold and the secondary queue's splice all happen.
#[test]
fn cna_relock_across_nodes() {
    model(|| {
        let lock = Arc::new(CnaLock::<_, 1>::with_local_handoffs(UnsafeCell::new(0)));
        let ts: Vec<_> = [1u32, 0]
            .into_iter()
            .map(|numa| {
                let l = Arc::clone(&lock);
                thread::spawn(move || {
                    let mut node = CnaNode::on(NodeId::new(numa));
                    l.lock_with(&mut node, |c| bump(c));
                })
            })
            .collect();
        let mut node = CnaNode::on(NodeId::new(0));
        lock.lock_with(&mut node, |c| bump(c));
        lock.lock_with(&mut node, |c| bump(c));
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(read(&lock.lock()), 4);
    });
}

#[test]
fn cna_guard_api() {
    model(|| {
        let lock = Arc::new(CnaLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || bump(&l2.lock()));
        if let Some(g) = lock.try_lock() {
            bump(&g);
        } else {
            bump(&lock.lock());
        }
        t.join().unwrap();
        assert_eq!(read(&lock.lock()), 2);
    });
}

#[test]
fn ticket_three_threads() {
    model(|| {
        let lock = Arc::new(TicketLock::new(UnsafeCell::new(0)));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let l = Arc::clone(&lock);
                thread::spawn(move || bump(&l.lock()))
            })
            .collect();
        bump(&lock.lock());
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(read(&lock.lock()), 3);
    });
}

#[test]
fn rwlock_writer_and_readers() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let l = Arc::clone(&lock);
                thread::spawn(move || {
                    let n = read(&l.read());
                    assert!(n <= 1);
                })
            })
            .collect();
        bump(&lock.write());
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(read(&lock.read()), 1);
    });
}

#[test]
fn rwlock_two_writers_and_a_reader() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let l1 = Arc::clone(&lock);
        let w = thread::spawn(move || bump(&l1.write()));
        let l2 = Arc::clone(&lock);
        let r = thread::spawn(move || assert!(read(&l2.read()) <= 2));
        bump(&lock.write());
        w.join().unwrap();
        r.join().unwrap();
        assert_eq!(read(&lock.read()), 2);
    });
}

/// A reader reads again with `read_recursive` while a writer and a plain
/// reader compete: never a deadlock (the second read does not queue behind
/// the writer), and the writer stays exclusive.
#[test]
fn rwlock_recursive_read_with_a_writer_waiting() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let l1 = Arc::clone(&lock);
        let w = thread::spawn(move || bump(&l1.write()));
        let l2 = Arc::clone(&lock);
        let r = thread::spawn(move || assert!(read(&l2.read()) <= 1));
        let first = lock.read();
        let again = lock.read_recursive();
        assert_eq!(read(&first), read(&again));
        drop((first, again));
        w.join().unwrap();
        r.join().unwrap();
        assert_eq!(read(&lock.read()), 1);
    });
}

/// `read_recursive` from a thread that holds nothing, against a writer and
/// a plain reader: it may slip in between a wake-up and the woken writer,
/// with readers asleep; its release must wake them (no lost wake-up).
#[test]
fn rwlock_recursive_read_alone_with_a_writer_and_a_reader() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let l1 = Arc::clone(&lock);
        let w = thread::spawn(move || bump(&l1.write()));
        let l2 = Arc::clone(&lock);
        let r = thread::spawn(move || assert!(read(&l2.read()) <= 2));
        assert!(read(&lock.read_recursive()) <= 1);
        bump(&lock.write());
        w.join().unwrap();
        r.join().unwrap();
        assert_eq!(read(&lock.read_recursive()), 2);
    });
}

#[test]
fn counter_sums() {
    model(|| {
        let c = Arc::new(PartitionedCounter::new());
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let c = Arc::clone(&c);
                thread::spawn(move || {
                    c.inc();
                    c.add(2);
                })
            })
            .collect();
        c.dec();
        let mid = c.sum();
        assert!((-1..=5).contains(&mid));
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(c.sum(), 5);
    });
}

// --- Condvar ----------------------------------------------------------------

/// A waiter on a `TicketLock` and a notifier that sets the value under the
/// lock and notifies after releasing it: the waiter must wake (a lost
/// notification is a deadlock, which loom reports), and the value is read
/// under the lock (a race would be reported).
#[test]
fn condvar_notify_one_after_unlock() {
    model(|| {
        let pair = Arc::new((TicketLock::new(UnsafeCell::new(0)), Condvar::new()));
        let p2 = Arc::clone(&pair);
        let t = thread::spawn(move || {
            bump(&p2.0.lock());
            p2.1.notify_one();
        });
        let (lock, cv) = &*pair;
        let mut g = lock.lock();
        cv.wait_while(&mut g, |c| read(c) == 0);
        assert_eq!(read(&g), 1);
        drop(g);
        t.join().unwrap();
    });
}

/// Two waiters on an `McsLock`, notified with `notify_all` while the
/// notifier holds the lock: both wake.
#[test]
fn condvar_notify_all_two_waiters() {
    model(|| {
        let pair = Arc::new((McsLock::new(UnsafeCell::new(0)), Condvar::new()));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let p = Arc::clone(&pair);
                thread::spawn(move || {
                    let mut g = p.0.lock();
                    p.1.wait_while(&mut g, |c| read(c) == 0);
                })
            })
            .collect();
        {
            let g = pair.0.lock();
            bump(&g);
            pair.1.notify_all();
        }
        for t in ts {
            t.join().unwrap();
        }
    });
}

/// A timed wait (which times out at once under loom) releases and
/// re-takes the lock and leaves the waiter count right: a later
/// notification still reaches a second, untimed wait.
#[test]
fn condvar_timed_wait_then_wait() {
    model(|| {
        let pair = Arc::new((McsLock::new(UnsafeCell::new(0)), Condvar::new()));
        let p2 = Arc::clone(&pair);
        let t = thread::spawn(move || {
            bump(&p2.0.lock());
            p2.1.notify_one();
        });
        let (lock, cv) = &*pair;
        let mut g = lock.lock();
        if read(&g) == 0 {
            let _ = cv.wait_timeout(&mut g, std::time::Duration::from_secs(1));
        }
        cv.wait_while(&mut g, |c| read(c) == 0);
        drop(g);
        t.join().unwrap();
    });
}

/// A waiter on a `CnaLock` guard (the guard re-queues its own node).
#[test]
fn condvar_with_cna_guard() {
    model(|| {
        let pair = Arc::new((CnaLock::new(UnsafeCell::new(0)), Condvar::new()));
        let p2 = Arc::clone(&pair);
        let t = thread::spawn(move || {
            let g = p2.0.lock();
            bump(&g);
            p2.1.notify_one();
        });
        let (lock, cv) = &*pair;
        let mut g = lock.lock();
        cv.wait_while(&mut g, |c| read(c) == 0);
        drop(g);
        t.join().unwrap();
    });
}

// --- fair unlock and bump ---------------------------------------------------

/// `bump` and `unlock_fair` on an McsLock with a contender: `HANDOFF` is
/// set for the queue head when one is queued; nobody is left waiting and
/// the lock stays exclusive.
#[test]
fn mcs_bump_and_unlock_fair() {
    model(|| {
        let lock = Arc::new(McsLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || bump(&l2.lock()));
        let mut g = lock.lock();
        bump(&g);
        McsGuard::bump(&mut g);
        bump(&g);
        McsGuard::unlock_fair(g);
        t.join().unwrap();
        assert_eq!(read(&lock.lock()), 3);
    });
}

#[test]
fn ticket_bump() {
    model(|| {
        let lock = Arc::new(TicketLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || bump(&l2.lock()));
        let mut g = lock.lock();
        bump(&g);
        TicketGuard::bump(&mut g);
        bump(&g);
        TicketGuard::unlock_fair(g);
        t.join().unwrap();
        assert_eq!(read(&lock.lock()), 3);
    });
}

// --- RwLock upgradable reads and downgrade ------------------------------------

/// An upgrade waits for a plain reader to leave; the reader's release
/// wakes it (`UPGRADING`, one reader left).
#[test]
fn rwlock_upgrade_waits_for_a_reader() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let r = thread::spawn(move || assert!(read(&l2.read()) <= 1));
        let up = lock.upgradable_read();
        assert_eq!(read(&up), 0);
        let w = RwLockUpgradableReadGuard::upgrade(up);
        bump(&w);
        drop(w);
        r.join().unwrap();
        assert_eq!(read(&lock.read()), 1);
    });
}

/// Two upgradable readers: the second waits (`UPGRADABLE_WAITING`) until
/// the first upgrades and releases; both writes land.
#[test]
fn rwlock_two_upgradable_readers() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || {
            let up = l2.upgradable_read();
            bump(&RwLockUpgradableReadGuard::upgrade(up));
        });
        let up = lock.upgradable_read();
        bump(&RwLockUpgradableReadGuard::upgrade(up));
        t.join().unwrap();
        assert_eq!(read(&lock.read()), 2);
    });
}

/// An upgradable reader that downgrades lets a waiting upgradable reader
/// in, and a writer waiting behind both still gets the lock.
#[test]
fn rwlock_upgradable_downgrade_and_a_writer() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let l1 = Arc::clone(&lock);
        let w = thread::spawn(move || bump(&l1.write()));
        let l2 = Arc::clone(&lock);
        let u = thread::spawn(move || {
            let up = l2.upgradable_read();
            assert!(read(&up) <= 1);
        });
        let up = lock.upgradable_read();
        let r = RwLockUpgradableReadGuard::downgrade(up);
        assert!(read(&r) <= 1);
        drop(r);
        w.join().unwrap();
        u.join().unwrap();
        assert_eq!(read(&lock.read()), 1);
    });
}

/// A writer downgrades while a reader waits: the reader is let in (or
/// enters later), and the written value is what it reads.
#[test]
fn rwlock_downgrade_with_a_waiting_reader() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let r = thread::spawn(move || assert!(read(&l2.read()) <= 1));
        let w = lock.write();
        bump(&w);
        let g = RwLockWriteGuard::downgrade(w);
        assert_eq!(read(&g), 1);
        drop(g);
        r.join().unwrap();
    });
}

/// A timed upgrade that gives up (its deadline has passed, and timed waits
/// end at once under loom) because a reader is inside — here the same
/// thread's plain read, so that the model needs only one more thread — while
/// another reader arrives: the reader it stopped with `UPGRADING` must be
/// woken when it gives up (a lost wake-up is a deadlock, which loom
/// reports).
#[test]
fn rwlock_timed_upgrade_gives_up() {
    model(|| {
        let lock = Arc::new(RwLock::new(UnsafeCell::new(0)));
        let l2 = Arc::clone(&lock);
        let r = thread::spawn(move || assert_eq!(read(&l2.read()), 0));
        let inside = lock.read();
        let up = lock.upgradable_read();
        let up = RwLockUpgradableReadGuard::try_upgrade_until(up, std::time::Instant::now())
            .expect_err("a reader is inside");
        r.join().unwrap();
        drop((inside, up));
        assert_eq!(read(&lock.read()), 0);
    });
}
