//! SSE and chunked NDJSON streaming: one long response per connection.
//!
//! ```text
//! GET /sse/T?since=0            (reconnect: + Last-Event-ID: 41)
//! -> 200 text/event-stream, chunked:  retry: 1000\n\n  id: 42\ndata: MESSAGE\n\n  : hb\n\n
//! GET /stream/T?since=41
//! -> 200 application/x-ndjson, chunked:  MESSAGE\n  \n (heartbeat)  {"gap":{...}}\n
//! ```
//!
//! Bytes: the response head and request head are `headers`; chunk-size lines and CRLFs are
//! `framing`; of the decoded body, each message is payload and envelope and everything else
//! (`id:`/`data:` lines, blank lines, `retry:`, heartbeats, gap notices, newlines) is
//! `framing`. When the stream ends or breaks, the subscriber reconnects from its cursor, after
//! the reconnection time an SSE stream set with `retry:` (as EventSource does). The SSE parser
//! follows the WHATWG rules ([`SseParser`]), since peers other than pushlab-server send such
//! streams.
//! Where a chunked-stream item ends is the dialect's ([`super::Dialect::next_stream_item`]:
//! nchan sends one message per chunk with nothing between).

use bytes::{Buf, BytesMut};
use pushlab_proto::frame::SseParser;
use pushlab_proto::Transport;

use super::{segments_of, ClientCtx, Event, Subscriber};
use crate::http::{BodyLen, ChunkDecoder, ClientError, Conn};

/// Longest SSE line or NDJSON line accepted.
const MAX_LINE_BYTES: usize = 2 << 20;

#[derive(Debug)]
pub struct StreamingSub {
    transport: Transport,
    conn: Option<Conn>,
    /// `None`: the body runs until EOF (no chunked encoding).
    decoder: Option<ChunkDecoder>,
    /// Decoded body not parsed yet (NDJSON).
    pub(super) body: BytesMut,
    sse: SseParser,
    /// The reconnection time the SSE stream set with `retry:`; kept across connections.
    retry: Option<std::time::Duration>,
    opened_once: bool,
}

impl StreamingSub {
    pub fn new(transport: Transport) -> StreamingSub {
        StreamingSub {
            transport,
            conn: None,
            decoder: None,
            body: BytesMut::new(),
            sse: SseParser::new(MAX_LINE_BYTES),
            retry: None,
            opened_once: false,
        }
    }

    /// Decodes what the connection buffer holds and parses complete events into `out`.
    fn process(&mut self, cx: &mut ClientCtx, out: &mut Vec<Event>) -> Result<(), ClientError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let before = self.body.len();
        match self.decoder.as_mut() {
            Some(dec) => {
                let framing_before = dec.framing;
                dec.decode(&mut conn.buf, &mut self.body)?;
                cx.tally.framing += dec.framing - framing_before;
            }
            None => {
                self.body.extend_from_slice(&conn.buf);
                conn.buf.clear();
            }
        }
        // Every body byte is framing until a parser recognises it as a message.
        cx.tally.framing += (self.body.len() - before) as u64;
        self.parse_events(cx, out)
    }

    /// Parses the complete events in the decoded body (whose bytes were counted as framing)
    /// into `out`, moving each message's bytes to payload and envelope.
    pub(super) fn parse_events(
        &mut self,
        cx: &mut ClientCtx,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        let at_ns = crate::net::now_ns();
        match self.transport {
            Transport::Sse => {
                self.sse.push(&self.body);
                self.body.clear();
                while let Some(ev) = self
                    .sse
                    .next_event()
                    .map_err(|e| ClientError::Protocol(e.to_string()))?
                {
                    let data = ev.data.as_bytes();
                    if ev.event.as_deref() == Some("gap") {
                        if let Some(g) = cx.s.dialect.decode_gap(data) {
                            out.push(Event::Gap(g));
                        }
                    } else if ev.event.is_none() || ev.event.as_deref() == Some("message") {
                        out.push(cx.message(data, at_ns)?);
                        cx.tally.framing -= data.len() as u64;
                        if ev.id.is_some() {
                            cx.token = ev.id;
                        }
                    }
                }
                if let Some(ms) = self.sse.retry_ms() {
                    self.retry = Some(std::time::Duration::from_millis(ms));
                }
            }
            _ => {
                // pushlab: NDJSON lines; nchan: one message after another.
                while let Some((len, used)) = cx.s.dialect.next_stream_item(&self.body)? {
                    let line = self.body.split_to(used);
                    let text = &line[..len];
                    if text.is_empty() {
                        continue; // heartbeat
                    }
                    if let Some(g) = cx.s.dialect.decode_gap(text) {
                        out.push(Event::Gap(g));
                        continue;
                    }
                    out.push(cx.message(text, at_ns)?);
                    cx.tally.framing -= text.len() as u64;
                }
                if self.body.len() > MAX_LINE_BYTES {
                    return Err(ClientError::Protocol("NDJSON line too long".into()));
                }
            }
        }
        Ok(())
    }

    fn ended(&self) -> bool {
        self.decoder.as_ref().is_some_and(ChunkDecoder::is_done)
    }
}

impl Subscriber for StreamingSub {
    async fn open(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        let mut conn = cx.connect().await?;
        let req = cx.subscribe_request(cursor, !self.opened_once);
        // From here on the connection is ours to account for, even if it fails.
        self.body.clear();
        self.sse = SseParser::new(MAX_LINE_BYTES);
        self.decoder = None;
        cx.request(&mut conn, &req.path, req.kind, &req.extra())
            .await?;
        self.conn = Some(conn);
        let conn = self.conn.as_mut().expect("set above");
        let head = conn.read_head().await?;
        cx.tally.headers += head.len as u64;
        cx.response_head(conn, &head);
        if head.status != 200 {
            let (body, framing) = conn.read_body(head.body, 64 * 1024).await?;
            cx.tally.framing += framing + body.len() as u64;
            return Err(ClientError::Status {
                status: head.status,
                body: crate::http::preview(&body),
            });
        }
        self.decoder = match head.body {
            BodyLen::Chunked => Some(ChunkDecoder::default()),
            BodyLen::UntilEof => None,
            other => {
                return Err(ClientError::Protocol(format!(
                    "a stream must be chunked or run to EOF, got {other:?}"
                )))
            }
        };
        self.opened_once = true;
        self.process(cx, out)
    }

    async fn next(
        &mut self,
        cx: &mut ClientCtx,
        _cursor: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        loop {
            self.process(cx, out)?;
            if !out.is_empty() {
                return Ok(());
            }
            if self.ended() {
                return Err(ClientError::Closed);
            }
            let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
            if conn.fill().await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    async fn close(&mut self, cx: &mut ClientCtx, out: &mut Vec<Event>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let closing = conn.finish(cx.s.close_timeout).await;
        let _ = self.process(cx, out);
        cx.finished(closing);
        self.conn = None;
    }

    fn reconnect_delay(&self) -> std::time::Duration {
        self.retry.unwrap_or_default()
    }

    fn abort(&mut self, cx: &mut ClientCtx) {
        if let Some(conn) = self.conn.take() {
            cx.closed(segments_of(&conn));
            // Bytes read but not decoded yet: not parsed, so not attributed (see drive()).
            let _ = conn.buf.remaining();
        }
        self.body.clear();
    }
}
