//! `NodeLocal` as the program's `#[global_allocator]`: std-heavy work
//! (threads, `Vec`, `String`, `HashMap`, cross-thread frees, reallocation
//! growth, hostile layouts), placement proved with `move_pages` for
//! threads pinned to every node, `strict` ending in the allocation-error
//! message (in a child process) and `nearest` falling back, counted.
//!
//! The binary's allocator is `NodeLocal::nearest()` (a test thread may run
//! on a memoryless node of the guest), or `NodeLocal::strict()` when the
//! environment says `NUMAKIT_TEST_POLICY=strict` (the child processes).
//! Both share the process's node heaps, so the choice only changes what
//! happens on an exhausted node.

mod common;

use numakit::mem::{self, NodeLocal, NodeLocalStats};
use numakit::sched;
use numakit::NodeId;
use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeSet, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::Duration;

static STRICT: NodeLocal = NodeLocal::strict();
static NEAREST: NodeLocal = NodeLocal::nearest();
static QUIET: NodeLocal = NodeLocal::strict().quiet();

/// 0: not read yet, 1: strict, 2: nearest, 3: strict and quiet.
static POLICY: AtomicU8 = AtomicU8::new(0);

struct TestAlloc;

impl TestAlloc {
    #[inline]
    fn pick(&self) -> &'static NodeLocal {
        let mut p = POLICY.load(Ordering::Relaxed);
        if p == 0 {
            // SAFETY: getenv reads the environment without allocating; no
            // thread changes the environment in this binary.
            let v = unsafe { libc::getenv(c"NUMAKIT_TEST_POLICY".as_ptr()) };
            // SAFETY: a non-null getenv result is a NUL-terminated string.
            let v = (!v.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(v) });
            p = match v {
                Some(v) if v == c"strict" => 1,
                Some(v) if v == c"quiet" => 3,
                _ => 2,
            };
            POLICY.store(p, Ordering::Relaxed);
        }
        match p {
            1 => &STRICT,
            3 => &QUIET,
            _ => &NEAREST,
        }
    }
}

// SAFETY: forwards every call to a NodeLocal; blocks of one are freed by
// the other correctly (they share the node heaps), and the choice is made
// once anyway.
unsafe impl GlobalAlloc for TestAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.pick().alloc(layout) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.pick().dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.pick().realloc(p, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: TestAlloc = TestAlloc;

const PAGE: usize = 4096;
/// The child process's work, named by this variable.
const CHILD: &str = "NUMAKIT_NODE_LOCAL_CHILD";

fn nodes_with_memory_and_cpus(topo: &numakit::Topology) -> Vec<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| n.has_memory() && !n.cpus().is_empty())
        .map(|n| n.id())
        .collect()
}

/// Every page holding one of `addrs` is on `node`; returns the pages.
fn assert_pages_on(addrs: impl IntoIterator<Item = usize>, node: NodeId, what: &str) -> usize {
    let pages: BTreeSet<usize> = addrs.into_iter().map(|a| a / PAGE * PAGE).collect();
    for &p in &pages {
        let here = mem::locate(p as *const u8, 1).unwrap();
        assert!(here.is_all_on(node), "{what}: {here}, expected node {node}");
    }
    pages.len()
}

/// `(MemTotal, MemFree + Inactive(file))` of the node, as the heap reads
/// them.
fn node_memory(node: NodeId) -> (u64, u64) {
    let text =
        std::fs::read_to_string(format!("/sys/devices/system/node/node{node}/meminfo")).unwrap();
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.contains(name)).unwrap();
        let kb: u64 = line
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        kb * 1024
    };
    (
        field(" MemTotal:"),
        field(" MemFree:") + field(" Inactive(file):"),
    )
}

fn reserve(total: u64) -> u64 {
    (64u64 << 20).max(total / 32)
}

/// Run `f` in a thread; fail the test if it has not finished in `secs`.
fn watchdog<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the work did not finish in time (deadlock?) or panicked")
}

