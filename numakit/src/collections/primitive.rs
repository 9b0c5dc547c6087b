//! What the rings are written against: std (and crossbeam's backoff)
//! normally, loom's models under `--cfg loom`, where waiting yields to
//! loom's scheduler so that models make progress.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

/// Exponential backoff for CAS retries and waits.
pub(crate) struct Backoff {
    #[cfg(not(loom))]
    inner: crossbeam_utils::Backoff,
}

impl Backoff {
    #[inline]
    pub(crate) fn new() -> Self {
        Backoff {
            #[cfg(not(loom))]
            inner: crossbeam_utils::Backoff::new(),
        }
    }

    /// After a lost race: spin a little.
    #[inline]
    pub(crate) fn spin(&self) {
        #[cfg(not(loom))]
        self.inner.spin();
        #[cfg(loom)]
        loom::thread::yield_now();
    }

    /// While another thread finishes its step: spin, then yield.
    #[inline]
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        self.inner.snooze();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}

/// A cell for slot contents: `std`'s `UnsafeCell` normally; loom's under
/// `--cfg loom`, so that a slot read racing with a write is reported.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// A cell for slot contents (`std`'s `UnsafeCell` with loom's API).
#[cfg(not(loom))]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    // The rings and the deque write their slots' cells in place outside
    // loom (a `MaybeUninit` needs no set-up); loom's cells are constructed.
    #[allow(dead_code)]
    #[inline]
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
