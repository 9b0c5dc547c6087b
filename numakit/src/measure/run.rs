//! The measurement itself: buffers, the pointer chase, the streams and the
//! ping-pong, each on threads pinned to one CPU.

use super::{Buffer, Handoff, MeasureError, MeasureOptions, Measurement, NodePair, Spread};
use crate::mem::{Arena, MemError, PageKind, Populate};
use crate::sched::Pin;
use crate::topology::{CpuId, NodeId, Topology};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread::{self, Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

const HUGE_2M: usize = 2 << 20;
/// Bytes of the arena beyond the two buffers: header, the handoff line,
/// alignment.
const SLACK: usize = 64 << 10;

/// One cache line of the chase: the index of the next line to load.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    next: usize,
}

/// A cache line of its own for the handoff counter.
#[repr(C, align(64))]
struct PaddedCounter(AtomicU64);

/// Measure every (CPU node, memory node) pair of this machine that this
/// process may use, and the cache-line handoff between every pair of CPU
/// nodes; see the [module docs](super) for what is measured and how.
///
/// Changes nothing in the calling thread: the measuring threads are its
/// own, pinned, and gone when it returns. Run it on an otherwise idle
/// machine: other work shows in the figures.
///
/// # Errors
/// - [`MeasureError::InvalidOption`]: an option out of range (checked
///   before anything else);
/// - [`MeasureError::NothingToMeasure`]: no node with CPUs or no node with
///   memory this process may use;
/// - [`MeasureError::Buffer`]: a memory node cannot hold the buffers now;
/// - [`MeasureError::Misplaced`]: the kernel reports a buffer's pages off
///   its node;
/// - [`MeasureError::Pin`], [`MeasureError::Spawn`]: a measuring thread
///   could not be pinned or started;
/// - [`MeasureError::Topology`]: the topology or the allowed sets could not
///   be read.
///
/// # Examples
/// ```no_run
/// use numakit::measure::{measure, MeasureOptions};
/// let m = measure(&MeasureOptions::quick())?;
/// for cell in &m.cells {
///     if let Some(ratio) = m.latency_ratio(cell.cpu_node, cell.memory_node) {
///         let slit = m.slit_distance(cell.cpu_node, cell.memory_node).unwrap_or(0);
///         println!(
///             "{} -> {}: measured {ratio:.2}, firmware {:.1}",
///             cell.cpu_node,
///             cell.memory_node,
///             f64::from(slit) / 10.0
///         );
///     }
/// }
/// // With the `serde` feature it saves and loads as JSON:
/// // serde_json::to_string(&m)? / serde_json::from_str::<Measurement>(&text)?
/// # Ok::<(), numakit::Error>(())
/// ```
pub fn measure(opts: &MeasureOptions) -> Result<Measurement, MeasureError> {
    opts.validate()?;
    let topo = Topology::current()?;
    let nodes: Vec<NodeId> = topo.node_ids().collect();
    let mut slit = Vec::with_capacity(nodes.len());
    for &from in &nodes {
        let mut row = Vec::with_capacity(nodes.len());
        for &to in &nodes {
            row.push(topo.distance(from, to)?);
        }
        slit.push(row);
    }
    let mut cpu_nodes: Vec<(NodeId, Vec<CpuId>)> = Vec::new();
    for node in topo.nodes() {
        let cpus: Vec<CpuId> = node.allowed_cpus()?.iter().collect();
        if !cpus.is_empty() {
            cpu_nodes.push((node.id(), cpus));
        }
    }
    let memory_nodes = topo.mems_allowed()?;
    if cpu_nodes.is_empty() || memory_nodes.is_empty() {
        return Err(MeasureError::NothingToMeasure {
            cpu_nodes: cpu_nodes.iter().map(|(n, _)| *n).collect(),
            memory_nodes,
        });
    }
    let llc_bytes = cpu_nodes
        .first()
        .and_then(|(_, cpus)| cpus.first())
        .and_then(|&cpu| last_level_cache(cpu));

    // One arena per memory node holds both buffers and the handoff line;
    // every page is checked to be on the node before anything is timed.
    let mut arenas = Vec::with_capacity(memory_nodes.len());
    for &node in &memory_nodes {
        arenas.push(node_arena(&topo, node, opts)?);
    }
    let mut places = Vec::with_capacity(arenas.len());
    let mut buffers = Vec::with_capacity(arenas.len());
    for (arena, hugetlb) in &arenas {
        let node = arena.node();
        let bytes = arena.capacity();
        let place = carve(arena, opts).map_err(|e| MeasureError::buffer(node, bytes, e))?;
        let proof = arena
            .verify()
            .map_err(|e| MeasureError::buffer(node, bytes, e))?;
        buffers.push(Buffer {
            node,
            bytes,
            hugetlb: *hugetlb,
            pages: page_words(arena.page_kind()),
            page_size: proof.page_size(),
            verified_pages: proof.pages(),
        });
        places.push(place);
    }

    let mut cells = Vec::new();
    for (cpu_node, cpus) in &cpu_nodes {
        for place in &mut places {
            let cpu = cpus[0];
            let latency = on_cpu(*cpu_node, cpu, || {
                let mut at = 0;
                // One untimed pass over part of the chain first: page
                // tables and the TLB in the state the timed runs leave them.
                chase(
                    place.lines,
                    opts.chase_loads.min(place.lines.len()),
                    &mut at,
                );
                (0..opts.repetitions)
                    .map(|_| {
                        let t = Instant::now();
                        chase(place.lines, opts.chase_loads, &mut at);
                        per_unit_ps(t.elapsed(), opts.chase_loads)
                    })
                    .collect::<Vec<u64>>()
            })?;
            let (read, read_write) = stream(*cpu_node, cpus, place.words, opts.repetitions)?;
            cells.push(NodePair {
                cpu_node: *cpu_node,
                memory_node: place.node,
                latency_ps: spread(&latency),
                read_mb_s: spread(&read),
                read_write_mb_s: spread(&read_write),
                bandwidth_threads: cpus.len(),
            });
        }
    }

    let mut handoffs = Vec::new();
    for (i, (a, a_cpus)) in cpu_nodes.iter().enumerate() {
        for (b, b_cpus) in &cpu_nodes[i..] {
            let from_cpu = a_cpus[0];
            let to_cpu = if a == b {
                match a_cpus.get(1) {
                    Some(&c) => c,
                    None => continue,
                }
            } else {
                b_cpus[0]
            };
            // The line lives on `a`'s memory, or the nearest memory node.
            let line_node = topo
                .nodes_by_distance(*a)?
                .into_iter()
                .find(|n| memory_nodes.contains(n))
                .unwrap_or(memory_nodes[0]);
            let Some(place) = places.iter().find(|p| p.node == line_node) else {
                continue;
            };
            let times = ping_pong(
                (*a, from_cpu),
                (*b, to_cpu),
                place.line,
                opts.handoff_round_trips,
                opts.repetitions,
            )?;
            handoffs.push(Handoff {
                from_node: *a,
                to_node: *b,
                from_cpu: from_cpu.get(),
                to_cpu: to_cpu.get(),
                line_node,
                one_way_ps: spread(&times),
            });
        }
    }

    Ok(Measurement {
        options: opts.clone(),
        nodes,
        slit,
        cpu_nodes: cpu_nodes.iter().map(|(n, _)| *n).collect(),
        memory_nodes,
        llc_bytes,
        buffers,
        cells,
        handoffs,
        debug_build: cfg!(debug_assertions),
    })
}

