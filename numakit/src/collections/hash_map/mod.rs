//! [`ConcurrentHashMap`]: a sharded concurrent hash map whose storage —
//! buckets, entries and the shard array — is all on one chosen node.
//!
//! # Design
//!
//! - **Shards.** `N` shards (a power of two; by default 8 × the CPUs this
//!   process may use, at least 32), each a [`RwLock`] around a SwissTable
//!   (`hashbrown::HashTable<(K, V)>`) and a length counter, each on its
//!   own 128-byte block so that shards do not share cache lines. Readers
//!   of a shard share it; a writer holds one shard.
//! - **One hash.** A key is hashed once with the map's `BuildHasher`
//!   (SipHash through std's `RandomState` unless you choose another): the 7
//!   top bits are the table's tag (hashbrown's `h2`), the `log2(N)` bits
//!   just below pick the shard, and the low bits pick the bucket. The shard
//!   bits are kept out of the tag so that entries of one shard still differ
//!   in their tags.
//! - **Why locks and not lock-free reads.** A reader takes the shard's read
//!   lock (one compare-and-swap) and releases it (one `fetch_sub`). An
//!   optimistic (seqlock) read would have to run the user's `Eq` and
//!   `Clone` on memory a writer may be changing, and to keep a table a
//!   reader may still be probing alive after a growth freed it: not sound
//!   for arbitrary `K` and `V` without epoch reclamation. Per-shard
//!   reader-writer locks keep `get` at two uncontended atomics on a line
//!   that the shards spread out.
//! - **Node memory.** Each map owns a [`NodeHeap`](crate::mem::NodeHeap)
//!   on its node. Tables allocate through a handle to it, so buckets and
//!   entries (stored inline in the buckets) are on the node; so are the
//!   shard array and the heap's bookkeeping. Tables the heap maps
//!   separately (above
//!   [`NodeHeap::MAX_CLASS_SIZE`](crate::mem::NodeHeap::MAX_CLASS_SIZE))
//!   are recorded, and [`verify`](ConcurrentHashMap::verify) locates every
//!   page: segments, large tables and the record itself. The map value
//!   itself (a few words: pointers, shard mask, the hasher's keys) is
//!   wherever you put it; it is only read after construction. A map
//!   reserves at least the heap's first segment (1 MiB of address space)
//!   on its node and populates it 64 KiB at a time as tables grow.
//! - **Growth.** A shard's table grows (doubling, all its entries moved)
//!   under that shard's write lock only; the other shards keep serving
//!   readers and writers. There is no map-wide resize. Growth asks the node
//!   for memory: when the node cannot give it, [`try_insert`] and
//!   [`try_entry`] return an [`InsertError`] (the map is unchanged);
//!   [`insert`] and [`entry`] panic with that message.
//!
//! # `get` returns a guard
//!
//! [`get`](ConcurrentHashMap::get) returns a [`Ref`], which keeps the
//! shard read-locked while it lives (as `dashmap` does): no copy, and any
//! `V`. Writers to that shard wait for it, so keep it short.
//! [`get_cloned`](ConcurrentHashMap::get_cloned) returns a clone instead
//! and holds nothing.
//!
//! A thread may hold several guards. Reading again a shard it already
//! reads never waits (not even behind a waiting writer); anything else on
//! a shard it already holds would wait for itself, and **panics** instead
//! with a message naming the shard and the guard to drop: see
//! [one thread, several guards](ConcurrentHashMap#one-thread-several-guards).
//!
//! # Iteration
//!
//! [`iter`](ConcurrentHashMap::iter),
//! [`iter_mut`](ConcurrentHashMap::iter_mut),
//! [`alter_all`](ConcurrentHashMap::alter_all),
//! [`for_each`](ConcurrentHashMap::for_each),
//! [`for_each_mut`](ConcurrentHashMap::for_each_mut),
//! [`retain`](ConcurrentHashMap::retain) and
//! [`iter_cloned`](ConcurrentHashMap::iter_cloned) visit the shards one
//! after the other, each under its lock. The rule: **every shard is seen as
//! a snapshot taken when it is visited**; an entry present during the whole
//! iteration is visited exactly once; an entry inserted or removed while
//! the iteration runs is visited at most once, depending on whether its
//! shard was visited before or after. Only one shard is locked at a time,
//! so iteration never stops the whole map (a [`RefMulti`] or
//! [`RefMutMulti`] kept after its iterator moved on keeps its shard
//! locked too). `for_each` runs the callback
//! with the shard locked (it may read the map, but writing that shard
//! from it panics); `iter_cloned`
//! copies one shard at a time and runs no user code under a lock but
//! `Clone`.
//!
//! # Read-only view
//!
//! [`into_read_only`](ConcurrentHashMap::into_read_only) turns a map that
//! is done being written into a [`ReadOnlyView`]: plain `&K`/`&V`
//! references, no lock taken, shareable across threads;
//! [`ReadOnlyView::into_inner`] gives the map back. A
//! [`ConcurrentHashSet`] is a map with `()` values, with the same rules.
//!
//! # User code that panics
//!
//! Keys' `Hash`, `Eq` and `Drop`, values' `Clone` and `Drop`, and the
//! closures given to the map run while a shard is locked. If one panics,
//! the lock is released as the panic unwinds (no poisoning), the map stays
//! usable and consistent — `len` counts what is in it, and every key and
//! value is dropped exactly once, by the map or by the caller — and the
//! interrupted operation happened or did not, except:
//! - [`alter`](ConcurrentHashMap::alter) and
//!   [`alter_all`](ConcurrentHashMap::alter_all) remove the entry whose
//!   value the closure was given (it was moved in and is gone); the
//!   entries `alter_all` visited before keep their new values;
//! - [`retain`](ConcurrentHashMap::retain),
//!   [`for_each_mut`](ConcurrentHashMap::for_each_mut) and
//!   [`clear`](ConcurrentHashMap::clear) stop where the panic happened
//!   (the entries before it are done, the rest untouched; `clear` still
//!   empties the shard it was in);
//! - a `Hash` that panics while a shard's table is rehashed in place (a
//!   growth that finds enough room after removals) loses the entries of
//!   that shard not yet rehashed: they are dropped, as `hashbrown` does.
//!
//! A second panic while a panic unwinds (a `Drop` that panics again)
//! aborts the process, as everywhere in Rust.
//!
//! [`len`](ConcurrentHashMap::len) sums per-shard counters that writers
//! publish when they release a shard; it takes no lock, and is exact when
//! no writer runs.
//!
//! # Examples
//! ```
//! use numakit::collections::ConcurrentHashMap;
//! use std::sync::Arc;
//!
//! let map = Arc::new(ConcurrentHashMap::<u64, String>::new(0)?);
//! let workers: Vec<_> = (0..4u64)
//!     .map(|t| {
//!         let map = Arc::clone(&map);
//!         std::thread::spawn(move || {
//!             for i in 0..100 {
//!                 map.insert(t * 1000 + i, format!("{t}:{i}"));
//!             }
//!         })
//!     })
//!     .collect();
//! for w in workers {
//!     w.join().unwrap();
//! }
//! assert_eq!(map.len(), 400);
//! assert_eq!(map.get(&2005).as_deref().map(String::as_str), Some("2:5"));
//! map.update(&2005, |v| v.push('!'));
//! assert_eq!(map.get_cloned(&2005).unwrap(), "2:5!");
//! assert!(map.verify()?.is_all_on(numakit::NodeId::new(0))); // every page of the map is on node 0
//! # Ok::<(), numakit::mem::MemError>(())
//! ```
//!
//! [`insert`]: ConcurrentHashMap::insert
//! [`try_insert`]: ConcurrentHashMap::try_insert
//! [`entry`]: ConcurrentHashMap::entry
//! [`try_entry`]: ConcurrentHashMap::try_entry

mod entry;
mod error;
mod guard;
pub(super) mod held;
mod iter;
mod read_only;
mod set;
mod storage;

