//! [`NumaStatic`]: a static whose value lives on a declared node, made on
//! first access; what `numa_static!` expands to.

use super::{NodeBox, NodePlacement, Placement};
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// A lazily initialised static placed on a node.
///
/// Declared through `numakit::numa_static!`; the value is built by its
/// initialiser on first access, directly into memory on the node, exactly
/// once even when many threads race for it. A failed placement (node
/// absent, out of memory) is returned as an error and retried on the next
/// access.
pub struct NumaStatic<T> {
    placement: NodePlacement,
    init: fn() -> T,
    value: OnceLock<NodeBox<T>>,
    initialising: Mutex<()>,
}

impl<T> NumaStatic<T> {
    /// A static placed per `placement`, initialised by `init` on first use.
    pub const fn new(placement: NodePlacement, init: fn() -> T) -> Self {
        NumaStatic {
            placement,
            init,
            value: OnceLock::new(),
            initialising: Mutex::new(()),
        }
    }

    /// The value, placing and initialising it on first access.
    ///
    /// # Errors
    /// The memory layer's error (wrapped in [`crate::Error`]) when the
    /// value cannot be placed; the next call tries again.
    pub fn get(&self) -> Result<&T, crate::Error> {
        if let Some(b) = self.value.get() {
            return Ok(b);
        }
        let _one_at_a_time = self.initialising.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = self.value.get() {
            return Ok(b);
        }
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
        self.get().unwrap_or_else(|e| panic!("numa_static: {e}"))
    }

    /// Where the static is declared to live.
    pub fn declared_placement(&self) -> NodePlacement {
        self.placement
    }

    /// Where its pages are, once initialised (`None` before).
    ///
    /// # Errors
    /// As [`NodeBox::placement`].
    pub fn placement(&self) -> Result<Option<Placement>, crate::Error> {
        match self.value.get() {
            Some(b) => Ok(Some(b.placement()?)),
            None => Ok(None),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for NumaStatic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NumaStatic")
            .field("placement", &self.placement)
            .field("value", &self.value.get().map(|b| &**b))
            .finish()
    }
}
