//! The five transports, one file each, plus publishing. Each file only turns the shared feed
//! into its own wire format; what they have in common (cursor resolution, batch responses, the
//! streaming body that follows a topic, each message's cached framings) lives here so no
//! transport imports another.

pub mod echo;
pub mod longpoll;
pub mod poll;
pub mod publish;
pub mod sse;
pub mod stream;
pub mod ws;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self as fstream, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use pushlab_proto::frame::{ndjson_line, poll_batch, sse_event};
use pushlab_proto::{parse_query, Gap, Query, Transport};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::feed::{Entry, Read, Subscription, Topic};
use crate::http_util::{self, Body};
use crate::metrics::Rejection;
use crate::Shared;

/// Hands a routed subscription request (GET or HEAD) to its transport.
///
/// HEAD (RFC 9110 §9.3.2) gets the status and header fields GET would get, at once and with no
/// body: a long poll answers without holding, a stream's body is never started, and `/ws`
/// answers 426 as to a GET without `Upgrade` (a handshake is a GET).
pub async fn handle(
    t: Transport,
    req: Request<Incoming>,
    shared: Arc<Shared>,
    topic: Arc<Topic>,
) -> Response<Body> {
    let query = match parse_query(req.uri().query()) {
        Ok(q) => q,
        Err(e) => return bad_request(&shared, e),
    };
    let head = req.method() == http::Method::HEAD;
    if let Some(since) = cursor_hint(&req, &query) {
        shared.catch_up(&topic, since, CATCH_UP_LIMIT).await;
    }
    let mut r = match t {
        Transport::Poll => poll::handle(&shared, &topic, query),
        // Boxed: hyper keeps one slot the size of the request future for every connection
        // (idle subscribers included), so the held request's state lives on the heap only
        // while a long poll is held.
        Transport::LongPoll => Box::pin(longpoll::handle(&shared, &topic, query, !head)).await,
        Transport::Sse => sse::handle(&req, shared, topic, query),
        Transport::Stream => stream::handle(shared, topic, query),
        Transport::Ws => ws::handle(req, shared, topic, query),
    };
    if head && r.status() == StatusCode::OK && !t.is_request_response() {
        // An empty body of unknown length: the header fields stay those of GET's stream.
        *r.body_mut() = StreamBody::new(fstream::empty().boxed()).boxed_unsync();
    }
    r
}

/// How long a cursor ahead of this replica's feed waits for its reader (backplane only)
/// before it is refused as ahead of the topic.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(2);

/// The cursor a request carries (`Last-Event-ID` or `?since=`), if it parses; the transport
/// parses it again and answers a bad one.
fn cursor_hint(req: &Request<Incoming>, query: &Query) -> Option<u64> {
    req.headers()
        .get("last-event-id")
        .and_then(|v| pushlab_proto::parse_last_event_id(v.as_bytes()).ok())
        .or(query.since)
}

pub(crate) fn bad_request(shared: &Shared, reason: impl std::fmt::Display) -> Response<Body> {
    shared.metrics.reject(Rejection::BadRequest);
    http_util::error(StatusCode::BAD_REQUEST, reason)
}

/// 503 with a JSON reason and `Retry-After: SECS`.
pub(crate) fn unavailable(
    reason: impl std::fmt::Display,
    retry_after_s: &'static str,
) -> Response<Body> {
    let mut r = http_util::error(StatusCode::SERVICE_UNAVAILABLE, reason);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after_s));
    r
}

/// What a request that needs the backplane gets while it is down: 503, retry in a second.
pub(crate) fn backplane_down(shared: &Shared, e: crate::BackplaneError) -> Response<Body> {
    shared.metrics.reject(Rejection::BackplaneDown);
    unavailable(e, "1")
}

/// Where a subscription starts: the client's cursor, or the newest seq (only new messages).
pub(crate) fn start_cursor(
    shared: &Shared,
    topic: &Topic,
    since: Option<u64>,
) -> Result<u64, Response<Body>> {
    match since {
        None => Ok(topic.latest_seq()),
        Some(s) => topic.check_cursor(s).map_err(|e| bad_request(shared, e)),
    }
}

