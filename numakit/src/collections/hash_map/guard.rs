//! [`Ref`] and [`RefMut`]: one entry of the map, with its shard locked
//! (shared or exclusive) for as long as the guard lives.

use super::held::{self, ShardKey};
use super::Table;
use crate::collections::primitive::{AtomicUsize, Ordering};
use crate::sync::{RwLockReadGuard, RwLockWriteGuard};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A shard's table under a read lock, recorded in the thread's
/// [`held`] table until released.
pub(super) struct ShardRead<'a, K, V> {
    table: RwLockReadGuard<'a, Table<K, V>>,
    key: ShardKey,
}

impl<'a, K, V> ShardRead<'a, K, V> {
    /// `table` was just taken, and recorded with
    /// [`held::note_read`]`(key)`.
    #[inline]
    pub(super) fn new(table: RwLockReadGuard<'a, Table<K, V>>, key: ShardKey) -> Self {
        ShardRead { table, key }
    }
}

impl<K, V> Deref for ShardRead<'_, K, V> {
    type Target = Table<K, V>;
    #[inline]
    fn deref(&self) -> &Table<K, V> {
        &self.table
    }
}

impl<K, V> Drop for ShardRead<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        // The lock itself is released right after (the guard field).
        held::release_read(self.key);
    }
}

/// A shard's table under its write lock, recorded in the thread's
/// [`held`] table; publishes the shard's length (read by
/// [`len`](super::ConcurrentHashMap::len) without locking) when the lock
/// is released.
pub(super) struct ShardWrite<'a, K, V> {
    table: RwLockWriteGuard<'a, Table<K, V>>,
    len: &'a AtomicUsize,
    key: ShardKey,
}

impl<'a, K, V> ShardWrite<'a, K, V> {
    /// `table` was just taken, and recorded with
    /// [`held::note_write`]`(key)`.
    #[inline]
    pub(super) fn new(
        table: RwLockWriteGuard<'a, Table<K, V>>,
        len: &'a AtomicUsize,
        key: ShardKey,
    ) -> Self {
        ShardWrite { table, len, key }
    }
}

impl<K, V> Deref for ShardWrite<'_, K, V> {
    type Target = Table<K, V>;
    #[inline]
    fn deref(&self) -> &Table<K, V> {
        &self.table
    }
}

impl<K, V> DerefMut for ShardWrite<'_, K, V> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Table<K, V> {
        &mut self.table
    }
}

impl<K, V> Drop for ShardWrite<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        // Still under the lock (the guard field drops after this).
        self.len.store(self.table.len(), Ordering::Relaxed);
        held::release_write(self.key);
    }
}

/// Shared access to one entry of a
/// [`ConcurrentHashMap`](super::ConcurrentHashMap), from
/// [`get`](super::ConcurrentHashMap::get). Holds its shard's read lock:
/// other readers of the shard proceed, writers to it wait until the guard
/// is dropped. `!Send`.
///
/// While a thread holds a `Ref`, it may read the map again — even the same
/// shard, even while a writer waits for it (the map's reads of a shard the
/// thread already reads pass waiting writers) — but a write to the `Ref`'s
/// shard from that thread (insert, remove, `get_mut`, `update`, `entry`,
/// ...) would wait for the thread itself, so it **panics** instead (see
/// [the map's rules](super::ConcurrentHashMap#one-thread-several-guards)).
/// Drop the guard first, or copy the value out with
/// [`get_cloned`](super::ConcurrentHashMap::get_cloned).
#[must_use = "the shard stays read-locked while the guard lives"]
pub struct Ref<'a, K, V> {
    _shard: ShardRead<'a, K, V>,
    entry: NonNull<(K, V)>,
}

impl<'a, K, V> Ref<'a, K, V> {
    /// # Safety
    /// `entry` points into the table `shard` guards.
    #[inline]
    pub(super) unsafe fn new(shard: ShardRead<'a, K, V>, entry: NonNull<(K, V)>) -> Self {
        Ref {
            _shard: shard,
            entry,
        }
    }

