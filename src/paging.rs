//! Address translation (x64 4-level, x86 PAE, x86 non-PAE) over any physical space.
use crate::bytes::ReadBytes;
use crate::container::PhysicalSpace;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Reads of kernel virtual memory ([`ReadBytes`] at virtual addresses). The endpoint decoder is
/// written against this trait so it can be tested on a map of hand-placed objects without page
/// tables.
pub trait VirtualMemory: ReadBytes + Sync {
    /// 4 or 8.
    fn pointer_size(&self) -> u64;

    /// A pointer-sized value (zero-extended on x86).
    fn read_ptr(&self, va: u64) -> Option<u64> {
        self.read_word(va, self.pointer_size())
    }
}

/// A kernel virtual address space: a physical space plus a directory table base.
pub struct AddressSpace<'a> {
    pub phys: &'a PhysicalSpace,
    pub dtb: u64,
    pub mode: PagingMode,
    /// Names this space in the threads' translation caches; never reused within a process.
    id: u64,
}

static NEXT_SPACE_ID: AtomicU64 = AtomicU64::new(1);

/// One remembered translation: page `vpage` of space `space` is physical page `ppage`.
#[derive(Copy, Clone)]
struct Translation {
    space: u64,
    vpage: u64,
    ppage: u64,
}

/// Translations per thread, direct-mapped by virtual page. Decoding an endpoint follows a chain of
/// small objects that often share a page (the pool packs small blocks; Windows shares an address's
/// objects among its endpoints), and each walk of the page tables is four dependent reads, most of
/// them cache misses once the search has streamed the image through the caches.
const RECENT_TRANSLATIONS: usize = 16;

thread_local! {
    static RECENT: [Cell<Translation>; RECENT_TRANSLATIONS] =
        const { [const { Cell::new(Translation { space: 0, vpage: 0, ppage: 0 }) }; RECENT_TRANSLATIONS] };
}

const PRESENT: u64 = 1;
const LARGE: u64 = 1 << 7;
const PROTOTYPE: u64 = 1 << 10;
const TRANSITION: u64 = 1 << 11;
/// PAE / architectural PFN bits 12..51.
const PFN_MASK_PAE: u64 = 0x000F_FFFF_FFFF_F000;
/// Windows x64: PFN bits 12..44 only; higher bits of invalid PTEs carry software flags (as vol3).
const PFN_MASK_X64: u64 = 0x0000_1FFF_FFFF_F000;
const PFN_MASK_NONPAE: u64 = 0xFFFF_F000;
const NO_SELF_MAP_SLOT: usize = usize::MAX;
/// x86 page-table self-map windows: no real data lives there.
const PAE_SELFMAP: std::ops::Range<u64> = 0xC000_0000..0xC080_0000;
const NONPAE_SELFMAP: std::ops::Range<u64> = 0xC000_0000..0xC040_0000;

/// Windows treats a not-present entry in transition (bit 11 set, bit 10 clear) as still in RAM.
fn entry_usable(e: u64) -> bool {
    e & PRESENT != 0 || (e & TRANSITION != 0 && e & PROTOTYPE == 0)
}

/// Large-page bit, meaningful only in a present entry.
fn is_large(e: u64) -> bool {
    e & PRESENT != 0 && e & LARGE != 0
}

/// Sign-extends bit 47 (x64 canonical form).
fn canonical(va: u64) -> u64 {
    if va & (1 << 47) != 0 {
        va | 0xFFFF_0000_0000_0000
    } else {
        va & 0x0000_FFFF_FFFF_FFFF
    }
}

/// Collects mappings and hands them on merged when both VA and PA continue the previous one.
struct Coalescer<F: FnMut(u64, u64, u64)> {
    pending: Option<(u64, u64, u64)>,
    /// Whether mappings are cut to the physical ranges the image stores.
    present_only: bool,
    sink: F,
}

impl<F: FnMut(u64, u64, u64)> Coalescer<F> {
    fn push(&mut self, va: u64, pa: u64, size: u64) {
        if let Some((pva, ppa, psize)) = self.pending.as_mut() {
            if pva.checked_add(*psize) == Some(va) && ppa.checked_add(*psize) == Some(pa) {
                *psize += size;
                return;
            }
        }
        self.flush();
        self.pending = Some((va, pa, size));
    }
    fn flush(&mut self) {
        if let Some((va, pa, size)) = self.pending.take() {
            (self.sink)(va, pa, size);
        }
    }
}

