//! Which shards the calling thread holds, and how: the record that lets a
//! second read of a shard the thread already reads skip writer preference,
//! and turns an acquisition that would wait for the thread itself into a
//! panic instead of a hang.
//!
//! A shard is named by a [`ShardKey`]: the map's id (unique for the life of
//! the process, never reused) and the shard's index. Each thread keeps its
//! records in a thread-local: up to [`INLINE`] in a fixed array that needs
//! no initialisation and no destructor (so the common path is a few loads
//! and stores at a fixed TLS offset), the rest in a vector used only when a
//! thread holds more than [`INLINE`] different shards at once.
//!
//! | record | meaning |
//! |--------|---------|
//! | `(key, n)`, `1 ≤ n < WRITE` | the thread holds `n` read guards on the shard |
//! | `(key, WRITE)` | the thread holds the shard's write guard |
//! | absent | the thread holds nothing on the shard |
//!
//! Guards are `!Send`: a guard is released on the thread that took it, so
//! its record is always in that thread's table.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

/// A shard of one map: `map id << 16 | shard index` (at most
/// [`MAX_SHARDS`](super::MAX_SHARDS) = 2¹⁶ shards).
pub(super) type ShardKey = u64;

/// Records kept without allocating.
const INLINE: usize = 8;

/// The count that means "held for writing".
const WRITE: usize = usize::MAX;

/// How the calling thread holds a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hold {
    /// This many read guards.
    Read(usize),
    /// The write guard.
    Write,
}

/// A fresh map id: 48 bits, so that `id << 16 | index` fits a `u64`; at
/// one map per nanosecond that lasts three days of maps — past that, ids
/// wrap and only a thread holding a guard of a map that old could see a
/// false match (a spurious panic or a recursive read, never unsoundness).
pub(super) fn next_map_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1)
}

#[inline]
pub(super) fn key(map_id: u64, index: usize) -> ShardKey {
    map_id << 16 | index as u64
}

