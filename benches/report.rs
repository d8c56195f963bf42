//! Speed of everything the runner does after the workers are done, at the scale issue 8 asks
//! for: 100 scenarios × 10 000 measured samples of every metric, plus a traced window.
//!
//! - `judge`: per scenario what the runner's `judge` does, through the same
//!   [`runner::fit_samples`]: plan the looks, replay them with `verdict::decide` (robust fits,
//!   Mann–Kendall, persistence, plateau), judge tracemalloc on its window, and assemble the
//!   `ScenarioResult`;
//! - `view`: the [`RunView`] every format renders, worded once;
//! - `render <file>`: each report file in memory from that view, through the same [`Exporter`]s
//!   the CLI uses;
//! - `view + write_all`: the view and every report file into a temporary folder, as
//!   `leakcheck run` writes them;
//! - `judge + view + write_all`: all together, the figure the target (under 1 s) is
//!   about.
//!
//! The suite mixes expected and unexpected leaks (some diagnosed), flat noisy passes, a cache
//! that fills then stays flat, a flushed buffer, a leaked descriptor, a late leak, arena steps
//! and growth that straddles its tolerance under an adaptive plan (every look replayed). The
//! synthetic samples are built once, outside the timed part.
//!
//! Run with `cargo bench --bench report` (add `-- --measurement-time 20` on a busy machine).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};

use leakcheck::diagnosis::{
    AllocationSite, Diagnosis, Frame, GarbageReport, GenerationStats, Hint, ReferrerChain,
    RootKind, TypeGrowth,
};
use leakcheck::metric::Metric;
use leakcheck::protocol::{Sample, SampleKind, Timings};
use leakcheck::report;
use leakcheck::report::view::RunView;
use leakcheck::results::{
    PythonInfo, RunResults, SCHEMA_VERSION, ScenarioResult, Summary, ToolInfo,
};
use leakcheck::runner;
use leakcheck::scenario::{Body, Expect, Scenario};

const SCENARIOS: usize = 100;
const MEASURED: u64 = 10_000;
const WARMUP: u64 = 20;
const CONFIDENCE: f64 = 0.99;

/// The shapes of the suite, ten scenarios of each.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// 217 B/iter and 3 blocks/iter, marked `expect: leak`, diagnosed.
    KnownLeak,
    /// 36 B/iter that nobody expected, diagnosed: fails the gate.
    NewLeak,
    /// Flat with allocator jitter.
    Flat,
    /// 750 B/iter until iteration 2 000, then flat: a bounded cache, a plateau note.
    FillingCache,
    /// A buffer of up to 50 KiB flushed every 500 iterations.
    FlushedBuffer,
    /// One file descriptor every 10 iterations, marked `expect: leak`.
    FdLeak,
    /// Flat, then 40 B/iter from iteration 6 000.
    LateLeak,
    /// RSS in 256 KiB arena steps every 2 500 iterations.
    ArenaSteps,
    /// About the tolerance (8 B/iter) under heavy noise, 2 500 to 10 000 iterations: undecided
    /// at every look, so `decide` replays all four.
    Straddling,
    /// Flat; dict churn moves the block count by a few.
    Churn,
}

const SHAPES: [Shape; 10] = [
    Shape::KnownLeak,
    Shape::NewLeak,
    Shape::Flat,
    Shape::FillingCache,
    Shape::FlushedBuffer,
    Shape::FdLeak,
    Shape::LateLeak,
    Shape::ArenaSteps,
    Shape::Straddling,
    Shape::Churn,
];

/// What a worker would have sent for one scenario.
struct WorkerOutput {
    scenario: Scenario,
    /// Every sample with where it was taken, as the runner collects them.
    samples: Vec<(Sample, SampleKind)>,
    diagnosis: Option<Diagnosis>,
}

