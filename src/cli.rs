//! Command-line definitions (clap derive) and nothing else: what a user can type.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Find memory leaks in Python code: run scenarios many times, fit memory growth per iteration,
/// and fail CI when it keeps growing.
#[derive(Debug, Parser)]
#[command(name = "leakcheck", disable_version_flag = true, max_term_width = 100)]
pub struct Cli {
    /// Print the version of leakcheck and of the embedded CPython, then exit.
    #[arg(short = 'V', long = "version", global = false)]
    pub version: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios and report a verdict for each (the exit code is the CI gate).
    Run(RunArgs),
    /// List the scenarios that `run` would run, with their file and line.
    List(ListArgs),
    /// Re-render the reports of a saved results.json without running anything.
    Report(ReportArgs),
    /// Combine the results.json of several shards (`run --partition`) into one run.
    Merge(MergeArgs),
    /// Write a commented leakcheck.yaml and an example scenario into a project.
    Init(InitArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `leakcheck man > leakcheck.1`; `leakcheck man
    /// run` prints the page of a subcommand, `--out-dir DIR` writes every page.
    Man(ManArgs),
}

/// Which man page to print, or where to write them all.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (`run`, `list`, `report`, `merge`, `init`,
    /// `completions`, `man`); none: leakcheck's own page.
    pub command: Option<String>,

    /// Write leakcheck.1 and one page per subcommand (leakcheck-run.1, ...) into this folder
    /// instead of printing one.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub out_dir: Option<PathBuf>,
}

/// Which scenarios to consider.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Scenario files or folders (searched recursively for *.yaml and *.yml). Default: the
    /// `paths` of the project configuration, else `scenarios`.
    pub paths: Vec<PathBuf>,

    /// Use this configuration file (leakcheck.yaml or pyproject.toml) instead of looking for one
    /// upward from the working directory.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "no_config",
        env = "LEAKCHECK_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Ignore any configuration file.
    #[arg(long)]
    pub no_config: bool,

    /// Only scenarios matching this expression, as pytest's -k: words match a substring of the
    /// name or a whole tag (case-insensitive), combined with `and`, `or`, `not` and parentheses,
    /// e.g. `-k "cache and not clean"`.
    #[arg(short = 'k', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Run only one shard of the selected scenarios, for spreading a suite over CI machines:
    /// `count:K/N` (every N-th scenario from the K-th) or `hash:K/N` (by name, stable as the suite
    /// grows). Merge the shards' results with `leakcheck merge`.
    #[arg(long, value_name = "KIND:K/N", value_parser = crate::select::Partition::parse)]
    pub partition: Option<crate::select::Partition>,

    /// Python interpreter or virtual-environment folder to run the scenarios in, and to collect
    /// `pytest` workloads with (default: LEAKCHECK_PYTHON, else the configuration's `python`,
    /// else the active VIRTUAL_ENV, else ./.venv, else `python3` on PATH). It must be CPython
    /// with a shared libpython.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

/// Options of `leakcheck init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// Options of `leakcheck merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The results.json of each shard.
    #[arg(value_name = "RESULTS.json", required = true)]
    pub results: Vec<PathBuf>,

    /// Where to write the merged results.json (render it with `leakcheck report`).
    #[arg(short, long, value_name = "OUT.json")]
    pub output: PathBuf,
}

/// Options of `leakcheck list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Which scenarios.
    #[command(flatten)]
    pub select: SelectArgs,

    /// Output format: one line per scenario, or a JSON array for tools.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

/// Formats of `leakcheck list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// `name  file:line  [expect: leak]`.
    Text,
    /// A JSON array of objects with name, file, line, tags, expect, description.
    Json,
}

