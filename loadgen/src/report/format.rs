//! Number formatting for every table, verdict and chart label, in one place, and [`Fig`], a
//! figure over repeats (median with its min-max spread).
//!
//! ```text
//! fmt_num(1234.4)            1,234
//! fmt_num(0.0153)            0.015
//! Fig::over([1.0, 2.0, 4.0]) 2 (1-4)        median (min-max) over three repeats
//! pct(0.729)                 72.9%
//! times(3.26)                3.26x
//! kib(20_900.0)              20.4 KiB
//! ```

use std::fmt;

/// One figure: a single measurement, or the median of several repeats with their min and max.
/// Verdicts read the median; text shows the spread wherever min and max differ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fig {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Fig {
    /// One measured value (no spread).
    pub const fn of(v: f64) -> Fig {
        Fig {
            median: v,
            min: v,
            max: v,
        }
    }

    /// The median of `values` (the mean of the middle two for an even count) with min and max.
    /// NaN for no values.
    pub fn over(values: impl IntoIterator<Item = f64>) -> Fig {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Fig::of(f64::NAN);
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Fig {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// Like [`Fig::over`] for optional figures: `None` when any repeat lacks it.
    pub fn over_opt(values: impl IntoIterator<Item = Option<f64>>) -> Option<Fig> {
        let v: Option<Vec<f64>> = values.into_iter().collect();
        v.filter(|v| !v.is_empty()).map(Fig::over)
    }

    /// The value a verdict reads.
    pub fn v(self) -> f64 {
        self.median
    }

    pub fn has_spread(self) -> bool {
        self.min != self.max
    }

    /// Applies `f` to median, min and max (for a monotone increasing `f`).
    pub fn map(self, f: impl Fn(f64) -> f64) -> Fig {
        Fig {
            median: f(self.median),
            min: f(self.min),
            max: f(self.max),
        }
    }

    /// `median (min-max)` with each part through `f`, or `f(median)` alone.
    pub fn show(self, f: impl Fn(f64) -> String) -> String {
        if self.has_spread() {
            format!("{} ({}-{})", f(self.median), f(self.min), f(self.max))
        } else {
            f(self.median)
        }
    }
}

impl From<f64> for Fig {
    fn from(v: f64) -> Fig {
        Fig::of(v)
    }
}

impl fmt::Display for Fig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show(fmt_num))
    }
}

/// A number for prose and tables: at most 3 significant figures, no trailing zeros, thousands
/// grouped; `n/a` for NaN or infinity.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if a >= 1000.0 {
        group_thousands(v.round() as i64)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    };
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn group_thousands(n: i64) -> String {
    let digits: Vec<char> = n.unsigned_abs().to_string().chars().collect();
    let groups: Vec<String> = digits
        .rchunks(3)
        .rev()
        .map(|c| c.iter().collect())
        .collect();
    let out = groups.join(",");
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A fraction as a percentage: `0.729` -> `72.9%`.
pub fn pct(f: impl Into<Fig>) -> String {
    f.into().show(|v| format!("{}%", fmt_num(v * 100.0)))
}

/// A ratio: `3.26` -> `3.26x`.
pub fn times(x: impl Into<Fig>) -> String {
    x.into().show(|v| format!("{}x", fmt_num(v)))
}

/// Bytes in KiB: `20900` -> `20.4 KiB`.
pub fn kib(bytes: impl Into<Fig>) -> String {
    format!("{} KiB", bytes.into().map(|b| b / 1024.0))
}

/// Milliseconds from microseconds: `4350` -> `4.35`.
pub fn ms(us: impl Into<Fig>) -> String {
    us.into().map(|u| u / 1000.0).to_string()
}

/// An optional figure, or `n/a` with why: `n/a (no /metrics)`.
pub fn or_na(v: Option<String>, why: &str) -> String {
    v.unwrap_or_else(|| {
        if why.is_empty() {
            "n/a".into()
        } else {
            format!("n/a ({why})")
        }
    })
}

/// Text safe inside a markdown table cell.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1234.4), "1,234");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(0.0153), "0.015");
        assert_eq!(fmt_num(1_526_000.0), "1,526,000");
        assert_eq!(fmt_num(f64::NAN), "n/a");
    }

    #[test]
    fn a_figure_over_repeats_is_median_with_min_and_max() {
        let f = Fig::over([4.0, 1.0, 2.0]);
        assert_eq!((f.median, f.min, f.max), (2.0, 1.0, 4.0));
        assert_eq!(f.to_string(), "2 (1-4)");
        assert_eq!(Fig::over([1.0, 3.0]).median, 2.0);
        assert_eq!(Fig::of(2.5).to_string(), "2.5");
        assert_eq!(pct(Fig::over([0.5, 0.7, 0.6])), "60% (50%-70%)");
        assert_eq!(times(3.26), "3.26x");
        assert_eq!(kib(Fig::over([1024.0, 2048.0, 4096.0])), "2 (1-4) KiB");
        assert!(Fig::over([]).median.is_nan());
        assert_eq!(Fig::over_opt([Some(1.0), None]), None);
        assert_eq!(Fig::over_opt([Some(1.0), Some(3.0)]).map(Fig::v), Some(2.0));
        assert_eq!(or_na(None, "no /metrics"), "n/a (no /metrics)");
    }
}
