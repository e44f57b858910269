//! Latency through an emulated link (issue 11): each transport's p50 and p99 against the link's
//! RTT and loss, beside what a model of the transport expects (pure; the charts and REPORT.md's
//! link section only format these).
//!
//! The expectation of the median publish-to-deliver latency, one way, with the publisher next
//! to the server (so only the server-to-subscriber half of the RTT is on the path):
//!
//! | transport | expected p50 | why |
//! |---|---|---|
//! | SSE, chunked stream, WebSocket | RTT/2 | the message is pushed down an open connection |
//! | long poll | RTT/2, or RTT when the publish period 1/rate is shorter than the RTT | after each answer the server holds no request for one RTT (answer down, next request up); the publisher keeps a fixed schedule, so while its period is at least the RTT every message finds a request waiting, and faster messages land in the gap and wait on average RTT/2 more |
//! | short poll | interval/2 + RTT/2 | polls reach the server on a fixed schedule, so a message waits half an interval on average, then half an RTT down |
//!
//! Loss leaves the median alone while under a few percent and adds tails: a lost segment of a
//! lone message is sent again after a tail-loss probe or a retransmission timeout, which Linux
//! holds at 200 ms at least, so a p99 through a lossy link is expected near RTT/2 + RTT + 200 ms
//! once more than 1 % of messages lose a packet ([`expected_loss_p99_ms`]).

use std::collections::{BTreeMap, BTreeSet};

use pushlab_proto::Transport;

use super::data::{Dataset, Entry};

/// Linux's minimum retransmission timeout (`TCP_RTO_MIN`), milliseconds.
pub const LINUX_RTO_MIN_MS: f64 = 200.0;

/// One transport at one link condition.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkPoint {
    pub transport: Transport,
    pub rtt_ms: f64,
    /// Per direction, 0 to 1.
    pub loss_ratio: f64,
    pub clients: u64,
    pub rate_per_s: f64,
    pub poll_interval_ms: f64,
    pub delivered: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// [`expected_p50_ms`] at this point.
    pub expected_p50_ms: f64,
    /// Bytes TCP sent again, both sides, per delivered message (`None`: not recorded).
    pub retransmitted_bytes_per_message: Option<f64>,
    /// Lost, duplicated or out-of-order messages.
    pub lost: u64,
}

impl LinkPoint {
    /// Measured p50 minus expected, milliseconds.
    pub fn departure_ms(&self) -> f64 {
        self.p50_ms - self.expected_p50_ms
    }
}

/// The model's median one-way latency of `t` through a link of `rtt_ms`, in milliseconds (see
/// the module doc for each formula).
pub fn expected_p50_ms(t: Transport, rtt_ms: f64, poll_interval_ms: f64, rate_per_s: f64) -> f64 {
    let half = rtt_ms / 2.0;
    match t {
        Transport::Sse | Transport::Stream | Transport::Ws => half,
        Transport::LongPoll if rtt_ms / 1000.0 * rate_per_s > 1.0 => rtt_ms,
        Transport::LongPoll => half,
        Transport::Poll => poll_interval_ms / 2.0 + half,
    }
}

/// The p99 a lossy link is expected to add to: one retransmission after at least Linux's
/// minimum RTO (or a tail-loss probe of about the same), milliseconds.
pub fn expected_loss_p99_ms(rtt_ms: f64) -> f64 {
    rtt_ms / 2.0 + rtt_ms + LINUX_RTO_MIN_MS
}

fn point(e: &Entry) -> Option<LinkPoint> {
    let r = &e.result;
    let link = r.scenario.link.as_ref()?;
    let rtt_ms = link.rtt_ms;
    let poll_interval_ms = r.scenario.poll_interval_ms as f64;
    let rate_per_s = r.scenario.publish_rate_per_s;
    Some(LinkPoint {
        transport: r.transport,
        rtt_ms,
        loss_ratio: link.loss_ratio,
        clients: r.clients,
        rate_per_s,
        poll_interval_ms,
        delivered: r.delivered_messages,
        p50_ms: e.p50_ms(),
        p99_ms: e.p99_ms(),
        expected_p50_ms: expected_p50_ms(r.transport, rtt_ms, poll_interval_ms, rate_per_s),
        retransmitted_bytes_per_message: r
            .retransmissions
            .filter(|_| r.delivered_messages > 0)
            .map(|x| x.bytes() as f64 / r.delivered_messages as f64),
        lost: r.lost_messages + r.duplicate_messages + r.out_of_order_messages,
    })
}

