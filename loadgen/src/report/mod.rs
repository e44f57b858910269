//! `pushlab-loadgen report DIR`: reads every result JSON under a directory and writes the
//! comparison table, six charts (PNG and SVG) and `REPORT.md`, which rules on each claim C1..C8
//! of the design page from the figures alone.
//!
//! # Layout
//! Three layers, each reading only the one below:
//! - [`data`]: loading, and choosing which entries each chart and claim reads (the baseline
//!   scenario, its variants, the rate sweep, the dataset of each repeat);
//! - figures: [`figures`] (the comparison table's rows) and each claim's typed figures,
//!   computed (pure) from the data, combined over repeats as `median (min-max)`;
//! - [`claims`]: one file per claim, `figures -> verdict` with every threshold named;
//!   [`protocols`] rules C2 and C8 again on each protocol stack (HTTP/1.1, h2c, h2 over TLS);
//! - [`render`]: markdown (tables, REPORT.md, CLAIMS.md) and the charts.
//!
//! The article's figures are in [`article`]; every number is formatted by [`format`].
//!
//! ```text
//! OUT/REPORT.md
//! OUT/CLAIMS.md                             the claims table alone (for README)
//! OUT/charts/bytes_per_message.{png,svg}    1 wire bytes per message, stacked by kind
//! OUT/charts/latency_spectrum.{png,svg}     2 p50..p99.99 per transport, log axes
//! OUT/charts/requests_per_message.{png,svg} 3 HTTP requests and TCP connects per message
//! OUT/charts/bandwidth_vs_clients.{png,svg} 4 bandwidth at 1 msg/s vs the article's table
//! OUT/charts/rate_sweep.{png,svg}           5 latency and bytes per message vs publish rate
//! OUT/charts/server_cost.{png,svg}          6 server CPU per delivery and connect; heap, RSS, kernel per connection
//! OUT/charts/header_bytes.{png,svg}         7 header bytes per request and response, HTTP/1.1 vs h2 cold and warm (HTTP/2 data only)
//! OUT/charts/capacity.{png,svg}             8 clients held at the SLO (capacity data only)
//! OUT/charts/link_rtt_rR.{png,svg}          p50/p99 vs the link's RTT at R msg/s, expectation dotted (link data only)
//! OUT/charts/link_loss_rR.{png,svg}         p50/p99 vs the link's loss at R msg/s (link data only)
//! ```

pub mod article;
pub mod claims;
pub mod data;
pub mod figures;
#[doc(hidden)]
pub mod fixture;
pub mod format;
pub mod link;
pub mod protocols;
pub mod render;

pub use render::{charts, markdown};

use std::fs;
use std::path::{Path, PathBuf};

pub use claims::{ClaimResult, Verdict};
pub use data::Dataset;

/// What can stop a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no result JSON (RunResult) found under {0}")]
    NoResults(PathBuf),
    #[error("chart {chart}: {message}")]
    Chart {
        chart: &'static str,
        message: String,
    },
}

/// The six charts, in the issue's order, and the optional ones, listed only when the data can
/// draw them: header bytes cold and warm (issue 12, HTTP/2 runs) and capacity (issue 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chart {
    BytesPerMessage,
    LatencySpectrum,
    RequestsPerMessage,
    BandwidthVsClients,
    RateSweep,
    ServerCost,
    HeaderBytes,
    Capacity,
}

impl Chart {
    pub const ALL: [Chart; 8] = [
        Chart::BytesPerMessage,
        Chart::LatencySpectrum,
        Chart::RequestsPerMessage,
        Chart::BandwidthVsClients,
        Chart::RateSweep,
        Chart::ServerCost,
        Chart::HeaderBytes,
        Chart::Capacity,
    ];

    /// Whether a chart is left out of the list (not "not drawn") when the data cannot draw it.
    pub fn optional(self) -> bool {
        matches!(self, Chart::Capacity | Chart::HeaderBytes)
    }

    /// File name without extension.
    pub fn stem(self) -> &'static str {
        match self {
            Chart::BytesPerMessage => "bytes_per_message",
            Chart::LatencySpectrum => "latency_spectrum",
            Chart::RequestsPerMessage => "requests_per_message",
            Chart::BandwidthVsClients => "bandwidth_vs_clients",
            Chart::RateSweep => "rate_sweep",
            Chart::ServerCost => "server_cost",
            Chart::HeaderBytes => "header_bytes",
            Chart::Capacity => "capacity",
        }
    }

    pub fn number(self) -> usize {
        self as usize + 1
    }

    /// A short name for links.
    pub fn name(self) -> &'static str {
        match self {
            Chart::BytesPerMessage => "wire bytes per message",
            Chart::LatencySpectrum => "latency spectrum",
            Chart::RequestsPerMessage => "requests and connects per message",
            Chart::BandwidthVsClients => "bandwidth vs clients",
            Chart::RateSweep => "publish-rate sweep",
            Chart::ServerCost => "server cost",
            Chart::HeaderBytes => "header bytes per request, cold and warm",
            Chart::Capacity => "clients held at the SLO",
        }
    }

    /// `charts/NAME.png`, relative to the report.
    pub fn png_path(self) -> String {
        format!("charts/{}.png", self.stem())
    }
}

