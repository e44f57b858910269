//! REPORT.md's section on runs through the emulated link (issue 11): C4, C7 and C8 ruled on the
//! RTT data, per transport and RTT the measured p50 and p99 beside the model's expectation and
//! the difference, the link charts, and every point. Empty without link data, so a loopback
//! report is unchanged.

use std::fmt::Write as _;

use pushlab_proto::Transport;

use crate::report::claims::RttReading;
use crate::report::format::fmt_num;
use crate::report::link::{rates, rtt_series, LinkPoint};

/// The section, or `""` when `points` is empty. `charts`: stems of the drawn link charts;
/// `readings`: the claims ruled on the RTT data.
pub fn section(points: &[LinkPoint], charts: &[String], readings: &[RttReading]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let mut s = String::from("## Through an emulated link\n\n");
    s.push_str("Runs through the packet-level link (`--link`, issue 11): the subscribers on its client side, the server and the publisher on its server side, so each message crosses the link once, server to subscriber. Expected latency is the model in `loadgen/src/report/link.rs`: SSE, chunked stream and WebSocket RTT/2 at p50 and p99 (one push); long poll RTT/2 while the publish period is at least the RTT, else RTT at p50 and 1.5 RTT at p99 (messages published in the re-poll gap wait for the next request); short poll interval/2 + RTT/2 at p50 and 0.99 interval + RTT/2 at p99. Loss adds tails, not medians: a lost segment of a lone message is sent again after Linux's 200 ms minimum RTO or a tail-loss probe, so once more than 1 % of packets are lost (more than 1 % of one-segment messages lose theirs) a p99 is expected near RTT/2 + RTT + 200 ms (or the lossless p99, if later); at 1 % it is the lossless one. Head-of-line blocking is not in the model: on one connection, messages sent while a lost segment is recovered wait for it too, which lifts a p99 at 10 msg/s. Retransmitted bytes (TCP's, both sides, from TCP_INFO at close) are beside the byte split, not in it.\n\n");
    if !readings.is_empty() {
        s.push_str("### The claims on the RTT data\n\nThe loopback verdicts above stand; these rule on the same claims (C8: its latency half) with the link's RTT in the path.\n\n| claim | on the RTT data | why |\n|---|---|---|\n");
        for r in readings {
            let _ = writeln!(s, "| {} | **{}** | {} |", r.id, r.verdict, r.reason);
        }
        s.push('\n');
    }
    departures(&mut s, points);
    for (what, measured, expected) in [
        (
            "p50",
            (|p: &LinkPoint| p.p50_ms) as fn(&LinkPoint) -> f64,
            (|p: &LinkPoint| p.expected_p50_ms) as fn(&LinkPoint) -> f64,
        ),
        ("p99", |p| p.p99_ms, |p| p.expected_p99_ms),
    ] {
        rtt_table(&mut s, points, what, measured, expected);
    }
    for stem in charts {
        let _ = writeln!(
            s,
            "![{stem}](charts/{stem}.png) ([SVG](charts/{stem}.svg))\n"
        );
    }
    every_point(&mut s, points);
    s
}

/// `+7.2` / `-1.7` / `0`.
fn signed(v: f64) -> String {
    if v > 0.0 {
        format!("+{}", fmt_num(v))
    } else {
        fmt_num(v)
    }
}

/// One sentence on how far the lossless points sit from the model: per kind of transport the
/// median p50 difference, and the largest difference at p50.
fn departures(s: &mut String, points: &[LinkPoint]) {
    let lossless: Vec<&LinkPoint> = points.iter().filter(|p| p.loss_ratio == 0.0).collect();
    let median = |ts: &[Transport]| {
        let mut v: Vec<f64> = lossless
            .iter()
            .filter(|p| ts.contains(&p.transport))
            .map(|p| p.departure_ms())
            .collect();
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| v[v.len() / 2])
    };
    let Some(worst) = lossless
        .iter()
        .max_by(|a, b| a.departure_ms().abs().total_cmp(&b.departure_ms().abs()))
    else {
        return;
    };
    let kinds = [
        (
            "the push transports (SSE, chunked stream, WebSocket)",
            &[Transport::Sse, Transport::Stream, Transport::Ws][..],
        ),
        ("long polling", &[Transport::LongPoll][..]),
        ("short polling", &[Transport::Poll][..]),
    ];
    let each: Vec<String> = kinds
        .iter()
        .filter_map(|(name, ts)| Some(format!("{name} {} ms", signed(median(ts)?))))
        .collect();
    let _ = writeln!(
        s,
        "Without loss, the median p50 departure from the model is {}; the largest is {} ms ({}, {} msg/s, RTT {} ms: {} ms measured, {} ms expected).\n",
        each.join(", "),
        signed(worst.departure_ms()),
        worst.transport.label(),
        fmt_num(worst.rate_per_s),
        fmt_num(worst.rtt_ms),
        fmt_num(worst.p50_ms),
        fmt_num(worst.expected_p50_ms)
    );
}

/// Transport and rate against RTT, without loss: `measured (expected, difference)` per cell.
fn rtt_table(
    s: &mut String,
    points: &[LinkPoint],
    what: &str,
    measured: fn(&LinkPoint) -> f64,
    expected: fn(&LinkPoint) -> f64,
) {
    let mut rtts: Vec<f64> = points
        .iter()
        .filter(|p| p.loss_ratio == 0.0)
        .map(|p| p.rtt_ms)
        .collect();
    rtts.sort_by(f64::total_cmp);
    rtts.dedup();
    let rows: Vec<(f64, Transport, Vec<&LinkPoint>)> = rates(points)
        .into_iter()
        .flat_map(|rate| {
            rtt_series(points, rate)
                .into_iter()
                .map(move |(t, v)| (rate, t, v))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "### {what} against RTT, without loss: measured (expected, difference), ms\n"
    );
    let head: Vec<String> = rtts
        .iter()
        .map(|r| format!("RTT {}", fmt_num(*r)))
        .collect();
    let _ = writeln!(
        s,
        "| transport | msg/s | {} |\n|---|---:|{}",
        head.join(" | "),
        "---:|".repeat(rtts.len())
    );
    for (rate, t, pts) in rows {
        let cells: Vec<String> = rtts
            .iter()
            .map(|rtt| match pts.iter().find(|p| p.rtt_ms == *rtt) {
                Some(p) => format!(
                    "{} ({}, {})",
                    fmt_num(measured(p)),
                    fmt_num(expected(p)),
                    signed(measured(p) - expected(p))
                ),
                None => "-".into(),
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            t.label(),
            fmt_num(rate),
            cells.join(" | ")
        );
    }
    s.push('\n');
}

/// Every point, loss included.
fn every_point(s: &mut String, points: &[LinkPoint]) {
    s.push_str("### Every point\n\n| transport | msg/s | RTT ms | loss | clients | p50 ms | expected p50 ms | p50 - expected ms | p99 ms | expected p99 ms | p99 - expected ms | retransmitted B/msg | lost/dup/ooo |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in points {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}% | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.transport.label(),
            fmt_num(p.rate_per_s),
            fmt_num(p.rtt_ms),
            fmt_num(p.loss_ratio * 100.0),
            p.clients,
            fmt_num(p.p50_ms),
            fmt_num(p.expected_p50_ms),
            signed(p.departure_ms()),
            fmt_num(p.p99_ms),
            fmt_num(p.expected_p99_ms),
            signed(p.p99_departure_ms()),
            p.retransmitted_bytes_per_message
                .map(fmt_num)
                .unwrap_or_else(|| "n/a".into()),
            p.lost
        );
    }
    s.push('\n');
}
