//! What a target speaks: endpoint paths, how a cursor is sent, and the message format. The
//! subscribers only do transport work (HTTP, framing, reconnects); everything that differs
//! between pushlab-server and a peer server such as nginx-nchan is here.
//!
//! pushlab (see DESIGN.md):
//!
//! ```text
//! GET /poll/T?since=C    GET /longpoll/T?since=C&timeout=S    GET /sse/T?since=S0 (+ Last-Event-ID)
//! GET /stream/T?since=C  GET /ws/T?since=C                    POST /publish/T
//! MESSAGE = {"topic":"T","seq":42,"ts":TS,"data":"..."}
//! ```
//!
//! nginx-nchan is [`super::nchan::NchanDialect`]: its `/sub/...` locations, cursors carried in
//! `If-Modified-Since`/`If-None-Match` or `Last-Event-ID` (message ids are `time:tag`), and a
//! publisher that numbers the messages itself.

use std::borrow::Cow;
use std::fmt::Debug;

use pushlab_proto::frame::{GapNotice, PollBatch};
use pushlab_proto::{Gap, Transport};

use crate::http::{preview, ClientError, Head};
use crate::publisher::parse_stamp;

/// One decoded message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub seq: u64,
    /// Bytes of the data as they crossed the wire; the rest of the message is envelope.
    pub payload_bytes: u64,
    /// The intended send time stamped by the publisher, if this is one of ours.
    pub due_ns: Option<u64>,
}

/// A poll or long-poll body, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub gap: Option<Gap>,
    /// (message, encoded bytes of it) in order.
    pub messages: Vec<(Decoded, u64)>,
    /// The server may hold more right now: a short poll asks again at once instead of waiting
    /// for its next tick (nchan's intervalpoll answers one message per request).
    pub more: bool,
}

/// A publish request's body, as a dialect builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishBody {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A target's protocol.
pub trait Dialect: Send + Sync + Debug {
    /// `pushlab`, `nchan`.
    fn name(&self) -> &'static str;
    /// The subscription path (with query) for `transport` on `topic`, resuming after `cursor`.
    /// `first` is the very first subscription of a subscriber.
    fn subscribe_path(
        &self,
        transport: Transport,
        topic: &str,
        cursor: u64,
        start_cursor: u64,
        longpoll_timeout_s: u64,
    ) -> String;
    /// Extra request headers of a subscription: the cursor (SSE reconnects: `Last-Event-ID`)
    /// and whatever the target needs to pick the transport. `token` is the target's own cursor
    /// for the last message held, when it sent one ([`Dialect::token_from_head`], SSE `id:`).
    fn subscribe_headers(
        &self,
        transport: Transport,
        cursor: u64,
        token: Option<&str>,
        first: bool,
    ) -> Vec<(String, String)>;
    /// The target's cursor in a poll response's head, if it puts one there (nchan:
    /// `Last-Modified` + `Etag`).
    fn token_from_head(&self, _head: &Head) -> Option<String> {
        None
    }
    /// A poll or long-poll status that means "nothing new" rather than an error (nchan: `304`,
    /// and `408` when a long poll times out).
    fn no_news(&self, _status: u16) -> bool {
        false
    }
    /// The publish path for `topic`.
    fn publish_path(&self, topic: &str) -> String;
    /// What the publisher posts for message `seq` (the seq it expects, counted from the
    /// topic's start) with intended send time `due_ns` and `data`.
    fn publish_body(&self, topic: &str, seq: u64, due_ns: u64, data: &str) -> PublishBody;
    /// Reads the answer to publishing `seq`: the seq the message got, or why it failed.
    fn publish_answer(
        &self,
        topic: &str,
        seq: u64,
        status: u16,
        body: &[u8],
    ) -> Result<u64, ClientError>;
    /// Decodes one message as the streaming transports carry it.
    fn decode_message(&self, bytes: &[u8]) -> Result<Decoded, ClientError>;
    /// A gap notice, if `bytes` is one (stream lines, WebSocket frames, SSE `gap` events).
    fn decode_gap(&self, bytes: &[u8]) -> Option<Gap>;
    /// Decodes a poll or long-poll body (a `200`).
    fn decode_batch(&self, head: &Head, body: &[u8]) -> Result<Batch, ClientError>;
    /// Where the first whole item of a decoded chunked-stream body ends: `(item bytes, bytes
    /// consumed)`, `None` until one is complete. pushlab: NDJSON (an empty line is a
    /// heartbeat).
    fn next_stream_item(&self, body: &[u8]) -> Result<Option<(usize, usize)>, ClientError> {
        Ok(body.iter().position(|&b| b == b'\n').map(|nl| (nl, nl + 1)))
    }
}

/// pushlab-server's protocol.
#[derive(Clone, Copy, Debug, Default)]
pub struct PushlabDialect;

