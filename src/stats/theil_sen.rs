//! The Theil–Sen slope: the median of the slopes between every pair of samples, with the
//! rank-based confidence interval of Sen (1968).
//!
//! Up to 29 % of the samples can be arbitrarily wrong (a GC spike, an arena released once)
//! without moving the median far, where one such point can bend a least-squares line. The
//! interval takes the order statistics of the pairwise slopes at ranks `(N ∓ C)/2`, with
//! `C = z · √Var(S)` from Kendall's S ([`super::mann_kendall`]): the same variance, with its tie
//! and autocorrelation corrections, so the interval and the trend test agree.

use statrs::distribution::{ContinuousCDF, Normal};

/// A robust line and the interval of its slope.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TheilSen {
    /// Median pairwise slope.
    pub slope: f64,
    /// Median of `y − slope · x`: the line's value at `x = 0`.
    pub intercept: f64,
    /// Lower end of the slope's interval.
    pub ci_low: f64,
    /// Upper end of the slope's interval.
    pub ci_high: f64,
}

/// Slopes between every pair of points with different `x`.
pub fn pairwise_slopes(points: &[(f64, f64)]) -> Vec<f64> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    slopes
}

/// The `k`-th smallest value (0-based) of `values`, reordering them.
fn nth(values: &mut [f64], k: usize) -> f64 {
    *values.select_nth_unstable_by(k, f64::total_cmp).1
}

/// Median of `values` (reorders them); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let upper = nth(values, n / 2);
    if n % 2 == 1 {
        return Some(upper);
    }
    let lower = values[..n / 2]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    Some((lower + upper) / 2.0)
}

/// The median pairwise slope alone; `None` without two points of different `x`.
pub fn median_slope(points: &[(f64, f64)]) -> Option<f64> {
    median(&mut pairwise_slopes(points))
}

/// Every pairwise slope of a set of points and their median, computed once for the slope, the
/// residuals and the interval of one fit.
#[derive(Clone, Debug)]
pub struct PairwiseSlopes {
    /// Split at the middle by the median's selection: the lower half holds the smaller slopes.
    slopes: Vec<f64>,
    median: f64,
}

impl PairwiseSlopes {
    /// The slopes of `points`; `None` without two points of different `x`.
    pub fn of(points: &[(f64, f64)]) -> Option<PairwiseSlopes> {
        let mut slopes = pairwise_slopes(points);
        let median = median(&mut slopes)?;
        Some(PairwiseSlopes { slopes, median })
    }

    /// The median slope, as [`median_slope`] gives it.
    pub fn median(&self) -> f64 {
        self.median
    }

    /// The `k`-th smallest slope (0-based, at most the last): a selection in the half that holds
    /// it only, as the median left them split.
    fn nth(&mut self, k: usize) -> f64 {
        let middle = self.slopes.len() / 2;
        if k < middle {
            nth(&mut self.slopes[..middle], k)
        } else {
            nth(&mut self.slopes[middle..], k - middle)
        }
    }
}

/// Theil–Sen fit with a two-sided interval at `confidence`, where `var_s` is the variance of
/// Kendall's S for these points (see [`super::mann_kendall::s_variance`] and the autocorrelation
/// factor). Ranks beyond the available slopes are clamped to the extreme slopes, so with very few
/// points the interval spans every pairwise slope. `None` without two points of different `x`.
pub fn theil_sen(points: &[(f64, f64)], var_s: f64, confidence: f64) -> Option<TheilSen> {
    Some(theil_sen_with(
        points,
        PairwiseSlopes::of(points)?,
        var_s,
        confidence,
    ))
}

/// [`theil_sen`] from the slopes of `points` already computed.
pub fn theil_sen_with(
    points: &[(f64, f64)],
    mut slopes: PairwiseSlopes,
    var_s: f64,
    confidence: f64,
) -> TheilSen {
    let slope = slopes.median;
    let (low_index, high_index) = interval_indices(slopes.slopes.len(), var_s, confidence);
    let ci_low = slopes.nth(low_index).min(slope);
    let ci_high = slopes.nth(high_index).max(slope);
    let mut offsets: Vec<f64> = points.iter().map(|(x, y)| y - slope * x).collect();
    let intercept = median(&mut offsets).expect("a point for every slope");
    TheilSen {
        slope,
        intercept,
        ci_low,
        ci_high,
    }
}

