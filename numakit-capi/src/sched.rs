//! `sched.h`: pinning and where the calling thread runs, on numakit's
//! [`pin_to_node`](nk::sched::pin_to_node), [`pin_to_cpu`](nk::sched::pin_to_cpu)
//! and `getcpu(2)`.
//!
//! The C API pins without a guard object: the guards numakit returns are
//! kept per thread, innermost last, and `nkit_unbind_thread` drops them all,
//! which restores the CPU mask and memory policy the thread had before its
//! first pin.

use crate::error::{
    cpu_arg, ffi, node_arg, to_int, CError, NKIT_ERR_INVALID_ARGUMENT, NKIT_ERR_UNSUPPORTED,
};
use nk::sched::{spawn_group, GroupHandle, PinGuard, ThreadPlacement};
use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

/// `nkit_thread_policy_t`'s `type`: all CPUs of a node.
pub const NKIT_POLICY_BIND_NODE: c_int = 0;
/// `nkit_thread_policy_t`'s `type`: one CPU.
pub const NKIT_POLICY_STRICT_CPU: c_int = 1;

/// `nkit_thread_policy_t` as C lays it out: the enum, then the union of
/// `node_id` and `cpu_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NkitThreadPolicy {
    /// `NKIT_POLICY_BIND_NODE` or `NKIT_POLICY_STRICT_CPU`.
    pub kind: c_int,
    /// The node or CPU id.
    pub id: c_int,
}

struct Pins(Vec<PinGuard>);

impl Drop for Pins {
    fn drop(&mut self) {
        // At thread exit: undo the pins innermost first; a panic here
        // (thread-locals already gone) must not abort the process.
        let guards = std::mem::take(&mut self.0);
        let _ = catch_unwind(AssertUnwindSafe(move || {
            for g in guards.into_iter().rev() {
                drop(g);
            }
        }));
    }
}

thread_local! {
    static PINS: RefCell<Pins> = const { RefCell::new(Pins(Vec::new())) };
}

/// Record `guard` for `nkit_unbind_thread`. Refused once the thread's
/// record is gone (a call from a pthread key destructor, after the
/// thread-locals were destroyed): the pin is undone at once.
fn keep(guard: PinGuard) -> Result<(), CError> {
    let mut guard = Some(guard);
    let kept = PINS.try_with(|p| {
        if let (Ok(mut pins), Some(g)) = (p.try_borrow_mut(), guard.take()) {
            pins.0.push(g);
        }
    });
    match (kept, guard) {
        (Ok(()), None) => Ok(()),
        _ => Err(CError::new(
            NKIT_ERR_UNSUPPORTED,
            "the thread is exiting and can no longer record a pin (a call from a pthread key \
             destructor); pin the thread before it exits",
        )),
    }
}

/// Drop the calling thread's pins, innermost first.
pub(crate) fn unpin_calling_thread() {
    let guards = PINS.with(|p| std::mem::take(&mut p.borrow_mut().0));
    for g in guards.into_iter().rev() {
        drop(g);
    }
}

/// Pin the calling thread to `node_id`'s CPUs and bind its memory policy to
/// the node. 0, or -1 (node absent, without CPUs or memory, not allowed).
#[no_mangle]
pub extern "C" fn nkit_bind_thread(node_id: c_int) -> c_int {
    ffi("nkit_bind_thread", -1, || {
        let node = node_arg(node_id, "nkit_bind_thread")?;
        keep(nk::sched::pin_to_node(node)?)?;
        Ok(0)
    })
}

/// Undo every `nkit_bind_thread` / `nkit_pin_thread_to_*` of the calling
/// thread: its CPU mask and memory policy are as before the first. 0.
#[no_mangle]
pub extern "C" fn nkit_unbind_thread() -> c_int {
    ffi("nkit_unbind_thread", -1, || {
        unpin_calling_thread();
        Ok(0)
    })
}

/// Pin the calling thread to CPU `core_id` (memory bound to its node).
#[no_mangle]
pub extern "C" fn nkit_pin_thread_to_core(core_id: c_int) -> c_int {
    ffi("nkit_pin_thread_to_core", -1, || {
        let cpu = cpu_arg(core_id, "nkit_pin_thread_to_core")?;
        keep(nk::sched::pin_to_cpu(cpu)?)?;
        Ok(0)
    })
}

/// Pin the calling thread to `node_id` (as `nkit_bind_thread`).
#[no_mangle]
pub extern "C" fn nkit_pin_thread_to_node(node_id: c_int) -> c_int {
    ffi("nkit_pin_thread_to_node", -1, || {
        let node = node_arg(node_id, "nkit_pin_thread_to_node")?;
        keep(nk::sched::pin_to_node(node)?)?;
        Ok(0)
    })
}

