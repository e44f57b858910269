//! Publish to receive over 127.0.0.1, one message per round, and the floor beside it.
//!
//! The server is the real one (the shared fixture, [`pushlab_server::testing::start_server`]
//! with [`crate::bench_config`], on `127.0.0.1:0`), in-process
//! on the bench's current-thread tokio runtime, beside the clients: each round is then one
//! thread's straight path through client, kernel loopback and server, with no cross-thread
//! wake-ups whose cost would depend on what else the (shared, 2-core) machine is running. The clients are deliberately minimal but real: raw HTTP/1.1
//! over a `TcpStream` (responses parsed with `httparse`, chunked bodies decoded) and
//! tokio-tungstenite for WebSocket, driven directly by the bench task so a client library's
//! own task hops do not blur what the transport costs.
//!
//! ```text
//! floor     ping: MESSAGE ──> echo ──> pong: MESSAGE                (one round trip)
//! sse, stream, ws, longpoll (held)
//!           POST /publish/bench ──> server ──> MESSAGE on the open stream / held response
//! poll      POST /publish/bench <── 202, then GET /poll/bench?since=S <── batch  (two trips)
//! ```
//!
//! The clock stops when the subscriber holds the whole message; the publisher's `202` is read
//! after that, untimed. Streaming connections stay open across rounds; poll and long-poll
//! requests reuse one keep-alive connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use pushlab_proto::{encode_message, Transport};
use pushlab_server::testing::TestServer;
use pushlab_server::Shared;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{data_of, seq_in, thread_cpu_now, TOPIC};

/// What one round cost: publish-to-receive time, and the CPU time the bench thread (client,
/// server, and the kernel's loopback work on their behalf, all on a current-thread runtime)
/// spent meanwhile.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub wall: Duration,
    pub cpu: Duration,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        self.wall += other.wall;
        self.cpu += other.cpu;
    }
}

struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            cpu: thread_cpu_now(),
            wall: Instant::now(),
        }
    }

    fn stop(&self) -> Cost {
        let wall = self.wall.elapsed();
        Cost {
            wall,
            cpu: thread_cpu_now() - self.cpu,
        }
    }
}

/// Longest any wait may take before the bench gives up (a hang guard, not a measurement).
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// The head of an HTTP response.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<usize>,
    pub chunked: bool,
}

/// A raw HTTP/1.1 client connection.
pub struct HttpConn {
    stream: TcpStream,
    buf: BytesMut,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> HttpConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        HttpConn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    async fn fill(&mut self) {
        let n = tokio::time::timeout(HANG_LIMIT, self.stream.read_buf(&mut self.buf))
            .await
            .expect("server silent")
            .expect("read");
        assert!(n > 0, "server closed the connection");
    }

    pub async fn read_head(&mut self) -> Head {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) =
                response.parse(&self.buf).expect("a valid response head")
            {
                let mut head = Head {
                    status: response.code.unwrap_or(0),
                    content_length: None,
                    chunked: false,
                };
                for h in response.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        head.content_length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok());
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        head.chunked = h.value.eq_ignore_ascii_case(b"chunked");
                    }
                }
                self.buf.advance(len);
                return head;
            }
            self.fill().await;
        }
    }

    async fn read_exact(&mut self, len: usize) -> Bytes {
        while self.buf.len() < len {
            self.fill().await;
        }
        self.buf.split_to(len).freeze()
    }

    /// A whole response with a `content-length` body: (status, body).
    pub async fn read_response(&mut self) -> (u16, Bytes) {
        let head = self.read_head().await;
        let len = head.content_length.expect("a content-length body");
        (head.status, self.read_exact(len).await)
    }

    /// The next chunk of a chunked body (panics on the last chunk: streams do not end here).
    pub async fn next_chunk(&mut self) -> Bytes {
        let line_end = loop {
            if let Some(i) = memchr::memmem::find(&self.buf, b"\r\n") {
                break i;
            }
            self.fill().await;
        };
        let size_text = std::str::from_utf8(&self.buf[..line_end]).expect("chunk size");
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).expect("hex chunk size");
        assert!(size > 0, "the stream ended");
        self.buf.advance(line_end + 2);
        let data = self.read_exact(size).await;
        let crlf = self.read_exact(2).await;
        assert_eq!(&crlf[..], b"\r\n", "chunk not followed by CRLF");
        data
    }
}

