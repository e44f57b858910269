//! Faults: connections cut mid-message, dropped by the thousand, readers that stall, and a
//! publish flood. Nothing is lost, nothing is left behind, memory stays bounded.

use std::time::{Duration, Instant};

use pushlab_proto::Transport;
use pushlab_server::metrics::Rejection;
use pushlab_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::fixture::{self, record};
use crate::raw::{self, Decoder, Item};

const LIMIT: Duration = Duration::from_secs(15);

/// Everything after `since` up to seq `upto`, on a fresh subscription (polls poll again).
async fn collect(
    addr: std::net::SocketAddr,
    t: Transport,
    topic: &str,
    since: u64,
    upto: u64,
) -> Vec<Item> {
    let mut all = Vec::new();
    let mut cursor = since;
    let deadline = Instant::now() + LIMIT;
    while cursor < upto && Instant::now() < deadline {
        let (mut s, status, mut dec, first) = raw::open_subscription(addr, t, topic, cursor).await;
        assert!(status == 200 || status == 101, "{t}: status {status}");
        let mut items = dec.push(&first);
        let done = |items: &[Item]| {
            items.iter().any(|i| matches!(i, Item::Next(_)))
                || raw::seqs(items).last().is_some_and(|&s| s >= upto)
        };
        if !done(&items) {
            let (more, _) = raw::read_items(&mut s, &mut dec, LIMIT, done).await;
            items.extend(more);
        }
        cursor = match items.iter().find_map(|i| match i {
            Item::Next(n) => Some(*n),
            _ => None,
        }) {
            Some(n) => n,
            None => raw::seqs(&items).last().copied().unwrap_or(cursor),
        };
        all.extend(
            items
                .into_iter()
                .filter(|i| !matches!(i, Item::Next(_) | Item::Control(..))),
        );
    }
    all
}

/// A subscriber whose connection is cut halfway through a message (half a chunk, half an SSE
/// event, half a WebSocket frame, half a poll body) resumes from the last message it holds
/// whole and gets every message exactly once, in order, including those published while it
/// was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_mid_message_resumes_without_loss_on_every_transport() {
    let server = fixture::start_server(fixture::config()).await;
    for t in Transport::ALL {
        let name = format!("cut-{t}");
        let topic = server.shared.feed.topic(&name).unwrap();
        let first_batch = 40u64;
        for i in 0..first_batch {
            server
                .shared
                .feed
                .publish(&topic, &format!("message {i} {}", "p".repeat(100)));
        }
        // Read the raw bytes of all of them, then find where each message ends on the wire.
        let (mut s, status, mut scratch, mut wire) =
            raw::open_subscription(server.addr, t, &name, 0).await;
        assert!(status == 200 || status == 101);
        let mut got = raw::seqs(&scratch.push(&wire)).len() as u64;
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + LIMIT;
        while got < first_batch && Instant::now() < deadline {
            let n = tokio::time::timeout(LIMIT, s.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "{t}: closed early");
            wire.extend_from_slice(&chunk[..n]);
            got += raw::seqs(&scratch.push(&chunk[..n])).len() as u64;
        }
        assert_eq!(got, first_batch, "{t}");
        let mut ends = Vec::new();
        let mut bytewise = Decoder::new(t, wire.len());
        for (i, b) in wire.iter().enumerate() {
            for _ in raw::seqs(&bytewise.push(std::slice::from_ref(b))) {
                ends.push(i + 1);
            }
        }
        // Cut in the middle of a message: the 21st for streams, the one body for polls.
        let (held, cut) = if t.is_request_response() {
            (0, ends[0] / 2)
        } else {
            (20, (ends[19] + ends[20]) / 2)
        };
        let mut client = Decoder::new(t, wire.len());
        let mut items = client.push(&wire[..cut]);
        assert_eq!(
            raw::seqs(&items).len(),
            held,
            "{t}: a cut mid-message must hold only whole ones"
        );
        // The client hangs up hard (RST, unread bytes in its buffer).
        s.set_zero_linger().unwrap();
        drop(s);
        // More is published while it is away.
        for i in 0..20 {
            server
                .shared
                .feed
                .publish(&topic, &format!("while away {i}"));
        }
        let total = first_batch + 20;
        let last_held = raw::seqs(&items).last().copied().unwrap_or(0);
        items.extend(collect(server.addr, t, &name, last_held, total).await);
        let seqs = raw::seqs(&items);
        assert_eq!(
            seqs,
            (1..=total).collect::<Vec<_>>(),
            "{t}: lost, duplicated or reordered"
        );
        assert!(
            !items.iter().any(|i| matches!(i, Item::Gap(_))),
            "{t}: unexpected gap"
        );
        record(
            "fault",
            &format!("{t} subscriber cut halfway through a message (byte {cut} of {}), resumed from seq {last_held}", wire.len()),
            &format!("all {total} messages exactly once, in order (0 lost)"),
        );
    }
    assert_eq!(server.settle(LIMIT).await, 0);
}

