//! The six charts, drawn with plotters into PNG and SVG.
//!
//! Text is rendered with plotters' pure-Rust `ab_glyph` backend and the committed DejaVu Sans
//! (`loadgen/assets/`, Bitstream Vera licence), so a fresh machine needs no fontconfig or
//! freetype. Each transport has one colour (Okabe-Ito, readable by colour-blind eyes) on every
//! chart; byte kinds in chart 1 use a separate set so the two never collide. Every chart has a
//! title, axis labels with units and a legend. Each chart is prepared once from the data (a
//! struct implementing [`Drawing`]) and drawn twice, once per backend.

use std::path::Path;
use std::sync::Once;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use pushlab_proto::result::ByteSplit;
use pushlab_proto::Transport;

use crate::report::article::{
    CLIENTS as ARTICLE_CLIENTS, MIBIT, POLL_MIBIT as ARTICLE_POLL_MIBIT,
    WS_MIBIT as ARTICLE_WS_MIBIT,
};
use crate::report::claims::c8::{article_entry, Projection};
use crate::report::data::{Dataset, Entry, Variant, MIN_SWEEP_RATES};
use crate::report::format::fmt_num;
use crate::report::{Chart, ChartOutcome, ReportError};

const SIZE: (u32, u32) = (1200, 720);
const FONT: &str = "sans-serif";
const TITLE_PX: u32 = 26;
const LABEL_PX: u32 = 16;
const DESC_PX: u32 = 18;
const LEGEND_PX: u32 = 15;

static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register() {
    REGISTER.call_once(|| {
        // The font is committed and known good; a failure here would be a broken checkout.
        if register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            eprintln!("pushlab report: the committed font did not load; charts will lack text");
        }
    });
}

/// One colour per transport, the same on every chart.
pub fn transport_colour(t: Transport) -> RGBColor {
    match t {
        Transport::Poll => RGBColor(213, 94, 0),
        Transport::LongPoll => RGBColor(230, 159, 0),
        Transport::Sse => RGBColor(0, 158, 115),
        Transport::Stream => RGBColor(86, 180, 233),
        Transport::Ws => RGBColor(0, 114, 178),
    }
}

/// Colours of the byte kinds of chart 1.
const KINDS: [(&str, RGBColor); 6] = [
    ("payload", RGBColor(40, 40, 40)),
    ("envelope (topic, seq, ts, keys)", RGBColor(130, 130, 130)),
    ("HTTP headers", RGBColor(204, 121, 167)),
    ("framing", RGBColor(240, 228, 66)),
    ("handshake", RGBColor(140, 90, 60)),
    ("TCP/IP headers", RGBColor(185, 185, 235)),
];

fn kind_values(b: &ByteSplit) -> [f64; 6] {
    [
        b.payload,
        b.envelope,
        b.headers,
        b.framing,
        b.handshake,
        b.tcpip,
    ]
}

const ARTICLE_COLOUR: RGBColor = RGBColor(0, 0, 0);
const ARTICLE_WS_COLOUR: RGBColor = RGBColor(110, 110, 110);

type DrawResult = Result<(), String>;

trait Ctx<T> {
    fn ctx(self) -> Result<T, String>;
}

