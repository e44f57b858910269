//! Verdicts on the claims C1..C8 of the design page, one file per claim.
//!
//! Each claim is a small pipeline (see [`Claim`]): `figures` picks the entries it needs from a
//! [`Dataset`] and computes every number it will print (pure), `verdict` rules on those figures
//! alone (holds / holds only when / does not hold / not settled, with its reason), and
//! `headline` / `measured` put the figures into words. Thresholds are named constants in the
//! claim's file (shared ones below); the article's figures live in [`super::article`].
//!
//! Repeats (`compare --repeat N`): [`judge_all`] computes the figures and the verdict of every
//! repeat, then combines them: when every repeat reaches the same verdict that is the verdict,
//! and each figure reads `median (min-max)`; when they disagree the verdict is
//! `not settled by N runs`, and the reason lists each run's verdict.

pub mod c1;
pub mod c2;
pub mod c3;
pub mod c4;
pub mod c5;
pub mod c6;
pub mod c7;
pub mod c8;

use std::fmt;

use pushlab_proto::Transport;

use super::article::CLAIMS;
use super::data::{ratio, Dataset, Entry, Variant};
use super::format::{fmt_num, Fig};
use super::Chart;

/// "Most": more than half.
pub const MOST: f64 = 0.5;
/// A cost counts as wasted when short polling spends at least this many times what WebSocket
/// spends for the same delivered message. Below 2x, framing choices and run-to-run noise could
/// account for the difference.
pub const WASTE_FACTOR: f64 = 2.0;
/// "One connection per client" allows this many connects per client (a few reconnects).
pub const ONE_CONNECTION_PER_CLIENT: f64 = 1.05;
/// What settles a claim the data in hand cannot: the reference run.
pub const REPRODUCE: &str = "`scripts/reproduce.sh`";

/// The ruling on one claim.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Holds,
    /// The claim holds under the stated condition (a clause that reads after "when").
    HoldsOnlyWhen(String),
    DoesNotHold,
    /// The data cannot rule: `here` plus the command that settles it, or `by N runs` when
    /// repeats disagree.
    NotSettled(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Holds => f.write_str("holds"),
            Verdict::HoldsOnlyWhen(c) => write!(f, "holds only when {c}"),
            Verdict::DoesNotHold => f.write_str("does not hold"),
            Verdict::NotSettled(c) => write!(f, "not settled {c}"),
        }
    }
}

/// A verdict with its reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Ruling {
    pub verdict: Verdict,
    pub reason: String,
}

impl Ruling {
    pub fn new(verdict: Verdict, reason: impl Into<String>) -> Ruling {
        Ruling {
            verdict,
            reason: reason.into(),
        }
    }

    /// Not settled by this data: `settled_by` names the command that settles it.
    pub fn not_here(settled_by: &str, reason: impl Into<String>) -> Ruling {
        Ruling::new(
            Verdict::NotSettled(format!("here ({settled_by} settles it)")),
            reason,
        )
    }
}

/// What a dataset lacked for a claim's figures, and the command that makes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Missing {
    pub what: &'static str,
    pub settled_by: &'static str,
}

impl Missing {
    pub fn new(what: &'static str) -> Missing {
        Missing {
            what,
            settled_by: REPRODUCE,
        }
    }
}

/// One claim, what was measured, the verdict and why.
#[derive(Clone, Debug)]
pub struct ClaimResult {
    pub id: &'static str,
    pub claim: &'static str,
    /// The key figures in a few words, for the claims table.
    pub headline: String,
    /// The figures, one sentence.
    pub measured: String,
    pub verdict: Verdict,
    /// Why, from the figures and the thresholds.
    pub reason: String,
    pub charts: Vec<Chart>,
}

/// A claim as a pipeline: figures (pure, from the data) -> verdict -> words.
pub trait Claim {
    /// Index into [`CLAIMS`].
    const INDEX: usize;
    const CHARTS: &'static [Chart];
    type Figures: Clone;
    fn figures(data: &Dataset) -> Result<Self::Figures, Missing>;
    /// The figures of several repeats as one: every number a [`Fig`] over the repeats.
    fn combine(all: &[Self::Figures]) -> Self::Figures;
    fn verdict(f: &Self::Figures) -> Ruling;
    fn headline(f: &Self::Figures) -> String;
    fn measured(f: &Self::Figures) -> String;
}

