//! The machine-readable result of a run: the versioned schema of `results.json`.
//!
//! Every report renders from [`RunResults`], and `leakcheck report`, `merge` and `--baseline`
//! read it back. Its types are its own (a fit is a [`Fit`], not the statistics' type; the stop
//! is a [`Stop`], not the verdict's; the timings are [`Timings`], not the protocol's; the
//! baseline section is [`Comparison`]), and what reports ask of them that older files lack is
//! worked out here on read ([`ScenarioResult::deciding`], [`ScenarioResult::confidence_of`]).
//! The diagnosis and the holder report are not: they are published as the types the worker's
//! output is decoded into, since mirrors would copy two large trees field by field.
//! Changing a field is a deliberate act, pinned by `tests/results_schema.rs` (which holds every
//! variant of those two as well): bump [`SCHEMA_VERSION`] when a change is not purely additive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diagnosis::Diagnosis;
use crate::holders::HolderReport;
use crate::metric::Metric;
use crate::protocol::{self, Phase};
use crate::scenario::{CollectedTest, Expect};
use crate::stats;
use crate::units::Unit;
use crate::verdict::{self, Call, Verdict};

mod comparison;
pub use comparison::{
    Change, Comparison, ComparisonSummary, MetricComparison, ScenarioComparison, Shift,
};

/// Version of the `results.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run found, in scenario order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResults {
    /// Layout version, see [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The tool that produced the file.
    pub tool: ToolInfo,
    /// The interpreter the scenarios ran in.
    pub python: PythonInfo,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// Wall time of the whole run in seconds.
    pub duration_secs: f64,
    /// The run's nominal two-sided confidence level (`--confidence`): that of the
    /// least-squares intervals, and the level the adaptive looks' shares keep overall. It is
    /// not the level of every interval: each fit records its own (`confidence` beside it).
    pub confidence: f64,
    /// Whether the run was cut short (Ctrl-C); results then cover finished scenarios only.
    pub interrupted: bool,
    /// Counts by verdict.
    pub summary: Summary,
    /// One entry per scenario, in the order they were discovered.
    pub scenarios: Vec<ScenarioResult>,
    /// How this run compares with a previous one (`--baseline`); absent without one. Added in
    /// schema version 1 without a bump: older readers ignore it, older files lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Comparison>,
}

/// Name and version of leakcheck.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Always `leakcheck`.
    pub name: String,
    /// Cargo package version.
    pub version: String,
}

/// The Python that ran the scenarios.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PythonInfo {
    /// `sys.version` of the embedded interpreter, as a worker reported it.
    pub version: Option<String>,
    /// The Python whose packages the scenarios imported (`--python`, `VIRTUAL_ENV`, or the one
    /// leakcheck was built against).
    pub executable: PathBuf,
    /// `sys.prefix` of that environment when it is not the embedded interpreter's own.
    pub environment: Option<PathBuf>,
}

/// Number of scenarios by verdict, and how many were not as expected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// All scenarios run.
    pub total: usize,
    /// Verdict `pass`.
    pub pass: usize,
    /// Verdict `leak`.
    pub leak: usize,
    /// Verdict `inconclusive`.
    pub inconclusive: usize,
    /// Verdict `error`.
    pub error: usize,
    /// Verdict `skipped` (added in schema version 1 without a bump, like `analysis`).
    #[serde(default)]
    pub skipped: usize,
    /// Scenarios whose outcome was not as expected: these fail the CI gate.
    pub failed: usize,
}

impl Summary {
    /// Counts verdicts and failures.
    pub fn of(scenarios: &[ScenarioResult]) -> Summary {
        let mut summary = Summary {
            total: scenarios.len(),
            ..Summary::default()
        };
        for s in scenarios {
            match s.verdict {
                Verdict::Pass => summary.pass += 1,
                Verdict::Leak => summary.leak += 1,
                Verdict::Inconclusive => summary.inconclusive += 1,
                Verdict::Error => summary.error += 1,
                Verdict::Skipped => summary.skipped += 1,
            }
            if !s.ok {
                summary.failed += 1;
            }
        }
        summary
    }
}

