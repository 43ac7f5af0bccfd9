//! Processes (EPROCESS in `Proc` pool blocks), endpoint objects with their separately allocated
//! address structures, freed blocks and decoys, laid out from the profile's numbers alone.
use super::builder::{self, Endpoint, Eprocess, EprocessExtra, Place, PoolHeader, Slot};
use super::phys::{PhysMem, PAGE};
use super::rng::Rng;
use super::vmap::{Block, PagePacker, PoolArena, Vmap};
use crate::profile::{Field, ObjectKind, Profile};
use crate::record::{flag, EndpointRecord, Family, Hex, PoolStatus, Proto, TcpState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub struct Proc {
    pub pid: u32,
    pub name: String,
    pub create: u64,
    /// ExitTime, when the process has exited and the layout has the field.
    pub exit: Option<u64>,
    /// VA of the `_EPROCESS` body (`Pcb`).
    pub va: u64,
}

/// A process by its place in the scenario's process table (`scenario::PROCESSES`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ProcId(pub usize);

impl ProcId {
    pub fn of(self, procs: &[Proc]) -> &Proc {
        &procs[self.0]
    }
}

/// Everything the object writer needs, threaded through one place.
pub struct World<'a> {
    pub p: &'a Profile,
    pub mem: PhysMem,
    pub vm: Vmap,
    pub rng: Rng,
    pub arena: PoolArena,
    pub unit: u64,
    pub ptr: u64,
    endpoints: PagePacker,
    addrs: PagePacker,
    inetaf: [u64; 2],
    /// VA of the large-page region (the INETAF structures live there).
    pub large_va: u64,
    tcpe_count: usize,
}

/// What kind of endpoint object.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    TcpE,
    TcpL,
    UdpA,
    TcTW,
}

impl Kind {
    pub fn of(kind: ObjectKind) -> Kind {
        match kind {
            ObjectKind::TcpEndpoint => Kind::TcpE,
            ObjectKind::TcpListener => Kind::TcpL,
            ObjectKind::UdpEndpoint => Kind::UdpA,
            ObjectKind::TimeWait => Kind::TcTW,
        }
    }

    /// The profile's name for the kind (the layout the builder encodes).
    pub fn object(self) -> ObjectKind {
        match self {
            Kind::TcpE => ObjectKind::TcpEndpoint,
            Kind::TcpL => ObjectKind::TcpListener,
            Kind::UdpA => ObjectKind::UdpEndpoint,
            Kind::TcTW => ObjectKind::TimeWait,
        }
    }
}

/// One endpoint to plant: its decoded meaning.
#[derive(Clone, Debug)]
pub struct Spec {
    pub kind: Kind,
    pub family: Family,
    /// `None`: null LocalAddr pointer (wildcard; dual stack when IPv6).
    pub local: Option<IpAddr>,
    pub lport: u16,
    pub remote: Option<(IpAddr, u16)>,
    pub state: Option<TcpState>,
    /// `None`: the owner pointer leads to no process (TcTW has no owner field).
    pub owner: Option<ProcId>,
    pub create: u64,
    pub freed: bool,
}

pub fn family_of(ip: &IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::Ipv4,
        IpAddr::V6(_) => Family::Ipv6,
    }
}

