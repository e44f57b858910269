//! The open-loop publisher: `POST /publish/{topic}` at a fixed rate on one keep-alive
//! connection, each message's `data` stamped with its *intended* send time.
//!
//! ```text
//! POST /publish/lab-ws-3f2a9c HTTP/1.1          HTTP/1.1 202 Accepted
//! Host: 127.0.0.1:8080                          content-length: 10
//! Content-Type: text/plain; charset=utf-8
//! Content-Length: 64                            {"seq":17}
//!
//! 1763790000123456789.............................................
//! ```
//!
//! What is posted and what the answer means is the target's [`Dialect`]'s: nginx-nchan gets
//! `POST /pub/{topic}` with the whole MESSAGE, numbered here (see `client::nchan`).
//!
//! # No coordinated omission
//!
//! Message `k` is due at `start + k / rate` whatever happened to message `k - 1`; its data
//! carries that due time (ns since the epoch, 19 digits, padded with `.` to
//! `--payload-bytes`). A subscriber's latency sample is its receive time minus the *due* time,
//! both read from the loadgen's one clock ([`crate::net::now_ns`]). If the server stalls, the
//! publisher falls behind and sends the backlog at once, and every stalled message shows the
//! whole stall in its latency, as a user would see it. Were latency measured from the actual
//! send instead, a stall would hide behind the publisher's own wait (Gil Tene's "coordinated
//! omission"); [`Schedule`] is what prevents that, and its tests pin it down.

use std::sync::Arc;
use std::time::Duration;

use pushlab_proto::ByteCounter;
use tokio::time::Instant;

use crate::client::Dialect;
use crate::config::Target;
use crate::error::LoadgenError;
use crate::http::{BodyLen, ClientError, Conn};

/// Digits of the send-time stamp at the start of `data`.
pub const STAMP_BYTES: usize = 19;

/// When each message is due.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub start: Instant,
    pub rate_per_s: f64,
}

impl Schedule {
    /// Due time of message `k` (0-based).
    pub fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate_per_s)
    }

    /// How many messages are due strictly before `start + elapsed`.
    pub fn count_before(&self, elapsed: Duration) -> u64 {
        if elapsed.is_zero() {
            return 0;
        }
        // k is due before `elapsed` iff k / rate < elapsed, i.e. k < elapsed * rate.
        let x = elapsed.as_secs_f64() * self.rate_per_s;
        let mut n = x.ceil() as u64;
        // Guard against float edges: make `due(n-1) < end <= due(n)` hold exactly.
        let end = self.start + elapsed;
        while n > 0 && self.due(n - 1) >= end {
            n -= 1;
        }
        while self.due(n) < end {
            n += 1;
        }
        n
    }
}

/// `data` for a message due at `due_ns`: the stamp, then `.` up to `bytes`.
pub fn stamp(due_ns: u64, bytes: usize) -> String {
    let mut s = format!("{due_ns:019}");
    if s.len() < bytes {
        s.extend(std::iter::repeat_n('.', bytes - s.len()));
    }
    s
}

