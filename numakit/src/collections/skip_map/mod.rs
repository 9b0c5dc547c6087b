//! [`SkipMap`]: a concurrent ordered map (a skip list) whose every byte —
//! entries, towers, the head and the lock — is on one chosen node.
//!
//! # Design
//!
//! - **A skip list under one reader-writer lock.** The entries form a
//!   skip list: each node holds its key, its value and a tower of forward
//!   links (height 1 to [`max_height`](Builder::max_height), drawn with
//!   probability 1/4 per extra level from a per-map xorshift generator, so
//!   heights never depend on the keys and a seed makes them
//!   reproducible). The whole list is guarded by one of numakit's
//!   [`RwLock`]s: any number of readers (`get`,
//!   `contains_key`, `range`, `iter`, `first`, `last`) run in parallel;
//!   a writer (`insert`, `remove`, `clear`) runs alone.
//! - **Why a lock and not a lock-free list.** A lock-free skip list (as
//!   `crossbeam-skiplist`) lets writers proceed in parallel with each
//!   other, but a node removed while readers may still be on it can only
//!   be freed once they are gone, which takes epoch-based reclamation,
//!   reference counts in every node, and user `Ord`/`Drop` code running on
//!   nodes other threads are unlinking. The lock makes the structure simple
//!   enough to be obviously sound for any `K` and `V` (including an `Ord`
//!   that panics or is inconsistent), frees a removed node at once into the
//!   node's heap, and costs a reader one compare-and-swap and one
//!   `fetch_sub` on the lock word. The lock's protocol is model-checked by
//!   the lock's own loom tests (`tests/loom_sync.rs`, `rwlock_*`); the list
//!   itself has no concurrent code of its own to model.
//! - **What concurrency that gives.** Reads scale with readers (they
//!   share the lock's cache line, which bounces between their cores);
//!   writes are serialised map-wide, and a writer waits for the readers
//!   inside. Write-heavy loads on many threads do better on a sharded
//!   structure ([`ConcurrentHashMap`](super::ConcurrentHashMap) when order
//!   is not needed). Reads pass waiting writers, as the hash map's (and
//!   dashmap's) do: a read waits only while a writer *holds* the lock, so
//!   a read never waits for its own thread nor closes a cycle of threads
//!   waiting for one another; the price is that readers that overlap
//!   without a break can hold a writer off for as long as they overlap.
//!   A writer that finds the lock busy watches it (loads only, yielding
//!   now and then) for a bounded while before it parks, to catch the
//!   gaps between reads.
//! - **Node memory.** Each map owns a [`NodeHeap`] on its node; the lock
//!   and the list's head, every node and its tower come from it.
//!   [`verify`](SkipMap::verify) proves it: the heap's segments, plus every
//!   node the heap had to map on its own (entries larger than
//!   [`NodeHeap::MAX_CLASS_SIZE`]). Keys and values that own memory
//!   elsewhere (a `String`'s bytes) keep it where they allocated it. The
//!   map value itself is a few words, wherever you put it.
//!
//! # `get` returns a guard
//!
//! As with [`ConcurrentHashMap`](super::ConcurrentHashMap),
//! [`get`](SkipMap::get) returns a [`Ref`] that keeps the map read-locked
//! while it lives (no copy, any `V`); [`get_cloned`](SkipMap::get_cloned)
//! returns a clone and holds nothing. Iterators lend entries as
//! [`RefMulti`] guards and see one snapshot of the map.
//!
//! # User code that panics or misbehaves
//!
//! Keys' `Ord` runs under the lock, and so does values' `Clone` in
//! [`get_cloned`](SkipMap::get_cloned); keys' and values' `Drop` run after
//! the lock is released (`insert` drops the key it does not keep, `clear`
//! the entries it took out, once the map is consistent again). A panic
//! under the lock releases it as it unwinds (no poisoning); the map stays
//! usable and consistent and every
//! key and value is dropped exactly once: an `Ord` panic happens while the
//! map is only being searched, so the interrupted `insert` or `remove`
//! did not happen (the key and value given to `insert` are dropped).
//! [`clear`](SkipMap::clear) empties the map before it drops the entries,
//! and when one drop panics the others are still dropped. An `Ord` that is
//! not a total order makes lookups wrong (a key may be missed, or stored
//! twice), never unsafe: unlinking a node does not trust the comparisons.
//!
//! # Examples
//! ```
//! use numakit::collections::SkipMap;
//! use std::sync::Arc;
//!
//! let map = Arc::new(SkipMap::<u64, String>::new(0)?);
//! let writers: Vec<_> = (0..4u64)
//!     .map(|t| {
//!         let map = Arc::clone(&map);
//!         std::thread::spawn(move || {
//!             for i in 0..100 {
//!                 map.insert(i * 4 + t, format!("{t}:{i}"));
//!             }
//!         })
//!     })
//!     .collect();
//! for w in writers {
//!     w.join().unwrap();
//! }
//! assert_eq!(map.len(), 400);
//! let keys: Vec<u64> = map.range(10..15).map(|e| *e.key()).collect();
//! assert_eq!(keys, [10, 11, 12, 13, 14]);
//! assert_eq!(map.get(&13).as_deref().map(String::as_str), Some("1:3"));
//! assert_eq!(*map.first().unwrap().key(), 0);
//! assert!(map.verify()?.is_all_on(numakit::NodeId::new(0)));
//! # Ok::<(), numakit::mem::MemError>(())
//! ```

