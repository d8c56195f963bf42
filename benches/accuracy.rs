//! Accuracy of the verdict on a corpus of known truth (`benches/accuracy/corpus/`).
//!
//! Run with `cargo bench --bench accuracy` (options after `--`: `--runs R`, default 10;
//! `--corpus DIR`; `--out DIR`, default `benches/accuracy`). Each run `r` executes the whole
//! corpus twice with the real binary and `--seed r`: once with the defaults (adaptive budget,
//! untraced run plus a traced window), once with a fixed count (`--max-iterations 0`) and the
//! previous sampling plan (gate `tracemalloc, rss, alloc_blocks, fds`, so traced from start to
//! end). From the fixed runs' samples the benchmark also replays two older rules, so every
//! column sees the same processes:
//! - **OLS (before)**: leakcheck's previous rule, a least-squares slope interval at 99 % against
//!   the tolerance, gated on tracemalloc, alloc_blocks and fds;
//! - **block deltas**: CPython's `regrtest -R 5:4` decision on `sys.getallocatedblocks()`, the
//!   run split in 9 parts, a leak when each of the last 4 deltas is at least 1 block.
//!
//! Writes `results.json` (every run) and `results.md` (the table for the README) into `--out`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use leakcheck::metric::Metric;
use leakcheck::results::{self, ScenarioResult};
use leakcheck::stats::fit_ols;
use leakcheck::verdict::Verdict;
use serde::Serialize;

