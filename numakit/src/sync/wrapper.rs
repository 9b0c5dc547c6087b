//! The guard API shared by the mutex-shaped locks ([`McsLock`],
//! [`TicketLock`]): one macro, so that both stay identical; and the timed
//! acquisition both use.
//!
//! [`McsLock`]: super::McsLock
//! [`TicketLock`]: super::TicketLock

use super::primitive::{nap, SpinWait};
use std::time::{Duration, Instant};

/// Busy rounds of a timed waiter before it naps.
const TIMED_BUSY: u32 = 8;
/// First nap of a timed waiter; doubled up to `TIMED_NAP_MAX`.
const TIMED_NAP: Duration = Duration::from_micros(10);
/// Longest nap of a timed waiter: how late at most (plus timer slack) it
/// sees a release.
pub(crate) const TIMED_NAP_MAX: Duration = Duration::from_millis(1);

/// Acquire with `try_lock` until it succeeds or `deadline` passes: spin
/// briefly, then nap (10 µs doubling to [`TIMED_NAP_MAX`], never past the
/// deadline). A timed waiter does not queue, so leaving on timeout needs no
/// cooperation from anybody. `try_lock` is tried at least once, also for a
/// deadline in the past.
pub(crate) fn lock_until(deadline: Instant, mut try_lock: impl FnMut() -> bool) -> bool {
    let mut wait = SpinWait::new();
    let mut next_nap = TIMED_NAP;
    loop {
        if try_lock() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if !wait.spin(TIMED_BUSY, 0) {
            nap(next_nap.min(deadline - now));
            next_nap = (next_nap * 2).min(TIMED_NAP_MAX);
        }
    }
}

