//! tcpip.sys as a running kernel holds it (profiles with `tcpip.tables`): its PE image mapped in
//! kernel space (CodeView id, version resource, the globals), loaded-module entries for it and the
//! kernel, and the tables netstat enumerates (partition hash tables, port pools) with every live
//! endpoint linked. The layout is the contract of docs/internals.md, "tcpip's tables".
use super::kernel::{build_pe, guid_text, PeSpec, IMAGE_SIZE, RVA_TEXT};
use super::objects::{Kind, World};
use super::phys::PAGE;
use super::rng::Rng;
use super::{TableTruth, TcpipTruth};
use crate::profile::{Arch, Profile, TablesLayout};
use crate::record::{Hex, PdbId};
use std::collections::BTreeMap;

/// The built-in symbol table the reader uses too: a GUID-age drawn from it makes its RVAs apply.
const SYMBOLS: &str = include_str!("../../symbols/tcpip.json");

/// tcpip.sys's base, relative to the kernel's (clear of the kernel image and the pool).
pub const TCPIP_OFFSET: u64 = 0x40_0000;

/// Buckets per hash table: what tcpip creates and every reader assumes (one directory level).
const TABLE_SIZE: u64 = 128;

/// The globals, as RVAs from tcpip's base.
#[derive(Clone, Debug)]
pub struct Globals {
    pub partition_table: u64,
    pub partition_count: u64,
    /// `TcpPortPool`/`UdpPortPool` (false) or `TcpCompartmentSet`/`UdpCompartmentSet` (true).
    pub compartments: bool,
    pub tcp: u64,
    pub udp: u64,
}

impl Globals {
    fn named(&self) -> BTreeMap<String, Hex> {
        let (t, u) = if self.compartments {
            ("TcpCompartmentSet", "UdpCompartmentSet")
        } else {
            ("TcpPortPool", "UdpPortPool")
        };
        [
            ("PartitionTable", self.partition_table),
            ("PartitionCount", self.partition_count),
            (t, self.tcp),
            (u, self.udp),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Hex(v)))
        .collect()
    }
}

/// Who tcpip.sys is: its PDB id, file version and where its globals are.
pub struct Identity {
    pub guid: [u8; 16],
    pub age: u32,
    /// The GUID-age is one of `symbols/tcpip.json`'s.
    pub builtin: bool,
    pub file_version: [u16; 4],
    /// `false` (`--hide-build`): the image's version resource reads as zeros.
    pub version_resource: bool,
    pub globals: Globals,
}

/// The 16 RSDS bytes of a GUID in its 32-digit text form (the inverse of `guid_text`).
fn guid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    if text.len() != 32 {
        return None;
    }
    let mut g = [0u8; 16];
    g[0..4].copy_from_slice(&(hex(&text[0..8])? as u32).to_le_bytes());
    g[4..6].copy_from_slice(&(hex(&text[8..12])? as u16).to_le_bytes());
    g[6..8].copy_from_slice(&(hex(&text[12..16])? as u16).to_le_bytes());
    for (i, b) in g[8..].iter_mut().enumerate() {
        *b = hex(&text[16 + 2 * i..18 + 2 * i])? as u8;
    }
    Some(g)
}

/// One usable row of the built-in table.
#[derive(Clone)]
struct Row {
    guid: [u8; 16],
    age: u32,
    version: Option<[u16; 4]>,
    globals: Globals,
}

/// The built-in table's rows of this profile's builds that have every global the walk needs.
fn builtin_rows(p: &Profile) -> Vec<Row> {
    let v: serde_json::Value = serde_json::from_str(SYMBOLS).expect("symbols/tcpip.json is JSON");
    let rows = v["tcpip"].as_array().cloned().unwrap_or_default();
    let m = &p.matches;
    let rva = |s: &serde_json::Value, k: &str| {
        s[k].as_str()
            .and_then(|t| u64::from_str_radix(t.trim_start_matches("0x"), 16).ok())
    };
    rows.iter()
        .filter_map(|r| {
            let build = r["build"].as_u64()? as u32;
            if p.arch != Arch::X64 || !(m.build_min..=m.build_max).contains(&build) {
                return None;
            }
            let (guid, age) = r["guid_age"].as_str()?.split_once('-')?;
            let s = &r["symbols"];
            let (compartments, tcp, udp) = match (
                rva(s, "TcpCompartmentSet"),
                rva(s, "UdpCompartmentSet"),
                rva(s, "TcpPortPool"),
                rva(s, "UdpPortPool"),
            ) {
                (Some(t), Some(u), _, _) => (true, t, u),
                (_, _, Some(t), Some(u)) => (false, t, u),
                _ => return None,
            };
            let version = r["version"].as_str().and_then(super::kernel::parse_dotted);
            Some(Row {
                guid: guid_bytes(guid)?,
                age: age.parse().ok()?,
                version,
                globals: Globals {
                    partition_table: rva(s, "PartitionTable")?,
                    partition_count: rva(s, "PartitionCount")?,
                    compartments,
                    tcp,
                    udp,
                },
            })
        })
        .collect()
}

