#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod collections;
pub mod error;
pub mod measure;
pub mod mem;
#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
pub mod rayon;
pub mod sched;
pub mod sync;
/// The raw kernel interface (one wrapper per system call). Reachable for
/// programs that need exactly one call below the safe API, but hidden from
/// the documentation and not covered by semantic versioning: it may change
/// in any release. Prefer [`mem::locate`], [`mem::migrate`] and the
/// topology and scheduling APIs.
#[doc(hidden)]
pub mod sys;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
pub mod topology;
mod trace;

pub use error::{Error, Result};
pub use sync::{CnaLock, McsLock, PartitionedCounter};
pub use topology::{current_cpu, current_node, CpuId, CpuSet, NodeId, Topology};

pub use mem::{NodeBox, NodePlacement, NumaStatic, PerNode, Placed};
pub use numakit_macros::{numa, numa_static, pinned};

/// What the macros' generated code uses; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::mem::node_box::{field_home_agrees, register_placed, NotPlaced, Probe};
    pub use crate::mem::{NodeBox, NodePlacement, NumaStatic, Placed};
    pub use crate::sched::{pin_to_cpu, pin_to_node};
    pub use crate::sync::McsLock;
    pub use crate::{CpuId, Error, NodeId};
    pub use core::ptr;
}
