//! Synthetic result files for tests of the report: plausible figures from a crude model of each
//! transport (not measurements, and never written anywhere but a test's temp dir).
//!
//! The model: poll asks every `poll_interval_ms` and waits half an interval on average; long
//! poll asks again after each batch; SSE, stream and WebSocket hold one connection and pay a
//! few bytes of framing per message. Knobs on [`Synth`] let a test push one figure past a
//! verdict's threshold.

use std::path::PathBuf;

use hdrhistogram::Histogram;
use pushlab_proto::result::{
    ByteSplit, Environment, Latency, LoadgenCost, RunResult, Scenario, ServerCost, TransportResult,
    SCHEMA_VERSION,
};
use pushlab_proto::Transport;

/// A scenario with the usual defaults: 100 clients, 1 msg/s, 100 B, poll every second, 10 s.
pub fn scenario(rate_per_s: f64) -> Scenario {
    Scenario {
        clients: 100,
        publish_rate_per_s: rate_per_s,
        payload_bytes: 100,
        poll_interval_ms: 1000,
        duration_s: 10.0,
        warmup_s: 1.0,
        keep_alive: true,
        header_profile: "minimal".into(),
        target_profile: "pushlab".into(),
        http_version: "http/1.1".into(),
        tls: false,
        link: None,
    }
}

/// Knobs of the synthetic model.
#[derive(Clone, Debug)]
pub struct Synth {
    pub scenario: Scenario,
    /// HTTP header bytes of one request + response.
    pub header_bytes_per_exchange: f64,
    /// Multiplies the server memory per connection (to test C5 both ways).
    pub rss_scale: f64,
    /// Extra TCP connects (reconnects) as a fraction of clients.
    pub reconnect_fraction: f64,
    /// Whether the loadgen says it was saturated (busy over 70% of a core).
    pub loadgen_saturated: bool,
}

impl Synth {
    pub fn new(scenario: Scenario) -> Synth {
        let header_bytes_per_exchange = if scenario.header_profile == "browser" {
            1000.0
        } else {
            230.0
        };
        Synth {
            scenario,
            header_bytes_per_exchange,
            rss_scale: 1.0,
            reconnect_fraction: 0.0,
            loadgen_saturated: false,
        }
    }

    /// Requests, empty responses, TCP connects, framing bytes and handshake bytes in total.
    fn exchanges(&self, transport: Transport, delivered: u64) -> (u64, u64, u64, f64, f64) {
        let s = &self.scenario;
        let clients = s.clients;
        let wall_s = s.duration_s + s.warmup_s;
        let interval_s = s.poll_interval_ms as f64 / 1000.0;
        let connects_base = clients + (clients as f64 * self.reconnect_fraction).round() as u64;
        match transport {
            Transport::Poll => {
                let requests = ((wall_s / interval_s).floor() as u64).max(1) * clients;
                let with_news = requests.min(delivered);
                let connects = if s.keep_alive {
                    connects_base
                } else {
                    requests
                };
                (
                    requests,
                    requests - with_news,
                    connects,
                    requests as f64 * 25.0,
                    0.0,
                )
            }
            Transport::LongPoll => {
                let requests = delivered + clients;
                let connects = if s.keep_alive {
                    connects_base
                } else {
                    requests
                };
                (
                    requests,
                    clients / 10,
                    connects,
                    requests as f64 * 25.0,
                    0.0,
                )
            }
            Transport::Sse => (clients, 0, connects_base, delivered as f64 * 14.0, 0.0),
            Transport::Stream => (clients, 0, connects_base, delivered as f64 * 6.0, 0.0),
            Transport::Ws => (
                connects_base,
                0,
                connects_base,
                delivered as f64 * 2.0,
                connects_base as f64 * 420.0,
            ),
        }
    }

