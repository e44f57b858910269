//! curl against the server: `--http2-prior-knowledge` on the cleartext port, `-k --http2`
//! over TLS, and a pinned check (`--cacert` with the PEM from `GET /tls`, `--pinnedpubkey`
//! with the SPKI hash the server prints). Skipped, with the reason printed, when curl (or its
//! HTTP/2 support) is not installed; CI has it.

use pushlab_proto::Transport;
use pushlab_server::metrics::{Protocol, Slot};
use pushlab_server::testing::{start_server, with_self_signed_tls, TestServer};
use tokio::process::Command;

use crate::link::HANG_GUARD;
use crate::transports::quiet_config;

/// Whether curl is here and speaks HTTP/2; the reason to skip otherwise.
async fn curl_with_http2() -> Result<(), String> {
    let out = Command::new("curl")
        .arg("--version")
        .output()
        .await
        .map_err(|e| format!("no curl ({e})"))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version
        .lines()
        .any(|l| l.starts_with("Features:") && l.contains("HTTP2"))
    {
        return Err("curl lacks HTTP2 support".into());
    }
    Ok(())
}

/// Runs curl with `args`; (exit code, stdout).
async fn curl(args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(HANG_GUARD, Command::new("curl").args(args).output())
        .await
        .expect("curl in time")
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), stdout)
}

fn publish(server: &TestServer, n: u64) {
    let topic = server.shared.feed.topic("c").unwrap();
    for i in 1..=n {
        server.shared.feed.publish(&topic, &format!("curl {i}"));
    }
}

#[tokio::test]
async fn curl_http2_prior_knowledge_on_the_cleartext_port() {
    if let Err(why) = curl_with_http2().await {
        println!("skipped: {why}");
        return;
    }
    let server = start_server(quiet_config(crate::link::Mode::H2c)).await;
    publish(&server, 3);
    let base = format!("http://127.0.0.1:{}", server.addr.port());
    let (code, out) = curl(&[
        "-sS",
        "--http2-prior-knowledge",
        "-w",
        "\\n%{http_version}",
        &format!("{base}/poll/c?since=0"),
    ])
    .await;
    assert_eq!(code, 0);
    let (body, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "2", "curl spoke HTTP/2");
    assert!(
        body.starts_with("{\"next\":3,") && body.contains("curl 3"),
        "{body}"
    );
    // SSE as a long-lived HTTP/2 stream: curl reads for a second and gives up (exit 28).
    let (code, out) = curl(&[
        "-sS",
        "-N",
        "--http2-prior-knowledge",
        "--max-time",
        "1",
        &format!("{base}/sse/c?since=0"),
    ])
    .await;
    assert_eq!(code, 28, "ended by --max-time, not by the server");
    for seq in 1..=3 {
        assert!(
            out.contains(&format!(
                "id: {seq}\ndata: {{\"topic\":\"c\",\"seq\":{seq},"
            )),
            "{out}"
        );
    }
    let m = &server.shared.metrics;
    assert_eq!(
        m.protocol_requests(Slot::Transport(Transport::Poll), Protocol::H2c),
        1
    );
    assert_eq!(
        m.protocol_requests(Slot::Transport(Transport::Sse), Protocol::H2c),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn curl_http2_over_tls_insecure_and_pinned() {
    if let Err(why) = curl_with_http2().await {
        println!("skipped: {why}");
        return;
    }
    let server = start_server(with_self_signed_tls(quiet_config(crate::link::Mode::H2Tls))).await;
    publish(&server, 2);
    let port = server.addr.port();
    let (code, out) = curl(&[
        "-sS",
        "-k",
        "--http2",
        "-w",
        "\\n%{http_version}",
        &format!("https://127.0.0.1:{port}/stream/c?since=0&"),
        "--max-time",
        "1",
    ])
    .await;
    assert_eq!(code, 28, "the NDJSON stream runs until --max-time");
    assert!(
        out.contains("\"seq\":1,") && out.contains("\"seq\":2,"),
        "{out}"
    );
    // The certificate verified (not -k): the CA file from GET /tls and the SPKI pin.
    let tls = server.tls().unwrap();
    let dir = std::env::temp_dir().join(format!("pushlab-curl-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("cert.pem");
    std::fs::write(&ca, &tls.cert_pem).unwrap();
    let pin = format!("sha256//{}", tls.spki_sha256);
    let url = format!("https://localhost:{port}/poll/c?since=0");
    let ca_arg = ca.to_str().unwrap();
    let (code, out) = curl(&[
        "-sS",
        "--http2",
        "--cacert",
        ca_arg,
        "--pinnedpubkey",
        &pin,
        "-w",
        "\\n%{http_version}",
        &url,
    ])
    .await;
    assert_eq!(code, 0);
    assert!(out.ends_with("\n2"), "{out}");
    let wrong = format!("sha256//{}", "A".repeat(43) + "=");
    let (code, _) = curl(&[
        "-sS",
        "--http2",
        "--cacert",
        ca_arg,
        "--pinnedpubkey",
        &wrong,
        &url,
    ])
    .await;
    assert_eq!(
        code, 90,
        "curl refuses a certificate whose SPKI does not match the pin"
    );
    // HTTP/1.1 over TLS still works (ALPN http/1.1).
    let (code, out) = curl(&[
        "-sS",
        "--http1.1",
        "--cacert",
        ca_arg,
        "-w",
        "\\n%{http_version}",
        &url,
    ])
    .await;
    assert_eq!(code, 0);
    assert!(out.ends_with("\n1.1"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
    let m = &server.shared.metrics;
    let poll = Slot::Transport(Transport::Poll);
    // The pinned request only: the refused one never got past the handshake.
    assert_eq!(m.protocol_requests(poll, Protocol::H2), 1);
    assert_eq!(m.protocol_requests(poll, Protocol::Http1Tls), 1);
    assert_eq!(
        m.protocol_requests(Slot::Transport(Transport::Stream), Protocol::H2),
        1
    );
    server.stop().await;
}
