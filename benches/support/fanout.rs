//! One publish, N subscribers, the real server stack, no kernel.
//!
//! Each subscriber is a connection served by [`pushlab_server::serve_connection`] exactly as an
//! accepted socket is (hyper with [`pushlab_server::Builders`]' settings, the byte-counting
//! wrapper, the router, the transport's handler, the feed), except that the socket is a
//! [`MemSocket`]: what the subscriber sends is pushed into it, and what the server writes is
//! scanned for the message's seq, counted and dropped, so 10,000 subscribers cost only the
//! server's own per-connection state.
//!
//! ```text
//! sse, stream, ws   opened once (GET /sse/bench, GET /stream/bench, Upgrade), then per round:
//!                   publish ──> every open body or session wakes and writes its framing
//! poll              per round: publish, then every subscriber sends GET /poll/bench?since=S
//! longpoll          per round: every subscriber sends GET /longpoll/bench?since=S, which
//!                   the server holds; then publish ──> every held request is answered
//! ```
//!
//! A round is timed from its first request (poll, long poll) or the publish (streams) until
//! every subscriber has been written the message: what one delivery to everyone costs the
//! server, requests included, since a polling transport pays one per message. (How long a
//! held long poll takes to answer a publish is `benches/e2e.rs`'s question.)
//!
//! Run it on a current-thread runtime: a round then measures the CPU the server spends on one
//! delivery to everyone, on one core, without scheduler noise from other threads.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use pushlab_proto::Transport;
use pushlab_server::feed::Topic;
use pushlab_server::Shared;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};

use crate::{bench_config, data_of, seq_in, TOPIC};

/// How many subscribers have been written the round's message.
#[derive(Debug, Default)]
pub struct Progress {
    target_seq: AtomicU64,
    want: AtomicUsize,
    seen: AtomicUsize,
    written_bytes: AtomicU64,
    done: Notify,
}

impl Progress {
    /// Expects `want` subscribers to be written message `seq`.
    pub(crate) fn arm(&self, seq: u64, want: usize) {
        self.seen.store(0, Ordering::Relaxed);
        self.want.store(want, Ordering::Relaxed);
        self.target_seq.store(seq, Ordering::Relaxed);
    }

    /// Counts `bytes` written to (or read by) one subscriber; the last of the round's `want`
    /// subscribers to see the round's seq wakes [`Progress::wait`].
    pub(crate) fn on_write(&self, bytes: &[u8]) {
        self.written_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if seq_in(bytes) == Some(self.target_seq.load(Ordering::Relaxed))
            && self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.want.load(Ordering::Relaxed)
        {
            self.done.notify_one();
        }
    }

    /// Bytes the server has written to every subscriber so far.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes.load(Ordering::Relaxed)
    }

    /// Waits until every subscriber armed for has seen the round's message; panics naming
    /// `what` after [`ROUND_LIMIT`] (a hang guard, not a measurement).
    pub(crate) async fn wait(&self, what: &str) {
        if tokio::time::timeout(ROUND_LIMIT, self.done.notified())
            .await
            .is_err()
        {
            panic!(
                "{what}: only {} of {} subscribers got seq {}",
                self.seen.load(Ordering::Relaxed),
                self.want.load(Ordering::Relaxed),
                self.target_seq.load(Ordering::Relaxed)
            );
        }
    }
}

/// What a subscriber has sent and the server not yet read.
#[derive(Debug, Default)]
pub struct Inbox {
    state: Mutex<InboxState>,
}

#[derive(Debug, Default)]
struct InboxState {
    bytes: BytesMut,
    waker: Option<Waker>,
}

