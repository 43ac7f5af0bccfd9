//! Kernel identification: DTB discovery, the kernel image and its CodeView id, NT version and build,
//! KUSER_SHARED_DATA facts (acquisition time, boot time, time-zone bias).
use crate::arch::Arch;
use crate::bytes::{array_at, ReadBytes};
use crate::container::{ContainerHints, PhysicalSpace};
use crate::error::{Cause, Error, Result};
use crate::paging::{AddressSpace, PagingMode, VirtualMemory};
use crate::record::{BuildReading, NtVersion, PdbId};

mod build;

/// What `identify` learned about the kernel in an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    pub arch: Arch,
    pub mode: PagingMode,
    pub dtb: u64,
    /// `crashdump-header`, `low-stub`, `self-map-scan`, `user`.
    pub dtb_source: String,
    pub kernel_base: Option<u64>,
    /// The kernel image's SizeOfImage.
    pub kernel_size: Option<u64>,
    pub pdb: Option<PdbId>,
    pub nt: NtVersion,
    /// Every build source tried and what it gave (`nt.build` is the first one's that gave one).
    pub build_readings: Vec<BuildReading>,
    /// VA of the plaintext KDBG block in the kernel image (Windows 8+ x64 encode it: none).
    pub kdbg: Option<u64>,
    /// KUSER_SHARED_DATA SystemTime: the acquisition time (FILETIME).
    pub system_time: Option<u64>,
    /// KUSER_SHARED_DATA InterruptTime: 100 ns since boot.
    pub interrupt_time: Option<u64>,
    /// UTC = local + bias; in minutes.
    pub timezone_bias_minutes: Option<i64>,
    /// tcpip.sys FileVersion (dotted), when it was looked for and found.
    pub tcpip_version: Option<String>,
    pub warnings: Vec<String>,
}

impl KernelInfo {
    /// Boot time = acquisition time − interrupt time.
    pub fn boot_time(&self) -> Option<u64> {
        Some(self.system_time?.saturating_sub(self.interrupt_time?))
    }
}

/// KUSER_SHARED_DATA's fixed kernel address per architecture.
pub const KUSER_X64: u64 = 0xFFFF_F780_0000_0000;
pub const KUSER_X86: u64 = 0xFFDF_0000;
const KUSER_INTERRUPT_TIME: u64 = 0x8;
const KUSER_SYSTEM_TIME: u64 = 0x14;
const KUSER_TIME_ZONE_BIAS: u64 = 0x20;
const KUSER_NT_BUILD_NUMBER: u64 = 0x260;
const KUSER_NT_MAJOR: u64 = 0x26C;
const KUSER_NT_MINOR: u64 = 0x270;
const KERNEL_PDB_NAMES: [&str; 4] = [
    "ntkrnlmp.pdb",
    "ntoskrnl.pdb",
    "ntkrnlpa.pdb",
    "ntkrpamp.pdb",
];
/// VS_FIXEDFILEINFO.dwSignature.
const VS_FIXEDFILEINFO_SIGNATURE: [u8; 4] = 0xFEEF_04BDu32.to_le_bytes();
/// Caps on work done for hostile or huge images.
/// Mapped pages the kernel-image search looks at, at most (4 GiB of distinct mappings); this also
/// bounds the candidate lists (8 MiB of addresses at most).
const MZ_PAGE_BUDGET: usize = 1 << 20;
/// Bytes all kernel candidates of one search may read in total (a candidate reads its header page
/// and at most 16 debug entries and 16 CodeView records, 21 KiB): about 200,000 of the costliest
/// candidates, a second or so. A well-formed image finds its kernel among the first few.
const CANDIDATE_READ_BUDGET: u64 = 4 << 30;
/// The wall-clock budget of one kernel-image search (the time spent examining candidates, not the
/// walks and whole-image passes between), looked at only once this many candidates have been
/// examined: a normal image (even on a slow disk, or compressed) finds its kernel long before that
/// many, so results never depend on the machine's speed; only page tables offering a pathological
/// number of candidates can reach it.
const CANDIDATE_TIME_CHECK_AFTER: usize = 1 << 14;
const CANDIDATE_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(4);
const MAX_IMAGE_SIZE: u64 = 64 << 20;
/// A kernel with a damaged header has no SizeOfImage: its CodeView record is looked for in this
/// much of it, and the sources read from the image (build, KDBG) search as far.
const DAMAGED_HEADER_SPAN: u64 = 16 << 20;
/// Damaged-header candidates examined, at most (2 MiB-aligned ones in the kernel range first).
const MAX_DAMAGED_CANDIDATES: usize = 8;
/// `IMAGE_DEBUG_DIRECTORY` entry size, and the entries and CodeView bytes read per candidate.
const DEBUG_ENTRY: usize = 28;
const MAX_DEBUG_ENTRIES: usize = 16;
const MAX_CODEVIEW: usize = 0x400;
const MAX_TAG_HITS: usize = 256;
/// Top-level page tables are looked for below this first (see `self_map_scan`).
const LOW_TABLES_END: u64 = 16 << 20;
/// `tcpip.sys` appears in many strings (driver lists, paths); the resource may come late.
const MAX_TCPIP_NAME_HITS: usize = 1 << 14;

fn kuser_va(mode: PagingMode) -> u64 {
    match mode {
        PagingMode::X64 => KUSER_X64,
        _ => KUSER_X86,
    }
}

fn arch_of(mode: PagingMode) -> Arch {
    match mode {
        PagingMode::X64 => Arch::X64,
        _ => Arch::X86,
    }
}

/// NT major/minor when `dtb` in `mode` maps a plausible KUSER_SHARED_DATA.
fn validate(phys: &PhysicalSpace, dtb: u64, mode: PagingMode) -> Option<(u32, u32)> {
    let space = AddressSpace::new(phys, dtb, mode);
    let kuser = kuser_va(mode);
    let major = space.read_u32(kuser + KUSER_NT_MAJOR)?;
    let minor = space.read_u32(kuser + KUSER_NT_MINOR)?;
    let sane = match major {
        6 => minor <= 3,
        10 => minor == 0,
        _ => false,
    };
    sane.then_some((major, minor))
}

