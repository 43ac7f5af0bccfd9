//! The tcpip.sys globals the walk starts from, by route: a PDB-derived profile's symbols, the
//! built-in table (`symbols/tcpip.json`, by GUID-age), or none.
use crate::profile::Profile;
use crate::record::PdbId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// RVAs from the tcpip.sys image base.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpipSymbols {
    pub partition_table: Option<u64>,
    pub partition_count: Option<u64>,
    pub tcp_port_pool: Option<u64>,
    pub udp_port_pool: Option<u64>,
    pub tcp_compartment_set: Option<u64>,
    pub udp_compartment_set: Option<u64>,
}

impl TcpipSymbols {
    fn from_names(get: impl Fn(&str) -> Option<u64>) -> TcpipSymbols {
        TcpipSymbols {
            partition_table: get("PartitionTable"),
            partition_count: get("PartitionCount"),
            tcp_port_pool: get("TcpPortPool"),
            udp_port_pool: get("UdpPortPool"),
            tcp_compartment_set: get("TcpCompartmentSet"),
            udp_compartment_set: get("UdpCompartmentSet"),
        }
    }

    fn is_empty(&self) -> bool {
        *self == TcpipSymbols::default()
    }
}

/// Where the symbols came from (`tables.route` in scan JSON).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SymbolSource {
    /// A from-pdb profile's `tcpip!…` symbols.
    Pdb,
    /// `symbols/tcpip.json`.
    Builtin,
}

impl SymbolSource {
    pub fn route(self) -> &'static str {
        match self {
            SymbolSource::Pdb => "pdb",
            SymbolSource::Builtin => "builtin-symbols",
        }
    }
}

#[derive(Deserialize)]
struct BuiltinFile {
    tcpip: Vec<BuiltinEntry>,
}

#[derive(Deserialize)]
struct BuiltinEntry {
    guid_age: String,
    symbols: BTreeMap<String, Option<crate::record::Hex>>,
}

/// The built-in table, parsed once: GUID-age (upper case) → symbols.
fn builtin() -> &'static BTreeMap<String, TcpipSymbols> {
    static PARSED: OnceLock<BTreeMap<String, TcpipSymbols>> = OnceLock::new();
    PARSED.get_or_init(|| {
        // A broken embedded table is a build defect; tests/tables_walk.rs parses it.
        let file: BuiltinFile = serde_json::from_str(include_str!("../../symbols/tcpip.json"))
            .unwrap_or(BuiltinFile { tcpip: vec![] });
        file.tcpip
            .into_iter()
            .map(|e| {
                let syms =
                    TcpipSymbols::from_names(|n| e.symbols.get(n).copied().flatten().map(|h| h.0));
                (e.guid_age.to_ascii_uppercase(), syms)
            })
            .collect()
    })
}

/// How many tcpip builds the built-in table knows.
pub fn builtin_count() -> usize {
    builtin().len()
}

/// The symbols for this tcpip, first source that has them; `Err` says why there are none.
pub fn resolve(
    profile: &Profile,
    tcpip: Option<&PdbId>,
) -> Result<(SymbolSource, TcpipSymbols, Option<String>), String> {
    let from_profile = TcpipSymbols::from_names(|n| {
        profile
            .symbols
            .get(&format!("tcpip!{n}"))
            .and_then(|f| f.off())
    });
    if !from_profile.is_empty() {
        // The profile names the tcpip PDB it was made from in its sources (`pdb:<GUID>-<age>`).
        let own: Vec<&str> = profile
            .sources
            .keys()
            .filter_map(|k| k.strip_prefix("pdb:"))
            .collect();
        let warning = match tcpip {
            Some(id) if own.iter().any(|o| o.eq_ignore_ascii_case(&id.guid_age())) => None,
            Some(id) => Some(format!(
                "profile {}'s tcpip symbols come from another tcpip.pdb than the image's ({}): the table walk may read garbage",
                profile.name,
                id.guid_age()
            )),
            None => None,
        };
        return Ok((SymbolSource::Pdb, from_profile, warning));
    }
    let Some(id) = tcpip else {
        return Err("tcpip.sys's PDB id is unknown, and the profile has no tcpip symbols".into());
    };
    match builtin().get(&id.guid_age().to_ascii_uppercase()) {
        Some(s) => Ok((SymbolSource::Builtin, s.clone(), None)),
        None => Err(format!(
            "no symbols for tcpip.pdb {} (not in the built-in table of {} builds; `profile from-pdb --tcpip` makes a profile that has them)",
            id.guid_age(),
            builtin_count()
        )),
    }
}
