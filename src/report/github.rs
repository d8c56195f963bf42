//! GitHub Actions conventions: `::error` workflow commands that annotate the scenario file (and
//! the allocation site, when it is in the repository) of every scenario that fails the gate,
//! `::warning` for significant rises that do not, and a Markdown summary appended to
//! `$GITHUB_STEP_SUMMARY`.
//!
//! The text is built by pure functions; [`AnnotationsExporter`] and [`StepSummaryExporter`]
//! hand it to `report::write_all`, for stdout and the file named by the [`Environment`].

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::view::{RunView, ScenarioView};
use super::{Exporter, Outputs, Target};
use crate::results::Change;

/// The parts of a GitHub Actions environment this module uses.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `GITHUB_ACTIONS=true`: print workflow-command annotations.
    pub actions: bool,
    /// `GITHUB_STEP_SUMMARY`: the file to append the Markdown summary to.
    pub step_summary: Option<PathBuf>,
    /// `GITHUB_WORKSPACE` (else the current folder): the repository root, for relative paths.
    pub workspace: Option<PathBuf>,
}

impl Environment {
    /// Reads the process environment.
    pub fn current() -> Environment {
        Environment {
            actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            workspace: std::env::var_os("GITHUB_WORKSPACE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::current_dir().ok()),
        }
    }
}

/// The workflow-command annotations, on stdout (where the runner reads them) under GitHub
/// Actions.
pub struct AnnotationsExporter;

impl Exporter for AnnotationsExporter {
    fn targets(&self, outputs: &Outputs) -> Vec<Target> {
        match &outputs.github {
            Some(env) if env.actions => vec![Target::Stdout],
            _ => Vec::new(),
        }
    }

    fn name(&self) -> &'static str {
        "GitHub annotations"
    }

    fn render(&self, run: &RunView<'_>, outputs: &Outputs) -> Result<Vec<u8>> {
        let workspace = outputs.github.as_ref().and_then(|e| e.workspace.as_deref());
        let mut text = String::new();
        for line in annotations(run, workspace) {
            text.push_str(&line);
            text.push('\n');
        }
        Ok(text.into_bytes())
    }
}

/// The Markdown summary, appended to `$GITHUB_STEP_SUMMARY` when it is set.
pub struct StepSummaryExporter;

impl Exporter for StepSummaryExporter {
    fn targets(&self, outputs: &Outputs) -> Vec<Target> {
        outputs
            .github
            .iter()
            .filter_map(|env| env.step_summary.clone())
            .map(Target::Append)
            .collect()
    }

    fn name(&self) -> &'static str {
        "GITHUB_STEP_SUMMARY"
    }

    fn render(&self, run: &RunView<'_>, outputs: &Outputs) -> Result<Vec<u8>> {
        let dir = outputs.dir.as_deref().unwrap_or(Path::new("."));
        Ok(step_summary(run, dir).into_bytes())
    }
}

/// One `::error` per scenario that fails the gate, at its scenario file and line, plus one at
/// the top allocation site when that file is in the repository; one `::warning` per
/// significant rise that does not fail the gate.
pub fn annotations(run: &RunView<'_>, workspace: Option<&Path>) -> Vec<String> {
    let mut lines = Vec::new();
    for row in run.in_run_order() {
        let scenario = row.result;
        let Some(why) = row.failure else {
            continue;
        };
        lines.push(command(
            "error",
            &repo_path(&scenario.file.display().to_string(), workspace)
                .unwrap_or_else(|| scenario.file.display().to_string()),
            scenario.line,
            &format!("leakcheck: {} ({why})", scenario.name),
            &row.failure_message(),
        ));
        // The allocating line, or the user's line that called into the standard library.
        let site = scenario.diagnosis.as_ref().and_then(|d| d.sites.first());
        let place = site.and_then(|site| {
            std::iter::once((site.file.as_str(), site.line))
                .chain(site.caller.as_ref().map(|c| (c.file.as_str(), c.line)))
                .find_map(|(file, line)| Some((repo_path(file, workspace)?, line)))
        });
        if let (Some((file, line)), Some(top)) = (place, row.top_site()) {
            lines.push(command(
                "error",
                &file,
                line as usize,
                &format!("leakcheck: {} allocates here", scenario.name),
                &format!("{top} — {}", scenario.reason),
            ));
        }
    }
    if let Some(comparison) = &run.comparison {
        for change in &comparison.entries {
            if change.entry.change != Change::Regression || change.fails_gate {
                continue;
            }
            let Some(scenario) = run.row_named(&change.entry.name).map(|row| row.result) else {
                continue;
            };
            lines.push(command(
                "warning",
                &repo_path(&scenario.file.display().to_string(), workspace)
                    .unwrap_or_else(|| scenario.file.display().to_string()),
                scenario.line,
                &format!(
                    "leakcheck: {} grows faster than in the baseline",
                    scenario.name
                ),
                &change.shifted().join("; "),
            ));
        }
    }
    lines
}

