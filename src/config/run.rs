//! The settings of one `leakcheck run`, resolved once: command-line flags and `LEAKCHECK_*`
//! variables (clap has already merged those two) over the project configuration file over
//! built-in defaults, into an immutable [`RunConfig`] that the run command reads and nothing
//! changes after. Every built-in default of a run is written here, once; `cli.rs` and
//! [`WorkerOptions::default`] use these constants rather than repeating the values.
//!
//! The interpreter is not resolved here: `runner::environment::resolve` probes it and names
//! where it came from (flag, variable, configuration, virtual environment), which a merged path
//! would lose.

use std::path::PathBuf;

use super::ProjectConfig;
use crate::cli::RunArgs;
use crate::protocol::{DiagnoseMode, PythonEnvironment, WorkerOptions};
use crate::runner::{self, RunSettings, workers::WorkerProgram};

/// Two-sided confidence level of a run when neither `--confidence` nor the configuration sets
/// one.
pub const DEFAULT_CONFIDENCE: f64 = 0.99;

/// Report folder when neither `--report-dir` nor the configuration's `report_dir` sets one.
pub const DEFAULT_REPORT_DIR: &str = "reports";

/// Depth of the allocation tracebacks recorded while diagnosing (`--frames`).
pub const DEFAULT_FRAMES: u32 = 10;

/// Time budget in seconds of one scenario's referrer-chain search (`--chain-timeout`).
pub const DEFAULT_CHAIN_TIMEOUT_SECS: f64 = 3.0;

/// What a run was asked to do, every key resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Where the reports go: `--report-dir`, else the configuration's `report_dir`, else
    /// [`DEFAULT_REPORT_DIR`].
    pub report_dir: PathBuf,
    /// The run's nominal two-sided confidence: `--confidence`, else the configuration's, else
    /// [`DEFAULT_CONFIDENCE`].
    pub confidence: f64,
    /// How many scenarios run at once: `-j`, else the configuration's `jobs`, else one per CPU.
    pub jobs: usize,
    /// `--baseline`: an earlier results.json to compare with.
    pub baseline: Option<PathBuf>,
    /// `--fail-on-regression`.
    pub fail_on_regression: bool,
    /// `--fail-on-inconclusive`.
    pub fail_on_inconclusive: bool,
    /// `--max-iterations`: overrides every scenario's `max_iterations`.
    pub max_iterations: Option<u64>,
    /// `--seed`.
    pub seed: u64,
    /// `--quiet`.
    pub quiet: bool,
    /// Whether workers are forked from a warmed fork server (off with `--spawn`).
    pub fork_server: bool,
    /// `--diagnose` (always), `--no-diagnose` (never), else leaks only.
    pub diagnose: DiagnoseMode,
    /// `--frames`.
    pub frames: u32,
    /// `--chain-timeout`, never negative.
    pub chain_timeout_secs: f64,
    /// `--max-rss`; `None`: shared out by [`runner::limits::default_max_rss`] between the
    /// workers that run at once, which only the selected scenarios' number tells.
    pub max_rss: Option<u64>,
}

impl RunConfig {
    /// Resolves `args` (flags and environment) over `file` over the built-in defaults. Nothing
    /// here can fail: clap and the configuration loader have checked every value already.
    pub fn resolve(args: &RunArgs, file: Option<&ProjectConfig>) -> RunConfig {
        let file = file.cloned().unwrap_or_default();
        RunConfig {
            report_dir: args
                .report_dir
                .clone()
                .or(file.report_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_REPORT_DIR)),
            confidence: args
                .confidence
                .or(file.confidence)
                .unwrap_or(DEFAULT_CONFIDENCE),
            jobs: args
                .jobs
                .or(file.jobs)
                .map_or_else(default_jobs, usize::from),
            baseline: args.baseline.clone(),
            fail_on_regression: args.fail_on_regression,
            fail_on_inconclusive: args.fail_on_inconclusive,
            max_iterations: args.max_iterations,
            seed: args.seed,
            quiet: args.quiet,
            fork_server: !args.spawn,
            diagnose: if args.diagnose {
                DiagnoseMode::Always
            } else if args.no_diagnose {
                DiagnoseMode::Never
            } else {
                DiagnoseMode::Auto
            },
            frames: args.frames,
            chain_timeout_secs: args.chain_timeout.max(0.0),
            max_rss: args.max_rss,
        }
    }

    /// What the runner needs to run `scenarios` scenarios in `environment` with `program`.
    pub fn settings(
        &self,
        environment: PythonEnvironment,
        program: WorkerProgram,
        scenarios: usize,
    ) -> RunSettings {
        RunSettings {
            confidence: self.confidence,
            fail_on_inconclusive: self.fail_on_inconclusive,
            environment: Some(environment),
            program,
            worker: WorkerOptions {
                confidence: self.confidence,
                diagnose: self.diagnose,
                frames: self.frames,
                chain_timeout_secs: self.chain_timeout_secs,
                probe_holders: true,
                // Shared by the workers that can run at once: never more than the scenarios.
                max_rss: self
                    .max_rss
                    .unwrap_or_else(|| runner::limits::default_max_rss(self.jobs.min(scenarios))),
                seed: self.seed,
            },
            jobs: self.jobs,
            fork_server: self.fork_server,
        }
    }
}

