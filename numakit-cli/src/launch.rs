//! `numakit run`: check a placement request against the topology and the
//! process's allowed CPUs and memory nodes, apply it to the calling thread
//! and start the command with it.
//!
//! The CPU mask and the memory policy are inherited over `exec`, so the
//! command and every thread it starts run where they were asked to, with
//! memory bound there (`MPOL_BIND`: pages come from those nodes or the
//! allocation fails — no silent fallback), or interleaved over named
//! nodes, or — only when asked for with `--fallback nearest` — preferring
//! a node and falling back to the nearest one, which is then said.

use crate::elf;
use numakit::mem::MemError;
use numakit::sched::{Pin, SchedError};
use numakit::sys::mem as sysmem;
use numakit::topology::{CpuId, CpuSet, NodeId, Topology};
use numakit::Error;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// Where the command's pages may come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryPlan {
    /// `MPOL_BIND` to these nodes: only they give pages.
    Bind(Vec<NodeId>),
    /// `MPOL_INTERLEAVE` over these nodes: only they give pages.
    Interleave(Vec<NodeId>),
    /// `MPOL_PREFERRED`: this node first, then the nearest with free memory.
    PreferNearest(NodeId),
}

/// What `numakit run` will apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The CPUs the command may run on.
    pub cpus: CpuSet,
    /// Its memory policy.
    pub memory: MemoryPlan,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |nodes: &[NodeId]| {
            nodes
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(f, "CPUs {}; memory ", self.cpus)?;
        match &self.memory {
            MemoryPlan::Bind(n) => write!(f, "bound to node(s) {} (strict)", list(n)),
            MemoryPlan::Interleave(n) => write!(f, "interleaved over nodes {} (strict)", list(n)),
            MemoryPlan::PreferNearest(n) => write!(
                f,
                "preferring node {n}, falling back to the nearest node with free memory \
                 when it is full (--fallback nearest)"
            ),
        }
    }
}

/// What was asked on the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `--node N`.
    pub node: u32,
    /// `--cpus LIST`.
    pub cpus: Option<String>,
    /// `--membind LIST`.
    pub membind: Option<String>,
    /// `--interleave LIST`.
    pub interleave: Option<String>,
    /// `--fallback nearest`.
    pub fallback_nearest: bool,
    /// `--node-local-malloc`.
    pub node_local_malloc: bool,
}