/// Rules on one claim over the repeats of a dataset (see the module doc for the rule).
pub fn judge<C: Claim>(repeats: &[Dataset]) -> ClaimResult {
    let (id, claim) = CLAIMS[C::INDEX];
    let result = |headline: String, measured: String, ruling: Ruling| ClaimResult {
        id,
        claim,
        headline,
        measured,
        verdict: ruling.verdict,
        reason: ruling.reason,
        charts: C::CHARTS.to_vec(),
    };
    let figures: Result<Vec<C::Figures>, Missing> = repeats.iter().map(C::figures).collect();
    let figures = match figures {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => return missing_result(Missing::new("a result"), result),
        Err(m) => return missing_result(m, result),
    };
    let rulings: Vec<Ruling> = figures.iter().map(C::verdict).collect();
    let combined = C::combine(&figures);
    let ruling = combine_rulings(&rulings, C::verdict(&combined));
    result(C::headline(&combined), C::measured(&combined), ruling)
}

fn missing_result(
    m: Missing,
    result: impl Fn(String, String, Ruling) -> ClaimResult,
) -> ClaimResult {
    result(
        "no data".into(),
        "-".into(),
        Ruling::not_here(
            m.settled_by,
            format!("no run in this directory has {}", m.what),
        ),
    )
}

/// The combination rule: unanimous repeats keep their verdict (with the reason worded from the
/// combined figures, `of_combined`); disagreeing ones are `not settled by N runs`.
pub fn combine_rulings(per_repeat: &[Ruling], of_combined: Ruling) -> Ruling {
    let Some(first) = per_repeat.first() else {
        return of_combined;
    };
    let n = per_repeat.len();
    if per_repeat.iter().all(|r| r.verdict == first.verdict) {
        if n == 1 || of_combined.verdict == first.verdict {
            let mut r = of_combined;
            r.verdict = first.verdict.clone();
            if n > 1 {
                r.reason = format!("{} (each of {n} runs)", r.reason);
            }
            return r;
        }
        return Ruling::new(
            first.verdict.clone(),
            format!("{} (each of {n} runs)", first.reason),
        );
    }
    let each: Vec<String> = per_repeat
        .iter()
        .enumerate()
        .map(|(i, r)| format!("run {}: {} ({})", i + 1, r.verdict, r.reason))
        .collect();
    Ruling::new(
        Verdict::NotSettled(format!("by {n} runs")),
        format!("the repeats disagree: {}", each.join("; ")),
    )
}

/// Rules on every claim. Always eight results, in order.
pub fn judge_all(data: &Dataset) -> Vec<ClaimResult> {
    let repeats = data.repeats();
    let mut all = vec![
        judge::<c1::C1>(&repeats),
        judge::<c2::C2>(&repeats),
        judge::<c3::C3>(&repeats),
        judge::<c4::C4>(&repeats),
        judge::<c5::C5>(&repeats),
        judge::<c6::C6>(&repeats),
        judge::<c7::C7>(&repeats),
        judge::<c8::C8>(&repeats),
    ];
    // Link data (issue 11), when present, join the claims whose latency RTT changes; the
    // loopback verdicts stand and nothing changes without link data.
    for reading in rtt_readings(data) {
        if let Some(c) = all.iter_mut().find(|c| c.id == reading.id) {
            c.reason = format!("{} {}", c.reason, reading.text());
        }
    }
    all
}

/// A claim ruled on the runs through the emulated link (issue 11): what the RTT data say of it
/// (of its latency half, for C8), beside the loopback verdict, which stands.
#[derive(Clone, Debug, PartialEq)]
pub struct RttReading {
    /// `C4`, `C7` or `C8`.
    pub id: &'static str,
    pub verdict: Verdict,
    /// Why, in one clause, from the figures.
    pub reason: String,
    /// The figures per rate and RTT, in RTT order.
    pub figures: String,
}

impl RttReading {
    /// The sentence that joins the claim's "why".
    pub fn text(&self) -> String {
        format!(
            "Through the emulated link: {}. On the RTT data it {}: {}.",
            self.figures, self.verdict, self.reason
        )
    }
}

