use numakit::numa_static;

numa_static! {
    #[numa(node = 0)]
    static mut COUNTER: u64 = 0;
}

fn main() {}
