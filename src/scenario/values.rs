//! Checks of single values: each scenario key's value read from the positioned tree on its own,
//! into its typed form or an [`Invalid`] naming where and what is wrong.
//!
//! Nothing here knows which mapping a value sits in; [`super::load`] attaches the key and the
//! scenario to each problem, and applies the rules that involve several keys.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::metric::Metric;
use crate::units::parse_quantity;

use super::yaml::{Node, Pos, Value};
use super::{Body, Collected, Expect, Fixtures, PytestTest};

/// A value that failed its own check: where, which key path (when deeper than the key itself),
/// and what is wrong with it.
pub(super) struct Invalid {
    pub(super) pos: Pos,
    pub(super) key: Option<String>,
    pub(super) text: String,
    /// Further problems of the same value (each entry of a `tolerance` map is checked).
    pub(super) more: Vec<Invalid>,
}

impl Invalid {
    pub(super) fn new(pos: Pos, text: impl Into<String>) -> Self {
        Invalid {
            pos,
            key: None,
            text: text.into(),
            more: Vec::new(),
        }
    }

    /// All of `problems` as one error, or `None` when there are none.
    pub(super) fn all(mut problems: Vec<Invalid>) -> Option<Invalid> {
        if problems.is_empty() {
            return None;
        }
        let mut first = problems.remove(0);
        first.more.extend(problems);
        Some(first)
    }

    /// "expected {what}, found {the value}", with a hint when a scalar only needs quotes.
    pub(super) fn expected(node: &Node, what: &str) -> Self {
        let mut text = format!("expected {what}, found {}", node.value.describe());
        if what.contains("string")
            && matches!(node.value, Value::Bool(_) | Value::Int(_) | Value::Float(_))
        {
            text.push_str(" (put it in quotes to use it as text)");
        }
        Invalid::new(node.pos, text)
    }
}

/// The candidate closest to a misspelt `word`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(&word, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

pub(super) fn parse_text(node: &Node) -> Result<String, Invalid> {
    match &node.value {
        Value::Str(text) => Ok(text.clone()),
        _ => Err(Invalid::expected(node, "a string")),
    }
}

pub(super) fn parse_name(node: &Node) -> Result<String, Invalid> {
    let name = parse_text(node)?;
    if name.trim().is_empty() {
        return Err(Invalid::new(node.pos, "must not be empty"));
    }
    if name.contains(['\n', '\r']) {
        return Err(Invalid::new(node.pos, "must be a single line"));
    }
    // A name reaches C strings (NUL ended them: the worker failed on it), terminals, CI logs
    // and `-k`; control characters have no place in any of them.
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Invalid::new(
            node.pos,
            format!("must not contain control characters, found {c:?}"),
        ));
    }
    Ok(name)
}

/// Python source: text without NUL, which `compile` refuses (the worker failed on it).
pub(super) fn parse_code(node: &Node) -> Result<String, Invalid> {
    let code = parse_text(node)?;
    if code.contains('\0') {
        return Err(Invalid::new(
            node.pos,
            "Python source cannot contain NUL characters: write `\\0` inside a string literal",
        ));
    }
    Ok(code)
}

pub(super) fn parse_run(node: &Node) -> Result<Body, Invalid> {
    let code = parse_code(node)?;
    if code.trim().is_empty() {
        return Err(Invalid::new(
            node.pos,
            "is empty: give the Python code to run each iteration",
        ));
    }
    Ok(Body::Run(code))
}

/// `pytest` selects tests as pytest's command line would (see [`super::pytest`]).
pub(super) fn parse_pytest(node: &Node, dir: &Path, line: usize) -> Result<Body, Invalid> {
    let selection = parse_text(node)?.trim().to_string();
    let args = super::pytest::parse_selection(&selection, dir)
        .map_err(|message| Invalid::new(node.pos, message))?;
    Ok(Body::Pytest(PytestTest {
        selection,
        args,
        dir: std::path::absolute(dir.join(".")).unwrap_or_else(|_| dir.to_path_buf()),
        line,
        named: false,
        fixtures: Fixtures::default(),
        collected: Collected::Pending,
    }))
}

/// `fixtures: iteration` or `fixtures: scenario`.
pub(super) fn parse_fixtures(node: &Node) -> Result<Fixtures, Invalid> {
    match parse_text(node)?.trim() {
        "iteration" => Ok(Fixtures::Iteration),
        "scenario" => Ok(Fixtures::Scenario),
        other => Err(Invalid::new(
            node.pos,
            format!(
                "`{other}` is neither `iteration` (function-scoped fixtures around every \
                 iteration, the default) nor `scenario` (set up once)"
            ),
        )),
    }
}

