//! [`NodeBox`]: one value on the node you chose, and [`Placed`], the trait
//! `#[numa(node = N)]` types implement.

use super::region::Region;
use super::{MemError, NodeHeap, PageKind, PageMap};
use crate::topology::NodeId;
use std::alloc::Layout;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where a [`Placed`] type's values live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodePlacement {
    /// Every page on this node (`MPOL_BIND`).
    Node(NodeId),
    /// Pages spread round-robin over these nodes (`MPOL_INTERLEAVE`).
    Interleave(&'static [NodeId]),
}

impl NodePlacement {
    /// Whether `self` and `other` put pages on the same nodes the same way:
    /// the same node, or interleaving over the same set of nodes (in any
    /// order: the kernel interleaves over a node mask).
    pub const fn same_as(self, other: NodePlacement) -> bool {
        match (self, other) {
            (NodePlacement::Node(a), NodePlacement::Node(b)) => a.get() == b.get(),
            (NodePlacement::Interleave(a), NodePlacement::Interleave(b)) => {
                const fn contains(set: &[NodeId], n: NodeId) -> bool {
                    let mut i = 0;
                    while i < set.len() {
                        if set[i].get() == n.get() {
                            return true;
                        }
                        i += 1;
                    }
                    false
                }
                let mut i = 0;
                while i < a.len() {
                    if !contains(b, a[i]) {
                        return false;
                    }
                    i += 1;
                }
                let mut i = 0;
                while i < b.len() {
                    if !contains(a, b[i]) {
                        return false;
                    }
                    i += 1;
                }
                true
            }
            _ => false,
        }
    }
}

impl fmt::Display for NodePlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodePlacement::Node(n) => write!(f, "node {n}"),
            NodePlacement::Interleave(nodes) => {
                f.write_str("nodes ")?;
                for (i, n) in nodes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n}")?;
                }
                f.write_str(" interleaved")
            }
        }
    }
}

/// A type whose values have a declared home: `#[numa(node = N)]` implements
/// it, and [`NodeBox::place`] uses it.
///
/// A declared home is not a suggestion. [`NodeBox::new`],
/// [`NodeBox::new_interleaved`] and [`NodeBox::new_in_place`] (and so
/// `numa_static!`) refuse a value of a `#[numa]` type for any other
/// placement with [`MemError::PlacementContradicted`], which names the
/// type, its declared placement and the one asked for;
/// [`NodeBox::new_overriding_placement`] is the explicit way round it.
///
/// How a generic function knows: stable Rust cannot ask, inside
/// `NodeBox::new::<T>`, whether `T` implements `Placed`. So `#[numa]`
/// records each type's declared placement in a process-wide table, keyed by
/// [`std::any::type_name`]: a type without generic parameters when the
/// program starts (an `.init_array` entry, as `ctor` does), and every type,
/// generic instances included, each time `place` builds one. `NodeBox`
/// looks the type up there (an atomic load and a walk of a short list,
/// nothing written to shared memory). Only a value of a *generic* `#[numa]`
/// type built without `place` and boxed before any value of that instance
/// was placed escapes the check.
///
/// A by-value field whose type is itself `#[numa]` for another placement
/// is refused at compile time by the struct's `#[numa]`.
pub trait Placed: Sized {
    /// Where values of this type are placed.
    const PLACEMENT: NodePlacement;
}

/// A declared placement, recorded by type name (see [`Placed`]). Entries
/// are leaked and never removed or changed: the list only grows at its head.
struct Declared {
    type_name: &'static str,
    placement: NodePlacement,
    next: *const Declared,
}

/// The head of the list of recorded `#[numa]` types (null: none). Readers
/// walk it without writing to shared memory, so the check does not bounce a
/// cache line between threads that make boxes.
static DECLARED: AtomicPtr<Declared> = AtomicPtr::new(std::ptr::null_mut());

