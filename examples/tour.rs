//! The numakit tour: place data on every NUMA node, run pinned workers that
//! contend on queue locks next to that data, prove where every page is.
//!
//! ```text
//! cargo run --release --example tour
//! ```
//!
//! On a one-node machine it shows node 1 refused with the error — never
//! memory from node 0 passed off as node 1.
//!
//! The tour's own allocations go through numakit's node-local allocator
//! (`#[global_allocator]`); it ends with that allocator's per-node figures.

use numakit::mem::NodeLocal;
use numakit::sched::{self, ThreadPlacement};
use numakit::{numa, pinned, NodeBox, NodeId, Topology};
use std::time::{Duration, Instant};

/// Each thread's allocations come from the heap of the node it runs on.
#[global_allocator]
static ALLOC: NodeLocal = NodeLocal::strict();

/// One shard of state per node. `#[numa(node = N)]` makes `Shard::<N>::place`
/// build it in node N's memory; `#[mcs]` fields are stored in MCS queue
/// locks (the initialiser takes plain values).
#[numa(node = N)]
struct Shard<const N: u32> {
    #[mcs]
    hits: u64,
    #[mcs]
    recent: [u64; 16],
    table: [u64; 64 * 1024],
}

/// Lock, bump, unlock for `run_for`, on node N's CPUs with memory bound to
/// node N; returns the acquisitions made.
#[pinned(node = N)]
fn hammer<const N: u32>(shard: &Shard<N>, run_for: Duration) -> Result<u64, numakit::Error> {
    // The worker's own buffer: through the global allocator, from node N's
    // heap (the per-node figures at the end count it).
    let scratch = vec![N as u64; 512];
    std::hint::black_box(&scratch);
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < run_for {
        for _ in 0..64 {
            *shard.hits.lock() += 1;
            done += 1;
        }
        let mut recent = shard.recent.lock();
        recent[(done / 64 % 16) as usize] = done;
    }
    Ok(done)
}

struct Row {
    node: NodeId,
    bytes: usize,
    pages: usize,
    on_node: usize,
    acquisitions_per_s: f64,
    /// Increments made under the lock, and the counter's final value:
    /// equal when the lock lost no update.
    increments: u64,
    hits: u64,
}

const RUN_FOR: Duration = Duration::from_millis(300);
const WORKERS_PER_NODE: usize = 2;

/// Place a shard on node N, run pinned workers on it, verify it.
fn visit<const N: u32>() -> Result<Row, numakit::Error> {
    let shard = Shard::<N>::place(ShardInit {
        hits: 0,
        recent: [0; 16],
        table: [N as u64; 64 * 1024],
    })?;
    let proof = shard.verify()?;
    let shard: &'static NodeBox<Shard<N>> = Box::leak(Box::new(shard));
    let start = Instant::now();
    let workers = sched::spawn_group(
        WORKERS_PER_NODE,
        ThreadPlacement::Node(NodeId::new(N)),
        |_| hammer(shard, RUN_FOR),
    )?;
    let mut total = 0;
    for r in workers.join() {
        total += r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    }
    let secs = start.elapsed().as_secs_f64();
    let hits = *shard.hits.lock();
    Ok(Row {
        node: NodeId::new(N),
        bytes: std::mem::size_of::<Shard<N>>(),
        pages: proof.pages(),
        on_node: proof.on(NodeId::new(N)),
        acquisitions_per_s: total as f64 / secs,
        increments: total,
        hits,
    })
}

fn visit_node(id: u32) -> Option<Result<Row, numakit::Error>> {
    Some(match id {
        0 => visit::<0>(),
        1 => visit::<1>(),
        2 => visit::<2>(),
        3 => visit::<3>(),
        4 => visit::<4>(),
        5 => visit::<5>(),
        6 => visit::<6>(),
        7 => visit::<7>(),
        _ => return None,
    })
}

fn main() -> Result<(), numakit::Error> {
    let topo = Topology::detect()?;
    println!("numakit tour — {} NUMA node(s)", topo.num_nodes());
    for node in topo.nodes() {
        println!(
            "  node {}: CPUs {}, {} MiB ({} MiB free)",
            node.id(),
            node.cpus(),
            node.memory_total() >> 20,
            node.memory_free() >> 20
        );
    }
    println!();

    let mut rows = Vec::new();
    let mut ids: Vec<u32> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory() && !n.cpus().is_empty())
        .map(|n| n.id().get())
        .collect();
    if topo.num_nodes() == 1 {
        ids.push(1); // show what asking for a node that is not there does
    }
    for id in ids {
        print!("placing a Shard<{id}> on node {id} … ");
        match visit_node(id) {
            Some(Ok(row)) => {
                println!("placed, {} workers ran pinned there", WORKERS_PER_NODE);
                rows.push(row);
            }
            Some(Err(e)) => println!("refused:\n    {e}"),
            None => println!("skipped: the tour has shard types for nodes 0-7"),
        }
    }

    println!();
    println!(
        "{:>4}  {:>12}  {:>22}  {:>20}  {:>22}",
        "node",
        "bytes placed",
        "pages verified on-node",
        "lock acquisitions/s",
        "increments / counter"
    );
    for r in &rows {
        println!(
            "{:>4}  {:>12}  {:>22}  {:>20}  {:>22}",
            r.node,
            r.bytes,
            format!("{}/{}", r.on_node, r.pages),
            format!("{:.1} M", r.acquisitions_per_s / 1e6),
            format!("{} / {}", r.increments, r.hits)
        );
    }
    let misplaced = rows.iter().any(|r| r.on_node != r.pages);
    let lost = rows.iter().any(|r| r.increments != r.hits);
    println!();
    if misplaced || lost || rows.is_empty() {
        println!("FAILED: misplaced pages or lost updates, see the table");
        std::process::exit(1);
    }
    println!("every page of every shard is on its node (checked with move_pages),");
    println!("and the McsLock lost no update ({WORKERS_PER_NODE} pinned workers per node).");
    println!();
    println!("the tour's allocations per node (numakit::mem::NodeLocal, its global allocator):");
    print!("{}", NodeLocal::stats());
    Ok(())
}
