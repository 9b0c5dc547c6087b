//! [`NodeLocal`]: a `#[global_allocator]` that serves every thread from a
//! heap on the node it runs on, with an explicit policy for an exhausted
//! node, and per-node figures ([`NodeLocal::stats`]).
//!
//! # Pieces
//!
//! - One [`HeapCore`] per node, process-wide (every `NodeLocal` value
//!   shares them: the policy is the only thing a value holds), mapped on
//!   the first allocation for that node and never dropped.
//! - An address registry: the heaps' segments are aligned to [`GRAIN`]
//!   (1 MiB) and every grain they cover records the node, so a small
//!   block's heap is found from its address with two loads. Large blocks
//!   (own mappings) are not in the registry: their node is read from the
//!   mapping's policy with `get_mempolicy(MPOL_F_ADDR)` (one system call,
//!   next to the `munmap` that frees them).
//! - The calling thread's node, cached in a `const` thread-local without
//!   destructor and read again with `getcpu(2)` every
//!   [`NodeLocal::REFRESH_EVERY`] allocations (and frees past the fast
//!   path).
//! - A fast path: the thread-local (the heap caches' table) also holds the
//!   thread's cache of its node's heap, so a small allocation is one
//!   thread-local read and a pop, and a small free is the registry's two
//!   loads, one thread-local read and a push, while the node is not due
//!   to be read again. Everything else (refills, detours, other nodes'
//!   blocks, large blocks) takes the general path.

use super::core::HeapCore;
use super::os::{self, OsFail};
use super::{cache, classes, stats_of, HeapStats};
use crate::topology::NodeId;
use std::alloc::{GlobalAlloc, Layout};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU16, AtomicU64, Ordering};

/// Nodes served: ids `0..MAX_NODES` (the kernel's largest `MAX_NUMNODES`).
const MAX_NODES: usize = 1024;

/// The granule of the address registry; segments of tracked heaps are
/// aligned to it.
pub(crate) const GRAIN: usize = 1 << GRAIN_SHIFT;
const GRAIN_SHIFT: u32 = 20;
/// User addresses below 2^47 (4-level paging; 5-level kernels only hand
/// out higher addresses to `mmap` calls that ask for them).
const ADDR_BITS: u32 = 47;
const LEAF_BITS: u32 = 14;
const LEAF_LEN: usize = 1 << LEAF_BITS;
const TOP_LEN: usize = 1 << (ADDR_BITS - GRAIN_SHIFT - LEAF_BITS);

/// Allocations between two `getcpu` calls of an unpinned thread.
const REFRESH_EVERY: u32 = NodeLocal::REFRESH_EVERY;
/// Allocations a thread sends straight to the node it fell back to
/// (under [`OnExhausted::Nearest`]) before it tries its own node again;
/// its frees of its own node's small blocks past the fast path count
/// too.
const DETOUR_FOR: u32 = 256;

/// Registry leaves: `node + 1` per grain, 0 for "not a segment of ours".
static TOP: [AtomicPtr<AtomicU16>; TOP_LEN] = [const { AtomicPtr::new(ptr::null_mut()) }; TOP_LEN];
/// The node heaps, published once.
static HEAPS: [AtomicPtr<HeapCore>; MAX_NODES] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_NODES];
/// Nodes that can never have a heap: absent, or without memory.
static NO_HEAP: [AtomicBool; MAX_NODES] = [const { AtomicBool::new(false) }; MAX_NODES];
/// Allocations that wanted the node and were served by another one.
static FALLBACKS: [AtomicU64; MAX_NODES] = [const { AtomicU64::new(0) }; MAX_NODES];
static FALLBACK_BYTES: [AtomicU64; MAX_NODES] = [const { AtomicU64::new(0) }; MAX_NODES];
/// Allocations refused (null) on behalf of the node.
static FAILURES: [AtomicU64; MAX_NODES] = [const { AtomicU64::new(0) }; MAX_NODES];

/// Record that `[base, base + len)`, a segment starting on a [`GRAIN`]
/// boundary, belongs to `node`'s heap. A grain whose leaf cannot be mapped
/// stays unknown, and blocks in it are found with `get_mempolicy`.
pub(crate) fn note_segment(base: usize, len: usize, node: u32) {
    debug_assert!(base.is_multiple_of(GRAIN));
    let Some(tag) = node.checked_add(1).and_then(|t| u16::try_from(t).ok()) else {
        return;
    };
    let first = base >> GRAIN_SHIFT;
    let last = (base + len - 1) >> GRAIN_SHIFT;
    for grain in first..=last {
        if let Some(slot) = slot(grain, true) {
            slot.store(tag, Ordering::Release);
        }
    }
}

/// The registry entry of grain number `grain`, if its leaf is mapped.
#[inline(always)]
fn find_slot(grain: usize) -> Option<&'static AtomicU16> {
    let leaf = TOP.get(grain >> LEAF_BITS)?.load(Ordering::Acquire);
    if leaf.is_null() {
        return None;
    }
    // SAFETY: a published leaf is a zeroed mapping of LEAF_LEN AtomicU16s
    // (zero is a valid AtomicU16), never unmapped.
    Some(unsafe { &*leaf.add(grain & (LEAF_LEN - 1)) })
}

/// The registry entry of grain number `grain`; with `create`, the leaf is
/// mapped when missing.
fn slot(grain: usize, create: bool) -> Option<&'static AtomicU16> {
    if !create {
        return find_slot(grain);
    }
    let top = TOP.get(grain >> LEAF_BITS)?;
    let mut leaf = top.load(Ordering::Acquire);
    if leaf.is_null() {
        let len = LEAF_LEN * std::mem::size_of::<AtomicU16>();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let fresh = crate::sys::mem::mmap_anonymous(len, rw, 0).ok()?;
        match top.compare_exchange(
            ptr::null_mut(),
            fresh.as_ptr().cast(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => leaf = fresh.as_ptr().cast(),
            Err(winner) => {
                // SAFETY: our fresh mapping, never published.
                unsafe { os::unmap(fresh, len) };
                leaf = winner;
            }
        }
    }
    // SAFETY: a published leaf is a zeroed mapping of LEAF_LEN AtomicU16s
    // (zero is a valid AtomicU16), never unmapped.
    Some(unsafe { &*leaf.add(grain & (LEAF_LEN - 1)) })
}

/// The node of a small block's heap, from the registry.
#[inline(always)]
fn registered_node(p: *mut u8) -> Option<u32> {
    registered_tag(p).checked_sub(1)
}

/// The registry tag of the grain holding `p`: its segment's node + 1, or
/// 0 when no segment of ours holds it (any address, null included).
#[inline(always)]
fn registered_tag(p: *mut u8) -> u32 {
    find_slot(p as usize >> GRAIN_SHIFT).map_or(0, |s| u32::from(s.load(Ordering::Acquire)))
}

/// The node a mapping of ours is bound to, from its memory policy.
fn bound_node(p: *mut u8) -> Option<u32> {
    let mut mask = [0 as libc::c_ulong; MAX_NODES / libc::c_ulong::BITS as usize];
    let mode = crate::sys::mem::get_mempolicy(&mut mask, p, crate::sys::mem::MPOL_F_ADDR).ok()?;
    if mode != crate::sys::mem::MPOL_BIND {
        return None;
    }
    let bits = libc::c_ulong::BITS as usize;
    let (w, word) = mask.iter().enumerate().find(|(_, w)| **w != 0)?;
    Some((w * bits + word.trailing_zeros() as usize) as u32)
}

