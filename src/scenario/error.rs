//! The one error type of scenario loading: a problem in a scenario file, with its place.
//!
//! Users fix scenario files by jumping to `file:line:column` in an editor, so every error carries
//! the file and, whenever it is known, the line, column and key. The message is written to stand
//! alone after that prefix and already names the key.

use std::fmt;
use std::path::{Path, PathBuf};

use super::yaml::Pos;

/// A problem found while discovering, reading or validating scenario files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file (or directory, for discovery problems) the problem is in, as the user named it.
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when the problem has a place in the file.
    pub line: Option<usize>,
    /// 1-based column on that line, when known.
    pub column: Option<usize>,
    /// The scenario key involved (e.g. `iterations`, `tolerance`), for tools that group errors.
    pub key: Option<String>,
    /// What is wrong and, where possible, how to fix it; lower-case, no trailing period.
    pub message: String,
}

impl ScenarioError {
    /// An error about a whole file or directory, with no position inside it.
    pub(crate) fn in_file(file: &Path, message: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error at a position in a file, optionally about a key.
    pub(crate) fn at(file: &Path, pos: Pos, key: Option<&str>, message: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_path_buf(),
            line: Some(pos.line),
            column: Some(pos.column),
            key: key.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for ScenarioError {
    /// Writes `file:line:column: message`, leaving out the parts that are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leaves_out_unknown_parts() {
        let file = Path::new("scenarios/x.yaml");
        let full = ScenarioError::at(file, Pos { line: 5, column: 3 }, Some("iteratons"), "oops");
        assert_eq!(full.to_string(), "scenarios/x.yaml:5:3: oops");
        assert_eq!(full.key.as_deref(), Some("iteratons"));

        let no_column = ScenarioError {
            column: None,
            ..full.clone()
        };
        assert_eq!(no_column.to_string(), "scenarios/x.yaml:5: oops");

        let whole_file = ScenarioError::in_file(file, "file is empty");
        assert_eq!(whole_file.to_string(), "scenarios/x.yaml: file is empty");
    }
}
