//! Memory versus live response: pairs carved endpoints with capture rows, classifies every pair and
//! single, and tabulates the zero (1601) timestamps for the research question.
use crate::capture::{Capture, Precision};
use crate::carve::health::KindHealth;
use crate::error::{io_error, Error, Result};
use crate::filetime;
use crate::record::{
    flag, CaptureRow, EndpointRecord, Family, ImageFacts, PoolStatus, Proto, TcpState,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The hypothesis the research summary tests.
pub const HYPOTHESIS: &str =
    "zero API timestamps are exactly the TCP connections whose kernel object has no time field";

/// The memory side: a scan's output, a synth truth.json, or a freshly scanned image.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MemorySide {
    #[serde(default)]
    pub image: ImageFacts,
    pub endpoints: Vec<EndpointRecord>,
    /// The layout health of the scan (its time-slot census answers the research question from
    /// memory); empty for a truth.json, whose `profile` is only a name.
    #[serde(default, deserialize_with = "scan_profile")]
    pub profile: MemoryProfile,
    /// `scan-json` or `image` (set by the loader, not read from the file).
    #[serde(skip)]
    pub source: String,
}

/// What compare reads of a scan's `profile`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MemoryProfile {
    #[serde(default)]
    pub health: Vec<KindHealth>,
}

fn scan_profile<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<MemoryProfile, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Scan(MemoryProfile),
        Name(#[allow(dead_code)] String),
    }
    Ok(match Either::deserialize(d)? {
        Either::Scan(p) => p,
        Either::Name(_) => MemoryProfile::default(),
    })
}

/// Longest memory-side JSON read (a scan of about 400,000 endpoints); larger is refused.
pub const MAX_MEMORY_JSON_BYTES: u64 = 256 << 20;

fn memory_json_too_large(path: &Path) -> Error {
    Error::file(
        path,
        format!(
            "more than {} MiB: too large for a scan JSON",
            MAX_MEMORY_JSON_BYTES >> 20
        ),
    )
}

/// Cuts every text field of the memory side's endpoints to
/// [`MAX_TEXT_CHARS`](crate::capture::MAX_TEXT_CHARS), with a warning naming the endpoint: a scan
/// JSON is a file anyone can edit, and a 70,000-character "process name" is an attack on the
/// renderers, not a name.
fn bound_memory_text(side: &mut MemorySide) {
    let max = crate::capture::MAX_TEXT_CHARS;
    let mut warnings = Vec::new();
    for (i, m) in side.endpoints.iter_mut().enumerate() {
        let mut fields: Vec<(&str, &mut String)> =
            vec![("local_addr", &mut m.local_addr), ("tag", &mut m.tag)];
        fields.extend(m.process.as_mut().map(|v| ("process", v)));
        fields.extend(m.process_raw.as_mut().map(|v| ("process_raw", v)));
        fields.extend(m.remote_addr.as_mut().map(|v| ("remote_addr", v)));
        fields.extend(m.create_time.as_mut().map(|v| ("create_time", v)));
        fields.extend(m.reason.as_mut().map(|v| ("reason", v)));
        fields.extend(m.flags.iter_mut().map(|v| ("flags", v)));
        for (name, text) in fields {
            if let Some(len) = crate::capture::bound_text(text) {
                warnings.push(format!(
                    "endpoint {} (at {}): {name} of {len} characters cut to {max}",
                    i + 1,
                    m.physical_offset
                ));
            }
        }
    }
    side.image.warnings.extend(warnings);
}

/// Reads `path` as a memory-side JSON when it is one (a JSON object with `endpoints`); `Ok(None)`
/// means "not JSON, treat it as an image".
pub fn load_memory_json(path: &Path) -> Result<Option<MemorySide>> {
    use std::io::Read;
    let mut file = crate::evidence::open_input(path, "memory image or scan JSON")?;
    let mut head = [0u8; 64];
    let n = file.read(&mut head).map_err(|e| io_error(path, &e))?;
    // JSON text starts `{"` (or `{}`) and has no control bytes; an image's first bytes rarely do.
    let head = head.get(..n).unwrap_or(&[]);
    let text_like = head
        .iter()
        .all(|b| !b.is_ascii_control() || b.is_ascii_whitespace());
    let mut significant = head.iter().filter(|b| !b.is_ascii_whitespace());
    let looks_json = text_like
        && significant.next() == Some(&b'{')
        && matches!(significant.next(), Some(b'"' | b'}'));
    if !looks_json {
        return Ok(None);
    }
    // The rest is read from the same handle (a pipe cannot be opened twice), with a bound.
    let mut bytes = head.to_vec();
    let rest_max = MAX_MEMORY_JSON_BYTES.saturating_sub(bytes.len() as u64);
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > MAX_MEMORY_JSON_BYTES)
    {
        return Err(memory_json_too_large(path));
    }
    file.take(rest_max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, &e))?;
    if bytes.len() as u64 > MAX_MEMORY_JSON_BYTES {
        return Err(memory_json_too_large(path));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::file(
            path,
            format!(
                "not UTF-8 text (invalid byte at {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::file(
            path,
            format!(
                "line {} column {}: invalid JSON ({})",
                e.line(),
                e.column(),
                e.to_string().split(" at line ").next().unwrap_or("")
            ),
        )
    })?;
    if value.get("endpoints").is_none() {
        return Err(Error::file(
            path,
            "JSON without \"endpoints\": not the output of `netcarve scan --format json`",
        ));
    }
    let mut side: MemorySide = serde_json::from_value(value)
        .map_err(|e| Error::file(path, format!("not a scan output: {e}")))?;
    side.source = "scan-json".to_string();
    bound_memory_text(&mut side);
    if side.image.file.is_none() {
        side.image.file = Some(path.display().to_string());
    }
    Ok(Some(side))
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    HiddenFromApi,
    /// Would be `hidden_from_api`, but a capture row that could not be read may list it.
    Uncertain,
    NotInMemory,
    PidMismatch,
    TimeMismatch,
    ApiZeroTime,
    StateChanged,
    CreatedAfterCapture,
    /// Allocated but not alive (ended, or its owner has): a past connection, not an alarm.
    Stale,
    FreedOnly,
    Match,
}

impl Class {
    pub const ALL: [Class; 11] = [
        Class::HiddenFromApi,
        Class::Uncertain,
        Class::NotInMemory,
        Class::PidMismatch,
        Class::TimeMismatch,
        Class::ApiZeroTime,
        Class::StateChanged,
        Class::CreatedAfterCapture,
        Class::Stale,
        Class::FreedOnly,
        Class::Match,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Class::HiddenFromApi => "hidden_from_api",
            Class::Uncertain => "uncertain",
            Class::NotInMemory => "not_in_memory",
            Class::PidMismatch => "pid_mismatch",
            Class::TimeMismatch => "time_mismatch",
            Class::ApiZeroTime => "api_zero_time",
            Class::StateChanged => "state_changed",
            Class::CreatedAfterCapture => "created_after_capture",
            Class::Stale => "stale",
            Class::FreedOnly => "freed_only",
            Class::Match => "match",
        }
    }
    /// Whether the class means memory and capture disagree (exit code 1).
    pub fn is_discrepancy(self) -> bool {
        !matches!(
            self,
            Class::Match | Class::FreedOnly | Class::CreatedAfterCapture | Class::Stale
        )
    }
}

/// Why the API showed a zero (1601) time, from the memory side.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    NoTimeField,
    KernelTimeZero,
    KernelHasTime,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::NoTimeField => "no_time_field",
            Cause::KernelTimeZero => "kernel_time_zero",
            Cause::KernelHasTime => "kernel_has_time",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CompareRow {
    pub class: Class,
    /// The capture file this row belongs to (each `--live` file is compared separately).
    pub capture_file: String,
    pub memory: Option<EndpointRecord>,
    pub capture: Option<CaptureRow>,
    /// memory − capture creation time, when both have a non-zero time.
    pub delta_seconds: Option<f64>,
    pub cause: Option<Cause>,
    pub note: String,
}

