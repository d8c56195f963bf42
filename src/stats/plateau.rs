//! Whether growth persists or stopped: slopes of consecutive segments, and where a series that
//! grew and then went flat changed course.
//!
//! A leak keeps growing in every later part of the run; a bounded cache grows until it is full,
//! then stays flat. [`segment_slopes`] gives the Theil–Sen slope of each of `k` consecutive
//! segments, so a rule can ask "still growing at the end?" (as LeakCanary keeps only objects that
//! grew in every heap dump). [`find_plateau`] fits a hinge, a line that turns flat at one point,
//! to say where the growth stopped and how much there was.

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
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plateau {
    /// Iteration where the growth stopped (the hinge).
    pub until: f64,
    /// How much the series grew from its first sample up to `until`.
    pub growth: f64,
}

/// Least-squares hinge `y = a + b · min(x, c)` over every sample as candidate `c` (the last one
/// excluded); returns the best `c` and the growth `b · (c − x₀)` when `b > 0`. `points` must be
/// ordered by `x`; `None` with fewer than four points.
///
/// Fitting every candidate costs O(n) each, O(n²) in all: 10 000 samples took 0.3 s. So
/// [`shortlist`] first scores every candidate in O(1) from running sums and keeps those within
/// a margin of the best (far wider than rounding error), and only those are fitted the
/// straightforward way. The answer is the same, to the bit, as fitting them all.
pub fn find_plateau(points: &[(f64, f64)]) -> Option<Plateau> {
    let n = points.len();
    if n < 4 {
        return None;
    }
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    best_hinge(points, mean_y, shortlist(points, mean_y))
}

