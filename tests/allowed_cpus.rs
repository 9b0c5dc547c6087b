//! One rule for the CPUs of every placement API: a node is used through
//! the CPUs of it the process may use, and refused only when it has none,
//! with an error that says which CPUs, which are allowed and what set the
//! limit. The tests narrow the main thread's affinity (the process's
//! allowed set), so they live in their own binary and take turns.

mod common;

use numakit::sched::{self, NodePool, Pin, SchedError, ThreadPlacement};
use numakit::sys::proc::{cgroup_cpuset, CpusetFile};
use numakit::sys::sched as syssched;
use numakit::topology::Restriction;
use numakit::{current_cpu, pinned, CpuSet, NodeId, Topology};
use std::sync::Mutex;

static PROCESS_STATE: Mutex<()> = Mutex::new(());

/// Longest wait for a pool job before the test fails instead of hanging.
const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(120);

/// Tests take turns: each holds this while it runs.
fn lock() -> std::sync::MutexGuard<'static, ()> {
    PROCESS_STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The main thread's affinity narrowed to `cpus` (and the allowed set
/// re-read) until dropped. Call with [`lock`] held.
struct Narrowed {
    before: Vec<libc::c_ulong>,
}

fn narrow_process_to(cpus: &CpuSet) -> Narrowed {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let before = syssched::sched_getaffinity(pid).unwrap();
    syssched::sched_setaffinity(pid, &cpus.to_mask()).unwrap();
    assert_eq!(&sched::refresh_allowed_cpus().unwrap(), cpus);
    Narrowed { before }
}

impl Drop for Narrowed {
    fn drop(&mut self) {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        syssched::sched_setaffinity(pid, &self.before).unwrap();
        sched::refresh_allowed_cpus().unwrap();
    }
}

fn in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

/// A node with memory and at least two allowed CPUs, those CPUs, and the
/// topology; `None` only where no node has two CPUs (the guests with
/// one vCPU per node), where a node cannot be partly allowed.
fn node_with_two_cpus() -> Option<(Topology, NodeId, CpuSet)> {
    let topo = common::topology();
    let allowed = sched::allowed_cpus().unwrap();
    let Some(node) = topo
        .nodes()
        .iter()
        .find(|n| n.has_memory() && n.cpus().intersection(&allowed).len() >= 2)
    else {
        assert!(
            topo.nodes()
                .iter()
                .all(|n| !n.has_memory() || n.cpus().intersection(&allowed).len() < 2),
            "a node with memory and two allowed CPUs exists but was not found"
        );
        return None;
    };
    Some((topo.clone(), node.id(), node.cpus().intersection(&allowed)))
}

#[pinned(node = 0)]
fn pinned_to_node_zero() -> Result<CpuSet, numakit::Error> {
    Ok(sched::thread_cpus()?)
}

#[test]
fn a_node_with_some_allowed_cpus_is_used_through_those_by_every_api() {
    let _l = lock();
    let Some((topo, node, cpus)) = node_with_two_cpus() else {
        return;
    };
    let first: CpuSet = [cpus.first().unwrap()].into_iter().collect();
    let _narrow = narrow_process_to(&first);

    // What the topology says this process may use.
    let n = topo.node(node).unwrap();
    assert_eq!(n.allowed_cpus().unwrap(), first);
    assert_eq!(topo.allowed_cpus().unwrap(), first);

    // pin_to_node and Pin::node: the allowed part, memory bound as usual.
    let pinned = in_thread(move || {
        let _g = sched::pin_to_node(node)?;
        Ok::<_, SchedError>((sched::thread_cpus()?, current_cpu().unwrap()))
    })
    .expect("a node with an allowed CPU is pinned to it");
    assert_eq!(pinned.0, first);
    assert!(first.contains(pinned.1));
    let pinned = in_thread(move || {
        let _g = Pin::node(node).bind_memory(false).apply()?;
        sched::thread_cpus()
    });
    assert_eq!(pinned.unwrap(), first);

    // #[pinned(node = 0)] (node 0 is the node found on a one-node host).
    if node == NodeId::new(0) {
        let cpus = in_thread(pinned_to_node_zero).expect("#[pinned(node = 0)] runs");
        assert_eq!(cpus, first);
    }

    // ThreadPlacement::Node, Compact and Scatter: the same CPUs.
    for placement in [
        ThreadPlacement::Node(node),
        ThreadPlacement::Compact,
        ThreadPlacement::Scatter,
    ] {
        let group = sched::spawn_group(1, placement, |_| sched::thread_cpus().unwrap())
            .unwrap_or_else(|e| panic!("{placement}: {e}"));
        let seen: Vec<CpuSet> = group.join().into_iter().map(Result::unwrap).collect();
        assert!(
            seen[0].is_subset(&topo.allowed_cpus().unwrap()),
            "{placement}"
        );
        if placement == ThreadPlacement::Node(node) {
            assert_eq!(seen[0], first);
        }
    }

    // A pool on the node: one worker, on the allowed CPU.
    let pool = NodePool::builder().nodes([node]).build().unwrap();
    let job = pool
        .submit_to(node, || sched::thread_cpus().unwrap())
        .unwrap();
    assert!(job.wait_timeout(WATCHDOG), "the job did not finish");
    assert_eq!(job.join().unwrap(), first);
}

