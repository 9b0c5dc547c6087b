//! Per-thread caches and the thread-local table that finds them.
//!
//! Each thread that allocates from (or frees to) a heap gets a [`Cache`]
//! for that heap: one LIFO list of free blocks per size class, used
//! without any lock or atomic read-modify-write. A thread keeps up to
//! [`SLOTS`] caches (one per heap it uses) in a thread-local table keyed by
//! the heap's unique id; a ninth heap evicts the oldest entry.
//!
//! # Ownership protocol
//!
//! A cache lives in a page of its own (bound to the heap's node) and is
//! linked into its heap's registry for the heap's lifetime. Two parties may
//! hold it, recorded in `state`:
//!
//! | bit | set while |
//! |---|---|
//! | [`ALIVE`] | the heap exists |
//! | [`ATTACHED`] | a thread owns the lists (or a sweeper has borrowed them) |
//!
//! - a thread *attaches* by creating a cache (`ALIVE | ATTACHED`) or by
//!   adopting an abandoned one (CAS `ALIVE` → `ALIVE | ATTACHED`), blocks
//!   included;
//! - a thread *detaches* at exit (a `pthread` key destructor) or on
//!   eviction: `fetch_and(!ATTACHED)`; if `ALIVE` was already clear the
//!   heap is gone and the thread unmaps the cache;
//! - a dropped heap does `fetch_and(!ALIVE)` on every cache; if `ATTACHED`
//!   was clear it unmaps the cache, else the thread will.
//!
//! Whoever clears the last bit unmaps, so a thread may outlive a heap and
//! a heap may outlive its threads. A detaching thread never touches the
//! heap itself (it may be being dropped at that moment): the blocks of an
//! abandoned cache go back to use when the next thread adopts the cache, or
//! when the heap sweeps abandoned caches before mapping more memory.
//!
//! Nothing here allocates through the global allocator: the table is a
//! `const`-initialised thread-local without a destructor (no registration),
//! and the exit hook is a `pthread` key, so the
//! [`GlobalNodeHeap`](super::GlobalNodeHeap) adapter can use it.

use super::classes::NUM_CLASSES;
use super::os;
use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{compiler_fence, AtomicU32, AtomicU64, Ordering};

/// The heap exists.
pub(crate) const ALIVE: u32 = 1;
/// A thread owns the cache's lists.
pub(crate) const ATTACHED: u32 = 2;

/// Heaps one thread keeps a cache for at a time.
pub(crate) const SLOTS: usize = 8;

/// One size class in a thread's cache.
#[derive(Debug)]
pub(crate) struct ClassCache {
    /// Free blocks, linked through their first word (owner only).
    pub(crate) head: Cell<*mut u8>,
    /// Blocks on `head` (owner only).
    pub(crate) count: Cell<u32>,
    /// Blocks kept before half are given back.
    pub(crate) limit: u32,
    /// Blocks handed out from this cache. Single writer (the owner, with a
    /// plain load and store), read by `stats` from any thread.
    pub(crate) allocs: AtomicU64,
    /// Blocks freed through this cache (kept or passed on).
    pub(crate) frees: AtomicU64,
    /// Of those, the blocks freed while the thread ran on another node,
    /// which went straight back to the heap.
    pub(crate) remote_frees: AtomicU64,
}

/// Add one to a single-writer counter without a locked instruction.
#[inline(always)]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// A thread's cache for one heap.
#[derive(Debug)]
pub(crate) struct Cache {
    /// [`ALIVE`] | [`ATTACHED`].
    pub(crate) state: AtomicU32,
    /// The next cache in the heap's registry; written once, before the
    /// cache is published.
    pub(crate) next: *mut Cache,
    /// Bytes of the cache's own mapping.
    pub(crate) map_len: usize,
    /// Whether the owner ran on the heap's node when last looked (owner
    /// only). Frees on another node go back to the heap.
    pub(crate) local: Cell<bool>,
    /// Slow paths left before `local` is looked at again (owner only).
    pub(crate) recheck: Cell<u32>,
    pub(crate) classes: [ClassCache; NUM_CLASSES],
}

