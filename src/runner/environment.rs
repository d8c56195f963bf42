//! Which Python runs the scenarios: the *target interpreter*, resolved once per run.
//!
//! Scenarios import the project's packages, so they must run in the project's own interpreter.
//! The worker embeds CPython, and a worker built for `X.Y` can run on the shared libpython of any
//! CPython `X.Y` build (pyenv's, Debian's, uv's): the runner starts it with that interpreter's
//! library folder first in the loader's search path, and the worker starts CPython as that
//! interpreter's `python` (a venv's own, so `pyvenv.cfg` sets the venv up as running it would).
//!
//! The target is, first found: `--python`, `LEAKCHECK_PYTHON`, the configuration's `python`, an
//! active `VIRTUAL_ENV`, `./.venv`, `python3` on `PATH`. We ask it once ([`PROBE`]) for its
//! version, implementation, library folder, whether it has a shared libpython and whether it is
//! a free-threaded build, and refuse up front, naming the interpreter and the remedy, what no
//! worker can embed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::protocol::PythonEnvironment;

/// Asks the target interpreter what the worker needs to know; kept to Python 3.6 syntax so
/// that an old interpreter gets a refusal, not a syntax error. It runs with `-E -S` (no `site`,
/// which costs a project's interpreter ~25 ms of its start), so a venv's own prefix is read
/// from its `pyvenv.cfg` here, as `site` would set it.
const PROBE: &str = r#"
import json, os, sys, sysconfig
var = sysconfig.get_config_var
prefix = sys.prefix
venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
if os.path.isfile(os.path.join(venv, "pyvenv.cfg")):
    prefix = venv
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "implementation": sys.implementation.name,
    "executable": sys.executable,
    "prefix": prefix,
    "libdir": var("LIBDIR"),
    "libpl": var("LIBPL"),
    "multiarch": var("MULTIARCH"),
    "ldlibrary": var("LDLIBRARY"),
    "instsoname": var("INSTSONAME"),
    "free_threaded": bool(var("Py_GIL_DISABLED")),
}))
"#;

/// Where the target interpreter came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--python`.
    Flag,
    /// `LEAKCHECK_PYTHON`.
    Variable,
    /// The configuration file's `python`.
    Config,
    /// An active virtual environment (`VIRTUAL_ENV`).
    VirtualEnv,
    /// `./.venv` in the working directory.
    DotVenv,
    /// `python3` on `PATH`.
    Path,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Flag => "--python",
            Origin::Variable => "LEAKCHECK_PYTHON",
            Origin::Config => "the configuration's python",
            Origin::VirtualEnv => "VIRTUAL_ENV",
            Origin::DotVenv => "./.venv",
            Origin::Path => "python3 on PATH",
        })
    }
}

/// How to get a CPython with a shared libpython, for the refusal that lacks one.
const SHARED_REMEDY: &str = "use a CPython built with a shared libpython: on Debian/Ubuntu \
`apt-get install libpython{minor}`; with pyenv `PYTHON_CONFIGURE_OPTS=--enable-shared pyenv \
install --force {version}`; or a uv-managed Python (`uv python install {minor}`, then `uv venv`)";

/// Why no worker can run the scenarios in the requested Python.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    /// Nothing was given and no `python3` is on `PATH`.
    #[error(
        "no Python interpreter found: no --python, LEAKCHECK_PYTHON, configured python, VIRTUAL_ENV or ./.venv, and no python3 on PATH; pass --python PATH (an interpreter or a virtual environment) or install CPython (`uv python install 3.12`)"
    )]
    NoInterpreter,
    /// Nothing runnable at the path.
    #[error("{origin} `{path}` is not a Python interpreter or virtual environment: {reason}")]
    NotPython {
        /// Where the path came from.
        origin: Origin,
        /// The path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// PyPy, GraalPy and the like: the worker embeds CPython's C API.
    #[error(
        "{origin} `{path}` is {implementation} {version}, but leakcheck runs scenarios in CPython only: use a CPython interpreter or environment"
    )]
    NotCPython {
        /// Where the path came from.
        origin: Origin,
        /// The path.
        path: PathBuf,
        /// `sys.implementation.name`.
        implementation: String,
        /// Its version.
        version: String,
    },
    /// A free-threaded (`python3.13t`) build, whose ABI no worker is built for.
    #[error(
        "{origin} `{path}` is a free-threaded CPython {version}, which leakcheck does not support yet: use the regular (GIL) build of CPython {minor}"
    )]
    FreeThreaded {
        /// Where the path came from.
        origin: Origin,
        /// The path.
        path: PathBuf,
        /// Its version.
        version: String,
        /// Its `X.Y`.
        minor: String,
    },
    /// A CPython whose libpython exists only as a static library, linked into its executable.
    #[error(
        "{origin} `{path}` is CPython {version} without a shared libpython{minor}, which leakcheck's worker needs to embed it (looked in {looked}): {remedy}"
    )]
    NoSharedLibrary {
        /// Where the path came from.
        origin: Origin,
        /// The path.
        path: PathBuf,
        /// Its version.
        version: String,
        /// Its `X.Y`.
        minor: String,
        /// The folders searched.
        looked: String,
        /// How to get one.
        remedy: String,
    },
}

