//! The Mann–Kendall trend test: is there a monotonic trend, whatever its shape?
//!
//! Kendall's S counts, over every pair of samples, whether the later one is higher (+1) or lower
//! (−1). Under "no trend" S has mean 0 and a variance known in closed form, corrected for ties
//! (integer counts and page-granular RSS repeat values a lot). Memory series are not independent
//! from sample to sample (a sawtooth, a staircase of arena steps): [`hamed_rao_inflation`] widens
//! the variance by the effective-sample-size factor of Hamed & Rao (1998), estimated from the
//! autocorrelation of the ranks of the detrended series, so such structure is not mistaken for a
//! trend. The same variance gives the Theil–Sen interval ([`super::theil_sen`]).

use std::cmp::Ordering;

use statrs::distribution::{ContinuousCDF, Normal};

/// Result of the test on one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannKendall {
    /// Kendall's S: concordant minus discordant pairs.
    pub s: f64,
    /// Variance of S under "no trend", ties corrected and multiplied by `inflation`.
    pub var_s: f64,
    /// Autocorrelation factor applied to the variance (1 for independent samples).
    pub inflation: f64,
    /// Standard normal score of S, with continuity correction.
    pub z: f64,
    /// One-sided p-value of "the series increases".
    pub p_increasing: f64,
    /// Number of points.
    pub n: usize,
}

/// Kendall's S of points ordered by anything: `Σ_{i<j} sign(x_j − x_i) · sign(y_j − y_i)`.
pub fn kendall_s(points: &[(f64, f64)]) -> f64 {
    let mut s = 0i64;
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            s += sign(b.0 - a.0) * sign(b.1 - a.1);
        }
    }
    s as f64
}

fn sign(v: f64) -> i64 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

/// Variance of S under "no trend" for values `ys`, corrected for groups of tied values:
/// `[n(n−1)(2n+5) − Σ t(t−1)(2t+5)] / 18`.
pub fn s_variance(ys: &[f64]) -> f64 {
    let term = |t: f64| t * (t - 1.0) * (2.0 * t + 5.0);
    let mut sorted = ys.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut start = 0;
    while start < sorted.len() {
        let end = start
            + sorted[start..]
                .iter()
                .take_while(|v| **v == sorted[start])
                .count();
        ties += term((end - start) as f64);
        start = end;
    }
    (term(sorted.len() as f64) - ties) / 18.0
}

/// Ranks from 1 to n, tied values sharing their average rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let value = values[order[start]];
        let end = start
            + order[start..]
                .iter()
                .take_while(|i| values[**i].total_cmp(&value) == Ordering::Equal)
                .count();
        let average = (start + end + 1) as f64 / 2.0;
        for index in &order[start..end] {
            ranks[*index] = average;
        }
        start = end;
    }
    ranks
}

/// Hamed & Rao (1998) variance factor `n / n*` for a series of residuals in time order (the
/// series minus its Theil–Sen trend).
///
/// `n/n* = 1 + 2 / (n(n−1)(n−2)) · Σ_k (n−k)(n−k−1)(n−k−2) ρ_k`, where `ρ_k` is the lag-k
/// autocorrelation of the residuals' ranks, counted only where it is significant at 5 %
/// (`|ρ_k| > 1.96/√n`), as in the original method. Clamped below at 1: negative
/// autocorrelation never makes the test more eager.
pub fn hamed_rao_inflation(residuals: &[f64]) -> f64 {
    let n = residuals.len();
    if n < 4 {
        return 1.0;
    }
    let r = ranks(residuals);
    let mean = r.iter().sum::<f64>() / n as f64;
    let centred: Vec<f64> = r.iter().map(|v| v - mean).collect();
    let denominator: f64 = centred.iter().map(|v| v * v).sum();
    if denominator == 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let band = 1.959_963_984_540_054 / nf.sqrt();
    let mut sum = 0.0;
    for k in 1..n - 2 {
        let rho = centred[..n - k]
            .iter()
            .zip(&centred[k..])
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / denominator;
        if rho.abs() > band {
            let m = (n - k) as f64;
            sum += m * (m - 1.0) * (m - 2.0) * rho;
        }
    }
    (1.0 + 2.0 * sum / (nf * (nf - 1.0) * (nf - 2.0))).max(1.0)
}

