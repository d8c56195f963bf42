//! Snapshot tests: every text format rendered from committed `results.json` fixtures and
//! compared byte for byte with committed expected files, so that a wording, ordering or figure
//! changes in a report only on purpose.
//!
//! The fixtures under `tests/fixtures/snapshots/` come from real runs (the shipped
//! `scenarios/`; `tests/fixtures/reports/` compared with a baseline and
//! `--fail-on-regression`; noisy growth near the tolerance under `--fail-on-inconclusive`,
//! with a clean file beside it), with machine paths replaced by `/home/dev/shop/` and
//! `/opt/python-3.11.7` and the raw samples thinned (the charts only). Rendering reads nothing
//! else from the machine: the terminal table is rendered whole and without colour, GitHub paths
//! are relative to a fixed workspace, and the time stamps are the fixtures' own.
//!
//! The expected files end in `.snap`, whatever their format, so that tools reading source
//! (formatters, the duplicate finder) leave generated output alone.
//!
//! After a deliberate change, regenerate the expected files and review their diff:
//! `UPDATE_SNAPSHOTS=1 cargo test --lib report::snapshots`.

use std::path::{Path, PathBuf};

use super::view::RunView;
use super::{Exporter, Outputs};
use crate::results::RunResults;

/// The fixtures, each a `<name>.json` beside a `<name>/` folder of expected outputs.
const FIXTURES: [&str; 3] = ["shipped", "mixed", "inconclusive"];

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshots")
}

fn fixture(name: &str) -> RunResults {
    let path = folder().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()))
}

/// Compares `actual` with the expected file `<fixture>/<file>`, or writes it with
/// `UPDATE_SNAPSHOTS=1`.
fn check(fixture: &str, file: &str, actual: &str) {
    let path = folder().join(fixture).join(file);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v != "0") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read `{}` ({e}): create it with `UPDATE_SNAPSHOTS=1 cargo test --lib \
             report::snapshots`",
            path.display()
        )
    });
    if actual == expected {
        return;
    }
    let line = actual
        .lines()
        .zip(expected.lines())
        .position(|(a, e)| a != e)
        .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
    panic!(
        "`{}` differs from line {}:\n  expected: {:?}\n  actual:   {:?}\nif the change is meant, \
         regenerate with `UPDATE_SNAPSHOTS=1 cargo test --lib report::snapshots` and review the \
         diff",
        path.display(),
        line + 1,
        expected.lines().nth(line).unwrap_or("<end of file>"),
        actual.lines().nth(line).unwrap_or("<end of file>"),
    );
}

/// What `leakcheck run` prints on stdout after the progress lines: the baseline comparison,
/// the summary table (fitted to `width` columns, whole without) and the details, without
/// colour; with `quiet`, only what fails the gate and the closing line.
fn terminal(results: &RunResults, quiet: bool, width: Option<usize>) -> String {
    let mut out = Vec::new();
    let run = RunView::new(results);
    if let Some(comparison) = &run.comparison {
        super::baseline::print_comparison(comparison, &mut out).unwrap();
    }
    super::terminal::write_summary(&run, &mut out, quiet, width).unwrap();
    console::strip_ansi_codes(&String::from_utf8(out).unwrap()).into_owned()
}

/// The annotations GitHub Actions reads from stdout, then the step summary.
fn github(results: &RunResults) -> String {
    let run = RunView::new(results);
    let mut text = String::new();
    for line in super::github::annotations(&run, Some(Path::new("/home/dev/shop"))) {
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str("--- GITHUB_STEP_SUMMARY\n");
    text.push_str(&super::github::step_summary(&run, Path::new("reports")));
    text
}

/// What `exporter` renders for a run with its report folder at `reports`.
fn exported(exporter: &dyn Exporter, results: &RunResults) -> String {
    let outputs = Outputs {
        dir: Some(PathBuf::from("reports")),
        ..Outputs::default()
    };
    String::from_utf8(exporter.render(&RunView::new(results), &outputs).unwrap()).unwrap()
}

/// Renders every fixture with `render` and checks it against `<fixture>/<file>`.
fn each_fixture(file: &str, render: impl Fn(&RunResults) -> String) {
    for name in FIXTURES {
        check(name, file, &render(&fixture(name)));
    }
}

#[test]
fn terminal_summaries_match_their_snapshots() {
    each_fixture("terminal.snap", |results| terminal(results, false, None));
}

#[test]
fn a_terminal_100_columns_wide_gets_a_fitted_table() {
    each_fixture("terminal-100.snap", |results| {
        terminal(results, false, Some(100))
    });
    // The table and its legend fit, whatever the names and intervals; the prose after them
    // (reasons, tracebacks) is left to the terminal to wrap.
    for name in FIXTURES {
        let text = terminal(&fixture(name), false, Some(100));
        let table = text
            .lines()
            .skip_while(|line| !line.starts_with("scenario "))
            .take_while(|line| !line.is_empty());
        for line in table {
            let width = console::measure_text_width(line);
            assert!(width <= 100, "{name}: {width} columns: {line}");
        }
    }
}

#[test]
fn quiet_terminal_summaries_match_their_snapshots() {
    each_fixture("terminal-quiet.snap", |results| {
        terminal(results, true, None)
    });
}

#[test]
fn junit_reports_match_their_snapshots() {
    each_fixture("junit.snap", |results| {
        exported(&super::junit::JunitExporter, results)
    });
}

#[test]
fn github_annotations_and_step_summaries_match_their_snapshots() {
    each_fixture("github.snap", github);
}

#[test]
fn markdown_summaries_match_their_snapshots() {
    each_fixture("summary.md.snap", |results| {
        exported(&super::markdown::MarkdownExporter, results)
    });
}

#[test]
fn html_reports_match_their_snapshots() {
    each_fixture("html.snap", |results| {
        exported(&super::html::HtmlExporter, results)
    });
}
