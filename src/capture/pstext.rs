//! PowerShell's endpoint cmdlets as text tables: `Export-Csv` (with or without the `#TYPE` line;
//! `,`, or the `;` of `-UseCulture` in many cultures) and `Format-List` (`Name : value` records
//! separated by blank lines). Each record becomes the property map the JSON row parsers read
//! (`nettcpip.rs` for Get-NetTCPConnection / Get-NetUDPEndpoint, `ps.rs` for
//! Get-NetworkConnection), so a CSV row and a ConvertTo-Json object of one endpoint read alike.
//! Their dates are text in the host's culture: the day/month order is taken from
//! `--capture-culture`, else from dates only one order can read, and an ambiguous file is refused.
//!
//! Shapes learned from: Microsoft's NetTCPIP cmdlet documentation and the property lists of
//! MSFT_NetTCPConnection / MSFT_NetUDPEndpoint (the CSV header is their property names, `#TYPE
//! Microsoft.Management.Infrastructure.CimInstance#ROOT/StandardCimv2/MSFT_NetTCPConnection` in
//! Windows PowerShell 5.1); the culture date forms are .NET's general date/time pattern ("G") of
//! each culture, as quoted in issue 18 from real output.
use super::time::{CultureDate, DateOrder};
use super::{field, json_text, ParseContext};
use super::{nettcpip, ps, record_unreadable, salvage, text::line_list, Capture, CaptureFormat};
use crate::error::Fault;
use crate::record::Proto;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Which of the two text tables `text` is, if either.
pub fn detect(text: &str) -> Option<CaptureFormat> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next()?;
    if first.starts_with("#TYPE") {
        return Some(CaptureFormat::PsCsv);
    }
    if first.contains("LocalAddress") && (first.contains(',') || first.contains(';')) {
        return Some(CaptureFormat::PsCsv);
    }
    let is_list_key = |l: &str| {
        l.split_once(':')
            .is_some_and(|(k, _)| k.trim_end() == "LocalAddress")
    };
    std::iter::once(first)
        .chain(lines)
        .take(64)
        .any(is_list_key)
        .then_some(CaptureFormat::PsList)
}

/// A table's records (line, properties without empty values), and the lines that
/// could not be read as records.
struct Records {
    rows: Vec<(u64, Map<String, Value>)>,
    bad: Vec<(u64, String)>,
}

fn csv_records(text: &str) -> Records {
    let mut records = Records {
        rows: Vec::new(),
        bad: Vec::new(),
    };
    // Lines before the header (blank ones, `#TYPE`) are cut off; csv counts from the header.
    let mut skipped_lines = 0u64;
    let mut body = text;
    loop {
        let (line, rest) = body.split_once('\n').unwrap_or((body, ""));
        let trimmed = line.trim();
        if (trimmed.is_empty() && !rest.is_empty()) || trimmed.starts_with("#TYPE") {
            skipped_lines += 1;
            body = rest;
        } else {
            break;
        }
    }
    let header = body.lines().next().unwrap_or("");
    let delimiter = if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(body.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => {
            records
                .bad
                .push((skipped_lines + 1, format!("unreadable CSV header ({e})")));
            return records;
        }
    };
    for result in reader.records() {
        match result {
            Ok(record) => {
                // csv numbers a record one line short of the file's line here (the test below holds it).
                let line = skipped_lines + 1 + record.position().map_or(0, |p| p.line());
                let mut map = Map::new();
                for (name, value) in headers.iter().zip(record.iter()) {
                    if !value.trim().is_empty() {
                        map.insert(name.clone(), Value::String(value.to_string()));
                    }
                }
                if record.len() > headers.len() {
                    records.bad.push((
                        line,
                        format!(
                            "{} fields under {} column names (an unquoted delimiter?)",
                            record.len(),
                            headers.len()
                        ),
                    ));
                    continue;
                }
                records.rows.push((line, map));
            }
            Err(e) => {
                let line = skipped_lines + 1 + e.position().map_or(0, |p| p.line());
                records
                    .bad
                    .push((line, format!("unreadable CSV record ({e})")));
            }
        }
    }
    records
}

