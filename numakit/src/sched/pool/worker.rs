//! The shared state of a pool and the worker loop: queues, stealing,
//! sleeping and shutdown.
//!
//! # Queues (per node)
//!
//! | queue | holds | who takes from it |
//! |---|---|---|
//! | `bound` injector | jobs bound to the node, from outside the node's workers | the node's workers only |
//! | a worker's local deque | bound jobs a worker of the node queued for its own node | that worker, then its siblings (same node) |
//! | `any` injector | unbound jobs whose home is this node | the node's workers, then workers of other nodes, nearest first |
//!
//! A worker looks in this order: its local deque; its node's `bound`
//! injector (taking a batch into the local deque); its node's `any`
//! injector; its siblings' local deques (a *local steal*); the `any`
//! injectors of the other nodes, nearest by distance first (a *remote
//! steal*). Node-bound jobs are never in a queue that another node's
//! worker reads, so "a job submitted to node N runs on node N" holds by
//! construction, stealing included.
//!
//! # Sleeping
//!
//! An idle worker spins briefly, then registers in its node's idle list,
//! looks once more, and parks. A submitter pushes, issues a `SeqCst`
//! fence, and unparks one idle worker of the node (for unbound jobs, of
//! the nearest node that has one) if the idle count is non-zero. Either the
//! worker's second look sees the job or the submitter sees the worker
//! (Dekker), and `unpark` before `park` is not lost.
//!
//! # Shutdown and counting
//!
//! Each node counts jobs submitted to it; each worker counts jobs it ran;
//! the pool counts jobs cancelled and submissions refused. A submitter
//! increments `submitted` *before* checking `closing`, so after
//! `closing` is set every job that slipped in is counted. Draining ends
//! when, reading the finished counts and then the submitted counts,
//! `ran + cancelled + refused == submitted`: no job is queued or running,
//! and none can appear (outsiders are refused, and only running jobs may
//! still submit).

