//! From samples, tolerances and expectations to a verdict: the CI gate's rule, in one place.
//!
//! Each gated metric is judged on the measured samples at a *look* (see
//! [`crate::stats::sequential`]), whose confidence level `c` is a share of the run's:
//!
//! - **grows** when growth is both significant and persistent:
//!   - the Theil–Sen slope's interval lies above the tolerance *and* Mann–Kendall finds a rising
//!     trend (one-sided p below `(1 − c)/2`), over the whole window or over its last half (a leak
//!     that started late); both use Kendall's S with tie and autocorrelation corrections, so a
//!     few outliers, a staircase or a sawtooth do not make a trend;
//!   - the floor (lower quartile) of each of the last two quarters of the window is above the floor of
//!     the quarter before by more than the tolerance allows for the distance between them, and the
//!     last eighth's own Theil–Sen slope is above the tolerance: the memory kept grew in every
//!     later part of the run and is still growing, so a cache that filled once, a single step,
//!     or a buffer that is flushed now and then is not a leak;
//!   - the growth over the window reaches the metric's minimum ([`Metric::min_growth`]);
//! - **within** when the interval over the whole window lies at or below the tolerance and the
//!   last half is not rising faster than the tolerance, or when the interval over the last half
//!   alone lies at or below it: growth that stopped is a plateau, reported in a note such as
//!   "grew 180 KiB until iteration 240, then flat"; or, when the last half is not rising either,
//!   when the level the metric falls back to is flat (the interval of the floors of 16 blocks
//!   lies at or below the tolerance): a buffer flushed now and then, or churn in random sizes,
//!   whose swings keep the whole interval straddling the tolerance however long the run;
//! - **unclear** otherwise.
//!
//! A scenario is `leak` when any gated metric grows, `pass` when every gated metric is within,
//! and undecided otherwise: the
//! worker then runs another round, and at `max_iterations` undecided is `inconclusive`. Errors
//! (exceptions, crashes, timeouts) are `error` whatever the samples say.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::holders::HolderReport;
use crate::metric::Metric;
use crate::protocol::Sample;
use crate::scenario::{Expect, Scenario};
use crate::stats::theil_sen::median_slope;
use crate::stats::trend::{MAX_ROBUST_POINTS, thin};
use crate::stats::{
    Fit, Look, Plateau, RobustFit, find_plateau, fit_ols, fit_robust, fit_robust_thinned, schedule,
};
use crate::units::{Unit, format_quantity};
pub use saturated::decide_with_holders;

/// The outcome of one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Memory keeps growing beyond tolerance.
    Leak,
    /// The scenario could not run to the end.
    Error,
    /// The data decide neither way at the configured confidence.
    Inconclusive,
    /// Every gated metric stays within tolerance.
    Pass,
    /// The workload asked not to be measured: a `pytest` test that skipped itself or failed
    /// as its `xfail` mark expects. Neither a pass nor a failure of the gate, since nothing was
    /// measured; reports list it apart so a skip cannot hide a leak unnoticed.
    Skipped,
}

impl Verdict {
    /// The lower-case name used in reports: its serde name (see [`crate::names`]).
    pub fn name(self) -> &'static str {
        crate::names::of(&self)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How one metric compares with its tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// Significant growth above the tolerance that persists to the end of the window.
    Grows,
    /// At or below the tolerance (possibly after a plateau).
    Within,
    /// Neither yet.
    Unclear,
    /// Too few samples to fit a line.
    NoFit,
}

/// One metric's fits and how it was judged.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricJudgement {
    /// Which metric.
    pub metric: Metric,
    /// Least-squares fit at the run's nominal confidence, for transparency: it does not decide.
    pub fit: Option<Fit>,
    /// Robust fit of the whole window at the look's confidence.
    pub robust: Option<RobustFit>,
    /// Robust fit of the last half of the window.
    pub tail: Option<RobustFit>,
    /// Whether the floor rose in each of the last two quarters (`None`: fewer than 8 samples).
    pub persistent: Option<bool>,
    /// Where growth stopped, for a metric judged within after growing.
    pub plateau: Option<Plateau>,
    /// Robust fit of the floors of the run's blocks, for a metric judged within because the
    /// level it falls back to is flat although it swings (see `flat_floor`).
    pub floor: Option<RobustFit>,
    /// A sentence about the shape of the series, e.g. "grew 180 KiB until iteration 240, then
    /// flat".
    pub note: Option<String>,
    /// Allowed growth per iteration.
    pub tolerance: f64,
    /// Whether this metric takes part in the verdict.
    pub gated: bool,
    /// The outcome.
    pub call: Call,
}

