// A ring of Rc cannot be shared: a push on one thread and a pop on another move the Rc across.
use numakit::collections::MpmcRing;
use std::rc::Rc;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<MpmcRing<Rc<u8>>>();
}
