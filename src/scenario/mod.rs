//! The scenario model: what a leak check runs, read from YAML files and validated up front.
//!
//! This is the first stage of the pipeline. Scenario files are the product's user interface, so
//! everything a user can get wrong is caught here, before any worker starts, and reported as a
//! [`ScenarioError`] naming the file, line, column and key, with a suggestion for typos. The
//! runner only ever sees complete [`Scenario`] values with every default filled in.
//!
//! A file holds either one scenario (a mapping of the keys below) or a `scenarios:` list with an
//! optional `defaults:` mapping whose keys apply to every scenario that does not set them:
//!
//! ```yaml
//! defaults:
//!   iterations: 500
//!   tolerance: { tracemalloc: "64 B" }
//! scenarios:
//!   - name: cache-is-bounded
//!     setup: import mylib
//!     run: mylib.lookup("key")
//!   - name: known-leak
//!     call: mylib.bugs:leak_one
//!     expect: leak
//! ```
//!
//! The keys are listed once, in `keys` (the table every check and message reads), and
//! documented in docs/scenarios.md, which a test holds to that table.
//!
//! The submodules follow the data: [`discover`] finds files, `yaml` parses one into a tree that
//! remembers positions, `keys` and `values` read each key's value on its own, and `load` walks
//! the tree's mappings, merges defaults and applies the rules between keys.

mod discover;
mod error;
mod keys;
mod load;
pub mod pytest;
mod values;
pub(crate) mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metric::Metric;

pub use discover::discover;
pub use error::ScenarioError;
pub use load::ProjectDefaults;

/// Most iterations a scenario may ask for in `iterations`, `max_iterations`, `warmup` and
/// `sample_every` (and `--max-iterations`): 10¹², days of the fastest loop, and small enough
/// that sums of them never overflow.
pub const MAX_ITERATIONS: u64 = 1_000_000_000_000;

/// Most samples one run may take (`(warmup + max_iterations) / sample_every`): both processes
/// keep every sample in memory (the worker allocates room for all of them before it starts) and
/// the reports chart them, so a budget of 10⁵ (5.6 MB a side) keeps that bounded.
pub const MAX_SAMPLES: u64 = 100_000;

/// Longest `timeout` or `iteration_timeout`, in seconds: 30 days. A longer one is a typo, and
/// deadlines beyond what clocks can add would otherwise crash the runner or the worker.
pub const MAX_SECONDS: f64 = 30.0 * 24.0 * 3600.0;

/// The samples a run with these settings may take, when above [`MAX_SAMPLES`].
pub fn samples_over_budget(warmup: u64, max_iterations: u64, sample_every: u64) -> Option<u64> {
    let samples = warmup.saturating_add(max_iterations) / sample_every.max(1);
    (samples > MAX_SAMPLES).then_some(samples)
}

pub(crate) use values::closest;

/// `path` with `.` and `..` components resolved lexically, as Python's `os.path.normpath` does:
/// a `python_path: [..]` entry would otherwise put `leaks/../mylib/db.py` into every report and
/// a GitHub annotation GitHub cannot map. (A `..` after a symbolic link then means the link's
/// parent folder rather than the target's, as it does for Python's own `sys.path` handling.)
pub(crate) fn normalized(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Checks the `defaults` mapping of a project configuration file, read into a positioned tree
/// (from YAML or TOML), with the rules of a scenario file's `defaults:`.
pub(crate) fn project_defaults(
    file: &Path,
    node: &yaml::Node,
) -> Result<ProjectDefaults, Vec<ScenarioError>> {
    load::project_defaults(file, node)
}

/// The code a scenario runs once per iteration, the thing checked for leaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// Python source (`run:`), executed in the namespace `setup` prepared.
    Run(String),
    /// A function to call with no arguments (`call:`), written `package.module:function`;
    /// cheaper per iteration than executing source, and importable by name.
    Call(String),
    /// A test of the user's pytest suite (`pytest:`), run through pytest's own protocol.
    Pytest(PytestTest),
}

