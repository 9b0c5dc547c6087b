//! [`PerNode`]: one replica of a value on every node that has memory.

use super::{here, MemError, NodeBox};
use crate::sched::{Pin, SchedError};
use crate::topology::{NodeId, Topology};
use crate::Error;
use std::fmt;

/// One replica of a value per NUMA node that has memory, each in memory
/// bound to its node, with [`local`](Self::local) handing a thread the
/// replica of the node it runs on.
///
/// # How replicas are built and placed
///
/// [`new`](Self::new) calls the closure once per node with memory, in
/// ascending node order, each time on a short-lived thread **pinned to the
/// node's CPUs with its memory policy bound to the node** (so pages that
/// the closure's allocations touch for the first time, a fresh `Vec`
/// buffer's, come from the node too), and moves the returned value into a
/// [`NodeBox`] on that node. That costs a thread start per node: make a
/// `PerNode` once and keep it. A node without CPUs (memory only), or whose
/// CPUs the process may not use, runs its closure on an unpinned thread;
/// its replica is still in memory bound to the node. Either way the
/// replica itself — the bytes of the `T` — is in node-bound memory, and
/// [`verify`](Self::verify) proves it. (Memory the value owns elsewhere,
/// such as a `Vec`'s buffer, is only as placed as the allocator that made
/// it: use [`Local`](super::Local) or [`NodeHeap::of`](super::NodeHeap::of)
/// in the closure to make that strict too.)
///
/// Because the closure runs on other threads, it must be `Sync` and the
/// value `Send`.
///
/// # Which replica a thread gets
///
/// [`local`](Self::local) reads the caller's node with `getcpu(2)`,
/// cached per thread and read again every
/// [`LOCAL_REFRESH`](Self::LOCAL_REFRESH) lookups (a thread pinned to one
/// node always gets that node; one that moves gets its new node's replica
/// within that many lookups). A node without a replica — a memoryless,
/// CPU-only node — is served by the replica of the **nearest node with
/// memory** (by the firmware's distance table, ties to the lower id); the
/// mapping is fixed when the `PerNode` is made, and
/// [`replica_node_for`](Self::replica_node_for) tells it. Only when the
/// kernel cannot name the node at all (`getcpu` failed, or a node id the
/// topology snapshot does not know) does `local` return the first replica.
///
/// # Thread safety
///
/// `PerNode<T>` is `Send` when `T: Send` and `Sync` when `T: Sync`,
/// derived from its [`NodeBox`]es: it owns its replicas like a `Vec<T>`,
/// and `&PerNode<T>` gives only `&T` (to any thread, which may share a
/// replica with others on its node).
///
/// # Examples
///
/// A read-mostly value replicated per node: writers update every replica,
/// readers take the lock of their own node's copy only, so reads never
/// cross the interconnect or contend with other nodes' readers.
///
/// ```
/// use numakit::mem::PerNode;
/// use std::sync::RwLock;
///
/// let routes: PerNode<RwLock<Vec<u32>>> = PerNode::new(|_node| RwLock::new(vec![1, 2, 3]))?;
///
/// // A rare update goes to every node's copy.
/// for (_node, copy) in routes.iter() {
///     copy.write().unwrap().push(4);
/// }
/// // A frequent read takes the caller's node's copy.
/// assert_eq!(*routes.local().read().unwrap(), [1, 2, 3, 4]);
/// // Every replica is on its node.
/// routes.verify()?;
/// # Ok::<(), numakit::Error>(())
/// ```
pub struct PerNode<T> {
    /// Replicas in ascending node order.
    replicas: Box<[NodeBox<T>]>,
    /// For node id `i` (up to the highest id of the topology), the index
    /// of the replica that serves it.
    serve: Box<[u32]>,
}

impl<T> PerNode<T> {
    /// Lookups of the calling thread's node between two `getcpu(2)` calls
    /// in [`local`](Self::local).
    pub const LOCAL_REFRESH: u32 = here::REFRESH;

