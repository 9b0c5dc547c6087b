//! [tokio](https://docs.rs/tokio) runtimes whose threads run on one NUMA
//! node (feature `tokio`).
//!
//! - [`runtime_on`]: a multi-thread tokio runtime with one worker per CPU
//!   of the node this process may use, every worker and every blocking-pool
//!   thread pinned to those CPUs with its memory policy bound to the node;
//! - [`RuntimeOn`]: the same with a worker count, a blocking-pool limit,
//!   thread names, memory left unbound, or anything else set on tokio's own
//!   [`Builder`](::tokio::runtime::Builder) ([`RuntimeOn::configure`]);
//! - [`runtimes_per_node`]: one such runtime per node threads can run on,
//!   and [`NodeRuntimes::spawn_on`] to put a task on a chosen node.
//!
//! Threads are pinned with numakit's own pinning ([`Pin::node`]), the same
//! rule as every other placement API (see [the allowed
//! set](crate::sched#the-allowed-set)). The request is checked before the
//! runtime is built ([`Pin::plan`]); each thread pins itself in tokio's
//! `on_thread_start`, before it runs any task, and [`RuntimeOn::build`]
//! waits until every worker has reported: a worker that could not be
//! pinned makes the build fail with that worker's [`SchedError`], so a
//! runtime that was built has every worker pinned.
//!
//! Blocking-pool threads (`spawn_blocking`, `block_in_place`) start later,
//! on demand, and pin themselves the same way. tokio gives such a thread
//! no way to refuse its work, so one whose pin fails (only possible if the
//! process's allowed CPUs or memory nodes shrank after the build) runs
//! unpinned — never silently: the failure is kept and reported by
//! [`NodeRuntime::pin_failures`], which a program that changes its cgroup
//! at run time should check.
//!
//! Memory binding means pages a thread touches *for the first time* come
//! from the node (see [what a pin sets](crate::sched#what-a-pin-sets)).
//!
//! [`JobHandle`](crate::sched::JobHandle)s of a
//! [`NodePool`](crate::sched::NodePool) are futures, so a task can await a
//! job that runs on another node's pool without blocking a worker.
//!
//! # Examples
//! ```
//! # fn main() -> Result<(), numakit::tokio::TokioError> {
//! let rt = numakit::tokio::runtime_on(0)?;
//! let node = rt.block_on(async {
//!     rt.spawn(async { numakit::current_node().unwrap() }).await.unwrap()
//! });
//! assert_eq!(node, numakit::NodeId::new(0));
//! # Ok(()) }
//! ```

use crate::sched::{Pin, PinGuard, SchedError, MAX_GROUP_THREADS};
use crate::topology::{CpuSet, NodeId, Topology};
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What can go wrong building a node's tokio runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokioError {
    /// The node cannot take the runtime's threads (absent node, no CPUs,
    /// none of its CPUs allowed, memory not bindable, a bad thread count),
    /// or a worker could not be pinned: the same errors as [`Pin::apply`].
    #[error(transparent)]
    Sched(#[from] SchedError),
    /// tokio could not build the runtime (e.g. the OS would not start a
    /// thread), or panicked building it with what
    /// [`configure`](RuntimeOn::configure) set.
    #[error("tokio could not build the runtime for NUMA node {node}: {reason}")]
    Build {
        /// The node the runtime was for.
        node: NodeId,
        /// tokio's error or panic message.
        reason: String,
    },
    /// The closure given to [`configure`](RuntimeOn::configure) panicked.
    #[error("the configure closure of the tokio runtime for NUMA node {node} panicked: {message}")]
    ConfigurePanicked {
        /// The node the runtime was for.
        node: NodeId,
        /// The panic message.
        message: String,
    },
    /// Not every worker reported that it was pinned within the time
    /// allowed ([`RuntimeOn::build`] waits up to 60 s).
    #[error(
        "{started} of the {expected} workers of the tokio runtime for NUMA node {node} started \
         within {waited:?}; the machine may be overloaded: try again, or ask for fewer workers"
    )]
    WorkersLate {
        /// The node the runtime was for.
        node: NodeId,
        /// Workers that had started.
        started: usize,
        /// Workers asked for.
        expected: usize,
        /// How long the build waited.
        waited: Duration,
    },
}