/// The due time stamped at the start of `data`, if it carries one.
pub fn parse_stamp(data: &[u8]) -> Option<u64> {
    let digits = data.get(..STAMP_BYTES)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What one publisher did.
#[derive(Clone, Debug, Default)]
pub struct Published {
    /// Messages acknowledged (`202`).
    pub published: u64,
    /// Acknowledged messages due in the measured window.
    pub window_published: u64,
    /// Highest seq acknowledged (the seq every subscriber must reach).
    pub last_seq: u64,
    /// Requests that failed (each retried once on a new connection).
    pub errors: u64,
    /// How far behind schedule the publisher fell at worst.
    pub max_behind: Duration,
}

/// Where a publisher posts, in which dialect.
#[derive(Clone, Debug)]
pub struct Feed {
    pub dialect: Arc<dyn Dialect>,
    pub topic: String,
    /// The seq the first message gets: the topic's newest before the run, plus one (a target
    /// that numbers nothing itself, nchan, is told the seq in the message).
    pub first_seq: u64,
}

/// Publishes messages `0..total` to `feed` per `schedule`; those from `window_first` on are
/// due in the measured window.
pub async fn publish(
    target: &Target,
    feed: &Feed,
    schedule: Schedule,
    total: u64,
    window_first: u64,
    payload_bytes: usize,
) -> Result<Published, LoadgenError> {
    let mut out = Published::default();
    let mut conn: Option<Conn> = None;
    let path = feed.dialect.publish_path(&feed.topic);
    let mut next_seq = feed.first_seq;
    for k in 0..total {
        let due = schedule.due(k);
        tokio::time::sleep_until(due).await;
        out.max_behind = out
            .max_behind
            .max(Instant::now().saturating_duration_since(due));
        let due_ns = crate::net::instant_ns(due.into_std());
        let data = stamp(due_ns, payload_bytes);
        let body = feed
            .dialect
            .publish_body(&feed.topic, next_seq, due_ns, &data);
        let mut attempt = 0;
        let seq = loop {
            attempt += 1;
            match publish_one(&mut conn, target, &path, &body, feed, next_seq).await {
                Ok(seq) => break Some(seq),
                Err(e) => {
                    conn = None;
                    out.errors += 1;
                    // A keep-alive connection the server closed: retry once on a new one.
                    if attempt < 2 && e.0.is_disconnect() {
                        continue;
                    }
                    if out.published == 0 {
                        return Err(LoadgenError::Publish {
                            target: target.url.clone(),
                            why: e.1,
                        });
                    }
                    break None;
                }
            }
        };
        if let Some(seq) = seq {
            next_seq = seq + 1;
            out.published += 1;
            if k >= window_first {
                out.window_published += 1;
            }
            out.last_seq = out.last_seq.max(seq);
        }
    }
    Ok(out)
}

struct PublishError(ClientError, String);

async fn publish_one(
    conn: &mut Option<Conn>,
    target: &Target,
    path: &str,
    body: &crate::client::dialect::PublishBody,
    feed: &Feed,
    seq: u64,
) -> Result<u64, PublishError> {
    let err = |e: ClientError| {
        let s = e.to_string();
        PublishError(e, s)
    };
    if conn.is_none() {
        *conn = Some(
            Conn::connect(target.addr, None, Arc::new(ByteCounter::default()))
                .await
                .map_err(err)?,
        );
    }
    let c = conn.as_mut().expect("connected above");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        target.host_header,
        body.content_type,
        body.body.len()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(&body.body);
    c.send(&req).await.map_err(err)?;
    let head = c.read_head().await.map_err(err)?;
    let (answer, _) = c.read_body(head.body, 64 * 1024).await.map_err(err)?;
    if head.body == BodyLen::UntilEof || head.close {
        *conn = None;
    }
    feed.dialect
        .publish_answer(&feed.topic, seq, head.status, &answer)
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_fixed_and_counts_exactly() {
        let s = Schedule {
            start: Instant::now(),
            rate_per_s: 10.0,
        };
        assert_eq!(s.due(0), s.start);
        assert_eq!(s.due(10) - s.start, Duration::from_secs(1));
        assert_eq!(s.due(3) - s.start, Duration::from_millis(300));
        // Due strictly before 1 s: k = 0..=9.
        assert_eq!(s.count_before(Duration::from_secs(1)), 10);
        assert_eq!(s.count_before(Duration::from_millis(1001)), 11);
        assert_eq!(s.count_before(Duration::ZERO), 0);
        assert_eq!(s.count_before(Duration::from_nanos(1)), 1);
        let odd = Schedule {
            start: s.start,
            rate_per_s: 3.0,
        };
        for ms in [1u64, 333, 334, 1000, 2500, 10_000] {
            let n = odd.count_before(Duration::from_millis(ms));
            let end = odd.start + Duration::from_millis(ms);
            assert!(n == 0 || odd.due(n - 1) < end, "{ms}");
            assert!(odd.due(n) >= end, "{ms}");
        }
    }

    #[test]
    fn due_times_do_not_depend_on_when_messages_go_out() {
        // The schedule is a pure function of k: a publisher that is late for message 5 still
        // stamps message 6 with start + 6/rate, not "5's actual send + 1/rate".
        let s = Schedule {
            start: Instant::now(),
            rate_per_s: 1000.0,
        };
        let gaps: Vec<Duration> = (1..100).map(|k| s.due(k) - s.due(k - 1)).collect();
        assert!(gaps
            .iter()
            .all(|g| g.abs_diff(Duration::from_millis(1)) < Duration::from_micros(1)));
    }

    #[test]
    fn stamps_round_trip_and_pad() {
        let d = stamp(1_763_790_000_123_456_789, 64);
        assert_eq!(d.len(), 64);
        assert_eq!(parse_stamp(d.as_bytes()), Some(1_763_790_000_123_456_789));
        assert_eq!(stamp(5, 19), "0000000000000000005");
        assert_eq!(parse_stamp(b"tick 1......................"), None);
        assert_eq!(parse_stamp(b"123"), None);
    }
}
