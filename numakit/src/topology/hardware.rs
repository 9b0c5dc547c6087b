//! Packages, cores and caches, as the hwloc backend reports them.

use super::{CpuSet, NodeId};

/// A physical package (socket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub(crate) id: u32,
    pub(crate) cpus: CpuSet,
    pub(crate) nodes: Vec<NodeId>,
}

impl Package {
    /// The package's OS index (`physical_package_id`).
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Its online CPUs.
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
    /// The NUMA nodes inside it.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }
}

/// A physical core, with its hardware threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Core {
    pub(crate) id: u32,
    pub(crate) package: Option<u32>,
    pub(crate) cpus: CpuSet,
}

impl Core {
    /// The core's OS index (`core_id`; unique only within its package).
    pub fn id(&self) -> u32 {
        self.id
    }
    /// The package it belongs to, if known.
    pub fn package(&self) -> Option<u32> {
        self.package
    }
    /// Its hardware threads (logical CPUs).
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
}

/// What a cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheKind {
    /// Data only.
    Data,
    /// Instructions only.
    Instruction,
    /// Data and instructions.
    Unified,
}

/// A CPU cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    pub(crate) level: u8,
    pub(crate) kind: CacheKind,
    pub(crate) size: u64,
    pub(crate) line_size: u32,
    pub(crate) cpus: CpuSet,
}

impl Cache {
    /// Level: 1 for L1, 2 for L2, ...
    pub fn level(&self) -> u8 {
        self.level
    }
    /// What it holds.
    pub fn kind(&self) -> CacheKind {
        self.kind
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Line size in bytes (0 if unknown).
    pub fn line_size(&self) -> u32 {
        self.line_size
    }
    /// The CPUs that share it.
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
}
