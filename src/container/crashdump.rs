//! Windows crash dumps (`PAGEDUMP` 32-bit, `PAGEDU64` 64-bit): full dumps with a run list, bitmap
//! dumps (`SDMP`/`FDMP`) and the newer `RDMP` range dumps. Triage/mini dumps carry no physical
//! memory map and are refused with a clear message.
use super::pages::{self, PageBitmap};
use super::{Backing, ContainerHints, PhysicalSpace, Run, Storage};
use crate::arch::Arch;
use crate::bytes::ReadBytes;
use crate::error::{Cause, Error, Result};
use std::path::Path;

const PAGE: u64 = 0x1000;
/// Windows fills unused header fields with the ASCII `PAGE`.
const FILLER: u32 = 0x4547_4150;

/// Header field offsets that differ between the 32- and 64-bit layouts.
struct Layout {
    header_size: u64,
    wide: bool,
    dtb: usize,
    ps_loaded_module_list: usize,
    ps_active_process_head: usize,
    machine: usize,
    pae: Option<usize>,
    kdbg: usize,
    runs: usize,
    dump_type: usize,
    system_time: usize,
    max_runs: u64,
}

const LAYOUT32: Layout = Layout {
    header_size: 0x1000,
    wide: false,
    dtb: 0x10,
    ps_loaded_module_list: 0x18,
    ps_active_process_head: 0x1C,
    machine: 0x20,
    pae: Some(0x5C),
    kdbg: 0x60,
    runs: 0x64,
    dump_type: 0xF88,
    system_time: 0xFC0,
    max_runs: 86,
};

const LAYOUT64: Layout = Layout {
    header_size: 0x2000,
    wide: true,
    dtb: 0x10,
    ps_loaded_module_list: 0x20,
    ps_active_process_head: 0x28,
    machine: 0x30,
    pae: None,
    kdbg: 0x80,
    runs: 0x88,
    dump_type: 0xF98,
    system_time: 0xFA8,
    max_runs: 42,
};

impl Layout {
    fn of(bytes: &[u8]) -> &'static Layout {
        if bytes.starts_with(b"PAGEDU64") {
            &LAYOUT64
        } else {
            &LAYOUT32
        }
    }
}

/// True if the bytes start like a Windows crash dump.
pub fn detect(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PAGEDUMP") || bytes.starts_with(b"PAGEDU64")
}

/// The `DUMP_HEADER32`/`DUMP_HEADER64` fields netcarve uses, read once. Pointer-sized fields are
/// zero-extended on 32-bit dumps; `PAGE` filler is left for [`set`] to drop.
struct DumpHeader {
    layout: &'static Layout,
    /// MinorVersion: the NT build number.
    build: u32,
    dtb: u64,
    ps_loaded_module_list: u64,
    ps_active_process_head: u64,
    machine: u32,
    /// PaeEnabled (32-bit dumps only).
    pae: Option<bool>,
    kdbg: u64,
    /// PhysicalMemoryBlock's NumberOfRuns and NumberOfPages.
    run_count: u32,
    declared_pages: u64,
    dump_type: u32,
    system_time: u64,
}

impl DumpHeader {
    /// `None` when `bytes` is shorter than the layout's header.
    fn parse(bytes: &[u8]) -> Option<DumpHeader> {
        let layout = Layout::of(bytes);
        if (bytes.len() as u64) < layout.header_size {
            return None;
        }
        let width = if layout.wide { 8 } else { 4 };
        let ptr = |off: usize| bytes.read_word(off as u64, width);
        let runs = layout.runs as u64;
        Some(DumpHeader {
            layout,
            build: bytes.read_u32(0xC)?,
            dtb: ptr(layout.dtb)?,
            ps_loaded_module_list: ptr(layout.ps_loaded_module_list)?,
            ps_active_process_head: ptr(layout.ps_active_process_head)?,
            machine: bytes.read_u32(layout.machine as u64)?,
            pae: match layout.pae {
                Some(off) => Some(bytes.read_u8(off as u64)? != 0),
                None => None,
            },
            kdbg: ptr(layout.kdbg)?,
            run_count: bytes.read_u32(runs)?,
            // NumberOfPages is a u64 at 0x90 on 64-bit dumps (a u32 pad sits at 0x8C), a u32 at
            // 0x68 on 32-bit ones.
            declared_pages: bytes.read_word(runs + width, width)?,
            dump_type: bytes.read_u32(layout.dump_type as u64)?,
            system_time: bytes.read_u64(layout.system_time as u64)?,
        })
    }
}

