//! Finding tcpip.sys in memory: the kernel's loaded-module list, else an `MZ` page in kernel
//! space whose CodeView record names `tcpip.pdb`.
use crate::bytes::ReadBytes;
use crate::kernel::{image_file_version, pe_codeview, KernelInfo};
use crate::paging::{AddressSpace, PagingMode, VirtualMemory};
use crate::record::{Hex, PdbId};
use serde::{Deserialize, Serialize};

/// tcpip.sys as found in memory (`tables.tcpip` in scan JSON, `info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpipModule {
    pub base: Hex,
    pub size: Hex,
    /// The CodeView id, when its record is readable.
    pub pdb: Option<PdbId>,
    /// FileVersion from its version resource, dotted.
    pub file_version: Option<String>,
    /// `module-list` (the kernel's PsLoadedModuleList) or `image-scan` (an `MZ` page naming tcpip.pdb).
    pub found_by: String,
}

/// Entries read from the module list at most: a list longer than this is damaged or hostile.
const MAX_MODULES: usize = 4096;
const MAX_IMAGE_SIZE: u64 = 64 << 20;

/// `_KLDR_DATA_TABLE_ENTRY` offsets: DllBase, SizeOfImage, BaseDllName (x64, x86).
fn ldr_offsets(mode: PagingMode) -> (u64, u64, u64) {
    match mode {
        PagingMode::X64 => (0x30, 0x40, 0x58),
        _ => (0x18, 0x20, 0x2c),
    }
}

/// A kernel address of this paging mode (the upper half).
pub(crate) fn is_kernel_va(mode: PagingMode, va: u64) -> bool {
    match mode {
        PagingMode::X64 => va >= 0xFFFF_8000_0000_0000,
        _ => (0x8000_0000..=0xFFFF_FFFF).contains(&va),
    }
}

/// Finds tcpip.sys; `None` when neither route finds it.
pub fn find_tcpip(space: &AddressSpace, kernel: &KernelInfo) -> Option<TcpipModule> {
    let from_list = loaded_module_list(space, kernel).and_then(|head| {
        walk_module_list(space, head)
            .into_iter()
            .find(|(_, _, name)| name.eq_ignore_ascii_case("tcpip.sys"))
    });
    if let Some((base, size, _)) = from_list {
        let pdb = pe_codeview(space, base).map(|(_, pdb)| pdb);
        return Some(identity(space, base, size, pdb, "module-list"));
    }
    image_scan(space)
}

fn identity(
    space: &AddressSpace,
    base: u64,
    size: u64,
    pdb: Option<PdbId>,
    found_by: &str,
) -> TcpipModule {
    let file_version = image_file_version(space, base, size.min(MAX_IMAGE_SIZE))
        .map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}"));
    TcpipModule {
        base: Hex(base),
        size: Hex(size),
        pdb,
        file_version,
        found_by: found_by.to_string(),
    }
}

/// The list head: `_KDDEBUGGER_DATA64.PsLoadedModuleList` (+0x48) of the KDBG block that kernel
/// identification found in the kernel image (Windows 8+ x64 encode the block: then there is none).
fn loaded_module_list(space: &AddressSpace, kernel: &KernelInfo) -> Option<u64> {
    let head = space
        .read_u64(kernel.kdbg? + 0x48)
        .map(|h| truncate(space.mode, h))?;
    is_kernel_va(space.mode, head).then_some(head)
}

/// x86 pointers in the 64-bit debugger block are sign-extended.
fn truncate(mode: PagingMode, v: u64) -> u64 {
    match mode {
        PagingMode::X64 => v,
        _ => v & 0xFFFF_FFFF,
    }
}

/// (DllBase, SizeOfImage, BaseDllName) of each entry of the circular list at `head`.
fn walk_module_list(space: &AddressSpace, head: u64) -> Vec<(u64, u64, String)> {
    let (dll_base, size_of_image, base_name) = ldr_offsets(space.mode);
    let ps = space.mode.pointer_size();
    let mut out = vec![];
    let mut seen = std::collections::HashSet::new();
    let mut at = space.read_ptr(head);
    while let Some(entry) = at {
        if entry == head || out.len() >= MAX_MODULES || !seen.insert(entry) {
            break;
        }
        if !is_kernel_va(space.mode, entry) {
            break;
        }
        let base = space.read_ptr(entry + dll_base);
        let size = space.read_u32(entry + size_of_image);
        let name = read_unicode_string(space, entry + base_name, ps);
        if let (Some(base), Some(size), Some(name)) = (base, size, name) {
            out.push((base, u64::from(size), name));
        }
        at = space.read_ptr(entry);
    }
    out
}

/// A `_UNICODE_STRING` (Length u16, MaximumLength u16, Buffer at the pointer-aligned offset).
fn read_unicode_string(mem: &dyn VirtualMemory, at: u64, ps: u64) -> Option<String> {
    let len = mem.read_u16(at)? as usize;
    if len == 0 || len > 512 || len % 2 == 1 {
        return None;
    }
    let buffer = mem.read_word(at + ps, ps)?;
    let mut bytes = vec![0u8; len];
    if !mem.read_into(buffer, &mut bytes) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(String::from_utf16_lossy(&units))
}

/// `MZ` pages in the driver part of kernel space whose CodeView record names tcpip.pdb. Each
/// physical frame is looked at once, and at most `MAX_IMAGE_PAGES` pages in all.
fn image_scan(space: &AddressSpace) -> Option<TcpipModule> {
    const MAX_IMAGE_PAGES: usize = 1 << 20;
    let mut found = None;
    let mut pages = 0usize;
    let mut examined = std::collections::HashSet::new();
    space.kernel_mappings(|va, pa, size| {
        if found.is_some() || pages >= MAX_IMAGE_PAGES || !examined.insert((pa, size)) {
            return;
        }
        let mut off = (0x1000 - (pa & 0xFFF)) & 0xFFF;
        while off + 2 <= size && pages < MAX_IMAGE_PAGES && found.is_none() {
            pages += 1;
            let mut magic = [0u8; 2];
            if space.phys.read_into(pa + off, &mut magic) && &magic == b"MZ" {
                if let Some((size, pdb)) = pe_codeview(space, va + off) {
                    if pdb.name == "tcpip.pdb" {
                        found = Some((va + off, size, pdb));
                    }
                }
            }
            off += 0x1000;
        }
    });
    let (base, size, pdb) = found?;
    Some(identity(space, base, size, Some(pdb), "image-scan"))
}
