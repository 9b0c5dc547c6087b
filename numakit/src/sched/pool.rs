//! The per-node task pool: [`NodePool`], one group of pinned workers per
//! NUMA node, with node-bound and unbound jobs, topology-aware stealing,
//! join handles and per-node message senders.
//!
//! # Where a job runs
//!
//! | submitted with | runs on | stolen by |
//! |---|---|---|
//! | [`submit_to(node, ..)`](NodePool::submit_to), [`execute_to`](NodePool::execute_to), [`NodeSender`], [`NodeChannel`] | a worker of `node`, always | workers of the same node only |
//! | [`submit_local`](NodePool::submit_local) | the caller's node (see below), always | workers of the same node only |
//! | [`submit`](NodePool::submit), [`execute`](NodePool::execute) | preferably the caller's node (its *home*) | any idle worker: same node first, then other nodes nearest first by distance |
//!
//! A job bound to a node is never run elsewhere, even when that node's
//! workers are all busy and other nodes idle (zero-inference): only jobs
//! submitted without a node may cross nodes.
//!
//! # The caller's node (`submit_local`)
//!
//! - On a worker of this pool: the worker's node.
//! - On another thread: the node whose CPUs contain the thread's whole CPU
//!   mask (a thread pinned with [`pin_to_node`](super::pin_to_node) or
//!   [`Pin`](super::Pin), or with `taskset` to CPUs of one node). This costs
//!   one `sched_getaffinity(2)` per call.
//! - A thread that may run on CPUs of several nodes has no node: where it
//!   runs at the instant of the call (`getcpu`) is a guess that is stale
//!   the next moment, so `submit_local` returns [`SchedError::NotPinned`]
//!   instead of guessing. Name the node with `submit_to`, or use `submit`
//!   when any node will do. (On a one-node machine every thread is on that
//!   node.)
//!
//! # Workers
//!
//! By default the pool has a group of workers on every node that has CPUs
//! in the process's [allowed set](super::allowed_cpus): one worker per
//! allowed CPU of the node, at most [`DEFAULT_MAX_WORKERS_PER_NODE`]. Each
//! worker is pinned to all allowed CPUs of its node (the kernel balances
//! them inside the node) and, where the node has memory, its memory policy
//! is bound to the node (`MPOL_BIND`), so what a job allocates lands there.
//! A *memoryless* node (CPUs, no memory) gets workers with the CPU mask
//! only: their memory policy stays the process default, and the kernel
//! takes their pages from the nearest node with memory. The same holds for
//! a node outside the process's memory nodes (`Mems_allowed`, a cgroup
//! cpuset's `cpuset.mems`): workers run on its CPUs, their memory comes
//! from where the cpuset allows. CPU-less nodes get no workers; submitting
//! to one is [`SchedError::NoCpus`].
//!
//! # Results, panics, shutdown
//!
//! [`JobHandle::join`] returns the job's value, or
//! [`SchedError::JobPanicked`] when it panicked (the worker catches the
//! panic and goes on), or [`SchedError::JobCancelled`] when it never ran.
//! A job that joins another job of the same pool does not block its
//! worker: while waiting, the worker runs other jobs it may run (its
//! node's, or unbound ones), so jobs can wait for jobs they submitted to
//! their own node even on a node with one worker.
//!
//! - [`shutdown`](NodePool::shutdown) (also what dropping the pool does)
//!   refuses new jobs from outside, runs every queued job (and the jobs
//!   those jobs submit), then stops the workers.
//! - [`shutdown_now`](NodePool::shutdown_now) lets running jobs finish,
//!   cancels every queued job (their handles report `JobCancelled`) and
//!   stops the workers.
//!
//! Both wait for the workers, except when called from one of the pool's
//! own jobs (a worker cannot wait for itself): then they only start the
//! shutdown.
//!
//! # Examples
//! ```
//! use numakit::sched::NodePool;
//! use numakit::NodeId;
//! let pool = NodePool::new()?;
//! let on = pool.submit_to(0, || numakit::current_node().unwrap())?;
//! assert_eq!(on.join()?, NodeId::new(0));
//! let sum: u64 = (0..100u64)
//!     .map(|i| pool.submit(move || i * 2))
//!     .collect::<Result<Vec<_>, _>>()?
//!     .into_iter()
//!     .map(|h| h.join())
//!     .sum::<Result<u64, _>>()?;
//! assert_eq!(sum, 9900);
//! pool.shutdown();
//! # Ok::<(), numakit::Error>(())
//! ```

