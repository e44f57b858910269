//! Property tests (proptest, stable Rust) of every parser that faces the outside world:
//! cursor and query parsing, `Last-Event-ID`, topic names, the SSE parser, poll batches, the
//! NDJSON line splitter, chunked decoding and WebSocket frames. None may panic on any input;
//! where an encoder exists, parsing what it wrote, split anywhere, gives back what went in.

use proptest::prelude::*;
use pushlab_proto::frame::{
    ndjson_gap, ndjson_line, poll_batch, sse_event, sse_gap, PollBatch, SseParser, SSE_HEARTBEAT,
};
use pushlab_proto::{
    encode_message, parse_last_event_id, parse_query, valid_topic, Gap, Message, Query,
};

use crate::raw::{self, Dechunker, Item};

fn config() -> ProptestConfig {
    // Enough to shake out the parsers and fast in CI; PROPTEST_CASES raises it.
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Splits `bytes` at the given (sorted, deduplicated) points.
fn split_at_points(bytes: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.push(bytes[last..c].to_vec());
        last = c;
    }
    out.push(bytes[last..].to_vec());
    out
}

fn gap() -> impl Strategy<Value = Gap> {
    (0u64..1 << 40, 1u64..1000).prop_map(|(from, missed)| Gap {
        missed,
        from: from + 1,
        to: from + missed,
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn query_parsing_never_panics(q in ".{0,200}") {
        let _ = parse_query(Some(&q));
    }

    #[test]
    fn query_parsing_round_trips(since in any::<Option<u64>>(), timeout in any::<Option<u64>>(), junk in "[a-z_]{1,8}=[a-z0-9]{0,8}") {
        let mut parts = vec![junk.clone()];
        if let Some(s) = since { parts.push(format!("since={s}")); }
        if let Some(t) = timeout { parts.push(format!("timeout={t}")); }
        let q = parts.join("&");
        let parsed = parse_query(Some(&q));
        if junk.starts_with("since=") || junk.starts_with("timeout=") {
            // The junk names a real key: a number parses, anything else is refused.
            return Ok(());
        }
        prop_assert_eq!(parsed, Ok(Query { since, timeout_s: timeout }));
    }

    #[test]
    fn a_malformed_since_is_refused_never_read_as_zero(v in "[^0-9&]{1,20}") {
        let q = format!("since={v}");
        prop_assert!(parse_query(Some(&q)).is_err());
    }

    #[test]
    fn last_event_id_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in any::<u64>(), pad in "[ \t]{0,3}") {
        let _ = parse_last_event_id(&bytes);
        prop_assert_eq!(parse_last_event_id(format!("{pad}{n}{pad}").as_bytes()), Ok(n));
    }

    #[test]
    fn topic_names_follow_the_rule(name in "\\PC{0,80}") {
        let rule = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        prop_assert_eq!(valid_topic(&name), rule);
    }

    #[test]
    fn sse_parser_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20), max_line in 1usize..512) {
        let mut p = SseParser::new(max_line);
        for c in chunks {
            p.push(&c);
            while let Ok(Some(_)) = p.next_event() {}
        }
    }

    #[test]
    fn sse_events_round_trip_split_anywhere(
        datas in proptest::collection::vec("\\PC{0,40}(\n\\PC{0,10})?", 1..8),
        gaps in proptest::collection::vec(proptest::option::of(gap()), 1..8),
        points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (i, d) in datas.iter().enumerate() {
            let m = encode_message("t", i as u64 + 1, 5, d);
            wire.extend_from_slice(&sse_event(m.seq, &m.bytes));
            wire.extend_from_slice(SSE_HEARTBEAT);
            want.push(Item::Msg(Message::parse(&m.bytes).unwrap()));
            if let Some(Some(g)) = gaps.get(i) {
                wire.extend_from_slice(&sse_gap(g));
                want.push(Item::Gap(*g));
            }
        }
        let mut dec = raw::Decoder::new(pushlab_proto::Transport::Sse, 0);
        let mut got = Vec::new();
        for piece in split_at_points(&wire, &points) {
            got.extend(dec.push(&piece));
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn poll_batch_parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = PollBatch::parse(&body);
        let _ = Message::parse(&body);
    }

    #[test]
    fn poll_batches_round_trip(datas in proptest::collection::vec("\\PC{0,30}", 0..10), next in any::<u64>(), g in proptest::option::of(gap())) {
        let msgs: Vec<_> = datas.iter().enumerate().map(|(i, d)| encode_message("t.x-1", i as u64 + 1, 99, d)).collect();
        let bytes: Vec<_> = msgs.iter().map(|m| m.bytes.clone()).collect();
        let parsed = PollBatch::parse(&poll_batch(next, g, &bytes)).unwrap();
        prop_assert_eq!(parsed.next, next);
        prop_assert_eq!(parsed.gap, g);
        let back: Vec<String> = parsed.messages.iter().map(|m| m.data.clone()).collect();
        prop_assert_eq!(back, datas);
    }

    #[test]
    fn ndjson_lines_split_anywhere_come_back_whole(
        datas in proptest::collection::vec("\\PC{0,40}", 1..10),
        heartbeats in proptest::collection::vec(any::<bool>(), 1..10),
        g in proptest::option::of(gap()),
        points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        if let Some(g) = g {
            wire.extend_from_slice(&ndjson_gap(&g));
            want.push(Item::Gap(g));
        }
        for (i, d) in datas.iter().enumerate() {
            let m = encode_message("t", i as u64 + 1, 7, d);
            wire.extend_from_slice(&ndjson_line(&m.bytes));
            if heartbeats.get(i).copied().unwrap_or(false) {
                wire.push(b'\n');
            }
            want.push(Item::Msg(Message::parse(&m.bytes).unwrap()));
        }
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for piece in split_at_points(&wire, &points) {
            buf.extend_from_slice(&piece);
            got.extend(raw::split_ndjson(&mut buf));
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, want);
    }

    #[test]
    fn ndjson_splitter_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut buf = bytes;
        let _ = raw::split_ndjson(&mut buf);
    }

    #[test]
    fn chunked_decoding_split_anywhere(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..100), 0..8), points in proptest::collection::vec(any::<usize>(), 0..12)) {
        let mut wire = Vec::new();
        for c in &chunks {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let mut d = Dechunker::default();
        let mut got = Vec::new();
        for piece in split_at_points(&wire, &points) {
            got.extend(d.push(&piece));
        }
        prop_assert!(d.done);
        prop_assert_eq!(got, chunks.concat());
    }

    #[test]
    fn chunked_decoder_and_frame_parser_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Dechunker::default().push(&bytes);
        let _ = raw::parse_server_frame(&bytes);
        let _ = raw::Decoder::new(pushlab_proto::Transport::Ws, 0).push(&bytes);
    }
}

/// The WebSocket frame header the server writes is what `ws_header_len` says, for every size.
#[test]
fn websocket_frames_parse_back_for_every_length_class() {
    for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
        let payload = vec![b'a'; len];
        let mut f = vec![0x81u8];
        match len {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xffff => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        assert_eq!(f.len(), pushlab_proto::frame::ws_header_len(len, false));
        f.extend_from_slice(&payload);
        let (op, p, used) = raw::parse_server_frame(&f).unwrap();
        assert_eq!((op, p.len(), used), (1, len, f.len()));
        assert!(raw::parse_server_frame(&f[..f.len() - 1]).is_none() || len == 0);
    }
}
