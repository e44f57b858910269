//! The loadgen over HTTP/2 and over TLS against the server it measures, on 127.0.0.1:0: every
//! transport (WebSocket by RFC 8441 extended CONNECT on HTTP/2) is delivered once, in order,
//! and its bytes, split frame by frame (and TLS apart), sum exactly to the client's socket
//! counts, which equal the server's own; on HTTP/1.1 over TLS likewise; and with
//! `--streams-per-connection 4` four subscribers share each connection.

use std::time::Duration;

use pushlab_loadgen::config::{HeaderProfile, HttpVersion, RunConfig};
use pushlab_loadgen::tls::TlsTrust;
use pushlab_proto::result::TransportResult;
use pushlab_proto::Transport;
use pushlab_server::testing::start_server;
use pushlab_server::ServerConfig;

mod common;

fn h2c_config(addr: std::net::SocketAddr, profile: HeaderProfile) -> RunConfig {
    let mut c = RunConfig::new(format!("http://{addr}").parse().unwrap());
    c.transports = Transport::ALL.to_vec();
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

/// What `run` returned for every transport, in order.
fn assert_all_transports(r: &pushlab_proto::result::RunResult) {
    let got: Vec<Transport> = r.transports.iter().map(|t| t.transport).collect();
    assert_eq!(got, Transport::ALL.to_vec());
}

/// Exact split, no loss, wire bytes equal to the server's (down exactly; up short by at most
/// one unread close_notify per connection over TLS), `connections` connections, each one
/// first request.
fn assert_exact(t: &TransportResult, version: &str, connections: u64) {
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
    let close_notify = if version.contains("tls") || version == "h2" {
        24
    } else {
        0
    };
    assert!(
        t.wire_bytes_up >= server.server_bytes_read
            && unread.is_multiple_of(24)
            && unread <= close_notify * t.tcp_connects,
        "{name}: client up {} vs server read {} ({:?})",
        t.wire_bytes_up,
        server.server_bytes_read,
        t.notes
    );
    assert_eq!(t.tcp_connects, connections, "{name}: connections");
    assert_eq!(t.errors, 0, "{name}: {:?}", t.notes);
    assert!(
        !t.notes
            .iter()
            .any(|n| n.contains("not closed by the server")),
        "{name}: every connection closed cleanly: {:?}",
        t.notes
    );
    assert!(t.tcp_segments.unwrap_or(0) > 0, "{name}: TCP_INFO read");
    assert_eq!(
        t.first_requests, connections,
        "{name}: one first request per connection"
    );
    assert_eq!(
        t.first_requests + t.later_requests,
        t.http_requests,
        "{name}"
    );
}

fn assert_exact_h2(t: &TransportResult, version: &str, connections: u64) {
    assert_exact(t, version, connections);
    // Preface (24) + SETTINGS and its ACK both ways, at least, once per connection.
    assert!(
        t.bytes_total.handshake >= (connections * (24 + 4 * 9)) as f64,
        "{}",
        t.transport
    );
    if t.transport == Transport::Ws {
        // The extended CONNECT and its 200 are the handshake, as the Upgrade is on HTTP/1.1.
        assert_eq!(t.bytes_total.headers, 0.0);
    }
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
        assert_all_transports(&r);
        for t in &r.transports {
            assert_exact_h2(t, "h2c", t.clients);
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
    assert_all_transports(&r);
    for t in &r.transports {
        assert_exact_h2(t, "h2", t.clients);
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

/// HTTP/1.1 over TLS (ALPN http/1.1, wss for WebSocket), the certificate pinned: every
/// transport exact, TLS's handshake and record overhead apart, socket counts equal to the
/// server's (below TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_over_tls_counts_exactly_on_every_transport() {
    let server = start_server(pushlab_server::testing::with_self_signed_tls(
        ServerConfig::default(),
    ))
    .await;
    let pin = server.tls().unwrap().spki_sha256.clone();
    let mut c = h2c_config(server.addr, HeaderProfile::Browser);
    c.http = HttpVersion::Http11;
    c.tls = true;
    c.tls_trust = Some(TlsTrust::SpkiSha256(pin));
    let r = pushlab_loadgen::run(c).await.unwrap();
    assert_all_transports(&r);
    for t in &r.transports {
        assert_exact(t, "http/1.1+tls", t.tcp_connects);
        common::assert_delivered_once(t);
        if t.transport != Transport::Poll {
            assert_eq!(
                t.tcp_connects, t.clients,
                "{}: one connection each",
                t.transport
            );
        }
        assert!(
            t.bytes_total.tls > (t.tcp_connects * 500) as f64,
            "{}: tls {} B",
            t.transport,
            t.bytes_total.tls
        );
        assert_eq!(t.bytes_total.control, 0.0);
    }
    server.stop().await;
}

/// `--streams-per-connection 4`: 8 subscribers of each transport on 2 connections (h2c, then
/// over TLS), WebSocket included; each connection's preface, SETTINGS, control frames and TLS
/// are counted once, and the split is still exact and equal to the server's counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_streams_per_connection_share_it_exactly() {
    let server = start_server(pushlab_server::testing::with_self_signed_tls(
        ServerConfig::default(),
    ))
    .await;
    let pin = server.tls().unwrap().spki_sha256.clone();
    for tls in [false, true] {
        let mut c = h2c_config(server.addr, HeaderProfile::Minimal);
        c.clients = 8;
        c.streams_per_connection = 4;
        c.tls = tls;
        c.tls_trust = tls.then(|| TlsTrust::SpkiSha256(pin.clone()));
        let r = pushlab_loadgen::run(c).await.unwrap();
        assert_all_transports(&r);
        let version = if tls { "h2" } else { "h2c" };
        for t in &r.transports {
            assert_exact_h2(t, version, 2);
            assert_eq!(t.clients, 8);
        }
    }
    server.stop().await;
}

/// What the loadgen cannot measure is refused with the flag to change.
#[test]
fn refusals_name_the_flag() {
    let mut c = RunConfig::new("http://127.0.0.1:9".parse().unwrap());
    c.http = HttpVersion::Http2;
    c.check().unwrap();
    c.keep_alive = false;
    assert!(c.check().unwrap_err().to_string().contains("--keep-alive"));
    let mut c = RunConfig::new("http://127.0.0.1:9".parse().unwrap());
    c.streams_per_connection = 4;
    let e = c.check().unwrap_err().to_string();
    assert!(
        e.contains("--streams-per-connection") && e.contains("--http 2"),
        "{e}"
    );
    c.http = HttpVersion::Http2;
    c.check().unwrap();
    c.streams_per_connection = 0;
    assert!(c
        .check()
        .unwrap_err()
        .to_string()
        .contains("--streams-per-connection"));
}
