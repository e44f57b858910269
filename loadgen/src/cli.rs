//! The command line: `run`, `merge`, and the hidden `serve` and `schema`. Raw flags become a
//! checked [`RunConfig`] in [`RunArgs::into_config`] before anything runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    parse_duration, parse_shard, parse_source_ips, parse_start_at, parse_transports, HeaderProfile,
    HttpVersion, RunConfig, ShardRole, Target, TargetProfile,
};
use crate::error::ConfigError;

/// Drives subscribers of every push transport against a server and measures bytes, latency
/// and connections on the wire.
#[derive(Parser, Debug)]
#[command(name = "pushlab-loadgen", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run transports against a target and write a result.
    Run(RunArgs),
    /// Merge results of runs made on several machines into one.
    Merge(MergeArgs),
    /// Start a server, run every transport and its variants, write results/latest/ (JSON,
    /// charts, REPORT.md) and print the comparison.
    Compare(crate::compare::CompareArgs),
    /// Add clients step by step per transport until a latency SLO or any loss breaks; report
    /// the largest count held.
    Capacity(crate::capacity::CapacityArgs),
    /// Run a matrix of points from a spec file, one JSON per point (resumable).
    Sweep(crate::sweep::SweepArgs),
    /// Read every result JSON under DIR and write charts and REPORT.md.
    Report(crate::report::ReportArgs),
    /// Run a pushlab-server in this process (used by `compare` and tests for server cost).
    #[command(hide = true)]
    Serve(ServeArgs),
    /// Print the JSON Schema of result files.
    #[command(hide = true)]
    Schema,
    /// A packet-level network link (RTT, jitter, loss, rate) between two network namespaces:
    /// `link up`, or `link [FLAGS] [--server-cmd CMD2] -- CMD ARGS`. Needs root.
    Link(crate::link::shell::LinkArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The server to measure; several (repeat the flag or separate with commas) are replicas
    /// of one server sharing one feed: subscribers go round-robin over them, the publisher
    /// posts to the first, the server's cost is summed over them.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    pub target: Vec<String>,
    /// Transports to run: poll,longpoll,sse,stream,ws or all.
    #[arg(long, default_value = "all")]
    pub transports: String,
    /// Subscribers per transport.
    #[arg(long, default_value_t = 10)]
    pub clients: u64,
    /// Measured window (after warmup): 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Publishing before the measured window (delivered, not sampled).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Idle part after connect (connections open, nothing published): the server's cost per
    /// idle connection-second is measured over it.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub idle: Duration,
    /// Messages published per second (per topic).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Bytes of data per message (at least 19: the send-time stamp).
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Short-poll interval.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Long-poll hold time asked of the server, seconds.
    #[arg(long, default_value_t = 30)]
    pub longpoll_timeout: u64,
    /// One topic for every transport (default: a fresh lab-<transport>-<random> each).
    #[arg(long)]
    pub topic: Option<String>,
    /// New connections per second while subscribers connect (default: all at once).
    #[arg(long)]
    pub ramp: Option<f64>,
    /// Reuse connections for poll and long poll.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub keep_alive: OnOff,
    /// Request headers: what curl sends, or what a desktop Chromium sends.
    #[arg(long, value_enum, default_value_t = HeaderProfile::Minimal)]
    pub header_profile: HeaderProfile,
    /// HTTP version: 1.1 (by hand), or 2 (hyper's HTTP/2 client; h2c with prior knowledge).
    #[arg(long, value_enum, default_value_t = HttpVersion::Http11)]
    pub http: HttpVersion,
    /// Subscribers over TLS.
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    pub tls: OnOff,
    /// With --tls on: trust the server whose certificate's SPKI has this SHA-256 (base64, as
    /// `pushlab-server --tls-self-signed` prints it).
    #[arg(long, conflicts_with = "tls_ca")]
    pub tls_spki: Option<String>,
    /// With --tls on: trust the certificates (PEM) in this file as roots.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Subscribers per HTTP/2 connection (1: one connection each, as separate browsers).
    #[arg(long, default_value_t = 1)]
    pub streams_per_connection: u32,
    /// Local addresses to spread client sockets over: 127.0.0.2-127.0.0.40 or a comma list.
    #[arg(long)]
    pub source_ips: Option<String>,
    /// Write the JSON result here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run all transports at once instead of one after another.
    #[arg(long)]
    pub concurrent: bool,
    /// The target's dialect.
    #[arg(long, value_enum, default_value_t = TargetProfile::Pushlab)]
    pub target_profile: TargetProfile,
    /// For a target without /metrics (nginx-nchan): read server CPU and RSS of this process
    /// and its descendants from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// No progress display and no table (the JSON is still written).
    #[arg(long)]
    pub quiet: bool,
    /// Test hook: each subscriber cuts its connection once after N messages.
    #[arg(long, hide = true)]
    pub drop_after: Option<u64>,
    /// Spread the clients over N child processes (each with its own open-file budget and
    /// source address), started together and merged into one result.
    #[arg(long)]
    pub shards: Option<u32>,
    /// This process is shard I of N (0-based) of a run spread over several hosts: it takes its
    /// slice of --clients; shard 0 alone publishes and scrapes. Needs --start-at.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Connect at this wall-clock time (Unix seconds or RFC 3339 UTC, e.g.
    /// 2026-11-29T17:00:00Z), then idle and publish on a schedule fixed from it, so processes
    /// on several hosts run together.
    #[arg(long, value_parser = parse_start_at)]
    pub start_at: Option<u64>,
    /// With --start-at: time allowed to connect every subscriber (default 10 s + 2 ms per
    /// client of this process, or the --ramp time + 10 s).
    #[arg(long, value_parser = parse_duration)]
    pub connect_budget: Option<Duration>,
    /// Topics are lab-<transport>-SUFFIX (shards of one run share them).
    #[arg(long, hide = true)]
    pub topic_suffix: Option<String>,
    /// Shards of one run: shard 0 writes what it really published here (JSON, per topic) and
    /// the others read it, so a publish that failed is not expected by anyone.
    #[arg(long, hide = true)]
    pub published_file: Option<std::path::PathBuf>,
    /// Measure through an emulated link (needs root): rtt=100ms,loss=1%,rate=10mbit,jitter=5ms
    /// (keys: rtt, jitter, loss, loss-burst, rate, queue, reorder, seed). A pushlab-server
    /// child and the publisher run on the server side, the subscribers on the client side.
    #[arg(long, value_parser = crate::link::parse_link, conflicts_with_all = ["target", "server_pid", "source_ips", "target_profile", "shards", "shard"])]
    pub link: Option<crate::link::LinkSpec>,
}

