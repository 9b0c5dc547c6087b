// An SPSC consumer of Rc cannot move to another thread.
use numakit::collections::spsc::Consumer;
use std::rc::Rc;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<Consumer<Rc<u8>>>();
}
