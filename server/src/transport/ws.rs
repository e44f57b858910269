//! WebSocket: `GET /ws/{topic}?since=SEQ` with `Upgrade: websocket` (RFC 6455, no extension
//! negotiated), then one text frame per message. A text frame from the client publishes on the
//! topic (the chat room of the classic tutorials). `/echo` (see [`super::echo`]) runs through
//! the very same handshake checks and session loop, with [`Serve::Echo`].
//!
//! ```text
//! GET /ws/chat?since=0 HTTP/1.1            HTTP/1.1 101 Switching Protocols
//! Upgrade: websocket                       upgrade: websocket
//! Connection: Upgrade                      connection: upgrade
//! Sec-WebSocket-Key: dGhlIHNhbXBsZ...      sec-websocket-accept: s3pPLMBiTxaQ9k...
//! Sec-WebSocket-Version: 13
//!
//! 81 4c {"topic":"chat","seq":1,...}       (a 76-byte message costs a 2-byte header)
//! 81 26 {"gap":{"missed":7,...}}
//! ```
//!
//! Over HTTP/2 (RFC 8441) the handshake is an extended CONNECT, answered 200 (not 101), and
//! the frames travel in the stream's DATA frames; there is no `Sec-WebSocket-Key` (§5):
//!
//! ```text
//! HEADERS :method CONNECT  :protocol websocket    HEADERS :status 200
//!         :path /ws/chat?since=0  :scheme https
//!         :authority 127.0.0.1:8443  sec-websocket-version 13
//! ```
//!
//! The server announces SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (see `crate::http_builder`).
//!
//! Handshake (RFC 6455 §4.2.1, §4.4, §11.3): a request that does not ask for the upgrade (not
//! an HTTP/1.1 GET with `Upgrade: websocket` and `Connection: Upgrade`; RFC 9110 §7.8 has an
//! HTTP/1.0 Upgrade ignored) gets 426 on `/ws` (`/echo` serves its page instead); one that
//! asks but carries a `Sec-WebSocket-Key` that is missing, repeated or not 16 bytes in base64
//! gets 400; a `Sec-WebSocket-Version` other than one `13` gets 426 with
//! `Sec-WebSocket-Version: 13`. Each answer has a JSON reason.
//!
//! Closes: 1000 when the client closes, 1001 on shutdown, 1009 for a message over
//! `max_message_bytes`, 1007 for invalid UTF-8 in a text message or close reason (RFC 6455
//! §8.1), 1003 for binary frames on `/ws`, 1002 on other protocol errors, 1008 for a text frame
//! on a connection that may not publish (`--publish-token` set and the upgrade request carried
//! neither `Authorization: Bearer TOKEN` nor `?token=TOKEN`), 1011 if a message could not be
//! written. Each is counted in `pushlab_rejected_total`.
//!
//! Bounds: every wait on the peer (a write, a flush, the close handshake) is bounded by
//! `ws_pong_timeout`; the server pings every `ws_ping_interval` and a peer that answers no ping
//! within `ws_pong_timeout`, or takes no write for that long (a stalled reader), is dropped and
//! counted as `ws_dead_peer`. Pongs are never queued one per ping: tungstenite keeps only the
//! latest (RFC 6455 §5.5.3) and sends it with the next read or write, so a peer that floods
//! pings and reads nothing costs one pending pong and is dropped by the same timeouts. The
//! write buffer takes the largest message the server can send (see [`max_frame_bytes`]), so an
//! accepted publish is deliverable here as on every other transport. Publishing past
//! `publish_rate_per_s` is met with backpressure: the server stops reading the socket until the
//! connection's bucket refills.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pushlab_proto::Transport;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::{bad_request, start_cursor, Framed, Q};
use crate::feed::{Subscription, Topic};
use crate::gate::Gate;
use crate::guard::TokenBucket;
use crate::http_util::{self, Body};
use crate::metrics::Rejection;
use crate::Shared;

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// Bytes of the largest WebSocket frame the server may have to write when messages carry at
/// most `max_message_bytes` of data: the JSON-encoded MESSAGE (each data byte escapes to at
/// most 6, `\u0001`; the 64-byte topic likewise; plus the envelope's fields) and a 10-byte
/// frame header. An echoed message (at most `max_message_bytes`) is smaller.
pub fn max_frame_bytes(max_message_bytes: usize) -> usize {
    const ENVELOPE_BYTES: usize = 128;
    const TOPIC_BYTES: usize = 64;
    max_message_bytes
        .saturating_add(TOPIC_BYTES)
        .saturating_mul(6)
        .saturating_add(ENVELOPE_BYTES + 10)
}

