//! The hwloc backend: the snapshot of [`super::sysfs`], read through the
//! system's libhwloc (crate `hwlocality`), plus packages, cores and caches.
//!
//! | field | source |
//! |---|---|
//! | node ids | NUMA node objects' `os_index` |
//! | node CPUs | NUMA node objects' `cpuset`, restricted to online CPUs (see [`node_cpus`]) |
//! | memory total | NUMA node attribute `local_memory` (the node's `MemTotal`) |
//! | memory free | **sysfs** `nodeN/meminfo`: hwloc does not report free memory |
//! | hugepage sizes and totals | NUMA node attribute `page_types` |
//! | hugepage free counts | **sysfs** `free_hugepages`: hwloc does not report them |
//! | distances | the `FROM_OS` latency matrix of NUMA nodes (the kernel's SLIT) |
//! | online CPUs | the topology's CPU set |
//! | packages, cores, caches | Package, Core and CPU cache objects |
//!
//! The topology is loaded with [`BuildFlags::INCLUDE_DISALLOWED`]: without it
//! hwloc drops the CPUs and nodes that the calling process's cgroup
//! (`cpuset.cpus`, `cpuset.mems`) does not allow, while sysfs, and so the
//! other backend, shows the whole machine. Offline CPUs and nodes stay out,
//! as in sysfs.
//!
//! No `unsafe` here: `hwlocality`'s safe API covers everything this needs.

use super::{
    sysfs, Backend, Cache, CacheKind, Core, CpuId, CpuSet, Hardware, HugePagePool, Node, NodeId,
    Package, Topology, TopologyError,
};
use hwlocality::cpu::cpuset::CpuSet as HwlocCpuSet;
use hwlocality::object::attributes::{NUMANodeAttributes, ObjectAttributes};
use hwlocality::object::distance::DistancesKind;
use hwlocality::object::types::{CacheType, ObjectType};
use hwlocality::object::TopologyObject;
use hwlocality::topology::builder::{BuildFlags, TypeFilter};
use std::collections::HashMap;
use std::path::Path;

/// The CPU cache object types hwloc knows (data/unified, then instruction).
const CACHE_TYPES: [ObjectType; 8] = [
    ObjectType::L1Cache,
    ObjectType::L2Cache,
    ObjectType::L3Cache,
    ObjectType::L4Cache,
    ObjectType::L5Cache,
    ObjectType::L1ICache,
    ObjectType::L2ICache,
    ObjectType::L3ICache,
];

