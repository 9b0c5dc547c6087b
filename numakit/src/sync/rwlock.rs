//! [`RwLock`]: readers share, writers are exclusive; writers are preferred.
//!
//! One 32-bit state word (also the readers' futex word) and one futex word
//! for writers, the layout of std's futex `RwLock`:
//!
//! | `state` bits   | meaning |
//! |----------------|---------|
//! | 0..=29 (`MASK`) | number of readers holding the lock, or `MASK` itself = a writer holds it |
//! | 30 `READERS_WAITING` | readers sleep on `state`; set by a reader before `FUTEX_WAIT` |
//! | 31 `WRITERS_WAITING` | writers sleep on `writer_notify`; set by a writer before `FUTEX_WAIT` |
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
//! | unlocked, or only readers inside | shares | shares | shares |
//! | readers inside, a writer waits | waits (forever if this thread is one of the readers) | shares | `None` |
//! | a writer holds the lock | waits | waits | `None` |
//!
//! Waiters spin briefly (without writing) before they set a waiting bit and
//! park. No poisoning: a panic while holding a guard releases the lock.

use super::primitive::{budget, futex, spin_loop, AtomicU32};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

const READ_LOCKED: u32 = 1;
const MASK: u32 = (1 << 30) - 1;
const WRITE_LOCKED: u32 = MASK;
const MAX_READERS: u32 = MASK - 1;
const READERS_WAITING: u32 = 1 << 30;
const WRITERS_WAITING: u32 = 1 << 31;

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
    // Not while write-locked, not at the reader limit, and not while anyone
    // waits (writer preference; a waiting reader means a writer was there).
    state & MASK < MAX_READERS && !has_readers_waiting(state) && !has_writers_waiting(state)
}
#[inline]
fn is_recursive_read_lockable(state: u32) -> bool {
    // Not while write-locked (`MASK` > `MAX_READERS`) nor at the reader
    // limit; waiting bits are ignored, so a thread that already holds a
    // read lock (state & MASK ≥ 1) always gets another one at once.
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
            self.read_contended(is_read_lockable);
        }
    }

    /// Take a shared lock if that needs no waiting.
    #[inline]
    pub fn try_read(&self) -> bool {
        self.try_read_if(is_read_lockable)
    }

    /// Take a shared lock even while writers wait (no writer preference);
    /// wait only while a writer holds the lock. Never waits when the
    /// calling thread already holds a shared lock on `self`.
    #[inline]
    pub fn read_recursive(&self) {
        if !self.try_read_if(is_recursive_read_lockable) {
            self.read_contended(is_recursive_read_lockable);
        }
    }

    /// Take a shared lock if no writer holds the lock, even while writers
    /// wait; `true` whenever the calling thread already holds a shared lock
    /// (short of the 2³⁰ − 2 reader limit).
    #[inline]
    pub fn try_read_recursive(&self) -> bool {
        self.try_read_if(is_recursive_read_lockable)
    }

    #[inline]
    fn try_read_if(&self, lockable: fn(u32) -> bool) -> bool {
        let mut s = self.state.load(Relaxed);
        while lockable(s) {
            match self
                .state
                .compare_exchange_weak(s, s + READ_LOCKED, Acquire, Relaxed)
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
        // waiting writer, so only a waiting writer can need waking here. (A
        // recursive reader can get in with `READERS_WAITING` set and
        // `WRITERS_WAITING` clear only between a wake-up and the woken
        // writer's acquisition; that writer wakes the readers when it
        // unlocks. `loom_sync` models it.)
        if is_unlocked(s) && has_writers_waiting(s) {
            self.wake_writer_or_readers(s);
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

    /// Wait until `lockable` allows a shared lock and take it.
    #[cold]
    fn read_contended(&self, lockable: fn(u32) -> bool) {
        let mut s = self.spin_read();
        loop {
            if lockable(s) {
                match self
                    .state
                    .compare_exchange_weak(s, s + READ_LOCKED, Acquire, Relaxed)
                {
                    Ok(_) => return,
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            // At the reader limit (2³⁰ − 2 readers): wait like any reader;
            // a reader leaving wakes nobody, so poll instead of sleeping.
            if s & MASK == MAX_READERS {
                spin_loop();
                s = self.state.load(Relaxed);
                continue;
            }
            if !has_readers_waiting(s) {
                if let Err(now) =
                    self.state
                        .compare_exchange(s, s | READERS_WAITING, Relaxed, Relaxed)
                {
                    s = now;
                    continue;
                }
            }
            futex::wait(&self.state, s | READERS_WAITING);
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

    /// Whether a reader or writer holds the lock now.
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
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

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
