// Sharing a HeapBox shares &T: a box of a Cell cannot be shared.
use numakit::mem::HeapBox;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<HeapBox<'static, Cell<u8>>>();
}
