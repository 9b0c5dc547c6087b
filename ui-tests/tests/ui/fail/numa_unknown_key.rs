use numakit::numa;

#[numa(nodes = 1)]
struct Stats {
    hits: u64,
}

fn main() {}
