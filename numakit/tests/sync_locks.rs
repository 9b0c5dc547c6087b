//! `numakit::sync`: mutual exclusion under stress, try-lock and nesting
//! semantics, release on panic, `lock_api` integration, auto traits.
//!
//! Stress tests carry `host_only` in their names: the multi-node guest
//! harness skips them (emulated CPUs are too slow for millions of
//! acquisitions); the rest are quick.

#![cfg(not(loom))]

use numakit::sync::{
    CnaLock, CnaNode, McsGuard, McsLock, McsNode, PartitionedCounter, RawMcs, RawRwLock, RawTicket,
    RwLock, RwLockReadGuard, RwLockWriteGuard, TicketGuard, TicketLock, POOL_NODES,
};
use numakit::NodeId;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

// --- auto traits ----------------------------------------------------------

fn assert_send<T: ?Sized + Send>() {}
fn assert_sync<T: ?Sized + Sync>() {}

/// Compiles only if `T` is **not** `Send`: with `T: Send` both impls apply
/// and `<T as NotSend<_>>::CHECK` is ambiguous (the `static_assertions`
/// trick).
trait NotSend<A> {
    const CHECK: () = ();
}
impl<T: ?Sized> NotSend<()> for T {}
impl<T: ?Sized + Send> NotSend<u8> for T {}
macro_rules! assert_not_send {
    ($t:ty) => {
        const _: () = <$t as NotSend<_>>::CHECK;
    };
}

/// Compiles only if `T` is **not** `Sync`.
trait NotSync<A> {
    const CHECK: () = ();
}
impl<T: ?Sized> NotSync<()> for T {}
impl<T: ?Sized + Sync> NotSync<u8> for T {}
macro_rules! assert_not_sync {
    ($t:ty) => {
        const _: () = <$t as NotSync<_>>::CHECK;
    };
}

