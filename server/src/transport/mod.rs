//! The five transports, one file each, plus publishing. Each file only turns the shared feed
//! into its own wire format; what they have in common (cursor resolution, batch responses, the
//! streaming body that follows a topic) lives here so no transport imports another.

pub mod echo;
pub mod longpoll;
pub mod poll;
pub mod publish;
pub mod sse;
pub mod stream;
pub mod ws;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self as fstream, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use pushlab_proto::frame::poll_batch;
use pushlab_proto::{parse_query, Gap, Query, Transport};
use tokio::sync::watch;

use crate::feed::{Entry, Read, Topic};
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
    let mut r = match t {
        Transport::Poll => poll::handle(&shared, &topic, query),
        Transport::LongPoll => longpoll::handle(&shared, &topic, query, !head).await,
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

pub(crate) fn bad_request(shared: &Shared, reason: impl std::fmt::Display) -> Response<Body> {
    shared.metrics.reject(Rejection::BadRequest);
    http_util::error(StatusCode::BAD_REQUEST, reason)
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

/// How a streaming transport frames what it sends.
pub(crate) struct Framing {
    pub transport: Transport,
    pub entry: fn(&Entry) -> Bytes,
    pub gap: fn(&Gap) -> Bytes,
    pub heartbeat: &'static [u8],
}

struct Follow {
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    cursor: u64,
    news: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    heartbeat: tokio::time::Interval,
    pending: std::collections::VecDeque<Bytes>,
    framing: Framing,
}

impl Follow {
    /// The next chunk to send, or `None` when the server shuts down.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if *self.shutdown.borrow() {
                return None;
            }
            // Mark the channel seen before reading, so a publish after the read wakes us.
            self.news.borrow_and_update();
            let cfg = &self.shared.config;
            let read = self
                .topic
                .read_after(self.cursor, cfg.max_batch, cfg.max_subscriber_lag);
            self.cursor = read.cursor;
            let counters = self.shared.metrics.transport(self.framing.transport);
            if let Some(gap) = read.gap {
                counters.gap_notices.fetch_add(1, Ordering::Relaxed);
                self.pending.push_back((self.framing.gap)(&gap));
            }
            counters
                .delivered_messages
                .fetch_add(read.entries.len() as u64, Ordering::Relaxed);
            self.pending
                .extend(read.entries.iter().map(|e| (self.framing.entry)(e)));
            if !self.pending.is_empty() {
                self.heartbeat.reset();
                continue;
            }
            tokio::select! {
                changed = self.news.changed() => if changed.is_err() { return None },
                _ = self.shutdown.changed() => {}
                _ = self.heartbeat.tick() => return Some(Bytes::from_static(self.framing.heartbeat)),
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
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let follow = Follow {
        news: topic.subscribe(),
        shutdown: shared.shutdown.clone(),
        shared,
        topic,
        cursor,
        heartbeat,
        pending: prelude.into_iter().collect(),
        framing,
    };
    let chunks = fstream::unfold(follow, |mut f| async move {
        let chunk = f.next_chunk().await?;
        Some((Ok(Frame::data(chunk)), f))
    });
    StreamBody::new(chunks.boxed()).boxed_unsync()
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
