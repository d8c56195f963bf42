//! From fits, tolerances and expectations to a verdict: the CI gate's rule, in one place.
//!
//! For each gated metric the slope's confidence interval is compared with the metric's tolerance
//! (allowed growth per iteration):
//! - the whole interval above the tolerance: the metric **grows**;
//! - the whole interval at or below the tolerance: the metric is **within** tolerance;
//! - otherwise it is **unclear**.
//!
//! A scenario is `leak` when any gated metric grows, `pass` when every gated metric is within,
//! and `inconclusive` otherwise. Errors (exceptions, crashes, timeouts) are `error` whatever the
//! samples say.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metric::Metric;
use crate::protocol::Sample;
use crate::scenario::Expect;
use crate::stats::{Fit, fit_ols};
use crate::units::format_quantity;

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
}

impl Verdict {
    /// The lower-case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Leak => "leak",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
        }
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
    /// The whole confidence interval lies above the tolerance.
    Grows,
    /// The whole confidence interval lies at or below the tolerance.
    Within,
    /// The interval straddles the tolerance.
    Unclear,
    /// Too few samples to fit a line.
    NoFit,
}

/// One metric's fit and how it was judged.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricJudgement {
    /// Which metric.
    pub metric: Metric,
    /// The fitted growth, if there were enough samples.
    pub fit: Option<Fit>,
    /// Allowed growth per iteration.
    pub tolerance: f64,
    /// Whether this metric takes part in the verdict.
    pub gated: bool,
    /// The comparison of the interval with the tolerance.
    pub call: Call,
}

/// The verdict of a scenario that ran to the end, with the reason in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// pass, leak or inconclusive.
    pub verdict: Verdict,
    /// One sentence a user can act on.
    pub reason: String,
    /// Every metric's judgement, gated or not, in [`Metric::ALL`] order.
    pub metrics: Vec<MetricJudgement>,
}

/// Fits every metric over the measured samples and applies the rule described above.
pub fn decide(
    samples: &[Sample],
    gate: &[Metric],
    tolerance: &BTreeMap<Metric, f64>,
    confidence: f64,
) -> Decision {
    let metrics: Vec<MetricJudgement> = Metric::ALL
        .into_iter()
        .map(|metric| {
            let points: Vec<(f64, f64)> = samples
                .iter()
                .map(|s| (s.iteration as f64, s.get(metric)))
                .collect();
            let fit = fit_ols(&points, confidence);
            let allowed = tolerance
                .get(&metric)
                .copied()
                .unwrap_or_else(|| metric.default_tolerance());
            let call = match fit {
                None => Call::NoFit,
                Some(f) if f.ci_low > allowed => Call::Grows,
                Some(f) if f.ci_high <= allowed => Call::Within,
                Some(_) => Call::Unclear,
            };
            MetricJudgement {
                metric,
                fit,
                tolerance: allowed,
                gated: gate.contains(&metric),
                call,
            }
        })
        .collect();

    let gated: Vec<&MetricJudgement> = metrics.iter().filter(|m| m.gated).collect();
    let level = confidence * 100.0;
    let (verdict, reason) = if let Some(growing) = gated.iter().find(|m| m.call == Call::Grows) {
        (Verdict::Leak, describe(growing, level, "above"))
    } else if !gated.is_empty() && gated.iter().all(|m| m.call == Call::Within) {
        let names: Vec<&str> = gated.iter().map(|m| m.metric.name()).collect();
        (
            Verdict::Pass,
            format!(
                "{} within tolerance at {level} % confidence",
                names.join(", ")
            ),
        )
    } else if let Some(unclear) = gated.iter().find(|m| m.call == Call::Unclear) {
        (
            Verdict::Inconclusive,
            describe(unclear, level, "straddling"),
        )
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
    }
}

