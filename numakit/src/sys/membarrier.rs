//! `membarrier(2)`: a memory barrier on every running thread of the
//! process, paid by the caller alone.
//!
//! Used for asymmetric fences: a hot path that only needs a compiler fence
//! is paired with a rare slow path that calls
//! [`membarrier_private_expedited`], which makes every other thread of the
//! process execute a full barrier before it returns (as if the hot path had
//! one at that point).

use super::cvt;
use std::io;

/// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (`linux/membarrier.h`).
const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
/// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED` (`linux/membarrier.h`).
const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// `membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)` — declare that
/// this process will use private expedited barriers
/// ([membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html)).
/// Needed once per process before [`membarrier_private_expedited`];
/// `EINVAL`/`ENOSYS` on kernels without it (before 4.14), `EPERM` where a
/// seccomp filter forbids the call.
pub fn membarrier_register_private_expedited() -> io::Result<()> {
    // SAFETY: the command takes no pointers; flags and cpu id are 0.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            CMD_REGISTER_PRIVATE_EXPEDITED,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    })
    .map(drop)
}

/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` — every thread of this
/// process that is running on a CPU executes a full memory barrier before
/// the call returns (threads not running pass one when they are scheduled)
/// ([membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html)).
/// `EPERM` when the process has not registered.
pub fn membarrier_private_expedited() -> io::Result<()> {
    // SAFETY: the command takes no pointers; flags and cpu id are 0.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            CMD_PRIVATE_EXPEDITED,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_then_barrier() {
        match membarrier_register_private_expedited() {
            Ok(()) => membarrier_private_expedited().unwrap(),
            // Old kernel or a seccomp filter: the callers fall back to
            // full fences; nothing more to check here.
            Err(e) => assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EPERM)
                ),
                "{e}"
            ),
        }
    }
}