/// A capture's facts as the report shows them.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureInfo {
    pub file: String,
    pub format: String,
    pub rows: usize,
    pub host: Option<String>,
    pub precision: String,
    /// The time tolerance applied, in seconds (`null`: the format has no times).
    pub tolerance_seconds: Option<f64>,
    pub collected: Option<String>,
    pub collected_raw: Option<u64>,
    /// `capture` (the file says when), `option` (`--capture-time`), `assumed_acquisition_time`, or `unknown`.
    pub collected_source: String,
    pub utc_offset_minutes: Option<i64>,
    pub tz_source: String,
    /// The text encoding the capture was read in (`utf-8`, `cp850`, ...).
    pub encoding: String,
    /// How culture-formatted dates were read (`--capture-culture`, or the pattern found).
    pub culture: Option<String>,
    /// Whether the capture belongs to the image's host, from what the two have in common.
    pub host_check: HostCheck,
    /// The protocols the capture lists (a TCP-only tool says nothing of UDP endpoints).
    pub protocols: Vec<Proto>,
    /// Memory endpoints of a protocol the capture does not cover: not compared, not accused.
    pub not_compared: usize,
    pub warnings: Vec<String>,
}

/// What a capture and the memory have in common: a capture of another host pairs with nothing and
/// shares no local address, and comparing it would accuse every endpoint in memory.
#[derive(Clone, Debug, Serialize)]
pub struct HostCheck {
    /// `same_host`, `weak` (six or more rows, under a tenth pairing) or `mismatch` (none pairing
    /// and none of the capture's local addresses among memory's); counted over the rows on a
    /// specific local address (not a wildcard or loopback one).
    pub verdict: &'static str,
    pub capture_rows: usize,
    pub paired_rows: usize,
    /// The capture's specific local addresses (not wildcard or loopback), and how many of them
    /// memory's endpoints also hold.
    pub local_addresses: usize,
    pub local_addresses_in_memory: usize,
    /// A few of the capture's local addresses, for the message.
    pub sample_addresses: Vec<String>,
}

/// Rows a capture must have before "few pair" is worth a warning.
const HOST_CHECK_MIN_ROWS: usize = 6;

/// `paired[i]`: whether capture row `i` paired with an endpoint in memory. Only rows on a specific
/// local address count: every Windows host listens on 0.0.0.0:135 and :445 with the same PIDs, so
/// wildcard listeners pair across hosts.
fn host_check(memory: &[EndpointRecord], rows: &[CaptureRow], paired: &[bool]) -> HostCheck {
    let specific = |a: &str| !is_wildcard(Some(a)) && !a.starts_with("127.") && a != "::1";
    let specific_rows = rows.iter().filter(|r| specific(&r.local_addr)).count();
    let paired = rows
        .iter()
        .zip(paired)
        .filter(|(r, &p)| p && specific(&r.local_addr))
        .count();
    let mut capture_addrs: Vec<&str> = rows
        .iter()
        .map(|r| r.local_addr.as_str())
        .filter(|a| specific(a))
        .collect();
    capture_addrs.sort_unstable();
    capture_addrs.dedup();
    let memory_addrs: std::collections::BTreeSet<&str> =
        memory.iter().map(|m| m.local_addr.as_str()).collect();
    let memory_has_specific = memory_addrs.iter().any(|a| specific(a));
    let in_memory = capture_addrs
        .iter()
        .filter(|a| memory_addrs.contains(*a))
        .count();
    // A host's own address is on every connection it makes: when memory holds specific local
    // addresses and the capture's are none of them, and nothing pairs, it is another host, however
    // few its rows (a changed DHCP lease is what --allow-mismatch is for).
    let verdict = if capture_addrs.is_empty() {
        "same_host"
    } else if paired == 0 && in_memory == 0 && memory_has_specific {
        "mismatch"
    } else if specific_rows >= HOST_CHECK_MIN_ROWS && paired * 10 < specific_rows {
        "weak"
    } else {
        "same_host"
    };
    HostCheck {
        verdict,
        capture_rows: specific_rows,
        paired_rows: paired,
        local_addresses: capture_addrs.len(),
        local_addresses_in_memory: in_memory,
        sample_addresses: capture_addrs
            .iter()
            .take(3)
            .map(|a| a.to_string())
            .collect(),
    }
}

impl HostCheck {
    /// The evidence in words: "0 of 97 capture rows pair with memory; its local addresses
    /// (172.16.50.130) never appear in memory".
    pub fn evidence(&self) -> String {
        let addresses = if self.local_addresses == 0 {
            "it lists no specific local address".to_string()
        } else {
            format!(
                "{} of its {} local addresses ({}{}) appear in memory",
                self.local_addresses_in_memory,
                self.local_addresses,
                self.sample_addresses.join(", "),
                if self.local_addresses > self.sample_addresses.len() {
                    ", ..."
                } else {
                    ""
                }
            )
        };
        format!(
            "{} of {} capture rows on a specific local address pair with an endpoint in memory; {addresses}",
            self.paired_rows, self.capture_rows
        )
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub discrepancies: usize,
    pub by_class: BTreeMap<&'static str, usize>,
    /// Per capture file, the same counts.
    pub by_capture: BTreeMap<String, BTreeMap<&'static str, usize>>,
}

/// One cell of the zero-timestamp tabulation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ZeroTally {
    /// `memory` or `capture`.
    pub side: &'static str,
    pub build: u32,
    pub proto: Proto,
    /// The pool tag (for capture rows: of the paired memory object, if any).
    pub tag: Option<String>,
    pub state: Option<String>,
    /// `zero_time`, `no_time_field` (memory) or `api_zero` (capture raw 0).
    pub kind: &'static str,
    pub count: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ResearchCounts {
    /// Capture rows (from formats with times) whose creation time is 0.
    pub api_zero_rows: usize,
    pub api_zero_unpaired: usize,
    pub api_zero_on_no_time_field: usize,
    pub api_zero_on_kernel_time_zero: usize,
    pub api_zero_on_kernel_time: usize,
    /// Memory objects without a time field paired with a timed capture row.
    pub no_time_field_paired: usize,
    pub no_time_field_api_zero: usize,
    pub no_time_field_api_nonzero: usize,
    /// Zero API rows on objects that are not TCP connections (listeners, UDP), leaving out those
    /// whose kernel time is zero too.
    pub api_zero_not_tcp_connection: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Research {
    pub hypothesis: &'static str,
    pub builds: Vec<u32>,
    pub table: Vec<ZeroTally>,
    pub counts: ResearchCounts,
    /// `supported`, `refuted` or `inconclusive`.
    pub verdict: &'static str,
    pub reasoning: String,
    /// The scan's time-slot census, per kind it ran for: whether memory holds a creation time
    /// where the profile says there is none (or none where it says there is one).
    pub census: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub image: ImageFacts,
    /// `scan-json` or `image`.
    pub memory_source: String,
    pub captures: Vec<CaptureInfo>,
    pub rows: Vec<CompareRow>,
    pub summary: Summary,
    pub research: Research,
}

impl Report {
    /// 0 when memory and every capture agree, 1 when something disagrees.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.summary.discrepancies > 0)
    }
}

#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// `--tolerance` in 100 ns ticks, overriding each format's default.
    pub tolerance_ticks: Option<u64>,
    /// `--capture-time`: when the captures were taken (FILETIME), for formats that do not say.
    pub capture_time: Option<u64>,
}

/// Matching key: everything but PID. Remote is `None` for UDP.
fn key_of_memory(m: &EndpointRecord) -> (Proto, Family, &str, u16, Option<&str>, Option<u16>) {
    (
        m.proto,
        m.family,
        m.local_addr.as_str(),
        m.local_port,
        m.remote_addr.as_deref().filter(|_| m.proto == Proto::Tcp),
        m.remote_port.filter(|_| m.proto == Proto::Tcp),
    )
}

