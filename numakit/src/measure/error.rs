//! Errors of the measurement.

use crate::mem::{MemError, PageMap};
use crate::sched::SchedError;
use crate::topology::error::node_list;
use crate::topology::{CpuId, NodeId, TopologyError};

/// What can go wrong measuring the machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// An option of [`MeasureOptions`](super::MeasureOptions) is outside
    /// its range; nothing was measured.
    #[error(
        "measure: {option} = {value} is out of range: give {min} to {max} \
         (MeasureOptions::quick() and ::full() are valid starting points)"
    )]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// The value given.
        value: usize,
        /// The smallest value accepted.
        min: usize,
        /// The largest value accepted.
        max: usize,
    },

    /// No pair of a node this process may run on and a node it may place
    /// memory on: nothing can be measured.
    #[error(
        "measure: nothing to measure: CPUs usable on {}, memory usable on {} \
         (a cgroup cpuset or taskset may have left this process no CPUs or no memory node)",
        node_list(cpu_nodes),
        node_list(memory_nodes)
    )]
    NothingToMeasure {
        /// The nodes with CPUs this process may use.
        cpu_nodes: Vec<NodeId>,
        /// The nodes this process may place memory on.
        memory_nodes: Vec<NodeId>,
    },

    /// The buffer on a memory node could not be made (the node cannot
    /// provide it now, or it is larger than the node).
    #[error(
        "measure: cannot place the {bytes}-byte buffer on node {node}: {source}; \
         ask for smaller buffers (latency_buffer, bandwidth_buffer)"
    )]
    Buffer {
        /// The memory node.
        node: NodeId,
        /// Bytes asked for.
        bytes: usize,
        /// What the memory layer said.
        #[source]
        source: MemError,
    },

    /// The kernel reports pages of a buffer elsewhere than on its node (or
    /// not present): the figures would not be that node's, so none are
    /// given.
    #[error(
        "measure: the buffer for node {node} is not all on node {node} ({found}); \
         refusing to measure a node the memory is not on"
    )]
    Misplaced {
        /// The node the buffer is bound to.
        node: NodeId,
        /// Where the kernel says its pages are.
        found: PageMap,
    },

    /// A measuring thread could not be pinned to its CPU.
    #[error("measure: cannot pin a measuring thread to CPU {cpu} of node {node}: {source}")]
    Pin {
        /// The CPU.
        cpu: CpuId,
        /// Its node.
        node: NodeId,
        /// What the scheduling layer said.
        #[source]
        source: SchedError,
    },

    /// A measuring thread could not be started.
    #[error("measure: cannot start a measuring thread: {0}")]
    Spawn(#[source] std::io::Error),

    /// Reading the topology failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

impl MeasureError {
    pub(super) fn buffer(node: NodeId, bytes: usize, source: MemError) -> Self {
        match source {
            MemError::Misplaced { found, .. } => MeasureError::Misplaced { node, found },
            source => MeasureError::Buffer {
                node,
                bytes,
                source,
            },
        }
    }
}