impl<T, E: std::fmt::Debug> Ctx<T> for Result<T, E> {
    fn ctx(self) -> Result<T, String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// A chart prepared from the data, drawable on any backend.
trait Drawing {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

fn render(chart: Chart, dir: &Path, d: &impl Drawing) -> Result<ChartOutcome, ReportError> {
    register();
    let png = dir.join(format!("{}.png", chart.stem()));
    let svg = dir.join(format!("{}.svg", chart.stem()));
    let err = |message: String| ReportError::Chart {
        chart: chart.stem(),
        message,
    };
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        root.fill(&WHITE).ctx().map_err(err)?;
        d.draw(&root).map_err(err)?;
        root.present().ctx().map_err(err)?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ctx().map_err(err)?;
        d.draw(&root).map_err(err)?;
        root.present().ctx().map_err(err)?;
    }
    Ok(ChartOutcome::Drawn { png, svg })
}

/// Draws `chart` into `dir`, or says why it cannot be drawn from `data`.
pub fn draw(chart: Chart, data: &Dataset, dir: &Path) -> Result<ChartOutcome, ReportError> {
    let rows = data.baseline_entries();
    let skip = |why: &str| Ok(ChartOutcome::Skipped(why.to_string()));
    match chart {
        Chart::BytesPerMessage => {
            if rows.is_empty() {
                return skip("no baseline scenario");
            }
            render(chart, dir, &BytesChart::new(&rows))
        }
        Chart::LatencySpectrum => {
            let Some(b) = data.baseline() else {
                return skip("no baseline scenario");
            };
            let entries: Vec<&Entry> = b.per_transport.values().copied().collect();
            render(chart, dir, &LatencyChart::new(&entries, &b.key.describe()))
        }
        Chart::RequestsPerMessage => {
            if rows.is_empty() {
                return skip("no baseline scenario");
            }
            render(chart, dir, &RequestsChart::new(&rows))
        }
        Chart::BandwidthVsClients => render(chart, dir, &BandwidthChart::new(data)),
        Chart::RateSweep => match data.rate_sweep() {
            Some(s) if s.distinct_rates() >= MIN_SWEEP_RATES => {
                render(chart, dir, &RateChart::new(&s))
            }
            Some(s) => skip(&format!(
                "the data has {} distinct publish rate(s); a rate sweep needs at least {} (run `pushlab-loadgen sweep`, see scripts/sweep.toml)",
                s.distinct_rates(),
                MIN_SWEEP_RATES
            )),
            None => skip("no rate sweep in the data"),
        },
        Chart::ServerCost => {
            // At the largest scale the data holds: small runs cost too little to resolve.
            let scale: Vec<&Entry> = data
                .largest_scale()
                .map(|b| b.per_transport.values().copied().collect())
                .unwrap_or_default();
            let c = CostChart::new(&scale);
            if c.rows.iter().all(|r| r.2.is_none() && r.3.is_none()) {
                return skip("the target reported no /metrics CPU or memory figures");
            }
            render(chart, dir, &c)
        }
    }
}

/// Category labels as lines: the transport, then the variant (if any) below it. `short` uses
/// the short names (`poll`, `WS`) for narrow panels.
fn category_lines(e: &Entry, short: bool) -> Vec<String> {
    let name = if short {
        match e.transport() {
            Transport::Poll => "poll",
            Transport::LongPoll => "long poll",
            Transport::Sse => "SSE",
            Transport::Stream => "stream",
            Transport::Ws => "WS",
        }
    } else {
        e.transport().label()
    };
    let mut lines = vec![name.to_string()];
    let v = e.variant();
    if v.keep_alive_off {
        lines.push("no keep-alive".into());
    }
    if v.browser_headers {
        lines.push("browser hdrs".into());
    }
    if v.h2c {
        lines.push("h2c".into());
    }
    lines
}

/// Draws category labels centred under each bar, one line per entry of `labels[i]`, on `area`
/// (which holds the chart whose plotting area is `plot`). Plotters' own tick labels are one
/// line and collide when variants make them long.
fn draw_category_labels<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, Shift>,
    plot: &DrawingArea<DB, CT>,
    axis: &KeyAxis,
    labels: &[Vec<String>],
    px: u32,
) -> DrawResult {
    let (xr, yr) = plot.get_pixel_range();
    let base = area.get_base_pixel();
    let style = (FONT, px)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, lines) in labels.iter().enumerate() {
        let x = axis.map(&(i as f64), (xr.start, xr.end)) - base.0;
        for (k, line) in lines.iter().enumerate() {
            let y = yr.end - base.1 + 8 + k as i32 * (px as i32 + 3);
            area.draw(&Text::new(line.clone(), (x, y), style.clone()))
                .ctx()?;
        }
    }
    Ok(())
}

/// A linear f64 axis whose ticks are exactly the given points (categories, percentiles).
#[derive(Clone, Debug)]
struct KeyAxis {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
}

impl Ranged for KeyAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let frac = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (frac * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Categories 0..n, one tick each.
fn index_axis(n: usize) -> KeyAxis {
    KeyAxis {
        lo: -0.6,
        hi: n as f64 - 0.4,
        keys: (0..n).map(|i| i as f64).collect(),
    }
}

fn legend_box(colour: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], colour.filled())
}

