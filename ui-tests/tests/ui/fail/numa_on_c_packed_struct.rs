// `repr(C, packed)` is packed too.
use numakit::numa;

#[numa(node = 0)]
#[repr(C, packed)]
struct Wire {
    tag: u8,
    value: u32,
}

fn main() {}
