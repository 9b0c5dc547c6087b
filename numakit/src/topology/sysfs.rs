//! The sysfs backend: `/sys/devices/system/node` and `/sys/devices/system/cpu`.
//!
//! Files read, all documented in the kernel's ABI docs
//! (`Documentation/ABI/stable/sysfs-devices-node`):
//!
//! | file | gives |
//! |---|---|
//! | `devices/system/node/online` | node ids (sparse allowed) |
//! | `devices/system/node/nodeN/cpulist` | the node's CPUs |
//! | `devices/system/node/nodeN/meminfo` | `MemTotal`, `MemFree` (kB) |
//! | `devices/system/node/nodeN/distance` | one row of the SLIT, in `online` order |
//! | `devices/system/node/nodeN/hugepages/hugepages-<kB>kB/{nr,free}_hugepages` | hugepage pools |
//! | `devices/system/cpu/online` | online CPUs |
//!
//! A kernel built without NUMA support has no `devices/system/node`: the
//! machine is then one node 0 holding every online CPU, with memory from
//! `sysinfo(2)` and hugepages from `kernel/mm/hugepages`.

use super::{Backend, CpuSet, HugePagePool, Node, NodeId, Topology, TopologyError};
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) fn read(root: &Path) -> Result<Topology, TopologyError> {
    let online_cpus = read_cpulist(&root.join("devices/system/cpu/online"))?;
    let node_dir = root.join("devices/system/node");
    if !node_dir.is_dir() {
        return read_without_numa(root, online_cpus);
    }
    let ids = node_ids(&node_dir)?;
    let mut nodes = Vec::with_capacity(ids.len());
    let mut distances = Vec::with_capacity(ids.len());
    for &id in &ids {
        let dir = node_dir.join(format!("node{}", id.get()));
        let cpus = read_cpulist(&dir.join("cpulist"))?;
        let (total, free) = read_node_meminfo(&dir.join("meminfo"))?;
        let hugepages = read_hugepage_pools(&dir.join("hugepages"), id)?;
        nodes.push(Node::new(id, cpus, total, free, hugepages));
        distances.push(read_distance_row(&dir.join("distance"), ids.len())?);
    }
    Ok(Topology::from_parts(
        Backend::Sysfs,
        nodes,
        distances,
        online_cpus,
        None,
    ))
}

fn read_without_numa(root: &Path, online_cpus: CpuSet) -> Result<Topology, TopologyError> {
    let (total, free) = crate::sys::sysinfo_memory().map_err(|source| TopologyError::Os {
        call: "sysinfo",
        source,
    })?;
    let node0 = NodeId::new(0);
    let hugepages = read_hugepage_pools(&root.join("kernel/mm/hugepages"), node0)?;
    let node = Node::new(node0, online_cpus.clone(), total, free, hugepages);
    Ok(Topology::from_parts(
        Backend::Sysfs,
        vec![node],
        vec![vec![10]],
        online_cpus,
        None,
    ))
}

/// Node ids from `online`, or from the `nodeN` directories if it is absent.
fn node_ids(node_dir: &Path) -> Result<Vec<NodeId>, TopologyError> {
    let online = node_dir.join("online");
    if online.exists() {
        let s = read_string(&online)?;
        let set = CpuSet::parse_list(&s).map_err(|e| parse_err(&online, &s, e.to_string()))?;
        if set.is_empty() {
            // The kernel always has a node online (node 0 at least).
            return Err(parse_err(&online, &s, "no node is online"));
        }
        return Ok(set.iter().map(|c| NodeId::new(c.get())).collect());
    }
    let entries = fs::read_dir(node_dir).map_err(|source| read_err(node_dir, source))?;
    let mut ids: Vec<NodeId> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| canonical_number(e.file_name().to_str()?.strip_prefix("node")?))
        .map(NodeId::new)
        .collect();
    ids.sort();
    Ok(ids)
}

/// `s` as a `u32` written the way the kernel writes numbers in names (`7`,
/// not `07` or `+7`); `None` otherwise (or if it does not fit).
fn canonical_number(s: &str) -> Option<u32> {
    let n = s.parse::<u32>().ok()?;
    (n.to_string() == s).then_some(n)
}

