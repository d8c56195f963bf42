//! `summary.md`: the run as a short Markdown page to paste into a pull request, an issue or a
//! chat: the headline, the counts, and one row per scenario with the growth of every gated
//! metric. A rendering of [`RunView`] and nothing else, the smallest format to copy from.

use anyhow::Result;

use super::view::RunView;
use super::{Exporter, Outputs, Target};
use crate::metric::Metric;

/// The Markdown summary, `summary.md` in the report folder.
pub struct MarkdownExporter;

impl Exporter for MarkdownExporter {
    fn targets(&self, outputs: &Outputs) -> Vec<Target> {
        let file = outputs.dir.as_ref().map(|dir| dir.join("summary.md"));
        file.into_iter().map(Target::File).collect()
    }

    fn name(&self) -> &'static str {
        "summary.md"
    }

    fn render(&self, run: &RunView<'_>, _: &Outputs) -> Result<Vec<u8>> {
        Ok(render(run).into_bytes())
    }
}

/// The page: headline, counts, the baseline's headline when there is one, then the table in
/// report order (failures first), the gated metrics as columns.
pub fn render(run: &RunView<'_>) -> String {
    let cell = super::github::cell;
    let results = run.results;
    let mut md = format!(
        "# leakcheck: {}\n\n{}\n\n",
        run.headline,
        run.counts_and_time()
    );
    if let Some(comparison) = &run.comparison {
        md.push_str(&format!(
            "Against the baseline: {}.\n\n",
            comparison.headline
        ));
    }
    let columns: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| results.scenarios.iter().any(|s| s.gate.contains(m)))
        .collect();
    md.push_str("| scenario | verdict | outcome |");
    for metric in &columns {
        md.push_str(&format!(" {metric}/iter |"));
    }
    md.push_str(&format!(
        "\n|---|---|---|{}\n",
        "---:|".repeat(columns.len())
    ));
    for row in &run.rows {
        let outcome = row
            .failure
            .map_or("as expected".to_string(), |why| format!("**{why}**"));
        md.push_str(&format!(
            "| {} | {} | {outcome} |",
            cell(&row.result.name),
            row.label
        ));
        for metric in &columns {
            let growth = row.metric(*metric).map_or("—", |m| m.growth.as_str());
            md.push_str(&format!(" {} |", cell(growth)));
        }
        md.push('\n');
    }
    md.push_str("\nGrowth per iteration (Theil–Sen) ± half-width of its interval, or the interval where it is lopsided.\n");
    md
}
