//! Comparing a run with a baseline: an injected regression (a leak ten times faster, and a rise
//! that stays under tolerance), a fixed leak, a new leak, added and removed scenarios; and
//! `--fail-on-regression` turning significant rises into a failed gate.

mod common;

use common::{Project, scenario, transcript};
use serde_json::Value;

const BEFORE: &str = include_str!("fixtures/reports/baseline/before/s.yaml");
const AFTER: &str = include_str!("fixtures/reports/baseline/after/s.yaml");

fn change<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["baseline"]["scenarios"]
        .as_array()
        .expect("a baseline section")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not compared: {:#}", results["baseline"]))
}

/// A project where `before/` ran and wrote `before/results.json`.
fn project_with_baseline() -> Project {
    let project = Project::new();
    project.write("before/s.yaml", BEFORE);
    project.write("after/s.yaml", AFTER);
    let output = project.leakcheck(&["run", "before", "--report-dir", "before", "-q"]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    project
}

#[test]
fn a_baseline_run_flags_regressions_fixes_and_membership_changes() {
    let project = project_with_baseline();
    let (output, results) = project.run(&["after", "--baseline", "before/results.json"]);
    let log = transcript(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "under tolerance, as expected: {log}"
    );

    for (name, expected) in [
        ("starts-leaking", "new_leak"),
        ("grows-faster", "regression"),
        ("rises-under-tolerance", "regression"),
        ("gets-fixed", "fixed_leak"),
        ("brand-new", "added"),
        ("goes-away", "removed"),
    ] {
        assert_eq!(change(&results, name)["change"], expected, "{name}: {log}");
    }
    let faster = change(&results, "grows-faster");
    let blocks = faster["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "alloc_blocks")
        .unwrap();
    assert_eq!(blocks["shift"], "rose");
    let (old, new) = (
        blocks["old"]["slope"].as_f64().unwrap(),
        blocks["new"]["slope"].as_f64().unwrap(),
    );
    assert!(
        new > 5.0 * old,
        "ten ints per iteration instead of one: {old} → {new}"
    );
    let summary = &results["baseline"]["summary"];
    assert_eq!(summary["regressions"], 2);
    assert_eq!(summary["fixed_leaks"], 1);
    assert_eq!(results["baseline"]["fail_on_regression"], false);
    assert_eq!(scenario(&results, "rises-under-tolerance")["ok"], true);

    // The comparison comes first on the terminal, before the summary table.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let compared = stdout.find("compared with baseline").expect(&log);
    let table = stdout.find("scenario ").expect(&log);
    assert!(compared < table, "{log}");
    assert!(stdout.contains("SIGNIFICANT RISE  grows-faster"), "{log}");
    assert!(stdout.contains("FIXED LEAK"), "{log}");

    // And in the HTML, old and new figures side by side.
    let html = std::fs::read_to_string(project.path().join("reports/index.html")).unwrap();
    assert!(html.contains("Compared with the baseline"));
    assert!(html.contains("significant rise") && html.contains("fixed leak"));
    assert!(html.contains("goes-away"), "removed scenarios are listed");
}

#[test]
fn fail_on_regression_fails_the_gate_for_significant_rises_only() {
    let project = project_with_baseline();
    let (output, results) = project.run(&[
        "after",
        "--baseline",
        "before/results.json",
        "--fail-on-regression",
    ]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert_eq!(results["baseline"]["fail_on_regression"], true);
    for name in ["grows-faster", "rises-under-tolerance"] {
        assert_eq!(scenario(&results, name)["ok"], false, "{name}: {log}");
    }
    for name in ["gets-fixed", "starts-leaking", "brand-new"] {
        assert_eq!(scenario(&results, name)["ok"], true, "{name}: {log}");
    }
    assert_eq!(results["summary"]["failed"], 2);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .contains("fails the gate: significant rise over the baseline (--fail-on-regression)"),
        "{log}"
    );

    let xml = std::fs::read_to_string(project.path().join("reports/junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failures: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| n.attribute("type").unwrap_or(""))
        .collect();
    assert_eq!(failures.len(), 2, "{xml}");
    assert!(
        failures.iter().all(|t| t.contains("significant rise")),
        "{failures:?}"
    );

    // Re-rendering with `report --baseline` gives the same comparison without running.
    let output = project.leakcheck(&[
        "report",
        "after/../reports/results.json",
        "--baseline",
        "before/results.json",
        "--html",
        "compare.html",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    let html = std::fs::read_to_string(project.path().join("compare.html")).unwrap();
    assert!(html.contains("significant rise"), "comparison rendered");
}

#[test]
fn scenarios_left_out_by_k_are_not_called_removed() {
    let project = project_with_baseline();
    // The same suite as the baseline, run for one scenario only.
    let (output, results) = project.run(&[
        "before",
        "-k",
        "starts-leaking",
        "--baseline",
        "before/results.json",
    ]);
    let log = transcript(&output);
    let summary = &results["baseline"]["summary"];
    assert_eq!(summary["removed"], 0, "{log}");
    assert_eq!(summary["not_selected"], 4, "{log}");
    assert_eq!(change(&results, "starts-leaking")["change"], "unchanged");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("4 not selected (not compared)"), "{log}");
    assert!(!stdout.contains("REMOVED"), "{log}");
}