/// One worker per CPU: scenarios are CPU-bound and each worker is single-threaded.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(flags: &[&str]) -> RunArgs {
        let argv = [&["leakcheck", "run"], flags].concat();
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Run(args)) => args,
            other => panic!("not a run: {other:?}"),
        }
    }

    fn file() -> ProjectConfig {
        ProjectConfig {
            report_dir: Some("from-file".into()),
            jobs: Some(3),
            confidence: Some(0.95),
            ..ProjectConfig::default()
        }
    }

    #[test]
    fn a_flag_wins_over_the_file() {
        let flags = args(&["--report-dir", "cli", "-j", "5", "--confidence", "0.9"]);
        let config = RunConfig::resolve(&flags, Some(&file()));
        assert_eq!(config.report_dir, PathBuf::from("cli"));
        assert_eq!(config.jobs, 5);
        assert_eq!(config.confidence, 0.9);
    }

    #[test]
    fn the_file_wins_over_the_defaults() {
        let config = RunConfig::resolve(&args(&[]), Some(&file()));
        assert_eq!(config.report_dir, PathBuf::from("from-file"));
        assert_eq!(config.jobs, 3);
        assert_eq!(config.confidence, 0.95);
    }

    #[test]
    fn without_flags_or_file_the_defaults_hold() {
        let config = RunConfig::resolve(&args(&[]), None);
        assert_eq!(config.report_dir, PathBuf::from(DEFAULT_REPORT_DIR));
        assert_eq!(config.jobs, default_jobs());
        assert_eq!(config.confidence, DEFAULT_CONFIDENCE);
        assert_eq!(config.frames, DEFAULT_FRAMES);
        assert_eq!(config.chain_timeout_secs, DEFAULT_CHAIN_TIMEOUT_SECS);
        assert_eq!(config.diagnose, DiagnoseMode::Auto);
        assert!(config.fork_server);
        // A file that sets none of them changes nothing.
        let empty = ProjectConfig::default();
        assert_eq!(RunConfig::resolve(&args(&[]), Some(&empty)), config);
    }

    #[test]
    fn the_worker_gets_the_runs_confidence_and_a_cap_shared_by_the_jobs() {
        let settings = |config: &RunConfig, scenarios| {
            let environment = PythonEnvironment {
                executable: "python3".into(),
                prefix: "/usr".into(),
                version: "3.11.7".into(),
                site_packages: Vec::new(),
                native: true,
            };
            let program = WorkerProgram {
                path: "leakcheck-worker".into(),
                libdir: "lib".into(),
            };
            config.settings(environment, program, scenarios)
        };
        let config = RunConfig::resolve(&args(&["-j", "4", "--no-diagnose"]), None);
        let worker = settings(&config, 10).worker;
        assert_eq!(worker.confidence, DEFAULT_CONFIDENCE);
        assert_eq!(worker.diagnose, DiagnoseMode::Never);
        // Four at once share the cap; a run of one scenario has it to itself.
        assert_eq!(worker.max_rss, runner::limits::default_max_rss(4));
        assert_eq!(
            settings(&config, 1).worker.max_rss,
            runner::limits::default_max_rss(1)
        );
        let capped = RunConfig::resolve(&args(&["--max-rss", "1 GiB"]), None);
        assert_eq!(settings(&capped, 3).worker.max_rss, 1 << 30);
    }
}
