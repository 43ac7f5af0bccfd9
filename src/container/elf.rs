//! ELF64 cores (QEMU `dump-guest-memory`, VirtualBox `dumpvmcore`): each PT_LOAD with
//! p_filesz == p_memsz > 0 maps p_paddr → p_offset. Parsed by hand: only the program headers matter.
use super::le::{u16_at, u32_at, u64_at};
use super::{Backing, PhysicalSpace, Run};
use crate::error::{Error, Result};
use std::path::Path;

const PT_LOAD: u32 = 1;

pub fn detect(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

pub fn open(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let bytes = backing.bytes();
    if bytes.len() < 64 {
        return Err(Error::file(path, "truncated ELF header"));
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(Error::file(
            path,
            "only little-endian ELF64 cores are supported",
        ));
    }
    let e_type = u16_at(bytes, 16).unwrap_or(0);
    if e_type != 4 {
        return Err(Error::file(
            path,
            format!("ELF file is not a core dump (e_type {e_type})"),
        ));
    }
    let phoff = u64_at(bytes, 32).unwrap_or(0);
    let phentsize = u64::from(u16_at(bytes, 54).unwrap_or(0));
    let phnum = u64::from(u16_at(bytes, 56).unwrap_or(0));
    if phentsize < 56 {
        return Err(Error::file(
            path,
            format!("ELF program header size {phentsize} is too small"),
        ));
    }
    let mut runs = vec![];
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok());
        let Some(at) = at.filter(|&a| a.checked_add(56).is_some_and(|e| e <= bytes.len())) else {
            return Err(Error::file(
                path,
                format!("ELF program header {i} lies past the end of the file"),
            ));
        };
        if u32_at(bytes, at) != Some(PT_LOAD) {
            continue;
        }
        let offset = u64_at(bytes, at + 8).unwrap_or(0);
        let paddr = u64_at(bytes, at + 24).unwrap_or(0);
        let filesz = u64_at(bytes, at + 32).unwrap_or(0);
        let memsz = u64_at(bytes, at + 40).unwrap_or(0);
        // Segments whose file size differs from their memory size are not plain RAM copies.
        if filesz == 0 || filesz != memsz {
            continue;
        }
        runs.push(Run {
            phys: paddr,
            len: filesz,
            file_offset: offset,
        });
    }
    if runs.is_empty() {
        return Err(Error::file(path, "ELF core has no PT_LOAD memory segments"));
    }
    PhysicalSpace::new(backing, runs, "elf", path)
}
