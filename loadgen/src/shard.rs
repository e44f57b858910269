//! `run --shards N`: one run spread over N child `pushlab-loadgen` processes, because one
//! process may hold at most 20,000 open files here (RLIMIT_NOFILE's hard limit) and 100,000
//! subscribers need several.
//!
//! ```text
//! parent: check the fd arithmetic ([`plan`]) ─ per phase (one transport, or all with
//!   --concurrent): start N children at once
//!     pushlab-loadgen run ... --clients C --shard I/N --start-at T --source-ips 127.0.0.(2+I)
//!       --out TMP/shard-I-PHASE.json --quiet
//!   ─ wait for all (one that fails stops the others and fails the run with its stderr)
//!   ─ merge every shard's result ([`crate::merge`], shared-server mode) into one; with --out
//!     OUT.json the shards' results stay in OUT.shards/
//! child I: clients [I*C/N, (I+1)*C/N) (global ids: round-robin over --target by id), its own
//!   source address, its own fd budget; at T every shard connects, after --connect-budget all
//!   idle for --idle, then shard 0 publishes to the first --target on the schedule every shard
//!   computes from T (the others only subscribe and expect what the schedule publishes) and
//!   scrapes the server before and after for everyone.
//! ```
//!
//! The same flags run shards on several hosts: `--shard I/N --start-at T` on each (clocks in
//! step, e.g. NTP), then `pushlab-loadgen merge` of their results.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pushlab_proto::result::RunResult;
use pushlab_proto::Transport;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::RunArgs;
use crate::config::RunConfig;
use crate::error::LoadgenError;

/// Open files one process may hold here, whatever its soft limit: the hard RLIMIT_NOFILE.
pub const PROCESS_FD_LIMIT: u64 = 20_000;
/// Open files a loadgen process needs besides its subscribers' sockets: the runtime, stdio,
/// the publisher's and the scrapes' connections, with room to spare.
pub const PROCESS_FD_OVERHEAD: u64 = 64;
/// Open files the parent holds per child: its stderr pipe and the pidfd tokio may open.
pub const PARENT_FDS_PER_SHARD: u64 = 2;

/// Sockets one subscriber holds at once. Every transport holds one: SSE, stream and WebSocket
/// their long-lived connection, poll and long poll their keep-alive connection (or, with
/// keep-alive off, one request's connection at a time; closed sockets in TIME_WAIT hold no
/// file).
pub fn fds_per_subscriber(t: Transport) -> u64 {
    match t {
        Transport::Poll | Transport::LongPoll => 1,
        Transport::Sse | Transport::Stream | Transport::Ws => 1,
    }
}

/// Files per client at the busiest phase: one transport at a time, or all with `--concurrent`.
pub fn fds_per_client(transports: &[Transport], concurrent: bool) -> u64 {
    let each = transports.iter().map(|&t| fds_per_subscriber(t));
    if concurrent {
        each.sum()
    } else {
        each.max().unwrap_or(1)
    }
}

/// The clients of shard `index` of `count`: `(first global id, how many)`, the remainder
/// spread over the first shards.
pub fn slice(clients: u64, count: u32, index: u32) -> (u64, u64) {
    let (n, i) = (u64::from(count.max(1)), u64::from(index));
    let (base, rem) = (clients / n, clients % n);
    (i * base + i.min(rem), base + u64::from(i < rem))
}

/// What `--shards` will do, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub shards: u32,
    /// Open files the busiest shard needs (its subscribers plus the overhead).
    pub fds_per_shard: u64,
}

