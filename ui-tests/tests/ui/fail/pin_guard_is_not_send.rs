// A PinGuard restores the affinity of the thread that pinned itself.
use numakit::sched::PinGuard;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<PinGuard>();
}
