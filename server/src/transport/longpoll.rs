//! Long polling: `GET /longpoll/{topic}?since=SEQ&timeout=SECS`, held until a message newer
//! than SEQ exists or the timeout passes (then `200` with an empty batch). Same body as poll.
//!
//! ```text
//! GET /longpoll/ticker?since=42&timeout=30     ... held ...
//! {"next":43,"messages":[{"topic":"ticker","seq":43,...}]}
//! ```
//!
//! `timeout` is 1..=120 seconds (else 400); without it the server's default applies.

use std::time::Duration;

use http::Response;
use pushlab_proto::Transport;

use super::{bad_request, batch_response, start_cursor, Q};
use crate::config::LONGPOLL_TIMEOUT_RANGE_S;
use crate::feed::Topic;
use crate::http_util::Body;
use crate::Shared;

/// A long poll; with `hold` false (HEAD) it answers at once with what is there.
pub async fn handle(shared: &Shared, topic: &Topic, query: Q, hold: bool) -> Response<Body> {
    let hold_for = match query.timeout_s {
        None => shared.config.default_longpoll_timeout,
        Some(s) if LONGPOLL_TIMEOUT_RANGE_S.contains(&s) => Duration::from_secs(s),
        Some(s) => {
            return bad_request(
                shared,
                format!(
                    "timeout must be {}..={} seconds, got {s}",
                    LONGPOLL_TIMEOUT_RANGE_S.start(),
                    LONGPOLL_TIMEOUT_RANGE_S.end()
                ),
            )
        }
    };
    let since = match start_cursor(shared, topic, query.since) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let deadline = tokio::time::Instant::now() + if hold { hold_for } else { Duration::ZERO };
    let mut news = topic.subscribe();
    let mut shutdown = shared.shutdown.clone();
    loop {
        news.borrow_and_update();
        let read = topic.read_after(since, shared.config.max_batch, shared.config.history);
        if !read.entries.is_empty() || read.gap.is_some() || *shutdown.borrow() {
            return batch_response(shared, Transport::LongPoll, &read);
        }
        tokio::select! {
            _ = news.changed() => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {
                return batch_response(shared, Transport::LongPoll, &read);
            }
        }
    }
}
