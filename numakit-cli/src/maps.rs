//! `/proc/PID/numa_maps`: each mapping of a process, its memory policy and
//! the node of its resident pages, and whether those pages obey the policy.
//!
//! A line reads `ADDRESS POLICY [key[=value]]...`, for example
//! `7f3a1c000000 bind:1 anon=512 dirty=512 N1=512 kernelpagesize_kB=4`. The
//! policy is one of the kernel's names (`default`, `prefer`, `bind`,
//! `interleave`, `weighted interleave`, `local`, `prefer (many)`), with
//! `=static`/`=relative`/`=balancing` flags and `:NODES` where it names
//! nodes. Lines that do not parse are kept as errors with their text, never
//! dropped silently.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;

/// What a mapping holds, from the markers `numa_maps` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MappingKind {
    /// The program break area (`heap`).
    Heap,
    /// The main thread's stack (`stack`).
    Stack,
    /// hugetlbfs pages (`huge`).
    Hugetlb,
    /// A mapped file (`file=PATH`).
    File,
    /// Anonymous memory: thread stacks, `mmap`ed arenas, allocator pages.
    Anonymous,
}

impl MappingKind {
    /// Every kind, in table order.
    pub const ALL: [MappingKind; 5] = [
        MappingKind::Heap,
        MappingKind::Stack,
        MappingKind::Anonymous,
        MappingKind::File,
        MappingKind::Hugetlb,
    ];

    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            MappingKind::Heap => "heap",
            MappingKind::Stack => "stack",
            MappingKind::Hugetlb => "hugetlb",
            MappingKind::File => "file",
            MappingKind::Anonymous => "anonymous",
        }
    }
}

/// The memory policy of a mapping, as `numa_maps` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `default`: the thread's policy (usually local allocation) applies.
    Default,
    /// `local`: the node of the CPU that faults the page in.
    Local,
    /// `prefer:N`: node N first, any other node when it is full.
    Prefer(Vec<u32>),
    /// `prefer (many):NODES`: those nodes first, others when they are full.
    PreferMany(Vec<u32>),
    /// `bind:NODES`: only those nodes (strict).
    Bind(Vec<u32>),
    /// `interleave:NODES`: round-robin over those nodes, only them.
    Interleave(Vec<u32>),
    /// `weighted interleave:NODES`: interleave with weights, only them.
    WeightedInterleave(Vec<u32>),
}

impl Policy {
    /// The nodes the policy allows pages on, when it restricts them at all
    /// (`bind`, `interleave`, `weighted interleave`); `None` for policies
    /// that let pages go to any node.
    pub fn allowed_nodes(&self) -> Option<&[u32]> {
        match self {
            Policy::Bind(n) | Policy::Interleave(n) | Policy::WeightedInterleave(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, nodes) = match self {
            Policy::Default => return f.write_str("default"),
            Policy::Local => return f.write_str("local"),
            Policy::Prefer(n) => ("prefer", n),
            Policy::PreferMany(n) => ("prefer (many)", n),
            Policy::Bind(n) => ("bind", n),
            Policy::Interleave(n) => ("interleave", n),
            Policy::WeightedInterleave(n) => ("weighted interleave", n),
        };
        write!(f, "{name}:{}", node_list(nodes))
    }
}

/// One line of `numa_maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Start address.
    pub address: u64,
    /// The policy.
    pub policy: Policy,
    /// What the mapping holds.
    pub kind: MappingKind,
    /// The file, for [`MappingKind::File`].
    pub file: Option<String>,
    /// Resident pages per node (`N<node>=<pages>`), ascending by node.
    pub pages: BTreeMap<u32, u64>,
    /// Bytes per page (`kernelpagesize_kB`; 4 KiB when absent).
    pub page_size: u64,
    /// Anonymous pages (`anon=`): in a file mapping, the process's own
    /// private copies of file pages.
    pub anon: u64,
}

impl Mapping {
    /// Resident pages on all nodes.
    pub fn resident_pages(&self) -> u64 {
        self.pages.values().sum()
    }