/// A header field Windows set: neither zero nor `PAGE` filler.
fn set(v: u64) -> Option<u64> {
    (v != 0 && v != u64::from(FILLER) && v != 0x4547_4150_4547_4150).then_some(v)
}

pub fn open(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let bytes = backing.bytes();
    let Some(header) = DumpHeader::parse(bytes) else {
        let layout = Layout::of(bytes);
        return Err(Error::cause(
            path,
            Cause::HeaderSize {
                what: if layout.wide {
                    "64-bit crash dump header"
                } else {
                    "32-bit crash dump header"
                },
                expected: layout.header_size,
                actual: bytes.len() as u64,
            },
        ));
    };
    let layout = header.layout;
    let bits = if layout.wide { 64 } else { 32 };
    let machine = header.machine;
    let arch = match machine {
        0x14C => Arch::X86,
        0x8664 => Arch::X64,
        0xAA64 => {
            return Err(Error::cause(
                path,
                Cause::UnsupportedArch("ARM64 crash dump (MachineImageType 0xAA64)".into()),
            ))
        }
        other => {
            return Err(Error::cause(
                path,
                Cause::UnsupportedArch(format!("crash dump MachineImageType {other:#x}")),
            ))
        }
    };
    if layout.wide != (arch == Arch::X64) {
        return Err(Error::cause(
            path,
            Cause::Malformed(format!(
                "crash dump header is {bits}-bit but MachineImageType is {machine:#x}"
            )),
        ));
    }
    let dump_type = header.dump_type;
    let mut warnings = vec![];
    let (storage, kind) = match dump_type {
        1 => (
            Storage::Runs(full_runs(bytes, &header, path, &mut warnings)?),
            "crashdump-full",
        ),
        5 | 6 => (bitmap_storage(bytes, layout, path)?, "crashdump-bitmap"),
        8..=0xA => (
            Storage::Runs(rdmp_runs(bytes, layout, dump_type, path)?),
            "crashdump-rdmp",
        ),
        2 => {
            return Err(Error::cause(
                path,
                Cause::Unsupported("crash dump type 2 (summary dump) is not supported: its physical memory map format is undocumented".into()),
            ))
        }
        4 => {
            return Err(Error::cause(
                path,
                Cause::Unsupported("triage (mini) crash dump: it has no physical memory map, so endpoints cannot be carved from it".into()),
            ))
        }
        other => {
            return Err(Error::cause(
                path,
                Cause::Unsupported(format!(
                    "crash dump type {other:#x} has no physical memory map netcarve can read"
                )),
            ))
        }
    };
    let build = header.build;
    let hints = ContainerHints {
        arch: Some(arch),
        pae: header.pae,
        dtb: set(header.dtb),
        nt_build: (build != 0 && build != FILLER).then_some(build),
        system_time: set(header.system_time),
        ps_active_process_head: set(header.ps_active_process_head),
        ps_loaded_module_list: set(header.ps_loaded_module_list),
        kd_debugger_data_block: set(header.kdbg),
    };
    let mut space = PhysicalSpace::from_storage(backing, storage, kind, path)?;
    space.hints = hints;
    space.warnings.extend(warnings);
    Ok(space)
}

