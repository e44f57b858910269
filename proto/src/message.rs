//! The one message encoding, shared byte for byte by every transport.
//!
//! ```text
//! {"topic":"ticker","seq":42,"ts":1763790000123456789,"data":"hello"}
//! ```
//!
//! `ts` is nanoseconds since the Unix epoch when the server accepted the publish. `data` is the
//! published body as a JSON string. Keys are always in this order and there is no whitespace,
//! so the server encodes a message once and every subscriber of every transport receives the
//! very same bytes; the loadgen can then attribute wire bytes to payload (`data`'s contents)
//! and envelope (everything else in the message).

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// A decoded message, as a subscriber sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub topic: String,
    pub seq: u64,
    pub ts: u64,
    pub data: String,
}

/// Why a body is not a message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not a pushlab message: {0}")]
    Json(#[from] serde_json::Error),
}

impl Message {
    /// Parses one encoded message.
    pub fn parse(bytes: &[u8]) -> Result<Message, MessageError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Encodes this message (same bytes as [`encode_message`]).
    pub fn encode(&self) -> EncodedMessage {
        encode_message(&self.topic, self.seq, self.ts, &self.data)
    }
}

/// A message encoded once, to be shared (cheap `Bytes` clones) by every subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedMessage {
    pub seq: u64,
    pub ts: u64,
    /// The whole JSON object.
    pub bytes: Bytes,
    /// Where the contents of `data` (between its quotes, as escaped) sit in `bytes`.
    pub data_range: Range<usize>,
}

impl EncodedMessage {
    /// Bytes of the published data as they cross the wire (JSON-escaped).
    pub fn payload_len(&self) -> usize {
        self.data_range.len()
    }

    /// Bytes of the message that are not payload: keys, topic, seq, ts, quotes, braces.
    pub fn envelope_len(&self) -> usize {
        self.bytes.len() - self.data_range.len()
    }
}

/// Encodes `{"topic":T,"seq":S,"ts":TS,"data":D}` with no whitespace.
pub fn encode_message(topic: &str, seq: u64, ts: u64, data: &str) -> EncodedMessage {
    let mut buf = BytesMut::with_capacity(48 + topic.len() + data.len() + data.len() / 8);
    buf.put_slice(b"{\"topic\":\"");
    escape_json_into(topic, &mut buf);
    buf.put_slice(b"\",\"seq\":");
    put_u64(seq, &mut buf);
    buf.put_slice(b",\"ts\":");
    put_u64(ts, &mut buf);
    buf.put_slice(b",\"data\":\"");
    let start = buf.len();
    escape_json_into(data, &mut buf);
    let end = buf.len();
    buf.put_slice(b"\"}");
    EncodedMessage {
        seq,
        ts,
        bytes: buf.freeze(),
        data_range: start..end,
    }
}

/// Writes `n` in decimal.
pub fn put_u64(n: u64, buf: &mut BytesMut) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&tmp[i..]);
}

/// Escapes `s` as the inside of a JSON string (RFC 8259: quote, backslash, controls).
pub fn escape_json_into(s: &str, buf: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                buf.put_slice(&bytes[start..i]);
                buf.put_slice(b"\\u00");
                buf.put_u8(HEX[(b >> 4) as usize]);
                buf.put_u8(HEX[(b & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.put_slice(&bytes[start..i]);
        buf.put_slice(esc);
        start = i + 1;
    }
    buf.put_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_exact_and_parses_back() {
        let m = encode_message(
            "ticker",
            42,
            1_700_000_000_000_000_000,
            "hi \"you\"\n\u{1}é",
        );
        assert_eq!(
            &m.bytes[..],
            r#"{"topic":"ticker","seq":42,"ts":1700000000000000000,"data":"hi \"you\"\n\u0001é"}"#
                .as_bytes()
        );
        let back = Message::parse(&m.bytes).unwrap();
        assert_eq!(back.data, "hi \"you\"\n\u{1}é");
        assert_eq!(back.seq, 42);
        assert_eq!(
            &m.bytes[m.data_range.clone()],
            r#"hi \"you\"\n\u0001é"#.as_bytes()
        );
        assert_eq!(m.payload_len() + m.envelope_len(), m.bytes.len());
        assert_eq!(back.encode(), m);
    }

    #[test]
    fn encoding_matches_serde_for_plain_data() {
        let m = encode_message("chat.room-1", 0, u64::MAX, "abc");
        let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(v["ts"].as_u64(), Some(u64::MAX));
        assert_eq!(v["seq"].as_u64(), Some(0));
    }
}