/// A request that cannot be honoured.
#[derive(Debug)]
pub enum RunError {
    /// The library refused it; the text is the library's.
    Numakit(Error),
    /// A list on the command line does not parse.
    BadList {
        /// The option.
        option: &'static str,
        /// What was given.
        given: String,
        /// Why.
        reason: String,
    },
    /// Options that cannot go together.
    Conflict(String),
    /// `--node-local-malloc`: the library cannot be preloaded.
    MallocLibrary {
        /// Where it was looked for.
        looked_at: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `--node-local-malloc`: the program cannot take the preloaded
    /// library.
    NotPreloadable {
        /// The program, as found on `PATH`.
        program: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The kernel refused the mask or the policy.
    Os {
        /// The call.
        call: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Numakit(e) => match no_such_node(e) {
                // The library points at its own example; the command has
                // `numakit topology`.
                Some((requested, available)) => write!(
                    f,
                    "NUMA node {requested} does not exist: this machine has {}; ask for \
                     one of those (`numakit topology` lists them)",
                    node_words(available)
                ),
                None => write!(f, "{e}"),
            },
            RunError::BadList {
                option,
                given,
                reason,
            } => write!(f, "{option} `{given}`: {reason}"),
            RunError::Conflict(s) => f.write_str(s),
            RunError::MallocLibrary { looked_at, reason } => write!(
                f,
                "--node-local-malloc: {} {reason}; build it with `cargo build --release -p \
                 numakit-malloc` and put target/release/{MALLOC_LIBRARY} next to the numakit \
                 binary, or name it with {MALLOC_LIBRARY_ENV}=/path/to/{MALLOC_LIBRARY}",
                looked_at.display()
            ),
            RunError::NotPreloadable { program, reason } => write!(
                f,
                "--node-local-malloc: {} {reason}, so its allocations would not follow its \
                 threads' nodes; run it without --node-local-malloc (its memory is still \
                 placed as --node says), or use a dynamically linked build of it for this \
                 machine",
                program.display(),
            ),
            RunError::Os { call, source } => write!(f, "{call} failed: {source}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<SchedError> for RunError {
    fn from(e: SchedError) -> Self {
        RunError::Numakit(e.into())
    }
}

impl From<MemError> for RunError {
    fn from(e: MemError) -> Self {
        RunError::Numakit(e.into())
    }
}

/// The `NoSuchNode` error inside `e`, wherever the library nests it.
fn no_such_node(e: &Error) -> Option<(NodeId, &[NodeId])> {
    use numakit::topology::TopologyError;
    let t = match e {
        Error::Topology(t)
        | Error::Mem(MemError::Topology(t))
        | Error::Sched(SchedError::Topology(t)) => t,
        _ => return None,
    };
    match t {
        TopologyError::NoSuchNode {
            requested,
            available,
        } => Some((*requested, available)),
        _ => None,
    }
}

/// `node 0`, `nodes 0-1,3`.
fn node_words(nodes: &[NodeId]) -> String {
    let set: CpuSet = nodes.iter().map(|n| CpuId::new(n.get())).collect();
    match nodes.len() {
        0 => "no nodes".into(),
        1 => format!("node {set}"),
        _ => format!("nodes {set}"),
    }
}

/// What a list on the command line holds.
#[derive(Clone, Copy)]
enum Ids {
    Cpu,
    Node,
}

impl Ids {
    fn name(self) -> &'static str {
        match self {
            Ids::Cpu => "CPU",
            Ids::Node => "node",
        }
    }

    /// The largest id accepted: what a CPU set or a node mask can hold.
    fn max(self) -> u32 {
        match self {
            Ids::Cpu => CpuSet::MAX_CPUS - 1,
            Ids::Node => sysmem::MAX_MASK_NODES - 1,
        }
    }
}

/// Parse `given`, the kernel's list format (`0-3,8,10-11`, a range may
/// have a stride: `0-7:2`), as a list of `ids`.
fn parse_list(option: &'static str, ids: Ids, given: &str) -> Result<Vec<u32>, RunError> {
    let what = ids.name();
    let bad = |reason: String| RunError::BadList {
        option,
        given: given.to_string(),
        reason,
    };
    let syntax = |detail: String| {
        bad(format!(
            "not a {what} list ({detail}); write {what} ids and ranges like 0,2-3"
        ))
    };
    let id = |text: &str| -> Result<u32, RunError> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax(format!("`{text}` is not a {what} id")));
        }
        match text.parse::<u32>() {
            Ok(v) if v <= ids.max() => Ok(v),
            _ => Err(bad(format!(
                "{what} {text} is above {}, the largest {what} id numakit accepts",
                ids.max()
            ))),
        }
    };
    if given.trim().is_empty() {
        return Err(bad(format!(
            "it names no {what}; write {what} ids and ranges like 0,2-3"
        )));
    }
    let mut out = std::collections::BTreeSet::new();
    for part in given.split(',') {
        if part.trim().is_empty() {
            return Err(syntax("an empty entry between commas".into()));
        }
        let (range, stride) = match part.split_once(':') {
            Some((range, stride)) => match stride.trim().parse::<u32>() {
                Ok(s) if s > 0 => (range, s),
                _ => {
                    return Err(syntax(format!(
                        "the stride of `{}` is not a positive number",
                        part.trim()
                    )))
                }
            },
            None => (part, 1),
        };
        let (lo, hi) = match range.split_once('-') {
            Some((lo, hi)) if lo.trim().is_empty() || hi.trim().is_empty() => {
                return Err(syntax(format!(
                    "`{}` is a range without its {} id",
                    range.trim(),
                    if lo.trim().is_empty() {
                        "first"
                    } else {
                        "last"
                    }
                )))
            }
            Some((lo, hi)) => (id(lo)?, id(hi)?),
            None => {
                let v = id(range)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(syntax(format!("the range {lo}-{hi} runs backwards")));
        }
        out.extend((lo..=hi).step_by(stride as usize));
    }
    Ok(out.into_iter().collect())
}

/// With `--node-local-malloc` every thread's blocks come from the node of
/// the CPU it runs on, so every CPU the command may run on must be on
/// `node`, the node its memory was asked on.
///
/// # Errors
/// [`RunError::Conflict`] naming the CPUs on other nodes.
pub fn check_malloc_cpus(topo: &Topology, cpus: &CpuSet, node: NodeId) -> Result<(), RunError> {
    let mut elsewhere: Vec<(CpuId, Option<NodeId>)> = Vec::new();
    for cpu in cpus.iter() {
        match topo.node_of_cpu(cpu) {
            Ok(n) if n == node => {}
            Ok(n) => elsewhere.push((cpu, Some(n))),
            Err(_) => elsewhere.push((cpu, None)),
        }
    }
    if elsewhere.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = elsewhere
        .iter()
        .map(|(c, n)| match n {
            Some(n) => format!("CPU {c} (node {n})"),
            None => format!("CPU {c} (no node)"),
        })
        .collect();
    Err(RunError::Conflict(format!(
        "--node-local-malloc gives each thread memory on the node of the CPU it runs on, \
         and --cpus allows {} off node {node}, so blocks would come from another node than \
         the one asked for; give --cpus only CPUs of node {node} ({}), or run on the other \
         node with --node, or leave out --node-local-malloc",
        listed.join(", "),
        topo.node(node)
            .map_or_else(|_| "none".to_string(), |n| n.cpus().to_string())
    )))
}

/// Check `request` and work out what to apply; changes nothing.
///
/// # Errors
/// [`RunError`]: the library's typed error (no such node or CPU, no CPUs
/// or no memory on the node, outside the allowed sets), a list that does
/// not parse, or options that conflict.
pub fn plan(request: &Request) -> Result<Plan, RunError> {
    let node = NodeId::new(request.node);
    if request.fallback_nearest && (request.membind.is_some() || request.interleave.is_some()) {
        return Err(RunError::Conflict(
            "--fallback nearest applies to --node's memory; it cannot go with --membind \
             or --interleave, which name their nodes exactly"
                .into(),
        ));
    }
    if request.node_local_malloc && (request.membind.is_some() || request.interleave.is_some()) {
        return Err(RunError::Conflict(
            "--node-local-malloc puts each thread's blocks on the node it runs on; it cannot \
             go with --membind or --interleave, which name other nodes for the memory"
                .into(),
        ));
    }
    if request.membind.is_some() && request.interleave.is_some() {
        return Err(RunError::Conflict(
            "--membind and --interleave are two memory policies; give one".into(),
        ));
    }
    let cpus = match &request.cpus {
        // Each CPU is checked as pinning to it would check it (exists,
        // allowed); the node's own CPUs are not required.
        Some(list) => {
            let mut cpus = CpuSet::default();
            for c in parse_list("--cpus", Ids::Cpu, list)? {
                let (one, _) = Pin::cpu(CpuId::new(c)).bind_memory(false).plan()?;
                cpus = cpus.union(&one);
            }
            // `--node` still names a node that must exist.
            let topo = Topology::current().map_err(|e| RunError::Numakit(e.into()))?;
            topo.node(node).map_err(|e| RunError::Numakit(e.into()))?;
            if request.node_local_malloc {
                check_malloc_cpus(&topo, &cpus, node)?;
            }
            cpus
        }
        None => Pin::node(node).bind_memory(false).plan()?.0,
    };
    let nodes = |option: &'static str, list: &str| -> Result<Vec<NodeId>, RunError> {
        let mut out = Vec::new();
        for n in parse_list(option, Ids::Node, list)? {
            numakit::mem::check_node(n)?;
            out.push(NodeId::new(n));
        }
        Ok(out)
    };
    let memory = if let Some(list) = &request.membind {
        MemoryPlan::Bind(nodes("--membind", list)?)
    } else if let Some(list) = &request.interleave {
        MemoryPlan::Interleave(nodes("--interleave", list)?)
    } else {
        numakit::mem::check_node(node)?;
        if request.fallback_nearest {
            MemoryPlan::PreferNearest(node)
        } else {
            MemoryPlan::Bind(vec![node])
        }
    };
    Ok(Plan { cpus, memory })
}

