//! The walk of tcpip's tables on hand-built kernel memory: every partition, bucket and chain, both
//! port pools, the tag check that picks an entry's link offset, and the guards against tables that
//! loop, claim absurd sizes or point outside memory (the walk stops that table, says so, and the
//! kind is no longer "walked completely").
use netcarve::bytes::ReadBytes;
use netcarve::paging::{PagingMode, VirtualMemory};
use netcarve::profile::{by_name, Arch, ObjectKind, Profile, TablesLayout};
use netcarve::synth::builder::PoolHeader;
use netcarve::tables::symbols::TcpipSymbols;
use netcarve::tables::walk::{walk, Walked};
use std::collections::BTreeMap;
mod support;
use support::world::MockMemory;

const BASE: u64 = 0xffff_f806_1000_0000;
const PARTITION_TABLE: u64 = 0x1000;
const PARTITION_COUNT: u64 = 0x1008;
const TCP_PORT_POOL: u64 = 0x1010;
const UDP_SET: u64 = 0x1018;

/// Kernel memory as byte regions at virtual addresses (support's mock), with an allocator.
struct Mem {
    m: MockMemory,
    next: u64,
}

impl ReadBytes for Mem {
    fn read_into(&self, va: u64, buf: &mut [u8]) -> bool {
        self.m.read_into(va, buf)
    }
}

impl VirtualMemory for Mem {
    fn pointer_size(&self) -> u64 {
        8
    }
}

impl Mem {
    fn new() -> Mem {
        let mut m = Mem {
            m: MockMemory {
                regions: BTreeMap::new(),
                pointer_size: 8,
            },
            next: 0xffff_a000_0000_0000,
        };
        m.m.regions.insert(BASE, vec![0; 0x2000]);
        m
    }

    /// A fresh zeroed region of `len` bytes (gaps between regions make overreads fail).
    fn alloc(&mut self, len: u64) -> u64 {
        let va = self.next;
        self.next += len.div_ceil(0x1000) * 0x1000 + 0x1000;
        self.m.regions.insert(va, vec![0; len as usize]);
        va
    }

    fn write(&mut self, va: u64, bytes: &[u8]) {
        let (start, region) = self.m.regions.range_mut(..=va).next_back().expect("mapped");
        let off = (va - start) as usize;
        region[off..off + bytes.len()].copy_from_slice(bytes);
    }

    fn ptr(&mut self, va: u64, v: u64) {
        self.write(va, &v.to_le_bytes());
    }

    fn u32(&mut self, va: u64, v: u32) {
        self.write(va, &v.to_le_bytes());
    }

    /// A pool block with `tag` holding `body` bytes; the body's VA.
    fn object(&mut self, tag: &[u8; 4], body: u64) -> u64 {
        let block = self.alloc(0x10 + body);
        let header = PoolHeader::new(*tag, (0x10 + body) / 16).encode(Arch::X64);
        self.write(block, &header);
        block + 0x10
    }
}

fn profile() -> (&'static Profile, &'static TablesLayout) {
    let p = by_name("win7-x64").expect("built-in");
    (
        p,
        p.tcpip.tables.as_ref().expect("win7-x64 has walk layouts"),
    )
}

fn syms() -> TcpipSymbols {
    TcpipSymbols {
        partition_table: Some(PARTITION_TABLE),
        partition_count: Some(PARTITION_COUNT),
        tcp_port_pool: Some(TCP_PORT_POOL),
        udp_port_pool: None,
        tcp_compartment_set: None,
        udp_compartment_set: Some(UDP_SET),
    }
}

/// A 128-bucket hash table whose buckets hold `chains` (bucket index → link VAs, in order).
fn hash_table(m: &mut Mem, chains: &[(u64, Vec<u64>)]) -> u64 {
    let ht = m.alloc(0x28);
    let dir = m.alloc(128 * 16);
    m.u32(ht + 0x8, 128);
    m.u32(ht + 0x14, chains.iter().map(|(_, c)| c.len() as u32).sum());
    m.ptr(ht + 0x20, dir);
    for b in 0..128u64 {
        let head = dir + b * 16;
        let links = chains
            .iter()
            .find(|(i, _)| *i == b)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let mut all = vec![head];
        all.extend(&links);
        for (i, &l) in all.iter().enumerate() {
            let next = all[(i + 1) % all.len()];
            let prev = all[(i + all.len() - 1) % all.len()];
            m.ptr(l, next);
            m.ptr(l + 8, prev);
        }
    }
    ht
}

