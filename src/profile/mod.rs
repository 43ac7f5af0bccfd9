//! Profiles: the structure offsets the scanner and the synthesizer need for one Windows layout.
//!
//! Built-in profiles are the JSON files in `profiles/`, embedded at build time and parsed lazily.
//! Every offset carries its provenance (a key into `sources`) and a confidence. Offsets are relative
//! to the object body (the first byte after the `_POOL_HEADER`) for pool objects, and to the struct
//! start for everything else.
use crate::error::{Cause, Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

pub mod from_pdb;
mod kind;
pub mod select;

include!(concat!(env!("OUT_DIR"), "/embedded_profiles.rs"));

/// A structure offset or size, written as a `"0x…"` string in JSON.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Off(pub u32);

impl Off {
    pub fn get(self) -> u64 {
        self.0 as u64
    }
}

impl fmt::Display for Off {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Serialize for Off {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Off {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let h = crate::record::Hex::deserialize(d)?;
        u32::try_from(h.0)
            .map(Off)
            .map_err(|_| serde::de::Error::custom("offset does not fit in 32 bits"))
    }
}

pub use crate::arch::Arch;
pub use kind::{kind_fields, KindFields, ObjectKind};

// The pool header is a Windows fact, so it lives with the profiles, not in the neutral `arch`.
impl Arch {
    /// `_POOL_HEADER` size; also the block unit and the header alignment.
    pub fn pool_header_size(self) -> u64 {
        match self {
            Arch::X86 => 8,
            Arch::X64 => 16,
        }
    }
}

/// How much a number is to be trusted. Ordered from weakest to strongest.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// No source gives it: extrapolated from neighbouring builds; the scanner must confirm it on data.
    Inferred,
    /// A public, reverse-engineered table (Volatility, MemProcFS).
    Reference,
    /// Read from a Microsoft PDB (or an ISF generated from one).
    Pdb,
}

/// One structure offset with its provenance. `offset: null` means the field does not exist in this
/// layout (for example TcpE CreateTime before Windows 10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub offset: Option<Off>,
    /// Other offsets a source gives for the same field (a disagreement); the decoder tries them, in
    /// order, when the primary one fails its validity check, and reports which one matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Off>,
    /// Key into [`Profile::sources`].
    pub source: String,
    pub confidence: Confidence,
}

