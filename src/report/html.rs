//! `index.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched) that
//! shows a run at a glance and each scenario's growth curves, verdict rule and diagnosis.
//!
//! The page is rendered by askama from `templates/index.html`; every value from a scenario
//! (names, code, output, tracebacks, paths) goes through askama's HTML escaping, and a
//! Content-Security-Policy forbids scripts and remote loads as a second line of defence. This
//! module only builds the view model: strings and chart geometry ready to place.

use anyhow::{Context, Result};
use askama::Template;

use super::chart::Chart;
use super::view::{self, ComparisonView, RunView};
use super::{Exporter, Outputs, Target};
use crate::diagnosis::DiagnosisView;
use crate::metric::Metric;
use crate::results::ScenarioResult;
use crate::results::{Change, Shift};
use crate::verdict::{Call, Verdict};

/// The HTML report: `index.html` in the report folder, and where `leakcheck report --html`
/// asks.
pub struct HtmlExporter;

impl Exporter for HtmlExporter {
    fn targets(&self, outputs: &Outputs) -> Vec<Target> {
        let in_folder = outputs.dir.as_ref().map(|dir| dir.join("index.html"));
        outputs
            .html
            .clone()
            .into_iter()
            .chain(in_folder)
            .map(Target::File)
            .collect()
    }

    fn name(&self) -> &'static str {
        "index.html"
    }

    fn render(&self, run: &RunView<'_>, _: &Outputs) -> Result<Vec<u8>> {
        Ok(render(run)?.into_bytes())
    }
}

/// Renders the page for a run.
pub fn render(run: &RunView<'_>) -> Result<String> {
    let page = Page::new(run)
        .render()
        .context("cannot render the HTML report")?;
    // askama escapes markup, not the control characters HTML forbids.
    Ok(super::untrusted::html(&page).into_owned())
}

#[derive(Template)]
#[template(path = "index.html", config = "src/report/askama.toml")]
struct Page<'v> {
    title: String,
    all_ok: bool,
    headline: String,
    counts: Vec<Count>,
    meta: Vec<(&'static str, String)>,
    interrupted: bool,
    confidence: String,
    baseline: Option<BaselineView>,
    columns: Vec<Metric>,
    rows: Vec<Row>,
    scenarios: Vec<ScenarioView<'v>>,
    tool_version: String,
}

struct Count {
    class: &'static str,
    label: &'static str,
    value: usize,
}

struct Row {
    anchor: String,
    name: String,
    verdict: Verdict,
    expected: &'static str,
    failure: Option<&'static str>,
    cells: Vec<Cell>,
    iterations: u64,
    time: String,
}

struct Cell {
    text: String,
    class: &'static str,
}

struct ScenarioView<'v> {
    anchor: String,
    name: String,
    verdict: Verdict,
    expected: &'static str,
    failure: Option<&'static str>,
    location: String,
    /// The file the details are grouped under (see [`group_of`]).
    group: String,
    /// Whether this scenario's details open its file's group.
    group_start: bool,
    description: Option<String>,
    tags: Vec<String>,
    reason: String,
    advice: Option<&'v str>,
    error: Option<String>,
    traceback: Option<String>,
    stdout: String,
    stderr: String,
    metrics: Vec<MetricRow>,
    gated_charts: Vec<ChartView>,
    other_charts: Vec<ChartView>,
    comparison: Option<ChangeView>,
    diagnosis: Option<&'v DiagnosisView>,
    facts: String,
}

struct MetricRow {
    metric: Metric,
    growth: String,
    interval: String,
    tolerance: String,
    call: &'static str,
    call_class: &'static str,
    gated: bool,
}

struct ChartView {
    chart: Chart,
    caption: String,
    call_class: &'static str,
    label: String,
}

struct BaselineView {
    file: String,
    started_at: String,
    tool_version: String,
    fail_on_regression: bool,
    headline: String,
    rule: &'static str,
    changes: Vec<ChangeView>,
    unchanged: usize,
}

struct ChangeView {
    name: String,
    anchor: Option<String>,
    change: &'static str,
    change_class: &'static str,
    old_verdict: Option<Verdict>,
    new_verdict: Option<Verdict>,
    metrics: Vec<MetricChange>,
}

struct MetricChange {
    metric: Metric,
    old: String,
    new: String,
    shift: &'static str,
    shift_class: &'static str,
}

