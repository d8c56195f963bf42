//! pytest suites of released packages as leakcheck workloads: each package's own tests, taken
//! from its sdist, run once against the release with a documented leak and `--runs` times
//! against the release that fixed it, at leakcheck's default settings (`-j 2`).
//!
//! For every release the bench makes (or reuses, while its requirements match) a venv under
//! `target/pytest-suites/<package>-<version>/venv` with the release's wheel, pytest and the
//! test dependencies, downloads the release's sdist (`pip download --no-binary :all:`), copies
//! its test folder and pytest configuration into `suite/` beside a scenario file
//! `leakcheck.yaml` with one `pytest:` workload (the sdist's own sources stay out of `sys.path`,
//! so the tests import the wheel), times the suite once under plain `pytest`, and runs it with
//! the release binary.
//!
//! Run with `cargo bench --bench pytest_suites` (options after `--`: `--runs N` runs of each
//! fixed release, default 10; `--only PACKAGE`; `--whole`: every suite's whole test folder
//! instead of its selection; `--out DIR`, default `benches/pytest_suites`).
//! Writes `results.json` (every verdict of every run) and `results.md` (the table for
//! docs/benchmarks.md) into `--out`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;

use anyhow::Context;
use common::succeed;
use leakcheck::results::{self, ScenarioResult};
use leakcheck::verdict::Verdict;
use serde::Serialize;

/// pytest in every venv: a major leakcheck's own tests run against.
const PYTEST: &str = "pytest==8.4.2";

/// One package: its leaky and fixed releases and how its suite is selected.
struct Suite {
    /// The PyPI name.
    package: &'static str,
    /// The release with the documented leak.
    leaky: &'static str,
    /// The first release with the fix.
    fixed: &'static str,
    /// The leak and its fix, for the report.
    leak: &'static str,
    /// The test folder inside the sdist.
    tests: &'static str,
    /// Files of the sdist that hold its pytest configuration, copied beside the tests.
    config: &'static [&'static str],
    /// Test dependencies installed beside the wheel and pytest.
    deps: &'static [&'static str],
    /// The files (or `-k`/`-m` selection) run instead of the whole test folder, with the
    /// reason; none: the whole suite. Plain pytest runs the same selection.
    select: Option<(&'static str, &'static str)>,
    /// Node ids of the tests that call the leaky code path (read in the tests), `*` matching
    /// any text; every one should be `leak` in the leaky release and `pass` in the fixed one.
    leak_path: &'static [&'static str],
}

const SUITES: &[Suite] = &[
    Suite {
        package: "marshmallow",
        leaky: "2.16.2",
        fixed: "2.16.3",
        leak: "every Schema subclass defined is kept in `class_registry` (marshmallow#657, #732; \
               fixed by #1036 in 2.16.3)",
        tests: "tests",
        config: &["setup.cfg"],
        deps: &["pytz", "python-dateutil", "simplejson"],
        select: Some((
            "tests/test_registry.py",
            "the tests of the class registry, where the leak is; the whole suite (769 tests) \
             did not fit the time of the session that made this bench",
        )),
        // The tests that define a Schema class in their body.
        leak_path: &[
            "tests/test_registry.py::test_serializer_has_class_registry",
            "tests/test_registry.py::test_invalid_class_name_in_nested_field_raises_error",
            "tests/test_registry.py::test_multiple_classes_with_same_name_raises_error",
            "tests/test_registry.py::test_can_use_full_module_path_to_class",
        ],
    },
    Suite {
        package: "python-rapidjson",
        leaky: "1.23",
        fixed: "1.25",
        leak: "`RawJSON()` keeps the object it allocated when it rejects its argument \
               (python-rapidjson#239, in 1.24, yanked; 1.25 is the next release)",
        tests: "tests",
        config: &["setup.cfg"],
        deps: &["pytz"],
        select: Some((
            "tests/test_rawjson.py",
            "the tests of RawJSON, where the leak is; the whole suite did not fit the time of \
             the session that made this bench",
        )),
        leak_path: &["tests/test_rawjson.py::test_only_bytes_allowed"],
    },
];

/// The scenario file written beside each release's tests (`leakcheck.yaml` is leakcheck's
/// configuration file, not a scenario file).
const SCENARIOS: &str = "suite.yaml";

/// One release's suite, ready to run.
struct Prepared {
    package: &'static str,
    version: &'static str,
    leaky: bool,
    python: PathBuf,
    suite: PathBuf,
    select: String,
}

