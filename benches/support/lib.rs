//! Helpers shared by the criterion benches in `benches/` (`cargo bench`).
//!
//! # Layout
//!
//! - `benches/encode.rs`: one message into each transport's bytes (pure CPU, `pushlab_proto`).
//! - `benches/fanout.rs` with [`fanout`]: one publish delivered to N subscribers through the real
//!   server stack (hyper with the server's settings, byte counting, router, transport handler,
//!   feed) over in-memory sockets: what the server spends per delivered message, kernel aside;
//!   beside it, with [`floor`], the same message bytes written to N sockets by a plain loop
//!   (in-memory sockets like the transports', and 127.0.0.1 TCP): the fan-out floor.
//! - `benches/e2e.rs` with [`e2e`]: publish to receive over 127.0.0.1 against an in-process
//!   server, with minimal real clients, beside a raw TCP ping-pong of the same bytes: the floor.
//!
//! Every bench publishes `data` of a fixed size (the `_64b` in its name) on topic [`TOPIC`], so
//! the message every transport carries is `{"topic":"bench","seq":N,"ts":TS,"data":"tick 0...."}`.
//! `scripts/bench-summary.sh` turns criterion's output into `results/bench.md`.

pub mod e2e;
pub mod fanout;
pub mod floor;

use std::sync::LazyLock;
use std::time::Duration;

use pushlab_server::ServerConfig;

/// The topic every bench publishes on.
pub const TOPIC: &str = "bench";

/// The server defaults, except that nothing time-driven (heartbeats, pings, header, idle or
/// long-poll timeouts) fires during a bench, the connection caps sit above the largest
/// fan-out, and publishing is not rate-limited (a bench publishes as fast as it can).
pub fn bench_config() -> ServerConfig {
    let hour = Duration::from_secs(3600);
    ServerConfig {
        heartbeat_interval: hour,
        header_read_timeout: hour,
        idle_timeout: hour,
        ws_ping_interval: hour,
        ws_pong_timeout: hour,
        default_longpoll_timeout: Duration::from_secs(120),
        max_connections: 50_000,
        max_connections_per_ip: 50_000,
        publish_rate_per_s: 0.0,
        tick_rate: 0.0,
        ..ServerConfig::default()
    }
}

/// CPU time this thread has used (user and system: the kernel's work on its behalf counts).
/// Benches whose work all runs on the bench thread (encode; fan-out and e2e on a
/// current-thread runtime) are timed with it, so time the machine gives to other processes
/// does not count.
pub fn thread_cpu_now() -> Duration {
    let clock = libc::CLOCK_THREAD_CPUTIME_ID;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into, and the clock id exists on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Times `iters` calls of `f` in this thread's CPU time (for `Bencher::iter_custom`).
pub fn cpu_iter<R>(iters: u64, mut f: impl FnMut() -> R) -> Duration {
    let t0 = thread_cpu_now();
    for _ in 0..iters {
        std::hint::black_box(f());
    }
    thread_cpu_now() - t0
}

/// Published data of exactly `bytes` bytes (plain ASCII: no JSON escaping inflates it).
pub fn data_of(bytes: usize) -> String {
    pushlab_server::transport::publish::ticker_data(0, bytes)
}

/// The seq of the first message in `bytes` (the digits after `"seq":`), if there is one.
pub fn seq_in(bytes: &[u8]) -> Option<u64> {
    // Built once: building a finder per call showed up in the fan-out profiles.
    static KEY: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"seq\":"));
    let at = KEY.find(bytes)? + KEY.needle().len();
    let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n = 0u64;
    let mut any = false;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_seq_of_a_message() {
        let m = pushlab_proto::encode_message(TOPIC, 1234, 99, &data_of(64));
        assert_eq!(seq_in(&m.bytes), Some(1234));
        assert_eq!(seq_in(b"id: 7\ndata: {\"seq\":7}\n\n"), Some(7));
        assert_eq!(seq_in(b"retry: 1000\n\n"), None);
        assert_eq!(seq_in(b"\"seq\":}"), None);
        assert_eq!(data_of(64).len(), 64);
    }
}