fn read_err(path: &Path, source: std::io::Error) -> TopologyError {
    TopologyError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_err(path: &Path, content: &str, detail: impl Into<String>) -> TopologyError {
    TopologyError::Parse {
        path: path.to_path_buf(),
        content: content
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect(),
        detail: detail.into(),
    }
}

/// The most bytes read from one sysfs file. The kernel's own files hold at
/// most a page (`PAGE_SIZE`); a tree given to [`Topology::from_sysfs`] may be
/// anything, so larger files are refused rather than read to the end.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The content of a regular file of at most [`MAX_FILE_BYTES`]. Anything else
/// (a FIFO, which would block the read forever; a device such as
/// `/dev/zero`, which never ends; a directory) is an error naming the path.
fn read_string(path: &Path) -> Result<String, TopologyError> {
    use std::io::Read as _;
    let meta = fs::metadata(path).map_err(|source| read_err(path, source))?;
    if !meta.is_file() {
        return Err(read_err(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file (sysfs attributes are regular files)",
            ),
        ));
    }
    let file = fs::File::open(path).map_err(|source| read_err(path, source))?;
    let mut s = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut s)
        .map_err(|source| read_err(path, source))?;
    if s.len() as u64 > MAX_FILE_BYTES {
        return Err(parse_err(
            path,
            &s,
            format!("larger than {MAX_FILE_BYTES} bytes (sysfs attributes hold at most a page)"),
        ));
    }
    Ok(s)
}

fn read_u64(path: &Path) -> Result<u64, TopologyError> {
    let s = read_string(path)?;
    s.trim()
        .parse()
        .map_err(|_| parse_err(path, &s, "expected an unsigned integer"))
}

fn read_cpulist(path: &Path) -> Result<CpuSet, TopologyError> {
    let s = read_string(path)?;
    CpuSet::parse_list(&s).map_err(|e| parse_err(path, &s, e.to_string()))
}

/// `(MemTotal, MemFree)` in bytes from a node's `meminfo`
/// (`Node 0 MemTotal:  3893452 kB`).
pub(crate) fn read_node_meminfo(path: &Path) -> Result<(u64, u64), TopologyError> {
    let [total, free] = read_node_meminfo_fields(path, ["MemTotal", "MemFree"])?;
    Ok((total, free))
}

/// The named `kB` fields of a node's `meminfo`, in bytes.
fn read_node_meminfo_fields<const N: usize>(
    path: &Path,
    names: [&str; N],
) -> Result<[u64; N], TopologyError> {
    meminfo_fields(path, &read_string(path)?, names)
}

/// [`read_node_meminfo_fields`] for the kernel's own files, which numakit
/// reads before every populate: one `open`/`read`/`close` into a stack
/// buffer (no `stat`, no allocation), the general path only for a file
/// that does not fit.
fn read_kernel_meminfo_fields<const N: usize>(
    path: &Path,
    names: [&str; N],
) -> Result<[u64; N], TopologyError> {
    use std::os::unix::ffi::OsStrExt as _;
    // A node's meminfo is about 1.5 KiB (some 35 lines).
    let mut buf = [0u8; 4096];
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return read_node_meminfo_fields(path, names);
    };
    match crate::sys::fs::read_into(&c_path, &mut buf) {
        Ok(n) if n < buf.len() => match std::str::from_utf8(&buf[..n]) {
            Ok(s) => meminfo_fields(path, s, names),
            Err(_) => Err(parse_err(path, "", "not UTF-8 text")),
        },
        Ok(_) => read_node_meminfo_fields(path, names),
        Err(source) => Err(read_err(path, source)),
    }
}

