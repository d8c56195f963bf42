//! A [`Diagnosis`] in words, computed once into a [`DiagnosisView`]: the HTML report lays its
//! parts out in tables, and [`DiagnosisView::lines`] renders the compact plain text of the
//! terminal summary and the JUnit output (one-line figures such as the top site live in
//! `report::view`).

use super::{Diagnosis, Frame, NativeDiagnosis};
use crate::units::{Unit, format_bytes, format_quantity};

/// What a diagnosis found, worded for every report.
pub struct DiagnosisView {
    /// Iterations between the two checkpoints, the divisor of every per-iteration figure.
    pub iterations: u64,
    /// Hints as (what was observed, the fix).
    pub hints: Vec<(String, String)>,
    /// Allocation sites, most bytes grown first.
    pub sites: Vec<SiteView>,
    /// Growing types, most grown first.
    pub types: Vec<TypeView>,
    /// Referrer chains.
    pub chains: Vec<ChainView>,
    /// `gc.garbage` at the window's two checkpoints, in a sentence.
    pub garbage: String,
    /// How many objects `gc.garbage` gained over the window (negative when it lost some).
    pub garbage_growth: i64,
    /// Types of the uncollectable objects, most frequent first.
    pub uncollectable_types: Vec<String>,
    /// `generation 0: 3 collections, 10 collected, 0 uncollectable`, one a generation.
    pub generations: Vec<String>,
    /// What limited the diagnosis.
    pub notes: Vec<String>,
    /// The native window's section (empty when it did not run).
    pub native: Vec<String>,
    /// Where the figures come from and what diagnosing cost.
    pub footer: String,
}

/// One allocation site.
pub struct SiteView {
    /// The allocating line's file, as Python names it, relative to the working directory when
    /// it lies under it (see [`relative`]).
    pub file: String,
    /// Its line.
    pub line: u32,
    /// The allocating line's source text (trimmed), or empty.
    pub code: String,
    /// The first frame outside the standard library, when the allocation is inside it.
    pub caller: Option<FrameView>,
    /// Bytes grown per iteration, e.g. `36 B`.
    pub rate: String,
    /// `+720 B, +20 blocks in 20 iterations`.
    pub total: String,
    /// The stack, innermost first: `app.py:2  log.info(x)`.
    pub stack: Vec<String>,
}

/// A frame of an allocation stack.
pub struct FrameView {
    /// The file as Python names it, relative like [`SiteView::file`].
    pub file: String,
    /// Its line.
    pub line: u32,
    /// Its source text (trimmed), when known.
    pub code: Option<String>,
}

/// A growing type.
pub struct TypeView {
    /// Qualified name.
    pub name: String,
    /// Live objects at the first checkpoint.
    pub before: u64,
    /// Live objects at the last checkpoint.
    pub after: u64,
    /// Objects gained per iteration, e.g. `1`.
    pub rate: String,
}

/// A referrer chain.
pub struct ChainView {
    /// The leaked object's type.
    pub type_name: String,
    /// The kind of root reached, in words: `module global`, `none`, …
    pub root_kind: String,
    /// The chain in one line.
    pub text: String,
    /// Why the search stopped short of a root.
    pub note: Option<String>,
}

impl FrameView {
    fn new(frame: &Frame) -> FrameView {
        FrameView {
            file: relative(&frame.file),
            line: frame.line,
            code: frame.code.as_deref().map(|code| code.trim().to_string()),
        }
    }

    /// `app.py:2: log.info(x)`, or `app.py:2` without source.
    pub fn text(&self) -> String {
        match &self.code {
            Some(code) => format!("{}:{}: {code}", self.file, self.line),
            None => format!("{}:{}", self.file, self.line),
        }
    }
}

impl SiteView {
    /// `file:line` of the allocating line.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The site in one line, with the user's calling line when the allocation happens in the
    /// standard library: `…/logging/__init__.py:311 +96 B/iter: self.msg = msg (called from
    /// shop/audit.py:12)`; what CI systems show beside a failure.
    pub fn one_line(&self) -> String {
        let mut line = format!("{} +{}/iter", self.location(), self.rate);
        if !self.code.is_empty() {
            line.push_str(": ");
            line.push_str(&self.code);
        }
        if let Some(caller) = &self.caller {
            line.push_str(&format!(" (called from {}:{})", caller.file, caller.line));
        }
        line
    }
}