/// Define `$Lock<T>` (a raw lock plus the data), `$Guard<'a, T>` and
/// `$Mapped<'a, U>` over a raw lock type with inherent `new` (const),
/// `lock`, `try_lock`, `try_lock_for`, `try_lock_until`, `is_locked`, and
/// unsafe `unlock`, `unlock_fair` and `bump`.
macro_rules! mutex_wrapper {
    (
        $(#[$lock_meta:meta])*
        lock $Lock:ident;
        $(#[$guard_meta:meta])*
        guard $Guard:ident;
        $(#[$mapped_meta:meta])*
        mapped $Mapped:ident;
        raw $Raw:ident;
    ) => {
        $(#[$lock_meta])*
        pub struct $Lock<T: ?Sized> {
            raw: $Raw,
            data: ::core::cell::UnsafeCell<T>,
        }

        // SAFETY: the lock owns its `T`; moving the lock to another thread
        // moves the `T`, which is fine when `T: Send`.
        unsafe impl<T: ?Sized + Send> Send for $Lock<T> {}
        // SAFETY: the raw lock admits one guard at a time, and only a guard
        // reaches the `T`: sharing the lock hands `&mut T` to one thread at a
        // time, which needs `T: Send` (as `std::sync::Mutex`), not `T: Sync`.
        unsafe impl<T: ?Sized + Send> Sync for $Lock<T> {}

        impl<T> $Lock<T> {
            #[doc = concat!("A new unlocked `", stringify!($Lock), "` holding `value`.")]
            ///
            /// `const`, so it can initialise a `static`.
            #[cfg(not(loom))]
            #[inline]
            pub const fn new(value: T) -> Self {
                Self {
                    raw: $Raw::new(),
                    data: ::core::cell::UnsafeCell::new(value),
                }
            }

            #[doc = concat!("A new unlocked `", stringify!($Lock), "` holding `value`.")]
            #[cfg(loom)]
            pub fn new(value: T) -> Self {
                Self {
                    raw: $Raw::new(),
                    data: ::core::cell::UnsafeCell::new(value),
                }
            }

            /// Consume the lock and return the data (no locking needed: the
            /// lock is owned).
            #[inline]
            pub fn into_inner(self) -> T {
                self.data.into_inner()
            }
        }

        impl<T: ?Sized> $Lock<T> {
            /// Acquire the lock, waiting as long as it takes, and return a
            /// guard that releases it when dropped.
            ///
            /// Not reentrant: locking again on the thread that holds the
            /// guard waits forever.
            #[inline]
            pub fn lock(&self) -> $Guard<'_, T> {
                self.raw.lock();
                $Guard { lock: self, _not_send: ::core::marker::PhantomData }
            }

            /// Acquire the lock if that needs no waiting; `None` otherwise.
            #[inline]
            pub fn try_lock(&self) -> Option<$Guard<'_, T>> {
                if self.raw.try_lock() {
                    Some($Guard { lock: self, _not_send: ::core::marker::PhantomData })
                } else {
                    None
                }
            }

            /// Acquire the lock, waiting at most `timeout`; `None` if it is
            /// still held then.
            ///
            /// A `timeout` too long to add to [`Instant::now`] (such as
            /// [`Duration::MAX`]) waits like [`lock`](Self::lock); zero
            /// tries once. A timed waiter does not queue: it polls (a short
            /// spin, then naps of at most 1 ms), so queued waiters and
            /// running threads can overtake it, and it may see a release up
            /// to a nap late.
            ///
            /// [`Instant::now`]: ::std::time::Instant::now
            /// [`Duration::MAX`]: ::std::time::Duration::MAX
            #[inline]
            pub fn try_lock_for(&self, timeout: ::std::time::Duration) -> Option<$Guard<'_, T>> {
                if self.raw.try_lock_for(timeout) {
                    Some($Guard { lock: self, _not_send: ::core::marker::PhantomData })
                } else {
                    None
                }
            }

            /// Acquire the lock, waiting until `deadline` at the latest;
            /// `None` if it is still held then. A deadline in the past tries
            /// once. Waits as [`try_lock_for`](Self::try_lock_for) does.
            #[inline]
            pub fn try_lock_until(&self, deadline: ::std::time::Instant) -> Option<$Guard<'_, T>> {
                if self.raw.try_lock_until(deadline) {
                    Some($Guard { lock: self, _not_send: ::core::marker::PhantomData })
                } else {
                    None
                }
            }

            /// Whether some thread holds the lock now (stale as soon as it
            /// returns; for assertions and statistics).
            #[inline]
            pub fn is_locked(&self) -> bool {
                self.raw.is_locked()
            }

            /// The data, through an exclusive borrow of the lock (no locking
            /// needed).
            #[inline]
            pub fn get_mut(&mut self) -> &mut T {
                self.data.get_mut()
            }
        }

        impl<T: Default> Default for $Lock<T> {
            fn default() -> Self {
                Self::new(T::default())
            }
        }

        impl<T> From<T> for $Lock<T> {
            fn from(value: T) -> Self {
                Self::new(value)
            }
        }

        impl<T: ?Sized + ::core::fmt::Debug> ::core::fmt::Debug for $Lock<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut d = f.debug_struct(stringify!($Lock));
                match self.try_lock() {
                    Some(guard) => d.field("data", &&*guard),
                    None => d.field("data", &format_args!("<locked>")),
                };
                d.finish_non_exhaustive()
            }
        }

        $(#[$guard_meta])*
        #[must_use = "the lock is released as soon as the guard is dropped"]
        pub struct $Guard<'a, T: ?Sized> {
            lock: &'a $Lock<T>,
            /// `!Send`: the lock is released by the thread that took it.
            _not_send: ::core::marker::PhantomData<*const ()>,
        }

        // SAFETY: a shared guard only gives `&T`, so sharing it across
        // threads is sharing `&T`, which needs `T: Sync`.
        unsafe impl<T: ?Sized + Sync> Sync for $Guard<'_, T> {}

        impl<T: ?Sized> ::core::ops::Deref for $Guard<'_, T> {
            type Target = T;
            #[inline]
            fn deref(&self) -> &T {
                // SAFETY: the guard exists only while this thread holds the
                // lock, so no other reference to the data is live.
                unsafe { &*self.lock.data.get() }
            }
        }

        impl<T: ?Sized> ::core::ops::DerefMut for $Guard<'_, T> {
            #[inline]
            fn deref_mut(&mut self) -> &mut T {
                // SAFETY: as in `deref`; `&mut self` makes this the only
                // borrow through the guard.
                unsafe { &mut *self.lock.data.get() }
            }
        }

        impl<T: ?Sized> Drop for $Guard<'_, T> {
            #[inline]
            fn drop(&mut self) {
                // SAFETY: the guard was created by a successful lock on this
                // thread and is dropped once.
                unsafe { self.lock.raw.unlock() }
            }
        }

        impl<'a, T: ?Sized> $Guard<'a, T> {
            /// A guard for a part of the data (a field, an element), which
            /// keeps the lock held until it is dropped (`parking_lot`'s
            /// `MutexGuard::map`). An associated function, so that it does
            /// not shadow a method of `T`: `Guard::map(guard, f)`.
            ///
            /// If `f` panics the lock is released.
            #[inline]
            pub fn map<U: ?Sized, F>(this: Self, f: F) -> $Mapped<'a, U>
            where
                F: FnOnce(&mut T) -> &mut U,
            {
                let lock: &'a $Lock<T> = this.lock;
                let raw = &lock.raw;
                // SAFETY: the guard holds the lock, so this is the only
                // reference to the data; if `f` unwinds, `this` is dropped
                // after the borrow ends and releases the lock.
                let data: *mut U = f(unsafe { &mut *lock.data.get() });
                ::core::mem::forget(this);
                $Mapped { raw, data, _marker: ::core::marker::PhantomData }
            }

            /// As [`map`](Self::map), where `f` may decline: `Err` gives
            /// the original guard back (the lock still held).
            #[inline]
            pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<$Mapped<'a, U>, Self>
            where
                F: FnOnce(&mut T) -> Option<&mut U>,
            {
                let lock: &'a $Lock<T> = this.lock;
                let raw = &lock.raw;
                // SAFETY: as in `map`.
                match f(unsafe { &mut *lock.data.get() }) {
                    Some(data) => {
                        let data: *mut U = data;
                        ::core::mem::forget(this);
                        Ok($Mapped { raw, data, _marker: ::core::marker::PhantomData })
                    }
                    None => Err(this),
                }
            }

            /// Release the lock, run `f`, take the lock again (also when
            /// `f` panics, so the guard stays valid on unwind).
            pub fn unlocked<U>(this: &mut Self, f: impl FnOnce() -> U) -> U {
                struct Relock<'b>(&'b $Raw);
                impl Drop for Relock<'_> {
                    fn drop(&mut self) {
                        self.0.lock();
                    }
                }
                // SAFETY: the guard holds the lock; `Relock` takes it again
                // before the guard can be used or dropped.
                unsafe { this.lock.raw.unlock() };
                let _relock = Relock(&this.lock.raw);
                f()
            }

            /// Release the lock fairly: to the longest-waiting queued
            /// thread if there is one, not to whoever runs first. See the
            /// raw lock's `unlock_fair` for what that means for this lock.
            #[inline]
            pub fn unlock_fair(this: Self) {
                let lock: &'a $Lock<T> = this.lock;
                let raw = &lock.raw;
                ::core::mem::forget(this);
                // SAFETY: the guard held the lock and is forgotten, so it
                // is released once, here.
                unsafe { raw.unlock_fair() }
            }

            /// As [`unlocked`](Self::unlocked), releasing with
            /// [`unlock_fair`](Self::unlock_fair).
            pub fn unlocked_fair<U>(this: &mut Self, f: impl FnOnce() -> U) -> U {
                struct Relock<'b>(&'b $Raw);
                impl Drop for Relock<'_> {
                    fn drop(&mut self) {
                        self.0.lock();
                    }
                }
                // SAFETY: as in `unlocked`.
                unsafe { this.lock.raw.unlock_fair() };
                let _relock = Relock(&this.lock.raw);
                f()
            }

            /// Let a queued waiter have the lock and take it back
            /// afterwards; returns at once if nobody waits
            /// (`parking_lot`'s `MutexGuard::bump`).
            #[inline]
            pub fn bump(this: &mut Self) {
                // SAFETY: the guard holds the lock; `bump` returns with it
                // held again.
                unsafe { this.lock.raw.bump() }
            }
        }

        impl<T: ?Sized> $crate::sync::condvar::sealed::Sealed for $Guard<'_, T> {}

        impl<T: ?Sized> $crate::sync::condvar::CondvarGuard for $Guard<'_, T> {
            #[inline]
            fn unlocked_for_wait<U>(&mut self, f: impl FnOnce() -> U) -> U {
                Self::unlocked(self, f)
            }
        }

        impl<T: ?Sized + ::core::fmt::Debug> ::core::fmt::Debug for $Guard<'_, T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&**self, f)
            }
        }

        impl<T: ?Sized + ::core::fmt::Display> ::core::fmt::Display for $Guard<'_, T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&**self, f)
            }
        }

        $(#[$mapped_meta])*
        #[must_use = "the lock is released as soon as the guard is dropped"]
        pub struct $Mapped<'a, T: ?Sized> {
            raw: &'a $Raw,
            data: *mut T,
            /// Borrows the data mutably for `'a`; `!Send` (through the
            /// pointer) as the guard it came from.
            _marker: ::core::marker::PhantomData<&'a mut T>,
        }

        // SAFETY: a shared mapped guard only gives `&T`.
        unsafe impl<T: ?Sized + Sync> Sync for $Mapped<'_, T> {}

        impl<'a, T: ?Sized> $Mapped<'a, T> {
            /// Narrow the guard further; as the full guard's `map`.
            #[inline]
            pub fn map<U: ?Sized, F>(this: Self, f: F) -> $Mapped<'a, U>
            where
                F: FnOnce(&mut T) -> &mut U,
            {
                let raw = this.raw;
                // SAFETY: the lock is held; this is the only reference to
                // the part; on unwind `this` releases the lock.
                let data: *mut U = f(unsafe { &mut *this.data });
                ::core::mem::forget(this);
                $Mapped { raw, data, _marker: ::core::marker::PhantomData }
            }

            /// Narrow the guard further if `f` agrees; `Err` gives it back.
            #[inline]
            pub fn try_map<U: ?Sized, F>(this: Self, f: F) -> Result<$Mapped<'a, U>, Self>
            where
                F: FnOnce(&mut T) -> Option<&mut U>,
            {
                let raw = this.raw;
                // SAFETY: as in `map`.
                match f(unsafe { &mut *this.data }) {
                    Some(data) => {
                        let data: *mut U = data;
                        ::core::mem::forget(this);
                        Ok($Mapped { raw, data, _marker: ::core::marker::PhantomData })
                    }
                    None => Err(this),
                }
            }
        }

        impl<T: ?Sized> ::core::ops::Deref for $Mapped<'_, T> {
            type Target = T;
            #[inline]
            fn deref(&self) -> &T {
                // SAFETY: the lock is held while the mapped guard lives, and
                // `data` points into the locked data.
                unsafe { &*self.data }
            }
        }

        impl<T: ?Sized> ::core::ops::DerefMut for $Mapped<'_, T> {
            #[inline]
            fn deref_mut(&mut self) -> &mut T {
                // SAFETY: as in `deref`; `&mut self` is unique.
                unsafe { &mut *self.data }
            }
        }

        impl<T: ?Sized> Drop for $Mapped<'_, T> {
            #[inline]
            fn drop(&mut self) {
                // SAFETY: the mapped guard took over the full guard's hold
                // of the lock, released once, here.
                unsafe { self.raw.unlock() }
            }
        }

        impl<T: ?Sized + ::core::fmt::Debug> ::core::fmt::Debug for $Mapped<'_, T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&**self, f)
            }
        }

        impl<T: ?Sized + ::core::fmt::Display> ::core::fmt::Display for $Mapped<'_, T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&**self, f)
            }
        }
    };
}
pub(crate) use mutex_wrapper;
