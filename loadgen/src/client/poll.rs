//! Short and long polling: one request, one batch, again.
//!
//! ```text
//! GET /poll/T?since=41 HTTP/1.1            every --poll-interval, on a fixed schedule
//! GET /longpoll/T?since=41&timeout=30      again as soon as the last one returned
//! -> 200 {"next":43,"messages":[MESSAGE,MESSAGE]}
//! ```
//!
//! Bytes: request and response heads are `headers`; in the body, messages are payload and
//! envelope and the rest (`{"next":..,"messages":[`, commas, `]}`, a gap field, a whole empty
//! body) is `framing`. With keep-alive one connection carries every request; without it each
//! request sends `Connection: close` on a new connection that is read to its end.
//!
//! Short-poll subscribers spread their phases over the interval (subscriber `i` of `n` polls
//! at `i/n` of it), as independent clients would, instead of polling in lockstep. A target
//! that answers one message per request (nchan's intervalpoll, [`Batch::more`]) is asked
//! again at once after each message; only a "nothing new" answer waits for the next tick.
//!
//! A dialect may answer "nothing new" with a status ([`Dialect::no_news`]: nchan's `304`, a
//! long poll's `408`): an empty response whose body, if any, is framing.
//!
//! [`Batch::more`]: super::dialect::Batch::more
//! [`Dialect::no_news`]: super::Dialect::no_news

use std::time::Duration;

use pushlab_proto::Transport;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{segments_of, ClientCtx, Event, Subscriber};
use crate::http::{ClientError, Conn, Head};

/// Largest poll body accepted.
pub(super) const MAX_BATCH_BYTES: usize = 64 << 20;

/// A short- or long-poll subscriber.
#[derive(Debug)]
pub struct PollSub {
    transport: Transport,
    conn: Option<Conn>,
    /// The connection has served its last response (keep-alive off or the server closes).
    spent: bool,
    /// A request is out; its head, once read.
    pending: Option<Option<Head>>,
    ticker: Option<Interval>,
    first_tick: Duration,
    /// The last answer said there may be more: ask again without waiting for the tick.
    again: bool,
}

impl PollSub {
    pub fn new(cx: &ClientCtx) -> PollSub {
        let n = cx.s.clients.max(1);
        let first_tick = cx.s.poll_interval.mul_f64((cx.id % n) as f64 / n as f64);
        PollSub {
            transport: cx.s.transport,
            conn: None,
            spent: false,
            pending: None,
            ticker: None,
            first_tick,
            again: false,
        }
    }

    async fn retire(&mut self, cx: &mut ClientCtx) {
        if let Some(mut conn) = self.conn.take() {
            let closing = conn.finish(cx.s.close_timeout).await;
            cx.finished(closing);
        }
        self.spent = false;
    }

    async fn read_response(
        &mut self,
        cx: &mut ClientCtx,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
        let head = match self.pending.as_mut() {
            Some(Some(h)) => h.clone(),
            Some(slot) => {
                let h = conn.read_head().await?;
                cx.tally.headers += h.len as u64;
                cx.response_head(conn, &h);
                *slot = Some(h.clone());
                h
            }
            None => return Ok(()),
        };
        let (body, chunk_framing) = conn.read_body(head.body, MAX_BATCH_BYTES).await?;
        self.pending = None;
        cx.tally.framing += chunk_framing;
        if head.close || !cx.s.keep_alive {
            self.spent = true;
        }
        self.again = apply_response(cx, &head, &body, out)?;
        Ok(())
    }
}

/// Takes in one poll response (its head already attributed): the body's messages are payload
/// and envelope, the rest of it framing; an empty batch counts as an empty response. Returns
/// whether the target says there is more to fetch at once ([`Batch::more`]).
///
/// [`Batch::more`]: super::dialect::Batch::more
pub(super) fn apply_response(
    cx: &mut ClientCtx,
    head: &Head,
    body: &[u8],
    out: &mut Vec<Event>,
) -> Result<bool, ClientError> {
    if let Some(token) = cx.s.dialect.token_from_head(head) {
        cx.token = Some(token);
    }
    if cx.s.dialect.no_news(head.status) {
        cx.tally.framing += body.len() as u64;
        cx.rec
            .empty_responses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(false);
    }
    if head.status != 200 {
        cx.tally.framing += body.len() as u64;
        return Err(ClientError::Status {
            status: head.status,
            body: crate::http::preview(body),
        });
    }
    let batch = match cx.s.dialect.decode_batch(head, body) {
        Ok(b) => b,
        Err(e) => {
            cx.tally.framing += body.len() as u64;
            return Err(e);
        }
    };
    let at_ns = crate::net::now_ns();
    if let Some(g) = batch.gap {
        out.push(Event::Gap(g));
    }
    let mut message_bytes = 0;
    for (d, len) in &batch.messages {
        cx.tally.payload += d.payload_bytes;
        cx.tally.envelope += len - d.payload_bytes;
        message_bytes += len;
        out.push(Event::Message {
            seq: d.seq,
            due_ns: d.due_ns,
            at_ns,
        });
    }
    cx.tally.framing += body.len() as u64 - message_bytes;
    if batch.messages.is_empty() && batch.gap.is_none() {
        cx.rec
            .empty_responses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(batch.more)
}

/// A short poller's clock: first tick after `first_tick` (subscribers' polls spread over one
/// interval), then every `every`; a tick missed while a poll was out is skipped, not bunched.
pub(crate) fn poll_ticker(first_tick: Duration, every: Duration) -> Interval {
    let mut t = tokio::time::interval_at(Instant::now() + first_tick, every);
    t.set_missed_tick_behavior(MissedTickBehavior::Skip);
    t
}

impl Subscriber for PollSub {
    async fn open(
        &mut self,
        cx: &mut ClientCtx,
        _cursor: u64,
        _out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        if self.transport == Transport::Poll && self.ticker.is_none() {
            self.ticker = Some(poll_ticker(self.first_tick, cx.s.poll_interval));
        }
        if cx.s.keep_alive && self.conn.is_none() {
            self.conn = Some(cx.connect().await?);
        }
        Ok(())
    }

    async fn next(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        if self.pending.is_none() {
            if let Some(t) = self.ticker.as_mut().filter(|_| !self.again) {
                t.tick().await;
            }
            if self.spent {
                self.retire(cx).await;
            }
            if self.conn.is_none() {
                self.conn = Some(cx.connect().await?);
            }
            let req = cx.subscribe_request(cursor, false);
            let conn = self.conn.as_mut().expect("connected above");
            self.pending = Some(None);
            self.again = false;
            cx.request(conn, &req.path, req.kind, &req.extra()).await?;
        }
        self.read_response(cx, out).await
    }

    async fn close(&mut self, cx: &mut ClientCtx, out: &mut Vec<Event>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let closing = conn.finish(cx.s.close_timeout).await;
        if self.pending.is_some() {
            // Whatever answer was on its way is in the buffer now: parse it.
            let _ = self.read_response(cx, out).await;
        }
        cx.finished(closing);
        self.conn = None;
        self.pending = None;
    }

    fn abort(&mut self, cx: &mut ClientCtx) {
        if let Some(conn) = self.conn.take() {
            cx.closed(segments_of(&conn));
        }
        self.pending = None;
        self.spent = false;
    }
}
