// #[mcs] only means something inside a #[numa] struct.
struct Stats {
    #[mcs]
    hits: u64,
}

fn main() {}
