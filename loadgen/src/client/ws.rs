//! WebSocket: one handshake, then a text frame per message (tokio-tungstenite over the raw,
//! counted socket; the Upgrade exchange is written and parsed here so its bytes are exact).
//!
//! ```text
//! GET /ws/T?since=41 HTTP/1.1              HTTP/1.1 101 Switching Protocols
//! Upgrade: websocket                       upgrade: websocket
//! Connection: Upgrade                      connection: upgrade
//! Sec-WebSocket-Key: ...                   sec-websocket-accept: ...
//! Sec-WebSocket-Version: 13
//!
//! 81 4c {"topic":"T","seq":42,...}         one unmasked text frame per message (down)
//! 88 80 xx xx xx xx                        our close: masked, empty (up)
//! ```
//!
//! Bytes: the Upgrade request and the 101 response are `handshake`, and so are close frames
//! both ways; each text frame costs [`ws_header_len`] bytes of `framing` around its message;
//! pings, the pongs tungstenite answers them with, and gap notices are `framing` too. The
//! client never sends data frames, so what it writes after the handshake (close frames) is
//! counted as written.
//!
//! Over TLS (wss) the same exchange runs on the TLS stream; what TLS adds is `tls`. Over
//! HTTP/2 the handshake is an RFC 8441 extended CONNECT ([`super::h2::tunnel`]) and the frames
//! travel in the stream's DATA: the split of the frames is the same, the HTTP/2 around them
//! is the connection's ([`super::h2`]).
//!
//! The client reads through a 4 KiB buffer and keeps no write buffer, so thousands of
//! subscribers stay small next to the server.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use pushlab_proto::frame::ws_header_len;
use pushlab_proto::CountingIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::h2::{tunnel::Tunnel, Credit, Lease};
use super::{ClientCtx, Event, SubscribeRequest, Subscriber};
use crate::config::{HeaderProfile, HttpVersion};
use crate::http::{ClientError, Closing, Prefixed};

/// Largest message accepted.
const MAX_MESSAGE_BYTES: usize = 2 << 20;

/// Small buffers: a lab subscriber, not a browser.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// What a WebSocket runs on: an upgraded HTTP/1.1 connection (cleartext or TLS), or an
/// extended-CONNECT stream on HTTP/2.
#[derive(Debug)]
pub enum WsRaw {
    H1(Prefixed),
    H2(CountingIo<Tunnel, Credit>),
}

impl WsRaw {
    /// Plaintext bytes written so far on this connection (HTTP/1.1) or stream (HTTP/2).
    fn written(&self) -> u64 {
        match self {
            WsRaw::H1(p) => p.0.io.counter().written(),
            WsRaw::H2(t) => t.counter().stream.written(),
        }
    }

    /// What closing now finds (a stream has no socket of its own: its connection's is
    /// accounted with the connection).
    fn closing(&self, saw_eof: bool) -> Closing {
        match self {
            WsRaw::H1(p) => p.0.closing(saw_eof),
            WsRaw::H2(_) => Closing {
                saw_eof,
                ..Closing::default()
            },
        }
    }
}

impl AsyncRead for WsRaw {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsRaw::H1(p) => Pin::new(p).poll_read(cx, buf),
            WsRaw::H2(t) => Pin::new(t).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WsRaw {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WsRaw::H1(p) => Pin::new(p).poll_write(cx, buf),
            WsRaw::H2(t) => Pin::new(t).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsRaw::H1(p) => Pin::new(p).poll_flush(cx),
            WsRaw::H2(t) => Pin::new(t).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsRaw::H1(p) => Pin::new(p).poll_shutdown(cx),
            WsRaw::H2(t) => Pin::new(t).poll_shutdown(cx),
        }
    }
}

#[derive(Debug, Default)]
pub struct WsSub {
    ws: Option<WebSocketStream<WsRaw>>,
    /// The HTTP/2 connection the stream is on.
    lease: Option<Lease>,
    /// Plaintext bytes written on this connection or stream up to the end of the handshake.
    written_at_upgrade: u64,
    /// Bytes of pongs written since (framing, not handshake).
    pong_bytes: u64,
}

fn map_err(e: WsError) -> ClientError {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => ClientError::Closed,
        WsError::Io(e) => ClientError::Io(e),
        other => ClientError::Protocol(other.to_string()),
    }
}

impl WsSub {
    /// Attributes what this connection wrote after the Upgrade request: close frames.
    fn settle_written(&mut self, cx: &mut ClientCtx) {
        let Some(ws) = self.ws.as_ref() else {
            return;
        };
        let written = ws.get_ref().written();
        cx.tally.handshake += written
            .saturating_sub(self.written_at_upgrade)
            .saturating_sub(self.pong_bytes);
        cx.tally.framing += self.pong_bytes;
        self.written_at_upgrade = written;
        self.pong_bytes = 0;
    }

    /// Accounts one frame read; returns an event for messages and gap notices.
    fn on_frame(
        &mut self,
        cx: &mut ClientCtx,
        msg: Message,
        out: &mut Vec<Event>,
    ) -> Result<bool, ClientError> {
        match msg {
            Message::Text(t) => {
                let b = t.as_bytes();
                cx.tally.framing += ws_header_len(b.len(), false) as u64;
                if let Some(g) = cx.s.dialect.decode_gap(b) {
                    cx.tally.framing += b.len() as u64;
                    out.push(Event::Gap(g));
                } else {
                    out.push(cx.message(b, crate::net::now_ns())?);
                }
            }
            Message::Binary(b) | Message::Pong(b) => {
                cx.tally.framing += (ws_header_len(b.len(), false) + b.len()) as u64;
            }
            Message::Ping(p) => {
                cx.tally.framing += (ws_header_len(p.len(), false) + p.len()) as u64;
                self.pong_bytes += (ws_header_len(p.len(), true) + p.len()) as u64;
            }
            Message::Close(cf) => {
                let len = cf.map_or(0, |c| 2 + c.reason.len());
                cx.tally.handshake += (ws_header_len(len, false) + len) as u64;
                return Ok(true);
            }
            Message::Frame(f) => {
                let len = f.payload().len();
                cx.tally.framing += (ws_header_len(len, false) + len) as u64;
            }
        }
        Ok(false)
    }

