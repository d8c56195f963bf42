//! What each subcommand does, from parsed arguments to an [`Outcome`]; `main` only maps the
//! outcome to an exit code.

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

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<Outcome> {
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
        None => {
            eprintln!(
                "leakcheck: no command given; try `leakcheck run scenarios/` or `leakcheck --help`"
            );
            Ok(Outcome::InvalidInput)
        }
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
                eprintln!(
                    "error: `{}` is not a subcommand: one of {}",
                    report::untrusted::terminal(name),
                    names.join(", ")
                );
                return Ok(Outcome::InvalidInput);
            }
        },
    };
    clap_mangen::Man::new(page).render(&mut std::io::stdout())?;
    Ok(Outcome::Success)
}

/// Loads, validates and filters scenarios, printing every problem found.
/// The scenarios the arguments select, and the names of the suite's others (left out by `-k` or
/// `--partition`), which a baseline comparison must not call removed.
fn select(
    args: &SelectArgs,
    config: Option<&ProjectConfig>,
    mut server: Option<&mut ServerForRun>,
) -> Option<(Vec<Scenario>, std::collections::HashSet<String>)> {
    let expr = match args.filter.as_deref().map(Expr::parse).transpose() {
        Ok(expr) => expr,
        Err(err) => {
            eprintln!("error: {err}");
            return None;
        }
    };
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
            for err in &errors {
                // A file's text is quoted in its errors: shown escaped, as scenario text is.
                eprintln!("error: {}", report::untrusted::terminal(&err.to_string()));
            }
            let files: std::collections::BTreeSet<&PathBuf> =
                errors.iter().map(|e| &e.file).collect();
            eprintln!(
                "leakcheck: {} problem(s) in {} file(s); nothing was run",
                errors.len(),
                files.len()
            );
            return None;
        }
    };
    // `pytest` selections become one scenario per test, collected by the project's interpreter.
    let scenarios = if scenarios
        .iter()
        .any(|s| matches!(s.body, scenario::Body::Pytest(_)))
    {
        let configured = config.and_then(|c| c.python.as_deref());
        let target = match environment::resolve(args.python.as_deref(), configured) {
            Ok(target) => target,
            Err(err) => {
                eprintln!("error: {err}");
                return None;
            }
        };
        let server = server.as_mut().and_then(|server| server.start(&target));
        let collect = |args: &[String], dir: &std::path::Path| match server {
            Some(server) => server.collect(args, dir),
            None => Err("no fork server".to_string()),
        };
        let collect: &scenario::pytest::ServerCollect<'_> = &collect;
        match scenario::pytest::expand(scenarios, &target.environment.executable, Some(collect)) {
            Ok(scenarios) => scenarios,
            Err(errors) => {
                for err in &errors {
                    eprintln!("error: {}", report::untrusted::terminal(&err.to_string()));
                }
                eprintln!("leakcheck: {} problem(s); nothing was run", errors.len());
                return None;
            }
        }
    } else {
        scenarios
    };
    if let Some(expr) = &expr
        && !scenarios.iter().any(|s| expr.matches(&s.name, &s.tags))
    {
        eprintln!(
            "leakcheck: no scenario matches `-k {}`",
            args.filter.as_deref().unwrap_or("")
        );
        return None;
    }
    let suite: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    // An empty shard is fine: a CI matrix may have more machines than scenarios.
    let selected = select::select(scenarios, expr.as_ref(), args.partition);
    let mut left_out: std::collections::HashSet<String> = suite.into_iter().collect();
    for scenario in &selected {
        left_out.remove(&scenario.name);
    }
    Some((selected, left_out))
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
fn project_config(args: &SelectArgs) -> Result<Option<ProjectConfig>, ()> {
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
    found.map_err(|err| {
        // One line per problem, each its own `error:`.
        for line in err.to_string().lines() {
            eprintln!("error: {}", report::untrusted::terminal(line));
        }
    })
}

fn run_command(args: RunArgs) -> Result<Outcome> {
    let Ok(config) = project_config(&args.select) else {
        return Ok(Outcome::InvalidInput);
    };
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
    let Some((mut scenarios, left_out)) = select(&args.select, config.as_ref(), Some(&mut server))
    else {
        return Ok(Outcome::InvalidInput);
    };
    if let Some(max) = run_config.max_iterations {
        for scenario in &mut scenarios {
            scenario.max_iterations = max.max(scenario.iterations);
            scenario.max_iterations_set = true;
            if let Some(samples) = scenario::samples_over_budget(
                scenario.warmup,
                scenario.max_iterations,
                scenario.sample_every,
            ) {
                eprintln!(
                    "error: --max-iterations {max}: scenario `{}` ({}:{}) samples every {} \
                     iterations, so it would take {samples} samples, and at most {} are kept \
                     (lower --max-iterations or raise its `sample_every`)",
                    scenario.name,
                    scenario.file.display(),
                    scenario.line,
                    scenario.sample_every,
                    scenario::MAX_SAMPLES,
                );
                return Ok(Outcome::InvalidInput);
            }
        }
    }
    // Read the baseline before spending minutes on scenarios.
    let baseline = match run_config
        .baseline
        .as_deref()
        .map(results::read)
        .transpose()
    {
        Ok(baseline) => baseline,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(Outcome::InvalidInput);
        }
    };
    // The target interpreter and the worker that embeds it, refused before anything runs.
    let resolved = server.target.take().map(Ok).unwrap_or_else(|| {
        let configured = config.as_ref().and_then(|c| c.python.as_deref());
        environment::resolve(args.select.python.as_deref(), configured)
    });
    let target = match resolved {
        Ok(target) => target,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(Outcome::InvalidInput);
        }
    };
    let checked = server.program.take().map(Ok);
    let program = match checked.unwrap_or_else(|| workers::for_target(&target)) {
        Ok(program) => program,
        Err(err) => {
            // It quotes what the program said: not ours to trust.
            eprintln!("error: {}", report::untrusted::terminal(&err.to_string()));
            return Ok(Outcome::InvalidInput);
        }
    };
    let settings = run_config.settings(target.environment, program, scenarios.len());
    // Fail before spending minutes on scenarios if their reports could not be saved.
    if let Err(err) = check_writable(&run_config.report_dir) {
        eprintln!("error: {err:#}");
        return Ok(Outcome::InvalidInput);
    }
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
    let read =
        |path: &std::path::Path| results::read(path).map_err(|err| eprintln!("error: {err}"));
    let Ok(mut results) = read(&args.results) else {
        return Ok(Outcome::InvalidInput);
    };
    if let Some(path) = &args.baseline {
        let Ok(old) = read(path) else {
            return Ok(Outcome::InvalidInput);
        };
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
            eprintln!(
                "error: `{}` is an input of this command (`{}`), and writing a report there \
                 would replace it: choose another --html or --report-dir",
                output.display(),
                input.display()
            );
            return Ok(Outcome::InvalidInput);
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
    let merged = match merge::read_all(&args.results)
        .and_then(|parts| merge::merge(parts).map_err(|err| err.to_string()))
    {
        Ok(merged) => merged,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(Outcome::InvalidInput);
        }
    };
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
        eprintln!(
            "error: `{}` already exists: nothing was written (use --force to replace)",
            existing.display()
        );
        return Ok(Outcome::InvalidInput);
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
    let Ok(config) = project_config(&args.select) else {
        return Ok(Outcome::InvalidInput);
    };
    let Some((scenarios, _)) = select(&args.select, config.as_ref(), None) else {
        return Ok(Outcome::InvalidInput);
    };
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
