//! Markdown: the comparison table (also what `compare` prints) and REPORT.md.
//!
//! REPORT.md reads top to bottom as: the claims table, the scenario and its comparison table,
//! one section per claim (measured, verdict, why, chart), what modern HTTP changes, the charts
//! that were drawn or skipped, correctness warnings, and the environment block.

use std::fmt::Write as _;
use std::path::Path;

use pushlab_proto::Transport;

use crate::report::article;
use crate::report::claims::c2::h2_estimate;
use crate::report::claims::ClaimResult;
use std::collections::BTreeMap;

use pushlab_proto::result::LoadgenCost;

use crate::report::data::{ratio, Dataset, Entry, Variant};
use crate::report::figures::{largest_scale_rows, RowFigures};
use crate::report::format::{cell, fmt_num, ms, pct, Fig};
use crate::report::{Chart, ChartOutcome, ReportOptions};

/// The comparison table, one row per [`RowFigures`] in the order given, each figure a median
/// with its min-max over repeats; then the reason behind every `n/a` server figure, and a
/// warning for each row where the loadgen measured itself.
pub fn comparison_table(rows: &[RowFigures]) -> String {
    let mut s = String::new();
    s.push_str("| transport | clients | msg/s | delivered | lost/dup/ooo | wire B/msg | payload | envelope | headers | framing | handshake | TCP/IP | p50 ms | p99 ms | p99.9 ms | req/msg | connects/msg | empty | server CPU us/connect | us/idle conn-s | us/delivery | heap KiB/conn | RSS KiB/conn | kernel KiB/conn | loadgen CPU |\n");
    s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        let mut na = |v: Option<Fig>, scale: f64| match v {
            Some(v) => v.map(|x| x / scale).to_string(),
            None => {
                let why = if r.unavailable.is_empty() {
                    "the target did not report it".to_string()
                } else {
                    r.unavailable.clone()
                };
                let labels = missing.entry(why).or_default();
                if !labels.contains(&r.label) {
                    labels.push(r.label.clone());
                }
                "n/a".into()
            }
        };
        let server = [
            na(r.cpu_us_per_connect, 1.0),
            na(r.cpu_us_per_idle_connection_s, 1.0),
            na(r.cpu_us_per_delivery, 1.0),
            na(r.heap_bytes_per_connection, 1024.0),
            na(r.rss_bytes_per_connection, 1024.0),
            na(r.kernel_bytes_per_connection, 1024.0),
        ];
        let loadgen = match r.loadgen_core_share {
            Some(c) if r.loadgen_saturated => format!("{} (saturated)", pct(c)),
            Some(c) => pct(c),
            None => na(None, 1.0),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}/{}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.clients,
            fmt_num(r.rate_per_s),
            r.delivered,
            r.lost,
            r.duplicate,
            r.out_of_order,
            r.bytes_total,
            r.payload,
            r.envelope,
            r.headers,
            r.framing,
            r.handshake,
            r.tcpip.map(|v| v.to_string()).unwrap_or_else(|| "n/a".into()),
            ms(r.p50_us),
            ms(r.p99_us),
            ms(r.p999_us),
            r.requests_per_message,
            r.connects_per_message,
            pct(r.empty),
            server.join(" | "),
            loadgen,
        );
    }
    for (why, labels) in &missing {
        let _ = writeln!(s, "\nn/a in {}: {why}.", labels.join(", "));
    }
    for r in rows.iter().filter(|r| r.loadgen_saturated) {
        let _ = writeln!(
            s,
            "\n> **Warning**: {}: the loadgen was saturated (over {} of a core, or timers over {} us late); its figures may measure the loadgen, not the target.",
            r.label,
            pct(LoadgenCost::SATURATED_CORE_SHARE),
            LoadgenCost::LATE_TIMER_US
        );
    }
    s
}

/// The rows of the main table (re-exported for `compare`).
pub use crate::report::figures::baseline_rows;

