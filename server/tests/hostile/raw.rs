//! Raw-socket clients: requests written byte by byte as an attacker would, and decoders that
//! turn each transport's wire bytes back into messages, so a test can cut a connection at an
//! exact byte (half a chunk, half a frame) and know what the client held at that moment.

use std::net::SocketAddr;
use std::time::Duration;

use pushlab_proto::frame::GapNotice;
use pushlab_proto::frame::{PollBatch, SseParser};
use pushlab_proto::{Message, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A parsed HTTP response (or what arrived before the server closed).
#[derive(Debug, Default, Clone)]
pub struct Resp {
    /// 0 when no status line arrived (the server closed without answering).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` of a JSON error body.
    pub fn json_error(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some(v.get("error")?.as_str()?.to_string())
    }
}

/// Index just past the `\r\n\r\n` ending a head.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a response head: (status, headers).
pub fn parse_head(head: &[u8]) -> (u16, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// Connects from `from` (a loopback address of 127.0.0.0/8) with an optional small receive
/// buffer.
pub async fn connect_from(
    addr: SocketAddr,
    from: Option<[u8; 4]>,
    rcvbuf: Option<u32>,
) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    if let Some(ip) = from {
        sock.bind(SocketAddr::from((ip, 0)))
            .expect("bind client address");
    }
    sock.connect(addr).await.expect("connect")
}

/// Sends `raw` on a fresh connection and reads the answer until the server closes it or the
/// body is complete. Hangs are cut at `limit`.
pub async fn exchange(addr: SocketAddr, raw: &[u8], limit: Duration) -> Resp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(raw).await;
    read_response(&mut s, limit).await
}

