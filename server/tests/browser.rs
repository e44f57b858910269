//! The page at `/` in a real browser: headless Chromium, driven over the DevTools protocol.
//!
//! One test, in steps, on one server (`127.0.0.1:0`, in process) behind a relay that keeps
//! the request heads Chromium sends:
//!
//! 1. every column (short poll, long poll, SSE, chunked stream, WebSocket) connects;
//! 2. 50 messages published by `POST /publish/ticker` show in every column, all, in order;
//! 3. disconnect all, publish 10, reconnect: every column resumes from its cursor (60 in order);
//! 4. a chat line typed in the page reaches a WebSocket client of the test;
//! 5. the page's ticker control sets the server's ticker rate, and its messages arrive in order;
//! 6. a screenshot goes to `target/browser/page.png`;
//! 7. the request headers of each transport become `loadgen/fixtures/browser_headers.json`
//!    (with `PUSHLAB_UPDATE_FIXTURES=1`), or are checked against it (same header names, when
//!    the same Chromium major version runs; another major prints a note instead of failing).
//!
//! A second test loads the page over TLS and HTTP/2 (the server's self-signed certificate
//! accepted by its SPKI hash, `--ignore-certificate-errors-spki-list`): every column receives
//! every message in order, and the server's `pushlab_protocol_requests_total` says which
//! protocol each transport really used (whether Chromium took WebSocket over HTTP/2, RFC 8441,
//! is printed).
//!
//! Chromium is `/usr/bin/chromium` (or `$PUSHLAB_CHROMIUM`). Without it the test fails when
//! `CI` is set and is skipped with a note otherwise.

#[path = "browser/cdp.rs"]
mod cdp;
#[path = "browser/page.rs"]
mod page;
#[path = "browser/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use cdp::Browser;
use page::{find_chromium, wait_columns, wait_true, Column, TRANSPORTS, WAIT};

const WINDOW: (u32, u32) = (1600, 1040);

