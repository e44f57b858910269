//! Wire-level claims: a long poll that times out answers 200 with an empty batch; a WebSocket
//! message under 126 bytes costs exactly a 2-byte frame header on the way down; and the MESSAGE
//! bytes of one seq are identical on all five transports.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::StatusCode;
use pushlab_proto::frame::{ws_header_len, PollBatch};
use pushlab_proto::{Message, Transport};

use crate::client::Subscriber;
use crate::common::{
    fetch, get, latest_seq, req, sample, scrape, start_server, test_config, Publisher,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longpoll_timeout_answers_an_empty_batch() {
    let server = start_server(test_config()).await;
    let mut p = Publisher::new(server.addr, "quiet").await;
    let latest = p.publish("only one").await;
    p.close().await;
    let r = get(
        server.addr,
        &format!("/longpoll/quiet?since={latest}&timeout=1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let batch = PollBatch::parse(r.body()).unwrap();
    assert_eq!(batch.next, latest, "next stays the client's cursor");
    assert!(batch.messages.is_empty() && batch.gap.is_none());
    let m = scrape(server.addr).await;
    assert_eq!(sample(&m, "pushlab_empty_responses_total", "longpoll"), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frame_header_is_two_bytes_under_126() {
    let server = start_server(test_config()).await;
    let mut ws = Subscriber::connect(server.addr, Transport::Ws, "frames", None)
        .await
        .expect("ws")
        .keep_raw();
    let mut p = Publisher::new(server.addr, "frames").await;
    // One message under 126 bytes, one over (a 4-byte header), each read on its own.
    for data in ["hi", &"x".repeat(200)] {
        let before = ws.wire.read();
        let seq = p.publish(data).await;
        ws.read_until(seq).await;
        let down = ws.wire.read() - before;
        let raw = &ws.track.raw.as_ref().unwrap()[&seq];
        assert_eq!(
            down as usize,
            ws_header_len(raw.len(), false) + raw.len(),
            "bytes down for a {}-byte message",
            raw.len()
        );
        if raw.len() < 126 {
            assert_eq!(down as usize, 2 + raw.len());
        }
    }
    p.close().await;
    ws.close().await;
    server.stop().await;
}

/// No extension is negotiated even when the client offers one (a compressed frame would not
/// cost 2 bytes of framing, and its payload would not be MESSAGE's bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_negotiates_no_extension() {
    let server = start_server(test_config()).await;
    let mut r = req(http::Method::GET, "/ws/x", Bytes::new());
    for (k, v) in [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        (
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits",
        ),
    ] {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    let r = fetch(server.addr, r).await;
    assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        r.headers()["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "RFC 6455's example key and accept"
    );
    assert!(r.headers().get("sec-websocket-extensions").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_bytes_are_identical_on_all_transports() {
    let server = start_server(test_config()).await;
    let topic = "same";
    let since = latest_seq(server.addr, topic).await;
    let mut subs = Vec::new();
    for t in Transport::ALL {
        subs.push(
            Subscriber::connect(server.addr, t, topic, Some(since))
                .await
                .expect("subscribe")
                .keep_raw(),
        );
    }
    let mut p = Publisher::new(server.addr, topic).await;
    let data = [
        "plain",
        "quote \" backslash \\ slash /",
        "newline \n carriage \r tab \t",
        "control \u{1} \u{1f} del \u{7f}",
        "unicode é ✓ 𝄞 \u{2028}",
        "",
    ];
    let mut last = 0;
    for d in data {
        last = p.publish(d).await;
    }
    p.close().await;
    let mut got: Vec<BTreeMap<u64, Bytes>> = Vec::new();
    for mut s in subs {
        s.read_until(last).await;
        let t = s.transport;
        let track = s.close().await;
        track.assert_clean(&format!("{t}"));
        got.push(track.raw.unwrap());
    }
    assert_eq!(got[0].len(), data.len());
    for (t, raw) in Transport::ALL.iter().zip(&got).skip(1) {
        assert_eq!(raw, &got[0], "{t} MESSAGE bytes differ from poll's");
    }
    for ((seq, raw), d) in got[0].iter().zip(data) {
        let m = Message::parse(raw).unwrap();
        assert_eq!((m.seq, m.topic.as_str(), m.data.as_str()), (*seq, topic, d));
        // The one encoding: re-encoding the parsed message gives the very same bytes.
        assert_eq!(m.encode().bytes, raw, "seq {seq}");
    }
    server.stop().await;
}
