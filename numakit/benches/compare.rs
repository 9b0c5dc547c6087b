//! numakit's performance report: every comparison of numakit against its
//! peers, in one process, as one table.
//!
//! ```sh
//! cargo bench -p numakit --bench compare                    # 5 repeats per row
//! cargo bench -p numakit --bench compare -- --quick         # 3 short repeats, under a minute
//! cargo bench -p numakit --bench compare -- --json          # JSON lines on stdout
//! cargo bench -p numakit --bench compare -- --quick locks   # only the "locks" comparisons
//! ```
//!
//! The workloads are the ones the criterion benches run (`arena`, `heap`,
//! `locks`, `rings`, `maps`, `pool`; the region, deque and skip map rows
//! have no criterion twin), from the shared modules in
//! `benches/support/`, so the figures stay comparable with theirs.
//! The `galloc` rows (`support/global.rs`) compare numakit's `NodeLocal`
//! with the system allocator, mimalloc and jemalloc, each called as a
//! `GlobalAlloc` value, on mixed-size, larson, xmalloc and alloc-and-touch
//! workloads (`-- --quick galloc` runs only those), the 256 KiB
//! alloc-and-touch workload against its bound (the same writes into blocks
//! allocated once, no allocation at all), then the peak resident
//! memory of each workload with each allocator, run once more in a child
//! process of its own (`VmHWM` less the child's resident memory at start).
//!
//! Method: every row is measured `R` times (5, or 3 with `--quick`).
//! Within each repeat numakit and its peers run one after the other
//! (round-robin, starting one contender later on every repeat), so drift of
//! the machine (other jobs, frequency) falls on all of them alike. Each
//! contender first runs once unrecorded, which warms it up and sizes its
//! samples. The table gives the median of the repeats and their spread
//! (min–max); `ratio` is the peer's time per operation divided by
//! numakit's, so above 1 numakit is faster, for latency rows (ns per
//! operation) and throughput rows (operations per second) alike. Lock rows
//! add fairness: the slowest thread's acquisitions divided by the mean.
//!
//! Besides stdout, the run writes `report.txt`, `report.json` (the JSON
//! lines), `locks.svg`, `rings.svg`, `maps.svg` and `galloc.svg` to
//! `<target dir>/numakit-report/` and prints their paths.
//!
//! The `numa` rows (`-- numa` runs only those) compare an arena on the
//! node the thread runs on with one on the farthest node that has memory,
//! streaming through it and chasing pointers through it in random order
//! (`ratio` is then remote time / local time); `CnaLock`, `McsLock` and
//! parking_lot's mutex handed between two threads on each of two nodes;
//! `NodeLocal` against glibc, mimalloc and jemalloc with a thread on every
//! node allocating and touching 4 KiB blocks; and (feature `rayon`) a sum
//! of node-placed data by per-node rayon pools and by a `NodePool` against
//! one machine-wide rayon pool. On a one-node machine every row says it is
//! not meaningful.
//!
//! Flags: `--quick`, `--json`; any other `--flag` (such as the `--bench`
//! cargo passes) is ignored; the first other word is a filter: a group's
//! name (`numa`, `locks`, ...) runs that group only; any other word runs
//! the comparisons whose group, case or peer name contains it (ignoring
//! case).

#[path = "support/alloc.rs"]
mod alloc_support;
#[path = "support/global.rs"]
mod global_support;
#[path = "support/locks.rs"]
mod locks_support;
#[path = "support/maps.rs"]
mod maps_support;
#[path = "support/pool.rs"]
mod pool_support;
#[path = "support/rings.rs"]
mod rings_support;
#[path = "support/svg.rs"]
mod svg;

use alloc_support::{
    arena_region, box_churn, fill_arena, fill_bump, pair_pass, producer_consumer, raw_pass,
    raw_region, typed_pass, HeapBlocks, Malloc, NodeLocalBlocks, SlabBlocks, ARENA_OBJECTS,
    HEAP_OBJECTS, PC_BLOCKS, REGION_BYTES,
};
use locks_support::{
    ping_pong, run_counter, run_lock, run_lock_placed, Contender, Counter, PingPong, Sample, Tas,
    PING_PONG_ROUNDS,
};
use maps_support::{dash_map, numakit_map, prefill, std_map, Map, Mix, Pool};
use numakit::mem::{Arena, NodeBox, NodeHeap, SlabBuilder};
use numakit::sched::NodePool;
use numakit::sync::{CnaLock, McsLock, PartitionedCounter, RwLock, TicketLock};
use numakit::{NodeId, Topology};
use pool_support::{bump, counted_jobs, rayon_pool, JOBS};
use rings_support::{
    array_queue, numakit_mpmc, numakit_spsc, numakit_spsc_chunks, rtrb_spsc, ITEMS,
};
use std::alloc::Layout;
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Options

struct Config {
    quick: bool,
    json: bool,
    /// Lower-cased filter word.
    filter: Option<String>,
    /// Measured repeats per row.
    repeats: usize,
    /// Target length of one sample of a calibrated workload.
    sample: Duration,
    /// Length of one time-boxed lock or counter run.
    lock_run: Duration,
}

impl Config {
    fn from_args() -> Config {
        let (mut quick, mut json, mut filter) = (false, false, None);
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--quick" => quick = true,
                "--json" => json = true,
                "--help" | "-h" => {
                    println!(
                        "cargo bench -p numakit --bench compare -- [--quick] [--json] [FILTER]\n\
                         FILTER: run only comparisons whose group, case or peer contains it"
                    );
                    std::process::exit(0);
                }
                // `--bench` from cargo, and any flag this report does not use.
                a if a.starts_with('-') => {}
                a if filter.is_none() => filter = Some(a.to_lowercase()),
                _ => {}
            }
        }
        Config {
            quick,
            json,
            filter,
            repeats: if quick { 3 } else { 5 },
            sample: Duration::from_millis(if quick { 20 } else { 50 }),
            lock_run: Duration::from_millis(if quick { 80 } else { 200 }),
        }
    }

    /// `texts[0]` is the group.
    fn wants(&self, texts: &[&str]) -> bool {
        match &self.filter {
            None => true,
            // "numa" is in every "numakit ..." name: a group's name picks
            // that group alone.
            Some(f) if GROUPS.contains(&f.as_str()) => {
                texts.first().is_some_and(|g| g.eq_ignore_ascii_case(f))
            }
            Some(f) => texts.iter().any(|t| t.to_lowercase().contains(f)),
        }
    }
}

/// Every comparison group: a filter naming one runs that group alone.
const GROUPS: &[&str] = &[
    "arena", "nodebox", "region", "heap", "galloc", "locks", "condvar", "counter", "rings", "maps",
    "pool", "numa",
];

// ---------------------------------------------------------------------------
// Measurement

/// One sample of one contender.
#[derive(Clone, Copy)]
struct Measured {
    /// Wall time per operation.
    ns: f64,
    /// Lock rows: slowest thread / mean.
    fairness: Option<f64>,
}

impl Measured {
    fn per_op(elapsed: Duration, ops: u64) -> Measured {
        Measured {
            ns: elapsed.as_secs_f64() * 1e9 / ops.max(1) as f64,
            fairness: None,
        }
    }

    fn from_sample(s: Sample) -> Measured {
        Measured {
            ns: s.secs * 1e9 / s.ops.max(1) as f64,
            fairness: Some(s.fairness),
        }
    }
}

/// Takes one sample of about the given length.
type Runner = Box<dyn FnMut(Duration) -> Measured>;
/// Builds a contender's state (an arena, a pool, a map) only when it runs.
type MakeRunner = Box<dyn FnOnce() -> Runner>;

/// A workload measured the way criterion's `iter_custom` does: `run(iters)`
/// does `iters` iterations of `ops` operations each and returns their time.
/// The first call (the warm-up) doubles `iters` until a run lasts a quarter
/// of the sample length, then sizes `iters` for the whole length.
fn custom(ops: u64, mut run: impl FnMut(u64) -> Duration + 'static) -> Runner {
    let mut iters = 0u64;
    Box::new(move |target| {
        if iters == 0 {
            let mut n = 1u64;
            loop {
                let d = run(n);
                if d >= target / 4 || n >= 1 << 40 {
                    let scaled = n as f64 * target.as_secs_f64() / d.as_secs_f64().max(1e-9);
                    iters = (scaled as u64).max(1);
                    return Measured::per_op(d, n * ops);
                }
                n *= 2;
            }
        }
        Measured::per_op(run(iters), iters * ops)
    })
}

/// Runs `pass` `iters` times; the time of all of them.
fn time_passes(iters: u64, mut pass: impl FnMut()) -> Duration {
    let t0 = Instant::now();
    for _ in 0..iters {
        pass();
    }
    t0.elapsed()
}

