// Sharing a guard shares &T: a guard of a Cell cannot be shared.
use numakit::sync::McsGuard;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<McsGuard<'static, Cell<u8>>>();
}
