//! `results.json`: the versioned machine-readable record of a run ([`RunResults`]).

use std::io;

use anyhow::Result;
use serde::Serialize;
use serde_json::ser::Formatter;

use super::Exporter;
use crate::results::RunResults;

/// Pretty-printed JSON of the whole [`RunResults`], raw samples included.
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn file_name(&self) -> &'static str {
        "results.json"
    }

    fn render(&self, results: &RunResults) -> Result<Vec<u8>> {
        let mut bytes = to_vec_pretty(results)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// The bytes of `serde_json::to_vec_pretty`, written faster: see [`Pretty`].
pub fn to_vec_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, Pretty::default());
    value.serialize(&mut serializer)?;
    Ok(bytes)
}

/// Spaces for the deepest indentation written in one piece; deeper levels repeat it.
const SPACES: &[u8; 64] = b"                                                                ";

/// serde_json's `PrettyFormatter` (two spaces a level), byte for byte, but writing each
/// indentation in one piece: that one writes two spaces per level and call, which was most of
/// the time of a results.json whose samples sit seven levels deep (0.76 s for 100 scenarios ×
/// 10 000 samples).
#[derive(Default)]
struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    fn indent<W: ?Sized + io::Write>(&self, writer: &mut W) -> io::Result<()> {
        let mut left = 2 * self.depth;
        while left > 0 {
            let chunk = left.min(SPACES.len());
            writer.write_all(&SPACES[..chunk])?;
            left -= chunk;
        }
        Ok(())
    }

    fn open<W: ?Sized + io::Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + io::Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            writer.write_all(b"\n")?;
            self.indent(writer)?;
        }
        writer.write_all(bracket)
    }

    fn next<W: ?Sized + io::Write>(&self, writer: &mut W, first: bool) -> io::Result<()> {
        writer.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(writer)
    }
}

impl Formatter for Pretty {
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.next(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.next(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Nests `value` `depth` levels down, alternating objects and arrays.
    fn nested(depth: usize, value: Value) -> Value {
        (0..depth).fold(value, |inner, level| {
            if level % 2 == 0 {
                json!({ "level": level, "inner": inner, "empty": {}, "none": [] })
            } else {
                json!([
                    level,
                    inner,
                    [],
                    {},
                    [[]],
                    1.5e300,
                    -0.0,
                    "tab\there \"quoted\" é"
                ])
            }
        })
    }

    #[test]
    fn writes_the_bytes_of_serde_json_pretty() {
        let samples: Vec<(u64, f64)> = (0..50).map(|i| (i, 1e6 + 36.5 * i as f64)).collect();
        for value in [
            json!(null),
            json!([]),
            json!({}),
            json!({ "samples": samples, "nothing": null, "flag": true, "n": u64::MAX }),
            nested(5, json!(samples)),
            // Deeper than one piece of spaces: 40 levels of 2 spaces.
            nested(40, json!({ "deep": [1, 2, {"x": []}] })),
        ] {
            assert_eq!(
                String::from_utf8(to_vec_pretty(&value).unwrap()).unwrap(),
                serde_json::to_string_pretty(&value).unwrap()
            );
        }
    }
}