mod job;
mod sender;
mod stats;
mod worker;

pub use job::JobHandle;
pub use sender::{NodeChannel, NodeSender};
pub use stats::{NodeStats, PoolStats};

use super::pin::{allowed_cpus, memory_bindable, node_cpus, pin_current, usable_node_cpus};
use super::SchedError;
use crate::topology::{CpuSet, NodeId, Topology};
use crossbeam_utils::CachePadded;
use job::Job;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use worker::{NodeQueues, Shared, WorkerCounters, WorkerSlot, CANCEL, DRAIN, OPEN};

/// The default cap on workers per node (one per allowed CPU up to this).
pub const DEFAULT_MAX_WORKERS_PER_NODE: usize = 64;

/// The most workers per node [`PoolBuilder::workers_per_node`] accepts.
pub const MAX_WORKERS_PER_NODE: usize = 1024;

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

/// How many workers each node gets.
#[derive(Clone, Copy, Debug)]
enum Workers {
    PerCpu { cap: usize },
    Fixed(usize),
}

/// Options for a [`NodePool`]; from [`NodePool::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .build()"]
pub struct PoolBuilder {
    workers: Workers,
    nodes: Option<Vec<NodeId>>,
    name: String,
    stack_size: Option<usize>,
    measured: Option<Box<crate::measure::Measurement>>,
}

impl PoolBuilder {
    /// Exactly `n` workers on every node of the pool (1 to
    /// [`MAX_WORKERS_PER_NODE`]), whatever its CPU count: more than the
    /// node's CPUs oversubscribes them, fewer leaves CPUs free.
    pub fn workers_per_node(mut self, n: usize) -> Self {
        self.workers = Workers::Fixed(n);
        self
    }

    /// One worker per allowed CPU of each node, at most `cap` per node
    /// (the default, with `cap` = [`DEFAULT_MAX_WORKERS_PER_NODE`]).
    pub fn max_workers_per_node(mut self, cap: usize) -> Self {
        self.workers = Workers::PerCpu { cap };
        self
    }

