// A job's result comes back to the submitting thread: it must be Send.
use numakit::sched::NodePool;
use std::rc::Rc;

fn main() {
    let pool = NodePool::builder().build().unwrap();
    let _ = pool.submit(|| Rc::new(1u8));
}
