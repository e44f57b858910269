//! `pushlab-loadgen merge A.json B.json... --out C.json`: one result from runs made on several
//! machines against one target. Entries of the same transport are combined: histograms are
//! added (so percentiles are those of all samples, recomputed), counters ([`Counters::add`])
//! and byte totals are summed, per-message figures are recomputed from the sums, per-unit CPU
//! figures are pooled over their denominators, memory per connection is weighted by each
//! run's connections (each loadgen loaded the one target with its own share), the loadgens'
//! own costs keep the worst, `merged_runs` is summed.
//!
//! Shards of one run (`--shard I/N`, each result's `config.shard`) share one target and one
//! feed: the messages published are the one feed's (taken once, not summed), and the server's
//! cost is shard 0's scrape of the whole server, so its per-unit figures are divided again by
//! every shard's counts ([`shared_server_pass`]).
//!
//! [`Counters::add`]: pushlab_proto::counters::Counters::add

use std::collections::BTreeMap;

use pushlab_proto::result::{LoadgenCost, RunResult, ServerCost, TransportResult};
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
    let shards = runs.iter().all(|(_, r)| is_shard(r));
    if shards {
        shared_server_pass(runs, &mut by_transport);
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
        // Merged shards are a whole run again, no longer a shard of one.
        config: match (shards, first.config.clone()) {
            (true, serde_json::Value::Object(mut m)) => {
                m.insert("shard".into(), serde_json::Value::Null);
                serde_json::Value::Object(m)
            }
            (_, c) => c,
        },
        environment: first.environment.clone(),
        transports,
        merged_runs: runs.iter().map(|(_, r)| r.merged_runs).sum(),
        notes,
        repeat: first.repeat,
        repeats: first.repeats,
    })
}

/// Whether a result is one shard of a sharded run (its config names its shard).
pub fn is_shard(r: &RunResult) -> bool {
    r.config.get("shard").is_some_and(|v| !v.is_null())
}

/// Shards of one run: the feed's published counts once (the most any shard saw: they all saw
/// the same schedule), and the lead shard's server figures per unit re-divided by the units of
/// every shard: the lead's per-unit figure times its share of the unit (connects, subscribed
/// clients, deliveries, open connections).
fn shared_server_pass(
    runs: &[(String, RunResult)],
    merged: &mut BTreeMap<Transport, TransportResult>,
) {
    for (transport, m) in merged.iter_mut() {
        let entries: Vec<&TransportResult> = runs
            .iter()
            .flat_map(|(_, r)| r.transports.iter())
            .filter(|t| t.transport == *transport)
            .collect();
        m.counts.published_messages = entries
            .iter()
            .map(|t| t.counts.published_messages)
            .max()
            .unwrap_or(0);
        m.counts.window_published_messages = entries
            .iter()
            .map(|t| t.counts.window_published_messages)
            .max()
            .unwrap_or(0);
        let Some(lead) = entries.iter().find(|t| t.server.is_some()) else {
            continue;
        };
        let share = |part: u64, whole: u64| {
            move |v: Option<f64>| {
                v.filter(|_| whole > 0)
                    .map(|v| v * part as f64 / whole as f64)
            }
        };
        let c = &lead.counts;
        m.server_cpu_us_per_connect =
            share(c.tcp_connects, m.counts.tcp_connects)(lead.server_cpu_us_per_connect);
        m.server_cpu_us_per_idle_connection_s =
            share(lead.clients, m.clients)(lead.server_cpu_us_per_idle_connection_s);
        m.server_cpu_us_per_delivery = share(c.delivered_messages, m.counts.delivered_messages)(
            lead.server_cpu_us_per_delivery,
        );
        let open = share(c.peak_open_connections, m.counts.peak_open_connections);
        if let Some(s) = m.server.as_mut() {
            s.heap_bytes_per_connection = open(s.heap_bytes_per_connection);
            s.kernel_socket_bytes_per_connection = open(s.kernel_socket_bytes_per_connection);
            s.rss_bytes_per_connection = open(Some(s.rss_bytes_per_connection)).unwrap_or(0.0);
        }
        m.notes.push(format!(
            "{} shards: the server's cost is shard 0's scrape of the whole server; per-unit figures are divided by every shard's counts",
            entries.len()
        ));
    }
}

