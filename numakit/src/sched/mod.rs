//! L2 — threads where their data is: pinning and placement policies for
//! thread groups.
//!
//! - [`pin_to_node`], [`pin_to_cpu`], [`Pin`]: pin the calling thread (CPU
//!   mask and memory policy), with a [`PinGuard`] that restores both;
//! - [`spawn_group`] with a [`ThreadPlacement`]: start N threads, each pinned
//!   before user code runs, or get an error and no threads;
//! - [`NodePool`]: one group of pinned workers per node; jobs bound to a
//!   node run there and nowhere else, unbound jobs are stolen nearest
//!   node first ([`pool`]);
//! - [`Balancer`]: moves registered threads to their memory, or their
//!   memory to them, by an explicit policy ([`balancer`]).
//!
//! # What a pin sets
//!
//! Both per thread:
//!
//! | what | call | effect |
//! |---|---|---|
//! | CPU mask | `sched_setaffinity(2)` | the thread runs only on these CPUs |
//! | memory policy | `set_mempolicy(MPOL_BIND)` | pages it first touches come only from the node |
//!
//! So after `pin_to_node(n)` every page the thread touches *for the first
//! time* comes from node `n`. Memory touched before (a buffer the
//! allocator hands back after a `free`, the thread's stack) stays where it
//! is: data that must be on the node belongs in an
//! [`Arena`](crate::mem::Arena) or [`NodeBox`](crate::mem::NodeBox), or is
//! moved with [`migrate`](crate::mem::migrate). Both are set or neither: if
//! the second step fails the first is undone, and the kernel's answer is
//! read back and compared, so a pin is never partial.
//!
//! # The allowed set
//!
//! numakit never widens what the operator gave the process: a pin may only
//! use CPUs in the **process's allowed set**, the affinity of the process's
//! main thread (what `taskset`, a cgroup cpuset or `isolcpus` left it),
//! read once on first use. Threads narrowed by an earlier pin can still be
//! pinned anywhere inside that set. [`refresh_allowed_cpus`] re-reads it,
//! and every refusal re-reads it first.
//!
//! One rule holds for every API that places threads on a node
//! ([`pin_to_node`], `#[pinned(node = N)]`, [`ThreadPlacement::Node`],
//! [`ThreadPlacement::Compact`], [`ThreadPlacement::Scatter`], [`NodePool`]): the node
//! is used through its CPUs inside the allowed set
//! ([`Node::allowed_cpus`](crate::topology::Node::allowed_cpus)). In a
//! container whose cpuset holds only some CPUs of a node, threads run on
//! those. Only a node with no allowed CPU is refused, with
//! [`SchedError::NodeNotAllowed`], which lists the node's CPUs, the allowed
//! ones, and whether the affinity mask (`taskset`) or the cgroup's
//! `cpuset.cpus` set the limit.
//!
//! Memory is bound only to nodes the process may place memory on
//! (`Mems_allowed`, which a cgroup cpuset's `cpuset.mems` sets;
//! [`Topology::mems_allowed`](crate::Topology::mems_allowed)): a pin that
//! binds memory to another node is refused with
//! [`SchedError::MemoryNotAllowed`]; pools run their workers there with the
//! CPU mask only; `Compact` and `Scatter` leave such nodes out.

pub mod balancer;
mod error;
mod pin;
pub mod pool;
mod spawn;

pub use crate::topology::{current_cpu, current_node};
pub use balancer::{BalancePolicy, BalancedGroup, Balancer, BalancerBuilder};
pub use error::SchedError;
pub use pin::{
    allowed_cpus, pin_to_cpu, pin_to_node, refresh_allowed_cpus, thread_cpus, Pin, PinGuard,
};
pub use pool::{JobHandle, NodeChannel, NodePool, NodeSender, PoolBuilder};
pub use spawn::{spawn_group, GroupHandle, ThreadPlacement, MAX_GROUP_THREADS};
