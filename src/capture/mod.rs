//! Live-response captures of the user-mode endpoint tables, one parser file per producer, all
//! normalised into [`CaptureRow`]s. Parsers never panic: a bad file is a one-line error naming it,
//! a bad row is kept as [`Unreadable`] with a warning when the rest of the file is usable (compare
//! must not accuse an endpoint such a row may list).
use crate::error::{io_error, Error, Result};
use crate::filetime;
use crate::record::{CaptureRow, Family};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

pub mod netcarve;
pub mod netstat;
pub mod nettcpip;
pub mod osquery;
pub mod ps;
pub mod velociraptor;

/// Captures larger than this are not live-response tables: reading stops here (a special file such
/// as `/dev/zero` has no size to check first) and the capture is refused.
pub const MAX_CAPTURE_BYTES: u64 = 256 << 20;

/// Longest text field (process, host) kept from a capture; longer ones are cut with a warning.
/// Windows image names are at most 260 characters; a longer one is not a name but an attack on
/// whatever renders it.
pub const MAX_TEXT_CHARS: usize = 1024;

/// FILETIMEs below one day after 1601 are zero timestamps shown in some local time zone
/// (`1601-01-01T01:00:00+01:00`, or `1600-12-31` when the offset was applied the other way).
const ZERO_WINDOW_TICKS: i128 = 24 * 3600 * filetime::TICKS_PER_SECOND;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaptureFormat {
    Netcarve,
    Ps51,
    Ps7,
    NetTcpIp,
    Velociraptor,
    Osquery,
    Netstat,
}

impl CaptureFormat {
    pub const ALL: [CaptureFormat; 7] = [
        CaptureFormat::Netcarve,
        CaptureFormat::Ps51,
        CaptureFormat::Ps7,
        CaptureFormat::NetTcpIp,
        CaptureFormat::Velociraptor,
        CaptureFormat::Osquery,
        CaptureFormat::Netstat,
    ];

    /// The name used by `--capture-format` and in `CaptureRow::source`.
    pub fn name(self) -> &'static str {
        match self {
            CaptureFormat::Netcarve => "netcarve",
            CaptureFormat::Ps51 => "ps51",
            CaptureFormat::Ps7 => "ps7",
            CaptureFormat::NetTcpIp => "nettcpip",
            CaptureFormat::Velociraptor => "velociraptor",
            CaptureFormat::Osquery => "osquery",
            CaptureFormat::Netstat => "netstat",
        }
    }

    pub fn from_name(name: &str) -> Option<CaptureFormat> {
        let name = name.trim().to_ascii_lowercase();
        CaptureFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The nominal precision of the format's creation times.
    pub fn precision(self) -> Precision {
        match self {
            CaptureFormat::Netcarve | CaptureFormat::Ps7 => Precision::Tick,
            CaptureFormat::Ps51 => Precision::Millisecond,
            // Per row: `\/Date(ms)\/` from 5.1, ISO from 7; the capture reports the coarsest seen.
            CaptureFormat::NetTcpIp => Precision::Tick,
            CaptureFormat::Velociraptor => Precision::Second,
            CaptureFormat::Osquery | CaptureFormat::Netstat => Precision::None,
        }
    }
}

/// Precision of a creation time, finest first.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    Tick,
    Millisecond,
    Second,
    None,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Tick => "100ns",
            Precision::Millisecond => "ms",
            Precision::Second => "s",
            Precision::None => "none",
        }
    }
    pub fn from_name(name: &str) -> Precision {
        match name {
            "100ns" => Precision::Tick,
            "ms" => Precision::Millisecond,
            "s" => Precision::Second,
            _ => Precision::None,
        }
    }
    /// The default time tolerance in 100 ns ticks: producers truncate to their unit, so a true
    /// time lies within one unit of the shown one. `None` when there is no time to compare.
    pub fn default_tolerance_ticks(self) -> Option<u64> {
        match self {
            Precision::Tick => Some(0),
            Precision::Millisecond => Some(10_000),
            Precision::Second => Some(10_000_000),
            Precision::None => None,
        }
    }
}

/// How local times that carry no UTC offset are converted.
#[derive(Clone, Debug, Default)]
pub struct TimeContext {
    /// `--capture-tz`, in minutes east of UTC.
    pub capture_tz_minutes: Option<i64>,
    /// The image's offset (minutes east of UTC, i.e. minus KUSER TimeZoneBias).
    pub image_offset_minutes: Option<i64>,
}

