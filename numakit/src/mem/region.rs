//! [`Region`]: one node-bound mapping — mapped, bound, populated with the
//! node's free memory checked, verified, and unmapped on drop. Arenas (and
//! later slabs and heaps) are built on it.

use super::{MemError, PageKind, PageMap};
use crate::sys::mem as sys;
use crate::topology::{allowed, sysfs, NodeId, Topology};
use std::ptr::NonNull;

/// Bytes populated between two checks of the node's free memory.
const POPULATE_CHUNK: usize = 64 << 20;

/// Memory kept free on a node when populating normal pages: the larger of
/// 64 MiB and 1/32 of the node, above the kernel's own watermarks, so that
/// a populate never drives the node into the OOM killer.
fn node_reserve(total: u64) -> u64 {
    (64 << 20).max(total / 32)
}

/// A private anonymous mapping bound to one node with `MPOL_BIND`.
#[derive(Debug)]
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
    /// The node (the first of `interleave` for interleaved regions).
    node: NodeId,
    /// Nodes the pages are spread over with `MPOL_INTERLEAVE`; empty for a
    /// region bound to `node`.
    interleave: Vec<NodeId>,
    kind: PageKind,
}

// SAFETY: a Region owns its mapping exclusively; the raw pointer is just the
// mapping's address, and every access to the memory goes through owners
// (arenas) that provide their own synchronisation.
unsafe impl Send for Region {}
// SAFETY: &Region only reads the immutable fields and calls kernel queries
// (mincore, move_pages) that are safe to issue concurrently.
unsafe impl Sync for Region {}

/// Check that `node` exists, has memory and is among the nodes this
/// process may place memory on (`Mems_allowed`): the one node check of
/// every memory-placing API (regions, arenas, slabs, `NodeBox`, heaps,
/// rings and maps, `migrate`).
pub(crate) fn check_node(topo: &Topology, node: NodeId) -> Result<(), MemError> {
    if !topo.node(node)?.has_memory() {
        return Err(MemError::MemorylessNode {
            node,
            with_memory: topo
                .nodes()
                .iter()
                .filter(|n| n.has_memory())
                .map(|n| n.id())
                .collect(),
        });
    }
    if allowed::mem_allowed(node)? {
        return Ok(());
    }
    Err(MemError::NodeNotAllowed {
        node,
        mems_allowed: topo.mems_allowed()?,
        restriction: allowed::mems_restriction(),
    })
}

/// [`check_node`] after a fresh read of `Mems_allowed`: for a kernel that
/// refused a node the cached set allowed (the cpuset shrank since), so that
/// the refusal is the typed error when that is why.
pub(crate) fn recheck_node(topo: &Topology, node: NodeId) -> Result<(), MemError> {
    allowed::refresh_mems()?;
    check_node(topo, node)
}

impl Region {
    /// Map `len` bytes (rounded up to the page size) bound to `node`,
    /// without touching them.
    pub(crate) fn map(node: NodeId, len: usize, kind: PageKind) -> Result<Region, MemError> {
        let r = Self::map_policy(&[node], false, len, kind);
        crate::trace::placed(&[node], len, kind, &r);
        r
    }

    /// Map `len` bytes of normal pages interleaved page by page over
    /// `nodes` (`MPOL_INTERLEAVE`), without touching them.
    pub(crate) fn map_interleaved(nodes: &[NodeId], len: usize) -> Result<Region, MemError> {
        if nodes.is_empty() {
            return Err(MemError::InvalidConfig(
                "interleaving needs at least one node".into(),
            ));
        }
        let r = Self::map_policy(nodes, true, len, PageKind::Normal);
        crate::trace::placed(nodes, len, PageKind::Normal, &r);
        r
    }