#[derive(Clone, Copy)]
enum Unit {
    /// Time per operation; the text says per what ("/object").
    Latency(&'static str),
    /// Operations per second.
    Throughput,
}

struct Entry {
    name: String,
    make: MakeRunner,
}

struct Pair {
    numakit: usize,
    peer: usize,
    case: String,
}

/// Contenders measured together, interleaved, and the numakit/peer pairs
/// the report shows.
struct Comparison {
    group: &'static str,
    /// Short case label for the charts.
    label: String,
    threads: usize,
    unit: Unit,
    /// Samples are time-boxed runs of `Config::lock_run` (locks, counters).
    time_boxed: bool,
    entries: Vec<Entry>,
    pairs: Vec<Pair>,
}

impl Comparison {
    fn new(group: &'static str, label: impl Into<String>, threads: usize, unit: Unit) -> Self {
        Comparison {
            group,
            label: label.into(),
            threads,
            unit,
            time_boxed: false,
            entries: Vec::new(),
            pairs: Vec::new(),
        }
    }

    /// Samples of `Config::lock_run` instead of `Config::sample`.
    fn time_boxed(mut self) -> Self {
        self.time_boxed = true;
        self
    }

    /// Adds a contender; `make` builds its state when (and if) it runs.
    fn entry(&mut self, name: impl Into<String>, make: impl FnOnce() -> Runner + 'static) -> usize {
        self.entries.push(Entry {
            name: name.into(),
            make: Box::new(make),
        });
        self.entries.len() - 1
    }

    /// A report row: numakit contender `numakit` against `peer`.
    fn pair(&mut self, numakit: usize, peer: usize, case: impl Into<String>) {
        self.pairs.push(Pair {
            numakit,
            peer,
            case: case.into(),
        });
    }
}

/// Median and spread of one contender's repeats.
struct Stats {
    name: String,
    numakit: bool,
    median: f64,
    min: f64,
    max: f64,
    fairness: Option<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A measured comparison.
struct Outcome {
    group: &'static str,
    label: String,
    threads: usize,
    unit: Unit,
    stats: Vec<Stats>,
    pairs: Vec<Pair>,
}

// ---------------------------------------------------------------------------
// Output

const RULE: usize = 160;

fn table_header() -> String {
    format!(
        "{:<8}{:<44}{:>4}  {:>10} {:<15}  {:<20}{:>10} {:<15}{:>7}  {}\n{}",
        "group",
        "case",
        "thr",
        "numakit",
        " spread",
        "peer",
        "peer",
        " spread",
        "ratio",
        "fairness nk/peer",
        "-".repeat(RULE)
    )
}

/// Three significant digits, at most.
fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".to_string()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Outcome {
    /// The contender's median in the row's unit (ns, or million ops/s).
    fn shown(&self, s: &Stats) -> (String, String) {
        match self.unit {
            Unit::Latency(_) => (
                format!("{} ns", num(s.median)),
                format!("{}–{}", num(s.min), num(s.max)),
            ),
            Unit::Throughput => (
                format!("{} M/s", num(1e3 / s.median)),
                format!("{}–{}", num(1e3 / s.max), num(1e3 / s.min)),
            ),
        }
    }