/// One parsed capture file.
#[derive(Clone, Debug)]
pub struct Capture {
    pub file: String,
    pub format: CaptureFormat,
    pub rows: Vec<CaptureRow>,
    /// Coarsest precision among the timed rows (the format's nominal one when no row has a time).
    pub precision: Precision,
    /// When the tables were read (FILETIME, UTC), if the capture says.
    pub collected_raw: Option<u64>,
    pub host: Option<String>,
    pub utc_offset_minutes: Option<i64>,
    /// How the times were brought to UTC: `utc`, `offset_in_file`, `capture_tz`, `image_bias`,
    /// `assumed_utc`, or `none` (no times); several joined with `+` when rows differ.
    pub tz_source: String,
    /// Rows skipped and other non-fatal problems, each naming the line.
    pub warnings: Vec<String>,
    /// Rows that could not be read: compare accuses no endpoint such a row may list.
    pub unreadable: Vec<Unreadable>,
}

/// A capture row that could not be read whole. The API listed *something* there, so an endpoint
/// it may be must not be reported as hidden from the API.
#[derive(Clone, Debug)]
pub struct Unreadable {
    /// The row's line (JSONL, netstat) or 1-based index (JSON arrays, netcarve's tcp then udp).
    pub line: u64,
    /// The protocol, when the file says it apart from the row (netcarve's `tcp`/`udp` arrays,
    /// netstat's first token) or the partial row does.
    pub proto: Option<crate::record::Proto>,
    /// The row read without the one field that could not be (`field`), when that was enough.
    pub partial: Option<(CaptureRow, String)>,
    /// Why the row could not be read.
    pub reason: String,
}

/// Rows of one file whose fields are tried one by one when they fail; past this many, a failed
/// row is kept as "nothing readable" (a hostile file of bad rows must not cost a parse per field).
const MAX_SALVAGED_ROWS: usize = 1000;
/// Rows with more fields than this are not tried field by field.
const MAX_SALVAGE_FIELDS: usize = 64;

/// The row `parse` reads from `obj` without one of its fields, and that field's name; `None` when
/// leaving out no single field makes it readable.
pub fn salvage(
    obj: &Map<String, Value>,
    mut parse: impl FnMut(&Map<String, Value>) -> std::result::Result<CaptureRow, String>,
) -> Option<(CaptureRow, String)> {
    if obj.len() > MAX_SALVAGE_FIELDS {
        return None;
    }
    obj.keys().find_map(|key| {
        let mut without = obj.clone();
        without.remove(key);
        parse(&without).ok().map(|row| (row, key.clone()))
    })
}

/// Records a row that failed with `message` (`what` names it: `row 3`, `tcp row 3`): a warning,
/// and what could be salvaged by `try_partial` (called only for the first rows of a file).
pub fn record_unreadable(
    capture: &mut Capture,
    what: &str,
    line: u64,
    proto: Option<crate::record::Proto>,
    message: &str,
    try_partial: impl FnOnce() -> Option<(CaptureRow, String)>,
) {
    let partial = if capture.unreadable.len() < MAX_SALVAGED_ROWS {
        try_partial()
    } else {
        None
    };
    let kept = match &partial {
        Some((row, field)) => format!(
            "the rest of it ({} {}:{}) is kept without {field:?}, and an endpoint it may list is not accused",
            match row.proto {
                crate::record::Proto::Tcp => "TCP",
                crate::record::Proto::Udp => "UDP",
            },
            row.local_addr,
            row.local_port
        ),
        None => "nothing else in it was readable, so no endpoint it may list is accused".into(),
    };
    capture
        .warnings
        .push(format!("{what}: {message}; row unreadable: {kept}"));
    capture.unreadable.push(Unreadable {
        line,
        proto: proto.or(partial.as_ref().map(|(r, _)| r.proto)),
        partial,
        reason: message.to_string(),
    });
}

/// State shared by one file's row parsers.
pub struct ParseContext<'a> {
    pub format: CaptureFormat,
    pub time: &'a TimeContext,
    pub tz_used: BTreeSet<&'static str>,
    pub precisions: BTreeSet<Precision>,
    /// Rows kept, but with something worth saying (a family contradicting its address ...).
    pub warnings: Vec<String>,
}

impl<'a> ParseContext<'a> {
    pub fn new(format: CaptureFormat, time: &'a TimeContext) -> Self {
        ParseContext {
            format,
            time,
            tz_used: BTreeSet::new(),
            precisions: BTreeSet::new(),
            warnings: Vec::new(),
        }
    }

