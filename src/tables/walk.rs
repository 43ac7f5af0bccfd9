//! The walk of tcpip.sys's tables: every partition's hash tables (whole chains, every bucket)
//! and both port pools (every set port, whole `Next` chains). It yields object addresses and
//! kinds; decoding is the carve's decoder's job.
use crate::carve::pool::PoolHeader;
use crate::paging::{PagingMode, VirtualMemory};
use crate::profile::{kind_fields, ObjectKind, Profile, TablesLayout};
use crate::tables::module::is_kernel_va;
use crate::tables::symbols::TcpipSymbols;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Partitions at most (tcpip sizes them by processor count; MemProcFS refuses more than 64).
pub const MAX_PARTITIONS: u64 = 64;
/// Buckets per hash table at most.
pub const MAX_TABLE_SIZE: u64 = 1 << 16;
/// Entries of one chain, and of the whole walk, at most.
pub const MAX_CHAIN: usize = 100_000;
pub const MAX_ENTRIES: usize = 1_000_000;
/// `_RTL_DYNAMIC_HASH_TABLE` fields (both architectures).
const HT_TABLE_SIZE: u64 = 0x8;
const HT_NUM_ENTRIES: u64 = 0x14;
const HT_DIRECTORY: u64 = 0x20;
/// A directory of at most this many buckets is one array; larger ones have two levels.
const HT_FIRST_LEVEL: u64 = 128;
/// Ports in a port pool's bitmap.
const PORTS: u64 = 1 << 16;

/// One object a table links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// VA of the object body (the carve's records carry the pool header's: body − header size).
    pub body: u64,
    pub kind: ObjectKind,
    /// The pool header before the body carries one of the kind's tags.
    pub tagged: bool,
}

/// What one table held (`tables.tables` in scan JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    /// `partition 0 connections`, `partition 0 second table`, `tcp port pool`, `udp port pool`.
    pub table: String,
    pub objects: u64,
    /// Walked to the end of every chain without a guard stopping it.
    pub complete: bool,
    /// The table's own count where it keeps one (`NumEntries` of a hash table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<u64>,
}

/// The walk's result.
#[derive(Clone, Debug, Default)]
pub struct Walked {
    pub entries: Vec<TableEntry>,
    pub tables: Vec<TableCount>,
    /// Kinds whose every table was walked completely: for them, absence means unlinked.
    pub complete: Vec<ObjectKind>,
    pub warnings: Vec<String>,
}

struct Walker<'a> {
    mem: &'a dyn VirtualMemory,
    mode: PagingMode,
    profile: &'a Profile,
    layout: &'a TablesLayout,
    ps: u64,
    header: u64,
    seen: HashSet<u64>,
    out: Walked,
    /// Per kind: some table of it was found and none stopped early.
    walked: Vec<(ObjectKind, bool)>,
}

/// Walks the tables of the tcpip image at `base` with `symbols`.
pub fn walk(
    mem: &dyn VirtualMemory,
    mode: PagingMode,
    profile: &Profile,
    layout: &TablesLayout,
    base: u64,
    symbols: &TcpipSymbols,
) -> Walked {
    let mut w = Walker::new(mem, mode, profile, layout);
    w.partitions(base, symbols);
    let pools = [
        (
            ObjectKind::TcpListener,
            "tcp",
            symbols.tcp_port_pool,
            symbols.tcp_compartment_set,
        ),
        (
            ObjectKind::UdpEndpoint,
            "udp",
            symbols.udp_port_pool,
            symbols.udp_compartment_set,
        ),
    ];
    for (kind, name, pool_sym, set_sym) in pools {
        let pool = match (pool_sym, set_sym) {
            (Some(rva), _) => w.ptr(base.wrapping_add(rva)),
            (None, Some(rva)) => w.compartment_port_pool(base.wrapping_add(rva)),
            (None, None) => {
                w.warn(format!(
                    "no {name} port-pool symbol: {name} endpoints' tables not walked"
                ));
                None
            }
        };
        match pool {
            Some(pool) if w.kernel(pool) => w.port_pool(pool, kind, &format!("{name} port pool")),
            Some(_) | None if pool_sym.is_some() || set_sym.is_some() => {
                w.warn(format!(
                    "the {name} port pool pointer is unreadable or not a kernel address"
                ));
                w.mark(kind, false);
            }
            _ => {}
        }
    }
    // Which table holds TIME_WAIT endpoints is not in every source: the second table counts as
    // theirs only when it held at least one object tagged as one.
    if !w
        .out
        .entries
        .iter()
        .any(|e| e.kind == ObjectKind::TimeWait && e.tagged)
    {
        w.mark(ObjectKind::TimeWait, false);
    }
    let mut out = w.out;
    out.complete = ObjectKind::ALL
        .into_iter()
        .filter(|k| {
            let mine: Vec<bool> = w
                .walked
                .iter()
                .filter(|(x, _)| x == k)
                .map(|&(_, ok)| ok)
                .collect();
            !mine.is_empty() && mine.iter().all(|&ok| ok)
        })
        .collect();
    out
}

