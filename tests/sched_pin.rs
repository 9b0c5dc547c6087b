//! L2 pinning and thread-group placement, on the host and in the guests.
//! Tests here change the main thread's CPU mask (the process's allowed
//! set), so they live in their own binary and take turns.

mod common;

use numakit::mem;
use numakit::sched::{self, Pin, SchedError, ThreadPlacement};
use numakit::sys::{mem as sysmem, sched as syssched};
use numakit::{current_cpu, current_node, CpuId, CpuSet, NodeId};
use std::sync::Mutex;

static PROCESS_STATE: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    PROCESS_STATE.lock().unwrap_or_else(|p| p.into_inner())
}

fn mempolicy() -> (i32, libc::c_ulong) {
    let mut mask = vec![0; 16];
    let mode = sysmem::get_mempolicy(&mut mask, std::ptr::null(), 0).unwrap();
    (mode, mask[0])
}

fn in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

#[test]
fn pin_to_each_node_runs_there_binds_memory_and_restores() {
    let _l = lock();
    let topo = common::topology();
    let mut pinned_nodes = 0;
    for node in topo.nodes() {
        if node.cpus().is_empty() || !node.has_memory() {
            continue;
        }
        let (id, cpus) = (node.id(), node.cpus().clone());
        in_thread(move || {
            let before = sched::thread_cpus().unwrap();
            let policy_before = mempolicy();
            {
                let _g = sched::pin_to_node(id).unwrap();
                assert_eq!(current_node().unwrap(), id);
                assert_eq!(sched::thread_cpus().unwrap(), cpus);
                assert_eq!(mempolicy(), (sysmem::MPOL_BIND, 1 << id.get()));
                // Fresh pages first touched now land on the node. (A Vec
                // would not prove it: the allocator may hand back pages
                // touched earlier, elsewhere.)
                let len = 1 << 20;
                let rw = libc::PROT_READ | libc::PROT_WRITE;
                let p = sysmem::mmap_anonymous(len, rw, 0).unwrap();
                // SAFETY: fresh private mapping of `len` bytes, ours alone.
                unsafe { std::ptr::write_bytes(p.as_ptr(), 7, len) };
                let placement = mem::locate(p.as_ptr(), len).unwrap();
                assert!(placement.is_all_on(id), "{placement}");
                // SAFETY: nothing references the mapping any more.
                unsafe { sysmem::munmap(p, len) }.unwrap();
            }
            assert_eq!(sched::thread_cpus().unwrap(), before);
            assert_eq!(mempolicy(), policy_before);
        });
        pinned_nodes += 1;
    }
    if common::expected_nodes().is_some_and(|n| n > 1) {
        assert!(pinned_nodes >= 2, "pinned to only {pinned_nodes} node(s)");
    }
}

#[test]
fn pin_to_each_cpu_and_restore() {
    let _l = lock();
    let topo = common::topology();
    for cpu in topo.online_cpus().iter() {
        let node = topo.node_of_cpu(cpu).unwrap();
        let has_memory = topo.node(node).unwrap().has_memory();
        in_thread(move || {
            let before = sched::thread_cpus().unwrap();
            {
                let _g = Pin::cpu(cpu).bind_memory(has_memory).apply().unwrap();
                assert_eq!(current_cpu().unwrap(), cpu);
                assert_eq!(current_node().unwrap(), node);
            }
            assert_eq!(sched::thread_cpus().unwrap(), before);
        });
    }
}

