//! The rule on synthetic series: exact lines, noise, outliers, plateaus, steps, sawtooth, late
//! and bursty leaks, the sequential looks, and property tests of its invariants.

use super::*;
use proptest::prelude::*;

/// Deterministic noise in [-1, 1) from a linear congruential sequence.
fn noise(i: u64, seed: u64) -> f64 {
    let state = (i ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((state >> 33) % 2000) as f64 / 1000.0 - 1.0
}

/// 100 samples every 2 iterations after a warmup of 20 (the default layout of 200 iterations);
/// `f(x)` gives tracemalloc at iteration `x`, the other metrics stay flat.
fn series(count: u64, f: impl Fn(u64) -> f64) -> Vec<Sample> {
    (1..=count)
        .map(|k| {
            let x = 20 + 2 * k;
            Sample {
                iteration: x,
                values: [f(x), 3e6, 1e7, 5000.0, 20000.0, 5.0],
            }
        })
        .collect()
}

fn tolerances() -> BTreeMap<Metric, f64> {
    Metric::ALL
        .into_iter()
        .map(|m| (m, m.default_tolerance()))
        .collect()
}

/// A fixed-count plan of 200 iterations after 20 of warmup, tracemalloc gated.
fn fixed() -> Plan {
    Plan::fixed(&[Metric::Tracemalloc], &tolerances(), 0.99, 20, 200)
}

fn judge(samples: &[Sample]) -> Decision {
    decide(samples, &fixed())
}

#[test]
fn steady_growth_is_a_leak_with_a_readable_reason() {
    let d = judge(&series(100, |x| 1000.0 + 40.0 * x as f64));
    assert_eq!(d.verdict, Verdict::Leak, "{}", d.reason);
    assert!(
        d.reason
            .starts_with("tracemalloc grew 40 B/iter (Theil–Sen, 99 % CI [40 B, 40 B]"),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("above tolerance 8 B"), "{}", d.reason);
    assert_eq!(d.stop.reason, StopReason::Decided);
}

#[test]
fn flat_series_passes() {
    let d = judge(&series(100, |_| 1000.0));
    assert_eq!(d.verdict, Verdict::Pass, "{}", d.reason);
    assert_eq!(d.reason, "tracemalloc within tolerance at 99 % confidence");
}

#[test]
fn noise_around_the_tolerance_is_inconclusive() {
    let d = judge(&series(100, |x| 8.0 * x as f64 + 300.0 * noise(x, 1)));
    assert_eq!(d.verdict, Verdict::Inconclusive, "{}", d.reason);
}

#[test]
fn outliers_neither_make_nor_break_a_verdict() {
    // Flat with three huge spikes, one of them the last sample.
    let spiky = |x: u64| {
        1000.0
            + if matches!(x, 60 | 150 | 220) {
                5e5
            } else {
                0.0
            }
    };
    assert_eq!(judge(&series(100, spiky)).verdict, Verdict::Pass);
    // A leak with two samples far below the line (an arena released, then reused).
    let dips = |x: u64| 1000.0 + 64.0 * x as f64 - if matches!(x, 100 | 210) { 2e4 } else { 0.0 };
    assert_eq!(judge(&series(100, dips)).verdict, Verdict::Leak);
}

#[test]
fn a_cache_that_fills_and_stops_passes_with_a_note() {
    // 750 B/iter until iteration 100, then flat.
    let d = judge(&series(100, |x| {
        5000.0 + 750.0 * (x.min(100) as f64 - 22.0).max(0.0)
    }));
    assert_eq!(d.verdict, Verdict::Pass, "{}", d.reason);
    assert!(
        d.reason
            .contains("tracemalloc grew 57.1 KiB until iteration 100, then flat"),
        "{}",
        d.reason
    );
    let m = &d.metrics[0];
    assert_eq!(m.plateau.map(|p| p.until), Some(100.0));
    // Plain least squares over the same samples calls it growth.
    assert!(m.fit.unwrap().ci_low > 8.0);
}

#[test]
fn a_single_step_is_not_a_leak() {
    for at in [60, 120, 160, 200] {
        let d = judge(&series(100, |x| {
            1000.0 + if x >= at { 50_000.0 } else { 0.0 }
        }));
        assert_ne!(d.verdict, Verdict::Leak, "step at {at}: {}", d.reason);
    }
}

#[test]
fn a_sawtooth_is_not_a_leak() {
    // A buffer of 50 records of 600 B flushed every 50 iterations.
    let d = judge(&series(100, |x| 1000.0 + 600.0 * (x % 50) as f64));
    assert_ne!(d.verdict, Verdict::Leak, "{}", d.reason);
}

#[test]
fn a_leak_that_starts_halfway_is_a_leak() {
    let d = judge(&series(100, |x| {
        1000.0 + 256.0 * (x as f64 - 120.0).max(0.0)
    }));
    assert_eq!(d.verdict, Verdict::Leak, "{}", d.reason);
}

#[test]
fn a_bursty_leak_is_a_leak() {
    // 2 KiB kept every 10th iteration, sampled every 2.
    let d = judge(&series(100, |x| 1000.0 + 2048.0 * (x / 10) as f64));
    assert_eq!(d.verdict, Verdict::Leak, "{}", d.reason);
}

#[test]
fn ungated_growth_does_not_decide() {
    let mut data = series(100, |_| 1000.0);
    for (k, s) in data.iter_mut().enumerate() {
        s.values[1] = 1e7 + 1e5 * k as f64; // rss grows, but is not gated
    }
    assert_eq!(judge(&data).verdict, Verdict::Pass);
}

#[test]
fn tiny_total_growth_is_not_a_leak() {
    // 9 B/iter exactly is above the tolerance, but 40 iterations of it are 360 B.
    let plan = Plan::fixed(&[Metric::Tracemalloc], &tolerances(), 0.99, 0, 40);
    let samples: Vec<Sample> = (1..=40)
        .map(|x| Sample {
            iteration: x,
            values: [9.0 * x as f64, 3e6, 1e7, 0.0, 0.0, 0.0],
        })
        .collect();
    assert_ne!(decide(&samples, &plan).verdict, Verdict::Leak);
}

/// The default adaptive plan: 200 to 800 iterations, looks at 200, 400, 600 and 800.
fn adaptive() -> Plan {
    Plan {
        gate: vec![Metric::Tracemalloc],
        tolerance: tolerances(),
        confidence: 0.99,
        warmup: 20,
        looks: schedule(200, 800, 0.99),
    }
}

#[test]
fn a_clear_leak_stops_at_the_minimum() {
    let d = decide(&series(400, |x| 1e6 * x as f64), &adaptive());
    assert_eq!(d.verdict, Verdict::Leak);
    assert_eq!((d.stop.look, d.stop.measured_iterations), (1, 200));
    assert!(
        d.reason
            .ends_with("decided after 200 iterations (look 1 of 4)"),
        "{}",
        d.reason
    );
}

#[test]
fn a_clean_run_passes_at_the_minimum() {
    let d = decide(&series(400, |_| 1000.0), &adaptive());
    assert_eq!(d.verdict, Verdict::Pass);
    assert_eq!((d.stop.look, d.stop.measured_iterations), (1, 200));
    assert!((d.stop.confidence - 0.995).abs() < 1e-12);
}

#[test]
fn a_cache_still_filling_at_the_minimum_passes_in_a_later_round() {
    // Fills until iteration 160: flat in the last quarter at the minimum (iteration 220) but
    // not yet over the last half; flat over the last half by the next look.
    let d = decide(&series(400, |x| 750.0 * x.min(160) as f64), &adaptive());
    assert_eq!(d.verdict, Verdict::Pass, "{}", d.reason);
    assert!(d.stop.measured_iterations > 200, "{:?}", d.stop);
    assert!(
        d.reason.contains("until iteration 160, then flat"),
        "{}",
        d.reason
    );
}

#[test]
fn undecided_at_the_maximum_is_inconclusive() {
    let d = decide(
        &series(400, |x| 8.0 * x as f64 + 3000.0 * noise(x, 3)),
        &adaptive(),
    );
    assert_eq!(d.verdict, Verdict::Inconclusive, "{}", d.reason);
    assert_eq!(d.stop.reason, StopReason::MaxIterations);
    assert!(
        d.reason
            .ends_with("still undecided after max_iterations (800)"),
        "{}",
        d.reason
    );
}

#[test]
fn samples_that_end_early_are_judged_as_incomplete() {
    let d = decide(&series(30, |_| 1000.0), &adaptive());
    assert_eq!(d.stop.reason, StopReason::Incomplete);
    assert_eq!(d.stop.measured_iterations, 60);
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Memory that never rises is never a leak, whatever its shape.
    #[test]
    fn non_increasing_series_are_never_leaks(
        steps in prop::collection::vec(0.0f64..5000.0, 100),
    ) {
        let mut level = 1e6;
        let values: Vec<f64> = steps.iter().map(|d| { level -= d; level }).collect();
        let d = judge(&series(100, |x| values[((x - 22) / 2) as usize]));
        prop_assert_ne!(d.verdict, Verdict::Leak);
    }

    /// One sample moved anywhere, by any amount, never turns a flat series into a leak.
    #[test]
    fn one_outlier_cannot_make_a_leak(at in 0usize..100, size in -1e9f64..1e9) {
        let d = judge(&series(100, |x| 1000.0 + if (x - 22) / 2 == at as u64 { size } else { 0.0 }));
        prop_assert_ne!(d.verdict, Verdict::Leak, "{}", d.reason);
    }

    /// One sample moved anywhere, by any amount, never hides a steady leak.
    #[test]
    fn one_outlier_cannot_hide_a_leak(at in 0usize..100, size in -1e9f64..1e9) {
        let d = judge(&series(100, |x| {
            100.0 * x as f64 + if (x - 22) / 2 == at as u64 { size } else { 0.0 }
        }));
        prop_assert_eq!(d.verdict, Verdict::Leak, "{}", d.reason);
    }

    /// A steady leak well above the tolerance with bounded noise is always found.
    #[test]
    fn steady_leaks_with_noise_are_found(rate in 64.0f64..1e6, seed in any::<u64>()) {
        let d = judge(&series(100, |x| rate * x as f64 + 0.2 * rate * noise(x, seed)));
        prop_assert_eq!(d.verdict, Verdict::Leak, "{}", d.reason);
    }

    /// A steady leak's robust slope is close to the true rate and inside its own interval (the
    /// interval covers the rate with probability 0.99, not always, so that is not asserted).
    #[test]
    fn robust_slope_recovers_the_rate(rate in 16.0f64..1e5, seed in any::<u64>()) {
        let d = judge(&series(100, |x| rate * x as f64 + rate * noise(x, seed)));
        let robust = d.metrics[0].robust.unwrap();
        prop_assert!((robust.slope - rate).abs() <= 0.05 * rate, "{:?}", robust);
        prop_assert!(robust.ci_low <= robust.slope && robust.slope <= robust.ci_high);
    }

    /// Shifting every value by a constant changes nothing; scaling by k > 0 scales the slope.
    #[test]
    fn shift_and_scale_invariance(shift in -1e9f64..1e9, scale in 0.5f64..100.0, seed in any::<u64>()) {
        let base = |x: u64| 50.0 * x as f64 + 500.0 * noise(x, seed);
        let a = judge(&series(100, base));
        let b = judge(&series(100, |x| base(x) + shift));
        let c = fit_robust(
            &series(100, |x| scale * base(x)).iter().map(|s| (s.iteration as f64, s.values[0])).collect::<Vec<_>>(),
            0.99,
        ).unwrap();
        prop_assert_eq!(a.verdict, b.verdict);
        let (sa, sb) = (a.metrics[0].robust.unwrap().slope, b.metrics[0].robust.unwrap().slope);
        prop_assert!((sa - sb).abs() <= 1e-6 * (1.0 + shift.abs()));
        prop_assert!((c.slope - scale * sa).abs() <= 1e-6 * scale * sa.abs().max(1.0));
    }
}

#[test]
fn a_flushed_buffer_passes_once_the_level_it_falls_back_to_is_seen_flat() {
    // MemoryHandler(capacity=50): 600 B a record, flushed every 50 iterations, with jitter.
    // Its slope's interval straddles the tolerance for as long as the run lasts; the floor
    // of each stretch of the run (what the buffer falls back to) is flat.
    // A third of the way in the buffer's records got a little bigger (a dict resized): the
    // floor and the peaks step up once.
    let sawtooth = |x: u64| {
        let (floor, record) = if x < 300 {
            (0.0, 768.0)
        } else {
            (160.0, 784.0)
        };
        1000.0 + floor + record * (x % 50) as f64
    };
    let d = decide(&series(400, sawtooth), &adaptive());
    assert_eq!(d.verdict, Verdict::Pass, "{}", d.reason);
    assert!(d.reason.contains("falls back to"), "{}", d.reason);

    // The same buffer over a leak at twice the tolerance is never a pass.
    let d = decide(&series(400, |x| sawtooth(x) + 16.0 * x as f64), &adaptive());
    assert_ne!(d.verdict, Verdict::Pass, "{}", d.reason);
}
