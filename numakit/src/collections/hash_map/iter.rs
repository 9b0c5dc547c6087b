//! Iteration with guards: [`Iter`] and [`IterMut`] lend each entry as a
//! guard ([`RefMulti`], [`RefMutMulti`]) that shares its shard's lock with
//! the iterator and the other guards of that shard, as dashmap's do.

use super::guard::{ShardRead, ShardWrite};
use super::{ConcurrentHashMap, Table};
use hashbrown::hash_table;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::rc::Rc;

/// Shared access to one entry met by [`Iter`]. Keeps the entry's shard
/// read-locked (with the iterator and the other `RefMulti` of the shard)
/// while it lives. `!Send`.
#[must_use = "the shard stays read-locked while the guard lives"]
pub struct RefMulti<'a, K, V> {
    _shard: Rc<ShardRead<'a, K, V>>,
    entry: NonNull<(K, V)>,
}

impl<K, V> RefMulti<'_, K, V> {
    #[inline]
    fn pair(&self) -> &(K, V) {
        // SAFETY: the entry is in the table whose read lock `_shard`
        // holds: no writer can move or drop it while the guard lives.
        unsafe { self.entry.as_ref() }
    }

    /// The key as stored in the map.
    #[inline]
    pub fn key(&self) -> &K {
        &self.pair().0
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &V {
        &self.pair().1
    }

    /// Key and value.
    #[inline]
    pub fn pair_ref(&self) -> (&K, &V) {
        let (k, v) = self.pair();
        (k, v)
    }
}

impl<K, V> Deref for RefMulti<'_, K, V> {
    type Target = V;
    #[inline]
    fn deref(&self) -> &V {
        self.value()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for RefMulti<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RefMulti")
            .field(self.key())
            .field(self.value())
            .finish()
    }
}

/// Exclusive access to the value of one entry met by [`IterMut`]. Keeps
/// the entry's shard write-locked (with the iterator and the other
/// `RefMutMulti` of the shard) while it lives. `!Send`.
#[must_use = "the shard stays write-locked while the guard lives"]
pub struct RefMutMulti<'a, K, V> {
    _shard: Rc<ShardWrite<'a, K, V>>,
    entry: NonNull<(K, V)>,
}

impl<K, V> RefMutMulti<'_, K, V> {
    /// The key as stored in the map.
    #[inline]
    pub fn key(&self) -> &K {
        // SAFETY: the entry is in the table whose write lock `_shard`
        // holds; the iterator lends each entry once, so only this guard
        // reaches it.
        unsafe { &self.entry.as_ref().0 }
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &V {
        // SAFETY: as in `key`.
        unsafe { &self.entry.as_ref().1 }
    }

    /// The value, mutably.
    #[inline]
    pub fn value_mut(&mut self) -> &mut V {
        // SAFETY: as in `key`; `&mut self` makes the access unique.
        unsafe { &mut self.entry.as_mut().1 }
    }

    /// Key and value, the value mutable.
    #[inline]
    pub fn pair_mut(&mut self) -> (&K, &mut V) {
        // SAFETY: as in `value_mut`; the key is only read.
        let (k, v) = unsafe { self.entry.as_mut() };
        (k, v)
    }
}

impl<K, V> Deref for RefMutMulti<'_, K, V> {
    type Target = V;
    #[inline]
    fn deref(&self) -> &V {
        self.value()
    }
}

impl<K, V> DerefMut for RefMutMulti<'_, K, V> {
    #[inline]
    fn deref_mut(&mut self) -> &mut V {
        self.value_mut()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for RefMutMulti<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RefMutMulti")
            .field(self.key())
            .field(self.value())
            .finish()
    }
}

/// The shard an iterator is in: hashbrown's iterator over its table and
/// the guard that locks it (dropped in that order).
type ReadVisit<'a, K, V> = (hash_table::Iter<'a, (K, V)>, Rc<ShardRead<'a, K, V>>);
/// As [`ReadVisit`], write-locked.
type WriteVisit<'a, K, V> = (hash_table::IterMut<'a, (K, V)>, Rc<ShardWrite<'a, K, V>>);

