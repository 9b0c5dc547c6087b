//! Size classes: 60 classes from 16 bytes to 1 MiB.
//!
//! | sizes | step | classes |
//! |---|---|---|
//! | 16 … 128 | 16 | 8 |
//! | (128·2ᵍ, 256·2ᵍ] for g = 0 … 12 | a quarter of the power of two below | 4 per doubling, 52 |
//!
//! The 20 classes above 32 KiB (40 KiB … 1 MiB) are carved, like the
//! others, from node-bound segments in chunks of at least 1 MiB, so a
//! `Vec` growing to 1 MiB or a 200 KiB I/O buffer costs a thread-cache pop
//! instead of an `mmap`, `mbind`, populate and `munmap`; their thread
//! caches keep fewer blocks (see [`cache_limit`]).
//!
//! So no request wastes more than 20% of its block past 128 bytes. Blocks
//! of a class are laid out back to back from page-aligned chunks, so a
//! block is aligned to the largest power of two dividing the class size
//! (capped at the page): a request with a larger alignment moves up to the
//! first class that has it (the powers of two always do).

/// Number of size classes.
pub(crate) const NUM_CLASSES: usize = 60;

/// The largest request served from a size class; larger ones get their
/// own page-granular mapping.
pub(crate) const MAX_SMALL: usize = 1 << 20;

/// Blocks up to this size were the only classes before the large ones;
/// above it, chunks and thread caches are sized differently.
pub(crate) const MEDIUM_MAX: usize = 32 << 10;

/// Alignment every chunk base has (the base page size on every target
/// numakit supports; the real page size is at least this).
pub(crate) const CHUNK_ALIGN: usize = 4096;

const fn size_at(i: usize) -> usize {
    if i < 8 {
        16 * (i + 1)
    } else {
        let g = (i - 8) / 4;
        let s = (i - 8) % 4;
        let base = 128 << g;
        base + (s + 1) * (base / 4)
    }
}

const fn sizes() -> [u32; NUM_CLASSES] {
    let mut out = [0u32; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        out[i] = size_at(i) as u32;
        i += 1;
    }
    out
}

/// Block size of each class.
pub(crate) static SIZES: [u32; NUM_CLASSES] = sizes();

const _: () = assert!(size_at(NUM_CLASSES - 1) == MAX_SMALL);
const _: () = assert!(size_at(0) >= 2 * std::mem::size_of::<usize>());

/// Sizes up to this are looked up in [`SMALL_TABLE`].
const SMALL_TABLE_MAX: usize = 1024;

/// `SMALL_TABLE[(size + 15) / 16]` is the class of `size` (0 maps to the
/// first class).
static SMALL_TABLE: [u8; SMALL_TABLE_MAX / 16 + 1] = small_table();

const _: () = {
    let t = small_table();
    let mut i = 0;
    while i < t.len() {
        assert!((t[i] as usize) < NUM_CLASSES);
        i += 1;
    }
};

const fn small_table() -> [u8; SMALL_TABLE_MAX / 16 + 1] {
    let mut out = [0u8; SMALL_TABLE_MAX / 16 + 1];
    let mut i = 1;
    while i < out.len() {
        let size = i * 16;
        let mut c = 0;
        while size_at(c) < size {
            c += 1;
        }
        out[i] = c as u8;
        i += 1;
    }
    out
}

/// Block size of class `c` (`c < NUM_CLASSES`).
#[inline(always)]
pub(crate) fn size_of_class(c: usize) -> usize {
    SIZES[c] as usize
}

/// The alignment every block of class `c` has.
#[inline(always)]
#[cfg(test)]
pub(crate) fn align_of_class(c: usize) -> usize {
    align_of_size(size_of_class(c))
}

/// The alignment every block of a class of block size `s` has.
#[inline(always)]
fn align_of_size(s: usize) -> usize {
    (s & s.wrapping_neg()).min(CHUNK_ALIGN)
}

/// The smallest class whose blocks hold `size` bytes (`1 <= size <= MAX_SMALL`).
#[inline(always)]
fn class_of_size(size: usize) -> usize {
    if size <= 128 {
        size.div_ceil(16) - 1
    } else {
        // size - 1 in [128·2ᵍ, 256·2ᵍ): g = bit length - 8.
        let bits = usize::BITS - (size - 1).leading_zeros();
        let g = (bits - 8) as usize;
        let base = 128usize << g;
        8 + 4 * g + ((size - base - 1) >> (5 + g))
    }
}

/// The class serving `size` bytes aligned to `align`, or `None` when the
/// request is for a dedicated mapping (too large, or aligned past a page).
#[inline(always)]
pub(crate) fn class_for(size: usize, align: usize) -> Option<usize> {
    // Common case: up to 1 KiB, alignment up to 16 (every class is a
    // multiple of 16, so any class qualifies): one table load.
    let c = if size <= SMALL_TABLE_MAX && align <= 16 {
        SMALL_TABLE[(size + 15) >> 4] as usize
    } else {
        class_for_general(size, align)?
    };
    // SAFETY: every table entry is below NUM_CLASSES (checked when
    // compiling, above), and `class_for_general` only returns indices of
    // SIZES. Said here so that callers indexing per-class arrays with the
    // result need no bounds check (nor a panic path) on their fast paths.
    unsafe { std::hint::assert_unchecked(c < NUM_CLASSES) };
    Some(c)
}

