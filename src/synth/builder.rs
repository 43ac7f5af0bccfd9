//! The writer's lowest layer, public so that tests which lay objects out by hand (hostile
//! headers, one field at a time, mock address spaces) encode them exactly as synth does instead of
//! with a second encoder that could drift from it: pool headers, container headers (crash dump,
//! ELF core, LiME range), little-endian fields, and the kernel objects a reader decodes from the
//! profile's offsets (endpoint bodies of every kind, their local-address and `_ADDRINFO` chains,
//! `_INETAF`, the `_EPROCESS` owner fields). Where the structures an object points to go is the
//! caller's ([`Place`]): synth's pool pages, or a test's map of regions.
use crate::profile::{Arch, Field, LocalAddrChain, ObjectKind, Profile, RemoteAddrChain};
use std::net::IpAddr;

pub use super::containers::{dump_header, elf_header, lime_range_header, DumpFacts, Runs};
pub use super::kernel::{le16, le32, le64};

/// A `_POOL_HEADER`'s fields; sizes are in the pool's units (16 bytes on x64, 8 on x86).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PoolHeader {
    pub prev_units: u64,
    pub block_units: u64,
    pub pool_index: u8,
    /// 0 = freed; even = non-paged, odd = paged (docs/internals.md "Pool headers").
    pub pool_type: u8,
    pub tag: [u8; 4],
}

impl PoolHeader {
    /// An allocated non-paged block (`PoolType` 2, `PoolIndex` 0) of `block_units` units.
    pub fn new(tag: [u8; 4], block_units: u64) -> PoolHeader {
        PoolHeader {
            prev_units: 0,
            block_units,
            pool_index: 0,
            pool_type: 2,
            tag,
        }
    }

    /// The header bytes (one pool unit). A size too wide for its bit field is clamped to the
    /// field's maximum, so a block can never wrap to a small size that passes the checks.
    pub fn encode(&self, arch: Arch) -> Vec<u8> {
        let mut h = vec![0u8; arch.pool_header_size() as usize];
        match arch {
            Arch::X64 => {
                h[0] = self.prev_units.min(0xFF) as u8;
                h[1] = self.pool_index;
                h[2] = self.block_units.min(0xFF) as u8;
                h[3] = self.pool_type;
            }
            Arch::X86 => {
                let a =
                    self.prev_units.min(0x1FF) as u16 | (u16::from(self.pool_index & 0x7F) << 9);
                let b =
                    self.block_units.min(0x1FF) as u16 | (u16::from(self.pool_type & 0x7F) << 9);
                le16(&mut h, 0, a);
                le16(&mut h, 2, b);
            }
        }
        h[4..8].copy_from_slice(&self.tag);
        h
    }
}

/// Where the structures an object points to go. Returns the VA of `bytes` once placed.
pub trait Place {
    /// A separately allocated structure; `tag` is the pool tag synth gives its block (a mock
    /// address space without pool headers may ignore it).
    fn place(&mut self, tag: [u8; 4], bytes: &[u8]) -> u64;

    /// The address bytes a LocalAddr chain ends in (16 bytes, the address first). Its own method
    /// because synth puts some of them on a page mapped through a transition PTE.
    fn place_local_ip(&mut self, bytes: &[u8; 16]) -> u64 {
        self.place(*b"IPAd", bytes)
    }
}

/// The address bytes (4 or 16).
pub fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An `_IN_ADDR`-sized allocation's bytes: the address, zero-padded to 16.
fn in_addr(ip: &IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    let a = ip_bytes(ip);
    b[..a.len()].copy_from_slice(&a);
    b
}

/// A pointer's bytes (little-endian, `ptr` wide).
fn ptr_bytes(v: u64, ptr: u64) -> Vec<u8> {
    v.to_le_bytes()[..ptr as usize].to_vec()
}

/// `len` zero bytes with the pointer `v` at `off`.
fn with_ptr(len: u64, off: u64, v: u64, ptr: u64) -> Vec<u8> {
    let mut b = vec![0u8; len as usize];
    put(&mut b, off, &ptr_bytes(v, ptr));
    b
}

