//! Get-NetTCPConnection / Get-NetUDPEndpoint through ConvertTo-Json: `OwningProcess`,
//! `CreationTime` in either PowerShell's date form, `State` as a name or number (Bound = 100).
use super::ps::{parse_cmdlet_row, GET_NET_TCP_CONNECTION};
use super::{field, ParseContext};
use crate::error::Fault;
use crate::record::{CaptureRow, Proto};
use serde_json::{Map, Value};

pub fn parse_row(
    ctx: &mut ParseContext,
    line: u64,
    obj: &Map<String, Value>,
) -> Result<CaptureRow, Fault> {
    // UDP endpoints have neither a remote side nor a state.
    let proto = if field(obj, "RemoteAddress").is_some() || field(obj, "State").is_some() {
        Proto::Tcp
    } else {
        Proto::Udp
    };
    parse_cmdlet_row(ctx, line, obj, proto, &GET_NET_TCP_CONNECTION)
}
