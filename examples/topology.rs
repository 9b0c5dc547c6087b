//! Print the machine's NUMA topology: what `numactl --hardware` shows (nodes,
//! CPUs, sizes, free memory, distances) plus hugepage pools per node. The
//! same code is the `numakit topology` command (`numakit-cli`).
//!
//! ```text
//! cargo run --example topology              # table
//! cargo run --example topology -- --json    # one JSON object
//! cargo run --example topology -- --numactl # numactl --hardware's format
//! cargo run --example topology --features hwloc -- --hwloc  # through libhwloc
//! ```
//!
//! The table (the default) ends with the figures of numakit's node-local
//! allocator, which this example uses as its global allocator: a thread
//! pinned to each node allocates a buffer, and each node's heap shows it.

use numakit::mem::NodeLocal;
use numakit_cli::topology::{show, Format};
use std::process::ExitCode;

/// Every allocation of this example comes from the heap of the node its
/// thread runs on.
#[global_allocator]
static ALLOC: NodeLocal = NodeLocal::strict();

fn main() -> ExitCode {
    let mut format = Format::Table;
    let mut hwloc = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--json" => format = Format::Json,
            "--numactl" => format = Format::Numactl,
            "--hwloc" => hwloc = true,
            "-h" | "--help" => {
                println!("usage: topology [--json | --numactl] [--hwloc]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!(
                    "unknown argument `{other}`; expected --json, --numactl, --hwloc or --help"
                );
                return ExitCode::from(2);
            }
        }
    }
    match show(format, hwloc) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