impl<'a> World<'a> {
    pub fn new(p: &'a Profile, mem: PhysMem, vm: Vmap, rng: Rng, pool_base: u64) -> World<'a> {
        let unit = p.arch.pool_header_size();
        World {
            p,
            mem,
            vm,
            rng,
            arena: PoolArena::new(pool_base, unit),
            unit,
            ptr: p.arch.pointer_size(),
            endpoints: PagePacker::new(),
            addrs: PagePacker::new(),
            inetaf: [0, 0],
            large_va: 0,
            tcpe_count: 0,
        }
    }

    fn round(&self, n: u64) -> u64 {
        n.div_ceil(self.unit) * self.unit
    }

    /// `_POOL_HEADER` bytes for the architecture.
    pub fn pool_header(
        &self,
        prev_units: u64,
        block_units: u64,
        pool_type: u8,
        tag: &[u8; 4],
    ) -> Vec<u8> {
        PoolHeader {
            prev_units,
            pool_type,
            ..PoolHeader::new(*tag, block_units)
        }
        .encode(self.p.arch)
    }

    pub(super) fn write_u(&mut self, va: u64, v: u64, n: usize) {
        self.vm.write(&mut self.mem, va, &v.to_le_bytes()[..n]);
    }
    pub(super) fn write_ptr(&mut self, va: u64, v: u64) {
        self.vm.write_ptr(&mut self.mem, va, v);
    }

    /// A small allocation (address structures) in the shared address pages; returns the body VA.
    pub(super) fn small(&mut self, body: u64, tag: &[u8; 4]) -> u64 {
        let size = self.round(body) + self.unit;
        let (b, prev) = self.addrs.alloc(
            &mut self.arena,
            &mut self.vm,
            &mut self.mem,
            &mut self.rng,
            size,
        );
        let h = self.pool_header(prev, size / self.unit, 2, tag);
        self.vm.write(&mut self.mem, b.va, &h);
        self.vm.write(
            &mut self.mem,
            b.va + self.unit,
            &vec![0u8; (size - self.unit) as usize],
        );
        b.va + self.unit
    }

    /// Where an orphaned endpoint's owner pointer leads: a zero-filled allocation, as when the
    /// owning `_EPROCESS` was freed and its memory reused (dispatcher Type 0, no PID, no name), so
    /// a reader must report no owner rather than follow the pointer blindly.
    fn dangling_owner(&mut self) -> u64 {
        self.small(0x100, b"ObRe")
    }

    /// The two `_INETAF` objects (`InNl` blocks) on the large page.
    pub fn setup_inetaf(&mut self) {
        let len = builder::inetaf(self.p, 0).len() as u64;
        let size = self.round(len) + self.unit;
        let mut at = self.large_va + self.rng.range(1, 16) * 0x40;
        for (i, fam) in [Family::Ipv4, Family::Ipv6].iter().enumerate() {
            let h = self.pool_header(0, size / self.unit, 2, b"InNl");
            self.vm.write(&mut self.mem, at, &h);
            self.vm.write(
                &mut self.mem,
                at + self.unit,
                &vec![0u8; (size - self.unit) as usize],
            );
            let b = builder::inetaf(self.p, fam.af());
            self.vm.write(&mut self.mem, at + self.unit, &b);
            self.inetaf[i] = at + self.unit;
            at += size;
        }
    }

    fn inetaf_block(&mut self, af: u16) -> u64 {
        let b = builder::inetaf(self.p, af);
        self.place(*b"InNl", &b)
    }

    fn inetaf_for(&self, f: Family) -> u64 {
        match f {
            Family::Ipv4 => self.inetaf[0],
            Family::Ipv6 => self.inetaf[1],
        }
    }

    /// Address bytes on their own page mapped through a transition PTE (P=0, bit 11).
    fn transition_in_addr(&mut self, bytes: &[u8]) -> u64 {
        let va = self
            .arena
            .pages(&mut self.vm, &mut self.mem, &mut self.rng, 0);
        // `pages(0)` reserved a guard slot only; map one page by hand as transition.
        let f = self.mem.alloc_frame(&mut self.rng, None);
        self.mem.page_mut(f, true);
        self.vm
            .map_transition(&mut self.mem, &mut self.rng, va, f * PAGE);
        let at = va + 0x3A0;
        let h = self.pool_header(0, 3, 2, b"IPAd");
        self.vm.write(&mut self.mem, at - self.unit, &h);
        self.vm.write(&mut self.mem, at, &[0u8; 32]);
        self.vm.write(&mut self.mem, at, bytes);
        at
    }

    /// Processes linked from PsActiveProcessHead; returns them with their EPROCESS VAs.
    pub fn processes(
        &mut self,
        list: &[(u32, &str, u64, u64)],
        head_va: u64,
        kernel_dtb: u64,
        extras: &super::isf::EprocessExtras,
    ) -> Vec<Proc> {
        let e = self.p.nt.eprocess.clone();
        let body_off = self
            .p
            .nt
            .object_header
            .body
            .off()
            .unwrap_or(if self.ptr == 8 { 0x30 } else { 0x18 });
        let type_index_off = self.p.nt.object_header.type_index.off().unwrap_or(0x18);
        let links = e.active_process_links.off().unwrap_or(0);
        let size = self.round(self.unit + body_off + extras.size);
        let mut procs = vec![];
        for (i, (pid, name, create, exit)) in list.iter().enumerate() {
            // The third process starts mid-page so that it straddles onto a discontiguous frame.
            let start = if i == 2 {
                (PAGE - size / 2) / self.unit * self.unit
            } else {
                self.rng.below(PAGE / self.unit / 2) * self.unit
            };
            let pages = (start + size).div_ceil(PAGE);
            let page_va = self
                .arena
                .pages(&mut self.vm, &mut self.mem, &mut self.rng, pages);
            let hdr = page_va + start;
            let h = self.pool_header(0, size / self.unit, 2, b"Proc");
            self.vm.write(&mut self.mem, hdr, &h);
            self.vm.write(
                &mut self.mem,
                hdr + self.unit,
                &vec![0u8; (size - self.unit) as usize],
            );
            let oh = hdr + self.unit;
            self.write_u(oh, 3, self.ptr as usize); // PointerCount
            self.write_u(oh + type_index_off, 7, 1);
            let body = oh + body_off;
            // The RNG draws in the order synth has always made them: the DTB's frame, then the
            // thread count.
            let dtb = if *pid == 4 {
                kernel_dtb
            } else {
                let f = self.mem.alloc_frame(&mut self.rng, None);
                self.mem.page_mut(f, false);
                f * PAGE
            };
            let threads = self.rng.range(1, 40);
            let parent = if *pid == 4 {
                0
            } else {
                list[i.saturating_sub(1).max(1).min(i)].0
            };
            let bytes = builder::eprocess(
                self.p,
                &Eprocess {
                    pid: *pid,
                    parent,
                    dtb,
                    create_time: *create,
                    exit_time: *exit,
                    name,
                    extra: Some(EprocessExtra {
                        va: body,
                        size: extras.size,
                        thread_list_head: extras.thread_list_head,
                        active_threads: extras.active_threads,
                        threads,
                    }),
                },
            );
            self.vm.write(&mut self.mem, body, &bytes);
            procs.push(Proc {
                pid: *pid,
                name: name.to_string(),
                create: *create,
                exit: (*exit != 0 && e.exit_time.off().is_some()).then_some(*exit),
                va: body,
            });
        }
        // Circular ActiveProcessLinks through the head.
        let nodes: Vec<u64> = std::iter::once(head_va)
            .chain(procs.iter().map(|p| p.va + links))
            .collect();
        for (i, &n) in nodes.iter().enumerate() {
            let next = nodes[(i + 1) % nodes.len()];
            let prev = nodes[(i + nodes.len() - 1) % nodes.len()];
            self.write_ptr(n, next);
            self.write_ptr(n + self.ptr, prev);
        }
        procs
    }

    pub fn tag(&self, kind: Kind) -> [u8; 4] {
        let t = &self.p.tcpip;
        let tags = match kind {
            Kind::TcpE => &t.tcp_endpoint.tags,
            Kind::TcpL => &t.tcp_listener.tags,
            Kind::UdpA => &t.udp_endpoint.tags,
            Kind::TcTW => t
                .time_wait
                .as_ref()
                .map(|l| &l.tags)
                .unwrap_or(&t.tcp_endpoint.tags),
        };
        let name = tags.first().map(String::as_str).unwrap_or("TcpE");
        let mut out = [b' '; 4];
        for (o, c) in out.iter_mut().zip(name.bytes()) {
            *o = c;
        }
        out
    }

    /// A pool block for an endpoint, inside one page.
    fn endpoint_block(&mut self, kind: Kind, extra_units: u64) -> (Block, u64) {
        let size = self.round(body_size(self.p, kind)) + self.unit + extra_units * self.unit;
        self.endpoints.alloc(
            &mut self.arena,
            &mut self.vm,
            &mut self.mem,
            &mut self.rng,
            size,
        )
    }

    /// Writes one endpoint object; returns its record (with the truth the reader must find).
    pub fn plant(&mut self, s: &Spec, procs: &[Proc], transition: bool) -> EndpointRecord {
        let extra = self.rng.below(3);
        let (block, prev) = self.endpoint_block(s.kind, extra);
        self.write_object(
            s,
            procs,
            block,
            prev,
            if s.freed { 0 } else { 2 },
            transition,
            block.va,
        )
    }

    /// Writes the object with its header at `hdr_va` inside `block`.
    #[allow(clippy::too_many_arguments)]
    fn write_object(
        &mut self,
        s: &Spec,
        procs: &[Proc],
        block: Block,
        prev: u64,
        pool_type: u8,
        transition: bool,
        hdr_va: u64,
    ) -> EndpointRecord {
        let tag = if s.kind == Kind::TcpE {
            // Builds whose TCP endpoints come in several tags (TcpE and TTcb) get both.
            self.tcpe_count += 1;
            let tags = &self.p.tcpip.tcp_endpoint.tags;
            match tags.get(self.tcpe_count % tags.len().max(1)) {
                Some(t) if t.len() == 4 => {
                    let mut out = [0u8; 4];
                    out.copy_from_slice(t.as_bytes());
                    out
                }
                _ => self.tag(s.kind),
            }
        } else {
            self.tag(s.kind)
        };
        let units = (block.size - (hdr_va - block.va)) / self.unit;
        let h = self.pool_header(prev, units, pool_type, &tag);
        self.vm.write(&mut self.mem, hdr_va, &h);
        let body = hdr_va + self.unit;
        let body_len = units * self.unit - self.unit;
        self.vm
            .write(&mut self.mem, body, &vec![0u8; body_len as usize]);
        let owner_va = match s.owner {
            Some(id) => id.of(procs).va,
            None if s.kind != Kind::TcTW => self.dangling_owner(),
            None => 0,
        };
        let e = Endpoint {
            kind: s.kind.object(),
            inet_af: self.inetaf_for(s.family),
            local: s.local,
            local_port: s.lport,
            remote: s.remote,
            state: s.state.map(TcpState::kernel).unwrap_or(4),
            owner: owner_va,
            create_time: s.create,
        };
        let p = self.p;
        let bytes = if transition {
            builder::endpoint_body(p, &e, &mut Transition(self))
        } else {
            builder::endpoint_body(p, &e, self)
        };
        self.vm.write(&mut self.mem, body, &bytes);
        let time_field = builder::endpoint_fields(p, e.kind)
            .iter()
            .any(|(slot, _)| *slot == Slot::CreateTime);
        let pa = self.vm.translate(hdr_va).expect("mapped");
        record(s, procs, &tag, pa, Some(hdr_va), time_field)
    }
}

/// Synth's placement of the structures an object points to: a small tagged block in the shared
/// address pages.
impl Place for World<'_> {
    fn place(&mut self, tag: [u8; 4], bytes: &[u8]) -> u64 {
        let va = self.small(bytes.len() as u64, &tag);
        self.vm.write(&mut self.mem, va, bytes);
        va
    }
}

