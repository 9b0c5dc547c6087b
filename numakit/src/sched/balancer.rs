//! The auto-balancer: a background thread that watches where registered
//! threads run and where their registered memory lives, and — by the
//! policy the user chose — moves the threads to the memory or the memory
//! to the threads.
//!
//! # What it looks at, every interval
//!
//! For each [`BalancedGroup`] (threads + memory ranges registered by the
//! user):
//!
//! - **where the threads run**: each thread's CPU mask
//!   (`sched_getaffinity(tid)`); the group is *on node N* when every
//!   thread's mask lies within node N's CPUs. Unpinned threads span
//!   several nodes: where they happen to run at the sampling instant is not
//!   used (it changes the next moment);
//! - **where the memory is**: a bounded sample of pages
//!   ([`BalancerBuilder::sample_pages`], default 64) spread evenly over the
//!   registered ranges, queried with `move_pages(2)`; pages never touched
//!   do not count;
//! - **cache misses**, where the machine has hardware counters
//!   (`perf_event_open(2)`, per thread): an extra signal — with
//!   [`BalancerBuilder::min_cache_misses`] a group whose threads miss the
//!   cache less than that in an interval is not worth moving. Where there
//!   are no counters (virtual machines without a PMU, or
//!   `perf_event_paranoid`), [`BalancerStatus::counters`] says so and why,
//!   and page locations alone decide.
//!
//! # When it acts: the state machine
//!
//! | phase | on an interval | next |
//! |---|---|---|
//! | watching | at least [`threshold`](BalancerBuilder::threshold) (default 60%) of the sampled pages are on node M, and the threads are not on M | streak + 1; at [`hysteresis`](BalancerBuilder::hysteresis) intervals in a row (default 3): act, if the policy, the target node and the interval's budget allow; otherwise an event says why (once) |
//! | watching | otherwise | streak back to 0 |
//! | verifying | the group's locality (share of sampled pages on the threads' node) rose by [`min_improvement`](BalancerBuilder::min_improvement) or reached the threshold | watching again ("improved") |
//! | verifying | it did not | **stopped**: do no harm — the group is left alone until [`BalancedGroup::resume`] |
//!
//! At most [`max_actions_per_interval`](BalancerBuilder::max_actions_per_interval)
//! groups are acted on per interval (default 1), and at most
//! [`max_pages_per_interval`](BalancerBuilder::max_pages_per_interval)
//! pages migrated (default 65536, 256 MiB of 4 KiB pages); a group over
//! budget is deferred to a later interval.
//!
//! # The policies (chosen explicitly: zero-inference)
//!
//! - [`BalancePolicy::MoveThreads`]: every thread of the group gets the CPU
//!   mask of node M (its CPUs in the process's allowed set), set from the
//!   balancer thread with `sched_setaffinity(tid)`. **A thread's memory
//!   policy cannot be changed from another thread**: a thread pinned with
//!   [`pin_to_node`](super::pin_to_node) keeps `MPOL_BIND` to its old node
//!   (so what it allocates next still lands there) until it calls
//!   [`BalancedGroup::checkpoint`], which rebinds its memory policy to the
//!   node it was moved to. Threads under the default policy need no
//!   checkpoint: first touch follows the CPU. A [`PinGuard`](super::PinGuard)
//!   the thread holds still restores its old mask and policy when dropped.
//! - [`BalancePolicy::MovePages`]: the present pages of the group's ranges
//!   that are not on the threads' node move there (`move_pages(2)`),
//!   contents and addresses unchanged. The ranges' memory policy is not
//!   changed: an [`Arena`] bound to node M keeps that
//!   binding (its `verify()` then reports the moved pages as misplaced),
//!   and pages faulted in later follow it. Needs the threads on one node.
//! - [`BalancePolicy::Observe`]: decide, never act: the events say what
//!   would be done.
//!
//! # Observability
//!
//! Every decision is a [`BalancerEvent`] (from-node, to-node, reason,
//! sampled pages per node, threads or pages moved, cache misses), kept in
//! a bounded log ([`Balancer::events`]) and passed to the callback given to
//! [`BalancerBuilder::on_event`]. [`Balancer::status`] reports each group's
//! phase and locality, whether counters exist, and the kernel's own NUMA
//! balancing.
//!
//! # Living with the kernel's automatic NUMA balancing
//!
//! [`BalancerStatus::kernel_balancing`] reads
//! `/proc/sys/kernel/numa_balancing`. When it is on, the kernel migrates
//! pages of memory under the default policy toward the threads touching
//! them, and tasks whose masks allow it. It does not move pages bound with
//! `MPOL_BIND` (numakit's arenas, pinned threads' allocations) nor threads
//! outside their masks, so groups made of pinned threads and arenas are
//! this balancer's alone; for unbound memory both may act, and the
//! do-no-harm rule stops this balancer on a group whose locality it could
//! not improve (for example because the kernel moved the pages back).
//!
//! # Examples
//! ```
//! use numakit::mem::Arena;
//! use numakit::sched::{pin_to_node, BalancePolicy, Balancer};
//! use std::time::Duration;
//! let balancer = Balancer::builder(BalancePolicy::MovePages)
//!     .interval(Duration::from_millis(50))
//!     .build()?;
//! let group = balancer.register("worker 0");
//! let _pin = pin_to_node(0)?;
//! let arena = Arena::new(0, 1 << 20)?;
//! group.add_current_thread();
//! group.add_arena(&arena)?;
//! // ... work; call group.checkpoint() now and then ...
//! println!("{}", balancer.status());
//! # Ok::<(), numakit::Error>(())
//! ```

