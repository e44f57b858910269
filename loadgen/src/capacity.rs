//! `pushlab-loadgen capacity`: how many subscribers each transport holds at a latency SLO, the
//! figure websocket-shootout reports for WebSocket servers, here for all five on one server.
//!
//! ```text
//! pushlab-loadgen capacity --target http://127.0.0.1:8080 --transports ws,sse \
//!     --slo p99=250ms --rate 1 --step 1000 --max 10000 --out results/scale/capacity.json
//! per transport: run at STEP clients, 2 x STEP, ... up to --max; a step holds when every
//!   published message reached every subscriber once and in order (no loss, duplicate,
//!   reorder, nor a subscriber that could not subscribe) and the SLO's percentile is within
//!   its bound; the first step that does not hold ends the ladder ([`Ladder`]).
//! reports the largest count held, with that step's figures (JSON, `kind`
//!   "pushlab-capacity", and a table); `report` draws it as "clients held at the SLO".
//! ```
//!
//! Bounded: at most `--max / --step` steps per transport, and no step starts after
//! `--time-limit` (the transports not reached say so).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use pushlab_proto::result::{RunResult, TransportResult};
use pushlab_proto::Transport;
use serde::{Deserialize, Serialize};

use crate::cli::{OnOff, RunArgs};
use crate::config::{parse_duration, parse_transports, HeaderProfile, HttpVersion, TargetProfile};
use crate::error::{ConfigError, LoadgenError};

/// What a capacity file says it is (`kind`), so `report` tells it from a run result.
pub const KIND: &str = "pushlab-capacity";

/// The SLO: `pNN=DURATION` (`p50`, `p90`, `p99`, `p99.9`), latency at that percentile at most
/// the bound.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// 50, 90, 99 or 99.9.
    pub percentile: f64,
    pub bound_us: u64,
}

impl Slo {
    /// Parses `p99=250ms`.
    pub fn parse(s: &str) -> Result<Slo, String> {
        let (p, d) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected pNN=DURATION, e.g. p99=250ms"))?;
        let percentile = match p.trim() {
            "p50" => 50.0,
            "p90" => 90.0,
            "p99" => 99.0,
            "p99.9" | "p999" => 99.9,
            other => {
                return Err(format!(
                    "{other:?}: the percentile is p50, p90, p99 or p99.9"
                ))
            }
        };
        let bound = parse_duration(d)?;
        if bound.is_zero() {
            return Err(format!("{s:?}: the bound must be more than 0"));
        }
        Ok(Slo {
            percentile,
            bound_us: bound.as_micros() as u64,
        })
    }

    /// The percentile's latency of one entry, microseconds.
    pub fn latency_us(&self, t: &TransportResult) -> u64 {
        let l = &t.latency_us;
        match self.percentile {
            p if p <= 50.0 => l.p50,
            p if p <= 90.0 => l.p90,
            p if p <= 99.0 => l.p99,
            _ => l.p999,
        }
    }

    /// `p99<=250ms`.
    pub fn describe(&self) -> String {
        format!(
            "p{}<={}ms",
            self.percentile,
            crate::report::format::fmt_num(self.bound_us as f64 / 1000.0)
        )
    }
}

/// What one step showed, as the verdict needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepFigures {
    pub clients: u64,
    pub latency_us: u64,
    pub lost: u64,
    pub duplicate: u64,
    pub out_of_order: u64,
    /// Deliveries short of every client holding every published message (a client that could
    /// not subscribe is short of all of them).
    pub undelivered: u64,
}

impl StepFigures {
    /// From one transport entry of a step's result.
    pub fn of(slo: &Slo, t: &TransportResult) -> StepFigures {
        StepFigures {
            clients: t.clients,
            latency_us: slo.latency_us(t),
            lost: t.lost_messages,
            duplicate: t.duplicate_messages,
            out_of_order: t.out_of_order_messages,
            undelivered: (t.clients * t.published_messages).saturating_sub(t.delivered_messages),
        }
    }
}

/// Whether a step held, and if not, why (one line).
pub fn judge(slo: &Slo, f: &StepFigures) -> Result<(), String> {
    if f.lost + f.duplicate + f.out_of_order + f.undelivered > 0 {
        return Err(format!(
            "loss at {} clients: {} lost, {} duplicate, {} out of order, {} undelivered",
            f.clients, f.lost, f.duplicate, f.out_of_order, f.undelivered
        ));
    }
    if f.latency_us > slo.bound_us {
        return Err(format!(
            "SLO broken at {} clients: p{} {} ms > {} ms",
            f.clients,
            slo.percentile,
            crate::report::format::fmt_num(f.latency_us as f64 / 1000.0),
            crate::report::format::fmt_num(slo.bound_us as f64 / 1000.0)
        ));
    }
    Ok(())
}

