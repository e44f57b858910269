//! `run --shards` and `capacity` against a pushlab-server child process on 127.0.0.1:0: the
//! merged result is the sum of its shards and its bytes still equal the server's /metrics; a
//! shard that dies fails the run with its error; the fd arithmetic refuses up front; a tiny
//! capacity ladder over real sockets.

use std::path::Path;
use std::process::Command;

use pushlab_loadgen::record::decode_histogram;
use pushlab_proto::result::{RunResult, TransportResult};
use pushlab_proto::Transport;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_pushlab-loadgen");

/// Runs the binary; returns (exit success, stdout, stderr).
fn run_bin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("running pushlab-loadgen");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read(path: &Path) -> RunResult {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn entry(r: &RunResult, t: Transport) -> &TransportResult {
    r.transports.iter().find(|e| e.transport == t).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_shards_merge_to_the_sum_and_match_the_servers_bytes() {
    let server = pushlab_loadgen::spawn_server_from(Path::new(BIN), &[])
        .await
        .unwrap();
    let url = format!("http://{}", server.addr);
    // Two --target URLs of the one server: subscribers alternate between them.
    two_shard_run(&format!("{url},{url}"), "one-server");
}

/// Two replicas sharing one feed through a Redis of their own (scripts/redis.sh): shard 0
/// publishes on the first, subscribers alternate between both; the merged run is the sum of
/// its shards, 0 lost, and its bytes equal both replicas' /metrics added.
#[tokio::test(flavor = "multi_thread")]
async fn two_shards_over_two_redis_replicas_merge_and_match_both_servers() {
    let Some(redis) = LabRedis::start() else {
        return;
    };
    let args = vec!["--backplane".to_string(), redis.url()];
    let a = pushlab_loadgen::spawn_server_from(Path::new(BIN), &args)
        .await
        .unwrap();
    let b = pushlab_loadgen::spawn_server_from(Path::new(BIN), &args)
        .await
        .unwrap();
    two_shard_run(&format!("http://{},http://{}", a.addr, b.addr), "replicas");
    drop((a, b, redis));
}

/// A Redis on a free loopback port from scripts/redis.sh (persistence off), or `None` with the
/// reason printed where redis-server is not installed (CI must have it).
struct LabRedis {
    port: u16,
}

impl LabRedis {
    fn start() -> Option<LabRedis> {
        let found = Command::new("redis-server").arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            let why = "redis-server is not installed (apt-get install redis-server)";
            assert!(std::env::var_os("CI").is_none(), "{why}; CI must have it");
            eprintln!("skipped: {why}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = LabRedis { port };
        r.script("start");
        Some(r)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn script(&self, verb: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis.sh");
        let out = Command::new("bash")
            .arg(script)
            .args([verb, &self.port.to_string()])
            .output()
            .expect("runs scripts/redis.sh");
        assert!(
            out.status.success(),
            "scripts/redis.sh {verb} {}: {}",
            self.port,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for LabRedis {
    /// Stopped also when the test fails (no assertion here: a panic while panicking aborts).
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis.sh");
        let _ = Command::new("bash")
            .arg(script)
            .args(["stop", &self.port.to_string()])
            .output();
    }
}

/// `run --shards 2` over `targets` (every transport, 5 clients): merged == sum of the shards,
/// exact split, delivered once, bytes == the targets' /metrics added.
fn two_shard_run(targets: &str, tag: &str) {
    let dir = std::env::temp_dir().join(format!("pushlab-shard-test-{tag}-{}", std::process::id()));
    let out = dir.join("merged.json");
    let (ok, _, err) = run_bin(&[
        "run",
        "--target",
        targets,
        "--transports",
        "all",
        "--clients",
        "5",
        "--shards",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--idle",
        "300ms",
        "--rate",
        "20",
        "--poll-interval",
        "100ms",
        "--connect-budget",
        "5s",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(ok, "{err}");
    let merged = read(&out);
    let mut files: Vec<_> = std::fs::read_dir(dir.join("merged.shards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let shards: Vec<RunResult> = files.iter().map(|p| read(p)).collect();
    assert_eq!(shards.len(), 2 * 5, "2 shards x 5 phases");
    assert_eq!(merged.transports.len(), 5);
    for t in Transport::ALL {
        let m = entry(&merged, t);
        let parts: Vec<&TransportResult> = shards
            .iter()
            .flat_map(|r| r.transports.iter())
            .filter(|e| e.transport == t)
            .collect();
        assert_eq!(parts.len(), 2, "{t}");
        let sum = |f: fn(&TransportResult) -> u64| parts.iter().map(|p| f(p)).sum::<u64>();
        assert_eq!(
            (parts[0].clients, parts[1].clients, m.clients),
            (3, 2, 5),
            "{t}"
        );
        assert_eq!(m.delivered_messages, sum(|p| p.delivered_messages), "{t}");
        assert_eq!(m.wire_bytes_up, sum(|p| p.wire_bytes_up), "{t}");
        assert_eq!(m.wire_bytes_down, sum(|p| p.wire_bytes_down), "{t}");
        assert_eq!(m.tcp_connects, sum(|p| p.tcp_connects), "{t}");
        assert_eq!(m.http_requests, sum(|p| p.http_requests), "{t}");
        assert_eq!(m.latency_us.count, sum(|p| p.latency_us.count), "{t}");
        let h = decode_histogram(&m.histogram).unwrap();
        assert_eq!(h.len(), m.latency_us.count, "{t}");
        // One feed: both shards expected what shard 0 published.
        assert_eq!(
            parts[0].published_messages, parts[1].published_messages,
            "{t}"
        );
        assert_eq!(m.published_messages, parts[0].published_messages, "{t}");
        assert!(
            parts.iter().filter(|p| p.server.is_some()).count() == 1,
            "{t}: shard 0 alone scrapes"
        );
        common::assert_split_exact(m);
        common::assert_delivered_once(m);
        let s = m.server.as_ref().expect("shard 0's scrape");
        assert_eq!(
            (m.wire_bytes_up, m.wire_bytes_down),
            (s.server_bytes_read, s.server_bytes_written),
            "{t}: every shard's bytes == the server's /metrics ({:?})",
            m.notes
        );
    }
    // A report over the tree reads the merged run only: the shards' parts are in it already.
    let data = pushlab_loadgen::report::data::Dataset::load_dir(&dir).unwrap();
    assert_eq!(data.runs.len(), 1);
    assert!(data.skipped.is_empty(), "{:?}", data.skipped);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shard_that_dies_fails_the_run_with_its_error() {
    let server = pushlab_loadgen::spawn_server_from(Path::new(BIN), &[])
        .await
        .unwrap();
    // Shard 1's source address (::1) cannot reach the IPv4 target: none of its subscribers
    // can subscribe, so it exits with that error while shard 0 is fine.
    let url = format!("http://{}", server.addr);
    let (ok, _, err) = run_bin(&[
        "run",
        "--target",
        &url,
        "--transports",
        "ws",
        "--clients",
        "2",
        "--shards",
        "2",
        "--source-ips",
        "127.0.0.2,::1",
        "--duration",
        "500ms",
        "--connect-budget",
        "3s",
        "--quiet",
    ]);
    assert!(!ok);
    assert!(err.contains("shard 1/2 failed"), "{err}");
    assert!(err.contains("the run is not merged"), "{err}");
    assert!(
        err.contains("subscriber could subscribe: client 1: connect: Address family not supported"),
        "the shard's own error: {err}"
    );
}

#[test]
fn too_few_shards_for_the_clients_is_refused_up_front() {
    let (ok, _, err) = run_bin(&[
        "run",
        "--target",
        "http://127.0.0.1:9",
        "--transports",
        "ws",
        "--clients",
        "100000",
        "--shards",
        "2",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--clients 100000 over --shards 2 is 50000 clients per shard x 1 open files each + 64 = 50064"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

fn capacity(url: &str, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "capacity",
        "--target",
        url,
        "--rate",
        "10",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--poll-interval",
        "100ms",
        "--time-limit",
        "2m",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, err) = run_bin(&args);
    assert!(ok, "{err}");
    assert!(stdout.contains("| transport | clients held |"), "{stdout}");
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_climbs_in_steps_until_the_slo_breaks() {
    let server = pushlab_loadgen::spawn_server_from(Path::new(BIN), &[])
        .await
        .unwrap();
    let url = format!("http://{}", server.addr);
    let dir = std::env::temp_dir().join(format!("pushlab-capacity-test-{}", std::process::id()));
    // A bound no loopback run misses: every step holds, up to --max.
    let c = capacity(
        &url,
        &dir.join("held.json"),
        &[
            "--transports",
            "ws,poll",
            "--slo",
            "p99=10s",
            "--step",
            "20",
            "--max",
            "60",
        ],
    );
    assert_eq!(c["kind"], "pushlab-capacity");
    for t in c["transports"].as_array().unwrap() {
        let name = &t["transport"];
        let clients: Vec<u64> = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["clients"].as_u64().unwrap())
            .collect();
        assert_eq!(clients, vec![20, 40, 60], "{name}");
        assert_eq!(t["held_clients"], 60, "{name}: {}", t["reason"]);
        assert_eq!(t["reason"], "held up to --max 60", "{name}");
        let held = &t["at_held"];
        assert_eq!(held["clients"], 60, "{name}");
        assert_eq!(held["lost_messages"], 0, "{name}");
        assert!(held["delivered_messages"].as_u64().unwrap() > 0, "{name}");
        assert!(held["p99_us"].as_u64().unwrap() > 0, "{name}");
    }
    // A bound no run keeps: the first step breaks it and nothing is held.
    let c = capacity(
        &url,
        &dir.join("broken.json"),
        &[
            "--transports",
            "sse",
            "--slo",
            "p50=1us",
            "--step",
            "20",
            "--max",
            "60",
        ],
    );
    let t = &c["transports"][0];
    assert_eq!(t["held_clients"], 0);
    assert_eq!(t["steps"].as_array().unwrap().len(), 1);
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .starts_with("SLO broken at 20 clients: p50"),
        "{}",
        t["reason"]
    );
    assert!(t["at_held"].is_null());
    let _ = std::fs::remove_dir_all(&dir);
}
