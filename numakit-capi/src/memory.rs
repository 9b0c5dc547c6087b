//! `memory.h`: arenas, page migration, slabs and mempools, on numakit's
//! [`Arena`], [`migrate`](nk::mem::migrate), [`RawSlab`] and [`NodeHeap`].

use crate::error::{ffi, node_arg, CError, NKIT_ERR_INVALID_ARGUMENT, NKIT_ERR_OUT_OF_MEMORY};
use nk::mem::{Arena, MemError, NodeHeap, PageKind, RawSlab, SlabBuilder};
use std::alloc::Layout;
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Alignment of every `nkit_arena_alloc` block (`alignof(max_align_t)`).
pub const ARENA_ALIGN: usize = 16;
/// Room asked for on top of the caller's size: numakit keeps its arena
/// header in the first cache line of the region.
const ARENA_HEADER_ROOM: usize = 64;
/// Alignment of slab objects (a cache line, as the C library promises).
pub const SLAB_ALIGN: usize = 64;

/// `nkit_arena_t`: a numakit [`Arena`] and the bump offset where the
/// caller's room starts.
pub struct NkitArena {
    arena: Arena,
    start: usize,
}

impl NkitArena {
    pub(crate) fn arena(&self) -> &Arena {
        &self.arena
    }
}

/// # Safety
/// `arena` is `NULL` or a live arena no other call uses now.
pub(crate) unsafe fn arena_ref<'a>(
    arena: *mut NkitArena,
    function: &str,
) -> Result<&'a mut NkitArena, CError> {
    // SAFETY: a non-null handle came from `nkit_arena_create` and is not
    // destroyed (the header's precondition); C calls on one arena do not
    // overlap (the C library's arenas are not thread-safe either).
    unsafe { arena.as_mut() }.ok_or_else(|| CError::null("arena", function))
}

/// An arena of at least `size` usable bytes of `kind` pages on `node`.
pub(crate) fn new_arena(
    node: nk::NodeId,
    size: usize,
    kind: PageKind,
    function: &str,
) -> Result<NkitArena, CError> {
    if size == 0 {
        return Err(CError::new(
            NKIT_ERR_INVALID_ARGUMENT,
            format!("{function}: size 0; an arena needs room for at least one byte"),
        ));
    }
    let too_large = || {
        CError::new(
            NKIT_ERR_INVALID_ARGUMENT,
            format!(
                "size {size} bytes is more than an arena can map (at most {} bytes); ask for \
                 less",
                isize::MAX as usize - ARENA_HEADER_ROOM
            ),
        )
    };
    let capacity = size
        .checked_add(ARENA_HEADER_ROOM)
        .filter(|&c| c <= isize::MAX as usize)
        .ok_or_else(too_large)?;
    let arena = Arena::builder(node)
        .capacity(capacity)
        .pages(kind)
        .build()
        .map_err(|e| match e {
            MemError::InvalidSize { .. } | MemError::SizeOverflow { .. } => too_large(),
            other => other.into(),
        })?;
    let start = arena.used();
    if arena.remaining() < size {
        return Err(CError::new(
            NKIT_ERR_OUT_OF_MEMORY,
            format!(
                "{function}: the arena on node {node} has {} usable bytes, {size} asked for",
                arena.remaining()
            ),
        ));
    }
    Ok(NkitArena { arena, start })
}

/// An arena of at least `size` bytes of normal pages on `node_id`, every
/// page populated and on the node now; `NULL` when the node does not exist,
/// has no memory or cannot provide `size` bytes (never memory elsewhere).
#[no_mangle]
pub extern "C" fn nkit_arena_create(node_id: c_int, size: usize) -> *mut NkitArena {
    ffi("nkit_arena_create", ptr::null_mut(), || {
        let node = node_arg(node_id, "nkit_arena_create")?;
        Ok(Box::into_raw(Box::new(new_arena(
            node,
            size,
            PageKind::Normal,
            "nkit_arena_create",
        )?)))
    })
}

/// `size` bytes aligned to 16 from the arena, or `NULL` (arena full, size 0).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_arena_alloc(arena: *mut NkitArena, size: usize) -> *mut c_void {
    ffi("nkit_arena_alloc", ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let a = unsafe { arena_ref(arena, "nkit_arena_alloc") }?;
        if size == 0 {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                "nkit_arena_alloc: size 0; ask for at least one byte",
            ));
        }
        let start = a.start;
        let p = a
            .arena
            .try_alloc_raw(size, ARENA_ALIGN)
            .map_err(|e| match e {
                MemError::Exhausted {
                    requested,
                    remaining,
                    capacity,
                    node,
                    ..
                } => CError::new(
                    NKIT_ERR_OUT_OF_MEMORY,
                    format!(
                        "the arena on node {node} cannot give {requested} bytes: {remaining} of \
                         its {} bytes remain; nkit_arena_reset() it, or create a larger one",
                        capacity - start
                    ),
                ),
                other => other.into(),
            })?;
        Ok(p.as_ptr().cast())
    })
}

