//! The project's configuration file: `leakcheck.yaml`, or `[tool.leakcheck]` in pyproject.toml,
//! found by walking up from the working directory (the first folder holding either wins).
//!
//! It sets run defaults (paths, report folder, jobs, python, confidence) and scenario defaults.
//! Precedence, lowest first: built-in defaults < configuration file < environment variables
//! (`LEAKCHECK_*`) < command-line flags. clap resolves flags and environment; what it leaves
//! unset is filled from here, once, into a [`RunConfig`] (see [`run`]).

use std::path::{Path, PathBuf};

use crate::scenario::yaml::{self, Document, Node, Pos, Value};
use crate::scenario::{self, ProjectDefaults};

mod run;
pub use run::{
    DEFAULT_CHAIN_TIMEOUT_SECS, DEFAULT_CONFIDENCE, DEFAULT_FRAMES, DEFAULT_REPORT_DIR, RunConfig,
};

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
    /// A problem with the file as a whole.
    #[error("{}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Wrong keys or values, every one, each as `file:line:column: message`.
    #[error("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Defaults {
        /// One per problem, in file order.
        errors: Vec<scenario::ScenarioError>,
    },
}

/// The keys of a configuration, in either file format.
pub(crate) const KEYS: [&str; 6] = [
    "paths",
    "report_dir",
    "jobs",
    "python",
    "confidence",
    "defaults",
];

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
            if let Some(config) = load_toml(&pyproject, true)? {
                return Ok(Some(config));
            }
        }
    }
    Ok(None)
}

/// Reads one configuration file: TOML when its name ends in `.toml` (its `[tool.leakcheck]`
/// table, or for a file other than pyproject.toml its top level when it has none), else YAML.
pub fn load(file: &Path) -> Result<ProjectConfig, ConfigError> {
    let is_toml = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if is_toml {
        let pyproject = file.file_name().is_some_and(|n| n == FILE_NAMES[1]);
        return load_toml(file, pyproject)?.ok_or_else(|| ConfigError::Invalid {
            file: file.to_path_buf(),
            message: "no [tool.leakcheck] table".to_string(),
        });
    }
    let text = read(file)?;
    let located = |pos: Option<Pos>, message: String| ConfigError::Defaults {
        errors: vec![match pos {
            Some(pos) => scenario::ScenarioError::at(file, pos, None, message),
            None => scenario::ScenarioError::in_file(file, message),
        }],
    };
    match yaml::parse(&text) {
        Ok(Document::Node(root)) => check(file, &root, None),
        Ok(Document::Empty) => check(
            file,
            &Node {
                pos: Pos::START,
                value: Value::Map(Vec::new()),
            },
            None,
        ),
        Err(syntax) => Err(located(syntax.pos, syntax.message)),
    }
}

/// Reads a TOML configuration: `[tool.leakcheck]`, or `None` when there is none and `only_tool`
/// (pyproject.toml, which other tools share); otherwise the whole document when there is none.
fn load_toml(file: &Path, only_tool: bool) -> Result<Option<ProjectConfig>, ConfigError> {
    let text = read(file)?;
    let lines = LineIndex::new(&text);
    let document = toml::de::DeTable::parse(&text).map_err(|err| ConfigError::Defaults {
        errors: vec![match err.span() {
            Some(span) => scenario::ScenarioError::at(
                file,
                lines.pos(span.start),
                None,
                format!("invalid TOML: {}", err.message().trim_end()),
            ),
            None => scenario::ScenarioError::in_file(
                file,
                format!("invalid TOML: {}", err.message().trim_end()),
            ),
        }],
    })?;
    let root = toml_node(
        &lines,
        document.span(),
        &toml::de::DeValue::Table(document.into_inner()),
    );
    let tool = lookup(&root, "tool").and_then(|tool| lookup(tool, "leakcheck"));
    match tool {
        Some(table) => check(file, table, Some("[tool.leakcheck]")).map(Some),
        None if only_tool => Ok(None),
        None => check(file, &root, None).map(Some),
    }
}

/// The value of `key` in a mapping node.
fn lookup<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
        .map(|(_, v)| v)
}

/// Byte offsets to 1-based lines and columns (in characters, as libyaml counts them).
struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    fn pos(&self, offset: usize) -> Pos {
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(0, |s| s.chars().count());
        Pos {
            line,
            column: column + 1,
        }
    }
}

/// A TOML value as the positioned tree scenario files are checked on, so that both formats
/// get the same checks and the same `file:line:column` messages.
fn toml_node(
    lines: &LineIndex<'_>,
    span: std::ops::Range<usize>,
    value: &toml::de::DeValue<'_>,
) -> Node {
    use toml::de::DeValue;
    let pos = lines.pos(span.start);
    let value = match value {
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            match i128::from_str_radix(digits.trim_start_matches('+'), i.radix()) {
                Ok(n) => Value::Int(n),
                Err(_) => Value::Str(i.as_str().to_string()),
            }
        }
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            Value::Float(text.parse().unwrap_or(f64::NAN))
        }
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::Str(d.to_string()),
        DeValue::Array(items) => Value::Seq(
            items
                .iter()
                .map(|item| toml_node(lines, item.span(), item.get_ref()))
                .collect(),
        ),
        DeValue::Table(table) => {
            let mut entries: Vec<(Node, Node)> = table
                .iter()
                .map(|(key, value)| {
                    let key_node = Node {
                        pos: lines.pos(key.span().start),
                        value: Value::Str(key.get_ref().to_string()),
                    };
                    (key_node, toml_node(lines, value.span(), value.get_ref()))
                })
                .collect();
            entries.sort_by_key(|(k, _)| k.pos);
            Value::Map(entries)
        }
    };
    Node { pos, value }
}

