//! From the text of one scenario file to validated [`Scenario`]s, or to every problem in it.
//!
//! The file is parsed once into a positioned tree ([`super::yaml`]), then read key by key: each
//! value is checked on its own as soon as it is read (so a type error points at the value), the
//! `defaults:` mapping is merged in, and the few rules that involve several keys are checked last.
//! Problems are collected rather than returned at the first one, so a user fixes a file in one
//! pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::metric::Metric;

use super::error::ScenarioError;
use super::values::{
    Invalid, ParamSet, closest, parse_bool, parse_call, parse_code, parse_count, parse_expect,
    parse_fixtures, parse_gate, parse_memory, parse_name, parse_params, parse_paths, parse_pytest,
    parse_run, parse_seconds, parse_tags, parse_text, parse_tolerance,
};
use super::yaml::{self, Document, Node, Pos, Value};
use super::{Body, Expect, Fixtures, Scenario};

/// Keys a scenario mapping accepts; also the keys `defaults:` accepts, except `name`.
pub(crate) const SCENARIO_KEYS: [&str; 22] = [
    "name",
    "description",
    "setup",
    "run",
    "call",
    "pytest",
    "fixtures",
    "teardown",
    "iterations",
    "max_iterations",
    "warmup",
    "sample_every",
    "python_path",
    "timeout",
    "iteration_timeout",
    "max_rss",
    "gate",
    "tolerance",
    "expect",
    "tags",
    "params",
    "call_with_iteration",
];

/// The keys that give a scenario its workload; a scenario has exactly one.
const BODY_KEYS: [&str; 3] = ["run", "call", "pytest"];

/// Keys of the top level of a file that lists several scenarios.
const TOP_LEVEL_KEYS: [&str; 2] = ["scenarios", "defaults"];

/// Measured iterations when a scenario does not say.
const DEFAULT_ITERATIONS: u64 = 200;
/// `max_iterations` is this many times `iterations` when a scenario does not say.
const DEFAULT_MAX_FACTOR: u64 = 4;
/// Unmeasured iterations before sampling starts, when a scenario does not say.
const DEFAULT_WARMUP: u64 = 20;
/// Seconds a scenario may run before the runner stops it, when it does not say.
const DEFAULT_TIMEOUT_SECS: f64 = 300.0;
/// Fewest measured iterations, and fewest samples, from which a trend can be fitted.
const MIN_SAMPLES: u64 = 3;

/// A scenario's name and where it is written, kept even when the scenario has other errors so
/// duplicate names are still reported.
#[derive(Clone, Debug)]
pub(crate) struct NameSite {
    /// The scenario's name.
    pub name: String,
    /// The file it is defined in.
    pub file: PathBuf,
    /// Where the name's value is written.
    pub pos: Pos,
}

/// Everything learned from one file: the valid scenarios, all names, and all problems.
#[derive(Debug, Default)]
pub(crate) struct FileOutcome {
    /// Scenarios that passed every check, in file order.
    pub scenarios: Vec<Scenario>,
    /// Every well-formed `name`, including those of scenarios with other errors.
    pub names: Vec<NameSite>,
    /// Every problem found, sorted by position.
    pub errors: Vec<ScenarioError>,
}

/// Reads and validates one scenario file; never stops at the first problem within the file
/// (except a YAML syntax error, after which nothing else can be trusted).
pub(crate) fn load(file: &Path, project: Option<&ProjectDefaults>) -> FileOutcome {
    match read_text(file) {
        Ok(source) => load_source_with(file, &source, project),
        Err(error) => FileOutcome {
            errors: vec![error],
            ..FileOutcome::default()
        },
    }
}

/// Reads a file as UTF-8 text, pointing at the first invalid byte if it is not.
fn read_text(file: &Path) -> Result<String, ScenarioError> {
    let bytes = read_bounded(file)?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        // The prefix is valid UTF-8 by definition, so this cannot fail; stay total anyway.
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        let pos = Pos {
            line: valid.matches('\n').count() + 1,
            column: valid[line_start..].chars().count() + 1,
        };
        ScenarioError::at(
            file,
            pos,
            None,
            "file is not valid UTF-8 text: save it as UTF-8 (this is the first invalid byte)",
        )
    })?;
    // Some Windows editors start UTF-8 files with a byte-order mark, which libyaml (as used by
    // serde_yaml_ng) then reads as the start of a second document.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Largest scenario file read. Scenario files hold settings and code snippets; anything near this
