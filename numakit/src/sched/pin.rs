//! Pinning the calling thread: [`Pin`], [`pin_to_node`], [`pin_to_cpu`] and
//! the [`PinGuard`] that puts the old placement back (see the
//! [module docs](crate::sched) for what a pin sets).

use super::SchedError;
use crate::sys::{mem as sysmem, sched as syssched};
use crate::topology::{allowed, CpuId, CpuSet, NodeId, Topology};
use std::marker::PhantomData;

/// What to pin the calling thread to; build with [`Pin::node`] or
/// [`Pin::cpu`], then [`apply`](Pin::apply).
///
/// # Examples
/// ```
/// use numakit::sched::Pin;
/// # std::thread::spawn(|| {
/// let guard = Pin::node(0).apply()?;
/// assert_eq!(numakit::current_node()?, numakit::NodeId::new(0));
/// drop(guard); // old CPU mask and memory policy are back
/// # Ok::<(), numakit::Error>(())
/// # }).join().unwrap().unwrap();
/// ```
#[derive(Clone, Debug)]
#[must_use = "a Pin does nothing until .apply()"]
pub struct Pin {
    target: Target,
    bind_memory: bool,
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Node(NodeId),
    Cpu(CpuId),
}

impl Pin {
    /// Pin to the CPUs of `node` this process may use (all of them unless
    /// `taskset` or a cgroup cpuset left it only some), memory bound to
    /// `node`.
    pub fn node(node: impl Into<NodeId>) -> Self {
        Pin {
            target: Target::Node(node.into()),
            bind_memory: true,
        }
    }
    /// Pin to CPU `cpu`, memory bound to that CPU's node.
    pub fn cpu(cpu: impl Into<CpuId>) -> Self {
        Pin {
            target: Target::Cpu(cpu.into()),
            bind_memory: true,
        }
    }
    /// Whether to bind the thread's memory policy too (default `true`).
    /// `false` changes only the CPU mask (needed for CPUs of a memoryless
    /// node).
    pub fn bind_memory(mut self, bind: bool) -> Self {
        self.bind_memory = bind;
        self
    }

    /// The CPUs and the memory node this pin stands for, checked against the
    /// topology and the allowed sets.
    pub(crate) fn resolve(&self, topo: &Topology) -> Result<(CpuSet, Option<NodeId>), SchedError> {
        let (cpus, node) = match self.target {
            Target::Node(node) => (node_cpus(topo, node)?, node),
            Target::Cpu(cpu) => {
                let node = topo.node_of_cpu(cpu)?;
                let cpus: CpuSet = [cpu].into_iter().collect();
                check_allowed(&cpus, &format!("CPU {cpu}"))?;
                (cpus, node)
            }
        };
        let mem_node = if self.bind_memory {
            check_memory(topo, node)?;
            Some(node)
        } else {
            None
        };
        Ok((cpus, mem_node))
    }

    /// What this pin would apply, checked as [`apply`](Self::apply) checks
    /// it and changing nothing: the CPUs (those of the node this process may
    /// use, or the one CPU) and the node memory would be bound to (`None`
    /// with [`bind_memory(false)`](Self::bind_memory)). For a program that
    /// applies the pin elsewhere, e.g. to a process it is about to start.
    ///
    /// # Errors
    /// As [`apply`](Self::apply), except [`SchedError::Os`] for the
    /// affinity and policy calls it does not make.
    pub fn plan(&self) -> Result<(CpuSet, Option<NodeId>), SchedError> {
        self.resolve(&*Topology::current()?)
    }

    /// Pin the calling thread.
    ///
    /// # Errors
    /// - [`SchedError::Topology`]: the node or CPU does not exist;
    /// - [`SchedError::NoCpus`]: the node has no CPUs;
    /// - [`SchedError::NodeNotAllowed`]: none of the node's CPUs is in the
    ///   process's allowed set (a node with some allowed CPUs is pinned to
    ///   those: [`Node::allowed_cpus`](crate::topology::Node::allowed_cpus));
    /// - [`SchedError::NotAllowed`]: the CPU is outside the process's
    ///   allowed set;
    /// - [`SchedError::MemorylessNode`]: memory binding asked for a node
    ///   without memory;
    /// - [`SchedError::MemoryNotAllowed`]: memory binding asked for a node
    ///   outside the process's memory nodes (`Mems_allowed`);
    /// - [`SchedError::Os`]: the kernel refused (nothing is left changed).
    pub fn apply(&self) -> Result<PinGuard, SchedError> {
        let r = Topology::current()
            .map_err(SchedError::from)
            .and_then(|topo| self.resolve(&topo));
        if let Err(e) = &r {
            crate::trace::pin_refused(&format!("{self:?}"), e);
        }
        let (cpus, mem_node) = r?;
        pin_current(&cpus, mem_node)
    }
}

