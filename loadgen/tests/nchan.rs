//! The loadgen against a real nginx-nchan (Debian's `libnginx-mod-nchan`) on loopback, started
//! by `scripts/nchan/run.sh` on a free port: every transport gets every message in order and
//! the byte split sums exactly to the wire totals, with and without keep-alive, with minimal
//! and browser headers; a cut connection resumes from nchan's cursors; `--server-pid` costs
//! nginx from /proc.
//!
//! Without nginx and the module the tests print a note and pass, unless `CI` is set: CI must
//! install them (`.ci/run`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pushlab_loadgen::config::{HeaderProfile, RunConfig, TargetProfile};
use pushlab_proto::result::RunResult;
use pushlab_proto::Transport;

mod common;

const MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/// nginx-nchan in the foreground, stopped (SIGTERM) on drop.
struct Nchan {
    child: Child,
    addr: SocketAddr,
}

impl Nchan {
    /// `None` (with a note) when nginx or the module is missing outside CI.
    fn start() -> Option<Nchan> {
        let nginx = Command::new("nginx")
            .arg("-v")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !nginx || !Path::new(MODULE).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install nginx-light and libnginx-mod-nchan (.ci/run)"
            );
            eprintln!(
                "skipped: nginx with the nchan module is not installed (apt-get install nginx-light libnginx-mod-nchan)"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/nchan/run.sh");
        let child = Command::new(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting scripts/nchan/run.sh");
        let nchan = Nchan {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nchan.answers() {
            assert!(
                Instant::now() < deadline,
                "nginx-nchan did not come up on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(nchan)
    }

    /// `GET /nchan_status` answers 200.
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /nchan_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let mut answer = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
            && answer.contains("nchan version")
    }

    fn config(&self) -> RunConfig {
        let mut c = RunConfig::new(format!("http://{}", self.addr).parse().unwrap());
        c.target_profile = TargetProfile::Nchan;
        c.clients = 3;
        c.duration = Duration::from_millis(1000);
        c.warmup = Duration::from_millis(300);
        c.rate_per_s = 20.0;
        c.poll_interval = Duration::from_millis(100);
        c
    }
}

impl Drop for Nchan {
    fn drop(&mut self) {
        // SIGTERM to run.sh stops nginx and removes its scratch directory.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A clean run: everything delivered once, in order, one latency sample each, exact bytes.
/// `costed`: run with `--server-pid`, so nginx's CPU and RSS come from /proc.
fn assert_clean(r: &RunResult, costed: bool) {
    assert_eq!(r.transports.len(), 5);
    assert!(
        r.notes.iter().any(|n| n.contains("no /metrics")),
        "server cost is left out or read from /proc, with a note: {:?}",
        r.notes
    );
    for t in &r.transports {
        let name = t.transport;
        common::assert_split_exact(t);
        common::assert_delivered_once(t);
        match (costed, t.server.as_ref()) {
            (false, server) => {
                assert!(server.is_none() && t.server_cpu_us_per_1k_messages.is_none())
            }
            (true, Some(s)) => {
                assert!(
                    s.rss_bytes_before > 0 && s.cpu_seconds >= 0.0,
                    "{name}: {s:?}"
                );
                assert!(t.server_cpu_us_per_1k_messages.is_some(), "{name}");
                // nginx's CPU to the nanosecond from schedstat, split like pushlab-server's;
                // its sockets' kernel memory from ss; no heap figure, and that is said.
                assert_eq!(s.cpu_source, "schedstat", "{name}");
                assert!(s.connect_cpu_us > 0.0, "{name}: {s:?}");
                assert!(t.server_cpu_us_per_connect.is_some(), "{name}");
                assert!(t.server_cpu_us_per_delivery.is_some(), "{name}");
                assert!(
                    s.kernel_socket_bytes_per_connection.is_some(),
                    "{name}: {s:?}"
                );
                assert!(s.heap_bytes_per_connection.is_none(), "{name}");
                assert!(
                    s.unavailable.iter().any(|u| u.starts_with("heap:")),
                    "{name}: {:?}",
                    s.unavailable
                );
            }
            (true, None) => panic!("{name}: --server-pid gives a server cost"),
        }
        assert_eq!(t.errors, 0, "{name}: {:?}", t.notes);
        if name == Transport::Poll {
            // One message per intervalpoll answer, and the empty ones are 304s.
            assert!(t.http_requests >= t.delivered_messages, "{name}");
            assert!(t.empty_responses > 0, "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_gets_every_message_with_exact_bytes() {
    let Some(nchan) = Nchan::start() else { return };
    let r = pushlab_loadgen::run(nchan.config()).await.unwrap();
    assert_clean(&r, false);
    assert!(r.environment.target.starts_with("nchan at "));

    // No keep-alive and a browser's headers: more requests and connections, same delivery;
    // nginx costed from /proc (run.sh and its nginx master and worker).
    let mut cfg = nchan.config();
    cfg.keep_alive = false;
    cfg.header_profile = HeaderProfile::Browser;
    cfg.server_pid = Some(nchan.child.id());
    let r2 = pushlab_loadgen::run(cfg).await.unwrap();
    assert_clean(&r2, true);
    for (a, b) in r.transports.iter().zip(&r2.transports) {
        assert!(
            b.bytes_total.headers + b.bytes_total.handshake
                > a.bytes_total.headers + a.bytes_total.handshake,
            "{}: browser heads are bigger",
            a.transport
        );
        if matches!(a.transport, Transport::Poll | Transport::LongPoll) {
            assert_eq!(b.tcp_connects, b.http_requests, "{}", a.transport);
        }
    }
}

/// Each subscriber's connection is cut once; it resumes from nchan's cursor
/// (`If-Modified-Since`/`If-None-Match`, `Last-Event-ID`) or, on WebSocket and chunked
/// streams, from `?last_event_id=` with the id the publisher got back. Nothing is lost; the
/// streams may see a repeat when the publisher had not read the id of the message a cut
/// followed (client/nchan.rs), counted as a duplicate, at most one per cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_resumes_without_loss() {
    let Some(nchan) = Nchan::start() else { return };
    let mut cfg = nchan.config();
    cfg.concurrent = true;
    cfg.drop_after_messages = Some(4);
    let r = pushlab_loadgen::run(cfg).await.unwrap();
    for t in &r.transports {
        let name = t.transport;
        assert!(t.reconnects >= t.clients, "{name}: {}", t.reconnects);
        assert!(t.tcp_connects > t.clients, "{name}: new connections");
        assert_eq!(
            (t.lost_messages, t.out_of_order_messages),
            (0, 0),
            "{name}: {:?}",
            t.notes
        );
        let allowed = match name {
            Transport::Ws | Transport::Stream => t.reconnects,
            _ => 0,
        };
        assert!(
            t.duplicate_messages <= allowed,
            "{name}: {} duplicates: {:?}",
            t.duplicate_messages,
            t.notes
        );
        assert_eq!(
            t.delivered_messages,
            t.clients * t.published_messages,
            "{name}"
        );
        assert_eq!(t.errors, 0, "{name}: a cut is not an error: {:?}", t.notes);
    }
}
