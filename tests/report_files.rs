//! The report files of a run with every kind of outcome: HTML escaping, JUnit structure and
//! counts, GitHub annotations and step summary, and `leakcheck report` re-rendering.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::sync::OnceLock;

use common::{Project, scenario, transcript};
use serde_json::Value;

const MIXED: &str = include_str!("fixtures/reports/mixed.yaml");
const CLEAN: &str = include_str!("fixtures/reports/clean.yaml");
const HOSTILE: &str = "<script>alert(1)</script>";

/// A project with the two fixture files, run once with GitHub Actions variables set.
struct MixedRun {
    project: Project,
    output: Output,
    results: Value,
}

fn mixed() -> &'static MixedRun {
    static RUN: OnceLock<MixedRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let project = Project::new();
        project.write("scenarios/mixed.yaml", MIXED);
        project.write("scenarios/clean.yaml", CLEAN);
        let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
        cmd.current_dir(project.path())
            .env_remove("VIRTUAL_ENV")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", project.path())
            .env("GITHUB_STEP_SUMMARY", project.path().join("summary.md"))
            .args(["run", "scenarios", "--report-dir", "reports"]);
        let output = cmd.output().unwrap();
        let text = std::fs::read_to_string(project.path().join("reports/results.json"))
            .unwrap_or_else(|e| panic!("{e}: {}", transcript(&output)));
        let results = serde_json::from_str(&text).unwrap();
        MixedRun {
            project,
            output,
            results,
        }
    })
}

fn read(run: &MixedRun, file: &str) -> String {
    std::fs::read_to_string(run.project.path().join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}\n{}", transcript(&run.output)))
}

