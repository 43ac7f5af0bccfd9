//! For the library-level scan tests: a mock kernel address space (a map of hand-placed objects),
//! a physical image holding pool blocks, and a planter that writes endpoint objects from a
//! profile's offsets and says what the scanner must report for each (docs/internals.md "Endpoint
//! records"). Profiles can be built from the shared reference tables, to hold the decoder against
//! layouts that no built-in profile carries.
use netcarve::bytes::ReadBytes;
use netcarve::carve::{carve, CarveParams, Carved};
use netcarve::container::PhysicalSpace;
use netcarve::filetime::TimeWindow;
use netcarve::paging::{PagingMode, VirtualMemory};
use netcarve::profile::{Arch, Confidence, Field, LocalAddrChain, Off, Profile, RemoteAddrChain};
use netcarve::record::{flag, EndpointRecord, Family, Hex, PoolStatus, Proto, TcpState};
use netcarve::synth::builder::PoolHeader;
use std::collections::BTreeMap;
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

    fn ptr_size(&self) -> u64 {
        self.profile.pointer_size()
    }

    /// Places `bytes` at a fresh VA (with a gap after, so overreads fail) and returns the VA.
    pub fn alloc(&mut self, bytes: Vec<u8>) -> u64 {
        let va = self.next_va;
        self.next_va += (bytes.len() as u64).div_ceil(0x100) * 0x100 + 0x100;
        self.mem.regions.insert(va, bytes);
        va
    }

    fn put_ptr(&self, buf: &mut [u8], off: u64, v: u64) {
        let off = off as usize;
        if self.ptr_size() == 8 {
            buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
        } else {
            buf[off..off + 4].copy_from_slice(&(v as u32).to_le_bytes());
        }
    }

    /// An `_EPROCESS` passing every owner check (one per PID).
    pub fn process(&mut self, pid: u32, name: &str) -> u64 {
        if let Some(va) = self.processes.get(&pid) {
            return *va;
        }
        let e = self.profile.nt.eprocess.clone();
        let mut b = vec![0u8; e.image_file_name.off().unwrap() as usize + 16];
        b[e.dispatcher_type.off().unwrap() as usize] = 3;
        self.put_ptr(&mut b, e.unique_process_id.off().unwrap(), pid as u64);
        self.put_ptr(&mut b, e.directory_table_base.off().unwrap(), 0x1aa000);
        let n = e.image_file_name.off().unwrap() as usize;
        b[n..n + name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
        let va = self.alloc(b);
        self.processes.insert(pid, va);
        va
    }

    fn addr_bytes(family: Family, text: &str) -> Vec<u8> {
        match family {
            Family::Ipv4 => text
                .parse::<std::net::Ipv4Addr>()
                .unwrap()
                .octets()
                .to_vec(),
            Family::Ipv6 => text
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
                .to_vec(),
        }
    }

    fn inetaf(&mut self, family: Family) -> u64 {
        let off = self.profile.tcpip.inetaf_address_family.off().unwrap() as usize;
        let mut b = vec![0u8; off + 8];
        b[off..off + 2].copy_from_slice(&family.af().to_le_bytes());
        self.alloc(b)
    }

    /// `_LOCAL_ADDRESS` → pointer → address bytes.
    fn local_address(&mut self, family: Family, text: &str) -> u64 {
        let q = self.alloc(Self::addr_bytes(family, text));
        let mut pb = vec![0u8; 8];
        self.put_ptr(&mut pb, 0, q);
        let p = self.alloc(pb);
        let off = self.profile.tcpip.local_address_p_data.off().unwrap();
        let mut la = vec![0u8; off as usize + 8];
        self.put_ptr(&mut la, off, p);
        self.alloc(la)
    }

    /// The local-address pointer value of a TcpL/UdpA/TcTW object.
    fn local_by_chain(
        &mut self,
        chain: LocalAddrChain,
        family: Family,
        local: Option<&str>,
    ) -> u64 {
        let Some(text) = local else { return 0 };
        match chain {
            LocalAddrChain::LocalAddress | LocalAddrChain::AddrInfo => {
                self.local_address(family, text)
            }
            LocalAddrChain::Win10Udp => {
                let q = self.alloc(Self::addr_bytes(family, text));
                let off = self
                    .profile
                    .tcpip
                    .win10_udp_p_data
                    .as_ref()
                    .and_then(Field::off)
                    .unwrap_or(0);
                let mut la = vec![0u8; off as usize + 8];
                self.put_ptr(&mut la, off, q);
                self.alloc(la)
            }
            LocalAddrChain::TimeWaitInline => {
                let mut s = vec![0u8; 0x28 + 16];
                let a = Self::addr_bytes(family, text);
                s[0x28..0x28 + a.len()].copy_from_slice(&a);
                let s = self.alloc(s);
                let mut la = vec![0u8; 0x18];
                self.put_ptr(&mut la, 0x10, s);
                self.alloc(la)
            }
        }
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
        let mut body = vec![0u8; (block - unit) as usize];
        let t = self.profile.tcpip.clone();
        let af = self.inetaf(s.family);
        let owner_va = s.owner.map(|(pid, name)| self.process(pid, name));
        let put_u64 = |b: &mut Vec<u8>, off: u64, v: u64| {
            b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes())
        };
        let put_port = |b: &mut Vec<u8>, off: u64, v: u16| {
            b[off as usize..off as usize + 2].copy_from_slice(&v.to_be_bytes())
        };
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
        let time_field;
        match s.tag {
            "TcpL" | "UdpA" => {
                let (inet_af, owner, ct, la_f, chain, port) = if s.tag == "TcpL" {
                    let l = &t.tcp_listener;
                    (
                        &l.inet_af,
                        &l.owner,
                        &l.create_time,
                        &l.local_addr,
                        l.local_addr_chain,
                        &l.port,
                    )
                } else {
                    let l = &t.udp_endpoint;
                    (
                        &l.inet_af,
                        &l.owner,
                        &l.create_time,
                        &l.local_addr,
                        l.local_addr_chain,
                        &l.port,
                    )
                };
                self.put_ptr(&mut body, inet_af.off().unwrap(), af);
                if let Some(va) = owner_va {
                    self.put_ptr(&mut body, owner.off().unwrap(), va);
                }
                let la = self.local_by_chain(chain, s.family, s.local);
                self.put_ptr(&mut body, la_f.off().unwrap(), la);
                put_port(&mut body, port.off().unwrap(), s.local_port);
                time_field = ct.clone();
                rec.dual_stack = s.local.is_none() && s.family == Family::Ipv6;
                if s.tag == "TcpL" {
                    rec.state = Some(TcpState::Listening);
                    rec.remote_addr = Some(s.family.wildcard().to_string());
                    rec.remote_port = Some(0);
                }
            }
            "TcTW" => {
                let l = t.time_wait.clone().unwrap();
                let base = l.body_offset.get();
                self.put_ptr(&mut body, base + l.inet_af.off().unwrap(), af);
                put_port(&mut body, base + l.local_port.off().unwrap(), s.local_port);
                put_port(
                    &mut body,
                    base + l.remote_port.off().unwrap(),
                    s.remote_port,
                );
                let la = self.local_by_chain(l.local_addr_chain, s.family, s.local);
                self.put_ptr(&mut body, base + l.local_addr.off().unwrap(), la);
                let remote = Self::addr_bytes(s.family, s.remote);
                let roff = (base + l.remote_addr.off().unwrap()) as usize;
                match l.remote_addr_chain {
                    RemoteAddrChain::Inline => {
                        body[roff..roff + remote.len()].copy_from_slice(&remote)
                    }
                    RemoteAddrChain::Pointer => {
                        let r = self.alloc(remote);
                        self.put_ptr(&mut body, roff as u64, r);
                    }
                    other => panic!("TcTW remote chain {other:?} not planted by the tests"),
                }
                let mut ct = l.create_time.clone();
                ct.offset = ct.offset.map(|o| Off(o.0 + base as u32));
                time_field = ct;
                rec.state = Some(TcpState::TimeWait);
                rec.remote_addr = Some(s.remote.to_string());
                rec.remote_port = Some(s.remote_port);
                rec.pid = None;
                rec.process = None;
            }
            _ => {
                let l = &t.tcp_endpoint;
                self.put_ptr(&mut body, l.inet_af.off().unwrap(), af);
                if let Some(va) = owner_va {
                    self.put_ptr(&mut body, l.owner.off().unwrap(), va);
                }
                let off = l.state.off().unwrap() as usize;
                body[off..off + 4].copy_from_slice(&s.state.to_le_bytes());
                put_port(&mut body, l.local_port.off().unwrap(), s.local_port);
                put_port(&mut body, l.remote_port.off().unwrap(), s.remote_port);
                // _ADDRINFO: Local → _LOCAL_ADDRESS, Remote → address bytes.
                let la = self.local_address(s.family, s.local.unwrap());
                let r = self.alloc(Self::addr_bytes(s.family, s.remote));
                let lo = t.addrinfo_local.off().unwrap();
                let ro = t.addrinfo_remote.off().unwrap();
                let mut ai = vec![0u8; (lo.max(ro) + 8) as usize];
                self.put_ptr(&mut ai, lo, la);
                self.put_ptr(&mut ai, ro, r);
                let ai = self.alloc(ai);
                self.put_ptr(&mut body, l.addr_info.off().unwrap(), ai);
                time_field = l.create_time.clone();
                rec.state = TcpState::from_kernel(s.state);
                rec.remote_addr = Some(s.remote.to_string());
                rec.remote_port = Some(s.remote_port);
            }
        }
        match time_field.off() {
            Some(off) => {
                put_u64(&mut body, off, s.create_time);
                rec.create_time_raw = Some(s.create_time);
                rec.create_time = netcarve::filetime::to_iso(s.create_time);
                if s.create_time == 0 {
                    rec.flags.push(flag::ZERO_TIME.into());
                } else if !(BOOT..=ACQUISITION).contains(&s.create_time) {
                    rec.flags.push(flag::TIME_OUT_OF_RANGE.into());
                }
            }
            None => rec.flags.push(flag::NO_TIME_FIELD.into()),
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
