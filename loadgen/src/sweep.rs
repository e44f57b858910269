//! `pushlab-loadgen sweep --spec FILE --out DIR`: runs a matrix of points, one transport each,
//! and writes one JSON per point named by its variables. Interrupted sweeps resume: a point
//! whose JSON exists and parses is skipped.
//!
//! The spec (TOML, or JSON with the same shape) holds defaults and one or more matrices; each
//! matrix is the cross product of its lists:
//!
//! ```toml
//! duration = "10s"        # measured window per point
//! warmup = "1s"
//! min_messages = 5        # stretch the window so each client gets at least this many
//! poll_interval = "1s"
//!
//! [[matrix]]
//! transports = ["all"]    # or ["poll", "ws"]
//! clients = [50]
//! rate = [0.1, 1, 10, 100]
//! payload_bytes = [100]
//! keep_alive = [true]     # default [true]
//! header_profile = ["minimal"]   # default ["minimal"]
//! rtt = ["0ms", "50ms"]   # through an emulated link (needs root); default: loopback
//! loss = ["0%", "1%"]     # with rtt or alone (the other axis is then 0)
//! http = ["1.1", "2"]     # default ["1.1"]; "2" is h2c (ws by RFC 8441 extended CONNECT)
//! tls = [false]           # default [false]
//! ```
//!
//! Point files: `poll-c50-r0.1-p100-ka-minimal.json` (`ka` keep-alive on, `noka` off), with
//! `-h2c` (HTTP/2), `-tls` or `-h2` (HTTP/2 over TLS) appended when not HTTP/1.1 in clear.
//! An HTTP/2 matrix has no keep-alive-off point (an HTTP/2 connection is persistent).
//!
//! A point through the link adds `-rtt50ms-loss1pct`. Such a point's server child starts inside
//! the link's server namespace and its subscribers on the client side
//! ([`crate::compare::run_on`]); every point is bounded by its window, and the link comes up and
//! goes down with it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pushlab_proto::result::RunResult;
use pushlab_proto::Transport;
use serde::Deserialize;

use crate::compare::{io_err, placeholder_target, run_on, LabError, ServerSource};
use crate::config::{
    parse_duration, parse_transports, HeaderProfile, HttpVersion, RunConfig, Target,
};
use crate::link::spec::{parse_delay, parse_loss};
use crate::link::LinkSpec;

/// The `sweep` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct SweepArgs {
    /// The matrix (TOML or JSON); see scripts/sweep.toml.
    #[arg(long)]
    pub spec: PathBuf,
    /// Directory for the point files.
    #[arg(long)]
    pub out: PathBuf,
    /// Measure this server instead of starting one.
    #[arg(long)]
    pub target: Option<String>,
    /// List the points, which would run and the estimated time; run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The spec file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    #[serde(default = "default_duration")]
    pub duration: String,
    #[serde(default = "default_warmup")]
    pub warmup: String,
    #[serde(default)]
    pub min_messages: u64,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: String,
    #[serde(rename = "matrix")]
    pub matrices: Vec<Matrix>,
}

/// One cross product.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// A note for people; not used.
    #[serde(default)]
    pub name: String,
    pub transports: Vec<String>,
    pub clients: Vec<u64>,
    pub rate: Vec<f64>,
    #[serde(default = "default_payloads")]
    pub payload_bytes: Vec<usize>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive: Vec<bool>,
    #[serde(default = "default_profiles")]
    pub header_profile: Vec<String>,
    /// Round-trip times of an emulated link (`50ms`); empty with `loss` empty: loopback.
    #[serde(default)]
    pub rtt: Vec<String>,
    /// Loss ratios of an emulated link per direction (`1%`).
    #[serde(default)]
    pub loss: Vec<String>,
    #[serde(default = "default_http")]
    pub http: Vec<HttpVersion>,
    #[serde(default = "default_tls")]
    pub tls: Vec<bool>,
    /// Overrides of the spec's defaults for this matrix.
    pub duration: Option<String>,
    pub warmup: Option<String>,
    pub poll_interval: Option<String>,
}

