//! HTTP/2 for subscribers (`--http 2`): connections spoken by the `h2` crate (hyper's HTTP/2
//! engine), with prior knowledge (h2c, RFC 9113 §3.3) or over TLS (ALPN `h2`); poll, long
//! poll, SSE and the chunked stream as streams ([`H2Sub`]), WebSocket as an RFC 8441 extended
//! CONNECT stream ([`tunnel`], run by [`super::ws::WsSub`]).
//!
//! ```text
//! PRI * HTTP/2.0 ... SETTINGS                          SETTINGS  SETTINGS(ACK)
//! SETTINGS(ACK)  HEADERS :method GET :path /sse/T?since=0 ...
//!                                                      HEADERS :status 200 ...
//!                                                      DATA id: 42\ndata: MESSAGE\n\n
//! ```
//!
//! Bytes: the connection's plaintext is counted by a [`FrameSplit`] that splits every byte
//! both ways frame by frame as it passes ([`pushlab_proto::h2wire`]): the preface and first
//! SETTINGS exchange are `handshake`, HPACK header blocks `headers` (on a WebSocket
//! connection every block opens or answers an extended CONNECT: `handshake`, as the Upgrade
//! exchange is on HTTP/1.1), frame headers and padding `framing`,
//! SETTINGS/WINDOW_UPDATE/PING/RST_STREAM/GOAWAY `control`. The socket is counted below TLS;
//! what it moved beyond the plaintext is `tls` (handshake, record headers, AEAD tags).
//!
//! DATA payloads belong to the streams: as a subscriber reads its stream's DATA (or, on a
//! WebSocket stream, writes it), those bytes are credited to the subscriber's own counter and
//! split by its parser (poll batch, SSE, NDJSON, WebSocket frames) as on HTTP/1.1. Everything
//! else a connection moved is the connection's: when its socket closes it is added to the
//! transport's figures directly ([`settle_bytes`], the same exactness check a subscriber's
//! bytes get). So with `--streams-per-connection N` the handshake, TLS, control frames and
//! header blocks of a shared connection are counted once, as connection-level bytes of the
//! transport, and each subscriber carries only its own messages; the per-message figures
//! divide the transport's total as before. DATA that reached the socket but no stream
//! (a stream cancelled at the end with frames in flight) is `framing`.
//!
//! Each request's and response's HPACK block size is recorded as the first on its connection
//! (empty compression table) or a later one: what header compression saves, measured. The h2
//! crate's encoder never indexes the values of `cookie`, `:path` and a few others
//! (`hpack::Header::skip_value_index`): they go as literals on every request, so the warm
//! figure with browser headers is the cookie's size plus a little.
//!
//! Subscriber `i` of a transport shares its connection with the others of its group
//! ([`Pool`]): `--streams-per-connection` subscribers of one target, as one browser's tabs.
//! A connection ends (GOAWAY, then the socket is read to EOF) when its last subscriber lets
//! go of it.

