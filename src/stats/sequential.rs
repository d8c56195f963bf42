//! When to look at the data, and at which confidence, so that stopping early costs no accuracy.
//!
//! An adaptive run looks at its samples several times ("looks") and stops at the first one that
//! decides. Looking repeatedly at the same level would raise the error rates, so the total error
//! `α = 1 − confidence` is *spent* across the looks (Bonferroni, or the union bound): look `k`
//! uses `α_k = w_k · α` with `Σ w_k = 1`, and the chance of a wrong `leak` (or a wrong `pass`) at
//! any look is at most what a single fixed-count test at `confidence` allows, however the looks
//! are correlated.
//!
//! The schedule, in measured iterations, for a minimum `m` below the maximum `M`: `m`, `2m`,
//! `3m`, … and `M`. The look at `m` gets half of α, so a scenario decided at the minimum is
//! judged almost as a fixed-count run would be; the later looks share the other half evenly.
//! There is no look before `m`: a bounded cache still filling is, over that stretch, exactly a
//! leak, and the configured minimum is the user's statement of how long filling may take. A
//! clear leak therefore stops at `m` rather than at `M`.
//!
//! With `M = m` there is a single look at full confidence: the fixed-count design.
//!
//! A maximum more than [`MAX_LATER_LOOKS`] times the minimum spaces the later looks wider (a
//! whole number of minimums apart), so that the number of looks, and the fits the worker makes
//! at them, stay bounded whatever `max_iterations` says.

use serde::{Deserialize, Serialize};

/// Share of α of the look at the configured minimum when more looks follow.
const MINIMUM_SHARE: f64 = 0.5;

/// Most looks after the one at the minimum.
pub const MAX_LATER_LOOKS: u64 = 100;

/// One planned look at the samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Look {
    /// Measured iterations completed at this look.
    pub measured: u64,
    /// Two-sided confidence of the intervals at this look (`1 − α_k`).
    pub confidence: f64,
}

/// The looks of a run with `minimum` to `maximum` measured iterations and overall two-sided
/// `confidence`.
pub fn schedule(minimum: u64, maximum: u64, confidence: f64) -> Vec<Look> {
    let alpha = 1.0 - confidence;
    let maximum = maximum.max(minimum);
    if maximum == minimum {
        return vec![Look {
            measured: minimum,
            confidence,
        }];
    }
    // Rounds of `minimum`, as many per step as keep the looks under the cap.
    let round = minimum.max(1);
    let rounds = (maximum - minimum).div_ceil(round);
    let step = round.saturating_mul(rounds.div_ceil(MAX_LATER_LOOKS).max(1));
    let mut later = Vec::new();
    let mut next = minimum.saturating_add(step);
    while next < maximum {
        later.push(next);
        next = next.saturating_add(step);
    }
    later.push(maximum);
    let later_share = (1.0 - MINIMUM_SHARE) / later.len() as f64;
    let look = |measured, share: f64| Look {
        measured,
        confidence: 1.0 - alpha * share,
    };
    std::iter::once(look(minimum, MINIMUM_SHARE))
        .chain(later.into_iter().map(|m| look(m, later_share)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_design_is_one_look_at_full_confidence() {
        assert_eq!(
            schedule(200, 200, 0.99),
            vec![Look {
                measured: 200,
                confidence: 0.99,
            }]
        );
    }

    #[test]
    fn default_adaptive_schedule_spends_alpha_once() {
        let looks = schedule(200, 800, 0.99);
        let at: Vec<u64> = looks.iter().map(|l| l.measured).collect();
        assert_eq!(at, [200, 400, 600, 800]);
        let spent: f64 = looks.iter().map(|l| 1.0 - l.confidence).sum();
        assert!((spent - 0.01).abs() < 1e-12, "{spent}");
        assert!((looks[0].confidence - 0.995).abs() < 1e-12);
    }

    #[test]
    fn a_huge_maximum_spaces_the_looks_instead_of_planning_one_per_round() {
        // Once a vector of 10¹² looks (16 TB): now at most 101, a whole number of rounds apart.
        let looks = schedule(3, 3_000_000_000_000, 0.99);
        assert_eq!(looks.len() as u64, MAX_LATER_LOOKS + 1);
        assert_eq!(looks.last().unwrap().measured, 3_000_000_000_000);
        assert!(looks.iter().all(|l| l.measured % 3 == 0));
        let spent: f64 = looks.iter().map(|l| 1.0 - l.confidence).sum();
        assert!((spent - 0.01).abs() < 1e-12, "{spent}");
        // At the cap exactly, the rounds are unchanged.
        let at: Vec<u64> = schedule(10, 1010, 0.99)
            .iter()
            .map(|l| l.measured)
            .collect();
        assert_eq!(at.len(), 101);
        assert_eq!(at[..3], [10, 20, 30]);
    }

    #[test]
    fn a_maximum_between_rounds_is_the_last_look() {
        let at: Vec<u64> = schedule(30, 100, 0.99).iter().map(|l| l.measured).collect();
        assert_eq!(at, [30, 60, 90, 100]);
    }
}