/// The ladder of one transport: STEP, 2 x STEP, ... up to MAX (MAX itself last when it is not
/// a multiple), ending at the first step that breaks.
#[derive(Clone, Debug, PartialEq)]
pub struct Ladder {
    pub step: u64,
    pub max: u64,
    /// The largest count held so far.
    pub held: Option<u64>,
    /// Why the ladder ended early (a broken step, the time limit).
    pub ended: Option<String>,
}

impl Ladder {
    pub fn new(step: u64, max: u64) -> Ladder {
        Ladder {
            step,
            max,
            held: None,
            ended: None,
        }
    }

    /// The next count to try, or `None` when the ladder is over.
    pub fn next(&self) -> Option<u64> {
        if self.ended.is_some() {
            return None;
        }
        let n = match self.held {
            None => self.step.min(self.max),
            Some(h) if h >= self.max => return None,
            Some(h) => (h + self.step).min(self.max),
        };
        Some(n)
    }

    /// Records the outcome of the step at `clients`.
    pub fn record(&mut self, clients: u64, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.held = Some(clients),
            Err(why) => self.ended = Some(why),
        }
    }

    /// Why the ladder stopped where it did.
    pub fn reason(&self) -> String {
        match (&self.ended, self.held) {
            (Some(why), _) => why.clone(),
            (None, Some(h)) if h >= self.max => format!("held up to --max {}", self.max),
            (None, _) => "not finished".into(),
        }
    }
}

/// One step as the capacity file keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub clients: u64,
    pub held: bool,
    /// Why it did not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub delivered_messages: u64,
    pub lost_messages: u64,
    pub wire_bytes_per_message: f64,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub heap_bytes_per_connection: Option<f64>,
    /// The loadgen hit its own limit in this step: its figures may be the loadgen's.
    pub loadgen_saturated: bool,
}

impl StepRecord {
    fn of(t: &TransportResult, verdict: &Result<(), String>) -> StepRecord {
        let l = &t.latency_us;
        StepRecord {
            clients: t.clients,
            held: verdict.is_ok(),
            reason: verdict.clone().err(),
            p50_us: l.p50,
            p99_us: l.p99,
            p999_us: l.p999,
            max_us: l.max,
            delivered_messages: t.delivered_messages,
            lost_messages: t.lost_messages,
            wire_bytes_per_message: if t.delivered_messages > 0 {
                (t.wire_bytes_up + t.wire_bytes_down) as f64 / t.delivered_messages as f64
            } else {
                0.0
            },
            server_cpu_us_per_delivery: t.server_cpu_us_per_delivery,
            heap_bytes_per_connection: t.server.as_ref().and_then(|s| s.heap_bytes_per_connection),
            loadgen_saturated: t.loadgen.is_some_and(|l| l.saturated),
        }
    }

    /// A step whose run failed (no result).
    fn failed(clients: u64, why: String) -> StepRecord {
        StepRecord {
            clients,
            held: false,
            reason: Some(why),
            p50_us: 0,
            p99_us: 0,
            p999_us: 0,
            max_us: 0,
            delivered_messages: 0,
            lost_messages: 0,
            wire_bytes_per_message: 0.0,
            server_cpu_us_per_delivery: None,
            heap_bytes_per_connection: None,
            loadgen_saturated: false,
        }
    }
}

/// One transport's capacity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransportCapacity {
    pub transport: Transport,
    /// The largest count held (0: not even the first step).
    pub held_clients: u64,
    /// Why the ladder stopped.
    pub reason: String,
    /// The figures of the step held at `held_clients`.
    pub at_held: Option<StepRecord>,
    pub steps: Vec<StepRecord>,
}

/// A capacity file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapacityResult {
    /// Always [`KIND`].
    pub kind: String,
    pub started_at: String,
    pub finished_at: String,
    pub command: Vec<String>,
    pub slo: Slo,
    pub rate_per_s: f64,
    pub step: u64,
    pub max: u64,
    pub duration_s: f64,
    pub transports: Vec<TransportCapacity>,
}