/// DumpType 1: the PhysicalMemoryBlock run list; pages packed back to back after the header.
fn full_runs(
    bytes: &[u8],
    header: &DumpHeader,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Run>> {
    let layout = header.layout;
    let count = header.run_count;
    if count == FILLER || count == u32::MAX {
        return Err(Error::cause(
            path,
            Cause::Malformed(format!(
                "full crash dump has no usable run list (NumberOfRuns {count:#x})"
            )),
        ));
    }
    if count == 0 {
        return Err(Error::cause(
            path,
            Cause::Malformed("full crash dump has an empty run list".into()),
        ));
    }
    if u64::from(count) > layout.max_runs {
        return Err(Error::cause(
            path,
            Cause::Malformed(format!(
                "full crash dump declares {count} runs; the header holds at most {}",
                layout.max_runs
            )),
        ));
    }
    let (first, entry) = if layout.wide {
        (layout.runs + 0x10, 16)
    } else {
        (layout.runs + 8, 8)
    };
    let mut runs = Vec::with_capacity(count as usize);
    let mut file_offset = layout.header_size;
    for i in 0..count as usize {
        let at = (first + i * entry) as u64;
        let width = entry as u64 / 2;
        let (base, pages) = (
            bytes.read_word(at, width),
            bytes.read_word(at + width, width),
        );
        let (Some(base), Some(pages)) = (base, pages) else {
            return Err(Error::cause(path, Cause::Truncated("crash dump run list")));
        };
        let bad = || {
            Error::cause(
                path,
                Cause::Malformed(format!("crash dump run {i} is out of range")),
            )
        };
        let phys = base.checked_mul(PAGE).ok_or_else(bad)?;
        let len = pages.checked_mul(PAGE).ok_or_else(bad)?;
        runs.push(Run {
            phys,
            len,
            file_offset,
        });
        file_offset = file_offset.checked_add(len).ok_or_else(bad)?;
    }
    // The runs are authoritative; a disagreement is worth a note.
    let declared = header.declared_pages;
    let listed = (file_offset - layout.header_size) / PAGE;
    if declared != listed {
        warnings.push(format!(
            "crash dump header declares {declared} pages but its runs hold {listed}"
        ));
    }
    if file_offset > bytes.len() as u64 {
        return Err(Error::cause(
            path,
            Cause::DataSize {
                what: "crash dump runs",
                expected: u128::from(file_offset),
                actual: bytes.len() as u64,
            },
        ));
    }
    Ok(runs)
}

/// DumpType 5/6: an `SDMP`/`FDMP` bitmap; present pages stored in ascending PFN order from
/// FirstPage. Looked up through the bitmap itself (`pages`), unless the bitmap is so sparse that
/// its running totals would take more memory than a list of its runs.
fn bitmap_storage(bytes: &[u8], layout: &Layout, path: &Path) -> Result<Storage> {
    let hdr = layout.header_size as usize;
    let sig = bytes.get(hdr..hdr + 4);
    if sig != Some(b"SDMP") && sig != Some(b"FDMP") {
        return Err(Error::cause(
            path,
            Cause::Malformed(format!(
                "bitmap crash dump without an SDMP/FDMP header at {hdr:#x}"
            )),
        ));
    }
    // `SDMP`/`FDMP` header: FirstPage (file offset of the first stored page) at +0x20, the
    // bitmap's size in bits at +0x30, the bitmap from +0x38.
    let at = hdr as u64;
    let (Some(first_page), Some(bits)) = (bytes.read_u64(at + 0x20), bytes.read_u64(at + 0x30))
    else {
        return Err(Error::cause(
            path,
            Cause::Truncated("bitmap crash dump header"),
        ));
    };
    if first_page > bytes.len() as u64 {
        return Err(Error::cause(
            path,
            Cause::Malformed(format!(
                "bitmap crash dump's first page {first_page:#x} lies past the end of the file"
            )),
        ));
    }
    let bitmap_len = bits.div_ceil(8);
    let bitmap_start = hdr + 0x38;
    let bitmap = usize::try_from(bitmap_len)
        .ok()
        .and_then(|n| bytes.get(bitmap_start..bitmap_start.checked_add(n)?))
        .ok_or_else(|| {
            Error::cause(
                path,
                Cause::Malformed(format!(
                    "bitmap of {bits} pages runs past the end of the file"
                )),
            )
        })?;
    // Checked before anything is allocated: a hostile bitmap can claim more pages than the file
    // holds.
    let (present, runs) = pages::census(bitmap, bits);
    let needed = present
        .checked_mul(PAGE)
        .and_then(|n| n.checked_add(first_page));
    if needed.is_none_or(|n| n > bytes.len() as u64) {
        return Err(Error::cause(
            path,
            Cause::DataSize {
                what: "bitmap crash dump pages",
                expected: u128::from(present) * u128::from(PAGE) + u128::from(first_page),
                actual: bytes.len() as u64,
            },
        ));
    }
    if pages::index_bytes(bits) <= runs.saturating_mul(std::mem::size_of::<Run>() as u64) {
        return Ok(Storage::Pages(PageBitmap::new(
            bytes,
            bitmap_start,
            bits,
            first_page,
        )));
    }
    let mut list: Vec<Run> = Vec::with_capacity(usize::try_from(runs).unwrap_or(0));
    let mut file_offset = first_page;
    pages::for_each_run(bitmap, 0, bits, |start, end| {
        let len = (end - start) * PAGE;
        list.push(Run {
            phys: start * PAGE,
            len,
            file_offset,
        });
        file_offset += len;
    });
    Ok(Storage::Runs(list))
}

/// DumpType 8/9/0xA (`RDMP`): {Pfn, Count} ranges packed from FirstPageOffset (crashdump-formats.md
/// section 4; reverse-engineered by others, so every field is checked).
fn rdmp_runs(bytes: &[u8], layout: &Layout, dump_type: u32, path: &Path) -> Result<Vec<Run>> {
    let hdr = layout.header_size as usize;
    if bytes.get(hdr + 4..hdr + 8) != Some(b"RDMP") {
        return Err(Error::cause(
            path,
            Cause::Malformed(format!(
                "crash dump type {dump_type:#x} without an RDMP header"
            )),
        ));
    }
    let trunc = || Error::cause(path, Cause::Truncated("RDMP crash dump header"));
    let at = hdr as u64;
    let metadata_size = bytes.read_u64(at + 0x10).ok_or_else(trunc)?;
    let first_page = bytes.read_u64(at + 0x18).ok_or_else(trunc)?;
    if metadata_size.checked_sub(0x20) != first_page.checked_sub(0x2040) {
        return Err(Error::cause(
            path,
            Cause::Malformed(
                "RDMP header is inconsistent (MetadataSize does not match FirstPageOffset)".into(),
            ),
        ));
    }
    let total_pages = (dump_type == 0xA)
        .then(|| bytes.read_u64(at + 0x28))
        .flatten();
    let mut runs = vec![];
    let mut file_offset = first_page;
    let mut stored = 0u64;
    let mut at = at + 0x40;
    while at < first_page {
        let (Some(pfn), Some(count)) = (bytes.read_u64(at), bytes.read_u64(at + 8)) else {
            return Err(trunc());
        };
        if pfn == 0 || total_pages.is_some_and(|t| stored >= t) {
            break;
        }
        let bad = || Error::cause(path, Cause::Malformed("RDMP range out of range".into()));
        let len = count.checked_mul(PAGE).ok_or_else(bad)?;
        runs.push(Run {
            phys: pfn.checked_mul(PAGE).ok_or_else(bad)?,
            len,
            file_offset,
        });
        file_offset = file_offset.checked_add(len).ok_or_else(bad)?;
        stored = stored.saturating_add(count);
        at += 16;
    }
    Ok(runs)
}