/// Paging modes worth trying given the container's hints (x86 dumps say whether PAE is on).
fn modes_for(hints: &ContainerHints) -> Vec<PagingMode> {
    match (hints.arch, hints.pae) {
        (Some(Arch::X64), _) => vec![PagingMode::X64],
        (Some(Arch::X86), Some(true)) => vec![PagingMode::Pae],
        (Some(Arch::X86), Some(false)) => vec![PagingMode::NonPae],
        (Some(Arch::X86), None) => vec![PagingMode::Pae, PagingMode::NonPae],
        (None, _) => vec![PagingMode::X64, PagingMode::Pae, PagingMode::NonPae],
    }
}

struct Found {
    dtb: u64,
    mode: PagingMode,
    source: &'static str,
    version: Option<(u32, u32)>,
}

/// Identifies the kernel of an image. `dtb_override` is `--dtb`.
pub fn identify(phys: &PhysicalSpace, dtb_override: Option<u64>) -> Result<KernelInfo> {
    identify_within(phys, dtb_override, &SearchLimits::default())
}

/// The budgets of the kernel-image search. Every command uses the default; the fuzz targets use
/// tight ones, so that inputs of a few KiB reach the code that gives up.
#[derive(Clone, Debug)]
pub struct SearchLimits {
    /// Mapped pages looked at for `MZ`, per walk of the kernel mappings.
    pub mz_pages: usize,
    /// Bytes all candidates of one search may read.
    pub candidate_bytes: u64,
    /// The clock is looked at only once this many candidates have been examined.
    pub time_check_after: usize,
    pub time_budget: std::time::Duration,
}

impl Default for SearchLimits {
    fn default() -> SearchLimits {
        SearchLimits {
            mz_pages: MZ_PAGE_BUDGET,
            candidate_bytes: CANDIDATE_READ_BUDGET,
            time_check_after: CANDIDATE_TIME_CHECK_AFTER,
            time_budget: CANDIDATE_TIME_BUDGET,
        }
    }
}

/// [`identify`] with other search budgets.
pub fn identify_within(
    phys: &PhysicalSpace,
    dtb_override: Option<u64>,
    limits: &SearchLimits,
) -> Result<KernelInfo> {
    let mut warnings = vec![];
    let modes = modes_for(&phys.hints);
    let found = find_dtb(phys, dtb_override, &modes, &mut warnings).ok_or_else(|| {
        Error::cause(
            &phys.path,
            Cause::NoKernel("no kernel directory table base found (no valid crash-dump DTB, low stub or self-referencing page table maps KUSER_SHARED_DATA); pass --dtb if you know it"),
        )
    })?;
    let mut found = found;
    let (mut kernel, search_warnings) = find_kernel_image(
        &AddressSpace::new(phys, found.dtb, found.mode),
        phys,
        limits,
    );
    warnings.extend(search_warnings);
    if kernel.is_none() && found.source == "crashdump-header" {
        // A header DTB can map KUSER_SHARED_DATA and still not be the full kernel view (e.g. a
        // KVA-shadow user CR3): try the tables found in memory before giving up on the kernel.
        let modes = modes_for(&phys.hints);
        let alternative = low_stub_dtb(phys).or_else(|| self_map_scan(phys, &modes));
        if let Some(alt) = alternative.filter(|a| a.dtb != found.dtb) {
            let (alt_kernel, _) =
                find_kernel_image(&AddressSpace::new(phys, alt.dtb, alt.mode), phys, limits);
            if alt_kernel.is_some() {
                warnings.push(format!(
                    "crash-dump header DTB {:#x} does not map the kernel image; using {:#x} ({})",
                    found.dtb, alt.dtb, alt.source
                ));
                found = alt;
                kernel = alt_kernel;
            }
        }
    }
    let space = AddressSpace::new(phys, found.dtb, found.mode);
    let kuser = kuser_va(found.mode);
    let (major, minor) = found.version.unwrap_or((0, 0));
    if found.version.is_none() {
        warnings.push("KUSER_SHARED_DATA is not readable with this DTB: NT version unknown".into());
    }
    // The dump header's SystemTime stands in when KUSER_SHARED_DATA is unreadable.
    let system_time = read_ksystem_time(&space, kuser + KUSER_SYSTEM_TIME, &mut warnings)
        .or(phys.hints.system_time);
    let interrupt_time = read_ksystem_time(&space, kuser + KUSER_INTERRUPT_TIME, &mut warnings);
    // TimeZoneBias is in 100 ns units; UTC = local + bias.
    let timezone_bias_minutes =
        read_ksystem_time(&space, kuser + KUSER_TIME_ZONE_BIAS, &mut warnings)
            .map(|b| (b as i64) / 600_000_000);
    if kernel.is_none() {
        warnings
            .push("kernel image (MZ with a CodeView record naming a kernel PDB) not found".into());
    }
    let readings = build::read_all(
        &space,
        kuser,
        major,
        phys.hints.nt_build,
        kernel.as_ref().map(|k| build::KernelSpan {
            base: k.base,
            size: k.size_of_image.unwrap_or(DAMAGED_HEADER_SPAN),
        }),
    );
    let build = readings.build();
    if build.is_none() {
        warnings.push("NT build number not found (no source in the image gave one)".into());
    }
    warnings.extend(readings.disagreement());
    let tcpip_version = if (major, minor) == (6, 3) {
        find_tcpip_version(phys)
    } else {
        None
    };
    Ok(KernelInfo {
        arch: arch_of(found.mode),
        mode: found.mode,
        dtb: found.dtb,
        dtb_source: found.source.to_string(),
        kernel_base: kernel.as_ref().map(|k| k.base),
        kernel_size: kernel.as_ref().and_then(|k| k.size_of_image),
        pdb: kernel.map(|k| k.pdb),
        nt: NtVersion {
            major,
            minor,
            build,
        },
        kdbg: readings.kdbg,
        build_readings: readings.readings,
        system_time,
        interrupt_time,
        timezone_bias_minutes,
        tcpip_version,
        warnings,
    })
}

/// `_KSYSTEM_TIME` {LowPart u32, High1Time i32, High2Time i32}.
struct KSystemTime {
    low: u32,
    high1: u32,
    high2: u32,
}

