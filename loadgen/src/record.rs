//! Per-transport recorder: the latency histogram, connection and byte counters, and the
//! per-subscriber sequence check that finds lost, duplicate and out-of-order messages.
//!
//! # Latency window
//!
//! A latency sample is taken for every delivered message whose *intended* send time (the
//! publisher's schedule, stamped in `data`) lies in the measured window
//! `[start + warmup, start + warmup + duration)`. Warmup messages are delivered and counted
//! but not sampled. So with no loss, each subscriber holds exactly one sample per message
//! published in the window (`window_published_messages`), however late it arrives.
//!
//! # Lost, duplicate, out of order
//!
//! Every subscriber subscribes (with an explicit cursor) before the first message of its
//! phase is published, so it must receive every seq from its start cursor + 1 up to the last
//! seq the publisher saw acknowledged. For one subscriber:
//!
//! - *out of order*: a seq that arrives after a higher one had already arrived;
//! - *duplicate*: a seq that had already arrived (or was covered by a gap notice);
//! - *lost*: a seq in its range that never arrived by the end of the drain period and was not
//!   covered by a gap notice (a gap notice is the server saying "you missed these": counted in
//!   `gap_notices`, not as lost, because nothing went missing silently).
//!
//! Counts are summed over subscribers: one message missed by 3 subscribers counts 3.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use pushlab_proto::counters::{AtomicCounters, Counters};
use pushlab_proto::result::{ByteSplit, Latency};
use pushlab_proto::{Gap, Transport};

/// Highest latency the histogram holds, µs (an hour); larger values are clamped.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// An empty latency histogram: 1 µs to an hour, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static bounds are valid")
}

/// V2 + deflate, base64 (standard alphabet, padded).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing into a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads what [`encode_histogram`] wrote.
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("histogram does not decode: {e:?}"))
}

/// Percentiles of a histogram, µs.
pub fn latency_of(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        count: h.len(),
        min: h.min(),
        mean: h.mean(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        p9999: h.value_at_quantile(0.9999),
        max: h.max(),
    }
}

/// Wire bytes by kind, as counted by one client (both directions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub payload: u64,
    pub envelope: u64,
    pub headers: u64,
    pub framing: u64,
    pub handshake: u64,
    /// HTTP/2 control frames (see [`pushlab_proto::h2wire`]).
    pub control: u64,
    /// TLS records' overhead and handshake.
    pub tls: u64,
}

impl Tally {
    pub fn sum(&self) -> u64 {
        self.payload
            + self.envelope
            + self.headers
            + self.framing
            + self.handshake
            + self.control
            + self.tls
    }

    pub fn add(&mut self, o: &Tally) {
        self.payload += o.payload;
        self.envelope += o.envelope;
        self.headers += o.headers;
        self.framing += o.framing;
        self.handshake += o.handshake;
        self.control += o.control;
        self.tls += o.tls;
    }

    pub fn split(&self, tcpip: u64) -> ByteSplit {
        ByteSplit {
            payload: self.payload as f64,
            envelope: self.envelope as f64,
            headers: self.headers as f64,
            framing: self.framing as f64,
            handshake: self.handshake as f64,
            tcpip: tcpip as f64,
            control: self.control as f64,
            tls: self.tls as f64,
        }
    }
}

/// Which side's header block [`Recorder::header_block`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderBlock {
    Request,
    Response,
}

/// The measured window, epoch ns (0, 0 until the publisher has fixed its schedule).
#[derive(Debug, Default)]
pub struct Window {
    start_ns: AtomicU64,
    end_ns: AtomicU64,
}

impl Window {
    pub fn set(&self, start_ns: u64, end_ns: u64) {
        self.end_ns.store(end_ns, Ordering::Release);
        self.start_ns.store(start_ns, Ordering::Release);
    }

    pub fn contains(&self, t_ns: u64) -> bool {
        let start = self.start_ns.load(Ordering::Acquire);
        start != 0 && t_ns >= start && t_ns < self.end_ns.load(Ordering::Acquire)
    }
}

