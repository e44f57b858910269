//! C6: polling 60 times a minute is near real-time but wastes resources on both client and
//! server.
//!
//! Judged on short polling in the baseline scenario against WebSocket: "near real-time" is a
//! p99 within one poll interval plus [`NEAR_REALTIME_SLACK`]; "wastes" is at least
//! [`WASTE_FACTOR`] times WebSocket's wire bytes (client) and server CPU per delivery (server).

use pushlab_proto::Transport;

use super::{
    base_entry, combine_cpu, interval_ms, spread, spread_opt, total_bpm, ws_reference, Claim,
    CpuVs, Missing, Ruling, Verdict, WASTE_FACTOR,
};
use crate::report::article;
use crate::report::data::{ratio, Dataset, Variant};
use crate::report::format::{fmt_num, pct, times, Fig};
use crate::report::Chart;

/// "Near real-time" for a poller: its p99 is within one poll interval plus this fraction.
pub const NEAR_REALTIME_SLACK: f64 = 0.1;

pub struct C6;

#[derive(Clone, Debug, PartialEq)]
pub struct C6Figures {
    pub interval_ms: u64,
    pub rate_per_s: f64,
    pub p50_ms: Fig,
    pub p99_ms: Fig,
    pub ws_p50_ms: Option<Fig>,
    pub requests_per_message: Fig,
    pub bytes_per_message: Fig,
    /// Poll's wire bytes per delivered message over WebSocket's, minimal and browser headers.
    pub bytes_ratio: Option<Fig>,
    pub browser_bytes_ratio: Option<Fig>,
    pub cpu: Option<CpuVs>,
}

