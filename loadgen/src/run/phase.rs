//! One phase as named steps, each a function:
//!
//! ```text
//! topics ─ scrape(before) ─ connect ─ scrape(connected) ─ settle (idle) ─ scrape(settled)
//!   ─ publish ─ scrape(published) ─ drain (and close) ─ scrape(after) ─ assemble
//! ```
//!
//! The idle part ([`RunConfig::idle`], 1 s by default) holds every connection open with nothing
//! published, so what the server spends in it is what a connection costs while there is no
//! news: one empty poll per short-poll subscriber per second, timers for the rest. It is one
//! poll interval long so each short poller polls once in it; SSE and stream heartbeats (15 s)
//! and WebSocket pings (30 s) fall in it only when the server is told to send them that often.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pushlab_proto::result::{LinkScenario, Scenario, TransportResult};
use pushlab_proto::Transport;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::assemble::{assemble, Boundaries, PhaseRecord, TransportRecord};
use super::selfcost::SelfCostProbe;
use super::{classify_subscribe_error, probe_latest, random_suffix, CLOSE_TIMEOUT};
use crate::client::{self, ClientSettings, Dialect, Outcome, Signal};
use crate::config::RunConfig;
use crate::error::LoadgenError;
use crate::net::instant_ns;
use crate::progress::{PhaseBars, Progress};
use crate::publisher::{self, Published, Schedule};
use crate::record::Recorder;
use crate::scrape::{cost_all, Scrape};

/// A topic of the phase and the signal its subscribers watch.
struct PhaseTopic {
    name: String,
    start_cursor: u64,
    signal: watch::Sender<Signal>,
}

/// What every step of a phase shares.
struct Phase<'a> {
    cfg: &'a RunConfig,
    transports: &'a [Transport],
    has_metrics: bool,
    dialect: &'a Arc<dyn Dialect>,
    topics: Vec<PhaseTopic>,
    /// Transport -> index into `topics`.
    topic_of: BTreeMap<Transport, usize>,
    recs: BTreeMap<Transport, Arc<Recorder>>,
}

type Subscribers = JoinSet<(Transport, u64, Outcome)>;

impl Phase<'_> {
    fn stop_all(&self) {
        for t in &self.topics {
            t.signal.send_modify(|s| s.stop = true);
        }
    }

    /// A scrape of the target at a boundary (`None` for a target that cannot be read).
    async fn scrape(&self) -> Result<Option<Scrape>, LoadgenError> {
        if self.has_metrics {
            cost_all(&self.cfg.targets, self.cfg.server_pid).await
        } else {
            Ok(None)
        }
    }

    fn per_transport(&self, f: impl Fn(&Recorder) -> u64) -> BTreeMap<Transport, u64> {
        self.recs.iter().map(|(&t, r)| (t, f(r))).collect()
    }
}

