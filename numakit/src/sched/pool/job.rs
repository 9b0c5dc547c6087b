//! A queued job and the [`JobHandle`] that waits for its result.
//!
//! Two kinds of job travel through the queues:
//!
//! - [`Job::Fn`]: a boxed closure without a handle (`execute`, senders);
//! - [`Job::Task`]: a job with a handle. The closure, the result and the
//!   state word live in one `Arc<Task>` shared by the queue entry and the
//!   [`JobHandle`]: one allocation per job, usually freed by the joiner.
//!   Running it stores the result (or the caught panic); dropping the queue
//!   entry without running it (a `shutdown_now()`, or queues dropped)
//!   stores "cancelled" instead, so a handle always gets an answer.
//!
//! The task's state word is a futex:
//!
//! | state | meaning | who moves it |
//! |---|---|---|
//! | `PENDING` | no result yet, nobody waits | start |
//! | `PENDING` + `SLEEPING` bit | no result yet, a joiner sleeps on the word | joiner |
//! | `PENDING` + `WAKER` bit | no result yet, a `Waker` is in `waker` | `poll` (under the `waker` lock) |
//! | `DONE` | the result is in `cell` | completer (swap; futex wake if `SLEEPING` was set, wakes the `Waker` if `WAKER` was) |
//!
//! The two bits are only ever set on a word that is not `DONE`, and `DONE`
//! is only stored whole, so `state == DONE` always means finished. The
//! completer never makes a system call unless a joiner sleeps, and takes the
//! `waker` lock only when a future registered a waker.

use super::worker;
use crate::sched::SchedError;
use crate::sys::futex;
use crate::topology::NodeId;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A queued unit of work.
pub(super) enum Job {
    /// Fire and forget.
    Fn(FnJob),
    /// With a handle; cancels the task when dropped unrun.
    Task(TaskRef),
}

impl Job {
    /// Run the job; whether it panicked without a handle to report to.
    #[inline]
    pub(super) fn run(self) -> bool {
        match self {
            Job::Fn(mut f) => match f.0.take() {
                Some(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err(),
                None => false,
            },
            Job::Task(mut t) => match t.0.take() {
                // The queue's reference may be the task's last (its handle
                // was dropped): dropping it drops the job's value, whose
                // `Drop` is user code that may panic, and which must not
                // take the worker with it.
                Some(task) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    task.run();
                    drop(task);
                }))
                .is_err(),
                None => false,
            },
        }
    }
}

impl Job {
    /// A fire-and-forget job running `f`.
    pub(super) fn func(f: impl FnOnce() + Send + 'static) -> Job {
        Job::Fn(FnJob(Some(Box::new(f))))
    }
}

/// A fire-and-forget closure. Dropped unrun (cancelled), its captures are
/// dropped under `catch_unwind`, as they would be by running it: a `Drop`
/// that panics must not unwind into the queue's drop (`shutdown_now`, the
/// pool's drop, a worker draining its deque), where a second one aborts.
pub(super) struct FnJob(Option<Box<dyn FnOnce() + Send + 'static>>);

impl Drop for FnJob {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(f)));
        }
    }
}

/// The queue's reference to a task.
pub(super) struct TaskRef(Option<Arc<dyn Runnable>>);

impl Drop for TaskRef {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.cancel();
        }
    }
}

/// A task seen from the queue: run it or cancel it.
pub(super) trait Runnable: Send + Sync {
    fn run(&self);
    fn cancel(&self);
}

const PENDING: u32 = 0;
/// Bit: a joiner sleeps on the word.
const SLEEPING: u32 = 1;
const DONE: u32 = 2;
/// Bit: a future's waker is in the task's `waker` slot.
const WAKER: u32 = 4;

/// Set `bit` on `state` unless it is `DONE`; the word it ended as.
fn set_bit(state: &AtomicU32, bit: u32) -> u32 {
    let mut s = state.load(Ordering::Acquire);
    loop {
        if s == DONE || s & bit != 0 {
            return s;
        }
        match state.compare_exchange_weak(s, s | bit, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return s | bit,
            Err(now) => s = now,
        }
    }
}

enum Cell<F, T> {
    Ready(F),
    Running,
    Done(Result<T, SchedError>),
    Taken,
}

