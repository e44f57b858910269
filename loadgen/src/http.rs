//! HTTP/1.1 spoken by hand over a counted socket, so that every byte the loadgen sends or
//! receives is attributed: request and status lines and headers, chunk-size lines, body.
//!
//! ```text
//! GET /poll/t?since=41 HTTP/1.1\r\n          <- request head   (headers, up)
//! Host: 127.0.0.1:8080\r\n ... \r\n
//! HTTP/1.1 200 OK\r\n ... \r\n                <- response head  (headers, down)
//! 4c\r\n ... \r\n  0\r\n\r\n                 <- chunk framing   (framing, down)
//! ```
//!
//! A hand-written client (rather than hyper's) costs a few hundred lines but gives exact
//! attribution without guessing at what a library buffered. Over TLS (`--tls on`, ALPN
//! `http/1.1`) the same parser reads the plaintext: the socket is counted below TLS, the
//! plaintext above it, and what the socket moved beyond the plaintext is `tls`
//! ([`Closing::tls_bytes`]). Bodies are parsed from a small
//! per-connection buffer (it starts at [`READ_CHUNK_BYTES`] and grows only as far as one
//! response needs), so thousands of connections stay cheap.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pushlab_proto::{ByteCounter, CountingIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Bytes asked of the socket per read.
pub const READ_CHUNK_BYTES: usize = 4 * 1024;
/// Longest response head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A counted client socket.
pub type Io = CountingIo<TcpStream, Arc<ByteCounter>>;

/// What a connection's HTTP travels on: the counted socket itself, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    Tcp(Io),
    Tls(Box<tokio_rustls::client::TlsStream<Io>>),
}

impl Stream {
    /// The TCP socket underneath (for TCP_INFO).
    pub fn tcp(&self) -> &TcpStream {
        self.socket().get_ref()
    }