fn key_of_capture(c: &CaptureRow) -> (Proto, Family, &str, u16, Option<&str>, Option<u16>) {
    (
        c.proto,
        c.family,
        c.local_addr.as_str(),
        c.local_port,
        c.remote_addr.as_deref().filter(|_| c.proto == Proto::Tcp),
        c.remote_port.filter(|_| c.proto == Proto::Tcp),
    )
}

fn is_wildcard(addr: Option<&str>) -> bool {
    matches!(addr, None | Some("0.0.0.0") | Some("::"))
}

/// A dual-stack memory object (`::` with `dual_stack`) also serves the API's `0.0.0.0` row.
fn dual_stack_matches(m: &EndpointRecord, c: &CaptureRow) -> bool {
    m.dual_stack
        && m.proto == c.proto
        && m.local_port == c.local_port
        && c.family == Family::Ipv4
        && c.local_addr == "0.0.0.0"
        && (m.proto == Proto::Udp
            || (is_wildcard(m.remote_addr.as_deref())
                && is_wildcard(c.remote_addr.as_deref())
                && m.remote_port.unwrap_or(0) == c.remote_port.unwrap_or(0)))
}

/// PIDs agree, or one side cannot know: TIME_WAIT rows and exited owners show PID 0 in the API,
/// and objects without a valid owner have no PID in memory.
fn pids_compatible(m: &EndpointRecord, c: &CaptureRow) -> bool {
    match (m.pid, c.pid) {
        (Some(mp), Some(cp)) => mp == cp || cp == 0,
        _ => true,
    }
}

/// `chrome`, `chrome.exe` and `CHROME.EXE` are one process; memory truncates names to 15 bytes.
fn same_process(memory_name: &str, capture_name: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        s.strip_suffix(".exe").map(str::to_string).unwrap_or(s)
    };
    let (m, c) = (norm(memory_name), norm(capture_name));
    if m == c {
        return true;
    }
    let m_raw = memory_name.trim().to_ascii_lowercase();
    let c_raw = capture_name.trim().to_ascii_lowercase();
    // Memory keeps 14-15 bytes of a one-byte code page: count characters, not UTF-8 bytes.
    m_raw.chars().count() >= 14
        && (c_raw.starts_with(&m_raw) || format!("{c}.exe").starts_with(&m_raw))
}

/// Process names agree, or one side has none.
fn names_agree(m: &EndpointRecord, c: &CaptureRow) -> bool {
    match (&m.process, &c.process) {
        (Some(a), Some(b)) => same_process(a, b),
        _ => true,
    }
}

fn tolerance_for(row: &CaptureRow, opts: &CompareOptions) -> Option<u64> {
    let default = Precision::from_name(&row.precision).default_tolerance_ticks()?;
    Some(opts.tolerance_ticks.unwrap_or(default))
}

/// Classifies one memory/capture pair; the most serious difference names the class, the note
/// lists every difference.
fn classify_pair(
    m: &EndpointRecord,
    c: &CaptureRow,
    opts: &CompareOptions,
    via_dual_stack: bool,
) -> (Class, Option<Cause>, Option<f64>, String) {
    let mut notes: Vec<String> = Vec::new();
    let mut class = Class::Match;
    let mut cause = None;
    let mut delta = None;
    let raise = |class: &mut Class, new: Class| {
        if new < *class {
            *class = new;
        }
    };
    if via_dual_stack {
        notes.push("dual-stack object also listed by the API as 0.0.0.0".into());
    }
    if m.pool_status == PoolStatus::Freed {
        notes.push("memory object is freed".into());
    }
    if let (Some(mp), Some(cp)) = (m.pid, c.pid) {
        if mp != cp && cp != 0 {
            raise(&mut class, Class::PidMismatch);
            notes.push(format!("PID {mp} in memory, {cp} in the API"));
        }
    }
    if let (Some(mn), Some(cn)) = (&m.process, &c.process) {
        if !same_process(mn, cn) {
            // Raw names: text renderings escape them, JSON keeps them exact.
            notes.push(format!("process \"{mn}\" in memory, \"{cn}\" in the API"));
        }
    }
    let memory_time = if m.has_flag(flag::NO_TIME_FIELD) {
        None
    } else {
        m.create_time_raw
    };
    if let (Some(ct), Some(tolerance)) = (c.create_time_raw, tolerance_for(c, opts)) {
        if ct == 0 {
            raise(&mut class, Class::ApiZeroTime);
            let why = match memory_time {
                None => Cause::NoTimeField,
                Some(0) => Cause::KernelTimeZero,
                Some(_) => Cause::KernelHasTime,
            };
            cause = Some(why);
            notes.push(match why {
                Cause::NoTimeField => {
                    "API time is 1601 (zero); the kernel object has no time field".into()
                }
                Cause::KernelTimeZero => {
                    "API time is 1601 (zero); the kernel object's time is zero too".into()
                }
                Cause::KernelHasTime => format!(
                    "API time is 1601 (zero) but the kernel holds {}",
                    memory_time.and_then(filetime::to_iso).unwrap_or_default()
                ),
            });
        } else if let Some(mt) = memory_time {
            let d = filetime::delta_seconds(mt, ct);
            delta = (mt != 0).then_some(d);
            if mt == 0 {
                raise(&mut class, Class::TimeMismatch);
                notes.push("kernel time is zero (1601) but the API shows a time".into());
            } else if mt.abs_diff(ct) > tolerance {
                raise(&mut class, Class::TimeMismatch);
                notes.push(format!(
                    "create time differs by {d:+.7} s (tolerance {} s)",
                    tolerance as f64 / 1e7
                ));
            }
        } else {
            notes.push("kernel object has no time field; API time not checked".into());
        }
    }
    if let (Some(ms), Some(cs)) = (m.state, c.state) {
        if ms != cs {
            raise(&mut class, Class::StateChanged);
            notes.push(format!("state {ms} in memory, {cs} in the API"));
        }
    }
    (class, cause, delta, notes.join("; "))
}

/// Pairs one capture's rows with memory records: exact key and compatible PID first, then the
/// dual-stack `0.0.0.0` rows, then exact key with another PID, then dual stack with another PID.
/// Among candidates: allocated before freed, then the closest create time, then physical offset.
fn pair_rows(
    memory: &[EndpointRecord],
    rows: &[CaptureRow],
) -> (Vec<Option<(usize, bool)>>, Vec<bool>) {
    let mut pair_of_row: Vec<Option<(usize, bool)>> = vec![None; rows.len()];
    let mut memory_used = vec![false; memory.len()];
    // Indexes keep pairing linear in practice: benchmark images hold thousands of endpoints.
    let mut by_key: HashMap<_, Vec<usize>> = HashMap::new();
    let mut dual_by_port: HashMap<(Proto, u16), Vec<usize>> = HashMap::new();
    for (mi, m) in memory.iter().enumerate() {
        by_key.entry(key_of_memory(m)).or_default().push(mi);
        if m.dual_stack {
            dual_by_port
                .entry((m.proto, m.local_port))
                .or_default()
                .push(mi);
        }
    }
    for (dual, need_pid) in [(false, true), (true, true), (false, false), (true, false)] {
        for (ri, row) in rows.iter().enumerate() {
            if pair_of_row.get(ri).copied().flatten().is_some() {
                continue;
            }
            let candidates = if dual {
                dual_by_port.get(&(row.proto, row.local_port))
            } else {
                by_key.get(&key_of_capture(row))
            };
            let best = candidates
                .into_iter()
                .flatten()
                .filter_map(|&mi| memory.get(mi).map(|m| (mi, m)))
                .inspect(|_| count_weighed())
                .filter(|(mi, m)| {
                    // A dual-stack object may serve both the `::` and the `0.0.0.0` row.
                    let available = if dual {
                        dual_stack_matches(m, row)
                    } else {
                        !memory_used.get(*mi).copied().unwrap_or(true)
                    };
                    available && (!need_pid || pids_compatible(m, row))
                })
                .min_by_key(|(_, m)| {
                    let time_gap = match (m.create_time_raw, row.create_time_raw) {
                        (Some(a), Some(b)) => a.abs_diff(b),
                        _ => u64::MAX,
                    };
                    (
                        m.pool_status == PoolStatus::Freed,
                        !pids_compatible(m, row),
                        !names_agree(m, row),
                        time_gap,
                        m.physical_offset.0,
                    )
                })
                .map(|(mi, _)| mi);
            if let Some(mi) = best {
                if let Some(slot) = pair_of_row.get_mut(ri) {
                    *slot = Some((mi, dual));
                }
                if let Some(used) = memory_used.get_mut(mi) {
                    *used = true;
                }
            }
        }
    }
    (pair_of_row, memory_used)
}