/// Forget every allocation; pages stay resident and on the node.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_arena_reset(arena: *mut NkitArena) {
    ffi("nkit_arena_reset", (), || {
        // SAFETY: forwarded contract.
        unsafe { arena_ref(arena, "nkit_arena_reset") }?
            .arena
            .reset();
        Ok(())
    })
}

/// Unmap the arena. `NULL` is accepted and does nothing.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_arena_destroy(arena: *mut NkitArena) {
    ffi("nkit_arena_destroy", (), || {
        if !arena.is_null() {
            // SAFETY: created by `Box::into_raw` in `nkit_arena_create` and
            // not destroyed before (the header's precondition).
            drop(unsafe { Box::from_raw(arena) });
        }
        Ok(())
    })
}

/// Return the whole unused pages above the bump pointer to the OS; the
/// number of those pages (of the arena's page size), counting pages an
/// earlier call gave back again.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_arena_coalesce(arena: *mut NkitArena) -> usize {
    ffi("nkit_arena_coalesce", 0, || {
        // SAFETY: forwarded contract.
        let a = unsafe { arena_ref(arena, "nkit_arena_coalesce") }?;
        a.arena.trim()?;
        // The C contract counts every whole page above the bump pointer
        // (given back now, resident before or not), as libnumakit does;
        // `trim` itself returns the resident bytes it gave back.
        let page = a.arena.page_kind().page_size();
        let above = a.arena.used().div_ceil(page).saturating_mul(page);
        Ok(a.arena.capacity().saturating_sub(above) / page)
    })
}

/// Bytes handed out since creation or the last reset (alignment padding
/// included).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_arena_used(arena: *mut NkitArena) -> usize {
    ffi("nkit_arena_used", 0, || {
        // SAFETY: forwarded contract.
        let a = unsafe { arena_ref(arena, "nkit_arena_used") }?;
        Ok(a.arena.used() - a.start)
    })
}

/// Bytes the arena can hand out in all (at least the size asked for).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_arena_size(arena: *mut NkitArena) -> usize {
    ffi("nkit_arena_size", 0, || {
        // SAFETY: forwarded contract.
        let a = unsafe { arena_ref(arena, "nkit_arena_size") }?;
        Ok(a.arena.capacity() - a.start)
    })
}

/// 1 for hugetlb pages, 0 for normal pages, -1 for a `NULL` arena.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_arena_is_huge(arena: *mut NkitArena) -> c_int {
    ffi("nkit_arena_is_huge", -1, || {
        // SAFETY: forwarded contract.
        let a = unsafe { arena_ref(arena, "nkit_arena_is_huge") }?;
        Ok(c_int::from(a.arena.page_kind().is_hugetlb()))
    })
}

/// Move the pages of `[ptr, ptr + size)` to `target_node`; 0 when every
/// page present there is on the node afterwards, -1 otherwise (the message
/// says where the pages are).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_memory_migrate(
    ptr: *mut c_void,
    size: usize,
    target_node: c_int,
) -> c_int {
    ffi("nkit_memory_migrate", -1, || {
        let node = node_arg(target_node, "nkit_memory_migrate")?;
        if ptr.is_null() && size > 0 {
            return Err(CError::null("ptr", "nkit_memory_migrate"));
        }
        nk::mem::migrate(ptr.cast_const().cast(), size, node)?;
        Ok(0)
    })
}

/// `nkit_slab_t`: a numakit [`RawSlab`] behind a lock, so that C threads
/// may share it as they share the C library's.
pub struct NkitSlab {
    slab: Mutex<RawSlab>,
}

