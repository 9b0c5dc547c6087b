// A slab of Rc cannot move to another thread.
use numakit::mem::Slab;
use std::rc::Rc;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<Slab<Rc<u8>>>();
}
