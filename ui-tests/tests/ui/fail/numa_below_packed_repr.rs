// A `repr(packed)` written above #[numa] is seen and refused too.
use numakit::numa;

#[repr(packed)]
#[numa(node = 0)]
struct Wire {
    tag: u8,
    value: u64,
}

fn main() {}
