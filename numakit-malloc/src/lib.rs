//! `libnumakit_malloc.so`: the C allocation functions (`malloc`, `free`,
//! `calloc`, `realloc`, `reallocarray`, `posix_memalign`, `aligned_alloc`,
//! `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`, `malloc_trim`,
//! `cfree`) on numakit's node-local allocator ([`NodeLocal`]), for programs
//! that cannot be changed:
//!
//! ```text
//! LD_PRELOAD=/path/to/libnumakit_malloc.so ./program
//! numakit run --node 1 --node-local-malloc -- ./program
//! ```
//!
//! Every thread's blocks come from a heap on the node it runs on (read with
//! `getcpu(2)` on its first allocation and every 1024 allocations after);
//! a block freed by another thread goes back to the heap that gave it.
//!
//! # Settings (environment, read once at start)
//!
//! - `NUMAKIT_MALLOC_FALLBACK=strict` (the default): an allocation the
//!   thread's node cannot give fails — null and `errno = ENOMEM`, after a
//!   line on stderr naming the size, the node, its free memory and this
//!   setting (the first 16 such lines). A thread on a memoryless node gets
//!   null for every allocation. The library's lines go to fd 2 only while
//!   it is the file the program started with: a daemon that closed its
//!   stderr and opened a log file or a socket as fd 2 gets none of them.
//!   `NUMAKIT_MALLOC_FALLBACK=nearest`: the memory comes from the nearest
//!   node that can give it, and the statistics count it as a fallback.
//! - `NUMAKIT_MALLOC_STATS=1`: at exit (`atexit`), per node: bytes in use
//!   and resident, allocations, remote frees, fallbacks and failures, and
//!   the number of foreign pointers met, on the stderr the program
//!   started with. Programs that leave with `_exit` (dash does) print
//!   nothing; for programs that close stderr in their own `atexit` handler
//!   (GNU `ls`, `sort`), the table goes to a close-on-exec copy of the
//!   original stderr made at start (fd 100 or above), if it is still the
//!   same file. A file the program opened as fd 2 after closing stderr is
//!   never written to; a program started without stderr gets no table.
//!   The library's lines never raise `SIGPIPE`: on a stderr nobody reads
//!   any more (`prog 2>&1 | head -1`) they are lost, and the program exits
//!   as it would without them.
//!
//! # C semantics
//!
//! As glibc documents them: `malloc(0)` returns a unique pointer;
//! `realloc(p, 0)` frees `p` and returns null; `realloc(NULL, n)` is
//! `malloc(n)`; a failed `realloc` leaves the block as it was, and a
//! block from the aligned functions keeps its alignment through `realloc`
//! (C does not ask for it; glibc does not do it). Failures
//! return null with `errno = ENOMEM`; an overflowing `calloc` or
//! `reallocarray` count × size, too, as do sizes or alignments no mapping
//! can hold. `posix_memalign` returns `EINVAL` for an alignment that is not
//! a power of two multiple of `sizeof(void *)`; `aligned_alloc` sets
//! `EINVAL` for one that is not a power of two (0 included), as glibc
//! does since 2.38 (older versions accept them); `memalign` rounds one
//! that is not up to the next power of two (`EINVAL` past 2^63), as glibc
//! does. `free` keeps `errno`. `malloc_usable_size` is the size asked for
//! (the size the block was last resized to). `malloc_trim` gives the
//! pages of freed small blocks back to the OS (a chunk at a time, when
//! all its blocks are free and in no other thread's cache); the library
//! does not do it by itself, so a program that frees much and stays up
//! keeps those pages resident until it calls `malloc_trim(0)`.
//!
//! # Survival
//!
//! - **Before initialisation**: nothing needs initialising. The heaps are
//!   `static`s mapped on first use with raw `mmap`; settings come from
//!   scanning `environ` (defaults while libc has not set it yet, e.g. for
//!   calls from the dynamic loader). No code on the allocation path uses
//!   `std::env`, formatting into `String`s, thread-locals with destructors
//!   or Rust's `System` allocator (which would call `malloc` again); the
//!   library's own Rust allocations go straight to [`NodeLocal`].
//! - **Thread-local destructors and `atexit` handlers** may allocate and
//!   free: once a thread's exit hook has run, its allocations bypass the
//!   (detached) thread cache and go to the heap's shared lists.
//! - **`fork`**: the heaps' `pthread_atfork` gate (registered by numakit
//!   when the first heap is made) makes the forking thread wait until no
//!   thread holds a heap lock, so the child never inherits one, even from
//!   a threaded parent. Blocks cached by the parent's other threads stay
//!   unused in the child.
//! - **Threads that exit with blocks alive**: the blocks stay valid; any
//!   thread may free them later (they go back to their node's heap).
//! - **Foreign pointers** (never handed out by this library — from the
//!   dynamic loader's start-up allocator, glibc's `malloc` reached another
//!   way, `mmap`, the stack — or freed already): recognised by the block
//!   header's tag, read without faulting (see `block.rs`), and left alone:
//!   `free` ignores them, `realloc` returns null with `errno = EINVAL`,
//!   `malloc_usable_size` returns 0. Each is named on stderr (the first
//!   16; all are counted in the statistics). Nothing is written through a
//!   foreign pointer. A pointer inside a readable mapping that is not
//!   ours is read (16 bytes below it) but never written; one into a
//!   segment's unused tail is read directly, and so must be readable.
//!
//! `dlopen`ing the library is not supported: preload it.