    /// Resident pages of a file mapping that are the file's page cache
    /// (all but its private copies, `anon=`); 0 for other kinds.
    ///
    /// A memory policy places the pages the process itself allocates. A
    /// file's page-cache pages are shared: they were placed by whoever
    /// read the file first (often before the process started) and a
    /// policy does not move them, so the policy is not judged on them.
    pub fn page_cache_pages(&self) -> u64 {
        if self.kind == MappingKind::File {
            self.resident_pages().saturating_sub(self.anon)
        } else {
            0
        }
    }

    /// Whether the policy is judged on this mapping's pages: not for a
    /// file mapping holding page-cache pages ([`page_cache_pages`]), whose
    /// per-node counts cannot be split into the process's own pages and
    /// the shared ones.
    ///
    /// [`page_cache_pages`]: Self::page_cache_pages
    pub fn judged(&self) -> bool {
        self.page_cache_pages() == 0
    }

    /// Resident pages on nodes the policy does not allow, by node; empty
    /// when the policy restricts nothing, every page obeys it, or the
    /// mapping is not [`judged`](Self::judged).
    pub fn misplaced(&self) -> BTreeMap<u32, u64> {
        let Some(allowed) = self.policy.allowed_nodes() else {
            return BTreeMap::new();
        };
        if !self.judged() {
            return BTreeMap::new();
        }
        self.pages
            .iter()
            .filter(|(n, &p)| p > 0 && !allowed.contains(n))
            .map(|(&n, &p)| (n, p))
            .collect()
    }

    /// Resident pages away from the nodes a `prefer` policy names: allowed
    /// by the policy (it falls back), reported so that a user sees it.
    pub fn fallen_back(&self) -> u64 {
        match &self.policy {
            Policy::Prefer(n) | Policy::PreferMany(n) => self
                .pages
                .iter()
                .filter(|(node, _)| !n.contains(node))
                .map(|(_, &p)| p)
                .sum(),
            _ => 0,
        }
    }

    /// The mapping as JSON.
    pub fn to_json(&self) -> Value {
        let nodes = |m: &BTreeMap<u32, u64>| -> Value {
            m.iter()
                .map(|(n, p)| (n.to_string(), json!(p)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({
            "address": format!("{:#x}", self.address),
            "policy": self.policy.to_string(),
            "strict": self.policy.allowed_nodes().is_some(),
            "kind": self.kind.name(),
            "file": self.file,
            "page_size_bytes": self.page_size,
            "pages_by_node": nodes(&self.pages),
            "misplaced_pages_by_node": nodes(&self.misplaced()),
            "fallen_back_pages": self.fallen_back(),
            "anon_pages": self.anon,
            "page_cache_pages": self.page_cache_pages(),
            "judged": self.judged(),
        })
    }
}

/// A line of `numa_maps` that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// The text (at most 200 characters of it).
    pub text: String,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "numa_maps line {}: {} (`{}`)",
            self.line, self.reason, self.text
        )
    }
}

/// Parse the whole text of a `numa_maps` file: the mappings, and the lines
/// that did not parse.
pub fn parse(text: &str) -> (Vec<Mapping>, Vec<BadLine>) {
    let mut maps = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(m) => maps.push(m),
            Err(reason) => bad.push(BadLine {
                line: i + 1,
                text: line.chars().take(200).collect(),
                reason,
            }),
        }
    }
    (maps, bad)
}

/// The policy names with a space in them come first, so that `prefer`
/// does not match the start of `prefer (many)`.
const POLICY_NAMES: [&str; 7] = [
    "weighted interleave",
    "prefer (many)",
    "interleave",
    "default",
    "prefer",
    "local",
    "bind",
];