/// The 1-based line of the scenario file where each code block's first line is; `None` where
/// the code's lines do not map one to one onto the file's (a folded or quoted multi-line value,
/// a value from the project configuration's `defaults`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeLines {
    /// `setup`'s first line.
    pub setup: Option<usize>,
    /// A `run` workload's first line.
    pub run: Option<usize>,
    /// `teardown`'s first line.
    pub teardown: Option<usize>,
}

/// A `pytest:` workload: a selection of tests until [`pytest::expand`] collects it, then one
/// test per scenario (or the reason none can run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PytestTest {
    /// The selection as the scenario file writes it, e.g. `tests/test_api.py::test_roundtrip`
    /// or `"tests/ -k api"`.
    pub selection: String,
    /// pytest's arguments for the selection: paths made absolute (from the scenario file's
    /// folder, else the pytest rootdir above it), then `-k` and `-m` as written.
    pub args: Vec<String>,
    /// The folder pytest's collection starts from: the scenario file's own.
    pub dir: PathBuf,
    /// Line of the `pytest` key, for errors found when collecting.
    pub line: usize,
    /// Whether the scenario gave its own `name` (collected tests are then `name[node id]`, or
    /// `name` alone for a selection of one test).
    pub named: bool,
    /// Function-scoped fixtures around every iteration, or set up once.
    pub fixtures: Fixtures,
    /// What collecting the selection gave this scenario.
    pub collected: Collected,
}

/// What [`pytest::expand`] made of a `pytest:` scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collected {
    /// Not collected yet: the selection as the file gives it.
    #[default]
    Pending,
    /// One test to run.
    Test(CollectedTest),
    /// Nothing can run, and that is not a failure: pytest is not installed in the interpreter
    /// (as `pytest.importorskip` would say of a missing dependency).
    Skipped {
        /// Why, and what to install.
        reason: String,
    },
    /// Collecting failed: an error in a test module or conftest, or a selection of no test.
    Failed {
        /// One line.
        message: String,
        /// pytest's own output.
        output: String,
    },
}

/// One test pytest collected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectedTest {
    /// pytest's node id, relative to the rootdir, e.g. `tests/test_api.py::test_x[3-a]`.
    pub node_id: String,
    /// pytest's rootdir, where the worker runs the test from.
    pub rootdir: PathBuf,
    /// The test's file, relative to the rootdir: the JUnit class name and the HTML group.
    pub file: String,
}

/// When a `pytest` workload's fixtures are set up (`fixtures:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fixtures {
    /// Function-scoped fixtures are set up and torn down around every iteration; module-,
    /// class- and session-scoped ones once per scenario, as `runtestprotocol` allows.
    #[default]
    Iteration,
    /// Everything is set up once; only the test body repeats.
    Scenario,
}

/// What the scenario's author expects the verdict to be.
///
/// `leak` lets a suite keep a known leak as a regression test of the detector itself (and
/// flags the day the leak gets fixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Memory must stay flat: a detected leak fails the run.
    Pass,
    /// A leak must be detected: flat memory fails the run.
    Leak,
}