/// Why a run stopped measuring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Pass or leak decided at the minimum or in a later round.
    Decided,
    /// `max_iterations` reached without a decision.
    MaxIterations,
    /// The samples end before the first look (the scenario failed or was cut short).
    Incomplete,
}

impl StopReason {
    /// The snake_case name used in reports: its serde name (see [`crate::names`]).
    pub fn name(self) -> &'static str {
        crate::names::of(&self)
    }
}

/// Where the sequential run stopped and why.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// Why.
    pub reason: StopReason,
    /// Measured iterations the verdict is based on.
    pub measured_iterations: u64,
    /// Which look decided, from 1.
    pub look: usize,
    /// How many looks the schedule had.
    pub looks: usize,
    /// Two-sided confidence used at that look.
    pub confidence: f64,
}

/// The verdict of a scenario that ran to the end, with the reason in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// pass, leak or inconclusive (undecided at this look).
    pub verdict: Verdict,
    /// One sentence a user can act on.
    pub reason: String,
    /// Every metric's judgement, gated or not, in [`Metric::ALL`] order.
    pub metrics: Vec<MetricJudgement>,
    /// Which look this is and why measuring stopped there.
    pub stop: Stop,
}

/// What judging a run needs besides its samples: gate, tolerances, confidence and the looks.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Gated metrics.
    pub gate: Vec<Metric>,
    /// Allowed growth per iteration, per metric (missing: the metric's default).
    pub tolerance: BTreeMap<Metric, f64>,
    /// The run's two-sided confidence level.
    pub confidence: f64,
    /// Iterations before the first measured one.
    pub warmup: u64,
    /// The looks, in order; the last is at `max_iterations`.
    pub looks: Vec<Look>,
}

impl Plan {
    /// The plan of a scenario: its minimum `iterations` up to `max_iterations`.
    pub fn for_scenario(scenario: &Scenario, confidence: f64) -> Plan {
        Plan {
            gate: scenario.gate.clone(),
            tolerance: scenario.tolerance.clone(),
            confidence,
            warmup: scenario.warmup,
            looks: schedule(scenario.iterations, scenario.max_iterations, confidence),
        }
    }

    /// A single look after `iterations` measured iterations at full confidence: the fixed-count
    /// design.
    pub fn fixed(
        gate: &[Metric],
        tolerance: &BTreeMap<Metric, f64>,
        confidence: f64,
        warmup: u64,
        iterations: u64,
    ) -> Plan {
        Plan {
            gate: gate.to_vec(),
            tolerance: tolerance.clone(),
            confidence,
            warmup,
            looks: schedule(iterations, iterations, confidence),
        }
    }

    /// The growth per iteration tolerated for `metric`: the scenario's, else the default.
    pub fn tolerance_of(&self, metric: Metric) -> f64 {
        self.tolerance
            .get(&metric)
            .copied()
            .unwrap_or_else(|| metric.default_tolerance())
    }

    /// The iteration (warmup included) at which look `index` happens.
    pub fn look_end(&self, index: usize) -> u64 {
        self.warmup + self.looks[index].measured
    }
}

/// Judges a whole run: replays the looks on the samples in order and returns the first decision
/// (pass or leak), or the last look reached when none decided. The worker stops at that same
/// look, so this reproduces its stopping decision from the samples alone.
pub fn decide(samples: &[Sample], plan: &Plan) -> Decision {
    decide_with(samples, plan, None)
}

