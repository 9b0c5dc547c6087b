//! [`Entry`]: one key's slot in the map, occupied or vacant, with its
//! shard write-locked, for read-modify-write without a second lookup.

use super::guard::{RefMut, ShardWrite};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ptr::NonNull;

/// One key's place in a [`ConcurrentHashMap`](super::ConcurrentHashMap),
/// from [`entry`](super::ConcurrentHashMap::entry). Its shard is
/// write-locked while the entry (or the [`RefMut`] it turns into) lives,
/// so what it saw stays true until it is dropped. `!Send`. Using that
/// shard from the same thread meanwhile panics instead of waiting for
/// itself (see
/// [one thread, several guards](super::ConcurrentHashMap#one-thread-several-guards)).
///
/// A vacant entry already has room for its key: inserting through it never
/// allocates and never fails.
///
/// # Examples
/// ```
/// use numakit::collections::ConcurrentHashMap;
/// let hits = ConcurrentHashMap::<&str, u32>::new(0)?;
/// for word in ["a", "b", "a"] {
///     *hits.entry(word).or_insert(0) += 1;
/// }
/// assert_eq!(hits.get_cloned("a"), Some(2));
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub enum Entry<'a, K, V, S> {
    /// The key is in the map.
    Occupied(OccupiedEntry<'a, K, V>),
    /// The key is not in the map; room for it is reserved.
    Vacant(VacantEntry<'a, K, V, S>),
}

impl<'a, K: Hash + Eq, V, S: BuildHasher> Entry<'a, K, V, S> {
    /// The key: the stored one when occupied, the given one when vacant.
    pub fn key(&self) -> &K {
        match self {
            Entry::Occupied(e) => e.key(),
            Entry::Vacant(e) => e.key(),
        }
    }

    /// The value, inserting `default` if the key is absent.
    pub fn or_insert(self, default: V) -> RefMut<'a, K, V> {
        match self {
            Entry::Occupied(e) => {
                // Before the guard is returned: if `default`'s `Drop`
                // panics, `e` unlocks while unwinding (a guard being
                // returned would leak with its lock). Same below.
                drop(default);
                e.into_ref()
            }
            Entry::Vacant(e) => e.insert(default),
        }
    }

    /// The value, inserting `make()` if the key is absent (`make` runs under
    /// the shard's lock).
    pub fn or_insert_with(self, make: impl FnOnce() -> V) -> RefMut<'a, K, V> {
        match self {
            Entry::Occupied(e) => {
                drop(make);
                e.into_ref()
            }
            Entry::Vacant(e) => e.insert(make()),
        }
    }

    /// The value, inserting `V::default()` if the key is absent.
    pub fn or_default(self) -> RefMut<'a, K, V>
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }

    /// Run `f` on the value if the key is present.
    pub fn and_modify(mut self, f: impl FnOnce(&mut V)) -> Self {
        match &mut self {
            Entry::Occupied(e) => f(e.get_mut()),
            Entry::Vacant(_) => drop(f),
        }
        self
    }

    /// Set the value (replacing the old one, which is dropped) and return
    /// the entry.
    pub fn insert(self, value: V) -> RefMut<'a, K, V> {
        match self {
            Entry::Occupied(mut e) => {
                e.insert(value);
                e.into_ref()
            }
            Entry::Vacant(e) => e.insert(value),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for Entry<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Occupied(e) => f.debug_tuple("Occupied").field(e).finish(),
            Entry::Vacant(e) => f.debug_tuple("Vacant").field(e).finish(),
        }
    }
}

/// A key that is in the map, with its shard write-locked; see [`Entry`].
pub struct OccupiedEntry<'a, K, V> {
    shard: ShardWrite<'a, K, V>,
    index: usize,
}

impl<'a, K, V> OccupiedEntry<'a, K, V> {
    /// # Safety
    /// `index` is a full bucket of the table `shard` guards.
    pub(super) unsafe fn new(shard: ShardWrite<'a, K, V>, index: usize) -> Self {
        OccupiedEntry { shard, index }
    }

    fn pair(&self) -> &(K, V) {
        // SAFETY: `index` was a full bucket when the entry was made (`new`'s
        // contract) and the write lock held since kept anyone else from
        // changing the table; this entry's own removals consume it.
        unsafe { self.shard.get_bucket_unchecked(self.index) }
    }

    fn pair_mut(&mut self) -> &mut (K, V) {
        // SAFETY: as in `pair`.
        unsafe { self.shard.get_bucket_unchecked_mut(self.index) }
    }

    /// The key as stored in the map.
    pub fn key(&self) -> &K {
        &self.pair().0
    }

    /// The value.
    pub fn get(&self) -> &V {
        &self.pair().1
    }

    /// The value, mutably.
    pub fn get_mut(&mut self) -> &mut V {
        &mut self.pair_mut().1
    }

    /// Replace the value; the old one comes back.
    pub fn insert(&mut self, value: V) -> V {
        std::mem::replace(self.get_mut(), value)
    }

    /// Turn into a guard on the entry (the shard stays locked).
    pub fn into_ref(mut self) -> RefMut<'a, K, V> {
        let entry = NonNull::from(self.pair_mut());
        // SAFETY: `entry` is in the table `self.shard` guards.
        unsafe { RefMut::new(self.shard, entry) }
    }

    /// Take the entry out of the map; its value comes back.
    pub fn remove(self) -> V {
        let (key, value) = self.remove_entry();
        // If the key's `Drop` panics, `value` is a local and is dropped.
        drop(key);
        value
    }

    /// Take the entry out of the map.
    pub fn remove_entry(mut self) -> (K, V) {
        // SAFETY: `index` is a full bucket (see `pair`).
        let entry = unsafe { self.shard.get_bucket_entry_unchecked(self.index) };
        entry.remove().0
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for OccupiedEntry<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OccupiedEntry")
            .field("key", self.key())
            .field("value", self.get())
            .finish()
    }
}

/// A key that is not in the map, with its shard write-locked and room for
/// it reserved; see [`Entry`].
pub struct VacantEntry<'a, K, V, S> {
    shard: ShardWrite<'a, K, V>,
    hash: u64,
    key: K,
    hasher: &'a S,
}

impl<'a, K, V, S> VacantEntry<'a, K, V, S> {
    /// `shard`'s table must have room for one more entry
    /// (`capacity() > len()`), so that inserting does not allocate.
    pub(super) fn new(shard: ShardWrite<'a, K, V>, hash: u64, key: K, hasher: &'a S) -> Self {
        debug_assert!(shard.capacity() > shard.len());
        VacantEntry {
            shard,
            hash,
            key,
            hasher,
        }
    }

    /// The key that would be inserted.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Give the key back without inserting.
    pub fn into_key(self) -> K {
        self.key
    }
}

impl<'a, K: Hash, V, S: BuildHasher> VacantEntry<'a, K, V, S> {
    /// Insert the key with `value` and return a guard on the new entry.
    pub fn insert(self, value: V) -> RefMut<'a, K, V> {
        let VacantEntry {
            mut shard,
            hash,
            key,
            hasher,
        } = self;
        // Room was reserved when the entry was made, so this does not
        // allocate (the hasher would only be used for a resize).
        let slot = shard.insert_unique(hash, (key, value), |e| hasher.hash_one(&e.0));
        let entry = NonNull::from(slot.into_mut());
        // SAFETY: `entry` is in the table `shard` guards.
        unsafe { RefMut::new(shard, entry) }
    }
}

impl<K: fmt::Debug, V, S> fmt::Debug for VacantEntry<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VacantEntry")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}
