//! Chart 7: header bytes of one poll request and response, HTTP/1.1 against HTTP/2 on a
//! connection's first exchange (HPACK's table empty: cold) and on later ones (warm), minimal and
//! browser headers. HTTP/1.1 resends its whole head every time, so its first and later heads
//! are one bar.

use super::*;
use crate::report::protocols::HeaderBytes;

const H1_COLOUR: RGBColor = RGBColor(120, 120, 120);
const COLD_COLOUR: RGBColor = RGBColor(213, 94, 0);
const WARM_COLOUR: RGBColor = RGBColor(0, 114, 178);

/// One bar: its group (0..4), slot in the group (0..3), value.
type Bar = (usize, usize, Fig);

/// Chart 7 (see the module doc).
pub(super) struct HeaderChart {
    bars: Vec<Bar>,
    groups: Vec<Vec<String>>,
    note: String,
}

impl HeaderChart {
    pub(super) fn new(data: &Dataset, rows: Vec<HeaderBytes>) -> HeaderChart {
        let mut bars = Vec::new();
        let groups: Vec<(bool, bool)> =
            [(true, false), (true, true), (false, false), (false, true)]
                .into_iter()
                .collect();
        for (g, &(request, browser)) in groups.iter().enumerate() {
            for r in rows.iter().filter(|r| r.browser == browser) {
                let (cold, warm) = if request {
                    (r.bytes[0], r.bytes[1])
                } else {
                    (r.bytes[2], r.bytes[3])
                };
                if r.stack.http2 {
                    bars.push((g, 1, cold));
                    bars.push((g, 2, warm));
                } else {
                    bars.push((g, 0, warm));
                }
            }
        }
        HeaderChart {
            bars,
            groups: groups
                .iter()
                .map(|&(request, browser)| {
                    vec![
                        if request { "request" } else { "response" }.to_string(),
                        if browser {
                            "browser headers"
                        } else {
                            "minimal headers"
                        }
                        .to_string(),
                    ]
                })
                .collect(),
            note: repeats_note(data),
        }
    }

    fn x(group: usize, slot: usize) -> f64 {
        group as f64 - 0.36 + slot as f64 * 0.24
    }
}

impl Drawing for HeaderChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let n = self.groups.len();
        let top = self.bars.iter().map(|b| b.2.max).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Header bytes per poll request and response, HTTP/1.1 vs HTTP/2{}",
                    self.note
                ),
                (FONT, TITLE_PX - 6),
            )
            .margin(20)
            .x_label_area_size(75)
            .y_label_area_size(80)
            .build_cartesian_2d(index_axis(n), 0.0..headroom(top))
            .ctx()?;
        draw_category_mesh(
            &mut chart,
            "short polling, baseline scenario (h2 over TLS carries the same HPACK blocks as h2c)",
            "header bytes (HTTP/1.1 head, or HPACK block)",
            DESC_PX,
        )?;
        draw_category_labels(
            root,
            chart.plotting_area(),
            &index_axis(n),
            &self.groups,
            LABEL_PX,
        )?;
        let colours = [H1_COLOUR, COLD_COLOUR, WARM_COLOUR];
        let names = [
            "HTTP/1.1 (every request alike)",
            "HTTP/2, first on a connection (cold HPACK table)",
            "HTTP/2, later (warm table)",
        ];
        for (slot, (colour, name)) in colours.into_iter().zip(names).enumerate() {
            let mine: Vec<&Bar> = self.bars.iter().filter(|b| b.1 == slot).collect();
            chart
                .draw_series(mine.iter().map(|&&(g, s, f)| {
                    let x0 = Self::x(g, s);
                    Rectangle::new([(x0, 0.0), (x0 + 0.22, f.v())], colour.filled())
                }))
                .ctx()?
                .label(name)
                .legend(legend_box(colour));
            let points: Vec<(f64, Fig)> = mine
                .iter()
                .map(|&&(g, s, f)| (Self::x(g, s) + 0.11, f))
                .collect();
            draw_whiskers(&mut chart, &points, BLACK)?;
        }
        for &(g, slot, f) in &self.bars {
            chart
                .draw_series(std::iter::once(Text::new(
                    fmt_num(f.v()),
                    (Self::x(g, slot) + 0.11, f.v() + top * 0.01),
                    (FONT, LABEL_PX - 3)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .ctx()?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, LEGEND_PX)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn bars_hold_h1_once_and_h2_cold_and_warm() {
        let data = Dataset::from_runs(fixture::compare_with_http2());
        let rows = crate::report::protocols::header_bytes(&data);
        let c = HeaderChart::new(&data, rows);
        // Four groups of three bars: HTTP/1.1, h2 cold, h2 warm.
        assert_eq!(c.bars.len(), 12);
        let req_browser: Vec<f64> = c
            .bars
            .iter()
            .filter(|b| b.0 == 1)
            .map(|b| b.2.v())
            .collect();
        assert_eq!(req_browser[1..], [560.0, 290.0]);
        let resp_min: Vec<f64> = c
            .bars
            .iter()
            .filter(|b| b.0 == 2)
            .map(|b| b.2.v())
            .collect();
        assert_eq!(resp_min[1..], [51.0, 32.0]);
        let dir = std::env::temp_dir().join(format!("pushlab-hdr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = draw(Chart::HeaderBytes, &data, &dir).unwrap();
        assert!(matches!(out, ChartOutcome::Drawn { .. }), "{out:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