mod error;
mod iter;

pub use error::InsertError;
pub use iter::{Iter, Range, Ref, RefMulti};

use self::iter::{MapRead, MapWrite};
use crate::collections::hash_map::held::{self, Hold};
use crate::collections::primitive::{AtomicUsize, Ordering};
use crate::mem::{locate, HeapStats, MemError, NodeHeap, PageMap};
use crate::sync::RwLock;
use crate::topology::NodeId;
use std::alloc::Layout;
use std::borrow::Borrow;
use std::cmp::Ordering as Cmp;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::ptr::{self, NonNull};

/// The tallest tower a map may have (see [`Builder::max_height`]).
pub const MAX_HEIGHT: usize = 32;

/// The default [`Builder::max_height`]: with a 1/4 chance per extra level,
/// 20 levels keep searches logarithmic up to about 4²⁰ ≈ 10¹² entries.
pub const DEFAULT_MAX_HEIGHT: usize = 20;

/// How many times a writer looks at a busy lock before it parks (see
/// `write_contended`).
const WRITE_SPINS: u32 = if cfg!(loom) { 0 } else { 1 << 12 };

/// The default seed of the height generator.
const DEFAULT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A forward link: the next node at some level, or null.
type Link<K, V> = *mut Node<K, V>;

/// One entry. Its tower of `height` links follows it in the same block
/// (see [`tower`]).
struct Node<K, V> {
    key: K,
    value: V,
    height: usize,
}

impl<K, V> Node<K, V> {
    /// The block of a node of `height` levels.
    fn layout(height: usize) -> Option<Layout> {
        let links = Layout::array::<Link<K, V>>(height).ok()?;
        let (layout, offset) = Layout::new::<Self>().extend(links).ok()?;
        // `Node` holds a `usize`, so it is aligned for links and its size
        // is a multiple of that: the tower starts right after it.
        debug_assert_eq!(offset, std::mem::size_of::<Self>());
        Some(layout.pad_to_align())
    }
}

/// The tower of `node`: its links, level 0 first.
///
/// # Safety
/// `node` points to a block from [`Node::layout`] (the tower is in
/// bounds: `height` links after the node).
#[inline]
unsafe fn tower<K, V>(node: *mut Node<K, V>) -> *mut Link<K, V> {
    // SAFETY: the block holds the node and then its tower (`Node::layout`),
    // so one node past the start is still inside it.
    unsafe { node.add(1).cast() }
}

/// What the lock guards.
pub(super) struct State<K, V> {
    /// The head tower: `max_height` links, in the heap.
    head: *mut Link<K, V>,
    /// Levels in use: the head's links at `height..` are null.
    height: usize,
    len: usize,
    rng: u64,
}

impl<K, V> State<K, V> {
    /// A height from 1 to `max` with probability 4⁻ᵏ of exceeding `k`
    /// (xorshift64*).
    fn random_height(&mut self, max: usize) -> usize {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((r.trailing_zeros() / 2) as usize + 1).min(max)
    }
}

/// The part of the map in node memory: the lock with the list, and the
/// length as of the last write (read without the lock).
struct Core<K, V> {
    state: RwLock<State<K, V>>,
    len: AtomicUsize,
}

/// Where a search stopped, level by level: the tower whose link at that
/// level leads past the search point.
type Preds<K, V> = [*mut Link<K, V>; MAX_HEIGHT];

/// Walk down from the top level of the list, moving right while
/// `before(key)` holds (it must hold for a prefix of the keys in order).
/// Returns the last node it moved to (null: none, the head) and the node
/// after it at level 0; fills `preds` for the levels in use.
///
/// # Safety
/// `state` is the map's state, read under its lock.
#[inline]
unsafe fn seek<K, V>(
    state: &State<K, V>,
    mut before: impl FnMut(&K) -> bool,
    mut preds: Option<&mut Preds<K, V>>,
) -> (Link<K, V>, Link<K, V>) {
    let mut node: Link<K, V> = ptr::null_mut();
    let mut links = state.head;
    // A node already found not `before`: no need to compare it again on
    // the levels below.
    let mut stop: Link<K, V> = ptr::null_mut();
    for level in (0..state.height).rev() {
        loop {
            // SAFETY: `links` is the head (`max_height >= state.height >
            // level` links) or the tower of a node reached through a link
            // at a level >= `level`, so its tower has `level`.
            let next = unsafe { *links.add(level) };
            if next.is_null() || next == stop {
                break;
            }
            // SAFETY: a linked node: valid while the lock is held.
            if before(unsafe { &(*next).key }) {
                node = next;
                // SAFETY: as above.
                links = unsafe { tower(next) };
            } else {
                stop = next;
                break;
            }
        }
        if let Some(p) = preds.as_deref_mut() {
            p[level] = links;
        }
    }
    // SAFETY: every tower has level 0.
    (node, unsafe { *links })
}

