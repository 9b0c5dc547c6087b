//! Property tests: random allocate / free / grow / shrink sequences on a
//! [`NodeHeap`], through the `Allocator` trait, against a model of the live
//! blocks. Blocks never overlap, are aligned, every byte is writable and
//! keeps what was written until freed (so no block is handed out twice),
//! and the heap's in-use figure is the sum of the live blocks. Once on one
//! thread, then with several threads sharing one heap and freeing each
//! other's blocks.

mod common;
#[path = "common/ranges.rs"]
mod ranges;

use allocator_api2::alloc::Allocator;
use numakit::mem::NodeHeap;
use proptest::prelude::*;
use ranges::Ranges;
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Mutex;

#[derive(Clone, Debug)]
enum Op {
    Alloc { size: usize, align_log: u32 },
    Free(usize),
    Resize(usize, usize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..=64,
        3 => 65usize..=1024,
        2 => 1025usize..=(32 << 10),
        // The classes above 32 KiB (to 1 MiB), their edges and the blocks
        // past them, which have mappings of their own (resized by mremap).
        2 => (32usize << 10) + 1..=(1 << 20),
        1 => proptest::sample::select(vec![
            32usize << 10,
            (32 << 10) + 1,
            1 << 20,
            (1 << 20) + 1,
            (2 << 20) + 1,
        ]),
        1 => (1usize << 20) + 1..=(3 << 20),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (size(), prop_oneof![6 => 0u32..=4, 1 => 5u32..=13])
            .prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
        3 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Resize(i, s)),
    ]
}

/// A live block in the model.
#[derive(Clone, Copy, Debug)]
struct Live {
    addr: usize,
    /// Usable bytes reported by `allocate`.
    len: usize,
    layout: Layout,
    fill: u8,
}

fn check_contents(b: &Live) -> Result<(), TestCaseError> {
    // SAFETY: a live block of `len` usable bytes, written with `fill`.
    let bytes = unsafe { std::slice::from_raw_parts(b.addr as *const u8, b.len) };
    prop_assert!(
        bytes.iter().all(|&x| x == b.fill),
        "block {:#x} ({:?}) was overwritten: handed out twice or overlapping",
        b.addr,
        b.layout
    );
    Ok(())
}

fn alloc(heap: &NodeHeap, size: usize, align: usize, fill: u8) -> Result<Live, TestCaseError> {
    let layout = Layout::from_size_align(size, align).unwrap();
    let block = heap
        .allocate(layout)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let addr = block.cast::<u8>().as_ptr() as usize;
    prop_assert_eq!(addr % align, 0, "{:?} misaligned at {:#x}", layout, addr);
    prop_assert!(block.len() >= size);
    // SAFETY: the usable size is writable.
    unsafe { (addr as *mut u8).write_bytes(fill, block.len()) };
    Ok(Live {
        addr,
        len: block.len(),
        layout,
        fill,
    })
}

fn free(heap: &NodeHeap, b: Live) -> Result<(), TestCaseError> {
    check_contents(&b)?;
    // SAFETY: allocated by this heap with `layout` (usable size `len`), not
    // used again.
    unsafe { heap.deallocate(NonNull::new(b.addr as *mut u8).unwrap(), b.layout) };
    Ok(())
}

/// Grow or shrink `b` to `size`; contents up to the smaller size survive.
fn resize(heap: &NodeHeap, b: Live, size: usize, fill: u8) -> Result<Live, TestCaseError> {
    check_contents(&b)?;
    let new = Layout::from_size_align(size, b.layout.align()).unwrap();
    let p = NonNull::new(b.addr as *mut u8).unwrap();
    // SAFETY: `b` is live with `layout`; grow/shrink get a size in the
    // direction they expect.
    let r = unsafe {
        if size >= b.layout.size() {
            heap.grow(p, b.layout, new)
        } else {
            heap.shrink(p, b.layout, new)
        }
    }
    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let addr = r.cast::<u8>().as_ptr() as usize;
    prop_assert_eq!(addr % b.layout.align(), 0);
    prop_assert!(r.len() >= size);
    let kept = size.min(b.layout.size());
    // SAFETY: the new block is valid for its usable size.
    let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, kept) };
    prop_assert!(
        bytes.iter().all(|&x| x == b.fill),
        "contents lost in resize"
    );
    // SAFETY: as above.
    unsafe { (addr as *mut u8).write_bytes(fill, r.len()) };
    Ok(Live {
        addr,
        len: r.len(),
        layout: new,
        fill,
    })
}

