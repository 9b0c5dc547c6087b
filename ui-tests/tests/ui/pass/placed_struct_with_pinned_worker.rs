// A placed struct, a pinned worker and a placed static, end to end.
use numakit::{numa, numa_static, pinned, NodeId};

#[numa(node = 0)]
struct Shard {
    rows: [u32; 1024],
    label: &'static str,
}

numa_static! {
    #[numa(node = 0)]
    static TOTAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
}

#[pinned(node = 0)]
fn sum(shard: &Shard) -> Result<u64, numakit::Error> {
    assert_eq!(numakit::current_node()?, NodeId::new(0));
    Ok(shard.rows.iter().map(|&r| u64::from(r)).sum())
}

fn main() -> Result<(), numakit::Error> {
    let shard = Shard::place(ShardInit { rows: [2; 1024], label: "s0" })?;
    let total = TOTAL.get()?;
    total.fetch_add(sum(&shard)?, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 2048);
    assert_eq!(shard.label, "s0");
    Ok(())
}