fn node_now() -> Result<c_int, CError> {
    to_int(nk::current_node()?.get() as usize, "the node id")
}

fn cpu_now() -> Result<c_int, CError> {
    to_int(nk::current_cpu()?.get() as usize, "the CPU id")
}

/// The node the calling thread runs on now, or -1.
#[no_mangle]
pub extern "C" fn nkit_current_node() -> c_int {
    ffi("nkit_current_node", -1, node_now)
}

/// The CPU the calling thread runs on now, or -1.
#[no_mangle]
pub extern "C" fn nkit_current_cpu() -> c_int {
    ffi("nkit_current_cpu", -1, cpu_now)
}

/// As `nkit_current_cpu`.
#[no_mangle]
pub extern "C" fn nkit_get_current_core() -> c_int {
    ffi("nkit_get_current_core", -1, cpu_now)
}

/// As `nkit_current_node`.
#[no_mangle]
pub extern "C" fn nkit_get_current_node() -> c_int {
    ffi("nkit_get_current_node", -1, node_now)
}

/// `nkit_thread_func_t`.
pub type NkitThreadFunc = Option<unsafe extern "C" fn(*mut c_void)>;

/// The argument of a launched thread.
struct Arg(*mut c_void);

// SAFETY: the pointer is handed to the C function on the new thread, as the
// C API promises; what it points to is the caller's to synchronise.
unsafe impl Send for Arg {}
// SAFETY: as above; the launcher never dereferences it.
unsafe impl Sync for Arg {}

/// Threads started by `nkit_thread_launch` and not joined yet.
static LAUNCHED: Mutex<Vec<GroupHandle<()>>> = Mutex::new(Vec::new());

fn launched() -> std::sync::MutexGuard<'static, Vec<GroupHandle<()>>> {
    LAUNCHED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held by `nkit_thread_join_all` while it joins: a second caller waits
/// for the first one's threads too.
static JOINING: Mutex<()> = Mutex::new(());

thread_local! {
    /// Set on the threads `nkit_thread_launch` starts.
    static IS_LAUNCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Start a thread placed by `policy` (numakit's
/// [`spawn_group`](nk::sched::spawn_group) with one thread) that runs
/// `func(arg)`. Returns 0 once the thread is pinned, or -1 when it could not
/// be (it then never runs `func`).
///
/// # Safety
/// `func` is `NULL` or a function that may be called with `arg` on another
/// thread.
#[no_mangle]
pub unsafe extern "C" fn nkit_thread_launch(
    policy: NkitThreadPolicy,
    func: NkitThreadFunc,
    arg: *mut c_void,
) -> c_int {
    ffi("nkit_thread_launch", -1, || {
        let Some(func) = func else {
            return Err(CError::null("func", "nkit_thread_launch"));
        };
        let placement = match policy.kind {
            NKIT_POLICY_BIND_NODE => {
                ThreadPlacement::Node(node_arg(policy.id, "nkit_thread_launch")?)
            }
            NKIT_POLICY_STRICT_CPU => {
                ThreadPlacement::Cpu(cpu_arg(policy.id, "nkit_thread_launch")?)
            }
            other => {
                return Err(CError::new(
                    NKIT_ERR_INVALID_ARGUMENT,
                    format!(
                        "nkit_thread_launch: policy type {other} is not NKIT_POLICY_BIND_NODE (0) \
                         or NKIT_POLICY_STRICT_CPU (1)"
                    ),
                ))
            }
        };
        let arg = Arg(arg);
        let group = spawn_group(1, placement, move |_| {
            IS_LAUNCHED.with(|l| l.set(true));
            let arg = &arg;
            // SAFETY: the caller's contract: `func` may be called with
            // `arg` on this thread.
            unsafe { func(arg.0) }
        })?;
        launched().push(group);
        Ok(0)
    })
}

/// Wait for every thread `nkit_thread_launch` started (also those started
/// while waiting, and those another caller is joining). Refused on a
/// launched thread, which would wait for itself.
#[no_mangle]
pub extern "C" fn nkit_thread_join_all() {
    ffi("nkit_thread_join_all", (), || {
        if IS_LAUNCHED.with(|l| l.get()) {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                "called on a thread that nkit_thread_launch started, which would wait for \
                 itself: nothing was joined; call it on the thread that launches the threads \
                 (threads launched by launched threads are joined there too)",
            ));
        }
        let _joining = JOINING.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let groups = std::mem::take(&mut *launched());
            if groups.is_empty() {
                return Ok(());
            }
            for g in groups {
                // The C function cannot unwind; a Rust panic on the thread
                // would be numakit's, and is not the caller's to handle.
                let _ = g.join();
            }
        }
    })
}
