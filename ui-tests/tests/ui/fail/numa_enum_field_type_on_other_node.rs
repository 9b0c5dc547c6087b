// An enum variant holding, by value, a type declared for another node.
use numakit::numa;

#[numa(node = 1)]
pub struct Payload {
    bytes: [u8; 64],
}

#[numa(node = 0)]
pub enum Message {
    Empty,
    Data(Payload),
}

fn main() {}
