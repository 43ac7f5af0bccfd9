//! The user-mode API tables as live-response tools would have saved them at capture time, one file
//! per format `compare` reads (shapes: capture-formats.md).
use crate::filetime::{to_iso, TICKS_PER_SECOND, UNIX_EPOCH_TICKS};
use crate::record::{CaptureRow, Family, Proto, TcpState};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// One row of GetExtendedTcpTable / GetExtendedUdpTable.
#[derive(Clone, Debug)]
pub struct ApiRow {
    pub proto: Proto,
    pub family: Family,
    pub local: String,
    pub lport: u16,
    pub remote: Option<(String, u16)>,
    pub state: Option<TcpState>,
    pub pid: u32,
    pub process: Option<String>,
    /// liCreateTimestamp (0 when the API returned zero).
    pub time: u64,
}

impl ApiRow {
    /// The normalised form (truth.json discrepancies carry it).
    pub fn capture_row(&self, line: u64) -> CaptureRow {
        CaptureRow {
            proto: self.proto,
            family: self.family,
            local_addr: self.local.clone(),
            local_port: self.lport,
            remote_addr: self.remote.as_ref().map(|r| r.0.clone()),
            remote_port: self.remote.as_ref().map(|r| r.1),
            state: self.state,
            pid: Some(self.pid),
            process: self.process.clone(),
            create_time: to_iso(self.time),
            create_time_raw: Some(self.time),
            source: "netcarve".into(),
            line,
            precision: "100ns".into(),
        }
    }
}

pub struct CaptureSet {
    pub host: String,
    pub collected: u64,
    pub utc_offset_minutes: i64,
    pub rows: Vec<ApiRow>,
}

/// File names by format, in the order they are written.
pub const FILES: [(&str, &str); 7] = [
    ("netcarve", "capture-netcarve.json"),
    ("ps51", "capture-ps51.json"),
    ("ps7", "capture-ps7.json"),
    ("nettcpip", "capture-nettcpip.json"),
    ("velociraptor", "capture-velociraptor.jsonl"),
    ("osquery", "capture-osquery.json"),
    ("netstat", "capture-netstat.txt"),
];

