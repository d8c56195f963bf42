//! What each subcommand does, from parsed arguments to an [`Outcome`]; `main` only maps the
//! outcome to an exit code.
//!
//! Input a command cannot use is an [`InputError`], returned up to [`run`], which alone prints
//! it; errors of the system (a report that cannot be written) stay `anyhow` errors for `main`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use clap::CommandFactory;

use crate::cli::{
    Cli, Command, InitArgs, ListArgs, ListFormat, ManArgs, MergeArgs, ReportArgs, RunArgs,
    SelectArgs,
};
use crate::compare;
use crate::config::{self, ProjectConfig, RunConfig};
use crate::fork_server::Start;
use crate::merge;
use crate::report;
use crate::report::Outputs;
use crate::report::view::RunView;
use crate::results;
use crate::runner::fork_server::ForkServer;
use crate::runner::{self, environment, workers};
use crate::scenario::{self, Scenario};
use crate::select::{self, Expr};

/// How a command ended; each maps to one documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything as expected (exit 0).
    Success,
    /// Some scenario leaked unexpectedly, passed while expected to leak, or errored (exit 1).
    ScenariosFailed,
    /// Invalid invocation or scenario files; nothing was run (exit 2).
    InvalidInput,
    /// A signal (Ctrl-C, SIGTERM, SIGHUP) stopped the run; the reports hold the scenarios that
    /// finished (exit 128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM).
    Interrupted {
        /// The signal's number.
        signal: i32,
    },
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::ScenariosFailed => 1,
            Outcome::InvalidInput => 2,
            Outcome::Interrupted { signal } => runner::signals::exit_code(signal),
        }
    }
}

/// Input a command cannot use: a bad value, scenario or configuration file, an unreadable
/// results file, an output over an input; nothing was run. Call sites return it and `?` carries
/// it up, so that one place, [`run`], prints it (each problem as `error: …`, the closing line as
/// `leakcheck: …`) and ends the command with [`Outcome::InvalidInput`], rather than every call
/// site printing and returning that outcome itself.
#[derive(Debug, Default)]
pub struct InputError {
    /// Every problem found, in order, one line each, already escaped where it quotes text that
    /// is not ours (see [`report::untrusted`]).
    pub problems: Vec<String>,
    /// What they add up to, or the whole message when there is no list, e.g. `2 problem(s) in
    /// 1 file(s); nothing was run`.
    pub summary: Option<String>,
}

impl InputError {
    /// One problem.
    fn problem(message: impl std::fmt::Display) -> InputError {
        InputError {
            problems: vec![message.to_string()],
            summary: None,
        }
    }

    /// A closing line alone.
    fn summary(text: impl Into<String>) -> InputError {
        InputError {
            problems: Vec::new(),
            summary: Some(text.into()),
        }
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let problems = self.problems.iter().map(|p| format!("error: {p}"));
        let summary = self.summary.iter().map(|s| format!("leakcheck: {s}"));
        let lines: Vec<String> = problems.chain(summary).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for InputError {}

/// Runs the parsed command; input it cannot use is printed here (see [`InputError`]).
pub fn run(cli: Cli) -> Result<Outcome> {
    match command(cli) {
        Err(err) => match err.downcast::<InputError>() {
            Ok(input) => {
                eprintln!("{input}");
                Ok(Outcome::InvalidInput)
            }
            Err(other) => Err(other),
        },
        done => done,
    }
}

fn command(cli: Cli) -> Result<Outcome> {
    if cli.version {
        print_version();
        return Ok(Outcome::Success);
    }
    match cli.command {
        Some(Command::Run(args)) => run_command(args),
        Some(Command::List(args)) => list_command(args),
        Some(Command::Report(args)) => report_command(args),
        Some(Command::Merge(args)) => merge_command(args),
        Some(Command::Init(args)) => init_command(args),
        Some(Command::Completions { shell }) => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "leakcheck", &mut std::io::stdout());
            Ok(Outcome::Success)
        }
        Some(Command::Man(args)) => man_command(args),
        None => Err(InputError::summary(
            "no command given; try `leakcheck run scenarios/` or `leakcheck --help`",
        )
        .into()),
    }
}

