//! Topics, sequence numbers, the bounded history ring, and fan-out without copies.
//!
//! Each topic keeps its last `history` messages in a ring. A message is encoded once when it is
//! published ([`Entry`]). The feed knows no transport: each entry carries a cache slot
//! ([`Entry::cache`]) that the transport side fills with its framings (built at most once per
//! message, lazily, and shared by every subscriber), so a new transport does not touch this
//! file.
//!
//! Subscribers do not get a queue of their own: each holds a cursor (the last seq it has) and
//! reads the ring from there when the topic's `watch` channel says something new arrived. A
//! slow subscriber therefore costs no memory beyond its cursor and its socket buffers; when it
//! falls behind what the ring (or the lag bound) holds, the read returns a [`Gap`] saying
//! exactly which seqs it missed, and the transport sends the gap notice. Nothing is dropped
//! silently.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use pushlab_proto::{encode_message, EncodedMessage, Gap};
use tokio::sync::watch;

/// One published message, encoded once, with a cache slot the transport side owns.
#[derive(Debug)]
pub struct Entry {
    pub msg: EncodedMessage,
    cache: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Entry {
    fn new(msg: EncodedMessage) -> Self {
        Entry {
            msg,
            cache: OnceLock::new(),
        }
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

/// One topic: a ring of recent messages and a wake-up channel carrying the newest seq.
#[derive(Debug)]
pub struct Topic {
    name: String,
    history: usize,
    ring: RwLock<Ring>,
    latest: watch::Sender<u64>,
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
            latest: watch::channel(0).0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest seq (0 before the first publish).
    pub fn latest_seq(&self) -> u64 {
        *self.latest.borrow()
    }

    /// A receiver that wakes when a newer message is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Publishes `data`, stamped with the current time. Encodes it once.
    pub fn publish(&self, data: &str) -> Arc<Entry> {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let entry = Arc::new(Entry::new(encode_message(&self.name, seq, now_ns(), data)));
        if ring.entries.len() == self.history {
            ring.entries.pop_front();
        }
        ring.entries.push_back(entry.clone());
        // Sent while the ring lock is held so seqs reach the channel in order.
        self.latest.send_replace(seq);
        entry
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

    /// Messages after `since`, at most `max`, starting no further back than `max_lag` messages
    /// before the newest. Seqs skipped by the ring or the lag bound come back as a gap.
    pub fn read_after(&self, since: u64, max: usize, max_lag: usize) -> Read {
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let latest = ring.next_seq - 1;
        if since >= latest {
            return Read {
                cursor: since,
                ..Read::default()
            };
        }
        let first_retained = ring.next_seq - ring.entries.len() as u64;
        let lag_floor = latest.saturating_sub(max_lag.max(1) as u64 - 1);
        let start = (since + 1).max(first_retained).max(lag_floor);
        let gap = Gap::between(since, start);
        let from = (start - first_retained) as usize;
        let count = (ring.entries.len() - from).min(max.max(1));
        let entries: Vec<Arc<Entry>> = ring.entries.range(from..from + count).cloned().collect();
        let cursor = entries.last().map_or(start - 1, |e| e.seq());
        Read {
            gap,
            entries,
            cursor,
        }
    }
}

/// Every topic, made on first use.
#[derive(Debug)]
pub struct Feed {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    history: usize,
    max_topics: usize,
}

impl Feed {
    pub fn new(history: usize, max_topics: usize) -> Self {
        Feed {
            topics: Mutex::new(HashMap::new()),
            history,
            max_topics,
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

    /// Publishes `data` on `topic` (a topic of this feed). Counting is the caller's
    /// ([`crate::Shared::publish`] counts it once, in the metrics).
    pub fn publish(&self, topic: &Topic, data: &str) -> Arc<Entry> {
        topic.publish(data)
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
    fn topic_limit() {
        let f = Feed::new(4, 2);
        f.topic("a").unwrap();
        f.topic("b").unwrap();
        f.topic("a").unwrap();
        assert_eq!(f.topic("c").unwrap_err(), FeedError::TooManyTopics(2));
    }
}
