//! The loadgen against the peer servers of `scripts/peers/` (each started by its own `run.sh` on
//! a free loopback port): 10 clients on every transport the peer serves get every message once,
//! in order, with the byte split summing exactly to the wire; the peer costed from /proc
//! (`--server-pid`: run.sh and its descendants). Plus what each peer adds to the wire: the
//! Channels tutorial's room chat reaching the feed, and its answers to bad input.
//!
//! A peer that is not installed (its venv or Debian packages; `.ci/run` installs them) prints
//! a note and passes, unless `CI` is set: then it fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pushlab_loadgen::config::RunConfig;
use pushlab_proto::Transport;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

mod common;

/// How long a peer may take to answer `GET /healthz` after its run.sh starts (Python stacks
/// start slowly on a loaded two-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A peer's run.sh in the foreground, stopped (SIGTERM) on drop.
struct Peer {
    child: Child,
    addr: SocketAddr,
    /// Released after `Drop` has stopped the peer.
    _serial: MutexGuard<'static, ()>,
}

fn scripts() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/peers"))
}

/// Where the peers' venvs live (as scripts/peers/lib/common.sh has it).
fn cache_dir() -> PathBuf {
    std::env::var_os("PUSHLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/pushlab"))
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `None` with a printed reason outside CI when `missing` names something; a failure in CI.
fn skip_unless_installed(peer: &str, missing: Option<String>) -> bool {
    let Some(what) = missing else { return false };
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install {peer}'s needs (.ci/run): missing {what}"
    );
    eprintln!("skipped {peer}: {what} is not installed (scripts/peers/{peer}/run.sh install)");
    true
}

/// One peer at a time: each peer is a tree of Python/C processes whose CPU and latency figures
/// are asserted, and two of them side by side on a 2-core CI machine starved each other (the
/// Channels Redis layer once delivered after the drain while Pushpin ran beside it).
static ONE_PEER_AT_A_TIME: Mutex<()> = Mutex::new(());

