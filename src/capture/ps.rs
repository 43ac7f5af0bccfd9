//! Get-NetworkConnection (the version with `Timestamp`) through ConvertTo-Json: Windows PowerShell
//! 5.1 (`/Date(ms)/`, UTC) and PowerShell 7 (ISO-8601 with the local offset).
use super::{field, json_text, json_u64, ParseContext};
use crate::error::Fault;
use crate::record::{CaptureRow, Proto, TcpState};
use serde_json::{Map, Value};

pub fn parse_row(
    ctx: &mut ParseContext,
    line: u64,
    obj: &Map<String, Value>,
) -> Result<CaptureRow, Fault> {
    let proto = parse_proto(field(obj, "Protocol"))?;
    parse_cmdlet_row(ctx, line, obj, proto, &GET_NETWORK_CONNECTION)
}

/// The property names of one PowerShell cmdlet's output objects.
pub struct CmdletFields {
    pub pid: &'static str,
    pub process: &'static str,
    pub time: &'static str,
}

/// Get-NetworkConnection (both PowerShell editions).
const GET_NETWORK_CONNECTION: CmdletFields = CmdletFields {
    pid: "ProcessId",
    process: "Process",
    time: "Timestamp",
};

/// Get-NetTCPConnection / Get-NetUDPEndpoint.
pub const GET_NET_TCP_CONNECTION: CmdletFields = CmdletFields {
    pid: "OwningProcess",
    process: "ProcessName",
    time: "CreationTime",
};

/// One ConvertTo-Json object of a PowerShell cmdlet: the address, port and state properties are
/// shared; `names` says where the PID, process and create time are.
pub fn parse_cmdlet_row(
    ctx: &mut ParseContext,
    line: u64,
    obj: &Map<String, Value>,
    proto: Proto,
    names: &CmdletFields,
) -> Result<CaptureRow, Fault> {
    let local =
        json_text(field(obj, "LocalAddress").ok_or_else(|| Fault::missing("\"LocalAddress\""))?)?;
    let local_port =
        json_u64(field(obj, "LocalPort").ok_or_else(|| Fault::missing("\"LocalPort\""))?)?;
    let remote = field(obj, "RemoteAddress").map(json_text).transpose()?;
    let remote_port = field(obj, "RemotePort").map(json_u64).transpose()?;
    let state = parse_state(field(obj, "State"))?;
    let pid = field(obj, names.pid).map(json_u64).transpose()?;
    let process = field(obj, names.process).map(json_text).transpose()?;
    let time = match field(obj, names.time) {
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

fn parse_proto(v: Option<&Value>) -> Result<Proto, Fault> {
    let text = json_text(v.ok_or_else(|| Fault::missing("\"Protocol\""))?)?;
    let upper = text.trim().to_ascii_uppercase();
    if upper.starts_with("TCP") || upper == "6" {
        Ok(Proto::Tcp)
    } else if upper.starts_with("UDP") || upper == "17" {
        Ok(Proto::Udp)
    } else {
        Err(fault!(Value, "unknown protocol {text:?}"))
    }
}

/// A state name in any producer's spelling, or a MIB number; empty means none (UDP).
pub fn parse_state(v: Option<&Value>) -> Result<Option<TcpState>, Fault> {
    match v {
        None => Ok(None),
        Some(Value::Number(_)) => {
            let n = json_u64(v.unwrap_or(&Value::Null))?;
            mib_state(n).map(Some)
        }
        Some(other) => {
            let text = json_text(other)?;
            if text.trim().is_empty() {
                return Ok(None);
            }
            if let Ok(n) = text.trim().parse::<u64>() {
                return mib_state(n).map(Some);
            }
            // Get-NetTCPConnection's `Bound`: a bound, unconnected endpoint, CLOSED in the kernel.
            if text.trim().eq_ignore_ascii_case("bound") {
                return Ok(Some(TcpState::Closed));
            }
            TcpState::parse_any(&text)
                .map(Some)
                .ok_or_else(|| fault!(Value, "unknown TCP state {text:?}"))
        }
    }
}

fn mib_state(n: u64) -> Result<TcpState, Fault> {
    if n == 100 {
        return Ok(TcpState::Closed);
    }
    u32::try_from(n)
        .ok()
        .and_then(TcpState::from_mib)
        .ok_or_else(|| fault!(Value, "state {n} is not a MIB_TCP_STATE"))
}

/// The date text, unwrapping 5.1's `{"value": "/Date(..)/", "DisplayHint": 2, ...}` form.
fn date_text(v: &Value) -> Result<String, Fault> {
    match v {
        Value::Object(o) => json_text(
            field(o, "value").ok_or_else(|| fault!(Value, "date object without \"value\""))?,
        ),
        other => json_text(other),
    }
}
