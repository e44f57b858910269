//! HTTP/2 subscribers (`--http 2`): poll, long poll, SSE and the chunked stream over one
//! HTTP/2 connection each, spoken by the `h2` crate (hyper's HTTP/2 engine) with prior
//! knowledge (h2c, RFC 9113 §3.3).
//!
//! ```text
//! PRI * HTTP/2.0 ... SETTINGS                          SETTINGS  SETTINGS(ACK)
//! SETTINGS(ACK)  HEADERS :method GET :path /sse/T?since=0 ...
//!                                                      HEADERS :status 200 ...
//!                                                      DATA id: 42\ndata: MESSAGE\n\n
//! ```
//!
//! Bytes: the socket is wrapped in a [`Tap`] below the HTTP/2 library that splits every byte
//! both ways frame by frame ([`pushlab_proto::h2wire`]): the preface and first SETTINGS
//! exchange are `handshake`, HPACK header blocks `headers`, frame headers and padding
//! `framing`, SETTINGS/WINDOW_UPDATE/PING/RST_STREAM/GOAWAY `control`. The DATA payloads are
//! the response bodies; the transport's own parser (poll batch, SSE, NDJSON) splits them into
//! payload, envelope and framing as on HTTP/1.1. DATA that reached the socket but no parser
//! (a stream the client cancelled at the end, with frames still in flight) is `framing`.
//!
//! Each request's and response's HPACK block size is recorded as the first on its connection
//! (empty compression table) or a later one: what header compression saves, measured. The h2
//! crate's encoder never indexes the values of `cookie`, `:path` and a few others
//! (`hpack::Header::skip_value_index`): they go as literals on every request, so the warm
//! figure with browser headers is the cookie's size plus a little.
//!
//! With `--tls on` the socket is TLS (rustls, ALPN `h2`) and the tap sits above it: it splits
//! the plaintext, and what the socket moved beyond the plaintext is `tls` (handshake, record
//! headers, AEAD tags), per connection.
//!
//! A poll subscriber keeps its connection and sends each poll as a new stream; an SSE or
//! stream subscriber holds one stream open and reconnects (a new connection) when it ends.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::{ResponseFuture, SendRequest};
use h2::RecvStream;
use pushlab_proto::h2wire::{H2WireParser, Sender};
use pushlab_proto::Transport;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::poll::{apply_response, MAX_BATCH_BYTES};
use super::streaming::StreamingSub;
use super::{ClientCtx, Event, Subscriber};
use crate::headers::{h2_request_fields, RequestKind};
use crate::http::{BodyLen, ClientError, Head, Io};
use crate::record::{HeaderBlock, OpenGuard, Tally};

/// What the [`Tap`] saw on one connection.
#[derive(Debug)]
struct Wire {
    up: H2WireParser,
    down: H2WireParser,
    /// TCP segments (out, in) from TCP_INFO at the close.
    segments: Option<(u64, u64)>,
    /// The server closed its side before we dropped the socket.
    saw_eof: bool,
    /// The subscriber's wire count (both ways) when this connection opened: what it moved
    /// beyond its plaintext is TLS's.
    wire_at_open: u64,
    /// Added to the subscriber's tally already.
    folded: bool,
}

/// A counted socket whose bytes are also split into HTTP/2 frames as they pass.
#[derive(Debug)]
struct Tap<S: OverTcp> {
    io: S,
    wire: Arc<Mutex<Wire>>,
    /// The write side is shut; reading on until EOF.
    draining: bool,
    _guard: OpenGuard,
}

/// A stream with a TCP socket under it (for TCP_INFO).
trait OverTcp: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;
}

impl OverTcp for Io {
    fn tcp(&self) -> &TcpStream {
        self.get_ref()
    }
}

impl OverTcp for tokio_rustls::client::TlsStream<Io> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.get_ref()
    }
}

impl<S: OverTcp> Tap<S> {
    fn new(io: S, wire: Arc<Mutex<Wire>>, guard: OpenGuard) -> Tap<S> {
        Tap {
            io,
            wire,
            draining: false,
            _guard: guard,
        }
    }

    fn wire(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.wire.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: OverTcp> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.wire().down.push(&buf.filled()[before..]);
        }
        res
    }
}

