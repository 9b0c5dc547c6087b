// A NodeBox owns its value like Box: a box of Rc cannot move to another thread.
use numakit::NodeBox;
use std::rc::Rc;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<NodeBox<Rc<u8>>>();
}
