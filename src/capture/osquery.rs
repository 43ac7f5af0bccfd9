//! osquery `process_open_sockets` (`osqueryi --json`: every value a string): family 2/23, protocol
//! 6/17, no creation time.
use super::{field, json_text, json_u64, ParseContext};
use crate::error::Fault;
use crate::record::{CaptureRow, Family, Proto, TcpState};
use serde_json::{Map, Value};

pub fn parse_row(
    ctx: &mut ParseContext,
    line: u64,
    obj: &Map<String, Value>,
) -> Result<CaptureRow, Fault> {
    let proto =
        match json_u64(field(obj, "protocol").ok_or_else(|| Fault::missing("\"protocol\""))?)? {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            p => {
                return Err(fault!(
                    Value,
                    "protocol {p} is neither TCP (6) nor UDP (17)"
                ))
            }
        };
    let family = match field(obj, "family").map(json_u64).transpose()? {
        Some(2) => Some(Family::Ipv4),
        Some(23) | Some(10) => Some(Family::Ipv6),
        Some(0) | None => None,
        Some(f) => return Err(fault!(Value, "family {f} is neither 2 nor 23")),
    };
    let local =
        json_text(field(obj, "local_address").ok_or_else(|| Fault::missing("\"local_address\""))?)?;
    let local_port =
        json_u64(field(obj, "local_port").ok_or_else(|| Fault::missing("\"local_port\""))?)?;
    let remote = field(obj, "remote_address").map(json_text).transpose()?;
    let remote_port = field(obj, "remote_port").map(json_u64).transpose()?;
    let state = match field(obj, "state").map(json_text).transpose()? {
        Some(s) if !s.trim().is_empty() && proto == Proto::Tcp => {
            Some(TcpState::parse_any(&s).ok_or_else(|| fault!(Value, "unknown state {s:?}"))?)
        }
        _ => None,
    };
    let pid = field(obj, "pid").map(json_u64).transpose()?;
    // `path` is the executable; its file name is the process name.
    let process = field(obj, "path")
        .map(json_text)
        .transpose()?
        .and_then(|p| p.rsplit(['\\', '/']).next().map(str::to_string));
    ctx.row(
        line,
        proto,
        family,
        (&local, local_port),
        remote.as_deref().map(|r| (r, remote_port.unwrap_or(0))),
        state,
        pid,
        process,
        None,
    )
}
