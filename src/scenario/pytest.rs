//! `pytest:` workloads: the selection's syntax, checked when the file loads, and its expansion
//! into one scenario per collected test, which needs the project's own interpreter.
//!
//! A selection is what a user would give pytest on the command line to run some tests: node ids,
//! files or folders, and `-k` / `-m` expressions. Paths start from the scenario file's folder;
//! one that is not there is looked for from the pytest rootdir above it (the nearest folder with
//! a pytest configuration), so node ids copied from pytest's output work in a scenario file kept
//! elsewhere in the project. Which tests a selection means is pytest's to say, so the parent asks
//! the project's interpreter once per distinct selection (`src/python/collect_pytest.py`), before
//! any worker starts, and `leakcheck list` and `-k` see the collected tests by name.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Body, Collected, CollectedTest, Scenario, ScenarioError};

/// What runs in the project's interpreter to collect a selection (argv: output file, then
/// pytest's arguments).
const COLLECT: &str = include_str!("../python/collect_pytest.py");

/// Longest a collection may take: importing a large suite takes seconds; minutes mean a hang.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(300);

/// The most of pytest's output an error quotes.
const OUTPUT_LIMIT: usize = 8 * 1024;

/// Files whose presence makes a folder pytest's rootdir, with the text that marks a pytest
/// section in them (`None`: the file alone is enough).
const ROOT_MARKERS: [(&str, Option<&str>); 5] = [
    ("pytest.ini", None),
    (".pytest.ini", None),
    ("pyproject.toml", Some("[tool.pytest")),
    ("tox.ini", Some("[pytest]")),
    ("setup.cfg", Some("[tool:pytest]")),
];

/// Splits and checks a selection; returns pytest's arguments with paths made absolute.
///
/// Only paths or node ids, `-k EXPR` and `-m EXPR` are accepted: any other option changes how
/// pytest runs, which belongs in the project's pytest configuration, read by every run.
pub(crate) fn parse_selection(text: &str, dir: &Path) -> Result<Vec<String>, String> {
    let Some(words) = shlex::split(text) else {
        return Err(format!(
            "cannot split `{text}` into words (an unclosed quote?)"
        ));
    };
    let mut args = Vec::new();
    let mut paths = 0;
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        if word == "-k" || word == "-m" {
            let Some(expr) = words.next() else {
                return Err(format!("`{word}` needs an expression after it"));
            };
            args.extend([word, expr]);
        } else if word.starts_with('-') {
            return Err(format!(
                "`{word}` is not allowed: give paths or node ids, `-k EXPR` or `-m EXPR`, and put \
                 other pytest options in the project's pytest configuration"
            ));
        } else {
            args.push(resolve(&word, dir)?);
            paths += 1;
        }
    }
    if paths == 0 {
        return Err("names no test: give a node id, a file or a folder, e.g. \
                    `tests/test_api.py::test_roundtrip`"
            .to_string());
    }
    Ok(args)
}

/// A path or node id made absolute: from `dir`, else from the pytest rootdir above it.
fn resolve(word: &str, dir: &Path) -> Result<String, String> {
    let (path, rest) = match word.split_once("::") {
        Some((path, rest)) => (path, Some(rest)),
        None => (word, None),
    };
    // `base` is "" for a scenario file named without a folder.
    let absolute = |base: &Path| {
        std::path::absolute(Path::new(".").join(base).join(path))
            .map(|path| super::normalized(&path))
            .map_err(|err| format!("cannot resolve `{path}`: {err}"))
    };
    let here = absolute(dir)?;
    let found = if here.exists() {
        here
    } else {
        match rootdir_above(&here) {
            Some(root) if absolute(&root)?.exists() => absolute(&root)?,
            root => {
                let also = root
                    .map(|root| format!(" nor in the pytest rootdir {}", root.display()))
                    .unwrap_or_default();
                return Err(format!(
                    "`{path}` does not exist in the scenario file's folder ({}){also}",
                    here.parent().unwrap_or(&here).display()
                ));
            }
        }
    };
    let found = found.display().to_string();
    Ok(match rest {
        Some(rest) => format!("{found}::{rest}"),
        None => found,
    })
}

/// The nearest folder at or above `start`'s folder holding a pytest configuration.
fn rootdir_above(start: &Path) -> Option<PathBuf> {
    start.ancestors().skip(1).find_map(|dir| {
        ROOT_MARKERS.iter().find_map(|(file, marker)| {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).ok()?;
            marker
                .is_none_or(|marker| text.contains(marker))
                .then(|| dir.to_path_buf())
        })
    })
}

