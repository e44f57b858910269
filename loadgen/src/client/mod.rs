//! One subscriber per transport, all behind one trait ([`Subscriber`]), run by one driver
//! ([`drive`]) that owns what they share: the cursor and sequence check, reconnects,
//! latency samples, the stop rules, and the end-of-run close.
//!
//! | transport | a subscriber does |
//! |---|---|
//! | poll | `GET /poll/T?since=C` every `--poll-interval` on a fixed schedule |
//! | longpoll | `GET /longpoll/T?since=C&timeout=S`, again at once when it returns |
//! | sse | `GET /sse/T?since=S0`, reconnects with `Last-Event-ID: C` |
//! | stream | `GET /stream/T?since=C`, reconnects with the new cursor |
//! | ws | `GET /ws/T?since=C` + Upgrade, then frames; reconnects with the new cursor |
//!
//! With `--http 2` the same requests go as HTTP/2 streams ([`h2::H2Sub`]; WebSocket by an
//! RFC 8441 extended CONNECT, [`ws::WsSub`]), over connections of their own or shared by
//! `--streams-per-connection` subscribers ([`h2::Pool`]). With `--tls on` every connection is
//! TLS (HTTP/1.1 or HTTP/2 by ALPN).
//!
//! Every socket is wrapped in the counting wrapper from connect to close, and each
//! subscriber attributes what it parses to payload, envelope, headers, framing or handshake
//! ([`Tally`]). At the end the driver checks that the attributed bytes add up to the counted
//! ones; any difference is reported as `unattributed_bytes` (0 in a clean run).
//!
//! What the target speaks (paths, cursors, message format) is a [`Dialect`]; the pushlab
//! dialect is [`PushlabDialect`], nginx-nchan's is [`NchanDialect`] ([`dialect_for`]).

pub mod dialect;
pub mod h2;
pub mod nchan;
pub mod poll;
pub mod streaming;
pub mod ws;

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pushlab_proto::{ByteCounter, Gap, Transport};
use tokio::sync::watch;

pub use dialect::{Dialect, PushlabDialect};
pub use nchan::NchanDialect;

use crate::config::{HeaderProfile, HttpVersion, Target, TargetProfile};
use crate::headers::{request_head, RequestKind};
use crate::http::{ClientError, Closing, Conn};
use crate::record::{Arrival, HeaderBlock, OpenGuard, Recorder, SeqTracker, Tally};

/// What a subscriber hands the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole message arrived at `at_ns`; `due_ns` is its intended send time, if stamped.
    Message {
        seq: u64,
        due_ns: Option<u64>,
        at_ns: u64,
    },
    /// The server says these seqs are gone.
    Gap(Gap),
}

/// Settings every subscriber of one transport in one phase shares.
#[derive(Debug)]
pub struct ClientSettings {
    /// Every target (replica); subscriber `id` connects to `targets[id % len]`.
    pub targets: Vec<Target>,
    pub transport: Transport,
    pub topic: String,
    /// Every subscriber starts here (`since=`): the topic's newest seq before publishing.
    pub start_cursor: u64,
    pub header_profile: HeaderProfile,
    pub keep_alive: bool,
    /// HTTP/1.1 (by hand) or HTTP/2 ([`h2::H2Sub`]).
    pub http: HttpVersion,
    /// TLS client settings when subscribers use TLS (ALPN `h2` or `http/1.1`, as `http`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// HTTP/2 connections, each shared by up to `--streams-per-connection` subscribers.
    pub h2_pool: h2::Pool,
    pub poll_interval: Duration,
    pub longpoll_timeout_s: u64,
    /// Subscribers of this transport (to spread poll phases).
    pub clients: u64,
    pub source_ips: Vec<IpAddr>,
    pub dialect: Arc<dyn Dialect>,
    pub drop_after_messages: Option<u64>,
    /// How long a closing subscriber waits for the server to close its side.
    pub close_timeout: Duration,
}

