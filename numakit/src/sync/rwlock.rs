//! [`RwLock`]: readers share, writers are exclusive; writers are preferred.
//!
//! One 32-bit state word (also the readers' futex word) and one futex word
//! for writers, the layout of std's futex `RwLock`, plus three bits for
//! upgradable reads:
//!
//! | `state` bits   | meaning |
//! |----------------|---------|
//! | 0..=26 (`MASK`) | number of readers holding the lock (an upgradable reader counts as one), or `MASK` itself = a writer holds it |
//! | 27 `UPGRADABLE_WAITING` | a thread waiting for an upgradable read sleeps on `state` because another holds one; set only while `UPGRADABLE` is |
//! | 28 `UPGRADABLE` | an upgradable read is held (at most one); its holder is one of the counted readers |
//! | 29 `UPGRADING` | the upgradable reader waits (on `state`) for the other readers to leave; new plain readers wait |
//! | 30 `READERS_WAITING` | readers sleep on `state`; set by a reader before `FUTEX_WAIT` |
//! | 31 `WRITERS_WAITING` | writers sleep on `writer_notify`; set by a writer before `FUTEX_WAIT` |
//!
//! `UPGRADABLE_WAITING` and `UPGRADING` are set only while `UPGRADABLE` is,
//! and all three are cleared together when the upgradable read ends
//! (release, [`upgrade`](RwLockUpgradableReadGuard::upgrade) or
//! [`downgrade`](RwLockUpgradableReadGuard::downgrade)): an unlocked or
//! write-locked state never has them, so the waking logic of plain reads
//! and writes is unchanged. The release that clears a set
//! `UPGRADABLE_WAITING` wakes every sleeper on `state`; the reader whose
//! release leaves only the upgrader inside (`UPGRADING`, one reader) wakes
//! them too.
//!
//! `writer_notify` is a sequence number: a releaser bumps it and wakes one
//! writer; a writer waits on the value it read before re-checking `state`,
//! so a bump in between is never missed.
//!
//! **Writer preference**: a reader does not join readers already inside if
//! a writer is waiting (`WRITERS_WAITING`), so a stream of readers cannot
//! starve a writer. On release, waiting writers are woken before waiting
//! readers; readers are woken all at once. Readers can still be starved by
//! a continuous stream of writers; use a mutex if writes dominate.
//!
//! **Recursive reads.** Because of writer preference, a thread that holds
//! a read guard and calls [`read`](RwLock::read) again waits for the
//! waiting writer, which waits for the first guard: both wait forever (as
//! with `parking_lot` and `lock_api`; std's `RwLock` may deadlock or panic).
//! [`read_recursive`](RwLock::read_recursive) is the read for that case: it
//! joins readers already inside even while a writer waits, and waits only
//! while a writer *holds* the lock — so it never waits when the calling
//! thread already holds a read guard. It lets writers starve if every
//! reader uses it; use it where a thread may already hold the lock.
//!
//! | read while | `read` | `read_recursive` | `try_read` |
//! |------------|--------|------------------|------------|
//! | unlocked, or only readers inside (an upgradable one too) | shares | shares | shares |
//! | readers inside, a writer waits | waits (forever if this thread is one of the readers) | shares | `None` |
//! | readers inside, an upgrade waits for them | waits (forever if this thread is one of the readers) | shares | `None` |
//! | a writer holds the lock | waits | waits | `None` |
//!
//! **Upgradable reads** ([`upgradable_read`](RwLock::upgradable_read)):
//! one thread at a time may hold a read that it can later turn into the
//! write lock without letting a writer in between (`parking_lot`'s
//! upgradable read). It shares the lock with plain readers; an upgrade
//! first stops new plain readers, then waits for the ones inside to leave.
//! A thread that holds the upgradable read and also another read guard on
//! the same lock must not upgrade: it would wait for itself.
//!
//! Waiters spin briefly (without writing) before they set a waiting bit and
//! park. No poisoning: a panic while holding a guard releases the lock.

use super::primitive::{budget, futex, spin_loop, AtomicU32};
use super::wrapper::lock_until;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

const READ_LOCKED: u32 = 1;
const MASK: u32 = (1 << 27) - 1;
const WRITE_LOCKED: u32 = MASK;
const MAX_READERS: u32 = MASK - 1;
const UPGRADABLE_WAITING: u32 = 1 << 27;
const UPGRADABLE: u32 = 1 << 28;
const UPGRADING: u32 = 1 << 29;
const READERS_WAITING: u32 = 1 << 30;

/// The panic of a shared lock asked for at [`MAX_READERS`].
#[cold]
#[inline(never)]
fn reader_limit() -> ! {
    panic!(
        "numakit RwLock: {MAX_READERS} read locks are held at once, the most one lock \
         counts; read guards leaked with mem::forget (or raw shared locks never unlocked) \
         are never released, so drop the guards instead"
    )
}
const WRITERS_WAITING: u32 = 1 << 31;
/// The bits that end with the upgradable read.
const UPGRADE_BITS: u32 = UPGRADABLE | UPGRADABLE_WAITING | UPGRADING;

const SPINS: u32 = budget(64);

#[inline]
fn is_unlocked(state: u32) -> bool {
    state & MASK == 0
}
#[inline]
fn is_write_locked(state: u32) -> bool {
    state & MASK == WRITE_LOCKED
}
#[inline]
fn has_readers_waiting(state: u32) -> bool {
    state & READERS_WAITING != 0
}
#[inline]
fn has_writers_waiting(state: u32) -> bool {
    state & WRITERS_WAITING != 0
}
#[inline]
fn is_read_lockable(state: u32) -> bool {
    // Not while write-locked, not at the reader limit, not while anyone
    // waits (writer preference; a waiting reader means a writer was there,
    // or an upgrade), and not while an upgrade waits for readers to leave.
    state & MASK < MAX_READERS && state & (READERS_WAITING | WRITERS_WAITING | UPGRADING) == 0
}
#[inline]
fn is_upgradable_lockable(state: u32) -> bool {
    is_read_lockable(state) && state & UPGRADABLE == 0
}
/// An upgradable read waits only because another thread holds one: it
/// sleeps with `UPGRADABLE_WAITING` (not `READERS_WAITING`, which would stop
/// plain readers that nothing else stops).
#[inline]
fn only_upgradable_blocks(state: u32) -> bool {
    state & UPGRADABLE != 0
        && !is_write_locked(state)
        && state & MASK < MAX_READERS
        && state & (READERS_WAITING | WRITERS_WAITING | UPGRADING) == 0
}
#[inline]
fn is_recursive_read_lockable(state: u32) -> bool {
    // Not while write-locked (`MASK` > `MAX_READERS`) nor at the reader
    // limit; waiting and upgrade bits are ignored, so a thread that already
    // holds a read lock (state & MASK ≥ 1) always gets another one at once.
    state & MASK < MAX_READERS
}