/// What `collect_pytest.py` writes.
#[derive(Deserialize)]
struct Collection {
    /// pytest's exit status of the collection (0, or 5 for "no tests collected").
    exit: i64,
    /// pytest's version, or `null` when pytest cannot be imported.
    pytest: Option<String>,
    /// pytest's rootdir.
    #[serde(default)]
    rootdir: PathBuf,
    /// The collected tests.
    #[serde(default)]
    items: Vec<Item>,
    /// The text of every failed collection report.
    #[serde(default)]
    errors: Vec<String>,
}

/// One collected test.
#[derive(Deserialize)]
struct Item {
    node_id: String,
    /// The file, relative to the rootdir.
    file: String,
}

/// Replaces every `pytest:` scenario by one scenario per test its selection collects, in the
/// project's interpreter `python`; each distinct selection is collected once.
///
/// A selection that cannot be collected keeps one scenario whose [`Collected`] says why (it
/// becomes that scenario's `error` or `skipped` result: one broken test module never stops the
/// others). Names must stay unique once expanded; a clash is an error of the file.
///
/// `server`, when given, collects a selection in the run's fork server instead of a process of
/// its own (`collect_pytest.py`'s text, or why it could not; then the process collects it).
pub fn expand(
    scenarios: Vec<Scenario>,
    python: &Path,
    server: Option<&ServerCollect<'_>>,
) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let mut cache: HashMap<(Vec<String>, PathBuf), Result<Collection, String>> = HashMap::new();
    let mut expanded = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let Body::Pytest(test) = &scenario.body else {
            expanded.push(scenario);
            continue;
        };
        if test.collected != Collected::Pending {
            expanded.push(scenario);
            continue;
        }
        let key = (test.args.clone(), test.dir.clone());
        let collection = cache.entry(key).or_insert_with(|| {
            server
                .and_then(|server| server(&test.args, &test.dir).ok())
                .filter(|text| !text.is_empty())
                .map_or_else(
                    || collect(python, &test.args, &test.dir),
                    |text| read(&text),
                )
        });
        expanded.extend(one_per_test(&scenario, collection, python));
    }
    let mut seen: HashMap<&str, &Scenario> = HashMap::new();
    let mut errors = Vec::new();
    for scenario in &expanded {
        if let Some(first) = seen.insert(&scenario.name, scenario) {
            errors.push(ScenarioError {
                file: scenario.file.clone(),
                line: Some(scenario.line),
                column: None,
                key: Some("pytest".to_string()),
                message: format!(
                    "scenario name `{}` is used twice once pytest's tests are collected (first \
                     at {}:{}): give one of the scenarios a `name`",
                    scenario.name,
                    first.file.display(),
                    first.line
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(expanded)
    } else {
        Err(errors)
    }
}

/// Collects a selection (pytest's arguments, the folder it runs in) in the run's fork server:
/// the text `collect_pytest.py` writes, or why it could not.
pub type ServerCollect<'a> = dyn Fn(&[String], &Path) -> Result<String, String> + 'a;

/// The scenarios one collection gives a `pytest:` scenario.
fn one_per_test(
    scenario: &Scenario,
    collection: &Result<Collection, String>,
    python: &Path,
) -> Vec<Scenario> {
    let Body::Pytest(test) = &scenario.body else {
        return vec![scenario.clone()];
    };
    let with = |collected: Collected, name: String| {
        let mut one = scenario.clone();
        let mut body = test.clone();
        body.collected = collected;
        one.body = Body::Pytest(body);
        one.name = name;
        one
    };
    let own_name = || {
        if test.named {
            scenario.name.clone()
        } else {
            test.selection.clone()
        }
    };
    let failed = |message: String, output: String| {
        vec![with(Collected::Failed { message, output }, own_name())]
    };
    let collection = match collection {
        Ok(collection) => collection,
        Err(message) => return failed(message.clone(), String::new()),
    };
    let Some(version) = &collection.pytest else {
        let reason = format!(
            "pytest is not installed in {} (install it there, e.g. `{} -m pip install pytest`, \
             or run with --python pointing at the interpreter that has it)",
            python.display(),
            python.display()
        );
        return vec![with(Collected::Skipped { reason }, own_name())];
    };
    if !collection.errors.is_empty() || !matches!(collection.exit, 0 | 5) {
        let mut output = collection.errors.join("\n");
        truncate(&mut output);
        return failed(
            format!(
                "pytest {version} could not collect `{}` (exit status {}; {} collection error(s))",
                test.selection,
                collection.exit,
                collection.errors.len()
            ),
            output,
        );
    }
    if collection.items.is_empty() {
        return failed(
            format!("`{}` selects no test (pytest {version})", test.selection),
            String::new(),
        );
    }
    let single = collection.items.len() == 1;
    collection
        .items
        .iter()
        .map(|item| {
            let name = match (test.named, single) {
                (true, true) => scenario.name.clone(),
                (true, false) => format!("{}[{}]", scenario.name, item.node_id),
                (false, _) => item.node_id.clone(),
            };
            let collected = Collected::Test(CollectedTest {
                node_id: item.node_id.clone(),
                rootdir: collection.rootdir.clone(),
                file: item.file.clone(),
            });
            with(collected, name)
        })
        .collect()
}

/// Runs `collect_pytest.py` with `args` in `dir`; the error says what went wrong in one line.
fn collect(python: &Path, args: &[String], dir: &Path) -> Result<Collection, String> {
    let out = tempfile::NamedTempFile::new().map_err(|err| format!("temporary file: {err}"))?;
    let log = tempfile::tempfile().map_err(|err| format!("temporary file: {err}"))?;
    let log_err = log
        .try_clone()
        .map_err(|err| format!("temporary file: {err}"))?;
    let mut child = Command::new(python)
        .arg("-c")
        .arg(COLLECT)
        .arg(out.path())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", python.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > COLLECT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "collecting the tests took more than {} s: stopped",
                    COLLECT_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(err) => return Err(format!("waiting for {}: {err}", python.display())),
        }
    };
    let mut written = String::new();
    std::fs::File::open(out.path())
        .and_then(|mut file| file.read_to_string(&mut written))
        .map_err(|err| format!("reading the collection: {err}"))?;
    if written.is_empty() {
        return Err(format!(
            "collecting the tests with {} ended ({status}) without a result",
            python.display()
        ));
    }
    read(&written)
}

/// The collection `collect_pytest.py` wrote.
fn read(written: &str) -> Result<Collection, String> {
    serde_json::from_str(written).map_err(|err| format!("reading the collection: {err}"))
}

/// Cuts `text` to [`OUTPUT_LIMIT`] bytes on a character boundary.
fn truncate(text: &mut String) {
    if text.len() > OUTPUT_LIMIT {
        let mut end = OUTPUT_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[…]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_keeps_node_ids_and_expressions_and_makes_paths_absolute() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        std::fs::write(dir.path().join("tests/test_a.py"), "").unwrap();
        let args = parse_selection(
            "tests/test_a.py::test_x[1-a] -k 'api and not slow'",
            dir.path(),
        )
        .unwrap();
        let root = dir.path().display();
        assert_eq!(
            args,
            [
                format!("{root}/tests/test_a.py::test_x[1-a]"),
                "-k".to_string(),
                "api and not slow".to_string()
            ]
        );
    }

    #[test]
    fn a_node_id_from_the_pytest_rootdir_is_found_from_a_scenario_file_below_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[tool.pytest.ini_options]\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("tests")).unwrap();
        std::fs::create_dir_all(dir.path().join("leaks")).unwrap();
        std::fs::write(dir.path().join("tests/test_a.py"), "").unwrap();
        let args = parse_selection("tests/test_a.py::test_x", &dir.path().join("leaks")).unwrap();
        assert_eq!(
            args,
            [format!("{}/tests/test_a.py::test_x", dir.path().display())]
        );
    }

    #[test]
    fn options_other_than_k_and_m_and_missing_paths_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let other = parse_selection(". -x", dir.path()).unwrap_err();
        assert!(other.contains("`-x` is not allowed"), "{other}");
        let missing = parse_selection("tests/nope.py", dir.path()).unwrap_err();
        assert!(
            missing.contains("`tests/nope.py` does not exist"),
            "{missing}"
        );
        let dangling = parse_selection(".  -k", dir.path()).unwrap_err();
        assert!(dangling.contains("`-k` needs an expression"), "{dangling}");
        let none = parse_selection("-k api", dir.path()).unwrap_err();
        assert!(none.contains("names no test"), "{none}");
        let quote = parse_selection("'tests", dir.path()).unwrap_err();
        assert!(quote.contains("unclosed quote"), "{quote}");
    }
}