impl<'a> AddressSpace<'a> {
    pub fn new(phys: &'a PhysicalSpace, dtb: u64, mode: PagingMode) -> Self {
        let id = NEXT_SPACE_ID.fetch_add(1, Ordering::Relaxed);
        AddressSpace {
            phys,
            dtb,
            mode,
            id,
        }
    }

    fn entry(&self, table: u64, index: u64) -> Option<u64> {
        match self.mode {
            PagingMode::NonPae => self
                .phys
                .read_u32(table.checked_add(index * 4)?)
                .map(u64::from),
            _ => self.phys.read_u64(table.checked_add(index * 8)?),
        }
    }

    fn pfn_mask(&self) -> u64 {
        match self.mode {
            PagingMode::X64 => PFN_MASK_X64,
            PagingMode::Pae => PFN_MASK_PAE,
            PagingMode::NonPae => PFN_MASK_NONPAE,
        }
    }

    /// The top-level table's physical address.
    fn top_table(&self) -> u64 {
        match self.mode {
            PagingMode::X64 => self.dtb & PFN_MASK_X64,
            // PAE CR3 points at a 32-byte-aligned PDPT.
            PagingMode::Pae => self.dtb & 0xFFFF_FFE0,
            PagingMode::NonPae => self.dtb & PFN_MASK_NONPAE,
        }
    }

    /// Virtual → physical; `None` when not present, not canonical, or outside the image.
    pub fn translate(&self, va: u64) -> Option<u64> {
        let pa = self.walk_cached(va)?;
        // An entry pointing beyond the image is as good as not present.
        self.phys.is_present(pa).then_some(pa)
    }

    /// [`Self::walk`] through this thread's recent translations (the space and the image never
    /// change, so a remembered translation stays true; failures are not remembered).
    fn walk_cached(&self, va: u64) -> Option<u64> {
        let vpage = va >> 12;
        let slot = vpage as usize % RECENT_TRANSLATIONS;
        let remembered = RECENT.with(|recent| recent[slot].get());
        if remembered.space == self.id && remembered.vpage == vpage {
            return Some(remembered.ppage << 12 | (va & 0xfff));
        }
        let pa = self.walk(va)?;
        RECENT.with(|recent| {
            recent[slot].set(Translation {
                space: self.id,
                vpage,
                ppage: pa >> 12,
            })
        });
        Some(pa)
    }

    /// Virtual → physical through the page tables, whether or not the image holds the page.
    fn walk(&self, va: u64) -> Option<u64> {
        let mask = self.pfn_mask();
        let pa = match self.mode {
            PagingMode::X64 => {
                if canonical(va) != va {
                    return None;
                }
                let pml4e = self.entry(self.top_table(), (va >> 39) & 0x1FF)?;
                if !entry_usable(pml4e) {
                    return None;
                }
                let pdpte = self.entry(pml4e & mask, (va >> 30) & 0x1FF)?;
                if !entry_usable(pdpte) {
                    return None;
                }
                if is_large(pdpte) {
                    (pdpte & mask & !0x3FFF_FFFF) | (va & 0x3FFF_FFFF)
                } else {
                    self.walk_pd(pdpte & mask, va, 9)?
                }
            }
            PagingMode::Pae => {
                if va > u64::from(u32::MAX) {
                    return None;
                }
                let pdpte = self.entry(self.top_table(), (va >> 30) & 3)?;
                // PDPT entries have no transition form: the CPU loads them when CR3 is written.
                if pdpte & PRESENT == 0 {
                    return None;
                }
                self.walk_pd(pdpte & mask, va, 9)?
            }
            PagingMode::NonPae => {
                if va > u64::from(u32::MAX) {
                    return None;
                }
                self.walk_pd(self.top_table(), va, 10)?
            }
        };
        Some(pa)
    }

    /// PD → PT → page, with `bits` index bits per level (9 for 8-byte entries, 10 for non-PAE).
    fn walk_pd(&self, pd: u64, va: u64, bits: u32) -> Option<u64> {
        let mask = self.pfn_mask();
        let index_mask = (1u64 << bits) - 1;
        let pde_shift = 12 + bits;
        let pde = self.entry(pd, (va >> pde_shift) & index_mask)?;
        if !entry_usable(pde) {
            return None;
        }
        if is_large(pde) {
            let page_mask = (1u64 << pde_shift) - 1;
            // Non-PAE 4 MiB pages keep PA bits 31:22 in the entry.
            let frame = if bits == 10 {
                pde & 0xFFC0_0000
            } else {
                pde & mask & !page_mask
            };
            return Some(frame | (va & page_mask));
        }
        let pte = self.entry(pde & mask, (va >> 12) & index_mask)?;
        if !entry_usable(pte) {
            return None;
        }
        Some((pte & mask) | (va & 0xFFF))
    }

