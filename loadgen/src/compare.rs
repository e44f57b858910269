//! `pushlab-loadgen compare`: the lab's one command. It starts a pushlab-server, runs every
//! transport in one scenario plus the few variants the claims need, writes one JSON per run,
//! the charts and REPORT.md into `results/latest/`, and prints the comparison and claims tables.
//!
//! # The default scenario, and why
//!
//! | setting | value | why |
//! |---|---|---|
//! | clients | 100 per transport | enough open connections that server memory per connection rises above RSS noise and fan-out is real; five phases of it fit the 3-minute budget on 2 cores |
//! | publish rate | 1 msg/s | the article's table (C8) is at one message per second per client |
//! | poll interval | 1 s | "polling 60 times a minute" (C6); the article's poller |
//! | payload | 32 B | a ticker update (symbol, price, send time); with the ~75 B envelope the message stays under 126 B, where a WebSocket frame header is the article's 2 bytes (C3 and C8 then test the article's own case; the sweep varies it) |
//! | duration | 10 s + 1 s warmup | ~1,000 latency samples per transport: p99 is solid, p99.9 rests on a handful |
//!
//! Variants of the same scenario, for the claims that turn on them:
//! - short poll with keep-alive off: C7 (a TCP handshake per request);
//! - short poll and WebSocket with browser headers: C2 and C8 (the article's 871-byte headers
//!   are a browser's);
//! - short poll, long poll and WebSocket at 0.2 msg/s (one message per five polls): C1 and C4,
//!   which are about news rarer than polls.
//!
//! That is 11 transport phases of ~12 s each: about 2.5 minutes.
//!
//! # Why the server is a child process
//!
//! The server's CPU and memory are read from its `/metrics` (process CPU seconds, RSS). In the
//! loadgen's process those would include the loadgen's own work, so `compare` starts
//! `pushlab-loadgen serve --bind 127.0.0.1:0` (the same binary, a hidden subcommand) and
//! measures that process. `--target URL` measures another server instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pushlab_proto::result::RunResult;
use pushlab_proto::Transport;

use crate::config::{HeaderProfile, RunConfig, Target};
use crate::error::LoadgenError;
use crate::report::{self, markdown, Dataset, ReportError, ReportOptions, ReportOutput};

/// What stops `compare` or `sweep`.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Loadgen(#[from] LoadgenError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Spec(String),
    #[error("messages went missing or arrived out of order: {0}")]
    Losses(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The `compare` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Measure this server instead of starting one (it should expose /metrics for server cost).
    #[arg(long)]
    pub target: Option<String>,
    /// Where the JSON, charts and REPORT.md go.
    #[arg(long, default_value = "results/latest")]
    pub out: PathBuf,
    /// Tiny scenario (10 clients, 1 s per transport) for smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Subscribers per transport [default: 100; quick: 10].
    #[arg(long)]
    pub clients: Option<u64>,
    /// Measured window per transport [default: 10s; quick: 1s].
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub duration: Option<Duration>,
    /// Warmup per transport [default: 1s; quick: 300ms].
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub warmup: Option<Duration>,
    /// Publish rate, messages per second [default: 1; quick: 5].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Bytes of data per message (at least 19: the send-time stamp).
    #[arg(long, default_value_t = 32)]
    pub payload_bytes: usize,
    /// Short-poll interval [default: 1s; quick: 200ms].
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub poll_interval: Option<Duration>,
    /// Only the five transports in the scenario, no variants (keep-alive off, browser
    /// headers, low rate).
    #[arg(long)]
    pub no_variants: bool,
}

/// One run of the plan: a file name and what differs from the scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// File stem in the output directory.
    pub name: &'static str,
    pub transports: Vec<Transport>,
    pub rate_per_s: f64,
    pub keep_alive: bool,
    pub header_profile: HeaderProfile,
}

/// The scenario and its variants, resolved from the flags.
#[derive(Clone, Debug)]
pub struct ComparePlan {
    pub clients: u64,
    pub duration: Duration,
    pub warmup: Duration,
    pub rate_per_s: f64,
    pub payload_bytes: usize,
    pub poll_interval: Duration,
    pub runs: Vec<PlannedRun>,
}

/// News per poll in the low-rate variant: one message per five polls, so four in five short
/// polls come back empty (C1) and long polling has most of its requests' worth to save (C4).
pub const LOW_RATE_NEWS_PER_POLL: f64 = 0.2;

