//! numakit's placement decisions as `tracing` events, printed by
//! `tracing-subscriber`'s formatter: an arena placed and one refused, a
//! pin and a refused pin, a migration.
//!
//! ```sh
//! cargo run --example tracing --features tracing
//! ```
//!
//! The subscriber prints `DEBUG` and up (`RUST_LOG` is not read).

use numakit::mem::Arena;
use numakit::sched::Pin;
use numakit::{NodeId, Topology};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_target(true)
        .without_time()
        .init();

    let topo = Topology::current()?;
    let absent = NodeId::new(topo.node_ids().map(NodeId::get).max().unwrap_or(0) + 1);

    let arena = Arena::builder(0).capacity(1 << 20).build()?;
    let refused = Arena::builder(absent).capacity(1 << 20).build();
    println!(
        "arena on node {absent}: {}",
        refused.map(|_| "placed").unwrap_or("refused")
    );

    std::thread::spawn(move || {
        let _pinned = Pin::node(0).bind_memory(false).apply();
        let _refused = Pin::node(absent).apply();
    })
    .join()
    .expect("the pinning thread");

    let block: &mut [u64] = arena.alloc_slice_fill_with(1024, |i| i as u64);
    numakit::mem::migrate(
        block.as_ptr().cast(),
        std::mem::size_of_val(block),
        NodeId::new(0),
    )?;
    Ok(())
}
