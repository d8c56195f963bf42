//! The child side: one worker process runs one scenario in an embedded CPython.
//!
//! The runner starts the `leakcheck-worker` executable (`src/worker/main.rs`) built for the
//! target interpreter's minor version, on that interpreter's libpython, sends a
//! [`WorkerRequest`] on stdin and reads [`WorkerMessage`]s from the channel pipe. Keeping the
//! interpreter in its own process means a segfault, a hang or `os._exit()` in scenario code only
//! ends this process, and memory figures are never shared between scenarios.
//!
//! The worker never formats anything for humans; it reports facts and exits.

pub mod allocator;
mod census;
mod channel;
pub mod fork_server;
mod freeze;
mod guard;
mod holders;
pub mod interpreter;
mod malloc_recorder;
mod native;
pub mod process_metrics;
mod referrers;

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::diagnosis::Diagnosis;
use crate::metric::Metric;
use crate::protocol::{
    DiagnoseMode, Phase, Sample, SampleKind, Timings, WorkerMessage, WorkerRequest,
};
use crate::sampling::{self, TraceWindow};
use crate::verdict::{self, Verdict};
use channel::Channel;
use interpreter::{Booted, Interpreter, ScenarioFailure};

/// How often the worker reports progress between samples.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// Entry point of the hidden `__worker` subcommand; returns the process exit code.
///
/// Scenario failures are reported over the channel and still exit 0: a non-zero exit code
/// means the worker itself could not work (bad request, no channel).
pub fn main() -> i32 {
    exit_code("leakcheck worker", run())
}

/// The process's exit code for `result`: 0, or 3 with the error on stderr, prefixed by `who`.
fn exit_code(who: &str, result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("{who}: {err:#}");
            3
        }
    }
}

fn run() -> Result<()> {
    // SAFETY: first thing in the worker, before any thread starts.
    unsafe { allocator::restore_user_env() };
    serve(None)
}

/// Reads the request on stdin, runs it and reports on the channel; never returns on success.
/// `booted` is the interpreter a fork server started before forking this worker, else the
/// worker starts its own.
fn serve(booted: Option<Booted>) -> Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the worker request from stdin")?;
    let request: WorkerRequest =
        serde_json::from_str(&input).context("decoding the worker request")?;
    let mut channel = Channel::open().context("opening the result channel")?;
    let limits = guard::Limits {
        iteration_timeout: request
            .scenario
            .iteration_timeout_secs
            .map(Duration::from_secs_f64),
        max_rss: request.options.max_rss,
    };
    guard::start(limits, channel.watchdog_handle()?).context("starting the watchdog")?;
    let outcome = execute(&request, &mut channel, booted);
    match outcome {
        Ok(timings) => channel.send(&WorkerMessage::Finished { timings })?,
        Err(Failure::Scenario(failure)) if failure.skipped => {
            channel.send(&WorkerMessage::Skipped {
                phase: failure.phase,
                iteration: failure.iteration,
                reason: failure.message,
                report: failure.traceback,
            })?
        }
        Err(Failure::Scenario(failure)) => channel.send(&WorkerMessage::Failed {
            phase: failure.phase,
            iteration: failure.iteration,
            message: failure.message,
            traceback: failure.traceback,
        })?,
        Err(Failure::Channel(err)) => return Err(err),
    }
    channel.flush()?;
    leave()
}

/// Ends the worker once its last message is sent, without finalizing the interpreter (threads
/// the scenario started may still run, and finalization could hang on them; the runner reaps
/// the process group afterwards) and without the C library's exit handlers.
///
/// Those handlers only take apart what the process is about to lose: in a worker forked from a
/// server holding a pytest suite, OpenSSL's cleanup and the libraries' destructors write to
/// hundreds of pages still shared with the server, and copying them took 2-3 ms, on the path
/// between one scenario and the next. What a handler could lose that matters is output still
/// in the C library's buffers, so those are flushed first. Python's own `atexit` handlers never
/// ran in a worker, which does not finalize the interpreter.
fn leave() -> ! {
    // SAFETY: fflush(NULL) flushes every open C stream; _exit ends the process at once.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(0)
    }
}