pub use entry::{Entry, OccupiedEntry, VacantEntry};
pub use error::InsertError;
pub use guard::{Ref, RefMut, TryResult};
pub use iter::{Iter, IterMut, RefMulti, RefMutMulti};
pub use read_only::ReadOnlyView;
pub use set::{ConcurrentHashSet, SetIter, SetRef, SetRefMulti};

use self::guard::{ShardRead, ShardWrite};
use self::held::Hold;
use self::storage::{HeapRef, Storage};
use super::primitive::{AtomicUsize, Ordering};
use crate::mem::{HeapStats, MemError};
use crate::sync::RwLock;
use crate::topology::NodeId;
use crossbeam_utils::CachePadded;
use hashbrown::{HashTable, TryReserveError};
use std::alloc::Layout;
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The most shards a map may have.
pub const MAX_SHARDS: usize = 1 << 16;

/// Bits of the hash hashbrown keeps as the tag (its top 7).
const TAG_BITS: u32 = 7;

type Table<K, V> = HashTable<(K, V), HeapRef>;

/// One shard: a locked table and its length as of the last write.
struct Shard<K, V> {
    table: RwLock<Table<K, V>>,
    len: AtomicUsize,
}

type PaddedShard<K, V> = CachePadded<Shard<K, V>>;

/// A concurrent hash map whose buckets and entries are on one NUMA node;
/// see the [module documentation](self) for the design, what `get`
/// returns, and the iteration rule.
///
/// Every method takes `&self`: share the map by reference or in an `Arc`.
///
/// # One thread, several guards
///
/// A [`Ref`] keeps its shard read-locked, a [`RefMut`] or an [`Entry`]
/// write-locked, and `for_each`, `for_each_mut`, `retain`, `update` and
/// `remove_if` hold a shard's lock while their callback runs; an [`Iter`]
/// and its [`RefMulti`] hold the read lock of the shard they are in, an
/// [`IterMut`] and its [`RefMutMulti`] the write lock. The map's reads
/// pass waiting writers, as dashmap's do: a read waits only while a
/// writer *holds* the shard, so a read never closes a cycle of threads
/// waiting for one another through a writer that merely waits (the price,
/// as in dashmap: a steady stream of readers of one shard can delay its
/// writers). Each thread records the shards it holds (a few thread-local
/// words), and the map uses that record so that a thread never waits for
/// itself:
///
/// | the thread holds on the shard | it reads the shard (`get`, `get_cloned`, `contains_key`, `view`, `iter`) | it writes the shard (`insert`, `entry`, `get_mut`, `remove`, `update`, `alter`, `retain`, `iter_mut`, `clear`, ...) |
/// |---|---|---|
/// | nothing | waits while another thread writes it | waits as usual |
/// | a read guard (`Ref`, `RefMulti`, an `Iter` in it, `for_each`, `view`) | **proceeds at once**, even while a writer waits (it joins the readers inside) | **panics**: it would wait for itself |
/// | the write guard (`RefMut`, `RefMutMulti`, an `IterMut` in it, `Entry`, `for_each_mut`, `alter`, ...) | **panics**: it would wait for itself | **panics** |
///
/// dashmap hangs in the two "panics" cases and nowhere else among these;
/// [`try_get`](Self::try_get) and [`try_get_mut`](Self::try_get_mut)
/// answer [`TryResult::Locked`] there instead of panicking.
///
/// The panic says which method, which shard, and which guard to drop;
/// the map stays usable. Shards other than the ones the thread holds
/// behave as usual, so whether writing while holding a guard panics
/// depends on where the keys fall: drop guards before writing. Deadlocks
/// *between* threads (each holding a guard the other wants) are not
/// detected: take guards in one order, or use
/// [`get_cloned`](Self::get_cloned), which holds nothing. A guard leaked
/// with `mem::forget` keeps its shard locked for good: later reads of it
/// from the same thread still proceed, writes from it panic, and other
/// threads' writes to that shard wait forever.
///
/// ```
/// use numakit::collections::ConcurrentHashMap;
/// use std::panic::{catch_unwind, AssertUnwindSafe};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// // One shard, so that every key shares it.
/// let map = Arc::new(ConcurrentHashMap::<u32, String>::builder(0).shards(1).build()?);
/// map.insert(1, "one".into());
/// map.insert(2, "two".into());
///
/// let one = map.get(&1).unwrap();
/// // Another thread wants to write the shard and waits for `one`.
/// let writer = {
///     let map = Arc::clone(&map);
///     std::thread::spawn(move || map.insert(3, "three".into()))
/// };
/// std::thread::sleep(Duration::from_millis(20));
/// // Reading again from this thread does not wait behind that writer.
/// let two = map.get(&2).unwrap();
/// assert_eq!((one.as_str(), two.as_str()), ("one", "two"));
/// // Writing from this thread would wait for `one` and `two`: it panics.
/// let err = catch_unwind(AssertUnwindSafe(|| map.insert(4, "four".into()))).unwrap_err();
/// let msg = err.downcast_ref::<String>().unwrap();
/// assert!(msg.contains("shard 0") && msg.contains("read guard"), "{msg}");
/// drop((one, two));
/// writer.join().unwrap();
/// assert_eq!(map.len(), 3);
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct ConcurrentHashMap<K, V, S = RandomState> {
    shards: NonNull<PaddedShard<K, V>>,
    /// `hash >> shift & mask` is the shard.
    shift: u32,
    mask: usize,
    storage: NonNull<Storage>,
    hasher: S,
    /// Names the map's shards in the threads' records of the shards they
    /// hold (see `held`).
    id: u64,
    _owns: PhantomData<(K, V)>,
}

// SAFETY: the map owns its keys and values (moving it moves them) and its
// storage; the hasher moves with it.
unsafe impl<K: Send, V: Send, S: Send> Send for ConcurrentHashMap<K, V, S> {}
// SAFETY: through `&self` keys and values are moved in and out from any
// thread (`Send`) and shared with several readers at once (`Sync`); every
// access to a table is under its shard's lock; the storage is Sync; the
// hasher is used through `&S`.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Sync> Sync for ConcurrentHashMap<K, V, S> {}

/// Options for a [`ConcurrentHashMap`]: node (required), initial capacity,
/// shard count and hasher.
///
/// ```
/// use numakit::collections::ConcurrentHashMap;
/// let map: ConcurrentHashMap<u32, u32> = ConcurrentHashMap::builder(0)
///     .capacity(10_000)
///     .shards(16)
///     .build()?;
/// assert_eq!(map.shard_count(), 16);
/// assert!(map.capacity() >= 10_000);
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder<K, V, S = RandomState> {
    node: NodeId,
    capacity: usize,
    shards: Option<usize>,
    hasher: S,
    _map: PhantomData<fn() -> (K, V)>,
}

impl<K, V, S> Builder<K, V, S> {
    /// Room for about `capacity` entries before any shard grows, reserved
    /// on the node now (default 0: tables are allocated on first insert).
    /// Shards fill unevenly, so each gets its share plus a margin.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The number of shards: a power of two from 1 to [`MAX_SHARDS`].
    /// Default: 8 × the CPUs this process may use, rounded up to a power of
    /// two, at least 32. More shards make threads meet on the same lock less
    /// often and make each growth step smaller; each costs 128 bytes (plus
    /// a table once it holds an entry).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Hash keys with `hasher` (default: std's `RandomState`, SipHash-1-3
    /// with random keys, which resists collision attacks; a faster hasher
    /// such as `foldhash` speeds every operation up when keys are not
    /// attacker-chosen).
    pub fn hasher<S2>(self, hasher: S2) -> Builder<K, V, S2> {
        Builder {
            node: self.node,
            capacity: self.capacity,
            shards: self.shards,
            hasher,
            _map: PhantomData,
        }
    }