/// Every file name `compare` may write, so a new run removes the last one's leftovers.
pub const RUN_NAMES: [&str; 4] = [
    "scenario",
    "poll-no-keepalive",
    "browser-headers",
    "low-rate",
];

impl CompareArgs {
    pub fn plan(&self) -> ComparePlan {
        let (clients, duration, warmup, rate, interval) = if self.quick {
            (
                10,
                Duration::from_secs(1),
                Duration::from_millis(300),
                5.0,
                Duration::from_millis(200),
            )
        } else {
            (
                100,
                Duration::from_secs(10),
                Duration::from_secs(1),
                1.0,
                Duration::from_secs(1),
            )
        };
        let rate = self.rate.unwrap_or(rate);
        let poll_interval = self.poll_interval.unwrap_or(interval);
        let low_rate = LOW_RATE_NEWS_PER_POLL / poll_interval.as_secs_f64();
        let mut runs = vec![PlannedRun {
            name: RUN_NAMES[0],
            transports: Transport::ALL.to_vec(),
            rate_per_s: rate,
            keep_alive: true,
            header_profile: HeaderProfile::Minimal,
        }];
        if !self.no_variants {
            runs.push(PlannedRun {
                name: RUN_NAMES[1],
                transports: vec![Transport::Poll],
                rate_per_s: rate,
                keep_alive: false,
                header_profile: HeaderProfile::Minimal,
            });
            runs.push(PlannedRun {
                name: RUN_NAMES[2],
                transports: vec![Transport::Poll, Transport::Ws],
                rate_per_s: rate,
                keep_alive: true,
                header_profile: HeaderProfile::Browser,
            });
            runs.push(PlannedRun {
                name: RUN_NAMES[3],
                transports: vec![Transport::Poll, Transport::LongPoll, Transport::Ws],
                rate_per_s: low_rate,
                keep_alive: true,
                header_profile: HeaderProfile::Minimal,
            });
        }
        ComparePlan {
            clients: self.clients.unwrap_or(clients),
            duration: self.duration.unwrap_or(duration),
            warmup: self.warmup.unwrap_or(warmup),
            rate_per_s: rate,
            payload_bytes: self.payload_bytes,
            poll_interval,
            runs,
        }
    }
}

impl ComparePlan {
    /// The run configuration of one planned run against `target`.
    pub fn config(&self, run: &PlannedRun, target: Target, command: &[String]) -> RunConfig {
        let mut c = RunConfig::new(target);
        c.transports = run.transports.clone();
        c.clients = self.clients;
        c.duration = self.duration;
        c.warmup = self.warmup;
        c.rate_per_s = run.rate_per_s;
        c.payload_bytes = self.payload_bytes;
        c.poll_interval = self.poll_interval;
        c.keep_alive = run.keep_alive;
        c.header_profile = run.header_profile;
        c.command = command.to_vec();
        c
    }

    /// Transport phases, for the progress line.
    pub fn phases(&self) -> usize {
        self.runs.iter().map(|r| r.transports.len()).sum()
    }
}

/// What `compare` produced.
#[derive(Debug)]
pub struct CompareOutcome {
    pub runs: Vec<(PathBuf, RunResult)>,
    pub report: ReportOutput,
    /// The comparison table (markdown).
    pub table: String,
    /// The claims table (markdown).
    pub claims_table: String,
    /// Lost, duplicate or out-of-order messages, per entry (empty in a clean run).
    pub losses: Vec<String>,
}

/// Where the server comes from.
#[derive(Clone, Debug)]
pub enum ServerSource {
    /// Another server at this URL.
    Target(String),
    /// A child process of this binary (`serve`); `None`: the current executable.
    Child(Option<PathBuf>),
}

/// A target to measure, and the child server behind it if we started one.
pub(crate) struct Server {
    pub target: Target,
    child: Option<crate::embedded::EmbeddedServer>,
}

impl Server {
    pub(crate) async fn start(source: &ServerSource) -> Result<Server, LabError> {
        match source {
            ServerSource::Target(url) => Ok(Server {
                target: url.parse().map_err(LoadgenError::from)?,
                child: None,
            }),
            ServerSource::Child(exe) => {
                let child = match exe {
                    Some(exe) => crate::embedded::spawn_server_from(exe, &[]).await?,
                    None => crate::embedded::spawn_embedded_server(&[]).await?,
                };
                Ok(Server {
                    target: child.url().parse().map_err(LoadgenError::from)?,
                    child: Some(child),
                })
            }
        }
    }

