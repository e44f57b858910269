//! `pushlab-loadgen compare`: the lab's one command. It starts a pushlab-server, runs every
//! transport in one scenario plus the few variants the claims need, writes one JSON per run,
//! the charts and REPORT.md into `results/latest/`, and prints the comparison and claims tables.
//!
//! # The default scenario, and why
//!
//! | setting | value | why |
//! |---|---|---|
//! | clients | 1,200 per transport | more subscribers is the way to more latency samples without leaving the article's 1 msg/s and 1 s poll; over a thousand open connections also lift memory per connection far above RSS noise |
//! | publish rate | 1 msg/s | the article's table (C8) is at one message per second per client |
//! | poll interval | 1 s | "polling 60 times a minute" (C6); the article's poller |
//! | payload | 32 B | a ticker update (symbol, price, send time); with the ~75 B envelope the message stays under 126 B, where a WebSocket frame header is the article's 2 bytes (C3 and C8 then test the article's own case; the sweep varies it) |
//! | idle | 1 s | connections open, nothing published: one poll interval, so each short poller polls once in it (the server's cost per idle connection-second) |
//! | duration | 3 s + 0.5 s warmup | 3 messages x 1,200 subscribers = 3,600 latency samples per transport per repeat, 10,800 pooled over the 3 repeats: p99.9 rests on ~10 samples pooled, not on the max |
//! | repeats | 3 | every figure as a median with its min-max; a verdict holds only across all three |
//!
//! Variants of the same scenario, for the claims that turn on them:
//! - short poll with keep-alive off: C7 (a TCP handshake per request);
//! - short poll and WebSocket with browser headers: C2 and C8 (the article's 871-byte headers
//!   are a browser's);
//! - short poll, long poll and WebSocket at 0.2 msg/s (one message per five polls): C1 and C4,
//!   which are about news rarer than polls; their window is stretched to 5 s so it holds one
//!   message (a 3 s window at 0.2 msg/s might hold none).
//! - short poll over HTTP/2 (h2c), with minimal and with browser headers: C2 and C8 with HPACK
//!   measured, not estimated;
//! - the same two over HTTP/2 over TLS (`h2`, the server's self-signed certificate pinned by
//!   its SPKI hash): C2 and C8 side by side on HTTP/1.1, h2c and h2, and what TLS adds in bytes
//!   and server CPU per delivered message beside the h2c runs;
//! - every transport over HTTP/1.1 over TLS (wss for WebSocket), beside the scenario: TLS's
//!   bytes and CPU per transport. Its five phases run in the first repeat only (the budget) and
//!   only when the loadgen has an HTTP/1.1 TLS client ([`HTTP11_OVER_TLS`]); without it the
//!   report says the phase was skipped.
//!
//! That is 15 transport phases of ~5-8 s each (a fresh server, 1,200 connects, 1 s idle, the
//! publishing, drain and close): ~95 s per repeat, ~4.8 minutes for the three on 2 cores (5
//! more phases, ~30 s, with HTTP/1.1 over TLS).
//!
//! # Why the server is a child process, a fresh one per phase
//!
//! The server's CPU and memory are read from its `/metrics` (process CPU, RSS, heap bytes in
//! use, kernel socket memory). In the loadgen's process those would include the loadgen's own
//! work, so `compare` starts `pushlab-loadgen serve --bind 127.0.0.1:0` (the same binary, a
//! hidden subcommand) and measures that process. It starts a new one for every transport phase
//! of every repeat: on one server, memory freed by an earlier phase is reused by the next, and
//! memory per connection then falls phase by phase (20.9 KiB for the first transport, 0.4 KiB
//! for the last, measured at 1,000 clients). `--target URL` measures another server instead
//! (one server for everything: its memory figures carry that bias, and the run says so).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pushlab_proto::result::RunResult;
use pushlab_proto::Transport;

