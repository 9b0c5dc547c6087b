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
/// `PERF_COUNT_HW_INSTRUCTIONS`: instructions retired.
pub const PERF_COUNT_HW_INSTRUCTIONS: u64 = 1;
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
    /// `size`: `size_of::<PerfEventAttr>()`. Ignored by [`perf_event_open`],
    /// which always passes the struct's own size.
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
///
/// `attr.size` is ignored: the kernel is given a copy of `attr` whose `size`
/// is `size_of::<PerfEventAttr>()`. (The kernel reads `size` bytes of the
/// struct, and on `E2BIG` writes the size it wants into `size`; trusting the
/// caller's field would let it read past the struct or write through the
/// shared reference.) `attr` is never written.
pub fn perf_event_open(
    attr: &PerfEventAttr,
    tid: libc::pid_t,
    cpu: libc::c_int,
    group_fd: libc::c_int,
    flags: libc::c_ulong,
) -> io::Result<OwnedFd> {
    let mut local = PerfEventAttr {
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        ..*attr
    };
    // SAFETY: `local` is a valid, initialized perf_event_attr owned by this
    // frame whose `size` is its own size, so the kernel reads exactly the
    // struct; on `E2BIG` the kernel writes a `u32` into `local.size`, which
    // is ours and writable (`&mut`), and `local` outlives the call.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &mut local as *mut PerfEventAttr,
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
    fn hostile_size_fields_are_not_trusted() {
        // The kernel reads `size` bytes and answers E2BIG by writing the size
        // it wants into `size`: with the caller's field trusted, size 8
        // changed an immutable binding (8 -> 136) and a large size made the
        // kernel read past the struct.
        for size in [0, 1, 8, 63, 65, 136, 4096, u32::MAX / 2, u32::MAX] {
            let attr = PerfEventAttr {
                size,
                ..PerfEventAttr::hardware_counter(PERF_COUNT_HW_CACHE_MISSES)
            };
            let before = format!("{attr:?}");
            let result = perf_event_open(&attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
            assert_eq!(format!("{attr:?}"), before, "size {size}: attr was written");
            assert_eq!(attr.size, size);
            // Opened exactly as the well-formed attr is (or refused the same
            // way on machines without counters), never E2BIG.
            let good = perf_event_open(
                &PerfEventAttr::hardware_counter(PERF_COUNT_HW_CACHE_MISSES),
                0,
                -1,
                -1,
                PERF_FLAG_FD_CLOEXEC,
            );
            match (&result, &good) {
                (Ok(_), Ok(_)) => {}
                (Err(a), Err(b)) => assert_eq!(a.raw_os_error(), b.raw_os_error(), "size {size}"),
                _ => panic!("size {size}: {result:?} but the well-formed attr gives {good:?}"),
            }
            if let Err(e) = &result {
                assert_ne!(e.raw_os_error(), Some(libc::E2BIG), "size {size}");
            }
        }
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
