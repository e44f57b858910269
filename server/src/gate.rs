//! Polling a future or a stream only when it asked to be.
//!
//! A connection's task is woken for many reasons (a message to send, bytes to read, a timer);
//! `select!` then polls every branch, and polling a registered timer or channel waiter is not
//! free: a `Sleep` re-registers its waker, a watch waiter takes its channel's lock (one lock
//! shared by every connection for the shutdown flag). A gated branch is polled with a waker of
//! its own that only sets a flag and wakes the task: between its own wake-ups the branch costs
//! one atomic swap per poll of the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use futures_util::{Stream, StreamExt};

/// Whether a gated branch may be ready: set by the waker the branch was last polled with.
#[derive(Debug)]
struct WakeFlag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The flag and the waker a gated branch is polled with.
#[derive(Debug)]
pub struct Gate {
    flag: Arc<WakeFlag>,
    waker: Waker,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    /// A gate open for the first poll.
    pub fn new() -> Self {
        let flag = Arc::new(WakeFlag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Gate {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Polls `poll` with the gate's waker if the branch was woken since its last poll;
    /// otherwise `Pending` at once. `keep_open` says whether a ready result may be followed by
    /// another at once (a stream), so the next poll looks again.
    fn poll_with<T>(
        &self,
        cx: &mut Context<'_>,
        keep_open: bool,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.poll_noting(cx, keep_open, poll, &mut false)
    }

    /// [`Gate::poll_with`], setting `polled` when the branch was polled.
    fn poll_noting<T>(
        &self,
        cx: &mut Context<'_>,
        keep_open: bool,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
        polled: &mut bool,
    ) -> Poll<T> {
        // Registered before the flag is read, so a wake-up after the read reaches this task.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        *polled = true;
        let out = poll(&mut Context::from_waker(&self.waker));
        if keep_open && out.is_ready() {
            self.flag.woken.store(true, Ordering::Release);
        }
        out
    }

    /// The next item of `stream`, polled only when it asked to be; `polled` is set when it
    /// was polled.
    pub fn poll_next<St: Stream + Unpin>(
        &self,
        stream: &mut St,
        cx: &mut Context<'_>,
        polled: &mut bool,
    ) -> Poll<Option<St::Item>> {
        self.poll_noting(cx, true, |cx| stream.poll_next_unpin(cx), polled)
    }
}

/// A future polled only when it asked to be (boxed: its state lives on the heap).
pub struct Gated<F> {
    inner: Pin<Box<F>>,
    gate: Gate,
}

impl<F: Future> Gated<F> {
    pub fn new(inner: F) -> Self {
        Gated {
            inner: Box::pin(inner),
            gate: Gate::new(),
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        this.gate.poll_with(cx, false, |cx| inner.as_mut().poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `ready` is set and it was woken.
    struct Probe {
        polls: Arc<AtomicUsize>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
        ready: Arc<AtomicBool>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_gated_future_is_polled_once_then_only_after_its_own_wake_up() {
        let polls = Arc::new(AtomicUsize::new(0));
        let inner_waker = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let ready = Arc::new(AtomicBool::new(false));
        let mut gated = Gated::new(Probe {
            polls: polls.clone(),
            waker: inner_waker.clone(),
            ready: ready.clone(),
        });
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..5 {
            assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        }
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "polled again without a wake-up"
        );
        ready.store(true, Ordering::SeqCst);
        assert!(
            Pin::new(&mut gated).poll(&mut cx).is_pending(),
            "not woken yet"
        );
        let waker = inner_waker.lock().unwrap().take().unwrap();
        waker.wake();
        assert!(Pin::new(&mut gated).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