impl KSystemTime {
    fn read(mem: &impl ReadBytes, va: u64) -> Option<KSystemTime> {
        let mut raw = [0u8; 12];
        if !mem.read_into(va, &mut raw) {
            return None;
        }
        let b: &[u8] = &raw;
        Some(KSystemTime {
            low: b.read_u32(0)?,
            high1: b.read_u32(4)?,
            high2: b.read_u32(8)?,
        })
    }
}

/// The value of the `_KSYSTEM_TIME` at `va`. High1 != High2 means the kernel was writing it at the
/// moment of acquisition, and High1 is the value that goes with LowPart.
fn read_ksystem_time(space: &AddressSpace, va: u64, warnings: &mut Vec<String>) -> Option<u64> {
    let KSystemTime { low, high1, high2 } = KSystemTime::read(space, va)?;
    if high1 != high2 {
        warnings.push(format!(
            "_KSYSTEM_TIME at {va:#x} was being updated (High1Time {high1:#x} != High2Time {high2:#x})"
        ));
    }
    Some((u64::from(high1) << 32) | u64::from(low))
}

fn find_dtb(
    phys: &PhysicalSpace,
    dtb_override: Option<u64>,
    modes: &[PagingMode],
    warnings: &mut Vec<String>,
) -> Option<Found> {
    if let Some(dtb) = dtb_override {
        for &mode in modes {
            if let Some(v) = validate(phys, dtb, mode) {
                return Some(Found {
                    dtb,
                    mode,
                    source: "user",
                    version: Some(v),
                });
            }
        }
        warnings.push(format!(
            "--dtb {dtb:#x} does not map KUSER_SHARED_DATA; using it anyway as {}",
            modes.first().copied().unwrap_or(PagingMode::X64).name()
        ));
        return Some(Found {
            dtb,
            mode: modes.first().copied().unwrap_or(PagingMode::X64),
            source: "user",
            version: None,
        });
    }
    if let Some(dtb) = phys.hints.dtb {
        for &mode in modes {
            if let Some(v) = validate(phys, dtb, mode) {
                return Some(Found {
                    dtb,
                    mode,
                    source: "crashdump-header",
                    version: Some(v),
                });
            }
        }
        warnings.push(format!(
            "crash-dump header DTB {dtb:#x} does not map KUSER_SHARED_DATA; searching memory"
        ));
    }
    if modes.contains(&PagingMode::X64) {
        if let Some(f) = low_stub_dtb(phys) {
            return Some(f);
        }
    }
    self_map_scan(phys, modes)
}

/// The x64 PROCESSOR_START_BLOCK fields that identify it and give the kernel's CR3
/// (crashdump-formats.md section 6).
struct ProcessorStartBlock {
    /// The `Jmp` at +0 and the `CompletionFlag` after it.
    head: u64,
    /// `LmTarget`: the kernel entry the processor jumps to.
    lm_target: u64,
    /// `ProcessorState.SpecialRegisters.Cr3`.
    cr3: u64,
}

impl ProcessorStartBlock {
    fn read(phys: &PhysicalSpace, pa: u64) -> Option<ProcessorStartBlock> {
        let raw: &[u8] = &phys.read_array::<0xA8>(pa)?;
        Some(ProcessorStartBlock {
            head: raw.read_u64(0)?,
            lm_target: raw.read_u64(0x70)?,
            cr3: raw.read_u64(0xA0)?,
        })
    }
}

/// x64 PROCESSOR_START_BLOCK in the first MiB.
fn low_stub_dtb(phys: &PhysicalSpace) -> Option<Found> {
    for page in (0x1000..0xA0000u64).step_by(0x1000) {
        let Some(ProcessorStartBlock {
            head,
            lm_target: entry,
            cr3,
        }) = ProcessorStartBlock::read(phys, page)
        else {
            continue;
        };
        if head & 0xFFFF_FFFF_FFFF_00FF != 0x0000_0001_0006_00E9 {
            continue;
        }
        if entry & 0xFFFF_F800_0000_0003 != 0xFFFF_F800_0000_0000
            || cr3 & 0xFFFF_FF00_0000_0FFF != 0
        {
            continue;
        }
        if let Some(v) = validate(phys, cr3, PagingMode::X64) {
            return Some(Found {
                dtb: cr3,
                mode: PagingMode::X64,
                source: "low-stub",
                version: Some(v),
            });
        }
    }
    None
}

/// One pass over the present pages looking for a top-level table that maps itself: x64 PML4
/// (entry at any kernel-half index holding its own frame), non-PAE page directory (index 0x300,
/// VA 0xC0300000), PAE top page directory (index 3 of the PD for 0xC0000000, VA 0xC0600000).
/// Each page gets a few compares before anything is walked; candidates are validated on the spot.
fn self_map_scan(phys: &PhysicalSpace, modes: &[PagingMode]) -> Option<Found> {
    // Windows allocates the top-level tables of the boot process low (about 0x180000-0x1C0000):
    // looking there first keeps identification from reading the whole image.
    self_map_scan_in(phys, modes, 0..LOW_TABLES_END)
        .or_else(|| self_map_scan_in(phys, modes, 0..u64::MAX))
}

/// The present bytes of `run` that lie in `range`, with the physical address of the first.
fn run_part<'a>(
    phys: &'a PhysicalSpace,
    run: &crate::container::Run,
    range: &std::ops::Range<u64>,
) -> Option<(u64, std::borrow::Cow<'a, [u8]>)> {
    let part = run.clip_phys(range.start, range.end)?;
    Some((part.phys, phys.run_bytes(&part)))
}