    /// Put workers on exactly these nodes (default: every node with
    /// allowed CPUs). Each must exist, have CPUs, and have CPUs in the
    /// process's allowed set, or [`build`](Self::build) fails.
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = impl Into<NodeId>>) -> Self {
        let mut v: Vec<NodeId> = nodes.into_iter().map(Into::into).collect();
        v.sort();
        v.dedup();
        self.nodes = Some(v);
        self
    }

    /// Thread name prefix (default `numakit-pool`): workers are named
    /// `<prefix>-n<node>-<i>`.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// Stack size of each worker in bytes (default: std's).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Order nodes by measured latency (a [`measure`](crate::measure)
    /// of this machine, or one loaded from its JSON) instead of the
    /// firmware's SLIT: the order idle workers steal unbound jobs in, and
    /// the nearest node an unbound job submitted from a node without
    /// workers goes to. Checked against this machine's topology by
    /// [`build`](Self::build) ([`Topology::with_measured`]).
    pub fn order_by_measured(mut self, measurement: crate::measure::Measurement) -> Self {
        self.measured = Some(Box::new(measurement));
        self
    }

    /// Start the workers, each pinned before it takes a job; all or none.
    ///
    /// # Errors
    /// - [`SchedError::InvalidConfig`]: zero or too many workers per node,
    ///   an empty node list, or no node with allowed CPUs;
    /// - [`SchedError::Topology`]: a node in [`nodes`](Self::nodes) does
    ///   not exist;
    /// - [`SchedError::NoCpus`] / [`SchedError::NodeNotAllowed`]: a node
    ///   in `nodes` has no CPUs, or none the process may use;
    /// - [`SchedError::Os`] / [`SchedError::Spawn`]: pinning or starting a
    ///   worker failed (no worker is left running);
    /// - [`SchedError::Topology`] with
    ///   [`TopologyError::MeasurementMismatch`](crate::topology::TopologyError::MeasurementMismatch):
    ///   the measurement given to [`order_by_measured`](Self::order_by_measured)
    ///   is not of this machine's nodes.
    pub fn build(self) -> Result<NodePool, SchedError> {
        let current = Topology::current()?;
        let topo = match &self.measured {
            Some(m) => std::sync::Arc::new(current.with_measured(m)?),
            None => current,
        };
        let allowed = allowed_cpus()?;
        let plan = self.plan(&topo, &allowed)?;
        start(self, &topo, plan)
    }

    /// `(node, its allowed CPUs, has memory, workers)` for every pool node.
    fn plan(
        &self,
        topo: &Topology,
        allowed: &CpuSet,
    ) -> Result<Vec<(NodeId, CpuSet, bool, usize)>, SchedError> {
        let invalid = |reason: String| SchedError::InvalidConfig {
            what: "pool configuration",
            reason,
        };
        // Each node's usable CPUs, by the rule every placement API shares.
        let nodes: Vec<(NodeId, CpuSet)> = match &self.nodes {
            Some(list) if list.is_empty() => {
                return Err(invalid(
                    "the node list is empty; name at least one node".into(),
                ))
            }
            Some(list) => list
                .iter()
                .map(|&n| node_cpus(topo, n).map(|cpus| (n, cpus)))
                .collect::<Result<_, _>>()?,
            None => {
                let mut usable = Vec::new();
                for id in topo.node_ids() {
                    if let Some(cpus) = usable_node_cpus(topo, id)? {
                        usable.push((id, cpus));
                    }
                }
                usable
            }
        };
        if nodes.is_empty() {
            return Err(invalid(format!(
                "no NUMA node has CPUs in this process's allowed set {allowed}"
            )));
        }
        let mut plan = Vec::with_capacity(nodes.len());
        for (id, cpus) in nodes {
            let workers = match self.workers {
                Workers::Fixed(n) => n,
                Workers::PerCpu { cap } => {
                    if cap == 0 {
                        return Err(invalid(
                            "max_workers_per_node(0) leaves every node without workers; \
                             use 1 or more"
                                .into(),
                        ));
                    }
                    cpus.len().min(cap)
                }
            };
            if workers == 0 || workers > MAX_WORKERS_PER_NODE {
                return Err(invalid(format!(
                    "workers_per_node({workers}): a node needs 1 to {MAX_WORKERS_PER_NODE} \
                     workers"
                )));
            }
            // Workers bind their memory to the node where the process may
            // place memory there; on a memoryless node or one outside
            // `Mems_allowed` they run with the CPUs pinned only.
            plan.push((id, cpus, memory_bindable(topo, id)?, workers));
        }
        Ok(plan)
    }
}

/// For each pool node (by index), the other pool nodes nearest first
/// (ties by id).
pub(crate) fn steal_orders(topo: &Topology, pool_nodes: &[NodeId]) -> Vec<Vec<usize>> {
    pool_nodes
        .iter()
        .map(|&from| {
            topo.nodes_by_distance(from)
                .unwrap_or_default()
                .into_iter()
                .filter(|&n| n != from)
                .filter_map(|n| pool_nodes.iter().position(|&p| p == n))
                .collect()
        })
        .collect()
}

