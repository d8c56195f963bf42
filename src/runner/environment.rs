//! Which Python environment the scenarios import packages from.
//!
//! leakcheck embeds one CPython (chosen at build time), but users keep their packages in a venv.
//! With `--python PATH` (an interpreter or a venv folder), or an active `VIRTUAL_ENV`, we ask that
//! interpreter for its package folders and the worker uses them instead of the embedded
//! interpreter's own site-packages. Extension modules only load into the same minor version, so a
//! different `X.Y` is refused up front with an explanation.
//!
//! A venv of the embedded installation itself (same `sys.base_prefix`, same build) is used
//! natively instead: the worker starts CPython as that venv's `python`, which then sets itself up
//! exactly as running the venv would (`sys.prefix`, its site-packages and `.pth` files, and none
//! of the installation's own).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::protocol::PythonEnvironment;

/// The `X.Y` version leakcheck embeds, fixed when it was built.
pub const EMBEDDED_MINOR: &str = env!("LEAKCHECK_BUILD_PYTHON_VERSION");

/// Asks the target interpreter for its version and its non-stdlib `sys.path` entries.
const PROBE: &str = r#"
import json, sys, sysconfig
paths = sysconfig.get_paths()
std = [paths["stdlib"], paths["platstdlib"]]
def is_std(p):
    if "site-packages" in p or "dist-packages" in p:
        return False
    return p.endswith(".zip") or any(p == s or p.startswith(s.rstrip("/") + "/") for s in std)
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "executable": sys.executable,
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "sys_version": sys.version,
    "paths": [p for p in sys.path if p and not is_std(p)],
}))
"#;

/// Why the requested Python cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    /// Nothing runnable at the path.
    #[error("{origin} `{path}` is not a Python interpreter or virtual environment: {reason}")]
    NotPython {
        /// Where the path came from (`--python`, `LEAKCHECK_PYTHON`, the configuration's
        /// `python`, `VIRTUAL_ENV`).
        origin: String,
        /// The path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A Python of another minor version.
    #[error(
        "{origin} `{path}` is Python {found}, but leakcheck embeds CPython {EMBEDDED_MINOR}: use a {EMBEDDED_MINOR} environment, or rebuild leakcheck with PYO3_PYTHON pointing at a Python {found_minor}"
    )]
    VersionMismatch {
        /// Where the path came from.
        origin: String,
        /// The path.
        path: PathBuf,
        /// Its full version.
        found: String,
        /// Its `X.Y`.
        found_minor: String,
    },
}

#[derive(Deserialize)]
struct Probe {
    version: String,
    executable: PathBuf,
    prefix: PathBuf,
    // Defaulted so that the version check speaks first for an interpreter that answers oddly.
    #[serde(default)]
    base_prefix: PathBuf,
    #[serde(default)]
    sys_version: String,
    paths: Vec<PathBuf>,
}

/// `sys.base_prefix` of the interpreter leakcheck embeds (empty if the build could not tell).
const BUILD_BASE_PREFIX: &str = env!("LEAKCHECK_BUILD_PYTHON_BASE_PREFIX");
/// `sys.version` of the interpreter leakcheck embeds: its build, not only its number.
const BUILD_SYS_VERSION: &str = env!("LEAKCHECK_BUILD_PYTHON_SYS_VERSION");

/// Resolves the requested Python (a path and where it was given, for messages), else
/// `VIRTUAL_ENV`, else `None` (the embedded interpreter's own packages).
pub fn resolve(
    python: Option<(&Path, &str)>,
) -> Result<Option<PythonEnvironment>, EnvironmentError> {
    let (origin, path) = match python {
        Some((path, origin)) => (origin.to_string(), path.to_path_buf()),
        None => match std::env::var_os("VIRTUAL_ENV") {
            Some(venv) if !venv.is_empty() => ("VIRTUAL_ENV".to_string(), PathBuf::from(venv)),
            _ => return Ok(None),
        },
    };
    probe(origin, &path).map(Some)
}

/// Longest part of a failed probe's stderr quoted in its error.
const QUOTED_STDERR: usize = 200;

/// Runs `executable -` with `script` on its standard input.
fn run_with_stdin(executable: &Path, script: &str) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(executable)
        .arg("-")
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

fn probe(origin: String, path: &Path) -> Result<PythonEnvironment, EnvironmentError> {
    let not_python = |reason: String| EnvironmentError::NotPython {
        origin: origin.clone(),
        path: path.to_path_buf(),
        reason,
    };
    let executable = if path.is_dir() {
        ["bin/python3", "bin/python"]
            .iter()
            .map(|name| path.join(name))
            .find(|candidate| candidate.is_file())
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
    let found_minor = probe
        .version
        .rsplit_once('.')
        .map(|(minor, _)| minor.to_string())
        .unwrap_or_default();
    if found_minor != EMBEDDED_MINOR {
        return Err(EnvironmentError::VersionMismatch {
            origin: origin.clone(),
            path: path.to_path_buf(),
            found: probe.version,
            found_minor,
        });
    }
    Ok(PythonEnvironment {
        // Keep the venv's own bin/python (not the interpreter it links to), so subprocesses
        // started with sys.executable land in the same environment.
        executable: if executable.is_absolute() {
            executable
        } else if executable.components().count() == 1 {
            // A bare name such as `python3.11`, found on PATH by the probe.
            probe.executable
        } else {
            std::path::absolute(&executable).unwrap_or(probe.executable)
        },
        native: probe.prefix != probe.base_prefix
            && !BUILD_BASE_PREFIX.is_empty()
            && probe.base_prefix == Path::new(BUILD_BASE_PREFIX)
            && probe.sys_version == BUILD_SYS_VERSION,
        prefix: probe.prefix,
        version: probe.version,
        site_packages: probe.paths,
    })
}
