//! Sequence fuzzing of every allocator against a model, over the builders'
//! configuration space: `RawSlab` and `Slab` (object sizes from zero to
//! past a page, alignments up to a page, capacities 0..=4 and growth in
//! chunks smaller than, equal to and larger than an object), `NodeHeap`
//! (every size class, large blocks, boxes of values that count their
//! drops, `trim`, frees from another thread), `Arena` (sizes from 0 to past
//! the capacity, alignments up to a page, every populate mode, `reset`,
//! `trim`, a one-page arena filled exactly), `SharedArena` (two threads
//! allocating at once) and `NodeBox` (small, large, zero-sized and `Drop`
//! values).
//!
//! The model keeps every live block with a fill byte: each block is written
//! over its whole length when handed out and checked before it is freed
//! (an overlap or a block handed out twice shows up as a wrong byte), its
//! alignment is checked, and no two live blocks overlap. The figures
//! (`len`, `used`, in-use counts and bytes) must match the model after
//! every step. Values that count their drops prove that each one is
//! dropped exactly once (no double drop, no leak: creations == drops).
//!
//! Case counts are kept small so that the whole file runs in a few
//! seconds in a debug build; raise them with `PROPTEST_CASES=N` (which
//! overrides every count here) for a longer run.

mod common;
#[path = "common/ranges.rs"]
mod ranges;

use allocator_api2::alloc::Allocator;
use numakit::mem::{
    Arena, MemError, NodeBox, NodeHeap, PageKind, Populate, RawSlab, Slab, SlabBuilder,
};
use proptest::prelude::*;
use ranges::Ranges;
use std::alloc::Layout;
use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

const PAGE: usize = 4096;

/// `common::cases(n)` cases per property.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: common::cases(n),
        // Shrinking re-runs whole sequences; a few hundred steps are plenty.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

// ---- drop counting ----------------------------------------------------

/// Who was made and who was dropped, per test case.
#[derive(Default)]
struct Census {
    made: Mutex<u64>,
    dropped: Mutex<HashSet<u64>>,
    double: Mutex<Vec<u64>>,
}

impl Census {
    fn make(self: &Arc<Self>, payload: u64) -> Tracked {
        let mut made = self.made.lock().unwrap();
        *made += 1;
        Tracked {
            id: *made,
            payload,
            census: Arc::clone(self),
        }
    }
    fn dropped(&self) -> usize {
        self.dropped.lock().unwrap().len()
    }
    fn made(&self) -> u64 {
        *self.made.lock().unwrap()
    }
    /// Every value made was dropped exactly once, except `leaked` ones.
    fn check(&self, leaked: usize) -> Result<(), TestCaseError> {
        let double = self.double.lock().unwrap();
        prop_assert!(double.is_empty(), "dropped twice: {:?}", *double);
        prop_assert_eq!(self.dropped() as u64 + leaked as u64, self.made());
        Ok(())
    }
}

/// A value that reports its drop; `payload` is checked against the model.
struct Tracked {
    id: u64,
    payload: u64,
    census: Arc<Census>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.census.dropped.lock().unwrap().insert(self.id) {
            self.census.double.lock().unwrap().push(self.id);
        }
    }
}

// ---- live blocks ------------------------------------------------------

/// Write `fill` over `[p, p + len)`.
///
/// # Safety
/// The range is a live block the caller owns.
unsafe fn fill(p: *mut u8, len: usize, fill: u8) {
    // SAFETY: per the contract.
    unsafe { std::ptr::write_bytes(p, fill, len) }
}

/// Check that `[p, p + len)` still holds `fill`.
///
/// # Safety
/// The range is a live block the caller owns.
unsafe fn check(p: *const u8, len: usize, fill: u8) -> Result<(), TestCaseError> {
    // SAFETY: per the contract.
    let bytes = unsafe { std::slice::from_raw_parts(p, len) };
    if let Some(i) = bytes.iter().position(|&b| b != fill) {
        prop_assert!(
            false,
            "byte {} of the block at {:p} ({} bytes) is {:#x}, not {:#x}: another block overlaps it",
            i,
            p,
            len,
            bytes[i],
            fill
        );
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Alloc,
    Free(usize),
    /// Free a pointer the allocator did not hand out (inside a live block,
    /// or just past the carved objects).
    FreeForeign(usize),
}

fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            5 => Just(Op::Alloc),
            4 => any::<usize>().prop_map(Op::Free),
            1 => any::<usize>().prop_map(Op::FreeForeign),
        ],
        0..max,
    )
}

// ---- RawSlab ----------------------------------------------------------

#[derive(Clone, Debug)]
struct SlabConfig {
    size: usize,
    align: usize,
    capacity: usize,
    max: usize,
    chunk: usize,
}

fn slab_config() -> impl Strategy<Value = SlabConfig> {
    (
        prop_oneof![
            Just(0usize),
            Just(1),
            Just(7),
            Just(8),
            Just(9),
            Just(24),
            Just(100),
            Just(PAGE - 1),
            Just(PAGE),
            Just(PAGE + 8),
            1usize..300,
        ],
        prop_oneof![
            Just(1usize),
            Just(2),
            Just(8),
            Just(16),
            Just(64),
            Just(PAGE)
        ],
        0usize..=4,
        0usize..=40,
        prop_oneof![
            Just(1usize),
            Just(PAGE - 1),
            Just(PAGE),
            Just(PAGE + 1),
            Just(3 * PAGE),
            Just(2 << 20),
            // Beyond isize::MAX (the largest region): refused.
            Just(usize::MAX),
        ],
    )
        .prop_map(|(size, align, capacity, extra, chunk)| SlabConfig {
            size,
            align,
            capacity,
            max: capacity + extra,
            chunk,
        })
}

