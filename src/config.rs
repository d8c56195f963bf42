//! The project's configuration file: `leakcheck.yaml`, or `[tool.leakcheck]` in pyproject.toml,
//! found by walking up from the working directory (the first folder holding either wins).
//!
//! It sets run defaults (paths, report folder, jobs, python, confidence) and scenario defaults.
//! Precedence, lowest first: built-in defaults < configuration file < environment variables
//! (`LEAKCHECK_*`) < command-line flags. clap resolves flags and environment; what it leaves
//! unset is filled from here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::scenario::{self, ProjectDefaults};

/// File names looked for in each folder, in this order.
pub const FILE_NAMES: [&str; 2] = ["leakcheck.yaml", "pyproject.toml"];

/// A project configuration, paths already resolved against its folder.
#[derive(Clone, Debug, Default)]
pub struct ProjectConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// Scenario files or folders `leakcheck run` uses when none are given.
    pub paths: Vec<PathBuf>,
    /// Report folder.
    pub report_dir: Option<PathBuf>,
    /// Parallel workers.
    pub jobs: Option<u16>,
    /// Interpreter or venv whose packages scenarios import.
    pub python: Option<PathBuf>,
    /// Confidence level of the intervals.
    pub confidence: Option<f64>,
    /// Scenario keys applied beneath every file's own `defaults:`.
    pub defaults: Option<ProjectDefaults>,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read `{}`: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Wrong keys or values.
    #[error("{}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong, with line and key where known.
        message: String,
    },
    /// Invalid scenario defaults.
    #[error("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Defaults {
        /// One per problem.
        errors: Vec<scenario::ScenarioError>,
    },
}

/// The keys of the configuration, in either file format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw<D> {
    paths: Option<Vec<PathBuf>>,
    report_dir: Option<PathBuf>,
    jobs: Option<u16>,
    python: Option<PathBuf>,
    confidence: Option<f64>,
    defaults: Option<D>,
}

/// Looks for a configuration in `start` and its parents.
pub fn discover(start: &Path) -> Result<Option<ProjectConfig>, ConfigError> {
    for folder in start.ancestors() {
        let yaml = folder.join(FILE_NAMES[0]);
        if yaml.is_file() {
            return load(&yaml).map(Some);
        }
        let pyproject = folder.join(FILE_NAMES[1]);
        if pyproject.is_file() {
            // A pyproject.toml without [tool.leakcheck] does not stop the search.
            if let Some(config) = load_pyproject(&pyproject)? {
                return Ok(Some(config));
            }
        }
    }
    Ok(None)
}

/// Reads one configuration file of either kind.
pub fn load(file: &Path) -> Result<ProjectConfig, ConfigError> {
    if file.file_name().is_some_and(|n| n == "pyproject.toml") {
        return load_pyproject(file)?.ok_or_else(|| ConfigError::Invalid {
            file: file.to_path_buf(),
            message: "no [tool.leakcheck] table".to_string(),
        });
    }
    let text = read(file)?;
    let raw: Raw<serde_yaml_ng::Value> =
        serde_yaml_ng::from_str(&text).map_err(|err| ConfigError::Invalid {
            file: file.to_path_buf(),
            message: match err.location() {
                Some(at) => format!("line {}: {err}", at.line()),
                None => err.to_string(),
            },
        })?;
    finish(file, raw, |value| serde_yaml_ng::to_string(value).ok())
}

fn load_pyproject(file: &Path) -> Result<Option<ProjectConfig>, ConfigError> {
    let text = read(file)?;
    let invalid = |message: String| ConfigError::Invalid {
        file: file.to_path_buf(),
        message,
    };
    let document: toml::Table = toml::from_str(&text).map_err(|err| invalid(err.to_string()))?;
    let Some(table) = document
        .get("tool")
        .and_then(|tool| tool.get("leakcheck"))
        .cloned()
    else {
        return Ok(None);
    };
    let raw: Raw<toml::Value> = table
        .try_into()
        .map_err(|err: toml::de::Error| invalid(format!("[tool.leakcheck]: {err}")))?;
    finish(file, raw, |value| serde_yaml_ng::to_string(value).ok()).map(Some)
}

