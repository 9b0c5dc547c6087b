// By-value fields of `#[numa]` types declared where their struct is, a
// `NodeBox` field for one declared elsewhere, and a field interleaved over
// its struct's own set (in another order) all compile.
use numakit::{numa, NodeBox};

#[numa(node = 0)]
pub struct Index {
    keys: [u64; 16],
}

#[numa(node = 1)]
pub struct Remote {
    value: u64,
}

#[numa(node = 0)]
pub struct Shard {
    index: Index,
    #[mcs]
    more: Index,
    remote: Option<NodeBox<Remote>>,
}

#[numa(interleave = [0, 1])]
pub struct Spread {
    #[numa(interleave = [1, 0])]
    part: [u8; 4096],
}

#[numa(interleave = [1, 0])]
pub struct SpreadHolder {
    spread: Spread,
}

#[numa(node = 0)]
pub enum Message {
    Empty,
    Keys(Index),
}

const ZERO: u32 = 0;

#[numa(node = ZERO)]
pub struct ByConst {
    index: Index,
}

fn main() -> Result<(), numakit::Error> {
    let index = Index::place(IndexInit { keys: [1; 16] })?.into_inner();
    let more = Index::place(IndexInit { keys: [2; 16] })?.into_inner();
    let shard = Shard::place(ShardInit { index, more, remote: None })?;
    assert_eq!((shard.index.keys[0], shard.more.lock().keys[15]), (1, 2));
    assert!(shard.remote.is_none());
    let _ = (std::mem::size_of::<SpreadHolder>(), std::mem::size_of::<ByConst>());
    let _ = Message::Empty;
    Ok(())
}
