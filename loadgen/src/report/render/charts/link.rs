//! The link charts (issue 11): p50 and p99 per transport against the link's RTT, and against
//! its loss, one pair per publish rate, with the model's expected p50 drawn beside each as a
//! dotted line.

use std::collections::BTreeMap;

use super::*;
use crate::report::link::LinkPoint;

/// (x, p50 ms, p99 ms, expected p50 ms)
type Xy = (f64, f64, f64, f64);

/// Latency against one link variable.
pub struct LinkChart {
    title: String,
    x_desc: &'static str,
    series: Vec<(Transport, Vec<Xy>)>,
}

impl LinkChart {
    /// Against RTT (`x` = RTT ms) or loss (`x` = loss %), from a series of
    /// [`crate::report::link`].
    pub fn new(
        title: String,
        x_desc: &'static str,
        series: &BTreeMap<Transport, Vec<&LinkPoint>>,
        x: fn(&LinkPoint) -> f64,
    ) -> LinkChart {
        LinkChart {
            title,
            x_desc,
            series: series
                .iter()
                .map(|(t, pts)| {
                    let v = pts
                        .iter()
                        .map(|p| (x(p), p.p50_ms, p.p99_ms, p.expected_p50_ms))
                        .collect();
                    (*t, v)
                })
                .collect(),
        }
    }
}

/// Latency floor of the log axis, ms: a 0 ms expectation is drawn there.
const FLOOR_MS: f64 = 0.1;

impl Drawing for LinkChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let all = self.series.iter().flat_map(|s| s.1.iter());
        let x_hi = all.clone().map(|p| p.0).fold(0.0f64, f64::max).max(1.0);
        let y_hi = all
            .clone()
            .flat_map(|p| [p.1, p.2, p.3])
            .fold(1.0f64, f64::max);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_PX - 6))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..x_hi * 1.05, (FLOOR_MS..y_hi * 2.0).log_scale())
            .ctx()?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .x_desc(self.x_desc)
            .y_desc("publish to deliver, ms (log): p50 solid, p99 dashed, expected p50 dotted")
            .label_style((FONT, LABEL_PX - 1))
            .axis_desc_style((FONT, DESC_PX - 3))
            .draw()
            .ctx()?;
        for (t, points) in &self.series {
            let c = transport_colour(*t);
            let at = |f: fn(&Xy) -> f64| -> Vec<(f64, f64)> {
                points.iter().map(|p| (p.0, f(p).max(FLOOR_MS))).collect()
            };
            let p50 = at(|p| p.1);
            chart
                .draw_series(LineSeries::new(p50.clone(), c.stroke_width(3)))
                .ctx()?
                .label(t.label())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            chart
                .draw_series(p50.iter().map(|p| Circle::new(*p, 4, c.filled())))
                .ctx()?;
            chart
                .draw_series(DashedLineSeries::new(at(|p| p.2), 8, 5, c.stroke_width(2)))
                .ctx()?;
            chart
                .draw_series(DashedLineSeries::new(at(|p| p.3), 2, 4, c.stroke_width(2)))
                .ctx()?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight, LEGEND_PX - 1)?;
        Ok(())
    }
}

/// Draws the link charts that `points` support into `dir`, one pair per publish rate R
/// (`link_rtt_rR`, `link_loss_rR`, e.g. `link_rtt_r10`), returning each drawn chart's stem,
/// slowest rate first; none without link data.
pub fn draw_link_charts(points: &[LinkPoint], dir: &Path) -> Result<Vec<String>, ReportError> {
    use crate::report::link::{loss_series, rates, rtt_series};
    let mut drawn = Vec::new();
    for rate in rates(points) {
        let rtt = rtt_series(points, rate);
        if !rtt.is_empty() {
            let c = LinkChart::new(
                format!(
                    "Latency against the link's RTT (no loss, {} msg/s)",
                    fmt_num(rate)
                ),
                "round-trip time the link adds, ms",
                &rtt,
                |p| p.rtt_ms,
            );
            let stem = format!("{LINK_RTT}_r{}", fmt_num(rate));
            render_stem(&stem, LINK_RTT, dir, &c)?;
            drawn.push(stem);
        }
        if let Some((at_rtt, loss)) = loss_series(points, rate) {
            let c = LinkChart::new(
                format!(
                    "Latency against the link's loss (RTT {} ms, {} msg/s)",
                    fmt_num(at_rtt),
                    fmt_num(rate)
                ),
                "packets lost per direction, %",
                &loss,
                |p| p.loss_ratio * 100.0,
            );
            let stem = format!("{LINK_LOSS}_r{}", fmt_num(rate));
            render_stem(&stem, LINK_LOSS, dir, &c)?;
            drawn.push(stem);
        }
    }
    Ok(drawn)
}

/// File stem prefixes of the link charts (the rate follows: `link_rtt_r1`).
pub const LINK_RTT: &str = "link_rtt";
pub const LINK_LOSS: &str = "link_loss";
