//! Hostile scenarios: crashes, hangs, memory bombs, floods, stray processes and tampering, each
//! run among clean scenarios whose results must all survive in every report, with nothing left
//! running afterwards. Also what happens when leakcheck itself is interrupted or cannot write.

mod common;

use std::process::{Command, Output};

use common::{Project, scenario, transcript};
use serde_json::Value;

/// An argument for `sleep` unique to this test process and `tag`, so the process table can be
/// searched for the subprocesses a scenario started (`sleep 990.123` sleeps 990 s).
fn marker(tag: u32) -> String {
    format!("99{tag}.{}", std::process::id())
}

/// Processes whose command line contains `needle` as one argument.
fn processes_with_arg(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == needle.as_bytes())
        {
            found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        }
    }
    found
}

/// Processes carrying a leakcheck worker cookie whose value starts with `pid-` (workers of the
/// leakcheck process `pid` and everything they started).
fn processes_of_leakcheck(pid: u32) -> Vec<String> {
    let needle = format!("LEAKCHECK_WORKER_COOKIE={pid}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|&b| b == 0)
            .any(|var| var.starts_with(needle.as_bytes()))
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Every report format written by `report::write_all` names every scenario in `names`.
fn assert_reports_name(project: &Project, names: &[&str]) {
    let dir = project.path().join("reports");
    for file in ["results.json", "junit.xml", "index.html"] {
        let text = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|err| panic!("{file} missing: {err}"));
        for name in names {
            assert!(text.contains(name), "{file} lacks {name}");
        }
    }
}

fn error_of<'a>(results: &'a Value, name: &str) -> &'a str {
    scenario(results, name)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no error: {:#}", scenario(results, name)))
}

const CRASHES: &str = r#"
defaults:
  iterations: 12
  warmup: 2
  sample_every: 1
scenarios:
  - name: clean-first
    run: x = [i] * 10
  - name: segfault
    run: |
      import ctypes
      if i == 4:
          ctypes.string_at(0)
  - name: abort
    run: |
      import os
      if i == 4:
          os.abort()
  - name: os-exit
    run: |
      import os
      if i == 4:
          os._exit(3)
  - name: closes-every-descriptor
    run: |
      import os
      if i == 4:
          os.closerange(3, 65536)
  - name: sys-exit
    run: |
      import sys
      if i == 4:
          sys.exit(0)
  - name: keyboard-interrupt
    run: |
      if i == 4:
          raise KeyboardInterrupt
  - name: base-exception
    setup: |
      class Abandon(BaseException):
          pass
    run: |
      if i == 4:
          raise Abandon("gave up")
  - name: known-leak
    expect: leak
    iterations: 60
    setup: kept = []
    run: kept.append(object())
  - name: clean-last
    run: d = dict.fromkeys(range(20))
"#;

