//! `numakit stat` and `numakit verify`: where a running process's memory
//! and threads are, per node, and whether its pages obey their policies.

use crate::maps::{self, BadLine, Mapping, MappingKind};
use numakit::topology::{CpuId, Topology};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;
use std::path::PathBuf;

/// Why a process could not be read.
#[derive(Debug)]
pub enum ProcError {
    /// No process has this id.
    NoSuchProcess {
        /// The id asked for.
        pid: u32,
    },
    /// The process's files may not be read by this user.
    PermissionDenied {
        /// The id asked for.
        pid: u32,
        /// The file refused.
        path: PathBuf,
    },
    /// The process has exited and only its entry is left (a zombie,
    /// waiting for its parent to collect its status).
    Exited {
        /// The id asked for.
        pid: u32,
        /// Its name.
        name: String,
        /// Its parent, which has not collected it.
        parent: Option<u32>,
    },
    /// The id is a thread of another process, not a process.
    Thread {
        /// The id asked for.
        tid: u32,
        /// The process it belongs to.
        process: u32,
    },
    /// Another read error.
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl fmt::Display for ProcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcError::NoSuchProcess { pid } => write!(
                f,
                "there is no process {pid} (it may have exited); `ps -e` lists the running ones"
            ),
            ProcError::PermissionDenied { pid, path } => write!(
                f,
                "reading {} was refused: a process's memory map is readable by its owner \
                 and by root; run as the owner of process {pid} or with sudo",
                path.display()
            ),
            ProcError::Exited { pid, name, parent } => write!(
                f,
                "process {pid} ({name}) has exited (a zombie{}): it has no memory or threads \
                 left, so there is nothing to show or verify",
                parent
                    .map(|p| format!(" until its parent, process {p}, collects its status"))
                    .unwrap_or_default()
            ),
            ProcError::Thread { tid, process } => write!(
                f,
                "{tid} is a thread of process {process}, not a process; give {process}: a \
                 thread's memory is its process's, and `numakit stat {process}` lists every \
                 thread with its CPU and node"
            ),
            ProcError::Read { path, source } => write!(f, "reading {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ProcError {}

fn read(pid: u32, path: PathBuf) -> Result<String, ProcError> {
    std::fs::read_to_string(&path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ProcError::NoSuchProcess { pid },
        io::ErrorKind::PermissionDenied => ProcError::PermissionDenied { pid, path },
        _ => ProcError::Read { path, source },
    })
}

/// One thread of the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Thread id.
    pub tid: u32,
    /// Its name (`comm`).
    pub name: String,
    /// The CPU it last ran on.
    pub cpu: Option<u32>,
    /// That CPU's node.
    pub node: Option<u32>,
    /// The CPUs it may run on (`Cpus_allowed_list`).
    pub allowed_cpus: String,
}

/// What a process looks like now.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Its id.
    pub pid: u32,
    /// Its name (`comm`).
    pub name: String,
    /// Every mapping of `numa_maps`.
    pub maps: Vec<Mapping>,
    /// Lines of `numa_maps` that did not parse.
    pub bad_lines: Vec<BadLine>,
    /// Its threads (those that exited while being read are left out).
    pub threads: Vec<ThreadInfo>,
}

/// Read process `pid`.
///
/// # Errors
/// [`ProcError`]: no such process, permission refused, a read error.
pub fn snapshot(pid: u32, topo: &Topology) -> Result<Snapshot, ProcError> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    check_status(pid, &read(pid, base.join("status"))?)?;
    let text = read(pid, base.join("numa_maps"))?;
    let (maps, bad_lines) = maps::parse(&text);
    let name = read(pid, base.join("comm"))?.trim_end().to_string();
    let task_dir = base.join("task");
    let entries = std::fs::read_dir(&task_dir).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ProcError::NoSuchProcess { pid },
        _ => ProcError::Read {
            path: task_dir.clone(),
            source,
        },
    })?;
    let mut threads = Vec::new();
    for entry in entries.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A thread that exits between the listing and the read is skipped.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let (name, cpu) = parse_task_stat(&stat);
        let node = cpu.and_then(|c| topo.node_of_cpu(CpuId::new(c)).ok().map(|n| n.get()));
        let allowed_cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        threads.push(ThreadInfo {
            tid,
            name,
            cpu,
            node,
            allowed_cpus,
        });
    }
    threads.sort_by_key(|t| t.tid);
    Ok(Snapshot {
        pid,
        name,
        maps,
        bad_lines,
        threads,
    })
}

