//! Chart 7 (when the data has a capacity file): clients held at the SLO, per transport, one
//! bar each, labelled with the count and the latency at that step; a transport that held no
//! step shows 0 and why.

use super::*;
use crate::capacity::CapacityResult;

pub(super) struct CapacityChart {
    /// (transport, clients held, the label over the bar).
    rows: Vec<(Transport, f64, String)>,
    title: String,
    x_desc: String,
}

impl CapacityChart {
    pub(super) fn new(c: &CapacityResult) -> CapacityChart {
        let rows = c
            .transports
            .iter()
            .map(|t| {
                let label = match &t.at_held {
                    Some(h) => format!(
                        "{} (p99 {} ms)",
                        fmt_num(t.held_clients as f64),
                        fmt_num(h.p99_us as f64 / 1000.0)
                    ),
                    None => "0: held no step".into(),
                };
                (t.transport, t.held_clients as f64, label)
            })
            .collect();
        CapacityChart {
            rows,
            title: format!(
                "Clients held at the SLO ({}, {} msg/s), per transport",
                c.slo.describe(),
                fmt_num(c.rate_per_s)
            ),
            x_desc: format!(
                "transport (steps of {} clients up to {}, {} s each; a step holds with no loss and the SLO kept)",
                c.step,
                c.max,
                fmt_num(c.duration_s)
            ),
        }
    }
}

impl Drawing for CapacityChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let n = self.rows.len();
        let hi = headroom(self.rows.iter().map(|r| r.1).fold(0.0, f64::max));
        let labels: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| vec![r.0.label().to_string()])
            .collect();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_PX - 4))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(index_axis(n), 0.0..hi)
            .ctx()?;
        draw_category_mesh(&mut chart, &self.x_desc, "clients held", DESC_PX)?;
        draw_category_labels(
            root,
            chart.plotting_area(),
            &index_axis(n),
            &labels,
            LABEL_PX,
        )?;
        chart
            .draw_series(self.rows.iter().enumerate().map(|(i, r)| {
                let x = i as f64;
                Rectangle::new(
                    [(x - 0.3, 0.0), (x + 0.3, r.1)],
                    transport_colour(r.0).filled(),
                )
            }))
            .ctx()?;
        for (i, r) in self.rows.iter().enumerate() {
            chart
                .draw_series(std::iter::once(Text::new(
                    r.2.clone(),
                    (i as f64, r.1 + hi * 0.01),
                    (FONT, LABEL_PX - 1)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .ctx()?;
        }
        Ok(())
    }
}
