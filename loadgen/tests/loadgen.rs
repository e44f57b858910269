//! The instrument checked against the server it measures, on 127.0.0.1:0: byte totals equal
//! the server's own socket counters, the byte split sums exactly, one latency sample per
//! delivered message, cut connections resume without loss, results validate against the
//! committed schema and merge, and bad input ends with a one-line error.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::Command;
use std::time::Duration;

use pushlab_loadgen::config::{HeaderProfile, RunConfig};
use pushlab_loadgen::record::decode_histogram;
use pushlab_proto::result::{RunResult, TransportResult};
use pushlab_proto::Transport;
// An in-process server (the shared fixture) is fine where server CPU does not matter.
use pushlab_server::testing::start_server;
use pushlab_server::ServerConfig;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_pushlab-loadgen");

fn short_config(addr: SocketAddr) -> RunConfig {
    let mut c = RunConfig::new(format!("http://{addr}").parse().unwrap());
    c.clients = 3;
    c.duration = Duration::from_millis(1000);
    c.warmup = Duration::from_millis(300);
    c.rate_per_s = 20.0;
    c.poll_interval = Duration::from_millis(100);
    c
}

/// What every clean run must show, per transport.
fn assert_exact(r: &RunResult) {
    assert_eq!(r.transports.len(), 5);
    for t in &r.transports {
        let name = t.transport;
        common::assert_split_exact(t);
        common::assert_delivered_once(t);
        let b = &t.bytes_total;
        let server = t.server.as_ref().expect("pushlab-server has /metrics");
        assert_eq!(
            t.wire_bytes_up, server.server_bytes_read,
            "{name}: client up == server read ({:?})",
            t.notes
        );
        assert_eq!(
            t.wire_bytes_down, server.server_bytes_written,
            "{name}: client down == server written ({:?})",
            t.notes
        );
        if name == Transport::Ws {
            assert_eq!(t.http_requests, t.clients, "{name}: one Upgrade each");
        }
        assert!(t.tcp_segments.unwrap_or(0) > 0, "{name}: TCP_INFO read");
        assert!(b.tcpip > 0.0, "{name}");
    }
}