/// Pin the calling thread to `node`'s CPUs (those in the process's allowed
/// set) and bind its memory policy to `node`; the guard restores both. See
/// [`Pin::apply`] for the errors.
///
/// # Errors
/// As [`Pin::apply`].
pub fn pin_to_node(node: impl Into<NodeId>) -> Result<PinGuard, SchedError> {
    Pin::node(node).apply()
}

/// Pin the calling thread to `cpu` and bind its memory policy to that
/// CPU's node; the guard restores both.
///
/// # Errors
/// As [`Pin::apply`].
pub fn pin_to_cpu(cpu: impl Into<CpuId>) -> Result<PinGuard, SchedError> {
    Pin::cpu(cpu).apply()
}

/// The calling thread's CPU mask now (`sched_getaffinity(2)`).
///
/// # Errors
/// [`SchedError::Os`] if the call fails.
pub fn thread_cpus() -> Result<CpuSet, SchedError> {
    syssched::sched_getaffinity(0)
        .map(|m| CpuSet::from_mask(&m))
        .map_err(|source| SchedError::Os {
            call: "sched_getaffinity",
            source,
        })
}

/// Restores the calling thread's CPU mask and memory policy as they were
/// before the pin, when dropped (also during a panic's unwinding).
///
/// Not `Send`: it must be dropped by the thread it pinned. Nested guards
/// restore in reverse order of creation; dropping them in another order
/// leaves the placement of whichever was dropped last.
#[must_use = "dropping the guard unpins the thread at once"]
#[derive(Debug)]
pub struct PinGuard {
    old_cpus: Vec<libc::c_ulong>,
    old_policy: Option<(i32, Vec<libc::c_ulong>)>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some((mode, mask)) = &self.old_policy {
            let mask: &[libc::c_ulong] = if *mode == sysmem::MPOL_DEFAULT {
                &[]
            } else {
                mask
            };
            let _ = sysmem::set_mempolicy(*mode, mask);
        }
        let _ = syssched::sched_setaffinity(0, &self.old_cpus);
        crate::mem::NodeLocal::refresh();
    }
}

/// Words in a node mask big enough for any kernel (`MAX_NUMNODES` <= 1024).
const NODE_MASK_WORDS: usize = 1024 / libc::c_ulong::BITS as usize;

/// Set the calling thread's mask to `cpus` and, with `mem_node`, its memory
/// policy to `MPOL_BIND` on it; all or nothing.
pub(crate) fn pin_current(cpus: &CpuSet, mem_node: Option<NodeId>) -> Result<PinGuard, SchedError> {
    let r = pin_current_untraced(cpus, mem_node);
    crate::trace::pinned(cpus, mem_node, &r);
    r
}

fn pin_current_untraced(cpus: &CpuSet, mem_node: Option<NodeId>) -> Result<PinGuard, SchedError> {
    let os = |call, source| SchedError::Os { call, source };
    let old_cpus = syssched::sched_getaffinity(0).map_err(|e| os("sched_getaffinity", e))?;
    let old_policy = match mem_node {
        Some(node) => {
            let mut old_mask = vec![0; NODE_MASK_WORDS];
            let mode = sysmem::get_mempolicy(&mut old_mask, std::ptr::null(), 0)
                .map_err(|e| os("get_mempolicy", e))?;
            sysmem::set_mempolicy(sysmem::MPOL_BIND, &sysmem::node_mask(node.get()))
                .map_err(|e| os("set_mempolicy(MPOL_BIND)", e))?;
            Some((mode, old_mask))
        }
        None => None,
    };
    // From here on the guard undoes whatever was done, on every path.
    let guard = PinGuard {
        old_cpus,
        old_policy,
        _not_send: PhantomData,
    };
    syssched::sched_setaffinity(0, &cpus.to_mask()).map_err(|e| os("sched_setaffinity", e))?;
    let now = thread_cpus()?;
    if &now != cpus {
        // The kernel narrowed the mask (a cgroup cpuset changed under us).
        return Err(SchedError::NotAllowed {
            what: format!("CPUs {cpus}"),
            requested: cpus.clone(),
            outside: cpus.difference(&now),
            allowed: now,
        });
    }
    // NodeLocal's next allocations are for the new node.
    crate::mem::NodeLocal::refresh();
    Ok(guard)
}

