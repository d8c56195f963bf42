//! The parent side: run each scenario in its own worker process and turn what the workers
//! report into [`ScenarioResult`]s, emitting [`Event`]s for reporters along the way.
//!
//! The runner decides nothing about presentation: the terminal progress display and the report
//! files are consumers of the events and of the final [`RunResults`].

pub mod environment;
mod failure;
pub mod fork_server;
pub mod limits;
mod pipes;
mod reap;
pub mod signals;
mod supervise;
mod watch;
pub mod workers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::fork_server::{Start, Warm};
use crate::holders::HolderReport;
use crate::metric::Metric;
use crate::protocol::{Phase, PythonEnvironment, Sample, SampleKind, WorkerOptions, WorkerRequest};
use crate::results::{
    Analysis, Failure, Fit, MetricAnalysis, MetricResult, Plateau, PythonInfo, RunResults,
    SCHEMA_VERSION, ScenarioResult, Stop, Summary, Timings, ToolInfo,
};
use crate::sampling;
use crate::scenario::{Body, Collected, PytestTest, Scenario};
use crate::verdict::{self, Verdict};
pub use failure::WorkerFailure;
use fork_server::ForkServer;
use supervise::{Ahead, Progress, run_worker};
pub use watch::WorkerRun;

/// Settings of a run that the runner needs (the rest of the configuration is for reporters).
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// Two-sided confidence level of the slope intervals.
    pub confidence: f64,
    /// Whether `inconclusive` fails the gate.
    pub fail_on_inconclusive: bool,
    /// The target interpreter the scenarios run in.
    pub environment: Option<PythonEnvironment>,
    /// The worker executable that embeds it.
    pub program: workers::WorkerProgram,
    /// What workers do beyond measuring (diagnosis); its confidence equals `confidence`.
    pub worker: WorkerOptions,
    /// How many scenarios run at the same time, each in its own worker process.
    pub jobs: usize,
    /// Whether workers are forked from a warmed fork server (else each is spawned).
    pub fork_server: bool,
}

/// What happens during a run, for reporters to show.
pub enum Event<'a> {
    /// The run is about to start `total` scenarios.
    RunStarted {
        /// Number of scenarios.
        total: usize,
    },
    /// A scenario's worker is starting.
    ScenarioStarted {
        /// Position in the run, from 0.
        index: usize,
        /// The scenario.
        scenario: &'a Scenario,
    },
    /// The worker entered a phase.
    PhaseChanged {
        /// Position in the run.
        index: usize,
        /// The new phase.
        phase: Phase,
    },
    /// Iterations completed (warmup included) of `warmup + iterations`, at most every
    /// [`PROGRESS_EVERY`] for one scenario.
    Progress {
        /// Position in the run.
        index: usize,
        /// Iterations completed.
        done: u64,
    },
    /// A scenario has its verdict.
    ScenarioFinished {
        /// Position in the run.
        index: usize,
        /// Its result.
        result: &'a ScenarioResult,
    },
    /// A stopping signal reached leakcheck (Ctrl-C, SIGTERM, SIGHUP): nothing new starts, the
    /// running workers are stopped, and their scenarios are left out of the results. Sent once
    /// in every interrupted run, when the first scheduling thread sees the signal (or at the end,
    /// when it came after the last scenario started); [`Event::RunFinished`] still follows.
    RunInterrupted {
        /// The signal's number.
        signal: i32,
    },
    /// The run is over, interrupted or not: the last event, with what the run returns (before
    /// any baseline comparison, which the caller adds).
    RunFinished {
        /// The run's results, in scenario order.
        results: &'a RunResults,
    },
}