/// One leakcheck run of one release's suite.
#[derive(Serialize)]
struct Run {
    run: u32,
    wall_secs: f64,
    verdicts: BTreeMap<String, Verdict>,
    errors: BTreeMap<String, String>,
}

/// Everything measured on one release.
#[derive(Serialize)]
struct ReleaseResult {
    package: &'static str,
    version: &'static str,
    leaky: bool,
    select: String,
    pytest_wall_secs: f64,
    pytest_summary: String,
    /// Plain pytest on the whole test folder when `select` is a part of it.
    whole_suite_pytest: Option<(f64, String)>,
    runs: Vec<Run>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| common::flag_value(&args, flag);
    let runs: u32 = value("--runs").map_or(10, |v| v.parse().expect("--runs N"));
    let only = value("--only");
    // The whole test folder of every suite, instead of its `select`ion.
    let whole = args.iter().any(|a| a == "--whole");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = value("--out").map_or(root.join("benches/pytest_suites"), PathBuf::from);
    let work = std::env::var_os("CARGO_TARGET_DIR")
        .map_or(root.join("target"), PathBuf::from)
        .join("pytest-suites");

    let mut results = Vec::new();
    for suite in SUITES {
        if only.as_deref().is_some_and(|o| o != suite.package) {
            continue;
        }
        for (version, leaky) in [(suite.leaky, true), (suite.fixed, false)] {
            let prepared = match prepare(suite, version, leaky, &work, whole) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("pytest_suites: {} {version} not run: {e:#}", suite.package);
                    continue;
                }
            };
            let (pytest_wall_secs, pytest_summary) = plain_pytest(&prepared, &prepared.select);
            let whole_suite_pytest =
                (prepared.select != suite.tests).then(|| plain_pytest(&prepared, suite.tests));
            eprintln!(
                "pytest_suites: {} {version}: plain pytest {pytest_wall_secs:.1} s ({pytest_summary})",
                suite.package
            );
            let count = if leaky { 1 } else { runs };
            let mut release_runs = Vec::new();
            for run in 1..=count {
                let r = run_leakcheck(&prepared, run);
                eprintln!(
                    "pytest_suites: {} {version}: run {run}/{count} {:.1} s, {}",
                    suite.package,
                    r.wall_secs,
                    counts_text(&tally(r.verdicts.values().copied()))
                );
                release_runs.push(r);
            }
            results.push(ReleaseResult {
                package: prepared.package,
                version: prepared.version,
                leaky: prepared.leaky,
                select: prepared.select.clone(),
                pytest_wall_secs,
                pytest_summary,
                whole_suite_pytest,
                runs: release_runs,
            });
        }
    }
    std::fs::create_dir_all(&out).expect("output folder");
    let json = serde_json::to_string_pretty(&results).expect("serializable");
    std::fs::write(out.join("results.json"), json).expect("write results.json");
    let table = render(&results, runs);
    std::fs::write(out.join("results.md"), &table).expect("write results.md");
    println!("{table}");
}

/// The venv, the sdist's tests and the scenario file of one release, made under `work` or
/// reused.
fn prepare(
    suite: &'static Suite,
    version: &'static str,
    leaky: bool,
    work: &Path,
    whole: bool,
) -> anyhow::Result<Prepared> {
    let dir = work.join(format!("{}-{version}", suite.package));
    let mut requirements = vec![format!("{}=={version}", suite.package), PYTEST.to_string()];
    requirements.extend(suite.deps.iter().map(|d| d.to_string()));
    let python = venv(&dir.join("venv"), &requirements)?;
    let suite_dir = dir.join("suite");
    if !suite_dir.join(suite.tests).is_dir() {
        let sdists = dir.join("sdist");
        let mut download = Command::new(&python);
        download
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-binary", ":all:", "--no-deps", "-d"])
            .arg(&sdists)
            .arg(format!("{}=={version}", suite.package));
        succeed(download, "pip download")?;
        let archive = std::fs::read_dir(&sdists)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .context("no .tar.gz sdist downloaded")?;
        let mut untar = Command::new("tar");
        untar.arg("xzf").arg(&archive).arg("-C").arg(&sdists);
        succeed(untar, "tar")?;
        let name = archive.file_name().unwrap_or_default().to_string_lossy();
        let source = sdists.join(name.trim_end_matches(".tar.gz"));
        std::fs::create_dir_all(&suite_dir)?;
        let mut copy = Command::new("cp");
        copy.arg("-r").arg(source.join(suite.tests)).arg(&suite_dir);
        succeed(copy, "cp -r")?;
        for file in suite.config {
            std::fs::copy(source.join(file), suite_dir.join(file))
                .with_context(|| format!("cannot copy {file} from the sdist"))?;
        }
    }
    let select = match suite.select {
        Some((files, _)) if !whole => files,
        _ => suite.tests,
    }
    .to_string();
    std::fs::write(
        suite_dir.join(SCENARIOS),
        format!("scenarios:\n  - pytest: '{select}'\n"),
    )?;
    Ok(Prepared {
        package: suite.package,
        version,
        leaky,
        python,
        suite: suite_dir,
        select,
    })
}

