// Sharing a NodeBox shares &T: a box of a Cell cannot be shared.
use numakit::NodeBox;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<NodeBox<Cell<u8>>>();
}