/// size is a mistake (a data file named `.yaml`, `/dev/zero`), and parsing it would cost seconds
/// and hundreds of megabytes before saying so.
const MAX_FILE_BYTES: u64 = 10 << 20;

/// Reads at most [`MAX_FILE_BYTES`] of `file`, refusing anything longer.
fn read_bounded(file: &Path) -> Result<Vec<u8>, ScenarioError> {
    use crate::input::{InputError, read_bounded};
    read_bounded(file, MAX_FILE_BYTES).map_err(|err| match err {
        InputError::TooLarge { size, .. } => {
            let size = size.map_or_else(
                || "more than 10 MiB".to_string(),
                |s| crate::units::format_bytes(s as f64),
            );
            ScenarioError::in_file(
                file,
                format!(
                    "file is too large for a scenario file ({size}; the limit is 10 MiB): keep \
                     data in Python modules or data files that `setup` loads"
                ),
            )
        }
        other => ScenarioError::in_file(file, other.to_string()),
    })
}

/// Validates the text of a scenario file under the project's defaults, if any; `file` is used
/// for messages and `python_path`.
fn load_source_with(file: &Path, source: &str, project: Option<&ProjectDefaults>) -> FileOutcome {
    let mut checker = Checker {
        file,
        dir: file.parent().unwrap_or(Path::new("")).to_path_buf(),
        outcome: FileOutcome::default(),
        project: project.map(|p| &p.0),
    };
    checker.document(source);
    let mut outcome = checker.outcome;
    outcome.errors.sort_by_key(|e| (e.line, e.column));
    outcome
}

/// A value as written in the file, with positions for errors found after merging.
#[derive(Clone, Debug)]
struct Given<T> {
    value: T,
    /// Where the key is written.
    at: Pos,
    /// Where the value is written.
    value_at: Pos,
}

/// The keys one mapping (a scenario or `defaults`) sets, each already checked on its own.
#[derive(Clone, Debug, Default)]
struct Settings {
    name: Option<Given<String>>,
    description: Option<Given<String>>,
    setup: Option<Given<String>>,
    body: Option<Given<Body>>,
    teardown: Option<Given<String>>,
    iterations: Option<Given<u64>>,
    max_iterations: Option<Given<u64>>,
    warmup: Option<Given<u64>>,
    sample_every: Option<Given<u64>>,
    python_path: Option<Given<Vec<PathBuf>>>,
    timeout: Option<Given<f64>>,
    iteration_timeout: Option<Given<f64>>,
    max_rss: Option<Given<u64>>,
    gate: Option<Given<Vec<Metric>>>,
    tolerance: Option<Given<BTreeMap<Metric, f64>>>,
    expect: Option<Given<Expect>>,
    tags: Option<Given<Vec<String>>>,
    params: Option<Given<Vec<ParamSet>>>,
    call_with_iteration: Option<Given<bool>>,
    fixtures: Option<Given<Fixtures>>,
    /// Keys that were present but invalid (already reported): they must not also be reported
    /// as missing, nor checked against other keys.
    failed: Vec<&'static str>,
}

