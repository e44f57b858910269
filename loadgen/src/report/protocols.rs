//! The protocol stacks side by side (issue 12): C2 and C8 ruled on HTTP/1.1, h2c and h2 over
//! TLS from the measured runs, header bytes per request cold and warm (chart 7), and what TLS
//! costs per transport in bytes and server CPU, each TLS run beside its cleartext twin of the
//! same `compare`.
//!
//! Figures are computed per repeat ([`Dataset::repeats`]) and combined as `median (min-max)`
//! over the repeats that ran them (`compare` runs HTTP/1.1 over TLS in its first repeat only).

use pushlab_proto::Transport;

use super::claims::{c2, c8, combine_rulings, Claim, Ruling};
use super::data::{ratio, Dataset, Entry, ScenarioKey, Variant};
use super::format::Fig;

/// The stacks C2 and C8 are ruled on, in the report's order.
pub const STACKS: [Variant; 3] = [Variant::DEFAULT, Variant::H2C, Variant::H2_TLS];

/// A claim ruled on one stack: its figures combined over the repeats that had them.
#[derive(Clone, Debug)]
pub struct StackRuling<F> {
    pub stack: Variant,
    pub figures: F,
    pub ruling: Ruling,
    /// Repeats the figures rest on.
    pub runs: usize,
}

/// `C` ruled on each of [`STACKS`] with `figures_on`; a stack no repeat ran is left out.
pub fn rule_on_stacks<C: Claim>(
    data: &Dataset,
    figures_on: impl Fn(&Dataset, Variant) -> Option<C::Figures>,
) -> Vec<StackRuling<C::Figures>> {
    let repeats = data.repeats();
    STACKS
        .iter()
        .filter_map(|&stack| {
            let figures: Vec<C::Figures> = repeats
                .iter()
                .filter_map(|d| figures_on(d, stack))
                .collect();
            if figures.is_empty() {
                return None;
            }
            let rulings: Vec<Ruling> = figures.iter().map(C::verdict).collect();
            let combined = C::combine(&figures);
            let ruling = combine_rulings(&rulings, C::verdict(&combined));
            Some(StackRuling {
                stack,
                figures: combined,
                ruling,
                runs: figures.len(),
            })
        })
        .collect()
}

/// C2 on every stack measured.
pub fn c2_on_stacks(data: &Dataset) -> Vec<StackRuling<c2::C2Figures>> {
    rule_on_stacks::<c2::C2>(data, |d, v| c2::figures_on(d, v).ok())
}

/// C8 on every stack measured.
pub fn c8_on_stacks(data: &Dataset) -> Vec<StackRuling<c8::C8Figures>> {
    rule_on_stacks::<c8::C8>(data, |d, v| c8::figures_on(d, v).ok())
}

/// Header bytes of one request or response on a connection: the first (HTTP/2's HPACK table
/// empty: "cold") and the later ones ("warm"), averaged. `None` where the run counted no
/// later request (older files did not count them).
pub fn header_bytes_cold_warm(e: &Entry) -> Option<[f64; 4]> {
    let r = &e.result;
    let ok = r.first_requests > 0
        && r.later_requests > 0
        && r.first_responses > 0
        && r.later_responses > 0;
    ok.then(|| {
        [
            ratio(
                r.headers_first_request_bytes as f64,
                r.first_requests as f64,
            ),
            ratio(
                r.headers_later_request_bytes as f64,
                r.later_requests as f64,
            ),
            ratio(
                r.headers_first_response_bytes as f64,
                r.first_responses as f64,
            ),
            ratio(
                r.headers_later_response_bytes as f64,
                r.later_responses as f64,
            ),
        ]
    })
}

/// Header bytes of short polling on one stack and header profile: request cold, request warm,
/// response cold, response warm.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderBytes {
    pub stack: Variant,
    pub browser: bool,
    pub bytes: [Fig; 4],
}