    /// Parses a PowerShell / ISO-8601 date into a FILETIME with its precision. Accepts
    /// `/Date(ms)/` (5.1, UTC), `/Date(ms+hhmm)/`, RFC 3339 with `Z` or an offset, and naive local
    /// times (converted with `--capture-tz`, else the image's bias, else taken as UTC).
    pub fn parse_date(&mut self, text: &str) -> std::result::Result<(u64, Precision), String> {
        let t = text.trim();
        if let Some(inner) = t
            .strip_prefix("/Date(")
            .or_else(|| t.strip_prefix("\\/Date("))
        {
            let inner = inner.trim_end_matches('/').trim_end_matches('\\');
            let inner = inner
                .strip_suffix(')')
                .ok_or_else(|| format!("bad date {t:?}"))?;
            // An optional `+hhmm` suffix names the local zone; the number itself is UTC.
            let digits_end = inner
                .char_indices()
                .skip(1)
                .find(|(_, c)| *c == '+' || *c == '-')
                .map(|(i, _)| i)
                .unwrap_or(inner.len());
            let ms: i64 = inner
                .get(..digits_end)
                .unwrap_or("")
                .parse()
                .map_err(|_| format!("bad date {t:?}"))?;
            let ticks = (ms as i128) * 10_000 + filetime::UNIX_EPOCH_TICKS;
            self.tz_used.insert("utc");
            return Ok((clamp_zero(ticks, t)?, Precision::Millisecond));
        }
        let precision = self.format.precision();
        if let Ok(ts) = t.parse::<jiff::Timestamp>() {
            let has_offset = !(t.ends_with('Z') || t.ends_with('z'));
            self.tz_used
                .insert(if has_offset { "offset_in_file" } else { "utc" });
            return Ok((clamp_zero(timestamp_ticks(ts), t)?, precision));
        }
        if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
            let (offset, source) =
                match (self.time.capture_tz_minutes, self.time.image_offset_minutes) {
                    (Some(m), _) => (m, "capture_tz"),
                    (None, Some(m)) => (m, "image_bias"),
                    (None, None) => (0, "assumed_utc"),
                };
            self.tz_used.insert(source);
            let as_utc = dt
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map_err(|_| format!("date out of range {t:?}"))?
                .timestamp();
            let ticks =
                timestamp_ticks(as_utc) - (offset as i128) * 60 * filetime::TICKS_PER_SECOND;
            return Ok((clamp_zero(ticks, t)?, precision));
        }
        Err(format!("bad date {t:?}"))
    }

    /// Records that a row carried a time of this precision.
    pub fn note_precision(&mut self, p: Precision) {
        self.precisions.insert(p);
    }

    /// Builds a row with the shared normalisation (addresses, families, UDP without remote).
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        line: u64,
        proto: crate::record::Proto,
        family_hint: Option<Family>,
        local: (&str, u64),
        remote: Option<(&str, u64)>,
        state: Option<crate::record::TcpState>,
        pid: Option<u64>,
        process: Option<String>,
        time: Option<(u64, Precision)>,
    ) -> std::result::Result<CaptureRow, String> {
        use crate::record::Proto;
        let (local_family, local_addr) =
            parse_addr(local.0).ok_or_else(|| format!("bad local address {:?}", local.0))?;
        let family = family_hint.unwrap_or(local_family);
        if family != local_family {
            self.warnings.push(format!(
                "row {line}: family {} contradicts local address {local_addr}; kept as given",
                family_text(family)
            ));
        }
        let local_port = port(local.1)?;
        let (remote_addr, remote_port) = match (proto, remote) {
            // UDP endpoints have no remote side, whatever placeholder the producer wrote.
            (Proto::Udp, _) => (None, None),
            (Proto::Tcp, Some((addr, p))) if !addr.trim().is_empty() && addr.trim() != "*" => {
                let (_, a) =
                    parse_addr(addr).ok_or_else(|| format!("bad remote address {addr:?}"))?;
                (Some(a), Some(port(p)?))
            }
            // A listener row without remote fields: the kernel shows the family wildcard, port 0.
            (Proto::Tcp, _) => (Some(family.wildcard().to_string()), Some(0)),
        };
        let pid = match pid {
            Some(p) => Some(u32::try_from(p).map_err(|_| format!("PID {p} out of range"))?),
            None => None,
        };
        if let Some((_, p)) = time {
            self.note_precision(p);
        }
        let precision = time.map(|(_, p)| p).unwrap_or(Precision::None);
        Ok(CaptureRow {
            proto,
            family,
            local_addr,
            local_port,
            remote_addr,
            remote_port,
            state: if proto == Proto::Udp { None } else { state },
            pid,
            process: process.filter(|p| !p.trim().is_empty()),
            create_time: time.and_then(|(raw, _)| filetime::to_iso(raw)),
            create_time_raw: time.map(|(raw, _)| raw),
            source: self.format.name().to_string(),
            line,
            precision: precision.name().to_string(),
        })
    }
}