/// Bytes of a session's read buffer (tungstenite allocates it up front; it was 4 KiB).
pub const READ_BUFFER_BYTES: usize = 1024;

/// Socket buffers sized for a lab subscriber, not tungstenite's 128 KiB defaults. The write
/// buffer's cap takes any message the server accepted (plus one frame's worth of backlog):
/// memory is only held there while a write is pending, and a pending write is bounded in time.
///
/// The read buffer ([`READ_BUFFER_BYTES`]) is held by every idle connection; a subscriber
/// reads only pongs and a close, and a larger frame grows it to the frame's length (read in
/// pieces of this size), so a publisher pays a few more reads, never a refusal.
pub fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(max_frame_bytes(max_message_bytes).max(256 * 1024) + 64 * 1024)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// Whether `key` is 16 bytes in base64 (RFC 6455 §4.2.1 item 5): 22 base64 characters, the
/// last of which leaves no stray bits, then `==`.
pub fn valid_key(key: &[u8]) -> bool {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|c| B64.contains(c))
        && B64
            .iter()
            .position(|c| *c == key[21])
            .is_some_and(|i| i % 16 == 0)
}

/// What a WebSocket session serves.
pub enum Serve {
    /// `/ws/{topic}`: the topic from `cursor`; text frames publish when `may_publish`.
    Topic {
        topic: Arc<Topic>,
        cursor: u64,
        may_publish: bool,
    },
    /// `/echo`: every text or binary message back unchanged.
    Echo,
}

/// A WebSocket handshake the server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// HTTP/1.1 Upgrade (RFC 6455 §4): answer 101 with this `Sec-WebSocket-Accept`.
    Upgrade(String),
    /// HTTP/2 extended CONNECT (RFC 8441 §4): answer 200.
    ExtendedConnect,
}

