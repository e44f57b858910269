//! `report` on synthetic result files: every chart is written as a PNG that decodes and an SVG
//! that parses, and REPORT.md rules on every claim.

use std::fs;
use std::path::{Path, PathBuf};

use pushlab_loadgen::report::{self, fixture, Chart, ChartOutcome, ReportOptions, Verdict};

/// A fresh directory under cargo's per-test temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn write_runs(dir: &Path, runs: &[(PathBuf, pushlab_proto::result::RunResult)]) {
    for (name, run) in runs {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        fs::write(&path, serde_json::to_vec_pretty(run).expect("serialize")).expect("write");
    }
}

fn assert_png(path: &Path) {
    let bytes = fs::read(path).expect("png exists");
    assert!(
        bytes.len() > 10_000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("png header decodes");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame decodes");
    assert!(info.width >= 800 && info.height >= 500);
    // Not a blank canvas: a chart has many distinct pixel values.
    let distinct: std::collections::BTreeSet<&[u8]> = buf.chunks(3).take(400_000).collect();
    assert!(distinct.len() > 20, "{} looks blank", path.display());
}

fn assert_svg(path: &Path) {
    let text = fs::read_to_string(path).expect("svg exists");
    let doc = roxmltree::Document::parse(&text).expect("svg parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .count();
    assert!(texts > 5, "{} has {texts} text elements", path.display());
}

#[test]
fn report_draws_every_chart_and_rules_on_every_claim() {
    let input = scratch("in");
    // With h2c and h2-over-TLS runs, so the header-bytes chart and the stacks section draw.
    let mut runs = fixture::compare_with_http2();
    runs.extend(
        fixture::sweep_like(&[0.1, 1.0, 10.0, 100.0])
            .into_iter()
            .map(|(p, r)| (Path::new("sweep").join(p), r)),
    );
    write_runs(&input, &runs);
    // A JSON file that is not a result is skipped, not fatal.
    fs::write(input.join("spec.json"), br#"{"transports":["ws"]}"#).expect("write");
    // A capacity file (`pushlab-loadgen capacity --out`) is drawn as chart 8 and tabled.
    let step = |clients: u64, held: bool| {
        serde_json::json!({
            "clients": clients, "held": held, "p50_us": 900, "p99_us": 4000, "p999_us": 9000,
            "max_us": 12000, "delivered_messages": clients * 10, "lost_messages": 0,
            "wire_bytes_per_message": 150.0, "server_cpu_us_per_delivery": 2.5,
            "heap_bytes_per_connection": 9000.0, "loadgen_saturated": false
        })
    };
    let capacity = serde_json::json!({
        "kind": "pushlab-capacity", "started_at": "2026-11-29T16:00:00Z",
        "finished_at": "2026-11-29T16:10:00Z", "command": ["pushlab-loadgen", "capacity"],
        "slo": {"percentile": 99.0, "bound_us": 250000}, "rate_per_s": 1.0, "step": 100,
        "max": 300, "duration_s": 5.0,
        "transports": [
            {"transport": "ws", "held_clients": 300, "reason": "held up to --max 300",
             "at_held": step(300, true), "steps": [step(100, true), step(200, true), step(300, true)]},
            {"transport": "poll", "held_clients": 100,
             "reason": "SLO broken at 200 clients: p99 300 ms > 250 ms",
             "at_held": step(100, true), "steps": [step(100, true), step(200, false)]}
        ]
    });
    fs::write(
        input.join("capacity.json"),
        serde_json::to_vec_pretty(&capacity).unwrap(),
    )
    .expect("write");

    let out = scratch("out");
    let report = report::report_dir(
        &input,
        &out,
        &ReportOptions {
            input_label: Some("in".into()),
        },
    )
    .expect("report runs");

    assert_eq!(report.charts.len(), Chart::ALL.len());
    for (chart, outcome) in &report.charts {
        match outcome {
            ChartOutcome::Drawn { png, svg } => {
                assert_png(png);
                assert_svg(svg);
            }
            ChartOutcome::Skipped(why) => panic!("{chart:?} skipped: {why}"),
        }
    }
    assert!(report.warnings.iter().any(|w| w.contains("spec.json")));

    assert!(
        !report.warnings.iter().any(|w| w.contains("capacity.json")),
        "a capacity file is read, not skipped: {:?}",
        report.warnings
    );

    let md = fs::read_to_string(&report.report_md).expect("REPORT.md");
    assert!(md.contains("## Capacity at the SLO"), "{md}");
    assert!(
        md.contains("## HTTP/1.1, h2c and h2 over TLS side by side")
            && md.contains("| h2 (TLS) | ")
            && md.contains("**What TLS costs**"),
        "{md}"
    );
    assert!(
        md.contains("| WebSocket | 300 | ") && md.contains("| short poll | 100 | "),
        "the capacity table: {md}"
    );
    assert!(md.contains("charts/capacity.png"), "{md}");
    assert_eq!(report.claims.len(), 8);
    for c in &report.claims {
        if let Verdict::NotSettled(why) = &c.verdict {
            // The synthetic runs have 100 clients: not enough for C5 or C8.
            assert!(
                ["C5", "C8"].contains(&c.id),
                "{}: {why}: {}",
                c.id,
                c.reason
            );
        }
        assert!(
            md.contains(&format!("### {}:", c.id)),
            "no section for {}",
            c.id
        );
        assert!(
            md.contains(&format!("**{}**", c.verdict)),
            "no verdict for {}",
            c.id
        );
    }
    for chart in Chart::ALL {
        assert!(
            md.contains(&chart.png_path()),
            "REPORT.md does not link {chart:?}"
        );
    }
    assert!(md.contains("## Environment"));
    // HTTP/2 is measured here (h2c runs), so no estimate is printed.
    assert!(
        md.contains("HTTP/2 (measured, h2c)") && !md.contains("estimated, not measured"),
        "the HTTP/2 figure must be the measured one"
    );
}

#[test]
fn report_without_a_sweep_skips_the_rate_chart_and_says_so() {
    let input = scratch("nosweep-in");
    write_runs(&input, &fixture::compare_like());
    let out = scratch("nosweep-out");
    let report = report::report_dir(&input, &out, &ReportOptions::default()).expect("report");
    let rate = report
        .charts
        .iter()
        .find(|(c, _)| *c == Chart::RateSweep)
        .expect("rate chart listed");
    assert!(matches!(rate.1, ChartOutcome::Skipped(_)));
    let md = fs::read_to_string(&report.report_md).expect("REPORT.md");
    assert!(md.contains("not drawn"));
}

#[test]
fn report_on_a_directory_without_results_is_an_error() {
    let input = scratch("empty");
    let err = report::report_dir(&input, &scratch("empty-out"), &ReportOptions::default())
        .expect_err("no results");
    assert!(err.to_string().contains("no result JSON"), "{err}");
}

#[test]
fn repeated_runs_are_charted_as_medians_with_whiskers() {
    let input = scratch("repeat-in");
    write_runs(&input, &fixture::repeated(3, &[0.1, 1.0, 10.0, 100.0]));
    let out = scratch("repeat-out");
    let report = report::report_dir(&input, &out, &ReportOptions::default()).expect("report");
    for chart in [
        Chart::LatencySpectrum,
        Chart::BandwidthVsClients,
        Chart::RateSweep,
    ] {
        let (_, outcome) = report
            .charts
            .iter()
            .find(|(c, _)| *c == chart)
            .expect("chart listed");
        let ChartOutcome::Drawn { png, svg } = outcome else {
            panic!("{chart:?} not drawn: {outcome:?}");
        };
        assert_png(png);
        assert_svg(svg);
        let text = fs::read_to_string(svg).expect("svg");
        assert!(
            text.contains("median of 3 repeats, whiskers min-max"),
            "{chart:?} does not say it draws medians"
        );
    }
}

#[test]
fn report_links_the_documents_beside_it() {
    let input = scratch("companions-in");
    write_runs(&input, &fixture::compare_like());
    fs::write(input.join("PEERS.md"), "# peers\n").expect("write");
    let report = report::report_dir(&input, &input, &ReportOptions::default()).expect("report");
    let md = fs::read_to_string(&report.report_md).expect("REPORT.md");
    assert!(md.contains("- [PEERS.md](PEERS.md): "), "{md}");
    assert!(
        !md.contains("AUTOBAHN.md"),
        "links a file that is not there"
    );
}
