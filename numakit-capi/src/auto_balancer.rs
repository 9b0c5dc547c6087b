//! The auto-balancer of `sched.h`: a background thread samples the
//! hardware counters of registered threads every interval and moves a
//! thread whose misses per thousand instructions exceed the threshold to
//! another node.
//!
//! The move is an explicit rule, stated in the header: among the other
//! nodes that have CPUs this process may use, the one with the most free
//! memory now; the thread's CPU mask becomes that node's allowed CPUs, its
//! memory stays where it is. Every move is counted and passed to the
//! callback. A thread is registered from itself (`pthread_self()`): the
//! kernel thread id of another `pthread_t` cannot be known.
//!
//! Without hardware counters (most VMs) `nkit_auto_balancer_create` fails
//! and says why, as `nkit_balancer_start` does.

use crate::balancer::{counter_pair, mpki};
use crate::error::{ffi, CError, NKIT_ERR_INVALID_ARGUMENT, NKIT_ERR_NOT_FOUND, NKIT_ERR_OS};
use nk::sys::perf;
use nk::{NodeId, Topology};
use std::ffi::{c_double, c_int, c_uint};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// `nkit_migration_cb_t`.
pub type MigrationCallback =
    Option<unsafe extern "C" fn(tid: libc::pthread_t, from: c_int, to: c_int, mpki: c_double)>;

/// The most threads one auto-balancer watches.
pub const MAX_THREADS: usize = 1024;

/// The longest sampling interval, in milliseconds (one hour).
pub const MAX_INTERVAL_MS: c_uint = 3_600_000;

struct Entry {
    pthread: libc::pthread_t,
    tid: libc::pid_t,
    node: NodeId,
    misses: OwnedFd,
    instructions: OwnedFd,
    last: (u64, u64),
}

struct Shared {
    entries: Mutex<Vec<Entry>>,
    stop: Mutex<bool>,
    wake: Condvar,
    migrations: AtomicUsize,
}

/// `nkit_auto_balancer_t`.
pub struct AutoBalancer {
    shared: Arc<Shared>,
    monitor: Option<JoinHandle<()>>,
}

/// The node a thread on `from` moves to: among the other nodes with CPUs
/// this process may use, the one with the most free memory (ties: the
/// lowest id); `None` when there is no other.
pub(crate) fn target_node(topo: &Topology, from: NodeId) -> Option<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| n.id() != from)
        .filter(|n| n.allowed_cpus().is_ok_and(|c| !c.is_empty()))
        .max_by_key(|n| (n.memory_free(), std::cmp::Reverse(n.id())))
        .map(|n| n.id())
}

fn sample(shared: &Shared, threshold: f64, callback: MigrationCallback) {
    let mut moves = Vec::new();
    {
        let mut entries = shared.entries.lock().unwrap_or_else(|p| p.into_inner());
        for e in entries.iter_mut() {
            let (Ok(m), Ok(i)) = (
                perf::read_counter(&e.misses),
                perf::read_counter(&e.instructions),
            ) else {
                continue;
            };
            let delta = (m.saturating_sub(e.last.0), i.saturating_sub(e.last.1));
            e.last = (m, i);
            if let Some(v) = mpki(delta.0, delta.1) {
                if v > threshold {
                    moves.push((e.pthread, e.tid, e.node, v));
                }
            }
        }
    }
    if moves.is_empty() {
        return;
    }
    let Ok(topo) = Topology::detect() else {
        return;
    };
    for (pthread, tid, from, v) in moves {
        let Some(to) = target_node(&topo, from) else {
            continue;
        };
        let Ok(cpus) = topo.node(to).and_then(|n| n.allowed_cpus()) else {
            continue;
        };
        if nk::sys::sched::sched_setaffinity(tid, &cpus.to_mask()).is_err() {
            continue;
        }
        if let Some(e) = shared
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .find(|e| e.tid == tid)
        {
            e.node = to;
        }
        shared.migrations.fetch_add(1, Ordering::Relaxed);
        if let Some(cb) = callback {
            // User code: a panic cannot cross it (it is C), and a C
            // callback that unwinds is outside the contract.
            // SAFETY: the callback is the function pointer the caller gave
            // `nkit_auto_balancer_create`, called with the documented
            // arguments.
            unsafe { cb(pthread, from.get() as c_int, to.get() as c_int, v) };
        }
    }
}