impl DiagnosisView {
    /// Words every part of `d` once.
    pub fn new(d: &Diagnosis) -> DiagnosisView {
        let g = &d.garbage;
        let mut garbage = format!(
            "gc.garbage held {} object(s) at the diagnosis window's first checkpoint and {} at its last",
            g.garbage_before, g.garbage_after
        );
        if g.garbage_after > g.garbage_before {
            garbage.push_str(": uncollectable cycles (objects with finalizers) accumulate");
        }
        DiagnosisView {
            iterations: d.iterations,
            hints: d
                .hints
                .iter()
                .map(|h| (h.message.clone(), h.fix.clone()))
                .collect(),
            sites: d
                .sites
                .iter()
                .map(|s| SiteView {
                    file: relative(&s.file),
                    line: s.line,
                    code: s.code.as_deref().unwrap_or_default().trim().to_string(),
                    caller: s.caller.as_ref().map(FrameView::new),
                    rate: format_bytes(s.bytes_per_iteration),
                    total: format!(
                        "{:+} B, {:+} blocks in {} iterations",
                        s.size_diff, s.count_diff, d.iterations
                    ),
                    stack: s
                        .stack
                        .iter()
                        .map(|f| match &f.code {
                            Some(code) => {
                                format!("{}:{}  {}", relative(&f.file), f.line, code.trim())
                            }
                            None => format!("{}:{}", relative(&f.file), f.line),
                        })
                        .collect(),
                })
                .collect(),
            types: d
                .types
                .iter()
                .map(|t| TypeView {
                    name: t.type_name.clone(),
                    before: t.before,
                    after: t.after,
                    rate: format_quantity(t.per_iteration, Unit::Count),
                })
                .collect(),
            chains: d
                .chains
                .iter()
                .map(|c| ChainView {
                    type_name: c.type_name.clone(),
                    root_kind: c.root_kind.replace('_', " "),
                    text: c.text.clone(),
                    note: c.note.clone(),
                })
                .collect(),
            garbage,
            garbage_growth: g.garbage_after as i64 - g.garbage_before as i64,
            uncollectable_types: g.uncollectable_types.clone(),
            generations: g
                .generations
                .iter()
                .map(|s| {
                    format!(
                        "generation {}: {} collections, {} collected, {} uncollectable",
                        s.generation, s.collections, s.collected, s.uncollectable
                    )
                })
                .collect(),
            notes: d.notes.clone(),
            native: d
                .native
                .as_ref()
                .map(NativeDiagnosis::summary_lines)
                .unwrap_or_default(),
            footer: format!(
                "over the diagnosis window after the measured run, between its two checkpoints \
                 ({} iterations); diagnosing took {:.2} s",
                d.iterations, d.cost_secs
            ),
        }
    }

