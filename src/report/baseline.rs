//! The baseline comparison on the terminal: what changed since the previous run, printed before
//! the summary table so that new leaks and significant rises are the first thing read.

use std::io::Write;

use console::style;

use super::view;
use crate::compare::{Change, Comparison, ScenarioComparison, Shift};
use crate::results::RunResults;

/// Prints the notable changes (new leaks, rises, verdict changes, fixes, falls, added and
/// removed scenarios) and how many scenarios did not change.
pub fn print_comparison(
    comparison: &Comparison,
    results: &RunResults,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {} (started {}, leakcheck {})",
        style("compared with baseline").bold(),
        comparison.file.display(),
        comparison.started_at,
        comparison.tool_version
    )?;
    let notable: Vec<&ScenarioComparison> = comparison
        .scenarios
        .iter()
        .filter(|e| e.change.is_notable())
        .collect();
    let width = notable
        .iter()
        .map(|e| e.change.label().len())
        .max()
        .unwrap_or(0);
    for entry in &notable {
        let label = format!("{:width$}", entry.change.label().to_uppercase());
        let label = match entry.change {
            Change::NewLeak | Change::Regression => style(label).red().bold(),
            Change::VerdictChanged => style(label).magenta().bold(),
            Change::FixedLeak | Change::Improvement => style(label).blue().bold(),
            Change::Added | Change::Removed | Change::Unchanged => style(label).dim(),
        };
        let verdicts = match (entry.old_verdict, entry.new_verdict) {
            (Some(old), Some(new)) if old != new => format!("  {old} → {new}"),
            _ => String::new(),
        };
        let fails = if entry.change == Change::Regression && comparison.fail_on_regression {
            style("  (fails the gate: --fail-on-regression)")
                .red()
                .to_string()
        } else {
            String::new()
        };
        let name = super::untrusted::terminal(&entry.name);
        writeln!(out, "  {label}  {name}{verdicts}{fails}")?;
        for line in shifted_metrics(entry, results) {
            writeln!(out, "  {:width$}    {line}", "")?;
        }
    }
    writeln!(
        out,
        "  {} unchanged{}; {}",
        comparison.summary.unchanged,
        view::not_selected(comparison.summary.not_selected),
        crate::compare::RULE
    )?;
    writeln!(out)
}

/// `tracemalloc 36 B/iter ± 0.2 B → 72 B/iter ± 0.3 B (rose)` for every metric that moved.
pub fn shifted_metrics(entry: &ScenarioComparison, results: &RunResults) -> Vec<String> {
    let unit_of = |metric: crate::metric::Metric| {
        results
            .scenarios
            .iter()
            .find(|s| s.name == entry.name)
            .and_then(|s| s.metrics.get(&metric))
            .map_or(metric.unit(), |m| m.unit)
    };
    entry
        .metrics
        .iter()
        .filter(|m| matches!(m.shift, Shift::Rose | Shift::Fell))
        .filter_map(|m| {
            let (old, new) = (m.old?, m.new?);
            let unit = unit_of(m.metric);
            Some(format!(
                "{} {} → {} ({})",
                m.metric,
                view::growth_of(old, unit),
                view::growth_of(new, unit),
                if m.shift == Shift::Rose {
                    "rose"
                } else {
                    "fell"
                }
            ))
        })
        .collect()
}
