//! Bad input on HTTP/2 and TLS, each answered as RFC 9113 (or RFC 8446) says, bounded, counted
//! in `pushlab_rejected_total` with its reason (the refusals h2 makes on its own included, read
//! from the frames the server writes: `pushlab_server::h2watch`), and followed by a normal
//! request from another client that must succeed.
//!
//! The raw tests speak HTTP/2 frames by hand (RFC 9113 §4.1: 9-byte header, then payload) with
//! a minimal HPACK encoder (static-table indices and literals, RFC 7541), so they can send what
//! no well-behaved client library sends.
//!
//! ```text
//! bad preface, h2c            PRI * HTTP/2.0 ... XX     HTTP/1 parse error, 505/400, closed  bad_request
//! bad preface, TLS + ALPN h2  GET / HTTP/1.1 ...        closed (PROTOCOL_ERROR)              h2_protocol_error
//! 20 kB header block          HEADERS x-big: 20000 B    431 JSON, stream only                header_too_large
//! 200 kB header block         HEADERS + CONTINUATION    GOAWAY ENHANCE_YOUR_CALM, bounded    h2_enhance_your_calm
//! 99 kB header list, 12 kB    3,000 one-letter fields   h2's own 431 + RST_STREAM            header_too_large (h2watch)
//! :status in a request        HEADERS with :status      RST_STREAM PROTOCOL_ERROR            h2_stream_error (h2watch)
//! rapid reset                 1000 x (HEADERS, RST)     GOAWAY ENHANCE_YOUR_CALM             h2_enhance_your_calm
//! max concurrent streams      8 streams, limit 4        RST_STREAM REFUSED_STREAM x 4        h2_refused_stream (h2watch)
//! PING / SETTINGS flood       unread, 1M frames         reading stops, connection cut        header_timeout
//! TLS stall mid-handshake     5 bytes of a ClientHello  cut at --header-read-timeout         header_timeout
//! not TLS after 0x16          0x16 then junk            alert, closed                         tls_handshake
//! GET /ws on HTTP/2           no extended CONNECT       426 JSON naming RFC 8441              upgrade_required
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use pushlab_server::metrics::{Rejection, Slot};
use pushlab_server::testing::{start_server, with_self_signed_tls, TestServer};
use pushlab_server::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::link::{open, Mode, HANG_GUARD};
use crate::sub::{get, h2_client};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const REFUSED_STREAM: u32 = 0x7;
const PROTOCOL_ERROR: u32 = 0x1;

/// Short timeouts, so cuts happen within a second or two.
fn config() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