/// The node of the heap that handed out `p` for `layout`.
#[inline]
fn owner_of(p: *mut u8, layout: Layout) -> Option<u32> {
    if classes::class_for(layout.size(), layout.align()).is_some() {
        // Small blocks are always in a segment; the fallback covers a
        // registry leaf that could not be mapped.
        registered_node(p).or_else(|| bound_node(p))
    } else {
        bound_node(p)
    }
}

/// The heap of `node` if it has been mapped.
#[inline]
fn published(node: u32) -> Option<&'static HeapCore> {
    let p = HEAPS.get(node as usize)?.load(Ordering::Acquire);
    // SAFETY: published heaps are never destroyed.
    NonNull::new(p).map(|p| unsafe { &*p.as_ptr() })
}

/// The heap of `node`, mapped on first use.
fn heap(node: u32) -> Result<&'static HeapCore, OsFail> {
    let Some(slot) = HEAPS.get(node as usize) else {
        return Err(OsFail::Mbind(libc::EINVAL));
    };
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: published below, never destroyed.
        return Ok(unsafe { &*p });
    }
    heap_slow(node, slot)
}

#[cold]
fn heap_slow(node: u32, slot: &'static AtomicPtr<HeapCore>) -> Result<&'static HeapCore, OsFail> {
    if NO_HEAP[node as usize].load(Ordering::Relaxed) {
        return Err(OsFail::Mbind(libc::EINVAL));
    }
    let fresh = match HeapCore::create_with(node, true) {
        Ok(h) => h,
        Err(fail) => {
            // Absent (no meminfo, `mbind` refuses) or memoryless (no
            // memory at all): remembered, so later calls cost nothing.
            let never = match fail {
                OsFail::Meminfo(libc::ENOENT) | OsFail::Mbind(libc::EINVAL) => true,
                OsFail::NoMemory { .. } => matches!(os::read_node_memory(node), Ok((0, _))),
                _ => false,
            };
            if never {
                NO_HEAP[node as usize].store(true, Ordering::Relaxed);
            }
            return Err(fail);
        }
    };
    Ok(HeapCore::publish(slot, fresh))
}

/// The node the calling thread runs on (cached, in the thread's table of
/// heap caches: `const`, no destructor, so usable while the thread is
/// torn down and from inside the allocator), and the node to serve from
/// when a detour is in force.
#[inline]
fn here() -> (u32, Option<u32>) {
    cache::with_thread(|t| {
        let node = current_node(t);
        let h = &t.here;
        let detour = match h.detour_left.get() {
            0 => None,
            n => {
                h.detour_left.set(n - 1);
                Some(h.detour.get())
            }
        };
        (node, detour)
    })
    .unwrap_or_else(|| (read_node(0), None))
}

/// The node the thread `t` runs on, read again when due (one slow path
/// of [`REFRESH_EVERY`]).
#[inline]
fn current_node(t: &cache::ThreadSlots) -> u32 {
    let h = &t.here;
    if h.left.get() == 0 {
        let old = h.node.get();
        let node = read_node(old);
        if node != old {
            // A detour was for the old node's exhaustion, the home cache
            // is the old node's heap's, and the thread's caches are away
            // from their nodes now (frees go back).
            h.detour_left.set(0);
            t.moved();
        }
        h.node.set(node);
        h.left.set(REFRESH_EVERY);
    }
    h.left.set(h.left.get() - 1);
    h.node.get()
}

/// Send the calling thread's next allocations to `to` for a while.
fn set_detour(to: u32) {
    let _ = cache::with_thread(|t| {
        // The fast path serves the home node: off while the detour lasts.
        t.clear_home();
        t.here.detour.set(to);
        t.here.detour_left.set(DETOUR_FOR);
    });
}

fn read_node(previous: u32) -> u32 {
    match crate::sys::sched::getcpu() {
        Ok((_, node)) => node,
        // The kernel cannot say: keep what we knew, else node 0.
        Err(_) if previous != u32::MAX => previous,
        Err(_) => 0,
    }
}

/// What a [`NodeLocal`] does when the node an allocation is for cannot
/// give the memory (it is exhausted, or has no memory at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnExhausted {
    /// Fail: print a line naming the node and its free memory on stderr,
    /// and return null, which Rust answers with its allocation-error
    /// handler (`memory allocation of N bytes failed`, then abort) — or,
    /// for fallible calls such as `Vec::try_reserve`, an error.
    Strict,
    /// Take the memory from the next node by distance (ties: lower id)
    /// that can give it, and count it in [`NodeLocalNodeStats::fallbacks`];
    /// null only when no node can.
    Nearest,
}

/// A `#[global_allocator]` that gives each thread memory on the node it
/// runs on.
///
/// ```
/// use numakit::mem::NodeLocal;
///
/// #[global_allocator]
/// static ALLOC: NodeLocal = NodeLocal::strict();
///
/// fn main() {
///     let handles: Vec<_> = (0..4)
///         .map(|i| std::thread::spawn(move || vec![i as u8; 1 << 20]))
///         .collect();
///     for h in handles {
///         assert_eq!(h.join().unwrap().len(), 1 << 20);
///     }
///     let stats = NodeLocal::stats();
///     println!("{stats}");
///     assert_eq!(stats.fallbacks(), 0); // strict never falls back
/// }
/// ```
///
/// # Where memory comes from
///
/// Each node has one heap (a [`NodeHeap`](super::NodeHeap)'s machinery:
/// size classes, thread caches, node-bound segments, large blocks in
/// mappings of their own, all bound with `mbind(MPOL_BIND,
/// MPOL_MF_STRICT)` and populated after a check of the node's free
/// memory), shared by every `NodeLocal` of the process. An allocation goes
/// to the heap of the node the calling thread runs on:
///
/// - the node is read with `getcpu(2)` on the thread's first allocation and
///   again every [`REFRESH_EVERY`](Self::REFRESH_EVERY) allocations; numakit's pinning
///   ([`pin_to_node`](crate::sched::pin_to_node) and friends) reads it at
///   once, so a pinned thread's next allocation is on its node; an
///   unpinned thread gets the node of the CPU it was on at the last
///   reading ([`NodeLocal::refresh`] reads it now);
/// - **a thread that moves keeps its old blocks where they are**: blocks
///   are never migrated; its next allocations follow it once the node is
///   read again;
/// - a free, from any thread, goes back to the heap that owns the block
///   (found from the address): a thread on another node pushes it on the
///   owner's remote list, which the owner hands out again;
/// - `realloc` keeps the block when the new size fits it, and otherwise
///   moves it to a new block **on the node that owned the old one** (the
///   policy below applies to that node).
///
/// # No silent fallback
///
/// A global allocator cannot return an error, so what happens when the
/// node is exhausted is chosen at construction:
///
/// - [`NodeLocal::strict`]: null, after a line on stderr naming the node,
///   the request and the node's free memory (written with `write(2)` from
///   a stack buffer: nothing is allocated);
/// - [`NodeLocal::nearest`]: the next node by distance that can give the
///   memory; every such allocation is counted in the stats. After a
///   fallback the thread's next 256 allocations go straight to that node,
///   then its own node is tried again (sooner when the thread meanwhile
///   frees blocks of its own node, which gives that node memory back).
///
/// A **memoryless node** (CPUs without memory) is treated as exhausted:
/// under `strict` a thread running there gets null (and the message says
/// the node has no memory) — the nearest node with memory is used only
/// with `nearest`, where each such allocation is a counted fallback.
/// Nodes ≥ 1024 are treated as memoryless.
///
/// Requests that cannot be mapped at all (larger than `isize::MAX` once
/// rounded to pages) get null under both policies, without a message.
///
/// # Inside the allocator
///
/// Nothing allocates through the global allocator: heaps and the address
/// registry are mapped with raw `mmap`, the node's free memory and the
/// distances are read from sysfs with `open`/`read` into stack buffers,
/// thread caches are found through `const` thread-locals without
/// destructors (released by a `pthread` key destructor). Fork while
/// another thread is inside the allocator is not supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeLocal {
    policy: OnExhausted,
    quiet: bool,
}