/// The recorded placement of the type named `name`.
fn find_declared(name: &str) -> Option<NodePlacement> {
    let mut at = DECLARED.load(Ordering::Acquire).cast_const();
    while !at.is_null() {
        // SAFETY: every non-null pointer in the list comes from
        // `Box::leak` in `register_placed`, is published with Release
        // after the entry is written (read here with Acquire, directly or
        // through `next` of an entry published the same way) and is never
        // freed or changed afterwards.
        let entry: &'static Declared = unsafe { &*at };
        if entry.type_name == name {
            return Some(entry.placement);
        }
        at = entry.next;
    }
    None
}

/// Record `T`'s declared placement for [`NodeBox`]'s check. What `#[numa]`
/// expands to call; idempotent, lock-free, never panics (it may run before
/// `main`). Two threads recording the same type at once may both add it,
/// with the same placement: harmless.
#[doc(hidden)]
pub fn register_placed<T: Placed>() {
    let type_name = std::any::type_name::<T>();
    if find_declared(type_name).is_some() {
        return;
    }
    let entry: &'static mut Declared = Box::leak(Box::new(Declared {
        type_name,
        placement: T::PLACEMENT,
        next: std::ptr::null(),
    }));
    let mut head = DECLARED.load(Ordering::Acquire);
    loop {
        entry.next = head;
        match DECLARED.compare_exchange_weak(head, entry, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

/// `T`'s declared placement, if `T` is a recorded `#[numa]` type.
fn declared_placement<T>() -> Option<NodePlacement> {
    find_declared(std::any::type_name::<T>())
}

/// Refuse `placement` for a value of `T` when `T` is a `#[numa]` type
/// declared elsewhere (see [`Placed`]): the check every way of putting a
/// value on a node is meant to make.
pub(crate) fn check_declared<T>(placement: NodePlacement) -> Result<(), MemError> {
    match declared_placement::<T>() {
        Some(declared) if !declared.same_as(placement) => Err(MemError::PlacementContradicted {
            type_name: std::any::type_name::<T>(),
            declared,
            requested: placement,
        }),
        _ => Ok(()),
    }
}

/// What generated code uses to ask, for a concrete type, whether it is
/// [`Placed`] and where: `Probe::<T>::HOME` is the inherent const when
/// `T: Placed` and the [`NotPlaced`] trait's `None` otherwise (inherent
/// items whose bounds do not hold are skipped by name lookup). Only
/// meaningful where `T` is concrete; not a public API.
#[doc(hidden)]
pub struct Probe<T: ?Sized>(PhantomData<T>);

impl<T: Placed> Probe<T> {
    /// `T`'s declared placement.
    pub const HOME: Option<NodePlacement> = Some(T::PLACEMENT);
}

/// The fallback of [`Probe`]: no declared placement.
#[doc(hidden)]
pub trait NotPlaced {
    /// No declared placement.
    const HOME: Option<NodePlacement> = None;
}

impl<T: ?Sized> NotPlaced for Probe<T> {}

/// Whether a by-value field whose type declares `field` (`None`: no
/// declaration) may live in a struct placed per `outer`.
#[doc(hidden)]
pub const fn field_home_agrees(field: Option<NodePlacement>, outer: NodePlacement) -> bool {
    match field {
        None => true,
        Some(f) => f.same_as(outer),
    }
}

/// A value in memory bound to a node (or interleaved over several): a
/// `Box` whose pages the kernel may put nowhere else.
///
/// Where the memory comes from depends on the value's size:
///
/// - **Up to [`NodeBox::SHARED_MAX`] bytes, bound to one node**: a block of
///   the node's process-wide [`NodeHeap`] (made on first use; it takes the
///   node's memory 64 KiB at a time), sized and aligned to whole 128-byte blocks so
///   that two boxes never share a cache line (nor the adjacent-line
///   prefetch pair). Making one costs a heap allocation, not a syscall.
/// - **Larger, or interleaved**: a mapping of its own, rounded up to whole
///   pages, bound (or interleaved) with `mbind` and populated before the
///   value is written.
///
/// Either way every page is on the node — the heap's memory is bound to it
/// like a mapping of its own — and [`verify`](Self::verify) proves it.
/// Dropping the box drops the value and gives the memory back.
///
/// For very many small objects of one type a [`Slab`](super::Slab) or an
/// [`Arena`](super::Arena) is faster still.
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
    storage: Storage,
    _owns: PhantomData<T>,
}

/// The memory behind a [`NodeBox`]; dropping it gives the memory back (the
/// value is dropped first, by the box).
enum Storage {
    /// A mapping of its own.
    Own(Region),
    /// A block of a node's shared heap.
    Shared(HeapBlock),
}

/// A block of a shared per-node heap, freed on drop.
struct HeapBlock {
    heap: &'static NodeHeap,
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `heap` for `layout` (see `NodeBox::alloc`)
        // and the box that owned it is gone.
        unsafe { self.heap.dealloc(self.ptr, self.layout) };
    }
}

