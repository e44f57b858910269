//! Chart 5: latency and bytes per message against publish rate (the rate sweep).

use super::*;

/// (rate msg/s, p50 ms, p99 ms, bytes per message), each over repeats.
type RatePoint = (f64, Fig, Fig, Fig);

/// One repeat's sweep point: ((transport, rate msg/s), [p50 ms, p99 ms, bytes per message]).
type RepeatPoint = ((Transport, f64), [f64; 3]);

/// Chart 5: latency and bytes per message against publish rate.
pub(super) struct RateChart {
    /// (transport, [(rate, p50 ms, p99 ms, bytes per message)])
    series: Vec<(Transport, Vec<RatePoint>)>,
    scenario: String,
}

impl RateChart {
    /// The sweep `s` of `data`, each point the median over the repeats whose sweep is the same
    /// group (clients, payload, poll interval); points that delivered nothing are left out.
    pub(super) fn new(data: &Dataset, s: &crate::report::data::RateSweep<'_>) -> RateChart {
        let group = (s.clients, s.payload_bytes, s.poll_interval_ms);
        let per: Vec<Vec<RepeatPoint>> = per_repeat(data, |d| {
            let Some(rs) = d
                .rate_sweep()
                .filter(|r| (r.clients, r.payload_bytes, r.poll_interval_ms) == group)
            else {
                return Vec::new();
            };
            rs.series
                .iter()
                .flat_map(|(t, pts)| pts.iter().map(move |(r, e)| (*t, *r, *e)))
                .filter(|(_, _, e)| e.result.delivered_messages > 0)
                .map(|(t, r, e)| {
                    let v = [
                        e.p50_ms().max(0.001),
                        e.p99_ms().max(0.001),
                        e.result.bytes_per_message.total(),
                    ];
                    ((t, r), v)
                })
                .collect()
        });
        let points = combine_keyed(&per);
        let series = Transport::ALL
            .iter()
            .filter_map(|t| {
                let mut v: Vec<RatePoint> = points
                    .iter()
                    .filter(|((pt, _), _)| pt == t)
                    .map(|((_, r), [p50, p99, b])| (*r, *p50, *p99, *b))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                (!v.is_empty()).then_some((*t, v))
            })
            .collect();
        RateChart {
            series,
            scenario: format!(
                "{} clients, {} B payload, poll every {} ms{}",
                s.clients,
                s.payload_bytes,
                s.poll_interval_ms,
                repeats_note(data)
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
        let bounds = |f: fn(&RatePoint) -> [f64; 2]| {
            let (lo, hi) = pts
                .clone()
                .flat_map(f)
                .filter(|v| *v > 0.0)
                .fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
            if lo == f64::MAX {
                (0.1, 10.0)
            } else {
                (lo / 2.0, hi * 2.0)
            }
        };
        let lat = {
            let (a, _) = bounds(|p| [p.1.min, p.1.max]);
            let (_, b) = bounds(|p| [p.2.min, p.2.max]);
            (a, b)
        };
        let bytes = bounds(|p| [p.3.min, p.3.max]);

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
                let main_figs: Vec<(f64, Fig)> = points
                    .iter()
                    .map(|p| (p.0, if panel_i == 0 { p.1 } else { p.3 }))
                    .collect();
                let main: Vec<(f64, f64)> = main_figs.iter().map(|(r, f)| (*r, f.v())).collect();
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
                draw_whiskers(&mut chart, &main_figs, c)?;
                if panel_i == 0 {
                    let p99: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.2.v())).collect();
                    chart
                        .draw_series(DashedLineSeries::new(p99, 8, 5, c.stroke_width(2)))
                        .ctx()?;
                    let p99_figs: Vec<(f64, Fig)> = points.iter().map(|p| (p.0, p.2)).collect();
                    draw_whiskers(&mut chart, &p99_figs, c)?;
                }
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, LEGEND_PX - 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{is_median_of_three_scales, repeated};
    use super::*;

    #[test]
    fn every_rate_is_the_median_over_repeats_with_min_and_max() {
        let data = repeated();
        let sweep = data.rate_sweep().expect("sweep");
        let chart = RateChart::new(&data, &sweep);
        assert_eq!(chart.series.len(), Transport::ALL.len());
        for (t, points) in &chart.series {
            let rates: Vec<f64> = points.iter().map(|p| p.0).collect();
            assert_eq!(rates, [0.1, 1.0, 10.0, 100.0], "{t:?}");
            for (_, p50, p99, bytes) in points {
                assert!(is_median_of_three_scales(*p50), "{t:?} p50 {p50:?}");
                assert!(is_median_of_three_scales(*p99), "{t:?} p99 {p99:?}");
                // Payload bytes scale with the repeat; the rest of the split does not.
                assert!(
                    bytes.min < bytes.median && bytes.median < bytes.max,
                    "{bytes:?}"
                );
            }
        }
    }
}
