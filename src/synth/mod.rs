//! `netcarve synth`: Windows memory images with known ground truth.
//!
//! The writer lays every byte out from the profile's numbers with its own page-table, kernel and
//! container writers; it never calls the reader (`container`, `paging`, `kernel`, `scan`,
//! `endpoint`), so a misreading cannot hide in both directions at once. It shares only the record
//! types (`record.rs`) and the profile schema with the reader.
pub mod captures;
pub mod containers;
pub mod isf;
pub mod kernel;
pub mod objects;
pub mod phys;
pub mod plan;
pub mod rng;
pub mod vmap;

use crate::error::{io_error, Error, Result};
use crate::profile::{Arch, Profile};
use crate::record::{CaptureRow, EndpointRecord, ImageFacts};
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
        }
    }
    pub fn file_name(self) -> &'static str {
        match self {
            Container::Raw => "memory.raw",
            Container::Crashdump | Container::Bitmap => "memory.dmp",
            Container::Elf => "memory.elf",
            Container::Lime => "memory.lime",
            Container::Vmware => "memory.vmem",
        }
    }
}

pub struct SynthOptions {
    pub profile: Profile,
    pub container: Container,
    pub seed: u64,
    pub size: Option<u64>,
    /// x86: PAE page tables (the default) or classic 2-level ones.
    pub pae: bool,
    pub extra_endpoints: usize,
    pub isf_dir: Option<PathBuf>,
    pub out: PathBuf,
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
}

pub const DEFAULT_SIZE: u64 = 32 << 20;
pub const MIN_SIZE: u64 = 16 << 20;

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
    std::fs::create_dir_all(&o.out).map_err(|e| io_error(&o.out, &e))?;
    let built = plan::build(o, size)?;
    plan::write_outputs(o, built)
}
