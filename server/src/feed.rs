//! Topics, sequence numbers, the bounded history ring, and fan-out without copies.
//!
//! Each topic keeps its last `history` messages in a ring. A message is encoded once when it is
//! published ([`Entry`]). The feed knows no transport: each entry carries a cache slot
//! ([`Entry::cache`]) that the transport side fills with its framings (built at most once per
//! message, lazily, and shared by every subscriber), so a new transport does not touch this
//! file.
//!
//! Subscribers do not get a queue of their own: each holds a cursor (the last seq it has) and
//! reads the ring from there when its topic wakes it ([`Topic::poll_news`]). A
//! slow subscriber therefore costs no memory beyond its cursor and its socket buffers; when it
//! falls behind what the ring (or the lag bound) holds, the read returns a [`Gap`] saying
//! exactly which seqs it missed, and the transport sends the gap notice. Nothing is dropped
//! silently.
//!
//! Memory is bounded in bytes, not only in counts: every retained message is charged
//! [`Entry::retained_bytes`] against one budget shared by all topics (`--max-retained-bytes`).
//! Past it, the oldest messages across topics are evicted, in publish order, until the store
//! fits again; a subscriber behind them gets the usual gap notice. Evicting rather than
//! refusing publishes (503) keeps the feed live: a full store that refused new messages would
//! refuse them for as long as nothing ages out, and on a quiet topic nothing would.
//!
//! ```text
//! pushlab_retained_bytes 268435200          (gauge; at most --max-retained-bytes)
//! pushlab_retained_messages 1489
//! pushlab_evicted_messages_total{cause="budget"} 2511
//! ```

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use pushlab_proto::{encode_message, EncodedMessage, Gap};
use tokio::sync::watch;

/// One published message, encoded once, with a cache slot the transport side owns.
#[derive(Debug)]
pub struct Entry {
    pub msg: EncodedMessage,
    cache: OnceLock<Box<dyn Any + Send + Sync>>,
    /// Set once the entry has left its ring (history bound or byte budget).
    evicted: AtomicBool,
}

impl Entry {
    fn new(msg: EncodedMessage) -> Self {
        Entry {
            msg,
            cache: OnceLock::new(),
            evicted: AtomicBool::new(false),
        }
    }

    /// What this entry is charged against the retained-bytes budget: the encoded MESSAGE and
    /// the framings the transport side may cache beside it (SSE, NDJSON and the WebSocket
    /// frame, each about the MESSAGE's size; built lazily, charged up front so the budget is
    /// an upper bound), plus the entry's fixed cost.
    pub fn retained_bytes(&self) -> u64 {
        const ENTRY_OVERHEAD_BYTES: u64 = 256;
        4 * self.msg.bytes.len() as u64 + ENTRY_OVERHEAD_BYTES
    }

    pub fn seq(&self) -> u64 {
        self.msg.seq
    }

    /// The per-message cache of type `T`, made (as `T::default()`) on first use and shared
    /// by every later caller. The transport layer keeps its framings in it; the feed stores it
    /// and never looks inside. Costs nothing until asked for (a message only polled makes
    /// none).
    ///
    /// # Panics
    /// If this entry's cache was already made with another type: a server has one cache type
    /// (`transport::Framings`).
    pub fn cache<T: Any + Default + Send + Sync>(&self) -> &T {
        self.cache
            .get_or_init(|| Box::<T>::default())
            .downcast_ref::<T>()
            .expect("an entry's cache has one type: the transport layer's")
    }
}

/// Most bytes of MESSAGE one read of the ring hands out (one message more if that one alone is
/// larger): a poll batch is one contiguous body, so a batch of `max_batch` large messages
/// would otherwise cost hundreds of MiB per request.
pub const MAX_READ_BYTES: usize = 1024 * 1024;

/// What a subscriber gets from one read of the ring.
#[derive(Debug, Default)]
pub struct Read {
    pub gap: Option<Gap>,
    pub entries: Vec<Arc<Entry>>,
    /// The cursor after this read: the last seq covered by the gap or the entries.
    pub cursor: u64,
}

