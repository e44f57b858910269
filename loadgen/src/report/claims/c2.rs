//! C2: each HTTP request and response repeats its headers; the useful data is a small part of
//! what crosses the wire (the article: 871 bytes of headers per poll).
//!
//! Judged on short polling in the baseline scenario, with curl-sized (minimal) headers and, if
//! run, browser headers: "a small part" is a payload share under [`SMALL_PART`].

use pushlab_proto::Transport;

use super::{base_entry, spread, spread_opt, total_bpm, Claim, Missing, Ruling, Verdict};
use crate::report::article;
use crate::report::data::{ratio, Dataset, Entry, Variant};
use crate::report::format::{pct, Fig};
use crate::report::Chart;

/// "The useful data is a small part of what crosses the wire": payload under a quarter.
pub const SMALL_PART: f64 = 0.25;

/// An estimate, from HPACK's rules (RFC 7541) and HTTP/2 framing (RFC 9113), of the header bytes
/// of one poll request + response on a connection whose dynamic table is warm. Not measured.
pub mod h2_estimate {
    /// A HEADERS frame header, each way.
    pub const FRAME_HEADER_BYTES: f64 = 9.0;
    /// Header fields a browser repeats on every fetch; warm, each is one indexed byte.
    pub const REPEATED_FIELDS: f64 = 15.0;
    /// `:path` changes with every cursor (`/poll/t?since=123456`): a literal, ~20 chars + 2.
    pub const PATH_LITERAL_BYTES: f64 = 22.0;
    /// Response: `:status 200` (1), content-type (1), content-length literal (~4), and `date`,
    /// a new ~29-char literal once a second (~31).
    pub const RESPONSE_FIELD_BYTES: f64 = 37.0;

    /// Header bytes per poll exchange once HPACK's table is warm.
    pub fn warm_exchange_bytes() -> f64 {
        2.0 * FRAME_HEADER_BYTES + REPEATED_FIELDS + PATH_LITERAL_BYTES + RESPONSE_FIELD_BYTES
    }
}

/// C2's figures on the protocol stack `on` (HTTP/1.1, h2c, h2 over TLS: its header-profile
/// and keep-alive fields are ignored): short polling with minimal and browser headers in the
/// baseline scenario. The h2c fields are filled on HTTP/1.1 only, as its comparison.
pub fn figures_on(data: &Dataset, on: Variant) -> Result<C2Figures, Missing> {
    let on = Variant {
        browser_headers: false,
        keep_alive_off: false,
        ..on
    };
    let base = base_entry(data, Transport::Poll)
        .ok_or(Missing::new("a short-poll run in the baseline scenario"))?;
    let key = base.key();
    let minimal = if on.is_default() {
        base
    } else {
        data.variant(&key, Transport::Poll, on)
            .ok_or(Missing::new("a short-poll run on this protocol"))?
    };
    let browser = data.variant(&key, Transport::Poll, on.browser());
    let (h2, h2_browser) = if on.is_default() {
        (
            data.variant(&key, Transport::Poll, Variant::H2C),
            data.variant(&key, Transport::Poll, Variant::H2C.browser()),
        )
    } else {
        (None, None)
    };
    Ok(C2Figures {
        minimal: HeaderFigures::of(minimal),
        browser: browser.map(HeaderFigures::of),
        h2_headers_per_exchange: h2.map(|h| HeaderFigures::of(h).headers_per_exchange),
        h2_browser_headers_per_exchange: h2_browser
            .map(|h| HeaderFigures::of(h).headers_per_exchange),
        requests: Fig::of(minimal.result.http_requests as f64),
    })
}

pub struct C2;

/// Header bytes per exchange and payload share of one header profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeaderFigures {
    /// Header bytes of one request + response.
    pub headers_per_exchange: Fig,
    /// Payload bytes over all wire bytes.
    pub payload_share: Fig,
}

impl HeaderFigures {
    pub fn of(e: &Entry) -> HeaderFigures {
        HeaderFigures {
            headers_per_exchange: Fig::of(ratio(
                e.result.bytes_total.headers,
                e.result.http_requests as f64,
            )),
            payload_share: Fig::of(ratio(e.result.bytes_per_message.payload, total_bpm(e))),
        }
    }

