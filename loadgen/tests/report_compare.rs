//! `compare` end to end with tiny durations: a real server child process, every transport and
//! variant, one JSON per run, every chart but the rate sweep, and a REPORT.md that rules on
//! every claim.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use pushlab_loadgen::compare::{self, CompareArgs, ServerSource, RUN_NAMES};
use pushlab_loadgen::report::{Chart, ChartOutcome, Verdict};

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: CompareArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_runs_end_to_end_and_rules_on_every_claim() {
    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare-quick");
    let _ = fs::remove_dir_all(&out);
    let args = Wrap::parse_from(["compare", "--quick", "--clients", "5"]).args;
    let plan = args.plan();
    let server = ServerSource::Child(Some(env!("CARGO_BIN_EXE_pushlab-loadgen").into()));
    let command = vec![
        "pushlab-loadgen".to_string(),
        "compare".into(),
        "--quick".into(),
    ];
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        compare::compare(&plan, &server, &out, false, &command),
    )
    .await
    .expect("compare finishes (hang guard)")
    .expect("compare succeeds");

    assert!(outcome.losses.is_empty(), "{:?}", outcome.losses);
    for name in RUN_NAMES {
        assert!(
            out.join(format!("{name}.json")).is_file(),
            "{name}.json missing"
        );
    }
    for (chart, drawn) in &outcome.report.charts {
        match (chart, drawn) {
            // compare makes no rate sweep; the report must say so rather than draw nothing.
            (Chart::RateSweep, ChartOutcome::Skipped(_)) => {}
            // Nor a capacity ladder (`pushlab-loadgen capacity`).
            (Chart::Capacity, ChartOutcome::Skipped(why)) => {
                assert!(why.contains("capacity"), "{why}")
            }
            (_, ChartOutcome::Drawn { png, svg }) => {
                assert!(png.is_file() && svg.is_file());
            }
            (c, ChartOutcome::Skipped(why)) => panic!("{c:?} skipped: {why}"),
        }
    }
    let md = fs::read_to_string(out.join("REPORT.md")).expect("REPORT.md");
    for c in &outcome.report.claims {
        // Five clients cannot settle C5 (high concurrency) or C8 (100,000 clients): the
        // verdict says so and names what can (a command, or the scale run the lab lacks), as
        // the reproduce run does.
        if let Verdict::NotSettled(why) = &c.verdict {
            assert!(["C5", "C8"].contains(&c.id), "{}: {}", c.id, c.reason);
            assert!(
                why.starts_with("here (") && why.ends_with("settles it)"),
                "{}: {why}",
                c.id
            );
        }
        assert!(md.contains(&format!("### {}:", c.id)));
    }
    // Every transport and variant is a row of the table.
    for row in [
        "short poll",
        "long poll",
        "SSE",
        "chunked stream",
        "WebSocket",
        "no keep-alive",
        "browser headers",
    ] {
        assert!(outcome.table.contains(row), "table lacks {row}");
    }
}
