//! C3: a WebSocket message costs about 2 bytes of framing; after one handshake (101 Switching
//! Protocols) both sides send at will.
//!
//! Judged on WebSocket in the baseline scenario: framing per delivered message against the
//! RFC 6455 frame header for that message length (plus [`WS_FRAMING_SLACK_BYTES`] for close
//! frames and pings), and connects per client against [`ONE_CONNECTION_PER_CLIENT`].

use std::collections::BTreeSet;

use pushlab_proto::frame::ws_header_len;
use pushlab_proto::Transport;

use super::{base_entry, spread, Claim, Missing, Ruling, Verdict, ONE_CONNECTION_PER_CLIENT};
use crate::report::article;
use crate::report::data::{ratio, Dataset};
use crate::report::format::{fmt_num, Fig};
use crate::report::Chart;

/// Amortised close frames and pings may add up to this many framing bytes per WebSocket message.
pub const WS_FRAMING_SLACK_BYTES: f64 = 1.0;

pub struct C3;

#[derive(Clone, Debug, PartialEq)]
pub struct C3Figures {
    /// Length of one MESSAGE (payload + envelope), bytes.
    pub message_len: usize,
    /// RFC 6455 header for that length, server to client (unmasked) and client to server.
    pub expected_down: f64,
    pub expected_up: f64,
    pub framing: Fig,
    pub connects: Fig,
    pub clients: u64,
    pub connects_per_client: Fig,
    pub handshake_per_connection: Fig,
    /// Framing measured for longer messages elsewhere in the data, as text.
    pub longer: Vec<String>,
}

impl Claim for C3 {
    const INDEX: usize = 2;
    const CHARTS: &'static [Chart] = &[Chart::BytesPerMessage, Chart::RequestsPerMessage];
    type Figures = C3Figures;

    fn figures(data: &Dataset) -> Result<C3Figures, Missing> {
        let ws = base_entry(data, Transport::Ws).ok_or(Missing::new("a WebSocket run"))?;
        let r = &ws.result;
        let message_len = ws.message_bytes().round().max(0.0) as usize;
        // Other message sizes in the data: the header grows at 126 and 65,536 bytes.
        let longer: BTreeSet<String> = data
            .default_entries(Transport::Ws)
            .filter(|e| e.message_bytes() >= 126.0 && e.result.delivered_messages > 0)
            .map(|e| {
                format!(
                    "{} B for {}-byte messages",
                    fmt_num(e.result.bytes_per_message.framing),
                    fmt_num(e.message_bytes())
                )
            })
            .collect();
        Ok(C3Figures {
            message_len,
            expected_down: ws_header_len(message_len, false) as f64,
            expected_up: ws_header_len(message_len, true) as f64,
            framing: Fig::of(r.bytes_per_message.framing),
            connects: Fig::of(r.tcp_connects as f64),
            clients: r.clients,
            connects_per_client: Fig::of(ratio(r.tcp_connects as f64, r.clients as f64)),
            handshake_per_connection: Fig::of(ratio(
                r.bytes_total.handshake,
                r.tcp_connects as f64,
            )),
            longer: longer.into_iter().collect(),
        })
    }

    fn combine(all: &[C3Figures]) -> C3Figures {
        C3Figures {
            framing: spread(all, |f| f.framing),
            connects: spread(all, |f| f.connects),
            connects_per_client: spread(all, |f| f.connects_per_client),
            handshake_per_connection: spread(all, |f| f.handshake_per_connection),
            ..all[0].clone()
        }
    }

    fn verdict(f: &C3Figures) -> Ruling {
        let framing_ok = f.framing.v() <= f.expected_down + WS_FRAMING_SLACK_BYTES;
        let one_handshake = f.connects_per_client.v() <= ONE_CONNECTION_PER_CLIENT;
        if !framing_ok {
            Ruling::new(
                Verdict::DoesNotHold,
                format!(
                    "framing came to {} B per message, more than the {} B header plus {} B of slack",
                    f.framing, f.expected_down, WS_FRAMING_SLACK_BYTES
                ),
            )
        } else if f.expected_down > article::WS_FRAMING_BYTES {
            Ruling::new(
                Verdict::HoldsOnlyWhen("messages are under 126 bytes; longer ones need a 4-byte header (10 past 64 KiB)".into()),
                format!(
                    "a {}-byte message needs a {}-byte header; framing measured {} B",
                    f.message_len, f.expected_down, f.framing
                ),
            )
        } else if !one_handshake {
            Ruling::new(
                Verdict::HoldsOnlyWhen(
                    "connections stay up; each reconnect paid a new handshake".into(),
                ),
                format!(
                    "{} connects per client (> {}), {} B per handshake",
                    f.connects_per_client,
                    fmt_num(ONE_CONNECTION_PER_CLIENT),
                    f.handshake_per_connection
                ),
            )
        } else {
            Ruling::new(
                Verdict::Holds,
                format!(
                    "{} B of framing per message (<= {} + {} slack) after {} handshake per client; client-to-server frames are masked and cost {} B; messages of 126 bytes or more need a 4-byte header{}",
                    f.framing,
                    f.expected_down,
                    WS_FRAMING_SLACK_BYTES,
                    f.connects_per_client,
                    f.expected_up,
                    if f.longer.is_empty() {
                        String::new()
                    } else {
                        format!(" (measured: {})", f.longer.join(", "))
                    }
                ),
            )
        }
    }

    fn headline(f: &C3Figures) -> String {
        format!(
            "{} B framing per {}-byte message; {} connects per client",
            f.framing, f.message_len, f.connects_per_client
        )
    }

    fn measured(f: &C3Figures) -> String {
        let s = format!(
            "{} B of framing per delivered {}-byte message (frame header for that length: {} B server to client, {} B masked client to server); {} connects for {} clients, {} B per handshake",
            f.framing,
            f.message_len,
            f.expected_down,
            f.expected_up,
            f.connects,
            fmt_num(f.clients as f64),
            f.handshake_per_connection
        );
        if f.longer.is_empty() {
            s
        } else {
            format!("{s}; framing {}", f.longer.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figs(message_len: usize, framing: f64, connects_per_client: f64) -> C3Figures {
        C3Figures {
            message_len,
            expected_down: ws_header_len(message_len, false) as f64,
            expected_up: ws_header_len(message_len, true) as f64,
            framing: Fig::of(framing),
            connects: Fig::of(100.0 * connects_per_client),
            clients: 100,
            connects_per_client: Fig::of(connects_per_client),
            handshake_per_connection: Fig::of(392.0),
            longer: vec![],
        }
    }

    #[test]
    fn two_bytes_for_a_short_message_after_one_handshake_holds() {
        assert_eq!(C3::verdict(&figs(102, 2.0, 1.0)).verdict, Verdict::Holds);
    }

    #[test]
    fn framing_above_the_header_and_slack_does_not_hold() {
        assert_eq!(
            C3::verdict(&figs(102, 3.5, 1.0)).verdict,
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn a_long_message_holds_only_under_126_bytes() {
        let r = C3::verdict(&figs(1072, 4.0, 1.0));
        assert!(matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.contains("under 126")));
    }

    #[test]
    fn reconnects_hold_only_while_connections_stay_up() {
        let r = C3::verdict(&figs(102, 2.0, 1.5));
        assert!(matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.contains("reconnect")));
    }
}
