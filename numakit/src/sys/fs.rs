//! Reading a small file without allocating: `open`, `read`, `close`.
//!
//! For code that must not allocate (the global allocator adapter reads
//! `/sys/devices/system/node/nodeN/meminfo` this way); everything else uses
//! `std::fs`.

use super::cvt;
use std::ffi::CStr;
use std::io;

/// `open(2)` + `read(2)` until EOF or `buf` is full + `close(2)`
/// ([open(2)](https://man7.org/linux/man-pages/man2/open.2.html),
/// [read(2)](https://man7.org/linux/man-pages/man2/read.2.html)).
/// Returns the bytes read into `buf`; retries on `EINTR`; never allocates.
pub fn read_into(path: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }.into())?
        as libc::c_int;
    let mut len = 0;
    let result = loop {
        if len == buf.len() {
            break Ok(len);
        }
        // SAFETY: writes at most `buf.len() - len` bytes into `buf[len..]`.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().add(len).cast(), buf.len() - len) };
        match cvt(r as libc::c_long) {
            Ok(0) => break Ok(len),
            Ok(n) => len += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    // SAFETY: `fd` was opened above and is closed exactly once.
    unsafe { libc::close(fd) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_and_reports_missing_ones() {
        let mut buf = [0u8; 64];
        let n = read_into(c"/proc/self/stat", &mut buf).unwrap();
        assert!(n > 0 && n <= 64);
        let err = read_into(c"/nonexistent/numakit", &mut buf).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }
}