/// [`decide`] for a run whose worker probed who held the growth (`holders`): the look the probe
/// was taken at is judged as [`decide_with_holders`] says, as the worker did.
pub fn decide_with(samples: &[Sample], plan: &Plan, holders: Option<&HolderReport>) -> Decision {
    if let Some(report) = holders.filter(|r| r.look < plan.looks.len()) {
        return decide_with_holders(samples, plan, report);
    }
    let last_iteration = samples.iter().map(|s| s.iteration).max();
    let mut decision = None;
    for index in 0..plan.looks.len() {
        let end = plan.look_end(index);
        if last_iteration.is_none_or(|last| last < end) {
            break;
        }
        let prefix: Vec<Sample> = samples
            .iter()
            .filter(|s| s.iteration <= end)
            .cloned()
            .collect();
        let judged = judge_look(&prefix, plan, index);
        let decided = judged.verdict != Verdict::Inconclusive;
        decision = Some(judged);
        if decided {
            break;
        }
    }
    decision.unwrap_or_else(|| {
        // Never reached a look: judge what there is at the minimum's confidence.
        let mut judged = judge_look(samples, plan, 0);
        judged.stop.reason = StopReason::Incomplete;
        judged.stop.measured_iterations = last_iteration
            .unwrap_or(plan.warmup)
            .saturating_sub(plan.warmup);
        judged
    })
}

/// Series at least this long are judged one thread per metric.
const PARALLEL_SAMPLES: usize = 2_000;

/// Applies the rule at look `index` of `plan` to `samples` (the measured samples up to that
/// look). An undecided look gives [`Verdict::Inconclusive`].
pub fn judge_look(samples: &[Sample], plan: &Plan, index: usize) -> Decision {
    let look = plan.looks[index];
    let mut decision = judge_points(
        &|m| points(samples, m),
        samples.len(),
        plan,
        look.confidence,
        Window::Run,
    );
    let last = index + 1 == plan.looks.len();
    let stop_reason = match decision.verdict {
        Verdict::Leak | Verdict::Pass => StopReason::Decided,
        _ if last => StopReason::MaxIterations,
        _ => StopReason::Decided,
    };
    let minimum = plan.looks[0].measured;
    let maximum = plan.looks.last().map_or(look.measured, |l| l.measured);
    match stop_reason {
        StopReason::MaxIterations if maximum > minimum => decision.reason.push_str(&format!(
            "; still undecided after max_iterations ({maximum})"
        )),
        _ if maximum > minimum => decision.reason.push_str(&format!(
            "; decided after {} iterations (look {} of {})",
            look.measured,
            index + 1,
            plan.looks.len()
        )),
        _ => {}
    }
    decision.stop = Stop {
        reason: stop_reason,
        measured_iterations: look.measured,
        look: index + 1,
        looks: plan.looks.len(),
        confidence: look.confidence,
    };
    decision
}

