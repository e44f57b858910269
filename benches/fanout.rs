//! One publish delivered to 1, 100 and 10,000 subscribers of each transport, through the real
//! feed, router, transport handlers and hyper/tungstenite writers into in-memory sockets
//! (`cargo bench --bench fanout`; see `benches/support/fanout.rs`).
//!
//! `{transport}_fanout_c{subscribers}_{data}b`: CPU time for one publish to reach everyone (poll
//! and long poll: each subscriber's request included), on a current-thread runtime, so the
//! bench thread's CPU time is all the server spent, whatever else the machine runs;
//! throughput is delivered messages per second of CPU. The subscribers are set up before the
//! timed rounds and live for the whole bench.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use pushlab::fanout::FanoutRig;
use pushlab::thread_cpu_now;
use pushlab_proto::Transport;

const DATA_BYTES: usize = 64;

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500));
    for transport in Transport::ALL {
        for subscribers in [1usize, 100, 10_000] {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let rig = rt.block_on(FanoutRig::new(transport, subscribers, DATA_BYTES));
            if subscribers >= 10_000 {
                g.sample_size(10).measurement_time(Duration::from_secs(3));
            } else {
                g.sample_size(20).measurement_time(Duration::from_secs(2));
            }
            g.throughput(Throughput::Elements(subscribers as u64));
            g.bench_function(
                format!("{transport}_fanout_c{subscribers}_{DATA_BYTES}b"),
                |b| {
                    b.iter_custom(|rounds| {
                        // Every task runs on this thread: its CPU time is the server's.
                        let t0 = thread_cpu_now();
                        rt.block_on(async {
                            for _ in 0..rounds {
                                rig.deliver().await;
                            }
                        });
                        thread_cpu_now() - t0
                    })
                },
            );
            drop(rig);
            drop(rt);
        }
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
