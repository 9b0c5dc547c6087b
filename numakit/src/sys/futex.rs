//! `futex(2)` wait and wake on a 32-bit word, process-private.

use super::cvt;
use std::io;
use std::ptr;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// `futex(FUTEX_WAIT_PRIVATE)` — sleep while `*word == expected`
/// ([futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)).
///
/// Returns `Ok(())` when woken (or spuriously), `EAGAIN` when the word did
/// not hold `expected`, `ETIMEDOUT` after `timeout`, `EINTR` on a signal.
/// Callers re-check their condition in a loop whatever the result.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<()> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the
    // call; the timeout pointer is null or points to a valid timespec.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        )
    })
    .map(drop)
}

/// `futex(FUTEX_WAKE_PRIVATE)` — wake up to `count` threads sleeping on
/// `word` ([futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)).
///
/// Returns how many were woken.
pub fn futex_wake(word: &AtomicU32, count: u32) -> io::Result<usize> {
    let count = count.min(i32::MAX as u32);
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE only uses
    // its address as a key and never dereferences it beyond that.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            count,
        )
    })
    .map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn wait_on_wrong_value_is_eagain() {
        let w = AtomicU32::new(1);
        let err = futex_wait(&w, 0, None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        let err = futex_wait(&w, 0, Some(Duration::from_millis(5))).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
    }

    #[test]
    fn wake_releases_waiter() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                let _ = futex_wait(&w2, 0, Some(Duration::from_secs(5)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        w.store(1, Ordering::Release);
        futex_wake(&w, 1).unwrap();
        t.join().unwrap();
        assert_eq!(futex_wake(&w, u32::MAX).unwrap(), 0);
    }
}
