//! Chart 6: server cost by transport at the largest scale in the data: CPU per delivery and
//! per connect (top), memory per open connection in user space (heap, RSS growth) and in the
//! kernel (socket buffers) side by side (bottom). A figure the result lacks is drawn as `n/a`
//! and the reason from the file is printed under the panel.

use super::*;
use crate::report::format::Fig;

/// One kind of bar in a panel: its name and how light its shade of the transport's colour is.
struct Series {
    name: &'static str,
    shade: f64,
    values: Vec<Option<f64>>,
}

/// One panel: a group of bars per transport.
struct Panel {
    caption: &'static str,
    y_desc: &'static str,
    series: Vec<Series>,
}

pub(super) struct CostChart {
    labels: Vec<Vec<String>>,
    transports: Vec<Transport>,
    panels: [Panel; 2],
    scenario: String,
    /// Why figures are `n/a`, from the result files.
    missing: String,
}

impl CostChart {
    pub(super) fn new(scenario: String, rows: &[RowFigures]) -> CostChart {
        let take = |f: fn(&RowFigures) -> Option<Fig>, scale: f64| -> Vec<Option<f64>> {
            rows.iter().map(|r| f(r).map(|v| v.v() / scale)).collect()
        };
        let mut missing: Vec<String> = rows
            .iter()
            .map(|r| r.unavailable.clone())
            .filter(|w| !w.is_empty())
            .collect();
        missing.dedup();
        CostChart {
            labels: rows
                .iter()
                .map(|r| category_lines(r.transport, r.variant))
                .collect(),
            transports: rows.iter().map(|r| r.transport).collect(),
            panels: [
                Panel {
                    caption: "Server CPU per delivered message and per connect",
                    y_desc: "server CPU, us",
                    series: vec![
                        Series {
                            name: "per delivery",
                            shade: 1.0,
                            values: take(|r| r.cpu_us_per_delivery, 1.0),
                        },
                        Series {
                            name: "per connect",
                            shade: 0.45,
                            values: take(|r| r.cpu_us_per_connect, 1.0),
                        },
                    ],
                },
                Panel {
                    caption: "Server memory per open connection: user space and kernel",
                    y_desc: "KiB per connection",
                    series: vec![
                        Series {
                            name: "heap (allocator in use)",
                            shade: 1.0,
                            values: take(|r| r.heap_bytes_per_connection, 1024.0),
                        },
                        Series {
                            name: "RSS growth",
                            shade: 0.55,
                            values: take(|r| r.rss_bytes_per_connection, 1024.0),
                        },
                        Series {
                            name: "kernel socket memory",
                            shade: 0.25,
                            values: take(|r| r.kernel_bytes_per_connection, 1024.0),
                        },
                    ],
                },
            ],
            scenario,
            missing: missing.join("; "),
        }
    }

    /// Whether any bar has a figure (else the chart is skipped).
    pub(super) fn has_figures(&self) -> bool {
        self.panels
            .iter()
            .flat_map(|p| &p.series)
            .any(|s| s.values.iter().any(Option::is_some))
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &Panel,
    ) -> DrawResult {
        let n = self.labels.len();
        let max = panel
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .copied()
            .fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(panel.caption, (FONT, DESC_PX + 2))
            .margin(15)
            .x_label_area_size(42)
            .y_label_area_size(80)
            // Room above the bars for the legend.
            .build_cartesian_2d(index_axis(n), 0.0..headroom(max) * 1.35)
            .ctx()?;
        draw_category_mesh(&mut chart, "", panel.y_desc, DESC_PX - 2)?;
        draw_category_labels(
            area,
            chart.plotting_area(),
            &index_axis(n),
            &self.labels,
            LABEL_PX - 3,
        )?;
        let width = 0.8 / panel.series.len() as f64;
        let text_style = (FONT, LABEL_PX - 4)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (k, series) in panel.series.iter().enumerate() {
            let x0 = |i: usize| i as f64 - 0.4 + k as f64 * width;
            let bars = series.values.iter().enumerate().filter_map(|(i, v)| {
                let colour = transport_colour(self.transports[i]).mix(series.shade);
                v.map(|v| Rectangle::new([(x0(i), 0.0), (x0(i) + width * 0.9, v)], colour.filled()))
            });
            let grey = RGBColor(60, 60, 60).mix(series.shade);
            chart
                .draw_series(bars)
                .ctx()?
                .label(series.name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], grey.filled()));
            let texts = series.values.iter().enumerate().map(|(i, v)| {
                let (text, y) = match v {
                    Some(v) => (fmt_num(*v), *v + max * 0.015),
                    None => ("n/a".to_string(), max * 0.015),
                };
                Text::new(text, (x0(i) + width * 0.45, y), text_style.clone())
            });
            chart.draw_series(texts).ctx()?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, LEGEND_PX - 1)
    }
}

impl Drawing for CostChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let titled = root
            .titled(
                &format!("Server cost by transport ({})", self.scenario),
                (FONT, TITLE_PX - 4),
            )
            .ctx()?;
        let (body, footer) = if self.missing.is_empty() {
            (titled.clone(), None)
        } else {
            let (b, f) = titled.split_vertically(titled.dim_in_pixel().1 - 24);
            (b, Some(f))
        };
        let panels = body.split_evenly((2, 1));
        for (area, panel) in panels.iter().zip(&self.panels) {
            self.draw_panel(area, panel)?;
        }
        if let Some(f) = footer {
            f.draw(&Text::new(
                format!("n/a: {}", self.missing),
                (20, 4),
                (FONT, LABEL_PX - 3).into_font().color(&BLACK),
            ))
            .ctx()?;
        }
        Ok(())
    }
}
