//! Scheduling system calls: `sched_setaffinity`, `sched_getaffinity`,
//! `getcpu`.
//!
//! CPU masks are slices of `unsigned long` words (bit `c % 64` of word
//! `c / 64` is CPU `c`), so machines with more than 1024 CPUs (the limit of
//! glibc's fixed `cpu_set_t`) work.

use super::cvt;
use std::io;
use std::ptr;

/// `sched_setaffinity(2)` — set the CPU mask of thread `tid` (0 for the
/// calling thread) ([sched_setaffinity(2)](https://man7.org/linux/man-pages/man2/sched_setaffinity.2.html)).
///
/// The whole mask is replaced. `EINVAL` when the mask holds no CPU the
/// thread may run on (offline CPUs, or outside its cgroup cpuset).
pub fn sched_setaffinity(tid: libc::pid_t, mask: &[libc::c_ulong]) -> io::Result<()> {
    // SAFETY: the pointer and byte length describe a readable slice.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            tid,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    })
    .map(drop)
}

/// `sched_getaffinity(2)` — read the CPU mask of thread `tid` (0 for the
/// calling thread) ([sched_getaffinity(2)](https://man7.org/linux/man-pages/man2/sched_getaffinity.2.html)).
///
/// The buffer grows until it holds the kernel's whole mask.
pub fn sched_getaffinity(tid: libc::pid_t) -> io::Result<Vec<libc::c_ulong>> {
    let mut words = 16; // 1024 CPUs
    loop {
        let mut mask: Vec<libc::c_ulong> = vec![0; words];
        // SAFETY: the pointer and byte length describe a writable slice; the
        // kernel writes at most that many bytes and returns how many it wrote.
        let ret = cvt(unsafe {
            libc::syscall(
                libc::SYS_sched_getaffinity,
                tid,
                std::mem::size_of_val(mask.as_slice()),
                mask.as_mut_ptr(),
            )
        });
        match ret {
            Ok(bytes) => {
                mask.truncate((bytes as usize).div_ceil(std::mem::size_of::<libc::c_ulong>()));
                return Ok(mask);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && words < (1 << 16) => words *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// `getcpu(2)` — the CPU and NUMA node the calling thread is running on
/// now, as `(cpu, node)` ([getcpu(2)](https://man7.org/linux/man-pages/man2/getcpu.2.html)).
///
/// The answer can be stale as soon as it returns unless the thread is
/// pinned to one CPU.
pub fn getcpu() -> io::Result<(u32, u32)> {
    let mut cpu: libc::c_uint = 0;
    let mut node: libc::c_uint = 0;
    // SAFETY: both out-pointers are valid for writes; the third (tcache)
    // argument is unused by the kernel and may be null.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            &mut cpu as *mut libc::c_uint,
            &mut node as *mut libc::c_uint,
            ptr::null_mut::<libc::c_void>(),
        )
    })?;
    Ok((cpu, node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_roundtrip_on_a_thread() {
        std::thread::spawn(|| {
            let old = sched_getaffinity(0).unwrap();
            let first = old
                .iter()
                .enumerate()
                .find_map(|(w, &bits)| (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize))
                .unwrap();
            let mut one = vec![0 as libc::c_ulong; first / 64 + 1];
            one[first / 64] = 1 << (first % 64);
            sched_setaffinity(0, &one).unwrap();
            assert_eq!(getcpu().unwrap().0 as usize, first);
            let now = sched_getaffinity(0).unwrap();
            assert_eq!(now.iter().map(|w| w.count_ones()).sum::<u32>(), 1);
            sched_setaffinity(0, &old).unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn empty_mask_is_einval() {
        let err = sched_setaffinity(0, &[0]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
