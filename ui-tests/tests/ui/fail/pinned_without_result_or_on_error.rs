use numakit::pinned;

#[pinned(node = 0)]
fn work() -> u64 {
    42
}

fn main() {
    work();
}