/// `self_map_scan` over the physical addresses in `range` (PAE: the PDPT is looked for in the same
/// range).
fn self_map_scan_in(
    phys: &PhysicalSpace,
    modes: &[PagingMode],
    range: std::ops::Range<u64>,
) -> Option<Found> {
    let want_x64 = modes.contains(&PagingMode::X64);
    let want_pae = modes.contains(&PagingMode::Pae);
    let want_nonpae = modes.contains(&PagingMode::NonPae);
    // PAE: PD3 pages found, keyed by the frame of the PD they map at index 0 (= PDPT entry 0).
    let mut pae_pd3: Vec<(u64, [u64; 4])> = vec![];
    for run in phys.pass_runs() {
        let Some((run_start, bytes)) = run_part(phys, run, &range) else {
            continue;
        };
        let skip = ((0x1000 - (run_start & 0xFFF)) & 0xFFF) as usize;
        let Some(aligned) = bytes.get(skip..) else {
            continue;
        };
        for (i, page) in aligned.chunks_exact(0x1000).enumerate() {
            let pa = run_start + skip as u64 + (i as u64) * 0x1000;
            // `k` < 512 on a whole page: always present.
            let qword = |k: usize| page.read_u64(k as u64 * 8).unwrap_or_default();
            if want_x64 {
                let self_ref = (256..512).any(|k| {
                    let e = qword(k);
                    e & 1 != 0 && e & 0x0000_1FFF_FFFF_F000 == pa
                });
                if self_ref {
                    if let Some(v) = validate(phys, pa, PagingMode::X64) {
                        return Some(Found {
                            dtb: pa,
                            mode: PagingMode::X64,
                            source: "self-map-scan",
                            version: Some(v),
                        });
                    }
                }
            }
            if want_nonpae && pa <= 0xFFFF_F000 {
                let e = page.read_u32(0xC00).unwrap_or_default();
                if e & 1 != 0 && u64::from(e & 0xFFFF_F000) == pa {
                    if let Some(v) = validate(phys, pa, PagingMode::NonPae) {
                        return Some(Found {
                            dtb: pa,
                            mode: PagingMode::NonPae,
                            source: "self-map-scan",
                            version: Some(v),
                        });
                    }
                }
            }
            if want_pae {
                let e = qword(3);
                if e & 1 != 0 && e & 0x000F_FFFF_FFFF_F000 == pa && pae_pd3.len() < 1024 {
                    pae_pd3.push((pa, [qword(0), qword(1), qword(2), qword(3)]));
                }
            }
        }
    }
    if pae_pd3.is_empty() {
        return None;
    }
    find_pae_pdpt(phys, &pae_pd3, &range)
}

/// The PDPT (32-byte aligned, below 4 GiB) whose four entries name the same page directories as a
/// self-mapping PD3's first four entries.
fn find_pae_pdpt(
    phys: &PhysicalSpace,
    pd3s: &[(u64, [u64; 4])],
    range: &std::ops::Range<u64>,
) -> Option<Found> {
    let frame = |e: u64| e & 0x000F_FFFF_FFFF_F000;
    let mut by_pd0: std::collections::HashMap<u64, Vec<[u64; 4]>> = Default::default();
    for (_, entries) in pd3s {
        by_pd0.entry(frame(entries[0])).or_default().push(*entries);
    }
    for run in phys.pass_runs() {
        if run.phys >= 1 << 32 {
            break;
        }
        let Some((run_start, bytes)) = run_part(phys, run, range) else {
            continue;
        };
        let skip = ((32 - (run_start & 31)) & 31) as usize;
        let Some(aligned) = bytes.get(skip..) else {
            continue;
        };
        for (i, chunk) in aligned.chunks_exact(32).enumerate() {
            // `k` < 4 on a 32-byte chunk: always present.
            let e = |k: usize| chunk.read_u64(k as u64 * 8).unwrap_or_default();
            let e0 = e(0);
            if e0 & 1 == 0 {
                continue;
            }
            let Some(cands) = by_pd0.get(&frame(e0)) else {
                continue;
            };
            let pa = run_start + skip as u64 + (i as u64) * 32;
            if pa > 0xFFFF_FFE0 {
                break;
            }
            let matches = cands
                .iter()
                .any(|c| (0..4).all(|k| e(k) & 1 != 0 && frame(e(k)) == frame(c[k])));
            if matches {
                if let Some(v) = validate(phys, pa, PagingMode::Pae) {
                    return Some(Found {
                        dtb: pa,
                        mode: PagingMode::Pae,
                        source: "self-map-scan",
                        version: Some(v),
                    });
                }
            }
        }
    }
    None
}

struct KernelImage {
    base: u64,
    /// `None` when the PE header is damaged (found by its CodeView record alone).
    size_of_image: Option<u64>,
    pdb: PdbId,
}

