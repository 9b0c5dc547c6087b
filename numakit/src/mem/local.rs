//! The thread-local arena: [`arena_local`].

use super::{Arena, MemError, Populate};
use crate::topology::{CpuSet, NodeId, Topology};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

/// Capacity of each thread-local arena (64 MiB of address space, populated
/// in checked 2 MiB chunks as it fills).
pub const LOCAL_ARENA_CAPACITY: usize = 64 << 20;

thread_local! {
    static LOCAL: RefCell<Vec<Rc<Arena>>> = const { RefCell::new(Vec::new()) };
}

/// The calling thread's arena on the node it is pinned to.
///
/// "Pinned" means the thread's CPU affinity mask holds CPUs of exactly one
/// node; the arena is created on first use ([`LOCAL_ARENA_CAPACITY`] bytes,
/// [`Populate::OnDemand`]) and kept for the thread's life. A thread that
/// re-pins to another node gets that node's arena. The handle is an `Rc`:
/// it cannot leave the thread.
///
/// # Errors
/// [`MemError::NotPinned`] when the thread may run on several nodes (or on
/// CPUs the topology does not know) — numakit does not guess which node you
/// meant; errors from creating the arena as [`ArenaBuilder::build`](super::ArenaBuilder::build).
///
/// # Examples
/// ```
/// # let _ = std::thread::spawn(|| {
/// // On a one-node machine every thread is "pinned" to node 0.
/// let arena = numakit::mem::arena_local()?;
/// let x = arena.alloc(7u32);
/// assert_eq!(*x, 7);
/// # Ok::<(), numakit::mem::MemError>(())
/// # }).join().unwrap();
/// ```
pub fn arena_local() -> Result<Rc<Arena>, MemError> {
    let node = pinned_node()?;
    LOCAL.with(|local| {
        if let Some(a) = local.borrow().iter().find(|a| a.node() == node) {
            return Ok(Rc::clone(a));
        }
        let arena = Rc::new(
            Arena::builder(node)
                .capacity(LOCAL_ARENA_CAPACITY)
                .populate(Populate::OnDemand)
                .build()?,
        );
        local.borrow_mut().push(Rc::clone(&arena));
        Ok(arena)
    })
}

/// The one node the calling thread's affinity mask lies on.
fn pinned_node() -> Result<NodeId, MemError> {
    let mask = crate::sys::sched::sched_getaffinity(0).map_err(|source| {
        crate::topology::TopologyError::Os {
            call: "sched_getaffinity",
            source,
        }
    })?;
    let cpus = CpuSet::from_mask(&mask);
    let topo = shape()?;
    let mut nodes: Vec<NodeId> = Vec::new();
    let mut unknown = false;
    for cpu in cpus.iter() {
        match topo.node_of_cpu(cpu) {
            Ok(n) if !nodes.contains(&n) => nodes.push(n),
            Ok(_) => {}
            Err(_) => unknown = true,
        }
    }
    match nodes.as_slice() {
        [one] if !unknown => Ok(*one),
        _ => {
            nodes.sort();
            Err(MemError::NotPinned { cpus, nodes })
        }
    }
}

/// The machine's topology as first read: CPU-to-node mapping only (free
/// memory figures in it go stale and are not used).
fn shape() -> Result<&'static Topology, MemError> {
    static SHAPE: OnceLock<Topology> = OnceLock::new();
    if let Some(t) = SHAPE.get() {
        return Ok(t);
    }
    let t = Topology::detect()?;
    Ok(SHAPE.get_or_init(|| t))
}
