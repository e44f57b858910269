//! The Redis backplane: one Redis Stream per topic, a dense per-topic seq assigned atomically
//! by a Lua script, one reader task per replica that takes every new entry once into the local
//! feed.
//!
//! ```text
//! POST /publish/t  ->  EVALSHA publish: seq = max(GET seq, floor) + 1; SET seq;
//!                      XADD pushlab:t:stream MAXLEN ~ HISTORY * seq S ts TS data D
//!                  <-  202 {"seq":S}            (only once Redis holds the entry)
//! reader task      :   XREAD BLOCK 250 COUNT 1000 STREAMS pushlab:t:stream ... LAST_ID ...
//!                      -> Feed::insert(t, S, TS, D) -> subscribers, as without a backplane
//! ```
//!
//! A topic is tracked when this replica first makes it (a subscription or publish names it):
//! its counter and the stream's last `--history` entries are loaded in one MULTI, so a
//! subscriber that resumes here with a cursor from another replica finds the history in the
//! local ring (the stream holds no more than that, so a lookup in Redis could add nothing), and
//! the reader follows the stream from the last entry loaded.
//!
//! Faults: any failed command marks the backplane down (`pushlab_backplane_up 0`); publishes
//! then get [`BackplaneError::Down`] (503 with Retry-After) and streams stay open on their
//! heartbeats. The reader retries with backoff; once Redis answers again it re-seeds every
//! tracked topic's counter to the highest seq this replica holds or was acknowledged for
//! ([`super::reseed`]) and only then marks the backplane up. The residual risk: two replicas
//! that come back at different instants, when one holds a seq the other never read (Redis died
//! within the moment between an acknowledgement and the other replica's read): the later
//! re-seed cannot undo a publish the earlier one already numbered. The reader then skips the
//! entry whose seq it already passed and counts it (`pushlab_backplane_stale_entries_total`),
//! never delivering a seq twice; the test in `server/tests/it/replicas.rs` restarts Redis
//! between publishes and shows neither loss nor duplicate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::aio::ConnectionManagerConfig;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use tokio::sync::{watch, OnceCell};

use super::{decode_entry, seq_key, shown_url, stream_key, topic_of_stream, BackplaneError};
use crate::feed::{now_ns, Feed, Topic};

/// `seq = max(counter, floor) + 1`, stored, and the entry appended: one atomic step.
/// KEYS: seq key, stream key. ARGV: floor, ts, data, maxlen. Returns the seq.
const PUBLISH_LUA: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if floor > cur then cur = floor end
local seq = cur + 1
redis.call('SET', KEYS[1], seq)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'seq', seq, 'ts', ARGV[2], 'data', ARGV[3])
return seq
";

/// `counter = max(counter, held)`. KEYS: seq key. ARGV: held. Returns the counter.
const RESEED_LUA: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local held = tonumber(ARGV[1])
if held > cur then
  redis.call('SET', KEYS[1], held)
  return held
end
return cur
";

/// How long one XREAD waits in Redis for news; also how soon a newly tracked topic is read.
const BLOCK_MS: usize = 250;
/// Most entries one XREAD returns per stream.
const READ_COUNT: usize = 1000;
/// Bound on one publish or lookup round trip (beyond it the backplane counts as down).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait between the reader's reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A topic this replica follows in Redis.
#[derive(Debug)]
struct Tracked {
    topic: Arc<Topic>,
    /// Set once the topic's counter and tail were loaded (then the reader follows it).
    synced: OnceCell<()>,
    /// The stream ID of the last entry taken in.
    last_id: Mutex<String>,
    /// The highest seq a publish through this replica was acknowledged with.
    acked: AtomicU64,
}

impl Tracked {
    /// The highest seq this replica knows was assigned: the floor of its publishes and its
    /// re-seed.
    fn held(&self) -> u64 {
        self.topic
            .latest_seq()
            .max(self.acked.load(Ordering::Relaxed))
    }
}

/// Counters and gauges of the backplane, for `/metrics`.
#[derive(Debug, Default)]
struct Stats {
    reconnects: AtomicU64,
    publish_failures: AtomicU64,
    entries_read: AtomicU64,
    bad_entries: AtomicU64,
    stale_entries: AtomicU64,
    /// Age of the newest entry when the reader took it in, microseconds.
    lag_us: AtomicU64,
}

