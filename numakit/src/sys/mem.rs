//! Memory system calls: `mmap`, `munmap`, `madvise`, `mbind`,
//! `set_mempolicy`, `get_mempolicy`, `move_pages`.

use super::cvt;
use std::ffi::c_void;
use std::io;
use std::ptr::{self, NonNull};

// Memory policy modes (<linux/mempolicy.h>), defined here because `libc`
// does not carry them all.
/// Restore the default (local allocation) policy.
pub const MPOL_DEFAULT: i32 = 0;
/// Prefer the given node, fall back to others.
pub const MPOL_PREFERRED: i32 = 1;
/// Allocate only from the given nodes.
pub const MPOL_BIND: i32 = 2;
/// Interleave pages over the given nodes.
pub const MPOL_INTERLEAVE: i32 = 3;
/// Allocate on the node of the CPU that faults.
pub const MPOL_LOCAL: i32 = 4;
/// Prefer several nodes (Linux 5.15).
pub const MPOL_PREFERRED_MANY: i32 = 5;

/// `get_mempolicy` flag: return the policy's node mask as well.
pub const MPOL_F_NODE: u32 = 1 << 0;
/// `get_mempolicy` flag: look up the policy of the page at `addr`.
pub const MPOL_F_ADDR: u32 = 1 << 1;
/// `get_mempolicy` flag: return the set of nodes the thread may use.
pub const MPOL_F_MEMS_ALLOWED: u32 = 1 << 2;

/// `mbind` flag: fail with `EIO` if existing pages do not follow the policy.
pub const MPOL_MF_STRICT: u32 = 1 << 0;
/// `mbind`/`move_pages` flag: move pages used only by this process.
pub const MPOL_MF_MOVE: u32 = 1 << 1;
/// `mbind`/`move_pages` flag: move shared pages as well (needs `CAP_SYS_NICE`).
pub const MPOL_MF_MOVE_ALL: u32 = 1 << 2;

/// `madvise` advice: the range will not be needed; private anonymous pages
/// read back as zero afterwards.
pub const MADV_DONTNEED: i32 = 4;
/// `madvise` advice: free the range lazily (pages may keep old contents
/// until reclaimed).
pub const MADV_FREE: i32 = 8;
/// `madvise` advice: back the range with transparent huge pages.
pub const MADV_HUGEPAGE: i32 = 14;
/// `madvise` advice: never back the range with transparent huge pages.
pub const MADV_NOHUGEPAGE: i32 = 15;
/// `madvise` advice (Linux 5.14): fault in every page of the range writable
/// now, reporting failure as an error instead of a later `SIGBUS`.
pub const MADV_POPULATE_WRITE: i32 = 23;

/// `mmap` flag encoding a hugetlb page size: `log2(size) << MAP_HUGE_SHIFT`.
pub const MAP_HUGE_SHIFT: i32 = 26;
/// `MAP_HUGETLB | MAP_HUGE_2MB` page size bits.
pub const MAP_HUGE_2MB: i32 = 21 << MAP_HUGE_SHIFT;
/// `MAP_HUGETLB | MAP_HUGE_1GB` page size bits.
pub const MAP_HUGE_1GB: i32 = 30 << MAP_HUGE_SHIFT;

/// `mmap(2)` of private anonymous memory — reserve `len` bytes of fresh
/// address space ([mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)).
///
/// `flags` are added to `MAP_PRIVATE | MAP_ANONYMOUS` (e.g. `MAP_HUGETLB |
/// MAP_HUGE_2MB`, `MAP_NORESERVE`). `MAP_FIXED` and `MAP_FIXED_NOREPLACE` are
/// refused with `EINVAL`: this wrapper only creates new mappings and cannot
/// replace existing ones, which is what makes it safe.
pub fn mmap_anonymous(len: usize, prot: i32, flags: i32) -> io::Result<NonNull<u8>> {
    if flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) != 0 || len == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: no MAP_FIXED, so the kernel picks an unused address range and
    // no existing mapping (hence no Rust object) can be affected.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(addr.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))
}