    pub fn result(&self, transport: Transport) -> TransportResult {
        let s = &self.scenario;
        let clients = s.clients;
        let wall_s = s.duration_s + s.warmup_s;
        let published = (s.publish_rate_per_s * wall_s).round().max(1.0) as u64;
        let delivered = published * clients;
        let payload = s.payload_bytes as f64;
        let envelope = 60.0;
        let interval_s = s.poll_interval_ms as f64 / 1000.0;
        let hdr = self.header_bytes_per_exchange;

        let (requests, empty, connects, framing_total, handshake_total) =
            self.exchanges(transport, delivered);
        let headers_total = if transport == Transport::Ws {
            0.0
        } else {
            requests as f64 * hdr
        };
        let segments_per_exchange = if s.keep_alive { 4.0 } else { 11.0 };
        let segments = match transport {
            Transport::Poll | Transport::LongPoll => requests as f64 * segments_per_exchange,
            _ => delivered as f64 * 2.0 + connects as f64 * 7.0,
        };
        let bytes_total = ByteSplit {
            payload: payload * delivered as f64,
            envelope: envelope * delivered as f64,
            headers: headers_total,
            framing: framing_total,
            handshake: handshake_total,
            tcpip: segments * 52.0,
            control: 0.0,
            tls: 0.0,
        };
        let per_msg = bytes_total.scaled(1.0 / delivered as f64);

        let (latency_us, histogram) = latency(transport, delivered, interval_s);

        let cpu_us_per_1k = match transport {
            Transport::Poll => 20_000.0 * (requests as f64 / delivered as f64).max(0.2),
            Transport::LongPoll => 15_000.0,
            _ => 4_000.0,
        };
        let rss_per_conn = match transport {
            Transport::Poll | Transport::LongPoll => 6_000.0,
            Transport::Stream | Transport::Sse => 9_000.0,
            Transport::Ws => 10_000.0,
        } * if transport == Transport::Stream {
            self.rss_scale
        } else {
            1.0
        };
        let wire = bytes_total.total() - bytes_total.tcpip;
        // The CPU split of schema v2: a connect costs 50 us, an idle connection 2 us a second,
        // and the publish part what the per-1k figure says.
        let cpu_per_delivery = cpu_us_per_1k / 1000.0;
        let idle_s = 1.0;
        let (connect_cpu_us, idle_cpu_us) = (50.0 * connects as f64, 2.0 * clients as f64);
        let publish_cpu_us = cpu_per_delivery * delivered as f64;
        let core_share = if self.loadgen_saturated { 0.9 } else { 0.2 };
        // Built through JSON so fields the schema gains later (with serde defaults) need no edit.
        let value = serde_json::json!({
            "transport": transport,
            "scenario": s,
            "clients": clients,
            "published_messages": published,
            "delivered_messages": delivered,
            "wire_bytes_up": (wire * 0.2) as u64,
            "wire_bytes_down": (wire * 0.8) as u64,
            "bytes_total": bytes_total,
            "bytes_per_message": per_msg,
            "latency_us": latency_us,
            "http_requests": requests,
            "empty_responses": empty,
            "tcp_connects": connects,
            "peak_open_connections": clients,
            "reconnects": connects.saturating_sub(clients),
            "errors": 0,
            "gap_notices": 0,
            "lost_messages": 0,
            "duplicate_messages": 0,
            "out_of_order_messages": 0,
            "server_cpu_us_per_1k_messages": cpu_us_per_1k,
            "server_cpu_us_per_connect": 50.0,
            "server_cpu_us_per_idle_connection_s": 2.0,
            "server_cpu_us_per_delivery": cpu_per_delivery,
            "loadgen": LoadgenCost {
                cpu_us: core_share * wall_s * 1e6,
                wall_s,
                core_share,
                timer_late_p99_us: 80,
                timer_late_max_us: 200,
                saturated: self.loadgen_saturated,
            },
            "server": ServerCost {
                cpu_seconds: (connect_cpu_us + idle_cpu_us + publish_cpu_us) / 1e6,
                cpu_source: "getrusage".into(),
                connect_cpu_us,
                idle_cpu_us,
                idle_s,
                publish_cpu_us,
                heap_bytes_per_connection: Some(rss_per_conn * 0.6),
                kernel_socket_bytes_per_connection: Some(2304.0),
                rss_bytes_before: 8 << 20,
                rss_bytes_after: (8 << 20) + (rss_per_conn * clients as f64) as u64,
                rss_bytes_per_connection: rss_per_conn,
                server_bytes_read: (wire * 0.2) as u64,
                server_bytes_written: (wire * 0.8) as u64,
                ..ServerCost::default()
            },
            "tcp_segments": segments as u64,
            "histogram": histogram,
            "notes": ["synthetic: made by report::fixture for tests"],
        });
        serde_json::from_value(value).expect("the fixture matches the schema")
    }
}