#[test]
fn std_heavy_work_threads_vec_string_hashmap_and_cross_thread_frees() {
    let _topo = common::topology();
    watchdog(300, || {
        let (tx, rx) = mpsc::channel::<(Box<[u64; 16]>, String, Vec<u32>)>();
        let producers: Vec<_> = (0..4u64)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
                    for i in 0..5_000u64 {
                        map.entry(format!("k{}", i % 700)).or_default().push(i * t);
                        if i % 10 == 0 {
                            let v: Vec<u32> = (0..(i % 300) as u32).collect();
                            tx.send((Box::new([i; 16]), format!("{t}:{i}"), v)).unwrap();
                        }
                    }
                    assert_eq!(map.len(), 700);
                    map.values().map(Vec::len).sum::<usize>()
                })
            })
            .collect();
        drop(tx);
        // The consumer frees what the producers allocated.
        let consumer = std::thread::spawn(move || {
            let mut n = 0u64;
            for (b, s, v) in rx {
                assert!(b.iter().all(|&x| x == b[0]));
                assert!(s.contains(':'));
                assert!(v.iter().enumerate().all(|(i, &x)| i as u32 == x));
                n += 1;
            }
            n
        });
        for p in producers {
            assert_eq!(p.join().unwrap(), 5_000);
        }
        assert_eq!(consumer.join().unwrap(), 4 * 500);

        // Reallocation growth across the small/large boundary, contents kept.
        let mut v: Vec<u64> = Vec::new();
        for i in 0..(1u64 << 20) {
            v.push(i);
        }
        assert!(v.iter().enumerate().all(|(i, &x)| i as u64 == x));
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v, (0..10).collect::<Vec<u64>>());
        let mut s = String::new();
        for i in 0..100_000 {
            s.push_str(if i % 2 == 0 { "ab" } else { "c" });
        }
        assert_eq!(s.len(), 150_000);
        // Zero-sized values and empty collections.
        let units: Vec<()> = vec![(); 1_000_000];
        assert_eq!(units.len(), 1_000_000);
        let empty: Vec<u8> = Vec::with_capacity(0);
        assert_eq!(empty.capacity(), 0);
        let zst = Box::new(());
        drop(zst);
        let nested: Vec<Vec<String>> = (0..200)
            .map(|i| (0..i).map(|j| j.to_string()).collect())
            .collect();
        assert_eq!(nested[199].len(), 199);
    });
    let stats = NodeLocal::stats();
    assert!(!stats.nodes.is_empty(), "{stats}");
    assert!(
        stats.nodes.iter().any(|n| n.bytes_in_use() > 0),
        "the test's own allocations are in a heap:\n{stats}"
    );
}

#[test]
fn hostile_layouts_get_null_or_a_valid_block_never_a_crash() {
    let _topo = common::topology();
    let layouts = [
        // Too large to map at all once rounded: null without a message.
        Layout::from_size_align(isize::MAX as usize - 4095, 4096).unwrap(),
        Layout::from_size_align(isize::MAX as usize, 1).unwrap(),
        // Larger than any node: null (the node cannot give it).
        Layout::from_size_align(1 << 62, 8).unwrap(),
        Layout::from_size_align(1 << 50, 1 << 20).unwrap(),
        // Odd alignments: served, aligned, or null.
        Layout::from_size_align(1, 1).unwrap(),
        Layout::from_size_align(1, 1 << 12).unwrap(),
        Layout::from_size_align(3, 1 << 13).unwrap(),
        Layout::from_size_align(1, 1 << 21).unwrap(),
        Layout::from_size_align(32 << 10, 16).unwrap(),
        Layout::from_size_align((32 << 10) + 1, 16).unwrap(),
        Layout::from_size_align(4095, 2048).unwrap(),
        Layout::from_size_align(1, 1 << 29).unwrap(),
    ];
    for layout in layouts {
        // SAFETY: non-zero sizes; freed with the same layout.
        let p = unsafe { std::alloc::alloc(layout) };
        if layout.size() >= 1 << 50 {
            assert!(p.is_null(), "{layout:?} cannot be served");
            continue;
        }
        if p.is_null() {
            // Only acceptable for the giant alignment (virtual space).
            assert!(layout.align() >= 1 << 29, "{layout:?}");
            continue;
        }
        assert_eq!(p as usize % layout.align(), 0, "{layout:?}");
        // SAFETY: the block is valid for its size.
        unsafe {
            p.write_bytes(0x3c, layout.size());
            assert_eq!(*p.add(layout.size() - 1), 0x3c);
            std::alloc::dealloc(p, layout);
        }
    }
    // Growing a block to an impossible size: null, the old block intact.
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: a valid layout.
    let p = unsafe { std::alloc::alloc(layout) };
    assert!(!p.is_null());
    // SAFETY: p is ours; 1 << 62 rounded to 8 does not overflow isize.
    unsafe {
        p.write_bytes(7, 100);
        let q = std::alloc::realloc(p, layout, 1 << 62);
        assert!(q.is_null());
        assert_eq!(*p.add(99), 7);
        std::alloc::dealloc(p, layout);
    }
    // The std collections' fallible paths report the failure.
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(1 << 62).is_err());
    assert!(v.try_reserve(usize::MAX).is_err());
    let mut s = String::new();
    assert!(s.try_reserve(isize::MAX as usize).is_err());
    s.push('x');
    assert_eq!(s, "x");
}

