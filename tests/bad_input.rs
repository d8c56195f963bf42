//! Invalid scenario files: a clear message naming file, line and key, exit code 2, nothing run.

mod common;

use common::{Project, transcript};

/// Runs leakcheck from the crate root on a fixture, so paths in messages are stable.
fn run_fixture(path: &str) -> (i32, String) {
    let out = assert_cmd::Command::cargo_bin("leakcheck")
        .unwrap()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", path, "--report-dir"])
        .arg(std::env::temp_dir().join("leakcheck-bad-input-never-written"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_bad_fixture_gives_its_located_error_and_exit_2() {
    let cases = [
        (
            "tests/fixtures/bad/typo_key.yaml",
            "tests/fixtures/bad/typo_key.yaml:5:1: unknown key `iteratons` in scenario `typo-key` (did you mean `iterations`?)",
        ),
        (
            "tests/fixtures/bad/syntax_error.yaml",
            "tests/fixtures/bad/syntax_error.yaml:5:11: invalid YAML",
        ),
        (
            "tests/fixtures/bad/missing_run.yaml",
            "tests/fixtures/bad/missing_run.yaml:5:5: scenario `missing-run` has no `run`, `call` or `pytest`",
        ),
        (
            "tests/fixtures/bad/wrong_type.yaml",
            "tests/fixtures/bad/wrong_type.yaml:4:13: key `iterations` in scenario `wrong-type`: expected a non-negative integer, found string \"many\"",
        ),
        (
            "tests/fixtures/bad/duplicate_names",
            "tests/fixtures/bad/duplicate_names/b.yaml:4:11: duplicate scenario name `same-name` (first defined at tests/fixtures/bad/duplicate_names/a.yaml:1)",
        ),
        (
            "tests/fixtures/bad/empty.yaml",
            "tests/fixtures/bad/empty.yaml: file is empty",
        ),
    ];
    for (path, expected) in cases {
        let (code, stderr) = run_fixture(path);
        assert_eq!(code, 2, "{path}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{path}: expected\n{expected}\nin\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    }
}

#[test]
fn one_bad_file_stops_the_run_before_anything_runs_and_all_problems_are_listed() {
    let project = Project::new();
    project.write("scenarios/good.yaml", "name: good\nrun: pass\n");
    project.write("scenarios/bad1.yaml", "name: bad1\nrun: pass\nwarmpu: 3\n");
    project.write(
        "scenarios/bad2.yaml",
        "name: bad2\nrun: pass\nexpect: maybe\n",
    );
    let out = project.leakcheck(&["run", "scenarios"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(
        stderr.contains("scenarios/bad1.yaml:3:1: unknown key `warmpu`"),
        "{stderr}"
    );
    assert!(stderr.contains("(did you mean `warmup`?)"), "{stderr}");
    assert!(stderr.contains("scenarios/bad2.yaml:3:9"), "{stderr}");
    assert!(stderr.contains("nothing was run"), "{stderr}");
    assert!(!project.path().join("reports").exists());
}

#[test]
fn missing_paths_and_empty_folders_are_invalid_input() {
    let project = Project::new();
    std::fs::create_dir(project.path().join("empty")).unwrap();
    let out = project.leakcheck(&["run", "empty"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario files"));
    let out = project.leakcheck(&["run", "does-not-exist"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist"));
    let out = project.leakcheck(&["run", "--confidence", "2"]);
    assert_eq!(out.status.code(), Some(2));
}
