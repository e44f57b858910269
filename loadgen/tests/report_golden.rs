//! The golden test: `report` over the committed results/ (and results/latest/, which `compare`
//! wrote) reproduces the committed REPORT.md and CLAIMS.md byte for byte, and README's claims
//! block is the committed CLAIMS.md. Nothing in a report may depend on when or where it ran.
//!
//! After a change to the report, regenerate the committed copies with the project's command:
//! `scripts/reproduce.sh` (all of results/), or over the committed runs alone:
//! `cargo run --release -p pushlab-loadgen -- report results` and
//! `cargo run --release -p pushlab-loadgen -- report results/latest`.

use std::fs;
use std::path::{Path, PathBuf};

use pushlab_loadgen::report::{self, ReportOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadgen sits in the workspace")
        .to_path_buf()
}

fn assert_same(committed: &Path, made: &Path) {
    let want = fs::read_to_string(committed).expect("committed file");
    let got = fs::read_to_string(made).expect("report wrote it");
    if want != got {
        let line = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{} differs from a fresh report from line {}:\n  committed: {:?}\n  fresh:     {:?}\nregenerate it with `pushlab-loadgen report` (see this test's doc)",
            committed.display(),
            line + 1,
            want.lines().nth(line),
            got.lines().nth(line)
        );
    }
}

fn golden(dir: &str) {
    let input = repo().join(dir);
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("golden-{}", dir.replace('/', "-")));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).expect("scratch dir");
    let opts = ReportOptions {
        input_label: Some(dir.to_string()),
    };
    // The documents other commands wrote beside the committed report, so the fresh one links
    // them the same way.
    for (name, _) in report::COMPANIONS {
        if input.join(name).is_file() {
            fs::copy(input.join(name), out.join(name)).expect("copy a companion document");
        }
    }
    report::report_dir(&input, &out, &opts).expect("report over committed results");
    assert_same(&input.join("REPORT.md"), &out.join("REPORT.md"));
    assert_same(&input.join("CLAIMS.md"), &out.join("CLAIMS.md"));
}

#[test]
fn report_over_committed_results_reproduces_them() {
    golden("results");
}

#[test]
fn report_over_committed_compare_run_reproduces_it() {
    golden("results/latest");
}

#[test]
fn readme_claims_block_is_the_committed_claims_table() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README");
    let start = readme
        .find("<!-- claims:start -->\n")
        .expect("start marker")
        + 22;
    let end = readme.find("<!-- claims:end -->").expect("end marker");
    let claims = fs::read_to_string(repo().join("results/CLAIMS.md")).expect("CLAIMS.md");
    assert_eq!(
        &readme[start..end],
        claims,
        "run scripts/reproduce.sh to splice it"
    );
}
