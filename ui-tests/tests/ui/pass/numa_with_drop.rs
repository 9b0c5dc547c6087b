// A placed type with Drop: its Drop and each field's run exactly once when
// the box is dropped, and none runs while placing.
use numakit::numa;
use std::sync::atomic::{AtomicUsize, Ordering};

static FIELD_DROPS: AtomicUsize = AtomicUsize::new(0);
static OWNER_DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted;
impl Drop for Counted {
    fn drop(&mut self) {
        FIELD_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[numa(node = 0)]
struct Owner {
    a: Counted,
    #[mcs]
    b: Counted,
    c: Vec<Counted>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        OWNER_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

fn main() -> Result<(), numakit::Error> {
    let o = Owner::place(OwnerInit { a: Counted, b: Counted, c: vec![Counted, Counted] })?;
    assert_eq!(FIELD_DROPS.load(Ordering::SeqCst) + OWNER_DROPS.load(Ordering::SeqCst), 0);
    drop(o);
    assert_eq!(OWNER_DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(FIELD_DROPS.load(Ordering::SeqCst), 4);
    Ok(())
}