/// A poll or long-poll answer: `{"next":..,"gap":..,"messages":[..]}`.
pub(crate) fn batch_response(shared: &Shared, t: Transport, read: &Read) -> Response<Body> {
    let counters = shared.metrics.transport(t);
    if read.entries.is_empty() && read.gap.is_none() {
        counters.empty_responses.fetch_add(1, Ordering::Relaxed);
    }
    if read.gap.is_some() {
        counters.gap_notices.fetch_add(1, Ordering::Relaxed);
    }
    counters
        .delivered_messages
        .fetch_add(read.entries.len() as u64, Ordering::Relaxed);
    let bodies: Vec<&[u8]> = read.entries.iter().map(|e| &e.msg.bytes[..]).collect();
    let mut r = http_util::json(StatusCode::OK, poll_batch(read.cursor, read.gap, &bodies));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// One message's framings, each built at most once per message (on the first subscriber that
/// needs it) and then shared by every subscriber as a reference-counted buffer. Kept in the
/// entry's cache slot ([`Entry::cache`]), which the feed stores without looking inside: a new
/// framing is a field here and a method of [`Framed`], and the feed does not change.
#[derive(Debug, Default)]
pub(crate) struct Framings {
    sse: OnceLock<Bytes>,
    ndjson: OnceLock<Bytes>,
    ws_frame: OnceLock<Bytes>,
}

/// The framings of a feed entry, read through its cache ([`Framings`]).
pub(crate) trait Framed {
    /// `id: SEQ\ndata: MESSAGE\n\n` (SSE).
    fn sse(&self) -> Bytes;
    /// `MESSAGE\n` (chunked NDJSON stream).
    fn ndjson(&self) -> Bytes;
    /// MESSAGE as one whole WebSocket text frame, as a server sends it (RFC 6455 §5.2: FIN,
    /// opcode 1, no mask, the payload length in 7, 7+16 or 7+64 bits), framed by tungstenite.
    fn ws_frame(&self) -> Bytes;
}

impl Framed for Entry {
    fn sse(&self) -> Bytes {
        let cache = &self.cache::<Framings>().sse;
        cache
            .get_or_init(|| sse_event(self.msg.seq, &self.msg.bytes))
            .clone()
    }

    fn ndjson(&self) -> Bytes {
        let cache = &self.cache::<Framings>().ndjson;
        cache.get_or_init(|| ndjson_line(&self.msg.bytes)).clone()
    }

    fn ws_frame(&self) -> Bytes {
        let cache = &self.cache::<Framings>().ws_frame;
        cache
            .get_or_init(|| ws_text_frame(self.msg.bytes.clone()))
            .clone()
    }
}

/// `text` as one whole unmasked WebSocket text frame (RFC 6455 §5.2), framed by tungstenite.
///
/// # Panics
/// If `text` is not UTF-8 (messages and gap notices are encoded from `str`).
pub(crate) fn ws_text_frame(text: Bytes) -> Bytes {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    assert!(
        std::str::from_utf8(&text).is_ok(),
        "a text frame's payload is UTF-8"
    );
    let frame = Frame::message(text, OpCode::Data(Data::Text), true);
    let mut out = Vec::with_capacity(frame.len());
    frame
        .format(&mut out)
        .expect("formatting into a Vec cannot fail");
    Bytes::from(out)
}

/// How a streaming transport frames what it sends.
pub(crate) struct Framing {
    pub transport: Transport,
    pub entry: fn(&Entry) -> Bytes,
    pub gap: fn(&Gap) -> Bytes,
    pub heartbeat: &'static [u8],
}

/// A response body that follows a topic: each message's framing as one data frame, a gap
/// notice where messages were missed, a heartbeat after `every` without a chunk, and the end
/// of the body when the server shuts down.
///
/// Written as a [`http_body::Body`] by hand rather than an `async` loop over `select!`: per
/// message a subscriber is polled once, reads the ring into its own buffers and leaves one
/// waker with its topic ([`Topic::poll_news`]); the heartbeat is one timer moved only when it
/// fires (to `every` after the last chunk), and the shutdown flag is read, not waited on (the
/// server wakes every topic's subscribers when it flips it).
struct Follow {
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    cursor: u64,
    sub: Subscription,
    shutdown: watch::Receiver<bool>,
    stopping: bool,
    heartbeat: Pin<Box<Sleep>>,
    every: Duration,
    /// When the last chunk was handed to hyper.
    last_sent: Instant,
    pending: VecDeque<Bytes>,
    /// The entries of the last read (kept for its capacity).
    read: Vec<Arc<Entry>>,
    framing: Framing,
}

impl Follow {
    /// Reads what the topic has after the cursor into `pending` (gap notice first).
    fn read_news(&mut self) {
        let cfg = &self.shared.config;
        let (gap, cursor) = self.topic.read_after_into(
            self.cursor,
            cfg.max_batch,
            cfg.max_subscriber_lag,
            &mut self.read,
        );
        self.cursor = cursor;
        let counters = self.shared.metrics.transport(self.framing.transport);
        if let Some(gap) = gap {
            counters.gap_notices.fetch_add(1, Ordering::Relaxed);
            self.pending.push_back((self.framing.gap)(&gap));
        }
        counters
            .delivered_messages
            .fetch_add(self.read.len() as u64, Ordering::Relaxed);
        let entry = self.framing.entry;
        self.pending.extend(self.read.drain(..).map(|e| entry(&e)));
    }

    /// Whether the server is shutting down: the flag's only change is to `true`, and the
    /// receiver was marked seen when the body was made, so a change is the shutdown (read
    /// without the channel's lock).
    fn down(&mut self) -> bool {
        self.stopping = self.stopping || self.shutdown.has_changed().unwrap_or(false);
        self.stopping
    }
}

impl http_body::Body for Follow {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let f = self.get_mut();
        loop {
            if let Some(chunk) = f.pending.pop_front() {
                f.last_sent = Instant::now();
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if f.down() {
                return Poll::Ready(None);
            }
            if f.topic.poll_news(&mut f.sub, f.cursor, cx).is_ready() {
                f.read_news();
                continue;
            }
            // A shutdown between the look above and the waker's push woke nobody: look again.
            if f.down() {
                return Poll::Ready(None);
            }
            if f.heartbeat.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let (now, due) = (Instant::now(), f.last_sent + f.every);
            if now >= due {
                f.pending.push_back(Bytes::from_static(f.framing.heartbeat));
                f.heartbeat.as_mut().reset(now + f.every);
            } else {
                // A chunk went out since the timer was set: due `every` after that one.
                f.heartbeat.as_mut().reset(due);
            }
        }
    }
}

/// A response body that follows `topic` from `cursor` until the client goes or the server
/// shuts down (then it ends, and hyper writes the final chunk).
pub(crate) fn follow_body(
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    cursor: u64,
    framing: Framing,
    prelude: Option<Bytes>,
) -> Body {
    let every = shared
        .config
        .heartbeat_interval
        .max(Duration::from_millis(10));
    let now = Instant::now();
    let mut shutdown = shared.shutdown.clone();
    let stopping = *shutdown.borrow_and_update();
    Follow {
        shutdown,
        stopping,
        shared,
        topic,
        cursor,
        sub: Subscription::default(),
        heartbeat: Box::pin(tokio::time::sleep_until(now + every)),
        every,
        last_sent: now,
        pending: prelude.into_iter().collect(),
        read: Vec::new(),
        framing,
    }
    .boxed_unsync()
}

/// A streaming response with `content_type` and no caching.
pub(crate) fn streaming_response(content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The query a transport was asked with (re-exported for the transport files).
pub(crate) type Q = Query;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Feed;

    #[test]
    fn framings_are_built_once_and_shared() {
        let feed = Feed::new(4, 1);
        let topic = feed.topic("t").unwrap();
        let e = feed.publish(&topic, "x");
        assert_eq!(e.sse().as_ptr(), e.sse().as_ptr());
        assert_eq!(e.ndjson().as_ptr(), e.ndjson().as_ptr());
        assert_eq!(e.ws_frame().as_ptr(), e.ws_frame().as_ptr());
        // RFC 6455 §5.2: FIN + text, no mask, 7-bit length, then the message itself.
        let frame = e.ws_frame();
        assert_eq!(&frame[..2], &[0x81, e.msg.bytes.len() as u8]);
        assert_eq!(&frame[2..], &e.msg.bytes[..]);
        // 16-bit and 64-bit lengths.
        let mid = ws_text_frame(Bytes::from("x".repeat(300)));
        assert_eq!(&mid[..4], &[0x81, 126, 1, 44]);
        let big = ws_text_frame(Bytes::from("y".repeat(70_000)));
        assert_eq!(&big[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
        assert_eq!(&e.sse()[..], &sse_event(e.seq(), &e.msg.bytes)[..]);
        assert_eq!(&e.ndjson()[..], &ndjson_line(&e.msg.bytes)[..]);
    }
}