#[test]
fn the_run_writes_all_three_reports_and_fails_the_gate() {
    let run = mixed();
    assert_eq!(
        run.output.status.code(),
        Some(1),
        "{}",
        transcript(&run.output)
    );
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    for file in ["index.html", "results.json", "junit.xml"] {
        assert!(
            stdout.contains(&format!("wrote reports/{file}")),
            "{stdout}"
        );
        let path = run.project.path().join("reports").join(file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{file} is readable by others");
    }
    assert_eq!(scenario(&run.results, "unexpected-leak")["verdict"], "leak");
    assert_eq!(scenario(&run.results, HOSTILE)["verdict"], "error");
}

#[test]
fn hostile_text_is_escaped_in_the_html() {
    let run = mixed();
    let html = read(run, "reports/index.html");
    for raw in [
        HOSTILE,
        "<script>alert(3)</script>",
        "<img src=x onerror=alert(2)>",
        "<b>description</b>",
        "<i>tag</i>",
    ] {
        assert!(!html.contains(raw), "unescaped {raw} in the report");
    }
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(
        html.contains("onerror=alert(2)"),
        "captured stdout is shown"
    );
    assert!(html.contains("ValueError"), "the traceback is shown");
    assert!(!html.contains("<script"), "no scripts at all");
}

#[test]
fn junit_has_a_suite_per_file_a_case_per_scenario_and_counts_that_match() {
    let run = mixed();
    let xml = read(run, "reports/junit.xml");
    let doc = roxmltree::Document::parse(&xml).expect("junit.xml is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");

    let scenarios = run.results["scenarios"].as_array().unwrap();
    let summary = &run.results["summary"];
    let errors = summary["error"].as_u64().unwrap();
    let failed = summary["failed"].as_u64().unwrap();
    let attr = |node: roxmltree::Node, name: &str| -> u64 {
        node.attribute(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap()
    };
    assert_eq!(attr(root, "tests"), scenarios.len() as u64);
    assert_eq!(attr(root, "errors"), errors);
    assert_eq!(attr(root, "failures"), failed - errors);

    let mut per_file: BTreeMap<String, usize> = BTreeMap::new();
    for s in scenarios {
        *per_file
            .entry(s["file"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let suites: Vec<roxmltree::Node> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), per_file.len(), "one suite per scenario file");
    for suite in &suites {
        let name = suite.attribute("name").unwrap();
        let cases = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .count();
        assert_eq!(Some(&cases), per_file.get(name), "{name}");
        assert_eq!(attr(*suite, "tests"), cases as u64);
    }

    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no testcase {name}"))
    };
    let child_text = |node: roxmltree::Node, tag: &str| -> Option<String> {
        node.children()
            .find(|n| n.has_tag_name(tag))
            .map(|n| n.text().unwrap_or("").to_string())
    };

    // An unexpected leak is a failure whose message carries the growth figure and, when
    // diagnosed, the top allocation site.
    let leak = case("unexpected-leak");
    let failure = leak
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("<failure>");
    let message = failure.attribute("message").unwrap();
    let leak_result = scenario(&run.results, "unexpected-leak");
    assert!(
        message.contains(leak_result["reason"].as_str().unwrap()),
        "{message}"
    );
    assert!(message.contains("B/iter"), "{message}");
    if let Some(site) = leak_result["diagnosis"]["sites"].get(0) {
        let location = format!("{}:{}", site["file"].as_str().unwrap(), site["line"]);
        assert!(message.contains(&location), "{message} lacks {location}");
    }
    let out = child_text(leak, "system-out").expect("<system-out>");
    assert!(out.contains("tracemalloc: "), "{out}");
    assert!(out.contains("reports/index.html#s"), "{out}");

    // An error carries the traceback.
    let error = case(HOSTILE)
        .children()
        .find(|n| n.has_tag_name("error"))
        .expect("<error>");
    assert!(error.text().unwrap_or("").contains("Traceback"));
    assert!(error.text().unwrap_or("").contains("ValueError"));

    // As-expected outcomes, the known leak included, pass.
    for name in ["known-leak", "clean", "second-file-clean"] {
        let c = case(name);
        assert!(
            !c.children()
                .any(|n| n.has_tag_name("failure") || n.has_tag_name("error")),
            "{name} should pass"
        );
    }
}

#[test]
fn github_actions_get_annotations_and_a_step_summary() {
    let run = mixed();
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    let annotation_for = |name: &str| {
        let s = scenario(&run.results, name);
        format!("::error file=scenarios/mixed.yaml,line={},", s["line"])
    };
    for name in ["unexpected-leak", HOSTILE] {
        let prefix = annotation_for(name);
        assert!(
            stdout.lines().any(|l| l.starts_with(&prefix)),
            "no {prefix} in\n{stdout}"
        );
    }
    let known = annotation_for("known-leak");
    assert!(
        !stdout.lines().any(|l| l.starts_with(&known)),
        "expected leaks are not annotated"
    );
    assert!(
        stdout
            .lines()
            .all(|l| !l.starts_with("::") || !l.contains('\n')),
        "one line per annotation"
    );

    let summary = read(run, "summary.md");
    assert!(
        summary.starts_with("## leakcheck: ❌ 2 of 5 scenarios not as expected"),
        "{summary}"
    );
    assert!(
        summary.contains("| unexpected-leak | leak | ❌ unexpected leak |"),
        "{summary}"
    );
    assert!(
        summary.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{summary}"
    );
    assert!(!summary.contains(HOSTILE));
}

#[test]
fn report_rerenders_saved_results_without_running_anything() {
    let run = mixed();
    let original_html = read(run, "reports/index.html");
    let original_json = read(run, "reports/results.json");

    // Into a fresh folder: every format, byte for byte what the run wrote.
    let output =
        run.project
            .leakcheck(&["report", "reports/results.json", "--report-dir", "again"]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("[1/"), "nothing ran: {stdout}");
    assert_eq!(read(run, "again/results.json"), original_json);
    assert_eq!(
        read(run, "again/index.html"),
        original_html,
        "rendering is deterministic"
    );
    assert!(read(run, "again/junit.xml").contains("<testsuites"));

    // Only an HTML file.
    let output =
        run.project
            .leakcheck(&["report", "reports/results.json", "--html", "one/page.html"]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    assert_eq!(read(run, "one/page.html"), original_html);
    assert_eq!(
        std::fs::read_dir(run.project.path().join("one"))
            .unwrap()
            .count(),
        1
    );

    // Next to the results: the input file is never replaced.
    let output = run.project.leakcheck(&["report", "reports/results.json"]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("wrote reports/index.html"), "{stdout}");
    assert!(!stdout.contains("wrote reports/results.json"), "{stdout}");
    assert_eq!(read(run, "reports/results.json"), original_json);
}

#[test]
fn report_never_writes_over_its_inputs() {
    // `report R.json --html R.json` replaced the results with HTML.
    let run = mixed();
    let original = read(run, "reports/results.json");
    std::fs::create_dir_all(run.project.path().join("guard")).unwrap();
    std::fs::write(run.project.path().join("guard/results.json"), &original).unwrap();
    std::fs::write(run.project.path().join("guard/old.json"), &original).unwrap();
    std::fs::hard_link(
        run.project.path().join("guard/old.json"),
        run.project.path().join("guard/linked.json"),
    )
    .unwrap();
    let cases: [&[&str]; 4] = [
        &[
            "report",
            "guard/results.json",
            "--html",
            "guard/results.json",
        ],
        &[
            "report",
            "guard/results.json",
            "--html",
            "guard/../guard/results.json",
        ],
        &[
            "report",
            "guard/results.json",
            "--baseline",
            "guard/old.json",
            "--html",
            "guard/linked.json",
        ],
        // The report folder's results.json is the baseline.
        &[
            "report",
            "guard/old.json",
            "--baseline",
            "guard/results.json",
        ],
    ];
    for args in cases {
        let output = run.project.leakcheck(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            transcript(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("is an input of this command"), "{stderr}");
        for file in ["results.json", "old.json"] {
            assert_eq!(read(run, &format!("guard/{file}")), original, "{args:?}");
        }
    }
    assert!(
        !run.project.path().join("guard/index.html").exists(),
        "nothing written"
    );
}

#[test]
fn report_refuses_missing_invalid_and_foreign_files_with_exit_2() {
    let project = Project::new();
    project.write("garbage.json", "{ not json");
    project.write("other.json", r#"{"hello": "world"}"#);
    project.write("future.json", r#"{"schema_version": 99, "scenarios": []}"#);
    for (file, expected) in [
        ("missing.json", "cannot read `missing.json`"),
        (
            "garbage.json",
            "`garbage.json` is not a leakcheck results file",
        ),
        ("other.json", "`other.json` is not a leakcheck results file"),
        (
            "future.json",
            "`future.json` has schema_version 99; this leakcheck reads version 1",
        ),
    ] {
        let output = project.leakcheck(&["report", file]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{file}: {}",
            transcript(&output)
        );
        assert!(stderr.contains(expected), "{file}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // A bad baseline is refused before any scenario runs.
    project.write("scenarios/one.yaml", "name: one\nrun: x = 1\n");
    let output = project.leakcheck(&["run", "scenarios", "--baseline", "garbage.json"]);
    assert_eq!(output.status.code(), Some(2), "{}", transcript(&output));
    assert!(!project.path().join("reports").exists(), "nothing ran");

    // --fail-on-regression needs a baseline.
    let output = project.leakcheck(&["run", "scenarios", "--fail-on-regression"]);
    assert_eq!(output.status.code(), Some(2), "{}", transcript(&output));
}

#[test]
fn results_written_before_newer_optional_fields_still_load() {
    // A schema-1 file from an earlier leakcheck: no baseline section, no diagnosis timing.
    let run = mixed();
    let mut old: Value = serde_json::from_str(&read(run, "reports/results.json")).unwrap();
    for s in old["scenarios"].as_array_mut().unwrap() {
        if let Some(timings) = s["timings"].as_object_mut() {
            timings.remove("diagnosis");
        }
        s.as_object_mut().unwrap().remove("diagnosis");
    }
    old.as_object_mut().unwrap().remove("baseline");
    run.project
        .write("old/results.json", &serde_json::to_string(&old).unwrap());
    let output = run.project.leakcheck(&[
        "report",
        "reports/results.json",
        "--baseline",
        "old/results.json",
        "--html",
        "old/compare.html",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
}

#[test]
fn an_unwritable_step_summary_still_gets_the_report_files_written() {
    let project = Project::new();
    project.write("scenarios/clean.yaml", CLEAN);
    let output = assert_cmd::Command::cargo_bin("leakcheck")
        .unwrap()
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .env(
            "GITHUB_STEP_SUMMARY",
            project.path().join("missing/summary.md"),
        )
        .args(["run", "scenarios", "--report-dir", "reports"])
        .output()
        .unwrap();
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("(GITHUB_STEP_SUMMARY)"),
        "{log}"
    );
    for file in ["index.html", "results.json", "junit.xml"] {
        assert!(
            String::from_utf8_lossy(&output.stdout).contains(&format!("wrote reports/{file}")),
            "{log}"
        );
        assert!(project.path().join("reports").join(file).exists(), "{log}");
    }
}