    fn table_rows(&self) -> String {
        let mut out = String::new();
        let mut last = usize::MAX;
        for p in &self.pairs {
            let (nk, peer) = (&self.stats[p.numakit], &self.stats[p.peer]);
            let (nk_med, nk_spread) = self.shown(nk);
            let (peer_med, peer_spread) = self.shown(peer);
            let fairness = match (nk.fairness, peer.fairness) {
                (Some(a), Some(b)) => format!("{a:.2} / {b:.2}"),
                _ => String::new(),
            };
            let first = p.numakit != last;
            last = p.numakit;
            let case = match self.unit {
                Unit::Latency(per) if first => format!("{} (ns{per})", p.case),
                _ if first => p.case.clone(),
                _ => String::new(),
            };
            let line = format!(
                "{:<8}{:<44}{:>4}  {:>10} {:<15}  {:<20}{:>10} {:<15}{:>6.2}×  {}",
                if first { self.group } else { "" },
                case,
                if first {
                    self.threads.to_string()
                } else {
                    String::new()
                },
                if first { nk_med } else { String::new() },
                if first {
                    format!(" {nk_spread}")
                } else {
                    String::new()
                },
                peer.name,
                peer_med,
                format!(" {peer_spread}"),
                peer.median / nk.median,
                fairness
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn json_lines(&self) -> String {
        let mut out = String::new();
        for p in &self.pairs {
            let (nk, peer) = (&self.stats[p.numakit], &self.stats[p.peer]);
            let _ = write!(
                out,
                "{{\"group\": {}, \"case\": {}, \"threads\": {}, \"numakit_ns\": {}, \
                 \"peer\": {}, \"peer_ns\": {}, \"ratio\": {}",
                json_str(self.group),
                json_str(&p.case),
                self.threads,
                json_num(nk.median, 3),
                json_str(&peer.name),
                json_num(peer.median, 3),
                json_num(peer.median / nk.median, 4),
            );
            if let (Some(a), Some(b)) = (nk.fairness, peer.fairness) {
                let _ = write!(
                    out,
                    ", \"numakit_fairness\": {}, \"peer_fairness\": {}",
                    json_num(a, 4),
                    json_num(b, 4)
                );
            }
            out.push_str("}\n");
        }
        out
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number; `null` where the value is not finite.
fn json_num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "null".to_string()
    }
}

/// Runs the comparisons and collects what the report prints and writes.
struct Report {
    cfg: Config,
    text: String,
    json: String,
    outcomes: Vec<Outcome>,
    progress: bool,
}

impl Report {
    /// Human-readable text: stdout, or stderr when stdout carries JSON.
    fn say(&mut self, s: &str) {
        self.text.push_str(s);
        self.text.push('\n');
        if self.cfg.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    fn run(&mut self, mut c: Comparison) {
        let group = c.group;
        // The filter picks pairs; a contender runs if a kept pair needs it.
        c.pairs.retain(|p| {
            self.cfg.wants(&[
                group,
                &p.case,
                &c.label,
                &c.entries[p.numakit].name,
                &c.entries[p.peer].name,
            ])
        });
        if c.pairs.is_empty() {
            return;
        }
        let mut used = vec![false; c.entries.len()];
        for p in &c.pairs {
            used[p.numakit] = true;
            used[p.peer] = true;
        }
        let mut index = vec![usize::MAX; c.entries.len()];
        let mut names = Vec::new();
        let mut runners = Vec::new();
        for (i, e) in c.entries.into_iter().enumerate() {
            if used[i] {
                index[i] = runners.len();
                names.push(e.name);
                runners.push((e.make)());
            }
        }
        for p in &mut c.pairs {
            p.numakit = index[p.numakit];
            p.peer = index[p.peer];
        }
        if self.progress {
            eprint!(
                "\r\x1b[Kmeasuring {group}: {} ({} threads)",
                c.label, c.threads
            );
            let _ = std::io::stderr().flush();
        }

        let target = if c.time_boxed {
            self.cfg.lock_run
        } else {
            self.cfg.sample
        };
        let n = runners.len();
        for r in runners.iter_mut() {
            r(target); // warm-up and calibration, not recorded
        }
        let mut samples: Vec<Vec<Measured>> = vec![Vec::new(); n];
        for rep in 0..self.cfg.repeats {
            // Round-robin, one contender later on every repeat.
            for k in 0..n {
                let i = (rep + k) % n;
                samples[i].push(runners[i](target));
            }
        }
        drop(runners);

        let stats = samples
            .into_iter()
            .zip(names)
            .enumerate()
            .map(|(i, (s, name))| {
                let mut ns: Vec<f64> = s.iter().map(|m| m.ns).collect();
                let mut fair: Vec<f64> = s.iter().filter_map(|m| m.fairness).collect();
                Stats {
                    name,
                    numakit: c.pairs.iter().any(|p| p.numakit == i),
                    median: median(&mut ns),
                    min: ns[0],
                    max: ns[ns.len() - 1],
                    fairness: (!fair.is_empty()).then(|| median(&mut fair)),
                }
            })
            .collect();
        let outcome = Outcome {
            group,
            label: c.label,
            threads: c.threads,
            unit: c.unit,
            stats,
            pairs: c.pairs,
        };
        if self.progress {
            eprint!("\r\x1b[K");
        }
        let rows = outcome.table_rows();
        self.say(rows.trim_end());
        let json = outcome.json_lines();
        if self.cfg.json {
            print!("{json}");
            let _ = std::io::stdout().flush();
        }
        self.json.push_str(&json);
        self.outcomes.push(outcome);
    }
}

// ---------------------------------------------------------------------------
// The comparisons

fn arena<const S: usize>(report: &mut Report) {
    let n = ARENA_OBJECTS;
    let mut c = Comparison::new("arena", format!("{S} B"), 1, Unit::Latency("/object"));
    let nk = c.entry("numakit Arena", move || {
        let mut arena = Arena::new(0, 4 << 20).expect("arena on node 0");
        custom(n as u64, move |iters| {
            time_passes(iters, || {
                fill_arena::<S>(&arena, n);
                arena.reset();
            })
        })
    });
    let bump = c.entry("bumpalo::Bump", move || {
        let mut bump = bumpalo::Bump::with_capacity(4 << 20);
        custom(n as u64, move |iters| {
            time_passes(iters, || {
                fill_bump::<S>(&bump, n);
                bump.reset();
            })
        })
    });
    let boxed = c.entry("Box (malloc)", move || {
        custom(n as u64, move |iters| {
            time_passes(iters, || box_churn::<S>(n))
        })
    });
    c.pair(nk, bump, format!("Arena alloc {S} B"));
    c.pair(nk, boxed, format!("Arena alloc {S} B"));
    report.run(c);
}

/// Objects per pass in the first-pass rows: enough that building the
/// arena (not timed) does not dwarf the pass itself.
const FIRST_PASS_OBJECTS: usize = 8192;

/// The first pass over a freshly built, populated arena against a pass over
/// a reused one: populating up front should leave no page faults to pay.
fn arena_first_pass<const S: usize>(report: &mut Report) {
    let n = FIRST_PASS_OBJECTS;
    let cap = S * n + 4096;
    let mut c = Comparison::new(
        "arena",
        format!("first pass {S} B"),
        1,
        Unit::Latency("/object"),
    );
    let first = c.entry("numakit Arena, first pass", move || {
        custom(n as u64, move |iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let arena = Arena::new(0, cap).expect("arena on node 0");
                let t0 = Instant::now();
                fill_arena::<S>(&arena, n);
                timed += t0.elapsed();
            }
            timed
        })
    });
    let reused = c.entry("numakit Arena, reused", move || {
        let mut arena = Arena::new(0, cap).expect("arena on node 0");
        custom(n as u64, move |iters| {
            time_passes(iters, || {
                fill_arena::<S>(&arena, n);
                arena.reset();
            })
        })
    });
    c.pair(first, reused, format!("Arena first pass {S} B"));
    report.run(c);
}

/// One value placed and dropped: `NodeBox::new(0, value)` (the shared
/// heap up to 4 KiB, a mapping of its own above) vs `Box::new(value)`.
fn node_box<const S: usize>(report: &mut Report) {
    let mut c = Comparison::new("nodebox", format!("{S} B"), 1, Unit::Latency("/box"));
    let nk = c.entry("numakit NodeBox", move || {
        custom(1, move |iters| {
            time_passes(iters, || {
                let b = NodeBox::new(0, [7u8; S]).expect("node 0 memory");
                black_box(&b);
            })
        })
    });
    let boxed = c.entry("Box (malloc)", move || {
        custom(1, move |iters| {
            time_passes(iters, || {
                black_box(Box::new([7u8; S]));
            })
        })
    });
    c.pair(nk, boxed, format!("NodeBox::new + drop {S} B"));
    report.run(c);
}

/// Region creation: a populated one-page arena on node 0 made and dropped,
/// against the system calls it comes down to (`mmap`, `mbind`,
/// `MADV_POPULATE_WRITE`, `munmap`). The difference is numakit's own work
/// per region: checking the node against the topology, the free-memory
/// check before populating, the header.
fn region(report: &mut Report) {
    let kib = REGION_BYTES >> 10;
    let mut c = Comparison::new("region", format!("{kib} KiB"), 1, Unit::Latency("/region"));
    let nk = c.entry("numakit Arena::new", move || {
        custom(1, move |iters| time_passes(iters, arena_region))
    });
    let raw = c.entry("mmap+mbind+populate", move || {
        custom(1, move |iters| time_passes(iters, raw_region))
    });
    c.pair(nk, raw, format!("region {kib} KiB make + drop"));
    report.run(c);
}

fn heap<const S: usize>(report: &mut Report) {
    let n = HEAP_OBJECTS;
    let ops = n as u64;
    let layout = Layout::new::<[u8; S]>();
    let mut c = Comparison::new("heap", format!("{S} B"), 1, Unit::Latency("/pair"));
    let slab = c.entry("numakit Slab<T>", move || {
        let slab = SlabBuilder::new(0).capacity(n).build::<[u8; S]>();
        let slab = slab.expect("slab on node 0");
        custom(ops, move |iters| {
            let mut boxes = Vec::with_capacity(n);
            time_passes(iters, || {
                typed_pass::<S, _>(&mut boxes, n, |v| slab.alloc(v))
            })
        })
    });
    let raw = c.entry("numakit RawSlab", move || {
        let raw = SlabBuilder::new(0).capacity(n).build_raw(S, 8);
        let raw = raw.expect("raw slab on node 0");
        custom(ops, move |iters| {
            let mut ptrs = Vec::with_capacity(n);
            let blocks = SlabBlocks::new(&raw);
            time_passes(iters, || raw_pass(&mut ptrs, n, &blocks))
        })
    });
    let node_heap = c.entry("numakit NodeHeap", move || {
        let heap = NodeHeap::new(0).expect("heap on node 0");
        custom(ops, move |iters| {
            let mut ptrs = Vec::with_capacity(n);
            let blocks = HeapBlocks::new(&heap, layout);
            time_passes(iters, || raw_pass(&mut ptrs, n, &blocks))
        })
    });
    let boxed = c.entry("Box (malloc)", move || {
        custom(ops, move |iters| {
            let mut boxes = Vec::with_capacity(n);
            time_passes(iters, || typed_pass::<S, _>(&mut boxes, n, Box::new))
        })
    });
    let node_local = c.entry("numakit NodeLocal", move || {
        custom(ops, move |iters| {
            let mut ptrs = Vec::with_capacity(n);
            let blocks = NodeLocalBlocks::new(layout);
            time_passes(iters, || raw_pass(&mut ptrs, n, &blocks))
        })
    });
    let sys = c.entry("malloc", move || {
        custom(ops, move |iters| {
            let mut ptrs = Vec::with_capacity(n);
            let blocks = Malloc::new(layout);
            time_passes(iters, || raw_pass(&mut ptrs, n, &blocks))
        })
    });
    let bump = c.entry("bumpalo (no free)", move || {
        let mut bump = bumpalo::Bump::with_capacity(n * S * 2);
        custom(ops, move |iters| {
            time_passes(iters, || {
                fill_bump::<S>(&bump, n);
                bump.reset();
            })
        })
    });
    c.pair(slab, boxed, format!("Slab<T> alloc+free {S} B"));
    c.pair(slab, bump, format!("Slab<T> alloc+free {S} B"));
    c.pair(raw, sys, format!("RawSlab alloc+free {S} B"));
    c.pair(node_heap, sys, format!("NodeHeap alloc+free {S} B"));
    c.pair(node_local, sys, format!("NodeLocal alloc+free {S} B"));
    report.run(c);
}

/// Allocate and free at once (one block live at a time).
fn heap_pairs<const S: usize>(report: &mut Report) {
    let n = HEAP_OBJECTS;
    let ops = n as u64;
    let layout = Layout::new::<[u8; S]>();
    let mut c = Comparison::new("heap", format!("{S} B at once"), 1, Unit::Latency("/pair"));
    let raw = c.entry("numakit RawSlab", move || {
        let raw = SlabBuilder::new(0).capacity(16).build_raw(S, 8);
        let raw = raw.expect("raw slab on node 0");
        custom(ops, move |iters| {
            let blocks = SlabBlocks::new(&raw);
            time_passes(iters, || pair_pass(n, &blocks))
        })
    });
    let node_heap = c.entry("numakit NodeHeap", move || {
        let heap = NodeHeap::new(0).expect("heap on node 0");
        custom(ops, move |iters| {
            let blocks = HeapBlocks::new(&heap, layout);
            time_passes(iters, || pair_pass(n, &blocks))
        })
    });
    let node_local = c.entry("numakit NodeLocal", move || {
        custom(ops, move |iters| {
            let blocks = NodeLocalBlocks::new(layout);
            time_passes(iters, || pair_pass(n, &blocks))
        })
    });
    let sys = c.entry("malloc", move || {
        custom(ops, move |iters| {
            let blocks = Malloc::new(layout);
            time_passes(iters, || pair_pass(n, &blocks))
        })
    });
    c.pair(raw, sys, format!("RawSlab alloc, free at once {S} B"));
    c.pair(
        node_heap,
        sys,
        format!("NodeHeap alloc, free at once {S} B"),
    );
    c.pair(
        node_local,
        sys,
        format!("NodeLocal alloc, free at once {S} B"),
    );
    report.run(c);
}

fn heap_producer_consumer(report: &mut Report, size: usize) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    let unit = Unit::Latency("/block");
    let mut c = Comparison::new("heap", format!("producer/consumer {size} B"), 2, unit);
    let nk = c.entry("numakit NodeHeap", move || {
        let heap = NodeHeap::new(0).expect("heap on node 0");
        custom(PC_BLOCKS as u64, move |rounds| {
            producer_consumer(rounds, &HeapBlocks::new(&heap, layout))
        })
    });
    let nl = c.entry("numakit NodeLocal", move || {
        custom(PC_BLOCKS as u64, move |rounds| {
            producer_consumer(rounds, &NodeLocalBlocks::new(layout))
        })
    });
    let sys = c.entry("malloc", move || {
        custom(PC_BLOCKS as u64, move |rounds| {
            producer_consumer(rounds, &Malloc::new(layout))
        })
    });
    c.pair(nk, sys, format!("NodeHeap producer/consumer {size} B"));
    c.pair(nl, sys, format!("NodeLocal producer/consumer {size} B"));
    report.run(c);
}

/// The `galloc` rows: numakit's `NodeLocal` against the system allocator,
/// mimalloc and jemalloc, each called as a `GlobalAlloc` value, on one
/// workload (`run(allocator, iterations)` times `iterations` × `ops`
/// operations).
fn global_alloc(
    report: &mut Report,
    label: &str,
    threads: usize,
    ops: u64,
    run: fn(global_support::Alloc, u64) -> Duration,
) {
    let mut c = Comparison::new("galloc", label, threads, Unit::Throughput);
    let ids: Vec<usize> = global_support::contenders()
        .into_iter()
        .map(|(name, a)| c.entry(name, move || custom(ops, move |n| run(a, n))))
        .collect();
    for &peer in &ids[1..] {
        c.pair(ids[0], peer, format!("NodeLocal {label}"));
    }
    report.run(c);
}

/// The 256 KiB alloc-and-touch row against its bound: the same writes
/// into blocks allocated once (from `NodeLocal`, and from glibc), with no
/// allocation at all.
fn touch_bound(report: &mut Report) {
    const SIZE: usize = 256 << 10;
    let label = "alloc+touch 256 KiB";
    let mut c = Comparison::new("galloc", label, 1, Unit::Throughput);
    let ops = global_support::TOUCH_OPS as u64;
    let [(nk_name, nk), (sys_name, sys), ..] = global_support::contenders();
    let ours = c.entry(nk_name, move || {
        custom(ops, move |n| global_support::touch(nk, n, SIZE))
    });
    let bounds = [(nk_name, nk), (sys_name, sys)].map(|(name, a)| {
        c.entry(format!("writes only, {name} blocks"), move || {
            custom(ops, move |n| global_support::touch_writes_only(a, n, SIZE))
        })
    });
    for bound in bounds {
        c.pair(
            ours,
            bound,
            format!("NodeLocal {label} vs the writes alone"),
        );
    }
    report.run(c);
}

fn global_allocs(report: &mut Report) {
    let workloads = global_support::workloads();
    for w in &workloads {
        global_alloc(report, w.label, w.threads, w.ops, w.run);
    }
    touch_bound(report);
    // Peak resident memory: each workload with each allocator in a child
    // process of its own (VmHWM less the child's resident memory at start).
    let names: Vec<&str> = global_support::contenders()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for (i, w) in workloads.iter().enumerate() {
        let label = format!("peak RSS MiB, {}", w.label);
        if !report.cfg.wants(&["galloc", &label]) {
            continue;
        }
        let cells: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(c, name)| match global_support::peak_resident(i, c) {
                Some(kib) => format!("{name} {:.1}", kib as f64 / 1024.0),
                None => format!("{name} failed"),
            })
            .collect();
        report.say(&format!(
            "galloc  {label:<44} {:>3}    {}",
            w.threads,
            cells.join("   ")
        ));
    }
}

fn lock_entry<L: Contender>(c: &mut Comparison, threads: usize) -> usize {
    c.entry(L::NAME, move || {
        Box::new(move |run| Measured::from_sample(run_lock::<L>(threads, 0, Some(run))))
    })
}

fn locks(report: &mut Report, threads: usize) {
    let mut c = Comparison::new("locks", "lock", threads, Unit::Throughput).time_boxed();
    let ours = [
        lock_entry::<McsLock<u64>>(&mut c, threads),
        lock_entry::<CnaLock<u64>>(&mut c, threads),
        lock_entry::<TicketLock<u64>>(&mut c, threads),
        lock_entry::<RwLock<u64>>(&mut c, threads),
    ];
    let peers = [
        lock_entry::<Mutex<u64>>(&mut c, threads),
        lock_entry::<parking_lot::Mutex<u64>>(&mut c, threads),
        lock_entry::<mcslock::raw::spins::Mutex<u64>>(&mut c, threads),
        lock_entry::<mcslock::barging::spins::Mutex<u64>>(&mut c, threads),
        lock_entry::<Tas>(&mut c, threads),
    ];
    for nk in ours {
        let case = format!(
            "{} ops/s",
            c.entries[nk].name.trim_start_matches("numakit ")
        );
        for peer in peers {
            c.pair(nk, peer, case.clone());
        }
    }
    report.run(c);
}

fn ping_pong_entry<P: PingPong>(c: &mut Comparison) -> usize {
    c.entry(P::NAME, || {
        custom(2 * PING_PONG_ROUNDS, |iters| {
            (0..iters).map(|_| ping_pong::<P>(PING_PONG_ROUNDS)).sum()
        })
    })
}

/// Two threads hand a counter back and forth through a mutex and a
/// condition variable: one notify and one wake-up per handoff.
fn condvar(report: &mut Report) {
    let mut c = Comparison::new("condvar", "ping-pong", 2, Unit::Latency("/handoff"));
    let nk = ping_pong_entry::<(McsLock<u64>, numakit::sync::Condvar)>(&mut c);
    let pl = ping_pong_entry::<(parking_lot::Mutex<u64>, parking_lot::Condvar)>(&mut c);
    let std = ping_pong_entry::<(Mutex<u64>, std::sync::Condvar)>(&mut c);
    c.pair(nk, pl, "Condvar ping-pong");
    c.pair(nk, std, "Condvar ping-pong");
    report.run(c);
}

fn counter_entry<C: Counter>(c: &mut Comparison, threads: usize) -> usize {
    c.entry(C::NAME, move || {
        Box::new(move |run| {
            let s = run_counter::<C>(threads, 0, Some(run));
            Measured::per_op(Duration::from_secs_f64(s.secs), s.ops)
        })
    })
}

fn counters(report: &mut Report, threads: usize) {
    let mut c = Comparison::new("counter", "counter", threads, Unit::Throughput).time_boxed();
    let nk = counter_entry::<PartitionedCounter>(&mut c, threads);
    let peer = counter_entry::<AtomicU64>(&mut c, threads);
    c.pair(nk, peer, "PartitionedCounter ops/s");
    report.run(c);
}

/// A ring workload: each iteration is one run moving `ITEMS` items.
fn ring_runner(run: impl Fn() -> Duration + 'static) -> Runner {
    custom(ITEMS, move |iters| (0..iters).map(|_| run()).sum())
}

fn rings(report: &mut Report) {
    for bulk in [false, true] {
        let label = if bulk { "SPSC bulk32" } else { "SPSC single" };
        let mut c = Comparison::new("rings", label, 2, Unit::Throughput);
        let nk = c.entry("numakit spsc", move || {
            ring_runner(move || numakit_spsc(bulk))
        });
        let rtrb = c.entry("rtrb", move || ring_runner(move || rtrb_spsc(bulk)));
        c.pair(nk, rtrb, format!("{label} ops/s"));
        // ArrayQueue has no bulk operations: it is a peer of the single case only.
        if !bulk {
            let aq = c.entry("ArrayQueue", || ring_runner(|| array_queue(1, 1)));
            c.pair(nk, aq, format!("{label} ops/s"));
        }
        report.run(c);
    }
    // Chunks: both rings run the same chunk calls.
    let mut c = Comparison::new("rings", "SPSC chunk32", 2, Unit::Throughput);
    let nk = c.entry("numakit spsc chunks", || ring_runner(numakit_spsc_chunks));
    let rtrb = c.entry("rtrb chunks", || ring_runner(|| rtrb_spsc(true)));
    c.pair(nk, rtrb, "SPSC chunk32 ops/s");
    report.run(c);
    for t in [2u64, 4] {
        let label = format!("MPMC {t}P{t}C");
        let mut c = Comparison::new("rings", label.clone(), 2 * t as usize, Unit::Throughput);
        let nk = c.entry("numakit MpmcRing", move || {
            ring_runner(move || numakit_mpmc(t, t))
        });
        let aq = c.entry("ArrayQueue", move || ring_runner(move || array_queue(t, t)));
        c.pair(nk, aq, format!("{label} ops/s"));
        report.run(c);
    }
}

/// The deques the report compares: numakit's fixed-capacity
/// `deque::Worker` and crossbeam-deque's growing one, through one interface.
trait Deque: Sized + 'static {
    type Thief: Send + 'static;
    const NAME: &'static str;
    fn new() -> Self;
    fn thief(&self) -> Self::Thief;
    /// Push; `false` when full (numakit's only).
    fn push(&self, v: u64) -> bool;
    fn pop(&self) -> Option<u64>;
    /// Steal one; `None` when empty, a lost race retried.
    fn steal(t: &Self::Thief) -> Option<u64>;
}

