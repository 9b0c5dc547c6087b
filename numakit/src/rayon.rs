//! [rayon](https://docs.rs/rayon) thread pools whose workers run on one
//! NUMA node (feature `rayon`).
//!
//! - [`pool_on`]: a [`rayon::ThreadPool`] with one
//!   worker per CPU of the node this process may use, every worker pinned
//!   to those CPUs and its memory policy bound to the node;
//! - [`PoolOn`]: the same with a thread count, names, a stack size, a panic
//!   handler, or memory left unbound;
//! - [`pools_per_node`]: one such pool per node threads can run on.
//!
//! Workers are pinned with numakit's own pinning ([`Pin::node`]), the same
//! rule as every other placement API (see [the allowed
//! set](crate::sched#the-allowed-set)): the node's CPUs inside the
//! process's allowed set. The request is checked before any thread starts
//! ([`Pin::plan`]), and each worker pins itself before it runs any job and
//! reports back before the next worker starts: a worker that cannot be
//! pinned makes [`PoolOn::build`] fail with that worker's [`SchedError`]
//! (the workers already started exit), so a pool that was built has every
//! worker pinned.
//!
//! Memory binding means pages a worker touches *for the first time* come
//! from the node (see [what a pin sets](crate::sched#what-a-pin-sets)); data
//! allocated elsewhere and handed to the pool stays where it is, so place
//! the data on the node ([`Arena`](crate::mem::Arena),
//! [`NodeBox`](crate::mem::NodeBox)) or let the pool's workers first-touch
//! it.
//!
//! # Examples
//! ```
//! # fn main() -> Result<(), numakit::rayon::RayonError> {
//! let pool = numakit::rayon::pool_on(0)?;
//! let sum: u64 = pool.install(|| {
//!     use rayon::prelude::*;
//!     (0..1000u64).into_par_iter().sum()
//! });
//! assert_eq!(sum, 499_500);
//! pool.broadcast(|_| {
//!     assert_eq!(numakit::current_node().unwrap(), numakit::NodeId::new(0));
//! });
//! # Ok(()) }
//! ```

use crate::sched::{Pin, SchedError, MAX_GROUP_THREADS};
use crate::topology::{CpuSet, NodeId, Topology};
use std::any::Any;
use std::fmt;
use std::io;
use std::sync::{mpsc, Arc, Mutex};

/// What can go wrong building a node's rayon pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RayonError {
    /// The node cannot take the pool's workers (absent node, no CPUs, none
    /// of its CPUs allowed, memory not bindable, a bad thread count), or a
    /// worker could not be pinned: the same errors as [`Pin::apply`].
    #[error(transparent)]
    Sched(#[from] SchedError),
    /// rayon itself refused to build the pool (e.g. the OS would not
    /// start a thread).
    #[error("rayon could not build the thread pool for NUMA node {node}: {source}")]
    Build {
        /// The node the pool was for.
        node: NodeId,
        /// rayon's error.
        source: ::rayon::ThreadPoolBuildError,
    },
}

type PanicHandler = Box<dyn Fn(Box<dyn Any + Send>) + Send + Sync>;
type ThreadName = Box<dyn FnMut(usize) -> String>;

/// A rayon pool on `node`: one worker per CPU of the node this process may
/// use, each pinned to those CPUs with its memory policy bound to `node`.
/// Shorthand for [`PoolOn::node(node).build()`](PoolOn::build).
///
/// # Errors
/// As [`PoolOn::build`]; in particular an absent node is
/// [`SchedError::Topology`], a CPU-less node [`SchedError::NoCpus`], a
/// node without allowed CPUs [`SchedError::NodeNotAllowed`], and a node
/// without memory [`SchedError::MemorylessNode`] (use
/// [`PoolOn::bind_memory(false)`](PoolOn::bind_memory) for it).
pub fn pool_on(node: impl Into<NodeId>) -> Result<::rayon::ThreadPool, RayonError> {
    PoolOn::node(node).build()
}

