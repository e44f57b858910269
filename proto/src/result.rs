//! The JSON one loadgen run writes: `schema_version`, the full configuration, the environment
//! that produced it, and one entry per transport. Reports, charts and `merge` read only this,
//! so a run made on another machine can be merged and drawn here.
//!
//! Units are in the field names (`_bytes`, `_us`, `_per_s`). Counters are totals over the whole
//! run including warmup, as a packet capture would see them; latency covers the measured window
//! only (after warmup). The HDR histogram is serialized (V2 deflate, base64) so runs merge
//! exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::transport::Transport;

/// Bump on any change a reader of old files must know about.
pub const SCHEMA_VERSION: u32 = 2;

/// One run (or several merged).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunResult {
    pub schema_version: u32,
    /// `pushlab-loadgen 0.1.0`.
    pub tool: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    /// The exact command line.
    pub command: Vec<String>,
    /// The full run configuration as the loadgen resolved it.
    pub config: serde_json::Value,
    pub environment: Environment,
    pub transports: Vec<TransportResult>,
    /// How many runs were merged into this one (1 for a plain run).
    #[serde(default = "one")]
    pub merged_runs: u32,
    /// Anything a reader must know: peers without /metrics, limits hit, losses.
    #[serde(default)]
    pub notes: Vec<String>,
    /// 1-based index of this run among `repeats` runs of the same plan (`compare --repeat N`,
    /// each on a fresh server). A report computes every figure per repeat and rules on the
    /// spread; a run with `repeats` 1 (a sweep point) belongs to every repeat.
    #[serde(default = "one")]
    pub repeat: u32,
    /// How many repeats of this plan were made.
    #[serde(default = "one")]
    pub repeats: u32,
}

fn one() -> u32 {
    1
}

/// Where and with what a run was made.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Environment {
    pub hostname: String,
    pub cpu_model: String,
    pub cores: u32,
    pub memory_bytes: u64,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
    /// Versions of the crates that shape the figures (tokio, hyper, tungstenite, ...).
    pub crate_versions: BTreeMap<String, String>,
    pub git_commit: String,
    /// The target's server header or profile (`pushlab-server 0.1.0`, `nginx-nchan`).
    pub target: String,
}

/// The scenario one transport entry was measured under (repeated per entry so charts can put
/// entries from different runs side by side without reading `config`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Scenario {
    pub clients: u64,
    pub publish_rate_per_s: f64,
    pub payload_bytes: u64,
    pub poll_interval_ms: u64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub keep_alive: bool,
    /// `minimal` or `browser`.
    pub header_profile: String,
    /// `pushlab` or `nchan`.
    pub target_profile: String,
    /// `http/1.1`, `http/1.1+tls`, `h2c` (HTTP/2 over cleartext TCP, prior knowledge) or `h2`
    /// (over TLS).
    pub http_version: String,
    /// Subscribers spoke TLS (`https`/`wss`, HTTP/1.1 or h2). Absent in files before it: read
    /// `h2` as TLS there ([`Scenario::is_tls`]).
    #[serde(default)]
    pub tls: bool,
    /// The emulated link between subscribers and server (`--link`); absent: loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkScenario>,
}

impl Scenario {
    /// Whether the subscribers spoke TLS: the `tls` field, or a TLS name in `http_version`
    /// (`h2`, `http/1.1+tls`) in files that lack the field.
    pub fn is_tls(&self) -> bool {
        self.tls || self.http_version == "h2" || self.http_version.ends_with("+tls")
    }
}

/// The conditions of the emulated link a run went through (`--link`, issue 11), each
/// direction having them all.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LinkScenario {
    /// Round-trip time the link adds (half each way), milliseconds.
    pub rtt_ms: f64,
    /// Each one-way delay varies uniformly within ± this, milliseconds.
    pub jitter_ms: f64,
    /// Fraction of packets lost per direction, 0 to 1.
    pub loss_ratio: f64,
    /// Bottleneck rate per direction, bits of IP packet per second; absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bit_per_s: Option<u64>,
}

/// What TCP sent again on one transport's connections, from Linux `TCP_INFO`
/// (`tcpi_total_retrans`, `tcpi_bytes_retrans` = RFC 4898 tcpEStatsPerfOctetsRetrans) read just
/// before each socket closes. TCP's own work, reported beside the byte split and not in it:
/// the split divides the bytes the application wrote and read (each counted once however
/// often TCP sent it), so it stays exact; these are extra copies on the wire.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Retransmissions {
    /// Segments the subscribers' sockets sent again (upstream: requests, WebSocket frames,
    /// SYN and FIN included).
    pub client_segments: u64,
    /// Payload bytes the subscribers' sockets sent again.
    pub client_bytes: u64,
    /// Segments the server's sockets of this transport sent again (downstream), from
    /// pushlab-server's `pushlab_tcp_retransmitted_segments_total`; `None` for a target
    /// without that metric.
    pub server_segments: Option<u64>,
    /// Payload bytes the server's sockets sent again (`pushlab_tcp_retransmitted_bytes_total`).
    pub server_bytes: Option<u64>,
}