/// A concurrent ordered map whose storage is on one NUMA node; see the
/// [module documentation](self) for the design and what concurrency it
/// offers.
///
/// Every method takes `&self`: share the map by reference or in an `Arc`.
///
/// # One thread, several guards
///
/// A [`Ref`] (from `get`, `first`, `last`) and a [`Range`]/[`Iter`] with
/// its [`RefMulti`]s keep the map read-locked. While the calling thread
/// holds one, its further reads of the map proceed at once (even while a
/// writer waits for the lock), and its writes (`insert`, `remove`,
/// `clear`, ...) would wait for the thread itself, so they **panic**
/// instead, with a message that says which guard to drop. The map stays
/// usable after that panic. Reads from other threads proceed too, even
/// while a writer waits for the guard; writes from other threads wait
/// until the guard is dropped. A guard leaked with `mem::forget` keeps the
/// map read-locked for good: reads go on, every write waits forever (or
/// panics, on the leaking thread).
///
/// ```
/// use numakit::collections::SkipMap;
/// use std::panic::{catch_unwind, AssertUnwindSafe};
///
/// let map = SkipMap::<u32, &str>::new(0)?;
/// map.insert(1, "one");
/// let one = map.get(&1).unwrap();
/// assert_eq!(map.get_cloned(&1), Some("one")); // reading again is fine
/// let err = catch_unwind(AssertUnwindSafe(|| map.insert(2, "two"))).unwrap_err();
/// let msg = err.downcast_ref::<String>().unwrap();
/// assert!(msg.contains("read guard"), "{msg}");
/// drop(one);
/// map.insert(2, "two");
/// assert_eq!(map.len(), 2);
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct SkipMap<K, V> {
    core: NonNull<Core<K, V>>,
    /// Dropped after `Drop::drop` has dropped the entries: unmaps the
    /// nodes, the head and the core.
    heap: NodeHeap,
    max_height: usize,
    /// Names the map in the threads' records of the locks they hold.
    id: u64,
    _owns: PhantomData<(K, V)>,
}

// SAFETY: the map owns its keys and values (moving it moves them) and its
// heap (Send); the lock moves with the core it points to.
unsafe impl<K: Send, V: Send> Send for SkipMap<K, V> {}
// SAFETY: through `&self` keys and values are moved in and out from any
// thread (`Send`) and shared with several readers at once (`Sync`); every
// access to the list is under the lock (shared for reads, exclusive for
// writes); the heap is Sync.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for SkipMap<K, V> {}