/// Parse one line.
///
/// # Errors
/// A sentence saying what is wrong with it.
pub fn parse_line(line: &str) -> Result<Mapping, String> {
    let line = line.trim();
    let (address, rest) = line
        .split_once(' ')
        .ok_or_else(|| "no policy after the address".to_string())?;
    let address = u64::from_str_radix(address, 16)
        .map_err(|_| format!("`{address}` is not a hexadecimal address"))?;
    let name = POLICY_NAMES
        .iter()
        .find(|n| {
            rest.strip_prefix(**n)
                .is_some_and(|r| r.is_empty() || r.starts_with([' ', ':', '=']))
        })
        .ok_or_else(|| {
            format!(
                "unknown memory policy `{}`",
                rest.split(' ').next().unwrap_or("")
            )
        })?;
    let rest = &rest[name.len()..];
    let (policy_tail, fields) = rest.split_once(' ').unwrap_or((rest, ""));
    // `=static`, `=relative`, `=balancing` flags, then `:NODES`.
    let nodes = match policy_tail.split_once(':') {
        Some((_, list)) => parse_node_list(list)?,
        None => Vec::new(),
    };
    let policy = match *name {
        "default" => Policy::Default,
        "local" => Policy::Local,
        "prefer" => Policy::Prefer(nodes),
        "prefer (many)" => Policy::PreferMany(nodes),
        "bind" => Policy::Bind(nodes),
        "interleave" => Policy::Interleave(nodes),
        _ => Policy::WeightedInterleave(nodes),
    };
    if let Some(n) = policy.allowed_nodes() {
        if n.is_empty() {
            return Err(format!("policy `{name}` names no nodes"));
        }
    }
    let mut mapping = Mapping {
        address,
        policy,
        kind: MappingKind::Anonymous,
        file: None,
        pages: BTreeMap::new(),
        page_size: 4096,
        anon: 0,
    };
    let mut huge = false;
    for field in fields.split(' ').filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        match key {
            "heap" => mapping.kind = MappingKind::Heap,
            "stack" => mapping.kind = MappingKind::Stack,
            "huge" => huge = true,
            "file" => {
                mapping.kind = MappingKind::File;
                // The kernel does not escape spaces in paths: a path with
                // one is cut at it (the kind is still right).
                mapping.file = Some(value.to_string());
            }
            "kernelpagesize_kB" => {
                let kb: u64 = value
                    .parse()
                    .map_err(|_| format!("kernelpagesize_kB `{value}` is not a number"))?;
                mapping.page_size = kb
                    .checked_mul(1024)
                    .filter(|&b| b > 0)
                    .ok_or_else(|| format!("kernelpagesize_kB `{value}` is out of range"))?;
            }
            k if k.len() > 1
                && k.starts_with('N')
                && k[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                let node: u32 = k[1..]
                    .parse()
                    .map_err(|_| format!("node `{k}` is out of range"))?;
                let pages: u64 = value
                    .parse()
                    .map_err(|_| format!("page count `{field}` is not a number"))?;
                let slot = mapping.pages.entry(node).or_insert(0);
                *slot = slot.saturating_add(pages);
            }
            "anon" => {
                mapping.anon = value
                    .parse()
                    .map_err(|_| format!("page count `{field}` is not a number"))?;
            }
            // dirty=, mapped=, mapmax=, swapcache=, active=, writeback=,
            // and anything a newer kernel adds: not needed.
            _ => {}
        }
    }
    if huge {
        mapping.kind = MappingKind::Hugetlb;
    }
    Ok(mapping)
}

/// Parse a kernel node list (`0-1,3`).
fn parse_node_list(list: &str) -> Result<Vec<u32>, String> {
    let mut nodes = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("node list `{list}` does not parse");
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<u32>().map_err(|_| bad())?,
                b.parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        // Node ids stop far below this; a longer range is not a kernel's.
        if b < a || b - a > 4096 {
            return Err(bad());
        }
        nodes.extend(a..=b);
    }
    nodes.sort_unstable();
    nodes.dedup();
    Ok(nodes)
}

