//! Where memory really is: [`locate`], [`migrate`] and the [`PageMap`]
//! report, through `move_pages(2)`.

use super::MemError;
use crate::sys::mem as sys;
use crate::topology::{NodeId, Topology};
use std::collections::BTreeMap;
use std::fmt;

/// Pages asked about per `move_pages` call.
const BATCH: usize = 4096;

/// Where the pages of a range are, as the kernel reports them: what
/// [`locate`] and [`migrate`] return, and the proof every node-placed
/// type's `verify()` returns (arenas, slabs, heaps, [`NodeBox`](super::NodeBox),
/// [`PerNode`](super::PerNode), rings, the hash map,
/// [`PartitionedCounter`](crate::PartitionedCounter)). Not to be confused
/// with [`NodePlacement`](super::NodePlacement) (where a value is declared
/// to go) or [`ThreadPlacement`](crate::sched::ThreadPlacement) (where a
/// group's threads go).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageMap {
    page_size: usize,
    on_node: BTreeMap<NodeId, usize>,
    not_present: usize,
    errors: usize,
}

impl PageMap {
    /// The page size the range was walked with.
    pub fn page_size(&self) -> usize {
        self.page_size
    }
    /// Pages looked at.
    pub fn pages(&self) -> usize {
        self.on_node.values().sum::<usize>() + self.not_present + self.errors
    }
    /// Pages on `node`.
    pub fn on(&self, node: NodeId) -> usize {
        self.on_node.get(&node).copied().unwrap_or(0)
    }
    /// `(node, pages)` for every node holding at least one page, by node id.
    pub fn per_node(&self) -> impl Iterator<Item = (NodeId, usize)> + '_ {
        self.on_node.iter().map(|(&n, &c)| (n, c))
    }
    /// Pages with no physical page: never faulted in (or, as older kernels
    /// cannot tell the two apart, not mapped at all).
    pub fn not_present(&self) -> usize {
        self.not_present
    }
    /// Pages the kernel could not report on for another reason.
    pub fn errors(&self) -> usize {
        self.errors
    }
    /// Whether every page looked at is present and on `node`.
    pub fn is_all_on(&self, node: NodeId) -> bool {
        self.on(node) == self.pages()
    }
    /// `Ok(self)` when every page is present and on `node`, else
    /// [`MemError::Misplaced`] carrying this placement: the check behind
    /// every `verify()`.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] when a page is elsewhere or not present.
    pub fn ensure_on(self, node: NodeId) -> Result<PageMap, MemError> {
        if self.is_all_on(node) {
            Ok(self)
        } else {
            Err(MemError::Misplaced {
                expected: node,
                found: self,
            })
        }
    }

    /// Add the pages of `other` to this report: the proof of several
    /// ranges (a heap's segments, every replica of a
    /// [`PerNode`](super::PerNode)) as one. The page size stays this
    /// report's unless it is empty (page size 0); the counts are pages of
    /// whatever size each part was walked with.
    pub fn merge(&mut self, other: PageMap) {
        if self.page_size == 0 {
            self.page_size = other.page_size;
        }
        for (node, n) in other.on_node {
            *self.on_node.entry(node).or_insert(0) += n;
        }
        self.not_present += other.not_present;
        self.errors += other.errors;
    }

    /// The share of pages on `node`, from 0.0 to 1.0 (1.0 for an empty range).
    pub fn fraction_on(&self, node: NodeId) -> f64 {
        match self.pages() {
            0 => 1.0,
            n => self.on(node) as f64 / n as f64,
        }
    }
}

impl fmt::Display for PageMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} pages of {} bytes:", self.pages(), self.page_size)?;
        for (node, n) in &self.on_node {
            write!(f, " {n} on node {node};")?;
        }
        if self.not_present > 0 {
            write!(f, " {} not present;", self.not_present)?;
        }
        if self.errors > 0 {
            write!(f, " {} unknown;", self.errors)?;
        }
        Ok(())
    }
}

/// Where the pages of `[ptr, ptr + len)` are, one `move_pages(2)` query per
/// base page. Works on any memory of this process (heap, stack, mappings).
///
/// Any range is accepted that does not wrap around the end of the address
/// space: an empty one gives an empty placement; pages no mapping covers (as
/// `/proc/self/maps` says at the call) are counted as
/// [`not_present`](PageMap::not_present) without asking the kernel, so
/// the time taken grows with the mapped pages of the range, not with its
/// length, and the kernel is asked about at most 4096 pages at a time.
///
/// # Errors
/// - [`MemError::InvalidRange`] when `ptr + len` wraps the address space;
/// - [`MemError::Os`] if `move_pages` itself fails (unmapped pages are
///   counted in [`PageMap::not_present`] or [`PageMap::errors`], not
///   turned into an error).
///
/// # Examples
/// ```
/// let v = vec![1u8; 1 << 20];
/// let here = numakit::mem::locate(v.as_ptr(), v.len())?;
/// assert_eq!(here.pages(), here.per_node().map(|(_, n)| n).sum::<usize>());
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub fn locate(ptr: *const u8, len: usize) -> Result<PageMap, MemError> {
    locate_with_step(ptr, len, crate::sys::page_size(), NodeId::new(0))
}

