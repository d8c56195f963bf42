//! `leakcheck merge`: one run's results from the results of its shards (`--partition`), so a
//! suite spread over a CI matrix still gets one report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::results::{RunResults, Summary};

/// Why shard results cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("nothing to merge: give the results.json of each shard")]
    Empty,
    /// The same scenario in two shards: they were not shards of one run.
    #[error(
        "scenario `{name}` is in both `{first}` and `{second}`: shards of one run never overlap"
    )]
    Duplicate {
        /// Scenario name.
        name: String,
        /// First file.
        first: PathBuf,
        /// Second file.
        second: PathBuf,
    },
    /// Different confidence levels make the intervals incomparable.
    #[error(
        "`{path}` was run at confidence {found}, `{first}` at {expected}: rerun with the same --confidence"
    )]
    Confidence {
        /// Offending file.
        path: PathBuf,
        /// Its confidence.
        found: f64,
        /// The first file.
        first: PathBuf,
        /// The first file's confidence.
        expected: f64,
    },
}

/// Combines shard results into one run.
///
/// Scenarios are ordered by file and line, which is the order a single run over the same folder
/// uses; the start time is the earliest shard's, the duration the longest shard's (shards run
/// side by side), `interrupted` is set if any shard was interrupted. Baseline comparisons are
/// dropped: compare the merged run with `leakcheck report --baseline`.
pub fn merge(parts: Vec<(PathBuf, RunResults)>) -> Result<RunResults, MergeError> {
    let mut parts = parts.into_iter();
    let (first_path, mut merged) = parts.next().ok_or(MergeError::Empty)?;
    let mut owner: BTreeMap<String, PathBuf> = merged
        .scenarios
        .iter()
        .map(|s| (s.name.clone(), first_path.clone()))
        .collect();
    for (path, part) in parts {
        if part.confidence != merged.confidence {
            return Err(MergeError::Confidence {
                path,
                found: part.confidence,
                first: first_path,
                expected: merged.confidence,
            });
        }
        for scenario in &part.scenarios {
            if let Some(first) = owner.insert(scenario.name.clone(), path.clone()) {
                return Err(MergeError::Duplicate {
                    name: scenario.name.clone(),
                    first,
                    second: path,
                });
            }
        }
        if part.started_at < merged.started_at {
            merged.started_at = part.started_at;
        }
        merged.duration_secs = merged.duration_secs.max(part.duration_secs);
        merged.interrupted |= part.interrupted;
        if merged.python.version.is_none() {
            merged.python.version = part.python.version;
        }
        merged.scenarios.extend(part.scenarios);
    }
    merged
        .scenarios
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    merged.summary = Summary::of(&merged.scenarios);
    merged.baseline = None;
    Ok(merged)
}

/// Reads each file (with the schema check of `results::read`).
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<(PathBuf, RunResults)>, String> {
    paths
        .iter()
        .map(|path: &PathBuf| {
            crate::results::read(Path::new(path))
                .map(|results| (path.clone(), results))
                .map_err(|err| err.to_string())
        })
        .collect()
}
