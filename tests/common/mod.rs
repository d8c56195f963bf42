//! Shared helpers for integration tests: run the real `leakcheck` binary on real scenario files
//! in a temporary folder and read back what it wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A temporary project folder with scenario files and a report folder.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the project folder, creating parents.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `leakcheck <args>` with the project as working directory.
    pub fn leakcheck(&self, args: &[&str]) -> Output {
        let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").expect("binary built");
        cmd.current_dir(self.dir.path())
            .env_remove("VIRTUAL_ENV")
            .args(args);
        cmd.output().expect("leakcheck runs")
    }

    /// `leakcheck run <args> --report-dir reports`, returning the output and results.json.
    pub fn run(&self, args: &[&str]) -> (Output, Value) {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--report-dir", "reports"]);
        let output = self.leakcheck(&all);
        let text = std::fs::read_to_string(self.dir.path().join("reports/results.json"))
            .unwrap_or_else(|err| {
                panic!(
                    "results.json missing ({err}); stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        (
            output,
            serde_json::from_str(&text).expect("results.json is JSON"),
        )
    }

    /// A venv `folder` (in the project) with `pip install <requirements>` (package pins, or
    /// `-r` and a file) from PyPI, or `None` (with a loud skip, a failure under CI, see
    /// [`required`]) when pip cannot reach the index.
    pub fn venv_with(&self, folder: &str, requirements: &[&str]) -> Option<PathBuf> {
        let venv = self.dir.path().join(folder);
        let made = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        let installed = made
            && (requirements.is_empty()
                || std::process::Command::new(venv.join("bin/python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .args(requirements)
                    .status()
                    .is_ok_and(|s| s.success()));
        required(
            &format!("a venv with {}", requirements.join(" ")),
            installed,
            "pip must reach PyPI",
        )
        .then_some(venv)
    }

    /// The results.json a run wrote into the report folder `folder` (relative to the project).
    pub fn results(&self, folder: &str) -> Value {
        let path = self.dir.path().join(folder).join("results.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{} missing: {err}", path.display()));
        serde_json::from_str(&text).expect("results.json is JSON")
    }
}

/// The result entry of the scenario named `name`.
pub fn scenario<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["scenarios"]
        .as_array()
        .expect("scenarios array")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {results:#}"))
}

/// stdout and stderr of a run, for assertion messages.
pub fn transcript(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `(name, verdict)` of every scenario, in report order.
pub fn names_and_verdicts(results: &Value) -> Vec<(String, String)> {
    results["scenarios"]
        .as_array()
        .expect("scenarios array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Whether a test that needs `what` (a browser, a second interpreter) can run here. A missing
/// requirement fails the test under CI (`CI` set, as `.ci/run` and hosted runners set it), so
/// CI never passes without the check; elsewhere, so that `cargo test` passes on a fresh machine,
/// it skips the test with a loud note on stderr (shown with `--nocapture` or on failure of a
/// neighbour) rather than passing quietly.
pub fn required(what: &str, found: bool, how_to_get_it: &str) -> bool {
    if found {
        return true;
    }
    let message = format!("{what} not found: {how_to_get_it}");
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{message} (CI is set, so this test must run)");
    }
    eprintln!("SKIPPED (not passed): {message}; set CI=1 to make this a failure");
    false
}

/// The 1-based line of `text` where `needle` first appears (panics when it does not).
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the text"))
        + 1
}
