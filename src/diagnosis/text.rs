//! A compact plain-text rendering of a [`Diagnosis`], shared by the terminal summary and the
//! JUnit output (one-line figures such as the top site live in `report::view`).

use super::Diagnosis;
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
        for note in &self.notes {
            lines.push(format!("note: {note}"));
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
