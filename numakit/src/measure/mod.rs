//! Measure the machine's NUMA costs: load-to-use latency, read and
//! read/write bandwidth for every pair of (CPU node, memory node), and the
//! cost of handing a cache line between CPUs of two nodes.
//!
//! The firmware's distance table (SLIT, [`Topology::distance`](crate::Topology::distance)) is a
//! promise; these are figures. For every node with CPUs this process may
//! use and every node it may place memory on:
//!
//! - **latency**: one thread pinned to a CPU of the CPU node follows a
//!   chain of dependent loads through a buffer on the memory node, one
//!   cache line per load, in the order of a random cyclic permutation (no
//!   prefetcher can guess it), over a buffer much larger than the last-level
//!   cache. The buffer uses 2 MiB hugetlb pages when the node's pool has
//!   enough free, else transparent hugepages are asked for (the kernel may
//!   back some of them with base pages, and then TLB misses add to the
//!   figure); [`Buffer`] says which.
//! - **bandwidth**: one thread pinned to each CPU of the CPU node streams
//!   its share of a buffer on the memory node: reading it (read), or adding
//!   one to every word in place (read/write, counted as the bytes read plus
//!   the bytes written).
//! - **handoff**: two threads pinned to a CPU of each node bounce one cache
//!   line; the figure is half a round trip.
//!
//! Buffers are node-bound [`Arena`](crate::mem::Arena)s, and the kernel is
//! asked where every page is (`move_pages(2)`) before anything is timed: a
//! buffer not wholly on its node is refused with
//! [`MeasureError::Misplaced`], never measured as if it were. Each figure
//! is the median of [`MeasureOptions::repetitions`] runs with its
//! [`Spread`].
//!
//! [`Topology::with_measured`](crate::Topology::with_measured) orders nodes by the measured latency instead
//! of the SLIT.
//!
//! # Examples
//! ```
//! use numakit::measure::{measure, MeasureOptions};
//! // `MeasureOptions::quick()` (a few seconds) or `::full()` as they are;
//! // smaller here so that the example runs in a moment.
//! let opts = MeasureOptions::quick()
//!     .latency_buffer(8 << 20)
//!     .bandwidth_buffer(8 << 20)
//!     .chase_loads(10_000)
//!     .handoff_round_trips(1_000);
//! let m = measure(&opts)?;
//! for cell in &m.cells {
//!     println!(
//!         "CPU node {} -> memory node {}: {:.1} ns, read {} MB/s",
//!         cell.cpu_node,
//!         cell.memory_node,
//!         cell.latency_ps.median as f64 / 1000.0,
//!         cell.read_mb_s.median,
//!     );
//! }
//! // Every buffer was checked on its node before it was timed.
//! assert!(m.buffers.iter().all(|b| b.verified_pages > 0));
//! // Order nodes by what was measured, not by the firmware's table.
//! let topo = numakit::Topology::detect()?.with_measured(&m)?;
//! let first = m.cpu_nodes[0];
//! assert_eq!(topo.nodes_by_distance(first)?[0], first);
//! # Ok::<(), numakit::Error>(())
//! ```

mod error;
mod run;

pub use error::MeasureError;
pub use run::measure;

use crate::topology::NodeId;

const MIB: usize = 1 << 20;

/// What to measure and how long: buffer sizes, loads per chase, round
/// trips, repetitions. Start from [`quick`](Self::quick) or
/// [`full`](Self::full); [`measure`] checks every option against its range
/// ([`MeasureOptions::validate`]) before touching memory.
///
/// # Examples
/// ```
/// use numakit::measure::{MeasureError, MeasureOptions};
/// let opts = MeasureOptions::quick().repetitions(5);
/// assert!(opts.validate().is_ok());
/// assert!(matches!(
///     MeasureOptions::quick().repetitions(0).validate(),
///     Err(MeasureError::InvalidOption { option: "repetitions", .. })
/// ));
/// ```
///
/// The fields are public to read (and to set, like the builder methods);
/// [`measure`] validates them whichever way they were set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct MeasureOptions {
    /// Runs per figure; the figure is their median.
    pub repetitions: usize,
    /// Bytes of the pointer-chase buffer on each memory node.
    pub latency_buffer: usize,
    /// Dependent loads timed per latency run.
    pub chase_loads: usize,
    /// Bytes of the streamed buffer on each memory node.
    pub bandwidth_buffer: usize,
    /// Cache-line round trips timed per handoff run.
    pub handoff_round_trips: usize,
    /// Whether 2 MiB hugetlb pages are used when a node's pool has them.
    pub hugepages: bool,
}