impl CaptureSet {
    /// Every file: (name, bytes).
    pub fn render(&self) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (FILES[0].1, self.netcarve()),
            (FILES[1].1, self.ps51()),
            (FILES[2].1, self.ps7()),
            (FILES[3].1, self.nettcpip()),
            (FILES[4].1, self.velociraptor()),
            (FILES[5].1, self.osquery()),
            (FILES[6].1, self.netstat()),
        ]
    }

    fn netcarve(&self) -> Vec<u8> {
        let row = |r: &ApiRow| {
            let mut m = serde_json::Map::new();
            m.insert("family".into(), json!(r.family));
            if r.proto == Proto::Tcp {
                m.insert("state".into(), json!(r.state.map(TcpState::mib)));
            }
            m.insert("local_addr".into(), json!(r.local));
            m.insert("local_port".into(), json!(r.lport));
            if r.proto == Proto::Tcp {
                m.insert("remote_addr".into(), json!(r.remote.as_ref().map(|x| &x.0)));
                m.insert("remote_port".into(), json!(r.remote.as_ref().map(|x| x.1)));
            }
            m.insert("pid".into(), json!(r.pid));
            m.insert("process".into(), json!(r.process));
            m.insert("create_time_raw".into(), json!(r.time));
            Value::Object(m)
        };
        let doc = json!({
            "format": "netcarve-capture",
            "version": 1,
            "host": self.host,
            "collected_raw": self.collected,
            "collected": to_iso(self.collected),
            "utc_offset_minutes": self.utc_offset_minutes,
            "tcp": self.rows.iter().filter(|r| r.proto == Proto::Tcp).map(row).collect::<Vec<_>>(),
            "udp": self.rows.iter().filter(|r| r.proto == Proto::Udp).map(row).collect::<Vec<_>>(),
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    }

    /// Get-NetworkConnection objects (property order as PowerShell emitted them).
    fn ps_objects(&self, date: &dyn Fn(u64) -> String) -> Vec<Vec<(&'static str, PsVal)>> {
        self.rows
            .iter()
            .map(|r| {
                let mut o = vec![
                    ("Service", PsVal::Str(String::new())),
                    ("ProcessId", PsVal::Num(i64::from(r.pid))),
                    ("LocalAddress", PsVal::Str(r.local.clone())),
                    ("RemoteHostname", PsVal::Null),
                    (
                        "Process",
                        r.process
                            .as_ref()
                            .map(|p| PsVal::Str(p.trim_end_matches(".exe").to_string()))
                            .unwrap_or(PsVal::Null),
                    ),
                ];
                if r.proto == Proto::Tcp {
                    let (ra, rp) = r.remote.clone().unwrap_or_default();
                    o.push(("RemotePort", PsVal::Num(i64::from(rp))));
                    o.push(("State", PsVal::Str(ps_state(r.state))));
                    o.push(("LocalPort", PsVal::Num(i64::from(r.lport))));
                    o.push(("Protocol", PsVal::Str("TCP".into())));
                    o.push(("RemoteAddress", PsVal::Str(ra)));
                } else {
                    o.push(("LocalPort", PsVal::Num(i64::from(r.lport))));
                    o.push(("Protocol", PsVal::Str("UDP".into())));
                }
                o.push(("Timestamp", PsVal::Str(date(r.time))));
                o
            })
            .collect()
    }

    /// Windows PowerShell 5.1 `ConvertTo-Json > file`: UTF-16LE with BOM, CRLF, 4-space indent,
    /// `"key":  value`, dates as `\/Date(ms)\/`.
    fn ps51(&self) -> Vec<u8> {
        let date = |t: u64| {
            let ms = (t as i128 - UNIX_EPOCH_TICKS).div_euclid(10_000);
            format!("\\/Date({ms})\\/")
        };
        let objs = self.ps_objects(&date);
        let mut s = String::from("[\r\n");
        for (i, o) in objs.iter().enumerate() {
            s.push_str("    {\r\n");
            for (j, (k, v)) in o.iter().enumerate() {
                let comma = if j + 1 < o.len() { "," } else { "" };
                // The date text already holds its escapes; other strings go through JSON escaping.
                let val = match (k, v) {
                    (&"Timestamp", PsVal::Str(t)) => format!("\"{t}\""),
                    _ => v.json(),
                };
                let _ = write!(s, "        \"{k}\":  {val}{comma}\r\n");
            }
            s.push_str(if i + 1 < objs.len() {
                "    },\r\n"
            } else {
                "    }\r\n"
            });
        }
        s.push_str("]\r\n");
        let mut out = vec![0xFF, 0xFE];
        out.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
        out
    }

    /// PowerShell 7 `ConvertTo-Json`: UTF-8, 2-space indent, local ISO-8601 dates.
    fn ps7(&self) -> Vec<u8> {
        let off = self.utc_offset_minutes;
        let date = move |t: u64| local_iso(t, off);
        let objs = self.ps_objects(&date);
        let arr: Vec<Value> = objs.iter().map(|o| ps_json(o)).collect();
        let mut s = serde_json::to_string_pretty(&Value::Array(arr)).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    }

    /// `@(Get-NetTCPConnection; Get-NetUDPEndpoint) | Select-Object LocalAddress, LocalPort,
    /// RemoteAddress, RemotePort, State, OwningProcess, CreationTime | ConvertTo-Json` in
    /// PowerShell 7 (State as its enum number; UDP rows have null remote and state).
    fn nettcpip(&self) -> Vec<u8> {
        let off = self.utc_offset_minutes;
        let arr: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let tcp = r.proto == Proto::Tcp;
                let mut m = serde_json::Map::new();
                m.insert("LocalAddress".into(), json!(r.local));
                m.insert("LocalPort".into(), json!(r.lport));
                m.insert(
                    "RemoteAddress".into(),
                    if tcp {
                        json!(r.remote.as_ref().map(|x| &x.0))
                    } else {
                        Value::Null
                    },
                );
                m.insert(
                    "RemotePort".into(),
                    if tcp {
                        json!(r.remote.as_ref().map(|x| x.1))
                    } else {
                        Value::Null
                    },
                );
                m.insert(
                    "State".into(),
                    if tcp {
                        json!(r.state.map(TcpState::mib))
                    } else {
                        Value::Null
                    },
                );
                m.insert("OwningProcess".into(), json!(r.pid));
                m.insert("CreationTime".into(), json!(local_iso(r.time, off)));
                Value::Object(m)
            })
            .collect();
        let mut s = serde_json::to_string_pretty(&Value::Array(arr)).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    }

    /// Velociraptor Windows.Network.Netstat as JSONL; whole-second UTC times.
    fn velociraptor(&self) -> Vec<u8> {
        let mut out = String::new();
        for r in &self.rows {
            let tcp = r.proto == Proto::Tcp;
            let (ra, rp) = if tcp {
                r.remote.clone().unwrap_or_default()
            } else {
                (String::new(), 0)
            };
            let secs = (r.time as i128 - UNIX_EPOCH_TICKS).div_euclid(TICKS_PER_SECOND);
            let ts = jiff::Timestamp::from_second(secs as i64)
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|_| "1601-01-01T00:00:00Z".into());
            let mut m = serde_json::Map::new();
            m.insert("Pid".into(), json!(r.pid));
            m.insert("Name".into(), json!(r.process.clone().unwrap_or_default()));
            m.insert(
                "Family".into(),
                json!(if r.family == Family::Ipv4 {
                    "IPv4"
                } else {
                    "IPv6"
                }),
            );
            m.insert("Type".into(), json!(if tcp { "TCP" } else { "UDP" }));
            m.insert(
                "Status".into(),
                json!(if tcp { velo_state(r.state) } else { "" }),
            );
            m.insert("Laddr.IP".into(), json!(r.local));
            m.insert("Laddr.Port".into(), json!(r.lport));
            m.insert("Raddr.IP".into(), json!(ra));
            m.insert("Raddr.Port".into(), json!(rp));
            m.insert("Timestamp".into(), json!(ts));
            out.push_str(&Value::Object(m).to_string());
            out.push('\n');
        }
        out.into_bytes()
    }

    /// `osqueryi --json "select * from process_open_sockets"`: strings, no time.
    fn osquery(&self) -> Vec<u8> {
        let arr: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let tcp = r.proto == Proto::Tcp;
                let (ra, rp) = r
                    .remote
                    .clone()
                    .unwrap_or_else(|| (r.family.wildcard().to_string(), 0));
                json!({
                    "family": r.family.af().to_string(),
                    "fd": "",
                    "local_address": r.local,
                    "local_port": r.lport.to_string(),
                    "path": "",
                    "pid": r.pid.to_string(),
                    "protocol": if tcp { "6" } else { "17" },
                    "remote_address": if tcp { ra } else { String::new() },
                    "remote_port": if tcp { rp.to_string() } else { "0".into() },
                    "socket": "",
                    "state": if tcp { r.state.map(osq_state).unwrap_or("") } else { "" },
                })
            })
            .collect();
        let mut s = serde_json::to_string_pretty(&Value::Array(arr)).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    }

    /// `netstat -ano` (English), CRLF.
    fn netstat(&self) -> Vec<u8> {
        let mut s = String::from("\r\nActive Connections\r\n\r\n  Proto  Local Address          Foreign Address        State           PID\r\n");
        let ep = |a: &str, p: u16, fam: Family| match fam {
            Family::Ipv4 => format!("{a}:{p}"),
            Family::Ipv6 => format!("[{a}]:{p}"),
        };
        let mut tcp: Vec<&ApiRow> = self.rows.iter().filter(|r| r.proto == Proto::Tcp).collect();
        let mut udp: Vec<&ApiRow> = self.rows.iter().filter(|r| r.proto == Proto::Udp).collect();
        // netstat lists IPv4 before IPv6, each by local port.
        tcp.sort_by_key(|r| (r.family, r.lport));
        udp.sort_by_key(|r| (r.family, r.lport));
        for r in tcp {
            let (ra, rp) = r.remote.clone().unwrap_or_default();
            let _ = write!(
                s,
                "  TCP    {:<22} {:<22} {:<15} {}\r\n",
                ep(&r.local, r.lport, r.family),
                ep(&ra, rp, r.family),
                r.state.map(TcpState::name).unwrap_or(""),
                r.pid
            );
        }
        for r in udp {
            let _ = write!(
                s,
                "  UDP    {:<22} {:<22} {:<15} {}\r\n",
                ep(&r.local, r.lport, r.family),
                "*:*",
                "",
                r.pid
            );
        }
        s.into_bytes()
    }
}