fn start(
    builder: PoolBuilder,
    topo: &Topology,
    plan: Vec<(NodeId, CpuSet, bool, usize)>,
) -> Result<NodePool, SchedError> {
    let pool_nodes: Vec<NodeId> = plan.iter().map(|p| p.0).collect();
    let orders = steal_orders(topo, &pool_nodes);
    let mut nodes = Vec::with_capacity(plan.len());
    let mut deques = Vec::new();
    let mut slots = Vec::new();
    for (i, ((id, cpus, has_memory, workers), order)) in plan.into_iter().zip(orders).enumerate() {
        let first = slots.len();
        for _ in 0..workers {
            let local = crossbeam_deque::Worker::new_fifo();
            slots.push(WorkerSlot {
                node: i,
                stealer: local.stealer(),
                thread: OnceLock::new(),
                counters: CachePadded::new(WorkerCounters::default()),
            });
            deques.push(local);
        }
        nodes.push(NodeQueues::new(
            id,
            cpus,
            has_memory,
            first..slots.len(),
            order,
        ));
    }
    let shared = Arc::new(Shared {
        id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
        nodes,
        workers: slots,
        closing: AtomicU8::new(OPEN),
        cancelled: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let (report, reports) = mpsc::channel::<Result<(), SchedError>>();
    let mut threads = Vec::with_capacity(deques.len());
    let mut failure = None;
    for (w, local) in deques.into_iter().enumerate() {
        let n = shared.workers[w].node;
        let node = &shared.nodes[n];
        let index = w - node.workers.start;
        let mut b =
            std::thread::Builder::new().name(format!("{}-n{}-{index}", builder.name, node.id));
        if let Some(size) = builder.stack_size {
            b = b.stack_size(size);
        }
        let (shared2, report) = (Arc::clone(&shared), report.clone());
        let spawned = b.spawn(move || {
            let node = &shared2.nodes[n];
            let mem = node.has_memory.then_some(node.id);
            let _pin = match pin_current(&node.cpus, mem) {
                Ok(guard) => guard,
                Err(e) => {
                    let _ = report.send(Err(e));
                    return;
                }
            };
            let _ = shared2.workers[w].thread.set(std::thread::current());
            let _ = report.send(Ok(()));
            drop(report);
            worker::worker_loop(&shared2, n, w, local);
        });
        match spawned {
            Ok(h) => threads.push(h),
            Err(source) => {
                failure = Some(SchedError::Spawn { index: w, source });
                break;
            }
        }
    }
    drop(report);
    if failure.is_none() {
        for _ in 0..threads.len() {
            match reports.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                Err(_) => break,
            }
        }
    }
    let pool = NodePool {
        shared,
        threads,
        topo: topo.clone(),
    };
    match failure {
        None => Ok(pool),
        Some(e) => {
            pool.stop(CANCEL);
            Err(e)
        }
    }
}

/// One group of pinned workers per NUMA node; see the [module
/// documentation](self) for where jobs run, stealing, and shutdown.
///
/// `Send + Sync`: share it by reference or in an `Arc`; hand out
/// [`NodeSender`]s for fire-and-forget messages to a node.
pub struct NodePool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    topo: Topology,
}

impl fmt::Debug for NodePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodePool")
            .field("nodes", &self.nodes().collect::<Vec<_>>())
            .field("workers", &self.threads.len())
            .finish()
    }
}

thread_local! {
    /// A non-worker thread's home node index for unbound jobs, as
    /// `(pool id, node index, submissions left before re-reading getcpu)`.
    static HOME: Cell<(usize, usize, u32)> = const { Cell::new((0, 0, 0)) };
}

/// Submissions between two `getcpu` reads for an unbound job's home.
const HOME_REFRESH: u32 = 64;

impl NodePool {
    /// A pool with the default options: workers on every node with allowed
    /// CPUs, one per CPU (at most [`DEFAULT_MAX_WORKERS_PER_NODE`]).
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn new() -> Result<Self, SchedError> {
        Self::builder().build()
    }

