//! Where memory really is: [`locate`], [`migrate`] and the [`Placement`]
//! report, through `move_pages(2)`.

use super::MemError;
use crate::sys::mem as sys;
use crate::topology::{NodeId, Topology};
use std::collections::BTreeMap;
use std::fmt;

/// Pages asked about per `move_pages` call.
const BATCH: usize = 4096;

/// Where the pages of a range are, as the kernel reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    page_size: usize,
    on_node: BTreeMap<NodeId, usize>,
    not_present: usize,
    errors: usize,
}

impl Placement {
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
    pub fn ensure_on(self, node: NodeId) -> Result<Placement, MemError> {
        if self.is_all_on(node) {
            Ok(self)
        } else {
            Err(MemError::Misplaced {
                expected: node,
                found: self,
            })
        }
    }

    /// The share of pages on `node`, from 0.0 to 1.0 (1.0 for an empty range).
    pub fn fraction_on(&self, node: NodeId) -> f64 {
        match self.pages() {
            0 => 1.0,
            n => self.on(node) as f64 / n as f64,
        }
    }
}

impl fmt::Display for Placement {
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
/// # Errors
/// [`MemError::Os`] if `move_pages` itself fails (unmapped pages are
/// counted in [`Placement::errors`], not turned into an error).
///
/// # Examples
/// ```
/// let v = vec![1u8; 1 << 20];
/// let here = numakit::mem::locate(v.as_ptr(), v.len())?;
/// assert_eq!(here.pages(), here.per_node().map(|(_, n)| n).sum::<usize>());
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub fn locate(ptr: *const u8, len: usize) -> Result<Placement, MemError> {
    locate_with_step(ptr, len, crate::sys::page_size(), NodeId::new(0))
}

/// `locate` walking with `step`-byte pages; `node` only labels errors.
pub(crate) fn locate_with_step(
    ptr: *const u8,
    len: usize,
    step: usize,
    node: NodeId,
) -> Result<Placement, MemError> {
    let mut placement = Placement {
        page_size: step,
        ..Placement::default()
    };
    let pages = page_addrs(ptr, len, step);
    let mut status = vec![0i32; BATCH];
    for batch in pages.chunks(BATCH) {
        let status = &mut status[..batch.len()];
        sys::move_pages_query(batch, status).map_err(|source| MemError::Os {
            call: "move_pages (query)",
            node,
            source,
        })?;
        tally(&mut placement, status);
    }
    Ok(placement)
}

/// Move the pages of `[ptr, ptr + len)` to `node` (`move_pages(2)` with
/// `MPOL_MF_MOVE`) and report where they are afterwards.
///
/// Contents and addresses stay the same. Only pages that exist move: pages
/// never touched are reported as not present. The range's memory policy is
/// not changed, so pages faulted in later follow the old policy; memory
/// that must stay on a node belongs in an [`Arena`](super::Arena).
///
/// # Errors
/// - [`MemError::Topology`] / [`MemError::MemorylessNode`] for a node that
///   cannot hold memory;
/// - [`MemError::Misplaced`] when some present page is not on `node`
///   afterwards (node full, page pinned or shared), with the placement found;
/// - [`MemError::Os`] if `move_pages` fails.
pub fn migrate(ptr: *const u8, len: usize, node: NodeId) -> Result<Placement, MemError> {
    let topo = Topology::detect()?;
    super::region::check_node(&topo, node)?;
    let step = crate::sys::page_size();
    let mut placement = Placement {
        page_size: step,
        ..Placement::default()
    };
    let pages = page_addrs(ptr, len, step);
    let target = vec![node.get() as i32; BATCH.min(pages.len())];
    let mut status = vec![0i32; BATCH];
    for batch in pages.chunks(BATCH) {
        let status = &mut status[..batch.len()];
        sys::move_pages(batch, &target[..batch.len()], status, sys::MPOL_MF_MOVE).map_err(
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
    }
    let present = placement.pages() - placement.not_present;
    if placement.on(node) != present {
        return Err(MemError::Misplaced {
            expected: node,
            found: placement,
        });
    }
    Ok(placement)
}

fn page_addrs(ptr: *const u8, len: usize, step: usize) -> Vec<*const u8> {
    if len == 0 {
        return Vec::new();
    }
    let start = ptr as usize / step * step;
    let end = (ptr as usize).saturating_add(len);
    (start..end).step_by(step).map(|a| a as *const u8).collect()
}

fn tally(placement: &mut Placement, status: &[i32]) {
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