/// Options for a [`SkipMap`]: node (required), tallest tower, seed of the
/// height generator.
///
/// ```
/// use numakit::collections::SkipMap;
/// let map: SkipMap<u32, u32> = SkipMap::builder(0).max_height(12).seed(7).build()?;
/// assert_eq!(map.max_height(), 12);
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder<K, V> {
    node: NodeId,
    max_height: usize,
    seed: u64,
    _map: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Builder<K, V> {
    /// The tallest tower: 1 to [`MAX_HEIGHT`] (default
    /// [`DEFAULT_MAX_HEIGHT`]). With a 1/4 chance per extra level, a list
    /// of n entries wants about log₄ n levels; fewer make searches
    /// linear past 4^`max_height` entries, more cost nothing but the
    /// head's links.
    pub fn max_height(mut self, max_height: usize) -> Self {
        self.max_height = max_height;
        self
    }

    /// Seed the height generator (default: a fixed constant, so a
    /// sequence of operations builds the same list every time). Heights
    /// never depend on the keys.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Make the map.
    ///
    /// # Errors
    /// - [`MemError::InvalidConfig`]: a `max_height` of 0 or above
    ///   [`MAX_HEIGHT`];
    /// - [`MemError::Topology`] / [`MemError::MemorylessNode`] /
    ///   [`MemError::NodeNotAllowed`]: the node does not exist, has no
    ///   memory, or the process may not use it (the error names the nodes
    ///   that would work); the map never falls back to another node;
    /// - [`MemError::OutOfNodeMemory`] and the other memory-layer errors
    ///   when the node cannot give the first page.
    pub fn build(self) -> Result<SkipMap<K, V>, MemError> {
        if self.max_height == 0 || self.max_height > MAX_HEIGHT {
            return Err(MemError::InvalidConfig(format!(
                "a skip map's towers are 1 to {MAX_HEIGHT} levels tall; max_height {} was \
                 asked for: use {}",
                self.max_height,
                self.max_height.clamp(1, MAX_HEIGHT)
            )));
        }
        SkipMap::create(self.node, self.max_height, self.seed)
    }
}

impl<K, V> Clone for Builder<K, V> {
    fn clone(&self) -> Self {
        Builder {
            node: self.node,
            max_height: self.max_height,
            seed: self.seed,
            _map: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for Builder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("node", &self.node)
            .field("max_height", &self.max_height)
            .field("seed", &self.seed)
            .finish()
    }
}

impl<K, V> SkipMap<K, V> {
    /// An empty map on `node` (required; never inferred).
    ///
    /// # Errors
    /// As [`Builder::build`]: the node must exist, have memory and be
    /// allowed to the process.
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::SkipMap;
    /// use numakit::mem::MemError;
    /// let topo = numakit::Topology::detect()?;
    /// let absent = topo.node_ids().map(|n| n.get()).max().unwrap() + 1;
    /// let err = SkipMap::<u32, u32>::new(absent).unwrap_err();
    /// assert!(matches!(err, MemError::Topology(_)), "{err}");
    /// # Ok::<(), numakit::Error>(())
    /// ```
    pub fn new(node: impl Into<NodeId>) -> Result<Self, MemError> {
        Self::builder(node).build()
    }

    /// Options: tallest tower, seed.
    pub fn builder(node: impl Into<NodeId>) -> Builder<K, V> {
        Builder {
            node: node.into(),
            max_height: DEFAULT_MAX_HEIGHT,
            seed: DEFAULT_SEED,
            _map: PhantomData,
        }
    }

    fn create(node: NodeId, max_height: usize, seed: u64) -> Result<Self, MemError> {
        debug_assert!((1..=MAX_HEIGHT).contains(&max_height));
        let heap = NodeHeap::new(node)?;
        // On error below the heap is dropped, which unmaps what was taken.
        let head = heap
            .try_alloc_layout(Layout::array::<Link<K, V>>(max_height).map_err(|_| {
                MemError::SizeOverflow {
                    count: max_height,
                    size: std::mem::size_of::<Link<K, V>>(),
                }
            })?)?
            .cast::<Link<K, V>>();
        for level in 0..max_height {
            // SAFETY: `level < max_height`: inside the fresh head block.
            unsafe { head.as_ptr().add(level).write(ptr::null_mut()) };
        }
        let core = heap
            .try_alloc_layout(Layout::new::<Core<K, V>>())?
            .cast::<Core<K, V>>();
        // SAFETY: fresh memory sized and aligned for a Core, written once
        // before the map exists.
        unsafe {
            core.as_ptr().write(Core {
                state: RwLock::new(State {
                    head: head.as_ptr(),
                    height: 1,
                    len: 0,
                    rng: if seed == 0 { DEFAULT_SEED } else { seed },
                }),
                len: AtomicUsize::new(0),
            })
        };
        Ok(SkipMap {
            core,
            heap,
            max_height,
            id: held::next_map_id(),
            _owns: PhantomData,
        })
    }

    #[inline]
    fn core(&self) -> &Core<K, V> {
        // SAFETY: written in `create`, in the heap, which lives as long as
        // the map.
        unsafe { self.core.as_ref() }
    }

    /// Read-lock the map (`op` names the caller's method for the panic
    /// message); refused if this thread writes it. Reads pass waiting
    /// writers (`read_recursive`), as the hash map's do: a read waits only
    /// while a writer *holds* the lock, so a thread that already reads
    /// never waits for itself, and a read never closes a cycle of threads
    /// waiting for each other through a writer that merely waits.
    #[inline]
    fn read(&self, op: &'static str) -> MapRead<'_, K, V> {
        let key = held::key(self.id, 0);
        // Recorded first (this thread's record; nobody else reads it).
        match held::note_read(key) {
            Some(Hold::Write) => self.self_deadlock(op, Hold::Write),
            None | Some(Hold::Read(_)) => MapRead::new(self.core().state.read_recursive(), key),
        }
    }

    /// Write-lock the map; refused if this thread holds it already.
    #[inline]
    fn write(&self, op: &'static str) -> MapWrite<'_, K, V> {
        let key = held::key(self.id, 0);
        if let Some(hold) = held::note_write(key) {
            self.self_deadlock(op, hold);
        }
        let core = self.core();
        let state = match core.state.try_write() {
            Some(guard) => guard,
            None => Self::write_contended(&core.state),
        };
        MapWrite::new(state, &core.len, key)
    }

    /// The write lock when it was busy. Readers of this map hold the lock
    /// for a search (tens to hundreds of nanoseconds) and pass waiting
    /// writers, so a writer that parked at once would be woken, miss the
    /// gap between two reads, and park again, each round a futex wake paid
    /// by the reader: on two threads this was measured to drop a
    /// read-mostly mix to a few percent of its throughput. Watching the
    /// lock word (loads only) for a bounded while before parking catches
    /// the gaps.
    #[cold]
    fn write_contended(
        lock: &RwLock<State<K, V>>,
    ) -> crate::sync::RwLockWriteGuard<'_, State<K, V>> {
        for round in 0..WRITE_SPINS {
            if !lock.is_locked() {
                if let Some(guard) = lock.try_write() {
                    return guard;
                }
            }
            if round % 64 == 63 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        lock.write()
    }

    /// The calling thread asked for the lock in a way that would wait for
    /// itself.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn self_deadlock(&self, op: &str, hold: Hold) -> ! {
        match hold {
            Hold::Read(n) => panic!(
                "SkipMap::{op} needs the map for writing, but this thread holds {n} read \
                 guard(s) on it (a `Ref` from `get`, `first` or `last`, or a `Range`/`Iter` \
                 or one of its entries): it would wait for itself forever. Drop the guards \
                 before writing, or copy values out with `get_cloned`"
            ),
            Hold::Write => panic!(
                "SkipMap::{op} needs the map, but this thread holds its write lock: it would \
                 wait for itself forever"
            ),
        }
    }

    /// The node every byte of the map's storage is on.
    pub fn node(&self) -> NodeId {
        self.heap.node()
    }

    /// The tallest tower this map builds.
    pub fn max_height(&self) -> usize {
        self.max_height
    }

    /// The number of entries, as of the last write that finished (exact
    /// when no writer runs); takes no lock.
    #[inline]
    pub fn len(&self) -> usize {
        self.core().len.load(Ordering::Relaxed)
    }

    /// Whether [`len`](Self::len) is 0.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry with the smallest key, as a guard that keeps the map
    /// read-locked; `None` if the map is empty.
    pub fn first(&self) -> Option<Ref<'_, K, V>> {
        let map = self.read("first");
        // SAFETY: the head has level 0; read under the lock.
        let node = NonNull::new(unsafe { *map.head })?;
        // SAFETY: a linked node of the map `map` locks.
        Some(unsafe { Ref::new(map, node) })
    }

    /// The entry with the largest key, as a guard that keeps the map
    /// read-locked; `None` if the map is empty.
    pub fn last(&self) -> Option<Ref<'_, K, V>> {
        let map = self.read("last");
        // SAFETY: `map` is the state under its read lock.
        let (node, _) = unsafe { seek(&map, |_| true, None) };
        let node = NonNull::new(node)?;
        // SAFETY: a linked node of the map `map` locks.
        Some(unsafe { Ref::new(map, node) })
    }

    /// Every entry in ascending key order, each lent as a [`RefMulti`];
    /// the map stays read-locked until the iterator is exhausted or
    /// dropped and its entries are dropped (one snapshot).
    ///
    /// # Panics
    /// When the calling thread holds the map's write lock (only possible
    /// from inside a panic of this map's methods: no public guard writes).
    pub fn iter(&self) -> Iter<'_, K, V>
    where
        K: Ord,
    {
        let map = self.read("iter");
        // SAFETY: the head has level 0; read under the lock.
        let first = unsafe { *map.head };
        // SAFETY: `first` is null or linked in the map `map` locks.
        unsafe { Range::new(map, first, ..) }
    }

    /// Remove every entry (dropping them). The map is emptied at once;
    /// the entries are dropped after the lock is released, in key order.
    /// If a drop panics, the other entries are still dropped (a second
    /// panic aborts, as in `Vec`), and the panic continues.
    ///
    /// # Panics
    /// When the calling thread holds a guard on the map (see
    /// [one thread, several guards](Self#one-thread-several-guards)), and
    /// when a key's or value's `Drop` panics.
    pub fn clear(&self) {
        let mut map = self.write("clear");
        let state = &mut *map;
        // SAFETY: the head has `max_height` links; under the write lock.
        let first = unsafe { *state.head };
        for level in 0..state.height {
            // SAFETY: as above, `level < height <= max_height`.
            unsafe { *state.head.add(level) = ptr::null_mut() };
        }
        state.height = 1;
        state.len = 0;
        drop(map);
        // SAFETY: the chain from `first` was just detached from the map,
        // under the write lock: nobody else can reach it; each node was
        // allocated from this map's heap.
        let mut chain = unsafe { Chain::new(&self.heap, first) };
        chain.drain();
    }

    /// Prove placement: every page of the map's storage — the heap's
    /// segments (lock, head, nodes and the heap's bookkeeping) and every
    /// node the heap had to map on its own (entries larger than
    /// [`NodeHeap::MAX_CLASS_SIZE`]) — is on the map's node. Returns their
    /// merged placement ([`pages`](PageMap::pages) counts the pages
    /// checked). Takes the read lock while it looks.
    ///
    /// # Errors
    /// [`MemError::Misplaced`] with the placement of the first range that
    /// has a page elsewhere; [`MemError::Os`] if `move_pages` fails.
    pub fn verify(&self) -> Result<PageMap, MemError> {
        let node = self.node();
        let map = self.read("verify");
        let mut proof = self.heap.verify()?;
        let large =
            |layout: Layout| layout.size() > NodeHeap::MAX_CLASS_SIZE || layout.align() > 4096;
        let tallest = Node::<K, V>::layout(self.max_height);
        if tallest.is_some_and(large) {
            // SAFETY: the head has level 0; read under the lock.
            let mut next = unsafe { *map.head };
            while !next.is_null() {
                // SAFETY: a linked node, valid under the lock; its layout
                // was computable when it was allocated.
                let (height, following) = unsafe { ((*next).height, *tower(next)) };
                if let Some(layout) = Node::<K, V>::layout(height).filter(|&l| large(l)) {
                    proof.merge(locate(next.cast::<u8>(), layout.size())?.ensure_on(node)?);
                }
                next = following;
            }
        }
        drop(map);
        Ok(proof)
    }

    /// The figures of the map's node heap (bytes in use and mapped).
    pub fn heap_stats(&self) -> HeapStats {
        self.heap.stats()
    }
}

impl<K: Ord, V> SkipMap<K, V> {
    /// Shared access to the value of `key`, as a guard that keeps the map
    /// read-locked (see [`Ref`]); `None` if absent.
    ///
    /// # Panics
    /// When `K`'s `Ord` panics (the lock is released).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::SkipMap;
    /// let map = SkipMap::<String, Vec<u8>>::new(0)?;
    /// map.insert("k".to_string(), vec![1, 2]);
    /// assert_eq!(map.get("k").map(|v| v.len()), Some(2));
    /// assert!(map.get("nope").is_none());
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let map = self.read("get");
        let node = NonNull::new(Self::find(&map, key))?;
        // SAFETY: a linked node of the map `map` locks.
        Some(unsafe { Ref::new(map, node) })
    }

    /// A clone of the value of `key`; no lock is held afterwards.
    #[inline]
    pub fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: Clone,
    {
        let map = self.read("get_cloned");
        let node = Self::find(&map, key);
        // SAFETY: null or a linked node, valid while `map` locks.
        unsafe { node.as_ref() }.map(|n| n.value.clone())
    }

    /// Whether `key` is in the map.
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let map = self.read("contains_key");
        !Self::find(&map, key).is_null()
    }

    /// The node of `key`, or null.
    #[inline]
    fn find<Q>(state: &State<K, V>, key: &Q) -> Link<K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // SAFETY: `state` is read under the lock (the caller holds a guard).
        let (_, next) = unsafe { seek(state, |k| k.borrow() < key, None) };
        // SAFETY: null or a linked node.
        match unsafe { next.as_ref() } {
            Some(n) if n.key.borrow() == key => next,
            _ => ptr::null_mut(),
        }
    }

    /// The entries whose keys lie in `range`, in ascending key order, each
    /// lent as a [`RefMulti`]. The map stays read-locked until the
    /// iterator is exhausted or dropped and its entries are dropped. An
    /// inverted range (start after end) is empty; it does not panic.
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::SkipMap;
    /// use std::ops::Bound::{Excluded, Unbounded};
    /// let map = SkipMap::<u32, char>::new(0)?;
    /// for (i, c) in ('a'..='f').enumerate() {
    ///     map.insert(i as u32, c);
    /// }
    /// let v: String = map.range((Excluded(2), Unbounded)).map(|e| *e.value()).collect();
    /// assert_eq!(v, "def");
    /// assert_eq!(map.range(4..2).count(), 0);
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn range<Q, R>(&self, range: R) -> Range<'_, K, V, Q, R>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        let map = self.read("range");
        let first = match range.start_bound() {
            // SAFETY: the head has level 0; read under the lock.
            Bound::Unbounded => unsafe { *map.head },
            // SAFETY: `map` is the state under its read lock.
            Bound::Included(s) => unsafe { seek(&map, |k| k.borrow() < s, None).1 },
            // SAFETY: as above.
            Bound::Excluded(s) => unsafe { seek(&map, |k| k.borrow() <= s, None).1 },
        };
        // SAFETY: `first` is null or linked in the map `map` locks.
        unsafe { Range::new(map, first, range) }
    }

    /// Insert `value` under `key`; the old value comes back if the key was
    /// there (the stored key is kept, as in std's `BTreeMap`).
    ///
    /// # Panics
    /// When the map's node cannot give the new entry's memory;
    /// [`try_insert`](Self::try_insert) returns that as an error. When the
    /// calling thread holds a guard on the map (see
    /// [one thread, several guards](Self#one-thread-several-guards)). When
    /// `K`'s `Ord` panics (nothing was inserted).
    #[inline]
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        match self.insert_as(key, value, "insert") {
            Ok(old) => old,
            Err(e) => panic!("{e}"),
        }
    }

    /// Insert `value` under `key`; the old value comes back if the key was
    /// there.
    ///
    /// # Errors
    /// [`InsertError`], holding `(key, value)`, when the node cannot give
    /// the new entry's memory; the map is unchanged.
    ///
    /// # Panics
    /// As [`insert`](Self::insert), except for the memory.
    #[inline]
    pub fn try_insert(&self, key: K, value: V) -> Result<Option<V>, InsertError<(K, V)>> {
        self.insert_as(key, value, "try_insert")
    }

    fn insert_as(
        &self,
        key: K,
        value: V,
        op: &'static str,
    ) -> Result<Option<V>, InsertError<(K, V)>> {
        let mut map = self.write(op);
        let state = &mut *map;
        let mut preds: Preds<K, V> = [ptr::null_mut(); MAX_HEIGHT];
        // SAFETY: under the write lock.
        let (_, next) = unsafe { seek(state, |k| k.cmp(&key) == Cmp::Less, Some(&mut preds)) };
        // SAFETY: null or a linked node; the write lock makes it ours.
        if let Some(found) = unsafe { next.as_mut() } {
            if found.key.cmp(&key) == Cmp::Equal {
                let old = std::mem::replace(&mut found.value, value);
                // The lock first, then the key not kept: if the key's `Drop`
                // panics, `old` is a local and is dropped while unwinding.
                drop(map);
                drop(key);
                return Ok(Some(old));
            }
        }
        // From here on no user code runs until the entry is linked.
        let height = state.random_height(self.max_height);
        let Some(layout) = Node::<K, V>::layout(height) else {
            let error = MemError::SizeOverflow {
                count: 1,
                size: std::mem::size_of::<Node<K, V>>(),
            };
            return Err(InsertError::new((key, value), self.node(), error));
        };
        let node = match self.heap.try_alloc_layout(layout) {
            Ok(p) => p.cast::<Node<K, V>>().as_ptr(),
            Err(e) => return Err(InsertError::new((key, value), self.node(), e)),
        };
        // SAFETY: a fresh block for a node of `height` levels.
        unsafe { node.write(Node { key, value, height }) };
        if height > state.height {
            for p in &mut preds[state.height..height] {
                *p = state.head;
            }
            state.height = height;
        }
        for (level, pred) in preds.iter().enumerate().take(height) {
            // SAFETY: `pred` is the head or a linked node whose tower has
            // `level` (filled by `seek` at that level, or the head above
            // the old height); the new node's tower has `height > level`
            // links. Under the write lock.
            unsafe {
                let slot = pred.add(level);
                *tower(node).add(level) = *slot;
                *slot = node;
            }
        }
        state.len += 1;
        Ok(None)
    }

    /// Take `key` out of the map; its value comes back.
    ///
    /// # Panics
    /// When the calling thread holds a guard on the map (see
    /// [one thread, several guards](Self#one-thread-several-guards)), and
    /// when `K`'s `Ord` or `Drop` panics (for `Ord`: nothing was removed;
    /// for `Drop`: the entry is gone and its value dropped).
    #[inline]
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.remove_as(key, "remove").map(|(_, v)| v)
    }

    /// Take `key` out of the map; the stored key and its value come back.
    ///
    /// # Panics
    /// As [`remove`](Self::remove), but for `Drop`.
    pub fn remove_entry<Q>(&self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.remove_as(key, "remove_entry")
    }

    fn remove_as<Q>(&self, key: &Q, op: &'static str) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut map = self.write(op);
        let state = &mut *map;
        let mut preds: Preds<K, V> = [ptr::null_mut(); MAX_HEIGHT];
        // SAFETY: under the write lock.
        let (_, found) = unsafe { seek(state, |k| k.borrow() < key, Some(&mut preds)) };
        // SAFETY: null or a linked node.
        match unsafe { found.as_ref() } {
            Some(n) if n.key.borrow() == key => {}
            _ => return None,
        }
        // No user code runs from here on.
        // SAFETY: `found` is linked; under the write lock.
        let height = unsafe { (*found).height };
        for (level, &pred) in preds.iter().enumerate().take(height) {
            // SAFETY: `pred` is the head or a node linked at `level`;
            // `found` has `level` (level < its height).
            unsafe {
                let mut slot = pred.add(level);
                // `seek` compares each node at most once (a node found not
                // `before` ends the walk on every level below), so its path
                // is a valid descent whatever the comparisons answer, and
                // `pred` links to `found` on every level of its tower even
                // under an `Ord` that is not a total order. The debug
                // assertion checks that; the walk below keeps unlinking
                // sound should it ever not hold.
                debug_assert!(*slot == found, "seek's path misses the node");
                if *slot != found {
                    // Find the link to `found` by address, not by key.
                    slot = state.head.add(level);
                    while *slot != found {
                        // Every node of height > level is on this level's
                        // list: the walk meets `found` before the end.
                        debug_assert!(!(*slot).is_null());
                        slot = tower(*slot).add(level);
                    }
                }
                *slot = *tower(found).add(level);
            }
        }
        // SAFETY: the head has `max_height >= height` links.
        while state.height > 1 && unsafe { (*state.head.add(state.height - 1)).is_null() } {
            state.height -= 1;
        }
        state.len -= 1;
        // SAFETY: `found` is unlinked (nobody else can reach it: the write
        // lock is held and every level's link to it was replaced); its
        // fields are read out once and its block, from this heap with
        // this layout, is given back.
        let (k, v) = unsafe { take(&self.heap, found) };
        drop(map);
        Some((k, v))
    }
}

