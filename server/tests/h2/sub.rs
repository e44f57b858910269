//! One subscriber per transport over HTTP/2 (or wss on HTTP/1.1), reading the seqs it gets.
//!
//! ```text
//! poll/longpoll  GET /poll/t?since=C          (one stream per request, one connection)
//! sse, stream    GET /sse/t?since=C            (one long-lived stream)
//! ws on h2       HEADERS :method CONNECT :protocol websocket :path /ws/t?since=C -> 200
//! ws on h1.1+TLS GET /ws/t?since=C Upgrade: websocket -> 101
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pushlab_proto::frame::{PollBatch, SseParser};
use pushlab_proto::{Message, Transport};
use pushlab_server::testing::TestServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::link::{open, BoxIo, Link, Mode, HANG_GUARD};

/// A subscriber on one connection.
pub struct Sub {
    pub link: Link,
    /// Requests this subscriber made (one per poll; one for a stream or WebSocket).
    pub requests: u64,
    cursor: u64,
    kind: Kind,
}

struct BodySub {
    body: Incoming,
    buf: BytesMut,
    sse: Option<SseParser>,
    _send: SendRequest<Empty<Bytes>>,
}

enum Kind {
    Batch {
        send: SendRequest<Empty<Bytes>>,
        base: String,
    },
    Body(Box<BodySub>),
    Ws(Box<WebSocketStream<BoxIo>>),
}

fn path(t: Transport, topic: &str, since: u64) -> String {
    let extra = if t == Transport::LongPoll {
        "&timeout=5"
    } else {
        ""
    };
    format!("/{}/{topic}?since={since}{extra}", t.path_segment())
}

impl Sub {
    /// Subscribes to `topic` from `since` on a fresh connection.
    pub async fn open(
        server: &TestServer,
        mode: Mode,
        t: Transport,
        topic: &str,
        since: u64,
    ) -> Sub {
        let (link, io) = open(server, mode).await;
        let base = format!("{}://localhost:{}", mode.scheme(), server.addr.port());
        let kind = match (t, mode) {
            (Transport::Ws, Mode::H1Tls) => {
                let url = format!(
                    "wss://localhost:{}{}",
                    server.addr.port(),
                    path(t, topic, since)
                );
                let (ws, resp) = tokio_tungstenite::client_async(url, Box::new(io) as BoxIo)
                    .await
                    .expect("wss handshake");
                assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
                Kind::Ws(Box::new(ws))
            }
            (Transport::Ws, _) => {
                let stream =
                    extended_connect(io, &format!("{base}{}", path(t, topic, since))).await;
                let ws =
                    WebSocketStream::from_raw_socket(Box::new(stream) as BoxIo, Role::Client, None)
                        .await;
                Kind::Ws(Box::new(ws))
            }
            (_, Mode::H1Tls) => panic!("only WebSocket is tested on HTTP/1.1 here"),
            (Transport::Poll | Transport::LongPoll, _) => Kind::Batch {
                send: h2_client(io).await,
                base,
            },
            (Transport::Sse | Transport::Stream, _) => {
                let mut send = h2_client(io).await;
                let resp = get(&mut send, &format!("{base}{}", path(t, topic, since))).await;
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(resp.version(), http::Version::HTTP_2);
                Kind::Body(Box::new(BodySub {
                    body: resp.into_body(),
                    buf: BytesMut::new(),
                    sse: (t == Transport::Sse).then(|| SseParser::new(1 << 20)),
                    _send: send,
                }))
            }
        };
        let requests = u64::from(!matches!(kind, Kind::Batch { .. }));
        Sub {
            link,
            requests,
            cursor: since,
            kind,
        }
    }

    /// Reads until it has seq `last`; the seqs it got, in order of arrival.
    pub async fn read_until(&mut self, t: Transport, topic: &str, last: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        let fut = async {
            while self.cursor < last {
                for seq in self.next(t, topic).await {
                    self.cursor = seq;
                    seqs.push(seq);
                }
            }
        };
        tokio::time::timeout(HANG_GUARD, fut)
            .await
            .expect("messages in time");
        seqs
    }

