//! Server-Sent Events: `GET /sse/{topic}`, resumed by `Last-Event-ID` (or `?since=`).
//!
//! ```text
//! HTTP/1.1 200 OK
//! content-type: text/event-stream
//! transfer-encoding: chunked
//!
//! retry: 1000
//!
//! id: 42
//! data: {"topic":"ticker","seq":42,"ts":1763...,"data":"..."}
//!
//! : hb
//!
//! id: 49
//! event: gap
//! data: {"gap":{"missed":7,"from":43,"to":49}}
//! ```

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use pushlab_proto::frame::{sse_gap, sse_retry, SSE_HEARTBEAT};
use pushlab_proto::{parse_last_event_id, Transport};

use super::{bad_request, follow_body, start_cursor, streaming_response, Framed, Framing, Q};
use crate::feed::Topic;
use crate::http_util::Body;
use crate::Shared;

/// Reconnect delay advertised to EventSource clients.
const RETRY_MS: u64 = 1000;

pub fn handle(
    req: &Request<Incoming>,
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    query: Q,
) -> Response<Body> {
    let since = match req.headers().get("last-event-id") {
        Some(v) => match parse_last_event_id(v.as_bytes()) {
            Ok(id) => Some(id),
            Err(e) => return bad_request(&shared, e),
        },
        None => query.since,
    };
    let cursor = match start_cursor(&shared, &topic, since) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let framing = Framing {
        transport: Transport::Sse,
        entry: Framed::sse,
        gap: sse_gap,
        heartbeat: SSE_HEARTBEAT,
    };
    let body = follow_body(shared, topic, cursor, framing, Some(sse_retry(RETRY_MS)));
    streaming_response("text/event-stream", body)
}