    fn map_policy(
        nodes: &[NodeId],
        interleave: bool,
        len: usize,
        kind: PageKind,
    ) -> Result<Region, MemError> {
        let topo = Topology::current()?;
        for &node in nodes {
            check_node(&topo, node)?;
        }
        let node = nodes[0];
        let page = kind.page_size();
        let rounded = round_up(len, page).filter(|&l| l > 0 && l <= isize::MAX as usize);
        let Some(len) = rounded else {
            return Err(MemError::InvalidSize {
                requested: len as u64,
                reason: format!(
                    "a region needs at least 1 byte and at most {} bytes",
                    isize::MAX
                ),
            });
        };
        let nodes_total: u64 = nodes
            .iter()
            .map(|&n| topo.node(n).map(|n| n.memory_total()).unwrap_or(0))
            .sum();
        if len as u64 > nodes_total {
            return Err(MemError::InvalidSize {
                requested: len as u64,
                reason: format!(
                    "NUMA node{} {} {} only {} MiB of memory in all",
                    if nodes.len() > 1 { "s" } else { "" },
                    nodes
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if nodes.len() > 1 { "have" } else { "has" },
                    nodes_total >> 20
                ),
            });
        }
        if kind.is_hugetlb() {
            hugepages_free(node, page as u64)?;
        }
        let base = map_aligned(node, len, kind)?;
        let region = Region {
            base,
            len,
            node,
            interleave: if interleave {
                nodes.to_vec()
            } else {
                Vec::new()
            },
            kind,
        };
        let os = |call, source| MemError::Os { call, node, source };
        if kind == PageKind::TransparentHuge {
            // SAFETY: the range is our fresh mapping; MADV_HUGEPAGE changes
            // only how it is backed, never its contents.
            unsafe { sys::madvise(base, len, sys::MADV_HUGEPAGE) }
                .map_err(|e| os("madvise(MADV_HUGEPAGE)", e))?;
        }
        let (mode, call) = if interleave {
            (
                sys::MPOL_INTERLEAVE,
                "mbind(MPOL_INTERLEAVE, MPOL_MF_STRICT)",
            )
        } else {
            (sys::MPOL_BIND, "mbind(MPOL_BIND, MPOL_MF_STRICT)")
        };
        let mut mask: Vec<libc::c_ulong> = Vec::new();
        for n in nodes {
            let one = sys::try_node_mask(n.get()).map_err(|e| os(call, e))?;
            if mask.len() < one.len() {
                mask.resize(one.len(), 0);
            }
            for (m, o) in mask.iter_mut().zip(one) {
                *m |= o;
            }
        }
        before_bind(base, len);
        sys::mbind(
            base,
            len,
            mode,
            &mask,
            // The mapping is fresh and closed (`PROT_NONE`, see
            // `map_aligned`): no page exists yet, so there is nothing to
            // move. (`MPOL_MF_MOVE` would still make the kernel drain every
            // CPU's page lists, ~300 µs per call.)
            sys::MPOL_MF_STRICT,
        )
        .map_err(|e| {
            // EINVAL for a node the cpuset no longer allows: say so.
            if e.raw_os_error() == Some(libc::EINVAL) {
                for &n in nodes {
                    if let Err(typed) = recheck_node(&topo, n) {
                        return typed;
                    }
                }
            }
            os(call, e)
        })?;
        // SAFETY: our fresh mapping, bound; opening it changes no contents.
        unsafe { sys::mprotect(base, len, libc::PROT_READ | libc::PROT_WRITE) }
            .map_err(|e| os("mprotect(PROT_READ | PROT_WRITE)", e))?;
        Ok(region)
    }