/// A port pool with `ports` → chains of object bodies (linked through their `Next` at `next`).
fn port_pool(m: &mut Mem, t: &TablesLayout, next: u64, ports: &[(u16, Vec<u64>)]) -> u64 {
    let pool = m.alloc(0x2c00);
    let bitmap = m.alloc(0x2000);
    let bm = t.port_pool_bitmap.off().unwrap();
    m.u32(pool + bm, 65536);
    m.ptr(pool + bm + 8, bitmap);
    for (port, chain) in ports {
        let p = u64::from(*port);
        let byte = bitmap + p / 8;
        let mut cur = [0u8; 1];
        m.read_into(byte, &mut cur);
        m.write(byte, &[cur[0] | (1 << (p % 8))]);
        let slot = pool + t.port_pool_assignments.off().unwrap() + (p >> 8) * 8;
        let mut assignment = [0u8; 8];
        m.read_into(slot, &mut assignment);
        let mut assignment = u64::from_le_bytes(assignment);
        if assignment == 0 {
            assignment = m.alloc(0x30);
            let list = m.alloc(256 * t.port_entry_size.get());
            m.ptr(assignment + t.port_assignment_list.off().unwrap(), list);
            m.ptr(slot, assignment);
        }
        let mut list = [0u8; 8];
        m.read_into(
            assignment + t.port_assignment_list.off().unwrap(),
            &mut list,
        );
        let list = u64::from_le_bytes(list);
        let entry =
            list + (p & 0xff) * t.port_entry_size.get() + t.port_entry_pointer.off().unwrap();
        // The low bits of Entry and Next are flags: set one to check they are masked.
        m.ptr(entry, (chain[0] + next) | 1);
        for w in chain.windows(2) {
            m.ptr(w[0] + next, w[1] + next);
        }
    }
    pool
}

struct Image {
    mem: Mem,
    tcpe: Vec<u64>,
    tctw: Vec<u64>,
    tcpl: Vec<u64>,
    udpa: Vec<u64>,
}

/// Two partitions: four TcpE (three chained in one bucket), one TcTW; TCP port pool with three
/// listeners (two on port 445), UDP through the compartment chain with one endpoint.
fn image() -> Image {
    let (p, t) = profile();
    let mut m = Mem::new();
    let link = t.tcp_endpoint_link.off().unwrap();
    let tw_link = t.time_wait_link.as_ref().unwrap().off().unwrap();
    let tcpe: Vec<u64> = (0..4)
        .map(|_| m.object(b"TcpE", p.tcpip.tcp_endpoint.min_size.get()))
        .collect();
    let tctw = vec![m.object(b"TcTW", 0x80)];
    let main0 = hash_table(
        &mut m,
        &[(3, vec![tcpe[0] + link, tcpe[1] + link, tcpe[2] + link])],
    );
    let main1 = hash_table(&mut m, &[(127, vec![tcpe[3] + link])]);
    let second0 = hash_table(&mut m, &[(9, vec![tctw[0] + tw_link])]);
    let stride = t.partition_size.get();
    let parts = m.alloc(2 * stride);
    let ep = t.partition_endpoints.off().unwrap();
    let second = t.partition_second_table.off().unwrap();
    m.ptr(parts + ep, main0);
    m.ptr(parts + second, second0);
    m.ptr(parts + stride + ep, main1);
    m.ptr(BASE + PARTITION_TABLE, parts);
    m.u32(BASE + PARTITION_COUNT, 2);

    let tcpl: Vec<u64> = (0..3).map(|_| m.object(b"TcpL", 0x80)).collect();
    let tl_next = t.tcp_listener_next.off().unwrap();
    let tpool = port_pool(
        &mut m,
        t,
        tl_next,
        &[(135, vec![tcpl[0]]), (445, vec![tcpl[1], tcpl[2]])],
    );
    m.ptr(BASE + TCP_PORT_POOL, tpool);
    let udpa = vec![m.object(b"UdpA", 0x90)];
    let ua_next = t.udp_endpoint_next.off().unwrap();
    let upool = port_pool(&mut m, t, ua_next, &[(53, vec![udpa[0]])]);
    let set = m.alloc(0x180);
    let comp = m.alloc(0x30);
    let proto = m.alloc(0x10);
    m.ptr(BASE + UDP_SET, set);
    m.ptr(set + t.compartment_set_compartment.off().unwrap(), comp);
    m.ptr(comp + t.compartment_protocol.off().unwrap(), proto);
    m.ptr(proto + t.protocol_port_pool.off().unwrap(), upool);
    Image {
        mem: m,
        tcpe,
        tctw,
        tcpl,
        udpa,
    }
}

fn run(m: &Mem) -> Walked {
    let (p, t) = profile();
    walk(m, PagingMode::X64, p, t, BASE, &syms())
}

fn bodies(w: &Walked, kind: ObjectKind) -> Vec<u64> {
    let mut v: Vec<u64> = w
        .entries
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.body)
        .collect();
    v.sort_unstable();
    v
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[test]
fn every_partition_bucket_chain_and_port_is_walked() {
    let img = image();
    let w = run(&img.mem);
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    assert_eq!(
        bodies(&w, ObjectKind::TcpEndpoint),
        sorted(img.tcpe.clone())
    );
    assert_eq!(bodies(&w, ObjectKind::TimeWait), sorted(img.tctw.clone()));
    assert_eq!(
        bodies(&w, ObjectKind::TcpListener),
        sorted(img.tcpl.clone())
    );
    assert_eq!(
        bodies(&w, ObjectKind::UdpEndpoint),
        sorted(img.udpa.clone())
    );
    assert!(w.entries.iter().all(|e| e.tagged));
    assert_eq!(w.complete.len(), 4, "{:?}", w.complete);
    let counts: Vec<(String, u64, bool, Option<u64>)> = w
        .tables
        .iter()
        .map(|t| (t.table.clone(), t.objects, t.complete, t.declared))
        .collect();
    assert!(counts.contains(&("partition 0 connections".into(), 3, true, Some(3))));
    assert!(counts.contains(&("partition 1 connections".into(), 1, true, Some(1))));
    assert!(counts.contains(&("tcp port pool".into(), 3, true, None)));
    assert!(counts.contains(&("udp port pool".into(), 1, true, None)));
}