/// The entries of a map, each lent as a [`RefMulti`]; from
/// [`ConcurrentHashMap::iter`]. Read-locks a shard when it reaches it and
/// lets it go when it moves on and no `RefMulti` of it is left.
pub struct Iter<'a, K, V, S> {
    map: &'a ConcurrentHashMap<K, V, S>,
    next_shard: usize,
    /// The shard being visited: its guard, and hashbrown's iterator over
    /// the table that guard read-locks. The iterator is only advanced
    /// while the guard is alive (both are replaced together; the iterator
    /// is dropped first).
    current: Option<ReadVisit<'a, K, V>>,
}

impl<'a, K, V, S> Iter<'a, K, V, S> {
    pub(super) fn new(map: &'a ConcurrentHashMap<K, V, S>) -> Self {
        Iter {
            map,
            next_shard: 0,
            current: None,
        }
    }
}

impl<'a, K, V, S> Iterator for Iter<'a, K, V, S> {
    type Item = RefMulti<'a, K, V>;

    fn next(&mut self) -> Option<RefMulti<'a, K, V>> {
        loop {
            if let Some((entries, guard)) = &mut self.current {
                if let Some(entry) = entries.next() {
                    return Some(RefMulti {
                        _shard: Rc::clone(guard),
                        entry: NonNull::from(entry),
                    });
                }
            }
            // Let the finished shard go before locking the next one.
            self.current = None;
            let index = self.next_shard;
            if index >= self.map.shard_count() {
                return None;
            }
            self.next_shard += 1;
            let guard = Rc::new(self.map.read_at(index, "iter"));
            let table: *const Table<K, V> = &**guard;
            // SAFETY: the table lives as long as the map (`'a`); it is
            // read-locked while `guard` (kept next to the iterator, and
            // in every `RefMulti` made from it) lives, and the iterator is
            // dropped with the guard, never used after it.
            let entries = unsafe { (*table).iter() };
            self.current = Some((entries, guard));
        }
    }
}

impl<K, V, S> fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("next_shard", &self.next_shard)
            .finish_non_exhaustive()
    }
}

/// The entries of a map, each lent as a [`RefMutMulti`]; from
/// [`ConcurrentHashMap::iter_mut`]. Write-locks a shard when it reaches it
/// and lets it go when it moves on and no `RefMutMulti` of it is left.
pub struct IterMut<'a, K, V, S> {
    map: &'a ConcurrentHashMap<K, V, S>,
    next_shard: usize,
    /// As in [`Iter`], with the write lock.
    current: Option<WriteVisit<'a, K, V>>,
}

impl<'a, K, V, S> IterMut<'a, K, V, S> {
    pub(super) fn new(map: &'a ConcurrentHashMap<K, V, S>) -> Self {
        IterMut {
            map,
            next_shard: 0,
            current: None,
        }
    }
}

impl<'a, K, V, S> Iterator for IterMut<'a, K, V, S> {
    type Item = RefMutMulti<'a, K, V>;

    fn next(&mut self) -> Option<RefMutMulti<'a, K, V>> {
        loop {
            if let Some((entries, guard)) = &mut self.current {
                if let Some(entry) = entries.next() {
                    return Some(RefMutMulti {
                        _shard: Rc::clone(guard),
                        entry: NonNull::from(entry),
                    });
                }
            }
            self.current = None;
            let index = self.next_shard;
            if index >= self.map.shard_count() {
                return None;
            }
            self.next_shard += 1;
            let mut guard = self.map.write_at(index, "iter_mut");
            let table: *mut Table<K, V> = &mut *guard;
            // SAFETY: as in `Iter::next`, with the write lock: nobody else
            // reaches the table while `guard` lives, and hashbrown's
            // `IterMut` lends each entry once, so the `RefMutMulti` made
            // from them never alias. The guard itself only touches the
            // table when dropped (to publish the length), after every
            // `RefMutMulti` and the iterator are gone.
            let entries = unsafe { (*table).iter_mut() };
            self.current = Some((entries, Rc::new(guard)));
        }
    }
}

impl<K, V, S> fmt::Debug for IterMut<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterMut")
            .field("next_shard", &self.next_shard)
            .finish_non_exhaustive()
    }
}