impl Cache {
    pub(crate) fn new(map_len: usize, local: bool) -> Cache {
        Cache {
            state: AtomicU32::new(ALIVE | ATTACHED),
            next: ptr::null_mut(),
            map_len,
            local: Cell::new(local),
            recheck: Cell::new(0),
            classes: std::array::from_fn(|c| ClassCache {
                head: Cell::new(ptr::null_mut()),
                count: Cell::new(0),
                limit: super::classes::cache_limit(c),
                allocs: AtomicU64::new(0),
                frees: AtomicU64::new(0),
                remote_frees: AtomicU64::new(0),
            }),
        }
    }
}

/// Detach the calling thread (or a sweeper) from `cache`.
///
/// # Safety
/// The caller holds `cache` attached and uses it no more.
pub(crate) unsafe fn detach(cache: NonNull<Cache>) {
    // SAFETY: attached, so the cache is mapped until we clear our bit; read
    // the length first, since the heap may unmap it right after.
    let len = unsafe { cache.as_ref().map_len };
    // SAFETY: as above.
    let prev = unsafe { cache.as_ref() }
        .state
        .fetch_and(!ATTACHED, Ordering::AcqRel);
    if prev & ALIVE == 0 {
        // SAFETY: the heap is gone and we held the last bit: nobody else
        // can reach the cache.
        unsafe { os::unmap(cache.cast(), len) };
    }
}

/// `ThreadSlots::state` values.
const FRESH: u8 = 0;
const LIVE: u8 = 1;
const DEAD: u8 = 2;

/// The calling thread's caches, keyed by heap id (0: empty slot), and
/// where the node-local allocator last saw the thread run.
pub(crate) struct ThreadSlots {
    uid: [Cell<u64>; SLOTS],
    cache: [Cell<*mut Cache>; SLOTS],
    /// [`FRESH`] until the exit hook is registered, then [`LIVE`]; [`DEAD`]
    /// once the exit hook ran (or could not be registered): no caches.
    state: Cell<u8>,
    /// The slot the next eviction takes.
    victim: Cell<u8>,
    /// The node-local allocator's view of the thread (see `node_local`).
    pub(crate) here: Here,
    /// The thread's cache of the node-local heap of node `home_tag - 1`,
    /// which its allocations go to while `here.left` lasts: the fast path
    /// needs no heap look-up. Set only while no detour is in force and the
    /// thread runs on that node (the cache is `local`); null otherwise,
    /// cleared before the cache is detached, when the thread moves, when a
    /// detour starts and when the cache stops being local.
    home: Cell<*mut Cache>,
    /// The registry tag (node + 1) of the home cache's node, [`NO_HOME`]
    /// exactly when `home` is null: a free compares the block's registry
    /// tag with it, and one compare says both "ours" and "home".
    home_tag: Cell<u32>,
}

/// `ThreadSlots::home_tag` without a home cache: no registry tag (a
/// `u16`) equals it.
const NO_HOME: u32 = u32::MAX;

/// Where the calling thread runs, as the node-local allocator last read
/// it (kept beside the caches so that its fast path reads one
/// thread-local).
pub(crate) struct Here {
    /// The node last read with `getcpu` (`u32::MAX`: never read).
    pub(crate) node: Cell<u32>,
    /// Allocations before the node is read again.
    pub(crate) left: Cell<u32>,
    /// The node allocations go to while `node` is exhausted (nearest).
    pub(crate) detour: Cell<u32>,
    /// Allocations left on the detour.
    pub(crate) detour_left: Cell<u32>,
}

impl ThreadSlots {
    const fn new() -> Self {
        ThreadSlots {
            uid: [const { Cell::new(0) }; SLOTS],
            cache: [const { Cell::new(ptr::null_mut()) }; SLOTS],
            state: Cell::new(FRESH),
            victim: Cell::new(0),
            here: Here {
                node: Cell::new(u32::MAX),
                left: Cell::new(0),
                detour: Cell::new(0),
                detour_left: Cell::new(0),
            },
            home: Cell::new(ptr::null_mut()),
            home_tag: Cell::new(NO_HOME),
        }
    }

