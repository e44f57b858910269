//! HTTP/2 subscribers of poll, long poll, SSE and the chunked stream: each subscription is
//! a `GET` stream on the subscriber's pooled connection ([`super::Pool`]). A poll subscriber
//! sends each poll as a new stream; an SSE or stream subscriber holds one stream open and
//! subscribes again (a new stream) when it ends.
//!
//! Bytes: what this subscriber's streams' DATA carry is credited to it as it is read and
//! split by the transport's own parser (poll batch, SSE, NDJSON) into payload, envelope and
//! framing as on HTTP/1.1; the rest of the connection is the connection's ([`super`]).

use std::time::Duration;

use bytes::BytesMut;
use h2::client::ResponseFuture;
use h2::RecvStream;
use pushlab_proto::Transport;
use tokio::time::Interval;

use super::{h2_error, Lease};
use crate::client::poll::{apply_response, poll_ticker, MAX_BATCH_BYTES};
use crate::client::streaming::StreamingSub;
use crate::client::{ClientCtx, Event, Subscriber};
use crate::http::{BodyLen, ClientError, Head};

/// A response head as the dialect reads it (its bytes are the connection's, not counted here).
fn head_of(resp: &http::Response<RecvStream>) -> Head {
    Head {
        status: resp.status().as_u16(),
        len: 0,
        body: BodyLen::UntilEof,
        close: false,
        headers: resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
                )
            })
            .collect(),
    }
}

/// Where a subscriber's current request stands.
enum Pending {
    /// Sent; waiting for the response head.
    Head(ResponseFuture),
    /// Reading the body of a response with this head.
    Body(Head, RecvStream, BytesMut),
}

/// An HTTP/2 subscriber of poll, long poll, SSE or the chunked stream.
pub struct H2Sub {
    transport: Transport,
    conn: Option<Lease>,
    pending: Option<Pending>,
    /// Short poll's schedule (see `poll.rs`).
    ticker: Option<Interval>,
    first_tick: Duration,
    again: bool,
    /// SSE and NDJSON parsing state (its own connection stays unused).
    stream: StreamingSub,
    opened_once: bool,
}

impl std::fmt::Debug for H2Sub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Sub")
            .field("transport", &self.transport)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl H2Sub {
    pub fn new(cx: &ClientCtx) -> H2Sub {
        let n = cx.s.clients.max(1);
        H2Sub {
            transport: cx.s.transport,
            conn: None,
            pending: None,
            ticker: None,
            first_tick: cx.s.poll_interval.mul_f64((cx.id % n) as f64 / n as f64),
            again: false,
            stream: StreamingSub::new(cx.s.transport),
            opened_once: false,
        }
    }

    fn streaming(&self) -> bool {
        matches!(self.transport, Transport::Sse | Transport::Stream)
    }

    /// Sends the subscription request for `cursor` (one HEADERS frame with END_STREAM) on
    /// the connection, taking one from the pool if needed.
    async fn send(&mut self, cx: &mut ClientCtx, cursor: u64) -> Result<(), ClientError> {
        if self.conn.is_none() {
            self.conn = Some(cx.s.h2_pool.acquire(cx).await?);
        }
        let conn = self.conn.as_mut().expect("taken above");
        let req = cx.subscribe_request(cursor, !self.opened_once);
        let req = super::request(cx, &req, http::Method::GET)?;
        let (resp, _) = conn.send.send_request(req, true).map_err(h2_error)?;
        self.pending = Some(Pending::Head(resp));
        Ok(())
    }

    /// Drives the pending request: head, then body frames, each handed to the transport's
    /// parser. Returns when a stream's head arrived, when there are events, or (poll) when the
    /// response is complete. Cancel-safe: all state is in `self.pending`.
    async fn advance(
        &mut self,
        cx: &mut ClientCtx,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        let streaming = self.streaming();
        loop {
            let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
            match self.pending.as_mut() {
                None => return Ok(()),
                Some(Pending::Head(resp)) => {
                    let resp = resp.await.map_err(h2_error)?;
                    let head = head_of(&resp);
                    if streaming && head.status != 200 {
                        self.pending = None;
                        return Err(ClientError::Status {
                            status: head.status,
                            body: String::new(),
                        });
                    }
                    self.opened_once = true;
                    self.pending = Some(Pending::Body(head, resp.into_body(), BytesMut::new()));
                    if streaming {
                        // Subscribed: the stream's events may be far off.
                        return Ok(());
                    }
                }
                Some(Pending::Body(head, body, buf)) => {
                    let chunk = match body.data().await {
                        Some(c) => c.map_err(h2_error)?,
                        None => {
                            let (head, buf) = (head.clone(), std::mem::take(buf));
                            self.pending = None;
                            if streaming {
                                return Err(ClientError::Closed);
                            }
                            self.again = apply_response(cx, &head, &buf, out)?;
                            return Ok(());
                        }
                    };
                    let _ = body.flow_control().release_capacity(chunk.len());
                    conn.credit_read(cx, &chunk);
                    if streaming {
                        cx.tally.framing += chunk.len() as u64;
                        self.stream.body.extend_from_slice(&chunk);
                        self.stream.parse_events(cx, out)?;
                        if !out.is_empty() {
                            return Ok(());
                        }
                    } else {
                        if buf.len() + chunk.len() > MAX_BATCH_BYTES {
                            return Err(ClientError::Protocol("poll body too large".into()));
                        }
                        buf.extend_from_slice(&chunk);
                    }
                }
            }
        }
    }

    /// Hands the body frames that already arrived to the parser (before a close drops them).
    fn take_buffered(&mut self, cx: &mut ClientCtx, out: &mut Vec<Event>) {
        use futures_util::FutureExt;
        for _ in 0..1024 {
            let Some(Pending::Body(..)) = self.pending else {
                return;
            };
            match self.advance(cx, out).now_or_never() {
                Some(Ok(())) => continue,
                _ => return,
            }
        }
    }
}

impl Subscriber for H2Sub {
    async fn open(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        if self.streaming() {
            self.stream = StreamingSub::new(self.transport);
            self.send(cx, cursor).await?;
            // Wait for the head: a refused subscription is an error of `open`.
            while let Some(Pending::Head(_)) = self.pending {
                self.advance(cx, out).await?;
            }
            return Ok(());
        }
        if self.transport == Transport::Poll && self.ticker.is_none() {
            self.ticker = Some(poll_ticker(self.first_tick, cx.s.poll_interval));
        }
        if self.conn.is_none() {
            self.conn = Some(cx.s.h2_pool.acquire(cx).await?);
        }
        Ok(())
    }

    async fn next(
        &mut self,
        cx: &mut ClientCtx,
        cursor: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        if !self.streaming() && self.pending.is_none() {
            if let Some(t) = self.ticker.as_mut().filter(|_| !self.again) {
                t.tick().await;
            }
            self.again = false;
            self.send(cx, cursor).await?;
        }
        self.advance(cx, out).await
    }

    async fn close(&mut self, cx: &mut ClientCtx, out: &mut Vec<Event>) {
        self.take_buffered(cx, out);
        // Dropping the stream cancels it (RST_STREAM); the last subscriber of the connection
        // then waits for its GOAWAY and close.
        self.pending = None;
        if let Some(conn) = self.conn.take() {
            conn.close(cx.s.close_timeout).await;
        }
    }

    fn abort(&mut self, _cx: &mut ClientCtx) {
        self.pending = None;
        self.conn = None;
    }

    fn reconnect_delay(&self) -> Duration {
        self.stream.reconnect_delay()
    }
}