impl NodeLocal {
    /// Allocations (and frees past the fast path) between two readings of
    /// an unpinned thread's node (`getcpu(2)`).
    pub const REFRESH_EVERY: u32 = 1024;

    /// Memory only from the calling thread's node; null (and a message)
    /// when it cannot give it.
    pub const fn strict() -> Self {
        NodeLocal::with_policy(OnExhausted::Strict)
    }

    /// Memory from the calling thread's node, or, when it cannot give it,
    /// from the nearest node that can (counted).
    pub const fn nearest() -> Self {
        NodeLocal::with_policy(OnExhausted::Nearest)
    }

    /// The same allocator with `policy`.
    pub const fn with_policy(policy: OnExhausted) -> Self {
        NodeLocal {
            policy,
            quiet: false,
        }
    }

    /// The same allocator without the line on stderr when a node cannot
    /// give the memory: for a caller that reports the null itself, in its
    /// own words (a preloaded `malloc` names its environment variables,
    /// and writes only to the stderr the program started with). The
    /// failure is still counted in [`NodeLocalNodeStats::failures`].
    pub const fn quiet(self) -> Self {
        NodeLocal {
            policy: self.policy,
            quiet: true,
        }
    }

    /// Give the pages of every chunk whose blocks are all free back to the
    /// OS, in every node's heap, as [`NodeHeap::trim`](super::NodeHeap::trim)
    /// does for one: the calling thread's cached blocks count as free,
    /// other threads' caches keep theirs. The chunks stay reserved and
    /// bound to their node. Returns the bytes given back.
    ///
    /// Nothing here allocates through the global allocator, so a
    /// `malloc_trim` built on it may run inside the allocator's callers.
    ///
    /// # Errors
    /// [`MemError::Os`](crate::mem::MemError::Os) when `madvise` refuses,
    /// or a node cannot give the few pages of scratch memory the sort of
    /// its free lists needs; the heaps before it were trimmed.
    pub fn trim() -> Result<usize, crate::mem::MemError> {
        let mut released = 0;
        for node in 0..MAX_NODES as u32 {
            if let Some(core) = published(node) {
                released += core
                    .trim()
                    .map_err(|f| f.into_mem_error(NodeId::new(node)))?;
            }
        }
        Ok(released)
    }

    /// What this allocator does on an exhausted node.
    pub const fn policy(&self) -> OnExhausted {
        self.policy
    }

    /// The node the calling thread's next allocation is for (its cached
    /// node; see "Where memory comes from").
    pub fn current_node() -> NodeId {
        cache::with_thread(|t| t.here.node.get())
            .filter(|&n| n != u32::MAX)
            .map_or_else(|| NodeId::new(read_node(0)), NodeId::new)
    }

    /// Read the calling thread's node now (a `getcpu` call), for a thread
    /// that was just moved and wants its next allocations on its new node
    /// without waiting for the periodic reading. numakit's pinning
    /// ([`pin_to_node`](crate::sched::pin_to_node),
    /// [`Pin::apply`](crate::sched::Pin::apply) and the guard's drop) does
    /// this itself. When the node changed, the thread's heap caches treat
    /// it as remote from then on: its frees go back to the owning heaps.
    pub fn refresh() {
        let _ = cache::with_thread(|t| {
            let h = &t.here;
            let node = read_node(h.node.get());
            if node != h.node.get() {
                t.clear_home();
                if h.node.get() != u32::MAX {
                    // Blocks freed from now on are remote frees for the
                    // old node's heap, not kept in this thread's cache.
                    cache::thread_moved();
                }
            }
            h.node.set(node);
            h.left.set(REFRESH_EVERY);
            h.detour_left.set(0);
        });
    }

    /// The node of the [`NodeLocal`] heap segment that contains `addr`, or
    /// `None` when no segment does: addresses the allocator never mapped,
    /// and large blocks (above [`NodeHeap::MAX_CLASS_SIZE`](super::NodeHeap::MAX_CLASS_SIZE)
    /// or aligned past 4 KiB), which have mappings of their own. Two loads,
    /// no system call, nothing dereferenced at `addr`: any address may be
    /// asked about, so an allocator built on top (the preloadable C
    /// `malloc`) can tell its own small blocks from foreign pointers.
    ///
    /// ```
    /// use numakit::mem::NodeLocal;
    /// let x = 5u32;
    /// assert_eq!(NodeLocal::segment_node(&x as *const u32 as *const u8), None);
    /// assert_eq!(NodeLocal::segment_node(std::ptr::null()), None);
    /// assert_eq!(NodeLocal::segment_node(usize::MAX as *const u8), None);
    /// ```
    #[inline]
    pub fn segment_node(addr: *const u8) -> Option<NodeId> {
        registered_node(addr.cast_mut()).map(NodeId::new)
    }

    /// Bytes in use in `node`'s heap (small blocks at their class size,
    /// large blocks at their mapped size): the figure
    /// [`stats`](Self::stats) reports as
    /// [`bytes_in_use`](NodeLocalNodeStats::bytes_in_use), read from the
    /// heap's counters without allocating anything, so a program can watch
    /// it without changing it. 0 for a node without a heap, including ids
    /// no node has (any id may be asked about).
    ///
    /// ```
    /// use numakit::mem::NodeLocal;
    /// use numakit::NodeId;
    /// assert_eq!(NodeLocal::bytes_in_use(NodeId::new(u32::MAX)), 0);
    /// ```
    pub fn bytes_in_use(node: NodeId) -> usize {
        let Some(slot) = HEAPS.get(node.get() as usize) else {
            return 0;
        };
        NonNull::new(slot.load(Ordering::Acquire)).map_or(0, |p| {
            // SAFETY: published heaps are never destroyed.
            let core = unsafe { p.as_ref() };
            super::bytes_in_use_of(&core.figures())
        })
    }

    /// Figures of every node that has a heap or a fallback or failure
    /// recorded, lowest id first. Shared by every `NodeLocal`: it
    /// describes the process's node heaps, whichever value made them.
    ///
    /// This allocates the result (through the global allocator).
    pub fn stats() -> NodeLocalStats {
        let mut nodes = Vec::new();
        for n in 0..MAX_NODES {
            let p = HEAPS[n].load(Ordering::Acquire);
            let fallbacks = FALLBACKS[n].load(Ordering::Relaxed);
            let fallback_bytes = FALLBACK_BYTES[n].load(Ordering::Relaxed);
            let failures = FAILURES[n].load(Ordering::Relaxed);
            if p.is_null() && fallbacks == 0 && failures == 0 {
                continue;
            }
            // SAFETY: published heaps are never destroyed.
            let heap = NonNull::new(p).map(|p| stats_of(unsafe { p.as_ref() }));
            nodes.push(NodeLocalNodeStats {
                node: NodeId::new(n as u32),
                heap,
                fallbacks,
                fallback_bytes,
                failures,
            });
        }
        NodeLocalStats { nodes }
    }

