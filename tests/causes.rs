//! The founding causes of Python memory growth on the real libraries (`examples/causes/`, with
//! the packages of its `requirements.txt` installed from PyPI into a venv made here): each leaky
//! scenario is `leak` with the hint for its cause and a referrer chain that names the holder,
//! each fixed one is `pass`. The causes needing only the standard library ship in `scenarios/`
//! and are checked in `tests/diagnosis.rs`.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{Project, scenario, transcript};

fn causes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/causes")
}

/// The hint rules and the chain texts of a scenario's diagnosis.
fn rules_and_chains(result: &Value) -> (Vec<String>, Vec<String>) {
    let d = &result["diagnosis"];
    let strings = |key: &str, field: &str| -> Vec<String> {
        d[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x[field].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    (strings("hints", "rule"), strings("chains", "text"))
}

#[test]
fn each_cause_on_its_real_library_is_a_leak_with_its_hint_and_holder_and_its_fix_passes() {
    let project = Project::new();
    let requirements = causes_dir().join("requirements.txt");
    let Some(venv) = project.venv_with("venv", &["-r", requirements.to_str().unwrap()]) else {
        return;
    };
    let (output, results) = project.run(&[
        causes_dir().to_str().unwrap(),
        "--python",
        venv.to_str().unwrap(),
    ]);
    let log = transcript(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");

    // (leaky, fixed, hint rule, text a chain to the holder contains).
    let pairs = [
        (
            "requests-session-per-call-kept",
            "requests-session-closed",
            "http_sessions",
            "module http_clients → global '_open_sessions' (list) → item [",
        ),
        (
            "sqlalchemy-results-kept",
            "sqlalchemy-latest-result-only",
            "sqlalchemy_results_kept",
            "'service' (orders_db.ReportService) → .history (list) → item [",
        ),
        (
            "numpy-view-keeps-frame",
            "numpy-copy-frees-frame",
            "numpy_view_keeps_base",
            "module signals → global '_summaries' (list) → item [",
        ),
        (
            "autograd-losses-keep-graphs",
            "autograd-loss-values-only",
            "autograd_graph_kept",
            "'epoch' (training.Epoch) → .losses (list) → item [",
        ),
    ];
    for (leaky, fixed, rule, holder) in pairs {
        let result = scenario(&results, leaky);
        assert_eq!(result["verdict"], "leak", "{leaky}: {result:#}");
        let (rules, chains) = rules_and_chains(result);
        assert!(rules.iter().any(|r| r == rule), "{leaky}: {rules:?}");
        assert!(
            chains.iter().any(|c| c.contains(holder)),
            "{leaky}: no chain through {holder:?} in {chains:#?}"
        );
        let result = scenario(&results, fixed);
        assert_eq!(result["verdict"], "pass", "{fixed}: {result:#}");
    }
}