impl NkitSlab {
    fn lock(&self) -> MutexGuard<'_, RawSlab> {
        // A panic inside a slab call leaves the slab consistent (its
        // operations are single steps); keep using it.
        self.slab.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn slab_ref<'a>(slab: *mut NkitSlab, function: &str) -> Result<&'a NkitSlab, CError> {
    // SAFETY: a non-null handle came from `nkit_slab_create` and is not
    // destroyed (the header's precondition); shared use is synchronised by
    // the lock inside.
    unsafe { slab.as_ref() }.ok_or_else(|| CError::null("slab", function))
}

/// A slab of `capacity` objects of `obj_size` bytes (aligned to 64) on
/// `node_id`, populated now; `NULL` on failure.
#[no_mangle]
pub extern "C" fn nkit_slab_create(
    node_id: c_int,
    obj_size: usize,
    capacity: usize,
) -> *mut NkitSlab {
    ffi("nkit_slab_create", ptr::null_mut(), || {
        let node = node_arg(node_id, "nkit_slab_create")?;
        if obj_size == 0 {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                "nkit_slab_create: obj_size 0; objects need at least one byte",
            ));
        }
        if capacity == 0 {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                "capacity 0; a slab holds at least one object",
            ));
        }
        let slab = SlabBuilder::new(node)
            .capacity(capacity)
            .build_raw(obj_size, SLAB_ALIGN)?;
        Ok(Box::into_raw(Box::new(NkitSlab {
            slab: Mutex::new(slab),
        })))
    })
}

/// One object, or `NULL` when all are in use.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_slab_alloc(slab: *mut NkitSlab) -> *mut c_void {
    ffi("nkit_slab_alloc", ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let s = unsafe { slab_ref(slab, "nkit_slab_alloc") }?;
        let p = s.lock().alloc().map_err(|e| match e {
            MemError::SlabFull {
                node,
                object_size,
                max_objects,
            } => CError::new(
                NKIT_ERR_OUT_OF_MEMORY,
                format!(
                    "the slab of {object_size}-byte objects on node {node} is full: all \
                     {max_objects} objects are in use; nkit_slab_free some, or create the slab \
                     with a larger capacity"
                ),
            ),
            other => other.into(),
        })?;
        Ok(p.as_ptr().cast())
    })
}

/// Give an object back. `NULL` is accepted and does nothing; a pointer the
/// slab did not hand out is refused (error set, nothing changed).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_slab_free(slab: *mut NkitSlab, ptr: *mut c_void) {
    ffi("nkit_slab_free", (), || {
        // SAFETY: forwarded contract.
        let s = unsafe { slab_ref(slab, "nkit_slab_free") }?;
        if let Some(p) = NonNull::new(ptr.cast::<u8>()) {
            // SAFETY: the header's precondition: `ptr` is not freed twice
            // nor used after this call; foreign pointers are refused by
            // `free` itself.
            unsafe { s.lock().free(p) }?;
        }
        Ok(())
    })
}

/// Unmap the slab. `NULL` is accepted and does nothing.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_slab_destroy(slab: *mut NkitSlab) {
    ffi("nkit_slab_destroy", (), || {
        if !slab.is_null() {
            // SAFETY: from `Box::into_raw` in `nkit_slab_create`, not
            // destroyed before (the header's precondition).
            drop(unsafe { Box::from_raw(slab) });
        }
        Ok(())
    })
}

/// Objects that can still be handed out.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_slab_available(slab: *mut NkitSlab) -> usize {
    ffi("nkit_slab_available", 0, || {
        // SAFETY: forwarded contract.
        let s = unsafe { slab_ref(slab, "nkit_slab_available") }?.lock();
        Ok(s.max_capacity() - s.len())
    })
}

/// The number of objects the slab holds in all.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_slab_capacity(slab: *mut NkitSlab) -> usize {
    ffi("nkit_slab_capacity", 0, || {
        // SAFETY: forwarded contract.
        Ok(unsafe { slab_ref(slab, "nkit_slab_capacity") }?
            .lock()
            .max_capacity())
    })
}

/// Bytes in front of every mempool block.
const POOL_HEADER: usize = 16;
const POOL_MAGIC: u32 = u32::from_le_bytes(*b"nkmp");

/// What sits in the 16 bytes before a mempool block.
#[repr(C)]
struct PoolHeader {
    magic: u32,
    node: u32,
    size: usize,
}
const _: () = assert!(std::mem::size_of::<PoolHeader>() == POOL_HEADER);

/// `nkit_mempool_t`: one numakit [`NodeHeap`] per node with memory.
pub struct NkitMempool {
    /// Indexed by node id; `None` for ids without a node or memory.
    heaps: Vec<Option<NodeHeap>>,
}

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn pool_ref<'a>(pool: *mut NkitMempool, function: &str) -> Result<&'a NkitMempool, CError> {
    // SAFETY: a non-null handle came from `nkit_mempool_create` and is not
    // destroyed (the header's precondition); NodeHeap is Sync.
    unsafe { pool.as_ref() }.ok_or_else(|| CError::null("pool", function))
}

