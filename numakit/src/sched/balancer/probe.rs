//! What the balancer asks the kernel: where threads may run and where
//! sampled pages are; what it changes: thread CPU masks and page
//! locations; and what it detects: cache-miss counters and the kernel's
//! own NUMA balancing.

use super::machine::{Targets, ThreadPlace};
use crate::sys::{mem as sysmem, perf, sched as syssched};
use crate::topology::{CpuSet, NodeId, Topology};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;

/// The kernel's automatic NUMA balancing (`/proc/sys/kernel/numa_balancing`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelNumaBalancing {
    /// The file does not exist: the kernel was built without
    /// `CONFIG_NUMA_BALANCING` (or `/proc` is not mounted).
    NotBuilt,
    /// The file says 0: off.
    Disabled,
    /// The file says `mode` (bit 0: NUMA balancing of tasks and pages; bit
    /// 1: memory tiering).
    Enabled {
        /// The value read.
        mode: u32,
    },
    /// The file could not be read or parsed.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// Where the kernel's setting is read.
pub const NUMA_BALANCING_PATH: &str = "/proc/sys/kernel/numa_balancing";

impl KernelNumaBalancing {
    /// Read it now.
    pub fn detect() -> Self {
        match std::fs::read_to_string(NUMA_BALANCING_PATH) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => KernelNumaBalancing::NotBuilt,
            Err(e) => KernelNumaBalancing::Unknown {
                reason: format!("reading {NUMA_BALANCING_PATH}: {e}"),
            },
            Ok(s) => match s.trim().parse::<u32>() {
                Ok(0) => KernelNumaBalancing::Disabled,
                Ok(mode) => KernelNumaBalancing::Enabled { mode },
                Err(_) => KernelNumaBalancing::Unknown {
                    reason: format!("{NUMA_BALANCING_PATH} holds {:?}", s.trim()),
                },
            },
        }
    }

    /// Whether the kernel migrates tasks and pages by itself (bit 0).
    pub fn is_enabled(&self) -> bool {
        matches!(self, KernelNumaBalancing::Enabled { mode } if mode & 1 == 1)
    }
}

impl fmt::Display for KernelNumaBalancing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelNumaBalancing::NotBuilt => {
                write!(f, "not built into this kernel (no {NUMA_BALANCING_PATH})")
            }
            KernelNumaBalancing::Disabled => write!(f, "disabled ({NUMA_BALANCING_PATH} = 0)"),
            KernelNumaBalancing::Enabled { mode } => write!(
                f,
                "enabled ({NUMA_BALANCING_PATH} = {mode}): the kernel also migrates pages of \
                 unbound memory toward the threads that touch them"
            ),
            KernelNumaBalancing::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// Whether hardware cache-miss counters can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CounterSupport {
    /// `perf_event_open(PERF_COUNT_HW_CACHE_MISSES)` works: cache misses
    /// per group and interval are an extra signal.
    Available,
    /// It does not; the balancer works from page locations alone.
    Unavailable {
        /// What the kernel said and what it means.
        reason: String,
    },
}

impl CounterSupport {
    /// Try to open a cache-miss counter on the calling thread.
    pub fn detect() -> Self {
        match open_counter(0) {
            Ok(_) => CounterSupport::Available,
            Err(e) => CounterSupport::Unavailable {
                reason: counter_error(&e),
            },
        }
    }
    /// Whether counters are available.
    pub fn is_available(&self) -> bool {
        matches!(self, CounterSupport::Available)
    }
}

impl fmt::Display for CounterSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CounterSupport::Available => f.write_str("hardware cache-miss counters available"),
            CounterSupport::Unavailable { reason } => write!(
                f,
                "no hardware cache-miss counters ({reason}); balancing from page locations only"
            ),
        }
    }
}

fn counter_error(e: &io::Error) -> String {
    let what = match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) => {
            "the CPU or hypervisor exposes no such hardware event"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "not permitted: lower /proc/sys/kernel/perf_event_paranoid or grant CAP_PERFMON"
        }
        Some(libc::ENOSYS) => "the kernel has no perf events",
        _ => "unexpected error",
    };
    format!("perf_event_open(PERF_COUNT_HW_CACHE_MISSES): {e}: {what}")
}

pub(super) fn open_counter(tid: libc::pid_t) -> io::Result<OwnedFd> {
    let attr = perf::PerfEventAttr::hardware_counter(perf::PERF_COUNT_HW_CACHE_MISSES);
    perf::perf_event_open(&attr, tid, -1, -1, perf::PERF_FLAG_FD_CLOEXEC)
}

/// The topology and allowed set, for target checks.
pub(super) struct Machine<'a> {
    pub(super) topo: &'a Topology,
    pub(super) allowed: &'a CpuSet,
}