    /// The home cache, if the thread's allocation may take the fast path
    /// (there is one, and the thread's node is not due to be read again).
    #[inline(always)]
    pub(crate) fn home_for_alloc(&self) -> Option<&Cache> {
        let cache = self.home.get();
        if self.here.left.get() == 0 || cache.is_null() {
            return None;
        }
        // SAFETY: a non-null home is one of this thread's attached caches
        // (it is cleared before that cache is detached) of a node-local
        // heap, which is never destroyed: mapped, and its owner-only cells
        // are this thread's.
        Some(unsafe { &*cache })
    }

    /// The home cache, if it is the cache of the node-local heap whose
    /// registry tag is `tag` (node + 1; 0, "not a segment", never is).
    #[inline(always)]
    pub(crate) fn home_tagged(&self, tag: u32) -> Option<&Cache> {
        if self.home_tag.get() != tag {
            return None;
        }
        // SAFETY: `home_tag` is not NO_HOME (no `u16` tag equals it), so
        // `home` is not null; then as in `home_for_alloc`.
        Some(unsafe { &*self.home.get() })
    }

    /// Forget the home cache. The tag goes first: a free that interrupts
    /// this (from a signal handler) never sees the tag with a null home.
    #[inline]
    pub(crate) fn clear_home(&self) {
        self.home_tag.set(NO_HOME);
        // Kept in this order for a handler on this thread.
        compiler_fence(Ordering::SeqCst);
        self.home.set(ptr::null_mut());
    }

    /// The thread now runs on another node: see [`thread_moved`].
    pub(crate) fn moved(&self) {
        self.clear_home();
        for i in 0..SLOTS {
            // SAFETY: a non-null slot is this thread's attached cache, whose
            // owner-only cells only this thread touches.
            if let Some(cache) = unsafe { self.cache[i].get().as_ref() } {
                cache.local.set(false);
                cache.recheck.set(0);
            }
        }
    }

    /// Make the thread's cache of heap `uid` (the node-local heap of
    /// `node`, the node the thread was last read to run on) the home
    /// cache, if it is in the first slot (where an allocation from that
    /// heap just left it), no detour is in force and the node reading is
    /// not due (`here.left` is 0 also when a slow path just found the
    /// thread away from its node: see [`home_not_local`](Self::home_not_local));
    /// else forget the home. The cache is marked local: the thread runs on
    /// its heap's node.
    #[inline]
    pub(crate) fn set_home(&self, uid: u64, node: u32) {
        let cache = self.cache[0].get();
        let tag = node.checked_add(1).filter(|&t| t != NO_HOME);
        match (tag, NonNull::new(cache)) {
            (Some(tag), Some(c))
                if self.uid[0].get() == uid
                    && self.state.get() == LIVE
                    && self.here.detour_left.get() == 0
                    && self.here.left.get() != 0 =>
            {
                // SAFETY: a non-null slot is this thread's attached cache,
                // whose owner-only cells only this thread touches.
                unsafe { c.as_ref() }.local.set(true);
                self.home.set(cache);
                // Kept in this order for a handler on this thread.
                compiler_fence(Ordering::SeqCst);
                self.home_tag.set(tag);
            }
            _ => self.clear_home(),
        }
    }

    /// [`set_home`](Self::set_home) after a free of one of `node`'s
    /// blocks, which left the thread's cache of heap `uid` in the first
    /// slot: only when that cache counts itself local (its own reading of
    /// the node, which a free does not override); nothing otherwise.
    ///
    /// A free may run in a signal handler that interrupted this thread
    /// half-way through [`clear_home`](Self::clear_home) or `set_home`
    /// (allocators' own paths never free): the home and its tag disagree
    /// then, and the interrupted code will finish its own update, so the
    /// free leaves them alone.
    #[inline]
    pub(crate) fn set_home_after_free(&self, uid: u64, node: u32) {
        if self.home.get().is_null() != (self.home_tag.get() == NO_HOME) {
            return;
        }
        // SAFETY: a non-null slot is this thread's attached cache, whose
        // owner-only cells only this thread touches.
        let local = unsafe { self.cache[0].get().as_ref() }.is_some_and(|c| c.local.get());
        if self.uid[0].get() == uid && local {
            self.set_home(uid, node);
        }
    }

