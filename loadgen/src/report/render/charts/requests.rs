//! Chart 3: HTTP requests and TCP connects per delivered message, log scale.

use super::*;

/// Chart 3: HTTP requests and TCP connects per delivered message.
pub(super) struct RequestsChart {
    rows: Vec<(Vec<String>, Transport, f64, f64)>,
    scenario: String,
    /// Messages each client received in the baseline run (what a persistent connection's one
    /// request is spread over).
    messages_per_client: f64,
}

impl RequestsChart {
    pub(super) fn new(rows: &[RowFigures]) -> RequestsChart {
        RequestsChart {
            rows: rows
                .iter()
                .map(|r| {
                    (
                        category_lines(r.transport, r.variant),
                        r.transport,
                        r.requests_per_message.v(),
                        r.connects_per_message.v(),
                    )
                })
                .collect(),
            scenario: rows.first().map(|r| r.scenario.clone()).unwrap_or_default(),
            messages_per_client: rows
                .first()
                .map(|r| r.messages_per_client.v())
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
        draw_category_mesh(
            &mut chart,
            &format!(
                "transport (SSE, stream, WebSocket: one request per client, spread over the {} messages each received)",
                fmt_num(self.messages_per_client)
            ),
            "per delivered message (log scale)",
            DESC_PX,
        )?;
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
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, LEGEND_PX)?;
        Ok(())
    }
}
