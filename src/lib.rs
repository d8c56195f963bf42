//! leakcheck: a test harness that finds memory leaks in Python code.
//!
//! The pipeline reads top to bottom: [`scenario`] files are loaded and validated, the
//! [`runner`] starts one [`worker`] process per scenario which embeds CPython and streams
//! samples, read on the [`sampling`] plan, over the [`protocol`] (forked from a warmed [`fork_server`]), [`stats`] fits growth per iteration, [`verdict`] turns fits
//! into pass/leak/inconclusive/error, [`results`] is the versioned record of a run, and
//! [`report`] writes the terminal summary and files; [`compare`] sets a run against a saved
//! baseline. [`app`] wires the subcommands together.

pub mod app;
pub mod cli;
pub mod compare;
pub mod config;
pub mod diagnosis;
pub mod fork_server;
pub mod holders;
pub mod input;
pub mod merge;
pub mod metric;
pub mod names;
pub mod protocol;
pub mod report;
pub mod results;
pub mod runner;
pub mod sampling;
pub mod scenario;
pub mod select;
pub mod stats;
pub mod units;
pub mod verdict;
/// The worker's settings that the parent hands it through the environment; the worker itself,
/// which embeds CPython, is the `leakcheck-worker` executable (`src/worker/main.rs`), so that
/// nothing linked into the parent needs libpython.
pub mod worker {
    pub mod allocator;
    pub mod library_path;
}