/// Runs one phase (one transport, or several at once with `--concurrent`).
pub(super) async fn run_phase(
    cfg: &RunConfig,
    transports: &[Transport],
    has_metrics: bool,
    dialect: &Arc<dyn Dialect>,
    progress: &Progress,
    notes: &mut Vec<String>,
) -> Result<Vec<TransportResult>, LoadgenError> {
    let (topics, topic_of) = prepare_topics(cfg, transports, notes).await?;
    let ph = Phase {
        cfg,
        transports,
        has_metrics,
        dialect,
        topics,
        topic_of,
        recs: transports
            .iter()
            .map(|&t| (t, Arc::new(Recorder::new(t))))
            .collect(),
    };
    let probe = SelfCostProbe::start();
    let bars = progress.phase(transports, &ph.recs, cfg);
    let mut scrapes = Boundaries {
        before: ph.scrape().await?,
        ..Boundaries::default()
    };
    let timetable = Timetable::of(cfg);
    if let Some(tt) = &timetable {
        tokio::time::sleep_until(tt.connect_at).await;
    }
    let (mut subscribers, settings) = connect(&ph, &bars).await?;
    check_subscribed(&ph, notes)?;
    if let Some(tt) = &timetable {
        tt.wait_connected(cfg).await?;
    }
    scrapes.connected = ph.scrape().await?;
    let idle_start = Instant::now();
    let connects = ph.per_transport(|r| Recorder::get(&r.tcp_connects));
    let idle_end = timetable
        .as_ref()
        .map_or(idle_start + cfg.idle, |tt| tt.connected_by + cfg.idle);
    settle(&ph, &bars, idle_end).await;
    scrapes.settled = ph.scrape().await?;
    let idle_s = idle_start.elapsed().as_secs_f64();
    let open = ph.per_transport(|r| r.open_connections.load(Ordering::Relaxed).max(0) as u64);
    let subscribed = ph.per_transport(|r| Recorder::get(&r.subscribed));
    let publish_start = match &timetable {
        Some(_) => idle_end + Duration::from_millis(50),
        None => Instant::now() + Duration::from_millis(50),
    };
    let published = publish(&ph, &bars, publish_start).await?;
    scrapes.published = ph.scrape().await?;
    let delivered = ph.per_transport(|r| Recorder::get(&r.delivered_messages));
    let outcomes = drain(&ph, &published, &mut subscribers, &bars, notes).await;
    // HTTP/2 connections their subscribers let go of are accounted once they close.
    for s in &settings {
        s.h2_pool.drain(CLOSE_TIMEOUT).await;
    }
    bars.finish(&ph.recs);
    scrapes.after = if has_metrics {
        settled_cost(cfg, transports).await?
    } else {
        None
    };
    let loadgen = probe.finish().await;
    loss_notes(&ph, &outcomes, notes);
    let record = PhaseRecord {
        scenario: scenario_of(cfg),
        clients: cfg.clients,
        transports: transports
            .iter()
            .map(|&t| TransportRecord {
                transport: t,
                snapshot: ph.recs[&t].snapshot(),
                published: published[ph.topic_of[&t]].clone(),
                subscribed: subscribed[&t],
                connects_by_connected: connects[&t],
                open_at_settled: open[&t],
                delivered_by_published: delivered[&t],
            })
            .collect(),
        scrapes,
        idle_s,
        loadgen: Some(loadgen),
        close_timeout: CLOSE_TIMEOUT,
    };
    Ok(assemble(&record))
}

fn scenario_of(cfg: &RunConfig) -> Scenario {
    Scenario {
        clients: cfg.clients,
        publish_rate_per_s: cfg.rate_per_s,
        payload_bytes: cfg.payload_bytes as u64,
        poll_interval_ms: cfg.poll_interval.as_millis() as u64,
        duration_s: cfg.duration.as_secs_f64(),
        warmup_s: cfg.warmup.as_secs_f64(),
        keep_alive: cfg.keep_alive,
        header_profile: cfg.header_profile.as_str().into(),
        target_profile: cfg.target_profile.as_str().into(),
        http_version: cfg.http.scenario_name(cfg.tls).into(),
        tls: cfg.tls,
        link: cfg.link.as_ref().map(|l| LinkScenario {
            rtt_ms: l.rtt_ms,
            jitter_ms: l.jitter_ms,
            loss_ratio: l.loss_ratio,
            rate_bit_per_s: l.rate_bit_per_s,
        }),
    }
}

