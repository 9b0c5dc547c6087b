// An MCS guard is released by the thread that took the lock.
use numakit::sync::McsGuard;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<McsGuard<'static, u64>>();
}