/// Documents other commands write into `results/`, linked from REPORT.md (relative link) when
/// one sits beside it: (file name, what it is, in one line).
pub const COMPANIONS: [(&str, &str); 2] = [
    (
        "PEERS.md",
        "pushlab-server beside peer servers (nginx-nchan, Pushpin, Django Channels, dwebsocket) in one scenario, same loadgen and checks; written by `scripts/peers/compare.sh`.",
    ),
    (
        "AUTOBAHN.md",
        "Autobahn|Testsuite (WebSocket conformance, RFC 6455) run against pushlab-server's `/echo`; written by `scripts/autobahn/run.sh`.",
    ),
];

/// The [`COMPANIONS`] present in `dir` (where REPORT.md is written), in that order.
pub fn companions_in(dir: &Path) -> Vec<(&'static str, &'static str)> {
    COMPANIONS
        .into_iter()
        .filter(|(name, _)| dir.join(name).is_file())
        .collect()
}

/// What one chart came to.
#[derive(Clone, Debug, PartialEq)]
pub enum ChartOutcome {
    Drawn {
        png: PathBuf,
        svg: PathBuf,
    },
    /// Not drawn, and why (the data lacked what it needs); REPORT.md says so.
    Skipped(String),
}

/// The `report` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Directory to read result JSON from, recursively.
    pub dir: PathBuf,
    /// Where REPORT.md and charts/ go [default: DIR].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// How the report names its input.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// How REPORT.md names the input directory (and the command that regenerates it);
    /// default: the path as given. The golden test reads `../results` and names it `results`,
    /// so the report depends on the results alone, never on where or when it was made.
    pub input_label: Option<String>,
}

impl ReportOptions {
    /// The input directory's name in REPORT.md.
    pub fn label(&self, input: &Path) -> String {
        self.input_label
            .clone()
            .unwrap_or_else(|| input.display().to_string())
    }
}

/// Everything a report wrote.
#[derive(Clone, Debug)]
pub struct ReportOutput {
    pub report_md: PathBuf,
    pub charts: Vec<(Chart, ChartOutcome)>,
    pub claims: Vec<ClaimResult>,
    /// Result files that were skipped, and data problems (losses) worth shouting about.
    pub warnings: Vec<String>,
}

/// Reads `input` recursively and writes the report into `out`.
pub fn report_dir(
    input: &Path,
    out: &Path,
    opts: &ReportOptions,
) -> Result<ReportOutput, ReportError> {
    let data = Dataset::load_dir(input)?;
    write_report(&data, input, out, opts)
}

/// `report` as the binary runs it: writes the report and prints the claims table.
pub fn cli(args: &ReportArgs) -> Result<ReportOutput, ReportError> {
    let out = args.out.clone().unwrap_or_else(|| args.dir.clone());
    let output = report_dir(&args.dir, &out, &ReportOptions::default())?;
    println!("{}", markdown::claims_table(&output.claims));
    for w in &output.warnings {
        eprintln!("report: warning: {w}");
    }
    for (chart, outcome) in &output.charts {
        if let ChartOutcome::Skipped(why) = outcome {
            if chart.optional() {
                continue;
            }
            eprintln!("report: chart {} not drawn: {why}", chart.number());
        }
    }
    println!("wrote {}", output.report_md.display());
    Ok(output)
}

/// Writes charts and REPORT.md for `data` into `out`.
pub fn write_report(
    data: &Dataset,
    input: &Path,
    out: &Path,
    opts: &ReportOptions,
) -> Result<ReportOutput, ReportError> {
    let chart_dir = out.join("charts");
    fs::create_dir_all(&chart_dir).map_err(|source| ReportError::Io {
        path: chart_dir.clone(),
        source,
    })?;
    let mut outcomes = Vec::new();
    for chart in Chart::ALL {
        outcomes.push((chart, charts::draw(chart, data, &chart_dir)?));
    }
    let claims = claims::judge_all(data);
    let mut warnings: Vec<String> = data
        .skipped
        .iter()
        .map(|(p, why)| format!("skipped {}: not a result file ({why})", p.display()))
        .collect();
    warnings.extend(markdown::correctness_warnings(data));
    warnings.extend(markdown::saturation_warnings(data));
    // Files are named as the report names its input (the golden test reads an absolute path
    // and labels it `results`), so REPORT.md never depends on where it was made.
    let (path, label) = (input.display().to_string(), opts.label(input));
    if path != label {
        for w in &mut warnings {
            *w = w.replace(&path, &label);
        }
    }
    let companions = companions_in(out);
    let mut text = markdown::report(
        data,
        input,
        &outcomes,
        &claims,
        &warnings,
        &companions,
        opts,
    );
    // Runs through the emulated link: their own section and charts, only when present.
    let link_points = link::points(data);
    let link_charts = charts::draw_link_charts(&link_points, &chart_dir)?;
    let section = render::link::section(&link_points, &link_charts, &claims::rtt_readings(data));
    if let Some(at) = text.find("## Charts\n") {
        text.insert_str(at, &section);
    }
    // The claims table alone, for README (scripts/reproduce.sh splices it in).
    let claims_md = out.join("CLAIMS.md");
    fs::write(&claims_md, markdown::claims_table(&claims)).map_err(|source| ReportError::Io {
        path: claims_md.clone(),
        source,
    })?;
    let report_md = out.join("REPORT.md");
    fs::write(&report_md, text).map_err(|source| ReportError::Io {
        path: report_md.clone(),
        source,
    })?;
    Ok(ReportOutput {
        report_md,
        charts: outcomes,
        claims,
        warnings,
    })
}