/// Load the topology through libhwloc and convert it.
pub(crate) fn read() -> Result<Topology, TopologyError> {
    let topo = load()?;
    let online_cpus = convert_cpuset(&topo.cpuset(), "the topology's CPU set")?;

    let node_objs: Vec<&TopologyObject> = topo.objects_with_type(ObjectType::NUMANode).collect();
    if node_objs.is_empty() {
        return Err(TopologyError::Hwloc(
            "hwloc reported no NUMA node at all (it always reports at least one on Linux); \
             check that the hwloc library works (`lstopo-no-graphics`) or use Topology::detect()"
                .into(),
        ));
    }
    let ids = node_objs
        .iter()
        .map(|obj| {
            obj.os_index()
                .and_then(|i| u32::try_from(i).ok())
                .map(NodeId::new)
                .ok_or_else(|| {
                    TopologyError::Hwloc(format!(
                        "NUMA node L#{} has no usable OS index ({:?}), so it cannot be matched \
                         with the kernel's node numbers; use Topology::detect() instead",
                        obj.logical_index(),
                        obj.os_index()
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cpus = node_cpus(&node_objs, &ids, &online_cpus)?;

    let numa_in_sysfs = Path::new("/sys/devices/system/node").is_dir();
    let base_page = crate::sys::page_size() as u64;
    let mut nodes = Vec::with_capacity(ids.len());
    for ((obj, &id), cpus) in node_objs.iter().zip(&ids).zip(cpus) {
        let attrs = match obj.attributes() {
            Some(ObjectAttributes::NUMANode(attrs)) => Some(attrs),
            _ => None,
        };
        let total = attrs
            .and_then(NUMANodeAttributes::local_memory)
            .map_or(0, |m| m.get());
        let free = memory_free_now(id, numa_in_sysfs)?;
        let hugepages = match attrs {
            Some(attrs) => hugepage_pools(id, attrs, base_page)?,
            None => Vec::new(),
        };
        nodes.push(Node::new(id, cpus, total, free, hugepages));
    }

    let distances = distances(&topo, &ids)?;
    let hardware = hardware(&topo, &online_cpus)?;
    Ok(Topology::from_parts(
        Backend::Hwloc,
        nodes,
        distances,
        online_cpus,
        Some(hardware),
    ))
}

/// Build the hwloc topology of the whole machine.
fn load() -> Result<hwlocality::Topology, TopologyError> {
    let what_to_do = "check that libhwloc works (`lstopo-no-graphics` should print the machine) \
                      or use Topology::detect(), which reads sysfs directly";
    let topo = hwlocality::Topology::builder()
        .with_flags(BuildFlags::INCLUDE_DISALLOWED)
        .map_err(|e| hwloc_err("cannot set INCLUDE_DISALLOWED", e, what_to_do))?
        // No PCI or OS devices: nothing here needs them, and leaving them
        // out spares walking /sys/bus/pci (hwloc's default too; made explicit).
        .with_io_type_filter(TypeFilter::KeepNone)
        .map_err(|e| hwloc_err("cannot filter out I/O objects", e, what_to_do))?
        // Instruction caches are filtered out by hwloc's defaults; keep them.
        .with_cpu_icache_type_filter(TypeFilter::KeepAll)
        .map_err(|e| hwloc_err("cannot keep instruction caches", e, what_to_do))?
        .build()
        .map_err(|e| hwloc_err("cannot load the topology", e, what_to_do))?;
    if !topo.is_this_system() {
        // Free memory and free hugepages come from this machine's sysfs:
        // mixing them with another machine's topology would be nonsense.
        return Err(TopologyError::Hwloc(
            "hwloc loaded a topology that is not this machine's (HWLOC_XMLFILE, \
             HWLOC_SYNTHETIC or HWLOC_FSROOT is set in the environment?); unset those \
             variables to read this machine"
                .into(),
        ));
    }
    Ok(topo)
}

fn hwloc_err(what: &str, err: impl std::fmt::Display, what_to_do: &str) -> TopologyError {
    TopologyError::Hwloc(format!("{what}: {err}; {what_to_do}"))
}

/// numakit's [`CpuSet`] from hwloc's. Fails only on an infinite set or an
/// index beyond `u32`, which hwloc does not produce for real CPUs.
fn convert_cpuset(set: &HwlocCpuSet, what: &str) -> Result<CpuSet, TopologyError> {
    if set.weight().is_none() {
        return Err(TopologyError::Hwloc(format!(
            "{what} is infinite ({set}); hwloc reports finite sets for real machines, \
             so use Topology::detect() instead"
        )));
    }
    set.iter_set()
        .map(|idx| {
            u32::try_from(usize::from(idx))
                .map(CpuId::new)
                .map_err(|_| {
                    TopologyError::Hwloc(format!(
                        "{what} holds CPU {idx}, beyond u32; cannot represent it"
                    ))
                })
        })
        .collect()
}

/// `obj`'s CPU set restricted to `online` (empty when hwloc gives none).
fn object_cpus(
    obj: &TopologyObject,
    online: &CpuSet,
    what: impl FnOnce() -> String,
) -> Result<CpuSet, TopologyError> {
    match obj.cpuset() {
        Some(set) => Ok(convert_cpuset(&set, &what())?.intersection(online)),
        None => Ok(CpuSet::new()),
    }
}

/// Each node's CPUs, in `node_objs` order.
///
/// A NUMA node's `cpuset` in hwloc is its *locality*, the CPUs near that
/// memory; numakit's [`Node::cpus`] is *membership*, the kernel's `cpulist`
/// (empty for a CPU-less node). They agree except for CPU-less nodes (CXL or
/// HBM memory, a VM's memory-only node): hwloc gives those the CPUs of their
/// initiators (`access0/initiators`) or of their nearest nodes by distance,
/// so two nodes then share CPUs. The kernel's node CPU lists are disjoint
/// (hwloc itself drops a node whose `cpumap` overlaps another's), so sharing
/// marks exactly the nodes involved; for those the kernel's list is read
/// from sysfs instead, because which of the sharing nodes really owns the
/// CPUs cannot be told from hwloc's objects.
fn node_cpus(
    node_objs: &[&TopologyObject],
    ids: &[NodeId],
    online: &CpuSet,
) -> Result<Vec<CpuSet>, TopologyError> {
    let mut cpus = node_objs
        .iter()
        .zip(ids)
        .map(|(obj, id)| object_cpus(obj, online, || format!("the CPU set of NUMA node {id}")))
        .collect::<Result<Vec<_>, _>>()?;
    let shares =
        |i: usize| (0..cpus.len()).any(|j| j != i && !cpus[i].intersection(&cpus[j]).is_empty());
    let sharing: Vec<usize> = (0..cpus.len()).filter(|&i| shares(i)).collect();
    for i in sharing {
        cpus[i] = sysfs::node_cpus_now(ids[i])?.intersection(online);
    }
    Ok(cpus)
}

/// `node`'s free memory in bytes, read now from sysfs: hwloc reports only
/// totals. On a kernel without NUMA support, the machine's (`sysinfo(2)`),
/// as the sysfs backend does.
fn memory_free_now(node: NodeId, numa_in_sysfs: bool) -> Result<u64, TopologyError> {
    if numa_in_sysfs {
        let meminfo = format!("/sys/devices/system/node/node{}/meminfo", node.get());
        Ok(sysfs::read_node_meminfo(Path::new(&meminfo))?.1)
    } else {
        crate::sys::sysinfo_memory()
            .map(|(_, free)| free)
            .map_err(|source| TopologyError::Os {
                call: "sysinfo",
                source,
            })
    }
}

/// The node's hugepage pools: sizes and `nr_hugepages` from hwloc's page
/// types, `free_hugepages` from sysfs (hwloc does not report it).
///
/// hwloc lists one page type per `hugepages-<size>kB` directory, pools of 0
/// pages included, so the sizes are those the sysfs backend lists; its first
/// page type is the base page size (the memory outside hugepage pools),
/// which is not a pool and is skipped.
fn hugepage_pools(
    node: NodeId,
    attrs: &NUMANodeAttributes<'_>,
    base_page: u64,
) -> Result<Vec<HugePagePool>, TopologyError> {
    attrs
        .page_types()
        .iter()
        .filter(|pt| pt.size().get() > base_page)
        .map(|pt| {
            let size = pt.size().get();
            let free = sysfs::free_hugepages_now(node, size)?;
            Ok(HugePagePool::new(node, size, pt.count(), free))
        })
        .collect()
}

/// Rows in `ids` order from hwloc's OS-provided NUMA latency matrix (Linux:
/// `nodeN/distance`, the ACPI SLIT). hwloc keeps none for a single node, or
/// when the kernel gives none: then 10 on the diagonal and 20 elsewhere, as
/// the kernel itself reports without a SLIT.
fn distances(topo: &hwlocality::Topology, ids: &[NodeId]) -> Result<Vec<Vec<u32>>, TopologyError> {
    let matrices = topo
        .distances_with_type(
            Some(DistancesKind::FROM_OS | DistancesKind::MEANS_LATENCY),
            ObjectType::NUMANode,
        )
        .map_err(|e| {
            hwloc_err(
                "cannot read the NUMA distance matrix",
                e,
                "use Topology::detect(), which reads nodeN/distance directly",
            )
        })?;
    let mut by_pair: HashMap<(u32, u32), u32> = HashMap::new();
    if let Some(matrix) = matrices.first() {
        for ((from, to), d) in matrix.object_distances() {
            let os_id = |obj: Option<&TopologyObject>| {
                obj.and_then(TopologyObject::os_index)
                    .and_then(|i| u32::try_from(i).ok())
            };
            if let (Some(from), Some(to)) = (os_id(from), os_id(to)) {
                by_pair.insert((from, to), u32::try_from(d).unwrap_or(u32::MAX));
            }
        }
    }
    Ok(ids
        .iter()
        .map(|from| {
            ids.iter()
                .map(|to| {
                    let default = if from == to { 10 } else { 20 };
                    by_pair
                        .get(&(from.get(), to.get()))
                        .copied()
                        .unwrap_or(default)
                })
                .collect()
        })
        .collect())
}

/// Packages, cores and caches, each in hwloc's logical order.
fn hardware(topo: &hwlocality::Topology, online: &CpuSet) -> Result<Hardware, TopologyError> {
    let numa_nodes: Vec<&TopologyObject> = topo.objects_with_type(ObjectType::NUMANode).collect();

    let mut packages = Vec::new();
    for pkg in topo.objects_with_type(ObjectType::Package) {
        let id = os_or_logical_index(pkg);
        let cpus = object_cpus(pkg, online, || format!("the CPU set of package {id}"))?;
        // The nodes hwloc attaches inside the package. A node whose CPUs span
        // several packages hangs above them and is listed by none.
        let nodes = numa_nodes
            .iter()
            .filter(|node| node.ancestors().any(|a| std::ptr::eq(a, pkg)))
            .filter_map(|node| node.os_index().and_then(|i| u32::try_from(i).ok()))
            .map(NodeId::new)
            .collect();
        packages.push(Package { id, cpus, nodes });
    }

    let mut cores = Vec::new();
    for core in topo.objects_with_type(ObjectType::Core) {
        let id = os_or_logical_index(core);
        let package = core
            .first_ancestor_with_type(ObjectType::Package)
            .map(os_or_logical_index);
        let cpus = object_cpus(core, online, || format!("the CPU set of core {id}"))?;
        cores.push(Core { id, package, cpus });
    }

    let mut caches = Vec::new();
    for ty in CACHE_TYPES {
        for obj in topo.objects_with_type(ty) {
            let Some(ObjectAttributes::Cache(attrs)) = obj.attributes() else {
                continue;
            };
            let kind = match attrs.cache_type() {
                CacheType::Data => CacheKind::Data,
                CacheType::Instruction => CacheKind::Instruction,
                CacheType::Unified => CacheKind::Unified,
                // A kind added by a newer hwloc than hwlocality knows:
                // leaving the cache out beats guessing what it holds.
                _ => continue,
            };
            let level = u8::try_from(attrs.depth()).unwrap_or(u8::MAX);
            let cpus = object_cpus(obj, online, || format!("the CPU set of an L{level} cache"))?;
            caches.push(Cache {
                level,
                kind,
                size: attrs.size().map_or(0, |s| s.get()),
                line_size: attrs
                    .line_size()
                    .and_then(|l| u32::try_from(l.get()).ok())
                    .unwrap_or(0),
                cpus,
            });
        }
    }

    Ok(Hardware {
        packages,
        cores,
        caches,
    })
}

/// The object's OS index (`physical_package_id`, `core_id`); its logical
/// index when the OS gives none (some VMs and ARM boards do not).
fn os_or_logical_index(obj: &TopologyObject) -> u32 {
    obj.os_index()
        .unwrap_or_else(|| obj.logical_index())
        .try_into()
        .unwrap_or(u32::MAX)
}
