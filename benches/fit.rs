//! Speed of the statistics: fitting a slope with its confidence interval over many samples.
//!
//! Run with `cargo bench --bench fit`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use leakcheck::stats::fit_ols;

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
    }
}

criterion_group!(benches, bench_fit);
criterion_main!(benches);