/// `call` names a function as `dotted.module:dotted.attr`, the entry-point notation.
pub(super) fn parse_call(node: &Node) -> Result<Body, Invalid> {
    let target = parse_text(node)?.trim().to_string();
    let dotted = |part: &str| !part.is_empty() && part.split('.').all(is_identifier);
    match target.split_once(':') {
        Some((module, attr)) if dotted(module) && dotted(attr) => Ok(Body::Call(target)),
        _ => Err(Invalid::new(
            node.pos,
            format!("`{target}` should look like `package.module:function`"),
        )),
    }
}

/// A Python identifier (ASCII or Unicode letters, digits and `_`, not starting with a digit).
pub(super) fn is_identifier(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// A non-negative integer of at least `min`; whole floats such as `1e3` are accepted.
pub(super) fn parse_count(node: &Node, min: u64) -> Result<u64, Invalid> {
    const MAX: u64 = super::MAX_ITERATIONS;
    let value = match node.value {
        Value::Int(i) => u64::try_from(i).ok(),
        Value::Float(f) if f.fract() == 0.0 && (0.0..=9.007_199_254_740_992e15).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    let Some(value) = value else {
        return Err(Invalid::expected(node, "a non-negative integer"));
    };
    if value < min {
        return Err(Invalid::new(
            node.pos,
            format!("must be at least {min}, found {value}"),
        ));
    }
    if value > MAX {
        return Err(Invalid::new(
            node.pos,
            format!("must be at most {MAX} (10^12), found {value}"),
        ));
    }
    Ok(value)
}

pub(super) fn parse_seconds(node: &Node) -> Result<f64, Invalid> {
    let seconds = match &node.value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        // "30 s", "2 min", "1h 30m": what humantime reads, a space allowed before each unit.
        Value::Str(text) => {
            let joined: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            humantime::parse_duration(&joined)
                .map_err(|_| {
                    Invalid::new(
                        node.pos,
                        format!(
                            "must be a number of seconds or a duration such as \"30 s\" or \"2 min\", found {}",
                            node.value.describe()
                        ),
                    )
                })?
                .as_secs_f64()
        }
        _ => return Err(Invalid::expected(node, "a number of seconds")),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(Invalid::new(
            node.pos,
            format!(
                "must be a finite number of seconds above 0, found {}",
                node.value.describe()
            ),
        ));
    }
    if seconds > super::MAX_SECONDS {
        return Err(Invalid::new(
            node.pos,
            format!(
                "must be at most {} seconds (30 days), found {}",
                super::MAX_SECONDS,
                node.value.describe()
            ),
        ));
    }
    Ok(seconds)
}

/// A memory size above zero: a number of bytes or a quantity such as `"512 MiB"`.
pub(super) fn parse_memory(node: &Node) -> Result<u64, Invalid> {
    let bytes = match &node.value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Str(text) => parse_quantity(text, crate::units::Unit::Bytes)
            .map_err(|text| Invalid::new(node.pos, text))?,
        _ => {
            return Err(Invalid::expected(
                node,
                "a number of bytes or a size such as \"512 MiB\"",
            ));
        }
    };
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(Invalid::new(
            node.pos,
            format!("must be a size above 0, found {}", node.value.describe()),
        ));
    }
    Ok(bytes as u64)
}

/// A list of strings; a single string stands for a list of one.
fn parse_strings<'n>(node: &'n Node, what: &str) -> Result<Vec<(&'n Node, &'n str)>, Invalid> {
    let items: Vec<&Node> = match &node.value {
        Value::Str(_) => vec![node],
        Value::Seq(items) => items.iter().collect(),
        _ => return Err(Invalid::expected(node, &format!("a list of {what}"))),
    };
    items
        .into_iter()
        .map(|item| match &item.value {
            Value::Str(text) if !text.trim().is_empty() => Ok((item, text.as_str())),
            Value::Str(_) => Err(Invalid::new(item.pos, "entries must not be empty")),
            _ => Err(Invalid::expected(item, &format!("a list of {what}"))),
        })
        .collect()
}

