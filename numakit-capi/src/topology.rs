//! `topology.h`: `nkit_topo_*`, on [`nk::Topology::current`].

use crate::error::{ffi, node_arg, to_int, CError};
use std::ffi::c_int;

/// The number of NUMA nodes, or -1 when the topology cannot be read.
#[no_mangle]
pub extern "C" fn nkit_topo_num_nodes() -> c_int {
    ffi("nkit_topo_num_nodes", -1, || {
        let topo = nk::Topology::current()?;
        to_int(topo.num_nodes(), "the node count")
    })
}

/// The number of online logical CPUs, or -1.
#[no_mangle]
pub extern "C" fn nkit_topo_num_cpus() -> c_int {
    ffi("nkit_topo_num_cpus", -1, || {
        let topo = nk::Topology::current()?;
        to_int(topo.online_cpus().len(), "the CPU count")
    })
}

/// The number of online CPUs of `node_id` (0 for a CPU-less node), or -1
/// for a node that does not exist.
#[no_mangle]
pub extern "C" fn nkit_topo_cpus_on_node(node_id: c_int) -> c_int {
    ffi("nkit_topo_cpus_on_node", -1, || {
        let node = node_arg(node_id, "nkit_topo_cpus_on_node")?;
        let topo = nk::Topology::current()?;
        to_int(topo.node(node)?.cpus().len(), "the CPU count")
    })
}

/// The SLIT distance from `from_node` to `to_node` (10 = local), or -1.
#[no_mangle]
pub extern "C" fn nkit_topo_distance(from_node: c_int, to_node: c_int) -> c_int {
    ffi("nkit_topo_distance", -1, || {
        let from = node_arg(from_node, "nkit_topo_distance")?;
        let to = node_arg(to_node, "nkit_topo_distance")?;
        let topo = nk::Topology::current()?;
        let d = topo.distance(from, to)?;
        to_int(d as usize, "the distance")
    })
}

/// Total and free memory of `node_id` in bytes (either pointer may be
/// `NULL`). Returns 0, or -1 for a node that does not exist; the outputs
/// are written only on success.
///
/// # Safety
/// Each non-null pointer is valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nkit_topo_node_memory(
    node_id: c_int,
    total_bytes: *mut usize,
    free_bytes: *mut usize,
) -> c_int {
    ffi("nkit_topo_node_memory", -1, || {
        let node = node_arg(node_id, "nkit_topo_node_memory")?;
        // Read now, not the process's snapshot: the free memory is "now".
        let topo = nk::Topology::detect()?;
        let n = topo.node(node)?;
        let total = usize::try_from(n.memory_total()).unwrap_or(usize::MAX);
        let free = usize::try_from(n.memory_free()).unwrap_or(usize::MAX);
        if !total_bytes.is_null() {
            // SAFETY: non-null, and valid for a write per the contract.
            unsafe { total_bytes.write(total) };
        }
        if !free_bytes.is_null() {
            // SAFETY: as above.
            unsafe { free_bytes.write(free) };
        }
        Ok::<c_int, CError>(0)
    })
}

/// 1 when the kernel's NUMA interface describes this machine (numakit
/// places memory with it, one node or many); 0 when it cannot be read, with
/// the error set — numakit then refuses placement requests rather than
/// ignoring them.
#[no_mangle]
pub extern "C" fn nkit_topo_is_numa() -> c_int {
    ffi("nkit_topo_is_numa", 0, || {
        let topo = nk::Topology::current()?;
        Ok(c_int::from(topo.num_nodes() > 0))
    })
}