/// The dialect of a `--target-profile` (one per run: it may keep state, see [`NchanDialect`]).
pub fn dialect_for(profile: TargetProfile) -> Arc<dyn Dialect> {
    match profile {
        TargetProfile::Pushlab => Arc::new(PushlabDialect),
        TargetProfile::Nchan => Arc::new(NchanDialect::default()),
    }
}

/// Where a phase stands, broadcast to its subscribers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signal {
    /// The last seq published: a subscriber that has it is done.
    pub target: Option<u64>,
    /// Stop now, done or not.
    pub stop: bool,
}

/// One subscriber's context: its settings, its byte tally and counters.
#[derive(Debug)]
pub struct ClientCtx {
    pub id: u64,
    pub s: Arc<ClientSettings>,
    pub rec: Arc<Recorder>,
    /// Bytes of all this subscriber's sockets.
    pub counter: Arc<ByteCounter>,
    pub tally: Tally,
    pub segments: u64,
    pub segments_known: bool,
    /// What this subscriber's sockets sent again (TCP_INFO), summed over its connections.
    pub retransmissions: crate::net::TcpRetransmissions,
    pub source: Option<IpAddr>,
    /// The replica this subscriber connects to (round-robin over the targets by id).
    pub target: Target,
    /// The target's own cursor for the last message held, when it sends one on the wire
    /// (nchan's `time:tag` id); the dialect turns it into resume headers.
    pub token: Option<String>,
}

impl ClientCtx {
    pub fn new(id: u64, s: Arc<ClientSettings>, rec: Arc<Recorder>) -> ClientCtx {
        let source =
            (!s.source_ips.is_empty()).then(|| s.source_ips[(id as usize) % s.source_ips.len()]);
        let target = s.targets[(id as usize) % s.targets.len().max(1)].clone();
        ClientCtx {
            target,
            id,
            s,
            rec,
            counter: Arc::new(ByteCounter::default()),
            tally: Tally::default(),
            segments: 0,
            segments_known: false,
            retransmissions: Default::default(),
            source,
            token: None,
        }
    }

    /// A new counted HTTP/1.1 connection to the target (TLS when the settings say so).
    pub async fn connect(&mut self) -> Result<Conn, ClientError> {
        let mut conn = Conn::connect_from(
            crate::net::Side::Client,
            self.target.addr,
            self.source,
            self.counter.clone(),
        )
        .await?;
        conn.guard = Some(OpenGuard::new(self.rec.clone()));
        let Some(tls) = self.s.tls.clone() else {
            return Ok(conn);
        };
        let name = crate::tls::server_name(&self.target.host_header);
        match conn.start_tls(tls, name).await {
            Ok(conn) => Ok(conn),
            Err((e, closing)) => {
                self.closed(closing);
                Err(e)
            }
        }
    }

    /// The subscription request for this subscriber's transport, resuming after `cursor`
    /// (`first`: the subscriber's first subscription, which some dialects mark).
    pub fn subscribe_request(&self, cursor: u64, first: bool) -> SubscribeRequest {
        let t = self.s.transport;
        SubscribeRequest {
            path: self.s.dialect.subscribe_path(
                t,
                &self.s.topic,
                cursor,
                self.s.start_cursor,
                self.s.longpoll_timeout_s,
            ),
            kind: match t {
                Transport::Sse => RequestKind::EventSource,
                Transport::Ws => RequestKind::WebSocket,
                _ => RequestKind::Fetch,
            },
            extra: self
                .s
                .dialect
                .subscribe_headers(t, cursor, self.token.as_deref(), first),
        }
    }

