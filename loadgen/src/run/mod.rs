//! One run: phases of transports, each with its subscribers, publisher and server scrapes.
//!
//! ```text
//! per phase (one transport, or all with --concurrent), see [`phase`]:
//!   scrape ── connect N subscribers (--ramp) ── scrape ── idle (--idle) ── scrape
//!   ── publish for warmup + duration (open loop) ── scrape ── drain: wait until every
//!   subscriber holds the last seq (or the drain deadline), closing every socket ── scrape
//!   ── assemble (pure, [`assemble`])
//! ```
//!
//! Transports run one after another by default on a fresh topic each (`lab-<transport>-<id>`)
//! so they neither share the machine nor each other's messages.

pub mod assemble;
pub mod handoff;
mod phase;
pub mod selfcost;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pushlab_proto::result::{RunResult, SCHEMA_VERSION};
use pushlab_proto::{ByteCounter, Transport};

use crate::client;
use crate::config::RunConfig;
use crate::error::LoadgenError;
use crate::http::Conn;
use crate::net::now_ns;
use crate::progress::Progress;
use crate::scrape::{cost_all, Scrape};

/// How long a closing subscriber waits for the server to close its side.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every transport of `config` and returns the result (losses are in the result, not
/// errors: see [`RunResult::notes`] and each transport's counters).
pub async fn run(config: RunConfig) -> Result<RunResult, LoadgenError> {
    config.check()?;
    let started_at = SystemTime::now();
    let nofile = crate::net::raise_nofile_limit();
    let need = config.peak_clients() + 64;
    if need > nofile {
        return Err(LoadgenError::Limit(format!(
            "--clients {} needs about {need} open files at once but the limit is {nofile}: lower --clients{} or raise the hard limit (ulimit -Hn)",
            config.clients,
            if config.concurrent { " or drop --concurrent" } else { "" },
        )));
    }
    let mut notes = Vec::new();
    let dialect = client::dialect_for(config.target_profile);
    let metrics = if config.is_lead() {
        cost_all(&config.targets, config.server_pid).await?
    } else {
        None
    };
    match &metrics {
        None if !config.is_lead() => notes.push(
            "a follower shard: shard 0 scrapes the server's cost for every shard".into(),
        ),
        None => notes.push(format!(
            "{} has no /metrics: server CPU, memory and byte counts are left out",
            config.target.url
        )),
        Some(Scrape {
            proc_pid: Some(pid),
            ..
        }) => notes.push(format!(
            "{} has no /metrics: server CPU and RSS are process {pid}'s and its descendants' (/proc, --server-pid); the server's byte counts are left out (0)",
            config.target.url
        )),
        Some(_) if config.same_process_server => notes.push(
            "the server runs inside the loadgen's process: its CPU and RSS figures include the loadgen's".into(),
        ),
        Some(_) => {}
    }
    let target_desc = format!(
        "{} at {}{}",
        dialect.name(),
        config.target.url,
        if metrics.as_ref().is_some_and(Scrape::is_pushlab) {
            " (pushlab-server metrics)"
        } else {
            ""
        }
    );
    let progress = Progress::new(config.progress && std::io::stdout().is_terminal());
    let phases: Vec<Vec<Transport>> = if config.concurrent {
        vec![config.transports.clone()]
    } else {
        config.transports.iter().map(|&t| vec![t]).collect()
    };
    let mut transports = Vec::new();
    for phase in &phases {
        let results = phase::run_phase(
            &config,
            phase,
            metrics.is_some(),
            &dialect,
            &progress,
            &mut notes,
        )
        .await?;
        transports.extend(results);
    }
    for t in &transports {
        if t.lost_messages > 0 || t.duplicate_messages > 0 {
            notes.push(format!(
                "{}: {} lost, {} duplicate, {} out-of-order messages",
                t.transport, t.lost_messages, t.duplicate_messages, t.out_of_order_messages
            ));
        }
    }
    Ok(RunResult {
        schema_version: SCHEMA_VERSION,
        tool: format!("pushlab-loadgen {}", env!("CARGO_PKG_VERSION")),
        started_at: crate::net::rfc3339(started_at),
        finished_at: crate::net::rfc3339(SystemTime::now()),
        command: config.command.clone(),
        config: serde_json::to_value(&config).unwrap_or_default(),
        environment: crate::environment::collect(target_desc),
        transports,
        merged_runs: 1,
        notes,
        repeat: 1,
        repeats: 1,
    })
}

/// Eight hex digits to keep the topics of different runs apart.
pub(crate) fn random_suffix() -> String {
    let mut x = now_ns() ^ ((std::process::id() as u64) << 24);
    // splitmix64: enough to keep topics of different runs apart.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:08x}", (x ^ (x >> 31)) as u32)
}

/// The newest seq of an existing topic (one `GET /poll/{topic}` without a cursor).
async fn probe_latest(config: &RunConfig, topic: &str) -> Result<u64, LoadgenError> {
    let mut conn = Conn::connect(config.target.addr, None, Arc::new(ByteCounter::default()))
        .await
        .map_err(|e| LoadgenError::Other(format!("probing topic {topic}: {e}")))?;
    let req = format!(
        "GET /poll/{topic} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        config.target.host_header
    );
    let io = async {
        conn.send(req.as_bytes()).await?;
        let head = conn.read_head().await?;
        let (body, _) = conn.read_body(head.body, 64 << 20).await?;
        Ok::<_, crate::http::ClientError>((head.status, body))
    };
    let (status, body) = io
        .await
        .map_err(|e| LoadgenError::Other(format!("probing topic {topic}: {e}")))?;
    if status != 200 {
        return Err(LoadgenError::Refused {
            target: config.target.url.clone(),
            what: format!("GET /poll/{topic}"),
            status,
            body: crate::http::preview(&body),
        });
    }
    pushlab_proto::frame::PollBatch::parse(&body)
        .map(|b| b.next)
        .map_err(|e| LoadgenError::Other(format!("probing topic {topic}: {e}")))
}

fn classify_subscribe_error(cfg: &RunConfig, t: Transport, first: &str) -> LoadgenError {
    if first.contains("Too many open files") {
        return LoadgenError::Limit(format!(
            "{t}: out of file descriptors ({first}): lower --clients or raise the hard open-file limit"
        ));
    }
    if first.contains("Cannot assign requested address") || first.contains("Address already in use")
    {
        return LoadgenError::Limit(format!(
            "{t}: out of local ports or a bad source address ({first}): use --source-ips 127.0.0.2-127.0.0.40 or lower --clients"
        ));
    }
    LoadgenError::NoSubscriber {
        transport: format!(
            "{t} at {}",
            cfg.targets
                .iter()
                .map(|x| x.url.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        first_error: first.to_string(),
    }
}