/// `mprotect(2)` — set the access of `[addr, addr + len)` to `prot`
/// ([mprotect(2)](https://man7.org/linux/man-pages/man2/mprotect.2.html)).
///
/// Node-bound mappings are made `PROT_NONE`, bound, and only then opened
/// with this: an open anonymous mapping with the default policy merges
/// with an open neighbour of the same kind, and a fault in the neighbour
/// (another thread's, on another node) can then place a transparent huge
/// page that covers part of the fresh range before it is bound. A
/// `PROT_NONE` mapping merges with no open one, and a bound one only with
/// neighbours of the same policy.
///
/// # Safety
/// The caller owns the range. Taking access away makes every later access
/// through a pointer into the range fault: no reference into it may be
/// used afterwards without the access it needs.
pub unsafe fn mprotect(addr: NonNull<u8>, len: usize, prot: i32) -> io::Result<()> {
    check_range(addr, len)?;
    // SAFETY: the caller owns the range and guarantees no access it relies
    // on is taken away.
    cvt(unsafe { libc::mprotect(addr.as_ptr().cast(), len, prot) }.into()).map(drop)
}

/// `mmap(2)` of private anonymous memory at exactly `addr`
/// (`MAP_FIXED_NOREPLACE`): `EEXIST` when any of the range is mapped, so
/// no existing mapping is replaced. For tests that need a neighbour.
#[cfg(test)]
pub(crate) fn mmap_anonymous_at(addr: usize, len: usize, prot: i32) -> io::Result<NonNull<u8>> {
    // SAFETY: MAP_FIXED_NOREPLACE fails instead of replacing a mapping, so
    // no existing mapping (hence no Rust object) can be affected.
    let got = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if got == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if got as usize != addr {
        // A kernel before 4.17 ignores the flag and treats `addr` as a hint.
        // SAFETY: the mapping just made, referenced by nothing.
        let _ = unsafe { libc::munmap(got, len) };
        return Err(io::Error::from_raw_os_error(libc::EEXIST));
    }
    NonNull::new(got.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))
}

/// `munmap(2)` — remove the mapping of `[addr, addr + len)`
/// ([munmap(2)](https://man7.org/linux/man-pages/man2/munmap.2.html)).
///
/// # Safety
/// No live reference or pointer that will be used again may point into the
/// range; it must not be memory owned by something else (the heap, a stack,
/// another mapping's owner).
pub unsafe fn munmap(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees nothing still uses the range.
    cvt(unsafe { libc::munmap(addr.as_ptr().cast(), len) }.into()).map(drop)
}

