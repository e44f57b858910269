//! WebSocket: `GET /ws/{topic}?since=SEQ` with `Upgrade: websocket` (RFC 6455, no extension
//! negotiated), then one text frame per message. A text frame from the client publishes on the
//! topic (the chat room of the classic tutorials).
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
//! Closes: 1000 when the client closes, 1001 on shutdown, 1009 for a message over
//! `max_message_bytes`, 1003 for binary frames, 1002 on protocol errors, 1008 for a text frame
//! on a connection that may not publish (`--publish-token` set and the upgrade request carried
//! neither `Authorization: Bearer TOKEN` nor `?token=TOKEN`). A GET without `Upgrade` gets 426.
//!
//! Liveness: the server pings every `ws_ping_interval`; a peer that answers no ping within
//! `ws_pong_timeout`, or whose socket takes no write for that long (a stalled reader), is
//! dropped and counted as `ws_dead_peer`. Publishing past `publish_rate_per_s` is met with
//! backpressure: the server stops reading the socket until the connection's bucket refills.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
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
use crate::feed::{Read, Topic};
use crate::guard::TokenBucket;
use crate::http_util::{self, Body};
use crate::metrics::{Rejection, SlotCounters};
use crate::Shared;

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// Socket buffers sized for a lab subscriber, not tungstenite's 128 KiB defaults.
pub fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

pub fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    query: Q,
) -> Response<Body> {
    let h = req.headers();
    if !header_has_token(h, header::UPGRADE, "websocket")
        || !header_has_token(h, header::CONNECTION, "upgrade")
    {
        shared.metrics.reject(Rejection::UpgradeRequired);
        let mut r = http_util::error(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket: send Upgrade: websocket and Connection: Upgrade",
        );
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return r;
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        let mut r = bad_request(&shared, "Sec-WebSocket-Version must be 13");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY).filter(|k| k.len() == 24) else {
        return bad_request(
            &shared,
            "Sec-WebSocket-Key missing or not 16 bytes in base64",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let cursor = match start_cursor(&shared, &topic, query.since) {
        Ok(c) => c,
        Err(r) => return r,
    };

    let may_publish = crate::guard::may_publish(&req, &shared.config, true);
    let upgrade = hyper::upgrade::on(&mut req);
    let session_shared = shared.clone();
    shared.tasks.spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let cfg = ws_config(session_shared.config.max_message_bytes);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(cfg),
                )
                .await;
                session_with(ws, session_shared, topic, cursor, may_publish).await;
            }
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
    });

    let mut r = Response::new(http_util::full(""));
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

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
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
    mut cursor: u64,
    may_publish: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut incoming) = ws.split();
    let mut news = topic.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let counters = shared.metrics.transport(Transport::Ws);
    let cfg = &shared.config;
    // A write that waits this long means the peer stopped reading (or is gone).
    let write_timeout = cfg.ws_pong_timeout;
    let mut next_ping = Instant::now() + cfg.ws_ping_interval;
    let mut pong_due: Option<Instant> = None;
    let mut bucket = TokenBucket::new(cfg.publish_rate_per_s, cfg.publish_burst);
    let mut paused_until: Option<Instant> = None;
    loop {
        news.borrow_and_update();
        let read = topic.read_after(cursor, cfg.max_batch, cfg.max_subscriber_lag);
        cursor = read.cursor;
        if read.gap.is_some() || !read.entries.is_empty() {
            let write = send_read(&mut sink, &read, counters);
            match tokio::time::timeout(write_timeout, write).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return,
                Err(_) => {
                    // The batch stays unsent: the subscriber resumes from its own cursor.
                    shared.metrics.reject(Rejection::WsDeadPeer);
                    return;
                }
            }
        }
        let ping_or_dead = pong_due.unwrap_or(next_ping);
        tokio::select! {
            changed = news.changed() => if changed.is_err() { break },
            _ = crate::until_down(&mut shutdown) => {
                let _ = sink.send(close(CloseCode::Away, "server shutting down")).await;
                break;
            }
            _ = tokio::time::sleep_until(ping_or_dead) => {
                if pong_due.is_some() {
                    shared.metrics.reject(Rejection::WsDeadPeer);
                    break;
                }
                let ping = sink.send(Message::Ping(Default::default()));
                match tokio::time::timeout(write_timeout, ping).await {
                    Ok(Ok(())) => pong_due = Some(Instant::now() + cfg.ws_pong_timeout),
                    Ok(Err(_)) => break,
                    Err(_) => {
                        shared.metrics.reject(Rejection::WsDeadPeer);
                        break;
                    }
                }
            }
            // Publish backpressure: while paused, the socket is not read at all.
            _ = tokio::time::sleep_until(paused_until.unwrap_or(ping_or_dead)), if paused_until.is_some() => {
                paused_until = None;
            }
            msg = incoming.next(), if paused_until.is_none() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if !may_publish {
                        shared.metrics.reject(Rejection::Unauthorized);
                        let _ = sink.send(close(CloseCode::Policy, "publishing needs the publish token")).await;
                        break;
                    }
                    shared.publish(&topic, text.as_str());
                    if let Err(wait) = bucket.try_take(Instant::now()) {
                        shared.metrics.reject(Rejection::PublishRate);
                        paused_until = Some(Instant::now() + wait);
                    }
                }
                Some(Ok(Message::Pong(_))) => {
                    pong_due = None;
                    next_ping = Instant::now() + cfg.ws_ping_interval;
                }
                Some(Ok(Message::Binary(_))) => {
                    shared.metrics.reject(Rejection::WsProtocol);
                    let _ = sink.send(close(CloseCode::Unsupported, "send text frames")).await;
                    break;
                }
                Some(Ok(Message::Close(_))) | None => break,
                // Pings are answered by tungstenite; the pong goes out with the next flush.
                Some(Ok(_)) => { let _ = sink.flush().await; }
                Some(Err(WsError::Capacity(_))) => {
                    shared.metrics.reject(Rejection::WsMessageTooBig);
                    let _ = sink.send(close(CloseCode::Size, "message too big")).await;
                    break;
                }
                Some(Err(WsError::Protocol(_))) | Some(Err(WsError::Utf8(_))) => {
                    shared.metrics.reject(Rejection::WsProtocol);
                    let _ = sink.send(close(CloseCode::Protocol, "protocol error")).await;
                    break;
                }
                Some(Err(_)) => break,
            },
        }
    }
    // Let the close handshake finish (bounded) so the client sees a clean end.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while let Some(Ok(_)) = incoming.next().await {}
    })
    .await;
    if let Ok(ws) = sink.reunite(incoming) {
        lingering_close(ws.into_inner()).await;
    }
}

/// Sends one read of the topic (its gap notice, then its messages, one text frame each) and
/// flushes, counting gap notices and delivered messages in `counters`.
async fn send_read<K>(sink: &mut K, read: &Read, counters: &SlotCounters) -> Result<(), WsError>
where
    K: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    if let Some(gap) = read.gap {
        counters.gap_notices.fetch_add(1, Ordering::Relaxed);
        let notice = gap.notice_json();
        let text = tokio_tungstenite::tungstenite::Utf8Bytes::try_from(notice)
            .expect("gap notices are ASCII");
        sink.feed(Message::Text(text)).await?;
    }
    for e in &read.entries {
        sink.feed(Message::Text(e.ws_text())).await?;
    }
    counters
        .delivered_messages
        .fetch_add(read.entries.len() as u64, Ordering::Relaxed);
    sink.flush().await
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
        let mut sink = [0u8; 4096];
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