/// Threads pinned to every node allocate Vecs, Boxes, Strings and a
/// HashMap through the global allocator; `move_pages` proves every page is
/// on the thread's node. Blocks freed by a thread on another node go back
/// to their owner (remote frees) and are reused there.
#[test]
fn threads_pinned_to_each_node_get_memory_on_their_node() {
    let topo = common::topology();
    let nodes = nodes_with_memory_and_cpus(&topo);
    if common::expected_nodes().is_some_and(|n| n >= 2) {
        assert!(nodes.len() >= 2, "the guest must have 2 nodes with memory");
    }
    let mut blocks_per_node = Vec::new();
    for &node in &nodes {
        let addrs = watchdog(120, move || {
            let _pin = sched::pin_to_node(node).unwrap();
            assert_eq!(NodeLocal::current_node(), node);
            let v: Vec<u64> = (0..200_000).collect();
            let boxes: Vec<Box<[u8; 100]>> = (0..1000).map(|i| Box::new([i as u8; 100])).collect();
            let text: String = "node-local ".repeat(5000);
            let mut map: HashMap<u64, [u64; 4]> = HashMap::new();
            for i in 0..20_000 {
                map.insert(i, [i; 4]);
            }
            let mut addrs: Vec<usize> = Vec::new();
            addrs.extend(
                (0..v.len())
                    .step_by(512)
                    .map(|i| &v[i] as *const u64 as usize),
            );
            addrs.extend(boxes.iter().map(|b| b.as_ptr() as usize));
            addrs.push(text.as_ptr() as usize);
            addrs.push(text.as_ptr() as usize + text.len() - 1);
            addrs.extend(map.values().map(|x| x as *const [u64; 4] as usize));
            let pages = assert_pages_on(addrs.iter().copied(), node, "pinned thread's blocks");
            assert!(pages >= 100, "{pages}");
            // Keep 64-byte blocks alive to be freed by other nodes' threads.
            let keep: Vec<usize> = (0..256)
                .map(|i| Box::into_raw(Box::new([i as u64; 8])) as usize)
                .collect();
            keep
        });
        blocks_per_node.push((node, addrs));
    }
    // Free each node's blocks from a thread on the next node.
    for (i, (home, keep)) in blocks_per_node.into_iter().enumerate() {
        let away = nodes[(i + 1) % nodes.len()];
        let before = NodeLocal::stats()
            .node(home)
            .map_or(0, |n| n.remote_frees());
        let kept: BTreeSet<usize> = keep.iter().copied().collect();
        watchdog(60, move || {
            let _pin = sched::pin_to_node(away).unwrap();
            for p in keep {
                // SAFETY: made with Box::into_raw above, freed once.
                drop(unsafe { Box::from_raw(p as *mut [u64; 8]) });
            }
        });
        let after = NodeLocal::stats()
            .node(home)
            .map_or(0, |n| n.remote_frees());
        if away != home {
            assert!(
                after >= before + 256,
                "frees on node {away} of node {home}'s blocks are remote frees: {before} -> {after}"
            );
            // The owner hands them out again.
            let reused = watchdog(60, move || {
                let _pin = sched::pin_to_node(home).unwrap();
                let fresh: Vec<Box<[u64; 8]>> = (0..4096).map(|_| Box::new([0; 8])).collect();
                let hits = fresh
                    .iter()
                    .filter(|b| kept.contains(&(&***b as *const [u64; 8] as usize)))
                    .count();
                assert_pages_on(
                    fresh.iter().map(|b| &**b as *const [u64; 8] as usize),
                    home,
                    "reused blocks",
                );
                hits
            });
            assert!(
                reused > 0,
                "no block freed remotely came back on node {home}"
            );
        }
    }
    let stats = NodeLocal::stats();
    for &node in &nodes {
        let n = stats.node(node).expect("every node served its thread");
        assert!(n.heap.is_some() && n.allocations() > 0, "{stats}");
        assert_eq!(n.heap.as_ref().unwrap().node, node);
    }
}

#[test]
fn large_blocks_and_growing_vecs_are_on_the_threads_node() {
    let topo = common::topology();
    let nodes = nodes_with_memory_and_cpus(&topo);
    if common::expected_nodes().is_some_and(|n| n >= 2) {
        assert!(nodes.len() >= 2, "the guest must have 2 nodes with memory");
    }
    for &node in &nodes {
        watchdog(120, move || {
            let _pin = sched::pin_to_node(node).unwrap();
            // The classes above 32 KiB, their edges, and mappings past them.
            for size in [
                32 << 10,
                (32 << 10) + 1,
                200 << 10,
                1 << 20,
                (1 << 20) + 1,
                3 << 20,
            ] {
                let b = vec![7u8; size];
                assert_pages_on(
                    (0..size)
                        .step_by(PAGE)
                        .chain([size - 1])
                        .map(|i| &b[i] as *const u8 as usize),
                    node,
                    &format!("a {size}-byte block"),
                );
            }
            // A Vec grown through every class above 32 KiB, then by mremap
            // twice (past 1 MiB, a large block: 2 MiB, then 4 MiB).
            let mut v: Vec<u64> = Vec::new();
            for i in 0..(1u64 << 19) {
                v.push(i);
            }
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
            let pages = assert_pages_on(
                (0..v.len())
                    .step_by(PAGE / 8)
                    .map(|i| &v[i] as *const u64 as usize),
                node,
                "a 4 MiB Vec grown by pushes",
            );
            assert_eq!(pages, (v.len() * 8).div_ceil(PAGE));
            // A large realloc keeps the owner's node.
            let layout = Layout::from_size_align(3 << 20, 64).unwrap();
            // SAFETY: non-zero size; resized and freed below with the
            // layouts it has.
            unsafe {
                let p = std::alloc::alloc(layout);
                assert!(!p.is_null());
                p.write_bytes(5, 3 << 20);
                let q = std::alloc::realloc(p, layout, 9 << 20);
                assert!(!q.is_null());
                assert!(std::slice::from_raw_parts(q, 3 << 20)
                    .iter()
                    .all(|&b| b == 5));
                q.add(3 << 20).write_bytes(6, 6 << 20);
                let placed = mem::locate(q, 9 << 20).unwrap();
                assert!(placed.is_all_on(node), "grown block: {placed}");
                std::alloc::dealloc(q, Layout::from_size_align(9 << 20, 64).unwrap());
            }
        });
    }
}