fn raw_slab_run(cfg: &SlabConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let built = SlabBuilder::new(0)
        .capacity(cfg.capacity)
        .max_capacity(cfg.max)
        .chunk_bytes(cfg.chunk)
        .build_raw(cfg.size, cfg.align);
    let slab = match built {
        Ok(slab) => slab,
        Err(MemError::InvalidSize { .. }) => {
            prop_assert_eq!(cfg.max, 0, "only an empty slab is refused");
            return Ok(());
        }
        Err(MemError::InvalidConfig(msg)) if cfg.chunk > isize::MAX as usize => {
            prop_assert!(msg.contains("chunk_bytes"), "{}", msg);
            return Ok(());
        }
        Err(e) => return Err(TestCaseError::fail(format!("{cfg:?}: {e}"))),
    };
    prop_assert!(cfg.max > 0);
    prop_assert!(
        cfg.chunk <= isize::MAX as usize,
        "chunk {} accepted",
        cfg.chunk
    );
    let stride = slab.stride();
    prop_assert!(stride >= cfg.size.max(8) && stride % cfg.align.max(8) == 0);
    prop_assert_eq!(slab.max_capacity(), cfg.max);
    prop_assert!(slab.capacity() >= cfg.capacity);
    let mut live: Vec<(NonNull<u8>, u8)> = Vec::new();
    let mut ranges = Ranges::default();
    let mut next_fill = 1u8;
    for op in ops {
        match *op {
            Op::Alloc => match slab.alloc() {
                Ok(p) => {
                    prop_assert!(live.len() < cfg.max, "allocated past max_capacity");
                    let a = p.as_ptr() as usize;
                    prop_assert_eq!(a % cfg.align, 0, "misaligned object");
                    prop_assert!(slab.contains(p.as_ptr()));
                    // The whole slot, so that objects never share bytes.
                    ranges.insert(a, stride)?;
                    // SAFETY: a fresh object of `size` bytes.
                    unsafe { fill(p.as_ptr(), cfg.size, next_fill) };
                    live.push((p, next_fill));
                    next_fill = next_fill.wrapping_add(1).max(1);
                }
                Err(MemError::SlabFull { max_objects, .. }) => {
                    prop_assert_eq!(live.len(), cfg.max, "SlabFull below max_capacity");
                    prop_assert_eq!(max_objects, cfg.max);
                }
                Err(e) => return Err(TestCaseError::fail(format!("alloc: {e}"))),
            },
            Op::Free(i) if !live.is_empty() => {
                let (p, f) = live.swap_remove(i % live.len());
                // SAFETY: a live object written with `f`.
                unsafe { check(p.as_ptr(), cfg.size, f)? };
                ranges.remove(p.as_ptr() as usize, stride);
                // SAFETY: handed out by this slab, freed once.
                let freed = unsafe { slab.free(p) };
                prop_assert!(freed.is_ok(), "{:?}", freed);
            }
            Op::Free(_) => {}
            Op::FreeForeign(i) => {
                let before = slab.len();
                let target = if live.is_empty() {
                    // Not the slab's memory at all.
                    &i as *const usize as usize
                } else if i % 3 == 0 {
                    // Past the slab's last possible object: never carved.
                    let last = live.iter().map(|(p, _)| p.as_ptr() as usize).max().unwrap();
                    last + stride * (cfg.max + 1)
                } else {
                    // Inside a live object, not at its start.
                    live[i % live.len()].0.as_ptr() as usize + 1 + (i % (stride - 1))
                };
                let target = NonNull::new(target as *mut u8).unwrap();
                // SAFETY: a pointer the slab never handed out: refused.
                let r = unsafe { slab.free(target) };
                prop_assert!(matches!(r, Err(MemError::ForeignPointer { .. })), "{:?}", r);
                prop_assert_eq!(slab.len(), before);
            }
        }
        prop_assert_eq!(slab.len(), live.len());
        prop_assert_eq!(slab.is_empty(), live.is_empty());
        let s = slab.stats();
        prop_assert_eq!(s.in_use, live.len());
        prop_assert!(s.capacity >= s.in_use && s.capacity <= s.max_capacity);
        prop_assert!(s.bytes_populated <= s.bytes_reserved);
    }
    for (p, f) in live.drain(..) {
        // SAFETY: as for Op::Free.
        let freed = unsafe {
            check(p.as_ptr(), cfg.size, f)?;
            slab.free(p)
        };
        prop_assert!(freed.is_ok(), "{:?}", freed);
    }
    prop_assert!(slab.is_empty());
    prop_assert!(slab.verify().is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(cases(160))]

    #[test]
    fn raw_slab_matches_model(cfg in slab_config(), ops in ops(120)) {
        raw_slab_run(&cfg, &ops)?;
    }
}