mod machine;
mod probe;

pub use machine::GroupPhase;
pub use probe::{CounterSupport, KernelNumaBalancing, NUMA_BALANCING_PATH};

use super::pin::allowed_cpus;
use super::SchedError;
use crate::mem::Arena;
use crate::sys::mem as sysmem;
use crate::topology::{CpuSet, NodeId, Topology};
use machine::{ActionKind, Machine, Rules, Sample, Step, ThreadPlace};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the balancer does about a group whose memory is elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BalancePolicy {
    /// Move the group's threads to the node holding most of its memory.
    MoveThreads,
    /// Move the group's pages to the node its threads run on.
    MovePages,
    /// Only report what would be done.
    Observe,
}

/// The callback type of [`BalancerBuilder::on_event`].
type Callback = Arc<dyn Fn(&BalancerEvent) + Send + Sync>;

/// Options for a [`Balancer`]; from [`Balancer::builder`].
#[derive(Clone)]
#[must_use = "a builder does nothing until .build()"]
pub struct BalancerBuilder {
    policy: BalancePolicy,
    interval: Duration,
    hysteresis: u32,
    threshold: f64,
    min_improvement: f64,
    sample_pages: usize,
    max_actions: usize,
    max_pages: usize,
    min_cache_misses: u64,
    log_capacity: usize,
    on_event: Option<Callback>,
}

impl fmt::Debug for BalancerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancerBuilder")
            .field("policy", &self.policy)
            .field("interval", &self.interval)
            .field("hysteresis", &self.hysteresis)
            .field("threshold", &self.threshold)
            .field("min_improvement", &self.min_improvement)
            .field("sample_pages", &self.sample_pages)
            .field("max_actions", &self.max_actions)
            .field("max_pages", &self.max_pages)
            .field("min_cache_misses", &self.min_cache_misses)
            .field("log_capacity", &self.log_capacity)
            .finish_non_exhaustive()
    }
}

/// The most pages sampled per group and interval. A tuning detail, not part
/// of the stable API: it may change in any release.
#[doc(hidden)]
pub const MAX_SAMPLE_PAGES: usize = 4096;

