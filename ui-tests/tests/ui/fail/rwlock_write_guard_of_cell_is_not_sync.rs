// Sharing a write guard shares &T: a guard of a Cell cannot be shared.
use numakit::sync::RwLockWriteGuard;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<RwLockWriteGuard<'static, Cell<u8>>>();
}
