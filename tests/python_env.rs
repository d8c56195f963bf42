//! Which CPython runs the scenarios: the target interpreter's own libpython, set up as that
//! interpreter (a venv's own `python`), whichever CPython 3.11 build it comes from; `--python` /
//! `VIRTUAL_ENV` choose it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Project, required, scenario, transcript};

/// The interpreter build.rs resolved (pyo3's choice: PYO3_PYTHON, else `python3` on PATH).
const BUILD_PYTHON: &str = env!("LEAKCHECK_BUILD_PYTHON");

fn python_says(python: &str, code: &str) -> String {
    let out = Command::new(python).args(["-c", code]).output().unwrap();
    assert!(out.status.success(), "{python} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `(major.minor, sys.base_prefix)` of `python`, or `None` when it does not run.
fn identify(python: &Path) -> Option<(String, String)> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.base_prefix)",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut lines = text.lines();
    let found = (lines.next()?.to_string(), lines.next()?.to_string());
    out.status.success().then_some(found)
}

/// Every CPython installation on this machine of the embedded one's minor version other than
/// the embedded one: `python3` and `python3.X` on `PATH`, in `/usr/bin` and `/usr/local/bin`,
/// and pyenv's versions (`$PYENV_ROOT`, else `~/.pyenv`). One interpreter per installation.
fn other_pythons_of_the_embedded_version() -> Vec<PathBuf> {
    let (minor, build_prefix) =
        identify(Path::new(BUILD_PYTHON)).expect("the build interpreter runs");
    let names = ["python3".to_string(), format!("python{minor}")];
    let mut folders: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    folders.extend(["/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")));
    if let Some(Ok(versions)) = pyenv.map(|root| std::fs::read_dir(root.join("versions"))) {
        let mut versions: Vec<PathBuf> = versions.flatten().map(|v| v.path().join("bin")).collect();
        versions.sort();
        folders.extend(versions);
    }
    let mut seen = vec![build_prefix];
    let mut found = Vec::new();
    for candidate in folders
        .iter()
        .flat_map(|f| names.iter().map(move |n| f.join(n)))
    {
        if !candidate.is_file() {
            continue;
        }
        if let Some((version, prefix)) = identify(&candidate)
            && version == minor
            && !seen.contains(&prefix)
        {
            seen.push(prefix);
            found.push(candidate);
        }
    }
    found
}

/// A venv made from another installation of the embedded CPython's minor version (Debian's
/// `/usr/bin/python3` when leakcheck embeds pyenv's, or the reverse), holding a module only it
/// has; `None` (a skipped test, see [`required`]) when the machine has only one.
fn venv_from_other_python(project: &Project) -> Option<PathBuf> {
    let other = other_pythons_of_the_embedded_version().into_iter().next();
    let how = format!(
        "the build interpreter is {BUILD_PYTHON}; install another CPython of its minor version \
         (Debian's python3, or one from pyenv)"
    );
    if !required("a second CPython installation", other.is_some(), &how) {
        return None;
    }
    let other = other?;
    let venv = project.path().join("venv");
    make_venv(
        other.to_str().unwrap(),
        &venv,
        "only_in_venv.py",
        "registry = []\n\ndef remember(x):\n    registry.append(x)\n",
    );
    Some(venv)
}

/// `python -m venv --without-pip venv`, with `file` written into its site-packages.
fn make_venv(python: &str, venv: &std::path::Path, file: &str, text: &str) {
    let status = Command::new(python)
        .args(["-m", "venv", "--without-pip"])
        .arg(venv)
        .status()
        .unwrap();
    assert!(status.success());
    let site = python_says(
        venv.join("bin/python").to_str().unwrap(),
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    );
    std::fs::write(std::path::Path::new(&site).join(file), text).unwrap();
}

const VENV_SCENARIO: &str = r#"
scenarios:
  - name: uses-venv-package
    expect: leak
    setup: |
      import sys, only_in_venv
      assert sys.executable.startswith(VENV), (sys.executable, VENV)
    run: |
      only_in_venv.remember([i])
"#;