/// One scenario's outcome in one run, under every rule.
#[derive(Clone, Debug, Serialize)]
struct Outcome {
    scenario: String,
    leaks: bool,
    run: u32,
    adaptive: Verdict,
    adaptive_iterations: u64,
    adaptive_secs: f64,
    fixed: Verdict,
    fixed_iterations: u64,
    fixed_secs: f64,
    ols: Verdict,
    block_delta: Verdict,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let runs: u32 = value("--runs").map_or(10, |v| v.parse().expect("--runs N"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = value("--corpus").map_or(root.join("benches/accuracy/corpus"), PathBuf::from);
    let out = value("--out").map_or(root.join("benches/accuracy"), PathBuf::from);
    let work = tempfile::tempdir().expect("temporary folder");

    let mut outcomes = Vec::new();
    for run in 1..=runs {
        let adaptive = run_corpus(&corpus, &work.path().join(format!("a{run}")), run, false);
        let fixed = run_corpus(&corpus, &work.path().join(format!("f{run}")), run, true);
        for a in &adaptive {
            let f = fixed
                .iter()
                .find(|f| f.name == a.name)
                .expect("same corpus");
            outcomes.push(Outcome {
                scenario: a.name.clone(),
                leaks: a.expected == leakcheck::scenario::Expect::Leak,
                run,
                adaptive: a.verdict,
                adaptive_iterations: measured(a),
                adaptive_secs: a.duration_secs,
                fixed: f.verdict,
                fixed_iterations: measured(f),
                fixed_secs: f.duration_secs,
                ols: old_ols_rule(f),
                block_delta: block_delta_rule(f),
            });
        }
        eprintln!("accuracy: run {run}/{runs} done");
    }
    std::fs::create_dir_all(&out).expect("output folder");
    let json = serde_json::to_string_pretty(&outcomes).expect("serializable");
    std::fs::write(out.join("results.json"), json).expect("write results.json");
    let table = render(&outcomes, runs);
    std::fs::write(out.join("results.md"), &table).expect("write results.md");
    println!("{table}");
}

/// Runs the corpus once and reads back its results.
fn run_corpus(corpus: &Path, dir: &Path, seed: u32, fixed: bool) -> Vec<ScenarioResult> {
    let corpus = if fixed {
        traced_copy(corpus, &dir.with_extension("corpus"))
    } else {
        corpus.to_path_buf()
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakcheck"));
    cmd.arg("run")
        .arg(&corpus)
        .args(["--no-diagnose", "--quiet", "--seed", &seed.to_string()])
        .arg("--report-dir")
        .arg(dir);
    if fixed {
        cmd.args(["--max-iterations", "0"]);
    }
    let output = cmd.output().expect("leakcheck runs");
    assert!(
        output.status.code().is_some_and(|c| c <= 1),
        "leakcheck failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    results::read(&dir.join("results.json"))
        .expect("results.json")
        .scenarios
}

/// The gate before the untraced sampling plan; gating on tracemalloc traces the whole run.
const PREVIOUS_GATE: &str = "[tracemalloc, rss, alloc_blocks, fds]";

/// A copy of the corpus in `dir` whose scenarios gate on [`PREVIOUS_GATE`], so the fixed runs
/// sample tracemalloc throughout as leakcheck did before, and the old rules replayed on their
/// samples see the series they were designed for.
fn traced_copy(corpus: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("corpus copy folder");
    for entry in std::fs::read_dir(corpus).expect("corpus folder") {
        let path = entry.expect("corpus entry").path();
        let text = std::fs::read_to_string(&path).expect("corpus file");
        assert!(
            text.contains("\ndefaults:\n"),
            "{} needs a `defaults:` mapping",
            path.display()
        );
        let traced = text.replacen(
            "\ndefaults:\n",
            &format!("\ndefaults:\n  gate: {PREVIOUS_GATE}\n"),
            1,
        );
        let name = path.file_name().expect("file name");
        std::fs::write(dir.join(name), traced).expect("write corpus copy");
    }
    dir.to_path_buf()
}

fn measured(s: &ScenarioResult) -> u64 {
    s.analysis
        .as_ref()
        .map_or(s.iterations, |a| a.stop.measured_iterations)
}

/// leakcheck's rule before the robust statistics: least squares at 99 %, its default gate then.
fn old_ols_rule(s: &ScenarioResult) -> Verdict {
    let mut calls = Vec::new();
    for metric in [Metric::Tracemalloc, Metric::AllocBlocks, Metric::Fds] {
        let points: Vec<(f64, f64)> = s.metrics[&metric]
            .samples
            .iter()
            .map(|(x, y)| (*x as f64, *y))
            .collect();
        let tolerance = metric.default_tolerance();
        calls.push(match fit_ols(&points, 0.99) {
            Some(f) if f.ci_low > tolerance => Verdict::Leak,
            Some(f) if f.ci_high <= tolerance => Verdict::Pass,
            _ => Verdict::Inconclusive,
        });
    }
    if calls.contains(&Verdict::Leak) {
        Verdict::Leak
    } else if calls.iter().all(|c| *c == Verdict::Pass) {
        Verdict::Pass
    } else {
        Verdict::Inconclusive
    }
}

/// `regrtest -R 5:4` on allocated blocks: the run in 9 parts, leak when the last 4 deltas are
/// all at least one block.
fn block_delta_rule(s: &ScenarioResult) -> Verdict {
    let blocks = &s.metrics[&Metric::AllocBlocks];
    let mut series: Vec<(u64, f64)> = blocks
        .warmup_samples
        .iter()
        .chain(&blocks.samples)
        .copied()
        .collect();
    series.sort_by_key(|p| p.0);
    let total = s.warmup + measured(s);
    let at = |k: u64| {
        let boundary = total * k / 9;
        series
            .iter()
            .rev()
            .find(|p| p.0 <= boundary)
            .map_or(f64::NAN, |p| p.1)
    };
    if (5..9).all(|k| at(k + 1) - at(k) >= 1.0) {
        Verdict::Leak
    } else {
        Verdict::Pass
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Which verdict of an outcome a column shows.
type Pick = fn(&Outcome) -> Verdict;

/// The per-scenario matrix and the totals, as Markdown.
fn render(outcomes: &[Outcome], runs: u32) -> String {
    let mut by_scenario: BTreeMap<(bool, String), Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        by_scenario
            .entry((!o.leaks, o.scenario.clone()))
            .or_default()
            .push(o);
    }
    let count = |list: &[&Outcome], pick: fn(&Outcome) -> Verdict, v: Verdict| {
        list.iter().filter(|o| pick(o) == v).count()
    };
    let cell = |list: &[&Outcome], pick: fn(&Outcome) -> Verdict| {
        let leak = count(list, pick, Verdict::Leak);
        let inconclusive = count(list, pick, Verdict::Inconclusive);
        if inconclusive > 0 {
            format!("{leak} ({inconclusive} inc.)")
        } else {
            leak.to_string()
        }
    };
    let mut text = format!(
        "Leak verdicts out of {runs} runs per scenario (inc. = inconclusive runs). Iterations \
         and time: median of the adaptive runs (measured iterations; seconds per worker).\n\n\
         | scenario | truth | adaptive (default) | fixed 200, traced, previous gate | OLS (before) | block deltas | iterations | time |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for ((_, name), list) in &by_scenario {
        text.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {:.2} s |\n",
            if list[0].leaks { "leak" } else { "clean" },
            cell(list, |o| o.adaptive),
            cell(list, |o| o.fixed),
            cell(list, |o| o.ols),
            cell(list, |o| o.block_delta),
            median(list.iter().map(|o| o.adaptive_iterations as f64).collect()),
            median(list.iter().map(|o| o.adaptive_secs).collect()),
        ));
    }
    let totals = |leaks: bool, pick: fn(&Outcome) -> Verdict| {
        let group: Vec<&Vec<&Outcome>> = by_scenario
            .iter()
            .filter(|((clean, _), _)| *clean != leaks)
            .map(|(_, list)| list)
            .collect();
        let always = group
            .iter()
            .filter(|list| list.iter().all(|o| pick(o) == Verdict::Leak))
            .count();
        let ever = group
            .iter()
            .filter(|list| list.iter().any(|o| pick(o) == Verdict::Leak))
            .count();
        let run_hits: usize = group
            .iter()
            .map(|list| list.iter().filter(|o| pick(o) == Verdict::Leak).count())
            .sum();
        let run_total: usize = group.iter().map(|list| list.len()).sum();
        (always, ever, group.len(), run_hits, run_total)
    };
    text.push_str("\n| rule | leaks caught in every run | leak runs caught | clean scenarios with any false alarm | false-alarm runs |\n|---|---|---|---|---|\n");
    let rules: [(&str, Pick); 4] = [
        ("adaptive (default)", |o| o.adaptive),
        ("fixed 200, traced, previous gate", |o| o.fixed),
        ("OLS (before)", |o| o.ols),
        ("block deltas (regrtest -R)", |o| o.block_delta),
    ];
    for (name, pick) in rules {
        let (caught, _, leaks, hits, leak_runs) = totals(true, pick);
        let (_, alarmed, clean, alarms, clean_runs) = totals(false, pick);
        text.push_str(&format!(
            "| {name} | {caught}/{leaks} | {hits}/{leak_runs} | {alarmed}/{clean} | {alarms}/{clean_runs} |\n"
        ));
    }
    let clean_iterations: Vec<f64> = outcomes
        .iter()
        .filter(|o| !o.leaks && o.adaptive == Verdict::Pass)
        .map(|o| o.adaptive_iterations as f64)
        .collect();
    text.push_str(&format!(
        "\nClean runs that passed: median {} measured iterations (the adaptive budget is 800).\n",
        median(clean_iterations)
    ));
    text
}