impl Dialect for PushlabDialect {
    fn name(&self) -> &'static str {
        "pushlab"
    }

    fn subscribe_path(
        &self,
        transport: Transport,
        topic: &str,
        cursor: u64,
        start_cursor: u64,
        longpoll_timeout_s: u64,
    ) -> String {
        let seg = transport.path_segment();
        match transport {
            Transport::LongPoll => {
                format!("/{seg}/{topic}?since={cursor}&timeout={longpoll_timeout_s}")
            }
            // As a browser's EventSource: the URL stays the same, reconnects add Last-Event-ID.
            Transport::Sse => format!("/{seg}/{topic}?since={start_cursor}"),
            _ => format!("/{seg}/{topic}?since={cursor}"),
        }
    }

    fn subscribe_headers(
        &self,
        transport: Transport,
        cursor: u64,
        _token: Option<&str>,
        first: bool,
    ) -> Vec<(String, String)> {
        if transport == Transport::Sse && !first {
            vec![("Last-Event-ID".into(), cursor.to_string())]
        } else {
            Vec::new()
        }
    }

    fn publish_path(&self, topic: &str) -> String {
        format!("/publish/{topic}")
    }

    /// The data alone: the server numbers and wraps it.
    fn publish_body(&self, _topic: &str, _seq: u64, _due_ns: u64, data: &str) -> PublishBody {
        PublishBody {
            content_type: "text/plain; charset=utf-8",
            body: data.as_bytes().to_vec(),
        }
    }

    /// `202 {"seq":SEQ}`.
    fn publish_answer(
        &self,
        _topic: &str,
        _seq: u64,
        status: u16,
        body: &[u8],
    ) -> Result<u64, ClientError> {
        if status != 202 && status != 200 {
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Ack {
            seq: u64,
        }
        serde_json::from_slice::<Ack>(body)
            .map(|a| a.seq)
            .map_err(|e| ClientError::Protocol(format!("publish answer {:?}: {e}", preview(body))))
    }

    fn decode_message(&self, bytes: &[u8]) -> Result<Decoded, ClientError> {
        #[derive(serde::Deserialize)]
        struct Msg<'a> {
            seq: u64,
            #[serde(borrow)]
            data: Cow<'a, str>,
        }
        let m: Msg<'_> = serde_json::from_slice(bytes).map_err(|e| {
            ClientError::Protocol(format!("not a message ({e}): {:?}", preview(bytes)))
        })?;
        // MESSAGE always ends `,"data":"...."}` (DESIGN.md: fixed key order, no spaces).
        const DATA_KEY: &[u8] = b",\"data\":\"";
        let start = crate::http::find(bytes, DATA_KEY)
            .map(|i| i + DATA_KEY.len())
            .filter(|&s| bytes.ends_with(b"\"}") && s + 2 <= bytes.len())
            .ok_or_else(|| ClientError::Protocol("message without a trailing data field".into()))?;
        Ok(Decoded {
            seq: m.seq,
            payload_bytes: (bytes.len() - 2 - start) as u64,
            due_ns: parse_stamp(m.data.as_bytes()),
        })
    }

    fn decode_gap(&self, bytes: &[u8]) -> Option<Gap> {
        if !bytes.starts_with(b"{\"gap\":") {
            return None;
        }
        serde_json::from_slice::<GapNotice>(bytes)
            .ok()
            .map(|n| n.gap)
    }

    fn decode_batch(&self, _head: &Head, body: &[u8]) -> Result<Batch, ClientError> {
        let batch = PollBatch::parse(body).map_err(|e| {
            ClientError::Protocol(format!("not a poll batch ({e}): {:?}", preview(body)))
        })?;
        let messages = batch
            .messages
            .iter()
            .map(|m| {
                // The one encoding is canonical, so re-encoding gives the bytes that came.
                let enc = m.encode();
                (
                    Decoded {
                        seq: m.seq,
                        payload_bytes: enc.payload_len() as u64,
                        due_ns: parse_stamp(m.data.as_bytes()),
                    },
                    enc.bytes.len() as u64,
                )
            })
            .collect();
        Ok(Batch {
            gap: batch.gap,
            messages,
            more: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushlab_proto::encode_message;

    #[test]
    fn decodes_messages_and_splits_payload() {
        let data = crate::publisher::stamp(1_700_000_000_000_000_000, 40);
        let m = encode_message("lab", 7, 5, &data);
        let d = PushlabDialect.decode_message(&m.bytes).unwrap();
        assert_eq!(d.seq, 7);
        assert_eq!(d.payload_bytes, m.payload_len() as u64);
        assert_eq!(d.due_ns, Some(1_700_000_000_000_000_000));
        let odd = encode_message("lab", 8, 5, "a \"quoted\" \\ line\n");
        let d = PushlabDialect.decode_message(&odd.bytes).unwrap();
        assert_eq!(d.payload_bytes, odd.payload_len() as u64);
        assert_eq!(d.due_ns, None);
        assert!(PushlabDialect.decode_message(b"{\"gap\":1}").is_err());
    }

    #[test]
    fn decodes_gaps_and_batches() {
        let gap = Gap {
            missed: 3,
            from: 2,
            to: 4,
        };
        assert_eq!(PushlabDialect.decode_gap(&gap.notice_json()), Some(gap));
        assert_eq!(PushlabDialect.decode_gap(b"{\"topic\":1}"), None);
        let a = encode_message("t", 5, 1, "x");
        let body = pushlab_proto::frame::poll_batch(5, Some(gap), std::slice::from_ref(&a.bytes));
        let head = crate::http::parse_head(&mut bytes::BytesMut::from(
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
        ))
        .unwrap()
        .unwrap();
        let b = PushlabDialect.decode_batch(&head, &body).unwrap();
        assert_eq!(b.gap, Some(gap));
        assert_eq!(b.messages[0].1, a.bytes.len() as u64);
        assert!(PushlabDialect.decode_batch(&head, b"[]").is_err());
    }

    #[test]
    fn paths() {
        let d = PushlabDialect;
        assert_eq!(
            d.subscribe_path(Transport::Poll, "t", 4, 0, 30),
            "/poll/t?since=4"
        );
        assert_eq!(
            d.subscribe_path(Transport::LongPoll, "t", 4, 0, 30),
            "/longpoll/t?since=4&timeout=30"
        );
        assert_eq!(
            d.subscribe_path(Transport::Sse, "t", 4, 0, 30),
            "/sse/t?since=0"
        );
        assert!(d
            .subscribe_headers(Transport::Sse, 4, None, true)
            .is_empty());
        assert_eq!(
            d.subscribe_headers(Transport::Sse, 4, None, false)[0].1,
            "4".to_string()
        );
    }
}