/// The hinge of least squared error among the candidates (indices into `points`, ascending),
/// the first one on ties.
fn best_hinge(
    points: &[(f64, f64)],
    mean_y: f64,
    candidates: impl IntoIterator<Item = usize>,
) -> Option<Plateau> {
    let x0 = points[0].0;
    let mut best: Option<(f64, f64, f64)> = None; // (sse, c, slope)
    for index in candidates {
        let c = points[index].0;
        let Some((sse, b)) = hinge_fit(points, mean_y, c) else {
            continue;
        };
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

/// Squared error and slope of the hinge at `c`, fitted directly; `None` when every
/// `min(x, c)` is the same.
fn hinge_fit(points: &[(f64, f64)], mean_y: f64, c: f64) -> Option<(f64, f64)> {
    let n = points.len();
    let us: Vec<f64> = points.iter().map(|p| p.0.min(c)).collect();
    let mean_u = us.iter().sum::<f64>() / n as f64;
    let (mut suu, mut suy) = (0.0, 0.0);
    for (u, p) in us.iter().zip(points) {
        suu += (u - mean_u) * (u - mean_u);
        suy += (u - mean_u) * (p.1 - mean_y);
    }
    if suu == 0.0 {
        return None;
    }
    let b = suy / suu;
    let a = mean_y - b * mean_u;
    let sse: f64 = us
        .iter()
        .zip(points)
        .map(|(u, p)| (p.1 - a - b * u).powi(2))
        .sum();
    Some((sse, b))
}

/// Relative margin, of the total sum of squares, within which a candidate's quick score must be
/// of the best one's to be fitted exactly. The quick scores are off by about `n · ε` of it
/// (1e-12 for 10 000 samples), so the margin keeps every candidate that could be the best.
const SHORTLIST_MARGIN: f64 = 1e-6;

/// Indices of the candidate hinges (1 to n − 2) that can have the least squared error.
///
/// With `m` points at or before `c`, `u = min(x, c)` is those points' `x` followed by `c`
/// repeated, so the hinge's sums follow from the first `m` points' mean, centred sum of squares
/// and co-moment with `y` (Welford's running updates, free of cancellation):
/// `Suu = Qₘ + m(n − m)/n · (x̄ₘ − c)²`, `Suy = Cₘ + (x̄ₘ − c)((n − m)Dₘ − m(D − Dₘ))/n`, where
/// `D` sums `y − ȳ`, and the squared error is `Syy − Suy²/Suu`. Candidates with `Suu` near
/// zero are always kept. Points out of order or not finite keep every candidate.
fn shortlist(points: &[(f64, f64)], mean_y: f64) -> Vec<usize> {
    let n = points.len();
    let every = || (1..n - 1).collect();
    let ordered = points.windows(2).all(|w| w[0].0 <= w[1].0);
    if !ordered || points.iter().any(|p| !p.0.is_finite() || !p.1.is_finite()) {
        return every();
    }
    /// Sums over the first `m` points.
    #[derive(Clone, Copy, Default)]
    struct Prefix {
        mean_x: f64,
        sxx: f64,
        sxy: f64,
        sum_d: f64,
    }
    let mut prefixes = Vec::with_capacity(n + 1);
    let mut running = Prefix::default();
    let mut mean_y_seen = 0.0;
    prefixes.push(running);
    for (i, &(x, y)) in points.iter().enumerate() {
        let count = (i + 1) as f64;
        let dx = x - running.mean_x;
        running.mean_x += dx / count;
        let dy = y - mean_y_seen;
        mean_y_seen += dy / count;
        running.sxx += dx * (x - running.mean_x);
        running.sxy += dx * (y - mean_y_seen);
        running.sum_d += y - mean_y;
        prefixes.push(running);
    }
    let total = running;
    let syy: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    let nf = n as f64;
    let flat_suu = 1e-9 * total.sxx;

    let mut scores = Vec::with_capacity(n);
    let mut m = 0;
    for index in 1..n - 1 {
        let c = points[index].0;
        while m < n && points[m].0 <= c {
            m += 1;
        }
        let first = prefixes[m];
        let mf = m as f64;
        let gap = first.mean_x - c;
        let suu = first.sxx + mf * (nf - mf) / nf * gap * gap;
        let suy =
            first.sxy + gap * ((nf - mf) * first.sum_d - mf * (total.sum_d - first.sum_d)) / nf;
        // `None`: too flat to score, fitted exactly whatever the others score.
        scores.push((index, (suu > flat_suu).then(|| syy - suy * suy / suu)));
    }
    let least = scores
        .iter()
        .filter_map(|&(_, score)| score)
        .fold(f64::INFINITY, f64::min);
    let within = least + SHORTLIST_MARGIN * syy;
    scores
        .into_iter()
        .filter(|&(_, score)| score.is_none_or(|s| s <= within))
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// Every candidate fitted the straightforward way: what `find_plateau` must equal.
    fn every_candidate(points: &[(f64, f64)]) -> Option<Plateau> {
        let n = points.len();
        if n < 4 {
            return None;
        }
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
        best_hinge(points, mean_y, 1..n - 1)
    }

    /// Iterations from increments (0 repeats one), values from a shape, noise and a rounding.
    fn series(start: f64, steps: &[u8], shape: u8, noise: &[f64], grain: f64) -> Vec<(f64, f64)> {
        let mut x = start;
        let hinge = start + steps.iter().map(|&s| f64::from(s)).sum::<f64>() / 3.0;
        steps
            .iter()
            .zip(noise.iter().cycle())
            .map(|(&step, &e)| {
                x += f64::from(step);
                let y = match shape % 5 {
                    0 => 750.0 * x.min(hinge),
                    1 => 36.0 * x,
                    2 => 0.0,
                    3 => 4096.0 * f64::from(u8::from(x > hinge)),
                    _ => -3.0 * x.min(hinge),
                };
                let y = 2e6 + y + e;
                (x, (y / grain).round() * grain)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The shortlist never drops the best hinge: the same answer, to the bit, as fitting
        /// every candidate, on lines, hinges, steps and flat series with noise, repeated
        /// iterations and page-sized or integer values.
        #[test]
        fn shortlist_gives_the_answer_of_every_candidate(
            start in prop_oneof![Just(0.0), 0.0..1e6f64],
            steps in prop::collection::vec(
                prop_oneof![
                    Just(1u8),
                    Just(0u8),
                    0u8..20,
                ],
                4..300,
            ),
            shape in 0u8..5,
            noise in prop::collection::vec(
                prop_oneof![Just(0.0), -1.0..1.0f64, -5e4..5e4f64],
                1..50,
            ),
            grain in prop_oneof![
                Just(1.0),
                Just(4096.0),
                Just(1e-9),
            ],
        ) {
            let points = series(start, &steps, shape, &noise, grain);
            prop_assert_eq!(find_plateau(&points), every_candidate(&points));
        }
    }

    #[test]
    fn shortlist_gives_the_answer_of_every_candidate_on_10_000_samples() {
        // A bounded cache filling until iteration 2 000, with allocator jitter.
        let points: Vec<(f64, f64)> = (0..10_000u64)
            .map(|i| {
                let x = 21.0 + i as f64;
                let jitter = ((i * 7919) % 113) as f64;
                (x, 2e6 + 750.0 * x.min(2000.0) + jitter)
            })
            .collect();
        let found = find_plateau(&points);
        assert_eq!(found, every_candidate(&points));
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
        let fitted = shortlist(&points, mean_y).len();
        assert!(fitted < 100, "{fitted} of 9 998 candidates fitted");
        assert!(
            found.is_some_and(|p| (p.until - 2000.0).abs() < 5.0),
            "{found:?}"
        );
    }

    #[test]
    fn a_falling_series_has_no_plateau_of_growth() {
        let points: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, -(i as f64))).collect();
        assert!(find_plateau(&points).is_none());
    }
}