    /// Make the map.
    ///
    /// # Errors
    /// - [`MemError::InvalidConfig`]: a shard count that is not a power of
    ///   two between 1 and [`MAX_SHARDS`];
    /// - [`MemError::Topology`] / [`MemError::MemorylessNode`]: the node
    ///   does not exist or has no memory (the error names the nodes that
    ///   would work); the map never falls back to another node;
    /// - [`MemError::OutOfNodeMemory`] and the other memory-layer errors
    ///   when the node cannot give the shard array or the capacity asked for.
    pub fn build(self) -> Result<ConcurrentHashMap<K, V, S>, MemError>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let shards = match self.shards {
            Some(n) => n,
            None => default_shards(),
        };
        if !shards.is_power_of_two() || shards > MAX_SHARDS {
            return Err(MemError::InvalidConfig(format!(
                "a hash map has a power-of-two number of shards from 1 to {MAX_SHARDS}; \
                 {shards} was asked for: use {}",
                shards
                    .clamp(1, MAX_SHARDS)
                    .next_power_of_two()
                    .min(MAX_SHARDS)
            )));
        }
        ConcurrentHashMap::create(self.node, shards, self.capacity, self.hasher)
    }
}

impl<K, V, S: Clone> Clone for Builder<K, V, S> {
    fn clone(&self) -> Self {
        Builder {
            node: self.node,
            capacity: self.capacity,
            shards: self.shards,
            hasher: self.hasher.clone(),
            _map: PhantomData,
        }
    }
}

impl<K, V, S> fmt::Debug for Builder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("node", &self.node)
            .field("capacity", &self.capacity)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

/// 8 × the CPUs, at least 32. Measured on 2 cores (`benches/maps.rs`,
/// 2 threads): 32 shards did 10–15% more operations per second than 8
/// on both mixes, as two threads meet on one shard's lock less often;
/// a shard costs 128 bytes until it holds an entry.
fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.saturating_mul(8)
        .next_power_of_two()
        .clamp(32, MAX_SHARDS)
}

/// The room each of `shards` shards needs for `n` entries among them:
/// uniform hashing spreads `n` keys over the shards with a standard
/// deviation of about sqrt(n / shards); leave two of them.
fn per_shard_share(n: usize, shards: usize) -> usize {
    let per_shard = n.div_ceil(shards);
    per_shard.saturating_add(2 * per_shard.isqrt() + 1)
}

/// Replace the value in bucket `index` of `table` by `f(key, value)`. If
/// `f` panics, the value (moved into `f`) is gone: the entry is taken out
/// of the table, its key dropped, and the value's bits forgotten.
///
/// # Safety
/// `index` is a full bucket of `table`.
unsafe fn alter_at<K, V>(table: &mut Table<K, V>, index: usize, f: impl FnOnce(&K, V) -> V) {
    /// Removes the bucket whose value was moved out, if `f` unwinds.
    struct Hole<K, V> {
        table: *mut Table<K, V>,
        index: usize,
    }
    impl<K, V> Drop for Hole<K, V> {
        fn drop(&mut self) {
            // SAFETY: `index` is still full (`f` cannot reach the table:
            // its shard is write-locked by this thread, which refuses to
            // lock it again) and `table` outlives the hole.
            let entry = unsafe { (*self.table).get_bucket_entry_unchecked(self.index) };
            let ((key, value), _) = entry.remove();
            // Its value was moved into `f`, which dropped it.
            std::mem::forget(value);
            drop(key);
        }
    }
    let table: *mut Table<K, V> = table;
    // SAFETY: `index` is full (the caller's contract); `table` is valid
    // and exclusively ours for this call.
    let slot: *mut (K, V) = unsafe { (*table).get_bucket_unchecked_mut(index) };
    let hole = Hole { table, index };
    // SAFETY: `slot` is a live entry; its value is read out once here and
    // the slot is written back below before anyone reads it, or removed
    // without dropping the value by `hole` if `f` unwinds.
    let value = unsafe { std::ptr::read(&(*slot).1) };
    // SAFETY: the key stays in place, untouched, while `f` runs.
    let new = f(unsafe { &(*slot).0 }, value);
    // SAFETY: the value's place is vacant (moved out above).
    unsafe { std::ptr::write(&mut (*slot).1, new) };
    std::mem::forget(hole);
}

impl<K: Hash + Eq, V> ConcurrentHashMap<K, V, RandomState> {
    /// An empty map on `node` (required; never inferred), with the default
    /// shard count and std's `RandomState`.
    ///
    /// # Errors
    /// As [`Builder::build`]: the node must exist and have memory.
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// use numakit::mem::MemError;
    /// let topo = numakit::Topology::detect()?;
    /// let absent = topo.node_ids().map(|n| n.get()).max().unwrap() + 1;
    /// let err = ConcurrentHashMap::<u32, u32>::new(absent).unwrap_err();
    /// assert!(matches!(err, MemError::Topology(_)), "{err}");
    /// # Ok::<(), numakit::Error>(())
    /// ```
    pub fn new(node: impl Into<NodeId>) -> Result<Self, MemError> {
        Self::builder(node).build()
    }

