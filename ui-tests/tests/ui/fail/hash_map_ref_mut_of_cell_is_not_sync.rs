// Sharing a map RefMut shares &V: a RefMut to a Cell cannot be shared.
use numakit::collections::hash_map::RefMut;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<RefMut<'static, u64, Cell<u8>>>();
}
