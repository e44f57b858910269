//! Every transport over h2c and over h2 with TLS, and WebSocket over wss (HTTP/1.1): 20
//! messages (10 from history, 10 published live) arrive complete and in order, and the server's
//! counters equal the client's sockets: wire bytes (`pushlab_bytes_*_total`, TCP, below TLS),
//! plaintext bytes (`pushlab_plaintext_bytes_*_total`, above TLS), requests and the protocol
//! each came in (`pushlab_protocol_requests_total`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use pushlab_proto::Transport;
use pushlab_server::metrics::{Protocol, Slot};
use pushlab_server::testing::{start_server, with_self_signed_tls};
use pushlab_server::ServerConfig;

use crate::link::Mode;
use crate::sub::Sub;

/// Test settings: nothing written on its own (no heartbeat or ping due) so that the client has
/// read every byte the server wrote when it closes.
pub fn quiet_config(mode: Mode) -> ServerConfig {
    let config = ServerConfig {
        heartbeat_interval: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(7200),
        ws_ping_interval: Duration::from_secs(3600),
        default_longpoll_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    match mode {
        Mode::H2c => config,
        _ => with_self_signed_tls(config),
    }
}

async fn delivers_in_order_and_counts_to_the_byte(mode: Mode, t: Transport) {
    let server = start_server(quiet_config(mode)).await;
    let topic = server.shared.feed.topic("h2").unwrap();
    for i in 1..=10 {
        server.shared.feed.publish(&topic, &format!("history {i}"));
    }
    let mut sub = Sub::open(&server, mode, t, "h2", 0).await;
    let expected_alpn: Option<&[u8]> = match mode {
        Mode::H2c => None,
        Mode::H2Tls => Some(b"h2"),
        Mode::H1Tls => Some(b"http/1.1"),
    };
    assert_eq!(sub.link.alpn.as_deref(), expected_alpn, "{mode:?} {t}");
    let mut seqs = sub.read_until(t, "h2", 10).await;
    for i in 11..=20 {
        server.shared.feed.publish(&topic, &format!("live {i}"));
    }
    seqs.extend(sub.read_until(t, "h2", 20).await);
    assert_eq!(
        seqs,
        (1..=20).collect::<Vec<u64>>(),
        "{mode:?} {t}: in order, once"
    );
    let requests = sub.requests;
    let link = sub.close().await;
    assert_eq!(
        server.settle(Duration::from_secs(10)).await,
        0,
        "connection closed"
    );

    let c = server.shared.metrics.transport(t);
    let got = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    // For the report: what 20 messages (about 110 bytes of MESSAGE each) cost on one
    // connection, both ways, on the wire and above TLS.
    println!(
        "bytes {mode:?} {t}: wire up {} down {}, plaintext up {} down {}, {requests} requests",
        link.wire.written(),
        link.wire.read(),
        link.plaintext.written(),
        link.plaintext.read()
    );
    assert!(link.wire.read() > link.plaintext.read() || mode == Mode::H2c);
    assert_eq!(
        (got(&c.bytes_read), got(&c.bytes_written)),
        (link.wire.written(), link.wire.read()),
        "{mode:?} {t}: server wire (read, written) vs client wire (written, read)"
    );
    assert_eq!(
        (
            got(&c.plaintext_bytes_read),
            got(&c.plaintext_bytes_written)
        ),
        (link.plaintext.written(), link.plaintext.read()),
        "{mode:?} {t}: server plaintext (read, written) vs client plaintext (written, read)"
    );
    assert_eq!(got(&c.requests), requests, "{mode:?} {t}");
    assert_eq!(got(&c.delivered_messages), 20, "{mode:?} {t}");
    let protocol = match mode {
        Mode::H2c => Protocol::H2c,
        Mode::H2Tls => Protocol::H2,
        Mode::H1Tls => Protocol::Http1Tls,
    };
    let m = &server.shared.metrics;
    assert_eq!(
        m.protocol_requests(Slot::Transport(t), protocol),
        requests,
        "{mode:?} {t}"
    );
    for p in Protocol::ALL {
        let expect = u64::from(p == protocol);
        assert_eq!(
            m.protocol_connections(p),
            expect,
            "{mode:?} {t}: one {protocol:?} connection"
        );
    }
    let text = m.render(1);
    let (p, tls) = protocol.labels();
    let line = format!(
        "pushlab_protocol_requests_total{{transport=\"{}\",protocol=\"{p}\",tls=\"{tls}\"}} {requests}",
        t.as_str()
    );
    assert!(text.contains(&line), "{line} in /metrics");
    server.stop().await;
}

macro_rules! cases {
    ($($name:ident: $mode:expr, $t:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            delivers_in_order_and_counts_to_the_byte($mode, $t).await
        }
    )*};
}

cases! {
    h2c_poll: Mode::H2c, Transport::Poll;
    h2c_longpoll: Mode::H2c, Transport::LongPoll;
    h2c_sse: Mode::H2c, Transport::Sse;
    h2c_stream: Mode::H2c, Transport::Stream;
    h2c_ws_extended_connect: Mode::H2c, Transport::Ws;
    h2_tls_poll: Mode::H2Tls, Transport::Poll;
    h2_tls_longpoll: Mode::H2Tls, Transport::LongPoll;
    h2_tls_sse: Mode::H2Tls, Transport::Sse;
    h2_tls_stream: Mode::H2Tls, Transport::Stream;
    h2_tls_ws_extended_connect: Mode::H2Tls, Transport::Ws;
    wss_http1: Mode::H1Tls, Transport::Ws;
}

/// Shutdown on HTTP/2 over TLS: GOAWAY, each stream ends properly (END_STREAM), a WebSocket
/// over HTTP/2 gets close 1001, and `serve` returns within the grace period.
#[tokio::test]
async fn shutdown_ends_h2_streams_and_websockets_cleanly() {
    let config = ServerConfig {
        shutdown_grace: Duration::from_secs(4),
        ..quiet_config(Mode::H2Tls)
    };
    let server = start_server(config).await;
    let mut subs = Vec::new();
    for t in [Transport::Sse, Transport::Stream, Transport::Ws] {
        subs.push((t, Sub::open(&server, Mode::H2Tls, t, "down", 0).await));
    }
    let topic = server.shared.feed.topic("down").unwrap();
    server.shared.feed.publish(&topic, "before shutdown");
    for (t, sub) in &mut subs {
        assert_eq!(sub.read_until(*t, "down", 1).await, vec![1]);
    }
    let stopping = tokio::spawn(server.stop());
    for (t, sub) in &mut subs {
        let expect = if *t == Transport::Ws {
            "close 1001"
        } else {
            "end"
        };
        assert_eq!(sub.read_end().await, expect, "{t}");
    }
    let took = stopping.await.expect("stop");
    assert!(
        took < Duration::from_secs(4),
        "serve returned in {took:?}, within the grace"
    );
    for (_, sub) in subs {
        sub.link.close().await;
    }
}