/// Whether `req` is an RFC 8441 extended CONNECT for the `websocket` protocol.
fn is_extended_connect<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::CONNECT
        && req.version() == Version::HTTP_2
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// Checks a WebSocket handshake (RFC 6455 §4.2.1, or RFC 8441 §4 on HTTP/2). `Ok(None)`: the
/// request asks for no WebSocket at all; `Ok(Some(handshake))`: go on; `Err`: the refusal to
/// send.
pub fn check_handshake<B>(
    req: &Request<B>,
    shared: &Shared,
) -> Result<Option<Handshake>, Response<Body>> {
    let h = req.headers();
    let h2 = is_extended_connect(req);
    // RFC 9110 §7.8: Upgrade counts only with the "upgrade" connection option (else an
    // intermediary may have forwarded it), and an HTTP/1.0 request's Upgrade MUST be ignored.
    // RFC 6455 §4.1: the handshake is a GET.
    if !h2
        && (req.method() != http::Method::GET
            || req.version() != Version::HTTP_11
            || !header_has_token(h, header::UPGRADE, "websocket")
            || !header_has_token(h, header::CONNECTION, "upgrade"))
    {
        return Ok(None);
    }
    let versions: Vec<&HeaderValue> = h.get_all(header::SEC_WEBSOCKET_VERSION).iter().collect();
    if versions.len() != 1 || versions[0].as_bytes() != b"13" {
        shared.metrics.reject(Rejection::UpgradeRequired);
        let mut r = http_util::error(
            StatusCode::UPGRADE_REQUIRED,
            "Sec-WebSocket-Version must be sent once, as 13 (RFC 6455 §4.4)",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(r);
    }
    if h2 {
        // RFC 8441 §5: no Sec-WebSocket-Key / -Accept on HTTP/2.
        return Ok(Some(Handshake::ExtendedConnect));
    }
    let keys: Vec<&HeaderValue> = h.get_all(header::SEC_WEBSOCKET_KEY).iter().collect();
    match keys[..] {
        [key] if valid_key(key.as_bytes()) => {
            Ok(Some(Handshake::Upgrade(derive_accept_key(key.as_bytes()))))
        }
        _ => Err(bad_request(
            shared,
            "Sec-WebSocket-Key must be sent once, as 16 bytes in base64 (RFC 6455 §4.2.1)",
        )),
    }
}

/// `GET /ws/{topic}`.
pub fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    query: Q,
) -> Response<Body> {
    let handshake = match check_handshake(&req, &shared) {
        Ok(Some(handshake)) => handshake,
        Ok(None) if req.version() == Version::HTTP_2 => {
            // RFC 9113 §8.2.2: no Upgrade header field on HTTP/2; the way in is RFC 8441's.
            shared.metrics.reject(Rejection::UpgradeRequired);
            return http_util::error(
                StatusCode::UPGRADE_REQUIRED,
                "this endpoint speaks WebSocket: on HTTP/2 open it with an extended CONNECT \
                 (:method CONNECT, :protocol websocket; RFC 8441)",
            );
        }
        Ok(None) => {
            shared.metrics.reject(Rejection::UpgradeRequired);
            let mut r = http_util::error(
                StatusCode::UPGRADE_REQUIRED,
                "this endpoint speaks WebSocket: send Upgrade: websocket and Connection: Upgrade",
            );
            r.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            return r;
        }
        Err(r) => return r,
    };
    let cursor = match start_cursor(&shared, &topic, query.since) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let may_publish = crate::guard::may_publish(&req, &shared.config, true);
    let serve = Serve::Topic {
        topic,
        cursor,
        may_publish,
    };
    upgrade(req, shared, handshake, serve)
}

/// Answers 101 (200 to an extended CONNECT) and runs [`run`] on the upgraded socket (on
/// HTTP/2, the stream).
pub fn upgrade(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    handshake: Handshake,
    serve: Serve,
) -> Response<Body> {
    let upgrade = hyper::upgrade::on(&mut req);
    let session_shared = shared.clone();
    let handshake_timeout = shared.config.header_read_timeout;
    shared.tasks.spawn(async move {
        match tokio::time::timeout(handshake_timeout, upgrade).await {
            Ok(Ok(upgraded)) => {
                let cfg = ws_config(session_shared.config.max_message_bytes);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(cfg),
                )
                .await;
                run(ws, session_shared, serve).await;
            }
            Ok(Err(e)) => tracing::debug!("websocket upgrade failed: {e}"),
            Err(_) => session_shared.metrics.reject(Rejection::WsDeadPeer),
        }
    });

    let mut r = Response::new(http_util::full(""));
    let Handshake::Upgrade(accept) = handshake else {
        // RFC 8441 §5: a 2xx answers the CONNECT; the stream is now the WebSocket.
        return r;
    };
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    r
}

/// One WebSocket subscriber: pushes the topic from `cursor`, publishes what the client sends
/// (if no publish token is configured).
pub async fn session<S>(ws: WebSocketStream<S>, shared: Arc<Shared>, topic: Arc<Topic>, cursor: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let may_publish = shared.config.publish_token.is_none();
    session_with(ws, shared, topic, cursor, may_publish).await
}

/// [`session`], told whether the client's text frames may publish.
pub async fn session_with<S>(
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    cursor: u64,
    may_publish: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let serve = Serve::Topic {
        topic,
        cursor,
        may_publish,
    };
    run(ws, shared, serve).await
}

