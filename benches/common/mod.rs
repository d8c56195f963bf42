//! Helpers shared by the benches that build venvs from PyPI (`accuracy`, `pytest_suites`).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// A fresh venv at `dir` (anything there before is removed), made with `python3 -m venv`
/// (`PYO3_PYTHON` if set: the interpreter leakcheck embeds), and `pip install` run in it with
/// `pip_args` (requirements, or `-r FILE`).
pub fn fresh_venv<S: AsRef<OsStr>>(dir: &Path, pip_args: &[S]) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let interpreter = std::env::var_os("PYO3_PYTHON").unwrap_or_else(|| "python3".into());
    let mut create = Command::new(interpreter);
    create.args(["-m", "venv"]).arg(dir);
    succeed(create, "python3 -m venv")?;
    let mut install = Command::new(dir.join("bin/python"));
    install
        .args(["-m", "pip", "install", "--quiet"])
        .arg("--disable-pip-version-check")
        .args(pip_args);
    succeed(install, "pip install")
}

/// Runs `cmd`; an error naming `what` and the end of its stderr when it cannot start or fails.
pub fn succeed(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let output = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}): {}", output.status, tail.join(" / "));
    }
    Ok(())
}

/// The argument after `flag` in the bench's command line (`-- --runs 3`), if any.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
