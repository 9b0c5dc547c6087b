//! Node-bound mappings made with raw system calls only.
//!
//! Nothing here allocates through the global allocator or uses `std::fs`,
//! so the [`GlobalNodeHeap`](super::GlobalNodeHeap) adapter can call it from
//! inside `GlobalAlloc::alloc`. The steps are [`Region`](super::super::region)'s:
//! `mmap` closed (`PROT_NONE`), `mbind(MPOL_BIND, MPOL_MF_STRICT)`,
//! `mprotect` to open it, then `madvise(MADV_POPULATE_WRITE)` in chunks, each after
//! checking the node's free memory (read from sysfs into a stack buffer).
//! Failures come back as [`OsFail`], a `Copy` value that costs no
//! allocation; [`NodeHeap`](super::NodeHeap) turns it into a [`MemError`].

use crate::mem::MemError;
use crate::sys::mem as sys;
use crate::topology::NodeId;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes populated between two reads of the node's free memory (as
/// `Region` does).
const POPULATE_CHUNK: u64 = 64 << 20;

/// Words in the node mask: 1024 nodes, the kernel's default `MAX_NUMNODES`
/// ceiling.
const MASK_WORDS: usize = 1024 / sys_mask_bits();

const fn sys_mask_bits() -> usize {
    libc::c_ulong::BITS as usize
}

/// Why a mapping could not be made; `i32`s are errnos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OsFail {
    /// `mmap` refused.
    Mmap(i32),
    /// `mbind` refused (an absent or memoryless node gives `EINVAL`).
    Mbind(i32),
    /// `mprotect` could not open the bound mapping.
    Mprotect(i32),
    /// `madvise(MADV_POPULATE_WRITE)` failed for another reason than
    /// exhaustion.
    Populate(i32),
    /// `madvise(MADV_DONTNEED)` refused.
    Release(i32),
    /// The node's `meminfo` could not be read.
    Meminfo(i32),
    /// The node cannot give the bytes without eating into the reserve.
    NoMemory {
        requested: u64,
        available: u64,
        reserve: u64,
    },
    /// The size does not fit the address space once rounded.
    TooLarge(u64),
}

impl OsFail {
    /// The typed error for `node` (this allocates: never on the
    /// `GlobalAlloc` path).
    pub(crate) fn into_mem_error(self, node: NodeId) -> MemError {
        // An absent node has no meminfo, and a memoryless one or one
        // outside the cpuset's memory nodes refuses `mbind`: say so with the
        // typed error when the topology and `Mems_allowed` agree.
        if matches!(
            self,
            OsFail::Meminfo(libc::ENOENT) | OsFail::Mbind(libc::EINVAL)
        ) {
            let checked = crate::topology::Topology::detect()
                .map_err(MemError::from)
                .and_then(|topo| crate::mem::region::recheck_node(&topo, node));
            if let Err(e) = checked {
                return e;
            }
        }
        let os = |call, errno| MemError::Os {
            call,
            node,
            source: io::Error::from_raw_os_error(errno),
        };
        match self {
            OsFail::Mmap(e) => os("mmap", e),
            OsFail::Mbind(e) => os("mbind(MPOL_BIND, MPOL_MF_STRICT)", e),
            OsFail::Mprotect(e) => os("mprotect(PROT_READ | PROT_WRITE)", e),
            OsFail::Populate(e) => os("madvise(MADV_POPULATE_WRITE)", e),
            OsFail::Release(e) => os("madvise(MADV_DONTNEED)", e),
            OsFail::Meminfo(e) => os("read /sys/devices/system/node/nodeN/meminfo", e),
            OsFail::NoMemory {
                requested,
                available,
                reserve,
            } => MemError::OutOfNodeMemory {
                node,
                requested,
                available,
                reserve,
            },
            OsFail::TooLarge(requested) => MemError::InvalidSize {
                requested,
                reason: format!(
                    "rounded up to whole pages it exceeds isize::MAX ({} bytes)",
                    isize::MAX
                ),
            },
        }
    }
}

