use numakit::numa;

#[numa(node = -1)]
struct Stats {
    hits: u64,
}

fn main() {}
