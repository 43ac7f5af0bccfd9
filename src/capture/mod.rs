//! Live-response captures of the user-mode endpoint tables, one parser file per producer, all
//! normalised into [`CaptureRow`]s. Parsers never panic: a bad file is a one-line error naming it,
//! a bad row is kept as [`Unreadable`] with a warning when the rest of the file is usable (compare
//! must not accuse an endpoint such a row may list).
use crate::error::{io_error, Cause, Error, Fault, Result};
use crate::record::{CaptureRow, Proto};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// `fault!(Value, "bad port {p}")`: a [`Fault`](crate::error::Fault) of that kind, its text
/// formatted as by `format!`.
macro_rules! fault {
    ($kind:ident, $($arg:tt)*) => {
        $crate::error::Fault::$kind(format!($($arg)*))
    };
}

mod json;
mod row;
mod text;
mod time;
mod words;

pub mod netcarve;
pub mod netstat;
pub mod nettcpip;
pub mod osquery;
pub mod ps;
pub mod pstext;
pub mod velociraptor;

use json::{detect_json, load_json, looks_like_json};
pub use json::{field, json_kind, json_text, json_u64, JsonRows};
pub use row::{parse_addr, record_unreadable, salvage, split_host_port, ParseContext};
pub use text::{decode, decode_text, CodePage, Decoded, TextEncoding, CODE_PAGES};
pub use time::{culture_order, DateOrder, TimeContext};

/// Captures larger than this are not live-response tables: reading stops here (a special file such
/// as `/dev/zero` has no size to check first) and the capture is refused.
const MAX_CAPTURE_BYTES: u64 = 256 << 20;

/// Longest text field (process, host) kept from a capture; longer ones are cut with a warning.
/// Windows image names are at most 260 characters; a longer one is not a name but an attack on
/// whatever renders it.
pub const MAX_TEXT_CHARS: usize = 1024;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaptureFormat {
    Netcarve,
    Ps51,
    Ps7,
    NetTcpIp,
    Velociraptor,
    Osquery,
    Netstat,
    /// PowerShell `Export-Csv` of Get-NetTCPConnection / Get-NetUDPEndpoint / Get-NetworkConnection.
    PsCsv,
    /// The same cmdlets through `Format-List` (`Name : value` records).
    PsList,
}

impl CaptureFormat {
    pub const ALL: [CaptureFormat; 9] = [
        CaptureFormat::Netcarve,
        CaptureFormat::Ps51,
        CaptureFormat::Ps7,
        CaptureFormat::NetTcpIp,
        CaptureFormat::Velociraptor,
        CaptureFormat::Osquery,
        CaptureFormat::Netstat,
        CaptureFormat::PsCsv,
        CaptureFormat::PsList,
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
            CaptureFormat::PsCsv => "pscsv",
            CaptureFormat::PsList => "pslist",
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
            // Culture-formatted text shows whole seconds.
            CaptureFormat::Velociraptor | CaptureFormat::PsCsv | CaptureFormat::PsList => {
                Precision::Second
            }
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
    /// The text encoding the file was read in (`utf-8`, `utf-16le`, `cp850`, `utf-8+cp850` when
    /// lines differ, `undecided` when bytes outside every row could not be told).
    pub encoding: String,
    /// How culture-formatted dates were read: the `--capture-culture` given, else the pattern
    /// found (`M/d/yyyy h:mm:ss tt`); `None` when the capture has none.
    pub culture: Option<String>,
    /// The protocols the capture covers, when its format says (Get-NetTCPConnection: TCP only);
    /// `None` when it does not say.
    pub protocols: Option<BTreeSet<Proto>>,
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
    pub reason: Fault,
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

/// What the command line says about every capture: `--capture-format`, `--capture-encoding`.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    pub format: Option<CaptureFormat>,
    pub encoding: Option<TextEncoding>,
    /// `--capture-culture`: its name and the date order it implies.
    pub culture: Option<(String, DateOrder)>,
}

/// Reads, detects (unless `forced`) and parses one capture file.
pub fn read_capture(
    path: &Path,
    forced: Option<CaptureFormat>,
    time: &TimeContext,
) -> Result<Capture> {
    let opts = CaptureOptions {
        format: forced,
        ..Default::default()
    };
    read_capture_with(path, &opts, time)
}

/// [`read_capture`] with every option.
pub fn read_capture_with(
    path: &Path,
    opts: &CaptureOptions,
    time: &TimeContext,
) -> Result<Capture> {
    let bytes = read_bounded(path, MAX_CAPTURE_BYTES, "a capture")?;
    let decoded =
        decode(&bytes, opts.encoding).map_err(|m| Error::cause(path, Cause::Capture(m)))?;
    let text = decoded.text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(Error::file(path, "empty capture"));
    }
    let mut capture = parse_text_with(path, text, opts, time)?;
    capture.encoding = decoded.encoding;
    // The file's encoding is said before its rows' problems.
    let mut warnings = decoded.warnings;
    warnings.append(&mut capture.warnings);
    capture.warnings = warnings;
    Ok(capture)
}