/// C4, C7 and C8 ruled on the link runs of `data`, those it has data for, in claim order.
pub fn rtt_readings(data: &Dataset) -> Vec<RttReading> {
    let points = crate::report::link::points(data);
    [
        c4::through_link(&points),
        c7::through_link(data),
        c8::through_link(&points),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A figure of `all` repeats, combined.
pub fn spread<T>(all: &[T], f: impl Fn(&T) -> Fig) -> Fig {
    Fig::over(all.iter().map(|x| f(x).median))
}

/// An optional figure of `all` repeats, combined; `None` if any repeat lacks it.
pub fn spread_opt<T>(all: &[T], f: impl Fn(&T) -> Option<Fig>) -> Option<Fig> {
    Fig::over_opt(all.iter().map(|x| f(x).map(Fig::v)))
}

/// The baseline scenario's entry of `t`.
pub fn base_entry(data: &Dataset, t: Transport) -> Option<&Entry> {
    data.baseline()
        .and_then(|b| b.per_transport.get(&t).copied())
}

/// The WebSocket entry to hold `e` against: same scenario if run, else the baseline's.
pub fn ws_reference<'a>(data: &'a Dataset, e: &Entry) -> Option<&'a Entry> {
    data.variant(&e.key(), Transport::Ws, Variant::DEFAULT)
        .or_else(|| base_entry(data, Transport::Ws))
}

pub fn total_bpm(e: &Entry) -> f64 {
    e.result.bytes_per_message.total()
}

pub fn interval_ms(e: &Entry) -> u64 {
    e.result.scenario.poll_interval_ms
}

/// News per poll: below 1, some polls must come back empty.
pub fn news_per_poll(e: &Entry) -> f64 {
    e.result.scenario.publish_rate_per_s * interval_ms(e) as f64 / 1000.0
}

/// How one figure stands against another times a factor, given measurement error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Against {
    /// At least `factor` times, even at the error bars' worst.
    Above,
    /// Under `factor` times, even at the error bars' best.
    Below,
    /// The error bars straddle the factor: not judged.
    Unresolved,
}

impl Against {
    /// Whether the cost is wasted (above the factor), not (below), or unknown.
    pub fn wasted(self) -> Option<bool> {
        match self {
            Against::Above => Some(true),
            Against::Below => Some(false),
            Against::Unresolved => None,
        }
    }
}

/// Server CPU per delivered message of one transport against another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuVs {
    pub a_us: Fig,
    pub b_us: Fig,
    /// Whether each side rests on enough CPU clock resolution (old `/proc` tick figures).
    pub resolved: (bool, bool),
    pub ratio: Fig,
    pub against: Against,
}

impl CpuVs {
    /// `a` against `b` times `factor`, with each side's CPU resolution as its error bar. None
    /// without CPU figures.
    pub fn of(a: &Entry, b: &Entry, factor: f64) -> Option<CpuVs> {
        let (a_lo, a_mid, a_hi) = a.cpu_us_per_delivery_bounds()?;
        let (b_lo, b_mid, b_hi) = b.cpu_us_per_delivery_bounds()?;
        let worst = ratio(a_lo, b_hi);
        let best = if b_lo > 0.0 {
            a_hi / b_lo
        } else {
            f64::INFINITY
        };
        let against = if worst >= factor {
            Against::Above
        } else if best < factor {
            Against::Below
        } else {
            Against::Unresolved
        };
        Some(CpuVs {
            a_us: Fig::of(a_mid),
            b_us: Fig::of(b_mid),
            resolved: (a.cpu_resolved(), b.cpu_resolved()),
            ratio: Fig::of(ratio(a_mid, b_mid)),
            against,
        })
    }

    pub fn combine(all: &[CpuVs]) -> CpuVs {
        let first = all[0];
        CpuVs {
            a_us: spread(all, |c| c.a_us),
            b_us: spread(all, |c| c.b_us),
            resolved: (
                all.iter().all(|c| c.resolved.0),
                all.iter().all(|c| c.resolved.1),
            ),
            ratio: spread(all, |c| c.ratio),
            against: if all.iter().all(|c| c.against == first.against) {
                first.against
            } else {
                Against::Unresolved
            },
        }
    }

    /// `server CPU 12 vs 3 us per delivery`, `~` marking figures below clock resolution.
    pub fn text(&self) -> String {
        let v = |f: Fig, resolved: bool| {
            if resolved {
                f.to_string()
            } else {
                format!("~{f}")
            }
        };
        format!(
            "server CPU {} vs {} us per delivery{}",
            v(self.a_us, self.resolved.0),
            v(self.b_us, self.resolved.1),
            if self.against == Against::Unresolved {
                " (within the CPU clock's resolution of each other)"
            } else {
                ""
            }
        )
    }
}

