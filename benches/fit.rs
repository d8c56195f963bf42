//! Speed of the statistics: fitting a slope with its confidence interval over many samples, by
//! least squares (shown in reports), robustly (Theil–Sen with Mann–Kendall, which decides the
//! verdict; thinned to 500 block medians above 500 samples) and the hinge that locates a plateau.
//!
//! Run with `cargo bench --bench fit`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use leakcheck::stats::theil_sen::median_slope;
use leakcheck::stats::{find_plateau, fit_ols, fit_robust};

fn series(n: usize) -> Vec<(f64, f64)> {
    // A slow leak with deterministic jitter, like a tracemalloc series.
    (0..n)
        .map(|i| {
            let x = i as f64;
            (x, 40_000.0 + 36.0 * x + ((i * 7919) % 113) as f64)
        })
        .collect()
}

fn bench_fit(c: &mut Criterion) {
    for n in [100, 10_000] {
        let points = series(n);
        c.bench_function(&format!("fit_ols {n} samples"), |b| {
            b.iter(|| fit_ols(black_box(&points), 0.99))
        });
        c.bench_function(&format!("fit_robust {n} samples"), |b| {
            b.iter(|| fit_robust(black_box(&points), 0.99))
        });
        c.bench_function(&format!("find_plateau {n} samples"), |b| {
            b.iter(|| find_plateau(black_box(&points)))
        });
    }
    // The verdict's persistence check: the last eighth of 10 000 samples, not thinned.
    let points = series(1250);
    c.bench_function("median_slope 1250 samples", |b| {
        b.iter(|| median_slope(black_box(&points)))
    });
}

criterion_group!(benches, bench_fit);
criterion_main!(benches);