#[test]
fn raw_slab_edges() {
    // Capacities around the limits: zero everywhere is refused, a slab of
    // one object holds exactly one, usize::MAX objects do not fit.
    assert!(matches!(
        SlabBuilder::new(0).build_raw(8, 8),
        Err(MemError::InvalidSize { .. })
    ));
    let one = RawSlab::new(0, 8, 8, 1).unwrap();
    let p = one.alloc().unwrap();
    assert!(matches!(one.alloc(), Err(MemError::SlabFull { .. })));
    // SAFETY: handed out by `one`.
    unsafe { one.free(p).unwrap() };
    assert!(matches!(
        SlabBuilder::new(0).max_capacity(usize::MAX).build_raw(8, 8),
        Err(MemError::SizeOverflow { .. })
    ));
    assert!(matches!(
        SlabBuilder::new(0).capacity(1).build_raw(usize::MAX, 8),
        Err(MemError::SizeOverflow { .. })
    ));
    assert!(matches!(
        SlabBuilder::new(0).capacity(1).build_raw(8, 3),
        Err(MemError::InvalidAlignment { align: 3 })
    ));
    assert!(matches!(
        SlabBuilder::new(0).capacity(1).build_raw(8, PAGE * 2),
        Err(MemError::InvalidConfig(_))
    ));
    assert!(matches!(
        SlabBuilder::new(0)
            .capacity(1)
            .chunk_bytes(0)
            .build_raw(8, 8),
        Err(MemError::InvalidConfig(_))
    ));
}

// ---- Slab<T> ----------------------------------------------------------

#[derive(Clone, Debug)]
enum BoxOp {
    Alloc(u64),
    Drop(usize),
    IntoInner(usize),
    Leak(usize),
    Mutate(usize, u64),
}

fn box_ops(max: usize) -> impl Strategy<Value = Vec<BoxOp>> {
    proptest::collection::vec(
        prop_oneof![
            5 => any::<u64>().prop_map(BoxOp::Alloc),
            3 => any::<usize>().prop_map(BoxOp::Drop),
            1 => any::<usize>().prop_map(BoxOp::IntoInner),
            1 => any::<usize>().prop_map(BoxOp::Leak),
            1 => (any::<usize>(), any::<u64>()).prop_map(|(i, v)| BoxOp::Mutate(i, v)),
        ],
        0..max,
    )
}