/// `leakcheck man`: leakcheck's page, a subcommand's (`leakcheck-run`, named as the main page's
/// SEE ALSO names it), or every page written into a folder.
fn man_command(args: ManArgs) -> Result<Outcome> {
    let mut command = Cli::command().disable_help_subcommand(true);
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        eprintln!("wrote the man pages into {}", dir.display());
        return Ok(Outcome::Success);
    }
    // Built, the subcommands carry their pages' names (`leakcheck-run`).
    command.build();
    let page = match &args.command {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
                return Err(InputError::problem(format!(
                    "`{}` is not a subcommand: one of {}",
                    report::untrusted::terminal(name),
                    names.join(", ")
                ))
                .into());
            }
        },
    };
    clap_mangen::Man::new(page).render(&mut std::io::stdout())?;
    Ok(Outcome::Success)
}

/// Loads, validates and filters scenarios, with every problem found as the error.
/// The scenarios the arguments select, and the names of the suite's others (left out by `-k` or
/// `--partition`), which a baseline comparison must not call removed.
fn select(
    args: &SelectArgs,
    config: Option<&ProjectConfig>,
    mut server: Option<&mut ServerForRun>,
) -> Result<(Vec<Scenario>, std::collections::HashSet<String>), InputError> {
    let expr = args
        .filter
        .as_deref()
        .map(Expr::parse)
        .transpose()
        .map_err(InputError::problem)?;
    let paths = if !args.paths.is_empty() {
        args.paths.clone()
    } else {
        match config {
            Some(config) if !config.paths.is_empty() => config.paths.clone(),
            _ => vec![PathBuf::from("scenarios")],
        }
    };
    let defaults = config.and_then(|c| c.defaults.as_ref());
    let scenarios = match scenario::load_paths_with(&paths, defaults) {
        Ok(scenarios) => scenarios,
        Err(errors) => {
            let files: std::collections::BTreeSet<&PathBuf> =
                errors.iter().map(|e| &e.file).collect();
            return Err(InputError {
                // A file's text is quoted in its errors: shown escaped, as scenario text is.
                problems: escaped(&errors),
                summary: Some(format!(
                    "{} problem(s) in {} file(s); nothing was run",
                    errors.len(),
                    files.len()
                )),
            });
        }
    };
    // `pytest` selections become one scenario per test, collected by the project's interpreter.
    let scenarios = if scenarios
        .iter()
        .any(|s| matches!(s.body, scenario::Body::Pytest(_)))
    {
        let configured = config.and_then(|c| c.python.as_deref());
        let target = environment::resolve(args.python.as_deref(), configured)
            .map_err(InputError::problem)?;
        let server = server.as_mut().and_then(|server| server.start(&target));
        let collect = |args: &[String], dir: &std::path::Path| match server {
            Some(server) => server.collect(args, dir),
            None => Err("no fork server".to_string()),
        };
        let collect: &scenario::pytest::ServerCollect<'_> = &collect;
        match scenario::pytest::expand(scenarios, &target.environment.executable, Some(collect)) {
            Ok(scenarios) => scenarios,
            Err(errors) => {
                return Err(InputError {
                    problems: escaped(&errors),
                    summary: Some(format!("{} problem(s); nothing was run", errors.len())),
                });
            }
        }
    } else {
        scenarios
    };
    if let Some(expr) = &expr
        && !scenarios.iter().any(|s| expr.matches(&s.name, &s.tags))
    {
        return Err(InputError::summary(format!(
            "no scenario matches `-k {}`",
            args.filter.as_deref().unwrap_or("")
        )));
    }
    let suite: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    // An empty shard is fine: a CI matrix may have more machines than scenarios.
    let selected = select::select(scenarios, expr.as_ref(), args.partition);
    let mut left_out: std::collections::HashSet<String> = suite.into_iter().collect();
    for scenario in &selected {
        left_out.remove(&scenario.name);
    }
    Ok((selected, left_out))
}

/// Each error on its line, escaped: they quote the scenario files' text.
fn escaped(errors: &[impl std::fmt::Display]) -> Vec<String> {
    errors
        .iter()
        .map(|err| report::untrusted::terminal(&err.to_string()).into_owned())
        .collect()
}

