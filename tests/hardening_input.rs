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

#[test]
fn limits_beyond_what_the_run_can_hold_are_located_errors_not_crashes() {
    // Each once crashed or hung a run (a panic adding a deadline to the clock, a look schedule
    // of 10^12 entries, warmup + iterations overflowing into an `inconclusive` exit 0); a clean
    // scenario beside each shows the whole run is refused, not only the bad scenario.
    let project = Project::new();
    project.write(
        "clean.yaml",
        "name: clean\niterations: 10\nwarmup: 0\nrun: x = 1\n",
    );
    let cases = [
        (
            "name: t\ntimeout: 1e19\nrun: pass\n",
            "t.yaml:2:10: key `timeout` in scenario `t`: must be at most 2592000 seconds (30 days), found number `1e19`",
        ),
        (
            "name: t\niteration_timeout: 1e20\nrun: pass\n",
            "t.yaml:2:20: key `iteration_timeout` in scenario `t`: must be at most 2592000 seconds",
        ),
        (
            "name: t\nmax_iterations: 3000000000000\nrun: pass\n",
            "t.yaml:2:17: key `max_iterations` in scenario `t`: must be at most 1000000000000 (10^12), found 3000000000000",
        ),
        (
            "name: t\niterations: 18446744073709551615\nrun: pass\n",
            "t.yaml:2:13: key `iterations` in scenario `t`: must be at most 1000000000000 (10^12)",
        ),
        (
            "name: t\nmax_iterations: 900000000000\nrun: pass\n",
            "t.yaml:2:17: key `max_iterations` in scenario `t`: 20 warmup and up to 900000000000 measured iterations, sampled every 2, take 450000000010 samples, and at most 100000 are kept",
        ),
        (
            "defaults:\n  timeout: 1e300\nscenarios:\n  - name: t\n    run: pass\n",
            "t.yaml:2:12: key `timeout` in `defaults`: must be at most 2592000 seconds (30 days), found number `1e300`",
        ),
    ];
    for (text, expected) in cases {
        project.write("t.yaml", text);
        assert_refused(&project, &["clean.yaml", "t.yaml"], expected);
    }
    // The same limits in the project configuration's defaults.
    project.write("big-timeout.yaml", "defaults:\n  timeout: 1e300\n");
    assert_refused(
        &project,
        &["clean.yaml", "--config", "big-timeout.yaml"],
        "must be at most 2592000 seconds (30 days), found number `1e300`",
    );
}

