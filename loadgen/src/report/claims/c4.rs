//! C4: long polling removes most useless requests and suits infrequent data, but reconnects
//! after every message, and its delivery is slightly less real-time than polling 60 times a
//! minute.
//!
//! Judged on the short/long-poll pair at the lowest news per poll (the claim is about
//! infrequent data), with latency from the baseline scenario: "removes most" is at most
//! 1 - [`MOST`] of short polling's empty responses; "reconnects after every message" is at
//! least [`REQUESTS_PER_MESSAGE_RECONNECTING`] requests per delivered message.

use pushlab_proto::Transport;

use super::{
    base_entry, interval_ms, news_per_poll, spread, Claim, Missing, Ruling, Verdict, MOST,
    REPRODUCE,
};
use crate::report::data::{ratio, Dataset, Variant};
use crate::report::format::{fmt_num, pct, Fig};
use crate::report::link::{self, LinkPoint};
use crate::report::Chart;

/// Long polling "reconnects after every message" when it sends at least this many requests per
/// delivered message (the rest are batches holding more than one message).
pub const REQUESTS_PER_MESSAGE_RECONNECTING: f64 = 0.8;

pub struct C4;

#[derive(Clone, Debug, PartialEq)]
pub struct C4Figures {
    pub rate_per_s: f64,
    pub lp_empty: Fig,
    pub lp_requests: Fig,
    pub lp_requests_per_message: Fig,
    pub poll_empty: Fig,
    pub poll_requests: Fig,
    pub poll_requests_per_message: Fig,
    /// Long poll's empty responses over short poll's.
    pub empty_share: Fig,
    /// p50 latency in the baseline scenario, ms.
    pub lp_p50_ms: Fig,
    pub poll_p50_ms: Fig,
    pub poll_interval_ms: u64,
    /// The lowest rate at which long polling asked less than once per message (batching).
    pub batching_from: Option<f64>,
}