impl Field {
    pub fn at(offset: u32, source: &str, confidence: Confidence) -> Field {
        Field {
            offset: Some(Off(offset)),
            alternatives: vec![],
            source: source.into(),
            confidence,
        }
    }
    pub fn absent(source: &str, confidence: Confidence) -> Field {
        Field {
            offset: None,
            alternatives: vec![],
            source: source.into(),
            confidence,
        }
    }
    pub fn off(&self) -> Option<u64> {
        self.offset.map(Off::get)
    }
    /// The primary offset followed by the alternatives.
    pub fn candidates(&self) -> impl Iterator<Item = u64> + '_ {
        self.offset
            .iter()
            .chain(self.alternatives.iter())
            .map(|o| o.get())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRule {
    pub nt_major: u32,
    pub nt_minor: u32,
    pub build_min: u32,
    pub build_max: u32,
    /// Restricts the profile to a tcpip.sys file-version range (the 6.3.9600.19935 split);
    /// `null` when the layout does not depend on it.
    #[serde(default)]
    pub tcpip_version: Option<TcpipVersionRule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpipVersionRule {
    /// Inclusive lower bound, dotted (`6.3.9600.19935`), or null.
    pub min: Option<String>,
    /// Exclusive upper bound, dotted, or null.
    pub max: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// `<family>[-<build>]-<arch>`, e.g. `win7-x64`, `win10-19041-x64`.
    pub name: String,
    pub arch: Arch,
    pub description: String,
    #[serde(rename = "match")]
    pub matches: MatchRule,
    /// The weakest confidence among the profile's offsets.
    pub confidence: Confidence,
    /// Source key → what it is (file, version, licence of the facts).
    pub sources: BTreeMap<String, String>,
    /// Which side of each disagreement this profile follows, and why.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The kernel PDB a `from-pdb` profile was derived from; scanning another kernel warns.
    #[serde(default)]
    pub kernel_pdb: Option<crate::record::PdbId>,
    /// Kernel symbol RVAs (PsActiveProcessHead, PsLoadedModuleList, KdVersionBlock, ...), when known
    /// for one exact kernel. Empty for the built-in profiles, which cover many kernels.
    #[serde(default)]
    pub symbols: BTreeMap<String, Field>,
    pub nt: NtLayout,
    pub tcpip: TcpipLayout,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NtLayout {
    pub eprocess: EprocessLayout,
    pub object_header: ObjectHeaderLayout,
    pub kuser_shared_data: KuserLayout,
}

impl NtLayout {
    /// The `_EPROCESS` and `_OBJECT_HEADER` offsets, in a fixed order: what identifies a kernel
    /// layout (from-pdb matches a base profile by it) and what synth must fit in its objects.
    pub fn process_offsets(&self) -> [Option<u64>; 10] {
        let e = &self.eprocess;
        [
            e.dispatcher_type.off(),
            e.directory_table_base.off(),
            e.unique_process_id.off(),
            e.active_process_links.off(),
            e.create_time.off(),
            e.exit_time.off(),
            e.image_file_name.off(),
            e.inherited_from_unique_process_id.off(),
            self.object_header.body.off(),
            self.object_header.type_index.off(),
        ]
    }
}

/// `_EPROCESS`, offsets from the start of the structure (its `Pcb` is at 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EprocessLayout {
    /// `_EPROCESS` size, when a source gives it.
    pub size: Option<Off>,
    /// `Pcb.Header.Type` (u8; 3 = process).
    pub dispatcher_type: Field,
    /// `Pcb.DirectoryTableBase` (u64 on x64, u32 on x86).
    pub directory_table_base: Field,
    pub unique_process_id: Field,
    pub active_process_links: Field,
    pub create_time: Field,
    pub exit_time: Field,
    /// u8[15], NUL padded.
    pub image_file_name: Field,
    pub inherited_from_unique_process_id: Field,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectHeaderLayout {
    /// Offset of `Body` in `_OBJECT_HEADER` (0x30 x64, 0x18 x86).
    pub body: Field,
    pub type_index: Field,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KuserLayout {
    pub interrupt_time: Field,
    pub system_time: Field,
    pub time_zone_bias: Field,
    /// Absent before Windows 10.
    pub nt_build_number: Field,
    pub nt_product_type: Field,
    pub nt_major_version: Field,
    pub nt_minor_version: Field,
}

/// How an object's local address is reached. `*(x)` reads a pointer at x.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalAddrChain {
    /// TcpE: `ai = *(body + addr_info)`, `la = *(ai + addrinfo.local)`, then as `local_address`.
    AddrInfo,
    /// `la = *(body + local_addr)`; `la == 0` is the wildcard; `p = *(la + local_address.p_data)`,
    /// `q = *(p)`, address bytes at `q`.
    LocalAddress,
    /// Windows 10 x64 UDP (Volatility's `_LOCAL_ADDRESS_WIN10_UDP`): `la = *(body + local_addr)`;
    /// `la == 0` is the wildcard; `q = *(la + win10_udp_p_data)`, address bytes at `q`.
    Win10Udp,
    /// TcTW (MemProcFS): `s = *(*(body + local_addr) + 0x10)`, address bytes inline at `s + 0x28`.
    TimeWaitInline,
}

/// How an object's remote address is reached.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteAddrChain {
    /// TcpE: `r = *(*(body + addr_info) + addrinfo.remote)`, address bytes at `r`.
    AddrInfo,
    /// `r = *(body + remote_addr)`, address bytes at `r`.
    Pointer,
    /// Address bytes inline at `body + remote_addr`.
    Inline,
    /// The object has no remote address (listeners, unconnected UDP).
    None,
}

/// `_TCP_ENDPOINT` (pool tags TcpE, and TTcb from Server 2022 on).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpEndpointLayout {
    pub tags: Vec<String>,
    /// Body bytes needed to decode every field (the `span`); the pool block must hold at least this.
    pub min_size: Off,
    pub inet_af: Field,
    pub addr_info: Field,
    /// u32, kernel numbering.
    pub state: Field,
    pub local_port: Field,
    pub remote_port: Field,
    pub owner: Field,
    /// Absent (offset null) before Windows 10: the object has no creation time.
    pub create_time: Field,
}

/// `_TCP_LISTENER` (TcpL).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpListenerLayout {
    pub tags: Vec<String>,
    pub min_size: Off,
    pub inet_af: Field,
    pub owner: Field,
    pub create_time: Field,
    pub local_addr: Field,
    pub local_addr_chain: LocalAddrChain,
    pub port: Field,
}

