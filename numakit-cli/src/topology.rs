//! `numakit topology`: the machine's NUMA topology as `numactl --hardware`
//! shows it (nodes, CPUs, sizes, free memory, distances), plus hugepage
//! pools per node, as a table, JSON or `numactl`'s own format.

use numakit::mem::NodeLocal;
use numakit::topology::Topology;
use serde_json::json;

const MIB: u64 = 1 << 20;

/// Bytes of the buffer a thread pinned to each node allocates in
/// [`print_heaps`].
pub const PER_NODE_BUFFER: usize = 4 << 20;

/// How to show the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The table for people (with the node-local heaps after it).
    Table,
    /// One JSON object.
    Json,
    /// `numactl --hardware`'s format.
    Numactl,
}

/// Detect the topology (through libhwloc with `hwloc`) and print it in
/// `format`; the table ends with [`print_heaps`].
///
/// # Errors
/// The detection error, as text.
pub fn show(format: Format, hwloc: bool) -> Result<(), String> {
    let topo = detect(hwloc)?;
    match format {
        Format::Json => println!("{}", to_json(&topo)),
        Format::Numactl => print_numactl(&topo),
        Format::Table => {
            print_table(&topo);
            print_heaps(&topo);
        }
    }
    Ok(())
}

#[cfg(feature = "hwloc")]
fn detect(hwloc: bool) -> Result<Topology, String> {
    if hwloc {
        Topology::detect_hwloc()
    } else {
        Topology::detect()
    }
    .map_err(|e| e.to_string())
}

#[cfg(not(feature = "hwloc"))]
fn detect(hwloc: bool) -> Result<Topology, String> {
    if hwloc {
        return Err("--hwloc needs the `hwloc` feature: \
             cargo run --example topology --features hwloc -- --hwloc, or \
             cargo install --path numakit-cli --features hwloc"
            .into());
    }
    Topology::detect().map_err(|e| e.to_string())
}

fn page_label(size: u64) -> String {
    if size >= 1 << 30 {
        format!("{}G", size >> 30)
    } else if size >= MIB {
        format!("{}M", size >> 20)
    } else {
        format!("{}K", size >> 10)
    }
}