    /// The home cache `cache` was found away from its node: forget it, and
    /// have the next allocation read the thread's node again.
    #[inline]
    pub(crate) fn home_not_local(&self, cache: &Cache) {
        if ptr::eq(self.home.get(), cache) {
            self.clear_home();
            self.here.left.set(0);
        }
    }
}

thread_local! {
    // `const` and without Drop: a plain `#[thread_local]` static, never
    // registered with a destructor, never allocating.
    static THREAD: ThreadSlots = const { ThreadSlots::new() };
}

/// Run `f` on the calling thread's table (`None` if the thread-local were
/// gone, which a `const` one without destructor never is).
#[inline(always)]
pub(crate) fn with_thread<R>(f: impl FnOnce(&ThreadSlots) -> R) -> Option<R> {
    THREAD.try_with(f).ok()
}

/// The calling thread's cache for heap `uid`, or null. The heap used last
/// is in slot 0: one compare on the common path.
#[inline(always)]
pub(crate) fn lookup(uid: u64) -> *mut Cache {
    THREAD
        .try_with(|t| {
            if t.uid[0].get() == uid {
                t.cache[0].get()
            } else {
                lookup_rest(t, uid)
            }
        })
        .unwrap_or(ptr::null_mut())
}

/// The other slots; a hit moves to slot 0.
#[inline(never)]
fn lookup_rest(t: &ThreadSlots, uid: u64) -> *mut Cache {
    for i in 1..SLOTS {
        if t.uid[i].get() == uid {
            t.uid[i].swap(&t.uid[0]);
            t.cache[i].swap(&t.cache[0]);
            return t.cache[0].get();
        }
    }
    ptr::null_mut()
}

/// Give the calling thread a cache for heap `uid`, made or adopted by
/// `acquire`; null when the thread cannot have caches (exiting, or the
/// exit hook could not be registered) or `acquire` fails.
pub(crate) fn attach(uid: u64, acquire: impl FnOnce() -> *mut Cache) -> *mut Cache {
    THREAD
        .try_with(|t| {
            if t.state.get() == DEAD {
                return ptr::null_mut();
            }
            if t.state.get() == FRESH {
                if !register_exit_hook(t) {
                    t.state.set(DEAD);
                    return ptr::null_mut();
                }
                t.state.set(LIVE);
            }
            let cache = acquire();
            if cache.is_null() {
                return cache;
            }
            let slot = match (0..SLOTS).find(|&i| t.uid[i].get() == 0) {
                Some(i) => i,
                None => {
                    let i = t.victim.get() as usize % SLOTS;
                    t.victim.set(((i + 1) % SLOTS) as u8);
                    if let Some(old) = NonNull::new(t.cache[i].get()) {
                        if t.home.get() == old.as_ptr() {
                            t.clear_home();
                        }
                        // SAFETY: the slot held this thread's attached cache,
                        // and the slot is overwritten right below.
                        unsafe { detach(old) };
                    }
                    i
                }
            };
            // The new heap goes to slot 0, whose entry moves to the free slot.
            t.uid[slot].set(t.uid[0].get());
            t.cache[slot].set(t.cache[0].get());
            t.uid[0].set(uid);
            t.cache[0].set(cache);
            cache
        })
        .unwrap_or(ptr::null_mut())
}

