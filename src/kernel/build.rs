//! The NT build number from every source an image may hold, each tried and reported, so that an
//! analyst sees which one gave the build and where sources disagree.
//!
//! Order of trust: KUSER_SHARED_DATA's NtBuildNumber (Windows 10+, where the field exists), the
//! crash-dump header, the kernel's `_DBGKD_GET_VERSION64` (KdVersionBlock), the exported
//! `NtBuildNumber` variable, the kernel's version resource, and the `NtBuildLab` string a
//! plaintext KDBG block points to (up to Windows 7 / 2008 R2; later x64 kernels encode the block).
use crate::bytes::ReadBytes;
use crate::paging::{AddressSpace, PagingMode};
use crate::record::BuildReading;

pub(super) const KUSER: &str = "kuser-shared-data";
pub(super) const CRASHDUMP_HEADER: &str = "crashdump-header";
pub(super) const KD_VERSION_BLOCK: &str = "kd-version-block";
pub(super) const EXPORT: &str = "export-NtBuildNumber";
pub(super) const VERSION_RESOURCE: &str = "version-resource";
pub(super) const KDBG_BUILD_LAB: &str = "kdbg-NtBuildLab";

/// Kernel image bytes searched for the version and debugger blocks (a kernel is 8-12 MiB).
const MAX_SEARCH: u64 = 32 << 20;
/// `_DBGKD_GET_VERSION64.MajorVersion`: 0xF for a free build, 0xC for a checked one.
const KD_MAJOR: [u16; 2] = [0xF, 0xC];
const KDBG_KERN_BASE: u64 = 0x18;
const KDBG_NT_BUILD_LAB: u64 = 0x208;
const MAX_BUILD_LAB: usize = 128;
/// Export directory entries looked at, at most (ntoskrnl exports about 3,000 names).
const MAX_EXPORT_NAMES: u32 = 1 << 16;
/// NtBuildNumber's top nibble: 0xF free build, 0xC checked build.
const BUILD_NUMBER_FLAGS: [u32; 2] = [0xF, 0xC];

/// The kernel image the in-image sources are read from.
#[derive(Clone, Copy)]
pub(super) struct KernelSpan {
    pub(super) base: u64,
    pub(super) size: u64,
}

/// What each source gave, in the order of trust; the build is the first reading's that has one.
pub(super) struct Readings {
    pub(super) readings: Vec<BuildReading>,
    /// The plaintext KDBG block found on the way (its VA), for the loaded-module list.
    pub(super) kdbg: Option<u64>,
}

impl Readings {
    pub(super) fn build(&self) -> Option<u32> {
        self.chosen().and_then(|r| r.build)
    }

    pub(super) fn chosen(&self) -> Option<&BuildReading> {
        self.readings.iter().find(|r| r.build.is_some())
    }

    /// "build sources disagree: …" when two sources gave different builds.
    pub(super) fn disagreement(&self) -> Option<String> {
        let chosen = self.chosen()?;
        let others: Vec<String> = self
            .readings
            .iter()
            .filter(|r| r.build.is_some_and(|b| Some(b) != chosen.build))
            .map(|r| format!("{} says {}", r.source, r.build.unwrap_or_default()))
            .collect();
        (!others.is_empty()).then(|| {
            format!(
                "NT build sources disagree: {} says {}, {}; using {}",
                chosen.source,
                chosen.build.unwrap_or_default(),
                others.join(", "),
                chosen.source
            )
        })
    }
}

