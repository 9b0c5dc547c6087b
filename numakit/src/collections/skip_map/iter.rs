//! The map's lock guards, [`Ref`] (one entry), and the ordered iterators
//! [`Range`] / [`Iter`], which lend each entry as a [`RefMulti`].

use super::{tower, Link, Node, State};
use crate::collections::hash_map::held::{self, ShardKey};
use crate::collections::primitive::{AtomicUsize, Ordering};
use crate::sync::{RwLockReadGuard, RwLockWriteGuard};
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, Deref, DerefMut, RangeBounds, RangeFull};
use std::ptr::NonNull;
use std::rc::Rc;

/// The map read-locked, recorded in the thread's [`held`] table until
/// released.
pub(super) struct MapRead<'a, K, V> {
    state: RwLockReadGuard<'a, State<K, V>>,
    key: ShardKey,
}

impl<'a, K, V> MapRead<'a, K, V> {
    /// `state` was just taken and recorded with [`held::note_read`]`(key)`.
    #[inline]
    pub(super) fn new(state: RwLockReadGuard<'a, State<K, V>>, key: ShardKey) -> Self {
        MapRead { state, key }
    }
}

impl<K, V> Deref for MapRead<'_, K, V> {
    type Target = State<K, V>;
    #[inline]
    fn deref(&self) -> &State<K, V> {
        &self.state
    }
}

impl<K, V> Drop for MapRead<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        // The lock itself is released right after (the guard field).
        held::release_read(self.key);
    }
}

/// The map write-locked, recorded in the thread's [`held`] table;
/// publishes the length (read by [`len`](super::SkipMap::len) without a
/// lock) when released.
pub(super) struct MapWrite<'a, K, V> {
    state: RwLockWriteGuard<'a, State<K, V>>,
    len: &'a AtomicUsize,
    key: ShardKey,
}

impl<'a, K, V> MapWrite<'a, K, V> {
    /// `state` was just taken and recorded with [`held::note_write`]`(key)`.
    #[inline]
    pub(super) fn new(
        state: RwLockWriteGuard<'a, State<K, V>>,
        len: &'a AtomicUsize,
        key: ShardKey,
    ) -> Self {
        MapWrite { state, len, key }
    }
}

impl<K, V> Deref for MapWrite<'_, K, V> {
    type Target = State<K, V>;
    #[inline]
    fn deref(&self) -> &State<K, V> {
        &self.state
    }
}

impl<K, V> DerefMut for MapWrite<'_, K, V> {
    #[inline]
    fn deref_mut(&mut self) -> &mut State<K, V> {
        &mut self.state
    }
}

impl<K, V> Drop for MapWrite<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        // Still under the lock (the guard field drops after this).
        self.len.store(self.state.len, Ordering::Relaxed);
        held::release_write(self.key);
    }
}

/// Shared access to one entry of a [`SkipMap`](super::SkipMap), from
/// [`get`](super::SkipMap::get), [`first`](super::SkipMap::first) or
/// [`last`](super::SkipMap::last). Holds the map's read lock: other
/// readers proceed, writers wait until the guard is dropped. `!Send`.
///
/// While a thread holds a `Ref` it may read the map again (that never
/// waits), but a write from that thread would wait for the thread itself,
/// so it **panics** instead (see
/// [the map's rules](super::SkipMap#one-thread-several-guards)). Drop the
/// guard first, or copy the value out with
/// [`get_cloned`](super::SkipMap::get_cloned).
#[must_use = "the map stays read-locked while the guard lives"]
pub struct Ref<'a, K, V> {
    _map: MapRead<'a, K, V>,
    node: NonNull<Node<K, V>>,
}

impl<'a, K, V> Ref<'a, K, V> {
    /// # Safety
    /// `node` is linked in the map that `map` read-locks.
    #[inline]
    pub(super) unsafe fn new(map: MapRead<'a, K, V>, node: NonNull<Node<K, V>>) -> Self {
        Ref { _map: map, node }
    }

    #[inline]
    fn node(&self) -> &Node<K, V> {
        // SAFETY: the node is linked in the map whose read lock `_map`
        // holds: no writer can unlink, move or free it while the guard
        // lives.
        unsafe { self.node.as_ref() }
    }

    /// The key as stored in the map.
    #[inline]
    pub fn key(&self) -> &K {
        &self.node().key
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &V {
        &self.node().value
    }

    /// Key and value.
    #[inline]
    pub fn pair(&self) -> (&K, &V) {
        let n = self.node();
        (&n.key, &n.value)
    }
}

impl<K, V> Deref for Ref<'_, K, V> {
    type Target = V;
    #[inline]
    fn deref(&self) -> &V {
        self.value()
    }
}

