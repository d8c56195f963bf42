//! The target interpreter and its worker: the parent links no libpython and starts with an empty
//! environment, the target is resolved in the documented order, what no worker can embed is
//! refused before anything runs (one test per refusal, with fake interpreters that answer the
//! probe), and every CPython of the worker's minor version on this machine runs scenarios.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Project, scenario, transcript};

/// The `NEEDED` and `RUNPATH`/`RPATH` entries of an ELF file's dynamic section, read with
/// binutils' `readelf` (binutils provides the linker cargo builds with, so it is there).
fn dynamic_entries(binary: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf -d {}", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| {
            line.contains("(NEEDED)") || line.contains("(RUNPATH)") || line.contains("(RPATH)")
        })
        .map(str::to_string)
        .collect()
}

fn leakcheck_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_leakcheck"))
}

#[test]
fn the_parent_links_no_libpython_and_the_worker_carries_no_run_path() {
    let parent = dynamic_entries(&leakcheck_exe());
    assert!(
        !parent.iter().any(|line| line.contains("libpython")),
        "{parent:#?}"
    );
    assert!(
        !parent.iter().any(|line| line.contains("PATH)")),
        "{parent:#?}"
    );
    let worker = dynamic_entries(Path::new(env!("CARGO_BIN_EXE_leakcheck-worker")));
    assert!(
        worker.iter().any(|line| line.contains("libpython3.")),
        "{worker:#?}"
    );
    assert!(
        !worker.iter().any(|line| line.contains("PATH)")),
        "the worker must find libpython through the target's LIBDIR only: {worker:#?}"
    );
}

#[test]
fn the_parent_starts_with_an_empty_environment() {
    let out = Command::new(leakcheck_exe())
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("worker: CPython 3."), "{text}");
    // No PATH: no python3 to find, said plainly.
    assert!(
        text.contains("python: none usable here: no Python interpreter found"),
        "{text}"
    );
}

