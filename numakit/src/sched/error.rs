//! Errors of the scheduling layer (L2).

use crate::topology::{error::node_list, CpuSet, NodeId, Restriction, TopologyError};
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

    /// None of the node's CPUs is in the process's allowed set, so no
    /// thread of this process can run there. (A node with *some* allowed
    /// CPUs is never refused: every placement API uses those.)
    #[error(
        "cannot run threads on NUMA node {node}: none of its CPUs {node_cpus} is among this \
         process's allowed CPUs {allowed}, a limit set by {restriction}; place the threads on a \
         node with allowed CPUs, or start the process with some of CPUs {node_cpus} allowed"
    )]
    NodeNotAllowed {
        /// The node asked for.
        node: NodeId,
        /// The node's CPUs.
        node_cpus: CpuSet,
        /// The process's allowed CPUs.
        allowed: CpuSet,
        /// Where the limit comes from.
        restriction: Restriction,
    },

    /// Memory cannot be bound to the node: it is outside the memory nodes
    /// this process may use (`Mems_allowed`, set by a cgroup cpuset's
    /// `cpuset.mems`).
    #[error(
        "cannot bind memory to NUMA node {node}: it is outside the memory nodes this process \
         may use ({}), a limit set by {restriction}; use Pin::node(..).bind_memory(false) to \
         pin the CPUs only, or bind to one of those nodes",
        node_list(mems_allowed)
    )]
    MemoryNotAllowed {
        /// The node whose memory was asked for.
        node: NodeId,
        /// The nodes the process may place memory on.
        mems_allowed: Vec<NodeId>,
        /// Where the limit comes from.
        restriction: Restriction,
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

    /// The calling thread may run on CPUs of several nodes (or of none the
    /// pool serves), so "its node" is not defined and no job is queued.
    #[error(
        "the calling thread is not pinned to one NUMA node: it may run on CPUs {cpus} \
         ({}), so `submit_local` cannot tell which node is meant; pin the thread \
         first (numakit::sched::pin_to_node) or name the node with `submit_to(node, ..)`",
        node_list(nodes)
    )]
    NotPinned {
        /// The thread's allowed CPUs.
        cpus: CpuSet,
        /// The nodes those CPUs belong to.
        nodes: Vec<NodeId>,
    },

    /// The node exists and has CPUs, but the pool has no workers there.
    #[error(
        "the pool has no workers on NUMA node {node}: it serves {}{}; build the pool \
         with that node (NodePool::builder().nodes(..)) or submit to one of its nodes",
        node_list(pool_nodes),
        if reason.is_empty() { String::new() } else { format!(" ({reason})") }
    )]
    NodeNotInPool {
        /// The node asked for.
        node: NodeId,
        /// The nodes the pool has workers on.
        pool_nodes: Vec<NodeId>,
        /// Why the node was left out, when known.
        reason: String,
    },

    /// The pool is shutting down or shut down: it takes no new jobs.
    #[error(
        "the pool is shut down ({how}) and takes no new jobs; {what} was not queued — \
         build a new pool, or submit before calling shutdown()"
    )]
    PoolShutDown {
        /// What was refused, in words ("a job for node 1").
        what: String,
        /// `shutdown()` (draining) or `shutdown_now()` (cancelling).
        how: &'static str,
    },

    /// The job panicked; the worker caught the panic and lives on.
    #[error("the job{} panicked: {message}", on_node(*node))]
    JobPanicked {
        /// The node the job was bound to (`None` for unbound jobs).
        node: Option<NodeId>,
        /// The panic message (or a note that the payload was not a string).
        message: String,
    },

    /// The job never ran: the pool was stopped with `shutdown_now()` (or its
    /// queues were dropped) first.
    #[error(
        "the job{} was cancelled before it ran: the pool was stopped with shutdown_now() \
         (or dropped while unreachable); use shutdown() to let queued jobs finish",
        on_node(*node)
    )]
    JobCancelled {
        /// The node the job was bound to (`None` for unbound jobs).
        node: Option<NodeId>,
    },

    /// A builder option that cannot be honoured.
    #[error("invalid {what}: {reason}")]
    InvalidConfig {
        /// The option, in words.
        what: &'static str,
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

fn on_node(node: Option<NodeId>) -> String {
    node.map(|n| format!(" for NUMA node {n}"))
        .unwrap_or_default()
}
