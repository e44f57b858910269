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
//! The p99 ([`expected_p99_ms`]) follows from the same model: a push RTT/2 (nothing waits); long
//! polling in the re-poll gap 0.99 RTT + RTT/2 (a message published just after an answer left
//! waits the whole RTT for the next request: the "1.5 RTT"); short polling
//! 0.99 interval + RTT/2 (the wait for the next poll is uniform over the interval).
//!
//! Loss leaves the median alone while under a few percent and adds tails: a lost segment of a
//! lone message is sent again after a tail-loss probe or a retransmission timeout, which Linux
//! holds at 200 ms at least, so a p99 through a lossy link is expected near RTT/2 + RTT + 200 ms
//! once more than 1 % of messages lose a packet ([`expected_loss_p99_ms`]), or at the lossless
//! p99 when that is later (short polling's wait for its next poll).

use std::collections::{BTreeMap, BTreeSet};

use pushlab_proto::Transport;

use super::data::{Dataset, Entry};

/// Linux's minimum retransmission timeout (`TCP_RTO_MIN`), milliseconds.
pub const LINUX_RTO_MIN_MS: f64 = 200.0;

/// The loss ratio above which a p99 is expected to hold a retransmission: more than 1 % of
/// one-segment messages then lose their segment.
pub const LOSS_IN_P99: f64 = 0.01;

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
    /// [`expected_p99_ms`] at this point.
    pub expected_p99_ms: f64,
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

    /// Measured p99 minus expected, milliseconds.
    pub fn p99_departure_ms(&self) -> f64 {
        self.p99_ms - self.expected_p99_ms
    }
}

/// The model's median one-way latency of `t` through a link of `rtt_ms`, in milliseconds (see
/// the module doc for each formula).
pub fn expected_p50_ms(t: Transport, rtt_ms: f64, poll_interval_ms: f64, rate_per_s: f64) -> f64 {
    let half = rtt_ms / 2.0;
    match t {
        Transport::Sse | Transport::Stream | Transport::Ws => half,
        Transport::LongPoll if in_repoll_gap(rtt_ms, rate_per_s) => rtt_ms,
        Transport::LongPoll => half,
        Transport::Poll => poll_interval_ms / 2.0 + half,
    }
}

/// Whether messages come faster than one per RTT, so that long polling's messages land in the
/// gap after an answer while the next request is on its way.
fn in_repoll_gap(rtt_ms: f64, rate_per_s: f64) -> bool {
    rtt_ms / 1000.0 * rate_per_s > 1.0
}

/// The model's 99th percentile of the one-way latency of `t`, in milliseconds: the lossless
/// p99 (see the module doc), or once more than 1 % of packets are lost (`loss_ratio` > 0.01,
/// so more than 1 % of one-segment messages wait for a retransmission) the later of it and
/// [`expected_loss_p99_ms`].
pub fn expected_p99_ms(
    t: Transport,
    rtt_ms: f64,
    poll_interval_ms: f64,
    rate_per_s: f64,
    loss_ratio: f64,
) -> f64 {
    let half = rtt_ms / 2.0;
    let lossless = match t {
        Transport::Sse | Transport::Stream | Transport::Ws => half,
        Transport::LongPoll if in_repoll_gap(rtt_ms, rate_per_s) => 0.99 * rtt_ms + half,
        Transport::LongPoll => half,
        Transport::Poll => 0.99 * poll_interval_ms + half,
    };
    if loss_ratio > LOSS_IN_P99 {
        lossless.max(expected_loss_p99_ms(rtt_ms))
    } else {
        lossless
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
        expected_p99_ms: expected_p99_ms(
            r.transport,
            rtt_ms,
            poll_interval_ms,
            rate_per_s,
            link.loss_ratio,
        ),
        retransmitted_bytes_per_message: r
            .retransmissions
            .filter(|_| r.delivered_messages > 0)
            .map(|x| x.bytes() as f64 / r.delivered_messages as f64),
        lost: r.lost_messages + r.duplicate_messages + r.out_of_order_messages,
    })
}

/// Key of a point: transport, publish rate in thousandths of a message per second, RTT in
/// microseconds and loss in millionths.
type PointKey = (Transport, u64, u64, u64);

fn key(p: &LinkPoint) -> PointKey {
    (
        p.transport,
        rate_key(p.rate_per_s),
        (p.rtt_ms * 1000.0).round() as u64,
        (p.loss_ratio * 1e6).round() as u64,
    )
}

fn rate_key(rate_per_s: f64) -> u64 {
    (rate_per_s * 1000.0).round() as u64
}

