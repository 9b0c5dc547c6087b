// A map Ref holds its shard's read lock: it stays on the thread that took it.
use numakit::collections::hash_map::Ref;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<Ref<'static, u64, u64>>();
}