/// Same dict and set layouts on every rerun with the same seed: CPython reads
/// `PYTHONHASHSEED` when it starts, so call this before it does.
fn set_hash_seed(seed: u64) {
    // SAFETY: called before the interpreter starts and before the worker starts any thread
    // (the watchdog's thread reads no environment).
    unsafe { std::env::set_var("PYTHONHASHSEED", seed.to_string()) };
}

/// Why a scenario stopped early.
enum Failure {
    /// Scenario code raised (or could not be prepared).
    Scenario(ScenarioFailure),
    /// The runner went away; nothing more can be reported.
    Channel(anyhow::Error),
}

impl From<ScenarioFailure> for Failure {
    fn from(failure: ScenarioFailure) -> Self {
        Failure::Scenario(failure)
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::Channel(err.into())
    }
}

/// Runs setup, warmup, measured iterations and teardown, streaming samples as it goes.
fn execute(
    request: &WorkerRequest,
    channel: &mut Channel,
    booted: Option<Booted>,
) -> Result<Timings, Failure> {
    let scenario = &request.scenario;
    let mut timings = Timings::default();
    let started = Instant::now();
    let interpreter = match booted {
        Some(booted) => booted.prepare(request)?,
        None => {
            set_hash_seed(request.options.seed);
            Interpreter::start(request)?
        }
    };
    channel.send(&WorkerMessage::Started {
        python_version: interpreter.python_version(),
        pid: std::process::id(),
    })?;
    timings.prepare = started.elapsed().as_secs_f64();

    channel.send(&WorkerMessage::Phase {
        phase: Phase::Setup,
    })?;
    let clock = Instant::now();
    interpreter.run_setup()?;
    timings.setup = clock.elapsed().as_secs_f64();

    let plan = verdict::Plan::for_scenario(scenario, request.options.confidence);
    let most_samples =
        plan.looks.last().map_or(0, |look| look.measured) / scenario.sample_every.max(1) + 2;
    let mut sampler = Sampler::new(&interpreter, channel, most_samples as usize);
    sampler.take(0, SampleKind::Warmup)?;

    sampler.channel.send(&WorkerMessage::Phase {
        phase: Phase::Warmup,
    })?;
    let iterating = Instant::now();
    sampler.run(Phase::Warmup, 0, scenario.warmup, scenario.sample_every)?;
    timings.warmup = iterating.elapsed().as_secs_f64();

    // Measured rounds: run up to each look of the plan and stop at the first that decides (the
    // runner replays the same looks on the same samples to give the verdict, and checks its
    // replay against the stop reported here).
    sampler.channel.send(&WorkerMessage::Phase {
        phase: Phase::Measure,
    })?;
    let clock = Instant::now();
    let sampling_before = sampler.spent;
    let mut done = scenario.warmup;
    let mut verdict = Verdict::Inconclusive;
    // The larger growth per iteration of the C allocator and of resident memory, among those
    // above their tolerance, for the diagnosis: what the traced sites should explain.
    let mut native_growth = None;
    let mut holders = None;
    let mut stop = None;
    for index in 0..plan.looks.len() {
        let end = plan.look_end(index);
        sampler.run(Phase::Measure, done, end, scenario.sample_every)?;
        done = end;
        let mut decision = verdict::judge_look(&sampler.measured, &plan, index);
        if decision.verdict == Verdict::Leak && request.options.probe_holders {
            // Who holds it: a bounded cache still filling is run until full, and judged after.
            let (report, reached) = holders::extend(
                &mut sampler,
                scenario,
                &plan,
                index,
                done,
                started,
                iterating,
            )?;
            done = reached;
            decision = verdict::decide_with_holders(&sampler.measured, &plan, &report);
            holders = Some(report);
        }
        verdict = decision.verdict;
        stop = Some(decision.stop);
        native_growth = decision
            .metrics
            .iter()
            .filter(|m| matches!(m.metric, Metric::Malloc | Metric::Rss))
            .filter_map(|m| m.robust.map(|fit| (m.metric, fit.slope)))
            .filter(|&(metric, slope)| slope > plan.tolerance_of(metric))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if verdict != Verdict::Inconclusive || holders.is_some() {
            break;
        }
    }
    if let Some(report) = holders {
        sampler.channel.send(&WorkerMessage::Holders {
            report: Box::new(report),
        })?;
    }
    if let Some(stop) = stop {
        sampler
            .channel
            .send(&WorkerMessage::Stopped { verdict, stop })?;
    }
    let measured_secs = clock.elapsed().as_secs_f64();
    timings.iterations = measured_secs - (sampler.spent - sampling_before);
    timings.sampling = sampler.spent;

    if !sampling::traced_throughout(&scenario.gate) {
        sampler.channel.send(&WorkerMessage::Phase {
            phase: Phase::Trace,
        })?;
        let clock = Instant::now();
        done = sampler.trace_window(done, scenario.iterations, measured_secs)?;
        timings.trace = clock.elapsed().as_secs_f64();
    }

    let diagnose = match request.options.diagnose {
        DiagnoseMode::Always => true,
        DiagnoseMode::Never => false,
        DiagnoseMode::Auto => verdict == Verdict::Leak,
    };
    if diagnose {
        let clock = Instant::now();
        sampler.channel.send(&WorkerMessage::Phase {
            phase: Phase::Diagnose,
        })?;
        let mut diagnosis = diagnose_window(sampler.interpreter, request, done)?;
        if let Some(growth) = native_growth
            && let Some(traced) = native::unexplained(&diagnosis, growth.1)
        {
            // After the diagnosis window's two halves: never inside the measured run.
            let start = done + 2 * diagnosis.iterations;
            native::diagnose(
                sampler.interpreter,
                request,
                start,
                growth,
                traced,
                &mut diagnosis,
            )?;
        }
        timings.diagnosis = clock.elapsed().as_secs_f64();
        sampler.channel.send(&WorkerMessage::Diagnosis {
            diagnosis: Box::new(diagnosis),
        })?;
    }

    sampler.channel.send(&WorkerMessage::Phase {
        phase: Phase::Teardown,
    })?;
    let clock = Instant::now();
    interpreter.run_teardown()?;
    timings.teardown = clock.elapsed().as_secs_f64();
    Ok(timings)
}

