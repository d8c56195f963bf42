//! The scenario keys: the one list of what a scenario mapping, a file's `defaults:` and a project
//! configuration's `defaults` accept.
//!
//! Each field of [`Settings`] is one entry of the table below: the field's type, the key or keys
//! that set it with the check that reads each one's value (from [`super::values`]), and, for a key
//! that only a scenario may give, why `defaults` may not. From that table the macro makes
//! [`SCENARIO_KEYS`] (which the unknown-key error, its "did you mean" and the documentation test
//! read), the [`Settings`] struct, how a mapping falls back on its defaults, and the reader that
//! hands each key to its check. A new key is one entry here; what it means is then written where
//! it is used: its [`super::Scenario`] field, filled in [`super::load`]'s `finish` (with its
//! built-in default and any rule it shares with other keys), its row in docs/scenarios.md
//! (which a test holds to this table), and, for a key the worker reads, the spec the worker
//! hands to Python (`worker/interpreter.rs`, `python/harness.py`).
//!
//! Several keys may set one field (`run`, `call` and `pytest` all give the workload): a mapping
//! gives at most one of them, and a scenario that gives one ignores its defaults' value of all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::metric::Metric;

use super::values::{
    Invalid, ParamSet, parse_bool, parse_call, parse_code, parse_count, parse_expect,
    parse_fixtures, parse_gate, parse_memory, parse_name, parse_params, parse_paths, parse_pytest,
    parse_run, parse_seconds, parse_tags, parse_text, parse_tolerance,
};
use super::yaml::{Node, Pos};
use super::{Body, Expect, Fixtures};

/// Fewest measured iterations, and fewest samples, from which a trend can be fitted.
pub(super) const MIN_SAMPLES: u64 = 3;

/// Keys of the top level of a file that lists several scenarios.
pub(super) const TOP_LEVEL_KEYS: [&str; 2] = ["scenarios", "defaults"];

/// A value as written in the file, with positions for errors found after merging.
#[derive(Clone, Debug)]
pub(super) struct Given<T> {
    pub(super) value: T,
    /// Where the key is written.
    pub(super) at: Pos,
    /// Where the value is written.
    pub(super) value_at: Pos,
}

/// What a value's check may need besides the value itself.
pub(super) struct Context<'a> {
    /// The folder relative paths start from: the scenario file's, or the configuration's.
    pub(super) dir: &'a Path,
    /// The line the key is written on.
    pub(super) line: usize,
}

/// Makes [`SCENARIO_KEYS`], [`Settings`] (with its fallback and its reader), [`same_field`] and
/// [`not_in_defaults`] from one table; see the module documentation.
macro_rules! scenario_keys {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty {
            $($key:ident => $parse:expr),+ $(,)?
        } $(not in defaults: $why:literal)?;
    )+) => {
        /// The keys a scenario mapping accepts, in the table's order; `defaults:` accepts the
        /// same keys but those [`not_in_defaults`] refuses.
        pub(crate) const SCENARIO_KEYS: &[&str] = &[$($(stringify!($key)),+),+];

        /// The keys that set the same field as `key`, `key` included: a mapping gives at most
        /// one of them.
        pub(super) fn same_field(key: &str) -> &'static [&'static str] {
            match key {
                $($(stringify!($key))|+ => &[$(stringify!($key)),+],)+
                _ => &[],
            }
        }

        /// Why `defaults` may not give `key`, for a key that only a scenario may give.
        pub(super) fn not_in_defaults(key: &str) -> Option<&'static str> {
            match key {
                $($(stringify!($key))|+ => scenario_keys!(@why $($why)?),)+
                _ => None,
            }
        }

        /// The keys one mapping (a scenario or `defaults`) sets, each already checked on its own.
        #[derive(Clone, Debug, Default)]
        pub(super) struct Settings {
            $(
                $(#[doc = $doc])+
                pub(super) $field: Option<Given<$ty>>,
            )+
            /// Keys that were present but invalid (already reported): they must not also be
            /// reported as missing, nor checked against other keys.
            pub(super) failed: Vec<&'static str>,
        }

        impl Settings {
            /// Fills every field this mapping leaves unset from `defaults`.
            pub(super) fn or(self, defaults: &Settings) -> Settings {
                let mut failed = self.failed.clone();
                failed.extend(defaults.failed.iter().filter(|key| !self.sets(key)));
                Settings {
                    $($field: self.$field.or_else(|| defaults.$field.clone()),)+
                    failed,
                }
            }

            /// Whether this mapping gives `key`, or another key of its field, validly or not:
            /// either hides the default's value.
            pub(super) fn sets(&self, key: &str) -> bool {
                let given = match key {
                    $($(stringify!($key))|+ => self.$field.is_some(),)+
                    _ => false,
                };
                given || same_field(key).iter().any(|other| self.has_failed(other))
            }

            /// Checks `value` as the value of `key` (one of [`SCENARIO_KEYS`]) and keeps it; on
            /// failure, remembers the key as failed and returns the problems for the caller to
            /// report.
            pub(super) fn read(
                &mut self,
                key: &'static str,
                key_pos: Pos,
                value: &Node,
                cx: &Context<'_>,
            ) -> Result<(), Invalid> {
                match key {
                    $($(stringify!($key) => {
                        let parse: fn(&Node, &Context<'_>) -> Result<$ty, Invalid> = $parse;
                        match parse(value, cx) {
                            Ok(parsed) => {
                                self.$field = Some(Given {
                                    value: parsed,
                                    at: key_pos,
                                    value_at: value.pos,
                                });
                                Ok(())
                            }
                            Err(invalid) => {
                                self.failed.push(key);
                                Err(invalid)
                            }
                        }
                    })+)+
                    other => unreachable!("`{other}` is not a key of the table"),
                }
            }
        }
    };
    (@why) => { None };
    (@why $why:literal) => { Some($why) };
}

