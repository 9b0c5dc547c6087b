//! The fork gate: no thread holds a heap lock while the process forks, so
//! a child never inherits a lock held by a thread it does not have (and
//! never deadlocks on its first allocation that needs one).
//!
//! Every heap lock is taken through [`enter`] (see `core::lock`), which
//! counts the thread in one of [`STRIPES`] counters (picked by thread, so
//! threads rarely share a cache line) and then looks at [`FORKING`]. The
//! `pthread_atfork` prepare handler sets `FORKING` and waits until every
//! counter is 0; threads that arrive meanwhile step back out and wait for
//! the parent (or child) handler to clear it. Both sides use `SeqCst` (a
//! store then a load on each side, Dekker-style): either the forking
//! thread sees the entering thread's count, or the entering thread sees
//! `FORKING`.
//!
//! | who | does | then |
//! |---|---|---|
//! | a thread taking a lock | `count += 1`; reads `FORKING` | false, the thread is `FORKER`, or it holds a heap lock already: goes on; else `count -= 1`, waits for false, retries |
//! | `prepare` | waits for `FORKER` to be none (another thread's fork: see [`prepare`]), then `FORKER = self`; `FORKING = true`; waits for every count to be 0 (but its own, if it forks while it holds heap locks) | `fork` |
//! | `parent` | `FORKING = false`; `FORKER = none` | — |
//! | `child` | every count = 0 (stale: see [`reopen_in_child`]) but its own thread's; `FORKING = false`; `FORKER = none` | — |
//!
//! A thread that holds a heap lock and takes another one (a class list,
//! then the segments) goes on without looking: it is counted already, so
//! `prepare` waits for it, and stopping it would deadlock both.
//! The forking thread itself passes the gate while it is closed
//! ([`FORKER`]): fork handlers registered before the heaps' own run after
//! `prepare` and before `reopen`, and may allocate. The other threads are
//! held, so it cannot meet a lock they hold.
//!
//! The thread caches' fast paths take no lock and do not pass the gate: a
//! thread that is inside one when another forks does not exist in the
//! child, and neither does its use of its own cache.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// Counters; a power of two.
const STRIPES: usize = 64;

#[repr(align(128))]
struct Stripe(AtomicUsize);