/// A real GUID-age of this build from the built-in table when `use_builtin` and it has one;
/// else a random GUID with globals on a page of synth's choosing: port-pool globals up to
/// Windows 10 1511, compartment sets from 1607 on (every 14393+ set of the reference has them).
pub fn identity(
    p: &Profile,
    build: u32,
    use_builtin: bool,
    version_rule: Option<[u16; 4]>,
    rng: &mut Rng,
) -> Identity {
    let rows = if use_builtin { builtin_rows(p) } else { vec![] };
    let revision = rng.range(100, 5000) as u16;
    let default_version = version_rule.unwrap_or([
        p.matches.nt_major as u16,
        p.matches.nt_minor as u16,
        build as u16,
        revision,
    ]);
    if !rows.is_empty() {
        let row = rng.pick(&rows).clone();
        return Identity {
            guid: row.guid,
            age: row.age,
            builtin: true,
            file_version: row.version.unwrap_or(default_version),
            version_resource: true,
            globals: row.globals,
        };
    }
    let mut guid = [0u8; 16];
    rng.fill(&mut guid);
    let age = rng.range(1, 3) as u32;
    let page = rng.range(0x1C0, 0x210) * PAGE;
    let partition_count = page + 8 * rng.range(0x10, 0x40);
    Identity {
        guid,
        age,
        builtin: false,
        file_version: default_version,
        version_resource: true,
        globals: Globals {
            partition_table: partition_count + 8,
            partition_count,
            compartments: build >= 14393,
            tcp: page + 0x800 + 8 * rng.range(0, 0x20),
            udp: page + 0x400 + 8 * rng.range(0, 0x20),
        },
    }
}

/// Where tcpip.sys was put.
pub struct Image {
    pub base: u64,
    pub size: u64,
    pub pdb: PdbId,
}