pub mod sub;
pub mod tunnel;

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use pushlab_proto::h2wire::{H2WireParser, Sender};
use pushlab_proto::{ByteCounter, CountingIo, IoCounter, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

pub use sub::H2Sub;

use super::{settle_bytes, ClientCtx, SubscribeRequest};
use crate::headers::h2_request_fields;
use crate::http::{ClientError, Stream};
use crate::net::TcpTotals;
use crate::record::{HeaderBlock, OpenGuard, Recorder, Tally};

/// What one connection's plaintext carried so far.
#[derive(Debug)]
struct Wire {
    up: H2WireParser,
    down: H2WireParser,
    /// DATA payload bytes handed to (down) or taken from (up) subscribers' streams.
    credited_up: u64,
    credited_down: u64,
}

/// The counter on a connection's plaintext: splits the bytes into HTTP/2 frames as they
/// pass, and tells when the client has acknowledged the server's first SETTINGS (by then the
/// h2 crate has applied them: SETTINGS_ENABLE_CONNECT_PROTOCOL is known).
#[derive(Debug)]
pub struct FrameSplit {
    wire: Mutex<Wire>,
    acked: tokio::sync::watch::Sender<bool>,
}

impl FrameSplit {
    fn new() -> FrameSplit {
        FrameSplit {
            wire: Mutex::new(Wire {
                up: H2WireParser::new(Sender::Client),
                down: H2WireParser::new(Sender::Server),
                credited_up: 0,
                credited_down: 0,
            }),
            acked: tokio::sync::watch::channel(false).0,
        }
    }

    fn wire(&self) -> MutexGuard<'_, Wire> {
        self.wire.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (up to `timeout`) until the client has acknowledged the server's SETTINGS.
    async fn settings_acknowledged(&self, timeout: Duration) -> bool {
        let mut rx = self.acked.subscribe();
        let acked = tokio::time::timeout(timeout, rx.wait_for(|a| *a))
            .await
            .is_ok_and(|r| r.is_ok());
        acked
    }
}

impl IoCounter for FrameSplit {
    fn on_read(&self, bytes: &[u8]) {
        self.wire().down.push(bytes);
    }
    fn on_written(&self, bytes: &[u8]) {
        let acked = {
            let mut w = self.wire();
            w.up.push(bytes);
            w.up.settings_acknowledged()
        };
        if acked && !*self.acked.borrow() {
            self.acked.send_replace(true);
        }
    }
}

/// Counts a stream's DATA payload as the subscriber's own bytes: into the subscriber's
/// counter and this stream's, and off the connection's.
#[derive(Debug)]
pub struct Credit {
    subscriber: Arc<ByteCounter>,
    split: Arc<FrameSplit>,
    /// This stream's bytes alone.
    pub stream: ByteCounter,
}

impl IoCounter for Credit {
    fn on_read(&self, bytes: &[u8]) {
        self.subscriber.on_read(bytes);
        self.stream.on_read(bytes);
        self.split.wire().credited_down += bytes.len() as u64;
    }
    fn on_written(&self, bytes: &[u8]) {
        self.subscriber.on_written(bytes);
        self.stream.on_written(bytes);
        self.split.wire().credited_up += bytes.len() as u64;
    }
}

/// A connection's own bytes, added to the transport's figures when its socket closes.
#[derive(Debug)]
struct ConnAccount {
    rec: Arc<Recorder>,
    /// The socket's bytes (below TLS).
    socket: Arc<ByteCounter>,
    split: Arc<FrameSplit>,
    /// A WebSocket connection: its header blocks are extended CONNECT handshakes.
    ws: bool,
    saw_eof: bool,
    tcp: Option<TcpTotals>,
    _guard: OpenGuard,
}

impl Drop for ConnAccount {
    fn drop(&mut self) {
        let mut w = self.split.wire();
        let (up, down) = (w.up.split(), w.down.split());
        let plain_up = up.total() + w.up.pending();
        let plain_down = down.total() + w.down.pending();
        let (written, read) = (self.socket.written(), self.socket.read());
        let headers = up.headers + down.headers;
        let data = up.data + down.data;
        let mut tally = Tally {
            headers: if self.ws { 0 } else { headers },
            handshake: up.handshake + down.handshake + if self.ws { headers } else { 0 },
            framing: up.framing
                + down.framing
                + data.saturating_sub(w.credited_up + w.credited_down),
            control: up.control + down.control,
            tls: written.saturating_sub(plain_up) + read.saturating_sub(plain_down),
            ..Tally::default()
        };
        let rec = &self.rec;
        for (side, blocks) in [
            (HeaderBlock::Request, w.up.take_header_blocks()),
            (HeaderBlock::Response, w.down.take_header_blocks()),
        ] {
            for (i, bytes) in blocks.into_iter().enumerate() {
                rec.header_block(side, i == 0, bytes);
            }
        }
        settle_bytes(
            rec,
            written.saturating_sub(w.credited_up),
            read.saturating_sub(w.credited_down),
            &mut tally,
        );
        if let Some(tcp) = self.tcp {
            rec.segments
                .fetch_add(tcp.segments.0 + tcp.segments.1, Ordering::Relaxed);
            rec.segments_known.store(true, Ordering::Relaxed);
            rec.retransmitted_segments
                .fetch_add(tcp.retransmissions.segments, Ordering::Relaxed);
            rec.retransmitted_bytes
                .fetch_add(tcp.retransmissions.bytes, Ordering::Relaxed);
        }
        if !self.saw_eof {
            rec.unclean_closes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The socket under an HTTP/2 connection: its plaintext counted and split, read to EOF when
/// the library shuts it (so every byte the server sent is counted here as it is on the
/// server), accounted when dropped.
#[derive(Debug)]
struct H2Socket {
    io: CountingIo<Stream, Arc<FrameSplit>>,
    /// The write side is shut; reading on until EOF.
    draining: bool,
    account: ConnAccount,
}

impl AsyncRead for H2Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for H2Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

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
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                Poll::Ready(r) => {
                    this.account.saw_eof = r.is_ok();
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl Drop for H2Socket {
    fn drop(&mut self) {
        self.account.tcp = crate::net::tcp_totals(self.io.get_ref().tcp());
    }
}

/// Opens a connection for `cx`'s target (TLS with ALPN `h2` when set): the preface and
/// SETTINGS, then a task that drives it. What it moves is accounted when its socket closes,
/// failed handshakes included.
async fn open(
    cx: &ClientCtx,
) -> Result<(SendRequest<Bytes>, JoinHandle<()>, Arc<FrameSplit>), ClientError> {
    let tcp = crate::net::connect_from(crate::net::Side::Client, cx.target.addr, cx.source)
        .await
        .map_err(ClientError::Connect)?;
    let socket = Arc::new(ByteCounter::default());
    let split = Arc::new(FrameSplit::new());
    let mut account = ConnAccount {
        rec: cx.rec.clone(),
        socket: socket.clone(),
        split: split.clone(),
        ws: cx.s.transport == Transport::Ws,
        saw_eof: false,
        tcp: crate::net::tcp_totals(&tcp),
        _guard: OpenGuard::new(cx.rec.clone()),
    };
    let io = CountingIo::new(tcp, socket);
    let stream = match cx.s.tls.clone() {
        None => Stream::Tcp(io),
        Some(config) => {
            let name = crate::tls::server_name(&cx.target.host_header);
            let stream = Stream::tls(io, config, name).await?;
            account.tcp = crate::net::tcp_totals(stream.tcp());
            let Stream::Tls(tls) = &stream else {
                unreachable!()
            };
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(ClientError::Protocol(
                    "the server did not choose h2 by ALPN".into(),
                ));
            }
            stream
        }
    };
    let socket = H2Socket {
        io: CountingIo::new(stream, split.clone()),
        draining: false,
        account,
    };
    let (send, connection) = h2::client::Builder::new()
        .enable_push(false)
        .handshake::<_, Bytes>(socket)
        .await
        .map_err(h2_error)?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((send, task, split))
}

/// One request on HTTP/2 as this subscriber's profile makes it: `GET` (or `CONNECT` for
/// WebSocket, RFC 8441 §4) with the pseudo-headers the library adds and the profile's fields.
fn request(
    cx: &ClientCtx,
    req: &SubscribeRequest,
    method: http::Method,
) -> Result<http::Request<()>, ClientError> {
    let scheme = if cx.s.tls.is_some() { "https" } else { "http" };
    let uri = format!("{scheme}://{}{}", cx.target.host_header, req.path);
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in h2_request_fields(
        &cx.target.host_header,
        cx.s.header_profile,
        req.kind,
        &req.extra(),
    ) {
        b = b.header(k, v);
    }
    cx.rec.http_requests.fetch_add(1, Ordering::Relaxed);
    b.body(())
        .map_err(|e| ClientError::Protocol(format!("request: {e}")))
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

/// A connection in use by a group of subscribers.
#[derive(Debug)]
struct Shared {
    generation: u64,
    send: SendRequest<Bytes>,
    task: JoinHandle<()>,
    split: Arc<FrameSplit>,
    users: usize,
}

/// One group's place in the pool.
#[derive(Debug, Default)]
struct Slot {
    /// Held while a connection is being opened, so a group opens one at a time.
    opening: tokio::sync::Mutex<()>,
    conn: Mutex<Option<Shared>>,
    generations: AtomicU64,
}

type Closing = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// A transport's HTTP/2 connections, each shared by up to `per_connection` subscribers of
/// one target (`--streams-per-connection`; 1: each subscriber has its own).
#[derive(Debug)]
pub struct Pool {
    per_connection: u64,
    slots: Mutex<HashMap<(usize, u64), Arc<Slot>>>,
    /// Tasks of connections their last subscriber let go of without waiting for the close.
    closing: Closing,
}

impl Pool {
    pub fn new(per_connection: u32) -> Pool {
        Pool {
            per_connection: u64::from(per_connection.max(1)),
            slots: Mutex::new(HashMap::new()),
            closing: Arc::default(),
        }
    }

    /// A lease on the connection of `cx`'s group, opening one if the group has none that is
    /// still running. Subscriber `id` is in group `(id % targets, id / (targets * N))`: the
    /// group's members share their target.
    pub async fn acquire(&self, cx: &ClientCtx) -> Result<Lease, ClientError> {
        let targets = cx.s.targets.len().max(1) as u64;
        let key = (
            (cx.id % targets) as usize,
            cx.id / (targets * self.per_connection),
        );
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let opening = slot.clone();
        let _opening = opening.opening.lock().await;
        {
            let mut conn = lock(&slot.conn);
            match conn.as_mut() {
                Some(c) if !c.task.is_finished() => {
                    c.users += 1;
                    return Ok(Lease {
                        generation: c.generation,
                        send: c.send.clone(),
                        split: c.split.clone(),
                        slot: slot.clone(),
                        closing: self.closing.clone(),
                        released: false,
                    });
                }
                Some(_) => {
                    let dead = conn.take().expect("matched");
                    lock(&self.closing).push(dead.task);
                }
                None => {}
            }
        }
        let (send, task, split) = open(cx).await?;
        let generation = slot.generations.fetch_add(1, Ordering::Relaxed);
        *lock(&slot.conn) = Some(Shared {
            generation,
            send: send.clone(),
            task,
            split: split.clone(),
            users: 1,
        });
        Ok(Lease {
            generation,
            send,
            split,
            slot,
            closing: self.closing.clone(),
            released: false,
        })
    }

    /// Waits for every connection let go of (up to `timeout` each, then drops it): the phase
    /// calls this once its subscribers are done, so each connection is accounted before the
    /// figures are read.
    pub async fn drain(&self, timeout: Duration) {
        let tasks = std::mem::take(&mut *lock(&self.closing));
        for task in tasks {
            finish(task, timeout).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits up to `timeout` for a connection's task (its GOAWAY and the read to EOF), then
/// drops it. Either way its socket is accounted.
async fn finish(mut task: JoinHandle<()>, timeout: Duration) {
    if tokio::time::timeout(timeout, &mut task).await.is_err() {
        task.abort();
        let _ = task.await;
    }
}

/// A subscriber's hold on a pooled connection. Dropping it lets go; the connection closes
/// (GOAWAY, read to EOF) once its last subscriber has let go.
#[derive(Debug)]
pub struct Lease {
    generation: u64,
    pub send: SendRequest<Bytes>,
    split: Arc<FrameSplit>,
    slot: Arc<Slot>,
    closing: Closing,
    released: bool,
}

impl Lease {
    /// Counts `bytes` of this subscriber's stream's DATA, just read, as the subscriber's.
    pub fn credit_read(&self, cx: &ClientCtx, bytes: &[u8]) {
        cx.counter.on_read(bytes);
        self.split.wire().credited_down += bytes.len() as u64;
    }

    /// A counter for a stream of this subscriber's that carries bytes both ways.
    pub fn credit(&self, cx: &ClientCtx) -> Credit {
        Credit {
            subscriber: cx.counter.clone(),
            split: self.split.clone(),
            stream: ByteCounter::default(),
        }
    }

    /// Lets go; returns the connection's task when this was its last subscriber.
    fn release(&mut self) -> Option<JoinHandle<()>> {
        if std::mem::replace(&mut self.released, true) {
            return None;
        }
        let mut conn = lock(&self.slot.conn);
        let c = conn.as_mut().filter(|c| c.generation == self.generation)?;
        c.users -= 1;
        (c.users == 0).then(|| conn.take().expect("present").task)
    }

    /// Lets go and, if this was the connection's last subscriber, waits up to `timeout` for
    /// its close. The subscriber's streams must be dropped first.
    pub async fn close(mut self, timeout: Duration) {
        let task = self.release();
        drop(self);
        if let Some(task) = task {
            finish(task, timeout).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(task) = self.release() {
            lock(&self.closing).push(task);
        }
    }
}
