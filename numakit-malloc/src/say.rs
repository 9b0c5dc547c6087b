//! Lines on stderr written from a stack buffer with `write(2)`: nothing
//! is allocated and no lock is taken, so they can be written from inside
//! `malloc`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};

/// A line being composed (truncated at 512 bytes).
pub(crate) struct Line {
    buf: [u8; 512],
    at: usize,
}

impl Line {
    pub(crate) fn new() -> Self {
        Line {
            buf: [0; 512],
            at: 0,
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(self.buf.len() - self.at);
        self.buf[self.at..self.at + n].copy_from_slice(&b[..n]);
        self.at += n;
        self
    }

    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// `v` in hexadecimal with a `0x` prefix.
    pub(crate) fn hex(&mut self, v: usize) -> &mut Self {
        let _ = fmt::Write::write_fmt(self, format_args!("{v:#x}"));
        self
    }

    /// Write the line to fd 2 (a full buffer ends with a newline).
    pub(crate) fn print(&mut self) {
        if self.at == self.buf.len() {
            self.buf[self.at - 1] = b'\n';
        }
        write_all(&self.buf[..self.at]);
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.text(s);
        Ok(())
    }
}

/// `write(2)` all of `bytes` to fd 2 if it is the stderr the program
/// started with (see [`note_stderr`]); errors lose the text. A daemon
/// that closed stderr and opened a log file or a socket as fd 2 gets no
/// line of ours in it.
pub(crate) fn write_all(bytes: &[u8]) {
    match STDERR_STATE.load(Ordering::Acquire) {
        // Before the library's constructor: no code of the program ran.
        UNKNOWN => write_fd(2, bytes),
        KNOWN if file_id(2) == Some(STDERR_ID.load(Ordering::Relaxed)) => write_fd(2, bytes),
        _ => {}
    }
}

const UNKNOWN: u8 = 0;
const KNOWN: u8 = 1;
const CLOSED: u8 = 2;
/// Whether the stderr the program started with is known (its identity in
/// `STDERR_ID`), or it started without one.
static STDERR_STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Remember which file fd 2 is when the program starts (the library's
/// constructor): lines are written to it only while fd 2 is still that
/// file.
pub(crate) fn note_stderr() {
    match file_id(2) {
        Some(id) => {
            STDERR_ID.store(id, Ordering::Relaxed);
            STDERR_STATE.store(KNOWN, Ordering::Release);
        }
        None => STDERR_STATE.store(CLOSED, Ordering::Release),
    }
}

/// Allocations that got null, named on stderr at most.
const EXHAUSTED_SAID: u64 = 16;
static EXHAUSTED: AtomicU64 = AtomicU64::new(0);

/// Say that `size` bytes could not be had on `node` (the thread's), under
/// the `nearest` policy or not: the first [`EXHAUSTED_SAID`] times.
pub(crate) fn exhausted(size: usize, node: u32, nearest: bool) {
    let n = EXHAUSTED.fetch_add(1, Ordering::Relaxed);
    if n >= EXHAUSTED_SAID {
        return;
    }
    let mut line = Line::new();
    let _ = fmt::Write::write_fmt(
        &mut line,
        format_args!("numakit-malloc: {size} bytes could not be had on node {node}"),
    );
    if let Some(kib) = node_free_kib(node) {
        let _ = fmt::Write::write_fmt(&mut line, format_args!(" ({kib} kB free there)"));
    }
    line.text(if nearest {
        "; no other node could give them either"
    } else {
        "; nothing is taken from another node (NUMAKIT_MALLOC_FALLBACK=nearest allows the \
         nearest node that can give them)"
    });
    line.text("; a `ulimit -v` or a cgroup memory limit refuses them too");
    if n + 1 == EXHAUSTED_SAID {
        line.text(" (further ones are only counted)");
    }
    line.text("\n").print();
}

/// `MemFree` of `node` in kB, read from sysfs into stack buffers.
fn node_free_kib(node: u32) -> Option<u64> {
    let mut path = Line::new();
    let _ = fmt::Write::write_fmt(
        &mut path,
        format_args!("/sys/devices/system/node/node{node}/meminfo\0"),
    );
    let mut buf = [0u8; 2048];
    // SAFETY: a NUL-terminated path in a live buffer; the fd is closed
    // below; `read` fills at most `buf.len()` bytes of a live buffer.
    let len = unsafe {
        let fd = libc::open(path.buf.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        usize::try_from(n).ok()?
    };
    let text = &buf[..len];
    let at = text.windows(8).position(|w| w == b"MemFree:")? + 8;
    let mut digits = text[at..]
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit());
    digits.try_fold(0u64, |v, d| {
        v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The stderr the program started with: a copy of it (-1: none) and its
/// device and inode (valid once `STDERR_KEPT`). Programs such as GNU `ls`
/// and `sort` close stderr in their own `atexit` handler, which runs
/// before ours; others close it and open a file of their own, which then
/// gets number 2.
static STDERR_COPY: AtomicI32 = AtomicI32::new(-1);
static STDERR_ID: AtomicU64 = AtomicU64::new(0);
static STDERR_KEPT: AtomicBool = AtomicBool::new(false);

fn file_id(fd: i32) -> Option<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `struct stat` into the buffer on success.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: initialised by the successful fstat.
    let st = unsafe { st.assume_init() };
    Some(st.st_dev ^ st.st_ino.rotate_left(32))
}

/// Remember which file fd 2 is, and keep a close-on-exec copy of it
/// (numbered 100 or above), for [`write_stats`]. Nothing when fd 2 is
/// closed.
pub(crate) fn keep_stderr() {
    let Some(id) = file_id(2) else { return };
    STDERR_ID.store(id, Ordering::Relaxed);
    STDERR_KEPT.store(true, Ordering::Release);
    // SAFETY: F_DUPFD_CLOEXEC duplicates fd 2, open (fstat said so).
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 100) };
    if fd >= 0 {
        STDERR_COPY.store(fd, Ordering::Relaxed);
    }
}

/// Write `bytes` to the stderr the program started with: fd 2 if it is
/// still that file, else the copy kept at start if it is; else nowhere. A
/// program that closed stderr (or started without one) may have opened a
/// file of its own as fd 2 (or as the copy's number), which must not be
/// written to.
pub(crate) fn write_stats(bytes: &[u8]) {
    if !STDERR_KEPT.load(Ordering::Acquire) {
        return;
    }
    let id = STDERR_ID.load(Ordering::Relaxed);
    if file_id(2) == Some(id) {
        return write_fd(2, bytes);
    }
    let fd = STDERR_COPY.load(Ordering::Relaxed);
    if fd >= 0 && file_id(fd) == Some(id) {
        write_fd(fd, bytes);
    }
}

/// `write(2)` all of `bytes` to `fd`; errors lose the text. Never raises
/// `SIGPIPE`: a pipe without reader (`prog 2>&1 | head -1`) must not kill
/// a program for a line the library adds. The signal is blocked in the
/// calling thread while writing, and one the write raised is taken back
/// (one that was pending before stays).
fn write_fd(fd: i32, mut bytes: &[u8]) {
    let mut pipe = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: the sets are initialised by sigemptyset / pthread_sigmask /
    // sigpending before they are read; all are async-signal-safe calls
    // that allocate nothing.
    let (blocked, was_pending) = unsafe {
        libc::sigemptyset(pipe.as_mut_ptr());
        libc::sigaddset(pipe.as_mut_ptr(), libc::SIGPIPE);
        let blocked = libc::pthread_sigmask(libc::SIG_BLOCK, pipe.as_ptr(), old.as_mut_ptr()) == 0;
        let was_pending = libc::sigpending(pending.as_mut_ptr()) == 0
            && libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1;
        (blocked, was_pending)
    };
    let mut broken = false;
    while !bytes.is_empty() {
        // SAFETY: writes initialised bytes of a live slice to `fd`.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            broken = n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPIPE);
            break;
        }
        bytes = &bytes[n as usize..];
    }
    if blocked {
        // SAFETY: as above; a zero timeout never waits.
        unsafe {
            if broken && !was_pending {
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(pipe.as_ptr(), std::ptr::null_mut(), &zero);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut());
        }
    }
}