fn put(buf: &mut [u8], off: u64, bytes: &[u8]) {
    let off = off as usize;
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

/// An `_INETAF` (`InNl`): the address family at `AddressFamily`.
pub fn inetaf(p: &Profile, af: u16) -> Vec<u8> {
    let af_off = p.tcpip.inetaf_address_family.off().unwrap_or(0x14);
    let mut b = vec![0u8; (af_off + 2).max(0x30) as usize];
    put(&mut b, af_off, &af.to_le_bytes());
    b
}

/// An `_ADDRINFO` (`TcpA`): `Local` (when given) and `Remote` pointers.
fn addr_info(p: &Profile, local: Option<u64>, remote: u64) -> Vec<u8> {
    let ptr = p.arch.pointer_size();
    let ai_local = p.tcpip.addrinfo_local.off().unwrap_or(0);
    let ai_remote = p.tcpip.addrinfo_remote.off().unwrap_or(2 * ptr);
    let Some(la) = local else {
        return with_ptr(ai_remote + ptr, ai_remote, remote, ptr);
    };
    let mut b = with_ptr(ai_local.max(ai_remote) + ptr, ai_local, la, ptr);
    put(&mut b, ai_remote, &ptr_bytes(remote, ptr));
    b
}

/// Places the structures a LocalAddr pointer of `chain` leads to; returns the pointer's value (0,
/// the wildcard, for no address).
pub fn local_addr(
    p: &Profile,
    chain: LocalAddrChain,
    ip: Option<&IpAddr>,
    at: &mut dyn Place,
) -> u64 {
    let Some(ip) = ip else { return 0 };
    let ptr = p.arch.pointer_size();
    // Placed for every chain, the inline one too (which never points to them): synth's images
    // have always held them, and must stay byte-identical.
    let bytes_va = at.place_local_ip(&in_addr(ip));
    match chain {
        // `_LOCAL_ADDRESS.pData` → pointer cell → address bytes.
        LocalAddrChain::LocalAddress | LocalAddrChain::AddrInfo => {
            let p_data = p.tcpip.local_address_p_data.off().unwrap_or(0x10);
            let holder = at.place(*b"IPAp", &ptr_bytes(bytes_va, ptr));
            at.place(*b"InLa", &with_ptr(p_data + ptr, p_data, holder, ptr))
        }
        // `pData` → address bytes.
        LocalAddrChain::Win10Udp => {
            let p_data = p
                .tcpip
                .win10_udp_p_data
                .as_ref()
                .and_then(Field::off)
                .unwrap_or(0);
            at.place(*b"InLa", &with_ptr(p_data + ptr, p_data, bytes_va, ptr))
        }
        // +0x10 → a structure holding the address bytes at +0x28.
        LocalAddrChain::TimeWaitInline => {
            let mut s = vec![0u8; 0x28 + 16];
            put(&mut s, 0x28, &ip_bytes(ip));
            let s = at.place(*b"TwLa", &s);
            at.place(*b"TwLp", &with_ptr(0x10 + ptr, 0x10, s, ptr))
        }
    }
}

/// A field of an endpoint object that the writer fills.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    InetAf,
    AddrInfo,
    State,
    LocalPort,
    RemotePort,
    Owner,
    CreateTime,
    LocalAddr,
    RemoteAddr,
}

impl Slot {
    /// The bytes the field takes; a remote address gets 16 whatever its chain (inline IPv6).
    pub fn width(self, ptr: u64) -> u64 {
        match self {
            Slot::InetAf | Slot::AddrInfo | Slot::Owner | Slot::LocalAddr => ptr,
            Slot::State => 4,
            Slot::LocalPort | Slot::RemotePort => 2,
            Slot::CreateTime => 8,
            Slot::RemoteAddr => 16,
        }
    }
}

/// The fields of `kind` the profile places, each at its offset from the pool body (TIME_WAIT's
/// `body_offset` included), in the order they are written.
pub fn endpoint_fields(p: &Profile, kind: ObjectKind) -> Vec<(Slot, u64)> {
    use Slot::*;
    let t = &p.tcpip;
    let socket = |inet_af, owner, create_time, local_addr, port| {
        vec![
            (InetAf, inet_af),
            (Owner, owner),
            (CreateTime, create_time),
            (LocalAddr, local_addr),
            (LocalPort, port),
        ]
    };
    let (base, fields): (u64, Vec<(Slot, &Field)>) = match kind {
        ObjectKind::TcpEndpoint => {
            let l = &t.tcp_endpoint;
            let f = vec![
                (InetAf, &l.inet_af),
                (AddrInfo, &l.addr_info),
                (State, &l.state),
                (LocalPort, &l.local_port),
                (RemotePort, &l.remote_port),
                (Owner, &l.owner),
                (CreateTime, &l.create_time),
            ];
            (0, f)
        }
        // Listeners and UDP endpoints place the same fields.
        ObjectKind::TcpListener => {
            let l = &t.tcp_listener;
            (
                0,
                socket(&l.inet_af, &l.owner, &l.create_time, &l.local_addr, &l.port),
            )
        }
        ObjectKind::UdpEndpoint => {
            let l = &t.udp_endpoint;
            (
                0,
                socket(&l.inet_af, &l.owner, &l.create_time, &l.local_addr, &l.port),
            )
        }
        ObjectKind::TimeWait => match &t.time_wait {
            Some(l) => {
                let f = vec![
                    (InetAf, &l.inet_af),
                    (LocalPort, &l.local_port),
                    (RemotePort, &l.remote_port),
                    (LocalAddr, &l.local_addr),
                    (RemoteAddr, &l.remote_addr),
                    (CreateTime, &l.create_time),
                ];
                (l.body_offset.get(), f)
            }
            None => (0, vec![]),
        },
    };
    fields
        .into_iter()
        .filter_map(|(slot, f)| f.off().map(|o| (slot, base + o)))
        .collect()
}

