// Sharing a guard shares &T: a CNA guard of a Cell cannot be shared.
use numakit::sync::CnaGuard;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<CnaGuard<'static, Cell<u8>>>();
}