/// Create and start the auto-balancer: every `interval_ms` (1 to one
/// hour), registered threads whose misses per thousand instructions since
/// the last sample exceed `mpki_thresh` (positive, finite) are moved (see
/// the module docs); `cb` (may be NULL) is told of each move.
///
/// Returns NULL with the last error set for a bad argument, or when the
/// machine has no usable hardware counters (`NKIT_ERR_UNSUPPORTED`, the
/// message says why).
#[no_mangle]
pub extern "C" fn nkit_auto_balancer_create(
    interval_ms: c_uint,
    mpki_thresh: c_double,
    cb: MigrationCallback,
) -> *mut AutoBalancer {
    ffi("nkit_auto_balancer_create", std::ptr::null_mut(), || {
        if interval_ms == 0 || interval_ms > MAX_INTERVAL_MS {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                format!(
                    "nkit_auto_balancer_create: interval_ms {interval_ms} is outside 1..={MAX_INTERVAL_MS}"
                ),
            ));
        }
        if !(mpki_thresh.is_finite() && mpki_thresh > 0.0) {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                format!(
                    "nkit_auto_balancer_create: mpki_thresh {mpki_thresh} is not a positive, \
                     finite number of misses per thousand instructions"
                ),
            ));
        }
        // The counters must exist: probe them on the calling thread.
        drop(counter_pair(0, "nkit_auto_balancer_create")?);
        let shared = Arc::new(Shared {
            entries: Mutex::new(Vec::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            migrations: AtomicUsize::new(0),
        });
        let s = Arc::clone(&shared);
        let interval = Duration::from_millis(u64::from(interval_ms));
        let monitor = std::thread::Builder::new()
            .name("nkit-auto-balancer".into())
            .spawn(move || loop {
                let stop = s.stop.lock().unwrap_or_else(|p| p.into_inner());
                let (stop, _) = s
                    .wake
                    .wait_timeout_while(stop, interval, |stop| !*stop)
                    .unwrap_or_else(|p| p.into_inner());
                if *stop {
                    return;
                }
                drop(stop);
                sample(&s, mpki_thresh, cb);
            })
            .map_err(|e| {
                CError::new(
                    NKIT_ERR_OS,
                    format!("nkit_auto_balancer_create: the monitor thread could not start: {e}"),
                )
            })?;
        Ok(Box::into_raw(Box::new(AutoBalancer {
            shared,
            monitor: Some(monitor),
        })))
    })
}

/// Register the calling thread, now on `node`: `tid` must be
/// `pthread_self()`.
///
/// Returns 0, or -1 with the last error set: NULL `ab`, `tid` not the
/// caller, a node that does not exist, the thread already registered, or
/// `MAX_THREADS` (1024) threads registered.
///
/// # Safety
/// `ab` is NULL or a live handle from `nkit_auto_balancer_create`.
#[no_mangle]
pub unsafe extern "C" fn nkit_auto_balancer_register(
    ab: *mut AutoBalancer,
    tid: libc::pthread_t,
    node: c_int,
) -> c_int {
    ffi("nkit_auto_balancer_register", -1, || {
        // SAFETY: NULL or a live handle, by the contract.
        let ab = unsafe { ab.as_ref() }
            .ok_or_else(|| CError::null("ab", "nkit_auto_balancer_register"))?;
        // SAFETY: pthread_self has no preconditions.
        if tid != unsafe { libc::pthread_self() } {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                "nkit_auto_balancer_register: tid is not the calling thread; register each \
                 thread from itself with pthread_self() (another thread's kernel id cannot be \
                 known from its pthread_t)",
            ));
        }
        let node = crate::error::node_arg(node, "nkit_auto_balancer_register")?;
        Topology::current()?.node(node)?;
        let kernel_tid = nk::sys::gettid();
        let mut entries = ab.shared.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.iter().any(|e| e.tid == kernel_tid) {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                "nkit_auto_balancer_register: the thread is registered already",
            ));
        }
        if entries.len() >= MAX_THREADS {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                format!(
                    "nkit_auto_balancer_register: {MAX_THREADS} threads are registered, the most \
                     one auto-balancer watches; unregister one first"
                ),
            ));
        }
        let (misses, instructions) = counter_pair(kernel_tid, "nkit_auto_balancer_register")?;
        let last = (
            perf::read_counter(&misses).unwrap_or(0),
            perf::read_counter(&instructions).unwrap_or(0),
        );
        entries.push(Entry {
            pthread: tid,
            tid: kernel_tid,
            node,
            misses,
            instructions,
            last,
        });
        Ok(0)
    })
}