    /// A builder for a pool with options.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            workers: Workers::PerCpu {
                cap: DEFAULT_MAX_WORKERS_PER_NODE,
            },
            nodes: None,
            name: "numakit-pool".into(),
            stack_size: None,
            measured: None,
        }
    }

    /// The nodes the pool has workers on, ascending.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.shared.nodes.iter().map(|n| n.id)
    }

    /// Number of workers on `node` (0 for a node outside the pool).
    pub fn workers_on(&self, node: impl Into<NodeId>) -> usize {
        let node = node.into();
        self.shared
            .nodes
            .iter()
            .find(|n| n.id == node)
            .map_or(0, |n| n.workers.len())
    }

    /// Run `f` on a worker of `node` and get its result through the handle.
    /// The job never runs on another node.
    ///
    /// # Errors
    /// - [`SchedError::Topology`]: no such node (the error lists those that
    ///   exist);
    /// - [`SchedError::NoCpus`]: the node has no CPUs (names the nearest
    ///   nodes that have);
    /// - [`SchedError::NodeNotInPool`]: the pool has no workers there;
    /// - [`SchedError::PoolShutDown`]: the pool is shutting down.
    pub fn submit_to<T, F>(&self, node: impl Into<NodeId>, f: F) -> Result<JobHandle<T>, SchedError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.shared.submit_to(&self.topo, node.into(), f)
    }

    /// Run `f` on a worker of the calling thread's node (see [the caller's
    /// node](self#the-callers-node-submit_local)); it never runs elsewhere.
    ///
    /// # Errors
    /// [`SchedError::NotPinned`] when the caller may run on several nodes;
    /// otherwise as [`submit_to`](Self::submit_to).
    pub fn submit_local<T, F>(&self, f: F) -> Result<JobHandle<T>, SchedError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let node = self.local_node()?;
        self.shared.submit_to(&self.topo, node, f)
    }

    /// Run `f` on any worker: queued on the caller's node (a hint: the node
    /// it runs on now, or its worker node), taken by an idle worker there,
    /// else stolen by the nearest node with an idle worker.
    ///
    /// # Errors
    /// [`SchedError::PoolShutDown`] when the pool is shutting down.
    pub fn submit<T, F>(&self, f: F) -> Result<JobHandle<T>, SchedError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (job, handle) = job::with_handle(f, None);
        self.shared.push(false, self.home(), job)?;
        Ok(handle)
    }

    /// Run `f` on a worker of `node` without a handle (fire and forget):
    /// the cheapest submission. A panic is caught and counted in
    /// [`NodeStats::panicked`].
    ///
    /// # Errors
    /// As [`submit_to`](Self::submit_to).
    pub fn execute_to<F>(&self, node: impl Into<NodeId>, f: F) -> Result<(), SchedError>
    where
        F: FnOnce() + Send + 'static,
    {
        let idx = self.shared.index_of(&self.topo, node.into())?;
        self.shared.push(true, idx, Job::func(f))
    }

    /// Run `f` on any worker without a handle (as [`submit`](Self::submit)).
    ///
    /// # Errors
    /// [`SchedError::PoolShutDown`] when the pool is shutting down.
    pub fn execute<F>(&self, f: F) -> Result<(), SchedError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.push(false, self.home(), Job::func(f))
    }

    /// A cloneable handle that runs closures on `node` (the seed's
    /// `nkit_send`); it keeps working while the pool runs and refuses
    /// sends after shutdown.
    ///
    /// # Errors
    /// As [`submit_to`](Self::submit_to) for the node.
    pub fn sender(&self, node: impl Into<NodeId>) -> Result<NodeSender, SchedError> {
        let idx = self.shared.index_of(&self.topo, node.into())?;
        Ok(NodeSender::new(Arc::clone(&self.shared), idx))
    }

    /// A cloneable channel whose messages are handled by `handler` on a
    /// worker of `node`. Messages are handled concurrently by the node's
    /// workers, in no guaranteed order.
    ///
    /// # Errors
    /// As [`submit_to`](Self::submit_to) for the node.
    pub fn channel<M, H>(
        &self,
        node: impl Into<NodeId>,
        handler: H,
    ) -> Result<NodeChannel<M>, SchedError>
    where
        M: Send + 'static,
        H: Fn(M) + Send + Sync + 'static,
    {
        Ok(NodeChannel::new(self.sender(node)?, Arc::new(handler)))
    }

    /// Counters per node: jobs submitted and run, steals, panics.
    pub fn stats(&self) -> PoolStats {
        stats::collect(&self.shared)
    }

    /// Stop taking jobs from outside, run every queued job, stop the
    /// workers and wait for them; the final counters. Called from one of
    /// this pool's jobs it only starts the shutdown.
    pub fn shutdown(mut self) -> PoolStats {
        self.stop_in_place(DRAIN);
        self.stats()
    }

    /// Let running jobs finish, cancel every queued job (their handles
    /// report [`SchedError::JobCancelled`]), stop the workers and wait for
    /// them; the final counters.
    pub fn shutdown_now(mut self) -> PoolStats {
        self.stop_in_place(CANCEL);
        self.stats()
    }

    fn stop(mut self, how: u8) {
        self.stop_in_place(how);
    }

    fn stop_in_place(&mut self, how: u8) {
        let shared = &self.shared;
        // Never downgrade CANCEL to DRAIN.
        let _ = shared
            .closing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                (c < how).then_some(how)
            });
        shared.wake_all();
        let on_own_worker = worker::current_worker().is_some_and(|(id, _)| id == shared.id);
        if on_own_worker {
            // The workers finish on their own; this thread is one of them.
            self.threads.clear();
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if how == CANCEL || shared.closing.load(Ordering::SeqCst) == CANCEL {
            // Jobs pushed by submitters that passed the check just before
            // `closing` was set: wait (briefly) until every counted job is
            // accounted for.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            loop {
                shared.cancel_queued();
                if shared.drained() || std::time::Instant::now() > deadline {
                    break;
                }
                std::thread::yield_now();
            }
        }
    }

    /// The node of the calling thread, for `submit_local`.
    fn local_node(&self) -> Result<NodeId, SchedError> {
        if let Some((id, n)) = worker::current_worker() {
            if id == self.shared.id {
                return Ok(self.shared.nodes[n].id);
            }
        }
        let cpus = super::pin::thread_cpus()?;
        let mut nodes: Vec<NodeId> = Vec::new();
        for node in self.topo.nodes() {
            if !node.cpus().intersection(&cpus).is_empty() {
                nodes.push(node.id());
            }
        }
        match nodes.as_slice() {
            [one] => Ok(*one),
            _ => Err(SchedError::NotPinned { cpus, nodes }),
        }
    }

    /// The home node index for an unbound job from this thread.
    fn home(&self) -> usize {
        let shared = &self.shared;
        if let Some((id, n)) = worker::current_worker() {
            if id == shared.id {
                return n;
            }
        }
        HOME.with(|h| {
            let (pool, idx, left) = h.get();
            if pool == shared.id && left > 0 {
                h.set((pool, idx, left - 1));
                return idx;
            }
            let idx = crate::topology::current_node()
                .ok()
                .and_then(|here| shared.nearest_index(&self.topo, here))
                .unwrap_or(0);
            h.set((shared.id, idx, HOME_REFRESH));
            idx
        })
    }
}

