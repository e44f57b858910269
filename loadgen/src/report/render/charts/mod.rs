//! The six charts (and the capacity chart when the data has one), drawn with plotters into PNG and SVG.
//!
//! Text is rendered with plotters' pure-Rust `ab_glyph` backend and the committed DejaVu Sans
//! (`loadgen/assets/`, Bitstream Vera licence), so a fresh machine needs no fontconfig or
//! freetype. Each transport has one colour (Okabe-Ito, readable by colour-blind eyes) on every
//! chart; byte kinds in chart 1 use a separate set so the two never collide. Every chart has a
//! title, axis labels with units and a legend. Each chart is prepared once from the data (a
//! struct implementing [`Drawing`]) and drawn twice, once per backend.
//!
//! With `compare --repeat N` every chart draws figures, not one picked run: each point is the
//! median over the repeats ([`per_repeat`], [`combine_keyed`]), with min-max whiskers
//! ([`draw_whiskers`]) wherever the repeats differ.

mod bandwidth;
mod bytes;
mod capacity;
mod cost;
mod headers;
mod latency;
mod link;
mod rate;
mod requests;

use std::path::Path;
use std::sync::Once;

pub use link::{draw_link_charts, LINK_LOSS, LINK_RTT};

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, ValueFormatter};
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
use crate::report::data::{Dataset, Entry, ScenarioKey, Variant, MIN_SWEEP_RATES};
use crate::report::figures::{baseline_rows, scale_rows, RowFigures};
use crate::report::format::{fmt_num, Fig};
use crate::report::{Chart, ChartOutcome, ReportError};

pub(super) const SIZE: (u32, u32) = (1200, 720);
pub(super) const FONT: &str = "sans-serif";
pub(super) const TITLE_PX: u32 = 26;
pub(super) const LABEL_PX: u32 = 16;
pub(super) const DESC_PX: u32 = 18;
pub(super) const LEGEND_PX: u32 = 15;

static FONT_BYTES: &[u8] = include_bytes!("../../../../assets/DejaVuSans.ttf");
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
pub(super) const KINDS: [(&str, RGBColor); 6] = [
    ("payload", RGBColor(40, 40, 40)),
    ("envelope (topic, seq, ts, keys)", RGBColor(130, 130, 130)),
    ("HTTP headers", RGBColor(204, 121, 167)),
    ("framing", RGBColor(240, 228, 66)),
    ("handshake", RGBColor(140, 90, 60)),
    ("TCP/IP headers", RGBColor(185, 185, 235)),
];

pub(super) fn kind_values(b: &ByteSplit) -> [f64; 6] {
    [
        b.payload,
        b.envelope,
        b.headers,
        b.framing,
        b.handshake,
        b.tcpip,
    ]
}

pub(super) const ARTICLE_COLOUR: RGBColor = RGBColor(0, 0, 0);
pub(super) const ARTICLE_WS_COLOUR: RGBColor = RGBColor(110, 110, 110);

pub(super) type DrawResult = Result<(), String>;

pub(super) trait Ctx<T> {
    fn ctx(self) -> Result<T, String>;
}

