//! [`PartitionedCounter`]: a counter sharded per CPU, for statistics that
//! many threads bump and few read.
//!
//! Each shard is an atomic on its own 128-byte block. A thread adds to the
//! shard of the CPU it runs on, so concurrent adders on different CPUs
//! never share a cache line; reading sums all shards. The CPU comes from
//! `getcpu(2)`, cached per thread and refreshed every [`REFRESH`]
//! operations (a thread that migrates keeps using its old shard until then,
//! which costs speed, never correctness: shards are atomics).
//!
//! [`sum`](PartitionedCounter::sum) is not a snapshot: adds that race with
//! it may or may not be counted, but once all adders have finished (joined,
//! or otherwise synchronised with the reader) the sum is exact. Arithmetic
//! wraps at `i64`'s bounds, like `AtomicI64::fetch_add`.

use super::primitive::{AtomicI64, Ordering::Relaxed};
use super::Padded;
use std::fmt;

/// Operations between two `getcpu(2)` calls of one thread.
pub const REFRESH: u32 = 256;

/// Shards when the CPU count cannot be read.
#[cfg(not(loom))]
const FALLBACK_SHARDS: usize = 64;

#[cfg(not(loom))]
std::thread_local! {
    /// Cached CPU (high 32 bits) and operations left before the next
    /// `getcpu` (low 32 bits), in one word: one load and one store per
    /// operation.
    static HINT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The calling thread's CPU, from the per-thread cache.
#[cfg(not(loom))]
#[inline(always)]
fn cpu_hint() -> usize {
    HINT.try_with(|h| {
        let v = h.get();
        if v as u32 != 0 {
            h.set(v - 1);
            (v >> 32) as usize
        } else {
            let cpu = crate::sys::sched::getcpu().map_or(0, |(cpu, _)| cpu);
            h.set(u64::from(cpu) << 32 | u64::from(REFRESH - 1));
            cpu as usize
        }
    })
    .unwrap_or(0)
}

/// Under loom: each modelled thread takes the next shard on first use
/// (deterministic per execution, as loom requires).
#[cfg(loom)]
fn cpu_hint() -> usize {
    use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    loom::lazy_static! {
        static ref NEXT: AtomicUsize = AtomicUsize::new(0);
    }
    loom::thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed);
    }
    SHARD.with(|s| *s)
}

/// Number of possible CPU ids (highest configured id + 1), read once.
#[cfg(not(loom))]
fn cpu_slots() -> usize {
    static SLOTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SLOTS.get_or_init(|| {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| crate::topology::CpuSet::parse_list(s.trim()).ok())
                .and_then(|set| set.iter().map(|c| c.get() as usize + 1).max())
        };
        read("/sys/devices/system/cpu/possible")
            .or_else(|| read("/sys/devices/system/cpu/online"))
            .unwrap_or(FALLBACK_SHARDS)
    })
}

#[cfg(loom)]
fn cpu_slots() -> usize {
    2
}

/// A counter with one cache-padded shard per CPU: `add`/`inc`/`dec` touch
/// only the current CPU's shard, [`sum`](Self::sum) reads them all. See
/// the [module documentation](self).
///
/// # Where the shards live
///
/// The shards are split by node: a [`PerNode`](crate::mem::PerNode)
/// replica on every node with memory holds the shards of that node's CPUs
/// (and of the CPUs of memoryless nodes nearest to it), in memory bound to
/// the node (a block of [`NodeHeap::of`](crate::mem::NodeHeap::of) the
/// node). A CPU only ever writes shards on its own node (or the nearest
/// one with memory). [`verify`](Self::verify) proves the placement. When
/// the topology cannot be read or a node cannot give the memory, the
/// counter is still made, with all shards in one ordinary allocation;
/// [`is_node_placed`](Self::is_node_placed) and `verify` say so, and
/// [`try_new`](Self::try_new) returns the error instead.
///
/// # Examples
/// ```
/// use numakit::sync::PartitionedCounter;
/// use std::sync::Arc;
///
/// let hits = Arc::new(PartitionedCounter::new());
/// let workers: Vec<_> = (0..4)
///     .map(|_| {
///         let hits = Arc::clone(&hits);
///         std::thread::spawn(move || (0..1000).for_each(|_| hits.inc()))
///     })
///     .collect();
/// workers.into_iter().for_each(|w| w.join().unwrap());
/// assert_eq!(hits.sum(), 4000);
/// assert!(!hits.is_node_placed() || hits.verify().is_ok());
/// ```
pub struct PartitionedCounter {
    shards: Shards,
}