impl RunArgs {
    /// Checks every flag and resolves the target.
    pub fn into_config(self) -> Result<RunConfig, ConfigError> {
        let targets = self
            .target
            .iter()
            .map(|t| t.trim().parse::<Target>())
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = targets.first().cloned() else {
            return Err(ConfigError::Target("no target given".into()));
        };
        let mut c = RunConfig::new(first);
        c.targets = targets;
        c.transports = parse_transports(&self.transports)?;
        c.clients = self.clients;
        c.start_at_ns = self.start_at;
        c.topic_suffix = self.topic_suffix;
        c.published_file = self.published_file;
        if let Some((index, count)) = self.shard {
            if count as u64 > self.clients {
                return Err(ConfigError::Invalid {
                    flag: "--shard",
                    why: format!(
                        "{index}/{count}: more shards than --clients {}",
                        self.clients
                    ),
                });
            }
            let (client_offset, clients) = crate::shard::slice(self.clients, count, index);
            c.clients = clients;
            c.shard = Some(ShardRole {
                index,
                count,
                client_offset,
                total_clients: self.clients,
            });
        }
        c.connect_budget = self.connect_budget.unwrap_or_else(|| {
            let connecting = match self.ramp {
                Some(r) if r > 0.0 => Duration::from_secs_f64((c.clients as f64 / r).min(1e6)),
                _ => Duration::from_millis(2 * c.clients),
            };
            Duration::from_secs(10) + connecting
        });
        c.duration = self.duration;
        c.warmup = self.warmup;
        c.idle = self.idle;
        c.rate_per_s = self.rate;
        c.payload_bytes = self.payload_bytes;
        c.poll_interval = self.poll_interval;
        c.longpoll_timeout_s = self.longpoll_timeout;
        c.topic = self.topic;
        c.ramp_per_s = self.ramp;
        c.keep_alive = self.keep_alive == OnOff::On;
        c.header_profile = self.header_profile;
        c.http = self.http;
        c.tls = self.tls == OnOff::On;
        c.tls_trust = match (self.tls_spki, self.tls_ca) {
            (Some(pin), _) => Some(crate::tls::TlsTrust::SpkiSha256(pin)),
            (None, Some(file)) => Some(crate::tls::TlsTrust::CaFile(file)),
            (None, None) => None,
        };
        c.streams_per_connection = self.streams_per_connection;
        c.source_ips = match self.source_ips.as_deref() {
            None => Vec::new(),
            Some(s) => parse_source_ips(s).map_err(|why| ConfigError::Invalid {
                flag: "--source-ips",
                why,
            })?,
        };
        if let Some(bad) = c.source_ips.iter().find(|ip| !ip.is_loopback()) {
            return Err(ConfigError::Invalid {
                flag: "--source-ips",
                why: format!("{bad} is not a loopback address"),
            });
        }
        c.concurrent = self.concurrent;
        c.target_profile = self.target_profile;
        c.server_pid = self.server_pid;
        c.progress = !self.quiet;
        c.drop_after_messages = self.drop_after;
        c.command = std::env::args().collect();
        c.check()?;
        Ok(c)
    }
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Result files to merge.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged result.
    #[arg(long)]
    pub out: PathBuf,
}