    /// One replica per node with memory, `init(node)` building each on a
    /// thread pinned to the node (see the [type documentation](Self)).
    ///
    /// # Errors
    /// [`Error::Topology`] when the topology cannot be read;
    /// [`Error::Mem`] when a node cannot hold its replica (out of memory,
    /// refused syscall); [`Error::Sched`] ([`SchedError::Spawn`]) when the
    /// thread that builds a replica cannot be started. The replicas built
    /// before the failure are dropped.
    ///
    /// # Panics
    /// When `init` panics, the panic is passed on to the caller (after the
    /// replicas already built are dropped, each once).
    pub fn new<F>(init: F) -> Result<Self, Error>
    where
        F: Fn(NodeId) -> T + Sync,
        T: Send,
    {
        Self::try_new(|node| Ok::<T, Error>(init(node)))
    }

    /// As [`new`](Self::new) with a fallible `init`: the first error it
    /// returns ends the construction (replicas built so far are dropped)
    /// and is returned. numakit's own errors reach `E` through
    /// `From<numakit::Error>`.
    ///
    /// # Errors
    /// The first error of `init`, or as [`new`](Self::new).
    ///
    /// # Examples
    /// ```
    /// use numakit::mem::PerNode;
    /// let r = PerNode::<u32>::try_new(|node| {
    ///     if node.get() == 0 {
    ///         Err(numakit::Error::from(numakit::mem::MemError::InvalidConfig("no".into())))
    ///     } else {
    ///         Ok(1)
    ///     }
    /// });
    /// assert!(r.is_err());
    /// ```
    pub fn try_new<E, F>(init: F) -> Result<Self, E>
    where
        F: Fn(NodeId) -> Result<T, E> + Sync,
        T: Send,
        E: From<Error> + Send,
    {
        let (topo, nodes) = nodes_with_memory().map_err(E::from)?;
        let mut replicas: Vec<NodeBox<T>> = Vec::with_capacity(nodes.len());
        for (index, &node) in nodes.iter().enumerate() {
            let init = &init;
            let built = std::thread::scope(|s| {
                let handle = std::thread::Builder::new()
                    .name(format!("numakit-pernode-{node}"))
                    .spawn_scoped(s, move || build_on(node, init))
                    .map_err(|source| E::from(SchedError::Spawn { index, source }.into()))?;
                match handle.join() {
                    Ok(r) => r,
                    // `replicas` (built so far) drops while unwinding.
                    Err(payload) => std::panic::resume_unwind(payload),
                }
            })?;
            replicas.push(built);
        }
        Ok(Self::assemble(&topo, &nodes, replicas))
    }

    /// As [`try_new`](Self::try_new), but `init` runs on the calling
    /// thread, unpinned: for values whose memory `init` places itself
    /// (from [`NodeHeap::of`](super::NodeHeap::of) the node), where a
    /// thread per node would only cost time.
    #[cfg_attr(loom, allow(dead_code))] // its one user, the counter, is modelled without it
    pub(crate) fn try_new_here<E, F>(mut init: F) -> Result<Self, E>
    where
        F: FnMut(NodeId) -> Result<T, E>,
        E: From<Error>,
    {
        let (topo, nodes) = nodes_with_memory().map_err(E::from)?;
        let mut replicas: Vec<NodeBox<T>> = Vec::with_capacity(nodes.len());
        for &node in &nodes {
            let value = init(node)?;
            replicas.push(NodeBox::new(node, value).map_err(|e| E::from(e.into()))?);
        }
        Ok(Self::assemble(&topo, &nodes, replicas))
    }

    fn assemble(topo: &Topology, nodes: &[NodeId], replicas: Vec<NodeBox<T>>) -> Self {
        PerNode {
            replicas: replicas.into_boxed_slice(),
            serve: serve_table(topo, nodes),
        }
    }

    /// The replica of the node the calling thread runs on, or of the
    /// nearest node with one (see the [type documentation](Self)).
    #[inline]
    pub fn local(&self) -> &T {
        match here::node() {
            Some(node) => self.nearest(node),
            None => &self.replicas[0],
        }
    }

    /// The replica that serves `node`: its own, or for a node without one
    /// the nearest node's (see [`replica_node_for`](Self::replica_node_for));
    /// the first replica for a node id the topology did not have.
    #[inline]
    pub fn nearest(&self, node: NodeId) -> &T {
        &self.replicas[self.serve_index(node)]
    }