/// The arena on `node`: 2 MiB hugetlb pages when asked for and the pool
/// can give them, else transparent hugepages. `true` with hugetlb pages.
fn node_arena(
    topo: &Topology,
    node: NodeId,
    opts: &MeasureOptions,
) -> Result<(Arena, bool), MeasureError> {
    // Options are validated: both buffers are at most 64 GiB each.
    let bytes = opts.latency_buffer + opts.bandwidth_buffer + SLACK;
    let build = |kind| {
        Arena::builder(node)
            .capacity(bytes)
            .pages(kind)
            .populate(Populate::Now)
            .build()
    };
    let pool_has_pages = topo
        .node(node)?
        .hugepage_pool(HUGE_2M as u64)
        .is_some_and(|p| p.total() > 0);
    if opts.hugepages && pool_has_pages {
        // The pool may have been emptied since the snapshot: then the
        // arena says so and transparent hugepages are the fallback.
        if let Ok(arena) = build(PageKind::Huge2M) {
            return Ok((arena, true));
        }
    }
    build(PageKind::TransparentHuge)
        .map(|a| (a, false))
        .map_err(|e| MeasureError::buffer(node, bytes, e))
}

fn page_words(kind: PageKind) -> String {
    match kind {
        PageKind::Huge2M => "2 MiB hugetlb pages".into(),
        PageKind::Huge1G => "1 GiB hugetlb pages".into(),
        PageKind::TransparentHuge => {
            "transparent hugepages asked for (no hugetlb pool; the kernel may use base pages)"
                .into()
        }
        _ => "base pages".into(),
    }
}