/// Run this binary again, pinned (the spawning thread's affinity is
/// inherited) to `node`, with `NUMAKIT_TEST_POLICY` and the child work
/// named; returns the status and stderr.
fn run_child(
    node: Option<NodeId>,
    cpu: Option<numakit::CpuId>,
    policy: &str,
    work: &str,
) -> (std::process::ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let policy = policy.to_string();
    let work = work.to_string();
    watchdog(300, move || {
        let _pin = match (node, cpu) {
            (Some(n), _) => Some(sched::pin_to_node(n).unwrap()),
            (None, Some(c)) => Some(sched::Pin::cpu(c).bind_memory(false).apply().unwrap()),
            (None, None) => None,
        };
        let out = Command::new(exe)
            .args(["--exact", "child_work", "--nocapture", "--test-threads=1"])
            .env("NUMAKIT_TEST_POLICY", policy)
            .env(CHILD, work)
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
}

/// The work of the child processes (does nothing in a normal run).
#[test]
fn child_work() {
    let Ok(work) = std::env::var(CHILD) else {
        return;
    };
    let node = NodeLocal::current_node();
    match work.as_str() {
        // One request larger than the node's whole memory.
        "oversize" => {
            let (total, _) = node_memory(node);
            let v: Vec<u8> = Vec::with_capacity(total as usize + (1 << 30));
            println!("unexpectedly served {}", v.capacity());
        }
        // Fill the node with 16 MiB blocks until it has no more.
        "exhaust" => {
            let (total, _) = node_memory(node);
            let mut held: Vec<Vec<u8>> = Vec::new();
            for _ in 0..(total >> 24) + 16 {
                let mut v = vec![0u8; 16 << 20];
                v[4096] = 1;
                held.push(v);
            }
            println!("unexpectedly held {} blocks", held.len());
        }
        // A few allocations on whatever node the child runs on.
        "small" => {
            let v: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
            println!("{}", v.len());
        }
        other => panic!("unknown child work {other}"),
    }
    std::process::exit(0);
}

fn assert_strict_abort(status: std::process::ExitStatus, stderr: &str, node: NodeId, why: &str) {
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "the allocation-error handler aborts ({status}); stderr:\n{stderr}"
    );
    let line = format!("numakit: NodeLocal::strict(): node {node} cannot give ");
    assert!(stderr.contains(&line), "{line:?} not in:\n{stderr}");
    assert!(stderr.contains(why), "{why:?} not in:\n{stderr}");
    assert!(
        stderr.contains("nothing is taken from another node"),
        "{stderr}"
    );
    assert!(stderr.contains("memory allocation of"), "{stderr}");
}

#[test]
fn strict_on_a_node_that_cannot_give_the_request_ends_in_the_allocation_error_message() {
    let topo = common::topology();
    for node in nodes_with_memory_and_cpus(&topo) {
        let (status, stderr) = run_child(Some(node), None, "strict", "oversize");
        assert_strict_abort(status, &stderr, node, "bytes free on the node");
    }
    // Quiet: the null is the caller's to report; no line of numakit's.
    for node in nodes_with_memory_and_cpus(&topo) {
        let (status, stderr) = run_child(Some(node), None, "quiet", "oversize");
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{stderr}");
        assert!(stderr.contains("memory allocation of"), "{stderr}");
        assert!(!stderr.contains("numakit:"), "{stderr}");
    }
    // The same child under `nearest` on a one-node machine: no other node
    // can give it either.
    if topo.num_nodes() == 1 {
        let node = topo.node_ids().next().unwrap();
        let (status, stderr) = run_child(Some(node), None, "nearest", "oversize");
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{stderr}");
        assert!(
            stderr.contains("NodeLocal::nearest(): node 0 cannot give")
                && stderr.contains("no other node could give it either"),
            "{stderr}"
        );
    }
}

#[test]
#[ignore = "vm-only: fills a node of the guest"]
fn strict_on_an_exhausted_node_ends_in_the_allocation_error_message_not_the_oom_killer() {
    let topo = common::multi_node_topology();
    let nodes = nodes_with_memory_and_cpus(&topo);
    let node = *nodes.last().unwrap();
    let (status, stderr) = run_child(Some(node), None, "strict", "exhaust");
    assert_strict_abort(status, &stderr, node, "bytes free on the node");
}

#[test]
#[ignore = "vm-only: needs two nodes with memory"]
fn nearest_falls_back_to_the_next_node_by_distance_and_counts_it() {
    let topo = common::multi_node_topology();
    let nodes = nodes_with_memory_and_cpus(&topo);
    let home = *nodes.last().unwrap();
    let expected = topo
        .nodes()
        .iter()
        .filter(|n| n.has_memory() && n.id() != home)
        .min_by_key(|n| (topo.distance(home, n.id()).unwrap(), n.id()))
        .unwrap()
        .id();
    watchdog(300, move || {
        let _pin = sched::pin_to_node(home).unwrap();
        // Leave 16 MiB above the node's reserve, then ask for 48 MiB.
        let (total, available) = node_memory(home);
        let fill = (available - reserve(total) - (16 << 20)) as usize;
        let filler: Vec<u8> = Vec::with_capacity(fill);
        let before: NodeLocalStats = NodeLocal::stats();
        let big: Vec<u8> = vec![1u8; 48 << 20];
        let after = NodeLocal::stats();
        let here = mem::locate(big.as_ptr(), big.len()).unwrap();
        assert!(
            here.is_all_on(expected),
            "node {home} was full: the block should be on node {expected}: {here}"
        );
        let f = |s: &NodeLocalStats| {
            s.node(home)
                .map_or((0, 0), |n| (n.fallbacks, n.fallback_bytes))
        };
        let (b, bb) = f(&before);
        let (a, ab) = f(&after);
        assert!(a > b, "the fallback is counted:\n{after}");
        assert!(ab >= bb + (48 << 20), "and its bytes:\n{after}");
        assert!(after.to_string().contains("fallbacks"));
        drop(big);
        drop(filler);
    });
}

#[test]
fn memoryless_nodes_are_exhausted_for_strict_and_a_counted_fallback_for_nearest() {
    let topo = common::topology();
    let memoryless: Vec<_> = topo
        .nodes()
        .iter()
        .filter(|n| !n.has_memory() && !n.cpus().is_empty())
        .map(|n| (n.id(), n.cpus().iter().next().unwrap()))
        .collect();
    for (node, cpu) in memoryless {
        // Strict: the child dies at its first allocation on the node,
        // saying the node has no memory.
        let (status, stderr) = run_child(None, Some(cpu), "strict", "small");
        assert_strict_abort(status, &stderr, node, "the node has no memory");
        // Nearest (this process): served by another node, counted.
        let before = NodeLocal::stats().node(node).map_or(0, |n| n.fallbacks);
        let (addr, served_on) = watchdog(60, move || {
            let _pin = sched::Pin::cpu(cpu).bind_memory(false).apply().unwrap();
            assert_eq!(NodeLocal::current_node(), node);
            let b = Box::new([9u8; 4096]);
            let a = b.as_ptr() as usize;
            let on = mem::locate(b.as_ptr(), 4096).unwrap();
            std::mem::forget(b);
            (a, on)
        });
        assert!(!served_on.is_all_on(node), "{served_on}");
        let after = NodeLocal::stats().node(node).map_or(0, |n| n.fallbacks);
        assert!(after > before, "{}", NodeLocal::stats());
        // SAFETY: made above as a Box<[u8; 4096]>, leaked, freed once.
        drop(unsafe { Box::from_raw(addr as *mut [u8; 4096]) });
    }
}

// ---- operation sequences against a model -----------------------------

mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    pub(super) enum Op {
        Alloc {
            size: usize,
            align_log: u32,
        },
        Free(usize),
        Realloc(usize, usize),
        /// Give the block to the thread that frees on another node.
        Hand(usize),
    }

    fn size() -> impl Strategy<Value = usize> {
        prop_oneof![
            4 => 1usize..=64,
            3 => 65usize..=1024,
            2 => 1025usize..=(32 << 10),
            // The classes above 32 KiB (to 1 MiB), their edges and the blocks
            // past them, which have mappings of their own (resized by mremap).
            2 => (32usize << 10) + 1..=(1 << 20),
            1 => proptest::sample::select(vec![
                32usize << 10,
                (32 << 10) + 1,
                1 << 20,
                (1 << 20) + 1,
                (2 << 20) + 1,
            ]),
            1 => (1usize << 20) + 1..=(3 << 20),
        ]
    }

    pub(super) fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (size(), prop_oneof![6 => 0u32..=4, 1 => 5u32..=14])
                .prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
            3 => any::<usize>().prop_map(Op::Free),
            2 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Realloc(i, s)),
            1 => any::<usize>().prop_map(Op::Hand),
        ]
    }

    #[derive(Clone, Copy, Debug)]
    pub(super) struct Live {
        pub(super) addr: usize,
        pub(super) layout: Layout,
        pub(super) fill: u8,
    }

    /// Every byte of the block still holds its fill.
    pub(super) fn intact(b: &Live) -> bool {
        // SAFETY: a live block of `layout.size()` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(b.addr as *const u8, b.layout.size()) };
        bytes.iter().all(|&x| x == b.fill)
    }

    fn fill(b: &Live) {
        // SAFETY: a live block of `layout.size()` bytes.
        unsafe { (b.addr as *mut u8).write_bytes(b.fill, b.layout.size()) };
    }

    fn no_overlap(live: &[Live]) -> Result<(), TestCaseError> {
        let mut by_addr = BTreeMap::new();
        for b in live {
            by_addr.insert(b.addr, b.addr + b.layout.size());
        }
        let mut end = 0;
        for (&start, &stop) in &by_addr {
            prop_assert!(start >= end, "blocks overlap at {start:#x}");
            end = stop;
        }
        prop_assert_eq!(by_addr.len(), live.len(), "an address handed out twice");
        Ok(())
    }

    /// Run `ops` through the global allocator; blocks handed over are freed
    /// by a thread on `away`.
    pub(super) fn run(ops: &[Op], away: Option<NodeId>) -> Result<(), TestCaseError> {
        let mut live: Vec<Live> = Vec::new();
        let mut handed: Vec<Live> = Vec::new();
        let mut next_fill = 1u8;
        for op in ops {
            match *op {
                Op::Alloc { size, align_log } => {
                    let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                    // SAFETY: non-zero size.
                    let p = unsafe { std::alloc::alloc(layout) };
                    prop_assert!(!p.is_null(), "{layout:?}");
                    prop_assert_eq!(p as usize % layout.align(), 0);
                    next_fill = next_fill.wrapping_add(1).max(1);
                    let b = Live {
                        addr: p as usize,
                        layout,
                        fill: next_fill,
                    };
                    fill(&b);
                    live.push(b);
                }
                Op::Free(i) if !live.is_empty() => {
                    let b = live.swap_remove(i % live.len());
                    prop_assert!(intact(&b), "{b:?} changed while live");
                    // SAFETY: allocated with this layout, freed once.
                    unsafe { std::alloc::dealloc(b.addr as *mut u8, b.layout) };
                }
                Op::Realloc(i, new_size) if !live.is_empty() => {
                    let i = i % live.len();
                    let b = live[i];
                    prop_assert!(intact(&b));
                    // SAFETY: live block, non-zero new size within isize.
                    let q = unsafe { std::alloc::realloc(b.addr as *mut u8, b.layout, new_size) };
                    prop_assert!(!q.is_null());
                    prop_assert_eq!(q as usize % b.layout.align(), 0);
                    let kept = b.layout.size().min(new_size);
                    // SAFETY: the new block holds `new_size` bytes.
                    let head = unsafe { std::slice::from_raw_parts(q, kept) };
                    prop_assert!(head.iter().all(|&x| x == b.fill), "realloc lost contents");
                    let nb = Live {
                        addr: q as usize,
                        layout: Layout::from_size_align(new_size, b.layout.align()).unwrap(),
                        fill: b.fill,
                    };
                    fill(&nb);
                    live[i] = nb;
                }
                Op::Hand(i) if !live.is_empty() => {
                    handed.push(live.swap_remove(i % live.len()));
                }
                _ => {}
            }
            no_overlap(&live)?;
        }
        let handed_ok = watchdog(60, move || {
            let _pin = away.map(|n| sched::pin_to_node(n).unwrap());
            let ok = handed.iter().all(intact);
            for b in handed {
                // SAFETY: allocated by the test thread, freed once, here.
                unsafe { std::alloc::dealloc(b.addr as *mut u8, b.layout) };
            }
            ok
        });
        prop_assert!(handed_ok, "a block handed to another thread changed");
        for b in live {
            prop_assert!(intact(&b));
            // SAFETY: allocated with this layout, freed once.
            unsafe { std::alloc::dealloc(b.addr as *mut u8, b.layout) };
        }
        Ok(())
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(common::cases(48)))]

    /// Random alloc / free / realloc / hand-over sequences: blocks are
    /// aligned, never overlap, keep their contents, and blocks freed by a
    /// thread on another node (the next node with memory, where there is
    /// one) are freed correctly.
    #[test]
    fn operation_sequences_match_the_model(
        ops in proptest::collection::vec(model::op(), 1..250)
    ) {
        let topo = common::topology();
        let nodes = nodes_with_memory_and_cpus(&topo);
        let away = nodes.get(1).copied();
        let _pin = sched::pin_to_node(nodes[0]).unwrap();
        model::run(&ops, away)?;
    }
}