/// Runs the diagnosis window after the measured iterations: half of it to let bounded state
/// (caches, freelists) turn over under deep tracebacks, checkpoint A, the other half, checkpoint
/// B. Only differences between the checkpoints are reported, so a bounded cache that rotates
/// drops out while a leak shows its per-iteration rate.
///
/// A half is `iterations / 2` (10 to 500), cut to what fits in [`HALF_WINDOW_SECS`] at the
/// pace of the window's first traced iterations, but never below [`MIN_HALF`] (the least a
/// half ever had): deep tracebacks
/// slow an iteration that allocates a lot 3 to 7 times, and on a service call of a few
/// milliseconds (an ORM query, an HTTP round trip) the window's iterations were most of the
/// diagnosis's cost, while a leak the verdict already found shows in a few dozen of them.
fn diagnose_window(
    interpreter: &Interpreter,
    request: &WorkerRequest,
    start: u64,
) -> Result<Diagnosis, Failure> {
    let clock = Instant::now();
    let most = (request.scenario.iterations / 2).clamp(10, 500);
    let timed = most.min(PACE_ITERATIONS);
    // A failure of the diagnosis code itself must not turn a measured verdict into an error:
    // it is recorded as the diagnosis's `error`. Exceptions from the scenario's own iterations
    // stay scenario errors.
    let failed = |half: u64, what: String| Diagnosis {
        iterations: half,
        error: Some(what),
        ..Diagnosis::default()
    };
    if let Err(failure) = interpreter.diagnose_begin(request.options.frames) {
        return Ok(failed(most, failure.message));
    }
    let pace_clock = Instant::now();
    interpreter.run_chunk(Phase::Diagnose, start, start + timed)?;
    let half = window_half(most, timed, pace_clock.elapsed().as_secs_f64());
    interpreter.run_chunk(Phase::Diagnose, start + timed, start + half)?;
    if let Err(failure) = interpreter.diagnose_checkpoint() {
        return Ok(failed(half, failure.message));
    }
    let iterations_clock = Instant::now();
    interpreter.run_chunk(Phase::Diagnose, start + half, start + 2 * half)?;
    let iterations_secs = iterations_clock.elapsed().as_secs_f64();
    let mut diagnosis: Diagnosis =
        match interpreter.diagnose_finish(half, request.options.chain_timeout_secs) {
            Err(failure) => return Ok(failed(half, failure.message)),
            Ok(json) => match serde_json::from_str(&json) {
                Ok(diagnosis) => diagnosis,
                Err(err) => return Ok(failed(half, format!("undecodable result: {err}"))),
            },
        };
    // Overhead of diagnosing, iterations of the window excluded.
    diagnosis.cost_secs = (clock.elapsed().as_secs_f64() - 2.0 * iterations_secs).max(0.0);
    Ok(diagnosis)
}

