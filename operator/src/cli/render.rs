//! Output: kubectl-style tables, or JSON with `-o json`.

use super::{CliError, Out};
use serde::Serialize;

/// `-` for a value that is absent.
pub(super) fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

/// kubectl-style columns: upper-case headers, three spaces between columns.
pub(super) fn table(out: Out<'_>, headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            line.push_str(cell);
            if i < last {
                line.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        line.trim_end().to_string()
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Pretty JSON, object keys in alphabetical order (through `Value`, whose maps sort).
pub(super) fn json_out(out: Out<'_>, value: &impl Serialize) -> Result<(), CliError> {
    let value = serde_json::to_value(value)?;
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

/// A number as JSON writes it (`5.0`, `0.042`, `60`), as a table cell.
pub(super) fn number(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