static INSIDE: [Stripe; STRIPES] = [const { Stripe(AtomicUsize::new(0)) }; STRIPES];
static FORKING: AtomicBool = AtomicBool::new(false);
/// The thread (see [`me`]) whose fork closed the gate; 0: none.
static FORKER: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const`, no destructor: usable from inside the allocator and while
    // the thread is torn down.
    /// Heap locks (gate entries) the thread holds.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// A thread inside the gate (holding a heap lock); leaves on drop.
pub(crate) struct Inside(&'static AtomicUsize);

impl Drop for Inside {
    #[inline]
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// The calling thread's identity: the address of its [`DEPTH`] (unique
/// among live threads, never 0).
#[inline]
fn me() -> usize {
    DEPTH.with(|d| d as *const Cell<u32> as usize)
}

#[inline]
fn stripe(me: usize) -> &'static AtomicUsize {
    let i =
        (me >> 6).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (usize::BITS - STRIPES.trailing_zeros());
    &INSIDE[i & (STRIPES - 1)].0
}

/// Count the calling thread in; waits while a fork is being prepared,
/// unless the thread holds a heap lock already or is the forking one.
#[inline]
pub(crate) fn enter() -> Inside {
    let me = me();
    let s = stripe(me);
    let depth = DEPTH.with(Cell::get);
    loop {
        s.fetch_add(1, Ordering::SeqCst);
        if depth > 0 || !FORKING.load(Ordering::SeqCst) || FORKER.load(Ordering::Acquire) == me {
            DEPTH.with(|d| d.set(depth + 1));
            return Inside(s);
        }
        s.fetch_sub(1, Ordering::SeqCst);
        wait_for_fork();
    }
}

#[cold]
fn wait_for_fork() {
    while FORKING.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
}

/// 0: handlers not registered; 1: registered (or being registered, or
/// `pthread_atfork` failed: it is tried once).
static HANDLERS: AtomicU8 = AtomicU8::new(0);

/// Register the fork handlers, once per process. `pthread_atfork` may
/// allocate (through a preloaded `malloc` built on these heaps, too): the
/// state is set before the call, so such an allocation does not come back
/// here.
#[inline]
pub(crate) fn ensure_handlers() {
    if HANDLERS.load(Ordering::Relaxed) == 0 {
        register();
    }
}

#[cold]
fn register() {
    if HANDLERS
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        // Without handlers (ENOMEM) a fork while another thread holds a
        // heap lock can leave the child stuck, as with most allocators.
        let _ = crate::sys::thread::atfork(prepare, reopen, reopen_in_child);
    }
}

/// `pthread_atfork` prepare: wait for the gate to be free of other forks,
/// close it and wait for the threads inside to leave.
///
/// glibc (2.36 on) runs each prepare handler without holding its own fork
/// lock, so two threads that fork at once can both be here; they go
/// through one at a time. Were they to share the closed gate, the parent
/// handler of the one whose `fork` is done first would open it while the
/// other's `fork` still copies the process, and that child could inherit
/// a heap lock taken meanwhile by a thread it does not have. The thread
/// that waits here holds no heap lock, and the one it waits for needs
/// nothing of it to finish its `fork` (the handlers that ran before this
/// one were run, in the same order, by both). Not covered: a thread that
/// forks from a signal handler while it holds heap locks, at the same time
/// as another thread forks (each would wait for the other).
pub(crate) extern "C" fn prepare() {
    let me = me();
    loop {
        match FORKER.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            // A fork from inside one of this thread's own fork handlers.
            Err(owner) if owner == me => break,
            Err(_) => std::thread::yield_now(),
        }
    }
    FORKING.store(true, Ordering::SeqCst);
    // A thread that forks while it holds heap locks itself (from a signal
    // handler that interrupted it there) does not wait for its own counts:
    // it goes on in the child as in the parent, and gives them back there.
    let (own, held) = own_counts(me);
    for s in &INSIDE {
        let mine = if std::ptr::eq(&s.0, own) { held } else { 0 };
        while s.0.load(Ordering::SeqCst) != mine {
            std::thread::yield_now();
        }
    }
}

/// The calling thread's stripe and the heap locks it holds (its count
/// there).
fn own_counts(me: usize) -> (&'static AtomicUsize, usize) {
    (stripe(me), DEPTH.with(Cell::get) as usize)
}

/// `pthread_atfork` parent: open the gate again (`FORKING` first: the
/// next fork may close it as soon as `FORKER` is free).
pub(crate) extern "C" fn reopen() {
    FORKING.store(false, Ordering::SeqCst);
    FORKER.store(0, Ordering::Release);
}

/// `pthread_atfork` child: forget every count, then open the gate again.
///
/// `prepare` saw every counter at 0, but a thread arriving after it
/// looked at that thread's counter counts itself in before it sees
/// `FORKING` and steps back out. When `fork` copies the memory in that
/// window, the child inherits the count of a thread it does not have,
/// which nobody would ever take back: the child's own next `fork` would
/// wait for it forever. The child has one thread, the forking one: every
/// count but that thread's own is stale. The same
/// goes for a thread-exit key another thread was creating.
pub(crate) extern "C" fn reopen_in_child() {
    for s in &INSIDE {
        s.0.store(0, Ordering::SeqCst);
    }
    // Except the child's own thread's: the locks it holds if it forked
    // from a signal handler (see `prepare`), given back as it leaves them.
    let (own, held) = own_counts(me());
    own.store(held, Ordering::SeqCst);
    super::cache::forget_key_in_creation();
    FORKING.store(false, Ordering::SeqCst);
    FORKER.store(0, Ordering::Release);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// Run test `name` of this module in a child process of its own
    /// (`--exact`, one test thread) and return `true` there: other tests
    /// of this binary use heaps at the same time, so they would enter the
    /// gate the test closes and see the counters it resets. Returns
    /// `false` in the parent, once the child passed.
    /// Fail the child process (exit 101, naming `what`) if it is still
    /// running 60 s from now: a hang fails the run instead of stalling it.
    fn watchdog(what: &'static str) {
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(60));
            eprintln!("{what} for 60 s");
            std::process::exit(101);
        });
    }

    fn in_child(name: &str) -> bool {
        const CHILD: &str = "NUMAKIT_FORK_GATE_CHILD";
        if std::env::var_os(CHILD).is_some() {
            return true;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &format!("mem::heap::fork::tests::{name}"),
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the child failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child ran no test: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        false
    }

    #[test]
    fn the_child_forgets_counts_of_threads_it_does_not_have() {
        use std::time::Duration;
        if !in_child("the_child_forgets_counts_of_threads_it_does_not_have") {
            return;
        }
        // What a fork can leave in the child: the gate closed by `prepare`,
        // and the count of a parent thread caught between counting itself
        // in and stepping back out when the memory was copied.
        prepare();
        let stripe = &INSIDE[STRIPES / 2].0;
        stripe.fetch_add(1, Ordering::SeqCst);
        reopen_in_child();
        // The child forks again: `prepare` must not wait for that thread.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            prepare();
            let _ = tx.send(());
        });
        let passed = rx.recv_timeout(Duration::from_secs(10)).is_ok();
        if !passed {
            // Let the stuck `prepare` finish, so the other tests can run.
            stripe.fetch_sub(1, Ordering::SeqCst);
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        reopen();
        assert!(
            passed,
            "a fork in the child waited for a thread that exists only in the parent"
        );
        assert!(INSIDE.iter().all(|s| s.0.load(Ordering::SeqCst) == 0));
    }

    #[test]
    fn prepare_waits_for_threads_inside_and_blocks_new_ones() {
        if !in_child("prepare_waits_for_threads_inside_and_blocks_new_ones") {
            return;
        }
        use std::sync::atomic::AtomicU32;
        use std::sync::Arc;
        use std::time::Duration;
        watchdog("the fork gate test hung");
        let inside = enter();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let forker = std::thread::spawn(move || {
            prepare();
            // The forking thread passes its own closed gate: fork handlers
            // that run after `prepare` may allocate.
            drop(enter());
            d.store(true, Ordering::SeqCst);
            // Alive until the gate opens (a thread that exited could leave
            // its id to the late thread below).
            let _ = released.recv();
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !done.load(Ordering::SeqCst),
            "prepare passed a thread inside"
        );
        let entered = Arc::new(AtomicU32::new(0));
        let e = entered.clone();
        drop(inside);
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let late = std::thread::spawn(move || {
            let _g = enter();
            e.store(1, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(entered.load(Ordering::SeqCst), 0, "entered a closed gate");
        reopen();
        release.send(()).unwrap();
        forker.join().unwrap();
        late.join().unwrap();
        assert_eq!(entered.load(Ordering::SeqCst), 1);
        assert!(INSIDE.iter().all(|s| s.0.load(Ordering::SeqCst) == 0));
    }

    #[test]
    fn a_second_fork_does_not_open_the_gate_while_the_first_is_under_way() {
        if !in_child("a_second_fork_does_not_open_the_gate_while_the_first_is_under_way") {
            return;
        }
        use std::sync::atomic::AtomicU32;
        use std::time::Duration;
        watchdog("the concurrent-fork gate test hung");
        // glibc (2.36 on) runs each prepare handler without its own fork
        // lock held, so two threads that fork at once both run `prepare`,
        // and the first one's `fork` may still be copying the process when
        // the second one's parent handler runs. This thread is the first:
        // its gate is closed, its `fork` under way.
        prepare();
        // 0: not yet, 1: the second fork's `prepare` returned, 2: its
        // parent handler ran.
        let second = Arc::new(AtomicU32::new(0));
        let s = second.clone();
        let other = std::thread::spawn(move || {
            prepare();
            s.store(1, Ordering::SeqCst);
            reopen();
            s.store(2, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(100));
        // A thread taking a heap lock now would hand the first fork's child
        // a lock held by a thread it does not have.
        let entered = Arc::new(AtomicBool::new(false));
        let e = entered.clone();
        let late = std::thread::spawn(move || {
            let _g = enter();
            e.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(100));
        let entered_early = entered.load(Ordering::SeqCst);
        let second_early = second.load(Ordering::SeqCst);
        // The first fork is done.
        reopen();
        other.join().unwrap();
        late.join().unwrap();
        assert!(
            !entered_early,
            "a thread took a heap lock while a fork was under way (the second fork's parent \
             handler, {second_early}, opened the gate)"
        );
        assert_eq!(
            second_early, 0,
            "the second fork went on while the first one was under way"
        );
        assert!(entered.load(Ordering::SeqCst));
        assert_eq!(second.load(Ordering::SeqCst), 2);
        assert!(!FORKING.load(Ordering::SeqCst));
        assert_eq!(FORKER.load(Ordering::SeqCst), 0);
        assert!(INSIDE.iter().all(|s| s.0.load(Ordering::SeqCst) == 0));
    }

    #[test]
    fn a_thread_that_forks_while_it_holds_a_heap_lock_does_not_wait_for_itself() {
        if !in_child("a_thread_that_forks_while_it_holds_a_heap_lock_does_not_wait_for_itself") {
            return;
        }
        use std::time::Duration;
        watchdog("a fork by a lock holder waited for itself");
        // A signal handler that forks, run by a thread inside the heaps
        // (two locks: a class list, then the segments).
        let outer = enter();
        let inner = enter();
        prepare();
        // Other threads are held while the gate is closed.
        let entered = Arc::new(AtomicBool::new(false));
        let e = entered.clone();
        let late = std::thread::spawn(move || {
            drop(enter());
            e.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!entered.load(Ordering::SeqCst), "entered a closed gate");
        // The parent's side.
        reopen();
        late.join().unwrap();
        // The child's side: the thread still holds its locks there, and
        // gives them back as it leaves them.
        prepare();
        reopen_in_child();
        drop(inner);
        drop(outer);
        assert_eq!(DEPTH.with(Cell::get), 0);
        assert!(INSIDE.iter().all(|s| s.0.load(Ordering::SeqCst) == 0));
        // And it can fork again.
        prepare();
        reopen();
    }

    #[test]
    fn a_thread_holding_a_heap_lock_takes_another_while_the_gate_closes() {
        if !in_child("a_thread_holding_a_heap_lock_takes_another_while_the_gate_closes") {
            return;
        }
        watchdog("the nested-lock gate test hung");
        let outer = enter();
        let closed = Arc::new(AtomicBool::new(false));
        let c = closed.clone();
        let forker = std::thread::spawn(move || {
            prepare();
            c.store(true, Ordering::SeqCst);
            reopen();
        });
        while !FORKING.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // The gate is closing and waits for this thread: a second lock (a
        // class list, then the segments) must not wait for the gate.
        let inner = enter();
        assert!(
            !closed.load(Ordering::SeqCst),
            "prepare passed a lock holder"
        );
        drop(inner);
        drop(outer);
        forker.join().unwrap();
        assert!(closed.load(Ordering::SeqCst));
        assert_eq!(DEPTH.with(Cell::get), 0);
        assert!(INSIDE.iter().all(|s| s.0.load(Ordering::SeqCst) == 0));
    }
}