#[test]
fn stats_lookups_take_any_node_id() {
    let _topo = common::topology();
    let v = vec![1u8; 1000];
    let stats = NodeLocal::stats();
    assert!(stats.node(NodeId::new(u32::MAX)).is_none());
    assert!(stats.node(NodeId::new(1024)).is_none());
    let node = NodeLocal::current_node();
    assert!(stats.node(node).is_some(), "{stats}");
    // The allocation-free reading: every id answers, ids without a heap 0.
    let holder = NodeLocal::segment_node(v.as_ptr()).expect("a 1000-byte block is in a segment");
    assert!(NodeLocal::bytes_in_use(holder) >= 1000);
    for id in [1023, 1024, 1025, u32::MAX - 1, u32::MAX] {
        assert_eq!(NodeLocal::bytes_in_use(NodeId::new(id)), 0, "node {id}");
    }
    for n in 0..2u32 {
        let id = NodeId::new(n);
        let expect = stats.node(id).map_or(0, |s| s.bytes_in_use());
        assert_eq!(NodeLocal::bytes_in_use(id) == 0, expect == 0, "node {n}");
    }
    assert_eq!(
        stats.fallbacks(),
        stats.nodes.iter().map(|n| n.fallbacks).sum::<u64>()
    );
    let table = stats.to_string();
    assert_eq!(table.lines().count(), stats.nodes.len() + 1, "{table}");
    assert_eq!(
        NodeLocal::strict().policy(),
        numakit::mem::OnExhausted::Strict
    );
    assert_eq!(
        NodeLocal::nearest().policy(),
        numakit::mem::OnExhausted::Nearest
    );
    assert_eq!(NodeLocal::default(), NodeLocal::strict());
    drop(v);
}