fn add_into(acc: &mut TransportResult, t: &TransportResult) {
    let prior_open = acc.peak_open_connections;
    acc.clients += t.clients;
    acc.counts.add(&t.counts);
    acc.bytes_total = acc.bytes_total.add(&t.bytes_total);
    acc.tcp_segments = match (acc.tcp_segments, t.tcp_segments) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    // Per-unit CPU: pooled, each run weighted by its own denominator (cpu / per-unit figure).
    let pool = |a: Option<f64>, b: Option<f64>, cpu_a: f64, cpu_b: f64| match (a, b) {
        (Some(x), Some(y)) if x > 0.0 && y > 0.0 => Some((cpu_a + cpu_b) / (cpu_a / x + cpu_b / y)),
        (x, y) => x.or(y),
    };
    if let (Some(a), Some(b)) = (&acc.server, &t.server) {
        acc.server_cpu_us_per_connect = pool(
            acc.server_cpu_us_per_connect,
            t.server_cpu_us_per_connect,
            a.connect_cpu_us,
            b.connect_cpu_us,
        );
        acc.server_cpu_us_per_idle_connection_s = pool(
            acc.server_cpu_us_per_idle_connection_s,
            t.server_cpu_us_per_idle_connection_s,
            a.idle_cpu_us,
            b.idle_cpu_us,
        );
        acc.server_cpu_us_per_delivery = pool(
            acc.server_cpu_us_per_delivery,
            t.server_cpu_us_per_delivery,
            a.publish_cpu_us,
            b.publish_cpu_us,
        );
    }
    // Memory per connection: weighted by each run's connections.
    let (wa, wb) = (prior_open as f64, t.peak_open_connections as f64);
    let weigh = |a: f64, b: f64| (a * wa + b * wb) / (wa + wb).max(1.0);
    acc.server = match (acc.server.take(), t.server.clone()) {
        (Some(a), Some(b)) => Some(ServerCost {
            cpu_seconds: a.cpu_seconds + b.cpu_seconds,
            connect_cpu_us: a.connect_cpu_us + b.connect_cpu_us,
            idle_cpu_us: a.idle_cpu_us + b.idle_cpu_us,
            idle_s: a.idle_s.max(b.idle_s),
            publish_cpu_us: a.publish_cpu_us + b.publish_cpu_us,
            heap_bytes_per_connection: a
                .heap_bytes_per_connection
                .zip(b.heap_bytes_per_connection)
                .map(|(x, y)| weigh(x, y)),
            kernel_socket_bytes_per_connection: a
                .kernel_socket_bytes_per_connection
                .zip(b.kernel_socket_bytes_per_connection)
                .map(|(x, y)| weigh(x, y)),
            kernel_socket_struct_bytes_per_connection: a
                .kernel_socket_struct_bytes_per_connection
                .or(b.kernel_socket_struct_bytes_per_connection),
            unavailable: a
                .unavailable
                .iter()
                .chain(&b.unavailable)
                .fold(Vec::new(), |mut v, u| {
                    if !v.contains(u) {
                        v.push(u.clone());
                    }
                    v
                }),
            rss_bytes_before: a.rss_bytes_before.min(b.rss_bytes_before),
            rss_bytes_after: a.rss_bytes_after.max(b.rss_bytes_after),
            rss_bytes_per_connection: weigh(a.rss_bytes_per_connection, b.rss_bytes_per_connection),
            server_bytes_read: a.server_bytes_read + b.server_bytes_read,
            server_bytes_written: a.server_bytes_written + b.server_bytes_written,
            cpu_source: a.cpu_source,
        }),
        (a, b) => a.or(b),
    };
    acc.loadgen = match (acc.loadgen, t.loadgen) {
        (Some(a), Some(b)) => Some(LoadgenCost {
            cpu_us: a.cpu_us + b.cpu_us,
            wall_s: a.wall_s.max(b.wall_s),
            core_share: a.core_share.max(b.core_share),
            timer_late_p99_us: a.timer_late_p99_us.max(b.timer_late_p99_us),
            timer_late_max_us: a.timer_late_max_us.max(b.timer_late_max_us),
            saturated: a.saturated || b.saturated,
        }),
        (a, b) => a.or(b),
    };
    acc.notes.extend(t.notes.iter().cloned());
}