/// Memory kept free on a node when populating: the larger of 64 MiB and
/// 1/32 of the node (the same rule as `Region`).
fn node_reserve(total: u64) -> u64 {
    (64 << 20).max(total / 32)
}

/// Maps node-bound memory for one heap and remembers how much it may still
/// populate before reading the node's free memory again.
#[derive(Debug)]
pub(crate) struct Mapper {
    node: u32,
    /// Bytes that may be populated without a new look at `meminfo`: what
    /// the last reading left above the reserve, capped at
    /// [`POPULATE_CHUNK`], so the node is re-read at least every 64 MiB as
    /// `Region::populate` does.
    credit: AtomicU64,
}

impl Mapper {
    pub(crate) const fn new(node: u32) -> Self {
        Mapper {
            node,
            credit: AtomicU64::new(0),
        }
    }

    /// Map `len` bytes (a multiple of the page size) aligned to `align` (a
    /// power of two), bound to the node and populated.
    pub(crate) fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsFail> {
        self.reserve(len, align, len)
    }

    /// Map `len` bytes as [`map`](Self::map) does, bound to the node, but
    /// populate only the first `populated` bytes; the rest is populated
    /// with [`populate`](Self::populate) when it is needed.
    pub(crate) fn reserve(
        &self,
        len: usize,
        align: usize,
        populated: usize,
    ) -> Result<NonNull<u8>, OsFail> {
        self.check_fits(populated as u64)?;
        let page = crate::sys::page_size();
        // Closed until bound (see `sys::mprotect`).
        let rw = libc::PROT_NONE;
        let p = if align <= page {
            sys::mmap_anonymous(len, rw, 0).map_err(|e| OsFail::Mmap(errno(&e)))?
        } else {
            // Over-map by the alignment and cut the unaligned ends off.
            let padded = len.checked_add(align).ok_or(OsFail::TooLarge(len as u64))?;
            let raw = sys::mmap_anonymous(padded, rw, 0).map_err(|e| OsFail::Mmap(errno(&e)))?;
            let addr = raw.as_ptr() as usize;
            let aligned = (addr + align - 1) & !(align - 1);
            let head = aligned - addr;
            let tail = padded - head - len;
            // SAFETY: head and tail are the unused ends of the fresh mapping
            // just made; nothing references them. `aligned + len` is inside
            // it, hence non-null.
            unsafe {
                if head > 0 {
                    let _ = sys::munmap(raw, head);
                }
                if tail > 0 {
                    let _ = sys::munmap(NonNull::new_unchecked((aligned + len) as *mut u8), tail);
                }
                NonNull::new_unchecked(aligned as *mut u8)
            }
        };
        crate::mem::region::before_bind(p, len);
        let ready = self
            .bind(p, len)
            .and_then(|()| open(p, len))
            .and_then(|()| self.populate(p, populated));
        match ready {
            Ok(()) => Ok(p),
            Err(fail) => {
                // SAFETY: our fresh mapping; nothing has seen it.
                unsafe { unmap(p, len) };
                Err(fail)
            }
        }
    }

    fn bind(&self, p: NonNull<u8>, len: usize) -> Result<(), OsFail> {
        let bits = sys_mask_bits();
        let word = self.node as usize / bits;
        if word >= MASK_WORDS {
            return Err(OsFail::Mbind(libc::EINVAL));
        }
        let mut mask = [0 as libc::c_ulong; MASK_WORDS];
        mask[word] = 1 << (self.node as usize % bits);
        sys::mbind(
            p,
            len,
            sys::MPOL_BIND,
            &mask[..=word],
            // A fresh mapping: nothing to move (see `Region::map`).
            sys::MPOL_MF_STRICT,
        )
        .map_err(|e| OsFail::Mbind(errno(&e)))
    }