impl BalancerBuilder {
    /// Time between two samples (default 1 s; at least 1 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
    /// Consecutive intervals the memory must be mostly elsewhere before
    /// acting (default 3; at least 1).
    pub fn hysteresis(mut self, intervals: u32) -> Self {
        self.hysteresis = intervals;
        self
    }
    /// The share of sampled pages on one other node that counts as "most
    /// of the memory is there" (default 0.6; more than 0.5, at most 1).
    pub fn threshold(mut self, share: f64) -> Self {
        self.threshold = share;
        self
    }
    /// How much an action must raise locality to count as an improvement
    /// (default 0.1; 0 to 1). Below it, the group is stopped (do no harm).
    pub fn min_improvement(mut self, delta: f64) -> Self {
        self.min_improvement = delta;
        self
    }
    /// Pages sampled per group and interval (default 64; 1 to
    /// [`MAX_SAMPLE_PAGES`]).
    pub fn sample_pages(mut self, pages: usize) -> Self {
        self.sample_pages = pages;
        self
    }
    /// Groups acted on per interval (default 1; at least 1 — use
    /// [`BalancePolicy::Observe`] for none).
    pub fn max_actions_per_interval(mut self, actions: usize) -> Self {
        self.max_actions = actions;
        self
    }
    /// Pages migrated per interval, all groups together (default 65536;
    /// at least 1).
    pub fn max_pages_per_interval(mut self, pages: usize) -> Self {
        self.max_pages = pages;
        self
    }
    /// Where cache-miss counters exist: act on a group only when its
    /// threads missed the cache at least this often in the interval
    /// (default 0: no gate). Ignored where there are no counters.
    pub fn min_cache_misses(mut self, misses: u64) -> Self {
        self.min_cache_misses = misses;
        self
    }
    /// Events kept in [`Balancer::events`] (default 1024; older ones are
    /// dropped first).
    pub fn log_capacity(mut self, events: usize) -> Self {
        self.log_capacity = events;
        self
    }
    /// Call `f` with every event, as it happens, on the thread that ran
    /// the interval (the balancer's, or a caller of
    /// [`run_interval`](Balancer::run_interval)). Keep it short.
    ///
    /// If `f` panics, the panic is caught: the balancer keeps running,
    /// [`BalancerStatus::callback_panics`] counts it and
    /// [`BalancerStatus::last_callback_panic`] holds its message, and an
    /// [`EventKind::Failed`] event saying so goes into the log
    /// ([`Balancer::events`]; it is not passed to `f`). The remaining events of
    /// that interval are still passed to `f`.
    pub fn on_event(mut self, f: impl Fn(&BalancerEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Check the options, detect counters and the kernel's NUMA balancing,
    /// and start the background thread.
    ///
    /// # Errors
    /// - [`SchedError::InvalidConfig`] for an option out of range (the
    ///   error names it and the range);
    /// - [`SchedError::Topology`] if the topology cannot be read;
    /// - [`SchedError::Spawn`] if the thread cannot be started.
    pub fn build(self) -> Result<Balancer, SchedError> {
        self.validate()?;
        let topo = Topology::current()?;
        let allowed = allowed_cpus()?;
        let inner = Arc::new(Inner {
            rules: Rules {
                policy: self.policy,
                hysteresis: self.hysteresis,
                threshold: self.threshold,
                min_improvement: self.min_improvement,
                min_cache_misses: self.min_cache_misses,
            },
            interval: self.interval,
            sample_pages: self.sample_pages,
            max_actions: self.max_actions,
            max_pages: self.max_pages,
            log_capacity: self.log_capacity,
            on_event: self.on_event,
            topo,
            allowed,
            kernel: KernelNumaBalancing::detect(),
            counters: CounterSupport::detect(),
            groups: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
            log: Mutex::new(VecDeque::new()),
            stop: (Mutex::new(false), Condvar::new()),
            next_group: AtomicU64::new(1),
            callback_panics: Mutex::new(CallbackPanics::default()),
        });
        let bg = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("numakit-balancer".into())
            .spawn(move || bg.run())
            .map_err(|source| SchedError::Spawn { index: 0, source })?;
        Ok(Balancer {
            inner,
            thread: Some(thread),
        })
    }

    fn validate(&self) -> Result<(), SchedError> {
        let bad =
            |what: &'static str, reason: String| Err(SchedError::InvalidConfig { what, reason });
        if self.interval < Duration::from_millis(1) {
            return bad(
                "balancer interval",
                format!("{:?} is below 1 ms", self.interval),
            );
        }
        if self.hysteresis == 0 {
            return bad("balancer hysteresis", "0 intervals; use 1 or more".into());
        }
        if !(self.threshold > 0.5 && self.threshold <= 1.0) {
            return bad(
                "balancer threshold",
                format!(
                    "{} is outside (0.5, 1]: \"most of the memory\" means more than half",
                    self.threshold
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.min_improvement) {
            return bad(
                "balancer min_improvement",
                format!("{} is outside [0, 1]", self.min_improvement),
            );
        }
        if !(1..=MAX_SAMPLE_PAGES).contains(&self.sample_pages) {
            return bad(
                "balancer sample_pages",
                format!("{} is outside 1..={MAX_SAMPLE_PAGES}", self.sample_pages),
            );
        }
        if self.max_actions == 0 {
            return bad(
                "balancer max_actions_per_interval",
                "0 would never act; use BalancePolicy::Observe to only watch".into(),
            );
        }
        if self.max_pages == 0 {
            return bad(
                "balancer max_pages_per_interval",
                "0 pages; use 1 or more".into(),
            );
        }
        Ok(())
    }
}

/// What happened, in a [`BalancerEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The group's threads got the CPU mask of `to`.
    ThreadsMoved,
    /// Pages of the group moved to `to`.
    PagesMigrated,
    /// The interval after an action: locality improved.
    Improved,
    /// The interval after an action: locality did not improve, the group
    /// is left alone from now on (do no harm).
    Stopped,
    /// The memory is elsewhere but nothing may be done (policy `Observe`,
    /// a target without CPUs or memory or outside the process's memory
    /// nodes (`Mems_allowed`), threads on several nodes for
    /// `MovePages`, too few cache misses); reported once per episode.
    Skipped,
    /// The interval's budget was spent; the group waits for the next one.
    Deferred,
    /// A registered thread exited (or was never a thread of this process:
    /// an id that is 0, negative or another process's); it was removed
    /// from the group.
    ThreadGone,
    /// A system call failed; the reason holds the error.
    Failed,
}

/// One decision of the balancer.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BalancerEvent {
    /// The interval number (1 for the first).
    pub interval: u64,
    /// The group's name.
    pub group: String,
    /// What happened.
    pub kind: EventKind,
    /// The node moved from: the threads' node for threads (`None` when
    /// they span several nodes), the memory's node for pages.
    pub from: Option<NodeId>,
    /// The node moved to (for `Improved`/`Stopped`: the threads' node).
    pub to: Option<NodeId>,
    /// Why, in words.
    pub reason: String,
    /// Pages sampled this interval.
    pub pages_sampled: usize,
    /// Present sampled pages per node.
    pub pages_by_node: Vec<(NodeId, usize)>,
    /// Locality before the event (share of sampled pages on the threads'
    /// node).
    pub locality: f64,
    /// Threads moved.
    pub threads_moved: usize,
    /// Pages moved.
    pub pages_moved: usize,
    /// Pages that could not be moved (pinned, shared, node full).
    pub pages_failed: usize,
    /// Cache misses of the group's threads during the interval, where
    /// counters exist.
    pub cache_misses: Option<u64>,
}

impl fmt::Display for BalancerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = |n: Option<NodeId>| n.map_or("-".to_string(), |n| n.to_string());
        write!(
            f,
            "[{}] {}: {:?} {} -> {}: {} (pages sampled {}",
            self.interval,
            self.group,
            self.kind,
            node(self.from),
            node(self.to),
            self.reason,
            self.pages_sampled
        )?;
        for (n, c) in &self.pages_by_node {
            write!(f, ", {c} on node {n}")?;
        }
        write!(f, "; locality {:.0}%", self.locality * 100.0)?;
        if self.threads_moved > 0 {
            write!(f, "; {} threads moved", self.threads_moved)?;
        }
        if self.pages_moved + self.pages_failed > 0 {
            write!(
                f,
                "; {} pages moved, {} failed",
                self.pages_moved, self.pages_failed
            )?;
        }
        if let Some(m) = self.cache_misses {
            write!(f, "; {m} cache misses")?;
        }
        f.write_str(")")
    }
}

