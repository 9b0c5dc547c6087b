//! [`SharedArena`]: a node-strict bump arena that many threads allocate
//! from at once (atomic bump pointer).

use super::arena::{
    array_layout, assert_no_drop, checked_layout, fill_with, write_value, ArenaBuilder, ArenaRegion,
};
use super::{ArenaStats, MemError, PageKind, PageMap};
use crate::topology::NodeId;
use std::alloc::Layout;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A node-strict bump arena that is `Sync`: the bump pointer is advanced
/// with compare-and-swap, so threads allocate concurrently without a lock.
/// Growth of a [`Populate::OnDemand`](super::Populate::OnDemand) arena takes a lock, once per chunk.
///
/// Like [`Arena`](super::Arena) it runs no destructors (types needing `Drop`
/// are refused at compile time); `reset` and `trim` need `&mut self`.
///
/// # Examples
/// ```
/// use numakit::mem::Arena;
/// let arena = Arena::builder(0).capacity(1 << 20).build_shared()?;
/// std::thread::scope(|s| {
///     for t in 0..4u64 {
///         let arena = &arena;
///         s.spawn(move || {
///             let v = arena.alloc_slice_fill_with(100, |i| t * 1000 + i as u64);
///             assert_eq!(v[99], t * 1000 + 99);
///         });
///     }
/// });
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct SharedArena {
    core: ArenaRegion,
    cur: AtomicUsize,
    limit: AtomicUsize,
    grow: Mutex<()>,
}

impl ArenaBuilder {
    /// Build a [`SharedArena`] instead of an [`Arena`](super::Arena).
    ///
    /// # Errors
    /// As [`ArenaBuilder::build`].
    pub fn build_shared(self) -> Result<SharedArena, MemError> {
        let (core, cur, limit) = self.build()?.into_parts();
        Ok(SharedArena {
            core,
            cur: AtomicUsize::new(cur),
            limit: AtomicUsize::new(limit),
            grow: Mutex::new(()),
        })
    }
}

impl SharedArena {
    /// The node the arena's memory is bound to.
    pub fn node(&self) -> NodeId {
        self.core.region.node()
    }
    /// The arena's page kind.
    pub fn page_kind(&self) -> PageKind {
        self.core.region.kind()
    }
    /// Capacity in bytes (header included).
    pub fn capacity(&self) -> usize {
        self.core.region.len()
    }
    /// Bytes allocated so far (header included).
    pub fn used(&self) -> usize {
        self.cur.load(Ordering::Relaxed)
    }

    /// Allocate room for `layout`.
    ///
    /// # Errors
    /// [`MemError::Exhausted`], or an `OutOfNodeMemory`/`HugepagesUnavailable`
    /// error from growing a [`Populate::OnDemand`](super::Populate::OnDemand) arena.
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, MemError> {
        let mut cur = self.cur.load(Ordering::Relaxed);
        loop {
            let (off, new) = self.core.place(cur, layout)?;
            if new > self.limit.load(Ordering::Acquire) {
                self.grow_to(new)?;
            }
            match self
                .cur
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                // SAFETY: `place` keeps `off <= new <= capacity`, and the
                // CAS gave this thread `off..new` exclusively.
                Ok(_) => return Ok(unsafe { self.core.handed_out(off, layout.size(), true) }),
                Err(now) => cur = now,
            }
        }
    }

    #[cold]
    fn grow_to(&self, new: usize) -> Result<(), MemError> {
        let _guard = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        let limit = self.limit.load(Ordering::Acquire);
        if new > limit {
            self.limit
                .store(self.core.grow(limit, new)?, Ordering::Release);
        }
        Ok(())
    }

    /// Allocate `size` bytes aligned to `align`, checking both.
    ///
    /// # Errors
    /// [`MemError::InvalidAlignment`], [`MemError::InvalidSize`], and as
    /// [`try_alloc_layout`](Self::try_alloc_layout).
    pub fn try_alloc_raw(&self, size: usize, align: usize) -> Result<NonNull<u8>, MemError> {
        self.try_alloc_layout(checked_layout(size, align)?)
    }

    /// Move `value` into the arena (`T` must not need `Drop`; checked at
    /// compile time).
    ///
    /// # Errors
    /// As [`try_alloc_layout`](Self::try_alloc_layout).
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn try_alloc<T>(&self, value: T) -> Result<&mut T, MemError> {
        const { assert_no_drop::<T>() };
        let p = self.try_alloc_layout(Layout::new::<T>())?;
        // SAFETY: fresh memory for one T, owned by this call, borrowed for
        // as long as `self`.
        Ok(unsafe { write_value(p, value) })
    }

    /// Move `value` into the arena.
    ///
    /// # Panics
    /// When the arena is exhausted.
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc<T>(&self, value: T) -> &mut T {
        self.try_alloc(value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A slice of `len` elements, element `i` being `f(i)` (`T` must not
    /// need `Drop`).
    ///
    /// # Errors
    /// [`MemError::SizeOverflow`], and as [`try_alloc_layout`](Self::try_alloc_layout).
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn try_alloc_slice_fill_with<T, F>(&self, len: usize, f: F) -> Result<&mut [T], MemError>
    where
        F: FnMut(usize) -> T,
    {
        const { assert_no_drop::<T>() };
        let p = self.try_alloc_layout(array_layout::<T>(len)?)?;
        // SAFETY: fresh memory for `len` Ts (no drop glue), owned by this
        // call, borrowed for as long as `self`.
        Ok(unsafe { fill_with(p, len, f) })
    }

    /// A slice of `len` elements, element `i` being `f(i)`.
    ///
    /// # Panics
    /// When the arena is exhausted or `len` overflows.
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc_slice_fill_with<T, F>(&self, len: usize, f: F) -> &mut [T]
    where
        F: FnMut(usize) -> T,
    {
        self.try_alloc_slice_fill_with(len, f)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Rewind the bump pointer; every allocation is forgotten.
    pub fn reset(&mut self) {
        self.core.forget(*self.cur.get_mut());
        *self.cur.get_mut() = self.core.start;
    }

    /// Return every whole unused page above the bump pointer to the OS;
    /// returns the bytes released (see [`Arena::trim`](super::Arena::trim)).
    ///
    /// # Errors
    /// [`MemError::Os`] if `madvise` fails.
    pub fn trim(&mut self) -> Result<usize, MemError> {
        let (cur, limit) = (*self.cur.get_mut(), *self.limit.get_mut());
        // SAFETY: `&mut self`: no allocation is in flight, and none handed
        // out lies at or above the bump pointer.
        let (released, limit) = unsafe { self.core.trim(cur, limit) }?;
        *self.limit.get_mut() = limit;
        Ok(released)
    }

    /// The arena's figures; `resident` is measured now with `mincore(2)`.
    ///
    /// # Errors
    /// [`MemError::Os`] if `mincore` fails.
    pub fn stats(&self) -> Result<ArenaStats, MemError> {
        self.core.stats(self.used())
    }

    /// Where the pages of the used part are.
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<PageMap, MemError> {
        self.core.placement(self.used())
    }

    /// Prove placement: every page of the used part is on the arena's node.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] when any page is elsewhere or not present.
    pub fn verify(&self) -> Result<PageMap, MemError> {
        self.core.verify(self.used())
    }
}

impl fmt::Debug for SharedArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedArena")
            .field("node", &self.node())
            .field("page_kind", &self.page_kind())
            .field("capacity", &self.capacity())
            .field("used", &self.used())
            .finish()
    }
}
