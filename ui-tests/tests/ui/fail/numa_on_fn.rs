use numakit::numa;

#[numa(node = 0)]
fn work() {}

fn main() {
    work();
}
