//! Publishing: `POST /publish/{topic}` with the data as body (UTF-8, at most
//! `max_message_bytes`), answered `202 {"seq":N}`; and the built-in ticker.
//!
//! ```text
//! POST /publish/chat HTTP/1.1        HTTP/1.1 202 Accepted
//! content-length: 5                  {"seq":17}
//!
//! hello
//! ```

use std::sync::Arc;
use std::time::Duration;

use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::feed::Topic;
use crate::http_util::{self, Body};
use crate::metrics::Rejection;
use crate::Shared;

pub async fn handle(req: Request<Incoming>, shared: &Shared, topic: &Arc<Topic>) -> Response<Body> {
    // Boxed: hyper keeps one slot the size of the request future for every connection (idle
    // subscribers included), so reading a body's state lives on the heap only while it runs.
    Box::pin(read_and_publish(req, shared, topic)).await
}

async fn read_and_publish(
    req: Request<Incoming>,
    shared: &Shared,
    topic: &Arc<Topic>,
) -> Response<Body> {
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
    // A body dribbled in byte by byte (slowloris on the body) gets as long as a head does.
    let collect = Limited::new(req.into_body(), max).collect();
    let Ok(body) = tokio::time::timeout(shared.config.header_read_timeout, collect).await else {
        shared.metrics.reject(Rejection::BodyTimeout);
        let mut r = http_util::error(
            StatusCode::REQUEST_TIMEOUT,
            "message body not received in time",
        );
        r.headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        return r;
    };
    let body = match body {
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
    match shared.publish(topic, data).await {
        Ok(seq) => http_util::json(StatusCode::ACCEPTED, format!("{{\"seq\":{seq}}}")),
        Err(e) => super::backplane_down(shared, e),
    }
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

/// Highest ticker rate `POST /ticker` accepts, messages per second (the CLI's bound too).
pub const MAX_TICK_RATE_PER_S: f64 = 1_000_000.0;

/// Publishes on topic `ticker` at the rate in `shared.ticker_rate` until shutdown; idle (and
/// the topic not yet made) while the rate is 0.
pub async fn ticker(shared: Arc<Shared>) {
    let mut rate_rx = shared.ticker_rate.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let mut n = 0u64;
    loop {
        let rate = *rate_rx.borrow_and_update();
        let topic = if rate > 0.0 {
            shared.topic("ticker").await.ok()
        } else {
            None
        };
        let Some(topic) = topic else {
            // Idle, or the topic cannot be had yet (a backplane that is down): wait for a new
            // rate, or try again in a second.
            let retry = rate > 0.0;
            tokio::select! {
                changed = rate_rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)), if retry => {}
                _ = crate::until_down(&mut shutdown) => return,
            }
            continue;
        };
        let every = Duration::from_secs_f64(1.0 / rate.max(1e-3));
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    n += 1;
                    // A tick the backplane cannot take is counted there and skipped.
                    let _ = shared.publish(&topic, &ticker_data(n, shared.config.tick_bytes)).await;
                }
                changed = rate_rx.changed() => if changed.is_err() { return } else { break },
                _ = crate::until_down(&mut shutdown) => return,
            }
        }
    }
}

/// `GET /ticker`: `{"rate":R}`, the ticker's current rate in messages per second.
pub fn ticker_rate(shared: &Shared) -> Response<Body> {
    let rate = *shared.ticker_rate.borrow();
    http_util::json(StatusCode::OK, format!("{{\"rate\":{rate}}}"))
}

/// `POST /ticker?rate=R`: sets the ticker's rate (0 idles it); 400 unless
/// 0 <= R <= [`MAX_TICK_RATE_PER_S`]. Answers like `GET /ticker`.
pub fn set_ticker_rate(shared: &Shared, query: Option<&str>) -> Response<Body> {
    match parse_rate(query) {
        Ok(rate) => {
            shared.ticker_rate.send_replace(rate);
            ticker_rate(shared)
        }
        Err(e) => {
            shared.metrics.reject(Rejection::BadRequest);
            http_util::error(StatusCode::BAD_REQUEST, e)
        }
    }
}

fn parse_rate(query: Option<&str>) -> Result<f64, String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("rate="))
        .ok_or("query parameter \"rate\" (messages per second) is required")?;
    let shown: String = value.chars().take(40).collect();
    value
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=MAX_TICK_RATE_PER_S).contains(r))
        .ok_or(format!(
            "rate must be a number from 0 to {MAX_TICK_RATE_PER_S}, got {shown:?}"
        ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticker_data_has_the_asked_size() {
        assert_eq!(super::ticker_data(7, 20).len(), 20);
        assert_eq!(super::ticker_data(123456, 3), "tic");
        assert!(super::ticker_data(1, 64).starts_with("tick 1."));
    }

    #[test]
    fn ticker_rate_is_checked() {
        assert_eq!(super::parse_rate(Some("rate=2.5")), Ok(2.5));
        assert_eq!(super::parse_rate(Some("x=1&rate=0")), Ok(0.0));
        for bad in [
            None,
            Some(""),
            Some("rate="),
            Some("rate=-1"),
            Some("rate=NaN"),
            Some("rate=inf"),
            Some("rate=1e7"),
        ] {
            assert!(super::parse_rate(bad).is_err(), "{bad:?}");
        }
    }
}