impl<'v> Page<'v> {
    fn new(run: &'v RunView<'_>) -> Page<'v> {
        let results = run.results;
        let s = &results.summary;
        let columns: Vec<Metric> = Metric::ALL
            .into_iter()
            .filter(|m| results.scenarios.iter().any(|sc| sc.gate.contains(m)))
            .collect();
        let comparison_of = |name: &str| run.comparison.as_ref()?.entry_named(name);
        // The headline opens the page: a sentence, capitalised.
        let mut headline = run.headline.clone();
        if let Some(first) = headline.get_mut(..1) {
            first.make_ascii_uppercase();
        }

        Page {
            title: format!(
                "leakcheck: {} scenarios, {} leak, {} not as expected",
                s.total, s.leak, s.failed
            ),
            all_ok: run.all_ok,
            headline,
            counts: run
                .counts
                .iter()
                .map(|c| Count {
                    class: c.label,
                    label: c.label,
                    value: c.value,
                })
                .collect(),
            meta: vec![
                ("started", results.started_at.clone()),
                ("duration", format!("{:.1} s", results.duration_secs)),
                // The run's nominal level; each interval is labelled with its own.
                (
                    "nominal confidence",
                    format!("{} % two-sided", view::percent(results.confidence)),
                ),
                (
                    "python",
                    results
                        .python
                        .version
                        .clone()
                        .unwrap_or_else(|| "unknown".to_string()),
                ),
                (
                    "interpreter",
                    results.python.executable.display().to_string(),
                ),
                ("leakcheck", results.tool.version.clone()),
            ],
            interrupted: results.interrupted,
            confidence: view::percent(results.confidence),
            baseline: run.comparison.as_ref().map(baseline_view),
            rows: run
                .rows
                .iter()
                .map(|row| (row, row.result))
                .map(|(row, sc)| Row {
                    anchor: row.anchor.clone(),
                    name: sc.name.clone(),
                    verdict: sc.verdict,
                    expected: view::expect_name(sc.expected),
                    failure: row.failure,
                    cells: columns
                        .iter()
                        .map(|m| match (sc.metrics.get(m), row.metric(*m)) {
                            (Some(result), Some(metric)) => Cell {
                                text: metric.growth.clone(),
                                class: match (sc.gate.contains(m), result.call) {
                                    (false, _) => "ungated",
                                    (true, Call::Grows) => "grows",
                                    (true, Call::Unclear) => "unclear",
                                    (true, _) => "",
                                },
                            },
                            _ => Cell {
                                text: "—".to_string(),
                                class: "ungated",
                            },
                        })
                        .collect(),
                    iterations: sc.iterations_done,
                    time: format!("{:.1} s", sc.duration_secs),
                })
                .collect(),
            scenarios: grouped(&run.rows)
                .into_iter()
                .map(|(row, group_start)| {
                    let mut view = scenario_view(row, comparison_of(&row.result.name));
                    view.group_start = group_start;
                    view
                })
                .collect(),
            columns,
            tool_version: results.tool.version.clone(),
        }
    }
}

/// The file a scenario's details are grouped under: a pytest test's own file (relative to its
/// rootdir), else the scenario file.
fn group_of(sc: &ScenarioResult) -> String {
    match &sc.pytest {
        Some(test) => test.file.clone(),
        None => sc.file.display().to_string(),
    }
}

/// The rows (in report order) regrouped by file, each file where its first scenario was (so
/// the files with failures still come first, and within a file the order stays), with whether
/// each scenario starts its file's group.
fn grouped<'v, 'r>(rows: &'v [view::ScenarioView<'r>]) -> Vec<(&'v view::ScenarioView<'r>, bool)> {
    let mut groups: Vec<(String, Vec<&view::ScenarioView>)> = Vec::new();
    for row in rows {
        let group = group_of(row.result);
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, members)) => members.push(row),
            None => groups.push((group, vec![row])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(_, members)| {
            members
                .into_iter()
                .enumerate()
                .map(|(n, row)| (row, n == 0))
        })
        .collect()
}

