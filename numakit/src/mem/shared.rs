//! [`SharedArena`]: a node-strict bump arena that many threads allocate
//! from at once (atomic bump pointer).

use super::arena::{assert_no_drop, checked_layout, round_up, verified, ArenaBuilder, Populate};
use super::region::Region;
use super::{ArenaStats, MemError, PageKind, Placement};
use crate::topology::NodeId;
use std::alloc::Layout;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const ON_DEMAND_CHUNK: usize = 2 << 20;

/// A node-strict bump arena that is `Sync`: the bump pointer is advanced
/// with compare-and-swap, so threads allocate concurrently without a lock.
/// Growth of a [`Populate::OnDemand`] arena takes a lock, once per chunk.
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
    region: Region,
    start: usize,
    cur: AtomicUsize,
    limit: AtomicUsize,
    grow: Mutex<()>,
    populate: Populate,
}

impl ArenaBuilder {
    /// Build a [`SharedArena`] instead of an [`Arena`](super::Arena).
    ///
    /// # Errors
    /// As [`ArenaBuilder::build`].
    pub fn build_shared(self) -> Result<SharedArena, MemError> {
        let populate = self.populate_mode();
        let arena = self.build()?;
        let (region, start, limit) = arena.into_parts();
        Ok(SharedArena {
            region,
            start,
            cur: AtomicUsize::new(start),
            limit: AtomicUsize::new(limit),
            grow: Mutex::new(()),
            populate,
        })
    }
}

impl SharedArena {
    /// The node the arena's memory is bound to.
    pub fn node(&self) -> NodeId {
        self.region.node()
    }
    /// The arena's page kind.
    pub fn page_kind(&self) -> PageKind {
        self.region.kind()
    }
    /// Capacity in bytes (header included).
    pub fn capacity(&self) -> usize {
        self.region.len()
    }
    /// Bytes allocated so far (header included).
    pub fn used(&self) -> usize {
        self.cur.load(Ordering::Relaxed)
    }

    /// Allocate room for `layout`.
    ///
    /// # Errors
    /// [`MemError::Exhausted`], or an `OutOfNodeMemory`/`HugepagesUnavailable`
    /// error from growing a [`Populate::OnDemand`] arena.
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, MemError> {
        let base = self.region.base().as_ptr() as usize;
        let len = self.region.len();
        let mut cur = self.cur.load(Ordering::Relaxed);
        loop {
            let bump = round_up(base + cur, layout.align())
                .map(|a| a - base)
                .and_then(|off| Some((off, off.checked_add(layout.size())?)))
                .filter(|&(_, new)| new <= len);
            let Some((off, new)) = bump else {
                return Err(MemError::Exhausted {
                    node: self.node(),
                    requested: layout.size(),
                    align: layout.align(),
                    remaining: len - cur,
                    capacity: len,
                });
            };
            if new > self.limit.load(Ordering::Acquire) {
                self.grow_to(new)?;
            }
            match self
                .cur
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    // SAFETY: `off <= new <= len`: inside the mapping, and
                    // the CAS gave this thread `off..new` exclusively.
                    let p = unsafe { self.region.base().as_ptr().add(off) };
                    // SAFETY: derived from the non-null mapping base.
                    return Ok(unsafe { NonNull::new_unchecked(p) });
                }
                Err(now) => cur = now,
            }
        }
    }

    #[cold]
    fn grow_to(&self, new: usize) -> Result<(), MemError> {
        let _guard = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        let limit = self.limit.load(Ordering::Acquire);
        if new <= limit {
            return Ok(());
        }
        let chunk = ON_DEMAND_CHUNK.max(self.region.kind().page_size());
        let to = round_up(new, chunk)
            .unwrap_or(self.region.len())
            .min(self.region.len());
        self.region.populate(limit, to - limit)?;
        self.limit.store(to, Ordering::Release);
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
        let p = self.try_alloc_layout(Layout::new::<T>())?.cast::<T>();
        // SAFETY: fresh, aligned memory for one T owned by this call only.
        unsafe {
            p.as_ptr().write(value);
            Ok(&mut *p.as_ptr())
        }
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
    pub fn try_alloc_slice_fill_with<T, F>(
        &self,
        len: usize,
        mut f: F,
    ) -> Result<&mut [T], MemError>
    where
        F: FnMut(usize) -> T,
    {
        const { assert_no_drop::<T>() };
        let layout = Layout::array::<T>(len).map_err(|_| MemError::SizeOverflow {
            count: len,
            size: std::mem::size_of::<T>(),
        })?;
        let p = self.try_alloc_layout(layout)?.cast::<T>();
        for i in 0..len {
            // SAFETY: `i < len`, inside this call's fresh allocation.
            unsafe { p.as_ptr().add(i).write(f(i)) };
        }
        // SAFETY: all `len` elements are initialised and owned by this call.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), len) })
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
        *self.cur.get_mut() = self.start;
    }

    /// Return every whole unused page above the bump pointer to the OS;
    /// returns the bytes released (see [`Arena::trim`](super::Arena::trim)).
    ///
    /// # Errors
    /// [`MemError::Os`] if `madvise` fails.
    pub fn trim(&mut self) -> Result<usize, MemError> {
        let cur = *self.cur.get_mut();
        // SAFETY: `&mut self`: no allocation is in flight, and none handed
        // out lies at or above the bump pointer.
        let released = unsafe { self.region.discard(cur, self.region.len() - cur) }?;
        if self.populate != Populate::Lazy {
            let page = self.region.kind().page_size();
            let kept = round_up(cur, page).unwrap_or(cur).min(self.region.len());
            let limit = self.limit.get_mut();
            *limit = (*limit).min(kept);
        }
        Ok(released)
    }

    /// The arena's figures; `resident` is measured now with `mincore(2)`.
    ///
    /// # Errors
    /// [`MemError::Os`] if `mincore` fails.
    pub fn stats(&self) -> Result<ArenaStats, MemError> {
        Ok(ArenaStats {
            node: self.node(),
            page_kind: self.page_kind(),
            capacity: self.capacity(),
            used: self.used(),
            resident: self.region.resident()?,
        })
    }

    /// Where the pages of the used part are.
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<Placement, MemError> {
        self.region.placement(0, self.used())
    }

    /// Prove placement: every page of the used part is on the arena's node.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] when any page is elsewhere or not present.
    pub fn verify(&self) -> Result<Placement, MemError> {
        verified(self.placement()?, self.node())
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
