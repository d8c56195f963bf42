//! Tests of scenario loading through the public API, on real files in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create test dirs");
    }
    fs::write(&path, text).expect("write test file");
    path
}

fn load_ok(text: &str) -> Vec<Scenario> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = write(tmp.path(), "s.yaml", text);
    match load_file(&path) {
        Ok(scenarios) => scenarios,
        Err(errors) => panic!("unexpected errors: {errors:#?}"),
    }
}

/// Loads `text` and returns the errors as `line:column: message` (the file prefix removed).
fn errors(text: impl AsRef<[u8]>) -> Vec<String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = write(tmp.path(), "s.yaml", text);
    let prefix = format!("{}:", path.display());
    match load_file(&path) {
        Ok(scenarios) => panic!("expected errors, loaded {scenarios:#?}"),
        Err(errors) => errors
            .iter()
            .map(|e| {
                e.to_string()
                    .strip_prefix(&prefix)
                    .expect("file prefix")
                    .to_string()
            })
            .collect(),
    }
}

fn one_error(text: impl AsRef<[u8]>) -> String {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected exactly one error, got {all:#?}");
    all.remove(0)
}

#[test]
fn single_scenario_fills_every_default() {
    let scenarios = load_ok("name: flat\nrun: x = [1] * 10\n");
    let s = &scenarios[0];
    assert_eq!(s.name, "flat");
    assert_eq!(s.line, 1);
    assert_eq!(s.body, Body::Run("x = [1] * 10".into()));
    assert_eq!((s.iterations, s.warmup, s.sample_every), (200, 20, 2));
    assert_eq!(s.timeout_secs, 300.0);
    assert_eq!(s.gate, Metric::DEFAULT_GATE.to_vec());
    assert_eq!(s.expect, Expect::Pass);
    assert!(s.python_path.is_empty() && s.tags.is_empty());
    assert_eq!(
        (&s.description, &s.setup, &s.teardown),
        (&None, &None, &None)
    );
    for metric in Metric::ALL {
        assert_eq!(
            s.tolerance.get(&metric),
            Some(&metric.default_tolerance()),
            "{metric}"
        );
    }
}

#[test]
fn single_scenario_reads_every_key() {
    let scenarios = load_ok(
        "# a leak we know about\n\
         name: known-leak\n\
         description: appends forever\n\
         setup: |\n  import mylib\n  cache = []\n\
         call: mylib.bugs:leak_one\n\
         teardown: cache.clear()\n\
         iterations: 1e3\n\
         warmup: 0\n\
         sample_every: 10\n\
         timeout: 2.5\n\
         gate: [rss, gc_objects, rss]\n\
         tolerance: {rss: 4 KiB, gc_objects: 0.5, fds: 0}\n\
         expect: leak\n\
         tags: [slow, cache]\n",
    );
    let s = &scenarios[0];
    assert_eq!(s.line, 2);
    assert_eq!(s.description.as_deref(), Some("appends forever"));
    assert_eq!(s.setup.as_deref(), Some("import mylib\ncache = []\n"));
    assert_eq!(s.body, Body::Call("mylib.bugs:leak_one".into()));
    assert_eq!(s.teardown.as_deref(), Some("cache.clear()"));
    assert_eq!((s.iterations, s.warmup, s.sample_every), (1000, 0, 10));
    assert_eq!(s.timeout_secs, 2.5);
    assert_eq!(s.gate, [Metric::Rss, Metric::GcObjects]);
    assert_eq!(s.tolerance[&Metric::Rss], 4096.0);
    assert_eq!(s.tolerance[&Metric::GcObjects], 0.5);
    assert_eq!(s.tolerance[&Metric::Fds], 0.0);
    assert_eq!(
        s.tolerance[&Metric::Tracemalloc],
        Metric::Tracemalloc.default_tolerance()
    );
    assert_eq!(s.expect, Expect::Leak);
    assert_eq!(s.tags, ["slow", "cache"]);
}

#[test]
fn sample_every_defaults_to_about_a_hundred_samples() {
    let at = |iterations: u64| {
        load_ok(&format!("name: a\nrun: pass\niterations: {iterations}\n"))[0].sample_every
    };
    assert_eq!(at(3), 1);
    assert_eq!(at(99), 1);
    assert_eq!(at(250), 2);
    assert_eq!(at(10_000), 100);
}

#[test]
fn tolerance_units_follow_the_metric() {
    let s = &load_ok(
        "name: a\nrun: pass\ntolerance:\n  tracemalloc: 64 B\n  rss: \"1 KiB\"\n  alloc_blocks: \"0.25\"\n",
    )[0];
    assert_eq!(s.tolerance[&Metric::Tracemalloc], 64.0);
    assert_eq!(s.tolerance[&Metric::Rss], 1024.0);
    assert_eq!(s.tolerance[&Metric::AllocBlocks], 0.25);
    assert_eq!(s.tolerance.len(), Metric::ALL.len());
}

#[test]
fn defaults_are_inherited_and_overridden() {
    let scenarios = load_ok(
        "defaults:\n\
         \x20 iterations: 50\n\
         \x20 setup: import gc\n\
         \x20 run: gc.collect()\n\
         \x20 tags: [nightly]\n\
         \x20 tolerance: {rss: 2 KiB}\n\
         scenarios:\n\
         \x20 - name: inherits\n\
         \x20 - name: overrides\n\
         \x20   iterations: 30\n\
         \x20   call: pkg.mod:fn\n\
         \x20   tags: []\n\
         \x20   tolerance: {tracemalloc: 1 KiB}\n",
    );
    let [inherits, overrides] = &scenarios[..] else {
        panic!("two scenarios")
    };
    assert_eq!((inherits.line, overrides.line), (8, 9));
    assert_eq!(inherits.iterations, 50);
    assert_eq!(inherits.setup.as_deref(), Some("import gc"));
    assert_eq!(inherits.body, Body::Run("gc.collect()".into()));
    assert_eq!(inherits.tags, ["nightly"]);
    assert_eq!(inherits.tolerance[&Metric::Rss], 2048.0);

    assert_eq!(overrides.iterations, 30);
    assert_eq!(overrides.setup.as_deref(), Some("import gc"));
    // `run` and `call` are one setting: setting `call` replaces the default `run`.
    assert_eq!(overrides.body, Body::Call("pkg.mod:fn".into()));
    assert!(overrides.tags.is_empty());
    // A key replaces the default as a whole, `tolerance` included.
    assert_eq!(overrides.tolerance[&Metric::Tracemalloc], 1024.0);
    assert_eq!(
        overrides.tolerance[&Metric::Rss],
        Metric::Rss.default_tolerance()
    );
}

#[test]
fn python_path_is_resolved_against_the_scenario_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = write(
        tmp.path(),
        "suite/s.yaml",
        "name: a\nrun: pass\npython_path: [src, ../lib, /tmp]\n",
    );
    std::fs::create_dir_all(tmp.path().join("suite/src")).unwrap();
    std::fs::create_dir_all(tmp.path().join("lib")).unwrap();
    let scenarios = load_file(&path).expect("loads");
    let suite = std::path::absolute(tmp.path().join("suite")).expect("absolute");
    let tmp_abs = std::path::absolute(tmp.path()).expect("absolute");
    assert_eq!(
        scenarios[0].python_path,
        [
            suite.join("src"),
            // `..` resolved, so reports show `lib/db.py`, not `suite/../lib/db.py`.
            tmp_abs.join("lib"),
            PathBuf::from("/tmp")
        ]
    );
    assert!(scenarios[0].python_path.iter().all(|p| p.is_absolute()));

    let path = write(
        tmp.path(),
        "one.yaml",
        "name: a\nrun: pass\npython_path: src\n",
    );
    std::fs::create_dir_all(tmp.path().join("src")).unwrap();
    let scenarios = load_file(&path).expect("loads");
    assert_eq!(
        scenarios[0].python_path,
        [std::path::absolute(tmp.path().join("src")).expect("abs")]
    );
}