/// A replica's link to the shared feed in Redis.
#[derive(Debug)]
pub struct RedisBackplane {
    url: String,
    commands: ConnectionManager,
    /// A second connection for the reader alone: a blocking XREAD holds up its connection.
    reader: ConnectionManager,
    history: usize,
    tracked: Mutex<HashMap<String, Arc<Tracked>>>,
    up: watch::Sender<bool>,
    stats: Stats,
    publish_script: redis::Script,
    reseed_script: redis::Script,
}

/// The message of an error from Redis, or of a timeout.
fn down(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError::Down(e.to_string())
}

impl RedisBackplane {
    /// Connects (two connections) and checks Redis answers; `history` bounds each stream.
    ///
    /// # Errors
    /// [`BackplaneError::Down`] naming the URL (password hidden) when Redis cannot be reached.
    pub async fn connect(url: &str, history: usize) -> Result<Arc<Self>, BackplaneError> {
        let shown = shown_url(url);
        let fail = |e: redis::RedisError| BackplaneError::Down(format!("{shown}: {e}"));
        let client = redis::Client::open(url).map_err(fail)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let commands = ConnectionManager::new_with_config(
            client.clone(),
            cfg.clone().set_response_timeout(Some(COMMAND_TIMEOUT)),
        )
        .await
        .map_err(fail)?;
        let reader_timeout = Duration::from_millis(BLOCK_MS as u64) + COMMAND_TIMEOUT;
        let reader = ConnectionManager::new_with_config(
            client,
            cfg.set_response_timeout(Some(reader_timeout)),
        )
        .await
        .map_err(fail)?;
        let mut ping = commands.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut ping)
            .await
            .map_err(fail)?;
        Ok(Arc::new(RedisBackplane {
            url: shown,
            commands,
            reader,
            history,
            tracked: Mutex::new(HashMap::new()),
            up: watch::Sender::new(true),
            stats: Stats::default(),
            publish_script: redis::Script::new(PUBLISH_LUA),
            reseed_script: redis::Script::new(RESEED_LUA),
        }))
    }

    /// Whether Redis answers (and, after an outage, has been re-seeded).
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    fn set_up(&self, up: bool) {
        let was = self.up.send_replace(up);
        if was && !up {
            tracing::warn!(
                "backplane {} down: publishes get 503 until it is back",
                self.url
            );
        } else if !was && up {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("backplane {} back (counters re-seeded)", self.url);
        }
    }

    fn tracked(&self, topic: &Arc<Topic>) -> Arc<Tracked> {
        let mut map = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(topic.name().to_string())
            .or_insert_with(|| {
                Arc::new(Tracked {
                    topic: topic.clone(),
                    synced: OnceCell::new(),
                    last_id: Mutex::new("0-0".into()),
                    acked: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// Makes sure `topic` is followed: on first use loads its counter and the stream's last
    /// `--history` entries into `feed`, then the reader takes it from there.
    ///
    /// # Errors
    /// [`BackplaneError::Down`] if Redis cannot be asked now (the topic is tried again on its
    /// next use).
    pub async fn track(&self, feed: &Feed, topic: &Arc<Topic>) -> Result<(), BackplaneError> {
        let t = self.tracked(topic);
        t.synced
            .get_or_try_init(|| async {
                if !self.is_up() {
                    return Err(BackplaneError::Down("reconnecting".into()));
                }
                let mut con = self.commands.clone();
                let name = topic.name();
                let mut pipe = redis::pipe();
                pipe.atomic().get(seq_key(name)).xrevrange_count(
                    stream_key(name),
                    "+",
                    "-",
                    self.history,
                );
                let load = pipe.query_async::<(Option<u64>, StreamRangeReply)>(&mut con);
                let (counter, tail) = match tokio::time::timeout(COMMAND_TIMEOUT, load).await {
                    Ok(Ok(x)) => x,
                    Ok(Err(e)) => return Err(self.failed(e)),
                    Err(e) => return Err(self.failed(e)),
                };
                if let Some(newest) = tail.ids.first() {
                    *t.last_id.lock().unwrap_or_else(|e| e.into_inner()) = newest.id.clone();
                }
                for entry in tail.ids.iter().rev() {
                    self.take_in(feed, topic, entry);
                }
                // Seqs assigned past the stream's tail (a re-seed) are known, not held.
                topic.advance_to(counter.unwrap_or(0));
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// A failed command: counted as down, and its error.
    fn failed(&self, e: impl std::fmt::Display) -> BackplaneError {
        self.set_up(false);
        down(e)
    }

    /// Publishes `data` on `topic` through Redis; the seq, once Redis holds the entry.
    ///
    /// # Errors
    /// [`BackplaneError::Down`] while Redis is unreachable or not yet re-seeded, or when it
    /// refuses the script (then too the reader re-checks it before publishes resume).
    pub async fn publish(
        &self,
        feed: &Feed,
        topic: &Arc<Topic>,
        data: &str,
    ) -> Result<u64, BackplaneError> {
        let result = self.try_publish(feed, topic, data).await;
        if result.is_err() {
            self.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn try_publish(
        &self,
        feed: &Feed,
        topic: &Arc<Topic>,
        data: &str,
    ) -> Result<u64, BackplaneError> {
        if !self.is_up() {
            return Err(BackplaneError::Down("reconnecting".into()));
        }
        self.track(feed, topic).await?;
        let t = self.tracked(topic);
        let mut con = self.commands.clone();
        let mut call = self.publish_script.prepare_invoke();
        call.key(seq_key(topic.name()))
            .key(stream_key(topic.name()))
            .arg(t.held())
            .arg(now_ns())
            .arg(data)
            .arg(self.history);
        let seq =
            match tokio::time::timeout(COMMAND_TIMEOUT, call.invoke_async::<u64>(&mut con)).await {
                Ok(Ok(seq)) => seq,
                Ok(Err(e)) => return Err(self.failed(e)),
                Err(e) => return Err(self.failed(e)),
            };
        t.acked.fetch_max(seq, Ordering::Relaxed);
        Ok(seq)
    }

    /// Takes one stream entry into `feed` (once: a seq already held is skipped, and counted
    /// as stale: the reader never reads an entry twice, so one it gets with a seq this replica
    /// already passed was numbered by a replica that re-seeded from less than this one held).
    fn take_in(&self, feed: &Feed, topic: &Arc<Topic>, entry: &StreamId) {
        match decode_entry(&entry.id, &entry.map) {
            Ok(e) => {
                if feed.insert(topic, e.seq, e.ts, &e.data).is_some() {
                    self.stats.entries_read.fetch_add(1, Ordering::Relaxed);
                    let age_us = now_ns().saturating_sub(e.ts) / 1000;
                    self.stats.lag_us.store(age_us, Ordering::Relaxed);
                } else {
                    self.stats.stale_entries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "backplane: {} seq {} arrived after this replica passed it; skipped",
                        topic.name(),
                        e.seq
                    );
                }
            }
            Err(e) => {
                self.stats.bad_entries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("backplane: skipping {e}");
            }
        }
    }

    /// Re-seeds every tracked topic's counter to what this replica holds, once both
    /// connections answer again (`reader` is the reader's own).
    async fn reseed_all(&self, reader: &mut ConnectionManager) -> Result<(), BackplaneError> {
        let topics: Vec<Arc<Tracked>> = {
            let map = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
            map.values().cloned().collect()
        };
        let mut con = self.commands.clone();
        let ping_cmd = redis::cmd("PING");
        for c in [&mut con, reader] {
            let ping = ping_cmd.query_async::<String>(c);
            tokio::time::timeout(COMMAND_TIMEOUT, ping)
                .await
                .map_err(down)?
                .map_err(down)?;
        }
        for t in topics {
            let mut call = self.reseed_script.prepare_invoke();
            call.key(seq_key(t.topic.name())).arg(t.held());
            // The counter is not carried into the ring: if Redis kept its data, entries up to
            // it are still to be read; if not, the next entry's seq leaves the hole, told as a
            // gap.
            tokio::time::timeout(COMMAND_TIMEOUT, call.invoke_async::<u64>(&mut con))
                .await
                .map_err(down)?
                .map_err(down)?;
        }
        Ok(())
    }

    /// Follows every tracked topic's stream into `feed` until `shutdown` flips; reconnects and
    /// re-seeds after an outage.
    pub async fn run_reader(self: Arc<Self>, feed: &Feed, mut shutdown: watch::Receiver<bool>) {
        let mut con = self.reader.clone();
        let mut backoff = Duration::from_millis(50);
        loop {
            if *shutdown.borrow() {
                return;
            }
            if !self.is_up() {
                match self.reseed_all(&mut con).await {
                    Ok(()) => {
                        self.set_up(true);
                        backoff = Duration::from_millis(50);
                    }
                    Err(e) => {
                        tracing::debug!("backplane still down: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = crate::until_down(&mut shutdown) => return,
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let (keys, ids) = self.read_positions();
            if keys.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(BLOCK_MS as u64)) => {}
                    _ = crate::until_down(&mut shutdown) => return,
                }
                continue;
            }
            let opts = StreamReadOptions::default()
                .block(BLOCK_MS)
                .count(READ_COUNT);
            let read = tokio::select! {
                r = con.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &opts) => r,
                _ = crate::until_down(&mut shutdown) => return,
            };
            match read {
                Ok(Some(reply)) => self.take_reply(feed, reply),
                Ok(None) => {}
                Err(e) => {
                    self.set_up(false);
                    tracing::debug!("backplane read failed: {e}");
                }
            }
        }
    }

    /// The stream keys of the synced topics and the last ID taken in from each.
    fn read_positions(&self) -> (Vec<String>, Vec<String>) {
        let map = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .filter(|t| t.synced.initialized())
            .map(|t| {
                let id = t.last_id.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (stream_key(t.topic.name()), id)
            })
            .unzip()
    }

    fn take_reply(&self, feed: &Feed, reply: StreamReadReply) {
        for key in reply.keys {
            let Some(t) = topic_of_stream(&key.key).and_then(|name| {
                let map = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
                map.get(name).cloned()
            }) else {
                continue;
            };
            for entry in &key.ids {
                self.take_in(feed, &t.topic, entry);
            }
            if let Some(last) = key.ids.last() {
                *t.last_id.lock().unwrap_or_else(|e| e.into_inner()) = last.id.clone();
            }
        }
    }

    /// The backplane's state in the Prometheus text format (appended to `/metrics`).
    pub fn render_metrics(&self) -> String {
        let s = &self.stats;
        let lag_s = s.lag_us.load(Ordering::Relaxed) as f64 / 1e6;
        format!(
            "# HELP pushlab_backplane_up Whether the Redis backplane answers (1) or not (0).\n# TYPE pushlab_backplane_up gauge\npushlab_backplane_up {}\n\
             # HELP pushlab_backplane_lag_seconds Age of the newest entry when this replica's reader took it in from Redis.\n# TYPE pushlab_backplane_lag_seconds gauge\npushlab_backplane_lag_seconds {lag_s}\n\
             # HELP pushlab_backplane_entries_read_total Entries taken in from Redis.\n# TYPE pushlab_backplane_entries_read_total counter\npushlab_backplane_entries_read_total {}\n\
             # HELP pushlab_backplane_bad_entries_total Stream entries skipped as undecodable.\n# TYPE pushlab_backplane_bad_entries_total counter\npushlab_backplane_bad_entries_total {}\n\
             # HELP pushlab_backplane_stale_entries_total Entries skipped because their seq was already passed (a re-seed race; see the module doc).\n# TYPE pushlab_backplane_stale_entries_total counter\npushlab_backplane_stale_entries_total {}\n\
             # HELP pushlab_backplane_publish_failures_total Publishes refused because Redis did not take them.\n# TYPE pushlab_backplane_publish_failures_total counter\npushlab_backplane_publish_failures_total {}\n\
             # HELP pushlab_backplane_reconnects_total Times the backplane came back after an outage.\n# TYPE pushlab_backplane_reconnects_total counter\npushlab_backplane_reconnects_total {}\n",
            u8::from(self.is_up()),
            s.entries_read.load(Ordering::Relaxed),
            s.bad_entries.load(Ordering::Relaxed),
            s.stale_entries.load(Ordering::Relaxed),
            s.publish_failures.load(Ordering::Relaxed),
            s.reconnects.load(Ordering::Relaxed),
        )
    }
}