    /// The nodes an interleaved region spreads over (empty when bound).
    pub(crate) fn interleave_nodes(&self) -> &[NodeId] {
        &self.interleave
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
    pub(crate) fn node(&self) -> NodeId {
        self.node
    }
    pub(crate) fn kind(&self) -> PageKind {
        self.kind
    }

    /// Fault in `[offset, offset + len)` (page-rounded outwards) on the
    /// node, in chunks, checking before each chunk that the node can give
    /// it without the OOM killer or `SIGBUS`.
    pub(crate) fn populate(&self, offset: usize, len: usize) -> Result<(), MemError> {
        let page = self.kind.page_size();
        let start = offset / page * page;
        let end = round_up(offset.saturating_add(len), page)
            .unwrap_or(self.len)
            .min(self.len);
        let chunk = POPULATE_CHUNK.max(page) / page * page;
        let mut at = start;
        while at < end {
            let n = chunk.min(end - at);
            self.check_can_populate(n as u64, (end - at) as u64)?;
            // SAFETY: `at..at + n` lies inside our mapping (end <= self.len)
            // and is page-aligned; POPULATE_WRITE faults pages in without
            // changing contents (fresh pages read as zero either way).
            let ptr = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(at)) };
            // SAFETY: as above: our own mapping, contents unchanged.
            if let Err(e) = unsafe { sys::madvise(ptr, n, sys::MADV_POPULATE_WRITE) } {
                return Err(self.populate_error(e, (end - at) as u64));
            }
            at += n;
        }
        Ok(())
    }

    fn check_can_populate(&self, chunk: u64, remaining: u64) -> Result<(), MemError> {
        if self.kind.is_hugetlb() {
            let page = self.kind.page_size() as u64;
            // Pages of this region already faulted are not free any more but
            // also not needed; only the chunk's pages must be free.
            let free = hugepages_free(self.node, page)?;
            let needed = chunk / page;
            if free < needed {
                return Err(hugepages_error(self.node, page, remaining / page, free));
            }
            return Ok(());
        }
        // Interleaved pages spread evenly: each node gives its share.
        let nodes = if self.interleave.is_empty() {
            std::slice::from_ref(&self.node)
        } else {
            &self.interleave[..]
        };
        let n = nodes.len() as u64;
        for &node in nodes {
            let (total, available) = sysfs::node_available_now(node)?;
            let reserve = node_reserve(total);
            if available < chunk.div_ceil(n).saturating_add(reserve) {
                return Err(MemError::OutOfNodeMemory {
                    node,
                    requested: remaining.div_ceil(n),
                    available,
                    reserve,
                });
            }
        }
        Ok(())
    }

    fn populate_error(&self, e: std::io::Error, remaining: u64) -> MemError {
        let exhausted = matches!(e.raw_os_error(), Some(libc::EFAULT | libc::ENOMEM));
        if exhausted && self.kind.is_hugetlb() {
            let page = self.kind.page_size() as u64;
            let free = hugepages_free(self.node, page).unwrap_or(0);
            return hugepages_error(self.node, page, remaining / page, free);
        }
        if exhausted {
            let (total, available) = sysfs::node_available_now(self.node).unwrap_or((0, 0));
            return MemError::OutOfNodeMemory {
                node: self.node,
                requested: remaining,
                available,
                reserve: node_reserve(total),
            };
        }
        MemError::Os {
            call: "madvise(MADV_POPULATE_WRITE)",
            node: self.node,
            source: e,
        }
    }

    /// Give the pages of `[offset, offset + len)` back to the OS
    /// (`MADV_DONTNEED`); they read as zero and fault in again, on the same
    /// node (the binding stays), when next written. Returns the bytes that
    /// were resident there (pages already given back count nothing).
    ///
    /// # Safety
    /// No live reference may point into the range.
    pub(crate) unsafe fn discard(&self, offset: usize, len: usize) -> Result<usize, MemError> {
        let page = self.kind.page_size();
        let Some(start) = round_up(offset, page) else {
            return Ok(0);
        };
        let end = (offset.saturating_add(len)).min(self.len) / page * page;
        if start >= end {
            return Ok(0);
        }
        // SAFETY: inside our mapping (end <= self.len), page-aligned.
        let ptr = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(start)) };
        let resident = self.resident_in(ptr, end - start)?;
        // SAFETY: the caller guarantees nothing references the range, so
        // zeroing it is not observable through any live reference.
        unsafe { sys::madvise(ptr, end - start, sys::MADV_DONTNEED) }.map_err(|source| {
            MemError::Os {
                call: "madvise(MADV_DONTNEED)",
                node: self.node,
                source,
            }
        })?;
        Ok(resident)
    }

    /// Bytes of the region resident in memory now (`mincore(2)`).
    pub(crate) fn resident(&self) -> Result<usize, MemError> {
        self.resident_in(self.base, self.len)
    }

    /// Bytes of `[ptr, ptr + len)`, a page-aligned part of the region,
    /// resident in memory now (`mincore(2)`).
    fn resident_in(&self, ptr: NonNull<u8>, len: usize) -> Result<usize, MemError> {
        let base_page = crate::sys::page_size();
        let mut vec = vec![0u8; len.div_ceil(base_page)];
        sys::mincore(ptr, len, &mut vec).map_err(|source| MemError::Os {
            call: "mincore",
            node: self.node,
            source,
        })?;
        Ok(vec.iter().filter(|&&b| b & 1 != 0).count() * base_page)
    }

    /// Where the pages of `[offset, offset + len)` are, one query per page
    /// of the region's kind.
    pub(crate) fn placement(&self, offset: usize, len: usize) -> Result<PageMap, MemError> {
        let len = len.min(self.len.saturating_sub(offset));
        let ptr = self.base.as_ptr().wrapping_add(offset);
        super::placement::locate_with_step(ptr, len, self.kind.page_size(), self.node)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Owners poison parts of their region for ASan; the addresses may
        // be mapped again for anything else.
        super::asan::unpoison(self.base.as_ptr(), self.len);
        // SAFETY: the owner of the Region (an arena) holds no references
        // into it any more once it drops it; the mapping is ours alone.
        let _ = unsafe { sys::munmap(self.base, self.len) };
    }
}

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

