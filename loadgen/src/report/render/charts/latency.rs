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

/// One transport's line: (transport, (nines, ms) points, from the histogram in every repeat?).
type LatencySeries = (Transport, Vec<(f64, Fig)>, bool);

/// Chart 2: latency percentile spectrum.
pub(super) struct LatencyChart {
    /// (transport, (nines, ms over repeats) points, whether they came from histograms)
    series: Vec<LatencySeries>,
    scenario: String,
}

/// (nines, ms) samples of `e` along its HDR histogram, if it has one.
fn histogram_samples(e: &Entry) -> Option<Vec<(f64, f64)>> {
    let h = e.histogram().filter(|h| !h.is_empty())?;
    let steps = 80;
    let lo = nines(0.5);
    let hi = nines(0.9999);
    let points = (0..=steps)
        .map(|i| {
            let x = lo + (hi - lo) * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect();
    Some(points)
}

/// (nines, ms) samples of `e` at its percentile fields.
fn field_samples(e: &Entry) -> Vec<(f64, f64)> {
    let l = &e.result.latency_us;
    let v = [l.p50, l.p90, l.p99, l.p999, l.p9999];
    MARKED_QUANTILES
        .iter()
        .zip(v)
        .map(|((q, _), us)| (nines(*q), us as f64 / 1000.0))
        .collect()
}

impl LatencyChart {
    /// The baseline scenario `key` of each repeat of `data`, each point the median over repeats.
    /// A transport is drawn from histograms only when every repeat has one.
    pub(super) fn new(data: &Dataset, key: &ScenarioKey) -> LatencyChart {
        // (transport, histogram samples if any, percentile-field samples) of each repeat.
        type Sampled = (Transport, Option<Vec<(f64, f64)>>, Vec<(f64, f64)>);
        let sampled: Vec<Vec<Sampled>> = per_repeat(data, |d| {
            let Some(m) = d.default_scenarios().remove(key) else {
                return Vec::new();
            };
            m.into_iter()
                .map(|(t, e)| (t, histogram_samples(e), field_samples(e)))
                .collect()
        });
        let mut series = Vec::new();
        for t in Transport::ALL {
            let of_t: Vec<&Sampled> = sampled.iter().flatten().filter(|x| x.0 == t).collect();
            if of_t.is_empty() {
                continue;
            }
            let from_hist = of_t.iter().all(|x| x.1.is_some());
            let per: Vec<Vec<(f64, [f64; 1])>> = of_t
                .iter()
                .map(|x| {
                    let pts = if from_hist { x.1.as_ref() } else { None };
                    let pts = pts.unwrap_or(&x.2);
                    pts.iter().map(|(q, ms)| (*q, [*ms])).collect()
                })
                .collect();
            let points = combine_keyed(&per)
                .into_iter()
                .map(|(x, [ms])| (x, ms))
                .collect();
            series.push((t, points, from_hist));
        }
        LatencyChart {
            series,
            scenario: format!("{}{}", key.describe(), repeats_note(data)),
        }
    }
}

impl Drawing for LatencyChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let all = self
            .series
            .iter()
            .flat_map(|s| s.1.iter().flat_map(|p| [p.1.min, p.1.max]));
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
            let medians: Vec<(f64, f64)> = points.iter().map(|(x, f)| (*x, f.v())).collect();
            chart
                .draw_series(LineSeries::new(medians.clone(), c.stroke_width(3)))
                .ctx()?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            let is_mark = |x: f64| {
                MARKED_QUANTILES
                    .iter()
                    .any(|(q, _)| (nines(*q) - x).abs() < 0.02)
            };
            chart
                .draw_series(
                    medians
                        .iter()
                        .filter(|p| is_mark(p.0))
                        .map(|p| Circle::new(*p, 4, c.filled())),
                )
                .ctx()?;
            let marked: Vec<(f64, Fig)> = points.iter().filter(|p| is_mark(p.0)).copied().collect();
            draw_whiskers(&mut chart, &marked, c)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::MiddleRight, LEGEND_PX)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{is_median_of_three_scales, repeated};
    use super::*;

    #[test]
    fn every_point_is_the_median_over_repeats_with_min_and_max() {
        let data = repeated();
        let key = data.baseline().expect("baseline").key;
        let chart = LatencyChart::new(&data, &key);
        assert_eq!(chart.series.len(), Transport::ALL.len());
        for (t, points, from_hist) in &chart.series {
            assert!(!from_hist, "the fixture's repeats have no histogram");
            assert_eq!(points.len(), MARKED_QUANTILES.len());
            for (_, f) in points {
                assert!(is_median_of_three_scales(*f), "{t:?}: {f:?}");
            }
        }
    }
}