#[test]
fn scenario_survives_a_json_round_trip() {
    let scenarios = load_ok("name: a\ncall: m:f\ntolerance: {rss: 1 KiB}\n");
    let json = serde_json::to_string(&scenarios[0]).expect("serialize");
    assert!(json.contains(r#""body":{"call":"m:f"}"#), "{json}");
    let back: Scenario = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, scenarios[0]);
}

#[test]
fn unknown_keys_suggest_the_closest_one() {
    assert_eq!(
        one_error("name: a\nrun: pass\niteratons: 5\n"),
        "3:1: unknown key `iteratons` in scenario `a` (did you mean `iterations`?)"
    );
    assert_eq!(
        one_error("scenarios:\n  - name: a\n    run: pass\n    sample-every: 2\n"),
        "4:5: unknown key `sample-every` in scenario `a` (did you mean `sample_every`?)"
    );
    // Every key, in the order of the key table (which this message has always had).
    assert_eq!(
        one_error("name: a\nrun: pass\nzzz: 1\n"),
        "3:1: unknown key `zzz` in scenario `a` (expected one of: name, description, setup, run, \
         call, pytest, fixtures, teardown, iterations, max_iterations, warmup, sample_every, \
         python_path, timeout, iteration_timeout, max_rss, gate, tolerance, expect, tags, params, \
         call_with_iteration, skip)"
    );
}

#[test]
fn call_with_iteration_is_refused_for_a_workload_that_is_not_a_call() {
    assert_eq!(
        one_error("name: a\nrun: x = [i]\ncall_with_iteration: true\n"),
        "3:1: key `call_with_iteration` in scenario `a`: only a `call` workload is passed the \
         iteration number (`run` code sees it as `i`); this scenario uses `run`"
    );
    // A call takes it; `false` says nothing either way.
    load_ok("name: a\ncall: json:dumps\ncall_with_iteration: true\n");
    load_ok("name: a\nrun: pass\ncall_with_iteration: false\n");
}

#[test]
fn top_level_keys_are_checked_in_the_list_form() {
    assert_eq!(
        one_error("iterations: 5\nscenarios:\n  - name: a\n    run: pass\n"),
        "1:1: unknown key `iterations` at the top level (settings shared by all scenarios go under `defaults:`)"
    );
    assert_eq!(
        one_error("defualts: {}\nscenarios:\n  - name: a\n    run: pass\n"),
        "1:1: unknown key `defualts` at the top level (did you mean `defaults`?)"
    );
    assert_eq!(
        errors("scenario:\n  - name: a\n    run: pass\n")[0],
        "1:1: unknown key `scenario` in the scenario (did you mean `scenarios`?)"
    );
    assert_eq!(
        one_error("defaults: {}\nname: a\nrun: pass\n"),
        "1:1: `defaults` only makes sense next to a `scenarios:` list"
    );
}

#[test]
fn syntax_errors_point_at_the_yaml_position() {
    assert_eq!(
        one_error("name: a\nrun: [1, 2\niterations: 3\n"),
        "3:11: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence at line 2 column 6"
    );
    let message = one_error("name: a\n  run: x\n");
    assert!(
        message.starts_with("2:6: invalid YAML: mapping values are not allowed in this context"),
        "{message}"
    );
}

#[test]
fn empty_and_unreadable_files_are_explained() {
    let expected = "file is empty: expected a scenario or `scenarios:` list";
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, text) in [("empty.yaml", ""), ("comments.yaml", "# nothing yet\n\n")] {
        let path = write(tmp.path(), name, text);
        let errors = load_file(&path).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            format!("{}: {expected}", path.display())
        );
    }
    assert_eq!(
        one_error(b"name: a\nrun: print('caf\xe9')\n"),
        "2:16: file is not valid UTF-8 text: save it as UTF-8 (this is the first invalid byte)"
    );
    assert_eq!(
        one_error("\u{feff}name: a\nrun: pass\niterations: x\n"),
        "3:13: key `iterations` in scenario `a`: expected a non-negative integer, found string \"x\""
    );
}

