//! Manual AddressSanitizer poisoning for memory numakit hands out itself.
//!
//! Node memory comes from `mmap`, which ASan treats as one addressable
//! blob: without help it cannot tell a freed heap block, a free slab slot
//! or the unused tail of an arena from live memory. Built with
//! `RUSTFLAGS="-Zsanitizer=address --cfg numakit_asan"` (nightly), the
//! allocators mark such memory poisoned, so a use after free or a read
//! past an arena allocation is reported (`use-after-poison`):
//!
//! | allocator | poisoned | unpoisoned |
//! |---|---|---|
//! | [`NodeHeap`](super::NodeHeap) | a block when freed, carved runs before they are handed out | a block when handed out |
//! | [`RawSlab`](super::RawSlab) | a slot when freed, the padding past the object | the object when handed out |
//! | [`Arena`](super::Arena), [`SharedArena`](super::SharedArena) | everything above the bump pointer, and below it again on `reset` | each allocation (for `SharedArena`, rounded out to ASan's 8-byte granules: see [`unpoison_granules`]) |
//!
//! numakit's own links inside free blocks (the free-list `next` word) are
//! unpoisoned only for the instant numakit reads or writes them
//! ([`read_link`], [`write_link`]). Mappings are unpoisoned before they
//! are unmapped, so an address the kernel reuses starts clean.
//!
//! Without the cfg every function here is an empty `#[inline(always)]`
//! one: the hooks cost nothing in normal builds.

#[cfg(numakit_asan)]
mod ffi {
    extern "C" {
        /// From the ASan runtime: mark `[addr, addr + size)` unaddressable.
        pub(super) fn __asan_poison_memory_region(addr: *const u8, size: usize);
        /// From the ASan runtime: mark `[addr, addr + size)` addressable.
        pub(super) fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
    }
}

/// Mark `[p, p + len)` unaddressable for ASan. Only changes ASan's shadow
/// memory, never the bytes themselves.
#[inline(always)]
pub(crate) fn poison(p: *const u8, len: usize) {
    #[cfg(numakit_asan)]
    if len > 0 {
        // SAFETY: the call only writes ASan's shadow of the range; it reads
        // and writes no byte of the range itself, for any address.
        unsafe { ffi::__asan_poison_memory_region(p, len) }
    }
    #[cfg(not(numakit_asan))]
    let _ = (p, len);
}

/// Mark `[p, p + len)` addressable for ASan (see [`poison`]).
#[inline(always)]
pub(crate) fn unpoison(p: *const u8, len: usize) {
    #[cfg(numakit_asan)]
    if len > 0 {
        // SAFETY: as in `poison`: only the shadow is written.
        unsafe { ffi::__asan_unpoison_memory_region(p, len) }
    }
    #[cfg(not(numakit_asan))]
    let _ = (p, len);
}

/// Mark the 8-byte ASan granules that `[p, p + len)` touches addressable.
///
/// For memory that several threads hand out at once without a lock
/// ([`SharedArena`](super::SharedArena)): two allocations may share a
/// granule, and ASan's shadow update for a partial granule is a
/// read-modify-write, so exact unpoisoning from two threads can lose one
/// and poison the other's bytes. Whole granules are only ever set to
/// "addressable", the same value from every thread. The cost: up to 7
/// bytes past such an allocation are not reported.
#[inline(always)]
pub(crate) fn unpoison_granules(p: *const u8, len: usize) {
    if len > 0 {
        let misalign = p as usize % 8;
        let start = p.wrapping_sub(misalign);
        unpoison(start, (misalign + len).next_multiple_of(8));
    }
}

/// Read the free-list link in the first word of the free block `p`, which
/// may be poisoned; leaves it poisoned.
///
/// # Safety
/// `p` is valid for reading a pointer and aligned for one.
#[inline(always)]
pub(crate) unsafe fn read_link(p: *mut u8) -> *mut u8 {
    let word = std::mem::size_of::<*mut u8>();
    unpoison(p, word);
    // SAFETY: per the contract.
    let next = unsafe { p.cast::<*mut u8>().read() };
    poison(p, word);
    next
}

/// Write the free-list link in the first word of the free block `p` and
/// leave that word poisoned.
///
/// # Safety
/// `p` is valid for writing a pointer, aligned for one, and no one else
/// uses it.
#[inline(always)]
pub(crate) unsafe fn write_link(p: *mut u8, next: *mut u8) {
    let word = std::mem::size_of::<*mut u8>();
    unpoison(p, word);
    // SAFETY: per the contract.
    unsafe { p.cast::<*mut u8>().write(next) };
    poison(p, word);
}