/// The copy of the requirements kept in a venv: it matches when they are the same.
const VENV_STAMP: &str = "pytest-suites-requirements.txt";

/// A venv at `dir` with `requirements` installed from wheels only, reused when its stamp
/// matches; its interpreter's path.
fn venv(dir: &Path, requirements: &[String]) -> anyhow::Result<PathBuf> {
    let wanted = requirements.join("\n");
    let stamp = dir.join(VENV_STAMP);
    let python = dir.join("bin/python");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(python);
    }
    eprintln!(
        "pytest_suites: creating {} with {}",
        dir.display(),
        requirements.join(" ")
    );
    let mut pip_args = vec!["--only-binary".to_string(), ":all:".to_string()];
    pip_args.extend_from_slice(requirements);
    common::fresh_venv(dir, &pip_args)?;
    std::fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(python)
}

/// The suite once under plain pytest in the same venv and folder: wall time and pytest's
/// closing line.
fn plain_pytest(p: &Prepared, select: &str) -> (f64, String) {
    let mut cmd = Command::new(&p.python);
    cmd.current_dir(&p.suite)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"]);
    cmd.args(shell_words(select));
    let start = Instant::now();
    let output = cmd.output().expect("pytest runs");
    let wall = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed")))
        .unwrap_or("no summary line")
        .trim_matches(|c: char| c == '=' || c.is_whitespace())
        .to_string();
    (wall, summary)
}

/// `tests -k "expr"` split as a shell would: the selection as pytest's arguments.
fn shell_words(select: &str) -> Vec<String> {
    match select.split_once(" -k ") {
        Some((paths, expr)) => vec![
            paths.to_string(),
            "-k".to_string(),
            expr.trim_matches('"').to_string(),
        ],
        None => vec![select.to_string()],
    }
}