fn family_text(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

fn timestamp_ticks(ts: jiff::Timestamp) -> i128 {
    (ts.as_second() as i128) * filetime::TICKS_PER_SECOND
        + (ts.subsec_nanosecond() as i128) / 100
        + filetime::UNIX_EPOCH_TICKS
}

fn clamp_zero(ticks: i128, text: &str) -> std::result::Result<u64, String> {
    if ticks < ZERO_WINDOW_TICKS {
        if ticks < -ZERO_WINDOW_TICKS {
            return Err(format!("date before 1601 {text:?}"));
        }
        return Ok(0);
    }
    u64::try_from(ticks).map_err(|_| format!("date out of range {text:?}"))
}

fn port(p: u64) -> std::result::Result<u16, String> {
    u16::try_from(p).map_err(|_| format!("port {p} out of range"))
}

/// Canonical address text and family of `text`, accepting `[v6]`, `v6%scope` and surrounding spaces.
pub fn parse_addr(text: &str) -> Option<(Family, String)> {
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    let t = t.split('%').next().unwrap_or(t);
    match t.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some((Family::Ipv4, a.to_string())),
        IpAddr::V6(a) => Some((Family::Ipv6, a.to_string())),
    }
}

/// Splits `addr:port`, `[v6%scope]:port` or `*:*` (port `*` → 0).
pub fn split_host_port(text: &str) -> Option<(&str, u64)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let port = if port == "*" { 0 } else { port.parse().ok()? };
    Some((host, port))
}

/// A field by exact name, else case-insensitively (producers differ in key case).
pub fn field<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// A non-negative integer given as a JSON number or a numeric string (osquery renders all as strings).
pub fn json_u64(v: &Value) -> std::result::Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| format!("not a non-negative integer: {n}")),
        Value::String(s) if s.trim().is_empty() => Ok(0),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("not a non-negative integer: {s:?}")),
        other => Err(format!("expected a number, found {}", json_kind(other))),
    }
}

/// Text given as a JSON string or number.
pub fn json_text(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("expected text, found {}", json_kind(other))),
    }
}

pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes UTF-8 (BOM optional), UTF-16LE/BE with a BOM, and UTF-16LE without one (PowerShell 5.1's
/// `>` redirection writes UTF-16LE; some copies lose the BOM).
pub fn decode_text(bytes: &[u8]) -> std::result::Result<String, String> {
    let utf16 = |body: &[u8], big_endian: bool| -> String {
        let units = body.chunks_exact(2).map(|c| match (c, big_endian) {
            ([a, b], false) => u16::from_le_bytes([*a, *b]),
            ([a, b], true) => u16::from_be_bytes([*a, *b]),
            _ => 0xFFFD,
        });
        char::decode_utf16(units)
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    };
    if let Some(body) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return std::str::from_utf8(body)
            .map(str::to_string)
            .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to() + 3));
    }
    if let Some(body) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return Ok(utf16(body, false));
    }
    if let Some(body) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return Ok(utf16(body, true));
    }
    // Without a BOM, ASCII text in UTF-16 has a zero in every other byte.
    let sample = bytes.get(..bytes.len().min(512)).unwrap_or(bytes);
    let zeros_at = |parity: usize| {
        sample
            .iter()
            .enumerate()
            .filter(|(i, b)| i % 2 == parity && **b == 0)
            .count()
    };
    let pairs = sample.len() / 2;
    if pairs > 0 && zeros_at(1) * 10 >= pairs * 9 && zeros_at(0) == 0 {
        return Ok(utf16(bytes, false));
    }
    if pairs > 0 && zeros_at(0) * 10 >= pairs * 9 && zeros_at(1) == 0 {
        return Ok(utf16(bytes, true));
    }
    std::str::from_utf8(bytes).map(str::to_string).map_err(|e| {
        format!(
            "not UTF-8 or UTF-16 text (invalid byte at {})",
            e.valid_up_to()
        )
    })
}

/// A JSON capture's rows with their 1-based position (array index, or line for JSONL), plus the
/// top-level object when the file is one object (netcarve's own format).
pub struct JsonRows {
    pub top: Option<Map<String, Value>>,
    pub rows: Vec<(u64, Value)>,
    pub warnings: Vec<String>,
}

fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('{' | '['))
}

/// Parses a JSON document, a single object, PowerShell's `{"value": [...], "Count": n}` wrapper, or
/// JSONL. A truncated last JSONL line is skipped with a warning; any other syntax error is fatal.
fn load_json(text: &str) -> std::result::Result<JsonRows, String> {
    let whole: std::result::Result<Value, _> = serde_json::from_str(text);
    match whole {
        Ok(Value::Array(items)) => Ok(JsonRows {
            top: None,
            rows: number_rows(items),
            warnings: Vec::new(),
        }),
        Ok(Value::Object(obj)) => {
            if let Some(Value::Array(items)) = obj.get("value") {
                let items = items.clone();
                return Ok(JsonRows {
                    top: None,
                    rows: number_rows(items),
                    warnings: Vec::new(),
                });
            }
            let is_table = obj.get("tcp").is_some() || obj.get("udp").is_some();
            if is_table || obj.get("format").is_some() {
                return Ok(JsonRows {
                    top: Some(obj),
                    rows: Vec::new(),
                    warnings: Vec::new(),
                });
            }
            // ConvertTo-Json writes a single object, not an array, when there is one row.
            Ok(JsonRows {
                top: None,
                rows: vec![(1, Value::Object(obj))],
                warnings: Vec::new(),
            })
        }
        Ok(other) => Err(format!(
            "expected a JSON array or object, found {}",
            json_kind(&other)
        )),
        Err(whole_err) => {
            let lines: Vec<(u64, &str)> = text
                .lines()
                .enumerate()
                .map(|(i, l)| (i as u64 + 1, l.trim()))
                .filter(|(_, l)| !l.is_empty())
                .collect();
            let jsonl = lines.len() > 1 && lines.iter().all(|(_, l)| l.starts_with('{'));
            if !jsonl {
                return Err(format!(
                    "line {} column {}: invalid JSON ({})",
                    whole_err.line(),
                    whole_err.column(),
                    json_error_text(&whole_err)
                ));
            }
            let mut rows = Vec::new();
            let mut warnings = Vec::new();
            let last = lines.len() - 1;
            for (i, (line, l)) in lines.iter().enumerate() {
                match serde_json::from_str::<Value>(l) {
                    Ok(v) => rows.push((*line, v)),
                    Err(e) if i == last && !rows.is_empty() => warnings.push(format!(
                        "line {line}: skipped a truncated JSONL row ({})",
                        json_error_text(&e)
                    )),
                    Err(e) => {
                        return Err(format!(
                            "line {line}: invalid JSONL row ({})",
                            json_error_text(&e)
                        ))
                    }
                }
            }
            Ok(JsonRows {
                top: None,
                rows,
                warnings,
            })
        }
    }
}

/// serde_json's message without its own " at line L column C" tail (the caller names the line).
fn json_error_text(e: &serde_json::Error) -> String {
    let s = e.to_string();
    s.split(" at line ").next().unwrap_or(&s).to_string()
}

fn number_rows(items: Vec<Value>) -> Vec<(u64, Value)> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64 + 1, v))
        .collect()
}

/// Which producer wrote these rows, from their keys and values.
fn detect_json(doc: &JsonRows) -> std::result::Result<CaptureFormat, String> {
    if let Some(top) = &doc.top {
        return match top.get("format").and_then(Value::as_str) {
            Some("netcarve-capture") | None => Ok(CaptureFormat::Netcarve),
            Some(other) => Err(format!("unknown capture format {other:?}")),
        };
    }
    let first = doc
        .rows
        .iter()
        .find_map(|(_, v)| v.as_object())
        .ok_or("no JSON object rows to recognise the producer from")?;
    let has =
        |k: &str| field(first, k).is_some() || first.keys().any(|x| x.eq_ignore_ascii_case(k));
    if has("Laddr.IP") || has("Laddr") {
        return Ok(CaptureFormat::Velociraptor);
    }
    if has("OwningProcess") {
        return Ok(CaptureFormat::NetTcpIp);
    }
    if has("local_address") {
        return Ok(CaptureFormat::Osquery);
    }
    if has("ProcessId") || has("Timestamp") {
        // The Timestamp form tells the two PowerShell generations apart.
        let date_form = doc.rows.iter().find_map(|(_, v)| {
            let ts = field(v.as_object()?, "Timestamp")?;
            let ts = match ts {
                Value::Object(o) => field(o, "value")?,
                other => other,
            };
            ts.as_str().map(|s| s.contains("/Date("))
        });
        return Ok(if date_form.unwrap_or(false) {
            CaptureFormat::Ps51
        } else {
            CaptureFormat::Ps7
        });
    }
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.truncate(8);
    Err(format!(
        "unrecognised JSON capture (keys: {})",
        keys.join(", ")
    ))
}