/// The fork server of a `run` with `pytest:` selections, started as soon as `select` knows the
/// target interpreter: it collects the selections itself, so that a run pays one pytest
/// start-up and the workers it forks find the tests' modules imported (see
/// [`runner::fork_server`]).
struct ServerForRun {
    /// `--seed`: the server's `PYTHONHASHSEED`.
    seed: u64,
    /// Off with `--spawn`.
    enabled: bool,
    /// The target `select` resolved and the worker checked for it, which the run then uses
    /// instead of inspecting the interpreter and starting the worker's check again.
    target: Option<environment::Target>,
    program: Option<workers::WorkerProgram>,
    server: Option<ForkServer>,
}

impl ServerForRun {
    /// The server for `target`, started on first use; `None` when it cannot be (the
    /// selections are then collected by processes of their own, and the worker error, if any,
    /// reported when the run starts).
    fn start(&mut self, target: &environment::Target) -> Option<&ForkServer> {
        self.target = Some(target.clone());
        if self.enabled && self.server.is_none() {
            let program = workers::for_target(target).ok()?;
            let start = Start {
                environment: Some(target.environment.clone()),
                seed: self.seed,
            };
            self.server = ForkServer::start(&program, &start);
            self.program = Some(program);
        }
        self.server.as_ref()
    }
}

/// The project configuration `select` asks for: `--config`, none with `--no-config`, else the
/// first found upward from the working directory.
fn project_config(args: &SelectArgs) -> Result<Option<ProjectConfig>, InputError> {
    let found = if args.no_config {
        Ok(None)
    } else if let Some(file) = &args.config {
        config::load(file).map(Some)
    } else {
        std::env::current_dir()
            .map_err(|err| config::ConfigError::Io {
                file: PathBuf::from("."),
                source: err,
            })
            .and_then(|dir| config::discover(&dir))
    };
    // One line per problem, each its own `error:`.
    found.map_err(|err| InputError {
        problems: escaped(&err.to_string().lines().collect::<Vec<_>>()),
        summary: None,
    })
}

fn run_command(args: RunArgs) -> Result<Outcome> {
    let config = project_config(&args.select)?;
    // Flags and LEAKCHECK_* variables (resolved by clap) over the configuration file over
    // built-in defaults, once.
    let run_config = RunConfig::resolve(&args, config.as_ref());
    let mut server = ServerForRun {
        seed: run_config.seed,
        enabled: run_config.fork_server,
        target: None,
        program: None,
        server: None,
    };
    let (mut scenarios, left_out) = select(&args.select, config.as_ref(), Some(&mut server))?;
    if let Some(max) = run_config.max_iterations {
        for scenario in &mut scenarios {
            scenario.max_iterations = max.max(scenario.iterations);
            scenario.max_iterations_set = true;
            if let Some(samples) = scenario::samples_over_budget(
                scenario.warmup,
                scenario.max_iterations,
                scenario.sample_every,
            ) {
                return Err(InputError::problem(format!(
                    "--max-iterations {max}: scenario `{}` ({}:{}) samples every {} \
                     iterations, so it would take {samples} samples, and at most {} are kept \
                     (lower --max-iterations or raise its `sample_every`)",
                    scenario.name,
                    scenario.file.display(),
                    scenario.line,
                    scenario.sample_every,
                    scenario::MAX_SAMPLES,
                ))
                .into());
            }
        }
    }
    // Read the baseline before spending minutes on scenarios.
    let baseline = run_config
        .baseline
        .as_deref()
        .map(results::read)
        .transpose()
        .map_err(InputError::problem)?;
    // The target interpreter and the worker that embeds it, refused before anything runs.
    let resolved = server.target.take().map(Ok).unwrap_or_else(|| {
        let configured = config.as_ref().and_then(|c| c.python.as_deref());
        environment::resolve(args.select.python.as_deref(), configured)
    });
    let target = resolved.map_err(InputError::problem)?;
    let checked = server.program.take().map(Ok);
    let program = checked
        .unwrap_or_else(|| workers::for_target(&target))
        // It quotes what the program said: not ours to trust.
        .map_err(|err| InputError::problem(report::untrusted::terminal(&err.to_string())))?;
    let settings = run_config.settings(target.environment, program, scenarios.len());
    // Fail before spending minutes on scenarios if their reports could not be saved.
    check_writable(&run_config.report_dir)
        .map_err(|err| InputError::problem(format!("{err:#}")))?;
    let mut display = report::terminal::ProgressDisplay::new(run_config.quiet);
    let mut journal =
        report::journal::Journal::new(&mut display, &settings, run_config.report_dir.clone());
    let mut results =
        runner::run_scenarios_with(&scenarios, &settings, server.server.take(), &mut journal);
    if let (Some(old), Some(path)) = (&baseline, &run_config.baseline) {
        results.baseline = Some(compare::compare(old, path, &results, &left_out));
        if run_config.fail_on_regression {
            compare::apply_regression_gate(&mut results);
        }
    }
    // The terminal first: what the run found shows even when its reports cannot be saved.
    let outputs = Outputs {
        dir: Some(run_config.report_dir.clone()),
        terminal: Some(run_config.quiet),
        github: Some(report::github::Environment::current()),
        ..Outputs::default()
    };
    finish(
        report::write_all(&RunView::new(&results), &outputs),
        run_config.quiet,
    )?;
    if let Some(signal) = runner::signals::received() {
        eprintln!(
            "leakcheck: interrupted by {}; the reports hold the {} scenario(s) that finished",
            runner::signals::name(signal),
            results.scenarios.len()
        );
        return Ok(Outcome::Interrupted { signal });
    }
    Ok(if results.summary.failed == 0 {
        Outcome::Success
    } else {
        Outcome::ScenariosFailed
    })
}

