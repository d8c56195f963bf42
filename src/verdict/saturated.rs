//! The verdict of a run the worker extended while bounded holders filled (see
//! [`crate::holders`]): judged on the samples after the holders were full, with their size taken
//! out when they swing.

use std::collections::BTreeMap;

use super::{
    Decision, MetricJudgement, Plan, Stop, StopReason, Verdict, format_total, judge_look,
    judge_points,
};
use crate::holders::{HolderReport, Outcome};
use crate::metric::Metric;
use crate::protocol::Sample;

/// Judges a run at the look its worker probed holders at, as the worker did: the look's own
/// verdict when the growth was unbounded or the holders would fill beyond the budget (with the
/// holder named); otherwise the samples after saturation (or, for holders that never filled,
/// every sample to the end of the extension).
pub fn decide_with_holders(samples: &[Sample], plan: &Plan, report: &HolderReport) -> Decision {
    let end_of_look = plan.look_end(report.look);
    let prefix: Vec<Sample> = samples
        .iter()
        .filter(|s| s.iteration <= end_of_look)
        .cloned()
        .collect();
    let mut at_look = judge_look(&prefix, plan, report.look);
    let holder = report.describe();
    match report.outcome {
        Outcome::Unbounded => {
            if let (Verdict::Leak, Some(holder)) = (at_look.verdict, &holder) {
                at_look.reason.push_str(&format!("; held by {holder}"));
            }
            at_look
        }
        Outcome::BeyondBudget { fill_at, budget } => {
            if let Some(holder) = &holder {
                at_look.reason.push_str(&format!(
                    "; held by {holder}, which would be full only after about {fill_at} \
                     measured iterations, beyond the {budget} this run may make: if it is a \
                     cache, set max_iterations to {} or more to let it fill",
                    fill_at + 2 * plan.looks[0].measured
                ));
            }
            at_look
        }
        Outcome::NotFilled { end } => {
            let window = between(samples, plan.warmup, plan.warmup + end);
            let mut decision = judge_window_of(&window, None, plan, report, end);
            if let Some(holder) = &holder {
                decision.reason.push_str(&format!(
                    "; held by {holder}, which was still not full after {end} measured \
                     iterations (it holds more than its capacity, or fills too slowly)"
                ));
            }
            decision
        }
        Outcome::Saturated { saturated_at, end } => {
            let from = plan.warmup + saturated_at;
            let window = between(samples, from, plan.warmup + end);
            let sizes: BTreeMap<u64, f64> = report.sizes.iter().copied().collect();
            let peak = report
                .sizes
                .iter()
                .filter(|(at, _)| *at <= from)
                .map(|(_, size)| *size)
                .fold(f64::MIN, f64::max);
            let mut decision = judge_window_of(&window, Some((&sizes, peak)), plan, report, end);
            let holder = holder.unwrap_or_else(|| "a bounded holder".to_string());
            match decision.verdict {
                Verdict::Pass => {
                    let grew = growth_until(&at_look, samples, plan.warmup, from);
                    decision.reason = format!(
                        "{}; {grew}until iteration {from}, then flat — held by {holder}",
                        decision.reason
                    );
                }
                _ => decision
                    .reason
                    .push_str(&format!(" after {holder} was full at iteration {from}")),
            }
            decision
        }
    }
}

/// The measured samples from iteration `from` to `to`, both included.
fn between(samples: &[Sample], from: u64, to: u64) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.iteration >= from && s.iteration <= to)
        .cloned()
        .collect()
}