/// Receives [`Event`]s; the terminal display is one, a test recorder could be another.
pub trait EventSink {
    /// Handles one event.
    fn event(&mut self, event: &Event<'_>);
}

/// How often a scheduling thread passes a scenario's iteration count on to the sink's thread.
/// The worker reports it with every sample, a few thousand times a second for a short scenario:
/// passing each on woke the sink's thread as often, for a display that redraws at 20 Hz.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// What a scheduling thread reports to the thread that owns the [`EventSink`].
enum Report {
    Started(usize),
    Phase(usize, Phase),
    Progress(usize, u64),
    Finished(usize, Box<ScenarioResult>, Option<String>),
    /// The thread saw a stopping signal, and starts nothing more.
    Interrupted(i32),
}

/// Runs every scenario, one worker process each, `settings.jobs` at a time, and collects the
/// results in scenario order whatever order they finish in.
///
/// Each scheduling thread takes the next scenario index from a shared counter, supervises its
/// worker and sends what happens to this thread, which alone talks to the event sink: reporters
/// need no locking and see events in a consistent order per scenario.
///
/// The calling process becomes a child subreaper for the run and, once no worker runs, kills
/// every child it still has (the strays of workers re-parented to it, see
/// `reap::kill_orphans`): call it from a process whose only children are its workers, as the
/// `leakcheck` binary is.
pub fn run_scenarios(
    scenarios: &[Scenario],
    settings: &RunSettings,
    sink: &mut dyn EventSink,
) -> RunResults {
    run_scenarios_with(scenarios, settings, None, sink)
}

/// [`run_scenarios`] with the fork server that collected the scenarios' pytest selections, if
/// one did; else the run starts its own when it has two scenarios or more to run.
pub fn run_scenarios_with(
    scenarios: &[Scenario],
    settings: &RunSettings,
    server: Option<ForkServer>,
    sink: &mut dyn EventSink,
) -> RunResults {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    signals::install();
    reap::become_subreaper();
    sink.event(&Event::RunStarted {
        total: scenarios.len(),
    });
    let jobs = settings.jobs.clamp(1, scenarios.len().max(1));
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<ScenarioResult>> = (0..scenarios.len()).map(|_| None).collect();
    let mut versions: Vec<Option<String>> = vec![None; scenarios.len()];
    let (sender, reports) = mpsc::channel::<Report>();
    let server = fork_server_for(scenarios, settings, server);
    let forker = server.as_ref();
    let mut told_interrupted = false;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move || {
                // A worker forked ahead for this thread's next scenario (see `Ahead`).
                let mut ahead = None;
                loop {
                    // After Ctrl-C / SIGTERM nothing new starts; running workers stop themselves.
                    if let Some(signal) = signals::received() {
                        let _ = sender.send(Report::Interrupted(signal));
                        break;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(scenario) = scenarios.get(index) else {
                        break;
                    };
                    // The receiver lives until every sender is gone: sends cannot fail.
                    let _ = sender.send(Report::Started(index));
                    let mut told = Instant::now();
                    // Another scenario may follow for this thread: ask for its worker ahead.
                    let more = next.load(Ordering::SeqCst) < scenarios.len();
                    let workers = (&mut ahead, more);
                    let outcome = run_one(scenario, settings, forker, workers, |progress| {
                        let report = match progress {
                            Progress::Phase(phase) => Report::Phase(index, phase),
                            Progress::Iteration(_) if told.elapsed() < PROGRESS_EVERY => return,
                            Progress::Iteration(done) => {
                                told = Instant::now();
                                Report::Progress(index, done)
                            }
                        };
                        let _ = sender.send(report);
                    });
                    let Some((result, version)) = outcome else {
                        continue;
                    };
                    let _ = sender.send(Report::Finished(index, Box::new(result), version));
                }
                if let Some(ahead) = ahead.take() {
                    Ahead::discard(ahead, forker);
                }
            });
        }
        drop(sender);
        for report in reports {
            match report {
                Report::Started(index) => sink.event(&Event::ScenarioStarted {
                    index,
                    scenario: &scenarios[index],
                }),
                Report::Phase(index, phase) => sink.event(&Event::PhaseChanged { index, phase }),
                Report::Progress(index, done) => sink.event(&Event::Progress { index, done }),
                Report::Finished(index, result, version) => {
                    sink.event(&Event::ScenarioFinished {
                        index,
                        result: &result,
                    });
                    versions[index] = version;
                    slots[index] = Some(*result);
                }
                Report::Interrupted(signal) => {
                    if !told_interrupted {
                        told_interrupted = true;
                        sink.event(&Event::RunInterrupted { signal });
                    }
                }
            }
        }
    });
    drop(server);
    // No worker runs any more: every child left is a stray that escaped both the group kill
    // and the cookie sweep, re-parented to us (or the fork server, on its way out).
    reap::kill_orphans();
    let results: Vec<ScenarioResult> = slots.into_iter().flatten().collect();
    let python_version = versions.into_iter().flatten().next();
    let mut run = assemble(settings, started_at, clock.elapsed(), results);
    run.python.version = python_version;
    let signal = signals::received();
    // A signal after the last scenario started reached no scheduling thread.
    if let Some(signal) = signal.filter(|_| !told_interrupted) {
        sink.event(&Event::RunInterrupted { signal });
    }
    run.interrupted = signal.is_some();
    sink.event(&Event::RunFinished { results: &run });
    run
}