/// Node ids below this have a lock-free slot for their shared heap.
const FAST_NODES: usize = 64;

impl NodeHeap {
    /// The process-wide heap of `node`: made on first use, kept for the
    /// life of the process, shared by every caller (small
    /// [`NodeBox`]es and the [`Local`](super::Local) allocator use it).
    /// Later calls for the same node return the same heap, from a
    /// lock-free lookup for node ids below 64.
    ///
    /// `&'static NodeHeap` is an `Allocator`, so
    /// `Vec::new_in(NodeHeap::of(1)?)` keeps a vector on node 1 without a
    /// heap to own.
    ///
    /// # Errors
    /// As [`NodeHeap::new`]: [`MemError::Topology`] for a node that does
    /// not exist (naming those that do), [`MemError::MemorylessNode`] for
    /// a node without memory (naming those with some), and the errors of
    /// mapping the heap's first page. A failed call makes nothing; a later
    /// call tries again.
    ///
    /// # Examples
    /// ```
    /// use allocator_api2::vec::Vec;
    /// use numakit::mem::{MemError, NodeHeap};
    /// let heap = NodeHeap::of(0)?;
    /// assert!(std::ptr::eq(heap, NodeHeap::of(0)?));
    /// let mut v = Vec::new_in(heap);
    /// v.push(1u8);
    /// assert!(matches!(NodeHeap::of(u32::MAX), Err(MemError::Topology(_))));
    /// # Ok::<(), MemError>(())
    /// ```
    pub fn of(node: impl Into<NodeId>) -> Result<&'static NodeHeap, MemError> {
        shared_heap(node.into())
    }
}

