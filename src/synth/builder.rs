//! The writer's lowest layer, public so that tests which lay objects out by hand (hostile
//! headers, one field at a time) encode them exactly as synth does instead of with a second
//! encoder that could drift from it: pool headers, container headers (crash dump, ELF core, LiME
//! range) and little-endian fields.
use crate::profile::Arch;

pub use super::containers::{dump_header, elf_header, lime_range_header, DumpFacts, Runs};
pub use super::kernel::{le16, le32, le64};

/// A `_POOL_HEADER`'s fields; sizes are in the pool's units (16 bytes on x64, 8 on x86).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PoolHeader {
    pub prev_units: u64,
    pub block_units: u64,
    pub pool_index: u8,
    /// 0 = freed; even = non-paged, odd = paged (docs/internals.md "Pool headers").
    pub pool_type: u8,
    pub tag: [u8; 4],
}

impl PoolHeader {
    /// An allocated non-paged block (`PoolType` 2, `PoolIndex` 0) of `block_units` units.
    pub fn new(tag: [u8; 4], block_units: u64) -> PoolHeader {
        PoolHeader {
            prev_units: 0,
            block_units,
            pool_index: 0,
            pool_type: 2,
            tag,
        }
    }

    /// The header bytes (one pool unit). A size too wide for its bit field is clamped to the
    /// field's maximum, so a block can never wrap to a small size that passes the checks.
    pub fn encode(&self, arch: Arch) -> Vec<u8> {
        let mut h = vec![0u8; arch.pool_header_size() as usize];
        match arch {
            Arch::X64 => {
                h[0] = self.prev_units.min(0xFF) as u8;
                h[1] = self.pool_index;
                h[2] = self.block_units.min(0xFF) as u8;
                h[3] = self.pool_type;
            }
            Arch::X86 => {
                let a =
                    self.prev_units.min(0x1FF) as u16 | (u16::from(self.pool_index & 0x7F) << 9);
                let b =
                    self.block_units.min(0x1FF) as u16 | (u16::from(self.pool_type & 0x7F) << 9);
                le16(&mut h, 0, a);
                le16(&mut h, 2, b);
            }
        }
        h[4..8].copy_from_slice(&self.tag);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_put_each_field_in_its_bits() {
        let h = PoolHeader {
            prev_units: 3,
            block_units: 0x21,
            pool_index: 1,
            pool_type: 2,
            tag: *b"TcpE",
        };
        assert_eq!(h.encode(Arch::X64), b"\x03\x01\x21\x02TcpE\0\0\0\0\0\0\0\0");
        // x86: u16 PreviousSize | PoolIndex << 9, then u16 BlockSize | PoolType << 9.
        assert_eq!(h.encode(Arch::X86), b"\x03\x02\x21\x04TcpE");
        let wide = PoolHeader::new(*b"TcpL", 0x1000);
        assert_eq!(wide.encode(Arch::X64)[2], 0xFF);
        assert_eq!(wide.encode(Arch::X86)[2..4], [0xFF, 0x05]);
    }
}
