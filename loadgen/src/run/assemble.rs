//! The last step of a phase, pure: from the recorders' snapshots, the publishers' tallies and
//! the server scrapes at the phase's boundaries, the result entries.
//!
//! ```text
//! before ── connect ── connected ── idle (settle) ── settled ── publish ── published ── drain, close ── after
//!           connect_cpu_us          idle_cpu_us                 publish_cpu_us
//! ```
//!
//! - per connect: `connect_cpu_us` / TCP connects made by the `connected` scrape;
//! - per idle connection-second: `idle_cpu_us` / (subscribers x idle seconds): each subscriber
//!   holds one connection (with keep-alive off, a short poller holds none between polls, and
//!   the figure is per subscriber);
//! - per delivery: `publish_cpu_us` / messages delivered by the `published` scrape (drain and
//!   closing are left out of the split; they are in `cpu_seconds`);
//! - memory per connection: growth from `before` to `settled` (heap, RSS) or the level at
//!   `settled` (kernel socket memory), over the connections open at `settled`.
//!
//! In a `--concurrent` phase the server's figures are the whole phase's, so every division is
//! by the phase's totals and every entry carries the same figures (and says so).

use std::time::Duration;

use pushlab_proto::result::{LoadgenCost, Retransmissions, Scenario, ServerCost, TransportResult};
use pushlab_proto::Transport;

use crate::net::TCPIP_HEADER_BYTES_PER_SEGMENT;
use crate::publisher::Published;
use crate::record::{encode_histogram, latency_of, RecorderSnapshot};
use crate::scrape::{CpuSource, Scrape};

/// The server scrapes at a phase's boundaries (`None` where the target could not be read).
#[derive(Clone, Debug, Default)]
pub struct Boundaries {
    /// Before the first subscriber connects.
    pub before: Option<Scrape>,
    /// Once every subscriber is in.
    pub connected: Option<Scrape>,
    /// After the idle part (connections open, nothing published).
    pub settled: Option<Scrape>,
    /// Once the publisher is done (before drain).
    pub published: Option<Scrape>,
    /// Once the server has closed the phase's connections.
    pub after: Option<Scrape>,
}

/// One transport's readings in a phase.
#[derive(Clone, Debug)]
pub struct TransportRecord {
    pub transport: Transport,
    /// The recorder once every subscriber ended.
    pub snapshot: RecorderSnapshot,
    /// What the publisher of this transport's topic did.
    pub published: Published,
    /// Subscribers that subscribed.
    pub subscribed: u64,
    /// TCP connects made by the `connected` scrape.
    pub connects_by_connected: u64,
    /// Connections open at the `settled` scrape.
    pub open_at_settled: u64,
    /// Messages delivered by the `published` scrape.
    pub delivered_by_published: u64,
}

/// Everything a phase's result entries are made of.
#[derive(Clone, Debug)]
pub struct PhaseRecord {
    pub scenario: Scenario,
    pub clients: u64,
    pub transports: Vec<TransportRecord>,
    pub scrapes: Boundaries,
    /// Wall seconds between the `connected` and `settled` scrapes.
    pub idle_s: f64,
    pub loadgen: Option<LoadgenCost>,
    /// How long a closing subscriber waited for the server (for the notes).
    pub close_timeout: Duration,
}

/// The result entries of a phase, one per transport, in the record's order.
pub fn assemble(p: &PhaseRecord) -> Vec<TransportResult> {
    let server = server_cost(p);
    p.transports
        .iter()
        .map(|t| entry(p, t, server.as_ref()))
        .collect()
}

/// The phase's server cost and its per-unit figures (shared by a concurrent phase's entries).
#[derive(Clone, Debug)]
struct PhaseServer {
    cost: ServerCost,
    per_connect: Option<f64>,
    per_idle_connection_s: Option<f64>,
    per_delivery: Option<f64>,
    per_1k_messages: Option<f64>,
}

fn cpu_us_between(a: &Option<Scrape>, b: &Option<Scrape>) -> Option<f64> {
    let (a, b) = (a.as_ref()?.cpu_seconds()?, b.as_ref()?.cpu_seconds()?);
    Some(((b - a) * 1e6).max(0.0))
}

fn per(numerator: Option<f64>, denominator: f64) -> Option<f64> {
    numerator
        .filter(|_| denominator > 0.0)
        .map(|n| n / denominator)
}