/// Options of `leakcheck run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which scenarios.
    #[command(flatten)]
    pub select: SelectArgs,

    /// Folder for index.html, results.json, junit.xml and summary.md (created if missing). Default: the
    /// configuration's `report_dir`, else `reports`.
    #[arg(long, value_name = "DIR", env = "LEAKCHECK_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,

    /// An earlier results.json to compare with: new leaks, fixed leaks and significant rises in
    /// growth are listed first.
    #[arg(long, value_name = "OLD.json")]
    pub baseline: Option<PathBuf>,

    /// A significant rise in growth over the baseline fails the run (exit 1), even under
    /// tolerance.
    #[arg(long, requires = "baseline")]
    pub fail_on_regression: bool,

    /// Two-sided confidence level of the growth intervals, between 0.5 and 0.9999. Default: the
    /// configuration's `confidence`, else 0.99.
    #[arg(long, value_name = "LEVEL", value_parser = parse_confidence, env = "LEAKCHECK_CONFIDENCE")]
    pub confidence: Option<f64>,

    /// Most measured iterations of any scenario: overrides each scenario's `max_iterations`
    /// (default 4 × `iterations`). A value at or below a scenario's `iterations` gives it a fixed
    /// count, e.g. `--max-iterations 0`. At most 10^12, and at most 100000 samples a run.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(..=crate::scenario::MAX_ITERATIONS)
    )]
    pub max_iterations: Option<u64>,

    /// Seed of the workers' PYTHONHASHSEED and of Python's `random` before `setup`, so reruns
    /// see the same dict layouts and the same random data: 0 to 4294967295, PYTHONHASHSEED's
    /// range.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(..=u64::from(u32::MAX))
    )]
    pub seed: u64,

    /// Treat `inconclusive` verdicts as failures (exit code 1).
    #[arg(long)]
    pub fail_on_inconclusive: bool,

    /// Print only failures and the final line.
    #[arg(short, long)]
    pub quiet: bool,

    /// How many scenarios run at once, each in its own worker process (default: the number of
    /// CPUs). Results and reports keep scenario order whatever the number.
    #[arg(
        short = 'j',
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..),
        env = "LEAKCHECK_JOBS"
    )]
    pub jobs: Option<u16>,

    /// Start every worker as a new process instead of forking it from one warmed worker (the
    /// fork server, which boots CPython and imports the run's pytest suites once). Slower; for
    /// code that cannot run in a forked process.
    #[arg(long)]
    pub spawn: bool,

    /// Diagnose every scenario (allocation sites, growing types, referrer chains, hints), not
    /// only those that leak.
    #[arg(long, conflicts_with = "no_diagnose")]
    pub diagnose: bool,

    /// Never diagnose, even leaks: the fastest run.
    #[arg(long)]
    pub no_diagnose: bool,

    /// Depth of the allocation tracebacks recorded while diagnosing.
    #[arg(long, value_name = "N", default_value_t = crate::config::DEFAULT_FRAMES, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub frames: u32,

    /// Time budget in seconds for the referrer-chain search of one scenario.
    #[arg(long, value_name = "SECS", default_value_t = crate::config::DEFAULT_CHAIN_TIMEOUT_SECS, value_parser = parse_budget)]
    pub chain_timeout: f64,

    /// Memory cap of each worker, subprocesses included, e.g. `2 GiB`: a worker that goes over
    /// it is stopped (verdict `leak`). A scenario's `max_rss` wins. Default: half the machine's
    /// memory shared between the workers that run at once (at most -j, at most the number of
    /// scenarios), at most 4 GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_rss: Option<u64>,
}

/// Options of `leakcheck report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results.json written by `leakcheck run`.
    #[arg(value_name = "RESULTS.json")]
    pub results: PathBuf,

    /// An earlier results.json to compare with (replaces any comparison stored in RESULTS.json).
    #[arg(long, value_name = "OLD.json")]
    pub baseline: Option<PathBuf>,

    /// Write the HTML report to this file.
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,

    /// Write every report (index.html, results.json, junit.xml, summary.md) into this folder. Default: the
    /// folder of RESULTS.json, unless --html is given. RESULTS.json itself is never replaced.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let bytes = crate::units::parse_quantity(text, crate::units::Unit::Bytes)?;
    if bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` must be a size above 0, e.g. `2 GiB`"));
    }
    Ok(bytes as u64)
}

/// A time budget in seconds: finite, from 0 to 30 days (`inf` reached the worker as JSON
/// `null` and failed every scenario).
fn parse_budget(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.0..=crate::scenario::MAX_SECONDS).contains(&secs) {
        return Err(format!(
            "`{text}` must be a number of seconds from 0 to {} (30 days)",
            crate::scenario::MAX_SECONDS
        ));
    }
    Ok(secs)
}

fn parse_confidence(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.5..=0.9999).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is outside 0.5 to 0.9999 (e.g. 0.95 or 0.99)"
        ))
    }
}
