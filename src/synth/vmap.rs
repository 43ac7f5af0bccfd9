//! Kernel virtual memory as the synthesizer lays it out: its own page-table writer (x64 4-level,
//! x86 PAE, x86 non-PAE) and a record of every mapping, so that objects are written by virtual
//! address without going through the reader's translation code.
use super::phys::{PhysMem, PAGE};
use super::rng::Rng;
use std::collections::BTreeMap;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    X64,
    Pae,
    NonPae,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::X64 => "x64",
            Mode::Pae => "pae",
            Mode::NonPae => "nonpae",
        }
    }
    pub fn ptr(self) -> u64 {
        if self == Mode::X64 {
            8
        } else {
            4
        }
    }
    /// Large page size of the last directory level with PS set.
    pub fn large(self) -> u64 {
        if self == Mode::NonPae {
            0x40_0000
        } else {
            0x20_0000
        }
    }
}

/// Kernel PTE bits: present, writable, accessed, dirty.
const KERNEL_RW: u64 = 0x63;
const PS: u64 = 0x80;
/// Windows transition PTE: not present, bit 11 set, prototype bit 10 clear.
const TRANSITION: u64 = 0x800;

pub struct Vmap {
    pub mode: Mode,
    /// Physical address of the top-level table (PML4, PDPT, or page directory).
    pub dtb: u64,
    pub selfref_index: Option<u64>,
    /// VA page → physical frame, for every page the writer mapped (large pages expanded lazily).
    pages: BTreeMap<u64, u64>,
    large: Vec<(u64, u64, u64)>,
    pae_pds: [u64; 4],
}

impl Vmap {
    pub fn new(mode: Mode, mem: &mut PhysMem, rng: &mut Rng, selfref_index: u64) -> Vmap {
        let mut v = Vmap {
            mode,
            dtb: 0,
            selfref_index: None,
            pages: BTreeMap::new(),
            large: vec![],
            pae_pds: [0; 4],
        };
        match mode {
            Mode::X64 => {
                // Windows x64 kernels keep the PML4 at 0x1A0000-0x1B0000.
                let pml4 = mem.alloc_contiguous_in(rng, 1, 0x1A0, 0x1B0) * PAGE;
                mem.page_mut(pml4 / PAGE, false);
                mem.write(pml4 + selfref_index * 8, &(pml4 | KERNEL_RW).to_le_bytes());
                v.dtb = pml4;
                v.selfref_index = Some(selfref_index);
            }
            Mode::NonPae => {
                let pd = mem.alloc_contiguous_in(rng, 1, 0x180, 0x1C0) * PAGE;
                mem.page_mut(pd / PAGE, false);
                // The page directory maps itself at 0xC0300000 (entry 0x300).
                mem.write(pd + 0x300 * 4, &((pd | KERNEL_RW) as u32).to_le_bytes());
                v.dtb = pd;
                v.selfref_index = Some(0x300);
            }
            Mode::Pae => {
                // PDPT page followed by its four page directories, as Windows lays them out
                // (the PD of the top quarter maps all four at 0xC0600000, itself at index 3).
                let first = mem.alloc_contiguous_in(rng, 5, 0x180, 0x1C0) * PAGE;
                for i in 0..5 {
                    mem.page_mut(first / PAGE + i, false);
                }
                for i in 0..4u64 {
                    v.pae_pds[i as usize] = first + (i + 1) * PAGE;
                }
                for i in 0..4u64 {
                    let pd = v.pae_pds[i as usize];
                    // PDPT entries only allow P, PWT and PCD.
                    mem.write(first + i * 8, &(pd | 1).to_le_bytes());
                    mem.write(v.pae_pds[3] + i * 8, &(pd | KERNEL_RW).to_le_bytes());
                }
                v.dtb = first;
                v.selfref_index = Some(3);
            }
        }
        v
    }

    fn entry_size(&self) -> u64 {
        if self.mode == Mode::NonPae {
            4
        } else {
            8
        }
    }

    fn read_entry(&self, mem: &PhysMem, at: u64) -> u64 {
        let mut b = [0u8; 8];
        let n = self.entry_size() as usize;
        mem.read(at, &mut b[..n]);
        u64::from_le_bytes(b)
    }

    fn write_entry(&self, mem: &mut PhysMem, at: u64, value: u64) {
        let n = self.entry_size() as usize;
        mem.write(at, &value.to_le_bytes()[..n]);
    }

    /// Table indices from the top level down to the PTE level.
    fn indices(&self, va: u64) -> Vec<u64> {
        match self.mode {
            Mode::X64 => vec![
                (va >> 39) & 0x1FF,
                (va >> 30) & 0x1FF,
                (va >> 21) & 0x1FF,
                (va >> 12) & 0x1FF,
            ],
            Mode::Pae => vec![(va >> 21) & 0x1FF, (va >> 12) & 0x1FF],
            Mode::NonPae => vec![(va >> 22) & 0x3FF, (va >> 12) & 0x3FF],
        }
    }

    fn top_table(&self, va: u64) -> u64 {
        match self.mode {
            Mode::Pae => self.pae_pds[((va >> 30) & 3) as usize],
            _ => self.dtb,
        }
    }

