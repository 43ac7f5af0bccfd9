//! Get-NetTCPConnection / Get-NetUDPEndpoint through ConvertTo-Json: `OwningProcess`,
//! `CreationTime` in either PowerShell's date form, `State` as a name or number (Bound = 100).
use super::ps::{date_text, parse_state};
use super::{field, json_text, json_u64, ParseContext};
use crate::record::{CaptureRow, Proto};
use serde_json::{Map, Value};

pub fn parse_row(
    ctx: &mut ParseContext,
    line: u64,
    obj: &Map<String, Value>,
) -> Result<CaptureRow, String> {
    // UDP endpoints have neither a remote side nor a state.
    let proto = if field(obj, "RemoteAddress").is_some() || field(obj, "State").is_some() {
        Proto::Tcp
    } else {
        Proto::Udp
    };
    let local = json_text(field(obj, "LocalAddress").ok_or("missing \"LocalAddress\"")?)?;
    let local_port = json_u64(field(obj, "LocalPort").ok_or("missing \"LocalPort\"")?)?;
    let remote = field(obj, "RemoteAddress").map(json_text).transpose()?;
    let remote_port = field(obj, "RemotePort").map(json_u64).transpose()?;
    let state = parse_state(field(obj, "State"))?;
    let pid = field(obj, "OwningProcess").map(json_u64).transpose()?;
    let process = field(obj, "ProcessName").map(json_text).transpose()?;
    let time = match field(obj, "CreationTime") {
        Some(v) => Some(ctx.parse_date(&date_text(v)?)?),
        None => None,
    };
    ctx.row(
        line,
        proto,
        None,
        (&local, local_port),
        remote.as_deref().map(|r| (r, remote_port.unwrap_or(0))),
        state,
        pid,
        process,
        time,
    )
}
