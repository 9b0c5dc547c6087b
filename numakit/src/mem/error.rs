//! Errors of the memory layer (L1).

use crate::topology::{error::node_list, CpuSet, NodeId, Restriction, TopologyError};
use std::io;

use super::{PageKind, PageMap};

const MIB: u64 = 1 << 20;

/// What can go wrong getting or checking node memory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemError {
    /// The node does not exist, or the topology could not be read.
    #[error(transparent)]
    Topology(#[from] TopologyError),

    /// The node exists but has no memory of its own (a CPU-only node).
    #[error(
        "NUMA node {node} has no memory of its own, so nothing can be placed on it; \
         nodes with memory: {}",
        node_list(with_memory)
    )]
    MemorylessNode {
        /// The node asked for.
        node: NodeId,
        /// The nodes that have memory.
        with_memory: Vec<NodeId>,
    },

    /// The node is outside the memory nodes this process may use
    /// (`Mems_allowed_list` of `/proc/self/status`, which a cgroup cpuset's
    /// `cpuset.mems` sets); checked before any memory is mapped.
    #[error(
        "NUMA node {node} is outside the memory nodes this process may use ({}), a limit set \
         by {restriction}; place the memory on one of those nodes, or run the process in a \
         cpuset whose cpuset.mems includes node {node}",
        node_list(mems_allowed)
    )]
    NodeNotAllowed {
        /// The node asked for.
        node: NodeId,
        /// The nodes the process may place memory on
        /// ([`Topology::mems_allowed`](crate::Topology::mems_allowed)).
        mems_allowed: Vec<NodeId>,
        /// Where the limit comes from.
        restriction: Restriction,
    },

    /// Not enough memory on the node, checked before the kernel could kill
    /// the process for it.
    #[error(
        "NUMA node {node} cannot provide {} MiB: it has {} MiB available \
         (MemFree + Inactive(file)) and {} MiB are kept in reserve so that the \
         kernel does not OOM-kill the process; ask for less, free memory on node {node}, \
         or choose another node explicitly",
        requested.div_ceil(MIB), available / MIB, reserve / MIB
    )]
    OutOfNodeMemory {
        /// The node asked for.
        node: NodeId,
        /// Bytes still to be placed when the check failed.
        requested: u64,
        /// Bytes the node had available then.
        available: u64,
        /// Bytes kept free on the node as a safety margin.
        reserve: u64,
    },

    /// Hugepages of that size are not free on the node.
    #[error(
        "NUMA node {node} has {free} free {} hugepages but {needed} are needed; \
         reserve more as root: `echo {suggest} > {reserve_path}` \
         (or choose PageKind::Normal / TransparentHuge explicitly)",
        PageKind::label_for(*page_size)
    )]
    HugepagesUnavailable {
        /// The node asked for.
        node: NodeId,
        /// Hugepage size in bytes.
        page_size: u64,
        /// Pages needed.
        needed: u64,
        /// Pages free on the node.
        free: u64,
        /// A pool size that would make enough pages free.
        suggest: u64,
        /// The sysfs file that sizes the node's pool.
        reserve_path: String,
    },

    /// The kernel has no hugepage pool of that size.
    #[error(
        "this kernel has no {} hugepage pool (no {reserve_path}); the CPU or kernel does not \
         support that page size — choose another PageKind",
        PageKind::label_for(*page_size)
    )]
    HugepageSizeUnsupported {
        /// Hugepage size in bytes.
        page_size: u64,
        /// The sysfs file that would size the pool.
        reserve_path: String,
    },

    /// A system call failed.
    #[error("{call} for NUMA node {node} failed: {source}")]
    Os {
        /// The call, with its main arguments.
        call: &'static str,
        /// The node the memory was for.
        node: NodeId,
        /// What the kernel said (errno kept).
        #[source]
        source: io::Error,
    },

    /// A size that cannot be served: zero, not representable, or larger
    /// than the node.
    #[error("invalid size {requested} bytes: {reason}")]
    InvalidSize {
        /// The size asked for.
        requested: u64,
        /// Why it is refused and what would work.
        reason: String,
    },

    /// An address range that cannot be walked.
    #[error("invalid range of {len} bytes at {addr:#x}: {reason}; pass the start and length of memory of this process")]
    InvalidRange {
        /// Start of the range.
        addr: usize,
        /// Its length in bytes.
        len: usize,
        /// Why it is refused.
        reason: String,
    },

    /// An alignment that is not a power of two.
    #[error("alignment {align} is not a power of two; use 1, 2, 4, 8, …")]
    InvalidAlignment {
        /// The alignment asked for.
        align: usize,
    },

    /// `count` elements of `size` bytes overflow `usize`.
    #[error("{count} elements of {size} bytes do not fit in the address space")]
    SizeOverflow {
        /// Elements asked for.
        count: usize,
        /// Size of one element.
        size: usize,
    },

    /// The arena has too little room left.
    #[error(
        "arena on NUMA node {node} is exhausted: asked for {requested} bytes aligned to {align}, \
         {remaining} of {capacity} bytes remain; build it with a larger capacity, reset() it, \
         or use another arena"
    )]
    Exhausted {
        /// The arena's node.
        node: NodeId,
        /// Bytes asked for.
        requested: usize,
        /// Alignment asked for.
        align: usize,
        /// Bytes left above the bump pointer.
        remaining: usize,
        /// The arena's capacity.
        capacity: usize,
    },

    /// A builder combination that cannot keep its promise.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The calling thread may run on CPUs of several nodes (or none), so
    /// "its node" is not defined.
    #[error(
        "the calling thread is not pinned to one NUMA node: it may run on CPUs {cpus} \
         (nodes {}); pin it first (numakit::sched::pin_to_node, or sched_setaffinity \
         to CPUs of one node) or create an Arena for an explicit node",
        nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotPinned {
        /// The thread's allowed CPUs.
        cpus: CpuSet,
        /// The nodes those CPUs belong to.
        nodes: Vec<NodeId>,
    },

    /// [`arena_local`](super::arena_local) was called after the calling
    /// thread's arenas were destroyed: from a thread-local destructor that
    /// runs late in the thread's exit.
    #[error(
        "arena_local() was called while the thread is exiting, after its thread-local arenas \
         were destroyed (from another thread-local's destructor); allocate from an Arena built \
         for an explicit node (Arena::new(node, capacity)) instead, or finish the work before \
         the thread exits"
    )]
    ThreadExiting,

    /// A value of a type with a declared placement (`#[numa(..)]`, see
    /// [`Placed`](super::Placed)) was given to [`NodeBox`](super::NodeBox)
    /// for another placement.
    #[error(
        "a `{type_name}` is declared to live on {declared} (#[numa]), but {requested} was asked \
         for; use `{type_name}::place` or `NodeBox::place` (or ask for {declared}), or, if this \
         one value must live elsewhere, say so with NodeBox::new_overriding_placement"
    )]
    PlacementContradicted {
        /// The value's type.
        type_name: &'static str,
        /// Where the type is declared to live.
        declared: super::NodePlacement,
        /// Where the value was asked to go.
        requested: super::NodePlacement,
    },

    /// A slab has no free object left and may not grow any further.
    #[error(
        "slab of {object_size}-byte objects on NUMA node {node} is full: all {max_objects} \
         objects are in use; free some, or build it with a larger max_capacity \
         (SlabBuilder::max_capacity)"
    )]
    SlabFull {
        /// The slab's node.
        node: NodeId,
        /// Bytes per object (as asked for).
        object_size: usize,
        /// The most objects the slab may hold.
        max_objects: usize,
    },

    /// A pointer given back to a slab was not handed out by it (outside its
    /// objects, or not at the start of one); nothing was changed.
    #[error(
        "pointer {addr:#x} was not handed out by this slab on NUMA node {node}: its objects \
         start at multiples of {stride} bytes from {start:#x} up to {end:#x}; free it \
         with the allocator that handed it out"
    )]
    ForeignPointer {
        /// The pointer given back.
        addr: usize,
        /// The slab's node.
        node: NodeId,
        /// Address of the slab's first object.
        start: usize,
        /// End of the objects handed out so far.
        end: usize,
        /// Distance between two objects.
        stride: usize,
    },

    /// Memory was found somewhere other than where it was bound.
    #[error("placement check failed: expected every page on NUMA node {expected}, found {found}")]
    Misplaced {
        /// Where the memory should be.
        expected: NodeId,
        /// Where the kernel says it is.
        found: PageMap,
    },
}