/// `locate` walking with `step`-byte pages; `node` only labels errors.
pub(crate) fn locate_with_step(
    ptr: *const u8,
    len: usize,
    step: usize,
    node: NodeId,
) -> Result<PageMap, MemError> {
    let (start, end) = page_span(ptr, len, step)?;
    let mut placement = PageMap {
        page_size: step,
        ..PageMap::default()
    };
    let mut status = vec![0i32; BATCH.min(pages_between(start, end, step))];
    let unmapped = mapped_batches(start, end, step, |batch| {
        let status = &mut status[..batch.len()];
        sys::move_pages_query(batch, status).map_err(|source| MemError::Os {
            call: "move_pages (query)",
            node,
            source,
        })?;
        tally(&mut placement, status);
        Ok::<bool, MemError>(true)
    })?;
    placement.not_present += unmapped;
    Ok(placement)
}

/// Move the pages of `[ptr, ptr + len)` to `node` (`move_pages(2)` with
/// `MPOL_MF_MOVE`) and report where they are afterwards.
///
/// Contents and addresses stay the same. Only pages that exist move: pages
/// never touched, and pages no mapping covers, are reported as not present.
/// The range's memory policy is not changed, so pages faulted in later
/// follow the old policy; memory that must stay on a node belongs in an
/// [`Arena`](super::Arena). Ranges are walked as [`locate`] walks them: at
/// most 4096 pages per call, unmapped stretches skipped.
///
/// # Errors
/// - [`MemError::Topology`] / [`MemError::MemorylessNode`] for a node that
///   cannot hold memory;
/// - [`MemError::InvalidRange`] when `ptr + len` wraps the address space;
/// - [`MemError::Misplaced`] when some present page is not on `node`
///   afterwards (node full, page pinned or shared), with the placement found;
/// - [`MemError::Os`] if `move_pages` fails.
pub fn migrate(ptr: *const u8, len: usize, node: NodeId) -> Result<PageMap, MemError> {
    let r = migrate_untraced(ptr, len, node);
    crate::trace::migrated(ptr as usize, len, node, &r);
    r
}

fn migrate_untraced(ptr: *const u8, len: usize, node: NodeId) -> Result<PageMap, MemError> {
    let topo = Topology::current()?;
    super::region::check_node(&topo, node)?;
    let step = crate::sys::page_size();
    let (start, end) = page_span(ptr, len, step)?;
    let mut placement = PageMap {
        page_size: step,
        ..PageMap::default()
    };
    let batch_len = BATCH.min(pages_between(start, end, step));
    let mut status = vec![0i32; batch_len];
    let unmapped = mapped_batches(start, end, step, |batch| {
        let status = &mut status[..batch.len()];
        // `check_node` found the node in the topology: its id is a small number.
        sys::move_pages_settled(batch, node.get() as i32, status, sys::MPOL_MF_MOVE).map_err(
            |source| MemError::Os {
                call: "move_pages (MPOL_MF_MOVE)",
                node,
                source,
            },
        )?;
        // Failed moves report an errno per page; ask again where they are.
        if status.iter().any(|&s| s < 0) {
            sys::move_pages_query(batch, status).map_err(|source| MemError::Os {
                call: "move_pages (query)",
                node,
                source,
            })?;
        }
        tally(&mut placement, status);
        Ok::<bool, MemError>(true)
    })?;
    placement.not_present += unmapped;
    let present = placement.pages() - placement.not_present;
    if placement.on(node) != present {
        return Err(MemError::Misplaced {
            expected: node,
            found: placement,
        });
    }
    Ok(placement)
}

/// `[start, end)`: `[ptr, ptr + len)` with `start` rounded down to `step`;
/// empty for `len == 0`.
fn page_span(ptr: *const u8, len: usize, step: usize) -> Result<(usize, usize), MemError> {
    let addr = ptr as usize;
    let end = addr.checked_add(len).ok_or(MemError::InvalidRange {
        addr,
        len,
        reason: format!(
            "it wraps past the end of the address space (the last address is {:#x})",
            usize::MAX
        ),
    })?;
    if len == 0 {
        return Ok((addr, addr));
    }
    Ok((addr / step * step, end))
}

