//! The `baseline` section of `results.json`: how a run differs from a previous one, as data.
//!
//! The schema's types only; [`crate::compare`] fills them in (the significance rule lives
//! there) and every report renders them. They live here, not in `compare`, so that the arrow
//! points one way: `compare` reads results and writes these, and results never reads `compare`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Growth;
use crate::metric::Metric;
use crate::verdict::Verdict;

/// How a run differs from its baseline, scenario by scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline file as given on the command line.
    pub file: PathBuf,
    /// When the baseline run started (RFC 3339).
    pub started_at: String,
    /// The leakcheck version that wrote the baseline.
    pub tool_version: String,
    /// Whether a significant rise fails the gate (`--fail-on-regression`).
    pub fail_on_regression: bool,
    /// Counts by kind of change.
    pub summary: ComparisonSummary,
    /// One entry per scenario of either run: most important changes first, then run order.
    pub scenarios: Vec<ScenarioComparison>,
}

/// Number of scenarios by kind of change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComparisonSummary {
    /// Leak now, not a leak in the baseline.
    pub new_leaks: usize,
    /// A gated metric grows significantly faster than in the baseline.
    pub regressions: usize,
    /// Another change of verdict (e.g. pass to error or to inconclusive).
    pub verdict_changes: usize,
    /// Leak in the baseline, pass now.
    pub fixed_leaks: usize,
    /// A gated metric grows significantly slower, none faster.
    pub improvements: usize,
    /// Only in this run.
    pub added: usize,
    /// Only in the baseline.
    pub removed: usize,
    /// In the baseline and still in the suite, but left out of this run by `-k` or
    /// `--partition`: not compared (added in schema version 1 without a bump).
    #[serde(default)]
    pub not_selected: usize,
    /// Same verdict, no significant change.
    pub unchanged: usize,
}

/// What changed for one scenario; declared from most to least important.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Leak now, not a leak in the baseline.
    NewLeak,
    /// A gated metric rose significantly.
    Regression,
    /// The verdict changed in another way.
    VerdictChanged,
    /// Leak in the baseline, pass now.
    FixedLeak,
    /// A gated metric fell significantly and none rose.
    Improvement,
    /// Not in the baseline.
    Added,
    /// In the baseline only.
    Removed,
    /// Same verdict, no significant change.
    Unchanged,
}

impl Change {
    /// Words for reports, e.g. `new leak`.
    pub fn label(self) -> &'static str {
        match self {
            Change::NewLeak => "new leak",
            Change::Regression => "significant rise",
            Change::VerdictChanged => "verdict changed",
            Change::FixedLeak => "fixed leak",
            Change::Improvement => "significant fall",
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Unchanged => "unchanged",
        }
    }

    /// Whether the change is worth listing before the ordinary results.
    pub fn is_notable(self) -> bool {
        self != Change::Unchanged
    }
}

/// One scenario compared with its baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioComparison {
    /// Scenario name, the key that pairs the two runs.
    pub name: String,
    /// The most important change found.
    pub change: Change,
    /// Verdict in the baseline; `null` when added.
    pub old_verdict: Option<Verdict>,
    /// Verdict now; `null` when removed.
    pub new_verdict: Option<Verdict>,
    /// Every metric gated in this run (in the baseline for removed scenarios), old and new.
    pub metrics: Vec<MetricComparison>,
}

/// One metric's growth before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// Which metric.
    pub metric: Metric,
    /// Growth in the baseline, when it was fitted.
    pub old: Option<Growth>,
    /// Growth now, when it was fitted.
    pub new: Option<Growth>,
    /// How the two compare under [`crate::compare`]'s rule.
    pub shift: Shift,
}

/// The comparison of one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shift {
    /// Significantly higher now.
    Rose,
    /// Significantly lower now.
    Fell,
    /// No significant difference.
    Same,
    /// One side has no fit (or no such metric).
    NotCompared,
}
