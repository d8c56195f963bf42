//! The worker executables leakcheck has, and the one that serves the target interpreter.
//!
//! Each worker embeds one CPython minor version, so leakcheck ships one per version, next to the
//! `leakcheck` executable (a wheel installs them all into the same `bin/` folder):
//! `leakcheck-worker-X.Y` for each version a wheel was built for, and `leakcheck-worker`, built
//! together with this very `leakcheck` (by `cargo build`/`cargo install`) for the Python it
//! found then. Before any scenario runs, the chosen worker is started once with `--describe`
//! and the target's library folder: it must load that libpython and come from the same sources
//! as this `leakcheck`.
//!
//! `cargo run` builds only the `leakcheck` executable, so a checkout's `leakcheck` (one that
//! runs from the checkout's own `target/` folder) builds a missing or outdated worker with
//! cargo first; an installed one never does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::environment::Target;
use crate::worker::{allocator, library_path};

/// The name of the worker built together with this executable.
const SIBLING: &str = "leakcheck-worker";
/// Source hash of this build (see build.rs); a worker must report the same.
const BUILD_ID: &str = env!("LEAKCHECK_BUILD_ID");
/// The CPython minor version the sibling worker was built for.
const SIBLING_MINOR: &str = env!("LEAKCHECK_BUILD_PYTHON_VERSION");

/// One worker executable on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipped {
    /// The CPython `X.Y` it embeds.
    pub minor: String,
    /// Where it is.
    pub path: PathBuf,
}

/// The worker that runs a run's scenarios, and what it needs to start.
#[derive(Clone, Debug)]
pub struct WorkerProgram {
    /// The executable.
    pub path: PathBuf,
    /// The target interpreter's library folder, first in the worker's loader search path.
    pub libdir: PathBuf,
}

impl WorkerProgram {
    /// The command that starts one worker (the runner adds its pipes and the request).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.path);
        command
            .env_remove("PYTHONHOME")
            .envs(allocator::worker_env())
            .envs(library_path::worker_env(&self.libdir));
        command
    }
}

/// Why no worker can serve the target.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// No worker for that minor version.
    #[error(
        "{origin} `{path}` is CPython {version}, but this leakcheck has workers for {supported} only: use one of those versions{hint}"
    )]
    Unsupported {
        /// Where the interpreter came from.
        origin: String,
        /// The interpreter.
        path: PathBuf,
        /// Its version.
        version: String,
        /// The versions served, e.g. `CPython 3.11 and 3.12`.
        supported: String,
        /// What else could help.
        hint: String,
    },
    /// The worker is there but cannot start, or is from another build.
    #[error("the worker `{path}` for CPython {minor} {problem}")]
    Broken {
        /// The worker.
        path: PathBuf,
        /// Its version.
        minor: String,
        /// What is wrong, and what to do.
        problem: String,
    },
}

/// The folder the worker executables are in: this executable's own.
fn worker_folder() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = exe.canonicalize().unwrap_or(exe);
    exe.parent().map(Path::to_path_buf)
}

/// Every worker next to this executable, sorted by version; a versioned one first when both a
/// versioned and the sibling serve the same version.
pub fn shipped() -> Vec<Shipped> {
    let Some(folder) = worker_folder() else {
        return Vec::new();
    };
    shipped_in(&folder, checkout_dir(&folder).is_some())
}

fn shipped_in(folder: &Path, checkout: bool) -> Vec<Shipped> {
    let mut found: Vec<Shipped> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let minor = name.strip_prefix("leakcheck-worker-")?;
            let valid = minor.split('.').count() == 2
                && minor.split('.').all(|part| part.parse::<u32>().is_ok());
            valid.then(|| Shipped {
                minor: minor.to_string(),
                path: entry.path(),
            })
        })
        .collect();
    let sibling = folder.join(SIBLING);
    // A checkout can build its sibling on demand, so it counts even before it exists.
    if (sibling.is_file() || checkout) && !found.iter().any(|w| w.minor == SIBLING_MINOR) {
        found.push(Shipped {
            minor: SIBLING_MINOR.to_string(),
            path: sibling,
        });
    }
    found.sort_by_key(|w| version_key(&w.minor));
    found
}

