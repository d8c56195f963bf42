//! A compact plain-text rendering of a [`Diagnosis`], shared by the terminal summary and the
//! JUnit output (one-line figures such as the top site live in `report::view`).

use super::{Diagnosis, NativeDiagnosis};
use crate::units::{Unit, format_bytes, format_quantity};

impl Diagnosis {
    /// A few lines per section, most telling first: allocation sites with their source line,
    /// growing types, referrer chains, hints, uncollectable garbage and notes.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.sites.is_empty() {
            lines.push(format!(
                "allocations that grew (over {} iterations):",
                self.iterations
            ));
            for site in self.sites.iter().take(3) {
                lines.push(format!(
                    "  {:>10}/iter  {}:{}",
                    format_bytes(site.bytes_per_iteration),
                    relative(&site.file),
                    site.line
                ));
                if let Some(code) = &site.code {
                    lines.push(format!("                  {code}"));
                }
                if let Some(caller) = &site.caller {
                    lines.push(format!(
                        "                  called from {}:{}{}",
                        relative(&caller.file),
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
                .map(|t| {
                    format!(
                        "{} +{}/iter",
                        t.type_name,
                        format_quantity(t.per_iteration, Unit::Count)
                    )
                })
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
        for hint in &self.hints {
            lines.push(format!("hint: {}", hint.message));
            lines.push(format!("      fix: {}", hint.fix));
        }
        let garbage = self.garbage.garbage_after as i64 - self.garbage.garbage_before as i64;
        if garbage > 0 {
            lines.push(format!(
                "gc.garbage grew by {garbage} uncollectable objects: {}",
                self.garbage.uncollectable_types.join(", ")
            ));
        }
        if let Some(native) = &self.native {
            lines.extend(native.summary_lines());
        }
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

/// `file` relative to the working directory when it lies under it: shorter, and clickable in
/// most terminals and editors.
fn relative(file: &str) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|dir| {
            std::path::Path::new(file)
                .strip_prefix(&dir)
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| file.to_string())
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