/// `python_path` entries, resolved against the scenario file's directory and made absolute
/// (without resolving symlinks, so paths read as the user wrote them).
pub(super) fn parse_paths(node: &Node, dir: &Path) -> Result<Vec<PathBuf>, Invalid> {
    let (paths, problems): (Vec<_>, Vec<_>) = parse_strings(node, "directories")?
        .into_iter()
        .map(|(item, text)| {
            let path = std::path::absolute(dir.join(text))
                .map(|path| super::normalized(&path))
                .map_err(|err| {
                    Invalid::new(item.pos, format!("cannot resolve `{text}`: {err}"))
                })?;
            // Python skips a missing folder without a word, and the scenario then fails with
            // ModuleNotFoundError far from the typo; a symlink loop would trip every import.
            match fs::metadata(&path) {
                Err(err) if err.raw_os_error() == Some(libc::ELOOP) => Err(Invalid::new(
                    item.pos,
                    format!(
                        "`{text}` is a circular chain of symbolic links ({}): point it at a real folder",
                        path.display()
                    ),
                )),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(Invalid::new(
                    item.pos,
                    format!(
                        "`{text}` does not exist ({}; relative entries start from the file's \
                         folder)",
                        path.display()
                    ),
                )),
                _ => Ok(path),
            }
        })
        .partition(Result::is_ok);
    // Every entry is checked, and every problem reported.
    match Invalid::all(problems.into_iter().filter_map(Result::err).collect()) {
        Some(invalid) => Err(invalid),
        None => Ok(paths.into_iter().filter_map(Result::ok).collect()),
    }
}

pub(super) fn parse_tags(node: &Node) -> Result<Vec<String>, Invalid> {
    parse_strings(node, "strings")?
        .into_iter()
        .map(|(item, tag)| match tag.chars().find(|c| c.is_control()) {
            // Tags are matched by `-k` and listed, as names are.
            Some(c) => Err(Invalid::new(
                item.pos,
                format!("tags must not contain control characters, found {c:?}"),
            )),
            None => Ok(tag.to_string()),
        })
        .collect()
}

/// A metric by name, suggesting the closest one for a typo.
fn parse_metric(node: &Node, name: &str) -> Result<Metric, Invalid> {
    Metric::from_name(name).ok_or_else(|| {
        let advice = match closest(name, Metric::ALL.map(Metric::name)) {
            Some(close) => format!("did you mean `{close}`?"),
            None => {
                let names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
                format!("expected one of: {}", names.join(", "))
            }
        };
        Invalid::new(node.pos, format!("unknown metric `{name}` ({advice})"))
    })
}

/// The metrics that decide the verdict; repeats are dropped, order is kept.
pub(super) fn parse_gate(node: &Node) -> Result<Vec<Metric>, Invalid> {
    if matches!(&node.value, Value::Seq(items) if items.is_empty()) {
        return Err(Invalid::new(
            node.pos,
            "is empty: list at least one metric, e.g. `[tracemalloc]`",
        ));
    }
    let mut gate = Vec::new();
    for (item, name) in parse_strings(node, "metric names")? {
        let metric = parse_metric(item, name)?;
        if !gate.contains(&metric) {
            gate.push(metric);
        }
    }
    Ok(gate)
}

/// Allowed growth per iteration by metric: a number, or a quantity with a unit for byte metrics.
pub(super) fn parse_tolerance(node: &Node) -> Result<BTreeMap<Metric, f64>, Invalid> {
    let Value::Map(entries) = &node.value else {
        return Err(Invalid::expected(
            node,
            "a mapping of metric name to allowed growth per iteration",
        ));
    };
    let mut tolerance = BTreeMap::new();
    // Every entry is checked, and every problem reported.
    let mut problems = Vec::new();
    for (key, value) in entries {
        match tolerance_entry(key, value, &tolerance) {
            Ok((metric, allowed)) => {
                tolerance.insert(metric, allowed);
            }
            Err(invalid) => problems.push(invalid),
        }
    }
    match Invalid::all(problems) {
        Some(invalid) => Err(invalid),
        None => Ok(tolerance),
    }
}

/// One `metric: allowed` entry of a `tolerance` map, given the entries read before it.
fn tolerance_entry(
    key: &Node,
    value: &Node,
    seen: &BTreeMap<Metric, f64>,
) -> Result<(Metric, f64), Invalid> {
    let Value::Str(name) = &key.value else {
        return Err(Invalid::expected(key, "a metric name"));
    };
    let metric = parse_metric(key, name)?;
    let sub_key = format!("tolerance.{name}");
    let at_value = |text: String| Invalid {
        pos: value.pos,
        key: Some(sub_key.clone()),
        text,
        more: Vec::new(),
    };
    if seen.contains_key(&metric) {
        return Err(Invalid {
            pos: key.pos,
            key: Some(sub_key.clone()),
            text: "appears twice: keep one".to_string(),
            more: Vec::new(),
        });
    }
    let allowed = match &value.value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Str(text) => parse_quantity(text, metric.unit()).map_err(at_value)?,
        _ => {
            let example = match metric.unit() {
                crate::units::Unit::Bytes => "a number of bytes or a quantity such as \"64 B\"",
                crate::units::Unit::Count => "a number",
            };
            return Err(at_value(format!(
                "expected {example}, found {}",
                value.value.describe()
            )));
        }
    };
    if !allowed.is_finite() || allowed < 0.0 {
        return Err(at_value(format!(
            "must be zero or more, found {}",
            value.value.describe()
        )));
    }
    Ok((metric, allowed))
}