/// 0-based positions, among `count` sorted slopes, of the ends of the interval.
fn interval_indices(count: usize, var_s: f64, confidence: f64) -> (usize, usize) {
    let z = Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    let c = z * var_s.max(0.0).sqrt();
    let last = count - 1;
    let count = count as f64;
    // Hollander & Wolfe: the M1-th and (M2 + 1)-th smallest slopes (1-based), rounded outward.
    let low_rank = ((count - c) / 2.0).floor();
    let high_rank = ((count + c) / 2.0).ceil() + 1.0;
    let low_index = ((low_rank - 1.0).max(0.0) as usize).min(last);
    let high_index = ((high_rank - 1.0).max(0.0) as usize).min(last);
    (low_index, high_index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::mann_kendall::s_variance;
    use proptest::prelude::*;

    fn fit(points: &[(f64, f64)]) -> TheilSen {
        let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
        theil_sen(points, s_variance(&ys), 0.99).unwrap()
    }

    #[test]
    fn exact_line_is_recovered_with_a_point_interval() {
        let points: Vec<(f64, f64)> = (0..40).map(|i| (i as f64, 5.0 + 36.0 * i as f64)).collect();
        let f = fit(&points);
        assert_eq!(f.slope, 36.0);
        assert_eq!(f.intercept, 5.0);
        assert_eq!((f.ci_low, f.ci_high), (36.0, 36.0));
    }

    #[test]
    fn outliers_do_not_move_the_slope() {
        // A flat series with three huge spikes (a GC pause, an arena step and back).
        let points: Vec<(f64, f64)> = (0..60)
            .map(|i| {
                let spike = if matches!(i, 10 | 30 | 59) { 1e6 } else { 0.0 };
                (i as f64, 1000.0 + spike)
            })
            .collect();
        let f = fit(&points);
        assert_eq!(f.slope, 0.0);
        assert!(f.ci_low <= 0.0 && f.ci_high >= 0.0, "{f:?}");
        assert!(f.ci_high < 1.0, "{f:?}");
    }

    #[test]
    fn textbook_example_interval() {
        // Hollander & Wolfe style check by hand: 5 points, N = 10 slopes.
        let points = [(1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (4.0, 5.0), (5.0, 4.0)];
        let mut slopes = pairwise_slopes(&points);
        slopes.sort_by(f64::total_cmp);
        assert_eq!(slopes.len(), 10);
        let f = fit(&points);
        assert_eq!(f.slope, (slopes[4] + slopes[5]) / 2.0);
        // Var(S) = 5·4·15/18 = 16.67, C = 2.576 · 4.08 = 10.5 > N: the interval is every slope.
        assert_eq!((f.ci_low, f.ci_high), (slopes[0], slopes[9]));
    }

    proptest! {
        /// Selecting the interval's ends within the halves the median left gives the slopes a
        /// full sort puts at those positions.
        #[test]
        fn interval_ends_are_those_of_a_full_sort(
            ys in prop::collection::vec(-1e3..1e3f64, 3..80),
            whole in any::<bool>(),
            var_s in 0.0..5e4f64,
            confidence in 0.5..0.9999f64,
        ) {
            // Whole values repeat, so ties are common; every third x repeats.
            let points: Vec<(f64, f64)> = ys
                .iter()
                .enumerate()
                .map(|(i, &y)| ((i - i / 3) as f64, if whole { y.round() } else { y }))
                .collect();
            let mut sorted = pairwise_slopes(&points);
            sorted.sort_by(f64::total_cmp);
            let (low, high) = interval_indices(sorted.len(), var_s, confidence);
            let slope = median_slope(&points).unwrap();
            let f = theil_sen(&points, var_s, confidence).unwrap();
            prop_assert_eq!(f.slope, slope);
            prop_assert_eq!(f.ci_low, sorted[low].min(slope));
            prop_assert_eq!(f.ci_high, sorted[high].max(slope));
        }
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn no_slope_without_distinct_x() {
        assert!(median_slope(&[(1.0, 1.0), (1.0, 5.0)]).is_none());
    }
}