/// Apply `plan` to the calling thread (CPU mask and memory policy); a
/// command it then `exec`s inherits both.
///
/// # Errors
/// [`RunError::Os`] when the kernel refuses (a cpuset that changed since
/// the check, for example).
pub fn apply(plan: &Plan) -> Result<(), RunError> {
    numakit::sys::sched::sched_setaffinity(0, &plan.cpus.to_mask()).map_err(|source| {
        RunError::Os {
            call: "sched_setaffinity",
            source,
        }
    })?;
    let (mode, nodes) = match &plan.memory {
        MemoryPlan::Bind(n) => (sysmem::MPOL_BIND, n.clone()),
        MemoryPlan::Interleave(n) => (sysmem::MPOL_INTERLEAVE, n.clone()),
        MemoryPlan::PreferNearest(n) => (sysmem::MPOL_PREFERRED, vec![*n]),
    };
    let os = |source| RunError::Os {
        call: "set_mempolicy",
        source,
    };
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    for n in &nodes {
        let one = sysmem::try_node_mask(n.get()).map_err(os)?;
        if mask.len() < one.len() {
            mask.resize(one.len(), 0);
        }
        mask.iter_mut().zip(one).for_each(|(m, o)| *m |= o);
    }
    sysmem::set_mempolicy(mode, &mask).map_err(os)
}

