//! Publish to receive on loopback, one message per round, for each transport, beside a raw TCP
//! ping-pong of the same message: the floor no transport can beat, in the same group so each
//! ratio reads straight off (`cargo bench --bench e2e`; see `benches/support/e2e.rs`).
//!
//! ```text
//! e2e_floor_tcp_pingpong_64b   MESSAGE to an echo task and back (one round trip)
//! {transport}_e2e_64b          POST /publish ──> server ──> subscriber holds MESSAGE
//!                              (poll: publish, then GET /poll: two round trips)
//! ```
//!
//! Server, echo task and clients share one current-thread tokio runtime on the bench thread.
//! Group `e2e` times rounds by the wall clock (latency, noisy on a shared machine); group
//! `e2e_cpu` (`{transport}_e2e_cpu_64b`, `e2e_cpu_floor_tcp_pingpong_64b`) times the same
//! rounds by that thread's CPU time: client, server and the kernel's loopback work, without
//! the time the machine gave to other processes.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pushlab::bench_config;
use pushlab::e2e::{Cost, E2eRig, Floor};
use pushlab_proto::Transport;
use pushlab_server::testing::start_server;

const DATA_BYTES: usize = 64;

fn e2e(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The same rounds twice: wall time in `e2e` (latency), thread CPU time in `e2e_cpu`
    // (what a message costs client and server together, whatever else the machine runs).
    for (group, cpu) in [("e2e", false), ("e2e_cpu", true)] {
        let mut g = c.benchmark_group(group);
        g.sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .throughput(Throughput::Elements(1));
        let pick = move |cost: Cost| if cpu { cost.cpu } else { cost.wall };
        let infix = if cpu { "e2e_cpu" } else { "e2e" };

        let mut floor = rt.block_on(Floor::new(DATA_BYTES));
        g.bench_function(format!("{infix}_floor_tcp_pingpong_{DATA_BYTES}b"), |b| {
            b.iter_custom(|rounds| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..rounds {
                        total += pick(floor.round().await);
                    }
                    total
                })
            })
        });
        drop(floor);

        let server = rt.block_on(start_server(bench_config()));
        for transport in Transport::ALL {
            let mut rig = rt.block_on(E2eRig::new(&server, transport, DATA_BYTES));
            g.bench_function(format!("{transport}_{infix}_{DATA_BYTES}b"), |b| {
                b.iter_custom(|rounds| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..rounds {
                            total += pick(rig.round().await);
                        }
                        total
                    })
                })
            });
        }
        g.finish();
        drop(server);
    }
}

criterion_group!(benches, e2e);
criterion_main!(benches);