// Test builds count the memory records pairing weighs, so a test can hold pairing to linear work:
// wall time cannot tell, since a quadratic pairing of 20,000 rows also ends in seconds in release.
#[cfg(test)]
thread_local!(static WEIGHED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });

#[inline]
fn count_weighed() {
    #[cfg(test)]
    WEIGHED.with(|w| w.set(w.get() + 1));
}

/// Compares the memory side with every capture (each separately).
pub fn compare(memory: &MemorySide, captures: &[Capture], opts: &CompareOptions) -> Report {
    let acquisition = memory.image.system_time_raw;
    let build = memory.image.nt.build;
    let mut rows = Vec::new();
    let mut infos = Vec::new();
    let mut research = ResearchAccumulator::default();
    research.tally_memory(&memory.endpoints, build);
    for capture in captures {
        let (collected_raw, collected_source) = match (capture.collected_raw, acquisition) {
            (Some(t), _) => (Some(t), "capture"),
            (None, _) if opts.capture_time.is_some() => (opts.capture_time, "option"),
            (None, Some(t)) => (Some(t), "assumed_acquisition_time"),
            (None, None) => (None, "unknown"),
        };
        let (pairs, memory_used) = pair_rows(&memory.endpoints, &capture.rows);
        let paired: Vec<bool> = (0..capture.rows.len())
            .map(|i| pairs.get(i).copied().flatten().is_some())
            .collect();
        let host = host_check(&memory.endpoints, &capture.rows, &paired);
        let mut warnings = capture.warnings.clone();
        if host.verdict == "weak" {
            warnings.push(format!(
                "is this capture from this host? {}",
                host.evidence()
            ));
        }
        let protocols = covered_protocols(capture);
        let not_compared = memory
            .endpoints
            .iter()
            .filter(|m| !protocols.contains(&m.proto))
            .count();
        if not_compared > 0 {
            warnings.push(format!(
                "lists no {} endpoint: {not_compared} {} endpoint(s) in memory not compared with it",
                uncovered_names(&protocols),
                uncovered_names(&protocols)
            ));
        }
        let default_tolerance = capture.precision.default_tolerance_ticks();
        infos.push(CaptureInfo {
            file: capture.file.clone(),
            format: capture.format.name().to_string(),
            rows: capture.rows.len(),
            host: capture.host.clone(),
            precision: capture.precision.name().to_string(),
            tolerance_seconds: default_tolerance
                .map(|d| opts.tolerance_ticks.unwrap_or(d) as f64 / 1e7),
            collected: collected_raw.and_then(filetime::to_iso),
            collected_raw,
            collected_source: collected_source.to_string(),
            utc_offset_minutes: capture.utc_offset_minutes,
            tz_source: capture.tz_source.clone(),
            encoding: capture.encoding.clone(),
            culture: capture.culture.clone(),
            host_check: host,
            protocols: protocols.clone(),
            not_compared,
            warnings,
        });
        for (ri, row) in capture.rows.iter().enumerate() {
            let pair = pairs.get(ri).copied().flatten();
            let paired_memory = pair.and_then(|(mi, _)| memory.endpoints.get(mi));
            research.tally_capture(row, paired_memory, build);
            let out = match (pair, paired_memory) {
                (Some((_, dual)), Some(m)) => {
                    let (class, cause, delta, note) = classify_pair(m, row, opts, dual);
                    CompareRow {
                        class,
                        capture_file: capture.file.clone(),
                        memory: Some(m.clone()),
                        capture: Some(row.clone()),
                        delta_seconds: delta,
                        cause,
                        note,
                    }
                }
                _ => CompareRow {
                    class: Class::NotInMemory,
                    capture_file: capture.file.clone(),
                    memory: None,
                    capture: Some(row.clone()),
                    delta_seconds: None,
                    cause: None,
                    note: "listed by the API, not carved from memory (closed before acquisition, or smear)"
                        .into(),
                },
            };
            rows.push(out);
        }
        for (mi, m) in memory.endpoints.iter().enumerate() {
            if memory_used.get(mi).copied().unwrap_or(false) || !protocols.contains(&m.proto) {
                continue;
            }
            let (mut class, mut note) = classify_single(
                m,
                collected_raw,
                collected_source != "assumed_acquisition_time",
            );
            if class == Class::HiddenFromApi {
                if let Some(why) = unreadable_cover(m, capture) {
                    class = Class::Uncertain;
                    note = why;
                }
            }
            rows.push(CompareRow {
                class,
                capture_file: capture.file.clone(),
                memory: Some(m.clone()),
                capture: None,
                delta_seconds: None,
                cause: None,
                note,
            });
        }
    }
    rows.sort_by_key(row_order);
    let summary = summarise(&rows, &infos);
    Report {
        image: memory.image.clone(),
        memory_source: memory.source.clone(),
        captures: infos,
        rows,
        summary,
        research: Research {
            census: memory
                .profile
                .health
                .iter()
                .filter_map(|h| h.census.as_ref().map(|c| c.finding.clone()))
                .collect(),
            ..research.finish()
        },
    }
}

/// The protocols a capture covers: those of its rows, readable or not (a row of which not even
/// the protocol was read may be of either).
fn covered_protocols(capture: &Capture) -> Vec<Proto> {
    let mut covered: Vec<Proto> = match &capture.protocols {
        // What the format says was asked (Get-NetTCPConnection: TCP only).
        Some(asked) => asked.iter().copied().collect(),
        None => capture.rows.iter().map(|r| r.proto).collect(),
    };
    for u in &capture.unreadable {
        match u.proto {
            Some(p) => covered.push(p),
            None => covered.extend([Proto::Tcp, Proto::Udp]),
        }
    }
    covered.sort_unstable();
    covered.dedup();
    covered
}

/// "UDP", "TCP or UDP": the protocols a capture leaves out.
fn uncovered_names(covered: &[Proto]) -> &'static str {
    match (covered.contains(&Proto::Tcp), covered.contains(&Proto::Udp)) {
        (true, false) => "UDP",
        (false, true) => "TCP",
        _ => "TCP or UDP",
    }
}

/// Why `m`, absent from the capture's readable rows, is not accused: a row that could not be read
/// may list it. A partial row covers the endpoints its readable fields agree with (fields named
/// like the one left out are not compared); a row of which nothing was read covers every endpoint
/// of its protocol (every endpoint, when even that is unknown).
fn unreadable_cover(m: &EndpointRecord, capture: &Capture) -> Option<String> {
    let covers = |u: &crate::capture::Unreadable| -> bool {
        if u.proto.is_some_and(|p| p != m.proto) {
            return false;
        }
        let Some((row, field)) = &u.partial else {
            return true;
        };
        let field = field.to_ascii_lowercase();
        let local_unknown = field.contains("local") || field.starts_with("laddr");
        let remote_unknown = field.contains("remote") || field.starts_with("raddr");
        let local = local_unknown
            || (row.local_port == m.local_port
                && (row.local_addr == m.local_addr || dual_stack_matches(m, row)));
        let remote = remote_unknown
            || m.proto == Proto::Udp
            || (row.remote_addr == m.remote_addr && row.remote_port == m.remote_port);
        local && remote
    };
    let u = capture
        .unreadable
        .iter()
        .find(|u| u.partial.is_some() && covers(u))
        .or_else(|| capture.unreadable.iter().find(|u| covers(u)))?;
    Some(match &u.partial {
        Some((_, field)) => format!(
            "not accused: capture row {} unreadable ({}), and its other fields match this \
             endpoint ({field:?} left out)",
            u.line, u.reason
        ),
        None => format!(
            "not accused: capture row {} unreadable ({}), nothing in it readable; it may list \
             this endpoint",
            u.line, u.reason
        ),
    })
}