/// Largest configuration file read; more is not a configuration (`/dev/zero`, a data file).
const MAX_CONFIG_BYTES: u64 = 10 << 20;

fn read(file: &Path) -> Result<String, ConfigError> {
    crate::input::read_text(file, MAX_CONFIG_BYTES).map_err(|err| ConfigError::Io {
        file: file.to_path_buf(),
        source: err.into_io(),
    })
}

/// Resolves paths against the file's folder and checks the scenario defaults with the scenario
/// loader itself, so they obey exactly the rules of a scenario file's `defaults:`.
fn finish<D>(
    file: &Path,
    raw: Raw<D>,
    to_yaml: impl Fn(&D) -> Option<String>,
) -> Result<ProjectConfig, ConfigError> {
    let folder = file.parent().unwrap_or(Path::new("."));
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { folder.join(p) };
    if let Some(confidence) = raw.confidence
        && !(0.5..=0.9999).contains(&confidence)
    {
        return Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            message: format!("key `confidence`: {confidence} is outside 0.5 to 0.9999"),
        });
    }
    let defaults = match &raw.defaults {
        None => None,
        Some(value) => {
            let yaml = to_yaml(value).unwrap_or_default();
            Some(
                scenario::project_defaults(file, &yaml)
                    .map_err(|errors| ConfigError::Defaults { errors })?,
            )
        }
    };
    Ok(ProjectConfig {
        file: file.to_path_buf(),
        paths: raw
            .paths
            .unwrap_or_default()
            .into_iter()
            .map(resolve)
            .collect(),
        report_dir: raw.report_dir.map(resolve),
        jobs: raw.jobs,
        python: raw.python.map(resolve),
        confidence: raw.confidence,
        defaults,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_pyproject_give_the_same_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("a/leakcheck.yaml");
        std::fs::create_dir_all(yaml.parent().unwrap()).unwrap();
        std::fs::write(
            &yaml,
            "paths: [leaks]\nreport_dir: out\njobs: 3\nconfidence: 0.95\ndefaults:\n  iterations: 50\n",
        )
        .unwrap();
        let toml = dir.path().join("b/pyproject.toml");
        std::fs::create_dir_all(toml.parent().unwrap()).unwrap();
        std::fs::write(
            &toml,
            "[project]\nname = \"x\"\n\n[tool.leakcheck]\npaths = [\"leaks\"]\nreport_dir = \"out\"\njobs = 3\nconfidence = 0.95\n\n[tool.leakcheck.defaults]\niterations = 50\n",
        )
        .unwrap();
        for file in [&yaml, &toml] {
            let config = load(file).unwrap();
            let folder = file.parent().unwrap();
            assert_eq!(config.paths, vec![folder.join("leaks")]);
            assert_eq!(config.report_dir, Some(folder.join("out")));
            assert_eq!(config.jobs, Some(3));
            assert_eq!(config.confidence, Some(0.95));
            assert!(config.defaults.is_some());
        }
    }

    #[test]
    fn discovery_walks_up_and_skips_pyproject_without_a_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("leakcheck.yaml"), "jobs: 1\n").unwrap();
        let inner = dir.path().join("pkg/sub");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(
            dir.path().join("pkg/pyproject.toml"),
            "[project]\nname='p'\n",
        )
        .unwrap();
        let found = discover(&inner).unwrap().unwrap();
        assert_eq!(found.file, dir.path().join("leakcheck.yaml"));
    }

    #[test]
    fn bad_configurations_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("leakcheck.yaml");
        std::fs::write(&file, "jobs: 2\nreprot_dir: x\n").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(
            err.contains("leakcheck.yaml") && err.contains("reprot_dir"),
            "{err}"
        );
        std::fs::write(&file, "defaults:\n  iteratons: 5\n").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(
            err.contains("unknown key `iteratons`") && err.contains("iterations"),
            "{err}"
        );
    }
}
