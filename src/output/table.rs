//! Aligned text columns, like netstat.
use crate::record::{EndpointRecord, PoolStatus};
use crate::scan::ScanOutput;
use std::io::Write;

/// Writes `rows` under `headers` with every column padded to its widest cell (the last column is
/// not padded, so lines carry no trailing blanks).
pub fn write_table(
    w: &mut dyn Write,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(wd) = widths.get_mut(i) {
                *wd = (*wd).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::new();
        let cells: Vec<&str> = cells.collect();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{cell:<width$}  "));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(w, "{}", line(&mut headers.iter().copied()))?;
    for row in rows {
        writeln!(w, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

pub const HEADERS: [&str; 11] = [
    "Proto", "Local", "Remote", "State", "PID", "Process", "Created", "Tag", "Status", "Offset",
    "Flags",
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
        r.physical_offset.to_string(),
        if flags.is_empty() { dash() } else { flags },
    ]
}

/// The endpoints, then the corrupt candidates (`--include-corrupt`), one row each.
pub fn write_scan(out: &ScanOutput, w: &mut dyn Write) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = out
        .endpoints
        .iter()
        .chain(out.corrupt.iter())
        .map(row)
        .collect();
    write_table(w, &HEADERS, &rows)
}
