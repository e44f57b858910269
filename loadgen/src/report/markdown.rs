//! Markdown: the comparison table (also what `compare` prints) and REPORT.md.
//!
//! REPORT.md reads top to bottom as: the claims table, the scenario and its comparison table,
//! one section per claim (measured, verdict, why, chart), what modern HTTP changes, the charts
//! that were drawn or skipped, correctness warnings, and the environment block.

use std::fmt::Write as _;
use std::path::Path;

use pushlab_proto::Transport;

use super::claims::{self, h2_estimate, ClaimResult};
use super::data::{fmt_num, ratio, Dataset, Entry, Variant};
use super::{Chart, ChartOutcome, ReportOptions};

/// The comparison table of `entries`, one row each, in the order given.
pub fn comparison_table(entries: &[&Entry]) -> String {
    let mut s = String::new();
    s.push_str("| transport | clients | msg/s | delivered | lost/dup/ooo | wire B/msg | payload | envelope | headers | framing | handshake | TCP/IP | p50 ms | p99 ms | p99.9 ms | req/msg | connects/msg | empty | CPU us/1k msg | RSS/conn KiB |\n");
    s.push_str(
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for e in entries {
        let r = &e.result;
        let b = &r.bytes_per_message;
        let ms = |us: u64| fmt_num(us as f64 / 1000.0);
        let empty = format!("{}%", fmt_num(e.empty_fraction() * 100.0));
        // `~`: below what /metrics resolves (10 ms CPU ticks, RSS noise); see report::data.
        let approx = |resolved: bool| if resolved { "" } else { "~" };
        let cpu = e
            .cpu_us_per_1k()
            .map(|v| format!("{}{}", approx(e.cpu_resolved()), fmt_num(v)))
            .unwrap_or_else(|| "n/a".into());
        let rss = e
            .rss_per_connection_bytes()
            .map(|v| {
                let resolved = e.rss_per_connection_resolved().is_some();
                format!("{}{}", approx(resolved), fmt_num(v / 1024.0))
            })
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}/{}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            e.label(),
            r.clients,
            fmt_num(r.scenario.publish_rate_per_s),
            fmt_num(r.delivered_messages as f64),
            r.lost_messages,
            r.duplicate_messages,
            r.out_of_order_messages,
            fmt_num(b.total()),
            fmt_num(b.payload),
            fmt_num(b.envelope),
            fmt_num(b.headers),
            fmt_num(b.framing),
            fmt_num(b.handshake),
            if r.tcp_segments.is_some() { fmt_num(b.tcpip) } else { "n/a".into() },
            ms(r.latency_us.p50),
            ms(r.latency_us.p99),
            ms(r.latency_us.p999),
            fmt_num(e.per_message(r.http_requests)),
            fmt_num(e.per_message(r.tcp_connects)),
            empty,
            cpu,
            rss,
        );
    }
    s
}

/// The baseline's entries and then its variants, the rows of the main table.
pub fn baseline_rows(data: &Dataset) -> Vec<&Entry> {
    let Some(base) = data.baseline() else {
        return Vec::new();
    };
    let mut rows: Vec<&Entry> = base.per_transport.values().copied().collect();
    rows.extend(data.variants_of(&base.key).into_iter().map(|(_, _, e)| e));
    rows
}

/// Entries that lost, duplicated or reordered messages, or counted errors: said loudly.
pub fn correctness_warnings(data: &Dataset) -> Vec<String> {
    data.entries
        .iter()
        .filter(|e| {
            let r = &e.result;
            r.lost_messages + r.duplicate_messages + r.out_of_order_messages + r.errors > 0
        })
        .map(|e| {
            let r = &e.result;
            format!(
                "{} in {} ({}): {} lost, {} duplicate, {} out of order, {} errors",
                e.label(),
                e.source.display(),
                e.key().describe(),
                r.lost_messages,
                r.duplicate_messages,
                r.out_of_order_messages,
                r.errors
            )
        })
        .collect()
}