/// The accepted range of [`MeasureOptions::repetitions`].
pub const REPETITIONS: (usize, usize) = (1, 1000);
/// The accepted range of the buffer sizes, in bytes (1 MiB to 64 GiB).
pub const BUFFER_BYTES: (usize, usize) = (MIB, 64 << 30);
/// The accepted range of [`MeasureOptions::chase_loads`].
pub const CHASE_LOADS: (usize, usize) = (1, 1 << 30);
/// The accepted range of [`MeasureOptions::handoff_round_trips`].
pub const HANDOFF_ROUND_TRIPS: (usize, usize) = (1, 1 << 24);

impl MeasureOptions {
    /// A first look in well under a second per node pair on a server:
    /// 128 MiB buffers, 3 repetitions, 100 000 dependent loads and 10 000
    /// round trips per run.
    pub fn quick() -> Self {
        MeasureOptions {
            repetitions: 3,
            latency_buffer: 128 * MIB,
            chase_loads: 100_000,
            bandwidth_buffer: 128 * MIB,
            handoff_round_trips: 10_000,
            hugepages: true,
        }
    }

    /// Figures to publish: 1 GiB buffers (each memory node needs 2 GiB
    /// free), 9 repetitions, 5 million loads and 200 000 round trips per
    /// run.
    pub fn full() -> Self {
        MeasureOptions {
            repetitions: 9,
            latency_buffer: 1 << 30,
            chase_loads: 5_000_000,
            bandwidth_buffer: 1 << 30,
            handoff_round_trips: 200_000,
            hugepages: true,
        }
    }

    /// Runs per figure; the figure is their median (range [`REPETITIONS`]).
    pub fn repetitions(mut self, n: usize) -> Self {
        self.repetitions = n;
        self
    }
    /// Bytes of the pointer-chase buffer on each memory node (range
    /// [`BUFFER_BYTES`]); make it several times the last-level cache.
    pub fn latency_buffer(mut self, bytes: usize) -> Self {
        self.latency_buffer = bytes;
        self
    }
    /// Dependent loads timed per latency run (range [`CHASE_LOADS`]).
    pub fn chase_loads(mut self, n: usize) -> Self {
        self.chase_loads = n;
        self
    }
    /// Bytes of the streamed buffer on each memory node (range
    /// [`BUFFER_BYTES`]).
    pub fn bandwidth_buffer(mut self, bytes: usize) -> Self {
        self.bandwidth_buffer = bytes;
        self
    }
    /// Cache-line round trips timed per handoff run (range
    /// [`HANDOFF_ROUND_TRIPS`]).
    pub fn handoff_round_trips(mut self, n: usize) -> Self {
        self.handoff_round_trips = n;
        self
    }
    /// Whether to use 2 MiB hugetlb pages when a node's pool has them
    /// free (default `true`); without, transparent hugepages are asked for.
    pub fn hugepages(mut self, use_them: bool) -> Self {
        self.hugepages = use_them;
        self
    }

    /// Check every option against its range.
    ///
    /// # Errors
    /// [`MeasureError::InvalidOption`] naming the first option out of
    /// range, its value and the range.
    pub fn validate(&self) -> Result<(), MeasureError> {
        let check = |option, value: usize, (min, max): (usize, usize)| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(MeasureError::InvalidOption {
                    option,
                    value,
                    min,
                    max,
                })
            }
        };
        check("repetitions", self.repetitions, REPETITIONS)?;
        check("latency_buffer", self.latency_buffer, BUFFER_BYTES)?;
        check("chase_loads", self.chase_loads, CHASE_LOADS)?;
        check("bandwidth_buffer", self.bandwidth_buffer, BUFFER_BYTES)?;
        check(
            "handoff_round_trips",
            self.handoff_round_trips,
            HANDOFF_ROUND_TRIPS,
        )
    }
}

/// A figure over repetitions: median and spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Spread {
    /// The median (of an even count, the lower middle value).
    pub median: u64,
    /// The smallest run.
    pub min: u64,
    /// The largest run.
    pub max: u64,
    /// How many runs.
    pub runs: usize,
}