fn server_cost(p: &PhaseRecord) -> Option<PhaseServer> {
    let s = &p.scrapes;
    let (before, after) = (s.before.as_ref()?, s.after.as_ref()?);
    let sum = |f: fn(&TransportRecord) -> u64| p.transports.iter().map(f).sum::<u64>();
    let open = sum(|t| t.open_at_settled);
    let mut unavailable = Vec::new();
    let source = before.cpu_source;
    if source == CpuSource::ProcStat {
        unavailable.push("cpu: only in clock ticks (10 ms): the target's /metrics has no getrusage CPU and its pid is not known (--server-pid)".to_string());
    }
    let total_cpu_us = cpu_us_between(&s.before, &s.after);
    let connect_cpu_us = cpu_us_between(&s.before, &s.connected);
    let idle_cpu_us = cpu_us_between(&s.connected, &s.settled);
    let publish_cpu_us = cpu_us_between(&s.settled, &s.published);
    if total_cpu_us.is_none() {
        unavailable.push("cpu: the target reports no process CPU".into());
    }
    let settled = s.settled.as_ref();
    let per_open = |v: Option<f64>, what: &str, unavailable: &mut Vec<String>| {
        if v.is_some() && open == 0 {
            unavailable.push(format!("{what}: no connection was held open at settle (keep-alive off), so there is nothing to divide by"));
        }
        per(v, open as f64)
    };
    let heap = settled
        .and_then(Scrape::heap_bytes)
        .zip(before.heap_bytes())
        .map(|(b, a)| b as f64 - a as f64);
    if heap.is_none() {
        unavailable.push("heap: the target has no pushlab_heap_bytes (not pushlab-server, or one without the counting allocator)".into());
    }
    let heap_bytes_per_connection = per_open(heap, "heap", &mut unavailable);
    let kernel: Option<f64> = p
        .transports
        .iter()
        .map(|t| settled?.kernel_socket_bytes(t.transport.as_str()))
        .sum::<Option<u64>>()
        .map(|v| v as f64);
    if kernel.is_none() {
        unavailable.push("kernel socket memory: no pushlab_socket_kernel_bytes, and ss could not read the target's sockets (not on this host's loopback, or no ss)".into());
    }
    let kernel_socket_bytes_per_connection =
        per_open(kernel, "kernel socket memory", &mut unavailable);
    let kernel_socket_struct_bytes_per_connection = settled
        .and_then(Scrape::socket_struct_bytes)
        .map(|b| b as f64);
    if kernel_socket_struct_bytes_per_connection.is_none() {
        unavailable
            .push("kernel socket objects: /proc/slabinfo could not be read (it needs root)".into());
    }
    let rss_before = before.rss_bytes().unwrap_or(0);
    let rss_settled = settled.and_then(Scrape::rss_bytes).unwrap_or(rss_before);
    let rss_growth = rss_settled as f64 - rss_before as f64;
    if rss_growth <= 0.0 && open > 0 {
        unavailable.push("rss: did not grow while the connections opened (pages freed earlier were reused): rss per connection left at 0; the heap figure does not have this bias".into());
    }
    let rss_bytes_per_connection =
        per_open(Some(rss_growth.max(0.0)), "rss", &mut unavailable).unwrap_or(0.0);
    let delivered = sum(|t| t.snapshot.counts.delivered_messages);
    let cost = ServerCost {
        cpu_seconds: total_cpu_us.unwrap_or(0.0) / 1e6,
        cpu_source: source.as_str().into(),
        connect_cpu_us: connect_cpu_us.unwrap_or(0.0),
        idle_cpu_us: idle_cpu_us.unwrap_or(0.0),
        idle_s: p.idle_s,
        publish_cpu_us: publish_cpu_us.unwrap_or(0.0),
        heap_bytes_per_connection,
        kernel_socket_bytes_per_connection,
        kernel_socket_struct_bytes_per_connection,
        unavailable,
        rss_bytes_before: rss_before,
        rss_bytes_after: after.rss_bytes().unwrap_or(0),
        rss_bytes_per_connection,
        server_bytes_read: 0,
        server_bytes_written: 0,
    };
    Some(PhaseServer {
        cost,
        per_connect: per(connect_cpu_us, sum(|t| t.connects_by_connected) as f64),
        per_idle_connection_s: per(idle_cpu_us, sum(|t| t.subscribed) as f64 * p.idle_s),
        per_delivery: per(publish_cpu_us, sum(|t| t.delivered_by_published) as f64),
        per_1k_messages: per(total_cpu_us, delivered as f64 / 1000.0),
    })
}

