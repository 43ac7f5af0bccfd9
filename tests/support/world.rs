//! For the library-level scan tests: a mock kernel address space (a map of hand-placed objects),
//! a physical image holding pool blocks, and a planter that writes endpoint objects from a
//! profile's offsets and says what the scanner must report for each (docs/internals.md "Endpoint
//! records"). The objects' bytes are synth's (`netcarve::synth::builder`): this file only says
//! where they go and what a reader must make of them. Profiles can be built from the shared
//! reference tables, to hold the decoder against layouts that no built-in profile carries.
use netcarve::bytes::ReadBytes;
use netcarve::carve::{carve, CarveParams, Carved};
use netcarve::container::PhysicalSpace;
use netcarve::filetime::TimeWindow;
use netcarve::paging::{PagingMode, VirtualMemory};
use netcarve::profile::{Arch, Confidence, Field, LocalAddrChain, ObjectKind, Off, Profile};
use netcarve::record::{flag, EndpointRecord, Family, Hex, PoolStatus, Proto, TcpState};
use netcarve::synth::builder::{self, Endpoint, Eprocess, Place, PoolHeader, Slot};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

fn hex(v: &serde_json::Value) -> u32 {
    let s = v.as_str().expect("hex string");
    u32::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex")
}

/// A profile for a Volatility 3 table of the reference (`win7-x64`, `win7-x86`, `win10-20348-x64`),
/// with the `_EPROCESS` offsets of `nt_build` from nt-offsets.json. Everything else (KUSER, object
/// header) comes from the built-in 19041 profile and is not used by the decoder.
pub fn profile_from_reference(reference: &Path, table: &str, nt_build: &str) -> Profile {
    let layouts = super::read_json(&reference.join("endpoint-layouts.json"));
    let nt = super::read_json(&reference.join("nt-offsets.json"));
    let t = &layouts["vol3_tables"][table];
    assert!(t.is_object(), "no vol3 table {table}");
    let arch = if t["arch"] == "x86" {
        Arch::X86
    } else {
        Arch::X64
    };
    let s = &t["structs"];
    let f = |st: &str, name: &str| -> Field {
        let v = &s[st]["fields"][name];
        if v["absent"] == true || v.is_null() {
            Field::absent("vol3", Confidence::Reference)
        } else {
            Field::at(hex(&v["off"]), "vol3", Confidence::Reference)
        }
    };
    let span = |st: &str| Off(hex(&s[st]["span"]));
    let mut p = netcarve::profile::by_name("win10-19041-x64")
        .expect("built-in win10-19041-x64")
        .clone();
    p.name = format!("test-{table}");
    p.arch = arch;
    p.confidence = Confidence::Reference;
    let tags: Vec<String> = t["pool_tags"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| *v == "_TCP_ENDPOINT")
        .map(|(k, _)| k.clone())
        .collect();
    let win10_udp = t["class_types"]
        .as_str()
        .unwrap_or("")
        .contains("WIN10_UDP");
    let te = &mut p.tcpip.tcp_endpoint;
    te.tags = tags;
    te.min_size = span("_TCP_ENDPOINT");
    te.inet_af = f("_TCP_ENDPOINT", "InetAF");
    te.addr_info = f("_TCP_ENDPOINT", "AddrInfo");
    te.state = f("_TCP_ENDPOINT", "State");
    te.local_port = f("_TCP_ENDPOINT", "LocalPort");
    te.remote_port = f("_TCP_ENDPOINT", "RemotePort");
    te.owner = f("_TCP_ENDPOINT", "Owner");
    te.create_time = f("_TCP_ENDPOINT", "CreateTime");
    let tl = &mut p.tcpip.tcp_listener;
    tl.min_size = span("_TCP_LISTENER");
    tl.inet_af = f("_TCP_LISTENER", "InetAF");
    tl.owner = f("_TCP_LISTENER", "Owner");
    tl.create_time = f("_TCP_LISTENER", "CreateTime");
    tl.local_addr = f("_TCP_LISTENER", "LocalAddr");
    tl.local_addr_chain = LocalAddrChain::LocalAddress;
    tl.port = f("_TCP_LISTENER", "Port");
    let tu = &mut p.tcpip.udp_endpoint;
    tu.min_size = span("_UDP_ENDPOINT");
    tu.inet_af = f("_UDP_ENDPOINT", "InetAF");
    tu.owner = f("_UDP_ENDPOINT", "Owner");
    tu.create_time = f("_UDP_ENDPOINT", "CreateTime");
    tu.local_addr = f("_UDP_ENDPOINT", "LocalAddr");
    tu.local_addr_chain = if win10_udp {
        LocalAddrChain::Win10Udp
    } else {
        LocalAddrChain::LocalAddress
    };
    tu.port = f("_UDP_ENDPOINT", "Port");
    p.tcpip.time_wait = None;
    p.tcpip.inetaf_address_family = f("_INETAF", "AddressFamily");
    p.tcpip.addrinfo_local = f("_ADDRINFO", "Local");
    p.tcpip.addrinfo_remote = f("_ADDRINFO", "Remote");
    p.tcpip.local_address_p_data = f("_LOCAL_ADDRESS", "pData");
    p.tcpip.win10_udp_p_data = win10_udp.then(|| f("_LOCAL_ADDRESS_WIN10_UDP", "pData"));

    let b = &nt["builds"][arch.name()][nt_build];
    assert!(
        b.is_object(),
        "no nt offsets for {} {nt_build}",
        arch.name()
    );
    let e = &mut p.nt.eprocess;
    let at = |v: &serde_json::Value| Field::at(hex(v), "jpcert", Confidence::Pdb);
    e.dispatcher_type = at(&b["_DISPATCHER_HEADER"]["Type"]);
    e.directory_table_base = at(&b["_KPROCESS"]["DirectoryTableBase"]);
    e.unique_process_id = at(&b["_EPROCESS"]["UniqueProcessId"]);
    e.image_file_name = at(&b["_EPROCESS"]["ImageFileName"]);
    p
}