/// The buffers carved from one node's arena.
struct Place<'a> {
    node: NodeId,
    /// The chase: one random cycle through every line.
    lines: &'a [Line],
    /// The streamed words.
    words: &'a mut [u64],
    /// The handoff counter.
    line: &'a AtomicU64,
}

fn carve<'a>(arena: &'a Arena, opts: &MeasureOptions) -> Result<Place<'a>, MemError> {
    let n = opts.latency_buffer / std::mem::size_of::<Line>();
    let lines = arena.try_alloc_slice_fill_with(n, |i| Line { next: i })?;
    // Sattolo's algorithm: a uniformly random permutation that is one
    // cycle through all `n` lines, so the chase visits every line.
    let mut rng = SplitMix(0x9E37_79B9_7F4A_7C15 ^ arena.node().get() as u64);
    for i in (1..n).rev() {
        let j = (rng.next() % i as u64) as usize;
        let (x, y) = (lines[i].next, lines[j].next);
        lines[i].next = y;
        lines[j].next = x;
    }
    let words = arena.try_alloc_slice_fill_with(opts.bandwidth_buffer / 8, |i| i as u64)?;
    let line = &arena.try_alloc(PaddedCounter(AtomicU64::new(0)))?.0;
    Ok(Place {
        node: arena.node(),
        lines,
        words,
        line,
    })
}

/// splitmix64: enough randomness for a permutation, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `loads` dependent loads from line `*at` on; leaves `*at` where it ended.
#[inline(never)]
fn chase(lines: &[Line], loads: usize, at: &mut usize) {
    let mut i = *at;
    for _ in 0..loads {
        // Every `next` is an index below `lines.len()`; `get` keeps that
        // from being a promise the loop relies on.
        i = lines.get(i).map_or(0, |l| l.next);
    }
    *at = black_box(i);
}

fn per_unit_ps(elapsed: Duration, units: usize) -> u64 {
    let ps = elapsed.as_nanos().saturating_mul(1000) / units.max(1) as u128;
    u64::try_from(ps).unwrap_or(u64::MAX)
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> u64 {
    let ns = elapsed.as_nanos().max(1);
    u64::try_from(bytes as u128 * 1000 / ns).unwrap_or(u64::MAX)
}

fn spread(samples: &[u64]) -> Spread {
    // Options are validated: at least one repetition.
    Spread::of(samples).unwrap_or(Spread {
        median: 0,
        min: 0,
        max: 0,
        runs: 0,
    })
}

/// The largest-level cache of `cpu` in bytes, from sysfs.
fn last_level_cache(cpu: CpuId) -> Option<u64> {
    let dir = format!("/sys/devices/system/cpu/cpu{}/cache", cpu.get());
    let mut best: Option<(u32, u64)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let read = |f: &str| std::fs::read_to_string(entry.path().join(f)).ok();
        let (Some(level), Some(size)) = (read("level"), read("size")) else {
            continue;
        };
        let Ok(level) = level.trim().parse::<u32>() else {
            continue;
        };
        let size = size.trim();
        let bytes = match size.strip_suffix('K') {
            Some(k) => k.parse::<u64>().ok().and_then(|k| k.checked_mul(1024)),
            None => match size.strip_suffix('M') {
                Some(m) => m.parse::<u64>().ok().and_then(|m| m.checked_mul(1 << 20)),
                None => size.parse::<u64>().ok(),
            },
        };
        if let Some(bytes) = bytes {
            if best.is_none_or(|(l, _)| level > l) {
                best = Some((level, bytes));
            }
        }
    }
    best.map(|(_, b)| b)
}

/// Run `f` on a thread pinned to `cpu` (memory policy untouched: the
/// buffers are bound already, and `node` may have no memory).
fn on_cpu<T: Send>(
    node: NodeId,
    cpu: CpuId,
    f: impl FnOnce() -> T + Send,
) -> Result<T, MeasureError> {
    thread::scope(|s| {
        let h = thread::Builder::new()
            .name("numakit-measure".into())
            .spawn_scoped(s, move || {
                let _pin = Pin::cpu(cpu)
                    .bind_memory(false)
                    .apply()
                    .map_err(|source| MeasureError::Pin { cpu, node, source })?;
                Ok(f())
            })
            .map_err(MeasureError::Spawn)?;
        join(h)
    })
}

