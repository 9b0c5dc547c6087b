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

use numakit::mem::MemError;
use numakit::sched::{Pin, SchedError};
use numakit::sys::mem as sysmem;
use numakit::topology::{CpuId, CpuSet, NodeId};
use numakit::Error;
use std::fmt;

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
            RunError::Numakit(e) => write!(f, "{e}"),
            RunError::BadList {
                option,
                given,
                reason,
            } => write!(
                f,
                "{option} `{given}`: {reason}; write ids and ranges like 0,2-3"
            ),
            RunError::Conflict(s) => f.write_str(s),
            RunError::MallocLibrary { looked_at, reason } => write!(
                f,
                "--node-local-malloc: {} {reason}; build it with `cargo build --release -p \
                 numakit-malloc` and put target/release/{MALLOC_LIBRARY} next to the numakit \
                 binary, or name it with {MALLOC_LIBRARY_ENV}=/path/to/{MALLOC_LIBRARY}",
                looked_at.display()
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

fn parse_list(option: &'static str, given: &str) -> Result<Vec<u32>, RunError> {
    let set = CpuSet::parse_list(given).map_err(|e| RunError::BadList {
        option,
        given: given.to_string(),
        reason: e.to_string(),
    })?;
    if set.is_empty() {
        return Err(RunError::BadList {
            option,
            given: given.to_string(),
            reason: "it names nothing".into(),
        });
    }
    Ok(set.iter().map(|c| c.get()).collect())
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
            for c in parse_list("--cpus", list)? {
                let (one, _) = Pin::cpu(CpuId::new(c)).bind_memory(false).plan()?;
                cpus = cpus.union(&one);
            }
            // `--node` still names a node that must exist.
            numakit::topology::Topology::current()
                .map_err(|e| RunError::Numakit(e.into()))?
                .node(node)
                .map_err(|e| RunError::Numakit(e.into()))?;
            cpus
        }
        None => Pin::node(node).bind_memory(false).plan()?.0,
    };
    let nodes = |option: &'static str, list: &str| -> Result<Vec<NodeId>, RunError> {
        let mut out = Vec::new();
        for n in parse_list(option, list)? {
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
        ld_preload: out,
        fallback,
    })
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
}
