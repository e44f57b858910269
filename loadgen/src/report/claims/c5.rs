//! C5: HTTP streaming keeps one long connection per client and strains the server at high
//! concurrency.
//!
//! Judged at the largest scale the data holds, streaming against WebSocket there: "one
//! connection" is at most [`ONE_CONNECTION_PER_CLIENT`] connects per client; "strains" is a
//! server cost (memory per connection, CPU per delivery) more than [`COMPARABLE_FACTOR`] times
//! WebSocket's. "High concurrency" needs at least [`HIGH_CONCURRENCY_CLIENTS`]; with fewer the
//! claim is not settled here, and `scripts/reproduce.sh` (whose sweep runs 1,000 clients)
//! settles it. Memory per connection is read from the allocator (heap) where the target says,
//! else from RSS growth above [`MIN_RSS_GROWTH_BYTES`]; the kernel's socket memory is shown beside.

use pushlab_proto::Transport;

use super::{
    combine_cpu, spread, spread_opt, Claim, CpuVs, Missing, Ruling, Verdict,
    ONE_CONNECTION_PER_CLIENT, REPRODUCE,
};
use crate::report::data::{ratio, Dataset, Entry, Variant, MIN_RSS_GROWTH_BYTES};
use crate::report::format::{fmt_num, kib, or_na, times, Fig};
use crate::report::Chart;

/// Server costs within this factor of each other are "comparable".
pub const COMPARABLE_FACTOR: f64 = 1.5;
/// The fewest clients that count as "high concurrency".
pub const HIGH_CONCURRENCY_CLIENTS: u64 = 1_000;
/// The clients count the report projects memory to.
pub const PROJECT_CLIENTS: f64 = 100_000.0;

pub struct C5;

/// Server memory per open connection of one transport, user space and kernel side by side.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryFigures {
    /// Allocator bytes in use per connection (pushlab-server, schema v2).
    pub heap: Option<Fig>,
    /// RSS growth per connection.
    pub rss: Option<Fig>,
    /// Whether the RSS growth was above [`MIN_RSS_GROWTH_BYTES`] in every repeat.
    pub rss_resolved: bool,
    /// Kernel socket memory per connection.
    pub kernel: Option<Fig>,
    /// Why a figure is missing, from the result file.
    pub unavailable: String,
}

impl MemoryFigures {
    pub fn of(e: &Entry) -> MemoryFigures {
        MemoryFigures {
            heap: e.heap_per_connection_bytes().map(Fig::of),
            rss: e.rss_per_connection_bytes().map(Fig::of),
            rss_resolved: e.rss_per_connection_resolved().is_some(),
            kernel: e.kernel_per_connection_bytes().map(Fig::of),
            unavailable: e.server_unavailable(),
        }
    }

    pub fn combine(all: &[MemoryFigures]) -> MemoryFigures {
        MemoryFigures {
            heap: spread_opt(all, |m| m.heap),
            rss: spread_opt(all, |m| m.rss),
            rss_resolved: all.iter().all(|m| m.rss_resolved),
            kernel: spread_opt(all, |m| m.kernel),
            unavailable: all[0].unavailable.clone(),
        }
    }

    /// The user-space figure a verdict reads: heap where known, else RSS above noise.
    pub fn user_space(&self) -> Option<Fig> {
        self.heap.or(self.rss.filter(|_| self.rss_resolved))
    }

