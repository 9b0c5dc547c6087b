// A ring of Rc cannot move to another thread: the Rc's count is not atomic.
use numakit::collections::MpmcRing;
use std::rc::Rc;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<MpmcRing<Rc<u8>>>();
}
