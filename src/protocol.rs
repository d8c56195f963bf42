//! Messages between the runner (parent) and a worker (child), in one place.
//!
//! The runner writes one [`WorkerRequest`] as JSON to the worker's stdin. The worker answers with
//! [`WorkerMessage`]s, one JSON object per line, on a dedicated pipe (file descriptor
//! [`CHANNEL_FD`]) rather than stdout: whatever the scenario prints, from Python or from C, lands
//! on stdout/stderr, which the runner captures separately, and can never corrupt the samples.

use std::io::Read;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::diagnosis::Diagnosis;
use crate::holders::HolderReport;
use crate::metric::Metric;
use crate::scenario::Scenario;
use crate::verdict::{Stop, Verdict};

/// The file descriptor the worker receives its channel on. The worker moves it to a higher,
/// close-on-exec descriptor before any scenario code runs, so subprocesses do not inherit it and
/// code that closes or reuses descriptor 3 does not cut it.
pub const CHANNEL_FD: i32 = 3;

/// Longest channel message accepted; a longer line (scenario code writing garbage to the
/// channel) is dropped rather than buffered without bound.
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// Reads the worker's messages from `channel`, one JSON object a line, passing each to `each`
/// until end of file, a read error, or `each` returning false.
///
/// The channel is the worker's, but scenario code runs in that process and may write to it:
/// lines that are not a message are skipped, and so are lines over [`MAX_MESSAGE_BYTES`]
/// (without buffering them), so garbage costs a message at most, never the run.
pub fn read_messages(channel: impl Read, each: impl FnMut(WorkerMessage) -> bool) {
    read_limited(channel, MAX_MESSAGE_BYTES, each)
}

fn read_limited(mut channel: impl Read, limit: u64, mut each: impl FnMut(WorkerMessage) -> bool) {
    let mut reader = MessageReader::with_limit(limit);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match channel.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                if !reader.push(&buffer[..n], &mut each) {
                    return;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// [`read_messages`] for a channel read in pieces as they arrive (the supervisor polls the
/// worker's pipes from one thread, and reads what each has whenever it is ready): bytes go in
/// with [`MessageReader::push`], complete lines come out as messages, with the same rules. A
/// last line without its newline (the worker was killed mid-write) never comes out.
pub struct MessageReader {
    /// The start of a line whose newline has not come yet.
    line: Vec<u8>,
    /// The current line is over the limit: its bytes are dropped up to its newline.
    skipping: bool,
    /// Longest line kept, its newline included.
    limit: usize,
}

impl Default for MessageReader {
    fn default() -> Self {
        MessageReader::with_limit(MAX_MESSAGE_BYTES)
    }
}

impl MessageReader {
    fn with_limit(limit: u64) -> MessageReader {
        MessageReader {
            line: Vec::new(),
            skipping: false,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    /// Takes in the next `bytes` of the channel and passes each message they complete to
    /// `each`, until it returns false; whether it never did.
    pub fn push(&mut self, mut bytes: &[u8], each: &mut impl FnMut(WorkerMessage) -> bool) -> bool {
        while let Some(at) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&bytes[..at], &bytes[at + 1..]);
            bytes = rest;
            let fits = !self.skipping && self.line.len() + head.len() < self.limit;
            self.skipping = false;
            if !fits {
                self.line.clear();
                continue;
            }
            let parsed = if self.line.is_empty() {
                serde_json::from_slice::<WorkerMessage>(head)
            } else {
                self.line.extend_from_slice(head);
                let parsed = serde_json::from_slice::<WorkerMessage>(&self.line);
                self.line.clear();
                parsed
            };
            if let Ok(message) = parsed
                && !each(message)
            {
                return false;
            }
        }
        if !self.skipping {
            if self.line.len() + bytes.len() < self.limit {
                self.line.extend_from_slice(bytes);
            } else {
                // Over the limit before its end: not kept, however long it gets.
                self.skipping = true;
                self.line = Vec::new();
            }
        }
        true
    }
}

/// Everything a worker needs to run one scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerRequest {
    /// The scenario, with defaults already applied.
    pub scenario: Scenario,
    /// The Python environment whose packages the scenario imports, if not the embedded one's.
    pub environment: Option<PythonEnvironment>,
    /// Run-wide settings the worker needs.
    pub options: WorkerOptions,
}

/// Run-wide settings that shape what a worker does after the measured iterations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerOptions {
    /// Confidence level, so the worker can tell from its own samples whether to diagnose.
    pub confidence: f64,
    /// When to run the diagnosis window.
    pub diagnose: DiagnoseMode,
    /// Depth of tracemalloc tracebacks during the diagnosis window.
    pub frames: u32,
    /// Time budget for the referrer-chain search, in seconds.
    pub chain_timeout_secs: f64,
    /// Memory cap of this worker in resident bytes: the scenario's `max_rss`, else the run's.
    pub max_rss: u64,
    /// Whether to probe who holds the growth when a look would call it a leak, and extend the
    /// run while bounded holders fill (see [`crate::holders`]); off only for the accuracy
    /// bench's record of the rule without it.
    #[serde(default = "yes")]
    pub probe_holders: bool,
    /// `PYTHONHASHSEED` of the worker and the seed of Python's `random` before `setup`
    /// (`--seed`), so reruns see the same dict layouts and the same "random" data.
    #[serde(default)]
    pub seed: u64,
}

