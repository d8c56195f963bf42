//! Why a worker did not run its scenario to the end, and the one line reports say about it.
//!
//! The facts are [`Failure`], the typed record results.json keeps; [`WorkerFailure`] adds the
//! text that goes with them (a traceback, pytest's report, faulthandler's stack) and words the
//! summary, so every way a worker can end is described here, in one place, whoever found it:
//! the watch ([`super::watch`]), the pytest collection ([`super`]) or the spawn itself.

use super::signals;
use crate::protocol::Phase;
use crate::results::Failure;
use crate::units::format_bytes;

/// Why a worker did not run its scenario to the end: the facts results.json records
/// ([`Failure`]), and the text that goes with them.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerFailure {
    /// What happened.
    pub fact: Failure,
    /// The Python traceback, pytest's report, or the stack faulthandler printed on a fatal
    /// signal: shown with the error. Never empty.
    pub text: Option<String>,
}

impl From<Failure> for WorkerFailure {
    fn from(fact: Failure) -> Self {
        WorkerFailure { fact, text: None }
    }
}

impl WorkerFailure {
    /// `fact` with its text, unless that is empty.
    pub fn with_text(fact: Failure, text: impl Into<String>) -> Self {
        let text = text.into();
        WorkerFailure {
            fact,
            text: (!text.is_empty()).then_some(text),
        }
    }

    /// One line for the `error` field of reports.
    pub fn summary(&self) -> String {
        match &self.fact {
            Failure::Exception {
                phase,
                iteration,
                message,
            } => match iteration {
                Some(i) => format!("{message} (in {phase}, iteration {i})"),
                None => format!("{message} (in {phase})"),
            },
            Failure::Skipped {
                phase,
                iteration,
                reason,
            } => match iteration {
                Some(i) => format!("{reason} (in {phase}, iteration {i})"),
                // Skipped before the worker started: there is no phase to name.
                None if *phase == Phase::Prepare => reason.clone(),
                None => format!("{reason} (in {phase})"),
            },
            Failure::Crashed {
                phase,
                iteration,
                signal,
                exit_code,
            } => format!(
                "worker {} in {phase} after {iteration} iterations",
                describe_exit(*signal, *exit_code)
            ),
            Failure::TimedOut {
                phase,
                iteration,
                limit_secs,
            } => format!(
                "timed out after {limit_secs} s in {phase} after {iteration} iterations (scenario `timeout`)"
            ),
            Failure::IterationTimedOut {
                phase,
                iteration,
                limit_secs,
            } => format!(
                "iteration {iteration} ran longer than {limit_secs} s in {phase} and was killed (scenario `iteration_timeout`)"
            ),
            Failure::MemoryCap {
                phase,
                iteration,
                resident,
                cap,
                group,
            } => {
                let place = match (phase, iteration) {
                    (Phase::Warmup | Phase::Measure | Phase::Trace | Phase::Diagnose, Some(i)) => {
                        format!("at iteration {i}")
                    }
                    _ => format!("in {phase}"),
                };
                let whose = if *group {
                    "worker and its subprocesses"
                } else {
                    "worker"
                };
                format!(
                    "exceeded memory cap {place} ({whose}: {} resident, cap {}; raise `max_rss` or --max-rss if this much is expected)",
                    format_bytes(*resident as f64),
                    format_bytes(*cap as f64),
                )
            }
            Failure::Interrupted => "interrupted before it finished".to_string(),
            Failure::SignalledLeakcheck { phase, signal } => format!(
                "sent {} to leakcheck itself in {phase} (`os.kill(os.getppid(), …)`); leakcheck \
                 ignored it and stopped this scenario",
                signals::name(*signal)
            ),
            Failure::Spawn { reason } => format!("could not start the worker: {reason}"),
        }
    }

    /// The traceback or report that goes with the failure, when there is one.
    pub fn traceback(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// Whether the run was interrupted before the scenario finished.
    pub fn interrupted(&self) -> bool {
        self.fact == Failure::Interrupted
    }

    /// Whether the failure is itself a finding about memory: the cap was exceeded while
    /// iterations ran, which makes the verdict `leak` rather than `error`.
    pub fn is_leak(&self) -> bool {
        matches!(
            self.fact,
            Failure::MemoryCap {
                phase: Phase::Warmup | Phase::Measure | Phase::Trace | Phase::Diagnose,
                ..
            }
        )
    }
}

/// The report CPython's faulthandler writes to stderr on a fatal signal (`Fatal Python error:
/// Segmentation fault` and the stack of each thread), when present.
pub(super) fn fatal_error_report(stderr: &str) -> Option<String> {
    let start = stderr.rfind("Fatal Python error:")?;
    Some(stderr[start..].trim_end().to_string())
}

/// "exited with code 3", "was killed by signal 11 (SIGSEGV, Segmentation fault)", or "vanished"
/// when neither is known.
fn describe_exit(signal: Option<i32>, exit_code: Option<i32>) -> String {
    match (exit_code, signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal} ({})", signal_name(signal)),
        (None, None) => "vanished".to_string(),
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    };
    // SAFETY: strsignal returns a pointer to a static or thread-local string, or NULL.
    let description = unsafe {
        let text = libc::strsignal(signal);
        if text.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned()
        }
    };
    format!("{name}, {description}")
}
