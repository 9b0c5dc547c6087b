//! Blocks as C sees them: a 16-byte header right below the pointer names
//! the layout the block was allocated with, so `free` (which gets no size)
//! can give it back to the node-local allocator, and a tag made from the
//! address tells this allocator's blocks from anything else.
//!
//! ```text
//!  base                          p = base + offset
//!  |<---- offset (= alignment, >= 16) ---->|<---- size ---->|
//!  |             ...        | tag  | word  | user bytes     |
//!                            p-16   p-8
//! tag  = MAGIC ^ p                      (0 once freed)
//! word = total | log2(offset) << 56     (total = offset + size)
//! ```
//!
//! # Telling blocks from foreign pointers
//!
//! A pointer is this allocator's block when it is 16-aligned, its header
//! can be read, and the tag matches. The header is read:
//!
//! - directly when `p - 16` is inside a segment of the node heaps
//!   ([`NodeLocal::segment_node`]: two loads, no system call), where every
//!   small block lives;
//! - otherwise (large blocks, which have mappings of their own, and
//!   pointers from elsewhere) with `process_vm_readv` on the process
//!   itself, which fails with `EFAULT` instead of faulting when the address
//!   is not mapped (through a pipe where a seccomp filter refuses it:
//!   [`read_own_memory`](numakit::sys::mem::read_own_memory)). A filter
//!   that kills the process on `process_vm_readv` instead of refusing it
//!   kills it on the first large block freed.
//!
//! A pointer that fails either check is *foreign*: the caller reports it
//! and leaves it alone. A freed block's tag is cleared, so a second free of
//! it is foreign too (until the memory is handed out again).

use crate::config;
use numakit::mem::NodeLocal;
use std::alloc::{GlobalAlloc, Layout};
use std::ptr;

/// The alignment `malloc` gives (`alignof(max_align_t)` on x86-64).
pub(crate) const MIN_ALIGN: usize = 16;
const HEADER: usize = 16;
const MAGIC: usize = 0x4e55_4d41_4b49_5421;
const SHIFT: u32 = 56;
/// Totals are below this (they fit the header word; mappings that large
/// cannot be made anyway).
const MAX_TOTAL: usize = 1 << SHIFT;

/// A live block of ours.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    /// What the node-local allocator handed out.
    base: *mut u8,
    layout: Layout,
}

impl Block {
    /// The pointer C sees.
    fn user(self) -> *mut u8 {
        self.base.wrapping_add(self.layout.align())
    }

    /// Bytes the caller may use.
    pub(crate) fn usable(self) -> usize {
        self.layout.size() - self.layout.align()
    }
}

/// The allocator with the configured policy.
#[inline]
pub(crate) fn allocator() -> NodeLocal {
    // Quiet: a null is named here, in the library's own words.
    NodeLocal::with_policy(config::get().policy()).quiet()
}

/// The allocator gave null for `total` bytes: `ENOMEM`, and a line.
#[cold]
fn exhausted(total: usize) {
    let nearest = config::get().policy() == numakit::mem::OnExhausted::Nearest;
    crate::say::exhausted(total, NodeLocal::current_node().get(), nearest);
    set_errno(libc::ENOMEM);
}

/// Set the calling thread's `errno`.
pub(crate) fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

pub(crate) fn errno() -> i32 {
    // SAFETY: as in set_errno.
    unsafe { *libc::__errno_location() }
}

/// The layout that serves `size` bytes at `align` with the header in
/// front; `None` when it cannot exist.
fn layout_for(size: usize, align: usize) -> Option<Layout> {
    debug_assert!(align.is_power_of_two());
    let offset = align.max(MIN_ALIGN);
    let total = size.checked_add(offset).filter(|&t| t < MAX_TOTAL)?;
    Layout::from_size_align(total, offset).ok()
}

/// Write the header of a block the allocator just gave for `layout`.
///
/// # Safety
/// `base` is valid for writes of `layout.size()` bytes.
unsafe fn stamp(base: *mut u8, layout: Layout) -> *mut u8 {
    let offset = layout.align();
    // SAFETY: offset >= 16 and < layout.size(): inside the block.
    let p = unsafe { base.add(offset) };
    let word = layout.size() | (offset.trailing_zeros() as usize) << SHIFT;
    // SAFETY: the header's 16 bytes are in the block, 16-aligned.
    unsafe {
        let h = p.sub(HEADER).cast::<usize>();
        h.write(MAGIC ^ p as usize);
        h.add(1).write(word);
    }
    p
}

/// `size` bytes aligned to `align` (a power of two), zeroed when asked;
/// null and `ENOMEM` when they cannot be had.
pub(crate) fn alloc(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    let Some(layout) = layout_for(size, align) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: the layout's size is at least 16.
    let base = unsafe { allocator().alloc(layout) };
    if base.is_null() {
        exhausted(size);
        return base;
    }
    // SAFETY: a fresh block for `layout`.
    let p = unsafe { stamp(base, layout) };
    if zeroed {
        // SAFETY: the user part of the fresh block.
        unsafe { p.write_bytes(0, size) };
    }
    p
}