/// One HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the first byte or-ed with `high`.
fn hpack_int(out: &mut Vec<u8>, high: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block for `GET path` (`:method GET`, `:scheme http` indexed; `:authority`,
/// `:path` and `extra` as literals without indexing).
fn get_block(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    let literal_indexed_name = |b: &mut Vec<u8>, index: usize, value: &str| {
        hpack_int(b, 0x00, 4, index);
        hpack_int(b, 0x00, 7, value.len());
        b.extend_from_slice(value.as_bytes());
    };
    literal_indexed_name(&mut b, 1, "localhost");
    literal_indexed_name(&mut b, 4, path);
    for (name, value) in extra {
        b.push(0x00);
        hpack_int(&mut b, 0x00, 7, name.len());
        b.extend_from_slice(name.as_bytes());
        hpack_int(&mut b, 0x00, 7, value.len());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// A raw cleartext HTTP/2 connection that has sent its preface and empty SETTINGS.
async fn raw_h2c(server: &TestServer) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await.unwrap();
    s
}

/// The next frame: (type, flags, stream, payload); `None` at EOF or on a reset socket.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head).await.ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], stream, payload))
}

fn code_of(payload: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(payload[at..at + 4].try_into().unwrap())
}

/// A normal request from a fresh client must still be answered (h2c; over TLS when on).
async fn still_serves(server: &TestServer) {
    let mode = if server.tls().is_some() {
        Mode::H2Tls
    } else {
        Mode::H2c
    };
    let (link, io) = open(server, mode).await;
    let mut send = h2_client(io).await;
    let scheme = mode.scheme();
    let resp = get(
        &mut send,
        &format!("{scheme}://localhost:{}/healthz", server.addr.port()),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the server serves others after the attack"
    );
    drop(send);
    link.close().await;
}

#[tokio::test]
async fn bad_preface_in_cleartext_is_an_http1_parse_error() {
    let server = start_server(config()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG_GUARD, s.read_to_end(&mut answer))
        .await
        .expect("closed")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 505") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert_eq!(
        server
            .wait_rejected(Rejection::BadRequest, 1, HANG_GUARD)
            .await,
        1
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn bad_preface_after_alpn_h2_is_a_connection_error() {
    let server = start_server(with_self_signed_tls(config())).await;
    let connector = tokio_rustls::TlsConnector::from(server.tls_client_config(&[b"h2"]));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // RFC 9113 §3.4: a connection error PROTOCOL_ERROR; the GOAWAY may be omitted.
    let mut rest = Vec::new();
    tokio::time::timeout(HANG_GUARD, tls.read_to_end(&mut rest))
        .await
        .expect("closed")
        .ok();
    assert!(
        !String::from_utf8_lossy(&rest).contains("HTTP/1.1"),
        "no HTTP/1 answer"
    );
    assert_eq!(
        server
            .wait_rejected(Rejection::H2ProtocolError, 1, HANG_GUARD)
            .await,
        1
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_header_block_over_max_header_bytes_gets_431_and_the_connection_lives() {
    let server = start_server(config()).await;
    let (link, io) = open(&server, Mode::H2c).await;
    let mut send = h2_client(io).await;
    let url = format!("http://localhost:{}/poll/big?since=0", server.addr.port());
    let req = Request::get(&url)
        .header("x-big", "b".repeat(20_000))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send
        .send_request(req)
        .await
        .expect("an answer on the stream");
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("\"error\""),
        "JSON reason"
    );
    assert_eq!(server.rejected(Rejection::HeaderTooLarge), 1);
    // Only the stream was refused: the connection carries the next request.
    let ok = get(&mut send, &url).await;
    assert_eq!(ok.status(), StatusCode::OK);
    drop(send);
    link.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_header_block_over_h2s_own_limit_is_refused_and_bounded() {
    let server = start_server(config()).await;
    let mut s = raw_h2c(&server).await;
    let block = get_block("/poll/huge?since=0", &[("x-huge", &"h".repeat(200_000))]);
    let mut chunks = block.chunks(16_384);
    let mut out = frame(HEADERS, END_STREAM, 1, chunks.next().unwrap());
    let rest: Vec<&[u8]> = chunks.collect();
    for (i, c) in rest.iter().enumerate() {
        let flags = if i + 1 == rest.len() { END_HEADERS } else { 0 };
        out.extend(frame(CONTINUATION, flags, 1, c));
    }
    let _ = s.write_all(&out).await;
    // h2 answers the stream (431 HEADERS, RST_STREAM) or the connection (GOAWAY).
    let answered = tokio::time::timeout(HANG_GUARD, async {
        while let Some((kind, _, stream, payload)) = read_frame(&mut s).await {
            if (kind == HEADERS || kind == RST_STREAM) && stream == 1 {
                return Some((kind, 0));
            }
            if kind == GOAWAY {
                return Some((kind, code_of(&payload, 4)));
            }
        }
        None
    })
    .await
    .expect("an answer in time");
    // h2's own refusal is counted: as the header list it refused (a stream answer, counted
    // like the router's 431), or as the connection error it raised (GOAWAY: too many
    // CONTINUATION frames is ENHANCE_YOUR_CALM, a block past what it will skip is
    // COMPRESSION_ERROR).
    let why = match answered.expect("the oversized block was answered") {
        (GOAWAY, ENHANCE_YOUR_CALM) => Rejection::H2EnhanceYourCalm,
        (GOAWAY, code) => {
            println!("GOAWAY code {code:#x}");
            Rejection::H2ProtocolError
        }
        _ => Rejection::HeaderTooLarge,
    };
    assert_eq!(server.wait_rejected(why, 1, HANG_GUARD).await, 1, "{why:?}");
    assert_eq!(server.rejected(Rejection::H2StreamError), 0);
    assert_eq!(server.rejected(Rejection::H2RefusedStream), 0);
    assert_eq!(
        server
            .shared
            .metrics
            .slot(Slot::Other)
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_request_is_a_stream_error_and_the_connection_lives() {
    let server = start_server(config()).await;
    let mut s = raw_h2c(&server).await;
    // RFC 9113 §8.3.1: a request carrying the response pseudo-header `:status` (static index
    // 8, `:status 200`) is malformed: a stream error PROTOCOL_ERROR.
    let mut bad = get_block("/poll/bad?since=0", &[]);
    bad.push(0x88);
    let good = get_block("/poll/bad?since=0", &[]);
    let mut out = frame(HEADERS, END_STREAM | END_HEADERS, 1, &bad);
    out.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &good));
    s.write_all(&out).await.unwrap();
    let (reset, answered) = tokio::time::timeout(HANG_GUARD, async {
        let (mut reset, mut answered) = (None, false);
        while reset.is_none() || !answered {
            let (kind, _, stream, payload) = read_frame(&mut s).await.expect("frames");
            match (kind, stream) {
                (RST_STREAM, 1) => reset = Some(code_of(&payload, 0)),
                (HEADERS, 3) => answered = true,
                (GOAWAY, _) => panic!("a stream error, not a connection error"),
                _ => {}
            }
        }
        (reset, answered)
    })
    .await
    .expect("answers in time");
    assert_eq!(reset, Some(PROTOCOL_ERROR), "RST_STREAM PROTOCOL_ERROR");
    assert!(answered, "the next stream on the connection is served");
    assert_eq!(
        server
            .wait_rejected(Rejection::H2StreamError, 1, HANG_GUARD)
            .await,
        1
    );
    assert_eq!(server.rejected(Rejection::H2ProtocolError), 0);
    drop(s);
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_header_list_over_h2s_own_limit_gets_h2s_431_and_is_counted() {
    let server = start_server(config()).await;
    let mut s = raw_h2c(&server).await;
    // 3,000 one-letter fields: ~12 kB of HPACK, but 99 kB of header list as RFC 7541 §4.1
    // sizes it (32 B per field), past h2's limit: h2 answers 431 itself and resets the stream.
    let fields: Vec<(&str, &str)> = vec![("x", ""); 3000];
    let block = get_block("/poll/many?since=0", &fields);
    assert!(block.len() < 16_384, "one HEADERS frame");
    s.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &block))
        .await
        .unwrap();
    let status = tokio::time::timeout(HANG_GUARD, async {
        while let Some((kind, _, stream, payload)) = read_frame(&mut s).await {
            match (kind, stream) {
                (HEADERS, 1) => return Some(payload),
                (GOAWAY, _) => return None,
                _ => {}
            }
        }
        None
    })
    .await
    .expect("an answer in time")
    .expect("a stream answer, not GOAWAY");
    assert!(status.len() <= 8, "h2's bare status: {status:?}");
    assert_eq!(
        server
            .wait_rejected(Rejection::HeaderTooLarge, 1, HANG_GUARD)
            .await,
        1,
        "h2's 431 counted as header_too_large"
    );
    assert_eq!(server.rejected(Rejection::H2StreamError), 0);
    drop(s);
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn rapid_reset_gets_goaway_enhance_your_calm() {
    let server = start_server(config()).await;
    let mut s = raw_h2c(&server).await;
    let block = get_block("/poll/rr?since=0", &[]);
    let mut storm = Vec::new();
    for i in 0..1000u32 {
        let id = 2 * i + 1;
        storm.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &block));
        storm.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
    }
    let _ = s.write_all(&storm).await;
    let goaway = tokio::time::timeout(HANG_GUARD, async {
        while let Some((kind, _, _, payload)) = read_frame(&mut s).await {
            if kind == GOAWAY {
                return Some(code_of(&payload, 4));
            }
        }
        None
    })
    .await
    .expect("GOAWAY in time");
    assert_eq!(
        goaway,
        Some(ENHANCE_YOUR_CALM),
        "RFC 9113 §5.4.1 GOAWAY ENHANCE_YOUR_CALM"
    );
    assert!(
        server
            .wait_rejected(Rejection::H2EnhanceYourCalm, 1, HANG_GUARD)
            .await
            >= 1
    );
    let routed = server
        .shared
        .metrics
        .transport(pushlab_proto::Transport::Poll)
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        routed < 1000,
        "the storm was cut short: {routed} of 1000 streams routed"
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn streams_past_max_concurrent_streams_are_refused() {
    let server = start_server(ServerConfig {
        h2_max_concurrent_streams: 4,
        ..config()
    })
    .await;
    let mut s = raw_h2c(&server).await;
    // The server's SETTINGS (RFC 9113 §6.5.2): MAX_CONCURRENT_STREAMS (0x3) = 4 and, for RFC
    // 8441, ENABLE_CONNECT_PROTOCOL (0x8) = 1.
    let (kind, flags, _, payload) = read_frame(&mut s).await.expect("SETTINGS");
    assert_eq!((kind, flags), (SETTINGS, 0));
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|c| (u16::from_be_bytes([c[0], c[1]]), code_of(c, 2)))
        .collect();
    assert!(settings.contains(&(0x3, 4)), "{settings:?}");
    assert!(settings.contains(&(0x8, 1)), "{settings:?}");
    s.write_all(&frame(SETTINGS, 0x1, 0, &[])).await.unwrap(); // ACK
    let block = get_block("/sse/mc", &[]);
    let mut open8 = Vec::new();
    for i in 0..8u32 {
        open8.extend(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, &block));
    }
    s.write_all(&open8).await.unwrap();
    let refused = tokio::time::timeout(HANG_GUARD, async {
        let mut refused = Vec::new();
        while refused.len() < 4 {
            let (kind, _, stream, payload) = read_frame(&mut s).await.expect("frames");
            if kind == RST_STREAM && code_of(&payload, 0) == REFUSED_STREAM {
                refused.push(stream);
            }
        }
        refused
    })
    .await
    .expect("refusals in time");
    assert_eq!(
        refused,
        vec![9, 11, 13, 15],
        "streams past the limit, RST_STREAM REFUSED_STREAM"
    );
    assert_eq!(
        server
            .wait_rejected(Rejection::H2RefusedStream, 4, HANG_GUARD)
            .await,
        4,
        "each refused stream counted"
    );
    assert_eq!(server.rejected(Rejection::H2StreamError), 0);
    assert_eq!(
        server
            .shared
            .metrics
            .transport(pushlab_proto::Transport::Sse)
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    still_serves(&server).await;
    drop(s);
    server.stop().await;
}

/// A peer that floods control frames and reads nothing: h2 answers each PING and SETTINGS
/// (one pending answer at a time), so once the answers back up it stops reading; nothing moves
/// and the watchdog cuts the connection. The server reads a bounded part of the flood.
async fn control_flood_is_bounded(kind: u8) {
    let server = start_server(config()).await;
    let s = raw_h2c(&server).await;
    let one = match kind {
        PING => frame(PING, 0, 0, &[7; 8]),
        _ => frame(SETTINGS, 0, 0, &[0, 0x4, 0, 1, 0, 0]), // INITIAL_WINDOW_SIZE 65536
    };
    let frames = 1_000_000usize;
    let flood: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * frames)
        .collect();
    let sent = flood.len() as u64;
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&flood).await;
        wr
    });
    still_serves(&server).await;
    let cut = server
        .wait_rejected(Rejection::HeaderTimeout, 1, HANG_GUARD)
        .await;
    assert_eq!(cut, 1, "the flooding connection was cut");
    let _ = tokio::time::timeout(HANG_GUARD, writer).await;
    let _ = &mut rd;
    assert_eq!(server.settle(Duration::from_secs(10)).await, 0);
    let read = server
        .shared
        .metrics
        .slot(Slot::Other)
        .bytes_read
        .load(std::sync::atomic::Ordering::Relaxed);
    println!("flood of {sent} bytes: the server read {read} before the cut");
    assert!(
        read < sent,
        "the server stopped reading: {read} of {sent} bytes"
    );
    server.stop().await;
}

