//! results.json's schema pinned by a golden file: every field path that real results files use
//! (the report snapshots' fixtures, written by real runs, and one run made here with a crash, a
//! timeout and a pass) and that [`VARIANTS`] adds, read by this build and written back
//! unchanged.
//!
//! A field renamed or removed in any type results.json is made of changes a public format: this
//! test fails and says which paths went or came. Most of those types are the schema's own
//! (`leakcheck::results`), but the diagnosis and the holder report are the worker's own types,
//! published as they are decoded: [`VARIANTS`] holds every variant of them, so that a change to
//! them that alters results.json fails here too. Regenerate the golden file (and [`VARIANTS`]'s
//! hint words, which this build writes) with `UPDATE_SNAPSHOTS=1` after a deliberate, additive
//! change (schema version 1 only grows), and review the diff.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Project, transcript};
use leakcheck::results::RunResults;
use serde_json::Value;

const GOLDEN: &str = "tests/fixtures/results.v1.paths";

/// A results file made by hand from one real leak scenario (`logging-buffer-unflushed` of the
/// shipped fixture, its samples cut short), holding every variant of the diagnosis's and the
/// holder report's types, which the real runs' fixtures do not all reach: each hint rule with
/// its facts and one of a rule this build does not know, each outcome of the native window with
/// its sites, a diagnosis `error`, and each holder outcome.
const VARIANTS: &str = "tests/fixtures/results.v1.variants.json";

/// Every path of `value`: object keys joined by `.`, array items as `[]`, the metrics' and the
/// diagnosis maps' own keys kept (they are names, not data), leaves only.
fn paths(value: &Value, prefix: &str, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                paths(child, &path, into);
            }
            if map.is_empty() {
                into.insert(format!("{prefix} {{}}"));
            }
        }
        Value::Array(items) => {
            let path = format!("{prefix}[]");
            if items.is_empty() {
                into.insert(path.clone());
            }
            for item in items {
                paths(item, &path, into);
            }
        }
        _ => {
            into.insert(prefix.to_string());
        }
    }
}

/// Whether to regenerate the golden file and [`VARIANTS`]' words rather than compare.
fn updating() -> bool {
    std::env::var_os("UPDATE_SNAPSHOTS").is_some()
}

/// The file read by this build and written back: every field must survive, under its name.
fn round_trip(text: &str, what: &str) -> Value {
    let original: Value = serde_json::from_str(text).unwrap();
    let read: RunResults =
        serde_json::from_str(text).unwrap_or_else(|err| panic!("{what} does not read: {err}"));
    let written = serde_json::to_value(&read).unwrap();
    assert_eq!(
        written, original,
        "{what}: a field changed between reading and writing"
    );
    written
}

#[test]
fn results_json_keeps_its_field_names_and_paths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = BTreeSet::new();
    for fixture in ["shipped", "mixed", "inconclusive"] {
        let file = root.join(format!("tests/fixtures/snapshots/{fixture}.json"));
        let text = std::fs::read_to_string(&file).unwrap();
        paths(&round_trip(&text, fixture), "", &mut all);
    }
    let variants = root.join(VARIANTS);
    if updating() {
        // The hints' words are this build's (results.json carries them beside the facts).
        let read: RunResults =
            serde_json::from_str(&std::fs::read_to_string(&variants).unwrap()).unwrap();
        let written = serde_json::to_string_pretty(&read).unwrap();
        std::fs::write(&variants, format!("{written}\n")).unwrap();
    }
    let text = std::fs::read_to_string(&variants).unwrap();
    paths(&round_trip(&text, VARIANTS), "", &mut all);
    // A run of this build with the newer optional fields: a crash, a timeout, a pass.
    let project = Project::new();
    project.write(
        "s.yaml",
        r#"
defaults:
  iterations: 20
  warmup: 2
scenarios:
  - name: passes
    run: x = [i]
  - name: crashes
    run: |
      import os
      if i == 3:
          os._exit(7)
  - name: hangs
    timeout: 1
    run: |
      import time
      time.sleep(0.2)
"#,
    );
    let (output, _) = project.run(&["s.yaml"]);
    assert_eq!(output.status.code(), Some(1), "{}", transcript(&output));
    let text = std::fs::read_to_string(project.path().join("reports/results.json")).unwrap();
    let mut live = BTreeSet::new();
    paths(&round_trip(&text, "this build's run"), "", &mut live);
    // Its figures depend on the machine (how many samples a timed-out scenario got): only its
    // other fields join the golden set; the fixtures cover the figures.
    let figures = ["metrics", "analysis", "diagnosis", "holders", "timings"];
    all.extend(live.into_iter().filter(|path| {
        !figures
            .iter()
            .any(|part| path.starts_with(&format!("scenarios[].{part}")))
    }));

    let found: String = all.iter().map(|p| format!("{p}\n")).collect();
    let golden = root.join(GOLDEN);
    if updating() {
        std::fs::write(&golden, &found).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    let expected: BTreeSet<&str> = expected.lines().collect();
    let found: BTreeSet<&str> = found.lines().collect();
    let gone: Vec<&&str> = expected.difference(&found).collect();
    let new: Vec<&&str> = found.difference(&expected).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "results.json's paths changed (regenerate {GOLDEN} with UPDATE_SNAPSHOTS=1 if this is \
         a deliberate, additive change)\ngone: {gone:#?}\nnew: {new:#?}"
    );
}