#[test]
fn a_node_with_no_allowed_cpu_is_refused_by_every_api_with_the_reason() {
    let _l = lock();
    let topo = common::topology();
    if topo.num_nodes() < 2 {
        // Needs two nodes with CPUs: the guests run it (the harness promises
        // the node count, so it cannot skip there).
        assert!(common::expected_nodes().is_none_or(|n| n < 2));
        return;
    }
    let allowed = sched::allowed_cpus().unwrap();
    let with_cpus: Vec<_> = topo
        .nodes()
        .iter()
        .filter(|n| !n.cpus().intersection(&allowed).is_empty())
        .collect();
    assert!(with_cpus.len() >= 2, "two nodes with allowed CPUs");
    let (kept, refused) = (with_cpus[0], with_cpus[1]);
    let kept_cpus = kept.cpus().intersection(&allowed);
    let refused_id = refused.id();
    let refused_cpus = refused.cpus().clone();
    let _narrow = narrow_process_to(&kept_cpus);
    // The cgroup allows the refused node's CPUs: the affinity mask is the
    // limit, and the error says so when the cgroup can be read.
    let expected = match cgroup_cpuset(CpusetFile::Cpus).unwrap() {
        Some(_) => Restriction::AffinityMask,
        None => Restriction::Unknown,
    };
    let check = |what: &str, result: Result<(), SchedError>| match result {
        Err(SchedError::NodeNotAllowed {
            node,
            node_cpus,
            allowed,
            restriction,
        }) => {
            assert_eq!(node, refused_id, "{what}");
            assert_eq!(node_cpus, refused_cpus, "{what}");
            assert_eq!(allowed, kept_cpus, "{what}");
            assert_eq!(restriction, expected, "{what}");
            let e = SchedError::NodeNotAllowed {
                node,
                node_cpus,
                allowed,
                restriction,
            };
            let text = e.to_string();
            assert!(text.contains(&refused_cpus.to_string()), "{text}");
            assert!(text.contains(&kept_cpus.to_string()), "{text}");
        }
        other => panic!("{what}: expected NodeNotAllowed, got {other:?}"),
    };
    check(
        "pin_to_node",
        in_thread(move || sched::pin_to_node(refused_id).map(drop)),
    );
    check(
        "ThreadPlacement::Node",
        sched::spawn_group(1, ThreadPlacement::Node(refused_id), |_| ()).map(drop),
    );
    check(
        "NodePool on the node",
        NodePool::builder().nodes([refused_id]).build().map(drop),
    );
    // Policies over every node leave it out instead.
    let pool = NodePool::new().unwrap();
    assert!(pool.nodes().all(|n| n != refused_id));
    drop(pool);
    let group = sched::spawn_group(kept_cpus.len(), ThreadPlacement::Scatter, |_| {
        sched::thread_cpus().unwrap()
    })
    .unwrap();
    for cpus in group.join() {
        assert!(cpus.unwrap().is_subset(&kept_cpus));
    }
    // Nothing was left changed on the calling thread.
    let before = sched::thread_cpus().unwrap();
    let _ = sched::pin_to_node(refused_id);
    assert_eq!(sched::thread_cpus().unwrap(), before);
}

#[test]
fn a_cpu_outside_the_allowed_set_is_still_refused() {
    let _l = lock();
    let Some((_topo, _node, cpus)) = node_with_two_cpus() else {
        return;
    };
    let mut it = cpus.iter();
    let (first, second) = (it.next().unwrap(), it.next().unwrap());
    let only_first: CpuSet = [first].into_iter().collect();
    let _narrow = narrow_process_to(&only_first);
    match in_thread(move || sched::pin_to_cpu(second).map(drop)) {
        Err(SchedError::NotAllowed {
            outside, allowed, ..
        }) => {
            assert_eq!(outside, [second].into_iter().collect());
            assert_eq!(allowed, only_first);
        }
        other => panic!("expected NotAllowed, got {other:?}"),
    }
}

#[test]
fn a_refusal_rereads_the_allowed_set_first() {
    let _l = lock();
    let Some((_topo, _node, cpus)) = node_with_two_cpus() else {
        return;
    };
    let first: CpuSet = [cpus.first().unwrap()].into_iter().collect();
    let narrow = narrow_process_to(&first);
    // Widen the process behind numakit's back: the cached set is stale.
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    syssched::sched_setaffinity(pid, &narrow.before).unwrap();
    let second = cpus.iter().nth(1).unwrap();
    let pinned = in_thread(move || {
        let _g = sched::pin_to_cpu(second)?;
        sched::thread_cpus()
    });
    assert_eq!(pinned.unwrap(), [second].into_iter().collect());
    drop(narrow);
}