// Unit tests build the crate as a test binary without the exported C
// names, the global allocator or the constructor (they would take over the
// test harness's own allocations).
#![cfg_attr(test, allow(dead_code))]

mod block;
mod config;
mod say;

use numakit::mem::NodeLocal;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Foreign pointers met so far.
static FOREIGN: AtomicU64 = AtomicU64::new(0);
/// Foreign pointers named on stderr at most.
const FOREIGN_SAID: u64 = 16;

/// Report a foreign pointer passed to `what`.
#[cold]
fn foreign(what: &str, p: *mut c_void) {
    let n = FOREIGN.fetch_add(1, Ordering::Relaxed);
    if n >= FOREIGN_SAID {
        return;
    }
    let mut line = say::Line::new();
    line.text("numakit-malloc: ")
        .text(what)
        .text("(")
        .hex(p as usize)
        .text("): not a block of this allocator (never handed out by it, or freed already); left alone");
    if n + 1 == FOREIGN_SAID {
        line.text(" (further ones are only counted)");
    }
    line.text("\n").print();
}

/// `malloc(3)`.
///
/// # Safety
/// None beyond C's: the result is freed with this library's `free`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    block::alloc(size, block::MIN_ALIGN, false).cast()
}

/// `calloc(3)`: `n * size` zeroed bytes; null and `ENOMEM` when the
/// product overflows.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(bytes) = n.checked_mul(size) else {
        block::set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    block::alloc(bytes, block::MIN_ALIGN, true).cast()
}

/// `free(3)`; foreign pointers are reported and left alone. Keeps `errno`.
///
/// # Safety
/// `p` is null or a live block of this library, not used again.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let saved = block::errno();
    {
        match block::lookup(p.cast()) {
            // SAFETY: a live block of ours (tag checked), given up by C.
            Some(b) => unsafe { block::free(b) },
            None => foreign("free", p),
        }
    }
    block::set_errno(saved);
}

