//! The native-sites part of the accuracy bench: does the diagnosis of each native leak name the
//! call that leaks?
//!
//! The verdict parts run with `--no-diagnose`; this part runs the native leaks again with the
//! diagnosis on, with memray in the environment (the PyPI part's leaky venv) and, for the
//! synthetic ctypes leaks, without it (the embedded interpreter, where only leakcheck's malloc
//! recorder can name them). The line that leaks is marked in the corpus's source with a
//! `# native leak` comment (the workload's call into the extension, or the scenario's `run`
//! line); the top native site names it when its project line (the caller, else the innermost
//! Python frame) is that line. A leak of Python memory through ctypes (tag `python-memory`)
//! must get no native section at all.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use leakcheck::diagnosis::{NativeDiagnosis, NativeSource, PythonFrame};
use leakcheck::results::ScenarioResult;
use serde::Serialize;

/// The comment that marks the line of a native leak in the corpus.
const MARK: &str = "# native leak";

/// One batch of the part: scenarios, a `-k` selection, the interpreter, and what it is called.
pub struct Batch {
    pub scenarios: PathBuf,
    pub select: &'static str,
    pub python: Option<PathBuf>,
    /// `memray` or `no memray`: whether the environment has memray.
    pub memray: &'static str,
}

/// One scenario's native diagnosis in one run.
#[derive(Clone, Debug, Serialize)]
pub struct NativeOutcome {
    pub scenario: String,
    pub memray: &'static str,
    pub run: u32,
    /// Whether a native section was expected (a native leak) or not (Python memory).
    pub native_leak: bool,
    /// Whether there was a native section.
    pub section: bool,
    /// Whether its top site's project line is the marked one.
    pub named: bool,
    /// What recorded the sites: `memray` or `recorder`.
    pub source: Option<&'static str>,
    /// The top site's project line, as `file:line`.
    pub line: Option<String>,
    /// The top site's first native frames.
    pub frames: Vec<String>,
    /// The native window's cost, and the whole diagnosis's, in seconds.
    pub native_secs: f64,
    pub diagnosis_secs: f64,
}

/// Runs one batch with the diagnosis on, once, and reads its outcomes.
pub fn run(batch: &Batch, dir: &Path, seed: u32) -> Vec<NativeOutcome> {
    let seed_text = seed.to_string();
    let args = [
        batch.scenarios.as_os_str(),
        OsStr::new("-k"),
        OsStr::new(batch.select),
        OsStr::new("--seed"),
        OsStr::new(&seed_text),
    ];
    super::leakcheck_results(&args, batch.python.as_deref(), dir)
        .iter()
        .map(|s| outcome(s, batch.memray, seed))
        .collect()
}

fn outcome(s: &ScenarioResult, memray: &'static str, run: u32) -> NativeOutcome {
    let diagnosis = s.diagnosis.as_ref();
    let native: Option<&NativeDiagnosis> = diagnosis.and_then(|d| d.native.as_ref());
    let top = native.and_then(|n| n.sites.first());
    let line = top.and_then(|site| site.caller.as_ref().or(site.python.as_ref()));
    NativeOutcome {
        scenario: s.name.clone(),
        memray,
        run,
        native_leak: !s.tags.iter().any(|t| t == "python-memory"),
        section: native.is_some(),
        named: line.is_some_and(marked),
        source: native.map(|n| match n.source {
            NativeSource::Memray => "memray",
            NativeSource::Recorder => "recorder",
        }),
        line: line.map(|f| format!("{}:{}", shown(&f.file).display(), f.line)),
        frames: top.map_or_else(Vec::new, |site| {
            site.native
                .iter()
                .filter(|f| f.symbol != "…")
                .take(2)
                .map(|f| f.symbol.clone())
                .collect()
        }),
        native_secs: native.map_or(0.0, |n| n.cost_secs),
        diagnosis_secs: s.timings.as_ref().map_or(0.0, |t| t.diagnosis),
    }
}

/// The file a frame's code is in: a scenario's code blocks are named `<FILE [name] run>`.
fn shown(file: &str) -> PathBuf {
    let file = file
        .strip_prefix('<')
        .and_then(|rest| rest.split_once(" ["))
        .map_or(file, |(path, _)| path);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = Path::new(file);
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// Whether the frame's line carries the mark.
fn marked(frame: &PythonFrame) -> bool {
    let path = shown(&frame.file);
    let path = if path.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    } else {
        path
    };
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .nth((frame.line as usize).saturating_sub(1))
            .is_some_and(|line| line.contains(MARK))
    })
}

/// The part's table, as Markdown: per scenario and environment, the runs whose top site named
/// the marked line, what recorded it, the line and native frames (of the last run), and the
/// median cost.
pub fn render(outcomes: &[NativeOutcome], runs: u32) -> String {
    let mut keys: Vec<(&str, &str)> = outcomes
        .iter()
        .map(|o| (o.scenario.as_str(), o.memray))
        .collect();
    keys.dedup();
    keys.sort_unstable();
    keys.dedup();
    let mut text = format!(
        "Native sites: the native leaks diagnosed again with the diagnosis on, {runs} runs each; \
         \"named\" counts the runs whose top native site's project line is the call that leaks \
         (marked `{MARK}` in the corpus). Line and frames from the last run; costs are medians \
         (native window, whole diagnosis).\n\n\
         | scenario | environment | named | recorded by | line | top native frames | native window | diagnosis |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for (scenario, memray) in keys {
        let list: Vec<&NativeOutcome> = outcomes
            .iter()
            .filter(|o| o.scenario == scenario && o.memray == memray)
            .collect();
        let last = list[list.len() - 1];
        let named = if last.native_leak {
            format!("{}/{}", list.iter().filter(|o| o.named).count(), list.len())
        } else {
            let none = list.iter().filter(|o| !o.section).count();
            format!("no section {none}/{} (Python memory)", list.len())
        };
        text.push_str(&format!(
            "| {scenario} | {memray} | {named} | {} | {} | {} | {:.2} s | {:.2} s |\n",
            last.source.unwrap_or("—"),
            match (&last.line, last.section) {
                (Some(line), _) => line.as_str(),
                (None, true) => "(no Python frame)",
                (None, false) => "—",
            },
            if last.frames.is_empty() {
                "—".to_string()
            } else {
                last.frames.join(" ← ")
            },
            super::median(list.iter().map(|o| o.native_secs).collect()),
            super::median(list.iter().map(|o| o.diagnosis_secs).collect()),
        ));
    }
    text
}