/// The pool-tag route: walks hash tables and port pools found by their blocks' tags, not from
/// symbols. Nothing says every table was found, so no kind is ever "walked completely".
pub fn walk_found(
    mem: &dyn VirtualMemory,
    mode: PagingMode,
    profile: &Profile,
    layout: &TablesLayout,
    hash_tables: &[u64],
    port_pools: &[(u64, Option<ObjectKind>)],
) -> Walked {
    let mut w = Walker::new(mem, mode, profile, layout);
    for (i, &ht) in hash_tables.iter().enumerate() {
        w.hash_table(ht, None, format!("hash table {i} ({ht:#x})"));
    }
    for &(pool, kind) in port_pools {
        // A pool found by its own tag says nothing of its protocol: its objects' tags do.
        let kind = kind.or_else(|| {
            [ObjectKind::TcpListener, ObjectKind::UdpEndpoint]
                .into_iter()
                .find(|&k| {
                    let mut probe = Walker::new(mem, mode, profile, layout);
                    probe.port_pool(pool, k, "probe");
                    probe.out.entries.iter().any(|e| e.tagged)
                })
        });
        let Some(kind) = kind else { continue };
        let name = match kind {
            ObjectKind::UdpEndpoint => format!("udp port pool ({pool:#x})"),
            _ => format!("tcp port pool ({pool:#x})"),
        };
        w.port_pool(pool, kind, &name);
    }
    w.out
}

