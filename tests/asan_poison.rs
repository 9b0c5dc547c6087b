//! numakit's manual AddressSanitizer poisoning catches misuse inside its
//! own `mmap`ed memory: a use after free of a slab slot or a heap block,
//! and a read past an arena allocation.
//!
//! Only meaningful in an ASan build with numakit's poisoning on:
//! `RUSTFLAGS="-Zsanitizer=address --cfg numakit_asan" cargo +nightly test
//! --target x86_64-unknown-linux-gnu --test asan_poison` (`.ci/asan.sh`
//! does this). Each misuse runs in a child process (this binary run again
//! with `NUMAKIT_ASAN_CHILD` naming the case), which must die with an ASan
//! report of `use-after-poison` naming the access. In other builds the
//! tests say they are skipped and why, and only check that the same
//! accesses on live memory are fine.

use numakit::mem::{Arena, NodeHeap, RawSlab};
use std::alloc::Layout;
use std::process::Command;

const CHILD: &str = "NUMAKIT_ASAN_CHILD";

/// Run `case` in a child process when this is the parent; when this is the
/// child for `case`, do the misuse (which ASan must stop) instead.
fn run_case(case: &str, misuse: fn()) {
    if std::env::var(CHILD).as_deref() == Ok(case) {
        misuse();
        // Only reached if ASan did not catch the access.
        std::process::exit(0);
    }
    if !cfg!(numakit_asan) {
        eprintln!(
            "skipped: {case} needs an ASan build with numakit's poisoning \
             (RUSTFLAGS=\"-Zsanitizer=address --cfg numakit_asan\", see .ci/asan.sh)"
        );
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([case, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, case)
        // Stop at the first report; symbolised frames name the access.
        .env("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=0")
        .output()
        .expect("run the test binary again");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{case}: the misuse ran to the end without an ASan report\n{stderr}"
    );
    assert!(
        stderr.contains("ERROR: AddressSanitizer: use-after-poison"),
        "{case}: the child died without a use-after-poison report ({:?}):\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("asan_poison::"),
        "{case}: the report does not point at the misuse in this file:\n{stderr}"
    );
}

/// Read through `p` so that the compiler cannot drop the access.
fn read(p: *const u8) -> u8 {
    // SAFETY: deliberately not: `p` is poisoned memory, and ASan stops the
    // process at this read (only the child process gets here).
    unsafe { std::ptr::read_volatile(p) }
}

#[test]
fn slab_use_after_free_is_reported() {
    run_case("slab_use_after_free_is_reported", || {
        let slab = RawSlab::new(0, 64, 8, 4).unwrap();
        let p = slab.alloc().unwrap();
        // SAFETY: handed out by `slab`.
        unsafe { slab.free(p).unwrap() };
        // Past the free-list word: the freed slot's payload.
        read(p.as_ptr().wrapping_add(16));
    });
    // Live memory reads fine in any build.
    let slab = RawSlab::new(0, 64, 8, 4).unwrap();
    let p = slab.alloc().unwrap();
    assert_eq!(read(p.as_ptr().wrapping_add(16)), 0);
}

#[test]
fn slab_read_past_the_object_is_reported() {
    run_case("slab_read_past_the_object_is_reported", || {
        // 8-byte objects aligned to 16: bytes 8..16 of each slot are
        // padding. (ASan tracks 8-byte granules: padding inside the
        // object's last granule cannot be told apart.)
        let slab = RawSlab::new(0, 8, 16, 4).unwrap();
        let p = slab.alloc().unwrap();
        read(p.as_ptr().wrapping_add(8));
    });
}

#[test]
fn heap_use_after_free_is_reported() {
    run_case("heap_use_after_free_is_reported", || {
        let heap = NodeHeap::new(0).unwrap();
        let layout = Layout::from_size_align(48, 8).unwrap();
        let p = heap.try_alloc_layout(layout).unwrap();
        // SAFETY: a block of `heap` for `layout`, freed once.
        unsafe { heap.dealloc(p, layout) };
        read(p.as_ptr().wrapping_add(24));
    });
    let heap = NodeHeap::new(0).unwrap();
    let layout = Layout::from_size_align(48, 8).unwrap();
    let p = heap.try_alloc_layout(layout).unwrap();
    // SAFETY: a live block of 48 bytes.
    unsafe { p.as_ptr().write_bytes(5, 48) };
    assert_eq!(read(p.as_ptr().wrapping_add(24)), 5);
    // SAFETY: as above, freed once.
    unsafe { heap.dealloc(p, layout) };
}

/// `NodeLocal`'s fast paths (a pop from and a push to the thread's home
/// cache, after a first allocation set that cache up) poison and unpoison
/// like the heap's own paths.
#[test]
fn node_local_fast_path_use_after_free_is_reported() {
    use numakit::mem::NodeLocal;
    use std::alloc::GlobalAlloc;
    fn cycle() -> *mut u8 {
        let a = NodeLocal::nearest();
        let layout = Layout::from_size_align(48, 8).unwrap();
        // SAFETY: a non-zero layout; each block freed once with it. The
        // first allocation takes the general path and makes the thread's
        // home cache; the second comes from it.
        unsafe {
            let first = a.alloc(layout);
            assert!(!first.is_null());
            let p = a.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(5, 48);
            assert_eq!(read(p.wrapping_add(24)), 5);
            a.dealloc(first, layout);
            a.dealloc(p, layout);
            p
        }
    }
    run_case("node_local_fast_path_use_after_free_is_reported", || {
        let p = cycle();
        read(p.wrapping_add(24));
    });
    cycle();
}

#[test]
fn heap_block_cached_after_a_free_reads_as_poisoned_even_at_its_link() {
    run_case(
        "heap_block_cached_after_a_free_reads_as_poisoned_even_at_its_link",
        || {
            let heap = NodeHeap::new(0).unwrap();
            let layout = Layout::from_size_align(16, 16).unwrap();
            let p = heap.try_alloc_layout(layout).unwrap();
            // SAFETY: as above.
            unsafe { heap.dealloc(p, layout) };
            // The first word holds the thread cache's free-list link.
            read(p.as_ptr());
        },
    );
}

#[test]
fn arena_read_past_an_allocation_is_reported() {
    run_case("arena_read_past_an_allocation_is_reported", || {
        let arena = Arena::new(0, 1 << 20).unwrap();
        let p = arena.try_alloc_raw(24, 8).unwrap();
        read(p.as_ptr().wrapping_add(24));
    });
    let arena = Arena::new(0, 1 << 20).unwrap();
    let p = arena.try_alloc_raw(24, 8).unwrap();
    assert_eq!(read(p.as_ptr().wrapping_add(23)), 0);
}

#[test]
fn arena_read_after_reset_is_reported() {
    run_case("arena_read_after_reset_is_reported", || {
        let mut arena = Arena::builder(0).capacity(1 << 20).build_shared().unwrap();
        let p = arena.try_alloc_raw(4096, 64).unwrap().as_ptr();
        arena.reset();
        read(p.wrapping_add(100));
    });
}

/// Four threads allocating odd sizes from one `SharedArena` share ASan's
/// 8-byte shadow granules at the seams of their allocations; unpoisoning
/// one allocation must never poison the other's bytes (a false report
/// here). Runs in every build; meaningful under `numakit_asan`.
#[test]
fn shared_arena_neighbours_from_four_threads_stay_addressable() {
    // The seams race: several rounds make a lost update all but certain
    // when unpoisoning is not granule-safe.
    for _ in 0..8 {
        let mut arena = Arena::builder(0).capacity(1 << 20).build_shared().unwrap();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let arena = &arena;
                s.spawn(move || {
                    for i in 0..20_000usize {
                        let len = 1 + (i + t as usize) % 7;
                        let v = arena.alloc_slice_fill_with(len, |_| t);
                        assert!(v.iter().all(|&b| b == t));
                    }
                });
            }
        });
        arena.reset();
    }
}
