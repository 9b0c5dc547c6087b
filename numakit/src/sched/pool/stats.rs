//! [`PoolStats`] and [`NodeStats`]: what a pool did, per node.

use super::worker::Shared;
use crate::topology::NodeId;
use std::fmt;
use std::sync::atomic::Ordering;

/// Counters of one node's workers and queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStats {
    node: NodeId,
    workers: usize,
    submitted: u64,
    submitted_unbound: u64,
    ran: u64,
    panicked: u64,
    local_steals: u64,
    remote_steals: u64,
}

impl NodeStats {
    /// The node.
    pub fn node(&self) -> NodeId {
        self.node
    }
    /// Its workers.
    pub fn workers(&self) -> usize {
        self.workers
    }
    /// Jobs queued to this node: bound to it, or unbound with it as home
    /// (submissions refused at shutdown included).
    pub fn submitted(&self) -> u64 {
        self.submitted
    }
    /// Of [`submitted`](Self::submitted), the unbound ones.
    pub fn submitted_unbound(&self) -> u64 {
        self.submitted_unbound
    }
    /// Jobs this node's workers ran (returned or panicked), wherever they
    /// were queued.
    pub fn jobs_run(&self) -> u64 {
        self.ran
    }
    /// Of those, jobs that panicked without a handle to report to
    /// (`execute`, `NodeSender::send`); panics of jobs with a handle are
    /// reported by the handle.
    pub fn panicked(&self) -> u64 {
        self.panicked
    }
    /// Jobs this node's workers took from a sibling worker's deque (same
    /// node).
    pub fn local_steals(&self) -> u64 {
        self.local_steals
    }
    /// Unbound jobs this node's workers took from another node's queue.
    pub fn remote_steals(&self) -> u64 {
        self.remote_steals
    }
}

/// Counters of a whole pool, per node; from
/// [`NodePool::stats`](super::NodePool::stats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStats {
    nodes: Vec<NodeStats>,
    cancelled: u64,
}

impl PoolStats {
    /// Per node, by node id.
    pub fn nodes(&self) -> &[NodeStats] {
        &self.nodes
    }
    /// The counters of `node`, if the pool has workers there.
    pub fn node(&self, node: impl Into<NodeId>) -> Option<&NodeStats> {
        let node = node.into();
        self.nodes.iter().find(|n| n.node == node)
    }
    /// Jobs run, all nodes together.
    pub fn jobs_run(&self) -> u64 {
        self.nodes.iter().map(|n| n.ran).sum()
    }
    /// Jobs cancelled by `shutdown_now()` before they ran.
    pub fn cancelled(&self) -> u64 {
        self.cancelled
    }
}

impl fmt::Display for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.nodes {
            writeln!(
                f,
                "node {}: {} workers, {} submitted ({} unbound), {} run, {} panicked, \
                 {} local steals, {} remote steals",
                n.node,
                n.workers,
                n.submitted,
                n.submitted_unbound,
                n.ran,
                n.panicked,
                n.local_steals,
                n.remote_steals
            )?;
        }
        write!(f, "{} cancelled", self.cancelled)
    }
}

pub(super) fn collect(shared: &Shared) -> PoolStats {
    let nodes = shared
        .nodes
        .iter()
        .map(|node| {
            let mut s = NodeStats {
                node: node.id,
                workers: node.workers.len(),
                submitted: node.submitted.load(Ordering::Acquire),
                submitted_unbound: node.submitted_unbound.load(Ordering::Relaxed),
                ran: 0,
                panicked: 0,
                local_steals: 0,
                remote_steals: 0,
            };
            for w in &shared.workers[node.workers.clone()] {
                let c = &w.counters;
                s.ran += c.ran.load(Ordering::Acquire);
                s.panicked += c.panicked.load(Ordering::Relaxed);
                s.local_steals += c.local_steals.load(Ordering::Relaxed);
                s.remote_steals += c.remote_steals.load(Ordering::Relaxed);
            }
            s
        })
        .collect();
    PoolStats {
        nodes,
        cancelled: shared.cancelled.load(Ordering::Acquire),
    }
}
