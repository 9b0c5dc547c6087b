//! The calling thread's node, cheaply: `getcpu(2)` cached per thread and
//! read again every [`REFRESH`] lookups. Shared by [`PerNode::local`] and
//! the [`Local`] allocator.
//!
//! [`PerNode::local`]: super::PerNode::local
//! [`Local`]: super::Local

use crate::topology::NodeId;
use std::cell::Cell;

/// Lookups between two `getcpu(2)` calls of one thread.
pub const REFRESH: u32 = 64;

std::thread_local! {
    /// Cached node + 1 (high 32 bits; 0: not read yet) and lookups left
    /// before the next `getcpu` (low 32 bits), in one word.
    static HINT: Cell<u64> = const { Cell::new(0) };
}

/// The node the calling thread ran on at its last `getcpu` (at most
/// [`REFRESH`] lookups ago). `None` when `getcpu` fails or the thread's
/// locals are being destroyed and nothing was cached.
///
/// A thread pinned to one node always gets that node once the cached
/// value is refreshed: a thread that has just (re)pinned itself can see
/// its previous node for up to `REFRESH` lookups, or none if it calls
/// [`refresh`] after pinning.
#[inline]
pub(crate) fn node() -> Option<NodeId> {
    HINT.try_with(|h| {
        let v = h.get();
        if v >> 32 != 0 && v as u32 != 0 {
            h.set(v - 1);
            return Some(NodeId::new((v >> 32) as u32 - 1));
        }
        let node = read()?;
        h.set((u64::from(node.get()) + 1) << 32 | u64::from(REFRESH - 1));
        Some(node)
    })
    .ok()
    .flatten()
    .or_else(read)
}

/// Forget the calling thread's cached node: the next lookup asks the kernel.
pub(crate) fn refresh() {
    let _ = HINT.try_with(|h| h.set(0));
}

fn read() -> Option<NodeId> {
    let (_, node) = crate::sys::sched::getcpu().ok()?;
    // Node ids fit in 31 bits on every kernel (MAX_NUMNODES <= 1024); an
    // id that would not fit the cache word is not cached.
    (node < u32::MAX).then(|| NodeId::new(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_is_the_current_node_and_is_refreshed() {
        let topo = crate::Topology::current().unwrap();
        let pin_to = topo
            .nodes()
            .iter()
            .find(|n| !n.cpus().is_empty())
            .unwrap()
            .id();
        std::thread::spawn(move || {
            // Pinned, so the node cannot change under the test.
            let _pin = crate::sched::Pin::node(pin_to)
                .bind_memory(false)
                .apply()
                .unwrap();
            let now = crate::topology::current_node().unwrap();
            assert_eq!(now, pin_to);
            for _ in 0..3 * REFRESH {
                assert_eq!(node(), Some(now));
            }
            refresh();
            assert_eq!(node(), Some(now));
        })
        .join()
        .unwrap();
    }
}