/// `_UDP_ENDPOINT` (UdpA).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UdpEndpointLayout {
    pub tags: Vec<String>,
    pub min_size: Off,
    pub inet_af: Field,
    pub owner: Field,
    pub create_time: Field,
    pub local_addr: Field,
    pub local_addr_chain: LocalAddrChain,
    pub port: Field,
}

/// TIME_WAIT endpoint (TcTW): no owner process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeWaitLayout {
    pub tags: Vec<String>,
    pub min_size: Off,
    /// Where the object starts, counted from the pool body (MemProcFS's pool route uses +0x40).
    #[serde(default)]
    pub body_offset: Off,
    pub inet_af: Field,
    pub local_port: Field,
    pub remote_port: Field,
    pub local_addr: Field,
    pub local_addr_chain: LocalAddrChain,
    pub remote_addr: Field,
    pub remote_addr_chain: RemoteAddrChain,
    pub create_time: Field,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpipLayout {
    pub tcp_endpoint: TcpEndpointLayout,
    pub tcp_listener: TcpListenerLayout,
    pub udp_endpoint: UdpEndpointLayout,
    /// `null` where no source describes a TIME_WAIT object for this layout.
    pub time_wait: Option<TimeWaitLayout>,
    /// `_INETAF.AddressFamily` (u16).
    pub inetaf_address_family: Field,
    /// `_ADDRINFO.Local` (pointer to `_LOCAL_ADDRESS`).
    pub addrinfo_local: Field,
    /// `_ADDRINFO.Remote` (pointer to the address bytes).
    pub addrinfo_remote: Field,
    /// `_LOCAL_ADDRESS.pData` (pointer to pointer to the address bytes).
    pub local_address_p_data: Field,
    /// `_LOCAL_ADDRESS_WIN10_UDP.pData` (pointer to the address bytes), where the layout uses it.
    #[serde(default)]
    pub win10_udp_p_data: Option<Field>,
    /// tcpip's own tables (what netstat enumerates); `null` where no source describes them.
    #[serde(default)]
    pub tables: Option<TablesLayout>,
}

/// tcpip.sys's tables of live endpoints: the partition hash tables (connections) and the port
/// pools (listeners, UDP). Object offsets are body offsets like the endpoint layouts'; the rest
/// are offsets inside the named structure. `_RTL_DYNAMIC_HASH_TABLE` and `_RTL_BITMAP` are fixed
/// kernel structures the walker knows itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TablesLayout {
    /// TcpE/TTcb: the `LIST_ENTRY` that links it into a partition hash bucket.
    pub tcp_endpoint_link: Field,
    /// TcTW: its hash-bucket `LIST_ENTRY`, where a source gives one.
    pub time_wait_link: Option<Field>,
    /// TcpL / UdpA: `Next`, the pointer to the next object's `Next` on the same port (0 ends).
    pub tcp_listener_next: Field,
    pub udp_endpoint_next: Field,
    /// `_PARTITION` size: the stride of `PartitionTable`'s array.
    pub partition_size: Off,
    /// `_PARTITION.Endpoints` (pointer to the connections' hash table).
    pub partition_endpoints: Field,
    /// `_PARTITION`'s second hash-table pointer (Volatility's `UnknownHashTable`).
    pub partition_second_table: Field,
    /// `_INET_COMPARTMENT_SET.InetCompartment`, `_INET_COMPARTMENT.ProtocolCompartment`,
    /// `_PROTOCOL_COMPARTMENT.PortPool`: from `Tcp/UdpCompartmentSet` to the port pool.
    pub compartment_set_compartment: Field,
    pub compartment_protocol: Field,
    pub protocol_port_pool: Field,
    /// `_INET_PORT_POOL.PortBitMap` (`_RTL_BITMAP`) and `.PortAssignments` (256 pointers).
    pub port_pool_bitmap: Field,
    pub port_pool_assignments: Field,
    /// `_PORT_ASSIGNMENT.InPaBigPoolBase` (pointer to 256 `_PORT_ASSIGNMENT_ENTRY`s).
    pub port_assignment_list: Field,
    pub port_entry_size: Off,
    /// `_PORT_ASSIGNMENT_ENTRY.Entry`: the first object's `Next` field (low 2 bits are flags).
    pub port_entry_pointer: Field,
}