/// Entries that lost, duplicated or reordered messages, or counted errors: said loudly.
pub fn correctness_warnings(data: &Dataset) -> Vec<String> {
    data.entries
        .iter()
        .chain(&data.linked)
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

/// Entries whose loadgen said it measured itself: said loudly.
pub fn saturation_warnings(data: &Dataset) -> Vec<String> {
    data.entries
        .iter()
        .filter(|e| e.loadgen_saturated())
        .map(|e| {
            let l = e.result.loadgen.unwrap_or_default();
            format!(
                "{} in {} ({}): the loadgen was saturated ({} of a core, timers up to {} us late); its figures may measure the loadgen, not the target",
                e.label(),
                e.source.display(),
                e.key().describe(),
                pct(l.core_share),
                l.timer_late_max_us
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

/// The whole REPORT.md. `companions` are (file name, one line) of documents beside it, linked
/// relatively (see [`crate::report::COMPANIONS`]).
pub fn report(
    data: &Dataset,
    input: &Path,
    outcomes: &[(Chart, ChartOutcome)],
    claims: &[ClaimResult],
    warnings: &[String],
    companions: &[(&str, &str)],
    opts: &ReportOptions,
) -> String {
    let mut s = String::new();
    s.push_str("# pushlab report\n\n");
    let _ = writeln!(
        s,
        "Generated by `pushlab-loadgen report` from {} result file(s) ({} transport entries) under `{}`. Every figure below is computed from those files; the thresholds behind each verdict are named constants in `loadgen/src/report/claims/` (one file per claim).\n",
        data.runs.len(),
        data.entries.len(),
        opts.label(input)
    );
    let repeats = data.repeat_count();
    if repeats > 1 {
        let _ = writeln!(
            s,
            "Each plan ran {repeats} times, each on a fresh server: every figure reads `median (min-max)` over the runs, every chart draws the medians (charts 2, 4 and 5 with min-max whiskers where the runs differ), and a claim whose runs disagree is `not settled by {repeats} runs`.\n"
        );
    }
    if !companions.is_empty() {
        s.push_str("Beside this report:\n\n");
        for (name, what) in companions {
            let _ = writeln!(s, "- [{name}]({name}): {what}");
        }
        s.push('\n');
    }
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
        s.push_str("\nServer CPU is split by the part of the phase it was spent in: connecting, holding idle connections, delivering. Memory per connection: the allocator's bytes in use (heap) and RSS growth in user space, the kernel's socket memory beside them; RSS growth under 2 MiB in total is allocator noise.\n\n");
        if let Some((scale, rows)) = largest_scale_rows(data) {
            let _ = writeln!(
                s,
                "At the largest scale in the data (**{scale}**), where server cost resolves best:\n"
            );
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
    s.push_str(&super::protocols::section(data, outcomes));

    if let Some((path, c)) = data.capacity.last() {
        s.push_str("## Capacity at the SLO\n\n");
        let _ = writeln!(
            s,
            "From `{}` (`pushlab-loadgen capacity`): each transport's clients grown step by step until the SLO or any loss broke.\n",
            path.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned())
        );
        s.push_str(&crate::capacity::table(c));
        s.push('\n');
    }

    s.push_str("## Charts\n\n");
    for (chart, outcome) in outcomes {
        match outcome {
            ChartOutcome::Skipped(_) if chart.optional() => {}
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

    s.push_str(&environment(data, input, opts));
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
                    fmt_num(article::HEADER_BYTES)
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
                let _ = write!(
                    s,
                    "- **HTTP/2 (measured, h2c)**: header compression (HPACK) brought a poll exchange to {} B of headers, from {} B over HTTP/1.1",
                    fmt_num(hdr(h)),
                    fmt_num(hdr(p))
                );
                let browser_h2 = Variant {
                    browser_headers: true,
                    ..Variant::H2C
                };
                match (
                    data.variant(&b.key, Transport::Poll, browser_h2),
                    data.variant(&b.key, Transport::Poll, Variant::BROWSER),
                ) {
                    (Some(h2b), Some(h1b)) => {
                        let _ = writeln!(
                            s,
                            "; with browser headers, {} B from {} B.",
                            fmt_num(hdr(h2b)),
                            fmt_num(hdr(h1b))
                        );
                    }
                    _ => s.push_str(".\n"),
                }
                hpack_cold_warm(&mut s, data, &b.key);
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

fn environment(data: &Dataset, input: &Path, opts: &ReportOptions) -> String {
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
    let _ = writeln!(
        s,
        "Regenerate this report with `pushlab-loadgen report {}`.",
        opts.label(input)
    );
    s
}

/// Request header bytes on the first request of a connection (HPACK table empty) and on
/// later ones (warm), per poll entry of the scenario: `(first, later)` averages, where the
/// result counted them (older results did not).
fn request_header_bytes(e: &Entry) -> Option<(f64, f64)> {
    let r = &e.result;
    (r.first_requests > 0 && r.later_requests > 0).then(|| {
        (
            r.headers_first_request_bytes as f64 / r.first_requests as f64,
            r.headers_later_request_bytes as f64 / r.later_requests as f64,
        )
    })
}

/// One line: request header bytes cold and warm, HTTP/1.1 against HTTP/2, both profiles.
fn hpack_cold_warm(s: &mut String, data: &Dataset, key: &crate::report::data::ScenarioKey) {
    let mut parts = Vec::new();
    for (what, v) in [
        ("HTTP/1.1 minimal", Variant::DEFAULT),
        ("HTTP/1.1 browser", Variant::BROWSER),
        ("h2c minimal", Variant::H2C),
        (
            "h2c browser",
            Variant {
                browser_headers: true,
                ..Variant::H2C
            },
        ),
    ] {
        if let Some((first, later)) = data
            .variant(key, Transport::Poll, v)
            .and_then(request_header_bytes)
        {
            parts.push(format!(
                "{what} {} B first, {} B later",
                fmt_num(first),
                fmt_num(later)
            ));
        }
    }
    if !parts.is_empty() {
        let _ = writeln!(
            s,
            "- **Request headers per poll, first on a connection and later (cold and warm HPACK table)**: {}. The loadgen's HPACK encoder (the h2 crate) never indexes `cookie`, `:path` or `content-length` values, so it sends them as literals every time; an encoder that indexes the cookie sends less.",
            parts.join("; ")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use pushlab_proto::Transport;

    use super::*;
    use crate::report::fixture::{self, Synth};

    fn table_of(runs: Vec<(PathBuf, pushlab_proto::result::RunResult)>) -> String {
        comparison_table(&baseline_rows(&Dataset::from_runs(runs)))
    }

    #[test]
    fn the_table_shows_the_cost_split_and_no_tilde() {
        let t = table_of(vec![(
            PathBuf::from("a.json"),
            fixture::run(fixture::scenario(1.0), &[Transport::Ws]),
        )]);
        assert!(t.contains("| server CPU us/connect | us/idle conn-s | us/delivery | heap KiB/conn | RSS KiB/conn | kernel KiB/conn | loadgen CPU |"), "{t}");
        // 50 us per connect, 2 per idle connection-second, 4 per delivery, 2.25 KiB kernel.
        assert!(
            t.contains("| 50 | 2 | 4 | 5.86 | 9.77 | 2.25 | 20% |"),
            "{t}"
        );
        assert!(!t.contains('~'), "{t}");
        assert!(!t.contains("Warning"), "{t}");
    }

    #[test]
    fn a_missing_figure_is_na_with_the_files_reason() {
        let mut run = fixture::run(fixture::scenario(1.0), &[Transport::Ws]);
        let t = &mut run.transports[0];
        t.server_cpu_us_per_connect = None;
        let server = t.server.as_mut().expect("fixture has server cost");
        server.kernel_socket_bytes_per_connection = None;
        server.unavailable = vec!["no SO_MEMINFO on this kernel".into()];
        let table = table_of(vec![(PathBuf::from("a.json"), run)]);
        assert!(
            table.contains("| n/a | 2 | 4 | 5.86 | 9.77 | n/a |"),
            "{table}"
        );
        assert!(
            table.contains("n/a in WebSocket: no SO_MEMINFO on this kernel."),
            "{table}"
        );
    }

    #[test]
    fn a_saturated_loadgen_is_warned_about() {
        let mut synth = Synth::new(fixture::scenario(1.0));
        synth.loadgen_saturated = true;
        let run = fixture::run_of(vec![synth.result(Transport::Ws)]);
        let data = Dataset::from_runs(vec![(PathBuf::from("a.json"), run)]);
        let t = comparison_table(&baseline_rows(&data));
        assert!(t.contains("90% (saturated)"), "{t}");
        assert!(
            t.contains("> **Warning**: WebSocket: the loadgen was saturated"),
            "{t}"
        );
        assert_eq!(saturation_warnings(&data).len(), 1);
    }

    #[test]
    fn repeated_rows_read_median_with_min_and_max() {
        let runs = [1.0, 2.0, 3.0]
            .iter()
            .enumerate()
            .map(|(i, scale)| {
                let mut synth = Synth::new(fixture::scenario(1.0));
                synth.rss_scale = *scale;
                let mut run = fixture::run_of(vec![synth.result(Transport::Stream)]);
                run.repeat = i as u32 + 1;
                run.repeats = 3;
                (PathBuf::from(format!("r{i}.json")), run)
            })
            .collect();
        let t = table_of(runs);
        // RSS 9,000 B per connection times 1, 2 and 3.
        assert!(t.contains("| 17.6 (8.79-26.4) |"), "{t}");
        assert_eq!(t.matches("\n| chunked stream |").count(), 1, "{t}");
    }
}
