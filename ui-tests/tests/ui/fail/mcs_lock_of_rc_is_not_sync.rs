// A lock hands its value to one thread at a time: sharing a lock of Rc would move the Rc between threads.
use numakit::McsLock;
use std::rc::Rc;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<McsLock<Rc<u8>>>();
}
