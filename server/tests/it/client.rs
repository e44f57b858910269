//! A test-side subscriber for each of the five transports, behind one type.
//!
//! Every client counts the bytes on its own socket (`CountingIo`), parses what arrives with
//! pushlab-proto (`PollBatch`, `SseParser`, NDJSON lines, WebSocket text frames) and feeds a
//! [`Tracker`] that checks seq order: each message must be `cursor + 1`, each gap notice must
//! start at `cursor + 1`; anything else (a duplicate, a hole, a reordering) is recorded as a
//! problem. The raw MESSAGE bytes of each delivery are kept so tests can compare transports.
//!
//! ```text
//! poll/longpoll  GET /poll/t?since=C   -> {"next":N,"gap":{..}?,"messages":[MESSAGE,..]}
//! sse            GET /sse/t + Last-Event-ID: C -> id: S\ndata: MESSAGE\n\n | event: gap
//! stream         GET /stream/t?since=C -> MESSAGE\n | {"gap":{..}}\n
//! ws             GET /ws/t?since=C + Upgrade -> text frames MESSAGE | {"gap":{..}}
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pushlab_proto::frame::{GapNotice, PollBatch, SseParser};
use pushlab_proto::{ByteCounter, CountingIo, Gap, Message, Transport};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::common::{http_conn_with, req, tcp_connect, HttpConn, Io, HANG_GUARD};

/// Long-poll hold the clients ask for.
pub const LONGPOLL_TIMEOUT_S: u64 = 5;

/// One thing a subscriber received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A message: its seq and its exact MESSAGE bytes.
    Msg(u64, Bytes),
    Gap(Gap),
}

/// How a subscription ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A stream's body ended properly (hyper saw the last chunk `0\r\n\r\n`).
    BodyEnd,
    /// A WebSocket close frame with this code.
    WsClose(Option<u16>),
    /// The socket ended without a proper end (EOF, reset, protocol error).
    Broken(String),
}

/// What one read gave.
#[derive(Debug)]
pub enum Event {
    Items(Vec<Item>),
    End(Ending),
}

/// Seq bookkeeping of one subscriber, across reconnects.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Last seq covered (by a message or a gap).
    pub cursor: u64,
    pub messages: u64,
    pub gaps: Vec<Gap>,
    pub problems: Vec<String>,
    /// MESSAGE bytes by seq, when asked to keep them.
    pub raw: Option<BTreeMap<u64, Bytes>>,
}

impl Tracker {
    fn take(&mut self, item: &Item) {
        match item {
            Item::Msg(seq, raw) => {
                if *seq != self.cursor + 1 {
                    self.problems
                        .push(format!("got seq {seq} after {}", self.cursor));
                }
                self.messages += 1;
                self.cursor = self.cursor.max(*seq);
                if let Some(map) = &mut self.raw {
                    map.insert(*seq, raw.clone());
                }
            }
            Item::Gap(g) => {
                if g.from != self.cursor + 1 || g.to < g.from || g.missed != g.to - g.from + 1 {
                    self.problems
                        .push(format!("gap {g:?} after cursor {}", self.cursor));
                }
                self.gaps.push(*g);
                self.cursor = self.cursor.max(g.to);
            }
        }
    }

    /// Panics unless everything arrived in order, exactly once, without gaps.
    pub fn assert_clean(&self, what: &str) {
        assert!(self.problems.is_empty(), "{what}: {:?}", self.problems);
        assert!(self.gaps.is_empty(), "{what}: gaps {:?}", self.gaps);
    }
}

enum Conn {
    /// Poll and long poll: one keep-alive connection, one request per batch.
    Batch(HttpConn),
    /// SSE and stream: one long response.
    Body {
        conn: HttpConn,
        body: Incoming,
        buf: BytesMut,
        sse: Option<Box<SseParser>>,
    },
    Ws(Box<WebSocketStream<Io>>),
    Closed,
}

/// A subscriber on one transport.
pub struct Subscriber {
    pub transport: Transport,
    pub topic: String,
    /// Bytes on this subscriber's current socket.
    pub wire: Arc<ByteCounter>,
    pub track: Tracker,
    /// Requests sent (poll and long poll: one per batch).
    pub requests: u64,
    /// Sleep between empty short polls.
    pub poll_pause: Duration,
    conn: Conn,
}

