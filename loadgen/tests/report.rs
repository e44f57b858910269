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
    let mut runs = fixture::compare_like();
    runs.extend(
        fixture::sweep_like(&[0.1, 1.0, 10.0, 100.0])
            .into_iter()
            .map(|(p, r)| (Path::new("sweep").join(p), r)),
    );
    write_runs(&input, &runs);
    // A JSON file that is not a result is skipped, not fatal.
    fs::write(input.join("spec.json"), br#"{"transports":["ws"]}"#).expect("write");

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

    let md = fs::read_to_string(&report.report_md).expect("REPORT.md");
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
    assert!(
        md.contains("estimated, not measured"),
        "the HTTP/2 figure must say it is an estimate"
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