/// Key of a point: transport, RTT and loss in thousandths.
type PointKey = (Transport, u64, u64);

fn key(p: &LinkPoint) -> PointKey {
    (
        p.transport,
        (p.rtt_ms * 1000.0).round() as u64,
        (p.loss_ratio * 1e6).round() as u64,
    )
}

/// One point per (transport, RTT, loss): of several (repeats, clients, rates), the one with the
/// most delivered messages; default variant (keep-alive, minimal headers) only. Sorted by
/// transport, RTT, loss.
pub fn points(data: &Dataset) -> Vec<LinkPoint> {
    let mut best: BTreeMap<PointKey, LinkPoint> = BTreeMap::new();
    for e in data.linked.iter().filter(|e| e.variant().is_default()) {
        let Some(p) = point(e) else { continue };
        let slot = best.entry(key(&p)).or_insert_with(|| p.clone());
        if p.delivered > slot.delivered {
            *slot = p;
        }
    }
    best.into_values().collect()
}

/// Per transport, the points without loss in RTT order: latency against RTT.
pub fn rtt_series(points: &[LinkPoint]) -> BTreeMap<Transport, Vec<&LinkPoint>> {
    let mut out: BTreeMap<Transport, Vec<&LinkPoint>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.loss_ratio == 0.0) {
        out.entry(p.transport).or_default().push(p);
    }
    out.retain(|_, v| v.len() >= 2);
    out
}

/// The RTT with the most distinct loss ratios (ties: the larger RTT), and per transport its
/// points in loss order: latency against loss. `None` when no RTT has two loss ratios.
pub fn loss_series(points: &[LinkPoint]) -> Option<(f64, BTreeMap<Transport, Vec<&LinkPoint>>)> {
    let mut losses: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for p in points {
        let (_, rtt, loss) = key(p);
        losses.entry(rtt).or_default().insert(loss);
    }
    let (&rtt, n) = losses
        .iter()
        .map(|(rtt, l)| (rtt, l.len()))
        .max_by_key(|&(rtt, n)| (n, *rtt))?;
    if n < 2 {
        return None;
    }
    let mut out: BTreeMap<Transport, Vec<&LinkPoint>> = BTreeMap::new();
    for p in points.iter().filter(|p| key(p).1 == rtt) {
        out.entry(p.transport).or_default().push(p);
    }
    Some((rtt as f64 / 1000.0, out))
}