fn list_records(text: &str) -> Records {
    let mut records = Records {
        rows: Vec::new(),
        bad: Vec::new(),
    };
    let mut current: Option<(u64, Map<String, Value>)> = None;
    let mut last_key: Option<String> = None;
    let flush = |current: &mut Option<(u64, Map<String, Value>)>, records: &mut Records| {
        if let Some(done) = current.take().filter(|(_, m)| !m.is_empty()) {
            records.rows.push(done);
        }
    };
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        if raw.trim().is_empty() {
            flush(&mut current, &mut records);
            last_key = None;
            continue;
        }
        let key_value = raw.split_once(':').and_then(|(k, v)| {
            let key = k.trim_end();
            let is_key = !raw.starts_with(char::is_whitespace)
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            is_key.then(|| (key.to_string(), v.strip_prefix(' ').unwrap_or(v).trim_end()))
        });
        match key_value {
            Some((key, value)) => {
                // A property seen again starts the next object (a list without blank lines).
                if current.as_ref().is_some_and(|(_, m)| m.contains_key(&key)) {
                    flush(&mut current, &mut records);
                }
                let (_, map) = current.get_or_insert_with(|| (line, Map::new()));
                if !value.is_empty() {
                    map.insert(key.clone(), Value::String(value.to_string()));
                }
                last_key = Some(key);
            }
            // Format-List wraps a long value onto lines indented under it.
            None if raw.starts_with(char::is_whitespace) && last_key.is_some() => {
                if let (Some((_, map)), Some(key)) = (current.as_mut(), last_key.as_ref()) {
                    let more = raw.trim();
                    match map.get_mut(key) {
                        Some(Value::String(v)) => v.push_str(more),
                        _ => {
                            map.insert(key.clone(), Value::String(more.to_string()));
                        }
                    }
                }
            }
            // Other text (a prompt, a command line): it ends the object before it.
            None => {
                flush(&mut current, &mut records);
                last_key = None;
            }
        }
    }
    flush(&mut current, &mut records);
    records
}

/// Which cmdlet wrote the objects.
#[derive(Copy, Clone, PartialEq)]
enum Cmdlet {
    /// Get-NetTCPConnection / Get-NetUDPEndpoint: `OwningProcess`, `CreationTime`.
    NetTcpIp,
    /// Get-NetworkConnection: `ProcessId`, `Protocol`, `Timestamp`.
    NetworkConnection,
}

pub fn parse(
    ctx: &mut ParseContext,
    text: &str,
    culture: Option<&(String, DateOrder)>,
    capture: &mut Capture,
) -> Result<(), Fault> {
    let records = match ctx.format {
        CaptureFormat::PsCsv => csv_records(text),
        _ => list_records(text),
    };
    let has = |k: &str| records.rows.iter().any(|(_, m)| field(m, k).is_some());
    let cmdlet = if has("OwningProcess") {
        Cmdlet::NetTcpIp
    } else if has("ProcessId") || has("Protocol") {
        Cmdlet::NetworkConnection
    } else if let Some((line, m)) = records.bad.first() {
        return Err(fault!(Structure, "line {line}: {m}"));
    } else {
        // Names as Debug text, cut: a header cell may hold anything, newlines included.
        let keys: Vec<String> = records
            .rows
            .first()
            .map(|(_, m)| {
                m.keys()
                    .take(8)
                    .map(|k| format!("{:?}", k.chars().take(40).collect::<String>()))
                    .collect()
            })
            .unwrap_or_default();
        return Err(fault!(Structure,
            "no OwningProcess or ProcessId property: not Get-NetTCPConnection, Get-NetUDPEndpoint or Get-NetworkConnection output (properties: {})",
            keys.join(", ")
        ));
    };
    let time_key = match cmdlet {
        Cmdlet::NetTcpIp => "CreationTime",
        Cmdlet::NetworkConnection => "Timestamp",
    };
    // Get-NetTCPConnection lists TCP only and Get-NetUDPEndpoint UDP only: what the file holds
    // is what was asked.
    // (Not the `#TYPE` line: it names the first object's class only, and one Export-Csv may hold
    // both cmdlets' objects.)
    capture.protocols = match cmdlet {
        Cmdlet::NetTcpIp => Some(
            records
                .rows
                .iter()
                .map(|(_, m)| {
                    if field(m, "RemoteAddress").is_some() || field(m, "State").is_some() {
                        Proto::Tcp
                    } else {
                        Proto::Udp
                    }
                })
                .collect(),
        ),
        Cmdlet::NetworkConnection => None,
    };

    // The culture: dates no ISO parser reads, split, and what they say of the day/month order.
    let dates: Vec<(u64, CultureDate)> = records
        .rows
        .iter()
        .filter_map(|(line, m)| {
            let text = json_text(field(m, time_key)?).ok()?;
            let iso = super::time::parse_date(
                &text,
                ctx.format.precision(),
                ctx.time,
                &mut BTreeSet::new(),
            );
            if iso.is_ok() {
                return None;
            }
            CultureDate::parse(&text).ok().map(|d| (*line, d))
        })
        .collect();
    let order = match culture {
        Some((_, order)) => Some(*order),
        None => detect_order(&dates)?,
    };
    ctx.date_order = order;
    capture.culture = match culture {
        Some((name, _)) => Some(name.clone()),
        None => dates.first().map(|(_, d)| d.pattern(order)),
    };

    let mut first_error = None;
    let mut zero_lines = Vec::new();
    let parse_row = |ctx: &mut ParseContext, line: u64, m: &Map<String, Value>| match cmdlet {
        Cmdlet::NetTcpIp => nettcpip::parse_row(ctx, line, m),
        Cmdlet::NetworkConnection => ps::parse_row(ctx, line, m),
    };
    for (line, m) in &records.rows {
        match parse_row(ctx, *line, m) {
            Ok(row) => {
                let shown = field(m, time_key).and_then(|v| json_text(v).ok());
                if row.create_time_raw == Some(0)
                    && shown.is_some_and(|t| CultureDate::parse(&t).is_ok())
                {
                    zero_lines.push(*line as usize);
                }
                capture.rows.push(row);
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.clone().at(format!("line {line}")));
                record_unreadable(capture, &format!("line {line}"), *line, None, &e, || {
                    salvage(m, |m| parse_row(ctx, *line, m))
                });
            }
        }
    }
    for (line, m) in &records.bad {
        let fault = Fault::Structure(m.clone());
        first_error.get_or_insert_with(|| fault.clone().at(format!("line {line}")));
        record_unreadable(
            capture,
            &format!("line {line}"),
            *line,
            None,
            &fault,
            || None,
        );
    }
    if !zero_lines.is_empty() {
        ctx.warnings.push(format!(
            "{}: {time_key} on 1/1/1601 is FILETIME 0 shown in the host's local time: read as the zero timestamp",
            line_list("line", &zero_lines)
        ));
    }
    if capture.rows.is_empty() {
        return Err(first_error.unwrap_or_else(|| fault!(Structure, "no records")));
    }
    Ok(())
}