/// The outcome of one scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Unique scenario name.
    pub name: String,
    /// The scenario file.
    pub file: PathBuf,
    /// Line of the scenario in its file.
    pub line: usize,
    /// The scenario's `description`.
    pub description: Option<String>,
    /// The scenario's `tags`.
    pub tags: Vec<String>,
    /// pass, leak, inconclusive or error.
    pub verdict: Verdict,
    /// What the scenario declared with `expect`.
    pub expected: Expect,
    /// Whether the verdict is as expected; `false` fails the run.
    pub ok: bool,
    /// For `error`: what went wrong, in one line. `null` otherwise.
    pub error: Option<String>,
    /// The rule that produced the verdict, in words.
    pub reason: String,
    /// Python traceback for exceptions.
    pub traceback: Option<String>,
    /// Measured iterations configured.
    pub iterations: u64,
    /// Warmup iterations configured.
    pub warmup: u64,
    /// Iterations between samples.
    pub sample_every: u64,
    /// Iterations actually completed (warmup included); less than configured on error.
    pub iterations_done: u64,
    /// Wall time of the worker, start to exit.
    pub duration_secs: f64,
    /// Metrics that decide the verdict.
    pub gate: Vec<Metric>,
    /// Per-metric fits and raw samples.
    pub metrics: BTreeMap<Metric, MetricResult>,
    /// Where the worker's time went, when it finished.
    pub timings: Option<Timings>,
    /// Where the memory went and who holds it: for `leak` verdicts, and for every scenario with
    /// `--diagnose`. `null` otherwise.
    pub diagnosis: Option<Diagnosis>,
    /// Tail of what the scenario wrote to stdout.
    pub stdout: String,
    /// Tail of what the scenario wrote to stderr.
    pub stderr: String,
    /// How the verdict was reached: the adaptive run's stop and the robust statistics. Added in
    /// schema version 1 without a bump: older readers ignore it, older files lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// Who held the growth, when a look would have called it a leak: the holders the probe
    /// found, their bounds, and whether the run was extended until they were full (see
    /// [`crate::holders`]). Added in schema version 1 without a bump, like `analysis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holders: Option<HolderReport>,
    /// The pytest test a `pytest:` workload ran: its node id, file and rootdir. Added in schema
    /// version 1 without a bump, like `analysis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pytest: Option<CollectedTest>,
    /// How its worker started: forked from the run's warmed fork server, or spawned as a new
    /// process. `null` when no worker ran. Added in schema version 1 without a bump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_start: Option<WorkerStart>,
    /// Why the worker did not run the scenario to its end, as facts (`kind` and its fields);
    /// `error` says the same in a sentence. Absent when it did. Added in schema version 1
    /// without a bump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// Why a worker stopped before the end of its scenario, in results.json: `{"kind":
/// "timed_out", "phase": "measure", "iteration": 120, "limit_secs": 300.0}`. Phases are named
/// as in the worker's protocol: `prepare` (start-up), `setup`, `warmup`, `measure` (the run),
/// `trace`, `diagnose`, `teardown`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// Scenario code raised a Python exception (or its pytest test failed or did not collect).
    Exception {
        /// Where.
        phase: Phase,
        /// Which iteration, in warmup and the run.
        iteration: Option<u64>,
        /// `Type: message`, one line.
        message: String,
    },
    /// The workload skipped itself (a pytest skip or xfail, or pytest missing).
    Skipped {
        /// Where.
        phase: Phase,
        /// Which iteration.
        iteration: Option<u64>,
        /// pytest's reason.
        reason: String,
    },
    /// The worker died without reporting: a signal, `os._exit`, an abort.
    Crashed {
        /// The phase it was last seen in.
        phase: Phase,
        /// Iterations completed when last heard of.
        iteration: u64,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// Its exit code, if it exited.
        exit_code: Option<i32>,
    },
    /// The scenario went over its `timeout`.
    TimedOut {
        /// The phase it was in.
        phase: Phase,
        /// Iterations completed.
        iteration: u64,
        /// The limit.
        limit_secs: f64,
    },
    /// One iteration went over `iteration_timeout`.
    IterationTimedOut {
        /// The phase it was in.
        phase: Phase,
        /// The iteration that did not finish.
        iteration: u64,
        /// The limit.
        limit_secs: f64,
    },
    /// The worker (or its subprocesses) went over the memory cap: verdict `leak` while
    /// iterating, `error` in setup or teardown.
    MemoryCap {
        /// The phase it was in.
        phase: Phase,
        /// The iteration, when known.
        iteration: Option<u64>,
        /// Resident bytes seen.
        resident: u64,
        /// The cap in bytes.
        cap: u64,
        /// Whether the figure is the process group's, subprocesses included.
        group: bool,
    },
    /// leakcheck itself was interrupted.
    Interrupted,
    /// The scenario sent leakcheck a stopping signal, and was stopped for it.
    SignalledLeakcheck {
        /// The phase it was in.
        phase: Phase,
        /// The signal's number.
        signal: i32,
    },
    /// The worker could not be started.
    Spawn {
        /// Why.
        reason: String,
    },
}