use super::job::Job;
use crate::topology::{CpuSet, NodeId};
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::{Backoff, CachePadded};
use std::cell::RefCell;
use std::sync::atomic::{fence, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// `closing`: the pool takes jobs.
pub(super) const OPEN: u8 = 0;
/// `closing`: `shutdown()` — outsiders refused, queued jobs run.
pub(super) const DRAIN: u8 = 1;
/// `closing`: `shutdown_now()` — workers stop, queued jobs are cancelled.
pub(super) const CANCEL: u8 = 2;

/// `yield_now` rounds an idle worker makes (after its spin backoff) before
/// it parks.
const IDLE_ROUNDS: u32 = 32;

/// How long an idle worker parks before looking again (a safety net: every
/// job that can run on it wakes it).
const PARK: Duration = Duration::from_millis(100);
/// The same while draining, where the end is detected by polling too.
const PARK_DRAINING: Duration = Duration::from_millis(2);

/// One node's queues and counters.
pub(super) struct NodeQueues {
    pub(super) id: NodeId,
    pub(super) cpus: CpuSet,
    pub(super) has_memory: bool,
    pub(super) bound: Injector<Job>,
    pub(super) any: Injector<Job>,
    /// Jobs queued to this node (bound or unbound), refused ones included.
    pub(super) submitted: CachePadded<AtomicU64>,
    /// Of those, unbound.
    pub(super) submitted_unbound: AtomicU64,
    /// Indices (into `Shared::workers`) of this node's workers.
    pub(super) workers: std::ops::Range<usize>,
    /// Other pool nodes, nearest first: where this node's workers steal
    /// unbound jobs, and whom an unbound job of this node may wake.
    pub(super) steal_order: Vec<usize>,
    idle: Mutex<Vec<usize>>,
    idle_count: CachePadded<AtomicUsize>,
}

impl NodeQueues {
    pub(super) fn new(
        id: NodeId,
        cpus: CpuSet,
        has_memory: bool,
        workers: std::ops::Range<usize>,
        steal_order: Vec<usize>,
    ) -> Self {
        NodeQueues {
            id,
            cpus,
            has_memory,
            bound: Injector::new(),
            any: Injector::new(),
            submitted: CachePadded::new(AtomicU64::new(0)),
            submitted_unbound: AtomicU64::new(0),
            workers,
            steal_order,
            idle: Mutex::new(Vec::new()),
            idle_count: CachePadded::new(AtomicUsize::new(0)),
        }
    }
}

/// Counters a worker alone writes (plain load + store), others read.
#[derive(Default)]
pub(super) struct WorkerCounters {
    /// Jobs finished (returned or panicked).
    pub(super) ran: AtomicU64,
    /// Of those, jobs that panicked.
    pub(super) panicked: AtomicU64,
    /// Jobs taken from a sibling's local deque.
    pub(super) local_steals: AtomicU64,
    /// Unbound jobs taken from another node's queue.
    pub(super) remote_steals: AtomicU64,
}

fn bump(c: &AtomicU64) {
    // Single writer: no read-modify-write needed.
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// What other threads know about a worker.
pub(super) struct WorkerSlot {
    pub(super) node: usize,
    pub(super) stealer: Stealer<Job>,
    pub(super) thread: OnceLock<Thread>,
    pub(super) counters: CachePadded<WorkerCounters>,
}

/// Everything the pool's threads share.
pub(super) struct Shared {
    /// Unique per pool: tells a worker of this pool from one of another.
    pub(super) id: usize,
    pub(super) nodes: Vec<NodeQueues>,
    pub(super) workers: Vec<WorkerSlot>,
    pub(super) closing: AtomicU8,
    pub(super) cancelled: AtomicU64,
    pub(super) refused: AtomicU64,
}

/// The calling thread's identity when it is a pool worker.
pub(super) struct Ctx {
    pub(super) shared: Arc<Shared>,
    pub(super) pool: usize,
    pub(super) node: usize,
    pub(super) worker: usize,
    pub(super) local: Worker<Job>,
}

thread_local! {
    static CURRENT: RefCell<Option<Ctx>> = const { RefCell::new(None) };
}

/// Run `f` with the calling thread's worker context, if it is a worker of
/// pool `pool`.
pub(super) fn with_ctx<R>(pool: usize, f: impl FnOnce(Option<&Ctx>) -> R) -> R {
    CURRENT.with(|c| {
        let c = c.borrow();
        f(c.as_ref().filter(|ctx| ctx.pool == pool))
    })
}

/// On a pool worker: run one job the worker may run (its node's, or an
/// unbound one), as the worker loop would; whether there was one. Used by
/// `JobHandle::join` so that a job waiting for another job of the same
/// pool helps instead of blocking its worker (a node with one worker would
/// otherwise deadlock). Returns `false` on other threads.
pub(super) fn help_once() -> bool {
    let found = CURRENT.with(|c| {
        let c = c.borrow();
        let ctx = c.as_ref()?;
        let shared = &ctx.shared;
        if shared.closing.load(Ordering::Acquire) == CANCEL {
            // Stopping: cancel what is queued instead of running it, so
            // that a job waiting for a queued job gets its answer.
            let mut n = 0;
            while let Some(job) = ctx.local.pop() {
                drop(job);
                n += 1;
            }
            for w in &shared.workers {
                loop {
                    match w.stealer.steal() {
                        Steal::Success(job) => {
                            drop(job);
                            n += 1;
                        }
                        Steal::Retry => continue,
                        Steal::Empty => break,
                    }
                }
            }
            shared.cancelled.fetch_add(n, Ordering::SeqCst);
            n += shared.cancel_queued();
            return (n > 0).then_some(None);
        }
        shared
            .find_job(ctx)
            .map(|job| Some((Arc::clone(shared), ctx.worker, job)))
    });
    match found {
        Some(Some((shared, worker, job))) => {
            shared.run(worker, job);
            true
        }
        Some(None) => true,
        None => false,
    }
}

/// Whether the calling thread is a worker of any pool.
pub(super) fn on_worker() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// The pool id and node index of the calling thread, if it is a worker.
pub(super) fn current_worker() -> Option<(usize, usize)> {
    CURRENT.with(|c| c.borrow().as_ref().map(|ctx| (ctx.pool, ctx.node)))
}

impl Shared {
    /// Wake one idle worker of node `n`; whether one was woken.
    fn wake_one(&self, n: usize) -> bool {
        let node = &self.nodes[n];
        if node.idle_count.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let w = {
            let mut idle = node.idle.lock().unwrap_or_else(|p| p.into_inner());
            let w = idle.pop();
            node.idle_count.store(idle.len(), Ordering::SeqCst);
            w
        };
        match w.and_then(|w| self.workers[w].thread.get()) {
            Some(t) => {
                t.unpark();
                true
            }
            None => false,
        }
    }

    /// After pushing a job to node `n`: wake a worker that may run it.
    pub(super) fn notify(&self, n: usize, bound: bool) {
        fence(Ordering::SeqCst);
        if self.wake_one(n) || bound {
            return;
        }
        for &other in &self.nodes[n].steal_order {
            if self.wake_one(other) {
                return;
            }
        }
    }

    /// Unpark every worker (closing).
    pub(super) fn wake_all(&self) {
        for w in &self.workers {
            if let Some(t) = w.thread.get() {
                t.unpark();
            }
        }
    }

    /// Whether every submitted job has finished (see the module doc).
    pub(super) fn drained(&self) -> bool {
        let mut finished =
            self.cancelled.load(Ordering::SeqCst) + self.refused.load(Ordering::SeqCst);
        for w in &self.workers {
            finished += w.counters.ran.load(Ordering::Acquire);
        }
        let submitted: u64 = self
            .nodes
            .iter()
            .map(|n| n.submitted.load(Ordering::SeqCst))
            .sum();
        finished >= submitted
    }

    /// Drop every job in the injectors (cancelling them); how many.
    pub(super) fn cancel_queued(&self) -> u64 {
        let mut n = 0;
        for node in &self.nodes {
            for q in [&node.bound, &node.any] {
                loop {
                    match q.steal() {
                        Steal::Success(job) => {
                            drop(job);
                            n += 1;
                        }
                        Steal::Retry => continue,
                        Steal::Empty => break,
                    }
                }
            }
        }
        self.cancelled.fetch_add(n, Ordering::SeqCst);
        n
    }

    /// The next job for the worker `ctx`, in the order of the module doc.
    fn find_job(&self, ctx: &Ctx) -> Option<Job> {
        if let Some(job) = ctx.local.pop() {
            return Some(job);
        }
        let node = &self.nodes[ctx.node];
        let counters = &self.workers[ctx.worker].counters;
        loop {
            let mut retry = false;
            match node.bound.steal_batch_and_pop(&ctx.local) {
                Steal::Success(job) => return Some(job),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            match node.any.steal() {
                Steal::Success(job) => return Some(job),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            // Siblings, starting after this worker so that they share the
            // load instead of all hitting the first one.
            let (lo, hi) = (node.workers.start, node.workers.end);
            for i in (ctx.worker + 1..hi).chain(lo..ctx.worker) {
                match self.workers[i].stealer.steal() {
                    Steal::Success(job) => {
                        bump(&counters.local_steals);
                        return Some(job);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            for &other in &node.steal_order {
                match self.nodes[other].any.steal() {
                    Steal::Success(job) => {
                        bump(&counters.remote_steals);
                        return Some(job);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    fn run(&self, ctx_worker: usize, job: Job) {
        let counters = &self.workers[ctx_worker].counters;
        if job.run() {
            // Jobs with a handle report their own panic; this one had none.
            bump(&counters.panicked);
        }
        bump(&counters.ran);
    }

    fn set_idle(&self, n: usize, w: usize, idle: bool) {
        let node = &self.nodes[n];
        let mut list = node.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle {
            list.push(w);
        } else {
            list.retain(|&x| x != w);
        }
        node.idle_count.store(list.len(), Ordering::SeqCst);
    }
}

/// The worker loop; returns when the pool closes.
pub(super) fn worker_loop(shared: &Arc<Shared>, node: usize, worker: usize, local: Worker<Job>) {
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Ctx {
            shared: Arc::clone(shared),
            pool: shared.id,
            node,
            worker,
            local,
        })
    });
    let next = || CURRENT.with(|c| shared.find_job(c.borrow().as_ref().expect("worker context")));
    let backoff = Backoff::new();
    let mut idle_rounds = 0;
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        if closing == CANCEL {
            break;
        }
        if let Some(job) = next() {
            shared.run(worker, job);
            backoff.reset();
            idle_rounds = 0;
            continue;
        }
        if closing == DRAIN && shared.drained() {
            shared.wake_all();
            break;
        }
        if idle_rounds < IDLE_ROUNDS {
            // Spin, then yield, for a while before parking: a job that
            // comes within tens of microseconds is taken without a wake.
            if backoff.is_completed() {
                idle_rounds += 1;
                std::thread::yield_now();
            } else {
                backoff.snooze();
            }
            continue;
        }
        // Sleep: register as idle, look once more, park.
        shared.set_idle(node, worker, true);
        fence(Ordering::SeqCst);
        if let Some(job) = next() {
            shared.set_idle(node, worker, false);
            shared.run(worker, job);
            backoff.reset();
            idle_rounds = 0;
            continue;
        }
        let timeout = if shared.closing.load(Ordering::Acquire) == OPEN {
            PARK
        } else {
            PARK_DRAINING
        };
        std::thread::park_timeout(timeout);
        shared.set_idle(node, worker, false);
    }
    // Cancel what is left in the local deque (only this thread can pop it
    // empty; siblings may be gone already).
    let ctx = CURRENT.with(|c| c.borrow_mut().take());
    if let Some(ctx) = ctx {
        let mut n = 0;
        while let Some(job) = ctx.local.pop() {
            drop(job);
            n += 1;
        }
        shared.cancelled.fetch_add(n, Ordering::SeqCst);
    }
}
