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
use super::keys::{self, Context, Given, MIN_SAMPLES, SCENARIO_KEYS, Settings, TOP_LEVEL_KEYS};
use super::values::{Invalid, ParamSet, closest};
use super::yaml::{self, Document, Node, Pos, Value};
use super::{Body, CodeLines, Expect, Fixtures, Scenario};

/// Measured iterations when a scenario does not say.
const DEFAULT_ITERATIONS: u64 = 200;
/// `max_iterations` is this many times `iterations` when a scenario does not say.
const DEFAULT_MAX_FACTOR: u64 = 4;
/// Unmeasured iterations before sampling starts, when a scenario does not say.
const DEFAULT_WARMUP: u64 = 20;
/// Seconds a scenario may run before the runner stops it, when it does not say.
const DEFAULT_TIMEOUT_SECS: f64 = 300.0;

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
        source,
        dir: file.parent().unwrap_or(Path::new("")).to_path_buf(),
        outcome: FileOutcome::default(),
        project: project.map(|p| &p.0),
    };
    checker.document(source);
    let mut outcome = checker.outcome;
    outcome.errors.sort_by_key(|e| (e.line, e.column));
    outcome
}

impl Settings {
    /// Whether the workload key (`run`, `call` or `pytest`) was given but invalid.
    fn body_failed(&self) -> bool {
        keys::same_field("run")
            .iter()
            .any(|key| self.has_failed(key))
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

/// A scenario's iteration counts, its own or the built-in defaults.
struct Counts {
    iterations: u64,
    max_iterations: u64,
    warmup: u64,
    sample_every: u64,
}

/// Walks one file's tree, collecting scenarios and errors.
struct Checker<'f> {
    file: &'f Path,
    /// The file's text, to find where each code block's first line is.
    source: &'f str,
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
        // Never finishes a scenario: no code lines to find.
        source: "",
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
        let entries = self.entries(map, SCENARIO_KEYS, &place, |key| {
            let close = closest(key, TOP_LEVEL_KEYS).filter(|_| kind == Kind::Single)?;
            Some(format!("(did you mean `{close}`?)"))
        });
        let mut s = Settings::default();
        // The keys read so far, to refuse a second key of the same field.
        let mut read: Vec<&'static str> = Vec::new();
        for entry in &entries {
            let key = entry.key;
            if kind == Kind::Defaults
                && let Some(why) = keys::not_in_defaults(key)
            {
                let message = format!("key `{key}` is not allowed in `defaults`: {why}");
                self.error(entry.key_pos, Some(key), message);
                continue;
            }
            if let Some(first) = keys::same_field(key)
                .iter()
                .find(|other| read.contains(other))
            {
                let message = format!("{} sets both `{first}` and `{key}`: keep one", label.0);
                self.error(entry.key_pos, Some(key), message);
                s.failed.push(key);
                continue;
            }
            read.push(key);
            let cx = Context {
                dir: &self.dir,
                line: entry.key_pos.line,
            };
            if let Err(invalid) = s.read(key, entry.key_pos, entry.value, &cx) {
                self.invalid(invalid, key, &place);
            }
        }
        s
    }

    /// Reports a value that failed its check, and every further problem found in it.
    fn invalid(&mut self, mut invalid: Invalid, key: &str, place: &str) {
        let more = std::mem::take(&mut invalid.more);
        for invalid in std::iter::once(invalid).chain(more) {
            let key = invalid.key.as_deref().unwrap_or(key);
            let message = format!("key `{key}` {place}: {}", invalid.text);
            self.error(invalid.pos, Some(key), message);
        }
    }

