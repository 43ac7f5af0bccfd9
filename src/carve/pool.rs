//! Pool blocks: the `_POOL_HEADER` rules of docs/internals.md and the candidates that pass them.
use crate::arch::Arch;
use crate::bytes::{array_at, ReadBytes};
use crate::profile::ObjectKind;
use std::borrow::Cow;

pub(crate) const PAGE_SIZE: u64 = 0x1000;

/// A decoded `_POOL_HEADER` (sizes in bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PoolHeader {
    pub previous_size: u64,
    pub pool_index: u16,
    /// BlockSize × block unit, header included.
    pub block_size: u64,
    pub pool_type: u16,
    pub tag: [u8; 4],
}

impl PoolHeader {
    /// Parses the first `arch.pool_header_size()` bytes of `bytes`.
    pub fn parse(bytes: &[u8], arch: Arch) -> Option<PoolHeader> {
        let tag: [u8; 4] = array_at(bytes, 4)?;
        match arch {
            Arch::X64 => Some(PoolHeader {
                previous_size: u64::from(bytes.read_u8(0)?) * 16,
                pool_index: u16::from(bytes.read_u8(1)?),
                block_size: u64::from(bytes.read_u8(2)?) * 16,
                pool_type: u16::from(bytes.read_u8(3)?),
                tag,
            }),
            Arch::X86 => {
                let w0 = bytes.read_u16(0)?;
                let w1 = bytes.read_u16(2)?;
                Some(PoolHeader {
                    previous_size: u64::from(w0 & 0x1ff) * 8,
                    pool_index: w0 >> 9,
                    block_size: u64::from(w1 & 0x1ff) * 8,
                    pool_type: w1 >> 9,
                    tag,
                })
            }
        }
    }

    /// The header at `va` of kernel memory (`None` when unreadable): what the table walk reads
    /// beside the objects, the hash tables and the port pools it follows.
    pub fn read_at(
        mem: &dyn crate::paging::VirtualMemory,
        va: u64,
        arch: Arch,
    ) -> Option<PoolHeader> {
        let mut raw = [0u8; 16];
        let raw = raw.get_mut(..arch.pool_header_size() as usize)?;
        mem.read_into(va, raw)
            .then(|| PoolHeader::parse(raw, arch))
            .flatten()
    }

    /// Freed blocks keep their contents until reused; they are decoded like live ones.
    pub fn is_freed(&self) -> bool {
        self.pool_type == 0
    }
}

/// The pool-header rules of docs/internals.md. `Err` names the first rule the header breaks.
pub fn check_header(
    header: &PoolHeader,
    header_offset: u64,
    arch: Arch,
    needed_body: u64,
) -> std::result::Result<(), &'static str> {
    let unit = arch.pool_header_size();
    if !header_offset.is_multiple_of(unit) {
        return Err("pool header not aligned");
    }
    if header.pool_type % 2 == 1 {
        return Err("paged pool (odd PoolType)");
    }
    if header.pool_index >= 16 {
        return Err("PoolIndex out of range");
    }
    if header.block_size < unit + needed_body {
        return Err("pool block too small for the object");
    }
    if header_offset % PAGE_SIZE + header.block_size > PAGE_SIZE {
        return Err("pool block runs past its page");
    }
    Ok(())
}

/// A pool block whose tag is one of the endpoint tags and whose header passes the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Physical address of the pool header.
    pub offset: u64,
    pub kind: ObjectKind,
    pub header: PoolHeader,
    /// The block after the pool header (to the end of the block): borrowed from the image, copied
    /// only when the block straddles two stored runs. Borrowing keeps memory flat however many
    /// candidates a (possibly hostile) image holds.
    pub body: Cow<'a, [u8]>,
}

impl Candidate<'_> {
    pub fn tag_text(&self) -> String {
        String::from_utf8_lossy(&self.header.tag).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x64_header(index: u8, blocks: u8, pool_type: u8, tag: &[u8; 4]) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[1] = index;
        h[2] = blocks;
        h[3] = pool_type;
        h[4..8].copy_from_slice(tag);
        h
    }

    #[test]
    fn x64_header_rules() {
        let ok = PoolHeader::parse(&x64_header(1, 0x20, 2, b"TcpE"), Arch::X64).unwrap();
        assert_eq!(ok.block_size, 0x200);
        assert!(check_header(&ok, 0x1000, Arch::X64, 0x100).is_ok());
        assert!(
            check_header(&ok, 0x1008, Arch::X64, 0x100).is_err(),
            "unaligned"
        );
        assert!(
            check_header(&ok, 0x1f00, Arch::X64, 0x100).is_err(),
            "past page"
        );
        assert!(
            check_header(&ok, 0x1000, Arch::X64, 0x1f8).is_err(),
            "undersized"
        );
        let freed = PoolHeader::parse(&x64_header(0, 0x20, 0, b"TcpE"), Arch::X64).unwrap();
        assert!(freed.is_freed() && check_header(&freed, 0, Arch::X64, 0x100).is_ok());
        let paged = PoolHeader::parse(&x64_header(0, 0x20, 3, b"TcpE"), Arch::X64).unwrap();
        assert_eq!(
            check_header(&paged, 0, Arch::X64, 0x100),
            Err("paged pool (odd PoolType)")
        );
        let bad_index = PoolHeader::parse(&x64_header(16, 0x20, 2, b"TcpE"), Arch::X64).unwrap();
        assert!(check_header(&bad_index, 0, Arch::X64, 0x100).is_err());
    }

    #[test]
    fn x86_header_bitfields() {
        // PreviousSize 3, PoolIndex 2, BlockSize 0x30 (×8), PoolType 4 (non-paged).
        let w0: u16 = 3 | (2 << 9);
        let w1: u16 = 0x30 | (4 << 9);
        let mut h = [0u8; 8];
        h[0..2].copy_from_slice(&w0.to_le_bytes());
        h[2..4].copy_from_slice(&w1.to_le_bytes());
        h[4..8].copy_from_slice(b"UdpA");
        let p = PoolHeader::parse(&h, Arch::X86).unwrap();
        assert_eq!(
            (p.previous_size, p.pool_index, p.block_size, p.pool_type),
            (24, 2, 0x180, 4)
        );
        assert!(check_header(&p, 0x2008, Arch::X86, 0x100).is_ok());
        assert!(check_header(&p, 0x2004, Arch::X86, 0x100).is_err());
        assert!(PoolHeader::parse(&h[..6], Arch::X86).is_none());
    }
}
