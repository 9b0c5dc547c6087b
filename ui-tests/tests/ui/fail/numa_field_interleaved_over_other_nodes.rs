// A field's own interleave set differs from its struct's.
use numakit::numa;

#[numa(interleave = [0, 1])]
pub struct Spread {
    #[numa(interleave = [0, 2])]
    part: [u8; 4096],
}

fn main() {}