/// The PE image at `base`, mapped page by page: headers, `.text`, `.rdata` (CodeView),
/// the pages holding the globals and `.rsrc`; the rest of `SizeOfImage` stays unmapped, as a
/// paged-out driver's would.
pub fn write_image(w: &mut World, base: u64, id: &Identity) -> Image {
    let g = &id.globals;
    let last = [g.partition_table, g.partition_count, g.tcp, g.udp]
        .into_iter()
        .max()
        .unwrap_or(0);
    let data_size = (last + 8).div_ceil(PAGE) * PAGE - 0x3000;
    let mut text = vec![0u8; 0x1000];
    w.rng.fill(&mut text);
    let pe = build_pe(
        &PeSpec {
            arch: w.p.arch,
            image_base: base,
            pdb_name: Some("tcpip.pdb"),
            guid: id.guid,
            age: id.age,
            file_version: id.file_version,
            version_resource: id.version_resource,
            original_filename: "tcpip.sys",
            timestamp: w.rng.next_u32(),
            data_size,
            exports: &[],
        },
        &text,
    );
    let size = pe.len() as u64;
    let mut pages: Vec<u64> = vec![0, RVA_TEXT, 0x2000, size - PAGE];
    pages.extend([g.partition_table, g.partition_count, g.tcp, g.udp].map(|r| r / PAGE * PAGE));
    pages.sort_unstable();
    pages.dedup();
    let mut prev = None;
    for rva in pages {
        let f = w.mem.alloc_frame(&mut w.rng, prev);
        w.vm.map_4k(&mut w.mem, &mut w.rng, base + rva, f * PAGE);
        let at = rva as usize;
        w.mem.write(f * PAGE, &pe[at..at + PAGE as usize]);
        prev = Some(f);
    }
    Image {
        base,
        size,
        pdb: PdbId::new("tcpip.pdb", &guid_text(&id.guid), id.age),
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect()
}

/// `_KLDR_DATA_TABLE_ENTRY`s (in `MmLd` blocks, names in the same block) for the kernel and
/// tcpip.sys, linked in load order from `PsLoadedModuleList`.
pub fn module_list(w: &mut World, head_va: u64, kernel_va: u64, tcpip: &Image) {
    let x64 = w.p.arch == Arch::X64;
    let ptr = w.ptr;
    // InLoadOrderLinks @0, DllBase, EntryPoint, SizeOfImage, FullDllName, BaseDllName.
    let (dll_base, size_of_image, full, base_name, entry_size) = if x64 {
        (0x30, 0x40, 0x48, 0x58, 0xA0)
    } else {
        (0x18, 0x20, 0x24, 0x2C, 0x58)
    };
    let modules = [
        (
            kernel_va,
            IMAGE_SIZE,
            r"\SystemRoot\system32\ntoskrnl.exe",
            "ntoskrnl.exe",
        ),
        (
            tcpip.base,
            tcpip.size,
            r"\SystemRoot\System32\drivers\tcpip.sys",
            "tcpip.sys",
        ),
    ];
    let mut nodes = vec![head_va];
    for (base, size, path, name) in modules {
        let (path16, name16) = (utf16(path), utf16(name));
        let body = entry_size + path16.len() as u64 + 2 + name16.len() as u64 + 2;
        let e = w.small(body, b"MmLd");
        w.write_ptr(e + dll_base, base);
        w.write_ptr(e + dll_base + ptr, base + RVA_TEXT + 0x10);
        w.write_u(e + size_of_image, size, 4);
        let path_va = e + entry_size;
        let name_va = path_va + path16.len() as u64 + 2;
        w.vm.write(&mut w.mem, path_va, &path16);
        w.vm.write(&mut w.mem, name_va, &name16);
        for (at, va, len) in [
            (full, path_va, path16.len() as u64),
            (base_name, name_va, name16.len() as u64),
        ] {
            w.write_u(e + at, len, 2);
            w.write_u(e + at + 2, len + 2, 2);
            w.write_ptr(e + at + ptr, va);
        }
        nodes.push(e);
    }
    for (i, &n) in nodes.iter().enumerate() {
        let next = nodes[(i + 1) % nodes.len()];
        let prev = nodes[(i + nodes.len() - 1) % nodes.len()];
        w.write_ptr(n, next);
        w.write_ptr(n + ptr, prev);
    }
}

/// A live endpoint to link: its kind, object body VA, port and record.
#[derive(Clone, Copy, Debug)]
pub struct Linked {
    pub kind: Kind,
    pub body: u64,
    pub lport: u16,
    /// The record's `physical_offset` (truth's name for it).
    pub pa: u64,
}

/// Writes the tables and the globals that lead to them; every `Linked` object is in exactly one.
pub fn plant_tables(
    w: &mut World,
    t: &TablesLayout,
    base: u64,
    g: &Globals,
    objects: &[Linked],
) -> Vec<TableTruth> {
    let mut tables = vec![];
    // Partitions: tcpip makes one per processor group of its choice; 1-4 here.
    let count = w.rng.range(1, 5);
    let psize = t.partition_size.get();
    let parts = w.small(count * psize, b"TcPT");
    w.write_ptr(base + g.partition_table, parts);
    w.write_u(base + g.partition_count, count, 4);
    let of = |k: Kind| objects.iter().filter(move |o| o.kind == k).copied();
    let conns: Vec<Linked> = of(Kind::TcpE).collect();
    let waits: Vec<Linked> = of(Kind::TcTW).collect();
    let main_link = t.tcp_endpoint_link.off().unwrap_or(0);
    let wait_link = t.time_wait_link.as_ref().and_then(|f| f.off()).unwrap_or(0);
    let main = spread(&mut w.rng, &conns, count);
    let second = spread(&mut w.rng, &waits, count);
    for i in 0..count {
        let part = parts + i * psize;
        for (field, buckets, link, name) in [
            (
                &t.partition_endpoints,
                &main[i as usize],
                main_link,
                "endpoints",
            ),
            (
                &t.partition_second_table,
                &second[i as usize],
                wait_link,
                "second",
            ),
        ] {
            let table = hash_table(w, buckets, link);
            if let Some(o) = field.off() {
                w.write_ptr(part + o, table);
            }
            tables.push(TableTruth {
                table: format!("partition {i} {name}"),
                va: Hex(table),
                chains: chains(buckets),
            });
        }
    }
    for (kind, global, name, tag) in [
        (Kind::TcpL, g.tcp, "tcp port pool", b"TcCo"),
        (Kind::UdpA, g.udp, "udp port pool", b"UdCo"),
    ] {
        let next = match kind {
            Kind::TcpL => t.tcp_listener_next.off(),
            _ => t.udp_endpoint_next.off(),
        }
        .unwrap_or(0);
        let objs: Vec<Linked> = of(kind).collect();
        let (pool, ports) = port_pool(w, t, &objs, next);
        let target = if g.compartments {
            compartment_set(w, t, pool, tag)
        } else {
            pool
        };
        w.write_ptr(base + global, target);
        tables.push(TableTruth {
            table: name.to_string(),
            va: Hex(pool),
            chains: ports
                .values()
                .map(|c| c.iter().map(|o| Hex(o.pa)).collect())
                .collect(),
        });
    }
    tables
}

/// Objects spread over the partitions' buckets, some buckets holding chains of 2-3 (a reader
/// of only each bucket's first entry misses the rest), longer when buckets run out:
/// `[partition][bucket] -> chain`.
fn spread(rng: &mut Rng, objects: &[Linked], partitions: u64) -> Vec<BTreeMap<u64, Vec<Linked>>> {
    let mut out = vec![BTreeMap::new(); partitions as usize];
    let mut last: Option<(usize, u64)> = None;
    for (i, o) in objects.iter().enumerate() {
        // The second and third object share the first's bucket, so every table with three
        // connections has a chain of 3; later ones join their predecessor's now and then.
        let join = match last {
            Some((p, b)) if out[p].get(&b).is_some_and(|c: &Vec<Linked>| c.len() < 3) => {
                i < 3 || rng.chance(4)
            }
            _ => false,
        };
        let (p, b) = if join {
            last.expect("joined a bucket")
        } else {
            // An empty bucket, if a few draws find one; with more objects than buckets (the
            // bench's thousands) the chains simply grow, as a hash table's do.
            let mut pick = (0, 0);
            for _ in 0..8 {
                pick = (rng.below(partitions) as usize, rng.below(TABLE_SIZE));
                if !out[pick.0].contains_key(&pick.1) {
                    break;
                }
            }
            pick
        };
        out[p].entry(b).or_default().push(*o);
        last = Some((p, b));
    }
    out
}

fn chains(buckets: &BTreeMap<u64, Vec<Linked>>) -> Vec<Vec<Hex>> {
    buckets
        .values()
        .map(|c| c.iter().map(|o| Hex(o.pa)).collect())
        .collect()
}

/// An `_RTL_DYNAMIC_HASH_TABLE` in a `TcHT` block, its 128 buckets in an `HTab` block, each
/// chain circular through its bucket head; returns the table's VA.
fn hash_table(w: &mut World, buckets: &BTreeMap<u64, Vec<Linked>>, link: u64) -> u64 {
    let ptr = w.ptr;
    let dir = w.small(TABLE_SIZE * 2 * ptr, b"HTab");
    let table = w.small(0x20 + ptr, b"TcHT");
    let entries: usize = buckets.values().map(Vec::len).sum();
    // Flags 0 (tcpip owns the header), Shift 0, TableSize, Pivot 0, DivisorMask, NumEntries,
    // NonEmptyBuckets, NumEnumerators 0, Directory.
    w.write_u(table + 8, TABLE_SIZE, 4);
    w.write_u(table + 0x10, TABLE_SIZE - 1, 4);
    w.write_u(table + 0x14, entries as u64, 4);
    w.write_u(table + 0x18, buckets.len() as u64, 4);
    w.write_ptr(table + 0x20, dir);
    for b in 0..TABLE_SIZE {
        let head = dir + b * 2 * ptr;
        let mut nodes = vec![head];
        if let Some(chain) = buckets.get(&b) {
            nodes.extend(chain.iter().map(|o| o.body + link));
        }
        for (i, &n) in nodes.iter().enumerate() {
            w.write_ptr(n, nodes[(i + 1) % nodes.len()]);
            w.write_ptr(n + ptr, nodes[(i + nodes.len() - 1) % nodes.len()]);
        }
    }
    table
}

/// An `_INET_PORT_POOL` (`InPP`): the 65,536-bit port bitmap (its buffer on two pages of its
/// own), one `_PORT_ASSIGNMENT` (`InPA`) per 256 ports in use with its page(s) of entries, each
/// used entry pointing at its first object's `Next`, and each `Next` at the next object's on the
/// same port. Returns the pool's VA and the chains by port.
fn port_pool(
    w: &mut World,
    t: &TablesLayout,
    objects: &[Linked],
    next: u64,
) -> (u64, BTreeMap<u16, Vec<Linked>>) {
    let ptr = w.ptr;
    let assignments = t.port_pool_assignments.off().unwrap_or(0);
    let bitmap = t.port_pool_bitmap.off().unwrap_or(0);
    let pool = w.small(assignments + 256 * ptr, b"InPP");
    let buffer = zeroed_pages(w, 2);
    w.write_u(pool + bitmap, 0x1_0000, 4);
    w.write_ptr(pool + bitmap + ptr, buffer);
    let mut ports: BTreeMap<u16, Vec<Linked>> = BTreeMap::new();
    for o in objects {
        ports.entry(o.lport).or_default().push(*o);
    }
    let entry_size = t.port_entry_size.get();
    let entry_ptr = t.port_entry_pointer.off().unwrap_or(0);
    let list_off = t.port_assignment_list.off().unwrap_or(0);
    let mut lists: BTreeMap<u64, u64> = BTreeMap::new();
    for (&port, chain) in &ports {
        let p = u64::from(port);
        let byte = buffer + p / 8;
        let mut cur = [0u8];
        let pa = w.vm.translate(byte).expect("bitmap mapped");
        w.mem.read(pa, &mut cur);
        w.vm.write(&mut w.mem, byte, &[cur[0] | 1 << (p % 8)]);
        let hi = p >> 8;
        let list = match lists.get(&hi) {
            Some(&l) => l,
            None => {
                let inpa = w.small(list_off + ptr, b"InPA");
                let l = zeroed_pages(w, (256 * entry_size).div_ceil(PAGE));
                w.write_ptr(inpa + list_off, l);
                w.write_ptr(pool + assignments + hi * ptr, inpa);
                lists.insert(hi, l);
                l
            }
        };
        // The entry's low two bits are flags, masked off by its readers.
        let flags = w.rng.below(4);
        let first = chain[0].body + next;
        w.write_ptr(list + (p & 0xFF) * entry_size + entry_ptr, first | flags);
        for (k, o) in chain.iter().enumerate() {
            let to = chain.get(k + 1).map_or(0, |n| n.body + next);
            w.write_ptr(o.body + next, to);
        }
    }
    (pool, ports)
}

/// `n` fresh, zeroed, page-aligned pages (a big-pool allocation: no pool header).
fn zeroed_pages(w: &mut World, n: u64) -> u64 {
    let va = w.arena.pages(&mut w.vm, &mut w.mem, &mut w.rng, n);
    w.vm.write(&mut w.mem, va, &vec![0u8; (n * PAGE) as usize]);
    va
}

/// The compartment chain to a port pool: `_INET_COMPARTMENT_SET` (`InCS`) → `_INET_COMPARTMENT`
/// (`InCo`) → protocol compartment (`TcCo`/`UdCo`) → the pool. Returns the set's VA.
fn compartment_set(w: &mut World, t: &TablesLayout, pool: u64, tag: &[u8; 4]) -> u64 {
    let ptr = w.ptr;
    let at = |f: &crate::profile::Field| f.off().unwrap_or(0);
    let (set_off, proto_off, pool_off) = (
        at(&t.compartment_set_compartment),
        at(&t.compartment_protocol),
        at(&t.protocol_port_pool),
    );
    let protocol = w.small(pool_off + 2 * ptr, tag);
    w.write_ptr(protocol + pool_off, pool);
    let compartment = w.small(proto_off + 2 * ptr, b"InCo");
    w.write_ptr(compartment + proto_off, protocol);
    let set = w.small(set_off + 2 * ptr, b"InCS");
    w.write_ptr(set + set_off, compartment);
    set
}

/// What truth.json says of tcpip.sys.
pub fn truth(image: &Image, id: &Identity, tables: Vec<TableTruth>) -> TcpipTruth {
    let v = id.file_version;
    TcpipTruth {
        base: Hex(image.base),
        size: Hex(image.size),
        pdb: image.pdb.clone(),
        file_version: format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]),
        symbols: if id.builtin { "builtin" } else { "none" }.to_string(),
        globals: id.globals.named(),
        tables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trips() {
        let mut g = [0u8; 16];
        Rng::new(3).fill(&mut g);
        assert_eq!(guid_bytes(&guid_text(&g)), Some(g));
    }
}