    fn combine(all: &[HeaderFigures]) -> HeaderFigures {
        HeaderFigures {
            headers_per_exchange: spread(all, |h| h.headers_per_exchange),
            payload_share: spread(all, |h| h.payload_share),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct C2Figures {
    pub minimal: HeaderFigures,
    pub browser: Option<HeaderFigures>,
    /// Measured over h2c, if run (minimal headers).
    pub h2_headers_per_exchange: Option<Fig>,
    /// Measured over h2c with browser headers, if run.
    pub h2_browser_headers_per_exchange: Option<Fig>,
    pub requests: Fig,
}

impl Claim for C2 {
    const INDEX: usize = 1;
    const CHARTS: &'static [Chart] = &[Chart::BytesPerMessage];
    type Figures = C2Figures;

    fn figures(data: &Dataset) -> Result<C2Figures, Missing> {
        figures_on(data, Variant::DEFAULT)
    }

    fn combine(all: &[C2Figures]) -> C2Figures {
        let browser: Option<Vec<HeaderFigures>> = all.iter().map(|f| f.browser).collect();
        C2Figures {
            minimal: HeaderFigures::combine(&all.iter().map(|f| f.minimal).collect::<Vec<_>>()),
            browser: browser.map(|b| HeaderFigures::combine(&b)),
            h2_headers_per_exchange: spread_opt(all, |f| f.h2_headers_per_exchange),
            h2_browser_headers_per_exchange: spread_opt(all, |f| f.h2_browser_headers_per_exchange),
            requests: spread(all, |f| f.requests),
        }
    }

    fn verdict(f: &C2Figures) -> Ruling {
        let m = f.minimal.payload_share;
        let small_browser = f.browser.map(|b| b.payload_share.v() < SMALL_PART);
        match (m.v() < SMALL_PART, small_browser, f.browser) {
            (true, _, _) => Ruling::new(
                Verdict::Holds,
                format!(
                    "even with curl-sized headers the payload is {} of the wire (< {}): headers repeat on every one of {} requests",
                    pct(m),
                    pct(SMALL_PART),
                    f.requests
                ),
            ),
            (false, Some(true), Some(b)) => Ruling::new(
                Verdict::HoldsOnlyWhen("requests carry browser-sized headers".into()),
                format!(
                    "with browser headers the payload is {} of the wire (< {}); with curl-sized headers it is {}",
                    pct(b.payload_share),
                    pct(SMALL_PART),
                    pct(m)
                ),
            ),
            (false, _, Some(b)) => Ruling::new(
                Verdict::DoesNotHold,
                format!(
                    "the payload is {} (minimal) and {} (browser) of the wire, not under {}",
                    pct(m),
                    pct(b.payload_share),
                    pct(SMALL_PART)
                ),
            ),
            (false, _, None) => Ruling::new(
                Verdict::HoldsOnlyWhen(
                    "headers are larger than curl's (no browser-header run to check)".into(),
                ),
                format!(
                    "with curl-sized headers the payload is {} of the wire (not under {})",
                    pct(m),
                    pct(SMALL_PART)
                ),
            ),
        }
    }

    fn headline(f: &C2Figures) -> String {
        format!(
            "headers per poll: {} B (minimal){}; payload {} of wire",
            f.minimal.headers_per_exchange,
            f.browser
                .map(|b| format!(", {} B (browser)", b.headers_per_exchange))
                .unwrap_or_default(),
            pct(f.minimal.payload_share)
        )
    }

    fn measured(f: &C2Figures) -> String {
        let mut s = format!(
            "short poll, minimal headers: {} B of headers per request+response, payload {} of wire bytes",
            f.minimal.headers_per_exchange,
            pct(f.minimal.payload_share)
        );
        if let Some(b) = f.browser {
            s += &format!(
                "; browser headers: {} B (article: {}), payload {}",
                b.headers_per_exchange,
                Fig::of(article::HEADER_BYTES),
                pct(b.payload_share)
            );
        }
        match f.h2_headers_per_exchange {
            Some(h) => {
                s += &format!("; HTTP/2 (h2c, measured, HPACK): {h} B");
                if let Some(b) = f.h2_browser_headers_per_exchange {
                    s += &format!(" (minimal), {b} B (browser)");
                }
            }
            None => {
                s += &format!(
                    "; HTTP/2 with HPACK (estimated, not measured): ~{} B once the table is warm",
                    Fig::of(h2_estimate::warm_exchange_bytes())
                )
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(headers: f64, share: f64) -> HeaderFigures {
        HeaderFigures {
            headers_per_exchange: Fig::of(headers),
            payload_share: Fig::of(share),
        }
    }

    fn figs(minimal_share: f64, browser_share: Option<f64>) -> C2Figures {
        C2Figures {
            minimal: profile(243.0, minimal_share),
            browser: browser_share.map(|s| profile(988.0, s)),
            h2_headers_per_exchange: None,
            h2_browser_headers_per_exchange: None,
            requests: Fig::of(1106.0),
        }
    }

    #[test]
    fn small_payload_with_minimal_headers_holds() {
        assert_eq!(C2::verdict(&figs(0.06, None)).verdict, Verdict::Holds);
    }

    #[test]
    fn small_payload_only_with_browser_headers_holds_only_then() {
        let r = C2::verdict(&figs(0.4, Some(0.1)));
        assert_eq!(
            r.verdict,
            Verdict::HoldsOnlyWhen("requests carry browser-sized headers".into())
        );
    }

    #[test]
    fn large_payload_with_both_profiles_does_not_hold() {
        assert_eq!(
            C2::verdict(&figs(0.4, Some(0.3))).verdict,
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn large_payload_without_a_browser_run_holds_only_for_larger_headers() {
        let r = C2::verdict(&figs(0.4, None));
        assert!(
            matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.contains("no browser-header run"))
        );
    }

    #[test]
    fn the_h2_estimate_is_the_sum_of_its_parts() {
        assert_eq!(h2_estimate::warm_exchange_bytes(), 92.0);
    }
}
