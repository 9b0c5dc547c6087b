// Each thread's result is joined on the spawning thread: it must be Send.
use numakit::sched::{spawn_group, ThreadPlacement};
use numakit::NodeId;
use std::rc::Rc;

fn main() {
    let _ = spawn_group(2, ThreadPlacement::Node(NodeId::new(0)), |i| Rc::new(i));
}