/// How a scenario's worker process started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStart {
    /// Forked from the run's fork server, which had booted CPython and imported the run's
    /// pytest suites.
    Forked,
    /// Started as a new process (`--spawn`, a run of one scenario, or a server that could not
    /// serve).
    Spawned,
}

impl ScenarioResult {
    /// The two-sided confidence of `metric`'s interval as reports state it (the figure the
    /// verdict used, see [`ScenarioResult::deciding`]): the
    /// level its fit recorded, 99.5 % at the first look of a default adaptive run. Files written
    /// before fits recorded it get the level the run used there: the deciding look's, the run's
    /// `confidence` for tracemalloc judged on its traced window and for least squares.
    pub fn confidence_of(&self, metric: Metric, run_confidence: f64) -> f64 {
        let recorded = match self.analysis_of(metric).and_then(|a| a.robust.as_ref()) {
            Some(robust) => robust.confidence,
            None => self.metrics.get(&metric).and_then(|m| m.confidence),
        };
        let windowed =
            metric == Metric::Tracemalloc && !crate::sampling::traced_throughout(&self.gate);
        recorded.unwrap_or(match &self.analysis {
            Some(analysis) if !windowed => analysis.stop.confidence,
            _ => run_confidence,
        })
    }

    /// Whether the run went on until bounded holders were full, and was judged after.
    pub fn waited_for_holders(&self) -> bool {
        self.holders
            .as_ref()
            .is_some_and(|h| matches!(h.outcome, crate::holders::Outcome::Saturated { .. }))
    }

    /// The robust analysis of one metric at the deciding look, if the results have one (files
    /// written before robust fits existed do not).
    pub fn analysis_of(&self, metric: Metric) -> Option<&MetricAnalysis> {
        self.analysis.as_ref().and_then(|a| a.metrics.get(&metric))
    }

    /// The growth the verdict used for `metric` (see [`MetricResult::deciding`]), when it was
    /// measured and fitted.
    pub fn deciding(&self, metric: Metric) -> Option<Growth> {
        self.metrics
            .get(&metric)?
            .deciding(self.analysis_of(metric))
    }
}

/// A fitted growth per iteration and its confidence interval: the figure a report states and a
/// baseline comparison compares (see [`MetricResult::deciding`]), whichever fit it came from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Growth per iteration.
    pub slope: f64,
    /// Lower end of the interval.
    pub ci_low: f64,
    /// Upper end of the interval.
    pub ci_high: f64,
}

/// The sequential run and the robust statistics behind a verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Analysis {
    /// The most measured iterations the run could make (`max_iterations`).
    pub max_iterations: u64,
    /// Where measuring stopped and why: `reason` (`decided`, `max_iterations`,
    /// `incomplete`), `measured_iterations`, `look` (from 1) of `looks`, and the two-sided
    /// `confidence` spent at that look.
    pub stop: Stop,
    /// `PYTHONHASHSEED` and `random` seed of the worker.
    pub seed: u64,
    /// Per metric: the robust fits the verdict used and notes on the series' shape.
    pub metrics: BTreeMap<Metric, MetricAnalysis>,
}

/// One metric's robust statistics at the deciding look.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricAnalysis {
    /// Theil–Sen slope, its interval at the look's confidence, the Mann–Kendall score and
    /// one-sided p-value, the autocorrelation factor, over all measured samples.
    pub robust: Option<Fit>,
    /// The same over the last half of the measured samples.
    pub tail: Option<Fit>,
    /// Whether the floor rose in each of the last two quarters (`null`: under 8 samples).
    pub persistent: Option<bool>,
    /// Growth that stopped: `until` (iteration) and `growth` (total), for a plateau.
    pub plateau: Option<Plateau>,
    /// For a metric that swings but falls back to a flat level: the robust fit of the floors
    /// (lower quartiles) of 16 blocks of the run, whose interval lies within the tolerance.
    pub floor: Option<Fit>,
    /// The plateau in words, e.g. "rss grew 180 KiB until iteration 240, then flat".
    pub note: Option<String>,
}

