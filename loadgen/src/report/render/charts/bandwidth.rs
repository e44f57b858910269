//! Chart 4: bandwidth at 1 msg/s per client against clients, the article's table beside this
//! lab's projections and measured points.

use plotters::coord::combinators::LogCoord;

use super::*;

/// Chart 4: bandwidth against clients beside the article's table.
pub(super) struct BandwidthChart {
    /// Projections from the median bytes per message over repeats, with the run's clients.
    projections: Vec<(Projection, f64)>,
    /// Header and framing bytes only, the article's count: polling and WebSocket.
    overhead: Vec<Projection>,
    /// (transport, clients, Mibit/s over repeats) measured at ~1 msg/s.
    measured: Vec<(Transport, f64, Fig)>,
    /// What a point is when the data holds repeats (empty otherwise).
    note: String,
}

/// One repeat's figures, keyed by (label, transport): projections' [bytes per message,
/// clients], overheads' [bytes per message], measurements' [clients, Mibit/s].
type Keyed<const N: usize> = Vec<((String, Transport), [f64; N])>;

/// The figures of chart 4 in one repeat's dataset.
fn of_repeat(data: &Dataset) -> (Keyed<2>, Keyed<1>, Keyed<2>) {
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
        let clients = e.result.clients as f64;
        projections.push(((label, t), [e.result.bytes_per_message.total(), clients]));
        if (rate - 1.0).abs() < 0.05 && e.wall_s() > 0.0 {
            let mibit = e.result.bytes_total.total() * 8.0 / e.wall_s() / MIBIT;
            measured.push(((e.label(), t), [clients, mibit]));
        }
    }
    let mut overhead = Vec::new();
    let poll = article_entry(data, Transport::Poll, Variant::BROWSER)
        .or_else(|| article_entry(data, Transport::Poll, Variant::DEFAULT));
    for e in poll
        .into_iter()
        .chain(article_entry(data, Transport::Ws, Variant::DEFAULT))
    {
        let label = format!(
            "{}: headers+framing only (the article's count), projected",
            e.label()
        );
        overhead.push(((label, e.transport()), [e.steady_overhead_per_message()]));
    }
    (projections, overhead, measured)
}

impl BandwidthChart {
    /// Chart 4 from `data`: the median over repeats of each projection's bytes per message and
    /// of each measured bandwidth (min-max kept for whiskers).
    pub(super) fn new(data: &Dataset) -> BandwidthChart {
        let (mut p, mut o, mut m) = (Vec::new(), Vec::new(), Vec::new());
        for (pr, ov, me) in per_repeat(data, of_repeat) {
            p.push(pr);
            o.push(ov);
            m.push(me);
        }
        let projection = |label: String, transport: Transport, bytes: Fig| Projection {
            label,
            transport,
            bytes_per_message: bytes.v(),
            rate_per_s: 1.0,
        };
        BandwidthChart {
            projections: combine_keyed(&p)
                .into_iter()
                .map(|((l, t), [b, c])| (projection(l, t, b), c.v()))
                .collect(),
            overhead: combine_keyed(&o)
                .into_iter()
                .map(|((l, t), [b])| projection(l, t, b))
                .collect(),
            measured: combine_keyed(&m)
                .into_iter()
                .map(|((_, t), [c, mibit])| (t, c.v(), mibit))
                .collect(),
            note: repeats_note(data),
        }
    }
}

impl BandwidthChart {
    /// The axes' ranges: every article point, projection and measurement, with room.
    fn bounds(&self) -> ((f64, f64), (f64, f64)) {
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
        ys.extend(self.measured.iter().flat_map(|m| [m.2.min, m.2.max]));
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
        ((x_lo, x_hi), (y_lo, y_hi))
    }
}

/// The plot area of chart 4: log clients against log Mibit/s.
type LogLog = Cartesian2d<LogCoord<f64>, LogCoord<f64>>;

/// The article's two lines, with their points labelled.
fn draw_article<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, LogLog>,
) -> DrawResult {
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
    Ok(())
}

impl Drawing for BandwidthChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let ((x_lo, x_hi), (y_lo, y_hi)) = self.bounds();
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
        draw_article(&mut chart)?;
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
                    Circle::new((*clients, mibit.v()), 6, transport_colour(*t).filled())
                }))
                .ctx()?
                .label(format!(
                    "measured (dots, at the run's client count{})",
                    self.note
                ))
                .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.filled()));
            for (t, clients, mibit) in &self.measured {
                draw_whiskers(&mut chart, &[(*clients, *mibit)], transport_colour(*t))?;
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, LEGEND_PX)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::repeated;
    use super::*;

    #[test]
    fn measured_bandwidth_is_the_median_over_repeats_with_min_and_max() {
        let chart = BandwidthChart::new(&repeated());
        assert!(!chart.measured.is_empty());
        for (t, _, mibit) in &chart.measured {
            assert!(
                mibit.min < mibit.median && mibit.median < mibit.max,
                "{t:?}: {mibit:?}"
            );
        }
        // One projection per wanted entry, not one per repeat.
        let labels: Vec<&str> = chart
            .projections
            .iter()
            .map(|p| p.0.label.as_str())
            .collect();
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(labels, unique);
        assert!(chart.note.contains("3 repeats"));
    }
}
