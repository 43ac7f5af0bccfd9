//! Decoding: a pool-block candidate → an [`EndpointRecord`], following the rules of docs/internals.md
//! "Endpoint records". Inline fields come from the block's bytes; pointers are followed through the
//! kernel address space, and a failed read loses only the field it was for.
use crate::bytes::ReadBytes;
use crate::carve::pool::Candidate;
use crate::filetime::{to_iso, TimeWindow};
use crate::paging::{PagingMode, VirtualMemory};
use crate::profile::{kind_fields, Field, LocalAddrChain, ObjectKind, Profile, RemoteAddrChain};
use crate::record::{flag, EndpointRecord, Family, Hex, PoolStatus, TcpState};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The local address could not be read (a pointer in its chain leads nowhere); `local_addr` is "".
pub const FLAG_LOCAL_ADDR_UNREADABLE: &str = "local_addr_unreadable";
/// The remote address could not be read; `remote_addr` is null.
pub const FLAG_REMOTE_ADDR_UNREADABLE: &str = "remote_addr_unreadable";

/// Owner DTB alignment: page-aligned, except PAE's 32-byte-aligned PDPT.
pub fn dtb_alignment(mode: PagingMode) -> u64 {
    match mode {
        PagingMode::Pae => 0x20,
        _ => crate::carve::pool::PAGE_SIZE,
    }
}

/// Calibrated offsets, per object kind; they replace the profile's offsets for that kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub owner: BTreeMap<ObjectKind, u64>,
    pub create_time: BTreeMap<ObjectKind, u64>,
}

/// Everything decoding needs besides the candidate.
pub struct DecodeEnv<'a> {
    pub profile: &'a Profile,
    pub mem: &'a dyn VirtualMemory,
    pub times: TimeWindow,
    /// Required alignment of an owner's DirectoryTableBase (0x1000, or 0x20 under PAE).
    pub dtb_align: u64,
    /// Offsets found by self-calibration; they replace the profile's for their kind.
    pub overrides: Overrides,
    /// Owners found so far (shared by the workers decoding with this memory and profile).
    pub owners: &'a OwnerCache,
}

/// Valid owners already read, by `_EPROCESS` address. A busy process owns many endpoints (12
/// processes own the bench image's 5,039), and each check reads four fields through the page
/// tables. Only valid owners are kept, and at most `CAPACITY`: garbage candidates point anywhere,
/// and the heap must not grow with the image.
#[derive(Debug, Default)]
pub struct OwnerCache(std::sync::Mutex<std::collections::HashMap<u64, Owner>>);

impl OwnerCache {
    const CAPACITY: usize = 4096;
}

impl DecodeEnv<'_> {
    /// [`owner_at`] through the cache of owners found so far.
    pub fn owner(&self, va: u64) -> Option<Owner> {
        // A poisoned lock only means another worker panicked; the map is still consistent.
        let cached = |owners: &OwnerCache| {
            owners
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&va)
                .cloned()
        };
        if let Some(owner) = cached(self.owners) {
            return Some(owner);
        }
        let owner = owner_at(self.mem, self.profile, self.dtb_align, va)?;
        let mut owners = self
            .owners
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if owners.len() < OwnerCache::CAPACITY {
            owners.insert(va, owner.clone());
        }
        Some(owner)
    }

    /// The offsets to try for the owner of `kind`, best first.
    fn owner_offsets<'f>(
        &self,
        kind: ObjectKind,
        field: &'f Field,
    ) -> impl Iterator<Item = u64> + 'f {
        overridden_or(self.overrides.owner.get(&kind).copied(), field)
    }
    fn time_offsets<'f>(
        &self,
        kind: ObjectKind,
        field: &'f Field,
    ) -> impl Iterator<Item = u64> + 'f {
        overridden_or(self.overrides.create_time.get(&kind).copied(), field)
    }
}

/// The calibrated offset alone, or else the profile's candidates.
fn overridden_or(calibrated: Option<u64>, field: &Field) -> impl Iterator<Item = u64> + '_ {
    calibrated
        .into_iter()
        .chain(field.candidates().filter(move |_| calibrated.is_none()))
}