#[test]
fn the_top_level_must_be_a_mapping() {
    assert_eq!(
        one_error("- name: a\n  run: pass\n"),
        "1:3: expected a scenario or a `scenarios:` list at the top level, found a list (put the list under `scenarios:`)"
    );
    assert_eq!(
        one_error("just text\n"),
        "1:1: expected a scenario or a `scenarios:` list at the top level, found string \"just text\""
    );
}

#[test]
fn the_scenarios_list_is_checked() {
    assert_eq!(
        one_error("scenarios: []\n"),
        "1:1: `scenarios` is empty: add at least one scenario"
    );
    assert_eq!(
        one_error("scenarios:\n  name: a\n"),
        "2:3: key `scenarios`: expected a list of scenarios, found a mapping"
    );
    assert_eq!(
        one_error("scenarios:\n  - name: a\n    run: pass\n  - oops\n"),
        "4:5: entry #2 of `scenarios`: expected a mapping of scenario keys, found string \"oops\""
    );
    assert_eq!(
        one_error("defaults: 3\nscenarios:\n  - name: a\n    run: pass\n"),
        "1:11: key `defaults`: expected a mapping of scenario keys, found integer `3`"
    );
}

#[test]
fn run_and_call_are_exclusive_and_required() {
    assert_eq!(
        one_error("name: x\nrun: pass\ncall: m:f\n"),
        "3:1: scenario `x` sets both `run` and `call`: keep one"
    );
    assert_eq!(
        one_error("name: x\nsetup: pass\n"),
        "1:1: scenario `x` has no `run`, `call` or `pytest`"
    );
    assert_eq!(
        one_error("scenarios:\n  - name: a\n    run: pass\n  - name: b\n    iterations: 5\n"),
        "4:5: scenario `b` has no `run`, `call` or `pytest`"
    );
    assert_eq!(
        one_error("name: x\nrun: \"  \"\n"),
        "2:6: key `run` in scenario `x`: is empty: give the Python code to run each iteration"
    );
    for bad in [
        "mod.func", "mod:", ":f", "a..b:f", "1mod:f", "m:f-g", "m:f:g",
    ] {
        assert_eq!(
            one_error(format!("name: x\ncall: \"{bad}\"\n")),
            format!(
                "2:7: key `call` in scenario `x`: `{bad}` should look like `package.module:function`"
            )
        );
    }
    assert_eq!(
        load_ok("name: x\ncall: pkg.sub_2.mod:Cls.method\n")[0].body,
        Body::Call("pkg.sub_2.mod:Cls.method".into())
    );
}