/// Kernel memory as a map of hand-placed regions.
#[derive(Default, Clone)]
pub struct MockMemory {
    pub regions: BTreeMap<u64, Vec<u8>>,
    pub pointer_size: u64,
}

impl ReadBytes for MockMemory {
    fn read_into(&self, va: u64, buf: &mut [u8]) -> bool {
        let Some((start, bytes)) = self.regions.range(..=va).next_back() else {
            return false;
        };
        let off = (va - start) as usize;
        match bytes.get(off..off + buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

impl VirtualMemory for MockMemory {
    fn pointer_size(&self) -> u64 {
        self.pointer_size
    }
}

/// One endpoint to plant.
#[derive(Clone, Debug)]
pub struct Spec {
    pub tag: &'static str,
    pub family: Family,
    /// `None`: null LocalAddr pointer (wildcard; TcpL/UdpA only).
    pub local: Option<&'static str>,
    pub local_port: u16,
    pub remote: &'static str,
    pub remote_port: u16,
    /// Kernel state number (TcpE/TTcb).
    pub state: u32,
    /// `None`: the owner pointer is null.
    pub owner: Option<(u32, &'static str)>,
    pub create_time: u64,
    pub freed: bool,
}

impl Spec {
    pub fn tcp(local: &'static str, lp: u16, remote: &'static str, rp: u16) -> Spec {
        Spec {
            tag: "TcpE",
            family: if local.contains(':') {
                Family::Ipv6
            } else {
                Family::Ipv4
            },
            local: Some(local),
            local_port: lp,
            remote,
            remote_port: rp,
            state: 4,
            owner: Some((1236, "evil.exe")),
            create_time: TIME,
            freed: false,
        }
    }
    pub fn listener(family: Family, local: Option<&'static str>, port: u16) -> Spec {
        Spec {
            tag: "TcpL",
            family,
            local,
            local_port: port,
            remote: "",
            remote_port: 0,
            state: 1,
            owner: Some((4, "System")),
            create_time: TIME - 5_000_000,
            freed: false,
        }
    }
    pub fn udp(family: Family, local: Option<&'static str>, port: u16) -> Spec {
        Spec {
            tag: "UdpA",
            owner: Some((2104, "svchost.exe")),
            ..Spec::listener(family, local, port)
        }
    }
    pub fn time_wait(local: &'static str, lp: u16, remote: &'static str, rp: u16) -> Spec {
        Spec {
            tag: "TcTW",
            owner: None,
            state: 12,
            ..Spec::tcp(local, lp, remote, rp)
        }
    }
}

/// Boot, a create time and acquisition used by the tests (2024-05-01).
pub const BOOT: u64 = 133_590_000_000_000_000;
pub const TIME: u64 = 133_590_404_967_890_123;
pub const ACQUISITION: u64 = 133_590_500_000_000_000;

pub struct World {
    pub profile: Profile,
    pub phys: Vec<u8>,
    pub mem: MockMemory,
    next_va: u64,
    pub expected: Vec<EndpointRecord>,
    processes: BTreeMap<u32, u64>,
}

impl World {
    pub fn new(profile: Profile, phys_size: usize) -> World {
        let ptr = profile.pointer_size();
        World {
            next_va: if ptr == 8 {
                0xffff_a000_0000_0000
            } else {
                0x8100_0000
            },
            profile,
            phys: vec![0; phys_size],
            mem: MockMemory {
                regions: BTreeMap::new(),
                pointer_size: ptr,
            },
            expected: vec![],
            processes: BTreeMap::new(),
        }
    }

    /// Places `bytes` at a fresh VA (with a gap after, so overreads fail) and returns the VA.
    pub fn alloc(&mut self, bytes: Vec<u8>) -> u64 {
        let va = self.next_va;
        self.next_va += (bytes.len() as u64).div_ceil(0x100) * 0x100 + 0x100;
        self.mem.regions.insert(va, bytes);
        va
    }

    /// An `_EPROCESS` passing every owner check (one per PID).
    pub fn process(&mut self, pid: u32, name: &str) -> u64 {
        if let Some(va) = self.processes.get(&pid) {
            return *va;
        }
        let b = builder::eprocess(
            &self.profile,
            &Eprocess {
                pid,
                parent: 0,
                dtb: 0x1aa000,
                create_time: 0,
                exit_time: 0,
                name,
                extra: None,
            },
        );
        let va = self.alloc(b);
        self.processes.insert(pid, va);
        va
    }

    /// An `_INETAF` of `af` (any number: the tests plant families no Windows has).
    pub fn inetaf(&mut self, af: u16) -> u64 {
        let b = builder::inetaf(&self.profile, af);
        self.alloc(b)
    }

    /// Writes a pool header at physical `pa`: the 8 bytes that hold its fields (an x64 header's
    /// second half, a pointer the scanner never reads, keeps whatever lies there).
    pub fn header(&mut self, pa: u64, block_size: u64, pool_type: u8, pool_index: u8, tag: &str) {
        let unit = self.profile.arch.pool_header_size();
        let h = PoolHeader {
            pool_index,
            pool_type,
            ..PoolHeader::new(tag.as_bytes().try_into().unwrap(), block_size / unit)
        }
        .encode(self.profile.arch);
        let pa = pa as usize;
        self.phys[pa..pa + 8].copy_from_slice(&h[..8]);
    }

    /// The block size a planted object of `tag` gets: header + body, rounded to the unit.
    pub fn block_size(&self, tag: &str) -> u64 {
        let unit = self.profile.arch.pool_header_size();
        let t = &self.profile.tcpip;
        let body = match tag {
            "TcpL" => t.tcp_listener.min_size.get(),
            "UdpA" => t.udp_endpoint.min_size.get(),
            "TcTW" => {
                let tw = t.time_wait.as_ref().unwrap();
                tw.min_size.get() + tw.body_offset.get()
            }
            _ => t.tcp_endpoint.min_size.get(),
        };
        (unit + body).div_ceil(unit) * unit
    }

    /// Plants `s` with its pool header at `pa` and records what the scanner must report.
    pub fn plant(&mut self, pa: u64, s: &Spec) -> EndpointRecord {
        let unit = self.profile.arch.pool_header_size();
        let block = self.block_size(s.tag);
        assert!(pa % 0x1000 + block <= 0x1000, "test object crosses a page");
        self.header(pa, block, if s.freed { 0 } else { 2 }, 1, s.tag);
        let kind = match s.tag {
            "TcpL" => ObjectKind::TcpListener,
            "UdpA" => ObjectKind::UdpEndpoint,
            "TcTW" => ObjectKind::TimeWait,
            _ => ObjectKind::TcpEndpoint,
        };
        let ip = |text: &str| -> IpAddr { text.parse().expect("an address") };
        let connected = matches!(kind, ObjectKind::TcpEndpoint | ObjectKind::TimeWait);
        let e = Endpoint {
            kind,
            inet_af: self.inetaf(s.family.af()),
            local: s.local.map(ip),
            local_port: s.local_port,
            remote: connected.then(|| (ip(s.remote), s.remote_port)),
            state: s.state,
            owner: s.owner.map_or(0, |(pid, name)| self.process(pid, name)),
            create_time: s.create_time,
        };
        let profile = self.profile.clone();
        let bytes = builder::endpoint_body(&profile, &e, self);
        let mut body = vec![0u8; (block - unit) as usize];
        assert!(bytes.len() <= body.len(), "{} fields past its block", s.tag);
        body[..bytes.len()].copy_from_slice(&bytes);
        let mut rec = EndpointRecord {
            proto: if s.tag == "UdpA" {
                Proto::Udp
            } else {
                Proto::Tcp
            },
            family: s.family,
            local_addr: s.local.unwrap_or(s.family.wildcard()).to_string(),
            local_port: s.local_port,
            remote_addr: None,
            remote_port: None,
            state: None,
            dual_stack: false,
            pid: s.owner.map(|o| o.0),
            process: s.owner.map(|o| o.1.to_string()),
            process_raw: None,
            process_exit_time: None,
            process_exit_time_raw: None,
            create_time: None,
            create_time_raw: None,
            tag: s.tag.to_string(),
            pool_status: if s.freed {
                PoolStatus::Freed
            } else {
                PoolStatus::Allocated
            },
            physical_offset: Hex(pa),
            virtual_address: None,
            found_by: vec![netcarve::record::FoundBy::Pool],
            linked: None,
            flags: vec![],
            reason: None,
        };
        match kind {
            ObjectKind::TcpListener | ObjectKind::UdpEndpoint => {
                rec.dual_stack = s.local.is_none() && s.family == Family::Ipv6;
                if kind == ObjectKind::TcpListener {
                    rec.state = Some(TcpState::Listening);
                    rec.remote_addr = Some(s.family.wildcard().to_string());
                    rec.remote_port = Some(0);
                }
            }
            ObjectKind::TimeWait => {
                rec.state = Some(TcpState::TimeWait);
                rec.remote_addr = Some(s.remote.to_string());
                rec.remote_port = Some(s.remote_port);
                rec.pid = None;
                rec.process = None;
            }
            ObjectKind::TcpEndpoint => {
                rec.state = TcpState::from_kernel(s.state);
                rec.remote_addr = Some(s.remote.to_string());
                rec.remote_port = Some(s.remote_port);
            }
        }
        let time_field = builder::endpoint_fields(&profile, kind)
            .iter()
            .any(|(slot, _)| *slot == Slot::CreateTime);
        if time_field {
            rec.create_time_raw = Some(s.create_time);
            rec.create_time = netcarve::filetime::to_iso(s.create_time);
            if s.create_time == 0 {
                rec.flags.push(flag::ZERO_TIME.into());
            } else if !(BOOT..=ACQUISITION).contains(&s.create_time) {
                rec.flags.push(flag::TIME_OUT_OF_RANGE.into());
            }
        } else {
            rec.flags.push(flag::NO_TIME_FIELD.into());
        }
        if s.owner.is_none() && s.tag != "TcTW" {
            rec.flags.push(flag::NO_OWNER.into());
        }
        rec.flags.sort();
        let start = (pa + unit) as usize;
        self.phys[start..start + body.len()].copy_from_slice(&body);
        self.expected.push(rec.clone());
        rec
    }

    /// Runs the carving pass over the world with `chunk_size`.
    pub fn carve_with(&self, profile: &Profile, include_corrupt: bool, chunk_size: u64) -> Carved {
        let phys = PhysicalSpace::from_bytes(self.phys.clone(), Path::new("mock.raw")).unwrap();
        let params = CarveParams {
            profile,
            mem: &self.mem,
            mode: if profile.arch == Arch::X64 {
                PagingMode::X64
            } else {
                PagingMode::Pae
            },
            times: TimeWindow {
                boot: Some(BOOT),
                acquisition: Some(ACQUISITION),
            },
            include_corrupt,
            chunk_size,
            progress: None,
            kernel_space: None,
            block_tags: &[],
        };
        carve(&phys, &params)
    }

    pub fn carve(&self, include_corrupt: bool) -> Carved {
        self.carve_with(&self.profile, include_corrupt, 0x10000)
    }

    pub fn expected_sorted(&self) -> Vec<EndpointRecord> {
        let mut v = self.expected.clone();
        v.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        v
    }
}

/// The mock's placement: a region of its own per structure (no pool headers: tags unused).
impl Place for World {
    fn place(&mut self, _tag: [u8; 4], bytes: &[u8]) -> u64 {
        self.alloc(bytes.to_vec())
    }
}