/// A latency model: polls wait up to an interval, pushes a few ms. Percentiles and the
/// serialized (V2 deflate, base64) histogram.
fn latency(transport: Transport, delivered: u64, interval_s: f64) -> (Latency, String) {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
    for i in 0..delivered {
        let frac = (i as f64 + 0.5) / delivered as f64;
        let us = match transport {
            Transport::Poll => 1_000.0 + frac * interval_s * 1e6,
            _ => 300.0 + 2_000.0 * frac * frac,
        };
        h.record(us as u64).expect("in range");
    }
    // The recorder's own percentiles and encoding, so the fixture's files read as a run's.
    (
        crate::record::latency_of(&h),
        crate::record::encode_histogram(&h),
    )
}

/// A run of the given transports in one scenario.
pub fn run(scenario: Scenario, transports: &[Transport]) -> RunResult {
    let synth = Synth::new(scenario);
    run_of(transports.iter().map(|t| synth.result(*t)).collect())
}

/// Wraps transport entries into a run with a made-up environment.
pub fn run_of(transports: Vec<TransportResult>) -> RunResult {
    RunResult {
        schema_version: SCHEMA_VERSION,
        tool: "pushlab-loadgen (synthetic fixture)".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        finished_at: "2025-01-01T00:01:00Z".into(),
        command: vec!["fixture".into()],
        config: serde_json::json!({"synthetic": true}),
        environment: Environment {
            hostname: "fixture".into(),
            cpu_model: "synthetic CPU".into(),
            cores: 2,
            memory_bytes: 1 << 30,
            kernel: "none".into(),
            os: "none".into(),
            rustc: "none".into(),
            git_commit: "0000000".into(),
            target: "synthetic".into(),
            ..Environment::default()
        },
        transports,
        merged_runs: 1,
        notes: vec![],
        repeat: 1,
        repeats: 1,
    }
}

/// What a `compare` run looks like: the five transports at 1 msg/s, poll with keep-alive off and
/// with browser headers, and poll and long poll at a low rate.
pub fn compare_like() -> Vec<(PathBuf, RunResult)> {
    let base = scenario(1.0);
    let mut out = vec![(
        PathBuf::from("all.json"),
        run(base.clone(), &Transport::ALL),
    )];
    let mut no_ka = base.clone();
    no_ka.keep_alive = false;
    out.push((
        PathBuf::from("poll-no-ka.json"),
        run(no_ka, &[Transport::Poll]),
    ));
    let mut browser = base.clone();
    browser.header_profile = "browser".into();
    out.push((
        PathBuf::from("browser.json"),
        run(browser, &[Transport::Poll, Transport::Ws]),
    ));
    let mut low = scenario(0.2);
    low.duration_s = 20.0;
    out.push((
        PathBuf::from("low.json"),
        run(low, &[Transport::Poll, Transport::LongPoll, Transport::Ws]),
    ));
    out
}

