//! `pytest:` workloads, end to end: a real pytest from PyPI in a venv the test makes (three
//! majors), a real test suite, the real binary and its workers.

mod common;

use std::path::Path;

use common::{Project, scenario, transcript};
use serde_json::Value;

/// The pytest releases the tests run against: the newest of each of the three majors the
/// harness supports (pytest 7 registers a finalizer per request of a wider-scoped fixture,
/// which the harness must drop, or every test using one would grow).
const PYTESTS: [&str; 3] = ["pytest==7.4.4", "pytest==8.4.2", "pytest==9.2.0"];

/// A small suite with one test of each outcome, fixtures of three scopes that count their own
/// setups and teardowns in files, and a module that does not import.
fn write_suite(project: &Project) {
    project.write(
        "pytest.ini",
        "[pytest]\ntestpaths = tests\naddopts = -v --tb=short -ra\nmarkers =\n    leaky: known leak\n",
    );
    project.write(
        "tests/conftest.py",
        r#"
import os
import pytest

def log(name, what):
    with open(os.path.join(os.environ["FIXTURE_LOG"], name), "a") as file:
        file.write(what + "\n")

@pytest.fixture(scope="session")
def session_resource():
    log("session", "setup")
    yield "s"
    log("session", "teardown")

@pytest.fixture
def per_test(request):
    log(request.node.name, "setup")
    yield []
    log(request.node.name, "teardown")
"#,
    );
    project.write(
        "tests/test_app.py",
        r#"
import pytest

_kept = []

@pytest.mark.leaky
def test_leaky(session_resource):
    _kept.append(bytearray(2000))

def test_clean(session_resource, per_test):
    per_test.append(bytearray(2000))
    print("some output")

@pytest.mark.parametrize("n", [1, 2])
def test_param(n, tmp_path):
    (tmp_path / "f").write_text("x" * n)

def test_fails():
    value = 1
    assert value == 2, "value is wrong"

@pytest.mark.skip(reason="needs network")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert False
"#,
    );
    project.write(
        "tests/test_life.py",
        r#"
def test_each_iteration(session_resource, per_test):
    pass

def test_once(session_resource, per_test):
    pass
"#,
    );
    project.write("tests/test_broken.py", "def test_x(:\n    pass\n");
}

