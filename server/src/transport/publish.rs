//! Publishing: `POST /publish/{topic}` with the data as body (UTF-8, at most
//! `max_message_bytes`), answered `202 {"seq":N}`; and the built-in ticker.
//!
//! ```text
//! POST /publish/chat HTTP/1.1        HTTP/1.1 202 Accepted
//! content-length: 5                  {"seq":17}
//!
//! hello
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::feed::Topic;
use crate::http_util::{self, Body};
use crate::metrics::Rejection;
use crate::Shared;

pub async fn handle(req: Request<Incoming>, shared: &Shared, topic: &Topic) -> Response<Body> {
    let max = shared.config.max_message_bytes;
    let too_large = || {
        shared.metrics.reject(Rejection::PayloadTooLarge);
        http_util::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("message larger than {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            shared.metrics.reject(Rejection::BadRequest);
            return http_util::error(StatusCode::BAD_REQUEST, format!("reading body: {e}"));
        }
    };
    let Ok(data) = std::str::from_utf8(&body) else {
        shared.metrics.reject(Rejection::BadRequest);
        return http_util::error(StatusCode::BAD_REQUEST, "message body must be UTF-8 text");
    };
    shared
        .metrics
        .published_messages
        .fetch_add(1, Ordering::Relaxed);
    let entry = shared.feed.publish(topic, data);
    http_util::json(StatusCode::ACCEPTED, format!("{{\"seq\":{}}}", entry.seq()))
}

/// Data of ticker message `n`, padded to `bytes` so its size is exactly what was asked.
pub fn ticker_data(n: u64, bytes: usize) -> String {
    let mut s = format!("tick {n}");
    if s.len() < bytes {
        s.extend(std::iter::repeat_n('.', bytes - s.len()));
    } else {
        s.truncate(bytes);
    }
    s
}

/// Publishes on topic `ticker` at `tick_rate` per second until shutdown.
pub async fn ticker(shared: Arc<Shared>) {
    let Ok(topic) = shared.feed.topic("ticker") else {
        return;
    };
    let every = Duration::from_secs_f64(1.0 / shared.config.tick_rate.max(1e-3));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut shutdown = shared.shutdown.clone();
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = interval.tick() => {
                n += 1;
                shared.metrics.published_messages.fetch_add(1, Ordering::Relaxed);
                shared.feed.publish(&topic, &ticker_data(n, shared.config.tick_bytes));
            }
            _ = crate::until_down(&mut shutdown) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticker_data_has_the_asked_size() {
        assert_eq!(super::ticker_data(7, 20).len(), 20);
        assert_eq!(super::ticker_data(123456, 3), "tic");
        assert!(super::ticker_data(1, 64).starts_with("tick 1."));
    }
}