/// The results of a run of these settings that started at `started_at`, lasted `duration` and
/// has finished `results` so far (in scenario order); not interrupted, Python version unknown.
/// The run's own results, and the journal rewritten after each scenario, are both made here.
pub fn assemble(
    settings: &RunSettings,
    started_at: SystemTime,
    duration: Duration,
    results: Vec<ScenarioResult>,
) -> RunResults {
    let python = PythonInfo {
        version: None,
        executable: settings
            .environment
            .as_ref()
            .map(|env| env.executable.clone())
            .unwrap_or_else(|| env!("LEAKCHECK_BUILD_PYTHON").into()),
        environment: settings.environment.as_ref().map(|env| env.prefix.clone()),
    };
    RunResults {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "leakcheck".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        python,
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        duration_secs: duration.as_secs_f64(),
        confidence: settings.confidence,
        interrupted: false,
        summary: Summary::of(&results),
        scenarios: results,
        baseline: None,
    }
}

/// Runs one scenario in a worker and judges it; returns the result and the Python version the
/// worker reported, or `None` when the run was interrupted before the scenario finished.
fn run_one(
    scenario: &Scenario,
    settings: &RunSettings,
    server: Option<&ForkServer>,
    (ahead, more): (&mut Option<Ahead>, bool),
    on_progress: impl FnMut(Progress),
) -> Option<(ScenarioResult, Option<String>)> {
    let mut options = settings.worker.clone();
    options.max_rss = scenario.max_rss.unwrap_or(options.max_rss);
    let request = WorkerRequest {
        scenario: scenario.clone(),
        environment: settings.environment.clone(),
        options,
    };
    let timeout = Duration::from_secs_f64(scenario.timeout_secs);
    let run = match not_collected(scenario) {
        Some(failure) => WorkerRun {
            failure: Some(failure),
            ..WorkerRun::default()
        },
        None => run_worker(
            &settings.program,
            server,
            &request,
            timeout,
            ahead,
            more,
            on_progress,
        ),
    };
    if run.failure.as_ref().is_some_and(WorkerFailure::interrupted) {
        return None;
    }
    let version = run.python_version.clone();
    let judging = Judging {
        confidence: settings.confidence,
        seed: settings.worker.seed,
        fail_on_inconclusive: settings.fail_on_inconclusive,
    };
    Some((judge(scenario, run, judging), version))
}

/// The run's fork server: the one given (it collected the run's pytest selections), else one
/// started when the settings allow it and at least two scenarios need a worker (for one,
/// booting a server and forking costs what spawning does). It then collects and keeps the
/// sessions of every pytest test file of the run, one per rootdir, and freezes its heap.
fn fork_server_for(
    scenarios: &[Scenario],
    settings: &RunSettings,
    given: Option<ForkServer>,
) -> Option<ForkServer> {
    let workers = scenarios
        .iter()
        .filter(|scenario| not_collected(scenario).is_none())
        .count();
    if !settings.fork_server || workers == 0 {
        return None;
    }
    let server = match given {
        Some(server) => server,
        None if workers >= 2 => ForkServer::start(
            &settings.program,
            &Start {
                environment: settings.environment.clone(),
                seed: settings.worker.seed,
            },
        )?,
        None => return None,
    };
    let mut files: BTreeMap<std::path::PathBuf, std::collections::BTreeSet<String>> =
        BTreeMap::new();
    for scenario in scenarios {
        if let Body::Pytest(PytestTest {
            collected: Collected::Test(test),
            ..
        }) = &scenario.body
        {
            let file = format!("{}/{}", test.rootdir.display(), test.file);
            files.entry(test.rootdir.clone()).or_default().insert(file);
        }
    }
    let warm = files
        .into_iter()
        .map(|(rootdir, files)| Warm {
            args: files.into_iter().collect(),
            rootdir,
        })
        .collect();
    // A server that cannot warm still forks; one that is gone spawns, in `fork`.
    let _ = server.warm(warm);
    Some(server)
}