/// Deterministic noise in [-1, 1).
fn noise(i: u64, seed: u64) -> f64 {
    let state = (i ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((state >> 33) % 2000) as f64 / 1000.0 - 1.0
}

/// Rounds up to whole 4 KiB pages, as RSS is.
fn pages(bytes: f64) -> f64 {
    (bytes / 4096.0).ceil() * 4096.0
}

/// The six metrics at iteration `x`, in [`Metric::ALL`] order.
fn values(shape: Shape, x: u64, seed: u64) -> [f64; 6] {
    let t = x as f64;
    let after = |start: f64| (t - start).max(0.0);
    let jitter = |scale: f64, salt: u64| (scale * noise(x, seed ^ salt)).round();
    let (bytes, blocks, objects, fds) = match shape {
        Shape::KnownLeak => (217.0 * t, 3.0 * t, t, 0.0),
        Shape::NewLeak => (36.0 * t + jitter(40.0, 1), t, t, 0.0),
        Shape::Flat | Shape::Churn => (jitter(64.0, 1), 0.0, 0.0, 0.0),
        Shape::FillingCache => (
            750.0 * t.min(2000.0),
            (t.min(2000.0) / 8.0).floor(),
            0.0,
            0.0,
        ),
        Shape::FlushedBuffer => (100.0 * (x % 500) as f64, ((x % 500) / 10) as f64, 0.0, 0.0),
        Shape::FdLeak => (32.0 * (t / 10.0).floor(), 0.0, 0.0, (t / 10.0).floor()),
        Shape::LateLeak => (
            40.0 * after(6000.0) + jitter(16.0, 1),
            after(6000.0),
            0.0,
            0.0,
        ),
        Shape::ArenaSteps => (jitter(32.0, 1), 0.0, 0.0, 0.0),
        Shape::Straddling => (8.0 * t + jitter(6000.0, 1), 0.0, 0.0, 0.0),
    };
    let churn = match shape {
        Shape::Churn => jitter(3.0, 2),
        _ => 0.0,
    };
    let arena = match shape {
        Shape::ArenaSteps => 262_144.0 * (x / 2500) as f64,
        _ => 0.0,
    };
    [
        2_000_000.0 + bytes,
        3_000_000.0 + bytes * 0.5,
        pages(30_000_000.0 + bytes * 1.1 + arena + 8192.0 * noise(x, seed ^ 3).abs()),
        50_000.0 + objects,
        60_000.0 + blocks + churn,
        5.0 + fds,
    ]
}

fn scenario(index: usize, shape: Shape) -> Scenario {
    let (iterations, expect) = match shape {
        Shape::KnownLeak | Shape::FdLeak => (MEASURED, Expect::Leak),
        Shape::Straddling => (MEASURED / 4, Expect::Pass),
        _ => (MEASURED, Expect::Pass),
    };
    Scenario {
        name: format!("{shape:?}-{index}").to_lowercase(),
        description: Some(format!("synthetic {shape:?} series")),
        file: PathBuf::from(format!("scenarios/suite{}.yaml", index % 7)),
        line: 3 + 9 * (index / 7),
        code_lines: Default::default(),
        setup: Some("from shop import prices".to_string()),
        body: Body::Run("prices.quote(i)".to_string()),
        teardown: None,
        iterations,
        max_iterations: MEASURED,
        max_iterations_set: true,
        skip: None,
        warmup: WARMUP,
        sample_every: 1,
        python_path: vec![PathBuf::from("scenarios/pylib")],
        timeout_secs: 300.0,
        iteration_timeout_secs: None,
        max_rss: None,
        gate: Metric::DEFAULT_GATE.to_vec(),
        tolerance: Metric::ALL
            .into_iter()
            .map(|m| (m, m.default_tolerance()))
            .collect(),
        expect,
        tags: vec!["bench".to_string()],
        params: Vec::new(),
        call_with_iteration: false,
    }
}

fn frame(file: &str, line: u32, code: &str) -> Frame {
    Frame {
        file: file.to_string(),
        line,
        code: Some(code.to_string()),
    }
}

/// A diagnosis the size of a real one: ten sites, eight types, three chains.
fn diagnosis() -> Diagnosis {
    let sites = (0..10u32)
        .map(|k| AllocationSite {
            file: format!("scenarios/pylib/shop/module{k}.py"),
            line: 10 + k,
            code: Some(format!("quote = {{\"order\": order_id, \"n\": {k}}}")),
            caller: (k % 3 == 0).then(|| frame("scenarios/pylib/shop/api.py", 40, "prices.get()")),
            size_diff: 20_400 / i64::from(k + 1),
            count_diff: 100,
            bytes_per_iteration: 204.0 / f64::from(k + 1),
            stack: (0..5)
                .map(|d| frame("scenarios/pylib/shop/api.py", 40 + d, "return handler(i)"))
                .collect(),
        })
        .collect();
    let types = [
        "dict", "float", "int", "list", "tuple", "str", "Quote", "cell",
    ]
    .into_iter()
    .map(|name| TypeGrowth {
        type_name: name.to_string(),
        before: 1000,
        after: 1100,
        per_iteration: 1.0,
    })
    .collect();
    let chains = ["dict", "float", "Quote"]
        .into_iter()
        .map(|name| {
            let steps: Vec<String> = [
                "module shop.prices",
                "global '_seen_quotes' (list)",
                "item [220]",
                name,
            ]
            .into_iter()
            .map(str::to_string)
            .collect();
            ReferrerChain {
                type_name: name.to_string(),
                root_kind: RootKind::ModuleGlobal,
                text: steps.join(" → "),
                steps,
                note: None,
            }
        })
        .collect();
    Diagnosis {
        iterations: 100,
        sites,
        types,
        chains,
        garbage: GarbageReport {
            garbage_before: 0,
            garbage_after: 0,
            generations: (0..3)
                .map(|generation| GenerationStats {
                    generation,
                    collections: 120,
                    collected: 4000,
                    uncollectable: 0,
                })
                .collect(),
            uncollectable_types: Vec::new(),
        },
        hints: vec![Hint::GrowingModuleContainer {
            module: Some("shop.prices".to_string()),
            name: "_seen_quotes".to_string(),
            kind: "list".to_string(),
            grew: 100,
            per_iteration: 1.0,
        }],
        cost_secs: 0.4,
        native: None,
        native_gap: None,
        error: None,
        notes: Vec::new(),
    }
}

/// The suite's worker outputs, built once.
fn suite() -> Vec<WorkerOutput> {
    (0..SCENARIOS)
        .map(|index| {
            let shape = SHAPES[index % SHAPES.len()];
            let seed = index as u64;
            let scenario = scenario(index, shape);
            let last = WARMUP + MEASURED;
            let samples = (0..=last)
                .map(|x| {
                    let sample = Sample {
                        iteration: x,
                        values: values(shape, x, seed),
                    };
                    let kind = if x <= WARMUP {
                        SampleKind::Warmup
                    } else {
                        SampleKind::Measure
                    };
                    (sample, kind)
                })
                // The traced window after the measured run: ten samples a step apart.
                .chain((1..=11).map(|k| {
                    let x = last + 5 + k;
                    let sample = Sample {
                        iteration: x,
                        values: values(shape, x, seed),
                    };
                    (sample, SampleKind::Trace)
                }))
                .collect();
            let diagnosed = matches!(shape, Shape::KnownLeak | Shape::NewLeak) && index % 20 < 10;
            WorkerOutput {
                scenario,
                samples,
                diagnosis: diagnosed.then(diagnosis),
            }
        })
        .collect()
}

/// What the runner does with one finished worker: fits, verdict, the result entry, by the
/// runner's own `judge`, given the report a worker of this suite would have sent.
fn judge(output: &WorkerOutput) -> ScenarioResult {
    let duration_secs = 2.0 + output.samples.len() as f64 * 1e-4;
    let last_measured = output
        .samples
        .iter()
        .filter(|(_, kind)| *kind == SampleKind::Measure)
        .map(|(sample, _)| sample.iteration)
        .max()
        .unwrap_or(WARMUP);
    let run = runner::WorkerRun {
        samples: output.samples.clone(),
        failure: None,
        timings: Some(Timings {
            prepare: 0.05,
            setup: 0.01,
            warmup: 0.01,
            iterations: duration_secs - 1.0,
            sampling: 0.9,
            trace: 0.05,
            diagnosis: 0.0,
            teardown: 0.0,
        }),
        diagnosis: output.diagnosis.clone(),
        holders: None,
        stopped: None,
        python_version: None,
        iterations_done: last_measured,
        duration: std::time::Duration::from_secs_f64(duration_secs),
        start: None,
        stdout: "processing 10000 quotes\n".to_string(),
        stderr: String::new(),
    };
    let judging = runner::Judging {
        confidence: CONFIDENCE,
        seed: 0,
        fail_on_inconclusive: false,
    };
    runner::judge(&output.scenario, run, judging)
}

fn judge_all(suite: &[WorkerOutput]) -> RunResults {
    let scenarios: Vec<ScenarioResult> = suite.iter().map(judge).collect();
    RunResults {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "leakcheck".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        python: PythonInfo {
            version: Some("3.11.2 (main, bench)".to_string()),
            executable: PathBuf::from("/usr/bin/python3"),
            environment: None,
        },
        started_at: "2025-01-01T00:00:00Z".to_string(),
        duration_secs: 420.0,
        confidence: CONFIDENCE,
        interrupted: false,
        summary: Summary::of(&scenarios),
        scenarios,
        baseline: None,
    }
}

fn bench_report(c: &mut Criterion) {
    let suite = suite();
    let results = judge_all(&suite);
    let s = &results.summary;
    eprintln!(
        "suite: {} scenarios × {MEASURED} measured samples: {} pass, {} leak, {} inconclusive, \
         {} not as expected",
        s.total, s.pass, s.leak, s.inconclusive, s.failed
    );
    let dir = tempfile::tempdir().expect("temporary folder");

    let mut group = c.benchmark_group("report 100×10k");
    group.sample_size(10);
    group.bench_function("judge", |b| b.iter(|| judge_all(black_box(&suite))));
    group.bench_function("view", |b| b.iter(|| RunView::new(black_box(&results))));
    let run = RunView::new(&results);
    // The report folder only: no terminal, no GitHub.
    let outputs = report::Outputs {
        dir: Some(dir.path().to_path_buf()),
        ..report::Outputs::default()
    };
    for exporter in report::exporters() {
        if !exporter.enabled(&outputs) {
            continue;
        }
        let name = format!("render {}", exporter.name());
        group.bench_function(name, |b| {
            b.iter(|| exporter.render(black_box(&run), &outputs))
        });
    }
    group.bench_function("view + write_all", |b| {
        b.iter(|| {
            report::write_all(&RunView::new(black_box(&results)), &outputs)
                .errors
                .len()
        })
    });
    group.bench_function("judge + view + write_all", |b| {
        b.iter(|| {
            let results = judge_all(black_box(&suite));
            report::write_all(&RunView::new(&results), &outputs)
                .errors
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_report);
criterion_main!(benches);