/// The table for people.
pub fn print_table(topo: &Topology) {
    println!(
        "{} NUMA node{}, online CPUs {} ({} in all), backend {:?}",
        topo.num_nodes(),
        if topo.num_nodes() == 1 { "" } else { "s" },
        topo.online_cpus(),
        topo.online_cpus().len(),
        topo.backend()
    );
    let sizes: Vec<u64> = {
        let mut s: Vec<u64> = topo
            .nodes()
            .iter()
            .flat_map(|n| n.hugepages().iter().map(|p| p.page_size()))
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let cpu_w = topo
        .nodes()
        .iter()
        .map(|n| n.cpus().to_string().len())
        .max()
        .unwrap_or(4)
        .max(4);
    print!(
        "\n{:>4}  {:<cpu_w$}  {:>12}  {:>12}",
        "node", "cpus", "memory", "free"
    );
    for s in &sizes {
        print!("  {:>14}", format!("huge {} free/all", page_label(*s)));
    }
    println!();
    for n in topo.nodes() {
        print!(
            "{:>4}  {:<cpu_w$}  {:>8} MiB  {:>8} MiB",
            n.id(),
            n.cpus().to_string(),
            n.memory_total() / MIB,
            n.memory_free() / MIB
        );
        for s in &sizes {
            let cell = n
                .hugepage_pool(*s)
                .map_or("-".to_string(), |p| format!("{}/{}", p.free(), p.total()));
            print!("  {cell:>14}");
        }
        println!();
    }
    println!("\ndistances:");
    print!("{:>4}", "node");
    for id in topo.node_ids() {
        print!(" {id:>4}");
    }
    println!();
    for a in topo.node_ids() {
        print!("{a:>4}");
        for b in topo.node_ids() {
            print!(" {:>4}", topo.distance(a, b).unwrap_or(0));
        }
        println!();
    }
    if let Some(packages) = topo.packages() {
        println!(
            "\n{} package(s), {} core(s), {} cache(s)",
            packages.len(),
            topo.cores().map_or(0, <[_]>::len),
            topo.caches().map_or(0, <[_]>::len)
        );
        for p in packages {
            println!(
                "  package {}: CPUs {}, nodes {:?}",
                p.id(),
                p.cpus(),
                p.nodes()
            );
        }
    }
    println!(
        "\nreserve hugepages on a node (as root): echo N > /sys/devices/system/node/nodeK/hugepages/hugepages-2048kB/nr_hugepages"
    );
}

/// One thread pinned to each node with CPUs allocates and writes a
/// [`PER_NODE_BUFFER`] through the global allocator, then the per-node
/// heap figures of [`NodeLocal`] while the buffers are alive: meaningful in
/// a program whose `#[global_allocator]` is a [`NodeLocal`].
pub fn print_heaps(topo: &Topology) {
    let nodes: Vec<_> = topo
        .nodes()
        .iter()
        .filter(|n| !n.cpus().is_empty())
        .map(|n| n.id())
        .collect();
    let ready = std::sync::Barrier::new(nodes.len() + 1);
    let done = std::sync::Barrier::new(nodes.len() + 1);
    println!(
        "\nnode-local heaps (numakit::mem::NodeLocal is this program's allocator; \
         a thread pinned to each node holds a {} MiB buffer):",
        PER_NODE_BUFFER >> 20
    );
    std::thread::scope(|s| {
        for &node in &nodes {
            let (ready, done) = (&ready, &done);
            s.spawn(move || {
                let buffer = match numakit::sched::pin_to_node(node) {
                    Ok(_guard) => Some(vec![node.get() as u8 + 1; PER_NODE_BUFFER]),
                    Err(e) => {
                        eprintln!("  node {node}: not pinned: {e}");
                        None
                    }
                };
                ready.wait();
                done.wait();
                drop(buffer);
            });
        }
        ready.wait();
        print!("{}", NodeLocal::stats());
        done.wait();
    });
}

/// The format of `numactl --hardware`, for side-by-side comparison.
pub fn print_numactl(topo: &Topology) {
    let ids: Vec<String> = topo.node_ids().map(|n| n.to_string()).collect();
    println!("available: {} nodes ({})", topo.num_nodes(), ranges(topo));
    for n in topo.nodes() {
        let cpus: Vec<String> = n.cpus().iter().map(|c| c.to_string()).collect();
        println!("node {} cpus: {}", n.id(), cpus.join(" "));
        println!("node {} size: {} MB", n.id(), n.memory_total() / MIB);
        println!("node {} free: {} MB", n.id(), n.memory_free() / MIB);
    }
    println!("node distances:");
    println!(
        "node {}",
        ids.iter()
            .map(|i| format!("{i:>3}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for a in topo.node_ids() {
        let row: Vec<String> = topo
            .node_ids()
            .map(|b| format!("{:>3}", topo.distance(a, b).unwrap_or(0)))
            .collect();
        println!("{:>3}: {}", a, row.join(" "));
    }
}

fn ranges(topo: &Topology) -> String {
    topo.node_ids()
        .map(|n| numakit::CpuId::new(n.get()))
        .collect::<numakit::CpuSet>()
        .to_string()
}

/// The topology as one JSON object.
pub fn to_json(topo: &Topology) -> serde_json::Value {
    let nodes: Vec<_> = topo
        .nodes()
        .iter()
        .map(|n| {
            json!({
                "id": n.id().get(),
                "cpus": n.cpus().iter().map(|c| c.get()).collect::<Vec<_>>(),
                "cpulist": n.cpus().to_string(),
                "memory_total_bytes": n.memory_total(),
                "memory_free_bytes": n.memory_free(),
                "hugepages": n.hugepages().iter().map(|p| json!({
                    "page_size_bytes": p.page_size(),
                    "total": p.total(),
                    "free": p.free(),
                    "reserve_path": p.reserve_path(),
                })).collect::<Vec<_>>(),
                "distances": topo.node_ids().map(|b| topo.distance(n.id(), b).unwrap_or(0)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "backend": format!("{:?}", topo.backend()).to_lowercase(),
        "online_cpus": topo.online_cpus().to_string(),
        "node_ids": topo.node_ids().map(|n| n.get()).collect::<Vec<_>>(),
        "nodes": nodes,
    })
}
