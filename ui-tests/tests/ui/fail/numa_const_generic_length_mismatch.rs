// Const parameters carry over to the `Init` twin: the array length must
// match the instance placed.
use numakit::numa;

#[numa(node = 0)]
struct Ring<const N: usize> {
    slots: [u64; N],
}

fn main() {
    let _ = Ring::<4>::place(RingInit { slots: [0; 3] });
}
