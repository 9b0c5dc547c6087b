// A whole `repr(packed)` attribute passed through `macro_rules!` as a
// `meta` fragment is refused too.
use numakit::numa;

macro_rules! with_attr {
    ($m:meta; $item:item) => {
        #[numa(node = 0)]
        #[$m]
        $item
    };
}

with_attr! { repr(packed);
    struct Wire {
        tag: u8,
        value: u64,
    }
}

fn main() {}