/// The shards of one node, in a block of the node's shared heap.
#[cfg(not(loom))]
type NodeShards = allocator_api2::boxed::Box<[Padded<AtomicI64>], &'static crate::mem::NodeHeap>;

enum Shards {
    /// All shards in one allocation, indexed by CPU.
    Flat(Box<[Padded<AtomicI64>]>),
    /// `per_node` shards on each node with memory.
    #[cfg(not(loom))]
    Nodes {
        replicas: crate::mem::PerNode<NodeShards>,
        /// By CPU id: the shard it writes, in its node's replica.
        slot: Box<[ShardRef]>,
        /// Shards per replica, a power of two.
        per_node: usize,
    },
}

/// A CPU's shard, inside the counter's own `replicas`.
#[cfg(not(loom))]
#[derive(Clone, Copy)]
struct ShardRef(std::ptr::NonNull<AtomicI64>);

// SAFETY: a ShardRef points at an `AtomicI64` (which is Sync) inside a
// shard block owned by the same counter's `replicas`. The blocks are heap
// memory that moving the counter does not move, nothing ever takes `&mut`
// to them, and they are freed only when the counter is dropped, after
// which no ShardRef is used. Sending or sharing one only ever yields a
// shared `&AtomicI64` to a live atomic.
#[cfg(not(loom))]
unsafe impl Send for ShardRef {}
// SAFETY: as above.
#[cfg(not(loom))]
unsafe impl Sync for ShardRef {}

/// The counter's topology could not say where shards belong.
fn no_topology(detail: &str) -> crate::Error {
    crate::topology::TopologyError::Parse {
        path: "/sys/devices/system/node".into(),
        content: String::new(),
        detail: detail.to_string(),
    }
    .into()
}

impl Shards {
    fn flat(n: usize) -> Shards {
        Shards::Flat((0..n).map(|_| Padded(AtomicI64::new(0))).collect())
    }

    #[cfg(loom)]
    fn on_nodes(_per_node: Option<usize>) -> Result<Shards, crate::Error> {
        Err(no_topology("loom models have no topology"))
    }

    /// Shards on every node: `per_node` each, or (`None`) as many as the
    /// most CPUs a replica serves, rounded up to a power of two.
    #[cfg(not(loom))]
    fn on_nodes(per_node: Option<usize>) -> Result<Shards, crate::Error> {
        use crate::mem::{MemError, NodeHeap, PerNode};
        use crate::NodeId;
        let topo = crate::Topology::current()?;
        let with_memory: Vec<NodeId> = topo
            .nodes()
            .iter()
            .filter(|n| n.has_memory())
            .map(|n| n.id())
            .collect();
        // Which node's replica each node's CPUs write: its own, or the
        // nearest one with memory.
        let serving = |node: NodeId| -> Option<NodeId> {
            topo.nodes_by_distance(node)
                .ok()?
                .into_iter()
                .find(|n| with_memory.contains(n))
        };
        let max_cpu = topo
            .online_cpus()
            .iter()
            .map(|c| c.get())
            .max()
            .ok_or_else(|| no_topology("no CPU is online"))?;
        let mut ranks = vec![(NodeId::new(0), 0u32); max_cpu as usize + 1];
        let mut served: Vec<(NodeId, u32)> = with_memory.iter().map(|&n| (n, 0)).collect();
        for node in topo.nodes() {
            let (home, count) = serving(node.id())
                .and_then(|home| served.iter_mut().find(|(n, _)| *n == home))
                .ok_or_else(|| no_topology("no node with memory is reachable from every node"))?;
            for cpu in node.cpus().iter() {
                if let Some(s) = ranks.get_mut(cpu.get() as usize) {
                    *s = (*home, *count);
                    *count += 1;
                }
            }
        }
        let most = served.iter().map(|&(_, c)| c as usize).max().unwrap_or(1);
        let per_node = per_node
            .unwrap_or(most)
            .clamp(1, 1 << 16)
            .next_power_of_two();
        let replicas = PerNode::try_new_here(|node| -> Result<NodeShards, crate::Error> {
            let heap = NodeHeap::of(node)?;
            let layout =
                std::alloc::Layout::array::<Padded<AtomicI64>>(per_node).map_err(|_| {
                    MemError::SizeOverflow {
                        count: per_node,
                        size: std::mem::size_of::<Padded<AtomicI64>>(),
                    }
                })?;
            let p = heap
                .try_alloc_layout(layout)?
                .cast::<Padded<AtomicI64>>()
                .as_ptr();
            for i in 0..per_node {
                // SAFETY: `p` is fresh memory for `per_node` shards; each
                // is written once before the slice is made.
                unsafe { p.add(i).write(Padded(AtomicI64::new(0))) };
            }
            // SAFETY: `p` holds `per_node` initialised shards in a block
            // of `heap` for exactly this layout; the box frees it there.
            Ok(unsafe {
                allocator_api2::boxed::Box::from_raw_in(
                    std::ptr::slice_from_raw_parts_mut(p, per_node),
                    heap,
                )
            })
        })?;
        let slot = ranks
            .iter()
            .map(|&(node, rank)| {
                let shard = &replicas.nearest(node)[rank as usize & (per_node - 1)].0;
                ShardRef(std::ptr::NonNull::from(shard))
            })
            .collect();
        Ok(Shards::Nodes {
            replicas,
            slot,
            per_node,
        })
    }

