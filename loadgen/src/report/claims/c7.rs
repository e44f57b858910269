//! C7: every request without keep-alive pays a TCP three-way handshake and four-way close.
//!
//! Judged on short polling in the baseline scenario with keep-alive off against on: at least
//! [`CONNECTS_PER_REQUEST_NO_KEEPALIVE`] TCP connects per request, and more TCP segments per
//! request where TCP_INFO counted them.

use pushlab_proto::Transport;

use super::{base_entry, spread, spread_opt, Claim, Missing, Ruling, Verdict};
use crate::report::data::{ratio, Dataset, Entry, Variant};
use crate::report::format::{fmt_num, pct, Fig};
use crate::report::Chart;

/// "Without keep-alive every request pays a handshake": at least this many TCP connects per
/// HTTP request.
pub const CONNECTS_PER_REQUEST_NO_KEEPALIVE: f64 = 0.95;

pub struct C7;

/// Per-request figures of one keep-alive setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConnectionFigures {
    pub connects_per_request: Fig,
    pub segments_per_request: Option<Fig>,
    pub tcpip_bytes_per_request: Fig,
    pub p50_ms: Fig,
}

impl ConnectionFigures {
    pub fn of(e: &Entry) -> ConnectionFigures {
        let per_request = |v: f64| ratio(v, e.result.http_requests as f64);
        ConnectionFigures {
            connects_per_request: Fig::of(per_request(e.result.tcp_connects as f64)),
            segments_per_request: e
                .result
                .tcp_segments
                .map(|s| Fig::of(per_request(s as f64))),
            tcpip_bytes_per_request: Fig::of(per_request(e.result.bytes_total.tcpip)),
            p50_ms: Fig::of(e.p50_ms()),
        }
    }

    fn combine(all: &[ConnectionFigures]) -> ConnectionFigures {
        ConnectionFigures {
            connects_per_request: spread(all, |c| c.connects_per_request),
            segments_per_request: spread_opt(all, |c| c.segments_per_request),
            tcpip_bytes_per_request: spread(all, |c| c.tcpip_bytes_per_request),
            p50_ms: spread(all, |c| c.p50_ms),
        }
    }

