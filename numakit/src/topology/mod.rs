//! L0 — the hardware: NUMA nodes, their CPUs, memory and hugepage pools,
//! the distance matrix, and where the calling thread runs now.
//!
//! [`Topology`] is an immutable snapshot. Two backends fill it:
//!
//! - **sysfs** (default, pure Rust): `/sys/devices/system/node/*` and
//!   `/sys/devices/system/cpu/online`; [`Topology::detect`].
//! - **hwloc** (cargo feature `hwloc`, needs the system's libhwloc):
//!   `Topology::detect_hwloc`; also reports packages, cores and caches.
//!
//! [`Topology::current`] is the process-wide snapshot numakit itself uses
//! (read once, re-read after CPU or memory hotplug); [`Topology::detect`]
//! reads sysfs again on every call.
//!
//! Node ids may be sparse (a machine can have nodes 0 and 2 only); every
//! lookup takes a [`NodeId`] and answers with the node or a
//! [`TopologyError::NoSuchNode`] that lists the nodes that exist.
//!
//! # Examples
//! ```
//! use numakit::{NodeId, Topology};
//! let topo = Topology::detect()?;
//! for node in topo.nodes() {
//!     println!("node {}: CPUs {}, {} MiB", node.id(), node.cpus(), node.memory_total() >> 20);
//! }
//! // Asking for a node that is not there is an error, not a fallback.
//! assert!(topo.node(NodeId::new(4096)).is_err());
//! # Ok::<(), numakit::Error>(())
//! ```

pub(crate) mod allowed;
mod cpuset;
pub(crate) mod error;
mod hardware;
#[cfg(feature = "hwloc")]
mod hwloc;
mod snapshot;
pub(crate) mod sysfs;

pub use allowed::{refresh_allowed, Restriction};
pub use cpuset::{CpuIdOutOfRange, CpuSet, ParseCpuListError};
pub use error::TopologyError;
pub use hardware::{Cache, CacheKind, Core, Package};

use std::fmt;
use std::sync::Arc;

/// The nodes with memory and allowed CPUs, with those CPUs, by id: where a
/// test can pin a thread and expect its node's memory.
#[cfg(test)]
pub(crate) fn nodes_with_cpus_and_memory() -> Vec<(NodeId, CpuSet)> {
    Topology::current()
        .unwrap()
        .nodes()
        .iter()
        .filter(|n| n.has_memory())
        .filter_map(|n| Some((n.id(), n.allowed_cpus().ok().filter(|c| !c.is_empty())?)))
        .collect()
}

/// A NUMA node id, as the kernel numbers nodes (`/sys/devices/system/node/nodeN`).
///
/// Ids are not necessarily dense: check them against a [`Topology`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct NodeId(u32);

