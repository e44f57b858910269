//! REPORT.md's section on runs through the emulated link (issue 11): per transport and link
//! condition the measured p50 and p99 beside the model's expectation, and the link charts.
//! Empty without link data, so a loopback report is unchanged.

use std::fmt::Write as _;

use crate::report::format::fmt_num;
use crate::report::link::{expected_loss_p99_ms, LinkPoint};

/// The section, or `""` when `points` is empty. `charts`: stems of the drawn link charts.
pub fn section(points: &[LinkPoint], charts: &[&str]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let mut s = String::from("## Through an emulated link\n\n");
    s.push_str("Runs through the packet-level link (`--link`, issue 11): the subscribers on its client side, the server and the publisher on its server side, so each message crosses the link once, server to subscriber. Expected p50 is the model in `loadgen/src/report/link.rs`: SSE, chunked stream and WebSocket RTT/2 (one push); long poll RTT/2 while the publish period is at least the RTT, else RTT (messages published in the re-poll gap wait for the next request); short poll interval/2 + RTT/2. Loss adds tails, not medians: a lost segment of a lone message is sent again after Linux's 200 ms minimum RTO or a tail-loss probe, so a lossy p99 is expected near RTT/2 + RTT + 200 ms. Retransmitted bytes (TCP's, both sides, from TCP_INFO at close) are beside the byte split, not in it.\n\n");
    s.push_str("| transport | RTT ms | loss | clients | msg/s | p50 ms | expected p50 ms | p50 - expected ms | p99 ms | loss-tail p99 ms | retransmitted B/msg | lost/dup/ooo |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in points {
        let tail = if p.loss_ratio > 0.0 {
            fmt_num(expected_loss_p99_ms(p.rtt_ms))
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {}% | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.transport.label(),
            fmt_num(p.rtt_ms),
            fmt_num(p.loss_ratio * 100.0),
            p.clients,
            fmt_num(p.rate_per_s),
            fmt_num(p.p50_ms),
            fmt_num(p.expected_p50_ms),
            fmt_num(p.departure_ms()),
            fmt_num(p.p99_ms),
            tail,
            p.retransmitted_bytes_per_message
                .map(fmt_num)
                .unwrap_or_else(|| "n/a".into()),
            p.lost
        );
    }
    s.push('\n');
    for stem in charts {
        let _ = writeln!(
            s,
            "![{stem}](charts/{stem}.png) ([SVG](charts/{stem}.svg))\n"
        );
    }
    s
}