/// A job with its result slot.
struct Task<F, T> {
    state: AtomicU32,
    node: Option<NodeId>,
    cell: Mutex<Cell<F, T>>,
    /// The waker of the last `poll` that found no result.
    waker: Mutex<Option<Waker>>,
}

impl<F, T> Runnable for Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) {
        let f = {
            let mut cell = self.cell.lock().unwrap_or_else(|p| p.into_inner());
            match std::mem::replace(&mut *cell, Cell::Running) {
                Cell::Ready(f) => f,
                other => {
                    *cell = other;
                    return;
                }
            }
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|payload| panicked(self.node, payload.as_ref()));
        self.finish(result);
    }

    fn cancel(&self) {
        let f = {
            let mut cell = self.cell.lock().unwrap_or_else(|p| p.into_inner());
            match std::mem::replace(&mut *cell, Cell::Running) {
                Cell::Ready(f) => f,
                other => {
                    *cell = other;
                    return;
                }
            }
        };
        // The handle gets its answer first; then the closure is dropped,
        // outside the lock: its captures are user values whose `Drop` may
        // panic, which must neither leave the handle unanswered nor unwind
        // into the queue's drop (`shutdown_now`, the pool's drop).
        self.finish(Err(SchedError::JobCancelled { node: self.node }));
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(f)));
    }
}

impl<F, T> Task<F, T> {
    fn finish(&self, result: Result<T, SchedError>) {
        *self.cell.lock().unwrap_or_else(|p| p.into_inner()) = Cell::Done(result);
        let was = self.state.swap(DONE, Ordering::AcqRel);
        if was & SLEEPING != 0 {
            let _ = futex::futex_wake(&self.state, u32::MAX);
        }
        if was & WAKER != 0 {
            let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// The handle's view of a task.
trait Outcome<T>: Send + Sync {
    fn state(&self) -> &AtomicU32;
    fn take(&self) -> Option<Result<T, SchedError>>;
    /// Keep `waker` to wake when the task finishes; whether it already has
    /// (then `waker` is not kept).
    fn register(&self, waker: &Waker) -> bool;
}

impl<F, T> Outcome<T> for Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn state(&self) -> &AtomicU32 {
        &self.state
    }
    fn take(&self) -> Option<Result<T, SchedError>> {
        let mut cell = self.cell.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *cell, Cell::Taken) {
            Cell::Done(r) => Some(r),
            other => {
                *cell = other;
                None
            }
        }
    }
    fn register(&self, waker: &Waker) -> bool {
        // Under the lock: a completer that swapped in DONE before this
        // store is seen by the check below; one that swaps after it sees
        // the WAKER bit and takes the lock after this section.
        let mut slot = self.waker.lock().unwrap_or_else(|p| p.into_inner());
        if self.state.load(Ordering::Acquire) == DONE {
            return true;
        }
        match &mut *slot {
            Some(w) if w.will_wake(waker) => {}
            other => *other = Some(waker.clone()),
        }
        set_bit(&self.state, WAKER) == DONE
    }
}

/// Wait until `state` is `DONE` or `deadline`; whether it is done. On a
/// pool worker, run the worker's other jobs meanwhile.
fn wait(state: &AtomicU32, deadline: Option<Instant>) -> bool {
    let on_worker = worker::on_worker();
    // Short jobs finish within microseconds: spin (then yield) a little
    // before sleeping, which saves the completer a futex wake and this
    // thread a context switch.
    let backoff = crossbeam_utils::Backoff::new();
    loop {
        let s = state.load(Ordering::Acquire);
        if s == DONE {
            return true;
        }
        if !backoff.is_completed() && !on_worker {
            backoff.snooze();
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        if on_worker && worker::help_once() {
            continue;
        }
        let s = set_bit(state, SLEEPING);
        if s == DONE {
            return true;
        }
        let mut timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if on_worker {
            // New jobs for this worker do not wake it here: poll.
            timeout = Some(timeout.map_or(HELP_POLL, |t| t.min(HELP_POLL)));
        }
        // EAGAIN (already DONE), EINTR, ETIMEDOUT: the loop re-checks.
        let _ = futex::futex_wait(state, s, timeout);
    }
}

/// How long a worker waiting for a result sleeps between looks for other
/// work.
const HELP_POLL: Duration = Duration::from_micros(500);

/// A job paired with the handle that gets its result.
pub(super) fn with_handle<T, F>(f: F, node: Option<NodeId>) -> (Job, JobHandle<T>)
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let task = Arc::new(Task {
        state: AtomicU32::new(PENDING),
        node,
        cell: Mutex::new(Cell::Ready(f)),
        waker: Mutex::new(None),
    });
    let job = Job::Task(TaskRef(Some(Arc::clone(&task) as Arc<dyn Runnable>)));
    (job, JobHandle { task, node })
}

/// The error for a caught panic, with its message when it is a string.
fn panicked(node: Option<NodeId>, payload: &(dyn Any + Send)) -> SchedError {
    SchedError::JobPanicked {
        node,
        message: crate::error::panic_message(payload),
    }
}

/// The result of a submitted job, to [`join`](JobHandle::join), or to
/// `.await` (the handle is a [`Future`] of the same result, so an async
/// runtime can wait for a pool job without blocking a thread).
///
/// Dropping the handle detaches the job: it still runs, its result is
/// dropped.
///
/// # Examples
/// ```
/// use numakit::sched::NodePool;
/// let pool = NodePool::new()?;
/// let h = pool.submit_to(0, || 6 * 7)?;
/// assert_eq!(h.join()?, 42);
/// # Ok::<(), numakit::Error>(())
/// ```
#[must_use = "dropping a JobHandle detaches the job; join() it to get the result"]
pub struct JobHandle<T> {
    task: Arc<dyn Outcome<T>>,
    node: Option<NodeId>,
}

impl<T> JobHandle<T> {
    /// The node the job is bound to, or `None` for an unbound job
    /// ([`NodePool::submit`](super::NodePool::submit)).
    pub fn node(&self) -> Option<NodeId> {
        self.node
    }