/// The file name of the preloadable allocator (crate `numakit-malloc`).
pub const MALLOC_LIBRARY: &str = "libnumakit_malloc.so";
/// The variable that names the library's path instead.
pub const MALLOC_LIBRARY_ENV: &str = "NUMAKIT_MALLOC_LIB";

/// What `--node-local-malloc` adds to the command's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preload {
    /// The library, its canonical path.
    pub library: std::path::PathBuf,
    /// The new `LD_PRELOAD`: the existing entries, then the library.
    pub ld_preload: std::ffi::OsString,
    /// `NUMAKIT_MALLOC_FALLBACK`: `strict`, or `nearest` with
    /// `--fallback nearest`.
    pub fallback: &'static str,
}

/// Work out `--node-local-malloc`'s environment: the library is
/// `$NUMAKIT_MALLOC_LIB` when set, else [`MALLOC_LIBRARY`] in `exe_dir`
/// (the directory of the numakit binary); it is appended to
/// `ld_preload` (an existing `LD_PRELOAD`; a library listed there that
/// defines `malloc` itself comes first and wins) unless already listed.
/// `env_fallback` is an existing `NUMAKIT_MALLOC_FALLBACK`, which must
/// agree with `--fallback`.
///
/// # Errors
/// [`RunError::MallocLibrary`] when the library is not a file, or its
/// path cannot be written in `LD_PRELOAD` (a space or a colon in it);
/// [`RunError::Conflict`] when `NUMAKIT_MALLOC_FALLBACK` disagrees with
/// `--fallback`.
pub fn malloc_preload(
    request: &Request,
    exe_dir: Option<&std::path::Path>,
    env_library: Option<&std::ffi::OsStr>,
    ld_preload: Option<&std::ffi::OsStr>,
    env_fallback: Option<&std::ffi::OsStr>,
) -> Result<Preload, RunError> {
    use std::os::unix::ffi::OsStrExt;
    let fallback = if request.fallback_nearest {
        "nearest"
    } else {
        "strict"
    };
    if let Some(v) = env_fallback {
        if v.as_bytes() != fallback.as_bytes() {
            return Err(RunError::Conflict(format!(
                "NUMAKIT_MALLOC_FALLBACK={} is set, but the allocator's fallback follows \
                 --fallback here ({fallback}); unset it, or give --fallback nearest for nearest",
                v.to_string_lossy()
            )));
        }
    }
    let looked_at = match (env_library, exe_dir) {
        (Some(p), _) if !p.is_empty() => std::path::PathBuf::from(p),
        (_, Some(dir)) => dir.join(MALLOC_LIBRARY),
        (_, None) => {
            return Err(RunError::MallocLibrary {
                looked_at: MALLOC_LIBRARY.into(),
                reason: "cannot be looked for: the numakit binary's own path is unknown".into(),
            })
        }
    };
    let path = match std::fs::canonicalize(&looked_at) {
        Ok(p) if p.is_file() => p,
        Ok(_) => {
            return Err(RunError::MallocLibrary {
                looked_at,
                reason: "is not a file".into(),
            })
        }
        Err(e) => {
            return Err(RunError::MallocLibrary {
                looked_at,
                reason: format!("cannot be used ({e})"),
            })
        }
    };
    if path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|&b| b == b' ' || b == b':' || b.is_ascii_whitespace())
    {
        return Err(RunError::MallocLibrary {
            looked_at: path,
            reason: "has a space or a colon in its path, which LD_PRELOAD uses to separate \
                     entries; move it"
                .into(),
        });
    }
    let mut out = std::ffi::OsString::new();
    let mut listed = false;
    for entry in ld_preload
        .map(|v| v.as_bytes())
        .unwrap_or_default()
        .split(|&b| b == b' ' || b == b':')
        .filter(|e| !e.is_empty())
    {
        listed |= entry == path.as_os_str().as_bytes();
        if !out.is_empty() {
            out.push(" ");
        }
        out.push(std::ffi::OsStr::from_bytes(entry));
    }
    if !listed {
        if !out.is_empty() {
            out.push(" ");
        }
        out.push(path.as_os_str());
    }
    Ok(Preload {
        library: path,
        ld_preload: out,
        fallback,
    })
}

