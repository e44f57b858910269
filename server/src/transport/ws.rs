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
//! `max_message_bytes`, 1003 for binary frames, 1002 on protocol errors. A GET without
//! `Upgrade` gets 426.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pushlab_proto::Transport;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::{bad_request, start_cursor, Q};
use crate::feed::Topic;
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
                session(ws, session_shared, topic, cursor).await;
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

/// One WebSocket subscriber: pushes the topic from `cursor`, publishes what the client sends.
pub async fn session<S>(
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    mut cursor: u64,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut incoming) = ws.split();
    let mut news = topic.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let counters = shared.metrics.transport(Transport::Ws);
    let cfg = &shared.config;
    loop {
        news.borrow_and_update();
        let read = topic.read_after(cursor, cfg.max_batch, cfg.max_subscriber_lag);
        cursor = read.cursor;
        if read.gap.is_some() || !read.entries.is_empty() {
            if let Some(gap) = read.gap {
                counters.gap_notices.fetch_add(1, Ordering::Relaxed);
                let notice = gap.notice_json();
                let text = tokio_tungstenite::tungstenite::Utf8Bytes::try_from(notice)
                    .expect("gap notices are ASCII");
                if sink.feed(Message::Text(text)).await.is_err() {
                    return;
                }
            }
            for e in &read.entries {
                if sink.feed(Message::Text(e.ws_text())).await.is_err() {
                    return;
                }
            }
            counters
                .delivered_messages
                .fetch_add(read.entries.len() as u64, Ordering::Relaxed);
            if sink.flush().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = news.changed() => if changed.is_err() { break },
            _ = crate::until_down(&mut shutdown) => {
                let _ = sink.send(close(CloseCode::Away, "server shutting down")).await;
                break;
            }
            msg = incoming.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    shared.metrics.published_messages.fetch_add(1, Ordering::Relaxed);
                    shared.feed.publish(&topic, text.as_str());
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
}