/// One endpoint object's field values. Which of them an object holds is its kind's layout.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub kind: ObjectKind,
    /// VA of the family's `_INETAF`.
    pub inet_af: u64,
    /// `None`: a null LocalAddr pointer (the wildcard).
    pub local: Option<IpAddr>,
    pub local_port: u16,
    pub remote: Option<(IpAddr, u16)>,
    /// The kernel's state number (`_TCP_ENDPOINT` only).
    pub state: u32,
    /// VA of the owning `_EPROCESS`; 0 for none.
    pub owner: u64,
    pub create_time: u64,
}

/// The object's body (from the pool body, up to the end of its last field), after placing the
/// structures it points to: the local-address chain, then the remote address and `_ADDRINFO`.
pub fn endpoint_body(p: &Profile, e: &Endpoint, at: &mut dyn Place) -> Vec<u8> {
    let ptr = p.arch.pointer_size();
    let t = &p.tcpip;
    let fields = endpoint_fields(p, e.kind);
    let mut local = 0;
    let mut info = 0;
    let mut remote: Option<Vec<u8>> = None;
    match e.kind {
        ObjectKind::TcpEndpoint => {
            let l = e.local.expect("a connection has a local address");
            let (rip, _) = e.remote.expect("a connection has a remote end");
            let la = local_addr(p, LocalAddrChain::LocalAddress, Some(&l), at);
            let r = at.place(*b"IPAd", &in_addr(&rip));
            info = at.place(*b"TcpA", &addr_info(p, Some(la), r));
        }
        ObjectKind::TcpListener => {
            let chain = t.tcp_listener.local_addr_chain;
            local = local_addr(p, chain, e.local.as_ref(), at);
        }
        ObjectKind::UdpEndpoint => {
            let chain = t.udp_endpoint.local_addr_chain;
            local = local_addr(p, chain, e.local.as_ref(), at);
        }
        ObjectKind::TimeWait => {
            let l = t
                .time_wait
                .as_ref()
                .expect("TcTW only where the profile has it");
            let (rip, _) = e.remote.expect("TIME_WAIT has a remote end");
            local = local_addr(p, l.local_addr_chain, e.local.as_ref(), at);
            if fields.iter().any(|(s, _)| *s == Slot::RemoteAddr) {
                remote = match l.remote_addr_chain {
                    RemoteAddrChain::Inline => Some(ip_bytes(&rip)),
                    RemoteAddrChain::Pointer => {
                        Some(ptr_bytes(at.place(*b"IPAd", &in_addr(&rip)), ptr))
                    }
                    RemoteAddrChain::AddrInfo => {
                        let r = at.place(*b"IPAd", &in_addr(&rip));
                        Some(ptr_bytes(at.place(*b"TcpA", &addr_info(p, None, r)), ptr))
                    }
                    RemoteAddrChain::None => None,
                };
            }
        }
    }
    let end = fields.iter().map(|(s, o)| o + s.width(ptr)).max();
    let mut body = vec![0u8; end.unwrap_or(0) as usize];
    for (slot, o) in fields {
        let bytes = match slot {
            Slot::InetAf => ptr_bytes(e.inet_af, ptr),
            Slot::AddrInfo => ptr_bytes(info, ptr),
            Slot::State => e.state.to_le_bytes().to_vec(),
            Slot::LocalPort => e.local_port.to_be_bytes().to_vec(),
            Slot::RemotePort => e.remote.map_or(0, |r| r.1).to_be_bytes().to_vec(),
            Slot::Owner => ptr_bytes(e.owner, ptr),
            Slot::CreateTime => e.create_time.to_le_bytes().to_vec(),
            Slot::LocalAddr => ptr_bytes(local, ptr),
            Slot::RemoteAddr => match &remote {
                Some(b) => b.clone(),
                None => continue,
            },
        };
        put(&mut body, o, &bytes);
    }
    body
}