/// An object's bytes and the pointer size its fields are read with.
#[derive(Copy, Clone)]
pub struct ObjectBytes<'a> {
    pub bytes: &'a [u8],
    pub pointer_size: u64,
}

impl ObjectBytes<'_> {
    /// Ports are stored in network byte order.
    pub fn port(&self, off: u64) -> Option<u16> {
        self.bytes.read_u16(off).map(u16::swap_bytes)
    }
    pub fn ptr(&self, off: u64) -> Option<u64> {
        self.bytes.read_word(off, self.pointer_size)
    }
}

/// A valid owner process: PID and ImageFileName.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// ImageFileName decoded as Windows-1252 (the ANSI code page of Western systems; Latin-1
    /// above 0x9F).
    pub name: String,
    /// The name's bytes in hex when any is above 0x7F: the code page is a guess, the bytes are not.
    pub name_raw: Option<String>,
    /// `ExitTime` when it is non-zero: the process has ended (a zombie kept by its references).
    pub exit_time: Option<u64>,
}

/// Windows-1252's characters for 0x80-0x9F (`None`: undefined there, so not part of a name).
const CP1252_HIGH: [Option<char>; 32] = [
    Some('€'),
    None,
    Some('‚'),
    Some('ƒ'),
    Some('„'),
    Some('…'),
    Some('†'),
    Some('‡'),
    Some('ˆ'),
    Some('‰'),
    Some('Š'),
    Some('‹'),
    Some('Œ'),
    None,
    Some('Ž'),
    None,
    None,
    Some('‘'),
    Some('’'),
    Some('“'),
    Some('”'),
    Some('•'),
    Some('–'),
    Some('—'),
    Some('˜'),
    Some('™'),
    Some('š'),
    Some('›'),
    Some('œ'),
    None,
    Some('ž'),
    Some('Ÿ'),
];

/// One ImageFileName byte as a character: printable ASCII, or Windows-1252 above 0x7F; `None` for
/// control bytes and bytes the code page leaves undefined (junk, not a name).
fn name_char(b: u8) -> Option<char> {
    match b {
        0x20..=0x7e | 0xa0..=0xff => Some(char::from(b)),
        0x80..=0x9f => CP1252_HIGH.get(usize::from(b - 0x80)).copied().flatten(),
        _ => None,
    }
}

/// Checks that `va` is an `_EPROCESS` (docs/internals.md "Owner") and returns its PID and name.
fn owner_at(mem: &dyn VirtualMemory, profile: &Profile, dtb_align: u64, va: u64) -> Option<Owner> {
    if va == 0 {
        return None;
    }
    let e = &profile.nt.eprocess;
    let mut kind = [0u8; 1];
    if !mem.read_into(va.checked_add(e.dispatcher_type.off()?)?, &mut kind) || kind[0] != 3 {
        return None;
    }
    let pid = mem.read_ptr(va.checked_add(e.unique_process_id.off()?)?)?;
    if pid == 0 || pid % 4 != 0 || pid > 0xFFFF_FFFC {
        return None;
    }
    let dtb = mem.read_ptr(va.checked_add(e.directory_table_base.off()?)?)?;
    if dtb == 0 || dtb % dtb_align != 0 {
        return None;
    }
    let mut name = [0u8; 15];
    if !mem.read_into(va.checked_add(e.image_file_name.off()?)?, &mut name) {
        return None;
    }
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = name.get(..len)?;
    if name.is_empty() {
        return None;
    }
    let text = name
        .iter()
        .map(|&b| name_char(b))
        .collect::<Option<String>>()?;
    // Unreadable or absent from the layout is "not known to have exited", never "exited".
    let exit_time = e
        .exit_time
        .off()
        .and_then(|o| mem.read_u64(va.checked_add(o)?))
        .filter(|&t| t != 0);
    Some(Owner {
        pid: u32::try_from(pid).ok()?,
        name: text,
        name_raw: (!name.is_ascii()).then(|| name.iter().map(|b| format!("{b:02x}")).collect()),
        exit_time,
    })
}

