//! A small, fast subset of the accuracy corpus (`benches/accuracy/corpus/`), run with the real
//! binary: native leaks tracemalloc cannot see (64 KiB/iter, also seen by RSS, and 4 KiB/iter,
//! served from freed heap so RSS stays flat: only `malloc` sees it), a cache that fills and
//! stops, and a sawtooth. The full
//! corpus runs with `cargo bench --bench accuracy`.

mod common;

use common::{Project, scenario, transcript};

#[test]
fn corpus_smoke_subset_gets_its_known_truth() {
    let project = Project::new();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/accuracy/corpus");
    let (output, results) = project.run(&[
        corpus.to_str().unwrap(),
        "-k",
        "leak-native-64KiB or leak-native-4KiB or clean-lru-128 or clean-sawtooth-50",
        "--no-diagnose",
    ]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");

    for (name, kib) in [("leak-native-64KiB", 64.0), ("leak-native-4KiB", 4.0)] {
        let native = scenario(&results, name);
        assert_eq!(native["verdict"], "leak", "{log}");
        assert!(
            native["reason"]
                .as_str()
                .unwrap()
                .starts_with("malloc grew"),
            "{log}"
        );
        let growth = native["analysis"]["metrics"]["malloc"]["robust"]["slope"]
            .as_f64()
            .unwrap();
        assert!(
            (growth / 1024.0 - kib).abs() < 0.5,
            "{name}: {growth} B/iter"
        );
        // Invisible to tracemalloc, in its traced window too.
        let traced = native["metrics"]["tracemalloc"]["slope"].as_f64().unwrap();
        assert!(traced.abs() < 64.0, "{name}: {traced} B/iter traced");
    }

    let cache = scenario(&results, "clean-lru-128");
    assert_eq!(cache["verdict"], "pass", "{log}");
    assert!(
        cache["reason"].as_str().unwrap().contains("then flat"),
        "{log}"
    );

    let saw = scenario(&results, "clean-sawtooth-50");
    assert_ne!(saw["verdict"], "leak", "{log}");
}