impl Profile {
    /// Parses a profile from JSON text; `origin` names the file in errors.
    pub fn from_json(origin: &str, text: &str) -> Result<Profile> {
        serde_json::from_str(text)
            .map_err(|e| Error::cause(origin, Cause::Profile(format!("not a valid profile: {e}"))))
    }

    /// Loads a profile from a JSON file (`--profile FILE`).
    fn from_file(path: &Path) -> Result<Profile> {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut crate::evidence::open_input(path, "profile")?,
            &mut text,
        )
        .map_err(|e| crate::error::io_error(path, &e))?;
        Profile::from_json(&path.display().to_string(), &text)
    }

    pub fn pointer_size(&self) -> u64 {
        self.arch.pointer_size()
    }
}

impl Profile {
    /// A warning when a profile derived from one kernel's PDB is used on another kernel (offsets can
    /// move between builds and patch levels, so its numbers may not apply).
    pub fn kernel_mismatch(&self, image_pdb: Option<&crate::record::PdbId>) -> Option<String> {
        let own = self.kernel_pdb.as_ref()?;
        match image_pdb {
            Some(img) if img.guid.eq_ignore_ascii_case(&own.guid) && img.age == own.age => None,
            Some(img) => Some(format!(
                "profile {} was derived from kernel PDB {} but the image's kernel is {}: offsets may not apply",
                self.name,
                own.guid_age(),
                img.guid_age()
            )),
            None => Some(format!(
                "profile {} was derived from kernel PDB {} but the image's kernel PDB id is unknown",
                self.name,
                own.guid_age()
            )),
        }
    }
}

/// Every built-in profile, parsed once on first use (start-up stays light).
pub fn builtin() -> &'static [Profile] {
    static PARSED: OnceLock<Vec<Profile>> = OnceLock::new();
    PARSED.get_or_init(|| {
        EMBEDDED_PROFILES
            .iter()
            // A broken embedded profile is a build defect; the `profiles_parse` test catches it.
            .filter_map(|(file, text)| Profile::from_json(file, text).ok())
            .collect()
    })
}

/// A built-in profile by name.
pub fn by_name(name: &str) -> Option<&'static Profile> {
    builtin().iter().find(|p| p.name == name)
}

/// `--profile NAME|FILE`: a built-in name, else a path to a JSON profile.
pub fn resolve(name_or_file: &str) -> Result<Profile> {
    if let Some(p) = by_name(name_or_file) {
        return Ok(p.clone());
    }
    let path = Path::new(name_or_file);
    if path.exists() {
        return Profile::from_file(path);
    }
    Err(Error::usage(format!(
        "unknown profile {name_or_file:?} (not a built-in name, not a file); see `netcarve profile list`"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse() {
        for (file, text) in EMBEDDED_PROFILES {
            let p = Profile::from_json(file, text).unwrap();
            assert_eq!(
                format!("{}.json", p.name),
                *file,
                "file name must be the profile name"
            );
            for src in all_sources(&p) {
                assert!(
                    p.sources.contains_key(&src),
                    "{}: source {src:?} is not declared",
                    p.name
                );
            }
        }
        assert_eq!(builtin().len(), EMBEDDED_PROFILES.len());
    }

    fn all_sources(p: &Profile) -> Vec<String> {
        let v = serde_json::to_value(p).unwrap();
        let mut out = vec![];
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let (Some(serde_json::Value::String(s)), true) =
                        (m.get("source"), m.contains_key("confidence"))
                    {
                        out.push(s.clone());
                    }
                    m.values().for_each(|x| walk(x, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        walk(&v, &mut out);
        out
    }
}
