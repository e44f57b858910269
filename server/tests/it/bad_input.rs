//! Every bad input gets its status and a JSON `{"error": "..."}` body (or, where HTTP is not
//! spoken yet or any more, a closed connection or a WebSocket close code), and the server
//! keeps serving afterwards. No input panics it ([`pushlab_server::testing::TestServer::stop`] checks).
//!
//! ```text
//! bad topic, bad since, since ahead, bad Last-Event-ID     400
//! wrong method on a transport or publish                   405 + Allow
//! unknown path                                             404
//! long-poll timeout 0 or 121                               400
//! publish over --max-message-bytes                         413      non-UTF-8 publish  400
//! GET /ws/t without Upgrade                                426
//! WebSocket message over --max-message-bytes               close 1009
//! WebSocket binary frame                                   close 1003
//! a new topic past --max-topics                            503 + Retry-After
//! past --max-connections                                   503 + Retry-After
//! request head not sent within --header-read-timeout       connection closed
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use pushlab_proto::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Ending, Subscriber};
use crate::common::{
    assert_json_error, fetch, get, http_conn, req, start_server, test_config, ws_publish_n,
    HANG_GUARD,
};
use crate::per_transport;

/// A subscription request for `t` on `path_and_query`, with the Upgrade headers for ws.
fn sub_req(t: Transport, method: Method, path_and_query: &str) -> Request<Full<Bytes>> {
    let mut r = req(method, path_and_query, Bytes::new());
    if t == Transport::Ws {
        let h = r.headers_mut();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("sec-websocket-version", "13".parse().unwrap());
        h.insert(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
    }
    r
}

async fn bad_subscription_requests(t: Transport) {
    let server = start_server(test_config()).await;
    let addr = server.addr;
    let seg = t.path_segment();
    let latest = ws_publish_n(addr, "t", 3).await;

    let long_topic = "a".repeat(65);
    for topic in ["bad!topic", long_topic.as_str(), "a/b", "", "%41"] {
        let r = fetch(addr, sub_req(t, Method::GET, &format!("/{seg}/{topic}"))).await;
        assert_json_error(&r, StatusCode::BAD_REQUEST, &format!("{t} topic {topic:?}"));
    }
    let ahead = latest + 1;
    for query in [
        "since=abc".to_string(),
        "since=-1".into(),
        "since=".into(),
        "since=1&since=2".into(),
        "since=99999999999999999999999".into(),
        format!("since={ahead}"),
        format!("since={}", u64::MAX),
    ] {
        let r = fetch(addr, sub_req(t, Method::GET, &format!("/{seg}/t?{query}"))).await;
        assert_json_error(&r, StatusCode::BAD_REQUEST, &format!("{t} ?{query}"));
    }
    if t == Transport::Sse {
        for id in ["abc", "-1", &ahead.to_string()] {
            let mut r = sub_req(t, Method::GET, "/sse/t");
            r.headers_mut().insert("last-event-id", id.parse().unwrap());
            let r = fetch(addr, r).await;
            assert_json_error(&r, StatusCode::BAD_REQUEST, &format!("Last-Event-ID {id}"));
        }
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let r = fetch(addr, sub_req(t, method.clone(), &format!("/{seg}/t"))).await;
        assert_json_error(&r, StatusCode::METHOD_NOT_ALLOWED, &format!("{method} {t}"));
        assert_eq!(r.headers().get("allow").unwrap(), "GET, HEAD");
    }

    // Still serving: a proper subscription gets what is published next.
    let mut sub = Subscriber::connect(addr, t, "t", Some(latest))
        .await
        .expect("subscribe");
    let last = ws_publish_n(addr, "t", 2).await;
    sub.read_until(last).await;
    sub.close()
        .await
        .assert_clean(&format!("{t} after bad input"));
    server.stop().await;
}
per_transport!(bad_subscription_requests);

/// A connection past `--max-connections` gets 503 with Retry-After and a JSON reason, whatever
/// the open connections are doing; once they close, new ones are served again.
async fn connection_limit_answers_503(t: Transport) {
    let mut config = test_config();
    config.max_connections = 3;
    let server = start_server(config).await;
    let addr = server.addr;
    let latest = ws_publish_n(addr, "t", 1).await;

    let mut holders = Vec::new();
    for _ in 0..server.shared.config.max_connections {
        let mut s = Subscriber::connect(addr, t, "t", Some(latest))
            .await
            .expect("subscribe");
        if t == Transport::Poll {
            s.next().await; // one request; the connection stays open, idle
        }
        holders.push(s);
    }
    // Long polls: the requests are pending while the limit is tested.
    let pending: Vec<_> = if t == Transport::LongPoll {
        holders
            .drain(..)
            .map(|mut s| {
                tokio::spawn(async move {
                    s.next().await;
                    s
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    if t == Transport::LongPoll {
        // The pending requests have been routed once the server counts them.
        wait_for(|| {
            server
                .shared
                .metrics
                .transport(t)
                .requests
                .load(std::sync::atomic::Ordering::Relaxed)
                >= server.shared.config.max_connections as u64
        })
        .await;
    }

    // The refusal comes before the request is read: a raw socket sees it whole.
    let upgrade = if t == Transport::Ws {
        "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    } else {
        ""
    };
    let raw = raw_exchange(
        addr,
        format!(
            "GET /{}/t HTTP/1.1\r\nhost: x\r\n{upgrade}\r\n",
            t.path_segment()
        )
        .as_bytes(),
    )
    .await;
    let r = parse_response(&raw);
    assert_json_error(
        &r,
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("{t} past the limit"),
    );
    assert!(
        r.headers().get("retry-after").is_some(),
        "{t}: 503 without Retry-After"
    );

    // Free the slots: publish (answers the long polls), close everything.
    for s in holders {
        s.close().await;
    }
    if !pending.is_empty() {
        // One publish needs a connection of its own: wait for one to be free first.
        for p in pending {
            p.abort();
            let _ = p.await;
        }
    }
    wait_for(|| {
        Transport::ALL.iter().all(|&t| {
            server
                .shared
                .metrics
                .transport(t)
                .open_connections
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0
        })
    })
    .await;
    let r = get(addr, "/healthz").await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "{t}: serving again after the limit"
    );
    server.stop().await;
}
per_transport!(connection_limit_answers_503);

async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Bad input outside the five subscription endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_elsewhere() {
    let mut config = test_config();
    config.max_message_bytes = 1024;
    config.max_topics = 12;
    config.header_read_timeout = Duration::from_secs(1);
    let max = config.max_message_bytes;
    let server = start_server(config).await;
    let addr = server.addr;

    for path in [
        "/nope",
        "/nope/x",
        "/poll",
        "/publishx/t",
        "/sse",
        "/ws",
        "/poll/",
    ] {
        let r = get(addr, path).await;
        if path == "/poll/" {
            // An empty topic name is a bad topic, not an unknown path.
            assert_json_error(&r, StatusCode::BAD_REQUEST, path);
        } else {
            assert_json_error(&r, StatusCode::NOT_FOUND, path);
        }
    }
    for (method, path, allow) in [
        (Method::GET, "/publish/t", "POST"),
        (Method::PUT, "/publish/t", "POST"),
        (Method::POST, "/healthz", "GET, HEAD"),
        (Method::DELETE, "/metrics", "GET, HEAD"),
    ] {
        let r = fetch(addr, req(method.clone(), path, Bytes::new())).await;
        assert_json_error(
            &r,
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{method} {path}"),
        );
        assert_eq!(r.headers().get("allow").unwrap(), allow);
    }
    for timeout in ["0", "121", "abc", "-1", "1.5"] {
        let path = format!("/longpoll/t?since=0&timeout={timeout}");
        let r = get(addr, &path).await;
        assert_json_error(&r, StatusCode::BAD_REQUEST, &path);
    }

    // Publish bounds: exactly the limit passes; one byte more, declared or streamed, is 413.
    let ok = fetch(addr, req(Method::POST, "/publish/t", "x".repeat(max))).await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED, "{:?}", ok.body());
    let r = fetch(addr, req(Method::POST, "/publish/t", "x".repeat(max + 1))).await;
    assert_json_error(
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "declared length over max",
    );
    let r = raw_exchange(
        addr,
        format!(
            "POST /publish/t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            max + 1,
            "y".repeat(max + 1)
        )
        .as_bytes(),
    )
    .await;
    assert_json_error(
        &parse_response(&r),
        StatusCode::PAYLOAD_TOO_LARGE,
        "chunked body over max",
    );
    let r = fetch(
        addr,
        req(
            Method::POST,
            "/publish/t",
            Bytes::from_static(b"ab\xff\xfecd"),
        ),
    )
    .await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "non-UTF-8 publish");

    // WebSocket without Upgrade, or with half of it.
    let r = get(addr, "/ws/t").await;
    assert_json_error(&r, StatusCode::UPGRADE_REQUIRED, "GET /ws without Upgrade");
    let mut half = req(Method::GET, "/ws/t", Bytes::new());
    half.headers_mut()
        .insert("upgrade", "websocket".parse().unwrap());
    let r = fetch(addr, half).await;
    assert_json_error(
        &r,
        StatusCode::UPGRADE_REQUIRED,
        "Upgrade without Connection",
    );

    // A WebSocket message of exactly the limit publishes; one byte more closes with 1009.
    let mut ws = Subscriber::connect(addr, Transport::Ws, "big", Some(0))
        .await
        .expect("ws");
    ws.ws_send("z".repeat(max)).await;
    ws.read_until(1).await;
    ws.ws_send("z".repeat(max + 1)).await;
    let end = ws.read_to_end().await;
    assert_eq!(end, Ending::WsClose(Some(1009)), "oversized ws message");
    // Far over: most of the frame is still unread when the server closes.
    let mut ws = Subscriber::connect(addr, Transport::Ws, "big", None)
        .await
        .expect("ws");
    ws.ws_send("z".repeat(max * 256)).await;
    let end = ws.read_to_end().await;
    assert_eq!(end, Ending::WsClose(Some(1009)), "far oversized ws message");
    // Binary frames are not spoken here: close 1003.
    let mut ws = Subscriber::connect(addr, Transport::Ws, "big", None)
        .await
        .expect("ws");
    ws.ws_send_binary(vec![1, 2, 3]).await;
    assert_eq!(
        ws.read_to_end().await,
        Ending::WsClose(Some(1003)),
        "binary frame"
    );

    // Slow senders: nothing at all, half a request line, a head one byte at a time, and half
    // an HTTP/2 preface are all cut at the header-read timeout.
    let timeout = server.shared.config.header_read_timeout;
    let trickles: [&[u8]; 5] = [
        b"",
        // A whole HTTP/2 preface at once, then nothing (no request ever).
        b"!PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /heal",
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        b"PRI * HTTP/2.0\r\n",
    ];
    let cuts = trickles.map(|bytes| {
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = slow_sender(addr, bytes, Duration::from_millis(100)).await;
            (bytes, answer, started.elapsed())
        })
    });
    for cut in cuts {
        let (bytes, answer, took) = cut.await.unwrap();
        let what = String::from_utf8_lossy(bytes);
        // Cut without an answer (HTTP/2 gets the server's SETTINGS first, nothing more).
        assert!(
            !answer.contains("HTTP/1.1") || answer.starts_with("HTTP/1.1 408"),
            "{what:?}: got {answer:?}"
        );
        assert!(
            took >= timeout,
            "{what:?} cut after {took:?}, before the timeout"
        );
    }

    // Still serving, and nothing above panicked it.
    let r = get(addr, "/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut c = http_conn(addr).await;
    let r = c
        .request(req(Method::POST, "/publish/after", "still here"))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    c.close().await;
    // Topics are made on first use, up to --max-topics: past it 503 with Retry-After.
    let max_topics = server.shared.config.max_topics;
    let made = server.shared.feed.topic_count();
    for i in made..max_topics {
        let r = fetch(addr, req(Method::POST, &format!("/publish/n{i}"), "x")).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = get(addr, "/poll/one-too-many").await;
    assert_json_error(&r, StatusCode::SERVICE_UNAVAILABLE, "past --max-topics");
    assert!(r.headers().get("retry-after").is_some());
    let r = get(addr, "/poll/t").await;
    assert_eq!(r.status(), StatusCode::OK, "existing topics still served");

    let m = crate::common::scrape(addr).await;
    for reason in [
        "bad_request",
        "not_found",
        "method_not_allowed",
        "payload_too_large",
        "upgrade_required",
        "ws_message_too_big",
        "header_timeout",
        "ws_protocol_error",
        "topic_limit",
    ] {
        let key = format!("pushlab_rejected_total{{reason=\"{reason}\"}}");
        assert!(m.get(&key).is_some_and(|&n| n >= 1.0), "{key} not counted");
    }
    server.stop().await;
}

/// Sends `bytes` one at a time `every` apart (all at once if they start with `!`), then
/// waits; what the server answered before it closed the connection (the test fails if it
/// never does).
async fn slow_sender(addr: SocketAddr, bytes: &[u8], every: Duration) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    let bytes = match bytes.strip_prefix(b"!") {
        Some(burst) => {
            tcp.write_all(burst).await.unwrap();
            &[][..]
        }
        None => bytes,
    };
    let res = tokio::time::timeout(HANG_GUARD, async {
        for b in bytes {
            if tcp.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                n = tcp.read_buf(&mut got) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
            }
        }
        loop {
            match tcp.read_buf(&mut got).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        res.is_ok(),
        "a slow sender ({:?}) was never cut",
        String::from_utf8_lossy(bytes)
    );
    String::from_utf8_lossy(&got).into_owned()
}

/// Writes `request` on a fresh socket and reads until the server closes it.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match tcp.read_buf(&mut got).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

/// A whole HTTP/1.1 response with a content-length body, from its raw bytes.
fn parse_response(raw: &str) -> http::Response<Bytes> {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let mut r = http::Response::builder().status(status.parse::<u16>().unwrap());
    for line in lines {
        let (k, v) = line.split_once(':').expect("header line");
        r = r.header(k.trim(), v.trim());
    }
    let r = r.body(Bytes::copy_from_slice(body.as_bytes())).unwrap();
    let len: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, r.body().len(), "whole body in {raw:?}");
    r
}

/// An oversized WebSocket message sent whole, read only afterwards (as simple clients do): the
/// close 1009 must still be there to read, not lost to a reset because the server dropped the
/// socket with the rest of the frame unread (it half-closes and drains first).
#[tokio::test]
async fn oversized_ws_message_close_survives_a_client_that_reads_late() {
    let mut config = test_config();
    config.max_message_bytes = 1024;
    let server = start_server(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"GET /ws/late HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
          sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(tcp.read_buf(&mut head).await.unwrap() > 0, "no 101");
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // One masked text frame of 300,000 bytes (64-bit length), mask key 0.
    let len: u64 = 300_000;
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.resize(frame.len() + len as usize, b'z');
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&frame).await;
        wr
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rd.read_buf(&mut got).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => panic!("read failed ({e}) before the close frame arrived"),
            }
        }
    })
    .await;
    // Server frames are unmasked: 0x88, length, then the close code.
    assert!(got.len() >= 4 && got[0] == 0x88, "no close frame: {got:?}");
    assert_eq!(u16::from_be_bytes([got[2], got[3]]), 1009);
    drop(writer.await);
    server.stop().await;
}