impl NodeId {
    /// Node `id`.
    pub const fn new(id: u32) -> Self {
        NodeId(id)
    }
    /// The kernel's number for this node.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for NodeId {
    fn from(id: u32) -> Self {
        NodeId(id)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A logical CPU id, as the kernel numbers CPUs (`/sys/devices/system/cpu/cpuN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(u32);

impl CpuId {
    /// CPU `id`.
    pub const fn new(id: u32) -> Self {
        CpuId(id)
    }
    /// The kernel's number for this CPU.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for CpuId {
    fn from(id: u32) -> Self {
        CpuId(id)
    }
}

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Which backend produced a [`Topology`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Linux sysfs, read directly.
    Sysfs,
    /// The system's libhwloc (feature `hwloc`).
    Hwloc,
}

/// One hugepage pool of one node: pages of one size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HugePagePool {
    node: NodeId,
    page_size: u64,
    total: u64,
    free: u64,
}

impl HugePagePool {
    pub(crate) fn new(node: NodeId, page_size: u64, total: u64, free: u64) -> Self {
        Self {
            node,
            page_size,
            total,
            free,
        }
    }
    /// Page size in bytes (2 MiB, 1 GiB, ...).
    pub fn page_size(&self) -> u64 {
        self.page_size
    }
    /// Pages reserved in this node's pool (`nr_hugepages`).
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Pages of the pool not yet handed out (`free_hugepages`).
    pub fn free(&self) -> u64 {
        self.free
    }
    /// The sysfs file that sets the pool's size: as root,
    /// `echo N > <this path>` reserves N pages on this node.
    pub fn reserve_path(&self) -> String {
        hugepage_reserve_path(self.node, self.page_size)
    }
}

/// The sysfs file that sizes `node`'s pool of `page_size`-byte hugepages.
pub(crate) fn hugepage_reserve_path(node: NodeId, page_size: u64) -> String {
    format!(
        "/sys/devices/system/node/node{}/hugepages/hugepages-{}kB/nr_hugepages",
        node.get(),
        page_size / 1024
    )
}

/// One NUMA node: its CPUs, memory and hugepage pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    id: NodeId,
    cpus: CpuSet,
    memory_total: u64,
    memory_free: u64,
    hugepages: Vec<HugePagePool>,
}

impl Node {
    pub(crate) fn new(
        id: NodeId,
        cpus: CpuSet,
        memory_total: u64,
        memory_free: u64,
        mut hugepages: Vec<HugePagePool>,
    ) -> Self {
        hugepages.sort_by_key(HugePagePool::page_size);
        Self {
            id,
            cpus,
            memory_total,
            memory_free,
            hugepages,
        }
    }
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// The node's online CPUs (empty for a CPU-less node).
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
    /// Memory of the node in bytes (`MemTotal`; 0 for a memoryless node).
    pub fn memory_total(&self) -> u64 {
        self.memory_total
    }
    /// Free memory of the node in bytes when the snapshot was taken
    /// (`MemFree`).
    pub fn memory_free(&self) -> u64 {
        self.memory_free
    }
    /// Whether the node has memory of its own.
    pub fn has_memory(&self) -> bool {
        self.memory_total > 0
    }
    /// The node's hugepage pools, smallest page size first.
    pub fn hugepages(&self) -> &[HugePagePool] {
        &self.hugepages
    }
    /// The pool of `page_size`-byte hugepages, if the kernel supports that size.
    pub fn hugepage_pool(&self, page_size: u64) -> Option<&HugePagePool> {
        self.hugepages.iter().find(|p| p.page_size == page_size)
    }

    /// The node's CPUs this process may run on: [`cpus`](Self::cpus)
    /// inside the process's allowed CPUs (`Cpus_allowed_list` of
    /// `/proc/self/status`: what `taskset`, a cgroup cpuset or `isolcpus`
    /// left it). This is the set every placement API of numakit uses for
    /// the node; it is empty when none of the node's CPUs is allowed.
    ///
    /// The allowed set is the running process's, read on first use (see
    /// [`refresh_allowed`]), also for a topology read from another sysfs
    /// tree.
    ///
    /// # Errors
    /// [`TopologyError::Read`] / [`TopologyError::Parse`] when
    /// `/proc/self/status` cannot be read.
    pub fn allowed_cpus(&self) -> Result<CpuSet, TopologyError> {
        Ok(self.cpus.intersection(&allowed::cpus()?))
    }

    /// Whether this process may place memory on the node: the node has
    /// memory and is in the process's `Mems_allowed_list` (what a cgroup
    /// cpuset's `cpuset.mems` left it). A `false` is confirmed by a fresh
    /// read of `/proc/self/status`.
    ///
    /// # Errors
    /// As [`allowed_cpus`](Self::allowed_cpus).
    pub fn memory_allowed(&self) -> Result<bool, TopologyError> {
        Ok(self.has_memory() && allowed::mem_allowed(self.id)?)
    }
}

/// Packages, cores and caches: what hwloc reports beyond nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hardware {
    pub(crate) packages: Vec<Package>,
    pub(crate) cores: Vec<Core>,
    pub(crate) caches: Vec<Cache>,
}

/// An immutable snapshot of the machine's NUMA topology.
///
/// Memory-free and hugepage-free figures are as of the snapshot; take a new
/// one ([`Topology::detect`]) to see current values. [`Topology::current`]
/// shares one snapshot across the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    backend: Backend,
    nodes: Vec<Node>,
    /// Row-major `nodes.len()²` matrix, rows and columns in `nodes` order.
    distances: Vec<u32>,
    online_cpus: CpuSet,
    hardware: Option<Hardware>,
    /// Measured load-to-use latency in picoseconds, row-major like
    /// `distances`; `None` where not measured. Set by
    /// [`Topology::with_measured`] only.
    measured: Option<Vec<Option<u64>>>,
}

impl Topology {
    /// Read the topology from Linux sysfs (`/sys`). Needs no system library.
    ///
    /// # Errors
    /// [`TopologyError::Read`] or [`TopologyError::Parse`] when sysfs is
    /// missing or malformed (the error names the file).
    pub fn detect() -> Result<Self, TopologyError> {
        sysfs::read(std::path::Path::new("/sys"))
    }

    /// The process-wide snapshot of the machine's topology (read from sysfs
    /// as [`Topology::detect`] does), shared by every caller: what numakit's
    /// regions, pins and pools check nodes and CPUs against.
    ///
    /// The first call reads sysfs; later calls cost a few tens of
    /// nanoseconds. At most every 100 ms one call re-reads the kernel's
    /// hotplug signals (`/sys/devices/system/node/{online,has_cpu,has_memory}`,
    /// `/sys/devices/system/cpu/online` and the total of RAM) and reads the
    /// whole topology again if they changed: after CPU, node or memory
    /// hotplug the snapshot is current within 100 ms, or at once after
    /// [`Topology::refresh`].
    ///
    /// Free memory and free hugepages in it are as of when it was read,
    /// which may be long ago: use [`Topology::detect`] for current figures
    /// (numakit's own capacity checks read them live).
    ///
    /// # Errors
    /// As [`Topology::detect`], when the snapshot has to be (re-)read.
    ///
    /// # Examples
    /// ```
    /// use numakit::Topology;
    /// use std::sync::Arc;
    /// let topo = Topology::current()?;
    /// assert!(topo.num_nodes() >= 1);
    /// // The same snapshot for every caller until the machine changes.
    /// assert!(Arc::ptr_eq(&topo, &Topology::current()?));
    /// # Ok::<(), numakit::Error>(())
    /// ```
    pub fn current() -> Result<Arc<Topology>, TopologyError> {
        snapshot::current()
    }

    /// Read the topology from sysfs now, make it the process-wide snapshot
    /// that [`Topology::current`] serves, and return it. For a program that
    /// knows the machine changed (it just onlined a CPU) and cannot wait for
    /// the next hotplug check.
    ///
    /// # Errors
    /// As [`Topology::detect`]; the previous snapshot is then kept.
    pub fn refresh() -> Result<Arc<Topology>, TopologyError> {
        snapshot::refresh()
    }

    /// Read the topology from a sysfs tree mounted or copied at `root`
    /// (which stands for `/sys`): a container's view, a saved snapshot, a
    /// test fixture.
    ///
    /// The tree is read as untrusted input: every file must be a regular
    /// file of at most 1 MiB; numbers must fit (`MemTotal` in bytes, hugepage
    /// sizes in bytes, which must be powers of two), CPU and node lists must
    /// be well formed (ids below [`CpuSet::MAX_CPUS`], ranges ascending), every
    /// online node needs its `cpulist`, `meminfo` and a `distance` row with
    /// one entry per online node, and at least one node must be online. What
    /// does not hold is an error naming the file, never a panic, a wrapped
    /// number or an endless read. Without an `online` file, node ids come
    /// from the `nodeN` directory names (any `u32`, written canonically).
    ///
    /// # Errors
    /// As [`Topology::detect`].
    pub fn from_sysfs(root: impl AsRef<std::path::Path>) -> Result<Self, TopologyError> {
        sysfs::read(root.as_ref())
    }

    /// Read the topology through the system's libhwloc.
    ///
    /// Nodes, CPUs, memory totals, hugepage pools and distances come from
    /// hwloc; free memory (which hwloc does not report) from sysfs. Also fills
    /// [`packages`](Self::packages), [`cores`](Self::cores) and
    /// [`caches`](Self::caches).
    ///
    /// # Errors
    /// [`TopologyError::Hwloc`] when hwloc cannot load the topology.
    #[cfg(any(feature = "hwloc", docsrs))]
    #[cfg_attr(docsrs, doc(cfg(feature = "hwloc")))]
    pub fn detect_hwloc() -> Result<Self, TopologyError> {
        #[cfg(feature = "hwloc")]
        return hwloc::read();
        // The documentation build (docs.rs) shows this function without
        // linking the C library; it never runs there.
        #[cfg(not(feature = "hwloc"))]
        unreachable!("a documentation build only")
    }

    /// Assemble a snapshot; `nodes` may come in any order, `distances` rows
    /// follow `nodes`' order.
    pub(crate) fn from_parts(
        backend: Backend,
        nodes: Vec<Node>,
        distances: Vec<Vec<u32>>,
        online_cpus: CpuSet,
        hardware: Option<Hardware>,
    ) -> Self {
        let n = nodes.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| nodes[i].id);
        let mut matrix = Vec::with_capacity(n * n);
        for &i in &order {
            for &j in &order {
                let d = distances
                    .get(i)
                    .and_then(|row| row.get(j))
                    .copied()
                    .unwrap_or(if i == j { 10 } else { 20 });
                matrix.push(d);
            }
        }
        let mut nodes = nodes;
        nodes.sort_by_key(|node| node.id);
        Self {
            backend,
            nodes,
            distances: matrix,
            online_cpus,
            hardware,
            measured: None,
        }
    }

    /// Which backend produced this snapshot.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// All nodes, by ascending id.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Ids of all nodes, ascending.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.iter().map(Node::id)
    }

