//! The second route to endpoints: tcpip.sys's own tables, what `netstat` and the API enumerate.
//! [`module`] finds tcpip.sys, [`symbols`] its globals, [`walk`] the tables; this file turns the
//! walk into [`TableFinds`] for the carve's decoder and the `tables` section of scan JSON.
use crate::carve::linked::{TableFinds, TableObject};
use crate::carve::pool::PoolHeader;
use crate::kernel::KernelInfo;
use crate::paging::AddressSpace;
use crate::profile::{kind_fields, Profile};
use serde::{Deserialize, Serialize};

pub mod module;
pub mod symbols;
pub mod walk;

pub use module::TcpipModule;
pub use walk::TableCount;

/// `tables` in scan JSON: how the tables were found and what they held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablesReport {
    /// `pdb`, `builtin-symbols`, or `none`.
    pub route: String,
    /// Why the route is `none` (what stopped part of a walk is in the image's warnings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub tcpip: Option<TcpipModule>,
    pub tables: Vec<TableCount>,
    /// Kinds (`tcp_endpoint`, ...) whose tables were walked completely: absence from them means
    /// the object is unlinked.
    pub complete: Vec<String>,
    /// Objects the walk found that the carve did not (flag `no_pool_tag` where their header
    /// does not carry the tag), and entries that did not decode as their kind.
    #[serde(default)]
    pub only_in_tables: u64,
    #[serde(default)]
    pub undecodable: u64,
}

impl Default for TablesReport {
    fn default() -> Self {
        TablesReport::none(None, "scanned before netcarve walked tcpip's tables")
    }
}

impl TablesReport {
    /// Route `none` because the user asked so (`why`).
    pub fn skipped(why: &str) -> TablesReport {
        TablesReport::none(None, &format!("not walked ({why})"))
    }

    fn none(tcpip: Option<TcpipModule>, reason: &str) -> TablesReport {
        TablesReport {
            route: "none".into(),
            reason: Some(reason.to_string()),
            tcpip,
            tables: vec![],
            complete: vec![],
            only_in_tables: 0,
            undecodable: 0,
        }
    }
}

/// What is known before the carve: tcpip.sys, its symbols (or why there are none), the layout.
pub struct Prepared<'a> {
    tcpip: Option<TcpipModule>,
    symbols:
        std::result::Result<(symbols::SymbolSource, symbols::TcpipSymbols, Option<String>), String>,
    layout: Option<&'a crate::profile::TablesLayout>,
    profile: &'a Profile,
}

impl Prepared<'_> {
    /// The pool tags the carve's search must collect for the pool-tag route: none when symbols
    /// (or the lack of a layout) make the route unneeded, so the search costs nothing more.
    pub fn block_tags(&self) -> &'static [[u8; 4]] {
        match (self.layout, &self.symbols) {
            (Some(_), Err(_)) => &POOL_TAG_ROUTE_TAGS,
            _ => &[],
        }
    }
}

/// The tags of tcpip's table blocks the pool-tag route starts from: hash tables (`TcHT`), the
/// protocol compartments that hold the port pools (`TcCo`, `UdCo`), and the port pools (`InPP`).
pub const POOL_TAG_ROUTE_TAGS: [[u8; 4]; 4] = [*b"TcHT", *b"TcCo", *b"UdCo", *b"InPP"];

/// Finds tcpip.sys and its symbols, before the carve.
pub fn prepare<'a>(
    space: &AddressSpace,
    kernel: &KernelInfo,
    profile: &'a Profile,
) -> Prepared<'a> {
    let tcpip = module::find_tcpip(space, kernel);
    let symbols = match &tcpip {
        Some(module) => symbols::resolve(profile, module.pdb.as_ref()),
        None => Err(
            "tcpip.sys not found (not in the loaded-module list, no image naming tcpip.pdb)".into(),
        ),
    };
    Prepared {
        tcpip,
        symbols,
        layout: profile.tcpip.tables.as_ref(),
        profile,
    }
}

