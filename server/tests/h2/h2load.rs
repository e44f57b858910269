//! h2load (nghttp2's HTTP/2 benchmark client) against the server: 200 short polls over 4
//! connections, 10 streams each at once, in cleartext (prior knowledge) and over TLS (ALPN h2).
//! Every request succeeds, the server counts each as an HTTP/2 request, and h2load's own count
//! of the bytes it received (its `traffic: ... total`, above TLS) is what the server's
//! plaintext counter says it wrote. Skipped, with the reason printed, without h2load (Debian:
//! `apt-get install nghttp2-client`).

use pushlab_proto::Transport;
use pushlab_server::metrics::{Protocol, Slot};
use pushlab_server::testing::start_server;
use tokio::process::Command;

use crate::link::{Mode, HANG_GUARD};
use crate::transports::quiet_config;

/// The number after `prefix` in h2load's output (e.g. `"traffic: 10.36KB ("` -> 10612).
fn number_after(out: &str, prefix: &str, open: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.starts_with(prefix))?;
    let rest = &line[line.find(open)? + open.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

async fn h2load_succeeds(mode: Mode) {
    let version = Command::new("h2load").arg("--version").output().await;
    if version.is_err() {
        println!("skipped: no h2load (apt-get install nghttp2-client)");
        return;
    }
    let server = start_server(quiet_config(mode)).await;
    let topic = server.shared.feed.topic("h").unwrap();
    server
        .shared
        .feed
        .publish(&topic, "one message for every poll");
    let url = format!(
        "{}://127.0.0.1:{}/poll/h?since=0",
        mode.scheme(),
        server.addr.port()
    );
    let out = tokio::time::timeout(
        HANG_GUARD,
        Command::new("h2load")
            .args(["-n", "200", "-c", "4", "-m", "10", &url])
            .output(),
    )
    .await
    .expect("h2load in time")
    .expect("h2load runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed"),
        "{text}"
    );
    assert!(text.contains("status codes: 200 2xx"), "{text}");
    assert_eq!(server.settle(std::time::Duration::from_secs(10)).await, 0);
    let m = &server.shared.metrics;
    let protocol = if mode == Mode::H2c {
        Protocol::H2c
    } else {
        Protocol::H2
    };
    assert_eq!(
        m.protocol_requests(Slot::Transport(Transport::Poll), protocol),
        200
    );
    assert_eq!(m.protocol_connections(protocol), 4);
    let received = number_after(&text, "traffic:", "(").expect("h2load's traffic line");
    let c = m.transport(Transport::Poll);
    let written = c
        .plaintext_bytes_written
        .load(std::sync::atomic::Ordering::Relaxed);
    let traffic = text
        .lines()
        .find(|l| l.starts_with("traffic:"))
        .unwrap_or_default();
    println!("h2load {mode:?}: {traffic}; server wrote {written} bytes above TLS");
    // A server's GOAWAY written as h2load closes its connection may cross h2load's own close
    // unread: a GOAWAY without debug data is 17 B (9-byte frame header + 8-byte payload,
    // RFC 9113 section 6.8), so the server may have written exactly that much more per
    // connection, and nothing else.
    const GOAWAY_BYTES: u64 = 17;
    let unread = written
        .checked_sub(received)
        .expect("h2load received more than the server wrote");
    assert!(
        unread.is_multiple_of(GOAWAY_BYTES) && unread / GOAWAY_BYTES <= 4,
        "h2load's received bytes = the server's plaintext written, but for whole GOAWAY frames \
         of its 4 connections: received {received}, written {written}"
    );
    server.stop().await;
}

#[tokio::test]
async fn h2load_in_cleartext() {
    h2load_succeeds(Mode::H2c).await
}

#[tokio::test]
async fn h2load_over_tls() {
    h2load_succeeds(Mode::H2Tls).await
}

#[test]
fn traffic_line_parses() {
    let out = "x\ntraffic: 10.36KB (10612) total, 1.92KB (1968) headers (space savings 90.89%)\n";
    assert_eq!(number_after(out, "traffic:", "("), Some(10612));
}