    /// Node `id`.
    ///
    /// # Errors
    /// [`TopologyError::NoSuchNode`] naming `id` and the nodes that exist.
    pub fn node(&self, id: NodeId) -> Result<&Node, TopologyError> {
        self.index_of(id).map(|i| &self.nodes[i])
    }

    fn index_of(&self, id: NodeId) -> Result<usize, TopologyError> {
        self.nodes
            .binary_search_by_key(&id, Node::id)
            .map_err(|_| TopologyError::NoSuchNode {
                requested: id,
                available: self.node_ids().collect(),
            })
    }

    /// The ACPI SLIT distance from node `from` to node `to` (10 = local).
    ///
    /// # Errors
    /// [`TopologyError::NoSuchNode`] when either node does not exist.
    pub fn distance(&self, from: NodeId, to: NodeId) -> Result<u32, TopologyError> {
        let (i, j) = (self.index_of(from)?, self.index_of(to)?);
        Ok(self.distances[i * self.nodes.len() + j])
    }

    /// All nodes ordered by distance from `from`, nearest first (`from`
    /// itself leads; ties by id).
    ///
    /// The distance is the firmware's (SLIT), unless this topology carries
    /// a measured latency matrix ([`with_measured`](Self::with_measured)):
    /// then, from a node whose latencies were measured, the memory nodes
    /// come by measured latency, and the nodes without a figure (no
    /// memory) after them, by SLIT distance. A node without CPUs has no
    /// measured row and keeps the SLIT order.
    ///
    /// # Errors
    /// [`TopologyError::NoSuchNode`] when `from` does not exist.
    pub fn nodes_by_distance(&self, from: NodeId) -> Result<Vec<NodeId>, TopologyError> {
        let i = self.index_of(from)?;
        let n = self.nodes.len();
        let measured = self
            .measured
            .as_ref()
            .map(|m| &m[i * n..(i + 1) * n])
            .filter(|row| row.iter().any(Option::is_some));
        let mut ids: Vec<(u64, u32, NodeId)> = (0..n)
            .map(|j| {
                let slit = self.distances[i * n + j];
                let latency = match measured {
                    Some(row) => row[j].unwrap_or(u64::MAX),
                    None => 0,
                };
                (latency, slit, self.nodes[j].id)
            })
            .collect();
        ids.sort_by_key(|&(lat, d, id)| (id != from, lat, d, id));
        Ok(ids.into_iter().map(|(_, _, id)| id).collect())
    }

