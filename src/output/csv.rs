//! CSV: a header row of the record field names, one row per record; null is an empty cell, flags
//! are joined with `;`. Cells are escaped and neutralised as formulas ([`super::text::csv_cell`]).
use crate::record::EndpointRecord;
use crate::scan::ScanOutput;
use std::io::Write;

pub const COLUMNS: [&str; 20] = [
    "proto",
    "family",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
    "state",
    "dual_stack",
    "pid",
    "process",
    "create_time",
    "create_time_raw",
    "tag",
    "pool_status",
    "physical_offset",
    "virtual_address",
    "found_by",
    "linked",
    "flags",
    "reason",
];

fn cells(r: &EndpointRecord) -> [String; 20] {
    fn opt<T: ToString>(v: &Option<T>) -> String {
        v.as_ref().map(ToString::to_string).unwrap_or_default()
    }
    // serde's spelling of the enums, so CSV and JSON agree.
    fn name<T: serde::Serialize>(v: &T) -> String {
        match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => s,
            _ => String::new(),
        }
    }
    [
        name(&r.proto),
        name(&r.family),
        r.local_addr.clone(),
        r.local_port.to_string(),
        opt(&r.remote_addr),
        opt(&r.remote_port),
        r.state.map(|s| s.name().to_string()).unwrap_or_default(),
        r.dual_stack.to_string(),
        opt(&r.pid),
        opt(&r.process),
        opt(&r.create_time),
        opt(&r.create_time_raw),
        r.tag.clone(),
        name(&r.pool_status),
        r.physical_offset.to_string(),
        opt(&r.virtual_address),
        r.found_by.iter().map(name).collect::<Vec<_>>().join(";"),
        opt(&r.linked),
        r.flags.join(";"),
        opt(&r.reason),
    ]
}

pub fn write_scan(out: &ScanOutput, w: &mut dyn Write) -> std::io::Result<()> {
    let mut writer = ::csv::Writer::from_writer(w);
    writer.write_record(COLUMNS).map_err(super::csv_io)?;
    for r in out.endpoints.iter().chain(out.corrupt.iter()) {
        // Every cell is text we wrote or evidence text; none is a negative number.
        let cells = cells(r);
        writer
            .write_record(cells.iter().map(|c| super::text::csv_cell(c)))
            .map_err(super::csv_io)?;
    }
    writer.flush()
}