    /// An empty map on `node` with room for about `capacity` entries.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn with_capacity(node: impl Into<NodeId>, capacity: usize) -> Result<Self, MemError> {
        Self::builder(node).capacity(capacity).build()
    }

    /// Options: capacity, shard count, hasher.
    pub fn builder(node: impl Into<NodeId>) -> Builder<K, V, RandomState> {
        Builder {
            node: node.into(),
            capacity: 0,
            shards: None,
            hasher: RandomState::new(),
            _map: PhantomData,
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> ConcurrentHashMap<K, V, S> {
    /// An empty map on `node` that hashes with `hasher`.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn with_hasher(node: impl Into<NodeId>, hasher: S) -> Result<Self, MemError> {
        ConcurrentHashMap::<K, V>::builder(node)
            .hasher(hasher)
            .build()
    }

    fn create(node: NodeId, shards: usize, capacity: usize, hasher: S) -> Result<Self, MemError> {
        debug_assert!(shards.is_power_of_two() && shards <= MAX_SHARDS);
        let storage = Storage::create(node, shards + 1)?;
        // SAFETY: `storage` lives until `destroy`, which runs after every
        // table (every copy of the handle) is dropped: below on error, in
        // `Drop` otherwise.
        let alloc = unsafe { HeapRef::new(storage) };
        // SAFETY: just created, not yet shared.
        let store = unsafe { storage.as_ref() };
        let layout = Self::shards_layout(shards);
        let array = match store.alloc(layout) {
            Ok(p) => p.cast::<PaddedShard<K, V>>(),
            Err(e) => {
                // SAFETY: no table or handle copy exists yet.
                unsafe { Storage::destroy(storage) };
                return Err(e);
            }
        };
        for i in 0..shards {
            // SAFETY: `i < shards`: inside the fresh array, written once
            // before the map exists.
            unsafe {
                array.as_ptr().add(i).write(CachePadded::new(Shard {
                    table: RwLock::new(HashTable::new_in(alloc)),
                    len: AtomicUsize::new(0),
                }))
            };
        }
        let bits = shards.trailing_zeros();
        let map = ConcurrentHashMap {
            shards: array,
            shift: 64 - TAG_BITS - bits,
            mask: shards - 1,
            storage,
            hasher,
            id: held::next_map_id(),
            _owns: PhantomData,
        };
        // From here on the map's Drop cleans up on error.
        if capacity > 0 {
            let per_shard = per_shard_share(capacity, shards);
            for shard in map.shard_slice() {
                let mut table = shard.table.write();
                map.reserve(&mut table, per_shard)?;
            }
        }
        Ok(map)
    }

    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Make room for `additional` more entries in `table` without a
    /// reallocation later, or say why the node cannot.
    fn reserve(&self, table: &mut Table<K, V>, additional: usize) -> Result<(), MemError> {
        let len = table.len();
        let hasher = &self.hasher;
        table
            .try_reserve(additional, |e| hasher.hash_one(&e.0))
            .map_err(|e| match e {
                TryReserveError::CapacityOverflow => MemError::SizeOverflow {
                    count: len.saturating_add(additional),
                    size: std::mem::size_of::<(K, V)>(),
                },
                TryReserveError::AllocError { layout } => self.store().why(layout),
            })
    }

    /// Room for one more entry in `table` (the usual case: nothing to do).
    #[inline]
    fn reserve_one(&self, table: &mut Table<K, V>) -> Result<(), MemError> {
        if table.capacity() > table.len() {
            Ok(())
        } else {
            self.reserve(table, 1)
        }
    }

    /// Shared access to the value of `key`, as a guard that keeps the
    /// key's shard read-locked (see [`Ref`]); `None` if absent. A thread
    /// may hold several, of one shard or of several.
    ///
    /// # Panics
    /// When the calling thread holds the key's shard for writing (a
    /// [`RefMut`] or an [`Entry`] of it): see [one thread, several guards](Self#one-thread-several-guards).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// let map = ConcurrentHashMap::<String, Vec<u8>>::new(0)?;
    /// map.insert("k".to_string(), vec![1, 2]);
    /// assert_eq!(map.get("k").map(|v| v.len()), Some(2));
    /// assert!(map.get("nope").is_none());
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let guard = self.read(hash, "get");
        let entry = NonNull::from(guard.find(hash, |e| key == e.0.borrow())?);
        // SAFETY: `entry` is in the table `guard` read-locks.
        Some(unsafe { Ref::new(guard, entry) })
    }

    /// A clone of the value of `key`; no lock is held afterwards.
    ///
    /// # Panics
    /// When the calling thread holds the key's shard for writing (a
    /// [`RefMut`] or an [`Entry`] of it): see [one thread, several guards](Self#one-thread-several-guards).
    #[inline]
    pub fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        let guard = self.read(hash, "get_cloned");
        guard
            .find(hash, |e| key == e.0.borrow())
            .map(|e| e.1.clone())
    }

    /// Whether `key` is in the map.
    ///
    /// # Panics
    /// When the calling thread holds the key's shard for writing (a
    /// [`RefMut`] or an [`Entry`] of it): see [one thread, several guards](Self#one-thread-several-guards).
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let guard = self.read(hash, "contains_key");
        guard.find(hash, |e| key == e.0.borrow()).is_some()
    }

    /// Exclusive access to the value of `key`, as a guard that keeps the
    /// key's shard write-locked (see [`RefMut`]); `None` if absent.
    ///
    /// # Panics
    /// When the calling thread holds a guard on the key's shard (a [`Ref`],
    /// [`RefMut`] or [`Entry`]): see [one thread, several guards](Self#one-thread-several-guards).
    pub fn get_mut<Q>(&self, key: &Q) -> Option<RefMut<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut shard = self.write(hash, "get_mut");
        let entry = NonNull::from(shard.find_mut(hash, |e| key == e.0.borrow())?);
        // SAFETY: `entry` is in the table `shard` write-locks.
        Some(unsafe { RefMut::new(shard, entry) })
    }

    /// Run `f` on the value of `key` under the shard's write lock and
    /// return what it returns; `None` (and `f` not run) if absent.
    ///
    /// # Panics
    /// When the calling thread holds a guard on the key's shard (see
    /// [one thread, several guards](Self#one-thread-several-guards)), and
    /// when `f` uses that shard (the lock is held while it runs).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// let balances = ConcurrentHashMap::<u32, i64>::new(0)?;
    /// balances.insert(7, 100);
    /// assert_eq!(balances.update(&7, |b| { *b -= 30; *b }), Some(70));
    /// assert_eq!(balances.update(&8, |b| *b), None);
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    #[inline]
    pub fn update<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut shard = self.write(hash, "update");
        let entry = shard.find_mut(hash, |e| key == e.0.borrow())?;
        Some(f(&mut entry.1))
    }

    /// Insert `value` under `key`; the old value comes back if the key was
    /// there (the stored key is kept, as in std's `HashMap`).
    ///
    /// # Panics
    /// When the map's node cannot give the memory for the shard's table to
    /// grow; [`try_insert`](Self::try_insert) returns that as an error.
    /// When the calling thread holds a guard on the key's shard: see
    /// [one thread, several guards](Self#one-thread-several-guards).
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
    /// [`InsertError`], holding `(key, value)`, when the shard's table must
    /// grow and the map's node cannot give the memory; the map is unchanged.
    ///
    /// # Panics
    /// When the calling thread holds a guard on the key's shard (a [`Ref`],
    /// [`RefMut`] or [`Entry`]): see [one thread, several guards](Self#one-thread-several-guards).
    #[inline]
    pub fn try_insert(&self, key: K, value: V) -> Result<Option<V>, InsertError<(K, V)>> {
        self.insert_as(key, value, "try_insert")
    }

    /// `try_insert` for the method `op`.
    #[inline]
    fn insert_as(
        &self,
        key: K,
        value: V,
        op: &'static str,
    ) -> Result<Option<V>, InsertError<(K, V)>> {
        let hash = self.hash(&key);
        let mut shard = self.write(hash, op);
        if let Some(e) = shard.find_mut(hash, |e| e.0 == key) {
            let old = std::mem::replace(&mut e.1, value);
            // The lock first, then the key not kept, before the result
            // exists: if the key's `Drop` panics, `old` is a local and is
            // dropped while unwinding (a result being returned would leak).
            drop(shard);
            drop(key);
            return Ok(Some(old));
        }
        if let Err(error) = self.reserve_one(&mut shard) {
            return Err(InsertError::new((key, value), self.node(), error));
        }
        let hasher = &self.hasher;
        shard.insert_unique(hash, (key, value), |e| hasher.hash_one(&e.0));
        Ok(None)
    }

    /// Take `key` out of the map; its value comes back.
    ///
    /// # Panics
    /// When the calling thread holds a guard on the key's shard (a [`Ref`],
    /// [`RefMut`] or [`Entry`]): see [one thread, several guards](Self#one-thread-several-guards).
    #[inline]
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (k, v) = self.remove_as(key, "remove")?;
        drop(k);
        Some(v)
    }

    /// Take `key` out of the map; the stored key and its value come back.
    ///
    /// # Panics
    /// When the calling thread holds a guard on the key's shard (a [`Ref`],
    /// [`RefMut`] or [`Entry`]): see [one thread, several guards](Self#one-thread-several-guards).
    pub fn remove_entry<Q>(&self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_as(key, "remove_entry")
    }

    #[inline]
    fn remove_as<Q>(&self, key: &Q, op: &'static str) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut shard = self.write(hash, op);
        let entry = shard.find_entry(hash, |e| key == e.0.borrow()).ok()?;
        Some(entry.remove().0)
    }

    /// Take `key` out of the map if `remove` returns true for its entry
    /// (decided under the shard's write lock, so nothing changes in
    /// between).
    ///
    /// # Panics
    /// When the calling thread holds a guard on the key's shard (see
    /// [one thread, several guards](Self#one-thread-several-guards)), and
    /// when `remove` uses that shard.
    pub fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K, &V) -> bool) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut shard = self.write(hash, "remove_if");
        let entry = shard.find_entry(hash, |e| key == e.0.borrow()).ok()?;
        let (k, v) = entry.get();
        if remove(k, v) {
            Some(entry.remove().0)
        } else {
            None
        }
    }

    /// [`remove_if`](Self::remove_if) with the value mutable in `remove`
    /// (as dashmap's `remove_if_mut`): what `remove` changed stays when it
    /// returns false.
    ///
    /// # Panics
    /// As [`remove_if`](Self::remove_if); if `remove` panics the entry
    /// stays, with whatever `remove` changed.
    pub fn remove_if_mut<Q>(
        &self,
        key: &Q,
        remove: impl FnOnce(&K, &mut V) -> bool,
    ) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut shard = self.write(hash, "remove_if_mut");
        let mut entry = shard.find_entry(hash, |e| key == e.0.borrow()).ok()?;
        let (k, v) = entry.get_mut();
        if remove(k, v) {
            Some(entry.remove().0)
        } else {
            None
        }
    }

    /// The entry of `key`, occupied or vacant, with its shard write-locked
    /// until the entry (or the guard it becomes) is dropped.
    ///
    /// # Panics
    /// When the key is absent, its shard's table is full and the map's
    /// node cannot give the memory to grow it;
    /// [`try_entry`](Self::try_entry) returns that as an error.
    /// When the calling thread holds a guard on the key's shard: see
    /// [one thread, several guards](Self#one-thread-several-guards).
    pub fn entry(&self, key: K) -> Entry<'_, K, V, S> {
        match self.entry_as(key, "entry") {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    /// The entry of `key`; a vacant entry has room reserved, so inserting
    /// through it cannot fail.
    ///
    /// # Errors
    /// [`InsertError`], holding the key, when the key is absent and the
    /// node cannot give the memory to make room for it.
    ///
    /// # Panics
    /// When the calling thread holds a guard on the key's shard (a [`Ref`],
    /// [`RefMut`] or [`Entry`]): see [one thread, several guards](Self#one-thread-several-guards).
    pub fn try_entry(&self, key: K) -> Result<Entry<'_, K, V, S>, InsertError<K>> {
        self.entry_as(key, "try_entry")
    }

    #[inline]
    fn entry_as(&self, key: K, op: &'static str) -> Result<Entry<'_, K, V, S>, InsertError<K>> {
        let hash = self.hash(&key);
        let mut shard = self.write(hash, op);
        if let Some(index) = shard.find_bucket_index(hash, |e| e.0 == key) {
            // Before the entry exists: if the key's `Drop` panics, the
            // guard is a local and unlocks while unwinding (an entry being
            // returned would leak, and its lock with it).
            drop(key);
            // SAFETY: `index` was just found full under this write lock.
            return Ok(Entry::Occupied(unsafe { OccupiedEntry::new(shard, index) }));
        }
        match self.reserve_one(&mut shard) {
            Ok(()) => Ok(Entry::Vacant(VacantEntry::new(
                shard,
                hash,
                key,
                &self.hasher,
            ))),
            Err(error) => Err(InsertError::new(key, self.node(), error)),
        }
    }

    /// [`get`](Self::get) without waiting: [`TryResult::Present`] with the
    /// guard, [`TryResult::Absent`], or [`TryResult::Locked`] when a writer
    /// holds the key's shard — another thread, or this one (then `get`
    /// would panic; `try_get` never does). Waiting writers do not make it
    /// `Locked` (readers pass them, see
    /// [one thread, several guards](Self#one-thread-several-guards)).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::hash_map::TryResult;
    /// use numakit::collections::ConcurrentHashMap;
    /// let map = ConcurrentHashMap::<u32, u32>::builder(0).shards(1).build()?;
    /// map.insert(1, 10);
    /// assert_eq!(map.try_get(&1).present().as_deref(), Some(&10));
    /// assert!(map.try_get(&2).is_absent());
    /// let writing = map.get_mut(&1).unwrap();
    /// assert!(map.try_get(&1).is_locked()); // `get` would wait for itself
    /// drop(writing);
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn try_get<Q>(&self, key: &Q) -> TryResult<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let Some(guard) = self.try_read_at(self.shard_index(hash)) else {
            return TryResult::Locked;
        };
        match guard.find(hash, |e| key == e.0.borrow()).map(NonNull::from) {
            // SAFETY: `entry` is in the table `guard` read-locks.
            Some(entry) => TryResult::Present(unsafe { Ref::new(guard, entry) }),
            None => TryResult::Absent,
        }
    }

    /// [`get_mut`](Self::get_mut) without waiting: `Locked` when anyone
    /// holds the key's shard (a reader or a writer, this thread included).
    pub fn try_get_mut<Q>(&self, key: &Q) -> TryResult<RefMut<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let Some(mut shard) = self.try_write_at(self.shard_index(hash)) else {
            return TryResult::Locked;
        };
        match shard
            .find_mut(hash, |e| key == e.0.borrow())
            .map(NonNull::from)
        {
            // SAFETY: `entry` is in the table `shard` write-locks.
            Some(entry) => TryResult::Present(unsafe { RefMut::new(shard, entry) }),
            None => TryResult::Absent,
        }
    }

    /// Run `f` on the entry of `key` under the shard's read lock and
    /// return what it returns; `None` (and `f` not run) if absent. Holds
    /// nothing afterwards.
    ///
    /// # Panics
    /// When the calling thread holds the key's shard for writing (see
    /// [one thread, several guards](Self#one-thread-several-guards)), and
    /// when `f` panics (the lock is released; the map is unchanged) or
    /// writes the key's shard.
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// let map = ConcurrentHashMap::<u32, String>::new(0)?;
    /// map.insert(1, "one".into());
    /// assert_eq!(map.view(&1, |_, v| v.len()), Some(3));
    /// assert_eq!(map.view(&2, |_, v| v.len()), None);
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn view<Q, R>(&self, key: &Q, f: impl FnOnce(&K, &V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let guard = self.read(hash, "view");
        let (k, v) = guard.find(hash, |e| key == e.0.borrow())?;
        Some(f(k, v))
    }

    /// Replace the value of `key` by `f(key, value)`, under the shard's
    /// write lock; nothing happens if absent. Returns whether the key was
    /// there.
    ///
    /// If `f` panics, the value it was given is gone (dropped by the
    /// unwinding), so the entry is **removed** (its key dropped) and the
    /// panic goes on; the map stays usable and nothing is dropped twice.
    ///
    /// # Panics
    /// When `f` panics (see above), when the calling thread holds a guard
    /// on the key's shard (see
    /// [one thread, several guards](Self#one-thread-several-guards)), and
    /// when `f` uses that shard.
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// let map = ConcurrentHashMap::<u32, Vec<u32>>::new(0)?;
    /// map.insert(1, vec![1, 2]);
    /// assert!(map.alter(&1, |_, v| v.into_iter().rev().collect()));
    /// assert!(!map.alter(&2, |_, v| v));
    /// assert_eq!(map.get_cloned(&1), Some(vec![2, 1]));
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn alter<Q>(&self, key: &Q, f: impl FnOnce(&K, V) -> V) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut shard = self.write(hash, "alter");
        let Some(index) = shard.find_bucket_index(hash, |e| key == e.0.borrow()) else {
            return false;
        };
        // SAFETY: `index` was just found full under this write lock.
        unsafe { alter_at(&mut shard, index, f) };
        true
    }

    /// Replace every value by `f(key, value)`; shard by shard, each under
    /// its write lock (see the iteration rule in the
    /// [module documentation](self)).
    ///
    /// If `f` panics, the entry it was given is removed (as in
    /// [`alter`](Self::alter)); the entries before it keep their new
    /// values, the ones after it their old ones, and the panic goes on.
    ///
    /// # Panics
    /// When `f` panics (see above), when the calling thread holds a guard
    /// on any shard (see
    /// [one thread, several guards](Self#one-thread-several-guards)), and
    /// when `f` uses the shard being visited.
    pub fn alter_all(&self, mut f: impl FnMut(&K, V) -> V) {
        for i in 0..self.shard_count() {
            let mut shard = self.write_at(i, "alter_all");
            for index in 0..shard.num_buckets() {
                if shard.get_bucket(index).is_some() {
                    // SAFETY: `index` is full, under this write lock.
                    unsafe { alter_at(&mut shard, index, &mut f) };
                }
            }
        }
    }

    /// Give back memory: each shard's table shrinks to the smallest that
    /// holds its entries (shard by shard, each under its write lock).
    /// Shrinking is best effort: a shard whose smaller table the node
    /// cannot give keeps its table, and a key's `Hash` that panics leaves
    /// its shard as it was (the hashes are all taken before anything
    /// moves). Never aborts on a failed allocation.
    ///
    /// # Panics
    /// When a key's `Hash` panics (see above), and when the calling thread
    /// holds a guard on any shard (see
    /// [one thread, several guards](Self#one-thread-several-guards)).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// let map = ConcurrentHashMap::<u32, u32>::builder(0).shards(2).capacity(10_000).build()?;
    /// map.insert(1, 1);
    /// map.shrink_to_fit();
    /// assert!(map.capacity() < 100);
    /// assert_eq!(map.get_cloned(&1), Some(1));
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn shrink_to_fit(&self) {
        for i in 0..self.shard_count() {
            let mut shard = self.write_at(i, "shrink_to_fit");
            let len = shard.len();
            if shard.capacity() == 0 {
                continue;
            }
            let mut smaller = HashTable::new_in(*shard.allocator());
            if len > 0 && self.reserve(&mut smaller, len).is_err() {
                continue; // best effort: the node cannot give it now
            }
            if smaller.capacity() >= shard.capacity() {
                continue; // already as small as it gets
            }
            let hashes: Vec<u64> = shard.iter().map(|e| self.hash(&e.0)).collect();
            // No user code runs from here on: `insert_unique` has room (so
            // it does not hash) and `drain` visits in `iter`'s order.
            let hasher = &self.hasher;
            for (entry, hash) in shard.drain().zip(hashes) {
                smaller.insert_unique(hash, entry, |e| hasher.hash_one(&e.0));
            }
            *shard = smaller;
        }
    }

    /// Make room for about `additional` more entries spread over the
    /// shards (each gets its share plus a margin, as
    /// [`Builder::capacity`]), so that inserting them needs no growth.
    /// Shard by shard, each under its write lock.
    ///
    /// # Errors
    /// - [`MemError::SizeOverflow`] when `additional` (with the margin) is
    ///   more entries than a table can address (`usize::MAX`, for one);
    /// - [`MemError::OutOfNodeMemory`] and the other memory-layer errors
    ///   when the node cannot give the memory.
    ///
    /// On an error the shards before the failing one keep what they
    /// reserved; no entry changes.
    ///
    /// # Panics
    /// When the calling thread holds a guard on any shard (see
    /// [one thread, several guards](Self#one-thread-several-guards)).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// use numakit::mem::MemError;
    /// let map = ConcurrentHashMap::<u32, u32>::new(0)?;
    /// map.try_reserve(1000)?;
    /// assert!(map.capacity() >= 1000);
    /// assert!(matches!(map.try_reserve(usize::MAX), Err(MemError::SizeOverflow { .. })));
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn try_reserve(&self, additional: usize) -> Result<(), MemError> {
        if additional == 0 {
            return Ok(());
        }
        let per_shard = per_shard_share(additional, self.shard_count());
        for i in 0..self.shard_count() {
            let mut shard = self.write_at(i, "try_reserve");
            self.reserve(&mut shard, per_shard).map_err(|e| match e {
                // Name the count asked for, not one shard's share of it.
                MemError::SizeOverflow { size, .. } => MemError::SizeOverflow {
                    count: additional,
                    size,
                },
                other => other,
            })?;
        }
        Ok(())
    }

    /// Keep only the entries for which `keep` returns true; shard by shard,
    /// each under its write lock (see the iteration rule in the
    /// [module documentation](self)).
    ///
    /// # Panics
    /// When the calling thread holds a guard on any shard (see
    /// [one thread, several guards](Self#one-thread-several-guards)), and
    /// when `keep` uses the shard being visited.
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for index in 0..self.shard_count() {
            let mut table = self.write_at(index, "retain");
            table.retain(|(k, v)| keep(k, v));
        }
    }

    /// Remove every entry (dropping them), shard by shard. Tables keep
    /// their capacity.
    ///
    /// If a value's (or key's) `Drop` panics, the other entries of its
    /// shard are still dropped, once each, and the shard is left empty;
    /// the panic then continues and the shards after it are not cleared.
    ///
    /// # Panics
    /// When a drop panics (see above), and when the calling thread holds a
    /// guard on any shard (see
    /// [one thread, several guards](Self#one-thread-several-guards)).
    pub fn clear(&self) {
        for index in 0..self.shard_count() {
            let mut table = self.write_at(index, "clear");
            // Not `HashTable::clear`: when a drop panics it forgets the
            // entries not dropped yet. A drain that is dropped during the
            // unwinding drops them (a second panic there aborts, as in
            // `Vec`).
            for entry in table.drain() {
                drop(entry);
            }
        }
    }

    /// A copy of the map on `node`: the same shard count, a clone of the
    /// hasher, every entry cloned. Each shard is copied under its read
    /// lock, so the copy holds each shard as it was at one moment (not the
    /// whole map, while other threads write).
    ///
    /// # Errors
    /// The errors of [`Builder::build`] for `node` (absent, memoryless,
    /// out of memory); nothing is left allocated.
    ///
    /// # Panics
    /// When a key's or value's `Clone` panics (the copy made so far is
    /// dropped, the map is unchanged), and when the calling thread holds a
    /// shard of this map for writing (see
    /// [one thread, several guards](Self#one-thread-several-guards)).
    pub fn try_clone_to(&self, node: impl Into<NodeId>) -> Result<Self, MemError>
    where
        K: Clone,
        V: Clone,
        S: Clone,
    {
        let copy = Builder {
            node: node.into(),
            capacity: self.len(),
            shards: Some(self.shard_count()),
            hasher: self.hasher.clone(),
            _map: PhantomData,
        }
        .build()?;
        for index in 0..self.shard_count() {
            let table = self.read_at(index, "try_clone_to");
            for (k, v) in table.iter() {
                copy.try_insert(k.clone(), v.clone())
                    .map_err(|e| e.into_parts().1)?;
            }
        }
        Ok(copy)
    }

    /// A copy of the map on its own node ([`try_clone_to`](Self::try_clone_to)).
    ///
    /// # Errors
    /// As [`try_clone_to`](Self::try_clone_to).
    pub fn try_clone(&self) -> Result<Self, MemError>
    where
        K: Clone,
        V: Clone,
        S: Clone,
    {
        self.try_clone_to(self.node())
    }

    /// Insert every `(key, value)` of `iter`, in order; stops at the first
    /// that the node cannot take memory for and returns it with the error
    /// (the pairs before it are in the map, those after it are not taken
    /// from the iterator).
    ///
    /// # Errors
    /// [`InsertError`] holding the pair that could not be inserted.
    ///
    /// # Panics
    /// When the calling thread holds a guard on a shard a key falls in (see
    /// [one thread, several guards](Self#one-thread-several-guards)).
    pub fn try_extend(
        &self,
        iter: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), InsertError<(K, V)>> {
        for (k, v) in iter {
            self.insert_as(k, v, "try_extend")?;
        }
        Ok(())
    }
}