    /// The counted socket underneath (below TLS).
    pub fn socket(&self) -> &Io {
        match self {
            Stream::Tcp(io) => io,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Starts TLS on a counted socket (`name` is the SNI and the name a CA-signed certificate
    /// must carry); the ALPN id chosen, if any, is in the stream.
    pub async fn tls(
        io: Io,
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<Stream> {
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, io)
            .await?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection's stream, its plaintext counted (on a cleartext connection the plaintext is
/// the socket's bytes).
pub type ConnIo = CountingIo<Stream, Arc<ByteCounter>>;

/// Why a connection could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("connection closed by the server")]
    Closed,
    #[error("not HTTP/1.1: {0}")]
    NotHttp(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// A disconnect a subscriber expects now and then (counted as a reconnect, not an error).
    pub fn is_disconnect(&self) -> bool {
        match self {
            ClientError::Closed => true,
            ClientError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLen {
    Empty,
    Length(u64),
    Chunked,
    UntilEof,
}

/// A parsed response head.
#[derive(Clone, Debug)]
pub struct Head {
    pub status: u16,
    /// Bytes of the status line, headers and the blank line.
    pub len: usize,
    pub body: BodyLen,
    /// The server will close after this response.
    pub close: bool,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One client connection: a counted socket (TLS over it or not) plus its read buffer.
#[derive(Debug)]
pub struct Conn {
    pub io: ConnIo,
    /// The socket counter's total (both ways) when this connection opened: the counter may
    /// be shared by a subscriber's successive connections.
    socket_at_open: u64,
    pub buf: BytesMut,
    /// Keeps the recorder's open-connection gauge up while this socket lives.
    pub guard: Option<crate::record::OpenGuard>,
    /// Request heads sent and response heads read on this connection so far.
    pub requests: u64,
    pub responses: u64,
}

/// What closing a connection found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Closing {
    /// TCP_INFO's segments (out, in) and retransmissions, read after EOF, just before close.
    pub tcp: Option<crate::net::TcpTotals>,
    /// The peer closed its side (we read EOF) before the timeout.
    pub saw_eof: bool,
    /// Bytes the socket moved beyond the plaintext: TLS's handshake and record overhead
    /// (0 in clear).
    pub tls_bytes: u64,
}

impl Conn {
    /// Connects from the server side (see [`crate::net::Side`]; from `source` when given) and
    /// counts into `counter`.
    pub async fn connect(
        addr: SocketAddr,
        source: Option<IpAddr>,
        counter: Arc<ByteCounter>,
    ) -> Result<Conn, ClientError> {
        Self::connect_from(crate::net::Side::Server, addr, source, counter).await
    }

    /// As [`Conn::connect`] from `side` of the link.
    pub async fn connect_from(
        side: crate::net::Side,
        addr: SocketAddr,
        source: Option<IpAddr>,
        counter: Arc<ByteCounter>,
    ) -> Result<Conn, ClientError> {
        let stream = crate::net::connect_from(side, addr, source)
            .await
            .map_err(ClientError::Connect)?;
        Ok(Conn::over(Stream::Tcp(CountingIo::new(stream, counter))))
    }

    /// A connection over `stream`, opened just now.
    pub fn over(stream: Stream) -> Conn {
        let c = stream.socket().counter();
        Conn {
            socket_at_open: c.read() + c.written(),
            io: CountingIo::new(stream, Arc::new(ByteCounter::default())),
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            guard: None,
            requests: 0,
            responses: 0,
        }
    }

    /// Starts TLS on this fresh cleartext connection (`name`: SNI, and the name a CA-signed
    /// certificate must carry) and checks the ALPN id the server chose is `http/1.1` or none.
    /// On failure the socket is gone; the error comes with what it moved (all TLS's).
    pub async fn start_tls(
        self,
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Result<Conn, (ClientError, Closing)> {
        let Conn {
            io,
            socket_at_open,
            guard,
            ..
        } = self;
        let Stream::Tcp(socket) = io.into_inner() else {
            unreachable!("start_tls on a fresh cleartext connection")
        };
        let counter = socket.counter().clone();
        let failed = |e: ClientError| {
            let moved = counter.read() + counter.written() - socket_at_open;
            let closing = Closing {
                tcp: None,
                saw_eof: false,
                tls_bytes: moved,
            };
            (e, closing)
        };
        let stream = Stream::tls(socket, config, name)
            .await
            .map_err(|e| failed(ClientError::Io(e)))?;
        let Stream::Tls(tls) = &stream else {
            unreachable!()
        };
        if let Some(alpn) = tls
            .get_ref()
            .1
            .alpn_protocol()
            .filter(|p| *p != b"http/1.1")
        {
            let e = ClientError::Protocol(format!(
                "the server chose {:?} by ALPN, not http/1.1",
                String::from_utf8_lossy(alpn)
            ));
            let mut c = failed(e);
            c.1.tcp = crate::net::tcp_totals(stream.tcp());
            return Err(c);
        }
        let mut conn = Conn::over(stream);
        conn.socket_at_open = socket_at_open;
        conn.guard = guard;
        Ok(conn)
    }

    /// What closing now finds: TCP_INFO, and the socket's bytes beyond the plaintext.
    pub fn closing(&self, saw_eof: bool) -> Closing {
        let socket = self.io.get_ref().socket().counter();
        let plain = self.io.counter();
        let moved = (socket.read() + socket.written()).saturating_sub(self.socket_at_open);
        Closing {
            tcp: crate::net::tcp_totals(self.io.get_ref().tcp()),
            saw_eof,
            tls_bytes: moved.saturating_sub(plain.read() + plain.written()),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.io.write_all(bytes).await?;
        Ok(())
    }

    /// Reads more into the buffer; `Ok(0)` at EOF. Cancel-safe.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(READ_CHUNK_BYTES);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// Reads and removes one response head from the buffer. Cancel-safe.
    pub async fn read_head(&mut self) -> Result<Head, ClientError> {
        loop {
            if let Some(head) = parse_head(&mut self.buf)? {
                self.responses += 1;
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(ClientError::NotHttp(format!(
                    "no end of response head in {} bytes",
                    self.buf.len()
                )));
            }
            if self.fill().await? == 0 {
                return Err(if self.buf.is_empty() {
                    ClientError::Closed
                } else {
                    ClientError::NotHttp(format!(
                        "connection closed inside a response head: {:?}",
                        preview(&self.buf)
                    ))
                });
            }
        }
    }

    /// Reads a whole (bounded) body; returns it and the framing bytes (chunk lines) around it.
    pub async fn read_body(
        &mut self,
        len: BodyLen,
        max: usize,
    ) -> Result<(BytesMut, u64), ClientError> {
        let mut out = BytesMut::new();
        match len {
            BodyLen::Empty => Ok((out, 0)),
            BodyLen::Length(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= max)
                    .ok_or_else(|| ClientError::Protocol(format!("body of {n} bytes")))?;
                while self.buf.len() < n {
                    if self.fill().await? == 0 {
                        return Err(ClientError::Closed);
                    }
                }
                Ok((self.buf.split_to(n), 0))
            }
            BodyLen::Chunked => {
                let mut dec = ChunkDecoder::default();
                loop {
                    dec.decode(&mut self.buf, &mut out)?;
                    if dec.is_done() {
                        return Ok((out, dec.framing));
                    }
                    if out.len() > max {
                        return Err(ClientError::Protocol(format!("body over {max} bytes")));
                    }
                    if self.fill().await? == 0 {
                        return Err(ClientError::Closed);
                    }
                }
            }
            BodyLen::UntilEof => {
                loop {
                    if self.buf.len() > max {
                        return Err(ClientError::Protocol(format!("body over {max} bytes")));
                    }
                    if self.fill().await? == 0 {
                        break;
                    }
                }
                Ok((self.buf.split(), 0))
            }
        }
    }

    /// Shuts the write side and reads until the peer closes (or `timeout`), appending what
    /// arrives to the buffer so the caller can still parse it; then reads TCP_INFO.
    pub async fn finish(&mut self, timeout: Duration) -> Closing {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        let saw_eof = drain_to_eof(self, timeout).await;
        self.closing(saw_eof)
    }
}

async fn drain_to_eof(conn: &mut Conn, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, conn.fill()).await {
            Ok(Ok(0)) => return true,
            Ok(Ok(_)) => continue,
            Ok(Err(_)) => return true,
            Err(_) => return false,
        }
    }
}

/// Parses a response head at the start of `buf` and removes it; `None` if incomplete.
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, ClientError> {
    // 1xx other than 101 would precede the real response; pushlab never sends them.
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
            return Err(ClientError::NotHttp(format!(
                "response starts {:?}",
                preview(buf)
            )));
        }
        return Ok(None);
    };
    let len = end + 4;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&buf[..len]) {
        Ok(httparse::Status::Complete(n)) if n == len => {}
        Ok(_) => return Err(ClientError::NotHttp("incomplete response head".into())),
        Err(e) => {
            return Err(ClientError::NotHttp(format!(
                "{e} in response head {:?}",
                preview(buf)
            )))
        }
    }
    if resp.version != Some(1) {
        return Err(ClientError::NotHttp("not an HTTP/1.1 response".into()));
    }
    let status = resp.code.unwrap_or(0);
    let hs: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let get = |n: &str| hs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let close = get("connection")
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    let body = if status == 101 || status == 204 || status == 304 || (100..200).contains(&status) {
        BodyLen::Empty
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        BodyLen::Chunked
    } else if let Some(v) = get("content-length") {
        BodyLen::Length(
            v.parse()
                .map_err(|_| ClientError::NotHttp(format!("content-length {v:?}")))?,
        )
    } else {
        BodyLen::UntilEof
    };
    buf.advance(len);
    Ok(Some(Head {
        status,
        len,
        body,
        close,
        headers: hs,
    }))
}

/// The first bytes of `b`, for error messages.
pub fn preview(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(60)]);
    s.replace('\r', "\\r").replace('\n', "\\n")
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes `Transfer-Encoding: chunked` incrementally and counts its framing bytes (size
/// lines, the CRLF after each chunk, the last chunk and trailers).
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    state: ChunkState,
    /// Framing bytes consumed so far.
    pub framing: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

impl ChunkDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes what it can of `input`, appending chunk data to `out`.
    pub fn decode(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<(), ClientError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(()),
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(nl) = find(input, b"\r\n") else {
                        if input.len() > 1024 {
                            return Err(ClientError::Protocol("chunk size line too long".into()));
                        }
                        return Ok(());
                    };
                    let line = input.split_to(nl + 2);
                    self.framing += line.len() as u64;
                    let text = &line[..nl];
                    if self.state == ChunkState::Trailer {
                        if text.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let hex = text.split(|&b| b == b';').next().unwrap_or_default();
                    let hex = std::str::from_utf8(hex)
                        .ok()
                        .map(str::trim)
                        .filter(|h| !h.is_empty() && h.len() <= 15)
                        .and_then(|h| u64::from_str_radix(h, 16).ok())
                        .ok_or_else(|| {
                            ClientError::Protocol(format!("bad chunk size {:?}", preview(text)))
                        })?;
                    self.state = if hex == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(hex)
                    };
                }
                ChunkState::Data(n) => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    let take = (n as usize).min(input.len());
                    out.extend_from_slice(&input.split_to(take));
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(());
                    }
                    if &input[..2] != b"\r\n" {
                        return Err(ClientError::Protocol("chunk not followed by CRLF".into()));
                    }
                    input.advance(2);
                    self.framing += 2;
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

/// A connection whose stream first yields the bytes already read past a response head (the
/// start of a WebSocket stream after `101`), then reads the stream itself.
#[derive(Debug)]
pub struct Prefixed(pub Conn);

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let conn = &mut self.get_mut().0;
        if !conn.buf.is_empty() {
            let n = conn.buf.len().min(buf.remaining());
            buf.put_slice(&conn.buf.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut conn.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0.io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0.io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing() {
        let mut b = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nConnection: close\r\n\r\nabcX"[..],
        );
        let h = parse_head(&mut b).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.body, BodyLen::Length(3));
        assert!(h.close);
        assert_eq!(h.len, 57);
        assert_eq!(&b[..], b"abcX");
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        assert!(parse_head(&mut partial).unwrap().is_none());
        let mut garbage = BytesMut::from(&b"SSH-2.0-OpenSSH\r\n"[..]);
        assert!(matches!(
            parse_head(&mut garbage),
            Err(ClientError::NotHttp(_))
        ));
    }

    #[test]
    fn chunked_decoding_counts_framing_across_splits() {
        let wire = b"4\r\nabcd\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut dec = ChunkDecoder::default();
            let mut out = BytesMut::new();
            let mut input = BytesMut::from(&wire[..split]);
            dec.decode(&mut input, &mut out).unwrap();
            input.extend_from_slice(&wire[split..]);
            dec.decode(&mut input, &mut out).unwrap();
            assert!(dec.is_done());
            assert_eq!(out.len(), 30);
            assert_eq!(
                dec.framing as usize + out.len(),
                wire.len(),
                "split at {split}"
            );
            assert_eq!(
                dec.framing as usize,
                pushlab_proto::frame::chunk_overhead(4)
                    + pushlab_proto::frame::chunk_overhead(26)
                    + pushlab_proto::frame::LAST_CHUNK_LEN
            );
        }
        let mut dec = ChunkDecoder::default();
        let mut bad = BytesMut::from(&b"zz\r\n"[..]);
        assert!(dec.decode(&mut bad, &mut BytesMut::new()).is_err());
    }
}
