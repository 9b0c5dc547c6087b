//! [`NumaStatic`]: a static whose value lives on a declared node, made on
//! first access; what `numa_static!` expands to.

use super::{NodeBox, NodePlacement, PageMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// A lazily initialised static placed on a node.
///
/// Declared through `numakit::numa_static!`; the value is built by its
/// initialiser on first access, directly into memory on the node, exactly
/// once even when many threads race for it. A failed placement (node
/// absent, out of memory) is returned as an error and retried on the next
/// access.
///
/// The initialiser must not read its own static: on the thread that runs
/// it, that access would wait for the initialisation it is part of. It is
/// detected, also through other statics (`A`'s initialiser reads `B`, whose
/// initialiser reads `A`), and the access panics with the static's name
/// instead of hanging. As with [`std::sync::OnceLock`], initialisers on two
/// *different* threads that wait for each other's statics deadlock.
///
/// ```
/// use numakit::numa_static;
///
/// numa_static! {
///     #[numa(node = 0)]
///     static BASE: u64 = 40;
///     // Reads another static: fine.
///     #[numa(node = 0)]
///     static ANSWER: u64 = BASE.get_or_panic() + 2;
/// }
/// assert_eq!(*ANSWER.get()?, 42);
/// # Ok::<(), numakit::Error>(())
/// ```
pub struct NumaStatic<T> {
    /// For messages: the static's path, or "" when not given.
    name: &'static str,
    placement: NodePlacement,
    init: fn() -> T,
    value: OnceLock<NodeBox<T>>,
    initialising: Mutex<()>,
    /// The thread running `init` (its [`thread_mark`]), 0 when none.
    /// Written only while `initialising` is held.
    initialiser: AtomicUsize,
}

thread_local! {
    /// Its address tells the live threads apart (no destructor, so it is
    /// reachable for the whole life of the thread).
    static THREAD_MARK: u8 = const { 0 };
}

/// A number that differs between any two live threads, never 0.
fn thread_mark() -> usize {
    THREAD_MARK.with(|m| std::ptr::from_ref(m) as usize)
}

/// Clears [`NumaStatic::initialiser`] when initialisation ends, also by a
/// panic.
struct ClearInitialiser<'a>(&'a AtomicUsize);

impl Drop for ClearInitialiser<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

impl<T> NumaStatic<T> {
    /// A static placed per `placement`, initialised by `init` on first use.
    pub const fn new(placement: NodePlacement, init: fn() -> T) -> Self {
        Self::named("", placement, init)
    }

    /// As [`new`](Self::new), with the static's name for messages (what
    /// `numa_static!` uses).
    pub const fn named(name: &'static str, placement: NodePlacement, init: fn() -> T) -> Self {
        NumaStatic {
            name,
            placement,
            init,
            value: OnceLock::new(),
            initialising: Mutex::new(()),
            initialiser: AtomicUsize::new(0),
        }
    }

    /// The value, placing and initialising it on first access.
    ///
    /// # Errors
    /// The memory layer's error (wrapped in [`crate::Error`]) when the
    /// value cannot be placed; the next call tries again.
    ///
    /// # Panics
    /// When called, before the value exists, by this static's own
    /// initialiser (directly or through other statics' initialisers, on
    /// the same thread): that call could only wait for itself. The message
    /// names the static. A panic of the initialiser itself goes through to
    /// the caller; the next access runs the initialiser again.
    pub fn get(&self) -> Result<&T, crate::Error> {
        if let Some(b) = self.value.get() {
            return Ok(b);
        }
        let me = thread_mark();
        // Only this thread ever stores `me` here, and it clears it before
        // it ends: reading `me` means this thread is inside `init` below
        // (program order suffices, Relaxed is enough).
        if self.initialiser.load(Ordering::Relaxed) == me {
            self.reentered();
        }
        let _one_at_a_time = self.initialising.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = self.value.get() {
            return Ok(b);
        }
        self.initialiser.store(me, Ordering::Relaxed);
        let _clear = ClearInitialiser(&self.initialiser);
        let init = self.init;
        // SAFETY: the closure initialises the whole slot.
        let boxed =
            unsafe { NodeBox::new_in_place(self.placement, |slot: *mut T| slot.write(init())) }?;
        Ok(self.value.get_or_init(|| boxed))
    }

    /// The value, placing it on first access.
    ///
    /// # Panics
    /// When the value cannot be placed, with the error's message; use
    /// [`get`](Self::get) to handle that instead.
    pub fn get_or_panic(&self) -> &T {
        self.get()
            .unwrap_or_else(|e| panic!("numa_static {}: {e}", self.describe()))
    }

    /// "`NAME`", or "(unnamed)" for a static made with [`new`](Self::new).
    fn describe(&self) -> String {
        if self.name.is_empty() {
            "(unnamed)".into()
        } else {
            format!("`{}`", self.name)
        }
    }

    #[cold]
    #[inline(never)]
    fn reentered(&self) -> ! {
        let name = self.describe();
        panic!(
            "numa_static {name} was read by its own initialiser (directly or through another \
             static's initialiser) on the thread that is initialising it, which would wait for \
             itself forever; build the value without reading {name}, or move what both need \
             into a static of its own"
        )
    }

    /// Where the static is declared to live.
    pub fn declared_placement(&self) -> NodePlacement {
        self.placement
    }

    /// Where its pages are, once initialised (`None` before).
    ///
    /// # Errors
    /// As [`NodeBox::placement`].
    pub fn placement(&self) -> Result<Option<PageMap>, crate::Error> {
        match self.value.get() {
            Some(b) => Ok(Some(b.placement()?)),
            None => Ok(None),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for NumaStatic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NumaStatic")
            .field("name", &self.name)
            .field("placement", &self.placement)
            .field("value", &self.value.get().map(|b| &**b))
            .finish()
    }
}
