//! `profile from-pdb`: a profile for one exact kernel, read from its PDB (and tcpip.sys's).
//!
//! The kernel PDB gives the nt structure offsets and the kernel symbol RVAs; a tcpip PDB gives
//! the tcpip symbol RVAs. Public tcpip PDBs carry no endpoint types, so the tcpip layouts come
//! from a base profile (`--base`, or the one built-in profile whose nt offsets the PDB matches).
use super::{builtin, Arch, Confidence, Field, Off, Profile};
use crate::error::{Cause, Error, Result};
use pdb2::FallibleIterator;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Kernel symbols the scanner can use (PsActiveProcessHead lists processes, KdVersionBlock gives
/// the build, PsLoadedModuleList finds tcpip.sys).
const NT_SYMBOLS: &[&str] = &[
    "PsActiveProcessHead",
    "PsLoadedModuleList",
    "KdVersionBlock",
];
/// tcpip symbols of both generations (port pools up to 10586, compartment sets after).
const TCPIP_SYMBOLS: &[&str] = &[
    "PartitionTable",
    "PartitionCount",
    "TcpCompartmentSet",
    "UdpCompartmentSet",
    "TcpPortPool",
    "UdpPortPool",
];

/// What one PDB holds that a profile needs.
struct PdbFacts {
    arch: Option<Arch>,
    /// `GUID-age` as in symbol-server paths.
    guid: String,
    age: u32,
    /// Complete struct/union name → (field list, size).
    types: HashMap<String, (Option<pdb2::TypeIndex>, u64)>,
    /// Public and global data symbol name (undecorated) → RVA.
    symbols: HashMap<String, u32>,
    path: std::path::PathBuf,
    type_info: pdb2::TypeInformation<'static>,
}

/// Reads a PDB file read-only; every failure names the file.
fn read_pdb(path: &Path) -> Result<PdbFacts> {
    let bad =
        |what: &str, e: pdb2::Error| Error::cause(path, Cause::Profile(format!("{what}: {e}")));
    let file = crate::evidence::open_input(path, "PDB")?;
    let mut pdb = pdb2::PDB::open(file).map_err(|e| bad("not a readable PDB", e))?;
    let info = pdb
        .pdb_information()
        .map_err(|e| bad("no PDB information stream", e))?;
    let (d1, d2, d3, d4) = info.guid.as_fields();
    let mut guid = format!("{d1:08X}{d2:04X}{d3:04X}");
    for b in d4 {
        guid.push_str(&format!("{b:02X}"));
    }
    let arch = match pdb.debug_information().and_then(|d| d.machine_type()) {
        Ok(pdb2::MachineType::Amd64) => Some(Arch::X64),
        Ok(pdb2::MachineType::X86) => Some(Arch::X86),
        _ => None,
    };

    let mut symbols = HashMap::new();
    if let (Ok(table), Ok(map)) = (pdb.global_symbols(), pdb.address_map()) {
        let mut iter = table.iter();
        // A damaged symbol record ends the walk; the symbols read so far still count.
        while let Ok(Some(sym)) = iter.next() {
            let (name, offset) = match sym.parse() {
                Ok(pdb2::SymbolData::Public(p)) => (p.name, p.offset),
                Ok(pdb2::SymbolData::Data(d)) => (d.name, d.offset),
                _ => continue,
            };
            if let Some(rva) = offset.to_rva(&map) {
                symbols
                    .entry(undecorate(&name.to_string()).to_string())
                    .or_insert(rva.0);
            }
        }
    }

    let type_info = pdb
        .type_information()
        .map_err(|e| bad("no type stream", e))?;
    let mut types = HashMap::new();
    {
        let mut iter = type_info.iter();
        loop {
            let item = match iter.next() {
                Ok(Some(i)) => i,
                Ok(None) => break,
                Err(e) => return Err(bad("damaged type stream", e)),
            };
            let (name, fields, size, forward) = match item.parse() {
                Ok(pdb2::TypeData::Class(c)) => {
                    (c.name, c.fields, c.size, c.properties.forward_reference())
                }
                Ok(pdb2::TypeData::Union(u)) => (
                    u.name,
                    Some(u.fields),
                    u.size,
                    u.properties.forward_reference(),
                ),
                _ => continue,
            };
            if !forward {
                types
                    .entry(name.to_string().into_owned())
                    .or_insert((fields, size));
            }
        }
    }
    Ok(PdbFacts {
        arch,
        guid,
        age: info.age,
        types,
        symbols,
        path: path.to_path_buf(),
        type_info,
    })
}

/// `_PsActiveProcessHead` (x86 C names) and `@name@8` (fastcall) → the plain name.
fn undecorate(name: &str) -> &str {
    let n = name.strip_prefix('_').unwrap_or(name);
    let n = n.strip_prefix('@').unwrap_or(n);
    n.split('@').next().unwrap_or(n)
}

impl PdbFacts {
    fn id(&self) -> String {
        format!("{}-{}", self.guid, self.age)
    }

    /// Members of a struct by name, anonymous unions/structs looked through (their members count
    /// at the parent's offset plus their own).
    fn members(
        &self,
        finder: &pdb2::TypeFinder<'_>,
        struct_name: &str,
    ) -> Result<Vec<(String, u64, pdb2::TypeIndex)>> {
        let (fields, _) = self.types.get(struct_name).ok_or_else(|| {
            Error::cause(
                &self.path,
                Cause::Profile(format!("type {struct_name} is not in this PDB")),
            )
        })?;
        let mut out = vec![];
        self.collect_members(finder, *fields, 0, &mut out, 0)?;
        Ok(out)
    }

    /// Index of every type record (one pass; lookups by index afterwards).
    fn finder(&self) -> pdb2::TypeFinder<'_> {
        let mut finder = self.type_info.finder();
        let mut iter = self.type_info.iter();
        while let Ok(Some(_)) = iter.next() {
            finder.update(&iter);
        }
        finder
    }

    fn collect_members(
        &self,
        finder: &pdb2::TypeFinder<'_>,
        list: Option<pdb2::TypeIndex>,
        base: u64,
        out: &mut Vec<(String, u64, pdb2::TypeIndex)>,
        depth: u32,
    ) -> Result<()> {
        // Hostile PDBs can chain field lists in a loop; real nesting is shallow.
        if depth > 16 {
            return Ok(());
        }
        let mut next = list;
        let mut hops = 0;
        while let Some(idx) = next {
            hops += 1;
            if hops > 4096 {
                break;
            }
            let Ok(pdb2::TypeData::FieldList(fl)) = finder.find(idx).and_then(|t| t.parse()) else {
                break;
            };
            for f in &fl.fields {
                if let pdb2::TypeData::Member(m) = f {
                    let name = m.name.to_string().into_owned();
                    let at = base.saturating_add(m.offset);
                    if name.is_empty() || name.starts_with('<') {
                        let inner = self.resolve(finder, m.field_type);
                        if let Some((fields, _)) = inner.and_then(|n| self.types.get(&n)) {
                            self.collect_members(finder, *fields, at, out, depth + 1)?;
                        }
                    }
                    out.push((name, at, m.field_type));
                }
            }
            next = fl.continuation;
        }
        Ok(())
    }

    /// The struct/union name behind a member type (through const/volatile modifiers).
    fn resolve(&self, finder: &pdb2::TypeFinder<'_>, mut idx: pdb2::TypeIndex) -> Option<String> {
        for _ in 0..8 {
            match finder.find(idx).and_then(|t| t.parse()).ok()? {
                pdb2::TypeData::Class(c) => return Some(c.name.to_string().into_owned()),
                pdb2::TypeData::Union(u) => return Some(u.name.to_string().into_owned()),
                pdb2::TypeData::Modifier(m) => idx = m.underlying_type,
                _ => return None,
            }
        }
        None
    }

    /// Offset of `path` (`Pcb.Header.Type`) inside `struct_name`; `None` when a step is missing.
    fn offset(
        &self,
        finder: &pdb2::TypeFinder<'_>,
        struct_name: &str,
        path: &str,
    ) -> Result<Option<u64>> {
        let mut current = struct_name.to_string();
        let mut total = 0u64;
        let steps: Vec<&str> = path.split('.').collect();
        for (i, step) in steps.iter().enumerate() {
            let members = match self.members(finder, &current) {
                Ok(m) => m,
                Err(_) if i > 0 => return Ok(None),
                Err(e) => return Err(e),
            };
            let Some((_, off, ty)) = members.iter().find(|(n, _, _)| n == step) else {
                return Ok(None);
            };
            total = total.saturating_add(*off);
            if i + 1 < steps.len() {
                match self.resolve(finder, *ty) {
                    Some(n) => current = n,
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(total))
    }

    fn size_of(&self, struct_name: &str) -> Option<u64> {
        self.types.get(struct_name).map(|(_, s)| *s)
    }
}

fn off32(path: &Path, what: &str, v: u64) -> Result<Off> {
    u32::try_from(v).map(Off).map_err(|_| {
        Error::cause(
            path,
            Cause::Profile(format!("{what} offset {v:#x} does not fit in 32 bits")),
        )
    })
}

/// Builds the profile; `base` names a built-in profile or a JSON file.
pub fn from_pdb(nt_pdb: &Path, tcpip_pdb: Option<&Path>, base: Option<&str>) -> Result<Profile> {
    let nt = read_pdb(nt_pdb)?;
    let key = format!("pdb:{}", nt.id());
    let finder = nt.finder();
    let field = |struct_name: &str, path: &str, required: bool| -> Result<Field> {
        match nt.offset(&finder, struct_name, path)? {
            Some(v) => Ok(Field::at(off32(nt_pdb, path, v)?.0, &key, Confidence::Pdb)),
            None if required => Err(Error::cause(
                nt_pdb,
                Cause::Profile(format!(
                    "{struct_name}.{path} is not in this PDB (not a kernel PDB?)"
                )),
            )),
            None => Ok(Field::absent(&key, Confidence::Pdb)),
        }
    };
    let eprocess = super::EprocessLayout {
        size: nt
            .size_of("_EPROCESS")
            .map(|s| off32(nt_pdb, "_EPROCESS size", s))
            .transpose()?,
        dispatcher_type: field("_EPROCESS", "Pcb.Header.Type", true)?,
        directory_table_base: field("_EPROCESS", "Pcb.DirectoryTableBase", true)?,
        unique_process_id: field("_EPROCESS", "UniqueProcessId", true)?,
        active_process_links: field("_EPROCESS", "ActiveProcessLinks", true)?,
        create_time: field("_EPROCESS", "CreateTime", true)?,
        exit_time: field("_EPROCESS", "ExitTime", true)?,
        image_file_name: field("_EPROCESS", "ImageFileName", true)?,
        inherited_from_unique_process_id: field("_EPROCESS", "InheritedFromUniqueProcessId", true)?,
    };
    let object_header = super::ObjectHeaderLayout {
        body: field("_OBJECT_HEADER", "Body", true)?,
        // Absent before Windows 7 (a Type pointer instead).
        type_index: field("_OBJECT_HEADER", "TypeIndex", false)?,
    };
    let kuser = super::KuserLayout {
        interrupt_time: field("_KUSER_SHARED_DATA", "InterruptTime", true)?,
        system_time: field("_KUSER_SHARED_DATA", "SystemTime", true)?,
        time_zone_bias: field("_KUSER_SHARED_DATA", "TimeZoneBias", true)?,
        nt_build_number: field("_KUSER_SHARED_DATA", "NtBuildNumber", false)?,
        nt_product_type: field("_KUSER_SHARED_DATA", "NtProductType", true)?,
        nt_major_version: field("_KUSER_SHARED_DATA", "NtMajorVersion", true)?,
        nt_minor_version: field("_KUSER_SHARED_DATA", "NtMinorVersion", true)?,
    };
    let nt_layout = super::NtLayout {
        eprocess,
        object_header,
        kuser_shared_data: kuser,
    };

    let base_profile = match base {
        Some(b) => super::resolve(b)?,
        None => matching_base(&nt, &nt_layout)?.clone(),
    };
    if let Some(a) = nt.arch {
        if a != base_profile.arch {
            return Err(Error::cause(
                nt_pdb,
                Cause::Profile(format!(
                    "the PDB is {} but base profile {} is {}",
                    a.name(),
                    base_profile.name,
                    base_profile.arch.name()
                )),
            ));
        }
    }

    let mut p = base_profile.clone();
    p.name = format!("{}-pdb-{}", base_profile.name, nt.id());
    p.description = format!(
        "{} with nt offsets and symbols from {} ({})",
        base_profile.description,
        nt_pdb
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        nt.id()
    );
    p.nt = nt_layout;
    p.sources.insert(
        key.clone(),
        format!(
            "kernel PDB {} GUID {} age {}",
            nt_pdb.display(),
            nt.guid,
            nt.age
        ),
    );
    p.kernel_pdb = Some(crate::record::PdbId::new(
        &pdb_name(&nt, "ntkrnlmp.pdb"),
        &nt.guid,
        nt.age,
    ));
    let mut symbols = BTreeMap::new();
    for s in NT_SYMBOLS {
        if let Some(rva) = nt.symbols.get(*s) {
            symbols.insert(s.to_string(), Field::at(*rva, &key, Confidence::Pdb));
        }
    }
    if let Some(tp) = tcpip_pdb {
        let t = read_pdb(tp)?;
        let tkey = format!("pdb:{}", t.id());
        p.sources.insert(
            tkey.clone(),
            format!("tcpip PDB {} GUID {} age {}", tp.display(), t.guid, t.age),
        );
        let mut found = 0;
        for s in TCPIP_SYMBOLS {
            if let Some(rva) = t.symbols.get(*s) {
                symbols.insert(
                    format!("tcpip!{s}"),
                    Field::at(*rva, &tkey, Confidence::Pdb),
                );
                found += 1;
            }
        }
        if found == 0 {
            return Err(Error::cause(tp, Cause::Profile("none of PartitionTable, PartitionCount, Tcp/UdpCompartmentSet, Tcp/UdpPortPool \
                 is in this PDB (not tcpip.pdb?)".into())));
        }
    }
    p.symbols = symbols;
    p.notes.insert(
        0,
        format!(
            "nt offsets and symbols from the PDB {}; tcpip layouts from the base profile {}. Scanning \
             an image whose kernel GUID differs is warned about.",
            nt.id(),
            base_profile.name
        ),
    );
    p.confidence = weakest(&p);
    Ok(p)
}

/// The PDB file name the kernel's CodeView record would carry; the fixture's own name otherwise.
fn pdb_name(nt: &PdbFacts, default: &str) -> String {
    let n = nt
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if n.starts_with("nt") && n.ends_with(".pdb") && !n.contains("fixture") {
        n
    } else {
        default.to_string()
    }
}

/// The built-in profile whose nt offsets equal the PDB's (the PDB carries no build number).
fn matching_base<'a>(nt: &PdbFacts, layout: &super::NtLayout) -> Result<&'a Profile> {
    let key = |l: &super::NtLayout| l.process_offsets();
    let want = key(layout);
    let hits: Vec<&Profile> = builtin()
        .iter()
        .filter(|p| nt.arch.is_none_or(|a| a == p.arch) && key(&p.nt) == want)
        .collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::cause(&nt.path, Cause::Profile("no built-in profile has this kernel's _EPROCESS layout; pass --base NAME to choose \
             the tcpip layouts".into()))),
        many => Err(Error::cause(&nt.path, Cause::Profile(format!(
                "this kernel's _EPROCESS layout fits several built-in profiles ({}); pass --base NAME",
                many.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            )))),
    }
}

/// The weakest confidence of every field in the profile.
pub fn weakest(p: &Profile) -> Confidence {
    let v = serde_json::to_value(p).unwrap_or_default();
    let mut weakest = Confidence::Pdb;
    fn walk(v: &serde_json::Value, w: &mut Confidence) {
        match v {
            serde_json::Value::Object(m) => {
                if let (Some(c), true) = (m.get("confidence"), m.contains_key("source")) {
                    if let Ok(c) = serde_json::from_value::<Confidence>(c.clone()) {
                        *w = (*w).min(c);
                    }
                }
                m.values().for_each(|x| walk(x, w));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, w)),
            _ => {}
        }
    }
    walk(&v, &mut weakest);
    weakest
}