/// The rule applied to every metric's `points_of(metric)` at `confidence`: the verdict and its
/// reason, without the look's stop (the callers fill it in). `samples` sizes the work.
fn judge_points(
    points_of: &(dyn Fn(Metric) -> Vec<(f64, f64)> + Sync),
    samples: usize,
    plan: &Plan,
    confidence: f64,
    window: Window,
) -> Decision {
    let judge = |metric: Metric| {
        judge_metric(
            metric,
            &points_of(metric),
            plan.tolerance_of(metric),
            plan.gate.contains(&metric),
            confidence,
            plan.confidence,
            window,
        )
    };
    // A long series costs milliseconds per metric (robust fits of up to 500 thinned points):
    // judge the metrics side by side then. Short ones, every default run, stay on this thread.
    let metrics: Vec<MetricJudgement> = if samples >= PARALLEL_SAMPLES {
        std::thread::scope(|scope| {
            let handles: Vec<_> = Metric::ALL
                .into_iter()
                .map(|metric| scope.spawn(move || judge(metric)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("judging a metric does not panic"))
                .collect()
        })
    } else {
        Metric::ALL.into_iter().map(judge).collect()
    };

    let gated: Vec<&MetricJudgement> = metrics.iter().filter(|m| m.gated).collect();
    let level = percent(confidence);
    let (verdict, reason) = if let Some(growing) = gated.iter().find(|m| m.call == Call::Grows) {
        (Verdict::Leak, describe_growth(growing, &level))
    } else if !gated.is_empty() && gated.iter().all(|m| m.call == Call::Within) {
        let names: Vec<&str> = gated.iter().map(|m| m.metric.name()).collect();
        let mut text = format!(
            "{} within tolerance at {level} % confidence",
            names.join(", ")
        );
        for note in gated.iter().filter_map(|m| m.note.as_ref()) {
            text.push_str("; ");
            text.push_str(note);
        }
        (Verdict::Pass, text)
    } else if let Some(unclear) = gated.iter().find(|m| m.call == Call::Unclear) {
        (Verdict::Inconclusive, describe_unclear(unclear, &level))
    } else {
        (
            Verdict::Inconclusive,
            "too few samples to fit a slope (need at least 3 measured samples)".to_string(),
        )
    };

    Decision {
        verdict,
        reason,
        metrics,
        stop: Stop {
            reason: StopReason::Decided,
            measured_iterations: 0,
            look: 0,
            looks: plan.looks.len(),
            confidence,
        },
    }
}

/// Judges one metric on samples of its own, outside the gate, at the plan's confidence: the
/// tracemalloc figure of the traced window (see [`crate::sampling`]), which is reported but
/// never decides the verdict.
pub fn judge_window(samples: &[Sample], metric: Metric, plan: &Plan) -> MetricJudgement {
    judge_metric(
        metric,
        &points(samples, metric),
        plan.tolerance_of(metric),
        false,
        plan.confidence,
        plan.confidence,
        Window::Run,
    )
}

/// `(iteration, value)` of one metric, finite values only, ordered by iteration.
fn points(samples: &[Sample], metric: Metric) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.iteration as f64, s.get(metric)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// The rule of the module documentation for one metric; `points` ordered by iteration.
fn judge_metric(
    metric: Metric,
    points: &[(f64, f64)],
    tolerance: f64,
    gated: bool,
    confidence: f64,
    nominal: f64,
    window: Window,
) -> MetricJudgement {
    let n = points.len();
    let fit = fit_ols(points, nominal);
    let robust = fit_robust(points, confidence);
    // The last half, thinned to blocks as wide as the whole series': the same figures for every
    // series of up to 500 samples (every default run), half the cost on longer ones.
    let tail = fit_robust_thinned(&points[n / 2..], confidence, MAX_ROBUST_POINTS / 2);
    let persistent = still_growing(points, tolerance);
    let alpha_one_sided = (1.0 - confidence) / 2.0;
    let min_growth = metric.min_growth();
    let evidence = |f: &RobustFit| {
        f.ci_low > tolerance && f.mk_p < alpha_one_sided && f.slope * (f.to - f.from) >= min_growth
    };
    let mut judgement = MetricJudgement {
        metric,
        fit,
        robust,
        tail,
        persistent,
        plateau: None,
        floor: None,
        note: None,
        tolerance,
        gated,
        call: Call::NoFit,
    };
    let Some(whole) = robust else {
        return judgement;
    };
    let significant = evidence(&whole) || tail.as_ref().is_some_and(evidence);
    // After a bounded cache filled, other bounded state may still turn over in a sawtooth of its
    // own (SQLAlchemy: ~190 iterations, 160 blocks) that a last half of three periods reads as a
    // slope: there, the last half rises only when it does so significantly.
    let tail_rising = tail.is_some_and(|t| match window {
        Window::Run => t.slope > tolerance,
        Window::AfterSaturation => t.ci_low > tolerance,
    });
    let tail_flat = tail.is_some_and(|t| t.ci_high <= tolerance);
    judgement.call = if significant && persistent == Some(true) {
        Call::Grows
    } else if whole.ci_high <= tolerance && !tail_rising {
        Call::Within
    } else if tail_flat {
        let plateau = find_plateau(points).filter(|p| p.growth > 0.0);
        judgement.note = plateau.map(|p| {
            format!(
                "{metric} grew {} until iteration {}, then flat",
                format_total(p.growth, metric.unit()),
                p.until
            )
        });
        judgement.plateau = plateau;
        Call::Within
    } else if let Some(floors) = (!tail_rising && persistent != Some(true))
        .then(|| flat_floor(points, tolerance, confidence))
        .flatten()
    {
        judgement.note = Some(format!(
            "{metric} rises and falls by up to {}, but the level it falls back to stays flat \
             ({}/iter, CI [{}, {}])",
            format_quantity(floors.swing, metric.unit()),
            format_quantity(floors.fit.slope, metric.unit()),
            format_quantity(floors.fit.ci_low, metric.unit()),
            format_quantity(floors.fit.ci_high, metric.unit()),
        ));
        judgement.floor = Some(floors.fit);
        Call::Within
    } else {
        Call::Unclear
    };
    judgement
}

/// Which samples a metric is judged on, for the one rule that differs between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    /// The measured run up to a look.
    Run,
    /// The samples after bounded holders were full (see [`crate::holders`]).
    AfterSaturation,
}

