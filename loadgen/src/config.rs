//! Checked run settings. Raw flags (see [`crate::cli::RunArgs`]) are turned into a
//! [`RunConfig`] before anything runs, so a bad value is one clear error up front and never a
//! half-finished run.
//!
//! ```text
//! --duration 10s   --warmup 500ms   --poll-interval 1s   (also 2m, 1.5s, 250us)
//! --source-ips 127.0.0.2-127.0.0.40   or   127.0.0.2,127.0.0.3
//! --target http://127.0.0.1:8080
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use pushlab_proto::Transport;
use serde::Serialize;

use crate::error::ConfigError;

/// Request headers a subscriber sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeaderProfile {
    /// What curl sends: Host, User-Agent, Accept.
    Minimal,
    /// What a current desktop Chromium sends for fetch, EventSource and WebSocket, with a
    /// cookie of typical size (the classic ~871-byte poll figure).
    Browser,
}

impl HeaderProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderProfile::Minimal => "minimal",
            HeaderProfile::Browser => "browser",
        }
    }
}

/// The HTTP version subscribers speak (`--http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
pub enum HttpVersion {
    /// HTTP/1.1, spoken by hand (every byte attributed as it is parsed).
    #[value(name = "1.1")]
    #[serde(rename = "1.1")]
    Http11,
    /// HTTP/2 (hyper's client): with prior knowledge over cleartext TCP (h2c), or by ALPN
    /// over TLS. The bytes are split frame by frame ([`pushlab_proto::h2wire`]).
    #[value(name = "2")]
    #[serde(rename = "2")]
    Http2,
}

impl HttpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http11 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }

    /// The name a result's scenario carries: `http/1.1`, `h2c` (HTTP/2 over cleartext TCP) or
    /// `h2` (HTTP/2 over TLS), as ALPN names them (RFC 9113 §3.2).
    pub fn scenario_name(self, tls: bool) -> &'static str {
        match (self, tls) {
            (HttpVersion::Http11, _) => "http/1.1",
            (HttpVersion::Http2, false) => "h2c",
            (HttpVersion::Http2, true) => "h2",
        }
    }
}

/// Which server dialect the target speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TargetProfile {
    /// pushlab-server's endpoints (`/poll/{topic}`, `/publish/{topic}`, ...).
    Pushlab,
    /// nginx with the nchan module (`scripts/nchan/nginx.conf.template`; see `client::nchan`).
    Nchan,
}

impl TargetProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetProfile::Pushlab => "pushlab",
            TargetProfile::Nchan => "nchan",
        }
    }
}

/// `http://HOST:PORT`, resolved once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// As given, normalised (`http://127.0.0.1:8080`).
    pub url: String,
    /// The `Host` header value (`127.0.0.1:8080`).
    pub host_header: String,
    #[serde(serialize_with = "ser_display")]
    pub addr: SocketAddr,
}