#[test]
fn wrong_types_name_the_key_and_the_value() {
    assert_eq!(
        one_error("name: x\nrun: pass\niterations: many\n"),
        "3:13: key `iterations` in scenario `x`: expected a non-negative integer, found string \"many\""
    );
    assert_eq!(
        one_error("name: x\nrun: pass\nwarmup: -1\n"),
        "3:9: key `warmup` in scenario `x`: expected a non-negative integer, found integer `-1`"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\niterations: 2.5\n"),
        "3:13: key `iterations` in scenario `x`: expected a non-negative integer, found number `2.5`"
    );
    assert_eq!(
        one_error("name: 42\nrun: pass\n"),
        "1:7: key `name` in the scenario: expected a string, found integer `42` (put it in quotes to use it as text)"
    );
    assert_eq!(
        one_error("name: x\nrun:\n"),
        "2:5: key `run` in scenario `x`: expected a string, found an empty value"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ntimeout: [10]\n"),
        "3:11: key `timeout` in scenario `x`: expected a number of seconds, found a list"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ntags: [a, [b]]\n"),
        "3:12: key `tags` in scenario `x`: expected a list of strings, found a list"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\npython_path: {a: b}\n"),
        "3:15: key `python_path` in scenario `x`: expected a list of directories, found a mapping"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\nexpect: leaks\n"),
        "3:9: key `expect` in scenario `x`: expected `pass` or `leak`, found `leaks` (did you mean `leak`?)"
    );
}