// SAFETY: sharing a `Ref` shares `&K` and `&V` only; the read guard inside
// is Sync for a Sync state (its `State` is only read through it).
unsafe impl<K: Sync, V: Sync> Sync for Ref<'_, K, V> {}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Ref<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ref")
            .field(self.key())
            .field(self.value())
            .finish()
    }
}

/// Shared access to one entry met by a [`Range`] or [`Iter`]. Keeps the
/// map read-locked (with the iterator and the other `RefMulti` of it)
/// while it lives. `!Send`.
#[must_use = "the map stays read-locked while the guard lives"]
pub struct RefMulti<'a, K, V> {
    _map: Rc<MapRead<'a, K, V>>,
    node: NonNull<Node<K, V>>,
}

impl<K, V> RefMulti<'_, K, V> {
    #[inline]
    fn node(&self) -> &Node<K, V> {
        // SAFETY: the node is linked in the map whose read lock `_map`
        // holds (shared with the iterator): no writer can unlink or free
        // it while the guard lives.
        unsafe { self.node.as_ref() }
    }

    /// The key as stored in the map.
    #[inline]
    pub fn key(&self) -> &K {
        &self.node().key
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &V {
        &self.node().value
    }

    /// Key and value.
    #[inline]
    pub fn pair(&self) -> (&K, &V) {
        let n = self.node();
        (&n.key, &n.value)
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

/// The entries of a [`SkipMap`](super::SkipMap) whose keys lie in a
/// range, in ascending key order, each lent as a [`RefMulti`]; from
/// [`range`](super::SkipMap::range). `!Send`.
///
/// The map is read-locked from the call to `range` until the iterator is
/// exhausted or dropped and every `RefMulti` it lent is dropped: it sees
/// one snapshot of the map, and writers wait meanwhile. A range whose
/// start lies after its end (inverted), or `(Excluded(x), Excluded(x))`,
/// is empty (std's `BTreeMap::range` panics on those).
#[must_use = "iterators are lazy; the map stays read-locked while this lives"]
pub struct Range<'a, K, V, Q: ?Sized, R> {
    /// `None` once exhausted (the lock is let go then, unless a
    /// `RefMulti` still holds it).
    map: Option<Rc<MapRead<'a, K, V>>>,
    next: Link<K, V>,
    range: R,
    _q: PhantomData<fn(&Q)>,
}

/// Every entry of a [`SkipMap`](super::SkipMap) in ascending key order;
/// from [`iter`](super::SkipMap::iter). See [`Range`].
pub type Iter<'a, K, V> = Range<'a, K, V, K, RangeFull>;

impl<'a, K, V, Q: ?Sized, R> Range<'a, K, V, Q, R> {
    /// # Safety
    /// `first` is null or a node linked in the map that `map` read-locks.
    pub(super) unsafe fn new(map: MapRead<'a, K, V>, first: Link<K, V>, range: R) -> Self {
        Range {
            map: Some(Rc::new(map)),
            next: first,
            range,
            _q: PhantomData,
        }
    }
}

impl<'a, K, V, Q, R> Iterator for Range<'a, K, V, Q, R>
where
    K: Borrow<Q>,
    Q: Ord + ?Sized,
    R: RangeBounds<Q>,
{
    type Item = RefMulti<'a, K, V>;

    fn next(&mut self) -> Option<RefMulti<'a, K, V>> {
        let map = self.map.as_ref()?;
        let node = match NonNull::new(self.next) {
            Some(n) => n,
            None => {
                self.map = None;
                return None;
            }
        };
        // SAFETY: `next` is linked in the map `map` read-locks (the
        // iterator holds the lock from `new` until here).
        let key = unsafe { &node.as_ref().key };
        let within = match self.range.end_bound() {
            Bound::Unbounded => true,
            Bound::Included(end) => key.borrow() <= end,
            Bound::Excluded(end) => key.borrow() < end,
        };
        if !within {
            self.next = std::ptr::null_mut();
            self.map = None;
            return None;
        }
        let item = RefMulti {
            _map: Rc::clone(map),
            node,
        };
        // SAFETY: as above; level 0 of a linked node's tower is its
        // successor (null at the end).
        self.next = unsafe { *tower(node.as_ptr()) };
        Some(item)
    }
}

impl<K, V, Q: ?Sized, R> fmt::Debug for Range<'_, K, V, Q, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Range")
            .field("exhausted", &self.map.is_none())
            .finish_non_exhaustive()
    }
}