/// Blocks the run is cut into for [`flat_floor`]: enough floors for a robust interval, blocks
/// long enough to hold a whole cycle of a buffer flushed every few dozen iterations at the
/// later looks (50 iterations a block at 800).
const FLOOR_BLOCKS: usize = 16;

/// The level a metric falls back to, when it is flat.
struct FlatFloor {
    /// Robust fit of the blocks' floors against their first iteration.
    fit: RobustFit,
    /// Largest rise of a sample over its block's floor: how far the metric swings.
    swing: f64,
}

/// Whether what the metric comes back down to is flat: the floor (lower quartile) of each of
/// [`FLOOR_BLOCKS`] consecutive blocks, fitted robustly, has an interval at or below
/// `tolerance`. A buffer flushed now and then, or memory that churns in random sizes, swings
/// so widely that the interval of the slope over all samples may straddle the tolerance for as
/// long as the run lasts, while the level it falls back to is plainly flat; memory that is kept
/// raises every later floor, so a leak never passes this way. `None` below two samples a block
/// or when the floors are not flat.
fn flat_floor(points: &[(f64, f64)], tolerance: f64, confidence: f64) -> Option<FlatFloor> {
    let n = points.len();
    if n < 2 * FLOOR_BLOCKS {
        return None;
    }
    let mut swing = 0.0f64;
    let floors: Vec<(f64, f64)> = (0..FLOOR_BLOCKS)
        .map(|k| {
            let block = &points[k * n / FLOOR_BLOCKS..(k + 1) * n / FLOOR_BLOCKS];
            let floor = lower_quartile(block);
            let peak = block.iter().map(|p| p.1).fold(f64::MIN, f64::max);
            swing = swing.max(peak - floor);
            (block[0].0, floor)
        })
        .collect();
    let fit = fit_robust(&floors, confidence)?;
    (fit.ci_high <= tolerance).then_some(FlatFloor { fit, swing })
}

/// The lower quartile of `points`' values: what memory comes back down to (a buffer flushed, a
/// temporary freed), robust to a few outlying samples.
fn lower_quartile(points: &[(f64, f64)]) -> f64 {
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let rank = (values.len() - 1) / 4;
    *values.select_nth_unstable_by(rank, f64::total_cmp).1
}

/// Whether growth persists to the end of `points`: the floor of each of the last two quarters is
/// above the floor of the quarter before by more than `tolerance` per iteration between their
/// starts, and the last eighth's own Theil–Sen slope is above `tolerance`. The floor is the
/// lower quartile of the quarter's values: what the memory comes back down to (a buffer flushed,
/// a temporary freed), robust to a few outlying samples. `None` with fewer than 8 points.
fn still_growing(points: &[(f64, f64)], tolerance: f64) -> Option<bool> {
    let n = points.len();
    if n < 8 {
        return None;
    }
    let quarter = |k: usize| &points[k * n / 4..(k + 1) * n / 4];
    let floor = |k: usize| lower_quartile(quarter(k));
    let start = |k: usize| quarter(k)[0].0;
    let floors_rise =
        (2..4).all(|k| floor(k) - floor(k - 1) > tolerance * (start(k) - start(k - 1)));
    // Thinned to blocks as wide as the robust fits' (unchanged up to 500 samples): a last eighth
    // of thousands of samples (sample_every: 1 on a long run) would otherwise cost the square of
    // its length.
    let last_eighth = thin(&points[n * 7 / 8..], MAX_ROBUST_POINTS / 8);
    let end_rises = median_slope(&last_eighth).is_some_and(|slope| slope > tolerance);
    Some(floors_rise && end_rises)
}

