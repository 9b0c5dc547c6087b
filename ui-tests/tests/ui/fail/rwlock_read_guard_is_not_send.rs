// A read guard is released by the thread that took it.
use numakit::sync::RwLockReadGuard;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<RwLockReadGuard<'static, u64>>();
}
