//! Reading result files and picking, out of everything found, the entries each chart and claim
//! needs.
//!
//! A report directory may hold one `compare` run (five transports plus a few variants) or a whole
//! sweep (hundreds of points), or both. Every [`TransportResult`] becomes one [`Entry`]; the
//! selectors below then choose by the entry's own [`Scenario`] (each entry repeats it), never by
//! file name, so files from several machines and commands mix freely.
//!
//! Selection rules, in one place so charts and verdicts agree:
//! - the **baseline** is the scenario (clients, rate, payload, poll interval, target) run with
//!   keep-alive on, minimal headers and HTTP/1.1 that covers the most transports; ties go to the
//!   rate nearest 1 msg/s (the article's scenario), then to the most delivered messages;
//! - a **variant** is the baseline scenario with keep-alive off, browser headers, HTTP/2 (h2c)
//!   or TLS (h2, HTTP/1.1 over TLS);
//! - the **rate sweep** is the (clients, payload, poll interval) group with the most distinct
//!   publish rates.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::Engine;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use pushlab_proto::result::{Environment, RunResult, Scenario, TransportResult};
use pushlab_proto::Transport;

pub use super::format::fmt_num;
use super::ReportError;

/// One transport's figures from one result file, with where it came from.
#[derive(Clone, Debug)]
pub struct Entry {
    pub source: PathBuf,
    pub environment: Environment,
    pub command: Vec<String>,
    /// The result file's `schema_version` (figures added in v2 are `None` in older files).
    pub schema_version: u32,
    pub result: TransportResult,
}

/// How an entry departs from the plain HTTP/1.1, cleartext, keep-alive, minimal-headers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Variant {
    pub keep_alive_off: bool,
    pub browser_headers: bool,
    /// HTTP/2: h2c in cleartext, h2 with `tls`.
    pub http2: bool,
    /// Over TLS (HTTP/1.1 or HTTP/2).
    pub tls: bool,
}

impl Variant {
    pub const DEFAULT: Variant = Variant {
        keep_alive_off: false,
        browser_headers: false,
        http2: false,
        tls: false,
    };
    pub const NO_KEEP_ALIVE: Variant = Variant {
        keep_alive_off: true,
        ..Variant::DEFAULT
    };
    pub const BROWSER: Variant = Variant {
        browser_headers: true,
        ..Variant::DEFAULT
    };
    /// HTTP/2 over cleartext TCP.
    pub const H2C: Variant = Variant {
        http2: true,
        ..Variant::DEFAULT
    };
    /// HTTP/2 over TLS.
    pub const H2_TLS: Variant = Variant {
        http2: true,
        tls: true,
        ..Variant::DEFAULT
    };
    /// HTTP/1.1 over TLS (wss for WebSocket).
    pub const TLS: Variant = Variant {
        tls: true,
        ..Variant::DEFAULT
    };

    pub fn of(s: &Scenario) -> Variant {
        Variant {
            keep_alive_off: !s.keep_alive,
            browser_headers: s.header_profile == "browser",
            http2: s.http_version.to_ascii_lowercase().starts_with("h2"),
            tls: s.is_tls(),
        }
    }

    /// This variant with browser headers.
    pub fn browser(self) -> Variant {
        Variant {
            browser_headers: true,
            ..self
        }
    }

    /// This variant in cleartext: what TLS is held against.
    pub fn cleartext(self) -> Variant {
        Variant { tls: false, ..self }
    }

    pub fn is_default(self) -> bool {
        self == Variant::DEFAULT
    }

    /// The protocol stack in a word: `HTTP/1.1`, `h2c`, `h2 (TLS)`, `HTTP/1.1 (TLS)`.
    pub fn protocol(self) -> &'static str {
        match (self.http2, self.tls) {
            (false, false) => "HTTP/1.1",
            (true, false) => "h2c",
            (true, true) => "h2 (TLS)",
            (false, true) => "HTTP/1.1 (TLS)",
        }
    }

    /// Words for a legend or table cell: `""`, `"no keep-alive"`, `"browser headers, h2c"`,
    /// `"h2 over TLS"`, `"TLS"`.
    pub fn describe(self) -> String {
        let mut parts = Vec::new();
        if self.keep_alive_off {
            parts.push("no keep-alive");
        }
        if self.browser_headers {
            parts.push("browser headers");
        }
        match (self.http2, self.tls) {
            (true, false) => parts.push("h2c"),
            (true, true) => parts.push("h2 over TLS"),
            (false, true) => parts.push("TLS"),
            (false, false) => {}
        }
        parts.join(", ")
    }
}

