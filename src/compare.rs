//! Comparing a run with a previous one (the baseline): new leaks, fixed leaks, growth that rose
//! significantly, scenarios added or removed.
//!
//! Pure: it takes two [`RunResults`] and returns a [`Comparison`] (a type of
//! [`crate::results`]), which becomes the optional `baseline` section of `results.json` and is
//! rendered by every report. Reading the baseline file is the caller's business.
//!
//! Growth means the figure the verdict used ([`ScenarioResult::deciding`]: the robust fit). The rule for
//! a **significant rise** of one gated metric (the README documents it):
//! - the confidence intervals do not overlap, the new one above: `new.ci_low > old.ci_high`;
//! - and the growth rose by at least [`MIN_RELATIVE_RISE`] of the old growth and at least
//!   [`MIN_DEFAULT_TOLERANCE_FRACTION`] of the metric's default tolerance (2 B/iter for
//!   tracemalloc, 0.025/iter for alloc_blocks), so that a rise from 0.02 B/iter to 0.05 B/iter
//!   with tight intervals (noise any code change can cause) is not reported, while a rise from
//!   0 to 40 B/iter is, even under a generous scenario tolerance.
//!
//! A significant fall is the mirror image and is reported as an improvement.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::metric::Metric;
use crate::results::{
    Change, Comparison, ComparisonSummary, Growth, MetricComparison, RunResults,
    ScenarioComparison, ScenarioResult, Shift, Summary,
};
use crate::verdict::Verdict;

/// A rise must be at least this fraction of the old growth per iteration to count.
pub const MIN_RELATIVE_RISE: f64 = 0.10;

/// A rise must be at least this fraction of the metric's default tolerance to count.
pub const MIN_DEFAULT_TOLERANCE_FRACTION: f64 = 0.25;

/// The significance rule in one sentence, for reports.
pub const RULE: &str = "a rise is significant when the confidence intervals do not overlap, the \
    new one higher, and the growth rose by at least 10 % of the old growth and a quarter of the \
    metric's default tolerance";

/// Compares `new` with `old`, read from `old_file`. Baseline scenarios named in `left_out` (the
/// suite has them, this run's `-k` or `--partition` did not select them) are not compared and
/// not called removed: only counted.
pub fn compare(
    old: &RunResults,
    old_file: &Path,
    new: &RunResults,
    left_out: &HashSet<String>,
) -> Comparison {
    let old_by_name: HashMap<&str, &ScenarioResult> =
        old.scenarios.iter().map(|s| (s.name.as_str(), s)).collect();
    let new_names: HashSet<&str> = new.scenarios.iter().map(|s| s.name.as_str()).collect();

    let mut scenarios: Vec<ScenarioComparison> = new
        .scenarios
        .iter()
        .map(|now| match old_by_name.get(now.name.as_str()) {
            Some(before) => compare_scenario(before, now),
            None => ScenarioComparison {
                name: now.name.clone(),
                change: Change::Added,
                old_verdict: None,
                new_verdict: Some(now.verdict),
                metrics: gated_metrics(now, None, Some(now)),
            },
        })
        .collect();
    let not_selected = old
        .scenarios
        .iter()
        .filter(|before| {
            left_out.contains(&before.name) && !new_names.contains(before.name.as_str())
        })
        .count();
    scenarios.extend(
        old.scenarios
            .iter()
            .filter(|before| !new_names.contains(before.name.as_str()))
            .filter(|before| !left_out.contains(&before.name))
            .map(|before| ScenarioComparison {
                name: before.name.clone(),
                change: Change::Removed,
                old_verdict: Some(before.verdict),
                new_verdict: None,
                metrics: gated_metrics(before, Some(before), None),
            }),
    );
    // Stable: equal changes keep run order.
    scenarios.sort_by_key(|s| s.change);

    Comparison {
        file: old_file.to_path_buf(),
        started_at: old.started_at.clone(),
        tool_version: old.tool.version.clone(),
        fail_on_regression: false,
        summary: ComparisonSummary {
            not_selected,
            ..summarize(&scenarios)
        },
        scenarios,
    }
}

/// Makes every significant rise fail the gate (`--fail-on-regression`): marks those scenarios
/// not `ok` and recounts the summary. Does nothing without a comparison.
pub fn apply_regression_gate(results: &mut RunResults) {
    let Some(comparison) = results.baseline.as_mut() else {
        return;
    };
    comparison.fail_on_regression = true;
    for entry in &comparison.scenarios {
        if entry.change != Change::Regression {
            continue;
        }
        if let Some(scenario) = results.scenarios.iter_mut().find(|s| s.name == entry.name) {
            scenario.ok = false;
        }
    }
    results.summary = Summary::of(&results.scenarios);
}