    async fn next(&mut self, t: Transport, topic: &str) -> Vec<u64> {
        match &mut self.kind {
            Kind::Batch { send, base } => {
                let resp = get(send, &format!("{base}{}", path(t, topic, self.cursor))).await;
                self.requests += 1;
                assert_eq!(resp.status(), StatusCode::OK);
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                let batch = PollBatch::parse(&body).expect("a poll batch");
                if batch.messages.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                batch.messages.iter().map(|m| m.seq).collect()
            }
            Kind::Body(b) => {
                let BodySub { body, buf, sse, .. } = &mut **b;
                let frame = body
                    .frame()
                    .await
                    .expect("the stream goes on")
                    .expect("a frame");
                let Ok(data) = frame.into_data() else {
                    return Vec::new();
                };
                let mut seqs = Vec::new();
                match sse {
                    Some(p) => {
                        p.push(&data);
                        while let Some(ev) = p.next_event().expect("valid event stream") {
                            seqs.push(Message::parse(ev.data.as_bytes()).expect("MESSAGE").seq);
                        }
                    }
                    None => {
                        buf.extend_from_slice(&data);
                        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                            let line = buf.split_to(nl + 1);
                            if nl > 0 {
                                seqs.push(Message::parse(&line[..nl]).expect("MESSAGE").seq);
                            }
                        }
                    }
                }
                seqs
            }
            Kind::Ws(ws) => match ws
                .next()
                .await
                .expect("the socket goes on")
                .expect("a frame")
            {
                WsMessage::Text(text) => {
                    vec![Message::parse(text.as_bytes()).expect("MESSAGE").seq]
                }
                _ => Vec::new(),
            },
        }
    }

    /// Reads until the server ends the subscription: `"end"` for a stream that ended properly
    /// (END_STREAM), `"close CODE"` for a WebSocket close frame, `"broken: ..."` otherwise.
    pub async fn read_end(&mut self) -> String {
        let fut = async {
            match &mut self.kind {
                Kind::Batch { .. } => "not a stream".to_string(),
                Kind::Body(b) => loop {
                    match b.body.frame().await {
                        None => return "end".to_string(),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return format!("broken: {e}"),
                    }
                },
                Kind::Ws(ws) => loop {
                    match ws.next().await {
                        Some(Ok(WsMessage::Close(f))) => {
                            // Sends the close reply tungstenite queued (RFC 6455 §5.5.1).
                            let _ = ws.flush().await;
                            return format!("close {}", f.map_or(0, |f| u16::from(f.code)));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return format!("broken: {e}"),
                        None => return "broken: no close frame".to_string(),
                    }
                },
            }
        };
        tokio::time::timeout(HANG_GUARD, fut)
            .await
            .expect("the end in time")
    }

    /// Ends the subscription (WebSocket close handshake; a stream is cancelled) and closes the
    /// connection after reading all the server wrote.
    pub async fn close(self) -> Link {
        if let Kind::Ws(mut ws) = self.kind {
            let _ = ws.send(WsMessage::Close(None)).await;
            // The server's close frame, then the end of the stream.
            while let Some(Ok(_)) = tokio::time::timeout(HANG_GUARD, ws.next())
                .await
                .expect("close")
            {}
        } else {
            drop(self.kind);
        }
        self.link.close().await;
        self.link
    }
}

/// An HTTP/2 client connection (hyper) on `io`, driven by its own task.
pub async fn h2_client<I>(io: I) -> SendRequest<Empty<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// `GET url` on `send`.
pub async fn get(send: &mut SendRequest<Empty<Bytes>>, url: &str) -> hyper::Response<Incoming> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(url)
        .body(Empty::new())
        .unwrap();
    tokio::time::timeout(HANG_GUARD, send.send_request(req))
        .await
        .expect("response in time")
        .expect("a response")
}

/// Opens an RFC 8441 WebSocket stream to `url` (the h2 crate: hyper's client cannot wait for
/// the server's SETTINGS_ENABLE_CONNECT_PROTOCOL before it sends).
pub async fn extended_connect<I>(io: I, url: &str) -> H2Stream
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::handshake(io).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = tokio::time::timeout(HANG_GUARD, send.ready())
        .await
        .expect("ready in time")
        .expect("ready");
    // RFC 8441 §3: the client waits for the server's SETTINGS before using :protocol.
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while !send.is_extended_connect_protocol_enabled() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no SETTINGS_ENABLE_CONNECT_PROTOCOL"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(url)
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let (resp, send_stream) = send.send_request(req, false).expect("CONNECT sent");
    let resp = tokio::time::timeout(HANG_GUARD, resp)
        .await
        .expect("answer in time")
        .expect("an answer");
    assert_eq!(resp.status(), StatusCode::OK, "RFC 8441 §5: 200, not 101");
    H2Stream {
        send: send_stream,
        recv: resp.into_body(),
        pending: Bytes::new(),
    }
}

/// An HTTP/2 stream as a byte stream (what tokio-tungstenite runs on).
pub struct H2Stream {
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    pending: Bytes,
}

fn h2_io(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = data;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(h2_io(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.send.reserve_capacity(buf.len());
        match self.send.poll_capacity(cx) {
            Poll::Ready(Some(Ok(n))) => {
                let n = n.min(buf.len());
                self.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(h2_io)?;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Err(h2_io(e))),
            Poll::Ready(None) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => Poll::Pending,
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
