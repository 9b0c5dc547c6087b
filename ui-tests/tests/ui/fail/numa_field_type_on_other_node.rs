// A by-value field whose type is declared for node 1 inside a struct
// declared for node 0: one of the two declarations would be false.
use numakit::numa;

#[numa(node = 1)]
pub struct Index {
    keys: [u64; 16],
}

#[numa(node = 0)]
pub struct Shard {
    rows: [u64; 16],
    index: Index,
}

fn main() {}