/// At each RTT without loss where both ran, (RTT, p50 of `a`, p50 of `b`) in ms.
pub fn p50_pairs(points: &[LinkPoint], a: Transport, b: Transport) -> Vec<(f64, f64, f64)> {
    let series = rtt_series(points);
    let (Some(sa), Some(sb)) = (series.get(&a), series.get(&b)) else {
        return Vec::new();
    };
    sa.iter()
        .filter_map(|pa| {
            let pb = sb.iter().find(|pb| pb.rtt_ms == pa.rtt_ms)?;
            Some((pa.rtt_ms, pa.p50_ms, pb.p50_ms))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_follow_the_model() {
        assert_eq!(expected_p50_ms(Transport::Ws, 100.0, 1000.0, 1.0), 50.0);
        assert_eq!(expected_p50_ms(Transport::Sse, 0.0, 1000.0, 1.0), 0.0);
        // A publish period (1 s, 200 ms) at least the RTT: a request is always waiting.
        assert_eq!(
            expected_p50_ms(Transport::LongPoll, 100.0, 1000.0, 1.0),
            50.0
        );
        assert_eq!(
            expected_p50_ms(Transport::LongPoll, 200.0, 1000.0, 5.0),
            100.0
        );
        // Faster than one message per RTT: messages land in the re-poll gap.
        assert_eq!(
            expected_p50_ms(Transport::LongPoll, 200.0, 1000.0, 10.0),
            200.0
        );
        assert_eq!(expected_p50_ms(Transport::Poll, 100.0, 1000.0, 1.0), 550.0);
        assert_eq!(expected_loss_p99_ms(100.0), 350.0);
    }

    fn p(t: Transport, rtt_ms: f64, loss_ratio: f64, p50_ms: f64) -> LinkPoint {
        LinkPoint {
            transport: t,
            rtt_ms,
            loss_ratio,
            clients: 10,
            rate_per_s: 1.0,
            poll_interval_ms: 1000.0,
            delivered: 10,
            p50_ms,
            p99_ms: p50_ms * 2.0,
            expected_p50_ms: expected_p50_ms(t, rtt_ms, 1000.0, 1.0),
            retransmitted_bytes_per_message: None,
            lost: 0,
        }
    }

    #[test]
    fn series_pick_the_lossless_rtts_and_the_rtt_with_most_losses() {
        let pts = vec![
            p(Transport::Ws, 0.0, 0.0, 1.0),
            p(Transport::Ws, 50.0, 0.0, 26.0),
            p(Transport::Ws, 50.0, 0.01, 27.0),
            p(Transport::Ws, 100.0, 0.0, 51.0),
            p(Transport::Poll, 50.0, 0.0, 530.0),
            p(Transport::Poll, 100.0, 0.0, 560.0),
            p(Transport::Sse, 100.0, 0.0, 51.0),
        ];
        let rtt = rtt_series(&pts);
        assert_eq!(rtt[&Transport::Ws].len(), 3);
        assert!(!rtt.contains_key(&Transport::Sse), "one point is no series");
        let (at, loss) = loss_series(&pts).unwrap();
        assert_eq!(at, 50.0);
        assert_eq!(loss[&Transport::Ws].len(), 2);
        assert_eq!(
            p50_pairs(&pts, Transport::Ws, Transport::Poll),
            vec![(50.0, 26.0, 530.0), (100.0, 51.0, 560.0)]
        );
        assert_eq!(pts[3].departure_ms(), 1.0);
        assert!(loss_series(&pts[..2]).is_none());
    }

    /// A report over loopback runs plus runs through the link: the loopback part (claims
    /// table, comparison) is the loopback-only report's, and the link section, its two charts
    /// and the C4/C7/C8 readings appear.
    #[test]
    fn link_runs_add_a_section_and_leave_the_loopback_report_alone() {
        use crate::report::fixture;
        use pushlab_proto::result::LinkScenario;
        let loopback = fixture::run(fixture::scenario(1.0), &Transport::ALL);
        let mut runs = vec![("a.json".into(), loopback)];
        for (i, (rtt_ms, loss_ratio)) in [(0.0, 0.0), (50.0, 0.0), (100.0, 0.0), (100.0, 0.01)]
            .into_iter()
            .enumerate()
        {
            let mut s = fixture::scenario(1.0);
            s.link = Some(LinkScenario {
                rtt_ms,
                loss_ratio,
                ..LinkScenario::default()
            });
            let mut variants = vec![fixture::run(s.clone(), &Transport::ALL)];
            s.keep_alive = false;
            variants.push(fixture::run(s, &[Transport::Poll]));
            for (k, r) in variants.into_iter().enumerate() {
                runs.push((format!("link/{i}-{k}.json").into(), r));
            }
        }
        let dir = std::env::temp_dir().join(format!("pushlab-link-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let both = Dataset::from_runs(runs.clone());
        assert_eq!(both.linked.len(), 4 * 6);
        let pts = points(&both);
        assert_eq!(pts.len(), 4 * 5, "default variant only");
        let only_loopback = Dataset::from_runs(runs[..1].to_vec());
        let opts = crate::report::ReportOptions::default();
        let a = crate::report::write_report(&only_loopback, &dir, &dir, &opts).unwrap();
        let text_a = std::fs::read_to_string(&a.report_md).unwrap();
        assert!(!text_a.contains("emulated link"));
        assert!(!dir.join("charts/link_rtt.png").exists());
        let b = crate::report::write_report(&both, &dir, &dir, &opts).unwrap();
        let text_b = std::fs::read_to_string(&b.report_md).unwrap();
        assert!(text_b.contains("## Through an emulated link"), "{text_b}");
        assert!(dir.join("charts/link_rtt.png").exists());
        assert!(dir.join("charts/link_loss.svg").exists());
        for (id, want) in [
            ("C4", "long poll p50"),
            ("C7", "without keep-alive"),
            ("C8", "the article: 150 and 50 ms"),
        ] {
            let c = b.claims.iter().find(|c| c.id == id).unwrap();
            assert!(c.reason.contains(want), "{id}: {}", c.reason);
            let before = a.claims.iter().find(|c| c.id == id).unwrap();
            assert_eq!(
                (&c.headline, &c.verdict),
                (&before.headline, &before.verdict)
            );
        }
        assert_eq!(
            crate::report::markdown::claims_table(&a.claims),
            crate::report::markdown::claims_table(&b.claims)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