/// Combines optional CPU comparisons: present only when every repeat has one.
pub fn combine_cpu<T>(all: &[T], f: impl Fn(&T) -> Option<CpuVs>) -> Option<CpuVs> {
    let v: Option<Vec<CpuVs>> = all.iter().map(f).collect();
    v.filter(|v| !v.is_empty()).map(|v| CpuVs::combine(&v))
}

/// `12` for a resolved figure, `n/a` for none.
pub fn opt_text(v: Option<Fig>, f: impl Fn(Fig) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".into())
}

/// `1,234` for counts.
pub fn count(v: u64) -> String {
    fmt_num(v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: Verdict, why: &str) -> Ruling {
        Ruling::new(v, why)
    }

    #[test]
    fn unanimous_repeats_keep_their_verdict_with_the_combined_reason() {
        let each = [
            r(Verdict::Holds, "a"),
            r(Verdict::Holds, "b"),
            r(Verdict::Holds, "c"),
        ];
        let got = combine_rulings(&each, r(Verdict::Holds, "2 (1-3)"));
        assert_eq!(got, r(Verdict::Holds, "2 (1-3) (each of 3 runs)"));
        // The median may cross a threshold no single run crossed: the runs' verdict stands.
        let got = combine_rulings(&each, r(Verdict::DoesNotHold, "median"));
        assert_eq!(got, r(Verdict::Holds, "a (each of 3 runs)"));
    }

    #[test]
    fn one_run_is_its_own_verdict() {
        let got = combine_rulings(
            &[r(Verdict::DoesNotHold, "x")],
            r(Verdict::DoesNotHold, "y"),
        );
        assert_eq!(got, r(Verdict::DoesNotHold, "y"));
    }

    #[test]
    fn disagreeing_repeats_are_not_settled_with_each_run_listed() {
        let each = [r(Verdict::Holds, "a"), r(Verdict::DoesNotHold, "b")];
        let got = combine_rulings(&each, r(Verdict::Holds, "m"));
        assert_eq!(got.verdict, Verdict::NotSettled("by 2 runs".into()));
        assert_eq!(got.verdict.to_string(), "not settled by 2 runs");
        assert!(got.reason.contains("run 1: holds (a)"), "{}", got.reason);
        assert!(
            got.reason.contains("run 2: does not hold (b)"),
            "{}",
            got.reason
        );
    }

    #[test]
    fn not_here_names_the_command() {
        let got = Ruling::not_here(REPRODUCE, "why");
        assert_eq!(
            got.verdict.to_string(),
            "not settled here (`scripts/reproduce.sh` settles it)"
        );
    }
}

/// The claims over whole datasets: which entries each picks, and the repeat rule end to end.
#[cfg(test)]
mod dataset_tests {
    use std::path::PathBuf;

    use pushlab_proto::result::RunResult;
    use pushlab_proto::Transport;

    use super::*;
    use crate::report::fixture;

    fn judge_runs(runs: Vec<(PathBuf, RunResult)>) -> Vec<ClaimResult> {
        judge_all(&Dataset::from_runs(runs))
    }

    fn verdict_of(results: &[ClaimResult], id: &str) -> Verdict {
        results
            .iter()
            .find(|c| c.id == id)
            .expect("claim present")
            .verdict
            .clone()
    }

    #[test]
    fn every_claim_is_ruled_on_even_with_no_entries_of_its_kind() {
        let only_sse = vec![(
            PathBuf::from("a.json"),
            fixture::run(fixture::scenario(1.0), &[Transport::Sse]),
        )];
        let results = judge_runs(only_sse);
        assert_eq!(results.len(), 8);
        for c in &results {
            assert!(!c.reason.is_empty(), "{} has no reason", c.id);
        }
        assert_eq!(
            verdict_of(&results, "C3").to_string(),
            "not settled here (`scripts/reproduce.sh` settles it)"
        );
    }