/// One group's state as of the last interval.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupReport {
    name: String,
    phase: GroupPhase,
    threads: usize,
    thread_nodes: Vec<NodeId>,
    memory_node: Option<NodeId>,
    locality: Option<f64>,
    pages_sampled: usize,
    actions: u64,
    cache_misses: Option<u64>,
}

impl GroupReport {
    fn new(name: &str) -> Self {
        GroupReport {
            name: name.to_string(),
            phase: GroupPhase::Watching { streak: 0 },
            threads: 0,
            thread_nodes: Vec::new(),
            memory_node: None,
            locality: None,
            pages_sampled: 0,
            actions: 0,
            cache_misses: None,
        }
    }
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its state machine's phase.
    pub fn phase(&self) -> GroupPhase {
        self.phase
    }
    /// Live registered threads.
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// The nodes the threads' CPU masks cover (one node: the group is on
    /// it).
    pub fn thread_nodes(&self) -> &[NodeId] {
        &self.thread_nodes
    }
    /// The node holding most sampled pages.
    pub fn memory_node(&self) -> Option<NodeId> {
        self.memory_node
    }
    /// The share of sampled pages on the threads' node (`None` before the
    /// first interval).
    pub fn locality(&self) -> Option<f64> {
        self.locality
    }
    /// Pages sampled in the last interval.
    pub fn pages_sampled(&self) -> usize {
        self.pages_sampled
    }
    /// Actions taken on the group so far.
    pub fn actions(&self) -> u64 {
        self.actions
    }
    /// Cache misses in the last interval, where counters exist.
    pub fn cache_misses(&self) -> Option<u64> {
        self.cache_misses
    }
}

/// The balancer's state; from [`Balancer::status`].
#[derive(Clone, Debug, PartialEq)]
pub struct BalancerStatus {
    policy: BalancePolicy,
    interval: Duration,
    intervals: u64,
    kernel: KernelNumaBalancing,
    counters: CounterSupport,
    groups: Vec<GroupReport>,
    callback_panics: CallbackPanics,
}

impl BalancerStatus {
    /// How often the [`on_event`](BalancerBuilder::on_event) callback
    /// panicked (each panic was caught; the balancer kept running).
    pub fn callback_panics(&self) -> u64 {
        self.callback_panics.count
    }
    /// The message of the callback's last panic, if it ever panicked.
    pub fn last_callback_panic(&self) -> Option<&str> {
        self.callback_panics.last.as_deref()
    }
    /// The policy.
    pub fn policy(&self) -> BalancePolicy {
        self.policy
    }
    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }
    /// Intervals run so far.
    pub fn intervals(&self) -> u64 {
        self.intervals
    }
    /// The kernel's automatic NUMA balancing, as detected at start.
    pub fn kernel_balancing(&self) -> &KernelNumaBalancing {
        &self.kernel
    }
    /// Whether cache-miss counters are used, or why not.
    pub fn counters(&self) -> &CounterSupport {
        &self.counters
    }
    /// Each registered group.
    pub fn groups(&self) -> &[GroupReport] {
        &self.groups
    }
    /// The group named `name`, if registered.
    pub fn group(&self, name: &str) -> Option<&GroupReport> {
        self.groups.iter().find(|g| g.name == name)
    }
}