/// A value aligned to a cache line that counts its drops.
#[repr(align(64))]
struct Wide(Tracked);

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn typed_slab_drops_each_value_once(
        capacity in 0usize..=4,
        extra in 0usize..=20,
        chunk in prop_oneof![Just(1usize), Just(PAGE), Just(PAGE + 1)],
        wide in any::<bool>(),
        ops in box_ops(100),
    ) {
        let census = Arc::new(Census::default());
        let max = capacity + extra;
        let builder = SlabBuilder::new(0).capacity(capacity).max_capacity(max).chunk_bytes(chunk);
        if max == 0 {
            prop_assert!(builder.build::<Tracked>().is_err());
            return Ok(());
        }
        let mut leaked = 0;
        let mut leaks: Vec<*mut Tracked> = Vec::new();
        let mut leaks_wide: Vec<*mut Wide> = Vec::new();
        if wide {
            let slab: Slab<Wide> = builder.build().unwrap();
            let mut live = Vec::new();
            for op in &ops {
                match *op {
                    BoxOp::Alloc(v) => match slab.try_alloc(Wide(census.make(v))) {
                        Ok(b) => {
                            prop_assert!(live.len() + leaked < max);
                            prop_assert_eq!(Slab::len(&slab), live.len() + leaked + 1);
                            prop_assert_eq!(numakit::mem::SlabBox::as_ptr(&b) as usize % 64, 0);
                            live.push((b, v));
                        }
                        // The value was dropped by the failed call.
                        Err(MemError::SlabFull { .. }) => prop_assert_eq!(live.len() + leaked, max),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    },
                    BoxOp::Drop(i) | BoxOp::IntoInner(i) | BoxOp::Leak(i) | BoxOp::Mutate(i, _)
                        if live.is_empty() => { let _ = i; }
                    BoxOp::Drop(i) => {
                        let (b, v) = live.swap_remove(i % live.len());
                        prop_assert_eq!(b.0.payload, v);
                        drop(b);
                    }
                    BoxOp::IntoInner(i) => {
                        let (b, v) = live.swap_remove(i % live.len());
                        let inner = numakit::mem::SlabBox::into_inner(b);
                        prop_assert_eq!(inner.0.payload, v);
                    }
                    BoxOp::Leak(i) => {
                        let (b, v) = live.swap_remove(i % live.len());
                        let r = numakit::mem::SlabBox::leak(b);
                        prop_assert_eq!(r.0.payload, v);
                        leaked += 1;
                        leaks_wide.push(r as *mut Wide);
                    }
                    BoxOp::Mutate(i, nv) => {
                        let n = live.len();
                        let (b, v) = &mut live[i % n];
                        prop_assert_eq!(b.0.payload, *v);
                        b.0.payload = nv;
                        *v = nv;
                    }
                }
                prop_assert_eq!(slab.len(), live.len() + leaked);
            }
            for (b, v) in &live {
                prop_assert_eq!(b.0.payload, *v);
            }
            drop(live);
            prop_assert_eq!(slab.len(), leaked);
            // Leaked values were never dropped; drop them by hand now,
            // while the slab still holds them.
            census.check(leaked)?;
            for r in leaks_wide.drain(..) {
                // SAFETY: a leaked value, alive in the slab, dropped once.
                unsafe { std::ptr::drop_in_place(r) };
            }
        } else {
            let slab: Slab<Tracked> = builder.build().unwrap();
            let mut live = Vec::new();
            for op in &ops {
                match *op {
                    BoxOp::Alloc(v) => match slab.try_alloc(census.make(v)) {
                        Ok(b) => {
                            prop_assert!(live.len() + leaked < max);
                            live.push((b, v));
                        }
                        Err(MemError::SlabFull { .. }) => prop_assert_eq!(live.len() + leaked, max),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    },
                    BoxOp::Drop(i) | BoxOp::IntoInner(i) | BoxOp::Leak(i) | BoxOp::Mutate(i, _)
                        if live.is_empty() => { let _ = i; }
                    BoxOp::Drop(i) => {
                        let (b, v) = live.swap_remove(i % live.len());
                        prop_assert_eq!(b.payload, v);
                        drop(b);
                    }
                    BoxOp::IntoInner(i) => {
                        let (b, v) = live.swap_remove(i % live.len());
                        prop_assert_eq!(numakit::mem::SlabBox::into_inner(b).payload, v);
                    }
                    BoxOp::Leak(i) => {
                        let (b, v) = live.swap_remove(i % live.len());
                        let r = numakit::mem::SlabBox::leak(b);
                        prop_assert_eq!(r.payload, v);
                        leaked += 1;
                        leaks.push(r as *mut Tracked);
                    }
                    BoxOp::Mutate(i, nv) => {
                        let n = live.len();
                        let (b, v) = &mut live[i % n];
                        prop_assert_eq!(b.payload, *v);
                        b.payload = nv;
                        *v = nv;
                    }
                }
                prop_assert_eq!(slab.len(), live.len() + leaked);
            }
            drop(live);
            prop_assert_eq!(slab.len(), leaked);
            census.check(leaked)?;
            for r in leaks.drain(..) {
                // SAFETY: a leaked value, alive in the slab, dropped once.
                unsafe { std::ptr::drop_in_place(r) };
            }
        }
        census.check(0)?;
    }

    #[test]
    fn zero_sized_slab_counts_its_values(
        max in 1usize..=40,
        ops in box_ops(100),
    ) {
        let slab: Slab<()> = SlabBuilder::new(0).max_capacity(max).build().unwrap();
        let mut live = Vec::new();
        for op in &ops {
            match *op {
                BoxOp::Alloc(_) => match slab.try_alloc(()) {
                    Ok(b) => {
                        prop_assert!(live.len() < max);
                        let a = numakit::mem::SlabBox::as_ptr(&b) as usize;
                        prop_assert!(live.iter().all(|o| numakit::mem::SlabBox::as_ptr(o) as usize != a),
                            "two live ZST boxes share a slot");
                        live.push(b);
                    }
                    Err(MemError::SlabFull { .. }) => prop_assert_eq!(live.len(), max),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                },
                BoxOp::Drop(i) | BoxOp::IntoInner(i) | BoxOp::Leak(i) | BoxOp::Mutate(i, _) => {
                    if !live.is_empty() {
                        let n = live.len();
                        drop(live.swap_remove(i % n));
                    }
                }
            }
            prop_assert_eq!(slab.len(), live.len());
        }
    }
}

// ---- NodeHeap ---------------------------------------------------------

#[derive(Clone, Debug)]
enum HeapOp {
    Alloc {
        size: usize,
        align_log: u32,
    },
    Free(usize),
    /// Free on the other thread.
    FreeRemote(usize),
    Grow(usize, usize),
    /// Shrink a live block to `size % (its size + 1)` bytes (0 included).
    Shrink(usize, usize),
    BoxValue(u64),
    DropBox(usize),
    Trim,
}

fn heap_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 1usize..=64,
        2 => 65usize..=2048,
        2 => 2049usize..=NodeHeap::MAX_CLASS_SIZE,
        // Every class boundary and one past it.
        2 => proptest::sample::select(
            NodeHeap::size_classes().flat_map(|s| [s, s + 1]).collect::<Vec<_>>()
        ),
        1 => (NodeHeap::MAX_CLASS_SIZE + 1)..=(NodeHeap::MAX_CLASS_SIZE + (300 << 10)),
    ]
}

fn heap_ops() -> impl Strategy<Value = Vec<HeapOp>> {
    proptest::collection::vec(
        prop_oneof![
            6 => (heap_size(), prop_oneof![8 => 0u32..=4, 1 => 5u32..=13])
                .prop_map(|(size, align_log)| HeapOp::Alloc { size, align_log }),
            3 => any::<usize>().prop_map(HeapOp::Free),
            2 => any::<usize>().prop_map(HeapOp::FreeRemote),
            2 => (any::<usize>(), heap_size()).prop_map(|(i, s)| HeapOp::Grow(i, s)),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(i, s)| HeapOp::Shrink(i, s)),
            2 => any::<u64>().prop_map(HeapOp::BoxValue),
            1 => any::<usize>().prop_map(HeapOp::DropBox),
            1 => Just(HeapOp::Trim),
        ],
        0..80,
    )
}

/// A block owned by the model: address, usable length, layout, fill.
#[derive(Clone, Copy, Debug)]
struct Block {
    addr: usize,
    len: usize,
    layout: Layout,
    fill: u8,
}