/// Finds ntoskrnl in kernel space, cheapest evidence first so that identification stays bounded
/// on a well-formed image: the header's KDBG pointer, then `MZ` pages among the kernel mappings
/// where kernels are loaded (2 MiB-aligned ones first). Only when those fail does it pay for a
/// pass over all of physical memory (`KDBG` tags), and then the `MZ` pages elsewhere.
/// Also returns the search's warnings: each budget that stopped it (what was given up), and a
/// kernel found only through a damaged header.
fn find_kernel_image(
    space: &AddressSpace,
    phys: &PhysicalSpace,
    limits: &SearchLimits,
) -> (Option<KernelImage>, Vec<String>) {
    let mut budget = CandidateBudget::new(limits);
    let mz_budget = limits.mz_pages;
    if let Some(kdbg) = phys.hints.kd_debugger_data_block {
        let mut tag = [0u8; 4];
        if space.read_into(kdbg + 0x10, &mut tag) && &tag == b"KDBG" {
            if let Some(k) = space
                .read_ptr(kdbg + 0x18)
                .and_then(|base| kernel_at(space, base, &mut budget))
            {
                return (Some(k), vec![]);
            }
        }
    }
    // Where kernels are loaded: checked first, so that MZ pages elsewhere (drivers, file cache)
    // cannot use up the candidate budget.
    let usual = match space.mode {
        PagingMode::X64 => 0xFFFF_F800_0000_0000..0xFFFF_F808_0000_0000u64,
        _ => 0x8000_0000..0xC000_0000u64,
    };
    // Pages starting with `MZ` in the mappings walked, split into those in the usual range and
    // the others (each list capped).
    // Bounded work: a frame mapped again at other addresses (a hostile image maps one large page
    // a hundred thousand times) is looked at once, and at most MZ_PAGE_BUDGET pages in all.
    let budget_spent = std::cell::Cell::new(false);
    let mz_pages = |near: Option<std::ops::Range<u64>>| {
        let (mut preferred, mut others) = (vec![], vec![]);
        let mut examined = std::collections::HashSet::new();
        let mut pages = 0usize;
        space.kernel_mappings_near(near, |va, pa, size| {
            if !examined.insert((pa, size)) || pages >= mz_budget {
                budget_spent.set(budget_spent.get() || pages >= mz_budget);
                return;
            }
            let mut off = (0x1000 - (pa & 0xFFF)) & 0xFFF;
            while off + 2 <= size && pages < mz_budget {
                pages += 1;
                let list = if usual.contains(&(va + off)) {
                    &mut preferred
                } else {
                    &mut others
                };
                // A read, not a slice: compressed containers have no bytes to slice.
                // A sparse file's holes are zeros: not read, so not faulted into the page cache.
                let mut magic = [0u8; 2];
                if !phys.in_hole(pa + off)
                    && phys.read_into(pa + off, &mut magic)
                    && &magic == b"MZ"
                {
                    list.push(va + off);
                }
                off += 0x1000;
            }
        });
        // 2 MiB-aligned bases first: the kernel is loaded on a large-page boundary.
        preferred.sort_by_key(|&va| (va & 0x1F_FFFF != 0, va));
        others.sort_by_key(|&va| (va & 0x1F_FFFF != 0, va));
        (preferred, others)
    };
    // The tables over the usual range first: walking every mapping reads a byte of every mapped
    // page of the kernel half, which on a large image costs more than the rest of identification.
    let (preferred, _) = mz_pages(Some(usual.clone()));
    if let Some(k) = budget.first_kernel(space, &preferred) {
        return (Some(k), vec![]);
    }
    let kdbg_bases = kdbg_scan_bases(phys, space.mode.pointer_size());
    if let Some(k) = budget.first_kernel(space, &kdbg_bases) {
        return (Some(k), vec![]);
    }
    let (_, others) = mz_pages(None);
    let mut found = budget.first_kernel(space, &others);
    let mut search_warnings = vec![];
    if found.is_none() {
        let mut damaged = 0;
        found = preferred.iter().find_map(|&base| {
            if damaged >= MAX_DAMAGED_CANDIDATES {
                return None;
            }
            match damaged_kernel_at(space, base, &mut budget) {
                Damaged::Kernel(k) => Some(k),
                Damaged::NotKernel => {
                    damaged += 1;
                    None
                }
                Damaged::HeaderIntact => None,
            }
        });
        if let Some(k) = &found {
            search_warnings.push(format!(
                "the kernel image at {:#x} has a damaged PE header (MZ, but the headers do not parse): identified by its CodeView record naming {}; its size is unknown",
                k.base, k.pdb.name
            ));
        }
    }
    if budget_spent.get() {
        search_warnings.push(format!(
            "the kernel-image search stopped after {mz_budget} mapped pages (the page tables map more than an image can hold: hostile or damaged)"
        ));
    }
    if found.is_none() {
        search_warnings.extend(budget.given_up());
    }
    (found, search_warnings)
}

/// The work all kernel candidates of one search may do together: each candidate is cheap (see
/// `kernel_at`), but page tables can offer a million of them, each a hostile header.
struct CandidateBudget {
    limits: SearchLimits,
    /// Bytes read by the candidates examined so far.
    read: u64,
    examined: usize,
    /// Candidates offered but not examined once the budget was spent.
    skipped: usize,
    /// Time spent examining candidates: only that (not the walks and the KDBG pass between,
    /// which a large image on a slow disk makes long) is held against the time budget.
    examining: std::time::Duration,
    /// When the current list of candidates started to be examined.
    since: std::time::Instant,
    /// Which budget ran out, once one has.
    spent: Option<&'static str>,
}

impl CandidateBudget {
    fn new(limits: &SearchLimits) -> CandidateBudget {
        CandidateBudget {
            limits: limits.clone(),
            read: 0,
            examined: 0,
            skipped: 0,
            examining: std::time::Duration::ZERO,
            since: std::time::Instant::now(),
            spent: None,
        }
    }

    /// The first of `bases` that holds a kernel image, examining candidates while the budget lasts.
    fn first_kernel(&mut self, space: &AddressSpace, bases: &[u64]) -> Option<KernelImage> {
        self.since = std::time::Instant::now();
        let mut found = None;
        for (i, &base) in bases.iter().enumerate() {
            if !self.allows_another() {
                self.skipped += bases.len() - i;
                break;
            }
            found = kernel_at(space, base, self);
            if found.is_some() {
                break;
            }
        }
        self.examining += self.since.elapsed();
        found
    }

    fn elapsed(&self) -> std::time::Duration {
        self.examining + self.since.elapsed()
    }

    fn allows_another(&mut self) -> bool {
        let limits = &self.limits;
        if self.spent.is_none() && self.read >= limits.candidate_bytes {
            self.spent = Some("read budget");
        }
        // Only after many candidates: see CANDIDATE_TIME_CHECK_AFTER.
        if self.spent.is_none()
            && self.examined >= limits.time_check_after
            && self.elapsed() >= limits.time_budget
        {
            self.spent = Some("time budget");
        }
        self.examined += usize::from(self.spent.is_none());
        self.spent.is_none()
    }

    /// Counts `len` bytes read by the candidate being examined.
    fn charge(&mut self, len: usize) {
        self.read = self.read.saturating_add(len as u64);
    }

    /// The warning naming what was given up, when a budget ran out.
    fn given_up(&self) -> Option<String> {
        let why = self.spent?;
        Some(format!(
            "the kernel-image search gave up at its {why} ({} MiB read by {} kernel candidates in {:.1} s; the budgets: {} MiB, and {} s once {} candidates are examined): {} candidate kernel headers were not examined (the page tables offer more than an image holds: hostile or damaged)",
            self.read >> 20,
            self.examined,
            self.examining.as_secs_f64(),
            self.limits.candidate_bytes >> 20,
            self.limits.time_budget.as_secs(),
            self.limits.time_check_after,
            self.skipped
        ))
    }
}

/// Bytes a whole-image pass hands each worker at a time: compressed containers decode a window,
/// never a whole run (an E01 can be one run of the whole image).
const PASS_WINDOW: u64 = 16 << 20;

/// What a [`parallel_pass`] runs on each window: its bytes, and the hits it owns.
type WindowScan<'a, T> = dyn Fn(&[u8], std::ops::Range<usize>) -> Vec<T> + Sync + 'a;