fn in_use(live: &[Live]) -> usize {
    live.iter()
        .filter(|b| b.layout.size() > 0)
        .map(|b| b.len)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn single_thread_matches_model(ops in proptest::collection::vec(op(), 1..300)) {
        let heap = NodeHeap::new(0).unwrap();
        let mut live: Vec<Live> = Vec::new();
        let mut ranges = Ranges::default();
        for (n, op) in ops.into_iter().enumerate() {
            let fill = (n % 251) as u8 + 1;
            match op {
                Op::Alloc { size, align_log } => {
                    let b = alloc(&heap, size, 1 << align_log, fill)?;
                    ranges.insert(b.addr, if size == 0 { 0 } else { b.len })?;
                    live.push(b);
                }
                Op::Free(i) if !live.is_empty() => {
                    let b = live.swap_remove(i % live.len());
                    ranges.remove(b.addr, if b.layout.size() == 0 { 0 } else { b.len });
                    free(&heap, b)?;
                }
                Op::Resize(i, size) if !live.is_empty() => {
                    let i = i % live.len();
                    let old = live[i];
                    ranges.remove(old.addr, if old.layout.size() == 0 { 0 } else { old.len });
                    let b = resize(&heap, old, size, fill)?;
                    ranges.insert(b.addr, if size == 0 { 0 } else { b.len })?;
                    live[i] = b;
                }
                _ => {}
            }
            prop_assert_eq!(heap.stats().bytes_in_use, in_use(&live));
        }
        for b in live.drain(..) {
            free(&heap, b)?;
        }
        let stats = heap.stats();
        prop_assert_eq!(stats.bytes_in_use, 0);
        prop_assert!(stats.classes.iter().all(|c| c.in_use == 0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(16)))]

    #[test]
    fn threads_sharing_a_heap_match_model(
        per_thread in proptest::collection::vec(proptest::collection::vec(op(), 1..200), 2..5)
    ) {
        let heap = NodeHeap::new(0).unwrap();
        let ranges = Mutex::new(Ranges::default());
        // Blocks one thread allocated and another frees.
        let handoff = Mutex::new(Vec::<Live>::new());
        let results: Vec<Result<Vec<Live>, TestCaseError>> = std::thread::scope(|s| {
            let handles: Vec<_> = per_thread
                .into_iter()
                .enumerate()
                .map(|(t, ops)| {
                    let (heap, ranges, handoff) = (&heap, &ranges, &handoff);
                    s.spawn(move || -> Result<Vec<Live>, TestCaseError> {
                        let mut live: Vec<Live> = Vec::new();
                        let live_len = |b: &Live| if b.layout.size() == 0 { 0 } else { b.len };
                        for (n, op) in ops.into_iter().enumerate() {
                            let fill = ((t * 64 + n) % 251) as u8 + 1;
                            match op {
                                Op::Alloc { size, align_log } => {
                                    let b = alloc(heap, size, 1 << align_log, fill)?;
                                    ranges.lock().unwrap().insert(b.addr, live_len(&b))?;
                                    live.push(b);
                                }
                                Op::Free(i) if !live.is_empty() => {
                                    let b = live.swap_remove(i % live.len());
                                    if i % 3 == 0 {
                                        // Someone else frees it.
                                        handoff.lock().unwrap().push(b);
                                        continue;
                                    }
                                    ranges.lock().unwrap().remove(b.addr, live_len(&b));
                                    free(heap, b)?;
                                }
                                Op::Free(_) => {
                                    let theirs = handoff.lock().unwrap().pop();
                                    if let Some(b) = theirs {
                                        ranges.lock().unwrap().remove(b.addr, live_len(&b));
                                        free(heap, b)?;
                                    }
                                }
                                Op::Resize(i, size) if !live.is_empty() => {
                                    let i = i % live.len();
                                    let old = live[i];
                                    let mut r = ranges.lock().unwrap();
                                    r.remove(old.addr, live_len(&old));
                                    let b = resize(heap, old, size, fill)?;
                                    r.insert(b.addr, live_len(&b))?;
                                    live[i] = b;
                                }
                                Op::Resize(..) => {}
                            }
                        }
                        Ok(live)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut rest = handoff.into_inner().unwrap();
        for r in results {
            rest.extend(r?);
        }
        prop_assert_eq!(heap.stats().bytes_in_use, in_use(&rest));
        for b in rest {
            free(&heap, b)?;
        }
        let stats = heap.stats();
        prop_assert_eq!(stats.bytes_in_use, 0);
        prop_assert!(stats.classes.iter().all(|c| c.in_use == 0 && c.allocations == c.frees));
    }
}