/// A `fork` while other threads allocate and free (refills and flushes
/// take heap locks) gives a child that can allocate on every path: the
/// heaps' fork handlers keep any heap lock from being inherited held, so
/// the child never deadlocks on one its parent's other threads held.
#[test]
fn a_child_forked_while_threads_allocate_can_allocate() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    // Past a thread cache's limit, so refills and flushes
                    // (locked) happen all the time; a large block now and
                    // then (the segments' lock).
                    let blocks: Vec<Vec<u8>> = (0..600)
                        .map(|k| vec![1u8; 16 + (k + i) % 48 * 16])
                        .collect();
                    kept.extend(blocks.into_iter().step_by(7));
                    if kept.len() > 5000 {
                        kept.clear();
                        kept.push(vec![0u8; 2 << 20]);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // Fewer rounds in the guest, where each fork is slow under emulation
    // (the threads still take heap locks all the time).
    let rounds = if common::in_vm() { 30 } else { 150 };
    let result = (0..rounds).try_for_each(|round| {
        fork_child_within(round, Duration::from_secs(20), || {
            let blocks: Vec<Vec<u8>> = (0..3000).map(|k| vec![2u8; 16 + k % 60 * 16]).collect();
            let big = vec![3u8; 3 << 20];
            blocks.iter().all(|b| b[0] == 2) && big[big.len() - 1] == 3
        })
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    result.unwrap();
}

/// Fork; the child runs `child` and leaves with `_exit` (0 when it
/// returned `true`); the parent waits for it at most `limit`. `Err` names
/// the round when the child hung (it is killed) or failed.
fn fork_child_within(
    round: u32,
    limit: Duration,
    child: impl FnOnce() -> bool,
) -> Result<(), String> {
    // SAFETY: the child only runs `child` (allocations, frees, heap locks)
    // and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = child();
        // SAFETY: ends the child without running the parent's exit code.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let start = std::time::Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if start.elapsed() > limit {
            // SAFETY: our own child, still running; reaped after.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(format!(
                "round {round}: a forked child hung in the allocator"
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!(
            "round {round}: the child failed (status {status:#x})"
        ))
    }
}