#[test]
fn flags_beyond_what_the_run_can_hold_are_refused() {
    let project = Project::new();
    project.write(
        "clean.yaml",
        "name: clean\niterations: 10\nwarmup: 0\nrun: x = 1\n",
    );
    let deep = format!("{}clean{}", "(".repeat(20_000), ")".repeat(20_000));
    let cases: [(&[&str], &str); 7] = [
        // `inf` reached the workers as JSON null: every scenario failed.
        (
            &["--chain-timeout", "inf"],
            "`inf` must be a number of seconds from 0 to 2592000 (30 days)",
        ),
        (
            &["--chain-timeout", "nan"],
            "`nan` must be a number of seconds from 0 to 2592000",
        ),
        (
            &["--max-iterations", "1000000000000"],
            "error: --max-iterations 1000000000000: scenario `clean` (clean.yaml:1) samples every 1 iterations, so it would take 1000000000000 samples, and at most 100000 are kept",
        ),
        (
            &["--max-iterations", "10000000000000"],
            "10000000000000 is not in 0..=1000000000000",
        ),
        // PYTHONHASHSEED takes 0 to 2^32 - 1: a larger seed killed every worker.
        (
            &["--seed", "4294967296"],
            "4294967296 is not in 0..=4294967295",
        ),
        // 20 000 nested parentheses overflowed the parser's stack (abort).
        (&["-k", &deep], "at most 1000 are allowed"),
        (
            &[
                "-k",
                &format!("{}clean{}", "(".repeat(101), ")".repeat(101)),
            ],
            "`(` and `not` are nested more than 100 deep",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["clean.yaml"];
        args.extend_from_slice(flags);
        assert_refused(&project, &args, expected);
    }
    // At the seed's limit the run works.
    let out = run(&project, &["clean.yaml", "--seed", "4294967295"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
}

#[test]
fn an_alias_of_a_large_string_repeated_is_refused_before_it_is_expanded() {
    // 2 000 aliases of a 4 MB string: 8 GB expanded (abort); 300 of 1 MB made a 300 MB report.
    let project = Project::new();
    project.write(
        "clean.yaml",
        "name: clean\niterations: 10\nwarmup: 0\nrun: x = 1\n",
    );
    let big = "A".repeat(4 << 20);
    let refs = vec!["*x"; 2000].join(", ");
    project.write(
        "bomb.yaml",
        &format!("description: &x \"{big}\"\nname: bomb\nrun: pass\ntags: [{refs}]\n"),
    );
    assert_refused(
        &project,
        &["clean.yaml", "bomb.yaml"],
        "bomb.yaml:1:14: the document expands to more than 16 MiB of values",
    );
}

#[test]
fn unbounded_inputs_are_read_up_to_a_limit_and_idle_pipes_are_not_waited_for() {
    let project = Project::new();
    project.write(
        "clean.yaml",
        "name: clean\niterations: 10\nwarmup: 0\nrun: x = 1\n",
    );
    assert_refused(
        &project,
        &["clean.yaml", "--config", "/dev/zero"],
        "error: cannot read `/dev/zero`: file is too large (the limit is 10 MiB)",
    );
    assert_refused(
        &project,
        &["clean.yaml", "--baseline", "/dev/zero"],
        "error: cannot read `/dev/zero`: file is too large (the limit is 256 MiB)",
    );
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let out = cmd
        .current_dir(project.path())
        .env("LEAKCHECK_CONFIG", "/dev/zero")
        .args(["run", "clean.yaml", "--report-dir", "reports"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file is too large (the limit is 10 MiB)")
    );
    let out = project.leakcheck(&["report", "/dev/zero", "--html", "x.html"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file is too large (the limit is 256 MiB)")
    );
    assert!(!project.path().join("x.html").exists());
    // A named pipe with no writer: opening it for reading used to wait forever.
    let fifo = project.path().join("pipe.yaml");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    assert_refused(
        &project,
        &["clean.yaml", "pipe.yaml"],
        "pipe.yaml: is a named pipe (FIFO) with nothing writing to it",
    );
}

#[test]
fn values_the_worker_could_not_receive_as_written_are_located_errors() {
    // `.inf`, `.nan` and a 128-bit integer in `params` became `None` or a string on the way to
    // Python; a NUL in a name passed validation and then failed in the worker.
    let project = Project::new();
    project.write(
        "clean.yaml",
        "name: clean\niterations: 10\nwarmup: 0\nrun: x = 1\n",
    );
    let cases = [
        (
            "name: p\nparams:\n  limit: [1.5, .inf]\nrun: pass\n",
            "t.yaml:3:16: key `params` in scenario `p`: number `inf` cannot be a parameter value: parameters travel as JSON, which has no infinity or NaN",
        ),
        (
            "name: p\nparams:\n  - {limit: -.inf}\nrun: pass\n",
            "t.yaml:3:13: key `params` in scenario `p`: number `-inf` cannot be a parameter value",
        ),
        (
            "name: p\nparams:\n  - {limit: [1, {deep: .nan}]}\nrun: pass\n",
            "t.yaml:3:24: key `params` in scenario `p`: number `NaN` cannot be a parameter value",
        ),
        (
            "name: p\nparams:\n  big: [170141183460469231731687303715884105727]\nrun: pass\n",
            "t.yaml:3:9: key `params` in scenario `p`: integer `170141183460469231731687303715884105727` does not fit in 64 bits",
        ),
        (
            "name: \"nul\\0name\"\nrun: pass\n",
            "t.yaml:1:7: key `name` in scenario `nul\\x00name`: must not contain control characters, found '\\0'",
        ),
        (
            "name: \"bell\\aname\"\nrun: pass\n",
            "must not contain control characters, found '\\u{7}'",
        ),
        (
            "name: t\nsetup: \"x = 1\\0\"\nrun: pass\n",
            "t.yaml:2:8: key `setup` in scenario `t`: Python source cannot contain NUL characters",
        ),
        (
            "name: t\nrun: pass\ntags: [ok, \"b\\x1bad\"]\n",
            "t.yaml:3:12: key `tags` in scenario `t`: tags must not contain control characters",
        ),
    ];
    for (text, expected) in cases {
        project.write("t.yaml", text);
        assert_refused(&project, &["clean.yaml", "t.yaml"], expected);
    }
    // What JSON carries is still accepted: u64 beyond i64, floats, nesting.
    project.write(
        "ok.yaml",
        "name: ok\niterations: 10\nwarmup: 0\nparams:\n  - {n: 18446744073709551615, f: 1.5e300}\nsetup: assert n == 2**64 - 1 and f == 1.5e300, (n, f)\nrun: pass\n",
    );
    let out = run(&project, &["clean.yaml", "ok.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
}

#[test]
fn bad_configuration_gets_what_bad_scenarios_get() {
    // Errors once located (`at line 3 column 1` after `line 3:`), without suggestions, the
    // defaults' at 1:1, TOML's without a line, `--config x.toml` read as YAML, `jobs: 0`
    // accepted, only the first `tolerance` problem, a missing `python_path` entry accepted.
    let project = Project::new();
    project.write(
        "clean.yaml",
        "name: clean\niterations: 10\nwarmup: 0\nrun: x = 1\n",
    );
    project.write(
        "bad.yaml",
        "paths: [.]\njobs: 0\nconfidense: 0.9\ndefaults:\n  timeout: 1e300\n  iteratons: 5\n  tolerance: {rss: -1, fds: lots, tracemaloc: 3}\n  python_path: [nowhere]\n",
    );
    let out = run(&project, &["clean.yaml", "--config", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = [
        "error: bad.yaml:2:7: key `jobs`: must be between 1 and 65535, found 0",
        "error: bad.yaml:3:1: unknown key `confidense` (did you mean `confidence`?)",
        "error: bad.yaml:5:12: key `timeout` in project `defaults`: must be at most 2592000 seconds",
        "error: bad.yaml:6:3: unknown key `iteratons` in project `defaults` (did you mean `iterations`?)",
        "error: bad.yaml:7:20: key `tolerance.rss` in project `defaults`: must be zero or more",
        "error: bad.yaml:7:29: key `tolerance.fds` in project `defaults`: `lots` is not a number",
        "error: bad.yaml:7:35: key `tolerance` in project `defaults`: unknown metric `tracemaloc` (did you mean `tracemalloc`?)",
        "error: bad.yaml:8:17: key `python_path` in project `defaults`: `nowhere` does not exist",
    ];
    for line in expected {
        assert!(stderr.contains(line), "expected\n{line}\nin\n{stderr}");
    }
    assert!(!stderr.contains("line 3 column"), "{stderr}");
    assert!(!project.path().join("reports").exists());

    // Any `.toml` is TOML: its [tool.leakcheck], or its top level.
    project.write(
        "other.toml",
        "[tool.leakcheck]\njobs = 0\nconfidense = 0.9\n[tool.leakcheck.defaults]\niteratons = 5\n",
    );
    assert_refused(
        &project,
        &["clean.yaml", "--config", "other.toml"],
        "error: other.toml:3:1: unknown key `confidense` in [tool.leakcheck] (did you mean `confidence`?)",
    );
    assert_refused(
        &project,
        &["clean.yaml", "--config", "other.toml"],
        "error: other.toml:5:1: unknown key `iteratons` in project `defaults` (did you mean `iterations`?)",
    );
    project.write("broken.toml", "[tool.leakcheck\njobs = 2\n");
    assert_refused(
        &project,
        &["clean.yaml", "--config", "broken.toml"],
        "error: broken.toml:1:16: invalid TOML: unclosed table",
    );
    // A scenario file's own missing python_path entry, beside a clean scenario.
    project.write(
        "lib-missing.yaml",
        "name: libs\nrun: pass\npython_path: [src, nowhere]\n",
    );
    std::fs::create_dir(project.path().join("src")).unwrap();
    assert_refused(
        &project,
        &["clean.yaml", "lib-missing.yaml"],
        "lib-missing.yaml:3:20: key `python_path` in scenario `libs`: `nowhere` does not exist",
    );
    // A TOML file without [tool.leakcheck] is the configuration itself.
    project.write("plain.toml", "jobs = 2\n");
    let out = run(&project, &["clean.yaml", "--config", "plain.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
}

#[test]
fn a_bad_python_is_named_as_it_was_given_and_quoted_briefly() {
    let project = Project::new();
    project.write(
        "clean.yaml",
        "name: clean\niterations: 10\nwarmup: 0\nrun: x = 1\n",
    );
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let out = cmd
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .env("LEAKCHECK_PYTHON", "/nope")
        .args(["run", "clean.yaml", "--report-dir", "reports"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: LEAKCHECK_PYTHON `/nope` is not a Python interpreter"),
        "{stderr}"
    );
    // A program that is not Python no longer echoes the whole probe script back.
    assert_refused(
        &project,
        &["clean.yaml", "--python", "/bin/ls"],
        "--python `/bin/ls` is not a Python interpreter or virtual environment: running it failed",
    );
    let out = run(&project, &["clean.yaml", "--python", "/bin/ls"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("sysconfig"), "{stderr}");
    assert!(stderr.lines().count() <= 2, "{stderr}");
    project.write("py.yaml", "python: /nope\n");
    assert_refused(
        &project,
        &["clean.yaml", "--config", "py.yaml"],
        "the configuration's python `/nope` is not a Python interpreter",
    );
}
