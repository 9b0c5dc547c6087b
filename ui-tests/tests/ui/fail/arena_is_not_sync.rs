// An Arena bumps without atomics: one thread at a time (SharedArena is the shared one).
use numakit::mem::Arena;

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<Arena>();
}