/// How a session ended, and so what is left to do with the socket.
enum End {
    /// Send this close frame (bounded), then finish the close handshake.
    Close(CloseCode, &'static str, Option<Rejection>),
    /// The peer closed or the socket failed: finish what is left of the close handshake.
    Gone,
    /// The peer took no write in time: drop it without waiting on it again.
    Dead,
}

/// The close (and its count) a read error calls for. Expected disconnects map to `Gone`.
fn end_for_read_error(e: &WsError) -> End {
    match e {
        WsError::Capacity(_) => End::Close(
            CloseCode::Size,
            "message too big",
            Some(Rejection::WsMessageTooBig),
        ),
        WsError::Utf8(_) => End::Close(
            CloseCode::Invalid,
            "invalid UTF-8 in a text message or close reason",
            Some(Rejection::WsInvalidUtf8),
        ),
        WsError::Protocol(_) => End::Close(
            CloseCode::Protocol,
            "protocol error",
            Some(Rejection::WsProtocol),
        ),
        _ => End::Gone,
    }
}

/// The end a failed or timed-out write calls for: never silent, always counted.
fn end_for_write(
    shared: &Shared,
    res: Result<Result<(), WsError>, tokio::time::error::Elapsed>,
) -> Option<End> {
    match res {
        Ok(Ok(())) => None,
        Ok(Err(WsError::WriteBufferFull(_))) => Some(End::Close(
            CloseCode::Error,
            "message could not be written",
            Some(Rejection::WsWriteFailed),
        )),
        Ok(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => Some(End::Gone),
        Ok(Err(_)) => {
            shared.metrics.reject(Rejection::WsWriteFailed);
            Some(End::Gone)
        }
        Err(_) => {
            shared.metrics.reject(Rejection::WsDeadPeer);
            Some(End::Dead)
        }
    }
}

/// Sends one batch of what the topic has after `cursor` (gap notice first), the write bounded
/// by `ws_pong_timeout`. `Ok(true)`: something was sent (there may be more). `read` is the
/// session's buffer for the batch's entries (kept for its capacity).
///
/// Each message goes out as its cached frame ([`Framed::ws_frame`]: framed once per message
/// by tungstenite, shared by every subscriber), written to the socket under tungstenite, not
/// framed again per subscriber. `dirty` says tungstenite may hold part of a frame of its own
/// (it answers a ping while reading, and a write may stop half way): it is flushed first, so
/// frames never interleave.
async fn push_news<S>(
    ws: &mut WebSocketStream<S>,
    dirty: &mut bool,
    shared: &Shared,
    topic: &Topic,
    cursor: &mut u64,
    read: &mut Vec<Arc<crate::feed::Entry>>,
) -> Result<bool, End>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let cfg = &shared.config;
    let counters = shared.metrics.transport(Transport::Ws);
    read.clear();
    let (gap, next) = topic.read_after_into(*cursor, cfg.max_batch, cfg.max_subscriber_lag, read);
    if gap.is_none() && read.is_empty() {
        return Ok(false);
    }
    let write = async {
        if *dirty {
            ws.flush().await?;
            *dirty = false;
        }
        let io = ws.get_mut();
        if gap.is_none() && read.len() == 1 {
            io.write_all(&read[0].ws_frame()).await?;
        } else {
            let mut batch = Vec::new();
            if let Some(gap) = &gap {
                counters.gap_notices.fetch_add(1, Ordering::Relaxed);
                batch.extend_from_slice(&super::ws_text_frame(gap.notice_json()));
            }
            for e in read.iter() {
                batch.extend_from_slice(&e.ws_frame());
            }
            io.write_all(&batch).await?;
        }
        io.flush().await?;
        Ok::<(), WsError>(())
    };
    let res = bounded(cfg.ws_pong_timeout, write).await;
    if let Some(end) = end_for_write(shared, res) {
        // The batch stays unsent: a resuming subscriber starts from its own cursor.
        return Err(end);
    }
    counters
        .delivered_messages
        .fetch_add(read.len() as u64, Ordering::Relaxed);
    read.clear();
    *cursor = next;
    Ok(true)
}

/// Runs one WebSocket session until the peer, the server or a bound ends it.
///
/// Per message a subscriber's task wakes once (its topic's [`Topic::poll_news`]) and writes; nothing
/// else is re-armed: the ping/pong and pause timers are one `Sleep` each for the session,
/// reset only when their deadline moves, the shutdown wait is registered once, and the read
/// half is polled only when the socket (or the stream itself) asked for it ([`Gate`]).
pub async fn run<S>(ws: WebSocketStream<S>, shared: Arc<Shared>, mut serve: Serve)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut ws = ws;
    // tungstenite may hold part of a frame of its own (see `push_news`).
    let mut dirty = false;
    let news = match &serve {
        Serve::Topic { topic, .. } => Some(topic.clone()),
        Serve::Echo => None,
    };
    let mut sub = Subscription::default();
    let mut read = Vec::new();
    let mut shutdown = shared.shutdown.clone();
    // Polled only when the flag changed, not on every message (see `crate::gate`).
    let mut down = crate::gate::Gated::new(crate::until_down(&mut shutdown));
    let cfg = &shared.config;
    // A write that waits this long means the peer stopped reading (or is gone).
    let write_timeout = cfg.ws_pong_timeout;
    // Fires when the next ping is due or, while a pong is due, when the peer counts as dead.
    let ping_timer = tokio::time::sleep(cfg.ws_ping_interval);
    tokio::pin!(ping_timer);
    let mut pong_due = false;
    let mut bucket = TokenBucket::new(cfg.publish_rate_per_s, cfg.publish_burst);
    // Publish backpressure: while `paused`, the socket is not read until `pause_timer` fires.
    let pause_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(pause_timer);
    let mut paused = false;
    let read_gate = Gate::new();
    let end = loop {
        let mut at = 0;
        if let Serve::Topic { topic, cursor, .. } = &mut serve {
            match push_news(&mut ws, &mut dirty, &shared, topic, cursor, &mut read).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(end) => break end,
            }
            at = *cursor;
        }
        tokio::select! {
            _ = std::future::poll_fn(|cx| match &news {
                Some(topic) => topic.poll_news(&mut sub, at, cx),
                None => Poll::Pending,
            }), if news.is_some() => {}
            _ = &mut down => {
                break End::Close(CloseCode::Away, "server shutting down", None);
            }
            _ = &mut ping_timer => {
                if pong_due {
                    shared.metrics.reject(Rejection::WsDeadPeer);
                    break End::Dead;
                }
                dirty = true;
                let ping = ws.send(Message::Ping(Default::default()));
                match end_for_write(&shared, bounded(write_timeout, ping).await) {
                    None => {
                        pong_due = true;
                        ping_timer.as_mut().reset(Instant::now() + cfg.ws_pong_timeout);
                    }
                    Some(end) => break end,
                }
            }
            _ = &mut pause_timer, if paused => paused = false,
            // A read may also write (tungstenite answers pings while reading): `dirty`.
            msg = std::future::poll_fn(|cx| read_gate.poll_next(&mut ws, cx, &mut dirty)), if !paused => match msg {
                Some(Ok(Message::Pong(_))) => {
                    pong_due = false;
                    ping_timer.as_mut().reset(Instant::now() + cfg.ws_ping_interval);
                }
                // tungstenite keeps the latest pong and sends it with the next read or write;
                // nothing here waits on the peer.
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => break End::Gone,
                Some(Ok(data)) => {
                    let step = on_data(&mut ws, &shared, &serve, data, &mut bucket).await;
                    match step {
                        Ok(None) => {}
                        Ok(Some(wait)) => {
                            paused = true;
                            pause_timer.as_mut().reset(Instant::now() + wait);
                        }
                        Err(end) => break end,
                    }
                }
                Some(Err(e)) => break end_for_read_error(&e),
            },
        }
    };
    finish(ws, &shared, end).await;
}