/// Tries every source (KUSER only where `nt_major` >= 10; the in-image ones only with a kernel).
pub(super) fn read_all(
    space: &AddressSpace,
    kuser: u64,
    nt_major: u32,
    dump_header: Option<u32>,
    kernel: Option<KernelSpan>,
) -> Readings {
    let mut out = vec![];
    if nt_major >= 10 {
        let build = space
            .read_u32(kuser + super::KUSER_NT_BUILD_NUMBER)
            .and_then(build_of_number);
        out.push(reading(KUSER, build));
    }
    out.push(reading(
        CRASHDUMP_HEADER,
        dump_header.and_then(build_of_number),
    ));
    let mut kdbg = None;
    if let Some(k) = kernel {
        let blocks = find_blocks(space, k);
        kdbg = blocks.kdbg;
        out.push(reading(KD_VERSION_BLOCK, blocks.kd_version_build));
        out.push(reading(EXPORT, exported_build_number(space, k)));
        let resource = super::image_file_version(space, k.base, k.size)
            .map(|(_, _, build, _)| build)
            .filter(|&b| b != 0);
        out.push(reading(VERSION_RESOURCE, resource));
        let lab = blocks.kdbg.and_then(|b| kdbg_build_lab(space, b, k.base));
        out.push(reading(KDBG_BUILD_LAB, lab));
    }
    Readings {
        readings: out,
        kdbg,
    }
}

fn reading(source: &str, build: Option<u32>) -> BuildReading {
    BuildReading {
        source: source.to_string(),
        build,
    }
}

/// The low 16 bits of an NtBuildNumber-style value, whose top nibble marks free/checked builds.
/// Zero is no build.
fn build_of_number(v: u32) -> Option<u32> {
    let flags = v >> 28;
    let build = v & 0xFFFF;
    (build != 0 && (flags == 0 || BUILD_NUMBER_FLAGS.contains(&flags))).then_some(build)
}

struct Blocks {
    kd_version_build: Option<u32>,
    /// VA of a KDBG block (OwnerTag `KDBG` at +0x10).
    kdbg: Option<u64>,
}

/// One pass over the kernel image for the two blocks that hold the kernel base: the version
/// block (KernBase at +0x10, MachineType matching the paging) and the KDBG block (OwnerTag
/// `KDBG` at +0x10, KernBase at +0x18). x86 kernels store 64-bit sign-extended pointers there.
fn find_blocks(space: &AddressSpace, k: KernelSpan) -> Blocks {
    let x64 = space.mode == PagingMode::X64;
    let needle: Vec<u8> = if x64 {
        k.base.to_le_bytes().to_vec()
    } else {
        (k.base as u32).to_le_bytes().to_vec()
    };
    let finder = memchr::memmem::Finder::new(&needle);
    let machine: u16 = if x64 { 0x8664 } else { 0x14C };
    let mut found = Blocks {
        kd_version_build: None,
        kdbg: None,
    };
    let mut page = vec![0u8; 0x1000];
    for off in (0..k.size.min(MAX_SEARCH)).step_by(0x1000) {
        let page_va = k.base.wrapping_add(off);
        if !space.read_into(page_va, &mut page) {
            continue;
        }
        for hit in finder.find_iter(&page).filter(|h| h % 8 == 0) {
            let at = page_va + hit as u64;
            if !pointer_is(space, at, k.base) {
                continue;
            }
            if found.kd_version_build.is_none() {
                found.kd_version_build = kd_version_block(space, at - 0x10, machine);
            }
            if found.kdbg.is_none() {
                let block = at - KDBG_KERN_BASE;
                let mut tag = [0u8; 4];
                if space.read_into(block + 0x10, &mut tag) && &tag == b"KDBG" {
                    found.kdbg = Some(block);
                }
            }
            if found.kd_version_build.is_some() && found.kdbg.is_some() {
                return found;
            }
        }
    }
    found
}

/// The 64-bit debugger-structure pointer at `at` is `value` (sign-extended on x86).
fn pointer_is(space: &AddressSpace, at: u64, value: u64) -> bool {
    let Some(v) = space.read_u64(at) else {
        return false;
    };
    match space.mode {
        PagingMode::X64 => v == value,
        _ => v == value || v == (value as u32 as i32 as i64 as u64),
    }
}

