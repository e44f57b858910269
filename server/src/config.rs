//! Server settings, with the defaults the lab is measured with, and the flags that set them.
//!
//! [`ServerArgs`] (clap derive) is the one place the server's flags are declared and checked:
//! `pushlab-server` and `pushlab-loadgen serve` both flatten it and call
//! [`ServerArgs::into_config`], which gives a [`ServerConfig`] or a [`ConfigError`] naming the
//! flag:
//!
//! ```text
//! $ pushlab-server --idle-timeout 5 --heartbeat 15
//! error: --idle-timeout must exceed --heartbeat (15 s), or quiet streams would be cut, got 5 s
//! ```

use std::path::PathBuf;
use std::time::Duration;

use crate::tls::TlsSettings;

/// Everything [`crate::serve`] needs to know. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Messages kept per topic for resuming subscribers (`--history`).
    pub history: usize,
    /// Most messages in one poll or long-poll batch (`--max-batch`).
    pub max_batch: usize,
    /// How far (in messages) a stream or WebSocket subscriber may fall behind the newest
    /// message before it is moved forward with a gap notice. At most `history`.
    pub max_subscriber_lag: usize,
    /// Built-in ticker on topic `ticker`, messages per second; 0 turns it off.
    pub tick_rate: f64,
    /// Bytes of `data` in each ticker message.
    pub tick_bytes: usize,
    /// Open connections at most; past it new ones get 503 with Retry-After.
    pub max_connections: usize,
    /// Largest publish body or WebSocket message, in bytes (413 / close 1009 past it).
    pub max_message_bytes: usize,
    /// Topics at most (topics are made on first use).
    pub max_topics: usize,
    /// Time a client has to send a whole request head.
    pub header_read_timeout: Duration,
    /// Long-poll hold time when the request names none.
    pub default_longpoll_timeout: Duration,
    /// SSE comment heartbeat interval (also a chunked stream's, as an empty line).
    pub heartbeat_interval: Duration,
    /// How long shutdown waits for streams to end before it drops them.
    pub shutdown_grace: Duration,
    /// Bearer token that publishing needs (`--publish-token`); `None`: anyone may publish.
    pub publish_token: Option<String>,
    /// Web origins allowed to open WebSockets, publish and read with CORS
    /// (`--allowed-origins`, `*` for any); `None`: same-origin only. See [`crate::guard`].
    pub allowed_origins: Option<Vec<String>>,
    /// Open connections one client address may hold (`--max-connections-per-ip`).
    pub max_connections_per_ip: usize,
    /// Largest request head (URI and header fields) answered normally; past it 431.
    pub max_header_bytes: usize,
    /// Most header fields in a request; past it 431.
    pub max_headers: usize,
    /// A connection that moves no byte either way for this long, with no request being
    /// handled, is closed (idle HTTP/2, a streaming reader that stopped reading). Idle
    /// HTTP/1.1 keep-alive connections are closed sooner, by `header_read_timeout`.
    pub idle_timeout: Duration,
    /// The server pings each WebSocket this often.
    pub ws_ping_interval: Duration,
    /// A WebSocket that answers no ping (and takes no write) for this long is dead: closed.
    pub ws_pong_timeout: Duration,
    /// Publishes per second one connection may make (HTTP: 429 past it; WebSocket: the
    /// server stops reading that socket until a token is there). 0: unlimited.
    pub publish_rate_per_s: f64,
    /// Publishes a connection may make at once before `publish_rate_per_s` applies.
    pub publish_burst: u32,
    /// Bytes all retained messages together may be charged (`--max-retained-bytes`; see
    /// [`crate::feed::Entry::retained_bytes`]). Past it the oldest messages across topics are
    /// evicted (subscribers behind them get a gap notice).
    pub max_retained_bytes: u64,
    /// Redis URL of the backplane the feed is shared through (`--backplane`, see
    /// [`crate::backplane`]); `None`: the feed lives in this process alone.
    pub backplane: Option<String>,
    /// Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS,
    /// RFC 9113 §6.5.2); past it h2 refuses a stream with RST_STREAM REFUSED_STREAM.
    pub h2_max_concurrent_streams: u32,
    /// TLS on the listening port (`--tls-cert/--tls-key` or `--tls-self-signed`); `None`:
    /// cleartext only. Cleartext HTTP/1.1 and h2c keep working beside TLS (see [`crate::tls`]).
    pub tls: Option<TlsSettings>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl ServerConfig {
    /// The documented defaults (what `Default` gives), usable in constant contexts.
    pub const DEFAULT: ServerConfig = ServerConfig {
        history: 4096,
        max_batch: 1000,
        max_subscriber_lag: 4096,
        tick_rate: 0.0,
        tick_bytes: 64,
        max_connections: 50_000,
        max_message_bytes: 64 * 1024,
        max_topics: 10_000,
        header_read_timeout: Duration::from_secs(10),
        default_longpoll_timeout: Duration::from_secs(30),
        heartbeat_interval: Duration::from_secs(15),
        shutdown_grace: Duration::from_secs(4),
        publish_token: None,
        allowed_origins: None,
        max_connections_per_ip: 10_000,
        max_header_bytes: 16 * 1024,
        max_headers: 64,
        idle_timeout: Duration::from_secs(60),
        ws_ping_interval: Duration::from_secs(30),
        ws_pong_timeout: Duration::from_secs(30),
        publish_rate_per_s: 10_000.0,
        publish_burst: 10_000,
        max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
        backplane: None,
        h2_max_concurrent_streams: 256,
        tls: None,
    };
}