/// Stop watching `tid`. Returns 0, or -1 with the last error set (NULL
/// `ab`; `NKIT_ERR_NOT_FOUND` when `tid` is not registered).
///
/// # Safety
/// `ab` is NULL or a live handle from `nkit_auto_balancer_create`.
#[no_mangle]
pub unsafe extern "C" fn nkit_auto_balancer_unregister(
    ab: *mut AutoBalancer,
    tid: libc::pthread_t,
) -> c_int {
    ffi("nkit_auto_balancer_unregister", -1, || {
        // SAFETY: NULL or a live handle, by the contract.
        let ab = unsafe { ab.as_ref() }
            .ok_or_else(|| CError::null("ab", "nkit_auto_balancer_unregister"))?;
        let mut entries = ab.shared.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.iter().position(|e| e.pthread == tid) {
            Some(i) => {
                entries.swap_remove(i);
                Ok(0)
            }
            None => Err(CError::new(
                NKIT_ERR_NOT_FOUND,
                "nkit_auto_balancer_unregister: the thread is not registered",
            )),
        }
    })
}

/// The moves made so far; 0 with the last error set for NULL `ab`.
///
/// # Safety
/// `ab` is NULL or a live handle from `nkit_auto_balancer_create`.
#[no_mangle]
pub unsafe extern "C" fn nkit_auto_balancer_migrations(ab: *mut AutoBalancer) -> usize {
    ffi("nkit_auto_balancer_migrations", 0, || {
        // SAFETY: NULL or a live handle, by the contract.
        let ab = unsafe { ab.as_ref() }
            .ok_or_else(|| CError::null("ab", "nkit_auto_balancer_migrations"))?;
        Ok(ab.shared.migrations.load(Ordering::Relaxed))
    })
}

/// Stop the monitor thread, wait for it, and free the balancer. NULL is
/// an error (the last error says so), not a crash.
///
/// # Safety
/// `ab` is NULL or a live handle from `nkit_auto_balancer_create`, not
/// used after this call.
#[no_mangle]
pub unsafe extern "C" fn nkit_auto_balancer_destroy(ab: *mut AutoBalancer) {
    ffi("nkit_auto_balancer_destroy", (), || {
        if ab.is_null() {
            return Err(CError::null("ab", "nkit_auto_balancer_destroy"));
        }
        // SAFETY: a live handle from `Box::into_raw`, given up by the
        // caller.
        let mut ab = unsafe { Box::from_raw(ab) };
        *ab.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        ab.shared.wake.notify_all();
        if let Some(m) = ab.monitor.take() {
            let _ = m.join();
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The move target is another node with allowed CPUs; none on a
    /// machine with one such node.
    #[test]
    fn the_target_is_another_node_with_cpus() {
        let topo = Topology::current().unwrap();
        let with_cpus: Vec<NodeId> = topo
            .nodes()
            .iter()
            .filter(|n| n.allowed_cpus().is_ok_and(|c| !c.is_empty()))
            .map(|n| n.id())
            .collect();
        for &from in &with_cpus {
            match target_node(&topo, from) {
                Some(to) => {
                    assert_ne!(to, from);
                    assert!(with_cpus.contains(&to));
                }
                None => assert_eq!(with_cpus.len(), 1),
            }
        }
        assert_eq!(
            target_node(&topo, NodeId::new(u32::MAX)).is_some(),
            !with_cpus.is_empty()
        );
    }
}
