use numakit::numa;

#[numa]
struct Stats {
    hits: u64,
}

fn main() {}
