//! Every call numakit makes into the kernel, and nothing else.
//!
//! The wrappers are thin: one function per system call (or per mode of one),
//! named after it, with its man page linked, returning [`io::Result`] with
//! the `errno` kept. Higher layers turn these into typed errors that say what
//! was asked and what to do; the wrappers themselves only report what the
//! kernel said.
//!
//! They are public for programs that need exactly one call below the safe
//! API (for example a `move_pages(2)` query on memory numakit did not
//! allocate). Functions that can destroy memory contents or invalidate
//! references (`munmap`, `madvise`, `futex` on foreign memory) are `unsafe`;
//! the others cannot break Rust's guarantees: the kernel validates the
//! addresses they take and reports bad ones as `EFAULT`/`ENOMEM`.
//!
//! [`io::Result`]: std::io::Result

pub mod fs;
pub mod futex;
pub mod mem;
pub mod membarrier;
pub mod perf;
pub mod proc;
pub mod sched;
pub mod thread;

use std::io;

/// Turn a `-1`-and-`errno` return into an [`io::Result`].
#[inline]
pub(crate) fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Number of bits in one word of a kernel bitmask (`unsigned long`).
pub const MASK_WORD_BITS: usize = libc::c_ulong::BITS as usize;

/// `sysconf(_SC_PAGESIZE)` — the base page size in bytes
/// ([sysconf(3)](https://man7.org/linux/man-pages/man3/sysconf.3.html)).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported
    // on Linux.
    let ret = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if ret <= 0 {
        4096
    } else {
        ret as usize
    }
}

/// `gettid(2)` — the calling thread's kernel id
/// ([gettid(2)](https://man7.org/linux/man-pages/man2/gettid.2.html)).
pub fn gettid() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

/// Memory totals of the whole system from `sysinfo(2)`, in bytes:
/// `(total, free)` ([sysinfo(2)](https://man7.org/linux/man-pages/man2/sysinfo.2.html)).
///
/// Used where the kernel has no per-node view (built without NUMA support).
pub fn sysinfo_memory() -> io::Result<(u64, u64)> {
    // SAFETY: sysinfo is plain old data; all-zero is a valid value.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable `struct sysinfo`.
    cvt(unsafe { libc::sysinfo(&mut info) }.into())?;
    let unit = u64::from(info.mem_unit.max(1));
    Ok((info.totalram as u64 * unit, info.freeram as u64 * unit))
}
