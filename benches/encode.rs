//! One message into each transport's bytes: the JSON encoding every transport shares, then each
//! transport's framing, as the server builds them (`cargo bench --bench encode`).
//!
//! ```text
//! message_encode_64b         {"topic":"bench","seq":42,"ts":TS,"data":"tick 0...."}
//! poll_encode_batch1_64b     {"next":42,"messages":[MESSAGE]}        (long poll: same body)
//! poll_encode_batch100_64b   {"next":141,"messages":[MESSAGE,...x100]}  (per message: /100)
//! sse_encode_64b             id: 42\ndata: MESSAGE\n\n
//! stream_encode_64b          MESSAGE\n
//! ws_encode_64b              81 7e 00 9a MESSAGE   (tungstenite frame header + payload, Vec)
//! ```
//!
//! Each bench includes encoding the message itself, so the framing's own cost is the
//! difference from `message_encode_*`. Throughput is the bytes produced. Timed in the bench
//! thread's CPU time, so time the machine gives to other processes does not count.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pushlab::{cpu_iter, data_of, TOPIC};
use pushlab_proto::encode_message;
use pushlab_proto::frame::{ndjson_line, poll_batch, sse_event};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

const TS: u64 = 1_763_790_000_123_456_789;

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.sample_size(100)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in [64, 1024] {
        let data = data_of(size);
        let data = data.as_str();
        let one = encode_message(TOPIC, 42, TS, data).bytes;

        g.throughput(Throughput::Bytes(one.len() as u64));
        g.bench_function(format!("message_encode_{size}b"), |b| {
            b.iter_custom(|iters| {
                cpu_iter(iters, || {
                    encode_message(black_box(TOPIC), black_box(42), TS, black_box(data))
                })
            })
        });

        let batch1 = poll_batch(42, None, &[&one[..]]);
        g.throughput(Throughput::Bytes(batch1.len() as u64));
        g.bench_function(format!("poll_encode_batch1_{size}b"), |b| {
            b.iter_custom(|iters| {
                cpu_iter(iters, || {
                    let m = encode_message(TOPIC, black_box(42), TS, black_box(data));
                    poll_batch(42, None, &[&m.bytes[..]])
                })
            })
        });

        let batch100: Vec<_> = (42..142)
            .map(|seq| encode_message(TOPIC, seq, TS, data).bytes)
            .collect();
        g.throughput(Throughput::Bytes(
            poll_batch(141, None, &batch100).len() as u64
        ));
        g.bench_function(format!("poll_encode_batch100_{size}b"), |b| {
            b.iter_custom(|iters| {
                cpu_iter(iters, || {
                    let msgs: Vec<_> = (42..142)
                        .map(|seq| encode_message(TOPIC, black_box(seq), TS, black_box(data)).bytes)
                        .collect();
                    poll_batch(141, None, &msgs)
                })
            })
        });

        g.throughput(Throughput::Bytes(sse_event(42, &one).len() as u64));
        g.bench_function(format!("sse_encode_{size}b"), |b| {
            b.iter_custom(|iters| {
                cpu_iter(iters, || {
                    let m = encode_message(TOPIC, black_box(42), TS, black_box(data));
                    sse_event(m.seq, &m.bytes)
                })
            })
        });

        g.throughput(Throughput::Bytes(ndjson_line(&one).len() as u64));
        g.bench_function(format!("stream_encode_{size}b"), |b| {
            b.iter_custom(|iters| {
                cpu_iter(iters, || {
                    let m = encode_message(TOPIC, black_box(42), TS, black_box(data));
                    ndjson_line(&m.bytes)
                })
            })
        });

        // tungstenite formats each frame into its reused output buffer; so does this.
        let mut out = Vec::with_capacity(one.len() + 16);
        Frame::message(one.clone(), OpCode::Data(Data::Text), true)
            .format(&mut out)
            .expect("format into a Vec");
        g.throughput(Throughput::Bytes(out.len() as u64));
        g.bench_function(format!("ws_encode_{size}b"), |b| {
            b.iter_custom(|iters| {
                cpu_iter(iters, || {
                    let m = encode_message(TOPIC, black_box(42), TS, black_box(data));
                    out.clear();
                    Frame::message(m.bytes, OpCode::Data(Data::Text), true)
                        .format(&mut out)
                        .expect("format into a Vec");
                    black_box(out.len())
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