/// Reads `path` whole, refusing it (one line naming it) past `max` bytes: read through
/// `Read::take`, so that a file without a size to check (`/dev/zero`, a pipe) is stopped there too.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = crate::evidence::open_input(path, what.trim_start_matches("a "))?;
    let too_large = || {
        Error::file(
            path,
            format!("more than {} MiB: too large for {what}", max >> 20),
        )
    };
    // A regular file's size says at once; reading would only find it out.
    if file.metadata().is_ok_and(|m| m.is_file() && m.len() > max) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, &e))?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads, detects (unless `forced`) and parses one capture file.
pub fn read_capture(
    path: &Path,
    forced: Option<CaptureFormat>,
    time: &TimeContext,
) -> Result<Capture> {
    let bytes = read_bounded(path, MAX_CAPTURE_BYTES, "a capture")?;
    let text = decode_text(&bytes).map_err(|m| Error::file(path, m))?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(Error::file(path, "empty capture"));
    }
    parse_text(path, text, forced, time)
}

/// Parses decoded capture text (the testable core of [`read_capture`]).
pub fn parse_text(
    path: &Path,
    text: &str,
    forced: Option<CaptureFormat>,
    time: &TimeContext,
) -> Result<Capture> {
    let file = path.display().to_string();
    let fail = |m: String| Error::file(path, m);
    let mut capture = Capture {
        file,
        format: forced.unwrap_or(CaptureFormat::Netstat),
        rows: Vec::new(),
        precision: Precision::None,
        collected_raw: None,
        host: None,
        utc_offset_minutes: None,
        tz_source: "none".to_string(),
        warnings: Vec::new(),
        unreadable: Vec::new(),
    };
    let is_json = looks_like_json(text);
    let format = match (forced, is_json) {
        (Some(CaptureFormat::Netstat), true) => {
            return Err(fail("JSON, not `netstat -ano` text".into()))
        }
        (Some(f), false) if f != CaptureFormat::Netstat => {
            return Err(fail(format!(
                "not JSON, so not a {} capture (does it start with {{ or [?)",
                f.name()
            )))
        }
        (_, false) => CaptureFormat::Netstat,
        (forced, true) => {
            let doc = load_json(text).map_err(fail)?;
            let format = match forced {
                Some(f) => f,
                None => detect_json(&doc).map_err(fail)?,
            };
            capture.format = format;
            capture.warnings.extend(doc.warnings.iter().cloned());
            let mut ctx = ParseContext::new(format, time);
            if format == CaptureFormat::Netcarve {
                let top = doc.top.as_ref().ok_or_else(|| {
                    fail("not a netcarve capture object (no \"tcp\"/\"udp\")".into())
                })?;
                netcarve::parse(&mut ctx, top, &mut capture).map_err(fail)?;
            } else {
                if doc.top.is_some() {
                    return Err(fail(format!(
                        "a netcarve capture object, not {} rows",
                        format.name()
                    )));
                }
                let total = doc.rows.len();
                let mut first_error = None;
                for (line, value) in &doc.rows {
                    let result = match value {
                        Value::Object(obj) => match format {
                            CaptureFormat::Ps51 | CaptureFormat::Ps7 => {
                                ps::parse_row(&mut ctx, *line, obj)
                            }
                            CaptureFormat::NetTcpIp => nettcpip::parse_row(&mut ctx, *line, obj),
                            CaptureFormat::Velociraptor => {
                                velociraptor::parse_row(&mut ctx, *line, obj)
                            }
                            CaptureFormat::Osquery => osquery::parse_row(&mut ctx, *line, obj),
                            CaptureFormat::Netcarve | CaptureFormat::Netstat => {
                                Err("unreachable format for a JSON row".to_string())
                            }
                        },
                        other => Err(format!("expected an object, found {}", json_kind(other))),
                    };
                    match result {
                        Ok(row) => capture.rows.push(row),
                        Err(m) => {
                            first_error.get_or_insert_with(|| format!("row {line}: {m}"));
                            let partial = || {
                                let obj = value.as_object()?;
                                salvage(obj, |obj| match format {
                                    CaptureFormat::Ps51 | CaptureFormat::Ps7 => {
                                        ps::parse_row(&mut ctx, *line, obj)
                                    }
                                    CaptureFormat::NetTcpIp => {
                                        nettcpip::parse_row(&mut ctx, *line, obj)
                                    }
                                    CaptureFormat::Velociraptor => {
                                        velociraptor::parse_row(&mut ctx, *line, obj)
                                    }
                                    CaptureFormat::Osquery => {
                                        osquery::parse_row(&mut ctx, *line, obj)
                                    }
                                    CaptureFormat::Netcarve | CaptureFormat::Netstat => {
                                        Err(String::new())
                                    }
                                })
                            };
                            record_unreadable(
                                &mut capture,
                                &format!("row {line}"),
                                *line,
                                None,
                                &m,
                                partial,
                            );
                        }
                    }
                }
                if capture.rows.is_empty() && total > 0 {
                    return Err(fail(first_error.unwrap_or_else(|| "no usable rows".into())));
                }
            }
            finish(&mut capture, &mut ctx);
            return Ok(capture);
        }
    };
    capture.format = format;
    let mut ctx = ParseContext::new(format, time);
    netstat::parse(&mut ctx, text, &mut capture).map_err(fail)?;
    finish(&mut capture, &mut ctx);
    Ok(capture)
}