    /// Fault in `[p, p + len)` of a mapping of this mapper (fresh, or
    /// given back with [`release`]), in chunks, each after checking that
    /// the node can give it.
    pub(crate) fn populate(&self, p: NonNull<u8>, len: usize) -> Result<(), OsFail> {
        let mut at = 0usize;
        while at < len {
            let n = (len - at).min(POPULATE_CHUNK as usize);
            self.reserve_credit(n as u64, (len - at) as u64)?;
            // SAFETY: `at..at + n` is inside the fresh mapping; populating
            // does not change contents.
            let chunk = unsafe { NonNull::new_unchecked(p.as_ptr().add(at)) };
            // SAFETY: our own fresh mapping, contents unchanged.
            if let Err(e) = unsafe { sys::madvise(chunk, n, sys::MADV_POPULATE_WRITE) } {
                let e = errno(&e);
                if e == libc::ENOMEM || e == libc::EFAULT {
                    let (available, reserve) = match read_node_memory(self.node) {
                        Ok((total, available)) => (available, node_reserve(total)),
                        Err(_) => (0, 0),
                    };
                    return Err(OsFail::NoMemory {
                        requested: (len - at) as u64,
                        available,
                        reserve,
                    });
                }
                return Err(OsFail::Populate(e));
            }
            at += n;
        }
        Ok(())
    }

    /// Refuse up front, before any `mmap`, a request the node cannot hold
    /// now (the credit, when it covers `len`, says it can).
    pub(crate) fn check_fits(&self, len: u64) -> Result<(), OsFail> {
        if self.credit.load(Ordering::Relaxed) >= len {
            return Ok(());
        }
        let (total, available) = read_node_memory(self.node)?;
        let reserve = node_reserve(total);
        if available < len.saturating_add(reserve) {
            return Err(OsFail::NoMemory {
                requested: len,
                available,
                reserve,
            });
        }
        Ok(())
    }

    /// Take `n` bytes of credit, reading the node's free memory again when
    /// the credit is short. `remaining` is what the error reports.
    fn reserve_credit(&self, n: u64, remaining: u64) -> Result<(), OsFail> {
        let mut c = self.credit.load(Ordering::Relaxed);
        while c >= n {
            match self
                .credit
                .compare_exchange_weak(c, c - n, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => c = now,
            }
        }
        let (total, available) = read_node_memory(self.node)?;
        let reserve = node_reserve(total);
        if available < n.saturating_add(reserve) {
            self.credit.store(0, Ordering::Relaxed);
            return Err(OsFail::NoMemory {
                requested: remaining,
                available,
                reserve,
            });
        }
        self.credit.store(
            (available - reserve - n).min(POPULATE_CHUNK),
            Ordering::Relaxed,
        );
        Ok(())
    }
}

/// Open a fresh mapping of [`Mapper::reserve`] once it is bound.
fn open(p: NonNull<u8>, len: usize) -> Result<(), OsFail> {
    // SAFETY: our fresh mapping, bound; opening it changes no contents.
    unsafe { sys::mprotect(p, len, libc::PROT_READ | libc::PROT_WRITE) }
        .map_err(|e| OsFail::Mprotect(errno(&e)))
}

/// Give the pages of `[p, p + len)` back to the OS (`MADV_DONTNEED`): the
/// range stays mapped and bound; touching it again faults in zeroed pages
/// on the node, which [`Mapper::populate`] does with the memory check.
///
/// # Safety
/// The range is inside a mapping made by [`Mapper::map`] and nothing in it
/// is used any more.
pub(crate) unsafe fn release(p: NonNull<u8>, len: usize) -> Result<(), OsFail> {
    // SAFETY: per the contract, the contents may go.
    unsafe { sys::madvise(p, len, sys::MADV_DONTNEED) }.map_err(|e| OsFail::Release(errno(&e)))
}

