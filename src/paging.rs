//! Address translation (x64 4-level, x86 PAE, x86 non-PAE) over any physical space.
use crate::container::PhysicalSpace;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PagingMode {
    X64,
    Pae,
    NonPae,
}

impl PagingMode {
    pub fn name(self) -> &'static str {
        match self {
            PagingMode::X64 => "x64",
            PagingMode::Pae => "pae",
            PagingMode::NonPae => "nonpae",
        }
    }
    pub fn pointer_size(self) -> u64 {
        match self {
            PagingMode::X64 => 8,
            _ => 4,
        }
    }
}

/// Reads of kernel virtual memory. The endpoint decoder is written against this trait so it can be
/// tested on a map of hand-placed objects without page tables.
pub trait VirtualMemory: Sync {
    /// Copies `buf.len()` bytes at `va`; false if any byte is not present.
    fn read_virt(&self, va: u64, buf: &mut [u8]) -> bool;
    /// 4 or 8.
    fn pointer_size(&self) -> u64;

    fn read_u16(&self, va: u64) -> Option<u16> {
        let mut b = [0u8; 2];
        self.read_virt(va, &mut b).then(|| u16::from_le_bytes(b))
    }
    fn read_u32(&self, va: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read_virt(va, &mut b).then(|| u32::from_le_bytes(b))
    }
    fn read_u64(&self, va: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_virt(va, &mut b).then(|| u64::from_le_bytes(b))
    }
    /// A pointer-sized value (zero-extended on x86).
    fn read_ptr(&self, va: u64) -> Option<u64> {
        if self.pointer_size() == 8 {
            self.read_u64(va)
        } else {
            self.read_u32(va).map(u64::from)
        }
    }
}

/// A kernel virtual address space: a physical space plus a directory table base.
pub struct AddressSpace<'a> {
    pub phys: &'a PhysicalSpace,
    pub dtb: u64,
    pub mode: PagingMode,
}

impl<'a> AddressSpace<'a> {
    pub fn new(phys: &'a PhysicalSpace, dtb: u64, mode: PagingMode) -> Self {
        AddressSpace { phys, dtb, mode }
    }

    /// Virtual → physical. (The foundation branch implements the walks.)
    pub fn translate(&self, _va: u64) -> Option<u64> {
        None
    }

    /// The lowest kernel VA mapping each of the given physical page numbers.
    pub fn phys_to_virt(
        &self,
        _pages: &std::collections::BTreeSet<u64>,
    ) -> std::collections::HashMap<u64, u64> {
        std::collections::HashMap::new()
    }
}

impl VirtualMemory for AddressSpace<'_> {
    fn read_virt(&self, va: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < buf.len() {
            let cur = va.wrapping_add(done as u64);
            let Some(pa) = self.translate(cur) else {
                return false;
            };
            let n = ((0x1000 - (cur & 0xfff)) as usize).min(buf.len() - done);
            if !self.phys.read(pa, &mut buf[done..done + n]) {
                return false;
            }
            done += n;
        }
        true
    }
    fn pointer_size(&self) -> u64 {
        self.mode.pointer_size()
    }
}
