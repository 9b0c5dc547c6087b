// A map holding Rc values cannot move to another thread.
use numakit::collections::ConcurrentHashMap;
use std::rc::Rc;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<ConcurrentHashMap<u64, Rc<u8>>>();
}