    /// Records the scenario's names (one per parameter set) for the duplicate check, or
    /// reports a missing name.
    fn name_rules(
        &mut self,
        s: &Settings,
        param_sets: Option<&[ParamSet]>,
        start: Pos,
        label: &Label,
    ) {
        if let Some(name) = &s.name {
            if !s.is_pytest() {
                for suffix in param_suffixes(param_sets) {
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
    }

    /// Checks that there is one workload and that the keys given suit its kind; false when a
    /// problem was reported.
    fn workload_rules(&mut self, s: &Settings, start: Pos, label: &Label) -> bool {
        let mut valid = true;
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
        // Silently ignored it would leave `i` unpassed where the user thought it was passed.
        if let Some(with_i) = &s.call_with_iteration
            && with_i.value
            && let Some(body) = &s.body
            && !matches!(body.value, Body::Call(_))
        {
            let workload = if s.is_pytest() { "pytest" } else { "run" };
            let message = format!(
                "key `call_with_iteration` {}: only a `call` workload is passed the iteration \
                 number (`run` code sees it as `i`); this scenario uses `{workload}`",
                label.place()
            );
            self.error(with_i.at, Some("call_with_iteration"), message);
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
        valid
    }

    /// The iteration counts, the scenario's own or the built-in defaults, or `None` when they
    /// do not fit together (each problem reported).
    fn counts(&mut self, s: &Settings, start: Pos, label: &Label) -> Option<Counts> {
        let mut valid = true;
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
        valid.then_some(Counts {
            iterations,
            max_iterations,
            warmup,
            sample_every,
        })
    }

    /// Applies the rules that involve several keys and the built-in defaults, and keeps the
    /// scenario if everything holds.
    fn finish(&mut self, s: Settings, start: Pos, label: &Label) {
        let param_sets = s.params.as_ref().map(|g| g.value.clone());
        self.name_rules(&s, param_sets.as_deref(), start, label);
        let workload_valid = self.workload_rules(&s, start, label);
        let counts = self.counts(&s, start, label);
        let Some(counts) = counts.filter(|_| workload_valid && s.failed.is_empty()) else {
            return;
        };
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
        let code_lines = CodeLines {
            setup: s
                .setup
                .as_ref()
                .and_then(|g| first_code_line(self.source, g)),
            run: match &body.value {
                Body::Run(_) => first_code_line(self.source, &body),
                _ => None,
            },
            teardown: s
                .teardown
                .as_ref()
                .and_then(|g| first_code_line(self.source, g)),
        };
        let scenario = Scenario {
            name,
            code_lines,
            description: s.description.map(|g| g.value),
            file: self.file.to_path_buf(),
            line: start.line,
            setup: s.setup.map(|g| g.value),
            body: body.value,
            teardown: s.teardown.map(|g| g.value),
            iterations: counts.iterations,
            max_iterations: counts.max_iterations,
            warmup: counts.warmup,
            sample_every: counts.sample_every,
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
            max_iterations_set: s.max_iterations.is_some(),
            skip: s.skip.map(|g| g.value),
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

/// The line of `source` where the code given by `given` starts, when its text is there line for
/// line: a literal block (`run: |`) starts on the line after its indicator, a one-line value
/// on its own line. `None` for a folded or quoted multi-line value (its lines do not map one to
/// one) and for a value from elsewhere (a project configuration's `defaults`), whose position is
/// not in this file: the first line's text must be found where the position says.
fn first_code_line<T: CodeText>(source: &str, given: &Given<T>) -> Option<usize> {
    let code = given.value.code()?;
    let first = code.lines().next().unwrap_or("").trim();
    let at = given.value_at;
    let line = |n: usize| source.lines().nth(n.checked_sub(1)?);
    let header = line(at.line)?;
    let rest: String = header.chars().skip(at.column.saturating_sub(1)).collect();
    if rest.starts_with('|') {
        let next = line(at.line + 1)?;
        (next.trim() == first).then_some(at.line + 1)
    } else if !code.trim_end().contains('\n') && !rest.starts_with('>') {
        rest.contains(first).then_some(at.line)
    } else {
        None
    }
}

/// The source text of a code value: `setup`, `teardown`, or a `run` workload.
trait CodeText {
    fn code(&self) -> Option<&str>;
}

impl CodeText for String {
    fn code(&self) -> Option<&str> {
        Some(self)
    }
}

impl CodeText for Body {
    fn code(&self) -> Option<&str> {
        match self {
            Body::Run(code) => Some(code),
            _ => None,
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