impl<S: OverTcp> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.wire().up.push(&buf[..n]);
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// Shuts the write side, then reads (and splits) until the server closes, so every byte
    /// it sent is counted here as it is on the server (the HTTP/2 library would drop the
    /// socket at once).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.draining {
            std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.draining = true;
        }
        let mut scratch = [0u8; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    this.wire().down.push(buf.filled());
                }
                Poll::Ready(r) => {
                    let segments = crate::net::tcp_segments(this.io.tcp());
                    let mut w = this.wire();
                    w.saw_eof = r.is_ok();
                    w.segments = segments;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<S: OverTcp> Drop for Tap<S> {
    fn drop(&mut self) {
        let segments = crate::net::tcp_segments(self.io.tcp());
        let mut w = self.wire();
        if w.segments.is_none() {
            w.segments = segments;
        }
    }
}

/// One HTTP/2 connection: the request handle, the task driving the connection, and what its
/// tap saw.
struct H2Conn {
    send: SendRequest<Bytes>,
    task: JoinHandle<()>,
    wire: Arc<Mutex<Wire>>,
    /// Body bytes handed to the transport's parser (the rest of DATA is framing).
    body_bytes: u64,
}

impl std::fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Conn")
            .field("body_bytes", &self.body_bytes)
            .finish_non_exhaustive()
    }
}

impl H2Conn {
    /// Connects (TLS with ALPN `h2` when set), sends the preface and SETTINGS, and starts
    /// the connection task.
    async fn open(cx: &mut ClientCtx) -> Result<H2Conn, ClientError> {
        let stream: TcpStream = crate::net::connect(cx.s.target.addr, cx.source)
            .await
            .map_err(ClientError::Connect)?;
        let wire_at_open = cx.counter.read() + cx.counter.written();
        let wire = Arc::new(Mutex::new(Wire {
            up: H2WireParser::new(Sender::Client),
            down: H2WireParser::new(Sender::Server),
            segments: None,
            saw_eof: false,
            wire_at_open,
            folded: false,
        }));
        let io = pushlab_proto::CountingIo::new(stream, cx.counter.clone());
        let guard = OpenGuard::new(cx.rec.clone());
        let started = match cx.s.tls.clone() {
            None => start(Tap::new(io, wire.clone(), guard)).await,
            Some(config) => {
                let name = crate::tls::server_name(&cx.s.target.host_header);
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, io)
                    .await;
                match tls {
                    Ok(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                        start(Tap::new(tls, wire.clone(), guard)).await
                    }
                    Ok(_) => Err(ClientError::Protocol(
                        "the server did not choose h2 by ALPN".into(),
                    )),
                    Err(e) => Err(ClientError::Io(e)),
                }
            }
        };
        match started {
            Ok((send, task)) => Ok(H2Conn {
                send,
                task,
                wire,
                body_bytes: 0,
            }),
            Err(e) => {
                // The socket went with the failed handshake: attribute what it moved.
                fold(cx, &wire, 0);
                Err(e)
            }
        }
    }

    /// Sends a GET for `path` (one HEADERS frame with END_STREAM).
    fn request_with(
        &mut self,
        cx: &ClientCtx,
        path: &str,
        kind: RequestKind,
        extra: &[(String, String)],
    ) -> Result<ResponseFuture, ClientError> {
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let uri = format!("http://{}{}", cx.s.target.host_header, path);
        let mut req = http::Request::get(uri);
        for (k, v) in h2_request_fields(&cx.s.target.host_header, cx.s.header_profile, kind, &extra)
        {
            req = req.header(k, v);
        }
        let req = req
            .body(())
            .map_err(|e| ClientError::Protocol(format!("request: {e}")))?;
        cx.rec.http_requests.fetch_add(1, Ordering::Relaxed);
        let (resp, _) = self.send.send_request(req, true).map_err(h2_error)?;
        Ok(resp)
    }

    /// Ends the connection: GOAWAY once no stream is open, then the tap reads to EOF; waits
    /// up to `timeout`, then attributes what the tap saw.
    async fn finish(self, cx: &mut ClientCtx, timeout: Duration) {
        let H2Conn {
            send,
            mut task,
            wire,
            body_bytes,
        } = self;
        drop(send);
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
        if !lock(&wire).saw_eof {
            cx.rec.unclean_closes.fetch_add(1, Ordering::Relaxed);
        }
        fold(cx, &wire, body_bytes);
    }

    /// Drops the connection at once (a failed stream, or the test hook's cut).
    fn abort(self, cx: &mut ClientCtx) {
        self.task.abort();
        fold(cx, &self.wire, self.body_bytes);
    }
}

fn lock(wire: &Mutex<Wire>) -> std::sync::MutexGuard<'_, Wire> {
    wire.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds what a connection's tap split to the subscriber's tally, header block sizes and