/// `99.5` for 0.995, `99.833` for 0.998333, without trailing zeros: how every report writes a
/// confidence level.
pub fn percent(confidence: f64) -> String {
    let text = format!("{:.3}", confidence * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A total amount of growth: `180 KiB`, `1 234 objects`.
fn format_total(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Bytes => format_quantity(value, unit),
        Unit::Count => format!("by {}", format_quantity(value, unit)),
    }
}

/// "tracemalloc grew 1.2 KiB/iter (Theil–Sen, 99.5 % CI [1.1 KiB, 1.3 KiB], above tolerance
/// 8 B; rising trend, Mann–Kendall p = 1e-20), still growing in each of the last two quarters".
fn describe_growth(judgement: &MetricJudgement, level: &str) -> String {
    let unit = judgement.metric.unit();
    let whole = judgement.robust.expect("a growing metric has a robust fit");
    let (fit, window) = match judgement.tail {
        Some(tail) if whole.ci_low <= judgement.tolerance => (tail, " over the last half"),
        _ => (whole, ""),
    };
    format!(
        "{} grew {}/iter{window} (Theil–Sen, {level} % CI [{}, {}], above tolerance {}; rising \
         trend, Mann–Kendall p {}), still growing in each of the last two quarters",
        judgement.metric,
        format_quantity(fit.slope, unit),
        format_quantity(fit.ci_low, unit),
        format_quantity(fit.ci_high, unit),
        format_quantity(judgement.tolerance, unit),
        format_p(fit.mk_p),
    )
}

/// `= 3.1e-5`, or `≤ 1e-12` for the p-values that round to nothing.
fn format_p(p: f64) -> String {
    if p < 1e-12 {
        "≤ 1e-12".to_string()
    } else {
        format!("= {p:.1e}")
    }
}

/// Why an unclear metric is unclear, in words.
fn describe_unclear(judgement: &MetricJudgement, level: &str) -> String {
    let unit = judgement.metric.unit();
    let whole = judgement
        .robust
        .expect("an unclear metric has a robust fit");
    let tolerance = format_quantity(judgement.tolerance, unit);
    let slope = format_quantity(whole.slope, unit);
    if whole.ci_low > judgement.tolerance && judgement.persistent != Some(true) {
        format!(
            "{} grew {slope}/iter overall but not in each of the last two quarters (a step, a \
             filling cache or a flushed buffer rather than steady growth, so far)",
            judgement.metric
        )
    } else if whole.ci_high <= judgement.tolerance {
        let tail = judgement.tail.expect("a window with a fit has a last half");
        format!(
            "{} is within tolerance overall but its last half rises {}/iter, above tolerance {tolerance}",
            judgement.metric,
            format_quantity(tail.slope, unit)
        )
    } else {
        format!(
            "{} grew {slope}/iter, {level} % CI [{}, {}], straddling tolerance {tolerance}",
            judgement.metric,
            format_quantity(whole.ci_low, unit),
            format_quantity(whole.ci_high, unit),
        )
    }
}

/// Whether a verdict is what the scenario expected: the CI gate per scenario.
///
/// `expect: leak` is strict, like pytest's `xfail(strict=True)`: the known leak must be found.
/// `inconclusive` fails only with `--fail-on-inconclusive`; `error` always fails; `skipped`
/// never does (the test itself chose not to run, as pytest's own exit status treats it).
pub fn is_ok(verdict: Verdict, expect: Expect, fail_on_inconclusive: bool) -> bool {
    match (verdict, expect) {
        (Verdict::Error, _) => false,
        (Verdict::Skipped, _) => true,
        (Verdict::Inconclusive, _) => !fail_on_inconclusive,
        (Verdict::Pass, Expect::Pass) | (Verdict::Leak, Expect::Leak) => true,
        (Verdict::Pass, Expect::Leak) | (Verdict::Leak, Expect::Pass) => false,
    }
}

mod saturated;
#[cfg(test)]
mod tests;