    /// Walks every usable mapping of the kernel half in ascending VA order and calls
    /// `f(va, pa, size)`, merging mappings contiguous in both spaces. Skips the page-table
    /// self-map, and visits each page table at most once, so a hostile image that points many
    /// entries at one table costs no more than its number of distinct tables.
    pub fn kernel_mappings(&self, f: impl FnMut(u64, u64, u64)) {
        self.kernel_mappings_near(None, f)
    }

    /// [`kernel_mappings`](Self::kernel_mappings), on x64 limited to the top-level entries that
    /// cover `va` (the walk then touches only the tables under them, not every mapped page of the
    /// kernel half); other modes walk everything. Mappings may extend beyond `va`.
    pub fn kernel_mappings_near(
        &self,
        va: Option<std::ops::Range<u64>>,
        f: impl FnMut(u64, u64, u64),
    ) {
        self.walk_kernel(va, true, f)
    }

    /// The walk behind [`kernel_mappings_near`](Self::kernel_mappings_near); with
    /// `present_only` false, mappings are not cut at the gaps between stored runs (a caller that
    /// only asks about present pages saves a callback per run: a bitmap dump has one every few
    /// pages).
    fn walk_kernel(
        &self,
        va: Option<std::ops::Range<u64>>,
        present_only: bool,
        f: impl FnMut(u64, u64, u64),
    ) {
        let mut out = Coalescer {
            pending: None,
            present_only,
            sink: f,
        };
        let mut seen = std::collections::HashSet::new();
        match self.mode {
            PagingMode::X64 => {
                let slots = va.filter(|r| r.start < r.end).map_or(256..512, |r| {
                    ((r.start >> 39) & 0x1FF).max(256)..((r.end - 1) >> 39 & 0x1FF) + 1
                });
                self.x64_kernel_mappings(slots, &mut out, &mut seen)
            }
            PagingMode::Pae => {
                for pdpt_index in 2..4u64 {
                    let Some(pdpte) = self.entry(self.top_table(), pdpt_index) else {
                        continue;
                    };
                    if pdpte & PRESENT == 0 {
                        continue;
                    }
                    self.pd_mappings(
                        pdpte & PFN_MASK_PAE,
                        pdpt_index << 30,
                        9,
                        &PAE_SELFMAP,
                        &mut out,
                        &mut seen,
                    );
                }
            }
            PagingMode::NonPae => {
                let pd = self.top_table();
                // Only the upper half of the page directory maps kernel space.
                self.pd_range_mappings(pd, 0, 512..1024, 10, &NONPAE_SELFMAP, &mut out, &mut seen);
            }
        }
        out.flush();
    }

    fn x64_kernel_mappings<F: FnMut(u64, u64, u64)>(
        &self,
        slots: std::ops::Range<u64>,
        out: &mut Coalescer<F>,
        seen: &mut std::collections::HashSet<u64>,
    ) {
        let pml4 = self.top_table();
        let self_slot = (256..512u64)
            .find(|&i| {
                self.entry(pml4, i)
                    .is_some_and(|e| e & PRESENT != 0 && e & PFN_MASK_X64 == pml4)
            })
            .map_or(NO_SELF_MAP_SLOT, |i| i as usize);
        for i in slots {
            if i as usize == self_slot {
                continue;
            }
            let Some(pml4e) = self.entry(pml4, i) else {
                continue;
            };
            if !entry_usable(pml4e) || !seen.insert(pml4e & PFN_MASK_X64) {
                continue;
            }
            let base = canonical(i << 39);
            let pdpt = pml4e & PFN_MASK_X64;
            for j in 0..512u64 {
                let Some(pdpte) = self.entry(pdpt, j) else {
                    continue;
                };
                if !entry_usable(pdpte) {
                    continue;
                }
                let va = base | (j << 30);
                if is_large(pdpte) {
                    let pa = pdpte & PFN_MASK_X64 & !0x3FFF_FFFF;
                    self.emit_present(va, pa, 1 << 30, out);
                    continue;
                }
                if seen.insert(pdpte & PFN_MASK_X64) {
                    self.pd_mappings(pdpte & PFN_MASK_X64, va, 9, &(0..0), out, seen);
                }
            }
        }
    }

    fn pd_mappings<F: FnMut(u64, u64, u64)>(
        &self,
        pd: u64,
        va_base: u64,
        bits: u32,
        skip: &std::ops::Range<u64>,
        out: &mut Coalescer<F>,
        seen: &mut std::collections::HashSet<u64>,
    ) {
        self.pd_range_mappings(pd, va_base, 0..(1u64 << bits), bits, skip, out, seen);
    }