use crate::config::{HeaderProfile, HttpVersion, RunConfig, Target};
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
    /// Subscribers per transport [default: 1200; quick: 10].
    #[arg(long)]
    pub clients: Option<u64>,
    /// Measured window per transport [default: 3s; quick: 1s].
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub duration: Option<Duration>,
    /// Warmup per transport [default: 500ms; quick: 300ms].
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
    /// Repeats of the whole plan, each phase on a fresh server [default: 3; quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: Option<u32>,
    /// Every phase through an emulated link (needs root): rtt=100ms,loss=1%,... as `run
    /// --link`. Each phase's server child starts inside the link's server namespace.
    #[arg(long, value_parser = crate::link::parse_link, conflicts_with = "target")]
    pub link: Option<crate::link::LinkSpec>,
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
    /// HTTP/1.1, or HTTP/2 for the HPACK variants.
    pub http: HttpVersion,
    /// Over TLS: the child server gets a self-signed certificate, pinned by its SPKI hash.
    pub tls: bool,
    /// Run in the first repeat only (the HTTP/1.1-over-TLS phases: the budget).
    pub first_repeat_only: bool,
    /// The measured window of this run (the plan's, or longer where the rate is low).
    pub duration: Duration,
}

/// The scenario and its variants, resolved from the flags.
#[derive(Clone, Debug)]
pub struct ComparePlan {
    pub clients: u64,
    pub duration: Duration,
    pub warmup: Duration,
    pub idle: Duration,
    pub rate_per_s: f64,
    pub payload_bytes: usize,
    pub poll_interval: Duration,
    pub runs: Vec<PlannedRun>,
    /// Repeats of the whole plan (`compare --repeat`).
    pub repeats: u32,
    /// The link every phase goes through (`compare --link`); `None`: loopback.
    pub link: Option<crate::link::LinkSpec>,
}

/// News per poll in the low-rate variant: one message per five polls, so four in five short
/// polls come back empty (C1) and long polling has most of its requests' worth to save (C4).
pub const LOW_RATE_NEWS_PER_POLL: f64 = 0.2;

/// Whether the loadgen has an HTTP/1.1 client over TLS (`run --http 1.1 --tls on`): the one
/// line that enables the `tls` run (every transport on HTTP/1.1 over TLS). A test holds it to
/// what [`RunConfig::check`] accepts, so it cannot go stale.
pub const HTTP11_OVER_TLS: bool = true;

/// Every file name `compare` may write, so a new run removes the last one's leftovers.
pub const RUN_NAMES: [&str; 9] = [
    "scenario",
    "poll-no-keepalive",
    "browser-headers",
    "low-rate",
    "h2c",
    "h2c-browser-headers",
    "h2-tls",
    "h2-tls-browser-headers",
    "tls",
];

impl CompareArgs {
    pub fn plan(&self) -> ComparePlan {
        let (clients, duration, warmup, rate, interval, repeats) = if self.quick {
            (
                10,
                Duration::from_secs(1),
                Duration::from_millis(300),
                5.0,
                Duration::from_millis(200),
                1,
            )
        } else {
            (
                1_200,
                Duration::from_secs(3),
                Duration::from_millis(500),
                1.0,
                Duration::from_secs(1),
                3,
            )
        };
        let rate = self.rate.unwrap_or(rate);
        let poll_interval = self.poll_interval.unwrap_or(interval);
        let duration = self.duration.unwrap_or(duration);
        let low_rate = LOW_RATE_NEWS_PER_POLL / poll_interval.as_secs_f64();
        let run = |name, transports: &[Transport], rate_per_s: f64, keep_alive, header_profile| {
            // At least one message in the window: a window shorter than one publish period
            // may hold none.
            let period = Duration::from_secs_f64(1.0 / rate_per_s);
            PlannedRun {
                name,
                transports: transports.to_vec(),
                rate_per_s,
                keep_alive,
                header_profile,
                http: HttpVersion::Http11,
                tls: false,
                first_repeat_only: false,
                duration: duration.max(period),
            }
        };
        let h2c = |mut r: PlannedRun| {
            r.http = HttpVersion::Http2;
            r
        };
        let tls = |mut r: PlannedRun| {
            r.tls = true;
            r
        };
        let mut runs = vec![run(
            RUN_NAMES[0],
            &Transport::ALL,
            rate,
            true,
            HeaderProfile::Minimal,
        )];
        if !self.no_variants {
            runs.push(run(
                RUN_NAMES[1],
                &[Transport::Poll],
                rate,
                false,
                HeaderProfile::Minimal,
            ));
            runs.push(run(
                RUN_NAMES[2],
                &[Transport::Poll, Transport::Ws],
                rate,
                true,
                HeaderProfile::Browser,
            ));
            runs.push(run(
                RUN_NAMES[3],
                &[Transport::Poll, Transport::LongPoll, Transport::Ws],
                low_rate,
                true,
                HeaderProfile::Minimal,
            ));
            // C2 and C8 on HTTP/2: what HPACK leaves of the headers, minimal and browser, on
            // the HTTP transports HTTP/2 carries without extended CONNECT.
            runs.push(h2c(run(
                RUN_NAMES[4],
                &[Transport::Poll],
                rate,
                true,
                HeaderProfile::Minimal,
            )));
            runs.push(h2c(run(
                RUN_NAMES[5],
                &[Transport::Poll],
                rate,
                true,
                HeaderProfile::Browser,
            )));
        }
        // TLS's own cost: the server's TLS needs a child it starts (not through the link,
        // whose namespaces the pin fetch does not reach).
        if !self.no_variants && self.link.is_none() {
            for (name, profile) in [
                (RUN_NAMES[6], HeaderProfile::Minimal),
                (RUN_NAMES[7], HeaderProfile::Browser),
            ] {
                runs.push(tls(h2c(run(name, &[Transport::Poll], rate, true, profile))));
            }
            if HTTP11_OVER_TLS {
                let mut every = tls(run(
                    RUN_NAMES[8],
                    &Transport::ALL,
                    rate,
                    true,
                    HeaderProfile::Minimal,
                ));
                every.first_repeat_only = true;
                runs.push(every);
            }
        }
        ComparePlan {
            clients: self.clients.unwrap_or(clients),
            duration,
            warmup: self.warmup.unwrap_or(warmup),
            idle: poll_interval,
            rate_per_s: rate,
            payload_bytes: self.payload_bytes,
            poll_interval,
            runs,
            repeats: self.repeat.unwrap_or(repeats),
            link: self.link.clone(),
        }
    }
}

