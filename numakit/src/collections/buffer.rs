//! [`Slots`]: `capacity` uninitialised values of `T` in node-bound memory.

use crate::mem::{region::Region, MemError, PageKind, Placement};
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
    /// Map and populate room for `capacity` slots on `node`; `capacity` must
    /// be a power of two (checked by the caller, re-checked here).
    pub(crate) fn new(node: NodeId, capacity: usize) -> Result<Self, MemError> {
        if !capacity.is_power_of_two() {
            return Err(MemError::InvalidSize {
                requested: capacity as u64,
                reason: format!(
                    "ring capacities are powers of two; use {}",
                    capacity.checked_next_power_of_two().unwrap_or(1 << 30)
                ),
            });
        }
        if std::mem::align_of::<S>() > crate::sys::page_size() {
            return Err(MemError::InvalidAlignment {
                align: std::mem::align_of::<S>(),
            });
        }
        let bytes = capacity
            .checked_mul(size_of::<S>().max(1))
            .ok_or(MemError::SizeOverflow {
                count: capacity,
                size: size_of::<S>(),
            })?;
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
    pub(crate) fn placement(&self) -> Result<Placement, MemError> {
        self.region.placement(0, self.region.len())
    }
}