impl Retransmissions {
    /// Bytes sent again both ways (the server's counted as 0 where unknown).
    pub fn bytes(&self) -> u64 {
        self.client_bytes + self.server_bytes.unwrap_or(0)
    }
}

/// Wire bytes split by what they carry. As a total or per delivered message.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ByteSplit {
    /// The published data itself.
    pub payload: f64,
    /// The rest of MESSAGE: topic, seq, ts, keys, quotes.
    pub envelope: f64,
    /// HTTP request and response headers (incl. status and request lines).
    pub headers: f64,
    /// Chunk sizes, SSE `id:`/`data:` lines, poll batch wrapper, WebSocket frame headers,
    /// heartbeats, empty poll bodies.
    pub framing: f64,
    /// The WebSocket Upgrade exchange (request + 101 response) and closing handshakes.
    pub handshake: f64,
    /// TCP/IP headers estimated from TCP_INFO segment counts (0 where unavailable).
    pub tcpip: f64,
    /// HTTP/2 frames other than HEADERS, CONTINUATION and DATA, after the first SETTINGS
    /// exchange: SETTINGS, WINDOW_UPDATE, PING, PRIORITY, RST_STREAM, GOAWAY (0 on HTTP/1.1;
    /// absent in files written before HTTP/2 was measured).
    #[serde(default)]
    pub control: f64,
    /// TLS handshake records and each record's overhead (header, AEAD tag, content type,
    /// padding): ciphertext bytes on the socket minus the plaintext they carry (0 without TLS).
    #[serde(default)]
    pub tls: f64,
}

impl ByteSplit {
    pub fn total(&self) -> f64 {
        self.payload
            + self.envelope
            + self.headers
            + self.framing
            + self.handshake
            + self.tcpip
            + self.control
            + self.tls
    }

    pub fn scaled(&self, by: f64) -> ByteSplit {
        ByteSplit {
            payload: self.payload * by,
            envelope: self.envelope * by,
            headers: self.headers * by,
            framing: self.framing * by,
            handshake: self.handshake * by,
            tcpip: self.tcpip * by,
            control: self.control * by,
            tls: self.tls * by,
        }
    }

    pub fn add(&self, o: &ByteSplit) -> ByteSplit {
        ByteSplit {
            payload: self.payload + o.payload,
            envelope: self.envelope + o.envelope,
            headers: self.headers + o.headers,
            framing: self.framing + o.framing,
            handshake: self.handshake + o.handshake,
            tcpip: self.tcpip + o.tcpip,
            control: self.control + o.control,
            tls: self.tls + o.tls,
        }
    }
}

/// Latency percentiles in microseconds, publish (intended send time) to whole message held.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Latency {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

/// What the target spent, from its `/metrics` (pushlab-server) or from `/proc` over the process
/// tree of `--server-pid` (peers without `/metrics`), sampled at the boundaries of the phase's
/// parts: connect (every subscriber connecting, handshakes included), idle (connections open,
/// nothing published: heartbeats, pings, timers, held long polls) and publish (the measured
/// window plus drain).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServerCost {
    /// CPU seconds over the whole phase (connect + idle + publish).
    pub cpu_seconds: f64,
    /// Where the CPU figures come from: `getrusage` (pushlab-server's /metrics, microseconds),
    /// `schedstat` (/proc/PID/task/*/schedstat summed over the process tree, nanoseconds), or
    /// `proc-stat` (clock ticks; only where neither of the others can be read).
    #[serde(default)]
    pub cpu_source: String,
    /// CPU microseconds spent while the subscribers connected.
    #[serde(default)]
    pub connect_cpu_us: f64,
    /// CPU microseconds spent in the idle part (connections open, no publishing).
    #[serde(default)]
    pub idle_cpu_us: f64,
    /// Length of the idle part, seconds.
    #[serde(default)]
    pub idle_s: f64,
    /// CPU microseconds spent in the publish part (warmup, measured window, drain).
    #[serde(default)]
    pub publish_cpu_us: f64,
    /// Growth of the allocator's bytes in use per open connection, measured after connect and
    /// settle (pushlab-server's `pushlab_heap_bytes`); `None` where the target does not say.
    #[serde(default)]
    pub heap_bytes_per_connection: Option<f64>,
    /// Kernel socket memory (skmem: receive + send queues and forward allocation) per open
    /// server-side connection after connect and settle; `None` where it could not be read.
    #[serde(default)]
    pub kernel_socket_bytes_per_connection: Option<f64>,
    /// Kernel objects one TCP connection holds besides its queues (the slab object sizes of
    /// `TCP`, `sock_inode_cache`, `filp`, `dentry`, `eventpoll_epi` in `/proc/slabinfo`); add
    /// it to `kernel_socket_bytes_per_connection` for the kernel's whole share. `None` where
    /// `/proc/slabinfo` cannot be read (it needs root).
    #[serde(default)]
    pub kernel_socket_struct_bytes_per_connection: Option<f64>,
    /// Why any figure of this struct is left out or less precise than the rest.
    #[serde(default)]
    pub unavailable: Vec<String>,
    pub rss_bytes_before: u64,
    pub rss_bytes_after: u64,
    /// Peak RSS growth while this transport's clients were connected, per open connection.
    pub rss_bytes_per_connection: f64,
    /// Bytes the server itself counted on its sockets for this transport.
    pub server_bytes_read: u64,
    pub server_bytes_written: u64,
}

