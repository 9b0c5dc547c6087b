// A ticket-lock guard is released by the thread that took the lock.
use numakit::sync::TicketGuard;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<TicketGuard<'static, u64>>();
}