/// Time one half of the diagnosis window may take at its traced pace (see [`diagnose_window`]).
const HALF_WINDOW_SECS: f64 = 0.25;

/// Fewest iterations in a half of the diagnosis window, whatever their pace.
const MIN_HALF: u64 = 10;

/// Iterations timed at the start of the window to learn its traced pace.
const PACE_ITERATIONS: u64 = 10;

/// Iterations in each half of the diagnosis window: `most`, or fewer when `timed` iterations took
/// `secs` and `most` of them would take more than [`HALF_WINDOW_SECS`]; never fewer than
/// [`MIN_HALF`] (nor than those already run, nor more than `most`).
fn window_half(most: u64, timed: u64, secs: f64) -> u64 {
    let per = secs / timed.max(1) as f64;
    let fits = if per > 0.0 {
        (HALF_WINDOW_SECS / per).floor().min(most as f64) as u64
    } else {
        most
    };
    fits.max(MIN_HALF).max(timed).min(most)
}

/// Takes samples and throttled progress reports, and accounts for the time they cost.
struct Sampler<'a> {
    interpreter: &'a Interpreter,
    channel: &'a mut Channel,
    spent: f64,
    last_progress: Instant,
    /// Measured samples, kept so the worker can tell whether its scenario leaks. Allocated
    /// once for the most samples the plan can take: growing it would show in `malloc`.
    measured: Vec<Sample>,
}

impl<'a> Sampler<'a> {
    fn new(interpreter: &'a Interpreter, channel: &'a mut Channel, capacity: usize) -> Self {
        Sampler {
            interpreter,
            channel,
            spent: 0.0,
            last_progress: Instant::now(),
            measured: Vec::with_capacity(capacity),
        }
    }

    /// Runs iterations `start..end` in chunks of `sample_every`, with a sample after each chunk
    /// (the last chunk may be shorter, so there is always a sample at `end`).
    fn run(
        &mut self,
        phase: Phase,
        start: u64,
        end: u64,
        sample_every: u64,
    ) -> Result<(), Failure> {
        let mut done = start;
        while done < end {
            let stop = (done + sample_every.max(1)).min(end);
            self.interpreter.run_chunk(phase, done, stop)?;
            done = stop;
            let kind = if phase == Phase::Warmup {
                SampleKind::Warmup
            } else {
                SampleKind::Measure
            };
            self.take(done, kind)?;
            self.progress(done)?;
        }
        Ok(())
    }

