//! Thread groups with a placement policy: [`spawn_group`].

use super::pin::{allowed_cpus, memory_bindable, pin_current, usable_node_cpus, Pin};
use super::SchedError;
use crate::topology::{CpuId, CpuSet, NodeId, Topology};
use std::fmt;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Where the threads of a group go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadPlacement {
    /// Every thread on the CPUs of this node the process may use, memory
    /// bound to it.
    Node(NodeId),
    /// Every thread on this one CPU, memory bound to its node.
    Cpu(CpuId),
    /// One CPU per thread, filling a node's CPUs before the next node's
    /// (nodes by id, CPUs ascending); memory bound to each CPU's node.
    Compact,
    /// One CPU per thread, round-robin across nodes (thread 0 on the first
    /// node, thread 1 on the second, …); memory bound to each CPU's node.
    Scatter,
}

impl fmt::Display for ThreadPlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadPlacement::Node(n) => write!(f, "ThreadPlacement::Node({n})"),
            ThreadPlacement::Cpu(c) => write!(f, "ThreadPlacement::Cpu({c})"),
            ThreadPlacement::Compact => f.write_str("ThreadPlacement::Compact"),
            ThreadPlacement::Scatter => f.write_str("ThreadPlacement::Scatter"),
        }
    }
}

/// The running threads of a group.
#[derive(Debug)]
pub struct GroupHandle<T> {
    /// `None` only from a thread told not to run, which a started group
    /// never has.
    threads: Vec<(CpuSet, JoinHandle<Option<T>>)>,
}

impl<T> GroupHandle<T> {
    /// The CPUs each thread is pinned to, by thread index.
    pub fn cpus(&self) -> impl Iterator<Item = &CpuSet> {
        self.threads.iter().map(|(c, _)| c)
    }
    /// Number of threads.
    pub fn len(&self) -> usize {
        self.threads.len()
    }
    /// Whether the group has no threads.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }
    /// Wait for every thread; results by thread index (`Err` holds a
    /// thread's panic payload).
    pub fn join(self) -> Vec<std::thread::Result<T>> {
        self.threads
            .into_iter()
            .map(|(_, h)| {
                h.join().and_then(|ran| {
                    ran.ok_or_else(|| Box::new("numakit: group thread did not run") as _)
                })
            })
            .collect()
    }
}

/// The most threads one [`spawn_group`] starts: 65536. Larger counts are
/// refused up front with [`SchedError::Unsatisfiable`] instead of trying to
/// allocate for them or exhausting the system's threads (the OS may refuse
/// fewer: `kernel.threads-max`, `RLIMIT_NPROC`, memory for stacks; that is
/// [`SchedError::Spawn`]).
pub const MAX_GROUP_THREADS: usize = 1 << 16;

/// Start `threads` threads placed by `placement`; thread `i` runs `f(i)`.
///
/// Every thread pins itself (CPU mask and memory policy) and reports back
/// before any of them runs `f`: if one cannot be pinned, none runs `f`, all
/// exit, and the error is returned. So `f` never runs on a CPU the policy
/// did not give it.
///
/// Memoryless nodes: [`ThreadPlacement::Compact`] and [`ThreadPlacement::Scatter`]
/// bind each thread's memory to its CPU's node, so they use only CPUs of
/// nodes that have memory the process may use (`Mems_allowed`); use
/// [`ThreadPlacement::Cpu`] with [`Pin::bind_memory`]`(false)` semantics for the
/// others. Every policy uses only the CPUs of a node in the process's
/// allowed set, and [`ThreadPlacement::Node`] refuses only a node with none.
///
/// # Errors
/// - as [`Pin::apply`] for `Node`/`Cpu` targets;
/// - [`SchedError::Unsatisfiable`] when `Compact`/`Scatter` need more CPUs
///   than the allowed set has on nodes with memory, `threads == 0`, or
///   `threads > `[`MAX_GROUP_THREADS`];
/// - [`SchedError::Spawn`] if the OS cannot start a thread.
///
/// # Examples
/// ```
/// use numakit::sched::{spawn_group, ThreadPlacement};
/// let group = spawn_group(2, ThreadPlacement::Node(0.into()), |i| {
///     (i, numakit::current_node().unwrap())
/// })?;
/// for r in group.join() {
///     let (_, node) = r.unwrap();
///     assert_eq!(node, numakit::NodeId::new(0));
/// }
/// # Ok::<(), numakit::sched::SchedError>(())
/// ```
pub fn spawn_group<T, F>(
    threads: usize,
    placement: ThreadPlacement,
    f: F,
) -> Result<GroupHandle<T>, SchedError>
where
    T: Send + 'static,
    F: Fn(usize) -> T + Send + Sync + 'static,
{
    let targets = plan(threads, placement, &*Topology::current()?)?;
    let f = Arc::new(f);
    let go = Arc::new((Mutex::new(None::<bool>), Condvar::new()));
    let (report, reports) = mpsc::channel::<(usize, Result<(), SchedError>)>();
    let mut started = Vec::with_capacity(threads);
    let mut failure = None;
    for (i, (cpus, mem_node)) in targets.into_iter().enumerate() {
        let (f, go, report) = (Arc::clone(&f), Arc::clone(&go), report.clone());
        let thread_cpus = cpus.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("numakit-{i}"))
            .spawn(move || {
                // The guard keeps the pin for the thread's whole life.
                let guard = match pin_current(&thread_cpus, mem_node) {
                    Ok(g) => {
                        let _ = report.send((i, Ok(())));
                        Some(g)
                    }
                    Err(e) => {
                        let _ = report.send((i, Err(e)));
                        None
                    }
                };
                let (lock, cv) = &*go;
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                while state.is_none() {
                    state = cv.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                let run = guard.is_some() && *state == Some(true);
                drop(state);
                run.then(|| f(i))
            });
        match spawned {
            Ok(h) => started.push((cpus, h)),
            Err(source) => {
                failure = Some(SchedError::Spawn { index: i, source });
                break;
            }
        }
    }
    drop(report);
    if failure.is_none() {
        for _ in 0..started.len() {
            match reports.recv() {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) => {
                    failure = Some(e);
                    break;
                }
                Err(_) => break, // a thread died before reporting: join tells
            }
        }
    }
    let (lock, cv) = &*go;
    *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure.is_none());
    cv.notify_all();
    if let Some(e) = failure {
        for (_, h) in started {
            let _ = h.join();
        }
        return Err(e);
    }
    Ok(GroupHandle { threads: started })
}

