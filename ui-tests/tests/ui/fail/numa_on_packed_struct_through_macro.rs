// A `repr(packed)` put together by `macro_rules!` is refused too.
use numakit::numa;

macro_rules! with_repr {
    ($r:meta; $item:item) => {
        #[repr($r)]
        $item
    };
}

with_repr! { packed;
    #[numa(node = 0)]
    struct Wire {
        tag: u8,
        value: u64,
    }
}

fn main() {}