/// A robust (Theil–Sen) fit as results.json publishes it. The schema's own type rather than
/// [`stats::RobustFit`], so that the statistics can rename or regroup their fields without
/// changing a public format: `From<&stats::RobustFit>` is the one place the two meet.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// Theil–Sen slope (median pairwise growth per iteration).
    pub slope: f64,
    /// Lower end of the slope's interval.
    pub ci_low: f64,
    /// Upper end of the slope's interval.
    pub ci_high: f64,
    /// Median of `value − slope · iteration`.
    pub intercept: f64,
    /// Mann–Kendall normal score (positive: rising).
    pub mk_z: f64,
    /// One-sided Mann–Kendall p-value of a rising trend.
    pub mk_p: f64,
    /// Hamed–Rao autocorrelation factor applied to Var(S) (1 = independent samples).
    pub inflation: f64,
    /// Samples in the window.
    pub n: usize,
    /// First iteration of the window.
    pub from: f64,
    /// Last iteration of the window.
    pub to: f64,
    /// Two-sided confidence level of `ci_low..ci_high`: the look's that fitted it (99.5 % at
    /// the first look of a default adaptive run), the run's for tracemalloc judged on its traced
    /// window. The level is the fit's because it differs from look to look, and a report that
    /// labels the interval must name this one, not the run's nominal level. Absent in files
    /// written before it was recorded (added in schema version 1 without a bump); see
    /// [`ScenarioResult::confidence_of`] for those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

impl From<&stats::RobustFit> for Fit {
    fn from(fit: &stats::RobustFit) -> Fit {
        Fit {
            slope: fit.slope,
            ci_low: fit.ci_low,
            ci_high: fit.ci_high,
            intercept: fit.intercept,
            mk_z: fit.mk_z,
            mk_p: fit.mk_p,
            inflation: fit.inflation,
            n: fit.n,
            from: fit.from,
            to: fit.to,
            confidence: Some(fit.confidence),
        }
    }
}

/// Growth that stopped, as results.json publishes it (the schema's own type, like [`Fit`]):
/// the series rose by `growth` until iteration `until`, then stayed flat.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Iteration where the growth stopped.
    pub until: f64,
    /// How much the series grew from its first sample up to `until`.
    pub growth: f64,
}

impl From<&stats::Plateau> for Plateau {
    fn from(plateau: &stats::Plateau) -> Plateau {
        Plateau {
            until: plateau.until,
            growth: plateau.growth,
        }
    }
}

/// Where measuring stopped and why, as results.json publishes it (the schema's own type rather
/// than [`verdict::Stop`], like [`Fit`]: `From<&verdict::Stop>` is the one place the two meet).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// Why.
    pub reason: StopReason,
    /// Measured iterations the verdict is based on.
    pub measured_iterations: u64,
    /// Which look decided, from 1.
    pub look: usize,
    /// How many looks the schedule had.
    pub looks: usize,
    /// Two-sided confidence used at that look.
    pub confidence: f64,
}

impl From<&verdict::Stop> for Stop {
    fn from(stop: &verdict::Stop) -> Stop {
        Stop {
            reason: stop.reason.into(),
            measured_iterations: stop.measured_iterations,
            look: stop.look,
            looks: stop.looks,
            confidence: stop.confidence,
        }
    }
}

/// Why a run stopped measuring, as results.json names it. A reason the verdict adds has to be
/// given a name here (the conversion below does not compile until it is): a deliberate act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Pass or leak decided at the minimum or in a later round.
    Decided,
    /// `max_iterations` reached without a decision.
    MaxIterations,
    /// The samples end before the first look (the scenario failed or was cut short).
    Incomplete,
}

