//! [`NodeBox`]: one value on the node you chose, and [`Placed`], the trait
//! `#[numa(node = N)]` types implement.

use super::region::Region;
use super::{MemError, PageKind, Placement};
use crate::topology::NodeId;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Where a [`Placed`] type's values live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodePlacement {
    /// Every page on this node (`MPOL_BIND`).
    Node(NodeId),
    /// Pages spread round-robin over these nodes (`MPOL_INTERLEAVE`).
    Interleave(&'static [NodeId]),
}

/// A type whose values have a declared home: `#[numa(node = N)]` implements
/// it, and [`NodeBox::place`] uses it.
pub trait Placed: Sized {
    /// Where values of this type are placed.
    const PLACEMENT: NodePlacement;
}

/// A value in memory bound to a node (or interleaved over several): a
/// `Box` whose pages the kernel may put nowhere else.
///
/// Each `NodeBox` owns a mapping of its own, rounded up to whole pages, so
/// it suits large values and long-lived structures (a per-node table, a
/// lock-protected state block) rather than many small objects, for which an
/// [`Arena`](super::Arena) is the tool. Dropping it drops the value and
/// unmaps the pages.
///
/// # Examples
/// ```
/// use numakit::mem::NodeBox;
/// let table = NodeBox::new(0, [0u64; 4096])?;
/// assert_eq!(table.len(), 4096);
/// assert!(table.verify()?.is_all_on(table.node()));
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct NodeBox<T> {
    ptr: NonNull<T>,
    region: Region,
    _owns: PhantomData<T>,
}

// SAFETY: a NodeBox owns its T exclusively (like Box<T>); sending it sends
// the T.
unsafe impl<T: Send> Send for NodeBox<T> {}
// SAFETY: &NodeBox<T> only gives &T.
unsafe impl<T: Sync> Sync for NodeBox<T> {}

impl<T> NodeBox<T> {
    /// Move `value` into fresh memory on `node`.
    ///
    /// # Errors
    /// As [`ArenaBuilder::build`](super::ArenaBuilder::build): absent or
    /// memoryless node, not enough memory on it, or a refused syscall.
    pub fn new(node: impl Into<NodeId>, value: T) -> Result<Self, MemError> {
        // SAFETY: the closure initialises the whole slot with `value`.
        unsafe { Self::new_in_place(NodePlacement::Node(node.into()), |slot| slot.write(value)) }
    }

    /// Move `value` into fresh memory interleaved page by page over `nodes`.
    ///
    /// # Errors
    /// As [`NodeBox::new`], for any of the nodes.
    pub fn new_interleaved(nodes: &'static [NodeId], value: T) -> Result<Self, MemError> {
        // SAFETY: the closure initialises the whole slot with `value`.
        unsafe { Self::new_in_place(NodePlacement::Interleave(nodes), |slot| slot.write(value)) }
    }

    /// Move `value` into memory where `T` is declared to live.
    ///
    /// # Errors
    /// As [`NodeBox::new`].
    pub fn place(value: T) -> Result<Self, MemError>
    where
        T: Placed,
    {
        // SAFETY: the closure initialises the whole slot with `value`.
        unsafe { Self::new_in_place(T::PLACEMENT, |slot| slot.write(value)) }
    }

    /// Map and populate memory per `placement`, then let `init` write the
    /// value straight into it (no copy of the whole `T` through the stack).
    ///
    /// # Safety
    /// `init` must leave `*slot` fully initialised when it returns. If it
    /// panics, the memory is unmapped and nothing is dropped.
    ///
    /// # Errors
    /// As [`NodeBox::new`]; [`MemError::InvalidAlignment`] when `T` needs a
    /// larger alignment than a page.
    pub unsafe fn new_in_place(
        placement: NodePlacement,
        init: impl FnOnce(*mut T),
    ) -> Result<Self, MemError> {
        let page = PageKind::Normal.page_size();
        if align_of::<T>() > page {
            return Err(MemError::InvalidAlignment {
                align: align_of::<T>(),
            });
        }
        let len = size_of::<T>().max(1);
        let region = match placement {
            NodePlacement::Node(node) => Region::map(node, len, PageKind::Normal)?,
            NodePlacement::Interleave(nodes) => Region::map_interleaved(nodes, len)?,
        };
        region.populate(0, region.len())?;
        let ptr = region.base().cast::<T>();
        init(ptr.as_ptr());
        Ok(NodeBox {
            ptr,
            region,
            _owns: PhantomData,
        })
    }

    /// The node the value is bound to (the first node for an interleaved box).
    pub fn node(&self) -> NodeId {
        self.region.node()
    }

    /// The nodes an interleaved box spreads over (empty when bound to one).
    pub fn interleave_nodes(&self) -> &[NodeId] {
        self.region.interleave_nodes()
    }

    /// Bytes mapped for the value (whole pages).
    pub fn mapped_bytes(&self) -> usize {
        self.region.len()
    }

    /// Where the value's pages are, as the kernel reports them.
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<Placement, MemError> {
        self.region.placement(0, self.region.len())
    }

    /// Prove placement: every page on the node (bound boxes), or every page
    /// on one of the interleave nodes (interleaved boxes).
    ///
    /// # Errors
    /// [`MemError::Misplaced`] with the placement found when a page is
    /// elsewhere.
    pub fn verify(&self) -> Result<Placement, MemError> {
        let placement = self.placement()?;
        let nodes = self.region.interleave_nodes();
        let on_allowed: usize = if nodes.is_empty() {
            placement.on(self.node())
        } else {
            nodes.iter().map(|&n| placement.on(n)).sum()
        };
        if on_allowed == placement.pages() {
            Ok(placement)
        } else {
            Err(MemError::Misplaced {
                expected: self.node(),
                found: placement,
            })
        }
    }

    /// Move the value out (its memory is unmapped).
    pub fn into_inner(self) -> T {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the value is initialised; `this` is never dropped, so the
        // value is read exactly once, then the region is dropped by hand.
        unsafe {
            let value = this.ptr.as_ptr().read();
            drop(std::ptr::read(&this.region));
            value
        }
    }
}

impl<T> Deref for NodeBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: initialised at construction, alive until drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for NodeBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for NodeBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value is initialised and dropped only here; the region
        // (dropped after this) unmaps the memory.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
    }
}

impl<T: fmt::Debug> fmt::Debug for NodeBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeBox")
            .field("node", &self.node())
            .field("value", &**self)
            .finish()
    }
}
