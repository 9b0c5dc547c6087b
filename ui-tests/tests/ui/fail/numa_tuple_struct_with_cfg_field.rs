// Tuple fields are written by number: a #[cfg] field would shift the
// numbers of the fields after it, so it is refused.
use numakit::numa;

#[numa(node = 0)]
struct Pair(u8, #[cfg(any())] String, u16);

fn main() {}