impl Settings {
    /// Fills every key this mapping leaves unset from `defaults`.
    ///
    /// `run`, `call` and `pytest` count as one key: a scenario that sets one ignores the
    /// defaults of all three.
    fn or(self, defaults: &Settings) -> Settings {
        let mut failed = self.failed.clone();
        failed.extend(defaults.failed.iter().filter(|key| !self.sets(key)));
        Settings {
            name: self.name,
            description: self.description.or_else(|| defaults.description.clone()),
            setup: self.setup.or_else(|| defaults.setup.clone()),
            body: self.body.or_else(|| defaults.body.clone()),
            teardown: self.teardown.or_else(|| defaults.teardown.clone()),
            iterations: self.iterations.or_else(|| defaults.iterations.clone()),
            max_iterations: self
                .max_iterations
                .or_else(|| defaults.max_iterations.clone()),
            warmup: self.warmup.or_else(|| defaults.warmup.clone()),
            sample_every: self.sample_every.or_else(|| defaults.sample_every.clone()),
            python_path: self.python_path.or_else(|| defaults.python_path.clone()),
            timeout: self.timeout.or_else(|| defaults.timeout.clone()),
            iteration_timeout: self
                .iteration_timeout
                .or_else(|| defaults.iteration_timeout.clone()),
            max_rss: self.max_rss.or_else(|| defaults.max_rss.clone()),
            gate: self.gate.or_else(|| defaults.gate.clone()),
            tolerance: self.tolerance.or_else(|| defaults.tolerance.clone()),
            expect: self.expect.or_else(|| defaults.expect.clone()),
            tags: self.tags.or_else(|| defaults.tags.clone()),
            params: self.params.or_else(|| defaults.params.clone()),
            call_with_iteration: self
                .call_with_iteration
                .or_else(|| defaults.call_with_iteration.clone()),
            fixtures: self.fixtures.or_else(|| defaults.fixtures.clone()),
            failed,
        }
    }

    /// Whether this mapping gives `key` (validly or not), which hides the default's value.
    fn sets(&self, key: &str) -> bool {
        let given = match key {
            "name" => self.name.is_some(),
            "description" => self.description.is_some(),
            "setup" => self.setup.is_some(),
            "run" | "call" | "pytest" => self.body.is_some() || self.body_failed(),
            "teardown" => self.teardown.is_some(),
            "iterations" => self.iterations.is_some(),
            "max_iterations" => self.max_iterations.is_some(),
            "warmup" => self.warmup.is_some(),
            "sample_every" => self.sample_every.is_some(),
            "python_path" => self.python_path.is_some(),
            "timeout" => self.timeout.is_some(),
            "iteration_timeout" => self.iteration_timeout.is_some(),
            "max_rss" => self.max_rss.is_some(),
            "gate" => self.gate.is_some(),
            "tolerance" => self.tolerance.is_some(),
            "expect" => self.expect.is_some(),
            "tags" => self.tags.is_some(),
            "params" => self.params.is_some(),
            "call_with_iteration" => self.call_with_iteration.is_some(),
            "fixtures" => self.fixtures.is_some(),
            _ => false,
        };
        given || self.has_failed(key)
    }

    fn has_failed(&self, key: &str) -> bool {
        self.failed.contains(&key)
    }

    /// Whether the workload key (`run`, `call` or `pytest`) was given but invalid.
    fn body_failed(&self) -> bool {
        BODY_KEYS.iter().any(|key| self.has_failed(key))
    }

    /// Whether the workload is a `pytest` test.
    fn is_pytest(&self) -> bool {
        matches!(
            &self.body,
            Some(Given {
                value: Body::Pytest(_),
                ..
            })
        )
    }
}

/// Which kind of mapping [`Checker::settings`] reads; they differ in what they allow and hint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The whole file is one scenario: a typo of `scenarios` deserves a hint.
    Single,
    /// An entry of the `scenarios:` list.
    Listed,
    /// The `defaults:` mapping, where `name` makes no sense.
    Defaults,
}

/// Who a message is about: `scenario `x``, `scenario #2`, `the scenario` or `` `defaults` ``.
struct Label(String);

impl Label {
    /// Where a key sits, for "key `k` in scenario `x`: ...".
    fn place(&self) -> String {
        format!("in {}", self.0)
    }
}

/// A key of a mapping that passed the key checks.
struct Entry<'n> {
    key: &'static str,
    key_pos: Pos,
    value: &'n Node,
}

/// Walks one file's tree, collecting scenarios and errors.
struct Checker<'f> {
    file: &'f Path,
    /// The scenario file's directory, which relative `python_path` entries start from.
    dir: PathBuf,
    outcome: FileOutcome,
    /// The project's defaults (from leakcheck.yaml or pyproject.toml), applied under the file's.
    project: Option<&'f Settings>,
}

