// A PerNode owns its replicas: replicas of an Rc cannot move to another
// thread.
use numakit::PerNode;
use std::rc::Rc;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<PerNode<Rc<u8>>>();
}