/// The suite once through the release binary at default settings with `-j 2`.
fn run_leakcheck(p: &Prepared, run: u32) -> Run {
    let reports = tempfile::tempdir().expect("temporary folder");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakcheck"));
    cmd.current_dir(&p.suite)
        .arg("run")
        .arg(SCENARIOS)
        .args(["-j", "2", "--quiet", "--seed", &run.to_string()])
        .arg("--python")
        .arg(&p.python)
        .arg("--report-dir")
        .arg(reports.path());
    let start = Instant::now();
    let output = cmd.output().expect("leakcheck runs");
    let wall_secs = start.elapsed().as_secs_f64();
    assert!(
        output.status.code().is_some_and(|c| c <= 1),
        "leakcheck failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let scenarios = results::read(&reports.path().join("results.json"))
        .expect("results.json")
        .scenarios;
    let errors = scenarios
        .iter()
        .filter_map(|s: &ScenarioResult| Some((s.name.clone(), s.error.clone()?)))
        .collect();
    Run {
        run,
        wall_secs,
        verdicts: scenarios.into_iter().map(|s| (s.name, s.verdict)).collect(),
        errors,
    }
}

/// Verdicts in report order, for counting.
const ORDER: [Verdict; 5] = [
    Verdict::Pass,
    Verdict::Leak,
    Verdict::Inconclusive,
    Verdict::Error,
    Verdict::Skipped,
];

fn tally(verdicts: impl Iterator<Item = Verdict>) -> [usize; 5] {
    let mut counts = [0; 5];
    for v in verdicts {
        let i = ORDER.iter().position(|o| *o == v).expect("known verdict");
        counts[i] += 1;
    }
    counts
}

fn counts_text(counts: &[usize; 5]) -> String {
    ORDER
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(v, n)| format!("{n} {}", v.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each verdict of `test` over the runs, as `leak` or `10 pass`.
fn verdicts_of(test: &str, runs: &[Run]) -> String {
    let counts = tally(runs.iter().filter_map(|r| r.verdicts.get(test).copied()));
    if counts.iter().sum::<usize>() == 0 {
        return "not collected".to_string();
    }
    counts_text(&counts)
}

/// The tables for docs/benchmarks.md.
fn render(results: &[ReleaseResult], runs: u32) -> String {
    let mut text = format!(
        "Verdicts of each release's own suite (`leakcheck run -j 2`, default settings): the \
         leaky release in one run, the fixed release in {runs}, counted over all runs. Wall \
         times: the first leakcheck run, and plain `pytest` once in the same venv.\n\n\
         | package | release | selection | tests | verdicts | leak-path tests | wall leakcheck -j 2 | wall pytest | whole suite, plain pytest |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for r in results {
        let suite = SUITES
            .iter()
            .find(|s| s.package == r.package)
            .expect("known suite");
        let tests = r.runs.first().map_or(0, |run| run.verdicts.len());
        let all = tally(r.runs.iter().flat_map(|run| run.verdicts.values().copied()));
        let path: Vec<String> = matching(suite, r)
            .iter()
            .map(|t| format!("`{t}`: {}", verdicts_of(t, &r.runs)))
            .collect();
        text.push_str(&format!(
            "| {} | {} ({}) | `{}` | {tests} | {} | {} | {:.1} s | {:.1} s ({}) | {} |\n",
            r.package,
            r.version,
            if r.leaky { "leaky" } else { "fixed" },
            r.select,
            counts_text(&all),
            path.join("<br>"),
            r.runs.first().map_or(f64::NAN, |run| run.wall_secs),
            r.pytest_wall_secs,
            r.pytest_summary,
            r.whole_suite_pytest
                .as_ref()
                .map_or("—".to_string(), |(secs, summary)| format!(
                    "{secs:.1} s ({summary})"
                )),
        ));
    }
    text.push('\n');
    for suite in SUITES {
        let selected = results
            .iter()
            .any(|r| r.package == suite.package && r.select != suite.tests);
        if let Some((files, why)) = suite.select.filter(|_| selected) {
            text.push_str(&format!(
                "- {}: `{files}` only: {why}. Leak: {}.\n",
                suite.package, suite.leak
            ));
        }
    }
    text.push_str(
        "\nEvery test that is `leak` in a leaky release, and its verdicts in the fixed one:\n\n",
    );
    for leaky in results.iter().filter(|r| r.leaky) {
        let fixed = results
            .iter()
            .find(|r| r.package == leaky.package && !r.leaky);
        let leaks: Vec<&String> = leaky
            .runs
            .iter()
            .flat_map(|run| run.verdicts.iter())
            .filter(|(_, v)| **v == Verdict::Leak)
            .map(|(t, _)| t)
            .collect();
        text.push_str(&format!(
            "- {} {}: {} tests `leak`\n",
            leaky.package,
            leaky.version,
            leaks.len()
        ));
        for test in leaks {
            let after = fixed.map_or("fixed release not run".to_string(), |f| {
                verdicts_of(test, &f.runs)
            });
            text.push_str(&format!("  - `{test}` → fixed: {after}\n"));
        }
    }
    text.push_str("\nEvery verdict other than `pass` in a fixed release, with its error:\n\n");
    for fixed in results.iter().filter(|r| !r.leaky) {
        for run in &fixed.runs {
            for (test, verdict) in &run.verdicts {
                if *verdict != Verdict::Pass {
                    let error = run
                        .errors
                        .get(test)
                        .map_or(String::new(), |e| format!(": {e}"));
                    text.push_str(&format!(
                        "- {} {} run {}: `{test}` {}{error}\n",
                        fixed.package,
                        fixed.version,
                        run.run,
                        verdict.name()
                    ));
                }
            }
        }
    }
    text
}

/// The collected tests whose node id contains one of the suite's `leak_path` substrings.
fn matching(suite: &Suite, r: &ReleaseResult) -> Vec<String> {
    let Some(first) = r.runs.first() else {
        return Vec::new();
    };
    first
        .verdicts
        .keys()
        .filter(|t| suite.leak_path.iter().any(|p| glob(p, t)))
        .cloned()
        .collect()
}

/// Whether `text` matches `pattern`, where `*` stands for any text.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}