/// Whether `name` fails the gate because of a significant rise (for labels in reports).
pub fn regressed(results: &RunResults, name: &str) -> bool {
    results.baseline.as_ref().is_some_and(|c| {
        c.scenarios
            .iter()
            .any(|s| s.name == name && s.change == Change::Regression)
    })
}

fn compare_scenario(before: &ScenarioResult, now: &ScenarioResult) -> ScenarioComparison {
    let metrics = gated_metrics(now, Some(before), Some(now));
    let rose = metrics.iter().any(|m| m.shift == Shift::Rose);
    let fell = metrics.iter().any(|m| m.shift == Shift::Fell);
    let change = match (before.verdict, now.verdict) {
        (old, Verdict::Leak) if old != Verdict::Leak => Change::NewLeak,
        _ if rose => Change::Regression,
        (Verdict::Leak, Verdict::Pass) => Change::FixedLeak,
        (old, new) if old != new => Change::VerdictChanged,
        _ if fell => Change::Improvement,
        _ => Change::Unchanged,
    };
    ScenarioComparison {
        name: now.name.clone(),
        change,
        old_verdict: Some(before.verdict),
        new_verdict: Some(now.verdict),
        metrics,
    }
}

/// The metrics gated by `gating`, each with its old and new growth.
fn gated_metrics(
    gating: &ScenarioResult,
    before: Option<&ScenarioResult>,
    now: Option<&ScenarioResult>,
) -> Vec<MetricComparison> {
    gating
        .gate
        .iter()
        .map(|&metric| {
            let old = before.and_then(|s| s.deciding(metric));
            let new = now.and_then(|s| s.deciding(metric));
            let shift = match (old, new) {
                (Some(old), Some(new)) => shift(metric, old, new),
                _ => Shift::NotCompared,
            };
            MetricComparison {
                metric,
                old,
                new,
                shift,
            }
        })
        .collect()
}

/// The significance rule from the module documentation.
pub fn shift(metric: Metric, old: Growth, new: Growth) -> Shift {
    let (low, high, sign) = if new.ci_low > old.ci_high {
        (old, new, Shift::Rose)
    } else if new.ci_high < old.ci_low {
        (new, old, Shift::Fell)
    } else {
        return Shift::Same;
    };
    let change = high.slope - low.slope;
    let needed = (MIN_RELATIVE_RISE * old.slope.abs())
        .max(MIN_DEFAULT_TOLERANCE_FRACTION * metric.default_tolerance());
    if change >= needed && change > 0.0 {
        sign
    } else {
        Shift::Same
    }
}