/// `_DBGKD_GET_VERSION64` at `block`: MajorVersion 0xF/0xC, MinorVersion the build, MachineType.
fn kd_version_block(space: &AddressSpace, block: u64, machine: u16) -> Option<u32> {
    let major = space.read_u16(block)?;
    let build = space.read_u16(block + 2)?;
    let machine_type = space.read_u16(block + 8)?;
    (KD_MAJOR.contains(&major) && machine_type == machine && build != 0).then_some(u32::from(build))
}

/// The build at the start of the `NtBuildLab` string ("7601.17514.amd64fre.win7sp1_rtm…") that
/// the KDBG block at `block` points to.
fn kdbg_build_lab(space: &AddressSpace, block: u64, kernel_base: u64) -> Option<u32> {
    let ptr = space.read_u64(block + KDBG_NT_BUILD_LAB)?;
    let ptr = match space.mode {
        PagingMode::X64 => ptr,
        _ => ptr & 0xFFFF_FFFF,
    };
    // The string lies in the kernel image; anything else is not this kernel's.
    if ptr < kernel_base {
        return None;
    }
    // The string may end before a page that is not mapped: that page reads as zeros.
    let mut text = [0u8; MAX_BUILD_LAB];
    super::read_sparse(space, ptr, &mut text);
    build_of_lab(&text)
}

/// "7601.17514.amd64fre…" → 7601: leading digits then a dot.
fn build_of_lab(text: &[u8]) -> Option<u32> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(4..=5).contains(&digits) || text.get(digits) != Some(&b'.') {
        return None;
    }
    std::str::from_utf8(&text[..digits]).ok()?.parse().ok()
}

/// The exported `NtBuildNumber` variable: found by name in the export directory, read as a u32.
fn exported_build_number(space: &AddressSpace, k: KernelSpan) -> Option<u32> {
    use goblin::pe;
    let mut header = vec![0u8; 0x1000];
    if !space.read_into(k.base, &mut header) {
        return None;
    }
    let opt = pe::header::Header::parse(&header).ok()?.optional_header?;
    let exports = *opt.data_directories.get_export_table()?;
    let dir = k.base.checked_add(u64::from(exports.virtual_address))?;
    let in_image = |rva: u32| (u64::from(rva) < k.size).then(|| k.base + u64::from(rva));
    let names = space.read_u32(dir + 0x18)?.min(MAX_EXPORT_NAMES);
    let functions = in_image(space.read_u32(dir + 0x1C)?)?;
    let name_ptrs = in_image(space.read_u32(dir + 0x20)?)?;
    let ordinals = in_image(space.read_u32(dir + 0x24)?)?;
    let wanted = b"NtBuildNumber\0";
    let mut name = [0u8; 14];
    for i in 0..u64::from(names) {
        let Some(name_va) = space.read_u32(name_ptrs + 4 * i).and_then(in_image) else {
            continue;
        };
        if !space.read_into(name_va, &mut name) || &name != wanted {
            continue;
        }
        let ordinal = space.read_u16(ordinals + 2 * i)?;
        let rva = space.read_u32(functions + 4 * u64::from(ordinal))?;
        return build_of_number(space.read_u32(in_image(rva)?)?);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_numbers_and_lab_strings_parse_only_when_well_formed() {
        assert_eq!(build_of_number(0xF000_1DB1), Some(7601));
        assert_eq!(build_of_number(0xC000_1DB1), Some(7601));
        assert_eq!(build_of_number(0x0000_4A61), Some(19041));
        assert_eq!(build_of_number(0xF000_0000), None);
        assert_eq!(build_of_number(0x1234_5678), None);
        assert_eq!(build_of_lab(b"7601.17514.amd64fre.win7sp1_rtm"), Some(7601));
        assert_eq!(build_of_lab(b"19041.1.amd64fre.vb_release"), Some(19041));
        assert_eq!(build_of_lab(b"76.01"), None);
        assert_eq!(build_of_lab(b"7601"), None);
        assert_eq!(build_of_lab(b"x7601.1"), None);
    }
}
