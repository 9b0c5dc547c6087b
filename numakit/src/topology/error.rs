//! Errors of the topology layer (L0).

use super::{CpuId, CpuSet, NodeId};
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

/// What can go wrong reading the topology or looking something up in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// A node was asked for that the machine does not have.
    #[error(
        "NUMA node {requested} does not exist: this machine has {}; ask for one of those \
         (`cargo run --example topology` or `numactl --hardware` lists them)",
        node_list(available)
    )]
    NoSuchNode {
        /// The node asked for.
        requested: NodeId,
        /// The nodes that exist.
        available: Vec<NodeId>,
    },

    /// A CPU was asked for that is not online.
    #[error("CPU {requested} is not online: the online CPUs are {online}; ask for one of those")]
    NoSuchCpu {
        /// The CPU asked for.
        requested: CpuId,
        /// The CPUs that are online.
        online: CpuSet,
    },

    /// A sysfs file could not be read.
    #[error("cannot read {}: {source} (is sysfs mounted at /sys?)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// A sysfs file did not hold what the kernel documents.
    #[error("cannot parse {}: {detail} (content: {content:?})", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Its content (first line).
        content: String,
        /// What was expected.
        detail: String,
    },

    /// A system call failed.
    #[error("{call} failed: {source}")]
    Os {
        /// The system call.
        call: &'static str,
        /// What the OS said (errno kept).
        #[source]
        source: io::Error,
    },

    /// A measured latency matrix does not fit this topology
    /// ([`Topology::with_measured`](super::Topology::with_measured)).
    #[error(
        "the measurement does not fit this topology ({}; measured: {}): {detail}",
        node_list(topology),
        node_list(measured)
    )]
    MeasurementMismatch {
        /// This topology's nodes.
        topology: Vec<NodeId>,
        /// The measurement's nodes.
        measured: Vec<NodeId>,
        /// What does not fit, and what to do.
        detail: String,
    },

    /// hwloc could not load or describe the topology.
    #[error("hwloc: {0}")]
    Hwloc(String),
}

/// `0, 1 and 3` / `only node 0` / `no nodes at all`.
pub(crate) fn node_list(nodes: &[NodeId]) -> String {
    match nodes {
        [] => "no NUMA nodes at all".to_string(),
        [one] => format!("only node {one}"),
        _ => {
            let mut s = String::from("nodes ");
            for (i, n) in nodes.iter().enumerate() {
                let sep = match i {
                    0 => "",
                    i if i + 1 == nodes.len() => " and ",
                    _ => ", ",
                };
                let _ = write!(s, "{sep}{n}");
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_request_and_alternatives() {
        let e = TopologyError::NoSuchNode {
            requested: NodeId::new(7),
            available: vec![NodeId::new(0), NodeId::new(2)],
        };
        let msg = e.to_string();
        assert!(msg.contains("node 7 does not exist"), "{msg}");
        assert!(msg.contains("nodes 0 and 2"), "{msg}");
        let e = TopologyError::NoSuchNode {
            requested: NodeId::new(1),
            available: vec![NodeId::new(0)],
        };
        assert!(e.to_string().contains("only node 0"));
        assert_eq!(
            node_list(&[NodeId::new(0), NodeId::new(1), NodeId::new(3)]),
            "nodes 0, 1 and 3"
        );
    }
}