/// Blocks sent to the helper thread to be freed there.
struct Sent(Block);
// SAFETY: a block of a `Sync` heap, owned by whoever holds it.
unsafe impl Send for Sent {}

fn heap_run(ops: &[HeapOp]) -> Result<(), TestCaseError> {
    let heap = NodeHeap::new(0).unwrap();
    let census = Arc::new(Census::default());
    // The usable size of the block a `HeapBox<Tracked>` takes.
    let box_block = {
        let p = heap.allocate(Layout::new::<Tracked>()).unwrap();
        // SAFETY: just allocated with this layout.
        unsafe { heap.deallocate(p.cast(), Layout::new::<Tracked>()) };
        p.len()
    };
    let base = heap.stats();
    std::thread::scope(|s| -> Result<(), TestCaseError> {
        let (tx, rx) = std::sync::mpsc::channel::<Sent>();
        let heap_ref = &heap;
        let remote = s.spawn(move || -> Result<(), TestCaseError> {
            for Sent(b) in rx {
                // SAFETY: a live block handed to this thread, written with
                // `fill`, freed once with its layout.
                unsafe {
                    check(b.addr as *const u8, b.len, b.fill)?;
                    heap_ref.deallocate(NonNull::new_unchecked(b.addr as *mut u8), b.layout);
                }
            }
            Ok(())
        });
        let mut live: Vec<Block> = Vec::new();
        let mut ranges = Ranges::default();
        let mut boxes = Vec::new();
        let mut next_fill = 1u8;
        let mut fill_next = || {
            next_fill = next_fill.wrapping_add(1).max(1);
            next_fill
        };
        for op in ops {
            match *op {
                HeapOp::Alloc { size, align_log } => {
                    let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                    let p = heap
                        .allocate(layout)
                        .map_err(|e| TestCaseError::fail(format!("{layout:?}: {e}")))?;
                    let (addr, len) = (p.cast::<u8>().as_ptr() as usize, p.len());
                    prop_assert!(len >= size);
                    prop_assert_eq!(addr % layout.align(), 0);
                    ranges.insert(addr, len)?;
                    let f = fill_next();
                    // SAFETY: `len` usable bytes, fresh.
                    unsafe { fill(addr as *mut u8, len, f) };
                    live.push(Block {
                        addr,
                        len,
                        layout,
                        fill: f,
                    });
                }
                HeapOp::Free(i)
                | HeapOp::FreeRemote(i)
                | HeapOp::Grow(i, _)
                | HeapOp::Shrink(i, _)
                    if live.is_empty() =>
                {
                    let _ = i;
                }
                HeapOp::Free(i) => {
                    let b = live.swap_remove(i % live.len());
                    ranges.remove(b.addr, b.len);
                    // SAFETY: live, written with `fill`, freed once.
                    unsafe {
                        check(b.addr as *const u8, b.len, b.fill)?;
                        heap.deallocate(NonNull::new_unchecked(b.addr as *mut u8), b.layout);
                    }
                }
                HeapOp::FreeRemote(i) => {
                    let b = live.swap_remove(i % live.len());
                    ranges.remove(b.addr, b.len);
                    tx.send(Sent(b)).unwrap();
                }
                HeapOp::Grow(i, extra) => {
                    let n = live.len();
                    let b = &mut live[i % n];
                    let new =
                        Layout::from_size_align(b.layout.size() + extra, b.layout.align()).unwrap();
                    // SAFETY: live block with its layout; `new` is not smaller.
                    let q = unsafe {
                        heap.grow(NonNull::new_unchecked(b.addr as *mut u8), b.layout, new)
                    }
                    .map_err(|e| TestCaseError::fail(format!("grow: {e}")))?;
                    let (addr, len) = (q.cast::<u8>().as_ptr() as usize, q.len());
                    prop_assert!(len >= new.size());
                    prop_assert_eq!(addr % new.align(), 0);
                    // The old contents survive the move.
                    // SAFETY: the first `old.size()` bytes were copied.
                    unsafe { check(addr as *const u8, b.layout.size(), b.fill)? };
                    ranges.remove(b.addr, b.len);
                    ranges.insert(addr, len)?;
                    // SAFETY: `len` usable bytes, ours.
                    unsafe { fill(addr as *mut u8, len, b.fill) };
                    *b = Block {
                        addr,
                        len,
                        layout: new,
                        fill: b.fill,
                    };
                }
                HeapOp::Shrink(i, size) => {
                    let n = live.len();
                    let b = &mut live[i % n];
                    let new =
                        Layout::from_size_align(size % (b.layout.size() + 1), b.layout.align())
                            .unwrap();
                    // SAFETY: live block with its layout; `new` is not larger.
                    let q = unsafe {
                        heap.shrink(NonNull::new_unchecked(b.addr as *mut u8), b.layout, new)
                    }
                    .map_err(|e| TestCaseError::fail(format!("shrink: {e}")))?;
                    let (addr, len) = (q.cast::<u8>().as_ptr() as usize, q.len());
                    prop_assert!(len >= new.size());
                    prop_assert_eq!(addr % new.align(), 0);
                    // SAFETY: the first `new.size()` bytes were kept.
                    unsafe { check(addr as *const u8, new.size(), b.fill)? };
                    ranges.remove(b.addr, b.len);
                    ranges.insert(addr, len)?;
                    // SAFETY: `len` usable bytes, ours.
                    unsafe { fill(addr as *mut u8, len, b.fill) };
                    *b = Block {
                        addr,
                        len,
                        layout: new,
                        fill: b.fill,
                    };
                }
                HeapOp::BoxValue(v) => {
                    let b = heap.try_alloc_box(census.make(v)).unwrap();
                    let zst = heap.try_alloc_box(()).unwrap();
                    boxes.push((b, zst, v));
                }
                HeapOp::DropBox(i) => {
                    if !boxes.is_empty() {
                        let n = boxes.len();
                        let (b, _, v) = boxes.swap_remove(i % n);
                        prop_assert_eq!(b.payload, v);
                        if i % 2 == 0 {
                            drop(b);
                        } else {
                            prop_assert_eq!(numakit::mem::HeapBox::into_inner(b).payload, v);
                        }
                    }
                }
                HeapOp::Trim => {
                    heap.trim()
                        .map_err(|e| TestCaseError::fail(format!("trim: {e}")))?;
                }
            }
        }
        // Trimming never touches a live block.
        heap.trim()
            .map_err(|e| TestCaseError::fail(format!("trim: {e}")))?;
        for b in &live {
            // SAFETY: live blocks written with `fill`.
            unsafe { check(b.addr as *const u8, b.len, b.fill)? };
        }
        for (b, _, v) in &boxes {
            prop_assert_eq!(b.payload, *v);
        }
        drop(tx);
        remote.join().unwrap()?;
        // Everything the model holds is what the heap counts as in use
        // (the boxes of Tracked are one class block each; ZSTs take none).
        let st = heap.stats();
        let box_bytes = boxes.len() * box_block;
        let model: usize = live.iter().map(|b| b.len).sum::<usize>() + box_bytes;
        prop_assert_eq!(
            st.bytes_in_use - base.bytes_in_use,
            model,
            "in-use bytes vs the model"
        );
        let large = live
            .iter()
            .filter(|b| {
                // Zero-sized blocks take no memory; the rest past the
                // classes' size or alignment get mappings of their own.
                b.layout.size() > 0
                    && (b.layout.size() > NodeHeap::MAX_CLASS_SIZE || b.layout.align() > PAGE)
            })
            .count();
        prop_assert_eq!(st.large_in_use, large as u64);
        for b in live.drain(..) {
            // SAFETY: as in Free.
            unsafe { heap.deallocate(NonNull::new_unchecked(b.addr as *mut u8), b.layout) };
        }
        drop(boxes);
        let end = heap.stats();
        prop_assert_eq!(end.bytes_in_use, base.bytes_in_use);
        prop_assert_eq!(end.large_in_use, 0);
        Ok(())
    })?;
    census.check(0)
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn node_heap_matches_model(ops in heap_ops()) {
        heap_run(&ops)?;
    }
}