fn scenario_view<'v>(
    row: &'v view::ScenarioView,
    comparison: Option<&view::ChangeView<'_>>,
) -> ScenarioView<'v> {
    let sc = row.result;
    let charts: Vec<ChartView> = sc
        .metrics
        .iter()
        .zip(&row.metrics)
        .filter_map(|((&metric, result), words)| {
            let analysis = sc.analysis_of(metric);
            let chart = Chart::build(metric, result, analysis.and_then(|a| a.robust.as_ref()))?;
            Some(ChartView {
                caption: words.growth.clone(),
                call_class: call_class(result.call),
                label: format!(
                    "{metric} against iteration for {}: {}, tolerance {}",
                    sc.name, words.growth, words.tolerance
                ),
                chart,
            })
        })
        .collect();
    let (mut gated_charts, mut other_charts) = (Vec::new(), Vec::new());
    for chart in charts {
        if chart.chart.gated {
            gated_charts.push(chart);
        } else {
            other_charts.push(chart);
        }
    }
    let mut facts = format!(
        "{} measured iterations after {} warmup, a sample every {}; {} iterations done in {:.2} s",
        sc.iterations, sc.warmup, sc.sample_every, sc.iterations_done, sc.duration_secs
    );
    if let Some(t) = &sc.timings {
        facts.push_str(&format!(
            " (setup {:.2} s, warmup {:.2} s, iterations {:.2} s, sampling {:.2} s)",
            t.setup, t.warmup, t.iterations, t.sampling
        ));
    }
    ScenarioView {
        anchor: row.anchor.clone(),
        name: sc.name.clone(),
        verdict: sc.verdict,
        expected: view::expect_name(sc.expected),
        failure: row.failure,
        location: format!("{}:{}", sc.file.display(), sc.line),
        group: group_of(sc),
        group_start: false,
        description: sc.description.clone(),
        tags: sc.tags.clone(),
        reason: sc.reason.clone(),
        advice: row.advice.as_deref(),
        error: sc.error.clone(),
        traceback: sc.traceback.clone(),
        stdout: sc.stdout.clone(),
        stderr: sc.stderr.clone(),
        metrics: sc
            .metrics
            .values()
            .zip(&row.metrics)
            .map(|(m, words)| MetricRow {
                metric: words.metric,
                growth: words.growth.clone(),
                interval: format!("{} %: {}", words.confidence, words.interval),
                tolerance: words.tolerance.clone(),
                call: words.call,
                call_class: call_class(m.call),
                gated: words.gated,
            })
            .collect(),
        gated_charts,
        other_charts,
        comparison: comparison.map(|c| change_view(c, None)),
        diagnosis: row.diagnosis.as_ref(),
        facts,
    }
}

fn call_class(call: Call) -> &'static str {
    match call {
        Call::Grows => "grows",
        Call::Unclear => "unclear",
        Call::Within | Call::NoFit => "",
    }
}

fn baseline_view(view: &ComparisonView<'_>) -> BaselineView {
    let c = view.comparison;
    BaselineView {
        file: c.file.display().to_string(),
        started_at: c.started_at.clone(),
        tool_version: c.tool_version.clone(),
        fail_on_regression: c.fail_on_regression,
        rule: crate::compare::RULE,
        headline: view.headline.clone(),
        changes: view
            .notable()
            .map(|change| change_view(change, change.anchor.clone()))
            .collect(),
        unchanged: c.summary.unchanged,
    }
}

