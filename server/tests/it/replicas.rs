//! Two server replicas sharing one feed through a lab Redis (`--backplane`, started with
//! `scripts/redis.sh` on a free port): a publish on either replica reaches the subscribers of
//! both with the same seq, in order, once, on every transport; a subscriber resumes on the
//! other replica with its cursor; Redis stopped and restarted empty mid-run costs no message
//! and repeats no seq, publishes answer 503 while it is down and subscribers keep their
//! connections.
//!
//! Skipped, with the reason printed, where `redis-server` is not installed; with `CI` set they
//! fail instead (`.ci/run` installs it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use pushlab_proto::Transport;
use pushlab_server::testing::TestServer;

use crate::client::{Event, Subscriber};
use crate::common::{
    assert_json_error, fetch, get, req, sample_data, scrape, start_server, test_config,
    ws_publish_n, Publisher, HANG_GUARD,
};
use crate::per_transport;

/// A lab Redis on a free loopback port, stopped (and its dir removed) when dropped.
struct LabRedis {
    port: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis.sh")
}

fn redis_script(verb: &str, port: u16) {
    let out = Command::new("bash")
        .arg(script())
        .args([verb, &port.to_string()])
        .output()
        .expect("runs scripts/redis.sh");
    assert!(
        out.status.success(),
        "scripts/redis.sh {verb} {port}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl LabRedis {
    /// Starts one, or `None` (with the reason printed) where redis-server is not installed.
    fn start() -> Option<LabRedis> {
        let found = Command::new("redis-server").arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            let why = "redis-server is not installed (apt-get install redis-server)";
            assert!(std::env::var_os("CI").is_none(), "{why}; CI must have it");
            eprintln!("skipped: {why}");
            return None;
        }
        let port = free_port();
        redis_script("start", port);
        Some(LabRedis { port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&self) {
        redis_script("stop", self.port);
    }

    /// Starts it again on the same port: empty, as after a restart without persistence.
    fn restart_empty(&self) {
        redis_script("start", self.port);
    }
}

impl Drop for LabRedis {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.port.to_string()])
            .output();
    }
}

/// A loopback port nothing listens on (the kernel's pick, released at once).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("bound").port()
}

/// Two replicas on one Redis.
async fn replicas(redis: &LabRedis) -> (TestServer, TestServer) {
    let mut config = test_config();
    config.backplane = Some(redis.url());
    let a = start_server(config.clone()).await;
    let b = start_server(config).await;
    (a, b)
}

async fn cross_replica_delivery_is_exact(t: Transport) {
    let Some(redis) = LabRedis::start() else {
        return;
    };
    let (a, b) = replicas(&redis).await;
    let topic = "cross";
    let mut on_a = Subscriber::connect(a.addr, t, topic, Some(0))
        .await
        .expect("subscribe on A")
        .keep_raw();
    let mut on_b = Subscriber::connect(b.addr, t, topic, Some(0))
        .await
        .expect("subscribe on B")
        .keep_raw();
    // POST on A, then WebSocket chat on B: both numbered in Redis, one sequence.
    let mut p = Publisher::new(a.addr, topic).await;
    let posted = p.publish_n(40).await;
    p.close().await;
    assert_eq!(posted, 40, "{t}: seqs from 1, dense");
    // `ws_publish_n` starts from the newest seq its replica holds.
    until_held(&b, topic, posted).await;
    let last = ws_publish_n(b.addr, topic, 40).await;
    assert_eq!(last, 80, "{t}: chat on B continues A's seqs");
    on_a.read_until(last).await;
    on_b.read_until(last).await;
    let (ta, tb) = (on_a.close().await, on_b.close().await);
    ta.assert_clean(&format!("{t} on A"));
    tb.assert_clean(&format!("{t} on B"));
    assert_eq!((ta.messages, tb.messages), (last, last), "{t}: each once");
    // The very same MESSAGE bytes (seq, ts, data) on both replicas.
    assert_eq!(ta.raw, tb.raw, "{t}: replicas deliver identical messages");
    // Each replica's reader took every entry in once, and says how late.
    for server in [&a, &b] {
        let m = scrape(server.addr).await;
        assert_eq!(m["pushlab_backplane_up"], 1.0);
        assert_eq!(m["pushlab_backplane_entries_read_total"], last as f64);
        let lag_s = m["pushlab_backplane_lag_seconds"];
        assert!(
            (0.0..HANG_GUARD.as_secs_f64()).contains(&lag_s),
            "{t}: lag {lag_s} s"
        );
    }
    a.stop().await;
    b.stop().await;
}
per_transport!(cross_replica_delivery_is_exact);

async fn resume_on_the_other_replica(t: Transport) {
    let Some(redis) = LabRedis::start() else {
        return;
    };
    let mut config = test_config();
    config.backplane = Some(redis.url());
    // Poll batches of 10, so a poll client too is cut between batches mid-feed.
    config.max_batch = 10;
    let a = start_server(config.clone()).await;
    let b = start_server(config).await;
    // Published on B while the subscriber is away; it comes back on B.
    crate::resume::cut_then_resume(t, a.addr, b.addr, "move").await;
    a.stop().await;
    b.stop().await;
}
per_transport!(resume_on_the_other_replica);

/// POST /publish/{topic} on `addr`: its status and seq (if accepted).
async fn try_publish(addr: SocketAddr, topic: &str, data: &str) -> (StatusCode, Option<u64>) {
    let r = fetch(
        addr,
        req(Method::POST, &format!("/publish/{topic}"), data.to_string()),
    )
    .await;
    let seq = serde_json::from_slice::<serde_json::Value>(r.body())
        .ok()
        .and_then(|v| v["seq"].as_u64());
    (r.status(), seq)
}