struct Table {
    /// Records in use in `slots` (the first `len`).
    len: Cell<usize>,
    slots: [Cell<(ShardKey, usize)>; INLINE],
    /// Records in `SPILLED` (checked only when non-zero).
    spilled: Cell<usize>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: Cell<(ShardKey, usize)> = Cell::new((0, 0));

thread_local! {
    static HELD: Table = const {
        Table {
            len: Cell::new(0),
            slots: [EMPTY_SLOT; INLINE],
            spilled: Cell::new(0),
        }
    };
    static SPILLED: RefCell<Vec<(ShardKey, usize)>> = const { RefCell::new(Vec::new()) };
}

impl Table {
    #[inline]
    fn find(&self, key: ShardKey) -> Option<usize> {
        (0..self.len.get()).find(|&i| self.slots[i].get().0 == key)
    }
}

#[inline]
fn hold_of(count: usize) -> Hold {
    if count == WRITE {
        Hold::Write
    } else {
        Hold::Read(count)
    }
}

/// How the calling thread holds `key` now, if at all.
#[inline]
pub(super) fn get(key: ShardKey) -> Option<Hold> {
    HELD.with(|t| {
        if let Some(i) = t.find(key) {
            return Some(hold_of(t.slots[i].get().1));
        }
        if t.spilled.get() == 0 {
            return None;
        }
        spilled_get(key)
    })
}

#[cold]
fn spilled_get(key: ShardKey) -> Option<Hold> {
    SPILLED
        .try_with(|v| v.borrow().iter().find(|r| r.0 == key).map(|r| hold_of(r.1)))
        .ok()
        .flatten()
}

/// Record one more read guard on `key`.
#[inline]
pub(super) fn add_read(key: ShardKey) {
    change(key, |c| c.map_or(1, |n| n + 1));
}

/// Record the write guard on `key` (the thread held nothing on it).
#[inline]
pub(super) fn add_write(key: ShardKey) {
    change(key, |c| {
        debug_assert!(c.is_none());
        WRITE
    });
}

/// Forget one read guard on `key`.
#[inline]
pub(super) fn release_read(key: ShardKey) {
    change(key, |c| c.map_or(0, |n| n - 1));
}

/// Forget the write guard on `key`.
#[inline]
pub(super) fn release_write(key: ShardKey) {
    change(key, |_| 0);
}

/// Set the count of `key` to `f(current)`; 0 removes the record.
#[inline]
fn change(key: ShardKey, f: fn(Option<usize>) -> usize) {
    HELD.with(|t| {
        if let Some(i) = t.find(key) {
            let n = f(Some(t.slots[i].get().1));
            if n == 0 {
                let last = t.len.get() - 1;
                t.slots[i].set(t.slots[last].get());
                t.len.set(last);
            } else {
                t.slots[i].set((key, n));
            }
            return;
        }
        if t.spilled.get() > 0 && spilled_change(t, key, f) {
            return;
        }
        // Not recorded yet.
        let n = f(None);
        if n == 0 {
            return;
        }
        let len = t.len.get();
        if len < INLINE {
            t.slots[len].set((key, n));
            t.len.set(len + 1);
        } else {
            spill(t, key, n);
        }
    })
}

/// Change `key`'s record among the spilled ones; false if it is not there.
#[cold]
fn spilled_change(t: &Table, key: ShardKey, f: fn(Option<usize>) -> usize) -> bool {
    SPILLED
        .try_with(|v| {
            let mut v = v.borrow_mut();
            let Some(i) = v.iter().position(|r| r.0 == key) else {
                return false;
            };
            let n = f(Some(v[i].1));
            if n == 0 {
                v.swap_remove(i);
                t.spilled.set(v.len());
            } else {
                v[i].1 = n;
            }
            true
        })
        // During thread teardown the spilled records are gone: nothing
        // to change.
        .unwrap_or(true)
}

#[cold]
fn spill(t: &Table, key: ShardKey, n: usize) {
    // During thread teardown (a guard taken in a late thread-local
    // destructor, with more than `INLINE` shards already held) the record
    // is not kept: that guard is then not protected against waiting for
    // its own thread.
    let _ = SPILLED.try_with(|v| {
        let mut v = v.borrow_mut();
        v.push((key, n));
        t.spilled.set(v.len());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_guards_inline_and_spilled() {
        let id = next_map_id();
        let k = |i| key(id, i);
        assert_eq!(get(k(0)), None);
        add_read(k(0));
        add_read(k(0));
        assert_eq!(get(k(0)), Some(Hold::Read(2)));
        // More shards than the inline slots hold.
        for i in 1..3 * INLINE {
            add_write(k(i));
        }
        for i in 1..3 * INLINE {
            assert_eq!(get(k(i)), Some(Hold::Write), "{i}");
        }
        release_read(k(0));
        assert_eq!(get(k(0)), Some(Hold::Read(1)));
        release_read(k(0));
        assert_eq!(get(k(0)), None);
        for i in (1..3 * INLINE).rev().step_by(2) {
            release_write(k(i));
        }
        for i in 1..3 * INLINE {
            let want = (i % 2 == 0).then_some(Hold::Write);
            assert_eq!(get(k(i)), want, "{i}");
            add_read(k(3 * INLINE + i));
        }
        for i in 1..3 * INLINE {
            if i % 2 == 0 {
                release_write(k(i));
            }
            release_read(k(3 * INLINE + i));
        }
        for i in 0..6 * INLINE {
            assert_eq!(get(k(i)), None, "{i}");
        }
        HELD.with(|t| assert_eq!((t.len.get(), t.spilled.get()), (0, 0)));
        // Another map's shard 0 is another shard.
        add_read(k(0));
        assert_eq!(get(key(next_map_id(), 0)), None);
        release_read(k(0));
    }
}