/// Room for every element the workloads hold at once.
const DEQUE_CAP: usize = 1 << 12;
/// Elements pushed (and taken) per owner-and-thieves run.
const DEQUE_ITEMS: u64 = 1 << 17;

impl Deque for numakit::collections::deque::Worker<u64> {
    type Thief = numakit::collections::deque::Stealer<u64>;
    const NAME: &'static str = "numakit deque";
    fn new() -> Self {
        Self::new_lifo(0, DEQUE_CAP).unwrap()
    }
    fn thief(&self) -> Self::Thief {
        self.stealer()
    }
    #[inline]
    fn push(&self, v: u64) -> bool {
        numakit::collections::deque::Worker::push(self, v).is_ok()
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        numakit::collections::deque::Worker::pop(self)
    }
    #[inline]
    fn steal(t: &Self::Thief) -> Option<u64> {
        loop {
            match t.steal() {
                numakit::collections::deque::Steal::Success(v) => return Some(v),
                numakit::collections::deque::Steal::Empty => return None,
                numakit::collections::deque::Steal::Retry => std::hint::spin_loop(),
            }
        }
    }
}

impl Deque for crossbeam_deque::Worker<u64> {
    type Thief = crossbeam_deque::Stealer<u64>;
    const NAME: &'static str = "crossbeam-deque";
    fn new() -> Self {
        Self::new_lifo()
    }
    fn thief(&self) -> Self::Thief {
        self.stealer()
    }
    #[inline]
    fn push(&self, v: u64) -> bool {
        crossbeam_deque::Worker::push(self, v);
        true
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        crossbeam_deque::Worker::pop(self)
    }
    #[inline]
    fn steal(t: &Self::Thief) -> Option<u64> {
        loop {
            match t.steal() {
                crossbeam_deque::Steal::Success(v) => return Some(v),
                crossbeam_deque::Steal::Empty => return None,
                crossbeam_deque::Steal::Retry => std::hint::spin_loop(),
            }
        }
    }
}