#[test]
fn numeric_limits_are_enforced() {
    assert_eq!(
        one_error("name: x\nrun: pass\niterations: 2\n"),
        "3:13: key `iterations` in scenario `x`: must be at least 3, found 2"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\nsample_every: 0\n"),
        "3:15: key `sample_every` in scenario `x`: must be at least 1, found 0"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\niterations: 20\nsample_every: 10\n"),
        "4:1: key `sample_every` in scenario `x`: sampling 20 iterations every 10 gives 2 samples, and at least 3 are needed (lower `sample_every` or raise `iterations`)"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ntimeout: 0\n"),
        "3:10: key `timeout` in scenario `x`: must be a finite number of seconds above 0, found integer `0`"
    );
}

#[test]
fn metrics_are_checked_with_suggestions() {
    assert_eq!(
        one_error("name: x\nrun: pass\ngate: [tracemalloc, rs]\n"),
        "3:21: key `gate` in scenario `x`: unknown metric `rs` (did you mean `rss`?)"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ngate: [heap]\n"),
        "3:8: key `gate` in scenario `x`: unknown metric `heap` (expected one of: tracemalloc, malloc, rss, gc_objects, alloc_blocks, fds)"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ngate: []\n"),
        "3:1: key `gate` in scenario `x`: is empty: list at least one metric, e.g. `[tracemalloc]`"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ntolerance:\n  tracemaloc: 64 B\n"),
        "4:3: key `tolerance` in scenario `x`: unknown metric `tracemaloc` (did you mean `tracemalloc`?)"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ntolerance:\n  gc_objects: 3 KiB\n"),
        "4:15: key `tolerance.gc_objects` in scenario `x`: `3 KiB` should be a plain number (this metric counts)"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ntolerance:\n  rss: -5\n"),
        "4:8: key `tolerance.rss` in scenario `x`: must be zero or more, found integer `-5`"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\ntolerance: 64\n"),
        "3:12: key `tolerance` in scenario `x`: expected a mapping of metric name to allowed growth per iteration, found integer `64`"
    );
}

#[test]
fn names_and_keys_must_be_unique_within_a_file() {
    assert_eq!(
        one_error("run: pass\n"),
        "1:1: the scenario has no `name`: every scenario needs a unique name"
    );
    assert_eq!(
        one_error("name: x\nrun: pass\nrun: pass\n"),
        "3:1: key `run` appears twice in scenario `x` (first at line 2): keep one"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = write(
        tmp.path(),
        "dup.yaml",
        "scenarios:\n  - name: a\n    run: pass\n  - name: a\n    run: pass\n",
    );
    let errors = load_file(&path).unwrap_err();
    assert_eq!(errors.len(), 1);
    let file = path.display();
    assert_eq!(
        errors[0].to_string(),
        format!("{file}:4:11: duplicate scenario name `a` (first defined at {file}:2)")
    );
}

#[test]
fn defaults_errors_are_reported_once() {
    let all = errors(
        "defaults:\n\
         \x20 name: shared\n\
         \x20 iterations: lots\n\
         \x20 run: 5\n\
         scenarios:\n\
         \x20 - name: a\n\
         \x20 - name: b\n",
    );
    assert_eq!(
        all,
        [
            "2:3: key `name` is not allowed in `defaults`: each scenario needs its own name",
            "3:15: key `iterations` in `defaults`: expected a non-negative integer, found string \"lots\"",
            "4:8: key `run` in `defaults`: expected a string, found integer `5` (put it in quotes to use it as text)",
        ]
    );
}

#[test]
fn every_problem_in_a_file_is_reported_in_order() {
    let all = errors(
        "scenarios:\n\
         \x20 - name: a\n\
         \x20   run: pass\n\
         \x20   iteratons: 5\n\
         \x20 - name: b\n\
         \x20   call: nope\n\
         \x20   gate: [rsss]\n\
         \x20 - run: pass\n",
    );
    assert_eq!(
        all,
        [
            "4:5: unknown key `iteratons` in scenario `a` (did you mean `iterations`?)",
            "6:11: key `call` in scenario `b`: `nope` should look like `package.module:function`",
            "7:12: key `gate` in scenario `b`: unknown metric `rsss` (did you mean `rss`?)",
            "8:5: scenario #3 has no `name`: every scenario needs a unique name",
        ]
    );
}

#[test]
fn load_paths_collects_errors_from_every_file_and_checks_names_across_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = write(tmp.path(), "a.yaml", "name: same\nrun: pass\n");
    let b = write(
        tmp.path(),
        "b.yaml",
        "scenarios:\n  - name: ok\n    run: pass\n  - name: same\n    run: pass\n",
    );
    let c = write(tmp.path(), "c.yaml", "name: broken\nrun: pass\nwarmup: x\n");
    let errors = load_paths(&[tmp.path().to_path_buf()]).unwrap_err();
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            format!(
                "{}:3:9: key `warmup` in scenario `broken`: expected a non-negative integer, found string \"x\"",
                c.display()
            ),
            format!(
                "{}:4:11: duplicate scenario name `same` (first defined at {}:1)",
                b.display(),
                a.display()
            ),
        ]
    );
    assert_eq!(errors[1].key.as_deref(), Some("name"));
    assert_eq!((errors[1].line, errors[1].column), (Some(4), Some(11)));

    fs::remove_file(&c).expect("remove");
    fs::write(&b, "name: other\nrun: pass\n").expect("rewrite");
    let scenarios = load_paths(&[tmp.path().to_path_buf()]).expect("loads");
    let names: Vec<_> = scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["same", "other"]);
}

