//! numakit under another name (`nk = { package = "numakit", .. }`):
//! `crate = nk` tells the macros where to find it. Without it the generated
//! code names `::numakit`, which does not exist in this crate.
use nk::{numa, numa_static, pinned, NodeId};

#[numa(node = 0, crate = nk)]
struct Shard<const N: usize> {
    rows: [u64; N],
    #[mcs]
    hits: u64,
}

#[numa(node = 0, crate = ::nk)]
enum Slot {
    Free,
    Used(u32),
}

#[numa(interleave = [0], crate = nk)]
struct Spread {
    bytes: [u8; 8192],
}

numa_static! {
    #[numa(node = 0, crate = nk)]
    static TOTAL: u64 = 7;
}

#[pinned(node = 0, crate = nk)]
fn on_node_zero() -> Result<NodeId, nk::Error> {
    Ok(nk::current_node()?)
}

#[pinned(node = 0, on_error = panic, crate = nk)]
fn on_node_zero_or_panic() -> u32 {
    nk::current_node().unwrap().get()
}

#[test]
fn macros_reach_numakit_through_the_given_path() -> Result<(), nk::Error> {
    std::thread::spawn(|| {
        assert_eq!(on_node_zero().unwrap(), NodeId::new(0));
        assert_eq!(on_node_zero_or_panic(), 0);
    })
    .join()
    .unwrap();
    let shard = Shard::<4>::place(ShardInit {
        rows: [1; 4],
        hits: 0,
    })?;
    *shard.hits.lock() += 1;
    assert_eq!((shard.rows, *shard.hits.lock()), ([1; 4], 1));
    assert!(shard.verify()?.is_all_on(NodeId::new(0)));
    let slot = Slot::place(Slot::Used(3))?;
    assert!(matches!(*slot, Slot::Used(3)));
    let _ = Slot::Free;
    let spread = Spread::place(SpreadInit { bytes: [5; 8192] })?;
    assert_eq!(spread.bytes[8191], 5);
    assert_eq!(*TOTAL.get()?, 7);
    Ok(())
}

/// A `#[numa]` type from a library crate, never placed here: `NodeBox`
/// knows its declaration from the record made when the program started.
#[test]
fn a_library_type_is_checked_without_being_placed() {
    use nk::mem::MemError;
    use numakit_renamed_tests::LibShard;
    match nk::NodeBox::new(1, LibShard { rows: [1; 4] }) {
        Err(MemError::PlacementContradicted { type_name, .. }) => {
            assert!(type_name.ends_with("LibShard"), "{type_name}")
        }
        Err(e) => panic!("not refused for its declaration: {e}"),
        Ok(_) => panic!("a node-0 type was boxed on node 1"),
    }
    let b = nk::NodeBox::new(0, LibShard { rows: [2; 4] }).unwrap();
    assert_eq!(b.rows, [2; 4]);
}
