//! `netcarve synth`: Windows memory images with known ground truth.
//!
//! The writer lays every byte out from the profile's numbers with its own page-table, kernel and
//! container writers; it never calls the reader (`container`, `paging`, `kernel`, `scan`,
//! `endpoint`), so a misreading cannot hide in both directions at once. It shares only the record
//! types (`record.rs`) and the profile schema with the reader.
pub mod builder;
pub mod captures;
pub mod containers;
pub mod hiberfil;
pub mod isf;
pub mod kernel;
pub mod objects;
pub mod phys;
pub mod plan;
pub mod rng;
pub mod scenario;
pub mod tcpip;
pub mod vmap;
pub mod xpress;

use crate::error::{io_error, Error, Result};
use crate::profile::{Arch, ObjectKind, Profile};
use crate::record::{CaptureRow, EndpointRecord, Hex, ImageFacts, PdbId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Container {
    Raw,
    Crashdump,
    Bitmap,
    Elf,
    Lime,
    Vmware,
    /// Not in [`Container::ALL`]: its reader needs the Xpress codecs, so its own tests cover it.
    Hiberfil,
}

impl Container {
    pub const ALL: [Container; 6] = [
        Container::Raw,
        Container::Crashdump,
        Container::Bitmap,
        Container::Elf,
        Container::Lime,
        Container::Vmware,
    ];
    /// The container name the reader reports (`ImageFacts::container`).
    pub fn kind(self) -> &'static str {
        match self {
            Container::Raw => "raw",
            Container::Crashdump => "crashdump-full",
            Container::Bitmap => "crashdump-bitmap",
            Container::Elf => "elf",
            Container::Lime => "lime",
            Container::Vmware => "vmware",
            Container::Hiberfil => "hiberfil",
        }
    }
    pub fn file_name(self) -> &'static str {
        match self {
            Container::Raw => "memory.raw",
            Container::Crashdump | Container::Bitmap => "memory.dmp",
            Container::Elf => "memory.elf",
            Container::Lime => "memory.lime",
            Container::Vmware => "memory.vmem",
            Container::Hiberfil => "hiberfil.sys",
        }
    }
}

/// How synth writes one kind's create-time field, so the time-slot census can be tested: moved to
/// a slot the profile does not name (past the layout's other fields), or zero in every object.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum TimeFieldPlant {
    #[default]
    AsProfile,
    Moved(ObjectKind),
    Zero(ObjectKind),
}

#[derive(Clone)]
pub struct SynthOptions {
    pub profile: Profile,
    pub container: Container,
    pub seed: u64,
    pub size: Option<u64>,
    /// x86: PAE page tables (the default) or classic 2-level ones.
    pub pae: bool,
    /// The NT build the kernel reports; `None`: the profile's representative release
    /// (`plan::representative_build`). Must lie inside the profile's build range.
    pub build: Option<u32>,
    pub extra_endpoints: usize,
    pub isf_dir: Option<PathBuf>,
    pub out: PathBuf,
    pub time_field: TimeFieldPlant,
    /// tcpip.sys gets a GUID-age of the built-in symbol table where it has the build (false:
    /// `--no-tcpip-symbols`, a random GUID, so only the pool-tag route finds the tables).
    pub tcpip_symbols: bool,
    /// `--hide-build`: no source in the image gives the NT build or tcpip.sys's FileVersion (as
    /// on images whose kernel pages were paged out); raw-like containers only.
    pub hide_build: bool,
}

/// One planted difference between memory and the captures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Discrepancy {
    pub class: String,
    pub memory: Option<EndpointRecord>,
    pub capture: Option<CaptureRow>,
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// `truth.json` (contract in docs/internals.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub image: ImageFacts,
    pub profile: String,
    pub endpoints: Vec<EndpointRecord>,
    pub decoys: Vec<EndpointRecord>,
    pub discrepancies: Vec<Discrepancy>,
    pub captures: BTreeMap<String, String>,
    /// tcpip.sys and its tables, where the profile has `tcpip.tables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcpip: Option<TcpipTruth>,
}

/// tcpip.sys as planted (truth.json `tcpip`): identity, globals and every table's chains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpipTruth {
    pub base: Hex,
    /// SizeOfImage.
    pub size: Hex,
    pub pdb: PdbId,
    pub file_version: String,
    /// `builtin`: the GUID-age is in symbols/tcpip.json; `none`: random (`--no-tcpip-symbols`, or
    /// a build the table lacks), so only the pool-tag route finds the tables.
    pub symbols: String,
    /// RVAs of the globals, by symbol name.
    pub globals: BTreeMap<String, Hex>,
    pub tables: Vec<TableTruth>,
}

