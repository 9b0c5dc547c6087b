//! L2 — threads where their data is: pinning and placement policies for
//! thread groups.
//!
//! - [`pin_to_node`], [`pin_to_cpu`], [`Pin`]: pin the calling thread (CPU
//!   mask and memory policy), with a [`PinGuard`] that restores both;
//! - [`spawn_group`] with a [`Placement`]: start N threads, each pinned
//!   before user code runs, or get an error and no threads.

mod error;
mod pin;
mod spawn;

pub use crate::topology::{current_cpu, current_node};
pub use error::SchedError;
pub use pin::{
    allowed_cpus, pin_to_cpu, pin_to_node, refresh_allowed_cpus, thread_cpus, Pin, PinGuard,
};
pub use spawn::{spawn_group, GroupHandle, Placement};