impl Claim for C4 {
    const INDEX: usize = 3;
    const CHARTS: &'static [Chart] = &[
        Chart::RequestsPerMessage,
        Chart::LatencySpectrum,
        Chart::RateSweep,
    ];
    type Figures = C4Figures;

    fn figures(data: &Dataset) -> Result<C4Figures, Missing> {
        let (poll, lp) = data
            .default_entries(Transport::LongPoll)
            .filter_map(|lp| {
                let p = data.variant(&lp.key(), Transport::Poll, Variant::DEFAULT)?;
                Some((p, lp))
            })
            .min_by(|a, b| news_per_poll(a.0).total_cmp(&news_per_poll(b.0)))
            .ok_or(Missing::new(
                "short and long polling run in the same scenario",
            ))?;
        let base_poll = base_entry(data, Transport::Poll).unwrap_or(poll);
        let base_lp = data
            .baseline()
            .and_then(|b| data.variant(&b.key, Transport::LongPoll, Variant::DEFAULT))
            .unwrap_or(lp);
        let batching_from = data
            .default_entries(Transport::LongPoll)
            .filter(|e| e.per_message(e.result.http_requests) < REQUESTS_PER_MESSAGE_RECONNECTING)
            .map(|e| e.result.scenario.publish_rate_per_s)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))));
        let lp_empty = lp.result.empty_responses as f64;
        let poll_empty = poll.result.empty_responses as f64;
        Ok(C4Figures {
            rate_per_s: lp.result.scenario.publish_rate_per_s,
            lp_empty: Fig::of(lp_empty),
            lp_requests: Fig::of(lp.result.http_requests as f64),
            lp_requests_per_message: Fig::of(lp.per_message(lp.result.http_requests)),
            poll_empty: Fig::of(poll_empty),
            poll_requests: Fig::of(poll.result.http_requests as f64),
            poll_requests_per_message: Fig::of(poll.per_message(poll.result.http_requests)),
            empty_share: Fig::of(ratio(lp_empty, poll_empty)),
            lp_p50_ms: Fig::of(base_lp.p50_ms()),
            poll_p50_ms: Fig::of(base_poll.p50_ms()),
            poll_interval_ms: interval_ms(base_poll),
            batching_from,
        })
    }

    fn combine(all: &[C4Figures]) -> C4Figures {
        C4Figures {
            lp_empty: spread(all, |f| f.lp_empty),
            lp_requests: spread(all, |f| f.lp_requests),
            lp_requests_per_message: spread(all, |f| f.lp_requests_per_message),
            poll_empty: spread(all, |f| f.poll_empty),
            poll_requests: spread(all, |f| f.poll_requests),
            poll_requests_per_message: spread(all, |f| f.poll_requests_per_message),
            empty_share: spread(all, |f| f.empty_share),
            lp_p50_ms: spread(all, |f| f.lp_p50_ms),
            poll_p50_ms: spread(all, |f| f.poll_p50_ms),
            ..all[0].clone()
        }
    }

    fn verdict(f: &C4Figures) -> Ruling {
        let removes_most = f.poll_empty.v() > 0.0 && f.empty_share.v() <= 1.0 - MOST;
        let reconnects = f.lp_requests_per_message.v() >= REQUESTS_PER_MESSAGE_RECONNECTING;
        let slower = f.lp_p50_ms.v() >= f.poll_p50_ms.v();
        let batching = match f.batching_from {
            Some(r) => format!(
                "; from {} msg/s on, batches held several messages and long polling asked less than once per message",
                fmt_num(r)
            ),
            None => String::new(),
        };
        match (removes_most, reconnects, slower) {
            (false, _, _) if f.poll_empty.v() == 0.0 => Ruling::not_here(
                REPRODUCE,
                "short polling had no empty responses in the pair of runs, so there was nothing to remove (a lower publish rate settles it)",
            ),
            (false, _, _) => Ruling::new(
                Verdict::DoesNotHold,
                format!(
                    "long polling still had {} of short polling's empty responses (needed at most {})",
                    pct(f.empty_share),
                    pct(1.0 - MOST)
                ),
            ),
            (true, true, true) => Ruling::new(
                Verdict::Holds,
                format!(
                    "empty responses fell to {} of short polling's, long polling asked {} times per message, and its p50 was not below polling's{batching}",
                    pct(f.empty_share),
                    f.lp_requests_per_message
                ),
            ),
            (true, true, false) => Ruling::new(
                Verdict::HoldsOnlyWhen("latency is left out: long polling delivered sooner, not later, than polling".into()),
                format!(
                    "empty responses fell to {} of short polling's and long polling re-asked {} times per message, but its p50 was {} ms against {} ms for polling every {} ms{batching}",
                    pct(f.empty_share),
                    f.lp_requests_per_message,
                    f.lp_p50_ms,
                    f.poll_p50_ms,
                    f.poll_interval_ms
                ),
            ),
            (true, false, _) => Ruling::new(
                Verdict::HoldsOnlyWhen("data is infrequent; here batches held several messages, so long polling did not re-ask after each".into()),
                format!(
                    "{} requests per delivered message (< {}){batching}",
                    f.lp_requests_per_message,
                    fmt_num(REQUESTS_PER_MESSAGE_RECONNECTING)
                ),
            ),
        }
    }

    fn headline(f: &C4Figures) -> String {
        format!(
            "empty responses {} of short poll's; {} requests per message; p50 {} ms vs {} ms polling",
            pct(f.empty_share),
            f.lp_requests_per_message,
            f.lp_p50_ms,
            f.poll_p50_ms
        )
    }

    fn measured(f: &C4Figures) -> String {
        format!(
            "at {} msg/s: long poll {} empty of {} requests ({} per delivered message) vs short poll {} empty of {} ({} per message); p50 latency {} ms vs {} ms polling every {} ms",
            fmt_num(f.rate_per_s),
            f.lp_empty,
            f.lp_requests,
            f.lp_requests_per_message,
            f.poll_empty,
            f.poll_requests,
            f.poll_requests_per_message,
            f.lp_p50_ms,
            f.poll_p50_ms,
            f.poll_interval_ms
        )
    }
}