impl Spread {
    /// The spread of `samples`; `None` when there are none.
    pub fn of(samples: &[u64]) -> Option<Spread> {
        let mut s = samples.to_vec();
        s.sort_unstable();
        Some(Spread {
            median: *s.get((s.len().checked_sub(1)?) / 2)?,
            min: *s.first()?,
            max: *s.last()?,
            runs: s.len(),
        })
    }
}

/// The figures of one (CPU node, memory node) pair.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct NodePair {
    /// The node whose CPUs ran the threads.
    pub cpu_node: NodeId,
    /// The node the buffer was on.
    pub memory_node: NodeId,
    /// Load-to-use latency of one dependent load, in picoseconds.
    pub latency_ps: Spread,
    /// Read bandwidth, in MB/s (10⁶ bytes per second).
    pub read_mb_s: Spread,
    /// Read/write bandwidth (bytes read plus bytes written), in MB/s.
    pub read_write_mb_s: Spread,
    /// The threads that streamed (one per CPU of `cpu_node` this process
    /// may use).
    pub bandwidth_threads: usize,
}

/// The cost of handing one cache line between a CPU of each of two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Handoff {
    /// The first node.
    pub from_node: NodeId,
    /// The second node (the same node: two of its CPUs).
    pub to_node: NodeId,
    /// The first thread's CPU.
    pub from_cpu: u32,
    /// The second thread's CPU.
    pub to_cpu: u32,
    /// The node the cache line's memory is on.
    pub line_node: NodeId,
    /// Half a round trip, in picoseconds.
    pub one_way_ps: Spread,
}

/// The buffer on one memory node: its pages and the proof of placement.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Buffer {
    /// The memory node.
    pub node: NodeId,
    /// Bytes of the arena (both buffers and the handoff line).
    pub bytes: usize,
    /// Whether the pages are 2 MiB hugetlb pages (`false`: transparent
    /// hugepages were asked for, or base pages).
    pub hugetlb: bool,
    /// The page kind, in words.
    pub pages: String,
    /// The page size the placement was checked with, in bytes.
    pub page_size: usize,
    /// Pages the kernel reported on `node` before measuring (all of them:
    /// otherwise the measurement is refused).
    pub verified_pages: usize,
}

/// Everything [`measure`] found, rows and columns by node id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Measurement {
    /// The options it ran with.
    pub options: MeasureOptions,
    /// Every node of the machine, ascending.
    pub nodes: Vec<NodeId>,
    /// The firmware's distance table (SLIT), rows and columns in `nodes`
    /// order.
    pub slit: Vec<Vec<u32>>,
    /// The nodes whose CPUs ran measuring threads (those with CPUs this
    /// process may use).
    pub cpu_nodes: Vec<NodeId>,
    /// The nodes that held buffers (those with memory this process may
    /// use).
    pub memory_nodes: Vec<NodeId>,
    /// The last-level cache of the first measuring CPU, in bytes, when
    /// sysfs says.
    pub llc_bytes: Option<u64>,
    /// One buffer per memory node.
    pub buffers: Vec<Buffer>,
    /// One cell per (CPU node, memory node), CPU node major.
    pub cells: Vec<NodePair>,
    /// One handoff per pair of CPU nodes (the same node when it has two
    /// CPUs this process may use).
    pub handoffs: Vec<Handoff>,
    /// Whether the measuring code was compiled without optimisation (a
    /// debug build): its loops then cost more than the memory does, and
    /// the figures say little about the machine.
    pub debug_build: bool,
}

impl Measurement {
    /// The cell of (`cpu_node`, `memory_node`), if measured.
    pub fn cell(&self, cpu_node: NodeId, memory_node: NodeId) -> Option<&NodePair> {
        self.cells
            .iter()
            .find(|c| c.cpu_node == cpu_node && c.memory_node == memory_node)
    }

    /// The handoff between `a` and `b` (either order), if measured.
    pub fn handoff(&self, a: NodeId, b: NodeId) -> Option<&Handoff> {
        self.handoffs
            .iter()
            .find(|h| (h.from_node == a && h.to_node == b) || (h.from_node == b && h.to_node == a))
    }

    /// The firmware's SLIT distance from `from` to `to`, if both nodes are
    /// in [`nodes`](Self::nodes).
    pub fn slit_distance(&self, from: NodeId, to: NodeId) -> Option<u32> {
        let i = self.nodes.iter().position(|&n| n == from)?;
        let j = self.nodes.iter().position(|&n| n == to)?;
        self.slit.get(i)?.get(j).copied()
    }

