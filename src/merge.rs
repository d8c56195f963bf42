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
    /// The same scenario twice in one file: not a file `leakcheck run` wrote.
    #[error("scenario `{name}` is in `{path}` twice: a run never lists a scenario twice")]
    Repeated {
        /// Scenario name.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// Files of different runs: another leakcheck, Python or seed.
    #[error(
        "`{path}` is not a shard of the run of `{first}`: {what} {found}, against {expected} \
         (shards of one run are made by the same leakcheck, Python and --seed)"
    )]
    Unrelated {
        /// Offending file.
        path: PathBuf,
        /// What differs.
        what: &'static str,
        /// Its value there.
        found: String,
        /// The first file.
        first: PathBuf,
        /// Its value in the first file.
        expected: String,
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
    for (path, part) in &parts {
        let mut names = std::collections::BTreeSet::new();
        if let Some(s) = part.scenarios.iter().find(|s| !names.insert(&s.name)) {
            return Err(MergeError::Repeated {
                name: s.name.clone(),
                path: path.clone(),
            });
        }
    }
    let mut parts = parts.into_iter();
    let (first_path, mut merged) = parts.next().ok_or(MergeError::Empty)?;
    let mut owner: BTreeMap<String, PathBuf> = merged
        .scenarios
        .iter()
        .map(|s| (s.name.clone(), first_path.clone()))
        .collect();
    let origin = Origin::of(&merged);
    for (path, part) in parts {
        if let Some((what, found, expected)) = Origin::of(&part).differs_from(&origin) {
            return Err(MergeError::Unrelated {
                path,
                what,
                found,
                first: first_path,
                expected,
            });
        }
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

/// What the shards of one run share: schema 1 records no run id, so a merge checks what it can.
#[derive(Debug, PartialEq)]
struct Origin {
    tool_version: String,
    python: String,
    environment: Option<PathBuf>,
    seed: Option<u64>,
}

impl Origin {
    fn of(results: &RunResults) -> Origin {
        Origin {
            tool_version: results.tool.version.clone(),
            python: results.python.executable.display().to_string(),
            environment: results.python.environment.clone(),
            seed: results
                .scenarios
                .iter()
                .find_map(|s| s.analysis.as_ref().map(|a| a.seed)),
        }
    }

    /// The first difference from `other` as (what, this value, the other's), if any; a seed
    /// missing from either side (no scenario, or an older file) is not a difference.
    fn differs_from(&self, other: &Origin) -> Option<(&'static str, String, String)> {
        if self.tool_version != other.tool_version {
            return Some((
                "leakcheck",
                self.tool_version.clone(),
                other.tool_version.clone(),
            ));
        }
        if self.python != other.python || self.environment != other.environment {
            let show = |o: &Origin| match &o.environment {
                Some(env) => format!("{} ({})", o.python, env.display()),
                None => o.python.clone(),
            };
            return Some(("Python", show(self), show(other)));
        }
        match (self.seed, other.seed) {
            (Some(a), Some(b)) if a != b => Some(("seed", a.to_string(), b.to_string())),
            _ => None,
        }
    }
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