/// `fut` bounded by `limit`, with no timer at all when it completes on its first poll (a
/// write into a socket with room: nearly every write to a subscriber).
async fn bounded<F: std::future::Future>(
    limit: Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => tokio::time::timeout(limit, fut).await,
    }
}

/// Handles a text or binary message from the client: publish (`/ws`) or echo (`/echo`).
/// `Ok(Some(wait))`: stop reading for `wait` (publish rate).
async fn on_data<S>(
    ws: &mut WebSocketStream<S>,
    shared: &Shared,
    serve: &Serve,
    data: Message,
    bucket: &mut TokenBucket,
) -> Result<Option<Duration>, End>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match (serve, data) {
        (Serve::Echo, data) => {
            let res = tokio::time::timeout(shared.config.ws_pong_timeout, ws.send(data)).await;
            end_for_write(shared, res).map_or(Ok(None), Err)
        }
        (
            Serve::Topic {
                may_publish: false, ..
            },
            Message::Text(_),
        ) => Err(End::Close(
            CloseCode::Policy,
            "publishing needs the publish token",
            Some(Rejection::Unauthorized),
        )),
        (Serve::Topic { topic, .. }, Message::Text(text)) => {
            if shared.publish(topic, text.as_str()).await.is_err() {
                // RFC 6455 §7.4.1 registry: 1013 Try Again Later.
                return Err(End::Close(
                    CloseCode::Again,
                    "backplane down; publish again later",
                    Some(Rejection::BackplaneDown),
                ));
            }
            match bucket.try_take(Instant::now()) {
                Ok(()) => Ok(None),
                Err(wait) => {
                    shared.metrics.reject(Rejection::PublishRate);
                    Ok(Some(wait))
                }
            }
        }
        (Serve::Topic { .. }, _) => Err(End::Close(
            CloseCode::Unsupported,
            "send text frames",
            Some(Rejection::WsProtocol),
        )),
    }
}

