//! Project configuration (leakcheck.yaml / pyproject.toml) with precedence file < environment <
//! flag, `leakcheck init` output that runs green, and the completion / man generators.

mod common;

use common::{Project, transcript};

const SUITE: &str = "scenarios:\n  - name: tiny\n    run: x = [i]\n";

fn report_dirs(project: &Project) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(project.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("results.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn configuration_file_sits_between_defaults_and_environment_and_flags() {
    let project = Project::new();
    project.write("checks/suite.yaml", SUITE);
    project.write(
        "leakcheck.yaml",
        "paths: [checks]\nreport_dir: from-file\nconfidence: 0.95\ndefaults:\n  iterations: 12\n  warmup: 2\n",
    );
    std::fs::create_dir(project.path().join("sub")).unwrap();

    // File: found upward from a subfolder; its paths, report_dir and scenario defaults apply.
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let out = cmd
        .current_dir(project.path().join("sub"))
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let results = project.results("from-file");
    assert_eq!(results["confidence"], 0.95);
    assert_eq!(results["scenarios"][0]["iterations"], 12);

    // Environment over file.
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let out = cmd
        .current_dir(project.path())
        .env("LEAKCHECK_REPORT_DIR", "from-env")
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));

    // Flag over environment.
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let out = cmd
        .current_dir(project.path())
        .env("LEAKCHECK_REPORT_DIR", "from-env-2")
        .args(["run", "--report-dir", "from-flag", "--confidence", "0.9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        report_dirs(&project),
        ["from-env", "from-file", "from-flag"]
    );
    let results = project.results("from-flag");
    assert_eq!(results["confidence"], 0.9);

    // --no-config: built-in defaults (paths fall back to scenarios/, which does not exist here).
    let out = project.leakcheck(&["list", "--no-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
}

#[test]
fn pyproject_tool_table_configures_and_bad_keys_are_reported() {
    let project = Project::new();
    project.write("checks/suite.yaml", SUITE);
    project.write(
        "pyproject.toml",
        "[project]\nname = \"demo\"\n\n[tool.leakcheck]\npaths = [\"checks\"]\n\n[tool.leakcheck.defaults]\niterations = 9\n",
    );
    let out = project.leakcheck(&["list", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"tiny\""));

    project.write("leakcheck.yaml", "jbos: 2\n");
    let out = project.leakcheck(&["list"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("leakcheck.yaml") && stderr.contains("jbos"),
        "{stderr}"
    );
}

#[test]
fn init_writes_a_project_that_runs_green_and_never_overwrites() {
    let project = Project::new();
    let out = project.leakcheck(&["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(project.path().join("leakcheck.yaml").exists());
    assert!(project.path().join("scenarios/example.yaml").exists());

    let out = project.leakcheck(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let results = project.results("reports");
    assert_eq!(results["summary"]["total"], 2);
    assert_eq!(
        results["summary"]["leak"], 1,
        "the example's known leak is found"
    );

    let out = project.leakcheck(&["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn completions_and_man_page_are_generated() {
    let project = Project::new();
    let out = project.leakcheck(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("leakcheck") && script.contains("--partition"));
    let out = project.leakcheck(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with(".ie"));
    // The main page names the subcommands' pages; each exists.
    assert!(page.contains("leakcheck\\-run(1)"), "{page}");
    let out = project.leakcheck(&["man", "run"]);
    assert_eq!(out.status.code(), Some(0));
    let run = String::from_utf8_lossy(&out.stdout);
    assert!(run.contains(".TH leakcheck-run 1"), "{run}");
    assert!(run.contains("\\-\\-jobs"), "{run}");
    let out = project.leakcheck(&["man", "runn"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("one of run, list"));
    let out = project.leakcheck(&["man", "--out-dir", "man"]);
    assert_eq!(out.status.code(), Some(0));
    for page in [
        "leakcheck.1",
        "leakcheck-run.1",
        "leakcheck-merge.1",
        "leakcheck-man.1",
    ] {
        assert!(project.path().join("man").join(page).is_file(), "{page}");
    }
}