#[derive(Debug)]
struct Ring {
    entries: VecDeque<Arc<Entry>>,
    /// Seq of the next message to publish (seqs start at 1).
    next_seq: u64,
}

/// One topic: a ring of recent messages, its newest seq, and who waits for the next one.
#[derive(Debug)]
pub struct Topic {
    name: String,
    history: usize,
    ring: RwLock<Ring>,
    /// The newest seq, stored under the ring's write lock (so seqs only grow) and read without
    /// any lock.
    newest: AtomicU64,
    /// The newest seq for those who wait on a channel (a held long poll, a replica's catch-up).
    latest: watch::Sender<u64>,
    /// Streaming subscribers waiting for the next message ([`Topic::poll_news`]).
    waiters: Mutex<Waiters>,
}

/// The wakers of the subscribers that found nothing new, taken and woken all at once by the
/// next publish (after the ring's lock is let go, so a woken reader never waits on it).
///
/// Why not the `watch` channel alone: a watch wakes its waiters through an intrusive list that
/// each subscriber joins and leaves on every message (lock, link, unlink); here a subscriber
/// pushes one waker per message it waits for and nothing else (issue 14's profile: the watch
/// machinery was ~9 % of the server's CPU per SSE delivery).
#[derive(Debug, Default)]
struct Waiters {
    /// Bumped by every wake-up: a subscriber whose waker went in during the current round
    /// need not put it in again.
    round: u64,
    wakers: Vec<Waker>,
}

/// A streaming subscriber's place in its topic's [`Waiters`]: the round its waker went in,
/// and which waker (its data and vtable addresses, as [`Waker::will_wake`] compares them).
#[derive(Debug, Default)]
pub struct Subscription {
    round: Option<u64>,
    waker: (usize, usize),
}

impl Subscription {
    fn holds(&self, round: u64, waker: &Waker) -> bool {
        self.round == Some(round) && self.waker == waker_id(waker)
    }
}

fn waker_id(waker: &Waker) -> (usize, usize) {
    (waker.data() as usize, waker.vtable() as *const _ as usize)
}

/// Why a cursor cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("since={since} is ahead of topic {topic:?}, whose newest seq is {latest}")]
    CursorAhead {
        topic: String,
        since: u64,
        latest: u64,
    },
    #[error("topic limit ({0}) reached")]
    TooManyTopics(usize),
}

