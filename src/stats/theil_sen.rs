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
///
/// From [`BRACKET_FROM`] pairs on, the slopes are not all stored and sorted: see
/// [`bracketed_median`]. Same value either way.
pub fn median_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len();
    if n * n.saturating_sub(1) / 2 >= BRACKET_FROM
        && let Some(slope) = bracketed_median(points)
    {
        return Some(slope);
    }
    median(&mut pairwise_slopes(points))
}

/// An integer that orders floats as [`f64::total_cmp`] does (which computes the same).
fn order_key(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// Pairs from which [`median_slope`] brackets the median rather than selecting it among every
/// slope (about 360 points; the verdict's persistence check takes 1 250 of 10 000 samples).
const BRACKET_FROM: usize = 1 << 16;

/// Slopes sampled to bracket the median.
const BRACKET_SAMPLE: usize = 4096;

/// The median pairwise slope found without storing every slope, or `None` to fall back to
/// storing them: when a value is not finite or very large, or there are too few pairs to sample.
///
/// The slopes of pseudo-random pairs bracket the median: between the sample's order statistics
/// four binomial standard deviations either side of the median's expected rank. One pass over
/// every pair counts the slopes below the bracket and at its ends and keeps only those strictly
/// inside (a few percent), and the median is selected among those. The slopes are computed as
/// [`pairwise_slopes`] does and ordered as [`median`] orders them, so the value is the same to
/// the bit; the sample only decides how fast.
///
/// The sample can miss: slopes that share a point are correlated (one noisy point tilts all of
/// its slopes the same way), so the median's rank in the sample varies more than a binomial
/// rank, and a few data sets in a thousand put the median outside the first bracket. A miss then
/// widens the bracket and counts again, ending with no bound at all (every slope kept, as
/// [`pairwise_slopes`] would): the answer never depends on the sample, only the time does.
fn bracketed_median(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len();
    // Differences of values below 1e300 never make NaN (a slope may overflow to ±∞).
    if points
        .iter()
        .any(|p| !(p.0.abs() < 1e300 && p.1.abs() < 1e300))
    {
        return None;
    }
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    let mut same_x = 0;
    for run in xs.chunk_by(|a, b| a == b) {
        same_x += run.len() * (run.len() - 1) / 2;
    }
    let count = n * (n - 1) / 2 - same_x;
    if count < BRACKET_SAMPLE {
        return None;
    }

    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next_index = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let mut sample = Vec::with_capacity(BRACKET_SAMPLE);
    for _ in 0..4 * BRACKET_SAMPLE {
        let (i, j) = (next_index(), next_index());
        let (a, b) = (points[i.min(j)], points[i.max(j)]);
        if b.0 != a.0 {
            sample.push((b.1 - a.1) / (b.0 - a.0));
            if sample.len() == BRACKET_SAMPLE {
                break;
            }
        }
    }
    if sample.len() < BRACKET_SAMPLE {
        return None;
    }
    sample.sort_by(f64::total_cmp);
    let upper = count / 2;
    let lower = if count.is_multiple_of(2) {
        upper - 1
    } else {
        upper
    };
    let rank_in_sample = |k: usize| k * BRACKET_SAMPLE / count;
    let spread = 2 * BRACKET_SAMPLE.isqrt();
    // No slope is NaN, so the NaNs that `total_cmp` puts first and last bound nothing: the
    // last bracket keeps every slope and always holds the median.
    [1, 4, usize::MAX].into_iter().find_map(|widen| {
        let spread = spread.saturating_mul(widen);
        let lo = rank_in_sample(lower)
            .checked_sub(spread)
            .map_or(-f64::NAN, |i| sample[i]);
        let hi = rank_in_sample(upper)
            .checked_add(spread)
            .filter(|&i| i < BRACKET_SAMPLE)
            .map_or(f64::NAN, |i| sample[i]);
        median_in_bracket(points, count, lo, hi)
    })
}

/// The median of the `count` slopes of `points` (as [`median`] gives it) when it lies in the
/// bracket `lo..=hi` (ordered by [`f64::total_cmp`]), or `None` when it does not.
fn median_in_bracket(points: &[(f64, f64)], count: usize, lo: f64, hi: f64) -> Option<f64> {
    let upper = count / 2;
    let lower = if count.is_multiple_of(2) {
        upper - 1
    } else {
        upper
    };
    // Counted without branches, in the order of `f64::total_cmp`.
    let (lo_key, hi_key) = (order_key(lo), order_key(hi));
    let (mut below, mut at_lo, mut at_hi) = (0, 0, 0);
    let mut inside = Vec::new();
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                let slope = (b.1 - a.1) / (b.0 - a.0);
                let key = order_key(slope);
                below += usize::from(key < lo_key);
                at_lo += usize::from(key == lo_key);
                at_hi += usize::from(key == hi_key && hi_key != lo_key);
                if key > lo_key && key < hi_key {
                    inside.push(slope);
                }
            }
        }
    }
    // The k-th smallest slope, when it lies in the bracket.
    let mut order_statistic = |k: usize| {
        let k = k.checked_sub(below)?;
        if k < at_lo {
            return Some(lo);
        }
        let k = k - at_lo;
        if k < inside.len() {
            return Some(nth(&mut inside, k));
        }
        (k - inside.len() < at_hi).then_some(hi)
    };
    let high = order_statistic(upper)?;
    if lower == upper {
        return Some(high);
    }
    // `median` averages the largest of the lower half, which is this order statistic.
    let low = order_statistic(lower)?;
    Some((low + high) / 2.0)
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// The bracketed median equals the median of every stored slope, to the bit: lines,
        /// flat series, steps and noise, whole or fractional values, repeated x, odd and even
        /// numbers of pairs.
        #[test]
        fn bracketed_median_is_the_median_of_every_slope(
            n in 400usize..600,
            shape in 0u8..4,
            whole in any::<bool>(),
            repeat_every in prop_oneof![Just(usize::MAX), 2usize..9],
            seed in any::<u64>(),
        ) {
            let points = shaped_points(n, shape, whole, repeat_every, seed);
            let every = median(&mut pairwise_slopes(&points)).map(f64::to_bits);
            // Enough pairs to bracket: the test is not passed by the fallback.
            prop_assert_eq!(bracketed_median(&points).map(f64::to_bits), every);
            prop_assert_eq!(median_slope(&points).map(f64::to_bits), every);
        }
    }

    /// The points of the property above.
    fn shaped_points(
        n: usize,
        shape: u8,
        whole: bool,
        repeat_every: usize,
        seed: u64,
    ) -> Vec<(f64, f64)> {
        let mut state = seed;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((state >> 33) % 2001) as f64 / 10.0 - 100.0;
                let x = (i - i / repeat_every) as f64 + 20.0;
                let y = match shape {
                    0 => 2e6 + 36.0 * x + noise,
                    1 => 5.0,
                    2 => 3e7 + 4096.0 * (x / 100.0).floor() + noise.abs(),
                    _ => noise,
                };
                (x, if whole { y.round() } else { y })
            })
            .collect()
    }

    /// A case the first bracket misses (the sample puts 53.7 % of slopes below the median, the
    /// points 49.96 %): the widened bracket still gives the median, to the bit. It once failed
    /// the property above 1 run in 3, when a miss returned `None`.
    #[test]
    fn a_missed_bracket_widens_to_the_median() {
        let points = shaped_points(532, 0, false, usize::MAX, 2436960792368810927);
        let every = median(&mut pairwise_slopes(&points)).map(f64::to_bits);
        assert_eq!(every, Some(36.0f64.to_bits()));
        assert_eq!(bracketed_median(&points).map(f64::to_bits), every);
        assert_eq!(median_slope(&points).map(f64::to_bits), every);
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
