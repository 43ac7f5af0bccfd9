//! Timeline formats: bodyfile (mactime 3.x) and Timesketch JSONL. Only endpoints with a non-zero
//! create time appear: a timeline entry needs a time, and FILETIME 0 (1601) is a missing value, not
//! an event (the record formats still show it, flagged `zero_time`).
use crate::filetime::{TICKS_PER_SECOND, UNIX_EPOCH_TICKS};
use crate::record::EndpointRecord;
use crate::scan::ScanOutput;
use std::io::Write;

fn timed(out: &ScanOutput) -> impl Iterator<Item = (&EndpointRecord, u64)> {
    out.endpoints
        .iter()
        .filter_map(|r| r.create_time_raw.filter(|&t| t != 0).map(|t| (r, t)))
}

/// Unix seconds (floored) of a FILETIME; `None` before 1970, which mactime cannot show.
fn unix_seconds(filetime: u64) -> Option<i64> {
    let ticks = filetime as i128 - UNIX_EPOCH_TICKS;
    (ticks >= 0)
        .then(|| i64::try_from(ticks.div_euclid(TICKS_PER_SECOND)).ok())
        .flatten()
}

/// `MD5|name|inode|mode|UID|GID|size|atime|mtime|ctime|crtime`, the create time as crtime. mactime
/// has whole seconds, so the name carries the full-precision time.
pub fn write_bodyfile(out: &ScanOutput, w: &mut dyn Write) -> std::io::Result<()> {
    for (r, raw) in timed(out) {
        let Some(secs) = unix_seconds(raw) else {
            continue;
        };
        // `|` separates bodyfile fields, so it is escaped with the control characters.
        let name = format!(
            "netcarve: {} created {}",
            super::describe(r),
            r.create_time.as_deref().unwrap_or("?")
        );
        let name = super::text::escape_also(&name, &['|']);
        writeln!(w, "0|{name}|0|0|0|0|0|0|0|0|{secs}")?;
    }
    Ok(())
}

/// Timesketch JSONL: `message`, `datetime`, `timestamp` (µs), `timestamp_desc`, and the record's
/// own fields.
pub fn write_timesketch(out: &ScanOutput, w: &mut dyn Write) -> std::io::Result<()> {
    for (r, raw) in timed(out) {
        let Some(datetime) = r.create_time.clone() else {
            continue;
        };
        let mut obj = match serde_json::to_value(r)? {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let micros = (raw as i128 - UNIX_EPOCH_TICKS).div_euclid(10);
        obj.insert("message".into(), super::describe(r).into());
        obj.insert("datetime".into(), datetime.into());
        obj.insert(
            "timestamp".into(),
            i64::try_from(micros).unwrap_or(i64::MIN).into(),
        );
        obj.insert("timestamp_desc".into(), "Endpoint Created".into());
        serde_json::to_writer(&mut *w, &obj)?;
        writeln!(w)?;
    }
    Ok(())
}
