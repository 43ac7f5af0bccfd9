//! Renders a compare [`Report`] as a table (hidden connections first and loudest), JSON or CSV.
use super::text::escape;
use crate::compare::{Class, CompareRow, Report};
use crate::record::{CaptureRow, EndpointRecord, Proto};
use std::io::Write;

pub fn json(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(super::json_io)?;
    writeln!(out)
}

const CSV_HEADER: [&str; 24] = [
    "class",
    "cause",
    "capture_file",
    "capture_line",
    "capture_format",
    "proto",
    "family",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
    "memory_state",
    "capture_state",
    "memory_pid",
    "capture_pid",
    "memory_process",
    "capture_process",
    "memory_create_time",
    "capture_create_time",
    "delta_seconds",
    "tag",
    "pool_status",
    "physical_offset",
    "note",
];

/// `delta_seconds`' index in [`CSV_HEADER`].
const DELTA_COLUMN: usize = 19;

pub fn csv(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    debug_assert_eq!(CSV_HEADER[DELTA_COLUMN], "delta_seconds");
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER).map_err(super::csv_io)?;
    for r in &report.rows {
        let m = r.memory.as_ref();
        let c = r.capture.as_ref();
        let opt = |v: Option<String>| v.unwrap_or_default();
        let record = [
            r.class.name().to_string(),
            opt(r.cause.map(|c| c.name().to_string())),
            r.capture_file.clone(),
            opt(c.map(|c| c.line.to_string())),
            opt(c.map(|c| c.source.clone())),
            proto_of(m, c).to_string(),
            opt(m
                .map(|m| family_name(m.family))
                .or(c.map(|c| family_name(c.family)))),
            opt(m
                .map(|m| m.local_addr.clone())
                .or(c.map(|c| c.local_addr.clone()))),
            opt(m
                .map(|m| m.local_port)
                .or(c.map(|c| c.local_port))
                .map(|p| p.to_string())),
            opt(m
                .and_then(|m| m.remote_addr.clone())
                .or(c.and_then(|c| c.remote_addr.clone()))),
            opt(m
                .and_then(|m| m.remote_port)
                .or(c.and_then(|c| c.remote_port))
                .map(|p| p.to_string())),
            opt(m.and_then(|m| m.state).map(|s| s.name().to_string())),
            opt(c.and_then(|c| c.state).map(|s| s.name().to_string())),
            opt(m.and_then(|m| m.pid).map(|p| p.to_string())),
            opt(c.and_then(|c| c.pid).map(|p| p.to_string())),
            opt(m.and_then(|m| m.process.clone())),
            opt(c.and_then(|c| c.process.clone())),
            opt(m.and_then(memory_time)),
            opt(c.and_then(|c| c.create_time.clone())),
            opt(r.delta_seconds.map(|d| format!("{d:.7}"))),
            opt(m.map(|m| m.tag.clone())),
            opt(m.map(|m| pool_status(m).to_string())),
            opt(m.map(|m| m.physical_offset.to_string())),
            r.note.clone(),
        ];
        // Evidence text is escaped and kept from running as a formula; the delta is a number we
        // wrote (a leading `-` is its sign), so it is left as it is.
        let record = record.iter().enumerate().map(|(i, cell)| {
            if i == DELTA_COLUMN {
                cell.clone()
            } else {
                super::text::csv_cell(cell)
            }
        });
        w.write_record(record).map_err(super::csv_io)?;
    }
    w.flush()
}

fn family_name(f: crate::record::Family) -> String {
    match f {
        crate::record::Family::Ipv4 => "ipv4".into(),
        crate::record::Family::Ipv6 => "ipv6".into(),
    }
}

fn pool_status(m: &EndpointRecord) -> &'static str {
    match m.pool_status {
        crate::record::PoolStatus::Allocated => "allocated",
        crate::record::PoolStatus::Freed => "freed",
    }
}

fn proto_of(m: Option<&EndpointRecord>, c: Option<&CaptureRow>) -> &'static str {
    match m.map(|m| m.proto).or(c.map(|c| c.proto)) {
        Some(Proto::Tcp) => "TCP",
        Some(Proto::Udp) => "UDP",
        None => "",
    }
}

