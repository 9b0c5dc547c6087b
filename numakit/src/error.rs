//! [`Error`]: every layer's error, in one type.
//!
//! Each layer has its own error type ([`TopologyError`] for L0, more as
//! layers are added); `numakit::Error` wraps them so that application code
//! can use `?` across layers. Every variant says what was asked, what
//! exists, and what to do.

pub use crate::mem::MemError;
pub use crate::sched::SchedError;
pub use crate::topology::TopologyError;

/// The error type of numakit's public API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the topology layer (L0).
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// From the memory layer (L1).
    #[error(transparent)]
    Mem(#[from] MemError),
    /// From the scheduling layer (L2).
    #[error(transparent)]
    Sched(#[from] SchedError),
}

/// `Result<T, numakit::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
