//! Which shards the calling thread holds, and how (a [`SkipMap`](crate::collections::SkipMap)
//! is recorded as shard 0 of its own id): the record that lets a
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
pub(in crate::collections) type ShardKey = u64;

/// Records kept without allocating.
const INLINE: usize = 8;

/// The count that means "held for writing".
const WRITE: usize = usize::MAX;

/// How the calling thread holds a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::collections) enum Hold {
    /// This many read guards.
    Read(usize),
    /// The write guard.
    Write,
}

/// A fresh map id: 48 bits, so that `id << 16 | index` fits a `u64`; at
/// one map per nanosecond that lasts three days of maps — past that, ids
/// wrap and only a thread holding a guard of a map that old could see a
/// false match (a spurious panic or a recursive read, never unsoundness).
pub(in crate::collections) fn next_map_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1)
}

#[inline]
pub(in crate::collections) fn key(map_id: u64, index: usize) -> ShardKey {
    map_id << 16 | index as u64
}

/// The inline records. Invariant: `SPILLED` holds records only while all
/// `INLINE` slots are in use, so `len == 0` means "nothing held" and the
/// common case (no other guard) never looks further.
struct Table {
    /// Records in use in `slots` (the first `len`).
    len: Cell<usize>,
    slots: [Cell<(ShardKey, usize)>; INLINE],
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: Cell<(ShardKey, usize)> = Cell::new((0, 0));

thread_local! {
    static HELD: Table = const {
        Table {
            len: Cell::new(0),
            slots: [EMPTY_SLOT; INLINE],
        }
    };
    static SPILLED: RefCell<Vec<(ShardKey, usize)>> = const { RefCell::new(Vec::new()) };
}

#[inline]
fn hold_of(count: usize) -> Hold {
    if count == WRITE {
        Hold::Write
    } else {
        Hold::Read(count)
    }
}

/// About to read-lock `key`: how the thread held it before. Unless it
/// holds it for writing (then nothing changes: the caller must not wait),
/// one more read guard is recorded.
#[inline]
pub(in crate::collections) fn note_read(key: ShardKey) -> Option<Hold> {
    HELD.with(|t| {
        if t.len.get() == 0 {
            t.slots[0].set((key, 1));
            t.len.set(1);
            None
        } else {
            note_slow(t, key, 1)
        }
    })
}

/// About to write-lock `key`: how the thread held it before. If it held
/// it at all nothing changes (the caller must not wait); otherwise the
/// write guard is recorded.
#[inline]
pub(in crate::collections) fn note_write(key: ShardKey) -> Option<Hold> {
    HELD.with(|t| {
        if t.len.get() == 0 {
            t.slots[0].set((key, WRITE));
            t.len.set(1);
            None
        } else {
            note_slow(t, key, WRITE)
        }
    })
}

/// A read guard on `key` was released.
#[inline]
pub(in crate::collections) fn release_read(key: ShardKey) {
    HELD.with(|t| {
        if t.len.get() == 1 && t.slots[0].get() == (key, 1) {
            t.len.set(0);
        } else {
            release_slow(t, key);
        }
    })
}

/// The write guard on `key` was released.
#[inline]
pub(in crate::collections) fn release_write(key: ShardKey) {
    HELD.with(|t| {
        if t.len.get() == 1 && t.slots[0].get() == (key, WRITE) {
            t.len.set(0);
        } else {
            release_slow(t, key);
        }
    })
}

/// `note_read` (`add == 1`) or `note_write` (`add == WRITE`) with other
/// records present.
#[cold]
#[inline(never)]
fn note_slow(t: &Table, key: ShardKey, add: usize) -> Option<Hold> {
    let len = t.len.get();
    if let Some(slot) = t.slots[..len].iter().find(|s| s.get().0 == key) {
        let n = slot.get().1;
        if n != WRITE && add == 1 {
            slot.set((key, n + 1));
        }
        return Some(hold_of(n));
    }
    if len < INLINE {
        t.slots[len].set((key, add));
        t.len.set(len + 1);
        return None;
    }
    // During thread teardown (a guard taken in a late thread-local
    // destructor while more than `INLINE` shards are held) the spilled
    // records are gone: that guard goes unrecorded and is not protected
    // against waiting for its own thread.
    SPILLED
        .try_with(|v| {
            let mut v = v.borrow_mut();
            if let Some(r) = v.iter_mut().find(|r| r.0 == key) {
                let n = r.1;
                if n != WRITE && add == 1 {
                    r.1 = n + 1;
                }
                return Some(hold_of(n));
            }
            v.push((key, add));
            None
        })
        .unwrap_or(None)
}

/// One guard on `key` released: a read count goes down, a write record
/// (or the last read) goes away.
#[cold]
#[inline(never)]
fn release_slow(t: &Table, key: ShardKey) {
    let len = t.len.get();
    if let Some(i) = (0..len).find(|&i| t.slots[i].get().0 == key) {
        let n = t.slots[i].get().1;
        if n != WRITE && n > 1 {
            t.slots[i].set((key, n - 1));
            return;
        }
        // Remove: the last inline record, or one spilled back in, fills
        // the hole (keeping the invariant).
        let refill = if len == INLINE {
            SPILLED.try_with(|v| v.borrow_mut().pop()).ok().flatten()
        } else {
            None
        };
        match refill {
            Some(r) => t.slots[i].set(r),
            None => {
                t.slots[i].set(t.slots[len - 1].get());
                t.len.set(len - 1);
            }
        }
        return;
    }
    let _ = SPILLED.try_with(|v| {
        let mut v = v.borrow_mut();
        if let Some(i) = v.iter().position(|r| r.0 == key) {
            if v[i].1 != WRITE && v[i].1 > 1 {
                v[i].1 -= 1;
            } else {
                v.swap_remove(i);
            }
        }
    });
}

/// How the calling thread holds `key` now, if at all.
#[cfg(test)]
fn get(key: ShardKey) -> Option<Hold> {
    HELD.with(|t| {
        let len = t.len.get();
        if let Some(s) = t.slots[..len].iter().find(|s| s.get().0 == key) {
            return Some(hold_of(s.get().1));
        }
        SPILLED.with(|v| v.borrow().iter().find(|r| r.0 == key).map(|r| hold_of(r.1)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_read(k: ShardKey) {
        assert_ne!(note_read(k), Some(Hold::Write));
    }
    fn add_write(k: ShardKey) {
        assert_eq!(note_write(k), None);
    }

    #[test]
    fn records_follow_guards_inline_and_spilled() {
        let id = next_map_id();
        let k = |i| key(id, i);
        assert_eq!(get(k(0)), None);
        assert_eq!(note_read(k(0)), None);
        assert_eq!(note_read(k(0)), Some(Hold::Read(1)));
        assert_eq!(get(k(0)), Some(Hold::Read(2)));
        // More shards than the inline slots hold.
        for i in 1..3 * INLINE {
            add_write(k(i));
        }
        for i in 1..3 * INLINE {
            assert_eq!(get(k(i)), Some(Hold::Write), "{i}");
            // Refused, and nothing changes.
            assert_eq!(note_read(k(i)), Some(Hold::Write), "{i}");
            assert_eq!(note_write(k(i)), Some(Hold::Write), "{i}");
        }
        assert_eq!(note_write(k(0)), Some(Hold::Read(2)));
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
        HELD.with(|t| assert_eq!(t.len.get(), 0));
        SPILLED.with(|v| assert!(v.borrow().is_empty()));
        // Another map's shard 0 is another shard.
        add_read(k(0));
        assert_eq!(get(key(next_map_id(), 0)), None);
        release_read(k(0));
    }
}
