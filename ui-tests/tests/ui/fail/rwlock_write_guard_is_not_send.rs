// A write guard is released by the thread that took it.
use numakit::sync::RwLockWriteGuard;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<RwLockWriteGuard<'static, u64>>();
}
