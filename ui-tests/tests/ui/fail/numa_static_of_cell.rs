// A placed static is shared by every thread: its type must be Sync.
use numakit::numa_static;
use std::cell::Cell;

numa_static! {
    #[numa(node = 0)]
    static HITS: Cell<u64> = Cell::new(0);
}

fn main() {
    HITS.get_or_panic().set(1);
}