/// Pages of `step` bytes from `start` (aligned) that `[start, end)` touches.
fn pages_between(start: usize, end: usize, step: usize) -> usize {
    (end - start).div_ceil(step)
}

/// Call `f` with the addresses of the pages of `[start, end)` (`start`
/// aligned to `step`) that some mapping covers, at most [`BATCH`] at a
/// time and in ascending order, until `f` returns `Ok(false)`. Returns the
/// pages skipped because no mapping covers them.
///
/// The mappings are those of `/proc/self/maps` at the call (if it cannot be
/// read, every page is passed to `f`): the walk costs time for the mapped
/// pages of the range, not for its length.
pub(crate) fn mapped_batches<E>(
    start: usize,
    end: usize,
    step: usize,
    f: impl FnMut(&[*const u8]) -> Result<bool, E>,
) -> Result<usize, E> {
    if start == end {
        return Ok(0);
    }
    batches_over(&mapped_spans(start, end), start, end, step, f)
}

/// [`mapped_batches`] over the given mappings (sorted `[a, b)` spans).
fn batches_over<E>(
    spans: &[(usize, usize)],
    start: usize,
    end: usize,
    step: usize,
    mut f: impl FnMut(&[*const u8]) -> Result<bool, E>,
) -> Result<usize, E> {
    let total = pages_between(start, end, step);
    let mut addrs: Vec<*const u8> = Vec::with_capacity(BATCH.min(total));
    // Page index (from `start`) up to which pages were handled.
    let mut done = 0usize;
    let mut unmapped = 0usize;
    for &(a, b) in spans {
        // Pages of the range that `[a, b)` touches; a page already handled
        // (a large `step` spanning two mappings) is not passed again.
        let first = ((a.max(start) - start) / step).max(done);
        let last = (b.min(end) - start).div_ceil(step);
        if first >= last {
            continue;
        }
        unmapped += first - done;
        for k in first..last {
            addrs.push((start + k * step) as *const u8);
            if addrs.len() == BATCH {
                if !f(&addrs)? {
                    return Ok(unmapped);
                }
                addrs.clear();
            }
        }
        done = last;
    }
    if !addrs.is_empty() && !f(&addrs)? {
        return Ok(unmapped);
    }
    Ok(unmapped + (total - done))
}

/// The parts of `[start, end)` covered by this process's mappings, in
/// ascending order, from `/proc/self/maps`; the whole range if that cannot
/// be read.
fn mapped_spans(start: usize, end: usize) -> Vec<(usize, usize)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return vec![(start, end)];
    };
    let mut spans: Vec<(usize, usize)> = maps
        .lines()
        .filter_map(|line| {
            let (a, b) = line.split_whitespace().next()?.split_once('-')?;
            let a = usize::from_str_radix(a, 16).ok()?;
            let b = usize::from_str_radix(b, 16).ok()?;
            (a < end && b > start && a < b).then_some((a.max(start), b.min(end)))
        })
        .collect();
    spans.sort_unstable();
    spans
}

