//! [`ConcurrentHashSet`]: a set of keys on one node, a
//! [`ConcurrentHashMap`] with `()` values underneath.

use super::{ConcurrentHashMap, InsertError, Iter, Ref, RefMulti};
use crate::mem::MemError;
use crate::topology::NodeId;
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ops::Deref;

/// A concurrent set whose storage is on one NUMA node (as dashmap's
/// `DashSet`): a [`ConcurrentHashMap<K, ()>`] underneath, with its
/// sharding, locking and guard rules (see
/// [one thread, several guards](ConcurrentHashMap#one-thread-several-guards)).
///
/// ```
/// use numakit::collections::ConcurrentHashSet;
/// let set = ConcurrentHashSet::<u32>::new(0)?;
/// assert!(set.insert(3));
/// assert!(!set.insert(3));
/// assert!(set.contains(&3));
/// assert_eq!(set.iter().map(|k| *k).sum::<u32>(), 3);
/// assert_eq!(set.remove(&3), Some(3));
/// assert!(set.is_empty());
/// # Ok::<(), numakit::mem::MemError>(())
/// ```
pub struct ConcurrentHashSet<K, S = RandomState> {
    map: ConcurrentHashMap<K, (), S>,
}

impl<K: Hash + Eq> ConcurrentHashSet<K, RandomState> {
    /// An empty set on `node`, with the map's default shard count.
    ///
    /// # Errors
    /// As [`Builder::build`](super::Builder::build).
    pub fn new(node: impl Into<NodeId>) -> Result<Self, MemError> {
        ConcurrentHashMap::new(node).map(Self::from_map)
    }

    /// An empty set on `node` with room for about `capacity` keys.
    ///
    /// # Errors
    /// As [`Builder::build`](super::Builder::build).
    pub fn with_capacity(node: impl Into<NodeId>, capacity: usize) -> Result<Self, MemError> {
        ConcurrentHashMap::with_capacity(node, capacity).map(Self::from_map)
    }
}

impl<K: Hash + Eq, S: BuildHasher> ConcurrentHashSet<K, S> {
    /// The set of a map's keys; build the map with
    /// [`ConcurrentHashMap::builder`] to choose shards and hasher.
    pub fn from_map(map: ConcurrentHashMap<K, (), S>) -> Self {
        ConcurrentHashSet { map }
    }

    /// Add `key`; `true` if it was not there (a key already there is kept,
    /// and `key` dropped).
    ///
    /// # Panics
    /// As [`ConcurrentHashMap::insert`].
    pub fn insert(&self, key: K) -> bool {
        self.map.insert(key, ()).is_none()
    }

    /// Add `key`; `Ok(true)` if it was not there.
    ///
    /// # Errors
    /// As [`ConcurrentHashMap::try_insert`]; the key comes back.
    pub fn try_insert(&self, key: K) -> Result<bool, InsertError<K>> {
        match self.map.try_insert(key, ()) {
            Ok(old) => Ok(old.is_none()),
            Err(e) => {
                let ((key, ()), error) = e.into_parts();
                Err(InsertError::new(key, self.map.node(), error))
            }
        }
    }

    /// Whether `key` is there.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// The stored key, as a guard that keeps its shard read-locked.
    pub fn get<Q>(&self, key: &Q) -> Option<SetRef<'_, K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|inner| SetRef { inner })
    }

    /// Take `key` out; the stored key comes back.
    pub fn remove<Q>(&self, key: &Q) -> Option<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove_entry(key).map(|(k, ())| k)
    }

    /// Take `key` out if `remove` returns true for the stored key.
    pub fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K) -> bool) -> Option<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove_if(key, |k, ()| remove(k)).map(|(k, ())| k)
    }

    /// Keep only the keys for which `keep` returns true.
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.map.retain(|k, ()| keep(k));
    }

    /// Remove every key.
    pub fn clear(&self) {
        self.map.clear();
    }

    /// See [`ConcurrentHashMap::shrink_to_fit`].
    pub fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    /// See [`ConcurrentHashMap::try_reserve`].
    ///
    /// # Errors
    /// As [`ConcurrentHashMap::try_reserve`].
    pub fn try_reserve(&self, additional: usize) -> Result<(), MemError> {
        self.map.try_reserve(additional)
    }
}

impl<K, S> ConcurrentHashSet<K, S> {
    /// Every key, each lent as a guard (see [`ConcurrentHashMap::iter`]
    /// for the locking and deadlock rules).
    pub fn iter(&self) -> SetIter<'_, K, S> {
        SetIter {
            inner: self.map.iter(),
        }
    }

    /// The number of keys (as [`ConcurrentHashMap::len`]).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys the set holds without growing.
    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }

    /// The node every byte of the set's storage is on.
    pub fn node(&self) -> NodeId {
        self.map.node()
    }

    /// The map underneath.
    pub fn as_map(&self) -> &ConcurrentHashMap<K, (), S> {
        &self.map
    }

    /// The map underneath, by value.
    pub fn into_map(self) -> ConcurrentHashMap<K, (), S> {
        self.map
    }
}

impl<K: fmt::Debug, S> fmt::Debug for ConcurrentHashSet<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_set();
        self.map.for_each(|k, ()| {
            s.entry(k);
        });
        s.finish()
    }
}

/// A key of a [`ConcurrentHashSet`], with its shard read-locked.
#[must_use = "the shard stays read-locked while the guard lives"]
pub struct SetRef<'a, K> {
    inner: Ref<'a, K, ()>,
}

impl<K> SetRef<'_, K> {
    /// The key as stored.
    pub fn key(&self) -> &K {
        self.inner.key()
    }
}

impl<K> Deref for SetRef<'_, K> {
    type Target = K;
    fn deref(&self) -> &K {
        self.key()
    }
}

impl<K: fmt::Debug> fmt::Debug for SetRef<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SetRef").field(self.key()).finish()
    }
}

/// A key met by [`SetIter`], with its shard read-locked.
#[must_use = "the shard stays read-locked while the guard lives"]
pub struct SetRefMulti<'a, K> {
    inner: RefMulti<'a, K, ()>,
}

impl<K> SetRefMulti<'_, K> {
    /// The key as stored.
    pub fn key(&self) -> &K {
        self.inner.key()
    }
}

impl<K> Deref for SetRefMulti<'_, K> {
    type Target = K;
    fn deref(&self) -> &K {
        self.key()
    }
}

impl<K: fmt::Debug> fmt::Debug for SetRefMulti<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SetRefMulti").field(self.key()).finish()
    }
}

/// The keys of a set; from [`ConcurrentHashSet::iter`].
#[derive(Debug)]
pub struct SetIter<'a, K, S> {
    inner: Iter<'a, K, (), S>,
}

impl<'a, K, S> Iterator for SetIter<'a, K, S> {
    type Item = SetRefMulti<'a, K>;
    fn next(&mut self) -> Option<SetRefMulti<'a, K>> {
        self.inner.next().map(|inner| SetRefMulti { inner })
    }
}