/// Lines of a fixture log, or none when it was never written.
fn log_lines(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn verdict(results: &Value, name: &str) -> String {
    scenario(results, name)["verdict"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_suites_tests_become_scenarios_with_pytests_outcomes_on_three_pytest_majors() {
    for pytest in PYTESTS {
        let project = Project::new();
        let Some(venv) = project.venv_with("venv", &[pytest]) else {
            return;
        };
        write_suite(&project);
        project.write(
            "leaks.yaml",
            r#"
defaults:
  iterations: 60
  max_iterations: 240
scenarios:
  - pytest: tests/test_app.py -m "not leaky"
  - pytest: tests/test_app.py -m leaky
    expect: leak
  - name: per-iteration
    pytest: tests/test_life.py::test_each_iteration
  - name: once
    pytest: tests/test_life.py::test_once
    fixtures: scenario
  - pytest: tests/test_broken.py
"#,
        );
        let logs = project.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
        let output = cmd
            .current_dir(project.path())
            .env_remove("VIRTUAL_ENV")
            .env("FIXTURE_LOG", &logs)
            .args([
                "run",
                "leaks.yaml",
                "--no-diagnose",
                "--report-dir",
                "reports",
            ])
            .arg("--python")
            .arg(&venv)
            .output()
            .unwrap();
        let results = project.results("reports");
        let context = format!("{pytest}\n{}", transcript(&output));
        // An error (the failing test, the broken module) fails the gate; nothing else does.
        assert_eq!(output.status.code(), Some(1), "{context}");

        assert_eq!(
            verdict(&results, "tests/test_app.py::test_clean"),
            "pass",
            "{context}"
        );
        for id in [
            "tests/test_app.py::test_param[1]",
            "tests/test_app.py::test_param[2]",
        ] {
            assert_eq!(verdict(&results, id), "pass", "{id}: {context}");
        }
        let leaky = scenario(&results, "tests/test_app.py::test_leaky");
        assert_eq!(leaky["verdict"], "leak", "{context}");
        assert_eq!(leaky["ok"], true, "{context}");

        let fails = scenario(&results, "tests/test_app.py::test_fails");
        assert_eq!(fails["verdict"], "error", "{context}");
        let error = fails["error"].as_str().unwrap();
        assert!(error.contains("value is wrong"), "{error}");
        let report = fails["traceback"].as_str().unwrap();
        assert!(
            report.contains("assert value == 2"),
            "pytest's own report: {report}"
        );

        let skipped = scenario(&results, "tests/test_app.py::test_skipped");
        assert_eq!(skipped["verdict"], "skipped", "{context}");
        assert_eq!(skipped["ok"], true);
        assert!(
            skipped["reason"]
                .as_str()
                .unwrap()
                .contains("needs network")
        );
        let xfail = scenario(&results, "tests/test_app.py::test_xfail");
        assert_eq!(xfail["verdict"], "skipped", "{context}");
        assert!(
            xfail["reason"]
                .as_str()
                .unwrap()
                .contains("xfail: known bug")
        );
        assert_eq!(results["summary"]["skipped"], 2);

        // The broken module is one scenario's error; every other scenario still ran.
        let broken = scenario(&results, "tests/test_broken.py");
        assert_eq!(broken["verdict"], "error", "{context}");
        assert!(
            broken["traceback"]
                .as_str()
                .unwrap()
                .contains("SyntaxError"),
            "{broken:#}"
        );

        // Function-scoped fixtures around every iteration, wider scopes once per scenario;
        // `fixtures: scenario` sets the test's own up once.
        let each = scenario(&results, "per-iteration");
        let done = each["iterations_done"].as_u64().unwrap();
        let lines = log_lines(&logs, "test_each_iteration");
        assert_eq!(lines.len() as u64, 2 * done, "{done} iterations: {lines:?}");
        assert_eq!(
            lines.iter().filter(|l| *l == "teardown").count() as u64,
            done
        );
        assert_eq!(log_lines(&logs, "test_once"), ["setup", "teardown"]);
        // Each scenario is its own worker, hence its own session: one setup and one teardown
        // per scenario that uses the session fixture.
        let session = log_lines(&logs, "session");
        let users = 4;
        assert_eq!(session.len(), 2 * users, "{session:?}");

        // JUnit: a pytest test's class is its file; a skip is a <skipped>.
        let junit = std::fs::read_to_string(project.path().join("reports/junit.xml")).unwrap();
        assert!(
            junit.contains(r#"name="tests/test_app.py::test_clean" classname="tests/test_app.py""#),
            "{junit}"
        );
        assert!(junit.contains("<skipped"), "{junit}");

        // `list` shows the collected tests by name, and `-k` selects among them.
        let listed = project.leakcheck(&[
            "list",
            "leaks.yaml",
            "-k",
            "param",
            "--python",
            venv.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&listed.stdout);
        assert_eq!(
            text.lines()
                .map(|l| l.split_whitespace().next().unwrap())
                .collect::<Vec<_>>(),
            [
                "tests/test_app.py::test_param[1]",
                "tests/test_app.py::test_param[2]"
            ],
            "{}",
            transcript(&listed)
        );
    }
}

#[test]
fn without_pytest_in_the_interpreter_the_tests_are_skipped_saying_what_to_install() {
    let project = Project::new();
    let Some(bare) = project.venv_with("bare", &[]) else {
        return;
    };
    write_suite(&project);
    project.write(
        "leaks.yaml",
        "scenarios:\n  - pytest: tests/test_life.py\n  - name: plain\n    run: x = 1\n",
    );
    let (output, results) = project.run(&["leaks.yaml", "--python", bare.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    let skipped = scenario(&results, "tests/test_life.py");
    assert_eq!(skipped["verdict"], "skipped");
    let reason = skipped["reason"].as_str().unwrap();
    assert!(reason.contains("pytest is not installed in"), "{reason}");
    assert!(reason.contains("-m pip install pytest"), "{reason}");
    assert_eq!(verdict(&results, "plain"), "pass");
}

#[test]
fn a_bad_pytest_key_is_an_error_naming_file_line_and_key() {
    let project = Project::new();
    project.write("tests/test_a.py", "def test_a():\n    pass\n");
    project.write(
        "bad.yaml",
        r#"scenarios:
  - pytest: tests/test_missing.py::test_a
  - name: opts
    pytest: tests/test_a.py -x
  - name: fixtures-typo
    pytest: tests/test_a.py
    fixtures: sometimes
  - name: fixtures-without-pytest
    run: x = 1
    fixtures: scenario
  - name: both
    run: x = 1
    pytest: tests/test_a.py
"#,
    );
    let output = project.leakcheck(&["run", "bad.yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", transcript(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "bad.yaml:2:",
        "`tests/test_missing.py` does not exist",
        "bad.yaml:4:",
        "`-x` is not allowed",
        "bad.yaml:7:",
        "`sometimes` is neither `iteration`",
        "bad.yaml:10:",
        "only a `pytest` workload has fixtures",
        "bad.yaml:13:",
        "sets both `run` and `pytest`: keep one",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}
