// `packed(N)` is refused like `packed`, whatever N is.
use numakit::numa;

#[numa(node = 0)]
#[repr(packed(2))]
struct Wire {
    tag: u8,
    value: u64,
}

fn main() {}