impl<T, E: std::fmt::Debug> Ctx<T> for Result<T, E> {
    fn ctx(self) -> Result<T, String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// A chart prepared from the data, drawable on any backend.
pub(super) trait Drawing {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

fn render(chart: Chart, dir: &Path, d: &impl Drawing) -> Result<ChartOutcome, ReportError> {
    render_stem(chart.stem(), chart.stem(), dir, d)
}

/// Draws `d` into `dir/STEM.png` and `dir/STEM.svg`; errors name `chart`.
fn render_stem(
    stem: &str,
    chart: &'static str,
    dir: &Path,
    d: &impl Drawing,
) -> Result<ChartOutcome, ReportError> {
    register();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let err = |message: String| ReportError::Chart { chart, message };
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
    let rows = baseline_rows(data);
    let skip = |why: &str| Ok(ChartOutcome::Skipped(why.to_string()));
    match chart {
        Chart::BytesPerMessage => {
            if rows.is_empty() {
                return skip("no baseline scenario");
            }
            render(chart, dir, &bytes::BytesChart::new(&rows))
        }
        Chart::LatencySpectrum => {
            let Some(b) = data.baseline() else {
                return skip("no baseline scenario");
            };
            render(chart, dir, &latency::LatencyChart::new(data, &b.key))
        }
        Chart::RequestsPerMessage => {
            if rows.is_empty() {
                return skip("no baseline scenario");
            }
            render(chart, dir, &requests::RequestsChart::new(&rows))
        }
        Chart::BandwidthVsClients => render(chart, dir, &bandwidth::BandwidthChart::new(data)),
        Chart::RateSweep => match data.rate_sweep() {
            Some(s) if s.distinct_rates() >= MIN_SWEEP_RATES => {
                render(chart, dir, &rate::RateChart::new(data, &s))
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
            let Some((scenario, rows)) = scale_rows(data) else {
                return skip("no scenario with two transports or more");
            };
            let c = cost::CostChart::new(scenario, &rows);
            if !c.has_figures() {
                return skip("the target reported no server CPU or memory figures");
            }
            render(chart, dir, &c)
        }
        Chart::HeaderBytes => {
            let rows = crate::report::protocols::header_bytes(data);
            if !rows.iter().any(|r| r.stack.http2) {
                return skip("no HTTP/2 run that counted header bytes per request");
            }
            render(chart, dir, &headers::HeaderChart::new(data, rows))
        }
        Chart::Capacity => match data.capacity.last() {
            Some((_, c)) => render(chart, dir, &capacity::CapacityChart::new(c)),
            None => skip("no capacity file in the data (pushlab-loadgen capacity --out)"),
        },
    }
}

/// `f` of the dataset of each repeat, in repeat order (one dataset when nothing was repeated:
/// see [`Dataset::repeats`]).
pub(super) fn per_repeat<T>(data: &Dataset, f: impl Fn(&Dataset) -> T) -> Vec<T> {
    data.repeats().iter().map(f).collect()
}

/// Combines keyed values measured in each repeat into one [`Fig`] (median, min, max) per key and
/// value, over the repeats that have the key. Keys keep the order they first appear in.
pub(super) fn combine_keyed<K: PartialEq + Clone, const N: usize>(
    per_repeat: &[Vec<(K, [f64; N])>],
) -> Vec<(K, [Fig; N])> {
    let mut keys: Vec<K> = Vec::new();
    for (k, _) in per_repeat.iter().flatten() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys.into_iter()
        .map(|k| {
            let values: Vec<[f64; N]> = per_repeat
                .iter()
                .flatten()
                .filter(|(key, _)| *key == k)
                .map(|(_, v)| *v)
                .collect();
            let figs = std::array::from_fn(|i| Fig::over(values.iter().map(|v| v[i])));
            (k, figs)
        })
        .collect()
}

/// The caption suffix saying what a point is when the data holds repeats.
pub(super) fn repeats_note(data: &Dataset) -> String {
    match data.repeat_count() {
        0 | 1 => String::new(),
        n => format!("; median of {n} repeats, whiskers min-max"),
    }
}

/// Vertical min-max whiskers at `(x, fig)` for every figure whose repeats differ.
pub(super) fn draw_whiskers<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    points: &[(f64, Fig)],
    colour: RGBColor,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = colour.stroke_width(2);
    let spread = || points.iter().filter(|(_, f)| f.has_spread());
    chart
        .draw_series(spread().map(|(x, f)| PathElement::new(vec![(*x, f.min), (*x, f.max)], style)))
        .ctx()?;
    let cap =
        |x: f64, y: f64| EmptyElement::at((x, y)) + PathElement::new(vec![(-6, 0), (6, 0)], style);
    chart
        .draw_series(spread().flat_map(|(x, f)| [cap(*x, f.min), cap(*x, f.max)]))
        .ctx()?;
    Ok(())
}

/// Category labels as lines: the transport, then the variant (if any) below it.
pub(super) fn category_lines(t: Transport, v: Variant) -> Vec<String> {
    let mut lines = vec![t.label().to_string()];
    if v.keep_alive_off {
        lines.push("no keep-alive".into());
    }
    if v.browser_headers {
        lines.push("browser hdrs".into());
    }
    if v.http2 || v.tls {
        lines.push(v.protocol().into());
    }
    lines
}

/// Draws category labels centred under each bar, one line per entry of `labels[i]`, on `area`
/// (which holds the chart whose plotting area is `plot`). Plotters' own tick labels are one
/// line and collide when variants make them long.
pub(super) fn draw_category_labels<DB: DrawingBackend, CT: CoordTranslate>(
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
pub(super) struct KeyAxis {
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
pub(super) fn index_axis(n: usize) -> KeyAxis {
    KeyAxis {
        lo: -0.6,
        hi: n as f64 - 0.4,
        keys: (0..n).map(|i| i as f64).collect(),
    }
}

pub(super) fn legend_box(colour: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], colour.filled())
}

/// Draws the legend of `chart` at `pos` in `px` type, on a white box with a black border: the
/// same legend on every chart.
pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
    px: u32,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, px))
        .draw()
        .ctx()
}

/// The mesh of a chart with one category per bar on x: no x grid or tick labels (the
/// categories are drawn under the bars by [`draw_category_labels`]), numbers on y.
pub(super) fn draw_category_mesh<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<KeyAxis, Y>>,
    x_desc: &str,
    y_desc: &str,
    desc_px: u32,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, LABEL_PX - 2))
        .axis_desc_style((FONT, desc_px))
        .draw()
        .ctx()
}

/// Nice upper bound for a linear axis.
pub(super) fn headroom(max: f64) -> f64 {
    if max > 0.0 {
        max * 1.18
    } else {
        1.0
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::report::fixture;

    /// Three repeats; repeat k multiplies latency and payload bytes by k.
    pub(in crate::report::render::charts) fn repeated() -> Dataset {
        Dataset::from_runs(fixture::repeated(3, &[0.1, 1.0, 10.0, 100.0]))
    }

    /// `f` is the median of the values k * x for k = 1, 2, 3: twice its min, its max three times.
    pub(in crate::report::render::charts) fn is_median_of_three_scales(f: Fig) -> bool {
        f.min > 0.0 && (f.median / f.min - 2.0).abs() < 1e-6 && (f.max / f.min - 3.0).abs() < 1e-6
    }

    #[test]
    fn combine_keyed_takes_median_min_and_max_per_key_over_repeats_that_have_it() {
        let per = vec![
            vec![("a", [1.0]), ("b", [5.0])],
            vec![("a", [3.0])],
            vec![("c", [7.0]), ("a", [2.0])],
        ];
        let c = combine_keyed(&per);
        let keys: Vec<&str> = c.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(
            c[0].1[0],
            Fig {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(c[1].1[0], Fig::of(5.0));
        assert_eq!(c[2].1[0], Fig::of(7.0));
    }

    #[test]
    fn a_single_run_has_no_repeats_note() {
        let data = Dataset::from_runs(fixture::compare_like());
        assert_eq!(repeats_note(&data), "");
        assert_eq!(
            repeats_note(&repeated()),
            "; median of 3 repeats, whiskers min-max"
        );
    }
}