/// Step `topics`: one fresh topic per transport, or the one `--topic` for all (read from its
/// newest seq).
async fn prepare_topics(
    cfg: &RunConfig,
    transports: &[Transport],
    notes: &mut Vec<String>,
) -> Result<(Vec<PhaseTopic>, BTreeMap<Transport, usize>), LoadgenError> {
    let suffix = cfg.topic_suffix.clone().unwrap_or_else(random_suffix);
    let mut topics: Vec<PhaseTopic> = Vec::new();
    let mut topic_of = BTreeMap::new();
    for &t in transports {
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
    Ok((topics, topic_of))
}

/// Step `connect`: starts every subscriber (at `--ramp` if given) and waits until each is in
/// or gave up.
async fn connect(
    ph: &Phase<'_>,
    bars: &PhaseBars,
) -> Result<(Subscribers, Vec<Arc<ClientSettings>>), LoadgenError> {
    let cfg = ph.cfg;
    let tls = match (&cfg.tls_trust, cfg.tls) {
        (Some(trust), true) => Some(crate::tls::client_config(trust, &[cfg.http.alpn()])?),
        _ => None,
    };
    let settings: BTreeMap<Transport, Arc<ClientSettings>> = ph
        .transports
        .iter()
        .map(|&t| {
            let topic = &ph.topics[ph.topic_of[&t]];
            let s = ClientSettings {
                targets: cfg.targets.clone(),
                transport: t,
                topic: topic.name.clone(),
                start_cursor: topic.start_cursor,
                header_profile: cfg.header_profile,
                keep_alive: cfg.keep_alive,
                http: cfg.http,
                tls: tls.clone(),
                h2_pool: client::h2::Pool::new(cfg.streams_per_connection),
                poll_interval: cfg.poll_interval,
                longpoll_timeout_s: cfg.longpoll_timeout_s,
                clients: cfg.clients,
                source_ips: cfg.source_ips.clone(),
                dialect: ph.dialect.clone(),
                drop_after_messages: cfg.drop_after_messages,
                close_timeout: CLOSE_TIMEOUT,
            };
            (t, Arc::new(s))
        })
        .collect();
    let subscribed = Arc::new(Notify::new());
    let mut tasks = Subscribers::new();
    let ramp_start = Instant::now();
    let mut spawned = 0u64;
    for i in cfg.client_offset()..cfg.client_offset() + cfg.clients {
        for &t in ph.transports {
            if let Some(r) = cfg.ramp_per_s {
                tokio::time::sleep_until(ramp_start + Duration::from_secs_f64(spawned as f64 / r))
                    .await;
                bars.tick(&ph.recs, "connecting");
            }
            let rx = ph.topics[ph.topic_of[&t]].signal.subscribe();
            let rec = ph.recs[&t].clone();
            client::spawn(
                &mut tasks,
                i,
                settings[&t].clone(),
                rec,
                rx,
                subscribed.clone(),
            );
            spawned += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_millis(cfg.clients);
    loop {
        let all_in = ph
            .recs
            .values()
            .all(|r| Recorder::get(&r.subscribed) + Recorder::get(&r.gave_up) >= cfg.clients);
        if all_in {
            return Ok((tasks, settings.into_values().collect()));
        }
        if Instant::now() >= deadline {
            ph.stop_all();
            return Err(LoadgenError::Other(format!(
                "subscribers still not connected after {:?}: the target is too slow to accept them (try --ramp)",
                deadline - ramp_start
            )));
        }
        tokio::select! {
            _ = subscribed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        bars.tick(&ph.recs, "connecting");
    }
}

/// Fails the phase when a transport has no subscriber at all; notes partial failures.
fn check_subscribed(ph: &Phase<'_>, notes: &mut Vec<String>) -> Result<(), LoadgenError> {
    for (t, r) in &ph.recs {
        let gave_up = Recorder::get(&r.gave_up);
        if Recorder::get(&r.subscribed) == 0 {
            ph.stop_all();
            let (problems, _) = r.problems();
            let first = problems.first().cloned().unwrap_or_default();
            return Err(classify_subscribe_error(ph.cfg, *t, &first));
        }
        if gave_up > 0 {
            notes.push(format!(
                "{t}: {gave_up} of {} subscribers could not subscribe",
                ph.cfg.clients
            ));
        }
    }
    Ok(())
}

/// With `--start-at`: the phase's fixed timetable, the same in every shard (on every host
/// whose clock agrees), so shards connect, idle and publish together without talking.
struct Timetable {
    /// `--start-at` on this process's clock.
    connect_at: Instant,
    /// `connect_at` + `--connect-budget`: every subscriber of every shard is in by then.
    connected_by: Instant,
}

impl Timetable {
    fn of(cfg: &RunConfig) -> Option<Timetable> {
        let start_ns = cfg.start_at_ns?;
        let now_ns = crate::net::now_ns();
        let now = Instant::now();
        let connect_at = if start_ns >= now_ns {
            now + Duration::from_nanos(start_ns - now_ns)
        } else {
            now.checked_sub(Duration::from_nanos(now_ns - start_ns))
                .unwrap_or(now)
        };
        Some(Timetable {
            connect_at,
            connected_by: connect_at + cfg.connect_budget,
        })
    }

    /// Waits for the end of the connect budget; an error when this shard overran it (the
    /// others would publish before its subscribers were in).
    async fn wait_connected(&self, cfg: &RunConfig) -> Result<(), LoadgenError> {
        let now = Instant::now();
        if now > self.connected_by {
            return Err(LoadgenError::Limit(format!(
                "subscribers connected only {:.1}s after --start-at, past --connect-budget {:.1}s: raise --connect-budget (or --start-at was already past)",
                (now - self.connect_at).as_secs_f64(),
                cfg.connect_budget.as_secs_f64()
            )));
        }
        tokio::time::sleep_until(self.connected_by).await;
        Ok(())
    }
}

/// Step `settle`: the idle part until `end`, every connection open and nothing published.
async fn settle(ph: &Phase<'_>, bars: &PhaseBars, end: Instant) {
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => return,
            _ = ticker.tick() => bars.tick(&ph.recs, "idle"),
        }
    }
}

/// Step `publish`: warmup then the measured window, open loop on a fixed schedule from
/// `start`, one publisher per topic. Returns each topic's tally, in `ph.topics` order. A
/// follower shard publishes nothing: it waits out the same schedule and expects what the lead
/// publishes on it (a fresh or probed topic, one seq per scheduled message).
async fn publish(
    ph: &Phase<'_>,
    bars: &PhaseBars,
    start: Instant,
) -> Result<Vec<Published>, LoadgenError> {
    let cfg = ph.cfg;
    let schedule = Schedule {
        start,
        rate_per_s: cfg.rate_per_s,
    };
    let total = schedule.count_before(cfg.warmup + cfg.duration);
    let window_first = schedule.count_before(cfg.warmup);
    let (mut window_start_ns, mut window_end_ns) = (
        instant_ns((schedule.start + cfg.warmup).into_std()),
        instant_ns((schedule.start + cfg.warmup + cfg.duration).into_std()),
    );
    if cfg.start_at_ns.is_some() && total > window_first {
        // Processes started together map the schedule to epoch ns each on its own clock,
        // equal to within a microsecond or so: bounds half a period from any message keep a
        // message on a bound from falling in one process's window and not another's.
        let half = Duration::from_secs_f64(0.5 / cfg.rate_per_s);
        window_start_ns = instant_ns((schedule.due(window_first) - half).into_std());
        window_end_ns = instant_ns((schedule.due(total - 1) + half).into_std());
    }
    for r in ph.recs.values() {
        r.window.set(window_start_ns, window_end_ns);
    }
    if !cfg.is_lead() {
        let end = schedule.start + cfg.warmup + cfg.duration;
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => break,
                _ = ticker.tick() => bars.tick(&ph.recs, "subscribed (shard 0 publishes)"),
            }
        }
        let scheduled = || {
            ph.topics
                .iter()
                .map(|t| Published {
                    published: total,
                    window_published: total - window_first,
                    last_seq: t.start_cursor + total,
                    ..Published::default()
                })
                .collect()
        };
        return Ok(match &cfg.published_file {
            Some(path) => {
                let names: Vec<&str> = ph.topics.iter().map(|t| t.name.as_str()).collect();
                super::handoff::read(path, &names, super::handoff::WAIT)
                    .await
                    .unwrap_or_else(scheduled)
            }
            None => scheduled(),
        });
    }
    let mut publishers: JoinSet<(usize, Result<Published, LoadgenError>)> = JoinSet::new();
    for (i, topic) in ph.topics.iter().enumerate() {
        let target = cfg.target.clone();
        let feed = publisher::Feed {
            dialect: ph.dialect.clone(),
            topic: topic.name.clone(),
            first_seq: topic.start_cursor + 1,
        };
        let payload = cfg.payload_bytes;
        publishers.spawn(async move {
            let res =
                publisher::publish(&target, &feed, schedule, total, window_first, payload).await;
            (i, res)
        });
    }
    let mut published: Vec<Option<Published>> = vec![None; ph.topics.len()];
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while !publishers.is_empty() {
        tokio::select! {
            done = publishers.join_next() => {
                let Some(done) = done else { break };
                let (i, res) = done.map_err(|e| LoadgenError::Other(format!("publisher task: {e}")))?;
                match res {
                    Ok(p) => published[i] = Some(p),
                    Err(e) => {
                        ph.stop_all();
                        publishers.abort_all();
                        return Err(e);
                    }
                }
            }
            _ = ticker.tick() => bars.tick(&ph.recs, "publishing"),
        }
    }
    let published: Vec<Published> = published
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    if let Some(path) = &cfg.published_file {
        let tallies: Vec<(&str, &Published)> = ph
            .topics
            .iter()
            .map(|t| t.name.as_str())
            .zip(&published)
            .collect();
        super::handoff::write(path, &tallies).map_err(|e| LoadgenError::Io {
            context: format!("writing {} for the other shards", path.display()),
            error: e,
        })?;
    }
    Ok(published)
}