    /// Sends a request head (its bytes are `headers`, or `handshake` for an Upgrade).
    pub async fn request(
        &mut self,
        conn: &mut Conn,
        path: &str,
        kind: RequestKind,
        extra: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        let head = request_head(
            "GET",
            path,
            &self.target.host_header,
            self.s.header_profile,
            kind,
            self.s.keep_alive,
            extra,
        );
        if kind == RequestKind::WebSocket {
            self.tally.handshake += head.len() as u64;
        } else {
            self.tally.headers += head.len() as u64;
        }
        self.rec.http_requests.fetch_add(1, Ordering::Relaxed);
        self.rec
            .header_block(HeaderBlock::Request, conn.requests == 0, head.len() as u64);
        conn.requests += 1;
        conn.send(&head).await
    }

    /// Notes the head of a response just read from `conn` (headers per response, first or
    /// later on its connection); the caller attributes its bytes.
    pub fn response_head(&self, conn: &Conn, head: &crate::http::Head) {
        self.rec
            .header_block(HeaderBlock::Response, conn.responses == 1, head.len as u64);
    }

    /// Notes what a clean close (FIN, read to EOF) found.
    pub fn finished(&mut self, c: Closing) {
        if !c.saw_eof {
            self.rec.unclean_closes.fetch_add(1, Ordering::Relaxed);
        }
        self.closed(c);
    }

    /// Notes what closing a connection found.
    pub fn closed(&mut self, c: Closing) {
        self.tally.tls += c.tls_bytes;
        if let Some(tcp) = c.tcp {
            let (out, inn) = tcp.segments;
            self.segments += out + inn;
            self.segments_known = true;
            self.retransmissions.segments += tcp.retransmissions.segments;
            self.retransmissions.bytes += tcp.retransmissions.bytes;
        }
    }

    /// Decodes one message, attributing its bytes to payload and envelope.
    pub fn message(&mut self, bytes: &[u8], at_ns: u64) -> Result<Event, ClientError> {
        let m = self.s.dialect.decode_message(bytes)?;
        self.tally.payload += m.payload_bytes;
        self.tally.envelope += bytes.len() as u64 - m.payload_bytes;
        Ok(Event::Message {
            seq: m.seq,
            due_ns: m.due_ns,
            at_ns,
        })
    }
}

/// A subscription request: where, what kind (browsers send different headers for each), and
/// the dialect's extra header fields.
#[derive(Clone, Debug)]
pub struct SubscribeRequest {
    pub path: String,
    pub kind: RequestKind,
    pub extra: Vec<(String, String)>,
}