/// Default of `max_retained_bytes`: 256 MiB, which a small (1 GiB) machine can hold beside
/// the connections' own buffers.
pub const DEFAULT_MAX_RETAINED_BYTES: u64 = 256 * 1024 * 1024;

/// Long-poll `timeout` bounds, in seconds.
pub const LONGPOLL_TIMEOUT_RANGE_S: std::ops::RangeInclusive<u64> = 1..=120;

/// A flag value that cannot work; the message names the flag (`--history must be ...`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--{flag} {why}")]
pub struct ConfigError {
    /// The flag, without its leading `--`.
    pub flag: &'static str,
    /// What is wrong with its value, e.g. `must be at least 1, got 0`.
    pub why: String,
}

impl ConfigError {
    fn new(flag: &'static str, why: impl Into<String>) -> Self {
        ConfigError {
            flag,
            why: why.into(),
        }
    }
}

/// The server's flags, shared by `pushlab-server` and `pushlab-loadgen serve` through
/// `#[command(flatten)]` so the two cannot drift. Defaults are [`ServerConfig::default`]'s;
/// each binary adds its own `--bind` (and `pushlab-server` turns the ticker on by default).
/// [`ServerArgs::into_config`] checks every value.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Messages kept per topic for resuming subscribers (1 to 10,000,000).
    #[arg(long, default_value_t = DEFAULTS.history)]
    pub history: usize,
    /// Most messages in one poll or long-poll batch (1 to 1,000,000).
    #[arg(long, default_value_t = DEFAULTS.max_batch)]
    pub max_batch: usize,
    /// Messages a stream or WebSocket subscriber may lag before a gap notice moves it on
    /// (1 to --history; default: --history).
    #[arg(long)]
    pub max_subscriber_lag: Option<usize>,
    /// Built-in ticker on topic "ticker", messages per second (0: off; at most 1,000,000).
    #[arg(long, default_value_t = DEFAULTS.tick_rate)]
    pub tick_rate: f64,
    /// Bytes of data in each ticker message (at most --max-message-bytes).
    #[arg(long, default_value_t = DEFAULTS.tick_bytes)]
    pub tick_bytes: usize,
    /// Open connections at most; past it, 503 with Retry-After.
    #[arg(long, default_value_t = DEFAULTS.max_connections)]
    pub max_connections: usize,
    /// Largest message in bytes (413 on publish, close 1009 on WebSocket).
    #[arg(long, default_value_t = DEFAULTS.max_message_bytes)]
    pub max_message_bytes: usize,
    /// Most topics (made on first use).
    #[arg(long, default_value_t = DEFAULTS.max_topics)]
    pub max_topics: usize,
    /// Seconds a client has to send a whole request head.
    #[arg(long, default_value_t = DEFAULTS.header_read_timeout.as_secs_f64())]
    pub header_read_timeout: f64,
    /// Seconds between SSE/stream heartbeats.
    #[arg(long, default_value_t = DEFAULTS.heartbeat_interval.as_secs_f64())]
    pub heartbeat: f64,
    /// Bearer token that publishing needs (POST /publish, WebSocket text frames, POST /ticker);
    /// WebSockets may pass it as ?token=. Default (or empty): anyone may publish.
    #[arg(long, env = "PUSHLAB_PUBLISH_TOKEN")]
    pub publish_token: Option<String>,
    /// Web origins (comma-separated, e.g. https://lab.example,http://localhost:5173, or *)
    /// allowed to open WebSockets, publish and read with CORS. Default: same-origin only.
    #[arg(long, value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Open connections one client address may hold; past it, 503 (spread load generators
    /// over several source addresses past it).
    #[arg(long, default_value_t = DEFAULTS.max_connections_per_ip)]
    pub max_connections_per_ip: usize,
    /// Largest request head (URI and header fields) in bytes, at least 256; past it, 431.
    #[arg(long, default_value_t = DEFAULTS.max_header_bytes)]
    pub max_header_bytes: usize,
    /// Most header fields in a request; past it, 431 (4 to 100: hyper refuses more than 100).
    #[arg(long, default_value_t = DEFAULTS.max_headers)]
    pub max_headers: usize,
    /// Seconds a connection may move no byte (with no request running) before it is closed;
    /// must exceed --heartbeat.
    #[arg(long, default_value_t = DEFAULTS.idle_timeout.as_secs_f64())]
    pub idle_timeout: f64,
    /// Seconds between the server's WebSocket pings.
    #[arg(long, default_value_t = DEFAULTS.ws_ping_interval.as_secs_f64())]
    pub ws_ping_interval: f64,
    /// Seconds a WebSocket has to answer a ping (or take a write) before it is dropped.
    #[arg(long, default_value_t = DEFAULTS.ws_pong_timeout.as_secs_f64())]
    pub ws_pong_timeout: f64,
    /// Publishes per second one connection may make (HTTP: 429 past it; WebSocket: reading
    /// pauses). 0: unlimited.
    #[arg(long, default_value_t = DEFAULTS.publish_rate_per_s)]
    pub publish_rate: f64,
    /// Publishes one connection may make at once before --publish-rate applies (at least 1).
    #[arg(long, default_value_t = DEFAULTS.publish_burst)]
    pub publish_burst: u32,
    /// Bytes all retained messages together may be charged (3 x the encoded message + 256
    /// each), at least 1024; past it the oldest messages across topics are evicted, and
    /// subscribers behind them get a gap notice.
    #[arg(long, default_value_t = DEFAULTS.max_retained_bytes)]
    pub max_retained_bytes: u64,
    /// Share the feed with other replicas through Redis (redis://HOST:PORT[/DB]): a publish on
    /// any replica reaches the subscribers of all, with the same seq. Default: this process
    /// alone holds the feed. A replica that cannot reach Redis at start exits.
    #[arg(long, value_name = "URL")]
    pub backplane: Option<String>,
    /// Streams one HTTP/2 connection may have open at once (1 to 100,000; Chromium opens at
    /// most 100); past it a new stream is refused (RST_STREAM REFUSED_STREAM).
    #[arg(long, default_value_t = DEFAULTS.h2_max_concurrent_streams)]
    pub h2_max_concurrent_streams: u32,
    /// Serve TLS with this PEM certificate chain (leaf first); needs --tls-key. ALPN offers
    /// h2 and http/1.1; cleartext HTTP/1.1 and h2c keep working on the same port.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a certificate made at start for localhost, 127.0.0.1 and ::1; its
    /// SPKI SHA-256 (the pin a client checks) is printed on stderr and served at GET /tls.
    #[arg(long)]
    pub tls_self_signed: bool,
}

