//! The thread-local arena: [`arena_local`].

use super::{Arena, MemError, Populate};
use crate::topology::{CpuSet, NodeId, Topology};
use std::cell::RefCell;
use std::rc::Rc;

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
/// meant; [`MemError::ThreadExiting`] when called from a thread-local
/// destructor after the thread's arenas were destroyed; errors from creating
/// the arena as [`ArenaBuilder::build`](super::ArenaBuilder::build).
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
    // During the thread's exit, a destructor of another thread-local may
    // run after `LOCAL`'s: its arenas are gone, and a new one could not be
    // kept. That is an error, never a fallback to memory of another node.
    LOCAL
        .try_with(|local| local_on(local, node))
        .map_err(|_| MemError::ThreadExiting)?
}

fn local_on(local: &RefCell<Vec<Rc<Arena>>>, node: NodeId) -> Result<Rc<Arena>, MemError> {
    {
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
    }
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
    let topo = Topology::current()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Calls `arena_local` from its destructor and reports the outcome.
    struct Probe(mpsc::Sender<Result<NodeId, String>>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let r = arena_local().map(|a| a.node()).map_err(|e| match e {
                MemError::ThreadExiting => "exiting".to_string(),
                other => format!("unexpected: {other}"),
            });
            let _ = self.0.send(r);
        }
    }

    thread_local! {
        static EARLY: RefCell<Option<Probe>> = const { RefCell::new(None) };
        static LATE: RefCell<Option<Probe>> = const { RefCell::new(None) };
    }

    #[test]
    fn late_thread_local_destructors_get_an_error_not_a_panic() {
        let topo = Topology::detect().unwrap();
        let node = topo
            .nodes()
            .iter()
            .find(|n| n.has_memory() && !n.cpus().is_empty());
        let node = node.unwrap().id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep the pin for the thread's whole life (its exit included).
            std::mem::forget(crate::sched::pin_to_node(node).unwrap());
            // One probe registered before the arenas' thread-local, one
            // after: whatever order destructors run in, one of them runs
            // after `LOCAL` is gone.
            EARLY.with(|p| *p.borrow_mut() = Some(Probe(tx.clone())));
            assert_eq!(arena_local().unwrap().node(), node);
            LATE.with(|p| *p.borrow_mut() = Some(Probe(tx)));
        })
        .join()
        .expect("the thread exited cleanly");
        let outcomes: Vec<_> = rx.iter().collect();
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
        for o in &outcomes {
            assert!(
                matches!(o, Ok(n) if *n == node) || matches!(o, Err(e) if e == "exiting"),
                "{outcomes:?}"
            );
        }
        assert!(
            outcomes.iter().any(|o| o.is_err()),
            "a destructor ran after the arenas' ({outcomes:?})"
        );
    }
}