/// Ends a session: sends the close frame `end` asks for and lets the close handshake finish,
/// each step bounded, then lingers so the peer sees the close rather than a reset.
async fn finish<S>(mut ws: WebSocketStream<S>, shared: &Shared, end: End)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let bound = shared.config.ws_pong_timeout.min(Duration::from_secs(2));
    match end {
        End::Dead => return,
        End::Close(code, reason, counted) => {
            if let Some(why) = counted {
                shared.metrics.reject(why);
            }
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            if tokio::time::timeout(bound, ws.send(frame)).await.is_err() {
                shared.metrics.reject(Rejection::WsDeadPeer);
                return;
            }
        }
        End::Gone => {}
    }
    // Let the close handshake finish (bounded) so the client sees a clean end.
    let _ = tokio::time::timeout(bound, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    lingering_close(ws.into_inner()).await;
}

/// Half-closes and reads the peer's leftovers away (bounded) before the socket is dropped.
///
/// Dropping a socket with unread bytes makes the kernel send a reset, and a reset can make the
/// client discard the close frame we just sent (seen with Python's websocket-client after an
/// oversized message: "connection reset" instead of close 1009). Same idea as nginx's
/// lingering_close.
async fn lingering_close<S>(mut io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = io.shutdown().await;
        // On the heap, and only now: an array here would sit in every session's future (the
        // task's allocation) for the whole life of the connection.
        let mut sink = vec![0u8; 4096];
        let mut left: usize = 4 * 1024 * 1024;
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_16_bytes_of_base64() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(valid_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(
            !valid_key(b"dGhlIHNhbXBsZSBub25jZR=="),
            "stray bits in the last char"
        );
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25j!Q=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQAA"));
        assert!(!valid_key(b""));
    }

    #[test]
    fn the_write_buffer_takes_the_largest_encoded_message() {
        let data = "\u{1}".repeat(44_000);
        let m = pushlab_proto::encode_message(&"t".repeat(64), u64::MAX, u64::MAX, &data);
        assert!(m.bytes.len() + 10 <= max_frame_bytes(44_000));
        let cfg = ws_config(64 * 1024);
        assert!(cfg.max_write_buffer_size >= max_frame_bytes(64 * 1024));
    }
}