    #[inline]
    fn pair(&self) -> &(K, V) {
        // SAFETY: the entry is in the table whose read lock `_shard` holds:
        // no writer can move or drop it while the guard lives.
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

impl<K, V> Deref for Ref<'_, K, V> {
    type Target = V;
    #[inline]
    fn deref(&self) -> &V {
        self.value()
    }
}

// SAFETY: sharing a `Ref` shares `&K` and `&V` only.
unsafe impl<K: Sync, V: Sync> Sync for Ref<'_, K, V> {}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Ref<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ref")
            .field(self.key())
            .field(self.value())
            .finish()
    }
}

/// Exclusive access to one entry of a
/// [`ConcurrentHashMap`](super::ConcurrentHashMap), from
/// [`get_mut`](super::ConcurrentHashMap::get_mut) or an
/// [`Entry`](super::Entry). Holds its shard's write lock: every other
/// access to the shard waits until the guard is dropped. `!Send`.
///
/// While a thread holds a `RefMut`, any use of the guard's shard from that
/// thread (a read or a write) would wait for the thread itself, so it
/// **panics** instead (see
/// [the map's rules](super::ConcurrentHashMap#one-thread-several-guards));
/// other shards can be used.
#[must_use = "the shard stays write-locked while the guard lives"]
pub struct RefMut<'a, K, V> {
    _shard: ShardWrite<'a, K, V>,
    entry: NonNull<(K, V)>,
}

impl<'a, K, V> RefMut<'a, K, V> {
    /// # Safety
    /// `entry` points into the table `shard` guards.
    #[inline]
    pub(super) unsafe fn new(shard: ShardWrite<'a, K, V>, entry: NonNull<(K, V)>) -> Self {
        RefMut {
            _shard: shard,
            entry,
        }
    }

    /// The key as stored in the map.
    #[inline]
    pub fn key(&self) -> &K {
        // SAFETY: the entry is in the table whose write lock `_shard` holds;
        // only this guard reaches it.
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

    /// Downgrade to the pair `(&K, &mut V)`.
    #[inline]
    pub fn pair_mut(&mut self) -> (&K, &mut V) {
        // SAFETY: as in `value_mut`; the key is only read.
        let (k, v) = unsafe { self.entry.as_mut() };
        (k, v)
    }
}

impl<K, V> Deref for RefMut<'_, K, V> {
    type Target = V;
    #[inline]
    fn deref(&self) -> &V {
        self.value()
    }
}

impl<K, V> DerefMut for RefMut<'_, K, V> {
    #[inline]
    fn deref_mut(&mut self) -> &mut V {
        self.value_mut()
    }
}

// SAFETY: sharing a `RefMut` shares `&K` and `&V` only (`&mut V` needs
// `&mut RefMut`).
unsafe impl<K: Sync, V: Sync> Sync for RefMut<'_, K, V> {}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for RefMut<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RefMut")
            .field(self.key())
            .field(self.value())
            .finish()
    }
}

/// The answer of a lookup that does not wait
/// ([`try_get`](super::ConcurrentHashMap::try_get),
/// [`try_get_mut`](super::ConcurrentHashMap::try_get_mut)), as dashmap's
/// `TryResult`.
#[derive(Debug)]
#[must_use = "a `Present` guard keeps its shard locked while it lives"]
pub enum TryResult<R> {
    /// The key is there: the guard.
    Present(R),
    /// The key is not there.
    Absent,
    /// The key's shard is locked in a way that would make the caller wait
    /// (or, for a shard the calling thread holds, wait for itself).
    Locked,
}

impl<R> TryResult<R> {
    /// Whether the key was there.
    pub fn is_present(&self) -> bool {
        matches!(self, TryResult::Present(_))
    }

    /// Whether the key was not there.
    pub fn is_absent(&self) -> bool {
        matches!(self, TryResult::Absent)
    }

    /// Whether the shard was locked.
    pub fn is_locked(&self) -> bool {
        matches!(self, TryResult::Locked)
    }

    /// The guard, if the key was there.
    pub fn present(self) -> Option<R> {
        match self {
            TryResult::Present(r) => Some(r),
            TryResult::Absent | TryResult::Locked => None,
        }
    }
}