/// Check that `library` is numakit's malloc library: an ELF shared object
/// whose dynamic symbol table defines `malloc`, `free` and
/// `malloc_usable_size`, and `numakit_malloc_version`, which only
/// numakit's malloc library exports. The
/// dynamic loader would skip anything else with a warning, or preload
/// another allocator, and the command would run without node-local malloc.
///
/// # Errors
/// [`RunError::MallocLibrary`] saying which of these fails.
pub fn check_malloc_library(library: &std::path::Path) -> Result<(), RunError> {
    let refuse = |reason: String| RunError::MallocLibrary {
        looked_at: library.to_path_buf(),
        reason,
    };
    // A regular file: opening a FIFO would wait for a writer.
    match std::fs::metadata(library) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(refuse("is not a regular file, so not a library".into())),
        Err(e) => return Err(refuse(format!("cannot be read ({e})"))),
    }
    let file = std::fs::File::open(library).map_err(|e| refuse(format!("cannot be read ({e})")))?;
    let Some(h) = elf::header(&file) else {
        return Err(refuse("is not an ELF file, so not a library".into()));
    };
    if h.kind != elf::ET_DYN || !h.dynamic {
        return Err(refuse("is an ELF file but not a shared library".into()));
    }
    if header_of_this_program().is_some_and(|me| (me.class64, me.machine) != (h.class64, h.machine))
    {
        return Err(refuse(
            "is a shared library for another architecture than this machine's".into(),
        ));
    }
    if !elf::defines(&file, &h, &["malloc", "free", "malloc_usable_size"]) {
        return Err(refuse(
            "is a shared library but not a malloc library (its dynamic symbols do not \
             define malloc, free and malloc_usable_size)"
                .into(),
        ));
    }
    if !elf::defines(&file, &h, &["numakit_malloc_version"]) {
        return Err(refuse(
            "defines malloc but is another allocator than numakit's malloc library".into(),
        ));
    }
    Ok(())
}

fn header_of_this_program() -> Option<elf::Header> {
    elf::header(&std::fs::File::open("/proc/self/exe").ok()?)
}

