//! Hugetlb arenas. These tests change the machine's hugepage pools (as
//! root: `/proc/sys/vm/nr_hugepages` on the host, per-node pools in the
//! guest) and restore them; they run one at a time in their own binary.
//! Without root the pools are left alone and the tests assert whatever the
//! current pools imply (an error when none are free).

mod common;

use numakit::mem::{Arena, MemError, PageKind};
use numakit::NodeId;
use std::fs;
use std::sync::Mutex;

const MIB: usize = 1 << 20;
const HUGE: u64 = 2 << 20;
static POOLS: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn node_pool_path(node: NodeId) -> String {
    format!("/sys/devices/system/node/node{node}/hugepages/hugepages-2048kB/nr_hugepages")
}

fn read_u64(path: &str) -> u64 {
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

/// Sets pools on drop back to what they were.
struct Restore(Vec<(String, u64)>);
impl Restore {
    fn set(&mut self, path: &str, pages: u64) -> u64 {
        if !self.0.iter().any(|(p, _)| p == path) {
            self.0.push((path.to_string(), read_u64(path)));
        }
        fs::write(path, pages.to_string()).unwrap();
        read_u64(path)
    }
}
impl Drop for Restore {
    fn drop(&mut self) {
        for (path, pages) in self.0.iter().rev() {
            let _ = fs::write(path, pages.to_string());
        }
    }
}

fn free_2m(node: NodeId) -> u64 {
    numakit::Topology::detect()
        .unwrap()
        .node(node)
        .unwrap()
        .hugepage_pool(HUGE)
        .map_or(0, |p| p.free())
}

#[test]
fn huge_2m_arena_uses_the_nodes_pool_or_says_how_to_fill_it() {
    let _lock = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let topo = common::topology();
    let mut restore = Restore(Vec::new());
    let node0 = NodeId::new(0);
    if is_root() {
        let got = restore.set(&node_pool_path(node0), 8);
        assert!(got >= 4, "could reserve only {got} 2 MiB pages on node 0");
    }
    let free = free_2m(node0);
    if free >= 2 {
        let arena = Arena::builder(node0)
            .pages(PageKind::Huge2M)
            .capacity(2 * HUGE as usize)
            .build()
            .unwrap();
        assert_eq!(arena.capacity(), 4 * MIB);
        let data = arena.alloc_slice_fill_with(3 * MIB, |i| i as u8);
        assert_eq!(data[3 * MIB - 1], (3 * MIB - 1) as u8);
        let placement = arena.verify().unwrap();
        assert_eq!(placement.page_size(), HUGE as usize);
        assert_eq!(
            free_2m(node0),
            free - 2,
            "the arena took 2 pages from node 0's pool"
        );
        // Whole hugepages above the bump pointer go back on `trim`, once.
        let mut arena = arena;
        arena.reset();
        let released = arena.trim().unwrap();
        assert_eq!(
            released, HUGE as usize,
            "the second hugepage was resident and is given back"
        );
        assert_eq!(arena.trim().unwrap(), 0, "nothing more to give back");
        let again = arena.alloc_slice_fill_with(3 * MIB, |i| (i / 7) as u8);
        assert_eq!(again[3 * MIB - 1], ((3 * MIB - 1) / 7) as u8);
        arena.verify().unwrap();
        // Freed back to the pool when the arena goes.
        drop(arena);
        assert_eq!(free_2m(node0), free);
    }
    // More than is free: an error naming the pool's file, not SIGBUS.
    let err = Arena::builder(node0)
        .pages(PageKind::Huge2M)
        .capacity((free as usize + 1) * HUGE as usize)
        .build()
        .unwrap_err();
    match &err {
        MemError::HugepagesUnavailable {
            node,
            needed,
            free: f,
            reserve_path,
            ..
        } => {
            assert_eq!(*node, node0);
            assert_eq!(*needed, free + 1);
            assert_eq!(*f, free);
            assert_eq!(reserve_path, &node_pool_path(node0));
        }
        other => panic!("expected HugepagesUnavailable, got {other:?}"),
    }
    assert!(err.to_string().contains("echo "), "{err}");
    drop(topo);
}

/// Pages reserved on node 1 only: a node-1 arena gets them, a node-0 arena
/// is refused, and asking for more than node 1 has is an error.
#[test]
fn huge_2m_pages_reserved_on_one_node_serve_only_that_node() {
    let _lock = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let topo = common::topology();
    if common::expected_nodes().is_none() {
        // Host: one node; node 1 is refused before any pool is looked at.
        let err = Arena::builder(1)
            .pages(PageKind::Huge2M)
            .capacity(2 * MIB)
            .build()
            .unwrap_err();
        assert!(matches!(err, MemError::Topology(_)), "{err:?}");
        return;
    }
    let topo = {
        assert!(topo.num_nodes() >= 2);
        topo
    };
    assert!(is_root(), "the guest runs tests as root");
    let (n0, n1) = (NodeId::new(0), NodeId::new(1));
    assert!(topo.node(n1).unwrap().has_memory(), "node 1 needs memory");
    let mut restore = Restore(Vec::new());
    for node in topo.nodes().iter().filter(|n| n.has_memory()) {
        restore.set(&node_pool_path(node.id()), 0);
    }
    let got = restore.set(&node_pool_path(n1), 8);
    assert_eq!(got, 8, "reserving 8 pages on node 1");
    assert_eq!(free_2m(n1), 8);

    let arena = Arena::builder(n1)
        .pages(PageKind::Huge2M)
        .capacity(6 * HUGE as usize)
        .build()
        .unwrap();
    arena.alloc_slice_fill_with(10 * MIB, |i| i as u8);
    let placement = arena.verify().unwrap();
    assert!(placement.is_all_on(n1), "{placement}");
    assert_eq!(free_2m(n1), 2);

    let err = Arena::builder(n0)
        .pages(PageKind::Huge2M)
        .capacity(2 * MIB)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, MemError::HugepagesUnavailable { node, free: 0, .. } if *node == n0),
        "{err:?}"
    );
    let err = Arena::builder(n1)
        .pages(PageKind::Huge2M)
        .capacity(3 * HUGE as usize)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, MemError::HugepagesUnavailable { node, needed: 3, free: 2, .. } if *node == n1),
        "{err:?}"
    );
    // The process is alive and the first arena intact.
    assert_eq!(arena.verify().unwrap().pages(), placement.pages());
}