// ---- Arena and SharedArena ----------------------------------------------

#[derive(Clone, Debug)]
enum ArenaOp {
    Alloc { size: usize, align_log: u32 },
    Reset,
    Trim,
}

#[derive(Clone, Debug)]
struct ArenaConfig {
    capacity: usize,
    populate: Populate,
}

fn arena_config() -> impl Strategy<Value = ArenaConfig> {
    (
        prop_oneof![
            Just(1usize),
            Just(PAGE),
            Just(PAGE + 1),
            Just(3 * PAGE),
            Just(64 << 10),
            Just((2 << 20) + PAGE),
        ],
        prop_oneof![
            Just(Populate::Now),
            Just(Populate::OnDemand),
            Just(Populate::Lazy)
        ],
    )
        .prop_map(|(capacity, populate)| ArenaConfig { capacity, populate })
}

fn arena_ops() -> impl Strategy<Value = Vec<ArenaOp>> {
    proptest::collection::vec(
        prop_oneof![
            12 => (
                prop_oneof![
                    3 => 0usize..=64,
                    3 => 65usize..=3000,
                    1 => 3000usize..=(3 << 20),
                    1 => Just(usize::MAX),
                    1 => Just(isize::MAX as usize),
                ],
                prop_oneof![6 => 0u32..=4, 2 => 5u32..=12, 1 => Just(20u32)],
            )
                .prop_map(|(size, align_log)| ArenaOp::Alloc { size, align_log }),
            1 => Just(ArenaOp::Reset),
            1 => Just(ArenaOp::Trim),
        ],
        0..80,
    )
}

/// Where `size` bytes aligned to `align` land at bump offset `cur`, if they
/// fit a region of `cap` bytes at `base`.
fn model_place(
    base: usize,
    cur: usize,
    size: usize,
    align: usize,
    cap: usize,
) -> Option<(usize, usize)> {
    let aligned = (base + cur).checked_next_multiple_of(align)? - base;
    let end = aligned.checked_add(size)?;
    (end <= cap).then_some((aligned, end))
}