/// Refuse, from the text of its `/proc/PID/status`, an id that is a
/// thread of another process (`Tgid` differs) or a process that has exited
/// (state `Z` or `X`).
///
/// # Errors
/// [`ProcError::Thread`] or [`ProcError::Exited`].
pub fn check_status(pid: u32, status: &str) -> Result<(), ProcError> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let number = |name: &str| field(name).and_then(|v| v.parse::<u32>().ok());
    if let Some(process) = number("Tgid") {
        if process != pid {
            return Err(ProcError::Thread { tid: pid, process });
        }
    }
    let state = field("State").unwrap_or("");
    if state.starts_with('Z') || state.starts_with('X') {
        return Err(ProcError::Exited {
            pid,
            name: field("Name").unwrap_or("").to_string(),
            parent: number("PPid").filter(|&p| p != 0),
        });
    }
    Ok(())
}

/// `(comm, processor)` of a `/proc/.../stat` line: the name sits in
/// parentheses and may hold spaces and parentheses itself, so the fields
/// are counted from the last `)`; `processor` is field 39.
pub fn parse_task_stat(stat: &str) -> (String, Option<u32>) {
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return (String::new(), None);
    };
    let name = stat.get(open + 1..close).unwrap_or("").to_string();
    let cpu = stat[close + 1..]
        .split_whitespace()
        .nth(39 - 3)
        .and_then(|f| f.parse().ok());
    (name, cpu)
}

impl Snapshot {
    /// Resident bytes per node and mapping kind.
    pub fn resident(&self) -> BTreeMap<u32, BTreeMap<MappingKind, u64>> {
        let mut out: BTreeMap<u32, BTreeMap<MappingKind, u64>> = BTreeMap::new();
        for m in &self.maps {
            for (&node, &pages) in &m.pages {
                let bytes = pages.saturating_mul(m.page_size);
                let slot = out.entry(node).or_default().entry(m.kind).or_insert(0);
                *slot = slot.saturating_add(bytes);
            }
        }
        out
    }

    /// The mappings with a strict policy (`bind`, `interleave`) that have
    /// resident pages outside the policy's nodes.
    pub fn violations(&self) -> Vec<&Mapping> {
        self.maps
            .iter()
            .filter(|m| !m.misplaced().is_empty())
            .collect()
    }

    /// The mappings with a policy other than `default`.
    pub fn with_policy(&self) -> Vec<&Mapping> {
        self.maps
            .iter()
            .filter(|m| m.policy != maps::Policy::Default)
            .collect()
    }

    /// Everything as one JSON object.
    pub fn to_json(&self) -> Value {
        let resident: serde_json::Map<String, Value> = self
            .resident()
            .iter()
            .map(|(node, kinds)| {
                let k: serde_json::Map<String, Value> = kinds
                    .iter()
                    .map(|(kind, b)| (kind.name().to_string(), json!(b)))
                    .collect();
                (node.to_string(), Value::Object(k))
            })
            .collect();
        json!({
            "pid": self.pid,
            "name": self.name,
            "resident_bytes_by_node": resident,
            "mappings_with_policy": self.with_policy().iter().map(|m| m.to_json()).collect::<Vec<_>>(),
            "violations": self.violations().iter().map(|m| m.to_json()).collect::<Vec<_>>(),
            "unparsed_lines": self.bad_lines.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            "threads": self.threads.iter().map(|t| json!({
                "tid": t.tid,
                "name": t.name,
                "cpu": t.cpu,
                "node": t.node,
                "allowed_cpus": t.allowed_cpus,
            })).collect::<Vec<_>>(),
        })
    }