fn join<T>(h: ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The start gate of a group of measuring threads: each pins itself and
/// checks in, saying whether the pin held; the coordinator opens the gate
/// once all did, or calls the run off when a thread could not be started
/// or pinned, so no thread ever waits (at the gate or at a barrier) for
/// one that does not run.
struct Gate {
    checked_in: AtomicUsize,
    pin_failed: AtomicBool,
    state: AtomicU8,
}

const WAIT: u8 = 0;
const GO: u8 = 1;
const OFF: u8 = 2;

impl Gate {
    fn new() -> Self {
        Gate {
            checked_in: AtomicUsize::new(0),
            pin_failed: AtomicBool::new(false),
            state: AtomicU8::new(WAIT),
        }
    }
    /// A thread checks in; `true` when the run goes ahead.
    fn check_in(&self, pinned: bool) -> bool {
        if !pinned {
            self.pin_failed.store(true, Ordering::Release);
        }
        self.checked_in.fetch_add(1, Ordering::AcqRel);
        loop {
            match self.state.load(Ordering::Acquire) {
                WAIT => thread::yield_now(),
                s => return s == GO,
            }
        }
    }
    /// The coordinator: wait for `spawned` check-ins, then open the gate
    /// when all were spawned (`all_spawned`) and pinned, else call it off.
    fn decide(&self, spawned: usize, all_spawned: bool) {
        while self.checked_in.load(Ordering::Acquire) < spawned {
            thread::yield_now();
        }
        let go = all_spawned && !self.pin_failed.load(Ordering::Acquire);
        self.state
            .store(if go { GO } else { OFF }, Ordering::Release);
    }
}

/// Spawn one pinned thread per `(cpu, work)`; the work runs only when
/// every thread started and pinned. Returns the works' results in order.
fn pinned_group<'s, 'e, T: Send + 's>(
    s: &'s Scope<'s, 'e>,
    node_of: impl Fn(CpuId) -> NodeId,
    works: Vec<(CpuId, Box<dyn FnOnce() -> T + Send + 's>)>,
    gate: &'s Gate,
) -> Result<Vec<T>, MeasureError> {
    let mut handles = Vec::with_capacity(works.len());
    let mut failure = None;
    for (cpu, work) in works {
        let node = node_of(cpu);
        let spawned = thread::Builder::new()
            .name("numakit-measure".into())
            .spawn_scoped(s, move || {
                let pin = Pin::cpu(cpu).bind_memory(false).apply();
                let go = gate.check_in(pin.is_ok());
                match pin {
                    Err(source) => Err(MeasureError::Pin { cpu, node, source }),
                    Ok(_pin) if go => Ok(Some(work())),
                    Ok(_) => Ok(None),
                }
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                failure = Some(MeasureError::Spawn(e));
                break;
            }
        }
    }
    // Every spawned thread checks in, pinned or not: the work runs only
    // when all are pinned.
    gate.decide(handles.len(), failure.is_none());
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        match join(h) {
            Ok(Some(r)) => results.push(r),
            Ok(None) => {}
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// When one thread's read pass and read/write pass of one repetition
/// started and ended.
struct RepTimes {
    read: (Instant, Instant),
    write: (Instant, Instant),
}

/// Read and read/write bandwidth of `cpus` streaming `words`, one share
/// per CPU, `reps` times each.
fn stream(
    node: NodeId,
    cpus: &[CpuId],
    words: &mut [u64],
    reps: usize,
) -> Result<(Vec<u64>, Vec<u64>), MeasureError> {
    let share = words.len().div_ceil(cpus.len()).max(1);
    let chunks: Vec<&mut [u64]> = words.chunks_mut(share).collect();
    let threads = chunks.len();
    let barrier = Barrier::new(threads);
    let gate = Gate::new();
    let per_thread: Vec<Vec<RepTimes>> = thread::scope(|s| {
        let barrier = &barrier;
        let works = cpus
            .iter()
            .zip(chunks)
            .map(|(&cpu, chunk)| {
                let work: Box<dyn FnOnce() -> _ + Send> = Box::new(move || {
                    (0..reps)
                        .map(|_| {
                            barrier.wait();
                            let r0 = Instant::now();
                            let sum = chunk.iter().fold(0u64, |a, &w| a.wrapping_add(w));
                            black_box(sum);
                            let r1 = Instant::now();
                            barrier.wait();
                            let w0 = Instant::now();
                            for w in chunk.iter_mut() {
                                *w = w.wrapping_add(1);
                            }
                            black_box(&mut *chunk);
                            RepTimes {
                                read: (r0, r1),
                                write: (w0, Instant::now()),
                            }
                        })
                        .collect::<Vec<_>>()
                });
                (cpu, work)
            })
            .collect();
        pinned_group(s, |_| node, works, &gate)
    })?;
    let bytes = words.len() * 8;
    let span = |rep: usize, pick: fn(&RepTimes) -> (Instant, Instant)| {
        let mut times = per_thread.iter().filter_map(|t| t.get(rep)).map(pick);
        let (mut first, mut last) = times.next()?;
        for (a, b) in times {
            first = first.min(a);
            last = last.max(b);
        }
        Some(last - first)
    };
    let mut read = Vec::with_capacity(reps);
    let mut read_write = Vec::with_capacity(reps);
    for rep in 0..reps {
        if let Some(d) = span(rep, |t| t.read) {
            read.push(mb_per_s(bytes, d));
        }
        if let Some(d) = span(rep, |t| t.write) {
            read_write.push(mb_per_s(2 * bytes, d));
        }
    }
    Ok((read, read_write))
}

/// Half the round-trip time of `round_trips` handoffs of `line` between a
/// thread on `a` and one on `b`, `reps` times.
fn ping_pong(
    a: (NodeId, CpuId),
    b: (NodeId, CpuId),
    line: &AtomicU64,
    round_trips: usize,
    reps: usize,
) -> Result<Vec<u64>, MeasureError> {
    line.store(0, Ordering::Relaxed);
    let gate = Gate::new();
    let n = round_trips as u64;
    let node_of = |cpu| if cpu == a.1 { a.0 } else { b.0 };
    let results = thread::scope(|s| {
        let pinger: Box<dyn FnOnce() -> Vec<u64> + Send> = Box::new(move || {
            let mut v = 0u64;
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..n {
                        line.store(v + 1, Ordering::Release);
                        wait_for(line, v + 2);
                        v += 2;
                    }
                    per_unit_ps(t.elapsed(), 2 * round_trips)
                })
                .collect()
        });
        let ponger: Box<dyn FnOnce() -> Vec<u64> + Send> = Box::new(move || {
            let mut v = 0u64;
            for _ in 0..reps as u64 * n {
                wait_for(line, v + 1);
                line.store(v + 2, Ordering::Release);
                v += 2;
            }
            Vec::new()
        });
        pinned_group(s, node_of, vec![(a.1, pinger), (b.1, ponger)], &gate)
    })?;
    Ok(results.into_iter().next().unwrap_or_default())
}

/// Spin until `line` holds `value`; yield every 1024 spins (tens of
/// microseconds, far beyond a handoff on hardware whose CPUs are free),
/// for machines and emulators with fewer cores than spinning threads,
/// where the partner may be waiting for this CPU.
#[inline]
fn wait_for(line: &AtomicU64, value: u64) {
    let mut spins = 0u32;
    while line.load(Ordering::Acquire) != value {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1 << 10) {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sattolo_makes_one_cycle_through_every_line() {
        for n in [1usize, 2, 3, 64, 1000] {
            let arena = Arena::new(0, (n + 8) * 64 + (1 << 20)).unwrap();
            let opts = MeasureOptions::quick()
                .latency_buffer(n * 64)
                .bandwidth_buffer(64);
            let place = carve(&arena, &opts).unwrap();
            assert_eq!(place.lines.len(), n);
            let mut seen = vec![false; n];
            let mut at = 0;
            for _ in 0..n {
                assert!(!seen[at], "line {at} visited twice in a cycle of {n}");
                seen[at] = true;
                at = place.lines[at].next;
            }
            assert_eq!(at, 0, "the chain closes after {n} loads");
            assert!(seen.iter().all(|&s| s));
        }
    }

    #[test]
    fn units_never_divide_by_zero_or_wrap() {
        assert_eq!(per_unit_ps(Duration::from_nanos(10), 0), 10_000);
        assert_eq!(per_unit_ps(Duration::MAX, 1), u64::MAX);
        assert_eq!(mb_per_s(1_000_000, Duration::ZERO), 1_000_000_000);
        assert_eq!(mb_per_s(1_000_000, Duration::from_secs(1)), 1);
    }
}