impl ComparePlan {
    /// The run configuration of one planned run against `target`.
    pub fn config(&self, run: &PlannedRun, target: Target, command: &[String]) -> RunConfig {
        let mut c = RunConfig::new(target);
        c.transports = run.transports.clone();
        c.clients = self.clients;
        c.duration = run.duration;
        c.warmup = self.warmup;
        c.idle = self.idle;
        c.rate_per_s = run.rate_per_s;
        c.payload_bytes = self.payload_bytes;
        c.poll_interval = self.poll_interval;
        c.keep_alive = run.keep_alive;
        c.header_profile = run.header_profile;
        c.http = run.http;
        c.tls = run.tls;
        c.command = command.to_vec();
        c.link = self.link.as_ref().map(crate::config::LinkConditions::from);
        c
    }

    /// Transport phases of one repeat, for the progress line.
    pub fn phases(&self) -> usize {
        self.runs.iter().map(|r| r.transports.len()).sum()
    }

    /// Transport phases of all repeats (runs in the first repeat only counted once).
    pub fn total_phases(&self) -> usize {
        self.runs
            .iter()
            .map(|r| r.transports.len() * self.repeats_of(r) as usize)
            .sum()
    }

    /// How many repeats run `run`.
    pub fn repeats_of(&self, run: &PlannedRun) -> u32 {
        if run.first_repeat_only {
            1
        } else {
            self.repeats
        }
    }

    /// The file a run of the plan is written to: `scenario.json`, or `scenario.r2.json` when
    /// the plan is repeated.
    pub fn file_name(&self, run: &PlannedRun, repeat: u32) -> String {
        if self.repeats > 1 {
            format!("{}.r{repeat}.json", run.name)
        } else {
            format!("{}.json", run.name)
        }
    }

