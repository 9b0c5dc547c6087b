//! The two topology backends, sysfs and hwloc, run on the same machine must
//! describe the same nodes. Also checks what only hwloc reports (packages,
//! cores, caches) for internal consistency.
//!
//! Run with `cargo test -p numakit --features hwloc`. Each test takes its own
//! snapshots, so the tests can run in parallel.

#![cfg(feature = "hwloc")]

use numakit::topology::{CacheKind, Topology};
use numakit::CpuSet;

fn both() -> (Topology, Topology) {
    let sysfs = Topology::detect().expect("sysfs backend");
    let hwloc = Topology::detect_hwloc().expect("hwloc backend");
    (sysfs, hwloc)
}

#[test]
fn same_nodes_cpus_and_distances() {
    let (sysfs, hwloc) = both();
    assert_eq!(sysfs.backend(), numakit::topology::Backend::Sysfs);
    assert_eq!(hwloc.backend(), numakit::topology::Backend::Hwloc);
    assert_eq!(
        sysfs.node_ids().collect::<Vec<_>>(),
        hwloc.node_ids().collect::<Vec<_>>(),
        "node ids"
    );
    assert_eq!(sysfs.online_cpus(), hwloc.online_cpus(), "online CPUs");
    for (s, h) in sysfs.nodes().iter().zip(hwloc.nodes()) {
        assert_eq!(s.cpus(), h.cpus(), "CPUs of node {}", s.id());
    }
    for a in sysfs.node_ids() {
        for b in sysfs.node_ids() {
            assert_eq!(
                sysfs.distance(a, b).unwrap(),
                hwloc.distance(a, b).unwrap(),
                "distance {a} -> {b}"
            );
        }
    }
}

#[test]
fn same_memory() {
    let (sysfs, hwloc) = both();
    for (s, h) in sysfs.nodes().iter().zip(hwloc.nodes()) {
        // Both read `MemTotal` of nodeN/meminfo (hwloc as `local_memory`),
        // so they are equal to the byte.
        assert_eq!(
            s.memory_total(),
            h.memory_total(),
            "MemTotal of node {}",
            s.id()
        );
        // hwloc has no free-memory figure: the backend reads sysfs too, but a
        // moment later, while the rest of the machine allocates and frees.
        let tolerance = s.memory_total() / 20;
        assert!(
            s.memory_free().abs_diff(h.memory_free()) <= tolerance,
            "free memory of node {}: sysfs {} B, hwloc {} B, more than 5% of {} B apart",
            s.id(),
            s.memory_free(),
            h.memory_free(),
            s.memory_total()
        );
        assert!(h.memory_free() <= h.memory_total());
    }
}

#[test]
fn same_hugepage_pools() {
    let (sysfs, hwloc) = both();
    for (s, h) in sysfs.nodes().iter().zip(hwloc.nodes()) {
        let pools = |n: &numakit::topology::Node| {
            n.hugepages()
                .iter()
                .map(|p| (p.page_size(), p.total()))
                .collect::<Vec<_>>()
        };
        // Every size the kernel offers, pools of 0 pages included.
        assert_eq!(
            pools(s),
            pools(h),
            "hugepage pools (size, total) of node {}",
            s.id()
        );
        for p in h.hugepages() {
            // Free counts are read live and may move between the snapshots.
            assert!(p.free() <= p.total(), "node {} pool {p:?}", h.id());
        }
    }
}

#[test]
fn sysfs_backend_has_no_hardware_view() {
    let sysfs = Topology::detect().unwrap();
    assert!(sysfs.packages().is_none());
    assert!(sysfs.cores().is_none());
    assert!(sysfs.caches().is_none());
}

/// Every online CPU in exactly one of `sets`.
fn assert_partition<'a>(online: &CpuSet, sets: impl Iterator<Item = &'a CpuSet>, what: &str) {
    let mut seen = CpuSet::new();
    for set in sets {
        assert!(!set.is_empty(), "a {what} without CPUs");
        assert!(
            set.intersection(&seen).is_empty(),
            "CPUs {} in two {what}s",
            set.intersection(&seen)
        );
        seen = seen.union(set);
    }
    assert_eq!(&seen, online, "online CPUs vs the union of {what}s");
}

#[test]
fn packages_cores_and_caches_are_consistent() {
    let (sysfs, hwloc) = both();
    let online = hwloc.online_cpus();
    let packages = hwloc.packages().expect("hwloc reports packages");
    let cores = hwloc.cores().expect("hwloc reports cores");
    let caches = hwloc.caches().expect("hwloc reports caches");
    assert!(!packages.is_empty() && !cores.is_empty() && !caches.is_empty());

    assert_partition(online, packages.iter().map(|p| p.cpus()), "package");
    assert_partition(online, cores.iter().map(|c| c.cpus()), "core");
    for core in cores {
        let pkg = core.package().expect("core inside a package");
        let pkg = packages
            .iter()
            .find(|p| p.id() == pkg)
            .expect("core's package exists");
        assert!(
            core.cpus().is_subset(pkg.cpus()),
            "core {core:?} outside {pkg:?}"
        );
    }

    // Node placement. hwloc attaches a node inside the package that holds
    // all its CPUs; a node whose CPUs span several packages hangs above
    // them, and no package lists it.
    let mut listed = Vec::new();
    for p in packages {
        for &n in p.nodes() {
            assert!(!listed.contains(&n), "node {n} listed by two packages");
            listed.push(n);
            let node = hwloc.node(n).expect("listed node exists");
            assert!(
                node.cpus().is_subset(p.cpus()),
                "node {n} in package {} but not its CPUs",
                p.id()
            );
        }
    }
    for node in hwloc.nodes().iter().filter(|n| !n.cpus().is_empty()) {
        let touching: Vec<_> = packages
            .iter()
            .filter(|p| !p.cpus().intersection(node.cpus()).is_empty())
            .collect();
        match touching.as_slice() {
            [p] => {
                assert!(node.cpus().is_subset(p.cpus()));
                assert!(
                    p.nodes().contains(&node.id()),
                    "package {} should list node {}",
                    p.id(),
                    node.id()
                );
            }
            spanned => {
                for p in spanned {
                    assert!(
                        p.cpus().is_subset(node.cpus()),
                        "package {} half in node {}",
                        p.id(),
                        node.id()
                    );
                    assert!(!p.nodes().contains(&node.id()));
                }
            }
        }
    }

    // Caches: sensible attributes, shared by whole cores, and every CPU has
    // a level-1 data cache.
    for c in caches {
        assert!(c.level() >= 1, "{c:?}");
        assert!(c.size() > 0, "{c:?}");
        assert!(
            c.line_size() == 0 || c.line_size().is_power_of_two(),
            "{c:?}"
        );
        assert!(!c.cpus().is_empty() && c.cpus().is_subset(online), "{c:?}");
        for core in cores {
            let shared = core.cpus().intersection(c.cpus());
            assert!(
                shared.is_empty() || &shared == core.cpus(),
                "{c:?} splits {core:?}"
            );
        }
    }
    let l1d = caches
        .iter()
        .filter(|c| c.level() == 1 && matches!(c.kind(), CacheKind::Data | CacheKind::Unified));
    let covered = l1d.fold(CpuSet::new(), |acc, c| acc.union(c.cpus()));
    assert_eq!(&covered, online, "CPUs with an L1 data cache");

    // The sysfs snapshot agrees on the CPUs all of this covers.
    assert_eq!(sysfs.online_cpus(), online);
}
