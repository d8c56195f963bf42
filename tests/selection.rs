//! Choosing scenarios: `-k` expressions over names and tags, `--partition` shards that are
//! disjoint and cover everything, and `merge` of shard results matching a single run.

mod common;

use std::collections::BTreeSet;

use common::{Project, names_and_verdicts, transcript};

const SUITE: &str = r#"
defaults:
  iterations: 30
  warmup: 3
scenarios:
  - name: cache-leak
    tags: [cache, slow]
    expect: leak
    setup: "kept = []"
    run: "kept.append([i])"
  - name: cache-clean
    tags: [cache, clean]
    run: "x = {i: i}"
  - name: logging-clean
    tags: [logging, clean]
    run: "y = [i]"
  - name: cycles
    tags: [clean]
    run: |
      a = []; a.append(a)
  - name: registry-leak
    tags: [callbacks]
    expect: leak
    setup: "handlers = []"
    run: "handlers.append(lambda: i)"
"#;

fn listed(project: &Project, args: &[&str]) -> Vec<String> {
    let mut all = vec!["list", "suite.yaml", "--format", "json"];
    all.extend_from_slice(args);
    let out = project.leakcheck(&all);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn k_expressions_select_by_name_and_tag() {
    let project = Project::new();
    project.write("suite.yaml", SUITE);
    assert_eq!(
        listed(&project, &["-k", "cache"]),
        ["cache-leak", "cache-clean"]
    );
    assert_eq!(
        listed(&project, &["-k", "clean and not cache"]),
        ["logging-clean", "cycles"]
    );
    assert_eq!(
        listed(&project, &["-k", "(leak or logging) and not slow"]),
        ["logging-clean", "registry-leak"]
    );
    assert_eq!(listed(&project, &["-k", "CALLBACKS"]), ["registry-leak"]);

    let out = project.leakcheck(&["list", "suite.yaml", "-k", "cache and (clean"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid -k expression"));
    let out = project.leakcheck(&["list", "suite.yaml", "-k", "nothing-like-this"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn partitions_are_disjoint_and_cover_everything() {
    let project = Project::new();
    project.write("suite.yaml", SUITE);
    let all: BTreeSet<String> = listed(&project, &[]).into_iter().collect();
    for kind in ["count", "hash"] {
        let mut union = BTreeSet::new();
        let mut total = 0;
        for k in 1..=3 {
            let shard = listed(&project, &["--partition", &format!("{kind}:{k}/3")]);
            total += shard.len();
            union.extend(shard);
        }
        assert_eq!(union, all, "{kind}");
        assert_eq!(total, all.len(), "{kind}: shards overlap");
    }
    // count shards are as even as possible
    assert_eq!(listed(&project, &["--partition", "count:1/2"]).len(), 3);
    let out = project.leakcheck(&["list", "suite.yaml", "--partition", "count:3/2"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn merged_shards_report_like_a_single_run() {
    let project = Project::new();
    project.write("suite.yaml", SUITE);
    let (single_out, single) = project.run(&["suite.yaml"]);
    assert_eq!(
        single_out.status.code(),
        Some(0),
        "{}",
        transcript(&single_out)
    );

    for k in 1..=2 {
        let out = project.leakcheck(&[
            "run",
            "suite.yaml",
            "--partition",
            &format!("hash:{k}/2"),
            "--report-dir",
            &format!("shard{k}"),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    }
    let out = project.leakcheck(&[
        "merge",
        "shard1/results.json",
        "shard2/results.json",
        "-o",
        "merged.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.path().join("merged.json")).unwrap())
            .unwrap();
    let summary = |v: &serde_json::Value| v["summary"].clone();
    assert_eq!(summary(&merged), summary(&single));
    assert_eq!(names_and_verdicts(&merged), names_and_verdicts(&single));

    // The merged results render like any run's.
    let out = project.leakcheck(&["report", "merged.json", "--report-dir", "merged-report"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let junit = std::fs::read_to_string(project.path().join("merged-report/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 5);
    assert!(project.path().join("merged-report/index.html").exists());

    // Merging a shard with itself is refused.
    let out = project.leakcheck(&[
        "merge",
        "shard1/results.json",
        "shard1/results.json",
        "-o",
        "x.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is in both"));

    // Files no run wrote, and shards of different runs, are refused too.
    let shard = |k: u32| -> serde_json::Value {
        let text = std::fs::read_to_string(project.path().join(format!("shard{k}/results.json")));
        serde_json::from_str(&text.unwrap()).unwrap()
    };
    let write = |name: &str, value: &serde_json::Value| {
        project.write(name, &serde_json::to_string(value).unwrap());
    };
    let mut twice = shard(1);
    let first = twice["scenarios"][0].clone();
    twice["scenarios"].as_array_mut().unwrap().push(first);
    write("twice.json", &twice);
    let mut other_tool = shard(2);
    other_tool["tool"]["version"] = "0.0.1".into();
    write("other-tool.json", &other_tool);
    let mut other_seed = shard(2);
    for s in other_seed["scenarios"].as_array_mut().unwrap() {
        s["analysis"]["seed"] = 7.into();
    }
    write("other-seed.json", &other_seed);
    let mut other_python = shard(2);
    other_python["python"]["executable"] = "/opt/other/python3".into();
    write("other-python.json", &other_python);
    for (second, expected) in [
        ("twice.json", "is in `twice.json` twice"),
        (
            "other-tool.json",
            "is not a shard of the run of `shard1/results.json`: leakcheck 0.0.1",
        ),
        ("other-seed.json", "seed 7, against 0"),
        ("other-python.json", "Python /opt/other/python3"),
    ] {
        let out = project.leakcheck(&["merge", "shard1/results.json", second, "-o", "x.json"]);
        assert_eq!(out.status.code(), Some(2), "{second}: {}", transcript(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{second}: {stderr}");
    }
    assert!(!project.path().join("x.json").exists());
}

#[test]
fn list_prints_the_same_bytes_as_text_and_as_json() {
    // Scripts read `list --format json`: its keys, their order and its layout are pinned whole,
    // with a description that needs escaping, tags, an expected leak and a scenario with none.
    let project = Project::new();
    project.write(
        "suite/a.yaml",
        r#"
scenarios:
  - name: cache-leak
    description: "a cache \"that\" grows"
    tags: [cache, slow]
    expect: leak
    run: "x = [i]"
  - name: plain
    run: "y = i"
"#,
    );
    let out = project.leakcheck(&["list", "suite", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let expected = r#"[
  {
    "description": "a cache \"that\" grows",
    "expect": "leak",
    "file": "suite/a.yaml",
    "line": 3,
    "name": "cache-leak",
    "tags": [
      "cache",
      "slow"
    ]
  },
  {
    "description": null,
    "expect": "pass",
    "file": "suite/a.yaml",
    "line": 8,
    "name": "plain",
    "tags": []
  }
]
"#;
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    let out = project.leakcheck(&["list", "suite"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cache-leak  suite/a.yaml:3  [expect: leak]\nplain  suite/a.yaml:8\n"
    );
}