/// Which offsets a valid record's owner and create time came from (for the calibration report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChoice {
    pub kind: ObjectKind,
    pub owner_offset: Option<u64>,
    pub time_offset: Option<u64>,
}

/// The outcome of decoding one candidate.
#[derive(Clone, Debug)]
pub enum Decoded {
    Valid(EndpointRecord, FieldChoice),
    /// Structurally invalid; the record carries the `reason`.
    Corrupt(EndpointRecord),
}

/// A record with only what the pool header says; the rest is filled in by decoding.
fn skeleton(c: &Candidate) -> EndpointRecord {
    EndpointRecord {
        proto: c.kind.proto(),
        family: Family::Ipv4,
        local_addr: String::new(),
        local_port: 0,
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
        tag: c.tag_text(),
        pool_status: if c.header.is_freed() {
            PoolStatus::Freed
        } else {
            PoolStatus::Allocated
        },
        physical_offset: Hex(c.offset),
        virtual_address: None,
        found_by: vec![crate::record::FoundBy::Pool],
        linked: None,
        flags: vec![],
        reason: None,
    }
}

/// The `--include-corrupt` row of a candidate whose pool header failed its checks.
pub fn header_only_record(c: &Candidate, reason: Option<&str>) -> EndpointRecord {
    let mut r = skeleton(c);
    r.reason = Some(format!(
        "pool header: {}",
        reason.unwrap_or("rejected by the header checks")
    ));
    r
}

fn corrupt(mut r: EndpointRecord, reason: String) -> Decoded {
    r.reason = Some(reason);
    Decoded::Corrupt(r)
}

/// Reads 4 or 16 address bytes at `va` and renders them canonically.
fn read_addr(mem: &dyn VirtualMemory, va: u64, family: Family) -> Option<String> {
    if va == 0 {
        return None;
    }
    match family {
        Family::Ipv4 => {
            let mut b = [0u8; 4];
            mem.read_into(va, &mut b)
                .then(|| Ipv4Addr::from(b).to_string())
        }
        Family::Ipv6 => {
            let mut b = [0u8; 16];
            mem.read_into(va, &mut b)
                .then(|| Ipv6Addr::from(b).to_string())
        }
    }
}

/// A local address: decoded, the wildcard (null pointer: bound to every address), or unreadable.
enum Local {
    Addr(String),
    Wildcard,
    Unreadable,
}

/// Follows `_LOCAL_ADDRESS` at `la`: `p = *(la + pData)`, `q = *p`, bytes at `q`.
fn local_address(env: &DecodeEnv, la: u64, family: Family) -> Local {
    let t = &env.profile.tcpip;
    if la == 0 {
        return Local::Wildcard;
    }
    let addr = (|| {
        let p = env
            .mem
            .read_ptr(la.checked_add(t.local_address_p_data.off()?)?)?;
        let q = env.mem.read_ptr(p)?;
        read_addr(env.mem, q, family)
    })();
    addr.map_or(Local::Unreadable, Local::Addr)
}

fn local_by_chain(
    env: &DecodeEnv,
    obj: ObjectBytes,
    chain: LocalAddrChain,
    field: &Field,
    family: Family,
) -> Local {
    let Some(la) = field.off().and_then(|o| obj.ptr(o)) else {
        return Local::Unreadable;
    };
    match chain {
        LocalAddrChain::LocalAddress => local_address(env, la, family),
        LocalAddrChain::Win10Udp => {
            if la == 0 {
                return Local::Wildcard;
            }
            let p_data = env
                .profile
                .tcpip
                .win10_udp_p_data
                .as_ref()
                .and_then(Field::off)
                .unwrap_or(0);
            la.checked_add(p_data)
                .and_then(|a| env.mem.read_ptr(a))
                .and_then(|q| read_addr(env.mem, q, family))
                .map_or(Local::Unreadable, Local::Addr)
        }
        LocalAddrChain::TimeWaitInline => {
            if la == 0 {
                return Local::Wildcard;
            }
            la.checked_add(0x10)
                .and_then(|a| env.mem.read_ptr(a))
                .and_then(|s| s.checked_add(0x28))
                .and_then(|a| read_addr(env.mem, a, family))
                .map_or(Local::Unreadable, Local::Addr)
        }
        LocalAddrChain::AddrInfo => {
            if la == 0 {
                return Local::Wildcard;
            }
            let t = &env.profile.tcpip;
            match t
                .addrinfo_local
                .off()
                .and_then(|o| la.checked_add(o))
                .and_then(|a| env.mem.read_ptr(a))
            {
                Some(inner) => local_address(env, inner, family),
                None => Local::Unreadable,
            }
        }
    }
}

