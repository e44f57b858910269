//! Shutdown ends every transport cleanly and in time: streams get their last chunk
//! (`0\r\n\r\n`: hyper's client reports the body's end only after it), WebSockets get close
//! 1001, pending long polls get an answer, idle and silent connections are closed, and `serve`
//! returns within 5 s.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use pushlab_proto::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Ending, Event, Subscriber};
use crate::common::{http_conn, req, start_server, test_config, Publisher, HANG_GUARD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_transport_cleanly_and_in_time() {
    let server = start_server(test_config()).await;
    let addr = server.addr;
    let mut p = Publisher::new(addr, "t").await;
    let first = p.publish("before").await;
    p.close().await;

    // Streams and WebSockets, live (each has read the first message).
    let mut streams = Vec::new();
    for t in [Transport::Sse, Transport::Stream, Transport::Ws] {
        let mut s = Subscriber::connect(addr, t, "t", Some(0))
            .await
            .expect("subscribe");
        s.read_until(first).await;
        streams.push(tokio::spawn(async move {
            let end = s.read_to_end().await;
            (s.transport, end)
        }));
    }
    // A long poll held when shutdown comes.
    let mut lp = Subscriber::connect(addr, Transport::LongPoll, "t", Some(first))
        .await
        .expect("longpoll");
    let long_poll = tokio::spawn(async move { lp.next().await });
    // An idle keep-alive connection, and one that never sent a byte.
    let mut idle = http_conn(addr).await;
    let r = idle
        .request(req(Method::GET, "/poll/t", Bytes::new()))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // A raw stream subscriber, to see the last chunk's very bytes.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET /stream/t?since=0 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw_got = Vec::new();
    while !raw_got.ends_with(b"\"data\":\"before\"}\n\r\n") {
        let n = tokio::time::timeout(HANG_GUARD, raw.read_buf(&mut raw_got))
            .await
            .expect("raw stream hung")
            .unwrap();
        assert!(n > 0, "raw stream closed early");
    }
    // The long poll is held once the server has routed it.
    let metrics = server.shared.metrics.clone();
    while metrics
        .transport(Transport::LongPoll)
        .requests
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let took = server.stop().await;
    assert!(
        took < Duration::from_secs(5),
        "serve took {took:?} to return"
    );

    for s in streams {
        let (t, end) = s.await.unwrap();
        let want = if t == Transport::Ws {
            Ending::WsClose(Some(1001))
        } else {
            Ending::BodyEnd
        };
        assert_eq!(end, want, "{t} at shutdown");
    }
    match long_poll.await.unwrap() {
        Event::Items(items) => assert!(items.is_empty(), "long poll answered {items:?}"),
        Event::End(e) => panic!("pending long poll got no answer: {e:?}"),
    }
    tokio::time::timeout(HANG_GUARD, idle.task)
        .await
        .expect("idle keep-alive connection left open")
        .unwrap();
    tokio::time::timeout(HANG_GUARD, raw.read_to_end(&mut raw_got))
        .await
        .expect("raw stream left open")
        .unwrap();
    assert!(
        raw_got.ends_with(b"\n\r\n0\r\n\r\n"),
        "stream's last bytes: {:?}",
        String::from_utf8_lossy(&raw_got[raw_got.len().saturating_sub(40)..])
    );
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(HANG_GUARD, silent.read(&mut buf))
        .await
        .expect("silent connection left open");
    assert!(matches!(n, Ok(0) | Err(_)), "silent connection got {n:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

/// Readers that stopped reading cannot take a last chunk or a close frame; shutdown still
/// returns within 5 s (the grace period, then the connections are dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_stalled_readers_returns_in_time() {
    let server = start_server(test_config()).await;
    let addr = server.addr;
    let mut stalled = Vec::new();
    for t in [Transport::Sse, Transport::Stream, Transport::Ws] {
        stalled.push(
            Subscriber::connect_small_buffer(addr, t, "flood", Some(0))
                .await
                .expect("subscribe"),
        );
    }
    // Enough to fill every socket buffer on the way (see gap::stalled_reader...).
    let data = "f".repeat(40 * 1024);
    let mut p = Publisher::new(addr, "flood").await;
    for _ in 0..200 {
        p.publish(&data).await;
    }
    p.close().await;
    let took = server.stop().await;
    assert!(
        took < Duration::from_secs(5),
        "serve took {took:?} to return"
    );
    drop(stalled);
}