/// `::error file=…,line=…,title=…::message` with GitHub's escaping.
fn command(level: &str, file: &str, line: usize, title: &str, message: &str) -> String {
    use super::untrusted::annotation;
    format!(
        "::{level} file={},line={line},title={}::{}",
        escape_property(&annotation(file)),
        escape_property(&annotation(title)),
        escape_data(&annotation(message))
    )
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The path of `file` relative to the repository, when it is inside it (and not an installed
/// package); `None` for `<string>`, the standard library, site-packages.
fn repo_path(file: &str, workspace: Option<&Path>) -> Option<String> {
    if file.starts_with('<') || file.contains("site-packages") || file.contains("dist-packages") {
        return None;
    }
    let path = Path::new(file);
    if path.is_relative() {
        return Some(file.to_string());
    }
    let relative = path.strip_prefix(workspace?).ok()?;
    Some(relative.display().to_string())
}

/// The Markdown summary: headline, counts, baseline changes, then every scenario, failures
/// first.
pub fn step_summary(run: &RunView<'_>, report_dir: &Path) -> String {
    let mut md = String::new();
    let mark = if run.all_ok { "✅" } else { "❌" };
    md.push_str(&format!("## leakcheck: {mark} {}\n\n", run.headline));
    md.push_str(&format!("{}\n\n", run.counts_and_time()));
    if let Some(comparison) = &run.comparison {
        md.push_str(&format!(
            "### Compared with baseline {}\n\n",
            cell(&comparison.comparison.file.display().to_string())
        ));
        let notable: Vec<_> = comparison.notable().collect();
        if notable.is_empty() {
            md.push_str("No scenario changed.\n\n");
        } else {
            md.push_str("| scenario | change | verdict | growth |\n|---|---|---|---|\n");
            for change in notable {
                let entry = change.entry;
                let verdicts = format!(
                    "{} → {}",
                    entry.old_verdict.map_or("absent", |v| v.name()),
                    entry.new_verdict.map_or("absent", |v| v.name())
                );
                md.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    cell(&entry.name),
                    entry.change.label(),
                    verdicts,
                    cell(&change.shifted().join("; "))
                ));
            }
            md.push('\n');
        }
    }
    md.push_str("| scenario | verdict | outcome | reason |\n|---|---|---|---|\n");
    for row in &run.rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&row.result.name),
            row.result.verdict,
            outcome(row),
            cell(&row.result.reason)
        ));
    }
    md.push_str(&format!(
        "\nFull report: `{}` (charts, diagnosis, output).\n\n",
        crate::input::shown(&report_dir.join("index.html")).display()
    ));
    md
}

fn outcome(row: &ScenarioView) -> String {
    match row.failure {
        Some(why) => format!("❌ {why}"),
        None => "✅ as expected".to_string(),
    }
}

/// Text made safe for one Markdown table cell: no pipes or line breaks, no HTML, no control
/// characters.
pub(super) fn cell(text: &str) -> String {
    super::untrusted::annotation(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_commands_are_escaped() {
        assert_eq!(
            command("error", "a,b:c.yaml", 3, "t: x, y", "50%\nnext"),
            "::error file=a%2Cb%3Ac.yaml,line=3,title=t%3A x%2C y::50%25%0Anext"
        );
    }

    #[test]
    fn only_repository_files_are_annotated() {
        let ws = Path::new("/repo");
        assert_eq!(
            repo_path("/repo/shop/prices.py", Some(ws)).as_deref(),
            Some("shop/prices.py")
        );
        assert_eq!(
            repo_path("/usr/lib/python3.11/json/decoder.py", Some(ws)),
            None
        );
        assert_eq!(
            repo_path("/repo/.venv/lib/site-packages/x.py", Some(ws)),
            None
        );
        assert_eq!(repo_path("<string>", Some(ws)), None);
        assert_eq!(
            repo_path("scenarios/a.yaml", Some(ws)).as_deref(),
            Some("scenarios/a.yaml")
        );
    }

    #[test]
    fn table_cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(cell("<b>a|b\nc"), "&lt;b&gt;a\\|b c");
    }
}
