// A CNA guard is released by the thread that took the lock (its queue node is that thread's).
use numakit::sync::CnaGuard;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<CnaGuard<'static, u64>>();
}