/// The day/month order the dates allow: one order when some date only it reads and none only the
/// other; `None` when no date needs one; an error naming the rows when they disagree or when
/// every date that needs an order reads both ways.
fn detect_order(dates: &[(u64, CultureDate)]) -> Result<Option<DateOrder>, Fault> {
    let lines_with = |want: DateOrder| -> Vec<usize> {
        dates
            .iter()
            .filter(|(_, d)| d.order_evidence() == Some(want))
            .map(|(l, _)| *l as usize)
            .collect()
    };
    let day_first = lines_with(DateOrder::DayFirst);
    let month_first = lines_with(DateOrder::MonthFirst);
    let ambiguous: Vec<usize> = dates
        .iter()
        .filter(|(_, d)| d.is_ambiguous())
        .map(|(l, _)| *l as usize)
        .collect();
    match (day_first.is_empty(), month_first.is_empty()) {
        (false, false) => Err(fault!(Structure,
            "dates disagree on the culture: {} read only day first, {} only month first; --capture-culture NAME (e.g. en-US, en-GB) says which",
            line_list("line", &day_first),
            line_list("line", &month_first)
        )),
        (false, true) => Ok(Some(DateOrder::DayFirst)),
        (true, false) => Ok(Some(DateOrder::MonthFirst)),
        (true, true) if ambiguous.is_empty() => Ok(None),
        (true, true) => Err(fault!(Structure,
            "culture-formatted dates read both day first and month first ({}: no day above 12); --capture-culture NAME (e.g. en-US, en-GB) says which",
            line_list("line", &ambiguous)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_list_records() {
        let csv = "#TYPE Microsoft.Management.Infrastructure.CimInstance#ROOT/StandardCimv2/MSFT_NetTCPConnection\r\n\
                   \"LocalAddress\",\"LocalPort\",\"Note\"\r\n\
                   \"10.0.0.5\",\"1\",\"a, b\"\r\n\
                   \"10.0.0.5\",\"2\",\"two\r\nlines\"\r\n\
                   \"10.0.0.5\",\"3\",\"\"\r\n";
        assert!(matches!(detect(csv), Some(CaptureFormat::PsCsv)));
        let r = csv_records(csv);
        let lines: Vec<u64> = r.rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 4, 6]);
        assert_eq!(r.rows[0].1["Note"], "a, b");
        assert_eq!(r.rows[1].1["Note"], "two\r\nlines");
        assert!(!r.rows[2].1.contains_key("Note"));
        let list = "\r\nLocalAddress   : 10.0.0.5\r\nLocalPort      : 1\r\nAppliedSetting : \r\nOwningProcess  : 12\r\n                 34\r\n\r\nLocalAddress : ::\r\nLocalPort : 2\r\n";
        assert!(matches!(detect(list), Some(CaptureFormat::PsList)));
        let r = list_records(list);
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[0].0, 2);
        assert_eq!(r.rows[0].1["OwningProcess"], "1234");
        assert!(!r.rows[0].1.contains_key("AppliedSetting"));
        assert_eq!(
            detect("  Proto  Local Address\n  TCP 0.0.0.0:1 0.0.0.0:0 LISTENING 4\n"),
            None
        );
    }
}