/// A copy on the same node ([`ConcurrentHashMap::try_clone`]), the
/// documented panicking twin: panics when the node cannot give the memory.
impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher + Clone> Clone for ConcurrentHashMap<K, V, S> {
    fn clone(&self) -> Self {
        match self.try_clone() {
            Ok(copy) => copy,
            Err(e) => panic!("ConcurrentHashMap::clone: {e}"),
        }
    }
}

/// Inserts every pair ([`ConcurrentHashMap::insert`]); panics when the
/// node cannot give the memory ([`try_extend`](ConcurrentHashMap::try_extend)
/// returns that as an error). There is no `FromIterator`: a map is told
/// its node ([`ConcurrentHashMap::new`], then `extend`).
impl<K: Hash + Eq, V, S: BuildHasher> Extend<(K, V)> for ConcurrentHashMap<K, V, S> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K, V, S> ConcurrentHashMap<K, V, S> {
    #[inline]
    fn shard_slice(&self) -> &[PaddedShard<K, V>] {
        // SAFETY: `mask + 1` shards were initialised in `create` and live
        // until `drop`.
        unsafe { std::slice::from_raw_parts(self.shards.as_ptr(), self.mask + 1) }
    }

    /// Shard `index`; callers pass `index <= mask` (masked again, so any
    /// index is in the array).
    #[inline]
    fn shard_at(&self, index: usize) -> &Shard<K, V> {
        // SAFETY: `index & mask <= mask`: inside the array (see
        // `shard_slice`).
        unsafe { &*self.shards.as_ptr().add(index & self.mask) }
    }