fn validate(schema: &serde_json::Value, r: &RunResult) {
    let validator = jsonschema::validator_for(schema).expect("the committed schema compiles");
    let value = serde_json::to_value(r).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

fn committed_schema() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/result.schema.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn committed_schema_is_the_generated_one() {
    assert_eq!(
        committed_schema(),
        pushlab_loadgen::schema::result_schema(),
        "regenerate: cargo run -p pushlab-loadgen -- schema > loadgen/schema/result.schema.json"
    );
    assert_eq!(
        committed_schema()["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

/// Two full runs of all five transports (keep-alive with minimal headers against a server
/// child process, so server cost is the server's own; then no keep-alive, browser headers,
/// heartbeats and pings, in process): exact bytes both times, valid JSON, and their merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_counts_exactly_and_results_merge() {
    let server = pushlab_loadgen::spawn_server_from(std::path::Path::new(BIN), &[])
        .await
        .unwrap();
    let mut config = short_config(server.addr);
    config.server_pid = server.child.id();
    let a = pushlab_loadgen::run(config).await.unwrap();
    assert_exact(&a);
    for t in &a.transports {
        let name = t.transport;
        let s = t.server.as_ref().unwrap();
        assert!(s.rss_bytes_before > 0, "{name}");
        assert!(t.server_cpu_us_per_1k_messages.is_some(), "{name}");
        // CPU to the microsecond, split by what it paid for; nothing left out.
        assert_eq!(
            s.cpu_source, "getrusage",
            "{name}: pushlab-server's /metrics"
        );
        assert!(
            s.heap_bytes_per_connection.is_some_and(|b| b > 0.0),
            "{name}: heap bytes per connection: {:?}",
            s.unavailable
        );
        assert!(
            s.connect_cpu_us > 0.0 && s.publish_cpu_us > 0.0,
            "{name}: {s:?}"
        );
        assert!(s.idle_s >= 0.9, "{name}: the idle part lasts --idle (1 s)");
        for (what, v) in [
            ("per connect", t.server_cpu_us_per_connect),
            (
                "per idle connection-second",
                t.server_cpu_us_per_idle_connection_s,
            ),
            ("per delivery", t.server_cpu_us_per_delivery),
        ] {
            assert!(v.is_some_and(|v| v >= 0.0), "{name} {what}: {v:?}");
        }
        assert!(
            s.kernel_socket_bytes_per_connection.is_some(),
            "{name}: kernel socket memory (gauge or ss): {:?}",
            s.unavailable
        );
        let lg = t.loadgen.expect("the loadgen's own cost");
        assert!(lg.cpu_us > 0.0 && lg.wall_s > 0.0, "{name}: {lg:?}");
    }
    let by = |r: &RunResult, t: Transport| -> TransportResult {
        r.transports
            .iter()
            .find(|x| x.transport == t)
            .unwrap()
            .clone()
    };
    // Keep-alive: one connection per poll subscriber; requests follow the interval.
    let poll = by(&a, Transport::Poll);
    assert_eq!(poll.tcp_connects, poll.clients);
    assert!(
        poll.empty_responses > 0,
        "10 polls/s at 20 msgs/s: some come back empty"
    );
    server.stop().await;

    // Frequent heartbeats and WebSocket pings: their bytes must be attributed too.
    let chatty = start_server(ServerConfig {
        heartbeat_interval: Duration::from_millis(20),
        ws_ping_interval: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let mut cfg = short_config(chatty.addr);
    cfg.keep_alive = false;
    cfg.header_profile = HeaderProfile::Browser;
    cfg.same_process_server = true;
    let b = pushlab_loadgen::run(cfg).await.unwrap();
    assert_exact(&b);
    let poll_b = by(&b, Transport::Poll);
    assert_eq!(
        poll_b.tcp_connects, poll_b.http_requests,
        "keep-alive off: a connection per request"
    );
    assert!(
        poll_b.bytes_total.headers / poll_b.http_requests as f64
            > poll.bytes_total.headers / poll.http_requests as f64 + 500.0,
        "browser headers are much larger than curl's"
    );

    for t in [Transport::Sse, Transport::Stream, Transport::Ws] {
        assert!(
            by(&b, t).bytes_per_message.framing > by(&a, t).bytes_per_message.framing,
            "{t}: heartbeats or pings add framing"
        );
    }

    let schema = committed_schema();
    validate(&schema, &a);
    validate(&schema, &b);

    let merged =
        pushlab_loadgen::merge::merge(&[("a".into(), a.clone()), ("b".into(), b.clone())]).unwrap();
    validate(&schema, &merged);
    assert_eq!(merged.merged_runs, 2);
    for t in Transport::ALL {
        let (x, y, m) = (by(&a, t), by(&b, t), by(&merged, t));
        let mut both = decode_histogram(&x.histogram).unwrap();
        both.add(decode_histogram(&y.histogram).unwrap()).unwrap();
        let mh = decode_histogram(&m.histogram).unwrap();
        assert_eq!(mh.len(), both.len(), "{t}");
        assert_eq!(mh.max(), both.max(), "{t}");
        assert_eq!(m.latency_us.p99, both.value_at_quantile(0.99), "{t}");
        assert_eq!(
            m.delivered_messages,
            x.delivered_messages + y.delivered_messages
        );
        assert_eq!(m.wire_bytes_down, x.wire_bytes_down + y.wire_bytes_down);
        assert_eq!(m.clients, x.clients + y.clients);
    }
}

/// Every subscriber cuts its connection once mid-run: it reconnects from its cursor and
/// nothing is lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_a_reconnect_without_loss() {
    let server = start_server(ServerConfig::default()).await;
    let mut cfg = short_config(server.addr);
    cfg.concurrent = true;
    cfg.drop_after_messages = Some(4);
    let r = pushlab_loadgen::run(cfg).await.unwrap();
    for t in &r.transports {
        let name = t.transport;
        assert!(
            t.reconnects >= t.clients,
            "{name}: {} reconnects",
            t.reconnects
        );
        assert!(
            t.tcp_connects > t.clients,
            "{name}: new connections after the cut"
        );
        common::assert_no_loss(t);
        assert_eq!(t.errors, 0, "{name}: a cut is not an error: {:?}", t.notes);
    }
}

/// Runs the binary; returns (exit success, stderr).
fn run_bin(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("running pushlab-loadgen");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A target that answers every connection with `reply`, then closes (or resets).
fn fake_target(reply: &'static [u8], reset: bool) -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (served, stream) in listener.incoming().enumerate() {
            let Ok(mut s) = stream else { continue };
            if served > 50 {
                break;
            }
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            if reset {
                // SO_LINGER 0: close() sends RST.
                linger_zero(&s);
                drop(s);
            } else {
                let _ = s.write_all(reply);
            }
        }
    });
    addr
}

fn linger_zero(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open; we pass a valid linger struct and its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[test]
fn bad_input_ends_with_one_clear_line() {
    let free = {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let garbage = fake_target(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", false);
    let reset = fake_target(b"", true);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--transports".into(), "poll,smoke".into()],
            "unknown transport \"smoke\"",
        ),
        (vec!["--duration".into(), "ten".into()], "--duration"),
        (vec!["--clients".into(), "0".into()], "--clients"),
        (
            vec!["--target".into(), format!("http://{free}")],
            "cannot connect",
        ),
        (
            vec!["--target".into(), format!("http://{garbage}")],
            "does not speak HTTP/1.1",
        ),
        (
            vec!["--target".into(), format!("http://{reset}")],
            "reset or closed the connection",
        ),
    ];
    for (args, expect) in cases {
        let mut all = vec!["run", "--quiet", "--warmup", "0s"];
        if !args.iter().any(|a| a == "--duration") {
            all.extend(["--duration", "1s"]);
        }
        all.extend(args.iter().map(String::as_str));
        let (ok, stderr) = run_bin(&all);
        assert!(!ok, "{args:?} must fail");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "{args:?} must not panic: {stderr}"
        );
        assert!(
            stderr.trim().lines().count() <= 3,
            "{args:?}: short error: {stderr}"
        );
    }
    // An open-file limit too low for --clients: refused up front, naming the flag.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 100 && exec {BIN} run --quiet --clients 500 --target http://{free}"
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("open files") && stderr.contains("--clients"),
        "{stderr}"
    );
}
