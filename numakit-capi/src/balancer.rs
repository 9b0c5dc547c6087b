//! The per-thread balancer advice of `sched.h`: `nkit_balancer_start`
//! opens the calling thread's hardware counters (cache misses and
//! instructions retired), `nkit_balancer_check` reads and closes them and
//! compares misses per thousand instructions with the threshold.
//!
//! Without a PMU (most VMs) or with `perf_event_paranoid` forbidding it,
//! `nkit_balancer_start` fails and says which; it never falls back to a
//! software estimate, so `NKIT_ADVISE_STAY` always means the counters ran.

use crate::error::{ffi, CError, NKIT_ERR_INVALID_ARGUMENT, NKIT_ERR_OS, NKIT_ERR_UNSUPPORTED};
use nk::sys::perf;
use std::cell::RefCell;
use std::ffi::{c_double, c_int};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// `NKIT_ADVISE_STAY`.
pub const NKIT_ADVISE_STAY: c_int = 0;
/// `NKIT_ADVISE_MIGRATE`.
pub const NKIT_ADVISE_MIGRATE: c_int = 1;
/// `NKIT_ADVISE_ERROR`.
pub const NKIT_ADVISE_ERROR: c_int = 2;

/// The threshold's default, in misses per thousand instructions.
pub const DEFAULT_MPKI: f64 = 50.0;

/// Fewer instructions than this between start and check are too few to
/// judge: the advice is to stay.
pub const MIN_INSTRUCTIONS: u64 = 1000;

/// The process-wide threshold, as `f64` bits.
static THRESHOLD: AtomicU64 = AtomicU64::new(DEFAULT_MPKI.to_bits());

/// The calling thread's open counters: (cache misses, instructions).
struct Counters {
    misses: OwnedFd,
    instructions: OwnedFd,
}

thread_local! {
    static COUNTERS: RefCell<Option<Counters>> = const { RefCell::new(None) };
}

/// The current threshold.
pub(crate) fn threshold() -> f64 {
    f64::from_bits(THRESHOLD.load(Ordering::Relaxed))
}

/// Misses per thousand instructions; `None` below [`MIN_INSTRUCTIONS`]
/// (too few to judge).
pub(crate) fn mpki(misses: u64, instructions: u64) -> Option<f64> {
    (instructions >= MIN_INSTRUCTIONS).then(|| misses as f64 * 1000.0 / instructions as f64)
}

/// The advice for `misses` over `instructions` against `threshold`.
pub(crate) fn advice(misses: u64, instructions: u64, threshold: f64) -> c_int {
    match mpki(misses, instructions) {
        Some(v) if v > threshold => NKIT_ADVISE_MIGRATE,
        _ => NKIT_ADVISE_STAY,
    }
}

fn paranoid() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid") {
        Ok(v) => format!("perf_event_paranoid is {}", v.trim()),
        Err(e) => format!("perf_event_paranoid cannot be read ({e})"),
    }
}

/// The cache-miss and instructions counters of thread `tid` (0: the
/// caller), counting from now; the error names `function`.
pub(crate) fn counter_pair(tid: libc::pid_t, function: &str) -> Result<(OwnedFd, OwnedFd), CError> {
    Ok((
        open_for(
            tid,
            perf::PERF_COUNT_HW_CACHE_MISSES,
            "cache-miss",
            function,
        )?,
        open_for(
            tid,
            perf::PERF_COUNT_HW_INSTRUCTIONS,
            "instructions-retired",
            function,
        )?,
    ))
}

/// Open the `config` counter of thread `tid` (0: the caller).
fn open_for(tid: libc::pid_t, config: u64, what: &str, function: &str) -> Result<OwnedFd, CError> {
    let attr = perf::PerfEventAttr::hardware_counter(config);
    perf::perf_event_open(&attr, tid, -1, -1, perf::PERF_FLAG_FD_CLOEXEC).map_err(|e| {
        let (code, why) = match e.raw_os_error() {
            Some(libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV) => (
                NKIT_ERR_UNSUPPORTED,
                "this machine (or VM) exposes no such hardware counter; run on hardware with a \
                 PMU, or in a VM that passes it through"
                    .to_string(),
            ),
            Some(libc::EACCES | libc::EPERM) => (
                NKIT_ERR_UNSUPPORTED,
                format!(
                    "{}; counting a thread's own user-space events needs it at 2 or below \
                     (sysctl kernel.perf_event_paranoid=2), or CAP_PERFMON",
                    paranoid()
                ),
            ),
            _ => (NKIT_ERR_OS, paranoid()),
        };
        CError::new(
            code,
            format!(
                "{function}: perf_event_open of the {what} counter failed: {e} ({why}); \
                 without counters there is nothing to advise on"
            ),
        )
    })
}