fn publish_request(data: &str) -> Vec<u8> {
    let mut r = format!(
        "POST /publish/{TOPIC} HTTP/1.1\r\nhost: bench\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        data.len()
    )
    .into_bytes();
    r.extend_from_slice(data.as_bytes());
    r
}

/// The `seq` of a publish answer `{"seq":N}`.
fn published_seq(status: u16, body: &[u8]) -> u64 {
    assert_eq!(
        status,
        202,
        "publish refused: {}",
        String::from_utf8_lossy(body)
    );
    seq_in(body).expect("publish answer carries a seq")
}

/// A chunked text stream (SSE or NDJSON) split into events at `separator`.
pub struct StreamSub {
    conn: HttpConn,
    separator: &'static [u8],
    pending: BytesMut,
}

impl StreamSub {
    async fn open(addr: SocketAddr, path: &str, separator: &'static [u8]) -> StreamSub {
        let mut conn = HttpConn::connect(addr).await;
        conn.send(format!("GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n").as_bytes())
            .await;
        let head = conn.read_head().await;
        assert!(
            head.status == 200 && head.chunked,
            "stream refused: {head:?}"
        );
        StreamSub {
            conn,
            separator,
            pending: BytesMut::new(),
        }
    }

    /// The next event that carries a message (heartbeats and the SSE `retry:` are skipped).
    async fn next_message(&mut self) -> Bytes {
        loop {
            if let Some(i) = memchr::memmem::find(&self.pending, self.separator) {
                let event = self.pending.split_to(i + self.separator.len()).freeze();
                if seq_in(&event).is_some() {
                    return event;
                }
                continue;
            }
            let chunk = self.conn.next_chunk().await;
            self.pending.extend_from_slice(&chunk);
        }
    }
}

/// One subscriber of one transport.
pub enum Subscriber {
    Poll(HttpConn),
    LongPoll(HttpConn),
    Sse(StreamSub),
    Stream(StreamSub),
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// A publisher and one subscriber of `transport` on `server`: one message per round.
pub struct E2eRig {
    transport: Transport,
    shared: Arc<Shared>,
    publisher: HttpConn,
    subscriber: Subscriber,
    /// The last seq the subscriber holds.
    cursor: u64,
    publish: Vec<u8>,
}

impl E2eRig {
    /// Connects (and, for streaming transports, subscribes) on the current runtime.
    pub async fn new(server: &TestServer, transport: Transport, data_bytes: usize) -> E2eRig {
        let addr = server.addr;
        let topic = server.shared.feed.topic(TOPIC).expect("topic");
        let subscriber = match transport {
            Transport::Poll => Subscriber::Poll(HttpConn::connect(addr).await),
            Transport::LongPoll => Subscriber::LongPoll(HttpConn::connect(addr).await),
            Transport::Sse => Subscriber::Sse(StreamSub::open(addr, "/sse/bench", b"\n\n").await),
            Transport::Stream => {
                Subscriber::Stream(StreamSub::open(addr, "/stream/bench", b"\n").await)
            }
            Transport::Ws => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                // The server's buffer sizes: tungstenite zero-fills its whole read buffer
                // (128 KiB by default) before every read, which would bill the client's
                // memset to the transport.
                let config = pushlab_server::transport::ws::ws_config(64 * 1024);
                let (ws, _) = tokio_tungstenite::client_async_with_config(
                    format!("ws://{addr}/ws/bench"),
                    tcp,
                    Some(config),
                )
                .await
                .expect("websocket handshake");
                Subscriber::Ws(Box::new(ws))
            }
        };
        let mut rig = E2eRig {
            transport,
            shared: server.shared.clone(),
            publisher: HttpConn::connect(addr).await,
            subscriber,
            cursor: topic.latest_seq(),
            publish: publish_request(&data_of(data_bytes)),
        };
        // One round so every connection is warm and a streaming subscription surely open.
        rig.round().await;
        rig
    }