impl SubscribeRequest {
    /// The extra fields as the header builders take them.
    pub fn extra(&self) -> Vec<(&str, &str)> {
        self.extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// Reads TCP_INFO and closes: for sockets dropped without the clean close.
pub fn segments_of(conn: &Conn) -> Closing {
    conn.closing(false)
}

/// A subscriber of one transport. The driver calls `open` (with the cursor to resume from),
/// then `next` until it fails or the phase ends, then `close` once.
///
/// Every method must be cancel-safe at its await points (state lives in `self`): the driver
/// drops a pending `next` when the phase's [`Signal`] changes and calls it again.
pub trait Subscriber: Send {
    /// Connects and subscribes from `cursor` (the last seq held). Events the subscription
    /// answer already carries go to `out`.
    fn open(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        out: &mut Vec<Event>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Waits for what comes next and appends it to `out` (possibly nothing, for an empty
    /// poll). An error means the connection is gone; the driver will `open` again.
    fn next(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        out: &mut Vec<Event>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Ends cleanly: shuts the write side, reads (and parses) until the server closes.
    fn close(
        &mut self,
        cx: &mut ClientCtx,
        out: &mut Vec<Event>,
    ) -> impl Future<Output = ()> + Send;

    /// Drops the connection at once, after `next` failed or to simulate a cut.
    fn abort(&mut self, cx: &mut ClientCtx);

    /// How long to wait before reconnecting once a subscription ended: the reconnection time
    /// an SSE stream set with `retry:` (WHATWG), which a browser's EventSource honours too.
    fn reconnect_delay(&self) -> Duration {
        Duration::ZERO
    }
}

/// What one subscriber ended with.
#[derive(Debug, Default)]
pub struct Outcome {
    pub subscribed: bool,
    pub lost: u64,
    pub missing: String,
}

/// Runs one subscriber until the phase ends. Everything it counted is added to `cx.rec`.
pub async fn drive<S: Subscriber>(
    mut sub: S,
    mut cx: ClientCtx,
    mut signal: watch::Receiver<Signal>,
    subscribed: Arc<tokio::sync::Notify>,
) -> Outcome {
    let rec = cx.rec.clone();
    let mut tracker = SeqTracker::new(cx.s.start_cursor);
    let mut outcome = Outcome::default();
    let mut out: Vec<Event> = Vec::new();
    let mut open = false;
    let mut failures = 0u32;
    let mut delivered = 0u64;
    let mut dropped_once = false;
    let mut samples: Vec<u64> = Vec::new();
    loop {
        let sig = *signal.borrow_and_update();
        if sig.stop || sig.target.is_some_and(|t| tracker.cursor() >= t) {
            break;
        }
        if !open {
            match sub.open(&mut cx, tracker.cursor(), &mut out).await {
                Ok(()) => {
                    open = true;
                    failures = 0;
                    if !outcome.subscribed {
                        outcome.subscribed = true;
                        rec.subscribed.fetch_add(1, Ordering::Relaxed);
                        subscribed.notify_one();
                    }
                }
                Err(e) => {
                    sub.abort(&mut cx);
                    failures += 1;
                    rec.errors.fetch_add(1, Ordering::Relaxed);
                    rec.problem(format!("client {}: {e}", cx.id));
                    if !outcome.subscribed && failures >= 3 {
                        // Never got in: give up (the phase reports it).
                        rec.gave_up.fetch_add(1, Ordering::Relaxed);
                        subscribed.notify_one();
                        break;
                    }
                    let backoff = Duration::from_millis(50 * (1 << failures.min(5)));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = signal.changed() => {}
                    }
                    continue;
                }
            }
        } else {
            tokio::select! {
                r = sub.next(&mut cx, tracker.cursor(), &mut out) => {
                    if let Err(e) = r {
                        sub.abort(&mut cx);
                        open = false;
                        rec.reconnects.fetch_add(1, Ordering::Relaxed);
                        if !e.is_disconnect() {
                            rec.errors.fetch_add(1, Ordering::Relaxed);
                            rec.problem(format!("client {}: {e}", cx.id));
                        }
                        let wait = sub.reconnect_delay();
                        if !wait.is_zero() {
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = signal.changed() => {}
                            }
                        }
                    }
                }
                _ = signal.changed() => {}
            }
        }
        delivered += absorb(&cx, &rec, &mut tracker, &mut out, &mut samples);
        if let Some(n) = cx.s.drop_after_messages {
            if open && !dropped_once && delivered >= n {
                // Test hook: a cut connection, as a flaky network would make one.
                dropped_once = true;
                sub.abort(&mut cx);
                open = false;
                rec.reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if open {
        sub.close(&mut cx, &mut out).await;
    } else {
        sub.abort(&mut cx);
    }
    absorb(&cx, &rec, &mut tracker, &mut out, &mut samples);

    let target = signal.borrow().target.unwrap_or(tracker.cursor());
    outcome.lost = tracker.lost(target);
    if outcome.lost > 0 {
        outcome.missing = tracker.describe_missing(target, 4);
    }
    rec.lost_messages.fetch_add(outcome.lost, Ordering::Relaxed);
    rec.duplicate_messages
        .fetch_add(tracker.duplicates, Ordering::Relaxed);
    rec.out_of_order_messages
        .fetch_add(tracker.out_of_order, Ordering::Relaxed);
    rec.gap_notices
        .fetch_add(tracker.gap_notices, Ordering::Relaxed);

    settle_bytes(&rec, cx.counter.written(), cx.counter.read(), &mut cx.tally);
    rec.segments.fetch_add(cx.segments, Ordering::Relaxed);
    rec.retransmitted_segments
        .fetch_add(cx.retransmissions.segments, Ordering::Relaxed);
    rec.retransmitted_bytes
        .fetch_add(cx.retransmissions.bytes, Ordering::Relaxed);
    if cx.segments_known {
        rec.segments_known.store(true, Ordering::Relaxed);
    }
    rec.finished.fetch_add(1, Ordering::Relaxed);
    outcome
}

/// Adds `up` and `down` wire bytes and their attribution `tally` to `rec`, checking that the
/// attributed bytes add up to the counted ones: any difference is reported
/// (`unattributed_bytes`, counted as framing; or overattributed). Used for each subscriber's
/// own bytes and for each shared HTTP/2 connection's.
pub fn settle_bytes(rec: &Recorder, up: u64, down: u64, tally: &mut Tally) {
    rec.wire_bytes_up.fetch_add(up, Ordering::Relaxed);
    rec.wire_bytes_down.fetch_add(down, Ordering::Relaxed);
    let attributed = tally.sum();
    let wire = up + down;
    if wire > attributed {
        let rest = wire - attributed;
        rec.unattributed_bytes.fetch_add(rest, Ordering::Relaxed);
        tally.framing += rest;
    } else if attributed > wire {
        rec.overattributed
            .fetch_add(attributed - wire, Ordering::Relaxed);
    }
    rec.add_tally(tally);
}

/// Applies events: sequence check, delivered count, latency samples. Returns messages
/// delivered (duplicates excluded).
fn absorb(
    cx: &ClientCtx,
    rec: &Recorder,
    tracker: &mut SeqTracker,
    out: &mut Vec<Event>,
    samples: &mut Vec<u64>,
) -> u64 {
    let mut delivered = 0;
    for ev in out.drain(..) {
        match ev {
            Event::Gap(g) => tracker.on_gap(&g),
            Event::Message { seq, due_ns, at_ns } => {
                if tracker.on_message(seq) == Arrival::Duplicate {
                    continue;
                }
                delivered += 1;
                match due_ns {
                    Some(due) if rec.window.contains(due) => {
                        samples.push(at_ns.saturating_sub(due) / 1000);
                    }
                    Some(_) => {}
                    None => {
                        rec.foreign_messages.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    let _ = cx;
    if delivered > 0 {
        rec.delivered_messages
            .fetch_add(delivered, Ordering::Relaxed);
    }
    rec.record_latencies(samples);
    samples.clear();
    delivered
}

/// Starts subscriber `id` of `s.transport` as a task.
pub fn spawn(
    tasks: &mut tokio::task::JoinSet<(Transport, u64, Outcome)>,
    id: u64,
    s: Arc<ClientSettings>,
    rec: Arc<Recorder>,
    signal: watch::Receiver<Signal>,
    subscribed: Arc<tokio::sync::Notify>,
) {
    let t = s.transport;
    let cx = ClientCtx::new(id, s, rec);
    if cx.s.http == HttpVersion::Http2 && t != Transport::Ws {
        // (WebSocket on HTTP/2 is `WsSub` over an extended CONNECT stream.)
        let sub = h2::H2Sub::new(&cx);
        tasks.spawn(async move { (t, id, drive(sub, cx, signal, subscribed).await) });
        return;
    }
    match t {
        Transport::Poll | Transport::LongPoll => {
            let sub = poll::PollSub::new(&cx);
            tasks.spawn(async move { (t, id, drive(sub, cx, signal, subscribed).await) });
        }
        Transport::Sse | Transport::Stream => {
            let sub = streaming::StreamingSub::new(t);
            tasks.spawn(async move { (t, id, drive(sub, cx, signal, subscribed).await) });
        }
        Transport::Ws => {
            let sub = ws::WsSub::default();
            tasks.spawn(async move { (t, id, drive(sub, cx, signal, subscribed).await) });
        }
    }
}
