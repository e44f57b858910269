//! Long polling: `GET /longpoll/{topic}?since=SEQ&timeout=SECS`, held until a message newer
//! than SEQ exists or the timeout passes (then `200` with an empty batch). Same body as poll.
//!
//! ```text
//! GET /longpoll/ticker?since=42&timeout=30     ... held ...
//! {"next":43,"messages":[{"topic":"ticker","seq":43,...}]}
//! ```
//!
//! `timeout` is 1..=120 seconds (else 400); without it the server's default applies.

use std::task::Poll;
use std::time::Duration;

use http::Response;
use pushlab_proto::Transport;

use super::{bad_request, batch_response, start_cursor, Q};
use crate::config::LONGPOLL_TIMEOUT_RANGE_S;
use crate::feed::{Subscription, Topic};
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
    // As a streaming body does: the held request leaves one waker with its topic and reads the
    // shutdown flag (the server wakes every topic's waiters when it flips it).
    let mut sub = Subscription::default();
    let mut shutdown = shared.shutdown.clone();
    let mut stopping = *shutdown.borrow_and_update();
    let timeout = tokio::time::sleep_until(deadline);
    tokio::pin!(timeout);
    loop {
        let read = topic.read_after(since, shared.config.max_batch, shared.config.history);
        stopping = stopping || shutdown.has_changed().unwrap_or(false);
        if !read.entries.is_empty() || read.gap.is_some() || stopping {
            return batch_response(shared, Transport::LongPoll, &read);
        }
        let news = std::future::poll_fn(|cx| {
            let ready = topic.poll_news(&mut sub, since, cx);
            // A shutdown between the look above and the waker's push woke nobody.
            if ready.is_pending() && shutdown.has_changed().unwrap_or(false) {
                return Poll::Ready(());
            }
            ready
        });
        tokio::select! {
            biased;
            _ = news => {}
            _ = &mut timeout => return batch_response(shared, Transport::LongPoll, &read),
        }
    }
}
