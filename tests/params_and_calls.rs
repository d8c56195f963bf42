//! `params:` expands a scenario into one per combination, with the values as Python variables;
//! `call:` can receive the iteration number, and `async def` targets are awaited.

mod common;

use common::{Project, scenario, transcript};

#[test]
fn params_expand_into_named_scenarios_with_python_variables() {
    let project = Project::new();
    project.write(
        "p.yaml",
        r#"
defaults:
  iterations: 30
  warmup: 3
scenarios:
  - name: sized
    params:
      size: [1, 1000]
      kind: [list, tuple]
    setup: |
      assert kind in ("list", "tuple") and size in (1, 1000), (kind, size)
      make = list if kind == "list" else tuple
    run: |
      x = make(range(size))
  - name: grows-by
    expect: leak
    params:
      - {per_iteration: 1}
      - {per_iteration: 50, note: "fifty"}
    setup: |
      kept = []
      assert note == "fifty" if per_iteration == 50 else True
    run: |
      kept.extend(object() for _ in range(per_iteration))
"#,
    );
    let listed = project.leakcheck(&["list", "p.yaml"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    for name in [
        "sized[size=1,kind=list]",
        "sized[size=1,kind=tuple]",
        "sized[size=1000,kind=list]",
        "sized[size=1000,kind=tuple]",
        "grows-by[per_iteration=1]",
        "grows-by[per_iteration=50,note=fifty]",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let (out, results) = project.run(&["p.yaml", "-k", "grows-by"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let small = scenario(&results, "grows-by[per_iteration=1]")["metrics"]["alloc_blocks"]["slope"]
        .as_f64()
        .unwrap();
    let big = scenario(&results, "grows-by[per_iteration=50,note=fifty]")["metrics"]
        ["alloc_blocks"]["slope"]
        .as_f64()
        .unwrap();
    assert!(big > 20.0 * small, "50 objects/iter ({big}) vs 1 ({small})");

    let (out, _) = project.run(&["p.yaml", "-k", "sized"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));

    project.write(
        "bad.yaml",
        "name: b\nrun: pass\nparams:\n  not-an-identifier: [1, 2]\n",
    );
    let out = project.leakcheck(&["list", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yaml:4:3"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn call_gets_the_iteration_and_async_functions_are_awaited() {
    let project = Project::new();
    project.write(
        "lib/service.py",
        r#"
import asyncio

_sessions = {}
_loop_ids = set()

async def open_session(n):
    await asyncio.sleep(0)
    _loop_ids.add(id(asyncio.get_running_loop()))
    assert len(_loop_ids) == 1, "one event loop for the whole scenario"
    _sessions[n] = {"user": n}

async def health():
    await asyncio.sleep(0)
    return "ok"

def remember(n):
    assert isinstance(n, int)
    _sessions[n] = [n]
"#,
    );
    project.write(
        "s.yaml",
        r#"
defaults:
  python_path: [lib]
  iterations: 40
  warmup: 4
scenarios:
  - name: async-sessions-leak
    expect: leak
    call: service:open_session
    call_with_iteration: true
  - name: async-health
    call: service:health
  - name: sync-remember
    expect: leak
    call: service:remember
    call_with_iteration: true
"#,
    );
    let (out, results) = project.run(&["s.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(scenario(&results, "async-sessions-leak")["verdict"], "leak");
    assert_eq!(scenario(&results, "async-health")["verdict"], "pass");
    assert_eq!(scenario(&results, "sync-remember")["verdict"], "leak");
}

#[test]
fn a_scenario_module_named_like_the_standard_library_does_not_break_async_calls() {
    // leakcheck imports asyncio itself to await an `async def` target, after the scenario's
    // folders are on sys.path; a project's own `selectors.py` (which asyncio imports) must
    // not be picked up by that import.
    let project = Project::new();
    project.write(
        "lib/selectors.py",
        "raise ImportError('the project selectors.py was imported by the harness')\n",
    );
    project.write("lib/jobs.py", "async def tick():\n    return 1\n");
    project.write(
        "s.yaml",
        "python_path: [lib]\niterations: 30\nwarmup: 2\ncall: jobs:tick\nname: async-tick\n",
    );
    let (out, results) = project.run(&["s.yaml"]);
    let log = transcript(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_eq!(scenario(&results, "async-tick")["verdict"], "pass", "{log}");
}