/// `cfree(3)`: the old name of [`free`].
///
/// # Safety
/// As [`free`].
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// `realloc(3)`, with glibc's `realloc(p, 0)` (frees, returns null).
///
/// # Safety
/// As [`free`] for `p`; on success `p` is not used again.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: as malloc.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    match block::lookup(p.cast()) {
        // SAFETY: a live block of ours, resized as C asked.
        Some(b) => unsafe { block::realloc(b, size) }.cast(),
        None => {
            foreign("realloc", p);
            block::set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

/// `reallocarray(3)`: [`realloc`] to `n * size` bytes; null and `ENOMEM`
/// (the block untouched) when the product overflows.
///
/// # Safety
/// As [`realloc`].
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(bytes) => unsafe { realloc(p, bytes) },
        None => {
            block::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `aligned`-family core: `size` bytes at `align` (a power of two).
fn aligned(align: usize, size: usize) -> *mut c_void {
    block::alloc(size, align, false).cast()
}

/// `posix_memalign(3)`: `EINVAL` unless `align` is a power of two and a
/// multiple of `sizeof(void *)`; `ENOMEM` when the memory cannot be had.
/// `*out` is written only on success.
///
/// # Safety
/// `out` is valid for a write of a pointer.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let saved = block::errno();
    let p = aligned(align, size);
    if p.is_null() {
        block::set_errno(saved);
        return libc::ENOMEM;
    }
    // SAFETY: the caller's contract.
    unsafe { out.write(p) };
    0
}

/// `aligned_alloc(3)`: null and `EINVAL` unless `align` is a power of two.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        block::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    aligned(align, size)
}

/// `memalign(3)`: an alignment that is not a power of two is rounded up to
/// one (0 and 1 give 16); `EINVAL` past 2^63.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.max(1).checked_next_power_of_two() {
        Some(a) => aligned(a, size),
        None => {
            block::set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

/// `valloc(3)`: page-aligned.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    aligned(numakit::sys::page_size(), size)
}

/// `pvalloc(3)`: page-aligned, the size rounded up to whole pages
/// (`ENOMEM` when that overflows).
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = numakit::sys::page_size();
    match size.checked_next_multiple_of(page) {
        Some(rounded) => aligned(page, rounded.max(page)),
        None => {
            block::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// The library's version, NUL-terminated. Its symbol marks the library as
/// numakit's: `numakit run --node-local-malloc` refuses a library without
/// it.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn numakit_malloc_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// `malloc_trim(3)`: give the pages of freed blocks back to the OS, on
/// every node ([`NodeLocal::trim`]); 1 when some memory was given back,
/// else 0. `pad` is not used: the heaps keep no top to pad.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn malloc_trim(pad: usize) -> libc::c_int {
    let _ = pad;
    match NodeLocal::trim() {
        Ok(released) => libc::c_int::from(released > 0),
        Err(_) => 0,
    }
}

/// `malloc_usable_size(3)`: the size asked for (or resized to); 0 for null
/// and for foreign pointers.
///
/// # Safety
/// `p` is null or a pointer of this library.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    match block::lookup(p.cast()) {
        Some(b) => b.usable(),
        None => {
            foreign("malloc_usable_size", p);
            0
        }
    }
}

/// The library's own Rust allocations (the statistics at exit) go to the
/// node-local allocator directly, never through `malloc`.
struct Internal;

