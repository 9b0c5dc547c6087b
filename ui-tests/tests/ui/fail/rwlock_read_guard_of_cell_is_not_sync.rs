// Sharing a read guard shares &T: a guard of a Cell cannot be shared.
use numakit::sync::RwLockReadGuard;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<RwLockReadGuard<'static, Cell<u8>>>();
}