/// Decodes one candidate whose pool header passed the checks.
pub fn decode(c: &Candidate, env: &DecodeEnv) -> Decoded {
    let mut r = skeleton(c);
    let Some(fields) = kind_fields(env.profile, c.kind) else {
        return corrupt(r, format!("profile has no {} layout", c.kind.name()));
    };
    let obj = ObjectBytes {
        bytes: usize::try_from(fields.body_offset)
            .ok()
            .and_then(|o| c.body.get(o..))
            .unwrap_or(&[]),
        pointer_size: env.profile.pointer_size(),
    };
    let t = &env.profile.tcpip;

    // Address family: the structure check every kind shares.
    let af = fields
        .inet_af
        .off()
        .and_then(|o| obj.ptr(o))
        .filter(|&p| p != 0)
        .and_then(|p| p.checked_add(t.inetaf_address_family.off()?))
        .and_then(|a| env.mem.read_u16(a));
    let Some(af) = af else {
        return corrupt(r, "address family unreadable (InetAF)".into());
    };
    let Some(family) = Family::from_af(af) else {
        return corrupt(
            r,
            format!("address family {af:#x} is neither 2 (IPv4) nor 0x17 (IPv6)"),
        );
    };
    r.family = family;

    let mut local = Local::Unreadable;
    match c.kind {
        ObjectKind::TcpEndpoint => {
            let l = &t.tcp_endpoint;
            let raw_state = l.state.off().and_then(|o| obj.bytes.read_u32(o));
            let Some(raw_state) = raw_state else {
                return corrupt(r, "TCP state unreadable".into());
            };
            let Some(state) = TcpState::from_kernel(raw_state) else {
                return corrupt(r, format!("state {raw_state} is not a kernel TCP state"));
            };
            r.state = Some(state);
            r.local_port = l.local_port.off().and_then(|o| obj.port(o)).unwrap_or(0);
            r.remote_port = l.remote_port.off().and_then(|o| obj.port(o));
            local = local_by_chain(env, obj, LocalAddrChain::AddrInfo, &l.addr_info, family);
            let ai = l.addr_info.off().and_then(|o| obj.ptr(o));
            r.remote_addr = match ai {
                Some(0) => Some(family.wildcard().to_string()),
                Some(ai) => t
                    .addrinfo_remote
                    .off()
                    .and_then(|o| ai.checked_add(o))
                    .and_then(|a| env.mem.read_ptr(a))
                    .and_then(|ra| read_addr(env.mem, ra, family)),
                None => None,
            };
            if r.remote_addr.is_none() {
                r.flags.push(FLAG_REMOTE_ADDR_UNREADABLE.into());
            }
        }
        ObjectKind::TcpListener => {
            let l = &t.tcp_listener;
            r.state = Some(TcpState::Listening);
            r.local_port = l.port.off().and_then(|o| obj.port(o)).unwrap_or(0);
            r.remote_addr = Some(family.wildcard().to_string());
            r.remote_port = Some(0);
            local = local_by_chain(env, obj, l.local_addr_chain, &l.local_addr, family);
        }
        ObjectKind::UdpEndpoint => {
            let l = &t.udp_endpoint;
            r.local_port = l.port.off().and_then(|o| obj.port(o)).unwrap_or(0);
            local = local_by_chain(env, obj, l.local_addr_chain, &l.local_addr, family);
        }
        ObjectKind::TimeWait => {
            if let Some(l) = &t.time_wait {
                r.state = Some(TcpState::TimeWait);
                r.local_port = l.local_port.off().and_then(|o| obj.port(o)).unwrap_or(0);
                r.remote_port = l.remote_port.off().and_then(|o| obj.port(o));
                local = local_by_chain(env, obj, l.local_addr_chain, &l.local_addr, family);
                r.remote_addr =
                    remote_by_chain(env, obj, l.remote_addr_chain, &l.remote_addr, family);
                if r.remote_addr.is_none() && l.remote_addr_chain != RemoteAddrChain::None {
                    r.flags.push(FLAG_REMOTE_ADDR_UNREADABLE.into());
                }
            }
        }
    }
    match local {
        Local::Addr(a) => r.local_addr = a,
        Local::Wildcard => {
            r.local_addr = family.wildcard().to_string();
            r.dual_stack = family == Family::Ipv6
                && matches!(c.kind, ObjectKind::TcpListener | ObjectKind::UdpEndpoint);
        }
        Local::Unreadable => r.flags.push(FLAG_LOCAL_ADDR_UNREADABLE.into()),
    }

    let mut choice = FieldChoice {
        kind: c.kind,
        owner_offset: None,
        time_offset: None,
    };
    let mut calibrated = false;
    if let Some(owner_field) = fields.owner {
        calibrated |= env.overrides.owner.contains_key(&c.kind);
        let found = env.owner_offsets(c.kind, owner_field).find_map(|off| {
            let va = obj.ptr(off)?;
            env.owner(va).map(|o| (off, o))
        });
        match found {
            Some((off, owner)) => {
                choice.owner_offset = Some(off);
                r.pid = Some(owner.pid);
                r.process = Some(owner.name);
                r.process_raw = owner.name_raw;
                // An exit time outside boot..acquisition is smear, not an exit.
                if let Some(t) = owner
                    .exit_time
                    .filter(|&t| env.times.contains(t) != Some(false))
                {
                    r.process_exit_time = to_iso(t);
                    r.process_exit_time_raw = Some(t);
                    r.flags.push(flag::OWNER_EXITED.into());
                }
            }
            None => r.flags.push(flag::NO_OWNER.into()),
        }
    }

    calibrated |= env.overrides.create_time.contains_key(&c.kind);
    let mut readable = env
        .time_offsets(c.kind, fields.create_time)
        .map(|off| (off, obj.bytes.read_u64(off)))
        .peekable();
    if readable.peek().is_none() {
        r.flags.push(flag::NO_TIME_FIELD.into());
    } else {
        let mut readable = readable.filter_map(|(off, v)| Some((off, v?)));
        // The first offset whose value no known bound excludes; else the first readable value.
        let first = readable.next();
        let chosen = first
            .into_iter()
            .chain(readable)
            .find(|&(_, v)| v != 0 && env.times.contains(v) != Some(false))
            .or(first);
        if let Some((off, raw)) = chosen {
            choice.time_offset = Some(off);
            r.create_time_raw = Some(raw);
            r.create_time = to_iso(raw);
            if raw == 0 {
                r.flags.push(flag::ZERO_TIME.into());
            } else if env.times.contains(raw) == Some(false) {
                r.flags.push(flag::TIME_OUT_OF_RANGE.into());
            }
        }
    }
    if calibrated {
        r.flags.push(flag::CALIBRATED.into());
    }
    r.flags.sort();
    r.flags.dedup();
    Decoded::Valid(r, choice)
}