/// The process-wide heap of `node` that small [`NodeBox`]es come from,
/// made on first use and kept for the life of the process.
fn shared_heap(node: NodeId) -> Result<&'static NodeHeap, MemError> {
    static FAST: [OnceLock<&'static NodeHeap>; FAST_NODES] =
        [const { OnceLock::new() }; FAST_NODES];
    static OTHERS: Mutex<Vec<(NodeId, &'static NodeHeap)>> = Mutex::new(Vec::new());
    let slot = FAST.get(node.get() as usize);
    if let Some(heap) = slot.and_then(OnceLock::get) {
        return Ok(heap);
    }
    // One lock for making heaps and for the node ids past the fast slots.
    let mut others = OTHERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(heap) = slot.and_then(OnceLock::get) {
        return Ok(heap);
    }
    if let Some(&(_, heap)) = others.iter().find(|(n, _)| *n == node) {
        return Ok(heap);
    }
    let heap: &'static NodeHeap = Box::leak(Box::new(NodeHeap::new(node)?));
    match slot {
        Some(slot) => {
            // Set under the lock, after the look above: nobody set it since.
            let _ = slot.set(heap);
        }
        None => others.push((node, heap)),
    }
    Ok(heap)
}

// SAFETY: a NodeBox owns its T exclusively (like Box<T>); sending it sends
// the T (needs `T: Send`). Its storage may be freed from any thread: a
// mapping of its own, or a block of a shared heap, which is Sync.
unsafe impl<T: Send> Send for NodeBox<T> {}
// SAFETY: &NodeBox<T> only gives &T (needs `T: Sync`) and read-only
// placement queries on the storage.
unsafe impl<T: Sync> Sync for NodeBox<T> {}

impl<T> NodeBox<T> {
    /// Move `value` into fresh memory on `node`.
    ///
    /// # Errors
    /// As [`ArenaBuilder::build`](super::ArenaBuilder::build): absent or
    /// memoryless node, not enough memory on it, or a refused syscall.
    /// [`MemError::PlacementContradicted`] when `T` is a `#[numa]` type
    /// declared for another placement (see [`Placed`]; use
    /// [`place`](Self::place), or
    /// [`new_overriding_placement`](Self::new_overriding_placement) to
    /// place it elsewhere on purpose).
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

    /// Move `value` into fresh memory per `placement`, even when `T` is a
    /// `#[numa]` type declared for another placement: the one explicit way
    /// to contradict a declaration (a copy of a node's data kept near a
    /// reader on another node, a test). [`verify`](Self::verify) checks
    /// against `placement`, not the declaration.
    ///
    /// # Errors
    /// As [`NodeBox::new`], without the check of `T`'s declaration.
    ///
    /// # Examples
    /// ```
    /// use numakit::{numa, NodeBox, NodeId, NodePlacement};
    ///
    /// #[numa(node = 0)]
    /// struct Counters {
    ///     hits: u64,
    /// }
    ///
    /// // Refused: `Counters` lives on node 0 (on a one-node machine
    /// // node 1 does not exist either; the declaration is checked first).
    /// let refused = NodeBox::new(1, Counters { hits: 0 });
    /// assert!(matches!(
    ///     refused,
    ///     Err(numakit::mem::MemError::PlacementContradicted { .. })
    /// ));
    /// // Said explicitly: accepted (here on node 0, which exists everywhere).
    /// let copy = NodeBox::new_overriding_placement(
    ///     NodePlacement::Node(NodeId::new(0)),
    ///     Counters { hits: 1 },
    /// )?;
    /// assert_eq!(copy.hits, 1);
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn new_overriding_placement(placement: NodePlacement, value: T) -> Result<Self, MemError> {
        // SAFETY: the closure initialises the whole slot with `value`.
        unsafe { Self::new_in_place_unchecked(placement, |slot| slot.write(value)) }
    }

    /// Move `value` into memory where `T` is declared to live.
    ///
    /// # Errors
    /// As [`NodeBox::new`].
    pub fn place(value: T) -> Result<Self, MemError>
    where
        T: Placed,
    {
        register_placed::<T>();
        // SAFETY: the closure initialises the whole slot with `value`.
        unsafe { Self::new_in_place(T::PLACEMENT, |slot| slot.write(value)) }
    }

    /// Take memory per `placement` (a shared-heap block or a mapping of its
    /// own, see the type's documentation), then let `init` write the value
    /// straight into it (no copy of the whole `T` through the stack).
    ///
    /// # Safety
    /// `init` must leave `*slot` fully initialised when it returns. If it
    /// panics, the memory is given back and nothing is dropped.
    ///
    /// # Errors
    /// As [`NodeBox::new`] (the declaration of a `#[numa]` `T` included);
    /// [`MemError::InvalidAlignment`] when `T` needs a larger alignment
    /// than a page.
    pub unsafe fn new_in_place(
        placement: NodePlacement,
        init: impl FnOnce(*mut T),
    ) -> Result<Self, MemError> {
        check_declared::<T>(placement)?;
        // SAFETY: the caller's contract is this function's.
        unsafe { Self::new_in_place_unchecked(placement, init) }
    }

    /// [`new_in_place`](Self::new_in_place) without the check of `T`'s
    /// declared placement.
    ///
    /// # Safety
    /// As [`new_in_place`](Self::new_in_place).
    unsafe fn new_in_place_unchecked(
        placement: NodePlacement,
        init: impl FnOnce(*mut T),
    ) -> Result<Self, MemError> {
        let page = PageKind::Normal.page_size();
        if align_of::<T>() > page {
            return Err(MemError::InvalidAlignment {
                align: align_of::<T>(),
            });
        }
        let storage = Self::alloc(placement)?;
        let ptr = match &storage {
            Storage::Own(region) => region.base().cast::<T>(),
            Storage::Shared(block) => block.ptr.cast::<T>(),
        };
        // If `init` panics, `storage` is dropped on the way out: the memory
        // goes back and nothing is dropped in it.
        init(ptr.as_ptr());
        Ok(NodeBox {
            ptr,
            storage,
            _owns: PhantomData,
        })
    }

    /// Memory for one `T` per `placement` (see the type's documentation).
    fn alloc(placement: NodePlacement) -> Result<Storage, MemError> {
        let len = size_of::<T>().max(1);
        match placement {
            NodePlacement::Node(node) if len <= Self::SHARED_MAX => {
                let heap = shared_heap(node)?;
                let size = len.next_multiple_of(Self::SHARED_ALIGN);
                let align = align_of::<T>().max(Self::SHARED_ALIGN);
                let layout = Layout::from_size_align(size, align).map_err(|_| {
                    MemError::InvalidAlignment {
                        align: align_of::<T>(),
                    }
                })?;
                let ptr = heap.try_alloc_layout(layout)?;
                Ok(Storage::Shared(HeapBlock { heap, ptr, layout }))
            }
            NodePlacement::Node(node) => {
                let region = Region::map(node, len, PageKind::Normal)?;
                region.populate(0, region.len())?;
                Ok(Storage::Own(region))
            }
            NodePlacement::Interleave(nodes) => {
                let region = Region::map_interleaved(nodes, len)?;
                region.populate(0, region.len())?;
                Ok(Storage::Own(region))
            }
        }
    }

    /// Values up to this size, bound to one node, come from the node's
    /// shared heap; larger ones get a mapping of their own.
    pub const SHARED_MAX: usize = 4096;
    /// Size and alignment granule of shared-heap boxes: no two share a
    /// 128-byte block.
    const SHARED_ALIGN: usize = 128;

    /// The node the value is bound to (the first node for an interleaved box).
    pub fn node(&self) -> NodeId {
        match &self.storage {
            Storage::Own(region) => region.node(),
            Storage::Shared(block) => block.heap.node(),
        }
    }

    /// The nodes an interleaved box spreads over (empty when bound to one).
    pub fn interleave_nodes(&self) -> &[NodeId] {
        match &self.storage {
            Storage::Own(region) => region.interleave_nodes(),
            Storage::Shared(_) => &[],
        }
    }

    /// Bytes of node memory held for the value: whole pages for a box with
    /// a mapping of its own, the heap block (a multiple of 128 bytes) for
    /// a small one.
    pub fn mapped_bytes(&self) -> usize {
        match &self.storage {
            Storage::Own(region) => region.len(),
            Storage::Shared(block) => block.layout.size(),
        }
    }

    /// Where the value's pages are, as the kernel reports them (for a
    /// small box, the one or two pages its block lies on).
    ///
    /// # Errors
    /// [`MemError::Os`] if `move_pages` fails.
    pub fn placement(&self) -> Result<PageMap, MemError> {
        match &self.storage {
            Storage::Own(region) => region.placement(0, region.len()),
            Storage::Shared(block) => super::placement::locate_with_step(
                block.ptr.as_ptr(),
                block.layout.size(),
                crate::sys::page_size(),
                block.heap.node(),
            ),
        }
    }

    /// Prove placement: every page on the node (bound boxes), or every page
    /// on one of the interleave nodes (interleaved boxes).
    ///
    /// # Errors
    /// [`MemError::Misplaced`] with the placement found when a page is
    /// elsewhere.
    pub fn verify(&self) -> Result<PageMap, MemError> {
        let placement = self.placement()?;
        let nodes = self.interleave_nodes();
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

    /// Move the value out (its memory is given back).
    pub fn into_inner(self) -> T {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the value is initialised; `this` is never dropped, so the
        // value is read exactly once, then the storage is dropped by hand.
        unsafe {
            let value = this.ptr.as_ptr().read();
            drop(std::ptr::read(&this.storage));
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
        // SAFETY: the value is initialised and dropped only here; the
        // storage (dropped after this) gives the memory back.
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

#[cfg(test)]
mod tests {
    use super::*;

    static ZERO_ONE: [NodeId; 2] = [NodeId::new(0), NodeId::new(1)];
    static ONE_ZERO: [NodeId; 2] = [NodeId::new(1), NodeId::new(0)];
    static ZERO: [NodeId; 1] = [NodeId::new(0)];
    static ZERO_TWO: [NodeId; 2] = [NodeId::new(0), NodeId::new(2)];

    #[test]
    fn same_as_compares_nodes_and_interleave_sets() {
        use NodePlacement::{Interleave, Node};
        let n = |i| Node(NodeId::new(i));
        assert!(n(0).same_as(n(0)));
        assert!(!n(0).same_as(n(1)));
        assert!(!n(u32::MAX).same_as(n(0)));
        assert!(Interleave(&ZERO_ONE).same_as(Interleave(&ONE_ZERO)));
        assert!(!Interleave(&ZERO_ONE).same_as(Interleave(&ZERO_TWO)));
        assert!(!Interleave(&ZERO_ONE).same_as(Interleave(&ZERO)));
        assert!(!Interleave(&ZERO).same_as(Interleave(&ZERO_ONE)));
        assert!(
            !Interleave(&ZERO).same_as(n(0)),
            "binding and interleaving differ"
        );
        assert!(Interleave(&[]).same_as(Interleave(&[])));
        assert_eq!(n(3).to_string(), "node 3");
        assert_eq!(Interleave(&ONE_ZERO).to_string(), "nodes 1, 0 interleaved");
    }

    macro_rules! placed_types {
        ($($name:ident => $node:expr),* $(,)?) => {$(
            struct $name;
            impl Placed for $name {
                const PLACEMENT: NodePlacement = NodePlacement::Node(NodeId::new($node));
            }
        )*};
    }
    placed_types!(R0 => 0, R1 => 1, R2 => 2, R3 => 3, R4 => 4, R5 => 5, R6 => 6, R7 => 7);

    #[test]
    fn types_recorded_from_racing_threads_are_all_found() {
        struct Unrecorded;
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    register_placed::<R0>();
                    register_placed::<R1>();
                    register_placed::<R2>();
                    register_placed::<R3>();
                    register_placed::<R4>();
                    register_placed::<R5>();
                    register_placed::<R6>();
                    register_placed::<R7>();
                });
            }
        });
        let found = [
            declared_placement::<R0>(),
            declared_placement::<R1>(),
            declared_placement::<R2>(),
            declared_placement::<R3>(),
            declared_placement::<R4>(),
            declared_placement::<R5>(),
            declared_placement::<R6>(),
            declared_placement::<R7>(),
        ];
        for (i, f) in found.into_iter().enumerate() {
            assert_eq!(f, Some(NodePlacement::Node(NodeId::new(i as u32))));
        }
        assert_eq!(declared_placement::<Unrecorded>(), None);
        assert!(check_declared::<R3>(NodePlacement::Node(NodeId::new(3))).is_ok());
        match check_declared::<R3>(NodePlacement::Node(NodeId::new(0))) {
            Err(MemError::PlacementContradicted {
                type_name,
                declared,
                requested,
            }) => {
                assert!(type_name.ends_with("R3"), "{type_name}");
                assert_eq!(declared, NodePlacement::Node(NodeId::new(3)));
                assert_eq!(requested, NodePlacement::Node(NodeId::new(0)));
            }
            other => panic!("{other:?}"),
        }
        assert!(check_declared::<Unrecorded>(NodePlacement::Node(NodeId::new(9))).is_ok());
    }
}
