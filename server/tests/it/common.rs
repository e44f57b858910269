//! What every test stands on: the shared in-process server fixture
//! ([`pushlab_server::testing`]: 127.0.0.1:0, a shutdown the test holds, a watch for server
//! panics that `TestServer::stop` checks), the tests' fast settings, plain HTTP helpers over
//! a byte-counted socket and a /metrics reader.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use pushlab_proto::{ByteCounter, CountingIo, Transport};
use pushlab_server::ServerConfig;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A guard against hangs, never a performance claim.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// The client side of a socket: bytes counted both ways, as the loadgen counts them.
pub type Io = CountingIo<TcpStream, Arc<ByteCounter>>;

pub use pushlab_server::testing::start_server;

/// Settings that keep tests fast: short heartbeats and timeouts, no ticker.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        history: 4096,
        max_subscriber_lag: 4096,
        tick_rate: 0.0,
        // hyper's header timer also closes idle keep-alive connections; on a loaded 2-core
        // machine a poll client's next request can come a second late, so it stays long here
        // (the slow-sender test sets its own).
        header_read_timeout: Duration::from_secs(10),
        default_longpoll_timeout: Duration::from_secs(5),
        heartbeat_interval: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(4),
        ..ServerConfig::default()
    }
}

/// An HTTP/1.1 client connection over a counted socket.
pub struct HttpConn {
    pub send: SendRequest<Full<Bytes>>,
    pub wire: Arc<ByteCounter>,
    pub task: JoinHandle<()>,
}

pub async fn http_conn(addr: SocketAddr) -> HttpConn {
    http_conn_with(addr, None).await
}

/// A client socket; `recv_buffer_bytes` pins its receive buffer (no autotuning) so that a
/// reader that stops reading backs up into the server quickly.
pub async fn tcp_connect(addr: SocketAddr, recv_buffer_bytes: Option<u32>) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(n) = recv_buffer_bytes {
        socket.set_recv_buffer_size(n).unwrap();
    }
    let tcp = socket.connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    tcp
}

pub async fn http_conn_with(addr: SocketAddr, recv_buffer_bytes: Option<u32>) -> HttpConn {
    let tcp = tcp_connect(addr, recv_buffer_bytes).await;
    let wire = Arc::new(ByteCounter::default());
    let io = TokioIo::new(CountingIo::new(tcp, wire.clone()));
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("http1 handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    HttpConn { send, wire, task }
}

impl HttpConn {
    /// Sends one request and reads the whole response.
    pub async fn request(&mut self, req: Request<Full<Bytes>>) -> Response<Bytes> {
        let fut = async {
            self.send.ready().await.expect("connection ready");
            let resp = self.send.send_request(req).await.expect("response");
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.expect("response body").to_bytes();
            Response::from_parts(parts, body)
        };
        tokio::time::timeout(HANG_GUARD, fut)
            .await
            .expect("request hung")
    }

    /// Closes the connection from the client side and waits until the socket is gone.
    pub async fn close(self) {
        drop(self.send);
        let _ = tokio::time::timeout(HANG_GUARD, self.task).await;
    }
}

/// A request with an empty body, or the given one.
pub fn req(method: Method, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .body(Full::new(body.into()))
        .unwrap()
}

/// One request on a fresh connection.
pub async fn fetch(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Bytes> {
    let mut c = http_conn(addr).await;
    let r = c.request(req).await;
    c.close().await;
    r
}

pub async fn get(addr: SocketAddr, path: &str) -> Response<Bytes> {
    fetch(addr, req(Method::GET, path, Bytes::new())).await
}

/// Asserts `status` and a JSON body `{"error": "<non-empty>"}`.
pub fn assert_json_error(r: &Response<Bytes>, status: StatusCode, what: &str) {
    assert_eq!(r.status(), status, "{what}: body {:?}", r.body());
    assert_eq!(
        r.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..]),
        "{what}: content-type"
    );
    let v: serde_json::Value = serde_json::from_slice(r.body())
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {:?}", r.body()));
    let obj = v.as_object().expect("error body is an object");
    assert_eq!(obj.len(), 1, "{what}: {v}");
    assert!(
        obj["error"].as_str().is_some_and(|s| !s.is_empty()),
        "{what}: {v}"
    );
}