fn remote_by_chain(
    env: &DecodeEnv,
    obj: ObjectBytes,
    chain: RemoteAddrChain,
    field: &Field,
    family: Family,
) -> Option<String> {
    let off = field.off();
    match chain {
        RemoteAddrChain::None => None,
        RemoteAddrChain::Inline => {
            let start = usize::try_from(off?).ok()?;
            let bytes = obj
                .bytes
                .get(start..start.checked_add(family.addr_len())?)?;
            Some(match family {
                Family::Ipv4 => Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string(),
                Family::Ipv6 => Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string(),
            })
        }
        RemoteAddrChain::Pointer => {
            let r = obj.ptr(off?)?;
            read_addr(env.mem, r, family)
        }
        RemoteAddrChain::AddrInfo => {
            let ai = obj.ptr(off?)?;
            let r = env
                .mem
                .read_ptr(ai.checked_add(env.profile.tcpip.addrinfo_remote.off()?)?)?;
            read_addr(env.mem, r, family)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The same `_EPROCESS` bytes repeated every `len` bytes from `base`; counts its reads.
    struct RepeatedProcess {
        base: u64,
        bytes: Vec<u8>,
        reads: AtomicUsize,
    }

    impl ReadBytes for RepeatedProcess {
        fn read_into(&self, va: u64, buf: &mut [u8]) -> bool {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let Some(at) = va.checked_sub(self.base) else {
                return false;
            };
            let at = (at % self.bytes.len() as u64) as usize;
            match self.bytes.get(at..at + buf.len()) {
                Some(b) => {
                    buf.copy_from_slice(b);
                    true
                }
                None => false,
            }
        }
    }

    impl VirtualMemory for RepeatedProcess {
        fn pointer_size(&self) -> u64 {
            8
        }
    }

    /// Valid owners are read once and then served from the cache, up to its capacity; invalid
    /// ones are read again each time (they are not kept).
    #[test]
    fn owner_cache_keeps_valid_owners_only_and_is_bounded() {
        let profile = crate::profile::by_name("win10-19041-x64").unwrap();
        let e = &profile.nt.eprocess;
        let mut bytes = vec![0u8; 0x1000];
        let mut put = |field: &Field, value: &[u8]| {
            let at = field.off().unwrap() as usize;
            bytes[at..at + value.len()].copy_from_slice(value);
        };
        put(&e.dispatcher_type, &[3]);
        put(&e.unique_process_id, &1236u64.to_le_bytes());
        put(&e.directory_table_base, &0x1a_b000u64.to_le_bytes());
        put(&e.image_file_name, b"svchost.exe\0");
        let base = 0xffff_c000_0000_0000u64;
        let mem = RepeatedProcess {
            base,
            bytes,
            reads: AtomicUsize::new(0),
        };
        let owners = OwnerCache::default();
        let env = DecodeEnv {
            profile,
            mem: &mem,
            times: TimeWindow::default(),
            dtb_align: 0x1000,
            overrides: Overrides::default(),
            owners: &owners,
        };
        let want = Owner {
            pid: 1236,
            name: "svchost.exe".into(),
            name_raw: None,
            exit_time: None,
        };
        assert_eq!(env.owner(base), Some(want.clone()));
        let reads = mem.reads.load(Ordering::Relaxed);
        assert!(reads >= 4, "{reads} reads for the first look");
        assert_eq!(env.owner(base), Some(want.clone()));
        assert_eq!(
            mem.reads.load(Ordering::Relaxed),
            reads,
            "served from the cache"
        );

        // One byte in: Pcb.Header.Type reads as 0, not a process; not kept.
        assert_eq!(env.owner(base + 1), None);
        let after_miss = mem.reads.load(Ordering::Relaxed);
        assert_eq!(env.owner(base + 1), None);
        assert!(mem.reads.load(Ordering::Relaxed) > after_miss);

        for i in 0..OwnerCache::CAPACITY as u64 + 100 {
            assert_eq!(env.owner(base + i * 0x1000), Some(want.clone()));
        }
        assert_eq!(owners.0.lock().unwrap().len(), OwnerCache::CAPACITY);
        // Past the capacity owners are still found, by reading them.
        let before = mem.reads.load(Ordering::Relaxed);
        assert_eq!(env.owner(base + 0x1000 * 10_000), Some(want));
        assert!(mem.reads.load(Ordering::Relaxed) > before);
    }
}