#[inline]
fn class_for_general(size: usize, align: usize) -> Option<usize> {
    let need = size.max(align).max(1);
    if need > MAX_SMALL || align > CHUNK_ALIGN {
        return None;
    }
    let mut c = class_of_size(need);
    // Only alignments above 16 can need a larger class; the power-of-two
    // classes (256, 512, …, 1 MiB) always qualify, so this ends inside
    // the table (read with `get`: no panic path on the allocator's).
    loop {
        if align_of_size(*SIZES.get(c)? as usize) >= align {
            return Some(c);
        }
        c += 1;
    }
}

/// Bytes a class takes from its node at a time: 64 KiB up to 4 KiB
/// blocks, 256 KiB up to 32 KiB, then 1 MiB or two blocks, whichever is
/// larger (at most 2 MiB, well inside a chunk record's 16 MiB).
pub(crate) fn chunk_of_class(c: usize) -> usize {
    let size = size_of_class(c);
    if size <= 4096 {
        64 << 10
    } else if size <= MEDIUM_MAX {
        256 << 10
    } else {
        (2 * size).max(1 << 20)
    }
}

/// Blocks a thread cache keeps for class `c` before giving half back:
/// 64 KiB worth (at least 4 blocks) up to 32 KiB, so a thread that frees a
/// burst of up to 4096 small blocks and allocates them again never takes a
/// lock; above, 512 KiB worth, between 2 and 16 blocks, so that the
/// large classes do not pile up memory in the caches of idle threads.
pub(crate) fn cache_limit(c: usize) -> u32 {
    let size = size_of_class(c);
    if size <= MEDIUM_MAX {
        ((64 << 10) / size).clamp(4, 4096) as u32
    } else {
        ((512 << 10) / size).clamp(2, 16) as u32
    }
}

/// Blocks a refill takes from the class central at once (under its lock;
/// the central list is walked to split them off).
pub(crate) fn refill_batch(c: usize) -> u32 {
    (cache_limit(c) / 2).clamp(1, 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_increasing_and_ends_at_1m() {
        assert_eq!(SIZES[0], 16);
        assert_eq!(SIZES[7], 128);
        assert_eq!(&SIZES[8..12], &[160, 192, 224, 256]);
        assert_eq!(SIZES[39] as usize, MEDIUM_MAX);
        assert_eq!(SIZES[40], 40 << 10);
        assert_eq!(SIZES[NUM_CLASSES - 1], 1 << 20);
        assert_eq!(SIZES[NUM_CLASSES - 1] as usize, MAX_SMALL);
        assert!(SIZES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_size_maps_to_the_smallest_fitting_class() {
        for size in 1..=MAX_SMALL {
            let c = class_of_size(size);
            assert!(size_of_class(c) >= size, "size {size} -> {c}");
            assert!(c == 0 || size_of_class(c - 1) < size, "size {size} -> {c}");
        }
    }

    #[test]
    fn alignment_is_honoured_and_stable_over_the_block() {
        for align_log in 0..=12 {
            let align = 1usize << align_log;
            for size in (0..=MAX_SMALL).step_by(if align_log < 6 { 7 } else { 251 }) {
                let Some(c) = class_for(size, align) else {
                    assert!(size.max(align) > MAX_SMALL);
                    continue;
                };
                assert!(size_of_class(c) >= size.max(1));
                assert_eq!(align_of_class(c) % align, 0, "size {size} align {align}");
                // Any size between the request and the block size maps back
                // to the same class (dealloc may be given either).
                assert_eq!(class_for(size_of_class(c), align), Some(c));
            }
        }
        assert_eq!(class_for(MAX_SMALL + 1, 1), None);
        assert_eq!(class_for(MAX_SMALL, 4096), Some(NUM_CLASSES - 1));
        assert_eq!(class_for(MEDIUM_MAX + 1, 1), Some(40));
        assert_eq!(class_for(usize::MAX, 1), None);
        for size in 0..=2048 {
            for align in [1, 2, 4, 8, 16, 32] {
                assert_eq!(class_for(size, align), class_for_general(size, align));
            }
        }
        assert_eq!(class_for(16, 8192), None);
    }

    #[test]
    fn large_classes_fit_chunk_records_and_have_room_for_blocks() {
        for c in 0..NUM_CLASSES {
            let chunk = chunk_of_class(c);
            assert!(chunk / size_of_class(c) >= 2, "class {c}");
            // A chunk record holds 24 bits of length.
            assert!(chunk < 1 << 24);
            assert!(cache_limit(c) >= 2 && refill_batch(c) >= 1);
        }
    }
}