/// One validated scenario with every default filled in, ready to hand to a worker.
///
/// It is serializable because the runner sends it to the worker process as JSON; `file` and
/// `line` travel along so that the worker's errors can point back at the scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Unique name across the run; used on the command line, in reports and in filters.
    pub name: String,
    /// Free text for humans, shown in reports.
    pub description: Option<String>,
    /// The scenario file as discovered (relative if the user gave a relative path).
    pub file: PathBuf,
    /// 1-based line where the scenario's mapping starts (its first key).
    pub line: usize,
    /// Where in `file` the code of `setup`, `run` and `teardown` starts, so that tracebacks and
    /// allocation sites give the file's own line numbers.
    #[serde(default)]
    pub code_lines: CodeLines,
    /// Python source run once before warmup, e.g. imports and fixtures.
    pub setup: Option<String>,
    /// The code run on every iteration.
    pub body: Body,
    /// Python source run once after the last iteration.
    pub teardown: Option<String>,
    /// Measured iterations (at least 3).
    pub iterations: u64,
    /// Most measured iterations of an adaptive run (at least `iterations`): rounds continue
    /// until the verdict is clear or this is reached; equal to `iterations` for a fixed count.
    pub max_iterations: u64,
    /// Iterations run before measuring, so caches and lazy imports settle first.
    pub warmup: u64,
    /// Take a sample every this many measured iterations; at least 3 samples are always taken.
    pub sample_every: u64,
    /// Extra `sys.path` entries, absolute, in order (relative ones resolved against the scenario
    /// file's directory, so a suite runs the same from any working directory).
    pub python_path: Vec<PathBuf>,
    /// Wall-clock limit for the whole scenario, in seconds (above 0).
    pub timeout_secs: f64,
    /// Wall-clock limit for one iteration, in seconds, if the scenario sets one.
    pub iteration_timeout_secs: Option<f64>,
    /// Cap on the worker's resident memory in bytes, if the scenario sets one (else the run's).
    pub max_rss: Option<u64>,
    /// Metrics whose growth decides the verdict (never empty).
    pub gate: Vec<Metric>,
    /// Allowed growth per iteration for every metric in [`Metric::ALL`]: the file's values over
    /// [`Metric::default_tolerance`], so later stages never deal with a missing entry.
    pub tolerance: BTreeMap<Metric, f64>,
    /// The verdict the author expects.
    pub expect: Expect,
    /// Labels for selecting scenarios from the command line.
    pub tags: Vec<String>,
    /// This scenario's values from `params:`, set as Python variables before `setup`.
    #[serde(default)]
    pub params: Vec<(String, serde_json::Value)>,
    /// Whether `call:` receives the iteration number as its argument.
    #[serde(default)]
    pub call_with_iteration: bool,
    /// Whether `max_iterations` was set (by the scenario, its file's defaults or
    /// `--max-iterations`) rather than defaulted: a run extended until a bounded cache is full
    /// (see [`crate::holders`]) then never goes past it.
    #[serde(default)]
    pub max_iterations_set: bool,
    /// Why the scenario is not run (`skip:`): its result is `skipped` with this reason, and no
    /// worker starts for it.
    #[serde(default)]
    pub skip: Option<String>,
}

/// Loads and validates every scenario in one file.
///
/// Reports all problems in the file (a YAML syntax error ends reading it), including names
/// used twice within it.
pub fn load_file(path: &Path) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let outcome = load::load(path, None);
    let mut errors = outcome.errors;
    errors.extend(load::duplicate_names(&outcome.names));
    if errors.is_empty() {
        Ok(outcome.scenarios)
    } else {
        Err(errors)
    }
}

/// Discovers scenario files under `paths` and loads them all, in discovery order.
///
/// Every file is read even after one fails, so a single run shows every problem in the suite;
/// names must be unique across all files, and a repeated name is reported at its second
/// definition, pointing back at the first.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    load_paths_with(paths, None)
}

/// [`load_paths`] with the project's defaults from its configuration file applied beneath each
/// file's own `defaults:` (a scenario's own keys win, then its file's, then the project's).
pub fn load_paths_with(
    paths: &[PathBuf],
    project: Option<&ProjectDefaults>,
) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let files: Vec<PathBuf> = discover(paths)?
        .iter()
        .map(|file| crate::input::shown(file))
        .collect();
    let mut scenarios = Vec::new();
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        let outcome = load::load(file, project);
        scenarios.extend(outcome.scenarios);
        names.extend(outcome.names);
        errors.extend(outcome.errors);
    }
    errors.extend(load::duplicate_names(&names));
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
