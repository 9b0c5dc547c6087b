//! `Future`s for the SPSC ring (feature `async`): a task waits for a value
//! or a free slot without spinning and without a runtime dependency; the
//! other side's next publish wakes its `Waker`.

use super::{Consumer, PopError, Producer, PushError};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

impl<T> Producer<T> {
    /// A future that pushes `value` once a slot is free.
    ///
    /// It resolves to `Err(`[`PushError::Closed`]`)` (with the value) when
    /// no slot is free and the consumer is gone; never to
    /// [`PushError::Full`].
    pub fn push_async(&mut self, value: T) -> PushFuture<'_, T> {
        PushFuture {
            producer: self,
            value: Some(value),
        }
    }
}

impl<T> Consumer<T> {
    /// A future that pops the next value once one is there.
    ///
    /// It resolves to `Err(`[`PopError::Closed`]`)` when the ring is empty
    /// and the producer is gone; never to [`PopError::Empty`].
    ///
    /// # Examples
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use numakit::collections::spsc;
    /// use std::future::Future;
    /// use std::task::{Context, Poll, Waker};
    /// let (mut tx, mut rx) = spsc::ring::<u8>(0, 2).unwrap();
    /// let mut pop = std::pin::pin!(rx.pop_async());
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(pop.as_mut().poll(&mut cx).is_pending());
    /// tx.push(9).unwrap();
    /// assert_eq!(pop.poll(&mut cx), Poll::Ready(Ok(9)));
    /// # }
    /// ```
    pub fn pop_async(&mut self) -> PopFuture<'_, T> {
        PopFuture { consumer: self }
    }
}

/// See [`Producer::push_async`].
#[must_use = "futures do nothing unless polled"]
pub struct PushFuture<'a, T> {
    producer: &'a mut Producer<T>,
    /// `None` once pushed (or handed back).
    value: Option<T>,
}

// The value is never pinned: it is moved into the ring or handed back.
impl<T> Unpin for PushFuture<'_, T> {}

impl<T> Future for PushFuture<'_, T> {
    type Output = Result<(), PushError<T>>;

    /// Polled again after it resolved, it stays pending.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(value) = this.value.take() else {
            return Poll::Pending;
        };
        let value = match this.producer.push(value) {
            Err(PushError::Full(v)) => v,
            r => return Poll::Ready(r),
        };
        this.producer.shared.room.register(cx.waker());
        match this.producer.push(value) {
            Err(PushError::Full(v)) => {
                this.value = Some(v);
                Poll::Pending
            }
            r => Poll::Ready(r),
        }
    }
}

/// See [`Consumer::pop_async`].
#[must_use = "futures do nothing unless polled"]
pub struct PopFuture<'a, T> {
    consumer: &'a mut Consumer<T>,
}

impl<T> Future for PopFuture<'_, T> {
    type Output = Result<T, PopError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let c = &mut *self.get_mut().consumer;
        match c.pop() {
            Err(PopError::Empty) => {}
            r => return Poll::Ready(r),
        }
        c.shared.data.register(cx.waker());
        match c.pop() {
            Err(PopError::Empty) => Poll::Pending,
            r => Poll::Ready(r),
        }
    }
}

impl<T> std::fmt::Debug for PushFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushFuture")
            .field("pushed", &self.value.is_none())
            .finish()
    }
}

impl<T> std::fmt::Debug for PopFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PopFuture").finish_non_exhaustive()
    }
}
