//! REPORT.md's section on the protocol stacks (issue 12): C2 and C8 side by side on HTTP/1.1,
//! h2c and h2 over TLS, and what TLS costs per transport. Formats the figures of
//! [`crate::report::protocols`], nothing else.

use std::fmt::Write as _;

use crate::report::claims::Ruling;
use crate::report::data::Dataset;
use crate::report::format::{pct, Fig};
use crate::report::protocols::{
    c2_on_stacks, c8_on_stacks, has_http11_tls, tls_costs, StackRuling,
};
use crate::report::{Chart, ChartOutcome};

/// What the report says when no HTTP/1.1-over-TLS run is in the data.
pub const HTTP11_TLS_SKIPPED: &str = "HTTP/1.1 over TLS (every transport, wss for WebSocket) is not in this data: `compare` skips its `tls` phase while the loadgen has no HTTP/1.1 TLS client (`compare::HTTP11_OVER_TLS`), so TLS is measured here on HTTP/2 (short polling) only.";

fn verdict(r: &Ruling) -> String {
    format!("**{}**", r.verdict)
}

fn runs_note<F>(r: &StackRuling<F>, most: usize) -> &'static str {
    if r.runs < most {
        " (fewer runs)"
    } else {
        ""
    }
}

fn opt(f: Option<Fig>) -> String {
    f.map_or("-".into(), |f| f.to_string())
}

/// The section, or nothing when the data has no HTTP/2 or TLS run.
pub fn section(data: &Dataset, outcomes: &[(Chart, ChartOutcome)]) -> String {
    let c2 = c2_on_stacks(data);
    let c8 = c8_on_stacks(data);
    let costs = tls_costs(data);
    if c2.len() < 2 && c8.len() < 2 && costs.is_empty() {
        return String::new();
    }
    let most = c2.iter().map(|r| r.runs).max().unwrap_or(1);
    let mut s = String::from("## HTTP/1.1, h2c and h2 over TLS side by side\n\n");
    s.push_str("C2 and C8 ruled again on each protocol stack the data measured (short polling; the verdict rule is the claim's own). h2 over TLS carries the same HPACK blocks as h2c: TLS changes the wire bytes, not the headers.\n\n");
    if !c2.is_empty() {
        s.push_str("**C2** (headers repeat; the payload is a small part of the wire):\n\n");
        s.push_str("| stack | headers per poll exchange, minimal | browser | payload share of wire, minimal | browser | verdict |\n|---|---:|---:|---:|---:|---|\n");
        for r in &c2 {
            let f = &r.figures;
            let _ = writeln!(
                s,
                "| {}{} | {} B | {} | {} | {} | {} |",
                r.stack.protocol(),
                runs_note(r, most),
                f.minimal.headers_per_exchange,
                f.browser
                    .map_or("-".into(), |b| format!("{} B", b.headers_per_exchange)),
                pct(f.minimal.payload_share),
                f.browser.map_or("-".into(), |b| pct(b.payload_share)),
                verdict(&r.ruling)
            );
        }
        s.push('\n');
    }
    if !c8.is_empty() {
        s.push_str("**C8** (the article's table: header+framing bytes per message at 1 msg/s, as bandwidth at 1k / 10k / 100k clients, against WebSocket):\n\n");
        s.push_str("| stack | polling | B/msg | Mibit/s at 1k / 10k / 100k | WebSocket B/msg | cut | all wire bytes cut | verdict |\n|---|---|---:|---|---:|---:|---:|---|\n");
        for r in &c8 {
            let f = &r.figures;
            let _ = writeln!(
                s,
                "| {}{} | {} | {} | {} / {} / {} | {} | {}:1 | {}:1 | {} |",
                r.stack.protocol(),
                runs_note(r, most),
                f.poll_label,
                f.poll_overhead,
                f.poll_mibit[0],
                f.poll_mibit[1],
                f.poll_mibit[2],
                f.ws_overhead,
                f.cut,
                f.wire_cut,
                verdict(&r.ruling)
            );
        }
        s.push_str("\nWebSocket is held on the same stack where the data has it, else over HTTP/1.1 (`compare` runs WebSocket on HTTP/1.1 and over TLS as wss; `run --http 2 --transports ws` measures it over HTTP/2). On HTTP/2, SETTINGS, WINDOW_UPDATE and PING frames (`control`) and TLS records are wire bytes the article's count leaves out; the all-wire-bytes cut has them.\n\n");
    }
    s.push_str(&tls_table(&costs));
    if !has_http11_tls(data) {
        let _ = writeln!(s, "{HTTP11_TLS_SKIPPED}\n");
    }
    if let Some((_, ChartOutcome::Drawn { .. })) =
        outcomes.iter().find(|(c, _)| *c == Chart::HeaderBytes)
    {
        let ch = Chart::HeaderBytes;
        let _ = writeln!(s, "![chart {}]({})\n", ch.number(), ch.png_path());
    }
    s
}

fn tls_table(costs: &[crate::report::protocols::TlsCost]) -> String {
    if costs.is_empty() {
        return String::new();
    }
    let mut s = String::from("**What TLS costs**, each TLS run beside its cleartext twin in the same `compare` (same scenario; server CPU per delivery counts the publishing part only, so the handshake is in the per-connect figure):\n\n");
    s.push_str("| transport | stack | wire B/msg, cleartext | over TLS | TLS's own B/msg | TLS B per connection | server CPU us/delivery, cleartext | over TLS | us/connect, cleartext | over TLS |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let most = costs.iter().map(|c| c.runs).max().unwrap_or(1);
    for c in costs {
        let _ = writeln!(
            s,
            "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.transport.label(),
            c.tls.describe(),
            if c.runs < most { " (1 run)" } else { "" },
            c.wire_clear,
            c.wire_tls,
            c.tls_per_message,
            c.tls_per_connection,
            opt(c.cpu_clear_us),
            opt(c.cpu_tls_us),
            opt(c.connect_clear_us),
            opt(c.connect_tls_us),
        );
    }
    s.push_str("\nTLS's own bytes are the wire bytes less what HTTP read and wrote above TLS: the handshake records (certificate, key shares) once per connection, then a record header, tag and content type on every record (TLS 1.3).\n\n");
    s
}
