//! The baseline comparison on the terminal: what changed since the previous run, printed before
//! the summary table so that new leaks and significant rises are the first thing read.

use std::io::Write;

use console::style;

use super::view::{self, ComparisonView};
use crate::results::Change;

/// Prints the notable changes (new leaks, rises, verdict changes, fixes, falls, added and
/// removed scenarios) and how many scenarios did not change.
pub fn print_comparison(view: &ComparisonView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let comparison = view.comparison;
    writeln!(
        out,
        "{} {} (started {}, leakcheck {})",
        style("compared with baseline").bold(),
        comparison.file.display(),
        comparison.started_at,
        comparison.tool_version
    )?;
    let width = view
        .notable()
        .map(|e| e.entry.change.label().len())
        .max()
        .unwrap_or(0);
    for change in view.notable() {
        let entry = change.entry;
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
        let fails = if change.fails_gate {
            style("  (fails the gate: --fail-on-regression)")
                .red()
                .to_string()
        } else {
            String::new()
        };
        let name = super::untrusted::terminal(&entry.name);
        writeln!(out, "  {label}  {name}{verdicts}{fails}")?;
        for line in change.shifted() {
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
