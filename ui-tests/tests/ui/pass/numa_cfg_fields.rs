// Fields under #[cfg] are in the struct, its Init twin and `place` exactly
// when the cfg holds.
use numakit::numa;

#[numa(node = 0)]
struct Stats {
    hits: u64,
    #[cfg(any())]
    never: String,
    #[cfg(all())]
    #[mcs]
    always: u32,
}

fn main() -> Result<(), numakit::Error> {
    let s = Stats::place(StatsInit { hits: 1, always: 2 })?;
    assert_eq!((s.hits, *s.always.lock()), (1, 2));
    Ok(())
}