/// `mremap(2)` without `MREMAP_MAYMOVE` — grow or shrink the mapping at
/// `addr` from `old_len` to `new_len` bytes where it is
/// ([mremap(2)](https://man7.org/linux/man-pages/man2/mremap.2.html)).
///
/// The range keeps its mapping's attributes, memory policy (`mbind`)
/// included: a grown range's new pages are faulted in under the same
/// policy. Growing fails with `ENOMEM` when the address space after the
/// mapping is taken; nothing changes then.
///
/// # Safety
/// `[addr, addr + old_len)` is one private anonymous mapping the caller
/// owns. When shrinking, nothing uses `[addr + new_len, addr + old_len)`
/// any more (it is unmapped).
pub unsafe fn mremap_in_place(addr: NonNull<u8>, old_len: usize, new_len: usize) -> io::Result<()> {
    check_range(addr, old_len.max(new_len))?;
    // SAFETY: without MREMAP_MAYMOVE the kernel never touches another
    // mapping (it refuses when the space after the range is taken); the
    // caller owns the range and, when shrinking, gives up its tail.
    let got = unsafe { libc::mremap(addr.as_ptr().cast(), old_len, new_len, 0) };
    if got == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mremap(2)` with `MREMAP_MAYMOVE` — resize the mapping at `addr` from
/// `old_len` to `new_len` bytes, moving it to another address if it cannot
/// grow where it is; returns its address
/// ([mremap(2)](https://man7.org/linux/man-pages/man2/mremap.2.html)).
///
/// The pages are moved, not copied, and the mapping keeps its attributes,
/// memory policy included (the grown part too: it is the same mapping).
/// The range must be one mapping (`EFAULT` otherwise). On error nothing has
/// changed.
///
/// # Safety
/// `[addr, addr + old_len)` is one private anonymous mapping the caller
/// owns; when the call succeeds at another address, nothing uses the old
/// addresses afterwards (they are unmapped).
pub unsafe fn mremap_maymove(
    addr: NonNull<u8>,
    old_len: usize,
    new_len: usize,
) -> io::Result<NonNull<u8>> {
    check_range(addr, old_len.max(new_len))?;
    // SAFETY: without MREMAP_FIXED the kernel picks a free destination and
    // touches no other mapping; the caller owns the source.
    let got = unsafe { libc::mremap(addr.as_ptr().cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
    if got == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(got.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))
}

/// `madvise(2)` — give the kernel `advice` about `[addr, addr + len)`
/// ([madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html)).
///
/// # Safety
/// Some advice changes memory contents (`MADV_DONTNEED` zeroes private
/// anonymous pages, `MADV_FREE` may): the caller must own the range and hold
/// no reference into it that relies on the old contents. Advice that only
/// changes backing (`MADV_HUGEPAGE`, `MADV_POPULATE_WRITE`) has no such
/// requirement beyond the range being a mapping the caller owns.
///
/// A range that wraps the address space gives `EINVAL` (the kernel would
/// round its length to 0 and succeed without doing anything).
pub unsafe fn madvise(addr: NonNull<u8>, len: usize, advice: i32) -> io::Result<()> {
    check_range(addr, len)?;
    // SAFETY: the caller guarantees the advice is acceptable for the range.
    cvt(unsafe { libc::madvise(addr.as_ptr().cast(), len, advice) }.into()).map(drop)
}

/// Node ids a node mask may hold: `0..MAX_MASK_NODES` (65536). Kernels
/// have at most 1024 nodes (`MAX_NUMNODES` = `1 << CONFIG_NODES_SHIFT`,
/// `NODES_SHIFT` <= 10); a larger id is not a node, and its mask would take
/// `id / 8` bytes (512 MiB for `u32::MAX`).
pub const MAX_MASK_NODES: u32 = 1 << 16;

/// `EINVAL` for a range whose end, rounded up to a page, wraps the address
/// space: `mbind` and `madvise` round such a length to 0 and succeed
/// without doing anything.
fn check_range(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    let page = super::page_size();
    match (addr.as_ptr() as usize)
        .checked_add(len)
        .and_then(|end| end.checked_add(page - 1))
    {
        Some(_) => Ok(()),
        None => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// The node mask for `mbind`/`set_mempolicy` with only node `node` set.
///
/// # Panics
/// If `node` is not below [`MAX_MASK_NODES`]; [`try_node_mask`] returns an
/// error instead.
#[track_caller]
pub fn node_mask(node: u32) -> Vec<libc::c_ulong> {
    match try_node_mask(node) {
        Ok(mask) => mask,
        Err(_) => panic!("node {node} is not below MAX_MASK_NODES ({MAX_MASK_NODES})"),
    }
}

/// The node mask for `mbind`/`set_mempolicy` with only node `node` set.
///
/// # Errors
/// `EINVAL` if `node` is not below [`MAX_MASK_NODES`] (as the kernel
/// answers for a node beyond its `MAX_NUMNODES`).
pub fn try_node_mask(node: u32) -> io::Result<Vec<libc::c_ulong>> {
    if node >= MAX_MASK_NODES {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let bits = libc::c_ulong::BITS;
    let mut mask = vec![0; (node / bits) as usize + 1];
    mask[(node / bits) as usize] = 1 << (node % bits);
    Ok(mask)
}

/// Length, in bits plus one, of a node mask made of `words` words: the
/// `maxnode` argument of `mbind`, `set_mempolicy` and `get_mempolicy`.
fn maxnode(words: usize) -> libc::c_ulong {
    (words * super::MASK_WORD_BITS + 1) as libc::c_ulong
}

fn mask_ptr(mask: &[libc::c_ulong]) -> *const libc::c_ulong {
    if mask.is_empty() {
        ptr::null()
    } else {
        mask.as_ptr()
    }
}

/// `mbind(2)` — set the memory policy of `[addr, addr + len)` to `mode` over
/// the nodes set in `nodemask`
/// ([mbind(2)](https://man7.org/linux/man-pages/man2/mbind.2.html)).
///
/// `flags` is a combination of `MPOL_MF_STRICT`, `MPOL_MF_MOVE`,
/// `MPOL_MF_MOVE_ALL`. An absent or memoryless node gives `EINVAL`; with
/// `STRICT`, pages that stay elsewhere give `EIO`. A range that wraps the
/// address space (`addr + len` rounded up to a page) gives `EINVAL`: the
/// kernel would round its length to 0 and bind nothing, successfully.
pub fn mbind(
    addr: NonNull<u8>,
    len: usize,
    mode: i32,
    nodemask: &[libc::c_ulong],
    flags: u32,
) -> io::Result<()> {
    check_range(addr, len)?;
    // SAFETY: mbind only changes placement, never contents, and the kernel
    // validates the range (ENOMEM/EFAULT) and the mask (bounded by maxnode,
    // which matches the slice's length).
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mbind,
            addr.as_ptr(),
            len,
            mode,
            mask_ptr(nodemask),
            maxnode(nodemask.len()),
            flags,
        )
    })
    .map(drop)
}

/// `set_mempolicy(2)` — set the calling thread's default memory policy
/// ([set_mempolicy(2)](https://man7.org/linux/man-pages/man2/set_mempolicy.2.html)).
///
/// `MPOL_DEFAULT` takes an empty mask.
pub fn set_mempolicy(mode: i32, nodemask: &[libc::c_ulong]) -> io::Result<()> {
    // SAFETY: the mask pointer and maxnode describe a readable slice (or
    // null with maxnode 1 meaning empty); the call affects only this thread's
    // future allocations.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            mode,
            mask_ptr(nodemask),
            maxnode(nodemask.len()),
        )
    })
    .map(drop)
}

/// `get_mempolicy(2)` — read a memory policy
/// ([get_mempolicy(2)](https://man7.org/linux/man-pages/man2/get_mempolicy.2.html)).
///
/// Returns the mode (or, with `MPOL_F_NODE | MPOL_F_ADDR`, the node of the
/// page at `addr`) and fills `nodemask` (pass a mask large enough for every
/// possible node: the kernel refuses short masks with `EINVAL`). `addr` is
/// only read by the kernel when `MPOL_F_ADDR` is set.
pub fn get_mempolicy(
    nodemask: &mut [libc::c_ulong],
    addr: *const u8,
    flags: u32,
) -> io::Result<i32> {
    let mut mode: libc::c_int = 0;
    let mask = if nodemask.is_empty() {
        ptr::null_mut()
    } else {
        nodemask.as_mut_ptr()
    };
    // SAFETY: `mode` and `mask` are valid for writes of the sizes given;
    // the kernel only looks up `addr` in the page tables and reports EFAULT
    // for an unmapped one.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            mask,
            maxnode(nodemask.len()),
            addr as usize,
            flags,
        )
    })?;
    Ok(mode)
}

/// `process_vm_readv(2)` on the calling process — copy `out.len()` bytes
/// from `addr` into `out`, with the kernel checking that the range is
/// mapped and readable
/// ([process_vm_readv(2)](https://man7.org/linux/man-pages/man2/process_vm_readv.2.html)).
///
/// Returns the bytes copied (fewer than asked when the range runs into an
/// unreadable page); `EFAULT` when the first byte is not readable. Any
/// address may be passed: nothing is dereferenced in this process. Costs
/// two system calls (`getpid`, then the copy).
///
/// Where `process_vm_readv` is refused (`EPERM`, `ENOSYS` or `EACCES`: a
/// seccomp filter, as sandboxes and hardened services install, or a
/// kernel without it), the bytes are copied through a pipe instead
/// (`write(2)` from `addr`, which the kernel checks the same way, then
/// `read(2)`, a page at a time), with the same results; the refusal is
/// remembered, so the pipe is used from then on (five system calls for a
/// read within one page).
pub fn read_own_memory(addr: *const u8, out: &mut [u8]) -> io::Result<usize> {
    if !VM_READV_REFUSED.load(std::sync::atomic::Ordering::Relaxed) {
        match read_own_memory_vm(addr, out) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::ENOSYS | libc::EACCES)
                ) =>
            {
                VM_READV_REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            other => return other,
        }
    }
    read_own_memory_piped(addr, out)
}

/// Set once `process_vm_readv` was refused.
static VM_READV_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn read_own_memory_vm(addr: *const u8, out: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: addr.cast_mut().cast(),
        iov_len: out.len(),
    };
    // SAFETY: `local` describes `out`, valid for writes of its length; the
    // kernel reads `remote` through the page tables (EFAULT when unmapped),
    // never through a pointer of this process.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// [`read_own_memory`] through a pipe of its own (made and closed here,
/// so that threads and forked children never share one).
fn read_own_memory_piped(addr: *const u8, out: &mut [u8]) -> io::Result<usize> {
    if out.is_empty() {
        return Ok(0);
    }
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }.into())?;
    let [rd, wr] = fds;
    let page = crate::sys::page_size();
    let retry = |f: &mut dyn FnMut() -> isize| loop {
        let n = f();
        if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return n;
        }
    };
    let mut done = 0;
    let mut result = Ok(());
    while done < out.len() {
        // Up to the end of the page: a write that runs into an unreadable
        // page fails whole, so each stops at a page boundary (and stays
        // below the pipe's capacity: neither end ever blocks).
        let from = addr.wrapping_add(done);
        let to_boundary = page - (from as usize & (page - 1));
        let chunk = (out.len() - done).min(to_boundary);
        // SAFETY: the kernel copies from `from` with its own checks
        // (EFAULT, or a short count, for unreadable bytes); nothing is
        // dereferenced in this process.
        let w = retry(&mut || unsafe { libc::write(wr, from.cast(), chunk) });
        if w < 0 {
            if done == 0 {
                result = Err(io::Error::last_os_error());
            }
            break;
        }
        let w = w as usize;
        let mut got = 0;
        while got < w {
            let to = out[done + got..done + w].as_mut_ptr();
            // SAFETY: `to` is valid for writes of `w - got` bytes of `out`.
            let r = retry(&mut || unsafe { libc::read(rd, to.cast(), w - got) });
            if r <= 0 {
                result = Err(if r == 0 {
                    io::Error::from_raw_os_error(libc::EIO)
                } else {
                    io::Error::last_os_error()
                });
                break;
            }
            got += r as usize;
        }
        done += got;
        if result.is_err() || w < chunk {
            break;
        }
    }
    // SAFETY: the two descriptors made above, closed once.
    unsafe {
        libc::close(rd);
        libc::close(wr);
    }
    result.map(|()| done)
}

/// `move_pages(2)` in query mode — report the node of each page in `pages`
/// ([move_pages(2)](https://man7.org/linux/man-pages/man2/move_pages.2.html)).
///
/// `status[i]` receives the node of `pages[i]`, or a negative errno:
/// `-ENOENT` for a page not yet faulted in, `-EFAULT` for an unmapped
/// address. `status` must be as long as `pages` (else `EINVAL`).
pub fn move_pages_query(pages: &[*const u8], status: &mut [i32]) -> io::Result<()> {
    move_pages_raw(pages, None, status, 0).map(drop)
}

/// `move_pages(2)` — move each page in `pages` to the node in `nodes`
/// ([move_pages(2)](https://man7.org/linux/man-pages/man2/move_pages.2.html)).
///
/// `status[i]` receives the node the page is on afterwards or a negative
/// errno. `flags` is `MPOL_MF_MOVE` or `MPOL_MF_MOVE_ALL`. All three slices
/// must have the same length (else `EINVAL`).
///
/// When the kernel cannot migrate some pages it returns how many and leaves
/// `status` unwritten for the rest of the call; the statuses are then asked
/// again in query mode, so `status` always says where each page is.
pub fn move_pages(
    pages: &[*const u8],
    nodes: &[i32],
    status: &mut [i32],
    flags: u32,
) -> io::Result<()> {
    if nodes.len() != pages.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if move_pages_raw(pages, Some(nodes), status, flags)? > 0 {
        move_pages_raw(pages, None, status, 0)?;
    }
    Ok(())
}

/// Attempts [`move_pages_settled`] makes for a page that is busy.
const MOVE_ATTEMPTS: usize = 4;

/// [`move_pages`] of every page in `pages` to `node`, trying again — up to
/// [`MOVE_ATTEMPTS`] in all, a millisecond apart — the pages that were busy
/// (`-EBUSY`, `-EAGAIN`: locked, or being migrated by the kernel's own NUMA
/// balancing at that moment) or that the kernel could not migrate. Pages
/// that fail for any other reason are not tried again. `status` ends as
/// [`move_pages`] leaves it; `pages` and `status` must have the same length
/// (else `EINVAL`).
pub(crate) fn move_pages_settled(
    pages: &[*const u8],
    node: i32,
    status: &mut [i32],
    flags: u32,
) -> io::Result<()> {
    let nodes = vec![node; pages.len()];
    move_pages(pages, &nodes, status, flags)?;
    let retry = |s: i32| s == -libc::EBUSY || s == -libc::EAGAIN || (s >= 0 && s != node);
    for _ in 1..MOVE_ATTEMPTS {
        let again: Vec<usize> = (0..status.len()).filter(|&i| retry(status[i])).collect();
        if again.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        let batch: Vec<*const u8> = again.iter().map(|&i| pages[i]).collect();
        let mut st = vec![0i32; batch.len()];
        move_pages(&batch, &nodes[..batch.len()], &mut st, flags)?;
        for (&i, s) in again.iter().zip(st) {
            status[i] = s;
        }
    }
    Ok(())
}

fn move_pages_raw(
    pages: &[*const u8],
    nodes: Option<&[i32]>,
    status: &mut [i32],
    flags: u32,
) -> io::Result<libc::c_long> {
    if status.len() != pages.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if pages.is_empty() {
        return Ok(0);
    }
    let nodes_ptr = nodes.map_or(ptr::null(), <[i32]>::as_ptr);
    // SAFETY: all arrays hold `pages.len()` elements (checked above); the
    // kernel reads `pages`/`nodes` and writes `status`. Moving a page keeps
    // its contents and virtual address, and bad addresses are reported per
    // page in `status`.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0 as libc::pid_t,
            pages.len() as libc::c_ulong,
            pages.as_ptr() as *const *const c_void,
            nodes_ptr,
            status.as_mut_ptr(),
            flags as libc::c_int,
        )
    })
}

/// `mincore(2)` — which pages of `[addr, addr + len)` are resident
/// ([mincore(2)](https://man7.org/linux/man-pages/man2/mincore.2.html)).
///
/// `addr` must be page-aligned; `vec` receives one byte per base page (bit 0
/// set when resident) and must hold `len.div_ceil(page_size())` bytes (else
/// `EINVAL`). Unmapped addresses give `ENOMEM`.
pub fn mincore(addr: NonNull<u8>, len: usize, vec: &mut [u8]) -> io::Result<()> {
    if vec.len() < len.div_ceil(super::page_size()) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `vec` holds at least one byte per page of the range (checked
    // above); mincore only reads page tables for the range.
    cvt(unsafe { libc::mincore(addr.as_ptr().cast(), len, vec.as_mut_ptr()) }.into()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_reads_check_the_range() {
        let x = 0x1234_5678_u64.to_ne_bytes();
        let mut out = [0u8; 8];
        assert_eq!(read_own_memory(x.as_ptr(), &mut out).unwrap(), 8);
        assert_eq!(out, x);
        assert_eq!(read_own_memory(x.as_ptr(), &mut []).unwrap(), 0);
        for bad in [0usize, 1, usize::MAX - 7] {
            let e = read_own_memory(bad as *const u8, &mut out).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EFAULT), "{bad:#x}");
        }
    }

    #[test]
    fn own_memory_reads_through_a_pipe_check_the_range_the_same_way() {
        let x = 0x1234_5678_u64.to_ne_bytes();
        let mut out = [0u8; 8];
        assert_eq!(read_own_memory_piped(x.as_ptr(), &mut out).unwrap(), 8);
        assert_eq!(out, x);
        assert_eq!(read_own_memory_piped(x.as_ptr(), &mut []).unwrap(), 0);
        for bad in [0usize, 1, usize::MAX - 7] {
            let e = read_own_memory_piped(bad as *const u8, &mut out).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EFAULT), "{bad:#x}");
        }
        // Longer than one chunk, and running into an unreadable page.
        let page = crate::sys::page_size();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let m = mmap_anonymous(3 * page, rw, 0).unwrap();
        let base = m.as_ptr().cast::<u8>();
        // SAFETY: the first two pages of the fresh mapping.
        let src = unsafe { std::slice::from_raw_parts_mut(base, 2 * page) };
        for (i, b) in src.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let guard = base.wrapping_add(2 * page);
        // SAFETY: the third page of our mapping, which nothing references.
        let rc = unsafe { libc::mprotect(guard.cast(), page, libc::PROT_NONE) };
        assert_eq!(rc, 0);
        let mut long = vec![0u8; 2 * page];
        assert_eq!(read_own_memory_piped(base, &mut long).unwrap(), 2 * page);
        assert!(long.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        let mut across = [0u8; 32];
        // SAFETY: 16 bytes before the unreadable page.
        let near = unsafe { base.add(2 * page - 16) };
        assert_eq!(read_own_memory_piped(near, &mut across).unwrap(), 16);
        assert_eq!(read_own_memory(near, &mut across).unwrap(), 16);
        // SAFETY: the mapping made above, unmapped once.
        unsafe { libc::munmap(base.cast(), 3 * page) };
    }

    #[test]
    fn node_masks_are_capped() {
        let bits = libc::c_ulong::BITS;
        for (node, words) in [(0, 1), (1, 1), (MAX_MASK_NODES - 1, MAX_MASK_NODES / bits)] {
            let mask = try_node_mask(node).unwrap();
            assert_eq!(mask.len() as u32, words, "node {node}");
            assert_eq!(mask.iter().map(|w| w.count_ones()).sum::<u32>(), 1);
        }
        for node in [MAX_MASK_NODES, u32::MAX] {
            let err = try_node_mask(node).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "node {node}");
        }
        assert!(std::panic::catch_unwind(|| node_mask(u32::MAX)).is_err());
    }

    #[test]
    fn mmap_refuses_fixed() {
        let err = mmap_anonymous(4096, libc::PROT_READ, libc::MAP_FIXED).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        let err = mmap_anonymous(0, libc::PROT_READ, 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    /// `mprotect` over lengths 0, 1, the whole mapping and ones that wrap;
    /// a misaligned start; a bad protection. (Past the mapping is not
    /// tried: what lies there may be another test's.)
    #[test]
    fn mprotect_opens_a_closed_mapping_and_refuses_bad_ranges() {
        let page = crate::sys::page_size();
        let len = 4 * page;
        let p = mmap_anonymous(len, libc::PROT_NONE, 0).unwrap();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let errno = |r: io::Result<()>| r.unwrap_err().raw_os_error();
        // SAFETY: (every call below) our own mapping, unused; nothing reads
        // or writes it except as the protection set just before allows.
        unsafe {
            mprotect(p, 0, rw).unwrap();
            // One byte opens its whole page, and only that page.
            mprotect(p, 1, rw).unwrap();
            p.as_ptr().write(1);
            let mut vec = [0u8; 4];
            mincore(p, len, &mut vec).unwrap();
            assert_eq!(vec[0] & 1, 1);
            mprotect(p, len, rw).unwrap();
            p.as_ptr().add(len - 1).write(2);
            for wrap in [usize::MAX, usize::MAX - p.as_ptr() as usize] {
                assert_eq!(errno(mprotect(p, wrap, rw)), Some(libc::EINVAL), "{wrap}");
            }
            let odd = NonNull::new(p.as_ptr().add(1)).unwrap();
            assert_eq!(errno(mprotect(odd, page, rw)), Some(libc::EINVAL));
            assert_eq!(errno(mprotect(p, page, i32::MAX)), Some(libc::EINVAL));
            assert_eq!((p.as_ptr().read(), p.as_ptr().add(len - 1).read()), (1, 2));
            munmap(p, len).unwrap();
        }
    }

    #[test]
    fn bind_populate_and_query_on_node0() {
        let page = crate::sys::page_size();
        let len = 16 * page;
        let p = mmap_anonymous(len, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
        mbind(p, len, MPOL_BIND, &[1], MPOL_MF_STRICT | MPOL_MF_MOVE).unwrap();
        let pages: Vec<*const u8> = (0..16)
            .map(|i| p.as_ptr().wrapping_add(i * page) as *const u8)
            .collect();
        let mut status = vec![i32::MIN; 16];
        move_pages_query(&pages, &mut status).unwrap();
        // Never-touched pages: -ENOENT on recent kernels, -EFAULT (the zero
        // page / nothing mapped yet) on 6.1.
        assert!(
            status
                .iter()
                .all(|&s| s == -libc::ENOENT || s == -libc::EFAULT),
            "{status:?}"
        );
        // SAFETY: we own the fresh mapping and hold no references into it.
        unsafe { madvise(p, len, MADV_POPULATE_WRITE) }.unwrap();
        move_pages_query(&pages, &mut status).unwrap();
        assert!(status.iter().all(|&s| s == 0), "{status:?}");
        let mut mask = vec![0 as libc::c_ulong; 16];
        let node = get_mempolicy(&mut mask, p.as_ptr(), MPOL_F_NODE | MPOL_F_ADDR).unwrap();
        assert_eq!(node, 0);
        let mode = get_mempolicy(&mut mask, p.as_ptr(), MPOL_F_ADDR).unwrap();
        assert_eq!(mode, MPOL_BIND);
        assert_eq!(mask[0], 1);
        let mut moved = vec![i32::MIN; 16];
        move_pages(&pages, &[0; 16], &mut moved, MPOL_MF_MOVE).unwrap();
        assert!(moved.iter().all(|&s| s == 0), "{moved:?}");
        // SAFETY: the mapping is ours and nothing references it any more.
        unsafe { munmap(p, len) }.unwrap();
    }

    #[test]
    fn settled_moves_keep_failures_that_are_not_busy_and_check_lengths() {
        let page = crate::sys::page_size();
        let len = 4 * page;
        let p = mmap_anonymous(len, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
        // SAFETY: we own the fresh mapping and hold no references into it.
        unsafe { madvise(p, 2 * page, MADV_POPULATE_WRITE) }.unwrap();
        let mut pages: Vec<*const u8> = (0..4)
            .map(|i| p.as_ptr().wrapping_add(i * page) as *const u8)
            .collect();
        // An address nothing maps: reported, not retried.
        pages.push(ptr::null());
        let mut status = vec![i32::MIN; pages.len()];
        move_pages_settled(&pages, 0, &mut status, MPOL_MF_MOVE).unwrap();
        assert_eq!(&status[..2], &[0, 0]);
        assert!(status[2..].iter().all(|&s| s < 0), "{status:?}");
        assert!(move_pages_settled(&[], 0, &mut [], MPOL_MF_MOVE).is_ok());
        let err = move_pages_settled(&pages, 0, &mut [0; 2], MPOL_MF_MOVE).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        // A node that does not exist is the kernel's error, not a retry loop.
        let mut status = vec![i32::MIN; 2];
        let r = move_pages_settled(&pages[..2], i32::MAX, &mut status, MPOL_MF_MOVE);
        assert!(
            r.is_err() || status.iter().all(|&s| s < 0),
            "{r:?} {status:?}"
        );
        // SAFETY: the mapping is ours and nothing references it any more.
        unsafe { munmap(p, len) }.unwrap();
    }

    #[test]
    fn mbind_absent_node_is_einval() {
        let page = crate::sys::page_size();
        let p = mmap_anonymous(page, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
        // Node 63 does not exist on any machine this runs on.
        let err = mbind(p, page, MPOL_BIND, &[1 << 63], MPOL_MF_STRICT).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        // SAFETY: the mapping is ours and nothing references it.
        unsafe { munmap(p, page) }.unwrap();
    }

    #[test]
    fn mempolicy_roundtrip() {
        std::thread::spawn(|| {
            set_mempolicy(MPOL_BIND, &[1]).unwrap();
            let mut mask = vec![0 as libc::c_ulong; 16];
            assert_eq!(get_mempolicy(&mut mask, ptr::null(), 0).unwrap(), MPOL_BIND);
            assert_eq!(mask[0], 1);
            set_mempolicy(MPOL_DEFAULT, &[]).unwrap();
            assert_eq!(
                get_mempolicy(&mut mask, ptr::null(), 0).unwrap(),
                MPOL_DEFAULT
            );
        })
        .join()
        .unwrap();
    }
}
