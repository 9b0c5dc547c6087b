//! Errors of the scheduling layer (L2).

use crate::topology::{CpuSet, NodeId, TopologyError};
use std::io;

/// What can go wrong pinning threads or placing thread groups.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedError {
    /// The node or CPU does not exist (names those that do).
    #[error(transparent)]
    Topology(#[from] TopologyError),

    /// The CPUs asked for are not all in the process's allowed set.
    #[error(
        "cannot pin to CPUs {requested} ({what}): CPUs {outside} are outside this process's \
         allowed CPUs {allowed} (set by taskset, a cgroup cpuset or isolcpus); start the \
         process with them allowed, or pin to CPUs inside {allowed}"
    )]
    NotAllowed {
        /// What was asked for, in words ("node 1", "CPU 3").
        what: String,
        /// The CPUs asked for.
        requested: CpuSet,
        /// The ones the process may not use.
        outside: CpuSet,
        /// The process's allowed CPUs.
        allowed: CpuSet,
    },

    /// The node has no CPUs, so no thread can run on it.
    #[error(
        "NUMA node {node} has no CPUs, so no thread can run on it; pin to a node with CPUs \
         (by distance from node {node}: {})",
        nearest.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoCpus {
        /// The node asked for.
        node: NodeId,
        /// Nodes with CPUs, nearest first.
        nearest: Vec<NodeId>,
    },

    /// Memory cannot be bound to the node: it has none.
    #[error(
        "NUMA node {node} has no memory, so the thread's memory policy cannot be bound to it; \
         use Pin::cpu(..).bind_memory(false) to pin the CPU only, or bind to a node with memory"
    )]
    MemorylessNode {
        /// The node whose memory was asked for.
        node: NodeId,
    },

    /// A group placement cannot be satisfied as asked.
    #[error("cannot place {threads} thread(s) with {policy}: {reason}")]
    Unsatisfiable {
        /// The policy, in words.
        policy: String,
        /// Threads asked for.
        threads: usize,
        /// Why, and what would work.
        reason: String,
    },

    /// A system call failed.
    #[error("{call} failed: {source}")]
    Os {
        /// The call.
        call: &'static str,
        /// What the kernel said (errno kept).
        #[source]
        source: io::Error,
    },

    /// A thread could not be started.
    #[error("spawning thread {index} of the group failed: {source}")]
    Spawn {
        /// The thread's index in its group.
        index: usize,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}