/// Read the header of `p` if it is ours.
pub(crate) fn lookup(p: *mut u8) -> Option<Block> {
    let addr = p as usize;
    if !addr.is_multiple_of(MIN_ALIGN) || addr < 4096 {
        return None;
    }
    let h = addr - HEADER;
    let (tag, word) = if NodeLocal::segment_node(h as *const u8).is_some() {
        // SAFETY: inside a segment of the node heaps, which stay mapped
        // read-write for the life of the process; 16-aligned.
        unsafe {
            (
                (h as *const usize).read(),
                (h as *const usize).add(1).read(),
            )
        }
    } else {
        let mut raw = [0u8; HEADER];
        match numakit::sys::mem::read_own_memory(h as *const u8, &mut raw) {
            Ok(HEADER) => {}
            _ => return None,
        }
        let (a, b) = raw.split_at(8);
        (
            usize::from_ne_bytes(a.try_into().ok()?),
            usize::from_ne_bytes(b.try_into().ok()?),
        )
    };
    if tag != MAGIC ^ addr {
        return None;
    }
    let shift = word >> SHIFT;
    let total = word & (MAX_TOTAL - 1);
    if !(4..SHIFT as usize).contains(&shift) {
        return None;
    }
    let offset = 1usize << shift;
    if total < offset || addr < offset {
        return None;
    }
    let layout = Layout::from_size_align(total, offset).ok()?;
    Some(Block {
        base: (addr - offset) as *mut u8,
        layout,
    })
}

/// Give `b` back.
///
/// # Safety
/// `b` came from [`lookup`] and is not used again.
pub(crate) unsafe fn free(b: Block) {
    let p = b.user();
    // SAFETY: the header of a live block; clearing the tag makes a second
    // free of the same pointer foreign.
    unsafe { p.sub(HEADER).cast::<usize>().write(0) };
    // SAFETY: the block came from the node-local allocator for `layout`
    // (its header says so, and the tag proved it is ours).
    unsafe { allocator().dealloc(b.base, b.layout) };
}

/// Resize `b` to `size` usable bytes; null and `ENOMEM` (with `b` still
/// valid) when that cannot be done. When the block moves, the old pointer
/// is foreign from then on, as after [`free`].
///
/// # Safety
/// `b` came from [`lookup`]; on success it is not used again.
pub(crate) unsafe fn realloc(b: Block, size: usize) -> *mut u8 {
    let offset = b.layout.align();
    let Some(total) = size.checked_add(offset).filter(|&t| t < MAX_TOTAL) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // Clear the tag first: when the block moves, the allocator frees the
    // old one, and its pointer must then be foreign like any freed block's
    // (a stale `free` of it would otherwise give the block back twice).
    // Only blocks aligned past 16 need it (a free list's link overwrites
    // the first word of the others), but it costs one store.
    let tag = b.user().wrapping_sub(HEADER).cast::<usize>();
    // SAFETY: the header of a live block of ours (tag checked by lookup).
    let saved = unsafe { tag.replace(0) };
    // SAFETY: the block came from the allocator for `b.layout`; `total`
    // is non-zero and, rounded to `offset`, far below isize::MAX.
    let base = unsafe { allocator().realloc(b.base, b.layout, total) };
    if base.is_null() {
        // The block is as it was: ours again.
        // SAFETY: a failed realloc leaves the block live and unmoved.
        unsafe { tag.write(saved) };
        exhausted(size);
        return base;
    }
    // SAFETY: `total` is a valid size at this alignment (checked above);
    // the block (moved or not) is valid for it.
    unsafe { stamp(base, Layout::from_size_align_unchecked(total, offset)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_put_the_header_below_an_aligned_pointer() {
        let l = layout_for(0, 1).unwrap();
        assert_eq!((l.size(), l.align()), (16, 16));
        let l = layout_for(100, 64).unwrap();
        assert_eq!((l.size(), l.align()), (164, 64));
        assert!(layout_for(usize::MAX, 16).is_none());
        assert!(layout_for(MAX_TOTAL - 16, 16).is_none());
        assert!(layout_for(MAX_TOTAL - 17, 16).is_some());
        assert!(layout_for(1, 1 << 63).is_none());
    }

    #[test]
    fn foreign_addresses_are_not_blocks() {
        let x = [0usize; 8];
        for a in [0usize, 16, 4096, usize::MAX & !15, x.as_ptr() as usize + 16] {
            assert!(lookup(a as *mut u8).is_none(), "{a:#x}");
        }
        // A header with the right tag but an impossible word.
        let mut fake = [0usize; 4];
        let p = fake.as_mut_ptr().wrapping_add(2) as usize;
        if p.is_multiple_of(16) {
            fake[0] = MAGIC ^ p;
            fake[1] = 3 << SHIFT;
            std::hint::black_box(&mut fake);
            assert!(lookup(p as *mut u8).is_none());
        }
    }
}