impl Peer {
    /// Starts `scripts/peers/{dir}/run.sh PORT args...` and waits for `/healthz`; holds
    /// [`ONE_PEER_AT_A_TIME`] until the peer is dropped.
    fn start(dir: &str, args: &[&str]) -> Peer {
        let serial = ONE_PEER_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(scripts().join(dir).join("run.sh"))
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting scripts/peers/{dir}/run.sh: {e}"));
        let mut peer = Peer {
            _serial: serial,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !peer.healthy() {
            if let Ok(Some(status)) = peer.child.try_wait() {
                panic!("scripts/peers/{dir}/run.sh exited before serving: {status}");
            }
            assert!(Instant::now() < deadline, "{dir} did not come up on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        peer
    }

    /// `GET /healthz` answers 200.
    fn healthy(&self) -> bool {
        self.get("/healthz")
            .is_some_and(|a| a.starts_with("HTTP/1.1 200"))
    }

    /// The whole answer to `METHOD path` with `body` (Connection: close), if any.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).ok()?;
        Some(String::from_utf8_lossy(&answer).into_owned())
    }

    fn get(&self, path: &str) -> Option<String> {
        self.request("GET", path, b"")
    }

    /// 10 clients on each of `transports`, costed from /proc through run.sh's pid.
    fn config(&self, transports: &[Transport]) -> RunConfig {
        let mut c = RunConfig::new(format!("http://{}", self.addr).parse().unwrap());
        c.transports = transports.to_vec();
        c.clients = 10;
        c.duration = Duration::from_millis(2000);
        c.warmup = Duration::from_millis(500);
        c.rate_per_s = 10.0;
        c.poll_interval = Duration::from_millis(200);
        c.server_pid = Some(self.child.id());
        c
    }

    /// A WebSocket client on `path`.
    async fn ws(
        &self,
        path: &str,
    ) -> Result<WebSocketStream<tokio::net::TcpStream>, tokio_tungstenite::tungstenite::Error> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let url = format!("ws://{}{path}", self.addr);
        Ok(tokio_tungstenite::client_async(url, tcp).await?.0)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // SIGTERM to run.sh stops the peer and what it started (Redis, zurl, ...).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every transport in `transports` clean: all delivered once in order, exact bytes, no error,
/// server cost from /proc.
async fn assert_clean_run(peer: &Peer, transports: &[Transport]) {
    let r = pushlab_loadgen::run(peer.config(transports)).await.unwrap();
    assert_eq!(r.transports.len(), transports.len());
    assert!(
        r.notes.iter().any(|n| n.contains("no /metrics")),
        "costed from /proc, with a note: {:?}",
        r.notes
    );
    for t in &r.transports {
        let name = t.transport;
        common::assert_split_exact(t);
        common::assert_delivered_once(t);
        assert_eq!(t.errors, 0, "{name}: {:?}", t.notes);
        let s = t.server.as_ref().expect("--server-pid gives a server cost");
        assert!(s.rss_bytes_before > 0, "{name}: {s:?}");
        assert!(t.server_cpu_us_per_1k_messages.is_some(), "{name}");
    }
}

fn channels_missing(layer: &str) -> Option<String> {
    let stamp = cache_dir().join("venv-channels/.requirements.sha256");
    if !stamp.exists() {
        return Some(format!("the Channels venv ({})", stamp.display()));
    }
    (layer == "redis" && !on_path("redis-server")).then(|| "redis-server".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_in_memory_layer_serves_every_transport_exactly() {
    if skip_unless_installed("channels", channels_missing("memory")) {
        return;
    }
    let peer = Peer::start("channels", &["--layer", "memory"]);
    assert_clean_run(&peer, &Transport::ALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_redis_layer_serves_every_transport_exactly() {
    if skip_unless_installed("channels", channels_missing("redis")) {
        return;
    }
    let peer = Peer::start("channels", &["--layer", "redis"]);
    assert_clean_run(&peer, &Transport::ALL).await;
}

/// How a server ends a WebSocket after `ws` sent something it refuses: `Some(code)` from its
/// close frame, `None` when it dropped the connection without one.
async fn close_code_after(
    mut ws: WebSocketStream<tokio::net::TcpStream>,
    sent: Message,
) -> Option<u16> {
    ws.send(sent).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server ends the WebSocket within 10 s")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// The tutorial's room: a message sent in `/ws/chat/lobby/` comes back to every member as
/// `{"message": ...}` and reaches the feed topic `chat.lobby` as a MESSAGE. Bad input gets
/// pushlab's answers: 400 with a JSON reason, 405, 404. WebSocket close codes, as daphne allows
/// them (an application closes only with 1000 or 3000..=4999): a binary frame 4003, a message
/// over 64 KiB 4009, room text that is not `{"message": ...}` 4007 (4000 + RFC 6455's 1003,
/// 1009, 1007); invalid UTF-8, which daphne's WebSocket layer refuses itself, ends with the TCP
/// connection dropped and no close frame (RFC 6455 7.1.7 asks for 1007 there, as a SHOULD).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_room_chat_reaches_the_feed_and_bad_input_is_refused() {
    if skip_unless_installed("channels", channels_missing("memory")) {
        return;
    }
    let peer = Peer::start("channels", &["--layer", "memory"]);
    let mut feed = peer.ws("/ws/chat.lobby?since=0").await.unwrap();
    let mut room = peer.ws("/ws/chat/lobby/").await.unwrap();
    room.send(Message::text(r#"{"message":"hi \"all\"\n"}"#))
        .await
        .unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(10), room.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo.to_text().unwrap(), r#"{"message": "hi \"all\"\n"}"#);
    let pushed = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = pushed.to_text().unwrap();
    let m = pushlab_proto::Message::parse(text.as_bytes()).unwrap();
    assert_eq!(
        (m.topic.as_str(), m.seq, m.data.as_str()),
        ("chat.lobby", 1, "hi \"all\"\n")
    );
    assert_eq!(
        text.as_bytes(),
        &m.encode().bytes[..],
        "MESSAGE byte-identical"
    );

    drop(feed);
    let feed = || peer.ws("/ws/chat.lobby?since=0");
    let binary = Message::binary(vec![1u8, 2]);
    assert_eq!(
        close_code_after(feed().await.unwrap(), binary).await,
        Some(4003)
    );
    let too_big = Message::text("a".repeat(64 * 1024 + 1));
    assert_eq!(
        close_code_after(feed().await.unwrap(), too_big).await,
        Some(4009)
    );
    let not_chat = Message::text("not json");
    let room = peer.ws("/ws/chat/lobby/").await.unwrap();
    assert_eq!(close_code_after(room, not_chat).await, Some(4007));
    let not_utf8 = Message::Frame(Frame::message(
        vec![0xc3u8, 0x28],
        OpCode::Data(Data::Text),
        true,
    ));
    assert_eq!(
        close_code_after(feed().await.unwrap(), not_utf8).await,
        None
    );

    let ahead = peer.get("/poll/chat.lobby?since=9").unwrap();
    assert!(ahead.starts_with("HTTP/1.1 400"), "{ahead}");
    assert!(ahead.contains("{\"error\": \"cursor 9 is ahead"), "{ahead}");
    for (method, path, status) in [
        ("GET", "/poll/bad%20topic", "400"),
        ("GET", "/longpoll/t?timeout=0", "400"),
        ("GET", "/poll/t?since=x", "400"),
        ("GET", "/publish/t", "405"),
        ("POST", "/poll/t", "405"),
        ("GET", "/nowhere", "404"),
    ] {
        let a = peer.request(method, path, b"").unwrap();
        assert!(
            a.starts_with(&format!("HTTP/1.1 {status}")),
            "{method} {path}: {a}"
        );
        assert!(a.contains("{\"error\": "), "{method} {path}: {a}");
    }
    let not_utf8 = peer.request("POST", "/publish/t", &[0xff, 0xfe]).unwrap();
    assert!(not_utf8.starts_with("HTTP/1.1 400"), "{not_utf8}");
    let refused = peer.ws("/ws/t?since=99").await;
    assert!(refused.is_err(), "a cursor ahead refuses the WebSocket");
}

fn dwebsocket_missing() -> Option<String> {
    let stamp = cache_dir().join("venv-dwebsocket/.requirements.sha256");
    (!stamp.exists()).then(|| format!("the dwebsocket venv ({})", stamp.display()))
}

/// dwebsocket serves WebSocket only: the feed, exactly, and the tutorial's echo. With 4
/// threads, four WebSockets are served and a fifth waits until one closes (one thread each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dwebsocket_serves_the_websocket_feed_exactly_and_one_socket_per_thread() {
    if skip_unless_installed("dwebsocket", dwebsocket_missing()) {
        return;
    }
    let peer = Peer::start("dwebsocket", &[]);
    assert_clean_run(&peer, &[Transport::Ws]).await;

    let mut echo = peer.ws("/echo").await.unwrap();
    echo.send(Message::text("ping é")).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(10), echo.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back.to_text().unwrap(), "ping é");
    drop(echo);
    drop(peer);

    let peer = Peer::start("dwebsocket", &["--threads", "4"]);
    let script = scripts().join("dwebsocket/capacity.py");
    let out = Command::new("python3")
        .arg(script)
        .args([
            &peer.addr.port().to_string(),
            "--max",
            "8",
            "--timeout",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["served_concurrently"], 4, "{v}");
    assert_eq!(v["next"], "waited", "{v}");
}

fn pushpin_missing() -> Option<String> {
    ["pushpin", "zurl", "condure"]
        .into_iter()
        .find(|p| !on_path(p))
        .map(|p| format!("{p} (apt-get install pushpin zurl)"))
}

/// Pushpin in front of scripts/peers/pushpin/origin.py: every transport through GRIP (short
/// polls, held long-poll responses, held streams, WebSocket-over-HTTP), exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushpin_serves_every_transport_exactly_through_grip() {
    if skip_unless_installed("pushpin", pushpin_missing()) {
        return;
    }
    let peer = Peer::start("pushpin", &[]);
    assert_clean_run(&peer, &Transport::ALL).await;
}

/// Long polls lose nothing when every hold races a publish: the origin answers each hold
/// 150 ms after reading the feed (`--hold-delay-ms`, a fault) while messages come every 100 ms,
/// so each publish reaches Pushpin between a hold's answer and its registration. Pushpin
/// retries the first such hold and forgets the channel's last id, so the others register
/// unchecked; the origin's repair items (origin.py) bring them back. Without the repairs this
/// lost 4 to 10 of 250 messages per run here; the origin's count of repairs shows the race ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushpin_long_poll_loses_nothing_when_every_hold_races_a_publish() {
    if skip_unless_installed("pushpin", pushpin_missing()) {
        return;
    }
    let peer = Peer::start("pushpin", &["--hold-delay-ms", "150"]);
    assert_clean_run(&peer, &[Transport::LongPoll]).await;
    let health = peer.get("/healthz").expect("the origin answers /healthz");
    let body = &health[health.find("\r\n\r\n").expect("a head and a body") + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        v["longpoll_repairs"].as_u64().unwrap() > 0,
        "the race did not happen, so this proves nothing: {v}"
    );
}
