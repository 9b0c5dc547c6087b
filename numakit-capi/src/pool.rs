//! `sched.h` task pool: `nkit_pool_*`, on numakit's [`NodePool`] (workers
//! pinned per node; a job given to a node never runs elsewhere).

use crate::error::{ffi, node_arg, CError, NKIT_ERR_INVALID_ARGUMENT};
use nk::sched::NodePool;
use std::ffi::{c_int, c_void};
use std::ptr;

/// `nkit_pool_t`.
pub struct NkitPool {
    pool: NodePool,
}

/// A C task: the function and its argument.
struct Task {
    func: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
}

// SAFETY: the submitter's contract (see `nkit_pool_submit_to_node`) is
// that `func(arg)` may run on another thread.
unsafe impl Send for Task {}

impl Task {
    fn run(self) {
        // SAFETY: the submitter's contract: `func` may be called with `arg`
        // on a worker thread.
        unsafe { (self.func)(self.arg) }
    }
}

/// # Safety
/// `pool` is `NULL` or a live pool.
unsafe fn pool_ref<'a>(pool: *mut NkitPool, function: &str) -> Result<&'a NodePool, CError> {
    // SAFETY: the contract; NodePool is Sync.
    unsafe { pool.as_ref() }
        .map(|p| &p.pool)
        .ok_or_else(|| CError::null("pool", function))
}

/// A pool with workers on every node with CPUs the process may use, one
/// per CPU; `NULL` on failure.
#[no_mangle]
pub extern "C" fn nkit_pool_create() -> *mut NkitPool {
    ffi("nkit_pool_create", ptr::null_mut(), || {
        let pool = NodePool::new()?;
        Ok(Box::into_raw(Box::new(NkitPool { pool })))
    })
}

/// Run `func(arg)` on a worker of `target_node` (never elsewhere). 0, or -1
/// (absent node, no workers there, `NULL` pool or func).
///
/// # Safety
/// `pool` is `NULL` or live; `func` is `NULL` or may be called with `arg`
/// on a worker thread.
#[no_mangle]
pub unsafe extern "C" fn nkit_pool_submit_to_node(
    pool: *mut NkitPool,
    target_node: c_int,
    func: Option<unsafe extern "C" fn(*mut c_void)>,
    arg: *mut c_void,
) -> c_int {
    ffi("nkit_pool_submit_to_node", -1, || {
        // SAFETY: forwarded contract.
        let p = unsafe { pool_ref(pool, "nkit_pool_submit_to_node") }?;
        let func = func.ok_or_else(|| CError::null("func", "nkit_pool_submit_to_node"))?;
        let node = node_arg(target_node, "nkit_pool_submit_to_node")?;
        let task = Task { func, arg };
        p.execute_to(node, move || task.run())?;
        Ok(0)
    })
}

/// Run `func(data_ptr)` on a worker of the node where the page of
/// `data_ptr` is now (the kernel's answer). -1 when that page is not
/// present (never touched, or not mapped): there is no node to run on.
///
/// # Safety
/// As `nkit_pool_submit_to_node`; `data_ptr` is only looked up here.
#[no_mangle]
pub unsafe extern "C" fn nkit_pool_submit_local(
    pool: *mut NkitPool,
    func: Option<unsafe extern "C" fn(*mut c_void)>,
    data_ptr: *mut c_void,
) -> c_int {
    ffi("nkit_pool_submit_local", -1, || {
        // SAFETY: forwarded contract.
        let p = unsafe { pool_ref(pool, "nkit_pool_submit_local") }?;
        let func = func.ok_or_else(|| CError::null("func", "nkit_pool_submit_local"))?;
        if data_ptr.is_null() {
            return Err(CError::null("data_ptr", "nkit_pool_submit_local"));
        }
        let map = nk::mem::locate(data_ptr.cast_const().cast(), 1)?;
        let Some((node, _)) = map.per_node().find(|&(_, n)| n > 0) else {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                format!(
                    "nkit_pool_submit_local: the page of {data_ptr:p} is not present (never \
                     touched, or not mapped), so it is on no node; write to it first or use \
                     nkit_pool_submit_to_node"
                ),
            ));
        };
        let task = Task {
            func,
            arg: data_ptr,
        };
        p.execute_to(node, move || task.run())?;
        Ok(0)
    })
}

/// Run every queued task, stop the workers and free the pool. `NULL` is
/// accepted and does nothing.
///
/// # Safety
/// `pool` is `NULL` or live, and no task of the pool calls this.
#[no_mangle]
pub unsafe extern "C" fn nkit_pool_destroy(pool: *mut NkitPool) {
    ffi("nkit_pool_destroy", (), || {
        if !pool.is_null() {
            // SAFETY: from `Box::into_raw` in `nkit_pool_create`, not
            // destroyed before (the contract).
            let p = unsafe { Box::from_raw(pool) };
            p.pool.shutdown();
        }
        Ok(())
    })
}