/// One point per (transport, publish rate, RTT, loss): of several (repeats, client counts), the
/// one with the most delivered messages; default variant (keep-alive, minimal headers) only.
/// Sorted by transport, rate, RTT, loss.
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

/// The publish rates of `points`, msg/s, slowest first.
pub fn rates(points: &[LinkPoint]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for p in points {
        if !out.iter().any(|r| rate_key(*r) == rate_key(p.rate_per_s)) {
            out.push(p.rate_per_s);
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

fn at_rate(points: &[LinkPoint], rate_per_s: f64) -> impl Iterator<Item = &LinkPoint> {
    points
        .iter()
        .filter(move |p| rate_key(p.rate_per_s) == rate_key(rate_per_s))
}

/// Per transport with two points or more, the points without loss at `rate_per_s` in RTT
/// order: latency against RTT.
pub fn rtt_series(points: &[LinkPoint], rate_per_s: f64) -> BTreeMap<Transport, Vec<&LinkPoint>> {
    let mut out: BTreeMap<Transport, Vec<&LinkPoint>> = BTreeMap::new();
    for p in at_rate(points, rate_per_s).filter(|p| p.loss_ratio == 0.0) {
        out.entry(p.transport).or_default().push(p);
    }
    out.retain(|_, v| v.len() >= 2);
    for v in out.values_mut() {
        v.sort_by(|a, b| a.rtt_ms.total_cmp(&b.rtt_ms));
    }
    out
}

/// At `rate_per_s`, the RTT with the most distinct loss ratios (ties: the larger RTT), and per
/// transport its points in loss order: latency against loss. `None` when no RTT has two loss
/// ratios.
pub fn loss_series(
    points: &[LinkPoint],
    rate_per_s: f64,
) -> Option<(f64, BTreeMap<Transport, Vec<&LinkPoint>>)> {
    let mut losses: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for p in at_rate(points, rate_per_s) {
        let (_, _, rtt, loss) = key(p);
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
    for p in at_rate(points, rate_per_s).filter(|p| key(p).2 == rtt) {
        out.entry(p.transport).or_default().push(p);
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.loss_ratio.total_cmp(&b.loss_ratio));
    }
    Some((rtt as f64 / 1000.0, out))
}

/// `a` and `b` at one rate and RTT, both without loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair<'a> {
    pub rate_per_s: f64,
    pub rtt_ms: f64,
    pub a: &'a LinkPoint,
    pub b: &'a LinkPoint,
}

/// At each rate and RTT without loss where both ran, `a`'s point beside `b`'s; by rate, then RTT.
pub fn pairs(points: &[LinkPoint], a: Transport, b: Transport) -> Vec<Pair<'_>> {
    let mut out = Vec::new();
    for rate in rates(points) {
        let series = rtt_series(points, rate);
        let (Some(sa), Some(sb)) = (series.get(&a), series.get(&b)) else {
            continue;
        };
        out.extend(sa.iter().filter_map(|pa| {
            let pb = sb.iter().find(|pb| pb.rtt_ms == pa.rtt_ms)?;
            Some(Pair {
                rate_per_s: rate,
                rtt_ms: pa.rtt_ms,
                a: pa,
                b: pb,
            })
        }));
    }
    out
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
        // p99: a push and a long poll with a request waiting need the half RTT only; a long
        // poll in the re-poll gap up to 1.5 RTT; a short poll up to a whole interval more.
        assert_eq!(
            expected_p99_ms(Transport::Ws, 100.0, 1000.0, 10.0, 0.0),
            50.0
        );
        assert_eq!(
            expected_p99_ms(Transport::LongPoll, 100.0, 1000.0, 1.0, 0.0),
            50.0
        );
        assert_eq!(
            expected_p99_ms(Transport::LongPoll, 200.0, 1000.0, 10.0, 0.0),
            298.0
        );
        assert_eq!(
            expected_p99_ms(Transport::Poll, 100.0, 1000.0, 1.0, 0.0),
            1040.0
        );
        // Loss: over 1 %, the retransmission tail, unless the lossless p99 is later; at 1 %
        // and under, 99 % of messages meet no loss.
        assert_eq!(
            expected_p99_ms(Transport::Sse, 100.0, 1000.0, 1.0, 0.05),
            350.0
        );
        assert_eq!(
            expected_p99_ms(Transport::Sse, 100.0, 1000.0, 1.0, 0.01),
            50.0
        );
        assert_eq!(
            expected_p99_ms(Transport::Poll, 100.0, 1000.0, 1.0, 0.05),
            1040.0
        );
    }

    fn p(t: Transport, rtt_ms: f64, loss_ratio: f64, p50_ms: f64) -> LinkPoint {
        at(t, 1.0, rtt_ms, loss_ratio, p50_ms)
    }

    fn at(t: Transport, rate: f64, rtt_ms: f64, loss_ratio: f64, p50_ms: f64) -> LinkPoint {
        LinkPoint {
            transport: t,
            rtt_ms,
            loss_ratio,
            clients: 10,
            rate_per_s: rate,
            poll_interval_ms: 1000.0,
            delivered: 10,
            p50_ms,
            p99_ms: p50_ms * 2.0,
            expected_p50_ms: expected_p50_ms(t, rtt_ms, 1000.0, rate),
            expected_p99_ms: expected_p99_ms(t, rtt_ms, 1000.0, rate, loss_ratio),
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
        let rtt = rtt_series(&pts, 1.0);
        assert_eq!(rtt[&Transport::Ws].len(), 3);
        assert!(!rtt.contains_key(&Transport::Sse), "one point is no series");
        let (at_rtt, loss) = loss_series(&pts, 1.0).unwrap();
        assert_eq!(at_rtt, 50.0);
        assert_eq!(loss[&Transport::Ws].len(), 2);
        let got: Vec<(f64, f64, f64)> = pairs(&pts, Transport::Ws, Transport::Poll)
            .iter()
            .map(|x| (x.rtt_ms, x.a.p50_ms, x.b.p50_ms))
            .collect();
        assert_eq!(got, vec![(50.0, 26.0, 530.0), (100.0, 51.0, 560.0)]);
        assert_eq!(pts[3].departure_ms(), 1.0);
        assert_eq!(pts[3].p99_departure_ms(), 52.0);
        assert!(loss_series(&pts[..2], 1.0).is_none());
        assert!(rtt_series(&pts, 10.0).is_empty(), "no point at 10 msg/s");
    }

    /// Two rates at one RTT are two points, each in its own rate's series; pairs come by rate,
    /// then RTT.
    #[test]
    fn rates_are_kept_apart() {
        let pts = [
            at(Transport::Ws, 10.0, 100.0, 0.0, 52.0),
            at(Transport::Ws, 1.0, 100.0, 0.0, 51.0),
            at(Transport::Ws, 1.0, 0.0, 0.0, 1.0),
            at(Transport::Ws, 10.0, 0.0, 0.0, 2.0),
            at(Transport::LongPoll, 10.0, 0.0, 0.0, 3.0),
            at(Transport::LongPoll, 10.0, 100.0, 0.0, 60.0),
        ];
        assert_eq!(rates(&pts), vec![1.0, 10.0]);
        let slow = rtt_series(&pts, 1.0);
        let fast = rtt_series(&pts, 10.0);
        assert_eq!(slow[&Transport::Ws][1].p50_ms, 51.0);
        assert_eq!(fast[&Transport::Ws][1].p50_ms, 52.0);
        assert!(!slow.contains_key(&Transport::LongPoll));
        let got: Vec<(f64, f64)> = pairs(&pts, Transport::LongPoll, Transport::Ws)
            .iter()
            .map(|x| (x.rate_per_s, x.rtt_ms))
            .collect();
        assert_eq!(got, vec![(10.0, 0.0), (10.0, 100.0)]);
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
        assert!(!dir.join("charts/link_rtt_r1.png").exists());
        let b = crate::report::write_report(&both, &dir, &dir, &opts).unwrap();
        let text_b = std::fs::read_to_string(&b.report_md).unwrap();
        for part in [
            "## Through an emulated link",
            "### The claims on the RTT data",
            "| C4 | **",
            "| C7 | **",
            "| C8 | **",
            "### p50 against RTT, without loss: measured (expected, difference), ms",
            "### p99 against RTT, without loss: measured (expected, difference), ms",
            "| transport | msg/s | RTT 0 | RTT 50 | RTT 100 |",
            "### Every point",
        ] {
            assert!(text_b.contains(part), "{part} missing from {text_b}");
        }
        assert!(dir.join("charts/link_rtt_r1.png").exists());
        assert!(dir.join("charts/link_loss_r1.svg").exists());
        let c7 = &b.claims.iter().find(|c| c.id == "C7").unwrap().reason;
        let order: Vec<usize> = ["RTT 0 ms", "RTT 50 ms", "RTT 100 ms"]
            .iter()
            .map(|r| c7.find(r).unwrap_or_else(|| panic!("{r} in {c7}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "RTT order: {c7}");
        for (id, want) in [
            ("C4", "long poll p50"),
            ("C7", "without keep-alive"),
            ("C8", "the article's 50 ms"),
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
