//! Figures that renderers share: one row of the comparison table per transport and variant,
//! computed (pure) from an entry and combined over repeats into `median (min-max)`.
//!
//! The claims' own figures live beside their verdicts in [`super::claims`]; the charts'
//! prepared series in [`super::render::charts`].

use pushlab_proto::result::ByteSplit;
use pushlab_proto::Transport;

use super::claims::{spread, spread_opt};
use super::data::{ratio, Dataset, Entry, Variant};
use super::format::Fig;

/// Every number of one row of the comparison table.
#[derive(Clone, Debug, PartialEq)]
pub struct RowFigures {
    /// `short poll (browser headers)`.
    pub label: String,
    pub transport: Transport,
    pub variant: Variant,
    /// The scenario in words (`100 clients, 1 msg/s, ...`).
    pub scenario: String,
    pub clients: u64,
    /// Messages each client received.
    pub messages_per_client: Fig,
    pub rate_per_s: f64,
    pub delivered: Fig,
    pub lost: Fig,
    pub duplicate: Fig,
    pub out_of_order: Fig,
    /// Wire bytes per delivered message by kind (`tcpip` is `None` without TCP_INFO).
    pub bytes_total: Fig,
    pub payload: Fig,
    pub envelope: Fig,
    pub headers: Fig,
    pub framing: Fig,
    pub handshake: Fig,
    /// HTTP/2 control frames and TLS record overhead (0 on cleartext HTTP/1.1).
    pub control: Fig,
    pub tls: Fig,
    pub tcpip: Option<Fig>,
    /// Latency percentiles, microseconds.
    pub p50_us: Fig,
    pub p99_us: Fig,
    pub p999_us: Fig,
    pub requests_per_message: Fig,
    pub connects_per_message: Fig,
    /// Share of HTTP responses that were empty.
    pub empty: Fig,
    /// Server CPU microseconds per connect, per idle connection-second, per delivery.
    pub cpu_us_per_connect: Option<Fig>,
    pub cpu_us_per_idle_connection_s: Option<Fig>,
    pub cpu_us_per_delivery: Option<Fig>,
    /// Server memory per open connection, bytes: allocator, RSS growth, kernel sockets.
    pub heap_bytes_per_connection: Option<Fig>,
    pub rss_bytes_per_connection: Option<Fig>,
    pub kernel_bytes_per_connection: Option<Fig>,
    /// Why server figures are missing, from the result file.
    pub unavailable: String,
    /// The loadgen's busy share of one core.
    pub loadgen_core_share: Option<Fig>,
    /// The loadgen said it measured itself (in any repeat).
    pub loadgen_saturated: bool,
}

impl RowFigures {
    /// The medians of the byte split per delivered message (TCP/IP 0 where not counted).
    pub fn bytes_per_message(&self) -> ByteSplit {
        ByteSplit {
            payload: self.payload.v(),
            envelope: self.envelope.v(),
            headers: self.headers.v(),
            framing: self.framing.v(),
            handshake: self.handshake.v(),
            tcpip: self.tcpip.map_or(0.0, Fig::v),
            control: self.control.v(),
            tls: self.tls.v(),
        }
    }

    pub fn of(e: &Entry) -> RowFigures {
        let r = &e.result;
        let b: &ByteSplit = &r.bytes_per_message;
        let f = |v: u64| Fig::of(v as f64);
        let opt = |v: Option<f64>| v.filter(|x| x.is_finite()).map(Fig::of);
        RowFigures {
            label: e.label(),
            transport: e.transport(),
            variant: e.variant(),
            scenario: e.key().describe(),
            clients: r.clients,
            messages_per_client: Fig::of(ratio(r.delivered_messages as f64, r.clients as f64)),
            rate_per_s: r.scenario.publish_rate_per_s,
            delivered: f(r.delivered_messages),
            lost: f(r.lost_messages),
            duplicate: f(r.duplicate_messages),
            out_of_order: f(r.out_of_order_messages),
            bytes_total: Fig::of(b.total()),
            payload: Fig::of(b.payload),
            envelope: Fig::of(b.envelope),
            headers: Fig::of(b.headers),
            framing: Fig::of(b.framing),
            handshake: Fig::of(b.handshake),
            control: Fig::of(b.control),
            tls: Fig::of(b.tls),
            tcpip: r.tcp_segments.map(|_| Fig::of(b.tcpip)),
            p50_us: f(r.latency_us.p50),
            p99_us: f(r.latency_us.p99),
            p999_us: f(r.latency_us.p999),
            requests_per_message: Fig::of(e.per_message(r.http_requests)),
            connects_per_message: Fig::of(e.per_message(r.tcp_connects)),
            empty: Fig::of(e.empty_fraction()),
            cpu_us_per_connect: opt(r.server_cpu_us_per_connect),
            cpu_us_per_idle_connection_s: opt(r.server_cpu_us_per_idle_connection_s),
            cpu_us_per_delivery: opt(r.server_cpu_us_per_delivery),
            heap_bytes_per_connection: opt(e.heap_per_connection_bytes()),
            rss_bytes_per_connection: opt(e.rss_per_connection_bytes()),
            kernel_bytes_per_connection: opt(e.kernel_per_connection_bytes()),
            unavailable: e.server_unavailable(),
            loadgen_core_share: r.loadgen.map(|l| Fig::of(l.core_share)),
            loadgen_saturated: e.loadgen_saturated(),
        }
    }

