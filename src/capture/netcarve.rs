//! netcarve's own capture JSON (docs/capture-format.md): raw FILETIMEs, MIB states, collection time.
use super::{field, json_kind, json_text, json_u64, Capture, ParseContext, Precision};
use crate::error::Fault;
use crate::record::{Family, Proto, TcpState};
use serde_json::{Map, Value};

/// Parses the whole object. Rows are numbered 1.. over `tcp` then `udp`; a bad row is kept as
/// unreadable with a warning (`super::record_unreadable`).
pub fn parse(
    ctx: &mut ParseContext,
    top: &Map<String, Value>,
    capture: &mut Capture,
) -> Result<(), Fault> {
    if let Some(v) = field(top, "version") {
        let version = json_u64(v).map_err(|m| fault!(Value, "\"version\": {m}"))?;
        if version != 1 {
            return Err(fault!(
                Structure,
                "capture version {version} is not supported (1 is)"
            ));
        }
    }
    capture.collected_raw = match field(top, "collected_raw") {
        Some(v) => Some(json_u64(v).map_err(|m| fault!(Value, "\"collected_raw\": {m}"))?),
        None => None,
    };
    capture.host = field(top, "host").and_then(|v| json_text(v).ok());
    capture.utc_offset_minutes = field(top, "utc_offset_minutes").and_then(Value::as_i64);
    let mut line = 0u64;
    let mut first_error = None;
    let mut total = 0usize;
    for (key, proto) in [("tcp", Proto::Tcp), ("udp", Proto::Udp)] {
        let rows = match field(top, key) {
            None => continue,
            Some(Value::Array(rows)) => rows,
            Some(other) => {
                return Err(fault!(
                    Structure,
                    "\"{key}\" is {}, not an array",
                    json_kind(other)
                ))
            }
        };
        for value in rows {
            line += 1;
            total += 1;
            let result = match value {
                Value::Object(obj) => parse_row(ctx, line, proto, obj),
                other => Err(fault!(
                    Structure,
                    "expected an object, found {}",
                    json_kind(other)
                )),
            };
            match result {
                Ok(row) => capture.rows.push(row),
                Err(m) => {
                    let what = format!("{key} row {line}");
                    first_error.get_or_insert_with(|| m.clone().at(what.to_string()));
                    let partial = || {
                        super::salvage(value.as_object()?, |obj| parse_row(ctx, line, proto, obj))
                    };
                    super::record_unreadable(capture, &what, line, Some(proto), &m, partial);
                }
            }
        }
    }
    if capture.rows.is_empty() && total > 0 {
        return Err(first_error.unwrap_or_else(|| fault!(Structure, "no usable rows")));
    }
    // Raw FILETIMEs are UTC by definition.
    ctx.tz_used.insert("utc");
    Ok(())
}

fn parse_row(
    ctx: &mut ParseContext,
    line: u64,
    proto: Proto,
    obj: &Map<String, Value>,
) -> Result<crate::record::CaptureRow, Fault> {
    let need = |k: &str| field(obj, k).ok_or_else(|| Fault::missing(format!("\"{k}\"")));
    let family = match field(obj, "family").map(json_text).transpose()? {
        Some(f) => Some(match f.to_ascii_lowercase().as_str() {
            "ipv4" | "2" => Family::Ipv4,
            "ipv6" | "23" => Family::Ipv6,
            _ => return Err(fault!(Value, "unknown family {f:?}")),
        }),
        None => None,
    };
    let local_addr = json_text(need("local_addr")?)?;
    let local_port = json_u64(need("local_port")?)?;
    let remote_addr = field(obj, "remote_addr").map(json_text).transpose()?;
    let remote_port = field(obj, "remote_port").map(json_u64).transpose()?;
    let state = match (proto, field(obj, "state")) {
        (Proto::Tcp, Some(v)) => {
            let mib = json_u64(v)?;
            Some(
                u32::try_from(mib)
                    .ok()
                    .and_then(TcpState::from_mib)
                    .ok_or_else(|| fault!(Value, "state {mib} is not a MIB_TCP_STATE (1-12)"))?,
            )
        }
        _ => None,
    };
    let pid = field(obj, "pid").map(json_u64).transpose()?;
    let process = field(obj, "process").map(json_text).transpose()?;
    let time = field(obj, "create_time_raw")
        .map(json_u64)
        .transpose()?
        .map(|raw| (raw, Precision::Tick));
    let remote = remote_addr
        .as_deref()
        .map(|a| (a, remote_port.unwrap_or(0)));
    ctx.row(
        line,
        proto,
        family,
        (&local_addr, local_port),
        remote,
        state,
        pid,
        process,
        time,
    )
}