/// The owner alone: push 256, pop 256 (LIFO), per iteration.
fn deque_owner_entry<D: Deque>(c: &mut Comparison) -> usize {
    c.entry(D::NAME, || {
        let d = D::new();
        custom(512, move |iters| {
            time_passes(iters, || {
                for i in 0..256 {
                    black_box(d.push(black_box(i)));
                }
                for _ in 0..256 {
                    black_box(d.pop());
                }
            })
        })
    })
}

/// One owner and `thieves` thieves, the way a task pool uses a deque: the
/// owner pushes `DEQUE_ITEMS` elements in bursts of 32 and after each
/// burst pops until the deque is empty, while the thieves steal what they
/// can; they stop when the owner is done and the deque is empty. One
/// iteration is one such run, timed from the moment every thief is running
/// (thread start-up is not measured). The deque never holds more than 32
/// elements, so neither deque is ever full or grows.
///
/// With `cpus` (one per thread, the owner's first) every thread is pinned
/// to its own CPU, so no spinning thief takes the owner's CPU from it.
fn deque_thieves_run<D: Deque>(thieves: usize, cpus: Option<&[numakit::CpuId]>) -> Duration {
    use std::sync::atomic::{AtomicBool, Ordering};
    let d = D::new();
    let done = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..thieves)
        .map(|k| {
            let t = d.thief();
            let done = Arc::clone(&done);
            let ready = Arc::clone(&ready);
            let cpu = cpus.map(|c| c[1 + k]);
            std::thread::spawn(move || {
                if let Some(cpu) = cpu {
                    alloc_support::pin_quietly(cpu);
                }
                ready.fetch_add(1, Ordering::AcqRel);
                let mut n = 0u64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    match D::steal(&t) {
                        Some(v) => {
                            black_box(v);
                            n += 1;
                        }
                        None if finished => return n,
                        None => std::hint::spin_loop(),
                    }
                }
            })
        })
        .collect();
    let restore = cpus.map(|c| {
        let old = numakit::sys::sched::sched_getaffinity(0).expect("the owner's CPUs");
        alloc_support::pin_quietly(c[0]);
        old
    });
    while ready.load(Ordering::Acquire) < thieves {
        std::thread::yield_now();
    }
    let start = Instant::now();
    let mut own = 0u64;
    let mut i = 0;
    while i < DEQUE_ITEMS {
        for _ in 0..32 {
            while !d.push(i) {
                // Never full here; were it (numakit's: a thief still
                // copying an element out), run one element here.
                if d.pop().is_some() {
                    own += 1;
                }
            }
            i += 1;
        }
        while let Some(v) = d.pop() {
            black_box(v);
            own += 1;
        }
    }
    done.store(true, Ordering::Release);
    let stolen: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = start.elapsed();
    if let Some(old) = restore {
        numakit::sys::sched::sched_setaffinity(0, &old).expect("the owner's CPUs back");
    }
    assert_eq!(
        own + stolen,
        DEQUE_ITEMS,
        "{}: {own} popped + {stolen} stolen",
        D::NAME
    );
    elapsed
}

fn deque_thieves_entry<D: Deque>(
    c: &mut Comparison,
    thieves: usize,
    cpus: Option<Vec<numakit::CpuId>>,
) -> usize {
    c.entry(D::NAME, move || {
        custom(DEQUE_ITEMS, move |iters| {
            (0..iters)
                .map(|_| deque_thieves_run::<D>(thieves, cpus.as_deref()))
                .sum()
        })
    })
}

/// One allowed CPU for each of `threads` threads, or `None` when the
/// process has fewer.
fn cpus_for(threads: usize) -> Option<Vec<numakit::CpuId>> {
    let cpus: Vec<_> = numakit::sched::allowed_cpus()
        .ok()?
        .iter()
        .take(threads)
        .collect();
    (cpus.len() == threads).then_some(cpus)
}

fn deques(report: &mut Report) {
    use numakit::collections::deque::Worker as NkWorker;
    let mut c = Comparison::new("deque", "owner push/pop", 1, Unit::Latency("/op"));
    let nk = deque_owner_entry::<NkWorker<u64>>(&mut c);
    let cb = deque_owner_entry::<crossbeam_deque::Worker<u64>>(&mut c);
    c.pair(nk, cb, "deque owner push+pop");
    report.run(c);
    for thieves in [1, 3] {
        let label = format!("owner + {thieves} thieves");
        let cpus = cpus_for(1 + thieves);
        if cpus.is_none() && report.cfg.wants(&["deque", &label]) {
            report.say(&format!(
                "deque       {label}: fewer than {} CPUs here, so the threads share CPUs and \
                 spinning thieves take the owner's; this row is NOT MEANINGFUL here",
                1 + thieves
            ));
        }
        let mut c = Comparison::new("deque", label.clone(), 1 + thieves, Unit::Throughput);
        let nk = deque_thieves_entry::<NkWorker<u64>>(&mut c, thieves, cpus.clone());
        let cb = deque_thieves_entry::<crossbeam_deque::Worker<u64>>(&mut c, thieves, cpus);
        c.pair(nk, cb, format!("deque {label} ops/s"));
        report.run(c);
    }
}

/// A map workload: `threads` threads (this one included) run `iters`
/// operations each per sample.
fn map_runner<M: Map>(make: fn() -> M, mix: Mix, threads: usize) -> Runner {
    let map = Arc::new(make());
    prefill(&*map);
    let mut pool = Pool::new(Arc::clone(&map), mix, threads);
    custom(threads as u64, move |iters| pool.batch(&*map, mix, iters))
}

fn maps(report: &mut Report, mix: Mix, threads: usize) {
    let mix_name = match mix {
        Mix::ReadHeavy => "read_heavy 98/1/1",
        Mix::Exchange => "exchange 10/40/40/10",
    };
    let label = format!("{} ×{threads}", mix.name());
    let mut c = Comparison::new("maps", label, threads, Unit::Throughput);
    let nk = c.entry("numakit map", move || map_runner(numakit_map, mix, threads));
    let dash = c.entry("dashmap", move || map_runner(dash_map, mix, threads));
    let std = c.entry("RwLock<HashMap>", move || map_runner(std_map, mix, threads));
    c.pair(nk, dash, format!("{mix_name} ops/s"));
    c.pair(nk, std, format!("{mix_name} ops/s"));
    report.run(c);
}

/// One full guarded iteration over a prefilled map (`iter`), per entry.
fn map_iter(report: &mut Report) {
    fn entry<M: maps_support::IterSum>(c: &mut Comparison, name: &str, make: fn() -> M) -> usize {
        c.entry(name, move || {
            let map = make();
            prefill(&map);
            custom(maps_support::PREFILLED, move |iters| {
                time_passes(iters, || _ = std::hint::black_box(map.iter_sum()))
            })
        })
    }
    let mut c = Comparison::new("maps", "iter", 1, Unit::Latency("/entry"));
    let nk = entry(&mut c, "numakit map", numakit_map);
    let dash = entry(&mut c, "dashmap", dash_map);
    let std = entry(&mut c, "RwLock<HashMap>", std_map);
    c.pair(nk, dash, "iter, 32768 entries");
    c.pair(nk, std, "iter, 32768 entries");
    report.run(c);
}

// ---------------------------------------------------------------------------
// Ordered maps: numakit's SkipMap (a skip list under one RwLock, nodes on
// node 0) against crossbeam-skiplist's lock-free SkipMap.

impl Map for numakit::collections::SkipMap<u64, u64> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.get_cloned(&k)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        numakit::collections::SkipMap::insert(self, k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        numakit::collections::SkipMap::remove(self, &k);
    }
    #[inline]
    fn update(&self, k: u64) {
        if let Some(v) = self.get_cloned(&k) {
            numakit::collections::SkipMap::insert(self, k, v + 1);
        }
    }
}