/// Nice upper bound for a linear axis.
fn headroom(max: f64) -> f64 {
    if max > 0.0 {
        max * 1.18
    } else {
        1.0
    }
}

/// Chart 1: wire bytes per delivered message, stacked by kind.
struct BytesChart {
    rows: Vec<(Vec<String>, Transport, ByteSplit)>,
    scenario: String,
}

impl BytesChart {
    fn new(rows: &[&Entry]) -> BytesChart {
        BytesChart {
            rows: rows
                .iter()
                .map(|e| {
                    (
                        category_lines(e, false),
                        e.transport(),
                        e.result.bytes_per_message,
                    )
                })
                .collect(),
            scenario: rows.first().map(|e| e.key().describe()).unwrap_or_default(),
        }
    }
}

impl Drawing for BytesChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let n = self.rows.len();
        let max = self.rows.iter().map(|r| r.2.total()).fold(0.0, f64::max);
        let labels: Vec<Vec<String>> = self.rows.iter().map(|r| r.0.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Wire bytes per delivered message ({})", self.scenario),
                (FONT, TITLE_PX - 4),
            )
            .margin(20)
            .x_label_area_size(75)
            .y_label_area_size(90)
            .build_cartesian_2d(index_axis(n), 0.0..headroom(max))
            .ctx()?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| fmt_num(*v))
            .x_desc("transport (bar outline and total in the transport's colour)")
            .y_desc("bytes per delivered message, both directions")
            .label_style((FONT, LABEL_PX - 2))
            .axis_desc_style((FONT, DESC_PX))
            .draw()
            .ctx()?;
        draw_category_labels(
            root,
            chart.plotting_area(),
            &index_axis(n),
            &labels,
            LABEL_PX - 1,
        )?;
        for (k, (name, colour)) in KINDS.iter().enumerate() {
            let bars = self.rows.iter().enumerate().map(|(i, (_, _, b))| {
                let v = kind_values(b);
                let below: f64 = v[..k].iter().sum();
                Rectangle::new(
                    [(i as f64 - 0.35, below), (i as f64 + 0.35, below + v[k])],
                    colour.filled(),
                )
            });
            chart
                .draw_series(bars)
                .ctx()?
                .label(*name)
                .legend(legend_box(*colour));
        }
        for (i, (_, t, b)) in self.rows.iter().enumerate() {
            let c = transport_colour(*t);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, b.total())],
                    c.stroke_width(3),
                )))
                .ctx()?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{} B", fmt_num(b.total())),
                    (i as f64, b.total() + max * 0.015),
                    (FONT, LABEL_PX)
                        .into_font()
                        .color(&c)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .ctx()?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, LEGEND_PX))
            .draw()
            .ctx()?;
        Ok(())
    }
}

/// The quantiles chart 2 samples, as "nines": x = -log10(1 - q).
fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

const MARKED_QUANTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
];

/// One transport's line: (transport, (nines, ms) points, from the histogram?).
type LatencySeries = (Transport, Vec<(f64, f64)>, bool);

/// Chart 2: latency percentile spectrum.
struct LatencyChart {
    /// (transport, (nines, ms) points, whether they came from the histogram)
    series: Vec<LatencySeries>,
    scenario: String,
}

impl LatencyChart {
    fn new(entries: &[&Entry], scenario: &str) -> LatencyChart {
        let series = entries
            .iter()
            .map(|e| {
                let (points, from_hist) = match e.histogram() {
                    Some(h) if !h.is_empty() => {
                        let steps = 80;
                        let lo = nines(0.5);
                        let hi = nines(0.9999);
                        let pts = (0..=steps)
                            .map(|i| {
                                let x = lo + (hi - lo) * i as f64 / steps as f64;
                                let q = 1.0 - 10f64.powf(-x);
                                (x, h.value_at_quantile(q) as f64 / 1000.0)
                            })
                            .collect();
                        (pts, true)
                    }
                    _ => {
                        let l = &e.result.latency_us;
                        let v = [l.p50, l.p90, l.p99, l.p999, l.p9999];
                        let pts = MARKED_QUANTILES
                            .iter()
                            .zip(v)
                            .map(|((q, _), us)| (nines(*q), us as f64 / 1000.0))
                            .collect();
                        (pts, false)
                    }
                };
                (e.transport(), points, from_hist)
            })
            .collect();
        LatencyChart {
            series,
            scenario: scenario.to_string(),
        }
    }
}