    fn text(&self) -> String {
        format!(
            "{} connects per request{}, {} B",
            self.connects_per_request,
            self.segments_per_request
                .map(|s| format!(", {s} segments"))
                .unwrap_or_default(),
            self.tcpip_bytes_per_request
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct C7Figures {
    pub keep_alive: ConnectionFigures,
    pub no_keep_alive: ConnectionFigures,
    /// TCP segments per request without keep-alive minus with it.
    pub extra_segments_per_request: Option<Fig>,
}

impl Claim for C7 {
    const INDEX: usize = 6;
    const CHARTS: &'static [Chart] = &[Chart::RequestsPerMessage, Chart::BytesPerMessage];
    type Figures = C7Figures;

    fn figures(data: &Dataset) -> Result<C7Figures, Missing> {
        let on = base_entry(data, Transport::Poll).ok_or(Missing::new("a short-poll run"))?;
        let off = data
            .variant(&on.key(), Transport::Poll, Variant::NO_KEEP_ALIVE)
            .ok_or(Missing::new("short polling with keep-alive off"))?;
        let (on, off) = (ConnectionFigures::of(on), ConnectionFigures::of(off));
        Ok(C7Figures {
            extra_segments_per_request: off
                .segments_per_request
                .zip(on.segments_per_request)
                .map(|(a, b)| Fig::of(a.v() - b.v())),
            keep_alive: on,
            no_keep_alive: off,
        })
    }

    fn combine(all: &[C7Figures]) -> C7Figures {
        let on: Vec<ConnectionFigures> = all.iter().map(|f| f.keep_alive).collect();
        let off: Vec<ConnectionFigures> = all.iter().map(|f| f.no_keep_alive).collect();
        C7Figures {
            keep_alive: ConnectionFigures::combine(&on),
            no_keep_alive: ConnectionFigures::combine(&off),
            extra_segments_per_request: spread_opt(all, |f| f.extra_segments_per_request),
        }
    }

    fn verdict(f: &C7Figures) -> Ruling {
        let off = f.no_keep_alive.connects_per_request;
        let extra = f.extra_segments_per_request;
        if off.v() >= CONNECTS_PER_REQUEST_NO_KEEPALIVE && extra.is_none_or(|x| x.v() > 0.0) {
            Ruling::new(
                Verdict::Holds,
                format!(
                    "without keep-alive each request opened its own connection ({off} connects per request >= {}){}; HTTP/1.1's default keep-alive avoids it ({} connects per request)",
                    fmt_num(CONNECTS_PER_REQUEST_NO_KEEPALIVE),
                    extra
                        .map(|x| format!(", {x} more TCP segments per request"))
                        .unwrap_or_default(),
                    f.keep_alive.connects_per_request
                ),
            )
        } else {
            Ruling::new(
                Verdict::DoesNotHold,
                format!(
                    "without keep-alive only {off} TCP connects per request (threshold {}){}",
                    fmt_num(CONNECTS_PER_REQUEST_NO_KEEPALIVE),
                    extra
                        .map(|x| format!(", {x} extra segments per request"))
                        .unwrap_or_default()
                ),
            )
        }
    }

    fn headline(f: &C7Figures) -> String {
        format!(
            "{} TCP connects per request without keep-alive, {} with",
            f.no_keep_alive.connects_per_request, f.keep_alive.connects_per_request
        )
    }

    fn measured(f: &C7Figures) -> String {
        format!(
            "short poll without keep-alive: {} of TCP/IP headers per request, p50 {} ms; with keep-alive: {}, p50 {} ms",
            f.no_keep_alive.text(),
            f.no_keep_alive.p50_ms,
            f.keep_alive.text(),
            f.keep_alive.p50_ms
        )
    }
}

/// A request pays a handshake and a close when it sends at least this many more TCP segments
/// than a request on a kept-alive connection (SYN, SYN-ACK, ACK and two FIN-ACK pairs are 7;
/// delayed ACKs fold in up to two).
pub const HANDSHAKE_AND_CLOSE_SEGMENTS: f64 = 5.0;

/// C7 through the link (issue 11): short polling with keep-alive off against on at each RTT
/// without loss where both ran, in RTT order: the extra TCP segments per request (the
/// handshake and the close) and what they cost the message's p50 against one RTT. `None`
/// without such link data.
pub fn through_link(data: &Dataset) -> Option<super::RttReading> {
    let poll_at = |variant: Variant| {
        data.linked
            .iter()
            .filter(move |e| e.transport() == Transport::Poll && e.variant() == variant)
            .filter_map(|e| {
                let link = e.result.scenario.link.as_ref()?;
                (link.loss_ratio == 0.0).then_some((link.rtt_ms, e))
            })
    };
    let per_request = |e: &Entry| {
        e.result
            .tcp_segments
            .map(|s| ratio(s as f64, e.result.http_requests as f64))
    };
    let mut rows: Vec<(f64, &Entry, &Entry)> = poll_at(Variant::NO_KEEP_ALIVE)
        .filter_map(|(rtt, off)| {
            let (_, on) =
                poll_at(Variant::DEFAULT).find(|(r, e)| *r == rtt && e.key() == off.key())?;
            Some((rtt, off, on))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let text = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "n/a".into());
    let figures: Vec<String> = rows
        .iter()
        .map(|(rtt, off, on)| {
            format!(
                "RTT {} ms: p50 {} ms without keep-alive, {} ms with ({} ms more; one handshake is {} ms), {} vs {} segments per request",
                fmt_num(*rtt),
                fmt_num(off.p50_ms()),
                fmt_num(on.p50_ms()),
                fmt_num(off.p50_ms() - on.p50_ms()),
                fmt_num(*rtt),
                text(per_request(off)),
                text(per_request(on))
            )
        })
        .collect();
    let extra: Vec<Option<f64>> = rows
        .iter()
        .map(|(_, off, on)| Some(per_request(off)? - per_request(on)?))
        .collect();
    let paid = extra
        .iter()
        .all(|x| x.is_some_and(|x| x >= HANDSHAKE_AND_CLOSE_SEGMENTS));
    let lo = extra
        .iter()
        .flatten()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let hi = extra
        .iter()
        .flatten()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    // What the handshake costs in time, where there is an RTT to pay.
    let cost: Vec<f64> = rows
        .iter()
        .filter(|(rtt, _, _)| *rtt > 0.0)
        .map(|(rtt, off, on)| (off.p50_ms() - on.p50_ms()) / rtt)
        .collect();
    let cost_text = if cost.is_empty() {
        String::new()
    } else {
        let max = cost.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = cost.iter().copied().fold(f64::INFINITY, f64::min);
        let why = if max < 1.0 {
            ", not a whole one: polls leave on a fixed schedule, so a handshake delays every poll alike and a message waits for the next poll as long as before"
        } else {
            ""
        };
        format!(
            "; in time it cost the message {} to {} of one RTT at p50{why}",
            pct(min),
            pct(max)
        )
    };
    let (verdict, reason) = if paid {
        (
            Verdict::Holds,
            format!(
                "every request without keep-alive sent {} to {} more TCP segments than with it, a handshake and a close each{cost_text}",
                fmt_num(lo),
                fmt_num(hi)
            ),
        )
    } else {
        (
            Verdict::NotSettled("by the segment counts".into()),
            format!(
                "a request without keep-alive did not always send {} more segments (or the counts are missing){cost_text}",
                fmt_num(HANDSHAKE_AND_CLOSE_SEGMENTS)
            ),
        )
    };
    Some(super::RttReading {
        id: "C7",
        verdict,
        reason,
        figures: figures.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(connects_per_request: f64, segments: f64) -> ConnectionFigures {
        ConnectionFigures {
            connects_per_request: Fig::of(connects_per_request),
            segments_per_request: Some(Fig::of(segments)),
            tcpip_bytes_per_request: Fig::of(segments * 52.0),
            p50_ms: Fig::of(500.0),
        }
    }

    fn figs(off: f64, extra_segments: f64) -> C7Figures {
        C7Figures {
            keep_alive: conn(0.09, 4.0),
            no_keep_alive: conn(off, 4.0 + extra_segments),
            extra_segments_per_request: Some(Fig::of(extra_segments)),
        }
    }

    #[test]
    fn a_connect_per_request_with_more_segments_holds() {
        assert_eq!(C7::verdict(&figs(1.0, 7.0)).verdict, Verdict::Holds);
    }

    #[test]
    fn connections_kept_open_anyway_do_not_hold() {
        assert_eq!(C7::verdict(&figs(0.5, 7.0)).verdict, Verdict::DoesNotHold);
        assert_eq!(C7::verdict(&figs(1.0, 0.0)).verdict, Verdict::DoesNotHold);
    }
}