/// Step `drain`: every subscriber stops once it holds its topic's last seq (and closes its
/// connection); the rest are stopped at the drain deadline, and dropped if they still do not
/// close.
async fn drain(
    ph: &Phase<'_>,
    published: &[Published],
    tasks: &mut Subscribers,
    bars: &PhaseBars,
    notes: &mut Vec<String>,
) -> Vec<(Transport, u64, Outcome)> {
    for (topic, p) in ph.topics.iter().zip(published) {
        topic.signal.send_replace(Signal {
            target: Some(p.last_seq.max(topic.start_cursor)),
            stop: false,
        });
    }
    let drain = Duration::from_secs(2).max(ph.cfg.poll_interval * 2 + Duration::from_secs(1))
        + lossy_link_allowance(ph.cfg.link.as_ref());
    let started = Instant::now();
    let mut drain_deadline = started + drain;
    let drain_cap = started + drain + DRAIN_EXTENSION_MAX;
    let mut progress = DrainProgress::new(delivered_total(ph), started);
    let mut outcomes = Vec::new();
    let mut stopped = false;
    let mut hard_deadline = drain_cap + CLOSE_TIMEOUT * 3 + Duration::from_secs(5);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(Ok(o)) => outcomes.push(o),
                Some(Err(e)) => notes.push(format!("a subscriber task failed: {e}")),
                None => break,
            },
            _ = tokio::time::sleep_until(drain_deadline), if !stopped => {
                let now = Instant::now();
                if let Some(next) = progress.extend(now, drain_cap) {
                    drain_deadline = next;
                    continue;
                }
                if now > started + drain + Duration::from_millis(100) {
                    notes.push(format!(
                        "drain extended to {:.1} s while messages were still arriving (late ones are counted with their latency)",
                        (now - started).as_secs_f64()
                    ));
                }
                stopped = true;
                hard_deadline = now + CLOSE_TIMEOUT * 3 + Duration::from_secs(5);
                ph.stop_all();
            }
            _ = tokio::time::sleep_until(hard_deadline) => {
                notes.push(format!("{} subscribers did not close in time and were dropped", tasks.len()));
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
            _ = ticker.tick() => {
                progress.observe(delivered_total(ph), Instant::now());
                bars.tick(&ph.recs, "draining");
            }
        }
    }
    outcomes
}