/// What every format shares once its rows are read: precision and time-zone facts, the parsers'
/// warnings, text fields bounded, duplicate rows counted once, offsets no zone has flagged.
fn finish(capture: &mut Capture, ctx: &mut ParseContext) {
    capture.warnings.append(&mut ctx.warnings);
    let row_word = if capture.format == CaptureFormat::Netstat {
        "line"
    } else {
        "row"
    };
    for row in &mut capture.rows {
        if let Some(name) = &mut row.process {
            if let Some(len) = bound_text(name) {
                capture.warnings.push(format!(
                    "{row_word} {}: process name of {len} characters cut to {MAX_TEXT_CHARS}",
                    row.line
                ));
            }
        }
    }
    if let Some(host) = &mut capture.host {
        if let Some(len) = bound_text(host) {
            capture.warnings.push(format!(
                "host name of {len} characters cut to {MAX_TEXT_CHARS}"
            ));
        }
    }
    if let Some(offset) = capture.utc_offset_minutes {
        // Time zones run from UTC-12 to UTC+14.
        if offset.abs() > 14 * 60 {
            capture.warnings.push(format!(
                "utc_offset_minutes {offset} is beyond any time zone (UTC-12:00 to UTC+14:00)"
            ));
        }
    }
    drop_duplicates(capture, row_word);
    capture.precision = ctx
        .precisions
        .iter()
        .max()
        .copied()
        .unwrap_or(Precision::None);
    if !ctx.tz_used.is_empty() {
        capture.tz_source = ctx.tz_used.iter().copied().collect::<Vec<_>>().join("+");
    }
    if capture.rows.is_empty() {
        capture
            .warnings
            .push("the capture lists no endpoints".to_string());
    }
}

/// Cuts `text` to [`MAX_TEXT_CHARS`] characters (the last one `…`); the original length when it
/// was longer.
pub fn bound_text(text: &mut String) -> Option<usize> {
    text.char_indices().nth(MAX_TEXT_CHARS)?;
    let len = text.chars().count();
    let keep = text
        .char_indices()
        .nth(MAX_TEXT_CHARS - 1)
        .map_or(text.len(), |(i, _)| i);
    text.truncate(keep);
    text.push('…');
    Some(len)
}