fn default_duration() -> String {
    "10s".into()
}
fn default_warmup() -> String {
    "1s".into()
}
fn default_poll_interval() -> String {
    "1s".into()
}
fn default_payloads() -> Vec<usize> {
    vec![100]
}
fn default_keep_alive() -> Vec<bool> {
    vec![true]
}
fn default_profiles() -> Vec<String> {
    vec!["minimal".into()]
}
fn default_http() -> Vec<HttpVersion> {
    vec![HttpVersion::Http11]
}
fn default_tls() -> Vec<bool> {
    vec![false]
}

/// One point of the sweep: one transport in one scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub transport: Transport,
    pub clients: u64,
    pub rate_per_s: f64,
    pub payload_bytes: usize,
    pub keep_alive: bool,
    pub header_profile: HeaderProfile,
    pub http: HttpVersion,
    pub tls: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub poll_interval: Duration,
    /// The emulated link (`rtt`, `loss` axes); `None`: loopback.
    pub link: Option<LinkSpec>,
}

impl Point {
    /// `poll-c50-r0.1-p100-ka-minimal`: every variable that tells points apart. The poll
    /// interval joins the name only when it is not the usual 1 s.
    pub fn name(&self) -> String {
        let mut n = format!(
            "{}-c{}-r{}-p{}-{}-{}",
            self.transport.as_str(),
            self.clients,
            self.rate_per_s,
            self.payload_bytes,
            if self.keep_alive { "ka" } else { "noka" },
            self.header_profile.as_str()
        );
        if self.poll_interval != Duration::from_secs(1) {
            n += &format!("-i{}ms", self.poll_interval.as_millis());
        }
        match (self.http, self.tls) {
            (HttpVersion::Http11, false) => {}
            (HttpVersion::Http11, true) => n += "-tls",
            (HttpVersion::Http2, tls) => n += if tls { "-h2" } else { "-h2c" },
        }
        if let Some(link) = &self.link {
            let rtt_ms = link.rtt.as_secs_f64() * 1e3;
            let loss_pct = (link.loss * 100.0 * 1e6).round() / 1e6;
            n += &format!("-rtt{rtt_ms}ms-loss{loss_pct}pct");
        }
        n
    }

    pub fn config(&self, target: Target, command: &[String]) -> RunConfig {
        let mut c = RunConfig::new(target);
        c.transports = vec![self.transport];
        c.clients = self.clients;
        c.rate_per_s = self.rate_per_s;
        c.payload_bytes = self.payload_bytes;
        c.keep_alive = self.keep_alive;
        c.header_profile = self.header_profile;
        c.http = self.http;
        c.tls = self.tls;
        c.duration = self.duration;
        c.warmup = self.warmup;
        c.poll_interval = self.poll_interval;
        c.command = command.to_vec();
        c.link = self.link.as_ref().map(crate::config::LinkConditions::from);
        c
    }

    /// A rough wall time: warmup + window + a second to connect and drain (and two more to
    /// bring a link up and down).
    pub fn estimate(&self) -> Duration {
        let link = if self.link.is_some() { 2 } else { 0 };
        self.warmup + self.duration + Duration::from_secs(1 + link)
    }
}

fn dur(s: &str, what: &str) -> Result<Duration, LabError> {
    parse_duration(s).map_err(|e| LabError::Spec(format!("{what} {s:?}: {e}")))
}

/// The links of a matrix: the cross product of its `rtt` and `loss` axes (an axis left out is
/// 0), each checked as `--link` checks it; `[None]` (loopback) when both are left out.
fn links(m: &Matrix, what: &dyn Fn(&str) -> String) -> Result<Vec<Option<LinkSpec>>, LabError> {
    if m.rtt.is_empty() && m.loss.is_empty() {
        return Ok(vec![None]);
    }
    let bad =
        |field: &str, v: &str, e: String| LabError::Spec(format!("{} {v:?}: {e}", what(field)));
    let rtts = match m.rtt.is_empty() {
        true => vec![Duration::ZERO],
        false => m
            .rtt
            .iter()
            .map(|v| parse_delay(v).map_err(|e| bad("rtt", v, e)))
            .collect::<Result<_, _>>()?,
    };
    let losses = match m.loss.is_empty() {
        true => vec![0.0],
        false => m
            .loss
            .iter()
            .map(|v| parse_loss(v).map_err(|e| bad("loss", v, e)))
            .collect::<Result<_, _>>()?,
    };
    let mut out = Vec::new();
    for &rtt in &rtts {
        for &loss in &losses {
            let spec = LinkSpec {
                rtt,
                loss,
                ..LinkSpec::default()
            };
            spec.check()
                .map_err(|e| LabError::Spec(format!("{}: {e}", what("rtt/loss"))))?;
            out.push(Some(spec));
        }
    }
    Ok(out)
}

