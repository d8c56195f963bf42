//! Bad input of every kind: a clear message naming the file (and line, where there is one),
//! exit code 2, nothing run, and never a panic or a Rust backtrace, even with RUST_BACKTRACE set.

mod common;

use std::process::Output;

use common::{Project, transcript};

/// Runs `leakcheck run <args>` with backtraces requested, as a user debugging would.
fn run(project: &Project, args: &[&str]) -> Output {
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").expect("binary built");
    cmd.current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .env("RUST_BACKTRACE", "1")
        .arg("run")
        .args(args)
        .args(["--report-dir", "reports"]);
    cmd.output().expect("leakcheck runs")
}

/// Exit 2, `expected` on stderr, no panic, no backtrace, no reports.
fn assert_refused(project: &Project, args: &[&str], expected: &str) {
    let out = run(project, args);
    let log = transcript(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {log}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(expected),
        "{args:?}: expected\n{expected}\nin\n{log}"
    );
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!stderr.contains(bad), "{args:?}: {log}");
    }
    assert!(
        !project.path().join("reports").exists(),
        "{args:?}: nothing runs"
    );
}

#[test]
fn malformed_scenario_files_are_located_errors() {
    let project = Project::new();
    project.write("syntax.yaml", "name: x\nrun: [unclosed\n");
    project.write("types.yaml", "name: x\nrun: pass\niterations: many\n");
    project.write("unknown.yaml", "name: x\nrun: pass\niteration_timeot: 3\n");
    project.write("empty.yaml", "");
    project.write("dup/a.yaml", "name: same\nrun: pass\n");
    project.write("dup/b.yaml", "name: same\nrun: pass\n");
    project.write(
        "limits.yaml",
        "name: x\nrun: pass\niteration_timeout: 0\nmax_rss: lots\n",
    );
    std::fs::create_dir(project.path().join("nothing-here")).unwrap();
    std::fs::write(
        project.path().join("latin1.yaml"),
        b"name: x\nrun: pass\ndescription: caf\xe9\n",
    )
    .unwrap();
    let cases: [(&str, &str); 9] = [
        ("syntax.yaml", "syntax.yaml:3:1: invalid YAML"),
        (
            "types.yaml",
            "types.yaml:3:13: key `iterations` in scenario `x`: expected a non-negative integer",
        ),
        (
            "unknown.yaml",
            "unknown.yaml:3:1: unknown key `iteration_timeot` in scenario `x` (did you mean `iteration_timeout`?)",
        ),
        ("empty.yaml", "empty.yaml: file is empty"),
        (
            "dup",
            "dup/b.yaml:1:7: duplicate scenario name `same` (first defined at dup/a.yaml:1)",
        ),
        (
            "limits.yaml",
            "limits.yaml:3:20: key `iteration_timeout` in scenario `x`: must be a finite number of seconds above 0",
        ),
        (
            "limits.yaml",
            "limits.yaml:4:10: key `max_rss` in scenario `x`: `lots` is not a number",
        ),
        (
            "nothing-here",
            "nothing-here: no scenario files (*.yaml, *.yml) found under this directory",
        ),
        (
            "latin1.yaml",
            "latin1.yaml:3:17: file is not valid UTF-8 text",
        ),
    ];
    for (path, expected) in cases {
        assert_refused(&project, &[path], expected);
    }
}

#[test]
fn huge_and_pathological_files_are_refused_quickly() {
    let project = Project::new();
    // 50 MB: refused from its size, without parsing it.
    let line = format!("  {}\n", "x".repeat(77));
    let mut big = String::from("name: big\nrun: pass\ndescription: |\n");
    while big.len() < 50_000_000 {
        big.push_str(&line);
    }
    project.write("big.yaml", &big);
    assert_refused(
        &project,
        &["big.yaml"],
        "big.yaml: file is too large for a scenario file (47.7 MiB; the limit is 10 MiB)",
    );
    // Brackets nested 100 000 deep: libyaml would take minutes before failing.
    let deep = format!(
        "name: deep\nrun: pass\ntags: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    project.write("deep.yaml", &deep);
    assert_refused(
        &project,
        &["deep.yaml"],
        "deep.yaml:3:1007: brackets (`[`, `{`) nest more than 1000 levels deep",
    );
    // An alias bomb ("billion laughs").
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    bomb.push_str("name: bomb\nrun: pass\ntags: *a8\n");
    project.write("bomb.yaml", &bomb);
    assert_refused(&project, &["bomb.yaml"], "bomb.yaml: invalid YAML");
    // A device named as a scenario file.
    assert_refused(
        &project,
        &["/dev/zero"],
        "/dev/zero: file is too large for a scenario file",
    );
}

#[test]
fn a_circular_python_path_is_refused_at_its_line() {
    let project = Project::new();
    std::os::unix::fs::symlink("loop-b", project.path().join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", project.path().join("loop-b")).unwrap();
    project.write(
        "s.yaml",
        "name: circular\nrun: pass\npython_path: [lib, loop-a]\n",
    );
    assert_refused(
        &project,
        &["s.yaml"],
        "s.yaml:3:20: key `python_path` in scenario `circular`: `loop-a` is a circular chain of symbolic links",
    );
}

#[test]
fn a_python_that_is_not_a_usable_python_is_refused_before_running() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new();
    project.write("s.yaml", "name: s\nrun: pass\n");
    let text = project.write("notes.txt", "just text\n");
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o755)).unwrap();
    let liar = project.write("liar/bin/python3", "#!/bin/sh\necho 'Python 3.11.7'\n");
    std::fs::set_permissions(&liar, std::fs::Permissions::from_mode(0o755)).unwrap();
    let crashes = project.write("crashes/bin/python3", "#!/bin/sh\necho boom >&2\nexit 7\n");
    std::fs::set_permissions(&crashes, std::fs::Permissions::from_mode(0o755)).unwrap();
    let other = project.write(
        "other/bin/python3",
        "#!/bin/sh\necho '{\"version\": \"3.13.0\", \"executable\": \"/x/python3.13\", \"prefix\": \"/x\", \"paths\": []}'\n",
    );
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(project.path().join("empty-venv")).unwrap();
    let cases = [
        (
            "notes.txt",
            "--python `notes.txt` is not a Python interpreter or virtual environment",
        ),
        (
            "liar",
            "--python `liar` is not a Python interpreter or virtual environment: unexpected answer to the probe",
        ),
        (
            "crashes",
            "--python `crashes` is not a Python interpreter or virtual environment: running it failed (exit status: 7) boom",
        ),
        ("empty-venv", "the folder has no bin/python3 or bin/python"),
        ("/nonexistent/python3", "is not a Python interpreter"),
        (
            "other",
            "--python `other` is CPython 3.13.0 without a shared libpython3.13",
        ),
    ];
    for (python, expected) in cases {
        assert_refused(&project, &["s.yaml", "--python", python], expected);
    }
}
