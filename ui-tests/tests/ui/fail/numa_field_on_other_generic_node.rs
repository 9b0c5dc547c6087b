// The struct's node is a const parameter: the field's node is compared
// with it for each instance that is placed.
use numakit::numa;

#[numa(node = N)]
struct Shard<const N: u32> {
    #[numa(node = 0)]
    table: [u64; 512],
    hits: u64,
}

fn main() {
    // Node 0 matches; node 1 does not.
    let _ = Shard::<0>::place(ShardInit { table: [0; 512], hits: 0 });
    let _ = Shard::<1>::place(ShardInit { table: [0; 512], hits: 0 });
}