// Guards stay on their thread.
assert_not_send!(McsGuard<'static, u32>);
assert_not_send!(numakit::sync::CnaGuard<'static, u32>);
assert_not_send!(TicketGuard<'static, u32>);
assert_not_send!(RwLockReadGuard<'static, u32>);
assert_not_send!(RwLockWriteGuard<'static, u32>);
assert_not_send!(lock_api::MutexGuard<'static, RawMcs, u32>);
// A lock of a !Send type is neither Send nor Sync.
assert_not_send!(McsLock<std::rc::Rc<u32>>);
assert_not_sync!(McsLock<std::rc::Rc<u32>>);
assert_not_sync!(CnaLock<std::rc::Rc<u32>>);
assert_not_sync!(TicketLock<std::rc::Rc<u32>>);
// RwLock shares `&T` between readers: needs `T: Sync` too.
assert_not_sync!(RwLock<std::cell::Cell<u32>>);
// A guard of a !Sync type is not Sync.
assert_not_sync!(McsGuard<'static, std::cell::Cell<u32>>);

#[test]
fn auto_traits() {
    // Locks of `Send` data are `Send + Sync` (a `Cell` is Send, !Sync).
    assert_send::<McsLock<std::cell::Cell<u32>>>();
    assert_sync::<McsLock<std::cell::Cell<u32>>>();
    assert_send::<CnaLock<std::cell::Cell<u32>>>();
    assert_sync::<CnaLock<std::cell::Cell<u32>>>();
    assert_send::<TicketLock<std::cell::Cell<u32>>>();
    assert_sync::<TicketLock<std::cell::Cell<u32>>>();
    assert_send::<RwLock<std::cell::Cell<u32>>>();
    assert_sync::<RwLock<Vec<u32>>>();
    assert_send::<PartitionedCounter>();
    assert_sync::<PartitionedCounter>();
    assert_send::<McsNode>();
    assert_sync::<McsNode>();
    assert_send::<CnaNode>();
    // Guards of Sync data are Sync.
    assert_sync::<McsGuard<'static, u32>>();
    assert_sync::<numakit::sync::CnaGuard<'static, u32>>();
    assert_sync::<RwLockReadGuard<'static, u32>>();
    assert_send::<lock_api::Mutex<RawMcs, u32>>();
    assert_sync::<lock_api::Mutex<RawMcs, u32>>();
}

// --- quick semantics ------------------------------------------------------

static STATIC_MCS: McsLock<u64> = McsLock::new(0);
static STATIC_CNA: CnaLock<u64> = CnaLock::new(0);
static STATIC_TICKET: TicketLock<u64> = TicketLock::new(0);
static STATIC_RW: RwLock<u64> = RwLock::new(0);
static STATIC_LOCK_API: lock_api::Mutex<RawMcs, u64> = lock_api::Mutex::new(0);

#[test]
fn statics_work() {
    *STATIC_MCS.lock() += 1;
    *STATIC_CNA.lock() += 1;
    *STATIC_TICKET.lock() += 1;
    *STATIC_RW.write() += 1;
    *STATIC_LOCK_API.lock() += 1;
    assert_eq!(
        *STATIC_MCS.lock()
            + *STATIC_CNA.lock()
            + *STATIC_TICKET.lock()
            + *STATIC_RW.read()
            + *STATIC_LOCK_API.lock(),
        5
    );
}

#[test]
fn try_lock_fails_while_held_and_succeeds_after() {
    let m = McsLock::new(1);
    let g = m.lock();
    assert!(m.is_locked());
    assert!(m.try_lock().is_none());
    drop(g);
    assert!(!m.is_locked());
    assert_eq!(*m.try_lock().unwrap(), 1);

    let c = CnaLock::new(1);
    let g = c.lock();
    assert!(c.is_locked() && c.try_lock().is_none());
    drop(g);
    assert_eq!(*c.try_lock().unwrap(), 1);

    let t = TicketLock::new(1);
    let g = t.lock();
    assert!(t.is_locked() && t.try_lock().is_none());
    drop(g);
    assert_eq!(*t.try_lock().unwrap(), 1);

    let rw = RwLock::new(1);
    let r1 = rw.read();
    let r2 = rw.try_read().unwrap();
    assert!(rw.try_write().is_none());
    drop((r1, r2));
    let w = rw.try_write().unwrap();
    assert!(rw.try_read().is_none() && rw.try_write().is_none());
    drop(w);
    assert!(!rw.is_locked());
}

#[test]
fn get_mut_into_inner_default_debug() {
    let mut m = McsLock::new(vec![1]);
    m.get_mut().push(2);
    assert_eq!(format!("{m:?}"), "McsLock { data: [1, 2], .. }");
    {
        let _g = m.lock();
        assert_eq!(format!("{m:?}"), "McsLock { data: <locked>, .. }");
    }
    assert_eq!(m.into_inner(), vec![1, 2]);

    let mut c: CnaLock<Vec<i32>> = CnaLock::default();
    c.get_mut().push(3);
    assert!(format!("{c:?}").starts_with("CnaLock { data: [3]"));
    assert_eq!(c.into_inner(), vec![3]);

    let t: TicketLock<String> = TicketLock::from("x".to_string());
    assert_eq!(format!("{:?}", t.lock()), "\"x\"");
    assert_eq!(t.into_inner(), "x");

    let mut rw: RwLock<u8> = RwLock::default();
    *rw.get_mut() = 7;
    assert_eq!(format!("{rw:?}"), "RwLock { data: 7, .. }");
    assert_eq!(rw.into_inner(), 7);

    assert_eq!(McsLock::<u8>::default().into_inner(), 0);
    let _ = format!("{:?} {:?}", McsNode::new(), CnaNode::on(NodeId::new(1)));
}

#[test]
fn nesting_many_locks_works() {
    // More CNA locks than the per-thread pool holds: the rest use heap nodes.
    let mcs: Vec<McsLock<usize>> = (0..8).map(McsLock::new).collect();
    let cna: Vec<CnaLock<usize>> = (0..POOL_NODES * 2 + 1).map(CnaLock::new).collect();
    let mg: Vec<_> = mcs.iter().map(|l| l.lock()).collect();
    let cg: Vec<_> = cna.iter().map(|l| l.lock()).collect();
    assert_eq!(mg.iter().map(|g| **g).sum::<usize>(), 28);
    assert_eq!(cg.len(), POOL_NODES * 2 + 1);
    drop(cg);
    drop(mg);
    // Everything released, and the pool works again.
    assert!(cna.iter().all(|l| !l.is_locked()) && mcs.iter().all(|l| !l.is_locked()));
    let again: Vec<_> = cna.iter().map(|l| l.lock()).collect();
    drop(again);
}

#[test]
fn explicit_nodes() {
    let m = McsLock::new(0);
    let mut node = McsNode::new();
    for _ in 0..10 {
        *m.lock_with(&mut node) += 1;
    }
    assert_eq!(*m.lock(), 10);

    let c = CnaLock::new(0);
    let mut node = CnaNode::new();
    for _ in 0..10 {
        c.lock_with(&mut node, |v| *v += 1);
    }
    let (a, b) = (CnaLock::new(1), CnaLock::new(2));
    let (mut na, mut nb) = (CnaNode::on(NodeId::new(0)), CnaNode::on(NodeId::new(1)));
    let sum = a.lock_with(&mut na, |x| b.lock_with(&mut nb, |y| *x + *y));
    assert_eq!(sum, 3);
    assert_eq!(c.lock_with(&mut node, |v| *v), 10);
}

#[test]
fn leaked_cna_guard_keeps_the_lock_held_and_memory_valid() {
    // Leaking a guard is safe Rust: the lock stays held, and the pool node
    // it references must stay valid even after the thread exits.
    let lock = Arc::new(CnaLock::new(0));
    let l2 = Arc::clone(&lock);
    std::thread::spawn(move || std::mem::forget(l2.lock()))
        .join()
        .unwrap();
    assert!(lock.is_locked());
    assert!(lock.try_lock().is_none());
}

/// A guard dropped by unwinding releases the lock; there is no poisoning.
#[test]
fn panic_in_critical_section_releases() {
    fn check<'a, L: Sync, G>(
        lock: &'a L,
        take: impl Fn(&'a L) -> G + Sync,
        set: impl Fn(&mut G, u32),
    ) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut g = take(lock);
            set(&mut g, 7);
            panic!("boom");
        }));
        assert!(r.is_err());
        // Another thread can take the lock (it was released, not poisoned).
        std::thread::scope(|s| {
            s.spawn(|| drop(take(lock))).join().unwrap();
        });
    }
    let m = McsLock::new(0);
    check(&m, |l| l.lock(), |g, v| **g = v);
    assert_eq!(*m.lock(), 7);
    let c = CnaLock::new(0);
    check(&c, |l| l.lock(), |g, v| **g = v);
    assert_eq!(*c.lock(), 7);
    let t = TicketLock::new(0);
    check(&t, |l| l.lock(), |g, v| **g = v);
    assert_eq!(*t.lock(), 7);
    let rw = RwLock::new(0);
    check(&rw, |l| l.write(), |g, v| **g = v);
    assert_eq!(*rw.read(), 7);
    // lock_with's closure panicking releases too.
    let mut node = CnaNode::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.lock_with(&mut node, |_| panic!("boom"))
    }));
    assert!(r.is_err() && !c.is_locked());
}

