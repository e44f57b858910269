//! The loadgen over HTTP/2 against the server it measures, on 127.0.0.1:0: every transport
//! HTTP/2 carries is delivered once, in order, and its bytes, split frame by frame, sum
//! exactly to the client's socket counts, which equal the server's own.

use std::time::Duration;

use pushlab_loadgen::config::{HeaderProfile, HttpVersion, RunConfig};
use pushlab_loadgen::tls::TlsTrust;
use pushlab_proto::result::TransportResult;
use pushlab_proto::Transport;
use pushlab_server::testing::start_server;
use pushlab_server::ServerConfig;

mod common;

/// The transports HTTP/2 carries without extended CONNECT.
const H2_TRANSPORTS: [Transport; 4] = [
    Transport::Poll,
    Transport::LongPoll,
    Transport::Sse,
    Transport::Stream,
];

fn h2c_config(addr: std::net::SocketAddr, profile: HeaderProfile) -> RunConfig {
    let mut c = RunConfig::new(format!("http://{addr}").parse().unwrap());
    c.transports = H2_TRANSPORTS.to_vec();
    c.clients = 3;
    c.duration = Duration::from_millis(1000);
    c.warmup = Duration::from_millis(300);
    c.rate_per_s = 20.0;
    c.poll_interval = Duration::from_millis(100);
    c.http = HttpVersion::Http2;
    c.header_profile = profile;
    c.same_process_server = true;
    c
}

fn assert_exact_h2(t: &TransportResult, version: &str) {
    let name = t.transport;
    assert_eq!(t.scenario.http_version, version, "{name}");
    common::assert_split_exact(t);
    common::assert_delivered_once(t);
    let server = t.server.as_ref().expect("pushlab-server has /metrics");
    assert_eq!(
        t.wire_bytes_down, server.server_bytes_written,
        "{name}: client down == server written ({:?})",
        t.notes
    );
    // Up: exact on h2c. Over TLS the client's last record, its close_notify alert (24 B on
    // TLS 1.3: 5 header + 2 alert + 1 type + 16 tag), crosses the wire but the server reads it
    // only if it has not closed first on the client's GOAWAY: a race of the close.
    let unread = t.wire_bytes_up - server.server_bytes_read.min(t.wire_bytes_up);
    let close_notify = if version == "h2" { 24 } else { 0 };
    assert!(
        t.wire_bytes_up >= server.server_bytes_read
            && unread.is_multiple_of(24)
            && unread <= close_notify * t.tcp_connects,
        "{name}: client up {} vs server read {} ({:?})",
        t.wire_bytes_up,
        server.server_bytes_read,
        t.notes
    );
    assert_eq!(t.tcp_connects, t.clients, "{name}: one connection each");
    assert_eq!(t.errors, 0, "{name}: {:?}", t.notes);
    assert!(t.tcp_segments.unwrap_or(0) > 0, "{name}: TCP_INFO read");
    // Preface (24) + SETTINGS and its ACK both ways, at least.
    assert!(
        t.bytes_total.handshake >= (t.clients * (24 + 4 * 9)) as f64,
        "{name}"
    );
    assert_eq!(
        t.first_requests, t.clients,
        "{name}: one first request per connection"
    );
    assert_eq!(
        t.first_requests + t.later_requests,
        t.http_requests,
        "{name}"
    );
}

/// Over h2c with Chromium's headers (heartbeats every 20 ms, so DATA that is not a message
/// is attributed too), then with curl's: exact bytes, no loss; on the poll connection HPACK
/// makes later requests' header blocks much smaller than the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_counts_exactly_and_hpack_shrinks_later_requests() {
    let server = start_server(ServerConfig {
        heartbeat_interval: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let mut per_profile = Vec::new();
    for profile in [HeaderProfile::Browser, HeaderProfile::Minimal] {
        let r = pushlab_loadgen::run(h2c_config(server.addr, profile))
            .await
            .unwrap();
        assert_eq!(r.transports.len(), 4);
        for t in &r.transports {
            assert_exact_h2(t, "h2c");
            assert_eq!(t.bytes_total.tls, 0.0);
        }
        let poll = r
            .transports
            .iter()
            .find(|t| t.transport == Transport::Poll)
            .unwrap()
            .clone();
        assert!(
            poll.later_requests > poll.clients,
            "polls reuse the connection"
        );
        let first = poll.headers_first_request_bytes as f64 / poll.first_requests as f64;
        let later = poll.headers_later_request_bytes as f64 / poll.later_requests as f64;
        // The h2 crate's encoder never indexes `cookie` or `:path` values (they are sent
        // as literals every time), the rest comes from the dynamic table.
        assert!(
            later < first * 0.6,
            "{profile:?}: HPACK: later {later} B vs first {first} B"
        );
        per_profile.push((profile, first, later));
    }
    let (_, browser_first, _) = per_profile[0];
    let (_, minimal_first, _) = per_profile[1];
    assert!(
        browser_first > minimal_first + 200.0,
        "a cold browser block is much larger than curl's: {per_profile:?}"
    );
    server.stop().await;
}

/// Over TLS (ALPN h2), the server's certificate pinned by its SPKI hash: the same exact split,
/// now with TLS's handshake and record overhead as its own part, and the client's socket
/// counts (below TLS) equal to the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_counts_exactly_with_tls_overhead_apart() {
    let server = start_server(pushlab_server::testing::with_self_signed_tls(
        ServerConfig::default(),
    ))
    .await;
    let pin = server.tls().unwrap().spki_sha256.clone();
    let mut c = h2c_config(server.addr, HeaderProfile::Minimal);
    c.tls = true;
    c.tls_trust = Some(TlsTrust::SpkiSha256(pin));
    let r = pushlab_loadgen::run(c).await.unwrap();
    assert_eq!(r.transports.len(), 4);
    for t in &r.transports {
        assert_exact_h2(t, "h2");
        let b = &t.bytes_total;
        // A TLS 1.3 handshake (certificate included) per connection, and per record at least a
        // 5-byte header and a 16-byte tag.
        assert!(
            b.tls > (t.clients * 500) as f64,
            "{}: tls {} B",
            t.transport,
            b.tls
        );
    }

    // A wrong pin: no subscriber gets in, and the run says why.
    let mut c = h2c_config(server.addr, HeaderProfile::Minimal);
    c.transports = vec![Transport::Poll];
    c.clients = 1;
    c.tls = true;
    c.tls_trust = Some(TlsTrust::SpkiSha256(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
    ));
    let e = pushlab_loadgen::run(c).await.unwrap_err().to_string();
    assert!(e.contains("pinned"), "{e}");
    server.stop().await;
}

/// `--http 2` refuses what it cannot measure yet, with the flag to change.
#[test]
fn http2_refuses_ws_and_keep_alive_off() {
    let mut c = RunConfig::new("http://127.0.0.1:9".parse().unwrap());
    c.http = HttpVersion::Http2;
    let e = c.check().unwrap_err().to_string();
    assert!(e.contains("--http") && e.contains("RFC 8441"), "{e}");
    c.transports = H2_TRANSPORTS.to_vec();
    c.check().unwrap();
    c.keep_alive = false;
    assert!(c.check().unwrap_err().to_string().contains("--keep-alive"));
}