/// The variables that make two entries comparable, besides transport and variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScenarioKey {
    pub clients: u64,
    /// Publish rate in thousandths of a message per second (exact for the rates people type).
    pub rate_milli: u64,
    pub payload_bytes: u64,
    pub poll_interval_ms: u64,
}

impl ScenarioKey {
    pub fn of(s: &Scenario) -> ScenarioKey {
        ScenarioKey {
            clients: s.clients,
            rate_milli: (s.publish_rate_per_s * 1000.0).round().max(0.0) as u64,
            payload_bytes: s.payload_bytes,
            poll_interval_ms: s.poll_interval_ms,
        }
    }

    pub fn rate_per_s(&self) -> f64 {
        self.rate_milli as f64 / 1000.0
    }

    /// `100 clients, 1 msg/s, 100 B payload, poll every 1000 ms`.
    pub fn describe(&self) -> String {
        format!(
            "{} clients, {} msg/s, {} B payload, poll every {} ms",
            self.clients,
            fmt_num(self.rate_per_s()),
            self.payload_bytes,
            self.poll_interval_ms
        )
    }
}

/// Every entry found under a directory.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub runs: Vec<(PathBuf, RunResult)>,
    /// Entries measured on loopback: every chart and claim of the loopback report reads these.
    pub entries: Vec<Entry>,
    /// Entries measured through an emulated link (`scenario.link`): read only by the link
    /// section ([`crate::report::link`]), so link data never shift a loopback figure.
    pub linked: Vec<Entry>,
    /// Files that looked like results but could not be read, with why (reported, not fatal).
    pub skipped: Vec<(PathBuf, String)>,
    /// Capacity files (`pushlab-loadgen capacity --out`), in path order.
    pub capacity: Vec<(PathBuf, crate::capacity::CapacityResult)>,
}

/// The chosen baseline scenario and its entry per transport.
#[derive(Clone, Debug)]
pub struct Baseline<'a> {
    pub key: ScenarioKey,
    pub per_transport: BTreeMap<Transport, &'a Entry>,
}

/// Entries of one transport along the publish rate, other variables fixed.
#[derive(Clone, Debug)]
pub struct RateSweep<'a> {
    pub clients: u64,
    pub payload_bytes: u64,
    pub poll_interval_ms: u64,
    pub series: BTreeMap<Transport, Vec<(f64, &'a Entry)>>,
}

impl<'a> RateSweep<'a> {
    pub fn distinct_rates(&self) -> usize {
        let rates: BTreeSet<u64> = self
            .series
            .values()
            .flatten()
            .map(|(r, _)| (r * 1000.0).round() as u64)
            .collect();
        rates.len()
    }
}

/// One tick of Linux process CPU accounting (USER_HZ = 100): the resolution of CPU figures in
/// files older than schema v2 (or with `cpu_source` `proc-stat`).
pub const CPU_TICK_S: f64 = 0.01;
/// A CPU figure resting on fewer than 20 steps of its clock is quantised by more than 5%: shown
/// with `~` and kept out of verdicts.
pub const MIN_CPU_STEPS: f64 = 20.0;
/// RSS moves in pages and allocator chunks, and freed memory of an earlier phase is reused.
/// Growth under 2 MiB in total says little about memory per connection: shown, not judged.
pub const MIN_RSS_GROWTH_BYTES: f64 = 2.0 * 1024.0 * 1024.0;

/// The fewest distinct rates that make a rate chart worth drawing.
pub const MIN_SWEEP_RATES: usize = 3;