/// Largest configuration file read; more is not a configuration (`/dev/zero`, a data file).
const MAX_CONFIG_BYTES: u64 = 10 << 20;

fn read(file: &Path) -> Result<String, ConfigError> {
    crate::input::read_text(file, MAX_CONFIG_BYTES).map_err(|err| ConfigError::Io {
        file: file.to_path_buf(),
        source: err.into_io(),
    })
}

/// Checks every key of the configuration mapping `root` and reports every problem at once,
/// each at its place, with the closest key suggested for a typo; `table` names a TOML table
/// for messages. The scenario defaults are checked by the scenario loader itself, so they obey
/// exactly the rules of a scenario file's `defaults:`. Paths are resolved against the file's
/// folder.
fn check(file: &Path, root: &Node, table: Option<&str>) -> Result<ProjectConfig, ConfigError> {
    let mut errors = Vec::new();
    let mut error = |pos: Pos, key: &str, message: String| {
        errors.push(scenario::ScenarioError::at(file, pos, Some(key), message));
    };
    let place = table.map(|t| format!(" in {t}")).unwrap_or_default();
    let entries: &[(Node, Node)] = match &root.value {
        Value::Map(entries) => entries,
        Value::Null => &[],
        other => {
            let message = format!(
                "the configuration must be a mapping of keys, found {}",
                other.describe()
            );
            error(root.pos, "", message);
            &[]
        }
    };
    let folder = file.parent().unwrap_or(Path::new("."));
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { folder.join(p) };
    let mut config = ProjectConfig {
        file: file.to_path_buf(),
        ..ProjectConfig::default()
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut defaults_errors = Vec::new();
    for (key, value) in entries {
        let Value::Str(name) = &key.value else {
            error(
                key.pos,
                "",
                format!("keys must be names, found {}", key.value.describe()),
            );
            continue;
        };
        let Some(known) = KEYS.iter().copied().find(|k| k == name) else {
            let advice = match scenario::closest(name, KEYS) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("expected one of: {}", KEYS.join(", ")),
            };
            error(
                key.pos,
                name,
                format!("unknown key `{name}`{place} ({advice})"),
            );
            continue;
        };
        if seen.contains(&known) {
            error(
                key.pos,
                known,
                format!("key `{known}`{place} appears twice: keep one"),
            );
            continue;
        }
        seen.push(known);
        let text = |node: &Node| match &node.value {
            Value::Str(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(format!("expected a path, found {}", node.value.describe())),
        };
        let problem = match known {
            "paths" => match &value.value {
                Value::Seq(items) => {
                    let mut paths = Vec::new();
                    for item in items {
                        match text(item) {
                            Ok(path) => paths.push(resolve(PathBuf::from(path))),
                            Err(message) => {
                                error(item.pos, known, format!("key `paths`{place}: {message}"))
                            }
                        }
                    }
                    config.paths = paths;
                    None
                }
                Value::Str(_) => text(value)
                    .map(|p| config.paths = vec![resolve(PathBuf::from(p))])
                    .err(),
                other => Some(format!(
                    "expected a list of paths, found {}",
                    other.describe()
                )),
            },
            "report_dir" => text(value)
                .map(|p| config.report_dir = Some(resolve(PathBuf::from(p))))
                .err(),
            "python" => text(value)
                .map(|p| config.python = Some(resolve(PathBuf::from(p))))
                .err(),
            "jobs" => match &value.value {
                // As `-j`: 0 workers would run nothing.
                Value::Int(n) if (1..=i128::from(u16::MAX)).contains(n) => {
                    config.jobs = u16::try_from(*n).ok();
                    None
                }
                Value::Int(n) => Some(format!("must be between 1 and {}, found {n}", u16::MAX)),
                other => Some(format!(
                    "expected a number of workers, found {}",
                    other.describe()
                )),
            },
            "confidence" => {
                let level = match &value.value {
                    Value::Float(f) => Some(*f),
                    Value::Int(i) => Some(*i as f64),
                    _ => None,
                };
                match level {
                    Some(level) if (0.5..=0.9999).contains(&level) => {
                        config.confidence = Some(level);
                        None
                    }
                    Some(_) => Some(format!(
                        "{} is outside 0.5 to 0.9999",
                        value.value.describe()
                    )),
                    None => Some(format!(
                        "expected a level such as 0.99, found {}",
                        value.value.describe()
                    )),
                }
            }
            "defaults" => {
                match scenario::project_defaults(file, value) {
                    Ok(defaults) => config.defaults = Some(defaults),
                    Err(errors) => defaults_errors.extend(errors),
                }
                None
            }
            _ => unreachable!("every key of KEYS has a reader"),
        };
        if let Some(message) = problem {
            error(value.pos, known, format!("key `{known}`{place}: {message}"));
        }
    }
    errors.extend(defaults_errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigError::Defaults { errors })
    }
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