/// The same, with the local address bytes on a page mapped through a transition PTE.
struct Transition<'w, 'a>(&'w mut World<'a>);

impl Place for Transition<'_, '_> {
    fn place(&mut self, tag: [u8; 4], bytes: &[u8]) -> u64 {
        self.0.place(tag, bytes)
    }

    fn place_local_ip(&mut self, bytes: &[u8; 16]) -> u64 {
        self.0.transition_in_addr(bytes)
    }
}

/// Body bytes (from the pool body) an object of this kind needs: the layout's `min_size`, and at
/// least the end of every field the writer fills (tcpip's table links included, where it plants
/// the tables: they may lie past `min_size`, Volatility's minimum).
pub fn body_size(p: &Profile, kind: Kind) -> u64 {
    let ptr = p.arch.pointer_size();
    let t = &p.tcpip;
    let end = |f: &Field, n: u64| f.off().map(|o| o + n);
    let tables = t.tables.as_ref();
    let (min, link) = match kind {
        Kind::TcpE => (
            t.tcp_endpoint.min_size.get(),
            tables.and_then(|x| end(&x.tcp_endpoint_link, 2 * ptr)),
        ),
        Kind::TcpL => (
            t.tcp_listener.min_size.get(),
            tables.and_then(|x| end(&x.tcp_listener_next, ptr)),
        ),
        Kind::UdpA => (
            t.udp_endpoint.min_size.get(),
            tables.and_then(|x| end(&x.udp_endpoint_next, ptr)),
        ),
        // The link is relative to the pool body, like the fields; `min_size` to `body_offset`.
        Kind::TcTW => match &t.time_wait {
            Some(l) => (
                l.body_offset.get() + l.min_size.get(),
                tables
                    .and_then(|x| x.time_wait_link.as_ref())
                    .and_then(|x| end(x, 2 * ptr)),
            ),
            None => (0x40, None),
        },
    };
    let fields = builder::endpoint_fields(p, kind.object())
        .into_iter()
        .map(|(slot, o)| o + slot.width(ptr))
        .max()
        .unwrap_or(0);
    fields.max(min).max(link.unwrap_or(0))
}

