//! Ordinary least-squares slope of value against iteration, with a two-sided Student-t
//! confidence interval on the slope.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// A fitted line and the uncertainty of its slope.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    /// Growth per iteration.
    pub slope: f64,
    /// Value of the line at iteration 0.
    pub intercept: f64,
    /// Standard error of the slope.
    pub stderr: f64,
    /// Lower end of the slope's confidence interval.
    pub ci_low: f64,
    /// Upper end of the slope's confidence interval.
    pub ci_high: f64,
    /// Number of points fitted.
    pub n: usize,
    /// Two-sided confidence level of `ci_low..ci_high`, as asked of [`fit_ols`], so that whoever
    /// labels the interval names the level it was computed at.
    pub confidence: f64,
}

/// Fits `y = intercept + slope * x` by least squares.
///
/// Returns `None` with fewer than three points or when all `x` are equal (no slope is defined,
/// and with two points there is no residual to estimate the error from). Non-finite points are
/// skipped. `confidence` is the two-sided level, e.g. `0.99`.
pub fn fit_ols(points: &[(f64, f64)], confidence: f64) -> Option<Fit> {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let n = finite.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mean_x = finite.iter().map(|p| p.0).sum::<f64>() / nf;
    let mean_y = finite.iter().map(|p| p.1).sum::<f64>() / nf;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in &finite {
        sxx += (x - mean_x) * (x - mean_x);
        sxy += (x - mean_x) * (y - mean_y);
    }
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let sse: f64 = finite
        .iter()
        .map(|(x, y)| {
            let residual = y - (intercept + slope * x);
            residual * residual
        })
        .sum();
    let dof = nf - 2.0;
    let stderr = (sse / dof / sxx).sqrt();
    let t = StudentsT::new(0.0, 1.0, dof)
        .ok()?
        .inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    Some(Fit {
        slope,
        intercept,
        stderr,
        ci_low: slope - t * stderr,
        ci_high: slope + t * stderr,
        n,
        confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_has_zero_width_interval() {
        let points: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64, 100.0 + 36.0 * i as f64))
            .collect();
        let fit = fit_ols(&points, 0.99).unwrap();
        assert!((fit.slope - 36.0).abs() < 1e-9);
        assert!((fit.intercept - 100.0).abs() < 1e-6);
        assert!(fit.ci_high - fit.ci_low < 1e-6);
    }

    #[test]
    fn flat_series_with_noise_has_interval_around_zero() {
        // Deterministic "noise": alternating +-5 around a constant.
        let points: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, 1000.0 + if i % 2 == 0 { 5.0 } else { -5.0 }))
            .collect();
        let fit = fit_ols(&points, 0.99).unwrap();
        assert!(fit.ci_low < 0.0 && fit.ci_high > 0.0, "{fit:?}");
        assert!(fit.slope.abs() < 0.2);
    }

    #[test]
    fn interval_matches_textbook_example() {
        // Worked by hand: Sxx = 10, Sxy = 18, slope 1.8, intercept 0.4, SSE 3.6, so
        // SE = sqrt(3.6 / 3 / 10) = 0.34641 and the 95 % CI is 1.8 +- t(0.975, 3) * SE.
        let points = [(0.0, 1.0), (1.0, 1.0), (2.0, 5.0), (3.0, 5.0), (4.0, 8.0)];
        let fit = fit_ols(&points, 0.95).unwrap();
        assert!((fit.slope - 1.8).abs() < 1e-12);
        assert!((fit.intercept - 0.4).abs() < 1e-12);
        assert!((fit.stderr - 0.346410161).abs() < 1e-8);
        assert!((fit.ci_high - fit.slope - 3.182446 * fit.stderr).abs() < 1e-5);
    }

    #[test]
    fn too_few_or_degenerate_points_give_no_fit() {
        assert!(fit_ols(&[(0.0, 1.0), (1.0, 2.0)], 0.99).is_none());
        assert!(fit_ols(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)], 0.99).is_none());
        assert!(fit_ols(&[(0.0, f64::NAN), (1.0, 2.0), (2.0, 3.0)], 0.99).is_none());
    }
}