/// Longest the drain waits past its normal deadline while deliveries still arrive: an
/// overloaded target (100,000 subscribers on two cores) may deliver the last message seconds
/// late; such a message is late, not lost, and its latency is recorded as measured.
const DRAIN_EXTENSION_MAX: Duration = Duration::from_secs(30);
/// A drain goes on past its deadline only if a delivery arrived within this long.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// Through a link that drops packets, a subscriber's last message may wait out TCP's
/// retransmission backoff with nothing arriving meanwhile (Linux's RTO is at least its 200 ms
/// TCP_RTO_MIN + the RTT, doubled each time the retransmission is lost too, RFC 6298 §5.5):
/// five rounds of it at RTT 200 ms come to about 12 s. Deliveries grow on no connection then, so the drain's extension would not see
/// it; the allowance does (subscribers that hold their last seq stop at once regardless).
fn lossy_link_allowance(link: Option<&crate::config::LinkConditions>) -> Duration {
    match link {
        Some(l) if l.loss_ratio > 0.0 => {
            let rto_s = 0.2 + l.rtt_ms / 1000.0;
            // 1 + 2 + 4 + 8 + 16 times the first RTO.
            Duration::from_secs_f64(31.0 * rto_s).min(DRAIN_EXTENSION_MAX)
        }
        _ => Duration::ZERO,
    }
}

fn delivered_total(ph: &Phase<'_>) -> u64 {
    ph.recs
        .values()
        .map(|r| Recorder::get(&r.delivered_messages))
        .sum()
}

/// When the drain last saw deliveries grow; decides whether its deadline moves.
#[derive(Debug, Clone, Copy)]
struct DrainProgress {
    delivered: u64,
    last_growth: Instant,
}

