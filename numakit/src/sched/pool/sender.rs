//! Messages to a node: [`NodeSender`] (closures) and [`NodeChannel`]
//! (typed messages to a handler), the seed's `nkit_send`.

use super::job::{self, JobHandle};
use super::worker::Shared;
use crate::sched::SchedError;
use crate::topology::NodeId;
use std::fmt;
use std::sync::Arc;

/// Runs closures on one node of a [`NodePool`](super::NodePool); from
/// [`NodePool::sender`](super::NodePool::sender).
///
/// Cheap to clone and `Send + Sync`: hand one to every thread that talks
/// to the node. It keeps the pool's queues (not its workers) alive: after
/// the pool shuts down, sends fail with [`SchedError::PoolShutDown`].
///
/// # Examples
/// ```
/// use numakit::sched::NodePool;
/// let pool = NodePool::new()?;
/// let to0 = pool.sender(0)?;
/// let t = std::thread::spawn(move || to0.call(|| numakit::current_node().unwrap()));
/// assert_eq!(t.join().unwrap()?.join()?, numakit::NodeId::new(0));
/// # Ok::<(), numakit::Error>(())
/// ```
#[derive(Clone)]
pub struct NodeSender {
    shared: Arc<Shared>,
    idx: usize,
}

impl NodeSender {
    pub(super) fn new(shared: Arc<Shared>, idx: usize) -> Self {
        NodeSender { shared, idx }
    }

    /// The node the closures run on.
    pub fn node(&self) -> NodeId {
        self.shared.nodes[self.idx].id
    }

    /// Run `f` on the node, fire and forget (a panic is caught and
    /// counted in the pool's stats).
    ///
    /// # Errors
    /// [`SchedError::PoolShutDown`] after the pool began shutting down.
    pub fn send<F>(&self, f: F) -> Result<(), SchedError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.push(true, self.idx, job::Job::func(f))
    }

    /// Run `f` on the node and get its result through a handle.
    ///
    /// # Errors
    /// [`SchedError::PoolShutDown`] after the pool began shutting down.
    pub fn call<T, F>(&self, f: F) -> Result<JobHandle<T>, SchedError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (job, handle) = job::with_handle(f, Some(self.node()));
        self.shared.push(true, self.idx, job)?;
        Ok(handle)
    }
}

impl fmt::Debug for NodeSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSender")
            .field("node", &self.node())
            .finish()
    }
}

/// Typed messages handled on one node: each [`send`](Self::send) runs the
/// channel's handler with the message on a worker of the node; from
/// [`NodePool::channel`](super::NodePool::channel).
///
/// Messages are handled concurrently by the node's workers, in no
/// guaranteed order (a pool with one worker per node handles them in
/// order of sending from one thread).
///
/// # Examples
/// ```
/// use numakit::sched::NodePool;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// let pool = NodePool::new()?;
/// let total = Arc::new(AtomicU64::new(0));
/// let t = Arc::clone(&total);
/// let add = pool.channel(0, move |x: u64| {
///     t.fetch_add(x, Ordering::Relaxed);
/// })?;
/// for x in 1..=10 {
///     add.send(x)?;
/// }
/// pool.shutdown(); // runs what is queued
/// assert_eq!(total.load(Ordering::Relaxed), 55);
/// # Ok::<(), numakit::Error>(())
/// ```
pub struct NodeChannel<M> {
    sender: NodeSender,
    handler: Arc<dyn Fn(M) + Send + Sync>,
}

impl<M> Clone for NodeChannel<M> {
    fn clone(&self) -> Self {
        NodeChannel {
            sender: self.sender.clone(),
            handler: Arc::clone(&self.handler),
        }
    }
}

impl<M: Send + 'static> NodeChannel<M> {
    pub(super) fn new(sender: NodeSender, handler: Arc<dyn Fn(M) + Send + Sync>) -> Self {
        NodeChannel { sender, handler }
    }

    /// The node the handler runs on.
    pub fn node(&self) -> NodeId {
        self.sender.node()
    }

    /// Queue `msg` for the handler on the node.
    ///
    /// # Errors
    /// [`SchedError::PoolShutDown`] after the pool began shutting down.
    pub fn send(&self, msg: M) -> Result<(), SchedError> {
        let handler = Arc::clone(&self.handler);
        self.sender.send(move || handler(msg))
    }
}

impl<M> fmt::Debug for NodeChannel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeChannel")
            .field("node", &self.sender.node())
            .finish()
    }
}