fn tally(placement: &mut PageMap, status: &[i32]) {
    for &s in status {
        if s >= 0 {
            *placement.on_node.entry(NodeId::new(s as u32)).or_insert(0) += 1;
        } else if s == -libc::ENOENT || s == -libc::EFAULT {
            // Never faulted in: ENOENT on recent kernels; 6.1 and older say
            // EFAULT (they also say so for unmapped addresses).
            placement.not_present += 1;
        } else {
            placement.errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::NonNull;

    /// A populated private mapping of `pages` base pages.
    fn populated(pages: usize) -> (NonNull<u8>, usize) {
        let len = pages * crate::sys::page_size();
        let p = sys::mmap_anonymous(len, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
        // SAFETY: our fresh mapping; POPULATE_WRITE keeps contents (zero).
        unsafe { sys::madvise(p, len, sys::MADV_POPULATE_WRITE) }.unwrap();
        (p, len)
    }

    #[test]
    fn batches_cover_every_page_around_the_batch_size() {
        let page = crate::sys::page_size();
        for pages in [1, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + 3] {
            let (p, len) = populated(pages);
            // Every page is counted, and every one is found present. The
            // memory is not bound: on a multi-node kernel automatic NUMA
            // balancing may be migrating one of its pages at the moment of
            // the query (a migration entry reads as not present), so the
            // presence check is retried a few times.
            let mut here = locate(p.as_ptr(), len).unwrap();
            for _ in 0..50 {
                if here.not_present() + here.errors() == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
                here = locate(p.as_ptr(), len).unwrap();
            }
            assert_eq!(here.pages(), pages);
            assert_eq!(here.not_present() + here.errors(), 0, "{here}");
            // Unaligned start and end: one page more is touched.
            let here = locate(p.as_ptr().wrapping_add(1), len - 1).unwrap();
            assert_eq!(here.pages(), pages);
            let mut sizes = Vec::new();
            let skipped =
                mapped_batches(p.as_ptr() as usize, p.as_ptr() as usize + len, page, |b| {
                    sizes.push(b.len());
                    Ok::<_, ()>(true)
                })
                .unwrap();
            assert_eq!(skipped, 0);
            assert_eq!(sizes.iter().sum::<usize>(), pages);
            assert!(sizes.iter().all(|&n| n <= BATCH), "{sizes:?}");
            // SAFETY: our mapping, nothing references it.
            unsafe { sys::munmap(p, len) }.unwrap();
        }
    }

    /// Page indexes (from `start`) `batches_over` asks about, and the count
    /// it skips.
    fn walk(
        spans: &[(usize, usize)],
        start: usize,
        end: usize,
        step: usize,
    ) -> (Vec<usize>, usize) {
        let mut asked = Vec::new();
        let skipped = batches_over(spans, start, end, step, |b| {
            asked.extend(b.iter().map(|&a| (a as usize - start) / step));
            Ok::<_, ()>(true)
        })
        .unwrap();
        (asked, skipped)
    }

    #[test]
    fn unmapped_stretches_are_counted_without_asking() {
        const P: usize = 4096;
        let base = 1 << 30;
        // Mapped, gap, mapped, gap, mapped (pages 0, 2, 4 of 5).
        let spans = [
            (base, base + P),
            (base + 2 * P, base + 3 * P),
            (base + 4 * P, base + 5 * P),
        ];
        assert_eq!(walk(&spans, base, base + 5 * P, P), (vec![0, 2, 4], 2));
        // A range starting and ending in gaps.
        assert_eq!(
            walk(&spans, base - 3 * P, base + 7 * P, P),
            (vec![3, 5, 7], 7)
        );
        // No mapping at all: nothing asked, everything skipped.
        assert_eq!(
            walk(&[], base, base + (1 << 40), P),
            (vec![], (1 << 40) / P)
        );
        // A step larger than the mappings: each step-page once.
        assert_eq!(walk(&spans, base, base + 5 * P, 4 * P), (vec![0, 1], 0));
        assert_eq!(walk(&spans[..1], base, base + 16 * P, 4 * P), (vec![0], 3));
        // Up to the end of the address space.
        let top = usize::MAX - P + 1;
        assert_eq!(
            walk(&[(top, usize::MAX)], top - P, usize::MAX, P),
            (vec![1], 1)
        );
        // Stopping early: one batch asked, the rest not walked.
        let big = [(base, base + 3 * BATCH * P)];
        let mut calls = 0;
        batches_over(&big, base, base + 3 * BATCH * P, P, |b| {
            calls += 1;
            assert_eq!(b.len(), BATCH);
            Ok::<_, ()>(false)
        })
        .unwrap();
        assert_eq!(calls, 1);
        // The real maps: a populated mapping followed by an address range
        // no mapping can hold (above the 47-bit user space) is asked about
        // only where mapped.
        let (p, len) = populated(3);
        let here = locate(p.as_ptr(), len).unwrap();
        assert_eq!((here.pages(), here.not_present()), (3, 0), "{here}");
        let high = locate((1usize << 48) as *const u8, 1 << 50).unwrap();
        assert_eq!(high.not_present(), (1 << 50) / crate::sys::page_size());
        // SAFETY: our mapping, nothing references it.
        unsafe { sys::munmap(p, len) }.unwrap();
    }

    #[test]
    fn wrapping_ranges_are_refused() {
        for (addr, len) in [
            (usize::MAX, 1),
            (1, usize::MAX),
            (usize::MAX / 2 + 1, usize::MAX / 2 + 1),
        ] {
            match locate(addr as *const u8, len) {
                Err(MemError::InvalidRange {
                    addr: a, len: l, ..
                }) => assert_eq!((a, l), (addr, len)),
                other => panic!("{addr:#x}+{len}: {other:?}"),
            }
        }
        let last = locate((usize::MAX - 1) as *const u8, 1).unwrap();
        assert_eq!(last.pages(), 1);
        assert_eq!(locate(std::ptr::null(), 0).unwrap().pages(), 0);
    }
}
