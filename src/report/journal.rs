//! `results.json` kept up to date while a run goes on: rewritten atomically after every
//! scenario that finishes, so a leakcheck killed with SIGKILL (or by the OOM killer), or one
//! whose final report write never comes, still leaves every finished scenario on disk, in a file
//! `leakcheck report` renders. While the run goes on, the file says `"interrupted": true`: it
//! holds the scenarios finished so far, not the whole run. When the run ends
//! ([`Event::RunFinished`]), a write still put off is made with the run's own results, which
//! the caller's reports then replace. Hyperfine does the same, writing its exports after each
//! benchmark.
//!
//! The file grows with the run, so rewriting it after every scenario of a suite of thousands
//! would cost time quadratic in its length: a write waits until [`WRITE_SPACING`] times the
//! previous write's duration has passed, and a skipped one happens at the next event after that
//! (progress arrives every `PROGRESS_EVERY` while a scenario runs). That keeps the journal under 5 % of the run;
//! with writes of a few milliseconds it is every scenario in practice.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use crate::results::{RunResults, ScenarioResult};
use crate::runner::{Event, EventSink, RunSettings, assemble};

/// A write waits for this many times the previous write's duration to have passed.
const WRITE_SPACING: u32 = 20;

/// An [`EventSink`] that passes every event on to `inner` and rewrites `results.json` in `dir`
/// after each finished scenario.
pub struct Journal<'a> {
    inner: &'a mut dyn EventSink,
    settings: &'a RunSettings,
    path: PathBuf,
    started: (SystemTime, Instant),
    finished: Vec<Option<ScenarioResult>>,
    /// Set after the first failed write, which is reported once; the run goes on.
    failed: bool,
    /// When the next write may happen (see [`WRITE_SPACING`]).
    next_write: Instant,
    /// A scenario finished since the last write.
    dirty: bool,
}

impl<'a> Journal<'a> {
    /// A journal into `dir/results.json`, forwarding to `inner`.
    pub fn new(inner: &'a mut dyn EventSink, settings: &'a RunSettings, dir: PathBuf) -> Self {
        Journal {
            inner,
            settings,
            path: dir.join(super::json::FILE_NAME),
            started: (SystemTime::now(), Instant::now()),
            finished: Vec::new(),
            failed: false,
            next_write: Instant::now(),
            dirty: false,
        }
    }

    /// Writes the file if a scenario finished since the last write and the spacing allows.
    fn write_if_due(&mut self) {
        let began = Instant::now();
        if !self.dirty || began < self.next_write {
            return;
        }
        let results: Vec<ScenarioResult> = self.finished.iter().flatten().cloned().collect();
        let mut run = assemble(
            self.settings,
            self.started.0,
            self.started.1.elapsed(),
            results,
        );
        run.interrupted = true;
        self.write(&run);
        self.next_write = Instant::now() + began.elapsed() * WRITE_SPACING;
    }

    /// Replaces the file with `run`, warning once when it cannot.
    fn write(&mut self, run: &RunResults) {
        self.dirty = false;
        let written =
            super::json::bytes(run).and_then(|bytes| super::write_atomically(&self.path, &bytes));
        if let Err(err) = written
            && !self.failed
        {
            self.failed = true;
            eprintln!(
                "leakcheck: warning: cannot keep {} up to date: {err:#}",
                self.path.display()
            );
        }
    }
}

impl EventSink for Journal<'_> {
    fn event(&mut self, event: &Event<'_>) {
        self.inner.event(event);
        match event {
            Event::RunStarted { total } => {
                self.started = (SystemTime::now(), Instant::now());
                self.finished = vec![None; *total];
            }
            Event::ScenarioFinished { index, result } => {
                if let Some(slot) = self.finished.get_mut(*index) {
                    *slot = Some((*result).clone());
                }
                self.dirty = true;
            }
            // A write the spacing put off would otherwise wait for the caller's reports: write
            // the run as it ended now, so that an error or a kill before those still leaves
            // every finished scenario on disk. The caller's results.json then replaces it.
            Event::RunFinished { results } => {
                if self.dirty {
                    self.write(results);
                }
                return;
            }
            _ => {}
        }
        self.write_if_due();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::WorkerOptions;
    use crate::results::examples;
    use crate::runner::workers::WorkerProgram;
    use crate::verdict::Verdict;

    /// Counts what it is passed on.
    struct Counter(usize);

    impl EventSink for Counter {
        fn event(&mut self, _: &Event<'_>) {
            self.0 += 1;
        }
    }

    fn written(dir: &std::path::Path) -> RunResults {
        let text = std::fs::read_to_string(dir.join(super::super::json::FILE_NAME)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_write_put_off_is_made_when_the_run_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let settings = RunSettings {
            confidence: 0.99,
            fail_on_inconclusive: false,
            environment: None,
            program: WorkerProgram {
                path: "leakcheck-worker".into(),
                libdir: "lib".into(),
            },
            worker: WorkerOptions::default(),
            jobs: 1,
            fork_server: false,
        };
        let first = examples::scenario("first", Verdict::Pass, (0.0, 1.0));
        let second = examples::scenario("second", Verdict::Leak, (64.0, 1.0));
        let mut inner = Counter(0);
        let mut journal = Journal::new(&mut inner, &settings, dir.path().to_path_buf());
        journal.event(&Event::RunStarted { total: 2 });
        journal.event(&Event::ScenarioFinished {
            index: 0,
            result: &first,
        });
        let after_first = written(dir.path());
        assert!(after_first.interrupted);
        assert_eq!(after_first.scenarios.len(), 1);

        // The spacing puts the next write off (set here, not timed).
        journal.next_write = Instant::now() + std::time::Duration::from_secs(3600);
        journal.event(&Event::ScenarioFinished {
            index: 1,
            result: &second,
        });
        assert_eq!(written(dir.path()).scenarios.len(), 1);

        let run = examples::run(vec![first.clone(), second.clone()]);
        journal.event(&Event::RunFinished { results: &run });
        let text = std::fs::read(dir.path().join(super::super::json::FILE_NAME)).unwrap();
        assert_eq!(text, super::super::json::bytes(&run).unwrap());
        assert_eq!(inner.0, 4, "every event is passed on");
    }
}