/// Builds a rayon pool whose workers are pinned to one node.
///
/// # Examples
/// ```
/// use numakit::rayon::PoolOn;
/// # fn main() -> Result<(), numakit::rayon::RayonError> {
/// let pool = PoolOn::node(0)
///     .threads(2)
///     .thread_name(|i| format!("node0-worker-{i}"))
///     .panic_handler(|_| eprintln!("a job panicked"))
///     .build()?;
/// assert_eq!(pool.current_num_threads(), 2);
/// # Ok(()) }
/// ```
#[must_use = "a PoolOn does nothing until .build()"]
pub struct PoolOn {
    node: NodeId,
    threads: Option<usize>,
    bind_memory: bool,
    thread_name: Option<ThreadName>,
    stack_size: Option<usize>,
    panic_handler: Option<PanicHandler>,
}

impl fmt::Debug for PoolOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolOn")
            .field("node", &self.node)
            .field("threads", &self.threads)
            .field("bind_memory", &self.bind_memory)
            .field("thread_name", &self.thread_name.is_some())
            .field("stack_size", &self.stack_size)
            .field("panic_handler", &self.panic_handler.is_some())
            .finish()
    }
}

impl PoolOn {
    /// A pool on `node`, memory bound there, one worker per allowed CPU of
    /// the node (until [`threads`](Self::threads) says otherwise).
    pub fn node(node: impl Into<NodeId>) -> Self {
        PoolOn {
            node: node.into(),
            threads: None,
            bind_memory: true,
            thread_name: None,
            stack_size: None,
            panic_handler: None,
        }
    }

    /// The number of workers, `1..=`[`MAX_GROUP_THREADS`]; more than the
    /// node's CPUs is allowed (they share those CPUs). Default: the node's
    /// CPUs this process may use. Unlike rayon's own builder, 0 does not
    /// mean "the default": it is refused.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Whether to bind the workers' memory policy to the node (default
    /// `true`); `false` pins the CPUs only, which a node without memory, or
    /// one outside the process's memory nodes, needs.
    pub fn bind_memory(mut self, bind: bool) -> Self {
        self.bind_memory = bind;
        self
    }

    /// Worker names, from the worker's index (rayon's
    /// [`thread_name`](::rayon::ThreadPoolBuilder::thread_name)).
    pub fn thread_name(mut self, name: impl FnMut(usize) -> String + 'static) -> Self {
        self.thread_name = Some(Box::new(name));
        self
    }

    /// Worker stack size in bytes (rayon's
    /// [`stack_size`](::rayon::ThreadPoolBuilder::stack_size)).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// What to do with the panic of a job that has no caller to propagate
    /// it to (`spawn`, `spawn_broadcast`); rayon's
    /// [`panic_handler`](::rayon::ThreadPoolBuilder::panic_handler). Without
    /// one, rayon aborts the process on such a panic. Panics in `install`,
    /// `join`, `scope` and `broadcast` reach their caller either way.
    pub fn panic_handler(
        mut self,
        handler: impl Fn(Box<dyn Any + Send>) + Send + Sync + 'static,
    ) -> Self {
        self.panic_handler = Some(Box::new(handler));
        self
    }

    /// Start the workers, each pinned before it runs a job.
    ///
    /// # Errors
    /// - [`RayonError::Sched`] with the error [`Pin::apply`] gives for
    ///   this node: [`SchedError::Topology`] (no such node),
    ///   [`SchedError::NoCpus`], [`SchedError::NodeNotAllowed`],
    ///   [`SchedError::MemorylessNode`] / [`SchedError::MemoryNotAllowed`]
    ///   (memory binding asked for), or [`SchedError::Os`] if a worker's
    ///   pin was refused by the kernel; [`SchedError::Unsatisfiable`] for a
    ///   thread count of 0 or above [`MAX_GROUP_THREADS`];
    /// - [`RayonError::Build`] when rayon could not build the pool.
    pub fn build(self) -> Result<::rayon::ThreadPool, RayonError> {
        Ok(self.build_placed()?.pool)
    }

