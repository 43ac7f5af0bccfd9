//! The records every command shares (scan output, `truth.json`, the memory side of compare, capture
//! rows). Field names and spellings are a public contract: tests, samples and users depend on them.
//! Absent values serialise as `null`, never omitted.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An address or physical offset, rendered as a lower-case `"0x…"` string.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Hex {
    /// `{:#x}` into a stack buffer: serializing thousands of records allocated a string per
    /// address otherwise.
    fn render(self, buf: &mut [u8; 18]) -> &str {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digits = (16 - self.0.leading_zeros() as usize / 4).max(1);
        buf[0] = b'0';
        buf[1] = b'x';
        for i in 0..digits {
            buf[1 + digits - i] = DIGITS[(self.0 >> (4 * i)) as usize & 0xf];
        }
        // Only ASCII digits were written.
        std::str::from_utf8(&buf[..2 + digits]).unwrap_or_default()
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.render(&mut [0; 18]))
    }
}

/// A number, or a string holding a `0x`-prefixed hex (or decimal) number. Read through a visitor
/// because the embedded profiles hold hundreds of offsets, parsed at every start: an untagged enum
/// would buffer each value and build an error message for every variant that does not match.
impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = Hex;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a 0x-prefixed hex string")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Hex, E> {
                Ok(Hex(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Hex, E> {
                u64::try_from(n).map(Hex).map_err(|_| {
                    E::custom(format!(
                        "negative number {n} where an address or offset belongs"
                    ))
                })
            }
            fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<Hex, E> {
                parse_hex(t)
                    .map(Hex)
                    .ok_or_else(|| E::custom(format!("not a 0x-prefixed hex number: {t:?}")))
            }
        }
        d.deserialize_any(HexVisitor)
    }
}

/// Parses `0x…` (or bare decimal) into a u64.
pub fn parse_hex(t: &str) -> Option<u64> {
    let t = t.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// Windows address family numbers: AF_INET 2, AF_INET6 23 (not 10 as on Linux).
    pub fn from_af(af: u16) -> Option<Family> {
        match af {
            2 => Some(Family::Ipv4),
            0x17 => Some(Family::Ipv6),
            _ => None,
        }
    }
    pub fn af(self) -> u16 {
        match self {
            Family::Ipv4 => 2,
            Family::Ipv6 => 0x17,
        }
    }
    pub fn addr_len(self) -> usize {
        match self {
            Family::Ipv4 => 4,
            Family::Ipv6 => 16,
        }
    }
    /// The family's wildcard in canonical text form.
    pub fn wildcard(self) -> &'static str {
        match self {
            Family::Ipv4 => "0.0.0.0",
            Family::Ipv6 => "::",
        }
    }
}

/// TCP states in Volatility's spelling. The kernel and the MIB (user-mode API) number them differently.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TcpState {
    #[serde(rename = "CLOSED")]
    Closed,
    #[serde(rename = "LISTENING")]
    Listening,
    #[serde(rename = "SYN_SENT")]
    SynSent,
    #[serde(rename = "SYN_RCVD")]
    SynRcvd,
    #[serde(rename = "ESTABLISHED")]
    Established,
    #[serde(rename = "FIN_WAIT1")]
    FinWait1,
    #[serde(rename = "FIN_WAIT2")]
    FinWait2,
    #[serde(rename = "CLOSE_WAIT")]
    CloseWait,
    #[serde(rename = "CLOSING")]
    Closing,
    #[serde(rename = "LAST_ACK")]
    LastAck,
    #[serde(rename = "TIME_WAIT")]
    TimeWait,
    #[serde(rename = "DELETE_TCB")]
    DeleteTcb,
}

impl TcpState {
    pub const ALL: [TcpState; 12] = [
        TcpState::Closed,
        TcpState::Listening,
        TcpState::SynSent,
        TcpState::SynRcvd,
        TcpState::Established,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::CloseWait,
        TcpState::Closing,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::DeleteTcb,
    ];