/// The defaults the flags show, as a constant so clap's `default_value_t` can read them.
const DEFAULTS: ServerConfig = ServerConfig::DEFAULT;

impl ServerArgs {
    /// Checks every flag and builds the settings; the first bad value is the error.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag: a count out of its range, a duration that is not a
    /// positive number of seconds, `--idle-timeout` not above `--heartbeat`, and so on (each
    /// flag's help gives its range).
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let history = in_range("history", self.history, 1, 10_000_000)?;
        let max_message_bytes = in_range("max-message-bytes", self.max_message_bytes, 1, 1 << 30)?;
        let config = ServerConfig {
            history,
            max_batch: in_range("max-batch", self.max_batch, 1, 1_000_000)?,
            max_subscriber_lag: match self.max_subscriber_lag {
                None => history,
                Some(lag) => in_range("max-subscriber-lag", lag, 1, history)?,
            },
            tick_rate: rate("tick-rate", self.tick_rate, 1e6)?,
            tick_bytes: in_range("tick-bytes", self.tick_bytes, 0, max_message_bytes)?,
            max_connections: in_range("max-connections", self.max_connections, 1, usize::MAX)?,
            max_message_bytes,
            max_topics: in_range("max-topics", self.max_topics, 1, usize::MAX)?,
            header_read_timeout: seconds("header-read-timeout", self.header_read_timeout)?,
            heartbeat_interval: seconds("heartbeat", self.heartbeat)?,
            publish_token: self.publish_token.filter(|t| !t.is_empty()),
            allowed_origins: self.allowed_origins.map(|list| {
                list.into_iter()
                    .map(|o| o.trim().to_string())
                    .filter(|o| !o.is_empty())
                    .collect()
            }),
            max_connections_per_ip: in_range(
                "max-connections-per-ip",
                self.max_connections_per_ip,
                1,
                usize::MAX,
            )?,
            max_header_bytes: in_range("max-header-bytes", self.max_header_bytes, 256, 1 << 20)?,
            max_headers: in_range("max-headers", self.max_headers, 4, 100)?,
            idle_timeout: seconds("idle-timeout", self.idle_timeout)?,
            ws_ping_interval: seconds("ws-ping-interval", self.ws_ping_interval)?,
            ws_pong_timeout: seconds("ws-pong-timeout", self.ws_pong_timeout)?,
            publish_rate_per_s: rate("publish-rate", self.publish_rate, 1e9)?,
            publish_burst: in_range("publish-burst", self.publish_burst, 1, u32::MAX)?,
            max_retained_bytes: in_range(
                "max-retained-bytes",
                self.max_retained_bytes,
                1024,
                u64::MAX,
            )?,
            backplane: self.backplane.map(redis_url).transpose()?,
            h2_max_concurrent_streams: in_range(
                "h2-max-concurrent-streams",
                self.h2_max_concurrent_streams,
                1,
                100_000,
            )?,
            tls: tls_settings(self.tls_cert, self.tls_key, self.tls_self_signed)?,
            ..ServerConfig::default()
        };
        if config.idle_timeout <= config.heartbeat_interval {
            return Err(ConfigError::new(
                "idle-timeout",
                format!(
                    "must exceed --heartbeat ({} s), or quiet streams would be cut, got {} s",
                    self.heartbeat, self.idle_timeout
                ),
            ));
        }
        Ok(config)
    }
}

