//! The native diagnosis window: after the diagnosis window, and only when the C allocator or
//! resident memory grew by more than twice what its traced allocation sites explain, two more
//! windows of iterations
//! under memray (`src/python/native.py`) name the native allocations that grew with the window.
//! It never changes the verdict, and without memray in the scenario's environment it only
//! leaves a note saying what to install.

use std::time::Instant;

use crate::diagnosis::{Diagnosis, NativeDiagnosis};
use crate::metric::Metric;
use crate::protocol::{Phase, WorkerRequest};
use crate::units::format_bytes;

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
        .sum();
    (traced < growth / 2.0).then_some(traced)
}

/// Iterations of the two windows for a scenario of `iterations` measured iterations: the
/// longer three times the shorter, so that a leak's share triples while a one-off stays.
fn window_lengths(iterations: u64) -> [u64; 2] {
    let short = (iterations / 10).clamp(10, 50);
    [short, 3 * short]
}

/// Runs the native windows from iteration `start` when memray is importable and attaches what
/// they found to `diagnosis` (`growth`: the metric and its growth per iteration that the traced
/// sites do not explain), with a note on the native memory either way. Returns the iteration
/// reached. A failure of memray or of the native code itself becomes a note; an exception of
/// the scenario's own iterations stays a scenario error, as in the diagnosis window.
pub(super) fn diagnose(
    interpreter: &Interpreter,
    request: &WorkerRequest,
    start: u64,
    (metric, growth): (Metric, f64),
    traced: f64,
    diagnosis: &mut Diagnosis,
) -> Result<u64, Failure> {
    let what = match metric {
        Metric::Rss => "resident memory (rss)",
        _ => "the C allocator (malloc)",
    };
    let unexplained = format!(
        "{what} grew {}/iter, of which the traced allocation sites account for {}/iter: the \
         rest is native memory (a C extension, ctypes or a native library) that tracemalloc \
         cannot see",
        format_bytes(growth),
        format_bytes(traced)
    );
    let version = interpreter.native_version().unwrap_or_default();
    if version.is_empty() {
        diagnosis.notes.push(format!(
            "{unexplained}; install memray into the scenario's environment (`{} -m pip install \
             memray`, Linux only) and leakcheck names the native allocation sites that grew, \
             with the Python line that called into them",
            request.environment.as_ref().map_or_else(
                || "python3".to_string(),
                |env| env.executable.display().to_string()
            )
        ));
        return Ok(start);
    }
    let clock = Instant::now();
    let lengths = window_lengths(request.scenario.iterations);
    let folder = match tempfile::Builder::new()
        .prefix("leakcheck-native-")
        .tempdir()
    {
        Ok(folder) => folder,
        Err(err) => {
            diagnosis.notes.push(format!(
                "{unexplained}; the native window could not run (temporary folder: {err})"
            ));
            return Ok(start);
        }
    };
    let path = folder.path().to_string_lossy().into_owned();
    let mut done = start;
    for (index, length) in (0u32..).zip(lengths) {
        if let Err(failure) = interpreter.native_begin(&path, index) {
            diagnosis.notes.push(format!(
                "{unexplained}; the native window could not run ({})",
                failure.message
            ));
            return Ok(done);
        }
        let ran = interpreter.run_chunk(Phase::Diagnose, done, done + length);
        // The tracker stops before an error of the scenario's is reported.
        let ended = interpreter.native_end();
        ran?;
        done += length;
        if let Err(failure) = ended {
            diagnosis.notes.push(format!(
                "{unexplained}; the native window could not be completed ({})",
                failure.message
            ));
            return Ok(done);
        }
    }
    let found = interpreter
        .native_finish(lengths[0], lengths[1])
        .map_err(|failure| failure.message)
        .and_then(|json| {
            serde_json::from_str::<NativeDiagnosis>(&json).map_err(|err| err.to_string())
        });
    match found {
        Ok(mut native) => {
            // The whole window, its iterations included: they run only for it.
            native.cost_secs = clock.elapsed().as_secs_f64();
            diagnosis.notes.push(if native.sites.is_empty() {
                format!(
                    "{unexplained}; memray saw no native allocation grow with the window (it \
                     misses calls through pointers from dlsym, such as ctypes makes)"
                )
            } else {
                format!("{unexplained}; the native sites above are memray's")
            });
            diagnosis.native = Some(native);
        }
        Err(message) => diagnosis.notes.push(format!(
            "{unexplained}; the native window could not be read ({message})"
        )),
    }
    Ok(done)
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
