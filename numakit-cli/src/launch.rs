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

#[cfg(test)]
mod tests {
    use super::*;

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
}
