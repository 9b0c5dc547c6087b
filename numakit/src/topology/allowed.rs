//! What this process may use of the machine: its allowed CPUs
//! (`Cpus_allowed_list`) and memory nodes (`Mems_allowed_list`), and where
//! a restriction comes from ([`Restriction`]).
//!
//! Both sets are read from `/proc/self/status` (the main thread's view) on
//! first use and kept; a refusal always re-reads them first, so an
//! operator who widened the process's cpuset is never refused on a stale
//! copy, and [`refresh`] re-reads them on demand.

use super::{CpuId, CpuSet, NodeId, TopologyError};
use crate::sys::proc::{self as sysproc, CpusetFile};
use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;

/// Where a restriction of the process's CPUs or memory nodes comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restriction {
    /// The process's CPU affinity mask (`taskset`, `sched_setaffinity(2)`,
    /// or inherited from the parent) is narrower than its cgroup allows.
    AffinityMask,
    /// The process's cgroup cpuset: `file` (for example
    /// `/sys/fs/cgroup/job/cpuset.mems.effective`) holds `list`.
    Cgroup {
        /// The cgroup file that sets the limit.
        file: PathBuf,
        /// Its contents, a CPU or node list (`0-3`, `0`).
        list: String,
    },
    /// Not known: no cgroup cpuset file could be read (no cgroup
    /// filesystem at `/sys/fs/cgroup`); `/proc/self/status` is all there is.
    Unknown,
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restriction::AffinityMask => f.write_str(
                "the process's CPU affinity mask (taskset or sched_setaffinity), which is \
                 narrower than its cgroup allows",
            ),
            Restriction::Cgroup { file, list } => {
                write!(
                    f,
                    "the process's cgroup cpuset ({} is {list})",
                    file.display()
                )
            }
            Restriction::Unknown => f.write_str(
                "a cgroup cpuset or the CPU affinity mask (no cgroup cpuset file is readable \
                 under /sys/fs/cgroup to tell which)",
            ),
        }
    }
}

static CPUS: RwLock<Option<CpuSet>> = RwLock::new(None);
static MEMS: RwLock<Option<Mems>> = RwLock::new(None);

/// The memory nodes the process may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mems(Option<CpuSet>);

impl Mems {
    /// Whether memory may be placed on `node`.
    pub(crate) fn contains(&self, node: NodeId) -> bool {
        match &self.0 {
            Some(set) => set.contains(CpuId::new(node.get())),
            // A kernel without cpusets writes no `Mems_allowed_list`:
            // nothing limits the nodes.
            None => true,
        }
    }
}

fn read_lock<T>(cell: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    cell.read().unwrap_or_else(|p| p.into_inner())
}

fn store<T>(cell: &RwLock<Option<T>>, value: T) {
    *cell.write().unwrap_or_else(|p| p.into_inner()) = Some(value);
}

/// Read the list `field` of `/proc/self/status`; `None` when the kernel
/// writes no such line.
fn read_list(field: &'static str) -> Result<Option<CpuSet>, TopologyError> {
    let path = || PathBuf::from(sysproc::STATUS);
    let Some(value) = sysproc::status_field(field).map_err(|source| TopologyError::Read {
        path: path(),
        source,
    })?
    else {
        return Ok(None);
    };
    CpuSet::parse_list(&value)
        .map(Some)
        .map_err(|e| TopologyError::Parse {
            path: path(),
            content: value.clone(),
            detail: format!("{field}: {e}"),
        })
}

/// The process's allowed CPUs (`Cpus_allowed_list`), as last read.
pub(crate) fn cpus() -> Result<CpuSet, TopologyError> {
    // The read guard must be gone before `refresh_cpus` takes the write
    // lock: bind the copy first.
    let cached = read_lock(&CPUS).clone();
    match cached {
        Some(set) => Ok(set),
        None => refresh_cpus(),
    }
}

/// Re-read the process's allowed CPUs.
pub(crate) fn refresh_cpus() -> Result<CpuSet, TopologyError> {
    let set = read_list("Cpus_allowed_list")?.ok_or_else(|| TopologyError::Parse {
        path: PathBuf::from(sysproc::STATUS),
        content: String::new(),
        detail: "no Cpus_allowed_list line".into(),
    })?;
    store(&CPUS, set.clone());
    Ok(set)
}

/// The memory nodes the process may allocate on (`Mems_allowed_list`), as
/// last read.
pub(crate) fn mems() -> Result<Mems, TopologyError> {
    let cached = read_lock(&MEMS).clone();
    match cached {
        Some(mems) => Ok(mems),
        None => refresh_mems(),
    }
}

/// Re-read the process's allowed memory nodes.
pub(crate) fn refresh_mems() -> Result<Mems, TopologyError> {
    let mems = Mems(read_list("Mems_allowed_list")?);
    store(&MEMS, mems.clone());
    Ok(mems)
}

