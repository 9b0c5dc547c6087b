//! `perf_event_open(2)` — hardware event counters (cache misses), and
//! reading a counter.
//!
//! Many machines have none: virtual machines without a virtual PMU answer
//! `ENOENT`/`EOPNOTSUPP`/`ENODEV`, and `kernel.perf_event_paranoid` may
//! forbid counting (`EACCES`/`EPERM`). Callers detect that and say so.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `PERF_TYPE_HARDWARE`: a generalized hardware event.
pub const PERF_TYPE_HARDWARE: u32 = 0;
/// `PERF_COUNT_HW_CACHE_MISSES`: last-level cache misses.
pub const PERF_COUNT_HW_CACHE_MISSES: u64 = 3;
/// `PERF_FLAG_FD_CLOEXEC`: open the descriptor close-on-exec.
pub const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `attr.flags` bit: do not count in kernel mode (`exclude_kernel`).
pub const ATTR_EXCLUDE_KERNEL: u64 = 1 << 5;
/// `attr.flags` bit: do not count in the hypervisor (`exclude_hv`).
pub const ATTR_EXCLUDE_HV: u64 = 1 << 6;

/// `struct perf_event_attr` as of its first version
/// (`PERF_ATTR_SIZE_VER0`, 64 bytes), which every kernel accepts; the
/// bit-fields of the C struct are the one `flags` word.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PerfEventAttr {
    /// `type`: `PERF_TYPE_*`.
    pub kind: u32,
    /// `size`: `size_of::<PerfEventAttr>()`.
    pub size: u32,
    /// `config`: the event within the type (`PERF_COUNT_HW_*`).
    pub config: u64,
    /// `sample_period` / `sample_freq` (0: counting only).
    pub sample_period: u64,
    /// `sample_type`.
    pub sample_type: u64,
    /// `read_format`.
    pub read_format: u64,
    /// The bit-fields (`disabled` = bit 0, `exclude_kernel` = bit 5, ...).
    pub flags: u64,
    /// `wakeup_events` / `wakeup_watermark`.
    pub wakeup_events: u32,
    /// `bp_type`.
    pub bp_type: u32,
    /// `bp_addr` / `config1`.
    pub config1: u64,
}

impl PerfEventAttr {
    /// A counting (not sampling) hardware event, enabled at once, user
    /// space only (what `perf_event_paranoid` 2 allows).
    pub fn hardware_counter(config: u64) -> Self {
        PerfEventAttr {
            kind: PERF_TYPE_HARDWARE,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config,
            flags: ATTR_EXCLUDE_KERNEL | ATTR_EXCLUDE_HV,
            ..Default::default()
        }
    }
}

/// `perf_event_open(2)` — open a counter for thread `tid` (0: the calling
/// thread) on any CPU (`cpu` = -1), or for all threads on `cpu`
/// ([perf_event_open(2)](https://man7.org/linux/man-pages/man2/perf_event_open.2.html)).
///
/// `group_fd` is -1 for a group leader; `flags` e.g.
/// [`PERF_FLAG_FD_CLOEXEC`].
pub fn perf_event_open(
    attr: &PerfEventAttr,
    tid: libc::pid_t,
    cpu: libc::c_int,
    group_fd: libc::c_int,
    flags: libc::c_ulong,
) -> io::Result<OwnedFd> {
    // SAFETY: `attr` points to a valid, initialized perf_event_attr whose
    // `size` field matches its layout; the kernel only reads it.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *const PerfEventAttr,
            tid,
            cpu,
            group_fd,
            flags,
        )
    })?;
    // SAFETY: on success the syscall returns a new descriptor that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `read(2)` of a counter opened without `read_format`: its 64-bit value
/// ([perf_event_open(2)](https://man7.org/linux/man-pages/man2/perf_event_open.2.html),
/// "Reading results").
pub fn read_counter(fd: &OwnedFd) -> io::Result<u64> {
    let mut value: u64 = 0;
    // SAFETY: `value` is valid for writes of 8 bytes; the descriptor is
    // open for the duration of the call.
    let n = cvt(unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut value as *mut u64).cast::<libc::c_void>(),
            std::mem::size_of::<u64>(),
        )
    } as libc::c_long)?;
    if n as usize != std::mem::size_of::<u64>() {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_is_the_first_abi_version() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 64); // PERF_ATTR_SIZE_VER0
    }

    #[test]
    fn cache_miss_counter_opens_or_says_why_not() {
        let attr = PerfEventAttr::hardware_counter(PERF_COUNT_HW_CACHE_MISSES);
        match perf_event_open(&attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC) {
            Ok(fd) => {
                let a = read_counter(&fd).unwrap();
                let v: Vec<u64> = (0..100_000).collect();
                std::hint::black_box(v.iter().sum::<u64>());
                assert!(read_counter(&fd).unwrap() >= a);
            }
            Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
        }
    }
}
