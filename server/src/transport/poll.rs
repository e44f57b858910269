//! Short polling: `GET /poll/{topic}?since=SEQ`, answered at once, possibly empty.
//!
//! ```text
//! GET /poll/ticker?since=41 HTTP/1.1
//!
//! HTTP/1.1 200 OK
//! content-type: application/json
//!
//! {"next":42,"messages":[{"topic":"ticker","seq":42,"ts":1763...,"data":"..."}]}
//! ```
//!
//! Without `since` the answer is empty with `next` = the newest seq: where to start from.

use http::Response;
use pushlab_proto::Transport;

use super::{batch_response, start_cursor, Q};
use crate::feed::Topic;
use crate::http_util::Body;
use crate::Shared;

pub fn handle(shared: &Shared, topic: &Topic, query: Q) -> Response<Body> {
    let since = match start_cursor(shared, topic, query.since) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let read = topic.read_after(since, shared.config.max_batch, shared.config.history);
    batch_response(shared, Transport::Poll, &read)
}