impl From<verdict::StopReason> for StopReason {
    fn from(reason: verdict::StopReason) -> StopReason {
        match reason {
            verdict::StopReason::Decided => StopReason::Decided,
            verdict::StopReason::MaxIterations => StopReason::MaxIterations,
            verdict::StopReason::Incomplete => StopReason::Incomplete,
        }
    }
}

/// Where a worker's time went, in seconds, as results.json publishes it: the schema's own type
/// rather than the protocol's [`protocol::Timings`], so that the worker's message can change
/// without changing a public format (`From<&protocol::Timings>` is where the two meet).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Interpreter start-up and preparation.
    pub prepare: f64,
    /// The `setup` code.
    pub setup: f64,
    /// Warmup iterations, sampling included.
    pub warmup: f64,
    /// Measured iterations, sampling excluded.
    pub iterations: f64,
    /// Taking samples (collections and metric reads).
    pub sampling: f64,
    /// The traced window after the measured run: its iterations and samples. Defaults to 0 so
    /// that results.json files written before it existed still load (added in schema version 1
    /// without a bump).
    #[serde(default)]
    pub trace: f64,
    /// The diagnosis window: its iterations, checkpoints and chain search. Defaults to 0 so
    /// that results.json files written before it existed still load (`--baseline`, `report`).
    #[serde(default)]
    pub diagnosis: f64,
    /// The `teardown` code.
    pub teardown: f64,
}

impl From<&protocol::Timings> for Timings {
    fn from(timings: &protocol::Timings) -> Timings {
        Timings {
            prepare: timings.prepare,
            setup: timings.setup,
            warmup: timings.warmup,
            iterations: timings.iterations,
            sampling: timings.sampling,
            trace: timings.trace,
            diagnosis: timings.diagnosis,
            teardown: timings.teardown,
        }
    }
}

/// One metric's growth per iteration and the samples it was fitted on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricResult {
    /// Bytes or count.
    pub unit: Unit,
    /// Least-squares growth per iteration, for transparency (the verdict uses the robust fit in
    /// the scenario's `analysis`); `null` when it could not be fitted.
    pub slope: Option<f64>,
    /// Lower end of the slope's confidence interval.
    pub ci_low: Option<f64>,
    /// Upper end of the slope's confidence interval.
    pub ci_high: Option<f64>,
    /// Two-sided confidence level of that interval: the run's nominal `confidence` (least
    /// squares is fitted once, over the whole window, not per look). Absent without a fit and
    /// in files written before it was recorded (added in schema version 1 without a bump).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Standard error of the slope.
    pub stderr: Option<f64>,
    /// The least-squares line's value at iteration 0.
    pub intercept: Option<f64>,
    /// Allowed growth per iteration.
    pub tolerance: f64,
    /// Whether the metric takes part in the verdict.
    pub gated: bool,
    /// How the interval compares with the tolerance.
    pub call: Call,
    /// Measured samples, `[iteration, value]`.
    pub samples: Vec<(u64, f64)>,
    /// Samples taken during warmup (and right after setup), not fitted.
    pub warmup_samples: Vec<(u64, f64)>,
}

impl MetricResult {
    /// The growth the verdict used: the robust (Theil–Sen) fit of the scenario's `analysis`
    /// (this metric's entry, `analysis`) when it has one, else least squares (results written
    /// before robust fits existed). Reports state it and comparisons compare it, so both speak
    /// of one figure; it is worked out here, on read, because older files lack the robust fit.
    pub fn deciding(&self, analysis: Option<&MetricAnalysis>) -> Option<Growth> {
        if let Some(robust) = analysis.and_then(|a| a.robust.as_ref()) {
            return Some(Growth {
                slope: robust.slope,
                ci_low: robust.ci_low,
                ci_high: robust.ci_high,
            });
        }
        Some(Growth {
            slope: self.slope?,
            ci_low: self.ci_low?,
            ci_high: self.ci_high?,
        })
    }
}

/// Why a saved `results.json` cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be opened or read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Not JSON, or not the shape of a leakcheck results file.
    #[error("`{path}` is not a leakcheck results file: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where and what the parser found.
        source: serde_json::Error,
    },
    /// A results file of a layout this version does not read.
    #[error(
        "`{path}` has schema_version {found}; this leakcheck reads version {SCHEMA_VERSION} \
         (re-run the scenarios with this version, or use the leakcheck that wrote the file)"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
    },
}

