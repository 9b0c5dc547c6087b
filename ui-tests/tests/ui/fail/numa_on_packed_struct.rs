// A packed struct's fields sit at unaligned addresses: `place`, which
// writes each field in place, refuses it.
use numakit::numa;

#[numa(node = 0)]
#[repr(packed)]
struct Wire {
    tag: u8,
    value: u64,
}

fn main() {}