/// Mann–Kendall test of `points` (any order: pairs are compared by their `x`), with the
/// variance of S multiplied by `inflation` (see [`hamed_rao_inflation`]; 1 for independent
/// samples). `None` with fewer than 3 points.
pub fn mann_kendall(points: &[(f64, f64)], inflation: f64) -> Option<MannKendall> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let s = kendall_s(points);
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let var_s = s_variance(&ys) * inflation;
    let z = if var_s <= 0.0 || s == 0.0 {
        0.0
    } else {
        (s - s.signum()) / var_s.sqrt()
    };
    let normal = Normal::standard();
    Some(MannKendall {
        s,
        var_s,
        inflation,
        z,
        p_increasing: 1.0 - normal.cdf(z),
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, f: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
        (0..n).map(|i| (i as f64, f(i))).collect()
    }

    #[test]
    fn strictly_increasing_series_has_maximal_s() {
        let points = line(10, |i| i as f64 * 3.0);
        let mk = mann_kendall(&points, 1.0).unwrap();
        assert_eq!(mk.s, 45.0);
        // Var(S) = 10·9·25/18 = 125; z = 44/√125.
        assert!((mk.var_s - 125.0).abs() < 1e-12);
        assert!((mk.z - 44.0 / 125f64.sqrt()).abs() < 1e-12);
        assert!(mk.p_increasing < 1e-4);
    }

    #[test]
    fn constant_series_has_no_trend() {
        let mk = mann_kendall(&line(50, |_| 7.0), 1.0).unwrap();
        assert_eq!(mk.s, 0.0);
        assert_eq!(mk.var_s, 0.0);
        assert_eq!(mk.z, 0.0);
        assert!((mk.p_increasing - 0.5).abs() < 1e-12);
    }

    #[test]
    fn ties_reduce_the_variance() {
        // Textbook tie correction: groups of sizes 2 and 3 among n = 6.
        let ys = [1.0, 1.0, 2.0, 3.0, 3.0, 3.0];
        let expected = (6.0 * 5.0 * 17.0 - 2.0 * 1.0 * 9.0 - 3.0 * 2.0 * 11.0) / 18.0;
        assert!((s_variance(&ys) - expected).abs() < 1e-12);
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 5.0]), vec![2.5, 4.0, 2.5, 1.0]);
    }

    #[test]
    fn independent_noise_is_not_inflated_much_but_a_staircase_is() {
        // Deterministic pseudo-random noise (a linear congruential sequence).
        let mut state = 12345u64;
        let noise: Vec<f64> = (0..200)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as f64
            })
            .collect();
        assert!(hamed_rao_inflation(&noise) < 2.0);
        // Residuals that stay high, then low, then high: a few long steps. (A fast sawtooth is
        // not inflated much: its autocorrelations alternate in sign and cancel; the verdict's
        // floor check handles it.)
        let steps: Vec<f64> = (0..200).map(|i| ((i / 50) % 2) as f64).collect();
        let factor = hamed_rao_inflation(&steps);
        assert!(factor > 5.0, "{factor}");
    }

    #[test]
    fn a_sawtooth_alone_is_not_a_significant_trend_once_corrected() {
        // Four teeth: every pair inside a tooth is concordant, so the plain test sees a trend.
        let points = line(100, |i| (i % 25) as f64 * 600.0);
        let plain = mann_kendall(&points, 1.0).unwrap();
        assert!(plain.p_increasing < 0.005, "{plain:?}");
        let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
        let corrected = mann_kendall(&points, hamed_rao_inflation(&ys)).unwrap();
        assert!(corrected.p_increasing > 0.005, "{corrected:?}");
    }
}