/// A pool with a heap on every node that has memory; `NULL` on failure.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_mempool_create() -> *mut NkitMempool {
    ffi("nkit_mempool_create", ptr::null_mut(), || {
        let topo = nk::Topology::current()?;
        let max = topo.node_ids().map(|n| n.get() as usize).max().unwrap_or(0);
        let mut heaps: Vec<Option<NodeHeap>> = (0..=max).map(|_| None).collect();
        for node in topo.nodes().iter().filter(|n| n.has_memory()) {
            heaps[node.id().get() as usize] = Some(NodeHeap::new(node.id())?);
        }
        Ok(Box::into_raw(Box::new(NkitMempool { heaps })))
    })
}

fn pool_layout(size: usize) -> Result<Layout, CError> {
    size.checked_add(POOL_HEADER)
        .and_then(|total| Layout::from_size_align(total, POOL_HEADER).ok())
        .ok_or_else(|| {
            CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                format!("nkit_mempool_alloc: size {size} does not fit the address space"),
            )
        })
}

/// `size` bytes (aligned to 16) on the node the calling thread runs on;
/// `NULL` when that node has no memory or cannot give it (numakit does not
/// take memory from another node).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_mempool_alloc(pool: *mut NkitMempool, size: usize) -> *mut c_void {
    ffi("nkit_mempool_alloc", ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let p = unsafe { pool_ref(pool, "nkit_mempool_alloc") }?;
        if size == 0 {
            return Err(CError::new(
                NKIT_ERR_INVALID_ARGUMENT,
                "nkit_mempool_alloc: size 0; ask for at least one byte",
            ));
        }
        let layout = pool_layout(size)?;
        let node = nk::current_node()?;
        let heap = match p.heaps.get(node.get() as usize).and_then(Option::as_ref) {
            Some(h) => h,
            // Not in the pool: a memoryless node (or one that came online
            // since); NodeHeap::new names the reason.
            None => {
                NodeHeap::new(node)?;
                return Err(CError::new(
                    NKIT_ERR_OUT_OF_MEMORY,
                    format!(
                        "nkit_mempool_alloc: node {node} came online after the pool was created"
                    ),
                ));
            }
        };
        let block = heap.try_alloc_layout(layout)?;
        let header = PoolHeader {
            magic: POOL_MAGIC,
            node: node.get(),
            size,
        };
        // SAFETY: `block` holds `size + 16` bytes aligned to 16; the header
        // takes the first 16.
        unsafe {
            block.as_ptr().cast::<PoolHeader>().write(header);
            Ok(block.as_ptr().add(POOL_HEADER).cast())
        }
    })
}

/// Give a block back (from any thread, on any node). `NULL` is accepted and
/// does nothing.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_mempool_free(pool: *mut NkitMempool, ptr: *mut c_void) {
    ffi("nkit_mempool_free", (), || {
        // SAFETY: forwarded contract.
        let p = unsafe { pool_ref(pool, "nkit_mempool_free") }?;
        if ptr.is_null() {
            return Ok(());
        }
        let block = ptr.cast::<u8>().wrapping_sub(POOL_HEADER);
        // SAFETY: the header's precondition: `ptr` came from
        // `nkit_mempool_alloc` on this pool and is not freed twice, so the
        // 16 bytes before it are its header.
        let header = unsafe { block.cast::<PoolHeader>().read() };
        let heap = p
            .heaps
            .get(header.node as usize)
            .and_then(Option::as_ref)
            .filter(|_| header.magic == POOL_MAGIC)
            .ok_or_else(|| {
                CError::new(
                    NKIT_ERR_INVALID_ARGUMENT,
                    format!("nkit_mempool_free: {ptr:p} was not handed out by this pool"),
                )
            })?;
        let layout = pool_layout(header.size)?;
        // SAFETY: the block came from this heap for this layout (the
        // precondition; the header records both) and is not used again.
        unsafe {
            block.cast::<PoolHeader>().write(PoolHeader {
                magic: 0,
                node: 0,
                size: 0,
            });
            heap.dealloc(NonNull::new_unchecked(block), layout);
        }
        Ok(())
    })
}

/// Unmap every heap of the pool (blocks still out become invalid). `NULL`
/// is accepted and does nothing.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_mempool_destroy(pool: *mut NkitMempool) {
    ffi("nkit_mempool_destroy", (), || {
        if !pool.is_null() {
            // SAFETY: from `Box::into_raw` in `nkit_mempool_create`, not
            // destroyed before (the header's precondition).
            drop(unsafe { Box::from_raw(pool) });
        }
        Ok(())
    })
}