    /// This topology, with `nodes_by_distance` ordering nodes by the
    /// latency `measurement` found instead of the firmware's SLIT (which
    /// often disagrees with it). [`distance`](Self::distance) stays the
    /// SLIT. The measurement may come from [`measure`](crate::measure::measure)
    /// or from a saved one (feature `serde`: `serde_json::from_str`).
    ///
    /// Each node with CPUs that has a measured row must have a cell for
    /// every node with memory: the measurement must be of this machine.
    ///
    /// # Errors
    /// [`TopologyError::MeasurementMismatch`] when the measurement's nodes
    /// are not this topology's, or a (CPU node, memory node) pair of this
    /// topology has no cell.
    ///
    /// # Examples
    /// ```no_run
    /// use numakit::measure::{measure, MeasureOptions};
    /// let m = measure(&MeasureOptions::quick())?;
    /// let topo = numakit::Topology::detect()?.with_measured(&m)?;
    /// println!("{:?}", topo.nodes_by_distance(numakit::NodeId::new(0))?);
    /// # Ok::<(), numakit::Error>(())
    /// ```
    pub fn with_measured(
        &self,
        measurement: &crate::measure::Measurement,
    ) -> Result<Topology, TopologyError> {
        let mine: Vec<NodeId> = self.node_ids().collect();
        let mismatch = |detail: String| TopologyError::MeasurementMismatch {
            topology: mine.clone(),
            measured: measurement.nodes.clone(),
            detail,
        };
        if measurement.nodes != mine {
            return Err(mismatch(
                "the measurement is of other nodes; measure this machine again".into(),
            ));
        }
        let n = mine.len();
        let mut matrix = vec![None; n * n];
        for cell in &measurement.cells {
            let (Ok(i), Ok(j)) = (
                self.index_of(cell.cpu_node),
                self.index_of(cell.memory_node),
            ) else {
                return Err(mismatch(format!(
                    "a cell names node pair ({}, {}), not both nodes of this machine",
                    cell.cpu_node, cell.memory_node
                )));
            };
            if self.nodes[i].cpus().is_empty() {
                return Err(mismatch(format!(
                    "a cell measures from node {}, which has no CPUs here",
                    cell.cpu_node
                )));
            }
            if !self.nodes[j].has_memory() {
                return Err(mismatch(format!(
                    "a cell measures memory of node {}, which has none here",
                    cell.memory_node
                )));
            }
            matrix[i * n + j] = Some(cell.latency_ps.median);
        }
        let mut missing = Vec::new();
        for (i, cpu) in self.nodes.iter().enumerate() {
            if cpu.cpus().is_empty() {
                continue;
            }
            for (j, mem) in self.nodes.iter().enumerate() {
                if mem.has_memory() && matrix[i * n + j].is_none() {
                    missing.push(format!("({}, {})", cpu.id, mem.id));
                }
            }
        }
        if !missing.is_empty() {
            return Err(mismatch(format!(
                "no latency for (CPU node, memory node) {}; measure every pair (a process \
                 limited to some nodes by a cpuset cannot)",
                missing.join(", ")
            )));
        }
        let mut topo = self.clone();
        topo.measured = Some(matrix);
        Ok(topo)
    }