/// Creates the report folder if needed and checks a file can be created in it.
fn check_writable(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create report folder `{}`", dir.display()))?;
    tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into report folder `{}`", dir.display()))?;
    Ok(())
}

/// `leakcheck report`: reads saved results, optionally compares them with a baseline, and
/// writes the reports again; nothing runs.
fn report_command(args: ReportArgs) -> Result<Outcome> {
    let read = |path: &std::path::Path| results::read(path).map_err(InputError::problem);
    let mut results = read(&args.results)?;
    if let Some(path) = &args.baseline {
        let old = read(path)?;
        // A saved run is compared whole: nothing was left out of it here.
        let nothing = std::collections::HashSet::new();
        results.baseline = Some(compare::compare(&old, path, &results, &nothing));
    }
    let dir = args.report_dir.clone().or_else(|| {
        args.html.is_none().then(|| match args.results.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        })
    });
    // An output over an input would replace the results with a report of them.
    let inputs: Vec<&PathBuf> = std::iter::once(&args.results)
        .chain(args.baseline.as_ref())
        .collect();
    let outputs = Outputs {
        dir,
        html: args.html.clone(),
        keep: Some(args.results.clone()),
        terminal: Some(false),
        ..Outputs::default()
    };
    // The results file in the folder is left alone (`keep`), not refused; an --html over it is.
    let in_folder = report::files(&Outputs {
        html: None,
        ..outputs.clone()
    });
    let checked = args.html.iter().cloned().chain(
        in_folder
            .into_iter()
            .filter(|path| !same_file(path, &args.results)),
    );
    for output in checked {
        if let Some(input) = inputs.iter().find(|input| same_file(&output, input)) {
            return Err(InputError::problem(format!(
                "`{}` is an input of this command (`{}`), and writing a report there would \
                 replace it: choose another --html or --report-dir",
                output.display(),
                input.display()
            ))
            .into());
        }
    }
    finish(report::write_all(&RunView::new(&results), &outputs), false)?;
    Ok(Outcome::Success)
}

/// Whether `a` and `b` name one existing file (through links, `..` or hard links alike).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// After the reports: `wrote reports/index.html`, a line a file (an error, not a panic, when
/// stdout is a closed pipe, for `main` to end quietly on), then what could not be written, in
/// order: the last failure is the command's error, any others are printed before it.
fn finish(written: report::Written, quiet: bool) -> Result<()> {
    if !quiet {
        let mut stdout = std::io::stdout().lock();
        for path in &written.files {
            writeln!(stdout, "wrote {}", path.display())?;
        }
    }
    let mut errors = written.errors;
    let Some(last) = errors.pop() else {
        return Ok(());
    };
    for err in errors {
        eprintln!("leakcheck: {err:#}");
    }
    Err(last)
}