/// segments, once. `body_bytes` of its DATA went to the transport's parser; the rest of DATA
/// is framing. What the socket moved beyond the plaintext is `tls` (0 in clear).
fn fold(cx: &mut ClientCtx, wire: &Mutex<Wire>, body_bytes: u64) {
    let mut w = lock(wire);
    if std::mem::replace(&mut w.folded, true) {
        return;
    }
    let (up, down) = (w.up.split(), w.down.split());
    let data = up.data + down.data;
    let plaintext = up.total() + down.total() + w.up.pending() + w.down.pending();
    let socket = cx.counter.read() + cx.counter.written() - w.wire_at_open;
    cx.tally.add(&Tally {
        headers: up.headers + down.headers,
        framing: up.framing + down.framing + data.saturating_sub(body_bytes),
        handshake: up.handshake + down.handshake,
        control: up.control + down.control,
        tls: socket.saturating_sub(plaintext),
        ..Tally::default()
    });
    for (side, blocks) in [
        (HeaderBlock::Request, w.up.take_header_blocks()),
        (HeaderBlock::Response, w.down.take_header_blocks()),
    ] {
        for (i, bytes) in blocks.into_iter().enumerate() {
            cx.rec.header_block(side, i == 0, bytes);
        }
    }
    if let Some((out, inn)) = w.segments.take() {
        cx.segments += out + inn;
        cx.segments_known = true;
    }
}

fn h2_error(e: h2::Error) -> ClientError {
    if e.is_io() {
        match e.into_io() {
            Some(io) => ClientError::Io(io),
            None => ClientError::Closed,
        }
    } else if e.is_go_away() || e.is_reset() {
        ClientError::Closed
    } else {
        ClientError::Protocol(format!("HTTP/2: {e}"))
    }
}

/// A response head as the dialect reads it (its bytes are counted by the tap, not here).
fn head_of(resp: &http::Response<RecvStream>) -> Head {
    Head {
        status: resp.status().as_u16(),
        len: 0,
        body: BodyLen::UntilEof,
        close: false,
        headers: resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
                )
            })
            .collect(),
    }
}

/// Starts HTTP/2 on `tap`: the preface and SETTINGS, then a task that drives the connection.
async fn start<S: OverTcp + Send + 'static>(
    tap: Tap<S>,
) -> Result<(SendRequest<Bytes>, JoinHandle<()>), ClientError> {
    let (send, connection) = h2::client::Builder::new()
        .enable_push(false)
        .handshake::<_, Bytes>(tap)
        .await
        .map_err(h2_error)?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((send, task))
}

/// Where a subscriber's current request stands.
enum Pending {
    /// Sent; waiting for the response head.
    Head(ResponseFuture),
    /// Reading the body of a response with this head.
    Body(Head, RecvStream, BytesMut),
}

/// An HTTP/2 subscriber of poll, long poll, SSE or the chunked stream.
pub struct H2Sub {
    transport: Transport,
    conn: Option<H2Conn>,
    pending: Option<Pending>,
    /// Short poll's schedule (see `poll.rs`).
    ticker: Option<Interval>,
    first_tick: Duration,
    again: bool,
    /// SSE and NDJSON parsing state (its own connection stays unused).
    stream: StreamingSub,
    opened_once: bool,
}