/// What `python3` on `PATH` says, as the tests see it.
fn python_says(python: &Path, code: &str) -> Option<String> {
    let out = Command::new(python).args(["-c", code]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_lists_the_workers_and_the_interpreter_it_would_use() {
    let project = Project::new();
    let out = project.leakcheck(&["--version"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let worker = Path::new(env!("CARGO_BIN_EXE_leakcheck-worker"));
    assert!(
        text.contains(&worker.display().to_string()),
        "the sibling worker is listed:\n{text}"
    );
    let version = python_says(
        Path::new("python3"),
        "import sys; print('%d.%d.%d' % sys.version_info[:3])",
    )
    .expect("python3 on PATH");
    assert!(
        text.contains(&format!("python: CPython {version} ")) && text.contains("python3 on PATH"),
        "{text}"
    );
}

/// A fake interpreter at `relative/bin/python3` that answers the probe with `fields` (JSON
/// members after the common ones).
fn fake_python(project: &Project, relative: &str, version: &str, fields: &str) -> PathBuf {
    let answer = format!(
        r#"{{"version": "{version}", "executable": "/x/bin/python3", "prefix": "/x", "paths": [], {fields}}}"#
    );
    let script = format!("#!/bin/sh\ncat <<'EOF'\n{answer}\nEOF\n");
    let path = project.write(&format!("{relative}/bin/python3"), &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A library folder holding an (empty) file named like the shared libpython of `minor`.
fn fake_libdir(project: &Project, relative: &str, minor: &str) -> PathBuf {
    let lib = project.write(&format!("{relative}/libpython{minor}.so.1.0"), "");
    lib.parent().unwrap().to_path_buf()
}

/// Runs `leakcheck run s.yaml <args>` and checks it refused with exit 2, nothing run, and a
/// message holding every one of `expected`.
fn assert_refused(project: &Project, args: &[&str], expected: &[&str]) {
    project.write("s.yaml", "name: s\nrun: pass\n");
    let mut all = vec!["run", "s.yaml"];
    all.extend_from_slice(args);
    let out = project.leakcheck(&all);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for text in expected {
        assert!(stderr.contains(text), "expected {text:?} in:\n{stderr}");
    }
    assert!(
        !project.path().join("reports").exists(),
        "nothing was run:\n{stderr}"
    );
}

#[test]
fn no_interpreter_at_all_is_refused() {
    let project = Project::new();
    project.write("s.yaml", "name: s\nrun: pass\n");
    let empty = project.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = assert_cmd::Command::new(leakcheck_exe())
        .current_dir(project.path())
        .env_clear()
        .env("PATH", &empty)
        .args(["run", "s.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no Python interpreter found") && stderr.contains("--python PATH"),
        "{stderr}"
    );
    assert!(!project.path().join("reports").exists());
}

#[test]
fn a_cpython_without_a_shared_libpython_is_refused_with_the_ways_to_get_one() {
    let project = Project::new();
    let empty = project.path().join("static-lib");
    std::fs::create_dir(&empty).unwrap();
    let python = fake_python(
        &project,
        "static",
        "3.11.4",
        &format!(r#""libdir": {:?}, "enable_shared": false"#, empty.display()),
    );
    assert_refused(
        &project,
        &["--python", python.to_str().unwrap()],
        &[
            &format!(
                "--python `{}` is CPython 3.11.4 without a shared libpython3.11",
                python.display()
            ),
            "apt-get install libpython3.11",
            "PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install --force 3.11.4",
            "uv python install 3.11",
        ],
    );
}

#[test]
fn a_version_no_worker_serves_is_refused_with_the_supported_ones() {
    let project = Project::new();
    let libdir = fake_libdir(&project, "future/lib", "3.99");
    let python = fake_python(
        &project,
        "future",
        "3.99.0",
        &format!(r#""libdir": {:?}"#, libdir.display()),
    );
    let served = python_says(
        Path::new("python3"),
        "import sys; print('%d.%d' % sys.version_info[:2])",
    )
    .unwrap();
    assert_refused(
        &project,
        &["--python", python.to_str().unwrap()],
        &[
            &format!("--python `{}` is CPython 3.99.0", python.display()),
            &format!("has workers for CPython {served} only"),
        ],
    );
}

#[test]
fn a_free_threaded_build_is_refused() {
    let project = Project::new();
    let libdir = fake_libdir(&project, "ft/lib", "3.13t");
    let python = fake_python(
        &project,
        "ft",
        "3.13.1",
        &format!(r#""libdir": {:?}, "free_threaded": true"#, libdir.display()),
    );
    assert_refused(
        &project,
        &["--python", python.to_str().unwrap()],
        &[
            "is a free-threaded CPython 3.13.1",
            "use the regular (GIL) build of CPython 3.13",
        ],
    );
}

#[test]
fn pypy_is_refused() {
    let project = Project::new();
    let python = fake_python(&project, "pypy", "3.10.14", r#""implementation": "pypy""#);
    assert_refused(
        &project,
        &["--python", python.to_str().unwrap()],
        &["is PyPy 3.10.14", "CPython only"],
    );
}

#[test]
fn the_target_is_resolved_flag_variable_config_virtual_env_dot_venv_then_path() {
    // Every candidate is a fake PyPy, so each run stops at the refusal that names the one used.
    let project = Project::new();
    project.write("s.yaml", "name: s\nrun: pass\n");
    let fakes: Vec<PathBuf> = [
        "flag",
        "variable",
        "config",
        "virtual-env",
        ".venv",
        "on-path",
    ]
    .iter()
    .map(|name| fake_python(&project, name, "3.10.14", r#""implementation": "pypy""#))
    .collect();
    project.write("leakcheck.yaml", "python: config\n");
    let venv_of = |python: &Path| python.parent().unwrap().parent().unwrap().to_path_buf();
    let run = |args: &[&str], env: &[(&str, &Path)], no_config: bool| {
        let mut cmd = assert_cmd::Command::new(leakcheck_exe());
        cmd.current_dir(project.path())
            .env_remove("VIRTUAL_ENV")
            .env_remove("LEAKCHECK_PYTHON")
            .env("PATH", fakes[5].parent().unwrap())
            .args(["run", "s.yaml"])
            .args(args);
        if no_config {
            cmd.arg("--no-config");
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let variable = venv_of(&fakes[1]);
    let virtual_env = venv_of(&fakes[3]);
    let all_env: [(&str, &Path); 2] = [
        ("LEAKCHECK_PYTHON", &variable),
        ("VIRTUAL_ENV", &virtual_env),
    ];
    let flag = fakes[0].to_str().unwrap();
    assert!(run(&["--python", flag], &all_env, false).contains("--python `"));
    assert!(run(&[], &all_env, false).contains("LEAKCHECK_PYTHON `"));
    let configured = run(&[], &all_env[1..], false);
    assert!(
        configured.contains("the configuration's python `") && configured.contains("config"),
        "{configured}"
    );
    assert!(run(&[], &all_env[1..], true).contains("VIRTUAL_ENV `"));
    assert!(run(&[], &[], true).contains("./.venv `"));
    std::fs::remove_dir_all(project.path().join(".venv")).unwrap();
    let on_path = run(&[], &[], true);
    assert!(on_path.contains("python3 on PATH `"), "{on_path}");
    assert!(on_path.contains("on-path/bin/python3"), "{on_path}");
}

/// Every distinct CPython installation (by `sys.base_prefix` and version) reachable as
/// `python3` or `python3.X` on `PATH`, with its `X.Y.Z`.
fn installations_on_path() -> Vec<(PathBuf, String)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                name == "python3"
                    || name
                        .strip_prefix("python3.")
                        .is_some_and(|minor| minor.parse::<u32>().is_ok())
            })
            .collect();
        names.sort();
        for candidate in names {
            let Some(answer) = python_says(
                &candidate,
                "import sys; print(sys.implementation.name, sys.base_prefix, '%d.%d.%d' % sys.version_info[:3])",
            ) else {
                continue;
            };
            let mut words = answer.split_whitespace();
            let (Some("cpython"), Some(prefix), Some(version)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            if seen.insert((prefix.to_string(), version.to_string())) {
                found.push((candidate, version.to_string()));
            }
        }
    }
    found
}

#[test]
fn every_cpython_of_the_workers_version_on_this_machine_runs_scenarios() {
    // The worker was built against one of them; the loader maps the target's own libpython.
    let minor = env!("LEAKCHECK_BUILD_PYTHON_VERSION");
    let matching: Vec<(PathBuf, String)> = installations_on_path()
        .into_iter()
        .filter(|(_, version)| version.starts_with(&format!("{minor}.")))
        .collect();
    assert!(
        matching.len() >= 2,
        "this machine has two CPython {minor} builds (pyenv's and Debian's); found {matching:?}"
    );
    let project = Project::new();
    project.write(
        "where.yaml",
        "name: where\nexpect: leak\nsetup: |\n  import sys\n  kept = []\n  print('RUNS', sys.version.split()[0], sys.base_prefix, flush=True)\nrun: kept.append([i])\n",
    );
    for (index, (python, version)) in matching.iter().enumerate() {
        let folder = format!("reports-{index}");
        let out = project.leakcheck(&[
            "run",
            "where.yaml",
            "--python",
            python.to_str().unwrap(),
            "--report-dir",
            &folder,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        let results = project.results(&folder);
        let s = scenario(&results, "where");
        assert_eq!(s["verdict"], "leak", "{s:#}");
        assert!(
            s["stdout"]
                .as_str()
                .unwrap()
                .contains(&format!("RUNS {version} ")),
            "{python:?} ran as {s:#}"
        );
        assert!(
            results["python"]["version"]
                .as_str()
                .unwrap()
                .starts_with(version.as_str()),
            "{results:#}"
        );
    }
}

/// A scenario that checks scenario code, and a subprocess of it, see `LD_LIBRARY_PATH` as
/// `expected` (a Python expression).
const LIBRARY_PATH_SCENARIO: &str = r#"
name: libpath
iterations: 10
warmup: 0
setup: |
  import os, subprocess, sys
  expected = EXPECTED
  assert os.environ.get("LD_LIBRARY_PATH") == expected, os.environ.get("LD_LIBRARY_PATH")
  assert not any(k.startswith("LEAKCHECK_USER") for k in os.environ)
  child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('LD_LIBRARY_PATH'))"],
                         capture_output=True, text=True, check=True)
  assert child.stdout.strip() == str(expected), child.stdout
run: pass
"#;

#[test]
fn the_worker_gives_scenario_code_the_users_library_path() {
    // The worker starts with the target's LIBDIR first in LD_LIBRARY_PATH; scenario code and its
    // subprocesses see the user's own value again, or none when the user had none.
    let project = Project::new();
    for user in [Some("/nonexistent/user-libs"), None] {
        let expected = match user {
            Some(value) => format!("{value:?}"),
            None => "None".to_string(),
        };
        project.write(
            "libpath.yaml",
            &LIBRARY_PATH_SCENARIO.replace("EXPECTED", &expected),
        );
        let mut cmd = assert_cmd::Command::new(leakcheck_exe());
        cmd.current_dir(project.path())
            .env_remove("VIRTUAL_ENV")
            .env_remove("LD_LIBRARY_PATH")
            .args(["run", "libpath.yaml"]);
        if let Some(value) = user {
            cmd.env("LD_LIBRARY_PATH", value);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        let results = project.results("reports");
        assert_eq!(scenario(&results, "libpath")["verdict"], "pass");
    }
}

/// A copy of `leakcheck` in a folder of its own (so not a checkout's, which builds its worker)
/// with a fake `leakcheck-worker-X.Y` for python3's version that runs `script`.
fn installed_copy_with_worker(project: &Project, script: &str) -> PathBuf {
    let bin = project.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let parent = bin.join("leakcheck");
    std::fs::copy(leakcheck_exe(), &parent).unwrap();
    let minor = python_says(
        Path::new("python3"),
        "import sys; print('%d.%d' % sys.version_info[:2])",
    )
    .unwrap();
    let worker = bin.join(format!("leakcheck-worker-{minor}"));
    std::fs::write(&worker, script).unwrap();
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
    parent
}

#[test]
fn a_worker_from_another_build_or_that_cannot_start_is_refused() {
    let project = Project::new();
    project.write("s.yaml", "name: s\nrun: pass\n");
    for (script, expected) in [
        (
            "#!/bin/sh\necho 'deadbeef 3.11'\n",
            "is from another build of leakcheck (it says `deadbeef 3.11`",
        ),
        (
            "#!/bin/sh\necho 'error while loading shared libraries: libpython3.11.so.1.0' >&2\nexit 127\n",
            "does not start with the libpython in",
        ),
    ] {
        let parent = installed_copy_with_worker(&project, script);
        let out = assert_cmd::Command::new(&parent)
            .current_dir(project.path())
            .env_remove("VIRTUAL_ENV")
            .args(["run", "s.yaml"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
        assert!(!project.path().join("reports").exists());
    }
}