/// Whether the process may place memory on `node`; a `false` is checked
/// against a fresh read of `Mems_allowed_list` before it is returned.
pub(crate) fn mem_allowed(node: NodeId) -> Result<bool, TopologyError> {
    let allowed = read_lock(&MEMS).as_ref().is_some_and(|m| m.contains(node));
    if allowed {
        return Ok(true);
    }
    Ok(refresh_mems()?.contains(node))
}

/// Re-read both allowed sets (CPUs and memory nodes) from
/// `/proc/self/status`; call it after the operator changed the process's
/// cpuset or affinity (`taskset -p`, moving it to another cgroup).
///
/// # Errors
/// [`TopologyError::Read`] / [`TopologyError::Parse`] when
/// `/proc/self/status` cannot be read or has no allowed lists.
pub fn refresh_allowed() -> Result<(), TopologyError> {
    refresh_cpus()?;
    refresh_mems()?;
    Ok(())
}

/// Why the CPUs `wanted` (all outside the allowed set) cannot be used: the
/// cgroup's cpuset when it excludes all of them, the affinity mask when the
/// cgroup would allow some.
pub(crate) fn cpus_restriction(wanted: &CpuSet) -> Restriction {
    match sysproc::cgroup_cpuset(CpusetFile::Cpus) {
        Ok(Some((file, list))) => match CpuSet::parse_list(&list) {
            Ok(cgroup) if cgroup.intersection(wanted).is_empty() => {
                Restriction::Cgroup { file, list }
            }
            Ok(_) => Restriction::AffinityMask,
            Err(_) => Restriction::Unknown,
        },
        _ => Restriction::Unknown,
    }
}

/// Why memory nodes are restricted: only a cpuset cgroup sets
/// `Mems_allowed`, so this names its file when it can be read.
pub(crate) fn mems_restriction() -> Restriction {
    match sysproc::cgroup_cpuset(CpusetFile::Mems) {
        Ok(Some((file, list))) => Restriction::Cgroup { file, list },
        _ => Restriction::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_sets_are_read_and_not_empty() {
        let cpus = refresh_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert_eq!(super::cpus().unwrap(), cpus);
        let mems = refresh_mems().unwrap();
        assert_eq!(super::mems().unwrap(), mems);
        if let Some(set) = &mems.0 {
            let first = NodeId::new(set.first().expect("a node to allocate on").get());
            assert!(mem_allowed(first).unwrap());
            assert!(!mem_allowed(NodeId::new(u32::MAX)).unwrap());
            assert!(!mem_allowed(NodeId::new(CpuSet::MAX_CPUS)).unwrap());
        }
    }

    #[test]
    fn first_reads_from_many_threads_do_not_deadlock() {
        // Empty the caches, then read them from several threads at once,
        // each under a watchdog.
        *CPUS.write().unwrap() = None;
        *MEMS.write().unwrap() = None;
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..8 {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let ok = cpus().is_ok() && mems().is_ok() && mem_allowed(NodeId::new(0)).is_ok();
                let _ = tx.send(ok);
            });
        }
        drop(tx);
        for _ in 0..8 {
            let ok = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("reading the allowed sets deadlocked");
            assert!(ok);
        }
    }

    #[test]
    fn without_a_mems_allowed_line_every_node_is_allowed() {
        let all = Mems(None);
        for node in [0, 1, CpuSet::MAX_CPUS, u32::MAX] {
            assert!(all.contains(NodeId::new(node)));
        }
        let zero = Mems(Some([CpuId::new(0)].into_iter().collect()));
        assert!(zero.contains(NodeId::new(0)));
        for node in [1, CpuSet::MAX_CPUS - 1, CpuSet::MAX_CPUS, u32::MAX] {
            assert!(!zero.contains(NodeId::new(node)));
        }
    }

    #[test]
    fn restrictions_say_where_they_come_from() {
        let text = Restriction::Cgroup {
            file: "/sys/fs/cgroup/job/cpuset.mems.effective".into(),
            list: "0".into(),
        }
        .to_string();
        assert!(text.contains("cpuset.mems.effective is 0"), "{text}");
        assert!(Restriction::AffinityMask.to_string().contains("taskset"));
        assert!(Restriction::Unknown.to_string().contains("cgroup"));
        // No CPU of the machine is outside every cpuset: a set of CPUs no
        // machine has is outside the cgroup's when the cgroup is known.
        let far: CpuSet = [crate::CpuId::new(CpuSet::MAX_CPUS - 1)]
            .into_iter()
            .collect();
        assert!(matches!(
            cpus_restriction(&far),
            Restriction::Cgroup { .. } | Restriction::Unknown
        ));
    }
}