#[test]
fn crashes_exits_and_base_exceptions_are_errors_and_every_other_result_survives() {
    let project = Project::new();
    project.write("crashes.yaml", CRASHES);
    let (output, results) = project.run(&["crashes.yaml", "-j", "3"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    for name in ["clean-first", "clean-last"] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
    assert_eq!(scenario(&results, "known-leak")["verdict"], "leak", "{log}");

    let expected = [
        ("segfault", "killed by signal 11 (SIGSEGV"),
        ("abort", "killed by signal 6 (SIGABRT"),
        ("os-exit", "worker exited with code 3 in run"),
        ("sys-exit", "SystemExit: 0 (in run, iteration 4)"),
        (
            "keyboard-interrupt",
            "KeyboardInterrupt (in run, iteration 4)",
        ),
        ("base-exception", "Abandon: gave up (in run, iteration 4)"),
    ];
    for (name, text) in expected {
        let s = scenario(&results, name);
        assert_eq!(s["verdict"], "error", "{name}: {log}");
        assert_eq!(s["ok"], false);
        let error = error_of(&results, name);
        assert!(error.contains(text), "{name}: {error}");
    }
    // Closing every descriptor closes leakcheck's channel too: said so, not "Bad file
    // descriptor".
    let closer = scenario(&results, "closes-every-descriptor");
    assert_eq!(closer["verdict"], "error", "{log}");
    let stderr = closer["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("scenario code closed leakcheck's result channel (file descriptor"),
        "{stderr}"
    );
    // The same facts, typed, for CI consumers: no need to read the sentence.
    let failure = &scenario(&results, "segfault")["failure"];
    assert_eq!(failure["kind"], "crashed", "{failure}");
    assert_eq!(failure["signal"], 11, "{failure}");
    assert_eq!(failure["phase"], "measure", "{failure}");
    let failure = &scenario(&results, "sys-exit")["failure"];
    assert_eq!(failure["kind"], "exception", "{failure}");
    assert_eq!(failure["iteration"], 4, "{failure}");
    assert!(scenario(&results, "clean-first")["failure"].is_null());
    // faulthandler's Python stack points at the scenario line that crashed.
    let traceback = scenario(&results, "segfault")["traceback"]
        .as_str()
        .unwrap();
    assert!(
        traceback.contains("Fatal Python error: Segmentation fault"),
        "{traceback}"
    );
    // The line of the scenario file, not of the `run` block.
    let line = common::line_of(CRASHES, "ctypes.string_at(0)");
    assert!(
        traceback.contains(&format!("[segfault] run>\", line {line}")),
        "{traceback}"
    );
    assert_eq!(results["summary"]["total"], 10);
    assert_reports_name(
        &project,
        &[
            "clean-first",
            "segfault",
            "os-exit",
            "known-leak",
            "clean-last",
        ],
    );
}

#[test]
fn hangs_are_killed_with_their_process_group_and_nothing_is_left_running() {
    let (in_group, new_session, daemon, ignores_term) =
        (marker(1), marker(2), marker(3), marker(4));
    let scenarios = format!(
        r#"
defaults:
  iterations: 10
  warmup: 2
  sample_every: 1
scenarios:
  - name: clean
    run: x = [i]
  - name: loops-in-setup
    timeout: 2
    setup: |
      while True:
          pass
    run: pass
  - name: loops-in-run
    iteration_timeout: 0.5
    run: |
      if i == 6:
          while True:
              pass
  - name: loops-in-teardown
    timeout: 2
    run: pass
    teardown: |
      while True:
          pass
  - name: ignores-sigterm
    timeout: 2
    setup: |
      import signal, subprocess, sys
      signal.signal(signal.SIGTERM, signal.SIG_IGN)
      subprocess.Popen([sys.executable, "-c",
          "import signal, subprocess; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
          "subprocess.run(['sleep', '{ignores_term}'])"])
    run: |
      import time
      time.sleep(60)
  - name: leaves-threads-running
    setup: |
      import threading
      def spin():
          while True:
              pass
      threading.Thread(target=spin).start()
      threading.Thread(target=spin, daemon=True).start()
    run: x = [i]
  - name: leaves-subprocesses-running
    setup: |
      import os, subprocess, sys
      subprocess.Popen(["sleep", "{in_group}"])
      subprocess.Popen(["sleep", "{new_session}"], start_new_session=True)
      # A daemon: double fork and a new session, its parent gone.
      subprocess.run([sys.executable, "-c",
          "import os, subprocess\nif os.fork() == 0:\n    os.setsid()\n    subprocess.Popen(['sleep', '{daemon}'])\n"])
    run: x = [i]
"#
    );
    let project = Project::new();
    project.write("hangs.yaml", &scenarios);
    let (output, results) = project.run(&["hangs.yaml", "-j", "4"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    for name in [
        "clean",
        "leaves-threads-running",
        "leaves-subprocesses-running",
    ] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
    let expected = [
        ("loops-in-setup", "timed out after 2 s in setup"),
        ("loops-in-run", "iteration 6 ran longer than 0.5 s in run"),
        ("loops-in-teardown", "timed out after 2 s in teardown"),
        ("ignores-sigterm", "timed out after 2 s in warmup"),
    ];
    for (name, text) in expected {
        assert_eq!(scenario(&results, name)["verdict"], "error", "{name}");
        let error = error_of(&results, name);
        assert!(error.contains(text), "{name}: {error}");
    }
    let failure = &scenario(&results, "loops-in-setup")["failure"];
    assert_eq!(failure["kind"], "timed_out", "{failure}");
    assert_eq!(failure["phase"], "setup", "{failure}");
    assert_eq!(failure["limit_secs"], 2.0, "{failure}");
    let failure = &scenario(&results, "loops-in-run")["failure"];
    assert_eq!(failure["kind"], "iteration_timed_out", "{failure}");
    assert_eq!(failure["iteration"], 6, "{failure}");
    for arg in [&in_group, &new_session, &daemon, &ignores_term] {
        let left = processes_with_arg(arg);
        assert!(left.is_empty(), "left running: {left:?}");
    }
    assert_reports_name(
        &project,
        &["clean", "loops-in-run", "leaves-threads-running"],
    );
}

const BOMBS: &str = r#"
defaults:
  iterations: 40
  warmup: 2
  sample_every: 1
scenarios:
  - name: clean
    run: x = [i]
  - name: grows-64-mib-per-iteration
    max_rss: 300 MiB
    setup: hog = []
    run: hog.append(b"x" * (64 << 20))
  - name: one-huge-iteration
    max_rss: 256 MiB
    run: |
      if i == 7:
          block = b"x" * (3 << 30)
  - name: subprocess-bomb
    setup: |
      import subprocess, sys
      subprocess.Popen([sys.executable, "-c",
          "import time\nkept = []\nfor _ in range(60):\n    kept.append(b'x' * (32 << 20))\n    time.sleep(0.02)\ntime.sleep(60)\n"])
    run: |
      import time
      time.sleep(0.05)
  - name: bomb-in-setup
    max_rss: 256 MiB
    setup: |
      block = b"x" * (1 << 30)
    run: pass
"#;

#[test]
fn a_memory_bomb_is_stopped_at_the_cap_with_verdict_leak() {
    let project = Project::new();
    project.write("bombs.yaml", BOMBS);
    // --max-rss is the cap of scenarios without `max_rss`; the worker itself needs ~30 MiB.
    let (output, results) = project.run(&["bombs.yaml", "-j", "2", "--max-rss", "200 MiB"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert_eq!(scenario(&results, "clean")["verdict"], "pass", "{log}");

    let grows = scenario(&results, "grows-64-mib-per-iteration");
    assert_eq!(grows["verdict"], "leak", "{log}");
    let reason = grows["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("exceeded memory cap at iteration "),
        "{reason}"
    );
    assert!(reason.contains("cap 300 MiB"), "{reason}");
    // 30 MiB of interpreter + 64 MiB per iteration: the 5th iteration (number 4) crosses it.
    let k: u64 = reason["exceeded memory cap at iteration ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..=5).contains(&k), "{reason}");
    assert!(grows["error"].is_null());

    let huge = scenario(&results, "one-huge-iteration");
    assert_eq!(huge["verdict"], "leak", "{log}");
    let reason = huge["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("exceeded memory cap at iteration 7 "),
        "{reason}"
    );

    let child = scenario(&results, "subprocess-bomb");
    assert_eq!(child["verdict"], "leak", "{log}");
    let reason = child["reason"].as_str().unwrap();
    assert!(reason.contains("worker and its subprocesses"), "{reason}");
    assert!(reason.contains("cap 200 MiB"), "{reason}");

    let setup = scenario(&results, "bomb-in-setup");
    assert_eq!(setup["verdict"], "error", "{log}");
    assert!(
        error_of(&results, "bomb-in-setup").starts_with("exceeded memory cap in setup"),
        "{log}"
    );
    assert_reports_name(&project, &["clean", "grows-64-mib-per-iteration"]);
}

#[test]
fn ten_megabytes_of_output_keep_a_bounded_tail_and_never_block() {
    let project = Project::new();
    project.write(
        "floods.yaml",
        r#"
defaults:
  iterations: 20
  warmup: 2
scenarios:
  - name: floods-both-streams
    setup: |
      import os, subprocess, sys
      sys.stdout.write("o" * 10_000_000)
      sys.stdout.flush()
      os.write(2, b"e" * 5_000_000)
      subprocess.run([sys.executable, "-c", "import os; os.write(2, b'c' * 5_000_000)"])
    run: |
      print("iteration", i)
  - name: clean
    run: x = [i]
"#,
    );
    let (output, results) = project.run(&["floods.yaml"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let s = scenario(&results, "floods-both-streams");
    assert_eq!(s["verdict"], "pass");
    let stdout = s["stdout"].as_str().unwrap();
    let stderr = s["stderr"].as_str().unwrap();
    assert!(
        stdout.len() < 70_000 && stderr.len() < 70_000,
        "tails are bounded"
    );
    assert!(stdout.starts_with("[… "), "{}", &stdout[..80]);
    // 2 warmup + 20 measured + the 8 to 20 iterations of the traced window.
    let last: u64 = stdout
        .trim_end()
        .rsplit_once("iteration ")
        .and_then(|(_, n)| n.parse().ok())
        .expect("the tail ends with an iteration line");
    assert!((29..=41).contains(&last), "the tail is the end: {last}");
    assert!(stderr.contains("earlier bytes not kept"));
    assert!(stderr.trim_end().ends_with("ccc"));
    assert_eq!(scenario(&results, "clean")["verdict"], "pass");
    assert_reports_name(&project, &["floods-both-streams", "clean"]);
}

#[test]
fn tampering_with_the_instruments_is_an_error_never_a_verdict() {
    let project = Project::new();
    // Modules named like the ones the harness uses: the scenario's imports must not reach the
    // harness, and the harness must never import these.
    for name in [
        "gc",
        "tracemalloc",
        "traceback",
        "linecache",
        "json",
        "site",
        "re",
        "faulthandler",
        "_leakcheck_harness",
        "_leakcheck_diagnose",
    ] {
        project.write(
            &format!("shadow/{name}.py"),
            &format!("raise RuntimeError('the shadow {name} was imported')\n"),
        );
    }
    project.write(
        "tamper.yaml",
        r#"
defaults:
  iterations: 30
  warmup: 2
  sample_every: 1
scenarios:
  - name: stops-tracemalloc
    gate: [tracemalloc, alloc_blocks]
    run: |
      import tracemalloc
      if i == 5:
          tracemalloc.stop()
  - name: restarts-tracemalloc
    gate: [tracemalloc, alloc_blocks]
    run: |
      import tracemalloc
      if i == 5:
          tracemalloc.stop()
          tracemalloc.start()
  - name: clears-traces
    gate: [tracemalloc, alloc_blocks]
    run: |
      import tracemalloc
      if i == 5:
          tracemalloc.clear_traces()
  - name: disables-gc
    run: |
      import gc
      if i == 5:
          gc.disable()
  - name: patches-gc-collect
    run: |
      import gc
      if i == 5:
          gc.collect = lambda *args: 0
  - name: patches-get-traced-memory
    run: |
      import tracemalloc
      if i == 5:
          tracemalloc.get_traced_memory = lambda: (0, 0)
  - name: patches-exec
    expect: leak
    setup: |
      import builtins
      kept = []
    run: |
      kept.append(object())
      if i == 5:
          builtins.exec = lambda *args: None
  - name: replaces-gc-module
    run: |
      import sys, types
      if i == 5:
          sys.modules["gc"] = types.ModuleType("gc")
  - name: gc-disabled-and-enabled-within-run
    run: |
      import gc
      gc.disable()
      x = [i]
      gc.enable()
  - name: shadowed-clean
    python_path: [shadow]
    run: |
      import gc, tracemalloc, json
      x = json.dumps([i])
  - name: shadowed-leak
    python_path: [shadow]
    expect: leak
    setup: kept = []
    run: kept.append([i])
  - name: forks
    run: |
      import os
      if i == 5 and os.fork() == 0:
          x = [i]
  - name: closes-descriptors
    run: |
      import os
      if i == 5:
          os.closerange(3, 64)
"#,
    );
    let (output, results) = project.run(&["tamper.yaml", "-j", "3"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let tampered = [
        ("stops-tracemalloc", "stopped tracemalloc"),
        (
            "restarts-tracemalloc",
            "restarted tracemalloc or cleared its traces",
        ),
        (
            "clears-traces",
            "restarted tracemalloc or cleared its traces",
        ),
        ("disables-gc", "disabled the garbage collector"),
        ("patches-gc-collect", "replaced gc.collect"),
        (
            "patches-get-traced-memory",
            "replaced tracemalloc.get_traced_memory",
        ),
        ("patches-exec", "replaced builtins.exec"),
        (
            "replaces-gc-module",
            "replaced the `gc` module in sys.modules",
        ),
    ];
    for (name, text) in tampered {
        let s = scenario(&results, name);
        assert_eq!(s["verdict"], "error", "{name}: {log}");
        let error = error_of(&results, name);
        assert!(
            error.starts_with("measurement tampered: scenario code "),
            "{error}"
        );
        assert!(error.contains(text), "{name}: {error}");
        assert!(error.contains("after iteration 5"), "{name}: {error}");
    }
    for name in [
        "gc-disabled-and-enabled-within-run",
        "shadowed-clean",
        "forks",
        "closes-descriptors",
    ] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
    let leak = scenario(&results, "shadowed-leak");
    assert_eq!(leak["verdict"], "leak", "{log}");
    assert!(leak["diagnosis"].is_object(), "the diagnosis ran: {leak:#}");
    // The forked copy of the worker added no samples of its own.
    let forks = scenario(&results, "forks");
    let iterations: Vec<u64> = forks["metrics"]["alloc_blocks"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_u64().unwrap())
        .collect();
    assert_eq!(iterations, (3..=32).collect::<Vec<u64>>());
    assert_reports_name(&project, &["stops-tracemalloc", "shadowed-leak", "forks"]);
}

/// Starts leakcheck on `file` in `project`, waits until `started` appears, sends `signal`.
fn interrupt(project: &Project, file: &str, signal: i32) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_leakcheck"))
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .args(["run", file, "-j", "1", "--report-dir", "reports"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("leakcheck starts");
    let pid = child.id();
    let started = project.path().join("started");
    for _ in 0..600 {
        if started.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(started.exists(), "the slow scenario never started");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
    (child.wait_with_output().expect("leakcheck ends"), pid)
}

#[test]
fn ctrl_c_and_sigterm_stop_the_workers_and_keep_the_finished_results() {
    for (signal, code, tag) in [(libc::SIGINT, 130, 5), (libc::SIGTERM, 143, 6)] {
        let stray = marker(tag);
        let project = Project::new();
        project.write(
            "suite.yaml",
            &format!(
                r#"
defaults:
  iterations: 20
  warmup: 2
scenarios:
  - name: finishes-first
    run: x = [i]
  - name: slow
    setup: |
      import subprocess
      subprocess.Popen(["sleep", "{stray}"], start_new_session=True)
      open("started", "w").close()
    run: |
      import time
      time.sleep(5)
  - name: never-starts
    run: x = [i]
"#
            ),
        );
        let (output, pid) = interrupt(&project, "suite.yaml", signal);
        let log = transcript(&output);
        assert_eq!(output.status.code(), Some(code), "{log}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("leakcheck: interrupted by"),
            "{log}"
        );
        let text = std::fs::read_to_string(project.path().join("reports/results.json")).unwrap();
        let results: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(results["interrupted"], true);
        let names: Vec<&str> = results["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["finishes-first"], "{log}");
        assert_eq!(scenario(&results, "finishes-first")["verdict"], "pass");
        assert_reports_name(&project, &["finishes-first"]);
        assert!(processes_with_arg(&stray).is_empty(), "stray left running");
        assert!(
            processes_of_leakcheck(pid).is_empty(),
            "worker left running"
        );
    }
}

#[test]
fn an_unwritable_report_folder_is_refused_before_anything_runs() {
    let project = Project::new();
    project.write("s.yaml", "name: s\niterations: 5\nrun: pass\n");
    project.write("blocker", "a file where the report folder should go\n");
    let out = project.leakcheck(&["run", "s.yaml", "--report-dir", "blocker/reports"]);
    let log = transcript(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: cannot create report folder `blocker/reports`"),
        "{log}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("1 scenarios"),
        "nothing ran"
    );

    // Permission bits do not stop root, so this half only runs for other users.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let locked = project.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let out = project.leakcheck(&["run", "s.yaml", "--report-dir", "locked"]);
        assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write into report folder"));
    }
}

#[test]
fn a_full_disk_leaves_the_previous_reports_whole() {
    let project = Project::new();
    project.write(
        "s.yaml",
        "scenarios:\n  - name: first\n    iterations: 20\n    run: x = [i]\n  - name: second\n    iterations: 20\n    run: y = [i]\n",
    );
    let (output, _) = project.run(&["s.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    let reports = project.path().join("reports");
    // Every report the first run wrote, whatever the formats.
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|f| (f.clone(), std::fs::read(reports.join(&f)).unwrap()))
        .collect();
    let written = before.len();
    assert!(written >= 3, "only {written} reports written");

    // A 4 KiB file-size limit makes every report write fail as a full disk would (EFBIG instead
    // of ENOSPC), without needing a small filesystem.
    let mut command = Command::new(env!("CARGO_BIN_EXE_leakcheck"));
    command
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .args(["run", "s.yaml", "--report-dir", "reports"]);
    // SAFETY: setrlimit and signal are async-signal-safe and touch no memory of ours.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let log = transcript(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("leakcheck: cannot write `reports/"),
        "{log}"
    );
    assert!(stderr.contains("File too large"), "{log}");
    // The verdicts still reach the terminal.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 scenarios: 2 pass"),
        "{log}"
    );
    for (file, bytes) in before {
        assert_eq!(
            std::fs::read(reports.join(&file)).unwrap(),
            bytes,
            "{file} changed"
        );
    }
    let names: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), written, "no temporary files left: {names:?}");
}

const HOSTILE_TEXT: &str = r#"
defaults:
  iterations: 10
  warmup: 2
scenarios:
  - name: clean-first
    run: x = [i] * 10
  - name: "::error::forged-name"
    run: x = 1
  - name: raises-invalid-xml
    run: |
      import sys
      print("::add-mask::secret")
      print("  ::error file=x.py,line=1::forged")
      print("bell \a nul \0 osc \x1b]8;;http://x\x1b\\ ##[error]legacy")
      print("\uffff and \ufffe and \x01 and \u202e", file=sys.stderr)
      raise ValueError("\uffff\x1b[31m::warning::in the message\x07")
  - name: clean-last
    run: d = dict.fromkeys(range(20))
"#;

/// No byte a terminal acts on (ESC, BEL, NUL, other C0 but tab and newline, C1 CSI), and no
/// line the GitHub Actions runner would read as a workflow command but `allowed`.
fn assert_inert(stream: &str, text: &str, allowed: &[&str]) {
    for c in text.chars() {
        assert!(
            !(c.is_control() && c != '\n' && c != '\t'),
            "{stream} holds {c:?}:\n{text}"
        );
    }
    for line in text.lines() {
        let start = line.trim_start();
        if start.starts_with("::") || line.contains("##[") {
            assert!(
                allowed.iter().any(|a| start.starts_with(a)),
                "{stream} has a workflow command: {line}"
            );
        }
    }
}

#[test]
fn scenario_text_cannot_drive_the_terminal_the_ci_log_or_break_a_report() {
    let project = Project::new();
    project.write("text.yaml", HOSTILE_TEXT);
    let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
    let output = cmd
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .args(["run", "text.yaml", "--report-dir", "reports"])
        .output()
        .unwrap();
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let results = project.results("reports");
    for name in ["clean-first", "clean-last"] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{log}");
    }
    let error = error_of(&results, "raises-invalid-xml");
    assert!(error.contains("ValueError: \u{ffff}"), "{error}");
    // Shown, escaped, never obeyed: the runner sees only leakcheck's own annotation.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_inert("stdout", &stdout, &["::error file=text.yaml,line="]);
    assert_inert("stderr", &stderr, &[]);
    assert!(stdout.contains("\\x3a:add-mask::secret"), "{log}");
    assert!(stdout.contains("\\x3a:error::forged-name"), "{log}");
    assert!(
        stdout.contains("\\x1b[31m::warning::in the message\\x07"),
        "{log}"
    );

    // junit.xml stays well-formed XML, with the forbidden characters shown as escapes.
    let junit = std::fs::read_to_string(project.path().join("reports/junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap_or_else(|err| panic!("{err}:\n{junit}"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap_or_default().to_string())
        .collect();
    assert_eq!(cases.len(), 4, "{cases:?}");
    assert!(junit.contains("ValueError: \\uffff"), "{junit}");
    // index.html holds no control character HTML forbids.
    let html = std::fs::read_to_string(project.path().join("reports/index.html")).unwrap();
    assert!(
        !html
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')),
        "raw controls in index.html"
    );
    assert!(html.contains("clean-last"));
}

#[test]
fn forked_children_sharing_memory_are_counted_once() {
    // A 120 MiB setup and three forked readers: 480 MiB of summed resident sizes ("exceeded
    // memory cap", LEAK) for 120 MiB of memory. The children live through several group polls.
    let project = Project::new();
    project.write(
        "fork.yaml",
        r#"
defaults:
  iterations: 30
  warmup: 2
scenarios:
  - name: clean-first
    run: x = [i] * 10
  - name: forked-readers
    max_rss: 400 MiB
    setup: |
      import os, time
      data = b"x" * (120 << 20)
      children = []
      for _ in range(3):
          pid = os.fork()
          if pid == 0:
              total = sum(data[::1 << 20])
              time.sleep(2)
              os._exit(0)
          children.append(pid)
    run: time.sleep(0.05)
    teardown: |
      for pid in children:
          os.waitpid(pid, 0)
  - name: clean-last
    run: d = dict.fromkeys(range(20))
"#,
    );
    let (output, results) = project.run(&["fork.yaml", "-j", "1"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    for name in ["clean-first", "forked-readers", "clean-last"] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
}

#[test]
fn more_jobs_than_scenarios_do_not_shrink_the_default_memory_cap() {
    // -j 1000 on two scenarios divided the default cap by 1000: every scenario then exceeded
    // it in prepare.
    let project = Project::new();
    project.write(
        "two.yaml",
        "defaults:\n  iterations: 10\n  warmup: 2\nscenarios:\n  - name: a\n    run: x = [i]\n  - name: b\n    run: y = dict(a=i)\n",
    );
    let (output, results) = project.run(&["two.yaml", "-j", "1000"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert_eq!(scenario(&results, "a")["verdict"], "pass", "{log}");
    assert_eq!(scenario(&results, "b")["verdict"], "pass", "{log}");
}

#[test]
fn a_worker_that_hangs_after_finishing_or_leaves_its_group_is_still_stopped() {
    // Exit-time code that never returns hung leakcheck forever after `Finished` (neither
    // `timeout` nor a grace period applied); a worker that moved into leakcheck's own process
    // group was never killed, and its subprocesses escaped the memory cap.
    let (joined, bomb) = (marker(7), marker(8));
    let scenarios = format!(
        r#"
defaults:
  iterations: 10
  warmup: 2
scenarios:
  - name: clean-first
    run: x = [i]
  - name: hangs-at-exit
    # C output buffered for a pipe nobody reads: the worker flushes C streams as it leaves,
    # and that write never returns.
    setup: |
      import ctypes, os
      libc = ctypes.CDLL(None)
      libc.fdopen.restype = ctypes.c_void_p
      libc.setvbuf.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
      libc.fwrite.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
      unread, pipe = os.pipe()
      stream = libc.fdopen(pipe, b"w")
      buffer = ctypes.create_string_buffer(1 << 20)
      libc.setvbuf(stream, buffer, 0, 1 << 20)
      libc.fwrite(b"x" * 200000, 1, 200000, stream)
    run: x = [i]
  - name: joins-leakcheck-group
    timeout: 3
    setup: |
      import os, subprocess
      subprocess.Popen(["sleep", "{joined}"])
      try:
          os.setpgid(0, os.getpgid(os.getppid()))
      except PermissionError:
          pass
    run: |
      import time
      time.sleep(60)
  - name: left-group-then-bomb
    max_rss: 300 MiB
    setup: |
      import os, subprocess, sys
      try:
          os.setpgid(0, os.getpgid(os.getppid()))
      except PermissionError:
          pass
      # The child leaves the group too, and says when it holds its 1.3 GB, so that the run
      # (20 × 50 ms, several polls) always sees it.
      child = subprocess.Popen([sys.executable, "-c",
          "import os, sys, time\nos.setpgid(0, 0)\nkept = [b'x' * (32 << 20) for _ in range(40)]\nprint('ready', flush=True)\ntime.sleep(60)\n", "{bomb}"],
          stdout=subprocess.PIPE)
      child.stdout.readline()
    iterations: 20
    run: |
      import time
      time.sleep(0.05)
  - name: clean-last
    run: d = dict.fromkeys(range(20))
"#
    );
    let project = Project::new();
    project.write("exit.yaml", &scenarios);
    let (output, results) = project.run(&["exit.yaml", "-j", "2"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    for name in ["clean-first", "hangs-at-exit", "clean-last"] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
    let stderr = scenario(&results, "hangs-at-exit")["stderr"]
        .as_str()
        .unwrap();
    assert!(
        stderr.contains("had not exited 5 s after its last message"),
        "{stderr}"
    );
    assert!(
        error_of(&results, "joins-leakcheck-group").contains("timed out after 3 s"),
        "{log}"
    );
    // Caught in setup (while it waits for the child) or in the run: by the group poll, which
    // now counts processes by cookie as well as by group.
    let bombed = scenario(&results, "left-group-then-bomb");
    let reason = bombed["reason"].as_str().unwrap();
    assert!(
        reason.contains("exceeded memory cap") && reason.contains("worker and its subprocesses"),
        "{bombed:#}"
    );

    for arg in [&joined, &bomb] {
        let left = processes_with_arg(arg);
        assert!(left.is_empty(), "left running: {left:?}");
    }
}

#[test]
fn a_parent_killed_with_sigkill_leaves_every_finished_scenario_in_results_json() {
    // Reports were written once, at the end: SIGKILL (or the OOM killer) lost every finished
    // scenario. results.json is now rewritten atomically after each one.
    let project = Project::new();
    project.write(
        "suite.yaml",
        r#"
defaults:
  iterations: 20
  warmup: 2
scenarios:
  - name: finishes-first
    run: x = [i]
  - name: finishes-second
    run: y = [i, i]
  - name: slow
    setup: open("started", "w").close()
    run: |
      import time
      time.sleep(5)
"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_leakcheck"))
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .args(["run", "suite.yaml", "-j", "1", "--report-dir", "reports"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("leakcheck starts");
    let journal = project.path().join("reports/results.json");
    let has_both = || {
        std::fs::read_to_string(&journal)
            .is_ok_and(|text| text.contains("finishes-first") && text.contains("finishes-second"))
    };
    for _ in 0..600 {
        if project.path().join("started").exists() && has_both() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(has_both(), "the journal never held both finished scenarios");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let results = project.results("reports");
    assert_eq!(results["interrupted"], true, "a partial run says so");
    let names: Vec<&str> = results["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["finishes-first", "finishes-second"]);
    assert_eq!(results["summary"]["total"], 2);
    // `leakcheck report` renders it like any results file.
    let output = project.leakcheck(&["report", "reports/results.json", "--report-dir", "again"]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    assert!(project.path().join("again/index.html").exists());
}

#[test]
fn subprocesses_that_leave_the_group_and_clear_their_environment_end_with_the_run() {
    // Neither the group kill nor the cookie sweep can see these; leakcheck is their reaper
    // (PR_SET_CHILD_SUBREAPER), so once their worker is gone they are its children.
    let (session, daemon) = (marker(9), marker(10));
    let scenarios = format!(
        r#"
defaults:
  iterations: 10
  warmup: 2
scenarios:
  - name: clean-first
    run: x = [i]
  - name: hides-subprocesses
    setup: |
      import subprocess, sys
      subprocess.Popen(["/bin/sleep", "{session}"], start_new_session=True, env={{}})
      subprocess.run([sys.executable, "-c",
          "import os\nif os.fork() == 0:\n    os.setsid()\n    os.execve('/bin/sleep', ['sleep', '{daemon}'], {{}})\n"],
          env={{}})
    run: x = [i]
  - name: clean-last
    run: d = dict.fromkeys(range(20))
"#
    );
    let project = Project::new();
    project.write("hide.yaml", &scenarios);
    let (output, results) = project.run(&["hide.yaml"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    for name in ["clean-first", "hides-subprocesses", "clean-last"] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
    for arg in [&session, &daemon] {
        let left = processes_with_arg(arg);
        assert!(left.is_empty(), "left running: {left:?}");
    }
}

#[test]
fn iteration_timeout_covers_destructors_run_by_the_samples_collection() {
    // A `__del__` that hangs ran inside the sample's garbage collection, outside every
    // iteration, and was only stopped by `timeout`.
    let project = Project::new();
    project.write(
        "del.yaml",
        r#"
defaults:
  iterations: 10
  warmup: 2
  sample_every: 1
scenarios:
  - name: clean-first
    run: x = [i]
  - name: hangs-in-del
    timeout: 120
    iteration_timeout: 0.5
    setup: |
      import time
      class Cycle:
          def __del__(self):
              time.sleep(600)
    run: |
      if i == 5:
          c = Cycle()
          c.me = c
          del c
  - name: clean-last
    run: d = dict.fromkeys(range(20))
"#,
    );
    let (output, results) = project.run(&["del.yaml", "-j", "1"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    for name in ["clean-first", "clean-last"] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
    let error = error_of(&results, "hangs-in-del");
    assert!(error.contains("ran longer than 0.5 s"), "{error}");
}

#[test]
fn a_scenario_that_signals_leakcheck_is_stopped_and_the_run_goes_on() {
    // os.kill(os.getppid(), SIGTERM) stopped the whole run (exit 143) and named no culprit.
    let project = Project::new();
    project.write(
        "signals.yaml",
        r#"
defaults:
  iterations: 10
  warmup: 2
scenarios:
  - name: clean-first
    run: x = [i]
  - name: sends-sigterm
    run: |
      import os, signal, time
      if i == 4:
          os.kill(os.getppid(), signal.SIGTERM)
          time.sleep(30)
  - name: child-sends-sigint
    setup: |
      import os, subprocess, sys, time
    run: |
      if i == 4:
          subprocess.run([sys.executable, "-c",
              "import os, signal; os.kill(int(os.environ['TARGET']), signal.SIGINT)"],
              env=dict(os.environ, TARGET=str(os.getppid())))
          time.sleep(30)
  - name: clean-last
    run: d = dict.fromkeys(range(20))
"#,
    );
    let (output, results) = project.run(&["signals.yaml", "-j", "1"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert_eq!(results["interrupted"], false, "{log}");
    for name in ["clean-first", "clean-last"] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
    let error = error_of(&results, "sends-sigterm");
    assert!(
        error.contains("sent SIGTERM to leakcheck itself in"),
        "{error}"
    );
    let error = error_of(&results, "child-sends-sigint");
    assert!(
        error.contains("sent SIGINT (Ctrl-C) to leakcheck itself in"),
        "{error}"
    );
}