    /// A rough wall time of the whole plan: per phase the idle part, warmup and window, plus
    /// ~2 s to start a server, connect, drain and close.
    pub fn estimated_wall(&self) -> Duration {
        self.runs
            .iter()
            .map(|r| {
                (self.idle + self.warmup + r.duration + Duration::from_secs(2))
                    * r.transports.len() as u32
                    * self.repeats_of(r)
            })
            .sum()
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

/// What a child server needs for TLS phases: a certificate it makes at start.
const CHILD_TLS_ARGS: [&str; 1] = ["--tls-self-signed"];

impl Server {
    /// A server from `source`; a child with its own self-signed certificate when `tls`.
    pub(crate) async fn start(source: &ServerSource, tls: bool) -> Result<Server, LabError> {
        let args: Vec<String> = if tls {
            CHILD_TLS_ARGS.iter().map(|a| a.to_string()).collect()
        } else {
            Vec::new()
        };
        match source {
            ServerSource::Target(url) => Ok(Server {
                target: url.parse().map_err(LoadgenError::from)?,
                child: None,
            }),
            ServerSource::Child(exe) => {
                let child = match exe {
                    Some(exe) => crate::embedded::spawn_server_from(exe, &args).await?,
                    None => crate::embedded::spawn_embedded_server(&args).await?,
                };
                Ok(Server {
                    target: child.url().parse().map_err(LoadgenError::from)?,
                    child: Some(child),
                })
            }
        }
    }

    /// The child's pid (its CPU is then read from `/proc` where `/metrics` has only ticks).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.child.id())
    }

    pub(crate) async fn stop(self) {
        if let Some(c) = self.child {
            c.stop().await;
        }
    }
}

/// Runs `config` (its target and server pid are replaced) on a server from `server`: a fresh
/// child or the `--target`; with `link`, a fresh child inside the link's server namespace and
/// the subscribers on its client side ([`crate::link::run_through_link`]).
///
/// Errors: `--link` with `--target` (the link measures only a server it starts), a server that
/// does not start, or the run's own.
pub(crate) async fn run_on(
    mut config: RunConfig,
    server: &ServerSource,
    link: Option<&crate::link::LinkSpec>,
) -> Result<RunResult, LabError> {
    if let Some(spec) = link {
        let ServerSource::Child(exe) = server else {
            return Err(LabError::Spec(
                "--link measures a server it starts inside the link: it cannot take --target"
                    .into(),
            ));
        };
        return Ok(crate::link::run_through_link(config, spec, exe.as_deref()).await?);
    }
    let handle = Server::start(server, config.tls).await?;
    config.set_target(handle.target.clone());
    config.server_pid = handle.pid();
    if config.tls && config.tls_trust.is_none() {
        match crate::embedded::fetch_tls_pin(handle.target.addr).await {
            Ok(pin) => config.tls_trust = Some(pin),
            Err(e) => {
                handle.stop().await;
                return Err(e.into());
            }
        }
    }
    let result = crate::run(config).await;
    handle.stop().await;
    Ok(result?)
}

/// A target to fill `config` with until [`run_on`] knows the server's.
pub(crate) fn placeholder_target() -> Target {
    "http://127.0.0.1:0".parse().expect("a valid URL")
}

/// Removes every run file an earlier `compare` may have left (`scenario.json`,
/// `scenario.r3.json`, ...), so the report reads only this run's.
fn remove_stale(out: &Path) -> Result<(), LabError> {
    let entries = fs::read_dir(out).map_err(io_err(out))?;
    for entry in entries {
        let path = entry.map_err(io_err(out))?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(stem) = file.strip_suffix(".json") else {
            continue;
        };
        let base = match stem.rsplit_once(".r") {
            Some((base, k)) if k.parse::<u32>().is_ok() => base,
            _ => stem,
        };
        if RUN_NAMES.contains(&base) {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// One planned run, each transport on a server of its own (a fresh child per transport, or
/// the one `--target`), combined into one result.
async fn run_planned(
    plan: &ComparePlan,
    planned: &PlannedRun,
    server: &ServerSource,
    progress: bool,
    command: &[String],
) -> Result<RunResult, LabError> {
    let mut combined: Option<RunResult> = None;
    for &t in &planned.transports {
        let mut config = plan.config(planned, placeholder_target(), command);
        config.transports = vec![t];
        config.progress = progress;
        let result = run_on(config, server, plan.link.as_ref()).await?;
        combined = Some(match combined {
            None => {
                let mut first = result;
                let mut config = plan.config(planned, first_target(&first), command);
                config.server_pid = None;
                first.config = serde_json::to_value(&config).unwrap_or_default();
                first
            }
            Some(mut acc) => {
                acc.transports.extend(result.transports);
                acc.finished_at = result.finished_at;
                for n in result.notes {
                    if !acc.notes.contains(&n) {
                        acc.notes.push(n);
                    }
                }
                acc
            }
        });
    }
    let mut result =
        combined.ok_or_else(|| LabError::Spec(format!("{}: no transport", planned.name)))?;
    result.notes.push(match server {
        ServerSource::Child(_) => "each transport ran on a fresh server process (pushlab-loadgen serve), so no phase reuses memory an earlier one freed".into(),
        ServerSource::Target(url) => format!("every transport ran on the one server at {url}: its memory per connection may be biased by memory an earlier phase freed"),
    });
    result.repeats = plan.repeats;
    Ok(result)
}

fn first_target(r: &RunResult) -> Target {
    r.config
        .get("target")
        .and_then(|t| t.get("url"))
        .and_then(|u| u.as_str())
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(placeholder_target)
}

/// Runs the plan `plan.repeats` times (a fresh server per transport phase) and writes `out/`.
pub async fn compare(
    plan: &ComparePlan,
    server: &ServerSource,
    out: &Path,
    progress: bool,
    command: &[String],
) -> Result<CompareOutcome, LabError> {
    fs::create_dir_all(out).map_err(io_err(out))?;
    remove_stale(out)?;
    let total = plan.total_phases();
    let mut done = 0;
    let mut runs = Vec::new();
    for repeat in 1..=plan.repeats {
        for planned in &plan.runs {
            if repeat > plan.repeats_of(planned) {
                continue;
            }
            let names: Vec<&str> = planned.transports.iter().map(|t| t.as_str()).collect();
            eprintln!(
                "compare: repeat {repeat}/{}: {} ({}), phases {}..{} of {total}",
                plan.repeats,
                planned.name,
                names.join(","),
                done + 1,
                done + planned.transports.len()
            );
            done += planned.transports.len();
            let mut result = run_planned(plan, planned, server, progress, command).await?;
            result.repeat = repeat;
            let path = out.join(plan.file_name(planned, repeat));
            let json = serde_json::to_vec_pretty(&result).expect("a result serializes");
            fs::write(&path, json).map_err(io_err(&path))?;
            runs.push((path, result));
        }
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

/// One warning when the loadgen measured itself (saturated) in any phase, for the terminal:
/// how many phases, the worst, and the files (each phase's JSON carries its own note).
pub fn saturation_warning(runs: &[(PathBuf, RunResult)]) -> Option<String> {
    let phases = runs.iter().map(|(_, r)| r.transports.len()).sum::<usize>();
    let saturated: Vec<(&PathBuf, &pushlab_proto::result::LoadgenCost)> = runs
        .iter()
        .flat_map(|(path, r)| {
            r.transports.iter().filter_map(move |t| {
                t.loadgen
                    .as_ref()
                    .filter(|c| c.saturated)
                    .map(|c| (path, c))
            })
        })
        .collect();
    let worst_share = saturated
        .iter()
        .map(|(_, c)| c.core_share)
        .fold(0.0, f64::max);
    let worst_late = saturated.iter().map(|(_, c)| c.timer_late_max_us).max()?;
    Some(format!(
        "warning: the loadgen was saturated in {} of {phases} phases (up to {:.0} % of a core, timers up to {worst_late} us late; limits {:.0} % and {} us): their latency and rates may be the loadgen's own or the machine's (other load); see each entry's notes",
        saturated.len(),
        worst_share * 100.0,
        pushlab_proto::result::LoadgenCost::SATURATED_CORE_SHARE * 100.0,
        pushlab_proto::result::LoadgenCost::LATE_TIMER_US,
    ))
}

/// `compare` as the binary runs it: prints the tables, fails on any loss.
pub async fn cli(args: &CompareArgs, command: &[String]) -> Result<CompareOutcome, LabError> {
    let plan = args.plan();
    let server = match &args.target {
        Some(url) => ServerSource::Target(url.clone()),
        None => ServerSource::Child(None),
    };
    let started = std::time::Instant::now();
    let outcome = compare(&plan, &server, &args.out, true, command).await?;
    println!("{}", outcome.table);
    println!("{}", outcome.claims_table);
    if let Some(w) = saturation_warning(&outcome.runs) {
        println!("{w}");
    }
    println!(
        "compare: {} repeat(s) of {} phases ({} in all) in {:.0} s",
        plan.repeats,
        plan.phases(),
        plan.total_phases(),
        started.elapsed().as_secs_f64()
    );
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
        assert!(
            low.duration.as_secs_f64() * low.rate_per_s >= 1.0,
            "the low-rate window holds a message"
        );
        // The article's scenario: 1 msg/s per client, 1 s polls (C1, C6, C8 depend on them).
        assert_eq!(
            (p.rate_per_s, p.poll_interval),
            (1.0, Duration::from_secs(1))
        );
        // C2 and C8 measured on HTTP/2, minimal and browser headers.
        for profile in [HeaderProfile::Minimal, HeaderProfile::Browser] {
            assert!(p.runs.iter().any(|r| r.http == HttpVersion::Http2
                && r.header_profile == profile
                && r.transports.contains(&Transport::Poll)));
        }
        // 10,000 latency samples per transport pooled over the repeats.
        let samples = p.clients as f64 * p.duration.as_secs_f64() * p.rate_per_s;
        assert!(samples * p.repeats as f64 >= 10_000.0, "{samples}");
        assert_eq!(p.repeats, 3);
        // C2 and C8 over TLS too, beside h2c.
        for profile in [HeaderProfile::Minimal, HeaderProfile::Browser] {
            assert!(p.runs.iter().any(|r| r.http == HttpVersion::Http2
                && r.tls
                && r.header_profile == profile
                && r.transports.contains(&Transport::Poll)));
        }
        // Budget: about 5 minutes for everything on 2 cores (the estimate counts 2 s a phase
        // for a fresh server, connects, drain and close, and runs ~8 % over the measured wall
        // time: 272 s estimated for 251 s measured with 13 phases); the two h2-over-TLS phases
        // take it to 311 s, the five HTTP/1.1-over-TLS ones (first repeat only) to 343 s.
        let budget = if HTTP11_OVER_TLS { 345 } else { 312 };
        assert!(
            p.estimated_wall() <= Duration::from_secs(budget),
            "{:?}",
            p.estimated_wall()
        );
    }

    #[test]
    fn the_http11_tls_run_is_planned_exactly_when_the_loadgen_has_the_client() {
        // HTTP11_OVER_TLS must say what the loadgen accepts: flip it when `run --http 1.1 --tls
        // on` works, and the `tls` run joins the plan.
        let mut c = RunConfig::new(placeholder_target());
        c.http = HttpVersion::Http11;
        c.tls = true;
        c.tls_trust = Some(crate::tls::TlsTrust::SpkiSha256(
            "q4b0Ry1Ot0uZ0f9pAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        ));
        assert_eq!(c.check().is_ok(), HTTP11_OVER_TLS, "{:?}", c.check());
        let p = plan(&[]);
        let tls = p.runs.iter().find(|r| r.name == "tls");
        assert_eq!(tls.is_some(), HTTP11_OVER_TLS);
        if let Some(t) = tls {
            assert_eq!(t.transports, Transport::ALL.to_vec());
            assert!(t.first_repeat_only && t.tls && t.http == HttpVersion::Http11);
            assert_eq!(p.repeats_of(t), 1);
            assert_eq!(p.file_name(t, 1), "tls.r1.json");
        }
        // Neither TLS run goes through a link (the pin fetch cannot reach its namespace).
        let linked = plan(&["--quick", "--link", "rtt=10ms"]);
        assert!(linked.runs.iter().all(|r| !r.tls));
    }

    #[test]
    fn link_goes_to_every_phase_and_not_with_a_target() {
        let p = plan(&["--quick", "--link", "rtt=50ms,loss=1%"]);
        let link = p.link.clone().expect("plan.link");
        assert_eq!(link.rtt, Duration::from_millis(50));
        for run in &p.runs {
            let c = p.config(run, placeholder_target(), &[]);
            assert_eq!(c.link.as_ref().map(|l| l.rtt_ms), Some(50.0));
        }
        assert!(plan(&["--quick"]).link.is_none());
        let both = ["x", "--link", "rtt=50ms", "--target", "http://127.0.0.1:1"];
        assert!(Wrap::try_parse_from(both).is_err());
        let bad = Wrap::try_parse_from(["x", "--link", "loss=150%"])
            .err()
            .unwrap();
        assert!(bad.to_string().contains("loss=150%"), "{bad}");
    }

    #[test]
    fn repeats_name_their_files() {
        let p = plan(&["--repeat", "2"]);
        assert_eq!(p.file_name(&p.runs[0], 2), "scenario.r2.json");
        let q = plan(&["--quick"]);
        assert_eq!(q.repeats, 1);
        assert_eq!(q.file_name(&q.runs[0], 1), "scenario.json");
    }

    #[test]
    fn stale_run_files_go_and_others_stay() {
        let dir = std::env::temp_dir().join(format!("pushlab-stale-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for f in [
            "scenario.json",
            "low-rate.r3.json",
            "mine.json",
            "scenario.md",
        ] {
            fs::write(dir.join(f), "{}").unwrap();
        }
        remove_stale(&dir).unwrap();
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["mine.json", "scenario.md"]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_override_the_plan() {
        let p = plan(&["--quick", "--clients", "3", "--no-variants"]);
        assert_eq!(p.clients, 3);
        assert_eq!(p.runs.len(), 1);
        assert!(p.duration <= Duration::from_secs(1));
    }
}