/// `leakcheck merge`: shard results in, one results.json out; the exit code is the merged run's
/// gate, so a CI job that merges can also be the one that fails.
fn merge_command(args: MergeArgs) -> Result<Outcome> {
    let merged = merge::read_all(&args.results)
        .and_then(|parts| merge::merge(parts).map_err(|err| err.to_string()))
        .map_err(InputError::problem)?;
    let view = RunView::new(&merged);
    let outputs = Outputs {
        json: Some(args.output.clone()),
        ..Outputs::default()
    };
    finish(report::write_all(&view, &outputs), true)?;
    writeln!(
        std::io::stdout().lock(),
        "merged {} files -> {}\n{}",
        args.results.len(),
        args.output.display(),
        view.tally()
    )?;
    Ok(if merged.summary.failed == 0 {
        Outcome::Success
    } else {
        Outcome::ScenariosFailed
    })
}

/// `leakcheck init`: a commented configuration and an example scenario that runs green, never
/// overwriting a file unless asked to.
fn init_command(args: InitArgs) -> Result<Outcome> {
    let files = [
        (
            args.dir.join(config::FILE_NAMES[0]),
            include_str!("init/leakcheck.yaml"),
        ),
        (
            args.dir.join("scenarios/example.yaml"),
            include_str!("init/example.yaml"),
        ),
    ];
    if !args.force
        && let Some((existing, _)) = files.iter().find(|(path, _)| path.exists())
    {
        return Err(InputError::problem(format!(
            "`{}` already exists: nothing was written (use --force to replace)",
            existing.display()
        ))
        .into());
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        report::write_atomically(path, text.as_bytes())?;
        println!("wrote {}", path.display());
    }
    println!("next: edit scenarios/example.yaml, then run `leakcheck run`");
    Ok(Outcome::Success)
}

fn list_command(args: ListArgs) -> Result<Outcome> {
    let config = project_config(&args.select)?;
    let (scenarios, _) = select(&args.select, config.as_ref(), None)?;
    let mut out = std::io::stdout().lock();
    match args.format {
        ListFormat::Text => report::list::write_text(&scenarios, &mut out)?,
        ListFormat::Json => report::list::write_json(&scenarios, &mut out)?,
    }
    Ok(Outcome::Success)
}

/// Prints leakcheck's version, the workers it has, and the interpreter a run started here would
/// use (resolved as `run` resolves it, without flags), or why it could not use one.
fn print_version() {
    println!("leakcheck {}", env!("CARGO_PKG_VERSION"));
    let workers = workers::shipped();
    if workers.is_empty() {
        println!("workers: none found next to this executable (reinstall leakcheck)");
    }
    for worker in &workers {
        println!(
            "worker: CPython {}  {}",
            worker.minor,
            worker.path.display()
        );
    }
    let configured = std::env::current_dir()
        .ok()
        .and_then(|dir| config::discover(&dir).ok().flatten())
        .and_then(|config| config.python);
    match environment::resolve(None, configured.as_deref()) {
        Ok(target) => {
            let served = workers.iter().any(|w| w.minor == target.minor);
            println!(
                "python: CPython {} {} (from {}; libpython: {}){}",
                target.environment.version,
                target.environment.executable.display(),
                target.origin,
                target.library.display(),
                if served { "" } else { "  [no worker for it]" }
            );
        }
        Err(err) => println!("python: none usable here: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_print_each_problem_then_the_closing_line() {
        let both = InputError {
            problems: vec!["a.yaml:3:5: unknown key `x`".into(), "b".into()],
            summary: Some("2 problem(s) in 1 file(s); nothing was run".into()),
        };
        assert_eq!(
            both.to_string(),
            "error: a.yaml:3:5: unknown key `x`\nerror: b\n\
             leakcheck: 2 problem(s) in 1 file(s); nothing was run"
        );
        assert_eq!(InputError::problem("bad").to_string(), "error: bad");
        assert_eq!(
            InputError::summary("no scenario matches `-k x`").to_string(),
            "leakcheck: no scenario matches `-k x`"
        );
    }

    #[test]
    fn an_input_error_ends_the_command_with_exit_2_not_as_an_error_of_the_system() {
        let cli = <Cli as clap::Parser>::try_parse_from(["leakcheck", "man", "nosuch"]).unwrap();
        assert_eq!(run(cli).unwrap(), Outcome::InvalidInput);
    }
}