impl Dataset {
    /// Reads every `*.json` under `dir`, recursively, that parses as a [`RunResult`] (but not
    /// one shard's part of a merged run) or a capacity file. JSON files that are not results (a
    /// sweep spec, a schema) are listed in `skipped`.
    pub fn load_dir(dir: &Path) -> Result<Dataset, ReportError> {
        let mut files = Vec::new();
        collect_json(dir, &mut files)?;
        files.sort();
        let mut set = Dataset::default();
        for path in files {
            let text = fs::read_to_string(&path).map_err(|source| ReportError::Io {
                path: path.clone(),
                source,
            })?;
            match serde_json::from_str::<RunResult>(&text) {
                // One shard's part of a run (`run --shards` keeps them beside the merged
                // result, OUT.shards/): the merged file counts it already.
                Ok(run) if crate::merge::is_shard(&run) => {}
                Ok(run) => set.push_run(path, run),
                Err(e) => match serde_json::from_str::<crate::capacity::CapacityResult>(&text) {
                    Ok(c) if c.kind == crate::capacity::KIND => set.capacity.push((path, c)),
                    _ => set.skipped.push((path, e.to_string())),
                },
            }
        }
        if set.entries.is_empty() && set.linked.is_empty() {
            return Err(ReportError::NoResults(dir.to_path_buf()));
        }
        Ok(set)
    }

    /// The runs in path order, as [`Dataset::load_dir`] reads them, so a report rendered
    /// in-process (`compare`) and one read back from disk (`report`) are the same text.
    pub fn from_runs(mut runs: Vec<(PathBuf, RunResult)>) -> Dataset {
        runs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut set = Dataset::default();
        for (path, run) in runs {
            set.push_run(path, run);
        }
        set
    }

    /// The dataset of each repeat (`compare --repeat N`): a run with `repeats` > 1 goes to the
    /// dataset of its `repeat`; a run with `repeats` 1 (a sweep point) belongs to every repeat.
    /// Plans repeated fewer times than the most-repeated one are reused cyclically. One dataset
    /// (this one) when nothing was repeated.
    pub fn repeats(&self) -> Vec<Dataset> {
        let n = self
            .runs
            .iter()
            .map(|(_, r)| r.repeats.max(1))
            .max()
            .unwrap_or(1);
        if n <= 1 {
            return vec![self.clone()];
        }
        (1..=n)
            .map(|k| {
                let runs = self
                    .runs
                    .iter()
                    .filter(|(_, r)| {
                        let m = r.repeats.max(1);
                        m == 1 || r.repeat.clamp(1, m) == (k - 1) % m + 1
                    })
                    .cloned()
                    .collect();
                Dataset::from_runs(runs)
            })
            .collect()
    }

    /// The most repeats any plan in the data was run.
    pub fn repeat_count(&self) -> u32 {
        self.runs
            .iter()
            .map(|(_, r)| r.repeats.max(1))
            .max()
            .unwrap_or(1)
    }

    fn push_run(&mut self, path: PathBuf, run: RunResult) {
        for t in &run.transports {
            let list = match t.scenario.link {
                Some(_) => &mut self.linked,
                None => &mut self.entries,
            };
            list.push(Entry {
                source: path.clone(),
                environment: run.environment.clone(),
                command: run.command.clone(),
                schema_version: run.schema_version,
                result: t.clone(),
            });
        }
        self.runs.push((path, run));
    }

    /// The baseline's entries and then its variants: the rows of the main table.
    pub fn baseline_entries(&self) -> Vec<&Entry> {
        let Some(base) = self.baseline() else {
            return Vec::new();
        };
        let mut rows: Vec<&Entry> = base.per_transport.values().copied().collect();
        rows.extend(self.variants_of(&base.key).into_iter().map(|(_, _, e)| e));
        rows
    }