/// The memory side's time as shown: ISO, or why there is none.
fn memory_time(m: &EndpointRecord) -> Option<String> {
    if m.has_flag(crate::record::flag::NO_TIME_FIELD) {
        return Some("(no time field)".into());
    }
    m.create_time.clone()
}

fn endpoint_text(addr: Option<&str>, port: Option<u16>) -> String {
    match (addr, port) {
        (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => "*:*".to_string(),
    }
}

/// `proto local -> remote` from whichever side is present: memory first, except for a dual-stack
/// pair, where the API's `0.0.0.0` row says more than the object's `::`.
fn connection_text(r: &CompareRow) -> String {
    let mut m = r.memory.as_ref();
    let c = r.capture.as_ref();
    if let (Some(mem), Some(cap)) = (m, c) {
        if mem.family != cap.family {
            m = None;
        }
    }
    let local = m
        .map(|m| endpoint_text(Some(&m.local_addr), Some(m.local_port)))
        .or(c.map(|c| endpoint_text(Some(&c.local_addr), Some(c.local_port))))
        .unwrap_or_default();
    let remote = m
        .map(|m| endpoint_text(m.remote_addr.as_deref(), m.remote_port))
        .or(c.map(|c| endpoint_text(c.remote_addr.as_deref(), c.remote_port)))
        .unwrap_or_default();
    format!("{} {local} -> {remote}", proto_of(r.memory.as_ref(), c))
}

fn both<T: PartialEq + std::fmt::Display>(m: Option<T>, c: Option<T>) -> String {
    let show = |v: &Option<T>| {
        v.as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    };
    match (&m, &c) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (None, None) => "-".to_string(),
        _ => format!("{}/{}", show(&m), show(&c)),
    }
}