/// Two threads that fork at the same time, while others hold heap locks
/// (a shared `NodeHeap` refilled, flushed and trimmed all the time): each
/// child takes every lock of that heap (`trim`) and allocates. glibc runs
/// the prepare handlers of two concurrent forks side by side, so the
/// second fork's parent handler must not let the other threads back into
/// the heaps while the first fork still copies the process, or that
/// child inherits a lock held by a thread it does not have.
#[test]
fn children_of_two_threads_forking_at_once_can_take_every_heap_lock() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    if !common::in_child("children_of_two_threads_forking_at_once_can_take_every_heap_lock") {
        return;
    }
    let node = NodeLocal::current_node();
    let topo = numakit::Topology::detect().unwrap();
    let node = if topo.node(node).is_ok_and(|n| n.has_memory()) {
        node
    } else {
        nodes_with_memory_and_cpus(&topo)[0]
    };
    let heap = Arc::new(mem::NodeHeap::new(node).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let (stop, heap) = (stop.clone(), heap.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    // Past the caches' limits in several classes (refills
                    // and flushes lock), then every lock at once (trim).
                    let layouts: Vec<Layout> = (0..400)
                        .map(|k| Layout::from_size_align(16 + (k + i) % 64 * 32, 16).unwrap())
                        .collect();
                    let blocks: Vec<_> = layouts
                        .iter()
                        .map(|&l| heap.try_alloc_layout(l).unwrap())
                        .collect();
                    for (p, l) in blocks.into_iter().zip(layouts) {
                        // SAFETY: allocated above with `l`, freed once.
                        unsafe { heap.dealloc(p, l) };
                    }
                    let _ = heap.trim();
                    let v: Vec<Vec<u8>> = (0..200).map(|k| vec![1u8; 16 + k * 24]).collect();
                    drop(v);
                    i += 1;
                }
            })
        })
        .collect();
    let rounds = if common::in_vm() { 20 } else { 80 };
    let forkers: Vec<_> = (0..2)
        .map(|_| {
            let heap = heap.clone();
            std::thread::spawn(move || {
                (0..rounds).try_for_each(|round| {
                    fork_child_within(round, Duration::from_secs(20), || {
                        let trimmed = heap.trim().is_ok();
                        let blocks: Vec<Vec<u8>> =
                            (0..2000).map(|k| vec![2u8; 16 + k % 60 * 16]).collect();
                        trimmed && blocks.iter().all(|b| b[0] == 2)
                    })
                })
            })
        })
        .collect();
    let results: Vec<Result<(), String>> = forkers.into_iter().map(|f| f.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    for r in results {
        r.unwrap();
    }
}