/// The named `kB` fields of meminfo text `s` (read from `path`), in bytes.
fn meminfo_fields<const N: usize>(
    path: &Path,
    s: &str,
    names: [&str; N],
) -> Result<[u64; N], TopologyError> {
    let field = |name: &str| -> Result<u64, TopologyError> {
        s.lines()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                // "Node", "<id>", "<Field>:", "<value>", "kB"
                let key = words.nth(2)?;
                (key.strip_suffix(':')? == name).then(|| words.next())?
            })
            .ok_or_else(|| parse_err(path, s, format!("no `{name}:` line in kB")))
            .and_then(|v| {
                v.parse::<u64>().map_err(|_| {
                    parse_err(path, s, format!("`{name}:` is not a number of kB: {v:?}"))
                })
            })
            .and_then(|kb| {
                kb.checked_mul(1024).ok_or_else(|| {
                    parse_err(
                        path,
                        s,
                        format!("`{name}:` of {kb} kB does not fit in 64 bits of bytes"),
                    )
                })
            })
    };
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = field(name)?;
    }
    Ok(out)
}

fn read_distance_row(path: &Path, expected: usize) -> Result<Vec<u32>, TopologyError> {
    let s = read_string(path)?;
    let row: Vec<u32> = s
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| parse_err(path, &s, "expected distances as integers"))?;
    if row.len() != expected {
        return Err(parse_err(
            path,
            &s,
            format!("expected {expected} distances, one per online node"),
        ));
    }
    Ok(row)
}

/// The pools under a `hugepages/` directory (`hugepages-2048kB/...`).
/// A missing directory means the kernel has no hugetlbfs: no pools.
fn read_hugepage_pools(dir: &Path, node: NodeId) -> Result<Vec<HugePagePool>, TopologyError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut pools: Vec<HugePagePool> = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        // Other entries are not pools (the kernel has none, a copy may).
        let Some(kb) = name
            .to_str()
            .and_then(|n| n.strip_prefix("hugepages-")?.strip_suffix("kB"))
        else {
            continue;
        };
        let p = entry.path();
        let page_size = kb
            .parse::<u64>()
            .ok()
            .and_then(|kb| kb.checked_mul(1024))
            .filter(|size| size.is_power_of_two())
            .ok_or_else(|| {
                parse_err(
                    &p,
                    "",
                    format!(
                        "hugepage size `{kb}` kB is not a power of two that fits in 64 bits \
                         of bytes"
                    ),
                )
            })?;
        if pools.iter().any(|pool| pool.page_size() == page_size) {
            return Err(parse_err(&p, "", "a second pool of the same page size"));
        }
        pools.push(HugePagePool::new(
            node,
            page_size,
            read_u64(&p.join("nr_hugepages"))?,
            read_u64(&p.join("free_hugepages"))?,
        ));
    }
    Ok(pools)
}

/// Live `(MemTotal, MemFree)` of `node` in bytes, read now.
#[cfg(test)]
pub(crate) fn node_memory_now(node: NodeId) -> Result<(u64, u64), TopologyError> {
    read_node_meminfo(&node_path(node).join("meminfo"))
}

/// Live `(MemTotal, MemFree + Inactive(file))` of `node` in bytes, read now:
/// the memory the kernel can hand out on that node without swapping or
/// writing back much (free pages plus clean-ish, cold page cache).
pub(crate) fn node_available_now(node: NodeId) -> Result<(u64, u64), TopologyError> {
    let [total, free, inactive_file] = read_kernel_meminfo_fields(
        &node_path(node).join("meminfo"),
        ["MemTotal", "MemFree", "Inactive(file)"],
    )?;
    Ok((total, free.saturating_add(inactive_file)))
}

/// Live `(nr_hugepages, free_hugepages)` of `node`'s `page_size` pool, read now.
pub(crate) fn hugepages_now(node: NodeId, page_size: u64) -> Result<(u64, u64), TopologyError> {
    let dir = node_path(node).join(format!("hugepages/hugepages-{}kB", page_size / 1024));
    Ok((
        read_u64(&dir.join("nr_hugepages"))?,
        read_u64(&dir.join("free_hugepages"))?,
    ))
}

/// The kernel's list of `node`'s CPUs (`nodeN/cpulist`), read now.
#[cfg(feature = "hwloc")]
pub(crate) fn node_cpus_now(node: NodeId) -> Result<CpuSet, TopologyError> {
    read_cpulist(&node_path(node).join("cpulist"))
}

