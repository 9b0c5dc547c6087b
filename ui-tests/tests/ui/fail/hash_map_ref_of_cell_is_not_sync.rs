// Sharing a map Ref shares &V: a Ref to a Cell cannot be shared.
use numakit::collections::hash_map::Ref;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<Ref<'static, u64, Cell<u8>>>();
}
