//! The macros at run time: placed types land on their node (page-verified
//! in the guests), #[pinned] functions run there and restore, numa_static!
//! initialises once.

mod common;

use numakit::{current_node, numa, numa_static, pinned, NodeId, Placed};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A table placed on node 0.
#[numa(node = 0)]
pub struct Table {
    /// Rows.
    pub rows: [u64; 2048],
    /// Its name.
    pub name: &'static str,
}

#[numa(node = 0)]
struct Pair(u32, u64);

const NODE_ONE: u32 = 1;

#[numa(node = NODE_ONE)]
struct OnOne {
    value: u64,
}

#[test]
fn numa_struct_lands_on_its_node() {
    let t = Table::place(TableInit {
        rows: [7; 2048],
        name: "zero",
    })
    .unwrap();
    assert_eq!((t.rows[2047], t.name), (7, "zero"));
    assert_eq!(t.node(), NodeId::new(0));
    let placement = t.verify().unwrap();
    assert!(placement.is_all_on(NodeId::new(0)), "{placement}");
    assert_eq!(
        <Table as Placed>::PLACEMENT,
        numakit::NodePlacement::Node(NodeId::new(0))
    );
    let p = Pair::place(PairInit(1, 2)).unwrap();
    assert_eq!((p.0, p.1), (1, 2));
}

#[test]
fn node_one_is_placed_there_or_refused() {
    let topo = common::topology();
    match OnOne::place(OnOneInit { value: 5 }) {
        Ok(b) => {
            assert!(topo.num_nodes() > 1);
            assert_eq!(b.value, 5);
            assert!(b.verify().unwrap().is_all_on(NodeId::new(1)));
        }
        Err(e) => {
            assert_eq!(topo.num_nodes(), 1, "node 1 exists but placing failed: {e}");
            assert!(e.to_string().contains("node 1 does not exist"), "{e}");
        }
    }
}

#[pinned(node = 0)]
fn on_node_zero() -> Result<NodeId, numakit::Error> {
    Ok(current_node()?)
}

#[pinned(node = 1)]
fn on_node_one() -> Result<NodeId, numakit::Error> {
    Ok(current_node()?)
}

#[pinned(node = 0, on_error = panic)]
fn on_node_zero_or_panic() -> NodeId {
    current_node().unwrap()
}

#[derive(Debug)]
enum AppError {
    Numa(numakit::Error),
}
impl From<numakit::Error> for AppError {
    fn from(e: numakit::Error) -> Self {
        AppError::Numa(e)
    }
}

#[pinned(node = 999)]
fn on_absent_node() -> Result<(), AppError> {
    unreachable!("the body must not run when pinning fails")
}

#[pinned(node = 0)]
fn early_return(stop: bool) -> Result<u32, numakit::Error> {
    if stop {
        return Ok(1);
    }
    Ok(2)
}

#[test]
fn pinned_functions_run_on_their_node_and_restore() {
    let topo = common::topology();
    std::thread::spawn(move || {
        let before = numakit::sched::thread_cpus().unwrap();
        assert_eq!(on_node_zero().unwrap(), NodeId::new(0));
        assert_eq!(numakit::sched::thread_cpus().unwrap(), before);
        assert_eq!(on_node_zero_or_panic(), NodeId::new(0));
        assert_eq!(early_return(true).unwrap(), 1);
        assert_eq!(numakit::sched::thread_cpus().unwrap(), before);
        match on_node_one() {
            Ok(n) => {
                assert!(topo.num_nodes() > 1);
                assert_eq!(n, NodeId::new(1));
            }
            Err(e) => {
                assert_eq!(topo.num_nodes(), 1, "{e}");
                assert!(e.to_string().contains("does not exist"), "{e}");
            }
        }
        assert_eq!(numakit::sched::thread_cpus().unwrap(), before);
        match on_absent_node() {
            Err(AppError::Numa(e)) => assert!(e.to_string().contains("999"), "{e}"),
            Ok(()) => panic!("pinning to node 999 succeeded"),
        }
        let r = std::panic::catch_unwind(|| {
            #[pinned(node = 0, on_error = panic)]
            fn boom() {
                panic!("inside");
            }
            boom()
        });
        assert!(r.is_err());
        assert_eq!(numakit::sched::thread_cpus().unwrap(), before);
    })
    .join()
    .unwrap();
}

static INITS: AtomicUsize = AtomicUsize::new(0);

numa_static! {
    #[numa(node = 0)]
    static COUNTERS: [AtomicUsize; 64] = {
        INITS.fetch_add(1, Ordering::SeqCst);
        [const { AtomicUsize::new(0) }; 64]
    };

    /// A static on node 1: an error on one-node machines.
    #[numa(node = 1)]
    pub static ON_ONE: u64 = 42;
}

#[test]
fn numa_static_initialises_once_under_racing_threads() {
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let c = COUNTERS.get().unwrap();
                c[3].fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(INITS.load(Ordering::SeqCst), 1);
    assert_eq!(COUNTERS.get_or_panic()[3].load(Ordering::SeqCst), 8);
    let placement = COUNTERS.placement().unwrap().unwrap();
    assert!(placement.is_all_on(NodeId::new(0)), "{placement}");
    let topo = common::topology();
    match ON_ONE.get() {
        Ok(v) => {
            assert!(topo.num_nodes() > 1);
            assert_eq!(*v, 42);
        }
        Err(e) => assert!(e.to_string().contains("does not exist"), "{e}"),
    }
}
