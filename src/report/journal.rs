//! `results.json` kept up to date while a run goes on: rewritten atomically after every
//! scenario that finishes, so a leakcheck killed with SIGKILL (or by the OOM killer), or one
//! whose final report write never comes, still leaves every finished scenario on disk, in a file
//! `leakcheck report` renders. Until the run's own reports replace it, the file says
//! `"interrupted": true`: it holds the scenarios finished so far, not the whole run. Hyperfine
//! does the same, writing its exports after each benchmark.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use super::Exporter;
use super::json::JsonExporter;
use crate::results::ScenarioResult;
use crate::runner::{Event, EventSink, RunSettings, assemble};

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
}

impl<'a> Journal<'a> {
    /// A journal into `dir/results.json`, forwarding to `inner`.
    pub fn new(inner: &'a mut dyn EventSink, settings: &'a RunSettings, dir: PathBuf) -> Self {
        Journal {
            inner,
            settings,
            path: dir.join(JsonExporter.file_name()),
            started: (SystemTime::now(), Instant::now()),
            finished: Vec::new(),
            failed: false,
        }
    }

    fn write(&mut self) {
        let results: Vec<ScenarioResult> = self.finished.iter().flatten().cloned().collect();
        let mut run = assemble(
            self.settings,
            self.started.0,
            self.started.1.elapsed(),
            results,
        );
        run.interrupted = true;
        let written = JsonExporter
            .render(&run)
            .and_then(|bytes| super::write_atomically(&self.path, &bytes));
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
                self.write();
            }
            _ => {}
        }
    }
}