/// A PowerShell property value.
enum PsVal {
    Str(String),
    Num(i64),
    Null,
}

impl PsVal {
    fn json(&self) -> String {
        match self {
            PsVal::Str(s) => Value::String(s.clone()).to_string(),
            PsVal::Num(n) => n.to_string(),
            PsVal::Null => "null".into(),
        }
    }
}

fn ps_json(o: &[(&str, PsVal)]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in o {
        let val = match v {
            PsVal::Str(s) => json!(s),
            PsVal::Num(n) => json!(n),
            PsVal::Null => Value::Null,
        };
        m.insert((*k).to_string(), val);
    }
    Value::Object(m)
}

/// .NET `DateTime` round-trip text in local time with the offset, trailing zero digits trimmed
/// (PowerShell 7 / Newtonsoft): `2024-03-14T09:59:12.1234567+01:00`, zero → `1601-01-01T01:00:00+01:00`.
fn local_iso(filetime: u64, offset_minutes: i64) -> String {
    let local =
        filetime as i128 - UNIX_EPOCH_TICKS + i128::from(offset_minutes) * 60 * TICKS_PER_SECOND;
    let secs = local.div_euclid(TICKS_PER_SECOND);
    let frac = local.rem_euclid(TICKS_PER_SECOND);
    let base = jiff::Timestamp::from_second(secs as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default();
    let mut f = format!("{frac:07}");
    while f.ends_with('0') {
        f.pop();
    }
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let a = offset_minutes.abs();
    let dot = if f.is_empty() {
        String::new()
    } else {
        format!(".{f}")
    };
    format!("{base}{dot}{sign}{:02}:{:02}", a / 60, a % 60)
}

fn ps_state(s: Option<TcpState>) -> String {
    match s {
        Some(TcpState::SynRcvd) => "SYN_RECEIVED".into(),
        Some(s) => s.name().into(),
        None => String::new(),
    }
}

fn velo_state(s: Option<TcpState>) -> &'static str {
    match s {
        Some(TcpState::Listening) => "LISTEN",
        Some(TcpState::SynSent) => "SENT",
        Some(TcpState::Established) => "ESTAB",
        Some(s) => s.name(),
        None => "",
    }
}

fn osq_state(s: TcpState) -> &'static str {
    match s {
        TcpState::Listening => "LISTEN",
        s => s.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn local_iso_forms() {
        assert_eq!(local_iso(0, 60), "1601-01-01T01:00:00+01:00");
        assert_eq!(local_iso(0, -300), "1600-12-31T19:00:00-05:00");
        let t = crate::filetime::from_iso("2024-03-14T08:59:12.1234567Z").unwrap();
        assert_eq!(local_iso(t, 60), "2024-03-14T09:59:12.1234567+01:00");
    }
}
