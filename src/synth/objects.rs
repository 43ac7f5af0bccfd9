//! Processes (EPROCESS in `Proc` pool blocks), endpoint objects with their separately allocated
//! address structures, freed blocks and decoys, laid out from the profile's numbers alone.
use super::builder::PoolHeader;
use super::phys::{PhysMem, PAGE};
use super::rng::Rng;
use super::vmap::{Block, PagePacker, PoolArena, Vmap};
use crate::profile::{Field, LocalAddrChain, Profile, RemoteAddrChain};
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
    pub fn of(kind: crate::profile::ObjectKind) -> Kind {
        use crate::profile::ObjectKind;
        match kind {
            ObjectKind::TcpEndpoint => Kind::TcpE,
            ObjectKind::TcpListener => Kind::TcpL,
            ObjectKind::UdpEndpoint => Kind::UdpA,
            ObjectKind::TimeWait => Kind::TcTW,
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

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
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

    /// An `_IN_ADDR` allocation: address bytes at the returned VA.
    fn in_addr(&mut self, ip: &IpAddr) -> u64 {
        let va = self.small(16, b"IPAd");
        self.vm.write(&mut self.mem, va, &ip_bytes(ip));
        va
    }

    /// A pointer cell holding `target` (the middle of `_LOCAL_ADDRESS.pData → p → q`).
    fn cell(&mut self, target: u64) -> u64 {
        let va = self.small(self.ptr, b"IPAp");
        self.write_ptr(va, target);
        va
    }

    /// The two `_INETAF` objects (`InNl` blocks) on the large page.
    pub fn setup_inetaf(&mut self) {
        let af_off = self.p.tcpip.inetaf_address_family.off().unwrap_or(0x14);
        let size = self.round((af_off + 2).max(0x30)) + self.unit;
        let mut at = self.large_va + self.rng.range(1, 16) * 0x40;
        for (i, fam) in [Family::Ipv4, Family::Ipv6].iter().enumerate() {
            let h = self.pool_header(0, size / self.unit, 2, b"InNl");
            self.vm.write(&mut self.mem, at, &h);
            self.vm.write(
                &mut self.mem,
                at + self.unit,
                &vec![0u8; (size - self.unit) as usize],
            );
            self.write_u(at + self.unit + af_off, u64::from(fam.af()), 2);
            self.inetaf[i] = at + self.unit;
            at += size;
        }
    }

    fn inetaf_block(&mut self, af: u16) -> u64 {
        let af_off = self.p.tcpip.inetaf_address_family.off().unwrap_or(0x14);
        let va = self.small((af_off + 2).max(0x30), b"InNl");
        self.write_u(va + af_off, u64::from(af), 2);
        va
    }

    fn inetaf_for(&self, f: Family) -> u64 {
        match f {
            Family::Ipv4 => self.inetaf[0],
            Family::Ipv6 => self.inetaf[1],
        }
    }

    /// Writes the structures a LocalAddr pointer of this chain leads to; returns the pointer value
    /// (0 for the wildcard). `transition` puts the address bytes on a transition-PTE page.
    fn local_addr(&mut self, chain: LocalAddrChain, ip: Option<&IpAddr>, transition: bool) -> u64 {
        let Some(ip) = ip else { return 0 };
        let bytes_va = if transition {
            self.transition_in_addr(ip)
        } else {
            self.in_addr(ip)
        };
        match chain {
            LocalAddrChain::LocalAddress | LocalAddrChain::AddrInfo => {
                let p_data = self.p.tcpip.local_address_p_data.off().unwrap_or(0x10);
                let holder = self.cell(bytes_va);
                let la = self.small(p_data + self.ptr, b"InLa");
                self.write_ptr(la + p_data, holder);
                la
            }
            LocalAddrChain::Win10Udp => {
                let p_data = self
                    .p
                    .tcpip
                    .win10_udp_p_data
                    .as_ref()
                    .and_then(Field::off)
                    .unwrap_or(0);
                let la = self.small(p_data + self.ptr, b"InLa");
                self.write_ptr(la + p_data, bytes_va);
                la
            }
            LocalAddrChain::TimeWaitInline => {
                let s = self.small(0x28 + 16, b"TwLa");
                self.vm.write(&mut self.mem, s + 0x28, &ip_bytes(ip));
                let x = self.small(0x10 + self.ptr, b"TwLp");
                self.write_ptr(x + 0x10, s);
                x
            }
        }
    }

    /// Address bytes on their own page mapped through a transition PTE (P=0, bit 11).
    fn transition_in_addr(&mut self, ip: &IpAddr) -> u64 {
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
        self.vm.write(&mut self.mem, at, &ip_bytes(ip));
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
            self.write_u(body + e.dispatcher_type.off().unwrap_or(0), 3, 1);
            self.write_u(body + 2, (extras.size / 4).min(0xFF), 1);
            let dtb = if *pid == 4 {
                kernel_dtb
            } else {
                let f = self.mem.alloc_frame(&mut self.rng, None);
                self.mem.page_mut(f, false);
                f * PAGE
            };
            if let Some(o) = e.directory_table_base.off() {
                self.write_u(body + o, dtb, self.ptr as usize);
            }
            if let Some(o) = e.unique_process_id.off() {
                self.write_u(body + o, u64::from(*pid), self.ptr as usize);
            }
            if let Some(o) = e.inherited_from_unique_process_id.off() {
                let parent = if *pid == 4 {
                    0
                } else {
                    list[i.saturating_sub(1).max(1).min(i)].0
                };
                self.write_u(body + o, u64::from(parent), self.ptr as usize);
            }
            if let Some(o) = e.create_time.off() {
                self.write_u(body + o, *create, 8);
            }
            if let Some(o) = e.exit_time.off() {
                self.write_u(body + o, *exit, 8);
            }
            if let Some(o) = e.image_file_name.off() {
                let mut n = [0u8; 15];
                let b = name.as_bytes();
                n[..b.len().min(14)].copy_from_slice(&b[..b.len().min(14)]);
                self.vm.write(&mut self.mem, body + o, &n);
            }
            let tl = body + extras.thread_list_head;
            self.write_ptr(tl, tl);
            self.write_ptr(tl + self.ptr, tl);
            let threads = self.rng.range(1, 40);
            self.write_u(body + extras.active_threads, threads, 4);
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
        let t = self.p.tcpip.clone();
        let ps = self.ptr as usize;
        let mut time_field = false;
        match s.kind {
            Kind::TcpE => {
                let l = &t.tcp_endpoint;
                let local = s.local.expect("a connection has a local address");
                let (rip, rport) = s.remote.expect("a connection has a remote end");
                let la = self.local_addr(LocalAddrChain::LocalAddress, Some(&local), transition);
                let remote_va = self.in_addr(&rip);
                let ai_local = t.addrinfo_local.off().unwrap_or(0);
                let ai_remote = t.addrinfo_remote.off().unwrap_or(2 * self.ptr);
                let ai = self.small(ai_local.max(ai_remote) + self.ptr, b"TcpA");
                self.write_ptr(ai + ai_local, la);
                self.write_ptr(ai + ai_remote, remote_va);
                if let Some(o) = l.inet_af.off() {
                    self.write_ptr(body + o, self.inetaf_for(s.family));
                }
                if let Some(o) = l.addr_info.off() {
                    self.write_ptr(body + o, ai);
                }
                if let Some(o) = l.state.off() {
                    let st = s.state.map(TcpState::kernel).unwrap_or(4);
                    self.write_u(body + o, u64::from(st), 4);
                }
                if let Some(o) = l.local_port.off() {
                    self.vm
                        .write(&mut self.mem, body + o, &s.lport.to_be_bytes());
                }
                if let Some(o) = l.remote_port.off() {
                    self.vm.write(&mut self.mem, body + o, &rport.to_be_bytes());
                }
                if let Some(o) = l.owner.off() {
                    self.write_u(body + o, owner_va, ps);
                }
                if let Some(o) = l.create_time.off() {
                    self.write_u(body + o, s.create, 8);
                    time_field = true;
                }
            }
            Kind::TcpL | Kind::UdpA => {
                let (inet_af, owner, ctime, local_addr, chain, port) = if s.kind == Kind::TcpL {
                    let l = &t.tcp_listener;
                    (
                        l.inet_af.off(),
                        l.owner.off(),
                        l.create_time.off(),
                        l.local_addr.off(),
                        l.local_addr_chain,
                        l.port.off(),
                    )
                } else {
                    let l = &t.udp_endpoint;
                    (
                        l.inet_af.off(),
                        l.owner.off(),
                        l.create_time.off(),
                        l.local_addr.off(),
                        l.local_addr_chain,
                        l.port.off(),
                    )
                };
                let la = self.local_addr(chain, s.local.as_ref(), transition);
                if let Some(o) = inet_af {
                    self.write_ptr(body + o, self.inetaf_for(s.family));
                }
                if let Some(o) = owner {
                    self.write_u(body + o, owner_va, ps);
                }
                if let Some(o) = ctime {
                    self.write_u(body + o, s.create, 8);
                    time_field = true;
                }
                if let Some(o) = local_addr {
                    self.write_ptr(body + o, la);
                }
                if let Some(o) = port {
                    self.vm
                        .write(&mut self.mem, body + o, &s.lport.to_be_bytes());
                }
            }
            Kind::TcTW => {
                let l = t
                    .time_wait
                    .as_ref()
                    .expect("TcTW only where the profile has it");
                let base = body + l.body_offset.get();
                let (rip, rport) = s.remote.expect("TIME_WAIT has a remote end");
                let la = self.local_addr(l.local_addr_chain, s.local.as_ref(), transition);
                if let Some(o) = l.inet_af.off() {
                    self.write_ptr(base + o, self.inetaf_for(s.family));
                }
                if let Some(o) = l.local_port.off() {
                    self.vm
                        .write(&mut self.mem, base + o, &s.lport.to_be_bytes());
                }
                if let Some(o) = l.remote_port.off() {
                    self.vm.write(&mut self.mem, base + o, &rport.to_be_bytes());
                }
                if let Some(o) = l.local_addr.off() {
                    self.write_ptr(base + o, la);
                }
                if let Some(o) = l.remote_addr.off() {
                    match l.remote_addr_chain {
                        RemoteAddrChain::Inline => {
                            self.vm.write(&mut self.mem, base + o, &ip_bytes(&rip))
                        }
                        RemoteAddrChain::Pointer => {
                            let r = self.in_addr(&rip);
                            self.write_ptr(base + o, r);
                        }
                        RemoteAddrChain::AddrInfo => {
                            let r = self.in_addr(&rip);
                            let ai_remote = t.addrinfo_remote.off().unwrap_or(2 * self.ptr);
                            let ai = self.small(ai_remote + self.ptr, b"TcpA");
                            self.write_ptr(ai + ai_remote, r);
                            self.write_ptr(base + o, ai);
                        }
                        RemoteAddrChain::None => {}
                    }
                }
                if let Some(o) = l.create_time.off() {
                    self.write_u(base + o, s.create, 8);
                    time_field = true;
                }
            }
        }
        let pa = self.vm.translate(hdr_va).expect("mapped");
        record(s, procs, &tag, pa, Some(hdr_va), time_field)
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
    let (min, base, fields): (u64, u64, Vec<Option<u64>>) = match kind {
        Kind::TcpE => {
            let l = &t.tcp_endpoint;
            let f = vec![
                end(&l.inet_af, ptr),
                end(&l.addr_info, ptr),
                end(&l.state, 4),
                end(&l.local_port, 2),
                end(&l.remote_port, 2),
                end(&l.owner, ptr),
                end(&l.create_time, 8),
                tables.and_then(|x| end(&x.tcp_endpoint_link, 2 * ptr)),
            ];
            (l.min_size.get(), 0, f)
        }
        Kind::TcpL => {
            let l = &t.tcp_listener;
            let f = vec![
                end(&l.inet_af, ptr),
                end(&l.owner, ptr),
                end(&l.create_time, 8),
                end(&l.local_addr, ptr),
                end(&l.port, 2),
                tables.and_then(|x| end(&x.tcp_listener_next, ptr)),
            ];
            (l.min_size.get(), 0, f)
        }
        Kind::UdpA => {
            let l = &t.udp_endpoint;
            let f = vec![
                end(&l.inet_af, ptr),
                end(&l.owner, ptr),
                end(&l.create_time, 8),
                end(&l.local_addr, ptr),
                end(&l.port, 2),
                tables.and_then(|x| end(&x.udp_endpoint_next, ptr)),
            ];
            (l.min_size.get(), 0, f)
        }
        Kind::TcTW => match &t.time_wait {
            Some(l) => {
                let f = vec![
                    end(&l.inet_af, ptr),
                    end(&l.local_port, 2),
                    end(&l.remote_port, 2),
                    end(&l.local_addr, ptr),
                    end(&l.remote_addr, 16),
                    end(&l.create_time, 8),
                    // The link is relative to the pool body, the fields to `body_offset`.
                    tables
                        .and_then(|x| x.time_wait_link.as_ref())
                        .and_then(|x| end(x, 2 * ptr))
                        .and_then(|e| e.checked_sub(l.body_offset.get())),
                ];
                (l.min_size.get(), l.body_offset.get(), f)
            }
            None => (0x40, 0, vec![]),
        },
    };
    base + fields.into_iter().flatten().max().unwrap_or(0).max(min)
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
