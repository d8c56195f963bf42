//! Quantities with units: parsing tolerances like `"64 B"` or `"1 KiB"` from scenario files, and
//! printing growth figures such as `1.2 KiB/iter` for humans.
//!
//! Every metric is either a byte quantity or a plain count; keeping both behind [`Unit`] means the
//! parser, the terminal table and the reports all agree on how a number is written.

use serde::{Deserialize, Serialize};

/// What a metric's numbers measure, which decides how they are parsed and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Bytes, written with binary prefixes (`B`, `KiB`, `MiB`, `GiB`).
    Bytes,
    /// A dimensionless count (objects, blocks, file descriptors).
    Count,
}

const BYTE_SUFFIXES: &[(&str, f64)] = &[
    ("b", 1.0),
    ("kib", 1024.0),
    ("kb", 1000.0),
    ("k", 1024.0),
    ("mib", 1024.0 * 1024.0),
    ("mb", 1000.0 * 1000.0),
    ("m", 1024.0 * 1024.0),
    ("gib", 1024.0 * 1024.0 * 1024.0),
    ("gb", 1000.0 * 1000.0 * 1000.0),
    ("g", 1024.0 * 1024.0 * 1024.0),
    ("tib", 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("tb", 1000.0 * 1000.0 * 1000.0 * 1000.0),
    ("t", 1024.0 * 1024.0 * 1024.0 * 1024.0),
];

/// Parses a quantity such as `"64 B"`, `"1.5KiB"`, `"2 MB"` or `"3"` in the given unit.
///
/// Counts accept plain numbers only; bytes accept a plain number (bytes) or a number with a
/// binary (`KiB`) or decimal (`kB`) suffix. Negative values are rejected: a tolerance is an
/// allowance for growth, never a demand for shrinkage.
pub fn parse_quantity(text: &str, unit: Unit) -> Result<f64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number{}", unit_hint(unit)))?;
    let suffix = suffix.trim().to_ascii_lowercase();
    let factor = match unit {
        Unit::Count if suffix.is_empty() => 1.0,
        Unit::Count => {
            return Err(format!(
                "`{text}` should be a plain number (this metric counts)"
            ));
        }
        Unit::Bytes if suffix.is_empty() => 1.0,
        Unit::Bytes => BYTE_SUFFIXES
            .iter()
            .find(|(s, _)| *s == suffix)
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("`{text}` has an unknown unit{}", unit_hint(unit)))?,
    };
    let value = value * factor;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{text}` must be a finite value of zero or more"));
    }
    Ok(value)
}

fn unit_hint(unit: Unit) -> &'static str {
    match unit {
        Unit::Bytes => " (write e.g. `64 B`, `1 KiB`, `2 MiB`)",
        Unit::Count => " (write e.g. `0.5` or `3`)",
    }
}

/// Formats a byte quantity with a binary prefix and three significant figures, e.g. `1.21 KiB`.
pub fn format_bytes(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = if abs >= 1024.0 * 1024.0 * 1024.0 {
        (value / (1024.0 * 1024.0 * 1024.0), "GiB")
    } else if abs >= 1024.0 * 1024.0 {
        (value / (1024.0 * 1024.0), "MiB")
    } else if abs >= 1024.0 {
        (value / 1024.0, "KiB")
    } else {
        (value, "B")
    };
    format!("{} {suffix}", significant(scaled))
}

/// Formats a value in its unit: bytes with a prefix, counts as plain numbers.
pub fn format_quantity(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Bytes => format_bytes(value),
        Unit::Count => significant(value),
    }
}

/// Three significant figures without trailing noise: `1.21`, `12.1`, `121`, `0.00312`.
fn significant(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let abs = value.abs();
    let decimals = if abs >= 100.0 {
        0
    } else if abs >= 10.0 {
        1
    } else if abs >= 1.0 {
        2
    } else {
        // Keep three significant digits for small fractions, capped to stay readable.
        ((-abs.log10()).floor() as usize + 3).min(6)
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bytes_with_and_without_suffix() {
        assert_eq!(parse_quantity("64 B", Unit::Bytes), Ok(64.0));
        assert_eq!(parse_quantity("64", Unit::Bytes), Ok(64.0));
        assert_eq!(parse_quantity("1 KiB", Unit::Bytes), Ok(1024.0));
        assert_eq!(
            parse_quantity("1.5MiB", Unit::Bytes),
            Ok(1.5 * 1024.0 * 1024.0)
        );
        assert_eq!(parse_quantity("2 kB", Unit::Bytes), Ok(2000.0));
    }

    #[test]
    fn rejects_bad_quantities() {
        assert!(parse_quantity("lots", Unit::Bytes).is_err());
        assert!(parse_quantity("1 parsec", Unit::Bytes).is_err());
        assert!(parse_quantity("-1 B", Unit::Bytes).is_err());
        assert!(parse_quantity("3 KiB", Unit::Count).is_err());
        assert_eq!(parse_quantity("0.5", Unit::Count), Ok(0.5));
    }

    #[test]
    fn formats_human_units() {
        assert_eq!(format_bytes(0.0), "0 B");
        assert_eq!(format_bytes(48.0), "48 B");
        assert_eq!(format_bytes(1239.0), "1.21 KiB");
        assert_eq!(format_bytes(3.0 * 1024.0 * 1024.0), "3 MiB");
        assert_eq!(format_bytes(-2048.0), "-2 KiB");
        assert_eq!(format_quantity(0.25, Unit::Count), "0.25");
        assert_eq!(format_quantity(0.000312, Unit::Count), "0.000312");
    }
}