/// [`HeaderBytes`] for HTTP/1.1 and h2c (h2 over TLS carries the same HPACK blocks), minimal and
/// browser headers, in the baseline scenario; empty when no run counted them.
pub fn header_bytes(data: &Dataset) -> Vec<HeaderBytes> {
    let mut out = Vec::new();
    for browser in [false, true] {
        for stack in [Variant::DEFAULT, Variant::H2C] {
            let v = if browser { stack.browser() } else { stack };
            let per: Vec<[f64; 4]> = data
                .repeats()
                .iter()
                .filter_map(|d| {
                    let key = d.baseline()?.key;
                    d.variant(&key, Transport::Poll, v)
                        .and_then(header_bytes_cold_warm)
                })
                .collect();
            if per.is_empty() {
                continue;
            }
            out.push(HeaderBytes {
                stack,
                browser,
                bytes: std::array::from_fn(|i| Fig::over(per.iter().map(|p| p[i]))),
            });
        }
    }
    out
}

/// One transport over TLS beside the same transport in cleartext, same scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsCost {
    pub transport: Transport,
    /// The TLS stack (HTTP/1.1 or h2 over TLS, browser headers or not).
    pub tls: Variant,
    /// Wire bytes per delivered message, cleartext and TLS.
    pub wire_clear: Fig,
    pub wire_tls: Fig,
    /// TLS's own bytes (handshake records and per-record overhead) per delivered message and
    /// per connection.
    pub tls_per_message: Fig,
    pub tls_per_connection: Fig,
    /// Server CPU per delivery (publish part only, connects excluded), cleartext and TLS, us.
    pub cpu_clear_us: Option<Fig>,
    pub cpu_tls_us: Option<Fig>,
    /// Server CPU per connect (TLS: the handshake), cleartext and TLS, us.
    pub connect_clear_us: Option<Fig>,
    pub connect_tls_us: Option<Fig>,
    /// Repeats the figures rest on.
    pub runs: usize,
}

/// The TLS stacks and their cleartext twins, as `compare` runs them.
pub const TLS_PAIRS: [Variant; 3] = [
    Variant::TLS,
    Variant::H2_TLS,
    Variant {
        browser_headers: true,
        ..Variant::H2_TLS
    },
];

fn pair_values(clear: &Entry, tls: &Entry) -> [f64; 8] {
    let cpu = |e: &Entry| e.cpu_us_per_delivery().unwrap_or(f64::NAN);
    let connect = |e: &Entry| e.result.server_cpu_us_per_connect.unwrap_or(f64::NAN);
    let b = &tls.result.bytes_total;
    [
        clear.result.bytes_per_message.total(),
        tls.result.bytes_per_message.total(),
        tls.result.bytes_per_message.tls,
        ratio(b.tls, tls.result.tcp_connects as f64),
        cpu(clear),
        cpu(tls),
        connect(clear),
        connect(tls),
    ]
}

/// Every transport run over TLS with a cleartext twin in the baseline scenario, in
/// [`TLS_PAIRS`] then transport order.
pub fn tls_costs(data: &Dataset) -> Vec<TlsCost> {
    let repeats = data.repeats();
    let mut out = Vec::new();
    for tls in TLS_PAIRS {
        for t in Transport::ALL {
            let per: Vec<[f64; 8]> = repeats
                .iter()
                .filter_map(|d| {
                    let key: ScenarioKey = d.baseline()?.key;
                    let clear = d.variant(&key, t, tls.cleartext())?;
                    let over = d.variant(&key, t, tls)?;
                    Some(pair_values(clear, over))
                })
                .collect();
            if per.is_empty() {
                continue;
            }
            let fig = |i: usize| Fig::over(per.iter().map(|p| p[i]));
            let opt =
                |i: usize| Fig::over_opt(per.iter().map(|p| Some(p[i]).filter(|v| v.is_finite())));
            out.push(TlsCost {
                transport: t,
                tls,
                wire_clear: fig(0),
                wire_tls: fig(1),
                tls_per_message: fig(2),
                tls_per_connection: fig(3),
                cpu_clear_us: opt(4),
                cpu_tls_us: opt(5),
                connect_clear_us: opt(6),
                connect_tls_us: opt(7),
                runs: per.len(),
            });
        }
    }
    out
}