/// 1,000 connections of every kind, dropped abruptly at every stage (before a byte, inside a
/// head, mid-handshake, mid-stream, mid-body): afterwards every open-connection gauge is 0, no
/// task is left, and memory has not grown past a generous bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_abrupt_drops_leave_nothing_behind() {
    let _heavy = fixture::HEAVY.lock().await;
    let server = fixture::start_server(fixture::config()).await;
    let topic = server.shared.feed.topic("drops").unwrap();
    for i in 0..200 {
        server
            .shared
            .feed
            .publish(&topic, &format!("m{i} {}", "x".repeat(200)));
    }
    // Warm up (allocator pools, runtime workers) before taking the baseline.
    let _ = raw::exchange(server.addr, &raw::get("/healthz", &[]), LIMIT).await;
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let rss_before = raw::rss_bytes();

    const KINDS: [&str; 10] = [
        "connect then RST",
        "half a request line then close",
        "SSE head read, then RST mid-stream",
        "WebSocket upgrade sent, closed before the 101",
        "WebSocket open, half a masked frame, then RST",
        "chunked stream, a few bytes read, then RST",
        "long poll sent, then close",
        "publish with 10 of 100 body bytes, then close",
        "poll sent, closed before reading",
        "HTTP/2 preface, then close",
    ];
    let addr = server.addr;
    let t0 = Instant::now();
    let mut done = 0usize;
    for batch in 0..10 {
        let mut set = JoinSet::new();
        for i in 0..100usize {
            let kind = (batch * 100 + i) % KINDS.len();
            set.spawn(async move {
                let Ok(mut s) = TcpStream::connect(addr).await else { return };
                let req: Vec<u8> = match kind {
                    0 => Vec::new(),
                    1 => b"GET /sse/drops HT".to_vec(),
                    2 => raw::subscribe_request(Transport::Sse, "drops", 0, &[]),
                    3 | 4 => raw::subscribe_request(Transport::Ws, "drops", 0, &[]),
                    5 => raw::subscribe_request(Transport::Stream, "drops", 0, &[]),
                    6 => b"GET /longpoll/drops?timeout=1 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
                    7 => b"POST /publish/drops HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789".to_vec(),
                    8 => raw::get("/poll/drops?since=0", &[]),
                    _ => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
                };
                let _ = s.write_all(&req).await;
                let mut buf = [0u8; 700];
                if matches!(kind, 2 | 4 | 5) {
                    let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
                }
                if kind == 4 {
                    let frame = raw::ws_client_frame(1, b"half of this frame is sent", true);
                    let _ = s.write_all(&frame[..frame.len() / 2]).await;
                }
                if matches!(kind, 0 | 2 | 4 | 5) {
                    let _ = s.set_zero_linger();
                }
                drop(s);
            });
        }
        while set.join_next().await.is_some() {
            done += 1;
        }
    }
    assert_eq!(done, 1000);
    let open = server.settle(LIMIT).await;
    let settle_s = t0.elapsed().as_secs_f64();
    assert_eq!(open, 0, "open-connection gauges not back to 0");
    assert_eq!(server.shared.tasks.len(), 0, "WebSocket session tasks left");
    // Let the connection tasks finish their last poll.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tasks_after = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let rss_after = raw::rss_bytes();
    assert!(
        tasks_after <= tasks_before + 2,
        "tasks grew from {tasks_before} to {tasks_after}"
    );
    let grew = rss_after.saturating_sub(rss_before);
    assert!(grew < 64 << 20, "RSS grew by {grew} bytes");
    // The server still serves.
    assert_eq!(
        raw::exchange(addr, &raw::get("/healthz", &[]), LIMIT)
            .await
            .status,
        200
    );
    record(
        "fault",
        &format!("1,000 connections dropped abruptly ({})", KINDS.join("; ")),
        &format!(
            "all gauges 0 after {settle_s:.1} s; runtime tasks {tasks_before} -> {tasks_after}; test-process RSS {:.1} -> {:.1} MiB",
            rss_before as f64 / 1048576.0,
            rss_after as f64 / 1048576.0
        ),
    );
}