/// A node list in the kernel's form (`0-1,3`).
pub fn node_list(nodes: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nodes.len() {
        let start = nodes[i];
        let mut end = start;
        while i + 1 < nodes.len() && end.checked_add(1) == Some(nodes[i + 1]) {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55d0c8a00000 default file=/usr/bin/cat mapped=2 mapmax=3 N0=2 kernelpagesize_kB=4
55d0ca2a1000 default heap anon=33 dirty=33 N0=30 N1=3 kernelpagesize_kB=4
7f0000000000 bind:1 anon=512 dirty=512 N0=12 N1=500 kernelpagesize_kB=4
7f1000000000 interleave:0-1 anon=4 dirty=4 N0=2 N1=2 kernelpagesize_kB=4
7f2000000000 prefer:1 anon=3 dirty=3 N0=3 kernelpagesize_kB=4
7f3000000000 bind=static:0 file=/dev/hugepages/x huge dirty=1 N0=1 kernelpagesize_kB=2048
7f4000000000 prefer (many):0-1 anon=1 N1=1 kernelpagesize_kB=4
7f5000000000 weighted interleave=relative:0,1 anon=1 N2=1 kernelpagesize_kB=4
7ffd0000000 local stack anon=3 dirty=3 N0=3 kernelpagesize_kB=4
7ffe0000000 default
";

    #[test]
    fn every_policy_and_kind_parses() {
        let (maps, bad) = parse(SAMPLE);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(maps.len(), 10);
        assert_eq!(maps[0].kind, MappingKind::File);
        assert_eq!(maps[0].file.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(maps[1].kind, MappingKind::Heap);
        assert_eq!(maps[2].policy, Policy::Bind(vec![1]));
        assert_eq!(maps[2].misplaced(), BTreeMap::from([(0, 12)]));
        assert!(maps[3].misplaced().is_empty());
        assert_eq!(maps[4].policy, Policy::Prefer(vec![1]));
        assert!(maps[4].misplaced().is_empty());
        assert_eq!(maps[4].fallen_back(), 3);
        assert_eq!(maps[5].kind, MappingKind::Hugetlb);
        assert_eq!(maps[5].page_size, 2 << 20);
        assert_eq!(maps[6].policy, Policy::PreferMany(vec![0, 1]));
        assert_eq!(maps[7].policy, Policy::WeightedInterleave(vec![0, 1]));
        assert_eq!(maps[7].misplaced(), BTreeMap::from([(2, 1)]));
        assert_eq!(maps[8].policy, Policy::Local);
        assert_eq!(maps[8].kind, MappingKind::Stack);
        assert_eq!(maps[9].resident_pages(), 0);
        for m in &maps {
            let shown = m.policy.to_string();
            let again = parse_line(&format!("1 {shown}")).unwrap().policy;
            assert_eq!(again, m.policy, "{shown}");
        }
    }

    #[test]
    fn hostile_lines_are_errors_not_panics() {
        for line in [
            "",
            "zz default",
            "12",
            "12 ",
            "12 bindery:0",
            "12 bind",
            "12 bind:",
            "12 bind:1-0",
            "12 bind:0-4294967295",
            "12 bind:99999999999",
            "12 default N0=x",
            "12 default N99999999999=1",
            "12 default kernelpagesize_kB=0",
            "12 default kernelpagesize_kB=18446744073709551615",
            "ffffffffffffffffff default",
        ] {
            assert!(parse_line(line).is_err(), "`{line}` parsed");
        }
        // Counts add up without overflowing.
        let m = parse_line("12 default N0=18446744073709551615 N0=5").unwrap();
        assert_eq!(m.pages[&0], u64::MAX);
        let (maps, bad) = parse("12 default N0=1\nnot a line\n\n13 local\n");
        assert_eq!(maps.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 2);
        assert!(bad[0].to_string().contains("not a line"), "{}", bad[0]);
    }

    #[test]
    fn node_lists_round_trip() {
        for (text, nodes) in [
            ("0", vec![0]),
            ("0-3", vec![0, 1, 2, 3]),
            ("0,2-3,7", vec![0, 2, 3, 7]),
            ("4294967295", vec![u32::MAX]),
        ] {
            assert_eq!(parse_node_list(text).unwrap(), nodes);
            assert_eq!(node_list(&nodes), text);
        }
        assert_eq!(node_list(&[]), "");
    }
}