impl Inbox {
    /// The subscriber sends `bytes`; the server's read wakes.
    pub fn push(&self, bytes: &[u8]) {
        let mut s = self.state.lock().unwrap();
        s.bytes.extend_from_slice(bytes);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

/// The server's end of an in-memory connection: reads what was pushed into its [`Inbox`]
/// (pending, never EOF, when there is nothing), and accepts every write at once.
#[derive(Debug)]
pub struct MemSocket {
    inbox: Arc<Inbox>,
    progress: Arc<Progress>,
}

impl MemSocket {
    /// A socket whose subscriber sends what is pushed into `inbox`; writes count in `progress`.
    pub(crate) fn new(inbox: Arc<Inbox>, progress: Arc<Progress>) -> Self {
        MemSocket { inbox, progress }
    }
}

impl AsyncRead for MemSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = self.inbox.state.lock().unwrap();
        if s.bytes.is_empty() {
            s.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = s.bytes.len().min(buf.remaining());
        buf.put_slice(&s.bytes[..n]);
        s.bytes.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.progress.on_write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// N subscribers of one transport on one in-process server state.
pub struct FanoutRig {
    transport: Transport,
    shared: Arc<Shared>,
    _shutdown: watch::Sender<bool>,
    topic: Arc<Topic>,
    progress: Arc<Progress>,
    inboxes: Vec<Arc<Inbox>>,
    data: String,
    /// Over TCP: the thread draining the subscribers' ends (it ends at EOF, once the runtime
    /// that serves the other ends is dropped).
    _readers: Option<std::thread::JoinHandle<()>>,
    subscribers: usize,
}

/// Serves each of `sockets` as an accepted connection, one task each on the current runtime.
fn serve_all<S>(shared: &Arc<Shared>, sockets: impl Iterator<Item = S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builders = Arc::new(pushlab_server::Builders::new(&shared.config));
    for socket in sockets {
        let (shared, builders) = (shared.clone(), builders.clone());
        tokio::spawn(async move {
            pushlab_server::serve_connection(socket, shared, &builders).await;
        });
    }
}

/// The request that opens a streaming subscription (`None` for poll and long poll, which ask
/// once per message).
fn open_request(transport: Transport) -> Option<&'static [u8]> {
    match transport {
        Transport::Sse => Some(b"GET /sse/bench HTTP/1.1\r\nhost: bench\r\n\r\n"),
        Transport::Stream => Some(b"GET /stream/bench HTTP/1.1\r\nhost: bench\r\n\r\n"),
        Transport::Ws => Some(b"GET /ws/bench HTTP/1.1\r\nhost: bench\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
        Transport::Poll | Transport::LongPoll => None,
    }
}

/// Longest any round may take before the bench gives up (a hang guard, not a measurement).
pub(crate) const ROUND_LIMIT: Duration = Duration::from_secs(60);

impl FanoutRig {
    /// Opens `subscribers` connections of `transport` (one task each, on the current runtime)
    /// that will get `data_bytes` of data per message. Streaming subscribers are open and have
    /// had one message when this returns.
    pub async fn new(transport: Transport, subscribers: usize, data_bytes: usize) -> Self {
        let rig = FanoutRig::serving(transport, subscribers, data_bytes, |shared, progress| {
            let mut inboxes = Vec::with_capacity(subscribers);
            let sockets = (0..subscribers).map(|_| {
                let inbox = Arc::new(Inbox::default());
                inboxes.push(inbox.clone());
                MemSocket::new(inbox, progress.clone())
            });
            serve_all(shared, sockets);
            (inboxes, None)
        });
        let Some(open) = open_request(transport) else {
            return rig;
        };
        rig.push_all(open);
        rig.requests_reach(subscribers as u64).await;
        rig.deliver().await;
        rig
    }

    /// As [`FanoutRig::new`], but each subscriber is a connected pair of 127.0.0.1 TCP
    /// sockets: the server serves the accepted end (on the current runtime, as `new` does),
    /// and a thread of its own reads the other (as the TCP floor's readers do), so the
    /// runtime's CPU holds the server's stack and the kernel's loopback send, like the TCP
    /// floor's. Streaming transports only (a poll's requests would come from the reader
    /// thread); at most a few thousand subscribers (2 fds each, 20,000 open files cap).
    ///
    /// # Panics
    /// For poll and long poll, or when the sockets cannot be opened.
    pub async fn over_tcp(transport: Transport, subscribers: usize, data_bytes: usize) -> Self {
        let open = open_request(transport).expect("a streaming transport");
        let rig = FanoutRig::serving(transport, subscribers, data_bytes, |shared, progress| {
            let (sockets, readers) = crate::floor::tcp_pairs(subscribers, progress.clone(), open);
            serve_all(
                shared,
                sockets.into_iter().map(|socket| {
                    socket.set_nonblocking(true).expect("nonblocking");
                    tokio::net::TcpStream::from_std(socket).expect("register the socket")
                }),
            );
            (Vec::new(), Some(readers))
        });
        rig.requests_reach(subscribers as u64).await;
        rig.deliver_to(subscribers).await;
        rig
    }

    /// A rig on fresh server state whose `subscribers` sockets `open_sockets` opens and
    /// serves (returning the in-memory inboxes, or the TCP readers' thread).
    fn serving(
        transport: Transport,
        subscribers: usize,
        data_bytes: usize,
        open_sockets: impl FnOnce(
            &Arc<Shared>,
            &Arc<Progress>,
        ) -> (Vec<Arc<Inbox>>, Option<std::thread::JoinHandle<()>>),
    ) -> Self {
        let (shared, shutdown) = Shared::new(bench_config());
        let topic = shared.feed.topic(TOPIC).expect("first topic");
        let progress = Arc::new(Progress::default());
        let (inboxes, readers) = open_sockets(&shared, &progress);
        FanoutRig {
            transport,
            shared,
            _shutdown: shutdown,
            topic,
            progress,
            inboxes,
            data: data_of(data_bytes),
            _readers: readers,
            subscribers,
        }
    }

    fn push_all(&self, request: &[u8]) {
        for inbox in &self.inboxes {
            inbox.push(request);
        }
    }

    /// Yields to the subscriber tasks until the server has routed `n` requests of this
    /// transport (on a current-thread runtime each then sits parked in its handler).
    async fn requests_reach(&self, n: u64) {
        let counters = self.shared.metrics.transport(self.transport);
        let started = Instant::now();
        while counters.requests.load(Ordering::Relaxed) < n {
            assert!(started.elapsed() < ROUND_LIMIT, "subscribers never asked");
            tokio::task::yield_now().await;
        }
    }

    /// One publish delivered to every subscriber; returns the time it took.
    pub async fn deliver(&self) -> Duration {
        self.deliver_to(self.subscribers).await
    }

    async fn deliver_to(&self, n: usize) -> Duration {
        let since = self.topic.latest_seq();
        let seq = since + 1;
        self.progress.arm(seq, n);
        let started = match self.transport {
            Transport::Sse | Transport::Stream | Transport::Ws => {
                let t0 = Instant::now();
                self.shared.feed.publish(&self.topic, &self.data);
                t0
            }
            Transport::Poll => {
                let request =
                    format!("GET /poll/bench?since={since} HTTP/1.1\r\nhost: bench\r\n\r\n");
                let t0 = Instant::now();
                self.shared.feed.publish(&self.topic, &self.data);
                self.push_all(request.as_bytes());
                t0
            }
            Transport::LongPoll => {
                let counters = self.shared.metrics.transport(self.transport);
                let asked = counters.requests.load(Ordering::Relaxed);
                let request = format!(
                    "GET /longpoll/bench?since={since}&timeout=120 HTTP/1.1\r\nhost: bench\r\n\r\n"
                );
                // Timed from the requests: each delivery costs a long poll a whole request.
                let t0 = Instant::now();
                self.push_all(request.as_bytes());
                self.requests_reach(asked + n as u64).await;
                self.shared.feed.publish(&self.topic, &self.data);
                t0
            }
        };
        self.progress.wait(self.transport.as_str()).await;
        started.elapsed()
    }

    /// Bytes written to every subscriber so far (headers, framing, messages).
    pub fn written_bytes(&self) -> u64 {
        self.progress.written_bytes()
    }
}
