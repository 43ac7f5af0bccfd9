//! Aligned text columns, like netstat.
use crate::record::{EndpointRecord, PoolStatus};
use crate::scan::ScanOutput;
use std::io::Write;

/// Longest a padded cell is shown (the whole value is in the JSON output): one long process name
/// must not push every other column off the screen.
pub const CELL_MAX_CHARS: usize = 64;
/// Longest the last, unpadded column (notes, flags) is shown.
const LAST_CELL_MAX_CHARS: usize = 512;

/// Writes `rows` under `headers` with every column padded to its widest cell (the last column is
/// not padded, so lines carry no trailing blanks). Every cell is cut and escaped
/// ([`super::text::cell`]): cells are evidence text.
pub fn write_table(
    w: &mut dyn Write,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let shown = |row: &mut dyn Iterator<Item = &str>| -> Vec<String> {
        let cells: Vec<&str> = row.collect();
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let max = if i == last {
                    LAST_CELL_MAX_CHARS
                } else {
                    CELL_MAX_CHARS
                };
                super::text::cell(c, max)
            })
            .collect()
    };
    let mut lines = vec![shown(&mut headers.iter().copied())];
    lines.extend(
        rows.iter()
            .map(|row| shown(&mut row.iter().map(String::as_str))),
    );
    let mut widths: Vec<usize> = vec![0; headers.len()];
    for line in &lines {
        for (i, cell) in line.iter().enumerate() {
            if let Some(wd) = widths.get_mut(i) {
                *wd = (*wd).max(cell.chars().count());
            }
        }
    }
    for cells in &lines {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                super::text::pad_into(&mut s, cell, widths.get(i).copied().unwrap_or(0));
                s.push_str("  ");
            }
        }
        writeln!(w, "{}", s.trim_end())?;
    }
    Ok(())
}

const HEADERS: [&str; 12] = [
    "Proto", "Local", "Remote", "State", "PID", "Process", "Created", "Tag", "Status", "Found",
    "Offset", "Flags",
];

fn row(r: &EndpointRecord) -> Vec<String> {
    let dash = || "-".to_string();
    let mut flags = r.flags.clone();
    if r.dual_stack {
        flags.insert(0, "dual_stack".to_string());
    }
    let status = match (&r.reason, r.pool_status) {
        (Some(_), _) => "corrupt",
        (None, PoolStatus::Allocated) => "allocated",
        (None, PoolStatus::Freed) => "freed",
    };
    let mut flags = flags.join(",");
    if let Some(reason) = &r.reason {
        if !flags.is_empty() {
            flags.push(' ');
        }
        flags.push_str(&format!("({reason})"));
    }
    vec![
        super::proto_label(r).to_string(),
        super::local_text(r),
        super::remote_text(r),
        r.state.map_or_else(dash, |s| s.name().to_string()),
        r.pid.map_or_else(dash, |p| p.to_string()),
        r.process.clone().unwrap_or_else(dash),
        r.create_time.clone().unwrap_or_else(dash),
        r.tag.clone(),
        status.to_string(),
        found_text(r).to_string(),
        r.physical_offset.to_string(),
        if flags.is_empty() { dash() } else { flags },
    ]
}

/// How the object was found, compactly: `pool+table`, `table` (the walk alone), `pool,unlinked`
/// (tables walked completely, not in them), `pool` (tables not walked).
fn found_text(r: &EndpointRecord) -> &'static str {
    use crate::record::FoundBy;
    match (r.found_by.as_slice(), r.linked) {
        ([FoundBy::Pool, FoundBy::Table], _) => "pool+table",
        ([FoundBy::Table], _) => "table",
        (_, Some(false)) => "pool,unlinked",
        _ => "pool",
    }
}

/// The endpoints, then the corrupt candidates (`--include-corrupt`), one row each.
pub fn write_scan(out: &ScanOutput, w: &mut dyn Write) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = out
        .endpoints
        .iter()
        .chain(out.corrupt.iter())
        .map(row)
        .collect();
    write_table(w, &HEADERS, &rows)?;
    if out.corrupt_omitted > 0 {
        writeln!(
            w,
            "... and {} more corrupt candidates, not listed",
            out.corrupt_omitted
        )?;
    }
    Ok(())
}