/// Where `exec` finds `program`: itself when it holds a `/`, else the first
/// executable file of that name in `path` (`PATH`; `/bin:/usr/bin` when
/// unset, an empty entry standing for the current directory).
fn resolve(program: &OsStr, path: Option<&OsStr>) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.is_empty() {
        return None;
    }
    if program.as_bytes().contains(&b'/') {
        return Some(program.into());
    }
    let path = path.map_or(&b"/bin:/usr/bin"[..], OsStrExt::as_bytes);
    path.split(|&b| b == b':').find_map(|dir| {
        let dir = if dir.is_empty() {
            std::path::Path::new(".")
        } else {
            std::path::Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}

/// Check that `program` (looked up on `path`, as `exec` does) will load
/// `library`: it must be dynamically linked (have a dynamic loader, which
/// is what reads `LD_PRELOAD`) for the library's architecture. A script
/// (`#!`) is checked through its interpreter. A program that cannot be
/// found or read is let through: `exec` says what is wrong with it.
///
/// # Errors
/// [`RunError::NotPreloadable`] for a statically linked program or one of
/// another architecture.
pub fn check_program(
    program: &OsStr,
    path: Option<&OsStr>,
    library: &std::path::Path,
) -> Result<(), RunError> {
    let Some(found) = resolve(program, path) else {
        return Ok(());
    };
    let library = std::fs::metadata(library)
        .is_ok_and(|m| m.is_file())
        .then(|| std::fs::File::open(library).ok())
        .flatten()
        .and_then(|f| elf::header(&f));
    check_loads(&found, library.as_ref(), true)
}

fn check_loads(
    program: &std::path::Path,
    library: Option<&elf::Header>,
    follow_script: bool,
) -> Result<(), RunError> {
    // Only a regular file can be run (and opening a FIFO would wait for a
    // writer): anything else is left to exec's own error.
    if !std::fs::metadata(program).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let Ok(file) = std::fs::File::open(program) else {
        return Ok(());
    };
    let refuse = |reason: &str| RunError::NotPreloadable {
        program: program.to_path_buf(),
        reason: reason.into(),
    };
    let Some(h) = elf::header(&file) else {
        // A script: its interpreter is what the loader starts.
        let mut head = [0u8; 256];
        let n = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).unwrap_or(0);
        let Some(line) = head[..n].strip_prefix(b"#!") else {
            return Ok(());
        };
        let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
        let interpreter = line
            .split(|&b| b == b' ' || b == b'\t')
            .find(|w| !w.is_empty());
        return match interpreter {
            Some(i) if follow_script => {
                check_loads(std::path::Path::new(OsStr::from_bytes(i)), library, false)
            }
            _ => Ok(()),
        };
    };
    if !h.interp {
        return Err(refuse(
            "is statically linked: it has no dynamic loader to read LD_PRELOAD",
        ));
    }
    if let Some(lib) = library {
        if (lib.class64, lib.machine) != (h.class64, h.machine) {
            return Err(refuse(if h.class64 == lib.class64 {
                "is built for another architecture than the malloc library"
            } else if h.class64 {
                "is a 64-bit program and the malloc library is 32-bit: the dynamic loader \
                 would skip the library"
            } else {
                "is a 32-bit program and the malloc library is 64-bit: the dynamic loader \
                 would skip the library"
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn req(node: u32) -> Request {
        Request {
            node,
            ..Request::default()
        }
    }

    #[test]
    fn node_0_binds_its_cpus_and_memory() {
        let plan = plan(&req(0)).unwrap();
        assert_eq!(plan.memory, MemoryPlan::Bind(vec![NodeId::new(0)]));
        assert!(!plan.cpus.is_empty());
        assert!(plan.to_string().contains("(strict)"), "{plan}");
    }

    #[test]
    fn absent_nodes_and_cpus_are_the_librarys_errors() {
        for node in [4096, u32::MAX] {
            let e = plan(&req(node)).unwrap_err();
            assert!(matches!(e, RunError::Numakit(_)), "{e:?}");
            assert!(e.to_string().contains(&node.to_string()), "{e}");
        }
        for cpus in ["4095", "0,4095"] {
            let e = plan(&Request {
                cpus: Some(cpus.into()),
                ..req(0)
            })
            .unwrap_err();
            assert!(e.to_string().contains("4095"), "{e}");
        }
        for (list, option) in [("", "--membind"), ("x", "--membind"), ("1-0", "--membind")] {
            let e = plan(&Request {
                membind: Some(list.into()),
                ..req(0)
            })
            .unwrap_err();
            assert!(matches!(e, RunError::BadList { .. }), "{list}: {e:?}");
            assert!(e.to_string().starts_with(option), "{e}");
        }
        let e = plan(&Request {
            membind: Some("4096".into()),
            ..req(0)
        })
        .unwrap_err();
        assert!(e.to_string().contains("4096"), "{e}");
    }

    #[test]
    fn conflicting_options_are_refused() {
        for r in [
            Request {
                fallback_nearest: true,
                membind: Some("0".into()),
                ..req(0)
            },
            Request {
                membind: Some("0".into()),
                interleave: Some("0".into()),
                ..req(0)
            },
        ] {
            assert!(matches!(plan(&r), Err(RunError::Conflict(_))), "{r:?}");
        }
        let p = plan(&Request {
            fallback_nearest: true,
            ..req(0)
        })
        .unwrap();
        assert_eq!(p.memory, MemoryPlan::PreferNearest(NodeId::new(0)));
        assert!(p.to_string().contains("--fallback nearest"), "{p}");
    }

    #[test]
    fn node_local_malloc_is_found_appended_and_checked() {
        let dir = std::env::temp_dir().join(format!("numakit-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join(MALLOC_LIBRARY);
        std::fs::write(&lib, b"not really a library").unwrap();
        let lib = std::fs::canonicalize(&lib).unwrap();
        let r = Request {
            node_local_malloc: true,
            ..req(0)
        };
        let os = |s: &str| std::ffi::OsString::from(s);
        // Next to the binary; alone, then appended (spaces or colons).
        let p = malloc_preload(&r, Some(&dir), None, None, None).unwrap();
        assert_eq!(p.ld_preload, lib.as_os_str());
        assert_eq!(p.fallback, "strict");
        let p = malloc_preload(&r, Some(&dir), None, Some(&os("/a.so:/b.so")), None).unwrap();
        assert_eq!(p.ld_preload, os(&format!("/a.so /b.so {}", lib.display())));
        // Already listed: not twice.
        let twice = os(&format!("{} /x.so", lib.display()));
        let p = malloc_preload(&r, Some(&dir), None, Some(&twice), None).unwrap();
        assert_eq!(p.ld_preload, twice);
        // The variable wins over the binary's directory.
        let p = malloc_preload(
            &r,
            Some(Path::new("/nonexistent")),
            Some(lib.as_os_str()),
            None,
            None,
        )
        .unwrap();
        assert_eq!(p.ld_preload, lib.as_os_str());
        // Missing: typed, says where it looked and what to do.
        let e = malloc_preload(&r, Some(Path::new("/nonexistent")), None, None, None).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, RunError::MallocLibrary { .. }), "{e:?}");
        assert!(msg.contains("/nonexistent/libnumakit_malloc.so"), "{msg}");
        assert!(msg.contains("NUMAKIT_MALLOC_LIB"), "{msg}");
        assert!(
            msg.contains("cargo build --release -p numakit-malloc"),
            "{msg}"
        );
        let e = malloc_preload(&r, None, None, None, None).unwrap_err();
        assert!(matches!(e, RunError::MallocLibrary { .. }), "{e:?}");
        // A directory is not a library.
        let e = malloc_preload(&r, None, Some(dir.as_os_str()), None, None).unwrap_err();
        assert!(e.to_string().contains("is not a file"), "{e}");
        // A path LD_PRELOAD cannot hold.
        let spaced = dir.join("with space");
        std::fs::create_dir_all(&spaced).unwrap();
        std::fs::write(spaced.join(MALLOC_LIBRARY), b"x").unwrap();
        let e = malloc_preload(&r, Some(&spaced), None, None, None).unwrap_err();
        assert!(e.to_string().contains("space or a colon"), "{e}");
        // The allocator's fallback follows --fallback, and an environment
        // that says otherwise is a conflict.
        let near = Request {
            fallback_nearest: true,
            ..r.clone()
        };
        let p = malloc_preload(&near, Some(&dir), None, None, Some(&os("nearest"))).unwrap();
        assert_eq!(p.fallback, "nearest");
        let e = malloc_preload(&r, Some(&dir), None, None, Some(&os("nearest"))).unwrap_err();
        assert!(matches!(e, RunError::Conflict(_)), "{e:?}");
        let e = malloc_preload(&near, Some(&dir), None, None, Some(&os("strict"))).unwrap_err();
        assert!(matches!(e, RunError::Conflict(_)), "{e:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn node_local_malloc_does_not_go_with_named_memory_nodes() {
        for (membind, interleave) in [(Some("0"), None), (None, Some("0"))] {
            let r = Request {
                node_local_malloc: true,
                membind: membind.map(str::to_string),
                interleave: interleave.map(str::to_string),
                ..req(0)
            };
            let e = plan(&r).unwrap_err();
            assert!(matches!(e, RunError::Conflict(_)), "{e:?}");
            assert!(e.to_string().contains("--node-local-malloc"), "{e}");
        }
    }

    #[test]
    fn lists_say_what_they_are_and_name_the_limit() {
        let e = |option, ids, given| parse_list(option, ids, given).unwrap_err().to_string();
        let m = e("--membind", Ids::Node, ",");
        assert!(m.contains("not a node list") && !m.contains("CPU"), "{m}");
        let m = e("--interleave", Ids::Node, "0-");
        assert!(
            m.contains("not a node list") && m.contains("last id"),
            "{m}"
        );
        let m = e("--cpus", Ids::Cpu, "65536");
        assert!(m.contains("CPU 65536 is above 65535"), "{m}");
        let m = e("--cpus", Ids::Cpu, "0-4294967295");
        assert!(m.contains("CPU 4294967295 is above 65535"), "{m}");
        let m = e("--membind", Ids::Node, "65536");
        assert!(m.contains("node 65536 is above 65535"), "{m}");
        let m = e("--membind", Ids::Node, "99999999999999999999");
        assert!(m.contains("is above 65535"), "{m}");
        for bad in ["", " ", "x", "1-0", "0,,1", "0-3:0", "-1"] {
            assert!(parse_list("--cpus", Ids::Cpu, bad).is_err(), "`{bad}`");
        }
        assert_eq!(
            parse_list("--cpus", Ids::Cpu, "0-6:2, 3,65535").unwrap(),
            [0, 2, 3, 4, 6, 65535]
        );
    }

    #[test]
    fn an_absent_node_points_at_numakit_topology() {
        let e = plan(&req(4096)).unwrap_err().to_string();
        assert!(e.contains("`numakit topology` lists them"), "{e}");
        assert!(!e.contains("cargo"), "{e}");
        let e = plan(&Request {
            membind: Some("4096".into()),
            ..req(0)
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("`numakit topology` lists them"), "{e}");
    }

    /// Two nodes: CPUs 0-1 on node 0, 2-3 on node 1.
    fn two_nodes() -> (Topology, std::path::PathBuf) {
        let root = std::env::temp_dir().join(format!(
            "numakit-launch-sysfs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let w = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("devices/system/node/online", "0-1\n");
        w("devices/system/cpu/online", "0-3\n");
        for (n, cpus, row) in [(0, "0-1", "10 20"), (1, "2-3", "20 10")] {
            w(
                &format!("devices/system/node/node{n}/cpulist"),
                &format!("{cpus}\n"),
            );
            w(
                &format!("devices/system/node/node{n}/distance"),
                &format!("{row}\n"),
            );
            w(
                &format!("devices/system/node/node{n}/meminfo"),
                &format!("Node {n} MemTotal: 4096 kB\nNode {n} MemFree: 2048 kB\n"),
            );
        }
        (Topology::from_sysfs(&root).unwrap(), root)
    }

    #[test]
    fn node_local_malloc_needs_every_cpu_on_the_memory_node() {
        let (topo, root) = two_nodes();
        let set = |s: &str| CpuSet::parse_list(s).unwrap();
        let (n0, n1) = (NodeId::new(0), NodeId::new(1));
        check_malloc_cpus(&topo, &set("0-1"), n0).unwrap();
        check_malloc_cpus(&topo, &set("2-3"), n1).unwrap();
        let e = check_malloc_cpus(&topo, &set("1-2"), n0).unwrap_err();
        assert!(matches!(e, RunError::Conflict(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.contains("CPU 2 (node 1)") && !m.contains("CPU 1 "), "{m}");
        assert!(m.contains("only CPUs of node 0 (0-1)"), "{m}");
        let m = check_malloc_cpus(&topo, &set("3,9"), n1)
            .unwrap_err()
            .to_string();
        assert!(m.contains("CPU 9 (no node)"), "{m}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn only_numakits_malloc_library_is_preloaded() {
        let dir = std::env::temp_dir().join(format!("numakit-launch-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("text.so");
        std::fs::write(&text, "#!/bin/sh\n").unwrap();
        let e = check_malloc_library(&text).unwrap_err().to_string();
        assert!(e.contains("is not an ELF file"), "{e}");
        // A position-independent executable is a shared object, without malloc.
        let me = std::env::current_exe().unwrap();
        let e = check_malloc_library(&me).unwrap_err().to_string();
        assert!(e.contains("not a malloc library"), "{e}");
        // libc defines malloc, and is not numakit's.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        if let Some(libc) = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        {
            let e = check_malloc_library(std::path::Path::new(libc))
                .unwrap_err()
                .to_string();
            assert!(e.contains("another allocator"), "{libc}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn static_programs_are_refused_through_path_and_scripts() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("numakit-launch-prog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::env::current_exe().unwrap();
        let mut header = std::fs::read(&me).unwrap()[..64].to_vec();
        header[16..18].copy_from_slice(&2u16.to_le_bytes());
        header[56..58].fill(0);
        let program = dir.join("static-prog");
        std::fs::write(&program, &header).unwrap();
        let script = dir.join("script");
        std::fs::write(&script, format!("#! {} -x\n", program.display())).unwrap();
        let dynamic_script = dir.join("dynamic-script");
        std::fs::write(&dynamic_script, format!("#!{}\n", me.display())).unwrap();
        for p in [&program, &script, &dynamic_script] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = dir.as_os_str();
        for cmd in [
            program.as_os_str(),
            OsStr::new("static-prog"),
            script.as_os_str(),
        ] {
            let e = check_program(cmd, Some(path), &me).unwrap_err();
            assert!(
                matches!(e, RunError::NotPreloadable { .. }),
                "{cmd:?}: {e:?}"
            );
            assert!(e.to_string().contains("is statically linked"), "{e}");
        }
        for cmd in [
            me.as_os_str(),
            dynamic_script.as_os_str(),
            OsStr::new("dynamic-script"),
            OsStr::new("no-such-program"),
            OsStr::new(""),
        ] {
            check_program(cmd, Some(path), &me).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
