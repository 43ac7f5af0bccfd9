//! Velociraptor `Windows.Network.Netstat` rows (JSON array or JSONL): dotted keys `Laddr.IP`, whole
//! seconds UTC, `ESTAB`-style states. The raw `netstat()` plugin's nested `Laddr: {IP, Port}` also works.
use super::{field, json_text, json_u64, ParseContext};
use crate::error::Fault;
use crate::record::{CaptureRow, Family, Proto, TcpState};
use serde_json::{Map, Value};

/// `Laddr.IP` or `Laddr: {"IP": ..}`.
fn endpoint_part<'v>(obj: &'v Map<String, Value>, side: &str, part: &str) -> Option<&'v Value> {
    field(obj, &format!("{side}.{part}")).or_else(|| field(field(obj, side)?.as_object()?, part))
}

pub fn parse_row(
    ctx: &mut ParseContext,
    line: u64,
    obj: &Map<String, Value>,
) -> Result<CaptureRow, Fault> {
    let proto_text = json_text(field(obj, "Type").ok_or_else(|| Fault::missing("\"Type\""))?)?;
    let proto = match proto_text.trim().to_ascii_uppercase().as_str() {
        t if t.starts_with("TCP") => Proto::Tcp,
        t if t.starts_with("UDP") => Proto::Udp,
        _ => return Err(fault!(Value, "unknown Type {proto_text:?}")),
    };
    let family = match field(obj, "Family").map(json_text).transpose()? {
        Some(f) => match f.trim().to_ascii_lowercase().as_str() {
            "ipv4" | "2" => Some(Family::Ipv4),
            "ipv6" | "23" => Some(Family::Ipv6),
            "" => None,
            _ => return Err(fault!(Value, "unknown Family {f:?}")),
        },
        None => None,
    };
    let local = json_text(
        endpoint_part(obj, "Laddr", "IP").ok_or_else(|| Fault::missing("\"Laddr.IP\""))?,
    )?;
    let local_port = json_u64(
        endpoint_part(obj, "Laddr", "Port").ok_or_else(|| Fault::missing("\"Laddr.Port\""))?,
    )?;
    let remote = endpoint_part(obj, "Raddr", "IP")
        .map(json_text)
        .transpose()?;
    let remote_port = endpoint_part(obj, "Raddr", "Port")
        .map(json_u64)
        .transpose()?;
    let state = match field(obj, "Status").map(json_text).transpose()? {
        Some(s) if !s.trim().is_empty() && proto == Proto::Tcp => {
            Some(TcpState::parse_any(&s).ok_or_else(|| fault!(Value, "unknown Status {s:?}"))?)
        }
        _ => None,
    };
    let pid = field(obj, "Pid").map(json_u64).transpose()?;
    let process = field(obj, "Name").map(json_text).transpose()?;
    let time = match field(obj, "Timestamp") {
        // Some exports carry epoch seconds instead of text.
        Some(Value::Number(n)) => {
            let secs = n
                .as_i64()
                .ok_or_else(|| fault!(Value, "bad Timestamp {n}"))?;
            let raw = crate::filetime::from_unix_parts(secs, 0)
                .ok_or_else(|| fault!(Value, "Timestamp {secs} out of range"))?;
            ctx.tz_used.insert("utc");
            Some((raw, super::Precision::Second))
        }
        Some(v) => {
            let text = json_text(v)?;
            if text.trim().is_empty() {
                None
            } else {
                Some(ctx.parse_date(&text)?)
            }
        }
        None => None,
    };
    ctx.row(
        line,
        proto,
        family,
        (&local, local_port),
        remote.as_deref().map(|r| (r, remote_port.unwrap_or(0))),
        state,
        pid,
        process,
        time,
    )
}