/// The largest blocking-pool limit [`RuntimeOn::max_blocking_threads`]
/// takes. tokio adds the worker count to the limit, so a limit near
/// `usize::MAX` would overflow inside tokio; this one leaves room and is
/// above what a process can start anyway (the kernel's default
/// `threads-max` is a few tens of thousands per GiB of memory).
pub const MAX_BLOCKING_THREADS: usize = 1 << 16;

/// How long [`RuntimeOn::build`] waits for the workers to report.
const WORKER_WAIT: Duration = Duration::from_secs(60);

type Configure = Box<dyn FnOnce(&mut ::tokio::runtime::Builder)>;

/// A multi-thread tokio runtime on `node`: one worker per CPU of the node
/// this process may use, workers and blocking threads pinned to those CPUs
/// with their memory policy bound to `node`. Shorthand for
/// [`RuntimeOn::node(node).build()`](RuntimeOn::build).
///
/// # Errors
/// As [`RuntimeOn::build`]; in particular an absent node is
/// [`SchedError::Topology`], a CPU-less node [`SchedError::NoCpus`], a
/// node without allowed CPUs [`SchedError::NodeNotAllowed`], and a node
/// without memory [`SchedError::MemorylessNode`] (use
/// [`RuntimeOn::bind_memory(false)`](RuntimeOn::bind_memory) for it).
pub fn runtime_on(node: impl Into<NodeId>) -> Result<NodeRuntime, TokioError> {
    RuntimeOn::node(node).build()
}

/// Builds a tokio runtime whose threads are pinned to one node.
///
/// # Examples
/// ```
/// use numakit::tokio::RuntimeOn;
/// # fn main() -> Result<(), numakit::tokio::TokioError> {
/// let rt = RuntimeOn::node(0)
///     .worker_threads(2)
///     .max_blocking_threads(4)
///     .thread_name("node0-tokio")
///     .configure(|b| {
///         b.event_interval(31);
///     })
///     .build()?;
/// assert_eq!(rt.worker_threads(), 2);
/// let on_node = rt.block_on(async {
///     tokio::task::spawn_blocking(|| numakit::current_node().unwrap()).await.unwrap()
/// });
/// assert_eq!(on_node, numakit::NodeId::new(0));
/// # Ok(()) }
/// ```
#[must_use = "a RuntimeOn does nothing until .build()"]
pub struct RuntimeOn {
    node: NodeId,
    workers: Option<usize>,
    max_blocking: Option<usize>,
    bind_memory: bool,
    thread_name: Option<String>,
    configure: Option<Configure>,
}

impl fmt::Debug for RuntimeOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeOn")
            .field("node", &self.node)
            .field("worker_threads", &self.workers)
            .field("max_blocking_threads", &self.max_blocking)
            .field("bind_memory", &self.bind_memory)
            .field("thread_name", &self.thread_name)
            .field("configure", &self.configure.is_some())
            .finish()
    }
}

impl RuntimeOn {
    /// A runtime on `node`, memory bound there, one worker per allowed CPU
    /// of the node (until [`worker_threads`](Self::worker_threads) says
    /// otherwise).
    pub fn node(node: impl Into<NodeId>) -> Self {
        RuntimeOn {
            node: node.into(),
            workers: None,
            max_blocking: None,
            bind_memory: true,
            thread_name: None,
            configure: None,
        }
    }

