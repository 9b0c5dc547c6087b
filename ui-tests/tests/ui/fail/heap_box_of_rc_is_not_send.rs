// A HeapBox owns its value: a box of Rc cannot move to another thread.
use numakit::mem::HeapBox;
use std::rc::Rc;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<HeapBox<'static, Rc<u8>>>();
}