#[test]
fn load_paths_reports_discovery_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let errors = load_paths(&[tmp.path().join("nope")]).unwrap_err();
    assert_eq!(errors[0].message, "no such file or directory");
    assert_eq!(errors[0].line, None);
}

#[test]
fn odd_inputs_give_located_errors_not_panics() {
    let inputs = [
        "name: *nowhere\n",
        "a: &x [*x]\n",
        &"[".repeat(200),
        "? [a, b]\n: c\n",
        "name: a\nrun: pass\n\tgate: [rss]\n",
        "name: a\nrun: pass\n<<: {iterations: 5}\n",
        "name: a\nrun: pass\ntolerance: {1: 2}\n",
        "name: a\nrun: pass\ngate: !!str rss\niterations: !custom 5\n",
        "scenarios:\n  - []\n  - ~\n",
        "name: \"\"\nrun: pass\n",
        "name: \"a\\nb\"\nrun: pass\n",
        "name: a\nrun: pass\niterations: 99999999999999999999999999999999999999999\n",
        "name: a\nrun: pass\ntimeout: .inf\n",
        "name: a\nrun: pass\ntolerance: {rss: .nan}\n",
        "name: a\n---\nname: b\n",
    ];
    for input in inputs {
        let all = errors(input);
        assert!(!all.is_empty(), "{input:?}");
        for message in &all {
            let line: Option<usize> = message.split(':').next().and_then(|l| l.parse().ok());
            assert!(line.is_some(), "no line in {message:?} for {input:?}");
        }
    }
    assert_eq!(
        one_error("name: a\nrun: pass\n<<: {iterations: 5}\n"),
        "3:1: unknown key `<<` in scenario `a` (YAML merge keys are not supported: put shared settings under `defaults:`)"
    );
}

