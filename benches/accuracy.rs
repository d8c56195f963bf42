//! Accuracy of the verdict on a corpus of known truth, in two parts: synthetic scenarios
//! (`benches/accuracy/corpus/`) and documented leaks in released PyPI packages
//! (`benches/accuracy/pypi/`: `leaks.yaml` runs against a venv of the leaky releases,
//! `clean.yaml` against a venv of the fixed ones, both made under `target/accuracy-venvs/` and
//! reused while their requirements match), and the founding causes on their real libraries
//! (`examples/causes/`, leaky and fixed pairs, against a venv of its `requirements.txt`, also
//! under `target/accuracy-venvs/`). Without a network the PyPI and causes parts are skipped,
//! and said.
//!
//! Run with `cargo bench --bench accuracy` (options after `--`: `--runs R`, default 10;
//! `--corpus DIR`; `--pypi DIR`; `--causes DIR`; `--no-pypi`, which skips both parts that need
//! PyPI; `--out DIR`, default `benches/accuracy`). Each run
//! `r` executes the whole corpus twice with the real binary and `--seed r`: once with the defaults (adaptive budget,
//! untraced run plus a traced window), once with a fixed count (`--max-iterations 0`) and the
//! previous sampling plan (gate `tracemalloc, rss, alloc_blocks, fds`, so traced from start to
//! end). From the fixed runs' samples the benchmark also replays two older rules, so every
//! column sees the same processes:
//! - **OLS (before)**: leakcheck's previous rule, a least-squares slope interval at 99 % against
//!   the tolerance, gated on tracemalloc, alloc_blocks and fds;
//! - **block deltas**: CPython's `regrtest -R 5:4` decision on `sys.getallocatedblocks()`, the
//!   run split in 9 parts, a leak when each of the last 4 deltas is at least 1 block.
//!
//! With PyPI, a last part checks the diagnosis of the native leaks (see `native_sites.rs`):
//! whether the top native site names the call that leaks, with memray and without.
//!
//! Writes `results.json` (every run), `native-sites.json` (the native part's runs) and
//! `results.md` (the tables for the README, totals per part) into `--out`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
#[path = "accuracy/native_sites.rs"]
mod native_sites;

use anyhow::Context;
use leakcheck::metric::Metric;
use leakcheck::results::{self, ScenarioResult};
use leakcheck::stats::fit_ols;
use leakcheck::verdict::Verdict;
use serde::Serialize;

