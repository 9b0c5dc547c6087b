//! [`Error`]: every layer's error, in one type.
//!
//! Each layer has its own error type ([`TopologyError`], [`MemError`],
//! [`SchedError`]) and the collections have theirs ([`PushError`],
//! [`PopError`], [`InsertError`]); every one converts into
//! `numakit::Error`, so application code can use `?` across the crate.
//! The generic ones drop the value they hand back when converted. Every variant says what was asked, what
//! exists, and what to do.

use crate::collections::hash_map::InsertError;
use crate::collections::{PopError, PushError};
pub use crate::measure::MeasureError;
pub use crate::mem::MemError;
pub use crate::sched::SchedError;
pub use crate::topology::TopologyError;
use crate::topology::{CpuIdOutOfRange, ParseCpuListError};

/// The error type of numakit's public API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the topology layer (L0).
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// From the memory layer (L1).
    #[error(transparent)]
    Mem(#[from] MemError),
    /// From the scheduling layer (L2).
    #[error(transparent)]
    Sched(#[from] SchedError),
    /// From measuring the machine ([`measure`](crate::measure)).
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// A CPU id too large for a [`CpuSet`](crate::CpuSet).
    #[error(transparent)]
    CpuId(#[from] CpuIdOutOfRange),
    /// A CPU list that did not parse.
    #[error(transparent)]
    ParseCpuList(#[from] ParseCpuListError),
    /// A ring refused a push. Converting a [`PushError<T>`] drops the
    /// value that was not pushed: match the `PushError` (or call
    /// [`into_inner`](PushError::into_inner)) before `?` to keep it.
    #[error(transparent)]
    Push(PushError<()>),
    /// A ring had nothing to pop.
    #[error(transparent)]
    Pop(#[from] PopError),
    /// A hash map could not make room on its node. Converting an
    /// [`InsertError<T>`] drops what was not inserted (take it with
    /// [`into_inner`](InsertError::into_inner) before `?` to keep it); the
    /// node and the memory error stay.
    #[error(transparent)]
    Insert(InsertError<()>),
}

impl<T> From<PushError<T>> for Error {
    fn from(e: PushError<T>) -> Self {
        Error::Push(match e {
            PushError::Full(_) => PushError::Full(()),
            PushError::Closed(_) => PushError::Closed(()),
        })
    }
}

impl<T> From<InsertError<T>> for Error {
    fn from(e: InsertError<T>) -> Self {
        Error::Insert(e.discard())
    }
}

/// `Result<T, numakit::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of a caught panic: its payload when that is a string, a
/// note saying it is not otherwise.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(the panic payload is not a string)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{CpuSet, NodeId};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops, to see that a conversion drops the value once.
    struct Counted<'a>(&'a AtomicUsize);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn question_mark<E>(e: E) -> Result<()>
    where
        Error: From<E>,
    {
        Err(e)?;
        Ok(())
    }

    #[test]
    fn push_error_converts_and_drops_the_value_once() {
        let drops = AtomicUsize::new(0);
        let err = question_mark(PushError::Full(Counted(&drops))).unwrap_err();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(matches!(err, Error::Push(PushError::Full(()))), "{err:?}");
        assert_eq!(err.to_string(), "the ring is full");
        let err = question_mark(PushError::Closed(Counted(&drops))).unwrap_err();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert!(matches!(err, Error::Push(PushError::Closed(()))), "{err:?}");
    }

    #[test]
    fn pop_error_converts() {
        for e in [PopError::Empty, PopError::Closed] {
            let err = question_mark(e).unwrap_err();
            assert!(matches!(err, Error::Pop(p) if p == e));
            assert_eq!(err.to_string(), e.to_string());
        }
    }

    #[test]
    fn insert_error_converts_keeping_node_and_cause() {
        let drops = AtomicUsize::new(0);
        let e = InsertError::new(
            Counted(&drops),
            NodeId::new(3),
            MemError::InvalidConfig("no room".into()),
        );
        let text = e.to_string();
        let err = question_mark(e).unwrap_err();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        match &err {
            Error::Insert(i) => {
                assert_eq!(i.node(), NodeId::new(3));
                assert!(matches!(i.error(), MemError::InvalidConfig(_)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.to_string(), text);
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn cpu_set_errors_convert() {
        let e = CpuSet::parse_list("3-1").unwrap_err();
        let err = question_mark(e.clone()).unwrap_err();
        assert!(matches!(&err, Error::ParseCpuList(p) if *p == e));
        let mut set = CpuSet::new();
        let e = set.try_insert(crate::CpuId::new(u32::MAX)).unwrap_err();
        let err = question_mark(e).unwrap_err();
        assert!(matches!(&err, Error::CpuId(c) if *c == e));
    }

    #[test]
    fn layer_errors_convert() {
        let err = question_mark(MemError::InvalidConfig("x".into())).unwrap_err();
        assert!(matches!(err, Error::Mem(_)));
    }
}
