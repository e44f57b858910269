//! Conformance: every MUST of RFC 9112 §3 and RFC 6455 §4.2.1 that a request head or a
//! handshake can break, answered with its status and JSON reason; HEAD as RFC 9110 §9.3.2 says;
//! invalid UTF-8 closed with 1007 (RFC 6455 §8.1); and the bounds of issue 16: a message
//! accepted at publish reaches every transport, a ping flood that never reads is dropped, the
//! retained bytes stay within their budget, `/echo` answers through the WebSocket session.

use std::time::{Duration, Instant};

use pushlab_proto::Transport;
use pushlab_server::metrics::Rejection;
use pushlab_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::bounds::{read_head, run, ws_upgrade, Probe};
use crate::fixture::{self, record};
use crate::raw::{self, get, post, Item};

const LIMIT: Duration = Duration::from_secs(10);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_with(path: &str, version: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("GET {path} {version}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_and_handshakes_that_break_a_must_get_its_status() {
    let server = fixture::start_server(fixture::config()).await;
    let long_target = format!("/poll/t?pad={}", "a".repeat(17 * 1024));
    let h = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1".into()),
            ("upgrade".into(), "websocket".into()),
            ("connection".into(), "Upgrade".into()),
        ];
        v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        v
    };
    let ws = |extra: &[(&str, &str)]| {
        let owned = h(extra);
        let refs: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        upgrade_with("/ws/t", "HTTP/1.1", &refs)
    };
    #[rustfmt::skip]
    let probes = vec![
        // RFC 9112 §3.2: Host.
        Probe { class: "rfc9112", attack: "HTTP/1.1 GET without Host", request: b"GET /poll/t HTTP/1.1\r\nconnection: close\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadHost) },
        Probe { class: "rfc9112", attack: "HTTP/1.1 POST /publish without Host", request: b"POST /publish/t HTTP/1.1\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx".to_vec(), status: 400, counted: Some(Rejection::BadHost) },
        Probe { class: "rfc9112", attack: "two Host lines", request: get("/poll/t", &[("host", "evil.example")]), status: 400, counted: Some(Rejection::BadHost) },
        Probe { class: "rfc9112", attack: "two Host lines on HTTP/1.0", request: b"GET /poll/t HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadHost) },
        Probe { class: "rfc9112", attack: "Host: a b", request: b"GET /poll/t HTTP/1.1\r\nhost: a b\r\nconnection: close\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadHost) },
        Probe { class: "rfc9112", attack: "Host with userinfo (user@host)", request: b"GET /poll/t HTTP/1.1\r\nhost: user@127.0.0.1\r\nconnection: close\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadHost) },
        Probe { class: "rfc9112", attack: "Host with a port that is not digits", request: b"GET /poll/t HTTP/1.1\r\nhost: 127.0.0.1:http\r\nconnection: close\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadHost) },
        Probe { class: "rfc9112", attack: "Host: [::1]:8080 (valid)", request: b"GET /poll/t HTTP/1.1\r\nhost: [::1]:8080\r\nconnection: close\r\n\r\n".to_vec(), status: 200, counted: None },
        Probe { class: "rfc9112", attack: "HTTP/1.0 without Host (allowed)", request: b"GET /poll/t HTTP/1.0\r\n\r\n".to_vec(), status: 200, counted: None },
        Probe { class: "rfc9112", attack: "absolute-form target", request: b"GET http://127.0.0.1/poll/t HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".to_vec(), status: 200, counted: None },
        // hyper refuses these while parsing (400, empty body); what reaches the router is above.
        Probe { class: "rfc9112", attack: "whitespace between the start-line and the first field (RFC 9112 §2.2)", request: b"GET /poll/t HTTP/1.1\r\n host: x\r\nconnection: close\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "rfc9112", attack: "whitespace between a field name and its colon (RFC 9112 §5.1)", request: b"GET /poll/t HTTP/1.1\r\nhost : x\r\nconnection: close\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "rfc9112", attack: "obs-fold in a request (RFC 9112 §5.2)", request: b"GET /poll/t HTTP/1.1\r\nhost: x\r\nx-a: b\r\n c\r\nconnection: close\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "rfc9112", attack: "two different Content-Length values (RFC 9112 §6.3)", request: b"POST /publish/t HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\nconnection: close\r\n\r\nxy".to_vec(), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "rfc9112", attack: "Transfer-Encoding whose final coding is not chunked (RFC 9112 §6.3)", request: b"POST /publish/t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, gzip\r\nconnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n".to_vec(), status: 400, counted: Some(Rejection::BadRequest) },
        // RFC 9112 §3: a request-target longer than the server parses.
        Probe { class: "rfc9112", attack: "17 KiB request-target (limit 16 KiB)", request: get(&long_target, &[]), status: 414, counted: Some(Rejection::HeaderTooLarge) },
        // RFC 6455 §4.2.1 and §4.4.
        Probe { class: "rfc6455", attack: "WebSocket handshake over HTTP/1.0 (RFC 9110 §7.8: Upgrade ignored)", request: upgrade_with("/ws/t", "HTTP/1.0", &[("host", "127.0.0.1"), ("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-version", "13"), ("sec-websocket-key", KEY)]), status: 426, counted: Some(Rejection::UpgradeRequired) },
        Probe { class: "rfc6455", attack: "Upgrade: websocket without Connection: Upgrade (RFC 9110 §7.8: Upgrade ignored)", request: upgrade_with("/ws/t", "HTTP/1.1", &[("host", "127.0.0.1"), ("upgrade", "websocket"), ("sec-websocket-version", "13"), ("sec-websocket-key", KEY)]), status: 426, counted: Some(Rejection::UpgradeRequired) },
        Probe { class: "rfc6455", attack: "no Sec-WebSocket-Key", request: ws(&[("sec-websocket-version", "13")]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "rfc6455", attack: "Sec-WebSocket-Key of 24 characters, not base64", request: ws(&[("sec-websocket-version", "13"), ("sec-websocket-key", "!!!!!!!!!!!!!!!!!!!!!!==")]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "rfc6455", attack: "Sec-WebSocket-Key of 15 bytes", request: ws(&[("sec-websocket-version", "13"), ("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAA")]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "rfc6455", attack: "two Sec-WebSocket-Key lines", request: ws(&[("sec-websocket-version", "13"), ("sec-websocket-key", KEY), ("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA==")]), status: 400, counted: Some(Rejection::BadRequest) },
        Probe { class: "rfc6455", attack: "no Sec-WebSocket-Version", request: ws(&[("sec-websocket-key", KEY)]), status: 426, counted: Some(Rejection::UpgradeRequired) },
        Probe { class: "rfc6455", attack: "two Sec-WebSocket-Version lines", request: ws(&[("sec-websocket-version", "13"), ("sec-websocket-version", "13"), ("sec-websocket-key", KEY)]), status: 426, counted: Some(Rejection::UpgradeRequired) },
        Probe { class: "rfc6455", attack: "handshake with POST", request: format!("POST /ws/t HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: {KEY}\r\ncontent-length: 0\r\n\r\n").into_bytes(), status: 405, counted: Some(Rejection::MethodNotAllowed) },
        Probe { class: "rfc6455", attack: "/echo upgrade from another origin", request: ws_upgrade("/echo", &[("origin", "https://evil.example")]), status: 403, counted: Some(Rejection::OriginForbidden) },
        Probe { class: "rfc6455", attack: "valid handshake on /echo", request: ws_upgrade("/echo", &[]), status: 101, counted: None },
    ];
    run(&server, probes).await;
    // Nothing was published by the POST without Host.
    assert_eq!(
        server
            .shared
            .metrics
            .published_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // §4.4: the versions the server speaks come with the refusal.
    let r = raw::exchange(
        server.addr,
        &ws(&[("sec-websocket-version", "8"), ("sec-websocket-key", KEY)]),
        LIMIT,
    )
    .await;
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    assert_eq!(server.settle(LIMIT).await, 0);
}

/// Reads until the server closes or `limit`; bytes read.
async fn read_to_end(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut buf)).await;
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_what_get_would_at_once_and_without_a_body() {
    let server = fixture::start_server(ServerConfig {
        default_longpoll_timeout: Duration::from_secs(30),
        ..fixture::config()
    })
    .await;
    let r = raw::exchange(server.addr, &post("/publish/t", &[], b"x"), LIMIT).await;
    assert_eq!(r.status, 202);
    for t in Transport::ALL {
        let path = format!("/{}/t?since=0", t.path_segment());
        let mut g = TcpStream::connect(server.addr).await.unwrap();
        g.write_all(&get(&path, &[])).await.unwrap();
        let (get_status, get_headers) = raw::parse_head(&read_head(&mut g).await);
        drop(g);
        let started = Instant::now();
        let mut h = TcpStream::connect(server.addr).await.unwrap();
        let head = format!("HEAD {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
        h.write_all(head.as_bytes()).await.unwrap();
        let all = read_to_end(&mut h, LIMIT).await;
        let took = started.elapsed();
        let end = raw::head_end(&all).expect("a response head");
        let (status, headers) = raw::parse_head(&all[..end]);
        let field = |hs: &[(String, String)], n: &str| {
            hs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        };
        assert_eq!(status, get_status, "{t}");
        assert_eq!(
            field(&headers, "content-type"),
            field(&get_headers, "content-type"),
            "{t}"
        );
        assert_eq!(all.len(), end, "{t}: HEAD got a body");
        assert!(took < Duration::from_secs(3), "{t}: HEAD held for {took:?}");
        record(
            "rfc9110",
            &format!("HEAD /{}/t", t.path_segment()),
            &format!(
                "{status} with GET's header fields, no body, in {} ms",
                took.as_millis()
            ),
        );
    }
    assert_eq!(server.settle(LIMIT).await, 0);
}

/// Opens a WebSocket on `path` with a raw socket (receive buffer `rcvbuf`).
async fn raw_ws(server: &fixture::TestServer, path: &str, rcvbuf: Option<u32>) -> TcpStream {
    let mut s = raw::connect_from(server.addr, None, rcvbuf).await;
    s.write_all(&ws_upgrade(path, &[])).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with(b"HTTP/1.1 101"), "{path}: {head:?}");
    s
}

/// Server frames until `n` frames or a close arrived: (opcode, payload).
async fn frames(s: &mut TcpStream, n: usize) -> Vec<(u8, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(LIMIT, async {
        loop {
            while let Some((op, payload, used)) = raw::parse_server_frame(&buf) {
                buf.drain(..used);
                out.push((op, payload));
            }
            if out.len() >= n || out.iter().any(|(op, _)| *op == 8) {
                return;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
    })
    .await;
    out
}

fn close_code(frames: &[(u8, Vec<u8>)]) -> Option<u16> {
    frames
        .iter()
        .find(|(op, _)| *op == 8)
        .and_then(|(_, p)| (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_text_or_close_reason_is_closed_with_1007() {
    let server = fixture::start_server(fixture::config()).await;
    let f = raw::ws_client_frame;
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("text frame c3 28", vec![f(1, b"\xc3\x28", true)]),
        (
            "bad second fragment",
            vec![f(1, b"ab", false), f(0, b"\xff", true)],
        ),
        (
            "message ending mid-character",
            vec![f(1, b"\xe2\x82", true)],
        ),
        (
            "fragments ending mid-character",
            vec![f(1, b"\xe2", false), f(0, b"\x82", true)],
        ),
        ("close reason c3 28", vec![f(8, b"\x03\xe8\xc3\x28", true)]),
    ];
    for path in ["/ws/t", "/echo"] {
        for (what, sent) in &cases {
            let before = server.rejected(Rejection::WsInvalidUtf8);
            let mut s = raw_ws(&server, path, None).await;
            for frame in sent {
                s.write_all(frame).await.unwrap();
            }
            let got = frames(&mut s, usize::MAX).await;
            assert_eq!(close_code(&got), Some(1007), "{path} {what}: {got:?}");
            assert!(
                server
                    .wait_rejected(Rejection::WsInvalidUtf8, before + 1, LIMIT)
                    .await
                    > before
            );
            record(
                "rfc6455",
                &format!("{what} on {path}"),
                "close 1007 (invalid payload data)",
            );
        }
    }
    assert_eq!(server.settle(LIMIT).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_returns_each_message_unchanged_through_the_ws_session() {
    let server = fixture::start_server(ServerConfig {
        max_message_bytes: 1024,
        ..fixture::config()
    })
    .await;
    let page = raw::exchange(server.addr, &get("/echo", &[]), LIMIT).await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(String::from_utf8_lossy(&page.body).contains("WebSocket"));

    let f = raw::ws_client_frame;
    let mut s = raw_ws(&server, "/echo", None).await;
    s.write_all(&f(1, "héllo".as_bytes(), true)).await.unwrap();
    s.write_all(&f(2, b"\x00\x01\xfe\xff", true)).await.unwrap();
    s.write_all(&f(1, b"frag", false)).await.unwrap();
    s.write_all(&f(9, b"mid-message ping", true)).await.unwrap();
    s.write_all(&f(0, b"mented", true)).await.unwrap();
    let got = frames(&mut s, 4).await;
    let data: Vec<&(u8, Vec<u8>)> = got.iter().filter(|(op, _)| *op != 10).collect();
    assert_eq!(data[0], &(1, "héllo".as_bytes().to_vec()));
    assert_eq!(data[1], &(2, b"\x00\x01\xfe\xff".to_vec()));
    assert_eq!(data[2], &(1, b"fragmented".to_vec()));
    assert!(got.contains(&(10, b"mid-message ping".to_vec())), "{got:?}");
    // Past --max-message-bytes: 1009, as on /ws.
    s.write_all(&f(2, &[0u8; 2000], true)).await.unwrap();
    let got = frames(&mut s, usize::MAX).await;
    assert_eq!(close_code(&got), Some(1009), "{got:?}");
    record(
        "echo",
        "text, binary, fragmented messages on /echo",
        "each back unchanged; 2000 bytes (limit 1024): close 1009",
    );
    assert_eq!(server.settle(LIMIT).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_accepted_at_publish_reaches_every_transport() {
    let server = fixture::start_server(fixture::config()).await;
    // Every byte a control character: the JSON MESSAGE is six times the data.
    let data = "\u{1}".repeat(server.shared.config.max_message_bytes);
    let r = raw::exchange(
        server.addr,
        &post("/publish/poison", &[], data.as_bytes()),
        LIMIT,
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    for t in Transport::ALL {
        let (mut s, status, mut dec, first) =
            raw::open_subscription(server.addr, t, "poison", 0).await;
        assert_eq!(status, if t == Transport::Ws { 101 } else { 200 });
        let mut items = dec.push(&first);
        let (more, _) =
            raw::read_items(&mut s, &mut dec, LIMIT, |i| !raw::seqs(i).is_empty()).await;
        items.extend(more);
        let msg = items.iter().find_map(|i| match i {
            Item::Msg(m) => Some(m),
            _ => None,
        });
        assert!(
            msg.is_some_and(|m| m.seq == 1 && m.data == data),
            "{t}: {:?}",
            items
                .iter()
                .map(|i| format!("{i:?}").chars().take(80).collect::<String>())
                .collect::<Vec<_>>()
        );
        record(
            "bounds",
            &format!("{} KiB of U+0001 (JSON 6x) to {t}", data.len() / 1024),
            "delivered whole",
        );
    }
    assert_eq!(server.rejected(Rejection::WsWriteFailed), 0);
    assert_eq!(server.settle(LIMIT).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_that_never_reads_is_dropped_and_counted() {
    let server = fixture::start_server(fixture::config()).await;
    let mut s = raw_ws(&server, "/ws/t", Some(4096)).await;
    let ping = raw::ws_client_frame(9, &[b'p'; 125], true);
    let before = server.rejected(Rejection::WsDeadPeer);
    let started = Instant::now();
    let mut sent = 0usize;
    // Bounded in count and time; a write that stalls means the server stopped reading.
    for _ in 0..30_000 {
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(&ping)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let dead = server
        .wait_rejected(Rejection::WsDeadPeer, before + 1, LIMIT)
        .await;
    assert!(
        dead > before,
        "not counted as a dead peer after {sent} pings"
    );
    assert_eq!(
        server.settle(LIMIT).await,
        0,
        "the flooding peer is still open"
    );
    record(
        "ws",
        &format!("{sent} pings of 125 bytes, never reading (4 KiB receive buffer)"),
        "dropped and counted as ws_dead_peer",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_bytes_stay_within_budget_under_a_flood_ten_times_over() {
    let budget: u64 = 2 * 1024 * 1024;
    let server = fixture::start_server(ServerConfig {
        max_retained_bytes: budget,
        ..fixture::config()
    })
    .await;
    let data = vec![b'x'; 60_000];
    // Each message is charged about 4 x 60 KB: 120 of them are over ten budgets.
    let mut sent = 0u64;
    for i in 0..120 {
        let r = raw::exchange(
            server.addr,
            &post(&format!("/publish/f{}", i % 4), &[], &data),
            LIMIT,
        )
        .await;
        assert_eq!(r.status, 202);
        sent += 1;
        let (bytes, _) = server.shared.feed.retained();
        assert!(bytes <= budget, "retained {bytes} > budget {budget}");
    }
    let (bytes, messages) = server.shared.feed.retained();
    let evicted = server.shared.feed.evicted();
    assert_eq!(messages + evicted, sent);
    assert!(evicted >= 100, "evicted {evicted}");
    assert!(
        bytes > budget / 2,
        "retained {bytes}: the budget is used, not emptied"
    );
    // A subscriber behind the evicted messages gets the gap notice, then what is retained.
    let (mut s, _, mut dec, first) =
        raw::open_subscription(server.addr, Transport::Ws, "f0", 0).await;
    let mut items = dec.push(&first);
    let (more, _) = raw::read_items(&mut s, &mut dec, LIMIT, |i| !raw::seqs(i).is_empty()).await;
    items.extend(more);
    assert!(
        matches!(items.first(), Some(Item::Gap(g)) if g.from == 1),
        "{items:?}"
    );
    drop(s);
    let m = raw::exchange(server.addr, &get("/metrics", &[]), LIMIT).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains(&format!("pushlab_retained_bytes {bytes}")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "pushlab_evicted_messages_total{{cause=\"budget\"}} {evicted}"
    )));
    record(
        "bounds",
        "120 publishes of 60 KB over 4 topics (10x a 2 MiB --max-retained-bytes)",
        &format!("retained {bytes} bytes <= budget, {evicted} oldest evicted, gap notice to a subscriber behind them"),
    );
    assert_eq!(server.settle(LIMIT).await, 0);
}
