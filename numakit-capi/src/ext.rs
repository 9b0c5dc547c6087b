//! `ext.h`: what numakit adds to the C library's API, under `nkit_ext_`:
//! arenas with a page kind, and the placement proof (where pages are, as
//! the kernel reports them).

use crate::error::{ffi, node_arg, CError, NKIT_ERR_INVALID_ARGUMENT};
use crate::memory::{new_arena, NkitArena};
use nk::mem::{PageKind, PageMap};
use std::ffi::{c_int, c_void};
use std::ptr;

/// `nkit_ext_page_kind_e`: normal pages.
pub const NKIT_EXT_PAGES_NORMAL: c_int = 0;
/// Transparent huge pages (the kernel may or may not back them).
pub const NKIT_EXT_PAGES_TRANSPARENT_HUGE: c_int = 1;
/// 2 MiB hugetlb pages from the node's reserved pool.
pub const NKIT_EXT_PAGES_HUGE_2M: c_int = 2;
/// 1 GiB hugetlb pages from the node's reserved pool.
pub const NKIT_EXT_PAGES_HUGE_1G: c_int = 3;

/// `nkit_ext_placement_t`: where the pages of a range are.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NkitExtPlacement {
    /// Bytes per page counted.
    pub page_size: usize,
    /// Pages in the range.
    pub pages: usize,
    /// Pages on the node asked about.
    pub on_node: usize,
    /// Pages not present (never touched, or not mapped).
    pub not_present: usize,
}

impl NkitExtPlacement {
    fn of(map: &PageMap, node: nk::NodeId) -> Self {
        NkitExtPlacement {
            page_size: map.page_size(),
            pages: map.pages(),
            on_node: map.on(node),
            not_present: map.not_present(),
        }
    }
}

fn page_kind(pages: c_int) -> Result<PageKind, CError> {
    Ok(match pages {
        NKIT_EXT_PAGES_NORMAL => PageKind::Normal,
        NKIT_EXT_PAGES_TRANSPARENT_HUGE => PageKind::TransparentHuge,
        NKIT_EXT_PAGES_HUGE_2M => PageKind::Huge2M,
        NKIT_EXT_PAGES_HUGE_1G => PageKind::Huge1G,
        other => {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                format!(
                    "nkit_ext_arena_create: page kind {other} is not one of NKIT_EXT_PAGES_NORMAL \
                     (0), _TRANSPARENT_HUGE (1), _HUGE_2M (2), _HUGE_1G (3)"
                ),
            ))
        }
    })
}

/// An arena of at least `size` bytes of `pages` pages on `node_id`, every
/// page populated now: hugetlb pages come from the node's pool or the call
/// fails (never a `SIGBUS` later, never other pages).
#[no_mangle]
pub extern "C" fn nkit_ext_arena_create(
    node_id: c_int,
    size: usize,
    pages: c_int,
) -> *mut NkitArena {
    ffi("nkit_ext_arena_create", ptr::null_mut(), || {
        let node = node_arg(node_id, "nkit_ext_arena_create")?;
        let kind = page_kind(pages)?;
        Ok(Box::into_raw(Box::new(new_arena(
            node,
            size,
            kind,
            "nkit_ext_arena_create",
        )?)))
    })
}

/// The node of an arena, or -1.
///
/// # Safety
/// `arena` is `NULL` or a live arena.
#[no_mangle]
pub unsafe extern "C" fn nkit_ext_arena_node(arena: *mut NkitArena) -> c_int {
    ffi("nkit_ext_arena_node", -1, || {
        // SAFETY: forwarded contract.
        let a = unsafe { crate::memory::arena_ref(arena, "nkit_ext_arena_node") }?;
        crate::error::to_int(a.arena().node().get() as usize, "the node id")
    })
}

/// The placement proof: 0 when every page the arena has handed out (and
/// its header) is on its node, as the kernel reports it now; -1 with
/// `NKIT_ERR_MISPLACED` (the message says where they are) otherwise. `out`
/// (may be `NULL`) receives the counts on success.
///
/// # Safety
/// `arena` is `NULL` or a live arena; `out` is `NULL` or writable.
#[no_mangle]
pub unsafe extern "C" fn nkit_ext_arena_verify(
    arena: *mut NkitArena,
    out: *mut NkitExtPlacement,
) -> c_int {
    ffi("nkit_ext_arena_verify", -1, || {
        // SAFETY: forwarded contract.
        let a = unsafe { crate::memory::arena_ref(arena, "nkit_ext_arena_verify") }?;
        let map = a.arena().verify()?;
        if !out.is_null() {
            // SAFETY: non-null and writable (the contract).
            unsafe { out.write(NkitExtPlacement::of(&map, a.arena().node())) };
        }
        Ok(0)
    })
}

/// Where the pages of `[ptr, ptr + len)` are, counted against `node_id`:
/// 0 with `*out` filled, or -1 (absent node, range wrapping the address
/// space, `NULL` `out`).
///
/// # Safety
/// `out` is `NULL` or writable. `ptr` is only looked up, never read.
#[no_mangle]
pub unsafe extern "C" fn nkit_ext_locate(
    ptr: *const c_void,
    len: usize,
    node_id: c_int,
    out: *mut NkitExtPlacement,
) -> c_int {
    ffi("nkit_ext_locate", -1, || {
        let node = node_arg(node_id, "nkit_ext_locate")?;
        let topo = nk::Topology::current()?;
        topo.node(node)?;
        if out.is_null() {
            return Err(CError::null("out", "nkit_ext_locate"));
        }
        let map = nk::mem::locate(ptr.cast(), len)?;
        // SAFETY: non-null and writable (the contract).
        unsafe { out.write(NkitExtPlacement::of(&map, node)) };
        Ok(0)
    })
}