/// Runs on every fresh mapping between its `mmap` and its `mbind`, where a
/// test can play the neighbour whose faults must not reach the mapping.
#[inline(always)]
pub(crate) fn before_bind(base: NonNull<u8>, len: usize) {
    #[cfg(test)]
    tests::BEFORE_BIND.with(|hook| {
        if let Some(f) = &*hook.borrow() {
            f(base, len)
        }
    });
    #[cfg(not(test))]
    let _ = (base, len);
}

/// mmap `len` bytes aligned to the kind's page size, closed (`PROT_NONE`)
/// until the caller has bound them (see [`sys::mprotect`] for why).
fn map_aligned(node: NodeId, len: usize, kind: PageKind) -> Result<NonNull<u8>, MemError> {
    let rw = libc::PROT_NONE;
    let os = |call, source| MemError::Os { call, node, source };
    match kind {
        PageKind::Normal => sys::mmap_anonymous(len, rw, 0).map_err(|e| os("mmap", e)),
        PageKind::Huge2M | PageKind::Huge1G => {
            let size_flag = if kind == PageKind::Huge2M {
                sys::MAP_HUGE_2MB
            } else {
                sys::MAP_HUGE_1GB
            };
            sys::mmap_anonymous(len, rw, libc::MAP_HUGETLB | size_flag).map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOMEM) {
                    // The kernel reserves hugetlb pages machine-wide at mmap.
                    let page = kind.page_size() as u64;
                    let free = hugepages_free(node, page).unwrap_or(0);
                    hugepages_error(node, page, len as u64 / page, free)
                } else {
                    os("mmap(MAP_HUGETLB)", e)
                }
            })
        }
        PageKind::TransparentHuge => {
            // Over-map by one huge page and cut the unaligned ends off.
            let align = kind.page_size();
            let padded = len
                .checked_add(align)
                .ok_or_else(|| MemError::InvalidSize {
                    requested: len as u64,
                    reason: "too large to align to 2 MiB".into(),
                })?;
            let raw = sys::mmap_anonymous(padded, rw, 0).map_err(|e| os("mmap", e))?;
            trim_to_alignment(raw, padded, len, align, |addr, len| {
                // SAFETY: `trim_to_alignment` only unmaps parts of the fresh
                // mapping `raw` that it has not handed out; nothing
                // references them.
                unsafe { sys::munmap(addr, len) }
            })
            .map_err(|e| os("munmap", e))
        }
    }
}

