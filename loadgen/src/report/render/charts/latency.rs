//! Chart 2: the latency percentile spectrum, p50 to p99.99 on log axes, from each transport's
//! HDR histogram (or its percentile fields where a file has no histogram).

use super::*;

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
pub(super) struct LatencyChart {
    /// (transport, (nines, ms) points, whether they came from the histogram)
    series: Vec<LatencySeries>,
    scenario: String,
}

impl LatencyChart {
    pub(super) fn new(entries: &[&Entry], scenario: &str) -> LatencyChart {
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
        draw_legend(&mut chart, SeriesLabelPosition::MiddleRight, LEGEND_PX)?;
        Ok(())
    }
}
