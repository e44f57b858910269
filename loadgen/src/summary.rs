//! The table a run prints on stdout (Markdown, one row per transport).
//!
//! ```text
//! | transport | clients | delivered | msgs/s | bytes/msg up+down | header B/msg | ...
//! |---|---:|---:|---:|---:|---:| ...
//! | ws | 50 | 10000 | 500 | 112.4 | 0.0 | ...
//! ```

use pushlab_proto::result::RunResult;

/// Renders `r` as a Markdown table plus its notes.
pub fn table(r: &RunResult) -> String {
    let mut out = String::new();
    out.push_str("| transport | clients | delivered | msgs/s | bytes/msg up+down | header B/msg | framing B/msg | p50 us | p99 us | max us | requests | empty | connects | reconnects | lost/dup/ooo | server CPU us/connect | us/idle conn-s | us/delivery | heap B/conn | kernel B/conn |\n");
    out.push_str(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for t in &r.transports {
        let d = t.delivered_messages.max(1) as f64;
        let secs = t.scenario.duration_s + t.scenario.warmup_s;
        let rate = if secs > 0.0 {
            t.delivered_messages as f64 / secs
        } else {
            0.0
        };
        let fig = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let server = t.server.as_ref();
        let cpu = [
            fig(t.server_cpu_us_per_connect),
            fig(t.server_cpu_us_per_idle_connection_s),
            fig(t.server_cpu_us_per_delivery),
            fig(server.and_then(|s| s.heap_bytes_per_connection)),
            fig(server.and_then(|s| s.kernel_socket_bytes_per_connection)),
        ]
        .join(" | ");
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {}/{}/{} | {} |\n",
            t.transport,
            t.clients,
            t.delivered_messages,
            rate,
            (t.wire_bytes_up + t.wire_bytes_down) as f64 / d,
            t.bytes_per_message.headers,
            t.bytes_per_message.framing,
            t.latency_us.p50,
            t.latency_us.p99,
            t.latency_us.max,
            t.http_requests,
            t.empty_responses,
            t.tcp_connects,
            t.reconnects,
            t.lost_messages,
            t.duplicate_messages,
            t.out_of_order_messages,
            cpu,
        ));
    }
    for t in &r.transports {
        if let Some(c) = t.loadgen.as_ref().filter(|c| c.saturated) {
            out.push_str(&format!(
                "\nwarning: {}: the loadgen was saturated ({:.0} % of a core, timers up to {} us late): these figures may be the loadgen's own\n",
                t.transport,
                c.core_share * 100.0,
                c.timer_late_max_us
            ));
        }
    }
    let notes: Vec<String> = r
        .notes
        .iter()
        .cloned()
        .chain(
            r.transports
                .iter()
                .flat_map(|t| t.notes.iter().map(move |n| format!("{}: {n}", t.transport))),
        )
        .collect();
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}

/// One line per transport that lost or duplicated messages; empty when all is well.
pub fn losses(r: &RunResult) -> Vec<String> {
    r.transports
        .iter()
        .filter(|t| t.lost_messages > 0 || t.duplicate_messages > 0)
        .map(|t| {
            format!(
                "{}: {} lost and {} duplicate messages over {} subscribers",
                t.transport, t.lost_messages, t.duplicate_messages, t.clients
            )
        })
        .collect()
}