fn ser_display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl FromStr for Target {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ConfigError::Target(format!("{s:?}: {why}"));
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| bad("must start with http:// (https is not supported)"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(bad("expected http://HOST:PORT with no path"));
        }
        let has_port = authority.parse::<SocketAddr>().is_ok()
            || (!authority.starts_with('[')
                && authority
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
        let with_port = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve: {e}")))?
            .next()
            .ok_or_else(|| bad("resolves to no address"))?;
        Ok(Target {
            url: format!("http://{with_port}"),
            host_header: with_port,
            addr,
        })
    }
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`, `250us`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use us, ms, s, m, h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

/// Parses `127.0.0.2-127.0.0.40` (inclusive range of IPv4) or a comma list of addresses.
pub fn parse_source_ips(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a
                .trim()
                .parse()
                .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
            let b: Ipv4Addr = b
                .trim()
                .parse()
                .map_err(|_| format!("{b:?} is not an IPv4 address"))?;
            let (lo, hi) = (u32::from(a), u32::from(b));
            if lo > hi {
                return Err(format!("range {part:?} runs backwards"));
            }
            if hi - lo >= 65_536 {
                return Err(format!("range {part:?} holds more than 65536 addresses"));
            }
            out.extend((lo..=hi).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
        } else {
            out.push(
                part.parse()
                    .map_err(|_| format!("{part:?} is not an IP address"))?,
            );
        }
    }
    if out.is_empty() {
        return Err("no address given".into());
    }
    Ok(out)
}

/// Parses `poll,longpoll,sse,stream,ws` or `all`, keeping report order and dropping repeats.
pub fn parse_transports(s: &str) -> Result<Vec<Transport>, ConfigError> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Transport::ALL.to_vec());
    }
    let mut out: Vec<Transport> = Vec::new();
    for name in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let t: Transport =
            name.parse()
                .map_err(|e: pushlab_proto::transport::UnknownTransport| {
                    ConfigError::Transport(e.to_string())
                })?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err(ConfigError::Transport("no transport given".into()));
    }
    out.sort();
    Ok(out)
}

/// This process's place among the shards of one run (`--shard I/N`, `--start-at`): see
/// [`crate::shard`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShardRole {
    /// 0-based; shard 0 alone publishes and scrapes the server.
    pub index: u32,
    pub count: u32,
    /// Global id of this shard's first client (clients `offset..offset + clients`).
    pub client_offset: u64,
    /// Every shard's clients across all shards (the run's `--clients`).
    pub total_clients: u64,
}

impl ShardRole {
    /// Whether this process publishes and scrapes (shard 0).
    pub fn is_lead(&self) -> bool {
        self.index == 0
    }
}

/// Parses `--shard I/N` (0-based I < N).
pub fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected I/N, e.g. 0/4"))?;
    let i: u32 = i
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: I is not a number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: N is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("{s:?}: needs 0 <= I < N"));
    }
    Ok((i, n))
}

/// Parses `--start-at`: Unix seconds (`1764432000`, `1764432000.250`) or RFC 3339 UTC
/// (`2026-11-29T17:00:00Z`), as nanoseconds since the Unix epoch.
pub fn parse_start_at(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 {
            return Ok((secs * 1e9) as u64);
        }
        return Err(format!("{s:?}: not a time"));
    }
    let bad = || format!("{s:?}: expected Unix seconds or YYYY-MM-DDTHH:MM:SS[.fff]Z");
    let rest = t.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = rest.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let h: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3
        || h.len() != 3
        || !(1..=12).contains(&d[1])
        || !(1..=31).contains(&d[2])
        || h[0] > 23
        || h[1] > 59
        || h[2] > 60
    {
        return Err(bad());
    }
    // Howard Hinnant's days-from-civil (the inverse of net::rfc3339).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1])
    } else {
        (d[0], d[1])
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2];
    let frac_ns = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse::<u64>().map_err(|_| bad())?
    };
    u64::try_from(secs)
        .map(|s| s * 1_000_000_000 + frac_ns)
        .map_err(|_| bad())
}

/// Everything one run needs, checked.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// The first of [`RunConfig::targets`]: the publisher posts here and topics are probed
    /// here.
    pub target: Target,
    /// Every target (one per server replica); subscriber `k` (global id) connects to
    /// `targets[k % len]`. The server's cost is scraped from each distinct address and summed.
    pub targets: Vec<Target>,
    /// This process is one shard of a run (`--shard`), or `None`.
    pub shard: Option<ShardRole>,
    /// Wall-clock start (ns since the Unix epoch, `--start-at`): subscribers connect then; the
    /// idle part and the publisher then follow on a fixed schedule from it (see `run::phase`).
    pub start_at_ns: Option<u64>,
    /// Topics are `lab-<transport>-SUFFIX` (shards of one run share it); `None`: random.
    pub topic_suffix: Option<String>,
    /// Shards: where shard 0 hands the others what it published ([`crate::run::handoff`]).
    #[serde(skip)]
    pub published_file: Option<std::path::PathBuf>,
    /// With `start_at_ns`: how long after it every subscriber must be connected.
    #[serde(rename = "connect_budget_s", serialize_with = "ser_secs")]
    pub connect_budget: Duration,
    pub transports: Vec<Transport>,
    /// Subscribers per transport.
    pub clients: u64,
    /// Measured window, after warmup.
    #[serde(rename = "duration_s", serialize_with = "ser_secs")]
    pub duration: Duration,
    #[serde(rename = "warmup_s", serialize_with = "ser_secs")]
    pub warmup: Duration,
    /// The idle part after connect: connections open, nothing published (what a connection
    /// costs the server while there is no news). One poll interval by default.
    #[serde(rename = "idle_s", serialize_with = "ser_secs")]
    pub idle: Duration,
    pub rate_per_s: f64,
    pub payload_bytes: usize,
    #[serde(rename = "poll_interval_s", serialize_with = "ser_secs")]
    pub poll_interval: Duration,
    /// Long-poll hold time asked of the server (`timeout=`), seconds.
    pub longpoll_timeout_s: u64,
    /// A fixed topic for every transport; `None`: a fresh `lab-<transport>-<random>` each.
    pub topic: Option<String>,
    /// New connections per second while clients connect; `None`: all at once.
    pub ramp_per_s: Option<f64>,
    pub keep_alive: bool,
    pub header_profile: HeaderProfile,
    /// The HTTP version subscribers speak.
    pub http: HttpVersion,
    /// Subscribers over TLS.
    pub tls: bool,
    /// What a TLS subscriber trusts (required with `tls`).
    #[serde(serialize_with = "ser_trust")]
    pub tls_trust: Option<crate::tls::TlsTrust>,
    /// Subscribers sharing one HTTP/2 connection (1: each has its own, as separate browsers).
    pub streams_per_connection: u32,
    /// Local addresses client sockets bind to, round-robin (empty: the kernel's choice).
    pub source_ips: Vec<IpAddr>,
    /// Run all transports at once rather than one after another.
    pub concurrent: bool,
    pub target_profile: TargetProfile,
    /// A target without `/metrics` is costed from this process tree in `/proc`.
    pub server_pid: Option<u32>,
    /// Draw live progress (only honoured when stdout is a terminal).
    pub progress: bool,
    /// Test hook: every subscriber drops its connection abruptly once, after this many
    /// delivered messages, then resumes from its cursor.
    pub drop_after_messages: Option<u64>,
    /// The target runs inside this process (tests): its CPU and RSS include the loadgen's.
    pub same_process_server: bool,
    /// The command line, for the result file.
    pub command: Vec<String>,
    /// The emulated link the run went through (`--link`); absent from the result without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkConditions>,
}

/// The link conditions of a run through `--link`, as recorded in the result's `config.link`
/// (each direction has them; see [`crate::link::LinkSpec`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LinkConditions {
    /// Round-trip time the link adds (half each way), milliseconds.
    pub rtt_ms: f64,
    /// Each one-way delay varies uniformly within ± this, milliseconds.
    pub jitter_ms: f64,
    /// Fraction of packets lost per direction, 0 to 1.
    pub loss_ratio: f64,
    /// Mean loss burst (Gilbert-Elliott), packets; absent: independent losses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_burst_packets: Option<f64>,
    /// Bottleneck rate per direction, bits of IP packet per second; absent: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_bit_per_s: Option<u64>,
    /// The bottleneck's drop-tail queue: `1000pkt` or `65536B`.
    pub queue: String,
    /// Jitter may reorder packets.
    pub reorder: bool,
    /// Seed of the loss and jitter draws.
    pub seed: u64,
    /// The link's MTU, bytes.
    pub mtu_bytes: u32,
}

impl From<&crate::link::LinkSpec> for LinkConditions {
    fn from(s: &crate::link::LinkSpec) -> Self {
        LinkConditions {
            rtt_ms: s.rtt.as_secs_f64() * 1e3,
            jitter_ms: s.jitter.as_secs_f64() * 1e3,
            loss_ratio: s.loss,
            loss_burst_packets: s.loss_burst_packets,
            rate_bit_per_s: s.rate_bit_per_s,
            queue: s.queue.to_string(),
            reorder: s.reorder,
            seed: s.seed,
            mtu_bytes: crate::link::spec::LINK_MTU_BYTES,
        }
    }
}

impl RunConfig {
    /// Checks `--http`, `--tls` and `--streams-per-connection` against the rest.
    fn check_http(&self) -> Result<(), ConfigError> {
        let bad = |flag: &'static str, why: &str| {
            Err(ConfigError::Invalid {
                flag,
                why: why.into(),
            })
        };
        if self.tls {
            if self.http != HttpVersion::Http2 {
                return bad(
                    "--tls",
                    "on needs --http 2 (HTTP/1.1 over TLS is not built in this loadgen yet)",
                );
            }
            let Some(trust) = &self.tls_trust else {
                return bad(
                    "--tls",
                    "on needs --tls-spki HASH (as pushlab-server --tls-self-signed prints it) or --tls-ca FILE",
                );
            };
            crate::tls::client_config(trust, &[b"h2"])?;
        } else if self.tls_trust.is_some() {
            return bad("--tls-spki/--tls-ca", "given without --tls on");
        }
        if self.http == HttpVersion::Http2 {
            if self.target_profile != TargetProfile::Pushlab {
                return bad(
                    "--http",
                    "2 is supported with --target-profile pushlab only",
                );
            }
            if self.transports.contains(&Transport::Ws) {
                return bad(
                    "--http",
                    "2 does not carry ws yet (WebSocket over HTTP/2 needs RFC 8441 extended CONNECT); pick --transports poll,longpoll,sse,stream",
                );
            }
            if !self.keep_alive {
                return bad(
                    "--keep-alive",
                    "off cannot be combined with --http 2 (HTTP/2 connections are persistent)",
                );
            }
        }
        if self.streams_per_connection != 1 {
            return bad(
                "--streams-per-connection",
                "only 1 is supported yet (each subscriber has its own connection)",
            );
        }
        Ok(())
    }
}

fn ser_trust<S: serde::Serializer>(
    t: &Option<crate::tls::TlsTrust>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&t.describe()),
        None => s.serialize_none(),
    }
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl RunConfig {
    /// Points the run at one server: `target` becomes the only entry of
    /// [`RunConfig::targets`] too (a config whose first target is not `target` is refused).
    pub fn set_target(&mut self, target: Target) {
        self.targets = vec![target.clone()];
        self.target = target;
    }

    /// A config with the issue's defaults against `target` (used by tests and `compare`).
    pub fn new(target: Target) -> RunConfig {
        RunConfig {
            targets: vec![target.clone()],
            target,
            shard: None,
            start_at_ns: None,
            topic_suffix: None,
            published_file: None,
            connect_budget: Duration::from_secs(10),
            transports: Transport::ALL.to_vec(),
            clients: 10,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            idle: Duration::from_secs(1),
            rate_per_s: 10.0,
            payload_bytes: 64,
            poll_interval: Duration::from_secs(1),
            longpoll_timeout_s: 30,
            topic: None,
            ramp_per_s: None,
            keep_alive: true,
            header_profile: HeaderProfile::Minimal,
            http: HttpVersion::Http11,
            tls: false,
            tls_trust: None,
            streams_per_connection: 1,
            source_ips: Vec::new(),
            concurrent: false,
            target_profile: TargetProfile::Pushlab,
            server_pid: None,
            progress: false,
            drop_after_messages: None,
            same_process_server: false,
            command: Vec::new(),
            link: None,
        }
    }

    /// Checks the settings against each other; every error names the flag to change.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |flag: &'static str, why: String| Err(ConfigError::Invalid { flag, why });
        if self.clients == 0 || self.clients > 1_000_000 {
            return bad(
                "--clients",
                format!("must be 1..=1000000, got {}", self.clients),
            );
        }
        if self.duration.is_zero() {
            return bad("--duration", "must be more than 0".into());
        }
        if !(self.rate_per_s > 0.0 && self.rate_per_s <= 1_000_000.0) {
            return bad(
                "--rate",
                format!(
                    "must be more than 0 and at most 1000000, got {}",
                    self.rate_per_s
                ),
            );
        }
        if self.payload_bytes < crate::publisher::STAMP_BYTES || self.payload_bytes > 1 << 20 {
            return bad(
                "--payload-bytes",
                format!(
                    "must be {}..=1048576 (the data carries a {}-digit send time), got {}",
                    crate::publisher::STAMP_BYTES,
                    crate::publisher::STAMP_BYTES,
                    self.payload_bytes
                ),
            );
        }
        if self.poll_interval < Duration::from_millis(1) {
            return bad("--poll-interval", "must be at least 1ms".into());
        }
        if !(1..=120).contains(&self.longpoll_timeout_s) {
            return bad("--longpoll-timeout", "must be 1..=120 seconds".into());
        }
        if let Some(t) = &self.topic {
            if !pushlab_proto::valid_topic(t) {
                return bad("--topic", format!("{t:?}: 1 to 64 of A-Z a-z 0-9 _ . -"));
            }
        }
        if let Some(r) = self.ramp_per_s {
            if !(r > 0.0 && r.is_finite()) {
                return bad(
                    "--ramp",
                    format!("must be more than 0 connections/s, got {r}"),
                );
            }
        }
        self.check_http()?;
        if self.target_profile == TargetProfile::Nchan && self.topic.is_some() {
            // The loadgen numbers nchan's messages from 1 and subscribers start at the
            // channel's oldest message: an old channel would mix in messages of earlier runs.
            return bad(
                "--topic",
                "cannot be used with --target-profile nchan (each transport needs a fresh channel)"
                    .into(),
            );
        }
        if self.transports.is_empty() {
            return Err(ConfigError::Transport("no transport given".into()));
        }
        if self.targets.first() != Some(&self.target) {
            return bad(
                "--target",
                "the first target is the one published to".into(),
            );
        }
        if self.start_at_ns.is_some() && self.transports.len() > 1 && !self.concurrent {
            // Phases one after another drain at their own pace: processes started together
            // would drift apart after the first. `--shards` runs one phase at a time instead.
            return bad(
                "--start-at",
                "with several transports needs --concurrent (or one run per transport)".into(),
            );
        }
        if self.shard.is_some() && self.start_at_ns.is_none() {
            return bad(
                "--shard",
                "needs --start-at so the shards start together".into(),
            );
        }
        Ok(())
    }

    /// Whether this process publishes and scrapes the server (not a follower shard).
    pub fn is_lead(&self) -> bool {
        self.shard.as_ref().is_none_or(ShardRole::is_lead)
    }

    /// The global id of this process's first client.
    pub fn client_offset(&self) -> u64 {
        self.shard.as_ref().map_or(0, |s| s.client_offset)
    }

    /// Subscribers open at once at the busiest moment.
    pub fn peak_clients(&self) -> u64 {
        if self.concurrent {
            self.clients * self.transports.len() as u64
        } else {
            self.clients
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "s", "10x", "-1s", "1e400s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_ips() {
        let ips = parse_source_ips("127.0.0.2-127.0.0.4").unwrap();
        assert_eq!(ips.len(), 3);
        assert_eq!(ips[2], "127.0.0.4".parse::<IpAddr>().unwrap());
        assert_eq!(parse_source_ips("127.0.0.2, 127.0.0.9").unwrap().len(), 2);
        assert!(parse_source_ips("127.0.0.4-127.0.0.2").is_err());
        assert!(parse_source_ips("nope").is_err());
        assert!(parse_source_ips("").is_err());
    }

    #[test]
    fn transports() {
        assert_eq!(parse_transports("all").unwrap(), Transport::ALL.to_vec());
        assert_eq!(
            parse_transports("ws,poll,ws").unwrap(),
            vec![Transport::Poll, Transport::Ws]
        );
        let e = parse_transports("poll,smoke").unwrap_err().to_string();
        assert!(e.contains("smoke"), "{e}");
    }

    #[test]
    fn shard_and_start_at_flags() {
        assert_eq!(parse_shard("1/4").unwrap(), (1, 4));
        for bad in ["4/4", "1", "a/2", "0/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_start_at("1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_start_at("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_start_at("2000-02-29T00:00:00.25Z").unwrap(),
            951_782_400_250_000_000
        );
        for bad in ["", "2023-13-01T00:00:00Z", "2023-11-14 22:13:20", "-5"] {
            assert!(parse_start_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets() {
        let t: Target = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.host_header, "127.0.0.1:8080");
        let t: Target = "http://127.0.0.1/".parse().unwrap();
        assert_eq!(t.addr.port(), 80);
        assert!("https://127.0.0.1:1".parse::<Target>().is_err());
        assert!("127.0.0.1:1".parse::<Target>().is_err());
        assert!("http://127.0.0.1:1/x".parse::<Target>().is_err());
    }

    #[test]
    fn checks_name_the_flag() {
        let mut c = RunConfig::new("http://127.0.0.1:1".parse().unwrap());
        c.clients = 0;
        assert!(c.check().unwrap_err().to_string().contains("--clients"));
        c.clients = 1;
        c.payload_bytes = 3;
        assert!(c
            .check()
            .unwrap_err()
            .to_string()
            .contains("--payload-bytes"));
        c.payload_bytes = 64;
        c.rate_per_s = 0.0;
        assert!(c.check().unwrap_err().to_string().contains("--rate"));
        c.rate_per_s = 1.0;
        assert!(c.check().is_ok());
    }
}