    /// Runs the traced window from iteration `start`: tracemalloc on, one timed iteration to
    /// price a traced iteration, then a window sized to [`sampling::trace_budget`] of the
    /// measured run's `measured_secs` ([`TraceWindow::plan`]): its first two thirds settle
    /// unsampled, its last third is sampled. Returns the iterations done by its end.
    fn trace_window(
        &mut self,
        start: u64,
        iterations: u64,
        measured_secs: f64,
    ) -> Result<u64, Failure> {
        self.interpreter.trace_begin()?;
        // Priced after tracing started: starting it allocates its tables, which is not what an
        // iteration costs and would shrink the window of a cheap scenario to its minimum.
        let clock = Instant::now();
        self.interpreter.run_chunk(Phase::Trace, start, start + 1)?;
        let traced_secs = clock.elapsed().as_secs_f64();
        let budget = (sampling::trace_budget(measured_secs) - traced_secs).max(0.0);
        let window = TraceWindow::plan(iterations, budget, traced_secs);
        let mut done = start + 1;
        let settled = done + window.settle.saturating_sub(1);
        self.interpreter.run_chunk(Phase::Trace, done, settled)?;
        done = settled;
        self.take(done, SampleKind::Trace)?;
        for _ in 0..window.samples {
            self.interpreter
                .run_chunk(Phase::Trace, done, done + window.step)?;
            done += window.step;
            self.take(done, SampleKind::Trace)?;
            self.progress(done)?;
        }
        self.interpreter.trace_end()?;
        Ok(done)
    }

    fn take(&mut self, iteration: u64, kind: SampleKind) -> Result<(), Failure> {
        let clock = Instant::now();
        // Destructors of the iterations' garbage run in the sample's collection: under the
        // iteration time limit, charged to the last iteration.
        if let Some(last) = iteration.checked_sub(1) {
            guard::collecting_after(last);
        }
        let python = self.interpreter.sample();
        guard::iterations_paused();
        let python = python?;
        let mut values = [0.0; Metric::ALL.len()];
        for (slot, metric) in values.iter_mut().zip(Metric::ALL) {
            *slot = match metric {
                Metric::Tracemalloc => python.traced_bytes,
                // tracemalloc's own tables sit in the C allocator and grow with what it
                // traces: not the scenario's memory.
                Metric::Malloc => process_metrics::malloc_in_use() - python.tracemalloc_overhead,
                Metric::GcObjects => python.gc_objects,
                Metric::AllocBlocks => python.allocated_blocks,
                Metric::Rss => process_metrics::resident_bytes(),
                Metric::Fds => process_metrics::open_fds(),
            };
        }
        let sample = Sample { iteration, values };
        self.channel.send(&WorkerMessage::Sample {
            sample: sample.clone(),
            kind,
        })?;
        if kind == SampleKind::Measure {
            self.measured.push(sample);
        }
        self.spent += clock.elapsed().as_secs_f64();
        Ok(())
    }

    fn progress(&mut self, iteration: u64) -> Result<(), Failure> {
        if self.last_progress.elapsed() >= PROGRESS_INTERVAL {
            self.last_progress = Instant::now();
            self.channel.send(&WorkerMessage::Progress { iteration })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::window_half;

    #[test]
    fn a_fast_window_keeps_half_the_iterations() {
        // 10 iterations in 1 ms: 100 fit in far less than the budget.
        assert_eq!(window_half(100, 10, 0.001), 100);
        assert_eq!(window_half(500, 10, 0.0), 500);
    }

    #[test]
    fn a_slow_window_is_cut_to_its_time_budget() {
        // 8 ms an iteration (an ORM query under deep tracebacks): 31 fit in 0.25 s.
        assert_eq!(window_half(100, 10, 0.08), 31);
    }

    #[test]
    fn a_very_slow_window_keeps_its_floor() {
        // 100 ms an iteration: the floor of 10, not 2.
        assert_eq!(window_half(100, 10, 1.0), 10);
        // Iterations already timed are never taken back.
        assert_eq!(window_half(100, 10, 10.0), 10);
    }
}