/// Publishes over one keep-alive connection.
pub struct Publisher {
    conn: HttpConn,
    topic: String,
}

impl Publisher {
    pub async fn new(addr: SocketAddr, topic: &str) -> Self {
        Publisher {
            conn: http_conn(addr).await,
            topic: topic.to_string(),
        }
    }

    /// Publishes `data`; its seq.
    pub async fn publish(&mut self, data: &str) -> u64 {
        let path = format!("/publish/{}", self.topic);
        let r = self
            .conn
            .request(req(Method::POST, &path, data.to_string()))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "publish: {:?}", r.body());
        #[derive(serde::Deserialize)]
        struct Accepted {
            seq: u64,
        }
        serde_json::from_slice::<Accepted>(r.body()).unwrap().seq
    }

    /// Publishes `n` messages as fast as one connection goes; the last seq.
    pub async fn publish_n(&mut self, n: u64) -> u64 {
        let mut last = 0;
        for i in 0..n {
            last = self.publish(&sample_data(i)).await;
        }
        last
    }

    pub async fn close(self) {
        self.conn.close().await;
    }
}

/// The newest seq of `topic`, as a poll without `since` tells it.
pub async fn latest_seq(addr: SocketAddr, topic: &str) -> u64 {
    let r = get(addr, &format!("/poll/{topic}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    pushlab_proto::frame::PollBatch::parse(r.body())
        .unwrap()
        .next
}

/// Publishes `n` messages (data [`sample_data`]) as WebSocket text frames, as fast as the
/// socket takes them (no round trip per message), then waits until the last one is back on
/// the same socket: the feed holds them all. The seq of the last one.
pub async fn ws_publish_n(addr: SocketAddr, topic: &str, n: u64) -> u64 {
    let latest = latest_seq(addr, topic).await;
    let mut ws = crate::client::Subscriber::connect(addr, Transport::Ws, topic, Some(latest))
        .await
        .expect("ws publisher");
    let start = ws.track.cursor;
    for i in 0..n {
        ws.ws_send(sample_data(i)).await;
    }
    ws.read_until(start + n).await;
    let track = ws.close().await;
    track.assert_clean("ws publisher");
    start + n
}

/// Message data with the characters JSON must escape, multi-byte UTF-8 and a newline (SSE
/// splits data on newlines), so byte identity is tested on awkward input.
pub fn sample_data(i: u64) -> String {
    format!("m{i} \"q\" \\ é ✓ \n\t {}", "x".repeat((i % 7) as usize))
}

/// Every `pushlab_*` sample of a /metrics scrape, by its full name with labels.
pub async fn scrape(addr: SocketAddr) -> std::collections::HashMap<String, f64> {
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = std::str::from_utf8(r.body()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `name{transport="t"}` from a scrape (missing is a test failure).
pub fn sample(m: &std::collections::HashMap<String, f64>, name: &str, t: &str) -> u64 {
    let key = format!("{name}{{transport=\"{t}\"}}");
    *m.get(&key)
        .unwrap_or_else(|| panic!("/metrics lacks {key}")) as u64
}

/// Scrapes until `pushlab_open_connections{transport=t}` is 0; the last scrape.
pub async fn until_closed(
    addr: SocketAddr,
    t: Transport,
) -> std::collections::HashMap<String, f64> {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let m = scrape(addr).await;
        if sample(&m, "pushlab_open_connections", t.as_str()) == 0 {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{t} connections never closed on the server"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Generates one `#[tokio::test]` per transport from `async fn $name(t: Transport)`.
#[macro_export]
macro_rules! per_transport {
    ($name:ident) => {
        mod $name {
            use pushlab_proto::Transport;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn poll() {
                super::$name(Transport::Poll).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn longpoll() {
                super::$name(Transport::LongPoll).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sse() {
                super::$name(Transport::Sse).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stream() {
                super::$name(Transport::Stream).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ws() {
                super::$name(Transport::Ws).await
            }
        }
    };
}