pub fn table(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let image = &report.image;
    writeln!(
        out,
        "memory: {} ({}, NT {}.{} build {}, {}), acquired {}",
        escape(image.file.as_deref().unwrap_or("-")),
        report.memory_source,
        image.nt.major,
        image.nt.minor,
        image
            .nt
            .build
            .map_or("unknown".to_string(), |b| b.to_string()),
        if image.arch.is_empty() {
            "-"
        } else {
            &image.arch
        },
        image.system_time.as_deref().unwrap_or("unknown")
    )?;
    for w in &image.warnings {
        writeln!(out, "  warning: {}", escape(w))?;
    }
    for c in &report.captures {
        let tolerance = c
            .tolerance_seconds
            .map(|t| format!("tolerance {t} s"))
            .unwrap_or_else(|| "no times".into());
        let collected = match c.collected_source.as_str() {
            "capture" => format!("collected {}", c.collected.as_deref().unwrap_or("-")),
            "assumed_acquisition_time" => format!(
                "collected {} (assumed: the image's acquisition time)",
                c.collected.as_deref().unwrap_or("-")
            ),
            _ => "collection time unknown".into(),
        };
        writeln!(
            out,
            "capture: {} ({} in {}{}, {} rows, precision {}, {tolerance}, {collected}, times: {})",
            escape(&c.file),
            c.format,
            escape(&c.encoding),
            c.culture
                .as_deref()
                .map(|p| format!(", dates {}", escape(p)))
                .unwrap_or_default(),
            c.rows,
            c.precision,
            c.tz_source
        )?;
        for w in &c.warnings {
            writeln!(out, "  warning: {}", escape(w))?;
        }
    }
    let alarms = [
        (
            Class::HiddenFromApi,
            "HIDDEN FROM API",
            "allocated endpoint object(s) in memory that the capture does not list (rootkit candidates)",
        ),
        (
            Class::Unlinked,
            "UNLINKED",
            "live-looking endpoint object(s) in none of tcpip's tables and not in the capture (DKOM candidates)",
        ),
    ];
    for (alarm, title, what) in alarms {
        let rows: Vec<&CompareRow> = report.rows.iter().filter(|r| r.class == alarm).collect();
        if rows.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "!!! {title}: {} {what} !!!", rows.len())?;
        for r in &rows {
            if let Some(m) = &r.memory {
                writeln!(
                    out,
                    "!!!   {}  {}  pid {} {}  created {}  [{} {} @ {}]  not in {}",
                    escape(&connection_text(r)),
                    m.state.map(|s| s.name()).unwrap_or("-"),
                    m.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    super::text::cell(
                        m.process.as_deref().unwrap_or("-"),
                        super::table::CELL_MAX_CHARS
                    ),
                    memory_time(m).unwrap_or_else(|| "-".into()),
                    escape(&m.tag),
                    pool_status(m),
                    m.physical_offset,
                    escape(&r.capture_file)
                )?;
            }
        }
    }
    writeln!(out)?;
    let header = [
        "CLASS",
        "CAUSE",
        "CONNECTION",
        "STATE",
        "PID",
        "PROCESS",
        "MEMORY TIME",
        "API TIME",
        "DELTA S",
        "CAPTURE",
        "NOTE",
    ];
    let mut cells: Vec<Vec<String>> = Vec::with_capacity(report.rows.len());
    for r in &report.rows {
        let m = r.memory.as_ref();
        let c = r.capture.as_ref();
        let class = match r.class {
            Class::HiddenFromApi | Class::Unlinked => r.class.name().to_ascii_uppercase(),
            _ => r.class.name().to_string(),
        };
        cells.push(vec![
            class,
            r.cause.map(|c| c.name()).unwrap_or("").to_string(),
            connection_text(r),
            both(m.and_then(|m| m.state), c.and_then(|c| c.state)),
            both(m.and_then(|m| m.pid), c.and_then(|c| c.pid)),
            m.and_then(|m| m.process.clone())
                .or(c.and_then(|c| c.process.clone()))
                .unwrap_or_else(|| "-".into()),
            m.and_then(memory_time).unwrap_or_else(|| "-".into()),
            c.and_then(|c| c.create_time.clone())
                .unwrap_or_else(|| "-".into()),
            r.delta_seconds
                .map(|d| format!("{d:+.7}"))
                .unwrap_or_else(|| "-".into()),
            match c {
                Some(c) => format!("{}:{}", c.source, c.line),
                None => "-".into(),
            },
            r.note.clone(),
        ]);
    }
    super::table::write_table(out, &header, &cells)?;
    writeln!(out)?;
    let counts: Vec<String> = Class::ALL
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c.name(),
                report.summary.by_class.get(c.name()).copied().unwrap_or(0)
            )
        })
        .collect();
    writeln!(
        out,
        "summary: {} discrepancies; {}",
        report.summary.discrepancies,
        counts.join(", ")
    )?;
    let research = &report.research;
    writeln!(out)?;
    writeln!(out, "research: \"{}\"", research.hypothesis)?;
    if research.table.is_empty() {
        writeln!(
            out,
            "  no zero (1601) timestamps and no objects without a time field"
        )?;
    } else {
        writeln!(
            out,
            "  {:<8} {:>6} {:<5} {:<5} {:<12} {:<14} {:>5}",
            "SIDE", "BUILD", "PROTO", "TAG", "STATE", "KIND", "COUNT"
        )?;
        for t in &research.table {
            writeln!(
                out,
                "  {:<8} {:>6} {:<5} {:<5} {:<12} {:<14} {:>5}",
                t.side,
                t.build.map_or("?".to_string(), |b| b.to_string()),
                match t.proto {
                    Proto::Tcp => "TCP",
                    Proto::Udp => "UDP",
                },
                t.tag.as_deref().unwrap_or("-"),
                t.state.as_deref().unwrap_or("-"),
                t.kind,
                t.count
            )?;
        }
    }
    writeln!(
        out,
        "  verdict: {} ({})",
        research.verdict, research.reasoning
    )?;
    for finding in &research.census {
        writeln!(out, "  census: {}", escape(finding))?;
    }
    Ok(())
}