// SAFETY: forwards to NodeLocal, a GlobalAlloc, with the same arguments.
unsafe impl GlobalAlloc for Internal {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { block::allocator().alloc(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract: `p` came from `alloc` above.
        unsafe { block::allocator().dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { block::allocator().realloc(p, layout, new_size) }
    }
}

#[cfg(not(test))]
#[global_allocator]
static INTERNAL: Internal = Internal;

/// Print the figures on stderr (`atexit`, with `NUMAKIT_MALLOC_STATS=1`).
extern "C" fn print_stats() {
    let stats = NodeLocal::stats();
    let policy = match config::get().policy() {
        numakit::mem::OnExhausted::Strict => "strict",
        numakit::mem::OnExhausted::Nearest => "nearest",
    };
    let text = format!(
        "numakit-malloc: per-node figures at exit of pid {} (NUMAKIT_MALLOC_FALLBACK={policy}; foreign pointers met: {})\n{stats}",
        std::process::id(),
        FOREIGN.load(Ordering::Relaxed),
    );
    say::write_stats(text.as_bytes());
}

/// The library's constructor: read the settings and ask for the figures
/// at exit.
extern "C" fn init() {
    say::note_stderr();
    let cfg = config::get();
    if cfg.stats() {
        say::keep_stderr();
        // SAFETY: registers a plain function.
        unsafe { libc::atexit(print_stats) };
    }
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

#[cfg(test)]
mod tests {
    use super::*;

    /// Pin the calling thread to the first node with CPUs and memory:
    /// under the strict default a thread on a memoryless node's CPUs gets
    /// no memory at all (the 8-node guest has two such nodes).
    fn on_a_node_with_memory() -> numakit::sched::PinGuard {
        let topo = numakit::Topology::current().unwrap();
        let home = topo
            .nodes()
            .iter()
            .find(|n| n.has_memory() && n.allowed_cpus().is_ok_and(|c| !c.is_empty()))
            .map(|n| n.id())
            .unwrap();
        numakit::sched::Pin::node(home)
            .bind_memory(false)
            .apply()
            .unwrap()
    }

    #[test]
    fn blocks_round_trip_through_the_header() {
        let _pin = on_a_node_with_memory();
        for (size, align) in [
            (0, 16),
            (1, 16),
            (100, 64),
            (5000, 4096),
            (3 << 20, 16),
            (10, 1 << 16),
        ] {
            let p = block::alloc(size, align, true);
            assert!(!p.is_null());
            assert!((p as usize).is_multiple_of(align));
            // SAFETY: zeroed above for `size` bytes.
            assert!(unsafe { std::slice::from_raw_parts(p, size) }
                .iter()
                .all(|&b| b == 0));
            let b = block::lookup(p).expect("a block of ours");
            assert_eq!(b.usable(), size);
            // SAFETY: live block, resized.
            let q = unsafe { block::realloc(b, size + 4000) };
            assert!(!q.is_null());
            let b = block::lookup(q).unwrap();
            assert_eq!(b.usable(), size + 4000);
            // SAFETY: live block, freed once.
            unsafe { block::free(b) };
            if q != p || size >= 1 << 20 {
                // A freed large block is unmapped; a small one's tag is 0.
                assert!(block::lookup(q).is_none());
            }
        }
    }

    #[test]
    fn c_entry_points_follow_glibc() {
        let _pin = on_a_node_with_memory();
        // SAFETY: the C contracts, kept below.
        unsafe {
            assert!(calloc(usize::MAX, 2).is_null());
            assert_eq!(block::errno(), libc::ENOMEM);
            let mut out = ptr::null_mut();
            assert_eq!(posix_memalign(&mut out, 0, 8), libc::EINVAL);
            assert_eq!(posix_memalign(&mut out, 4, 8), libc::EINVAL);
            assert_eq!(posix_memalign(&mut out, 24, 8), libc::EINVAL);
            assert_eq!(posix_memalign(&mut out, usize::MAX, 8), libc::EINVAL);
            assert_eq!(posix_memalign(&mut out, 1 << 63, 8), libc::ENOMEM);
            assert!(out.is_null());
            assert_eq!(posix_memalign(&mut out, 8, 8), 0);
            free(out);
            assert!(aligned_alloc(0, 8).is_null());
            assert_eq!(block::errno(), libc::EINVAL);
            assert!(memalign(usize::MAX, 8).is_null());
            assert_eq!(block::errno(), libc::EINVAL);
            let p = memalign(100, 8);
            assert!((p as usize).is_multiple_of(128));
            free(p);
            assert!(realloc(malloc(10), 0).is_null());
            let x = [0u64; 4];
            block::set_errno(1234);
            free(x.as_ptr().cast_mut().cast());
            assert_eq!(block::errno(), 1234, "free keeps errno");
            assert!(FOREIGN.load(Ordering::Relaxed) >= 1);
        }
    }
}
