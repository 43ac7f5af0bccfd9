//! What every row parser shares: the row built with one normalisation (addresses, families, UDP
//! without a remote side), the file's time and zone facts, and rows that fail kept as
//! [`Unreadable`] with what of them can be salvaged.
use super::time::{self, TimeContext};
use super::{Capture, CaptureFormat, Precision, Unreadable};
use crate::error::Fault;
use crate::filetime;
use crate::record::{CaptureRow, Family};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Rows of one file whose fields are tried one by one when they fail; past this many, a failed
/// row is kept as "nothing readable" (a hostile file of bad rows must not cost a parse per field).
const MAX_SALVAGED_ROWS: usize = 1000;
/// Rows with more fields than this are not tried field by field.
const MAX_SALVAGE_FIELDS: usize = 64;

/// The row `parse` reads from `obj` without one of its fields, and that field's name; `None` when
/// leaving out no single field makes it readable.
pub fn salvage(
    obj: &Map<String, Value>,
    mut parse: impl FnMut(&Map<String, Value>) -> std::result::Result<CaptureRow, Fault>,
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
    message: &Fault,
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
        reason: message.clone(),
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
    /// The day/month order of culture-formatted dates (PowerShell text tables only), when known.
    pub date_order: Option<time::DateOrder>,
}

impl<'a> ParseContext<'a> {
    pub fn new(format: CaptureFormat, time: &'a TimeContext) -> Self {
        ParseContext {
            format,
            time,
            tz_used: BTreeSet::new(),
            precisions: BTreeSet::new(),
            warnings: Vec::new(),
            date_order: None,
        }
    }

    /// Parses a PowerShell / ISO-8601 date ([`time::parse_date`]) in this file's precision and
    /// zone, noting the zone source used.
    /// PowerShell's text tables (Export-Csv, Format-List) show dates in the host's culture
    /// (`1/14/2026 7:17:53 AM`); JSON never does, so a display string there stays unreadable.
    pub fn parse_date(&mut self, text: &str) -> std::result::Result<(u64, Precision), Fault> {
        let iso = time::parse_date(text, self.format.precision(), self.time, &mut self.tz_used);
        match self.format {
            CaptureFormat::PsCsv | CaptureFormat::PsList if iso.is_err() => {
                time::parse_culture_date(text, self.date_order, self.time, &mut self.tz_used)
            }
            _ => iso,
        }
    }

    /// Records that a row carried a time of this precision.
    fn note_precision(&mut self, p: Precision) {
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
    ) -> std::result::Result<CaptureRow, Fault> {
        use crate::record::Proto;
        let (local_family, local_addr) =
            parse_addr(local.0).ok_or_else(|| fault!(Value, "bad local address {:?}", local.0))?;
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
                    parse_addr(addr).ok_or_else(|| fault!(Value, "bad remote address {addr:?}"))?;
                (Some(a), Some(port(p)?))
            }
            // A listener row without remote fields: the kernel shows the family wildcard, port 0.
            (Proto::Tcp, _) => (Some(family.wildcard().to_string()), Some(0)),
        };
        let pid = match pid {
            Some(p) => Some(u32::try_from(p).map_err(|_| fault!(Value, "PID {p} out of range"))?),
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

fn port(p: u64) -> std::result::Result<u16, Fault> {
    u16::try_from(p).map_err(|_| fault!(Value, "port {p} out of range"))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