/// The raw reader-writer lock behind [`RwLock`]; also a
/// [`lock_api::RawRwLock`].
pub struct RawRwLock {
    state: AtomicU32,
    writer_notify: AtomicU32,
}

impl RawRwLock {
    /// An unlocked lock.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            writer_notify: AtomicU32::new(0),
        }
    }
    /// An unlocked lock.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            writer_notify: AtomicU32::new(0),
        }
    }

    /// Take a shared (read) lock, waiting as long as it takes.
    #[inline]
    pub fn read(&self) {
        let s = self.state.load(Relaxed);
        if !is_read_lockable(s)
            || self
                .state
                .compare_exchange_weak(s, s + READ_LOCKED, Acquire, Relaxed)
                .is_err()
        {
            self.read_contended(is_read_lockable, READ_LOCKED);
        }
    }

    /// Take a shared lock if that needs no waiting.
    #[inline]
    pub fn try_read(&self) -> bool {
        self.try_read_if(is_read_lockable, READ_LOCKED)
    }

    /// Take a shared lock even while writers wait (no writer preference);
    /// wait only while a writer holds the lock. Never waits when the
    /// calling thread already holds a shared lock on `self`.
    #[inline]
    pub fn read_recursive(&self) {
        if !self.try_read_if(is_recursive_read_lockable, READ_LOCKED) {
            self.read_contended(is_recursive_read_lockable, READ_LOCKED);
        }
    }

    /// Take a shared lock if no writer holds the lock, even while writers
    /// wait; `true` whenever the calling thread already holds a shared lock
    /// (short of the 2²⁷ − 2 reader limit).
    #[inline]
    pub fn try_read_recursive(&self) -> bool {
        self.try_read_if(is_recursive_read_lockable, READ_LOCKED)
    }

    /// Take the upgradable shared lock: shared with plain readers, at most
    /// one at a time, and convertible to the exclusive lock with
    /// [`upgrade`](Self::upgrade). Waits while a writer holds or waits for
    /// the lock, or another thread holds the upgradable lock.
    #[inline]
    pub fn upgradable_read(&self) {
        if !self.try_upgradable_read() {
            self.read_contended(is_upgradable_lockable, READ_LOCKED | UPGRADABLE);
        }
    }

    /// Take the upgradable shared lock if that needs no waiting.
    #[inline]
    pub fn try_upgradable_read(&self) -> bool {
        self.try_read_if(is_upgradable_lockable, READ_LOCKED | UPGRADABLE)
    }

    /// Take a shared lock, waiting at most `timeout`; whether it was
    /// taken. A `timeout` that overflows [`Instant`] (such as
    /// [`Duration::MAX`]) waits like [`read`](Self::read).
    ///
    /// Timed acquisitions poll (`try_*`, a short spin, then naps of up to
    /// 1 ms) instead of setting a waiting bit, so leaving on timeout needs
    /// nobody's help. A timed writer therefore does not stop new readers
    /// (no writer preference for it): under a steady stream of readers it
    /// can time out.
    #[inline]
    pub fn try_read_for(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.try_read_until(deadline),
            None => {
                self.read();
                true
            }
        }
    }

    /// Take a shared lock, waiting until `deadline` at the latest; tries
    /// at least once.
    #[inline]
    pub fn try_read_until(&self, deadline: Instant) -> bool {
        self.try_read() || lock_until(deadline, || self.try_read())
    }

    /// Take the exclusive lock, waiting at most `timeout` (polling, see
    /// [`try_read_for`](Self::try_read_for)); whether it was taken.
    #[inline]
    pub fn try_write_for(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.try_write_until(deadline),
            None => {
                self.write();
                true
            }
        }
    }

    /// Take the exclusive lock, waiting until `deadline` at the latest;
    /// tries at least once.
    #[inline]
    pub fn try_write_until(&self, deadline: Instant) -> bool {
        self.try_write() || lock_until(deadline, || self.try_write())
    }

    /// Take the upgradable shared lock, waiting at most `timeout`
    /// (polling, see [`try_read_for`](Self::try_read_for)).
    #[inline]
    pub fn try_upgradable_read_for(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.try_upgradable_read_until(deadline),
            None => {
                self.upgradable_read();
                true
            }
        }
    }

    /// Take the upgradable shared lock, waiting until `deadline` at the
    /// latest; tries at least once.
    #[inline]
    pub fn try_upgradable_read_until(&self, deadline: Instant) -> bool {
        self.try_upgradable_read() || lock_until(deadline, || self.try_upgradable_read())
    }

    /// Release the upgradable shared lock.
    ///
    /// # Safety
    /// The calling thread holds the upgradable shared lock of this lock.
    #[inline]
    pub unsafe fn upgradable_unlock(&self) {
        let old = self.end_upgradable(|s| s - READ_LOCKED, Release);
        let s = (old - READ_LOCKED) & !UPGRADE_BITS;
        if is_unlocked(s) && has_writers_waiting(s) {
            self.wake_writer_or_readers(s);
        }
    }

    /// Turn the upgradable shared lock into the exclusive lock: stop new
    /// plain readers, wait for the readers inside to leave.
    ///
    /// # Safety
    /// The calling thread holds the upgradable shared lock of this lock
    /// (and no other shared lock of it, or this waits forever).
    #[inline]
    pub unsafe fn upgrade(&self) {
        // SAFETY: forwarded contract.
        if !unsafe { self.try_upgrade() } {
            self.upgrade_contended();
        }
    }

    /// Turn the upgradable shared lock into the exclusive lock if no other
    /// reader is inside; `false` (still holding the upgradable lock)
    /// otherwise.
    ///
    /// # Safety
    /// The calling thread holds the upgradable shared lock of this lock.
    #[inline]
    pub unsafe fn try_upgrade(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        while s & MASK == READ_LOCKED {
            match self
                .state
                .compare_exchange_weak(s, upgraded(s), Acquire, Relaxed)
            {
                Ok(_) => {
                    self.wake_upgradable_waiters(s);
                    return true;
                }
                Err(now) => s = now,
            }
        }
        false
    }

    /// As [`upgrade`](Self::upgrade), giving up after `timeout`; whether
    /// it upgraded (if not, the upgradable lock is still held). Overlong
    /// timeouts ([`Duration::MAX`]) wait like `upgrade`.
    ///
    /// # Safety
    /// As [`upgrade`](Self::upgrade).
    #[inline]
    pub unsafe fn try_upgrade_for(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            // SAFETY: forwarded contract.
            Some(deadline) => unsafe { self.try_upgrade_until(deadline) },
            None => {
                // SAFETY: forwarded contract.
                unsafe { self.upgrade() };
                true
            }
        }
    }

    /// As [`upgrade`](Self::upgrade), giving up at `deadline`; tries at
    /// least once. While it waits, new plain readers wait too
    /// (`UPGRADING`); giving up clears that and wakes them.
    ///
    /// # Safety
    /// As [`upgrade`](Self::upgrade).
    pub unsafe fn try_upgrade_until(&self, deadline: Instant) -> bool {
        // SAFETY: forwarded contract.
        if unsafe { self.try_upgrade() } {
            return true;
        }
        let mut s = self.state.fetch_or(UPGRADING, Relaxed) | UPGRADING;
        loop {
            if s & MASK == READ_LOCKED {
                match self
                    .state
                    .compare_exchange_weak(s, upgraded(s), Acquire, Relaxed)
                {
                    Ok(_) => {
                        self.wake_upgradable_waiters(s);
                        return true;
                    }
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                self.abandon_upgrade();
                return false;
            }
            futex::wait_timeout(&self.state, s, deadline - now);
            s = self.state.load(Relaxed);
        }
    }

    /// A timed upgrade gives up: clear `UPGRADING`; readers it stopped
    /// (asleep with `READERS_WAITING`) may enter again unless a writer
    /// waits (then the writer's turn comes first, as always).
    fn abandon_upgrade(&self) {
        let mut s = self.state.load(Relaxed);
        loop {
            let mut new = s & !UPGRADING;
            if !has_writers_waiting(s) {
                new &= !READERS_WAITING;
            }
            match self.state.compare_exchange_weak(s, new, Relaxed, Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if has_readers_waiting(s) && !has_writers_waiting(s) {
            futex::wake(&self.state, u32::MAX);
        }
    }

    /// Turn the upgradable shared lock into a plain shared lock (another
    /// thread may take the upgradable one).
    ///
    /// # Safety
    /// The calling thread holds the upgradable shared lock of this lock.
    #[inline]
    pub unsafe fn upgradable_downgrade(&self) {
        self.end_upgradable(|s| s, Release);
    }

    /// Turn the exclusive lock into a shared lock, letting waiting readers
    /// in unless a writer waits too (writer preference).
    ///
    /// # Safety
    /// The calling thread holds the exclusive lock of this lock.
    #[inline]
    pub unsafe fn downgrade(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.downgrade_to(READ_LOCKED) }
    }

    /// Turn the exclusive lock into the upgradable shared lock.
    ///
    /// # Safety
    /// The calling thread holds the exclusive lock of this lock.
    #[inline]
    pub unsafe fn downgrade_to_upgradable(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.downgrade_to(READ_LOCKED | UPGRADABLE) }
    }

    /// Replace the write lock by `held` (one reader, maybe upgradable);
    /// wake the waiting readers when no writer waits.
    ///
    /// # Safety
    /// The caller holds the exclusive lock.
    unsafe fn downgrade_to(&self, held: u32) {
        let mut s = self.state.load(Relaxed);
        loop {
            // Write-locked: no upgrade bits; only waiters add bits now.
            let mut new = (s & !MASK) | held;
            if !has_writers_waiting(s) {
                new &= !READERS_WAITING;
            }
            match self.state.compare_exchange_weak(s, new, Release, Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if has_readers_waiting(s) && !has_writers_waiting(s) {
            futex::wake(&self.state, u32::MAX);
        }
    }

    /// End the upgradable read: clear the upgrade bits and apply `count`
    /// to the state; wake threads waiting for the upgradable lock. The old
    /// state.
    fn end_upgradable(
        &self,
        count: impl Fn(u32) -> u32,
        order: std::sync::atomic::Ordering,
    ) -> u32 {
        let mut s = self.state.load(Relaxed);
        loop {
            match self
                .state
                .compare_exchange_weak(s, count(s) & !UPGRADE_BITS, order, Relaxed)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.wake_upgradable_waiters(s);
        s
    }

    /// After clearing `UPGRADABLE` from the state `old`: wake the threads
    /// waiting for it (they sleep on `state`, with any sleeping readers,
    /// which look and sleep again).
    #[inline]
    fn wake_upgradable_waiters(&self, old: u32) {
        if old & UPGRADABLE_WAITING != 0 {
            futex::wake(&self.state, u32::MAX);
        }
    }

    /// Wait (upgrading already set) until the upgrader is the only reader,
    /// then take the write lock.
    #[cold]
    fn upgrade_contended(&self) {
        let mut s = self.state.fetch_or(UPGRADING, Relaxed) | UPGRADING;
        loop {
            if s & MASK == READ_LOCKED {
                match self
                    .state
                    .compare_exchange_weak(s, upgraded(s), Acquire, Relaxed)
                {
                    Ok(_) => {
                        self.wake_upgradable_waiters(s);
                        return;
                    }
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            // The reader leaving us alone sees UPGRADING and one reader in
            // the state it produced, and wakes us: a change after this
            // load makes the wait return at once.
            futex::wait(&self.state, s);
            s = self.spin_until(|s| s & MASK == READ_LOCKED);
        }
    }

    #[inline]
    fn try_read_if(&self, lockable: fn(u32) -> bool, add: u32) -> bool {
        let mut s = self.state.load(Relaxed);
        while lockable(s) {
            match self
                .state
                .compare_exchange_weak(s, s + add, Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Release a shared lock.
    ///
    /// # Safety
    /// The calling thread holds a shared lock taken through this lock.
    #[inline]
    pub unsafe fn read_unlock(&self) {
        let s = self.state.fetch_sub(READ_LOCKED, Release) - READ_LOCKED;
        // Readers wait while only readers hold the lock only behind a
        // waiting writer or an upgrade, so only a waiting writer, or the
        // upgrader once it is alone, can need waking here. (A recursive
        // reader can get in with `READERS_WAITING` set and `WRITERS_WAITING`
        // clear only between a wake-up and the woken writer's acquisition;
        // that writer wakes the readers when it unlocks. `loom_sync` models
        // it.)
        if is_unlocked(s) && has_writers_waiting(s) {
            self.wake_writer_or_readers(s);
        } else if s & (MASK | UPGRADING) == UPGRADING | READ_LOCKED {
            futex::wake(&self.state, u32::MAX);
        }
    }

    /// Take the exclusive (write) lock, waiting as long as it takes.
    #[inline]
    pub fn write(&self) {
        if self
            .state
            .compare_exchange_weak(0, WRITE_LOCKED, Acquire, Relaxed)
            .is_err()
        {
            self.write_contended();
        }
    }

    /// Take the exclusive lock if that needs no waiting.
    #[inline]
    pub fn try_write(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        while is_unlocked(s) {
            match self
                .state
                .compare_exchange_weak(s, s + WRITE_LOCKED, Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Release the exclusive lock.
    ///
    /// # Safety
    /// The calling thread holds the exclusive lock taken through this lock.
    #[inline]
    pub unsafe fn write_unlock(&self) {
        let s = self.state.fetch_sub(WRITE_LOCKED, Release) - WRITE_LOCKED;
        if has_readers_waiting(s) || has_writers_waiting(s) {
            self.wake_writer_or_readers(s);
        }
    }

    /// Whether a reader or a writer holds the lock now.
    #[inline]
    pub fn is_locked(&self) -> bool {
        !is_unlocked(self.state.load(Relaxed))
    }

    /// Whether a writer holds the lock now.
    #[inline]
    pub fn is_locked_exclusive(&self) -> bool {
        is_write_locked(self.state.load(Relaxed))
    }

    /// Wait until `lockable` allows a shared lock and take it, adding `add`
    /// (one reader, and `UPGRADABLE` for the upgradable lock).
    #[cold]
    fn read_contended(&self, lockable: fn(u32) -> bool, add: u32) {
        let mut s = self.spin_read();
        loop {
            if lockable(s) {
                match self
                    .state
                    .compare_exchange_weak(s, s + add, Acquire, Relaxed)
                {
                    Ok(_) => return,
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            // At the reader limit: only guards that were never released
            // (leaked with `mem::forget`) get a program here, and they
            // never leave, so waiting would hang; say so instead, as std's
            // and parking_lot's locks do.
            if s & MASK == MAX_READERS {
                reader_limit();
            }
            let bit = if add & UPGRADABLE != 0 && only_upgradable_blocks(s) {
                UPGRADABLE_WAITING
            } else {
                READERS_WAITING
            };
            if s & bit == 0 {
                if let Err(now) = self.state.compare_exchange(s, s | bit, Relaxed, Relaxed) {
                    s = now;
                    continue;
                }
            }
            futex::wait(&self.state, s | bit);
            s = self.spin_read();
        }
    }

    #[cold]
    fn write_contended(&self) {
        let mut s = self.spin_write();
        // Once we have slept, other writers may be asleep too: keep the
        // WRITERS_WAITING bit set when we take the lock, so that our
        // release wakes them.
        let mut other_writers_waiting = 0;
        loop {
            if is_unlocked(s) {
                match self.state.compare_exchange_weak(
                    s,
                    s | WRITE_LOCKED | other_writers_waiting,
                    Acquire,
                    Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            if !has_writers_waiting(s) {
                if let Err(now) =
                    self.state
                        .compare_exchange(s, s | WRITERS_WAITING, Relaxed, Relaxed)
                {
                    s = now;
                    continue;
                }
            }
            other_writers_waiting = WRITERS_WAITING;
            // Read the sequence number before the last check of `state`, so
            // a wake between the check and the wait is not lost.
            let seq = self.writer_notify.load(Acquire);
            s = self.state.load(Relaxed);
            if is_unlocked(s) || !has_writers_waiting(s) {
                continue;
            }
            futex::wait(&self.writer_notify, seq);
            s = self.spin_write();
        }
    }

    /// The lock is unlocked and someone waits: wake a writer if one waits,
    /// the readers otherwise.
    #[cold]
    fn wake_writer_or_readers(&self, mut s: u32) {
        debug_assert!(is_unlocked(s));
        // Only writers wait: clear the bit and wake one. If that one finds
        // others asleep it sets the bit again (other_writers_waiting).
        if s == WRITERS_WAITING {
            match self.state.compare_exchange(s, 0, Relaxed, Relaxed) {
                Ok(_) => {
                    self.wake_writer();
                    return;
                }
                Err(now) => s = now,
            }
        }
        // Both wait: wake a writer first; readers keep waiting. If no writer
        // was actually asleep (it is still spinning, or took the lock), the
        // readers are woken below instead.
        if s == READERS_WAITING + WRITERS_WAITING {
            if self
                .state
                .compare_exchange(s, READERS_WAITING, Relaxed, Relaxed)
                .is_err()
            {
                // Someone else took over (locked, or changed the bits) and
                // will do the waking.
                return;
            }
            if self.wake_writer() {
                return;
            }
            s = READERS_WAITING;
        }
        if s == READERS_WAITING && self.state.compare_exchange(s, 0, Relaxed, Relaxed).is_ok() {
            futex::wake(&self.state, u32::MAX);
        }
    }

    /// Bump the writers' sequence and wake one; whether one was woken.
    fn wake_writer(&self) -> bool {
        self.writer_notify.fetch_add(1, Release);
        futex::wake(&self.writer_notify, 1) > 0
    }

    fn spin_until(&self, f: impl Fn(u32) -> bool) -> u32 {
        let mut spins = SPINS;
        loop {
            let s = self.state.load(Relaxed);
            if f(s) || spins == 0 {
                return s;
            }
            spin_loop();
            spins -= 1;
        }
    }

    /// Spin while a writer holds the lock and nobody is waiting yet.
    fn spin_write(&self) -> u32 {
        self.spin_until(|s| is_unlocked(s) || has_writers_waiting(s))
    }

    /// Spin while the lock is write-locked and nobody is waiting.
    fn spin_read(&self) -> u32 {
        self.spin_until(|s| !is_write_locked(s) || has_readers_waiting(s) || has_writers_waiting(s))
    }
}

/// The state after the upgradable reader (alone inside, state `s`) takes
/// the write lock: its read and the upgrade bits become `WRITE_LOCKED`;
/// the waiting bits stay.
#[inline]
fn upgraded(s: u32) -> u32 {
    (s & !(MASK | UPGRADE_BITS)) | WRITE_LOCKED
}

impl Default for RawRwLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRwLock")
            .field("locked", &self.is_locked())
            .field("exclusive", &self.is_locked_exclusive())
            .finish_non_exhaustive()
    }
}

#[cfg(not(loom))]
// SAFETY: shared locks exclude the exclusive one and vice versa (both are
// decided by CAS on `state` with Acquire; releases are Release); unlock
// functions are called by lock_api only for held locks.
unsafe impl lock_api::RawRwLock for RawRwLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawRwLock::new();
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock_shared(&self) {
        self.read()
    }
    #[inline]
    fn try_lock_shared(&self) -> bool {
        self.try_read()
    }
    #[inline]
    unsafe fn unlock_shared(&self) {
        // SAFETY: lock_api calls this only for a held shared lock.
        unsafe { self.read_unlock() }
    }
    #[inline]
    fn lock_exclusive(&self) {
        self.write()
    }
    #[inline]
    fn try_lock_exclusive(&self) -> bool {
        self.try_write()
    }
    #[inline]
    unsafe fn unlock_exclusive(&self) {
        // SAFETY: lock_api calls this only for a held exclusive lock.
        unsafe { self.write_unlock() }
    }
    #[inline]
    fn is_locked(&self) -> bool {
        RawRwLock::is_locked(self)
    }
    #[inline]
    fn is_locked_exclusive(&self) -> bool {
        RawRwLock::is_locked_exclusive(self)
    }
}

#[cfg(not(loom))]
// SAFETY: a recursive shared lock is a shared lock like the others (same
// CAS on `state`, same release); it only ignores the waiting bits, which
// do not guard the data.
unsafe impl lock_api::RawRwLockRecursive for RawRwLock {
    #[inline]
    fn lock_shared_recursive(&self) {
        self.read_recursive()
    }
    #[inline]
    fn try_lock_shared_recursive(&self) -> bool {
        self.try_read_recursive()
    }
}

#[cfg(not(loom))]
// SAFETY: the upgradable lock is a shared lock (counted with the readers,
// so it excludes writers) that at most one thread holds (`UPGRADABLE`);
// `upgrade` takes the write lock only once the upgrader is the only
// reader, in one CAS, so no writer gets in between.
unsafe impl lock_api::RawRwLockUpgrade for RawRwLock {
    #[inline]
    fn lock_upgradable(&self) {
        self.upgradable_read()
    }
    #[inline]
    fn try_lock_upgradable(&self) -> bool {
        self.try_upgradable_read()
    }
    #[inline]
    unsafe fn unlock_upgradable(&self) {
        // SAFETY: lock_api calls this only for a held upgradable lock.
        unsafe { self.upgradable_unlock() }
    }
    #[inline]
    unsafe fn upgrade(&self) {
        // SAFETY: as above.
        unsafe { RawRwLock::upgrade(self) }
    }
    #[inline]
    unsafe fn try_upgrade(&self) -> bool {
        // SAFETY: as above.
        unsafe { RawRwLock::try_upgrade(self) }
    }
}

#[cfg(not(loom))]
// SAFETY: the timed acquisitions succeed only through the `try_*` CASes
// (or the blocking forms for an unbounded timeout), which exclude as the
// untimed ones do.
unsafe impl lock_api::RawRwLockTimed for RawRwLock {
    type Duration = Duration;
    type Instant = Instant;
    #[inline]
    fn try_lock_shared_for(&self, timeout: Duration) -> bool {
        self.try_read_for(timeout)
    }
    #[inline]
    fn try_lock_shared_until(&self, deadline: Instant) -> bool {
        self.try_read_until(deadline)
    }
    #[inline]
    fn try_lock_exclusive_for(&self, timeout: Duration) -> bool {
        self.try_write_for(timeout)
    }
    #[inline]
    fn try_lock_exclusive_until(&self, deadline: Instant) -> bool {
        self.try_write_until(deadline)
    }
}

#[cfg(not(loom))]
// SAFETY: as for `RawRwLockTimed`, through `try_upgradable_read`.
unsafe impl lock_api::RawRwLockUpgradeTimed for RawRwLock {
    #[inline]
    fn try_lock_upgradable_for(&self, timeout: Duration) -> bool {
        self.try_upgradable_read_for(timeout)
    }
    #[inline]
    fn try_lock_upgradable_until(&self, deadline: Instant) -> bool {
        self.try_upgradable_read_until(deadline)
    }
    #[inline]
    unsafe fn try_upgrade_for(&self, timeout: Duration) -> bool {
        // SAFETY: lock_api calls this only for a held upgradable lock.
        unsafe { RawRwLock::try_upgrade_for(self, timeout) }
    }
    #[inline]
    unsafe fn try_upgrade_until(&self, deadline: Instant) -> bool {
        // SAFETY: as above.
        unsafe { RawRwLock::try_upgrade_until(self, deadline) }
    }
}

#[cfg(not(loom))]
// SAFETY: `downgrade` turns the write lock into one shared lock in one CAS.
unsafe impl lock_api::RawRwLockDowngrade for RawRwLock {
    #[inline]
    unsafe fn downgrade(&self) {
        // SAFETY: lock_api calls this only for a held exclusive lock.
        unsafe { RawRwLock::downgrade(self) }
    }
}

#[cfg(not(loom))]
// SAFETY: both conversions are one CAS from a held lock to the other kind.
unsafe impl lock_api::RawRwLockUpgradeDowngrade for RawRwLock {
    #[inline]
    unsafe fn downgrade_upgradable(&self) {
        // SAFETY: lock_api calls this only for a held upgradable lock.
        unsafe { self.upgradable_downgrade() }
    }
    #[inline]
    unsafe fn downgrade_to_upgradable(&self) {
        // SAFETY: lock_api calls this only for a held exclusive lock.
        unsafe { RawRwLock::downgrade_to_upgradable(self) }
    }
}

/// A reader-writer lock: any number of readers, or one writer; writers are
/// preferred over new readers. See the [module documentation](self).
///
/// A thread that already holds a read guard must not call [`read`] again
/// (it can wait forever behind a waiting writer); it uses
/// [`read_recursive`] instead, which never waits in that case.
///
/// [`read`]: RwLock::read
/// [`read_recursive`]: RwLock::read_recursive
///
/// # Panics
/// The shared locks ([`read`], [`read_recursive`], `upgradable_read`,
/// and the raw lock's) panic when 2²⁷ − 2 read locks are already held,
/// the most one lock counts, instead of waiting: in practice only guards
/// leaked with `mem::forget` get a program there, and as they are never
/// released, waiting would hang (std's and parking_lot's locks panic
/// there too). The `try_` forms return `false`/`None` instead, and the
/// timed ones do at their deadline; a timeout that overflows [`Instant`]
/// waits like the untimed form, so it panics too.
///
/// # Examples
/// ```
/// use numakit::sync::RwLock;
/// static CONFIG: RwLock<Vec<&str>> = RwLock::new(Vec::new());
///
/// CONFIG.write().push("verbose");
/// let (a, b) = (CONFIG.read(), CONFIG.read()); // readers share
/// assert_eq!(a.len() + b.len(), 2);
/// assert!(CONFIG.try_write().is_none());
/// ```
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: the lock owns its `T`; sending the lock sends the `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: a shared lock hands out `&T` to several threads at once (needs
// `T: Sync`) and `&mut T` to one thread at a time (needs `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock holding `value`; `const`, so it can initialise a
    /// `static`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }
    /// A new unlocked lock holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consume the lock and return the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access, waiting while a writer holds or waits for the lock.
    ///
    /// # Deadlocks
    /// Not reentrant. A thread that already holds a read guard on this lock
    /// and calls `read` again waits forever if a writer started waiting in
    /// between: the writer waits for the first guard, the second read waits
    /// for the writer (writer preference). Nothing detects it. Where the
    /// thread may already hold a read guard, call
    /// [`read_recursive`](Self::read_recursive), which does not wait then.
    /// Calling `read` (or [`write`](Self::write)) while holding the write
    /// guard waits forever too.
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.raw.read();
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Shared access, waiting only while a writer *holds* the lock: it
    /// joins the readers inside even if writers wait. When the calling
    /// thread already holds a read guard no writer can hold the lock, so
    /// this returns at once — the safe way to read again (as `parking_lot`'s
    /// `read_recursive`).
    ///
    /// Writers can starve while readers keep coming this way; use
    /// [`read`](Self::read) where the thread is known to hold nothing.
    ///
    /// # Examples
    /// ```
    /// use numakit::sync::RwLock;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let lock = Arc::new(RwLock::new(5));
    /// let first = lock.read();
    /// // A writer starts waiting for `first`.
    /// let writer = {
    ///     let lock = Arc::clone(&lock);
    ///     std::thread::spawn(move || *lock.write() += 1)
    /// };
    /// std::thread::sleep(Duration::from_millis(20));
    /// // `lock.read()` here could wait for the writer forever;
    /// // `read_recursive` joins `first` at once.
    /// let second = lock.read_recursive();
    /// assert_eq!(*first + *second, 10);
    /// drop((first, second));
    /// writer.join().unwrap();
    /// assert_eq!(*lock.read(), 6);
    /// ```
    #[inline]
    pub fn read_recursive(&self) -> RwLockReadGuard<'_, T> {
        self.raw.read_recursive();
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Shared access if that needs no waiting.
    #[inline]
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.raw.try_read().then(|| RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Shared access unless a writer holds the lock (waiting writers are
    /// passed, as in [`read_recursive`](Self::read_recursive)); never
    /// `None` while the calling thread holds a read guard.
    #[inline]
    pub fn try_read_recursive(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.raw.try_read_recursive().then(|| RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Exclusive access, waiting as long as it takes.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.raw.write();
        RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Exclusive access if that needs no waiting.
    #[inline]
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.raw.try_write().then(|| RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Shared access that can later become exclusive without letting a
    /// writer in between ([`RwLockUpgradableReadGuard::upgrade`]). Shares
    /// the lock with plain readers; one upgradable reader at a time. Waits
    /// while a writer holds or waits for the lock, or another thread holds
    /// the upgradable read.
    ///
    /// # Examples
    /// ```
    /// use numakit::sync::{RwLock, RwLockUpgradableReadGuard};
    /// let lock = RwLock::new(vec![1]);
    /// let up = lock.upgradable_read();
    /// assert!(lock.try_read().is_some(), "plain readers still share");
    /// if up.len() == 1 {
    ///     let mut w = RwLockUpgradableReadGuard::upgrade(up);
    ///     w.push(2);
    /// }
    /// assert_eq!(*lock.read(), [1, 2]);
    /// ```
    #[inline]
    pub fn upgradable_read(&self) -> RwLockUpgradableReadGuard<'_, T> {
        self.raw.upgradable_read();
        RwLockUpgradableReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// The upgradable read if that needs no waiting.
    #[inline]
    pub fn try_upgradable_read(&self) -> Option<RwLockUpgradableReadGuard<'_, T>> {
        self.raw
            .try_upgradable_read()
            .then(|| RwLockUpgradableReadGuard {
                lock: self,
                _not_send: PhantomData,
            })
    }

    /// Shared access, waiting at most `timeout`; `None` if it could not be
    /// had by then. Overlong timeouts ([`Duration::MAX`]) wait like
    /// [`read`](Self::read); zero tries once. Timed acquisitions poll
    /// ([`RawRwLock::try_read_for`] says what that means for fairness).
    #[inline]
    pub fn try_read_for(&self, timeout: Duration) -> Option<RwLockReadGuard<'_, T>> {
        self.raw.try_read_for(timeout).then(|| RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Shared access, waiting until `deadline` at the latest.
    #[inline]
    pub fn try_read_until(&self, deadline: Instant) -> Option<RwLockReadGuard<'_, T>> {
        self.raw.try_read_until(deadline).then(|| RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Exclusive access, waiting at most `timeout`; `None` if it could not
    /// be had by then. A timed writer polls and does not stop new readers.
    #[inline]
    pub fn try_write_for(&self, timeout: Duration) -> Option<RwLockWriteGuard<'_, T>> {
        self.raw.try_write_for(timeout).then(|| RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Exclusive access, waiting until `deadline` at the latest.
    #[inline]
    pub fn try_write_until(&self, deadline: Instant) -> Option<RwLockWriteGuard<'_, T>> {
        self.raw
            .try_write_until(deadline)
            .then(|| RwLockWriteGuard {
                lock: self,
                _not_send: PhantomData,
            })
    }

    /// The upgradable read, waiting at most `timeout`.
    #[inline]
    pub fn try_upgradable_read_for(
        &self,
        timeout: Duration,
    ) -> Option<RwLockUpgradableReadGuard<'_, T>> {
        self.raw
            .try_upgradable_read_for(timeout)
            .then(|| RwLockUpgradableReadGuard {
                lock: self,
                _not_send: PhantomData,
            })
    }

    /// The upgradable read, waiting until `deadline` at the latest.
    #[inline]
    pub fn try_upgradable_read_until(
        &self,
        deadline: Instant,
    ) -> Option<RwLockUpgradableReadGuard<'_, T>> {
        self.raw
            .try_upgradable_read_until(deadline)
            .then(|| RwLockUpgradableReadGuard {
                lock: self,
                _not_send: PhantomData,
            })
    }

    /// Whether a reader or writer holds the lock now.
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Whether a writer holds the lock now (stale as soon as it returns;
    /// for assertions and statistics).
    pub fn is_locked_exclusive(&self) -> bool {
        self.raw.is_locked_exclusive()
    }

    /// The data, through an exclusive borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Shared access to the data of an [`RwLock`]; `!Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a read guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a read guard exists only while a shared lock is held, so
        // no `&mut T` is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this guard holds one shared lock, released once.
        unsafe { self.lock.raw.read_unlock() }
    }
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// A read guard for a part of the data, keeping the shared lock until
    /// it is dropped. An associated function (`RwLockReadGuard::map(g, f)`),
    /// so that it does not shadow a method of `T`. If `f` panics the lock
    /// is released.
    #[inline]
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> MappedRwLockReadGuard<'a, U>
    where
        F: FnOnce(&T) -> &U,
    {
        let lock: &'a RwLock<T> = this.lock;
        // SAFETY: a shared lock is held: no `&mut T` is live. On unwind
        // `this` releases the lock after the borrow.
        let data: *const U = f(unsafe { &*lock.data.get() });
        std::mem::forget(this);
        MappedRwLockReadGuard {
            raw: &lock.raw,
            data,
            _marker: PhantomData,
        }
    }

    /// As [`map`](Self::map), where `f` may decline: `Err` gives the guard
    /// back.
    #[inline]
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<MappedRwLockReadGuard<'a, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        let lock: &'a RwLock<T> = this.lock;
        // SAFETY: as in `map`.
        match f(unsafe { &*lock.data.get() }) {
            Some(data) => {
                let data: *const U = data;
                std::mem::forget(this);
                Ok(MappedRwLockReadGuard {
                    raw: &lock.raw,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to the data of an [`RwLock`]; `!Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a write guard shares `&T` only (`&mut` needs `&mut guard`).
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the exclusive lock is held: no other reference is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the exclusive lock is held and `&mut self` is unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this guard holds the exclusive lock, released once.
        unsafe { self.lock.raw.write_unlock() }
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turn the write lock into a read lock without releasing it: no
    /// writer can get in between. Waiting readers are let in unless a
    /// writer waits too (writer preference).
    ///
    /// # Examples
    /// ```
    /// use numakit::sync::{RwLock, RwLockWriteGuard};
    /// let lock = RwLock::new(1);
    /// let mut w = lock.write();
    /// *w += 1;
    /// let r = RwLockWriteGuard::downgrade(w);
    /// assert_eq!(*r, 2);
    /// assert!(lock.try_read().is_some());
    /// assert!(lock.try_write().is_none());
    /// ```
    #[inline]
    pub fn downgrade(this: Self) -> RwLockReadGuard<'a, T> {
        let lock: &'a RwLock<T> = this.lock;
        std::mem::forget(this);
        // SAFETY: the write guard held the exclusive lock and is forgotten;
        // the read guard takes over the shared lock it becomes.
        unsafe { lock.raw.downgrade() };
        RwLockReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }

    /// Turn the write lock into the upgradable read lock without releasing
    /// it.
    #[inline]
    pub fn downgrade_to_upgradable(this: Self) -> RwLockUpgradableReadGuard<'a, T> {
        let lock: &'a RwLock<T> = this.lock;
        std::mem::forget(this);
        // SAFETY: as in `downgrade`.
        unsafe { lock.raw.downgrade_to_upgradable() };
        RwLockUpgradableReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }

    /// A write guard for a part of the data, keeping the exclusive lock
    /// until it is dropped. If `f` panics the lock is released.
    #[inline]
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> MappedRwLockWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let lock: &'a RwLock<T> = this.lock;
        // SAFETY: the exclusive lock is held: this is the only reference.
        // On unwind `this` releases the lock after the borrow.
        let data: *mut U = f(unsafe { &mut *lock.data.get() });
        std::mem::forget(this);
        MappedRwLockWriteGuard {
            raw: &lock.raw,
            data,
            _marker: PhantomData,
        }
    }

    /// As [`map`](Self::map), where `f` may decline: `Err` gives the guard
    /// back.
    #[inline]
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<MappedRwLockWriteGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        let lock: &'a RwLock<T> = this.lock;
        // SAFETY: as in `map`.
        match f(unsafe { &mut *lock.data.get() }) {
            Some(data) => {
                let data: *mut U = data;
                std::mem::forget(this);
                Ok(MappedRwLockWriteGuard {
                    raw: &lock.raw,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Upgradable shared access to the data of an [`RwLock`], from
/// [`RwLock::upgradable_read`]: shares the lock with plain readers, and
/// [`upgrade`](Self::upgrade)s to the write lock without letting a writer
/// in between. `!Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockUpgradableReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockUpgradableReadGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockUpgradableReadGuard<'a, T> {
    /// Become the writer: stop new plain readers, wait for the readers
    /// inside to leave, take the write lock.
    ///
    /// # Deadlocks
    /// Waits forever if the calling thread holds another read guard of the
    /// same lock (it waits for itself to leave).
    #[inline]
    pub fn upgrade(this: Self) -> RwLockWriteGuard<'a, T> {
        let lock: &'a RwLock<T> = this.lock;
        std::mem::forget(this);
        // SAFETY: the forgotten guard held the upgradable lock; the write
        // guard takes over what it becomes.
        unsafe { lock.raw.upgrade() };
        RwLockWriteGuard {
            lock,
            _not_send: PhantomData,
        }
    }

    /// Become the writer if no other reader is inside; `Err` gives the
    /// upgradable guard back.
    #[inline]
    pub fn try_upgrade(this: Self) -> Result<RwLockWriteGuard<'a, T>, Self> {
        // SAFETY: the guard holds the upgradable lock.
        if unsafe { this.lock.raw.try_upgrade() } {
            let lock: &'a RwLock<T> = this.lock;
            std::mem::forget(this);
            Ok(RwLockWriteGuard {
                lock,
                _not_send: PhantomData,
            })
        } else {
            Err(this)
        }
    }

    /// As [`upgrade`](Self::upgrade), giving up after `timeout`: `Err`
    /// gives the upgradable guard back. New plain readers wait while it
    /// tries, and are let in again when it gives up.
    #[inline]
    pub fn try_upgrade_for(this: Self, timeout: Duration) -> Result<RwLockWriteGuard<'a, T>, Self> {
        // SAFETY: the guard holds the upgradable lock.
        if unsafe { this.lock.raw.try_upgrade_for(timeout) } {
            let lock: &'a RwLock<T> = this.lock;
            std::mem::forget(this);
            Ok(RwLockWriteGuard {
                lock,
                _not_send: PhantomData,
            })
        } else {
            Err(this)
        }
    }

    /// As [`try_upgrade_for`](Self::try_upgrade_for), until `deadline`.
    #[inline]
    pub fn try_upgrade_until(
        this: Self,
        deadline: Instant,
    ) -> Result<RwLockWriteGuard<'a, T>, Self> {
        // SAFETY: the guard holds the upgradable lock.
        if unsafe { this.lock.raw.try_upgrade_until(deadline) } {
            let lock: &'a RwLock<T> = this.lock;
            std::mem::forget(this);
            Ok(RwLockWriteGuard {
                lock,
                _not_send: PhantomData,
            })
        } else {
            Err(this)
        }
    }

    /// Become a plain reader (another thread may then take the upgradable
    /// read).
    #[inline]
    pub fn downgrade(this: Self) -> RwLockReadGuard<'a, T> {
        let lock: &'a RwLock<T> = this.lock;
        std::mem::forget(this);
        // SAFETY: the forgotten guard held the upgradable lock.
        unsafe { lock.raw.upgradable_downgrade() };
        RwLockReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for RwLockUpgradableReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a shared lock is held: no `&mut T` is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockUpgradableReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this guard holds the upgradable lock, released once.
        unsafe { self.lock.raw.upgradable_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockUpgradableReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Shared access to a part of an [`RwLock`]'s data, from
/// [`RwLockReadGuard::map`]; releases the shared lock when dropped.
/// `!Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MappedRwLockReadGuard<'a, T: ?Sized> {
    raw: &'a RawRwLock,
    data: *const T,
    _marker: PhantomData<&'a T>,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MappedRwLockReadGuard<'_, T> {}

impl<'a, T: ?Sized> MappedRwLockReadGuard<'a, T> {
    /// Narrow the guard further.
    #[inline]
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> MappedRwLockReadGuard<'a, U>
    where
        F: FnOnce(&T) -> &U,
    {
        let raw = this.raw;
        // SAFETY: the shared lock is held while the guard lives.
        let data: *const U = f(unsafe { &*this.data });
        std::mem::forget(this);
        MappedRwLockReadGuard {
            raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Narrow the guard further if `f` agrees; `Err` gives it back.
    #[inline]
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<MappedRwLockReadGuard<'a, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        let raw = this.raw;
        // SAFETY: as in `map`.
        match f(unsafe { &*this.data }) {
            Some(data) => {
                let data: *const U = data;
                std::mem::forget(this);
                Ok(MappedRwLockReadGuard {
                    raw,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized> Deref for MappedRwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the shared lock is held; `data` points into the data.
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> Drop for MappedRwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the mapped guard took over one shared lock.
        unsafe { self.raw.read_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedRwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to a part of an [`RwLock`]'s data, from
/// [`RwLockWriteGuard::map`]; releases the write lock when dropped.
/// `!Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MappedRwLockWriteGuard<'a, T: ?Sized> {
    raw: &'a RawRwLock,
    data: *mut T,
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MappedRwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> MappedRwLockWriteGuard<'a, T> {
    /// Narrow the guard further.
    #[inline]
    pub fn map<U: ?Sized, F>(this: Self, f: F) -> MappedRwLockWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let raw = this.raw;
        // SAFETY: the exclusive lock is held; this is the only reference.
        let data: *mut U = f(unsafe { &mut *this.data });
        std::mem::forget(this);
        MappedRwLockWriteGuard {
            raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Narrow the guard further if `f` agrees; `Err` gives it back.
    #[inline]
    pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<MappedRwLockWriteGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        let raw = this.raw;
        // SAFETY: as in `map`.
        match f(unsafe { &mut *this.data }) {
            Some(data) => {
                let data: *mut U = data;
                std::mem::forget(this);
                Ok(MappedRwLockWriteGuard {
                    raw,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized> Deref for MappedRwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the exclusive lock is held; `data` points into the data.
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> DerefMut for MappedRwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` is unique.
        unsafe { &mut *self.data }
    }
}

impl<T: ?Sized> Drop for MappedRwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the mapped guard took over the exclusive lock.
        unsafe { self.raw.write_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedRwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// At the reader limit (what 2²⁷ − 2 leaked guards leave), every
    /// waiting shared lock panics naming the cause instead of spinning
    /// forever, the `try_` forms say no, and the lock stays usable.
    #[test]
    fn the_reader_limit_is_a_panic_not_a_hang() {
        let lock = RawRwLock::new();
        lock.state.store(MAX_READERS, Relaxed);
        let waits: [(&str, &dyn Fn()); 4] = [
            ("read", &|| lock.read()),
            ("read_recursive", &|| lock.read_recursive()),
            ("upgradable_read", &|| lock.upgradable_read()),
            // A timeout past `Instant`'s range waits like `read`.
            ("try_read_for(MAX)", &|| {
                lock.try_read_for(Duration::MAX);
            }),
        ];
        for (name, take) in waits {
            let e = catch_unwind(AssertUnwindSafe(take)).expect_err(name);
            let msg = e.downcast_ref::<String>().expect("a formatted message");
            assert!(
                msg.contains("mem::forget") && msg.contains(&MAX_READERS.to_string()),
                "{name}: {msg}"
            );
        }
        assert!(!lock.try_read() && !lock.try_read_recursive() && !lock.try_upgradable_read());
        assert!(!lock.try_read_for(Duration::from_millis(1)));
        assert_eq!(lock.state.load(Relaxed), MAX_READERS);
        // One fewer: a reader gets in again.
        lock.state.store(MAX_READERS - 1, Relaxed);
        lock.read();
        assert_eq!(lock.state.load(Relaxed) & MASK, MAX_READERS);
    }
}
