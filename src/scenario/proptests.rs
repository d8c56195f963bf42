//! Property tests of the scenario parser: whatever a file holds, loading it returns scenarios or
//! located errors, never a panic, and in bounded time.
//!
//! Three generators: arbitrary bytes (the UTF-8 check and everything after it), arbitrary text,
//! and YAML-shaped documents built from scenario keys (valid and misspelt) and values of every
//! kind, which reach far deeper into validation than random text does. The case counts keep the
//! whole module to a few seconds, so it runs with every `cargo test`.

use std::path::Path;

use proptest::prelude::*;

use super::keys::SCENARIO_KEYS;
use super::{ScenarioError, load_file};

/// Loads `bytes` as a scenario file and checks the invariants every outcome must satisfy.
fn check(dir: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = dir.join("fuzz.yaml");
    std::fs::write(&path, bytes).expect("write fuzz input");
    let lines = yaml_lines(bytes);
    match load_file(&path) {
        Ok(scenarios) => {
            for scenario in scenarios {
                prop_assert!(!scenario.name.trim().is_empty());
                prop_assert!(scenario.iterations >= 3);
                prop_assert!(scenario.sample_every >= 1);
                prop_assert!(scenario.timeout_secs > 0.0 && scenario.timeout_secs.is_finite());
                prop_assert!(!scenario.gate.is_empty());
                prop_assert!((1..=lines).contains(&scenario.line));
            }
        }
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            for error in errors {
                check_error(&error, lines)?;
            }
        }
    }
    Ok(())
}

/// Lines of `bytes` as the YAML parser counts them: `\n`, `\r\n`, a lone `\r`, NEL, and the
/// Unicode line and paragraph separators all end a line (YAML 1.1, which the parser follows).
fn yaml_lines(bytes: &[u8]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars().peekable();
    let mut lines = 1;
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                lines += 1;
            }
            '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' => lines += 1,
            _ => {}
        }
    }
    lines
}

fn check_error(error: &ScenarioError, lines: usize) -> Result<(), TestCaseError> {
    prop_assert!(!error.message.is_empty());
    prop_assert!(!error.message.ends_with('.'), "{}", error.message);
    if let Some(line) = error.line {
        prop_assert!(
            (1..=lines + 1).contains(&line),
            "line {line} of {lines}: {error}"
        );
    }
    Ok(())
}

/// A scalar as it might be written in a scenario file.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("~".to_string()),
        Just("true".to_string()),
        Just("''".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just(".inf".to_string()),
        Just(".nan".to_string()),
        Just("\"64 B\"".to_string()),
        Just("1.5 KiB".to_string()),
        Just("pkg.mod:func".to_string()),
        Just("tracemalloc".to_string()),
        Just("*anchor".to_string()),
        Just("&anchor x".to_string()),
        Just("!tag x".to_string()),
        "[a-z_ ]{0,12}",
        "\\PC{0,8}",
    ]
}

/// A value: a scalar, a flow list or mapping, or a block scalar.
fn value() -> impl Strategy<Value = String> {
    let leaf = scalar();
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((key(), inner), 0..3).prop_map(|kv| {
                let items: Vec<String> = kv.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", items.join(", "))
            }),
            "[a-z =()+\\[\\]]{0,20}".prop_map(|code| format!("|\n    {code}\n")),
        ]
    })
}

/// A key: a scenario key, a near miss, a metric name or anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(SCENARIO_KEYS.to_vec()).prop_map(str::to_string),
        1 => prop::sample::select(SCENARIO_KEYS.to_vec()).prop_map(|k| format!("{k}s")),
        1 => prop::sample::select(vec!["scenarios", "defaults", "rss", "fds", "<<"])
            .prop_map(str::to_string),
        1 => "[a-z_]{1,10}",
    ]
}

/// A mapping of keys to values at `indent` spaces.
fn mapping(indent: usize) -> impl Strategy<Value = String> {
    prop::collection::vec((key(), value()), 0..8).prop_map(move |entries| {
        entries
            .iter()
            .map(|(k, v)| format!("{:indent$}{k}: {v}\n", ""))
            .collect()
    })
}

/// A whole file: one scenario, or `defaults:` and a `scenarios:` list.
fn document() -> impl Strategy<Value = String> {
    prop_oneof![
        mapping(0),
        (mapping(2), prop::collection::vec(mapping(4), 0..4)).prop_map(|(defaults, items)| {
            let mut text = format!("defaults:\n{defaults}scenarios:\n");
            for item in items {
                // The first key of each entry carries the list dash.
                let entry = item.replacen("    ", "  - ", 1);
                text.push_str(if entry.is_empty() { "  - {}\n" } else { &entry });
            }
            text
        }),
    ]
}

#[test]
fn a_unicode_line_separator_ends_a_line_for_the_error_location() {
    // Found by `arbitrary_text_never_panics`: the parser counts U+2028 as a line break.
    let dir = tempfile::tempdir().unwrap();
    check(dir.path(), "0:\u{2028}並".as_bytes()).unwrap();
    assert_eq!(yaml_lines("a\r\nb\rc\u{85}d\u{2029}e\n".as_bytes()), 6);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().expect("tempdir");
        check(dir.path(), &bytes)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let dir = tempfile::tempdir().expect("tempdir");
        check(dir.path(), text.as_bytes())?;
    }

    #[test]
    fn scenario_shaped_documents_never_panic(text in document()) {
        let dir = tempfile::tempdir().expect("tempdir");
        check(dir.path(), text.as_bytes())?;
    }
}