/// A `redis://` URL (TLS `rediss://` is not built in: the lab's Redis is on loopback).
fn redis_url(url: String) -> Result<String, ConfigError> {
    let rest = url.strip_prefix("redis://").ok_or_else(|| {
        ConfigError::new(
            "backplane",
            format!("must be a redis://HOST:PORT URL, got {url:?}"),
        )
    })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(ConfigError::new(
            "backplane",
            format!("must name a host (redis://HOST:PORT), got {url:?}"),
        ));
    }
    Ok(url)
}

/// The TLS setup the flags ask for (clap has made sure cert and key come together, and not
/// with `--tls-self-signed`).
fn tls_settings(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    self_signed: bool,
) -> Result<Option<TlsSettings>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => TlsSettings::from_pem_files(&cert, &key)
            .map(Some)
            .map_err(|e| ConfigError::new("tls-cert", e.to_string())),
        (None, None) if self_signed => TlsSettings::self_signed()
            .map(Some)
            .map_err(|e| ConfigError::new("tls-self-signed", e.to_string())),
        (None, None) => Ok(None),
        _ => Err(ConfigError::new(
            "tls-cert",
            "and --tls-key go together (a PEM certificate chain and its key)",
        )),
    }
}

/// `value` if it lies in `min..=max`.
fn in_range<T: PartialOrd + std::fmt::Display>(
    flag: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(
            flag,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(value)
}

/// A rate per second in `0..=max` (NaN and infinities refused).
fn rate(flag: &'static str, value: f64, max: f64) -> Result<f64, ConfigError> {
    if !(value.is_finite() && (0.0..=max).contains(&value)) {
        return Err(ConfigError::new(
            flag,
            format!("must be between 0 and {max} per second, got {value}"),
        ));
    }
    Ok(value)
}

/// A positive number of seconds as a duration.
fn seconds(flag: &'static str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::new(
                flag,
                format!("must be a positive number of seconds, got {value}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A binary that flattens the flags, as both real ones do.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn config(flags: &[&str]) -> Result<ServerConfig, ConfigError> {
        let cli =
            Cli::try_parse_from(std::iter::once("pushlab-server").chain(flags.iter().copied()))
                .expect("clap accepts the flags");
        cli.server.into_config()
    }

    /// The message of the error `flags` give (they must be refused).
    fn refused(flags: &[&str]) -> String {
        config(flags).expect_err("refused").to_string()
    }

    #[test]
    fn no_flags_give_the_documented_defaults() {
        let from_flags = config(&[]).unwrap();
        assert_eq!(
            format!("{from_flags:?}"),
            format!("{:?}", ServerConfig::default())
        );
    }

    #[test]
    fn flags_become_settings() {
        let c = config(&[
            "--history",
            "100",
            "--max-subscriber-lag",
            "40",
            "--tick-rate",
            "2.5",
            "--heartbeat",
            "0.5",
            "--idle-timeout",
            "3",
            "--publish-token",
            "s3cret",
            "--allowed-origins",
            " https://a.example , ,http://b.example",
            "--max-headers",
            "100",
            "--publish-rate",
            "0",
            "--max-retained-bytes",
            "1048576",
        ])
        .unwrap();
        assert_eq!(c.history, 100);
        assert_eq!(c.max_subscriber_lag, 40);
        assert_eq!(c.tick_rate, 2.5);
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.idle_timeout, Duration::from_secs(3));
        assert_eq!(c.publish_token.as_deref(), Some("s3cret"));
        assert_eq!(
            c.allowed_origins,
            Some(vec!["https://a.example".into(), "http://b.example".into()])
        );
        assert_eq!(c.max_headers, 100);
        assert_eq!(c.publish_rate_per_s, 0.0);
        assert_eq!(c.max_retained_bytes, 1 << 20);
    }

    #[test]
    fn the_backplane_must_be_a_redis_url() {
        assert_eq!(config(&[]).unwrap().backplane, None);
        assert_eq!(
            config(&["--backplane", "redis://127.0.0.1:6379"])
                .unwrap()
                .backplane
                .as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        for bad in [
            "127.0.0.1:6379",
            "http://x",
            "rediss://h:1",
            "redis://",
            "redis:///0",
        ] {
            let why = refused(&["--backplane", bad]);
            assert!(why.starts_with("--backplane must"), "{bad}: {why}");
        }
    }

    #[test]
    fn subscriber_lag_defaults_to_history() {
        assert_eq!(config(&["--history", "7"]).unwrap().max_subscriber_lag, 7);
    }

    #[test]
    fn an_empty_token_means_no_token() {
        assert_eq!(
            config(&["--publish-token", ""]).unwrap().publish_token,
            None
        );
    }

    #[test]
    fn counts_out_of_range_are_refused_by_name() {
        for (flags, expect) in [
            (
                &["--history", "0"][..],
                "--history must be between 1 and 10000000, got 0",
            ),
            (&["--history", "10000001"], "--history"),
            (&["--max-batch", "0"], "--max-batch"),
            (
                &["--history", "10", "--max-subscriber-lag", "11"],
                "--max-subscriber-lag must be between 1 and 10, got 11",
            ),
            (&["--max-subscriber-lag", "0"], "--max-subscriber-lag"),
            (&["--max-connections", "0"], "--max-connections must"),
            (&["--max-message-bytes", "0"], "--max-message-bytes"),
            (&["--max-topics", "0"], "--max-topics"),
            (
                &["--max-connections-per-ip", "0"],
                "--max-connections-per-ip",
            ),
            (
                &["--max-header-bytes", "255"],
                "--max-header-bytes must be between 256",
            ),
            (&["--max-headers", "3"], "--max-headers"),
            (
                &["--max-headers", "101"],
                "--max-headers must be between 4 and 100, got 101",
            ),
            (&["--publish-burst", "0"], "--publish-burst"),
            (
                &["--max-retained-bytes", "1023"],
                "--max-retained-bytes must be between 1024",
            ),
            (
                &["--max-message-bytes", "100", "--tick-bytes", "101"],
                "--tick-bytes must be between 0 and 100",
            ),
        ] {
            let why = refused(flags);
            assert!(why.starts_with(expect), "{flags:?}: {why}");
        }
    }

    #[test]
    fn rates_must_be_finite_and_not_negative() {
        for (flags, expect) in [
            (&["--tick-rate=-1"][..], "--tick-rate"),
            (&["--tick-rate", "NaN"], "--tick-rate"),
            (&["--tick-rate", "1000001"], "--tick-rate"),
            (&["--publish-rate=-0.5"], "--publish-rate"),
            (&["--publish-rate", "inf"], "--publish-rate"),
        ] {
            let why = refused(flags);
            assert!(why.starts_with(expect), "{flags:?}: {why}");
        }
        assert_eq!(config(&["--tick-rate", "0"]).unwrap().tick_rate, 0.0);
    }

    #[test]
    fn durations_must_be_positive_seconds() {
        for flag in [
            "--header-read-timeout",
            "--heartbeat",
            "--idle-timeout",
            "--ws-ping-interval",
            "--ws-pong-timeout",
        ] {
            for bad in ["0", "-1", "NaN", "1e300"] {
                let why = refused(&[&format!("{flag}={bad}")]);
                assert!(
                    why.starts_with(&format!("{flag} must be a positive number of seconds")),
                    "{flag} {bad}: {why}"
                );
            }
        }
    }

    #[test]
    fn tls_flags() {
        let tls = config(&["--tls-self-signed"]).unwrap().tls.unwrap();
        assert!(tls.self_signed);
        let why = refused(&[
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/k",
        ]);
        assert!(
            why.starts_with("--tls-cert reading /nonexistent/cert.pem"),
            "{why}"
        );
        assert!(Cli::try_parse_from(["s", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from([
            "s",
            "--tls-self-signed",
            "--tls-cert",
            "c",
            "--tls-key",
            "k"
        ])
        .is_err());
        assert!(config(&[]).unwrap().tls.is_none());
    }

    #[test]
    fn idle_timeout_must_exceed_the_heartbeat() {
        let why = refused(&["--heartbeat", "15", "--idle-timeout", "15"]);
        assert!(
            why.starts_with("--idle-timeout must exceed --heartbeat"),
            "{why}"
        );
        assert!(config(&["--heartbeat", "1", "--idle-timeout", "1.5"]).is_ok());
    }
}
