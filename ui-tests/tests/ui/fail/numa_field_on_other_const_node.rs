use numakit::numa;

const HOME: u32 = 0;
const AWAY: u32 = 1;

#[numa(node = HOME)]
struct Stats {
    #[numa(node = AWAY)]
    table: [u64; 512],
    hits: u64,
}

fn main() {}
