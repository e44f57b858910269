//! How each transport wraps the one message encoding, and how many framing bytes that costs.
//!
//! ```text
//! poll, long poll   {"next":43,"messages":[MESSAGE,MESSAGE]}
//!                   {"next":43,"gap":{"missed":7,"from":30,"to":36},"messages":[...]}
//! SSE               id: 42\ndata: MESSAGE\n\n          (heartbeat ": hb\n\n")
//!                   id: 36\nevent: gap\ndata: {"gap":{"missed":7,"from":30,"to":36}}\n\n
//! chunked stream    MESSAGE\n                            (one line per HTTP chunk)
//!                   {"gap":{"missed":7,"from":30,"to":36}}\n
//! WebSocket         one text frame per MESSAGE; a gap is a text frame {"gap":{...}}
//! ```
//!
//! A gap notice tells a subscriber that messages `from..=to` fell out of the history ring
//! before it read them: nothing is ever lost without one. Every encoder here returns fresh
//! `Bytes` so the server can build each framing once per message and share it.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::message::{put_u64, Message};

/// Messages `from..=to` (`missed` of them) are gone from history and will never be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub missed: u64,
    pub from: u64,
    pub to: u64,
}

impl Gap {
    /// The gap between a cursor (`since`, last seq seen) and the oldest retained seq, if any.
    pub fn between(since: u64, oldest_retained: u64) -> Option<Gap> {
        if oldest_retained > since + 1 {
            Some(Gap {
                missed: oldest_retained - since - 1,
                from: since + 1,
                to: oldest_retained - 1,
            })
        } else {
            None
        }
    }

    fn put_object(&self, buf: &mut BytesMut) {
        buf.put_slice(b"{\"missed\":");
        put_u64(self.missed, buf);
        buf.put_slice(b",\"from\":");
        put_u64(self.from, buf);
        buf.put_slice(b",\"to\":");
        put_u64(self.to, buf);
        buf.put_u8(b'}');
    }

    /// `{"gap":{"missed":K,"from":F,"to":T}}`: the notice body on SSE, stream and WebSocket.
    pub fn notice_json(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_slice(b"{\"gap\":");
        self.put_object(&mut buf);
        buf.put_u8(b'}');
        buf.freeze()
    }
}

/// A gap notice as a standalone JSON object (stream line, WebSocket frame, SSE `gap` data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapNotice {
    pub gap: Gap,
}

/// A poll or long-poll response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollBatch {
    pub next: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    pub messages: Vec<Message>,
}

