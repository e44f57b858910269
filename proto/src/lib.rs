//! # pushlab-proto
//!
//! Everything the server and the load generator must agree on, and nothing that does I/O
//! (the one exception is [`counting`], a wrapper that counts the bytes another socket moves).
//!
//! # Layout
//!
//! - [`transport`]: the five push transports as one enum, with their names and URL paths.
//! - [`message`]: `Message {topic, seq, ts, data}` and its one JSON encoding, byte-identical on
//!   every transport (the lab measures transports, so the body must never differ).
//! - [`frame`]: how each transport wraps that encoding (poll batch, SSE event, NDJSON line,
//!   WebSocket frame), the gap notice, and the framing-overhead arithmetic the loadgen uses to
//!   split wire bytes into payload, envelope and framing.
//! - [`cursor`]: query-string, `Last-Event-ID` and topic-name parsing, strict and panic-free.
//! - [`counters`]: the counters of one transport entry, named once (recorder, merge, result).
//! - [`h2wire`]: splits the bytes of an HTTP/2 connection into handshake, headers, framing,
//!   body and control, frame by frame (RFC 9113), as the byte split counts them.
//! - [`counting`]: an `AsyncRead + AsyncWrite` wrapper that counts bytes both ways.
//! - [`result`]: the JSON result schema one loadgen run writes (`schema_version`).

pub mod counters;
pub mod counting;
pub mod cursor;
pub mod frame;
pub mod h2wire;
pub mod message;
pub mod result;
pub mod transport;

pub use counting::{ByteCounter, CountingIo, IoCounter};
pub use cursor::{parse_last_event_id, parse_query, valid_topic, CursorError, Query};
pub use frame::Gap;
pub use message::{encode_message, EncodedMessage, Message, MessageError};
pub use transport::Transport;
