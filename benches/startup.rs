//! What a scenario costs beyond its own iterations, with workers forked from the fork server
//! and with every worker spawned (`--spawn`), measured in one run so the ratios compare like
//! with like:
//!
//! - 200 trivial `run` scenarios with `-j 2`: the run's wall time;
//! - per-scenario overhead (start, collection share, reports) of `run` scenarios and of
//!   `pytest` workloads, `-j 1`: the run's wall time less the time the workers spent in the
//!   scenarios' own phases (setup, iterations, sampling, teardown, as `timings` report them),
//!   divided by the scenarios;
//! - one pytest test leak-checked at default settings, beside the same test run the same number
//!   of times by pytest in one process (`pytest --count=N`, pytest-repeat), N being the
//!   iterations leakcheck ran.
//!
//! The pytest parts use a venv under `target/startup-bench/venv` (pytest and pytest-repeat
//! from PyPI, made once). Run with `cargo bench --bench startup` (options after `--`: `--runs N`,
//! default 5, the median of which is reported; `--out DIR`, default `benches/startup`). Writes
//! `results.md` into `--out`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;

use anyhow::Context;
use common::{flag_value, succeed};
use serde_json::Value;

const PYTEST: &str = "pytest==9.2.0";
const PYTEST_REPEAT: &str = "pytest-repeat==0.9.4";

/// A test of the kind a library's suite has: a small round trip through the standard library.
const TEST_FILE: &str = r#"
import json

def test_roundtrip():
    record = {"id": 7, "name": "widget", "tags": ["a", "b", "c"], "price": 9.5}
    text = json.dumps(record, sort_keys=True)
    assert json.loads(text) == record
"#;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = flag_value(&args, "--runs").map_or(Ok(5), |v| v.parse())?;
    let out = PathBuf::from(flag_value(&args, "--out").unwrap_or_else(|| "benches/startup".into()));
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/startup-bench");
    std::fs::create_dir_all(&work)?;
    let venv = work.join("venv");
    if !venv.join("bin/python").exists() {
        common::fresh_venv(&venv, &[PYTEST, PYTEST_REPEAT])?;
    }
    let python = venv.join("bin/python");
    write_project(&work)?;

    let mut rows = Vec::new();
    for (label, file, jobs) in [
        ("200 trivial `run` scenarios, `-j 2`", "trivial.yaml", "2"),
        ("per `run` scenario, `-j 1`", "trivial50.yaml", "1"),
        (
            "per `pytest` test (a file of 50), `-j 1`",
            "suite.yaml",
            "1",
        ),
    ] {
        let mut forked = Vec::new();
        let mut spawned = Vec::new();
        for _ in 0..runs {
            for (spawn, into) in [(false, &mut forked), (true, &mut spawned)] {
                into.push(leakcheck(&work, &python, file, jobs, spawn)?);
            }
        }
        rows.push((label, median(forked), median(spawned)));
    }

    // One test, default settings, beside pytest running it as often in one process.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut iterations = 0;
    for _ in 0..runs {
        let run = leakcheck(&work, &python, "one.yaml", "1", false)?;
        iterations = run.iterations;
        ours.push(run);
        let clock = Instant::now();
        let mut cmd = Command::new(&python);
        cmd.current_dir(&work)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(format!("--count={iterations}"))
            .arg("tests/test_one.py");
        succeed(cmd, "pytest --count")?;
        theirs.push(clock.elapsed().as_secs_f64());
    }
    theirs.sort_by(f64::total_cmp);
    let pytest_secs = theirs[theirs.len() / 2];
    let one = median(ours);

    let mut md = String::new();
    md.push_str(&format!(
        "Median of {runs} runs, release build, 2 cores; forked = workers forked from the fork \
         server (the default), spawned = `--spawn`.\n\n"
    ));
    md.push_str("| what | forked: run | forked: per scenario beyond its iterations | spawned: run | spawned: per scenario beyond its iterations |\n|---|---:|---:|---:|---:|\n");
    for (label, forked, spawned) in &rows {
        md.push_str(&format!(
            "| {label} | {:.2} s | {:.1} ms | {:.2} s | {:.1} ms |\n",
            forked.wall,
            forked.overhead_ms(),
            spawned.wall,
            spawned.overhead_ms()
        ));
    }
    md.push_str(&format!(
        "\nOne pytest test leak-checked at default settings ({iterations} iterations): {:.2} s; \
         the same test run {iterations} times by `pytest --count={iterations}` in one process: \
         {pytest_secs:.2} s; ratio {:.2}.\n",
        one.wall,
        one.wall / pytest_secs
    ));
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("results.md"), &md)?;
    print!("{md}");
    Ok(())
}