/// The claims table: claim | measured | verdict.
pub fn claims_table(claims: &[ClaimResult]) -> String {
    let mut s = String::from("| claim | measured | verdict |\n|---|---|---|\n");
    for c in claims {
        let _ = writeln!(
            s,
            "| **{}** {} | {} | **{}** |",
            c.id,
            cell(c.claim),
            cell(&c.headline),
            cell(&c.verdict.to_string())
        );
    }
    s
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn chart_link(chart: Chart, outcomes: &[(Chart, ChartOutcome)]) -> String {
    match outcomes.iter().find(|(c, _)| *c == chart) {
        Some((_, ChartOutcome::Drawn { .. })) => format!(
            "[chart {}: {}]({})",
            chart.number(),
            chart.name(),
            chart.png_path()
        ),
        _ => format!("chart {} ({}, not drawn)", chart.number(), chart.name()),
    }
}

/// The whole REPORT.md.
pub fn report(
    data: &Dataset,
    input: &Path,
    outcomes: &[(Chart, ChartOutcome)],
    claims: &[ClaimResult],
    warnings: &[String],
    opts: &ReportOptions,
) -> String {
    let mut s = String::new();
    s.push_str("# pushlab report\n\n");
    let _ = writeln!(
        s,
        "Generated by `pushlab-loadgen report` from {} result file(s) ({} transport entries) under `{}`. Every figure below is computed from those files; the thresholds behind each verdict are named constants in `loadgen/src/report/claims.rs`.\n",
        data.runs.len(),
        data.entries.len(),
        input.display()
    );
    if !warnings.is_empty() {
        s.push_str("> **Warnings**\n>\n");
        for w in warnings {
            let _ = writeln!(s, "> - {w}");
        }
        s.push('\n');
    }

    s.push_str("## Claims\n\n");
    s.push_str(&claims_table(claims));
    s.push('\n');

    if let Some(b) = data.baseline() {
        s.push_str("## Scenario\n\n");
        let _ = writeln!(
            s,
            "Baseline: **{}**, HTTP/1.1 with keep-alive and curl-sized (minimal) headers, unless a row says otherwise. Bytes are per delivered message, both directions, connect to close; latency is publish (scheduled send time) to whole message held.\n",
            b.key.describe()
        );
        s.push_str(&comparison_table(&baseline_rows(data)));
        s.push_str("\n`~`: below what `/metrics` resolves (fewer than 20 CPU ticks of 10 ms, or under 2 MiB of RSS growth): shown, not used in verdicts.\n\n");
        if let Some(big) = data.largest_scale().filter(|l| l.key != b.key) {
            let _ = writeln!(
                s,
                "At the largest scale in the data (**{}**), where server cost resolves best:\n",
                big.key.describe()
            );
            let rows: Vec<&Entry> = big.per_transport.values().copied().collect();
            s.push_str(&comparison_table(&rows));
            s.push('\n');
        }
    }

    s.push_str("## Verdicts\n\n");
    for c in claims {
        let _ = writeln!(s, "### {}: {}\n", c.id, c.claim);
        let _ = writeln!(s, "- **Measured**: {}", c.measured);
        let _ = writeln!(s, "- **Verdict**: **{}**", c.verdict);
        let _ = writeln!(s, "- **Why**: {}", c.reason);
        let links: Vec<String> = c
            .charts
            .iter()
            .map(|ch| chart_link(*ch, outcomes))
            .collect();
        let _ = writeln!(s, "- **Shown in**: {}\n", links.join(", "));
        if let Some(ch) = c.charts.first() {
            if matches!(
                outcomes.iter().find(|(o, _)| o == ch),
                Some((_, ChartOutcome::Drawn { .. }))
            ) {
                let _ = writeln!(s, "![chart {}]({})\n", ch.number(), ch.png_path());
            }
        }
    }

    s.push_str(&modern_http(data));

    s.push_str("## Charts\n\n");
    for (chart, outcome) in outcomes {
        match outcome {
            ChartOutcome::Drawn { .. } => {
                let _ = writeln!(
                    s,
                    "{}. [{}]({}) ([SVG](charts/{}.svg))",
                    chart.number(),
                    chart.name(),
                    chart.png_path(),
                    chart.stem()
                );
            }
            ChartOutcome::Skipped(why) => {
                let _ = writeln!(
                    s,
                    "{}. {}: **not drawn**: {why}",
                    chart.number(),
                    chart.name()
                );
            }
        }
    }
    s.push('\n');

    s.push_str(&environment(data, opts));
    s
}

/// Keep-alive, header profile and HTTP/2: where today's HTTP differs from the article's.
fn modern_http(data: &Dataset) -> String {
    let mut s = String::from("## Where modern HTTP changes the story\n\n");
    let Some(b) = data.baseline() else {
        s.push_str("No baseline scenario in the data.\n\n");
        return s;
    };
    let poll = b.per_transport.get(&Transport::Poll).copied();
    let per_req = |e: &Entry, v: f64| ratio(v, e.result.http_requests as f64);
    if let Some(p) = poll {
        // C7
        match data.variant(&b.key, Transport::Poll, Variant::NO_KEEP_ALIVE) {
            Some(off) => {
                let _ = writeln!(
                    s,
                    "- **Keep-alive (C7)**: HTTP/1.1 keeps connections open by default. Short polling with keep-alive made {} TCP connects per request; with `Connection: close` it made {}, and paid {} B of TCP/IP headers per request instead of {}, p50 {} ms instead of {} ms.",
                    fmt_num(per_req(p, p.result.tcp_connects as f64)),
                    fmt_num(per_req(off, off.result.tcp_connects as f64)),
                    fmt_num(per_req(off, off.result.bytes_total.tcpip)),
                    fmt_num(per_req(p, p.result.bytes_total.tcpip)),
                    fmt_num(off.p50_ms()),
                    fmt_num(p.p50_ms())
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "- **Keep-alive (C7)**: no keep-alive-off run; with keep-alive short polling made {} TCP connects per request.",
                    fmt_num(per_req(p, p.result.tcp_connects as f64))
                );
            }
        }
        // C2
        let hdr = |e: &Entry| per_req(e, e.result.bytes_total.headers);
        match data.variant(&b.key, Transport::Poll, Variant::BROWSER) {
            Some(br) => {
                let _ = writeln!(
                    s,
                    "- **Header profile (C2)**: a poll exchange carried {} B of headers with curl-sized requests and {} B with the headers a desktop Chromium sends (the article: {} B). The article's figure is a browser's, not HTTP's.",
                    fmt_num(hdr(p)),
                    fmt_num(hdr(br)),
                    fmt_num(claims::ARTICLE_HEADER_BYTES)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "- **Header profile (C2)**: no browser-header run; curl-sized requests carried {} B of headers per exchange.",
                    fmt_num(hdr(p))
                );
            }
        }
        match data.variant(&b.key, Transport::Poll, Variant::H2C) {
            Some(h) => {
                let _ = writeln!(
                    s,
                    "- **HTTP/2 (measured, h2c)**: header compression (HPACK) brought a poll exchange to {} B of headers, from {} B over HTTP/1.1.",
                    fmt_num(hdr(h)),
                    fmt_num(hdr(p))
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "- **HTTP/2 (estimated, not measured)**: the loadgen made no h2c run here. From HPACK's rules (RFC 7541) and HTTP/2 framing, a poll exchange on a connection whose header table is warm costs about {} B of headers (two {} B frame headers, one byte per repeated field, the changing `:path` and `date` as literals), whatever the header profile: against {} B measured over HTTP/1.1. Headers stop dominating; the request per poll and its latency remain.",
                    fmt_num(h2_estimate::warm_exchange_bytes()),
                    fmt_num(h2_estimate::FRAME_HEADER_BYTES),
                    fmt_num(hdr(p))
                );
            }
        }
    } else {
        s.push_str("- No short-poll run in the baseline scenario.\n");
    }
    s.push('\n');
    s
}

fn environment(data: &Dataset, opts: &ReportOptions) -> String {
    let mut s = String::from("## Environment\n\n");
    for env in data.environments() {
        let _ = writeln!(s, "```text");
        let _ = writeln!(
            s,
            "machine   {} ({} cores, {} GiB)",
            env.cpu_model,
            env.cores,
            fmt_num(env.memory_bytes as f64 / (1u64 << 30) as f64)
        );
        let _ = writeln!(s, "host      {}", env.hostname);
        let _ = writeln!(s, "kernel    {}", env.kernel);
        let _ = writeln!(s, "os        {}", env.os);
        let _ = writeln!(s, "rustc     {}", env.rustc);
        if !env.crate_versions.is_empty() {
            let crates: Vec<String> = env
                .crate_versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "crates    {}", crates.join(", "));
        }
        let _ = writeln!(s, "commit    {}", env.git_commit);
        let _ = writeln!(s, "target    {}", env.target);
        let _ = writeln!(s, "```\n");
    }
    let mut commands: Vec<String> = data.runs.iter().map(|(_, r)| r.command.join(" ")).collect();
    commands.sort();
    commands.dedup();
    s.push_str("Runs made with:\n\n```sh\n");
    for c in commands.iter().take(10) {
        let _ = writeln!(s, "{c}");
    }
    if commands.len() > 10 {
        let _ = writeln!(s, "# ... and {} more", commands.len() - 10);
    }
    s.push_str("```\n\n");
    if !opts.command.is_empty() {
        let _ = writeln!(s, "Report made with `{}`.", opts.command);
    }
    s
}
