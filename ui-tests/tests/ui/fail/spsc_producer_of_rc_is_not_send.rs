// An SPSC producer of Rc cannot move to another thread: its values would cross to the consumer's.
use numakit::collections::spsc::Producer;
use std::rc::Rc;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<Producer<Rc<u8>>>();
}