impl Drawing for LatencyChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let all = self.series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
        let (mut lo, mut hi) = all.fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        if lo == f64::MAX || lo <= 0.0 {
            lo = 0.01;
        }
        if hi <= lo {
            hi = lo * 10.0;
        }
        let x_keys: Vec<f64> = MARKED_QUANTILES.iter().map(|(q, _)| nines(*q)).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Latency percentile spectrum ({})", self.scenario),
                (FONT, TITLE_PX - 4),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(90)
            .build_cartesian_2d(
                KeyAxis {
                    lo: nines(0.5) - 0.05,
                    hi: nines(0.9999) + 0.05,
                    keys: x_keys,
                },
                (lo / 1.5..hi * 1.5).log_scale(),
            )
            .ctx()?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| {
                MARKED_QUANTILES
                    .iter()
                    .find(|(q, _)| (nines(*q) - x).abs() < 1e-6)
                    .map(|(_, n)| n.to_string())
                    .unwrap_or_default()
            })
            .y_label_formatter(&|v| fmt_num(*v))
            .x_desc("percentile (log scale of 1 / (1 - p))")
            .y_desc("publish-to-deliver latency, ms (log scale)")
            .label_style((FONT, LABEL_PX))
            .axis_desc_style((FONT, DESC_PX))
            .draw()
            .ctx()?;
        for (t, points, from_hist) in &self.series {
            let c = transport_colour(*t);
            let label = if *from_hist {
                t.label().to_string()
            } else {
                format!("{} (percentile fields; no histogram)", t.label())
            };
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))
                .ctx()?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            let marks = points.iter().filter(|(x, _)| {
                MARKED_QUANTILES
                    .iter()
                    .any(|(q, _)| (nines(*q) - x).abs() < 0.02)
            });
            chart
                .draw_series(marks.map(|p| Circle::new(*p, 4, c.filled())))
                .ctx()?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, LEGEND_PX))
            .draw()
            .ctx()?;
        Ok(())
    }
}

/// Chart 3: HTTP requests and TCP connects per delivered message.
struct RequestsChart {
    rows: Vec<(Vec<String>, Transport, f64, f64)>,
    scenario: String,
    /// Messages each client received in the baseline run (what a persistent connection's one
    /// request is spread over).
    messages_per_client: f64,
}

impl RequestsChart {
    fn new(rows: &[&Entry]) -> RequestsChart {
        RequestsChart {
            rows: rows
                .iter()
                .map(|e| {
                    (
                        category_lines(e, false),
                        e.transport(),
                        e.per_message(e.result.http_requests),
                        e.per_message(e.result.tcp_connects),
                    )
                })
                .collect(),
            scenario: rows.first().map(|e| e.key().describe()).unwrap_or_default(),
            messages_per_client: rows
                .first()
                .map(|e| e.per_message(e.result.clients).recip())
                .filter(|v| v.is_finite())
                .unwrap_or(0.0),
        }
    }
}