impl Settings {
    /// Whether this mapping gave `key` an invalid value (already reported).
    pub(super) fn has_failed(&self, key: &str) -> bool {
        debug_assert!(
            SCENARIO_KEYS.contains(&key),
            "`{key}` is not a scenario key"
        );
        self.failed.contains(&key)
    }
}

// The table: for each field of `Settings`, its type and the keys that set it, each with its check.
scenario_keys! {
    /// Unique across the run; used by `-k` and in reports.
    name: String { name => |n, _| parse_name(n) }
        not in defaults: "each scenario needs its own name";
    /// Free text shown in reports.
    description: String { description => |n, _| parse_text(n) };
    /// Python run once, in a fresh namespace, before anything else.
    setup: String { setup => |n, _| parse_code(n) };
    /// The workload: Python run every iteration, a function to call, or pytest tests.
    body: Body {
        run => |n, _| parse_run(n),
        call => |n, _| parse_call(n),
        pytest => |n, cx| parse_pytest(n, cx.dir, cx.line),
    };
    /// When a `pytest` workload's function-scoped fixtures are set up.
    fixtures: Fixtures { fixtures => |n, _| parse_fixtures(n) };
    /// Python run once at the end.
    teardown: String { teardown => |n, _| parse_code(n) };
    /// Measured iterations: the minimum every run makes.
    iterations: u64 { iterations => |n, _| parse_count(n, MIN_SAMPLES) };
    /// Most measured iterations when the verdict is not yet clear.
    max_iterations: u64 { max_iterations => |n, _| parse_count(n, MIN_SAMPLES) };
    /// Iterations run first and not measured.
    warmup: u64 { warmup => |n, _| parse_count(n, 0) };
    /// A sample every this many iterations.
    sample_every: u64 { sample_every => |n, _| parse_count(n, 1) };
    /// Folders prepended to `sys.path`, relative to the file.
    python_path: Vec<PathBuf> { python_path => |n, cx| parse_paths(n, cx.dir) };
    /// Seconds the whole scenario may take.
    timeout: f64 { timeout => |n, _| parse_seconds(n) };
    /// Seconds one iteration may take.
    iteration_timeout: f64 { iteration_timeout => |n, _| parse_seconds(n) };
    /// Memory cap of the worker and its subprocesses, in bytes.
    max_rss: u64 { max_rss => |n, _| parse_memory(n) };
    /// The metrics that decide the verdict.
    gate: Vec<Metric> { gate => |n, _| parse_gate(n) };
    /// Allowed growth per iteration, by metric.
    tolerance: BTreeMap<Metric, f64> { tolerance => |n, _| parse_tolerance(n) };
    /// `pass`, or `leak` for a known leak.
    expect: Expect { expect => |n, _| parse_expect(n) };
    /// Free-form labels, matched by `-k`.
    tags: Vec<String> { tags => |n, _| parse_tags(n) };
    /// One scenario per parameter set.
    params: Vec<ParamSet> { params => |n, _| parse_params(n) };
    /// Whether the `call` target receives the iteration number.
    call_with_iteration: bool { call_with_iteration => |n, _| parse_bool(n) };
    /// Why the scenario is not run for now: reported as skipped, with this reason.
    skip: String { skip => |n, _| parse_text(n) };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::SCENARIO_KEYS;

    /// The keys of the first Markdown table of `text` whose header starts with `| key |`: the
    /// backquoted name in each row's first cell, or `None` when the text has no such table.
    fn documented_keys(text: &str) -> Option<BTreeSet<String>> {
        let mut lines = text.lines().skip_while(|line| !line.starts_with("| key |"));
        lines.next()?;
        let rows = lines
            .skip(1) // the |---| line
            .take_while(|line| line.starts_with('|'));
        Some(
            rows.map(|row| {
                let cell = row.split('|').nth(1).unwrap_or_default().trim();
                cell.trim_matches('`').to_string()
            })
            .collect(),
        )
    }

    /// Keys in `documented` that the code lacks, and keys of the code that `documented` lacks.
    fn differences(documented: &BTreeSet<String>) -> (Vec<&str>, Vec<&str>) {
        let code: BTreeSet<&str> = SCENARIO_KEYS.iter().copied().collect();
        let extra = documented
            .iter()
            .map(String::as_str)
            .filter(|k| !code.contains(k))
            .collect();
        let missing = code
            .iter()
            .copied()
            .filter(|k| !documented.contains(*k))
            .collect();
        (extra, missing)
    }

    fn read(path: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    #[test]
    fn the_scenario_reference_documents_every_key_and_no_other() {
        let documented = documented_keys(&read("docs/scenarios.md"))
            .expect("docs/scenarios.md has a `| key | ...` table");
        let (extra, missing) = differences(&documented);
        assert!(
            extra.is_empty() && missing.is_empty(),
            "docs/scenarios.md's key table and src/scenario/keys.rs differ: documented but not \
             in the code: {extra:?}; in the code but not documented: {missing:?}"
        );
    }

    #[test]
    fn a_key_table_in_the_readme_would_be_held_to_the_code_too() {
        // The README links to docs/scenarios.md rather than listing the keys; should a table come
        // back, it must not fall behind.
        if let Some(documented) = documented_keys(&read("README.md")) {
            assert_eq!(
                differences(&documented),
                (vec![], vec![]),
                "README.md's key table"
            );
        }
    }

    #[test]
    fn the_init_templates_write_only_keys_the_code_reads() {
        // Commented-out keys included: a user uncomments them.
        let known: BTreeSet<&str> = SCENARIO_KEYS
            .iter()
            .chain(&super::TOP_LEVEL_KEYS)
            .chain(&crate::config::KEYS)
            .copied()
            .chain(crate::metric::Metric::ALL.map(crate::metric::Metric::name))
            .collect();
        for template in ["src/init/example.yaml", "src/init/leakcheck.yaml"] {
            let mut seen = 0;
            for line in read(template).lines() {
                let yaml = line.trim_start().trim_start_matches('#').trim_start();
                let yaml = yaml.strip_prefix("- ").unwrap_or(yaml);
                let Some((key, _)) = yaml.split_once(':') else {
                    continue;
                };
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    continue; // prose or Python, not a key
                }
                assert!(
                    known.contains(key),
                    "{template}: `{key}` is not a key leakcheck reads"
                );
                seen += 1;
            }
            assert!(
                seen >= 5,
                "{template}: only {seen} keys found; is the test still reading it?"
            );
        }
    }

    #[test]
    fn the_key_table_parser_reads_a_table() {
        let text = "intro\n\n| key | type |\n|---|---|\n| `name` | string |\n| `run` | Python |\n\nafter\n| `x` | y |\n";
        let keys = documented_keys(text).expect("a table");
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["name", "run"]);
        assert_eq!(documented_keys("no table here\n"), None);
    }
}