fn version_key(minor: &str) -> (u32, u32) {
    let mut parts = minor.split('.').map(|part| part.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// `3.11`, `3.11 and 3.12`, `3.10, 3.11 and 3.12`.
fn list_versions(workers: &[Shipped]) -> String {
    let versions: Vec<&str> = workers.iter().map(|w| w.minor.as_str()).collect();
    match versions.split_last() {
        None => "no version".to_string(),
        Some((last, [])) => format!("CPython {last}"),
        Some((last, rest)) => format!("CPython {} and {last}", rest.join(", ")),
    }
}

/// The worker for `target`, checked to start on its libpython and to match this build.
pub fn for_target(target: &Target) -> Result<WorkerProgram, WorkerError> {
    let folder = worker_folder().unwrap_or_default();
    let checkout = checkout_dir(&folder);
    let workers = shipped_in(&folder, checkout.is_some());
    let Some(worker) = workers.iter().find(|w| w.minor == target.minor) else {
        return Err(WorkerError::Unsupported {
            origin: target.origin.to_string(),
            path: target.requested.clone(),
            version: target.environment.version.clone(),
            supported: list_versions(&workers),
            hint: match &checkout {
                Some(_) => format!(
                    ", or build the worker for it: PYO3_PYTHON={} cargo build --bin leakcheck-worker (then rename it leakcheck-worker-{})",
                    target.environment.executable.display(),
                    target.minor
                ),
                None => String::new(),
            },
        });
    };
    let program = WorkerProgram {
        path: worker.path.clone(),
        libdir: target.libdir.clone(),
    };
    let broken = |problem: String| WorkerError::Broken {
        path: worker.path.clone(),
        minor: worker.minor.clone(),
        problem,
    };
    let sibling = worker.path.file_name() == Some(SIBLING.as_ref());
    match (describe(&program, &worker.minor), &checkout) {
        (Ok(()), _) => Ok(program),
        // Only a missing or outdated sibling is rebuilt: one that cannot load the target's
        // libpython would not load it after a rebuild either.
        (Err(Mismatch::Missing | Mismatch::OtherBuild(_)), Some(manifest_dir)) if sibling => {
            build_in_checkout(manifest_dir, &folder).map_err(broken)?;
            describe(&program, &worker.minor).map_err(|mismatch| broken(mismatch.to_string()))?;
            Ok(program)
        }
        (Err(mismatch), _) => Err(broken(mismatch.to_string())),
    }
}

/// How a worker failed its `--describe` check.
enum Mismatch {
    /// No file there.
    Missing,
    /// It ran and reported another build or version.
    OtherBuild(String),
    /// It did not start or did not answer.
    Broken(String),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Missing => f.write_str("is missing: reinstall leakcheck"),
            Mismatch::OtherBuild(said) => write!(
                f,
                "is from another build of leakcheck (it says `{said}`, this one is {BUILD_ID}): reinstall leakcheck so both come from the same wheel"
            ),
            Mismatch::Broken(problem) => f.write_str(problem),
        }
    }
}

/// Starts the worker with `--describe` as a run would start it; it must print this build's
/// source hash and the expected version.
fn describe(program: &WorkerProgram, minor: &str) -> Result<(), Mismatch> {
    if !program.path.is_file() {
        return Err(Mismatch::Missing);
    }
    let output = program
        .command()
        .arg("--describe")
        .stdin(Stdio::null())
        .output()
        .map_err(|err| Mismatch::Broken(format!("cannot be started: {err}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(Mismatch::Broken(format!(
            "does not start with the libpython in `{}` ({}): {}",
            program.libdir.display(),
            output.status,
            stderr.trim()
        )));
    }
    let mut words = stdout.split_whitespace();
    match (words.next(), words.next()) {
        (Some(id), Some(version)) if id == BUILD_ID && version == minor => Ok(()),
        _ => Err(Mismatch::OtherBuild(stdout.trim().to_string())),
    }
}

/// The checkout this executable was built in, when it runs from that checkout's `target/`.
fn checkout_dir(folder: &Path) -> Option<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("target"));
    let target = target.canonicalize().ok()?;
    (folder.parent() == Some(target.as_path()) && manifest_dir.join("Cargo.toml").is_file())
        .then_some(manifest_dir)
}

/// `cargo build --bin leakcheck-worker` with the profile of `folder` (`target/debug`,
/// `target/release`, ...), as `cargo run` does not build it.
fn build_in_checkout(manifest_dir: &Path, folder: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let profile = folder
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("debug");
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .args(["--bin", SIBLING]);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    if let Some(target) = folder.parent() {
        command.env("CARGO_TARGET_DIR", target);
    }
    eprintln!(
        "leakcheck: building the worker for this checkout (cargo build --bin {SIBLING}{})",
        match profile {
            "debug" => String::new(),
            "release" => " --release".to_string(),
            other => format!(" --profile {other}"),
        }
    );
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|err| format!("is missing and cargo could not be started to build it: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "is missing or outdated and `cargo build --bin {SIBLING}` failed ({status})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_a_list() {
        let worker = |minor: &str| Shipped {
            minor: minor.to_string(),
            path: PathBuf::new(),
        };
        assert_eq!(list_versions(&[]), "no version");
        assert_eq!(list_versions(&[worker("3.11")]), "CPython 3.11");
        assert_eq!(
            list_versions(&[worker("3.9"), worker("3.11"), worker("3.12")]),
            "CPython 3.9, 3.11 and 3.12"
        );
    }

    #[test]
    fn versioned_workers_are_found_by_name_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "leakcheck-worker-3.12",
            "leakcheck-worker-3.9",
            "leakcheck-worker-x",
            "leakcheck",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found: Vec<String> = shipped_in(dir.path(), false)
            .into_iter()
            .map(|w| w.minor)
            .collect();
        assert_eq!(found, ["3.9", "3.12"]);
    }
}