impl Topic {
    fn new(name: String, history: usize) -> Self {
        Topic {
            name,
            history: history.max(1),
            ring: RwLock::new(Ring {
                // Grows as messages arrive: a topic made by a stray GET costs no ring up front.
                entries: VecDeque::new(),
                next_seq: 1,
            }),
            newest: AtomicU64::new(0),
            latest: watch::channel(0).0,
            waiters: Mutex::new(Waiters::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest seq (0 before the first publish).
    pub fn latest_seq(&self) -> u64 {
        self.newest.load(Ordering::Acquire)
    }

    /// A receiver that wakes when a newer message is published (for one-off waits; a
    /// streaming subscriber waits with [`Topic::poll_news`]).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// `Ready` when the topic has a seq past `cursor`; otherwise the task of `cx` is woken by
    /// the next publish (or [`Topic::wake_all`]). `sub` is the caller's own, kept from poll to
    /// poll: a subscriber polled again before that publish leaves no second waker.
    pub fn poll_news(&self, sub: &mut Subscription, cursor: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.latest_seq() > cursor {
            return Poll::Ready(());
        }
        {
            let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            if !sub.holds(w.round, cx.waker()) {
                w.wakers.push(cx.waker().clone());
                sub.round = Some(w.round);
                sub.waker = waker_id(cx.waker());
            }
        }
        // A publish between the first look and the push has already taken the wakers: look
        // again (the store of `newest` precedes the publisher's taking them).
        if self.latest_seq() > cursor {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Wakes every subscriber waiting in [`Topic::poll_news`] (a publish does; so does the
    /// server's shutdown, whose flag the subscribers then read).
    pub fn wake_all(&self) {
        let wakers = {
            let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            w.round += 1;
            let capacity = w.wakers.len();
            std::mem::replace(&mut w.wakers, Vec::with_capacity(capacity))
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Publishes `data`, stamped with the current time. Encodes it once. Outside a [`Feed`]
    /// (no byte budget); the feed publishes through [`Feed::publish`].
    pub fn publish(&self, data: &str) -> Arc<Entry> {
        self.push(data, |_, _| {})
    }

    /// Publishes `data`; `account(new, evicted)` runs under the ring lock with the new entry
    /// and the one the history bound pushed out, if any.
    fn push(&self, data: &str, account: impl FnOnce(&Arc<Entry>, Option<&Entry>)) -> Arc<Entry> {
        self.push_at(None, now_ns(), data, account)
            .expect("a seq the ring assigns itself is always new")
    }

    /// Appends `data` as seq `at` (or, with `None`, as the next seq), stamped `ts`. With a
    /// seq given (a backplane's entry), one this ring already holds or has passed is refused
    /// (`None`): entries are taken once, in order; a seq past the next leaves a hole that
    /// readers are told about as a gap.
    fn push_at(
        &self,
        at: Option<u64>,
        ts: u64,
        data: &str,
        account: impl FnOnce(&Arc<Entry>, Option<&Entry>),
    ) -> Option<Arc<Entry>> {
        let entry = self.append_locked(at, ts, data, account)?;
        self.wake_all();
        Some(entry)
    }

    /// [`Topic::push_at`] without waking anyone.
    fn append_locked(
        &self,
        at: Option<u64>,
        ts: u64,
        data: &str,
        account: impl FnOnce(&Arc<Entry>, Option<&Entry>),
    ) -> Option<Arc<Entry>> {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let seq = at.unwrap_or(ring.next_seq);
        if seq < ring.next_seq {
            return None;
        }
        ring.next_seq = seq + 1;
        let entry = Arc::new(Entry::new(encode_message(&self.name, seq, ts, data)));
        let old = if ring.entries.len() == self.history {
            ring.entries.pop_front()
        } else {
            None
        };
        if let Some(old) = &old {
            old.evicted.store(true, Ordering::Relaxed);
        }
        ring.entries.push_back(entry.clone());
        account(&entry, old.as_deref());
        // Stored while the ring lock is held so seqs only grow.
        self.newest.store(seq, Ordering::Release);
        self.latest.send_replace(seq);
        Some(entry)
    }

    /// Moves the newest seq up to `seq` without a message (seqs assigned elsewhere whose
    /// messages this ring will never hold: readers get a gap notice for them). No effect if
    /// the topic is already there.
    pub fn advance_to(&self, seq: u64) {
        {
            let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
            if seq < ring.next_seq {
                return;
            }
            ring.next_seq = seq + 1;
            self.newest.store(seq, Ordering::Release);
            self.latest.send_replace(seq);
        }
        self.wake_all();
    }

    /// Evicts the retained entries with seq at most `seq` (budget eviction); `account` runs
    /// under the ring lock with each.
    fn evict_through(&self, seq: u64, mut account: impl FnMut(&Entry)) {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        while ring.entries.front().is_some_and(|e| e.seq() <= seq) {
            if let Some(old) = ring.entries.pop_front() {
                old.evicted.store(true, Ordering::Relaxed);
                account(&old);
            }
        }
    }

    /// Checks a client cursor: a `since` past the newest seq is an error (the client talks to a
    /// restarted server or invented it), never a silent wait.
    pub fn check_cursor(&self, since: u64) -> Result<u64, FeedError> {
        let latest = self.latest_seq();
        if since > latest {
            Err(FeedError::CursorAhead {
                topic: self.name.clone(),
                since,
                latest,
            })
        } else {
            Ok(since)
        }
    }

    /// Messages after `since`, at most `max` and at most [`MAX_READ_BYTES`] of MESSAGE (but at
    /// least one), starting no further back than `max_lag` messages before the newest. Seqs
    /// skipped by the ring or the lag bound come back as a gap.
    pub fn read_after(&self, since: u64, max: usize, max_lag: usize) -> Read {
        let mut entries = Vec::new();
        let (gap, cursor) = self.read_after_into(since, max, max_lag, &mut entries);
        Read {
            gap,
            entries,
            cursor,
        }
    }

    /// [`Topic::read_after`] into the caller's `entries` (appended to; a subscriber reuses one
    /// vector for every read): returns the gap and the cursor after the read. A cursor already
    /// at the newest seq returns at once, without the ring's lock.
    pub fn read_after_into(
        &self,
        since: u64,
        max: usize,
        max_lag: usize,
        entries: &mut Vec<Arc<Entry>>,
    ) -> (Option<Gap>, u64) {
        if since >= self.latest_seq() {
            return (None, since);
        }
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let latest = ring.next_seq - 1;
        if since >= latest {
            return (None, since);
        }
        let lag_floor = latest.saturating_sub(max_lag.max(1) as u64 - 1);
        let want = (since + 1).max(lag_floor);
        // Seqs are increasing but may have holes (a backplane's lost entries), so the start is
        // found by seq, not by arithmetic; a read stops at the next hole, which the read after
        // it reports as its gap.
        let from = ring.entries.partition_point(|e| e.seq() < want);
        let Some(first) = ring.entries.get(from).map(|e| e.seq()) else {
            return (Gap::between(since, latest + 1), latest);
        };
        let before = entries.len();
        let mut bytes = 0usize;
        entries.extend(
            ring.entries
                .range(from..)
                .take(max.max(1))
                .enumerate()
                .take_while(|(i, e)| {
                    let first_one = *i == 0;
                    bytes += e.msg.bytes.len();
                    e.seq() == first + *i as u64 && (first_one || bytes <= MAX_READ_BYTES)
                })
                .map(|(_, e)| e.clone()),
        );
        let cursor = entries[before..].last().map_or(first - 1, |e| e.seq());
        (Gap::between(since, first), cursor)
    }
}

/// One retained message in publish order across topics (what budget eviction walks).
#[derive(Debug)]
struct Retained {
    topic: Weak<Topic>,
    entry: Weak<Entry>,
    seq: u64,
}

impl Retained {
    /// Still in its ring (not evicted by the history bound meanwhile).
    fn live(&self) -> bool {
        self.entry
            .upgrade()
            .is_some_and(|e| !e.evicted.load(Ordering::Relaxed))
    }
}

/// The retained-bytes budget's books. Lock order: a topic's ring, then this.
#[derive(Debug, Default)]
struct Books {
    retained_bytes: u64,
    retained_messages: u64,
    order: VecDeque<Retained>,
}

/// Every topic, made on first use.
#[derive(Debug)]
pub struct Feed {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    history: usize,
    max_topics: usize,
    max_retained_bytes: u64,
    books: Mutex<Books>,
    evicted: AtomicU64,
}

impl Feed {
    /// A feed with no byte budget (only `history` per topic and `max_topics` bound it).
    pub fn new(history: usize, max_topics: usize) -> Self {
        Feed::with_budget(history, max_topics, u64::MAX)
    }

    /// A feed whose retained messages are charged at most `max_retained_bytes` in all.
    pub fn with_budget(history: usize, max_topics: usize, max_retained_bytes: u64) -> Self {
        Feed {
            topics: Mutex::new(HashMap::new()),
            history,
            max_topics,
            max_retained_bytes,
            books: Mutex::new(Books::default()),
            evicted: AtomicU64::new(0),
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (bytes, messages) retained now, as charged against the budget.
    pub fn retained(&self) -> (u64, u64) {
        let b = self.books();
        (b.retained_bytes, b.retained_messages)
    }

    /// Messages evicted to keep within the byte budget.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// The feed's gauges in the Prometheus text format (appended to `/metrics`).
    pub fn render_metrics(&self) -> String {
        let (bytes, messages) = self.retained();
        format!(
            "# HELP pushlab_retained_bytes Bytes charged for retained messages (budget: --max-retained-bytes).\n# TYPE pushlab_retained_bytes gauge\npushlab_retained_bytes {bytes}\n\
             # HELP pushlab_retained_messages Messages retained for resuming subscribers.\n# TYPE pushlab_retained_messages gauge\npushlab_retained_messages {messages}\n\
             # HELP pushlab_evicted_messages_total Messages evicted before the history bound to keep within the byte budget.\n# TYPE pushlab_evicted_messages_total counter\npushlab_evicted_messages_total{{cause=\"budget\"}} {}\n",
            self.evicted()
        )
    }

    /// Evicts the oldest messages across topics until the budget holds again.
    fn enforce_budget(&self) {
        loop {
            let oldest = {
                let mut b = self.books();
                if b.retained_bytes <= self.max_retained_bytes {
                    return;
                }
                b.order.pop_front()
            };
            let Some(oldest) = oldest else { return };
            if let Some(topic) = oldest.topic.upgrade() {
                topic.evict_through(oldest.seq, |e| {
                    let mut b = self.books();
                    b.retained_bytes = b.retained_bytes.saturating_sub(e.retained_bytes());
                    b.retained_messages = b.retained_messages.saturating_sub(1);
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                });
            }
        }
    }

    /// The topic named `name` (already validated), made if new.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, FeedError> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = topics.get(name) {
            return Ok(t.clone());
        }
        if topics.len() >= self.max_topics {
            return Err(FeedError::TooManyTopics(self.max_topics));
        }
        let t = Arc::new(Topic::new(name.to_string(), self.history));
        topics.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// Publishes `data` on `topic` (a topic of this feed), charging it against the byte budget
    /// (evicting the oldest messages across topics past it). Counting is the caller's
    /// ([`crate::Shared::publish`] counts it once, in the metrics).
    pub fn publish(&self, topic: &Arc<Topic>, data: &str) -> Arc<Entry> {
        self.append(topic, None, now_ns(), data)
            .expect("a seq the ring assigns itself is always new")
    }

    /// Takes in a message whose seq and time were assigned elsewhere (a backplane), charged
    /// like [`Feed::publish`]. `None` if `topic` already holds `seq` or a later one (each
    /// entry is taken once); a seq past the next leaves a hole, told to readers as a gap.
    pub fn insert(&self, topic: &Arc<Topic>, seq: u64, ts: u64, data: &str) -> Option<Arc<Entry>> {
        self.append(topic, Some(seq), ts, data)
    }

    fn append(
        &self,
        topic: &Arc<Topic>,
        seq: Option<u64>,
        ts: u64,
        data: &str,
    ) -> Option<Arc<Entry>> {
        let entry = topic.push_at(seq, ts, data, |new, old| {
            let mut b = self.books();
            b.retained_bytes += new.retained_bytes();
            b.retained_messages += 1;
            if let Some(old) = old {
                b.retained_bytes = b.retained_bytes.saturating_sub(old.retained_bytes());
                b.retained_messages = b.retained_messages.saturating_sub(1);
            }
            b.order.push_back(Retained {
                topic: Arc::downgrade(topic),
                entry: Arc::downgrade(new),
                seq: new.seq(),
            });
            // Markers of entries the history bound evicted are dropped in bulk, so the order
            // never holds more than about twice the retained messages.
            if b.order.len() as u64 > 2 * b.retained_messages + 1024 {
                b.order.retain(Retained::live);
            }
        })?;
        self.enforce_budget();
        Some(entry)
    }

    /// Every topic made so far.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.values().cloned().collect()
    }

    /// Wakes every streaming subscriber of every topic (the server does when it shuts down:
    /// each reads the shutdown flag and ends its stream).
    pub fn wake_all(&self) {
        for topic in self.topics() {
            topic.wake_all();
        }
    }

    pub fn topic_count(&self) -> usize {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the wake-ups it gets.
    struct CountingWake(AtomicU64);

    impl std::task::Wake for CountingWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_subscriber_leaves_one_waker_and_a_publish_wakes_it_once() {
        let t = Topic::new("t".into(), 4);
        let count = Arc::new(CountingWake(AtomicU64::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut sub = Subscription::default();
        // Polled three times before anything is published: one waker in the list.
        for _ in 0..3 {
            assert!(t.poll_news(&mut sub, 0, &mut cx).is_pending());
        }
        assert_eq!(t.waiters.lock().unwrap().wakers.len(), 1);
        t.publish("m1");
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "one wake-up per publish");
        assert!(t.waiters.lock().unwrap().wakers.is_empty());
        // Something new past the cursor: ready at once, nothing registered.
        assert!(t.poll_news(&mut sub, 0, &mut cx).is_ready());
        assert!(t.waiters.lock().unwrap().wakers.is_empty());
        // Caught up: waits again, and a shutdown's wake_all reaches it.
        assert!(t.poll_news(&mut sub, 1, &mut cx).is_pending());
        t.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        // A subscriber polled by another task's waker is registered again with it.
        assert!(t.poll_news(&mut sub, 1, &mut cx).is_pending());
        let other = Arc::new(CountingWake(AtomicU64::new(0)));
        let other_waker = Waker::from(other.clone());
        let mut other_cx = Context::from_waker(&other_waker);
        assert!(t.poll_news(&mut sub, 1, &mut other_cx).is_pending());
        t.advance_to(3);
        assert_eq!(
            other.0.load(Ordering::SeqCst),
            1,
            "a seq advanced without a message wakes too"
        );
        assert!(t.poll_news(&mut sub, 1, &mut cx).is_ready());
    }

    #[test]
    fn reads_in_order_and_reports_gaps() {
        let t = Topic::new("t".into(), 4);
        assert_eq!(t.read_after(0, 10, 10).entries.len(), 0);
        for i in 0..6 {
            t.publish(&format!("m{i}"));
        }
        assert_eq!(t.latest_seq(), 6);
        // Ring holds 3..=6: a reader at 0 missed 1..=2.
        let r = t.read_after(0, 10, 10);
        assert_eq!(
            r.gap,
            Some(Gap {
                missed: 2,
                from: 1,
                to: 2
            })
        );
        assert_eq!(
            r.entries.iter().map(|e| e.seq()).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
        assert_eq!(r.cursor, 6);
        // Batch bound.
        let r = t.read_after(3, 2, 10);
        assert_eq!(r.gap, None);
        assert_eq!(
            r.entries.iter().map(|e| e.seq()).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_eq!(r.cursor, 5);
        // Lag bound: only the newest 2 may be served.
        let r = t.read_after(3, 10, 2);
        assert_eq!(
            r.gap,
            Some(Gap {
                missed: 1,
                from: 4,
                to: 4
            })
        );
        assert_eq!(
            r.entries.iter().map(|e| e.seq()).collect::<Vec<_>>(),
            vec![5, 6]
        );
        assert_eq!(t.read_after(6, 10, 10).entries.len(), 0);
        assert!(t.check_cursor(7).is_err());
        assert_eq!(t.check_cursor(6), Ok(6));
    }

    #[test]
    fn a_read_is_bounded_in_bytes_but_never_empty() {
        let t = Topic::new("t".into(), 100);
        let big = "x".repeat(MAX_READ_BYTES / 3);
        for _ in 0..10 {
            t.publish(&big);
        }
        let r = t.read_after(0, 1000, 1000);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.cursor, 2);
        let huge = Topic::new("h".into(), 4);
        huge.publish(&"y".repeat(MAX_READ_BYTES * 2));
        huge.publish("z");
        assert_eq!(huge.read_after(0, 10, 10).entries.len(), 1);
    }

    #[test]
    fn an_entry_cache_is_made_once_and_shared() {
        let t = Topic::new("t".into(), 4);
        let e = t.publish("x");
        let first: &OnceLock<String> = e.cache();
        first.set("framed".into()).unwrap();
        let again: &OnceLock<String> = e.cache();
        assert!(std::ptr::eq(first, again));
        assert_eq!(again.get().map(String::as_str), Some("framed"));
        // Each entry has its own.
        let other = t.publish("y");
        assert!(other.cache::<OnceLock<String>>().get().is_none());
    }

    #[test]
    fn the_byte_budget_evicts_oldest_first_across_topics() {
        let one = Topic::new("a".into(), 100)
            .publish(&"x".repeat(1000))
            .retained_bytes();
        // Room for three messages of this size in all.
        let f = Feed::with_budget(100, 10, 3 * one + one / 2);
        let (a, b) = (f.topic("a").unwrap(), f.topic("b").unwrap());
        let data = "x".repeat(1000);
        f.publish(&a, &data); // a1
        f.publish(&b, &data); // b1
        f.publish(&a, &data); // a2
        assert_eq!(f.retained(), (3 * one, 3));
        f.publish(&b, &data); // b2 evicts a1, the oldest
        assert_eq!(f.retained(), (3 * one, 3));
        assert_eq!(f.evicted(), 1);
        assert_eq!(
            a.read_after(0, 10, 10).gap,
            Some(Gap {
                missed: 1,
                from: 1,
                to: 1
            })
        );
        f.publish(&a, &data); // a3 evicts b1
        assert_eq!(b.read_after(0, 10, 10).gap.map(|g| g.to), Some(1));
        assert_eq!(f.evicted(), 2);
        assert!(f
            .render_metrics()
            .contains("pushlab_evicted_messages_total{cause=\"budget\"} 2"));
    }

    #[test]
    fn history_evictions_give_their_bytes_back_and_markers_stay_bounded() {
        let f = Feed::with_budget(2, 10, u64::MAX);
        let t = f.topic("t").unwrap();
        for i in 0..10_000 {
            f.publish(&t, &format!("m{i}"));
        }
        let (bytes, messages) = f.retained();
        assert_eq!(messages, 2);
        let kept = t.read_after(0, 10, 10).entries;
        assert_eq!(bytes, kept.iter().map(|e| e.retained_bytes()).sum::<u64>());
        assert!(f.books().order.len() <= 2 * 2 + 1024 + 1);
        assert_eq!(f.evicted(), 0);
    }

    #[test]
    fn inserted_seqs_are_taken_once_and_holes_read_as_gaps() {
        let f = Feed::new(10, 10);
        let t = f.topic("t").unwrap();
        assert!(f.insert(&t, 1, 7, "a").is_some());
        assert!(f.insert(&t, 2, 8, "b").is_some());
        // Already held, or older: refused, so a replay delivers nothing twice.
        assert!(f.insert(&t, 2, 8, "b").is_none());
        assert!(f.insert(&t, 1, 7, "a").is_none());
        // 3 and 4 never arrive (lost with a Redis restart): a hole.
        let e = f.insert(&t, 5, 9, "e").unwrap();
        assert_eq!(e.msg.ts, 9);
        assert_eq!(
            &e.msg.bytes[..],
            br#"{"topic":"t","seq":5,"ts":9,"data":"e"}"#
        );
        f.insert(&t, 6, 10, "f");
        assert_eq!(t.latest_seq(), 6);
        let seqs = |r: &Read| r.entries.iter().map(|e| e.seq()).collect::<Vec<_>>();
        // A read stops before the hole; the next one reports it, then goes on.
        let r = t.read_after(0, 10, 10);
        assert_eq!((seqs(&r), r.gap, r.cursor), (vec![1, 2], None, 2));
        let r = t.read_after(2, 10, 10);
        let hole = Gap {
            missed: 2,
            from: 3,
            to: 4,
        };
        assert_eq!((seqs(&r), r.gap, r.cursor), (vec![5, 6], Some(hole), 6));
        // Seqs assigned elsewhere and never held (a re-seed): a gap at the end.
        t.advance_to(8);
        t.advance_to(7);
        assert_eq!(t.latest_seq(), 8);
        let r = t.read_after(6, 10, 10);
        assert_eq!((r.entries.len(), r.cursor), (0, 8));
        assert_eq!(r.gap.map(|g| (g.from, g.to)), Some((7, 8)));
        assert!(f.insert(&t, 8, 11, "late").is_none());
        assert!(f.insert(&t, 9, 12, "next").is_some());
        assert_eq!(f.retained().1, 5);
    }

    #[test]
    fn topic_limit() {
        let f = Feed::new(4, 2);
        f.topic("a").unwrap();
        f.topic("b").unwrap();
        f.topic("a").unwrap();
        assert_eq!(f.topic("c").unwrap_err(), FeedError::TooManyTopics(2));
    }
}
