//! The guard API shared by the mutex-shaped locks ([`McsLock`],
//! [`TicketLock`]): one macro, so that both stay identical.
//!
//! [`McsLock`]: super::McsLock
//! [`TicketLock`]: super::TicketLock

/// Define `$Lock<T>` (a raw lock plus the data) and `$Guard<'a, T>` over a
/// raw lock type with inherent `new` (const), `lock`, `try_lock`,
/// `unlock` (unsafe) and `is_locked`.
macro_rules! mutex_wrapper {
    (
        $(#[$lock_meta:meta])*
        lock $Lock:ident;
        $(#[$guard_meta:meta])*
        guard $Guard:ident;
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
    };
}
pub(crate) use mutex_wrapper;
