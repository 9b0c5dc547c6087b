// Messages go to a worker thread: a channel of Rc is refused.
use numakit::sched::NodePool;
use std::rc::Rc;

fn main() {
    let pool = NodePool::builder().build().unwrap();
    let _ = pool.channel(0, |m: Rc<u8>| drop(m));
}