    /// Whether [`nodes_by_distance`](Self::nodes_by_distance) orders by a
    /// measured latency matrix ([`with_measured`](Self::with_measured)).
    pub fn is_measured(&self) -> bool {
        self.measured.is_some()
    }

    /// The online CPUs of the machine.
    pub fn online_cpus(&self) -> &CpuSet {
        &self.online_cpus
    }

    /// The online CPUs this process may run on (the process's allowed
    /// CPUs, `Cpus_allowed_list`, inside [`online_cpus`](Self::online_cpus)).
    ///
    /// # Errors
    /// As [`Node::allowed_cpus`].
    pub fn allowed_cpus(&self) -> Result<CpuSet, TopologyError> {
        Ok(self.online_cpus.intersection(&allowed::cpus()?))
    }

    /// The nodes this process may place memory on, ascending: the nodes of
    /// this topology that have memory and are in the process's
    /// `Mems_allowed_list` (`/proc/self/status`; a cgroup cpuset's
    /// `cpuset.mems` sets it). Every memory-placing API of numakit refuses
    /// the other nodes with a typed error naming these.
    ///
    /// # Errors
    /// As [`Node::allowed_cpus`].
    ///
    /// # Examples
    /// ```
    /// let topo = numakit::Topology::detect()?;
    /// let mems = topo.mems_allowed()?;
    /// assert!(!mems.is_empty());
    /// assert!(mems.iter().all(|&n| topo.node(n).is_ok_and(|n| n.has_memory())));
    /// # Ok::<(), numakit::Error>(())
    /// ```
    pub fn mems_allowed(&self) -> Result<Vec<NodeId>, TopologyError> {
        let allowed = allowed::mems()?;
        Ok(self
            .nodes
            .iter()
            .filter(|n| n.has_memory() && allowed.contains(n.id))
            .map(Node::id)
            .collect())
    }