fn change_view(view: &view::ChangeView<'_>, anchor: Option<String>) -> ChangeView {
    let e = view.entry;
    ChangeView {
        name: e.name.clone(),
        anchor,
        change: e.change.label(),
        change_class: match e.change {
            Change::NewLeak | Change::Regression => "worse",
            Change::VerdictChanged => "changed",
            Change::FixedLeak | Change::Improvement => "better",
            Change::Added | Change::Removed | Change::Unchanged => "",
        },
        old_verdict: e.old_verdict,
        new_verdict: e.new_verdict,
        metrics: view
            .metrics
            .iter()
            .map(|m| MetricChange {
                metric: m.metric,
                old: m.old.clone(),
                new: m.new.clone(),
                shift: m.shift_word(),
                shift_class: match m.shift {
                    Shift::Rose => "worse",
                    Shift::Fell => "better",
                    _ => "",
                },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RunResults;

    /// A run with one diagnosed leak whose every text field is hostile, and one error.
    fn results() -> RunResults {
        let metric = |slope: f64, gated: bool| {
            serde_json::json!({
                "unit": "bytes", "slope": slope, "ci_low": slope - 1.0, "ci_high": slope + 1.0,
                "stderr": 0.3, "intercept": 1000.0, "tolerance": 8.0, "gated": gated,
                "call": if slope > 8.0 { "grows" } else { "within" },
                "samples": (5..50).map(|i| (i, 1000.0 + slope * i as f64)).collect::<Vec<_>>(),
                "warmup_samples": (0..5).map(|i| (i, 1000.0 + slope * i as f64)).collect::<Vec<_>>(),
            })
        };
        let evil = "<script>alert('x')</script>";
        let diagnosis = serde_json::json!({
            "iterations": 20,
            "sites": [{
                "file": "/usr/lib/python3.11/logging/__init__.py", "line": 311,
                "code": evil, "size_diff": 720, "count_diff": 20, "bytes_per_iteration": 36.0,
                "stack": [{"file": "app.py", "line": 2, "code": evil}],
                "caller": {"file": "app.py", "line": 2, "code": "log.info(x)"}
            }],
            "types": [{"type_name": evil, "before": 1, "after": 21, "per_iteration": 1.0}],
            "chains": [{"type_name": "int", "root_kind": "module_global",
                        "steps": [evil], "text": evil, "note": null}],
            "garbage": {"garbage_before": 0, "garbage_after": 20,
                        "generations": [{"generation": 0, "collections": 3,
                                         "collected": 10, "uncollectable": 20}],
                        "uncollectable_types": [evil]},
            "hints": [{"rule": "r", "message": evil, "fix": evil}],
            "cost_secs": 0.1, "notes": [evil]
        });
        let leak = serde_json::json!({
            "name": evil, "file": "s.yaml", "line": 3, "description": evil, "tags": [evil],
            "verdict": "leak", "expected": "pass", "ok": false, "error": null,
            "reason": "tracemalloc grew 36 B/iter", "traceback": null,
            "iterations": 45, "warmup": 5, "sample_every": 1, "iterations_done": 50,
            "duration_secs": 0.5, "gate": ["tracemalloc"],
            "metrics": {"tracemalloc": metric(36.0, true), "rss": metric(0.0, false)},
            "timings": null, "stdout": evil, "stderr": "", "diagnosis": diagnosis
        });
        let error = serde_json::json!({
            "name": "crashes", "file": "s.yaml", "line": 9, "description": null, "tags": [],
            "verdict": "error", "expected": "pass", "ok": false,
            "error": "ValueError: boom (in run, iteration 3)",
            "reason": "ValueError: boom (in run, iteration 3)",
            "traceback": "Traceback (most recent call last):\nValueError: boom",
            "iterations": 45, "warmup": 5, "sample_every": 1, "iterations_done": 3,
            "duration_secs": 0.1, "gate": ["tracemalloc"], "metrics": {},
            "timings": null, "diagnosis": null, "stdout": "", "stderr": "warning: <b>"
        });
        serde_json::from_value(serde_json::json!({
            "schema_version": 1,
            "tool": {"name": "leakcheck", "version": "0.0.0"},
            "python": {"version": "3.11", "executable": "/usr/bin/python3", "environment": null},
            "started_at": "2026-01-01T00:00:00Z", "duration_secs": 1.5, "confidence": 0.99,
            "interrupted": true,
            "summary": {"total": 2, "pass": 0, "leak": 1, "inconclusive": 0, "error": 1,
                        "failed": 2},
            "scenarios": [leak, error]
        }))
        .expect("a valid RunResults")
    }

    #[test]
    fn every_scenario_string_is_escaped() {
        let html = render(&RunView::new(&results())).unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("warning: <b>"));
        // Name, description, tag, stdout, site code, stack, type, chain, hint, fix, note, garbage.
        let escaped = html.matches("&#60;script&#62;").count();
        assert!(escaped >= 12, "only {escaped} escaped occurrences");
    }

    #[test]
    fn failures_come_first_with_their_reason_diagnosis_and_output() {
        let html = render(&RunView::new(&results())).unwrap();
        assert!(html.contains("2 of 2 scenarios not as expected"));
        assert!(html.contains("The run was interrupted"));
        assert!(html.contains("✗ unexpected leak"));
        assert!(html.contains("tracemalloc grew 36 B/iter"));
        assert!(html.contains("called from <code>app.py:2: log.info(x)</code>"));
        assert!(html.contains("uncollectable cycles"));
        assert!(html.contains("Traceback (most recent call last)"));
        assert!(html.contains("Captured stderr"));
        // Leaks are listed before errors; the error's one-line message is not repeated.
        let leak = html.find("s0-script-alert--x----script").unwrap();
        let error = html.find("s1-crashes").unwrap();
        assert!(leak < error);
        assert_eq!(
            html.matches("ValueError: boom (in run, iteration 3)")
                .count(),
            1
        );
    }

    #[test]
    fn each_metric_with_samples_gets_a_chart_and_gated_ones_are_marked() {
        let html = render(&RunView::new(&results())).unwrap();
        assert_eq!(html.matches(r#"<svg class="chart" "#).count(), 2);
        assert_eq!(html.matches(r#"data-gated="true""#).count(), 1);
        assert!(html.contains("Metrics not gated: rss"));
    }
}