/// Move the key and value out of `node` and give its block back.
///
/// # Safety
/// `node` is a node of `heap`, unreachable from the map, and not used
/// again.
unsafe fn take<K, V>(heap: &NodeHeap, node: *mut Node<K, V>) -> (K, V) {
    // SAFETY: per the contract: a live node, read once.
    let Node { key, value, height } = unsafe { node.read() };
    // A layout that was computed when the node was allocated.
    if let Some(layout) = Node::<K, V>::layout(height) {
        // SAFETY: allocated from `heap` with this layout; not used again.
        unsafe { heap.dealloc(NonNull::new_unchecked(node.cast()), layout) };
    }
    (key, value)
}

/// A detached list of nodes (linked at level 0), dropped in order.
struct Chain<'a, K, V> {
    heap: &'a NodeHeap,
    next: Link<K, V>,
}

impl<'a, K, V> Chain<'a, K, V> {
    /// # Safety
    /// The nodes from `first` on are nodes of `heap`, reachable from
    /// nowhere else, and not used again except through the chain.
    unsafe fn new(heap: &'a NodeHeap, first: Link<K, V>) -> Self {
        Chain { heap, next: first }
    }

    fn pop(&mut self) -> Option<(K, V)> {
        let node = self.next;
        if node.is_null() {
            return None;
        }
        // SAFETY: per `new`'s contract the node is the chain's alone; its
        // successor is read before it is given back.
        unsafe {
            self.next = *tower(node);
            Some(take(self.heap, node))
        }
    }

