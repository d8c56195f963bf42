//! Per-sample overhead in the worker: what one sample costs (full `gc.collect()`, tracemalloc,
//! allocator and gc counts, RSS and fd count from /proc), on a small heap and on a heap with
//! 100 000 extra live objects. Samples are taken once per `sample_every` iterations, so this is
//! the figure to divide by `sample_every` for the per-iteration cost.
//!
//! Run with `cargo bench --bench sampling`.

use criterion::{Criterion, criterion_group, criterion_main};

// The worker's modules, as the `leakcheck-worker` executable builds them (the library has no
// embedded CPython); this bench links libpython itself, found through its run path.
#[allow(dead_code, unused_imports)]
#[path = "../src/worker/mod.rs"]
mod worker;
#[allow(unused_imports)]
use leakcheck::{
    diagnosis, fork_server, holders, metric, protocol, sampling, scenario, units, verdict,
};

use protocol::{WorkerOptions, WorkerRequest};
use scenario::load_file;
use worker::interpreter::Interpreter;
use worker::process_metrics;

fn interpreter(setup: &str) -> Interpreter {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.yaml");
    std::fs::write(
        &path,
        format!("name: bench\nsetup: |\n  {setup}\nrun: pass\n"),
    )
    .unwrap();
    let scenario = load_file(&path).unwrap().remove(0);
    let request = WorkerRequest {
        scenario,
        environment: None,
        options: WorkerOptions::default(),
    };
    let interpreter = Interpreter::start(&request).expect("interpreter starts");
    interpreter.run_setup().expect("setup runs");
    interpreter
}

fn bench_sampling(c: &mut Criterion) {
    let small = interpreter("pass");
    c.bench_function("sample: python metrics, small heap", |b| {
        b.iter(|| small.sample().unwrap())
    });
    c.bench_function("sample: rss + fds from /proc", |b| {
        b.iter(|| {
            (
                process_metrics::resident_bytes(),
                process_metrics::open_fds(),
            )
        })
    });
    drop(small);
    // The interpreter is per process; the second one reuses it with a bigger heap.
    let big = interpreter("keep = [[n] for n in range(100_000)]");
    c.bench_function("sample: python metrics, +100k live objects", |b| {
        b.iter(|| big.sample().unwrap())
    });
}

criterion_group!(benches, bench_sampling);
criterion_main!(benches);