/// The `capacity` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct CapacityArgs {
    /// The server (several: replicas, as for `run`).
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    pub target: Vec<String>,
    /// Transports to size: poll,longpoll,sse,stream,ws or all.
    #[arg(long, default_value = "all")]
    pub transports: String,
    /// The latency bound a step must keep: p50, p90, p99 or p99.9 = a duration.
    #[arg(long, default_value = "p99=250ms", value_parser = Slo::parse)]
    pub slo: Slo,
    /// Messages published per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Clients added per step.
    #[arg(long, default_value_t = 100)]
    pub step: u64,
    /// The largest count tried.
    #[arg(long, default_value_t = 1000)]
    pub max: u64,
    /// Measured window of each step.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Publishing before each step's window.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Short-poll interval.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Bytes of data per message.
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// New connections per second while a step connects (default: all at once).
    #[arg(long)]
    pub ramp: Option<f64>,
    /// Run each step as N shards (child processes), for counts past one process's files.
    #[arg(long)]
    pub shards: Option<u32>,
    /// Local addresses to spread client sockets over (loopback only).
    #[arg(long)]
    pub source_ips: Option<String>,
    /// No step starts after this much time in all.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub time_limit: Duration,
    /// Write the capacity JSON here (`report` draws it when it lies under its directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No table.
    #[arg(long)]
    pub quiet: bool,
}

impl CapacityArgs {
    /// Checks the flags that are capacity's own.
    pub fn check(&self) -> Result<Vec<Transport>, ConfigError> {
        let bad = |flag: &'static str, why: String| Err(ConfigError::Invalid { flag, why });
        if self.step == 0 {
            return bad("--step", "must be at least 1".into());
        }
        if self.max < self.step {
            return bad(
                "--max",
                format!("{} is less than --step {}", self.max, self.step),
            );
        }
        if self.max / self.step > 1000 {
            return bad(
                "--max",
                format!(
                    "{} / --step {} is more than 1000 steps",
                    self.max, self.step
                ),
            );
        }
        parse_transports(&self.transports)
    }

    /// The `run` of one step.
    fn step_args(&self, t: Transport, clients: u64) -> RunArgs {
        RunArgs {
            target: self.target.clone(),
            transports: t.as_str().into(),
            clients,
            duration: self.duration,
            warmup: self.warmup,
            idle: Duration::from_millis(500),
            rate: self.rate,
            payload_bytes: self.payload_bytes,
            poll_interval: self.poll_interval,
            longpoll_timeout: 30,
            topic: None,
            ramp: self.ramp,
            keep_alive: OnOff::On,
            header_profile: HeaderProfile::Minimal,
            http: HttpVersion::Http11,
            tls: OnOff::Off,
            tls_spki: None,
            tls_ca: None,
            streams_per_connection: 1,
            source_ips: self.source_ips.clone(),
            out: None,
            concurrent: false,
            target_profile: TargetProfile::Pushlab,
            server_pid: None,
            quiet: true,
            drop_after: None,
            shards: self.shards,
            shard: None,
            start_at: None,
            connect_budget: None,
            topic_suffix: None,
            published_file: None,
            link: None,
        }
    }
}

async fn run_step(args: RunArgs) -> Result<RunResult, LoadgenError> {
    match args.shards {
        Some(n) => crate::shard::run_sharded(&args, n).await,
        None => crate::run(args.into_config()?).await,
    }
}

/// Climbs every transport's ladder and returns the capacity file.
pub async fn capacity(
    args: &CapacityArgs,
    command: Vec<String>,
) -> Result<CapacityResult, LoadgenError> {
    let transports = args.check()?;
    // Every flag a step uses, checked once before anything runs.
    args.step_args(transports[0], args.step).into_config()?;
    let started = SystemTime::now();
    let clock = Instant::now();
    let mut out = Vec::new();
    for &t in &transports {
        let mut ladder = Ladder::new(args.step, args.max);
        let mut steps = Vec::new();
        let mut at_held = None;
        while let Some(n) = ladder.next() {
            if clock.elapsed() >= args.time_limit {
                ladder.ended = Some(format!(
                    "--time-limit {:?} reached before {n} clients",
                    args.time_limit
                ));
                break;
            }
            match run_step(args.step_args(t, n)).await {
                Ok(r) => {
                    let entry =
                        r.transports
                            .iter()
                            .find(|e| e.transport == t)
                            .ok_or_else(|| {
                                LoadgenError::Other(format!(
                                    "the step at {n} clients has no {t} entry"
                                ))
                            })?;
                    let verdict = judge(&args.slo, &StepFigures::of(&args.slo, entry));
                    let record = StepRecord::of(entry, &verdict);
                    if verdict.is_ok() {
                        at_held = Some(record.clone());
                    }
                    steps.push(record);
                    ladder.record(n, verdict);
                }
                Err(LoadgenError::Config(e)) => return Err(LoadgenError::Config(e)),
                Err(e) => {
                    let why = format!("the run at {n} clients failed: {e}");
                    steps.push(StepRecord::failed(n, why.clone()));
                    ladder.record(n, Err(why));
                }
            }
        }
        out.push(TransportCapacity {
            transport: t,
            held_clients: ladder.held.unwrap_or(0),
            reason: ladder.reason(),
            at_held,
            steps,
        });
    }
    Ok(CapacityResult {
        kind: KIND.into(),
        started_at: crate::net::rfc3339(started),
        finished_at: crate::net::rfc3339(SystemTime::now()),
        command,
        slo: args.slo,
        rate_per_s: args.rate,
        step: args.step,
        max: args.max,
        duration_s: args.duration.as_secs_f64(),
        transports: out,
    })
}