/// [`compare_like`] plus short polling on h2c and on h2 over TLS, minimal and browser headers,
/// as `compare` runs them: HPACK shrinks the headers of later requests, TLS adds 2,500 B per
/// connection and 22 B per message, and a TLS delivery costs the server 1 us more.
pub fn compare_with_http2() -> Vec<(PathBuf, RunResult)> {
    let mut out = compare_like();
    // HTTP/1.1 resends its whole head: first and later requests alike.
    for (_, run) in &mut out {
        for r in run
            .transports
            .iter_mut()
            .filter(|r| r.transport == Transport::Poll && r.scenario.publish_rate_per_s == 1.0)
        {
            let (req, resp) = if r.scenario.header_profile == "browser" {
                (854, 134)
            } else {
                (109, 134)
            };
            count_header_blocks(r, (req, req), (resp, resp));
        }
    }
    for (name, http, tls, browser) in [
        ("h2c", "h2c", false, false),
        ("h2c-browser", "h2c", false, true),
        ("h2-tls", "h2", true, false),
        ("h2-tls-browser", "h2", true, true),
    ] {
        let mut s = scenario(1.0);
        s.http_version = http.into();
        s.tls = tls;
        if browser {
            s.header_profile = "browser".into();
        }
        let mut synth = Synth::new(s);
        synth.header_bytes_per_exchange = if browser { 360.0 } else { 70.0 };
        let mut r = synth.result(Transport::Poll);
        let request = if browser { (560, 290) } else { (55, 30) };
        count_header_blocks(&mut r, request, (51, 32));
        if tls {
            let tls_total = 2500.0 * r.tcp_connects as f64 + 22.0 * r.delivered_messages as f64;
            r.bytes_total.tls = tls_total;
            r.bytes_per_message.tls = tls_total / r.delivered_messages as f64;
            r.server_cpu_us_per_delivery = r.server_cpu_us_per_delivery.map(|c| c + 1.0);
        }
        out.push((PathBuf::from(format!("{name}.json")), run_of(vec![r])));
    }
    out
}

/// Sets the first/later request and response header counters of a poll entry: one first
/// request per client, every other request later, `(first, later)` bytes each.
fn count_header_blocks(r: &mut TransportResult, request: (u64, u64), response: (u64, u64)) {
    r.first_requests = r.clients;
    r.later_requests = r.http_requests - r.clients;
    r.headers_first_request_bytes = request.0 * r.first_requests;
    r.headers_later_request_bytes = request.1 * r.later_requests;
    r.first_responses = r.first_requests;
    r.later_responses = r.later_requests;
    r.headers_first_response_bytes = response.0 * r.first_responses;
    r.headers_later_response_bytes = response.1 * r.later_responses;
}

/// A rate sweep of every transport (default variant) at `rates`.
pub fn sweep_like(rates: &[f64]) -> Vec<(PathBuf, RunResult)> {
    rates
        .iter()
        .map(|r| {
            let mut s = scenario(*r);
            s.clients = 50;
            (
                PathBuf::from(format!("sweep-r{r}.json")),
                run(s, &Transport::ALL),
            )
        })
        .collect()
}

/// [`compare_like`] and a sweep at `rates`, run `n` times as `compare --repeat n` writes them:
/// repeat `k` multiplies every latency percentile and the payload bytes by `k` and keeps no
/// histogram, so each figure of every chart differs between repeats.
pub fn repeated(n: u32, rates: &[f64]) -> Vec<(PathBuf, RunResult)> {
    let mut out = Vec::new();
    for k in 1..=n {
        let mut runs = compare_like();
        runs.extend(sweep_like(rates));
        for (path, mut run) in runs {
            run.repeat = k;
            run.repeats = n;
            for t in &mut run.transports {
                let l = &mut t.latency_us;
                for v in [
                    &mut l.p50,
                    &mut l.p90,
                    &mut l.p99,
                    &mut l.p999,
                    &mut l.p9999,
                ] {
                    *v *= u64::from(k);
                }
                t.histogram.clear();
                t.bytes_per_message.payload *= f64::from(k);
                t.bytes_total.payload *= f64::from(k);
            }
            out.push((PathBuf::from(format!("repeat-{k}")).join(path), run));
        }
    }
    out
}