    #[allow(clippy::too_many_arguments)]
    fn pd_range_mappings<F: FnMut(u64, u64, u64)>(
        &self,
        pd: u64,
        va_base: u64,
        indices: std::ops::Range<u64>,
        bits: u32,
        skip: &std::ops::Range<u64>,
        out: &mut Coalescer<F>,
        seen: &mut std::collections::HashSet<u64>,
    ) {
        let mask = self.pfn_mask();
        let pde_shift = 12 + bits;
        let large_size = 1u64 << pde_shift;
        for k in indices {
            let va = va_base | (k << pde_shift);
            if skip.contains(&va) {
                continue;
            }
            let Some(pde) = self.entry(pd, k) else {
                continue;
            };
            if !entry_usable(pde) {
                continue;
            }
            if is_large(pde) {
                let pa = if bits == 10 {
                    pde & 0xFFC0_0000
                } else {
                    pde & mask & !(large_size - 1)
                };
                self.emit_present(va, pa, large_size, out);
                continue;
            }
            let pt = pde & mask;
            if !seen.insert(pt) {
                continue;
            }
            for m in 0..(1u64 << bits) {
                let Some(pte) = self.entry(pt, m) else {
                    continue;
                };
                if entry_usable(pte) {
                    self.emit_present(va | (m << 12), pte & mask, 0x1000, out);
                }
            }
        }
    }

    /// Emits the parts of a mapping whose physical pages are in the image.
    fn emit_present<F: FnMut(u64, u64, u64)>(
        &self,
        va: u64,
        pa: u64,
        size: u64,
        out: &mut Coalescer<F>,
    ) {
        let Some(end) = pa.checked_add(size) else {
            return;
        };
        if !out.present_only {
            out.push(va, pa, size);
            return;
        }
        self.phys.for_each_run_between(pa, end, |run| {
            out.push(va + (run.phys - pa), run.phys, run.len);
        });
    }

    /// For physical page numbers (ascending, each once), the lowest kernel VA mapping each, in the
    /// same order (`None`: no kernel mapping).
    pub fn phys_to_virt(&self, pages: &[u64]) -> Vec<Option<u64>> {
        let mut found = vec![None; pages.len()];
        if pages.is_empty() {
            return found;
        }
        self.walk_kernel(None, false, |va, pa, size| {
            let first = pa >> 12;
            let last = (pa + size - 1) >> 12;
            let from = pages.partition_point(|&p| p < first);
            for (at, &pfn) in pages[from..].iter().enumerate() {
                if pfn > last {
                    break;
                }
                // Mappings arrive in ascending VA order: the first one seen is the lowest.
                found[from + at]
                    .get_or_insert_with(|| va.wrapping_add((pfn << 12).wrapping_sub(pa)));
            }
        });
        found
    }
}

impl ReadBytes for AddressSpace<'_> {
    fn read_into(&self, va: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < buf.len() {
            let cur = va.wrapping_add(done as u64);
            // The read below fails for a page the image does not hold.
            let Some(pa) = self.walk_cached(cur) else {
                return false;
            };
            let n = ((0x1000 - (cur & 0xfff)) as usize).min(buf.len() - done);
            if !self.phys.read_into(pa, &mut buf[done..done + n]) {
                return false;
            }
            done += n;
        }
        true
    }
    // Decoding reads mostly small fields: a fixed-size copy instead of `read_into`'s loop.
    fn read_u16(&self, va: u64) -> Option<u16> {
        self.read_fixed(va).map(u16::from_le_bytes)
    }
    fn read_u32(&self, va: u64) -> Option<u32> {
        self.read_fixed(va).map(u32::from_le_bytes)
    }
    fn read_u64(&self, va: u64) -> Option<u64> {
        self.read_fixed(va).map(u64::from_le_bytes)
    }
}

impl VirtualMemory for AddressSpace<'_> {
    fn pointer_size(&self) -> u64 {
        self.mode.pointer_size()
    }
}

impl AddressSpace<'_> {
    /// `N` bytes at `va`: one walk and a fixed-size copy when they lie in one page.
    fn read_fixed<const N: usize>(&self, va: u64) -> Option<[u8; N]> {
        if (va & 0xfff) as usize + N <= 0x1000 {
            return self.phys.read_array(self.walk_cached(va)?);
        }
        let mut b = [0u8; N];
        self.read_into(va, &mut b).then_some(b)
    }
}