/// One transport's counters in one phase, shared by its subscribers.
#[derive(Debug)]
pub struct Recorder {
    pub transport: Transport,
    pub window: Window,
    histogram: Mutex<Histogram<u64>>,
    pub subscribed: AtomicU64,
    pub finished: AtomicU64,
    /// Subscribers that never managed to subscribe.
    pub gave_up: AtomicU64,
    pub open_connections: AtomicI64,
    /// The counters the result carries ([`Counters`]); the fields below are the recorder's
    /// own bookkeeping.
    pub counts: AtomicCounters,
    pub foreign_messages: AtomicU64,
    pub overattributed: AtomicU64,
    /// Closes where the server did not close its side within the close timeout.
    pub unclean_closes: AtomicU64,
    pub segments: AtomicU64,
    pub segments_known: AtomicBool,
    /// Segments and payload bytes the subscribers' sockets retransmitted (TCP_INFO).
    pub retransmitted_segments: AtomicU64,
    pub retransmitted_bytes: AtomicU64,
    tally: Mutex<Tally>,
    /// The first few problems, for the result's notes ("client 3: HTTP 503 ...").
    problems: Mutex<Vec<String>>,
    problem_count: AtomicU64,
}

/// Problems kept verbatim per transport; the rest are only counted.
const MAX_PROBLEMS: usize = 8;

impl Recorder {
    pub fn new(transport: Transport) -> Recorder {
        Recorder {
            transport,
            window: Window::default(),
            histogram: Mutex::new(new_histogram()),
            subscribed: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            gave_up: AtomicU64::new(0),
            open_connections: AtomicI64::new(0),
            counts: AtomicCounters::default(),
            foreign_messages: AtomicU64::new(0),
            overattributed: AtomicU64::new(0),
            unclean_closes: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            segments_known: AtomicBool::new(false),
            retransmitted_segments: AtomicU64::new(0),
            retransmitted_bytes: AtomicU64::new(0),
            tally: Mutex::new(Tally::default()),
            problems: Mutex::new(Vec::new()),
            problem_count: AtomicU64::new(0),
        }
    }

    /// Counts one request's or response's header bytes, as the first on its connection or a
    /// later one (HTTP/1.1 head, or HTTP/2 HPACK block).
    pub fn header_block(&self, side: HeaderBlock, first: bool, bytes: u64) {
        let c = &self.counts;
        let (n, b) = match (side, first) {
            (HeaderBlock::Request, true) => (&c.first_requests, &c.headers_first_request_bytes),
            (HeaderBlock::Request, false) => (&c.later_requests, &c.headers_later_request_bytes),
            (HeaderBlock::Response, true) => (&c.first_responses, &c.headers_first_response_bytes),
            (HeaderBlock::Response, false) => (&c.later_responses, &c.headers_later_response_bytes),
        };
        AtomicCounters::bump(n, 1);
        AtomicCounters::bump(b, bytes);
    }

    /// Records latency samples (µs).
    pub fn record_latencies(&self, samples_us: &[u64]) {
        if samples_us.is_empty() {
            return;
        }
        let mut h = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        for &us in samples_us {
            h.saturating_record(us.clamp(1, MAX_LATENCY_US));
        }
    }

    pub fn histogram(&self) -> Histogram<u64> {
        self.histogram
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// p99 so far, µs (for the progress line).
    pub fn p99_so_far(&self) -> Option<u64> {
        let h = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        (!h.is_empty()).then(|| h.value_at_quantile(0.99))
    }

    pub fn add_tally(&self, t: &Tally) {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).add(t);
    }