/// A row listed again with every field equal is one endpoint listed twice (a collector run over
/// both halves of a table, a copy pasted twice): counted once, with a warning naming the copies.
fn drop_duplicates(capture: &mut Capture, row_word: &str) {
    use std::collections::hash_map::Entry;
    let mut first_of: HashMap<_, u64> = HashMap::new();
    let mut copies: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut duplicate = Vec::with_capacity(capture.rows.len());
    for row in &capture.rows {
        let key = (
            row.proto,
            row.family,
            row.local_addr.as_str(),
            row.local_port,
            row.remote_addr.as_deref(),
            row.remote_port,
            row.state,
            row.pid,
            row.process.as_deref(),
            row.create_time_raw,
        );
        match first_of.entry(key) {
            Entry::Vacant(v) => {
                v.insert(row.line);
                duplicate.push(false);
            }
            Entry::Occupied(o) => {
                copies.entry(*o.get()).or_default().push(row.line);
                duplicate.push(true);
            }
        }
    }
    if copies.is_empty() {
        return;
    }
    for (first, again) in &copies {
        let list: Vec<String> = again.iter().map(u64::to_string).collect();
        capture.warnings.push(format!(
            "{row_word} {first} is listed again ({row_word}s {}): counted once",
            list.join(", ")
        ));
    }
    let mut is_copy = duplicate.into_iter();
    capture.rows.retain(|_| !is_copy.next().unwrap_or(false));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_parse(format: CaptureFormat, text: &str, tz: &TimeContext) -> Option<(u64, Precision)> {
        ParseContext::new(format, tz).parse_date(text).ok()
    }

    #[test]
    fn dates_in_every_form() {
        let tz = TimeContext::default();
        let ms = 1_710_406_752_123i64;
        let expect = filetime::from_unix_millis(ms).unwrap();
        assert_eq!(
            ctx_parse(CaptureFormat::Ps51, "/Date(1710406752123)/", &tz),
            Some((expect, Precision::Millisecond))
        );
        assert_eq!(
            ctx_parse(CaptureFormat::Ps51, "/Date(1710406752123+0100)/", &tz),
            Some((expect, Precision::Millisecond))
        );
        assert_eq!(
            ctx_parse(CaptureFormat::Ps51, "/Date(-11644473600000)/", &tz),
            Some((0, Precision::Millisecond))
        );
        for zero in [
            "1601-01-01T01:00:00+01:00",
            "1600-12-31T19:00:00-05:00",
            "1601-01-01T00:00:00Z",
        ] {
            assert_eq!(
                ctx_parse(CaptureFormat::Ps7, zero, &tz).map(|t| t.0),
                Some(0),
                "{zero}"
            );
        }
        let local = TimeContext {
            capture_tz_minutes: Some(60),
            image_offset_minutes: Some(-300),
        };
        assert_eq!(
            ctx_parse(CaptureFormat::Ps7, "2024-03-14T09:59:12.1234567", &local).map(|t| t.0),
            filetime::from_iso("2024-03-14T08:59:12.1234567Z")
        );
        assert!(ctx_parse(CaptureFormat::Ps7, "yesterday", &tz).is_none());
        assert!(ctx_parse(CaptureFormat::Ps51, "/Date(99999999999999999999)/", &tz).is_none());
        assert!(ctx_parse(CaptureFormat::Ps51, "/Date(-99999999999999)/", &tz).is_none());
    }

    #[test]
    fn addresses_normalise() {
        assert_eq!(
            parse_addr("[fe80::0001%12]"),
            Some((Family::Ipv6, "fe80::1".to_string()))
        );
        assert_eq!(
            parse_addr(" 10.0.0.5 "),
            Some((Family::Ipv4, "10.0.0.5".into()))
        );
        assert_eq!(parse_addr("nope"), None);
        assert_eq!(split_host_port("[::]:135"), Some(("[::]", 135)));
        assert_eq!(split_host_port("*:*"), Some(("*", 0)));
        assert_eq!(split_host_port("1.2.3.4:99999999999999999999"), None);
    }

    #[test]
    fn text_encodings() {
        let s = "[{\"a\":1}]";
        let le: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let be: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let mut le_bom = vec![0xFF, 0xFE];
        le_bom.extend(&le);
        let mut be_bom = vec![0xFE, 0xFF];
        be_bom.extend(&be);
        let mut utf8_bom = vec![0xEF, 0xBB, 0xBF];
        utf8_bom.extend(s.as_bytes());
        for bytes in [le.clone(), le_bom, be_bom, utf8_bom, s.as_bytes().to_vec()] {
            assert_eq!(decode_text(&bytes).unwrap(), s);
        }
        assert!(decode_text(&[0x80, 0x81, 0x41]).is_err());
        // An odd trailing byte does not panic.
        let mut odd = vec![0xFF, 0xFE, 0x41];
        odd.push(0);
        odd.push(0x42);
        assert_eq!(decode_text(&odd).unwrap(), "A");
    }

    #[test]
    fn json_shapes() {
        assert_eq!(load_json("{\"a\":1}").unwrap().rows.len(), 1);
        assert_eq!(
            load_json("{\"value\":[{},{}],\"Count\":2}")
                .unwrap()
                .rows
                .len(),
            2
        );
        let jsonl = load_json("{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        assert_eq!(jsonl.rows.len(), 2);
        assert_eq!(jsonl.rows[1].0, 2);
        assert_eq!(jsonl.warnings.len(), 1);
        let err = load_json("[{\"a\":1},\n{\"a\":").err().unwrap();
        assert!(err.starts_with("line 2 column"), "{err}");
        assert!(load_json("42").is_err());
    }
}