/// Reads one response from `s` (content-length, chunked to its end, or until close).
pub async fn read_response(s: &mut TcpStream, limit: Duration) -> Resp {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = head_end(&buf) {
                let (_, headers) = parse_head(&buf[..end]);
                let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
                    if buf.len() >= end + len {
                        return;
                    }
                } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked"))
                    && buf.ends_with(b"\r\n0\r\n\r\n")
                {
                    return;
                }
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let Some(end) = head_end(&buf) else {
        let (status, headers) = parse_head(&buf);
        return Resp {
            status,
            headers,
            body: Vec::new(),
        };
    };
    let (status, headers) = parse_head(&buf[..end]);
    let mut body = buf[end..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut d = Dechunker::default();
        body = d.push(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// A GET with `Connection: close` and extra header lines.
pub fn get(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A POST with a body and `Connection: close`.
pub fn post(path: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// The request that opens a subscription on `t` (SSE resumes by `Last-Event-ID`).
pub fn subscribe_request(t: Transport, topic: &str, since: u64, extra: &[(&str, &str)]) -> Vec<u8> {
    let path = format!("/{}/{topic}", t.path_segment());
    let since_s = since.to_string();
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    let path = match t {
        Transport::Sse => {
            headers.push(("last-event-id", since_s.as_str()));
            path
        }
        Transport::LongPoll => format!("{path}?since={since}&timeout=2"),
        _ => format!("{path}?since={since}"),
    };
    if t == Transport::Ws {
        headers.extend([
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let mut r = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
        for (k, v) in headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        r.push_str("\r\n");
        return r.into_bytes();
    }
    // Streams stay open; polls close after their answer.
    let mut r = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    if t.is_request_response() {
        r.push_str("connection: close\r\n");
    }
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A masked client text frame (RFC 6455 5.2).
pub fn ws_client_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![(if fin { 0x80 } else { 0 }) | (opcode & 0x0f)];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Undoes HTTP/1.1 chunked transfer coding, fed any split of the bytes.
#[derive(Debug, Default)]
pub struct Dechunker {
    buf: Vec<u8>,
    /// Data bytes left in the current chunk (plus its CRLF), or `None` between chunks.
    left: Option<usize>,
    pub done: bool,
}

impl Dechunker {
    /// Returns the chunk data that `bytes` completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            match self.left {
                None => {
                    let Some(nl) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                        return out;
                    };
                    let line = String::from_utf8_lossy(&self.buf[..nl]).to_string();
                    let size_hex = line.split(';').next().unwrap_or("").trim();
                    let Ok(size) = usize::from_str_radix(size_hex, 16) else {
                        self.done = true;
                        return out;
                    };
                    self.buf.drain(..nl + 2);
                    if size == 0 {
                        self.done = true;
                        return out;
                    }
                    self.left = Some(size + 2);
                }
                Some(left) => {
                    if self.buf.len() < left {
                        return out;
                    }
                    out.extend_from_slice(&self.buf[..left - 2]);
                    self.buf.drain(..left);
                    self.left = None;
                }
            }
        }
    }
}

/// What a subscriber makes of the bytes it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Msg(Message),
    Gap(pushlab_proto::Gap),
    /// A poll batch's `next`.
    Next(u64),
    /// A WebSocket control frame (opcode) or close (with code).
    Control(u8, Option<u16>),
}

/// Turns one transport's response bytes (after the head) into [`Item`]s, fed any split.
pub enum Decoder {
    Sse(SseParser),
    Stream { chunks: Dechunker, line: Vec<u8> },
    Ws(Vec<u8>),
    Batch { want: usize, body: Vec<u8> },
}

impl Decoder {
    /// The decoder for `t`; `content_length` is for poll bodies.
    pub fn new(t: Transport, content_length: usize) -> Self {
        match t {
            Transport::Sse => Decoder::Sse(SseParser::new(1 << 20)),
            Transport::Stream => Decoder::Stream {
                chunks: Dechunker::default(),
                line: Vec::new(),
            },
            Transport::Ws => Decoder::Ws(Vec::new()),
            Transport::Poll | Transport::LongPoll => Decoder::Batch {
                want: content_length,
                body: Vec::new(),
            },
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Vec<Item> {
        let mut out = Vec::new();
        match self {
            Decoder::Sse(p) => {
                p.push(bytes);
                while let Ok(Some(ev)) = p.next_event() {
                    if ev.event.as_deref() == Some("gap") {
                        if let Ok(n) = serde_json::from_str::<GapNotice>(&ev.data) {
                            out.push(Item::Gap(n.gap));
                        }
                    } else if let Ok(m) = Message::parse(ev.data.as_bytes()) {
                        out.push(Item::Msg(m));
                    }
                }
            }
            Decoder::Stream { chunks, line } => {
                line.extend(chunks.push(bytes));
                out.extend(split_ndjson(line));
            }
            Decoder::Ws(buf) => {
                buf.extend_from_slice(bytes);
                while let Some((opcode, payload, used)) = parse_server_frame(buf) {
                    buf.drain(..used);
                    match opcode {
                        1 => out.extend(ndjson_item(&payload)),
                        8 => {
                            let code = (payload.len() >= 2)
                                .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                            out.push(Item::Control(8, code));
                        }
                        op => out.push(Item::Control(op, None)),
                    }
                }
            }
            Decoder::Batch { want, body } => {
                body.extend_from_slice(bytes);
                if body.len() >= *want {
                    if let Ok(b) = PollBatch::parse(&body[..*want]) {
                        if let Some(g) = b.gap {
                            out.push(Item::Gap(g));
                        }
                        out.extend(b.messages.into_iter().map(Item::Msg));
                        out.push(Item::Next(b.next));
                    }
                    body.clear();
                    *want = usize::MAX;
                }
            }
        }
        out
    }
}

fn ndjson_item(line: &[u8]) -> Option<Item> {
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return None; // heartbeat
    }
    if let Ok(n) = serde_json::from_slice::<GapNotice>(line) {
        return Some(Item::Gap(n.gap));
    }
    Message::parse(line).ok().map(Item::Msg)
}

/// Takes every complete line out of `buf` (NDJSON: one JSON value per `\n`-ended line; blank
/// lines are heartbeats) and leaves the unfinished tail.
pub fn split_ndjson(buf: &mut Vec<u8>) -> Vec<Item> {
    let mut out = Vec::new();
    while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        out.extend(ndjson_item(&line[..nl]));
    }
    out
}

/// One unmasked server frame at the start of `buf`: (opcode, payload, bytes used).
pub fn parse_server_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, at) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    Some((opcode, buf[at..at + len].to_vec(), at + len))
}

/// Seqs of the messages among `items`.
pub fn seqs(items: &[Item]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Msg(m) => Some(m.seq),
            _ => None,
        })
        .collect()
}

/// Reads from `s` until `until(items so far)` holds, EOF, or `limit`; returns the items and
/// whether the condition was met.
pub async fn read_items(
    s: &mut TcpStream,
    dec: &mut Decoder,
    limit: Duration,
    until: impl Fn(&[Item]) -> bool,
) -> (Vec<Item>, bool) {
    let mut items = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let ok = tokio::time::timeout(limit, async {
        while !until(&items) {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => items.extend(dec.push(&chunk[..n])),
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    (items, ok)
}

/// Opens a subscription, reads its response head, and returns the socket, the status and a
/// decoder primed with whatever body bytes came with the head.
pub async fn open_subscription(
    addr: SocketAddr,
    t: Transport,
    topic: &str,
    since: u64,
) -> (TcpStream, u16, Decoder, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&subscribe_request(t, topic, since, &[]))
        .await
        .expect("send request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(e) = head_end(&buf) {
                return e;
            }
            let n = s.read(&mut chunk).await.expect("read head");
            assert!(n > 0, "closed before a response head");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("response head in time");
    let (status, headers) = parse_head(&buf[..end]);
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let dec = Decoder::new(t, len);
    (s, status, dec, buf[end..].to_vec())
}

/// Resident memory of this process, bytes.
pub fn rss_bytes() -> u64 {
    pushlab_server::usage::rss_bytes()
}