/// Cookies a real site would have set (a Django session and CSRF token, as in the tutorials,
/// plus analytics and consent cookies): 6 cookies, about 350 bytes in the `Cookie` header.
const COOKIES: [(&str, &str); 6] = [
    ("csrftoken", "kX9vTq2LrW4mZp7YbN3cHd6Fs8Ga1Je5"),
    ("sessionid", "q8w3e5r7t9y2u4i6o1p0a3s5d7f9g2h4"),
    ("_ga", "GA1.1.1387526049.1712345678"),
    ("_ga_5Q2XK7M9PL", "GS1.1.1712345678.4.1.1712349876.0.0.0"),
    ("_gid", "GA1.2.902345123.1712345678"),
    (
        "cookie_consent",
        "necessary:true,analytics:true,marketing:false,version:3,ts:1712345678901,\
         id:8c1f6d2e-4b7a-4e9c-9f3d-2a6b5c8e1d7f",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_the_feed_on_all_five_transports() {
    let Some(chromium) = find_chromium() else {
        let msg = "Chromium not found at /usr/bin/chromium (or $PUSHLAB_CHROMIUM); \
                   install it with `apt-get install chromium` (.ci/run does)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED browser test: {msg}");
        return;
    };
    tokio::time::timeout(Duration::from_secs(120), run(&chromium))
        .await
        .expect("browser test hang guard (120 s) passed")
        .expect("browser test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_over_tls_and_http2() {
    let Some(chromium) = find_chromium() else {
        let msg = "Chromium not found at /usr/bin/chromium (or $PUSHLAB_CHROMIUM)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED browser test over TLS: {msg}");
        return;
    };
    tokio::time::timeout(Duration::from_secs(120), run_tls(&chromium))
        .await
        .expect("browser test hang guard (120 s) passed")
        .expect("browser test over TLS and HTTP/2");
}

async fn run_tls(chromium: &Path) -> anyhow::Result<()> {
    use pushlab_server::metrics::{Protocol, Slot};
    use pushlab_server::testing::{start_server, with_self_signed_tls};

    let fixture = start_server(with_self_signed_tls(pushlab_server::ServerConfig::default())).await;
    let pin = fixture.tls().context("TLS on")?.spki_sha256.clone();
    let out = out_dir().join("tls");
    std::fs::create_dir_all(&out)?;
    let flags = [format!("--ignore-certificate-errors-spki-list={pin}")];
    let mut browser =
        Browser::launch(chromium, &out, &out.join("chromium.log"), WINDOW, &flags).await?;
    let cdp = &mut browser.cdp;
    let result = async {
        cdp.open_page().await?;
        let origin = format!("https://127.0.0.1:{}/", fixture.addr.port());
        cdp.call("Page.navigate", json!({ "url": origin })).await?;
        wait_true(cdp, "page loaded", "document.readyState === 'complete'").await?;
        wait_columns(cdp, "every column open", |cols| {
            cols.iter().all(|c| c.state == "open")
        })
        .await?;
        let topic = fixture.shared.feed.topic("ticker")?;
        let published: Vec<u64> = (1..=30)
            .map(|i| {
                fixture
                    .shared
                    .feed
                    .publish(&topic, &format!("tls {i}"))
                    .seq()
            })
            .collect();
        wait_columns(cdp, "all 30 messages in every column", |cols| {
            cols.iter().all(|c| c.seqs() == published)
        })
        .await?;
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        let _ = screenshot(cdp, &out.join("failure.png")).await;
    }
    browser.close().await;
    let m = fixture.shared.metrics.clone();
    fixture.stop().await;
    result?;
    let mut used = Vec::new();
    for name in TRANSPORTS {
        let t: pushlab_proto::Transport = name.parse()?;
        let slot = Slot::Transport(t);
        let by: Vec<(Protocol, u64)> = Protocol::ALL
            .iter()
            .map(|p| (*p, m.protocol_requests(slot, *p)))
            .filter(|(_, n)| *n > 0)
            .collect();
        ensure!(!by.is_empty(), "{name}: no request reached the server");
        ensure!(
            by.iter()
                .all(|(p, _)| matches!(p, Protocol::H2 | Protocol::Http1Tls)),
            "{name}: cleartext over an https page: {by:?}"
        );
        if name != "ws" {
            ensure!(
                by.iter().all(|(p, _)| *p == Protocol::H2),
                "{name}: Chromium did not use HTTP/2 over TLS: {by:?}"
            );
        }
        used.push(format!("{name} {:?}", by));
    }
    let ws_h2 =
        m.protocol_requests(Slot::Transport(pushlab_proto::Transport::Ws), Protocol::H2) > 0;
    eprintln!(
        "browser test over TLS: requests by protocol: {}; WebSocket over HTTP/2 (RFC 8441): {}",
        used.join(", "),
        if ws_h2 { "yes" } else { "no (wss on HTTP/1.1)" }
    );
    Ok(())
}

/// `target/browser/`, where the screenshot, Chromium's log and its profile go.
fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("browser")
}

async fn run(chromium: &Path) -> anyhow::Result<()> {
    let fixture =
        pushlab_server::testing::start_server(pushlab_server::ServerConfig::default()).await;
    let server = fixture.addr;
    let (relay, heads) = proxy::start(server).await?;

    let out = out_dir();
    std::fs::create_dir_all(&out)?;
    let mut browser =
        Browser::launch(chromium, &out, &out.join("chromium.log"), WINDOW, &[]).await?;
    let result = drive(&mut browser, server, relay, &heads, &out).await;
    if result.is_err() {
        let _ = screenshot(&mut browser.cdp, &out.join("failure.png")).await;
    }
    browser.close().await;
    fixture.stop().await;
    result
}