impl Machine<'_> {
    /// CPUs a thread moved to `node` gets.
    pub(super) fn cpus_of(&self, node: NodeId) -> CpuSet {
        self.topo
            .node(node)
            .map(|n| n.cpus().intersection(self.allowed))
            .unwrap_or_default()
    }

    /// Why memory cannot be placed on `node`, a node with memory, when it
    /// is outside the process's memory nodes (`Mems_allowed`); `None` when
    /// it is inside, or the allowed list cannot be read (the kernel then
    /// has the last word).
    fn memory_not_allowed(&self, node: NodeId) -> Option<String> {
        match crate::sched::pin::check_memory(self.topo, node) {
            Err(crate::sched::SchedError::MemoryNotAllowed {
                mems_allowed,
                restriction,
                ..
            }) => Some(format!(
                "node {node} is outside the memory nodes this process may use \
                 (Mems_allowed: {}), a limit set by {restriction}",
                crate::topology::error::node_list(&mems_allowed)
            )),
            _ => None,
        }
    }

    /// The nodes whose CPUs a mask touches.
    pub(super) fn nodes_of(&self, cpus: &CpuSet) -> Vec<NodeId> {
        self.topo
            .nodes()
            .iter()
            .filter(|n| !n.cpus().intersection(cpus).is_empty())
            .map(|n| n.id())
            .collect()
    }
}

impl Targets for Machine<'_> {
    fn thread_target_problem(&self, node: NodeId) -> Option<String> {
        let n = self.topo.node(node).ok()?;
        if n.cpus().is_empty() {
            Some(format!(
                "node {node} has no CPUs, so the threads cannot move there; use \
                 BalancePolicy::MovePages to bring the pages to the threads"
            ))
        } else if self.cpus_of(node).is_empty() {
            Some(format!(
                "none of node {node}'s CPUs {} is in this process's allowed set {}",
                n.cpus(),
                self.allowed
            ))
        } else {
            // A thread bound to its node rebinds at its checkpoint, which
            // the kernel refuses for a node outside `Mems_allowed`.
            self.memory_not_allowed(node).map(|why| {
                format!(
                    "{why}; threads moved there could not bind their memory to it, so \
                     they are left where they are"
                )
            })
        }
    }
    fn page_target_problem(&self, node: NodeId) -> Option<String> {
        let n = self.topo.node(node).ok()?;
        if !n.has_memory() {
            return Some(format!(
                "node {node} has no memory, so the pages cannot move there; use \
                 BalancePolicy::MoveThreads to bring the threads to the pages"
            ));
        }
        self.memory_not_allowed(node)
            .map(|why| format!("{why}; the pages cannot move there (move_pages would fail)"))
    }
}

