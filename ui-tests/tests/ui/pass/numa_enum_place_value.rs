// A `#[numa]` enum is placed from a value built with one of its variants:
// `place(value)`, not an `Init` twin.
use numakit::{numa, NodeId};

#[numa(node = 0)]
#[derive(Debug, PartialEq)]
enum Command {
    Halt,
    Load { addr: u64, len: u32 },
}

fn main() -> Result<(), numakit::Error> {
    let c = Command::place(Command::Load { addr: 8, len: 2 })?;
    assert_eq!(*c, Command::Load { addr: 8, len: 2 });
    assert!(c.verify()?.is_all_on(NodeId::new(0)));
    assert_ne!(*Command::place(Command::Halt)?, *c);
    Ok(())
}