impl Map for crossbeam_skiplist::SkipMap<u64, u64> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        crossbeam_skiplist::SkipMap::get(self, &k).map(|e| *e.value())
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        crossbeam_skiplist::SkipMap::insert(self, k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        crossbeam_skiplist::SkipMap::remove(self, &k);
    }
    #[inline]
    fn update(&self, k: u64) {
        if let Some(v) = Map::get(self, k) {
            crossbeam_skiplist::SkipMap::insert(self, k, v + 1);
        }
    }
}

fn nk_skip() -> numakit::collections::SkipMap<u64, u64> {
    numakit::collections::SkipMap::new(0).expect("node 0")
}

fn cb_skip() -> crossbeam_skiplist::SkipMap<u64, u64> {
    crossbeam_skiplist::SkipMap::new()
}

/// Keys inserted per pass of the insert rows.
const SKIP_INSERTS: u64 = 1 << 14;

/// `SKIP_INSERTS` keys in a fixed pseudo-random order (distinct).
fn skip_keys() -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut keys: Vec<u64> = (0..SKIP_INSERTS).collect();
    for i in (1..keys.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys.swap(i, (x % (i as u64 + 1)) as usize);
    }
    keys
}

/// Single-threaded: inserts of distinct keys in random order into an
/// empty map (made and dropped outside the timed part), per insert; then
/// lookups in a map holding every even key of `0..KEYS` (half hit), per
/// lookup; then on two threads the read-mostly mix (98% get, 1% insert,
/// 1% remove) and the write-heavy exchange mix.
fn skip_maps(report: &mut Report) {
    fn inserts<M: Map>(c: &mut Comparison, name: &str, make: fn() -> M) -> usize {
        c.entry(name, move || {
            let keys = skip_keys();
            custom(SKIP_INSERTS, move |iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let map = make();
                    let t0 = Instant::now();
                    for &k in &keys {
                        map.insert(k, k);
                    }
                    timed += t0.elapsed();
                    drop(map);
                }
                timed
            })
        })
    }
    let mut c = Comparison::new("skipmap", "insert", 1, Unit::Latency("/insert"));
    let nk = inserts(&mut c, "numakit SkipMap", nk_skip);
    let cb = inserts(&mut c, "crossbeam SkipMap", cb_skip);
    c.pair(nk, cb, format!("insert, {SKIP_INSERTS} random keys"));
    report.run(c);

    fn gets<M: Map>(c: &mut Comparison, name: &str, make: fn() -> M) -> usize {
        c.entry(name, move || {
            let map = make();
            prefill(&map);
            let mut rng = 0x5eedu64;
            custom(1024, move |iters| {
                time_passes(iters, || {
                    for _ in 0..1024 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        black_box(map.get(rng & (maps_support::KEYS - 1)));
                    }
                })
            })
        })
    }
    let mut c = Comparison::new("skipmap", "get", 1, Unit::Latency("/get"));
    let nk = gets(&mut c, "numakit SkipMap", nk_skip);
    let cb = gets(&mut c, "crossbeam SkipMap", cb_skip);
    c.pair(nk, cb, format!("get, {} entries", maps_support::PREFILLED));
    report.run(c);

    // The read-mostly mix, and the write-heavy one where the lock
    // serialises writers (update = a lookup, then an insert, for both).
    let threads = 2;
    for (mix, case) in [
        (Mix::ReadHeavy, "read_heavy 98/1/1 ops/s"),
        (Mix::Exchange, "exchange 10/40/40/10 ops/s"),
    ] {
        let label = format!("{} ×{threads}", mix.name());
        let mut c = Comparison::new("skipmap", label, threads, Unit::Throughput);
        let nk = c.entry("numakit SkipMap", move || map_runner(nk_skip, mix, threads));
        let cb = c.entry("crossbeam SkipMap", move || {
            map_runner(cb_skip, mix, threads)
        });
        c.pair(nk, cb, case);
        report.run(c);
    }
}

fn pool(report: &mut Report) {
    let workers = pool_support::threads();
    let unit = Unit::Latency("/job");
    let mut c = Comparison::new("pool", "execute_to", workers, unit);
    let nk = c.entry("numakit execute_to", || {
        let pool = NodePool::new().expect("pool");
        let node = NodeId::new(0);
        let done = Arc::new(AtomicUsize::new(0));
        custom(JOBS as u64, move |iters| {
            time_passes(iters, || {
                counted_jobs(&done, JOBS, |d| {
                    pool.execute_to(node, move || bump(&d)).unwrap();
                })
            })
        })
    });
    let rayon = c.entry("rayon::spawn", || {
        let rayon = rayon_pool();
        let done = Arc::new(AtomicUsize::new(0));
        custom(JOBS as u64, move |iters| {
            time_passes(iters, || {
                counted_jobs(&done, JOBS, |d| rayon.spawn(move || bump(&d)))
            })
        })
    });
    c.pair(nk, rayon, "NodePool execute_to");
    report.run(c);
}

/// A parallel sum of node-placed data (feature `rayon`): numakit's
/// per-node pinned rayon pools, each summing its own node's chunk, against
/// one machine-wide rayon pool summing the same chunks.
#[cfg(feature = "rayon")]
fn node_sum(report: &mut Report, one_node: bool) {
    use pool_support::{NodeSum, SUM_ELEMS};
    let workers = pool_support::threads();
    let mut c = Comparison::new("numa", "node_sum", workers, Unit::Latency("/elem"));
    let nk = c.entry("numakit::rayon pools_per_node", || {
        let data = NodeSum::new();
        custom(SUM_ELEMS as u64, move |iters| {
            time_passes(iters, || {
                black_box(data.per_node());
            })
        })
    });
    let global = c.entry("one rayon pool", || {
        let data = NodeSum::new();
        let pool = rayon_pool();
        custom(SUM_ELEMS as u64, move |iters| {
            time_passes(iters, || {
                black_box(data.global(&pool));
            })
        })
    });
    let node_pool = c.entry("numakit NodePool", || {
        let data = NodeSum::new();
        let pool = NodePool::new().expect("pool");
        let n = SUM_ELEMS as u64;
        assert_eq!(data.node_pool(&pool), n * (n - 1) / 2);
        custom(SUM_ELEMS as u64, move |iters| {
            time_passes(iters, || {
                black_box(data.node_pool(&pool));
            })
        })
    });
    let note = if one_node {
        ": ONE NODE, not meaningful"
    } else {
        ""
    };
    c.pair(nk, global, format!("sum of node-placed u64s{note}"));
    c.pair(
        node_pool,
        global,
        format!("NodePool sum of node-placed u64s{note}"),
    );
    report.run(c);
}

/// The NUMA rows' node with CPUs and memory the thread runs on, and the
/// memory node farthest from it by SLIT (the same node on a one-node
/// machine); `None` when no node has both CPUs and memory this process may
/// use.
fn numa_nodes() -> Option<(NodeId, NodeId)> {
    let topo = Topology::current().ok()?;
    let mems = topo.mems_allowed().ok()?;
    let local = topo
        .nodes()
        .iter()
        .find(|n| mems.contains(&n.id()) && n.allowed_cpus().is_ok_and(|c| !c.is_empty()))?
        .id();
    let remote = topo
        .nodes_by_distance(local)
        .ok()?
        .into_iter()
        .rev()
        .find(|n| mems.contains(n))?;
    Some((local, remote))
}

/// Bytes of each NUMA row's buffer: several times a server's last-level
/// cache.
fn numa_bytes(quick: bool) -> usize {
    if quick {
        64 << 20
    } else {
        256 << 20
    }
}

/// An arena on `node` holding `bytes`, verified there, kept for the rest of
/// the run (a runner owns its buffer for as long as the report lasts, and
/// the typed slices borrow the arena).
fn numa_arena(node: NodeId, bytes: usize) -> &'static Arena {
    let arena = Arena::builder(node)
        .capacity(bytes + (4 << 20))
        .pages(numakit::mem::PageKind::TransparentHuge)
        .build()
        .unwrap_or_else(|e| panic!("numa rows: an arena on node {node}: {e}"));
    Box::leak(Box::new(arena))
}

/// Pin the calling thread to `node`'s CPUs for one sample (memory policy
/// untouched: the buffer is bound already).
fn numa_pin(node: NodeId) -> numakit::sched::PinGuard {
    numakit::sched::Pin::node(node)
        .bind_memory(false)
        .apply()
        .unwrap_or_else(|e| panic!("numa rows: pinning to node {node}: {e}"))
}

/// Streaming reads of `bytes` on `memory` from a thread on `cpu`.
fn numa_stream(cpu: NodeId, memory: NodeId, bytes: usize) -> Runner {
    let arena = numa_arena(memory, bytes);
    let words: &'static [u64] = arena.alloc_slice_fill_with(bytes / 8, |i| i as u64);
    arena
        .verify()
        .unwrap_or_else(|e| panic!("numa rows: the buffer is not on node {memory}: {e}"));
    custom((bytes / 64) as u64, move |iters| {
        let _pin = numa_pin(cpu);
        time_passes(iters, || {
            black_box(words.iter().fold(0u64, |a, &w| a.wrapping_add(w)));
        })
    })
}

/// One cache line of the chase: the index of the next.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct ChaseLine(usize);