impl PollBatch {
    /// Parses a poll body.
    pub fn parse(body: &[u8]) -> Result<PollBatch, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// Encodes a poll batch from already-encoded messages (no re-encoding of any message).
pub fn poll_batch<M: AsRef<[u8]>>(next: u64, gap: Option<Gap>, messages: &[M]) -> Bytes {
    let cap = 40 + messages.iter().map(|m| m.as_ref().len() + 1).sum::<usize>();
    let mut buf = BytesMut::with_capacity(cap);
    buf.put_slice(b"{\"next\":");
    put_u64(next, &mut buf);
    if let Some(gap) = gap {
        buf.put_slice(b",\"gap\":");
        gap.put_object(&mut buf);
    }
    buf.put_slice(b",\"messages\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(m.as_ref());
    }
    buf.put_slice(b"]}");
    buf.freeze()
}

/// Bytes a poll body spends beyond its messages: `{"next":N,"messages":[` `,`... `]}` and gap.
pub fn poll_batch_overhead(next: u64, gap: Option<Gap>, count: usize) -> usize {
    let gap_len = gap.map_or(0, |g| {
        let mut b = BytesMut::new();
        g.put_object(&mut b);
        b.len() + 7
    });
    23 + decimal_len(next) + gap_len + count.saturating_sub(1)
}

/// `id: SEQ\ndata: MESSAGE\n\n`.
pub fn sse_event(seq: u64, message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(message.len() + 32);
    buf.put_slice(b"id: ");
    put_u64(seq, &mut buf);
    buf.put_slice(b"\ndata: ");
    buf.put_slice(message);
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// Framing bytes of one SSE message event: `id: ` SEQ `\ndata: ` and `\n\n`.
pub fn sse_event_overhead(seq: u64) -> usize {
    4 + decimal_len(seq) + 7 + 2
}

/// `id: TO\nevent: gap\ndata: {"gap":{...}}\n\n`: the id lets a reconnect resume after the gap.
pub fn sse_gap(gap: &Gap) -> Bytes {
    let json = gap.notice_json();
    let mut buf = BytesMut::with_capacity(json.len() + 40);
    buf.put_slice(b"id: ");
    put_u64(gap.to, &mut buf);
    buf.put_slice(b"\nevent: gap\ndata: ");
    buf.put_slice(&json);
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// The SSE comment that keeps idle connections (and proxies) alive.
pub const SSE_HEARTBEAT: &[u8] = b": hb\n\n";

/// Sent once when an SSE stream opens: the client's reconnect delay in milliseconds.
pub fn sse_retry(ms: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_slice(b"retry: ");
    put_u64(ms, &mut buf);
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// `MESSAGE\n`: one NDJSON line.
pub fn ndjson_line(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(message.len() + 1);
    buf.put_slice(message);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// `{"gap":{...}}\n`.
pub fn ndjson_gap(gap: &Gap) -> Bytes {
    ndjson_line(&gap.notice_json())
}

/// Framing bytes HTTP/1.1 chunked encoding adds around one chunk of `len` bytes.
pub fn chunk_overhead(len: usize) -> usize {
    hex_len(len) + 4
}

/// The last chunk, `0\r\n\r\n`.
pub const LAST_CHUNK_LEN: usize = 5;

/// Bytes of a WebSocket frame header for a payload of `len` bytes (RFC 6455 5.2): 2, 4 or 10,
/// plus a 4-byte masking key on frames a client sends.
pub fn ws_header_len(len: usize, masked: bool) -> usize {
    let base = if len < 126 {
        2
    } else if len <= u16::MAX as usize {
        4
    } else {
        10
    };
    base + if masked { 4 } else { 0 }
}

/// Digits of `n` in decimal.
pub fn decimal_len(n: u64) -> usize {
    if n == 0 {
        1
    } else {
        n.ilog10() as usize + 1
    }
}

/// Digits of `n` in hexadecimal.
pub fn hex_len(n: usize) -> usize {
    if n == 0 {
        1
    } else {
        (n.ilog2() / 4) as usize + 1
    }
}

/// One server-sent event as a client parses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The stream's last event ID when this event was dispatched (set by this or an earlier
    /// event's `id:` field, WHATWG's "last event ID buffer"); `None` before any `id:`.
    pub id: Option<String>,
    /// The event type; `None` for the default type `message` (no `event:` field, or empty).
    pub event: Option<String>,
    pub data: String,
}

/// An incremental `text/event-stream` parser following the WHATWG rules (HTML Living
/// Standard, "Interpreting an event stream"), fed bytes as they arrive, from any peer:
///
/// - a leading byte-order mark (EF BB BF) is skipped;
/// - CR, LF and CRLF each end a line (a CR at the end of the bytes so far waits for the next);
/// - a blank line dispatches the event, but only if it has data: an event with no `data:`
///   line is dropped (its `event:` type with it), while its `id:` still sets the last event ID;
/// - `retry:` with only ASCII digits sets the reconnection time ([`SseParser::retry_ms`]),
///   anything else in it is ignored; `id:` containing NUL is ignored; other fields and
///   comment lines (`:`, heartbeats) are skipped.
///
/// It never panics on any input: invalid UTF-8 is replaced, lines of any length are buffered up
/// to `max_line` bytes and an over-long line is an error.
#[derive(Debug)]
pub struct SseParser {
    buf: BytesMut,
    current: SseEvent,
    has_data: bool,
    max_line: usize,
    /// Whether the start of the stream has been looked at for a byte-order mark.
    bom_checked: bool,
    last_event_id: Option<String>,
    retry_ms: Option<u64>,
}

/// Why an event stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("event-stream line longer than {0} bytes")]
    LineTooLong(usize),
}

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

impl SseParser {
    pub fn new(max_line: usize) -> Self {
        SseParser {
            buf: BytesMut::new(),
            current: SseEvent::default(),
            has_data: false,
            max_line,
            bom_checked: false,
            last_event_id: None,
            retry_ms: None,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The reconnection time the stream set with `retry:`, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// The last event ID the stream set (what a reconnect sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Skips a leading byte-order mark once enough bytes are there to tell.
    fn skip_bom(&mut self) -> bool {
        if !self.bom_checked {
            let n = self.buf.len().min(UTF8_BOM.len());
            if self.buf[..n] != UTF8_BOM[..n] {
                self.bom_checked = true;
            } else if n == UTF8_BOM.len() {
                let _ = self.buf.split_to(n);
                self.bom_checked = true;
            }
        }
        self.bom_checked
    }

    /// The next complete event, if the bytes pushed so far hold one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        if !self.skip_bom() {
            return Ok(None);
        }
        loop {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if self.buf.len() > self.max_line {
                    return Err(SseError::LineTooLong(self.max_line));
                }
                return Ok(None);
            };
            // A CR at the very end might be the first half of CRLF: wait for more.
            if self.buf[nl] == b'\r' && nl + 1 == self.buf.len() {
                return Ok(None);
            }
            let line = self.buf.split_to(nl);
            let skip = if self.buf[0] == b'\r' && self.buf.get(1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let _ = self.buf.split_to(skip);
            if line.is_empty() {
                let ev = std::mem::take(&mut self.current);
                if !std::mem::take(&mut self.has_data) {
                    continue;
                }
                return Ok(Some(self.dispatch(ev)));
            }
            if line[0] == b':' {
                continue;
            }
            self.field(&String::from_utf8_lossy(&line));
        }
    }

    fn dispatch(&self, mut ev: SseEvent) -> SseEvent {
        if ev.data.ends_with('\n') {
            ev.data.pop();
        }
        if ev.event.as_deref() == Some("") {
            ev.event = None;
        }
        ev.id = self.last_event_id.clone();
        ev
    }

    fn field(&mut self, line: &str) {
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                self.current.data.push_str(value);
                self.current.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_event_id = Some(value.to_string()),
            "event" => self.current.event = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Digits past u64 are a reconnection time no one waits for: saturate.
                self.retry_ms = Some(value.parse().unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::encode_message;

    #[test]
    fn poll_batch_shape_and_overhead() {
        let a = encode_message("t", 1, 5, "x");
        let b = encode_message("t", 2, 6, "y");
        let body = poll_batch(2, None, &[a.bytes.clone(), b.bytes.clone()]);
        let parsed = PollBatch::parse(&body).unwrap();
        assert_eq!(parsed.next, 2);
        assert_eq!(parsed.messages.len(), 2);
        assert_eq!(
            body.len(),
            a.bytes.len() + b.bytes.len() + poll_batch_overhead(2, None, 2)
        );
        let empty = poll_batch::<Bytes>(7, None, &[]);
        assert_eq!(&empty[..], br#"{"next":7,"messages":[]}"#);
        assert_eq!(empty.len(), poll_batch_overhead(7, None, 0));
        let gap = Gap::between(3, 10).unwrap();
        assert_eq!(
            gap,
            Gap {
                missed: 6,
                from: 4,
                to: 9
            }
        );
        let with_gap = poll_batch(12, Some(gap), std::slice::from_ref(&a.bytes));
        assert_eq!(
            with_gap.len(),
            a.bytes.len() + poll_batch_overhead(12, Some(gap), 1)
        );
        assert_eq!(PollBatch::parse(&with_gap).unwrap().gap, Some(gap));
        assert_eq!(Gap::between(3, 4), None);
        assert_eq!(Gap::between(0, 1), None);
    }

    #[test]
    fn sse_round_trip_through_parser() {
        let m = encode_message("t", 42, 5, "x\ny");
        let ev = sse_event(42, &m.bytes);
        assert_eq!(ev.len(), m.bytes.len() + sse_event_overhead(42));
        let gap = Gap {
            missed: 2,
            from: 1,
            to: 2,
        };
        let mut p = SseParser::new(1 << 20);
        p.push(&sse_retry(1000));
        p.push(SSE_HEARTBEAT);
        p.push(&ev[..10]);
        assert_eq!(p.next_event().unwrap(), None);
        p.push(&ev[10..]);
        p.push(&sse_gap(&gap));
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(e.id.as_deref(), Some("42"));
        assert_eq!(Message::parse(e.data.as_bytes()).unwrap().data, "x\ny");
        let g = p.next_event().unwrap().unwrap();
        assert_eq!(g.event.as_deref(), Some("gap"));
        let notice: GapNotice = serde_json::from_str(&g.data).unwrap();
        assert_eq!(notice.gap, gap);
        assert_eq!(p.next_event().unwrap(), None);
    }

    #[test]
    fn sse_parser_handles_crlf_and_rejects_endless_lines() {
        let mut p = SseParser::new(16);
        p.push(b"data: a\r\ndata: b\r\n\r\n");
        assert_eq!(p.next_event().unwrap().unwrap().data, "a\nb");
        p.push(&[b'x'; 40]);
        assert!(p.next_event().is_err());
    }

    #[test]
    fn sse_parser_follows_the_whatwg_rules() {
        let mut p = SseParser::new(1 << 10);
        // A BOM split across pushes, then CR, LF and CRLF line ends.
        p.push(b"\xef\xbb");
        assert_eq!(p.next_event().unwrap(), None);
        p.push(b"\xbfretry: 2500\rid: 7\n\r\nevent: gap\r\n\r\n");
        // The blank lines ended events with no data: nothing dispatched, the id kept.
        assert_eq!(p.next_event().unwrap(), None);
        assert_eq!(p.retry_ms(), Some(2500));
        assert_eq!(p.last_event_id(), Some("7"));
        p.push(b"event:\rdata\rdata: x\r\r:");
        let ev = p.next_event().unwrap().unwrap();
        assert_eq!(
            ev,
            SseEvent {
                id: Some("7".into()),
                event: None,
                data: "\nx".into()
            }
        );
        // retry: with anything but digits is ignored; a BOM later in the stream is data.
        p.push(b"retry: 1s\nretry:\ndata:\xef\xbb\xbfy\n\n");
        assert_eq!(p.next_event().unwrap().unwrap().data, "\u{feff}y");
        assert_eq!(p.retry_ms(), Some(2500));
        // Only one BOM is skipped.
        let mut q = SseParser::new(64);
        q.push(b"\xef\xbb\xbf\xef\xbb\xbfdata: z\n\n");
        assert_eq!(
            q.next_event().unwrap(),
            None,
            "a line named BOM+data is no field"
        );
    }

    #[test]
    fn framing_arithmetic() {
        assert_eq!(ws_header_len(125, false), 2);
        assert_eq!(ws_header_len(126, false), 4);
        assert_eq!(ws_header_len(70_000, true), 14);
        assert_eq!(chunk_overhead(0x1f), 2 + 4);
        assert_eq!(chunk_overhead(0x100), 3 + 4);
        assert_eq!(hex_len(0), 1);
        assert_eq!(hex_len(15), 1);
        assert_eq!(hex_len(16), 2);
        assert_eq!(decimal_len(9), 1);
        assert_eq!(decimal_len(10), 2);
        assert_eq!(ndjson_line(b"{}").len(), 3);
        assert_eq!(
            &ndjson_gap(&Gap {
                missed: 1,
                from: 1,
                to: 1
            })[..],
            b"{\"gap\":{\"missed\":1,\"from\":1,\"to\":1}}\n"
        );
    }
}