    /// The table for people. The lines of mappings that break their policy
    /// start with `!`, and with `color` they are red as well (ANSI).
    pub fn table(&self, color: bool) -> String {
        let mut out = String::new();
        let violations = self.violations();
        let _ = writeln!(
            out,
            "process {} ({}): {} mappings, {} with a policy, {} breaking it; {} thread{}",
            self.pid,
            self.name,
            self.maps.len(),
            self.with_policy().len(),
            violations.len(),
            self.threads.len(),
            if self.threads.len() == 1 { "" } else { "s" }
        );
        let resident = self.resident();
        let _ = writeln!(out, "\nresident memory by node:");
        let _ = write!(out, "{:>5}", "node");
        for k in MappingKind::ALL {
            let _ = write!(out, " {:>11}", k.name());
        }
        let _ = writeln!(out, " {:>11}", "total");
        for (node, kinds) in &resident {
            let _ = write!(out, "{node:>5}");
            for k in MappingKind::ALL {
                let _ = write!(out, " {:>11}", bytes(kinds.get(&k).copied().unwrap_or(0)));
            }
            let _ = writeln!(out, " {:>11}", bytes(kinds.values().sum()));
        }
        if resident.is_empty() {
            let _ = writeln!(out, "  (no resident pages)");
        }
        let with_policy = self.with_policy();
        if !with_policy.is_empty() {
            let _ = writeln!(out, "\nmappings with a memory policy:");
            let _ = writeln!(
                out,
                "  {:<16} {:<10} {:<22} {:<24} verdict",
                "address", "kind", "policy", "resident pages by node"
            );
            for m in with_policy {
                let by_node: Vec<String> =
                    m.pages.iter().map(|(n, p)| format!("N{n}={p}")).collect();
                let misplaced = m.misplaced();
                let verdict = if !misplaced.is_empty() {
                    let off: u64 = misplaced.values().sum();
                    format!(
                        "BREAKS ITS POLICY: {off} page{} on node{} {}",
                        if off == 1 { "" } else { "s" },
                        if misplaced.len() == 1 { "" } else { "s" },
                        maps::node_list(&misplaced.keys().copied().collect::<Vec<_>>())
                    )
                } else if !m.judged() && m.policy.allowed_nodes().is_some() {
                    format!(
                        "not judged: {} page-cache page{} of the file (shared, placed when \
                         the file was read; a policy does not move them)",
                        m.page_cache_pages(),
                        if m.page_cache_pages() == 1 { "" } else { "s" }
                    )
                } else if m.fallen_back() > 0 {
                    format!(
                        "{} pages fell back off the preferred node (allowed by `prefer`)",
                        m.fallen_back()
                    )
                } else if m.resident_pages() == 0 {
                    "no resident pages".to_string()
                } else {
                    "ok".to_string()
                };
                let line = format!(
                    "{:<16x} {:<10} {:<22} {:<24} {verdict}",
                    m.address,
                    m.kind.name(),
                    m.policy.to_string(),
                    by_node.join(" ")
                );
                let _ = match (misplaced.is_empty(), color) {
                    (true, _) => writeln!(out, "  {line}"),
                    (false, true) => writeln!(out, "\x1b[1;31m! {line}\x1b[0m"),
                    (false, false) => writeln!(out, "! {line}"),
                };
            }
        }
        let _ = writeln!(out, "\nthreads:");
        let _ = writeln!(
            out,
            "  {:>8} {:<16} {:>4} {:>4}  allowed CPUs",
            "tid", "name", "cpu", "node"
        );
        for t in &self.threads {
            let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
            let _ = writeln!(
                out,
                "  {:>8} {:<16} {:>4} {:>4}  {}",
                t.tid,
                t.name,
                opt(t.cpu),
                opt(t.node),
                t.allowed_cpus
            );
        }
        for b in &self.bad_lines {
            let _ = writeln!(out, "warning: {b}");
        }
        out
    }