/// Why a scenario has nothing to run (its `skip:` key; for a `pytest` scenario, pytest is
/// missing or collecting failed), as the failure its result reports; no worker starts for it.
fn not_collected(scenario: &Scenario) -> Option<WorkerFailure> {
    let skipped = |reason: &str| {
        let fact = Failure::Skipped {
            phase: Phase::Prepare,
            iteration: None,
            reason: reason.to_string(),
        };
        Some(WorkerFailure::from(fact))
    };
    if let Some(reason) = &scenario.skip {
        return skipped(reason);
    }
    let Body::Pytest(test) = &scenario.body else {
        return None;
    };
    match &test.collected {
        Collected::Test(_) => None,
        Collected::Skipped { reason } => skipped(reason),
        Collected::Failed { message, output } => Some(WorkerFailure::with_text(
            Failure::Exception {
                phase: Phase::Prepare,
                iteration: None,
                message: message.clone(),
            },
            output.clone(),
        )),
        Collected::Pending => Some(
            Failure::Exception {
                phase: Phase::Prepare,
                iteration: None,
                message: format!(
                    "the pytest selection `{}` was not collected",
                    test.selection
                ),
            }
            .into(),
        ),
    }
}

/// What the runner makes of one worker's samples, tagged with where they were taken: the
/// verdict's decision over the measured ones (tracemalloc judged on its traced window unless
/// traced throughout) and, per metric, the series and fits results.json keeps. Public so the
/// report benchmark judges exactly as a run does.
pub fn fit_samples(
    scenario: &Scenario,
    samples: &[(Sample, SampleKind)],
    holders: Option<&HolderReport>,
    confidence: f64,
) -> (verdict::Decision, BTreeMap<Metric, MetricResult>) {
    let of_kind = |kind: SampleKind| -> Vec<Sample> {
        samples
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(s, _)| s.clone())
            .collect()
    };
    let plan = verdict::Plan::for_scenario(scenario, confidence);
    let mut decision = verdict::decide_with(&of_kind(SampleKind::Measure), &plan, holders);
    // Unless traced throughout, tracemalloc was only on in the traced window: its figure comes
    // from that window's samples, and the measured samples' zeros mean nothing.
    let windowed = !sampling::traced_throughout(&scenario.gate);
    if windowed {
        let traced = of_kind(SampleKind::Trace);
        for judgement in &mut decision.metrics {
            if judgement.metric == Metric::Tracemalloc {
                *judgement = verdict::judge_window(&traced, Metric::Tracemalloc, &plan);
            }
        }
    }
    let mut metrics = BTreeMap::new();
    for judgement in &decision.metrics {
        let metric = judgement.metric;
        let series = |kind: SampleKind| -> Vec<(u64, f64)> {
            samples
                .iter()
                .filter(|(_, k)| *k == kind)
                .map(|(s, _)| (s.iteration, s.get(metric)))
                .collect()
        };
        let (fitted, warmup_samples) = if windowed && metric == Metric::Tracemalloc {
            (series(SampleKind::Trace), Vec::new())
        } else {
            (series(SampleKind::Measure), series(SampleKind::Warmup))
        };
        let fit = judgement.fit;
        metrics.insert(
            metric,
            MetricResult {
                unit: metric.unit(),
                slope: fit.map(|f| f.slope),
                ci_low: fit.map(|f| f.ci_low),
                ci_high: fit.map(|f| f.ci_high),
                confidence: fit.map(|f| f.confidence),
                stderr: fit.map(|f| f.stderr),
                intercept: fit.map(|f| f.intercept),
                tolerance: judgement.tolerance,
                gated: judgement.gated,
                call: judgement.call,
                samples: fitted,
                warmup_samples,
            },
        );
    }
    debug_assert_eq!(metrics.len(), Metric::ALL.len());
    (decision, metrics)
}

/// What turning a worker's report into a result depends on beyond the report itself.
#[derive(Clone, Copy, Debug)]
pub struct Judging {
    /// Two-sided confidence level of the run (`RunSettings::confidence`).
    pub confidence: f64,
    /// The run's seed, recorded in the analysis.
    pub seed: u64,
    /// Whether `inconclusive` fails the gate.
    pub fail_on_inconclusive: bool,
}