/// Start counting the calling thread's cache misses and instructions
/// (counters already open on the thread are restarted).
///
/// Returns 0, or -1 with the last error set: `NKIT_ERR_UNSUPPORTED` when
/// the counters do not exist or are not allowed (the message says which,
/// and what to change), `NKIT_ERR_OS` otherwise.
#[no_mangle]
pub extern "C" fn nkit_balancer_start() -> c_int {
    ffi("nkit_balancer_start", -1, || {
        let _ = COUNTERS.try_with(|c| c.borrow_mut().take());
        let (misses, instructions) = counter_pair(0, "nkit_balancer_start")?;
        COUNTERS
            .try_with(|c| {
                *c.borrow_mut() = Some(Counters {
                    misses,
                    instructions,
                })
            })
            .map_err(|_| {
                CError::new(
                    NKIT_ERR_OS,
                    "nkit_balancer_start: called while the thread is exiting",
                )
            })?;
        Ok(0)
    })
}

/// Stop counting, close the counters and advise: `NKIT_ADVISE_MIGRATE`
/// when the misses per thousand instructions exceed the threshold,
/// `NKIT_ADVISE_STAY` otherwise (also when fewer than 1000 instructions
/// ran: too few to judge), `NKIT_ADVISE_ERROR` with the last error set when
/// `nkit_balancer_start` did not succeed on this thread since the last
/// check, or a counter could not be read.
#[no_mangle]
pub extern "C" fn nkit_balancer_check() -> c_int {
    ffi("nkit_balancer_check", NKIT_ADVISE_ERROR, || {
        let counters = COUNTERS
            .try_with(|c| c.borrow_mut().take())
            .ok()
            .flatten()
            .ok_or_else(|| {
                CError::new(
                    NKIT_ERR_INVALID_ARGUMENT,
                    "nkit_balancer_check: no counters are open on this thread: call \
                     nkit_balancer_start first (each check closes them), and check that it \
                     returned 0",
                )
            })?;
        let read = |fd: &OwnedFd, what: &str| {
            perf::read_counter(fd).map_err(|e: io::Error| {
                CError::new(
                    NKIT_ERR_OS,
                    format!("nkit_balancer_check: reading the {what} counter failed: {e}"),
                )
            })
        };
        let misses = read(&counters.misses, "cache-miss")?;
        let instructions = read(&counters.instructions, "instructions-retired")?;
        Ok(advice(misses, instructions, threshold()))
    })
}

/// Set the process-wide threshold in misses per thousand instructions
/// (default 50). A value that is not a positive finite number is refused
/// (the last error says so) and the threshold stays as it was.
#[no_mangle]
pub extern "C" fn nkit_balancer_set_threshold(mpki: c_double) {
    ffi("nkit_balancer_set_threshold", (), || {
        if !(mpki.is_finite() && mpki > 0.0) {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                format!(
                    "nkit_balancer_set_threshold: {mpki} is not a positive, finite number of \
                     misses per thousand instructions; the threshold stays {}",
                    threshold()
                ),
            ));
        }
        THRESHOLD.store(mpki.to_bits(), Ordering::Relaxed);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_at_the_edges() {
        assert_eq!(advice(0, 0, 50.0), NKIT_ADVISE_STAY);
        assert_eq!(advice(u64::MAX, 999, 50.0), NKIT_ADVISE_STAY);
        assert_eq!(advice(50, 1000, 50.0), NKIT_ADVISE_STAY);
        assert_eq!(advice(51, 1000, 50.0), NKIT_ADVISE_MIGRATE);
        assert_eq!(advice(u64::MAX, u64::MAX, 50.0), NKIT_ADVISE_MIGRATE);
        assert_eq!(
            advice(u64::MAX / 1000 * 50, u64::MAX, 50.0),
            NKIT_ADVISE_STAY
        );
        assert_eq!(advice(u64::MAX, 1000, f64::MAX), NKIT_ADVISE_STAY);
        assert_eq!(advice(1, u64::MAX, f64::MIN_POSITIVE), NKIT_ADVISE_MIGRATE);
        assert_eq!(advice(0, u64::MAX, f64::MIN_POSITIVE), NKIT_ADVISE_STAY);
    }
}