    /// Default-variant entries by scenario and transport; of several entries of one point
    /// (repeats, merged directories) the one with the most evidence (delivered messages).
    pub fn default_scenarios(&self) -> BTreeMap<ScenarioKey, BTreeMap<Transport, &Entry>> {
        let mut groups: BTreeMap<ScenarioKey, BTreeMap<Transport, &Entry>> = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.variant().is_default()) {
            let slot = groups.entry(e.key()).or_default();
            let t = e.result.transport;
            if slot
                .get(&t)
                .is_none_or(|old| e.result.delivered_messages > old.result.delivered_messages)
            {
                slot.insert(t, e);
            }
        }
        groups
    }

    /// The baseline scenario: see the module doc for the rule.
    pub fn baseline(&self) -> Option<Baseline<'_>> {
        let groups = self.default_scenarios();
        let score = |k: &ScenarioKey, m: &BTreeMap<Transport, &Entry>| {
            let delivered: u64 = m.values().map(|e| e.result.delivered_messages).sum();
            // Distance from 1 msg/s on a log scale, so 0.5 and 2 tie.
            let off_one = (k.rate_per_s().max(1e-6)).log10().abs();
            (
                m.len(),
                std::cmp::Reverse((off_one * 1e6) as u64),
                delivered,
            )
        };
        groups
            .into_iter()
            .max_by_key(|(k, m)| score(k, m))
            .map(|(key, per_transport)| Baseline { key, per_transport })
    }

    /// The entry of `transport` run in the baseline scenario with `variant`.
    pub fn variant(
        &self,
        key: &ScenarioKey,
        transport: Transport,
        variant: Variant,
    ) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| {
                e.result.transport == transport && e.variant() == variant && e.key() == *key
            })
            .max_by_key(|e| e.result.delivered_messages)
    }

    /// Every non-default variant present in the baseline scenario, in a stable order.
    pub fn variants_of(&self, key: &ScenarioKey) -> Vec<(Transport, Variant, &Entry)> {
        let mut found: BTreeMap<(Transport, Variant), &Entry> = BTreeMap::new();
        for e in &self.entries {
            let v = e.variant();
            if v.is_default() || e.key() != *key {
                continue;
            }
            let slot = found.entry((e.result.transport, v)).or_insert(e);
            if e.result.delivered_messages > slot.result.delivered_messages {
                *slot = e;
            }
        }
        found.into_iter().map(|((t, v), e)| (t, v, e)).collect()
    }

    /// Default-variant entries of `transport` at any scenario, for claims that need a rate the
    /// baseline lacks (a low rate for C1 and C4).
    pub fn default_entries(&self, transport: Transport) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |e| e.result.transport == transport && e.variant().is_default())
    }

    /// The rate sweep: the (clients, payload, poll interval) group with the most distinct rates.
    pub fn rate_sweep(&self) -> Option<RateSweep<'_>> {
        type Group = (u64, u64, u64);
        let mut rates: BTreeMap<Group, BTreeSet<u64>> = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.variant().is_default()) {
            let k = e.key();
            rates
                .entry((k.clients, k.payload_bytes, k.poll_interval_ms))
                .or_default()
                .insert(k.rate_milli);
        }
        let (group, _) = rates.into_iter().max_by_key(|(g, r)| (r.len(), g.0))?;
        let mut series: BTreeMap<Transport, BTreeMap<u64, &Entry>> = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.variant().is_default()) {
            let k = e.key();
            if (k.clients, k.payload_bytes, k.poll_interval_ms) != group {
                continue;
            }
            let slot = series.entry(e.result.transport).or_default();
            let old = slot.entry(k.rate_milli).or_insert(e);
            if e.result.delivered_messages > old.result.delivered_messages {
                *old = e;
            }
        }
        Some(RateSweep {
            clients: group.0,
            payload_bytes: group.1,
            poll_interval_ms: group.2,
            series: series
                .into_iter()
                .map(|(t, m)| {
                    let points = m.into_iter().map(|(r, e)| (r as f64 / 1000.0, e)).collect();
                    (t, points)
                })
                .collect(),
        })
    }

    /// The default-variant scenario with the most clients that at least two transports ran,
    /// with its entries in transport order: server cost is judged and drawn at the largest
    /// scale the data holds (C5 is about high concurrency). Falls back to the baseline.
    pub fn largest_scale(&self) -> Option<Baseline<'_>> {
        self.default_scenarios()
            .into_iter()
            .filter(|(_, m)| m.len() >= 2)
            .max_by_key(|(k, m)| (k.clients, m.len(), std::cmp::Reverse(k.rate_milli)))
            .map(|(key, per_transport)| Baseline { key, per_transport })
            .or_else(|| self.baseline())
    }

    /// Distinct environments (machine, commit) the entries came from, for the report's footer.
    pub fn environments(&self) -> Vec<&Environment> {
        let mut seen = Vec::<&Environment>::new();
        for (_, run) in &self.runs {
            if !seen.iter().any(|e| **e == run.environment) {
                seen.push(&run.environment);
            }
        }
        seen
    }
}