    /// What `numakit verify` prints and its exit status: 0 when every
    /// mapping with a strict policy has all its resident pages on the
    /// policy's nodes, 1 otherwise (each mapping that breaks it named).
    ///
    /// File mappings holding page-cache pages are not judged (see
    /// [`Mapping::judged`](crate::maps::Mapping::judged)); the report
    /// counts them.
    pub fn verify(&self) -> (String, u8) {
        let is_strict = |m: &&Mapping| m.policy.allowed_nodes().is_some();
        let strict = self
            .maps
            .iter()
            .filter(is_strict)
            .filter(|m| m.judged())
            .count();
        let unjudged = self
            .maps
            .iter()
            .filter(is_strict)
            .filter(|m| !m.judged())
            .count();
        let violations = self.violations();
        let mut out = String::new();
        if unjudged > 0 {
            let _ = writeln!(
                out,
                "not judged: {unjudged} file mapping{} with a strict policy hold{} page-cache \
                 pages, which are shared and were placed when the file was read (a policy \
                 does not move them)",
                if unjudged == 1 { "" } else { "s" },
                if unjudged == 1 { "s" } else { "" }
            );
        }
        if violations.is_empty() && self.bad_lines.is_empty() {
            let _ = writeln!(
                out,
                "ok: process {} ({}): all resident pages of its {strict} mapping{} with a \
                 strict policy (bind, interleave) are on the policy's nodes",
                self.pid,
                self.name,
                if strict == 1 { "" } else { "s" }
            );
            return (out, 0);
        }
        for m in &violations {
            let misplaced = m.misplaced();
            let off: Vec<String> = misplaced
                .iter()
                .map(|(n, p)| format!("{p} on node {n}"))
                .collect();
            let _ = writeln!(
                out,
                "mapping {:#x} ({}{}) has policy {} but {} of its {} resident pages are \
                 elsewhere: {}; `numakit stat {}` shows the process, and \
                 numakit::mem::migrate (or migratepages) moves them back",
                m.address,
                m.kind.name(),
                m.file.as_ref().map(|f| format!(" {f}")).unwrap_or_default(),
                m.policy,
                misplaced.values().sum::<u64>(),
                m.resident_pages(),
                off.join(", "),
                self.pid
            );
        }
        for b in &self.bad_lines {
            let _ = writeln!(out, "cannot check: {b}");
        }
        let _ = writeln!(
            out,
            "FAILED: process {} ({}): {} of {strict} mapping{} with a strict policy break it{}",
            self.pid,
            self.name,
            violations.len(),
            if strict == 1 { "" } else { "s" },
            if self.bad_lines.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} line(s) of numa_maps could not be read",
                    self.bad_lines.len()
                )
            }
        );
        (out, 1)
    }
}