async fn drive(
    browser: &mut Browser,
    server: SocketAddr,
    relay: SocketAddr,
    heads: &proxy::Heads,
    out: &Path,
) -> anyhow::Result<()> {
    let version = browser
        .cdp
        .call_browser("Browser.getVersion", json!({}))
        .await?;
    let product = version["product"].as_str().unwrap_or("?").to_owned();
    let cdp = &mut browser.cdp;
    cdp.open_page().await?;
    let origin = format!("http://{relay}/");
    let cookies: Vec<Value> = COOKIES
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value, "url": origin}))
        .collect();
    cdp.call("Network.setCookies", json!({ "cookies": cookies }))
        .await?;
    cdp.call("Page.navigate", json!({ "url": origin })).await?;
    wait_true(cdp, "page loaded", "document.readyState === 'complete'").await?;
    let mut http = Publisher::connect(server).await?;

    // 1. Every column connects (and the chat joins its room).
    wait_columns(cdp, "every column open", |cols| {
        cols.iter().all(|c| c.state == "open")
    })
    .await?;
    wait_true(
        cdp,
        "chat open",
        "document.querySelector('#chat').dataset.state === 'open'",
    )
    .await?;

    // 2. 50 messages, all of them in order in every column.
    let mut published = Vec::new();
    for i in 1..=50 {
        published.push(http.publish("ticker", &format!("hello {i}")).await?);
    }
    let cols = wait_columns(cdp, "all 50 messages in every column", |cols| {
        cols.iter().all(|c| c.seqs() == published)
    })
    .await?;
    for c in &cols {
        ensure!(
            c.count == 50,
            "{} counted {} messages",
            c.transport,
            c.count
        );
        ensure!(
            c.newest_line == Some(published[49]),
            "{} log starts with {:?}",
            c.transport,
            c.newest_line
        );
    }

    // 3. Disconnect all, publish 10, reconnect: each resumes from its own cursor.
    cdp.eval("document.querySelector('#disconnect-all').click()")
        .await?;
    wait_columns(cdp, "every column closed", |cols| {
        cols.iter().all(|c| c.state == "closed")
    })
    .await?;
    for i in 51..=60 {
        published.push(http.publish("ticker", &format!("hello {i}")).await?);
    }
    cdp.eval("document.querySelector('#connect-all').click()")
        .await?;
    wait_columns(cdp, "60 messages in order after a reconnect", |cols| {
        cols.iter().all(|c| c.seqs() == published)
    })
    .await?;

    // 4. A chat line typed in the page reaches a WebSocket client of the test.
    let mut room = ws_client(server, "/ws/lobby").await?;
    let line = format!("hello from chromium {}", std::process::id());
    cdp.eval("document.querySelector('#chat-input').focus()")
        .await?;
    cdp.call("Input.insertText", json!({ "text": line }))
        .await?;
    cdp.eval("document.querySelector('#chat-send').click()")
        .await?;
    let got = tokio::time::timeout(WAIT, async {
        while let Some(frame) = room.next().await {
            if let Message::Text(t) = frame? {
                let v: Value = serde_json::from_str(t.as_str())?;
                return anyhow::Ok(v);
            }
        }
        bail!("room WebSocket closed")
    })
    .await
    .context("no chat message reached the test's WebSocket client")??;
    ensure!(
        got["data"] == line.as_str() && got["topic"] == "lobby",
        "the room got {got}"
    );
    let shown = format!(
        "[...document.querySelectorAll('#chat-log .data')].some(e => e.textContent === {})",
        serde_json::to_string(&line)?
    );
    wait_true(cdp, "chat line shown in the page", &shown).await?;

    // 5. The ticker control sets the server's ticker; its messages arrive in order everywhere.
    cdp.eval(
        "document.querySelector('#ticker-rate').value = '20';\
         document.querySelector('#ticker-set').click()",
    )
    .await?;
    wait_true(
        cdp,
        "ticker control confirmed",
        "document.querySelector('#ticker-state').dataset.rate === '20'",
    )
    .await?;
    let (status, body) = http.request(Method::GET, "/ticker", "").await?;
    ensure!(
        status == StatusCode::OK && body == r#"{"rate":20}"#,
        "GET /ticker answered {status} {body}"
    );
    let in_order = |c: &Column| {
        let seqs = c.seqs();
        seqs.len() >= 75 && seqs.iter().zip(1..).all(|(s, i)| *s == i)
    };
    wait_columns(cdp, "ticker messages in order in every column", |cols| {
        cols.iter().all(in_order)
    })
    .await?;

    // 6. The screenshot (the ticker still running, so the latency figures are live).
    let shot_path = out.join("page.png");
    let png_bytes = screenshot(cdp, &shot_path).await?;
    cdp.eval(
        "document.querySelector('#ticker-rate').value = '0';\
         document.querySelector('#ticker-set').click()",
    )
    .await?;
    eprintln!(
        "browser test: {product}; screenshot {} ({} bytes)",
        shot_path.display(),
        png_bytes
    );

    // 7. The headers Chromium sent, per transport.
    let heads = heads.lock().expect("heads lock").clone();
    header_fixture(&product, &heads)?;
    Ok(())
}