/// Checks `--shards` against the fd budget: `limit` open files per process (the parent's for
/// its children's pipes, each child's for its slice of `clients` at `fds_per_client` each).
/// The error spells out the arithmetic and the fix.
pub fn plan(clients: u64, shards: u32, fds_per_client: u64, limit: u64) -> Result<Plan, String> {
    if shards == 0 {
        return Err("--shards 0: at least 1".into());
    }
    let n = u64::from(shards);
    let parent = n * PARENT_FDS_PER_SHARD + PROCESS_FD_OVERHEAD;
    if parent > limit {
        return Err(format!(
            "--shards {n} needs {n} x {PARENT_FDS_PER_SHARD} + {PROCESS_FD_OVERHEAD} = {parent} open files in the parent, more than the {limit} one process may hold: at most {} shards",
            (limit.saturating_sub(PROCESS_FD_OVERHEAD)) / PARENT_FDS_PER_SHARD
        ));
    }
    if n > clients {
        return Err(format!(
            "--shards {n} is more than --clients {clients}: every shard needs at least one client"
        ));
    }
    let per_shard = clients.div_ceil(n);
    let need = per_shard * fds_per_client + PROCESS_FD_OVERHEAD;
    if need > limit {
        let room = limit.saturating_sub(PROCESS_FD_OVERHEAD) / fds_per_client.max(1);
        let enough = if room == 0 {
            "no shard count is enough".to_string()
        } else {
            format!("use --shards {} or more", clients.div_ceil(room))
        };
        return Err(format!(
            "--clients {clients} over --shards {n} is {per_shard} clients per shard x {fds_per_client} open files each + {PROCESS_FD_OVERHEAD} = {need}, more than the {limit} one process may hold: {enough}"
        ));
    }
    Ok(Plan {
        shards,
        fds_per_shard: need,
    })
}

/// The source addresses of each shard: the given ones dealt out (at least one per shard), or,
/// toward a loopback target, `127.0.0.(2+I)` for shard I (its own ~28,000 ephemeral ports).
pub fn sources(given: &[IpAddr], shards: u32, loopback: bool) -> Result<Vec<Vec<IpAddr>>, String> {
    let n = shards as usize;
    if !given.is_empty() {
        if given.len() < n {
            return Err(format!(
                "--source-ips gives {} addresses for --shards {n}: give at least one per shard",
                given.len()
            ));
        }
        return Ok((0..n)
            .map(|i| given.iter().skip(i).step_by(n).copied().collect())
            .collect());
    }
    if !loopback {
        return Ok(vec![Vec::new(); n]);
    }
    let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    let last = u32::from(Ipv4Addr::new(127, 255, 255, 254));
    if first + shards - 1 > last {
        return Err(format!(
            "--shards {n}: more than 127.0.0.0/8 has source addresses"
        ));
    }
    Ok((0..shards)
        .map(|i| vec![IpAddr::V4(Ipv4Addr::from(first + i))])
        .collect())
}

/// The open files one process may hold: the hard RLIMIT_NOFILE, capped at
/// [`PROCESS_FD_LIMIT`].
pub fn process_fd_limit() -> u64 {
    crate::net::raise_nofile_limit().min(PROCESS_FD_LIMIT)
}

fn secs_flag(d: Duration) -> String {
    format!("{}us", d.as_micros())
}