#[test]
fn lock_api_wrappers() {
    let m: lock_api::Mutex<RawMcs, Vec<u8>> = lock_api::Mutex::new(Vec::new());
    m.lock().push(1);
    assert!(m.try_lock().is_some());
    let t: lock_api::Mutex<RawTicket, u8> = lock_api::Mutex::new(1);
    *t.lock() += 1;
    assert_eq!(t.into_inner(), 2);
    let rw: lock_api::RwLock<RawRwLock, u8> = lock_api::RwLock::new(1);
    {
        let (a, b) = (rw.read(), rw.read());
        assert_eq!(*a + *b, 2);
        assert!(rw.try_write().is_none());
    }
    *rw.write() = 5;
    assert_eq!(*rw.read(), 5);
}

#[test]
fn waiters_are_woken() {
    // A holder sleeps long enough that waiters exhaust their spin budget
    // and park; the release must wake them.
    trait Held {}
    impl<T> Held for T {}
    fn run<L: Send + Sync + 'static>(
        lock: L,
        hold: fn(&L) -> Box<dyn Held + '_>,
        wait: fn(&L) -> Box<dyn Held + '_>,
    ) {
        let lock = Arc::new(lock);
        let guard = hold(&lock);
        let done = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (lock, done) = (Arc::clone(&lock), Arc::clone(&done));
                std::thread::spawn(move || {
                    drop(wait(&lock));
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(done.load(Ordering::SeqCst), 0);
        drop(guard);
        waiters.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(done.load(Ordering::SeqCst), 3);
    }
    run(
        McsLock::new(()),
        |l| Box::new(l.lock()),
        |l| Box::new(l.lock()),
    );
    run(
        CnaLock::new(()),
        |l| Box::new(l.lock()),
        |l| Box::new(l.lock()),
    );
    run(
        TicketLock::new(()),
        |l| Box::new(l.lock()),
        |l| Box::new(l.lock()),
    );
    run(
        RwLock::new(()),
        |l| Box::new(l.write()),
        |l| Box::new(l.write()),
    );
    run(
        RwLock::new(()),
        |l| Box::new(l.write()),
        |l| Box::new(l.read()),
    );
    run(
        RwLock::new(()),
        |l| Box::new(l.read()),
        |l| Box::new(l.write()),
    );
}

#[test]
fn rwlock_readers_share_and_writer_waits_for_them() {
    let rw = Arc::new(RwLock::new(0));
    let r = rw.read();
    let writer_done = Arc::new(AtomicBool::new(false));
    let w = {
        let (rw, writer_done) = (Arc::clone(&rw), Arc::clone(&writer_done));
        std::thread::spawn(move || {
            *rw.write() = 1;
            writer_done.store(true, Ordering::SeqCst);
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!writer_done.load(Ordering::SeqCst));
    // Writer preference: with a writer waiting, new readers do not get in.
    assert!(rw.try_read().is_none());
    drop(r);
    w.join().unwrap();
    assert_eq!(*rw.read(), 1);
}

/// Run `f` on its own thread; fail (instead of hanging the run) if it is
/// not done after `secs`.
fn watchdog(secs: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(Ok(())) => worker.join().unwrap(),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: still blocked after {secs} s (deadlock)"),
    }
}

/// A thread that holds a read guard reads again while a writer waits:
/// `read` would queue behind the writer, which waits for the first guard
/// (documented; `try_read` shows it would wait); `read_recursive` joins
/// the readers at once, natively and through `lock_api`.
#[test]
fn rwlock_read_recursive_passes_a_waiting_writer() {
    watchdog(10, "read_recursive with a writer waiting", || {
        let rw = Arc::new(RwLock::new(1));
        let first = rw.read();
        let w = {
            let rw = Arc::clone(&rw);
            std::thread::spawn(move || *rw.write() += 1)
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!w.is_finished());
        assert!(rw.try_read().is_none(), "plain reads wait for the writer");
        let second = rw
            .try_read_recursive()
            .expect("a held read lock admits another");
        let third = rw.read_recursive();
        assert_eq!(*first + *second + *third, 3);
        assert!(!w.is_finished());
        drop((first, second, third));
        w.join().unwrap();
        assert_eq!(*rw.read(), 2);

        let rw: Arc<lock_api::RwLock<RawRwLock, u8>> = Arc::new(lock_api::RwLock::new(1));
        let first = rw.read();
        let w = {
            let rw = Arc::clone(&rw);
            std::thread::spawn(move || *rw.write() += 1)
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(rw.try_read().is_none());
        let second = rw.read_recursive();
        assert!(rw.try_read_recursive().is_some());
        assert_eq!(*first + *second, 2);
        drop((first, second));
        w.join().unwrap();
        assert_eq!(*rw.read(), 2);
    });
}

/// `read_recursive` still excludes a writer that holds the lock.
#[test]
fn rwlock_read_recursive_waits_while_a_writer_holds_the_lock() {
    watchdog(10, "read_recursive behind a writer", || {
        let rw = Arc::new(RwLock::new(0));
        let mut w = rw.write();
        assert!(rw.try_read_recursive().is_none());
        let got = Arc::new(AtomicBool::new(false));
        let r = {
            let (rw, got) = (Arc::clone(&rw), Arc::clone(&got));
            std::thread::spawn(move || {
                let v = *rw.read_recursive();
                got.store(true, Ordering::SeqCst);
                v
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !got.load(Ordering::SeqCst),
            "read_recursive got in under a writer"
        );
        *w = 9;
        drop(w);
        assert_eq!(r.join().unwrap(), 9);
    });
}

/// Readers that nest `read_recursive` inside `read`, plain readers and
/// writers, all at once: no deadlock, no lost wake-up, and writers are
/// exclusive.
#[test]
fn rwlock_recursive_readers_with_writers() {
    watchdog(60, "recursive readers and writers", || {
        let rw = Arc::new(RwLock::new((0u64, 0u64)));
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let rw = Arc::clone(&rw);
                std::thread::spawn(move || {
                    for i in 0..3_000u64 {
                        match t % 3 {
                            0 => {
                                let mut g = rw.write();
                                g.0 += 1;
                                g.1 += 1;
                            }
                            1 => {
                                let a = rw.read();
                                if i % 16 == 0 {
                                    std::thread::yield_now(); // let writers queue
                                }
                                let b = rw.read_recursive();
                                assert_eq!(a.0, a.1);
                                assert_eq!(*a, *b);
                            }
                            _ => {
                                let b = rw.read_recursive();
                                assert_eq!(b.0, b.1);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*rw.read(), (6_000, 6_000));
    });
}

#[test]
fn counter_add_sum_take() {
    // `with_shards` counts per node with memory; `shards` counts them all.
    let replicas = numakit::Topology::detect()
        .unwrap()
        .nodes()
        .iter()
        .filter(|n| n.has_memory())
        .count();
    let c = PartitionedCounter::with_shards(3);
    assert_eq!(c.shards(), 4 * replicas);
    c.add(10);
    c.inc();
    c.dec();
    c.add(-3);
    assert_eq!(c.sum(), 7);
    assert_eq!(c.take(), 7);
    assert_eq!(c.sum(), 0);
    assert!(PartitionedCounter::new().shards() >= 1);
    assert_eq!(PartitionedCounter::with_shards(0).shards(), replicas);
    c.add(i64::MAX);
    c.add(2); // wraps like fetch_add
    assert_eq!(c.sum(), i64::MIN + 1);
}

// --- stress (host only) -----------------------------------------------------

const THREADS: usize = 8;
const PER_THREAD: usize = 50_000;

/// `THREADS` threads × `PER_THREAD` non-atomic increments under `lock`.
fn stress<L: Send + Sync + 'static>(lock: L, bump: fn(&L), read: fn(&L) -> usize) {
    let lock = Arc::new(lock);
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (lock, start) = (Arc::clone(&lock), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..PER_THREAD {
                    bump(&lock);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(read(&lock), THREADS * PER_THREAD);
}

/// A deliberately racy increment: a read, a pause, a write. Without mutual
/// exclusion updates get lost.
fn racy_inc(v: &mut usize) {
    let x = std::hint::black_box(*v);
    std::hint::spin_loop();
    *v = x + 1;
}

#[test]
fn host_only_stress_mcs() {
    stress(McsLock::new(0), |l| racy_inc(&mut l.lock()), |l| *l.lock());
    // Explicit nodes, mixed with pooled/stack ones.
    stress(
        McsLock::new(0),
        |l| {
            let mut node = McsNode::new();
            racy_inc(&mut l.lock_with(&mut node))
        },
        |l| *l.lock(),
    );
    stress(
        McsLock::new(0),
        |l| match l.try_lock() {
            Some(mut g) => racy_inc(&mut g),
            None => racy_inc(&mut l.lock()),
        },
        |l| *l.lock(),
    );
}

#[test]
fn host_only_stress_mcs_lock_api() {
    stress(
        lock_api::Mutex::<RawMcs, usize>::new(0),
        |l| racy_inc(&mut l.lock()),
        |l| *l.lock(),
    );
}

#[test]
fn host_only_stress_cna() {
    stress(CnaLock::new(0), |l| racy_inc(&mut l.lock()), |l| *l.lock());
    // A small threshold with fake nodes: exercises the secondary queue.
    stress(
        CnaLock::<usize, 2>::with_local_handoffs(0),
        |l| {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            std::thread_local!(static NUMA: u32 = (NEXT.fetch_add(1, Ordering::Relaxed) % 3) as u32);
            let mut node = CnaNode::on(NodeId::new(NUMA.with(|n| *n)));
            l.lock_with(&mut node, racy_inc)
        },
        |l| *l.lock(),
    );
}

#[test]
fn host_only_stress_ticket() {
    // FIFO handoff under oversubscription is slow: fewer rounds.
    let lock = Arc::new(TicketLock::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    racy_inc(&mut lock.lock());
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(*lock.lock(), 80_000);
}

#[test]
fn host_only_stress_rwlock() {
    stress(RwLock::new(0), |l| racy_inc(&mut l.write()), |l| *l.read());
    // Readers alongside: they must never see a torn pair.
    let rw = Arc::new(RwLock::new((0usize, 0usize)));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (rw, stop) = (Arc::clone(&rw), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = rw.read();
                    assert_eq!(g.0, g.1);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let rw = Arc::clone(&rw);
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    let mut g = rw.write();
                    g.0 += 1;
                    std::hint::spin_loop();
                    g.1 += 1;
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|t| t.join().unwrap());
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(*rw.read(), (60_000, 60_000));
    assert!(reads > 0);
}

#[test]
fn host_only_stress_counter() {
    let c = Arc::new(PartitionedCounter::new());
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    c.inc();
                    if i % 2 == 0 {
                        c.add(2);
                        c.dec();
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let expected = (THREADS * PER_THREAD + THREADS / 2 * PER_THREAD) as i64;
    assert_eq!(c.sum(), expected);
}

/// Nested locking in both orders of *different* lock types on many threads
/// (a consistent global order: MCS outer, CNA inner) must not deadlock.
#[test]
fn host_only_stress_nested() {
    let outer = Arc::new(McsLock::new(0usize));
    let inner = Arc::new(CnaLock::new(0usize));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (outer, inner) = (Arc::clone(&outer), Arc::clone(&inner));
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    let mut o = outer.lock();
                    let mut i = inner.lock();
                    *o += 1;
                    *i += 1;
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!((*outer.lock(), *inner.lock()), (80_000, 80_000));
}
