use numakit::numa;

#[numa(node = 0)]
union Bits {
    int: u64,
    float: f64,
}

fn main() {}
