//! Renderers for scan output: table, json, jsonl, csv, bodyfile, timesketch. Each writes the records
//! in the order it is given (the scan's sorted order), so output is deterministic.
use crate::error::{Error, Result};
use crate::record::{EndpointRecord, Family, Proto};
use crate::scan::ScanOutput;
use std::io::Write;

pub mod compare;
pub mod csv;
pub mod table;
pub mod timeline;

/// The output formats of `netcarve scan`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    Bodyfile,
    Timesketch,
}

/// Renders `out` in `format`. `dest` names the destination in write errors.
pub fn render(out: &ScanOutput, format: Format, w: &mut dyn Write, dest: &str) -> Result<()> {
    // Serializers write a few bytes at a time; buffering here, in a concrete type, keeps those
    // writes inline instead of one dynamic call each (a third of JSON rendering time).
    let mut buffered = std::io::BufWriter::with_capacity(1 << 16, w);
    let b: &mut std::io::BufWriter<&mut dyn Write> = &mut buffered;
    let result = match format {
        Format::Table => table::write_scan(out, b),
        Format::Json => write_json(out, b),
        Format::Jsonl => write_jsonl(out, b),
        Format::Csv => csv::write_scan(out, b),
        Format::Bodyfile => timeline::write_bodyfile(out, b),
        Format::Timesketch => timeline::write_timesketch(out, b),
    };
    result
        .and_then(|()| buffered.flush())
        .map_err(|e| write_error(dest, &e))
}

/// A write error, naming the destination; a closed pipe (`| head`) is reported like any other.
pub fn write_error(dest: &str, e: &std::io::Error) -> Error {
    crate::error::io_error(dest, e)
}

fn write_json(out: &ScanOutput, w: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, out)?;
    writeln!(w)
}

/// One record per line: the endpoints, then (with `--include-corrupt`) the rejected candidates,
/// which carry a `reason`.
fn write_jsonl(out: &ScanOutput, w: &mut impl Write) -> std::io::Result<()> {
    for r in out.endpoints.iter().chain(out.corrupt.iter()) {
        serde_json::to_writer(&mut *w, r)?;
        writeln!(w)?;
    }
    Ok(())
}

/// `TCPv4`, `UDPv6`, ... as netstat-like tools print the protocol column.
pub fn proto_label(r: &EndpointRecord) -> &'static str {
    match (r.proto, r.family) {
        (Proto::Tcp, Family::Ipv4) => "TCPv4",
        (Proto::Tcp, Family::Ipv6) => "TCPv6",
        (Proto::Udp, Family::Ipv4) => "UDPv4",
        (Proto::Udp, Family::Ipv6) => "UDPv6",
    }
}

/// `addr:port`, with IPv6 addresses in brackets.
pub fn endpoint_text(family: Family, addr: &str, port: Option<u16>) -> String {
    let port = port.map_or_else(|| "*".to_string(), |p| p.to_string());
    match family {
        Family::Ipv6 => format!("[{addr}]:{port}"),
        Family::Ipv4 => format!("{addr}:{port}"),
    }
}

pub fn local_text(r: &EndpointRecord) -> String {
    let addr = if r.local_addr.is_empty() {
        "?"
    } else {
        &r.local_addr
    };
    endpoint_text(r.family, addr, Some(r.local_port))
}

pub fn remote_text(r: &EndpointRecord) -> String {
    match (&r.remote_addr, r.remote_port) {
        (None, None) if r.proto == Proto::Udp => "*:*".to_string(),
        (Some(a), p) => endpoint_text(r.family, a, p),
        (None, p) => endpoint_text(r.family, "?", p),
    }
}

/// A one-line description of an endpoint (timeline names and messages).
pub fn describe(r: &EndpointRecord) -> String {
    let mut s = format!("{} {}", proto_label(r), local_text(r));
    if r.proto == Proto::Tcp {
        s.push_str(&format!(" -> {}", remote_text(r)));
    }
    if let Some(state) = r.state {
        s.push_str(&format!(" {state}"));
    }
    if r.dual_stack {
        s.push_str(" (dual-stack)");
    }
    match (r.pid, &r.process) {
        (Some(pid), Some(name)) => s.push_str(&format!(" pid {pid} {name}")),
        (Some(pid), None) => s.push_str(&format!(" pid {pid}")),
        _ => s.push_str(" no owner"),
    }
    s.push_str(&format!(
        " [{} {} at {}]",
        r.tag,
        match r.pool_status {
            crate::record::PoolStatus::Allocated => "allocated",
            crate::record::PoolStatus::Freed => "freed",
        },
        r.physical_offset
    ));
    s
}
