//! C1: short polling sends requests whether or not there is news; at a low publish rate most
//! responses are empty, and bandwidth and server work are wasted.
//!
//! Judged on the short-poll run with the least news per poll, against WebSocket in the same
//! scenario: "most" is more than [`MOST`] of responses empty, "wasted" is at least
//! [`WASTE_FACTOR`] times WebSocket's bytes (and server CPU) per delivered message.

use pushlab_proto::Transport;

use super::{
    combine_cpu, count, interval_ms, news_per_poll, spread, spread_opt, total_bpm, ws_reference,
    Claim, CpuVs, Missing, Ruling, Verdict, MOST, WASTE_FACTOR,
};
use crate::report::data::{ratio, Dataset, Entry};
use crate::report::format::{fmt_num, pct, times, Fig};
use crate::report::Chart;

pub struct C1;

#[derive(Clone, Debug, PartialEq)]
pub struct C1Figures {
    pub rate_per_s: f64,
    pub interval_ms: u64,
    /// Share of poll responses that were empty.
    pub empty: Fig,
    pub requests: Fig,
    pub poll_bytes_per_message: Fig,
    pub ws_bytes_per_message: Option<Fig>,
    /// Poll's wire bytes per delivered message over WebSocket's.
    pub bytes_ratio: Option<Fig>,
    pub cpu: Option<CpuVs>,
    /// The highest publish rate at which a poll run (same interval) had most polls empty.
    pub mostly_empty_up_to: Option<f64>,
}

/// The default-variant poll entry with the least news per poll (C1 wants a low rate).
fn low_rate_poll(data: &Dataset) -> Option<&Entry> {
    data.default_entries(Transport::Poll).min_by(|a, b| {
        news_per_poll(a).total_cmp(&news_per_poll(b)).then(
            b.result
                .delivered_messages
                .cmp(&a.result.delivered_messages),
        )
    })
}

impl Claim for C1 {
    const INDEX: usize = 0;
    const CHARTS: &'static [Chart] = &[Chart::RequestsPerMessage, Chart::RateSweep];
    type Figures = C1Figures;

    fn figures(data: &Dataset) -> Result<C1Figures, Missing> {
        let p = low_rate_poll(data).ok_or(Missing::new("a short-poll run"))?;
        let ws = ws_reference(data, p);
        let mostly_empty_up_to = data
            .default_entries(Transport::Poll)
            .filter(|e| interval_ms(e) == interval_ms(p) && e.empty_fraction() > MOST)
            .map(|e| e.result.scenario.publish_rate_per_s)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
        Ok(C1Figures {
            rate_per_s: p.result.scenario.publish_rate_per_s,
            interval_ms: interval_ms(p),
            empty: Fig::of(p.empty_fraction()),
            requests: Fig::of(p.result.http_requests as f64),
            poll_bytes_per_message: Fig::of(total_bpm(p)),
            ws_bytes_per_message: ws.map(|w| Fig::of(total_bpm(w))),
            bytes_ratio: ws.map(|w| Fig::of(ratio(total_bpm(p), total_bpm(w)))),
            cpu: ws.and_then(|w| CpuVs::of(p, w, WASTE_FACTOR)),
            mostly_empty_up_to,
        })
    }

    fn combine(all: &[C1Figures]) -> C1Figures {
        C1Figures {
            empty: spread(all, |f| f.empty),
            requests: spread(all, |f| f.requests),
            poll_bytes_per_message: spread(all, |f| f.poll_bytes_per_message),
            ws_bytes_per_message: spread_opt(all, |f| f.ws_bytes_per_message),
            bytes_ratio: spread_opt(all, |f| f.bytes_ratio),
            cpu: combine_cpu(all, |f| f.cpu),
            ..all[0].clone()
        }
    }