/// A thread's CPU mask, or `None` when it has exited (`ESRCH`) or is not a
/// thread of this process.
///
/// The check matters: `sched_getaffinity(0)` would read the balancer's own
/// thread, and a thread id of another process of the same user would be
/// read (and, with `MoveThreads`, moved).
pub(super) fn thread_mask(tid: libc::pid_t) -> io::Result<Option<CpuSet>> {
    if !own_thread(tid) {
        return Ok(None);
    }
    match syssched::sched_getaffinity(tid) {
        Ok(mask) => Ok(Some(CpuSet::from_mask(&mask))),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `tid` names a live thread of this process (`/proc/self/task/<tid>`;
/// without `/proc`, any positive id is taken as one).
fn own_thread(tid: libc::pid_t) -> bool {
    if tid <= 0 {
        return false;
    }
    let tasks = std::path::Path::new("/proc/self/task");
    !tasks.is_dir() || tasks.join(tid.to_string()).exists()
}

/// Where a set of threads (by their masks) runs.
pub(super) fn place(m: &Machine<'_>, masks: &[CpuSet]) -> ThreadPlace {
    let mut nodes: Vec<NodeId> = masks.iter().flat_map(|c| m.nodes_of(c)).collect();
    nodes.sort();
    nodes.dedup();
    match nodes.as_slice() {
        [] => ThreadPlace::NoThreads,
        [one] => ThreadPlace::One(*one),
        _ => ThreadPlace::Spread(nodes),
    }
}

/// Query `sample` pages spread evenly over `ranges` (address, length);
/// present pages per node, and how many were looked at.
pub(super) fn sample_pages(
    ranges: &[(usize, usize)],
    sample: usize,
) -> io::Result<(BTreeMap<NodeId, usize>, usize)> {
    let page = crate::sys::page_size();
    let spans: Vec<(usize, usize)> = ranges
        .iter()
        .filter(|r| r.1 > 0)
        .map(|&(addr, len)| {
            let start = addr / page * page;
            (start, (addr + len - start).div_ceil(page))
        })
        .collect();
    let total: usize = spans.iter().fold(0usize, |t, s| t.saturating_add(s.1));
    let k = sample.min(total);
    let mut addrs = Vec::with_capacity(k);
    for i in 0..k {
        // Page index i * total / k, walked into the spans.
        let mut idx = (i as u128 * total as u128 / k as u128) as usize;
        for &(start, pages) in &spans {
            if idx < pages {
                addrs.push((start + idx * page) as *const u8);
                break;
            }
            idx -= pages;
        }
    }
    let mut status = vec![0i32; addrs.len()];
    sysmem::move_pages_query(&addrs, &mut status)?;
    let mut pages = BTreeMap::new();
    for s in status.into_iter().filter(|&s| s >= 0) {
        *pages.entry(NodeId::new(s as u32)).or_insert(0) += 1;
    }
    Ok((pages, addrs.len()))
}

/// Move the present pages of `ranges` that are not on `to` there, at most
/// `budget` of them; `(moved, failed)`. Stretches of the ranges that no
/// mapping covers are skipped without asking the kernel, so a huge
/// registered range costs time for its mapped pages only.
pub(super) fn migrate_pages(
    ranges: &[(usize, usize)],
    to: NodeId,
    budget: usize,
) -> io::Result<(usize, usize)> {
    let page = crate::sys::page_size();
    let (mut moved, mut failed) = (0usize, 0usize);
    let mut status = Vec::new();
    for &(addr, len) in ranges {
        if len == 0 || moved + failed >= budget {
            continue;
        }
        let start = addr / page * page;
        // `add_memory` refuses ranges that wrap.
        let end = addr.saturating_add(len);
        crate::mem::mapped_batches(start, end, page, |addrs| {
            status.resize(addrs.len(), 0);
            let st = &mut status[..addrs.len()];
            sysmem::move_pages_query(addrs, st)?;
            let want: Vec<*const u8> = addrs
                .iter()
                .zip(st.iter())
                .filter(|(_, &s)| s >= 0 && s as u32 != to.get())
                .map(|(&a, _)| a)
                .take(budget - moved - failed)
                .collect();
            if !want.is_empty() {
                let mut st = vec![0i32; want.len()];
                sysmem::move_pages_settled(&want, to.get() as i32, &mut st, sysmem::MPOL_MF_MOVE)?;
                for s in st {
                    if s >= 0 && s as u32 == to.get() {
                        moved += 1;
                    } else {
                        failed += 1;
                    }
                }
            }
            Ok::<bool, io::Error>(moved + failed < budget)
        })?;
    }
    Ok((moved, failed))
}

/// Set thread `tid`'s CPU mask; `Ok(false)` when it has exited.
pub(super) fn move_thread(tid: libc::pid_t, cpus: &CpuSet) -> io::Result<bool> {
    match syssched::sched_setaffinity(tid, &cpus.to_mask()) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A sysfs tree with two nodes, both with CPUs and memory: `real`, a
    /// node this process may use, and 1000, a node id no kernel's
    /// `Mems_allowed` holds here.
    fn tree(real: NodeId) -> std::path::PathBuf {
        let tree = crate::topology::sysfs::FakeTree::new("balancer-targets");
        let w = |rel: &str, content: &str| tree.write(rel, content);
        let r = real.get();
        w("devices/system/cpu/online", "0-3\n");
        w("devices/system/node/online", &format!("{r},1000\n"));
        for (n, cpus, row) in [(r, "0-1", "10 20"), (1000, "2-3", "20 10")] {
            w(
                &format!("devices/system/node/node{n}/cpulist"),
                &format!("{cpus}\n"),
            );
            w(
                &format!("devices/system/node/node{n}/distance"),
                &format!("{row}\n"),
            );
            w(
                &format!("devices/system/node/node{n}/meminfo"),
                &format!("Node {n} MemTotal: 4096 kB\nNode {n} MemFree: 2048 kB\n"),
            );
        }
        tree.0
    }

    #[test]
    fn targets_outside_the_memory_nodes_are_refused_with_the_reason() {
        let real = Topology::current().unwrap().mems_allowed().unwrap()[0];
        let root = tree(real);
        let topo = Topology::from_sysfs(&root).unwrap();
        let allowed: CpuSet = "0-3".parse().unwrap();
        let m = Machine {
            topo: &topo,
            allowed: &allowed,
        };
        let outside = NodeId::new(1000);
        for why in [
            m.page_target_problem(outside)
                .expect("pages cannot move to node 1000"),
            m.thread_target_problem(outside)
                .expect("threads are not moved to node 1000"),
        ] {
            assert!(
                why.contains("node 1000") && why.contains("Mems_allowed"),
                "{why}"
            );
        }
        assert_eq!(m.page_target_problem(real), None);
        assert_eq!(m.thread_target_problem(real), None);
        let _ = fs::remove_dir_all(root);
    }
}
