//! `-j N`: scenarios run in parallel worker processes, but results keep scenario order and one
//! worker's memory never shows up in another's figures.

mod common;

use common::{Project, names_and_verdicts, transcript};

const SUITE: &str = r#"
defaults:
  iterations: 60
  warmup: 5
scenarios:
  - name: a-leaks
    expect: leak
    setup: |
      kept = []
    run: |
      kept.append([i] * 8)
  - name: b-hog
    description: grows RSS by ~1 MiB per iteration through bytes objects it keeps
    expect: leak
    setup: |
      kept = []
    run: |
      kept.append(b"x" * (1 << 20))
  - name: c-clean
    run: |
      x = [str(n) for n in range(100)]
  - name: d-slow-clean
    run: |
      import time
      time.sleep(0.005)
  - name: e-clean
    call: gc:isenabled
"#;

#[test]
fn parallel_runs_keep_order_and_verdicts_and_isolate_memory() {
    let project = Project::new();
    project.write("suite.yaml", SUITE);
    let (serial_out, serial) = project.run(&["suite.yaml", "-j", "1"]);
    assert_eq!(
        serial_out.status.code(),
        Some(0),
        "{}",
        transcript(&serial_out)
    );
    let (parallel_out, parallel) = project.run(&["suite.yaml", "-j", "3"]);
    assert_eq!(
        parallel_out.status.code(),
        Some(0),
        "{}",
        transcript(&parallel_out)
    );

    let expected: Vec<(String, String)> = [
        ("a-leaks", "leak"),
        ("b-hog", "leak"),
        ("c-clean", "pass"),
        ("d-slow-clean", "pass"),
        ("e-clean", "pass"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(names_and_verdicts(&serial), expected);
    assert_eq!(names_and_verdicts(&parallel), expected);

    // The hog's ~1 MiB per iteration is in its own RSS only.
    for results in [&serial, &parallel] {
        let hog = common::scenario(results, "b-hog");
        let hog_rss = hog["metrics"]["rss"]["slope"].as_f64().unwrap();
        assert!(hog_rss > 900_000.0, "{hog_rss}");
        for clean in ["c-clean", "d-slow-clean", "e-clean"] {
            let s = common::scenario(results, clean);
            let rss = s["metrics"]["rss"]["slope"].as_f64().unwrap();
            assert!(rss.abs() < 10_000.0, "{clean}: {rss} B/iter of RSS");
        }
    }
}