    #[cfg(test)]
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        self.shard_at(self.shard_index(hash))
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        (hash >> self.shift) as usize & self.mask
    }

    #[inline]
    fn read(&self, hash: u64, op: &'static str) -> ShardRead<'_, K, V> {
        self.read_at(self.shard_index(hash), op)
    }

    #[inline]
    fn write(&self, hash: u64, op: &'static str) -> ShardWrite<'_, K, V> {
        self.write_at(self.shard_index(hash), op)
    }

    /// Read-lock shard `index` (`op` names the caller's method for the
    /// panic message). A shard this thread already reads is read again
    /// without waiting for waiting writers (they wait for this thread);
    /// one it writes is refused.
    #[inline]
    fn read_at(&self, index: usize, op: &'static str) -> ShardRead<'_, K, V> {
        let key = held::key(self.id, index);
        let table = &self.shard_at(index).table;
        // Recorded first (this thread's record; nobody else reads it).
        // Readers pass waiting writers (`read_recursive`), as dashmap's
        // do: a reader waits only while a writer holds the shard, so a
        // read cannot close a cycle of threads waiting for each other
        // through a writer that merely waits.
        match held::note_read(key) {
            Some(Hold::Write) => self.self_deadlock(index, op, Hold::Write),
            None | Some(Hold::Read(_)) => ShardRead::new(table.read_recursive(), key),
        }
    }

    /// Read-lock shard `index` if that needs no waiting; `None` when a
    /// writer holds it (this thread included).
    #[inline]
    fn try_read_at(&self, index: usize) -> Option<ShardRead<'_, K, V>> {
        let key = held::key(self.id, index);
        let table = &self.shard_at(index).table;
        match held::note_read(key) {
            // Nothing was recorded.
            Some(Hold::Write) => None,
            None | Some(Hold::Read(_)) => match table.try_read_recursive() {
                Some(guard) => Some(ShardRead::new(guard, key)),
                None => {
                    held::release_read(key);
                    None
                }
            },
        }
    }

    /// Write-lock shard `index` if that needs no waiting; `None` when
    /// anyone holds it (this thread included).
    #[inline]
    fn try_write_at(&self, index: usize) -> Option<ShardWrite<'_, K, V>> {
        let key = held::key(self.id, index);
        if held::note_write(key).is_some() {
            // Held by this thread; nothing was recorded.
            return None;
        }
        let shard = self.shard_at(index);
        match shard.table.try_write() {
            Some(guard) => Some(ShardWrite::new(guard, &shard.len, key)),
            None => {
                held::release_write(key);
                None
            }
        }
    }

    /// Write-lock shard `index`; refused if this thread holds it already.
    #[inline]
    fn write_at(&self, index: usize, op: &'static str) -> ShardWrite<'_, K, V> {
        let key = held::key(self.id, index);
        if let Some(hold) = held::note_write(key) {
            self.self_deadlock(index, op, hold);
        }
        let shard = self.shard_at(index);
        ShardWrite::new(shard.table.write(), &shard.len, key)
    }

    /// The calling thread asked for a shard it holds in a way that would
    /// wait for itself.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn self_deadlock(&self, index: usize, op: &str, hold: Hold) -> ! {
        let shards = self.shard_count();
        match hold {
            Hold::Read(n) => panic!(
                "ConcurrentHashMap::{op} needs shard {index} (of {shards}) for writing, but this \
                 thread holds {n} read guard(s) on it (a `Ref` from `get`, or the lock held \
                 around a `for_each` callback): it would wait for itself forever. Drop the \
                 `Ref` before writing, or copy the value out with `get_cloned`"
            ),
            Hold::Write => panic!(
                "ConcurrentHashMap::{op} needs shard {index} (of {shards}), but this thread \
                 holds that shard's write lock (a `RefMut` from `get_mut` or an entry, an \
                 `Entry`, or the lock held around an `update`, `for_each_mut`, `retain` or \
                 `remove_if` callback): it would wait for itself forever. Drop that guard \
                 first, or do the work through it"
            ),
        }
    }

    fn shards_layout(shards: usize) -> Layout {
        // At most MAX_SHARDS × a few hundred bytes: cannot overflow.
        Layout::array::<PaddedShard<K, V>>(shards).unwrap_or_else(|_| Layout::new::<u8>())
    }

    #[inline]
    fn store(&self) -> &Storage {
        // SAFETY: created with the map, destroyed in its `drop`.
        unsafe { self.storage.as_ref() }
    }

    /// The node every byte of the map's storage is on.
    pub fn node(&self) -> NodeId {
        self.store().heap().node()
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.mask + 1
    }

    /// The map's hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    /// The number of entries: the sum of the shards' counts, each as of its
    /// last write. Takes no lock; exact when no writer runs.
    pub fn len(&self) -> usize {
        self.shard_slice()
            .iter()
            .map(|s| s.len.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries the map holds without growing any table: the sum of the
    /// shards' capacities (each shard read-locked in turn). A shard can
    /// still grow before the map is this full, since keys do not spread
    /// perfectly evenly.
    ///
    /// # Panics
    /// When the calling thread holds a shard for writing (see
    /// [one thread, several guards](Self#one-thread-several-guards)).
    pub fn capacity(&self) -> usize {
        (0..self.shard_count())
            .map(|i| self.read_at(i, "capacity").capacity())
            .sum()
    }

    /// Call `f` on every entry; shard by shard, each read-locked while its
    /// entries are visited (see the iteration rule in the
    /// [module documentation](self)). `f` may read the map (a read of the
    /// shard being visited proceeds at once) but not write the shard being
    /// visited.
    ///
    /// # Panics
    /// When the calling thread holds a shard for writing (a [`RefMut`] or
    /// an [`Entry`]), and when `f` writes the shard being visited: see
    /// [one thread, several guards](Self#one-thread-several-guards).
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for index in 0..self.shard_count() {
            let table = self.read_at(index, "for_each");
            for (k, v) in table.iter() {
                f(k, v);
            }
        }
    }

    /// Call `f` on every entry with its value mutable; shard by shard,
    /// each write-locked while its entries are visited. `f` must not use the
    /// shard being visited.
    ///
    /// # Panics
    /// When the calling thread holds a guard on any shard, and when `f`
    /// uses the shard being visited: see
    /// [one thread, several guards](Self#one-thread-several-guards).
    pub fn for_each_mut(&self, mut f: impl FnMut(&K, &mut V)) {
        for index in 0..self.shard_count() {
            let mut table = self.write_at(index, "for_each_mut");
            for (k, v) in table.iter_mut() {
                f(k, v);
            }
        }
    }

    /// An iterator over the entries, each lent as a [`RefMulti`] guard (as
    /// dashmap's `iter`): a shard is read-locked when the iterator reaches
    /// it, and stays locked while the iterator is in it or any `RefMulti`
    /// of it lives. No copy, any `K` and `V`. See the iteration rule in
    /// the [module documentation](self).
    ///
    /// Deadlock rules (as dashmap's, with panics where dashmap hangs):
    /// reading the map while iterating never waits for this thread — even
    /// the shard being visited, even while another thread waits to write
    /// it; writing, from the iterating thread, a shard the iterator or a
    /// kept `RefMulti` holds would wait for itself and **panics** instead,
    /// naming the shard; iterating while this thread holds a shard for
    /// writing (a [`RefMut`], an [`Entry`]) panics when the iterator
    /// reaches that shard. Other threads' writers to a visited shard wait
    /// until the iterator moves on and its `RefMulti` are dropped; collect
    /// keys first (or use [`iter_cloned`](Self::iter_cloned)) to write
    /// from the loop.
    ///
    /// # Panics
    /// In `next`, when the calling thread holds the next shard for writing
    /// (see [one thread, several guards](Self#one-thread-several-guards)).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// let map = ConcurrentHashMap::<u32, u32>::new(0)?;
    /// for i in 0..10 {
    ///     map.insert(i, i * i);
    /// }
    /// let sum: u32 = map.iter().map(|e| *e.value()).sum();
    /// assert_eq!(sum, 285);
    /// // Reading while iterating never waits for this thread.
    /// assert!(map.iter().all(|e| map.get(e.key()).is_some()));
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V, S> {
        Iter::new(self)
    }

    /// An iterator over the entries with their values mutable, each lent
    /// as a [`RefMutMulti`] guard (as dashmap's `iter_mut`): a shard is
    /// write-locked when the iterator reaches it, and stays locked while
    /// the iterator is in it or any `RefMutMulti` of it lives.
    ///
    /// Deadlock rules: any use, from the iterating thread, of a shard the
    /// iterator or a kept `RefMutMulti` holds (a read or a write) would
    /// wait for itself and **panics** instead; other shards can be used.
    /// Iterating while this thread holds a guard on a shard panics when
    /// the iterator reaches that shard.
    ///
    /// # Panics
    /// In `next`, when the calling thread holds a guard on the next shard
    /// (see [one thread, several guards](Self#one-thread-several-guards)).
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// let map = ConcurrentHashMap::<u32, u32>::new(0)?;
    /// map.insert(1, 1);
    /// map.insert(2, 2);
    /// for mut e in map.iter_mut() {
    ///     *e += 10;
    /// }
    /// assert_eq!(map.get_cloned(&2), Some(12));
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn iter_mut(&self) -> IterMut<'_, K, V, S> {
        IterMut::new(self)
    }

    /// Turn the map into a [`ReadOnlyView`]: shared reads that take no
    /// lock at all (nobody can write any more), until
    /// [`ReadOnlyView::into_inner`] gives the map back.
    ///
    /// # Examples
    /// ```
    /// use numakit::collections::ConcurrentHashMap;
    /// let map = ConcurrentHashMap::<u32, u32>::new(0)?;
    /// map.insert(1, 10);
    /// let view = map.into_read_only();
    /// assert_eq!(view.get(&1), Some(&10));
    /// let map = view.into_inner();
    /// map.insert(2, 20);
    /// # Ok::<(), numakit::mem::MemError>(())
    /// ```
    pub fn into_read_only(self) -> ReadOnlyView<K, V, S> {
        ReadOnlyView::new(self)
    }

    /// An iterator over clones of the entries: each shard is copied (in
    /// ordinary memory, the caller's) under its read lock when the iterator
    /// reaches it, and no lock is held between shards or while the caller
    /// works, so the map can be used from the loop. See the iteration rule
    /// in the [module documentation](self).
    ///
    /// # Panics
    /// In `next`, when the calling thread holds the next shard for writing
    /// (see [one thread, several guards](Self#one-thread-several-guards)).
    pub fn iter_cloned(&self) -> IterCloned<'_, K, V, S>
    where
        K: Clone,
        V: Clone,
    {
        IterCloned {
            map: self,
            next_shard: 0,
            buffer: Vec::new().into_iter(),
        }
    }

    /// Prove placement: every page of the map's storage — the heap's
    /// segments (shard array, small tables, bookkeeping), every table the
    /// heap mapped on its own, and the record of those — is on the map's
    /// node. Returns their merged placement
    /// ([`pages`](crate::mem::PageMap::pages) counts the pages checked).
    ///
    /// # Errors
    /// [`MemError::Misplaced`] with the placement of the first range that
    /// has a page elsewhere; [`MemError::Os`] if `move_pages` fails.
    pub fn verify(&self) -> Result<crate::mem::PageMap, MemError> {
        self.store().verify()
    }

    /// The figures of the map's node heap (bytes in use and mapped).
    pub fn heap_stats(&self) -> HeapStats {
        self.store().heap().stats()
    }

    /// Tables the heap mapped on their own (larger than
    /// [`NodeHeap::MAX_CLASS_SIZE`](crate::mem::NodeHeap::MAX_CLASS_SIZE)), which `verify` checks one by one.
    pub fn large_tables(&self) -> usize {
        self.store().large_blocks()
    }
}

