//! `results.json` kept up to date while a run goes on: rewritten atomically after every
//! scenario that finishes, so a leakcheck killed with SIGKILL (or by the OOM killer), or one
//! whose final report write never comes, still leaves every finished scenario on disk, in a file
//! `leakcheck report` renders. Until the run's own reports replace it, the file says
//! `"interrupted": true`: it holds the scenarios finished so far, not the whole run. Hyperfine
//! does the same, writing its exports after each benchmark.
//!
//! The file grows with the run, so rewriting it after every scenario of a suite of thousands
//! would cost time quadratic in its length: a write waits until [`WRITE_SPACING`] times the
//! previous write's duration has passed, and a skipped one happens at the next event after that
//! (progress arrives at least with every sample). That keeps the journal under 5 % of the run;
//! with writes of a few milliseconds it is every scenario in practice.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use crate::results::ScenarioResult;
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
        self.dirty = false;
        let results: Vec<ScenarioResult> = self.finished.iter().flatten().cloned().collect();
        let mut run = assemble(
            self.settings,
            self.started.0,
            self.started.1.elapsed(),
            results,
        );
        run.interrupted = true;
        let written =
            super::json::bytes(&run).and_then(|bytes| super::write_atomically(&self.path, &bytes));
        self.next_write = Instant::now() + began.elapsed() * WRITE_SPACING;
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
            _ => {}
        }
        self.write_if_due();
    }
}