/// Scenario keys set for a whole project in its configuration file, beneath each file's own
/// `defaults:`.
#[derive(Clone, Debug, Default)]
pub struct ProjectDefaults(Settings);

/// Reads the `defaults` mapping of a project configuration file (given as YAML text; TOML
/// configurations are converted first). `file` names the configuration in messages and is where
/// relative `python_path` entries start from.
pub(crate) fn project_defaults(
    file: &Path,
    node: &Node,
) -> Result<ProjectDefaults, Vec<ScenarioError>> {
    let mut checker = Checker {
        file,
        dir: file.parent().unwrap_or(Path::new("")).to_path_buf(),
        outcome: FileOutcome::default(),
        project: None,
    };
    let settings = match &node.value {
        Value::Map(map) => {
            checker.settings(map, &Label("project `defaults`".into()), Kind::Defaults)
        }
        Value::Null => Settings::default(),
        other => {
            let message = format!(
                "`defaults` must be a mapping of scenario keys, found {}",
                other.describe()
            );
            checker.error(node.pos, Some("defaults"), message);
            Settings::default()
        }
    };
    if checker.outcome.errors.is_empty() {
        Ok(ProjectDefaults(settings))
    } else {
        Err(checker.outcome.errors)
    }
}

impl Checker<'_> {
    fn error(&mut self, pos: Pos, key: Option<&str>, message: impl Into<String>) {
        self.outcome
            .errors
            .push(ScenarioError::at(self.file, pos, key, message));
    }

    fn document(&mut self, source: &str) {
        let node = match yaml::parse(source) {
            Ok(Document::Node(node)) => node,
            Ok(Document::Empty) => {
                let error = ScenarioError::in_file(
                    self.file,
                    "file is empty: expected a scenario or `scenarios:` list",
                );
                self.outcome.errors.push(error);
                return;
            }
            Err(syntax) => {
                let error = match syntax.pos {
                    Some(pos) => ScenarioError::at(self.file, pos, None, syntax.message),
                    None => ScenarioError::in_file(self.file, syntax.message),
                };
                self.outcome.errors.push(error);
                return;
            }
        };
        match &node.value {
            Value::Map(entries) if has_key(entries, "scenarios") => self.several(entries),
            Value::Map(entries) => {
                if let Some((key, _)) = entries.iter().find(|(k, _)| is_key(k, "defaults")) {
                    self.error(
                        key.pos,
                        Some("defaults"),
                        "`defaults` only makes sense next to a `scenarios:` list",
                    );
                }
                let label = peek_name(entries).map_or_else(
                    || Label("the scenario".into()),
                    |n| Label(format!("scenario `{n}`")),
                );
                // `defaults` was reported above; reading it as a scenario key would repeat that.
                let own: Vec<(Node, Node)> = entries
                    .iter()
                    .filter(|(k, _)| !is_key(k, "defaults"))
                    .cloned()
                    .collect();
                let mut settings = self.settings(&own, &label, Kind::Single);
                if let Some(project) = self.project {
                    settings = settings.or(project);
                }
                self.finish(settings, node.pos, &label);
            }
            Value::Seq(_) => self.error(
                node.pos,
                None,
                "expected a scenario or a `scenarios:` list at the top level, found a list \
                 (put the list under `scenarios:`)",
            ),
            other => self.error(
                node.pos,
                None,
                format!(
                    "expected a scenario or a `scenarios:` list at the top level, found {}",
                    other.describe()
                ),
            ),
        }
    }

    /// The `scenarios:` form: an optional `defaults:` mapping and a list of scenarios.
    fn several(&mut self, top: &[(Node, Node)]) {
        let entries = self.entries(top, &TOP_LEVEL_KEYS, "at the top level", |key| {
            SCENARIO_KEYS
                .contains(&key)
                .then(|| "(settings shared by all scenarios go under `defaults:`)".to_string())
        });
        let mut defaults = Settings::default();
        if let Some(entry) = entries.iter().find(|e| e.key == "defaults") {
            match &entry.value.value {
                Value::Map(map) => {
                    defaults = self.settings(map, &Label("`defaults`".into()), Kind::Defaults);
                }
                _ => {
                    let invalid = Invalid::expected(entry.value, "a mapping of scenario keys");
                    self.error(
                        invalid.pos,
                        Some("defaults"),
                        format!("key `defaults`: {}", invalid.text),
                    );
                }
            }
        }
        let Some(entry) = entries.iter().find(|e| e.key == "scenarios") else {
            return;
        };
        let items = match &entry.value.value {
            Value::Seq(items) if items.is_empty() => {
                self.error(
                    entry.key_pos,
                    Some("scenarios"),
                    "`scenarios` is empty: add at least one scenario",
                );
                return;
            }
            Value::Seq(items) => items,
            _ => {
                let invalid = Invalid::expected(entry.value, "a list of scenarios");
                self.error(
                    invalid.pos,
                    Some("scenarios"),
                    format!("key `scenarios`: {}", invalid.text),
                );
                return;
            }
        };
        for (index, item) in items.iter().enumerate() {
            let Value::Map(map) = &item.value else {
                let invalid = Invalid::expected(item, "a mapping of scenario keys");
                let message = format!("entry #{} of `scenarios`: {}", index + 1, invalid.text);
                self.error(invalid.pos, Some("scenarios"), message);
                continue;
            };
            let label = peek_name(map).map_or_else(
                || Label(format!("scenario #{}", index + 1)),
                |n| Label(format!("scenario `{n}`")),
            );
            let mut settings = self.settings(map, &label, Kind::Listed).or(&defaults);
            if let Some(project) = self.project {
                settings = settings.or(project);
            }
            self.finish(settings, item.pos, &label);
        }
    }

    /// Checks the keys of a mapping: text, known, and each given once.
    ///
    /// Unknown keys get the closest known key as a suggestion, else `hint(key)`, else the list
    /// of known keys.
    fn entries<'n>(
        &mut self,
        map: &'n [(Node, Node)],
        known: &[&'static str],
        place: &str,
        hint: impl Fn(&str) -> Option<String>,
    ) -> Vec<Entry<'n>> {
        let mut entries: Vec<Entry<'n>> = Vec::new();
        for (key, value) in map {
            let Value::Str(name) = &key.value else {
                let message = format!("keys must be text, found {} {place}", key.value.describe());
                self.error(key.pos, None, message);
                continue;
            };
            let Some(known_key) = known.iter().find(|k| **k == name) else {
                let advice = match closest(name, known.iter().copied()) {
                    _ if name == "<<" => "(YAML merge keys are not supported: put shared \
                                          settings under `defaults:`)"
                        .to_string(),
                    Some(close) => format!("(did you mean `{close}`?)"),
                    None => hint(name)
                        .unwrap_or_else(|| format!("(expected one of: {})", known.join(", "))),
                };
                self.error(
                    key.pos,
                    Some(name),
                    format!("unknown key `{name}` {place} {advice}"),
                );
                continue;
            };
            if let Some(first) = entries.iter().find(|e| e.key == *known_key) {
                let message = format!(
                    "key `{name}` appears twice {place} (first at line {}): keep one",
                    first.key_pos.line
                );
                self.error(key.pos, Some(name), message);
                continue;
            }
            entries.push(Entry {
                key: known_key,
                key_pos: key.pos,
                value,
            });
        }
        entries
    }

    /// Reads the keys of a scenario (or of `defaults`), checking each value on its own.
    fn settings(&mut self, map: &[(Node, Node)], label: &Label, kind: Kind) -> Settings {
        let place = label.place();
        let entries = self.entries(map, &SCENARIO_KEYS, &place, |key| {
            let close = closest(key, TOP_LEVEL_KEYS).filter(|_| kind == Kind::Single)?;
            Some(format!("(did you mean `{close}`?)"))
        });
        let mut s = Settings::default();
        let mut body_key: Option<&'static str> = None;
        for entry in &entries {
            let failed = &mut s.failed;
            match entry.key {
                "name" if kind == Kind::Defaults => {
                    self.error(
                        entry.key_pos,
                        Some("name"),
                        "key `name` is not allowed in `defaults`: each scenario needs its own name",
                    );
                }
                "name" => s.name = self.field(entry, &place, failed, parse_name),
                "description" => s.description = self.field(entry, &place, failed, parse_text),
                "setup" => s.setup = self.field(entry, &place, failed, parse_code),
                "teardown" => s.teardown = self.field(entry, &place, failed, parse_code),
                "run" | "call" | "pytest" if let Some(first) = body_key => {
                    let message = format!(
                        "{} sets both `{first}` and `{}`: keep one",
                        label.0, entry.key
                    );
                    self.error(entry.key_pos, Some(entry.key), message);
                    failed.push(entry.key);
                }
                "run" => {
                    body_key = Some("run");
                    s.body = self.field(entry, &place, failed, parse_run);
                }
                "call" => {
                    body_key = Some("call");
                    s.body = self.field(entry, &place, failed, parse_call);
                }
                "pytest" => {
                    body_key = Some("pytest");
                    let dir = self.dir.clone();
                    let line = entry.key_pos.line;
                    s.body = self.field(entry, &place, failed, |n| parse_pytest(n, &dir, line));
                }
                "fixtures" => s.fixtures = self.field(entry, &place, failed, parse_fixtures),
                "iterations" => {
                    s.iterations =
                        self.field(entry, &place, failed, |n| parse_count(n, MIN_SAMPLES));
                }
                "max_iterations" => {
                    s.max_iterations =
                        self.field(entry, &place, failed, |n| parse_count(n, MIN_SAMPLES));
                }
                "warmup" => s.warmup = self.field(entry, &place, failed, |n| parse_count(n, 0)),
                "sample_every" => {
                    s.sample_every = self.field(entry, &place, failed, |n| parse_count(n, 1));
                }
                "python_path" => {
                    let dir = self.dir.clone();
                    s.python_path = self.field(entry, &place, failed, |n| parse_paths(n, &dir));
                }
                "timeout" => s.timeout = self.field(entry, &place, failed, parse_seconds),
                "iteration_timeout" => {
                    s.iteration_timeout = self.field(entry, &place, failed, parse_seconds);
                }
                "max_rss" => s.max_rss = self.field(entry, &place, failed, parse_memory),
                "gate" => s.gate = self.field(entry, &place, failed, parse_gate),
                "tolerance" => s.tolerance = self.field(entry, &place, failed, parse_tolerance),
                "expect" => s.expect = self.field(entry, &place, failed, parse_expect),
                "tags" => s.tags = self.field(entry, &place, failed, parse_tags),
                "params" => s.params = self.field(entry, &place, failed, parse_params),
                "call_with_iteration" => {
                    s.call_with_iteration = self.field(entry, &place, failed, parse_bool);
                }
                other => unreachable!("key `{other}` is in SCENARIO_KEYS but has no reader"),
            }
        }
        s
    }

    /// Checks one value with `parse`; on failure reports it and remembers the key as failed.
    fn field<T>(
        &mut self,
        entry: &Entry<'_>,
        place: &str,
        failed: &mut Vec<&'static str>,
        parse: impl FnOnce(&Node) -> Result<T, Invalid>,
    ) -> Option<Given<T>> {
        match parse(entry.value) {
            Ok(value) => Some(Given {
                value,
                at: entry.key_pos,
                value_at: entry.value.pos,
            }),
            Err(mut invalid) => {
                let more = std::mem::take(&mut invalid.more);
                for invalid in std::iter::once(invalid).chain(more) {
                    let key = invalid.key.as_deref().unwrap_or(entry.key);
                    let message = format!("key `{key}` {place}: {}", invalid.text);
                    self.error(invalid.pos, Some(key), message);
                }
                failed.push(entry.key);
                None
            }
        }
    }

    /// Applies the rules that involve several keys and the built-in defaults, and keeps the
    /// scenario if everything holds.
    fn finish(&mut self, s: Settings, start: Pos, label: &Label) {
        let mut valid = true;
        let param_sets = s.params.as_ref().map(|g| g.value.clone());
        if let Some(name) = &s.name {
            if !s.is_pytest() {
                for suffix in param_suffixes(param_sets.as_deref()) {
                    self.outcome.names.push(NameSite {
                        name: format!("{}{suffix}", name.value),
                        file: self.file.to_path_buf(),
                        pos: name.value_at,
                    });
                }
            }
        } else if !s.has_failed("name") && !s.is_pytest() && !s.has_failed("pytest") {
            // A `pytest` scenario is named by its tests' node ids when it has no name.
            let message = format!(
                "{} has no `name`: every scenario needs a unique name",
                label.0
            );
            self.error(start, Some("name"), message);
        }
        if s.body.is_none() && !s.body_failed() {
            self.error(
                start,
                None,
                format!("{} has no `run`, `call` or `pytest`", label.0),
            );
            valid = false;
        }
        if let Some(fixtures) = &s.fixtures
            && !s.is_pytest()
            && !s.body_failed()
        {
            let message = format!(
                "key `fixtures` {}: only a `pytest` workload has fixtures",
                label.place()
            );
            self.error(fixtures.at, Some("fixtures"), message);
            valid = false;
        }
        if let Some(params) = &s.params
            && s.is_pytest()
        {
            let message = format!(
                "key `params` {}: a `pytest` workload takes its parameters from the test's own \
                 `@pytest.mark.parametrize`, one scenario per collected test",
                label.place()
            );
            self.error(params.at, Some("params"), message);
            valid = false;
        }
        let iterations = s
            .iterations
            .as_ref()
            .map_or(DEFAULT_ITERATIONS, |g| g.value);
        let sample_every = match &s.sample_every {
            Some(given)
                if !s.has_failed("iterations") && iterations / given.value < MIN_SAMPLES =>
            {
                let message = format!(
                    "key `sample_every` {}: sampling {iterations} iterations every {} gives {} \
                     samples, and at least {MIN_SAMPLES} are needed (lower `sample_every` or \
                     raise `iterations`)",
                    label.place(),
                    given.value,
                    iterations / given.value,
                );
                self.error(given.at, Some("sample_every"), message);
                valid = false;
                given.value
            }
            Some(given) => given.value,
            None => (iterations / 100).max(1),
        };
        let max_iterations_set = s.max_iterations.is_some();
        let max_iterations = match &s.max_iterations {
            Some(given) if !s.has_failed("iterations") && given.value < iterations => {
                let message = format!(
                    "key `max_iterations` {}: {} is below `iterations` ({iterations}), the minimum \
                     every run makes (set both to the same value for a fixed count)",
                    label.place(),
                    given.value,
                );
                self.error(given.value_at, Some("max_iterations"), message);
                valid = false;
                given.value
            }
            Some(given) => given.value,
            None => iterations.saturating_mul(DEFAULT_MAX_FACTOR),
        };
        let warmup = s.warmup.as_ref().map_or(DEFAULT_WARMUP, |g| g.value);
        if let Some(samples) = super::samples_over_budget(warmup, max_iterations, sample_every)
            && !["iterations", "max_iterations", "warmup", "sample_every"]
                .iter()
                .any(|key| s.has_failed(key))
        {
            // Pointed at the key that set the largest count, as the user wrote it.
            let (at, key) = match (&s.max_iterations, &s.iterations, &s.sample_every) {
                (Some(given), _, _) => (given.value_at, "max_iterations"),
                (None, Some(given), _) => (given.value_at, "iterations"),
                (None, None, Some(given)) => (given.value_at, "sample_every"),
                (None, None, None) => (start, "warmup"),
            };
            let message = format!(
                "key `{key}` {}: {warmup} warmup and up to {max_iterations} measured iterations, \
                 sampled every {sample_every}, take {samples} samples, and at most {} are kept \
                 (raise `sample_every` or lower `max_iterations`)",
                label.place(),
                super::MAX_SAMPLES,
            );
            self.error(at, Some(key), message);
            valid = false;
        }
        if !valid || !s.failed.is_empty() {
            return;
        }
        let Some(mut body) = s.body else {
            return;
        };
        let named = s.name.is_some();
        if let Body::Pytest(test) = &mut body.value {
            test.named = named;
            test.fixtures = s
                .fixtures
                .as_ref()
                .map_or_else(Fixtures::default, |g| g.value);
        }
        let name = match (s.name, &body.value) {
            (Some(name), _) => name.value,
            (None, Body::Pytest(test)) => test.selection.clone(),
            (None, _) => return,
        };
        let mut tolerance: BTreeMap<Metric, f64> = Metric::ALL
            .into_iter()
            .map(|m| (m, m.default_tolerance()))
            .collect();
        tolerance.extend(s.tolerance.map(|g| g.value).unwrap_or_default());
        let scenario = Scenario {
            name,
            description: s.description.map(|g| g.value),
            file: self.file.to_path_buf(),
            line: start.line,
            setup: s.setup.map(|g| g.value),
            body: body.value,
            teardown: s.teardown.map(|g| g.value),
            iterations,
            max_iterations,
            warmup,
            sample_every,
            python_path: s.python_path.map(|g| g.value).unwrap_or_default(),
            timeout_secs: s.timeout.map_or(DEFAULT_TIMEOUT_SECS, |g| g.value),
            iteration_timeout_secs: s.iteration_timeout.map(|g| g.value),
            max_rss: s.max_rss.map(|g| g.value),
            gate: s
                .gate
                .map_or_else(|| Metric::DEFAULT_GATE.to_vec(), |g| g.value),
            tolerance,
            expect: s.expect.map_or(Expect::Pass, |g| g.value),
            tags: s.tags.map(|g| g.value).unwrap_or_default(),
            params: Vec::new(),
            call_with_iteration: s.call_with_iteration.is_some_and(|g| g.value),
            max_iterations_set,
        };
        // One scenario per parameter set, named `name[key=value,...]`.
        match param_sets {
            None => self.outcome.scenarios.push(scenario),
            Some(sets) => {
                for (set, suffix) in sets.iter().zip(param_suffixes(Some(&sets))) {
                    let mut expanded = scenario.clone();
                    expanded.name = format!("{}{suffix}", scenario.name);
                    expanded.params = set.clone();
                    self.outcome.scenarios.push(expanded);
                }
            }
        }
    }
}

