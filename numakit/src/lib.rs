#![doc = include_str!("../../README.md")]
#![warn(missing_docs)]

pub mod error;
pub mod mem;
pub mod sched;
pub mod sys;
pub mod topology;

pub use error::{Error, Result};
pub use topology::{current_cpu, current_node, CpuId, CpuSet, NodeId, Topology};
