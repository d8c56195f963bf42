//! `results.json`: the versioned machine-readable record of a run ([`RunResults`]).

use anyhow::Result;

use super::Exporter;
use crate::results::RunResults;

/// Pretty-printed JSON of the whole [`RunResults`], raw samples included.
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn file_name(&self) -> &'static str {
        "results.json"
    }

    fn render(&self, results: &RunResults) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(results)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