/// One table: `partition N endpoints` / `partition N second` (hash tables: one chain per
/// non-empty bucket, in bucket order) or `tcp port pool` / `udp port pool` (one chain per port,
/// in port order); each chain lists its records' `physical_offset`s in walk order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableTruth {
    pub table: String,
    /// The hash table's or the port pool's VA.
    pub va: Hex,
    pub chains: Vec<Vec<Hex>>,
}

const DEFAULT_SIZE: u64 = 32 << 20;
const MIN_SIZE: u64 = 16 << 20;

/// Refuses layouts the writer cannot lay out: an object that does not fit in one pool page, or
/// structure offsets past the size the writer allocates for them.
fn check_profile(p: &Profile) -> Result<()> {
    use objects::Kind;
    let unit = p.arch.pool_header_size();
    for kind in [Kind::TcpE, Kind::TcpL, Kind::UdpA, Kind::TcTW] {
        let body = objects::body_size(p, kind);
        if body + 4 * unit > phys::PAGE {
            return Err(Error::usage(format!(
                "profile {}: a {kind:?} object needs {body:#x} bytes, more than one pool page",
                p.name
            )));
        }
    }
    let t = &p.tcpip;
    let small = [
        t.inetaf_address_family.off(),
        t.addrinfo_local.off(),
        t.addrinfo_remote.off(),
        t.local_address_p_data.off(),
        t.win10_udp_p_data.as_ref().and_then(|f| f.off()),
    ];
    if small.iter().flatten().any(|&o| o > 0x400) {
        return Err(Error::usage(format!(
            "profile {}: an address-structure offset is larger than 0x400",
            p.name
        )));
    }
    if let Some(tables) = &t.tables {
        check_table_fields(p, tables)?;
    }
    let e = &p.nt.eprocess;
    let fields = p.nt.process_offsets();
    if fields.iter().flatten().any(|&o| o > 0x2000) || e.size.is_some_and(|s| s.get() > 0x2000) {
        return Err(Error::usage(format!(
            "profile {}: an _EPROCESS offset is larger than 0x2000",
            p.name
        )));
    }
    Ok(())
}

/// Refuses a profile whose table links (TcpE's hash link, TcpL's and UdpA's `Next`) would overwrite
/// a field the object layout uses: planting both would corrupt one (a hand-shifted layout whose
/// table facts no longer apply must say `"tables": null`).
fn check_table_fields(p: &Profile, tables: &crate::profile::TablesLayout) -> Result<()> {
    let ps = p.arch.pointer_size();
    let t = &p.tcpip;
    let used = |fields: &[(&crate::profile::Field, u64)]| -> Vec<(u64, u64)> {
        fields
            .iter()
            .flat_map(|(f, len)| f.candidates().map(move |o| (o, o + len)))
            .collect()
    };
    let e = &t.tcp_endpoint;
    let l = &t.tcp_listener;
    let u = &t.udp_endpoint;
    let checks = [
        (
            "TcpE hash link",
            &tables.tcp_endpoint_link,
            2 * ps,
            used(&[
                (&e.inet_af, ps),
                (&e.addr_info, ps),
                (&e.state, 4),
                (&e.local_port, 2),
                (&e.remote_port, 2),
                (&e.owner, ps),
                (&e.create_time, 8),
            ]),
        ),
        (
            "TcpL Next",
            &tables.tcp_listener_next,
            ps,
            used(&[
                (&l.inet_af, ps),
                (&l.owner, ps),
                (&l.create_time, 8),
                (&l.local_addr, ps),
                (&l.port, 2),
            ]),
        ),
        (
            "UdpA Next",
            &tables.udp_endpoint_next,
            ps,
            used(&[
                (&u.inet_af, ps),
                (&u.owner, ps),
                (&u.create_time, 8),
                (&u.local_addr, ps),
                (&u.port, 2),
            ]),
        ),
    ];
    for (what, link, len, fields) in checks {
        let Some(at) = link.off() else { continue };
        if let Some((a, b)) = fields.iter().find(|(a, b)| at < *b && *a < at + len) {
            return Err(Error::usage(format!(
                "profile {}: the {what} at {at:#x} overlaps a field at {a:#x}..{b:#x}; a layout whose table facts do not apply must set tcpip.tables to null",
                p.name
            )));
        }
    }
    Ok(())
}