    /// The measured latency from `cpu_node` to `memory_node` over the
    /// lowest latency measured from `cpu_node` (its local memory, or the
    /// nearest for a memoryless node): 1.0 for the nearest, directly
    /// comparable with the SLIT's distance / 10.
    pub fn latency_ratio(&self, cpu_node: NodeId, memory_node: NodeId) -> Option<f64> {
        let cell = self.cell(cpu_node, memory_node)?;
        let best = self
            .cells
            .iter()
            .filter(|c| c.cpu_node == cpu_node)
            .map(|c| c.latency_ps.median)
            .min()?;
        (best > 0).then(|| cell.latency_ps.median as f64 / best as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_nothing_is_none_and_of_one_is_that_one() {
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[7]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (7, 7, 7, 1));
        let s = Spread::of(&[9, 1, 5, 3]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (3, 1, 9, 4));
        let s = Spread::of(&[u64::MAX, 0, 2]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2, 0, u64::MAX));
    }

    #[test]
    fn options_are_checked_at_their_boundaries() {
        assert!(MeasureOptions::quick().validate().is_ok());
        assert!(MeasureOptions::full().validate().is_ok());
        type Set = fn(MeasureOptions, usize) -> MeasureOptions;
        let cases: [(&str, Set, (usize, usize)); 5] = [
            ("repetitions", MeasureOptions::repetitions, REPETITIONS),
            (
                "latency_buffer",
                MeasureOptions::latency_buffer,
                BUFFER_BYTES,
            ),
            ("chase_loads", MeasureOptions::chase_loads, CHASE_LOADS),
            (
                "bandwidth_buffer",
                MeasureOptions::bandwidth_buffer,
                BUFFER_BYTES,
            ),
            (
                "handoff_round_trips",
                MeasureOptions::handoff_round_trips,
                HANDOFF_ROUND_TRIPS,
            ),
        ];
        for (name, set, (min, max)) in cases {
            for ok in [min, min + 1, max] {
                assert!(
                    set(MeasureOptions::quick(), ok).validate().is_ok(),
                    "{name}={ok}"
                );
            }
            let mut bad = vec![0, max + 1, usize::MAX, u32::MAX as usize + 1];
            if min > 1 {
                bad.extend([1, min - 1]);
            }
            for value in bad {
                if (min..=max).contains(&value) {
                    continue;
                }
                match set(MeasureOptions::quick(), value).validate() {
                    Err(MeasureError::InvalidOption {
                        option,
                        value: v,
                        min: lo,
                        max: hi,
                    }) => {
                        assert_eq!((option, v, lo, hi), (name, value, min, max));
                    }
                    other => panic!("{name}={value}: {other:?}"),
                }
            }
        }
        let msg = MeasureOptions::quick()
            .repetitions(0)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("repetitions = 0") && msg.contains("1 to 1000"),
            "{msg}"
        );
    }

    use crate::topology::{Backend, CpuId, Node, Topology, TopologyError};

    fn id(n: u32) -> NodeId {
        NodeId::new(n)
    }

    /// Node 0: CPUs 0-1 and memory; node 1: CPUs 2-3 and memory; node 2:
    /// memory only; node 3: CPU 4 only. SLIT: 1 is nearer to 0 than 2.
    fn machine() -> Topology {
        let cpus = |c: &[u32]| c.iter().map(|&c| CpuId::new(c)).collect();
        let nodes = vec![
            Node::new(id(0), cpus(&[0, 1]), 1 << 30, 1 << 29, vec![]),
            Node::new(id(1), cpus(&[2, 3]), 1 << 30, 1 << 29, vec![]),
            Node::new(id(2), cpus(&[]), 1 << 30, 1 << 29, vec![]),
            Node::new(id(3), cpus(&[4]), 0, 0, vec![]),
        ];
        let d = vec![
            vec![10, 20, 30, 40],
            vec![20, 10, 30, 40],
            vec![30, 30, 10, 40],
            vec![40, 40, 40, 10],
        ];
        Topology::from_parts(Backend::Sysfs, nodes, d, cpus(&[0, 1, 2, 3, 4]), None)
    }

    fn one(v: u64) -> Spread {
        Spread::of(&[v]).unwrap()
    }

    /// Every (CPU node, memory node) cell of [`machine`]; from node 0,
    /// node 2 measures nearer than node 1 (against the SLIT).
    fn measurement() -> Measurement {
        let topo = machine();
        let latency = |c: u32, m: u32| match (c, m) {
            (a, b) if a == b => 80_000,
            (0, 2) => 100_000,
            (0, 1) => 150_000,
            (3, 1) => 90_000,
            _ => 130_000,
        };
        let mut cells = Vec::new();
        for c in [0, 1, 3] {
            for m in [0, 1, 2] {
                cells.push(NodePair {
                    cpu_node: id(c),
                    memory_node: id(m),
                    latency_ps: one(latency(c, m)),
                    read_mb_s: one(10_000),
                    read_write_mb_s: one(12_000),
                    bandwidth_threads: 1,
                });
            }
        }
        Measurement {
            options: MeasureOptions::quick(),
            nodes: topo.node_ids().collect(),
            slit: topo
                .node_ids()
                .map(|a| {
                    topo.node_ids()
                        .map(|b| topo.distance(a, b).unwrap())
                        .collect()
                })
                .collect(),
            cpu_nodes: vec![id(0), id(1), id(3)],
            memory_nodes: vec![id(0), id(1), id(2)],
            llc_bytes: None,
            buffers: vec![],
            cells,
            handoffs: vec![],
            debug_build: false,
        }
    }

    #[test]
    fn measured_latency_orders_nodes_instead_of_the_slit() {
        let topo = machine();
        assert!(!topo.is_measured());
        assert_eq!(
            topo.nodes_by_distance(id(0)).unwrap(),
            [id(0), id(1), id(2), id(3)]
        );
        let m = measurement();
        let measured = topo.with_measured(&m).unwrap();
        assert!(measured.is_measured());
        // Node 2's memory measured nearer than node 1's; memoryless node 3
        // comes after every measured node.
        assert_eq!(
            measured.nodes_by_distance(id(0)).unwrap(),
            [id(0), id(2), id(1), id(3)]
        );
        // A memoryless CPU node: its own id first, then by measured latency.
        assert_eq!(
            measured.nodes_by_distance(id(3)).unwrap(),
            [id(3), id(1), id(0), id(2)]
        );
        // A CPU-less node has no measured row: the SLIT order stays.
        assert_eq!(
            measured.nodes_by_distance(id(2)).unwrap(),
            [id(2), id(0), id(1), id(3)]
        );
        // The SLIT itself is untouched.
        assert_eq!(measured.distance(id(0), id(2)).unwrap(), 30);
        assert!(matches!(
            measured.nodes_by_distance(id(4)),
            Err(TopologyError::NoSuchNode { .. })
        ));
        assert_eq!(m.latency_ratio(id(0), id(1)), Some(150_000.0 / 80_000.0));
        assert_eq!(m.latency_ratio(id(0), id(3)), None);
        assert_eq!(m.slit_distance(id(0), id(2)), Some(30));
        assert_eq!(m.slit_distance(id(0), id(9)), None);
    }

    #[test]
    fn a_measurement_of_another_machine_is_refused() {
        let topo = machine();
        let mismatch = |m: &Measurement| match topo.with_measured(m) {
            Err(e @ TopologyError::MeasurementMismatch { .. }) => e.to_string(),
            other => panic!("expected MeasurementMismatch, got {other:?}"),
        };
        // Other node count.
        let mut m = measurement();
        m.nodes.pop();
        let msg = mismatch(&m);
        assert!(msg.contains("other nodes"), "{msg}");
        // No nodes at all.
        let mut m = measurement();
        m.nodes.clear();
        mismatch(&m);
        // A missing cell.
        let mut m = measurement();
        m.cells
            .retain(|c| !(c.cpu_node == id(1) && c.memory_node == id(2)));
        let msg = mismatch(&m);
        assert!(msg.contains("(1, 2)"), "{msg}");
        // No cells.
        let mut m = measurement();
        m.cells.clear();
        mismatch(&m);
        // A cell naming a node that does not exist.
        let mut m = measurement();
        m.cells[0].memory_node = id(u32::MAX);
        let msg = mismatch(&m);
        assert!(msg.contains("4294967295"), "{msg}");
        // A cell measuring memory of the memoryless node.
        let mut m = measurement();
        m.cells[0].memory_node = id(3);
        let msg = mismatch(&m);
        assert!(msg.contains("node 3, which has none"), "{msg}");
        // A cell measured from the CPU-less node.
        let mut m = measurement();
        m.cells[0].cpu_node = id(2);
        let msg = mismatch(&m);
        assert!(msg.contains("node 2, which has no CPUs"), "{msg}");
    }
}