impl<K, V, S> Drop for ConcurrentHashMap<K, V, S> {
    fn drop(&mut self) {
        /// Frees the shards, their array and the heap — also while a
        /// panic in a key's or value's `Drop` unwinds out of the loop
        /// below.
        struct Teardown<'a, K, V, S>(&'a mut ConcurrentHashMap<K, V, S>);
        impl<K, V, S> Drop for Teardown<'_, K, V, S> {
            fn drop(&mut self) {
                let map = &mut *self.0;
                let shards = map.mask + 1;
                // SAFETY: the map is being dropped (`&mut`): no guard or
                // entry is alive. Each shard is dropped once (a table
                // still holding entries drops them; `drop_in_place` on a
                // slice drops every element even if one panics); then the
                // array, then the heap goes away, after the last handle
                // (in the tables) is gone.
                unsafe {
                    std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                        map.shards.as_ptr(),
                        shards,
                    ));
                    let store = map.storage.as_ref();
                    store.dealloc(
                        map.shards.cast(),
                        ConcurrentHashMap::<K, V, S>::shards_layout(shards),
                    );
                    Storage::destroy(map.storage);
                }
            }
        }
        let teardown = Teardown(self);
        // Entries first, through a drain: if one's `Drop` panics, the
        // drain (dropped while unwinding) drops the rest of its shard, and
        // `Teardown` the other shards and the memory; nothing is leaked
        // and nothing dropped twice (a second panic aborts, as in `Vec`).
        for i in 0..teardown.0.shard_count() {
            // SAFETY: `i` is inside the array; the map is being dropped, so
            // no other reference to a shard exists. (Not `write()`: a
            // guard leaked with `mem::forget` would keep the lock taken.)
            let shard = unsafe { &mut *teardown.0.shards.as_ptr().add(i) };
            for entry in shard.table.get_mut().drain() {
                drop(entry);
            }
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for ConcurrentHashMap<K, V, S> {
    /// The entries, shard by shard (each read-locked in turn).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        self.for_each(|k, v| {
            m.entry(k, v);
        });
        m.finish()
    }
}