    fn build_placed(self) -> Result<NodeRayonPool, RayonError> {
        let node = self.node;
        let pin = Pin::node(self.node).bind_memory(self.bind_memory);
        let (cpus, memory) = pin.plan()?;
        let threads = self.threads.unwrap_or(cpus.len());
        check_threads(self.node, threads)?;
        let pool = self.build_with(threads, move |_| pin.apply())?;
        Ok(NodeRayonPool {
            node,
            cpus,
            memory,
            pool,
        })
    }

    /// Build with `pin` called first thing on each worker (by its index);
    /// the worker runs only if it returns `Ok`, holding what it returned.
    fn build_with<G: 'static>(
        self,
        threads: usize,
        pin: impl Fn(usize) -> Result<G, SchedError> + Clone + Send + 'static,
    ) -> Result<::rayon::ThreadPool, RayonError> {
        let node = self.node;
        let failure: Arc<Mutex<Option<SchedError>>> = Arc::default();
        let record = Arc::clone(&failure);
        let mut builder = ::rayon::ThreadPoolBuilder::new().num_threads(threads);
        if let Some(name) = self.thread_name {
            builder = builder.thread_name(name);
        }
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        if let Some(handler) = self.panic_handler {
            builder = builder.panic_handler(handler);
        }
        let built = builder
            .spawn_handler(move |worker: ::rayon::ThreadBuilder| {
                let mut thread = std::thread::Builder::new();
                if let Some(name) = worker.name() {
                    thread = thread.name(name.to_owned());
                }
                if let Some(bytes) = worker.stack_size() {
                    thread = thread.stack_size(bytes);
                }
                let index = worker.index();
                let pin = pin.clone();
                let (tx, rx) = mpsc::sync_channel(1);
                thread.spawn(move || match pin(index) {
                    Ok(guard) => {
                        let _ = tx.send(Ok(()));
                        worker.run();
                        drop(guard);
                    }
                    // The worker never runs; rayon's build fails and the
                    // workers already started exit.
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                })?;
                match rx.recv() {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => {
                        let message = format!("worker {index} could not be pinned: {e}");
                        *record.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        Err(io::Error::other(message))
                    }
                    Err(_) => Err(io::Error::other(format!(
                        "worker {index} ended before it was pinned"
                    ))),
                }
            })
            .build();
        match built {
            Ok(pool) => Ok(pool),
            Err(source) => {
                let pinned = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err(match pinned {
                    Some(e) => RayonError::Sched(e),
                    None => RayonError::Build { node, source },
                })
            }
        }
    }
}

fn check_threads(node: NodeId, threads: usize) -> Result<(), SchedError> {
    let reason = if threads == 0 {
        "a pool needs at least one worker".to_string()
    } else if threads > MAX_GROUP_THREADS {
        format!(
            "a pool holds at most {MAX_GROUP_THREADS} workers (MAX_GROUP_THREADS); ask for \
             fewer"
        )
    } else {
        return Ok(());
    };
    Err(SchedError::Unsatisfiable {
        policy: format!("a rayon pool on node {node}"),
        threads,
        reason,
    })
}

/// One node's pool from [`pools_per_node`]: the rayon pool (through
/// `Deref`, or [`into_inner`](Self::into_inner)) and where its workers are.
pub struct NodeRayonPool {
    node: NodeId,
    cpus: CpuSet,
    memory: Option<NodeId>,
    pool: ::rayon::ThreadPool,
}

impl fmt::Debug for NodeRayonPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRayonPool")
            .field("node", &self.node)
            .field("cpus", &self.cpus)
            .field("memory", &self.memory)
            .field("threads", &self.pool.current_num_threads())
            .finish()
    }
}