/// serde's default for flags that are on unless a request says otherwise.
fn yes() -> bool {
    true
}

/// A run's options without flags or configuration (the defaults of [`crate::config`]), for
/// tests and benches; a real run's come from [`crate::config::RunConfig::settings`].
impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            confidence: crate::config::DEFAULT_CONFIDENCE,
            diagnose: DiagnoseMode::Auto,
            frames: crate::config::DEFAULT_FRAMES,
            chain_timeout_secs: crate::config::DEFAULT_CHAIN_TIMEOUT_SECS,
            max_rss: 4 << 30,
            probe_holders: true,
            seed: 0,
        }
    }
}

/// When a worker explains where memory went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnoseMode {
    /// Only when the measured samples give the verdict `leak` (the default).
    Auto,
    /// For every scenario that runs to the end (`--diagnose`).
    Always,
    /// Never (`--no-diagnose`): the fastest run.
    Never,
}

/// A Python environment (a venv or another installation of the same minor version) whose
/// site-packages replace the embedded interpreter's own.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PythonEnvironment {
    /// The environment's interpreter; becomes `sys.executable` so subprocesses use it.
    pub executable: PathBuf,
    /// `sys.prefix` of the environment, for display.
    pub prefix: PathBuf,
    /// Its `X.Y.Z` version.
    pub version: String,
    /// Its site-packages folders, in its own order; `.pth` files in them are honoured.
    pub site_packages: Vec<PathBuf>,
    /// A venv of the embedded installation itself: the worker starts CPython as its
    /// `executable`, so CPython sets the venv up as running it would, and `site_packages` are
    /// not swapped in by hand.
    pub native: bool,
}

/// Which part of a scenario the worker is in, so errors and progress can say where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Interpreter start-up, `sys.path` set-up and the `call:` import.
    Prepare,
    /// The scenario's `setup` code.
    Setup,
    /// Iterations that run before measuring and are not fitted.
    Warmup,
    /// Measured iterations.
    Measure,
    /// A few iterations after the measured ones with tracemalloc on, for its byte figure.
    Trace,
    /// Extra iterations after the measured ones, to find where memory goes and who holds it.
    Diagnose,
    /// The scenario's `teardown` code.
    Teardown,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            // Interpreter start, paths, compiling the code, importing `call`'s module.
            Phase::Prepare => "start-up",
            Phase::Setup => "setup",
            Phase::Warmup => "warmup",
            Phase::Measure => "run",
            Phase::Trace => "traced window",
            Phase::Diagnose => "diagnosis",
            Phase::Teardown => "teardown",
        })
    }
}

/// One measurement of every metric, taken after a full `gc.collect()`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Iterations completed when the sample was taken (0 = right after setup).
    pub iteration: u64,
    /// Values in the order of [`Metric::ALL`].
    pub values: [f64; Metric::ALL.len()],
}

impl Sample {
    /// The value of one metric.
    pub fn get(&self, metric: Metric) -> f64 {
        let index = Metric::ALL
            .iter()
            .position(|m| *m == metric)
            .expect("Metric::ALL lists every metric");
        self.values[index]
    }
}

/// Where a sample was taken, which decides which of its figures count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    /// Right after setup or during warmup: shown, never fitted.
    Warmup,
    /// During the measured run: fitted for every metric the plan reads then (all but
    /// tracemalloc unless the scenario is traced throughout, see [`crate::sampling`]).
    Measure,
    /// In the traced window after the measured run: fitted for tracemalloc only.
    Trace,
}