/// An allocated object the capture does not list is hidden when it is alive and was created
/// before the capture. tcpip's own tables are not walked, so alive rests on the object itself: a
/// state that is not CLOSED or DELETE_TCB, and an owner that is a process which has not exited
/// (TIME_WAIT needs none). Without a create time (field absent, or no capture time) opening after
/// the capture cannot be ruled out, and the note says so rather than hiding a rootkit candidate.
fn classify_single(
    m: &EndpointRecord,
    collected: Option<u64>,
    collected_known: bool,
) -> (Class, String) {
    if m.pool_status == PoolStatus::Freed {
        return (
            Class::FreedOnly,
            "freed object with no counterpart in the API".into(),
        );
    }
    let alive = match liveness(m) {
        Ok(evidence) => evidence,
        Err(why) => return (Class::Stale, why),
    };
    let created = if m.has_flag(flag::NO_TIME_FIELD) {
        None
    } else {
        m.create_time_raw.filter(|t| *t != 0)
    };
    let (class, note) = match (created, collected) {
        (Some(t), Some(c)) if t > c => {
            return (
                Class::CreatedAfterCapture,
                format!(
                    "created {:.3} s after the capture; absent from it as expected",
                    filetime::delta_seconds(t, c)
                ),
            )
        }
        (Some(_), Some(_)) if collected_known => (
            Class::HiddenFromApi,
            "allocated in memory, created before the capture, not listed by the API",
        ),
        (Some(_), Some(_)) => (
            Class::HiddenFromApi,
            "allocated in memory, created before the acquisition, not listed by the API (the capture \
             has no collection time; if it was taken earlier, check whether this was opened in between)",
        ),
        _ => (
            Class::HiddenFromApi,
            "allocated in memory, not listed by the API (this object has no create time, so opening \
             after the capture cannot be ruled out)",
        ),
    };
    (class, format!("{note}; alive: {alive}"))
}

/// `Ok`: the evidence that `m` is alive; `Err`: why it is stale. The object's own fields decide,
/// since a connection that ended or whose process exited stays in pool until its last reference
/// goes (real Windows 7 images show most carved TCP objects CLOSED).
fn liveness(m: &EndpointRecord) -> std::result::Result<String, String> {
    if let Some(state @ (TcpState::Closed | TcpState::DeleteTcb)) = m.state {
        return Err(format!(
            "state {}: the connection has ended and its object is not yet freed",
            state.name()
        ));
    }
    let owner = || {
        format!(
            "{} (PID {})",
            m.process.as_deref().unwrap_or("?"),
            m.pid.map_or("?".to_string(), |p| p.to_string())
        )
    };
    if m.has_flag(flag::OWNER_EXITED) {
        return Err(format!(
            "its owner {} exited at {}: its endpoints closed with it",
            owner(),
            m.process_exit_time.as_deref().unwrap_or("?")
        ));
    }
    let time_wait = m.state == Some(TcpState::TimeWait);
    if m.has_flag(flag::NO_OWNER) && !time_wait {
        return Err(
            "no process owns it (its owner pointer leads to no _EPROCESS): what opened it is gone"
                .into(),
        );
    }
    let state = match (m.state, m.proto) {
        (Some(s), _) => format!("state {}", s.name()),
        (None, Proto::Udp) => "a bound UDP endpoint".to_string(),
        (None, Proto::Tcp) => "no state field".to_string(),
    };
    let owner = match (m.pid, time_wait) {
        (Some(_), _) => format!("owner {} has not exited", owner()),
        (None, true) => "a TIME_WAIT needs no owner".to_string(),
        (None, false) => "its layout has no owner field".to_string(),
    };
    Ok(format!("{state}, {owner} (tcpip's tables were not walked)"))
}

/// Discrepancies first (`hidden_from_api` first), then capture, then memory offset, then line.
fn row_order(r: &CompareRow) -> (Class, String, u64, String, u64) {
    (
        r.class,
        r.capture_file.clone(),
        r.memory
            .as_ref()
            .map(|m| m.physical_offset.0)
            .unwrap_or(u64::MAX),
        r.memory.as_ref().map(|m| m.tag.clone()).unwrap_or_default(),
        r.capture.as_ref().map(|c| c.line).unwrap_or(0),
    )
}

fn summarise(rows: &[CompareRow], captures: &[CaptureInfo]) -> Summary {
    let zeroed = || {
        Class::ALL
            .iter()
            .map(|c| (c.name(), 0usize))
            .collect::<BTreeMap<_, _>>()
    };
    let mut summary = Summary {
        discrepancies: 0,
        by_class: zeroed(),
        by_capture: captures
            .iter()
            .map(|c| (c.file.clone(), zeroed()))
            .collect(),
    };
    for r in rows {
        if r.class.is_discrepancy() {
            summary.discrepancies += 1;
        }
        *summary.by_class.entry(r.class.name()).or_default() += 1;
        if let Some(per) = summary.by_capture.get_mut(&r.capture_file) {
            *per.entry(r.class.name()).or_default() += 1;
        }
    }
    summary
}