/// The CPU set and memory node of each thread.
fn plan(
    threads: usize,
    placement: ThreadPlacement,
    topo: &Topology,
) -> Result<Vec<(CpuSet, Option<NodeId>)>, SchedError> {
    let unsatisfiable = |reason: String| SchedError::Unsatisfiable {
        policy: placement.to_string(),
        threads,
        reason,
    };
    if threads == 0 {
        return Err(unsatisfiable("a group needs at least one thread".into()));
    }
    if threads > MAX_GROUP_THREADS {
        return Err(unsatisfiable(format!(
            "a group holds at most {MAX_GROUP_THREADS} threads (MAX_GROUP_THREADS); \
             start fewer threads, or several groups"
        )));
    }
    match placement {
        ThreadPlacement::Node(n) => Ok(vec![Pin::node(n).resolve(topo)?; threads]),
        ThreadPlacement::Cpu(c) => Ok(vec![Pin::cpu(c).resolve(topo)?; threads]),
        ThreadPlacement::Compact | ThreadPlacement::Scatter => {
            let allowed = allowed_cpus()?;
            // Nodes whose memory threads may bind to, with their usable CPUs.
            let mut per_node: Vec<(NodeId, Vec<CpuId>)> = Vec::new();
            for id in topo.node_ids() {
                if !memory_bindable(topo, id)? {
                    continue;
                }
                if let Some(cpus) = usable_node_cpus(topo, id)? {
                    per_node.push((id, cpus.iter().collect()));
                }
            }
            let order: Vec<(NodeId, CpuId)> = if placement == ThreadPlacement::Compact {
                per_node
                    .iter()
                    .flat_map(|(n, cpus)| cpus.iter().map(move |&c| (*n, c)))
                    .collect()
            } else {
                let rounds = per_node.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
                (0..rounds)
                    .flat_map(|r| {
                        per_node
                            .iter()
                            .filter_map(move |(n, cpus)| cpus.get(r).map(|&c| (*n, c)))
                    })
                    .collect()
            };
            if threads > order.len() {
                return Err(unsatisfiable(format!(
                    "it gives each thread its own CPU and only {} allowed CPUs are on nodes \
                     with memory the process may use ({allowed} allowed in all); start fewer \
                     threads or use ThreadPlacement::Node to share a node's CPUs",
                    order.len()
                )));
            }
            Ok(order
                .into_iter()
                .take(threads)
                .map(|(n, c)| ([c].into_iter().collect(), Some(n)))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_accepts_up_to_the_maximum_and_refuses_past_it() {
        let topo = Topology::detect().unwrap();
        // A CPU this process may use, on a node with memory: always resolves.
        let cpu = allowed_cpus()
            .unwrap()
            .iter()
            .find(|&c| {
                topo.node_of_cpu(c)
                    .is_ok_and(|n| topo.node(n).is_ok_and(|n| n.has_memory()))
            })
            .expect("an allowed CPU on a node with memory");
        let placement = ThreadPlacement::Cpu(cpu);
        let max = plan(MAX_GROUP_THREADS, placement, &topo).unwrap();
        assert_eq!(max.len(), MAX_GROUP_THREADS);
        assert_eq!(plan(1, placement, &topo).unwrap().len(), 1);
        for threads in [0, MAX_GROUP_THREADS + 1, 1 << 40, usize::MAX] {
            match plan(threads, placement, &topo) {
                Err(SchedError::Unsatisfiable {
                    threads: t, reason, ..
                }) => {
                    assert_eq!(t, threads);
                    if threads > 0 {
                        assert!(reason.contains(&MAX_GROUP_THREADS.to_string()), "{reason}");
                    }
                }
                other => panic!("{threads} threads: {other:?}"),
            }
        }
    }
}