/// The record a correct reader produces for a planted object.
pub fn record(
    s: &Spec,
    procs: &[Proc],
    tag: &[u8; 4],
    pa: u64,
    va: Option<u64>,
    time_field: bool,
) -> EndpointRecord {
    let mut flags = vec![];
    let (create_time, create_time_raw) = if time_field {
        if s.create == 0 {
            flags.push(flag::ZERO_TIME.to_string());
        }
        (crate::filetime::to_iso(s.create), Some(s.create))
    } else {
        flags.push(flag::NO_TIME_FIELD.to_string());
        (None, None)
    };
    let owner = if s.kind == Kind::TcTW {
        None
    } else {
        s.owner.map(|id| id.of(procs))
    };
    if s.kind != Kind::TcTW && owner.is_none() {
        flags.push(flag::NO_OWNER.to_string());
    }
    let exit = owner.and_then(|p| p.exit);
    if exit.is_some() {
        flags.push(flag::OWNER_EXITED.to_string());
    }
    flags.sort();
    let (remote_addr, remote_port) = match s.kind {
        Kind::TcpL => (Some(s.family.wildcard().to_string()), Some(0)),
        Kind::UdpA => (None, None),
        _ => s
            .remote
            .map(|(a, p)| (Some(a.to_string()), Some(p)))
            .unwrap_or((None, None)),
    };
    let state = match s.kind {
        Kind::TcpE => s.state,
        Kind::TcpL => Some(TcpState::Listening),
        Kind::TcTW => Some(TcpState::TimeWait),
        Kind::UdpA => None,
    };
    EndpointRecord {
        proto: if s.kind == Kind::UdpA {
            Proto::Udp
        } else {
            Proto::Tcp
        },
        family: s.family,
        local_addr: s
            .local
            .map(|a| a.to_string())
            .unwrap_or_else(|| s.family.wildcard().to_string()),
        local_port: s.lport,
        remote_addr,
        remote_port,
        state,
        dual_stack: s.local.is_none()
            && s.family == Family::Ipv6
            && matches!(s.kind, Kind::TcpL | Kind::UdpA),
        pid: owner.map(|p| p.pid),
        process: owner.map(|p| p.name.clone()),
        process_raw: None,
        process_exit_time: exit.and_then(crate::filetime::to_iso),
        process_exit_time_raw: exit,
        create_time,
        create_time_raw,
        tag: String::from_utf8_lossy(tag).into_owned(),
        pool_status: if s.freed {
            PoolStatus::Freed
        } else {
            PoolStatus::Allocated
        },
        physical_offset: Hex(pa),
        virtual_address: va.map(Hex),
        found_by: vec![crate::record::FoundBy::Pool],
        linked: None,
        flags,
        reason: None,
    }
}

