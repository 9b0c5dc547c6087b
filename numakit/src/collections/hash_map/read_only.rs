//! [`ReadOnlyView`]: a map nobody can write any more, read without locks.

use super::{ConcurrentHashMap, Table};
use crate::topology::NodeId;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

/// A [`ConcurrentHashMap`] turned read-only by
/// [`into_read_only`](ConcurrentHashMap::into_read_only) (as dashmap's
/// `ReadOnlyView`): it owns the map, has no method that writes, and so
/// reads the tables with **no lock at all** — plain references that live
/// as long as the view, from any number of threads. The storage stays on
/// the map's node. [`into_inner`](Self::into_inner) gives the map back.
///
/// ```
/// use numakit::collections::ConcurrentHashMap;
/// let map = ConcurrentHashMap::<u32, String>::new(0)?;
/// map.insert(1, "one".into());
/// let view = map.into_read_only();
/// let one: &String = view.get(&1).unwrap(); // a reference, not a guard
/// std::thread::scope(|s| {
///     s.spawn(|| assert_eq!(view.len(), 1));
/// });
/// assert_eq!(one, "one");
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct ReadOnlyView<K, V, S> {
    map: ConcurrentHashMap<K, V, S>,
    /// Where a shard's table is inside the shard (the same in every shard).
    table_offset: usize,
}

impl<K, V, S> ReadOnlyView<K, V, S> {
    pub(super) fn new(map: ConcurrentHashMap<K, V, S>) -> Self {
        let base = map.shards.as_ptr();
        // SAFETY: we own the map (no guard of it lives, so nothing else
        // reaches the shard), and shard 0 exists.
        let shard0 = unsafe { &mut *base };
        let table: *mut Table<K, V> = shard0.table.get_mut();
        let table_offset = table as usize - base as usize;
        ReadOnlyView { map, table_offset }
    }

    /// Shard `index`'s table, read without its lock.
    #[inline]
    fn table(&self, index: usize) -> &Table<K, V> {
        // SAFETY: `index & mask` is inside the shard array (as in
        // `shard_at`).
        let shard = unsafe { self.map.shards.as_ptr().add(index & self.map.mask) };
        // SAFETY: every shard has the same layout, so the table is
        // `table_offset` bytes into each (measured on shard 0 in `new`,
        // from the same kind of pointer).
        // Nobody writes it: the view owns the map and offers no write;
        // guards of the map ended before it was moved in (a guard leaked
        // with `mem::forget` no longer reaches anything).
        unsafe {
            &*shard
                .cast::<u8>()
                .add(self.table_offset)
                .cast::<Table<K, V>>()
        }
    }

    /// The map back, writable again.
    pub fn into_inner(self) -> ConcurrentHashMap<K, V, S> {
        self.map
    }

    /// The number of entries (exact: nobody writes).
    pub fn len(&self) -> usize {
        (0..self.map.shard_count())
            .map(|i| self.table(i).len())
            .sum()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries the map holds without growing.
    pub fn capacity(&self) -> usize {
        (0..self.map.shard_count())
            .map(|i| self.table(i).capacity())
            .sum()
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.map.shard_count()
    }

    /// The node every byte of the map's storage is on.
    pub fn node(&self) -> NodeId {
        self.map.node()
    }

    /// The map's hasher.
    pub fn hasher(&self) -> &S {
        self.map.hasher()
    }

    /// Every entry, shard by shard.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        (0..self.map.shard_count()).flat_map(move |i| self.table(i).iter().map(|(k, v)| (k, v)))
    }

    /// Every key.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Every value.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> ReadOnlyView<K, V, S> {
    /// The stored key and the value of `key`.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.map.hash(key);
        let (k, v) = self
            .table(self.map.shard_index(hash))
            .find(hash, |e| key == e.0.borrow())?;
        Some((k, v))
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key).map(|(_, v)| v)
    }

    /// Whether `key` is in the map.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key).is_some()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for ReadOnlyView<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