/// C4 through the link (issue 11): at each publish rate and RTT without loss where both ran,
/// long polling's p50 and p99 against short polling's. Long polling is "less real-time" at a
/// point where its p50 is later than short polling's. `None` without such link data. The
/// loopback verdict stands; this rules on the latency half with the RTT in the path.
pub fn through_link(points: &[LinkPoint]) -> Option<super::RttReading> {
    let pairs = link::pairs(points, Transport::LongPoll, Transport::Poll);
    if pairs.is_empty() {
        return None;
    }
    let figures: Vec<String> = pairs
        .iter()
        .map(|p| {
            format!(
                "{} msg/s, RTT {} ms: long poll p50 {} / p99 {} ms, short poll ({} ms interval) {} / {} ms",
                fmt_num(p.rate_per_s),
                fmt_num(p.rtt_ms),
                fmt_num(p.a.p50_ms),
                fmt_num(p.a.p99_ms),
                fmt_num(p.b.poll_interval_ms),
                fmt_num(p.b.p50_ms),
                fmt_num(p.b.p99_ms)
            )
        })
        .collect();
    let later: Vec<&link::Pair> = pairs.iter().filter(|p| p.a.p50_ms > p.b.p50_ms).collect();
    let later_p99 = pairs.iter().filter(|p| p.a.p99_ms > p.b.p99_ms).count();
    let n = pairs.len();
    let (verdict, reason) = if later.is_empty() {
        let tail = if later_p99 == 0 {
            "p50 and p99 both".to_string()
        } else {
            format!("at p50; at p99 it was later at {later_p99} of them")
        };
        (
            Verdict::DoesNotHold,
            format!(
                "long polling delivered sooner than polling at all {n} rate and RTT points, {tail}, so RTT does not make it \"less real-time\""
            ),
        )
    } else {
        let at: Vec<String> = later
            .iter()
            .map(|p| {
                format!(
                    "{} msg/s at RTT {} ms",
                    fmt_num(p.rate_per_s),
                    fmt_num(p.rtt_ms)
                )
            })
            .collect();
        (
            Verdict::HoldsOnlyWhen(at.join(" or ")),
            format!(
                "long polling's p50 was later than polling's at {} of {n} points",
                later.len()
            ),
        )
    };
    Some(super::RttReading {
        id: "C4",
        verdict,
        reason,
        figures: figures.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empty responses (long, short), requests per message, p50 ms (long, short).
    fn figs(empty: (f64, f64), lp_req_per_msg: f64, p50: (f64, f64)) -> C4Figures {
        C4Figures {
            rate_per_s: 0.2,
            lp_empty: Fig::of(empty.0),
            lp_requests: Fig::of(120.0),
            lp_requests_per_message: Fig::of(lp_req_per_msg),
            poll_empty: Fig::of(empty.1),
            poll_requests: Fig::of(1100.0),
            poll_requests_per_message: Fig::of(5.0),
            empty_share: Fig::of(ratio(empty.0, empty.1)),
            lp_p50_ms: Fig::of(p50.0),
            poll_p50_ms: Fig::of(p50.1),
            poll_interval_ms: 1000,
            batching_from: None,
        }
    }

    #[test]
    fn no_empty_polls_is_not_settled_here() {
        let r = C4::verdict(&figs((0.0, 0.0), 1.2, (3.0, 499.0)));
        assert!(matches!(r.verdict, Verdict::NotSettled(ref c) if c.starts_with("here")));
    }

    #[test]
    fn long_polling_keeping_empties_does_not_hold() {
        assert_eq!(
            C4::verdict(&figs((600.0, 800.0), 1.2, (3.0, 499.0))).verdict,
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn fewer_empties_reconnects_and_slower_holds() {
        assert_eq!(
            C4::verdict(&figs((0.0, 800.0), 1.2, (600.0, 499.0))).verdict,
            Verdict::Holds
        );
    }

    #[test]
    fn faster_long_polling_holds_only_leaving_latency_out() {
        let r = C4::verdict(&figs((0.0, 800.0), 1.2, (3.0, 499.0)));
        assert!(matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.starts_with("latency")));
    }

    #[test]
    fn batching_holds_only_for_infrequent_data() {
        let r = C4::verdict(&figs((0.0, 800.0), 0.5, (3.0, 499.0)));
        assert!(
            matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.starts_with("data is infrequent"))
        );
    }
}