/// Judges `window` at the confidence of the plan's last look, every metric's series less the
/// part the bounded holders' size explains (when `sizes` is given with the peak they reached up
/// to saturation, and they swing below it), with the stop at `end` measured iterations.
fn judge_window_of(
    window: &[Sample],
    sizes: Option<(&BTreeMap<u64, f64>, f64)>,
    plan: &Plan,
    report: &HolderReport,
    end: u64,
) -> Decision {
    let confidence = plan.looks.last().map_or(plan.confidence, |l| l.confidence);
    let sizes: Option<Vec<f64>> = sizes.and_then(|(sizes, peak)| {
        window
            .iter()
            .map(|s| sizes.get(&s.iteration).copied())
            .collect::<Option<Vec<f64>>>()
            .filter(|h| swings_within(h, peak))
    });
    let points_of = |metric: Metric| -> Vec<(f64, f64)> {
        let raw: Vec<(f64, f64, f64)> = window
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let h = sizes.as_ref().map_or(0.0, |h| h[k]);
                (s.iteration as f64, s.get(metric), h)
            })
            .filter(|(x, y, _)| x.is_finite() && y.is_finite())
            .collect();
        let beta = sizes.as_ref().and_then(|_| per_entry(&raw)).unwrap_or(0.0);
        let mut points: Vec<(f64, f64)> = raw.iter().map(|&(x, y, h)| (x, y - beta * h)).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points
    };
    let mut decision = judge_points(&points_of, window.len(), plan, confidence);
    decision.stop = Stop {
        reason: if decision.verdict == Verdict::Inconclusive {
            StopReason::MaxIterations
        } else {
            StopReason::Decided
        },
        measured_iterations: end,
        look: report.look + 1,
        looks: plan.looks.len(),
        confidence,
    };
    decision
}

/// Whether the holders' size swings (a cache trimmed in bulk: SQLAlchemy's LRU drops from 750
/// entries to 500) while staying near `peak`, the most seen of it up to saturation (samples
/// may land on either side of a trim, hence [`PEAK_SLACK`]): a holder that makes new highs is
/// not bounded, and its size must not be taken out of the memory figures.
fn swings_within(sizes: &[f64], peak: f64) -> bool {
    let max = sizes.iter().copied().fold(f64::MIN, f64::max);
    let min = sizes.iter().copied().fold(f64::MAX, f64::min);
    sizes.len() >= 8 && max > min && max <= peak * (1.0 + PEAK_SLACK) + 1.0
}

/// How far above the peak before saturation a bounded holder's size may be seen again.
const PEAK_SLACK: f64 = 0.02;

/// Memory per holder entry: the coefficient of the holders' size in a least-squares fit of the
/// metric on iteration and size together, so that steady growth beside the holders stays in the
/// trend. `None` when size and iteration are too closely related to tell apart.
fn per_entry(points: &[(f64, f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if n < 8.0 {
        return None;
    }
    let mean = |f: fn(&(f64, f64, f64)) -> f64| points.iter().map(f).sum::<f64>() / n;
    let (mt, my, mh) = (mean(|p| p.0), mean(|p| p.1), mean(|p| p.2));
    let (mut stt, mut shh, mut sth, mut sty, mut shy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(t, y, h) in points {
        let (t, y, h) = (t - mt, y - my, h - mh);
        stt += t * t;
        shh += h * h;
        sth += t * h;
        sty += t * y;
        shy += h * y;
    }
    let det = stt * shh - sth * sth;
    // |correlation(t, h)| above 0.95: the two cannot be told apart.
    if stt <= 0.0 || shh <= 0.0 || det <= stt * shh * (1.0 - 0.95 * 0.95) {
        return None;
    }
    Some((stt * shy - sth * sty) / det)
}

/// "malloc grew 1.2 MiB " from the first measured sample to iteration `until`, for the first
/// gated metric that grew at the look; empty when none did.
fn growth_until(at_look: &Decision, samples: &[Sample], warmup: u64, until: u64) -> String {
    let grown: Option<&MetricJudgement> = at_look
        .metrics
        .iter()
        .find(|m| m.gated && m.call == super::Call::Grows);
    let Some(judgement) = grown else {
        return String::new();
    };
    let metric = judgement.metric;
    let level = |near: u64| {
        let mut values: Vec<f64> = samples
            .iter()
            .filter(|s| s.iteration >= warmup)
            .filter(|s| s.iteration.abs_diff(near) <= (until - warmup).max(1) / 20)
            .map(|s| s.get(metric))
            .filter(|v| v.is_finite())
            .collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied()
    };
    match (level(warmup), level(until)) {
        (Some(start), Some(full)) if full > start => format!(
            "{metric} grew {} ",
            format_total(full - start, metric.unit())
        ),
        _ => String::new(),
    }
}
