// A field may name its struct's const parameter as its node, or a node
// that the instance placed has.
use numakit::numa;

#[numa(node = N)]
struct Shard<const N: u32> {
    #[numa(node = N)]
    hits: u64,
    #[numa(node = 0)]
    table: [u64; 512],
}

fn main() -> Result<(), numakit::Error> {
    let s = Shard::<0>::place(ShardInit { hits: 2, table: [1; 512] })?;
    assert_eq!(s.table[511] + s.hits, 3);
    Ok(())
}