    #[inline]
    fn for_cpu(&self, cpu: usize) -> &AtomicI64 {
        match self {
            // A power of two: masking instead of a division.
            Shards::Flat(s) => &s[cpu & (s.len() - 1)].0,
            #[cfg(not(loom))]
            Shards::Nodes {
                replicas,
                slot,
                per_node,
            } => match slot.get(cpu) {
                // SAFETY: see `ShardRef`: the shard is in `replicas`, alive
                // as long as `self`.
                Some(r) => unsafe { r.0.as_ref() },
                // A CPU the topology did not have when the counter was made.
                None => &replicas.local()[cpu & (per_node - 1)].0,
            },
        }
    }

    fn all(&self) -> impl Iterator<Item = &AtomicI64> {
        let flat = match self {
            Shards::Flat(s) => Some(s.iter()),
            #[cfg(not(loom))]
            Shards::Nodes { .. } => None,
        };
        #[cfg(not(loom))]
        let nodes = match self {
            Shards::Nodes { replicas, .. } => {
                Some(replicas.iter().flat_map(|(_, shards)| shards.iter()))
            }
            Shards::Flat(_) => None,
        };
        #[cfg(loom)]
        let nodes: Option<std::slice::Iter<'_, Padded<AtomicI64>>> = None;
        flat.into_iter()
            .flatten()
            .chain(nodes.into_iter().flatten())
            .map(|s| &s.0)
    }

    fn count(&self) -> usize {
        match self {
            Shards::Flat(s) => s.len(),
            #[cfg(not(loom))]
            Shards::Nodes {
                replicas, per_node, ..
            } => replicas.len() * per_node,
        }
    }
}

impl PartitionedCounter {
    /// A zero counter with one shard per CPU: on each node with memory,
    /// as many shards as the CPUs it serves (rounded up to a power of two),
    /// in memory bound to the node. Without a readable topology (or when a
    /// node cannot give the memory), one shard per possible CPU of the
    /// machine (`/sys/devices/system/cpu/possible`) in ordinary memory:
    /// [`is_node_placed`](Self::is_node_placed) says which it got, and
    /// [`try_new`](Self::try_new) gives the error instead.
    pub fn new() -> Self {
        Self {
            shards: Shards::on_nodes(None).unwrap_or_else(|_| Shards::flat(cpu_slots_pow2())),
        }
    }

    /// A zero counter with `shards` shards on each node with memory,
    /// rounded up to a power of two (at least one, at most 65536). Fewer
    /// shards than a node has CPUs make its CPUs share shards (correct,
    /// slower). Without a readable topology (or when a node cannot give the
    /// memory), `shards` shards in ordinary memory; see
    /// [`try_with_shards`](Self::try_with_shards) for the error instead.
    pub fn with_shards(shards: usize) -> Self {
        let n = Self::round_shards(shards);
        Self {
            shards: Shards::on_nodes(Some(n)).unwrap_or_else(|_| Shards::flat(n)),
        }
    }

    /// [`new`](Self::new) without its fallback: the shards are on their
    /// nodes, or the error says why they cannot be.
    ///
    /// # Errors
    /// The topology's when it cannot be read; [`MemError`](crate::mem::MemError)
    /// when a node with memory cannot give its shards' memory.
    pub fn try_new() -> Result<Self, crate::Error> {
        Ok(Self {
            shards: Shards::on_nodes(None)?,
        })
    }

    /// [`with_shards`](Self::with_shards) without its fallback.
    ///
    /// # Errors
    /// As [`try_new`](Self::try_new).
    pub fn try_with_shards(shards: usize) -> Result<Self, crate::Error> {
        Ok(Self {
            shards: Shards::on_nodes(Some(Self::round_shards(shards)))?,
        })
    }

    fn round_shards(shards: usize) -> usize {
        shards.clamp(1, 1 << 16).next_power_of_two()
    }

