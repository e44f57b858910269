//! Each bound of `pushlab_server::guard` and the older request checks, hit on purpose: the
//! status, the JSON reason, and the `pushlab_rejected_total` reason it is counted under.

use std::time::{Duration, Instant};

use pushlab_server::metrics::Rejection;
use pushlab_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixture::{self, record};
use crate::raw::{self, get, post, Resp};

const LIMIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "s3cret-token";

/// Inputs hyper refuses while parsing the head, before the router sees a request: it writes
/// the status with an empty body and closes (the router cannot add a JSON reason there).
const HYPER_ANSWERS: &[&str] = &[
    "300 KiB header value (past hyper's buffer)",
    "request line that is not HTTP",
    "header without a colon",
    "content-length: -5",
    "whitespace between the start-line and the first field (RFC 9112 §2.2)",
    "whitespace between a field name and its colon (RFC 9112 §5.1)",
    "obs-fold in a request (RFC 9112 §5.2)",
    "two different Content-Length values (RFC 9112 §6.3)",
    "Transfer-Encoding whose final coding is not chunked (RFC 9112 §6.3)",
];

pub(crate) struct Probe {
    pub class: &'static str,
    pub attack: &'static str,
    pub request: Vec<u8>,
    pub status: u16,
    pub counted: Option<Rejection>,
}

fn describe(r: &Resp) -> String {
    match (r.status, r.json_error()) {
        (0, _) => "connection closed, no answer".into(),
        (101, _) => "101 Switching Protocols".into(),
        (s, Some(e)) => format!("{s} {e}"),
        (s, None) if r.body.is_empty() => format!("{s} (empty body)"),
        (s, None) => format!(
            "{s} {}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(60)])
        ),
    }
}

pub(crate) async fn run(server: &fixture::TestServer, probes: Vec<Probe>) {
    for p in probes {
        let before = p.counted.map(|why| server.rejected(why));
        let r = raw::exchange(server.addr, &p.request, LIMIT).await;
        record(p.class, p.attack, &describe(&r));
        assert_eq!(r.status, p.status, "{}: {}", p.attack, describe(&r));
        if p.status >= 400 && !HYPER_ANSWERS.contains(&p.attack) {
            assert!(
                r.json_error().is_some(),
                "{}: body is not JSON error: {r:?}",
                p.attack
            );
        }
        if let (Some(why), Some(before)) = (p.counted, before) {
            let after = server.wait_rejected(why, before + 1, LIMIT).await;
            assert!(
                after > before,
                "{}: not counted as {}",
                p.attack,
                why.label()
            );
        }
    }
}