/// Whether the calling thread's home cache is unset, or one of the caches
/// it holds (never one it let go of: evicted, or detached at exit).
#[cfg(test)]
pub(crate) fn home_is_held() -> bool {
    THREAD.with(|t| {
        let home = t.home.get();
        // The fast free's one compare relies on these.
        assert_eq!(home.is_null(), t.home_tag.get() == NO_HOME);
        // SAFETY: as in `home_for_alloc`.
        assert!(unsafe { home.as_ref() }.is_none_or(|c| c.local.get()));
        home.is_null()
            || (t.state.get() == LIVE
                && (0..SLOTS).any(|i| t.uid[i].get() != 0 && t.cache[i].get() == home))
    })
}

/// What a slow path does when it finds the home cache away from its node.
#[cfg(test)]
pub(crate) fn home_found_away() {
    THREAD.with(|t| {
        // SAFETY: as in `home_for_alloc`.
        if let Some(home) = unsafe { t.home.get().as_ref() } {
            home.local.set(false);
            t.home_not_local(home);
        }
    })
}

/// The two stores of [`ThreadSlots::clear_home`], one at a time, as a
/// signal handler sees them when it interrupts it in between.
#[cfg(test)]
pub(crate) fn clear_home_in_two(first: bool) {
    THREAD.with(|t| {
        if first {
            t.home_tag.set(NO_HOME);
        } else {
            t.home.set(ptr::null_mut());
        }
    })
}

/// Whether the calling thread has a home cache.
#[cfg(test)]
pub(crate) fn has_home() -> bool {
    THREAD.with(|t| !t.home.get().is_null())
}

/// Key states: 0 not made, 1 being made, 2 failed, k + 3 made (key k).
static EXIT_KEY: AtomicU64 = AtomicU64::new(0);

/// In a child after `fork`: a key another thread of the parent was making
/// will never be made; the child makes its own when it needs one.
pub(crate) fn forget_key_in_creation() {
    let _ = EXIT_KEY.compare_exchange(1, 0, Ordering::AcqRel, Ordering::Relaxed);
}

fn exit_key() -> Option<crate::sys::thread::Key> {
    loop {
        match EXIT_KEY.load(Ordering::Acquire) {
            0 => {
                if EXIT_KEY
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
                    .is_ok()
                {
                    let v = match crate::sys::thread::key_create(thread_exit) {
                        Ok(key) => u64::from(key) + 3,
                        Err(_) => 2,
                    };
                    EXIT_KEY.store(v, Ordering::Release);
                }
            }
            // Another thread is creating the key: a few instructions away.
            1 => std::hint::spin_loop(),
            2 => return None,
            v => return Some((v - 3) as crate::sys::thread::Key),
        }
    }
}

fn register_exit_hook(t: &ThreadSlots) -> bool {
    let Some(key) = exit_key() else {
        return false;
    };
    // SAFETY: `t` is this thread's table, valid until the thread's
    // thread-local storage is freed, which happens after key destructors.
    unsafe { crate::sys::thread::set_specific(key, (t as *const ThreadSlots).cast()) }.is_ok()
}

/// The `pthread` key destructor: detach every cache of the exiting thread.
unsafe extern "C" fn thread_exit(arg: *mut c_void) {
    // SAFETY: `arg` is the exiting thread's own table (set by
    // `register_exit_hook` on this thread), still valid during key
    // destructors.
    let t = unsafe { &*(arg as *const ThreadSlots) };
    // First, so that nothing (a signal handler's allocation or free
    // included) makes a home of a cache this detaches below.
    t.state.set(DEAD);
    t.clear_home();
    for i in 0..SLOTS {
        if let Some(cache) = NonNull::new(t.cache[i].replace(ptr::null_mut())) {
            // SAFETY: the slot held this thread's attached cache; it is
            // cleared above and never used again.
            unsafe { detach(cache) };
        }
        t.uid[i].set(0);
    }
    // Frees by destructors that run later take the cache-less path.
}

/// The calling thread now runs on another node: every cache it holds
/// treats the thread as remote (frees go back to their heap) until the
/// cache's next slow path looks at the node again.
pub(crate) fn thread_moved() {
    let _ = THREAD.try_with(ThreadSlots::moved);
}