/// The process's allowed CPUs: the main thread's affinity as first read
/// (see [the allowed set](crate::sched#the-allowed-set)).
///
/// # Errors
/// [`SchedError::Topology`] if `/proc/self/status` cannot be read.
pub fn allowed_cpus() -> Result<CpuSet, SchedError> {
    Ok(allowed::cpus()?)
}

/// Re-read the process's allowed CPUs from the main thread's affinity
/// (`Cpus_allowed_list` in `/proc/self/status`) and return them; call it
/// after the operator changed the process's CPUs (`taskset -p`, cgroup).
///
/// # Errors
/// [`SchedError::Topology`] if `/proc/self/status` cannot be read or parsed.
pub fn refresh_allowed_cpus() -> Result<CpuSet, SchedError> {
    Ok(allowed::refresh_cpus()?)
}

/// The CPUs of `node` this process may use: the node's CPUs inside the
/// allowed set. The one rule of every placement API (pins, `#[pinned]`,
/// group placements, pools): a node is refused only when none of its CPUs
/// is allowed, and only after a fresh read of the allowed set.
///
/// # Errors
/// [`SchedError::Topology`] for an absent node, [`SchedError::NoCpus`] for
/// a CPU-less one, [`SchedError::NodeNotAllowed`] when none of its CPUs is
/// allowed.
pub(crate) fn node_cpus(topo: &Topology, node: NodeId) -> Result<CpuSet, SchedError> {
    let n = topo.node(node)?;
    if n.cpus().is_empty() {
        return Err(SchedError::NoCpus {
            node,
            nearest: topo
                .nodes_by_distance(node)?
                .into_iter()
                .filter(|n| topo.node(*n).is_ok_and(|n| !n.cpus().is_empty()))
                .collect(),
        });
    }
    let cpus = n.allowed_cpus()?;
    if !cpus.is_empty() {
        return Ok(cpus);
    }
    let allowed = allowed::refresh_cpus()?;
    let cpus = n.cpus().intersection(&allowed);
    if !cpus.is_empty() {
        return Ok(cpus);
    }
    Err(SchedError::NodeNotAllowed {
        node,
        node_cpus: n.cpus().clone(),
        allowed,
        restriction: allowed::cpus_restriction(n.cpus()),
    })
}

/// [`node_cpus`], with `None` for a node no thread of this process can run
/// on (no CPUs, none allowed): for policies that use every usable node.
pub(crate) fn usable_node_cpus(
    topo: &Topology,
    node: NodeId,
) -> Result<Option<CpuSet>, SchedError> {
    match node_cpus(topo, node) {
        Ok(cpus) => Ok(Some(cpus)),
        Err(SchedError::NoCpus { .. } | SchedError::NodeNotAllowed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a thread's memory policy can be bound to `node`: it has memory
/// and is among the process's memory nodes (`Mems_allowed`).
///
/// # Errors
/// [`SchedError::MemorylessNode`] / [`SchedError::MemoryNotAllowed`].
pub(crate) fn check_memory(topo: &Topology, node: NodeId) -> Result<(), SchedError> {
    let n = topo.node(node)?;
    if !n.has_memory() {
        return Err(SchedError::MemorylessNode { node });
    }
    if n.memory_allowed()? {
        return Ok(());
    }
    Err(SchedError::MemoryNotAllowed {
        node,
        mems_allowed: topo.mems_allowed()?,
        restriction: allowed::mems_restriction(),
    })
}

/// Whether memory can be bound to `node` (see [`check_memory`]), as a
/// `bool` for policies that bind where they can.
pub(crate) fn memory_bindable(topo: &Topology, node: NodeId) -> Result<bool, SchedError> {
    match check_memory(topo, node) {
        Ok(()) => Ok(true),
        Err(SchedError::MemorylessNode { .. } | SchedError::MemoryNotAllowed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Refuse `cpus` unless all are allowed (checked again on a fresh read
/// before refusing).
fn check_allowed(cpus: &CpuSet, what: &str) -> Result<(), SchedError> {
    if cpus.is_subset(&allowed::cpus()?) {
        return Ok(());
    }
    let allowed = allowed::refresh_cpus()?;
    let outside = cpus.difference(&allowed);
    if outside.is_empty() {
        return Ok(());
    }
    Err(SchedError::NotAllowed {
        what: what.to_string(),
        requested: cpus.clone(),
        outside,
        allowed,
    })
}