/// The bench's scenario files and its one-file pytest suite.
fn write_project(dir: &Path) -> anyhow::Result<()> {
    let trivial = |n: usize| {
        let mut text = String::from("scenarios:\n");
        for i in 0..n {
            text.push_str(&format!("  - name: t{i}\n    run: \"x = [i]\"\n"));
        }
        text
    };
    std::fs::write(dir.join("trivial.yaml"), trivial(200))?;
    std::fs::write(dir.join("trivial50.yaml"), trivial(50))?;
    std::fs::write(dir.join("pytest.ini"), "[pytest]\ntestpaths = tests\n")?;
    std::fs::create_dir_all(dir.join("tests"))?;
    let mut suite = String::from("import pytest\n\n");
    suite.push_str(
        "@pytest.mark.parametrize('n', range(50))\ndef test_many(n):\n    assert [n] * 3\n",
    );
    std::fs::write(dir.join("tests/test_fifty.py"), suite)?;
    std::fs::write(dir.join("tests/test_one.py"), TEST_FILE)?;
    std::fs::write(
        dir.join("suite.yaml"),
        "scenarios:\n  - pytest: tests/test_fifty.py\n",
    )?;
    std::fs::write(
        dir.join("one.yaml"),
        "scenarios:\n  - pytest: tests/test_one.py::test_roundtrip\n",
    )?;
    Ok(())
}

/// One leakcheck run: its wall time, the scenarios, the seconds the workers spent in the
/// scenarios' own phases, and the iterations of the first scenario.
#[derive(Clone, Copy)]
struct Run {
    wall: f64,
    scenarios: usize,
    own: f64,
    iterations: u64,
}

impl Run {
    fn overhead_ms(&self) -> f64 {
        (self.wall - self.own) / self.scenarios.max(1) as f64 * 1000.0
    }
}

fn leakcheck(
    dir: &Path,
    python: &Path,
    file: &str,
    jobs: &str,
    spawn: bool,
) -> anyhow::Result<Run> {
    let reports = dir.join("reports");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakcheck"));
    cmd.current_dir(dir)
        .env_remove("VIRTUAL_ENV")
        .args(["run", file, "-q", "-j", jobs, "--no-diagnose", "--python"])
        .arg(python)
        .arg("--report-dir")
        .arg(&reports);
    if spawn {
        cmd.arg("--spawn");
    }
    let clock = Instant::now();
    succeed(cmd, "leakcheck run")?;
    let wall = clock.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(reports.join("results.json"))?;
    let results: Value = serde_json::from_str(&text).context("results.json")?;
    let scenarios = results["scenarios"].as_array().context("scenarios")?;
    let own: f64 = scenarios
        .iter()
        .map(|s| {
            [
                "setup",
                "warmup",
                "iterations",
                "sampling",
                "trace",
                "teardown",
            ]
            .iter()
            .map(|phase| s["timings"][phase].as_f64().unwrap_or(0.0))
            .sum::<f64>()
        })
        .sum();
    // With -j 2 the phases of two workers overlap: the per-scenario figure is for -j 1 rows.
    let jobs: f64 = jobs.parse().unwrap_or(1.0);
    Ok(Run {
        wall,
        scenarios: scenarios.len(),
        own: own / jobs,
        iterations: scenarios
            .first()
            .and_then(|s| s["iterations_done"].as_u64())
            .unwrap_or(0),
    })
}

/// The run of median wall time.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    runs[runs.len() / 2]
}
