// `place` moves each field out of its `Init` value; an `Init` with a Drop
// of its own is refused (its fields cannot be moved out, so none is
// dropped twice).
use numakit::numa;

#[numa(node = 0)]
struct Buffer {
    bytes: Vec<u8>,
}

impl Drop for BufferInit {
    fn drop(&mut self) {}
}

fn main() {}