/// Saves a PNG of the whole page; returns its size in bytes.
async fn screenshot(cdp: &mut cdp::Cdp, path: &Path) -> anyhow::Result<usize> {
    let layout = cdp.call("Page.getLayoutMetrics", json!({})).await?;
    let size = &layout["cssContentSize"];
    let clip =
        json!({"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1});
    let shot = cdp
        .call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true, "clip": clip}),
        )
        .await?;
    let png = base64_decode(shot["data"].as_str().context("screenshot data")?)?;
    std::fs::write(path, &png).with_context(|| format!("writing {}", path.display()))?;
    Ok(png.len())
}

/// An HTTP/1.1 keep-alive client for publishing straight to the server (not via the relay).
struct Publisher {
    addr: SocketAddr,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Publisher {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Publisher> {
        let io = TokioIo::new(TcpStream::connect(addr).await?);
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        Ok(Publisher { addr, sender })
    }

    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(StatusCode, String)> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string())
            .body(Full::new(Bytes::from(body.to_owned())))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(bytes.to_vec())?))
    }

    /// Publishes `data` on `topic`; returns the seq the server gave it.
    async fn publish(&mut self, topic: &str, data: &str) -> anyhow::Result<u64> {
        let (status, body) = self
            .request(Method::POST, &format!("/publish/{topic}"), data)
            .await?;
        if status != StatusCode::ACCEPTED {
            bail!("publish answered {status}: {body}");
        }
        let v: Value = serde_json::from_str(&body)?;
        v["seq"].as_u64().context("seq in publish answer")
    }
}

async fn ws_client(
    addr: SocketAddr,
    path: &str,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), tcp).await?;
    Ok(ws)
}

/// The first head sent to a path starting with `prefix`.
fn head_for<'a>(heads: &'a [Vec<u8>], prefix: &str) -> anyhow::Result<&'a [u8]> {
    heads
        .iter()
        .find(|h| {
            proxy::request_line(h)
                .split(' ')
                .nth(1)
                .is_some_and(|p| p.starts_with(prefix))
        })
        .map(|h| &h[..])
        .with_context(|| format!("no request to {prefix}* went through the relay"))
}