/// Why a subscription could not be opened: the HTTP status and body.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Subscriber {
    /// Subscribes to `topic` after `since` (`None`: only new messages). Streams and WebSockets
    /// are open (headers or 101 received) when this returns; poll clients send their first
    /// request on the first [`Subscriber::next`].
    pub async fn connect(
        addr: SocketAddr,
        transport: Transport,
        topic: &str,
        since: Option<u64>,
    ) -> Result<Subscriber, Refused> {
        Self::resume(addr, transport, topic, since, Tracker::default()).await
    }

    /// Like [`Subscriber::connect`], carrying on the bookkeeping of an earlier connection.
    pub async fn resume(
        addr: SocketAddr,
        transport: Transport,
        topic: &str,
        since: Option<u64>,
        track: Tracker,
    ) -> Result<Subscriber, Refused> {
        Self::open(addr, transport, topic, since, track, None).await
    }

    /// Like [`Subscriber::connect`] with a small, fixed socket receive buffer: when this
    /// subscriber stops reading, the server soon cannot write either.
    pub async fn connect_small_buffer(
        addr: SocketAddr,
        transport: Transport,
        topic: &str,
        since: Option<u64>,
    ) -> Result<Subscriber, Refused> {
        Self::open(
            addr,
            transport,
            topic,
            since,
            Tracker::default(),
            Some(16 * 1024),
        )
        .await
    }

    async fn open(
        addr: SocketAddr,
        transport: Transport,
        topic: &str,
        since: Option<u64>,
        track: Tracker,
        recv_buffer_bytes: Option<u32>,
    ) -> Result<Subscriber, Refused> {
        let mut s = Subscriber {
            transport,
            topic: topic.to_string(),
            wire: Arc::default(),
            track,
            requests: 0,
            poll_pause: Duration::from_millis(2),
            conn: Conn::Closed,
        };
        if let Some(since) = since {
            s.track.cursor = since;
        }
        match transport {
            Transport::Poll | Transport::LongPoll => {
                let conn = http_conn_with(addr, recv_buffer_bytes).await;
                s.wire = conn.wire.clone();
                s.conn = Conn::Batch(conn);
                if since.is_none() {
                    // Where "only new messages" starts: a poll without since says.
                    let r = s.batch_request(None, Transport::Poll).await?;
                    s.track.cursor = r.0.next;
                }
            }
            Transport::Sse | Transport::Stream => {
                let mut conn = http_conn_with(addr, recv_buffer_bytes).await;
                s.wire = conn.wire.clone();
                let mut r = req(
                    Method::GET,
                    &match (transport, since) {
                        (Transport::Stream, Some(c)) => format!("/stream/{topic}?since={c}"),
                        (Transport::Stream, None) => format!("/stream/{topic}"),
                        _ => format!("/sse/{topic}"),
                    },
                    Bytes::new(),
                );
                if let (Transport::Sse, Some(c)) = (transport, since) {
                    r.headers_mut()
                        .insert("last-event-id", c.to_string().parse().unwrap());
                }
                let resp = tokio::time::timeout(HANG_GUARD, async {
                    conn.send.ready().await.expect("ready");
                    conn.send.send_request(r).await.expect("response head")
                })
                .await
                .expect("subscribe hung");
                s.requests += 1;
                let (parts, body) = resp.into_parts();
                if parts.status != StatusCode::OK {
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    return Err(Refused {
                        status: parts.status,
                        body,
                    });
                }
                assert_eq!(
                    parts.headers.get("transfer-encoding").map(|v| v.as_bytes()),
                    Some(&b"chunked"[..]),
                    "{transport} responses are chunked"
                );
                s.conn = Conn::Body {
                    conn,
                    body,
                    buf: BytesMut::new(),
                    sse: (transport == Transport::Sse).then(|| Box::new(SseParser::new(1 << 20))),
                };
            }
            Transport::Ws => {
                let tcp = tcp_connect(addr, recv_buffer_bytes).await;
                let io = CountingIo::new(tcp, s.wire.clone());
                let url = match since {
                    Some(c) => format!("ws://{addr}/ws/{topic}?since={c}"),
                    None => format!("ws://{addr}/ws/{topic}"),
                };
                let res =
                    tokio::time::timeout(HANG_GUARD, tokio_tungstenite::client_async(url, io))
                        .await
                        .expect("ws handshake hung");
                s.requests += 1;
                match res {
                    Ok((ws, _resp)) => s.conn = Conn::Ws(Box::new(ws)),
                    Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                        let (parts, body) = resp.into_parts();
                        return Err(Refused {
                            status: parts.status,
                            body: body.map(Bytes::from).unwrap_or_default(),
                        });
                    }
                    Err(e) => panic!("ws handshake: {e}"),
                }
            }
        }
        Ok(s)
    }

    /// Keeps the raw MESSAGE bytes of every delivery in `track.raw`.
    pub fn keep_raw(mut self) -> Self {
        self.track.raw = Some(BTreeMap::new());
        self
    }

    async fn batch_request(
        &mut self,
        since: Option<u64>,
        as_transport: Transport,
    ) -> Result<(PollBatch, Vec<Item>), Refused> {
        let topic = &self.topic;
        let path = match (as_transport, since) {
            (Transport::LongPoll, Some(c)) => {
                format!("/longpoll/{topic}?since={c}&timeout={LONGPOLL_TIMEOUT_S}")
            }
            (Transport::LongPoll, None) => {
                format!("/longpoll/{topic}?timeout={LONGPOLL_TIMEOUT_S}")
            }
            (_, Some(c)) => format!("/poll/{topic}?since={c}"),
            (_, None) => format!("/poll/{topic}"),
        };
        let Conn::Batch(conn) = &mut self.conn else {
            panic!("not a batch connection")
        };
        let r = conn.request(req(Method::GET, &path, Bytes::new())).await;
        self.requests += 1;
        if r.status() != StatusCode::OK {
            let (parts, body) = r.into_parts();
            return Err(Refused {
                status: parts.status,
                body,
            });
        }
        let batch = PollBatch::parse(r.body()).expect("poll body is a PollBatch");
        // The same body once more, keeping each message's exact bytes.
        #[derive(serde::Deserialize)]
        struct RawBatch<'a> {
            #[serde(borrow)]
            messages: Vec<&'a RawValue>,
        }
        let raw: RawBatch = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(raw.messages.len(), batch.messages.len());
        let mut items: Vec<Item> = batch.gap.map(Item::Gap).into_iter().collect();
        for (m, raw) in batch.messages.iter().zip(&raw.messages) {
            items.push(Item::Msg(
                m.seq,
                Bytes::copy_from_slice(raw.get().as_bytes()),
            ));
        }
        for item in &items {
            self.track.take(item);
        }
        if let Some(last) = batch.messages.last() {
            assert_eq!(batch.next, last.seq, "next is the last message's seq");
        } else if let Some(g) = batch.gap {
            assert_eq!(batch.next, g.to, "next after a gap alone is the gap's end");
        }
        self.track.cursor = batch.next;
        Ok((batch, items))
    }

    /// The next thing the transport delivers: one poll batch (possibly empty), or whatever
    /// whole events one read of the stream completes.
    pub async fn next(&mut self) -> Event {
        match self.transport {
            Transport::Poll | Transport::LongPoll => {
                let cursor = self.track.cursor;
                match self.batch_request(Some(cursor), self.transport).await {
                    Ok((b, items)) => {
                        if b.messages.is_empty()
                            && b.gap.is_none()
                            && self.transport == Transport::Poll
                        {
                            tokio::time::sleep(self.poll_pause).await;
                        }
                        Event::Items(items)
                    }
                    Err(r) => {
                        Event::End(Ending::Broken(format!("status {} {:?}", r.status, r.body)))
                    }
                }
            }
            Transport::Sse | Transport::Stream => self.next_body().await,
            Transport::Ws => self.next_ws().await,
        }
    }

    async fn next_body(&mut self) -> Event {
        let Conn::Body { body, buf, sse, .. } = &mut self.conn else {
            return Event::End(Ending::Broken("closed".into()));
        };
        loop {
            let mut items = Vec::new();
            if let Some(p) = sse {
                while let Some(ev) = p.next_event().expect("valid event stream") {
                    if ev.event.as_deref() == Some("gap") {
                        let n: GapNotice = serde_json::from_str(&ev.data).expect("gap data");
                        assert_eq!(ev.id, Some(n.gap.to.to_string()), "gap event id");
                        items.push(Item::Gap(n.gap));
                    } else {
                        let raw = Bytes::from(ev.data.into_bytes());
                        let m = Message::parse(&raw).expect("SSE data is a MESSAGE");
                        assert_eq!(ev.id, Some(m.seq.to_string()), "SSE id is the seq");
                        items.push(Item::Msg(m.seq, raw));
                    }
                }
            } else {
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line = buf.split_to(nl + 1).freeze();
                    let line = line.slice(..nl);
                    if line.is_empty() {
                        continue; // heartbeat
                    }
                    items.push(parse_json_item(line));
                }
            }
            if !items.is_empty() {
                for i in &items {
                    self.track.take(i);
                }
                return Event::Items(items);
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        match sse {
                            Some(p) => p.push(&data),
                            None => buf.extend_from_slice(&data),
                        }
                    }
                }
                None => return Event::End(Ending::BodyEnd),
                Some(Err(e)) => return Event::End(Ending::Broken(e.to_string())),
            }
        }
    }

    async fn next_ws(&mut self) -> Event {
        let Conn::Ws(ws) = &mut self.conn else {
            return Event::End(Ending::Broken("closed".into()));
        };
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Text(t))) => {
                    let raw = Bytes::copy_from_slice(t.as_bytes());
                    let item = parse_json_item(raw);
                    self.track.take(&item);
                    return Event::Items(vec![item]);
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    return Event::End(Ending::WsClose(frame.map(|f| u16::from(f.code))))
                }
                Some(Ok(WsMessage::Binary(_))) => panic!("the server sent a binary frame"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Event::End(Ending::Broken(e.to_string())),
                None => return Event::End(Ending::Broken("ws stream ended".into())),
            }
        }
    }

    /// Reads until the cursor reaches `seq`; panics on an end or after the hang guard.
    pub async fn read_until(&mut self, seq: u64) {
        let t = self.transport;
        tokio::time::timeout(HANG_GUARD, async {
            while self.track.cursor < seq {
                if let Event::End(e) = self.next().await {
                    panic!("{t}: subscription ended at {}: {e:?}", self.track.cursor);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{t}: stuck at {} waiting for {seq}", self.track.cursor));
    }

    /// Reads until the subscription ends; the items received meanwhile are tracked.
    pub async fn read_to_end(&mut self) -> Ending {
        let t = self.transport;
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                if let Event::End(e) = self.next().await {
                    return e;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{t}: never ended"))
    }

    /// Publishes `text` as a WebSocket text frame (ws only).
    pub async fn ws_send(&mut self, text: String) {
        let Conn::Ws(ws) = &mut self.conn else {
            panic!("not a WebSocket")
        };
        ws.send(WsMessage::Text(text.into()))
            .await
            .expect("ws send");
    }

    /// Sends a binary frame (ws only; the server speaks text).
    pub async fn ws_send_binary(&mut self, bytes: Vec<u8>) {
        let Conn::Ws(ws) = &mut self.conn else {
            panic!("not a WebSocket")
        };
        ws.send(WsMessage::Binary(bytes.into()))
            .await
            .expect("ws send");
    }

    /// Drops the socket at once, unread bytes and all (a cut connection).
    pub fn cut(&mut self) {
        match std::mem::replace(&mut self.conn, Conn::Closed) {
            Conn::Batch(c) | Conn::Body { conn: c, .. } => c.task.abort(),
            Conn::Ws(ws) => drop(ws),
            Conn::Closed => {}
        }
    }

    /// Closes cleanly from the client side (a WebSocket close handshake; for HTTP, closing the
    /// socket once everything sent has been read) and waits until the socket is gone.
    pub async fn close(mut self) -> Tracker {
        match std::mem::replace(&mut self.conn, Conn::Closed) {
            Conn::Batch(c) => c.close().await,
            Conn::Body { conn, body, .. } => {
                drop(body);
                conn.task.abort();
                let _ = conn.task.await;
            }
            Conn::Ws(mut ws) => {
                let bye = CloseFrame {
                    code: 1000.into(),
                    reason: "bye".into(),
                };
                let _ = WebSocketStream::close(&mut *ws, Some(bye)).await;
                // Read the server's close reply and the end of the socket.
                let _ = tokio::time::timeout(HANG_GUARD, async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
            Conn::Closed => {}
        }
        std::mem::take(&mut self.track)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.cut();
    }
}

/// A stream line or WebSocket text: a gap notice or a MESSAGE.
fn parse_json_item(raw: Bytes) -> Item {
    if raw.starts_with(b"{\"gap\":") {
        let n: GapNotice = serde_json::from_slice(&raw).expect("gap notice");
        Item::Gap(n.gap)
    } else {
        let m = Message::parse(&raw)
            .unwrap_or_else(|e| panic!("not a MESSAGE ({e}): {:?}", String::from_utf8_lossy(&raw)));
        Item::Msg(m.seq, raw)
    }
}