impl DrainProgress {
    fn new(delivered: u64, now: Instant) -> Self {
        DrainProgress {
            delivered,
            last_growth: now,
        }
    }

    fn observe(&mut self, delivered: u64, now: Instant) {
        if delivered > self.delivered {
            self.delivered = delivered;
            self.last_growth = now;
        }
    }

    /// The next deadline if deliveries grew within [`DRAIN_QUIET`] of `now` and `cap` is not
    /// reached; `None` to stop now.
    fn extend(&self, now: Instant, cap: Instant) -> Option<Instant> {
        (now < cap && now.duration_since(self.last_growth) < DRAIN_QUIET)
            .then(|| (now + Duration::from_millis(500)).min(cap))
    }
}

/// Losses, named: which subscribers, which seqs.
fn loss_notes(ph: &Phase<'_>, outcomes: &[(Transport, u64, Outcome)], notes: &mut Vec<String>) {
    for &t in ph.transports {
        let mut losers: Vec<&(Transport, u64, Outcome)> = outcomes
            .iter()
            .filter(|(tt, _, o)| *tt == t && o.lost > 0)
            .collect();
        losers.sort_by_key(|(_, id, _)| *id);
        if losers.is_empty() {
            continue;
        }
        let shown: Vec<String> = losers
            .iter()
            .take(3)
            .map(|(_, id, o)| format!("client {id} lost {} (seq {})", o.lost, o.missing))
            .collect();
        notes.push(format!(
            "{t}: {} of {} subscribers lost messages: {}{}",
            losers.len(),
            ph.cfg.clients,
            shown.join("; "),
            if losers.len() > 3 { "; ..." } else { "" }
        ));
    }
}

/// Step `scrape(after)`: taken once the server has closed every connection of this phase, or
/// after 3 s. Only then are its byte counters final: a subscriber dropped at the deadline may
/// leave bytes in the server's socket buffer that the server reads (and counts) a moment later,
/// after our side has already counted them as sent.
async fn settled_cost(
    cfg: &RunConfig,
    transports: &[Transport],
) -> Result<Option<Scrape>, LoadgenError> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let scrape = cost_all(&cfg.targets, cfg.server_pid).await?;
        let open: u64 = scrape.as_ref().map_or(0, |s| {
            transports
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_goes_on_only_while_deliveries_grow_and_never_past_its_cap() {
        let t0 = Instant::now();
        let cap = t0 + Duration::from_secs(10);
        let mut p = DrainProgress::new(100, t0);
        // Nothing new for 2 s: stop at the deadline.
        assert_eq!(p.extend(t0 + Duration::from_secs(2), cap), None);
        // A delivery 300 ms before the deadline: half a second more.
        p.observe(101, t0 + Duration::from_millis(1700));
        let now = t0 + Duration::from_secs(2);
        assert_eq!(p.extend(now, cap), Some(now + Duration::from_millis(500)));
        // The same count again is no growth.
        p.observe(101, t0 + Duration::from_secs(3));
        assert_eq!(p.extend(t0 + Duration::from_secs(3), cap), None);
        // Growth near the cap: the deadline stops at the cap, and at the cap the drain ends.
        p.observe(200, t0 + Duration::from_millis(9900));
        let near = t0 + Duration::from_millis(9800);
        assert_eq!(p.extend(near + Duration::from_millis(150), cap), Some(cap));
        assert_eq!(p.extend(cap, cap), None);
    }

    #[test]
    fn a_lossy_link_gives_the_drain_five_rounds_of_retransmission_backoff() {
        let link = |rtt_ms: f64, loss_ratio: f64| crate::config::LinkConditions {
            rtt_ms,
            loss_ratio,
            ..Default::default()
        };
        assert_eq!(lossy_link_allowance(None), Duration::ZERO);
        assert_eq!(
            lossy_link_allowance(Some(&link(100.0, 0.0))),
            Duration::ZERO
        );
        let at_50 = lossy_link_allowance(Some(&link(50.0, 0.05)));
        assert!(
            (at_50.as_secs_f64() - 31.0 * 0.25).abs() < 1e-9,
            "{at_50:?}"
        );
        assert_eq!(
            lossy_link_allowance(Some(&link(2000.0, 0.01))),
            DRAIN_EXTENSION_MAX
        );
    }
}