/// Parses decoded capture text (the testable core of [`read_capture`]).
pub fn parse_text(
    path: &Path,
    text: &str,
    forced: Option<CaptureFormat>,
    time: &TimeContext,
) -> Result<Capture> {
    let opts = CaptureOptions {
        format: forced,
        ..Default::default()
    };
    parse_text_with(path, text, &opts, time)
}

/// [`parse_text`] with every option.
fn parse_text_with(
    path: &Path,
    text: &str,
    opts: &CaptureOptions,
    time: &TimeContext,
) -> Result<Capture> {
    let forced = opts.format;
    let file = path.display().to_string();
    let fail = |m: Fault| Error::cause(path, Cause::Capture(m));
    let mut capture = Capture {
        file,
        format: forced.unwrap_or(CaptureFormat::Netstat),
        rows: Vec::new(),
        precision: Precision::None,
        collected_raw: None,
        host: None,
        utc_offset_minutes: None,
        tz_source: "none".to_string(),
        encoding: "utf-8".to_string(),
        culture: None,
        protocols: None,
        warnings: Vec::new(),
        unreadable: Vec::new(),
    };
    let is_json = looks_like_json(text);
    let is_text = |f: CaptureFormat| {
        matches!(
            f,
            CaptureFormat::Netstat | CaptureFormat::PsCsv | CaptureFormat::PsList
        )
    };
    let format = match (forced, is_json) {
        (Some(CaptureFormat::Netstat), true) => {
            return Err(fail(fault!(Structure, "JSON, not `netstat -ano` text")))
        }
        (Some(f), true) if is_text(f) => {
            return Err(fail(fault!(Structure, "JSON, not {} text", f.name())))
        }
        (Some(f), false) if !is_text(f) => {
            return Err(fail(fault!(
                Structure,
                "not JSON, so not a {} capture (does it start with {{ or [?)",
                f.name()
            )))
        }
        (Some(f), false) => f,
        (None, false) => pstext::detect(text).unwrap_or(CaptureFormat::Netstat),
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
                    fail(fault!(
                        Structure,
                        "not a netcarve capture object (no \"tcp\"/\"udp\")"
                    ))
                })?;
                netcarve::parse(&mut ctx, top, &mut capture).map_err(fail)?;
            } else {
                if doc.top.is_some() {
                    return Err(fail(fault!(
                        Structure,
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
                            CaptureFormat::Netcarve
                            | CaptureFormat::Netstat
                            | CaptureFormat::PsCsv
                            | CaptureFormat::PsList => {
                                Err(fault!(Structure, "unreachable format for a JSON row"))
                            }
                        },
                        other => Err(fault!(
                            Structure,
                            "expected an object, found {}",
                            json_kind(other)
                        )),
                    };
                    match result {
                        Ok(row) => capture.rows.push(row),
                        Err(m) => {
                            first_error.get_or_insert_with(|| m.clone().at(format!("row {line}")));
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
                                    CaptureFormat::Netcarve
                                    | CaptureFormat::Netstat
                                    | CaptureFormat::PsCsv
                                    | CaptureFormat::PsList => Err(fault!(Structure, "")),
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
                    return Err(fail(
                        first_error.unwrap_or_else(|| fault!(Structure, "no usable rows")),
                    ));
                }
            }
            finish(&mut capture, &mut ctx);
            return Ok(capture);
        }
    };
    capture.format = format;
    let mut ctx = ParseContext::new(format, time);
    match format {
        CaptureFormat::PsCsv | CaptureFormat::PsList => {
            pstext::parse(&mut ctx, text, opts.culture.as_ref(), &mut capture).map_err(fail)?
        }
        _ => netstat::parse(&mut ctx, text, &mut capture).map_err(fail)?,
    }
    finish(&mut capture, &mut ctx);
    Ok(capture)
}

/// Text formats number their rows by line.
fn is_text_format(f: CaptureFormat) -> bool {
    matches!(
        f,
        CaptureFormat::Netstat | CaptureFormat::PsCsv | CaptureFormat::PsList
    )
}

/// What every format shares once its rows are read: precision and time-zone facts, the parsers'
/// warnings, text fields bounded, duplicate rows counted once, offsets no zone has flagged.
fn finish(capture: &mut Capture, ctx: &mut ParseContext) {
    capture.warnings.append(&mut ctx.warnings);
    let row_word = if is_text_format(capture.format) {
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