    /// The kernel's `_TCP_ENDPOINT.State` numbering (10 and 11 are undefined).
    pub fn from_kernel(v: u32) -> Option<TcpState> {
        Some(match v {
            0 => TcpState::Closed,
            1 => TcpState::Listening,
            2 => TcpState::SynSent,
            3 => TcpState::SynRcvd,
            4 => TcpState::Established,
            5 => TcpState::FinWait1,
            6 => TcpState::FinWait2,
            7 => TcpState::CloseWait,
            8 => TcpState::Closing,
            9 => TcpState::LastAck,
            12 => TcpState::TimeWait,
            13 => TcpState::DeleteTcb,
            _ => return None,
        })
    }
    pub fn kernel(self) -> u32 {
        match self {
            TcpState::Closed => 0,
            TcpState::Listening => 1,
            TcpState::SynSent => 2,
            TcpState::SynRcvd => 3,
            TcpState::Established => 4,
            TcpState::FinWait1 => 5,
            TcpState::FinWait2 => 6,
            TcpState::CloseWait => 7,
            TcpState::Closing => 8,
            TcpState::LastAck => 9,
            TcpState::TimeWait => 12,
            TcpState::DeleteTcb => 13,
        }
    }
    /// MIB_TCP_STATE as GetExtendedTcpTable returns it (1-based).
    pub fn from_mib(v: u32) -> Option<TcpState> {
        match v {
            1..=10 => TcpState::from_kernel(v - 1),
            11 => Some(TcpState::TimeWait),
            12 => Some(TcpState::DeleteTcb),
            _ => None,
        }
    }
    pub fn mib(self) -> u32 {
        match self {
            TcpState::TimeWait => 11,
            TcpState::DeleteTcb => 12,
            s => s.kernel() + 1,
        }
    }
    /// Volatility's spelling, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listening => "LISTENING",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRcvd => "SYN_RCVD",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::DeleteTcb => "DELETE_TCB",
        }
    }
    /// Accepts every producer's spelling: Volatility/netstat (`LISTENING`), MIB (`LISTEN`, `ESTAB`),
    /// Velociraptor (`SENT`), PowerShell (`SYN_RECEIVED`, `Listen`, `Established`, `TimeWait`), osquery.
    pub fn parse_any(text: &str) -> Option<TcpState> {
        let norm: String = text
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase();
        Some(match norm.as_str() {
            "CLOSED" => TcpState::Closed,
            "LISTENING" | "LISTEN" => TcpState::Listening,
            "SYNSENT" | "SENT" => TcpState::SynSent,
            "SYNRCVD" | "SYNRECEIVED" | "SYNRECV" => TcpState::SynRcvd,
            "ESTABLISHED" | "ESTAB" => TcpState::Established,
            "FINWAIT1" => TcpState::FinWait1,
            "FINWAIT2" => TcpState::FinWait2,
            "CLOSEWAIT" => TcpState::CloseWait,
            "CLOSING" => TcpState::Closing,
            "LASTACK" => TcpState::LastAck,
            "TIMEWAIT" => TcpState::TimeWait,
            "DELETETCB" => TcpState::DeleteTcb,
            _ => return None,
        })
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolStatus {
    Allocated,
    Freed,
}

/// A route to an endpoint object.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// The pool-tag carve.
    Pool,
    /// A walk of tcpip.sys's own tables (partition hash tables, port pools).
    Table,
}

/// What records of scans made before the table walk existed say.
fn found_by_pool() -> Vec<FoundBy> {
    vec![FoundBy::Pool]
}

/// Flags on an endpoint record. Strings, so that the set can grow without breaking readers.
pub mod flag {
    /// The layout has no creation-time field (Vista to 8.1 TcpE).
    pub const NO_TIME_FIELD: &str = "no_time_field";
    /// The field exists and holds 0.
    pub const ZERO_TIME: &str = "zero_time";
    /// Before boot or after acquisition.
    pub const TIME_OUT_OF_RANGE: &str = "time_out_of_range";
    /// No valid owner process.
    pub const NO_OWNER: &str = "no_owner";
    /// Offsets found by self-calibration, not taken from the profile.
    pub const CALIBRATED: &str = "calibrated";
    /// The owner `_EPROCESS` has an ExitTime: the process ended, so the endpoint is stale.
    pub const OWNER_EXITED: &str = "owner_exited";
    /// Found only by the table walk: the pool header before it does not carry the kind's tag (or
    /// fails the header checks), so the carve could not see it. Someone altered it, or it sits
    /// where no scan looks.
    pub const NO_POOL_TAG: &str = "no_pool_tag";
}