/// What a reader of one entry must know: cut connections, a lagging publisher, problems.
fn transport_notes(p: &PhaseRecord, t: &TransportRecord) -> Vec<String> {
    let snap = &t.snapshot;
    let mut notes = Vec::new();
    let unattributed = snap.counts.unattributed_bytes;
    if unattributed > 0 {
        notes.push(format!(
            "{unattributed} bytes were read but not parsed (connections cut mid-message); counted as framing"
        ));
    }
    if snap.unclean_closes > 0 {
        notes.push(format!(
            "{} connections were not closed by the server within {:?} of ours: bytes it sent later are not counted",
            snap.unclean_closes, p.close_timeout
        ));
    }
    if snap.overattributed > 0 {
        notes.push(format!(
            "byte split attributed {} bytes more than were counted: a loadgen bug, please report",
            snap.overattributed
        ));
    }
    if snap.foreign_messages > 0 {
        notes.push(format!(
            "{} deliveries carried no send-time stamp (another publisher on the topic): no latency sample",
            snap.foreign_messages
        ));
    }
    let pb = &t.published;
    if pb.max_behind > Duration::from_millis(100) {
        notes.push(format!(
            "the publisher fell up to {:?} behind its schedule; latency includes it (no coordinated omission)",
            pb.max_behind
        ));
    }
    if pb.errors > 0 {
        notes.push(format!("{} publish requests failed", pb.errors));
    }
    if snap.problem_count > 0 {
        notes.push(format!(
            "{} problems, first: {}",
            snap.problem_count,
            snap.problems.join(" | ")
        ));
    }
    notes
}

/// What TCP sent again on the transport's connections: the subscribers' side from their
/// TCP_INFO (`None` where it was not read), the server's from the growth of its
/// `pushlab_tcp_retransmitted_*_total` between the `before` and `after` scrapes (`None` for a
/// target without those metrics). The `after` scrape waits until the server has closed the
/// phase's connections, and the server adds a socket's figures when it closes it.
fn retransmissions(p: &PhaseRecord, t: &TransportRecord) -> Option<Retransmissions> {
    let snap = &t.snapshot;
    snap.segments?;
    let label = t.transport.as_str();
    let server = |name: &str| {
        let after = p.scrapes.after.as_ref()?.by_transport(name, label)?;
        let before = p
            .scrapes
            .before
            .as_ref()
            .and_then(|b| b.by_transport(name, label))
            .unwrap_or(0);
        Some(after.saturating_sub(before))
    };
    Some(Retransmissions {
        client_segments: snap.retransmitted.segments,
        client_bytes: snap.retransmitted.bytes,
        server_segments: server("pushlab_tcp_retransmitted_segments_total"),
        server_bytes: server("pushlab_tcp_retransmitted_bytes_total"),
    })
}

