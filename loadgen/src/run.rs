//! One run: phases of transports, each with its subscribers, publisher and server scrapes.
//!
//! ```text
//! per phase (one transport, or all with --concurrent):
//!   scrape /metrics ── connect N subscribers (--ramp) ── scrape (RSS while connected)
//!   ── publish for warmup + duration (open loop) ── drain: wait until every subscriber holds
//!   the last seq (or the drain deadline) ── close every socket (FIN, read to EOF)
//!   ── scrape /metrics
//! ```
//!
//! Transports run one after another by default on a fresh topic each (`lab-<transport>-<id>`)
//! so they neither share the machine nor each other's messages.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pushlab_proto::result::{RunResult, Scenario, ServerCost, TransportResult, SCHEMA_VERSION};
use pushlab_proto::{ByteCounter, Transport};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{self, ClientSettings, Dialect, Outcome, Signal};
use crate::config::RunConfig;
use crate::error::LoadgenError;
use crate::http::Conn;
use crate::net::{instant_ns, now_ns, TCPIP_HEADER_BYTES_PER_SEGMENT};
use crate::progress::Progress;
use crate::publisher::{self, Published, Schedule};
use crate::record::{encode_histogram, latency_of, Recorder};
use crate::scrape::{cost, Scrape};

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
    let metrics = cost(&config.target, config.server_pid).await?;
    match &metrics {
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
        let results = run_phase(
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

fn random_suffix() -> String {
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

struct PhaseTopic {
    name: String,
    start_cursor: u64,
    signal: watch::Sender<Signal>,
}

async fn run_phase(
    cfg: &RunConfig,
    phase: &[Transport],
    has_metrics: bool,
    dialect: &Arc<dyn Dialect>,
    progress: &Progress,
    notes: &mut Vec<String>,
) -> Result<Vec<TransportResult>, LoadgenError> {
    let suffix = random_suffix();
    // One topic per transport, or the one --topic for all.
    let mut topics: Vec<PhaseTopic> = Vec::new();
    let mut topic_of: BTreeMap<Transport, usize> = BTreeMap::new();
    for &t in phase {
        let name = cfg
            .topic
            .clone()
            .unwrap_or_else(|| format!("lab-{t}-{suffix}"));
        let idx = match topics.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                let start_cursor = if cfg.topic.is_some() {
                    notes.push(format!(
                        "topic {name} given: its newest seq was read with one GET /poll (counted by the server under poll)"
                    ));
                    probe_latest(cfg, &name).await?
                } else {
                    0
                };
                topics.push(PhaseTopic {
                    name,
                    start_cursor,
                    signal: watch::channel(Signal::default()).0,
                });
                topics.len() - 1
            }
        };
        topic_of.insert(t, idx);
    }

    let before = if has_metrics {
        cost(&cfg.target, cfg.server_pid).await?
    } else {
        None
    };
    let recs: BTreeMap<Transport, Arc<Recorder>> = phase
        .iter()
        .map(|&t| (t, Arc::new(Recorder::new(t))))
        .collect();
    let settings: BTreeMap<Transport, Arc<ClientSettings>> = phase
        .iter()
        .map(|&t| {
            let topic = &topics[topic_of[&t]];
            let s = ClientSettings {
                target: cfg.target.clone(),
                transport: t,
                topic: topic.name.clone(),
                start_cursor: topic.start_cursor,
                header_profile: cfg.header_profile,
                keep_alive: cfg.keep_alive,
                poll_interval: cfg.poll_interval,
                longpoll_timeout_s: cfg.longpoll_timeout_s,
                clients: cfg.clients,
                source_ips: cfg.source_ips.clone(),
                dialect: dialect.clone(),
                drop_after_messages: cfg.drop_after_messages,
                close_timeout: CLOSE_TIMEOUT,
            };
            (t, Arc::new(s))
        })
        .collect();

    let bars = progress.phase(phase, &recs, cfg);
    let subscribed = Arc::new(Notify::new());
    let mut tasks: JoinSet<(Transport, u64, Outcome)> = JoinSet::new();
    let ramp_start = Instant::now();
    let mut spawned = 0u64;
    for i in 0..cfg.clients {
        for &t in phase {
            if let Some(r) = cfg.ramp_per_s {
                tokio::time::sleep_until(ramp_start + Duration::from_secs_f64(spawned as f64 / r))
                    .await;
                bars.tick(&recs, "connecting");
            }
            let rx = topics[topic_of[&t]].signal.subscribe();
            client::spawn(
                &mut tasks,
                i,
                settings[&t].clone(),
                recs[&t].clone(),
                rx,
                subscribed.clone(),
            );
            spawned += 1;
        }
    }

    // Wait until every subscriber is in (or gave up).
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_millis(cfg.clients);
    loop {
        let settled = recs
            .values()
            .all(|r| Recorder::get(&r.subscribed) + Recorder::get(&r.gave_up) >= cfg.clients);
        if settled {
            break;
        }
        if Instant::now() >= deadline {
            stop_all(&topics);
            return Err(LoadgenError::Other(format!(
                "subscribers still not connected after {:?}: the target is too slow to accept them (try --ramp)",
                deadline - ramp_start
            )));
        }
        tokio::select! {
            _ = subscribed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        bars.tick(&recs, "connecting");
    }
    for (t, r) in &recs {
        let gave_up = Recorder::get(&r.gave_up);
        if Recorder::get(&r.subscribed) == 0 {
            stop_all(&topics);
            let (problems, _) = r.problems();
            let first = problems.first().cloned().unwrap_or_default();
            return Err(classify_subscribe_error(cfg, *t, &first));
        }
        if gave_up > 0 {
            notes.push(format!(
                "{t}: {gave_up} of {} subscribers could not subscribe",
                cfg.clients
            ));
        }
    }
    let connected = if has_metrics {
        cost(&cfg.target, cfg.server_pid).await?
    } else {
        None
    };

    // Publish: warmup, then the measured window, on a fixed schedule.
    let schedule = Schedule {
        start: Instant::now() + Duration::from_millis(50),
        rate_per_s: cfg.rate_per_s,
    };
    let total = schedule.count_before(cfg.warmup + cfg.duration);
    let window_first = schedule.count_before(cfg.warmup);
    let window_start_ns = instant_ns((schedule.start + cfg.warmup).into_std());
    let window_end_ns = instant_ns((schedule.start + cfg.warmup + cfg.duration).into_std());
    for r in recs.values() {
        r.window.set(window_start_ns, window_end_ns);
    }
    let mut publishers: JoinSet<(usize, Result<Published, LoadgenError>)> = JoinSet::new();
    for (i, topic) in topics.iter().enumerate() {
        let target = cfg.target.clone();
        let feed = publisher::Feed {
            dialect: dialect.clone(),
            topic: topic.name.clone(),
            first_seq: topic.start_cursor + 1,
        };
        let payload = cfg.payload_bytes;
        publishers.spawn(async move {
            (
                i,
                publisher::publish(&target, &feed, schedule, total, window_first, payload).await,
            )
        });
    }
    let mid = schedule.start + cfg.warmup + cfg.duration / 2;
    let mut mid_scrape: Option<Scrape> = None;
    let mut published: Vec<Option<Published>> = vec![None; topics.len()];
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while !publishers.is_empty() {
        tokio::select! {
            done = publishers.join_next() => {
                let Some(done) = done else { break };
                let (i, res) = done.map_err(|e| LoadgenError::Other(format!("publisher task: {e}")))?;
                match res {
                    Ok(p) => published[i] = Some(p),
                    Err(e) => {
                        stop_all(&topics);
                        publishers.abort_all();
                        return Err(e);
                    }
                }
            }
            _ = tokio::time::sleep_until(mid), if has_metrics && mid_scrape.is_none() => {
                mid_scrape = cost(&cfg.target, cfg.server_pid).await.ok().flatten();
                if mid_scrape.is_none() {
                    mid_scrape = Some(Scrape::default());
                }
            }
            _ = ticker.tick() => bars.tick(&recs, "publishing"),
        }
    }
    let published: Vec<Published> = published
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();

    // Drain: every subscriber stops once it holds the last seq; the rest are stopped later.
    for (topic, p) in topics.iter().zip(&published) {
        topic.signal.send_replace(Signal {
            target: Some(p.last_seq.max(topic.start_cursor)),
            stop: false,
        });
    }
    let drain = Duration::from_secs(2).max(cfg.poll_interval * 2 + Duration::from_secs(1));
    let drain_deadline = Instant::now() + drain;
    let mut outcomes: Vec<(Transport, u64, Outcome)> = Vec::new();
    let mut stopped = false;
    let mut hard_deadline = drain_deadline + CLOSE_TIMEOUT * 3 + Duration::from_secs(5);
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(Ok(o)) => outcomes.push(o),
                Some(Err(e)) => notes.push(format!("a subscriber task failed: {e}")),
                None => break,
            },
            _ = tokio::time::sleep_until(drain_deadline), if !stopped => {
                stopped = true;
                hard_deadline = Instant::now() + CLOSE_TIMEOUT * 3 + Duration::from_secs(5);
                stop_all(&topics);
            }
            _ = tokio::time::sleep_until(hard_deadline) => {
                notes.push(format!("{} subscribers did not close in time and were dropped", tasks.len()));
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
            _ = ticker.tick() => bars.tick(&recs, "draining"),
        }
    }
    bars.finish(&recs);
    let after = if has_metrics {
        settled_cost(cfg, phase).await?
    } else {
        None
    };

    // Losses, named: which subscribers, which seqs.
    for &t in phase {
        let mut losers: Vec<&(Transport, u64, Outcome)> = outcomes
            .iter()
            .filter(|(tt, _, o)| *tt == t && o.lost > 0)
            .collect();
        losers.sort_by_key(|(_, id, _)| *id);
        if !losers.is_empty() {
            let shown: Vec<String> = losers
                .iter()
                .take(3)
                .map(|(_, id, o)| format!("client {id} lost {} (seq {})", o.lost, o.missing))
                .collect();
            notes.push(format!(
                "{t}: {} of {} subscribers lost messages: {}{}",
                losers.len(),
                cfg.clients,
                shown.join("; "),
                if losers.len() > 3 { "; ..." } else { "" }
            ));
        }
    }

    let elapsed_cpu = match (&before, &after) {
        (Some(b), Some(a)) => match (b.cpu_seconds(), a.cpu_seconds()) {
            (Some(x), Some(y)) => Some(y - x),
            _ => None,
        },
        _ => None,
    };
    let phase_delivered: u64 = recs.values().map(|r| Recorder::get(&r.delivered)).sum();
    let mut results = Vec::new();
    for &t in phase {
        let rec = &recs[&t];
        let p = &published[topic_of[&t]];
        let mut tnotes = Vec::new();
        let delivered = Recorder::get(&rec.delivered);
        let segments_known = rec.segments_known.load(Ordering::Relaxed);
        let segments = Recorder::get(&rec.segments);
        let tally = rec.tally();
        let tcpip = if segments_known {
            segments * TCPIP_HEADER_BYTES_PER_SEGMENT
        } else {
            0
        };
        let bytes_total = tally.split(tcpip);
        let bytes_per_message = if delivered > 0 {
            bytes_total.scaled(1.0 / delivered as f64)
        } else {
            Default::default()
        };
        let hist = rec.histogram();
        let unattributed = Recorder::get(&rec.unattributed);
        if unattributed > 0 {
            tnotes.push(format!(
                "{unattributed} bytes were read but not parsed (connections cut mid-message); counted as framing"
            ));
        }
        let unclean = Recorder::get(&rec.unclean_closes);
        if unclean > 0 {
            tnotes.push(format!(
                "{unclean} connections were not closed by the server within {CLOSE_TIMEOUT:?} of ours: bytes it sent later are not counted"
            ));
        }
        let over = Recorder::get(&rec.overattributed);
        if over > 0 {
            tnotes.push(format!(
                "byte split attributed {over} bytes more than were counted: a loadgen bug, please report"
            ));
        }
        let foreign = Recorder::get(&rec.foreign_messages);
        if foreign > 0 {
            tnotes.push(format!(
                "{foreign} deliveries carried no send-time stamp (another publisher on the topic): no latency sample"
            ));
        }
        if p.max_behind > Duration::from_millis(100) {
            tnotes.push(format!(
                "the publisher fell up to {:?} behind its schedule; latency includes it (no coordinated omission)",
                p.max_behind
            ));
        }
        if p.errors > 0 {
            tnotes.push(format!("{} publish requests failed", p.errors));
        }
        let (problems, problem_count) = rec.problems();
        if problem_count > 0 {
            tnotes.push(format!(
                "{problem_count} problems, first: {}",
                problems.join(" | ")
            ));
        }
        let server = match (&before, &after) {
            (Some(b), Some(a)) => {
                let label = t.as_str();
                let rss_before = b.rss_bytes().unwrap_or(0);
                let rss_peak = [connected.as_ref(), mid_scrape.as_ref()]
                    .into_iter()
                    .flatten()
                    .filter_map(Scrape::rss_bytes)
                    .max()
                    .unwrap_or(rss_before);
                let open = Recorder::get(&rec.peak_open_connections).max(1);
                let diff = |name: &str| {
                    a.by_transport(name, label)
                        .unwrap_or(0)
                        .saturating_sub(b.by_transport(name, label).unwrap_or(0))
                };
                Some(ServerCost {
                    cpu_seconds: elapsed_cpu.unwrap_or(0.0),
                    rss_bytes_before: rss_before,
                    rss_bytes_after: a.rss_bytes().unwrap_or(0),
                    rss_bytes_per_connection: rss_peak.saturating_sub(rss_before) as f64
                        / open as f64,
                    server_bytes_read: diff("pushlab_bytes_read_total"),
                    server_bytes_written: diff("pushlab_bytes_written_total"),
                    ..ServerCost::default()
                })
            }
            _ => None,
        };
        if server
            .as_ref()
            .is_some_and(|s| s.rss_bytes_per_connection == 0.0)
        {
            tnotes.push(
                "server RSS did not grow while subscribers were connected (memory freed by an earlier phase was reused): memory per connection not measured; run this transport alone on a fresh server"
                    .into(),
            );
        }
        if server.is_some() && phase.len() > 1 {
            tnotes.push(
                "--concurrent: server CPU and memory are the whole phase's, shared by all transports"
                    .into(),
            );
        }
        let server_cpu_us_per_1k_messages = elapsed_cpu
            .filter(|_| phase_delivered > 0)
            .map(|cpu| cpu * 1e6 / phase_delivered as f64 * 1000.0);
        results.push(TransportResult {
            transport: t,
            scenario: Scenario {
                clients: cfg.clients,
                publish_rate_per_s: cfg.rate_per_s,
                payload_bytes: cfg.payload_bytes as u64,
                poll_interval_ms: cfg.poll_interval.as_millis() as u64,
                duration_s: cfg.duration.as_secs_f64(),
                warmup_s: cfg.warmup.as_secs_f64(),
                keep_alive: cfg.keep_alive,
                header_profile: cfg.header_profile.as_str().into(),
                target_profile: cfg.target_profile.as_str().into(),
                http_version: "http/1.1".into(),
            },
            clients: cfg.clients,
            published_messages: p.published,
            delivered_messages: delivered,
            wire_bytes_up: Recorder::get(&rec.wire_up),
            wire_bytes_down: Recorder::get(&rec.wire_down),
            bytes_total,
            bytes_per_message,
            latency_us: latency_of(&hist),
            http_requests: Recorder::get(&rec.http_requests),
            empty_responses: Recorder::get(&rec.empty_responses),
            tcp_connects: Recorder::get(&rec.tcp_connects),
            peak_open_connections: Recorder::get(&rec.peak_open_connections),
            reconnects: Recorder::get(&rec.reconnects),
            errors: Recorder::get(&rec.errors),
            gap_notices: Recorder::get(&rec.gap_notices),
            lost_messages: Recorder::get(&rec.lost),
            duplicate_messages: Recorder::get(&rec.duplicates),
            out_of_order_messages: Recorder::get(&rec.out_of_order),
            server_cpu_us_per_1k_messages,
            server_cpu_us_per_connect: None,
            server_cpu_us_per_idle_connection_s: None,
            server_cpu_us_per_delivery: elapsed_cpu
                .filter(|_| phase_delivered > 0)
                .map(|cpu| cpu * 1e6 / phase_delivered as f64),
            server,
            loadgen: None,
            tcp_segments: segments_known.then_some(segments),
            histogram: encode_histogram(&hist),
            window_published_messages: p.window_published,
            unattributed_bytes: unattributed,
            notes: tnotes,
        });
    }
    Ok(results)
}

/// The closing scrape, taken once the server has closed every connection of this phase, or
/// after 3 s. Only then are its byte counters final: a subscriber dropped at the deadline may
/// leave bytes in the server's socket buffer that the server reads (and counts) a moment later,
/// after our side has already counted them as sent.
async fn settled_cost(
    cfg: &RunConfig,
    phase: &[Transport],
) -> Result<Option<crate::scrape::Scrape>, LoadgenError> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let scrape = cost(&cfg.target, cfg.server_pid).await?;
        let open: u64 = scrape.as_ref().map_or(0, |s| {
            phase
                .iter()
                .map(|t| {
                    s.by_transport("pushlab_open_connections", t.as_str())
                        .unwrap_or(0)
                })
                .sum()
        });
        if open == 0 || Instant::now() >= deadline {
            return Ok(scrape);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stop_all(topics: &[PhaseTopic]) {
    for t in topics {
        t.signal.send_modify(|s| s.stop = true);
    }
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
        transport: format!("{t} at {}", cfg.target.url),
        first_error: first.to_string(),
    }
}