/// One carved endpoint object (also the form of `truth.json` endpoints and decoys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub proto: Proto,
    pub family: Family,
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: Option<String>,
    pub remote_port: Option<u16>,
    pub state: Option<TcpState>,
    pub dual_stack: bool,
    pub pid: Option<u32>,
    pub process: Option<String>,
    /// The ImageFileName bytes in hex, only when one is above 0x7F (`process` is then their
    /// Windows-1252 reading, a guess at the code page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_raw: Option<String>,
    /// The owner's `_EPROCESS.ExitTime`, only when the process has exited (flag `owner_exited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_exit_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_exit_time_raw: Option<u64>,
    pub create_time: Option<String>,
    pub create_time_raw: Option<u64>,
    pub tag: String,
    pub pool_status: PoolStatus,
    pub physical_offset: Hex,
    pub virtual_address: Option<Hex>,
    /// How the object was found: the pool carve, tcpip's tables, or both (in that order).
    #[serde(default = "found_by_pool")]
    pub found_by: Vec<FoundBy>,
    /// `true`: in a walked tcpip table; `false`: the tables were walked completely and it is not
    /// there; `null`: they could not be walked (or not completely where it would be).
    #[serde(default)]
    pub linked: Option<bool>,
    pub flags: Vec<String>,
    /// Only on `truth.json` decoys and `--include-corrupt` rows: why it must not be (or was not) reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl EndpointRecord {
    /// A TCP IPv4 record with nothing decoded, for tests to fill in with struct-update syntax.
    #[cfg(test)]
    pub(crate) fn sample() -> EndpointRecord {
        EndpointRecord {
            proto: Proto::Tcp,
            family: Family::Ipv4,
            local_addr: "10.0.0.1".into(),
            local_port: 1,
            remote_addr: None,
            remote_port: None,
            state: None,
            dual_stack: false,
            pid: None,
            process: None,
            process_raw: None,
            process_exit_time: None,
            process_exit_time_raw: None,
            create_time: None,
            create_time_raw: None,
            tag: "TcpE".into(),
            pool_status: PoolStatus::Allocated,
            physical_offset: Hex(0),
            virtual_address: None,
            found_by: vec![FoundBy::Pool],
            linked: None,
            flags: vec![],
            reason: None,
        }
    }

    /// The deterministic output order: by physical offset of the pool header, then by tag.
    pub fn sort_key(&self) -> (u64, &str) {
        (self.physical_offset.0, self.tag.as_str())
    }
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

/// The normalised row every capture parser produces (the live side of compare).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptureRow {
    pub proto: Proto,
    pub family: Family,
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: Option<String>,
    pub remote_port: Option<u16>,
    pub state: Option<TcpState>,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub create_time: Option<String>,
    pub create_time_raw: Option<u64>,
    /// Capture format name (`netcarve`, `ps51`, `ps7`, `nettcpip`, `velociraptor`, `osquery`, `netstat`).
    pub source: String,
    /// Where in the file: 1-based line, or row index for JSON arrays.
    pub line: u64,
    /// `100ns`, `ms`, `s` or `none`.
    pub precision: String,
}

