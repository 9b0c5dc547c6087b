// Generics carry over to the struct, its `Init` twin and `place`: bounds,
// `where` clauses, const parameters, defaults and lifetimes.
use numakit::numa;
use std::fmt::Debug;

#[numa(node = 0)]
struct Bounded<'a, T: Clone + Debug, const N: usize, D = u8>
where
    T: PartialEq,
    D: Copy + Default,
{
    items: [T; N],
    label: &'a str,
    #[mcs]
    extra: D,
}

#[numa(node = 0)]
struct Pair<T>(T, u8)
where
    T: Send;

fn main() -> Result<(), numakit::Error> {
    let label = String::from("borrowed");
    let b = Bounded::<'_, String, 2, u32>::place(BoundedInit {
        items: [String::from("a"), String::from("b")],
        label: &label,
        extra: 42,
    })?;
    assert_eq!((b.items.concat().as_str(), b.label, *b.extra.lock()), ("ab", "borrowed", 42));
    let empty = Bounded::<'_, u64, 0>::place(BoundedInit { items: [], label: "", extra: 7u8 })?;
    assert_eq!((empty.items.len(), *empty.extra.lock()), (0, 7));
    let p = Pair::place(PairInit(vec![1u32], 2))?;
    assert_eq!((p.0[0], p.1), (1, 2));
    Ok(())
}