    /// Walks to the table holding the entry at `level_from_bottom` (0 = PTE), creating tables.
    fn table_for(&mut self, mem: &mut PhysMem, rng: &mut Rng, va: u64, stop_above: usize) -> u64 {
        let idx = self.indices(va);
        let mut table = self.top_table(va);
        let levels = idx.len();
        for &i in idx.iter().take(levels - 1 - stop_above) {
            let at = table + i * self.entry_size();
            let e = self.read_entry(mem, at);
            if e & 1 == 0 {
                let frame = mem.alloc_frame(rng, None) * PAGE;
                mem.page_mut(frame / PAGE, false);
                self.write_entry(mem, at, frame | KERNEL_RW);
                table = frame;
            } else {
                table = e
                    & 0x000F_FFFF_FFFF_F000
                    & if self.mode == Mode::NonPae {
                        0xFFFF_F000
                    } else {
                        u64::MAX
                    };
            }
        }
        table
    }

    pub fn map_4k(&mut self, mem: &mut PhysMem, rng: &mut Rng, va: u64, pa: u64) {
        self.set_pte(mem, rng, va, pa | KERNEL_RW);
    }

    /// Maps a page through a transition PTE: not present, but the frame still holds the data.
    pub fn map_transition(&mut self, mem: &mut PhysMem, rng: &mut Rng, va: u64, pa: u64) {
        self.set_pte(mem, rng, va, pa | TRANSITION | 0x60);
    }

    fn set_pte(&mut self, mem: &mut PhysMem, rng: &mut Rng, va: u64, pte: u64) {
        let table = self.table_for(mem, rng, va, 0);
        let i = *self.indices(va).last().unwrap_or(&0);
        self.write_entry(mem, table + i * self.entry_size(), pte);
        self.pages
            .insert(va & !(PAGE - 1), pte & !(PAGE - 1) & 0x000F_FFFF_FFFF_F000);
        mem.mark_used((pte / PAGE) & 0xFF_FFFF_FFFF);
    }

    /// Maps a 2 MiB (x64/PAE) or 4 MiB (non-PAE) large page; both addresses aligned to it.
    pub fn map_large(&mut self, mem: &mut PhysMem, rng: &mut Rng, va: u64, pa: u64) {
        let table = self.table_for(mem, rng, va, 1);
        let idx = self.indices(va);
        let i = idx[idx.len() - 2];
        self.write_entry(mem, table + i * self.entry_size(), pa | KERNEL_RW | PS);
        self.large.push((va, pa, self.mode.large()));
    }

    /// The frame behind a VA the writer mapped.
    pub fn translate(&self, va: u64) -> Option<u64> {
        if let Some(pa) = self.pages.get(&(va & !(PAGE - 1))) {
            return Some(pa + (va & (PAGE - 1)));
        }
        self.large
            .iter()
            .find(|(v, _, len)| va >= *v && va < v + len)
            .map(|(v, p, _)| p + (va - v))
    }

    pub fn write(&self, mem: &mut PhysMem, va: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let cur = va + done as u64;
            let n = ((PAGE - cur % PAGE) as usize).min(bytes.len() - done);
            let pa = self
                .translate(cur)
                .expect("synth writes only to pages it mapped");
            mem.write(pa, &bytes[done..done + n]);
            done += n;
        }
    }

    pub fn write_ptr(&self, mem: &mut PhysMem, va: u64, value: u64) {
        let n = self.mode.ptr() as usize;
        self.write(mem, va, &value.to_le_bytes()[..n]);
    }
}

/// Bump allocator of kernel pool pages: each new page gets a scattered frame.
pub struct PoolArena {
    next_va: u64,
    pub unit: u64,
}

/// One pool block the arena handed out.
#[derive(Copy, Clone, Debug)]
pub struct Block {
    /// VA of the pool header.
    pub va: u64,
    /// PA of the pool header.
    pub pa: u64,
    pub size: u64,
}

impl PoolArena {
    pub fn new(base_va: u64, unit: u64) -> PoolArena {
        PoolArena {
            next_va: base_va,
            unit,
        }
    }

    /// Maps `n` fresh pages (scattered frames, no two adjacent) and returns the first VA.
    pub fn pages(&mut self, vm: &mut Vmap, mem: &mut PhysMem, rng: &mut Rng, n: u64) -> u64 {
        let va = self.next_va;
        let mut prev = None;
        for i in 0..n {
            let f = mem.alloc_frame(rng, prev);
            mem.page_mut(f, true);
            vm.map_4k(mem, rng, va + i * PAGE, f * PAGE);
            prev = Some(f);
        }
        // Leave an unmapped guard page between allocations, like separate pool regions.
        self.next_va += (n + 1) * PAGE;
        va
    }
}

/// Packs blocks into the pages of one arena, never letting a block cross its page.
pub struct PagePacker {
    page_va: u64,
    used: u64,
    prev_units: u64,
}

impl PagePacker {
    pub fn new() -> PagePacker {
        PagePacker {
            page_va: 0,
            used: PAGE,
            prev_units: 0,
        }
    }

    /// A block of `size` bytes (a multiple of the unit) with a random gap before it.
    #[allow(clippy::too_many_arguments)]
    pub fn alloc(
        &mut self,
        arena: &mut PoolArena,
        vm: &mut Vmap,
        mem: &mut PhysMem,
        rng: &mut Rng,
        size: u64,
    ) -> (Block, u64) {
        let gap = rng.below(4) * arena.unit;
        if self.used + gap + size > PAGE {
            self.page_va = arena.pages(vm, mem, rng, 1);
            self.used = 0;
            self.prev_units = 0;
        } else {
            self.used += gap;
        }
        let va = self.page_va + self.used;
        self.used += size;
        let prev = if gap == 0 {
            self.prev_units
        } else {
            gap / arena.unit
        };
        self.prev_units = size / arena.unit;
        let pa = vm.translate(va).expect("mapped pool page");
        (Block { va, pa, size }, prev)
    }
}

impl Default for PagePacker {
    fn default() -> Self {
        Self::new()
    }
}