/// Walks tcpip's tables: from symbols (a PDB profile's, the built-in table's), else from the
/// table blocks the carve's search collected (`blocks`: physical address of each pool header and
/// its tag). Warnings are for the image's list.
pub fn walk_tables(
    space: &AddressSpace,
    kernel: &KernelInfo,
    prepared: Prepared,
    blocks: &[(u64, [u8; 4])],
) -> (TablesReport, Option<TableFinds>, Vec<String>) {
    let Prepared {
        tcpip,
        symbols,
        layout,
        profile,
    } = prepared;
    let Some(layout) = layout else {
        let why = format!(
            "no source describes tcpip's tables for the layout of profile {}",
            profile.name
        );
        return (TablesReport::none(tcpip, &why), None, vec![]);
    };
    let symbol_walk = match (&tcpip, symbols) {
        (Some(module), Ok(r)) => Ok((r, module.base.0)),
        (_, Err(why)) => Err(why),
        (None, Ok(_)) => Err("tcpip.sys not found".to_string()),
    };
    let (route, walked, mut warnings) = match symbol_walk {
        Ok(((source, syms, warning), base)) => {
            let walked = walk::walk(space, kernel.mode, profile, layout, base, &syms);
            (
                source.route(),
                walked,
                warning.into_iter().collect::<Vec<_>>(),
            )
        }
        Err(why) if !blocks.is_empty() => {
            let (hash_tables, pools) = pool_tag_tables(space, profile, layout, blocks);
            if hash_tables.is_empty() && pools.is_empty() {
                let why = format!("{why}; and no TcHT/TcCo/UdCo/InPP block holds a table");
                return (TablesReport::none(tcpip, &why), None, vec![]);
            }
            let walked =
                walk::walk_found(space, kernel.mode, profile, layout, &hash_tables, &pools);
            ("pool-tags", walked, vec![])
        }
        Err(why) => return (TablesReport::none(tcpip, &why), None, vec![]),
    };
    warnings.extend(walked.warnings.iter().cloned());
    let header = profile.arch.pool_header_size();
    let objects = walked
        .entries
        .iter()
        .filter_map(|e| {
            let k = kind_fields(profile, e.kind)?;
            let header_va = e.body.wrapping_sub(k.body_offset).wrapping_sub(header);
            let header_pa = space.translate(header_va)?;
            Some(TableObject {
                header_pa,
                header_va,
                kind: e.kind,
                tagged: e.tagged,
            })
        })
        .collect();
    let report = TablesReport {
        route: route.into(),
        reason: (route == "pool-tags").then(|| {
            "no symbols for this tcpip: tables found by their pool tags; nothing proves every table \
             was found, so objects in none of them stay linked: null"
                .to_string()
        }),
        tcpip,
        tables: walked.tables.clone(),
        complete: walked.complete.iter().map(|k| k.name().to_string()).collect(),
        only_in_tables: 0,
        undecodable: 0,
    };
    let finds = TableFinds {
        objects,
        complete: walked.complete,
    };
    (report, Some(finds), warnings)
}

/// The hash tables in `TcHT` blocks (an `_RTL_DYNAMIC_HASH_TABLE` whose directory is an `HTab`
/// block) and the port pools the `TcCo`/`UdCo` protocol compartments point to.
fn pool_tag_tables(
    space: &AddressSpace,
    profile: &Profile,
    layout: &crate::profile::TablesLayout,
    blocks: &[(u64, [u8; 4])],
) -> (Vec<u64>, Vec<(u64, Option<crate::profile::ObjectKind>)>) {
    use crate::bytes::ReadBytes;
    use crate::paging::VirtualMemory;
    use crate::profile::ObjectKind;
    let arch = profile.arch;
    let header = arch.pool_header_size();
    let ps = arch.pointer_size();
    let mut pages: Vec<u64> = blocks.iter().map(|(pa, _)| pa / 0x1000).collect();
    pages.sort_unstable();
    pages.dedup();
    let vas = space.phys_to_virt(&pages);
    let va_of = |pa: u64| -> Option<u64> {
        let i = pages.binary_search(&(pa / 0x1000)).ok()?;
        Some(vas.get(i).copied().flatten()? + pa % 0x1000)
    };
    let tag_before =
        |va: u64| PoolHeader::read_at(space, va.wrapping_sub(header), arch).map(|h| h.tag);
    let kernel = |va: u64| module::is_kernel_va(space.mode, va) && va.is_multiple_of(ps);
    let (mut hash_tables, mut pools) = (vec![], vec![]);
    for &(pa, tag) in blocks {
        let Some(va) = va_of(pa) else { continue };
        let Some(h) = PoolHeader::read_at(space, va, arch) else {
            continue;
        };
        let body = va + header;
        let len = h
            .block_size
            .saturating_sub(header)
            .min(0x1000 - (body & 0xFFF));
        match &tag {
            b"TcHT" => {
                let mut at = 0;
                while at + 0x20 + ps <= len {
                    let ht = body + at;
                    let size = space.read_u32(ht + 0x8).unwrap_or(0);
                    let dir = space.read_ptr(ht + 0x20).unwrap_or(0);
                    if (1..=65536).contains(&size)
                        && kernel(dir)
                        && tag_before(dir) == Some(*b"HTab")
                    {
                        hash_tables.push(ht);
                    }
                    at += ps;
                }
            }
            b"TcCo" | b"UdCo" => {
                let kind = if &tag == b"TcCo" {
                    ObjectKind::TcpListener
                } else {
                    ObjectKind::UdpEndpoint
                };
                let pool = layout
                    .protocol_port_pool
                    .off()
                    .and_then(|off| space.read_ptr(body + off))
                    .filter(|&p| kernel(p));
                if let Some(pool) = pool {
                    pools.push((pool, Some(kind)));
                }
            }
            // The pool itself; its protocol is told by the objects it holds.
            b"InPP" => pools.push((body, None)),
            _ => {}
        }
    }
    hash_tables.sort_unstable();
    hash_tables.dedup();
    // One entry per pool, the one whose protocol is known first.
    pools.sort_unstable_by_key(|&(va, kind)| (va, kind.is_none()));
    pools.dedup_by_key(|p| p.0);
    (hash_tables, pools)
}