impl Drop for NodePool {
    /// As [`shutdown`](NodePool::shutdown): queued jobs run, then the
    /// workers stop.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_in_place(DRAIN);
        }
    }
}

impl Shared {
    /// The index of pool node `node`, or the error that says why not.
    pub(super) fn index_of(&self, topo: &Topology, node: NodeId) -> Result<usize, SchedError> {
        if let Some(i) = self.nodes.iter().position(|n| n.id == node) {
            return Ok(i);
        }
        let n = topo.node(node)?;
        if n.cpus().is_empty() {
            return Err(SchedError::NoCpus {
                node,
                nearest: topo
                    .nodes_by_distance(node)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|&m| self.nodes.iter().any(|p| p.id == m))
                    .collect(),
            });
        }
        let reason = match allowed_cpus() {
            Ok(allowed) if n.cpus().intersection(&allowed).is_empty() => format!(
                "none of its CPUs {} is in this process's allowed set {allowed}",
                n.cpus()
            ),
            _ => "it was left out when the pool was built".into(),
        };
        Err(SchedError::NodeNotInPool {
            node,
            pool_nodes: self.nodes.iter().map(|n| n.id).collect(),
            reason,
        })
    }

    /// The pool node nearest to `node` (itself when in the pool).
    fn nearest_index(&self, topo: &Topology, node: NodeId) -> Option<usize> {
        topo.nodes_by_distance(node)
            .ok()?
            .into_iter()
            .find_map(|n| self.nodes.iter().position(|p| p.id == n))
    }

    pub(super) fn submit_to<T, F>(
        &self,
        topo: &Topology,
        node: NodeId,
        f: F,
    ) -> Result<JobHandle<T>, SchedError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let idx = self.index_of(topo, node)?;
        let (job, handle) = job::with_handle(f, Some(node));
        self.push(true, idx, job)?;
        Ok(handle)
    }

    /// Queue `job` on node `idx` (bound or not), counting it first (see
    /// the shutdown protocol in `worker`).
    pub(super) fn push(&self, bound: bool, idx: usize, job: Job) -> Result<(), SchedError> {
        let node = &self.nodes[idx];
        worker::with_ctx(self.id, |ctx| {
            let refuse = |closing: u8| closing == CANCEL || (closing == DRAIN && ctx.is_none());
            if refuse(self.closing.load(Ordering::Acquire)) {
                return Err(self.shut_down(bound, idx));
            }
            node.submitted.fetch_add(1, Ordering::SeqCst);
            if refuse(self.closing.load(Ordering::SeqCst)) {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(self.shut_down(bound, idx));
            }
            if !bound {
                node.submitted_unbound.fetch_add(1, Ordering::Relaxed);
                node.any.push(job);
            } else if let Some(ctx) = ctx.filter(|c| c.node == idx) {
                ctx.local.push(job);
            } else {
                node.bound.push(job);
            }
            self.notify(idx, bound);
            Ok(())
        })
    }

    fn shut_down(&self, bound: bool, idx: usize) -> SchedError {
        SchedError::PoolShutDown {
            what: if bound {
                format!("a job for node {}", self.nodes[idx].id)
            } else {
                "an unbound job".into()
            },
            how: if self.closing.load(Ordering::Relaxed) == CANCEL {
                "shutdown_now()"
            } else {
                "shutdown()"
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Backend, Node};

    fn topo(distances: Vec<Vec<u32>>) -> Topology {
        let n = distances.len();
        let nodes = (0..n as u32)
            .map(|i| {
                let cpus: CpuSet = [crate::CpuId::new(i)].into_iter().collect();
                Node::new(NodeId::new(i), cpus, 1 << 30, 1 << 29, Vec::new())
            })
            .collect();
        let online = (0..n as u32).map(crate::CpuId::new).collect();
        Topology::from_parts(Backend::Sysfs, nodes, distances, online, None)
    }

    #[test]
    fn remote_steals_go_to_the_nearest_node_first() {
        // A ring-like 4-node machine: 0-1 and 2-3 are close pairs.
        let t = topo(vec![
            vec![10, 12, 32, 31],
            vec![12, 10, 31, 32],
            vec![32, 31, 10, 12],
            vec![31, 32, 12, 10],
        ]);
        let all: Vec<NodeId> = (0..4).map(NodeId::new).collect();
        let orders = steal_orders(&t, &all);
        assert_eq!(orders[0], vec![1, 3, 2]);
        assert_eq!(orders[1], vec![0, 2, 3]);
        assert_eq!(orders[2], vec![3, 1, 0]);
        assert_eq!(orders[3], vec![2, 0, 1]);
        // Nodes outside the pool are skipped; indices are pool indices.
        let some = [NodeId::new(0), NodeId::new(2), NodeId::new(3)];
        let orders = steal_orders(&t, &some);
        assert_eq!(orders[0], vec![2, 1]); // node 3 (31) before node 2 (32)
        assert_eq!(orders[1], vec![2, 0]);
    }

    #[test]
    fn equal_distances_break_ties_by_id() {
        let t = topo(vec![vec![10, 20, 20], vec![20, 10, 20], vec![20, 20, 10]]);
        let all: Vec<NodeId> = (0..3).map(NodeId::new).collect();
        assert_eq!(steal_orders(&t, &all)[1], vec![0, 2]);
    }
}