impl fmt::Display for BalancerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "balancer: policy {:?}, every {:?}, {} intervals run",
            self.policy, self.interval, self.intervals
        )?;
        writeln!(f, "kernel NUMA balancing: {}", self.kernel)?;
        writeln!(f, "counters: {}", self.counters)?;
        if let Some(last) = &self.callback_panics.last {
            writeln!(
                f,
                "on_event callback panicked {} time(s), last: {last}",
                self.callback_panics.count
            )?;
        }
        for g in &self.groups {
            let nodes: Vec<String> = g.thread_nodes.iter().map(|n| n.to_string()).collect();
            writeln!(
                f,
                "group {:?}: {:?}, {} threads on nodes [{}], memory mostly on {}, locality {}, {} actions",
                g.name,
                g.phase,
                g.threads,
                nodes.join(", "),
                g.memory_node.map_or("-".into(), |n| n.to_string()),
                g.locality.map_or("-".into(), |l| format!("{:.0}%", l * 100.0)),
                g.actions
            )?;
        }
        Ok(())
    }
}

/// A running balancer; stops its thread when dropped.
pub struct Balancer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("policy", &self.inner.rules.policy)
            .field("interval", &self.inner.interval)
            .finish_non_exhaustive()
    }
}

struct Inner {
    rules: Rules,
    interval: Duration,
    sample_pages: usize,
    max_actions: usize,
    max_pages: usize,
    log_capacity: usize,
    on_event: Option<Callback>,
    topo: Arc<Topology>,
    allowed: CpuSet,
    kernel: KernelNumaBalancing,
    counters: CounterSupport,
    groups: Mutex<Vec<Arc<GroupShared>>>,
    state: Mutex<State>,
    log: Mutex<VecDeque<BalancerEvent>>,
    stop: (Mutex<bool>, Condvar),
    next_group: AtomicU64,
    callback_panics: Mutex<CallbackPanics>,
}

/// Panics of the `on_event` callback, caught.
#[derive(Clone, Debug, Default, PartialEq)]
struct CallbackPanics {
    count: u64,
    last: Option<String>,
}

#[derive(Default)]
struct State {
    interval: u64,
    groups: HashMap<u64, Runtime>,
}

/// What the balancer keeps per group between intervals.
#[derive(Default)]
struct Runtime {
    machine: Machine,
    /// Per thread: its cache-miss counter and the last value read.
    counters: HashMap<libc::pid_t, Option<(OwnedFd, u64)>>,
}

struct GroupShared {
    id: u64,
    name: String,
    members: Mutex<Members>,
    report: Mutex<GroupReport>,
    resume: AtomicBool,
}

#[derive(Default)]
struct Members {
    threads: Vec<ThreadEntry>,
    ranges: Vec<(usize, usize)>,
}

struct ThreadEntry {
    tid: libc::pid_t,
    /// The node the balancer moved the thread to, until its checkpoint.
    pending: Option<NodeId>,
}