/// An `_EPROCESS`'s values for the fields a reader checks an owner by (and lists processes by).
#[derive(Clone, Debug)]
pub struct Eprocess<'a> {
    pub pid: u32,
    pub parent: u32,
    pub dtb: u64,
    pub create_time: u64,
    /// 0: not exited.
    pub exit_time: u64,
    /// Up to 14 bytes are kept, NUL-terminated in the 15-byte `ImageFileName`.
    pub name: &'a str,
    /// Synth's fields past the profile's, which its ISF describes; `None` for the profile's only.
    pub extra: Option<EprocessExtra>,
}

/// Synth's `_EPROCESS` fields past the profile's (offsets from the body).
#[derive(Copy, Clone, Debug)]
pub struct EprocessExtra {
    /// VA of the body: `ThreadListHead` is an empty list pointing at itself.
    pub va: u64,
    /// The body's size; the dispatcher header's `Size` (in dwords, at +2) says it.
    pub size: u64,
    pub thread_list_head: u64,
    pub active_threads: u64,
    pub threads: u64,
}

/// The `_EPROCESS` body (from `Pcb`): dispatcher Type 3 (a process), then each field the profile
/// places. At least `extra.size` long, and up to the end of its last field.
pub fn eprocess(p: &Profile, e: &Eprocess) -> Vec<u8> {
    let ptr = p.arch.pointer_size();
    let l = &p.nt.eprocess;
    let name = {
        let mut n = [0u8; 15];
        let b = e.name.as_bytes();
        n[..b.len().min(14)].copy_from_slice(&b[..b.len().min(14)]);
        n
    };
    let dispatcher = l.dispatcher_type.off().unwrap_or(0);
    let mut fields: Vec<(u64, Vec<u8>)> = vec![(dispatcher, vec![3])];
    if let Some(x) = e.extra {
        fields.push((2, vec![(x.size / 4).min(0xFF) as u8]));
    }
    let profile_fields = [
        (&l.directory_table_base, ptr_bytes(e.dtb, ptr)),
        (&l.unique_process_id, ptr_bytes(u64::from(e.pid), ptr)),
        (
            &l.inherited_from_unique_process_id,
            ptr_bytes(u64::from(e.parent), ptr),
        ),
        (&l.create_time, e.create_time.to_le_bytes().to_vec()),
        (&l.exit_time, e.exit_time.to_le_bytes().to_vec()),
        (&l.image_file_name, name.to_vec()),
    ];
    for (f, bytes) in profile_fields {
        if let Some(o) = f.off() {
            fields.push((o, bytes));
        }
    }
    if let Some(x) = e.extra {
        let head = x.va + x.thread_list_head;
        fields.push((x.thread_list_head, ptr_bytes(head, ptr)));
        fields.push((x.thread_list_head + ptr, ptr_bytes(head, ptr)));
        fields.push((x.active_threads, (x.threads as u32).to_le_bytes().to_vec()));
    }
    let end = fields.iter().map(|(o, b)| o + b.len() as u64).max();
    let size = e.extra.map_or(0, |x| x.size);
    let mut body = vec![0u8; end.unwrap_or(0).max(size) as usize];
    for (o, bytes) in fields {
        put(&mut body, o, &bytes);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each structure at the next 0x1000, remembered with its tag.
    #[derive(Default)]
    struct Log(Vec<([u8; 4], Vec<u8>)>);

    impl Place for Log {
        fn place(&mut self, tag: [u8; 4], bytes: &[u8]) -> u64 {
            self.0.push((tag, bytes.to_vec()));
            0x1000 * self.0.len() as u64
        }
    }

    fn u64_at(b: &[u8], off: u64) -> u64 {
        u64::from_le_bytes(b[off as usize..off as usize + 8].try_into().unwrap())
    }

    #[test]
    fn a_connection_points_through_its_chains_at_the_profile_offsets() {
        let p = crate::profile::by_name("win10-19041-x64").unwrap();
        let t = &p.tcpip;
        let e = Endpoint {
            kind: ObjectKind::TcpEndpoint,
            inet_af: 0xAF00,
            local: Some("10.0.0.5".parse().unwrap()),
            local_port: 49723,
            remote: Some(("93.184.216.34".parse().unwrap(), 443)),
            state: 4,
            owner: 0xE000,
            create_time: 0x01DA_9B2C_0000_0000,
        };
        let mut log = Log::default();
        let body = endpoint_body(p, &e, &mut log);
        let tags: Vec<&[u8; 4]> = log.0.iter().map(|(t, _)| t).collect();
        assert_eq!(tags, [b"IPAd", b"IPAp", b"InLa", b"IPAd", b"TcpA"]);
        let l = &t.tcp_endpoint;
        let at = |f: &Field| f.off().unwrap();
        assert_eq!(u64_at(&body, at(&l.inet_af)), 0xAF00);
        assert_eq!(u64_at(&body, at(&l.owner)), 0xE000);
        assert_eq!(u64_at(&body, at(&l.create_time)), e.create_time);
        assert_eq!(
            body[at(&l.local_port) as usize..][..2],
            49723u16.to_be_bytes()
        );
        assert_eq!(
            body[at(&l.remote_port) as usize..][..2],
            443u16.to_be_bytes()
        );
        // AddrInfo → (Local → _LOCAL_ADDRESS → cell → bytes, Remote → bytes).
        assert_eq!(u64_at(&body, at(&l.addr_info)), 0x5000);
        let ai = &log.0[4].1;
        assert_eq!(u64_at(ai, at(&t.addrinfo_local)), 0x3000);
        assert_eq!(u64_at(ai, at(&t.addrinfo_remote)), 0x4000);
        assert_eq!(u64_at(&log.0[2].1, at(&t.local_address_p_data)), 0x2000);
        assert_eq!(u64_at(&log.0[1].1, 0), 0x1000);
        assert_eq!(log.0[0].1[..4], [10, 0, 0, 5]);
        assert_eq!(log.0[3].1[..4], [93, 184, 216, 34]);
    }

    #[test]
    fn a_wildcard_listener_places_nothing_and_the_inline_chain_keeps_its_bytes() {
        let p = crate::profile::by_name("win10-19041-x64").unwrap();
        let e = Endpoint {
            kind: ObjectKind::TcpListener,
            inet_af: 0xAF00,
            local: None,
            local_port: 445,
            remote: None,
            state: 0,
            owner: 0xE000,
            create_time: 1,
        };
        let mut log = Log::default();
        let body = endpoint_body(p, &e, &mut log);
        assert!(log.0.is_empty());
        let off = p.tcpip.tcp_listener.local_addr.off().unwrap();
        assert_eq!(u64_at(&body, off), 0);
        let ip = "2001:db8::5".parse().unwrap();
        let la = local_addr(p, LocalAddrChain::TimeWaitInline, Some(&ip), &mut log);
        let tags: Vec<&[u8; 4]> = log.0.iter().map(|(t, _)| t).collect();
        assert_eq!(tags, [b"IPAd", b"TwLa", b"TwLp"]);
        assert_eq!(la, 0x3000);
        assert_eq!(u64_at(&log.0[2].1, 0x10), 0x2000);
        assert_eq!(log.0[1].1[0x28..], ip_bytes(&ip)[..]);
    }

    #[test]
    fn an_eprocess_holds_the_owner_fields_and_a_cut_name() {
        let p = crate::profile::by_name("win10-19041-x64").unwrap();
        let l = &p.nt.eprocess;
        let b = eprocess(
            p,
            &Eprocess {
                pid: 1236,
                parent: 4,
                dtb: 0x1aa000,
                create_time: 7,
                exit_time: 0,
                name: "a-very-long-name.exe",
                extra: None,
            },
        );
        let at = |f: &Field| f.off().unwrap();
        assert_eq!(b[at(&l.dispatcher_type) as usize], 3);
        assert_eq!(u64_at(&b, at(&l.unique_process_id)), 1236);
        assert_eq!(u64_at(&b, at(&l.inherited_from_unique_process_id)), 4);
        assert_eq!(u64_at(&b, at(&l.directory_table_base)), 0x1aa000);
        let n = at(&l.image_file_name) as usize;
        assert_eq!(&b[n..n + 15], b"a-very-long-na\0");
    }

    #[test]
    fn both_encodings_put_each_field_in_its_bits() {
        let h = PoolHeader {
            prev_units: 3,
            block_units: 0x21,
            pool_index: 1,
            pool_type: 2,
            tag: *b"TcpE",
        };
        assert_eq!(h.encode(Arch::X64), b"\x03\x01\x21\x02TcpE\0\0\0\0\0\0\0\0");
        // x86: u16 PreviousSize | PoolIndex << 9, then u16 BlockSize | PoolType << 9.
        assert_eq!(h.encode(Arch::X86), b"\x03\x02\x21\x04TcpE");
        let wide = PoolHeader::new(*b"TcpL", 0x1000);
        assert_eq!(wide.encode(Arch::X64)[2], 0xFF);
        assert_eq!(wide.encode(Arch::X86)[2..4], [0xFF, 0x05]);
    }
}