    /// Drop every entry left; if one drop panics, the rest are still
    /// dropped as the panic unwinds.
    fn drain(&mut self) {
        /// Drains the rest while a drop's panic unwinds.
        struct Rest<'c, 'a, K, V>(&'c mut Chain<'a, K, V>);
        impl<K, V> Drop for Rest<'_, '_, K, V> {
            fn drop(&mut self) {
                self.0.drain();
            }
        }
        while let Some((k, v)) = self.pop() {
            let rest = Rest(self);
            drop(k);
            drop(v);
            std::mem::forget(rest);
        }
    }
}

impl<K, V> Drop for SkipMap<K, V> {
    fn drop(&mut self) {
        // SAFETY: the map is being dropped (`&mut`): no guard is alive.
        // (Not `write()`: a guard leaked with `mem::forget` would keep the
        // lock taken.)
        let state = unsafe { &mut *self.core.as_ptr() }.state.get_mut();
        // SAFETY: the head has level 0.
        let first = unsafe { *state.head };
        // SAFETY: the map is going away: its list is the chain's alone.
        let mut chain = unsafe { Chain::new(&self.heap, first) };
        // If a drop panics, `drain` still drops the other entries; the
        // heap (a field) is dropped after this, unmapping every block.
        chain.drain();
    }
}

