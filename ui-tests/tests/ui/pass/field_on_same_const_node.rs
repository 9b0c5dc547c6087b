// A field may repeat its struct's placement, also through consts.
use numakit::numa;

const HOME: u32 = 0;
const ALSO_HOME: u32 = 0;

#[numa(node = HOME)]
struct Stats {
    #[numa(node = ALSO_HOME)]
    table: [u64; 512],
    hits: u64,
}

fn main() -> Result<(), numakit::Error> {
    let s = Stats::place(StatsInit { table: [1; 512], hits: 2 })?;
    assert_eq!(s.table[511] + s.hits, 3);
    Ok(())
}