/// `[key=value,...]` for each parameter set (one empty suffix without `params`).
fn param_suffixes(sets: Option<&[ParamSet]>) -> Vec<String> {
    match sets {
        None => vec![String::new()],
        Some(sets) => sets
            .iter()
            .map(|set| {
                let parts: Vec<String> = set
                    .iter()
                    .map(|(key, value)| match value {
                        serde_json::Value::String(text) => format!("{key}={text}"),
                        other => format!("{key}={other}"),
                    })
                    .collect();
                format!("[{}]", parts.join(","))
            })
            .collect(),
    }
}

/// Reports a name that appears more than once among `names`, at each later occurrence.
pub(crate) fn duplicate_names(names: &[NameSite]) -> Vec<ScenarioError> {
    let mut first: BTreeMap<&str, &NameSite> = BTreeMap::new();
    let mut errors = Vec::new();
    for site in names {
        match first.get(site.name.as_str()) {
            Some(earlier) => errors.push(ScenarioError::at(
                &site.file,
                site.pos,
                Some("name"),
                format!(
                    "duplicate scenario name `{}` (first defined at {}:{})",
                    site.name,
                    earlier.file.display(),
                    earlier.pos.line
                ),
            )),
            None => {
                first.insert(&site.name, site);
            }
        }
    }
    errors
}

fn is_key(node: &Node, name: &str) -> bool {
    matches!(&node.value, Value::Str(s) if s == name)
}

fn has_key(entries: &[(Node, Node)], name: &str) -> bool {
    entries.iter().any(|(k, _)| is_key(k, name))
}

/// The scenario's name if it is plainly given, to name the scenario in messages about its
/// other keys.
fn peek_name(entries: &[(Node, Node)]) -> Option<&str> {
    entries
        .iter()
        .find(|(k, _)| is_key(k, "name"))
        .and_then(|(_, v)| match &v.value {
            Value::Str(name) if !name.trim().is_empty() && !name.contains(['\n', '\r']) => {
                Some(name.as_str())
            }
            _ => None,
        })
}