    /// `heap 9.4 KiB, RSS 20.8 KiB, kernel 4.1 KiB`, RSS below noise marked, `n/a (why)`.
    pub fn text(&self) -> String {
        let rss = self.rss.map(|r| {
            if self.rss_resolved {
                kib(r)
            } else {
                format!("{} (under RSS noise)", kib(r))
            }
        });
        format!(
            "heap {}, RSS {}, kernel {}",
            or_na(self.heap.map(kib), &self.unavailable),
            or_na(rss, &self.unavailable),
            or_na(self.kernel.map(kib), &self.unavailable)
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct C5Figures {
    pub clients: u64,
    /// The streaming transport judged: chunked stream, or SSE where the largest scale has no
    /// chunked-stream run (the scale run measures SSE and WebSocket at 100,000).
    pub streaming: Transport,
    pub connects: Fig,
    pub peak_open: Fig,
    pub connects_per_client: Fig,
    pub stream: MemoryFigures,
    pub ws: Option<MemoryFigures>,
    /// Streaming's user-space memory per connection over WebSocket's, where both resolve, or
    /// a lower bound from WebSocket's RSS noise floor spread over its connections.
    pub memory_ratio: Option<Fig>,
    pub cpu: Option<CpuVs>,
    /// Server CPU per connect, streaming and WebSocket, microseconds.
    pub cpu_per_connect_us: (Option<Fig>, Option<Fig>),
}

fn memory_ratio(stream: &Entry, ws: &Entry) -> Option<f64> {
    let (s, w) = (MemoryFigures::of(stream), MemoryFigures::of(ws));
    if let (Some(a), Some(b)) = (s.heap, w.heap) {
        return Some(ratio(a.v(), b.v()));
    }
    let a = s.user_space()?.v();
    if let Some(b) = w.user_space() {
        return Some(ratio(a, b.v()));
    }
    // WebSocket's growth below RSS noise still bounds it: at most the noise floor over its
    // connections. That bounds the ratio from below: enough to call streaming heavier, never
    // lighter.
    w.rss?;
    let bound = MIN_RSS_GROWTH_BYTES / ws.result.peak_open_connections.max(1) as f64;
    Some(ratio(a, bound)).filter(|r| *r > COMPARABLE_FACTOR)
}

impl Claim for C5 {
    const INDEX: usize = 4;
    const CHARTS: &'static [Chart] = &[Chart::ServerCost, Chart::RequestsPerMessage];
    type Figures = C5Figures;

    fn figures(data: &Dataset) -> Result<C5Figures, Missing> {
        let stream = data
            .largest_scale()
            .and_then(|s| {
                let t = &s.per_transport;
                t.get(&Transport::Stream)
                    .or(t.get(&Transport::Sse))
                    .copied()
            })
            .or_else(|| {
                data.default_entries(Transport::Stream)
                    .max_by_key(|e| (e.result.clients, e.result.delivered_messages))
            })
            .ok_or(Missing::new("a chunked-stream run"))?;
        let ws = data.variant(&stream.key(), Transport::Ws, Variant::DEFAULT);
        let r = &stream.result;
        let per_connect = |e: &Entry| e.result.server_cpu_us_per_connect.map(Fig::of);
        Ok(C5Figures {
            clients: r.clients,
            streaming: stream.transport(),
            connects: Fig::of(r.tcp_connects as f64),
            peak_open: Fig::of(r.peak_open_connections as f64),
            connects_per_client: Fig::of(ratio(r.tcp_connects as f64, r.clients as f64)),
            stream: MemoryFigures::of(stream),
            ws: ws.map(MemoryFigures::of),
            memory_ratio: ws.and_then(|w| memory_ratio(stream, w)).map(Fig::of),
            cpu: ws.and_then(|w| CpuVs::of(stream, w, COMPARABLE_FACTOR)),
            cpu_per_connect_us: (per_connect(stream), ws.and_then(per_connect)),
        })
    }

    fn combine(all: &[C5Figures]) -> C5Figures {
        let ws: Option<Vec<MemoryFigures>> = all.iter().map(|f| f.ws.clone()).collect();
        let stream: Vec<MemoryFigures> = all.iter().map(|f| f.stream.clone()).collect();
        C5Figures {
            connects: spread(all, |f| f.connects),
            peak_open: spread(all, |f| f.peak_open),
            connects_per_client: spread(all, |f| f.connects_per_client),
            stream: MemoryFigures::combine(&stream),
            ws: ws.map(|w| MemoryFigures::combine(&w)),
            memory_ratio: spread_opt(all, |f| f.memory_ratio),
            cpu: combine_cpu(all, |f| f.cpu),
            cpu_per_connect_us: (
                spread_opt(all, |f| f.cpu_per_connect_us.0),
                spread_opt(all, |f| f.cpu_per_connect_us.1),
            ),
            ..all[0].clone()
        }
    }

    fn verdict(f: &C5Figures) -> Ruling {
        let one_connection = f.connects_per_client.v() <= ONE_CONNECTION_PER_CLIENT;
        let cpu_against = f.cpu.map(|c| c.against.wasted());
        let heavier = f.memory_ratio.is_some_and(|x| x.v() > COMPARABLE_FACTOR)
            || cpu_against == Some(Some(true));
        let judged = f.memory_ratio.is_some() || cpu_against.flatten().is_some();
        let mem = f
            .memory_ratio
            .map(times)
            .unwrap_or_else(|| "not resolved".into());
        let cpu = f
            .cpu
            .map(|c| times(c.ratio))
            .unwrap_or_else(|| "n/a".into());
        if !one_connection {
            Ruling::new(
                Verdict::DoesNotHold,
                format!(
                    "{} connects per client (> {}): the stream did not stay up",
                    f.connects_per_client,
                    fmt_num(ONE_CONNECTION_PER_CLIENT)
                ),
            )
        } else if f.clients < HIGH_CONCURRENCY_CLIENTS {
            Ruling::not_here(
                REPRODUCE,
                format!(
                    "one long connection per client, but the largest streaming run here had {} clients, below the {} that count as high concurrency (memory {mem}, CPU {cpu} WebSocket's at this scale)",
                    fmt_num(f.clients as f64),
                    fmt_num(HIGH_CONCURRENCY_CLIENTS as f64)
                ),
            )
        } else if !judged {
            Ruling::new(
                Verdict::HoldsOnlyWhen(
                    "read as one connection per client; the server's cost at this scale was below what /metrics resolves"
                        .into(),
                ),
                format!(
                    "one long connection per client; memory growth under {} and CPU within its clock's resolution cannot tell streaming from WebSocket (a larger --clients can)",
                    kib(MIN_RSS_GROWTH_BYTES)
                ),
            )
        } else if heavier {
            Ruling::new(
                Verdict::Holds,
                format!(
                    "one connection per client, and streaming cost more than {} WebSocket's (memory {mem}, CPU {cpu})",
                    times(COMPARABLE_FACTOR)
                ),
            )
        } else {
            Ruling::new(
                Verdict::HoldsOnlyWhen(
                    "strain is read as what any open connection costs: streaming is no heavier than WebSocket"
                        .into(),
                ),
                format!(
                    "one connection per client; memory {mem} and CPU {cpu} WebSocket's, within {}: the cost is of holding connections, which SSE and WebSocket share",
                    times(COMPARABLE_FACTOR)
                ),
            )
        }
    }

    fn headline(f: &C5Figures) -> String {
        let user = |m: &MemoryFigures| m.user_space().or(m.rss).map(kib);
        format!(
            "{} connects per client at {} clients; {} per connection (WebSocket {})",
            f.connects_per_client,
            fmt_num(f.clients as f64),
            or_na(user(&f.stream), ""),
            or_na(f.ws.as_ref().and_then(user), "")
        )
    }

    fn measured(f: &C5Figures) -> String {
        let mut s = format!(
            "at {} clients ({}): {} connects and peak {} open; server memory per connection: streaming {} (WebSocket: {})",
            fmt_num(f.clients as f64),
            f.streaming.label(),
            f.connects,
            f.peak_open,
            f.stream.text(),
            f.ws.as_ref().map(MemoryFigures::text).unwrap_or_else(|| "n/a".into())
        );
        if let Some(c) = f.cpu {
            s += &format!("; {}", c.text());
        }
        if let (Some(a), Some(b)) = f.cpu_per_connect_us {
            s += &format!("; {a} vs {b} us of server CPU per connect");
        }
        if let Some(m) = f.stream.user_space() {
            s += &format!(
                "; {} GiB at {} clients ({})",
                m.map(|v| v * PROJECT_CLIENTS / (1u64 << 30) as f64),
                fmt_num(PROJECT_CLIENTS),
                if f.clients as f64 >= PROJECT_CLIENTS {
                    "measured"
                } else {
                    "projected from this scale"
                }
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::claims::Against;

    fn mem(heap: Option<f64>) -> MemoryFigures {
        MemoryFigures {
            heap: heap.map(Fig::of),
            rss: Some(Fig::of(20_000.0)),
            rss_resolved: true,
            kernel: Some(Fig::of(4_000.0)),
            unavailable: String::new(),
        }
    }

    fn figs(
        clients: u64,
        connects_per_client: f64,
        mem_ratio: Option<f64>,
        cpu: Option<Against>,
    ) -> C5Figures {
        C5Figures {
            clients,
            streaming: Transport::Stream,
            connects: Fig::of(clients as f64 * connects_per_client),
            peak_open: Fig::of(clients as f64),
            connects_per_client: Fig::of(connects_per_client),
            stream: mem(Some(9_000.0)),
            ws: Some(mem(Some(6_000.0))),
            memory_ratio: mem_ratio.map(Fig::of),
            cpu: cpu.map(|against| CpuVs {
                a_us: Fig::of(12.0),
                b_us: Fig::of(10.0),
                resolved: (true, true),
                ratio: Fig::of(1.2),
                against,
            }),
            cpu_per_connect_us: (Some(Fig::of(40.0)), Some(Fig::of(60.0))),
        }
    }

    #[test]
    fn reconnecting_streams_do_not_hold() {
        assert_eq!(
            C5::verdict(&figs(1000, 1.5, Some(3.0), None)).verdict,
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn below_a_thousand_clients_is_not_settled_here_and_names_the_command() {
        let r = C5::verdict(&figs(999, 1.0, Some(3.0), Some(Against::Above)));
        assert_eq!(
            r.verdict.to_string(),
            "not settled here (`scripts/reproduce.sh` settles it)"
        );
    }

    #[test]
    fn nothing_resolved_holds_only_as_one_connection_per_client() {
        let r = C5::verdict(&figs(1000, 1.0, None, Some(Against::Unresolved)));
        assert!(
            matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.starts_with("read as one connection"))
        );
    }

    #[test]
    fn heavier_memory_or_cpu_holds() {
        assert_eq!(
            C5::verdict(&figs(1000, 1.0, Some(1.6), None)).verdict,
            Verdict::Holds
        );
        assert_eq!(
            C5::verdict(&figs(1000, 1.0, None, Some(Against::Above))).verdict,
            Verdict::Holds
        );
    }

    #[test]
    fn comparable_costs_hold_only_as_what_any_connection_costs() {
        let r = C5::verdict(&figs(1000, 1.0, Some(1.4), Some(Against::Below)));
        assert!(matches!(r.verdict, Verdict::HoldsOnlyWhen(ref c) if c.starts_with("strain")));
    }

    #[test]
    fn memory_prefers_the_heap_and_says_why_a_figure_is_missing() {
        let mut m = mem(None);
        m.rss_resolved = false;
        m.kernel = None;
        m.unavailable = "no skmem".into();
        assert_eq!(m.user_space(), None);
        assert_eq!(
            m.text(),
            "heap n/a (no skmem), RSS 19.5 KiB (under RSS noise), kernel n/a (no skmem)"
        );
        assert_eq!(mem(Some(9_216.0)).user_space(), Some(Fig::of(9_216.0)));
    }
}
