// A by-value field whose type is interleaved while its struct is bound to
// one node.
use numakit::numa;

#[numa(interleave = [0, 1])]
pub struct Spread {
    bytes: [u8; 4096],
}

#[numa(node = 0)]
pub struct Holder {
    spread: Spread,
}

fn main() {}
