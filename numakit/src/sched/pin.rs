//! Pinning the calling thread: [`Pin`], [`pin_to_node`], [`pin_to_cpu`] and
//! the [`PinGuard`] that puts the old placement back (see the
//! [module docs](crate::sched) for what a pin sets).

use super::SchedError;
use crate::sys::{mem as sysmem, sched as syssched};
use crate::topology::{CpuId, CpuSet, NodeId, Topology, TopologyError};
use std::marker::PhantomData;
use std::sync::RwLock;

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
    /// Pin to every CPU of `node`, memory bound to `node`.
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
    /// topology and the allowed set.
    pub(crate) fn resolve(&self, topo: &Topology) -> Result<(CpuSet, Option<NodeId>), SchedError> {
        let (cpus, node, what) = match self.target {
            Target::Node(node) => {
                let cpus = topo.node(node)?.cpus().clone();
                if cpus.is_empty() {
                    let nearest = topo
                        .nodes_by_distance(node)?
                        .into_iter()
                        .filter(|n| topo.node(*n).is_ok_and(|n| !n.cpus().is_empty()))
                        .collect();
                    return Err(SchedError::NoCpus { node, nearest });
                }
                (cpus, node, format!("node {node}"))
            }
            Target::Cpu(cpu) => {
                let node = topo.node_of_cpu(cpu)?;
                ([cpu].into_iter().collect(), node, format!("CPU {cpu}"))
            }
        };
        check_allowed(&cpus, &what)?;
        let mem_node = if self.bind_memory {
            if !topo.node(node)?.has_memory() {
                return Err(SchedError::MemorylessNode { node });
            }
            Some(node)
        } else {
            None
        };
        Ok((cpus, mem_node))
    }

    /// Pin the calling thread.
    ///
    /// # Errors
    /// - [`SchedError::Topology`]: the node or CPU does not exist;
    /// - [`SchedError::NoCpus`]: the node has no CPUs;
    /// - [`SchedError::NotAllowed`]: some CPUs are outside the process's
    ///   allowed set;
    /// - [`SchedError::MemorylessNode`]: memory binding asked for a node
    ///   without memory;
    /// - [`SchedError::Os`]: the kernel refused (nothing is left changed).
    pub fn apply(&self) -> Result<PinGuard, SchedError> {
        let topo = Topology::current()?;
        let (cpus, mem_node) = self.resolve(&topo)?;
        pin_current(&cpus, mem_node)
    }
}

/// Pin the calling thread to `node`'s CPUs and bind its memory policy to
/// `node`; the guard restores both. See [`Pin::apply`] for the errors.
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

static ALLOWED: RwLock<Option<CpuSet>> = RwLock::new(None);

/// The process's allowed CPUs: the main thread's affinity as first read
/// (see [the allowed set](crate::sched#the-allowed-set)).
///
/// # Errors
/// [`SchedError::Topology`] if `/proc/self/status` cannot be read.
pub fn allowed_cpus() -> Result<CpuSet, SchedError> {
    if let Some(set) = ALLOWED.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return Ok(set.clone());
    }
    refresh_allowed_cpus()
}

/// Re-read the process's allowed CPUs from the main thread's affinity
/// (`Cpus_allowed_list` in `/proc/self/status`) and return them; call it
/// after the operator changed the process's CPUs (`taskset -p`, cgroup).
///
/// # Errors
/// [`SchedError::Topology`] if `/proc/self/status` cannot be read or parsed.
pub fn refresh_allowed_cpus() -> Result<CpuSet, SchedError> {
    let path = "/proc/self/status";
    let status = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
        path: path.into(),
        source,
    })?;
    let set = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|v| CpuSet::parse_list(v).ok())
        .ok_or_else(|| TopologyError::Parse {
            path: path.into(),
            content: String::new(),
            detail: "no Cpus_allowed_list line".into(),
        })?;
    *ALLOWED.write().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
    Ok(set)
}

fn check_allowed(cpus: &CpuSet, what: &str) -> Result<(), SchedError> {
    let allowed = allowed_cpus()?;
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