    pub fn tally(&self) -> Tally {
        *self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn connection_opened(&self) {
        self.counts.tcp_connects.fetch_add(1, Ordering::Relaxed);
        let now = self.open_connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.counts
            .peak_open_connections
            .fetch_max(now.max(0) as u64, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn problem(&self, what: String) {
        self.problem_count.fetch_add(1, Ordering::Relaxed);
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < MAX_PROBLEMS {
            p.push(what);
        }
    }

    /// The kept problems, and how many there were in all.
    pub fn problems(&self) -> (Vec<String>, u64) {
        (
            self.problems
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            self.problem_count.load(Ordering::Relaxed),
        )
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Everything the result is assembled from, read now (exact once the subscribers ended).
    pub fn snapshot(&self) -> RecorderSnapshot {
        let (problems, problem_count) = self.problems();
        RecorderSnapshot {
            counts: self.counts.snapshot(),
            tally: self.tally(),
            histogram: self.histogram(),
            segments: self
                .segments_known
                .load(Ordering::Relaxed)
                .then(|| Recorder::get(&self.segments)),
            retransmitted: crate::net::TcpRetransmissions {
                segments: Recorder::get(&self.retransmitted_segments),
                bytes: Recorder::get(&self.retransmitted_bytes),
            },
            foreign_messages: Recorder::get(&self.foreign_messages),
            overattributed: Recorder::get(&self.overattributed),
            unclean_closes: Recorder::get(&self.unclean_closes),
            problems,
            problem_count,
        }
    }
}

/// A recorder's figures at one moment, as plain values: what result assembly reads.
#[derive(Clone, Debug)]
pub struct RecorderSnapshot {
    pub counts: Counters,
    pub tally: Tally,
    pub histogram: Histogram<u64>,
    /// TCP segments both ways (`None` where TCP_INFO was not available).
    pub segments: Option<u64>,
    /// What the subscribers' sockets sent again (meaningful where `segments` is known).
    pub retransmitted: crate::net::TcpRetransmissions,
    /// Deliveries without a send-time stamp (another publisher on the topic).
    pub foreign_messages: u64,
    /// Bytes the split attributed beyond what was counted (a loadgen bug if not 0).
    pub overattributed: u64,
    /// Closes the server did not answer within the close timeout.
    pub unclean_closes: u64,
    /// The first few problems, verbatim, and how many there were.
    pub problems: Vec<String>,
    pub problem_count: u64,
}

/// The recorder's counters read as its fields (`rec.http_requests`).
impl std::ops::Deref for Recorder {
    type Target = AtomicCounters;

    fn deref(&self) -> &AtomicCounters {
        &self.counts
    }
}

/// Decrements a recorder's open-connection gauge when a connection is dropped.
#[derive(Debug)]
pub struct OpenGuard(pub Arc<Recorder>);

impl OpenGuard {
    pub fn new(rec: Arc<Recorder>) -> OpenGuard {
        rec.connection_opened();
        OpenGuard(rec)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// What one message did to a subscriber's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next one, or later than expected (the skipped seqs are now missing).
    InOrder,
    /// A seq that was missing arrived late.
    OutOfOrder,
    /// Already had it.
    Duplicate,
}

/// One subscriber's view of the sequence: see the module docs for the definitions.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    /// Highest seq held or covered by a gap notice: the resume cursor.
    last: u64,
    /// Seqs skipped over and not (yet) arrived: start -> end, inclusive, disjoint.
    missing: BTreeMap<u64, u64>,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub gap_notices: u64,
}

impl SeqTracker {
    /// A subscriber that has everything up to `start` (its start cursor).
    pub fn new(start: u64) -> SeqTracker {
        SeqTracker {
            last: start,
            missing: BTreeMap::new(),
            duplicates: 0,
            out_of_order: 0,
            gap_notices: 0,
        }
    }

    /// The cursor to resume from (`since=`, `Last-Event-ID`).
    pub fn cursor(&self) -> u64 {
        self.last
    }

    pub fn on_message(&mut self, seq: u64) -> Arrival {
        if seq > self.last {
            if seq > self.last + 1 {
                self.missing.insert(self.last + 1, seq - 1);
            }
            self.last = seq;
            return Arrival::InOrder;
        }
        if self.take_missing(seq) {
            self.out_of_order += 1;
            Arrival::OutOfOrder
        } else {
            self.duplicates += 1;
            Arrival::Duplicate
        }
    }

    /// A gap notice: `from..=to` will never come and that is not a loss.
    pub fn on_gap(&mut self, gap: &Gap) {
        self.gap_notices += 1;
        for s in gap.from..=gap.to.min(gap.from.saturating_add(1_000_000)) {
            if s <= self.last {
                self.take_missing(s);
            }
        }
        if gap.to > self.last {
            if gap.from > self.last + 1 {
                self.missing.insert(self.last + 1, gap.from - 1);
            }
            self.last = gap.to;
        }
    }

    fn take_missing(&mut self, seq: u64) -> bool {
        let Some((&start, &end)) = self.missing.range(..=seq).next_back() else {
            return false;
        };
        if seq > end {
            return false;
        }
        self.missing.remove(&start);
        if start < seq {
            self.missing.insert(start, seq - 1);
        }
        if seq < end {
            self.missing.insert(seq + 1, end);
        }
        true
    }

    /// Seqs up to `last_published` neither held nor covered by a gap notice.
    pub fn lost(&self, last_published: u64) -> u64 {
        let skipped: u64 = self
            .missing
            .iter()
            .filter(|(&s, _)| s <= last_published)
            .map(|(&s, &e)| e.min(last_published) - s + 1)
            .sum();
        skipped + last_published.saturating_sub(self.last)
    }

    /// The first missing ranges, for notes (`4-9, 12`).
    pub fn describe_missing(&self, last_published: u64, max: usize) -> String {
        let mut parts: Vec<String> = self
            .missing
            .iter()
            .filter(|(&s, _)| s <= last_published)
            .map(|(&s, &e)| {
                let e = e.min(last_published);
                if s == e {
                    s.to_string()
                } else {
                    format!("{s}-{e}")
                }
            })
            .collect();
        if self.last < last_published {
            parts.push(if self.last + 1 == last_published {
                last_published.to_string()
            } else {
                format!("{}-{last_published}", self.last + 1)
            });
        }
        let more = parts.len().saturating_sub(max);
        parts.truncate(max);
        let mut s = parts.join(", ");
        if more > 0 {
            s.push_str(&format!(" and {more} more ranges"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_loses_nothing() {
        let mut t = SeqTracker::new(0);
        for s in 1..=10 {
            assert_eq!(t.on_message(s), Arrival::InOrder);
        }
        assert_eq!(t.lost(10), 0);
        assert_eq!(t.cursor(), 10);
        assert_eq!(t.lost(12), 2, "two published after the last one held");
        assert_eq!(t.describe_missing(12, 5), "11-12");
    }

    #[test]
    fn skips_reorders_and_duplicates() {
        let mut t = SeqTracker::new(5);
        t.on_message(6);
        t.on_message(10); // 7, 8, 9 missing
        assert_eq!(t.lost(10), 3);
        assert_eq!(t.on_message(8), Arrival::OutOfOrder);
        assert_eq!(t.lost(10), 2);
        assert_eq!(t.on_message(8), Arrival::Duplicate);
        assert_eq!(t.on_message(6), Arrival::Duplicate);
        assert_eq!(
            t.on_message(3),
            Arrival::Duplicate,
            "before the start cursor"
        );
        assert_eq!(t.describe_missing(10, 5), "7, 9");
        assert_eq!((t.duplicates, t.out_of_order), (3, 1));
    }

    #[test]
    fn gap_notices_cover_what_they_name() {
        let mut t = SeqTracker::new(0);
        t.on_message(1);
        t.on_gap(&Gap {
            missed: 5,
            from: 2,
            to: 6,
        });
        assert_eq!(t.cursor(), 6);
        t.on_message(7);
        assert_eq!(t.lost(7), 0);
        assert_eq!(t.gap_notices, 1);
        // A gap that names seqs already skipped covers them too.
        let mut t = SeqTracker::new(0);
        t.on_message(5);
        t.on_gap(&Gap {
            missed: 2,
            from: 1,
            to: 2,
        });
        assert_eq!(t.lost(5), 2, "3 and 4 are still missing");
    }

    #[test]
    fn histogram_round_trips_through_base64() {
        let mut h = new_histogram();
        for v in [1u64, 10, 100, 1000, 123_456] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.max(), h.max());
        assert_eq!(latency_of(&back).p50, latency_of(&h).p50);
        assert!(decode_histogram("not base64!").is_err());
    }
}