/// One scenario's outcome in one run, under every rule.
#[derive(Clone, Debug, Serialize)]
struct Outcome {
    /// The corpus part: [`SYNTHETIC`], [`PYPI`] or [`CAUSES`].
    part: &'static str,
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

/// Names of the corpus parts, in the order of the report.
const SYNTHETIC: &str = "synthetic";
const PYPI: &str = "PyPI";
const CAUSES: &str = "causes";
/// The parts in the order of the report.
const PARTS: [&str; 3] = [SYNTHETIC, PYPI, CAUSES];

/// Scenario files (a file or a folder) run by one leakcheck invocation, and the interpreter
/// whose packages they import (`--python`; none: the embedded one's).
struct Batch {
    scenarios: PathBuf,
    python: Option<PathBuf>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| common::flag_value(&args, flag);
    let runs: u32 = value("--runs").map_or(10, |v| v.parse().expect("--runs N"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = value("--corpus").map_or(root.join("benches/accuracy/corpus"), PathBuf::from);
    let pypi = value("--pypi").map_or(root.join("benches/accuracy/pypi"), PathBuf::from);
    let causes = value("--causes").map_or(root.join("examples/causes"), PathBuf::from);
    let out = value("--out").map_or(root.join("benches/accuracy"), PathBuf::from);
    let work = tempfile::tempdir().expect("temporary folder");

    let mut parts = vec![(
        SYNTHETIC,
        vec![Batch {
            scenarios: corpus.clone(),
            python: None,
        }],
    )];
    let mut notes = Vec::new();
    let mut native = Vec::new();
    if !args.iter().any(|a| a == "--no-pypi") {
        let venvs = std::env::var_os("CARGO_TARGET_DIR")
            .map_or(root.join("target"), PathBuf::from)
            .join("accuracy-venvs");
        match pypi_batches(&pypi, &venvs) {
            Ok(batches) => parts.push((PYPI, batches)),
            Err(e) => {
                let note = format!("PyPI corpus not run: {e:#}");
                eprintln!("accuracy: {note}");
                notes.push(note);
            }
        }
        if let Ok(leaky) = venv(&venvs.join("leaky"), &pypi.join("leaky-requirements.txt")) {
            native = native_batches(&corpus, &pypi, &leaky);
        }
        let requirements = causes.join("requirements.txt");
        match venv(&venvs.join("causes"), &requirements) {
            Ok(python) => parts.push((
                CAUSES,
                vec![Batch {
                    scenarios: causes,
                    python: Some(python),
                }],
            )),
            Err(e) => {
                let note = format!("causes corpus not run: {e:#}");
                eprintln!("accuracy: {note}");
                notes.push(note);
            }
        }
    }

    let mut outcomes = Vec::new();
    let mut native_outcomes = Vec::new();
    for run in 1..=runs {
        for (part, batches) in &parts {
            for (b, batch) in batches.iter().enumerate() {
                let dir = work.path().join(format!("{part}{b}-r{run}"));
                let adaptive = run_corpus(batch, &dir.join("adaptive"), run, false);
                let fixed = run_corpus(batch, &dir.join("fixed"), run, true);
                outcomes.extend(compare_runs(part, run, &adaptive, &fixed));
            }
        }
        for (b, batch) in native.iter().enumerate() {
            let dir = work.path().join(format!("native{b}-r{run}"));
            native_outcomes.extend(native_sites::run(batch, &dir, run));
        }
        eprintln!("accuracy: run {run}/{runs} done");
    }
    std::fs::create_dir_all(&out).expect("output folder");
    let json = serde_json::to_string_pretty(&outcomes).expect("serializable");
    std::fs::write(out.join("results.json"), json).expect("write results.json");
    let json = serde_json::to_string_pretty(&native_outcomes).expect("serializable");
    std::fs::write(out.join("native-sites.json"), json).expect("write native-sites.json");
    let mut table = render(&outcomes, runs);
    if !native_outcomes.is_empty() {
        table.push('\n');
        table.push_str(&native_sites::render(&native_outcomes, runs));
    }
    for note in notes {
        table.push_str(&format!("\n{note}\n"));
    }
    std::fs::write(out.join("results.md"), &table).expect("write results.md");
    println!("{table}");
}

/// One outcome per scenario from the adaptive and the fixed run of the same batch.
fn compare_runs(
    part: &'static str,
    run: u32,
    adaptive: &[ScenarioResult],
    fixed: &[ScenarioResult],
) -> Vec<Outcome> {
    adaptive
        .iter()
        .map(|a| {
            let f = fixed
                .iter()
                .find(|f| f.name == a.name)
                .expect("same corpus");
            Outcome {
                part,
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
            }
        })
        .collect()
}

/// The PyPI part: `leaks.yaml` against a venv of `leaky-requirements.txt`, `clean.yaml` against
/// one of `fixed-requirements.txt`, both venvs made (or reused) under `venvs`.
fn pypi_batches(pypi: &Path, venvs: &Path) -> anyhow::Result<Vec<Batch>> {
    let mut batches = Vec::new();
    for (scenarios, kind) in [("leaks.yaml", "leaky"), ("clean.yaml", "fixed")] {
        let requirements = pypi.join(format!("{kind}-requirements.txt"));
        let python = venv(&venvs.join(kind), &requirements)?;
        batches.push(Batch {
            scenarios: pypi.join(scenarios),
            python: Some(python),
        });
    }
    Ok(batches)
}

/// The native-sites part's batches: the synthetic native leaks (and the ctypes leak of Python
/// memory) with memray, from the leaky venv, and without it, in the embedded interpreter; the
/// PyPI native leaks in the leaky venv.
fn native_batches(corpus: &Path, pypi: &Path, leaky: &Path) -> Vec<native_sites::Batch> {
    let synthetic = "native or python-memory";
    vec![
        native_sites::Batch {
            scenarios: corpus.join("leaks.yaml"),
            select: synthetic,
            python: Some(leaky.to_path_buf()),
            memray: "memray",
        },
        native_sites::Batch {
            scenarios: corpus.join("leaks.yaml"),
            select: synthetic,
            python: None,
            memray: "no memray",
        },
        native_sites::Batch {
            scenarios: pypi.join("leaks.yaml"),
            select: "native",
            python: Some(leaky.to_path_buf()),
            memray: "memray",
        },
    ]
}

/// The copy of the requirements kept in a venv: it matches when this file equals them.
const VENV_STAMP: &str = "accuracy-requirements.txt";

/// A venv at `dir` with exactly `requirements` installed, reused when its stamp matches, else
/// made afresh with `python3 -m venv` (`PYO3_PYTHON` if set: the interpreter leakcheck embeds)
/// and `pip install -r`.
fn venv(dir: &Path, requirements: &Path) -> anyhow::Result<PathBuf> {
    let wanted = std::fs::read_to_string(requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let stamp = dir.join(VENV_STAMP);
    let python = dir.join("bin/python");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(dir.to_path_buf());
    }
    eprintln!(
        "accuracy: creating {} from {}",
        dir.display(),
        requirements.display()
    );
    common::fresh_venv(dir, &[OsStr::new("-r"), requirements.as_os_str()])?;
    std::fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(dir.to_path_buf())
}

/// Runs the corpus once and reads back its results.
fn run_corpus(batch: &Batch, dir: &Path, seed: u32, fixed: bool) -> Vec<ScenarioResult> {
    let scenarios = if fixed {
        traced_copy(&batch.scenarios, &dir.with_extension("corpus"))
    } else {
        batch.scenarios.clone()
    };
    let seed = seed.to_string();
    let mut args = vec![
        scenarios.as_os_str(),
        OsStr::new("--no-diagnose"),
        OsStr::new("--seed"),
        OsStr::new(&seed),
    ];
    if fixed {
        args.extend([OsStr::new("--max-iterations"), OsStr::new("0")]);
    }
    leakcheck_results(&args, batch.python.as_deref(), dir)
}

/// Runs `leakcheck run ARGS --quiet` (with `--python` when given), its reports into `dir`, and
/// reads back its results.
fn leakcheck_results(args: &[&OsStr], python: Option<&Path>, dir: &Path) -> Vec<ScenarioResult> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakcheck"));
    cmd.arg("run")
        .args(args)
        .arg("--quiet")
        .arg("--report-dir")
        .arg(dir);
    if let Some(python) = python {
        cmd.arg("--python").arg(python);
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

/// A copy in `dir` of `scenarios` (a YAML file, or a folder of them) whose scenarios gate on
/// [`PREVIOUS_GATE`], so the fixed runs sample tracemalloc throughout as leakcheck did before,
/// and the old rules replayed on their samples see the series they were designed for. Python
/// files beside the scenarios are copied as they are (their `python_path` is `.`).
fn traced_copy(scenarios: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("corpus copy folder");
    let (folder, only) = if scenarios.is_dir() {
        (scenarios, None)
    } else {
        let parent = scenarios.parent().expect("scenario file's folder");
        (parent, Some(scenarios.file_name().expect("file name")))
    };
    for entry in std::fs::read_dir(folder).expect("corpus folder") {
        let path = entry.expect("corpus entry").path();
        let name = path.file_name().expect("file name");
        let copy = dir.join(name);
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") if only.is_none_or(|o| o == name) => {
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
                std::fs::write(copy, traced).expect("write corpus copy");
            }
            Some("py") => {
                std::fs::copy(&path, copy).expect("copy corpus module");
            }
            _ => {}
        }
    }
    only.map_or(dir.to_path_buf(), |name| dir.join(name))
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

/// The per-scenario matrix and the totals of each corpus part, as Markdown.
fn render(outcomes: &[Outcome], runs: u32) -> String {
    let part_order = |part: &str| PARTS.iter().position(|p| *p == part).unwrap_or(PARTS.len());
    let mut by_scenario: BTreeMap<(usize, bool, String), Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        by_scenario
            .entry((part_order(o.part), !o.leaks, o.scenario.clone()))
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
    let pypi_note = if outcomes.iter().any(|o| o.part == PYPI) {
        " `pypi-leak-*` ran against the leaky releases, `pypi-clean-*` against the fixed ones."
    } else {
        ""
    };
    let mut text = format!(
        "Leak verdicts out of {runs} runs per scenario (inc. = inconclusive runs). Iterations \
         and time: median of the adaptive runs (measured iterations; seconds per worker).\
         {pypi_note}\n\n\
         | scenario | truth | adaptive (default) | fixed 200, traced, previous gate | OLS (before) | block deltas | iterations | time |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for ((_, _, name), list) in &by_scenario {
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
    for part in PARTS {
        let scenarios: Vec<&Vec<&Outcome>> = by_scenario
            .iter()
            .filter(|((order, _, _), _)| *order == part_order(part))
            .map(|(_, list)| list)
            .collect();
        if !scenarios.is_empty() {
            text.push_str(&format!("\nTotals, {part} corpus:\n"));
            text.push_str(&totals(&scenarios));
        }
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

/// The totals table of one part: per rule, leaks caught in every run and false alarms.
fn totals(scenarios: &[&Vec<&Outcome>]) -> String {
    let tally = |leaks: bool, pick: Pick| {
        let group: Vec<&&Vec<&Outcome>> = scenarios
            .iter()
            .filter(|list| list[0].leaks == leaks)
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
    let mut text = String::from(
        "\n| rule | leaks caught in every run | leak runs caught | clean scenarios with any false alarm | false-alarm runs |\n|---|---|---|---|---|\n",
    );
    let rules: [(&str, Pick); 4] = [
        ("adaptive (default)", |o| o.adaptive),
        ("fixed 200, traced, previous gate", |o| o.fixed),
        ("OLS (before)", |o| o.ols),
        ("block deltas (regrtest -R)", |o| o.block_delta),
    ];
    for (name, pick) in rules {
        let (caught, _, leaks, hits, leak_runs) = tally(true, pick);
        let (_, alarmed, clean, alarms, clean_runs) = tally(false, pick);
        text.push_str(&format!(
            "| {name} | {caught}/{leaks} | {hits}/{leak_runs} | {alarmed}/{clean} | {alarms}/{clean_runs} |\n"
        ));
    }
    text
}