/// "tracemalloc grew 1.2 KiB/iter, 99 % CI [1.1 KiB, 1.3 KiB], above tolerance 8 B".
fn describe(judgement: &MetricJudgement, level: f64, relation: &str) -> String {
    let unit = judgement.metric.unit();
    let fit = judgement.fit.expect("a judged metric has a fit");
    format!(
        "{} grew {}/iter, {level} % CI [{}, {}], {relation} tolerance {}",
        judgement.metric,
        format_quantity(fit.slope, unit),
        format_quantity(fit.ci_low, unit),
        format_quantity(fit.ci_high, unit),
        format_quantity(judgement.tolerance, unit),
    )
}

/// Whether a verdict is what the scenario expected: the CI gate per scenario.
///
/// `expect: leak` is strict, like pytest's `xfail(strict=True)`: the known leak must be found.
/// `inconclusive` fails only with `--fail-on-inconclusive`; `error` always fails.
pub fn is_ok(verdict: Verdict, expect: Expect, fail_on_inconclusive: bool) -> bool {
    match (verdict, expect) {
        (Verdict::Error, _) => false,
        (Verdict::Inconclusive, _) => !fail_on_inconclusive,
        (Verdict::Pass, Expect::Pass) | (Verdict::Leak, Expect::Leak) => true,
        (Verdict::Pass, Expect::Leak) | (Verdict::Leak, Expect::Pass) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(f: impl Fn(u64) -> f64) -> Vec<Sample> {
        (0..60)
            .map(|i| Sample {
                iteration: 20 + i * 2,
                values: [f(i), 1e7, 5000.0, 20000.0 + f(i) / 40.0, 5.0],
            })
            .collect()
    }

    fn tolerances() -> BTreeMap<Metric, f64> {
        Metric::ALL
            .into_iter()
            .map(|m| (m, m.default_tolerance()))
            .collect()
    }

    #[test]
    fn steady_growth_is_a_leak_with_a_readable_reason() {
        let d = decide(
            &samples(|i| 1000.0 + 80.0 * i as f64),
            &Metric::DEFAULT_GATE,
            &tolerances(),
            0.99,
        );
        assert_eq!(d.verdict, Verdict::Leak);
        assert!(
            d.reason.starts_with("tracemalloc grew 40 B/iter"),
            "{}",
            d.reason
        );
        assert!(d.reason.contains("above tolerance 8 B"), "{}", d.reason);
    }

    #[test]
    fn flat_series_passes() {
        let d = decide(
            &samples(|_| 1000.0),
            &Metric::DEFAULT_GATE,
            &tolerances(),
            0.99,
        );
        assert_eq!(d.verdict, Verdict::Pass, "{}", d.reason);
    }

    #[test]
    fn noise_around_the_tolerance_is_inconclusive() {
        // Slope 8 B/iter exactly at tolerance, with noise: neither above nor below.
        let d = decide(
            &samples(|i| 8.0 * (i as f64 * 2.0 + 20.0) + if i % 2 == 0 { 300.0 } else { -300.0 }),
            &[Metric::Tracemalloc],
            &tolerances(),
            0.99,
        );
        assert_eq!(d.verdict, Verdict::Inconclusive, "{}", d.reason);
    }

    #[test]
    fn ungated_growth_does_not_decide() {
        let mut data = samples(|_| 1000.0);
        for (k, s) in data.iter_mut().enumerate() {
            s.values[1] = 1e7 + 1e5 * k as f64; // rss grows, but is not gated
        }
        let d = decide(&data, &Metric::DEFAULT_GATE, &tolerances(), 0.99);
        assert_eq!(d.verdict, Verdict::Pass);
    }

    #[test]
    fn expectations_gate_like_strict_xfail() {
        assert!(is_ok(Verdict::Pass, Expect::Pass, false));
        assert!(!is_ok(Verdict::Leak, Expect::Pass, false));
        assert!(is_ok(Verdict::Leak, Expect::Leak, false));
        assert!(!is_ok(Verdict::Pass, Expect::Leak, false));
        assert!(!is_ok(Verdict::Error, Expect::Leak, false));
        assert!(is_ok(Verdict::Inconclusive, Expect::Pass, false));
        assert!(!is_ok(Verdict::Inconclusive, Expect::Pass, true));
    }
}