impl Entry {
    pub fn key(&self) -> ScenarioKey {
        ScenarioKey::of(&self.result.scenario)
    }

    pub fn variant(&self) -> Variant {
        Variant::of(&self.result.scenario)
    }

    pub fn transport(&self) -> Transport {
        self.result.transport
    }

    /// `short poll` or `short poll (browser headers)`.
    pub fn label(&self) -> String {
        let v = self.variant().describe();
        if v.is_empty() {
            self.transport().label().to_string()
        } else {
            format!("{} ({v})", self.transport().label())
        }
    }

    /// Figures divided by delivered messages; 0 when nothing was delivered.
    pub fn per_message(&self, count: u64) -> f64 {
        ratio(count as f64, self.result.delivered_messages as f64)
    }

    pub fn empty_fraction(&self) -> f64 {
        ratio(
            self.result.empty_responses as f64,
            self.result.http_requests as f64,
        )
    }

    /// Length of one MESSAGE on the wire (payload + envelope), from the byte split.
    pub fn message_bytes(&self) -> f64 {
        let b = &self.result.bytes_per_message;
        b.payload + b.envelope
    }

    /// Header, framing and handshake bytes per delivered message: what the article counts as
    /// overhead (it leaves payload and TCP/IP out).
    pub fn overhead_per_message(&self) -> f64 {
        let b = &self.result.bytes_per_message;
        b.headers + b.framing + b.handshake
    }

    /// Like [`Entry::overhead_per_message`] without the one-off handshake: what a connection
    /// costs per message once it is open, the article's steady state.
    pub fn steady_overhead_per_message(&self) -> f64 {
        let b = &self.result.bytes_per_message;
        b.headers + b.framing
    }

    /// Wall-clock seconds the counters cover (warmup included, as the counters are).
    pub fn wall_s(&self) -> f64 {
        self.result.scenario.duration_s + self.result.scenario.warmup_s
    }

    pub fn histogram(&self) -> Option<Histogram<u64>> {
        decode_histogram(&self.result.histogram).ok()
    }

    pub fn p50_ms(&self) -> f64 {
        self.result.latency_us.p50 as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.result.latency_us.p99 as f64 / 1000.0
    }

    /// Server memory per open connection, if the target exposed it.
    pub fn rss_per_connection_bytes(&self) -> Option<f64> {
        self.result
            .server
            .as_ref()
            .map(|s| s.rss_bytes_per_connection)
            .filter(|v| v.is_finite() && *v > 0.0)
    }

    /// Server memory per connection, only when the total growth is above RSS noise.
    pub fn rss_per_connection_resolved(&self) -> Option<f64> {
        let per = self.rss_per_connection_bytes()?;
        (per * self.result.peak_open_connections as f64 >= MIN_RSS_GROWTH_BYTES).then_some(per)
    }

    /// The step of the clock behind this entry's server CPU figures, seconds: a microsecond
    /// for getrusage, a nanosecond for schedstat, a 10 ms tick otherwise (files before v2).
    pub fn cpu_resolution_s(&self) -> f64 {
        match self.result.server.as_ref().map(|s| s.cpu_source.as_str()) {
            Some("getrusage") => 1e-6,
            Some("schedstat") => 1e-9,
            _ => CPU_TICK_S,
        }
    }

    /// Whether the server CPU behind this entry spans enough clock steps to compare.
    pub fn cpu_resolved(&self) -> bool {
        self.result
            .server
            .as_ref()
            .is_some_and(|s| s.cpu_seconds >= MIN_CPU_STEPS * self.cpu_resolution_s())
    }

    /// Server CPU microseconds per delivered message: the publish part's figure where the
    /// file has it (schema v2), else the whole phase's per 1,000 messages / 1,000.
    pub fn cpu_us_per_delivery(&self) -> Option<f64> {
        self.result
            .server_cpu_us_per_delivery
            .or(self
                .result
                .server_cpu_us_per_1k_messages
                .map(|v| v / 1000.0))
            .filter(|v| v.is_finite() && *v >= 0.0)
    }