impl Claim for C6 {
    const INDEX: usize = 5;
    const CHARTS: &'static [Chart] = &[
        Chart::LatencySpectrum,
        Chart::BytesPerMessage,
        Chart::ServerCost,
    ];
    type Figures = C6Figures;

    fn figures(data: &Dataset) -> Result<C6Figures, Missing> {
        let p = base_entry(data, Transport::Poll).ok_or(Missing::new("a short-poll run"))?;
        let ws = ws_reference(data, p);
        let browser = data.variant(&p.key(), Transport::Poll, Variant::BROWSER);
        let ws_browser = data.variant(&p.key(), Transport::Ws, Variant::BROWSER);
        Ok(C6Figures {
            interval_ms: interval_ms(p),
            rate_per_s: p.result.scenario.publish_rate_per_s,
            p50_ms: Fig::of(p.p50_ms()),
            p99_ms: Fig::of(p.p99_ms()),
            ws_p50_ms: ws.map(|w| Fig::of(w.p50_ms())),
            requests_per_message: Fig::of(p.per_message(p.result.http_requests)),
            bytes_per_message: Fig::of(total_bpm(p)),
            bytes_ratio: ws.map(|w| Fig::of(ratio(total_bpm(p), total_bpm(w)))),
            browser_bytes_ratio: browser
                .zip(ws_browser.or(ws))
                .map(|(b, w)| Fig::of(ratio(total_bpm(b), total_bpm(w)))),
            cpu: ws.and_then(|w| CpuVs::of(p, w, WASTE_FACTOR)),
        })
    }

    fn combine(all: &[C6Figures]) -> C6Figures {
        C6Figures {
            p50_ms: spread(all, |f| f.p50_ms),
            p99_ms: spread(all, |f| f.p99_ms),
            ws_p50_ms: spread_opt(all, |f| f.ws_p50_ms),
            requests_per_message: spread(all, |f| f.requests_per_message),
            bytes_per_message: spread(all, |f| f.bytes_per_message),
            bytes_ratio: spread_opt(all, |f| f.bytes_ratio),
            browser_bytes_ratio: spread_opt(all, |f| f.browser_bytes_ratio),
            cpu: combine_cpu(all, |f| f.cpu),
            ..all[0].clone()
        }
    }

    fn verdict(f: &C6Figures) -> Ruling {
        let near_rt = f.p99_ms.v() <= f.interval_ms as f64 * (1.0 + NEAR_REALTIME_SLACK);
        let client_waste = f.bytes_ratio.map(|r| r.v() >= WASTE_FACTOR);
        let browser_waste = f.browser_bytes_ratio.is_some_and(|r| r.v() >= WASTE_FACTOR);
        let server_waste = f.cpu.and_then(|c| c.against.wasted());
        let not_minute = if f.interval_ms != article::POLL_INTERVAL_MS {
            format!(
                " (this run polled every {} ms, not once a second)",
                f.interval_ms
            )
        } else {
            String::new()
        };
        let bytes = f.bytes_ratio.map(times).unwrap_or_else(|| "n/a".into());
        let cpu = f
            .cpu
            .map(|c| times(c.ratio))
            .unwrap_or_else(|| "n/a".into());
        match (near_rt, client_waste, server_waste) {
            (false, _, _) => Ruling::new(
                Verdict::DoesNotHold,
                format!(
                    "p99 {} ms exceeded one poll interval ({} ms) by more than {}: polling fell behind{not_minute}",
                    f.p99_ms,
                    f.interval_ms,
                    pct(NEAR_REALTIME_SLACK)
                ),
            ),
            (true, None, _) => Ruling::new(
                Verdict::HoldsOnlyWhen("read as near real-time; no WebSocket run to weigh the waste against".into()),
                format!("p99 {} ms within one interval{not_minute}", f.p99_ms),
            ),
            (true, Some(true), Some(true)) => Ruling::new(
                Verdict::Holds,
                format!(
                    "p99 {} ms stays within one interval (+{}), and polling spent {bytes} WebSocket's bytes and {cpu} its server CPU per message (waste threshold {}){not_minute}",
                    f.p99_ms,
                    pct(NEAR_REALTIME_SLACK),
                    times(WASTE_FACTOR)
                ),
            ),
            (true, Some(false), Some(true)) => Ruling::new(
                Verdict::HoldsOnlyWhen(if browser_waste {
                    "counting the server's work, or browser-sized headers: with curl-sized headers the client's bytes stay under twice WebSocket's".into()
                } else {
                    "counting the server's work: the client's bytes stay under twice WebSocket's".into()
                }),
                format!(
                    "near real-time (p99 {} ms within one interval); server CPU per message {cpu} WebSocket's, but bytes only {bytes} (threshold {}){}: with one message per poll, few polls are wasted{not_minute}",
                    f.p99_ms,
                    times(WASTE_FACTOR),
                    f.browser_bytes_ratio
                        .map(|r| format!(", {} with browser headers", times(r)))
                        .unwrap_or_default()
                ),
            ),
            (true, Some(true), _) => Ruling::new(
                Verdict::HoldsOnlyWhen("counting bytes: the server's CPU per message was not shown to be twice WebSocket's".into()),
                format!(
                    "near real-time; bytes {bytes} WebSocket's, server CPU {cpu}{}{not_minute}",
                    if server_waste.is_none() { " (not resolved)" } else { "" }
                ),
            ),
            (true, Some(false), _) => Ruling::new(
                Verdict::HoldsOnlyWhen("read as near real-time: at one message per poll its cost stayed under twice WebSocket's".into()),
                format!(
                    "bytes {bytes} and server CPU {cpu} WebSocket's (waste threshold {}){not_minute}",
                    times(WASTE_FACTOR)
                ),
            ),
        }
    }

    fn headline(f: &C6Figures) -> String {
        format!(
            "p50 {} ms, p99 {} ms polling every {} ms; {} WebSocket's bytes, {} its server CPU",
            f.p50_ms,
            f.p99_ms,
            f.interval_ms,
            f.bytes_ratio.map(times).unwrap_or_else(|| "n/a".into()),
            f.cpu
                .map(|c| times(c.ratio))
                .unwrap_or_else(|| "n/a".into())
        )
    }

    fn measured(f: &C6Figures) -> String {
        let mut s = format!(
            "polling every {} ms ({} a minute) at {} msg/s: p50 {} ms, p99 {} ms{}; {} requests and {} B per delivered message{}",
            f.interval_ms,
            fmt_num(60_000.0 / (f.interval_ms as f64).max(1.0)),
            fmt_num(f.rate_per_s),
            f.p50_ms,
            f.p99_ms,
            f.ws_p50_ms
                .map(|w| format!(" (WebSocket p50 {w} ms)"))
                .unwrap_or_default(),
            f.requests_per_message,
            f.bytes_per_message,
            f.bytes_ratio
                .map(|r| format!(", {} WebSocket's bytes", times(r)))
                .unwrap_or_default(),
        );
        if let Some(r) = f.browser_bytes_ratio {
            s += &format!(" ({} with browser headers)", times(r));
        }
        if let Some(c) = f.cpu {
            s += &format!("; {} ({})", c.text(), times(c.ratio));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::claims::Against;

    fn figs(
        p99_ms: f64,
        bytes: Option<f64>,
        browser: Option<f64>,
        cpu: Option<Against>,
    ) -> C6Figures {
        C6Figures {
            interval_ms: 1000,
            rate_per_s: 1.0,
            p50_ms: Fig::of(499.0),
            p99_ms: Fig::of(p99_ms),
            ws_p50_ms: Some(Fig::of(3.0)),
            requests_per_message: Fig::of(1.01),
            bytes_per_message: Fig::of(563.0),
            bytes_ratio: bytes.map(Fig::of),
            browser_bytes_ratio: browser.map(Fig::of),
            cpu: cpu.map(|against| CpuVs {
                a_us: Fig::of(40.0),
                b_us: Fig::of(10.0),
                resolved: (true, true),
                ratio: Fig::of(4.0),
                against,
            }),
        }
    }

    #[test]
    fn polling_falling_behind_does_not_hold() {
        assert_eq!(
            C6::verdict(&figs(1101.0, Some(3.0), None, Some(Against::Above))).verdict,
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn without_websocket_holds_only_as_near_real_time() {
        let r = C6::verdict(&figs(990.0, None, None, None));
        assert!(matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.contains("no WebSocket")));
    }

    #[test]
    fn near_real_time_and_both_wasted_holds() {
        assert_eq!(
            C6::verdict(&figs(990.0, Some(2.0), None, Some(Against::Above))).verdict,
            Verdict::Holds
        );
    }

    #[test]
    fn server_waste_alone_holds_only_counting_the_server() {
        let r = C6::verdict(&figs(990.0, Some(1.87), Some(4.4), Some(Against::Above)));
        assert!(
            matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.contains("or browser-sized headers"))
        );
        let r = C6::verdict(&figs(990.0, Some(1.87), Some(1.5), Some(Against::Above)));
        assert_eq!(
            r.verdict,
            Verdict::HoldsOnlyWhen(
                "counting the server's work: the client's bytes stay under twice WebSocket's"
                    .into()
            )
        );
    }

    #[test]
    fn byte_waste_alone_holds_only_counting_bytes() {
        let r = C6::verdict(&figs(990.0, Some(3.0), None, Some(Against::Unresolved)));
        assert!(
            matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.starts_with("counting bytes"))
        );
        assert!(r.reason.contains("(not resolved)"));
    }

    #[test]
    fn no_waste_holds_only_as_near_real_time() {
        let r = C6::verdict(&figs(990.0, Some(1.5), None, Some(Against::Below)));
        assert!(
            matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.starts_with("read as near real-time: at one"))
        );
    }
}