/// Bytes for people: `0`, `12K`, `3.5M`, `2.0G`.
pub fn bytes(b: u64) -> String {
    const K: u64 = 1 << 10;
    if b == 0 {
        "0".into()
    } else if b < K << 10 {
        format!("{}K", b.div_ceil(K))
    } else if b < K << 20 {
        format!("{:.1}M", b as f64 / (K << 10) as f64)
    } else {
        format!("{:.1}G", b as f64 / (K << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_stat_fields_are_counted_from_the_last_parenthesis() {
        let fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        let line = format!("42 (a (b) c) {}", fields.join(" "));
        assert_eq!(parse_task_stat(&line), ("a (b) c".into(), Some(39)));
        assert_eq!(parse_task_stat(""), (String::new(), None));
        assert_eq!(parse_task_stat("1 (x) S"), ("x".into(), None));
        assert_eq!(parse_task_stat(")("), (String::new(), None));
    }

    #[test]
    fn this_process_is_read_and_obeys_its_policies() {
        let topo = Topology::detect().unwrap();
        let me = std::process::id();
        let snap = snapshot(me, &topo).unwrap();
        assert!(snap.bad_lines.is_empty(), "{:?}", snap.bad_lines);
        assert!(!snap.maps.is_empty());
        assert!(snap.threads.iter().any(|t| t.tid == me));
        assert!(snap
            .threads
            .iter()
            .all(|t| t.cpu.is_some() && t.node.is_some()));
        assert!(!snap.resident().is_empty());
        let (text, code) = snap.verify();
        assert_eq!(code, 0, "{text}");
        let json = snap.to_json();
        assert_eq!(json["pid"], me);
        assert!(snap.table(false).contains(&format!("process {me}")));
    }

    #[test]
    fn zombies_and_threads_are_refused_from_their_status() {
        let status = |state: &str, tgid: u32| {
            format!("Name:\tworker\nState:\t{state}\nTgid:\t{tgid}\nPid:\t7\nPPid:\t1\n")
        };
        check_status(7, &status("S (sleeping)", 7)).unwrap();
        check_status(7, &status("R (running)", 7)).unwrap();
        for state in ["Z (zombie)", "X (dead)"] {
            let e = check_status(7, &status(state, 7)).unwrap_err();
            assert!(matches!(e, ProcError::Exited { pid: 7, .. }), "{e:?}");
            let m = e.to_string();
            assert!(m.contains("process 7 (worker) has exited"), "{m}");
            assert!(m.contains("parent, process 1"), "{m}");
        }
        let e = check_status(7, &status("S (sleeping)", 5)).unwrap_err();
        assert!(
            matches!(e, ProcError::Thread { tid: 7, process: 5 }),
            "{e:?}"
        );
        assert!(e.to_string().contains("`numakit stat 5`"), "{e}");
        // Missing fields refuse nothing.
        check_status(7, "").unwrap();
    }

    #[test]
    fn absent_processes_are_named() {
        let topo = Topology::detect().unwrap();
        for pid in [0, u32::MAX, i32::MAX as u32] {
            let e = snapshot(pid, &topo).unwrap_err();
            assert!(matches!(e, ProcError::NoSuchProcess { .. }), "{pid}: {e:?}");
            assert!(e.to_string().contains(&format!("no process {pid}")), "{e}");
        }
    }

    #[test]
    fn a_violation_is_reported_by_stat_and_verify() {
        let (maps, _) = maps::parse(
            "7f0000000000 bind:1 anon=3 N0=2 N1=1 kernelpagesize_kB=4\n\
             7f1000000000 bind:0 anon=3 N0=3 kernelpagesize_kB=4\n",
        );
        let snap = Snapshot {
            pid: 7,
            name: "t".into(),
            maps,
            bad_lines: Vec::new(),
            threads: Vec::new(),
        };
        assert_eq!(snap.violations().len(), 1);
        let (text, code) = snap.verify();
        assert_eq!(code, 1);
        assert!(text.contains("mapping 0x7f0000000000"), "{text}");
        assert!(text.contains("2 on node 0"), "{text}");
        let table = snap.table(false);
        assert!(table.contains("! 7f0000000000"), "{table}");
        assert!(
            table.contains("BREAKS ITS POLICY: 2 pages on node 0"),
            "{table}"
        );
        assert!(snap.table(true).contains("\x1b[1;31m"));
    }

    /// Page-cache pages of a file mapping are not judged against the
    /// process's policy (they were placed when the file was read: a
    /// program started under `numakit run --node 1` maps libc pages that
    /// sit on node 0); the file mapping's own private copies are.
    #[test]
    fn page_cache_pages_of_file_mappings_are_not_judged() {
        let (maps, bad) = maps::parse(
            "55d000000000 bind:1 file=/usr/lib/libc.so.6 mapped=40 mapmax=9 N0=40 \
             kernelpagesize_kB=4\n\
             55d100000000 bind:1 file=/usr/lib/libc.so.6 anon=2 dirty=2 mapped=5 N0=3 N1=2 \
             kernelpagesize_kB=4\n\
             55d200000000 bind:1 file=/usr/lib/libc.so.6 anon=3 dirty=3 N0=3 \
             kernelpagesize_kB=4\n\
             7f0000000000 bind:1 anon=4 dirty=4 N1=4 kernelpagesize_kB=4\n",
        );
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(maps[0].page_cache_pages(), 40);
        assert!(!maps[0].judged());
        assert_eq!(maps[1].page_cache_pages(), 3);
        assert!(!maps[1].judged());
        // Only private copies, on the wrong node: judged, and broken.
        assert_eq!(maps[2].page_cache_pages(), 0);
        assert!(maps[2].judged());
        assert_eq!(maps[2].misplaced().get(&0), Some(&3));
        let mut snap = Snapshot {
            pid: 7,
            name: "t".into(),
            maps,
            bad_lines: Vec::new(),
            threads: Vec::new(),
        };
        assert_eq!(snap.violations().len(), 1);
        let (text, code) = snap.verify();
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("mapping 0x55d200000000"), "{text}");
        assert!(text.contains("not judged: 2 file mappings"), "{text}");
        let table = snap.table(false);
        assert!(table.contains("not judged: 40 page-cache pages"), "{table}");
        snap.maps.remove(2);
        let (text, code) = snap.verify();
        assert_eq!(code, 0, "{text}");
        assert!(
            text.contains("its 1 mapping with a strict policy"),
            "{text}"
        );
        assert!(text.contains("not judged: 2 file mappings"), "{text}");
        // Hostile anon= fields are errors, and an anon= above the resident
        // count leaves no page-cache pages.
        for line in [
            "12 default file=/x anon=x",
            "12 default anon=99999999999999999999",
        ] {
            assert!(maps::parse_line(line).is_err(), "`{line}` parsed");
        }
        let m = maps::parse_line("12 bind:1 file=/x anon=18446744073709551615 N0=1").unwrap();
        assert_eq!(m.page_cache_pages(), 0);
        assert!(m.judged());
    }

    #[test]
    fn sizes_are_short() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(1), "1K");
        assert_eq!(bytes(4096), "4K");
        assert_eq!(bytes(3 << 19), "1.5M");
        assert_eq!(bytes(2 << 30), "2.0G");
        assert!(bytes(u64::MAX).ends_with('G'));
    }
}
