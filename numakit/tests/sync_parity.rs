//! `numakit::sync`: the operations `parking_lot` users reach for —
//! `Condvar`, timed locking, fair unlock and `bump`, mapped guards,
//! upgradable reads and downgrades — with adversarial timeouts, panicking
//! user code, and stress runs under watchdogs.
//!
//! Stress tests carry `host_only` in their names (the multi-node guest
//! harness skips them).

#![cfg(not(loom))]

use lock_api::{RawMutexFair, RawMutexTimed};
use numakit::sync::{
    CnaGuard, CnaLock, Condvar, MappedMcsGuard, MappedRwLockReadGuard, MappedRwLockWriteGuard,
    MappedTicketGuard, McsGuard, McsLock, RawMcs, RawRwLock, RawTicket, RwLock, RwLockReadGuard,
    RwLockUpgradableReadGuard, RwLockWriteGuard, TicketGuard, TicketLock,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// Run `f` on its own thread; fail (instead of hanging the run) if it is
/// not done after `secs`.
fn watchdog(secs: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = thread::spawn(move || {
        let out = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(())) => worker.join().unwrap(),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: still blocked after {secs} s (deadlock)"),
    }
}

/// Long enough for a spawned thread to reach its wait and park.
const SETTLE: Duration = Duration::from_millis(50);

/// About 100 years: far in the future, still an `Instant`.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

// --- auto traits ----------------------------------------------------------

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

assert_not_send!(MappedMcsGuard<'static, u32>);
assert_not_send!(MappedTicketGuard<'static, u32>);
assert_not_send!(MappedRwLockReadGuard<'static, u32>);
assert_not_send!(MappedRwLockWriteGuard<'static, u32>);
assert_not_send!(RwLockUpgradableReadGuard<'static, u32>);
assert_not_sync!(MappedMcsGuard<'static, std::cell::Cell<u32>>);
assert_not_sync!(RwLockUpgradableReadGuard<'static, std::cell::Cell<u32>>);

#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn sync<T: Sync>() {}
    send_sync::<Condvar>();
    sync::<MappedMcsGuard<'static, u32>>();
    sync::<MappedRwLockWriteGuard<'static, u32>>();
    sync::<RwLockUpgradableReadGuard<'static, u32>>();
}

// --- Condvar --------------------------------------------------------------

/// The same hand-over through every guard kind a `Condvar` takes: a
/// waiter in `wait_while`, a notifier that sets the value under the lock.
macro_rules! condvar_round_trip {
    ($name:ident, $lock:expr) => {
        #[test]
        fn $name() {
            watchdog(10, stringify!($name), || {
                let pair = Arc::new(($lock, Condvar::new()));
                let p2 = Arc::clone(&pair);
                let waiter = thread::spawn(move || {
                    let (lock, cv) = &*p2;
                    let mut g = lock.lock();
                    cv.wait_while(&mut g, |v| *v == 0);
                    *g += 10;
                });
                thread::sleep(SETTLE);
                let (lock, cv) = &*pair;
                *lock.lock() = 1;
                cv.notify_one();
                waiter.join().unwrap();
                assert_eq!(*lock.lock(), 11);
                assert!(!lock.is_locked());
            });
        }
    };
}
condvar_round_trip!(condvar_with_mcs_guard, McsLock::new(0u32));
condvar_round_trip!(condvar_with_ticket_guard, TicketLock::new(0u32));
condvar_round_trip!(condvar_with_cna_guard, CnaLock::new(0u32));
condvar_round_trip!(
    condvar_with_lock_api_mutex,
    lock_api::Mutex::<RawMcs, u32>::new(0)
);
condvar_round_trip!(
    condvar_with_parking_lot_mutex,
    parking_lot::Mutex::new(0u32)
);

#[test]
fn condvar_notify_without_waiters_wakes_nobody() {
    static CV: Condvar = Condvar::new();
    assert!(!CV.notify_one());
    assert_eq!(CV.notify_all(), 0);
    let cv = Condvar::default();
    assert!(!cv.notify_one());
    assert_eq!(format!("{cv:?}"), "Condvar { .. }");
}

/// `notify_all` wakes every waiter, and reports the sleepers it woke (all
/// three once they are asleep: they registered under the lock, and the
/// notifier waits until none is left awake).
#[test]
fn condvar_notify_all_wakes_everyone() {
    watchdog(10, "notify_all", || {
        let pair = Arc::new((McsLock::new((false, 0usize)), Condvar::new()));
        let ws: Vec<_> = (0..3)
            .map(|_| {
                let p = Arc::clone(&pair);
                thread::spawn(move || {
                    let (lock, cv) = &*p;
                    let mut g = lock.lock();
                    g.1 += 1;
                    cv.wait_while(&mut g, |s| !s.0);
                })
            })
            .collect();
        let (lock, cv) = &*pair;
        while lock.lock().1 < 3 {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(SETTLE);
        lock.lock().0 = true;
        let woken = cv.notify_all();
        assert!(woken <= 3, "woke {woken}");
        for w in ws {
            w.join().unwrap();
        }
        assert!(!cv.notify_one(), "nobody waits any more");
    });
}

/// `notify_one` with several waiters wakes them one per call, and
/// notifications with no state change do not end a `wait_while`.
#[test]
fn condvar_spurious_wakeups_do_not_end_wait_while() {
    watchdog(10, "spurious", || {
        let pair = Arc::new((McsLock::new(0u32), Condvar::new()));
        let done = Arc::new(AtomicBool::new(false));
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let (p, done) = (Arc::clone(&pair), Arc::clone(&done));
                thread::spawn(move || {
                    let (lock, cv) = &*p;
                    let mut g = lock.lock();
                    cv.wait_while(&mut g, |v| *v < 5);
                    assert!(
                        done.load(Ordering::SeqCst),
                        "woke before the value got to 5"
                    );
                })
            })
            .collect();
        let (lock, cv) = &*pair;
        for v in 1..5 {
            *lock.lock() = v;
            cv.notify_all();
            thread::sleep(Duration::from_millis(5));
        }
        done.store(true, Ordering::SeqCst);
        *lock.lock() = 5;
        // One at a time: each call wakes one sleeper.
        while ws.iter().any(|w| !w.is_finished()) {
            cv.notify_one();
            thread::sleep(Duration::from_millis(1));
        }
        for w in ws {
            w.join().unwrap();
        }
    });
}

/// Timeouts: zero, `Duration::MAX`, past and far-future deadlines. None
/// panics or overflows; the lock is held again after every wait.
#[test]
fn condvar_adversarial_timeouts() {
    watchdog(20, "condvar timeouts", || {
        let lock = McsLock::new(0u32);
        let cv = Condvar::new();
        let mut g = lock.lock();

        let t0 = Instant::now();
        assert!(cv.wait_timeout(&mut g, Duration::ZERO).timed_out());
        assert!(cv.wait_for(&mut g, Duration::from_nanos(1)).timed_out());
        assert!(cv.wait_until(&mut g, t0).timed_out());
        let past = t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0);
        assert!(cv.wait_until(&mut g, past).timed_out());
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(lock.is_locked(), "held again after the waits");

        let t0 = Instant::now();
        let r = cv.wait_timeout(&mut g, Duration::from_millis(30));
        let took = t0.elapsed();
        // A timed wait may return early (spuriously), but a timeout is
        // reported only once the time has passed.
        if r.timed_out() {
            assert!(took >= Duration::from_millis(30), "{r:?} after {took:?}");
        }

        // The `_while` forms check the condition first, also with no time.
        assert!(!cv
            .wait_timeout_while(&mut g, Duration::ZERO, |v| *v != 0)
            .timed_out());
        assert!(cv
            .wait_timeout_while(&mut g, Duration::ZERO, |v| *v == 0)
            .timed_out());
        assert!(cv.wait_while_until(&mut g, past, |v| *v == 0).timed_out());
        let t0 = Instant::now();
        assert!(cv
            .wait_while_for(&mut g, |v| *v == 0, Duration::from_millis(30))
            .timed_out());
        assert!(t0.elapsed() >= Duration::from_millis(30));
        drop(g);

        // Unbounded and far-future waits end with a notification.
        let pair = Arc::new((McsLock::new(0u32), Condvar::new()));
        for case in 0..4 {
            let p2 = Arc::clone(&pair);
            let notifier = thread::spawn(move || {
                thread::sleep(SETTLE);
                *p2.0.lock() += 1;
                p2.1.notify_all();
            });
            let (lock, cv) = &*pair;
            let mut g = lock.lock();
            let want = case + 1;
            let timed_out = match case {
                0 => cv
                    .wait_timeout_while(&mut g, Duration::MAX, |v| *v < want)
                    .timed_out(),
                1 => cv
                    .wait_while_until(&mut g, Instant::now() + CENTURY, |v| *v < want)
                    .timed_out(),
                2 => {
                    let mut timed_out = false;
                    while *g < want {
                        timed_out |= cv.wait_timeout(&mut g, Duration::MAX).timed_out();
                        if *g < want {
                            let far = Instant::now() + CENTURY;
                            timed_out |= cv.wait_until(&mut g, far).timed_out();
                        }
                    }
                    timed_out
                }
                _ => cv
                    .wait_while_for(&mut g, |v| *v < want, Duration::MAX)
                    .timed_out(),
            };
            assert!(!timed_out, "case {case}");
            assert_eq!(*g, want);
            drop(g);
            notifier.join().unwrap();
        }
    });
}

/// A waiter whose `wait_while` predicate panics (after it was woken) leaves
/// the lock free and the condition variable working for the others.
#[test]
fn condvar_panicking_predicate_leaves_lock_and_condvar_usable() {
    watchdog(10, "panicking predicate", || {
        let pair = Arc::new((McsLock::new(0u32), Condvar::new()));
        let p2 = Arc::clone(&pair);
        let panicker = thread::spawn(move || {
            let (lock, cv) = &*p2;
            let mut g = lock.lock();
            cv.wait_while(&mut g, |v| {
                assert!(*v != 1, "predicate panics on 1");
                *v == 0
            });
        });
        let p3 = Arc::clone(&pair);
        let patient = thread::spawn(move || {
            let (lock, cv) = &*p3;
            let mut g = lock.lock();
            cv.wait_while(&mut g, |v| *v < 2);
            *g += 100;
        });
        thread::sleep(SETTLE);
        let (lock, cv) = &*pair;
        *lock.lock() = 1;
        cv.notify_all();
        assert!(panicker.join().is_err(), "the predicate panicked");
        // The panicking waiter's guard released the lock on unwind.
        assert!(lock.try_lock_for(Duration::from_secs(5)).is_some());
        *lock.lock() = 2;
        cv.notify_all();
        patient.join().unwrap();
        assert_eq!(*lock.lock(), 102);
        // And the condition variable still works for a new waiter.
        let p4 = Arc::clone(&pair);
        let late = thread::spawn(move || {
            let (lock, cv) = &*p4;
            let mut g = lock.lock();
            cv.wait_while(&mut g, |v| *v < 200);
        });
        thread::sleep(SETTLE);
        *lock.lock() = 200;
        cv.notify_one();
        late.join().unwrap();
    });
}

/// One condition variable used with two different mutexes: allowed (only
/// spurious wake-ups), nothing panics.
#[test]
fn condvar_with_two_mutexes() {
    watchdog(10, "two mutexes", || {
        let state = Arc::new((McsLock::new(false), TicketLock::new(false), Condvar::new()));
        let s2 = Arc::clone(&state);
        let a = thread::spawn(move || {
            let mut g = s2.0.lock();
            s2.2.wait_while(&mut g, |v| !*v);
        });
        let s3 = Arc::clone(&state);
        let b = thread::spawn(move || {
            let mut g = s3.1.lock();
            s3.2.wait_while(&mut g, |v| !*v);
        });
        thread::sleep(SETTLE);
        *state.0.lock() = true;
        *state.1.lock() = true;
        state.2.notify_all();
        a.join().unwrap();
        b.join().unwrap();
    });
}

/// Ping-pong between two threads, many rounds: a lost wake-up hangs,
/// which the watchdog reports.
macro_rules! ping_pong {
    ($rounds:expr, $lock:expr) => {{
        let rounds: u32 = $rounds;
        let pair = Arc::new(($lock, Condvar::new()));
        let p2 = Arc::clone(&pair);
        let pong = thread::spawn(move || {
            let (lock, cv) = &*p2;
            let mut g = lock.lock();
            for i in 0..rounds {
                cv.wait_while(&mut g, |v| *v != 2 * i + 1);
                *g += 1;
                cv.notify_one();
            }
        });
        let (lock, cv) = &*pair;
        let mut g = lock.lock();
        for i in 0..rounds {
            *g += 1;
            cv.notify_one();
            cv.wait_while(&mut g, |v| *v != 2 * i + 2);
        }
        drop(g);
        pong.join().unwrap();
        assert_eq!(*pair.0.lock(), 2 * rounds);
    }};
}

#[test]
fn host_only_stress_condvar_ping_pong() {
    watchdog(60, "condvar ping-pong", || {
        ping_pong!(20_000, McsLock::new(0u32));
        ping_pong!(5_000, TicketLock::new(0u32));
        ping_pong!(5_000, CnaLock::new(0u32));
        ping_pong!(5_000, lock_api::Mutex::<RawMcs, u32>::new(0));
    });
}

/// Producers and consumers on one queue, `notify_one` per item, timed and
/// untimed waits mixed: every item is taken exactly once, nobody hangs.
#[test]
fn host_only_stress_condvar_queue() {
    watchdog(60, "condvar queue", || {
        const PER_PRODUCER: usize = 20_000;
        let state = Arc::new((
            McsLock::new((std::collections::VecDeque::new(), 0usize)),
            Condvar::new(),
        ));
        let taken = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..3)
            .map(|c| {
                let (state, taken) = (Arc::clone(&state), Arc::clone(&taken));
                thread::spawn(move || {
                    let (lock, cv) = &*state;
                    let mut sum = 0usize;
                    loop {
                        let mut g = lock.lock();
                        if c == 0 {
                            cv.wait_timeout_while(&mut g, Duration::from_micros(50), |s| {
                                s.0.is_empty() && s.1 < 2
                            });
                        } else {
                            cv.wait_while(&mut g, |s| s.0.is_empty() && s.1 < 2);
                        }
                        match g.0.pop_front() {
                            Some(v) => {
                                sum += v;
                                taken.fetch_add(1, Ordering::Relaxed);
                            }
                            None if g.1 == 2 => return sum,
                            None => {}
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let state = Arc::clone(&state);
                thread::spawn(move || {
                    let (lock, cv) = &*state;
                    for i in 0..PER_PRODUCER {
                        lock.lock().0.push_back(i);
                        cv.notify_one();
                    }
                    lock.lock().1 += 1;
                    cv.notify_all();
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let sum: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(taken.load(Ordering::Relaxed), 2 * PER_PRODUCER);
        assert_eq!(sum, 2 * (PER_PRODUCER * (PER_PRODUCER - 1) / 2));
    });
}

// --- timed locking --------------------------------------------------------

macro_rules! timed_lock_tests {
    ($name:ident, $Lock:ident, $Raw:ty) => {
        #[test]
        fn $name() {
            watchdog(20, stringify!($name), || {
                let lock = Arc::new($Lock::new(0u32));
                // Free lock: every form succeeds at once.
                for t in [Duration::ZERO, Duration::from_nanos(1), Duration::MAX] {
                    assert!(lock.try_lock_for(t).is_some(), "{t:?}");
                }
                let now = Instant::now();
                let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
                for d in [past, now, now + CENTURY] {
                    assert!(lock.try_lock_until(d).is_some());
                }
                // Held: zero and past deadlines try once and fail.
                let g = lock.lock();
                let t0 = Instant::now();
                assert!(lock.try_lock_for(Duration::ZERO).is_none());
                assert!(lock.try_lock_until(past).is_none());
                assert!(lock.try_lock_until(Instant::now()).is_none());
                assert!(t0.elapsed() < Duration::from_secs(5));
                // A real timeout waits about that long.
                let t0 = Instant::now();
                assert!(lock.try_lock_for(Duration::from_millis(30)).is_none());
                let took = t0.elapsed();
                assert!(took >= Duration::from_millis(30), "{took:?}");
                assert!(took < Duration::from_secs(10), "{took:?}");
                drop(g);
                // Released while waiting: MAX, far future and a generous
                // timeout all get it.
                for case in 0..3 {
                    let g = lock.lock();
                    let l2 = Arc::clone(&lock);
                    let t = thread::spawn(move || {
                        let got = match case {
                            0 => l2.try_lock_for(Duration::MAX),
                            1 => l2.try_lock_until(Instant::now() + CENTURY),
                            _ => l2.try_lock_for(Duration::from_secs(10)),
                        };
                        *got.expect("released while waiting") += 1;
                    });
                    thread::sleep(Duration::from_millis(20));
                    drop(g);
                    t.join().unwrap();
                }
                assert_eq!(*lock.lock(), 3);

                // Through lock_api.
                let m: lock_api::Mutex<$Raw, u32> = lock_api::Mutex::new(0);
                let g = m.lock();
                assert!(m.try_lock_for(Duration::ZERO).is_none());
                assert!(m.try_lock_until(past).is_none());
                drop(g);
                assert!(m.try_lock_for(Duration::MAX).is_some());
                assert!(m.try_lock_until(now + CENTURY).is_some());
                let raw = <$Raw>::new();
                assert!(RawMutexTimed::try_lock_for(&raw, Duration::ZERO));
                assert!(!RawMutexTimed::try_lock_until(&raw, now));
                // SAFETY: locked just above.
                unsafe { lock_api::RawMutex::unlock(&raw) };
            });
        }
    };
}
timed_lock_tests!(mcs_timed_locking, McsLock, RawMcs);
timed_lock_tests!(ticket_timed_locking, TicketLock, RawTicket);

#[test]
fn cna_timed_locking() {
    watchdog(20, "cna timed", || {
        let lock = Arc::new(CnaLock::new(0u32));
        let now = Instant::now();
        let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        for t in [Duration::ZERO, Duration::MAX] {
            assert!(lock.try_lock_for(t).is_some());
        }
        assert!(lock.try_lock_until(past).is_some());
        assert!(lock.try_lock_until(now + CENTURY).is_some());
        let g = lock.lock();
        assert!(lock.try_lock_for(Duration::ZERO).is_none());
        assert!(lock.try_lock_until(past).is_none());
        let t0 = Instant::now();
        assert!(lock.try_lock_for(Duration::from_millis(30)).is_none());
        assert!(t0.elapsed() >= Duration::from_millis(30));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || *l2.try_lock_for(Duration::MAX).unwrap() += 1);
        thread::sleep(Duration::from_millis(20));
        drop(g);
        t.join().unwrap();
        let g = lock.lock();
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || {
            *l2.try_lock_until(Instant::now() + CENTURY).unwrap() += 1;
        });
        thread::sleep(Duration::from_millis(20));
        drop(g);
        t.join().unwrap();
        assert_eq!(*lock.lock(), 2);
    });
}

/// Timed lockers against plain lockers: mutual exclusion holds, and every
/// timed attempt either gets the lock or reports a timeout.
#[test]
fn host_only_stress_timed_locking() {
    watchdog(60, "timed locking", || {
        let lock = Arc::new(McsLock::new((0u64, false)));
        let got = Arc::new(AtomicUsize::new(0));
        let ts: Vec<_> = (0..4)
            .map(|i| {
                let (lock, got) = (Arc::clone(&lock), Arc::clone(&got));
                thread::spawn(move || {
                    for k in 0..20_000u32 {
                        let g = if i % 2 == 0 {
                            lock.try_lock_for(Duration::from_micros(u64::from(k % 50)))
                        } else {
                            Some(lock.lock())
                        };
                        if let Some(mut g) = g {
                            assert!(!g.1, "two holders");
                            g.1 = true;
                            g.0 += 1;
                            g.1 = false;
                            got.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(lock.lock().0, got.load(Ordering::Relaxed) as u64);
    });
}

// --- fair unlock and bump -------------------------------------------------

/// Spawn `f` on a thread and return once that thread sleeps (state `S`
/// in `/proc/self/task/TID/stat`) after announcing itself: the callers'
/// threads then sleep only where a lock parks them, so they are queued.
fn spawn_parked(f: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        // SAFETY: gettid(2) has no preconditions.
        tx.send(unsafe { libc::gettid() }).unwrap();
        f()
    });
    let tid = rx.recv().unwrap();
    let stat = format!("/proc/self/task/{tid}/stat");
    let t0 = Instant::now();
    loop {
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        // "TID (comm) S ...": the state follows the last ')'.
        let state = s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        if state == Some("S") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "thread never parked: {s}"
        );
        thread::sleep(Duration::from_millis(1));
    }
    t
}

/// With a thread queued (parked), `unlock_fair` leaves the lock to it:
/// `try_lock` right after cannot take it first. A plain `unlock` lets the
/// releasing thread's `try_lock` win while the parked waiter wakes up.
#[test]
fn mcs_unlock_fair_hands_over_to_the_queued_waiter() {
    watchdog(30, "unlock_fair", || {
        for _ in 0..20 {
            let lock = Arc::new(McsLock::new(0u32));
            let g = lock.lock();
            let l2 = Arc::clone(&lock);
            let waiter = spawn_parked(move || *l2.lock() += 1);
            McsGuard::unlock_fair(g);
            if let Some(g) = lock.try_lock() {
                assert_eq!(*g, 1, "try_lock overtook the queued waiter");
            }
            waiter.join().unwrap();
            assert_eq!(*lock.lock(), 1);
        }
    });
}

/// `bump` with a parked waiter lets it run its critical section before the
/// bumping thread goes on; with nobody waiting it returns at once.
macro_rules! bump_check {
    ($lock:expr, $bump:path) => {{
        let lock = Arc::new($lock);
        let mut g = lock.lock();
        $bump(&mut g); // nobody waits: no-op
        *g = 1;
        let l2 = Arc::clone(&lock);
        let waiter = spawn_parked(move || *l2.lock() *= 10);
        $bump(&mut g);
        assert_eq!(*g, 10, "the waiter had its turn during bump");
        *g += 1;
        drop(g);
        waiter.join().unwrap();
        assert_eq!(*lock.lock(), 11);
    }};
}

#[test]
fn bump_lets_the_queued_waiter_in() {
    watchdog(30, "bump", || {
        for _ in 0..10 {
            bump_check!(McsLock::new(0u32), McsGuard::bump);
            bump_check!(TicketLock::new(0u32), TicketGuard::bump);
            bump_check!(
                lock_api::Mutex::<RawMcs, u32>::new(0),
                lock_api::MutexGuard::bump
            );
            bump_check!(
                lock_api::Mutex::<RawTicket, u32>::new(0),
                lock_api::MutexGuard::bump
            );
        }
    });
}

#[test]
fn unlocked_and_unlock_fair_through_guards() {
    let lock = McsLock::new(1u32);
    let mut g = lock.lock();
    let seen = McsGuard::unlocked(&mut g, || lock.try_lock().map(|g| *g));
    assert_eq!(seen, Some(1));
    McsGuard::unlocked_fair(&mut g, || assert!(!lock.is_locked()));
    assert!(lock.is_locked());
    McsGuard::unlock_fair(g);
    assert!(!lock.is_locked());

    // `unlocked` re-takes the lock when its closure panics.
    let mut g = lock.lock();
    let r = catch_unwind(AssertUnwindSafe(|| {
        McsGuard::unlocked(&mut g, || panic!("inside unlocked"))
    }));
    assert!(r.is_err());
    assert!(lock.is_locked());
    *g += 1;
    drop(g);
    assert_eq!(*lock.lock(), 2);

    let t = TicketLock::new(0u32);
    let mut g = t.lock();
    TicketGuard::unlocked(&mut g, || assert!(!t.is_locked()));
    TicketGuard::unlock_fair(g);
    assert!(!t.is_locked());

    let c = CnaLock::new(0u32);
    let mut g = c.lock();
    CnaGuard::unlocked(&mut g, || assert!(c.try_lock().is_some()));
    assert!(c.is_locked());
    drop(g);
    assert!(!c.is_locked());

    let raw = RawMcs::new();
    raw.lock();
    // SAFETY: held (locked just above, and again by `bump`).
    unsafe {
        RawMutexFair::bump(&raw);
        RawMutexFair::unlock_fair(&raw);
    }
    assert!(!raw.is_locked());
}

/// Fair releases and bumps mixed with plain locking: exclusion holds and
/// nobody hangs.
#[test]
fn host_only_stress_fair_and_bump() {
    watchdog(60, "fair and bump", || {
        let lock = Arc::new(McsLock::new((0u64, false)));
        let ts: Vec<_> = (0..4)
            .map(|i| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    for k in 0..20_000u32 {
                        let mut g = lock.lock();
                        assert!(!g.1);
                        g.1 = true;
                        g.0 += 1;
                        g.1 = false;
                        match (i + k) % 3 {
                            0 => McsGuard::unlock_fair(g),
                            1 => {
                                McsGuard::bump(&mut g);
                                assert!(!g.1);
                            }
                            _ => drop(g),
                        }
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(lock.lock().0, 80_000);
    });
}

// --- mapped guards ----------------------------------------------------------

#[derive(Debug, Default)]
struct Pair {
    a: u32,
    b: Vec<u32>,
}

#[test]
fn mutex_guard_map_and_try_map() {
    let lock = McsLock::new(Pair::default());
    {
        let mut a = McsGuard::map(lock.lock(), |p| &mut p.a);
        *a = 5;
        assert!(lock.is_locked());
        assert_eq!(format!("{a:?} {a}"), "5 5");
    }
    assert!(!lock.is_locked());
    let g = match McsGuard::try_map(lock.lock(), |p| p.b.first_mut()) {
        Ok(_) => panic!("empty vector has no first element"),
        Err(g) => g,
    };
    assert!(lock.is_locked(), "Err keeps the guard and the lock");
    let mut b = McsGuard::map(g, |p| &mut p.b);
    b.push(7);
    let mut first = MappedMcsGuard::try_map(b, |b| b.first_mut()).unwrap();
    *first += 1;
    let first = MappedMcsGuard::map(first, |x| x);
    drop(first);
    assert!(!lock.is_locked());
    assert_eq!(lock.lock().b, [8]);

    // A panicking map closure releases the lock.
    let r = catch_unwind(AssertUnwindSafe(|| {
        McsGuard::map(lock.lock(), |_| -> &mut u32 { panic!("map") })
    }));
    assert!(r.is_err());
    assert!(!lock.is_locked());

    let t = TicketLock::new(Pair::default());
    *TicketGuard::map(t.lock(), |p| &mut p.a) += 3;
    assert!(!t.is_locked());
    assert!(TicketGuard::try_map(t.lock(), |p| p.b.last_mut()).is_err());
    let m = MappedTicketGuard::map(TicketGuard::map(t.lock(), |p| &mut p.b), |b| b);
    assert!(MappedTicketGuard::try_map(m, |b| b.last_mut()).is_err());
    assert!(!t.is_locked());
    assert_eq!(t.lock().a, 3);
}

#[test]
fn rwlock_guard_map_and_try_map() {
    let lock = RwLock::new(Pair::default());
    {
        let mut a = RwLockWriteGuard::map(lock.write(), |p| &mut p.a);
        *a = 4;
        assert!(lock.is_locked_exclusive());
        let a = MappedRwLockWriteGuard::map(a, |a| a);
        assert!(MappedRwLockWriteGuard::try_map(a, |_| None::<&mut u8>).is_err());
    }
    assert!(!lock.is_locked());
    {
        let a = RwLockReadGuard::map(lock.read(), |p| &p.a);
        let b = RwLockReadGuard::map(lock.read(), |p| &p.b);
        assert_eq!(*a, 4);
        assert!(b.is_empty());
        assert!(lock.is_locked() && !lock.is_locked_exclusive());
        assert!(lock.try_write().is_none());
        let a = MappedRwLockReadGuard::map(a, |a| a);
        let r = MappedRwLockReadGuard::try_map(b, |b| b.first());
        assert!(r.is_err());
        drop((a, r));
    }
    assert!(!lock.is_locked());
    assert!(RwLockReadGuard::try_map(lock.read(), |p| p.b.first()).is_err());
    assert!(RwLockWriteGuard::try_map(lock.write(), |p| p.b.first_mut()).is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        RwLockWriteGuard::map(lock.write(), |_| -> &mut u32 { panic!("map") })
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        RwLockReadGuard::map(lock.read(), |_| -> &u32 { panic!("map") })
    }));
    assert!(r.is_err());
    assert!(!lock.is_locked());
    assert!(lock.try_write().is_some());
}

// --- RwLock: upgradable reads and downgrades ---------------------------------

#[test]
fn rwlock_upgradable_read_semantics() {
    let lock = RwLock::new(1u32);
    let up = lock.upgradable_read();
    assert!(lock.is_locked() && !lock.is_locked_exclusive());
    // Shares with plain readers, excludes writers and a second upgradable.
    let r = lock.read();
    assert!(lock.try_upgradable_read().is_none());
    assert!(lock.try_write().is_none());
    // try_upgrade fails while a reader is inside, keeps the guard.
    let up = RwLockUpgradableReadGuard::try_upgrade(up).unwrap_err();
    drop(r);
    let mut w = RwLockUpgradableReadGuard::try_upgrade(up).expect("alone now");
    assert!(lock.is_locked_exclusive());
    *w = 2;
    // Write → upgradable → read.
    let up = RwLockWriteGuard::downgrade_to_upgradable(w);
    assert!(lock.try_read().is_some());
    assert!(lock.try_upgradable_read().is_none());
    let r = RwLockUpgradableReadGuard::downgrade(up);
    let up2 = lock.try_upgradable_read().expect("free after downgrade");
    assert_eq!(*r + *up2, 4);
    drop(r);
    let w = RwLockUpgradableReadGuard::upgrade(up2);
    let r = RwLockWriteGuard::downgrade(w);
    assert!(lock.try_write().is_none());
    assert!(lock.try_read().is_some());
    drop(r);
    assert!(!lock.is_locked());
    assert_eq!(format!("{:?}", lock.upgradable_read()), "2");

    // Through lock_api.
    let l: lock_api::RwLock<RawRwLock, u32> = lock_api::RwLock::new(0);
    let up = l.upgradable_read();
    let r = l.read();
    assert!(l.try_upgradable_read().is_none());
    drop(r);
    let mut w = lock_api::RwLockUpgradableReadGuard::upgrade(up);
    *w += 1;
    let up = lock_api::RwLockWriteGuard::downgrade_to_upgradable(w);
    let r = lock_api::RwLockUpgradableReadGuard::downgrade(up);
    assert!(l.try_upgradable_read().is_some());
    drop(r);
    let w = l.write();
    let r = lock_api::RwLockWriteGuard::downgrade(w);
    assert_eq!(*r, 1);
}

/// An upgrade waits for the readers inside, stops new plain readers while
/// it waits (`try_read` fails, `read_recursive` from a thread that holds a
/// read still gets in), and completes once they leave.
#[test]
fn rwlock_upgrade_waits_for_readers_and_blocks_new_ones() {
    watchdog(20, "upgrade", || {
        let lock = Arc::new(RwLock::new(0u32));
        let reader_in = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        let (l2, ri, rel) = (
            Arc::clone(&lock),
            Arc::clone(&reader_in),
            Arc::clone(&release),
        );
        let reader = thread::spawn(move || {
            let r = l2.read();
            ri.wait();
            rel.wait();
            // Holding a read while the upgrade waits: a recursive read
            // joins at once.
            let again = l2.read_recursive();
            assert_eq!(*r + *again, 0);
        });
        reader_in.wait();
        let l3 = Arc::clone(&lock);
        let upgrader = thread::spawn(move || {
            let up = l3.upgradable_read();
            let mut w = RwLockUpgradableReadGuard::upgrade(up);
            *w += 1;
        });
        thread::sleep(SETTLE);
        assert!(!upgrader.is_finished(), "upgrade waits for the reader");
        assert!(
            lock.try_read().is_none(),
            "new readers wait for the upgrade"
        );
        assert!(lock.try_upgradable_read().is_none());
        release.wait();
        reader.join().unwrap();
        upgrader.join().unwrap();
        assert_eq!(*lock.read(), 1);
    });
}

/// A second upgradable reader waits for the first, and wakes when it is
/// released, upgraded or downgraded.
#[test]
fn rwlock_upgradable_waiter_wakes() {
    watchdog(20, "upgradable waiter", || {
        for how in 0..3 {
            let lock = Arc::new(RwLock::new(0u32));
            let up = lock.upgradable_read();
            let l2 = Arc::clone(&lock);
            let waiter = thread::spawn(move || {
                let up = l2.upgradable_read();
                *RwLockUpgradableReadGuard::upgrade(up) += 1;
            });
            thread::sleep(SETTLE);
            assert!(!waiter.is_finished());
            assert!(lock.try_read().is_some(), "plain readers are not stopped");
            match how {
                0 => drop(up),
                1 => *RwLockUpgradableReadGuard::upgrade(up) += 10,
                _ => drop(RwLockUpgradableReadGuard::downgrade(up)),
            }
            waiter.join().unwrap();
            assert_eq!(*lock.read(), if how == 1 { 11 } else { 1 });
        }
    });
}

/// Timed RwLock acquisitions at zero, `Duration::MAX`, past and far-future
/// deadlines: no panic, no overflow; they fail against a holder and
/// succeed once it leaves.
#[test]
fn rwlock_timed_locking() {
    watchdog(30, "rwlock timed", || {
        let lock = Arc::new(RwLock::new(0u32));
        let now = Instant::now();
        let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        let far = now + CENTURY;
        for t in [Duration::ZERO, Duration::MAX] {
            assert!(lock.try_read_for(t).is_some());
            assert!(lock.try_write_for(t).is_some());
            assert!(lock.try_upgradable_read_for(t).is_some());
        }
        for d in [past, far] {
            assert!(lock.try_read_until(d).is_some());
            assert!(lock.try_write_until(d).is_some());
            assert!(lock.try_upgradable_read_until(d).is_some());
        }
        let w = lock.write();
        assert!(lock.try_read_for(Duration::ZERO).is_none());
        assert!(lock.try_read_until(past).is_none());
        assert!(lock.try_upgradable_read_until(past).is_none());
        let t0 = Instant::now();
        assert!(lock.try_write_for(Duration::from_millis(30)).is_none());
        assert!(t0.elapsed() >= Duration::from_millis(30));
        drop(w);
        let r = lock.read();
        assert!(lock.try_write_until(past).is_none());
        assert!(lock.try_write_for(Duration::from_millis(10)).is_none());
        assert!(lock.try_read_for(Duration::ZERO).is_some());
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || *l2.try_write_for(Duration::MAX).unwrap() += 1);
        thread::sleep(Duration::from_millis(20));
        drop(r);
        t.join().unwrap();
        let r = lock.read();
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || *l2.try_write_until(far).unwrap() += 1);
        thread::sleep(Duration::from_millis(20));
        drop(r);
        t.join().unwrap();
        assert_eq!(*lock.read(), 2);

        // Through lock_api.
        let l: lock_api::RwLock<RawRwLock, u32> = lock_api::RwLock::new(0);
        let w = l.write();
        assert!(l.try_read_for(Duration::ZERO).is_none());
        assert!(l.try_upgradable_read_until(past).is_none());
        drop(w);
        assert!(l.try_write_for(Duration::MAX).is_some());
        let up = l.try_upgradable_read_for(Duration::ZERO).unwrap();
        let r = l.read();
        let up =
            lock_api::RwLockUpgradableReadGuard::try_upgrade_for(up, Duration::ZERO).unwrap_err();
        drop(r);
        assert!(lock_api::RwLockUpgradableReadGuard::try_upgrade_until(up, far).is_ok());
    });
}

/// A timed upgrade that gives up (a reader stays inside) keeps the
/// upgradable read, and lets in the readers it stopped while it tried.
#[test]
fn rwlock_timed_upgrade_gives_up_and_lets_readers_in() {
    watchdog(30, "timed upgrade", || {
        for (timeout, until) in [
            (Duration::ZERO, false),
            (Duration::from_millis(150), false),
            (Duration::ZERO, true),
        ] {
            let lock = Arc::new(RwLock::new(0u32));
            let inside = Arc::new(Barrier::new(2));
            let leave = Arc::new(Barrier::new(2));
            let (l1, i1, lv1) = (Arc::clone(&lock), Arc::clone(&inside), Arc::clone(&leave));
            let holder = thread::spawn(move || {
                let r = l1.read();
                i1.wait();
                lv1.wait();
                drop(r);
            });
            inside.wait();
            let up = lock.upgradable_read();
            // A reader that arrives while the upgrade is being tried.
            let l2 = Arc::clone(&lock);
            let late = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                *l2.read()
            });
            let up = if until {
                // The `until` form, with a deadline that has passed.
                RwLockUpgradableReadGuard::try_upgrade_until(up, Instant::now())
            } else {
                RwLockUpgradableReadGuard::try_upgrade_for(up, timeout)
            }
            .expect_err("a reader is inside");
            // Still upgradable; the late reader gets in (holder and
            // upgradable read still held).
            let t0 = Instant::now();
            while !late.is_finished() {
                assert!(t0.elapsed() < Duration::from_secs(10), "late reader stuck");
                thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(late.join().unwrap(), 0);
            assert!(lock.try_upgradable_read().is_none());
            leave.wait();
            holder.join().unwrap();
            let w = RwLockUpgradableReadGuard::try_upgrade_for(up, Duration::from_secs(10))
                .expect("alone now");
            drop(w);
            assert!(!lock.is_locked());
        }
    });
}

/// A downgrade lets waiting readers in at once (no writer waiting).
#[test]
fn rwlock_downgrade_wakes_waiting_readers() {
    watchdog(20, "downgrade", || {
        let lock = Arc::new(RwLock::new(0u32));
        let mut w = lock.write();
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let l = Arc::clone(&lock);
                thread::spawn(move || *l.read())
            })
            .collect();
        thread::sleep(SETTLE);
        *w = 7;
        let r = RwLockWriteGuard::downgrade(w);
        // The readers finish while we still hold the downgraded read.
        for t in readers {
            assert_eq!(t.join().unwrap(), 7);
        }
        drop(r);
    });
}

/// A reader holding a read guard takes `read_recursive` while a writer is
/// queued and while an upgrade waits: no deadlock.
#[test]
fn rwlock_read_recursive_with_writer_queued() {
    watchdog(10, "read_recursive", || {
        let lock = Arc::new(RwLock::new(0u32));
        let first = lock.read();
        let l2 = Arc::clone(&lock);
        let writer = thread::spawn(move || *l2.write() += 1);
        thread::sleep(SETTLE);
        assert!(lock.try_read().is_none(), "writer queued");
        let second = lock.read_recursive();
        assert_eq!(*first + *second, 0);
        drop((first, second));
        writer.join().unwrap();
        assert_eq!(*lock.read(), 1);
    });
}

/// Readers, writers, upgraders and downgraders together: a writer is
/// always alone, an upgrade keeps what it read, nobody hangs.
#[test]
fn host_only_stress_rwlock_upgrades() {
    watchdog(90, "rwlock upgrades", || {
        // (value, writers inside, readers inside)
        let lock = Arc::new(RwLock::new((
            0u64,
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        )));
        let ts: Vec<_> = (0..6)
            .map(|i| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    let mut mine = 0u64;
                    for k in 0..5_000u32 {
                        match (i + k as usize) % 5 {
                            0 => {
                                let r = lock.read();
                                r.2.fetch_add(1, Ordering::SeqCst);
                                assert_eq!(r.1.load(Ordering::SeqCst), 0, "a writer inside");
                                r.2.fetch_sub(1, Ordering::SeqCst);
                            }
                            1 => {
                                let mut w = lock.write();
                                w.1.fetch_add(1, Ordering::SeqCst);
                                assert_eq!(w.2.load(Ordering::SeqCst), 0, "a reader inside");
                                w.0 += 1;
                                mine += 1;
                                w.1.fetch_sub(1, Ordering::SeqCst);
                            }
                            2 => {
                                let up = lock.upgradable_read();
                                let seen = up.0;
                                let mut w = RwLockUpgradableReadGuard::upgrade(up);
                                assert_eq!(w.0, seen, "a writer got in during the upgrade");
                                assert_eq!(w.2.load(Ordering::SeqCst), 0);
                                w.0 += 1;
                                mine += 1;
                            }
                            3 => {
                                let mut w = lock.write();
                                w.0 += 1;
                                mine += 1;
                                let seen = w.0;
                                let r = RwLockWriteGuard::downgrade(w);
                                assert_eq!(r.0, seen, "a writer got in during the downgrade");
                            }
                            _ => {
                                if let Some(up) = lock.try_upgradable_read() {
                                    match RwLockUpgradableReadGuard::try_upgrade(up) {
                                        Ok(mut w) => {
                                            w.0 += 1;
                                            mine += 1;
                                        }
                                        Err(up) => {
                                            let r = RwLockUpgradableReadGuard::downgrade(up);
                                            let _again = lock.read_recursive();
                                            drop(r);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        let total: u64 = ts.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(lock.read().0, total);
        assert!(!lock.is_locked());
    });
}
