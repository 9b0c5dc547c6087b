use numakit::numa;

#[numa(node = 0)]
struct Stats {
    #[numa(node = 1)]
    table: [u64; 512],
    hits: u64,
}

fn main() {}