impl<'a> Walker<'a> {
    fn new(
        mem: &'a dyn VirtualMemory,
        mode: PagingMode,
        profile: &'a Profile,
        layout: &'a TablesLayout,
    ) -> Walker<'a> {
        Walker {
            mem,
            mode,
            profile,
            layout,
            ps: mode.pointer_size(),
            header: profile.arch.pool_header_size(),
            seen: HashSet::new(),
            out: Walked::default(),
            walked: vec![],
        }
    }

    fn ptr(&self, va: u64) -> Option<u64> {
        self.mem.read_word(va, self.ps)
    }

    fn kernel(&self, va: u64) -> bool {
        is_kernel_va(self.mode, va) && va.is_multiple_of(self.ps)
    }

    fn warn(&mut self, w: String) {
        self.out.warnings.push(format!("tcpip tables: {w}"));
    }

    fn mark(&mut self, kind: ObjectKind, complete: bool) {
        self.walked.push((kind, complete));
    }

    fn partitions(&mut self, base: u64, s: &TcpipSymbols) {
        let (Some(table_rva), Some(count_rva)) = (s.partition_table, s.partition_count) else {
            self.warn(
                "no PartitionTable/PartitionCount symbol: connections' tables not walked".into(),
            );
            return;
        };
        let table = self.ptr(base.wrapping_add(table_rva));
        let count = self.mem.read_u32(base.wrapping_add(count_rva));
        let (Some(table), Some(count)) = (table, count) else {
            self.warn("PartitionTable or PartitionCount is unreadable".into());
            self.mark(ObjectKind::TcpEndpoint, false);
            return;
        };
        let count = u64::from(count);
        if count == 0 || count > MAX_PARTITIONS || !self.kernel(table) {
            self.warn(format!(
                "PartitionCount {count} or PartitionTable {table:#x} is not plausible (1-{MAX_PARTITIONS} partitions in kernel memory)"
            ));
            self.mark(ObjectKind::TcpEndpoint, false);
            return;
        }
        let stride = self.layout.partition_size.get();
        let second = self.layout.time_wait_link.is_some()
            && kind_fields(self.profile, ObjectKind::TimeWait).is_some();
        for i in 0..count {
            let part = table + i * stride;
            let tables = [
                (
                    self.layout.partition_endpoints.off(),
                    ObjectKind::TcpEndpoint,
                    "connections",
                ),
                (
                    self.layout.partition_second_table.off().filter(|_| second),
                    ObjectKind::TimeWait,
                    "second table",
                ),
            ];
            for (off, kind, what) in tables {
                let Some(off) = off else { continue };
                let name = format!("partition {i} {what}");
                match self.ptr(part + off) {
                    Some(ht) if self.kernel(ht) => self.hash_table(ht, Some(kind), name),
                    Some(0) => self.mark(kind, true),
                    _ => {
                        self.warn(format!(
                            "{name}: the hash-table pointer is unreadable or not a kernel address"
                        ));
                        self.mark(kind, false);
                    }
                }
            }
        }
    }

    /// The bucket heads of a dynamic hash table's directory.
    fn buckets(&mut self, ht: u64, name: &str) -> Option<Vec<u64>> {
        let size = u64::from(self.mem.read_u32(ht + HT_TABLE_SIZE)?);
        let dir = self.ptr(ht + HT_DIRECTORY)?;
        if size > MAX_TABLE_SIZE {
            self.warn(format!(
                "{name}: TableSize {size} is more than {MAX_TABLE_SIZE} buckets"
            ));
            return None;
        }
        if size == 0 {
            return Some(vec![]);
        }
        if !self.kernel(dir) {
            self.warn(format!(
                "{name}: its directory {dir:#x} is not a kernel address"
            ));
            return None;
        }
        let bucket = 2 * self.ps;
        if size <= HT_FIRST_LEVEL {
            return Some((0..size).map(|b| dir + b * bucket).collect());
        }
        // Two levels: array i holds 128 << i buckets.
        let mut heads = vec![];
        let mut left = size;
        let mut i = 0;
        while left > 0 {
            let n = (HT_FIRST_LEVEL << i).min(left);
            let Some(second) = self.ptr(dir + i * self.ps).filter(|&p| self.kernel(p)) else {
                self.warn(format!("{name}: second-level directory {i} is unreadable"));
                return None;
            };
            heads.extend((0..n).map(|b| second + b * bucket));
            left -= n;
            i += 1;
        }
        Some(heads)
    }

    /// Walks one hash table. `kind: None` (the pool-tag route) finds each entry's kind by the tag
    /// before it; entries whose tag is no endpoint's take the kind most of the table's have.
    fn hash_table(&mut self, ht: u64, kind: Option<ObjectKind>, name: String) {
        let declared = self.mem.read_u32(ht + HT_NUM_ENTRIES).map(u64::from);
        let Some(heads) = self.buckets(ht, &name) else {
            self.out.tables.push(TableCount {
                table: name,
                objects: 0,
                complete: false,
                declared,
            });
            if let Some(kind) = kind {
                self.mark(kind, false);
            }
            return;
        };
        let mut links = vec![];
        let mut complete = true;
        for head in heads {
            match self.chain(head, |_, link| links.push(link)) {
                Ok(_) => {}
                Err((_, why)) => {
                    complete = false;
                    self.warn(format!(
                        "{name}: the chain of bucket {head:#x} {why}; the rest of it is not walked"
                    ));
                }
            }
            if self.out.entries.len() + links.len() >= MAX_ENTRIES {
                complete = false;
                self.warn(format!("the walk stopped at {MAX_ENTRIES} entries"));
                break;
            }
        }
        // The table's own kind first; an entry tagged as the other hash-linked kind is that kind.
        let kinds: Vec<ObjectKind> = match kind {
            Some(ObjectKind::TimeWait) => vec![ObjectKind::TimeWait, ObjectKind::TcpEndpoint],
            _ => vec![ObjectKind::TcpEndpoint, ObjectKind::TimeWait],
        };
        let found: Vec<(u64, Option<(ObjectKind, u64)>)> = links
            .iter()
            .map(|&link| {
                (
                    link,
                    kinds
                        .iter()
                        .find_map(|&k| self.tagged_body(link, k).map(|b| (k, b))),
                )
            })
            .collect();
        let majority = kind.or_else(|| {
            let tcp = found
                .iter()
                .filter(|(_, f)| matches!(f, Some((ObjectKind::TcpEndpoint, _))))
                .count();
            let tw = found
                .iter()
                .filter(|(_, f)| matches!(f, Some((ObjectKind::TimeWait, _))))
                .count();
            (tcp + tw > 0).then_some(if tcp >= tw {
                ObjectKind::TcpEndpoint
            } else {
                ObjectKind::TimeWait
            })
        });
        for (link, tagged) in &found {
            match (tagged, majority) {
                (Some((k, body)), _) => self.push(*body, *k, true),
                (None, Some(k)) => {
                    let Some(&off) = self.link_offsets(k).first() else {
                        continue;
                    };
                    let body = link.wrapping_sub(off);
                    let block = body
                        .wrapping_sub(kind_fields(self.profile, k).map_or(0, |f| f.body_offset));
                    // Another endpoint kind's block (a listener, say) is not this table's object.
                    let other = self
                        .pool_tag(block)
                        .is_some_and(|t| is_endpoint_tag(self.profile, &t));
                    if !other {
                        self.push(body, k, false);
                    }
                }
                (None, None) => {}
            }
        }
        if let Some(kind) = kind {
            self.mark(kind, complete);
        }
        self.out.tables.push(TableCount {
            table: name,
            objects: found.len() as u64,
            complete,
            declared,
        });
    }

    fn link_offsets(&self, kind: ObjectKind) -> Vec<u64> {
        match kind {
            ObjectKind::TimeWait => self
                .layout
                .time_wait_link
                .iter()
                .flat_map(|f| f.candidates())
                .collect(),
            _ => self.layout.tcp_endpoint_link.candidates().collect(),
        }
    }

    /// The body of the `kind` object linked at `link`: the link offset whose pool header carries
    /// one of the kind's tags.
    fn tagged_body(&self, link: u64, kind: ObjectKind) -> Option<u64> {
        let body_offset = kind_fields(self.profile, kind)?.body_offset;
        self.link_offsets(kind).into_iter().find_map(|off| {
            let body = link.wrapping_sub(off);
            self.tag_matches(body.wrapping_sub(body_offset), kind)
                .then_some(body)
        })
    }

    /// Follows a circular `LIST_ENTRY` chain from its head; `Err` when a guard stopped it.
    fn chain(
        &mut self,
        head: u64,
        mut on_entry: impl FnMut(&mut Self, u64),
    ) -> Result<u64, (u64, &'static str)> {
        let mut n = 0u64;
        let mut visited = HashSet::new();
        let mut link = self.ptr(head).ok_or((0, "is unreadable"))?;
        while link != head {
            if !self.kernel(link) {
                return Err((n, "leaves kernel memory"));
            }
            if !visited.insert(link) {
                return Err((n, "loops"));
            }
            if visited.len() > MAX_CHAIN {
                return Err((n, "is absurdly long"));
            }
            on_entry(self, link);
            n += 1;
            link = self.ptr(link).ok_or((n, "runs into unreadable memory"))?;
        }
        Ok(n)
    }

    fn tag_matches(&self, block_body: u64, kind: ObjectKind) -> bool {
        self.pool_tag(block_body)
            .zip(kind_fields(self.profile, kind))
            .is_some_and(|(tag, k)| k.tags.iter().any(|t| t.as_bytes() == tag))
    }

    /// The tag of the pool header before `block_body`.
    fn pool_tag(&self, block_body: u64) -> Option<[u8; 4]> {
        PoolHeader::read_at(
            self.mem,
            block_body.wrapping_sub(self.header),
            self.profile.arch,
        )
        .map(|p| p.tag)
    }

    fn push(&mut self, body: u64, kind: ObjectKind, tagged: bool) {
        if self.seen.insert(body) {
            self.out.entries.push(TableEntry { body, kind, tagged });
        }
    }

    /// `*(set + InetCompartment)` → `+ ProtocolCompartment` → `+ PortPool`.
    fn compartment_port_pool(&self, global: u64) -> Option<u64> {
        let set = self.ptr(global).filter(|&p| self.kernel(p))?;
        let comp = self
            .ptr(set + self.layout.compartment_set_compartment.off()?)
            .filter(|&p| self.kernel(p))?;
        let proto = self
            .ptr(comp + self.layout.compartment_protocol.off()?)
            .filter(|&p| self.kernel(p))?;
        self.ptr(proto + self.layout.protocol_port_pool.off()?)
    }

    fn port_pool(&mut self, pool: u64, kind: ObjectKind, name: &str) {
        let l = self.layout;
        let next = match kind {
            ObjectKind::TcpListener => l.tcp_listener_next.off(),
            _ => l.udp_endpoint_next.off(),
        };
        let (Some(bitmap), Some(assignments), Some(list_off), Some(entry_off), Some(next)) = (
            l.port_pool_bitmap.off(),
            l.port_pool_assignments.off(),
            l.port_assignment_list.off(),
            l.port_entry_pointer.off(),
            next,
        ) else {
            return;
        };
        let bits = self.mem.read_u32(pool + bitmap).map(u64::from);
        let buffer = self.ptr(pool + bitmap + self.ps);
        let (Some(bits), Some(buffer)) = (bits, buffer) else {
            self.warn(format!("{name}: its port bitmap is unreadable"));
            self.fail_table(name, kind);
            return;
        };
        if bits > PORTS || !self.kernel(buffer) {
            self.warn(format!(
                "{name}: port bitmap of {bits} bits at {buffer:#x} is not plausible"
            ));
            self.fail_table(name, kind);
            return;
        }
        let mut map = vec![0u8; bits.div_ceil(8) as usize];
        if !self.mem.read_into(buffer, &mut map) {
            self.warn(format!("{name}: its port bitmap is unreadable"));
            self.fail_table(name, kind);
            return;
        }
        let mut objects = 0u64;
        let mut complete = true;
        let entry_size = l.port_entry_size.get();
        for port in 1..bits {
            if map[(port / 8) as usize] & (1 << (port % 8)) == 0 {
                continue;
            }
            let assignment = self.ptr(pool + assignments + (port >> 8) * self.ps);
            let list = assignment
                .filter(|&a| self.kernel(a))
                .and_then(|a| self.ptr(a + list_off))
                .filter(|&p| self.kernel(p));
            let first =
                list.and_then(|list| self.ptr(list + (port & 0xFF) * entry_size + entry_off));
            let Some(first) = first else {
                complete = false;
                self.warn(format!(
                    "{name}: port {port} is in the bitmap but its assignment is unreadable"
                ));
                continue;
            };
            let mut at = first & !3;
            let mut visited = HashSet::new();
            while at != 0 {
                if !self.kernel(at) || !visited.insert(at) || visited.len() > MAX_CHAIN {
                    complete = false;
                    self.warn(format!(
                        "{name}: the chain of port {port} loops or leaves kernel memory"
                    ));
                    break;
                }
                let body = at.wrapping_sub(next);
                // A connection bound to the port sits in the same chain; it is the hash tables'.
                let tag = self.pool_tag(body);
                let tagged = self.tag_matches(body, kind);
                let other_endpoint =
                    !tagged && tag.is_some_and(|t| is_endpoint_tag(self.profile, &t));
                if !other_endpoint {
                    self.push(body, kind, tagged);
                    objects += 1;
                }
                match self.ptr(at) {
                    Some(n) => at = n & !3,
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if self.out.entries.len() >= MAX_ENTRIES {
                complete = false;
                break;
            }
        }
        self.mark(kind, complete);
        self.out.tables.push(TableCount {
            table: name.to_string(),
            objects,
            complete,
            declared: None,
        });
    }

    fn fail_table(&mut self, name: &str, kind: ObjectKind) {
        self.mark(kind, false);
        self.out.tables.push(TableCount {
            table: name.to_string(),
            objects: 0,
            complete: false,
            declared: None,
        });
    }
}

/// Any endpoint kind's tag in this profile.
fn is_endpoint_tag(profile: &Profile, tag: &[u8; 4]) -> bool {
    ObjectKind::ALL
        .into_iter()
        .filter_map(|k| kind_fields(profile, k))
        .any(|k| k.tags.iter().any(|t| t.as_bytes() == tag))
}
