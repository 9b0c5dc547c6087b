//! `tracing` events (feature `tracing`): one per placement decision and
//! refusal, pin and refused pin, migration, and balancer decision. Without
//! the feature every function here is empty and compiles away.
//!
//! Targets and levels:
//!
//! | target | level | event |
//! |---|---|---|
//! | `numakit::mem` | `DEBUG` | memory mapped and bound: `nodes`, `bytes`, `page_kind` |
//! | `numakit::mem` | `WARN` | a placement refused: the same fields and `error` |
//! | `numakit::mem` | `DEBUG` / `WARN` | pages migrated (`address`, `bytes`, `node`, `placement`) / refused |
//! | `numakit::sched` | `DEBUG` | a thread pinned: `cpus`, `memory_node` |
//! | `numakit::sched` | `WARN` | a pin refused: `request`, `error` |
//! | `numakit::balancer` | `INFO` | each balancer event (`event`) |
//!
//! The global allocator (`NodeLocal`) and the node heaps emit nothing:
//! a subscriber allocates, which would re-enter the allocator.

#[cfg(feature = "tracing")]
mod on {
    use crate::mem::{MemError, PageKind, PageMap};
    use crate::sched::balancer::BalancerEvent;
    use crate::sched::{PinGuard, SchedError};
    use crate::topology::{CpuSet, NodeId};

    fn list(nodes: &[NodeId]) -> String {
        nodes
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(crate) fn placed<T>(
        nodes: &[NodeId],
        bytes: usize,
        kind: PageKind,
        r: &Result<T, MemError>,
    ) {
        let nodes = list(nodes);
        match r {
            Ok(_) => tracing::debug!(
                target: "numakit::mem",
                nodes = %nodes, bytes, page_kind = ?kind,
                "memory mapped and bound"
            ),
            Err(e) => tracing::warn!(
                target: "numakit::mem",
                nodes = %nodes, bytes, page_kind = ?kind, error = %e,
                "placement refused"
            ),
        }
    }

    pub(crate) fn migrated(
        address: usize,
        bytes: usize,
        node: NodeId,
        r: &Result<PageMap, MemError>,
    ) {
        match r {
            Ok(p) => tracing::debug!(
                target: "numakit::mem",
                address = %format_args!("{address:#x}"), bytes, node = %node, placement = %p,
                "pages migrated"
            ),
            Err(e) => tracing::warn!(
                target: "numakit::mem",
                address = %format_args!("{address:#x}"), bytes, node = %node, error = %e,
                "migration refused"
            ),
        }
    }

    pub(crate) fn pinned(
        cpus: &CpuSet,
        memory_node: Option<NodeId>,
        r: &Result<PinGuard, SchedError>,
    ) {
        match r {
            Ok(_) => tracing::debug!(
                target: "numakit::sched",
                cpus = %cpus, memory_node = ?memory_node.map(NodeId::get),
                "thread pinned"
            ),
            Err(e) => tracing::warn!(
                target: "numakit::sched",
                cpus = %cpus, memory_node = ?memory_node.map(NodeId::get), error = %e,
                "pin refused by the kernel"
            ),
        }
    }

    pub(crate) fn pin_refused(request: &str, e: &SchedError) {
        tracing::warn!(target: "numakit::sched", request, error = %e, "pin refused");
    }

    pub(crate) fn balancer_event(e: &BalancerEvent) {
        tracing::info!(target: "numakit::balancer", event = %e, "balancer decision");
    }
}

#[cfg(feature = "tracing")]
pub(crate) use on::*;

#[cfg(not(feature = "tracing"))]
mod off {
    use crate::mem::{MemError, PageKind, PageMap};
    use crate::sched::balancer::BalancerEvent;
    use crate::sched::{PinGuard, SchedError};
    use crate::topology::{CpuSet, NodeId};

    #[inline(always)]
    pub(crate) fn placed<T>(_: &[NodeId], _: usize, _: PageKind, _: &Result<T, MemError>) {}
    #[inline(always)]
    pub(crate) fn migrated(_: usize, _: usize, _: NodeId, _: &Result<PageMap, MemError>) {}
    #[inline(always)]
    pub(crate) fn pinned(_: &CpuSet, _: Option<NodeId>, _: &Result<PinGuard, SchedError>) {}
    #[inline(always)]
    pub(crate) fn pin_refused(_: &str, _: &SchedError) {}
    #[inline(always)]
    pub(crate) fn balancer_event(_: &BalancerEvent) {}
}

#[cfg(not(feature = "tracing"))]
pub(crate) use off::*;
