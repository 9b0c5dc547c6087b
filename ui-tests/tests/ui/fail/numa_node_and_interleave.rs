use numakit::numa;

#[numa(node = 0, interleave = [0, 1])]
struct Stats {
    hits: u64,
}

fn main() {}