/// Unmap a mapping made by [`Mapper::map`].
///
/// # Safety
/// `[p, p + len)` is such a mapping (or the whole of several) and nothing
/// uses it any more.
pub(crate) unsafe fn unmap(p: NonNull<u8>, len: usize) {
    // Free blocks inside are poisoned; the addresses may be mapped again
    // for anything else.
    crate::mem::asan::unpoison(p.as_ptr(), len);
    // SAFETY: per the contract.
    let _ = unsafe { sys::munmap(p, len) };
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `(MemTotal, MemFree + Inactive(file))` of `node` in bytes, the figures
/// `Region` checks, read from `/sys/devices/system/node/nodeN/meminfo`
/// with `open`/`read` into a stack buffer.
pub(crate) fn read_node_memory(node: u32) -> Result<(u64, u64), OsFail> {
    let mut path = [0u8; 64];
    let prefix = b"/sys/devices/system/node/node";
    let suffix = b"/meminfo\0";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut at = prefix.len();
    let mut digits = [0u8; 10];
    let mut n = node;
    let mut d = 0;
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[at] = digits[d];
        at += 1;
    }
    path[at..at + suffix.len()].copy_from_slice(suffix);

    let path =
        std::ffi::CStr::from_bytes_until_nul(&path).map_err(|_| OsFail::Meminfo(libc::EINVAL))?;
    let mut buf = [0u8; 4096];
    let len = crate::sys::fs::read_into(path, &mut buf).map_err(|e| OsFail::Meminfo(errno(&e)))?;
    let text = &buf[..len];
    let field = |name: &[u8]| meminfo_field(text, name).ok_or(OsFail::Meminfo(libc::EINVAL));
    let total = field(b" MemTotal:")?;
    let free = field(b" MemFree:")?;
    let inactive_file = field(b" Inactive(file):")?;
    Ok((total, free + inactive_file))
}

/// The value in bytes of the `name` line ("Node 0 MemFree:  123 kB").
fn meminfo_field(text: &[u8], name: &[u8]) -> Option<u64> {
    let start = text.windows(name.len()).position(|w| w == name)? + name.len();
    let mut value: u64 = 0;
    let mut seen = false;
    for &b in &text[start..] {
        match b {
            b' ' | b'\t' if !seen => {}
            b'0'..=b'9' => {
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                seen = true;
            }
            _ => break,
        }
    }
    seen.then(|| value.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_matches_the_sysfs_reader() {
        let (total, available) = read_node_memory(0).unwrap();
        let (t2, a2) = crate::topology::sysfs::node_available_now(NodeId::new(0)).unwrap();
        assert_eq!(total, t2);
        // Free memory moves; both readings are of the same order.
        assert!(available.abs_diff(a2) < total / 4, "{available} vs {a2}");
    }

    #[test]
    fn meminfo_field_parses_kb() {
        let text = b"Node 0 MemTotal:       16314216 kB\nNode 0 MemFree:  12 kB\n";
        assert_eq!(meminfo_field(text, b" MemTotal:"), Some(16314216 * 1024));
        assert_eq!(meminfo_field(text, b" MemFree:"), Some(12 * 1024));
        assert_eq!(meminfo_field(text, b" Inactive(file):"), None);
    }

    #[test]
    fn absent_node_fails_without_mapping_and_says_which_nodes_exist() {
        let m = Mapper::new(999);
        let fail = m.map(4096, 8).unwrap_err();
        assert_eq!(fail, OsFail::Meminfo(libc::ENOENT));
        let err = fail.into_mem_error(NodeId::new(999));
        assert!(matches!(err, MemError::Topology(_)), "{err:?}");
        // Past the free-memory check (credit granted), mbind refuses.
        m.credit.store(1 << 20, Ordering::Relaxed);
        assert_eq!(m.map(4096, 8), Err(OsFail::Mbind(libc::EINVAL)));
    }

    #[test]
    fn aligned_mapping_is_aligned_and_on_node0() {
        let m = Mapper::new(0);
        let p = m.map(8192, 1 << 21).unwrap();
        assert_eq!(p.as_ptr() as usize % (1 << 21), 0);
        let placement = crate::mem::locate(p.as_ptr(), 8192).unwrap();
        assert!(placement.is_all_on(NodeId::new(0)), "{placement}");
        // SAFETY: the mapping just made, unused.
        unsafe { unmap(p, 8192) };
    }
}