    /// The number of workers, `1..=`[`MAX_GROUP_THREADS`]; more than the
    /// node's CPUs is allowed (they share those CPUs). Default: the node's
    /// CPUs this process may use. 0 is refused (tokio would panic).
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.workers = Some(threads);
        self
    }

    /// The most blocking-pool threads at once (tokio's
    /// [`max_blocking_threads`](::tokio::runtime::Builder::max_blocking_threads),
    /// default 512): `1..=`[`MAX_BLOCKING_THREADS`]; 0 is refused (tokio
    /// would panic), and so is more than the maximum (tokio would
    /// overflow).
    pub fn max_blocking_threads(mut self, threads: usize) -> Self {
        self.max_blocking = Some(threads);
        self
    }

    /// Whether to bind the threads' memory policy to the node (default
    /// `true`); `false` pins the CPUs only, which a node without memory, or
    /// one outside the process's memory nodes, needs.
    pub fn bind_memory(mut self, bind: bool) -> Self {
        self.bind_memory = bind;
        self
    }

    /// The name of every thread of the runtime (tokio's
    /// [`thread_name`](::tokio::runtime::Builder::thread_name)).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = Some(name.into());
        self
    }

    /// Anything else on tokio's builder (`enable_all`, `event_interval`,
    /// `thread_stack_size`, …), called first. What this builder sets
    /// afterwards wins: the worker count, the blocking limit, the names,
    /// and `on_thread_start`, which pins each thread (an `on_thread_start`
    /// set here is replaced). A panic in `f`, or in tokio's `build` because
    /// of what `f` set, is an error, not a panic of [`build`](Self::build).
    pub fn configure(mut self, f: impl FnOnce(&mut ::tokio::runtime::Builder) + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Build the runtime and wait until every worker is pinned.
    ///
    /// # Errors
    /// - [`TokioError::Sched`] with the error [`Pin::apply`] gives for this
    ///   node: [`SchedError::Topology`] (no such node),
    ///   [`SchedError::NoCpus`], [`SchedError::NodeNotAllowed`],
    ///   [`SchedError::MemorylessNode`] / [`SchedError::MemoryNotAllowed`]
    ///   (memory binding asked for), or [`SchedError::Os`] if a worker's
    ///   pin was refused by the kernel; [`SchedError::Unsatisfiable`] for a
    ///   worker count of 0 or above [`MAX_GROUP_THREADS`], or a blocking
    ///   limit of 0 or above [`MAX_BLOCKING_THREADS`];
    /// - [`TokioError::ConfigurePanicked`], [`TokioError::Build`],
    ///   [`TokioError::WorkersLate`].
    pub fn build(self) -> Result<NodeRuntime, TokioError> {
        let node = self.node;
        let pin = Pin::node(node).bind_memory(self.bind_memory);
        let (cpus, memory) = pin.plan()?;
        let workers = self.workers.unwrap_or(cpus.len());
        check_count(node, "worker", workers, MAX_GROUP_THREADS)?;
        if let Some(n) = self.max_blocking {
            check_count(node, "blocking-pool thread", n, MAX_BLOCKING_THREADS)?;
        }
        let mut builder = ::tokio::runtime::Builder::new_multi_thread();
        if let Some(f) = self.configure {
            catch_unwind(AssertUnwindSafe(|| f(&mut builder))).map_err(|p| {
                TokioError::ConfigurePanicked {
                    node,
                    message: crate::error::panic_message(p.as_ref()),
                }
            })?;
        }
        builder.worker_threads(workers);
        if let Some(n) = self.max_blocking {
            builder.max_blocking_threads(n);
        }
        if let Some(name) = self.thread_name {
            builder.thread_name(name);
        }
        let shared = Arc::new(Shared::default());
        let hook = Arc::clone(&shared);
        builder.on_thread_start(move || hook.pin_this_thread(&pin));
        let runtime = match catch_unwind(AssertUnwindSafe(|| builder.build())) {
            Ok(Ok(rt)) => rt,
            Ok(Err(e)) => {
                return Err(TokioError::Build {
                    node,
                    reason: e.to_string(),
                })
            }
            Err(p) => {
                return Err(TokioError::Build {
                    node,
                    reason: format!(
                        "tokio panicked: {}",
                        crate::error::panic_message(p.as_ref())
                    ),
                })
            }
        };
        match shared.wait_for(workers, WORKER_WAIT) {
            Ok(()) => Ok(NodeRuntime {
                node,
                cpus,
                memory,
                workers,
                shared,
                runtime,
            }),
            Err(e) => {
                runtime.shutdown_background();
                Err(match e {
                    Waited::Failed(e) => TokioError::Sched(e),
                    Waited::Late(started) => TokioError::WorkersLate {
                        node,
                        started,
                        expected: workers,
                        waited: WORKER_WAIT,
                    },
                })
            }
        }
    }
}

