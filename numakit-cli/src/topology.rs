//! `numakit topology`: the machine's NUMA topology as `numactl --hardware`
//! shows it (nodes, CPUs, sizes, free memory, distances), plus hugepage
//! pools per node, as a table, JSON or `numactl`'s own format.

use numakit::mem::NodeLocal;
use numakit::topology::Topology;
use serde_json::json;
use std::fmt;
use std::io::{self, Write};

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

/// Why [`show`] failed.
#[derive(Debug)]
pub enum ShowError {
    /// The topology could not be detected; the text says why.
    Detect(String),
    /// Writing the output failed (a closed pipe, a full disk).
    Write(io::Error),
}

impl fmt::Display for ShowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShowError::Detect(e) => f.write_str(e),
            ShowError::Write(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for ShowError {}

/// Detect the topology (through libhwloc with `hwloc`) and print it in
/// `format` on stdout; the table ends with [`print_heaps`].
///
/// # Errors
/// [`ShowError::Detect`] with the detection error, as text;
/// [`ShowError::Write`] when stdout cannot be written.
pub fn show(format: Format, hwloc: bool) -> Result<(), ShowError> {
    show_to(format, hwloc, &mut io::stdout().lock())
}

/// [`show`], written to `out` (flushed at the end).
///
/// # Errors
/// As [`show`].
pub fn show_to(format: Format, hwloc: bool, out: &mut dyn Write) -> Result<(), ShowError> {
    let topo = detect(hwloc).map_err(ShowError::Detect)?;
    match format {
        Format::Json => writeln!(out, "{}", to_json(&topo)),
        Format::Numactl => print_numactl(&topo, out),
        Format::Table => print_table(&topo, out).and_then(|()| print_heaps(&topo, out)),
    }
    .and_then(|()| out.flush())
    .map_err(ShowError::Write)
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
        return Err(
            "--hwloc: this numakit was built without hwloc support; install one \
             with it: `cargo install --path numakit-cli --features hwloc` from a checkout \
             (needs libhwloc-dev and libudev-dev), or leave out --hwloc for the kernel's \
             view of the topology"
                .into(),
        );
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
///
/// # Errors
/// The error of writing to `out`.
pub fn print_table(topo: &Topology, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{} NUMA node{}, online CPUs {} ({} in all), backend {:?}",
        topo.num_nodes(),
        if topo.num_nodes() == 1 { "" } else { "s" },
        topo.online_cpus(),
        topo.online_cpus().len(),
        topo.backend()
    )?;
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
    write!(
        out,
        "\n{:>4}  {:<cpu_w$}  {:>12}  {:>12}",
        "node", "cpus", "memory", "free"
    )?;
    for s in &sizes {
        write!(out, "  {:>14}", format!("huge {} free/all", page_label(*s)))?;
    }
    writeln!(out)?;
    for n in topo.nodes() {
        write!(
            out,
            "{:>4}  {:<cpu_w$}  {:>8} MiB  {:>8} MiB",
            n.id(),
            n.cpus().to_string(),
            n.memory_total() / MIB,
            n.memory_free() / MIB
        )?;
        for s in &sizes {
            let cell = n
                .hugepage_pool(*s)
                .map_or("-".to_string(), |p| format!("{}/{}", p.free(), p.total()));
            write!(out, "  {cell:>14}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "\ndistances:")?;
    write!(out, "{:>4}", "node")?;
    for id in topo.node_ids() {
        write!(out, " {id:>4}")?;
    }
    writeln!(out)?;
    for a in topo.node_ids() {
        write!(out, "{a:>4}")?;
        for b in topo.node_ids() {
            write!(out, " {:>4}", topo.distance(a, b).unwrap_or(0))?;
        }
        writeln!(out)?;
    }
    if let Some(packages) = topo.packages() {
        writeln!(
            out,
            "\n{} package(s), {} core(s), {} cache(s)",
            packages.len(),
            topo.cores().map_or(0, <[_]>::len),
            topo.caches().map_or(0, <[_]>::len)
        )?;
        for p in packages {
            writeln!(
                out,
                "  package {}: CPUs {}, nodes {:?}",
                p.id(),
                p.cpus(),
                p.nodes()
            )?;
        }
    }
    writeln!(
        out,
        "\nreserve hugepages on a node (as root): echo N > /sys/devices/system/node/nodeK/hugepages/hugepages-2048kB/nr_hugepages"
    )
}

/// One thread pinned to each node with CPUs allocates and writes a
/// [`PER_NODE_BUFFER`] through the global allocator, then the per-node
/// heap figures of [`NodeLocal`] while the buffers are alive: meaningful in
/// a program whose `#[global_allocator]` is a [`NodeLocal`].
///
/// The figures are taken while the threads hold their buffers, and written
/// to `out` only after every thread has been joined: a failed write cannot
/// leave a thread waiting.
///
/// # Errors
/// The error of writing to `out`.
pub fn print_heaps(topo: &Topology, out: &mut dyn Write) -> io::Result<()> {
    let nodes: Vec<_> = topo
        .nodes()
        .iter()
        .filter(|n| !n.cpus().is_empty())
        .map(|n| n.id())
        .collect();
    let ready = std::sync::Barrier::new(nodes.len() + 1);
    let done = std::sync::Barrier::new(nodes.len() + 1);
    // Between the barriers nothing can fail: the threads only wait, and the
    // main thread formats into a `String`.
    let (stats, not_pinned) = std::thread::scope(|s| {
        let threads: Vec<_> = nodes
            .iter()
            .map(|&node| {
                let (ready, done) = (&ready, &done);
                s.spawn(move || {
                    let (buffer, not_pinned) = match numakit::sched::pin_to_node(node) {
                        Ok(_guard) => (
                            Some(vec![(node.get() as u8).wrapping_add(1); PER_NODE_BUFFER]),
                            None,
                        ),
                        Err(e) => (None, Some(format!("  node {node}: not pinned: {e}"))),
                    };
                    ready.wait();
                    done.wait();
                    drop(buffer);
                    not_pinned
                })
            })
            .collect();
        ready.wait();
        let stats = NodeLocal::stats().to_string();
        done.wait();
        let not_pinned: Vec<String> = threads
            .into_iter()
            .filter_map(|t| t.join().ok().flatten())
            .collect();
        (stats, not_pinned)
    });
    for line in &not_pinned {
        // Said on stderr as it always was; a stderr that cannot be written
        // to is no reason to stop.
        let _ = writeln!(io::stderr(), "{line}");
    }
    writeln!(
        out,
        "\nnode-local heaps (numakit::mem::NodeLocal is this program's allocator; \
         a thread pinned to each node holds a {} MiB buffer):",
        PER_NODE_BUFFER >> 20
    )?;
    write!(out, "{stats}")
}

/// The format of `numactl --hardware`, for side-by-side comparison.
///
/// # Errors
/// The error of writing to `out`.
pub fn print_numactl(topo: &Topology, out: &mut dyn Write) -> io::Result<()> {
    let ids: Vec<String> = topo.node_ids().map(|n| n.to_string()).collect();
    writeln!(
        out,
        "available: {} nodes ({})",
        topo.num_nodes(),
        ranges(topo)
    )?;
    for n in topo.nodes() {
        let cpus: Vec<String> = n.cpus().iter().map(|c| c.to_string()).collect();
        writeln!(out, "node {} cpus: {}", n.id(), cpus.join(" "))?;
        writeln!(out, "node {} size: {} MB", n.id(), n.memory_total() / MIB)?;
        writeln!(out, "node {} free: {} MB", n.id(), n.memory_free() / MIB)?;
    }
    writeln!(out, "node distances:")?;
    writeln!(
        out,
        "node {}",
        ids.iter()
            .map(|i| format!("{i:>3}"))
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    for a in topo.node_ids() {
        let row: Vec<String> = topo
            .node_ids()
            .map(|b| format!("{:>3}", topo.distance(a, b).unwrap_or(0)))
            .collect();
        writeln!(out, "{:>3}: {}", a, row.join(" "))?;
    }
    Ok(())
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