    /// Number of shards, over all nodes.
    pub fn shards(&self) -> usize {
        self.shards.count()
    }

    /// Whether the shards are split over the nodes in node-bound memory
    /// (see [Where the shards live](Self#where-the-shards-live)).
    pub fn is_node_placed(&self) -> bool {
        !matches!(self.shards, Shards::Flat(_))
    }

    /// Prove that every node's shards are on that node (`move_pages(2)`),
    /// returning the merged placement of the replicas and shards
    /// ([`pages`](crate::mem::PageMap::pages) counts the pages checked,
    /// [`on(node)`](crate::mem::PageMap::on) those of each node).
    ///
    /// # Errors
    /// [`MemError::Misplaced`](crate::mem::MemError::Misplaced) for shards
    /// off their node; [`MemError::Os`](crate::mem::MemError::Os) when
    /// `move_pages` fails;
    /// [`MemError::InvalidConfig`](crate::mem::MemError::InvalidConfig)
    /// when the shards are in ordinary memory (see
    /// [`is_node_placed`](Self::is_node_placed)).
    #[cfg(not(loom))]
    pub fn verify(&self) -> Result<crate::mem::PageMap, crate::mem::MemError> {
        use crate::mem::MemError;
        match &self.shards {
            Shards::Flat(_) => Err(MemError::InvalidConfig(
                "the counter's shards are in ordinary memory (the topology could not be read \
                 or a node could not give the memory when it was made), not on their nodes"
                    .into(),
            )),
            Shards::Nodes { replicas, .. } => {
                let mut proof = replicas.verify()?;
                for (node, shards) in replicas.iter() {
                    let len = std::mem::size_of_val::<[Padded<AtomicI64>]>(shards);
                    proof.merge(crate::mem::locate(shards.as_ptr().cast(), len)?.ensure_on(node)?);
                }
                Ok(proof)
            }
        }
    }

    #[inline]
    fn shard(&self) -> &AtomicI64 {
        self.shards.for_cpu(cpu_hint())
    }

    /// Add `delta` (negative to subtract) to the current CPU's shard.
    #[inline]
    pub fn add(&self, delta: i64) {
        self.shard().fetch_add(delta, Relaxed);
    }

    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtract one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// The sum of all shards (wrapping). Not a snapshot while adders run;
    /// see the [module documentation](self).
    pub fn sum(&self) -> i64 {
        self.shards
            .all()
            .fold(0i64, |acc, s| acc.wrapping_add(s.load(Relaxed)))
    }

    /// Set every shard to zero and return the sum they held (adds racing
    /// with the reset land either in the returned sum or after it, never
    /// lost).
    pub fn take(&self) -> i64 {
        self.shards
            .all()
            .fold(0i64, |acc, s| acc.wrapping_add(s.swap(0, Relaxed)))
    }
}

fn cpu_slots_pow2() -> usize {
    cpu_slots().clamp(1, 1 << 16).next_power_of_two()
}

impl Default for PartitionedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PartitionedCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedCounter")
            .field("sum", &self.sum())
            .field("shards", &self.shards())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod node_tests {
    use super::*;
    use crate::{NodeId, Topology};

    /// A thread on each node writes a shard on that node (or, for a
    /// memoryless node, on the nearest node with memory).
    #[test]
    fn each_cpu_writes_a_shard_on_its_node() {
        let topo = Topology::current().unwrap();
        let c = std::sync::Arc::new(PartitionedCounter::new());
        assert!(c.is_node_placed());
        for node in topo.nodes().iter().filter(|n| !n.cpus().is_empty()) {
            let expect = topo
                .nodes_by_distance(node.id())
                .unwrap()
                .into_iter()
                .find(|n| topo.node(*n).unwrap().has_memory())
                .unwrap();
            for cpu in node.cpus().iter() {
                let c = std::sync::Arc::clone(&c);
                let (addr, ran_on): (usize, NodeId) = std::thread::spawn(move || {
                    let _pin = crate::sched::Pin::cpu(cpu)
                        .bind_memory(false)
                        .apply()
                        .unwrap();
                    // A fresh thread reads its CPU on first use.
                    c.inc();
                    (
                        c.shard() as *const AtomicI64 as usize,
                        crate::current_node().unwrap(),
                    )
                })
                .join()
                .unwrap();
                assert_eq!(ran_on, node.id());
                let here = crate::mem::locate(addr as *const u8, 8).unwrap();
                assert!(here.is_all_on(expect), "CPU {cpu}: {here:?}");
            }
        }
        assert_eq!(c.sum(), topo.online_cpus().iter().count() as i64);
    }
}