pub(super) fn parse_expect(node: &Node) -> Result<Expect, Invalid> {
    match &node.value {
        Value::Str(text) if text == "pass" => Ok(Expect::Pass),
        Value::Str(text) if text == "leak" => Ok(Expect::Leak),
        Value::Str(text) => {
            let advice = closest(text, ["pass", "leak"])
                .map(|close| format!(" (did you mean `{close}`?)"))
                .unwrap_or_default();
            Err(Invalid::new(
                node.pos,
                format!("expected `pass` or `leak`, found `{text}`{advice}"),
            ))
        }
        _ => Err(Invalid::expected(node, "`pass` or `leak`")),
    }
}

/// One combination of parameter values, in the order the file gives the keys.
pub(super) type ParamSet = Vec<(String, serde_json::Value)>;

/// `params:` as a list of mappings (one scenario each) or a mapping of lists (every
/// combination, like pytest's stacked parametrize). Keys become Python variables, so they must
/// be identifiers.
pub(super) fn parse_params(node: &Node) -> Result<Vec<ParamSet>, Invalid> {
    let key_of = |key: &Node| -> Result<String, Invalid> {
        match &key.value {
            Value::Str(name) if is_identifier(name) => Ok(name.clone()),
            _ => Err(Invalid::new(
                key.pos,
                "parameter names must be Python identifiers (they become variables)",
            )),
        }
    };
    let sets = match &node.value {
        Value::Seq(items) if !items.is_empty() => items
            .iter()
            .map(|item| match &item.value {
                Value::Map(entries) if !entries.is_empty() => entries
                    .iter()
                    .map(|(k, v)| Ok((key_of(k)?, to_json(v)?)))
                    .collect::<Result<ParamSet, Invalid>>(),
                _ => Err(Invalid::expected(item, "a mapping of parameter values")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(entries) if !entries.is_empty() => {
            let mut sets: Vec<ParamSet> = vec![Vec::new()];
            for (k, v) in entries {
                let name = key_of(k)?;
                let values: Vec<serde_json::Value> = match &v.value {
                    Value::Seq(values) if !values.is_empty() => {
                        values.iter().map(to_json).collect::<Result<_, _>>()?
                    }
                    _ => return Err(Invalid::expected(v, "a non-empty list of values")),
                };
                let mut combined = Vec::with_capacity(sets.len() * values.len());
                for set in &sets {
                    for value in &values {
                        let mut set = set.clone();
                        set.push((name.clone(), value.clone()));
                        combined.push(set);
                    }
                }
                sets = combined;
            }
            sets
        }
        _ => {
            return Err(Invalid::expected(
                node,
                "a list of mappings, or a mapping of value lists",
            ));
        }
    };
    Ok(sets)
}

/// A YAML value as JSON, to travel to the worker and become a Python value; a value JSON cannot
/// carry as it is (`.inf`, `.nan`, an integer beyond 64 bits) is an error at its place rather
/// than a silent `None` or string.
fn to_json(node: &Node) -> Result<serde_json::Value, Invalid> {
    Ok(match &node.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
            (Ok(small), _) => serde_json::Value::from(small),
            (_, Ok(large)) => serde_json::Value::from(large),
            _ => {
                return Err(Invalid::new(
                    node.pos,
                    format!(
                        "integer `{i}` does not fit in 64 bits, as parameter values must: \
                         write it as a string and convert it in `setup`"
                    ),
                ));
            }
        },
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(number) => serde_json::Value::Number(number),
            None => {
                return Err(Invalid::new(
                    node.pos,
                    format!(
                        "{} cannot be a parameter value: parameters travel as JSON, which has \
                         no infinity or NaN; write it as a string and convert it in `setup` \
                         (`float(x)`)",
                        node.value.describe()
                    ),
                ));
            }
        },
        Value::Str(text) => serde_json::Value::String(text.clone()),
        Value::Seq(items) => {
            serde_json::Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match &k.value {
                        Value::Str(text) => text.clone(),
                        other => to_json(&Node {
                            pos: k.pos,
                            value: other.clone(),
                        })?
                        .to_string(),
                    };
                    Ok((key, to_json(v)?))
                })
                .collect::<Result<_, Invalid>>()?,
        ),
    })
}

pub(super) fn parse_bool(node: &Node) -> Result<bool, Invalid> {
    match &node.value {
        Value::Bool(b) => Ok(*b),
        _ => Err(Invalid::expected(node, "true or false")),
    }
}