    /// Reads the socket to EOF after the WebSocket is done, then reads TCP_INFO.
    async fn finish_raw(&mut self, cx: &mut ClientCtx) -> Closing {
        let Some(ws) = self.ws.as_mut() else {
            return Closing::default();
        };
        let raw = ws.get_mut();
        let _ = tokio::time::timeout(cx.s.close_timeout, raw.shutdown()).await;
        let mut sink = [0u8; 4096];
        let saw_eof = tokio::time::timeout(cx.s.close_timeout, async {
            loop {
                match tokio::io::AsyncReadExt::read(raw, &mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok();
        raw.closing(saw_eof)
    }

    /// The Upgrade exchange on a new HTTP/1.1 connection (TLS when set).
    async fn open_h1(
        &mut self,
        cx: &mut ClientCtx,
        req: &SubscribeRequest,
    ) -> Result<WsRaw, ClientError> {
        let mut conn = cx.connect().await?;
        let key = generate_key();
        let mut extra = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", key.as_str()),
        ];
        if cx.s.header_profile == HeaderProfile::Browser {
            extra.push((
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ));
        }
        extra.extend(req.extra());
        let result = async {
            cx.request(&mut conn, &req.path, req.kind, &extra).await?;
            let head = conn.read_head().await?;
            cx.tally.handshake += head.len as u64;
            cx.response_head(&conn, &head);
            if head.status != 101 {
                let (body, framing) = conn.read_body(head.body, 64 * 1024).await?;
                cx.tally.handshake += framing + body.len() as u64;
                return Err(ClientError::Status {
                    status: head.status,
                    body: crate::http::preview(&body),
                });
            }
            if head.header("sec-websocket-accept") != Some(&derive_accept_key(key.as_bytes())) {
                return Err(ClientError::Protocol(
                    "101 without the right Sec-WebSocket-Accept".into(),
                ));
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let c = super::segments_of(&conn);
            cx.closed(c);
            // What the server said is attributed; anything past it is left for drive().
            return Err(e);
        }
        Ok(WsRaw::H1(Prefixed(conn)))
    }

    /// The extended CONNECT on this subscriber's HTTP/2 connection.
    async fn open_h2(
        &mut self,
        cx: &mut ClientCtx,
        req: &SubscribeRequest,
    ) -> Result<WsRaw, ClientError> {
        if self.lease.is_none() {
            self.lease = Some(cx.s.h2_pool.acquire(cx).await?);
        }
        let lease = self.lease.as_mut().expect("taken above");
        let mut req = req.clone();
        req.extra
            .push(("Sec-WebSocket-Version".into(), "13".into()));
        Ok(WsRaw::H2(super::h2::tunnel::open(cx, lease, &req).await?))
    }
}

impl Subscriber for WsSub {
    async fn open(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        _out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        let req = cx.subscribe_request(cursor, true);
        let raw = if cx.s.http == HttpVersion::Http2 {
            self.open_h2(cx, &req).await?
        } else {
            self.open_h1(cx, &req).await?
        };
        self.written_at_upgrade = raw.written();
        self.pong_bytes = 0;
        self.ws =
            Some(WebSocketStream::from_raw_socket(raw, Role::Client, Some(client_config())).await);
        Ok(())
    }

    async fn next(
        &mut self,
        cx: &mut ClientCtx,
        _cursor: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        loop {
            let ws = self.ws.as_mut().ok_or(ClientError::Closed)?;
            match ws.next().await {
                Some(Ok(msg)) => {
                    if self.on_frame(cx, msg, out)? {
                        // The server closed; tungstenite echoes the close on the next read.
                        let _ = tokio::time::timeout(cx.s.close_timeout, ws_next(self)).await;
                        return Err(ClientError::Closed);
                    }
                    if !out.is_empty() {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(map_err(e)),
                None => return Err(ClientError::Closed),
            }
        }
    }

    async fn close(&mut self, cx: &mut ClientCtx, out: &mut Vec<Event>) {
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        let timeout = cx.s.close_timeout;
        let _ = tokio::time::timeout(timeout, ws.close(None)).await;
        // Messages already on their way still count; then the server's close, then EOF.
        let _ = tokio::time::timeout(timeout, async {
            while let Some(ws) = self.ws.as_mut() {
                match ws.next().await {
                    Some(Ok(msg)) => match self.on_frame(cx, msg, out) {
                        Ok(true) | Err(_) => break,
                        Ok(false) => {}
                    },
                    Some(Err(_)) | None => break,
                }
            }
        })
        .await;
        let closing = self.finish_raw(cx).await;
        cx.finished(closing);
        self.settle_written(cx);
        self.ws = None;
        if let Some(lease) = self.lease.take() {
            lease.close(cx.s.close_timeout).await;
        }
    }

    fn abort(&mut self, cx: &mut ClientCtx) {
        if let Some(ws) = self.ws.as_ref() {
            cx.closed(ws.get_ref().closing(false));
            self.settle_written(cx);
        }
        self.ws = None;
        self.lease = None;
    }
}

async fn ws_next(sub: &mut WsSub) {
    if let Some(ws) = sub.ws.as_mut() {
        let _ = ws.next().await;
    }
}
