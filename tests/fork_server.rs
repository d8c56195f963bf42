//! Workers forked from the run's warmed fork server, end to end: the real binary, its real
//! server and workers, and (for the pytest part) a real pytest from PyPI in a venv.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Project, scenario, transcript};
use serde_json::Value;

fn worker_starts(results: &Value) -> Vec<String> {
    results["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["worker_start"].as_str().unwrap_or("none").to_string())
        .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

#[test]
fn forked_workers_are_children_of_leakcheck_share_nothing_and_hash_as_spawned_ones() {
    let project = Project::new();
    project.write(
        "forks.yaml",
        r#"
defaults:
  iterations: 20
  warmup: 2
scenarios:
  - name: parent
    setup: |
      import os
      with open(os.path.join(os.environ["OUT"], "ppid"), "w") as f:
          f.write(str(os.getppid()))
    run: x = [i]
  - name: marks-builtins
    setup: |
      import builtins
      builtins.leakcheck_marker = 1
    run: x = [i]
  - name: sees-no-mark
    setup: |
      import builtins
      assert not hasattr(builtins, "leakcheck_marker"), "state crossed between workers"
    run: x = [i]
  - name: hashes
    setup: |
      import os
      with open(os.path.join(os.environ["OUT"], "hash"), "w") as f:
          f.write(str(hash("a string")))
    run: x = [i]
"#,
    );
    let binary = assert_cmd::cargo::cargo_bin("leakcheck");
    let mut hashes = Vec::new();
    for (how, extra) in [("forked", None), ("spawned", Some("--spawn"))] {
        let out = project.path().join(how);
        std::fs::create_dir(&out).unwrap();
        let reports = format!("reports-{how}");
        let mut command = Command::new(&binary);
        command
            .current_dir(project.path())
            .env_remove("VIRTUAL_ENV")
            .env("OUT", &out)
            .args(["run", "forks.yaml", "-j", "2", "--report-dir", &reports])
            .args(extra);
        let child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let leakcheck = child.id();
        let output = child.wait_with_output().unwrap();
        let results = project.results(&reports);
        let log = transcript(&output);
        assert_eq!(output.status.code(), Some(0), "{how}: {log}");
        assert_eq!(worker_starts(&results), vec![how; 4], "{log}");
        for name in ["parent", "marks-builtins", "sees-no-mark", "hashes"] {
            assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
        }
        // As for a spawned worker, the parent scenario code sees is leakcheck itself.
        let ppid = std::fs::read_to_string(out.join("ppid")).unwrap();
        assert_eq!(ppid, leakcheck.to_string(), "{how}");
        hashes.push(std::fs::read_to_string(out.join("hash")).unwrap());
    }
    // The server starts CPython with the run's hash seed, as each spawned worker does.
    assert_eq!(hashes[0], hashes[1]);
}

#[test]
fn a_pytest_suite_is_imported_once_in_all_and_a_server_with_threads_is_not_forked_from() {
    let project = Project::new();
    let Some(venv) = project.venv_with("venv", &["pytest==9.2.0"]) else {
        return;
    };
    project.write("pytest.ini", "[pytest]\ntestpaths = tests\n");
    project.write(
        "tests/conftest.py",
        r#"
import os, threading, time
if os.environ.get("START_THREAD"):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()

def pytest_collection_finish(session):
    with open(os.path.join(os.environ["IMPORT_LOG"], "collections"), "a") as log:
        log.write("collected\n")
"#,
    );
    project.write(
        "tests/test_three.py",
        r#"
import os
with open(os.path.join(os.environ["IMPORT_LOG"], "test_three"), "a") as log:
    log.write("imported\n")

def test_one():
    assert [1]

def test_two():
    assert {2: 2}

def test_three():
    assert "3"
"#,
    );
    project.write("suite.yaml", "scenarios:\n  - pytest: tests/\n");
    let run = |name: &str, env: &[(&str, &str)], extra: &[&str]| {
        let logs = project.path().join(name);
        std::fs::create_dir(&logs).unwrap();
        let mut cmd = assert_cmd::Command::cargo_bin("leakcheck").unwrap();
        let output = cmd
            .current_dir(project.path())
            .env_remove("VIRTUAL_ENV")
            .env("IMPORT_LOG", &logs)
            .envs(env.iter().copied())
            .args(["run", "suite.yaml", "--no-diagnose", "-j", "2"])
            .args(["--report-dir", &format!("reports-{name}")])
            .arg("--python")
            .arg(&venv)
            .args(extra)
            .output()
            .unwrap();
        let results = project.results(&format!("reports-{name}"));
        let log = transcript(&output);
        assert_eq!(output.status.code(), Some(0), "{name}: {log}");
        assert_eq!(results["summary"]["pass"], 3, "{name}: {log}");
        let collections = lines(&logs.join("collections"));
        (
            worker_starts(&results),
            lines(&logs.join("test_three")),
            collections,
        )
    };

    // Imported and collected once, by the server: the session that found the run's scenarios
    // is the one the workers run.
    let (starts, imports, collections) = run("forked", &[], &[]);
    assert_eq!(starts, vec!["forked"; 3]);
    assert_eq!((imports, collections), (1, 1));

    // Spawned: the parent's collection, then one import and collection per worker.
    let (starts, imports, collections) = run("spawned", &[], &["--spawn"]);
    assert_eq!(starts, vec!["spawned"; 3]);
    assert_eq!((imports, collections), (4, 4));

    // A conftest that starts a thread at import: the server refuses to fork (the thread would
    // not be in the child), and every worker is spawned, with the same verdicts.
    let (starts, _, _) = run("threaded", &[("START_THREAD", "1")], &[]);
    assert_eq!(starts, vec!["spawned"; 3]);
}

#[test]
fn when_the_fork_server_dies_the_rest_of_the_run_spawns_its_workers() {
    let project = Project::new();
    project.write(
        "killer.yaml",
        r#"
defaults:
  iterations: 20
  warmup: 2
scenarios:
  - name: kills-the-server
    setup: |
      import os, signal
      runner = os.getppid()
      for pid in filter(str.isdigit, os.listdir("/proc")):
          try:
              command = open(f"/proc/{pid}/cmdline", "rb").read()
              parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
          except (OSError, ValueError):
              continue
          # A forked worker is a copy of the server, command line included: skip this one.
          if b"--fork-server" in command and parent == runner and int(pid) != os.getpid():
              os.kill(int(pid), signal.SIGKILL)
    run: x = [i]
  - name: after-1
    run: x = [i]
  - name: after-2
    run: x = [i]
"#,
    );
    let (output, results) = project.run(&["killer.yaml", "-j", "1"]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    for name in ["kills-the-server", "after-1", "after-2"] {
        assert_eq!(scenario(&results, name)["verdict"], "pass", "{name}: {log}");
    }
    // after-1's worker was forked ahead while kills-the-server ran: killed with the server when
    // the scan saw it, and then spawned, or not yet re-parented to leakcheck and so still
    // forked. Nothing is forked once the server is gone.
    let starts = worker_starts(&results);
    assert_eq!(starts[0], "forked", "{log}");
    assert!(["forked", "spawned"].contains(&starts[1].as_str()), "{log}");
    assert_eq!(starts[2], "spawned", "{log}");
}