/// A whole-image pass in parallel: `f(bytes, owned)` on windows of every pass run; each window's
/// bytes start up to `before` bytes early and run `overlap` bytes past its end (what a match needs
/// around it), and `f` keeps only hits inside `owned` (offsets into `bytes`). The results come in
/// image order, so they do not depend on the thread count.
fn parallel_pass<T: Send>(
    phys: &PhysicalSpace,
    before: u64,
    overlap: u64,
    f: &WindowScan<'_, T>,
) -> Vec<T> {
    use rayon::prelude::*;
    let windows: Vec<(crate::container::Run, std::ops::Range<usize>)> = phys
        .pass_runs()
        .iter()
        .flat_map(|run| {
            (0..run.len.div_ceil(PASS_WINDOW)).map(move |i| {
                let off = i * PASS_WINDOW;
                let start = off.saturating_sub(before);
                let owned = PASS_WINDOW.min(run.len - off);
                let end = (off + owned + overlap).min(run.len);
                let window = crate::container::Run {
                    phys: run.phys + start,
                    len: end - start,
                    file_offset: run.file_offset + start,
                };
                let skip = (off - start) as usize;
                (window, skip..skip + owned as usize)
            })
        })
        .collect();
    windows
        .par_iter()
        .map(|(window, owned)| f(&phys.run_bytes(window), owned.clone()))
        .collect::<Vec<Vec<T>>>()
        .into_iter()
        .flatten()
        .collect()
}

/// KernBase values of `KDBG` blocks found anywhere in physical memory (a whole-image pass, in
/// parallel: the last resort when the kernel is not where kernels are loaded).
fn kdbg_scan_bases(phys: &PhysicalSpace, ptr: u64) -> Vec<u64> {
    let finder = memchr::memmem::Finder::new(b"KDBG");
    let found = parallel_pass(phys, 0, 16, &|bytes, owned| {
        let mut bases = vec![];
        for hit in finder.find_iter(bytes) {
            if hit >= owned.end || bases.len() >= MAX_TAG_HITS {
                break;
            }
            // OwnerTag is at +0x10 of the block; KernBase at +0x18.
            if hit % 8 != 0 {
                continue;
            }
            let base = bytes.read_word(hit as u64 + 8, ptr);
            if let Some(b) = base.filter(|b| b & 0xFFF == 0 && *b != 0) {
                bases.push(b);
            }
        }
        bases
    });
    let mut bases = vec![];
    for b in found {
        if bases.len() >= MAX_TAG_HITS {
            break;
        }
        if !bases.contains(&b) {
            bases.push(b);
        }
    }
    bases
}

/// Reads `len` bytes at `va`, leaving absent pages as zeros (a kernel image has paged-out parts).
fn read_sparse(space: &AddressSpace, va: u64, buf: &mut [u8]) {
    let mut done = 0usize;
    while done < buf.len() {
        let cur = va.wrapping_add(done as u64);
        let n = ((0x1000 - (cur & 0xFFF)) as usize).min(buf.len() - done);
        if let Some(chunk) = buf.get_mut(done..done + n) {
            if !space.read_into(cur, chunk) {
                chunk.fill(0);
            }
        }
        done += n;
    }
}

/// A kernel image at `base`: a PE whose CodeView record names a kernel PDB; the bytes it reads are
/// charged to the search's budget.
fn kernel_at(space: &AddressSpace, base: u64, budget: &mut CandidateBudget) -> Option<KernelImage> {
    let (size_of_image, pdb) = read_codeview(space, base, &mut |n| budget.charge(n))?;
    KERNEL_PDB_NAMES
        .contains(&pdb.name.as_str())
        .then_some(KernelImage {
            base,
            size_of_image: Some(size_of_image),
            pdb,
        })
}

/// A kernel whose header page starts with `MZ` but whose PE headers do not parse (a smeared or
/// overwritten header page): its CodeView `RSDS` record naming a kernel PDB, looked for in the
/// first pages of the image as Volatility's PDB scan looks for it in all of memory.
fn damaged_kernel_at(space: &AddressSpace, base: u64, budget: &mut CandidateBudget) -> Damaged {
    let mut header = vec![0u8; 0x1000];
    budget.charge(header.len());
    if !space.read_into(base, &mut header)
        || !header.starts_with(b"MZ")
        || goblin::pe::header::Header::parse(&header)
            .ok()
            .and_then(|h| h.optional_header)
            .is_some()
    {
        return Damaged::HeaderIntact;
    }
    let finder = memchr::memmem::Finder::new(b"RSDS");
    // The page and the start of the next: a record may cross a page boundary.
    let mut page = vec![0u8; 0x1000 + MAX_CODEVIEW];
    for off in (0..DAMAGED_HEADER_SPAN).step_by(0x1000) {
        if !budget.allows_another() {
            return Damaged::NotKernel;
        }
        budget.charge(0x1000);
        if !space.read_into(base + off, &mut page[..0x1000]) {
            continue;
        }
        // Another image starts here: a record beyond is not this one's.
        if off > 0 && page.starts_with(b"MZ") {
            break;
        }
        page[0x1000..].fill(0);
        read_sparse(space, base + off + 0x1000, &mut page[0x1000..]);
        for hit in finder.find_iter(&page[..0x1000]).filter(|h| h % 4 == 0) {
            let Some(record) = Rsds::parse(&page[hit..]) else {
                continue;
            };
            let name = pdb_file_name(&record.name);
            if KERNEL_PDB_NAMES.contains(&name.as_str()) {
                return Damaged::Kernel(KernelImage {
                    base,
                    size_of_image: None,
                    pdb: PdbId::new(&name, &format_guid(&record.signature), record.age),
                });
            }
        }
    }
    Damaged::NotKernel
}

/// What a candidate of the damaged-header pass turned out to be.
enum Damaged {
    Kernel(KernelImage),
    /// Damaged, but no kernel CodeView record in its first pages.
    NotKernel,
    /// Not a damaged header (an intact image was already examined, or no `MZ`).
    HeaderIntact,
}

/// The lower-case file name of a CodeView record's PDB path.
fn pdb_file_name(path: &[u8]) -> String {
    let full = String::from_utf8_lossy(path);
    full.rsplit(['\\', '/'])
        .next()
        .unwrap_or(&full)
        .to_ascii_lowercase()
}