    #[test]
    fn compare_like_data_rules_on_every_claim_but_the_scale_ones() {
        let results = judge_runs(fixture::compare_like());
        for c in &results {
            if let Verdict::NotSettled(_) = c.verdict {
                assert!(["C5", "C8"].contains(&c.id), "{}: {}", c.id, c.reason);
            }
        }
        // The synthetic model polls at 0.2 msg/s once a second: 80% empty, poll far costlier.
        assert_eq!(verdict_of(&results, "C1"), Verdict::Holds);
        assert_eq!(verdict_of(&results, "C7"), Verdict::Holds);
    }

    #[test]
    fn c7_needs_the_keep_alive_off_run() {
        let on = fixture::run(fixture::scenario(1.0), &[Transport::Poll]);
        let r = judge_runs(vec![(PathBuf::from("on.json"), on.clone())]);
        assert!(matches!(verdict_of(&r, "C7"), Verdict::NotSettled(_)));
        let mut s = fixture::scenario(1.0);
        s.keep_alive = false;
        let off = fixture::run(s, &[Transport::Poll]);
        let r = judge_runs(vec![
            (PathBuf::from("on.json"), on),
            (PathBuf::from("off.json"), off),
        ]);
        assert_eq!(verdict_of(&r, "C7"), Verdict::Holds);
    }

    #[test]
    fn c5_at_a_thousand_clients_is_ruled_and_below_it_is_not() {
        let mut s = fixture::scenario(1.0);
        s.clients = 1000;
        let mut synth = fixture::Synth::new(s);
        synth.rss_scale = 3.0;
        let run = fixture::run_of(vec![
            synth.result(Transport::Stream),
            synth.result(Transport::Ws),
        ]);
        let r = judge_runs(vec![(PathBuf::from("a.json"), run)]);
        assert_eq!(verdict_of(&r, "C5"), Verdict::Holds);
        let small = fixture::run(fixture::scenario(1.0), &[Transport::Stream, Transport::Ws]);
        let r = judge_runs(vec![(PathBuf::from("b.json"), small)]);
        assert!(
            matches!(verdict_of(&r, "C5"), Verdict::NotSettled(ref c) if c.starts_with("here"))
        );
    }

    /// Three repeats of a poll-and-WebSocket plan whose poll header bytes are `headers` each.
    fn repeated(headers: [f64; 3]) -> Vec<(PathBuf, RunResult)> {
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut synth = fixture::Synth::new(fixture::scenario(1.0));
                synth.header_bytes_per_exchange = *h;
                let mut run = fixture::run_of(vec![
                    synth.result(Transport::Poll),
                    synth.result(Transport::Ws),
                ]);
                run.repeat = i as u32 + 1;
                run.repeats = 3;
                (PathBuf::from(format!("r{i}.json")), run)
            })
            .collect()
    }

    #[test]
    fn repeats_that_agree_give_their_verdict_with_median_and_spread() {
        let r = judge_runs(repeated([200.0, 230.0, 260.0]));
        let c2 = r.iter().find(|c| c.id == "C2").expect("C2");
        assert_eq!(c2.verdict, Verdict::Holds);
        assert!(
            c2.headline.contains("230 (200-260) B (minimal)"),
            "{}",
            c2.headline
        );
        assert!(c2.reason.ends_with("(each of 3 runs)"), "{}", c2.reason);
    }

    #[test]
    fn repeats_that_disagree_are_not_settled_by_three_runs() {
        // Payload 100 B of ~393 B a message without headers: no headers puts it past 25%.
        let r = judge_runs(repeated([0.0, 200.0, 230.0]));
        let c2 = r.iter().find(|c| c.id == "C2").expect("C2");
        assert_eq!(
            c2.verdict.to_string(),
            "not settled by 3 runs",
            "{}",
            c2.reason
        );
        assert!(
            c2.reason.contains("run 1: holds only when"),
            "{}",
            c2.reason
        );
    }

    #[test]
    fn a_sweep_point_belongs_to_every_repeat() {
        let mut runs = repeated([200.0, 230.0, 260.0]);
        let mut s = fixture::scenario(1.0);
        s.keep_alive = false;
        runs.push((
            PathBuf::from("off.json"),
            fixture::run(s, &[Transport::Poll]),
        ));
        let data = Dataset::from_runs(runs);
        let repeats = data.repeats();
        assert_eq!(repeats.len(), 3);
        for d in &repeats {
            assert_eq!(d.runs.len(), 2, "one repeat plus the shared point");
        }
        assert_eq!(verdict_of(&judge_all(&data), "C7"), Verdict::Holds);
    }
}
