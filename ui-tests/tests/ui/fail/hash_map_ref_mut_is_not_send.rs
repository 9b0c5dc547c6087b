// A map RefMut holds its shard's write lock: it stays on the thread that took it.
use numakit::collections::hash_map::RefMut;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<RefMut<'static, u64, u64>>();
}