/// The child's command line: every flag of `args` as given, with this shard's clients,
/// transports, sources, start and output.
fn child_argv(args: &RunArgs, shard: ShardSpec<'_>) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into()];
    let mut flag = |k: &str, val: String| {
        v.push(format!("--{k}"));
        v.push(val);
    };
    flag("target", args.target.join(","));
    flag(
        "transports",
        shard
            .transports
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    flag("clients", args.clients.to_string());
    flag("duration", secs_flag(args.duration));
    flag("warmup", secs_flag(args.warmup));
    flag("idle", secs_flag(args.idle));
    flag("rate", args.rate.to_string());
    flag("payload-bytes", args.payload_bytes.to_string());
    flag("poll-interval", secs_flag(args.poll_interval));
    flag("longpoll-timeout", args.longpoll_timeout.to_string());
    if let Some(t) = &args.topic {
        flag("topic", t.clone());
    }
    if let Some(r) = args.ramp {
        flag("ramp", (r / f64::from(shard.count)).to_string());
    }
    flag("keep-alive", value_name(args.keep_alive));
    flag("header-profile", value_name(args.header_profile));
    flag("http", value_name(args.http));
    flag("tls", value_name(args.tls));
    if let Some(spki) = &args.tls_spki {
        flag("tls-spki", spki.clone());
    }
    if let Some(ca) = &args.tls_ca {
        flag("tls-ca", ca.display().to_string());
    }
    flag(
        "streams-per-connection",
        args.streams_per_connection.to_string(),
    );
    if !shard.sources.is_empty() {
        flag(
            "source-ips",
            shard
                .sources
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    flag("target-profile", value_name(args.target_profile));
    if let Some(pid) = args.server_pid {
        flag("server-pid", pid.to_string());
    }
    if let Some(n) = args.drop_after {
        flag("drop-after", n.to_string());
    }
    if let Some(b) = args.connect_budget {
        flag("connect-budget", secs_flag(b));
    }
    flag("shard", format!("{}/{}", shard.index, shard.count));
    flag("start-at", format!("{:.9}", shard.start_at_ns as f64 / 1e9));
    flag("topic-suffix", shard.topic_suffix.into());
    flag("published-file", shard.published.display().to_string());
    flag("out", shard.out.display().to_string());
    if args.concurrent {
        v.push("--concurrent".into());
    }
    v.push("--quiet".into());
    v
}

/// A flag value as clap spells it.
fn value_name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

#[derive(Clone, Copy)]
struct ShardSpec<'a> {
    index: u32,
    count: u32,
    transports: &'a [Transport],
    sources: &'a [IpAddr],
    start_at_ns: u64,
    topic_suffix: &'a str,
    out: &'a Path,
    /// Where shard 0 writes what it published, for the others ([`crate::run::handoff`]).
    published: &'a Path,
}

/// How long before `--start-at` the children are started: time to exec, probe and scrape.
fn lead_time(shards: u32) -> Duration {
    Duration::from_millis(1500 + 20 * u64::from(shards))
}

/// Runs `args` as `shards` child processes and merges their results (see the module docs).
pub async fn run_sharded(args: &RunArgs, shards: u32) -> Result<RunResult, LoadgenError> {
    let config: RunConfig = args.clone().into_config()?;
    let fds = fds_per_client(&config.transports, config.concurrent);
    plan(config.clients, shards, fds, process_fd_limit()).map_err(LoadgenError::Limit)?;
    let loopback = config.targets.iter().all(|t| t.addr.ip().is_loopback());
    let sources = sources(&config.source_ips, shards, loopback).map_err(LoadgenError::Limit)?;
    let exe = std::env::current_exe().map_err(|e| LoadgenError::Io {
        context: "finding the pushlab-loadgen executable".into(),
        error: e,
    })?;
    let suffix = crate::run::random_suffix();
    // Beside --out the shards' own results stay, to check the merge against; without it they
    // go to a temporary directory removed after the merge.
    let keep = args.out.as_ref().map(|o| o.with_extension("shards"));
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("pushlab-shards-{}-{suffix}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| LoadgenError::Io {
        context: format!("creating {}", dir.display()),
        error: e,
    })?;
    let phases: Vec<Vec<Transport>> = if config.concurrent {
        vec![config.transports.clone()]
    } else {
        config.transports.iter().map(|&t| vec![t]).collect()
    };
    let mut runs = Vec::new();
    for (p, phase) in phases.iter().enumerate() {
        let start_at_ns = crate::net::now_ns() + lead_time(shards).as_nanos() as u64;
        let outs: Vec<PathBuf> = (0..shards)
            .map(|i| dir.join(format!("phase-{p}-shard-{i}.json")))
            .collect();
        let published = dir.join(format!("phase-{p}-published.handoff"));
        let _ = std::fs::remove_file(&published);
        let argvs: Vec<Vec<String>> = (0..shards)
            .map(|i| {
                child_argv(
                    args,
                    ShardSpec {
                        index: i,
                        count: shards,
                        transports: phase,
                        sources: &sources[i as usize],
                        start_at_ns,
                        topic_suffix: &suffix,
                        out: &outs[i as usize],
                        published: &published,
                    },
                )
            })
            .collect();
        let ran = run_children(&exe, &argvs).await;
        let _ = std::fs::remove_file(&published);
        ran?;
        for (i, out) in outs.iter().enumerate() {
            let text = std::fs::read_to_string(out).map_err(|e| LoadgenError::Io {
                context: format!("reading shard {i}/{shards}'s result {}", out.display()),
                error: e,
            })?;
            let r: RunResult = serde_json::from_str(&text).map_err(|e| {
                LoadgenError::Other(format!(
                    "shard {i}/{shards}'s result {}: {e}",
                    out.display()
                ))
            })?;
            runs.push((format!("shard {i}/{shards} ({})", phase_name(phase)), r));
        }
    }
    let mut merged = crate::merge::merge(&runs).map_err(|e| LoadgenError::Other(e.to_string()))?;
    merged.command = config.command.clone();
    merged.config = serde_json::to_value(&config).unwrap_or_default();
    merged.merged_runs = 1;
    merged.notes.insert(
        0,
        format!(
            "{shards} shards (child processes) of {} clients each at most, {fds} open file(s) per client; merged",
            config.clients.div_ceil(u64::from(shards))
        ),
    );
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(merged)
}

fn phase_name(phase: &[Transport]) -> String {
    phase
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// Starts every child at once and waits for all. The first that fails stops the others (the
/// children this function started, by their handles) and fails with its stderr.
async fn run_children(exe: &Path, argvs: &[Vec<String>]) -> Result<(), LoadgenError> {
    let count = argvs.len();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<(usize, Result<(), String>)> = JoinSet::new();
    for (i, argv) in argvs.iter().enumerate() {
        let mut child = tokio::process::Command::new(exe)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LoadgenError::Io {
                context: format!("starting shard {i}/{count} ({})", exe.display()),
                error: e,
            })?;
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut stderr = child.stderr.take();
            let read = async {
                let mut text = String::new();
                if let Some(s) = stderr.as_mut() {
                    let _ = s.read_to_string(&mut text).await;
                }
                text
            };
            let wait = async {
                tokio::select! {
                    st = child.wait() => st.map(Some),
                    _ = async { stop.wait_for(|s| *s).await.is_ok() } => {
                        let _ = child.kill().await;
                        Ok(None)
                    }
                }
            };
            let (text, status) = tokio::join!(read, wait);
            let outcome = match status {
                Ok(Some(st)) if st.success() => Ok(()),
                Ok(Some(st)) => Err(format!("{st}: {}", text.trim())),
                Ok(None) => Err("stopped".into()),
                Err(e) => Err(format!("waiting for it: {e}")),
            };
            (i, outcome)
        });
    }
    let mut failure: Option<String> = None;
    while let Some(done) = tasks.join_next().await {
        let (i, outcome) = done.map_err(|e| LoadgenError::Other(format!("shard task: {e}")))?;
        if let Err(why) = outcome {
            if failure.is_none() {
                failure = Some(format!(
                    "shard {i}/{count} failed ({why}); the run is not merged"
                ));
                let _ = stop_tx.send(true);
            }
        }
    }
    match failure {
        Some(f) => Err(LoadgenError::Other(f)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_client_once() {
        let parts: Vec<(u64, u64)> = (0..4).map(|i| slice(10, 4, i)).collect();
        assert_eq!(parts, vec![(0, 3), (3, 3), (6, 2), (8, 2)]);
        assert_eq!(slice(7, 1, 0), (0, 7));
    }

    #[test]
    fn the_fd_arithmetic_refuses_up_front() {
        // 100,000 WebSocket clients, one socket each, 20,000 files per process.
        let ok = plan(100_000, 6, 1, 20_000).unwrap();
        assert_eq!(ok.fds_per_shard, 16_667 + 64);
        let e = plan(100_000, 4, 1, 20_000).unwrap_err();
        assert_eq!(
            e,
            "--clients 100000 over --shards 4 is 25000 clients per shard x 1 open files each + 64 = 25064, more than the 20000 one process may hold: use --shards 6 or more"
        );
        // All five transports at once: five sockets per client.
        let e = plan(20_000, 4, 5, 20_000).unwrap_err();
        assert!(
            e.contains("5000 clients per shard x 5 open files each + 64 = 25064"),
            "{e}"
        );
        assert!(e.ends_with("use --shards 6 or more"), "{e}");
        // The parent's pipes.
        let e = plan(1_000_000, 10_000, 1, 20_000).unwrap_err();
        assert_eq!(
            e,
            "--shards 10000 needs 10000 x 2 + 64 = 20064 open files in the parent, more than the 20000 one process may hold: at most 9968 shards"
        );
        assert!(plan(3, 4, 1, 20_000)
            .unwrap_err()
            .contains("at least one client"));
        assert!(plan(3, 0, 1, 20_000).is_err());
    }

    #[test]
    fn fds_per_client_by_phase() {
        assert_eq!(fds_per_client(&Transport::ALL, false), 1);
        assert_eq!(fds_per_client(&Transport::ALL, true), 5);
    }

    #[test]
    fn every_shard_gets_its_own_sources() {
        let s = sources(&[], 3, true).unwrap();
        assert_eq!(s[2], vec!["127.0.0.4".parse::<IpAddr>().unwrap()]);
        let given: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let s = sources(&given, 2, true).unwrap();
        assert_eq!(s[0], vec![given[0], given[2]]);
        assert_eq!(s[1], vec![given[1]]);
        assert!(sources(&given, 4, true)
            .unwrap_err()
            .contains("at least one per shard"));
        assert!(sources(&[], 2, false).unwrap().iter().all(Vec::is_empty));
    }
}
