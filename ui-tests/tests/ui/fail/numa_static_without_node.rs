use numakit::numa_static;

numa_static! {
    static COUNTER: u64 = 0;
}

fn main() {}