fn entry(p: &PhaseRecord, t: &TransportRecord, server: Option<&PhaseServer>) -> TransportResult {
    let snap = &t.snapshot;
    let mut counts = snap.counts;
    counts.published_messages = t.published.published;
    counts.window_published_messages = t.published.window_published;
    let delivered = counts.delivered_messages;
    let tcpip = snap.segments.unwrap_or(0) * TCPIP_HEADER_BYTES_PER_SEGMENT;
    let bytes_total = snap.tally.split(tcpip);
    let bytes_per_message = if delivered > 0 {
        bytes_total.scaled(1.0 / delivered as f64)
    } else {
        Default::default()
    };
    let mut notes = transport_notes(p, t);
    let cost = server.map(|s| {
        let label = t.transport.as_str();
        let diff = |name: &str| {
            let at = |x: &Option<Scrape>| {
                x.as_ref()
                    .and_then(|x| x.by_transport(name, label))
                    .unwrap_or(0)
            };
            at(&p.scrapes.after).saturating_sub(at(&p.scrapes.before))
        };
        ServerCost {
            server_bytes_read: diff("pushlab_bytes_read_total"),
            server_bytes_written: diff("pushlab_bytes_written_total"),
            ..s.cost.clone()
        }
    });
    if p.transports.len() > 1 && server.is_some() {
        notes.push(
            "--concurrent: server CPU and memory are the whole phase's, shared by all transports"
                .into(),
        );
    }
    if let Some(note) = p
        .loadgen
        .as_ref()
        .and_then(super::selfcost::saturation_note)
    {
        notes.push(note);
    }
    TransportResult {
        transport: t.transport,
        scenario: p.scenario.clone(),
        clients: p.clients,
        counts,
        bytes_total,
        bytes_per_message,
        latency_us: latency_of(&snap.histogram),
        server_cpu_us_per_1k_messages: server.and_then(|s| s.per_1k_messages),
        server_cpu_us_per_connect: server.and_then(|s| s.per_connect),
        server_cpu_us_per_idle_connection_s: server.and_then(|s| s.per_idle_connection_s),
        server_cpu_us_per_delivery: server.and_then(|s| s.per_delivery),
        server: cost,
        loadgen: p.loadgen,
        tcp_segments: snap.segments,
        retransmissions: retransmissions(p, t),
        histogram: encode_histogram(&snap.histogram),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Recorder, Tally};
    use pushlab_proto::counters::AtomicCounters;

    fn metrics(cpu_s: f64, rss: u64, heap: u64, kernel_ws: u64, read_ws: u64) -> Option<Scrape> {
        Some(Scrape::parse(&format!(
            "# HELP process_cpu_seconds_total CPU (getrusage, microseconds).\nprocess_cpu_seconds_total {cpu_s:.6}\nprocess_resident_memory_bytes {rss}\npushlab_heap_bytes {heap}\npushlab_socket_struct_bytes 3000\npushlab_socket_kernel_bytes{{transport=\"ws\"}} {kernel_ws}\npushlab_bytes_read_total{{transport=\"ws\"}} {read_ws}\n"
        )))
    }

    /// A WebSocket phase: 100 subscribers, 1,000 messages delivered.
    fn ws_record() -> PhaseRecord {
        let rec = Recorder::new(Transport::Ws);
        AtomicCounters::bump(&rec.delivered_messages, 1_000);
        AtomicCounters::bump(&rec.wire_bytes_down, 50_000);
        AtomicCounters::bump(&rec.http_requests, 100);
        for _ in 0..100 {
            rec.connection_opened();
        }
        rec.add_tally(&Tally {
            payload: 32_000,
            envelope: 10_000,
            headers: 0,
            framing: 2_000,
            handshake: 6_000,
            ..Tally::default()
        });
        rec.record_latencies(&[500, 700, 900]);
        rec.segments_known.store(true, Ordering::Relaxed);
        AtomicCounters::bump(&rec.segments, 10);
        AtomicCounters::bump(&rec.retransmitted_segments, 2);
        AtomicCounters::bump(&rec.retransmitted_bytes, 300);
        PhaseRecord {
            scenario: Scenario::default(),
            clients: 100,
            transports: vec![TransportRecord {
                transport: Transport::Ws,
                snapshot: rec.snapshot(),
                published: Published {
                    published: 10,
                    window_published: 8,
                    last_seq: 10,
                    ..Published::default()
                },
                subscribed: 100,
                connects_by_connected: 100,
                open_at_settled: 100,
                delivered_by_published: 800,
            }],
            scrapes: Boundaries {
                before: metrics(1.0, 10_000_000, 1_000_000, 0, 0),
                connected: metrics(1.02, 12_000_000, 3_000_000, 400_000, 0),
                settled: metrics(1.021, 12_048_000, 2_600_000, 460_000, 0),
                published: metrics(1.025, 12_100_000, 2_700_000, 0, 0),
                after: metrics(1.03, 12_200_000, 1_100_000, 0, 45_000),
            },
            idle_s: 2.0,
            loadgen: None,
            close_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn retransmissions_are_the_subscribers_and_the_servers_growth_over_the_phase() {
        let mut p = ws_record();
        let with = |base: &str, seg: u64, bytes: u64| {
            Some(Scrape::parse(&format!(
                "{base}pushlab_tcp_retransmitted_segments_total{{transport=\"ws\"}} {seg}\npushlab_tcp_retransmitted_bytes_total{{transport=\"ws\"}} {bytes}\n"
            )))
        };
        p.scrapes.before = with("process_cpu_seconds_total 1.0\n", 5, 1_000);
        p.scrapes.after = with("process_cpu_seconds_total 1.03\n", 12, 8_500);
        let re = assemble(&p)[0].retransmissions.unwrap();
        assert_eq!(re.server_segments, Some(7));
        assert_eq!(re.server_bytes, Some(7_500));
        assert_eq!(re.bytes(), 7_800);
        // No TCP_INFO on the subscribers' side: nothing is claimed.
        let mut p = ws_record();
        let rec = Recorder::new(Transport::Ws);
        p.transports[0].snapshot = rec.snapshot();
        assert_eq!(assemble(&p)[0].retransmissions, None);
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6 * b.abs().max(1.0))
    }

    use std::sync::atomic::Ordering;

    #[test]
    fn assembles_counts_bytes_and_the_cpu_split() {
        let r = &assemble(&ws_record())[0];
        assert_eq!(r.delivered_messages, 1_000);
        assert_eq!((r.published_messages, r.window_published_messages), (10, 8));
        assert_eq!((r.tcp_connects, r.peak_open_connections), (100, 100));
        assert_eq!(
            r.bytes_total.tcpip,
            10.0 * TCPIP_HEADER_BYTES_PER_SEGMENT as f64
        );
        assert_eq!(r.bytes_per_message.payload, 32.0);
        assert_eq!(r.latency_us.count, 3);
        assert_eq!(r.tcp_segments, Some(10));
        let s = r.server.as_ref().unwrap();
        // The fixture's scrapes have no retransmission metrics: the server's side is unknown.
        let re = r.retransmissions.unwrap();
        assert_eq!((re.client_segments, re.client_bytes), (2, 300));
        assert_eq!((re.server_segments, re.server_bytes), (None, None));
        assert_eq!(s.cpu_source, "getrusage");
        assert!(close(Some(s.cpu_seconds), 0.03));
        assert!(close(Some(s.connect_cpu_us), 20_000.0));
        assert!(close(Some(s.idle_cpu_us), 1_000.0));
        assert!(close(Some(s.publish_cpu_us), 4_000.0));
        // 20 ms over 100 connects; 1 ms over 100 subscribers x 2 s; 4 ms over 800 deliveries.
        assert!(close(r.server_cpu_us_per_connect, 200.0));
        assert!(close(r.server_cpu_us_per_idle_connection_s, 5.0));
        assert!(close(r.server_cpu_us_per_delivery, 5.0));
        assert!(close(r.server_cpu_us_per_1k_messages, 30_000.0));
        // Memory: growth before -> settled over the 100 connections open at settle.
        assert!(close(s.heap_bytes_per_connection, 16_000.0));
        assert!(close(s.kernel_socket_bytes_per_connection, 4_600.0));
        assert!(close(s.kernel_socket_struct_bytes_per_connection, 3_000.0));
        assert!(close(Some(s.rss_bytes_per_connection), 20_480.0));
        assert_eq!(s.server_bytes_read, 45_000);
        assert!(s.unavailable.is_empty(), "{:?}", s.unavailable);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn what_cannot_be_read_is_left_out_and_said() {
        // No /metrics at all: no server cost, no CPU figure.
        let mut p = ws_record();
        p.scrapes = Boundaries::default();
        let r = &assemble(&p)[0];
        assert!(r.server.is_none());
        assert_eq!(r.server_cpu_us_per_delivery, None);
        // Ticks only, no heap or kernel gauge, nothing held open at settle.
        let mut p = ws_record();
        let ticks = |cpu: f64| {
            Some(Scrape::parse(&format!(
                "process_cpu_seconds_total {cpu}\nprocess_resident_memory_bytes 1000\n"
            )))
        };
        p.scrapes = Boundaries {
            before: ticks(1.0),
            connected: ticks(1.01),
            settled: ticks(1.01),
            published: ticks(1.02),
            after: ticks(1.03),
        };
        p.transports[0].open_at_settled = 0;
        let r = &assemble(&p)[0];
        let s = r.server.as_ref().unwrap();
        assert_eq!(s.cpu_source, "proc-stat");
        assert_eq!(s.heap_bytes_per_connection, None);
        assert_eq!(s.kernel_socket_bytes_per_connection, None);
        let why = s.unavailable.join(" | ");
        for what in [
            "cpu: only in clock ticks",
            "heap:",
            "kernel socket memory:",
            "kernel socket objects:",
        ] {
            assert!(why.contains(what), "{what} in {why}");
        }
        assert!(
            close(r.server_cpu_us_per_connect, 100.0),
            "ticks are still a figure"
        );
    }

    #[test]
    fn a_saturated_loadgen_is_noted() {
        let mut p = ws_record();
        p.loadgen = Some(LoadgenCost {
            cpu_us: 900_000.0,
            wall_s: 1.0,
            core_share: 0.9,
            timer_late_p99_us: 10,
            timer_late_max_us: 20,
            saturated: true,
        });
        let r = &assemble(&p)[0];
        assert!(r.loadgen.unwrap().saturated);
        assert!(
            r.notes.iter().any(|n| n.contains("saturated")),
            "{:?}",
            r.notes
        );
    }
}