impl SweepSpec {
    /// Reads TOML, or JSON when the file ends in `.json`.
    pub fn load(path: &Path) -> Result<SweepSpec, LabError> {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        let spec: SweepSpec = if path.extension().is_some_and(|x| x == "json") {
            serde_json::from_str(&text)
                .map_err(|e| LabError::Spec(format!("{}: {e}", path.display())))?
        } else {
            toml::from_str(&text).map_err(|e| LabError::Spec(format!("{}: {e}", path.display())))?
        };
        Ok(spec)
    }

    /// Every point, in spec order, without repeats (two matrices may share a point).
    pub fn points(&self) -> Result<Vec<Point>, LabError> {
        if self.matrices.is_empty() {
            return Err(LabError::Spec("the spec has no [[matrix]]".into()));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (mi, m) in self.matrices.iter().enumerate() {
            let what = |field: &str| format!("matrix {} ({}): {field}", mi + 1, m.name);
            let transports = parse_transports(&m.transports.join(","))
                .map_err(|e| LabError::Spec(format!("{}: {e}", what("transports"))))?;
            let profiles = m
                .header_profile
                .iter()
                .map(|p| match p.as_str() {
                    "minimal" => Ok(HeaderProfile::Minimal),
                    "browser" => Ok(HeaderProfile::Browser),
                    other => Err(LabError::Spec(format!(
                        "{}: {other:?} is not minimal or browser",
                        what("header_profile")
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let duration = dur(m.duration.as_deref().unwrap_or(&self.duration), "duration")?;
            let warmup = dur(m.warmup.as_deref().unwrap_or(&self.warmup), "warmup")?;
            let poll_interval = dur(
                m.poll_interval.as_deref().unwrap_or(&self.poll_interval),
                "poll_interval",
            )?;
            for list in [
                ("clients", m.clients.is_empty()),
                ("rate", m.rate.is_empty()),
                ("payload_bytes", m.payload_bytes.is_empty()),
                ("keep_alive", m.keep_alive.is_empty()),
                ("header_profile", profiles.is_empty()),
                ("http", m.http.is_empty()),
                ("tls", m.tls.is_empty()),
            ] {
                if list.1 {
                    return Err(LabError::Spec(format!("{} is empty", what(list.0))));
                }
            }
            let links = &links(m, &what)?;
            let protocols: Vec<(HttpVersion, bool)> = m
                .http
                .iter()
                .flat_map(|&h| m.tls.iter().map(move |&t| (h, t)))
                .collect();
            for &transport in &transports {
                for &clients in &m.clients {
                    for &rate in &m.rate {
                        if !(rate > 0.0 && rate.is_finite()) {
                            return Err(LabError::Spec(format!(
                                "{}: {rate} is not a positive rate",
                                what("rate")
                            )));
                        }
                        // Enough window that each client sees min_messages at this rate.
                        let needed = Duration::from_secs_f64(self.min_messages as f64 / rate);
                        for &payload_bytes in &m.payload_bytes {
                            for &keep_alive in &m.keep_alive {
                                for (&header_profile, &(http, tls), link) in
                                    profiles.iter().flat_map(|p| {
                                        protocols
                                            .iter()
                                            .flat_map(move |x| links.iter().map(move |l| (p, x, l)))
                                    })
                                {
                                    let h2 = http == HttpVersion::Http2;
                                    if h2 && !keep_alive {
                                        continue;
                                    }
                                    let p = Point {
                                        transport,
                                        clients,
                                        rate_per_s: rate,
                                        payload_bytes,
                                        keep_alive,
                                        header_profile,
                                        http,
                                        tls,
                                        duration: duration.max(needed),
                                        warmup,
                                        poll_interval,
                                        link: link.clone(),
                                    };
                                    if seen.insert(p.name()) {
                                        out.push(p);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Whether `path` holds a finished point (exists and parses as a result).
pub fn is_done(path: &Path) -> bool {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<RunResult>(&t).ok())
        .is_some()
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepOutcome {
    pub ran: Vec<PathBuf>,
    pub skipped: Vec<PathBuf>,
    /// Losses and other warnings of the points run now.
    pub warnings: Vec<String>,
}

/// Runs every point of `spec` not already in `out`.
pub async fn sweep(
    spec: &SweepSpec,
    out: &Path,
    server: &ServerSource,
    command: &[String],
) -> Result<SweepOutcome, LabError> {
    let points = spec.points()?;
    fs::create_dir_all(out).map_err(io_err(out))?;
    let mut outcome = SweepOutcome::default();
    let todo: Vec<&Point> = points
        .iter()
        .filter(|p| {
            let path = out.join(format!("{}.json", p.name()));
            if is_done(&path) {
                outcome.skipped.push(path);
                false
            } else {
                true
            }
        })
        .collect();
    if todo.is_empty() {
        return Ok(outcome);
    }
    let left: Duration = todo.iter().map(|p| p.estimate()).sum();
    eprintln!(
        "sweep: {} points to run ({} already done), about {} min",
        todo.len(),
        outcome.skipped.len(),
        (left.as_secs_f64() / 60.0).ceil()
    );
    let mut failure = None;
    for (i, p) in todo.iter().enumerate() {
        let name = p.name();
        eprintln!("sweep: [{}/{}] {name}", i + 1, todo.len());
        // A fresh child server per point: memory per connection is RSS growth, and a server
        // that already served an earlier point hands its freed memory to the next one (seen:
        // sse 8.4, stream 5.8, ws 1.4 KiB per connection in run order on one process).
        let config = p.config(placeholder_target(), command);
        let ran = run_on(config, server, p.link.as_ref()).await;
        match ran {
            Ok(result) => {
                outcome.warnings.extend(
                    crate::summary::losses(&result)
                        .into_iter()
                        .map(|l| format!("{name}: {l}")),
                );
                // Write to a temp name and rename, so an interrupted write never looks done.
                let path = out.join(format!("{name}.json"));
                let tmp = out.join(format!(".{name}.json.tmp"));
                let json = serde_json::to_vec_pretty(&result).expect("a result serializes");
                fs::write(&tmp, json).map_err(io_err(&tmp))?;
                fs::rename(&tmp, &path).map_err(io_err(&path))?;
                outcome.ran.push(path);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// `sweep` as the binary runs it.
pub async fn cli(args: &SweepArgs, command: &[String]) -> Result<SweepOutcome, LabError> {
    let spec = SweepSpec::load(&args.spec)?;
    if args.dry_run {
        let points = spec.points()?;
        let mut left = Duration::ZERO;
        for p in &points {
            let done = is_done(&args.out.join(format!("{}.json", p.name())));
            if !done {
                left += p.estimate();
            }
            println!("{} {}", if done { "done" } else { "todo" }, p.name());
        }
        println!(
            "{} points, about {} min left",
            points.len(),
            (left.as_secs_f64() / 60.0).ceil()
        );
        return Ok(SweepOutcome::default());
    }
    let server = match &args.target {
        Some(url) => ServerSource::Target(url.clone()),
        None => ServerSource::Child(None),
    };
    let outcome = sweep(&spec, &args.out, &server, command).await?;
    println!(
        "sweep: ran {} point(s), {} already done, in {}",
        outcome.ran.len(),
        outcome.skipped.len(),
        args.out.display()
    );
    if !outcome.warnings.is_empty() {
        return Err(LabError::Losses(outcome.warnings.join("; ")));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
duration = "2s"
min_messages = 4

[[matrix]]
transports = ["all"]
clients = [10]
rate = [0.5, 10]

[[matrix]]
transports = ["poll"]
clients = [10]
rate = [10]
keep_alive = [true, false]
header_profile = ["minimal", "browser"]

[[matrix]]
transports = ["all"]
clients = [10]
rate = [10]
http = ["1.1", "2"]
"#;

    #[test]
    fn matrices_expand_without_repeats_and_stretch_slow_points() {
        let spec: SweepSpec = toml::from_str(SPEC).expect("spec parses");
        let points = spec.points().expect("points");
        // 5 transports x 2 rates, plus 4 poll variants of which one repeats a point, plus
        // HTTP/2 points for the five transports (WebSocket by RFC 8441; the 1.1 ones repeat).
        assert_eq!(points.len(), 10 + 3 + 5);
        let slow = points
            .iter()
            .find(|p| p.rate_per_s == 0.5)
            .expect("slow point");
        assert_eq!(slow.duration, Duration::from_secs(8));
        let names: BTreeSet<String> = points.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), points.len());
        assert!(names.contains("poll-c10-r10-p100-noka-browser"));
        assert!(names.contains("sse-c10-r10-p100-ka-minimal-h2c"));
        assert!(names.contains("ws-c10-r10-p100-ka-minimal-h2c"));
        let h2 = points.iter().find(|p| p.name().ends_with("h2c")).unwrap();
        let c = h2.config("http://127.0.0.1:1".parse().unwrap(), &[]);
        assert_eq!((c.http, c.tls), (HttpVersion::Http2, false));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let bad = SPEC.replace("\"browser\"", "\"firefox\"");
        let spec: SweepSpec = toml::from_str(&bad).expect("parses");
        let err = spec.points().expect_err("bad profile").to_string();
        assert!(err.contains("firefox"), "{err}");
        let unknown = format!("{SPEC}\nbogus = 1\n");
        assert!(toml::from_str::<SweepSpec>(&unknown).is_err());
    }

    #[test]
    fn rtt_and_loss_axes_make_link_points_and_bad_values_are_named() {
        let spec = format!(
            "{SPEC}\n[[matrix]]\ntransports = [\"ws\"]\nclients = [10]\nrate = [10]\nrtt = [\"0ms\", \"50ms\"]\nloss = [\"0%\", \"1%\"]\n"
        );
        let spec: SweepSpec = toml::from_str(&spec).expect("parses");
        let points = spec.points().expect("points");
        let linked: Vec<&Point> = points.iter().filter(|p| p.link.is_some()).collect();
        assert_eq!(linked.len(), 4);
        let names: BTreeSet<String> = linked.iter().map(|p| p.name()).collect();
        assert!(
            names.contains("ws-c10-r10-p100-ka-minimal-rtt50ms-loss1pct"),
            "{names:?}"
        );
        assert!(names.contains("ws-c10-r10-p100-ka-minimal-rtt0ms-loss0pct"));
        let p = linked
            .iter()
            .find(|p| p.name().contains("rtt50ms-loss1pct"))
            .unwrap();
        let c = p
            .config(placeholder_target(), &[])
            .link
            .expect("config.link");
        assert_eq!((c.rtt_ms, c.loss_ratio), (50.0, 0.01));
        // The loopback point of the same variables is another point.
        assert!(points
            .iter()
            .any(|p| p.name() == "ws-c10-r10-p100-ka-minimal"));
        // One axis alone: the other is 0.
        let only_loss =
            "[[matrix]]\ntransports = [\"ws\"]\nclients = [1]\nrate = [1]\nloss = [\"5%\"]\n";
        let spec: SweepSpec = toml::from_str(only_loss).expect("parses");
        let link = spec.points().unwrap()[0].link.clone().unwrap();
        assert_eq!((link.rtt, link.loss), (Duration::ZERO, 0.05));
        for (bad, field) in [("rtt = [\"-5ms\"]", "rtt"), ("loss = [\"150%\"]", "loss")] {
            let text =
                format!("[[matrix]]\ntransports = [\"ws\"]\nclients = [1]\nrate = [1]\n{bad}\n");
            let spec: SweepSpec = toml::from_str(&text).expect("parses");
            let err = spec.points().expect_err(bad).to_string();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }

    #[test]
    fn a_point_is_done_only_when_its_json_parses() {
        let dir = std::env::temp_dir().join(format!("pushlab-sweep-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("p.json");
        fs::write(&path, b"{\"truncated\":").expect("write");
        assert!(!is_done(&path));
        let run =
            crate::report::fixture::run(crate::report::fixture::scenario(1.0), &[Transport::Ws]);
        fs::write(&path, serde_json::to_vec(&run).expect("json")).expect("write");
        assert!(is_done(&path));
        let _ = fs::remove_dir_all(&dir);
    }
}