/// Publishes `n` messages on `addr`, asserting each is accepted; the last seq.
async fn publish_ok(addr: SocketAddr, topic: &str, n: u64) -> u64 {
    let mut p = Publisher::new(addr, topic).await;
    let last = p.publish_n(n).await;
    p.close().await;
    last
}

/// Waits until `server`'s feed holds `seq` on `topic` (its reader took it in; the topic is
/// followed from now if it was not yet).
async fn until_held(server: &TestServer, topic: &str, seq: u64) {
    let t = server.shared.topic(topic).await.unwrap();
    let mut news = t.subscribe();
    tokio::time::timeout(HANG_GUARD, news.wait_for(|l| *l >= seq))
        .await
        .expect("the replica's reader takes the entry in")
        .unwrap();
}

/// Waits until `addr`'s /healthz says its backplane is up again.
async fn until_healthy(addr: SocketAddr) {
    let deadline = Instant::now() + HANG_GUARD;
    while &get(addr, "/healthz").await.body()[..] != br#"{"status":"ok","backplane":"up"}"# {
        assert!(Instant::now() < deadline, "{addr} never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `pushlab_bytes_written_total{transport=t}` on `addr`.
async fn bytes_written(addr: SocketAddr, t: Transport) -> f64 {
    let m = scrape(addr).await;
    m[&format!(
        "pushlab_bytes_written_total{{transport=\"{}\"}}",
        t.as_str()
    )]
}

async fn redis_restart_loses_nothing_and_repeats_no_seq(t: Transport) {
    let Some(redis) = LabRedis::start() else {
        return;
    };
    let (a, b) = replicas(&redis).await;
    let topic = "restart";
    let mut sub = Subscriber::connect(b.addr, t, topic, Some(0))
        .await
        .expect("subscribe on B");
    let before = publish_ok(a.addr, topic, 20).await;
    assert_eq!(before, 20);
    until_held(&b, topic, before).await;
    until_held(&a, topic, before).await;

    redis.stop();
    let written_at_stop = bytes_written(b.addr, t).await;
    // Publishes are refused while Redis is down, with a reason and Retry-After.
    let r = fetch(a.addr, req(Method::POST, "/publish/restart", "lost?")).await;
    assert_json_error(
        &r,
        StatusCode::SERVICE_UNAVAILABLE,
        "publish while Redis is down",
    );
    assert_eq!(r.headers()["retry-after"], "1");
    let (status, _) = try_publish(b.addr, topic, "lost too?").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let health = get(a.addr, "/healthz").await;
    assert_eq!(
        &health.body()[..],
        br#"{"status":"degraded","backplane":"down"}"#
    );
    assert_eq!(scrape(a.addr).await["pushlab_backplane_up"], 0.0);
    if t == Transport::Ws {
        // A chat message cannot be taken either: close 1013 Try Again Later.
        let mut chat = Subscriber::connect(a.addr, Transport::Ws, topic, None)
            .await
            .expect("a WebSocket opens on a known topic while Redis is down");
        chat.ws_send("while down".into()).await;
        let end = tokio::time::timeout(HANG_GUARD, async {
            loop {
                if let Event::End(e) = chat.next().await {
                    return e;
                }
            }
        })
        .await
        .expect("the server closes the chat");
        assert_eq!(end, crate::client::Ending::WsClose(Some(1013)));
    }
    // Streams go on with their heartbeats meanwhile.
    tokio::time::sleep(Duration::from_millis(800)).await;
    if matches!(t, Transport::Sse | Transport::Stream) {
        assert!(
            bytes_written(b.addr, t).await > written_at_stop,
            "{t}: heartbeats while Redis is down"
        );
    }

    redis.restart_empty();
    // Each replica re-seeds the empty Redis before it takes publishes again.
    let deadline = Instant::now() + HANG_GUARD;
    let resumed = loop {
        match try_publish(b.addr, topic, &sample_data(20)).await {
            (StatusCode::ACCEPTED, Some(seq)) => break seq,
            (StatusCode::SERVICE_UNAVAILABLE, _) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{t}: publish after the restart: {other:?}"),
        }
    };
    assert_eq!(
        resumed,
        before + 1,
        "{t}: seqs carry on upward after an empty restart"
    );
    // A comes back on its own (its reader's backoff).
    until_healthy(a.addr).await;
    let last = publish_ok(a.addr, topic, 19).await;
    assert_eq!(last, before + 20, "{t}: dense seqs across replicas");

    // The same connection, still open, gets everything once, in order, with no gap.
    sub.read_until(last).await;
    let track = sub.close().await;
    track.assert_clean(&format!("{t} across a Redis restart"));
    assert_eq!(
        track.messages, last,
        "{t}: every acknowledged message, once"
    );
    let m = scrape(b.addr).await;
    assert_eq!(m["pushlab_backplane_up"], 1.0);
    assert!(m["pushlab_backplane_reconnects_total"] >= 1.0);
    assert_eq!(m["pushlab_backplane_stale_entries_total"], 0.0);
    a.stop().await;
    b.stop().await;
}
per_transport!(redis_restart_loses_nothing_and_repeats_no_seq);

/// A cursor from the other replica that this one's reader has not reached yet waits for it
/// rather than being refused; one past what Redis ever assigned is still refused (400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_ahead_of_every_replica_is_refused() {
    let Some(redis) = LabRedis::start() else {
        return;
    };
    let (a, b) = replicas(&redis).await;
    let last = publish_ok(a.addr, "ahead", 3).await;
    let r = get(b.addr, &format!("/poll/ahead?since={last}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = get(b.addr, &format!("/poll/ahead?since={}", last + 1)).await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "cursor past every seq");
    a.stop().await;
    b.stop().await;
}