    /// A few lines per section, most telling first: allocation sites with their source line,
    /// growing types, referrer chains, hints, uncollectable garbage, the native window and
    /// notes.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.sites.is_empty() {
            lines.push(format!(
                "allocations that grew (over {} iterations):",
                self.iterations
            ));
            for site in self.sites.iter().take(3) {
                lines.push(format!("  {:>10}/iter  {}", site.rate, site.location()));
                if !site.code.is_empty() {
                    lines.push(format!("                  {}", site.code));
                }
                if let Some(caller) = &site.caller {
                    lines.push(format!(
                        "                  called from {}:{}{}",
                        caller.file,
                        caller.line,
                        caller
                            .code
                            .as_ref()
                            .map(|c| format!(": {c}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        if !self.types.is_empty() {
            let types: Vec<String> = self
                .types
                .iter()
                .take(5)
                .map(|t| format!("{} +{}/iter", t.name, t.rate))
                .collect();
            lines.push(format!("types that grew: {}", types.join(", ")));
        }
        for chain in self.chains.iter().take(3) {
            match &chain.note {
                Some(note) => lines.push(format!(
                    "held by: (no root found for a {}: {note})",
                    chain.type_name
                )),
                None => lines.push(format!("held by: {}", chain.text)),
            }
        }
        for (message, fix) in &self.hints {
            lines.push(format!("hint: {message}"));
            lines.push(format!("      fix: {fix}"));
        }
        if self.garbage_growth > 0 {
            lines.push(format!(
                "gc.garbage grew by {} uncollectable objects: {}",
                self.garbage_growth,
                self.uncollectable_types.join(", ")
            ));
        }
        lines.extend(self.native.iter().cloned());
        for note in &self.notes {
            lines.push(format!("note: {note}"));
        }
        lines
    }
}

impl NativeDiagnosis {
    /// The native sites, each with its bytes per iteration, the Python line that called into
    /// native code (and the scenario's line when that one is in a library), and its top native
    /// frames, innermost first.
    pub fn summary_lines(&self) -> Vec<String> {
        let [short, long] = self.windows;
        let mut lines = vec![format!(
            "native allocations that grew (memray {}, windows of {short} and {long} iterations, {:.1} s):",
            self.memray_version, self.cost_secs
        )];
        if self.sites.is_empty() {
            lines.push("  none grew with the window".to_string());
        }
        for site in self.sites.iter().take(3) {
            let python = site.python.as_ref().map_or_else(
                || "(no Python frame)".to_string(),
                |f| format!("{}:{} in {}", relative(&f.file), f.line, f.function),
            );
            lines.push(format!(
                "  {:>10}/iter  {python}",
                format_bytes(site.bytes_per_iteration)
            ));
            if let Some(caller) = site
                .caller
                .as_ref()
                .filter(|c| Some(*c) != site.python.as_ref())
            {
                lines.push(format!(
                    "                  called from {}:{}",
                    relative(&caller.file),
                    caller.line
                ));
            }
            let frames: Vec<String> = site
                .native
                .iter()
                .take(4)
                .map(|f| match f.file.as_str() {
                    "" => f.symbol.clone(),
                    file => format!("{} ({file})", f.symbol),
                })
                .collect();
            if !frames.is_empty() {
                lines.push(format!("                  native: {}", frames.join(" ← ")));
            }
        }
        lines
    }
}

/// `file` relative to the working directory when it lies under it: shorter, clickable in most
/// terminals and editors, and the same in a report read on another machine; worked out once
/// here, so that every report shows the same path.
fn relative(file: &str) -> String {
    crate::input::shown(std::path::Path::new(file))
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::{NativeFrame, NativeSite, PythonFrame};

    fn frame(file: &str, line: u32, function: &str) -> PythonFrame {
        PythonFrame {
            file: file.to_string(),
            line,
            function: function.to_string(),
        }
    }

    #[test]
    fn a_native_site_shows_its_rate_python_line_caller_and_c_frames() {
        let native = NativeDiagnosis {
            memray_version: "1.20.0".to_string(),
            windows: [20, 60],
            sites: vec![NativeSite {
                bytes_per_iteration: 16384.0,
                allocations_per_iteration: 1.0,
                python: Some(frame("/venv/PIL/ImageFile.py", 268, "load")),
                caller: Some(frame("/elsewhere/work.py", 107, "decode")),
                native: vec![
                    NativeFrame {
                        symbol: "ImagingSgiRleDecode".to_string(),
                        file: "src/libImaging/SgiRleDecode.c:190".to_string(),
                    },
                    NativeFrame {
                        symbol: "helper".to_string(),
                        file: String::new(),
                    },
                ],
            }],
            cost_secs: 1.04,
        };
        assert_eq!(
            native.summary_lines(),
            [
                "native allocations that grew (memray 1.20.0, windows of 20 and 60 iterations, 1.0 s):",
                "      16 KiB/iter  /venv/PIL/ImageFile.py:268 in load",
                "                  called from /elsewhere/work.py:107",
                "                  native: ImagingSgiRleDecode (src/libImaging/SgiRleDecode.c:190) ← helper",
            ]
        );
    }

    #[test]
    fn a_window_that_found_nothing_says_so() {
        let native = NativeDiagnosis {
            memray_version: "1.20.0".to_string(),
            windows: [10, 30],
            ..NativeDiagnosis::default()
        };
        assert_eq!(native.summary_lines()[1], "  none grew with the window");
    }
}
