// A `repr(packed)` added by `cfg_attr` is refused too.
use numakit::numa;

#[numa(node = 0)]
#[cfg_attr(not(any()), repr(packed))]
struct Wire {
    tag: u8,
    value: u64,
}

fn main() {}