fn arena_run(cfg: &ArenaConfig, ops: &[ArenaOp]) -> Result<(), TestCaseError> {
    let mut arena = Arena::builder(0)
        .capacity(cfg.capacity)
        .populate(cfg.populate)
        .pages(PageKind::Normal)
        .build()
        .map_err(|e| TestCaseError::fail(format!("{cfg:?}: {e}")))?;
    let cap = arena.capacity();
    prop_assert_eq!(cap, cfg.capacity.next_multiple_of(PAGE));
    let start = arena.used();
    let base = arena.try_alloc_raw(0, 1).unwrap().as_ptr() as usize - start;
    prop_assert_eq!(base % PAGE, 0);
    let mut cur = start;
    let mut live: Vec<(usize, usize, u8)> = Vec::new();
    let mut ranges = Ranges::default();
    let mut f = 0u8;
    for op in ops {
        match *op {
            ArenaOp::Alloc { size, align_log } => {
                let align = 1usize << align_log;
                let expect = model_place(base, cur, size, align, cap);
                match arena.try_alloc_raw(size, align) {
                    Ok(p) => {
                        let a = p.as_ptr() as usize;
                        let Some((off, end)) = expect else {
                            return Err(TestCaseError::fail(format!(
                                "{size} bytes aligned {align} at {cur} of {cap} should not fit"
                            )));
                        };
                        prop_assert_eq!(a - base, off);
                        prop_assert_eq!(a % align, 0);
                        prop_assert!(arena.contains(p.as_ptr()) || size == 0);
                        ranges.insert(a, size)?;
                        f = f.wrapping_add(1).max(1);
                        // SAFETY: `size` fresh bytes.
                        unsafe { fill(p.as_ptr(), size, f) };
                        live.push((a, size, f));
                        cur = end;
                    }
                    Err(MemError::Exhausted {
                        remaining,
                        requested,
                        capacity,
                        ..
                    }) => {
                        prop_assert!(
                            expect.is_none(),
                            "{} bytes aligned {} fit at {} but were refused",
                            size,
                            align,
                            cur
                        );
                        prop_assert_eq!((remaining, requested, capacity), (cap - cur, size, cap));
                    }
                    Err(MemError::InvalidSize { .. }) => {
                        prop_assert!(Layout::from_size_align(size, align).is_err());
                    }
                    Err(e) => {
                        return Err(TestCaseError::fail(format!("alloc {size}/{align}: {e}")))
                    }
                }
            }
            ArenaOp::Reset => {
                for &(a, len, fl) in &live {
                    // SAFETY: live allocations, written with `fl`.
                    unsafe { check(a as *const u8, len, fl)? };
                }
                live.clear();
                ranges = Ranges::default();
                arena.reset();
                cur = start;
            }
            ArenaOp::Trim => {
                arena
                    .trim()
                    .map_err(|e| TestCaseError::fail(format!("trim: {e}")))?;
                // Nothing below the bump pointer is given back.
                for &(a, len, fl) in &live {
                    // SAFETY: as above.
                    unsafe { check(a as *const u8, len, fl)? };
                }
            }
        }
        prop_assert_eq!(arena.used(), cur);
        prop_assert_eq!(arena.remaining(), cap - cur);
    }
    for &(a, len, fl) in &live {
        // SAFETY: as above.
        unsafe { check(a as *const u8, len, fl)? };
    }
    let st = arena.stats().unwrap();
    prop_assert_eq!(st.used, cur);
    if cfg.populate == Populate::Lazy {
        // Pages the bump pointer skipped (alignment) were never written:
        // not present, which `verify` reports; every present one is on 0.
        let p = arena.placement().unwrap();
        prop_assert_eq!(p.on(numakit::NodeId::new(0)), p.pages() - p.not_present());
    } else {
        prop_assert!(arena.verify().is_ok());
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(160))]

    #[test]
    fn arena_matches_model(cfg in arena_config(), ops in arena_ops()) {
        arena_run(&cfg, &ops)?;
    }

    #[test]
    fn shared_arena_two_threads_never_overlap(
        capacity in prop_oneof![Just(PAGE), Just(64usize << 10), Just((2 << 20) + PAGE)],
        populate in prop_oneof![Just(Populate::Now), Just(Populate::OnDemand)],
        sizes in proptest::collection::vec((0usize..=600, 0u32..=7), 2..120),
    ) {
        let mut arena = Arena::builder(0).capacity(capacity).populate(populate).build_shared().unwrap();
        let start = arena.used();
        for round in 0..2 {
            let (a, b) = sizes.split_at(sizes.len() / 2);
            let run = |part: &[(usize, u32)], tag: u8| -> Vec<(usize, usize, u8)> {
                let mut got = Vec::new();
                for (i, &(size, align_log)) in part.iter().enumerate() {
                    let align = 1 << align_log;
                    if let Ok(p) = arena.try_alloc_raw(size, align) {
                        assert_eq!(p.as_ptr() as usize % align, 0);
                        let fl = tag.wrapping_add(i as u8 * 2);
                        // SAFETY: `size` fresh bytes, this thread's.
                        unsafe { fill(p.as_ptr(), size, fl) };
                        got.push((p.as_ptr() as usize, size, fl));
                    }
                }
                got
            };
            let (ga, gb) = std::thread::scope(|s| {
                let ta = s.spawn(|| run(a, 1));
                let tb = s.spawn(|| run(b, 2));
                (ta.join().unwrap(), tb.join().unwrap())
            });
            let mut ranges = Ranges::default();
            for &(p, len, fl) in ga.iter().chain(&gb) {
                ranges.insert(p, len)?;
                // SAFETY: written above, alive until reset.
                unsafe { check(p as *const u8, len, fl)? };
            }
            // The allocations are packed below the bump pointer: their
            // bytes, plus alignment gaps, add up to no more than `used`.
            let bytes: usize = ga.iter().chain(&gb).map(|&(_, len, _)| len).sum();
            prop_assert!(start + bytes <= arena.used(), "{} + {} bytes above used {}", start, bytes, arena.used());
            prop_assert!(arena.used() <= arena.capacity());
            prop_assert!(arena.verify().is_ok(), "round {}", round);
            arena.reset();
            prop_assert!(arena.trim().is_ok());
        }
    }
}