/// A PE image at `base` and the PDB its CodeView record names (lower-case file name): SizeOfImage
/// and the id.
pub(crate) fn pe_codeview(space: &AddressSpace, base: u64) -> Option<(u64, PdbId)> {
    read_codeview(space, base, &mut |_| {})
}

/// [`pe_codeview`], telling `charge` how many bytes each read takes: the PE headers parsed with
/// goblin, the debug directory entries and the record as typed structs, reading only the pages
/// involved.
fn read_codeview(
    space: &AddressSpace,
    base: u64,
    charge: &mut dyn FnMut(usize),
) -> Option<(u64, PdbId)> {
    use goblin::pe;
    let mut header = vec![0u8; 0x1000];
    charge(header.len());
    if !space.read_into(base, &mut header) || !header.starts_with(b"MZ") {
        return None;
    }
    let parsed = pe::header::Header::parse(&header).ok()?;
    let opt = parsed.optional_header?;
    let size_of_image = u64::from(opt.windows_fields.size_of_image);
    let debug = *opt.data_directories.get_debug_table()?;
    // Bounded work per candidate whatever the header claims: a few directory entries, and only
    // the CodeView records among them, each small (a kernel's is 24 bytes and a file name). A
    // hostile image can offer thousands of candidates with 64 MiB debug directories.
    let entries = (debug.size as usize / DEBUG_ENTRY).min(MAX_DEBUG_ENTRIES);
    let dir_rva = u64::from(debug.virtual_address);
    if entries == 0 || dir_rva >= size_of_image.min(MAX_IMAGE_SIZE) {
        return None;
    }
    let mut dir = vec![0u8; entries * DEBUG_ENTRY];
    charge(dir.len());
    read_sparse(space, base.checked_add(dir_rva)?, &mut dir);
    let codeview = dir.chunks_exact(DEBUG_ENTRY).find_map(|entry| {
        let DebugDirectoryEntry { kind, size, rva } = DebugDirectoryEntry::parse(entry)?;
        let size = size as usize;
        let rva = u64::from(rva);
        if kind != IMAGE_DEBUG_TYPE_CODEVIEW
            || !(24..=MAX_CODEVIEW).contains(&size)
            || rva >= size_of_image
        {
            return None;
        }
        let mut record = vec![0u8; size];
        charge(size);
        read_sparse(space, base.checked_add(rva)?, &mut record);
        Rsds::parse(&record)
    })?;
    let (signature, age) = (codeview.signature, codeview.age);
    let name = pdb_file_name(&codeview.name);
    Some((
        size_of_image,
        PdbId::new(&name, &format_guid(&signature), age),
    ))
}

const IMAGE_DEBUG_TYPE_CODEVIEW: u32 = 2;

/// The `IMAGE_DEBUG_DIRECTORY` fields that locate a debug record.
struct DebugDirectoryEntry {
    /// `Type`.
    kind: u32,
    /// `SizeOfData`.
    size: u32,
    /// `AddressOfRawData`.
    rva: u32,
}

impl DebugDirectoryEntry {
    fn parse(entry: &[u8]) -> Option<DebugDirectoryEntry> {
        Some(DebugDirectoryEntry {
            kind: entry.read_u32(12)?,
            size: entry.read_u32(16)?,
            rva: entry.read_u32(20)?,
        })
    }
}

/// A CodeView `RSDS` record: the PDB's GUID, age and path (up to its NUL).
struct Rsds {
    signature: [u8; 16],
    age: u32,
    name: Vec<u8>,
}

impl Rsds {
    fn parse(record: &[u8]) -> Option<Rsds> {
        if !record.starts_with(b"RSDS") {
            return None;
        }
        Some(Rsds {
            signature: array_at(record, 4)?,
            age: record.read_u32(20)?,
            name: record
                .get(24..)?
                .iter()
                .copied()
                .take_while(|&b| b != 0)
                .collect(),
        })
    }
}