/// Readers that never read (tiny receive buffer) on SSE, stream and WebSocket do not slow the
/// others: those get every message while the stalled ones sit, and the stalled ones are cut
/// (idle timeout, WebSocket dead peer) rather than buffered without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_slow_the_others() {
    let _heavy = fixture::HEAVY.lock().await;
    let server = fixture::start_server(fixture::config()).await;
    let topic = server.shared.feed.topic("stall").unwrap();
    // 6 MiB per reader: more than the kernel's send buffer can hide (tcp_wmem max is 4 MiB),
    // so the stalled sockets really stall the server's writes.
    let messages = 1500u64;
    let payload = "s".repeat(4096);

    async fn run_round(
        server: &fixture::TestServer,
        topic: &std::sync::Arc<pushlab_server::feed::Topic>,
        messages: u64,
        payload: &str,
        stalled: bool,
    ) -> (Duration, Vec<Vec<u64>>, Vec<TcpStream>) {
        let start = topic.latest_seq();
        let mut stalled_socks = Vec::new();
        if stalled {
            for t in [Transport::Sse, Transport::Stream, Transport::Ws] {
                let mut s = raw::connect_from(server.addr, None, Some(4096)).await;
                s.write_all(&raw::subscribe_request(t, "stall", start, &[]))
                    .await
                    .unwrap();
                stalled_socks.push(s);
            }
        }
        let mut readers = JoinSet::new();
        for (i, t) in [
            Transport::Sse,
            Transport::Stream,
            Transport::Ws,
            Transport::LongPoll,
            Transport::Poll,
        ]
        .into_iter()
        .cycle()
        .take(10)
        .enumerate()
        {
            let addr = server.addr;
            readers.spawn(async move {
                let items = collect(addr, t, "stall", start, start + messages).await;
                (i, raw::seqs(&items))
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        // A steady publisher: 1,500 messages of 4 KiB over about 1.5 s.
        for i in 0..messages {
            server.shared.feed.publish(topic, payload);
            if i % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut got = vec![Vec::new(); 10];
        while let Some(r) = readers.join_next().await {
            let (i, seqs) = r.unwrap();
            got[i] = seqs;
        }
        (t0.elapsed(), got, stalled_socks)
    }

    let (baseline, got, _) = run_round(&server, &topic, messages, &payload, false).await;
    let base_start = topic.latest_seq() - messages;
    for seqs in &got {
        assert_eq!(
            seqs,
            &((base_start + 1)..=(base_start + messages)).collect::<Vec<_>>()
        );
    }
    let rss_before = raw::rss_bytes();
    let (with_stall, got, stalled) = run_round(&server, &topic, messages, &payload, true).await;
    let start = topic.latest_seq() - messages;
    for (i, seqs) in got.iter().enumerate() {
        assert_eq!(
            seqs,
            &((start + 1)..=(start + messages)).collect::<Vec<_>>(),
            "reader {i} lost messages beside the stalled ones"
        );
    }
    // The stalled ones are cut in bounded time, and counted.
    let idle = server.wait_rejected(Rejection::IdleTimeout, 2, LIMIT).await;
    let dead = server.wait_rejected(Rejection::WsDeadPeer, 1, LIMIT).await;
    assert!(
        idle >= 2,
        "stalled SSE and stream readers not cut by the idle timeout ({idle})"
    );
    assert!(dead >= 1, "stalled WebSocket reader not dropped");
    let grew = raw::rss_bytes().saturating_sub(rss_before);
    assert!(
        grew < 64 << 20,
        "RSS grew by {grew} bytes with stalled readers"
    );
    drop(stalled);
    assert_eq!(server.settle(LIMIT).await, 0);
    record(
        "fault",
        "3 stalled readers (SSE, stream, WebSocket; 4 KiB receive buffer, never read) beside 10 live readers of 1,500 x 4 KiB messages",
        &format!(
            "live readers got all 1,500 each (0 lost) in {:.2} s vs {:.2} s with no stalled reader; stalled SSE/stream cut by idle timeout, WebSocket by dead-peer timeout",
            with_stall.as_secs_f64(),
            baseline.as_secs_f64()
        ),
    );
}

/// Statuses of `n` pipelined responses (each with a content-length body).
async fn read_responses(s: &mut TcpStream, n: usize) -> Vec<u16> {
    let mut buf = Vec::new();
    let mut statuses = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(LIMIT, async {
        while statuses.len() < n {
            while let Some(end) = raw::head_end(&buf) {
                let (status, headers) = raw::parse_head(&buf[..end]);
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() < end + len {
                    break;
                }
                buf.drain(..end + len);
                statuses.push(status);
            }
            if statuses.len() >= n {
                break;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
    })
    .await;
    statuses
}

/// A publish flood past what the server will take: HTTP publishers meet 429 (per-connection
/// rate), WebSocket publishers meet backpressure, the server keeps answering, and memory is
/// bounded by the history ring, not by the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_flood_meets_429_and_backpressure_with_bounded_memory() {
    let cfg = ServerConfig {
        history: 512,
        max_subscriber_lag: 512,
        publish_rate_per_s: 20.0,
        publish_burst: 10,
        ..fixture::config()
    };
    let _heavy = fixture::HEAVY.lock().await;
    let rate = cfg.publish_rate_per_s;
    let burst = cfg.publish_burst;
    let server = fixture::start_server(cfg).await;
    let addr = server.addr;
    let body = vec![b'f'; 8 * 1024];
    let rss_before = raw::rss_bytes();
    let flood_for = Duration::from_secs(2);

    let mut set = JoinSet::new();
    // 8 HTTP publishers, pipelining 40 requests at a time on keep-alive connections.
    for _ in 0..8 {
        let body = body.clone();
        set.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut one = format!(
                "POST /publish/flood HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            one.extend_from_slice(&body);
            let batch = one.repeat(40);
            let (mut accepted, mut limited) = (0u64, 0u64);
            let t0 = Instant::now();
            while t0.elapsed() < flood_for {
                if s.write_all(&batch).await.is_err() {
                    break;
                }
                for status in read_responses(&mut s, 40).await {
                    match status {
                        202 => accepted += 1,
                        429 => limited += 1,
                        other => panic!("flood answered {other}"),
                    }
                }
            }
            ("http", accepted, limited)
        });
    }
    // 4 WebSocket publishers writing frames without waiting.
    for _ in 0..4 {
        set.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&raw::subscribe_request(Transport::Ws, "flood", 0, &[]))
                .await
                .unwrap();
            let frame = raw::ws_client_frame(1, &[b'w'; 8 * 1024], true);
            let mut sent = 0u64;
            let t0 = Instant::now();
            // The server also pushes the topic to this socket; drain it so only the publish
            // direction is throttled.
            let (mut rd, mut wr) = s.into_split();
            let drain = tokio::spawn(async move {
                let mut b = vec![0u8; 64 * 1024];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(5), rd.read(&mut b)).await
                {
                    if n == 0 {
                        break;
                    }
                }
            });
            while t0.elapsed() < flood_for {
                match tokio::time::timeout(Duration::from_millis(100), wr.write_all(&frame)).await {
                    Ok(Ok(())) => sent += 1,
                    Ok(Err(_)) => break,
                    Err(_) => {} // backpressure: the server is not reading
                }
            }
            drop(wr);
            drain.abort();
            ("ws", sent, 0)
        });
    }
    // Meanwhile the server keeps answering.
    let mut health_ms = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < flood_for {
        let t = Instant::now();
        let r = raw::exchange(addr, &raw::get("/healthz", &[]), LIMIT).await;
        assert_eq!(r.status, 200);
        health_ms.push(t.elapsed().as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut http_ok, mut http_429, mut ws_sent) = (0, 0, 0);
    while let Some(r) = set.join_next().await {
        let (kind, a, b) = r.unwrap();
        if kind == "http" {
            http_ok += a;
            http_429 += b;
        } else {
            ws_sent += a;
        }
    }
    let published = server
        .shared
        .metrics
        .published_messages
        .load(std::sync::atomic::Ordering::Relaxed);
    let rss_grew = raw::rss_bytes().saturating_sub(rss_before);
    assert!(
        http_429 > 0,
        "no 429 in the flood ({http_ok} accepted, ws {ws_sent})"
    );
    assert!(server.rejected(Rejection::PublishRate) > 0);
    // 12 connections can publish at most rate x time + burst each (plus one in flight per ws).
    let secs = flood_for.as_secs_f64() + 1.0;
    let ceiling = 12.0 * (rate * secs + f64::from(burst) + 2.0);
    assert!(
        (published as f64) <= ceiling,
        "published {published} > ceiling {ceiling}"
    );
    // Retained: 512 x ~8 KiB = 4 MiB, plus socket buffers; 128 MiB is generous.
    assert!(rss_grew < 128 << 20, "RSS grew by {rss_grew} bytes");
    assert_eq!(server.settle(LIMIT).await, 0);
    health_ms.sort_unstable();
    record(
        "fault",
        "publish flood for 2 s: 8 pipelining HTTP publishers + 4 WebSocket publishers, 8 KiB each (--publish-rate 20 --publish-burst 10)",
        &format!(
            "HTTP {http_ok} accepted, {http_429} x 429; WebSocket {ws_sent} frames written under backpressure; {published} published in all; /healthz answered throughout (max {} ms); test-process RSS +{:.1} MiB",
            health_ms.last().copied().unwrap_or(0),
            rss_grew as f64 / 1048576.0
        ),
    );
}