/// A message from the worker to the runner.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The interpreter is up; what it is.
    Started {
        /// `sys.version` of the embedded interpreter.
        python_version: String,
        /// Worker process id, for diagnostics.
        pid: u32,
    },
    /// The worker moved on to a new phase.
    Phase {
        /// The phase now running.
        phase: Phase,
    },
    /// A measurement.
    Sample {
        /// The sample.
        sample: Sample,
        /// Which part of the run it belongs to, which decides what it is fitted for.
        kind: SampleKind,
    },
    /// Iterations completed so far, sent at most a few times a second.
    Progress {
        /// Iterations completed, warmup included.
        iteration: u64,
    },
    /// Scenario code raised; the worker stops after sending this.
    Failed {
        /// Where it happened.
        phase: Phase,
        /// The iteration that raised, when in warmup or run.
        iteration: Option<u64>,
        /// The exception type and message, e.g. `ZeroDivisionError: division by zero`.
        message: String,
        /// The formatted Python traceback.
        traceback: String,
    },
    /// The workload skipped itself (a `pytest` test's skip or expected failure); the worker
    /// stops after sending this.
    Skipped {
        /// Where it happened.
        phase: Phase,
        /// The iteration that skipped, when in warmup or run.
        iteration: Option<u64>,
        /// pytest's reason, e.g. `skipped: needs network` or `xfail: known bug`.
        reason: String,
        /// pytest's full report of the skip.
        report: String,
    },
    /// Where memory went, from the diagnosis window.
    Diagnosis {
        /// The findings.
        diagnosis: Box<Diagnosis>,
    },
    /// Who held the growth at a look that would have called it a leak, and what the worker did
    /// about it (see [`crate::holders`]); the runner replays the verdict from it.
    Holders {
        /// The probe, its outcome and the holders' sizes.
        report: Box<HolderReport>,
    },
    /// The measured rounds are over: the verdict of the look the worker stopped at, and why it
    /// stopped there. The worker acts on it (it diagnoses a leak, and runs no further look);
    /// the runner records it as the scenario's stop and checks its own replay of the looks on
    /// the same samples against it (see `runner::judge`), so that the two sides of the verdict
    /// rule cannot drift apart unseen.
    Stopped {
        /// The verdict at that look: `inconclusive` when the last look did not decide either.
        verdict: Verdict,
        /// Which look, how many iterations it measured, and why measuring stopped there.
        stop: Stop,
    },
    /// The worker's watchdog thread found a limit exceeded; the worker kills itself right after
    /// sending this.
    Watchdog {
        /// Which limit.
        limit: WatchdogLimit,
        /// The iteration that was running, if any (none in setup, sampling or teardown).
        iteration: Option<u64>,
    },
    /// Teardown finished; the scenario ran to the end.
    Finished {
        /// Seconds spent per phase, for the time split in reports.
        timings: Timings,
    },
}

/// A limit the worker's watchdog enforces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WatchdogLimit {
    /// One iteration ran longer than the scenario's `iteration_timeout`.
    IterationTimeout {
        /// The limit in seconds.
        limit_secs: f64,
    },
    /// The worker's resident memory went over its cap.
    MemoryCap {
        /// Resident bytes seen.
        resident: u64,
        /// The cap in bytes.
        cap: u64,
    },
}

/// Where a worker's time went, in seconds. results.json publishes it as its own
/// [`crate::results::Timings`], which keeps the defaults that older files need.
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
    /// The traced window after the measured run: its iterations and samples.
    pub trace: f64,
    /// The diagnosis window: its iterations, checkpoints and chain search.
    pub diagnosis: f64,
    /// The `teardown` code.
    pub teardown: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_stop_reads_back_as_sent() {
        // The runner checks its replay only against a stop it could decode: a message that no
        // longer decodes would be skipped as garbage and the check silently skipped with it.
        let stop = Stop {
            reason: crate::verdict::StopReason::MaxIterations,
            measured_iterations: 4000,
            look: 3,
            looks: 3,
            confidence: 0.9983,
        };
        let mut channel = serde_json::to_vec(&WorkerMessage::Stopped {
            verdict: Verdict::Inconclusive,
            stop,
        })
        .unwrap();
        channel.push(b'\n');
        let mut read = Vec::new();
        read_messages(channel.as_slice(), |m| {
            read.push(m);
            true
        });
        assert!(
            matches!(
                read.as_slice(),
                [WorkerMessage::Stopped { verdict: Verdict::Inconclusive, stop: s }] if *s == stop
            ),
            "{read:?}"
        );
    }

    #[test]
    fn garbage_and_overlong_lines_cost_only_themselves() {
        let progress = |iteration| WorkerMessage::Progress { iteration };
        let mut channel = Vec::new();
        for (i, junk) in [&b"not json at all"[..], &[b'x'; 500][..], b"{\"kind\":"]
            .iter()
            .enumerate()
        {
            serde_json::to_writer(&mut channel, &progress(i as u64)).unwrap();
            channel.push(b'\n');
            channel.extend_from_slice(junk);
            channel.push(b'\n');
        }
        // A last line without its newline (the worker was killed mid-write) is dropped.
        serde_json::to_writer(&mut channel, &progress(99)).unwrap();

        let mut read = Vec::new();
        read_limited(channel.as_slice(), 100, |m| {
            read.push(m);
            true
        });
        let iterations: Vec<u64> = read
            .iter()
            .map(|m| match m {
                WorkerMessage::Progress { iteration } => *iteration,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(iterations, [0, 1, 2]);

        let mut first = None;
        read_limited(channel.as_slice(), 100, |m| {
            first = Some(m);
            false
        });
        assert!(matches!(
            first,
            Some(WorkerMessage::Progress { iteration: 0 })
        ));
    }
}