/// The capacity table (markdown).
pub fn table(c: &CapacityResult) -> String {
    use crate::report::format::fmt_num;
    let mut s = format!(
        "Capacity at {} ({} msg/s, steps of {} up to {}, {} s per step)\n\n| transport | clients held | p50 ms | p99 ms | bytes/msg | server CPU us/delivery | stopped because |\n|---|---:|---:|---:|---:|---:|---|\n",
        c.slo.describe(),
        fmt_num(c.rate_per_s),
        c.step,
        c.max,
        fmt_num(c.duration_s)
    );
    for t in &c.transports {
        let h = t.at_held.as_ref();
        let ms =
            |f: fn(&StepRecord) -> u64| h.map_or("-".into(), |r| fmt_num(f(r) as f64 / 1000.0));
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            t.transport.label(),
            t.held_clients,
            ms(|r| r.p50_us),
            ms(|r| r.p99_us),
            h.map_or("-".into(), |r| fmt_num(r.wire_bytes_per_message)),
            h.and_then(|r| r.server_cpu_us_per_delivery)
                .map_or("-".into(), fmt_num),
            t.reason
        ));
    }
    s
}

/// `capacity` as the binary runs it.
pub async fn cli(args: &CapacityArgs, argv: &[String]) -> Result<CapacityResult, LoadgenError> {
    let c = capacity(args, argv.to_vec()).await?;
    if let Some(path) = &args.out {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LoadgenError::Io {
                context: format!("creating {}", dir.display()),
                error: e,
            })?;
        }
        let mut text = serde_json::to_string_pretty(&c).unwrap_or_default();
        text.push('\n');
        std::fs::write(path, text).map_err(|e| LoadgenError::Io {
            context: format!("writing {}", path.display()),
            error: e,
        })?;
    }
    if !args.quiet {
        println!("{}", table(&c));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(clients: u64, latency_us: u64) -> StepFigures {
        StepFigures {
            clients,
            latency_us,
            ..StepFigures::default()
        }
    }

    #[test]
    fn slo_flags() {
        let s = Slo::parse("p99=250ms").unwrap();
        assert_eq!((s.percentile, s.bound_us), (99.0, 250_000));
        assert_eq!(Slo::parse("p99.9=1s").unwrap().percentile, 99.9);
        for bad in ["p99", "p98=1s", "p99=0s", "p99=soon"] {
            assert!(Slo::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(s.describe(), "p99<=250ms");
    }

    #[test]
    fn a_step_holds_only_within_the_slo_and_without_loss() {
        let slo = Slo::parse("p99=250ms").unwrap();
        assert_eq!(judge(&slo, &clean(100, 250_000)), Ok(()));
        let e = judge(&slo, &clean(100, 250_001)).unwrap_err();
        assert!(e.starts_with("SLO broken at 100 clients: p99 250"), "{e}");
        let lossy = StepFigures {
            lost: 1,
            ..clean(100, 10)
        };
        assert!(judge(&slo, &lossy)
            .unwrap_err()
            .starts_with("loss at 100 clients: 1 lost"));
        let short = StepFigures {
            undelivered: 3,
            ..clean(100, 10)
        };
        assert!(judge(&slo, &short).unwrap_err().contains("3 undelivered"));
    }

    #[test]
    fn the_ladder_climbs_until_a_step_breaks_or_max() {
        let mut l = Ladder::new(20, 60);
        assert_eq!(l.next(), Some(20));
        l.record(20, Ok(()));
        assert_eq!(l.next(), Some(40));
        l.record(40, Ok(()));
        assert_eq!(l.next(), Some(60));
        l.record(60, Ok(()));
        assert_eq!(l.next(), None);
        assert_eq!(
            (l.held, l.reason()),
            (Some(60), "held up to --max 60".into())
        );

        let mut l = Ladder::new(20, 50);
        l.record(20, Ok(()));
        l.record(40, Ok(()));
        assert_eq!(l.next(), Some(50), "--max itself is the last step");
        l.record(50, Err("SLO broken at 50 clients".into()));
        assert_eq!(l.next(), None);
        assert_eq!(
            (l.held, l.reason()),
            (Some(40), "SLO broken at 50 clients".into())
        );

        let mut l = Ladder::new(100, 1000);
        l.record(100, Err("loss at 100 clients".into()));
        assert_eq!((l.next(), l.held), (None, None));
    }
}