    /// One row from the same row of every repeat.
    pub fn combine(all: &[RowFigures]) -> RowFigures {
        RowFigures {
            messages_per_client: spread(all, |r| r.messages_per_client),
            delivered: spread(all, |r| r.delivered),
            lost: spread(all, |r| r.lost),
            duplicate: spread(all, |r| r.duplicate),
            out_of_order: spread(all, |r| r.out_of_order),
            bytes_total: spread(all, |r| r.bytes_total),
            payload: spread(all, |r| r.payload),
            envelope: spread(all, |r| r.envelope),
            headers: spread(all, |r| r.headers),
            framing: spread(all, |r| r.framing),
            handshake: spread(all, |r| r.handshake),
            control: spread(all, |r| r.control),
            tls: spread(all, |r| r.tls),
            tcpip: spread_opt(all, |r| r.tcpip),
            p50_us: spread(all, |r| r.p50_us),
            p99_us: spread(all, |r| r.p99_us),
            p999_us: spread(all, |r| r.p999_us),
            requests_per_message: spread(all, |r| r.requests_per_message),
            connects_per_message: spread(all, |r| r.connects_per_message),
            empty: spread(all, |r| r.empty),
            cpu_us_per_connect: spread_opt(all, |r| r.cpu_us_per_connect),
            cpu_us_per_idle_connection_s: spread_opt(all, |r| r.cpu_us_per_idle_connection_s),
            cpu_us_per_delivery: spread_opt(all, |r| r.cpu_us_per_delivery),
            heap_bytes_per_connection: spread_opt(all, |r| r.heap_bytes_per_connection),
            rss_bytes_per_connection: spread_opt(all, |r| r.rss_bytes_per_connection),
            kernel_bytes_per_connection: spread_opt(all, |r| r.kernel_bytes_per_connection),
            loadgen_core_share: spread_opt(all, |r| r.loadgen_core_share),
            loadgen_saturated: all.iter().any(|r| r.loadgen_saturated),
            ..all[0].clone()
        }
    }
}

/// Rows picked by `pick` in every repeat of `data`, each combined with the row of the same
/// label in the other repeats (a row missing from some repeat is combined over those it is in).
pub fn combined_rows(data: &Dataset, pick: impl Fn(&Dataset) -> Vec<&Entry>) -> Vec<RowFigures> {
    let per_repeat: Vec<Vec<RowFigures>> = data
        .repeats()
        .iter()
        .map(|d| pick(d).into_iter().map(RowFigures::of).collect())
        .collect();
    let Some(first) = per_repeat.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|row| {
            let same: Vec<RowFigures> = per_repeat
                .iter()
                .filter_map(|rows| rows.iter().find(|r| r.label == row.label).cloned())
                .collect();
            RowFigures::combine(&same)
        })
        .collect()
}

/// The rows of the main table: the baseline's transports, then its variants.
pub fn baseline_rows(data: &Dataset) -> Vec<RowFigures> {
    combined_rows(data, Dataset::baseline_entries)
}

/// The rows at the largest scale in the data, if it is not the baseline scenario.
pub fn largest_scale_rows(data: &Dataset) -> Option<(String, Vec<RowFigures>)> {
    let base = data.baseline()?;
    data.largest_scale().filter(|l| l.key != base.key)?;
    scale_rows(data)
}

/// The default-variant rows at the largest scale the data holds (server cost is drawn there:
/// small runs cost too little to tell transports apart), with that scale in words.
pub fn scale_rows(data: &Dataset) -> Option<(String, Vec<RowFigures>)> {
    let key = data.largest_scale()?.key;
    let rows = combined_rows(data, |d| {
        d.default_scenarios()
            .remove(&key)
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    });
    Some((key.describe(), rows))
}