/// The message of a caught panic (or a note that it was not a string).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let message = crate::error::panic_message(payload.as_ref());
    // Dropping the payload runs user code too; a panic there is dropped.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
    message
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Balancer {
    /// A builder; the policy is required (never inferred).
    pub fn builder(policy: BalancePolicy) -> BalancerBuilder {
        BalancerBuilder {
            policy,
            interval: Duration::from_secs(1),
            hysteresis: 3,
            threshold: 0.6,
            min_improvement: 0.1,
            sample_pages: 64,
            max_actions: 1,
            max_pages: 65536,
            min_cache_misses: 0,
            log_capacity: 1024,
            on_event: None,
        }
    }

    /// Register a group named `name` (names are labels; they need not be
    /// unique). It is watched from the next interval; dropping the handle
    /// unregisters it.
    pub fn register(&self, name: impl Into<String>) -> BalancedGroup {
        let name = name.into();
        let shared = Arc::new(GroupShared {
            id: self.inner.next_group.fetch_add(1, Ordering::Relaxed),
            report: Mutex::new(GroupReport::new(&name)),
            name,
            members: Mutex::new(Members::default()),
            resume: AtomicBool::new(false),
        });
        lock(&self.inner.groups).push(Arc::clone(&shared));
        BalancedGroup {
            shared,
            balancer: Arc::downgrade(&self.inner),
        }
    }

    /// Run one interval now, on the calling thread (besides the background
    /// thread's own), and return its events. For tests and for callers that
    /// want to drive the balancer themselves (with a long interval).
    pub fn run_interval(&self) -> Vec<BalancerEvent> {
        self.inner.run_interval()
    }

    /// The last events (at most the log capacity), oldest first.
    pub fn events(&self) -> Vec<BalancerEvent> {
        lock(&self.inner.log).iter().cloned().collect()
    }

    /// Policy, intervals run, counters, the kernel's NUMA balancing, and
    /// every group's phase and locality.
    pub fn status(&self) -> BalancerStatus {
        let inner = &self.inner;
        let groups = lock(&inner.groups)
            .iter()
            .map(|g| lock(&g.report).clone())
            .collect();
        BalancerStatus {
            policy: inner.rules.policy,
            interval: inner.interval,
            intervals: lock(&inner.state).interval,
            kernel: inner.kernel.clone(),
            counters: inner.counters.clone(),
            groups,
            callback_panics: lock(&inner.callback_panics).clone(),
        }
    }

    /// Stop the background thread and wait for it (what dropping does).
    pub fn stop(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let (flag, cv) = &self.inner.stop;
        *lock(flag) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Threads and memory the balancer watches together; from
/// [`Balancer::register`]. Dropping it unregisters the group.
///
/// `Send + Sync`: register threads from the threads themselves
/// ([`add_current_thread`](Self::add_current_thread)) through a shared
/// reference.
pub struct BalancedGroup {
    shared: Arc<GroupShared>,
    balancer: Weak<Inner>,
}

impl fmt::Debug for BalancedGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedGroup")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Words in a node mask big enough for any kernel (`MAX_NUMNODES` <= 1024).
const NODE_MASK_WORDS: usize = 1024 / libc::c_ulong::BITS as usize;

impl BalancedGroup {
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Add the calling thread (by its kernel thread id). Call
    /// [`remove_current_thread`](Self::remove_current_thread) before the
    /// thread exits: thread ids are reused, and an exited thread is only
    /// noticed (and removed, with a [`EventKind::ThreadGone`] event) at the
    /// next interval.
    pub fn add_current_thread(&self) {
        self.add_thread(crate::sys::gettid());
    }

    /// Add thread `tid` of this process (`numakit::sys::gettid()` in that
    /// thread). See [`add_current_thread`](Self::add_current_thread).
    ///
    /// An id that is not a live thread of this process (0, negative, an
    /// exited thread, another process's thread) is never read or moved: the
    /// next interval removes it with an [`EventKind::ThreadGone`] event.
    pub fn add_thread(&self, tid: libc::pid_t) {
        let mut m = lock(&self.shared.members);
        if !m.threads.iter().any(|t| t.tid == tid) {
            m.threads.push(ThreadEntry { tid, pending: None });
        }
    }

    /// Remove the calling thread from the group.
    pub fn remove_current_thread(&self) {
        let tid = crate::sys::gettid();
        lock(&self.shared.members).threads.retain(|t| t.tid != tid);
    }

    /// Add the memory `[ptr, ptr + len)`. The balancer only queries and
    /// (with [`BalancePolicy::MovePages`]) migrates its pages, which keeps
    /// contents and addresses, so this is safe for any range; remove it
    /// (drop the group) before unmapping it, or the balancer samples
    /// whatever is mapped there next.
    ///
    /// # Errors
    /// [`SchedError::InvalidConfig`] for an empty or wrapping range.
    pub fn add_memory(&self, ptr: *const u8, len: usize) -> Result<(), SchedError> {
        let addr = ptr as usize;
        if len == 0 || addr.checked_add(len).is_none() {
            return Err(SchedError::InvalidConfig {
                what: "balanced memory range",
                reason: format!("{len} bytes at {addr:#x} is empty or wraps the address space"),
            });
        }
        lock(&self.shared.members).ranges.push((addr, len));
        Ok(())
    }

    /// Add the whole region of `arena` (its capacity, allocated or not).
    ///
    /// # Errors
    /// As [`add_memory`](Self::add_memory).
    pub fn add_arena(&self, arena: &Arena) -> Result<(), SchedError> {
        let (base, len) = arena.region_range();
        self.add_memory(base, len)
    }

    /// Apply what the balancer did to the calling thread that only the
    /// thread itself can do: after [`BalancePolicy::MoveThreads`] moved it
    /// to node M, rebind its memory policy to M if it was bound
    /// (`MPOL_BIND`, as after [`pin_to_node`](super::pin_to_node)); returns
    /// `Some(M)` then. `None` when there was nothing to do (not moved, or
    /// not bound: the default policy already follows the CPU).
    ///
    /// # Errors
    /// [`SchedError::Os`] if reading or setting the memory policy fails.
    pub fn checkpoint(&self) -> Result<Option<NodeId>, SchedError> {
        let tid = crate::sys::gettid();
        let pending = lock(&self.shared.members)
            .threads
            .iter_mut()
            .find(|t| t.tid == tid)
            .and_then(|t| t.pending.take());
        let Some(node) = pending else {
            return Ok(None);
        };
        let os = |call, source| SchedError::Os { call, source };
        let mut mask = vec![0; NODE_MASK_WORDS];
        let mode = sysmem::get_mempolicy(&mut mask, std::ptr::null(), 0)
            .map_err(|e| os("get_mempolicy", e))?;
        if mode != sysmem::MPOL_BIND {
            return Ok(None);
        }
        sysmem::try_node_mask(node.get())
            .and_then(|mask| sysmem::set_mempolicy(sysmem::MPOL_BIND, &mask))
            .map_err(|e| os("set_mempolicy(MPOL_BIND)", e))?;
        Ok(Some(node))
    }

    /// After a do-no-harm stop: watch and act on the group again.
    pub fn resume(&self) {
        self.shared.resume.store(true, Ordering::Release);
    }

    /// The group's state as of the last interval.
    pub fn report(&self) -> GroupReport {
        lock(&self.shared.report).clone()
    }
}

impl Drop for BalancedGroup {
    fn drop(&mut self) {
        if let Some(inner) = self.balancer.upgrade() {
            lock(&inner.groups).retain(|g| !Arc::ptr_eq(g, &self.shared));
        }
    }
}

impl Inner {
    fn run(&self) {
        let (flag, cv) = &self.stop;
        loop {
            {
                let stopped = lock(flag);
                let (stopped, _) = cv
                    .wait_timeout_while(stopped, self.interval, |s| !*s)
                    .unwrap_or_else(|p| p.into_inner());
                if *stopped {
                    return;
                }
            }
            self.run_interval();
        }
    }

    fn run_interval(&self) -> Vec<BalancerEvent> {
        let mut state = lock(&self.state);
        state.interval += 1;
        let interval = state.interval;
        let groups: Vec<Arc<GroupShared>> = lock(&self.groups).clone();
        state
            .groups
            .retain(|id, _| groups.iter().any(|g| g.id == *id));
        let machine = probe::Machine {
            topo: &self.topo,
            allowed: &self.allowed,
        };
        let mut actions_left = self.max_actions;
        let mut pages_left = self.max_pages;
        let mut events = Vec::new();
        for g in &groups {
            let rt = state.groups.entry(g.id).or_default();
            if g.resume.swap(false, Ordering::AcqRel) {
                rt.machine.resume();
            }
            self.step_group(
                g,
                rt,
                &machine,
                interval,
                &mut actions_left,
                &mut pages_left,
                &mut events,
            );
        }
        drop(state);
        for e in &events {
            crate::trace::balancer_event(e);
        }
        self.log_events(&events);
        if let Some(cb) = &self.on_event {
            let mut failed = Vec::new();
            for e in &events {
                // The callback is user code: a panic in it must not unwind
                // through (and end) the balancer's thread. Nothing of the
                // balancer is borrowed or locked here, so its state is
                // consistent whatever the callback did.
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(e)));
                if let Err(payload) = run {
                    let message = panic_message(payload);
                    {
                        let mut p = lock(&self.callback_panics);
                        p.count += 1;
                        p.last = Some(message.clone());
                    }
                    failed.push(BalancerEvent {
                        interval,
                        group: e.group.clone(),
                        kind: EventKind::Failed,
                        from: None,
                        to: None,
                        reason: format!(
                            "the on_event callback panicked on a {:?} event: {message}; \
                             the balancer keeps running",
                            e.kind
                        ),
                        pages_sampled: 0,
                        pages_by_node: Vec::new(),
                        locality: e.locality,
                        threads_moved: 0,
                        pages_moved: 0,
                        pages_failed: 0,
                        cache_misses: None,
                    });
                }
            }
            self.log_events(&failed);
            events.extend(failed);
        }
        events
    }

    fn log_events(&self, events: &[BalancerEvent]) {
        let mut log = lock(&self.log);
        for e in events {
            if log.len() == self.log_capacity {
                log.pop_front();
            }
            if self.log_capacity > 0 {
                log.push_back(e.clone());
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step_group(
        &self,
        g: &GroupShared,
        rt: &mut Runtime,
        machine: &probe::Machine<'_>,
        interval: u64,
        actions_left: &mut usize,
        pages_left: &mut usize,
        events: &mut Vec<BalancerEvent>,
    ) {
        let (tids, ranges): (Vec<libc::pid_t>, Vec<(usize, usize)>) = {
            let m = lock(&g.members);
            (m.threads.iter().map(|t| t.tid).collect(), m.ranges.clone())
        };
        let event = |kind, from, to, reason: String| BalancerEvent {
            interval,
            group: g.name.clone(),
            kind,
            from,
            to,
            reason,
            pages_sampled: 0,
            pages_by_node: Vec::new(),
            locality: 1.0,
            threads_moved: 0,
            pages_moved: 0,
            pages_failed: 0,
            cache_misses: None,
        };
        // Threads: masks, exits.
        let mut live = Vec::with_capacity(tids.len());
        let mut masks = Vec::with_capacity(tids.len());
        for tid in tids {
            match probe::thread_mask(tid) {
                Ok(Some(mask)) => {
                    live.push(tid);
                    masks.push(mask);
                }
                Ok(None) => {
                    lock(&g.members).threads.retain(|t| t.tid != tid);
                    rt.counters.remove(&tid);
                    events.push(event(
                        EventKind::ThreadGone,
                        None,
                        None,
                        format!(
                            "thread {tid} exited (or is not a thread of this process); \
                             removed from the group"
                        ),
                    ));
                }
                Err(e) => events.push(event(
                    EventKind::Failed,
                    None,
                    None,
                    format!("sched_getaffinity({tid}) failed: {e}"),
                )),
            }
        }
        let threads = probe::place(machine, &masks);
        let cache_misses = self.cache_misses(rt, &live);
        let (pages, sampled) = match probe::sample_pages(&ranges, self.sample_pages) {
            Ok(x) => x,
            Err(e) => {
                events.push(event(
                    EventKind::Failed,
                    None,
                    None,
                    format!("move_pages (query) of sampled pages failed: {e}"),
                ));
                return;
            }
        };
        let sample = Sample {
            threads,
            pages,
            sampled,
            cache_misses,
        };
        let with_sample = |mut e: BalancerEvent| {
            e.pages_sampled = sample.sampled;
            e.pages_by_node = sample.pages.iter().map(|(&n, &c)| (n, c)).collect();
            e.locality = sample.locality();
            e.cache_misses = sample.cache_misses;
            e
        };
        let budget =
            *actions_left > 0 && (self.rules.policy != BalancePolicy::MovePages || *pages_left > 0);
        let step = rt.machine.step(&self.rules, &sample, budget, machine);
        let mut acted = false;
        match step {
            Step::Quiet => {}
            Step::Act {
                kind: ActionKind::MoveThreads,
                from,
                to,
                reason,
            } => {
                *actions_left -= 1;
                let cpus = machine.cpus_of(to);
                let (mut moved, mut errors) = (0, Vec::new());
                for &tid in &live {
                    match probe::move_thread(tid, &cpus) {
                        Ok(true) => {
                            moved += 1;
                            if let Some(t) =
                                lock(&g.members).threads.iter_mut().find(|t| t.tid == tid)
                            {
                                t.pending = Some(to);
                            }
                        }
                        Ok(false) => {}
                        Err(e) => errors.push(format!("sched_setaffinity({tid}): {e}")),
                    }
                }
                if moved > 0 {
                    rt.machine.acted(sample.locality());
                    acted = true;
                    let mut e = with_sample(event(EventKind::ThreadsMoved, from, Some(to), reason));
                    e.threads_moved = moved;
                    events.push(e);
                } else {
                    rt.machine.failed();
                }
                if !errors.is_empty() {
                    events.push(with_sample(event(
                        EventKind::Failed,
                        from,
                        Some(to),
                        errors.join("; "),
                    )));
                }
            }
            Step::Act {
                kind: ActionKind::MovePages,
                from,
                to,
                reason,
            } => {
                *actions_left -= 1;
                match probe::migrate_pages(&ranges, to, *pages_left) {
                    Ok((moved, failed)) => {
                        *pages_left = pages_left.saturating_sub(moved + failed);
                        // Verified next interval even if nothing moved:
                        // no improvement then stops the group (do no harm).
                        rt.machine.acted(sample.locality());
                        acted = true;
                        let mut e =
                            with_sample(event(EventKind::PagesMigrated, from, Some(to), reason));
                        e.pages_moved = moved;
                        e.pages_failed = failed;
                        events.push(e);
                    }
                    Err(err) => {
                        rt.machine.failed();
                        events.push(with_sample(event(
                            EventKind::Failed,
                            from,
                            Some(to),
                            format!("move_pages (MPOL_MF_MOVE) to node {to} failed: {err}"),
                        )));
                    }
                }
            }
            Step::Verified {
                improved,
                before,
                after,
            } => {
                let (kind, reason) = if improved {
                    (
                        EventKind::Improved,
                        format!("locality {:.0}% -> {:.0}%", before * 100.0, after * 100.0),
                    )
                } else {
                    (
                        EventKind::Stopped,
                        format!(
                            "locality {:.0}% -> {:.0}% did not improve: leaving the group alone \
                             (do no harm); BalancedGroup::resume() re-enables it",
                            before * 100.0,
                            after * 100.0
                        ),
                    )
                };
                let to = match &sample.threads {
                    ThreadPlace::One(n) => Some(*n),
                    _ => None,
                };
                events.push(with_sample(event(kind, None, to, reason)));
            }
            Step::Skip { from, to, reason } => {
                events.push(with_sample(event(EventKind::Skipped, from, to, reason)))
            }
            Step::Defer { from, to } => events.push(with_sample(event(
                EventKind::Deferred,
                from,
                Some(to),
                "this interval's budget of actions or pages is spent".into(),
            ))),
        }
        let mut report = lock(&g.report);
        report.phase = rt.machine.phase;
        report.threads = live.len();
        report.thread_nodes = match &sample.threads {
            ThreadPlace::NoThreads => Vec::new(),
            ThreadPlace::One(n) => vec![*n],
            ThreadPlace::Spread(ns) => ns.clone(),
        };
        report.memory_node = sample.majority().map(|(n, _)| n);
        report.locality = Some(sample.locality());
        report.pages_sampled = sample.sampled;
        report.cache_misses = sample.cache_misses;
        if acted {
            report.actions += 1;
        }
    }

    /// Cache misses of `tids` since the last interval, where counters
    /// exist (`None` otherwise, or when one cannot be read).
    fn cache_misses(&self, rt: &mut Runtime, tids: &[libc::pid_t]) -> Option<u64> {
        if !self.counters.is_available() || tids.is_empty() {
            return None;
        }
        let mut total = 0u64;
        for &tid in tids {
            let slot = rt
                .counters
                .entry(tid)
                .or_insert_with(|| probe::open_counter(tid).ok().map(|fd| (fd, 0)));
            let (fd, last) = slot.as_mut()?;
            let now = crate::sys::perf::read_counter(fd).ok()?;
            total += now.saturating_sub(*last);
            *last = now;
        }
        Some(total)
    }
}