/// `serve`'s flags: pushlab-server's own ([`pushlab_server::ServerArgs`], checked there) and
/// where to listen. The ticker is off unless `--tick-rate` says otherwise (the library's
/// default; the `pushlab-server` binary alone turns it on by default).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub server: pushlab_server::ServerArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(args: &[&str]) -> ServeArgs {
        let cli =
            Cli::try_parse_from(["pushlab-loadgen", "serve"].iter().chain(args).copied()).unwrap();
        match cli.command {
            Command::Serve(s) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn serve_takes_the_server_flags_with_the_ticker_off() {
        let s = serve_args(&[]);
        assert_eq!(s.bind, "127.0.0.1:0".parse().unwrap());
        let c = s.server.into_config().unwrap();
        assert_eq!(c.tick_rate, 0.0);
        let c = serve_args(&["--tick-rate", "5", "--max-headers", "10"])
            .server
            .into_config()
            .unwrap();
        assert_eq!((c.tick_rate, c.max_headers), (5.0, 10));
        let why = serve_args(&["--history", "0"])
            .server
            .into_config()
            .unwrap_err();
        assert!(why.to_string().starts_with("--history"), "{why}");
    }

    fn parse(args: &[&str]) -> Result<RunConfig, String> {
        let cli = Cli::try_parse_from(["pushlab-loadgen", "run"].iter().chain(args).copied())
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(r) => r.into_config().map_err(|e| e.to_string()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_become_settings() {
        let c = parse(&[
            "--target",
            "http://127.0.0.1:9",
            "--transports",
            "ws,sse",
            "--duration",
            "1500ms",
            "--keep-alive",
            "off",
            "--header-profile",
            "browser",
            "--source-ips",
            "127.0.0.2-127.0.0.3",
        ])
        .unwrap();
        assert_eq!(c.transports.len(), 2);
        assert_eq!(c.duration, Duration::from_millis(1500));
        assert!(!c.keep_alive);
        assert_eq!(c.header_profile, HeaderProfile::Browser);
        assert_eq!(c.source_ips.len(), 2);
    }

    #[test]
    fn bad_flags_say_which() {
        assert!(parse(&["--transports", "smoke"])
            .unwrap_err()
            .contains("smoke"));
        assert!(parse(&["--duration", "ten"])
            .unwrap_err()
            .contains("duration"));
        assert!(parse(&["--source-ips", "10.0.0.1"])
            .unwrap_err()
            .contains("--source-ips"));
        assert!(parse(&["--target", "ftp://x"])
            .unwrap_err()
            .contains("--target"));
        assert!(parse(&["--target-profile", "nchan", "--topic", "x"])
            .unwrap_err()
            .contains("nchan"));
        assert!(parse(&["--shard", "0/2", "--clients", "4"])
            .unwrap_err()
            .contains("needs --start-at"));
        assert!(parse(&["--start-at", "1700000000"])
            .unwrap_err()
            .contains("--concurrent"));
        assert!(parse(&[
            "--shard",
            "0/5",
            "--clients",
            "4",
            "--start-at",
            "1700000000"
        ])
        .unwrap_err()
        .contains("more shards than --clients 4"));
    }

    #[test]
    fn replicas_and_shards_become_settings() {
        let c = parse(&[
            "--target",
            "http://127.0.0.1:9,http://127.0.0.1:10",
            "--target",
            "http://127.0.0.1:11",
            "--transports",
            "ws",
            "--clients",
            "10",
            "--shard",
            "1/4",
            "--start-at",
            "2026-11-29T17:00:00Z",
        ])
        .unwrap();
        assert_eq!(c.targets.len(), 3);
        assert_eq!(c.target, c.targets[0]);
        let s = c.shard.clone().unwrap();
        assert_eq!(
            (s.index, s.client_offset, c.clients, s.total_clients),
            (1, 3, 3, 10)
        );
        assert!(!c.is_lead());
        assert_eq!(c.connect_budget, Duration::from_millis(10_006));
    }
}