    /// `alloc` past the fast path: the node read again when due, detours,
    /// refills, large blocks; then the fast path's home cache is set.
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> *mut u8 {
        let (home, detour) = here();
        if let Some(to) = detour {
            if let Ok(p) = heap(to).and_then(|h| h.alloc(layout)) {
                count_fallback(home, layout.size());
                return p.as_ptr();
            }
        }
        match heap(home).and_then(|h| h.alloc(layout).map(|p| (h, p))) {
            Ok((h, p)) => {
                let _ = cache::with_thread(|t| t.set_home(h.uid, home));
                p.as_ptr()
            }
            Err(fail) => self.exhausted(home, layout, fail),
        }
    }

    /// `dealloc` past the fast path: blocks of other nodes, of a thread
    /// without a home cache (or away from its node), large blocks. A
    /// thread on its node that frees one of that node's small blocks gets
    /// its home cache here.
    ///
    /// # Safety
    /// The `GlobalAlloc::dealloc` contract.
    #[inline(never)]
    unsafe fn dealloc_slow(&self, p: NonNull<u8>, layout: Layout) {
        let Some(node) = owner_of(p.as_ptr(), layout) else {
            // No node found, so not a block of ours (a contract breach):
            // leaking it is the only thing that cannot corrupt a heap. (A
            // foreign block on a node-bound mapping is not caught: the
            // mapping's policy gives a node.)
            return;
        };
        if let Some(core) = published(node) {
            // A thread that frees its node's blocks before (or without)
            // allocating, as a consumer does, gets its home here, so that
            // its next frees of them take the fast path. Its node is read
            // first: a reading that finds a move marks the thread's caches
            // away, which must not undo the cache the free attaches.
            //
            // Such a free gives the node memory back, so it counts a
            // detour down as an allocation does: a thread that only frees
            // would otherwise never end one, and never get its home.
            let small = classes::class_for(layout.size(), layout.align()).is_some();
            let on_node = small
                && cache::with_thread(|t| {
                    let here = current_node(t) == node;
                    let d = &t.here.detour_left;
                    if here && d.get() > 0 {
                        d.set(d.get() - 1);
                    }
                    here
                }) == Some(true);
            // SAFETY: the GlobalAlloc contract: `p` came from `alloc` (or
            // `realloc`) of a NodeLocal with `layout`, so from this heap.
            unsafe { core.dealloc(p, layout) }
            if on_node {
                let _ = cache::with_thread(|t| t.set_home_after_free(core.uid, node));
            }
        }
    }

    #[inline]
    fn alloc_for(&self, node: u32, layout: Layout) -> *mut u8 {
        match heap(node).and_then(|h| h.alloc(layout)) {
            Ok(p) => p.as_ptr(),
            Err(fail) => self.exhausted(node, layout, fail),
        }
    }

    /// `node` cannot serve `layout`: apply the policy.
    #[cold]
    #[inline(never)]
    fn exhausted(&self, node: u32, layout: Layout, fail: OsFail) -> *mut u8 {
        if matches!(fail, OsFail::TooLarge(_)) {
            return ptr::null_mut();
        }
        if self.policy == OnExhausted::Nearest {
            if let Some((to, p)) = alloc_nearest(node, layout) {
                count_fallback(node, layout.size());
                set_detour(to);
                return p;
            }
        }
        if let Some(c) = FAILURES.get(node as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if !self.quiet {
            report(self.policy, node, layout.size(), fail);
        }
        ptr::null_mut()
    }
}

impl Default for NodeLocal {
    /// [`NodeLocal::strict`].
    fn default() -> Self {
        NodeLocal::strict()
    }
}

/// One allocation for `node` served by another node.
fn count_fallback(node: u32, size: usize) {
    if let (Some(n), Some(b)) = (
        FALLBACKS.get(node as usize),
        FALLBACK_BYTES.get(node as usize),
    ) {
        n.fetch_add(1, Ordering::Relaxed);
        b.fetch_add(size as u64, Ordering::Relaxed);
    }
}

/// Serve `layout` from the nearest node to `from` (by the distance row of
/// `from`, ties broken by id) that can give it.
fn alloc_nearest(from: u32, layout: Layout) -> Option<(u32, *mut u8)> {
    let mut ids = [0u16; MAX_NODES];
    let mut dist = [0u16; MAX_NODES];
    let n = nodes_by_distance(from, &mut ids, &mut dist);
    let mut tried = [false; MAX_NODES];
    for _ in 0..n {
        // The closest not yet tried.
        let mut best: Option<usize> = None;
        for i in 0..n {
            if tried[i] || u32::from(ids[i]) == from {
                continue;
            }
            if best.is_none_or(|b| (dist[i], ids[i]) < (dist[b], ids[b])) {
                best = Some(i);
            }
        }
        let i = best?;
        tried[i] = true;
        let to = u32::from(ids[i]);
        if let Ok(p) = heap(to).and_then(|h| h.alloc(layout)) {
            return Some((to, p.as_ptr()));
        }
    }
    None
}

/// The online nodes (`ids[..n]`) and their distance from `from`
/// (`dist[..n]`); when the distances cannot be read, all are equal (id
/// order decides).
fn nodes_by_distance(from: u32, ids: &mut [u16; MAX_NODES], dist: &mut [u16; MAX_NODES]) -> usize {
    let mut buf = [0u8; 4096];
    let n = match crate::sys::fs::read_into(c"/sys/devices/system/node/online", &mut buf) {
        Ok(len) => parse_list(&buf[..len], ids),
        Err(_) => 0,
    };
    let n = if n == 0 {
        // No list: every id the allocator serves.
        for (i, id) in ids.iter_mut().enumerate() {
            *id = i as u16;
        }
        MAX_NODES
    } else {
        n
    };
    dist[..n].fill(u16::MAX);
    let mut path = [0u8; 64];
    let Some(path) = node_file(from, b"/distance\0", &mut path) else {
        return n;
    };
    if let Ok(len) = crate::sys::fs::read_into(path, &mut buf) {
        // One distance per online node, in id order.
        let mut k = 0;
        for field in buf[..len].split(|b| b.is_ascii_whitespace()) {
            if field.is_empty() {
                continue;
            }
            if k >= n {
                break;
            }
            if let Some(d) = parse_u32(field) {
                dist[k] = d.min(u32::from(u16::MAX) - 1) as u16;
            }
            k += 1;
        }
    }
    n
}

/// `/sys/devices/system/node/node<id><suffix>` in `buf` (suffix ends with
/// a NUL).
fn node_file<'a>(node: u32, suffix: &[u8], buf: &'a mut [u8; 64]) -> Option<&'a std::ffi::CStr> {
    let prefix = b"/sys/devices/system/node/node";
    let mut w = SliceWriter { buf, at: 0 };
    w.put(prefix);
    fmt::Write::write_fmt(&mut w, format_args!("{node}")).ok()?;
    w.put(suffix);
    let at = w.at;
    std::ffi::CStr::from_bytes_until_nul(&buf[..at]).ok()
}

