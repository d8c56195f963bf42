//! The native diagnosis window: after the diagnosis window, and only when the C allocator or
//! resident memory grew by more than twice what its traced allocation sites explain, two more
//! windows of iterations
//! under memray (`src/python/native.py`) name the native allocations that grew with the window.
//! It never changes the verdict, and without memray in the scenario's environment it only
//! records the gap ([`NativeGap`]), which the reports word with what to install.

use std::time::Instant;

use crate::diagnosis::{Diagnosis, NativeDiagnosis, NativeGap, NativeWindow};
use crate::metric::Metric;
use crate::protocol::{Phase, WorkerRequest};

use super::Failure;
use super::interpreter::Interpreter;

/// The bytes per iteration the traced sites of `diagnosis` account for, when that is less than
/// half of `growth` (of `malloc` or `rss`, per iteration): the rest is memory tracemalloc cannot
/// see.
pub(super) fn unexplained(diagnosis: &Diagnosis, growth: f64) -> Option<f64> {
    let traced: f64 = diagnosis
        .sites
        .iter()
        .map(|site| site.bytes_per_iteration.max(0.0))
        // From +0.0: an empty `sum()` of floats is -0.0, which results.json would show.
        .fold(0.0, |sum, bytes| sum + bytes);
    (traced < growth / 2.0).then_some(traced)
}

/// Iterations of the two windows for a scenario of `iterations` measured iterations: the
/// longer three times the shorter, so that a leak's share triples while a one-off stays.
fn window_lengths(iterations: u64) -> [u64; 2] {
    let short = (iterations / 10).clamp(10, 50);
    [short, 3 * short]
}

/// Runs the native windows from iteration `start` when memray is importable and records on
/// `diagnosis` the gap (`growth`: the metric and its growth per iteration that the traced sites,
/// `traced` per iteration, do not explain), what the windows made of it, and the sites they
/// found. Returns the iteration reached. A failure of memray or of the native code itself is
/// recorded in the gap's window; an exception of the scenario's own iterations stays a scenario
/// error, as in the diagnosis window.
pub(super) fn diagnose(
    interpreter: &Interpreter,
    request: &WorkerRequest,
    start: u64,
    (metric, growth): (Metric, f64),
    traced: f64,
    diagnosis: &mut Diagnosis,
) -> Result<u64, Failure> {
    let (done, window) = run_windows(interpreter, request, start, diagnosis)?;
    diagnosis.native_gap = Some(NativeGap {
        metric,
        bytes_per_iteration: growth,
        traced_bytes_per_iteration: traced,
        window,
    });
    Ok(done)
}

/// The native windows themselves: the iteration reached and how they went.
fn run_windows(
    interpreter: &Interpreter,
    request: &WorkerRequest,
    start: u64,
    diagnosis: &mut Diagnosis,
) -> Result<(u64, NativeWindow), Failure> {
    let version = interpreter.native_version().unwrap_or_default();
    if version.is_empty() {
        let python = request.environment.as_ref().map_or_else(
            || "python3".to_string(),
            |env| env.executable.display().to_string(),
        );
        return Ok((start, NativeWindow::MemrayMissing { python }));
    }
    let clock = Instant::now();
    let lengths = window_lengths(request.scenario.iterations);
    let folder = match tempfile::Builder::new()
        .prefix("leakcheck-native-")
        .tempdir()
    {
        Ok(folder) => folder,
        Err(err) => {
            let reason = format!("temporary folder: {err}");
            return Ok((start, NativeWindow::NotRun { reason }));
        }
    };
    let path = folder.path().to_string_lossy().into_owned();
    let mut done = start;
    for (index, length) in (0u32..).zip(lengths) {
        if let Err(failure) = interpreter.native_begin(&path, index) {
            let reason = failure.message;
            return Ok((done, NativeWindow::NotRun { reason }));
        }
        let ran = interpreter.run_chunk(Phase::Diagnose, done, done + length);
        // The tracker stops before an error of the scenario's is reported.
        let ended = interpreter.native_end();
        ran?;
        done += length;
        if let Err(failure) = ended {
            let reason = failure.message;
            return Ok((done, NativeWindow::NotCompleted { reason }));
        }
    }
    let found = interpreter
        .native_finish(lengths[0], lengths[1])
        .map_err(|failure| failure.message)
        .and_then(|json| {
            serde_json::from_str::<NativeDiagnosis>(&json).map_err(|err| err.to_string())
        });
    let window = match found {
        Ok(mut native) => {
            // The whole window, its iterations included: they run only for it.
            native.cost_secs = clock.elapsed().as_secs_f64();
            let window = if native.sites.is_empty() {
                NativeWindow::NothingGrew
            } else {
                NativeWindow::Found
            };
            diagnosis.native = Some(native);
            window
        }
        Err(reason) => NativeWindow::Unreadable { reason },
    };
    Ok((done, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_window_is_three_times_the_short_one_within_bounds() {
        assert_eq!(window_lengths(200), [20, 60]);
        assert_eq!(window_lengths(30), [10, 30]);
        assert_eq!(window_lengths(5000), [50, 150]);
    }
}