    fn verdict(f: &C1Figures) -> Ruling {
        let empty = f.empty.v();
        let bytes_wasted = f.bytes_ratio.map(|r| r.v() >= WASTE_FACTOR);
        let cpu_wasted = f.cpu.and_then(|c| c.against.wasted());
        let bytes = f.bytes_ratio.map(times).unwrap_or_default();
        match (empty > MOST, bytes_wasted, cpu_wasted) {
            (false, _, _) => match f.mostly_empty_up_to {
                Some(up_to) => Ruling::new(
                    Verdict::HoldsOnlyWhen(format!(
                        "news is rarer than polls (here up to {} msg/s with a poll every {} ms)",
                        fmt_num(up_to),
                        f.interval_ms
                    )),
                    format!(
                        "the run with the least news per poll had only {} empty; runs up to {} msg/s had more than half",
                        pct(f.empty),
                        fmt_num(up_to)
                    ),
                ),
                None => Ruling::new(
                    Verdict::DoesNotHold,
                    format!(
                        "only {} of responses were empty (threshold: more than {}); no run had a lower publish rate per poll",
                        pct(f.empty),
                        pct(MOST)
                    ),
                ),
            },
            (true, None, _) => Ruling::new(
                Verdict::HoldsOnlyWhen(
                    "counting empty responses; no WebSocket run to weigh the waste against".into(),
                ),
                format!("{} of responses were empty (> {})", pct(f.empty), pct(MOST)),
            ),
            (true, Some(true), Some(false)) => Ruling::new(
                Verdict::HoldsOnlyWhen(
                    "counting bandwidth; server CPU per message is not wasted to the same degree"
                        .into(),
                ),
                format!(
                    "{} of responses were empty and bytes per message were {bytes} WebSocket's (>= {}), but server CPU per message only {} (< {})",
                    pct(f.empty),
                    times(WASTE_FACTOR),
                    f.cpu.map(|c| times(c.ratio)).unwrap_or_default(),
                    times(WASTE_FACTOR)
                ),
            ),
            (true, Some(true), _) => Ruling::new(
                Verdict::Holds,
                format!(
                    "{} of responses were empty (> {}), and short polling spent {bytes} WebSocket's bytes{} per delivered message (waste threshold {})",
                    pct(f.empty),
                    pct(MOST),
                    f.cpu
                        .map(|c| format!(" and {} its server CPU", times(c.ratio)))
                        .unwrap_or_default(),
                    times(WASTE_FACTOR)
                ),
            ),
            (true, Some(false), _) => Ruling::new(
                Verdict::HoldsOnlyWhen(
                    "counting empty responses; the bytes they cost stay below twice WebSocket's"
                        .into(),
                ),
                format!(
                    "{} of responses were empty, yet bytes per delivered message were only {bytes} WebSocket's (< {})",
                    pct(f.empty),
                    times(WASTE_FACTOR)
                ),
            ),
        }
    }

    fn headline(f: &C1Figures) -> String {
        format!(
            "{} of polls empty at {} msg/s{}",
            pct(f.empty),
            fmt_num(f.rate_per_s),
            f.bytes_ratio
                .map(|r| format!("; {} WebSocket's bytes per message", times(r)))
                .unwrap_or_default()
        )
    }

    fn measured(f: &C1Figures) -> String {
        let mut s = format!(
            "at {} msg/s, polling every {} ms: {} of {} responses empty",
            fmt_num(f.rate_per_s),
            f.interval_ms,
            pct(f.empty),
            f.requests
        );
        if let (Some(w), Some(r)) = (f.ws_bytes_per_message, f.bytes_ratio) {
            s += &format!(
                "; {} B per delivered message vs {w} B for WebSocket ({})",
                f.poll_bytes_per_message,
                times(r)
            );
        }
        if let Some(c) = f.cpu {
            s += &format!("; {} ({})", c.text(), times(c.ratio));
        }
        let _ = count;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::claims::Against;

    fn figs(empty: f64, bytes_ratio: Option<f64>, cpu: Option<Against>) -> C1Figures {
        C1Figures {
            rate_per_s: 0.1,
            interval_ms: 1000,
            empty: Fig::of(empty),
            requests: Fig::of(1000.0),
            poll_bytes_per_message: Fig::of(800.0),
            ws_bytes_per_message: bytes_ratio.map(|r| Fig::of(800.0 / r)),
            bytes_ratio: bytes_ratio.map(Fig::of),
            cpu: cpu.map(|against| CpuVs {
                a_us: Fig::of(30.0),
                b_us: Fig::of(10.0),
                resolved: (true, true),
                ratio: Fig::of(3.0),
                against,
            }),
            mostly_empty_up_to: None,
        }
    }

    #[test]
    fn few_empty_polls_and_no_slower_run_does_not_hold() {
        assert_eq!(
            C1::verdict(&figs(0.3, Some(3.0), None)).verdict,
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn few_empty_polls_but_a_slower_run_mostly_empty_holds_only_when_news_is_rare() {
        let mut f = figs(0.3, Some(3.0), None);
        f.mostly_empty_up_to = Some(0.3);
        let r = C1::verdict(&f);
        assert!(
            matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.contains("up to 0.3 msg/s")),
            "{r:?}"
        );
    }

    #[test]
    fn most_empty_without_websocket_holds_only_counting_empties() {
        let r = C1::verdict(&figs(0.9, None, None));
        assert!(matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.contains("no WebSocket")));
    }

    #[test]
    fn most_empty_and_bytes_wasted_but_cpu_not_holds_only_counting_bandwidth() {
        let r = C1::verdict(&figs(0.9, Some(3.0), Some(Against::Below)));
        assert!(
            matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.starts_with("counting bandwidth"))
        );
    }

    #[test]
    fn most_empty_and_bytes_wasted_holds() {
        assert_eq!(
            C1::verdict(&figs(0.9, Some(3.0), Some(Against::Above))).verdict,
            Verdict::Holds
        );
        assert_eq!(
            C1::verdict(&figs(0.9, Some(2.0), None)).verdict,
            Verdict::Holds
        );
        let r = C1::verdict(&figs(0.9, Some(3.0), Some(Against::Unresolved)));
        assert_eq!(r.verdict, Verdict::Holds);
    }

    #[test]
    fn most_empty_but_bytes_not_wasted_holds_only_counting_empties() {
        let r = C1::verdict(&figs(0.9, Some(1.9), Some(Against::Above)));
        assert!(matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.contains("below twice")));
    }
}