fn summarize(scenarios: &[ScenarioComparison]) -> ComparisonSummary {
    let mut summary = ComparisonSummary::default();
    for s in scenarios {
        let count = match s.change {
            Change::NewLeak => &mut summary.new_leaks,
            Change::Regression => &mut summary.regressions,
            Change::VerdictChanged => &mut summary.verdict_changes,
            Change::FixedLeak => &mut summary.fixed_leaks,
            Change::Improvement => &mut summary.improvements,
            Change::Added => &mut summary.added,
            Change::Removed => &mut summary.removed,
            Change::Unchanged => &mut summary.unchanged,
        };
        *count += 1;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn growth(slope: f64, half_width: f64) -> Growth {
        Growth {
            slope,
            ci_low: slope - half_width,
            ci_high: slope + half_width,
        }
    }

    use crate::results::examples::{run, scenario};

    fn change_of(comparison: &Comparison, name: &str) -> Change {
        comparison
            .scenarios
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .change
    }

    const T: Metric = Metric::Tracemalloc;

    #[test]
    fn disjoint_intervals_with_a_real_rise_are_significant() {
        assert_eq!(shift(T, growth(36.0, 0.5), growth(72.0, 0.5)), Shift::Rose);
        assert_eq!(shift(T, growth(72.0, 0.5), growth(36.0, 0.5)), Shift::Fell);
    }

    #[test]
    fn overlapping_intervals_are_not_significant() {
        assert_eq!(
            shift(T, growth(36.0, 10.0), growth(50.0, 10.0)),
            Shift::Same
        );
    }

    #[test]
    fn tiny_rises_with_tight_intervals_are_noise() {
        // Disjoint, but 0.03 B/iter is far below a quarter of the default 8 B tolerance.
        assert_eq!(
            shift(T, growth(0.02, 0.001), growth(0.05, 0.001)),
            Shift::Same
        );
        assert_eq!(shift(T, growth(0.0, 0.0), growth(1.0, 0.1)), Shift::Same);
        // Disjoint, above the floor, but under 10 % of a large leak.
        assert_eq!(
            shift(T, growth(1000.0, 1.0), growth(1050.0, 1.0)),
            Shift::Same
        );
    }

    #[test]
    fn a_rise_under_tolerance_still_counts() {
        // 0 → 4 B/iter stays under the 8 B tolerance but is a real change.
        assert_eq!(shift(T, growth(0.0, 0.0), growth(4.0, 0.5)), Shift::Rose);
    }

    #[test]
    fn the_floor_follows_the_metric() {
        // One more block every 20 iterations is a rise for alloc_blocks (floor 0.025/iter).
        let blocks = Metric::AllocBlocks;
        assert_eq!(
            shift(blocks, growth(0.0, 0.0), growth(0.05, 0.01)),
            Shift::Rose
        );
        assert_eq!(
            shift(blocks, growth(0.0, 0.0), growth(0.01, 0.001)),
            Shift::Same
        );
    }

    #[test]
    fn classifies_every_kind_of_change() {
        let old = run(vec![
            scenario("stays-clean", Verdict::Pass, (0.0, 0.0)),
            scenario("starts-leaking", Verdict::Pass, (0.0, 0.0)),
            scenario("gets-fixed", Verdict::Leak, (36.0, 0.5)),
            scenario("leaks-faster", Verdict::Leak, (36.0, 0.5)),
            scenario("now-errors", Verdict::Pass, (0.0, 0.0)),
            scenario("leaks-slower", Verdict::Leak, (72.0, 0.5)),
            scenario("deleted", Verdict::Pass, (0.0, 0.0)),
        ]);
        let new = run(vec![
            scenario("stays-clean", Verdict::Pass, (0.0, 0.0)),
            scenario("starts-leaking", Verdict::Leak, (36.0, 0.5)),
            scenario("gets-fixed", Verdict::Pass, (0.0, 0.0)),
            scenario("leaks-faster", Verdict::Leak, (72.0, 0.5)),
            scenario("now-errors", Verdict::Error, (0.0, 0.0)),
            scenario("leaks-slower", Verdict::Leak, (36.0, 0.5)),
            scenario("brand-new", Verdict::Pass, (0.0, 0.0)),
        ]);
        let comparison = compare(&old, Path::new("old.json"), &new, &HashSet::new());
        assert_eq!(change_of(&comparison, "stays-clean"), Change::Unchanged);
        assert_eq!(change_of(&comparison, "starts-leaking"), Change::NewLeak);
        assert_eq!(change_of(&comparison, "gets-fixed"), Change::FixedLeak);
        assert_eq!(change_of(&comparison, "leaks-faster"), Change::Regression);
        assert_eq!(change_of(&comparison, "now-errors"), Change::VerdictChanged);
        assert_eq!(change_of(&comparison, "leaks-slower"), Change::Improvement);
        assert_eq!(change_of(&comparison, "brand-new"), Change::Added);
        assert_eq!(change_of(&comparison, "deleted"), Change::Removed);

        let order: Vec<Change> = comparison.scenarios.iter().map(|s| s.change).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "most important changes first");
        assert_eq!(
            comparison.summary,
            ComparisonSummary {
                new_leaks: 1,
                regressions: 1,
                verdict_changes: 1,
                fixed_leaks: 1,
                improvements: 1,
                added: 1,
                removed: 1,
                not_selected: 0,
                unchanged: 1,
            }
        );
    }

    #[test]
    fn the_regression_gate_fails_only_significant_rises() {
        let old = run(vec![
            scenario("rises-under-tolerance", Verdict::Pass, (0.0, 0.0)),
            scenario("flat", Verdict::Pass, (0.0, 0.0)),
        ]);
        let mut new = run(vec![
            scenario("rises-under-tolerance", Verdict::Pass, (4.0, 0.5)),
            scenario("flat", Verdict::Pass, (0.0, 0.0)),
        ]);
        new.baseline = Some(compare(&old, Path::new("old.json"), &new, &HashSet::new()));
        assert_eq!(new.summary.failed, 0);
        assert!(regressed(&new, "rises-under-tolerance"));

        apply_regression_gate(&mut new);
        assert_eq!(new.summary.failed, 1);
        assert!(!new.scenarios[0].ok);
        assert!(new.scenarios[1].ok);
        assert!(new.baseline.as_ref().unwrap().fail_on_regression);
    }

    #[test]
    fn without_a_baseline_the_gate_changes_nothing() {
        let mut new = run(vec![scenario("a", Verdict::Pass, (4.0, 0.5))]);
        apply_regression_gate(&mut new);
        assert_eq!(new.summary.failed, 0);
    }
}