/// A kernel list ("0-3,5") into `out`; the count.
fn parse_list(text: &[u8], out: &mut [u16; MAX_NODES]) -> usize {
    let mut n = 0;
    for part in text.split(|&b| b == b',' || b.is_ascii_whitespace()) {
        if part.is_empty() {
            continue;
        }
        let (lo, hi) = match part.iter().position(|&b| b == b'-') {
            Some(dash) => (parse_u32(&part[..dash]), parse_u32(&part[dash + 1..])),
            None => (parse_u32(part), parse_u32(part)),
        };
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return 0;
        };
        for id in lo..=hi.min(MAX_NODES as u32 - 1) {
            if n == MAX_NODES {
                return n;
            }
            out[n] = id as u16;
            n += 1;
        }
    }
    n
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u32, |v, &b| {
        b.is_ascii_digit().then_some(())?;
        v.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Formats into a fixed buffer, truncating: no allocation.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.at);
        self.buf[self.at..self.at + n].copy_from_slice(&bytes[..n]);
        self.at += n;
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes());
        Ok(())
    }
}

/// Say on stderr why `node` could not serve `size` bytes, without
/// allocating.
fn report(policy: OnExhausted, node: u32, size: usize, fail: OsFail) {
    let mut buf = [0u8; 512];
    let mut w = SliceWriter {
        buf: &mut buf,
        at: 0,
    };
    let what = match policy {
        OnExhausted::Strict => "NodeLocal::strict()",
        OnExhausted::Nearest => "NodeLocal::nearest()",
    };
    let _ = fmt::Write::write_fmt(
        &mut w,
        format_args!("numakit: {what}: node {node} cannot give {size} bytes: "),
    );
    let memory = os::read_node_memory(node);
    let _ = match (fail, memory) {
        (_, Ok((0, _))) | (OsFail::Mbind(libc::EINVAL), Ok(_)) => fmt::Write::write_fmt(
            &mut w,
            format_args!("the node has no memory (a memoryless node)"),
        ),
        (_, Err(OsFail::Meminfo(libc::ENOENT))) => {
            fmt::Write::write_fmt(&mut w, format_args!("there is no such node"))
        }
        (
            OsFail::NoMemory {
                available, reserve, ..
            },
            _,
        ) => fmt::Write::write_fmt(
            &mut w,
            format_args!("{available} bytes free on the node, {reserve} of them kept in reserve"),
        ),
        (other, Ok((total, available))) => fmt::Write::write_fmt(
            &mut w,
            format_args!("{other:?} ({available} of {total} bytes free on the node)"),
        ),
        (other, Err(_)) => fmt::Write::write_fmt(&mut w, format_args!("{other:?}")),
    };
    let tail: &[u8] = match policy {
        OnExhausted::Strict => {
            b"; nothing is taken from another node (NodeLocal::nearest() would)\n"
        }
        OnExhausted::Nearest => b"; no other node could give it either\n",
    };
    w.put(tail);
    if w.at == w.buf.len() {
        w.buf[w.at - 1] = b'\n';
    }
    let at = w.at;
    // SAFETY: writing initialised bytes of a stack buffer to fd 2; a
    // failed or short write only loses the message.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), at);
    }
}