/// Loads per pass of the random rows.
const CHASE_PASS: usize = 1 << 16;

/// Dependent loads in random order through `bytes` on `memory` from a
/// thread on `cpu`: one cycle through every line (Sattolo's shuffle).
fn numa_chase(cpu: NodeId, memory: NodeId, bytes: usize) -> Runner {
    let arena = numa_arena(memory, bytes);
    let n = bytes / 64;
    let lines = arena.alloc_slice_fill_with(n, ChaseLine);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % i as u64) as usize;
        let (a, b) = (lines[i].0, lines[j].0);
        lines[i].0 = b;
        lines[j].0 = a;
    }
    let lines: &'static [ChaseLine] = lines;
    arena
        .verify()
        .unwrap_or_else(|e| panic!("numa rows: the buffer is not on node {memory}: {e}"));
    let mut at = 0usize;
    custom(CHASE_PASS as u64, move |iters| {
        let _pin = numa_pin(cpu);
        time_passes(iters, || {
            for _ in 0..CHASE_PASS {
                at = lines.get(at).map_or(0, |l| l.0);
            }
            at = black_box(at);
        })
    })
}

/// The nodes with CPUs this process may use, in id order.
fn numa_cpu_nodes() -> Vec<NodeId> {
    let Ok(topo) = Topology::current() else {
        return Vec::new();
    };
    topo.nodes()
        .iter()
        .filter(|n| n.allowed_cpus().is_ok_and(|c| !c.is_empty()))
        .map(|n| n.id())
        .collect()
}

fn numa_lock_entry<L: Contender>(c: &mut Comparison, threads: usize, nodes: [NodeId; 2]) -> usize {
    c.entry(L::NAME, move || {
        Box::new(move |run| {
            // Worker i on nodes[i % 2]; the pin lasts as long as the
            // worker's thread.
            let place = move |i: usize| std::mem::forget(numa_pin(nodes[i % 2]));
            Measured::from_sample(run_lock_placed::<L>(threads, &place, 0, Some(run)))
        })
    })
}

/// Locks handed between threads on two nodes (the first node with CPUs
/// and the farthest from it), two threads per node.
fn numa_locks(report: &mut Report, cpu_nodes: &[NodeId]) {
    let Some(&first) = cpu_nodes.first() else {
        return;
    };
    let other = Topology::current()
        .ok()
        .and_then(|t| t.nodes_by_distance(first).ok())
        .and_then(|order| order.into_iter().rev().find(|n| cpu_nodes.contains(n)))
        .unwrap_or(first);
    let nodes = [first, other];
    let threads = 4;
    let mut c = Comparison::new(
        "numa",
        format!("locks on nodes {first} and {other}"),
        threads,
        Unit::Throughput,
    )
    .time_boxed();
    let mcs = numa_lock_entry::<McsLock<u64>>(&mut c, threads, nodes);
    let cna = numa_lock_entry::<CnaLock<u64>>(&mut c, threads, nodes);
    let pl = numa_lock_entry::<parking_lot::Mutex<u64>>(&mut c, threads, nodes);
    let note = if first == other {
        ": ONE NODE, not meaningful"
    } else {
        ""
    };
    c.pair(cna, pl, format!("CnaLock, 2 nodes{note}"));
    c.pair(mcs, pl, format!("McsLock, 2 nodes{note}"));
    c.pair(cna, mcs, format!("CnaLock vs McsLock, 2 nodes{note}"));
    report.run(c);
}

/// Bytes of each block of the NUMA alloc-and-touch rows.
const NUMA_TOUCH_BYTES: usize = 4096;

/// The alloc-and-touch workload on one thread per node at once, each
/// pinned to its node (memory policy left as it is: first touch); the
/// wall time of them all.
fn touch_on_nodes(a: global_support::Alloc, passes: u64, nodes: &[NodeId]) -> Duration {
    let start = std::sync::Barrier::new(nodes.len() + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = nodes
            .iter()
            .map(|&node| {
                let start = &start;
                s.spawn(move || {
                    let _pin = numa_pin(node);
                    start.wait();
                    global_support::touch(a, passes, NUMA_TOUCH_BYTES)
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        for w in workers {
            w.join().expect("an alloc-and-touch thread");
        }
        t0.elapsed()
    })
}

/// numakit's `NodeLocal` against glibc, mimalloc and jemalloc with a
/// thread on every node allocating and touching.
fn numa_alloc_touch(report: &mut Report, cpu_nodes: &[NodeId]) {
    if cpu_nodes.is_empty() {
        return;
    }
    let nodes: &'static [NodeId] = Vec::leak(cpu_nodes.to_vec());
    let threads = nodes.len();
    let label = format!("alloc+touch 4 KiB, a thread on each of {threads} node(s)");
    let mut c = Comparison::new("numa", label, threads, Unit::Throughput);
    let ops = (global_support::TOUCH_OPS * threads) as u64;
    let ids: Vec<usize> = global_support::contenders()
        .into_iter()
        .map(|(name, a)| {
            c.entry(name, move || {
                custom(ops, move |passes| touch_on_nodes(a, passes, nodes))
            })
        })
        .collect();
    let note = if threads < 2 {
        ": ONE NODE, not meaningful"
    } else {
        ""
    };
    for &peer in &ids[1..] {
        c.pair(
            ids[0],
            peer,
            format!("NodeLocal alloc+touch on every node{note}"),
        );
    }
    report.run(c);
}

/// Arena on the thread's node against one on the farthest node
/// (streaming reads and a random pointer chase); locks handed between two
/// nodes; allocators with a thread on every node; and (feature `rayon`)
/// the node_sum rows.
fn numa(report: &mut Report) {
    // The words the rows' group, cases and contenders are made of.
    if !report.cfg.wants(&[
        "numa", "stream", "random", "arena", "local", "remote", "lock", "touch",
    ]) {
        return;
    }
    let cpu_nodes = numa_cpu_nodes();
    let nodes = numa_nodes();
    if cpu_nodes.len() < 2 {
        report.say(
            "numa        one NUMA node with CPUs: the \"remote\" arena is on the local node, \
             the threads of the lock and allocator rows share it; these rows are NOT \
             MEANINGFUL here (run them on a machine with several nodes)",
        );
    }
    numa_locks(report, &cpu_nodes);
    numa_alloc_touch(report, &cpu_nodes);
    #[cfg(feature = "rayon")]
    node_sum(report, cpu_nodes.len() < 2);
    let Some((local, remote)) = nodes else {
        report.say("numa        no node with both CPUs and memory this process may use: no rows");
        return;
    };
    let bytes = numa_bytes(report.cfg.quick);
    let one_node = local == remote;
    type Make = fn(NodeId, NodeId, usize) -> Runner;
    let rows: [(&str, Unit, Make); 2] = [
        ("stream", Unit::Latency("/64 B"), numa_stream),
        ("random", Unit::Latency("/load"), numa_chase),
    ];
    for (what, unit, make) in rows {
        let mut c = Comparison::new("numa", format!("{what} {} MiB", bytes >> 20), 1, unit);
        let near = c.entry(format!("numakit Arena node {local} local"), move || {
            make(local, local, bytes)
        });
        let far = c.entry(format!("Arena node {remote} remote"), move || {
            make(local, remote, bytes)
        });
        let case = if one_node {
            format!("{what}: ONE NODE, not meaningful")
        } else {
            format!("{what} {} MiB, CPU node {local}", bytes >> 20)
        };
        c.pair(near, far, case);
        report.run(c);
    }
}

/// glibc malloc raises its mmap and trim thresholds the first time it
/// frees a block it got from `mmap`; before that, freeing the 1000 blocks
/// of a 1 KiB pass returns the top of the heap to the kernel and the next
/// pass faults it back in. Criterion's own buffers put malloc in the raised
/// state before the `heap` bench measures, and in a full report the arena
/// rows' 4 MiB `bumpalo` chunk does; this puts it there for every run,
/// filtered ones included, so that malloc is always measured the same way.
fn settle_malloc() {
    drop(std::hint::black_box(Vec::<u8>::with_capacity(4 << 20)));
}

// ---------------------------------------------------------------------------
// The machine

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Free and total pages of `page_size`, summed over the nodes; `None` when
/// the kernel has no such pool.
fn hugepages(topo: Option<&Topology>, page_size: u64) -> Option<(u64, u64)> {
    if let Some(topo) = topo {
        let pools: Vec<_> = topo
            .nodes()
            .iter()
            .filter_map(|n| n.hugepage_pool(page_size))
            .collect();
        if !pools.is_empty() {
            return Some((
                pools.iter().map(|p| p.free()).sum(),
                pools.iter().map(|p| p.total()).sum(),
            ));
        }
    }
    let dir = format!("/sys/kernel/mm/hugepages/hugepages-{}kB", page_size >> 10);
    let read = |f: &str| read_trimmed(&format!("{dir}/{f}"))?.parse::<u64>().ok();
    Some((read("free_hugepages")?, read("nr_hugepages")?))
}

fn machine() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim())
        })
        .unwrap_or("unknown (no \"model name\" in /proc/cpuinfo)");
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    let topo = Topology::detect();
    let mut lines = vec![format!("CPU:        {model}")];
    match &topo {
        Ok(t) => {
            lines.push(format!(
                "CPUs:       {} online, {usable} usable by this process",
                t.online_cpus().len()
            ));
            let nodes: Vec<String> = t
                .nodes()
                .iter()
                .map(|n| {
                    format!(
                        "node {}: CPUs {}, {} MiB",
                        n.id(),
                        n.cpus(),
                        n.memory_total() >> 20
                    )
                })
                .collect();
            lines.push(format!(
                "NUMA nodes: {} ({})",
                t.num_nodes(),
                nodes.join("; ")
            ));
        }
        Err(e) => {
            lines.push(format!("CPUs:       {usable} usable by this process"));
            lines.push(format!("NUMA nodes: topology not detected: {e}"));
        }
    }
    lines.push(format!(
        "kernel:     {}",
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into())
    ));
    let pages = |size: u64, label: &str| match hugepages(topo.as_ref().ok(), size) {
        Some((free, total)) => format!("{label} {free}/{total} free/total"),
        None => format!("{label} not supported"),
    };
    lines.push(format!(
        "hugepages:  {}; {}",
        pages(2 << 20, "2 MiB"),
        pages(1 << 30, "1 GiB")
    ));
    lines
}

