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

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use crate::collections::{spsc, PopError, PushError};
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    /// A waker that counts its wakes and unparks the thread that made it.
    pub(crate) struct Counting {
        pub(crate) wakes: AtomicUsize,
        thread: std::thread::Thread,
    }

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            self.thread.unpark();
        }
    }

    pub(crate) fn counting() -> (Arc<Counting>, Waker) {
        let c = Arc::new(Counting {
            wakes: AtomicUsize::new(0),
            thread: std::thread::current(),
        });
        (Arc::clone(&c), Waker::from(c))
    }

    /// Poll `f` to completion on this thread, parking between polls (a
    /// lost wake-up parks forever: callers run this under a watchdog).
    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    /// Run `f` on a thread of its own; fail if it takes over 30 s.
    pub(crate) fn watchdog(what: &str, f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what}: a wake-up was lost"));
    }

    #[test]
    fn a_pending_pop_is_woken_by_the_push() {
        let (mut tx, mut rx) = spsc::ring::<u32>(0, 1).unwrap();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut pop = std::pin::pin!(rx.pop_async());
        assert!(pop.as_mut().poll(&mut cx).is_pending());
        assert!(pop.as_mut().poll(&mut cx).is_pending());
        assert_eq!(count.wakes.load(Ordering::SeqCst), 0);
        tx.push(5).unwrap();
        // Listed once although polled twice: one wake.
        assert_eq!(count.wakes.load(Ordering::SeqCst), 1);
        assert_eq!(pop.as_mut().poll(&mut cx), Poll::Ready(Ok(5)));
        let mut pop = std::pin::pin!(rx.pop_async());
        assert!(pop.as_mut().poll(&mut cx).is_pending());
        drop(tx);
        assert_eq!(count.wakes.load(Ordering::SeqCst), 2);
        assert_eq!(pop.poll(&mut cx), Poll::Ready(Err(PopError::Closed)));
    }

    #[test]
    fn a_pending_push_is_woken_by_the_pop_and_by_the_consumers_drop() {
        let (mut tx, mut rx) = spsc::ring::<String>(0, 1).unwrap();
        tx.push("a".into()).unwrap();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        {
            let mut push = std::pin::pin!(tx.push_async("b".into()));
            assert!(push.as_mut().poll(&mut cx).is_pending());
            assert_eq!(rx.pop().as_deref(), Ok("a"));
            assert_eq!(count.wakes.load(Ordering::SeqCst), 1);
            assert_eq!(push.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
            // Polled after it resolved: pending, no panic.
            assert!(push.poll(&mut cx).is_pending());
        }
        let mut push = std::pin::pin!(tx.push_async("c".into()));
        assert!(push.as_mut().poll(&mut cx).is_pending());
        drop(rx);
        assert_eq!(count.wakes.load(Ordering::SeqCst), 2);
        assert_eq!(
            push.poll(&mut cx),
            Poll::Ready(Err(PushError::Closed("c".into())))
        );
    }

    #[test]
    fn tasks_on_two_threads_move_every_value() {
        watchdog("SPSC futures across threads", || {
            for cap in [1usize, 2, 8] {
                let (mut tx, mut rx) = spsc::ring::<u64>(0, cap).unwrap();
                let n = 20_000u64;
                let t = std::thread::spawn(move || {
                    for i in 0..n {
                        block_on(tx.push_async(i)).unwrap();
                    }
                });
                for i in 0..n {
                    assert_eq!(block_on(rx.pop_async()), Ok(i));
                }
                t.join().unwrap();
                assert_eq!(block_on(rx.pop_async()), Err(PopError::Closed));
            }
        });
    }
}
