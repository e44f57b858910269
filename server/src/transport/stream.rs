//! Chunked streaming: `GET /stream/{topic}?since=SEQ`, one NDJSON line per message, one
//! message per HTTP chunk, for as long as the client stays.
//!
//! ```text
//! HTTP/1.1 200 OK
//! content-type: application/x-ndjson
//! transfer-encoding: chunked
//!
//! 4c\r\n{"topic":"ticker","seq":42,"ts":1763...,"data":"..."}\n\r\n
//! 27\r\n{"gap":{"missed":7,"from":43,"to":49}}\n\r\n
//! ```
//!
//! An idle stream gets an empty line (`\n`) as heartbeat.

use std::sync::Arc;

use http::Response;
use pushlab_proto::frame::ndjson_gap;
use pushlab_proto::Transport;

use super::{follow_body, start_cursor, streaming_response, Framed, Framing, Q};
use crate::feed::Topic;
use crate::http_util::Body;
use crate::Shared;

pub fn handle(shared: Arc<Shared>, topic: Arc<Topic>, query: Q) -> Response<Body> {
    let cursor = match start_cursor(&shared, &topic, query.since) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let framing = Framing {
        transport: Transport::Stream,
        entry: Framed::ndjson,
        gap: ndjson_gap,
        heartbeat: b"\n",
    };
    streaming_response(
        "application/x-ndjson",
        follow_body(shared, topic, cursor, framing, None),
    )
}