/// Cut the mapping `[raw, raw + padded)` down to the `len` bytes starting at
/// its first `align`-aligned address, unmapping the head and tail with
/// `unmap`. `padded >= len + align`, so the aligned stretch fits.
///
/// On error nothing of the mapping is left: what remains is unmapped too
/// (the caller has no pointer to it, so it would leak otherwise). If that
/// last `munmap` also fails there is nothing left to try; it cannot fail for
/// a range that is exactly the remaining mapping in practice (`munmap` fails
/// on a bad range, which this is not, or with `ENOMEM` when splitting a
/// mapping would exceed `vm.max_map_count`, and unmapping a whole mapping or
/// one end of it splits nothing).
fn trim_to_alignment(
    raw: NonNull<u8>,
    padded: usize,
    len: usize,
    align: usize,
    mut unmap: impl FnMut(NonNull<u8>, usize) -> std::io::Result<()>,
) -> std::io::Result<NonNull<u8>> {
    let addr = raw.as_ptr() as usize;
    let aligned = round_up(addr, align).unwrap_or(addr);
    let head = aligned - addr;
    let tail = padded - head - len;
    let at = |a: usize| NonNull::new(a as *mut u8).unwrap_or(raw);
    if head > 0 {
        if let Err(e) = unmap(raw, head) {
            let _ = unmap(raw, padded);
            return Err(e);
        }
    }
    if tail > 0 {
        if let Err(e) = unmap(at(aligned + len), tail) {
            // The head is gone: what is left starts at `aligned`.
            let _ = unmap(at(aligned), len + tail);
            return Err(e);
        }
    }
    Ok(at(aligned))
}

/// Free hugepages of `page_size` on `node`; an error if the kernel has no
/// pool of that size.
fn hugepages_free(node: NodeId, page_size: u64) -> Result<u64, MemError> {
    sysfs::hugepages_now(node, page_size)
        .map(|(_, free)| free)
        .map_err(|_| MemError::HugepageSizeUnsupported {
            page_size,
            reserve_path: crate::topology::hugepage_reserve_path(node, page_size),
        })
}