// SAFETY: blocks come from the node heaps (valid for their layout until
// freed, aligned as asked: see `classes::class_for`), and are freed to the
// heap that handed them out (found from the address: the registry for
// small blocks, the mapping's bound node for large ones); failures are
// null, never an unwind; nothing here allocates through the global
// allocator (raw syscalls, stack buffers, const thread-locals without
// destructors, std mutexes, which are futex words).
unsafe impl GlobalAlloc for NodeLocal {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(c) = classes::class_for(layout.size(), layout.align()) {
            if let Some(p) = HeapCore::pop_home(c) {
                return p.as_ptr();
            }
        }
        self.alloc_slow(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if let Some(c) = classes::class_for(layout.size(), layout.align()) {
            // SAFETY: the GlobalAlloc contract: `p` came from `alloc` with
            // `layout`, so a small block of class `c`; when its grain has
            // a node-local heap's tag, it is that heap's. (Null has tag 0.)
            if unsafe { HeapCore::push_home(registered_tag(p), p, c) } {
                return;
            }
        }
        let Some(p) = NonNull::new(p) else { return };
        // SAFETY: forwarded contract.
        unsafe { self.dealloc_slow(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the GlobalAlloc contract: `new_size`, rounded up to the
        // alignment, does not overflow isize.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if HeapCore::same_block(layout, new) {
            return p;
        }
        let owner = owner_of(p, layout);
        if let (Some(core), Some(block)) = (owner.and_then(published), NonNull::new(p)) {
            // SAFETY: the GlobalAlloc contract: `p` came from this node's
            // heap for `layout`; `new_size` is not 0.
            if let Some(Ok(q)) = unsafe { core.realloc_large(block, layout, new) } {
                return q.as_ptr();
            }
            // Refused (the node is short of memory) or not a pair of own
            // mappings: a new block, where the policy decides.
        }
        let q = match owner {
            Some(node) => self.alloc_for(node, new),
            // SAFETY: `new` is a valid layout of non-zero size (contract).
            None => unsafe { self.alloc(new) },
        };
        if !q.is_null() {
            // SAFETY: both blocks are valid for the smaller size and
            // distinct; `p` is freed once, with its layout.
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

/// Figures of the node heaps of [`NodeLocal`] (see [`NodeLocal::stats`]);
/// `Display` prints a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLocalStats {
    /// One entry per node with a heap, a fallback or a failure, by id.
    pub nodes: Vec<NodeLocalNodeStats>,
}

impl NodeLocalStats {
    /// The entry of `node`, if it has one.
    pub fn node(&self, node: impl Into<NodeId>) -> Option<&NodeLocalNodeStats> {
        let node = node.into();
        self.nodes.iter().find(|n| n.node == node)
    }

    /// Allocations served by another node than the one they were for, all
    /// nodes together.
    pub fn fallbacks(&self) -> u64 {
        self.nodes.iter().map(|n| n.fallbacks).sum()
    }
}

/// One node of a [`NodeLocalStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLocalNodeStats {
    /// The node.
    pub node: NodeId,
    /// Its heap's figures (per size class included), `None` when no
    /// allocation has been served from it.
    pub heap: Option<HeapStats>,
    /// Allocations made for this node (the thread ran on it, or the block
    /// being reallocated was on it) and served by another node, under
    /// [`OnExhausted::Nearest`].
    pub fallbacks: u64,
    /// The bytes asked for by those allocations.
    pub fallback_bytes: u64,
    /// Allocations for this node that got null because it (and, under
    /// `Nearest`, every other node) could not give the memory.
    pub failures: u64,
}

impl NodeLocalNodeStats {
    /// Bytes handed out by the node's heap and not freed.
    pub fn bytes_in_use(&self) -> usize {
        self.heap.as_ref().map_or(0, |h| h.bytes_in_use)
    }

    /// Bytes the node's heap holds resident (mapped less released).
    pub fn bytes_resident(&self) -> usize {
        self.heap
            .as_ref()
            .map_or(0, |h| h.bytes_mapped.saturating_sub(h.bytes_released))
    }

    /// Frees of the node's blocks by threads running on another node.
    pub fn remote_frees(&self) -> u64 {
        self.heap
            .as_ref()
            .map_or(0, |h| h.classes.iter().map(|c| c.remote_frees).sum())
    }

    /// Allocations served by the node's heap (small and large).
    pub fn allocations(&self) -> u64 {
        self.heap.as_ref().map_or(0, |h| {
            h.classes.iter().map(|c| c.allocations).sum::<u64>() + h.large_in_use
        })
    }
}

impl fmt::Display for NodeLocalStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>5} {:>14} {:>14} {:>12} {:>12} {:>10} {:>14} {:>9}",
            "node",
            "in use (B)",
            "resident (B)",
            "small allocs",
            "remote frees",
            "fallbacks",
            "fallback (B)",
            "failures"
        )?;
        for n in &self.nodes {
            let small: u64 = n
                .heap
                .as_ref()
                .map_or(0, |h| h.classes.iter().map(|c| c.allocations).sum());
            writeln!(
                f,
                "{:>5} {:>14} {:>14} {:>12} {:>12} {:>10} {:>14} {:>9}",
                n.node.get(),
                n.bytes_in_use(),
                n.bytes_resident(),
                small,
                n.remote_frees(),
                n.fallbacks,
                n.fallback_bytes,
                n.failures
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_like_the_kernel_writes_them() {
        let mut out = [0u16; MAX_NODES];
        assert_eq!(parse_list(b"0\n", &mut out), 1);
        assert_eq!(out[0], 0);
        assert_eq!(parse_list(b"0-2,5\n", &mut out), 4);
        assert_eq!(&out[..4], &[0, 1, 2, 5]);
        assert_eq!(parse_list(b"", &mut out), 0);
        assert_eq!(parse_list(b"x", &mut out), 0);
        assert_eq!(parse_list(b"0-4294967295", &mut out), MAX_NODES);
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
    }

    #[test]
    fn the_registry_answers_for_noted_grains_only() {
        let base = 0x7000_0000_0000usize - 16 * GRAIN; // below 2^47, grain-aligned
        note_segment(base, GRAIN + 16 * 1024, 3);
        assert_eq!(registered_node(base as *mut u8), Some(3));
        assert_eq!(registered_node((base + GRAIN + 100) as *mut u8), Some(3));
        assert_eq!(registered_node((base + 2 * GRAIN) as *mut u8), None);
        // Beyond the registry's address range: unknown, never a wrong node.
        assert_eq!(registered_node((1usize << 50) as *mut u8), None);
        assert_eq!(registered_node(usize::MAX as *mut u8), None);
        // Node ids past u16 are not recorded.
        note_segment(base + 4 * GRAIN, 1, u32::MAX);
        assert_eq!(registered_node((base + 4 * GRAIN) as *mut u8), None);
        // Leave the fake grains unknown again for other tests.
        for g in [base, base + GRAIN] {
            slot(g >> GRAIN_SHIFT, false)
                .unwrap()
                .store(0, Ordering::Relaxed);
        }
    }

    #[test]
    fn node_files_are_formatted_without_allocating() {
        let mut buf = [0u8; 64];
        let p = node_file(12, b"/distance\0", &mut buf).unwrap();
        assert_eq!(
            p.to_str().unwrap(),
            "/sys/devices/system/node/node12/distance"
        );
        let p = node_file(u32::MAX, b"/meminfo\0", &mut buf).unwrap();
        assert_eq!(
            p.to_str().unwrap(),
            "/sys/devices/system/node/node4294967295/meminfo"
        );
    }

    #[test]
    fn blocks_go_back_to_their_node_heap_and_stats_count_them() {
        let a = NodeLocal::strict();
        let topo = crate::Topology::detect().unwrap();
        let node = NodeLocal::current_node();
        if !topo.node(node).is_ok_and(|n| n.has_memory()) {
            // A memoryless node is exhausted for `strict`, never served.
            let layout = Layout::from_size_align(64, 8).unwrap();
            assert!(a.alloc_for(node.get(), layout).is_null());
            return;
        }
        for (size, align) in [(1, 1), (24, 8), (4096, 4096), (40_000, 8), (100, 8192)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; freed below with the same layout.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null(), "{layout:?}");
            assert_eq!(p as usize % align, 0);
            assert_eq!(owner_of(p, layout), Some(node.get()), "{layout:?}");
            // SAFETY: p is valid for `size` bytes.
            unsafe { p.write_bytes(0xa5, size) };
            let placed = crate::mem::locate(p, size).unwrap();
            assert!(placed.is_all_on(node), "{layout:?}: {placed:?}");
            // SAFETY: allocated above with `layout`.
            unsafe { a.dealloc(p, layout) };
        }
        let s = NodeLocal::stats();
        let n = s.node(node).expect("the node has a heap now");
        assert!(n.heap.is_some());
        assert!(n.allocations() >= 3);
        let table = s.to_string();
        assert!(table.lines().count() >= 2, "{table}");
        assert!(table.contains("remote frees"), "{table}");
    }

    /// A thread that frees its node's blocks without allocating (the
    /// consumer of a producer/consumer pair) gets its home on its first
    /// free, so its next frees take the fast path; one in a detour, or
    /// whose cache found itself away from its node, does not.
    #[test]
    fn a_thread_that_only_frees_gets_its_home_on_its_first_free() {
        let (node, cpu) = crate::topology::nodes_with_cpus_and_memory()
            .into_iter()
            .next()
            .unwrap();
        let a = NodeLocal::strict();
        let l = Layout::from_size_align(64, 8).unwrap();
        let c = classes::class_for(64, 8).unwrap();
        let on_node = move || {
            crate::sched::Pin::node(node)
                .bind_memory(false)
                .apply()
                .unwrap()
        };
        let blocks: Vec<usize> = std::thread::spawn(move || {
            let _pin = on_node();
            // SAFETY: non-zero layout.
            (0..64).map(|_| unsafe { a.alloc(l) } as usize).collect()
        })
        .join()
        .unwrap();
        assert!(blocks.iter().all(|&b| b != 0));
        assert!(blocks
            .iter()
            .all(|&b| registered_node(b as *mut u8) == Some(node.get())));
        std::thread::spawn(move || {
            // Pinned with the bare system call: numakit does not know the
            // thread's node, which its first free reads.
            crate::sys::sched::sched_setaffinity(0, &cpu.to_mask()).unwrap();
            let tag = node.get() + 1;
            // SAFETY: (for every free below) a block of `a` for `l`, freed
            // once.
            let free = |b: usize| unsafe { a.dealloc(b as *mut u8, l) };
            free(blocks[0]);
            assert!(
                cache::has_home(),
                "a free of the thread's node's block set no home"
            );
            assert!(cache::home_is_held());
            // In a detour: a free sets no home.
            set_detour(node.get());
            free(blocks[1]);
            assert!(!cache::has_home());
            let _ = cache::with_thread(|t| t.here.detour_left.set(0));
            free(blocks[2]);
            assert!(cache::has_home());
            for &b in &blocks[3..60] {
                // The fast path itself takes them (the class list has room).
                // SAFETY: as above.
                assert!(unsafe { HeapCore::push_home(tag, b as *mut u8, c) });
            }
            assert!(cache::home_is_held());
            // A free from a signal handler that interrupted `clear_home`
            // between its two stores leaves the home alone: setting it
            // there would leave a tag without a home once `clear_home`
            // finishes.
            cache::clear_home_in_two(true);
            free(blocks[60]);
            cache::clear_home_in_two(false);
            assert!(cache::home_is_held());
            assert!(!cache::has_home());
            free(blocks[61]);
            assert!(cache::has_home());
            // A cache that found itself away from its node is not made the
            // home by a free, whatever the thread's cached node says.
            cache::home_found_away();
            free(blocks[62]);
            free(blocks[63]);
            assert!(!cache::has_home());
            assert!(cache::home_is_held());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn trim_gives_back_the_pages_of_freed_blocks_on_every_node() {
        let a = NodeLocal::strict();
        let l = Layout::from_size_align(1000, 8).unwrap();
        for (node, _) in crate::topology::nodes_with_cpus_and_memory() {
            let blocks: Vec<usize> = blocks_of(a, l, node, 4096);
            let n = blocks.len();
            for b in blocks {
                // SAFETY: a block of `a` for `l`, freed once.
                unsafe { a.dealloc(b as *mut u8, l) };
            }
            // 4096 blocks of 1000 bytes: about 4 MiB, most of it in chunks
            // whose blocks are all free now.
            let released = NodeLocal::trim().unwrap();
            assert!(released >= n * 1000 / 2, "node {node}: {released} bytes");
        }
    }

    /// How many of `blocks` a thread frees (each a block of `a` for `l`,
    /// freed once) before it has a home; `None` if it never gets one.
    fn frees_until_home(a: NodeLocal, l: Layout, blocks: &[usize]) -> Option<usize> {
        for (i, &b) in blocks.iter().enumerate() {
            // SAFETY: the caller's contract.
            unsafe { a.dealloc(b as *mut u8, l) };
            assert!(cache::home_is_held());
            if cache::has_home() {
                return Some(i + 1);
            }
        }
        None
    }

    /// `n` blocks of `a` for `l`, allocated by a thread pinned to `node`.
    fn blocks_of(a: NodeLocal, l: Layout, node: NodeId, n: usize) -> Vec<usize> {
        let blocks: Vec<usize> = std::thread::spawn(move || {
            let _pin = crate::sched::Pin::node(node)
                .bind_memory(false)
                .apply()
                .unwrap();
            // SAFETY: non-zero layout.
            (0..n).map(|_| unsafe { a.alloc(l) } as usize).collect()
        })
        .join()
        .unwrap();
        assert!(blocks
            .iter()
            .all(|&b| b != 0 && registered_node(b as *mut u8) == Some(node.get())));
        blocks
    }

    /// A thread that only frees and whose cache counted itself away from
    /// its node reads the node again every `RECHECK_EVERY` frees and gets
    /// its home back once it is there; one in a detour ends it by freeing
    /// its node's blocks. On two nodes the thread really moves, and back.
    #[test]
    fn a_thread_that_only_frees_gets_its_home_back() {
        let nodes = crate::topology::nodes_with_cpus_and_memory();
        let (node, cpu) = nodes[0].clone();
        let a = NodeLocal::strict();
        let l = Layout::from_size_align(64, 8).unwrap();
        let recheck = super::super::core::RECHECK_EVERY as usize;
        let refresh = REFRESH_EVERY as usize;
        let detour = DETOUR_FOR as usize;
        let blocks = blocks_of(a, l, node, 1 + 3 * recheck + 2 * detour);
        let mask = cpu.to_mask();
        std::thread::spawn(move || {
            // Pinned with the bare system call, as a consumer that numakit
            // did not place.
            crate::sys::sched::sched_setaffinity(0, &mask).unwrap();
            let (first, rest) = blocks.split_at(1);
            assert_eq!(frees_until_home(a, l, first), Some(1));
            cache::home_found_away();
            assert!(!cache::has_home());
            let (away, rest) = rest.split_at(3 * recheck);
            let n = frees_until_home(a, l, away);
            assert!(
                n.is_some_and(|n| n <= recheck + 2),
                "a thread back on its node got no home in {n:?} frees"
            );
            set_detour(node.get());
            assert!(!cache::has_home());
            let n = frees_until_home(a, l, rest);
            assert!(
                n.is_some_and(|n| (detour..=detour + 1).contains(&n)),
                "a detour ended after {n:?} frees of the node's blocks"
            );
        })
        .join()
        .unwrap();
        let Some((other, other_cpus)) = nodes.get(1).cloned() else {
            return;
        };
        // A real move: away to `other` (frees of `node`'s blocks go
        // remote), and back.
        let blocks = blocks_of(a, l, node, 64 * refresh);
        std::thread::spawn(move || {
            crate::sys::sched::sched_setaffinity(0, &cpu.to_mask()).unwrap();
            let (first, rest) = blocks.split_at(1);
            assert_eq!(frees_until_home(a, l, first), Some(1));
            crate::sys::sched::sched_setaffinity(0, &other_cpus.to_mask()).unwrap();
            let mut rest = rest.iter();
            let mut freed = 0;
            while cache::has_home() {
                let b = *rest.next().expect("a thread on another node kept its home");
                // SAFETY: a block of `a` for `l`, freed once.
                unsafe { a.dealloc(b as *mut u8, l) };
                freed += 1;
            }
            crate::sys::sched::sched_setaffinity(0, &cpu.to_mask()).unwrap();
            let rest: Vec<usize> = rest.copied().collect();
            let n = frees_until_home(a, l, &rest);
            assert!(
                n.is_some_and(|n| n <= 2 * refresh + recheck + 2),
                "back on node {node} after {freed} frees on node {other}, \
                 a thread that only frees got no home in {n:?} frees"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_home_cache_is_always_a_cache_the_thread_holds() {
        // A thread that uses more heaps than it keeps caches for evicts its
        // node-local heap's cache (the home of the fast path) again and
        // again, between node-local allocations, heaps dropped meanwhile;
        // a home left pointing at a cache the thread let go of would be
        // shared with the next thread that adopts it.
        std::thread::spawn(|| {
            let a = NodeLocal::nearest();
            let l = Layout::from_size_align(48, 8).unwrap();
            // On a node with memory (a thread on a memoryless node has no
            // home: its allocations are detours), pinned there.
            let heap_node = crate::topology::nodes_with_cpus_and_memory()[0].0;
            let _pin = crate::sched::Pin::node(heap_node)
                .bind_memory(false)
                .apply()
                .unwrap();
            let cycle = || {
                // SAFETY: non-zero layout; each block freed once with it.
                unsafe {
                    let p = a.alloc(l);
                    let q = a.alloc(l);
                    assert!(!p.is_null() && !q.is_null() && p != q);
                    p.write_bytes(1, 48);
                    q.write_bytes(2, 48);
                    a.dealloc(p, l);
                    a.dealloc(q, l);
                }
                assert!(
                    cache::home_is_held(),
                    "the home is a cache the thread let go of"
                );
            };
            cycle();
            assert!(cache::has_home());
            // A detour turns the fast path off until it ends.
            set_detour(heap_node.get());
            assert!(!cache::has_home());
            let _ = cache::with_thread(|t| t.here.detour_left.set(0));
            cycle();
            assert!(cache::has_home());
            // A home found away from its node is dropped, and the node is
            // read again by the next allocation.
            cache::home_found_away();
            assert!(!cache::has_home());
            assert_eq!(cache::with_thread(|t| t.here.left.get()), Some(0));
            cycle();
            assert!(cache::has_home());
            for round in 0..4 {
                let heaps: Vec<super::super::NodeHeap> = (0..cache::SLOTS + 3)
                    .map(|_| super::super::NodeHeap::new(heap_node).unwrap())
                    .collect();
                for (i, h) in heaps.iter().enumerate() {
                    let b = h.try_alloc_layout(l).unwrap();
                    assert!(cache::home_is_held(), "round {round}, heap {i}");
                    // SAFETY: allocated above with `l`.
                    unsafe { h.dealloc(b, l) };
                    if (i + round) % 3 == 0 {
                        cycle();
                    }
                }
                drop(heaps);
                cycle();
                NodeLocal::refresh();
                cycle();
                cache::thread_moved();
                assert!(!cache::has_home());
                cycle();
                cycle();
                assert!(cache::has_home());
            }
        })
        .join()
        .unwrap();
    }

    /// A thread moved off its home node behind numakit's back (a raw
    /// `sched_setaffinity`), whose refill finds it away from the node,
    /// keeps no home and has its cache treated as remote after that
    /// allocation, and its next node reading drops the old node's caches
    /// from the fast path too.
    #[test]
    #[ignore = "vm-only: needs two nodes with CPUs and memory"]
    fn a_thread_found_away_from_its_node_loses_its_home() {
        let nodes = crate::topology::nodes_with_cpus_and_memory();
        assert!(
            nodes.len() >= 2,
            "needs two nodes with CPUs and memory: {nodes:?}"
        );
        let a = nodes[0].0;
        let b_cpu = nodes[1].1.iter().next().unwrap();
        std::thread::spawn(move || {
            let al = NodeLocal::strict();
            let l = Layout::from_size_align(48, 8).unwrap();
            // `n` small alloc+free pairs.
            let pairs = |n| {
                for _ in 0..n {
                    // SAFETY: non-zero layout, the block freed once with it.
                    unsafe {
                        let p = al.alloc(l);
                        assert!(!p.is_null());
                        al.dealloc(p, l);
                    }
                }
            };
            let pin = crate::sched::pin_to_node(a).unwrap();
            pairs(2);
            assert!(cache::has_home());
            std::mem::forget(pin);
            // Moved to the other node without telling numakit.
            let mut set = crate::CpuSet::new();
            set.insert(b_cpu);
            crate::sys::sched::sched_setaffinity(0, &set.to_mask()).unwrap();
            assert_ne!(crate::sys::sched::getcpu().unwrap().1, a.get());
            let core = published(a.get()).unwrap();
            // SAFETY: this thread's attached cache of heap `a`, which it
            // keeps while it runs.
            let c = unsafe { &*cache::lookup(core.uid) };
            c.recheck.set(0);
            // A class not used yet: the allocation refills, and the refill
            // looks at the node.
            let big = Layout::from_size_align(3000, 8).unwrap();
            // SAFETY: non-zero layout, freed once with it.
            unsafe {
                let q = al.alloc(big);
                assert!(!q.is_null());
                let (local, home) = (c.local.get(), cache::has_home());
                al.dealloc(q, big);
                assert!(
                    !local && !home,
                    "on another node: cache local = {local}, home kept = {home}"
                );
            }
            // The next allocation reads the node: now the other one.
            pairs(1);
            assert!(!c.local.get(), "the old node's cache is local again");
            assert_eq!(NodeLocal::current_node(), nodes[1].0);

            // Back home, then moved again; this time the periodic node
            // reading (due now) is what finds the move, with no refill.
            let pin = crate::sched::pin_to_node(a).unwrap();
            pairs(2);
            assert!(cache::has_home() && c.local.get());
            std::mem::forget(pin);
            crate::sys::sched::sched_setaffinity(0, &set.to_mask()).unwrap();
            let _ = cache::with_thread(|t| t.here.left.set(0));
            pairs(1);
            assert_eq!(NodeLocal::current_node(), nodes[1].0);
            assert!(
                !c.local.get(),
                "a node reading that found the move left the old node's cache local"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn segment_node_names_small_blocks_only() {
        let a = NodeLocal::nearest();
        let small = Layout::from_size_align(48, 16).unwrap();
        let large = Layout::from_size_align(2 << 20, 16).unwrap();
        // SAFETY: non-zero sizes; freed below with the same layouts.
        let (p, q) = unsafe { (a.alloc(small), a.alloc(large)) };
        assert!(!p.is_null() && !q.is_null());
        let node = owner_of(p, small).map(NodeId::new);
        assert!(node.is_some());
        assert_eq!(NodeLocal::segment_node(p), node);
        assert_eq!(NodeLocal::segment_node(p.wrapping_add(47)), node);
        assert_eq!(NodeLocal::segment_node(q), None);
        // SAFETY: allocated above with these layouts.
        unsafe {
            a.dealloc(p, small);
            a.dealloc(q, large);
        }
    }

    #[test]
    fn every_registered_grain_is_wholly_a_segment_of_its_node() {
        // `segment_node` promises that an address in a registered grain is
        // inside a segment: the whole grain must be mapped and bound to
        // the node, never left to other mappings.
        let a = NodeLocal::nearest();
        let layout = Layout::from_size_align(2000, 16).unwrap();
        // 6 MiB of small blocks: several segments.
        let blocks: Vec<*mut u8> = (0..3000)
            // SAFETY: non-zero size; freed below with the same layout.
            .map(|_| unsafe { a.alloc(layout) })
            .collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        // The thread may move between nodes meanwhile (its blocks then come
        // from several heaps), and other threads' segments may lie near:
        // each grain is checked against the node it is registered for.
        let mut grains: Vec<usize> = blocks.iter().map(|&p| p as usize >> GRAIN_SHIFT).collect();
        grains.sort_unstable();
        grains.dedup();
        let (lo, hi) = (
            grains[0].saturating_sub(256),
            grains[grains.len() - 1] + 256,
        );
        let mut checked = 0;
        for g in lo..=hi {
            let Some(node) = registered_node((g << GRAIN_SHIFT) as *mut u8) else {
                continue;
            };
            for addr in [g << GRAIN_SHIFT, ((g + 1) << GRAIN_SHIFT) - 1] {
                assert_eq!(
                    bound_node(addr as *mut u8),
                    Some(node),
                    "grain {g:#x} is registered for node {node} but {addr:#x} is not in a \
                     segment bound to it"
                );
            }
            checked += 1;
        }
        assert!(checked >= 3, "{checked}");
        for p in blocks {
            // SAFETY: allocated above with `layout`.
            unsafe { a.dealloc(p, layout) };
        }
    }

    #[test]
    fn an_absent_node_is_refused_with_its_reason() {
        let a = NodeLocal::strict();
        let layout = Layout::from_size_align(64, 8).unwrap();
        let p = a.alloc_for(MAX_NODES as u32 + 5, layout);
        assert!(p.is_null());
        let p = a.alloc_for(u32::MAX, layout);
        assert!(p.is_null());
        // A node id inside the table that does not exist.
        let topo = crate::Topology::detect().unwrap();
        let absent = topo.node_ids().map(NodeId::get).max().unwrap() + 1;
        assert!(a.alloc_for(absent, layout).is_null());
        assert!(NO_HEAP[absent as usize].load(Ordering::Relaxed));
        assert!(NodeLocal::stats().node(absent).unwrap().failures >= 1);
    }
}