/// `1 API row shows`, `3 API rows show`: counts read as sentences.
fn rows(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// (side, build, proto, tag, state, kind).
type TallyKey = (
    &'static str,
    u32,
    Proto,
    Option<String>,
    Option<String>,
    &'static str,
);

#[derive(Default)]
struct ResearchAccumulator {
    builds: std::collections::BTreeSet<u32>,
    tally: BTreeMap<TallyKey, usize>,
    counts: ResearchCounts,
}

impl ResearchAccumulator {
    fn tally_memory(&mut self, endpoints: &[EndpointRecord], build: u32) {
        self.builds.insert(build);
        for m in endpoints {
            let kind = if m.has_flag(flag::NO_TIME_FIELD) {
                "no_time_field"
            } else if m.create_time_raw == Some(0) || m.has_flag(flag::ZERO_TIME) {
                "zero_time"
            } else {
                continue;
            };
            let key = (
                "memory",
                build,
                m.proto,
                Some(m.tag.clone()),
                m.state.map(|s| s.name().to_string()),
                kind,
            );
            *self.tally.entry(key).or_default() += 1;
        }
    }

    fn tally_capture(&mut self, c: &CaptureRow, m: Option<&EndpointRecord>, build: u32) {
        if Precision::from_name(&c.precision) == Precision::None {
            return;
        }
        let Some(ct) = c.create_time_raw else { return };
        let no_field = m.map(|m| m.has_flag(flag::NO_TIME_FIELD));
        if no_field == Some(true) {
            self.counts.no_time_field_paired += 1;
            if ct == 0 {
                self.counts.no_time_field_api_zero += 1;
            } else {
                self.counts.no_time_field_api_nonzero += 1;
            }
        }
        if ct != 0 {
            return;
        }
        self.counts.api_zero_rows += 1;
        match m {
            None => self.counts.api_zero_unpaired += 1,
            Some(m) => {
                if m.has_flag(flag::NO_TIME_FIELD) {
                    self.counts.api_zero_on_no_time_field += 1;
                } else if m.create_time_raw.unwrap_or(0) == 0 {
                    self.counts.api_zero_on_kernel_time_zero += 1;
                } else {
                    self.counts.api_zero_on_kernel_time += 1;
                }
                // TIME_WAIT objects (TcTW) are connections too; listeners and UDP endpoints are not.
                // A zero the kernel itself holds says nothing about missing fields, whatever the
                // object (counted in `api_zero_on_kernel_time_zero` alone).
                let connection = matches!(m.tag.as_str(), "TcpE" | "TTcb" | "TcTW");
                let kernel_zero =
                    !m.has_flag(flag::NO_TIME_FIELD) && m.create_time_raw.unwrap_or(0) == 0;
                if !connection && !kernel_zero {
                    self.counts.api_zero_not_tcp_connection += 1;
                }
            }
        }
        let key = (
            "capture",
            build,
            c.proto,
            m.map(|m| m.tag.clone()),
            c.state.map(|s| s.name().to_string()),
            "api_zero",
        );
        *self.tally.entry(key).or_default() += 1;
    }

    /// The verdict on [`HYPOTHESIS`]. Evidence against it: a zero API time on an object whose
    /// kernel time is not zero (the API lost a time the kernel holds), a zero API time on a listener
    /// or UDP endpoint without a time field, and an object without a time field whose API time is
    /// not zero. A zero API time whose kernel time is zero as well is the API reporting faithfully:
    /// it is neither for nor against a hypothesis about *missing fields*, so it is counted apart
    /// (`api_zero_on_kernel_time_zero`) and named in the reasoning, never in the verdict.
    fn finish(self) -> Research {
        let c = &self.counts;
        let faithful = if c.api_zero_on_kernel_time_zero > 0 {
            format!(
                "; {} the kernel's own zero time (not evidence either way)",
                rows(
                    c.api_zero_on_kernel_time_zero,
                    "zero-time API row reports",
                    "zero-time API rows report"
                )
            )
        } else {
            String::new()
        };
        let counter_examples =
            c.api_zero_on_kernel_time + c.no_time_field_api_nonzero + c.api_zero_not_tcp_connection;
        let (verdict, reasoning) = if counter_examples > 0 {
            let mut against = vec![];
            if c.api_zero_on_kernel_time > 0 {
                against.push(format!(
                    "{} zero although the kernel object holds a time",
                    rows(c.api_zero_on_kernel_time, "API row shows", "API rows show")
                ));
            }
            if c.api_zero_not_tcp_connection > 0 {
                against.push(format!(
                    "{} not a TCP connection (listener or UDP)",
                    rows(
                        c.api_zero_not_tcp_connection,
                        "zero-time API row is",
                        "zero-time API rows are"
                    )
                ));
            }
            if c.no_time_field_api_nonzero > 0 {
                against.push(format!(
                    "{} a non-zero time for an object without a time field",
                    rows(
                        c.no_time_field_api_nonzero,
                        "API row shows",
                        "API rows show"
                    )
                ));
            }
            ("refuted", format!("{}{faithful}", against.join("; ")))
        } else if c.api_zero_on_no_time_field > 0 {
            ("supported", {
                let n = c.api_zero_on_no_time_field;
                let of = if n == c.api_zero_rows {
                    format!("all {n}")
                } else {
                    format!("{n} of {}", c.api_zero_rows)
                };
                let unpaired = if c.api_zero_unpaired > 0 {
                    format!(
                        "; {} no memory counterpart",
                        rows(
                            c.api_zero_unpaired,
                            "zero-time API row has",
                            "zero-time API rows have"
                        )
                    )
                } else {
                    String::new()
                };
                format!(
                    "{of} zero-time API {} TCP {} whose kernel object has no time field; all \
                         {} of such objects show zero{unpaired}{faithful}",
                    if c.api_zero_rows == 1 {
                        "row is a"
                    } else {
                        "rows are"
                    },
                    if n == 1 { "connection" } else { "connections" },
                    rows(c.no_time_field_paired, "timed API row", "timed API rows"),
                )
            })
        } else if c.no_time_field_paired == 0 && c.api_zero_unpaired == 0 {
            (
                "inconclusive",
                format!(
                    "no object without a time field was listed by a capture with times, and no \
                     zero-time API row points at one{faithful}"
                ),
            )
        } else {
            (
                "inconclusive",
                format!(
                    "{} no memory counterpart, and no zero-time API row pairs with an object \
                     without a time field{faithful}",
                    rows(
                        c.api_zero_unpaired,
                        "zero-time API row has",
                        "zero-time API rows have"
                    )
                ),
            )
        };
        Research {
            hypothesis: HYPOTHESIS,
            builds: self.builds.into_iter().collect(),
            table: self
                .tally
                .into_iter()
                .map(
                    |((side, build, proto, tag, state, kind), count)| ZeroTally {
                        side,
                        build,
                        proto,
                        tag,
                        state,
                        kind,
                        count,
                    },
                )
                .collect(),
            counts: self.counts,
            verdict,
            reasoning,
            census: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureFormat;
    use crate::record::{Hex, TcpState};

    const T: u64 = 133_590_404_967_890_000;

    fn mem(
        offset: u64,
        tag: &str,
        local: (&str, u16),
        remote: Option<(&str, u16)>,
        pid: Option<u32>,
    ) -> EndpointRecord {
        let proto = if tag == "UdpA" {
            Proto::Udp
        } else {
            Proto::Tcp
        };
        let family = if local.0.contains(':') {
            Family::Ipv6
        } else {
            Family::Ipv4
        };
        EndpointRecord {
            proto,
            family,
            local_addr: local.0.into(),
            local_port: local.1,
            remote_addr: remote.map(|r| r.0.to_string()),
            remote_port: remote.map(|r| r.1),
            state: match tag {
                "TcpE" => Some(TcpState::Established),
                "TcpL" => Some(TcpState::Listening),
                "TcTW" => Some(TcpState::TimeWait),
                _ => None,
            },
            dual_stack: false,
            pid,
            process: pid.map(|_| "svchost.exe".to_string()),
            process_raw: None,
            process_exit_time: None,
            process_exit_time_raw: None,
            create_time: filetime::to_iso(T - 1000),
            create_time_raw: Some(T - 1000),
            tag: tag.into(),
            pool_status: PoolStatus::Allocated,
            physical_offset: Hex(offset),
            virtual_address: None,
            flags: vec![],
            reason: None,
        }
    }

    fn cap(m: &EndpointRecord, line: u64) -> CaptureRow {
        CaptureRow {
            proto: m.proto,
            family: m.family,
            local_addr: m.local_addr.clone(),
            local_port: m.local_port,
            remote_addr: m.remote_addr.clone(),
            remote_port: m.remote_port,
            state: m.state,
            pid: m.pid.or(Some(0)),
            process: Some("svchost".into()),
            create_time: m.create_time.clone(),
            create_time_raw: m.create_time_raw,
            source: "netcarve".into(),
            line,
            precision: "100ns".into(),
        }
    }

    fn run(memory: Vec<EndpointRecord>, rows: Vec<CaptureRow>, tol: Option<u64>) -> Report {
        let side = MemorySide {
            image: ImageFacts {
                system_time_raw: Some(T),
                ..Default::default()
            },
            endpoints: memory,
            source: "scan-json".into(),
            ..Default::default()
        };
        let capture = Capture {
            file: "c.json".into(),
            format: CaptureFormat::Netcarve,
            rows,
            precision: Precision::Tick,
            collected_raw: None,
            host: None,
            utc_offset_minutes: None,
            tz_source: "utc".into(),
            encoding: "utf-8".into(),
            culture: None,
            protocols: None,
            warnings: vec![],
            unreadable: vec![],
        };
        compare(
            &side,
            &[capture],
            &CompareOptions {
                tolerance_ticks: tol,
                capture_time: None,
            },
        )
    }

    fn classes(r: &Report) -> Vec<&'static str> {
        r.rows.iter().map(|r| r.class.name()).collect()
    }

    #[test]
    fn every_class() {
        let established = mem(
            0x1000,
            "TcpE",
            ("10.0.0.5", 49723),
            Some(("93.184.216.34", 443)),
            Some(1236),
        );
        let hidden = mem(
            0x2000,
            "TcpE",
            ("10.0.0.5", 49724),
            Some(("6.6.6.6", 443)),
            Some(666),
        );
        let mut freed = mem(
            0x3000,
            "TcpE",
            ("10.0.0.5", 49725),
            Some(("1.1.1.1", 80)),
            Some(4),
        );
        freed.pool_status = PoolStatus::Freed;
        let mut later = mem(0x4000, "UdpA", ("0.0.0.0", 5353), None, Some(2104));
        later.create_time_raw = Some(T + 50_000_000);
        let pid_moved = mem(
            0x5000,
            "TcpL",
            ("0.0.0.0", 135),
            Some(("0.0.0.0", 0)),
            Some(928),
        );
        let time_moved = mem(
            0x6000,
            "TcpE",
            ("10.0.0.5", 50000),
            Some(("8.8.8.8", 53)),
            Some(900),
        );
        let mut no_field = mem(
            0x7000,
            "TcpE",
            ("10.0.0.5", 50001),
            Some(("8.8.4.4", 443)),
            Some(900),
        );
        no_field.create_time_raw = None;
        no_field.flags = vec![flag::NO_TIME_FIELD.into()];
        let state_moved = mem(
            0x8000,
            "TcpE",
            ("10.0.0.5", 50002),
            Some(("9.9.9.9", 443)),
            Some(900),
        );

        let mut rows = vec![cap(&established, 1)];
        let mut r = cap(&pid_moved, 2);
        r.pid = Some(1000);
        rows.push(r);
        let mut r = cap(&time_moved, 3);
        r.create_time_raw = Some(T - 1001);
        rows.push(r);
        let mut r = cap(&no_field, 4);
        r.create_time_raw = Some(0);
        rows.push(r);
        let mut r = cap(&state_moved, 5);
        r.state = Some(TcpState::CloseWait);
        rows.push(r);
        let ghost = mem(0, "TcpE", ("10.0.0.5", 1), Some(("2.2.2.2", 2)), Some(5));
        rows.push(cap(&ghost, 6));
        // A UDP row, so that the capture covers UDP and `later` is compared.
        let udp_seen = mem(0x9000, "UdpA", ("0.0.0.0", 123), None, Some(2104));
        rows.push(cap(&udp_seen, 7));
        let mut closed = mem(
            0xa000,
            "TcpE",
            ("10.0.0.5", 50003),
            Some(("7.7.7.7", 443)),
            Some(900),
        );
        closed.state = Some(TcpState::Closed);
        let mut exited = mem(
            0xb000,
            "TcpE",
            ("10.0.0.5", 50004),
            Some(("7.7.7.8", 443)),
            Some(901),
        );
        exited.flags = vec![flag::OWNER_EXITED.into()];
        exited.process_exit_time_raw = Some(T - 10);

        let memory = vec![
            established,
            hidden,
            freed,
            later,
            pid_moved,
            time_moved,
            no_field,
            state_moved,
            udp_seen,
            closed,
            exited,
        ];
        let report = run(memory.clone(), rows.clone(), None);
        assert_eq!(
            classes(&report),
            [
                "hidden_from_api",
                "not_in_memory",
                "pid_mismatch",
                "time_mismatch",
                "api_zero_time",
                "state_changed",
                "created_after_capture",
                "stale",
                "stale",
                "freed_only",
                "match",
                "match"
            ]
        );
        assert_eq!(report.rows[4].cause, Some(Cause::NoTimeField));
        assert_eq!(report.rows[3].delta_seconds, Some(1e-7));
        assert_eq!(report.summary.discrepancies, 6);
        assert_eq!(report.exit_code(), 1);
        // A 1-tick difference is inside a 500 ms tolerance.
        let relaxed = run(memory, rows, Some(5_000_000));
        assert_eq!(relaxed.summary.by_class["time_mismatch"], 0);
        assert_eq!(relaxed.research.verdict, "supported");
    }

    /// Unpaired allocated objects: only a live one (a state that is not CLOSED or DELETE_TCB, an
    /// owner that has not exited, or TIME_WAIT, which needs none) is accused, and each note
    /// names the evidence that decided.
    #[test]
    fn stale_objects_are_not_accused_and_the_note_says_why() {
        let seen = mem(
            0x100,
            "TcpE",
            ("10.0.0.5", 1000),
            Some(("1.1.1.1", 1)),
            Some(8),
        );
        let at = |off: u64, port: u16| {
            mem(
                off,
                "TcpE",
                ("10.0.0.5", port),
                Some(("6.6.6.6", 443)),
                Some(666),
            )
        };
        let mut closed = at(0x1000, 1001);
        closed.state = Some(TcpState::Closed);
        let mut delete = at(0x2000, 1002);
        delete.state = Some(TcpState::DeleteTcb);
        let mut exited = at(0x3000, 1003);
        exited.flags = vec![flag::OWNER_EXITED.into()];
        exited.process_exit_time = Some("2024-05-01T12:00:00.0000000Z".into());
        let mut orphan = at(0x4000, 1004);
        orphan.pid = None;
        orphan.process = None;
        orphan.flags = vec![flag::NO_OWNER.into()];
        let mut time_wait = at(0x5000, 1005);
        time_wait.state = Some(TcpState::TimeWait);
        time_wait.pid = None;
        time_wait.process = None;
        time_wait.flags = vec![flag::NO_OWNER.into()];
        let live = at(0x6000, 1006);
        let rows = vec![cap(&seen, 1)];
        let report = run(
            vec![seen, closed, delete, exited, orphan, time_wait, live],
            rows,
            None,
        );
        let got: Vec<(&str, u16, &str)> = report
            .rows
            .iter()
            .filter(|r| r.class != Class::Match)
            .map(|r| {
                let m = r.memory.as_ref().unwrap();
                (r.class.name(), m.local_port, r.note.as_str())
            })
            .collect();
        let class_of = |port| got.iter().find(|g| g.1 == port).unwrap();
        for (port, want) in [(1001, "state CLOSED"), (1002, "state DELETE_TCB")] {
            assert_eq!(class_of(port).0, "stale");
            assert!(class_of(port).2.starts_with(want), "{got:?}");
        }
        assert_eq!(class_of(1003).0, "stale");
        assert!(class_of(1003).2.contains("exited at 2024-05-01T12:00:00"));
        assert_eq!(class_of(1004).0, "stale");
        assert!(class_of(1004).2.contains("no process owns it"));
        assert_eq!(class_of(1005).0, "hidden_from_api");
        assert!(class_of(1005).2.contains("TIME_WAIT needs no owner"));
        assert_eq!(class_of(1006).0, "hidden_from_api");
        assert!(class_of(1006)
            .2
            .contains("state ESTABLISHED, owner svchost.exe (PID 666) has not exited"));
        assert_eq!(report.summary.by_class["stale"], 4);
        assert_eq!(
            report.summary.discrepancies, 2,
            "stale is not a discrepancy"
        );
    }

    /// A capture with rows of one protocol only (Get-NetTCPConnection without Get-NetUDPEndpoint)
    /// says nothing of the other: its memory endpoints are counted, not compared, never hidden.
    #[test]
    fn a_protocol_the_capture_lacks_is_not_compared() {
        let tcp = mem(
            0x100,
            "TcpE",
            ("10.0.0.5", 1000),
            Some(("1.1.1.1", 1)),
            Some(8),
        );
        let udp = mem(0x200, "UdpA", ("0.0.0.0", 5353), None, Some(8));
        let udp6 = mem(0x300, "UdpA", ("::", 5355), None, Some(8));
        let report = run(vec![tcp.clone(), udp, udp6], vec![cap(&tcp, 1)], None);
        assert_eq!(classes(&report), ["match"]);
        let info = &report.captures[0];
        assert_eq!(info.protocols, [Proto::Tcp]);
        assert_eq!(info.not_compared, 2);
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("lists no UDP endpoint: 2 UDP")),
            "{:?}",
            info.warnings
        );
        assert_eq!(report.exit_code(), 0);
    }

    #[test]
    fn dual_stack_time_wait_and_zero_causes() {
        let mut listener = mem(0x1000, "TcpL", ("::", 445), Some(("::", 0)), Some(4));
        listener.dual_stack = true;
        let tw = mem(
            0x2000,
            "TcTW",
            ("10.0.0.5", 50010),
            Some(("1.2.3.4", 80)),
            None,
        );
        let mut zero = mem(
            0x3000,
            "TcpE",
            ("10.0.0.5", 50011),
            Some(("1.2.3.5", 80)),
            Some(8),
        );
        zero.create_time_raw = Some(0);
        zero.flags = vec![flag::ZERO_TIME.into()];
        let has_time = mem(
            0x4000,
            "TcpE",
            ("10.0.0.5", 50012),
            Some(("1.2.3.6", 80)),
            Some(8),
        );

        let mut v4 = cap(&listener, 1);
        v4.family = Family::Ipv4;
        v4.local_addr = "0.0.0.0".into();
        v4.remote_addr = Some("0.0.0.0".into());
        let v6 = cap(&listener, 2);
        let tw_row = cap(&tw, 3);
        assert_eq!(tw_row.pid, Some(0));
        let mut z = cap(&zero, 4);
        z.create_time_raw = Some(0);
        let mut h = cap(&has_time, 5);
        h.create_time_raw = Some(0);
        let report = run(
            vec![listener, tw, zero, has_time],
            vec![v4, v6, tw_row, z, h],
            None,
        );
        let causes: Vec<_> = report.rows.iter().filter_map(|r| r.cause).collect();
        assert_eq!(causes, [Cause::KernelTimeZero, Cause::KernelHasTime]);
        assert_eq!(report.summary.by_class["match"], 3);
        assert_eq!(report.summary.discrepancies, 2);
        assert_eq!(report.research.verdict, "refuted");
    }

    /// A zero the kernel holds itself is counted apart: it neither supports nor refutes the
    /// hypothesis about missing fields, and the verdict stays what the other rows say.
    #[test]
    fn kernel_zero_times_do_not_decide_the_verdict() {
        let no_field = |offset: u64, port: u16| {
            let mut m = mem(
                offset,
                "TcpE",
                ("10.0.0.5", port),
                Some(("1.2.3.4", 443)),
                Some(8),
            );
            m.create_time = None;
            m.create_time_raw = None;
            m.flags = vec![flag::NO_TIME_FIELD.into()];
            m
        };
        let mut udp_zero = mem(0x9000, "UdpA", ("10.0.0.5", 5000), None, Some(8));
        udp_zero.create_time_raw = Some(0);
        udp_zero.flags = vec![flag::ZERO_TIME.into()];
        let connections = [no_field(0x1000, 50001), no_field(0x2000, 50002)];
        let zero_rows = |ms: &[EndpointRecord]| -> Vec<CaptureRow> {
            ms.iter()
                .enumerate()
                .map(|(i, m)| {
                    let mut c = cap(m, i as u64 + 1);
                    c.create_time_raw = Some(0);
                    c
                })
                .collect()
        };
        let mut memory = connections.to_vec();
        memory.push(udp_zero.clone());
        let report = run(memory.clone(), zero_rows(&memory), None);
        let r = &report.research;
        assert_eq!(r.verdict, "supported", "{}", r.reasoning);
        assert_eq!(r.counts.api_zero_rows, 3);
        assert_eq!(r.counts.api_zero_on_no_time_field, 2);
        assert_eq!(r.counts.api_zero_on_kernel_time_zero, 1);
        assert_eq!(r.counts.api_zero_not_tcp_connection, 0);
        assert_eq!(
            r.reasoning,
            "2 of 3 zero-time API rows are TCP connections whose kernel object has no time \
             field; all 2 timed API rows of such objects show zero; 1 zero-time API row reports \
             the kernel's own zero time (not evidence either way)"
        );

        // Only kernel zeros: nothing to say about missing fields.
        let report = run(vec![udp_zero.clone()], zero_rows(&[udp_zero.clone()]), None);
        assert_eq!(report.research.verdict, "inconclusive");
        assert!(report
            .research
            .reasoning
            .contains("1 zero-time API row reports the kernel's own zero time"));

        // A zero API time on a UDP endpoint whose kernel holds a time still refutes it.
        let udp_timed = mem(0xA000, "UdpA", ("10.0.0.5", 5001), None, Some(8));
        let mut memory = connections.to_vec();
        memory.push(udp_timed);
        let report = run(memory.clone(), zero_rows(&memory), None);
        assert_eq!(report.research.verdict, "refuted");
        assert!(
            report.research.reasoning.starts_with(
                "1 API row shows zero although the kernel object holds a time; 1 zero-time API \
                 row is not a TCP connection"
            ),
            "{}",
            report.research.reasoning
        );
    }

    #[test]
    fn agreement_exits_zero() {
        let a = mem(0x1000, "UdpA", ("::", 53), None, Some(1));
        let report = run(vec![a.clone()], vec![cap(&a, 1)], None);
        assert_eq!(report.exit_code(), 0);
        assert_eq!(report.research.verdict, "inconclusive");
    }

    /// `n` connections on distinct 4-tuples, and their capture rows in reverse order.
    fn distinct_connections(n: u32) -> (Vec<EndpointRecord>, Vec<CaptureRow>) {
        let memory: Vec<EndpointRecord> = (0..n)
            .map(|i| {
                let port = (i % 60_000) as u16 + 1;
                let remote = format!("10.{}.{}.1", i / 256 % 256, i % 256);
                mem(
                    0x1000 + u64::from(i) * 0x100,
                    "TcpE",
                    ("10.0.0.5", port),
                    Some((&remote, 443)),
                    Some(4 * (i + 1)),
                )
            })
            .collect();
        let rows: Vec<CaptureRow> = memory
            .iter()
            .rev()
            .enumerate()
            .map(|(i, m)| cap(m, i as u64 + 1))
            .collect();
        (memory, rows)
    }

    /// Pairing weighs only the records that share a row's key, so the work per row stays
    /// constant as the image grows: one record per row here, at n and at 4n. A pairing that
    /// scanned every record for every row would weigh about n²/2 and fail at either size.
    #[test]
    fn thousands_of_endpoints_pair_by_index() {
        for n in [5_000u32, 20_000] {
            let (memory, rows) = distinct_connections(n);
            WEIGHED.with(|w| w.set(0));
            let report = run(memory, rows, None);
            let weighed = WEIGHED.with(|w| w.get());
            assert_eq!(report.summary.by_class["match"], n as usize);
            let n = u64::from(n);
            assert!(
                (n..=2 * n).contains(&weighed),
                "pairing {n} rows weighed {weighed} memory records (linear work is {n})"
            );
        }
    }

    #[test]
    fn duplicate_keys_pair_by_pid_then_name() {
        // Two objects on one 4-tuple (a PID-reused socket, one owner unresolved).
        let mut a = mem(0x1000, "TcpE", ("10.0.0.5", 1), Some(("1.1.1.1", 2)), None);
        a.process = Some("other.exe".into());
        let mut b = mem(0x2000, "TcpE", ("10.0.0.5", 1), Some(("1.1.1.1", 2)), None);
        b.process = Some("Chrome.exe".into());
        let mut row = cap(&b, 1);
        row.pid = Some(77);
        row.process = Some("chrome".into());
        let report = run(vec![a, b], vec![row], None);
        let matched = report
            .rows
            .iter()
            .find(|r| r.class == Class::Match)
            .unwrap();
        assert_eq!(
            matched.memory.as_ref().unwrap().physical_offset,
            Hex(0x2000)
        );
        assert_eq!(report.summary.by_class["hidden_from_api"], 1);
    }

    #[test]
    fn process_names() {
        assert!(same_process("chrome.exe", "chrome"));
        assert!(same_process("CHROME.EXE", "chrome.exe"));
        assert!(same_process("MsMpEngCP.exe", "msmpengcp"));
        assert!(same_process("SearchProtocolH", "SearchProtocolHost.exe"));
        assert!(!same_process("evil.exe", "chrome"));
    }
}
