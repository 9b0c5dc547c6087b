// A Slab's free list is not synchronised: one thread at a time.
use numakit::mem::Slab;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<Slab<u64>>();
}