/// The interpreter the scenarios run in, as it described itself.
#[derive(Clone, Debug)]
pub struct Target {
    /// Where it came from.
    pub origin: Origin,
    /// The path as given (an interpreter, a venv folder, or `python3` found on `PATH`).
    pub requested: PathBuf,
    /// Its `X.Y`: which worker serves it.
    pub minor: String,
    /// The folder holding its shared libpython, for the worker's loader search path.
    pub libdir: PathBuf,
    /// The shared libpython itself.
    pub library: PathBuf,
    /// What the worker is told about it.
    pub environment: PythonEnvironment,
}

#[derive(Deserialize)]
struct Probe {
    version: String,
    #[serde(default = "cpython")]
    implementation: String,
    executable: PathBuf,
    prefix: PathBuf,
    #[serde(default)]
    libdir: Option<PathBuf>,
    #[serde(default)]
    libpl: Option<PathBuf>,
    #[serde(default)]
    multiarch: Option<String>,
    #[serde(default)]
    ldlibrary: Option<String>,
    #[serde(default)]
    instsoname: Option<String>,
    #[serde(default)]
    free_threaded: bool,
}

fn cpython() -> String {
    "cpython".to_string()
}

/// Resolves the target interpreter: `flag` (`--python`), else `LEAKCHECK_PYTHON`, else
/// `configured`, else `VIRTUAL_ENV`, else `./.venv`, else `python3` on `PATH`, and probes it.
pub fn resolve(flag: Option<&Path>, configured: Option<&Path>) -> Result<Target, EnvironmentError> {
    let (origin, path) = locate(flag, configured)?;
    probe(origin, &path)
}

/// The first candidate that is given (or, for `./.venv`, that exists); not yet probed.
pub fn locate(
    flag: Option<&Path>,
    configured: Option<&Path>,
) -> Result<(Origin, PathBuf), EnvironmentError> {
    let variable = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(path) = flag {
        return Ok((Origin::Flag, path.to_path_buf()));
    }
    if let Some(path) = variable("LEAKCHECK_PYTHON") {
        return Ok((Origin::Variable, PathBuf::from(path)));
    }
    if let Some(path) = configured {
        return Ok((Origin::Config, path.to_path_buf()));
    }
    if let Some(path) = variable("VIRTUAL_ENV") {
        return Ok((Origin::VirtualEnv, PathBuf::from(path)));
    }
    let dot_venv = Path::new(".venv");
    if venv_python(dot_venv).is_some() {
        return Ok((Origin::DotVenv, dot_venv.to_path_buf()));
    }
    find_on_path(OsStr::new("python3"))
        .map(|path| (Origin::Path, path))
        .ok_or(EnvironmentError::NoInterpreter)
}

/// `bin/python3` or `bin/python` of a virtual-environment folder.
fn venv_python(folder: &Path) -> Option<PathBuf> {
    ["bin/python3", "bin/python"]
        .iter()
        .map(|name| folder.join(name))
        .find(|candidate| candidate.is_file())
}