    /// Whether the job has finished (ran, panicked or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.state().load(Ordering::Acquire) == DONE
    }

    /// Wait up to `timeout` for the job to finish; whether it has.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        wait(self.task.state(), Instant::now().checked_add(timeout))
    }

    /// Wait for the job and return what it returned.
    ///
    /// Called from a job of a [`NodePool`](super::NodePool), the waiting
    /// worker runs other jobs it may run (bound to its node, or unbound)
    /// until the result is there, so a job can wait for jobs it submitted
    /// to its own node even when the node has a single worker.
    ///
    /// # Errors
    /// - [`SchedError::JobPanicked`] with the panic message when the job
    ///   panicked (the worker caught it and goes on);
    /// - [`SchedError::JobCancelled`] when the job never ran
    ///   ([`NodePool::shutdown_now`](super::NodePool::shutdown_now)).
    pub fn join(self) -> Result<T, SchedError> {
        wait(self.task.state(), None);
        self.task
            .take()
            .unwrap_or(Err(SchedError::JobCancelled { node: self.node }))
    }
}

/// Awaiting a handle gives what [`join`](JobHandle::join) gives, without
/// blocking: the job's completion wakes the task that awaits it.
///
/// Once it has returned `Ready`, polling again returns
/// `Err(`[`SchedError::JobCancelled`]`)`: the result was taken.
///
/// # Examples
/// ```
/// use numakit::sched::NodePool;
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
///
/// let pool = NodePool::new()?;
/// let mut h = pool.submit_to(0, || 6 * 7)?;
/// let mut cx = Context::from_waker(Waker::noop());
/// let answer = loop {
///     if let Poll::Ready(r) = pin!(&mut h).poll(&mut cx) {
///         break r?;
///     }
///     std::thread::yield_now();
/// };
/// assert_eq!(answer, 42);
/// # Ok::<(), numakit::Error>(())
/// ```
impl<T> Future for JobHandle<T> {
    type Output = Result<T, SchedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.task.state().load(Ordering::Acquire) != DONE && !this.task.register(cx.waker()) {
            return Poll::Pending;
        }
        Poll::Ready(
            this.task
                .take()
                .unwrap_or(Err(SchedError::JobCancelled { node: this.node })),
        )
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("node", &self.node)
            .field("finished", &self.is_finished())
            .finish()
    }
}