/// Clones of a map's entries, copied one shard at a time; from
/// [`ConcurrentHashMap::iter_cloned`].
pub struct IterCloned<'a, K, V, S> {
    map: &'a ConcurrentHashMap<K, V, S>,
    next_shard: usize,
    buffer: std::vec::IntoIter<(K, V)>,
}

impl<K: Clone, V: Clone, S> Iterator for IterCloned<'_, K, V, S> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(kv) = self.buffer.next() {
                return Some(kv);
            }
            let index = self.next_shard;
            if index >= self.map.shard_count() {
                return None;
            }
            self.next_shard += 1;
            let table = self.map.read_at(index, "iter_cloned");
            self.buffer = table.iter().cloned().collect::<Vec<_>>().into_iter();
        }
    }
}

impl<K, V, S> fmt::Debug for IterCloned<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterCloned")
            .field("next_shard", &self.next_shard)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_bits_stay_below_the_tag() {
        let map = ConcurrentHashMap::<u64, u64>::builder(0)
            .shards(8)
            .build()
            .unwrap();
        assert_eq!(map.shift, 64 - 7 - 3);
        // Hashes differing only in the tag land in the same shard.
        let h = 0x0123_4567_89ab_cdefu64;
        let a: *const Shard<u64, u64> = map.shard(h);
        let b: *const Shard<u64, u64> = map.shard(h ^ (0x7f << 57));
        let c: *const Shard<u64, u64> = map.shard(h ^ (1 << 54));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn heap_pages_cover_the_shard_array() {
        let map = ConcurrentHashMap::<u64, u64>::builder(0)
            .shards(4)
            .capacity(400_000)
            .build()
            .unwrap();
        assert!(
            map.large_tables() > 0,
            "400k entries in 4 shards need tables above the size classes (1 MiB)"
        );
        let proof = map.verify().unwrap();
        assert!(proof.pages() > 0 && proof.is_all_on(map.node()), "{proof}");
    }
}