impl Drawing for RequestsChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let n = self.rows.len();
        let values = self
            .rows
            .iter()
            .flat_map(|r| [r.2, r.3])
            .filter(|v| *v > 0.0);
        let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo == f64::MAX {
            (0.001, 1.0)
        } else {
            (lo, hi)
        };
        let floor = lo / 3.0;
        let labels: Vec<Vec<String>> = self.rows.iter().map(|r| r.0.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Requests and connects per delivered message ({})",
                    self.scenario
                ),
                (FONT, TITLE_PX - 4),
            )
            .margin(20)
            .x_label_area_size(75)
            .y_label_area_size(90)
            .build_cartesian_2d(index_axis(n), (floor..hi * 4.0).log_scale())
            .ctx()?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| fmt_num(*v))
            .x_desc(format!(
                "transport (SSE, stream, WebSocket: one request per client, spread over the {} messages each received)",
                fmt_num(self.messages_per_client)
            ))
            .y_desc("per delivered message (log scale)")
            .label_style((FONT, LABEL_PX - 2))
            .axis_desc_style((FONT, DESC_PX))
            .draw()
            .ctx()?;
        draw_category_labels(
            root,
            chart.plotting_area(),
            &index_axis(n),
            &labels,
            LABEL_PX - 1,
        )?;
        let grey = RGBColor(90, 90, 90);
        let bar = |i: usize, left: bool, v: f64| {
            let x0 = i as f64 + if left { -0.38 } else { 0.02 };
            [(x0, floor), (x0 + 0.36, v.max(floor))]
        };
        chart
            .draw_series(
                self.rows.iter().enumerate().map(|(i, r)| {
                    Rectangle::new(bar(i, true, r.2), transport_colour(r.1).filled())
                }),
            )
            .ctx()?
            .label("HTTP requests (solid; a WebSocket upgrade counts as one)")
            .legend(legend_box(grey));
        chart
            .draw_series(self.rows.iter().enumerate().map(|(i, r)| {
                Rectangle::new(bar(i, false, r.3), transport_colour(r.1).mix(0.35).filled())
            }))
            .ctx()?
            .label("TCP connects (light)")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 16, y + 6)], grey.mix(0.35).filled())
            });
        for (i, r) in self.rows.iter().enumerate() {
            for (left, v) in [(true, r.2), (false, r.3)] {
                let x = i as f64 + if left { -0.38 } else { 0.02 };
                chart
                    .draw_series(std::iter::once(Text::new(
                        fmt_num(v),
                        (x + 0.18, v.max(floor) * 1.08),
                        (FONT, LABEL_PX - 3)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )))
                    .ctx()?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, LEGEND_PX))
            .draw()
            .ctx()?;
        Ok(())
    }
}

/// Chart 4: bandwidth against clients beside the article's table.
struct BandwidthChart {
    projections: Vec<(Projection, f64)>,
    /// Header and framing bytes only, the article's count: polling and WebSocket.
    overhead: Vec<Projection>,
    /// (transport, clients, Mibit/s) measured at ~1 msg/s.
    measured: Vec<(Transport, f64, f64)>,
}

impl BandwidthChart {
    fn new(data: &Dataset) -> BandwidthChart {
        let mut projections = Vec::new();
        let mut measured = Vec::new();
        let mut wanted: Vec<(Transport, Variant)> = Transport::ALL
            .iter()
            .map(|t| (*t, Variant::DEFAULT))
            .collect();
        wanted.insert(1, (Transport::Poll, Variant::BROWSER));
        for (t, v) in wanted {
            let Some(e) = article_entry(data, t, v) else {
                continue;
            };
            let rate = e.result.scenario.publish_rate_per_s;
            let label = if (rate - 1.0).abs() < 0.05 {
                format!("{}: projected", e.label())
            } else {
                format!("{}: projected from {} msg/s", e.label(), fmt_num(rate))
            };
            projections.push((
                Projection {
                    label,
                    transport: t,
                    bytes_per_message: e.result.bytes_per_message.total(),
                    rate_per_s: 1.0,
                },
                e.result.clients as f64,
            ));
            if (rate - 1.0).abs() < 0.05 && e.wall_s() > 0.0 {
                let mibit = e.result.bytes_total.total() * 8.0 / e.wall_s() / MIBIT;
                measured.push((t, e.result.clients as f64, mibit));
            }
        }
        let mut overhead = Vec::new();
        let poll = article_entry(data, Transport::Poll, Variant::BROWSER)
            .or_else(|| article_entry(data, Transport::Poll, Variant::DEFAULT));
        for e in poll
            .into_iter()
            .chain(article_entry(data, Transport::Ws, Variant::DEFAULT))
        {
            overhead.push(Projection {
                label: format!(
                    "{}: headers+framing only (the article's count), projected",
                    e.label()
                ),
                transport: e.transport(),
                bytes_per_message: e.steady_overhead_per_message(),
                rate_per_s: 1.0,
            });
        }
        BandwidthChart {
            projections,
            overhead,
            measured,
        }
    }
}