#[test]
fn python_flag_and_virtual_env_import_packages_from_another_installation() {
    let project = Project::new();
    let Some(venv) = venv_from_other_python(&project) else {
        return;
    };
    let scenario_text = VENV_SCENARIO.replace("VENV", &format!("{:?}", venv.display().to_string()));
    project.write("venv.yaml", &scenario_text);

    // Without --python the module is not importable: an error, not a silent pass.
    let (output, results) = project.run(&["venv.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let error = scenario(&results, "uses-venv-package")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("ModuleNotFoundError"), "{error}");

    // With --python pointing at the venv folder.
    let (output, results) = project.run(&["venv.yaml", "--python", venv.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    assert_eq!(scenario(&results, "uses-venv-package")["verdict"], "leak");
    assert_eq!(results["python"]["environment"], venv.to_str().unwrap());

    // With VIRTUAL_ENV, as after `source venv/bin/activate`.
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let output = cmd
        .current_dir(project.path())
        .env("VIRTUAL_ENV", &venv)
        .args(["run", "venv.yaml", "--report-dir", "reports2"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
}

#[test]
fn a_venv_first_on_path_is_the_target_interpreter() {
    // With nothing else given, `python3` on PATH is the target: here a venv of the other 3.11
    // build, whose own libpython the worker then runs on (and whose standard library matches).
    let project = Project::new();
    let Some(venv) = venv_from_other_python(&project) else {
        return;
    };
    project.write(
        "where.yaml",
        "name: where\nsetup: |\n  import sys, json\n  print('PREFIX', sys.base_prefix, flush=True)\nrun: x = [i]\n",
    );
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let output = cmd
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .env("PATH", path)
        .args(["run", "where.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    let results = project.results("reports");
    let s = scenario(&results, "where");
    let prefix = python_says(
        venv.join("bin/python").to_str().unwrap(),
        "import sys; print(sys.base_prefix)",
    );
    assert!(
        s["stdout"]
            .as_str()
            .unwrap()
            .contains(&format!("PREFIX {prefix}\n")),
        "{s:#}"
    );
}

#[test]
fn the_worker_runs_without_the_malloc_thread_cache_and_subprocesses_get_the_users_tunables() {
    // glibc's per-thread cache counts freed chunks as in use in mallinfo2(): the worker starts
    // with it off, then gives scenario code (and its subprocesses) the user's GLIBC_TUNABLES.
    let project = Project::new();
    project.write(
        "tunables.yaml",
        r#"
name: tunables
iterations: 10
warmup: 0
setup: |
  import ctypes, os, subprocess, sys
  # A freed 600 B chunk would sit in the thread cache, counted as in use by mallinfo2().
  libc = ctypes.CDLL(None)
  class MallInfo2(ctypes.Structure):
      _fields_ = [(n, ctypes.c_size_t) for n in
                  "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
  libc.mallinfo2.restype = MallInfo2
  libc.malloc.restype = ctypes.c_void_p
  chunk = libc.malloc(600)
  before = libc.mallinfo2().uordblks
  libc.free(ctypes.c_void_p(chunk))
  after = libc.mallinfo2().uordblks
  assert after <= before - 600, (before, after)
  assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2", os.environ["GLIBC_TUNABLES"]
  assert not any(k.startswith("LEAKCHECK_USER") for k in os.environ)
  child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['GLIBC_TUNABLES'])"],
                         capture_output=True, text=True, check=True)
  assert child.stdout.strip() == "glibc.malloc.arena_max=2", child.stdout
run: pass
"#,
    );
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let output = cmd
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .env("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
        .args(["run", "tunables.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    let results = project.results("reports");
    assert_eq!(scenario(&results, "tunables")["verdict"], "pass");
}

#[test]
fn a_venv_of_the_embedded_installation_is_set_up_as_running_it_would() {
    // The embedded interpreter starts as the venv's own python: sys.prefix is the venv, its
    // `.pth` files run, and none of the installation's own site-packages (or their `.pth` files,
    // such as setuptools' distutils shim) come in.
    let project = Project::new();
    let venv = project.path().join("own-venv");
    make_venv(
        BUILD_PYTHON,
        &venv,
        "marker.pth",
        "import sys; sys.venv_pth_ran = True\n",
    );
    let own_site = python_says(
        BUILD_PYTHON,
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    );
    project.write(
        "own.yaml",
        &format!(
            r#"
name: own-venv
iterations: 10
warmup: 0
setup: |
  import sys
  assert sys.prefix == {venv:?}, sys.prefix
  assert sys.executable.startswith({venv:?}), sys.executable
  assert getattr(sys, "venv_pth_ran", False), "the venv's .pth did not run"
  assert {own_site:?} not in sys.path, sys.path
  assert "_distutils_hack" not in sys.modules, "the installation's .pth files ran"
run: pass
"#,
            venv = venv.display().to_string(),
        ),
    );
    let (output, results) = project.run(&["own.yaml", "--python", venv.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    assert_eq!(scenario(&results, "own-venv")["verdict"], "pass");
}