/// Facts about an image (`info --format json`, and `image` in scan/compare/truth output).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageFacts {
    /// Path of the image as given.
    #[serde(default)]
    pub file: Option<String>,
    /// `raw`, `crashdump-full`, `crashdump-bitmap`, `crashdump-rdmp`, `elf`, `lime`, `vmware`.
    pub container: String,
    /// `x64`, `x86`.
    pub arch: String,
    /// `x64`, `pae`, `nonpae`.
    pub paging: String,
    pub dtb: Hex,
    /// `crashdump-header`, `low-stub`, `self-map-scan`, `user` (--dtb), `truth` (synth).
    pub dtb_source: String,
    pub kernel_base: Option<Hex>,
    pub kernel_pdb: Option<PdbId>,
    pub nt: NtVersion,
    /// Every source of the NT build tried, in the order of trust, and what each gave; the build
    /// in `nt` is the first one's that gave one (empty in truth.json).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_sources: Vec<BuildReading>,
    pub system_time: Option<String>,
    pub system_time_raw: Option<u64>,
    pub boot_time: Option<String>,
    pub boot_time_raw: Option<u64>,
    pub timezone_bias_minutes: Option<i64>,
    pub physical: PhysicalSummary,
    /// SHA-256 of the image file, with `--hash` (of the decoded media for containers that
    /// compress it, such as EWF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The hashes a container stores of its own media (EWF), and with `--hash` whether the media
    /// still has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_hashes: Option<StoredHashes>,
    /// hiberfil.sys: what the hibernation header says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hibernation: Option<HibernationFacts>,
    /// Non-fatal problems found while reading the image.
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HibernationFacts {
    /// `windows8+` or `windows7/vista`.
    pub format: String,
    /// `HIBR`, `WAKE`, `RSTR`, `hibr`, `wake`.
    pub signature: String,
    /// `PO_MEMORY_IMAGE.LengthSelf`, which tells the header version.
    pub header_size: Hex,
    /// When Windows wrote the file (the header's SystemTime), ISO-8601 beside the FILETIME.
    pub hibernated: Option<String>,
    pub hibernated_raw: u64,
    /// Windows 8+: written by a fast-startup shutdown rather than a hibernation; `null` when the
    /// header does not say.
    pub fast_startup: Option<bool>,
    /// Pages the file holds and the compression sets (Xpress blocks on Windows 7) they are in.
    pub pages: u64,
    pub compression_sets: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHashes {
    /// Lowercase hex, as the acquisition tool recorded them.
    pub md5: Option<String>,
    pub sha1: Option<String>,
    /// `--hash`: `verified` (every stored hash matches the media), `mismatch`, or
    /// `incomplete` (some of the media could not be read, so nothing can be said); `null`
    /// without `--hash`.
    pub check: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdbId {
    /// `ntkrnlmp.pdb`, `ntoskrnl.pdb`, `ntkrnlpa.pdb`, `ntkrpamp.pdb`.
    pub name: String,
    /// 32 upper-case hex digits: Data1, Data2, Data3 as numbers, then Data4's bytes in order.
    pub guid: String,
    pub age: u32,
    /// `<name>/<GUID><age>/<name>` on a symbol server.
    pub symbol_path: String,
}

impl PdbId {
    pub fn new(name: &str, guid: &str, age: u32) -> PdbId {
        PdbId {
            name: name.to_string(),
            guid: guid.to_string(),
            age,
            symbol_path: format!("{name}/{guid}{age:X}/{name}"),
        }
    }
    /// `GUID-age`, as Volatility and JPCERT name ISF files.
    pub fn guid_age(&self) -> String {
        format!("{}-{}", self.guid, self.age)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NtVersion {
    pub major: u32,
    pub minor: u32,
    /// `null` when no source in the image gave it: unknown, never 0.
    pub build: Option<u32>,
}

/// One source of the NT build number and what it gave (`null`: tried, nothing readable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildReading {
    /// `kuser-shared-data`, `crashdump-header`, `kd-version-block`, `export-NtBuildNumber`,
    /// `version-resource`, `kdbg-NtBuildLab`.
    pub source: String,
    pub build: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalSummary {
    /// Bytes of present physical memory.
    pub size: u64,
    /// Number of present ranges.
    pub ranges: u64,
    /// Highest present physical address + 1.
    #[serde(default)]
    pub end: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_serializes_as_format_does() {
        let mut v = 1u64;
        for value in [0u64, 1, 0xf, 0x10, 0xdead_beef, u64::MAX, 1 << 63]
            .into_iter()
            .chain(
                std::iter::from_fn(|| {
                    v = v.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7);
                    Some(v >> (v % 64))
                })
                .take(1000),
            )
        {
            assert_eq!(
                serde_json::to_string(&Hex(value)).unwrap(),
                format!("\"{value:#x}\"")
            );
        }
    }

    #[test]
    fn state_numberings_agree() {
        for s in TcpState::ALL {
            assert_eq!(TcpState::from_kernel(s.kernel()), Some(s));
            assert_eq!(TcpState::from_mib(s.mib()), Some(s));
            assert_eq!(TcpState::parse_any(s.name()), Some(s));
        }
        assert_eq!(TcpState::parse_any("ESTAB"), Some(TcpState::Established));
        assert_eq!(TcpState::parse_any("SENT"), Some(TcpState::SynSent));
        assert_eq!(TcpState::parse_any("SYN_RECEIVED"), Some(TcpState::SynRcvd));
        assert_eq!(TcpState::parse_any("TimeWait"), Some(TcpState::TimeWait));
        assert_eq!(TcpState::from_kernel(10), None);
    }

    #[test]
    fn hex_round_trip() {
        let h: Hex = serde_json::from_str("\"0xfffff80000101000\"").unwrap();
        assert_eq!(h.0, 0xfffff80000101000);
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"0xfffff80000101000\"");
    }
}