impl NodeRayonPool {
    /// The node the workers are pinned to.
    pub fn node(&self) -> NodeId {
        self.node
    }
    /// The CPUs the workers may run on (the node's allowed CPUs when the
    /// pool was built).
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
    /// The node the workers' memory policy is bound to; `None` for a node
    /// without memory or outside the process's memory nodes, whose workers
    /// have their CPUs pinned and memory policy left as it was.
    pub fn memory_node(&self) -> Option<NodeId> {
        self.memory
    }
    /// The rayon pool.
    pub fn into_inner(self) -> ::rayon::ThreadPool {
        self.pool
    }
}

impl std::ops::Deref for NodeRayonPool {
    type Target = ::rayon::ThreadPool;
    fn deref(&self) -> &::rayon::ThreadPool {
        &self.pool
    }
}

/// One pool per node that threads of this process can run on, in node
/// order, each as [`pool_on`] builds it: workers pinned to the node's
/// allowed CPUs, one per CPU.
///
/// A node with no CPUs, or none this process may use, has no pool. A node
/// without memory, or outside the process's memory nodes
/// (`Mems_allowed`), gets a pool whose workers have their CPUs pinned and
/// their memory policy left unbound ([`NodeRayonPool::memory_node`] is
/// `None`): their pages come from wherever the kernel's default policy
/// puts them, normally the nearest node with memory.
///
/// # Errors
/// [`RayonError::Sched`] if the topology cannot be read or a worker could
/// not be pinned; [`RayonError::Build`] if rayon could not build a pool.
/// No pools are returned then (those already built are dropped).
pub fn pools_per_node() -> Result<Vec<NodeRayonPool>, RayonError> {
    let topo = Topology::current().map_err(SchedError::from)?;
    let mut pools = Vec::new();
    for node in topo.node_ids() {
        let bind = match Pin::node(node).plan() {
            Ok(_) => true,
            Err(SchedError::MemorylessNode { .. } | SchedError::MemoryNotAllowed { .. }) => false,
            Err(SchedError::NoCpus { .. } | SchedError::NodeNotAllowed { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        pools.push(PoolOn::node(node).bind_memory(bind).build_placed()?);
    }
    Ok(pools)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the workers that were pinned and are still alive.
    struct Alive(Arc<AtomicUsize>);
    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A worker that cannot be pinned makes the build fail with that
    /// worker's error, and the workers started before it exit.
    #[test]
    fn a_worker_that_cannot_be_pinned_fails_the_build() {
        let alive = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&alive);
        let result = PoolOn::node(0).build_with(4, move |index| {
            if index == 2 {
                return Err(SchedError::MemorylessNode {
                    node: NodeId::new(7),
                });
            }
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Alive(Arc::clone(&counter)))
        });
        match result {
            Err(RayonError::Sched(SchedError::MemorylessNode { node })) => {
                assert_eq!(node, NodeId::new(7))
            }
            other => panic!("expected the worker's pin error, got {other:?}"),
        }
        // The two workers started before the failing one were told to
        // terminate; they exit (and drop their guard) soon after.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while alive.load(Ordering::SeqCst) != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} worker(s) of a failed build still running",
                alive.load(Ordering::SeqCst)
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn thread_counts_at_the_edges() {
        for threads in [0, MAX_GROUP_THREADS + 1, usize::MAX] {
            match PoolOn::node(0).threads(threads).build() {
                Err(RayonError::Sched(SchedError::Unsatisfiable { threads: t, .. })) => {
                    assert_eq!(t, threads)
                }
                other => panic!("threads({threads}): expected Unsatisfiable, got {other:?}"),
            }
        }
        assert!(check_threads(NodeId::new(0), 1).is_ok());
        assert!(check_threads(NodeId::new(0), MAX_GROUP_THREADS).is_ok());
    }
}
