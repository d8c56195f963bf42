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

/// The native windows themselves: the iteration reached and how they went. memray's come
/// first when it can be imported; when it is missing, or saw nothing grow, leakcheck's malloc
/// recorder runs windows of its own (it sees the calls memray misses, and names the Python
/// line without memray).
fn run_windows(
    interpreter: &Interpreter,
    request: &WorkerRequest,
    start: u64,
    diagnosis: &mut Diagnosis,
) -> Result<(u64, NativeWindow), Failure> {
    let version = interpreter.native_version().unwrap_or_default();
    let clock = Instant::now();
    let lengths = window_lengths(request.scenario.iterations);
    let mut done = start;
    if !version.is_empty() {
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
        let found;
        (done, found) = windows(interpreter, done, lengths, (&path, "memray"))?;
        match found {
            Ok(native) if native.sites.is_empty() => {}
            Ok(mut native) => {
                let mut window = NativeWindow::Found;
                if native.sites.iter().any(|site| site.python.is_none()) {
                    // memray saw no Python frame (inside a greenlet, say): the recorder's
                    // windows find the line.
                    let recorded;
                    (done, recorded) = windows(interpreter, done, lengths, ("", "recorder"))?;
                    if let Ok(recorded) = recorded
                        && lend_lines(&mut native, &recorded)
                    {
                        window = NativeWindow::FoundWithRecordedLines;
                    }
                }
                return Ok((done, found_by(native, clock, diagnosis, window)));
            }
            Err(window) => return Ok((done, window)),
        }
    }
    let found;
    (done, found) = windows(interpreter, done, lengths, ("", "recorder"))?;
    let window = match found {
        Ok(native) if native.sites.is_empty() && version.is_empty() => {
            NativeWindow::MemrayMissing {
                python: python_of(request),
            }
        }
        Ok(native) if native.sites.is_empty() => NativeWindow::NothingGrew,
        Ok(native) => {
            let window = if version.is_empty() {
                NativeWindow::RecordedWithoutMemray {
                    python: python_of(request),
                }
            } else {
                NativeWindow::RecordedPastMemray
            };
            found_by(native, clock, diagnosis, window)
        }
        Err(window) => window,
    };
    Ok((done, window))
}

/// Gives each of memray's sites without a Python frame the lines of a site of the recorder's
/// that grew at about the same rate (within a third), each recorder site lent once. True when
/// any was.
fn lend_lines(memray: &mut NativeDiagnosis, recorded: &NativeDiagnosis) -> bool {
    let mut lent = vec![false; recorded.sites.len()];
    let mut any = false;
    for site in memray.sites.iter_mut().filter(|site| site.python.is_none()) {
        let rate = site.bytes_per_iteration;
        let matching = recorded
            .sites
            .iter()
            .zip(lent.iter_mut())
            .find(|(other, lent)| {
                !**lent
                    && other.python.is_some()
                    && (0.75..=1.34).contains(&(other.bytes_per_iteration / rate))
            });
        if let Some((other, lent)) = matching {
            site.python.clone_from(&other.python);
            site.caller.clone_from(&other.caller);
            *lent = true;
            any = true;
        }
    }
    any
}

/// Records `native` on `diagnosis` with the whole native window's cost (its iterations, run only
/// for it, included) and returns `window`.
fn found_by(
    mut native: NativeDiagnosis,
    clock: Instant,
    diagnosis: &mut Diagnosis,
    window: NativeWindow,
) -> NativeWindow {
    native.cost_secs = clock.elapsed().as_secs_f64();
    diagnosis.native = Some(native);
    window
}

/// The Python to install memray with.
fn python_of(request: &WorkerRequest) -> String {
    request.environment.as_ref().map_or_else(
        || "python3".to_string(),
        |env| env.executable.display().to_string(),
    )
}

/// Two windows of `lengths` iterations from iteration `start` under `tracer` (memray writing
/// into `folder`, or the recorder), then their sites. Returns the iteration reached, and the
/// sites or how the windows failed.
fn windows(
    interpreter: &Interpreter,
    start: u64,
    lengths: [u64; 2],
    (folder, tracer): (&str, &str),
) -> Result<(u64, Result<NativeDiagnosis, NativeWindow>), Failure> {
    let mut done = start;
    for (index, length) in (0u32..).zip(lengths) {
        if let Err(failure) = interpreter.native_begin(folder, index, tracer) {
            let reason = failure.message;
            return Ok((done, Err(NativeWindow::NotRun { reason })));
        }
        let ran = interpreter.run_chunk(Phase::Diagnose, done, done + length);
        // The tracer stops before an error of the scenario's is reported.
        let ended = interpreter.native_end();
        ran?;
        done += length;
        if let Err(failure) = ended {
            let reason = failure.message;
            return Ok((done, Err(NativeWindow::NotCompleted { reason })));
        }
    }
    let found = interpreter
        .native_finish(lengths[0], lengths[1])
        .map_err(|failure| failure.message)
        .and_then(|json| {
            serde_json::from_str::<NativeDiagnosis>(&json).map_err(|err| err.to_string())
        })
        .map_err(|reason| NativeWindow::Unreadable { reason });
    Ok((done, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(bytes: f64, line: Option<u32>) -> crate::diagnosis::NativeSite {
        crate::diagnosis::NativeSite {
            bytes_per_iteration: bytes,
            allocations_per_iteration: 1.0,
            python: line.map(|line| crate::diagnosis::PythonFrame {
                file: "work.py".to_string(),
                line,
                function: "spawn".to_string(),
            }),
            caller: None,
            native: Vec::new(),
        }
    }

    /// Only memray's sites without a Python frame borrow a line, from a recorder site of about
    /// the same rate, each at most once.
    #[test]
    fn a_site_without_a_python_frame_borrows_the_line_of_one_that_grew_alike() {
        let mut memray = NativeDiagnosis {
            sites: vec![
                site(16384.0, None),
                site(4096.0, Some(3)),
                site(16384.0, None),
            ],
            ..NativeDiagnosis::default()
        };
        let recorded = NativeDiagnosis {
            sites: vec![site(100.0, Some(9)), site(16400.0, Some(174))],
            ..NativeDiagnosis::default()
        };
        assert!(lend_lines(&mut memray, &recorded));
        let lines: Vec<_> = memray
            .sites
            .iter()
            .map(|s| s.python.as_ref().map(|f| f.line))
            .collect();
        assert_eq!(lines, [Some(174), Some(3), None]);
        let mut unmatched = NativeDiagnosis {
            sites: vec![site(1000.0, None)],
            ..NativeDiagnosis::default()
        };
        assert!(!lend_lines(&mut unmatched, &recorded));
    }

    #[test]
    fn the_long_window_is_three_times_the_short_one_within_bounds() {
        assert_eq!(window_lengths(200), [20, 60]);
        assert_eq!(window_lengths(30), [10, 30]);
        assert_eq!(window_lengths(5000), [50, 150]);
    }
}
