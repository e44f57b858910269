//! `pushlab-loadgen merge A.json B.json... --out C.json`: one result from runs made on several
//! machines against one target. Entries of the same transport are combined: histograms are
//! added (so percentiles are those of all samples, recomputed), counters and byte totals are
//! summed, per-message figures are recomputed from the sums, `merged_runs` is summed.

use std::collections::BTreeMap;

use pushlab_proto::result::{RunResult, ServerCost, TransportResult};
use pushlab_proto::Transport;

use crate::record::{decode_histogram, encode_histogram, latency_of};

/// Why runs cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error("{0}: schema_version {1}, expected {2}")]
    Version(String, u32, u32),
    #[error("{transport} histogram of run {run}: {why}")]
    Histogram {
        transport: Transport,
        run: usize,
        why: String,
    },
}

/// Merges runs (named for error messages).
pub fn merge(runs: &[(String, RunResult)]) -> Result<RunResult, MergeError> {
    let (_, first) = runs.first().ok_or(MergeError::Empty)?;
    for (name, r) in runs {
        if r.schema_version != first.schema_version {
            return Err(MergeError::Version(
                name.clone(),
                r.schema_version,
                first.schema_version,
            ));
        }
    }
    let mut by_transport: BTreeMap<Transport, TransportResult> = BTreeMap::new();
    let mut hists = BTreeMap::new();
    for (run, (name, r)) in runs.iter().enumerate() {
        for t in &r.transports {
            let h = decode_histogram(&t.histogram).map_err(|why| MergeError::Histogram {
                transport: t.transport,
                run,
                why: format!("{name}: {why}"),
            })?;
            match hists.get_mut(&t.transport) {
                None => {
                    hists.insert(t.transport, h);
                }
                Some(acc) => {
                    let acc: &mut hdrhistogram::Histogram<u64> = acc;
                    acc.add(&h).map_err(|e| MergeError::Histogram {
                        transport: t.transport,
                        run,
                        why: format!("{e:?}"),
                    })?;
                }
            }
            match by_transport.get_mut(&t.transport) {
                None => {
                    by_transport.insert(t.transport, t.clone());
                }
                Some(acc) => add_into(acc, t),
            }
        }
    }
    let transports = by_transport
        .into_values()
        .map(|mut t| {
            let h = &hists[&t.transport];
            t.latency_us = latency_of(h);
            t.histogram = encode_histogram(h);
            t.bytes_per_message = if t.delivered_messages > 0 {
                t.bytes_total.scaled(1.0 / t.delivered_messages as f64)
            } else {
                Default::default()
            };
            t.server_cpu_us_per_1k_messages = t
                .server
                .as_ref()
                .filter(|_| t.delivered_messages > 0)
                .map(|s| s.cpu_seconds * 1e6 / t.delivered_messages as f64 * 1000.0);
            t.scenario.clients = t.clients;
            t
        })
        .collect();
    let mut notes: Vec<String> = vec![format!(
        "merged from {}",
        runs.iter()
            .map(|(n, r)| format!("{n} ({}, {})", r.environment.hostname, r.started_at))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    for (n, r) in runs {
        notes.extend(r.notes.iter().map(|x| format!("{n}: {x}")));
    }
    Ok(RunResult {
        schema_version: first.schema_version,
        tool: first.tool.clone(),
        started_at: runs
            .iter()
            .map(|(_, r)| r.started_at.clone())
            .min()
            .unwrap_or_default(),
        finished_at: runs
            .iter()
            .map(|(_, r)| r.finished_at.clone())
            .max()
            .unwrap_or_default(),
        command: std::env::args().collect(),
        config: first.config.clone(),
        environment: first.environment.clone(),
        transports,
        merged_runs: runs.iter().map(|(_, r)| r.merged_runs).sum(),
        notes,
        repeat: first.repeat,
        repeats: first.repeats,
    })
}

fn add_into(acc: &mut TransportResult, t: &TransportResult) {
    acc.clients += t.clients;
    acc.published_messages += t.published_messages;
    acc.delivered_messages += t.delivered_messages;
    acc.wire_bytes_up += t.wire_bytes_up;
    acc.wire_bytes_down += t.wire_bytes_down;
    acc.bytes_total = acc.bytes_total.add(&t.bytes_total);
    acc.http_requests += t.http_requests;
    acc.empty_responses += t.empty_responses;
    acc.tcp_connects += t.tcp_connects;
    acc.peak_open_connections += t.peak_open_connections;
    acc.reconnects += t.reconnects;
    acc.errors += t.errors;
    acc.gap_notices += t.gap_notices;
    acc.lost_messages += t.lost_messages;
    acc.duplicate_messages += t.duplicate_messages;
    acc.out_of_order_messages += t.out_of_order_messages;
    acc.window_published_messages += t.window_published_messages;
    acc.unattributed_bytes += t.unattributed_bytes;
    acc.tcp_segments = match (acc.tcp_segments, t.tcp_segments) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    acc.server = match (acc.server.take(), t.server.clone()) {
        (Some(a), Some(b)) => Some(ServerCost {
            cpu_seconds: a.cpu_seconds + b.cpu_seconds,
            rss_bytes_before: a.rss_bytes_before.min(b.rss_bytes_before),
            rss_bytes_after: a.rss_bytes_after.max(b.rss_bytes_after),
            rss_bytes_per_connection: (a.rss_bytes_per_connection
                * acc
                    .peak_open_connections
                    .saturating_sub(t.peak_open_connections) as f64
                + b.rss_bytes_per_connection * t.peak_open_connections as f64)
                / acc.peak_open_connections.max(1) as f64,
            server_bytes_read: a.server_bytes_read + b.server_bytes_read,
            server_bytes_written: a.server_bytes_written + b.server_bytes_written,
            ..a
        }),
        (a, b) => a.or(b),
    };
    acc.notes.extend(t.notes.iter().cloned());
}