fn check_count(node: NodeId, what: &str, n: usize, max: usize) -> Result<(), SchedError> {
    let reason = if n == 0 {
        format!("a runtime needs at least one {what}")
    } else if n > max {
        format!("a runtime holds at most {max} {what}s; ask for fewer")
    } else {
        return Ok(());
    };
    Err(SchedError::Unsatisfiable {
        policy: format!("a tokio runtime on node {node}"),
        threads: n,
        reason,
    })
}

thread_local! {
    /// The pin of a runtime thread, kept for the thread's life.
    static PINNED: RefCell<Option<PinGuard>> = const { RefCell::new(None) };
}

/// What the runtime's threads report.
#[derive(Default)]
struct Shared {
    state: Mutex<Reports>,
    changed: Condvar,
}

#[derive(Default)]
struct Reports {
    pinned: usize,
    failures: Vec<SchedError>,
}

enum Waited {
    Failed(SchedError),
    Late(usize),
}

impl Shared {
    /// `on_thread_start`: pin the calling thread and report.
    fn pin_this_thread(&self, pin: &Pin) {
        let result = pin.apply();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(guard) => {
                PINNED.with(|g| *g.borrow_mut() = Some(guard));
                state.pinned += 1;
            }
            Err(e) => state.failures.push(e),
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Wait until `n` threads have reported, or one failed.
    fn wait_for(&self, n: usize, limit: Duration) -> Result<(), Waited> {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(e) = state.failures.pop() {
                return Err(Waited::Failed(e));
            }
            if state.pinned >= n {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Waited::Late(state.pinned));
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A tokio runtime whose threads are pinned to one node: the runtime
/// (through `Deref`, or [`into_inner`](Self::into_inner)) and where its
/// threads are.
///
/// # Dropping
///
/// Dropping it drops the tokio [`Runtime`](::tokio::runtime::Runtime):
/// the runtime shuts down and waits for its blocking tasks. Like tokio's
/// `Runtime`, it therefore **panics when dropped in an async context** (a
/// task of another runtime, or inside `block_on`), with tokio's message
/// "Cannot drop a runtime in a context where blocking is not allowed".
/// There, shut it down without waiting,
/// `rt.into_inner().shutdown_background()` (or `shutdown_timeout`), or
/// drop it in `spawn_blocking`. The same holds for [`NodeRuntimes`].
pub struct NodeRuntime {
    node: NodeId,
    cpus: CpuSet,
    memory: Option<NodeId>,
    workers: usize,
    shared: Arc<Shared>,
    runtime: ::tokio::runtime::Runtime,
}

impl fmt::Debug for NodeRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRuntime")
            .field("node", &self.node)
            .field("cpus", &self.cpus)
            .field("memory", &self.memory)
            .field("worker_threads", &self.workers)
            .finish()
    }
}

impl NodeRuntime {
    /// The node the threads are pinned to.
    pub fn node(&self) -> NodeId {
        self.node
    }
    /// The CPUs the threads may run on (the node's allowed CPUs when the
    /// runtime was built).
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
    /// The node the threads' memory policy is bound to; `None` when the
    /// runtime was built with `bind_memory(false)`.
    pub fn memory_node(&self) -> Option<NodeId> {
        self.memory
    }
    /// The number of workers.
    pub fn worker_threads(&self) -> usize {
        self.workers
    }
    /// The pins of blocking-pool threads that failed since the build (see
    /// [the module documentation](self)); empty unless the process's
    /// allowed CPUs or memory nodes shrank. Each is taken once.
    pub fn pin_failures(&self) -> Vec<SchedError> {
        std::mem::take(
            &mut self
                .shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .failures,
        )
    }
    /// The tokio runtime.
    pub fn into_inner(self) -> ::tokio::runtime::Runtime {
        self.runtime
    }
}

impl std::ops::Deref for NodeRuntime {
    type Target = ::tokio::runtime::Runtime;
    fn deref(&self) -> &::tokio::runtime::Runtime {
        &self.runtime
    }
}

/// One runtime per node threads can run on, from [`runtimes_per_node`].
#[derive(Debug)]
pub struct NodeRuntimes {
    runtimes: Vec<NodeRuntime>,
}

impl NodeRuntimes {
    /// The runtime of `node`, if it has one.
    pub fn get(&self, node: impl Into<NodeId>) -> Option<&NodeRuntime> {
        let node = node.into();
        self.runtimes.iter().find(|r| r.node == node)
    }

