//! Chart 1: wire bytes per delivered message, stacked by kind (payload, envelope, headers,
//! framing, handshake, TCP/IP), one bar per transport and variant of the baseline.

use super::*;

/// Chart 1: wire bytes per delivered message, stacked by kind.
pub(super) struct BytesChart {
    rows: Vec<(Vec<String>, Transport, ByteSplit)>,
    scenario: String,
}

impl BytesChart {
    pub(super) fn new(rows: &[RowFigures]) -> BytesChart {
        BytesChart {
            rows: rows
                .iter()
                .map(|r| {
                    (
                        category_lines(r.transport, r.variant),
                        r.transport,
                        r.bytes_per_message(),
                    )
                })
                .collect(),
            scenario: rows.first().map(|r| r.scenario.clone()).unwrap_or_default(),
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
        draw_category_mesh(
            &mut chart,
            "transport (bar outline and total in the transport's colour)",
            "bytes per delivered message, both directions",
            DESC_PX,
        )?;
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
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, LEGEND_PX)?;
        Ok(())
    }
}