pub(crate) fn ws_upgrade(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut h: Vec<(&str, &str)> = vec![
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    h.extend_from_slice(extra);
    get(path, &h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_answer_and_are_counted() {
    let server = fixture::start_server(ServerConfig {
        publish_token: Some(TOKEN.into()),
        ..fixture::config()
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    let many_headers: Vec<(String, String)> =
        (0..80).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let big = "a".repeat(20 * 1024);
    let huge = "a".repeat(300 * 1024);
    let probes = vec![
        Probe { class: "auth", attack: "POST /publish without token", request: post("/publish/t", &[], b"x"), status: 401, counted: Some(Rejection::Unauthorized) },
        Probe { class: "auth", attack: "POST /publish with a wrong Bearer token", request: post("/publish/t", &[("authorization", "Bearer nope")], b"x"), status: 401, counted: Some(Rejection::Unauthorized) },
        Probe { class: "auth", attack: "POST /publish with the token in ?token= (header only on HTTP)", request: post(&format!("/publish/t?token={TOKEN}"), &[], b"x"), status: 401, counted: Some(Rejection::Unauthorized) },
        Probe { class: "auth", attack: "POST /ticker?rate=1000000 without token", request: post("/ticker?rate=1000000", &[], b""), status: 401, counted: Some(Rejection::Unauthorized) },
        Probe { class: "auth", attack: "POST /publish with the right token", request: post("/publish/t", &[("authorization", &bearer)], b"x"), status: 202, counted: None },
        Probe { class: "origin", attack: "WebSocket upgrade from another origin", request: ws_upgrade("/ws/t", &[("origin", "https://evil.example")]), status: 403, counted: Some(Rejection::OriginForbidden) },
        Probe { class: "origin", attack: "WebSocket upgrade from Origin: null", request: ws_upgrade("/ws/t", &[("origin", "null")]), status: 403, counted: Some(Rejection::OriginForbidden) },
        Probe { class: "origin", attack: "publish from another origin (CSRF form post)", request: post("/publish/t", &[("origin", "https://evil.example"), ("authorization", &bearer), ("content-type", "text/plain")], b"x"), status: 403, counted: Some(Rejection::OriginForbidden) },
        Probe { class: "origin", attack: "CORS preflight from another origin", request: b"OPTIONS /publish/t HTTP/1.1\r\nhost: 127.0.0.1\r\norigin: https://evil.example\r\naccess-control-request-method: POST\r\nconnection: close\r\n\r\n".to_vec(), status: 403, counted: Some(Rejection::OriginForbidden) },
        Probe { class: "origin", attack: "WebSocket upgrade from the same origin", request: ws_upgrade("/ws/t", &[("origin", "http://127.0.0.1")]), status: 101, counted: None },
        Probe { class: "head", attack: "80 header fields (limit 64)", request: get("/poll/t", &many), status: 431, counted: Some(Rejection::HeaderTooLarge) },
        Probe { class: "head", attack: "20 KiB header value (limit 16 KiB)", request: get("/poll/t", &[("x-big", &big)]), status: 431, counted: Some(Rejection::HeaderTooLarge) },
        Probe { class: "head", attack: "300 KiB header value (past hyper's buffer)", request: get("/poll/t", &[("x-huge", &huge)]), status: 431, counted: Some(Rejection::HeaderTooLarge) },
        Probe { class: "head", attack: "request line that is not HTTP", request: b"HELLO\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "head", attack: "header without a colon", request: b"GET /healthz HTTP/1.1\r\nhost: x\r\nbroken header\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "cursor", attack: "since=-1", request: get("/poll/t?since=-1", &[]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "cursor", attack: "since=2^64", request: get("/poll/t?since=18446744073709551616", &[]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "cursor", attack: "since given twice", request: get("/stream/t?since=1&since=2", &[]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "cursor", attack: "since ahead of the newest seq", request: get("/poll/t?since=999999", &[]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "cursor", attack: "Last-Event-ID: abc", request: get("/sse/t", &[("last-event-id", "abc")]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "cursor", attack: "long-poll timeout=100000", request: get("/longpoll/t?timeout=100000", &[]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "topic", attack: "topic of 65 characters", request: get(&format!("/poll/{}", "a".repeat(65)), &[]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "topic", attack: "topic with %2F and ..", request: get("/poll/..%2Fetc%2Fpasswd", &[]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "topic", attack: "topic with UTF-8", request: get("/poll/%C3%A9t%C3%A9", &[]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "method", attack: "DELETE /sse/t", request: b"DELETE /sse/t HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(), status: 405, counted: Some(Rejection::MethodNotAllowed) },
        Probe { class: "path", attack: "GET /../../etc/passwd", request: get("/../../etc/passwd", &[]), status: 404, counted: Some(Rejection::NotFound) },
        Probe { class: "body", attack: "publish 70 KiB (limit 64 KiB)", request: post("/publish/t", &[("authorization", &bearer)], &vec![b'x'; 70 * 1024]), status: 413, counted: Some(Rejection::PayloadTooLarge) },
        Probe { class: "body", attack: "publish of invalid UTF-8", request: post("/publish/t", &[("authorization", &bearer)], &[0xff, 0xfe, 0x00]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "body", attack: "content-length: -5", request: b"POST /publish/t HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "body", attack: "both content-length and chunked (chunked wins, as RFC 9112 allows; the connection then closes)", request: format!("POST /publish/t HTTP/1.1\r\nhost: x\r\nauthorization: {bearer}\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n").into_bytes(), status: 202, counted: None },
        Probe { class: "ws", attack: "plain GET on /ws/t", request: get("/ws/t", &[]), status: 426, counted: Some(Rejection::UpgradeRequired) },
        Probe { class: "ws", attack: "Sec-WebSocket-Version: 8", request: get("/ws/t", &[("upgrade", "websocket"), ("connection", "upgrade"), ("sec-websocket-version", "8"), ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")]), status: 426, counted: Some(Rejection::UpgradeRequired) },
    ];
    run(&server, probes).await;
    assert_eq!(server.settle(LIMIT).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_echoes_allowed_origins_only_and_never_a_wildcard() {
    let server = fixture::start_server(ServerConfig {
        allowed_origins: Some(vec!["https://lab.example".into()]),
        ..fixture::config()
    })
    .await;
    let ok = raw::exchange(
        server.addr,
        &get("/poll/t", &[("origin", "https://lab.example")]),
        LIMIT,
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://lab.example")
    );
    record(
        "origin",
        "GET /poll from an allowed origin",
        &format!(
            "{} with access-control-allow-origin: https://lab.example",
            ok.status
        ),
    );

    let other = raw::exchange(
        server.addr,
        &get("/poll/t", &[("origin", "https://evil.example")]),
        LIMIT,
    )
    .await;
    assert_eq!(
        other.status, 200,
        "reads are public; the browser withholds them cross-site"
    );
    assert_eq!(other.header("access-control-allow-origin"), None);
    record(
        "origin",
        "GET /poll from another origin",
        "200 without access-control-allow-origin (the browser withholds it)",
    );

    let pre = b"OPTIONS /publish/t HTTP/1.1\r\nhost: 127.0.0.1\r\norigin: https://lab.example\r\naccess-control-request-method: POST\r\naccess-control-request-headers: authorization\r\nconnection: close\r\n\r\n";
    let r = raw::exchange(server.addr, pre, LIMIT).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://lab.example")
    );
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    record(
        "origin",
        "CORS preflight from an allowed origin",
        "204 echoing the origin, methods GET, POST, OPTIONS",
    );

    let publish = raw::exchange(
        server.addr,
        &post("/publish/t", &[("origin", "https://lab.example")], b"hi"),
        LIMIT,
    )
    .await;
    assert_eq!(publish.status, 202);
    assert_ne!(publish.header("access-control-allow-origin"), Some("*"));
    // With a list, even the server's own origin must be on it.
    let same = raw::exchange(
        server.addr,
        &ws_upgrade("/ws/t", &[("origin", "http://127.0.0.1")]),
        LIMIT,
    )
    .await;
    assert_eq!(same.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_publishing_needs_the_token() {
    let server = fixture::start_server(ServerConfig {
        publish_token: Some(TOKEN.into()),
        ..fixture::config()
    })
    .await;
    let topic = server.shared.feed.topic("chat").unwrap();
    // Without the token: subscribing works, the first text frame gets close 1008.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&ws_upgrade("/ws/chat", &[])).await.unwrap();
    let mut dec = raw::Decoder::new(pushlab_proto::Transport::Ws, 0);
    let head = read_head(&mut s).await;
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(&raw::ws_client_frame(1, b"hello", true))
        .await
        .unwrap();
    let (items, _) = raw::read_items(&mut s, &mut dec, LIMIT, |i| {
        i.iter().any(|x| matches!(x, raw::Item::Control(8, _)))
    })
    .await;
    assert!(
        items.contains(&raw::Item::Control(8, Some(1008))),
        "{items:?}"
    );
    assert_eq!(topic.latest_seq(), 0, "nothing published");
    assert!(server.rejected(Rejection::Unauthorized) >= 1);
    record(
        "auth",
        "WebSocket text frame without the token",
        "close 1008 (policy violation), nothing published",
    );

    // With ?token= (what a browser can send) or a Bearer header: published.
    for (path, extra) in [
        (format!("/ws/chat?token={TOKEN}"), vec![]),
        (
            "/ws/chat".to_string(),
            vec![("authorization", format!("Bearer {TOKEN}"))],
        ),
    ] {
        let before = topic.latest_seq();
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(&ws_upgrade(&path, &extra)).await.unwrap();
        assert!(read_head(&mut s).await.starts_with(b"HTTP/1.1 101"));
        s.write_all(&raw::ws_client_frame(1, b"hello", true))
            .await
            .unwrap();
        let deadline = Instant::now() + LIMIT;
        while topic.latest_seq() == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(topic.latest_seq(), before + 1, "{path}");
    }
    record(
        "auth",
        "WebSocket text frame with ?token= or a Bearer header",
        "published",
    );
}

pub(crate) async fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    let _ = tokio::time::timeout(LIMIT, async {
        while raw::head_end(&buf).is_none() {
            match s.read(&mut b).await {
                Ok(1) => buf.push(b[0]),
                _ => return,
            }
        }
    })
    .await;
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let server = fixture::start_server(ServerConfig {
        max_connections_per_ip: 4,
        ..fixture::config()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = raw::connect_from(server.addr, Some([127, 0, 0, 1]), None).await;
        s.write_all(&raw::subscribe_request(
            pushlab_proto::Transport::Sse,
            "t",
            0,
            &[],
        ))
        .await
        .unwrap();
        assert!(read_head(&mut s).await.starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let mut fifth = raw::connect_from(server.addr, Some([127, 0, 0, 1]), None).await;
    fifth.write_all(&get("/healthz", &[])).await.unwrap();
    let r = raw::read_response(&mut fifth, LIMIT).await;
    assert_eq!(r.status, 503);
    assert!(r
        .json_error()
        .is_some_and(|e| e.contains("too many connections")));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(server.rejected(Rejection::PerIpLimit), 1);
    record(
        "bounds",
        "5th connection from one address (--max-connections-per-ip 4)",
        &describe(&r),
    );

    // Another address is not affected.
    let mut other = raw::connect_from(server.addr, Some([127, 0, 0, 2]), None).await;
    other.write_all(&get("/healthz", &[])).await.unwrap();
    assert_eq!(raw::read_response(&mut other, LIMIT).await.status, 200);

    // Slots come back when connections close.
    drop(held);
    assert_eq!(server.settle(LIMIT).await, 0);
    let r = raw::exchange(server.addr, &get("/healthz", &[]), LIMIT).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_rate_per_connection_gets_429_with_retry_after() {
    let server = fixture::start_server(ServerConfig {
        publish_rate_per_s: 5.0,
        publish_burst: 3,
        ..fixture::config()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut statuses: Vec<u16> = Vec::new();
    for _ in 0..6 {
        let req = b"POST /publish/t HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nx";
        s.write_all(req).await.unwrap();
        let r = raw::read_response(&mut s, LIMIT).await;
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            assert!(r.json_error().is_some());
        }
        if r.status == 429 && !statuses.contains(&429) {
            record(
                "bounds",
                "6 publishes in a row on one connection (--publish-rate 5 --publish-burst 3)",
                &format!(
                    "{} after {} accepted; Retry-After {}",
                    describe(&r),
                    statuses.len(),
                    r.header("retry-after").unwrap_or("")
                ),
            );
        }
        statuses.push(r.status);
    }
    assert_eq!(&statuses[..3], &[202, 202, 202]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    assert!(server.rejected(Rejection::PublishRate) >= 1);
    // A new connection has its own bucket.
    let r = raw::exchange(server.addr, &post("/publish/t", &[], b"x"), LIMIT).await;
    assert_eq!(r.status, 202);
}

/// Slowloris and friends: a client that sends nothing, half of the HTTP/2 preface, one header
/// byte at a time, or a body that never completes, is cut; so is an idle keep-alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_cut() {
    let cfg = fixture::config();
    let hrt = cfg.header_read_timeout;
    let server = fixture::start_server(cfg).await;
    // Generous: the cut must come within a few header-read timeouts, never hang.
    let bound = hrt * 4 + Duration::from_secs(2);

    async fn until_closed(mut s: TcpStream, dribble: Option<&'static [u8]>) -> (Duration, Vec<u8>) {
        let t0 = Instant::now();
        let mut got = Vec::new();
        let mut b = [0u8; 1024];
        let mut i = 0;
        loop {
            if let Some(d) = dribble {
                if i < d.len() && s.write_all(&d[i..i + 1]).await.is_ok() {
                    i += 1;
                }
            }
            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (t0.elapsed(), got),
                Ok(Ok(n)) => got.extend_from_slice(&b[..n]),
                Err(_) if t0.elapsed() > Duration::from_secs(20) => return (t0.elapsed(), got),
                Err(_) => {}
            }
        }
    }

    type Case = (&'static str, &'static [u8], Option<&'static [u8]>);
    let cases: Vec<Case> = vec![
        ("connect and send nothing", b"", None),
        ("send 1 byte of a request line", b"G", None),
        ("send half of the HTTP/2 preface", b"PRI * HTTP/2.0\r\n", None),
        ("send a request head 1 byte per 200 ms", b"", Some(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n")),
        ("declare a 100-byte publish body, send 10 bytes", b"POST /publish/t HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789", None),
        ("one request, then an idle keep-alive", b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n", None),
    ];
    let mut tasks = Vec::new();
    for (name, first, dribble) in cases {
        let s = TcpStream::connect(server.addr).await.unwrap();
        let mut s = s;
        s.write_all(first).await.unwrap();
        tasks.push((name, tokio::spawn(until_closed(s, dribble))));
    }
    for (name, t) in tasks {
        let (took, got) = t.await.unwrap();
        let (status, _) = raw::parse_head(&got);
        let answer = format!(
            "closed after {:.1} s{}",
            took.as_secs_f64(),
            if status > 0 {
                format!(" (answered {status} first)")
            } else {
                String::new()
            }
        );
        record("slow", name, &answer);
        assert!(took < bound, "{name}: not cut within {bound:?} ({answer})");
    }
    assert!(
        server.rejected(Rejection::HeaderTimeout) >= 4,
        "{}",
        server.rejected(Rejection::HeaderTimeout)
    );
    assert!(server.rejected(Rejection::BodyTimeout) >= 1);
    assert!(server.rejected(Rejection::IdleTimeout) >= 1);
    assert_eq!(server.settle(LIMIT).await, 0);
}

/// A WebSocket peer that stops answering (never reads, so never pongs) is dropped after
/// `ws_ping_interval + ws_pong_timeout` and counted; one over the size limit gets 1009.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_oversized_websocket_peers() {
    let cfg = ServerConfig {
        max_message_bytes: 1024,
        ..fixture::config()
    };
    let bound = (cfg.ws_ping_interval + cfg.ws_pong_timeout) * 3 + Duration::from_secs(2);
    let server = fixture::start_server(cfg).await;
    let mut dead = TcpStream::connect(server.addr).await.unwrap();
    dead.write_all(&ws_upgrade("/ws/t", &[])).await.unwrap();
    assert!(read_head(&mut dead).await.starts_with(b"HTTP/1.1 101"));
    let t0 = Instant::now();
    let got = server.wait_rejected(Rejection::WsDeadPeer, 1, bound).await;
    assert_eq!(got, 1, "silent WebSocket not dropped within {bound:?}");
    record(
        "ws",
        "WebSocket peer that never answers pings",
        &format!(
            "dropped after {:.1} s, counted ws_dead_peer",
            t0.elapsed().as_secs_f64()
        ),
    );
    // The pings it was sent are there, then the socket ends.
    let mut dec = raw::Decoder::new(pushlab_proto::Transport::Ws, 0);
    let (items, _) = raw::read_items(&mut dead, &mut dec, LIMIT, |_| false).await;
    assert!(items.contains(&raw::Item::Control(9, None)), "{items:?}");

    let mut big = TcpStream::connect(server.addr).await.unwrap();
    big.write_all(&ws_upgrade("/ws/t", &[])).await.unwrap();
    assert!(read_head(&mut big).await.starts_with(b"HTTP/1.1 101"));
    big.write_all(&raw::ws_client_frame(1, &vec![b'x'; 4096], true))
        .await
        .unwrap();
    let mut dec = raw::Decoder::new(pushlab_proto::Transport::Ws, 0);
    let (items, _) = raw::read_items(&mut big, &mut dec, LIMIT, |i| {
        i.iter().any(|x| matches!(x, raw::Item::Control(8, _)))
    })
    .await;
    assert!(
        items.contains(&raw::Item::Control(8, Some(1009))),
        "{items:?}"
    );
    record(
        "ws",
        "4 KiB WebSocket frame (--max-message-bytes 1024)",
        "close 1009 (message too big)",
    );

    let mut bin = TcpStream::connect(server.addr).await.unwrap();
    bin.write_all(&ws_upgrade("/ws/t", &[])).await.unwrap();
    assert!(read_head(&mut bin).await.starts_with(b"HTTP/1.1 101"));
    bin.write_all(&raw::ws_client_frame(2, b"\x00\x01", true))
        .await
        .unwrap();
    let (items, _) = raw::read_items(&mut bin, &mut dec, LIMIT, |i| {
        i.iter().any(|x| matches!(x, raw::Item::Control(8, _)))
    })
    .await;
    assert!(
        items.contains(&raw::Item::Control(8, Some(1003))),
        "{items:?}"
    );
    record(
        "ws",
        "binary WebSocket frame",
        "close 1003 (unsupported data)",
    );

    let mut unmasked = TcpStream::connect(server.addr).await.unwrap();
    unmasked.write_all(&ws_upgrade("/ws/t", &[])).await.unwrap();
    assert!(read_head(&mut unmasked).await.starts_with(b"HTTP/1.1 101"));
    unmasked.write_all(b"\x81\x02hi").await.unwrap();
    let (items, _) = raw::read_items(&mut unmasked, &mut dec, LIMIT, |i| {
        i.iter().any(|x| matches!(x, raw::Item::Control(8, _)))
    })
    .await;
    assert!(
        items.contains(&raw::Item::Control(8, Some(1002))),
        "{items:?}"
    );
    record("ws", "unmasked client frame", "close 1002 (protocol error)");
    assert_eq!(server.settle(LIMIT).await, 0);
}