    #[inline]
    fn serve_index(&self, node: NodeId) -> usize {
        self.serve
            .get(node.get() as usize)
            .map_or(0, |&i| i as usize)
    }

    /// The node whose replica serves `node` (itself when it has memory).
    pub fn replica_node_for(&self, node: NodeId) -> NodeId {
        self.replicas[self.serve_index(node)].node()
    }

    /// The replica on `node`, if `node` has one (nodes with memory do).
    pub fn get(&self, node: NodeId) -> Option<&T> {
        self.replicas
            .iter()
            .find(|r| r.node() == node)
            .map(|r| &**r)
    }

    /// The replica on `node`, mutably.
    pub fn get_mut(&mut self, node: NodeId) -> Option<&mut T> {
        self.replicas
            .iter_mut()
            .find(|r| r.node() == node)
            .map(|r| &mut **r)
    }

    /// Every replica with its node, in ascending node order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (NodeId, &T)> + '_ {
        self.replicas.iter().map(|r| (r.node(), &**r))
    }

    /// Every replica with its node, mutably.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (NodeId, &mut T)> + '_ {
        self.replicas.iter_mut().map(|r| (r.node(), &mut **r))
    }

    /// The nodes with a replica, ascending.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = NodeId> + '_ {
        self.replicas.iter().map(|r| r.node())
    }

    /// Number of replicas (nodes with memory).
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Always `false`: there is a replica on at least one node.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Ask the kernel (`move_pages(2)`) where each replica's pages are,
    /// check each replica is on its own node, and return the merged
    /// placement of all of them: [`pages`](super::PageMap::pages) is the
    /// number checked and [`on(node)`](super::PageMap::on) the pages of
    /// that node's replica (so `is_all_on` holds only with one replica).
    ///
    /// # Errors
    /// [`MemError::Misplaced`] naming the first replica with a page off
    /// its node; [`MemError::Os`] when `move_pages` fails.
    pub fn verify(&self) -> Result<super::PageMap, MemError> {
        let mut proof = super::PageMap::default();
        for r in self.replicas.iter() {
            proof.merge(r.verify()?.ensure_on(r.node())?);
        }
        Ok(proof)
    }
}

/// Build one replica: on a thread pinned to `node` when the node has CPUs
/// the process may use, else unpinned; the value goes into a `NodeBox` on
/// `node` either way.
fn build_on<T, E, F>(node: NodeId, init: &F) -> Result<NodeBox<T>, E>
where
    F: Fn(NodeId) -> Result<T, E>,
    E: From<Error>,
{
    // A failed pin (no CPUs, CPUs outside the allowed set) leaves the
    // thread as it was; the replica's placement does not depend on it.
    let _pin = Pin::node(node).apply().ok();
    here::refresh();
    let value = init(node)?;
    NodeBox::new(node, value).map_err(|e| E::from(e.into()))
}

/// The topology and its nodes with memory (at least one).
fn nodes_with_memory() -> Result<(std::sync::Arc<Topology>, Vec<NodeId>), Error> {
    let topo = Topology::current()?;
    let nodes: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory())
        .map(|n| n.id())
        .collect();
    if nodes.is_empty() {
        return Err(Error::Mem(MemError::InvalidConfig(
            "the topology has no node with memory, so no replica can be placed".into(),
        )));
    }
    Ok((topo, nodes))
}

/// For every node id up to the topology's highest, the index (in `nodes`,
/// the nodes with replicas) of the nearest node with a replica.
fn serve_table(topo: &Topology, nodes: &[NodeId]) -> Box<[u32]> {
    let max = topo.node_ids().map(|n| n.get()).max().unwrap_or(0);
    (0..=max)
        .map(|id| {
            let id = NodeId::new(id);
            topo.nodes_by_distance(id)
                .ok()
                .and_then(|order| {
                    order
                        .into_iter()
                        .find_map(|n| nodes.iter().position(|&m| m == n))
                })
                .map_or(0, |i| i as u32)
        })
        .collect()
}

impl<T: fmt::Debug> fmt::Debug for PerNode<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
