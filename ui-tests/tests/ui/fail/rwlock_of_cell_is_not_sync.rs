// An RwLock gives &T to several readers at once: a lock of a Cell cannot be shared.
use numakit::sync::RwLock;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<RwLock<Cell<u8>>>();
}
