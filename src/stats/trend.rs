//! The robust trend of one series: Theil–Sen slope and interval plus the Mann–Kendall test,
//! both with the autocorrelation-corrected variance of Kendall's S.

use super::mann_kendall::{hamed_rao_inflation, mann_kendall, s_variance};
use super::theil_sen::{PairwiseSlopes, theil_sen_with};

/// Above this many points a series is reduced to this many block medians first: the pairwise
/// methods cost O(n²), and blocks of consecutive samples keep the trend while 500 points give
/// every interval far more resolution than the tolerance needs.
pub const MAX_ROBUST_POINTS: usize = 500;

/// Robust slope, its interval and the trend test, for one window of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RobustFit {
    /// Theil–Sen slope (median pairwise growth per iteration).
    pub slope: f64,
    /// Lower end of the slope's interval.
    pub ci_low: f64,
    /// Upper end of the slope's interval.
    pub ci_high: f64,
    /// Median of `value − slope · iteration`.
    pub intercept: f64,
    /// Mann–Kendall normal score (positive: rising).
    pub mk_z: f64,
    /// One-sided Mann–Kendall p-value of a rising trend.
    pub mk_p: f64,
    /// Hamed–Rao autocorrelation factor applied to Var(S) (1 = independent samples).
    pub inflation: f64,
    /// Samples in the window.
    pub n: usize,
    /// First iteration of the window.
    pub from: f64,
    /// Last iteration of the window.
    pub to: f64,
    /// Two-sided confidence level of `ci_low..ci_high`, as asked of [`fit_robust`]: kept with
    /// the interval because the level differs from fit to fit (each look of an adaptive run
    /// spends its own share), and a report that labels the interval must name this one.
    pub confidence: f64,
}

/// Fits `points` robustly with a two-sided interval at `confidence`.
///
/// Non-finite points are dropped and points are ordered by `x`. `None` with fewer than three
/// points or no two distinct `x`.
pub fn fit_robust(points: &[(f64, f64)], confidence: f64) -> Option<RobustFit> {
    fit_robust_thinned(points, confidence, MAX_ROBUST_POINTS)
}

/// [`fit_robust`], reducing the series to at most `max_points` block medians first. A part of a
/// series (its last half, say) is thinned to the same share of [`MAX_ROBUST_POINTS`] so that
/// its blocks are as wide as the whole series' and it costs no more than its share.
pub fn fit_robust_thinned(
    points: &[(f64, f64)],
    confidence: f64,
    max_points: usize,
) -> Option<RobustFit> {
    let mut finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    finite.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = finite.len();
    if n < 3 {
        return None;
    }
    let (from, to) = (finite[0].0, finite[n - 1].0);
    let work = thin(&finite, max_points);
    // The slopes serve twice: their median detrends the series, then they give the interval.
    let slopes = PairwiseSlopes::of(&work)?;
    let slope = slopes.median();
    let residuals: Vec<f64> = work.iter().map(|(x, y)| y - slope * x).collect();
    let inflation = hamed_rao_inflation(&residuals);
    let ys: Vec<f64> = work.iter().map(|p| p.1).collect();
    let var_s = s_variance(&ys) * inflation;
    let ts = theil_sen_with(&work, slopes, var_s, confidence);
    let mk = mann_kendall(&work, inflation)?;
    Some(RobustFit {
        slope: ts.slope,
        ci_low: ts.ci_low,
        ci_high: ts.ci_high,
        intercept: ts.intercept,
        mk_z: mk.z,
        mk_p: mk.p_increasing,
        inflation,
        n,
        from,
        to,
        confidence,
    })
}

/// Reduces points ordered by `x` to at most `max` consecutive blocks, each the mean `x` and
/// median `y` of its points; returns the points unchanged when there are few enough.
pub fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let n = points.len();
    if n <= max || max == 0 {
        return points.to_vec();
    }
    (0..max)
        .map(|b| {
            let block = &points[b * n / max..(b + 1) * n / max];
            let x = block.iter().map(|p| p.0).sum::<f64>() / block.len() as f64;
            let mut ys: Vec<f64> = block.iter().map(|p| p.1).collect();
            let y = super::theil_sen::median(&mut ys).unwrap_or(f64::NAN);
            (x, y)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_with_noise_is_significant() {
        let points: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                (
                    i as f64 * 2.0,
                    36.0 * 2.0 * i as f64 + ((i * 7919) % 113) as f64,
                )
            })
            .collect();
        let f = fit_robust(&points, 0.99).unwrap();
        assert!((f.slope - 36.0).abs() < 1.0, "{f:?}");
        assert!(f.ci_low > 30.0 && f.ci_high < 42.0, "{f:?}");
        assert!(f.mk_p < 1e-6);
        assert_eq!((f.from, f.to, f.n), (0.0, 198.0, 100));
    }

    #[test]
    fn long_series_are_thinned_but_keep_their_slope() {
        let points: Vec<(f64, f64)> = (0..5000).map(|i| (i as f64, 3.0 * i as f64)).collect();
        let f = fit_robust(&points, 0.99).unwrap();
        assert!((f.slope - 3.0).abs() < 1e-9);
        assert_eq!(f.n, 5000);
        assert_eq!(thin(&points, 500).len(), 500);
    }

    #[test]
    fn too_few_points_give_no_fit() {
        assert!(fit_robust(&[(0.0, 1.0), (1.0, 2.0)], 0.99).is_none());
        assert!(fit_robust(&[(0.0, f64::NAN), (1.0, 2.0), (2.0, 2.0)], 0.99).is_none());
    }
}