/// The bad fixtures used by the integration tests, with the exact errors they must produce
/// (paths relative to the crate root, as `cargo test` runs there).
#[test]
fn bad_fixtures_produce_their_documented_errors() {
    let cases: [(&str, &[&str]); 8] = [
        (
            "typo_key.yaml",
            &[
                "tests/fixtures/bad/typo_key.yaml:5:1: unknown key `iteratons` in scenario `typo-key` (did you mean `iterations`?)",
            ],
        ),
        (
            "syntax_error.yaml",
            &[
                "tests/fixtures/bad/syntax_error.yaml:5:11: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence at line 4 column 7",
            ],
        ),
        (
            "missing_run.yaml",
            &[
                "tests/fixtures/bad/missing_run.yaml:5:5: scenario `missing-run` has no `run`, `call` or `pytest`",
            ],
        ),
        (
            "wrong_type.yaml",
            &[
                "tests/fixtures/bad/wrong_type.yaml:4:13: key `iterations` in scenario `wrong-type`: expected a non-negative integer, found string \"many\"",
            ],
        ),
        (
            "unknown_metric.yaml",
            &[
                "tests/fixtures/bad/unknown_metric.yaml:4:21: key `gate` in scenario `unknown-metric`: unknown metric `gc_object` (did you mean `gc_objects`?)",
            ],
        ),
        (
            "run_and_call.yaml",
            &[
                "tests/fixtures/bad/run_and_call.yaml:4:1: scenario `run-and-call` sets both `run` and `call`: keep one",
            ],
        ),
        (
            "bad_tolerance.yaml",
            &[
                "tests/fixtures/bad/bad_tolerance.yaml:6:15: key `tolerance.gc_objects` in scenario `bad-tolerance`: `2 KiB` should be a plain number (this metric counts)",
            ],
        ),
        (
            "empty.yaml",
            &[
                "tests/fixtures/bad/empty.yaml: file is empty: expected a scenario or `scenarios:` list",
            ],
        ),
    ];
    let dir = Path::new("tests/fixtures/bad");
    for (name, expected) in cases {
        let errors = load_paths(&[dir.join(name)]).unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages, expected, "{name}");
    }
    let errors = load_paths(&[dir.join("duplicate_names")]).unwrap_err();
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "tests/fixtures/bad/duplicate_names/b.yaml:4:11: duplicate scenario name `same-name` (first defined at tests/fixtures/bad/duplicate_names/a.yaml:1)"
        ]
    );
}

#[test]
fn durations_and_sizes_take_units_as_the_other_keys_do() {
    let s = &load_ok(
        "name: units\nrun: pass\ntimeout: \"30 s\"\niteration_timeout: \"1h 30m\"\nmax_rss: \"1 TiB\"\n",
    )[0];
    assert_eq!(s.timeout_secs, 30.0);
    assert_eq!(s.iteration_timeout_secs, Some(5400.0));
    assert_eq!(s.max_rss, Some(1 << 40));
    assert_eq!(
        load_ok("name: m\nrun: pass\ntimeout: 2min\n")[0].timeout_secs,
        120.0
    );
    let error = one_error("name: bad\nrun: pass\ntimeout: soon\n");
    assert!(error.contains("a duration such as \"30 s\""), "{error}");
}

#[test]
fn paths_are_normalized_lexically_never_above_the_root() {
    use super::normalized;
    let n = |p: &str| normalized(Path::new(p));
    assert_eq!(
        n("/w/leaks/../mylib/./db.py"),
        PathBuf::from("/w/mylib/db.py")
    );
    assert_eq!(n("/a/../../.."), PathBuf::from("/"));
    assert_eq!(n("a/../../b"), PathBuf::from("../b"));
}

#[test]
fn code_blocks_know_the_file_line_they_start_on() {
    let scenarios = load_ok(
        "defaults:\n  setup: import os\nscenarios:\n  - name: block\n    setup: |\n      import json\n    run: |\n      x = [i]\n      y = json.dumps(x)\n    teardown: x = None\n  - name: plain\n    run: x = [i]\n  - name: folded\n    run: >\n      x = [i]\n  - name: quoted\n    run: \"x = [i]\\ny = 1\"\n",
    );
    let lines = |name: &str| {
        scenarios
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .code_lines
    };
    assert_eq!(
        lines("block"),
        CodeLines {
            setup: Some(6),
            run: Some(8),
            teardown: Some(10)
        }
    );
    // `setup` from the file's defaults is written on line 2.
    assert_eq!(lines("plain").setup, Some(2));
    assert_eq!(lines("plain").run, Some(12));
    // Folded and quoted multi-line text does not map line for line.
    assert_eq!(lines("folded").run, None);
    assert_eq!(lines("quoted").run, None);
}