/// Writes (`PUSHLAB_UPDATE_FIXTURES=1`) or checks the browser header fixture.
fn header_fixture(product: &str, heads: &[Vec<u8>]) -> anyhow::Result<()> {
    let fetch = head_for(heads, "/poll/ticker?since=")?;
    let eventsource = head_for(heads, "/sse/ticker")?;
    let websocket = head_for(heads, "/ws/ticker")?;
    // The long poll and the stream are fetches too: the same headers.
    for other in ["/longpoll/ticker", "/stream/ticker"] {
        ensure!(
            names(&proxy::header_pairs(head_for(heads, other)?))
                == names(&proxy::header_pairs(fetch)),
            "{other} was fetched with other headers than /poll"
        );
    }
    let kinds = [
        ("fetch", fetch),
        ("eventsource", eventsource),
        ("websocket", websocket),
    ];
    for (kind, head) in kinds {
        eprintln!(
            "browser test: {kind} request head {} bytes: {}",
            head.len(),
            proxy::request_line(head)
        );
        ensure!(
            proxy::header_pairs(head).iter().any(|(n, _)| n == "Cookie"),
            "{kind} request carried no Cookie header"
        );
    }
    // The manifest dir of this run (cargo sets it), not of the build: builds of other copies
    // of the workspace may share the target dir.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let path = manifest_dir.join("../loadgen/fixtures/browser_headers.json");
    if std::env::var_os("PUSHLAB_UPDATE_FIXTURES").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("fixtures dir"))?;
        std::fs::write(&path, fixture_json(product, &kinds))?;
        eprintln!("browser test: wrote {}", path.display());
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}; make it with PUSHLAB_UPDATE_FIXTURES=1 cargo test -p pushlab-server --test browser",
            path.display()
        )
    })?;
    let fixture: Value = serde_json::from_str(&text)?;
    for (kind, head) in kinds {
        let kept: Vec<String> = fixture[kind]
            .as_array()
            .with_context(|| format!("{kind} missing from the fixture"))?
            .iter()
            .map(|pair| pair[0].as_str().unwrap_or_default().to_owned())
            .collect();
        let sent = names(&proxy::header_pairs(head));
        if sent != kept && !same_major(product, fixture["chromium_version"].as_str()) {
            // Another Chromium major than the one captured: the fixture (what the loadgen's
            // browser profile sends) is still a real capture, just of that older version. Say
            // so loudly rather than fail a build over a browser update.
            eprintln!(
                "NOTE: Chromium ({product}) sends other {kind} header names than {} \
                 (captured from Chromium {}); refresh it with PUSHLAB_UPDATE_FIXTURES=1\n\
                 sent {sent:?}\nkept {kept:?}",
                path.display(),
                fixture["chromium_version"].as_str().unwrap_or("?")
            );
            continue;
        }
        ensure!(
            sent == kept,
            "Chromium ({product}) now sends other {kind} header names than {} keeps:\n\
             sent {sent:?}\nkept {kept:?}\n\
             if that is expected, refresh it with PUSHLAB_UPDATE_FIXTURES=1",
            path.display()
        );
    }
    Ok(())
}

/// Whether `product` (`HeadlessChrome/156.0.8078.79`) has the major version of `captured`.
fn same_major(product: &str, captured: Option<&str>) -> bool {
    let major = |v: &str| {
        v.rsplit('/')
            .next()
            .unwrap_or(v)
            .split('.')
            .next()
            .map(str::to_owned)
    };
    captured.is_some_and(|c| major(c) == major(product))
}

fn names(pairs: &[(String, String)]) -> Vec<String> {
    pairs.iter().map(|(n, _)| n.clone()).collect()
}

/// The fixture, one header per line so that a refresh reads well in a diff.
fn fixture_json(product: &str, kinds: &[(&str, &[u8])]) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("string");
    let version = product.rsplit('/').next().unwrap_or(product);
    let note = "Request headers headless Chromium sent on each transport of the pushlab page, in \
                order and case, captured by a byte relay in front of the server. The Cookie \
                header is a typical site's (6 cookies: Django session and CSRF token, analytics, \
                consent) set by the test before loading the page: a fresh profile has none. \
                Host, Origin and Referer name the capture's ephemeral port: put the target's \
                there. User-Agent says HeadlessChrome/ where a desktop Chromium says Chrome/ \
                (8 bytes more here). request_head_bytes: request line (GET /poll/ticker?since=0 \
                HTTP/1.1 and the like) plus headers plus the blank line.";
    let mut s = String::from("{\n");
    s += &format!("  \"chromium_version\": {},\n", q(version));
    s += &format!("  \"captured_by\": {},\n", q("server/tests/browser.rs"));
    s += &format!("  \"note\": {},\n", q(note));
    s += "  \"request_head_bytes\": {";
    let sizes: Vec<String> = kinds
        .iter()
        .map(|(k, h)| format!("{}: {}", q(k), h.len()))
        .collect();
    s += &sizes.join(", ");
    s += "},\n";
    for (i, (kind, head)) in kinds.iter().enumerate() {
        s += &format!("  {}: [\n", q(kind));
        let pairs = proxy::header_pairs(head);
        let lines: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("    [{}, {}]", q(n), q(v)))
            .collect();
        s += &lines.join(",\n");
        s += if i + 1 == kinds.len() {
            "\n  ]\n"
        } else {
            "\n  ],\n"
        };
    }
    s += "}\n";
    s
}

/// Standard base64 (the screenshot Chromium returns), without a dependency for it.
fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {:?}", b as char),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
}