/// Largest results file [`read`] takes (a run of 100 scenarios writes a few MiB); more is not
/// a results file (`/dev/zero`, a log) and is refused after reading this much.
pub const MAX_READ_BYTES: u64 = 256 << 20;

/// Reads a `results.json` written by `leakcheck run`, checking its `schema_version` first so that
/// a file from another version is refused with that reason rather than a missing-field error.
pub fn read(path: &Path) -> Result<RunResults, ReadError> {
    let text = crate::input::read_text(path, MAX_READ_BYTES).map_err(|err| ReadError::Io {
        path: path.to_path_buf(),
        source: err.into_io(),
    })?;
    let invalid = |source| ReadError::Invalid {
        path: path.to_path_buf(),
        source,
    };
    #[derive(Deserialize)]
    struct Versioned {
        schema_version: u64,
    }
    let versioned: Versioned = serde_json::from_str(&text).map_err(invalid)?;
    if versioned.schema_version != u64::from(SCHEMA_VERSION) {
        return Err(ReadError::Version {
            path: path.to_path_buf(),
            found: versioned.schema_version,
        });
    }
    serde_json::from_str(&text).map_err(invalid)
}

/// Results made by hand, for the tests of the modules that read them.
#[cfg(test)]
pub(crate) mod examples {
    use std::collections::BTreeMap;

    use super::*;
    use crate::verdict::Call;

    /// A finished scenario whose only metric, tracemalloc, grew `slope ± half_width` per
    /// iteration.
    pub fn scenario(name: &str, verdict: Verdict, tracemalloc: (f64, f64)) -> ScenarioResult {
        let (slope, half_width) = tracemalloc;
        let metric = MetricResult {
            unit: Unit::Bytes,
            slope: Some(slope),
            ci_low: Some(slope - half_width),
            ci_high: Some(slope + half_width),
            confidence: Some(0.99),
            stderr: Some(half_width / 3.0),
            intercept: Some(1000.0),
            tolerance: 8.0,
            gated: true,
            call: Call::Within,
            samples: Vec::new(),
            warmup_samples: Vec::new(),
        };
        ScenarioResult {
            name: name.to_string(),
            file: "s.yaml".into(),
            line: 1,
            description: None,
            tags: Vec::new(),
            verdict,
            expected: Expect::Pass,
            ok: verdict != Verdict::Leak,
            error: None,
            reason: String::new(),
            traceback: None,
            iterations: 100,
            warmup: 10,
            sample_every: 1,
            iterations_done: 110,
            duration_secs: 0.1,
            gate: vec![Metric::Tracemalloc],
            metrics: BTreeMap::from([(Metric::Tracemalloc, metric)]),
            timings: None,
            diagnosis: None,
            stdout: String::new(),
            stderr: String::new(),
            analysis: None,
            holders: None,
            pytest: None,
            worker_start: None,
            failure: None,
        }
    }

