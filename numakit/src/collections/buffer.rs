//! [`Slots`]: `capacity` uninitialised values of `T` in node-bound memory.

use crate::mem::{region::Region, MemError, PageKind, PageMap};
use crate::topology::NodeId;
use std::marker::PhantomData;
use std::mem::size_of;

/// Storage for a ring: `capacity` slots of `S` in a region bound to a node.
/// It never drops slot contents; the ring tracks which are initialised.
pub(crate) struct Slots<S> {
    region: Region,
    capacity: usize,
    _slots: PhantomData<S>,
}

impl<S> Slots<S> {
    /// Map and populate room for `capacity` slots on `node`. The one check
    /// of a ring's capacity, shared by every ring: at least one slot, a
    /// power of two, at most [`MAX_CAPACITY`](super::MAX_CAPACITY).
    /// Slots of a zero-sized type take no room: the mapping is one page
    /// (so the ring still has a node and a placement to prove), whatever
    /// the capacity.
    pub(crate) fn new(node: NodeId, capacity: usize) -> Result<Self, MemError> {
        if capacity == 0 {
            return Err(MemError::InvalidSize {
                requested: 0,
                reason: "a ring needs at least one slot; ask for a capacity of 1 or more \
                         (a power of two)"
                    .into(),
            });
        }
        if capacity > super::MAX_CAPACITY {
            return Err(MemError::InvalidSize {
                requested: capacity as u64,
                reason: format!(
                    "a ring holds at most {} (2^{}) slots",
                    super::MAX_CAPACITY,
                    super::MAX_CAPACITY.ilog2()
                ),
            });
        }
        if !capacity.is_power_of_two() {
            return Err(MemError::InvalidSize {
                requested: capacity as u64,
                reason: format!(
                    "ring capacities are powers of two; use {} (or {})",
                    capacity.next_power_of_two(),
                    capacity.next_power_of_two() / 2
                ),
            });
        }
        if std::mem::align_of::<S>() > crate::sys::page_size() {
            return Err(MemError::InvalidAlignment {
                align: std::mem::align_of::<S>(),
            });
        }
        let bytes = if size_of::<S>() == 0 {
            1
        } else {
            capacity
                .checked_mul(size_of::<S>())
                .ok_or(MemError::SizeOverflow {
                    count: capacity,
                    size: size_of::<S>(),
                })?
        };
        let region = Region::map(node, bytes, PageKind::Normal)?;
        region.populate(0, region.len())?;
        Ok(Slots {
            region,
            capacity,
            _slots: PhantomData,
        })
    }

    /// Slot `i` (`i < capacity`).
    #[inline]
    pub(crate) fn slot(&self, i: usize) -> *mut S {
        debug_assert!(i < self.capacity);
        // SAFETY: `i < capacity`, so the slot lies inside the region.
        unsafe { self.region.base().cast::<S>().as_ptr().add(i) }
    }

    /// The first slot, as a non-null pointer.
    #[inline]
    pub(crate) fn base(&self) -> std::ptr::NonNull<S> {
        self.region.base().cast::<S>()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn node(&self) -> NodeId {
        self.region.node()
    }

    /// Where every page of the slots is.
    pub(crate) fn placement(&self) -> Result<PageMap, MemError> {
        self.region.placement(0, self.region.len())
    }
}

/// Call `drop_one` for every position of `positions`, in order; if one
/// call panics, the remaining positions are still dropped while the panic
/// unwinds (as a `Vec` drops the rest of its elements when one element's
/// `Drop` panics), so a panicking `Drop` leaks nothing. A second panic
/// while unwinding aborts, as it does for a `Vec`.
pub(crate) fn drop_positions(positions: std::ops::Range<usize>, drop_one: impl FnMut(usize)) {
    struct Rest<F: FnMut(usize)> {
        next: usize,
        end: usize,
        drop_one: F,
    }
    impl<F: FnMut(usize)> Rest<F> {
        fn run(&mut self) {
            while self.next < self.end {
                let pos = self.next;
                self.next += 1;
                (self.drop_one)(pos);
            }
        }
    }
    impl<F: FnMut(usize)> Drop for Rest<F> {
        fn drop(&mut self) {
            // Only does work when `run` was interrupted by a panic.
            self.run();
        }
    }
    Rest {
        next: positions.start,
        end: positions.end,
        drop_one,
    }
    .run();
}
