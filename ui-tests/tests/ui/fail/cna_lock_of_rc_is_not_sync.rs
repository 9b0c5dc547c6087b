// As for McsLock: a CNA lock of Rc cannot be shared.
use numakit::CnaLock;
use std::rc::Rc;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<CnaLock<Rc<u8>>>();
}