fn hugepages_error(node: NodeId, page_size: u64, needed: u64, free: u64) -> MemError {
    let total = sysfs::hugepages_now(node, page_size)
        .map(|(t, _)| t)
        .unwrap_or(0);
    MemError::HugepagesUnavailable {
        node,
        page_size,
        needed,
        free,
        suggest: total + needed.saturating_sub(free),
        reserve_path: crate::topology::hugepage_reserve_path(node, page_size),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    const ALIGN: usize = 2 << 20;

    /// The hook [`before_bind`] runs on this thread's fresh mappings.
    pub(crate) type Hook = Box<dyn Fn(NonNull<u8>, usize)>;
    thread_local! {
        pub(crate) static BEFORE_BIND: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Map 4 MiB of default-policy memory right beside `[base, base + len)`
    /// (below it when its start is not 2 MiB aligned and the space is free,
    /// else above it when its end is not; one of the two is unaligned since
    /// `len` is not a multiple of 2 MiB),
    /// advise huge pages over both, and write the neighbour's byte next to
    /// the range from a thread on `cpu`. When the two mappings merged, that
    /// fault may place a transparent huge page over the boundary. Returns
    /// the neighbour, or `None` when no such address was free.
    fn fault_beside(
        base: NonNull<u8>,
        len: usize,
        cpu: crate::CpuId,
    ) -> Option<(NonNull<u8>, usize)> {
        const NEIGHBOUR: usize = 4 << 20;
        assert_ne!(len % ALIGN, 0);
        let (start, end) = (base.as_ptr() as usize, base.as_ptr() as usize + len);
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let below = (start % ALIGN != 0).then(|| (start - NEIGHBOUR, start - 1));
        let above = (end % ALIGN != 0).then_some((end, end));
        let (at, touch, n) = [below, above]
            .into_iter()
            .flatten()
            .find_map(|(at, touch)| {
                Some((at, touch, sys::mmap_anonymous_at(at, NEIGHBOUR, rw).ok()?))
            })?;
        let both = NonNull::new(start.min(at) as *mut u8).unwrap();
        // SAFETY: the range and its neighbour, both ours and unused;
        // MADV_HUGEPAGE changes only how they are backed.
        unsafe { sys::madvise(both, len + NEIGHBOUR, sys::MADV_HUGEPAGE) }.unwrap();
        std::thread::spawn(move || {
            let mut set = crate::CpuSet::new();
            set.insert(cpu);
            crate::sys::sched::sched_setaffinity(0, &set.to_mask()).unwrap();
            // SAFETY: a byte of the neighbour mapping, ours and unused.
            unsafe { (touch as *mut u8).write_volatile(1) };
        })
        .join()
        .unwrap();
        Some((n, NEIGHBOUR))
    }

    /// A mapping is bound before it is opened, so a neighbour's fault on
    /// another node cannot place a huge page over part of it first (which
    /// `mbind(MPOL_MF_STRICT)` refused with `EIO`, or, without `STRICT`,
    /// would have left pages off the node). The first half shows that such
    /// a fault does reach an open default-policy mapping in this kernel.
    #[test]
    #[ignore = "vm-only: needs two nodes with CPUs and memory"]
    fn a_neighbours_fault_on_another_node_cannot_reach_a_fresh_mapping() {
        let nodes: Vec<_> = crate::topology::nodes_with_cpus_and_memory()
            .into_iter()
            .map(|(n, cpus)| (n, cpus.iter().next().unwrap()))
            .collect();
        assert!(
            nodes.len() >= 2,
            "needs two nodes with CPUs and memory: {nodes:?}"
        );
        let a = nodes[0].0;
        let len = 3 * ALIGN / 2;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let pages_of = |p: NonNull<u8>, len: usize| {
            let page = crate::sys::page_size();
            let pages: Vec<*const u8> = (0..len / page)
                .map(|i| p.as_ptr().wrapping_add(i * page).cast_const())
                .collect();
            let mut status = vec![0; pages.len()];
            sys::move_pages_query(&pages, &mut status).unwrap();
            status
        };
        let unmap = |(p, len): (NonNull<u8>, usize)| {
            // SAFETY: a test mapping nothing refers to any more.
            unsafe { sys::munmap(p, len) }.unwrap()
        };

        // An open mapping with the default policy: the fault reaches it.
        // The fault's huge page needs a free 2 MiB block on the faulting
        // node (else it takes a small page, which stays outside), and the
        // neighbour needs free address space: tried up to 16 times on
        // each other node, the first node where it happens plays `b`.
        let mut tries = Vec::new();
        let reached = nodes[1..].iter().find(|&&(b, b_cpu)| {
            let (mut mapped, mut seen) = (0, Vec::new());
            let hit = (0..16).any(|_| {
                let open = sys::mmap_anonymous(len, rw, 0).unwrap();
                let Some(n) = fault_beside(open, len, b_cpu) else {
                    unmap((open, len));
                    return false;
                };
                mapped += 1;
                let pages = pages_of(open, len);
                seen.extend(pages.iter().filter(|&&s| s >= 0).copied());
                unmap(n);
                unmap((open, len));
                pages.contains(&(b.get() as i32))
            });
            tries.push((b, mapped, seen));
            hit
        });
        let Some(&(_, b_cpu)) = reached else {
            panic!(
                "no fault beside an open mapping put a page inside it (node, \
                 neighbours mapped, nodes of the pages found inside: {tries:?}): \
                 transparent huge pages are off or no node had a free 2 MiB \
                 block, and this test shows nothing"
            )
        };

        // Every node-bound mapper: the same fault between mmap and mbind.
        type Map = fn(NodeId, usize) -> Result<(NonNull<u8>, Box<dyn FnOnce()>), MemError>;
        let mappers: [(&str, Map); 2] = [
            ("Region::map", |node, len| {
                let r = Region::map(node, len, PageKind::Normal)?;
                Ok((r.base(), Box::new(move || drop(r))))
            }),
            ("heap Mapper::map", |node, len| {
                let m = crate::mem::heap::os::Mapper::new(node.get());
                let p = m.map(len, 8).map_err(|f| f.into_mem_error(node))?;
                // SAFETY: the mapping just made, referenced by nothing else.
                Ok((
                    p,
                    Box::new(move || unsafe { crate::mem::heap::os::unmap(p, len) }),
                ))
            }),
        ];
        for (name, map) in mappers {
            let neighbours = std::rc::Rc::new(RefCell::new(Vec::new()));
            let seen = neighbours.clone();
            BEFORE_BIND.with(|h| {
                *h.borrow_mut() = Some(Box::new(move |base, len| {
                    seen.borrow_mut().extend(fault_beside(base, len, b_cpu))
                }))
            });
            for _ in 0..8 {
                let got = map(a, len);
                let (p, free) = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                let wrong: Vec<_> = pages_of(p, len)
                    .into_iter()
                    .filter(|&s| s >= 0 && s != a.get() as i32)
                    .collect();
                assert!(wrong.is_empty(), "{name}: pages on {wrong:?}, not {a}");
                free();
            }
            BEFORE_BIND.with(|h| h.borrow_mut().take());
            let made = neighbours.borrow().len();
            neighbours.take().into_iter().for_each(unmap);
            assert!(made > 0, "{name}: no neighbour could be mapped");
        }
    }

    /// Sorted, merged `[start, end)` ranges.
    fn merged(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
        ranges.sort();
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (a, b) in ranges {
            match out.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => out.push((a, b)),
            }
        }
        out
    }

    /// A fresh `len + ALIGN` mapping whose start is not aligned, so the
    /// trim has a head and a tail.
    fn unaligned_mapping(len: usize) -> (NonNull<u8>, usize) {
        let page = crate::sys::page_size();
        let padded = len + ALIGN;
        // Map one page more and drop the first page if the start happens to
        // be aligned.
        let raw = sys::mmap_anonymous(padded + page, libc::PROT_READ, 0).unwrap();
        let addr = raw.as_ptr() as usize;
        if addr.is_multiple_of(ALIGN) {
            // SAFETY: our fresh mapping, nothing references it.
            unsafe { sys::munmap(raw, page).unwrap() };
            (NonNull::new((addr + page) as *mut u8).unwrap(), padded)
        } else {
            let end = NonNull::new((addr + padded) as *mut u8).unwrap();
            // SAFETY: our fresh mapping's last page, nothing references it.
            unsafe { sys::munmap(end, page).unwrap() };
            (raw, padded)
        }
    }

    #[test]
    fn trimming_unmaps_everything_when_an_unmap_fails() {
        let len = 4 * ALIGN;
        // fail_at: which unmap call fails (0 = head, 1 = tail), or none.
        for fail_at in [None, Some(0), Some(1)] {
            let (raw, padded) = unaligned_mapping(len);
            let addr = raw.as_ptr() as usize;
            let mut calls = 0;
            let mut unmapped = Vec::new();
            let result = trim_to_alignment(raw, padded, len, ALIGN, |p, n| {
                calls += 1;
                if Some(calls - 1) == fail_at {
                    return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
                }
                unmapped.push((p.as_ptr() as usize, p.as_ptr() as usize + n));
                // SAFETY: parts of our own test mapping.
                unsafe { sys::munmap(p, n) }
            });
            match fail_at {
                None => {
                    let base = result.unwrap().as_ptr() as usize;
                    assert_eq!(base % ALIGN, 0);
                    assert!(base > addr && base + len < addr + padded);
                    // Exactly the head and the tail went.
                    assert_eq!(
                        merged(unmapped),
                        [(addr, base), (base + len, addr + padded)]
                    );
                    // SAFETY: the trimmed mapping is ours.
                    unsafe { sys::munmap(NonNull::new(base as *mut u8).unwrap(), len).unwrap() };
                }
                Some(_) => {
                    assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::ENOMEM));
                    assert_eq!(
                        merged(unmapped),
                        [(addr, addr + padded)],
                        "after failing unmap #{fail_at:?} part of the mapping is left"
                    );
                }
            }
        }
    }
}