impl Drawing for BandwidthChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let x_lo = self
            .projections
            .iter()
            .map(|p| p.1)
            .chain(self.measured.iter().map(|m| m.1))
            .fold(ARTICLE_CLIENTS[0] as f64, f64::min)
            / 1.5;
        let x_hi = ARTICLE_CLIENTS[2] as f64 * 1.5;
        let mut ys: Vec<f64> = ARTICLE_POLL_MIBIT
            .iter()
            .chain(&ARTICLE_WS_MIBIT)
            .copied()
            .collect();
        for (p, from) in &self.projections {
            ys.push(p.mibit_at(*from));
            ys.push(p.mibit_at(ARTICLE_CLIENTS[2] as f64));
        }
        ys.extend(self.measured.iter().map(|m| m.2));
        for p in &self.overhead {
            ys.push(p.mibit_at(ARTICLE_CLIENTS[0] as f64));
            ys.push(p.mibit_at(ARTICLE_CLIENTS[2] as f64));
        }
        let y_lo = ys
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::MAX, f64::min)
            / 2.0;
        let y_hi = ys.iter().copied().fold(0.0, f64::max) * 3.0;
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Bandwidth at 1 msg/s per client: the article's table beside this lab's projections",
                (FONT, TITLE_PX - 4),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(90)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
            .ctx()?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .x_desc("clients (log scale)")
            .y_desc("Mibit/s (2^20 bit/s, the article's unit; log scale)")
            .label_style((FONT, LABEL_PX))
            .axis_desc_style((FONT, DESC_PX))
            .draw()
            .ctx()?;
        let article = |values: [f64; 3]| -> Vec<(f64, f64)> {
            ARTICLE_CLIENTS
                .iter()
                .zip(values)
                .map(|(c, v)| (*c as f64, v))
                .collect()
        };
        for (values, colour, label) in [
            (
                ARTICLE_POLL_MIBIT,
                ARTICLE_COLOUR,
                "article: polling, 871 B headers",
            ),
            (
                ARTICLE_WS_MIBIT,
                ARTICLE_WS_COLOUR,
                "article: WebSocket, 2 B framing",
            ),
        ] {
            let pts = article(values);
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .ctx()?
                .label(label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], colour.stroke_width(2))
                        + Rectangle::new([(6, -4), (14, 4)], colour.filled())
                });
            chart
                .draw_series(pts.iter().map(|p| {
                    EmptyElement::at(*p) + Rectangle::new([(-5, -5), (5, 5)], colour.filled())
                }))
                .ctx()?;
            chart
                .draw_series(pts.iter().map(|p| {
                    Text::new(
                        fmt_num(p.1),
                        (p.0 * 1.08, p.1 * 0.82),
                        (FONT, LABEL_PX - 2).into_font().color(&colour),
                    )
                }))
                .ctx()?;
        }
        for (p, from) in &self.projections {
            let c = transport_colour(p.transport);
            let dashed_style = if p.label.contains("browser") {
                c.mix(0.55).stroke_width(3)
            } else {
                c.stroke_width(3)
            };
            let xs = [
                *from,
                ARTICLE_CLIENTS[0] as f64,
                ARTICLE_CLIENTS[1] as f64,
                ARTICLE_CLIENTS[2] as f64,
            ];
            let pts: Vec<(f64, f64)> = xs
                .iter()
                .filter(|x| **x >= *from)
                .map(|x| (*x, p.mibit_at(*x)))
                .collect();
            chart
                .draw_series(DashedLineSeries::new(pts, 10, 6, dashed_style))
                .ctx()?
                .label(p.label.clone())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (8, 0)], dashed_style)
                        + PathElement::new(vec![(12, 0), (20, 0)], dashed_style)
                });
        }
        for p in &self.overhead {
            let style = transport_colour(p.transport).stroke_width(2);
            let pts: Vec<(f64, f64)> = ARTICLE_CLIENTS
                .iter()
                .map(|c| (*c as f64, p.mibit_at(*c as f64)))
                .collect();
            chart
                .draw_series(DashedLineSeries::new(pts, 3, 4, style))
                .ctx()?
                .label(p.label.clone())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (3, 0)], style)
                        + PathElement::new(vec![(7, 0), (10, 0)], style)
                        + PathElement::new(vec![(14, 0), (17, 0)], style)
                });
        }
        if !self.measured.is_empty() {
            chart
                .draw_series(self.measured.iter().map(|(t, clients, mibit)| {
                    Circle::new((*clients, *mibit), 6, transport_colour(*t).filled())
                }))
                .ctx()?
                .label("measured (dots, at the run's client count)")
                .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, LEGEND_PX))
            .draw()
            .ctx()?;
        Ok(())
    }
}