/// Decoys: objects that carry an endpoint tag but must not be reported.
impl World<'_> {
    pub fn decoys(
        &mut self,
        procs: &[Proc],
        sample: &Spec,
        listener: &Spec,
    ) -> Vec<EndpointRecord> {
        let mut out = vec![];
        // 1. Tag bytes in random data (an unmapped noise page): the header fails every check.
        {
            let f = self.mem.alloc_frame(&mut self.rng, None);
            self.mem.page_mut(f, true);
            let at = f * PAGE + self.rng.range(4, 250) * self.unit;
            let tag = self.tag(Kind::TcpE);
            let mut h = self.pool_header(0, 0, 0, &tag);
            let mut noise = vec![0u8; 4];
            self.rng.fill(&mut noise);
            h[..4].copy_from_slice(&noise);
            if self.unit == 16 {
                h[2] = 0; // BlockSize 0
                h[3] |= 1; // paged
            } else {
                // PoolType 1 (paged), BlockSize 0.
                h[2..4].copy_from_slice(&0x0200u16.to_le_bytes());
            }
            self.mem.write(at, &h);
            let mut r = record(sample, procs, &tag, at, None, true);
            r.reason =
                Some("tag bytes in random data: pool header fails (BlockSize 0, paged)".into());
            out.push(r);
        }
        // 2. Unaligned header (a listener shifted by half a header).
        {
            let size = self.round(body_size(self.p, Kind::TcpL)) + 2 * self.unit;
            let (b, _) = self.endpoints.alloc(
                &mut self.arena,
                &mut self.vm,
                &mut self.mem,
                &mut self.rng,
                size,
            );
            let hdr = b.va + self.unit / 2;
            let blk = Block {
                va: b.va,
                pa: b.pa,
                size,
            };
            let mut r = self.write_object(listener, procs, blk, 0, 2, false, hdr);
            r.reason = Some("unaligned pool header".into());
            out.push(r);
        }
        // 3. Paged pool (odd PoolType).
        {
            let (b, prev) = self.endpoint_block(Kind::TcpL, 0);
            let mut r = self.write_object(listener, procs, b, prev, 3, false, b.va);
            r.reason = Some("paged pool (odd PoolType)".into());
            out.push(r);
        }
        // 4. Undersized block: BlockSize too small for the object.
        {
            let (b, prev) = self.endpoint_block(Kind::TcpE, 0);
            let mut r = self.write_object(sample, procs, b, prev, 2, false, b.va);
            let mut tag = [0u8; 4];
            tag.copy_from_slice(&r.tag.as_bytes()[..4]);
            let h = self.pool_header(prev, 2, 2, &tag);
            self.vm.write(&mut self.mem, b.va, &h);
            r.reason = Some("block too small for the object".into());
            out.push(r);
        }
        // 5. Impossible states.
        for bad in [10u32, 11, 14] {
            let (b, prev) = self.endpoint_block(Kind::TcpE, 0);
            let mut r = self.write_object(sample, procs, b, prev, 2, false, b.va);
            if let Some(o) = self.p.tcpip.tcp_endpoint.state.off() {
                self.write_u(b.va + self.unit + o, u64::from(bad), 4);
            }
            r.state = None;
            r.reason = Some(format!("TCP state {bad} is not a kernel state"));
            out.push(r);
        }
        // 6. Address family neither AF_INET nor AF_INET6.
        {
            let (b, prev) = self.endpoint_block(Kind::TcpE, 0);
            let mut r = self.write_object(sample, procs, b, prev, 2, false, b.va);
            let bad_af = self.inetaf_block(0x1C);
            if let Some(o) = self.p.tcpip.tcp_endpoint.inet_af.off() {
                self.write_ptr(b.va + self.unit + o, bad_af);
            }
            r.reason = Some("address family 0x1c is neither 2 nor 0x17".into());
            out.push(r);
        }
        out
    }
}

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}
pub fn v6(segs: [u16; 8]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        segs[0], segs[1], segs[2], segs[3], segs[4], segs[5], segs[6], segs[7],
    ))
}