#[cfg(test)]
mod shard_tests {
    use super::*;
    use crate::report::fixture::{run_of, scenario, Synth};

    /// Two shards of one run: shard 0 scraped the server for both.
    fn shards() -> Vec<(String, RunResult)> {
        let synth = Synth::new(scenario(1.0));
        let lead = synth.result(Transport::Ws);
        let mut follower = lead.clone();
        follower.server = None;
        follower.server_cpu_us_per_delivery = None;
        follower.server_cpu_us_per_connect = None;
        follower.server_cpu_us_per_idle_connection_s = None;
        [lead, follower]
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let mut r = run_of(vec![t]);
                r.config = serde_json::json!({"shard": {"index": i, "count": 2}});
                (format!("shard {i}"), r)
            })
            .collect()
    }

    #[test]
    fn shards_share_one_feed_and_one_servers_cost() {
        let runs = shards();
        let (lead, follower) = (&runs[0].1.transports[0], &runs[1].1.transports[0]);
        let m = merge(&runs).unwrap();
        let t = &m.transports[0];
        assert_eq!(t.clients, lead.clients + follower.clients);
        assert_eq!(
            t.delivered_messages,
            lead.delivered_messages + follower.delivered_messages
        );
        assert_eq!(t.wire_bytes_up, lead.wire_bytes_up + follower.wire_bytes_up);
        // One feed: published once, not once per shard.
        assert_eq!(t.published_messages, lead.published_messages);
        assert_eq!(t.window_published_messages, lead.window_published_messages);
        // The server's cost once (shard 0's scrape of the whole server) ...
        let (s, ls) = (t.server.as_ref().unwrap(), lead.server.as_ref().unwrap());
        assert_eq!(s.server_bytes_written, ls.server_bytes_written);
        assert_eq!(s.cpu_seconds, ls.cpu_seconds);
        // ... per unit over both shards' units (here half each).
        assert!(
            lead.server_cpu_us_per_delivery.is_some() && lead.server_cpu_us_per_connect.is_some()
        );
        assert!(ls.heap_bytes_per_connection.is_some());
        let half = |v: Option<f64>| v.map(|v| v / 2.0);
        assert_eq!(
            t.server_cpu_us_per_delivery,
            half(lead.server_cpu_us_per_delivery)
        );
        assert_eq!(
            t.server_cpu_us_per_connect,
            half(lead.server_cpu_us_per_connect)
        );
        assert_eq!(
            s.heap_bytes_per_connection,
            half(ls.heap_bytes_per_connection)
        );
        assert!(
            t.notes.iter().any(|n| n.contains("2 shards")),
            "{:?}",
            t.notes
        );
    }

    #[test]
    fn runs_that_are_not_shards_sum_their_feeds() {
        let mut runs = shards();
        for (_, r) in &mut runs {
            r.config = serde_json::json!({});
        }
        let m = merge(&runs).unwrap();
        let lead = &runs[0].1.transports[0];
        assert_eq!(
            m.transports[0].published_messages,
            2 * lead.published_messages
        );
    }
}
