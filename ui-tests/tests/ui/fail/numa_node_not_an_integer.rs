use numakit::numa;

#[numa(node = "one")]
struct Stats {
    hits: u64,
}

fn main() {}