/// The first executable file called `name` in a `PATH` folder.
fn find_on_path(name: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Longest part of a failed probe's stderr quoted in its error.
const QUOTED_STDERR: usize = 200;

/// Runs `executable -E -S -` (no site, no PYTHON* variables: the probe needs neither, and
/// skipping them saves ~25 ms) with `script` on its standard input.
fn run_with_stdin(executable: &Path, script: &str) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(executable)
        .args(["-E", "-S", "-"])
        .env_remove("PYTHONHOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let script = script.to_string();
    // A program that exits without reading closes the pipe: the write fails, harmlessly.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let output = child.wait_with_output();
    let _ = writer.join();
    output
}

/// Runs [`PROBE`] in the interpreter at `path` and checks a worker could embed it.
pub fn probe(origin: Origin, path: &Path) -> Result<Target, EnvironmentError> {
    let not_python = |reason: String| EnvironmentError::NotPython {
        origin,
        path: path.to_path_buf(),
        reason,
    };
    let executable = if path.is_dir() {
        venv_python(path)
            .ok_or_else(|| not_python("the folder has no bin/python3 or bin/python".to_string()))?
    } else {
        path.to_path_buf()
    };
    // The probe goes in on stdin (`python -`), not as an argument: a program that is not
    // Python echoes its arguments in its complaint, which then quoted the whole script.
    let output = run_with_stdin(&executable, PROBE).map_err(|err| not_python(err.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let mut quoted: String = last.chars().take(QUOTED_STDERR).collect();
        if quoted.len() < last.len() {
            quoted.push('…');
        }
        return Err(not_python(format!(
            "running it failed ({}) {quoted}",
            output.status
        )));
    }
    let probe: Probe = serde_json::from_slice(&output.stdout)
        .map_err(|err| not_python(format!("unexpected answer to the probe: {err}")))?;
    let minor = probe
        .version
        .rsplit_once('.')
        .map(|(minor, _)| minor.to_string())
        .unwrap_or_default();
    if probe.implementation != "cpython" {
        return Err(EnvironmentError::NotCPython {
            origin,
            path: path.to_path_buf(),
            implementation: implementation_name(&probe.implementation),
            version: probe.version,
        });
    }
    if probe.free_threaded {
        return Err(EnvironmentError::FreeThreaded {
            origin,
            path: path.to_path_buf(),
            version: probe.version,
            minor,
        });
    }
    let folders = library_folders(&probe);
    let Some(library) = shared_library(&probe, &minor, &folders) else {
        let looked = folders
            .iter()
            .map(|dir| format!("`{}`", dir.display()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(EnvironmentError::NoSharedLibrary {
            origin,
            path: path.to_path_buf(),
            remedy: SHARED_REMEDY
                .replace("{minor}", &minor)
                .replace("{version}", &probe.version),
            version: probe.version,
            minor,
            looked: if looked.is_empty() {
                "no LIBDIR".to_string()
            } else {
                looked
            },
        });
    };
    let libdir = library.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Target {
        origin,
        requested: path.to_path_buf(),
        minor,
        libdir,
        library,
        environment: PythonEnvironment {
            // `sys.executable` keeps a venv's own bin/python (not the interpreter it links to),
            // so CPython started under that name sets the venv up, and subprocesses started with
            // sys.executable land in the same environment; a pyenv shim resolves to the real one.
            executable: probe.executable,
            prefix: probe.prefix,
            version: probe.version,
            // Only read when the worker swaps site-packages in, which it does not for a target
            // it runs as (`native`).
            site_packages: Vec::new(),
            // The worker runs on this interpreter's own libpython, so it starts CPython as this
            // interpreter instead of swapping its site-packages in.
            native: true,
        },
    })
}

/// `PyPy` rather than `pypy`, for the few names we know.
fn implementation_name(name: &str) -> String {
    match name {
        "pypy" => "PyPy".to_string(),
        "graalpy" => "GraalPy".to_string(),
        "ironpython" => "IronPython".to_string(),
        "jython" => "Jython".to_string(),
        other => other.to_string(),
    }
}

/// Where a CPython installation keeps its shared libpython: `LIBDIR`, its multiarch subfolder
/// (Debian), `LIBPL`.
fn library_folders(probe: &Probe) -> Vec<PathBuf> {
    let mut folders = Vec::new();
    if let Some(libdir) = &probe.libdir {
        folders.push(libdir.clone());
        if let Some(multiarch) = probe.multiarch.as_deref().filter(|m| !m.is_empty()) {
            folders.push(libdir.join(multiarch));
        }
    }
    folders.extend(probe.libpl.clone());
    folders.dedup();
    folders
}

/// The shared libpython the worker's loader will look for: the file named by its soname.
fn shared_library(probe: &Probe, minor: &str, folders: &[PathBuf]) -> Option<PathBuf> {
    let mut names: Vec<String> = Vec::new();
    if let Some(soname) = probe.instsoname.as_deref().filter(|n| n.contains(".so")) {
        names.push(soname.to_string());
    }
    if cfg!(target_os = "macos") {
        names.extend(probe.ldlibrary.clone().filter(|n| n.ends_with(".dylib")));
        names.push(format!("libpython{minor}.dylib"));
    } else {
        names.push(format!("libpython{minor}.so.1.0"));
    }
    folders
        .iter()
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_read_as_the_user_wrote_them() {
        assert_eq!(Origin::Flag.to_string(), "--python");
        assert_eq!(Origin::Path.to_string(), "python3 on PATH");
    }
}