    /// The node CPU `cpu` belongs to.
    ///
    /// # Errors
    /// [`TopologyError::NoSuchCpu`] when `cpu` is not online.
    pub fn node_of_cpu(&self, cpu: CpuId) -> Result<NodeId, TopologyError> {
        self.nodes
            .iter()
            .find(|n| n.cpus.contains(cpu))
            .map(Node::id)
            .ok_or_else(|| TopologyError::NoSuchCpu {
                requested: cpu,
                online: self.online_cpus.clone(),
            })
    }

    /// Physical packages (sockets); `None` from the sysfs backend.
    pub fn packages(&self) -> Option<&[Package]> {
        self.hardware.as_ref().map(|h| h.packages.as_slice())
    }

    /// Physical cores; `None` from the sysfs backend.
    pub fn cores(&self) -> Option<&[Core]> {
        self.hardware.as_ref().map(|h| h.cores.as_slice())
    }

    /// CPU caches (data, instruction, unified, every level); `None` from the
    /// sysfs backend.
    pub fn caches(&self) -> Option<&[Cache]> {
        self.hardware.as_ref().map(|h| h.caches.as_slice())
    }
}

/// The CPU the calling thread is running on now (`getcpu(2)`).
///
/// Stale as soon as it returns unless the thread is pinned to one CPU.
///
/// # Errors
/// [`TopologyError::Os`] if `getcpu` fails (it does not on Linux ≥ 2.6.19).
pub fn current_cpu() -> Result<CpuId, TopologyError> {
    crate::sys::sched::getcpu()
        .map(|(cpu, _)| CpuId::new(cpu))
        .map_err(|source| TopologyError::Os {
            call: "getcpu",
            source,
        })
}

/// The NUMA node the calling thread is running on now (`getcpu(2)`).
///
/// Stale as soon as it returns unless the thread is pinned to one node.
///
/// # Errors
/// [`TopologyError::Os`] if `getcpu` fails.
pub fn current_node() -> Result<NodeId, TopologyError> {
    crate::sys::sched::getcpu()
        .map(|(_, node)| NodeId::new(node))
        .map_err(|source| TopologyError::Os {
            call: "getcpu",
            source,
        })
}