fn load_average() -> String {
    read_trimmed("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

// ---------------------------------------------------------------------------
// Files

/// `CARGO_TARGET_DIR` when absolute, else the nearest folder above this
/// executable (`<target>/release/deps/compare-…`) that holds cargo's
/// `CACHEDIR.TAG`, else `target` here.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        if dir.is_absolute() {
            return dir;
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe
            .ancestors()
            .skip(1)
            .find(|d| d.join("CACHEDIR.TAG").is_file())
        {
            return dir.to_path_buf();
        }
    }
    PathBuf::from("target")
}

fn lock_chart(outcomes: &[Outcome]) -> Option<String> {
    let locks: Vec<&Outcome> = outcomes.iter().filter(|o| o.group == "locks").collect();
    let mut series: Vec<svg::Series> = Vec::new();
    for o in &locks {
        for s in &o.stats {
            let point = (o.threads as f64, 1e3 / s.median);
            match series.iter_mut().find(|x| x.name == s.name) {
                Some(x) => x.points.push(point),
                None => series.push(svg::Series {
                    name: s.name.clone(),
                    highlight: s.numakit,
                    points: vec![point],
                }),
            }
        }
    }
    if series.is_empty() {
        return None;
    }
    series.sort_by_key(|s| !s.highlight); // numakit first, order kept otherwise
    let mut xs: Vec<f64> = locks.iter().map(|o| o.threads as f64).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    Some(svg::line_chart(
        "Lock throughput (critical section: one increment)",
        "threads",
        "million acquisitions/s (log scale)",
        &xs,
        &series,
    ))
}

/// One bar per contender of `o`: `scale / time per operation` for the
/// median, with the spread (1e3 gives million operations per second).
fn bars(o: &Outcome, scale: f64) -> Vec<svg::Bar> {
    o.stats
        .iter()
        .map(|s| svg::Bar {
            name: s.name.clone(),
            highlight: s.numakit,
            value: scale / s.median,
            low: scale / s.max,
            high: scale / s.min,
        })
        .collect()
}

fn bar_chart(outcomes: &[Outcome], group: &str, title: &str, x_label: &str) -> Option<String> {
    let groups: Vec<svg::BarGroup> = outcomes
        .iter()
        .filter(|o| o.group == group)
        .map(|o| svg::BarGroup {
            label: o.label.clone(),
            bars: bars(o, 1e3),
        })
        .collect();
    (!groups.is_empty())
        .then(|| svg::bar_chart(title, x_label, "million ops/s (median, min–max)", &groups))
}

/// The global allocators' rows as bars of throughput relative to the
/// system allocator's median on the same workload (the rows span 0.1 to
/// 100 M ops/s, too wide for one linear axis).
fn galloc_chart(outcomes: &[Outcome]) -> Option<String> {
    let groups: Vec<svg::BarGroup> = outcomes
        .iter()
        .filter(|o| o.group == "galloc")
        .filter_map(|o| {
            // Medians and extremes are ns per operation: throughput is
            // their inverse, relative to glibc's median throughput.
            let base = o
                .stats
                .iter()
                .find(|s| s.name.starts_with("system"))?
                .median;
            // Short names: the axis has nine groups side by side.
            let short = o
                .label
                .split(',')
                .next()
                .unwrap_or(&o.label)
                .replace("mixed 8 B–", "mixed ≤")
                .replace(" 16–256 B", "")
                .replace(" producer/consumer 64 B", "")
                .replace("alloc+touch", "touch");
            Some(svg::BarGroup {
                label: format!("{short} ×{}", o.threads),
                bars: bars(o, base),
            })
        })
        .collect();
    (!groups.is_empty()).then(|| {
        svg::bar_chart(
            "Global allocators: throughput relative to glibc (one node)",
            "workload × threads",
            "× glibc's median (median, min–max)",
            &groups,
        )
    })
}

/// Writes the report files; returns their paths, or says why not.
fn write_files(report: &Report) -> std::io::Result<Vec<PathBuf>> {
    let dir = target_dir().join("numakit-report");
    std::fs::create_dir_all(&dir)?;
    let mut written = Vec::new();
    let mut put = |name: &str, body: Option<String>| -> std::io::Result<()> {
        let path = dir.join(name);
        match body {
            Some(body) => {
                std::fs::write(&path, body)?;
                written.push(path);
            }
            // Nothing measured for this file in this run: no stale copy.
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        Ok(())
    };
    put("report.txt", Some(report.text.clone()))?;
    put("report.json", Some(report.json.clone()))?;
    put("locks.svg", lock_chart(&report.outcomes))?;
    put("galloc.svg", galloc_chart(&report.outcomes))?;
    let bars = [
        (
            "rings",
            "Rings: numakit vs peers (u64 items)",
            "case (SPSC: 1 producer, 1 consumer; MPMC: P producers, C consumers)",
        ),
        (
            "maps",
            "Hash maps: numakit vs peers (u64 keys, SipHash)",
            "mix × threads",
        ),
    ];
    for (group, title, x_label) in bars {
        let chart = bar_chart(&report.outcomes, group, title, x_label);
        put(&format!("{group}.svg"), chart)?;
    }
    Ok(written)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------------------

fn main() {
    if global_support::peak_child() {
        return;
    }
    let cfg = Config::from_args();
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal();
    let mut report = Report {
        cfg,
        text: String::new(),
        json: String::new(),
        outcomes: Vec::new(),
        progress,
    };
    report.say("numakit performance report");
    for line in machine() {
        report.say(&line);
    }
    let mode = if report.cfg.quick { "quick" } else { "full" };
    let filter = match &report.cfg.filter {
        Some(f) => format!("; filter \"{f}\""),
        None => String::new(),
    };
    let s = format!(
        "method:     {mode}: median of {} interleaved repeats (samples of {} ms, lock runs of {} ms){filter}\n\
         load avg:   {} at start\n\
         ratio = peer time / numakit time per operation: above 1, numakit is faster; \
         M/s = million operations per second",
        report.cfg.repeats,
        report.cfg.sample.as_millis(),
        report.cfg.lock_run.as_millis(),
        load_average(),
    );
    report.say(&s);
    report.say("");
    report.say(&table_header());

    settle_malloc();

    arena::<8>(&mut report);
    arena::<64>(&mut report);
    arena::<256>(&mut report);
    arena_first_pass::<64>(&mut report);
    node_box::<64>(&mut report);
    node_box::<8192>(&mut report);
    region(&mut report);
    heap::<16>(&mut report);
    heap::<64>(&mut report);
    heap::<256>(&mut report);
    heap::<1024>(&mut report);
    heap_pairs::<16>(&mut report);
    heap_pairs::<64>(&mut report);
    heap_pairs::<256>(&mut report);
    heap_pairs::<1024>(&mut report);
    heap_producer_consumer(&mut report, 64);
    heap_producer_consumer(&mut report, 1024);
    global_allocs(&mut report);
    for t in locks_support::THREADS {
        locks(&mut report, t);
    }
    condvar(&mut report);
    for t in locks_support::THREADS {
        counters(&mut report, t);
    }
    rings(&mut report);
    deques(&mut report);
    for mix in [Mix::ReadHeavy, Mix::Exchange] {
        for t in maps_support::THREADS {
            maps(&mut report, mix, t);
        }
    }
    map_iter(&mut report);
    skip_maps(&mut report);
    pool(&mut report);
    numa(&mut report);

    if report.outcomes.is_empty() {
        let f = report.cfg.filter.clone().unwrap_or_default();
        report.say(&format!("no comparison matches \"{f}\""));
    }
    report.say("-".repeat(RULE).as_str());
    let s = format!(
        "{:.1} s; load avg {} at the end",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    report.say(&s);
    match write_files(&report) {
        Ok(paths) => {
            for p in paths {
                report.say(&format!("wrote {}", display(&p)));
            }
        }
        Err(e) => report.say(&format!("could not write the report files: {e}")),
    }
}