    /// The runtimes, in node order.
    pub fn iter(&self) -> std::slice::Iter<'_, NodeRuntime> {
        self.runtimes.iter()
    }

    /// The nodes that have a runtime.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.runtimes.iter().map(|r| r.node)
    }

    /// Spawn `future` on the runtime of `node`: it runs on that node's
    /// workers only.
    ///
    /// # Errors
    /// [`SchedError::NodeNotInPool`] when `node` has no runtime (absent,
    /// without CPUs, or none of its CPUs allowed); it lists the nodes that
    /// have one.
    pub fn spawn_on<F>(
        &self,
        node: impl Into<NodeId>,
        future: F,
    ) -> Result<::tokio::task::JoinHandle<F::Output>, SchedError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let node = node.into();
        match self.get(node) {
            Some(rt) => Ok(rt.spawn(future)),
            None => Err(SchedError::NodeNotInPool {
                node,
                pool_nodes: self.nodes().collect(),
                reason: "runtimes_per_node makes runtimes only on nodes with CPUs this process \
                         may use"
                    .to_string(),
            }),
        }
    }
}

impl<'a> IntoIterator for &'a NodeRuntimes {
    type Item = &'a NodeRuntime;
    type IntoIter = std::slice::Iter<'a, NodeRuntime>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One runtime per node that threads of this process can run on, in node
/// order, each as [`runtime_on`] builds it.
///
/// A node with no CPUs, or none this process may use, has no runtime. A
/// node without memory, or outside the process's memory nodes
/// (`Mems_allowed`), gets a runtime whose threads have their CPUs pinned
/// and their memory policy left unbound ([`NodeRuntime::memory_node`] is
/// `None`).
///
/// # Errors
/// [`TokioError::Sched`] if the topology cannot be read or a worker could
/// not be pinned; [`TokioError::Build`] if tokio could not build a
/// runtime. No runtimes are returned then (those already built are shut
/// down).
pub fn runtimes_per_node() -> Result<NodeRuntimes, TokioError> {
    let topo = Topology::current().map_err(SchedError::from)?;
    let mut runtimes = Vec::new();
    for node in topo.node_ids() {
        let bind = match Pin::node(node).plan() {
            Ok(_) => true,
            Err(SchedError::MemorylessNode { .. } | SchedError::MemoryNotAllowed { .. }) => false,
            Err(SchedError::NoCpus { .. } | SchedError::NodeNotAllowed { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        runtimes.push(RuntimeOn::node(node).bind_memory(bind).build()?);
    }
    Ok(NodeRuntimes { runtimes })
}
