//! ELF64 cores (QEMU `dump-guest-memory`, VirtualBox `dumpvmcore`): each PT_LOAD with
//! p_filesz == p_memsz > 0 maps p_paddr → p_offset. Parsed by hand: only the program headers matter.
use super::{Backing, PhysicalSpace, Run};
use crate::bytes::{array_at, ReadBytes};
use crate::error::{Cause, Error, Result};
use std::path::Path;

const PT_LOAD: u32 = 1;

pub fn detect(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// The ELF64 file header fields a core's memory map needs.
struct ElfHeader {
    /// EI_CLASS (2: ELF64) and EI_DATA (1: little-endian).
    class: u8,
    data: u8,
    e_type: u16,
    phoff: u64,
    phentsize: u16,
    phnum: u16,
}

impl ElfHeader {
    /// `None` when `bytes` is shorter than the 64-byte ELF64 header.
    fn parse(bytes: &[u8]) -> Option<ElfHeader> {
        let h: &[u8] = &array_at::<64>(bytes, 0)?;
        Some(ElfHeader {
            class: h.read_u8(4)?,
            data: h.read_u8(5)?,
            e_type: h.read_u16(16)?,
            phoff: h.read_u64(32)?,
            phentsize: h.read_u16(54)?,
            phnum: h.read_u16(56)?,
        })
    }
}

/// An Elf64_Phdr's fields, from its 56 bytes at `at` (`None` when they run past the end).
struct ProgramHeader {
    p_type: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

impl ProgramHeader {
    fn parse(bytes: &[u8], at: u64) -> Option<ProgramHeader> {
        let h: &[u8] = &array_at::<56>(bytes, at)?;
        Some(ProgramHeader {
            p_type: h.read_u32(0)?,
            offset: h.read_u64(8)?,
            paddr: h.read_u64(24)?,
            filesz: h.read_u64(32)?,
            memsz: h.read_u64(40)?,
        })
    }
}

pub fn open(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let bytes = backing.bytes();
    let Some(header) = ElfHeader::parse(bytes) else {
        return Err(Error::cause(path, Cause::Truncated("ELF header")));
    };
    if header.class != 2 || header.data != 1 {
        return Err(Error::cause(
            path,
            Cause::Unsupported("only little-endian ELF64 cores are supported".into()),
        ));
    }
    let e_type = header.e_type;
    if e_type != 4 {
        return Err(Error::cause(
            path,
            Cause::Unsupported(format!("ELF file is not a core dump (e_type {e_type})")),
        ));
    }
    let phoff = header.phoff;
    let phentsize = u64::from(header.phentsize);
    let phnum = u64::from(header.phnum);
    if phentsize < 56 {
        return Err(Error::cause(
            path,
            Cause::Malformed(format!("ELF program header size {phentsize} is too small")),
        ));
    }
    let mut runs = vec![];
    for i in 0..phnum {
        let ph = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|at| ProgramHeader::parse(bytes, at));
        let Some(ph) = ph else {
            return Err(Error::cause(
                path,
                Cause::Malformed(format!(
                    "ELF program header {i} lies past the end of the file"
                )),
            ));
        };
        if ph.p_type != PT_LOAD {
            continue;
        }
        // Segments whose file size differs from their memory size are not plain RAM copies.
        if ph.filesz == 0 || ph.filesz != ph.memsz {
            continue;
        }
        runs.push(Run {
            phys: ph.paddr,
            len: ph.filesz,
            file_offset: ph.offset,
        });
    }
    if runs.is_empty() {
        return Err(Error::cause(
            path,
            Cause::Malformed("ELF core has no PT_LOAD memory segments".into()),
        ));
    }
    PhysicalSpace::new(backing, runs, "elf", path)
}
