//! Whether growth persists or stopped: slopes of consecutive segments, and where a series that
//! grew and then went flat changed course.
//!
//! A leak keeps growing in every later part of the run; a bounded cache grows until it is full,
//! then stays flat. [`segment_slopes`] gives the Theil–Sen slope of each of `k` consecutive
//! segments, so a rule can ask "still growing at the end?" (as LeakCanary keeps only objects that
//! grew in every heap dump). [`find_plateau`] fits a hinge, a line that turns flat at one point,
//! to say where the growth stopped and how much there was.

use serde::{Deserialize, Serialize};

use super::theil_sen::median_slope;

/// Theil–Sen slopes of `k` consecutive segments of (nearly) equal sample counts, in order;
/// `None` for a segment with fewer than two distinct iterations. `points` must be ordered by `x`.
pub fn segment_slopes(points: &[(f64, f64)], k: usize) -> Vec<Option<f64>> {
    let n = points.len();
    (0..k)
        .map(|s| median_slope(&points[s * n / k..(s + 1) * n / k]))
        .collect()
}

/// Growth that stopped: the series rose by `growth` until iteration `until`, then stayed flat.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Iteration where the growth stopped (the hinge).
    pub until: f64,
    /// How much the series grew from its first sample up to `until`.
    pub growth: f64,
}

/// Least-squares hinge `y = a + b · min(x, c)` over every sample as candidate `c` (the last one
/// excluded); returns the best `c` and the growth `b · (c − x₀)` when `b > 0`. `points` must be
/// ordered by `x`; `None` with fewer than four points.
pub fn find_plateau(points: &[(f64, f64)]) -> Option<Plateau> {
    let n = points.len();
    if n < 4 {
        return None;
    }
    let x0 = points[0].0;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let mut best: Option<(f64, f64, f64)> = None; // (sse, c, slope)
    for candidate in &points[1..n - 1] {
        let c = candidate.0;
        let us: Vec<f64> = points.iter().map(|p| p.0.min(c)).collect();
        let mean_u = us.iter().sum::<f64>() / n as f64;
        let (mut suu, mut suy) = (0.0, 0.0);
        for (u, p) in us.iter().zip(points) {
            suu += (u - mean_u) * (u - mean_u);
            suy += (u - mean_u) * (p.1 - mean_y);
        }
        if suu == 0.0 {
            continue;
        }
        let b = suy / suu;
        let a = mean_y - b * mean_u;
        let sse: f64 = us
            .iter()
            .zip(points)
            .map(|(u, p)| (p.1 - a - b * u).powi(2))
            .sum();
        if best.is_none_or(|(best_sse, _, _)| sse < best_sse) {
            best = Some((sse, c, b));
        }
    }
    let (_, until, slope) = best?;
    (slope > 0.0).then_some(Plateau {
        until,
        growth: slope * (until - x0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filling_cache_is_located() {
        // +750 B/iter until iteration 240, then flat (a bounded cache of 180 KiB filling).
        let points: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                let x = 20.0 + 10.0 * i as f64;
                (x, 5000.0 + 750.0 * (x.min(240.0) - 20.0))
            })
            .collect();
        let p = find_plateau(&points).unwrap();
        assert_eq!(p.until, 240.0);
        assert!((p.growth - 165_000.0).abs() < 1e-6, "{p:?}");
        let slopes = segment_slopes(&points, 4);
        assert!(slopes[0].unwrap() > 0.0);
        assert_eq!(slopes[2], Some(0.0));
        assert_eq!(slopes[3], Some(0.0));
    }

    #[test]
    fn a_steady_leak_grows_in_every_segment() {
        let points: Vec<(f64, f64)> = (0..40).map(|i| (i as f64, 36.0 * i as f64)).collect();
        assert!(
            segment_slopes(&points, 4)
                .into_iter()
                .all(|s| s == Some(36.0))
        );
    }

    #[test]
    fn a_falling_series_has_no_plateau_of_growth() {
        let points: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, -(i as f64))).collect();
        assert!(find_plateau(&points).is_none());
    }
}