/// (rate msg/s, p50 ms, p99 ms, bytes per message)
type RatePoint = (f64, f64, f64, f64);

/// Chart 5: latency and bytes per message against publish rate.
struct RateChart {
    /// (transport, [(rate, p50 ms, p99 ms, bytes per message)])
    series: Vec<(Transport, Vec<RatePoint>)>,
    scenario: String,
}

impl RateChart {
    fn new(s: &crate::report::data::RateSweep<'_>) -> RateChart {
        RateChart {
            series: s
                .series
                .iter()
                .map(|(t, pts)| {
                    let v = pts
                        .iter()
                        .filter(|(_, e)| e.result.delivered_messages > 0)
                        .map(|(r, e)| {
                            (
                                *r,
                                e.p50_ms().max(0.001),
                                e.p99_ms().max(0.001),
                                e.result.bytes_per_message.total(),
                            )
                        })
                        .collect();
                    (*t, v)
                })
                .collect(),
            scenario: format!(
                "{} clients, {} B payload, poll every {} ms",
                s.clients, s.payload_bytes, s.poll_interval_ms
            ),
        }
    }
}

impl Drawing for RateChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let titled = root
            .titled(
                &format!(
                    "Latency and bytes per message against publish rate ({})",
                    self.scenario
                ),
                (FONT, TITLE_PX - 4),
            )
            .ctx()?;
        let panels = titled.split_evenly((2, 1));
        let pts = self.series.iter().flat_map(|s| s.1.iter());
        let (r_lo, r_hi) = pts
            .clone()
            .fold((f64::MAX, 0.0f64), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (r_lo, r_hi) = if r_lo == f64::MAX {
            (0.1, 100.0)
        } else {
            (r_lo, r_hi)
        };
        let bounds = |f: fn(&RatePoint) -> f64| {
            let (lo, hi) = pts
                .clone()
                .map(f)
                .filter(|v| *v > 0.0)
                .fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
            if lo == f64::MAX {
                (0.1, 10.0)
            } else {
                (lo / 2.0, hi * 2.0)
            }
        };
        let lat = {
            let (a, _) = bounds(|p| p.1);
            let (_, b) = bounds(|p| p.2);
            (a, b)
        };
        let bytes = bounds(|p| p.3);

        for (panel_i, panel) in panels.iter().enumerate() {
            let (y_range, y_desc) = if panel_i == 0 {
                (lat, "latency, ms (log): p50 solid, p99 dashed")
            } else {
                (bytes, "wire bytes per delivered message (log)")
            };
            let mut chart = ChartBuilder::on(panel)
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(90)
                .build_cartesian_2d(
                    (r_lo / 1.5..r_hi * 1.5).log_scale(),
                    (y_range.0..y_range.1).log_scale(),
                )
                .ctx()?;
            chart
                .configure_mesh()
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| fmt_num(*v))
                .x_desc("publish rate, messages per second (log scale)")
                .y_desc(y_desc)
                .label_style((FONT, LABEL_PX - 1))
                .axis_desc_style((FONT, DESC_PX - 2))
                .draw()
                .ctx()?;
            for (t, points) in &self.series {
                let c = transport_colour(*t);
                let main: Vec<(f64, f64)> = points
                    .iter()
                    .map(|p| (p.0, if panel_i == 0 { p.1 } else { p.3 }))
                    .collect();
                chart
                    .draw_series(LineSeries::new(main.clone(), c.stroke_width(3)))
                    .ctx()?
                    .label(t.label())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                    });
                chart
                    .draw_series(main.iter().map(|p| Circle::new(*p, 4, c.filled())))
                    .ctx()?;
                if panel_i == 0 {
                    let p99: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.2)).collect();
                    chart
                        .draw_series(DashedLineSeries::new(p99, 8, 5, c.stroke_width(2)))
                        .ctx()?;
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font((FONT, LEGEND_PX - 1))
                .draw()
                .ctx()?;
        }
        Ok(())
    }
}

/// (label lines, transport, CPU us per 1k messages, RSS KiB per connection)
/// Also: whether each figure is above its resolution (`~` marks those that are not).
type CostRow = (Vec<String>, Transport, Option<f64>, Option<f64>, [bool; 2]);