#[test]
fn huge_1g_arena_or_a_clear_error() {
    let _lock = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let path = "/sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages";
    if !std::path::Path::new(path).exists() {
        let err = Arena::builder(0)
            .pages(PageKind::Huge1G)
            .capacity(1 << 30)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, MemError::HugepageSizeUnsupported { .. }),
            "{err:?}"
        );
        return;
    }
    let node0_total = common::topology()
        .node(NodeId::new(0))
        .unwrap()
        .memory_total();
    if node0_total < 1 << 30 {
        // A guest node smaller than one page of the kind.
        let err = Arena::builder(0)
            .pages(PageKind::Huge1G)
            .capacity(1 << 30)
            .build()
            .unwrap_err();
        assert!(matches!(err, MemError::InvalidSize { .. }), "{err:?}");
        return;
    }
    let mut restore = Restore(Vec::new());
    let have = if is_root() && !common::in_vm() {
        restore.set(path, 1)
    } else {
        read_u64(path)
    };
    let result = Arena::builder(0)
        .pages(PageKind::Huge1G)
        .capacity(1 << 30)
        .build();
    let free = free_2m_like(path);
    match result {
        Ok(arena) => {
            assert!(have >= 1);
            arena.alloc_slice_fill_with(4096, |i| i as u8);
            assert_eq!(arena.verify().unwrap().page_size(), 1 << 30);
        }
        Err(MemError::HugepagesUnavailable { free: f, .. }) => assert_eq!(f, free),
        Err(other) => panic!("expected a 1 GiB arena or HugepagesUnavailable, got {other:?}"),
    }
}

fn free_2m_like(nr_path: &str) -> u64 {
    read_u64(&nr_path.replace("nr_hugepages", "free_hugepages"))
}