#[test]
fn an_overwritten_tag_keeps_the_entry_and_says_so() {
    let mut img = image();
    let victim = img.tcpe[1];
    img.mem.write(victim - 0x10 + 4, b"Xxxx");
    let w = run(&img.mem);
    let e = w
        .entries
        .iter()
        .find(|e| e.body == victim)
        .expect("still walked");
    assert_eq!((e.kind, e.tagged), (ObjectKind::TcpEndpoint, false));
    assert_eq!(bodies(&w, ObjectKind::TcpEndpoint).len(), 4);
}

#[test]
fn the_alternative_link_offset_is_chosen_by_the_pool_tag() {
    let (p, t) = profile();
    assert_eq!(
        t.tcp_endpoint_link.alternatives.first().map(|o| o.get()),
        Some(0x40)
    );
    let mut m = Mem::new();
    let obj = m.object(b"TcpE", p.tcpip.tcp_endpoint.min_size.get());
    let ht = hash_table(&mut m, &[(0, vec![obj + 0x40])]);
    let parts = m.alloc(t.partition_size.get());
    m.ptr(parts + t.partition_endpoints.off().unwrap(), ht);
    m.ptr(BASE + PARTITION_TABLE, parts);
    m.u32(BASE + PARTITION_COUNT, 1);
    let w = walk(&m, PagingMode::X64, p, t, BASE, &syms());
    let e = w
        .entries
        .iter()
        .find(|e| e.kind == ObjectKind::TcpEndpoint)
        .expect("found");
    assert_eq!((e.body, e.tagged), (obj, true));
}

#[test]
fn a_looping_chain_stops_its_table_and_makes_the_kind_incomplete() {
    let mut img = image();
    let (_, t) = profile();
    let link = t.tcp_endpoint_link.off().unwrap();
    // The third entry points back at the first instead of the bucket head.
    img.mem.ptr(img.tcpe[2] + link, img.tcpe[0] + link);
    let w = run(&img.mem);
    assert!(
        w.warnings.iter().any(|x| x.contains("loops")),
        "{:?}",
        w.warnings
    );
    assert!(!w.complete.contains(&ObjectKind::TcpEndpoint));
    assert!(w.complete.contains(&ObjectKind::TcpListener));
    assert_eq!(
        bodies(&w, ObjectKind::TcpEndpoint).len(),
        4,
        "what was read is kept"
    );
}

#[test]
fn absurd_sizes_and_wild_pointers_are_refused_with_a_warning() {
    let (_, t) = profile();
    // 2^32 - 1 buckets.
    let mut img = image();
    let mut parts = [0u8; 8];
    img.mem.read_into(BASE + PARTITION_TABLE, &mut parts);
    let parts = u64::from_le_bytes(parts);
    let mut ht = [0u8; 8];
    img.mem
        .read_into(parts + t.partition_endpoints.off().unwrap(), &mut ht);
    img.mem.u32(u64::from_le_bytes(ht) + 0x8, u32::MAX);
    let w = run(&img.mem);
    assert!(
        w.warnings.iter().any(|x| x.contains("TableSize")),
        "{:?}",
        w.warnings
    );
    assert!(!w.complete.contains(&ObjectKind::TcpEndpoint));

    // A thousand partitions.
    let mut img = image();
    img.mem.u32(BASE + PARTITION_COUNT, 1000);
    let w = run(&img.mem);
    assert!(w.warnings.iter().any(|x| x.contains("PartitionCount 1000")));
    assert!(bodies(&w, ObjectKind::TcpEndpoint).is_empty());
    assert!(w.complete.contains(&ObjectKind::UdpEndpoint));

    // A listener's Next into user space.
    let mut img = image();
    let next = t.tcp_listener_next.off().unwrap();
    img.mem.ptr(img.tcpl[1] + next, 0x7ff0_0000_0000);
    let w = run(&img.mem);
    assert!(!w.complete.contains(&ObjectKind::TcpListener));
    assert!(
        w.warnings.iter().any(|x| x.contains("port 445")),
        "{:?}",
        w.warnings
    );

    // The TCP port pool pointer unreadable.
    let mut img = image();
    img.mem.ptr(BASE + TCP_PORT_POOL, 0xffff_b000_dead_0000);
    let w = run(&img.mem);
    assert!(!w.complete.contains(&ObjectKind::TcpListener));
    assert!(bodies(&w, ObjectKind::TcpListener).is_empty());
}

#[test]
fn the_builtin_symbol_table_parses() {
    assert_eq!(netcarve::tables::symbols::builtin_count(), 85);
}