/// Live `free_hugepages` of `node`'s `page_size` pool, read now. On a kernel
/// without NUMA support (no `devices/system/node`), of the machine-wide pool
/// under `kernel/mm/hugepages`, as [`read`] does for its single node 0.
#[cfg(feature = "hwloc")]
pub(crate) fn free_hugepages_now(node: NodeId, page_size: u64) -> Result<u64, TopologyError> {
    let pools = if Path::new("/sys/devices/system/node").is_dir() {
        node_path(node).join("hugepages")
    } else {
        PathBuf::from("/sys/kernel/mm/hugepages")
    };
    read_u64(&pools.join(format!("hugepages-{}kB/free_hugepages", page_size / 1024)))
}

fn node_path(node: NodeId) -> PathBuf {
    PathBuf::from(format!("/sys/devices/system/node/node{}", node.get()))
}

/// A fake sysfs tree for unit tests, in a fresh directory named by a tag,
/// the process and the thread.
#[cfg(test)]
pub(crate) struct FakeTree(pub(crate) PathBuf);

#[cfg(test)]
impl FakeTree {
    pub(crate) fn new(tag: &str) -> Self {
        let root = std::env::temp_dir().join(format!(
            "numakit-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&root);
        FakeTree(root)
    }

    /// Write `content` to `rel` under the root, making its directories.
    pub(crate) fn write(&self, rel: &str, content: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuId;

    /// A fake sysfs tree with nodes 0 and 2 only (sparse ids), node 2 CPU-less.
    fn fake_sysfs() -> PathBuf {
        let tree = FakeTree::new("fake-sysfs");
        let w = |rel: &str, content: &str| tree.write(rel, content);
        w("devices/system/cpu/online", "0-3\n");
        w("devices/system/node/online", "0,2\n");
        w("devices/system/node/node0/cpulist", "0-3\n");
        w("devices/system/node/node2/cpulist", "\n");
        w(
            "devices/system/node/node0/meminfo",
            "Node 0 MemTotal:        4096 kB\nNode 0 MemFree:          1024 kB\nNode 0 MemUsed:  3072 kB\n",
        );
        w(
            "devices/system/node/node2/meminfo",
            "Node 2 MemTotal:        8192 kB\nNode 2 MemFree:          8000 kB\n",
        );
        w("devices/system/node/node0/distance", "10 21\n");
        w("devices/system/node/node2/distance", "21 10\n");
        for (n, nr, free) in [(0, 4, 3), (2, 0, 0)] {
            w(
                &format!("devices/system/node/node{n}/hugepages/hugepages-2048kB/nr_hugepages"),
                &format!("{nr}\n"),
            );
            w(
                &format!("devices/system/node/node{n}/hugepages/hugepages-2048kB/free_hugepages"),
                &format!("{free}\n"),
            );
        }
        tree.0
    }

    #[test]
    fn sparse_node_ids() {
        let root = fake_sysfs();
        let t = Topology::from_sysfs(&root).unwrap();
        assert_eq!(
            t.node_ids().collect::<Vec<_>>(),
            [NodeId::new(0), NodeId::new(2)]
        );
        let n2 = t.node(NodeId::new(2)).unwrap();
        assert!(n2.cpus().is_empty());
        assert_eq!(n2.memory_total(), 8192 * 1024);
        assert_eq!(n2.memory_free(), 8000 * 1024);
        let n0 = t.node(NodeId::new(0)).unwrap();
        let pool = n0.hugepage_pool(2 << 20).unwrap();
        assert_eq!((pool.total(), pool.free()), (4, 3));
        assert_eq!(
            pool.reserve_path(),
            "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
        );
        assert_eq!(t.distance(NodeId::new(0), NodeId::new(2)).unwrap(), 21);
        assert_eq!(t.distance(NodeId::new(2), NodeId::new(2)).unwrap(), 10);
        assert_eq!(t.node_of_cpu(CpuId::new(3)).unwrap(), NodeId::new(0));
        match t.node(NodeId::new(1)) {
            Err(TopologyError::NoSuchNode {
                requested,
                available,
            }) => {
                assert_eq!(requested, NodeId::new(1));
                assert_eq!(available, [NodeId::new(0), NodeId::new(2)]);
            }
            other => panic!("expected NoSuchNode, got {other:?}"),
        }
        assert!(matches!(
            t.distance(NodeId::new(0), NodeId::new(1)),
            Err(TopologyError::NoSuchNode { .. })
        ));
        assert!(matches!(
            t.node_of_cpu(CpuId::new(9)),
            Err(TopologyError::NoSuchCpu { .. })
        ));
        assert_eq!(
            t.nodes_by_distance(NodeId::new(2)).unwrap(),
            [NodeId::new(2), NodeId::new(0)]
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn malformed_files_name_the_file() {
        let root = fake_sysfs();
        fs::write(root.join("devices/system/node/node2/distance"), "21\n").unwrap();
        let err = Topology::from_sysfs(&root).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("node2/distance"), "{msg}");
        assert!(msg.contains("expected 2 distances"), "{msg}");
        fs::write(root.join("devices/system/node/node2/distance"), "21 10\n").unwrap();
        fs::write(root.join("devices/system/node/node0/meminfo"), "garbage\n").unwrap();
        let msg = Topology::from_sysfs(&root).unwrap_err().to_string();
        assert!(msg.contains("MemTotal"), "{msg}");
        fs::remove_dir_all(&root).unwrap();
        let msg = Topology::from_sysfs(&root).unwrap_err().to_string();
        assert!(msg.contains("cannot read"), "{msg}");
    }

    #[test]
    fn without_node_directory_one_node_holds_everything() {
        let root = fake_sysfs();
        fs::remove_dir_all(root.join("devices/system/node")).unwrap();
        let t = Topology::from_sysfs(&root).unwrap();
        assert_eq!(t.num_nodes(), 1);
        let n0 = t.node(NodeId::new(0)).unwrap();
        assert_eq!(n0.cpus().to_string(), "0-3");
        assert!(n0.memory_total() > 0);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_kernel_meminfo_fast_path_reads_what_the_general_path_reads() {
        let dir = std::env::temp_dir().join(format!(
            "numakit-meminfo-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small");
        let text =
            "Node 3 MemTotal:  4096 kB\nNode 3 MemFree:  1000 kB\nNode 3 Inactive(file):  24 kB\n";
        fs::write(&small, text).unwrap();
        let names = ["MemTotal", "MemFree", "Inactive(file)"];
        let fast = read_kernel_meminfo_fields(&small, names).unwrap();
        assert_eq!(fast, [4096 * 1024, 1000 * 1024, 24 * 1024]);
        assert_eq!(fast, read_node_meminfo_fields(&small, names).unwrap());
        // Larger than the stack buffer: the general path, same answer.
        let large = dir.join("large");
        let padding = "Node 3 Filler:  1 kB\n".repeat(300);
        fs::write(&large, format!("{padding}{text}")).unwrap();
        assert!(fs::metadata(&large).unwrap().len() > 4096);
        assert_eq!(read_kernel_meminfo_fields(&large, names).unwrap(), fast);
        // Exactly the buffer's size: not taken as the whole file.
        let exact = dir.join("exact");
        let mut body = text.to_string();
        body.push_str(&"x".repeat(4096 - body.len() - 1));
        body.push('\n');
        fs::write(&exact, &body).unwrap();
        assert_eq!(read_kernel_meminfo_fields(&exact, names).unwrap(), fast);
        // Errors name the file.
        let bad = dir.join("bad");
        fs::write(&bad, b"Node 0 MemTotal: \xff kB\n").unwrap();
        let msg = read_kernel_meminfo_fields(&bad, names)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bad"), "{msg}");
        fs::write(&bad, "Node 0 MemFree: 1 kB\n").unwrap();
        let msg = read_kernel_meminfo_fields(&bad, names)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("MemTotal") && msg.contains("bad"), "{msg}");
        let missing = dir.join("missing");
        let msg = read_kernel_meminfo_fields(&missing, names)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing"), "{msg}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn live_readings_match_snapshot_totals() {
        let t = Topology::detect().unwrap();
        for node in t.nodes() {
            let (total, _free) = node_memory_now(node.id()).unwrap();
            assert_eq!(total, node.memory_total());
            for pool in node.hugepages() {
                let (nr, _) = hugepages_now(node.id(), pool.page_size()).unwrap();
                assert_eq!(nr, pool.total());
            }
        }
    }
}
