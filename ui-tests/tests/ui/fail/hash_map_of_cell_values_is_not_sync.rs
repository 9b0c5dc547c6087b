// A map whose values are not Sync cannot be shared: readers on several threads get &V at once.
use numakit::collections::ConcurrentHashMap;
use std::cell::Cell;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<ConcurrentHashMap<u64, Cell<u8>>>();
}