/// Data1, Data2, Data3 as little-endian numbers, then Data4's bytes in order: upper-case hex.
fn format_guid(sig: &[u8; 16]) -> String {
    let d1 = u32::from_le_bytes([sig[0], sig[1], sig[2], sig[3]]);
    let d2 = u16::from_le_bytes([sig[4], sig[5]]);
    let d3 = u16::from_le_bytes([sig[6], sig[7]]);
    let mut s = format!("{d1:08X}{d2:04X}{d3:04X}");
    for b in &sig[8..] {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The `VS_FIXEDFILEINFO` fields netcarve reads: FileVersion, most and least significant halves
/// (the signature is how it was found).
struct FixedFileInfo {
    file_version_ms: u32,
    file_version_ls: u32,
}

impl FixedFileInfo {
    fn parse(bytes: &[u8], at: usize) -> Option<FixedFileInfo> {
        let at = at as u64;
        Some(FixedFileInfo {
            file_version_ms: bytes.read_u32(at.checked_add(8)?)?,
            file_version_ls: bytes.read_u32(at.checked_add(12)?)?,
        })
    }

    /// (major, minor, build, revision).
    fn file_version(&self) -> (u32, u32, u32, u32) {
        let (ms, ls) = (self.file_version_ms, self.file_version_ls);
        (ms >> 16, ms & 0xFFFF, ls >> 16, ls & 0xFFFF)
    }
}

/// An image's FileVersion from its version resource (first VS_FIXEDFILEINFO in the image).
pub(crate) fn image_file_version(
    space: &AddressSpace,
    base: u64,
    size: u64,
) -> Option<(u32, u32, u32, u32)> {
    let size = size.min(MAX_IMAGE_SIZE);
    let finder = memchr::memmem::Finder::new(&VS_FIXEDFILEINFO_SIGNATURE);
    let mut page = vec![0u8; 0x1000 + 16];
    for off in (0..size).step_by(0x1000) {
        read_sparse(space, base.wrapping_add(off), &mut page);
        if let Some(hit) = finder.find_iter(&page[..0x1000]).find(|h| h % 4 == 0) {
            return FixedFileInfo::parse(&page, hit).map(|f| f.file_version());
        }
    }
    None
}

/// tcpip.sys FileVersion (NT 6.3 only needs it): a version resource whose strings name
/// `tcpip.sys` (UTF-16, a whole NUL-delimited value such as OriginalFilename), with its
/// VS_FIXEDFILEINFO at most 0x800 bytes before the name.
fn find_tcpip_version(phys: &PhysicalSpace) -> Option<String> {
    let needle: Vec<u8> = "tcpip.sys"
        .encode_utf16()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    let finder = memchr::memmem::Finder::new(&needle);
    let sig = memchr::memmem::FinderRev::new(&VS_FIXEDFILEINFO_SIGNATURE);
    // Per window: each name hit (counted against the cap) and the version it gives, if any. The
    // resource's fixed info precedes the name by at most 0x800 bytes, so a window is read from
    // 0x800 before its own start.
    const BACK: usize = 0x800;
    let found = parallel_pass(
        phys,
        BACK as u64,
        needle.len() as u64 + 2,
        &|bytes, owned| {
            let mut out = vec![];
            for hit in finder.find_iter(bytes) {
                if hit < owned.start {
                    continue;
                }
                if hit >= owned.end || out.len() > MAX_TCPIP_NAME_HITS {
                    break;
                }
                // A path like `\drivers\tcpip.sys` or a longer name is not the resource's value.
                let nul_before = hit >= 2 && bytes.get(hit - 2..hit) == Some(&[0, 0][..]);
                let end = hit + needle.len();
                let nul_after = bytes.get(end..end + 2) == Some(&[0, 0][..]);
                let version = (nul_before && nul_after)
                    .then(|| {
                        let from = hit.saturating_sub(BACK);
                        let at = sig.rfind(bytes.get(from..hit)?)?;
                        let (a, b, c, d) = FixedFileInfo::parse(bytes, from + at)?.file_version();
                        Some(format!("{a}.{b}.{c}.{d}"))
                    })
                    .flatten();
                out.push(version);
            }
            out
        },
    );
    found.into_iter().take(MAX_TCPIP_NAME_HITS).flatten().next()
}

/// The image facts `info`, `scan` and `compare` report.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn image_facts(phys: &PhysicalSpace, k: &KernelInfo) -> crate::record::ImageFacts {
    use crate::filetime::to_iso;
    let boot = k.boot_time();
    let mut warnings = phys.warnings.lines();
    warnings.extend(k.warnings.iter().cloned());
    crate::record::ImageFacts {
        file: Some(phys.path.display().to_string()),
        container: phys.kind.to_string(),
        arch: k.arch.name().to_string(),
        paging: k.mode.name().to_string(),
        dtb: crate::record::Hex(k.dtb),
        dtb_source: k.dtb_source.clone(),
        kernel_base: k.kernel_base.map(crate::record::Hex),
        kernel_pdb: k.pdb.clone(),
        nt: k.nt.clone(),
        build_sources: k.build_readings.clone(),
        system_time: k.system_time.and_then(to_iso),
        system_time_raw: k.system_time,
        boot_time: boot.and_then(to_iso),
        boot_time_raw: boot,
        timezone_bias_minutes: k.timezone_bias_minutes,
        physical: crate::record::PhysicalSummary {
            size: phys.present_size(),
            ranges: phys.range_count(),
            end: phys.end(),
        },
        sha256: None,
        stored_hashes: phys.container_facts.as_ref().and_then(|f| {
            (f.md5.is_some() || f.sha1.is_some()).then(|| crate::record::StoredHashes {
                md5: f.md5.map(|h| hex(&h)),
                sha1: f.sha1.map(|h| hex(&h)),
                check: None,
            })
        }),
        hibernation: phys
            .container_facts
            .as_ref()
            .and_then(|f| f.hibernation.as_ref())
            .map(|h| crate::record::HibernationFacts {
                format: h.format.to_string(),
                signature: h.signature.clone(),
                header_size: crate::record::Hex(u64::from(h.header_size)),
                hibernated: to_iso(h.system_time),
                hibernated_raw: h.system_time,
                fast_startup: h.hiberboot,
                pages: h.pages,
                compression_sets: h.blocks,
            }),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows of a whole-image pass see each hit once, in image order, including hits that cross
    /// a window boundary and context before a window's start.
    #[test]
    fn a_parallel_pass_sees_every_hit_once_across_window_boundaries() {
        let w = PASS_WINDOW as usize;
        let mut bytes = vec![0u8; 2 * w + 0x3000];
        let at = [0x10, w - 2, w + 0x10, w + 0x800, 2 * w + 0x2ffc];
        for &a in &at {
            bytes[a..a + 4].copy_from_slice(b"KDBG");
        }
        // Context 0x20 bytes before the hit at `w + 0x10`, in the previous window.
        bytes[w - 0x10] = 0xAB;
        let phys = PhysicalSpace::from_bytes(bytes, std::path::Path::new("p.raw")).unwrap();
        let finder = memchr::memmem::Finder::new(b"KDBG");
        let start = |window: &[u8], owned: std::ops::Range<usize>| {
            finder
                .find_iter(window)
                .filter(|h| owned.contains(h))
                .map(|h| (h - owned.start, window.get(h.wrapping_sub(0x20)).copied()))
                .collect::<Vec<_>>()
        };
        let hits = parallel_pass(&phys, 0x40, 3, &start);
        assert_eq!(hits.len(), at.len(), "{hits:?}");
        // The hit near the second window's start still sees the byte before it.
        assert!(hits.contains(&(0x10, Some(0xAB))), "{hits:?}");
    }

    /// The time budget is looked at only after many candidates, and then stops the search with a
    /// warning naming it (a search cannot be made slow on purpose in a test, so its clock is set back).
    #[test]
    fn the_time_budget_applies_only_after_many_candidates() {
        let mut budget = CandidateBudget::new(&SearchLimits::default());
        budget.examining = CANDIDATE_TIME_BUDGET * 2;
        for _ in 0..CANDIDATE_TIME_CHECK_AFTER {
            assert!(budget.allows_another());
        }
        assert!(!budget.allows_another());
        assert!(budget
            .given_up()
            .is_some_and(|w| w.contains("gave up at its time budget")));
        let mut fresh = CandidateBudget::new(&SearchLimits::default());
        fresh.read = CANDIDATE_READ_BUDGET;
        assert!(!fresh.allows_another());
        assert!(fresh.given_up().is_some_and(|w| w.contains("read budget")));
    }
}
