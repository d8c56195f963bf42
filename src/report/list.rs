//! What `leakcheck list` prints: the selected scenarios, one line each for people, or a JSON
//! array for tools. Not an [`Exporter`](super::Exporter): it renders scenarios before any run,
//! so it has no [`RunView`](super::view::RunView) to render.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::scenario::{Expect, Scenario};

/// One scenario of `list --format json`, a machine format that scripts read: its keys are this
/// struct's fields, so they change only when someone changes the type. The fields are declared
/// in alphabetical order because that is the order the output has always had (it was a
/// `serde_json::json!` map, which sorts its keys), and a script comparing outputs sees none.
#[derive(Debug, PartialEq, Serialize)]
pub struct Listed<'s> {
    /// The scenario's `description`, `null` without one.
    pub description: Option<&'s str>,
    /// `pass` or `leak`.
    pub expect: Expect,
    /// The scenario file, as the selection found it.
    pub file: &'s Path,
    /// Line of the scenario in its file.
    pub line: usize,
    /// Unique scenario name.
    pub name: &'s str,
    /// The scenario's `tags`.
    pub tags: &'s [String],
}

impl<'s> From<&'s Scenario> for Listed<'s> {
    fn from(s: &'s Scenario) -> Listed<'s> {
        Listed {
            description: s.description.as_deref(),
            expect: s.expect,
            file: &s.file,
            line: s.line,
            name: &s.name,
            tags: &s.tags,
        }
    }
}

/// `name  file:line  [expect: leak]`, a line per scenario.
pub fn write_text(scenarios: &[Scenario], out: &mut dyn Write) -> Result<()> {
    for s in scenarios {
        let expect = match s.expect {
            Expect::Leak => "  [expect: leak]",
            Expect::Pass => "",
        };
        writeln!(out, "{}  {}:{}{}", s.name, s.file.display(), s.line, expect)?;
    }
    Ok(())
}

/// A pretty-printed JSON array of [`Listed`], and a newline.
pub fn write_json(scenarios: &[Scenario], out: &mut dyn Write) -> Result<()> {
    let listed: Vec<Listed> = scenarios.iter().map(Listed::from).collect();
    serde_json::to_writer_pretty(&mut *out, &listed)?;
    writeln!(out)?;
    Ok(())
}