/// Whether any run in the data went over HTTP/1.1 over TLS (`compare`'s `tls` phase).
pub fn has_http11_tls(data: &Dataset) -> bool {
    data.entries
        .iter()
        .any(|e| e.variant().tls && !e.variant().http2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn tls_pairs_are_held_against_their_cleartext_twins() {
        assert_eq!(Variant::TLS.cleartext(), Variant::DEFAULT);
        assert_eq!(Variant::H2_TLS.cleartext(), Variant::H2C);
        assert_eq!(TLS_PAIRS[2].cleartext(), Variant::H2C.browser());
    }

    #[test]
    fn each_stack_is_ruled_and_tls_held_against_cleartext() {
        let data = Dataset::from_runs(fixture::compare_with_http2());
        let c2 = c2_on_stacks(&data);
        let stacks: Vec<Variant> = c2.iter().map(|r| r.stack).collect();
        assert_eq!(stacks, STACKS.to_vec());
        // Headers per exchange as the fixture made them, per stack, minimal and browser.
        assert_eq!(c2[0].figures.minimal.headers_per_exchange.v(), 230.0);
        assert_eq!(c2[1].figures.minimal.headers_per_exchange.v(), 70.0);
        let b = c2[2].figures.browser.expect("browser on h2 over TLS");
        assert_eq!(b.headers_per_exchange.v(), 360.0);
        let c8 = c8_on_stacks(&data);
        assert_eq!(c8.len(), 3);
        assert!(
            c8[2].figures.poll_label.contains("h2 over TLS"),
            "{}",
            c8[2].figures.poll_label
        );
        assert!(c8[1].figures.poll_overhead.v() < c8[0].figures.poll_overhead.v());

        let costs = tls_costs(&data);
        assert_eq!(
            costs.len(),
            2,
            "h2 over TLS, minimal and browser; no HTTP/1.1 TLS run"
        );
        let c = &costs[0];
        assert_eq!((c.transport, c.tls), (Transport::Poll, Variant::H2_TLS));
        let tls_entry = data
            .entries
            .iter()
            .find(|e| e.variant() == Variant::H2_TLS)
            .unwrap();
        let per_conn =
            tls_entry.result.delivered_messages as f64 / tls_entry.result.tcp_connects as f64;
        let want = 2500.0 + 22.0 * per_conn;
        assert!((c.tls_per_connection.v() - want).abs() < 1e-6 * want);
        assert!(c.wire_tls.v() > c.wire_clear.v());
        let (clear, tls) = (c.cpu_clear_us.unwrap().v(), c.cpu_tls_us.unwrap().v());
        assert!((tls - clear - 1.0).abs() < 1e-9, "{clear} {tls}");
        assert!(!has_http11_tls(&data));

        let hb = header_bytes(&data);
        assert_eq!(hb.len(), 4, "HTTP/1.1 and h2c, minimal and browser");
        let h2_browser = hb
            .iter()
            .find(|h| h.browser && h.stack == Variant::H2C)
            .unwrap();
        assert_eq!(h2_browser.bytes.map(|f| f.v()), [560.0, 290.0, 51.0, 32.0]);
    }

    #[test]
    fn stacks_without_runs_are_left_out() {
        let data = Dataset::from_runs(fixture::compare_like());
        let c2 = c2_on_stacks(&data);
        assert_eq!(c2.len(), 1, "HTTP/1.1 only in the fixture");
        assert_eq!(c2[0].stack, Variant::DEFAULT);
        assert!(tls_costs(&data).is_empty());
        assert!(!has_http11_tls(&data));
    }
}