    /// A run of `scenarios`.
    pub fn run(scenarios: Vec<ScenarioResult>) -> RunResults {
        RunResults {
            schema_version: crate::results::SCHEMA_VERSION,
            tool: ToolInfo {
                name: "leakcheck".into(),
                version: "0.0.0".into(),
            },
            python: PythonInfo {
                version: None,
                executable: "python3".into(),
                environment: None,
            },
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_secs: 1.0,
            confidence: 0.99,
            interrupted: false,
            summary: Summary::of(&scenarios),
            scenarios,
            baseline: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `examples::scenario` with an analysis whose tracemalloc and rss fits are `robust`,
    /// decided at a first look of 99.5 %.
    fn analysed(robust: Fit) -> ScenarioResult {
        let mut s = examples::scenario("s", Verdict::Pass, (0.0, 1.0));
        s.gate = vec![Metric::Rss];
        let stats = MetricAnalysis {
            robust: Some(robust),
            tail: None,
            persistent: None,
            plateau: None,
            floor: None,
            note: None,
        };
        s.analysis = Some(Analysis {
            max_iterations: 800,
            stop: Stop {
                reason: StopReason::Decided,
                measured_iterations: 200,
                look: 1,
                looks: 4,
                confidence: 0.995,
            },
            seed: 0,
            metrics: BTreeMap::from([(Metric::Tracemalloc, stats.clone()), (Metric::Rss, stats)]),
        });
        s
    }

    /// A scenario without an analysis, its least-squares interval at `confidence`.
    fn least_squares(confidence: Option<f64>) -> ScenarioResult {
        let mut s = examples::scenario("plain", Verdict::Pass, (0.0, 1.0));
        if let Some(m) = s.metrics.get_mut(&Metric::Tracemalloc) {
            m.confidence = confidence;
        }
        s
    }

    const OLD_FIT: &str = r#"{"slope": 0.0, "ci_low": -1.0, "ci_high": 1.0, "intercept": 5.0,
        "mk_z": 0.0, "mk_p": 0.5, "inflation": 1.0, "n": 100, "from": 21.0, "to": 220.0}"#;

    #[test]
    fn an_interval_is_labelled_with_the_level_its_fit_recorded() {
        let mut fit: Fit = serde_json::from_str(OLD_FIT).unwrap();
        fit.confidence = Some(0.998);
        let s = analysed(fit);
        assert_eq!(s.confidence_of(Metric::Rss, 0.99), 0.998);
        assert_eq!(s.confidence_of(Metric::Tracemalloc, 0.99), 0.998);
        // Least squares states its own, the run's nominal level.
        assert_eq!(
            least_squares(Some(0.95)).confidence_of(Metric::Tracemalloc, 0.99),
            0.95
        );
    }

    #[test]
    fn a_fit_written_before_it_recorded_its_level_loads_and_gets_the_runs() {
        let fit: Fit = serde_json::from_str(OLD_FIT).unwrap();
        assert_eq!(fit.confidence, None);
        assert!(
            !serde_json::to_string(&fit).unwrap().contains("confidence"),
            "written back as it was read"
        );
        let s = analysed(fit);
        // The deciding look's level, except tracemalloc judged on its traced window.
        assert_eq!(s.confidence_of(Metric::Rss, 0.99), 0.995);
        assert_eq!(s.confidence_of(Metric::Tracemalloc, 0.99), 0.99);
        assert_eq!(
            least_squares(None).confidence_of(Metric::Tracemalloc, 0.9),
            0.9
        );
    }

    #[test]
    fn a_fit_keeps_the_statistics_figures_and_their_level() {
        let points: Vec<(f64, f64)> = (0..50)
            .map(|i| (f64::from(i), 3.0 * f64::from(i)))
            .collect();
        let stats = crate::stats::fit_robust(&points, 0.995).unwrap();
        let fit = Fit::from(&stats);
        assert_eq!((fit.slope, fit.ci_low, fit.ci_high), (3.0, 3.0, 3.0));
        assert_eq!((fit.n, fit.from, fit.to), (50, 0.0, 49.0));
        assert_eq!(fit.confidence, Some(0.995));
    }

    #[test]
    fn a_stop_and_timings_keep_the_verdicts_and_the_workers_figures() {
        let stop = verdict::Stop {
            reason: verdict::StopReason::MaxIterations,
            measured_iterations: 4000,
            look: 3,
            looks: 4,
            confidence: 0.9983,
        };
        let published = Stop::from(&stop);
        assert_eq!(published.reason, StopReason::MaxIterations);
        assert_eq!(
            (
                published.measured_iterations,
                published.look,
                published.looks
            ),
            (4000, 3, 4)
        );
        assert_eq!(published.confidence, 0.9983);
        let timings = protocol::Timings {
            prepare: 1.0,
            setup: 2.0,
            warmup: 3.0,
            iterations: 4.0,
            sampling: 5.0,
            trace: 6.0,
            diagnosis: 7.0,
            teardown: 8.0,
        };
        let t = Timings::from(&timings);
        assert_eq!(
            [
                t.prepare,
                t.setup,
                t.warmup,
                t.iterations,
                t.sampling,
                t.trace,
                t.diagnosis,
                t.teardown
            ],
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
        );
    }

    #[test]
    fn timings_written_before_the_trace_and_diagnosis_windows_load() {
        let old: Timings = serde_json::from_str(
            r#"{"prepare": 0.1, "setup": 0.2, "warmup": 0.3, "iterations": 0.4,
                "sampling": 0.5, "teardown": 0.6}"#,
        )
        .unwrap();
        assert_eq!((old.trace, old.diagnosis, old.teardown), (0.0, 0.0, 0.6));
    }
}