/// `p` with `kind`'s CreateTime at the first 8-aligned offset past the layout's other fields: the
/// image holds the time where the built-in profile (which the scan uses) does not look.
fn time_field_moved(p: &Profile, kind: ObjectKind) -> Result<Profile> {
    let mut moved = p.clone();
    let synth_kind = objects::Kind::of(kind);
    let base = match kind {
        ObjectKind::TimeWait => p
            .tcpip
            .time_wait
            .as_ref()
            .map_or(0, |l| l.body_offset.get()),
        _ => 0,
    };
    let t = &mut moved.tcpip;
    let field = match kind {
        ObjectKind::TcpEndpoint => Some(&mut t.tcp_endpoint.create_time),
        ObjectKind::TcpListener => Some(&mut t.tcp_listener.create_time),
        ObjectKind::UdpEndpoint => Some(&mut t.udp_endpoint.create_time),
        ObjectKind::TimeWait => t.time_wait.as_mut().map(|l| &mut l.create_time),
    };
    let Some(field) = field.filter(|f| f.off().is_some()) else {
        return Err(Error::usage(format!(
            "--move-time-field {}: profile {} has no create-time field there to move",
            kind.name(),
            p.name
        )));
    };
    let end = objects::body_size(p, synth_kind) - base;
    let offset = u32::try_from(end.div_ceil(8) * 8)
        .map_err(|_| Error::usage("--move-time-field: the layout is too large"))?;
    field.offset = Some(crate::profile::Off(offset));
    field.alternatives.clear();
    Ok(moved)
}

/// Writes the image, `truth.json`, the captures (and the ISF with `isf_dir`) into `out`.
pub fn synthesize(o: &SynthOptions) -> Result<Truth> {
    let size = o.size.unwrap_or(DEFAULT_SIZE) / phys::PAGE * phys::PAGE;
    if size < MIN_SIZE {
        return Err(Error::usage(format!(
            "--size {size} is too small: synth needs at least {MIN_SIZE} bytes (16 MiB)"
        )));
    }
    if o.profile.arch == Arch::X64 && !o.pae {
        return Err(Error::usage("--no-pae applies to x86 profiles only"));
    }
    if o.profile.arch == Arch::X86 && !o.pae && size > 4 << 30 {
        return Err(Error::usage(
            "non-PAE x86 addresses at most 4 GiB of physical memory",
        ));
    }
    if o.profile.arch == Arch::X86 && size > 64 << 30 {
        return Err(Error::usage(
            "x86 PAE addresses at most 64 GiB of physical memory",
        ));
    }
    if let TimeFieldPlant::Zero(kind) = o.time_field {
        let has_field = crate::profile::kind_fields(&o.profile, kind)
            .is_some_and(|f| f.create_time.off().is_some());
        if !has_field {
            return Err(Error::usage(format!(
                "--zero-time-field {}: profile {} has no create-time field there",
                kind.name(),
                o.profile.name
            )));
        }
    }
    let moved;
    let o = match o.time_field {
        TimeFieldPlant::Moved(kind) => {
            moved = SynthOptions {
                profile: time_field_moved(&o.profile, kind)?,
                ..o.clone()
            };
            &moved
        }
        _ => o,
    };
    check_profile(&o.profile)?;
    if let Some(build) = o.build {
        let m = &o.profile.matches;
        if !(m.build_min..=m.build_max).contains(&build) {
            return Err(Error::usage(format!(
                "--build {build} is outside profile {}'s build range {}-{}",
                o.profile.name, m.build_min, m.build_max
            )));
        }
    }
    if o.hide_build && matches!(o.container, Container::Crashdump | Container::Hiberfil) {
        return Err(Error::usage(format!(
            "--hide-build: a {} header records the build; use a container without one",
            o.container.kind()
        )));
    }
    // Each extra endpoint takes about 2 KiB of pool (object, address structures, slack); keep
    // the pool well inside physical memory so that frames stay scattered.
    let need = (o.extra_endpoints as u64).saturating_mul(0x800) + (4 << 20);
    if need > size / 2 {
        return Err(Error::usage(format!(
            "--size {size} is too small for {} extra endpoints (give at least {} bytes)",
            o.extra_endpoints,
            need.saturating_mul(2)
        )));
    }
    std::fs::create_dir_all(&o.out).map_err(|e| io_error(&o.out, &e))?;
    let built = plan::build(o, size)?;
    plan::write_outputs(o, built)
}
