//! A small, fast subset of the accuracy corpus (`benches/accuracy/corpus/`), run with the real
//! binary: a native leak only RSS sees, a cache that fills and stops, and a sawtooth. The full
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
        "leak-native-64KiB or clean-lru-128 or clean-sawtooth-50",
        "--no-diagnose",
    ]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");

    let native = scenario(&results, "leak-native-64KiB");
    assert_eq!(native["verdict"], "leak", "{log}");
    assert!(
        native["reason"].as_str().unwrap().starts_with("rss grew"),
        "{log}"
    );

    let cache = scenario(&results, "clean-lru-128");
    assert_eq!(cache["verdict"], "pass", "{log}");
    let stop = &cache["analysis"]["stop"];
    assert!(
        stop["measured_iterations"].as_u64().unwrap() > 200,
        "{stop}"
    );
    assert!(
        cache["reason"].as_str().unwrap().contains("then flat"),
        "{log}"
    );

    let saw = scenario(&results, "clean-sawtooth-50");
    assert_ne!(saw["verdict"], "leak", "{log}");
}
