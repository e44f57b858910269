//! The binary's flags end to end: a value out of range stops `pushlab-server` before it binds,
//! with exit code 2 and one line naming the flag (the checks themselves are unit-tested in
//! `server/src/config.rs`).

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pushlab-server");

#[test]
fn a_bad_flag_value_exits_2_naming_the_flag() {
    for (flags, named) in [
        (&["--history", "0"][..], "--history"),
        (
            &["--heartbeat", "15", "--idle-timeout", "10"],
            "--idle-timeout",
        ),
        (&["--max-headers", "101"], "--max-headers"),
    ] {
        let out = run_bounded(flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        let line = stderr.trim();
        assert!(
            line.starts_with(&format!("pushlab-server: error: {named} ")) && !line.contains('\n'),
            "{flags:?}: {stderr}"
        );
    }
}

#[test]
fn a_replica_that_cannot_reach_redis_exits_1_with_one_line() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let out = run_bounded(&["--backplane", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr.trim();
    assert!(
        line.starts_with("pushlab-server: error: backplane: ")
            && line.contains(&url)
            && !line.contains('\n'),
        "{stderr}"
    );
}

/// Runs the binary on 127.0.0.1:0 with `flags`; were they accepted it would serve, so it is
/// killed after 10 s (and the test fails on its exit status).
fn run_bounded(flags: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0"])
        .args(flags)
        .env_remove("PUSHLAB_PUBLISH_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs pushlab-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("waits");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = Vec::new();
    let _ = child.stderr.take().expect("piped").read_to_end(&mut stderr);
    Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}
