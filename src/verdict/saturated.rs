//! The verdict of a run the worker extended while bounded holders filled (see
//! [`crate::holders`]): judged on the samples after the holders were full, with their size taken
//! out when they swing.

use std::collections::BTreeMap;

use super::{
    Decision, MetricJudgement, Plan, Stop, StopReason, Verdict, Window, format_total, judge_look,
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
        Outcome::BeyondBudget {
            fill_at,
            budget,
            timeout_secs,
        } => {
            if let Some(holder) = &holder {
                let needed = fill_at + 2 * plan.looks[0].measured;
                at_look.reason.push_str(&match timeout_secs {
                    None => format!(
                        "; held by {holder}, which would be full only after about {fill_at} \
                         measured iterations, beyond the {budget} this run may make: if it is \
                         a cache, set max_iterations to {needed} or more to let it fill"
                    ),
                    Some(timeout) => format!(
                        "; held by {holder}, which would be full only after about {fill_at} \
                         measured iterations, and at this pace {needed} would take more than \
                         half the scenario's timeout of {timeout:.0} s: if it is a cache, raise \
                         timeout to let it fill"
                    ),
                });
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
    let mut decision = judge_points(
        &points_of,
        window.len(),
        plan,
        confidence,
        Window::AfterSaturation,
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holders::{Bound, BoundKind, Holder, Probe};
    use crate::stats::schedule;

    /// A holder of 500 entries that fills one per iteration until 750, is trimmed back to 500
    /// and fills again (SQLAlchemy's LRU): its size at iteration `x` (warmup 20 included).
    fn sawtooth(x: u64) -> f64 {
        let n = x as f64;
        if n <= 750.0 {
            n
        } else {
            500.0 + ((n - 751.0) % 251.0)
        }
    }

    /// Samples every 2 iterations up to `last`, alloc_blocks = 30 blocks per entry + `extra(x)`,
    /// the other metrics flat; the report of a run saturated at the second trim.
    fn run(last: u64, extra: impl Fn(u64) -> f64) -> (Vec<Sample>, Plan, HolderReport) {
        let samples: Vec<Sample> = (11..=last / 2)
            .map(|k| {
                let x = 2 * k;
                let mut values = [0.0, 3e6, 1e7, 5000.0, 20000.0, 5.0];
                values[Metric::AllocBlocks as usize] = 20000.0 + 30.0 * sawtooth(x) + extra(x);
                Sample {
                    iteration: x,
                    values,
                }
            })
            .collect();
        let plan = Plan {
            gate: vec![Metric::AllocBlocks],
            tolerance: Metric::ALL
                .into_iter()
                .map(|m| (m, m.default_tolerance()))
                .collect(),
            confidence: 0.99,
            warmup: 20,
            looks: schedule(200, 800, 0.99),
        };
        let report = HolderReport {
            look: 0,
            probed_at: 200,
            probe: Probe {
                survivors: 6000,
                sampled: 48,
                unattributed: 0,
                holders: vec![Holder {
                    name: "sqlalchemy.engine.base.Engine._compiled_cache".to_string(),
                    type_name: "sqlalchemy.util._collections.LRUCache".to_string(),
                    size: Some(220),
                    bound: Some(Bound {
                        kind: BoundKind::Attribute,
                        capacity: 500,
                        attribute: Some("capacity".to_string()),
                    }),
                    share: 0.98,
                    scanned: false,
                    growth: Some(1.0),
                }],
            },
            outcome: Outcome::Saturated {
                saturated_at: 1002 - 20,
                end: last - 20,
            },
            sizes: (111..=last / 2).map(|k| (2 * k, sawtooth(2 * k))).collect(),
            note: None,
            probe_secs: 0.03,
        };
        (samples, plan, report)
    }

    #[test]
    fn a_trimmed_cache_passes_once_full_naming_its_holder() {
        let (samples, plan, report) = run(1402, |_| 0.0);
        let decision = decide_with_holders(&samples, &plan, &report);
        assert_eq!(decision.verdict, Verdict::Pass, "{}", decision.reason);
        assert!(
            decision.reason.contains(
                "until iteration 1002, then flat — held by \
                 sqlalchemy.engine.base.Engine._compiled_cache (LRUCache, capacity 500)"
            ),
            "{}",
            decision.reason
        );
        assert_eq!(decision.stop.measured_iterations, 1382);
        // Without the holder's size taken out, the same samples swing too much to decide.
        let raw = judge_window_of(&between(&samples, 1002, 1402), None, &plan, &report, 1382);
        assert_ne!(raw.verdict, Verdict::Pass, "{}", raw.reason);
    }

    #[test]
    fn a_leak_beside_a_trimmed_cache_is_still_a_leak() {
        // One block per iteration kept beside the cache: ten times the tolerance.
        let (samples, plan, report) = run(1402, |x| x as f64);
        let decision = decide_with_holders(&samples, &plan, &report);
        assert_eq!(decision.verdict, Verdict::Leak, "{}", decision.reason);
        assert!(
            decision.reason.contains("after sqlalchemy"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn a_holder_that_makes_new_highs_is_not_taken_out() {
        let (samples, plan, mut report) = run(1402, |_| 0.0);
        // The same sizes, but rising past the peak seen before saturation.
        for (x, size) in &mut report.sizes {
            if *x > 1002 {
                *size += (*x - 1002) as f64;
            }
        }
        let decision = decide_with_holders(&samples, &plan, &report);
        assert_ne!(decision.verdict, Verdict::Pass, "{}", decision.reason);
    }

    #[test]
    fn size_growing_with_the_iterations_cannot_explain_a_trend() {
        let points: Vec<(f64, f64, f64)> = (0..100)
            .map(|k| (k as f64, 5.0 * k as f64, k as f64))
            .collect();
        assert_eq!(per_entry(&points), None);
        let swinging: Vec<(f64, f64, f64)> = (0..100)
            .map(|k| {
                let h = (k % 25) as f64;
                (k as f64, 7.0 * h + 0.5 * k as f64, h)
            })
            .collect();
        let beta = per_entry(&swinging).unwrap();
        assert!((beta - 7.0).abs() < 1e-9, "{beta}");
    }

    #[test]
    fn unbounded_growth_keeps_the_looks_verdict_and_names_the_holder() {
        let (samples, plan, mut report) = run(1402, |_| 0.0);
        report.outcome = Outcome::Unbounded;
        report.probe.holders[0].bound = None;
        let decision = decide_with_holders(&samples, &plan, &report);
        assert_eq!(decision.verdict, Verdict::Leak, "{}", decision.reason);
        assert_eq!(decision.stop.look, 1);
        assert!(
            decision.reason.contains(
                "held by sqlalchemy.engine.base.Engine._compiled_cache (LRUCache, no bound)"
            ),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn a_cache_beyond_the_time_budget_says_to_raise_the_timeout() {
        // Growth judged at the look: the run stopped at 200 measured iterations.
        let (samples, plan, mut report) = run(220, |_| 0.0);
        report.outcome = Outcome::BeyondBudget {
            fill_at: 1004,
            budget: 5000,
            timeout_secs: Some(300.0),
        };
        let decision = decide_with_holders(&samples, &plan, &report);
        assert!(
            decision.reason.contains(
                "which would be full only after about 1004 measured iterations, and at this \
                 pace 1404 would take more than half the scenario's timeout of 300 s: if it is \
                 a cache, raise timeout to let it fill"
            ),
            "{}",
            decision.reason
        );
        report.outcome = Outcome::BeyondBudget {
            fill_at: 9000,
            budget: 5000,
            timeout_secs: None,
        };
        let decision = decide_with_holders(&samples, &plan, &report);
        assert!(
            decision
                .reason
                .contains("beyond the 5000 this run may make"),
            "{}",
            decision.reason
        );
    }
}
