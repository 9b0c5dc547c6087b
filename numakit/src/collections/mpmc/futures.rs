//! `Future`s for the MPMC ring (feature `async`): a task waits for a value
//! or a free slot without spinning and without a runtime dependency;
//! every publish (pop) that finds listed wakers wakes them all, and each
//! woken task tries again.

use super::{MpmcRing, PopError, PushError};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

impl<T> MpmcRing<T> {
    /// A future that pushes `value` once a slot is free.
    ///
    /// It resolves to `Err(`[`PushError::Closed`]`)` (with the value) after
    /// [`close`](Self::close); never to [`PushError::Full`].
    pub fn push_async(&self, value: T) -> PushFuture<'_, T> {
        PushFuture {
            ring: self,
            value: Some(value),
        }
    }

    /// A future that pops a value once one is there.
    ///
    /// It resolves to `Err(`[`PopError::Closed`]`)` when the ring is empty
    /// and closed; never to [`PopError::Empty`].
    pub fn pop_async(&self) -> PopFuture<'_, T> {
        PopFuture { ring: self }
    }
}

/// See [`MpmcRing::push_async`].
#[must_use = "futures do nothing unless polled"]
pub struct PushFuture<'a, T> {
    ring: &'a MpmcRing<T>,
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
        let value = match this.ring.push(value) {
            Err(PushError::Full(v)) => v,
            r => return Poll::Ready(r),
        };
        this.ring.room.register(cx.waker());
        match this.ring.push(value) {
            Err(PushError::Full(v)) => {
                this.value = Some(v);
                Poll::Pending
            }
            r => Poll::Ready(r),
        }
    }
}

/// See [`MpmcRing::pop_async`].
#[must_use = "futures do nothing unless polled"]
pub struct PopFuture<'a, T> {
    ring: &'a MpmcRing<T>,
}

impl<T> Future for PopFuture<'_, T> {
    type Output = Result<T, PopError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ring = self.ring;
        match ring.pop() {
            Err(PopError::Empty) => {}
            r => return Poll::Ready(r),
        }
        ring.data.register(cx.waker());
        match ring.pop() {
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

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::collections::spsc::futures::tests::{block_on, counting, watchdog};
    use crate::collections::{MpmcRing, PopError, PushError};
    use std::future::Future;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    #[test]
    fn pending_futures_are_woken() {
        let ring = MpmcRing::<u32>::new(0, 1).unwrap();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut pop = std::pin::pin!(ring.pop_async());
        assert!(pop.as_mut().poll(&mut cx).is_pending());
        ring.push(1).unwrap();
        assert_eq!(count.wakes.load(Ordering::SeqCst), 1);
        assert_eq!(pop.poll(&mut cx), Poll::Ready(Ok(1)));
        ring.push(2).unwrap();
        let mut push = std::pin::pin!(ring.push_async(3));
        assert!(push.as_mut().poll(&mut cx).is_pending());
        assert_eq!(ring.pop(), Ok(2));
        assert_eq!(count.wakes.load(Ordering::SeqCst), 2);
        assert_eq!(push.poll(&mut cx), Poll::Ready(Ok(())));
        let mut push = std::pin::pin!(ring.push_async(4));
        assert!(push.as_mut().poll(&mut cx).is_pending());
        ring.close();
        assert_eq!(count.wakes.load(Ordering::SeqCst), 3);
        assert_eq!(push.poll(&mut cx), Poll::Ready(Err(PushError::Closed(4))));
    }

    #[test]
    fn tasks_on_four_threads_move_every_value() {
        watchdog("MPMC futures across threads", || {
            for cap in [1usize, 2, 8] {
                let ring = Arc::new(MpmcRing::<u64>::new(0, cap).unwrap());
                let per = 5_000u64;
                let producers: Vec<_> = (0..2)
                    .map(|_| {
                        let ring = Arc::clone(&ring);
                        std::thread::spawn(move || {
                            for i in 0..per {
                                block_on(ring.push_async(i)).unwrap();
                            }
                        })
                    })
                    .collect();
                let consumers: Vec<_> = (0..2)
                    .map(|_| {
                        let ring = Arc::clone(&ring);
                        std::thread::spawn(move || {
                            let mut sum = 0;
                            while let Ok(v) = block_on(ring.pop_async()) {
                                sum += v;
                            }
                            sum
                        })
                    })
                    .collect();
                for p in producers {
                    p.join().unwrap();
                }
                ring.close();
                let sum: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
                assert_eq!(sum, 2 * per * (per - 1) / 2, "cap {cap}");
                assert_eq!(block_on(ring.pop_async()), Err(PopError::Closed));
            }
        });
    }
}
