//! `junit.xml`: the run as JUnit XML for CI systems (GitLab, Jenkins, GitHub test reporters).
//!
//! One `<testsuite>` per scenario file and one `<testcase>` per scenario. A scenario that fails
//! the gate is a `<failure>` whose message carries the reason with its growth figure and the top
//! allocation site; an `error` verdict is an `<error>` carrying the traceback. Every testcase's
//! `<system-out>` lists the growth figures and where the HTML report shows it. A `skipped`
//! verdict is a `<skipped>`; a `pytest` workload's class name is its test file. Serialized by
//! quick-junit (escaping, schema), never by hand; quick-junit drops C0 controls but lets
//! U+FFFE/U+FFFF through, which XML forbids, so all text passes [`xml`] first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::untrusted;
use super::view::{self, RunView, ScenarioView};
use super::{Exporter, Outputs, Target};
use crate::verdict::Verdict;

/// The JUnit report, `junit.xml` in the report folder; its links point at the HTML report
/// beside it.
pub struct JunitExporter;

impl Exporter for JunitExporter {
    fn targets(&self, outputs: &Outputs) -> Vec<Target> {
        outputs
            .dir
            .iter()
            .map(|dir| Target::File(dir.join("junit.xml")))
            .collect()
    }

    fn name(&self) -> &'static str {
        "junit.xml"
    }

    fn render(&self, run: &RunView<'_>, outputs: &Outputs) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let dir = outputs.dir.as_deref().unwrap_or(Path::new("."));
        report(run, dir)
            .serialize(&mut bytes)
            .context("cannot write the JUnit report")?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// Builds the JUnit model of a run.
pub fn report(run: &RunView<'_>, report_dir: &Path) -> Report {
    let results = run.results;
    // Relative to the working directory when under it, as every other path in the reports.
    let html = crate::input::shown(&report_dir.join("index.html"));
    let mut report = Report::new("leakcheck");
    if let Ok(started) = chrono::DateTime::parse_from_rfc3339(&results.started_at) {
        report.set_timestamp(started);
    }
    report.set_time(seconds(results.duration_secs));

    // Suites in the order their first scenario ran.
    let mut suites: Vec<(PathBuf, Vec<&ScenarioView>)> = Vec::new();
    for row in run.in_run_order() {
        match suites.iter_mut().find(|(file, _)| *file == row.result.file) {
            Some((_, members)) => members.push(row),
            None => suites.push((row.result.file.clone(), vec![row])),
        }
    }
    for (file, members) in suites {
        let name = xml(&file.display().to_string());
        let mut suite = TestSuite::new(name.as_str());
        suite.set_time(seconds(
            members.iter().map(|row| row.result.duration_secs).sum(),
        ));
        // The run's nominal level, named so: each interval in the testcases states its own
        // (the deciding look's, 99.5 % at the first look of a default run), and a bare
        // `confidence` here read as theirs.
        suite.add_property(Property::new(
            "nominal_confidence",
            view::percent(results.confidence) + " %",
        ));
        for row in members {
            let link = xml(&format!("{}#{}", html.display(), row.anchor));
            suite.add_test_case(test_case(row, &name, &link));
        }
        report.add_test_suite(suite);
    }
    report
}

fn test_case(row: &ScenarioView, suite: &str, link: &str) -> TestCase {
    let scenario = row.result;
    let status = if scenario.verdict == Verdict::Skipped {
        let mut status = TestCaseStatus::skipped();
        status
            .set_message(xml(&scenario.reason))
            .set_type("skipped");
        status
    } else if scenario.verdict == Verdict::Error {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status
            .set_message(xml(scenario.error.as_deref().unwrap_or(&scenario.reason)))
            .set_type("error")
            .set_description(xml(scenario
                .traceback
                .as_deref()
                .or(scenario.error.as_deref())
                .unwrap_or(&scenario.reason)));
        status
    } else if let Some(why) = row.failure {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status
            .set_message(xml(&row.failure_message()))
            .set_type(why)
            .set_description(xml(&failure_details(row)));
        status
    } else {
        TestCaseStatus::success()
    };

    let mut case = TestCase::new(xml(&scenario.name), status);
    // A pytest test's class is its test file, as pytest's own JUnit report names it.
    let class = scenario.pytest.as_ref().map(|test| xml(&test.file));
    case.set_classname(class.as_deref().unwrap_or(suite))
        .set_time(seconds(scenario.duration_secs))
        .add_property(Property::new("verdict", scenario.verdict.name()))
        .add_property(Property::new(
            "expected",
            view::expect_name(scenario.expected),
        ))
        .add_property(Property::new(
            "location",
            xml(&format!("{}:{}", scenario.file.display(), scenario.line)),
        ));

    let mut out = format!("verdict: {}\n{}\n", scenario.verdict, scenario.reason);
    for line in row.growth_lines() {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("report: {link}\n"));
    if !scenario.stdout.is_empty() {
        out.push_str("--- captured stdout\n");
        out.push_str(&scenario.stdout);
    }
    case.set_system_out(xml(&out));
    if !scenario.stderr.is_empty() {
        case.set_system_err(xml(&scenario.stderr));
    }
    case
}

/// The reason, growth figures and diagnosis of a failure, for the failure's text.
fn failure_details(row: &ScenarioView) -> String {
    let mut text = format!("{}\n", row.result.reason);
    if let Some(advice) = &row.advice {
        text.push_str(advice);
        text.push('\n');
    }
    for line in row.growth_lines() {
        text.push_str(&line);
        text.push('\n');
    }
    if let Some(diagnosis) = &row.diagnosis {
        for line in diagnosis.lines() {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// Text XML allows, for quick-junit.
fn xml(text: &str) -> String {
    untrusted::xml(text).into_owned()
}

fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or_default()
}
