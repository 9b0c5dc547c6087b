//! Property test: random allocation sequences against a model of the bump
//! pointer. Allocations never overlap, respect alignment, stay inside the
//! arena, and exhaustion is reported exactly when the space left is too small.

mod common;

use numakit::mem::{Arena, MemError};
use proptest::prelude::*;

const CAPACITY: usize = 64 << 10;

fn op() -> impl Strategy<Value = (usize, u32)> {
    (0usize..6000, 0u32..13) // size, log2(align) up to 4096
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(200)))]

    #[test]
    fn bump_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        let arena = Arena::new(0, CAPACITY).unwrap();
        let base = {
            // The first allocation of alignment 1 and size 0 is at the bump pointer.
            arena.try_alloc_raw(0, 1).unwrap().as_ptr() as usize - arena.used()
        };
        let mut cur = arena.used();
        let mut taken: Vec<(usize, usize)> = Vec::new();
        for (size, align_log) in ops {
            let align = 1usize << align_log;
            let aligned = (base + cur).div_ceil(align) * align - base;
            let fits = aligned + size <= CAPACITY;
            match arena.try_alloc_raw(size, align) {
                Ok(p) => {
                    prop_assert!(fits, "allocation of {} at {} should not fit", size, aligned);
                    let addr = p.as_ptr() as usize;
                    prop_assert_eq!(addr % align, 0);
                    prop_assert_eq!(addr - base, aligned);
                    prop_assert!(addr + size <= base + CAPACITY);
                    // Writable over its whole length.
                    // SAFETY: the arena handed out `size` bytes at `p`.
                    unsafe { std::ptr::write_bytes(p.as_ptr(), 0xa5, size) };
                    for &(s, e) in &taken {
                        prop_assert!(addr + size <= s || addr >= e || size == 0);
                    }
                    taken.push((addr, addr + size));
                    cur = aligned + size;
                    prop_assert_eq!(arena.used(), cur);
                }
                Err(MemError::Exhausted { remaining, requested, align: a, capacity, .. }) => {
                    prop_assert!(!fits, "{} bytes at {} fit but were refused", size, aligned);
                    prop_assert_eq!((remaining, requested, a, capacity), (CAPACITY - cur, size, align, CAPACITY));
                    prop_assert_eq!(arena.used(), cur, "a failed allocation must not move the bump pointer");
                }
                Err(other) => prop_assert!(false, "unexpected error {:?}", other),
            }
        }
    }
}