    /// One publish received by the subscriber; returns what it cost.
    pub async fn round(&mut self) -> Cost {
        let since = self.cursor;
        if let Subscriber::LongPoll(conn) = &mut self.subscriber {
            // The held request goes out untimed; the round starts once the server has it.
            let requests = &self.shared.metrics.transport(Transport::LongPoll).requests;
            let asked = requests.load(Ordering::Relaxed);
            let request = format!(
                "GET /longpoll/{TOPIC}?since={since}&timeout=120 HTTP/1.1\r\nhost: bench\r\n\r\n"
            );
            conn.send(request.as_bytes()).await;
            let started = Instant::now();
            while requests.load(Ordering::Relaxed) == asked {
                assert!(started.elapsed() < HANG_LIMIT, "long poll never arrived");
                tokio::task::yield_now().await;
            }
        }
        let t0 = Stopwatch::start();
        self.publisher.send(&self.publish).await;
        let (elapsed, got) = match &mut self.subscriber {
            Subscriber::Poll(conn) => {
                let (status, body) = self.publisher.read_response().await;
                let seq = published_seq(status, &body);
                let request =
                    format!("GET /poll/{TOPIC}?since={since} HTTP/1.1\r\nhost: bench\r\n\r\n");
                conn.send(request.as_bytes()).await;
                let (status, batch) = conn.read_response().await;
                let elapsed = t0.stop();
                assert_eq!(status, 200);
                assert_eq!(seq_in(&batch), Some(seq), "poll batch lacks seq {seq}");
                self.cursor = seq;
                return elapsed;
            }
            Subscriber::LongPoll(conn) => {
                let (status, batch) = conn.read_response().await;
                assert_eq!(status, 200);
                (t0.stop(), seq_in(&batch))
            }
            Subscriber::Sse(sub) | Subscriber::Stream(sub) => {
                let event = sub.next_message().await;
                (t0.stop(), seq_in(&event))
            }
            Subscriber::Ws(ws) => {
                let msg = tokio::time::timeout(HANG_LIMIT, ws.next())
                    .await
                    .expect("server silent")
                    .expect("websocket open")
                    .expect("websocket frame");
                let Message::Text(text) = msg else {
                    panic!("expected a text frame, got {msg:?}")
                };
                (t0.stop(), seq_in(text.as_bytes()))
            }
        };
        let (status, body) = self.publisher.read_response().await;
        let seq = published_seq(status, &body);
        assert_eq!(got, Some(seq), "{} delivered {got:?}", self.transport);
        self.cursor = seq;
        elapsed
    }
}

/// The floor: a TCP ping-pong of one encoded message against an echo task.
pub struct Floor {
    stream: TcpStream,
    ping: Bytes,
    pong: Vec<u8>,
}

impl Floor {
    /// Spawns the echo task on the current runtime and connects to it.
    pub async fn new(data_bytes: usize) -> Floor {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let ping = encode_message(
            TOPIC,
            1,
            pushlab_server::feed::now_ns(),
            &data_of(data_bytes),
        )
        .bytes;
        let pong = vec![0u8; ping.len()];
        Floor { stream, ping, pong }
    }

    /// Bytes sent each way per round.
    pub fn message_bytes(&self) -> usize {
        self.ping.len()
    }

    /// One round trip.
    pub async fn round(&mut self) -> Cost {
        let t0 = Stopwatch::start();
        self.stream.write_all(&self.ping).await.expect("ping");
        self.stream.read_exact(&mut self.pong).await.expect("pong");
        let elapsed = t0.stop();
        debug_assert_eq!(self.pong[..], self.ping[..]);
        elapsed
    }
}