/// One transport's figures in one run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TransportResult {
    pub transport: Transport,
    pub scenario: Scenario,
    pub clients: u64,
    /// The counters (delivered messages, wire bytes, requests, connects, losses, ...), one
    /// JSON key each beside the fields here; read as `entry.delivered_messages` through
    /// `Deref` (see [`Counters`]).
    #[serde(flatten)]
    pub counts: Counters,
    /// Totals by kind, both directions (their sum equals up + down, plus tcpip).
    pub bytes_total: ByteSplit,
    /// `bytes_total` divided by delivered messages.
    pub bytes_per_message: ByteSplit,
    pub latency_us: Latency,
    /// Target CPU microseconds per 1,000 delivered messages (None without /metrics).
    pub server_cpu_us_per_1k_messages: Option<f64>,
    /// Target CPU microseconds per TCP connect made in the connect part (accept, request,
    /// handshake; `None` where no CPU figure could be read).
    #[serde(default)]
    pub server_cpu_us_per_connect: Option<f64>,
    /// Target CPU microseconds per open connection per second of the idle part.
    #[serde(default)]
    pub server_cpu_us_per_idle_connection_s: Option<f64>,
    /// Target CPU microseconds of the publish part per delivered message.
    #[serde(default)]
    pub server_cpu_us_per_delivery: Option<f64>,
    pub server: Option<ServerCost>,
    /// The loadgen's own cost in this phase, and whether it measured itself.
    #[serde(default)]
    pub loadgen: Option<LoadgenCost>,
    /// TCP segments both ways from TCP_INFO (None where not available).
    pub tcp_segments: Option<u64>,
    /// What TCP sent again, beside the byte split (see [`Retransmissions`]); `None` where
    /// TCP_INFO was not available or in results made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmissions: Option<Retransmissions>,
    /// HDR histogram of latency_us, V2+deflate, base64.
    pub histogram: String,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The counters are the entry's own figures (flattened in the JSON), so they read as fields.
impl std::ops::Deref for TransportResult {
    type Target = Counters;

    fn deref(&self) -> &Counters {
        &self.counts
    }
}

impl std::ops::DerefMut for TransportResult {
    fn deref_mut(&mut self) -> &mut Counters {
        &mut self.counts
    }
}

/// The loadgen's own CPU and timer health over one transport phase. A loadgen that is busy
/// more than [`LoadgenCost::SATURATED_CORE_SHARE`] of a core, or whose timers fire more than
/// [`LoadgenCost::LATE_TIMER_US`] late, measures itself as much as the target.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LoadgenCost {
    /// CPU microseconds the loadgen process spent in the phase (getrusage).
    pub cpu_us: f64,
    /// Wall seconds of the phase.
    pub wall_s: f64,
    /// `cpu_us / wall_s` as a share of one core (1.0 = one core busy all the time).
    pub core_share: f64,
    /// How late a probe timer fired, microseconds: p99 and max over the phase.
    pub timer_late_p99_us: u64,
    pub timer_late_max_us: u64,
    /// True when `core_share` > 0.7 or `timer_late_max_us` > 1,000: the figures of this phase
    /// may be the loadgen's, not the target's.
    pub saturated: bool,
}

impl LoadgenCost {
    /// Busier than this share of one core, the loadgen warns.
    pub const SATURATED_CORE_SHARE: f64 = 0.7;
    /// Timers later than this, microseconds, and the loadgen warns.
    pub const LATE_TIMER_US: u64 = 1_000;
}
