//! One publish delivered to 1, 100, 1,000 and 10,000 subscribers of each transport, through
//! the real feed, router, transport handlers and hyper/tungstenite writers into in-memory
//! sockets (`cargo bench --bench fanout`; see `benches/support/fanout.rs`), beside the fan-out
//! floor: the same message bytes written once to each of N sockets by a plain loop
//! (`benches/support/floor.rs`).
//!
//! `{transport}_fanout_c{subscribers}_{data}b`: CPU time for one publish to reach everyone (poll
//! and long poll: each subscriber's request included), on a current-thread runtime, so the
//! bench thread's CPU time is all the server spent, whatever else the machine runs;
//! throughput is delivered messages per second of CPU. The subscribers are set up before the
//! timed rounds and live for the whole bench.
//!
//! `{transport}_fanout_tcp_c{subscribers}_{data}b` (SSE, stream, WebSocket; up to 1,000
//! subscribers): the same over 127.0.0.1 TCP pairs read by a thread of their own, to set
//! beside the TCP floor (like with like: both pay the kernel's loopback send).
//!
//! `fanout_floor_mem_c{subscribers}_{data}b`: the floor over the transports' own in-memory
//! socket, at every N (like with like: transport / this is what the server's stack adds).
//! `fanout_floor_tcp_c{subscribers}_{data}b`: the floor over 127.0.0.1 TCP pairs (bench thread:
//! the writes and the kernel's send; readers drain on a thread of their own), up to 1,000
//! subscribers: 10,000 pairs would be 20,000 fds, the per-process cap.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use pushlab::fanout::FanoutRig;
use pushlab::floor::{FloorRig, FloorSocket};
use pushlab::thread_cpu_now;
use pushlab_proto::Transport;

const DATA_BYTES: usize = 64;
const SUBSCRIBERS: [usize; 4] = [1, 100, 1_000, 10_000];
/// Largest N the TCP floor opens (2 fds a subscriber, under the 20,000 open-files cap).
const TCP_FLOOR_MAX_SUBSCRIBERS: usize = 1_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `rounds` to completion on `rt`, timed in the bench thread's CPU time (every task of
/// `rt` runs on this thread: its CPU time is the server's, or the floor's writer's).
fn cpu_time(
    rt: &tokio::runtime::Runtime,
    rounds: impl std::future::Future<Output = ()>,
) -> Duration {
    let t0 = thread_cpu_now();
    rt.block_on(rounds);
    thread_cpu_now() - t0
}

fn floor(g: &mut BenchmarkGroup<'_, WallTime>, kind: FloorSocket, subscribers: usize) {
    let rt = runtime();
    let mut rig = FloorRig::new(kind, subscribers, DATA_BYTES);
    g.bench_function(
        format!(
            "fanout_floor_{}_c{subscribers}_{DATA_BYTES}b",
            kind.as_str()
        ),
        |b| {
            b.iter_custom(|rounds| {
                cpu_time(&rt, async {
                    for _ in 0..rounds {
                        rig.deliver().await;
                    }
                })
            })
        },
    );
}

/// One transport's fan-out bench `id`, on a rig `open` makes on a fresh runtime (dropped, with
/// its subscribers, before the next).
fn transport_fanout(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: String,
    open: impl FnOnce(&tokio::runtime::Runtime) -> FanoutRig,
) {
    let rt = runtime();
    let rig = open(&rt);
    g.bench_function(id, |b| {
        b.iter_custom(|rounds| {
            cpu_time(&rt, async {
                for _ in 0..rounds {
                    rig.deliver().await;
                }
            })
        })
    });
    drop(rig);
    drop(rt);
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500));
    for subscribers in SUBSCRIBERS {
        if subscribers >= 10_000 {
            g.sample_size(10).measurement_time(Duration::from_secs(3));
        } else {
            g.sample_size(20).measurement_time(Duration::from_secs(2));
        }
        g.throughput(Throughput::Elements(subscribers as u64));
        floor(&mut g, FloorSocket::Mem, subscribers);
        if subscribers <= TCP_FLOOR_MAX_SUBSCRIBERS {
            floor(&mut g, FloorSocket::Tcp, subscribers);
        }
        for transport in Transport::ALL {
            let id = format!("{transport}_fanout_c{subscribers}_{DATA_BYTES}b");
            transport_fanout(&mut g, id, |rt| {
                rt.block_on(FanoutRig::new(transport, subscribers, DATA_BYTES))
            });
            if subscribers <= TCP_FLOOR_MAX_SUBSCRIBERS && !transport.is_request_response() {
                let id = format!("{transport}_fanout_tcp_c{subscribers}_{DATA_BYTES}b");
                transport_fanout(&mut g, id, |rt| {
                    rt.block_on(FanoutRig::over_tcp(transport, subscribers, DATA_BYTES))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