#[tokio::test]
async fn ping_flood_is_bounded() {
    control_flood_is_bounded(PING).await
}

#[tokio::test]
async fn settings_flood_is_bounded() {
    control_flood_is_bounded(SETTINGS).await
}

#[tokio::test]
async fn a_tls_handshake_that_stalls_is_cut_at_the_header_read_timeout() {
    let server = start_server(with_self_signed_tls(config())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // A ClientHello record header announcing 200 bytes, and then nothing.
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01])
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(HANG_GUARD, s.read_to_end(&mut rest))
        .await
        .expect("cut")
        .ok();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert_eq!(
        server
            .wait_rejected(Rejection::HeaderTimeout, 1, HANG_GUARD)
            .await,
        1
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn junk_after_a_handshake_byte_fails_the_handshake() {
    let server = start_server(with_self_signed_tls(config())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"\x16junk that is no TLS record at all\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(HANG_GUARD, s.read_to_end(&mut rest))
        .await
        .expect("closed")
        .ok();
    assert_eq!(
        server
            .wait_rejected(Rejection::TlsHandshake, 1, HANG_GUARD)
            .await,
        1
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn cleartext_and_the_pin_beside_tls() {
    let server = start_server(with_self_signed_tls(config())).await;
    let (link, io) = open(&server, Mode::H2c).await;
    let mut send = h2_client(io).await;
    let resp = get(
        &mut send,
        &format!("http://localhost:{}/tls", server.addr.port()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let tls = server.tls().unwrap();
    assert_eq!(v["spki_sha256"], tls.spki_sha256.as_str());
    assert_eq!(v["cert_pem"], tls.cert_pem.as_str());
    assert_eq!(v["self_signed"], true);
    drop(send);
    link.close().await;
    still_serves(&server).await;
    server.stop().await;

    let plain = start_server(config()).await;
    let (link, io) = open(&plain, Mode::H2c).await;
    let mut send = h2_client(io).await;
    let resp = get(
        &mut send,
        &format!("http://localhost:{}/tls", plain.addr.port()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    drop(send);
    link.close().await;
    plain.stop().await;
}

#[tokio::test]
async fn a_plain_get_on_ws_over_http2_is_told_about_extended_connect() {
    let server = start_server(config()).await;
    let (link, io) = open(&server, Mode::H2c).await;
    let mut send = h2_client(io).await;
    let resp = get(
        &mut send,
        &format!("http://localhost:{}/ws/t", server.addr.port()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
    assert!(resp.headers().get("upgrade").is_none(), "RFC 9113 §8.2.2");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("RFC 8441"),
        "{body:?}"
    );
    assert_eq!(server.rejected(Rejection::UpgradeRequired), 1);
    drop(send);
    link.close().await;
    server.stop().await;
}