/// The destructor of a `pthread` key made after the heaps' own exit hook
/// runs after it, when the thread's caches (and its home cache) are gone:
/// what it allocates and frees — its own blocks and blocks the thread made
/// while it lived — takes the cache-less paths, intact.
extern "C" fn key_destructor_allocates(arg: *mut libc::c_void) {
    // SAFETY: the value set below: a leaked `Box<Vec<String>>`.
    let kept = unsafe { Box::from_raw(arg.cast::<Vec<String>>()) };
    let ok = kept
        .iter()
        .enumerate()
        .all(|(i, s)| *s == format!("kept {i}"));
    let fresh: Vec<Vec<u8>> = (0..300).map(|k| vec![k as u8; 16 + k % 40 * 8]).collect();
    let fresh_ok = fresh
        .iter()
        .enumerate()
        .all(|(k, v)| v.iter().all(|&b| b == k as u8));
    drop(fresh);
    drop(kept);
    KEY_DESTRUCTOR_RESULT.store(if ok && fresh_ok { 1 } else { 2 }, Ordering::SeqCst);
}

static KEY_DESTRUCTOR_RESULT: AtomicU8 = AtomicU8::new(0);

#[test]
fn key_destructors_that_run_after_the_exit_hook_allocate_and_free() {
    let ok = common::finishes(60, "a thread whose key destructor allocates", || {
        std::thread::spawn(|| {
            // The heaps' exit key exists by now (this thread allocated).
            let kept: Vec<String> = (0..500).map(|i| format!("kept {i}")).collect();
            let mut key: libc::pthread_key_t = 0;
            // SAFETY: a plain destructor function; the key is made once.
            let made =
                unsafe { libc::pthread_key_create(&mut key, Some(key_destructor_allocates)) };
            assert_eq!(made, 0);
            // SAFETY: a valid key; the value is freed by the destructor.
            let set = unsafe {
                libc::pthread_setspecific(key, Box::into_raw(Box::new(kept)).cast_const().cast())
            };
            assert_eq!(set, 0);
            // Keep using the fast paths until the end.
            let v: Vec<Box<u64>> = (0..2000).map(Box::new).collect();
            assert!(v.iter().enumerate().all(|(i, b)| **b == i as u64));
        })
        .join()
        .unwrap();
        KEY_DESTRUCTOR_RESULT.load(Ordering::SeqCst)
    });
    assert_eq!(
        ok, 1,
        "the key destructor saw corrupt blocks (2) or did not run (0)"
    );
}

/// Whatever path each allocation and free takes (the fast paths, refills
/// and flushes, other threads' frees, threads that exit with blocks alive,
/// a thread whose node is read again), the figures add up: once every
/// block is freed, each node's bytes in use are back where they started.
#[test]
fn bytes_in_use_return_to_their_start_once_everything_is_freed() {
    if !common::in_child("bytes_in_use_return_to_their_start_once_everything_is_freed") {
        return;
    }
    // Read without allocating: a snapshot kept on the heap would count
    // itself, and how much of it depends on how many heaps exist.
    fn in_use() -> [usize; 64] {
        std::array::from_fn(|n| NodeLocal::bytes_in_use(NodeId::new(n as u32)))
    }
    fn work() {
        let (tx, rx) = mpsc::channel::<Vec<Box<[u8]>>>();
        let threads: Vec<_> = (0..3usize)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    let mut given = Vec::new();
                    for k in 0..4000usize {
                        let size = match (k % 50, k % 500) {
                            (_, 1) => (2 << 20) + k,
                            (0, _) => 40_000 + t * 1000,
                            (n, _) => 8 + n * 24 + t,
                        };
                        let b = vec![t as u8; size].into_boxed_slice();
                        if k % 2 == 0 {
                            mine.push(b);
                        } else {
                            given.push(b);
                        }
                        if k == 2000 {
                            NodeLocal::refresh();
                        }
                        if k % 97 == 0 {
                            mine.truncate(mine.len() / 2);
                        }
                    }
                    // Freed by the main thread after this one exits.
                    tx.send(given).unwrap();
                    assert!(mine.iter().all(|b| b.iter().all(|&x| x == t as u8)));
                })
            })
            .collect();
        drop(tx);
        for t in threads {
            t.join().unwrap();
        }
        let given: Vec<Vec<Box<[u8]>>> = rx.iter().collect();
        assert_eq!(given.len(), 3);
        drop(given);
    }
    let detail = || {
        let s = NodeLocal::stats();
        let mut out = String::new();
        for n in &s.nodes {
            if let Some(h) = &n.heap {
                out += &format!(
                    "node {}: large {} in {} blocks; classes in use:",
                    n.node.get(),
                    h.large_bytes_in_use,
                    h.large_in_use
                );
                for c in h.classes.iter().filter(|c| c.in_use != 0) {
                    out += &format!(
                        " {}x{} (a {} f {} r {})",
                        c.in_use, c.block_size, c.allocations, c.frees, c.remote_frees
                    );
                }
                out += "\n";
            }
        }
        out
    };
    // Once first: one-time set-ups (heaps, thread machinery) stay.
    work();
    let before = detail();
    let start = in_use();
    for round in 0..3 {
        work();
        let now = in_use();
        if now != start {
            panic!("round {round}: bytes in use per node (by id) after everything was freed: {:?} then {:?}\nbefore:\n{before}\nafter:\n{}", &start[..4], &now[..4], detail());
        }
    }
}