impl std::fmt::Debug for H2Sub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Sub")
            .field("transport", &self.transport)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl H2Sub {
    pub fn new(cx: &ClientCtx) -> H2Sub {
        let n = cx.s.clients.max(1);
        H2Sub {
            transport: cx.s.transport,
            conn: None,
            pending: None,
            ticker: None,
            first_tick: cx.s.poll_interval.mul_f64((cx.id % n) as f64 / n as f64),
            again: false,
            stream: StreamingSub::new(cx.s.transport),
            opened_once: false,
        }
    }

    fn streaming(&self) -> bool {
        matches!(self.transport, Transport::Sse | Transport::Stream)
    }

    /// Sends the subscription request for `cursor` on the connection (opening it if needed).
    async fn send(&mut self, cx: &mut ClientCtx, cursor: u64) -> Result<(), ClientError> {
        if self.conn.is_none() {
            self.conn = Some(H2Conn::open(cx).await?);
        }
        let conn = self.conn.as_mut().expect("opened above");
        let path = cx.subscribe_path(cursor);
        let extra = cx.s.dialect.subscribe_headers(
            self.transport,
            cursor,
            cx.token.as_deref(),
            !self.opened_once,
        );
        let kind = if self.transport == Transport::Sse {
            RequestKind::EventSource
        } else {
            RequestKind::Fetch
        };
        let resp = conn.request_with(cx, &path, kind, &extra)?;
        self.pending = Some(Pending::Head(resp));
        Ok(())
    }

    /// Drives the pending request: head, then body frames, each handed to the transport's
    /// parser. Returns when a stream's head arrived, when there are events, or (poll) when the
    /// response is complete. Cancel-safe: all state is in `self.pending`.
    async fn advance(
        &mut self,
        cx: &mut ClientCtx,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        let streaming = self.streaming();
        loop {
            let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
            match self.pending.as_mut() {
                None => return Ok(()),
                Some(Pending::Head(resp)) => {
                    let resp = resp.await.map_err(h2_error)?;
                    let head = head_of(&resp);
                    if streaming && head.status != 200 {
                        self.pending = None;
                        return Err(ClientError::Status {
                            status: head.status,
                            body: String::new(),
                        });
                    }
                    self.opened_once = true;
                    self.pending = Some(Pending::Body(head, resp.into_body(), BytesMut::new()));
                    if streaming {
                        // Subscribed: the stream's events may be far off.
                        return Ok(());
                    }
                }
                Some(Pending::Body(head, body, buf)) => {
                    let chunk = match body.data().await {
                        Some(c) => c.map_err(h2_error)?,
                        None => {
                            let (head, buf) = (head.clone(), std::mem::take(buf));
                            self.pending = None;
                            if streaming {
                                return Err(ClientError::Closed);
                            }
                            self.again = apply_response(cx, &head, &buf, out)?;
                            return Ok(());
                        }
                    };
                    let _ = body.flow_control().release_capacity(chunk.len());
                    conn.body_bytes += chunk.len() as u64;
                    if streaming {
                        cx.tally.framing += chunk.len() as u64;
                        self.stream.body.extend_from_slice(&chunk);
                        self.stream.parse_events(cx, out)?;
                        if !out.is_empty() {
                            return Ok(());
                        }
                    } else {
                        if buf.len() + chunk.len() > MAX_BATCH_BYTES {
                            return Err(ClientError::Protocol("poll body too large".into()));
                        }
                        buf.extend_from_slice(&chunk);
                    }
                }
            }
        }
    }

    /// Hands the body frames that already arrived to the parser (before a close drops them).
    fn take_buffered(&mut self, cx: &mut ClientCtx, out: &mut Vec<Event>) {
        use futures_util::FutureExt;
        for _ in 0..1024 {
            let Some(Pending::Body(..)) = self.pending else {
                return;
            };
            match self.advance(cx, out).now_or_never() {
                Some(Ok(())) => continue,
                _ => return,
            }
        }
    }
}

impl Subscriber for H2Sub {
    async fn open(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        if self.streaming() {
            self.stream = StreamingSub::new(self.transport);
            self.send(cx, cursor).await?;
            // Wait for the head: a refused subscription is an error of `open`.
            while let Some(Pending::Head(_)) = self.pending {
                self.advance(cx, out).await?;
            }
            return Ok(());
        }
        if self.transport == Transport::Poll && self.ticker.is_none() {
            let mut t =
                tokio::time::interval_at(Instant::now() + self.first_tick, cx.s.poll_interval);
            t.set_missed_tick_behavior(MissedTickBehavior::Skip);
            self.ticker = Some(t);
        }
        if self.conn.is_none() {
            self.conn = Some(H2Conn::open(cx).await?);
        }
        Ok(())
    }

    async fn next(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        if !self.streaming() && self.pending.is_none() {
            if let Some(t) = self.ticker.as_mut().filter(|_| !self.again) {
                t.tick().await;
            }
            self.again = false;
            self.send(cx, cursor).await?;
        }
        self.advance(cx, out).await
    }

    async fn close(&mut self, cx: &mut ClientCtx, out: &mut Vec<Event>) {
        self.take_buffered(cx, out);
        // Dropping the stream cancels it (RST_STREAM); then GOAWAY and the close.
        self.pending = None;
        let timeout = cx.s.close_timeout;
        if let Some(conn) = self.conn.take() {
            conn.finish(cx, timeout).await;
        }
    }

    fn abort(&mut self, cx: &mut ClientCtx) {
        self.pending = None;
        if let Some(conn) = self.conn.take() {
            conn.abort(cx);
        }
    }

    fn reconnect_delay(&self) -> Duration {
        self.stream.reconnect_delay()
    }
}