/// Turns one worker's report into a scenario result: fits, verdict, expectation. The one place
/// a `ScenarioResult` is made from a run, used by the runner and by the report benchmark, so
/// that results.json cannot be built two ways.
pub fn judge(scenario: &Scenario, run: WorkerRun, judging: Judging) -> ScenarioResult {
    let (mut decision, metrics) = fit_samples(
        scenario,
        &run.samples,
        run.holders.as_ref(),
        judging.confidence,
    );
    decision.stop = reported_stop(&decision, run.stopped);
    let (verdict, reason, error, traceback) = match &run.failure {
        None => (decision.verdict, decision.reason.clone(), None, None),
        // Over the memory cap while iterating: a finding about memory, not a failure to measure.
        Some(failure) if failure.is_leak() => (Verdict::Leak, failure.summary(), None, None),
        // Not measured, and not a failure: pytest's report of the skip goes where tracebacks go.
        Some(failure) if matches!(failure.fact, Failure::Skipped { .. }) => (
            Verdict::Skipped,
            failure.summary(),
            None,
            failure.traceback().map(str::to_string),
        ),
        Some(failure) => {
            let traceback = failure.traceback().map(str::to_string);
            (
                Verdict::Error,
                failure.summary(),
                Some(failure.summary()),
                traceback,
            )
        }
    };

    ScenarioResult {
        name: scenario.name.clone(),
        file: scenario.file.clone(),
        line: scenario.line,
        description: scenario.description.clone(),
        tags: scenario.tags.clone(),
        verdict,
        expected: scenario.expect,
        ok: verdict::is_ok(verdict, scenario.expect, judging.fail_on_inconclusive),
        error,
        reason,
        traceback,
        iterations: scenario.iterations,
        warmup: scenario.warmup,
        sample_every: scenario.sample_every,
        iterations_done: run.iterations_done,
        duration_secs: run.duration.as_secs_f64(),
        gate: scenario.gate.clone(),
        metrics,
        timings: run.timings.as_ref().map(Timings::from),
        diagnosis: run.diagnosis,
        stdout: run.stdout,
        stderr: run.stderr,
        analysis: Some(analysis(scenario, &decision, judging.seed)),
        holders: run.holders,
        pytest: match &scenario.body {
            Body::Pytest(PytestTest {
                collected: Collected::Test(test),
                ..
            }) => Some(test.clone()),
            _ => None,
        },
        worker_start: run.start,
        failure: run.failure.as_ref().map(|failure| failure.fact.clone()),
    }
}

/// The stop the worker reported, checked against the runner's replay of the looks; the
/// replay's own when the worker did not get that far (it failed, or was stopped, first).
///
/// Both sides apply the same rule to the same samples, so they agree unless leakcheck has a bug:
/// the worker would then have measured, probed or diagnosed on another verdict than the one
/// reported. Debug builds, which every test runs through the binary, fail on it at once, where
/// the drift is made; a release build does not turn leakcheck's bug into the user's error: it
/// records what the worker did and keeps the replay's verdict and reason.
fn reported_stop(
    replay: &verdict::Decision,
    reported: Option<(Verdict, verdict::Stop)>,
) -> verdict::Stop {
    let Some((verdict, stop)) = reported else {
        return replay.stop;
    };
    debug_assert_eq!(
        (verdict, stop),
        (replay.verdict, replay.stop),
        "the worker's verdict and stop (left) differ from the runner's replay of the looks (right)"
    );
    stop
}

/// The adaptive run's stop and each metric's robust statistics, for results.json.
pub fn analysis(scenario: &Scenario, decision: &verdict::Decision, seed: u64) -> Analysis {
    Analysis {
        max_iterations: scenario.max_iterations,
        stop: Stop::from(&decision.stop),
        seed,
        metrics: decision
            .metrics
            .iter()
            .map(|m| {
                let stats = MetricAnalysis {
                    robust: m.robust.as_ref().map(Fit::from),
                    tail: m.tail.as_ref().map(Fit::from),
                    persistent: m.persistent,
                    plateau: m.plateau.as_ref().map(Plateau::from),
                    floor: m.floor.as_ref().map(Fit::from),
                    note: m.note.clone(),
                };
                (m.metric, stats)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict::{Stop, StopReason};

    fn replay(verdict: Verdict, look: usize) -> verdict::Decision {
        verdict::Decision {
            verdict,
            reason: String::new(),
            metrics: Vec::new(),
            stop: Stop {
                reason: StopReason::Decided,
                measured_iterations: 1000 * look as u64,
                look,
                looks: 3,
                confidence: 0.995,
            },
        }
    }

    #[test]
    fn the_stop_is_the_workers_when_it_reported_one_and_the_replays_otherwise() {
        let decided = replay(Verdict::Leak, 2);
        assert_eq!(
            reported_stop(&decided, Some((Verdict::Leak, decided.stop))),
            decided.stop
        );
        // Failed before its measured rounds ended: the replay judges what there is.
        assert_eq!(reported_stop(&decided, None), decided.stop);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "differ from the runner's replay")]
    fn a_replay_that_disagrees_with_the_worker_fails_debug_builds() {
        let worker = replay(Verdict::Pass, 1);
        reported_stop(
            &replay(Verdict::Leak, 2),
            Some((worker.verdict, worker.stop)),
        );
    }
}
