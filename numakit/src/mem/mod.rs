//! L1 — memory on the node you asked for, or an error.
//!
//! - [`Arena`]: a node-strict region with a bump allocator (the seed's
//!   fundamental block), built through [`Arena::builder`]; not `Sync`.
//! - [`SharedArena`]: the same region with an atomic bump pointer, `Sync`.
//! - [`arena_local`]: the calling thread's arena on the node it is pinned to.
//! - [`NodeBox`]: one value on a node (or interleaved), with `Drop`; what
//!   `#[numa(node = N)]` types are placed in.
//! - [`locate`] / [`migrate`]: where pages of any memory live, and moving
//!   them, through `move_pages(2)`.
//! - [`Slab`] / [`RawSlab`]: fixed-size objects on one node, O(1)
//!   allocate and free, growing on the same node up to a set maximum.
//! - [`NodeHeap`]: a thread-safe, size-class heap bound to one node, usable
//!   through the `allocator-api2` `Allocator` trait (`Vec::new_in(&heap)`,
//!   `hashbrown::HashMap::new_in(&heap)`); [`HeapBox`] for single values;
//!   [`GlobalNodeHeap`] as a `#[global_allocator]` that never falls back;
//!   [`NodeHeap::of`], each node's process-wide heap.
//! - [`NodeLocal`]: a `#[global_allocator]` giving every thread memory on
//!   the node it runs on, `strict` or `nearest` on an exhausted node, with
//!   per-node figures ([`NodeLocal::stats`]).
//! - [`Local`]: an `Allocator` handle that allocates on the calling
//!   thread's node (`Vec::new_in(Local)`), failing rather than falling back.
//! - [`PerNode`]: one replica of a value per node, [`PerNode::local`] for
//!   the caller's node.
//!
//! # How "node-strict" is kept
//!
//! 1. The node is checked against the topology (absent or memoryless nodes
//!    are errors naming the nodes that would work) and against the memory
//!    nodes the process may use (`Mems_allowed`, set by a cgroup cpuset's
//!    `cpuset.mems`; [`MemError::NodeNotAllowed`] names the allowed nodes
//!    and the cgroup file). Every API here, and the collections, make this
//!    one check.
//! 2. The range is reserved with `mmap` and bound with
//!    `mbind(MPOL_BIND, MPOL_MF_STRICT)` before any page is touched: no
//!    page can come from another node.
//! 3. Pages are faulted in with `madvise(MADV_POPULATE_WRITE)` in chunks.
//!    Before each chunk the node's available memory (or its free hugepages)
//!    is read from sysfs and the chunk is refused, with an error, when it
//!    would eat into a safety reserve. The kernel would otherwise answer
//!    node exhaustion under `MPOL_BIND` with the OOM killer, and hugetlb pool
//!    exhaustion with `SIGBUS`.
//! 4. [`Arena::verify`] asks the kernel where every page really is.

mod arena;
mod asan;
mod error;
mod heap;
mod here;
mod local;
mod local_alloc;
pub(crate) mod node_box;
mod numa_static;
mod per_node;
mod placement;
pub(crate) mod region;
mod shared;
mod slab;

pub use arena::{Arena, ArenaBuilder, ArenaStats, Populate};
pub use error::MemError;
pub use heap::{GlobalNodeHeap, HeapBox, HeapStats, NodeHeap, SizeClassStats};
pub use heap::{NodeLocal, NodeLocalNodeStats, NodeLocalStats, OnExhausted};
pub use local::{arena_local, LOCAL_ARENA_CAPACITY};
pub use local_alloc::Local;
pub use node_box::{NodeBox, NodePlacement, Placed};
pub use numa_static::NumaStatic;
pub use per_node::PerNode;
pub(crate) use placement::mapped_batches;
pub use placement::{locate, migrate, PageMap};

/// Check that memory can be placed on `node`: it exists, has memory and is
/// among the nodes this process may use (`Mems_allowed`, what a cgroup
/// cpuset left it) — the check every memory-placing API of numakit makes,
/// for a program that places memory by other means (a memory policy it
/// hands to a process it starts, for example).
///
/// # Errors
/// [`MemError::Topology`] for a node that does not exist,
/// [`MemError::MemorylessNode`], [`MemError::NodeNotAllowed`].
pub fn check_node(node: impl Into<crate::topology::NodeId>) -> Result<(), MemError> {
    let topo = crate::topology::Topology::current()?;
    region::check_node(&topo, node.into())
}
pub use shared::SharedArena;
pub use slab::{RawSlab, Slab, SlabBox, SlabBuilder, SlabStats, DEFAULT_SLAB_CHUNK};

/// The kind of pages behind a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PageKind {
    /// Base pages (4 KiB on x86-64).
    #[default]
    Normal,
    /// Base pages with `MADV_HUGEPAGE`: the kernel backs 2 MiB-aligned
    /// stretches with transparent huge pages when it can (it may not; the
    /// memory is still on the requested node). Region base aligned to 2 MiB.
    TransparentHuge,
    /// 2 MiB hugetlb pages (`MAP_HUGETLB | MAP_HUGE_2MB`) from the node's
    /// reserved pool.
    Huge2M,
    /// 1 GiB hugetlb pages (`MAP_HUGETLB | MAP_HUGE_1GB`) from the node's
    /// reserved pool.
    Huge1G,
}

const HUGE_2M: usize = 2 << 20;
const HUGE_1G: usize = 1 << 30;

impl PageKind {
    /// The granule in bytes: region sizes are rounded up to it and the base
    /// is aligned to it.
    pub fn page_size(self) -> usize {
        match self {
            PageKind::Normal => crate::sys::page_size(),
            PageKind::TransparentHuge | PageKind::Huge2M => HUGE_2M,
            PageKind::Huge1G => HUGE_1G,
        }
    }

    /// Whether pages come from a hugetlb pool.
    pub fn is_hugetlb(self) -> bool {
        matches!(self, PageKind::Huge2M | PageKind::Huge1G)
    }

    pub(crate) fn label_for(page_size: u64) -> String {
        if page_size >= 1 << 30 {
            format!("{} GiB", page_size >> 30)
        } else if page_size >= 1 << 20 {
            format!("{} MiB", page_size >> 20)
        } else {
            format!("{} KiB", page_size >> 10)
        }
    }
}