#[test]
fn arena_edges_exact_fit_and_refusals() {
    // A one-page arena filled to its last byte, then refused one more.
    let mut arena = Arena::new(0, 1).unwrap();
    assert_eq!(arena.capacity(), PAGE);
    let room = arena.remaining();
    let all = arena.try_alloc_raw(room, 1).unwrap();
    // SAFETY: `room` fresh bytes.
    unsafe { fill(all.as_ptr(), room, 7) };
    assert_eq!(arena.remaining(), 0);
    assert!(matches!(
        arena.try_alloc_raw(1, 1),
        Err(MemError::Exhausted { remaining: 0, .. })
    ));
    // Zero bytes still fit at the very end.
    assert!(arena.try_alloc_raw(0, 1).is_ok());
    arena.reset();
    assert_eq!(arena.remaining(), room);
    assert!(matches!(
        arena.try_alloc_raw(room + 1, 1),
        Err(MemError::Exhausted { .. })
    ));
    for (size, align) in [(usize::MAX, 1), (1, 0), (1, 3), (8, 1 << 63)] {
        let before = arena.used();
        assert!(arena.try_alloc_raw(size, align).is_err(), "{size} {align}");
        assert_eq!(arena.used(), before);
    }
    assert!(matches!(
        Arena::new(0, 0),
        Err(MemError::InvalidSize { .. })
    ));
    assert!(Arena::new(0, usize::MAX).is_err());
}

// ---- NodeBox ----------------------------------------------------------

#[derive(Clone, Debug)]
enum NodeBoxOp {
    Small(u64),
    Large(u64),
    Zst,
    Drop(usize),
    IntoInner(usize),
}

enum Any {
    Small(NodeBox<Tracked>, u64),
    Large(NodeBox<(Tracked, [u8; 3 * PAGE])>, u64),
    Zst(NodeBox<()>),
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn node_box_drops_each_value_once(ops in proptest::collection::vec(prop_oneof![
        4 => any::<u64>().prop_map(NodeBoxOp::Small),
        1 => any::<u64>().prop_map(NodeBoxOp::Large),
        1 => Just(NodeBoxOp::Zst),
        3 => any::<usize>().prop_map(NodeBoxOp::Drop),
        1 => any::<usize>().prop_map(NodeBoxOp::IntoInner),
    ], 0..40)) {
        let census = Arc::new(Census::default());
        let mut live: Vec<Any> = Vec::new();
        let mut ranges = Ranges::default();
        for op in &ops {
            match *op {
                NodeBoxOp::Small(v) => {
                    let b = NodeBox::new(0, census.make(v)).unwrap();
                    ranges.insert(&*b as *const Tracked as usize, std::mem::size_of::<Tracked>())?;
                    prop_assert!(b.verify().is_ok());
                    live.push(Any::Small(b, v));
                }
                NodeBoxOp::Large(v) => {
                    let b = NodeBox::new(0, (census.make(v), [v as u8; 3 * PAGE])).unwrap();
                    ranges.insert(&*b as *const _ as usize, std::mem::size_of_val(&*b))?;
                    prop_assert!(b.mapped_bytes() >= std::mem::size_of_val(&*b));
                    live.push(Any::Large(b, v));
                }
                NodeBoxOp::Zst => live.push(Any::Zst(NodeBox::new(0, ()).unwrap())),
                NodeBoxOp::Drop(i) | NodeBoxOp::IntoInner(i) if !live.is_empty() => {
                    let into = matches!(op, NodeBoxOp::IntoInner(_));
                    let n = live.len();
                    match live.swap_remove(i % n) {
                        Any::Small(b, v) => {
                            prop_assert_eq!(b.payload, v);
                            ranges.remove(&*b as *const Tracked as usize, std::mem::size_of::<Tracked>());
                            if into { prop_assert_eq!(b.into_inner().payload, v) } else { drop(b) }
                        }
                        Any::Large(b, v) => {
                            prop_assert_eq!(b.0.payload, v);
                            prop_assert!(b.1.iter().all(|&x| x == v as u8));
                            ranges.remove(&*b as *const _ as usize, std::mem::size_of_val(&*b));
                            if into { prop_assert_eq!(b.into_inner().0.payload, v) } else { drop(b) }
                        }
                        Any::Zst(b) => {
                            if into { b.into_inner() } else { drop(b) }
                        }
                    }
                }
                NodeBoxOp::Drop(_) | NodeBoxOp::IntoInner(_) => {}
            }
        }
        for b in &live {
            match b {
                Any::Small(b, v) => prop_assert_eq!(b.payload, *v),
                Any::Large(b, v) => prop_assert_eq!(b.0.payload, *v),
                Any::Zst(_) => {}
            }
        }
        drop(live);
        census.check(0)?;
    }
}