#[test]
fn absent_node_and_cpu_are_typed_errors() {
    let _l = lock();
    let topo = common::topology();
    let err = sched::pin_to_node(common::absent_node(&topo)).unwrap_err();
    assert!(matches!(err, SchedError::Topology(_)), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let absent_cpu = CpuId::new(topo.online_cpus().iter().last().unwrap().get() + 1);
    let err = sched::pin_to_cpu(absent_cpu).unwrap_err();
    assert!(err.to_string().contains("not online"), "{err}");
    // Nothing changed.
    in_thread(|| {
        let before = sched::thread_cpus().unwrap();
        let _ = sched::pin_to_node(NodeId::new(999));
        assert_eq!(sched::thread_cpus().unwrap(), before);
    });
}

#[test]
fn cpus_outside_the_process_allowed_set_are_refused() {
    let _l = lock();
    let topo = common::topology();
    let online = topo.online_cpus().clone();
    let first = online.first().unwrap();
    let other = online.iter().nth(1).expect("this test needs two CPUs");
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let main_before = syssched::sched_getaffinity(pid).unwrap();
    let only_first: CpuSet = [first].into_iter().collect();
    syssched::sched_setaffinity(pid, &only_first.to_mask()).unwrap();
    assert_eq!(sched::refresh_allowed_cpus().unwrap(), only_first);
    let result = in_thread(move || sched::pin_to_cpu(other).map(drop));
    let ok_first = in_thread(move || sched::pin_to_cpu(first).map(drop));
    syssched::sched_setaffinity(pid, &main_before).unwrap();
    sched::refresh_allowed_cpus().unwrap();
    match result {
        Err(SchedError::NotAllowed {
            outside, allowed, ..
        }) => {
            assert_eq!(outside, [other].into_iter().collect());
            assert_eq!(allowed, only_first);
        }
        other => panic!("expected NotAllowed, got {other:?}"),
    }
    ok_first.unwrap();
}

#[test]
fn guard_restores_on_panic() {
    let _l = lock();
    in_thread(|| {
        let before = sched::thread_cpus().unwrap();
        let policy = mempolicy();
        let r = std::panic::catch_unwind(|| {
            let _g = sched::pin_to_node(0).unwrap();
            panic!("inside the pinned region");
        });
        assert!(r.is_err());
        assert_eq!(sched::thread_cpus().unwrap(), before);
        assert_eq!(mempolicy(), policy);
    });
}

#[test]
fn cpuless_and_memoryless_nodes_are_refused_with_reasons() {
    let _l = lock();
    let topo = common::topology();
    for node in topo.nodes() {
        if node.cpus().is_empty() {
            let err = sched::pin_to_node(node.id()).unwrap_err();
            assert!(matches!(err, SchedError::NoCpus { .. }), "{err:?}");
        } else if !node.has_memory() {
            let err = sched::pin_to_node(node.id()).unwrap_err();
            assert!(matches!(err, SchedError::MemorylessNode { .. }), "{err:?}");
            let id = node.id();
            in_thread(move || {
                let _g = Pin::node(id).bind_memory(false).apply().unwrap();
                assert_eq!(current_node().unwrap(), id);
            });
        }
    }
}

#[test]
fn groups_run_where_each_policy_says() {
    let _l = lock();
    let topo = common::topology();
    let report = |i: usize| (i, current_cpu().unwrap(), current_node().unwrap());
    // Node: every thread on node 0's CPUs.
    let g = sched::spawn_group(3, ThreadPlacement::Node(NodeId::new(0)), report).unwrap();
    for r in g.join() {
        assert_eq!(r.unwrap().2, NodeId::new(0));
    }
    // Cpu: every thread on that CPU.
    let last = topo.online_cpus().iter().last().unwrap();
    let node_of_last = topo.node_of_cpu(last).unwrap();
    if topo.node(node_of_last).unwrap().has_memory() {
        let g = sched::spawn_group(2, ThreadPlacement::Cpu(last), report).unwrap();
        for r in g.join() {
            assert_eq!(r.unwrap().1, last);
        }
    }
    // Compact and Scatter: one CPU each, on nodes with memory.
    let usable: Vec<(NodeId, Vec<CpuId>)> = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory() && !n.cpus().is_empty())
        .map(|n| (n.id(), n.cpus().iter().collect()))
        .collect();
    let all: Vec<CpuId> = usable.iter().flat_map(|(_, c)| c.clone()).collect();
    let g = sched::spawn_group(all.len(), ThreadPlacement::Compact, report).unwrap();
    let ran: Vec<_> = g.join().into_iter().map(|r| r.unwrap()).collect();
    for (i, cpu, _) in &ran {
        assert_eq!(*cpu, all[*i], "compact thread {i}");
    }
    let g = sched::spawn_group(usable.len(), ThreadPlacement::Scatter, report).unwrap();
    let nodes: Vec<NodeId> = g.join().into_iter().map(|r| r.unwrap().2).collect();
    assert_eq!(nodes, usable.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    if common::expected_nodes().is_some_and(|n| n > 1) {
        assert!(nodes.len() >= 2, "scatter used only {nodes:?}");
    }
    // More threads than CPUs: refused, and no thread ran.
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&ran);
    let err = sched::spawn_group(all.len() + 1, ThreadPlacement::Compact, move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
    .unwrap_err();
    assert!(matches!(err, SchedError::Unsatisfiable { .. }), "{err:?}");
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    let err = sched::spawn_group(1, ThreadPlacement::Node(common::absent_node(&topo)), report)
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn plans_and_node_checks_agree_with_apply_and_change_nothing() {
    let topo = common::topology();
    let before = (sched::thread_cpus().unwrap(), mempolicy());
    let absent = common::absent_node(&topo);
    for node in topo
        .node_ids()
        .chain([absent, NodeId::new(u32::MAX)])
        .chain([NodeId::new(0), NodeId::new(1)])
    {
        let planned = Pin::node(node).plan();
        let applied = in_thread(move || Pin::node(node).apply().map(|_| ()));
        assert_eq!(
            planned.is_ok(),
            applied.is_ok(),
            "node {node}: {planned:?} {applied:?}"
        );
        if let (Err(p), Err(a)) = (&planned, &applied) {
            assert_eq!(p.to_string(), a.to_string());
        }
        if let Ok((cpus, mem_node)) = &planned {
            assert_eq!(*cpus, topo.node(node).unwrap().allowed_cpus().unwrap());
            assert_eq!(*mem_node, Some(node));
        }
        let memory_ok = topo.node(node).is_ok_and(|n| n.memory_allowed().unwrap());
        assert_eq!(mem::check_node(node).is_ok(), memory_ok, "node {node}");
        if !memory_ok {
            let e = mem::check_node(node).unwrap_err().to_string();
            assert!(e.contains(&format!("node {node}")), "{e}");
        }
    }
    for cpu in [0, u32::MAX] {
        let planned = Pin::cpu(CpuId::new(cpu)).bind_memory(false).plan();
        assert_eq!(planned.is_ok(), cpu == 0, "{planned:?}");
    }
    assert_eq!((sched::thread_cpus().unwrap(), mempolicy()), before);
}