    /// Server CPU per delivery as (low, measured, high): one clock step either side.
    pub fn cpu_us_per_delivery_bounds(&self) -> Option<(f64, f64, f64)> {
        let mid = self.cpu_us_per_delivery()?;
        let delivered = self.result.delivered_messages as f64;
        if delivered <= 0.0 {
            return None;
        }
        let step = self.cpu_resolution_s() * 1e6 / delivered;
        Some(((mid - step).max(0.0), mid, mid + step))
    }

    /// Why server figures are missing or coarse, from the file (`unavailable`), or `no
    /// /metrics` when the target reported no server cost at all.
    pub fn server_unavailable(&self) -> String {
        match &self.result.server {
            None => "the target reported no server cost".into(),
            Some(_) if self.schema_version < 2 => {
                format!("the file predates schema v2 (v{})", self.schema_version)
            }
            Some(s) => s.unavailable.join("; "),
        }
    }

    /// Allocator bytes in use per open connection (schema v2, pushlab-server).
    pub fn heap_per_connection_bytes(&self) -> Option<f64> {
        self.result
            .server
            .as_ref()
            .and_then(|s| s.heap_bytes_per_connection)
            .filter(|v| v.is_finite())
    }

    /// Kernel socket memory per open server-side connection (schema v2).
    pub fn kernel_per_connection_bytes(&self) -> Option<f64> {
        self.result
            .server
            .as_ref()
            .and_then(|s| s.kernel_socket_bytes_per_connection)
            .filter(|v| v.is_finite())
    }

    /// Whether the loadgen said it measured itself in this phase.
    pub fn loadgen_saturated(&self) -> bool {
        self.result.loadgen.is_some_and(|l| l.saturated)
    }
}

/// Decodes a base64 V2(+deflate) HDR histogram as the loadgen writes it.
pub fn decode_histogram(b64: &str) -> Result<Histogram<u64>, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64.trim()))
        .map_err(|e| format!("base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut Cursor::new(raw))
        .map_err(|e| format!("hdr histogram: {e:?}"))
}

/// `a / b`, or 0 when `b` is 0 (no evidence reads as no cost, and is flagged where it matters).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Subdirectories of a results tree that hold comparisons with other servers
/// (`scripts/peers/compare.sh results/peers`, `scripts/nchan/compare.sh results/nchan`): they
/// have their own tables (results/PEERS.md), and the claims are ruled on the lab's own runs, so
/// a report over the tree leaves them out (a report over such a directory itself reads it).
pub const OTHER_TARGET_DIRS: [&str; 2] = ["peers", "nchan"];

/// Runs through the emulated link live in `results/link/` with a report of their own
/// (`pushlab-loadgen report results/link`); a report over `results/` reads loopback runs only.
/// Link entries met anywhere else are kept apart all the same ([`Dataset::linked`]).
pub const LINK_DIR: &str = "link";

/// The protocol-stack sweep (`scripts/sweep-protocols.toml`: every transport on HTTP/1.1, h2c
/// and over TLS) lives in `results/protocols/` with a report of its own; the report over
/// `results/` rules on HTTP/2 and TLS from `compare`'s phases in `results/latest/`.
pub const PROTOCOLS_DIR: &str = "protocols";

/// The server's own fan-out measurement at 10,000 subscribers (`scripts/p99-10k.sh`: issue
/// 14's p99 goal) lives in `results/fanout-10k/` with its table beside it; like the peer
/// comparisons it measures the server, not the transports' claims, so the report over
/// `results/` leaves it out.
pub const FANOUT_10K_DIR: &str = "fanout-10k";

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    let read = fs::read_dir(dir).map_err(|source| ReportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for item in read {
        let item = item.map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = item.path();
        let kind = item.file_type().map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        if kind.is_dir() {
            let other_target = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                OTHER_TARGET_DIRS.contains(&n)
                    || n == LINK_DIR
                    || n == PROTOCOLS_DIR
                    || n == FANOUT_10K_DIR
            });
            if !other_target {
                collect_json(&path, out)?;
            }
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
    Ok(())
}