    pub(crate) async fn stop(self) {
        if let Some(c) = self.child {
            c.stop().await;
        }
    }
}

/// Runs the plan against the server and writes `out/`.
pub async fn compare(
    plan: &ComparePlan,
    server: &ServerSource,
    out: &Path,
    progress: bool,
    command: &[String],
) -> Result<CompareOutcome, LabError> {
    fs::create_dir_all(out).map_err(io_err(out))?;
    for name in RUN_NAMES {
        let stale = out.join(format!("{name}.json"));
        if stale.exists() {
            fs::remove_file(&stale).map_err(io_err(&stale))?;
        }
    }
    let server_handle = Server::start(server).await?;
    let total = plan.phases();
    let mut done = 0;
    let mut runs = Vec::new();
    let mut failure = None;
    for planned in &plan.runs {
        let mut config = plan.config(planned, server_handle.target.clone(), command);
        config.progress = progress;
        eprintln!(
            "compare: {} ({}), phases {}..{} of {total}",
            planned.name,
            planned
                .transports
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(","),
            done + 1,
            done + planned.transports.len()
        );
        done += planned.transports.len();
        match crate::run(config).await {
            Ok(result) => {
                let path = out.join(format!("{}.json", planned.name));
                let json = serde_json::to_vec_pretty(&result).expect("a result serializes");
                fs::write(&path, json).map_err(io_err(&path))?;
                runs.push((path, result));
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    server_handle.stop().await;
    if let Some(e) = failure {
        return Err(e.into());
    }
    let data = Dataset::from_runs(runs.clone());
    let report = report::write_report(&data, out, out, &ReportOptions::default())?;
    let table = markdown::comparison_table(&markdown::baseline_rows(&data));
    let claims_table = markdown::claims_table(&report.claims);
    let losses = markdown::correctness_warnings(&data);
    Ok(CompareOutcome {
        runs,
        report,
        table,
        claims_table,
        losses,
    })
}

/// `compare` as the binary runs it: prints the tables, fails on any loss.
pub async fn cli(args: &CompareArgs, command: &[String]) -> Result<CompareOutcome, LabError> {
    let plan = args.plan();
    let server = match &args.target {
        Some(url) => ServerSource::Target(url.clone()),
        None => ServerSource::Child(None),
    };
    let outcome = compare(&plan, &server, &args.out, true, command).await?;
    println!("{}", outcome.table);
    println!("{}", outcome.claims_table);
    println!(
        "wrote {} result file(s), charts and {} ",
        outcome.runs.len(),
        outcome.report.report_md.display()
    );
    if !outcome.losses.is_empty() {
        return Err(LabError::Losses(outcome.losses.join("; ")));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: CompareArgs,
    }

    fn plan(args: &[&str]) -> ComparePlan {
        Wrap::parse_from(std::iter::once("x").chain(args.iter().copied()))
            .args
            .plan()
    }

    #[test]
    fn default_plan_covers_every_claim_within_the_budget() {
        let p = plan(&[]);
        assert_eq!(p.runs[0].transports, Transport::ALL.to_vec());
        assert!(p.runs.iter().any(|r| !r.keep_alive));
        assert!(p
            .runs
            .iter()
            .any(|r| r.header_profile == HeaderProfile::Browser));
        let low = p
            .runs
            .iter()
            .find(|r| r.name == "low-rate")
            .expect("low rate run");
        assert!(low.rate_per_s * p.poll_interval.as_secs_f64() < 1.0);
        // Budget: phases x (warmup + duration + ~1 s to connect and drain) under 3 minutes.
        let per_phase = p.warmup + p.duration + Duration::from_secs(1);
        assert!(per_phase * p.phases() as u32 <= Duration::from_secs(170));
    }

    #[test]
    fn flags_override_the_plan() {
        let p = plan(&["--quick", "--clients", "3", "--no-variants"]);
        assert_eq!(p.clients, 3);
        assert_eq!(p.runs.len(), 1);
        assert!(p.duration <= Duration::from_secs(1));
    }
}