/// Chart 6: server CPU per 1,000 messages and memory per open connection.
struct CostChart {
    rows: Vec<CostRow>,
    scenario: String,
}

impl CostChart {
    fn new(rows: &[&Entry]) -> CostChart {
        CostChart {
            rows: rows
                .iter()
                .map(|e| {
                    (
                        category_lines(e, false),
                        e.transport(),
                        e.cpu_us_per_delivery(),
                        e.rss_per_connection_bytes().map(|b| b / 1024.0),
                        [e.cpu_resolved(), e.rss_per_connection_resolved().is_some()],
                    )
                })
                .collect(),
            scenario: rows.first().map(|e| e.key().describe()).unwrap_or_default(),
        }
    }
}

impl Drawing for CostChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let titled = root
            .titled(
                &format!(
                    "Server cost by transport ({}; ~ = below /metrics resolution)",
                    self.scenario
                ),
                (FONT, TITLE_PX - 4),
            )
            .ctx()?;
        let panels = titled.split_evenly((2, 1));
        let n = self.rows.len();
        let labels: Vec<Vec<String>> = self.rows.iter().map(|r| r.0.clone()).collect();
        for (panel_i, panel) in panels.iter().enumerate() {
            let values: Vec<Option<f64>> = self
                .rows
                .iter()
                .map(|r| if panel_i == 0 { r.2 } else { r.3 })
                .collect();
            let max = values.iter().flatten().copied().fold(0.0, f64::max);
            let (caption, y_desc) = if panel_i == 0 {
                (
                    "Server CPU per 1,000 delivered messages",
                    "CPU us per 1,000 msgs",
                )
            } else {
                (
                    "Server memory (RSS growth) per open connection",
                    "RSS KiB per connection",
                )
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(caption, (FONT, DESC_PX + 2))
                .margin(15)
                .x_label_area_size(42)
                .y_label_area_size(80)
                // Room above the bars for the legend.
                .build_cartesian_2d(index_axis(n), 0.0..headroom(max) * 1.35)
                .ctx()?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_label_formatter(&|_| String::new())
                .y_label_formatter(&|v| fmt_num(*v))
                .y_desc(y_desc)
                .label_style((FONT, LABEL_PX - 2))
                .axis_desc_style((FONT, DESC_PX - 2))
                .draw()
                .ctx()?;
            draw_category_labels(
                panel,
                chart.plotting_area(),
                &index_axis(n),
                &labels,
                LABEL_PX - 3,
            )?;
            for t in Transport::ALL {
                let bars: Vec<_> = self
                    .rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.1 == t)
                    .filter_map(|(i, _)| values[i].map(|v| (i, v)))
                    .collect();
                if bars.is_empty() {
                    continue;
                }
                let c = transport_colour(t);
                let series = chart
                    .draw_series(bars.iter().map(|(i, v)| {
                        Rectangle::new(
                            [(*i as f64 - 0.35, 0.0), (*i as f64 + 0.35, *v)],
                            c.filled(),
                        )
                    }))
                    .ctx()?;
                if panel_i == 0 {
                    series.label(t.label()).legend(legend_box(c));
                }
                let resolved = |i: usize| self.rows[i].4[panel_i];
                chart
                    .draw_series(bars.iter().map(|(i, v)| {
                        let text = if resolved(*i) {
                            fmt_num(*v)
                        } else {
                            format!("~{}", fmt_num(*v))
                        };
                        Text::new(
                            text,
                            (*i as f64, v + max * 0.015),
                            (FONT, LABEL_PX - 3)
                                .into_font()
                                .color(&BLACK)
                                .pos(Pos::new(HPos::Center, VPos::Bottom)),
                        )
                    }))
                    .ctx()?;
            }
            for (i, v) in values.iter().enumerate() {
                if v.is_none() {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            "n/a",
                            (i as f64, max * 0.015),
                            (FONT, LABEL_PX - 3)
                                .into_font()
                                .color(&BLACK)
                                .pos(Pos::new(HPos::Center, VPos::Bottom)),
                        )))
                        .ctx()?;
                }
            }
            if panel_i == 0 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.9))
                    .border_style(BLACK)
                    .label_font((FONT, LEGEND_PX - 1))
                    .draw()
                    .ctx()?;
            }
        }
        Ok(())
    }
}