impl<K: fmt::Debug + Ord, V: fmt::Debug> fmt::Debug for SkipMap<K, V> {
    /// The entries in key order (read-locked while printed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for e in self.iter() {
            let (k, v) = e.pair();
            m.entry(k, v);
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_follow_a_quarter_per_level_and_respect_the_cap() {
        let mut state = State::<u8, u8> {
            head: ptr::null_mut(),
            height: 1,
            len: 0,
            rng: DEFAULT_SEED,
        };
        let mut counts = [0usize; MAX_HEIGHT + 1];
        let n = 1 << 16;
        for _ in 0..n {
            counts[state.random_height(MAX_HEIGHT)] += 1;
        }
        assert_eq!(counts[0], 0);
        // About 3/4 at height 1, 3/16 at height 2.
        assert!(
            (n * 70 / 100..n * 80 / 100).contains(&counts[1]),
            "{counts:?}"
        );
        assert!(
            (n * 15 / 100..n * 22 / 100).contains(&counts[2]),
            "{counts:?}"
        );
        for _ in 0..1000 {
            assert_eq!(state.random_height(1), 1);
            assert!(state.random_height(2) <= 2);
        }
    }

    #[test]
    fn node_layout_puts_the_tower_after_the_node() {
        let l = Node::<u64, [u8; 3]>::layout(4).unwrap();
        assert_eq!(l.size(), std::mem::size_of::<Node<u64, [u8; 3]>>() + 32);
        assert!(Node::<u64, u64>::layout(usize::MAX / 8).is_none());
    }
}
