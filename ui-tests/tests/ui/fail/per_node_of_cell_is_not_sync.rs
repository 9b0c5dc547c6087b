// Sharing a PerNode hands &T to every thread on a node: replicas of a Cell
// cannot be shared.
use numakit::PerNode;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<PerNode<Cell<u8>>>();
}
